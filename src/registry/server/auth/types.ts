/**
 * The contract between the HTTP layer and authentication. The routes say what a request needs
 * (scopes, in the token grammar `repository:<name>:<actions>`); an Authorizer decides, and on
 * refusal says how to challenge. Implementations: none (everything allowed), htpasswd (Basic),
 * token (JWT bearer, with or without the built-in issuer); each can allow anonymous pulls.
 */
export type Action = 'pull' | 'push' | 'delete' | '*';

export interface Scope {
  /** `repository`, or `registry` for `registry:catalog:*`. */
  readonly type: 'repository' | 'registry';
  /** A repository name, or `catalog`. */
  readonly name: string;
  readonly actions: readonly Action[];
}

export interface AuthRequest {
  /** The Authorization header as received, if any. */
  readonly authorization?: string;
  readonly remoteAddress?: string;
  /** The Host header: the name the client reached the registry by (for a default token realm). */
  readonly host?: string;
}

export type AuthDecision =
  | {
      readonly kind: 'allow';
      /** The user, for access logs; undefined when anonymous. */ readonly subject?: string;
    }
  | {
      readonly kind: 'deny';
      /** 401: no or bad credentials (challenge again); 403: authenticated but not allowed. */
      readonly status: 401 | 403;
      /** The spec's error code: UNAUTHORIZED or DENIED. */
      readonly code: 'UNAUTHORIZED' | 'DENIED';
      readonly message: string;
      /** The WWW-Authenticate header value for a 401 (Basic realm=… or Bearer realm=…,scope=…). */
      readonly challenge?: string;
    };

export interface Authorizer {
  /** `needed` is empty for `GET /v2/` (any authenticated user, or anonymous when allowed). */
  authorize(request: AuthRequest, needed: readonly Scope[]): Promise<AuthDecision>;
}

/** The built-in token issuer's endpoint, served by the HTTP layer at its own path. */
export interface TokenEndpoint {
  /** The path it is served at, e.g. `/token`. */
  readonly path: string;
  /**
   * Answers `GET path?service=&scope=…` (Basic credentials optional) and the OAuth2 `POST path`
   * form (`grant_type=password|refresh_token`). `query` holds every parameter, `scope` repeated
   * or space-joined.
   */
  handle(request: TokenRequest): Promise<TokenResponse>;
}

export interface TokenRequest {
  readonly method: 'GET' | 'POST';
  readonly query: URLSearchParams;
  /** The form body of a POST, already read (it is small). */
  readonly form?: URLSearchParams;
  readonly authorization?: string;
}

export interface TokenResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** A JSON document: `{token, access_token, expires_in, issued_at}` or an error body. */
  readonly body: unknown;
}
