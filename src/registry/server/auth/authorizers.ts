import { anonymousHasAccess, effectiveRules, grantedActions, type AccessRule } from './access.js';
import type { Htpasswd } from './htpasswd.js';
import { parseBasicAuthorization } from './htpasswd.js';
import { actionsCover, formatScopes } from './scope.js';
import type { TokenValidator } from './token.js';
import type { Action, AuthDecision, AuthRequest, Authorizer, Scope } from './types.js';

/** No authentication: every request is allowed (a registry on a trusted network or in tests). */
export function allowAll(): Authorizer {
  return {
    authorize: () => Promise.resolve({ kind: 'allow' }),
  };
}

export interface BasicAuthorizerOptions {
  /** Shown by clients when they ask for credentials: `Basic realm="…"`. */
  readonly realm: string;
  readonly users: Htpasswd;
  /** Who may do what; undefined = every authenticated user may do everything. */
  readonly rules?: readonly AccessRule[];
  /** Requests without credentials may pull (and `GET /v2/`). */
  readonly anonymousRead: boolean;
}

/**
 * HTTP Basic against an htpasswd file. No or bad credentials → 401 with the Basic challenge (the
 * client asks for credentials); good credentials without the right → 403 DENIED (asking again
 * would not help). An Authorization header of another scheme counts as no credentials.
 */
export function basicAuthorizer(options: BasicAuthorizerOptions): Authorizer {
  const rules = effectiveRules(options.rules, options.anonymousRead);
  const anonymousMayPing = anonymousHasAccess(rules);
  const challenge = `Basic realm=${quote(options.realm)}`;
  const unauthorized = (message: string): AuthDecision => ({
    kind: 'deny',
    status: 401,
    code: 'UNAUTHORIZED',
    message,
    challenge,
  });

  return {
    async authorize(request: AuthRequest, needed: readonly Scope[]): Promise<AuthDecision> {
      const authorization = request.authorization?.trim() ?? '';
      if (!/^basic(\s|$)/i.test(authorization)) {
        const allowed = needed.length === 0 ? anonymousMayPing : covers(rules, undefined, needed);
        return allowed ? { kind: 'allow' } : unauthorized('authentication required');
      }
      const credentials = parseBasicAuthorization(authorization);
      if (credentials === undefined) return unauthorized('malformed Basic credentials');
      if (!(await options.users.verify(credentials.user, credentials.password))) {
        return unauthorized('incorrect username or password');
      }
      const subject = credentials.user;
      if (covers(rules, subject, needed)) return { kind: 'allow', subject };
      return {
        kind: 'deny',
        status: 403,
        code: 'DENIED',
        message: `${subject} may not ${describeMissing(rules, subject, needed)}`,
      };
    },
  };
}

function covers(
  rules: readonly AccessRule[],
  subject: string | undefined,
  needed: readonly Scope[],
): boolean {
  return needed.every((scope) => grantedActions(rules, subject, scope).length === scope.actions.length);
}

function describeMissing(rules: readonly AccessRule[], subject: string, needed: readonly Scope[]): string {
  const missing = needed.flatMap((scope) => {
    const granted = grantedActions(rules, subject, scope);
    return scope.actions
      .filter((action) => !granted.includes(action))
      .map((action) => `${action} ${scope.name}`);
  });
  return missing.join(', ');
}

export interface TokenAuthorizerOptions {
  /**
   * The token server's URL, the challenge's `realm`; a function when it depends on the name the
   * client used to reach the registry (the built-in issuer on the registry's own address).
   */
  readonly realm: string | ((request: AuthRequest) => string);
  /** The registry's service name: the challenge's `service` and the tokens' audience. */
  readonly service: string;
  readonly validator: TokenValidator;
  /** Requests without a token may pull (and `GET /v2/`) without going to the token server. */
  readonly anonymousRead: boolean;
}

/**
 * Bearer tokens, answered as distribution 2.8 answers them (clients are written against it):
 * - no token → 401 with `Bearer realm,service[,scope]`, which sends the client to the token server;
 * - a bad, expired, foreign or unverifiable token → 401 with `error="invalid_token"`;
 * - a valid token without the needed actions → 401 (not 403) with `error="insufficient_scope"`
 *   and the scope the request needs: the client fetches a new token for exactly that scope, and
 *   the token server decides whether it gets the actions. The spec's 403 would end the operation
 *   at clients that only retry on 401, though a fresh token might have carried the right.
 * An Authorization header of another scheme counts as no token.
 */
export function tokenAuthorizer(options: TokenAuthorizerOptions): Authorizer {
  const realmFor = (request: AuthRequest): string =>
    typeof options.realm === 'string' ? options.realm : options.realm(request);
  const challenge = (
    request: AuthRequest,
    needed: readonly Scope[],
    error?: 'invalid_token' | 'insufficient_scope',
  ): string => {
    let value = `Bearer realm=${quote(realmFor(request))},service=${quote(options.service)}`;
    if (needed.length > 0) value += `,scope=${quote(formatScopes(needed))}`;
    if (error !== undefined) value += `,error=${quote(error)}`;
    return value;
  };
  const unauthorized = (
    request: AuthRequest,
    message: string,
    needed: readonly Scope[],
    error?: 'invalid_token' | 'insufficient_scope',
  ): AuthDecision => ({
    kind: 'deny',
    status: 401,
    code: 'UNAUTHORIZED',
    message,
    challenge: challenge(request, needed, error),
  });
  const anonymousMay = (scope: Scope, action: Action): boolean =>
    options.anonymousRead && scope.type === 'repository' && action === 'pull';
  const anonymousMayAll = (needed: readonly Scope[]): boolean =>
    options.anonymousRead &&
    needed.every((scope) => scope.actions.every((action) => anonymousMay(scope, action)));

  return {
    async authorize(request: AuthRequest, needed: readonly Scope[]): Promise<AuthDecision> {
      const authorization = request.authorization?.trim() ?? '';
      const bearer = /^bearer(?:\s+(\S*))?\s*$/i.exec(authorization);
      if (bearer === null) {
        return anonymousMayAll(needed)
          ? { kind: 'allow' }
          : unauthorized(request, 'authentication required', needed);
      }
      const token = bearer[1] ?? '';
      const validation = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)
        ? await options.validator.validate(token)
        : { valid: false as const, reason: 'malformed token' };
      if (!validation.valid) return unauthorized(request, validation.reason, needed, 'invalid_token');
      const { subject, access } = validation.token;
      const lacking = needed.filter(
        (scope) =>
          !scope.actions.every((action) => tokenGrants(access, scope, action) || anonymousMay(scope, action)),
      );
      if (lacking.length === 0) return subject === undefined ? { kind: 'allow' } : { kind: 'allow', subject };
      return unauthorized(
        request,
        `token does not grant ${formatScopes(lacking)}`,
        // The whole need, so one new token serves the request (a mount needs two repositories).
        needed,
        'insufficient_scope',
      );
    },
  };
}

function tokenGrants(access: readonly Scope[], needed: Scope, action: Action): boolean {
  return access.some(
    (granted) =>
      granted.type === needed.type && granted.name === needed.name && actionsCover(granted.actions, action),
  );
}

/** A quoted-string (RFC 7230): backslash before `"` and `\`. */
function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
