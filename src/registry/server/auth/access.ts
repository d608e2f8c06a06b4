import { StrataError } from '../../../errors.js';
import { actionsCover, isAction, isScopeType } from './scope.js';
import type { Action, Scope } from './types.js';

/**
 * Who may do what. Rules only grant: the rights of a subject on a resource are the union of the
 * actions of every rule that matches it, so their order never changes a decision (it is kept for
 * people reading the configuration). Nothing matches → nothing granted.
 */
export interface AccessRule {
  /**
   * A user name; `*` for any authenticated user; `anonymous` for a request without credentials.
   * Anonymous rights are a floor for everyone: logging in never gives fewer rights than staying
   * anonymous, so `anonymous` rules match authenticated users too.
   */
  readonly account: string;
  /**
   * `repository` (the default) or `registry`, whose only resource is `catalog`
   * (`registry:catalog:*`, the listing of every repository name).
   */
  readonly type?: Scope['type'];
  /**
   * The resource name, a glob for repositories: `*` matches within one path component, `**`
   * across components (`team/**` matches `team/app` and `team/a/b`, not `team` itself), every
   * other character itself.
   */
  readonly repository: string;
  /** `*` stands for every action. */
  readonly actions: readonly Action[];
}

export const ANY_AUTHENTICATED = '*';
export const ANONYMOUS = 'anonymous';

/** With no rules configured: every authenticated user may do everything, the catalog included. */
const AUTHENTICATED_MAY_DO_EVERYTHING: readonly AccessRule[] = [
  { account: ANY_AUTHENTICATED, repository: '**', actions: ['*'] },
  { account: ANY_AUTHENTICATED, type: 'registry', repository: 'catalog', actions: ['*'] },
];

const ANONYMOUS_MAY_PULL: AccessRule = { account: ANONYMOUS, repository: '**', actions: ['pull'] };

/**
 * The rules in force: the configured ones, or the default policy when none are configured
 * (`undefined`; an empty list is a configuration that grants nothing), plus anonymous pull of
 * every repository when anonymous read is on.
 */
export function effectiveRules(
  configured: readonly AccessRule[] | undefined,
  anonymousRead: boolean,
): readonly AccessRule[] {
  const rules = configured ?? AUTHENTICATED_MAY_DO_EVERYTHING;
  return anonymousRead ? [...rules, ANONYMOUS_MAY_PULL] : rules;
}

/**
 * The actions of `scope` that `subject` (undefined = anonymous) may perform: the requested ones
 * that some matching rule allows, in the order they were requested. A requested `*` is granted
 * only by a rule that allows `*`.
 */
export function grantedActions(
  rules: readonly AccessRule[],
  subject: string | undefined,
  scope: Scope,
): Action[] {
  const allowed = new Set<Action>();
  for (const rule of rules) {
    if (!accountMatches(rule.account, subject)) continue;
    if ((rule.type ?? 'repository') !== scope.type) continue;
    if (!globToRegExp(rule.repository).test(scope.name)) continue;
    for (const action of rule.actions) allowed.add(action);
  }
  const allowedList = [...allowed];
  return scope.actions.filter((action) => actionsCover(allowedList, action));
}

/** Whether any rule gives anonymous requests anything (then `GET /v2/` needs no credentials). */
export function anonymousHasAccess(rules: readonly AccessRule[]): boolean {
  return rules.some((rule) => rule.account === ANONYMOUS && rule.actions.length > 0);
}

function accountMatches(account: string, subject: string | undefined): boolean {
  if (account === ANONYMOUS) return true;
  if (subject === undefined) return false;
  return account === ANY_AUTHENTICATED || account === subject;
}

// Patterns come from the configuration, so there are few of them; each is compiled once.
const compiledGlobs = new Map<string, RegExp>();

export function globToRegExp(glob: string): RegExp {
  let compiled = compiledGlobs.get(glob);
  if (compiled === undefined) {
    let source = '';
    for (let at = 0; at < glob.length; at++) {
      const char = glob[at] ?? '';
      if (char === '*' && glob[at + 1] === '*') {
        source += '.*';
        at++;
      } else if (char === '*') {
        source += '[^/]*';
      } else {
        source += char.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&');
      }
    }
    compiled = new RegExp(`^${source}$`, 's');
    compiledGlobs.set(glob, compiled);
  }
  return compiled;
}

/**
 * Checks rules read from a configuration file. `source` names the file (and key) in error
 * messages; `lineOf(index)`, when the caller parsed the file with positions (yaml's
 * `LineCounter`), gives the line of the rule so the message reads `strata.yaml:14: …`.
 */
export function parseAccessRules(
  value: unknown,
  source: string,
  lineOf: (index: number) => number | undefined = () => undefined,
): AccessRule[] {
  if (!Array.isArray(value)) {
    throw new StrataError('INVALID_CONFIG', `${source}: access rules must be a list`);
  }
  return value.map((entry: unknown, index): AccessRule => {
    const fail = (problem: string): never => {
      const line = lineOf(index);
      const place = line === undefined ? source : `${source}:${line}`;
      throw new StrataError('INVALID_CONFIG', `${place}: access rule ${index + 1}: ${problem}`);
    };
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      return fail('expected a mapping with account, repository and actions');
    }
    const record = entry as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!['account', 'type', 'repository', 'actions'].includes(key)) fail(`unknown field "${key}"`);
    }
    const { account, type, repository, actions } = record;
    if (typeof account !== 'string' || account === '') return fail('"account" must be a non-empty string');
    if (type !== undefined && (typeof type !== 'string' || !isScopeType(type))) {
      return fail('"type" must be "repository" or "registry"');
    }
    if (typeof repository !== 'string' || repository === '' || /\s/.test(repository)) {
      return fail('"repository" must be a non-empty name or glob without spaces');
    }
    if (type === 'registry' && repository !== 'catalog') {
      return fail('a "registry" rule is about "catalog", its only resource');
    }
    if (!Array.isArray(actions) || actions.length === 0) {
      return fail('"actions" must be a non-empty list of pull, push, delete or *');
    }
    const checkedActions = actions.map((action: unknown): Action => {
      if (typeof action !== 'string' || !isAction(action)) {
        return fail(`unknown action ${JSON.stringify(action)} (expected pull, push, delete or *)`);
      }
      return action;
    });
    const rule: AccessRule = { account, repository, actions: checkedActions };
    return type === undefined ? rule : { ...rule, type };
  });
}
