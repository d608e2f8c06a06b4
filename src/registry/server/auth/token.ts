import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  SignJWT,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';

import { StrataError, errnoCode } from '../../../errors.js';
import { effectiveRules, grantedActions, type AccessRule } from './access.js';
import type { Htpasswd } from './htpasswd.js';
import { parseBasicAuthorization } from './htpasswd.js';
import { formatScopes, isAction, isScopeType, mergeScopes, parseScopes } from './scope.js';
import type { Action, Scope, TokenEndpoint, TokenRequest, TokenResponse } from './types.js';

/**
 * JWT bearer tokens as Docker's token flow uses them (distribution's docs/spec/auth/token.md):
 * a token server authenticates a client and signs `{iss, sub, aud, exp, nbf, iat, jti, access}`;
 * the registry checks the signature and claims locally, never calling the token server back.
 * Both halves live here: the built-in issuer with its `/token` endpoint, and the validator, which
 * also trusts external issuers (an x5c certificate chain to a root bundle, or a key by `kid`).
 */

// ---------------------------------------------------------------------------------------------
// Keys

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The RFC 7638 JWK thumbprint of the public key: the `kid` of every token it signs. */
  readonly keyId: string;
}

/** The algorithm the built-in issuer signs with (ECDSA on P-256, what Docker's token servers use). */
const SIGNING_ALGORITHM = 'ES256';

/**
 * What a validator accepts. Never `none` nor an HMAC algorithm: a token's `alg` picks how its
 * signature is checked, and with HS256 a public key would be used as a shared secret that anyone
 * can read.
 */
const ASYMMETRIC_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
  'Ed25519',
];

/** Reads an ES256 signing key (PKCS#8 or SEC1 PEM); errors name the file. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  const pem = await readSigningKeyFile(path);
  if (pem === undefined) throw new StrataError('INVALID_CONFIG', `${path}: token signing key not found`);
  return signingKeyFromPem(pem, path);
}

async function readSigningKeyFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new StrataError('INVALID_CONFIG', `${path}: token signing key cannot be read`, { cause: err });
  }
}

/**
 * The signing key at `path`, generated there on first start: a new P-256 key written with mode
 * 0600, fsynced, then linked into place so that two servers starting together over one shared
 * directory end up with the same key (the loser of the race reads the winner's).
 */
export async function loadOrCreateSigningKey(path: string): Promise<SigningKey> {
  const existing = await readSigningKeyFile(path);
  if (existing !== undefined) return signingKeyFromPem(existing, path);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  const file = await open(temporary, 'wx', 0o600);
  try {
    await file.writeFile(pem);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temporary, path);
  } catch (err) {
    // EEXIST: another server created it first, and that key is the one to use. A file system
    // without hard links gets a plain rename (the race then goes to the last writer).
    if (errnoCode(err) !== 'EEXIST') await rename(temporary, path);
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  await syncDirectory(dirname(path));
  return loadSigningKey(path);
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } catch {
    // Some file systems cannot fsync a directory; the key is then as durable as they allow.
  } finally {
    await directory.close();
  }
}

async function signingKeyFromPem(pem: string, path: string): Promise<SigningKey> {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new StrataError('INVALID_CONFIG', `${path}: not a PEM private key`, { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new StrataError('INVALID_CONFIG', `${path}: the token signing key must be an EC P-256 key (ES256)`);
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: await jwkThumbprint(publicKey) };
}

async function jwkThumbprint(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(
    publicKey.export({ format: 'jwk' }) as Parameters<typeof calculateJwkThumbprint>[0],
  );
}

/**
 * The key ID libtrust gives a key (SHA-256 of its DER SubjectPublicKeyInfo, first 240 bits,
 * base32 in twelve groups of four: `ABCD:EFGH:…`). Token servers written for distribution 2.x
 * (docker_auth among them) put it in `kid`, so keys are found under it as well as the thumbprint.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const digest = createHash('sha256')
    .update(publicKey.export({ format: 'der', type: 'spki' }))
    .digest()
    .subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let encoded = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      encoded += alphabet[(value >>> (bits - 5)) & 31] ?? '';
      bits -= 5;
    }
  }
  return encoded.match(/.{4}/g)?.join(':') ?? encoded;
}

// ---------------------------------------------------------------------------------------------
// Issuer

export interface IssuedToken {
  readonly token: string;
  readonly expiresInSeconds: number;
  readonly issuedAt: Date;
}

export interface TokenIssuerOptions {
  /** The `iss` claim; validators trust tokens by it. */
  readonly name: string;
  readonly key: SigningKey;
  /** Milliseconds since the epoch, for tests. */
  readonly now?: () => number;
}

/** Refresh tokens carry this audience prefix, so that no registry takes one for an access token. */
const REFRESH_AUDIENCE_PREFIX = 'refresh:';

/** The shortest lifetime the token protocol allows (clients assume 60 s when none is given). */
export const MINIMUM_EXPIRES_IN_SECONDS = 60;

export class TokenIssuer {
  readonly name: string;
  readonly keyId: string;
  private readonly key: SigningKey;
  private readonly now: () => number;

  constructor(options: TokenIssuerOptions) {
    this.name = options.name;
    this.key = options.key;
    this.keyId = options.key.keyId;
    this.now = options.now ?? Date.now;
  }

  /** An access token for `audience` (the registry's service name); `subject` undefined = anonymous. */
  async issue(request: {
    readonly subject: string | undefined;
    readonly audience: string;
    readonly access: readonly Scope[];
    readonly expiresInSeconds: number;
  }): Promise<IssuedToken> {
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresInSeconds = Math.max(MINIMUM_EXPIRES_IN_SECONDS, Math.floor(request.expiresInSeconds));
    const access = request.access.map((scope) => ({
      type: scope.type,
      name: scope.name,
      actions: [...scope.actions],
    }));
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: 'JWT', kid: this.keyId })
      .setIssuer(this.name)
      .setSubject(request.subject ?? '')
      .setAudience(request.audience)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + expiresInSeconds)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, expiresInSeconds, issuedAt: new Date(issuedAt * 1000) };
  }

  /**
   * A refresh token (what `docker login` stores instead of the password when offered one). It
   * records a fingerprint of the user's password hash: changing the password or removing the user
   * revokes it. Without `expiresInSeconds` it lasts until then, as a stored password would.
   */
  async issueRefreshToken(request: {
    readonly subject: string;
    readonly audience: string;
    readonly credentialFingerprint: string;
    readonly expiresInSeconds?: number;
  }): Promise<string> {
    const issuedAt = Math.floor(this.now() / 1000);
    const jwt = new SignJWT({ fp: request.credentialFingerprint })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: 'JWT', kid: this.keyId })
      .setIssuer(this.name)
      .setSubject(request.subject)
      .setAudience(REFRESH_AUDIENCE_PREFIX + request.audience)
      .setIssuedAt(issuedAt)
      .setJti(randomUUID());
    if (request.expiresInSeconds !== undefined) jwt.setExpirationTime(issuedAt + request.expiresInSeconds);
    return jwt.sign(this.key.privateKey);
  }

  /** The subject and fingerprint of a refresh token this issuer made for `audience`, or undefined. */
  async verifyRefreshToken(
    token: string,
    audience: string,
  ): Promise<{ subject: string; credentialFingerprint: string } | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, {
        algorithms: [SIGNING_ALGORITHM],
        issuer: this.name,
        audience: REFRESH_AUDIENCE_PREFIX + audience,
        currentDate: new Date(this.now()),
      });
      const { sub, fp } = payload;
      if (typeof sub !== 'string' || sub === '' || typeof fp !== 'string') return undefined;
      return { subject: sub, credentialFingerprint: fp };
    } catch {
      return undefined;
    }
  }

  /** This issuer as a validator sees it: tokens with its name and `kid` signed by its key. */
  trusted(): TrustedIssuer {
    return { issuer: this.name, keys: new Map([[this.keyId, this.key.publicKey]]), roots: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

export interface TokenEndpointOptions {
  /** Where the HTTP layer serves it, e.g. `/token`; the registry's challenge realm points here. */
  readonly path: string;
  /** The registry's service name: the only audience tokens are issued for. */
  readonly service: string;
  readonly issuer: TokenIssuer;
  /** The accounts; undefined = none (only anonymous tokens; credentials are refused). */
  readonly users: Htpasswd | undefined;
  /** The access rules; undefined = the default policy (see access.ts). */
  readonly rules: readonly AccessRule[] | undefined;
  readonly anonymousRead: boolean;
  /** Access token lifetime; default 300, never less than 60. */
  readonly expiresInSeconds?: number;
  /** Whether logins may ask for a refresh token (`offline_token=true`, `access_type=offline`). Default true. */
  readonly refreshTokens?: boolean;
  /** Refresh token lifetime; default none (valid until the user's password changes). */
  readonly refreshExpiresInSeconds?: number;
}

/** A client asking for more scopes than this at once is refused rather than given a huge token. */
const MAX_SCOPES_PER_TOKEN = 100;

type Authentication =
  { kind: 'user'; user: string } | { kind: 'anonymous' } | { kind: 'failed'; message: string };

export function createTokenEndpoint(options: TokenEndpointOptions): TokenEndpoint {
  const rules = effectiveRules(options.rules, options.anonymousRead);
  const expiresInSeconds = Math.max(MINIMUM_EXPIRES_IN_SECONDS, options.expiresInSeconds ?? 300);
  const refreshTokensEnabled = (options.refreshTokens ?? true) && options.users !== undefined;

  const authenticateBasic = async (authorization: string | undefined): Promise<Authentication> => {
    if (authorization === undefined || authorization.trim() === '') return { kind: 'anonymous' };
    const credentials = parseBasicAuthorization(authorization);
    if (credentials === undefined) return { kind: 'failed', message: 'malformed Basic credentials' };
    return authenticatePassword(credentials.user, credentials.password);
  };

  const authenticatePassword = async (user: string, password: string): Promise<Authentication> => {
    if (options.users === undefined) return { kind: 'failed', message: 'this registry has no user accounts' };
    return (await options.users.verify(user, password))
      ? { kind: 'user', user }
      : { kind: 'failed', message: 'incorrect username or password' };
  };

  const respond = async (
    params: URLSearchParams,
    subject: string | undefined,
    refresh: { readonly offline: boolean; readonly existing?: string },
    oauth: boolean,
  ): Promise<TokenResponse> => {
    const service = params.get('service');
    if (service !== null && service !== '' && service !== options.service) {
      return tokenError(
        400,
        'invalid_request',
        `this token server serves "${options.service}", not "${service}"`,
      );
    }
    const requested = mergeScopes(parseScopes(params.getAll('scope')));
    if (requested.length > MAX_SCOPES_PER_TOKEN) {
      return tokenError(400, 'invalid_scope', `at most ${MAX_SCOPES_PER_TOKEN} scopes per token`);
    }
    // Rights the subject lacks are left out, not refused: the registry then answers the request
    // that needs them with insufficient_scope, which tells the client what is missing.
    const access: Scope[] = [];
    for (const scope of requested) {
      const actions = grantedActions(rules, subject, scope);
      if (actions.length > 0) access.push({ type: scope.type, name: scope.name, actions });
    }
    const issued = await options.issuer.issue({
      subject,
      audience: options.service,
      access,
      expiresInSeconds,
    });
    const body: Record<string, unknown> = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresInSeconds,
      issued_at: issued.issuedAt.toISOString(),
    };
    if (oauth) body.scope = formatScopes(access);
    if (refresh.existing !== undefined) {
      body.refresh_token = refresh.existing;
    } else if (
      refresh.offline &&
      refreshTokensEnabled &&
      subject !== undefined &&
      options.users !== undefined
    ) {
      const credentialFingerprint = await options.users.credentialFingerprint(subject);
      if (credentialFingerprint !== undefined) {
        body.refresh_token = await options.issuer.issueRefreshToken({
          subject,
          audience: options.service,
          credentialFingerprint,
          ...(options.refreshExpiresInSeconds === undefined
            ? {}
            : { expiresInSeconds: options.refreshExpiresInSeconds }),
        });
      }
    }
    return { status: 200, headers: JSON_HEADERS, body };
  };

  const handleGet = async (request: TokenRequest): Promise<TokenResponse> => {
    const authentication = await authenticateBasic(request.authorization);
    if (authentication.kind === 'failed') return unauthorized(authentication.message, options.service);
    const subject = authentication.kind === 'user' ? authentication.user : undefined;
    const offline = request.query.get('offline_token') === 'true';
    return respond(request.query, subject, { offline }, false);
  };

  const handlePost = async (request: TokenRequest): Promise<TokenResponse> => {
    // Parameters come in the form; a client putting some in the query string is tolerated.
    const params = new URLSearchParams(request.query);
    for (const [name, value] of request.form ?? []) {
      if (name === 'scope') params.append(name, value);
      else params.set(name, value);
    }
    const grantType = params.get('grant_type');
    if (grantType === 'password') {
      const user = params.get('username');
      const password = params.get('password');
      if (user === null || user === '' || password === null) {
        return tokenError(400, 'invalid_request', 'grant_type=password needs username and password');
      }
      const authentication = await authenticatePassword(user, password);
      if (authentication.kind === 'failed') {
        return unauthorized(authentication.message, options.service, 'invalid_grant');
      }
      return respond(params, user, { offline: params.get('access_type') === 'offline' }, true);
    }
    if (grantType === 'refresh_token' && refreshTokensEnabled && options.users !== undefined) {
      const refreshToken = params.get('refresh_token') ?? '';
      const grant = await options.issuer.verifyRefreshToken(refreshToken, options.service);
      const current =
        grant === undefined ? undefined : await options.users.credentialFingerprint(grant.subject);
      if (grant === undefined || current !== grant.credentialFingerprint) {
        return unauthorized(
          'refresh token is not valid (expired, or the password changed)',
          options.service,
          'invalid_grant',
        );
      }
      return respond(params, grant.subject, { offline: false, existing: refreshToken }, true);
    }
    return tokenError(
      400,
      'unsupported_grant_type',
      `grant_type ${JSON.stringify(grantType ?? '')} is not supported`,
    );
  };

  return {
    path: options.path,
    handle: (request) => (request.method === 'POST' ? handlePost(request) : handleGet(request)),
  };
}

const JSON_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
};

/**
 * Error bodies carry both vocabularies: `errors` as distribution's clients parse them (docker
 * shows the message) and OAuth2's `error`/`error_description` for OAuth clients.
 */
function tokenError(
  status: 400 | 401,
  oauthError: string,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): TokenResponse {
  return {
    status,
    headers: { ...JSON_HEADERS, ...headers },
    body: {
      errors: [{ code: status === 401 ? 'UNAUTHORIZED' : 'UNSUPPORTED', message }],
      error: oauthError,
      error_description: message,
    },
  };
}

function unauthorized(message: string, service: string, oauthError = 'invalid_client'): TokenResponse {
  return tokenError(401, oauthError, message, {
    'www-authenticate': `Basic realm=${JSON.stringify(service)}`,
  });
}

// ---------------------------------------------------------------------------------------------
// Validator

/** An issuer whose tokens a registry accepts, with the keys it may sign them with. */
export interface TrustedIssuer {
  /** The `iss` claim its tokens carry. */
  readonly issuer: string;
  /** Public keys by key ID (`kid`). */
  readonly keys: ReadonlyMap<string, KeyObject>;
  /** Root certificates an `x5c` chain must lead to; empty = x5c tokens are not accepted. */
  readonly roots: readonly X509Certificate[];
}

export interface ExternalIssuerConfig {
  readonly issuer: string;
  /** PEM certificates (distribution's `rootcertbundle`): x5c chains must end at one of them. */
  readonly rootCertBundle?: string;
  /** A JWKS file (`{"keys": […]}`) of public keys, found by `kid`. */
  readonly jwks?: string;
  /** A PEM public key, found by its JWK thumbprint or libtrust key ID as `kid`. */
  readonly publicKey?: string;
}

/** Reads an external issuer's trust material; errors name the file (and the line or key). */
export async function loadTrustedIssuer(config: ExternalIssuerConfig): Promise<TrustedIssuer> {
  const keys = new Map<string, KeyObject>();
  const roots: X509Certificate[] = [];
  const addKey = async (key: KeyObject, ids: readonly string[]): Promise<void> => {
    for (const id of [...ids, await jwkThumbprint(key), libtrustKeyId(key)]) keys.set(id, key);
  };
  if (config.rootCertBundle !== undefined) {
    for (const certificate of parseCertificateBundle(
      await readConfigFile(config.rootCertBundle),
      config.rootCertBundle,
    )) {
      roots.push(certificate);
      // Issuers written for distribution 2.x sign with the bundle's key and name it by `kid`.
      await addKey(certificate.publicKey, []);
    }
  }
  if (config.jwks !== undefined) {
    for (const { key, kid } of parseJwks(await readConfigFile(config.jwks), config.jwks)) {
      await addKey(key, kid === undefined ? [] : [kid]);
    }
  }
  if (config.publicKey !== undefined) {
    let key: KeyObject;
    try {
      key = createPublicKey(await readConfigFile(config.publicKey));
    } catch (err) {
      if (err instanceof StrataError) throw err;
      throw new StrataError('INVALID_CONFIG', `${config.publicKey}: not a PEM public key`, { cause: err });
    }
    if (key.type !== 'public') {
      throw new StrataError(
        'INVALID_CONFIG',
        `${config.publicKey}: expected a public key, found a private one`,
      );
    }
    await addKey(key, []);
  }
  if (keys.size === 0 && roots.length === 0) {
    throw new StrataError(
      'INVALID_CONFIG',
      `token issuer "${config.issuer}": give rootCertBundle, jwks or publicKey to check its tokens with`,
    );
  }
  return { issuer: config.issuer, keys, roots };
}

async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new StrataError('INVALID_CONFIG', `${path}: cannot be read`, { cause: err });
  }
}

/** Every certificate of a PEM bundle; an unparseable one is an error naming its first line. */
export function parseCertificateBundle(text: string, path: string): X509Certificate[] {
  const certificates: X509Certificate[] = [];
  const pattern = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  for (const match of text.matchAll(pattern)) {
    const line = text.slice(0, match.index).split('\n').length;
    try {
      certificates.push(new X509Certificate(match[0]));
    } catch (err) {
      throw new StrataError('INVALID_CONFIG', `${path}:${line}: not a valid certificate`, { cause: err });
    }
  }
  if (certificates.length === 0) throw new StrataError('INVALID_CONFIG', `${path}: no PEM certificate found`);
  return certificates;
}

function parseJwks(text: string, path: string): { key: KeyObject; kid: string | undefined }[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw new StrataError('INVALID_CONFIG', `${path}: not JSON`, { cause: err });
  }
  const keys =
    typeof document === 'object' && document !== null ? (document as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new StrataError('INVALID_CONFIG', `${path}: expected a JWK set {"keys": [ … ]}`);
  }
  return keys.map((jwk: unknown, index) => {
    const fail = (problem: string, cause?: unknown): never => {
      throw new StrataError('INVALID_CONFIG', `${path}: keys[${index}]: ${problem}`, { cause });
    };
    if (typeof jwk !== 'object' || jwk === null) return fail('not a JWK');
    const fields = jwk as JsonWebKey & { kid?: unknown };
    if (fields.kty === 'oct') return fail('symmetric keys are not accepted (anyone holding them could sign)');
    if (fields.d !== undefined) return fail('a private key; a JWK set for validation holds public keys only');
    let key: KeyObject;
    try {
      key = createPublicKey({ key: fields, format: 'jwk' });
    } catch (err) {
      return fail('not a usable public key', err);
    }
    return { key, kid: typeof fields.kid === 'string' ? fields.kid : undefined };
  });
}

export interface ValidatedToken {
  readonly issuer: string;
  /** undefined for a token issued to an anonymous client (`sub` empty). */
  readonly subject: string | undefined;
  readonly access: readonly Scope[];
  readonly expiresAt: Date;
}

export type TokenValidation =
  | { readonly valid: true; readonly token: ValidatedToken }
  | { readonly valid: false; readonly reason: string };

export interface TokenValidator {
  validate(token: string): Promise<TokenValidation>;
}

export interface TokenValidatorOptions {
  /** The registry's service name: tokens must carry it in `aud`. */
  readonly audience: string;
  readonly issuers: readonly TrustedIssuer[];
  /** Tolerance for `exp` and `nbf`, for clocks that disagree; default 60 s as distribution. */
  readonly leewaySeconds?: number;
  /** Milliseconds since the epoch, for tests. */
  readonly now?: () => number;
}

/** Enough for any real chain; a longer one is refused before any signature is checked. */
const MAX_CHAIN_LENGTH = 10;

export function createTokenValidator(options: TokenValidatorOptions): TokenValidator {
  const byIssuer = new Map<string, { keys: Map<string, KeyObject>; roots: X509Certificate[] }>();
  for (const trusted of options.issuers) {
    const merged = byIssuer.get(trusted.issuer) ?? { keys: new Map<string, KeyObject>(), roots: [] };
    for (const [id, key] of trusted.keys) merged.keys.set(id, key);
    merged.roots.push(...trusted.roots);
    byIssuer.set(trusted.issuer, merged);
  }
  const now = options.now ?? Date.now;
  const leewaySeconds = options.leewaySeconds ?? 60;

  return {
    async validate(token: string): Promise<TokenValidation> {
      const invalid = (reason: string): TokenValidation => ({ valid: false, reason });
      let header: ProtectedHeaderParameters;
      let unverified: JWTPayload;
      try {
        header = decodeProtectedHeader(token);
        unverified = decodeJwt(token);
      } catch {
        return invalid('malformed token');
      }
      if (typeof header.alg !== 'string' || !ASYMMETRIC_ALGORITHMS.includes(header.alg)) {
        return invalid(`signature algorithm ${JSON.stringify(header.alg ?? null)} is not accepted`);
      }
      // The claimed issuer only picks which keys to try; the signature check decides.
      const trusted = typeof unverified.iss === 'string' ? byIssuer.get(unverified.iss) : undefined;
      if (trusted === undefined) return invalid('token issuer is not trusted');
      const currentDate = new Date(now());

      let key: KeyObject;
      if (header.x5c !== undefined) {
        const chain = verifyCertificateChain(header.x5c, trusted.roots, currentDate);
        if (typeof chain === 'string') return invalid(chain);
        key = chain;
      } else if (typeof header.kid === 'string') {
        const found = trusted.keys.get(header.kid);
        if (found === undefined) return invalid('token signed by an unknown key');
        key = found;
      } else {
        return invalid('token names no signing key (neither x5c nor kid)');
      }

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ASYMMETRIC_ALGORITHMS,
          issuer: unverified.iss,
          audience: options.audience,
          clockTolerance: leewaySeconds,
          currentDate,
          requiredClaims: ['exp'],
        }));
      } catch (err) {
        return invalid(describeVerificationError(err));
      }
      const access = accessClaim(payload.access);
      if (access === undefined) return invalid('token access claim is malformed');
      const subject = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
      return {
        valid: true,
        token: {
          issuer: unverified.iss ?? '',
          subject,
          access,
          expiresAt: new Date((payload.exp ?? 0) * 1000),
        },
      };
    },
  };
}

function describeVerificationError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'token issued for another service';
    if (err.claim === 'nbf') return 'token not valid yet';
    return `token claim "${err.claim}" is not valid`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is not valid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not accepted';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  // jose and WebCrypto refuse a key that does not fit the named algorithm (JOSENotSupported,
  // TypeError, DOMException): an RSA key for ES256, a P-384 key for ES256.
  return 'token algorithm does not fit its signing key';
}

/**
 * The signing key of an `x5c` chain (leaf first), or why the chain is refused: each certificate
 * must be issued and signed by the next, every one in its validity period, intermediates must be
 * CAs, and the last must be one of the roots or be signed by one. (Like Go's verification, which
 * distribution uses, a root from the bundle is trusted as given, CA flag or not.)
 */
export function verifyCertificateChain(
  x5c: unknown,
  roots: readonly X509Certificate[],
  now: Date,
): KeyObject | string {
  if (roots.length === 0) return 'this issuer is not configured with root certificates (x5c)';
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_CHAIN_LENGTH) return 'x5c chain malformed';
  const chain: X509Certificate[] = [];
  for (const encoded of x5c) {
    if (typeof encoded !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return 'x5c chain malformed';
    try {
      chain.push(new X509Certificate(Buffer.from(encoded, 'base64')));
    } catch {
      return 'x5c chain holds an unparseable certificate';
    }
  }
  for (const [index, certificate] of chain.entries()) {
    if (!withinValidity(certificate, now)) return `x5c certificate ${index} is outside its validity period`;
    const issuer = chain[index + 1];
    if (issuer === undefined) break;
    if (!issuer.ca) return `x5c certificate ${index + 1} is not a CA`;
    if (!certificate.checkIssued(issuer) || !certificate.verify(issuer.publicKey)) {
      return `x5c certificate ${index} is not signed by certificate ${index + 1}`;
    }
  }
  const last = chain[chain.length - 1];
  const leaf = chain[0];
  if (last === undefined || leaf === undefined) return 'x5c chain malformed';
  const anchored = roots.some(
    (root) =>
      withinValidity(root, now) &&
      (root.raw.equals(last.raw) || (last.checkIssued(root) && last.verify(root.publicKey))),
  );
  if (!anchored) return 'x5c chain does not lead to a trusted root certificate';
  return leaf.publicKey;
}

function withinValidity(certificate: X509Certificate, now: Date): boolean {
  const time = now.getTime();
  return Date.parse(certificate.validFrom) <= time && time <= Date.parse(certificate.validTo);
}

/**
 * The `access` claim as scopes. Entries of unknown types and unknown actions are ignored (a
 * newer issuer's extras grant nothing here); a claim of the wrong shape makes the token invalid.
 */
function accessClaim(claim: unknown): Scope[] | undefined {
  if (claim === undefined || claim === null) return [];
  if (!Array.isArray(claim)) return undefined;
  const scopes: Scope[] = [];
  for (const entry of claim) {
    if (typeof entry !== 'object' || entry === null) return undefined;
    const { type, name, actions } = entry as { type?: unknown; name?: unknown; actions?: unknown };
    if (typeof type !== 'string' || typeof name !== 'string') return undefined;
    let listed: readonly unknown[];
    if (Array.isArray(actions)) listed = actions;
    else if (actions === undefined || actions === null) listed = [];
    else return undefined;
    if (!isScopeType(type)) continue;
    const known: Action[] = [];
    for (const action of listed) {
      if (typeof action === 'string' && isAction(action) && !known.includes(action)) known.push(action);
    }
    scopes.push({ type, name, actions: known });
  }
  return scopes;
}
