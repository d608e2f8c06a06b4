import { readFile, mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { StrataError, errnoCode } from '../../errors.js';
import { withFileLock } from '../../store/lock.js';
import type { AccessRule } from './auth/access.js';
import { basicAuthorizer, tokenAuthorizer } from './auth/authorizers.js';
import { Htpasswd } from './auth/htpasswd.js';
import {
  createTokenEndpoint,
  createTokenValidator,
  loadOrCreateSigningKey,
  loadTrustedIssuer,
  TokenIssuer,
  type TrustedIssuer,
} from './auth/token.js';
import type { Authorizer, TokenEndpoint } from './auth/types.js';
import type { RegistryServerConfig } from './config.js';
import { collectGarbage } from './gc.js';
import { createRegistryHandler, type AccessLogEntry } from './http.js';
import { Registry } from './registry.js';
import type { StorageDriver } from './storage/driver.js';
import { FilesystemDriver } from './storage/filesystem.js';
import { MemoryDriver } from './storage/memory.js';

export const TOKEN_PATH = '/token';
/** In-flight requests get this long to finish on shutdown before their connections are cut. */
const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

export interface RegistryServerOptions {
  /** Operational lines (start, online GC, internal errors). */
  readonly log?: (line: string) => void;
  /** One JSON line per request; called only when the config keeps the access log on. */
  readonly accessLog?: (line: string) => void;
}

export interface RunningRegistryServer {
  /** `http://127.0.0.1:5000` — the address actually bound (port 0 in the config picks one). */
  readonly url: string;
  readonly port: number;
  readonly driver: StorageDriver;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/** The storage a config names; the filesystem root is created when missing. */
export async function openRegistryStorage(config: RegistryServerConfig): Promise<StorageDriver> {
  if (config.storage.driver === 'inmemory') return new MemoryDriver();
  await mkdir(config.storage.root, { recursive: true });
  // open() also clears temp files that writers killed mid-write left behind.
  return FilesystemDriver.open(config.storage.root);
}

/**
 * Starts `strata registry serve`: storage, auth, the HTTP(S) listener, the access log and, when
 * configured, online GC. Configuration mistakes (unreadable key or htpasswd file, port in use)
 * reject before anything listens.
 */
export async function startRegistryServer(
  config: RegistryServerConfig,
  options: RegistryServerOptions = {},
): Promise<RunningRegistryServer> {
  const log = options.log ?? (() => undefined);
  const driver = await openRegistryStorage(config);
  const registry = new Registry({ driver, deleteEnabled: config.deleteEnabled });
  const scheme = config.tls ? 'https' : 'http';
  const server = config.tls
    ? createHttpsServer({
        cert: await readConfigFile(config.tls.certificate, 'http.tls.certificate'),
        key: await readConfigFile(config.tls.key, 'http.tls.key'),
      })
    : createHttpServer();
  // A 1 GB layer over a slow link takes longer than Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  // Key, htpasswd and certificate files are read before anything listens, so a mistake there
  // leaves no port open; the default realm needs the bound address, known only after listen.
  let url = '';
  const { authorizer, tokenEndpoint } = await setUpAuth(config, () => url, scheme);

  const accessLog = config.accessLog ? options.accessLog : undefined;
  server.on(
    'request',
    createRegistryHandler({
      registry,
      ...(authorizer ? { authorizer } : {}),
      ...(tokenEndpoint ? { tokenEndpoint } : {}),
      ...(accessLog ? { onRequest: (entry: AccessLogEntry) => accessLog(JSON.stringify(entry)) } : {}),
      health: async () => {
        try {
          await driver.list('');
          return { ok: true };
        } catch {
          return { ok: false, detail: 'storage unreachable' };
        }
      },
      onError: (error, request) =>
        log(`internal error on ${request.method} ${request.path}: ${describeError(error)}`),
    }),
  );

  // The handler is in place before the port opens: no request can arrive to find none.
  const port = await listen(server, config.listen.host, config.listen.port);
  url = `${scheme}://${urlHost(config.listen.host)}:${port}`;
  const stopGc = scheduleGc(config, driver, log);
  return {
    url,
    port,
    driver,
    close: async (graceMs = DEFAULT_SHUTDOWN_GRACE_MS) => {
      stopGc();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

async function setUpAuth(
  config: RegistryServerConfig,
  url: () => string,
  scheme: 'http' | 'https',
): Promise<{ authorizer?: Authorizer; tokenEndpoint?: TokenEndpoint }> {
  const auth = config.auth;
  const rules: AccessRule[] | undefined =
    config.access.length > 0
      ? config.access.map((rule) => ({ ...rule, actions: [...rule.actions] }))
      : undefined;
  if (auth.kind === 'none') return {};
  if (auth.kind === 'htpasswd') {
    const users = await configured('auth.htpasswd.path', Htpasswd.load(auth.path));
    return {
      authorizer: basicAuthorizer({
        realm: auth.realm,
        users,
        ...(rules ? { rules } : {}),
        anonymousRead: config.anonymousRead,
      }),
    };
  }
  const issuers: TrustedIssuer[] = [];
  let tokenEndpoint: TokenEndpoint | undefined;
  if (auth.builtin) {
    const issuer = new TokenIssuer({
      name: auth.issuer,
      key: await loadOrCreateSigningKey(auth.builtin.key),
    });
    issuers.push(issuer.trusted());
    tokenEndpoint = createTokenEndpoint({
      path: TOKEN_PATH,
      service: auth.service,
      issuer,
      users:
        auth.builtin.htpasswd !== undefined
          ? await configured('auth.token.builtin.htpasswd', Htpasswd.load(auth.builtin.htpasswd))
          : undefined,
      rules,
      anonymousRead: config.anonymousRead,
      expiresInSeconds: auth.builtin.expiresInSeconds,
    });
  }
  if (auth.rootCertBundle !== undefined || auth.jwks !== undefined || auth.publicKey !== undefined) {
    issuers.push(
      await configured(
        'auth.token',
        loadTrustedIssuer({
          issuer: auth.issuer,
          ...(auth.rootCertBundle !== undefined ? { rootCertBundle: auth.rootCertBundle } : {}),
          ...(auth.jwks !== undefined ? { jwks: auth.jwks } : {}),
          ...(auth.publicKey !== undefined ? { publicKey: auth.publicKey } : {}),
        }),
      ),
    );
  }
  return {
    authorizer: tokenAuthorizer({
      realm: auth.realm ?? ((request) => `${scheme}://${realmHost(request.host, url())}${TOKEN_PATH}`),
      service: auth.service,
      validator: createTokenValidator({ audience: auth.service, issuers }),
      anonymousRead: config.anonymousRead,
    }),
    ...(tokenEndpoint ? { tokenEndpoint } : {}),
  };
}

/** A file a config key names could not be used: the message says which key. */
async function configured<T>(key: string, loading: Promise<T>): Promise<T> {
  try {
    return await loading;
  } catch (err) {
    if (err instanceof StrataError) throw new StrataError(err.code, `${key}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * One collector at a time per storage: two would each quarantine what the other is checking.
 * For a filesystem root the lock is a directory beside the data (dot-names are invisible to the
 * driver); in-memory storage lives in one process, where the running flag below is enough.
 */
export async function withGcLock<T>(config: RegistryServerConfig, work: () => Promise<T>): Promise<T> {
  if (config.storage.driver !== 'filesystem') return work();
  return withFileLock(join(config.storage.root, '.gc.lock'), work, { timeoutMs: 5_000 });
}

/** Online GC every `gc.interval`; a run still going when the next is due makes it skip. */
function scheduleGc(
  config: RegistryServerConfig,
  driver: StorageDriver,
  log: (line: string) => void,
): () => void {
  const interval = config.gc.intervalMs;
  if (interval === undefined) return () => undefined;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    withGcLock(config, () =>
      collectGarbage(driver, {
        gracePeriodMs: config.gc.gracePeriodMs,
        uploadPurgeAgeMs: config.gc.uploadPurgeAgeMs,
        log,
      }),
    )
      .catch((err: unknown) => log(`online gc failed: ${describeError(err)}`))
      .finally(() => {
        running = false;
      });
  }, interval);
  timer.unref();
  return () => clearInterval(timer);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error): void => {
      const code = errnoCode(err);
      const where = `${urlHost(host)}:${port}`;
      reject(
        code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL'
          ? new StrataError(
              'INVALID_ARGUMENT',
              `cannot listen on ${where}: ${code === 'EADDRINUSE' ? 'address already in use' : code}`,
            )
          : err,
      );
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * The built-in issuer's host as the client named the registry (so a registry listening on every
 * interface sends each client to an address it can reach); the listening address when the Host
 * header is absent or not a plain host[:port].
 */
function realmHost(host: string | undefined, url: string): string {
  if (host !== undefined && /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host)) return host;
  return new URL(url).host;
}

/** 0.0.0.0 and :: mean every interface; a client on this machine reaches them at loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

async function readConfigFile(path: string, key: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${key}: cannot read ${path}: ${errnoCode(err) ?? describeError(err)}`,
    );
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
