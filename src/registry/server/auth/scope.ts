import type { Action, Scope } from './types.js';

/**
 * Scopes as the token protocol spells them: `<type>:<name>:<action>[,<action>…]`, e.g.
 * `repository:library/alpine:pull,push` or `registry:catalog:*`. A repository name may carry a
 * registry host with a port (`localhost:5000/app`), so the type is read up to the first `:` and
 * the actions from the last one; whatever lies between is the name.
 */

const KNOWN_ACTIONS: ReadonlySet<string> = new Set<Action>(['pull', 'push', 'delete', '*']);
const SCOPE_TYPES: ReadonlySet<string> = new Set<Scope['type']>(['repository', 'registry']);

export function isAction(value: string): value is Action {
  return KNOWN_ACTIONS.has(value);
}

export function isScopeType(value: string): value is Scope['type'] {
  return SCOPE_TYPES.has(value);
}

/**
 * One scope, or undefined when it cannot be one (unknown type, no name, missing fields). Unknown
 * actions are dropped rather than failing the scope: a newer client may ask for actions we do not
 * grant, and it should still get the ones we do. Repeated actions are kept once.
 */
export function parseScope(text: string): Scope | undefined {
  if (/\s/.test(text)) return undefined;
  const firstColon = text.indexOf(':');
  const lastColon = text.lastIndexOf(':');
  if (firstColon <= 0 || lastColon === firstColon) return undefined;
  const type = text.slice(0, firstColon);
  const name = text.slice(firstColon + 1, lastColon);
  if (!isScopeType(type) || name === '') return undefined;
  const actions: Action[] = [];
  for (const action of text.slice(lastColon + 1).split(',')) {
    if (isAction(action) && !actions.includes(action)) actions.push(action);
  }
  return { type, name, actions };
}

/**
 * Every scope of a `scope` parameter, which clients repeat (`scope=a&scope=b`) or space-join
 * (`scope=a b`), or both. Unparseable entries are skipped.
 */
export function parseScopes(values: string | readonly string[]): Scope[] {
  const list = typeof values === 'string' ? [values] : values;
  const scopes: Scope[] = [];
  for (const value of list) {
    for (const word of value.split(/\s+/)) {
      if (word === '') continue;
      const scope = parseScope(word);
      if (scope !== undefined) scopes.push(scope);
    }
  }
  return scopes;
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(',')}`;
}

/** Space-joined, as the `scope` parameter of a challenge carries several scopes. */
export function formatScopes(scopes: readonly Scope[]): string {
  return scopes.map(formatScope).join(' ');
}

/**
 * One scope per resource, with the union of the actions asked for it, in first-seen order: a
 * client asking `repository:a:pull` and `repository:a:push` separately gets one access entry.
 */
export function mergeScopes(scopes: readonly Scope[]): Scope[] {
  const byResource = new Map<string, { type: Scope['type']; name: string; actions: Action[] }>();
  for (const scope of scopes) {
    const key = `${scope.type}:${scope.name}`;
    let merged = byResource.get(key);
    if (merged === undefined) {
      merged = { type: scope.type, name: scope.name, actions: [] };
      byResource.set(key, merged);
    }
    for (const action of scope.actions) if (!merged.actions.includes(action)) merged.actions.push(action);
  }
  return [...byResource.values()];
}

/**
 * Whether `granted` actions cover `action`. `*` stands for every action, as in distribution's
 * access sets (a `repository:x:*` grant allows pull, push and delete).
 */
export function actionsCover(granted: readonly Action[], action: Action): boolean {
  return granted.includes('*') || granted.includes(action);
}
