import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { StrataError } from '../../errors.js';
import { trustedCertificates } from '../../trust.js';
import { Authenticator } from './auth.js';
import { CredentialStore, type Credentials } from './credentials.js';
import { RETRIABLE_STATUS, RegistryError, isRetriable, networkError, parseErrorBody } from './errors.js';
import { resolveEndpoint, withCa, type HostOptions, type RegistryEndpoint } from './hosts.js';

export interface ClientOptions extends HostOptions {
  /** Use these instead of looking in the Docker config (what `login` verifies). */
  credentials?: Credentials;
  /** Docker config directory (default `$DOCKER_CONFIG`, else `~/.docker`). */
  dockerConfigDir?: string;
  /** Retries after a 5xx or a dropped connection, with exponential backoff (default 4). */
  retries?: number;
  /** First backoff delay; doubled each retry, capped at 8 s, with jitter (default 250 ms). */
  retryDelayMs?: number;
  signal?: AbortSignal;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  method: HttpMethod;
  /** A path under the registry (`/v2/…`) or an absolute URL (upload locations). */
  target: string;
  headers?: Record<string, string>;
  /** A factory, so that a retry or an auth round trip can send the body again. */
  body?: () => Buffer | Readable;
  /** Token scopes the request needs. */
  scopes: readonly string[];
  /** Names the request in errors: `manifest localhost:5000/foo:latest`. */
  what: string;
  /** Statuses that are an answer rather than an error. */
  expect: readonly number[];
  /**
   * False for upload steps: a registry appends what a failed PATCH or PUT delivered to the
   * session, so resending into it would corrupt the blob; the caller restarts the upload instead.
   */
  retry?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered, after redirects: relative Locations resolve against it. */
  url: URL;
}

const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 64 * 1024;
/** A Retry-After longer than this (Docker Hub's pull limit says hours) is reported, not waited for. */
const MAX_RETRY_AFTER_SECONDS = 10;
const USER_AGENT = 'strata/0.1 (+https://github.com/strata)';

let defaultAgent: Agent | undefined;

/** Pool for hosts other than the registry's own (redirects to blob storage, token realms elsewhere). */
function sharedAgent(): Agent {
  defaultAgent ??= new Agent({ connections: 16, connect: withCa(trustedCertificates()) });
  return defaultAgent;
}

export function header(
  response: { headers: Record<string, string | string[] | undefined> },
  name: string,
): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * HTTP to one registry: picks HTTPS or (for insecure hosts) falls back to HTTP, follows redirects
 * without leaking credentials to other hosts, authenticates (see auth.ts), and retries what a
 * retry can fix — 5xx answers and dropped connections — a bounded number of times.
 */
export class RegistryClient {
  readonly registry: string;
  readonly auth: Authenticator;
  /** How many times a failed step is retried (also used by pull and push for whole transfers). */
  readonly retries: number;
  private readonly retryDelayMs: number;
  private chosen: RegistryEndpoint['candidates'][number] | undefined;
  private credentialsLoaded: Promise<Credentials | undefined> | undefined;

  private constructor(
    private readonly endpoint: RegistryEndpoint,
    private readonly options: ClientOptions,
  ) {
    this.registry = endpoint.registry;
    this.retries = options.retries ?? 4;
    this.retryDelayMs = options.retryDelayMs ?? 250;
    this.auth = new Authenticator(
      this.registry,
      () => this.credentials(),
      (url, init) => this.tokenRequest(url, init),
    );
    if (endpoint.candidates.length === 1) this.chosen = endpoint.candidates[0];
  }

  static async create(registry: string, options: ClientOptions = {}): Promise<RegistryClient> {
    return new RegistryClient(await resolveEndpoint(registry, options), options);
  }

  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  /** The base URL in use (known after the first exchange). */
  get baseUrl(): string {
    return (this.chosen ?? this.endpoint.candidates[0])?.baseUrl ?? '';
  }

  credentials(): Promise<Credentials | undefined> {
    if (this.options.credentials !== undefined) return Promise.resolve(this.options.credentials);
    this.credentialsLoaded ??= new CredentialStore(this.options.dockerConfigDir).get(this.registry);
    return this.credentialsLoaded;
  }

  /**
   * `GET /v2/`: finds which scheme answers and what authentication the registry wants, so that
   * later requests (uploads above all) carry credentials from the first byte.
   */
  async ping(): Promise<void> {
    const response = await this.request({
      method: 'GET',
      target: '/v2/',
      scopes: [],
      what: `registry ${this.registry}`,
      expect: [200],
    });
    await response.body.dump();
  }

  /** Sends a request, with authentication, redirects and retries; see the class comment. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    let authRounds = 0;
    const retries = req.retry === false ? 0 : this.retries;
    for (let attempt = 0; ; attempt++) {
      let response: RegistryResponse;
      try {
        response = await this.exchange(req);
      } catch (err) {
        this.options.signal?.throwIfAborted();
        if (isRetriable(err) && attempt < retries) {
          await this.backoff(attempt);
          continue;
        }
        if (err instanceof StrataError) throw err;
        throw networkError(`${req.what}: cannot reach ${this.registry} (${this.baseUrl})`, err);
      }
      if (response.status === 401 && authRounds < 2) {
        const challenge = header(response, 'www-authenticate');
        const refused = await this.errorFor(req, response);
        if (await this.auth.unauthorized(challenge, req.scopes)) {
          authRounds++;
          attempt--;
          continue;
        }
        throw refused;
      }
      if (req.expect.includes(response.status)) return response;
      const error = await this.errorFor(req, response);
      const waitable =
        error.status === 429 &&
        error.retryAfterSeconds !== undefined &&
        error.retryAfterSeconds <= MAX_RETRY_AFTER_SECONDS;
      if ((RETRIABLE_STATUS.has(error.status) || waitable) && attempt < retries) {
        await this.backoff(attempt, waitable ? error.retryAfterSeconds : undefined);
        continue;
      }
      throw error;
    }
  }

  private async errorFor(req: RegistryRequest, response: RegistryResponse): Promise<RegistryError> {
    const text = await readLimited(response.body, MAX_ERROR_BODY);
    const retryAfter = Number(header(response, 'retry-after'));
    let hint: string | undefined;
    if (response.status === 401) {
      hint =
        (await this.credentials()) === undefined
          ? `log in with strata login ${this.registry}`
          : `check the credentials stored for ${this.registry}`;
    }
    return new RegistryError(req.what, response.status, parseErrorBody(text), {
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
      hint,
    });
  }

  /** Waits before retry number `attempt` (0-based). */
  async backoff(attempt: number, seconds?: number): Promise<void> {
    const exponential = Math.min(this.retryDelayMs * 2 ** attempt, 8_000);
    // Jitter keeps many parallel layer downloads from retrying in lockstep.
    const delay = seconds !== undefined ? seconds * 1000 : exponential * (0.5 + Math.random() / 2);
    await sleep(delay, undefined, { signal: this.options.signal });
  }

  /** One round: the right endpoint, the auth header, redirects followed. */
  private async exchange(req: RegistryRequest): Promise<RegistryResponse> {
    const authorization = await this.auth.authorization(req.scopes);
    const candidates = this.chosen !== undefined ? [this.chosen] : this.endpoint.candidates;
    let lastError: unknown;
    for (const candidate of candidates) {
      const url = new URL(req.target, candidate.baseUrl);
      try {
        const response = await this.follow(req, url, candidate, authorization);
        this.chosen = candidate;
        return response;
      } catch (err) {
        this.options.signal?.throwIfAborted();
        lastError = err;
        // An absolute target (an upload location) is bound to its scheme: no fallback.
        if (/^https?:/i.test(req.target)) break;
      }
    }
    throw lastError;
  }

  private async follow(
    req: RegistryRequest,
    start: URL,
    candidate: RegistryEndpoint['candidates'][number],
    authorization: string | undefined,
  ): Promise<RegistryResponse> {
    let url = start;
    const origin = new URL(candidate.baseUrl).origin;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === origin;
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
      // Credentials for the registry never go to the storage host it redirects to.
      if (authorization !== undefined && sameOrigin) headers.authorization = authorization;
      const response = await request(url, {
        method: req.method,
        headers,
        body: hop === 0 ? req.body?.() : undefined,
        dispatcher: sameOrigin ? candidate.dispatcher : sharedAgent(),
        signal: this.options.signal,
        headersTimeout: this.endpoint.timeouts.headersMs,
        bodyTimeout: this.endpoint.timeouts.bodyMs,
      });
      const location = header(response, 'location');
      const redirect = [301, 302, 303, 307, 308].includes(response.statusCode) && location !== undefined;
      if (!redirect || !(req.method === 'GET' || req.method === 'HEAD') || hop >= MAX_REDIRECTS) {
        return { status: response.statusCode, headers: response.headers, body: response.body, url };
      }
      await response.body.dump();
      url = new URL(location, url);
    }
  }

  private async tokenRequest(
    url: URL,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  ): Promise<{ status: number; text: string }> {
    const base = this.chosen ?? this.endpoint.candidates[0];
    const dispatcher =
      base !== undefined && new URL(base.baseUrl).origin === url.origin ? base.dispatcher : sharedAgent();
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await request(url, {
          method: init.method,
          headers: { 'user-agent': USER_AGENT, ...init.headers },
          body: init.body,
          dispatcher,
          signal: this.options.signal,
        });
        const text = await readLimited(response.body, MAX_ERROR_BODY);
        if (RETRIABLE_STATUS.has(response.statusCode) && attempt < this.retries) {
          await this.backoff(attempt);
          continue;
        }
        return { status: response.statusCode, text };
      } catch (err) {
        this.options.signal?.throwIfAborted();
        if (isRetriable(err) && attempt < this.retries) {
          await this.backoff(attempt);
          continue;
        }
        throw networkError(`cannot reach the token server ${url.origin} of ${this.registry}`, err);
      }
    }
  }
}

/** Reads a body as text, at most `limit` bytes (the rest is discarded). */
export async function readLimited(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    if (size < limit) chunks.push(bytes.subarray(0, limit - size));
    size += bytes.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a whole body that must stay small (manifests), failing past `limit` bytes. */
export async function readBounded(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    size += bytes.length;
    if (size > limit) {
      body.destroy();
      throw new StrataError('INVALID_MANIFEST', `${what} is larger than ${limit} bytes`);
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks);
}
