import { StrataError } from '../../errors.js';
import type { Credentials } from './credentials.js';
import { RegistryError, parseErrorBody } from './errors.js';

/** One challenge from a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"`. */
export interface Challenge {
  /** Lowercase: `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value (RFC 7235), which may hold several challenges:
 * `Basic realm="x", Bearer realm="y",service="z"`. Parameter names are case-insensitive, values
 * are tokens or quoted strings with backslash escapes.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let at = 0;
  const skip = (pattern: RegExp): void => {
    while (at < header.length && pattern.test(header[at] ?? '')) at++;
  };
  const token = (): string => {
    const start = at;
    while (at < header.length && /[^\s,=]/.test(header[at] ?? '')) at++;
    return header.slice(start, at);
  };
  let current: Challenge | undefined;
  while (at < header.length) {
    skip(/[\s,]/);
    const word = token();
    if (word === '') break;
    const afterWord = at;
    skip(/\s/);
    if (header[at] === '=' && current !== undefined) {
      at++;
      skip(/\s/);
      let value = '';
      if (header[at] === '"') {
        at++;
        while (at < header.length && header[at] !== '"') {
          if (header[at] === '\\') at++;
          value += header[at] ?? '';
          at++;
        }
        at++;
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else {
      at = afterWord;
      current = { scheme: word.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/**
 * Scopes as the token protocol spells them: `repository:<name>:<actions>`. Several requests for
 * one resource merge into one scope (`pull` + `push` → `pull,push`), so a token serves the whole
 * operation and its cache key does not depend on the order scopes were asked in.
 */
export function mergeScopes(scopes: readonly string[]): string[] {
  const actionsByResource = new Map<string, Set<string>>();
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter((s) => s !== '')) {
    // A name may contain one ':' (a registry port), so the type is the first field and the
    // actions the last.
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first) {
      actionsByResource.set(scope, actionsByResource.get(scope) ?? new Set());
      continue;
    }
    const resource = scope.slice(0, last);
    const actions = actionsByResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(last + 1).split(',')) if (action !== '') actions.add(action);
    actionsByResource.set(resource, actions);
  }
  return [...actionsByResource.entries()]
    .map(([resource, actions]) =>
      actions.size === 0 ? resource : `${resource}:${[...actions].sort().join(',')}`,
    )
    .sort();
}

export function repositoryScope(repository: string, actions: readonly ('pull' | 'push')[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** What the authenticator needs from the transport: one GET or POST to the token realm. */
export type TokenFetcher = (
  url: URL,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; text: string }>;

/** Tokens are renewed this long before they expire, so one is never sent as it lapses. */
const EXPIRY_MARGIN_MS = 10_000;
/** The token spec's default lifetime when the server does not say. */
const DEFAULT_TOKEN_SECONDS = 60;

/**
 * Docker's auth flow for one registry. The first 401 tells which scheme the registry wants; from
 * then on, requests carry credentials up front: Basic, or a bearer token for the operation's
 * scopes from the realm (anonymous when there are no credentials), cached until it expires.
 */
export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();
  /** Scopes a registry asked for in `insufficient_scope` challenges, added to later requests. */
  private readonly extraScopes = new Set<string>();

  constructor(
    private readonly registry: string,
    private readonly credentials: () => Promise<Credentials | undefined>,
    private readonly fetchToken: TokenFetcher,
    private readonly clientId = 'strata',
  ) {}

  /** The Authorization header for a request needing `scopes`, or undefined before any challenge. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    const challenge = this.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const credentials = await this.credentials();
      if (credentials === undefined) return undefined;
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    return `Bearer ${await this.token(challenge, mergeScopes([...scopes, ...this.extraScopes]))}`;
  }

  /**
   * Learns from a 401. Returns true when retrying may now succeed (a new scheme, new scopes, or a
   * fresh token), false when another try would get the same answer.
   */
  async unauthorized(header: string | undefined, scopes: readonly string[]): Promise<boolean> {
    const challenges = parseChallenges(header ?? '');
    const usable =
      challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined) ??
      challenges.find((c) => c.scheme === 'basic');
    if (usable === undefined) return false;
    const previous = this.challenge;
    this.challenge = usable;
    if (usable.scheme === 'basic') {
      return previous?.scheme !== 'basic' && (await this.credentials()) !== undefined;
    }
    const asked = usable.params.scope;
    let learned = previous?.scheme !== 'bearer' || previous.params.realm !== usable.params.realm;
    if (asked !== undefined) {
      for (const scope of asked.split(' ')) {
        if (scope !== '' && !this.extraScopes.has(scope) && !scopes.includes(scope)) {
          this.extraScopes.add(scope);
          learned = true;
        }
      }
    }
    // A token the registry refused (revoked, expired early) must not be offered again.
    const key = mergeScopes([...scopes, ...this.extraScopes]).join(' ');
    if (!learned && this.tokens.has(key)) {
      this.tokens.delete(key);
      learned = usable.params.error === 'invalid_token';
    }
    return learned;
  }

  /** Checks that the registry accepts these credentials (for `login`): a token for no scope. */
  async verify(scopes: readonly string[] = []): Promise<void> {
    if (this.challenge?.scheme === 'bearer') await this.token(this.challenge, mergeScopes(scopes));
  }

  get scheme(): string | undefined {
    return this.challenge?.scheme;
  }

  private async token(challenge: Challenge, scopes: string[]): Promise<string> {
    const key = scopes.join(' ');
    const cached = this.tokens.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.token;
    const running = this.inflight.get(key);
    if (running !== undefined) return running;
    const fetching = this.requestToken(challenge, scopes).finally(() => this.inflight.delete(key));
    this.inflight.set(key, fetching);
    const token = await fetching;
    return token;
  }

  private async requestToken(challenge: Challenge, scopes: string[]): Promise<string> {
    const realm = challenge.params.realm ?? '';
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `registry ${this.registry} sent an invalid token realm ${JSON.stringify(realm)}`,
      );
    }
    const credentials = await this.credentials();
    const service = challenge.params.service;
    let response: { status: number; text: string };
    if (credentials?.identityToken !== undefined) {
      // OAuth2 refresh-token grant: what Docker does with the identity token a login returned.
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.identityToken,
        client_id: this.clientId,
      });
      if (service !== undefined) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      response = await this.fetchToken(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const headers: Record<string, string> = {};
      if (credentials !== undefined) {
        url.searchParams.set('account', credentials.username);
        headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      }
      response = await this.fetchToken(url, { method: 'GET', headers });
    }
    if (response.status !== 200) {
      throw new RegistryError(
        `authentication with ${this.registry} (token server ${url.origin})`,
        response.status,
        parseErrorBody(response.text),
        {
          hint:
            response.status === 401 && credentials === undefined
              ? `log in with strata login ${this.registry}`
              : undefined,
        },
      );
    }
    const body = parseTokenResponse(response.text, this.registry);
    const issuedAt = body.issuedAt ?? Date.now();
    const lifetimeMs = Math.max(body.expiresIn ?? DEFAULT_TOKEN_SECONDS, DEFAULT_TOKEN_SECONDS) * 1000;
    // Issued-at comes from the server's clock; never trust it to be later than ours.
    const expiresAt = Math.min(issuedAt, Date.now()) + lifetimeMs - EXPIRY_MARGIN_MS;
    this.tokens.set(scopes.join(' '), { token: body.token, expiresAt });
    return body.token;
  }
}

function parseTokenResponse(
  text: string,
  registry: string,
): { token: string; expiresIn?: number; issuedAt?: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `the token server of ${registry} answered with something other than JSON`,
    );
  }
  const record = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const token = typeof record.token === 'string' && record.token !== '' ? record.token : record.access_token;
  if (typeof token !== 'string' || token === '') {
    throw new StrataError('INVALID_ARGUMENT', `the token server of ${registry} returned no token`);
  }
  const expiresIn = typeof record.expires_in === 'number' ? record.expires_in : undefined;
  const issued = typeof record.issued_at === 'string' ? Date.parse(record.issued_at) : Number.NaN;
  return { token, expiresIn, issuedAt: Number.isNaN(issued) ? undefined : issued };
}
