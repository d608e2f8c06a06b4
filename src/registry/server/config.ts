import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { StrataError, errnoCode } from '../../errors.js';
import { parseGoDuration } from '../../oci/duration.js';

/**
 * `strata registry serve`'s settings. The file is distribution's config.yml where the two
 * overlap (a team's existing `registry:2` config works as it is: http.addr, http.tls,
 * storage.filesystem/inmemory/delete/maintenance, auth.htpasswd, auth.token), plus strata's own
 * keys: auth.token.builtin (serve the token endpoint), auth.anonymousread, auth.access (per
 * repository rules) and gc (online collection). Environment variables override the file the way
 * distribution's do (REGISTRY_HTTP_ADDR sets http.addr); flags override both.
 */
export interface RegistryServerConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly storage:
    { readonly driver: 'filesystem'; readonly root: string } | { readonly driver: 'inmemory' };
  readonly deleteEnabled: boolean;
  readonly tls?: { readonly certificate: string; readonly key: string };
  readonly auth: AuthConfig;
  /** Requests without credentials may pull (and list tags). */
  readonly anonymousRead: boolean;
  readonly access: readonly AccessRuleConfig[];
  readonly accessLog: boolean;
  readonly gc: {
    /** Online collection every so often while serving; undefined: only `strata registry gc`. */
    readonly intervalMs?: number;
    readonly gracePeriodMs: number;
    readonly uploadPurgeAgeMs: number;
  };
  /** The config file read, for messages. */
  readonly source?: string;
}

export type AuthConfig =
  | { readonly kind: 'none' }
  | { readonly kind: 'htpasswd'; readonly realm: string; readonly path: string }
  | {
      readonly kind: 'token';
      /** The token URL clients are sent to; defaults to the built-in endpoint when there is one. */
      readonly realm?: string;
      readonly service: string;
      readonly issuer: string;
      /** Trust tokens from an external issuer: its certificate bundle (x5c) or its JWKS file. */
      readonly rootCertBundle?: string;
      readonly jwks?: string;
      /** … or its public key (PEM), found by `kid`. */
      readonly publicKey?: string;
      readonly builtin?: {
        /** ES256 key (PEM); generated there on first start when missing. */
        readonly key: string;
        /** Users allowed to get tokens with a password; none: anonymous tokens only. */
        readonly htpasswd?: string;
        readonly expiresInSeconds: number;
      };
    };

export interface AccessRuleConfig {
  /** A user name, `*` (any authenticated user) or `anonymous`. */
  readonly account: string;
  /** `registry` with repository `catalog` grants `GET /v2/_catalog`; default `repository`. */
  readonly type?: 'repository' | 'registry';
  /** Glob: `*` within one path component, `**` across components. */
  readonly repository: string;
  readonly actions: ReadonlyArray<'pull' | 'push' | 'delete' | '*'>;
}

/** What the command line can say; each wins over the file and the environment. */
export interface RegistryServerFlags {
  addr?: string;
  root?: string;
  tlsCert?: string;
  tlsKey?: string;
  htpasswd?: string;
  anonymousRead?: boolean;
  gcInterval?: string;
}

export const DEFAULT_REGISTRY_ADDR = ':5000';
const ENV_PREFIX = 'REGISTRY_';

const duration = z.string().refine((text) => parseGoDuration(text) !== undefined, {
  message: 'expected a duration like 30s, 10m or 1h',
});
const path = z.string().min(1);

const fileSchema = z
  .object({
    version: z.union([z.string(), z.number()]).optional(),
    log: z
      .object({
        accesslog: z.object({ disabled: z.boolean().optional() }).passthrough().optional(),
      })
      .passthrough()
      .optional(),
    http: z
      .object({
        addr: z.string().optional(),
        tls: z.object({ certificate: path, key: path }).passthrough().optional(),
      })
      .passthrough()
      .optional(),
    storage: z
      .object({
        filesystem: z.object({ rootdirectory: path }).passthrough().optional(),
        inmemory: z.union([z.object({}).passthrough(), z.null()]).optional(),
        delete: z.object({ enabled: z.boolean() }).optional(),
        maintenance: z
          .object({
            uploadpurging: z
              .object({ enabled: z.boolean().optional(), age: duration.optional() })
              .passthrough()
              .optional(),
          })
          .passthrough()
          .optional(),
      })
      .passthrough()
      .optional(),
    auth: z
      .object({
        htpasswd: z.object({ realm: z.string().optional(), path }).optional(),
        token: z
          .object({
            realm: z.string().optional(),
            service: z.string().min(1),
            issuer: z.string().min(1),
            rootcertbundle: path.optional(),
            jwks: path.optional(),
            publickey: path.optional(),
            builtin: z
              .object({ key: path.optional(), htpasswd: path.optional(), expiration: duration.optional() })
              .optional(),
          })
          .optional(),
        anonymousread: z.boolean().optional(),
        access: z
          .array(
            z.object({
              account: z.string().min(1),
              type: z.enum(['repository', 'registry']).optional(),
              repository: z.string().min(1),
              actions: z.array(z.enum(['pull', 'push', 'delete', '*'])).min(1),
            }),
          )
          .optional(),
      })
      .optional(),
    gc: z.object({ interval: duration.optional(), grace: duration.optional() }).optional(),
  })
  .passthrough();

type FileConfig = z.infer<typeof fileSchema>;

/**
 * Reads the file (when given), applies REGISTRY_* variables and the flags, and checks the
 * result. Every mistake is one StrataError naming the file, line and key.
 */
export async function loadRegistryServerConfig(options: {
  file?: string;
  flags?: RegistryServerFlags;
  env?: NodeJS.ProcessEnv;
  defaultRoot: string;
}): Promise<RegistryServerConfig> {
  let text = '';
  if (options.file !== undefined) {
    try {
      text = await readFile(options.file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new StrataError('INVALID_ARGUMENT', `config file ${options.file}: no such file`);
      throw err;
    }
  }
  return parseRegistryServerConfig(text, {
    source: options.file,
    flags: options.flags ?? {},
    env: options.env ?? process.env,
    defaultRoot: options.defaultRoot,
  });
}

export function parseRegistryServerConfig(
  text: string,
  options: { source?: string; flags: RegistryServerFlags; env: NodeJS.ProcessEnv; defaultRoot: string },
): RegistryServerConfig {
  const source = options.source ?? 'config';
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines });
  const syntax = document.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0]?.line;
    const reason = (syntax.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw configError(source, line, `invalid YAML: ${reason}`);
  }
  if (document.contents !== null && !isMap(document.contents))
    throw configError(source, 1, 'expected a mapping (http:, storage:, auth:, …)');
  // Variables and flags are applied to the document so that a wrong value names its key; an
  // empty (or comments-only) file gives them an empty mapping to go into.
  const settings = document.contents === null ? parseDocument('{}') : document;
  applyEnvironment(settings, options.env);
  applyFlags(settings, options.flags);
  const parsed = fileSchema.safeParse(settings.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keys = issue.path.map(String);
    throw configError(
      source,
      lineOfKey(settings, lines, keys),
      `${keys.join('.') || '(top)'}: ${issue.message}`,
    );
  }
  return resolve(parsed.data, { source, lineOf: (keys) => lineOfKey(settings, lines, keys) }, options);
}

/** Where a config mistake is: the file, and the line of a key (when the file set it). */
interface Where {
  readonly source: string;
  readonly lineOf: (keys: readonly string[]) => number | undefined;
}

/** The line of the key itself (`auth:`) when the path ends at a mapping key, else of the value. */
function lineOfKey(document: Document, lines: LineCounter, keys: readonly string[]): number | undefined {
  const parent = keys.length > 1 ? document.getIn(keys.slice(0, -1), true) : document.contents;
  const last = keys.at(-1);
  if (isMap(parent) && last !== undefined) {
    const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === last);
    const keyRange = pair && isScalar(pair.key) ? pair.key.range : undefined;
    if (keyRange) return lines.linePos(keyRange[0]).line;
  }
  const node = document.getIn(keys, true) as { range?: [number, number, number] } | undefined;
  return node?.range ? lines.linePos(node.range[0]).line : undefined;
}

/** REGISTRY_HTTP_TLS_CERTIFICATE=… sets http.tls.certificate (distribution's rule). */
function applyEnvironment(document: Document, env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const keys = name.slice(ENV_PREFIX.length).toLowerCase().split('_');
    if (keys.some((key) => key === '')) continue;
    document.setIn(keys, scalarValue(value));
  }
}

/** Environment values are YAML scalars: `true`, `5000` and `1h` read as they would in the file. */
function scalarValue(value: string): unknown {
  const scalar = parseDocument(value).contents;
  return isScalar(scalar) ? scalar.value : value;
}

function applyFlags(document: Document, flags: RegistryServerFlags): void {
  if (flags.addr !== undefined) document.setIn(['http', 'addr'], flags.addr);
  if (flags.root !== undefined) {
    if (document.hasIn(['storage', 'inmemory'])) document.deleteIn(['storage', 'inmemory']);
    document.setIn(['storage', 'filesystem', 'rootdirectory'], flags.root);
  }
  if (flags.tlsCert !== undefined) document.setIn(['http', 'tls', 'certificate'], flags.tlsCert);
  if (flags.tlsKey !== undefined) document.setIn(['http', 'tls', 'key'], flags.tlsKey);
  if (flags.htpasswd !== undefined) document.setIn(['auth', 'htpasswd', 'path'], flags.htpasswd);
  if (flags.anonymousRead !== undefined) document.setIn(['auth', 'anonymousread'], flags.anonymousRead);
  if (flags.gcInterval !== undefined) document.setIn(['gc', 'interval'], flags.gcInterval);
}

function resolve(file: FileConfig, where: Where, options: { defaultRoot: string }): RegistryServerConfig {
  const source = where.source;
  const listen = parseListenAddress(
    file.http?.addr ?? DEFAULT_REGISTRY_ADDR,
    source,
    where.lineOf(['http', 'addr']),
  );
  const storage = file.storage?.filesystem
    ? { driver: 'filesystem' as const, root: file.storage.filesystem.rootdirectory }
    : file.storage?.inmemory !== undefined
      ? { driver: 'inmemory' as const }
      : { driver: 'filesystem' as const, root: options.defaultRoot };
  const tls = file.http?.tls ? { certificate: file.http.tls.certificate, key: file.http.tls.key } : undefined;
  const auth = resolveAuth(file, where, storage);
  if (auth.kind === 'none' && file.auth?.access !== undefined)
    throw configError(
      source,
      where.lineOf(['auth', 'access']),
      'auth.access: rules need auth.htpasswd or auth.token (without authentication nobody can be told apart)',
    );
  const millis = (text: string | undefined, fallback: number): number =>
    text === undefined ? fallback : Math.round((parseGoDuration(text) as number) / 1e6);
  const purging = file.storage?.maintenance?.uploadpurging;
  const gcInterval = file.gc?.interval;
  return {
    listen,
    storage,
    deleteEnabled: file.storage?.delete?.enabled ?? true,
    ...(tls ? { tls } : {}),
    auth,
    anonymousRead: file.auth?.anonymousread ?? false,
    access: file.auth?.access ?? [],
    accessLog: file.log?.accesslog?.disabled !== true,
    gc: {
      ...(gcInterval !== undefined && millis(gcInterval, 0) > 0 ? { intervalMs: millis(gcInterval, 0) } : {}),
      gracePeriodMs: millis(file.gc?.grace, 3_600_000),
      uploadPurgeAgeMs:
        purging?.enabled === false ? Number.POSITIVE_INFINITY : millis(purging?.age, 7 * 86_400_000),
    },
    ...(source !== 'config' ? { source } : {}),
  };
}

function resolveAuth(file: FileConfig, where: Where, storage: RegistryServerConfig['storage']): AuthConfig {
  const source = where.source;
  const htpasswd = file.auth?.htpasswd;
  const token = file.auth?.token;
  if (htpasswd && token)
    throw configError(source, where.lineOf(['auth']), 'auth: choose htpasswd or token, not both');
  if (htpasswd) return { kind: 'htpasswd', realm: htpasswd.realm ?? 'strata-registry', path: htpasswd.path };
  if (!token) return { kind: 'none' };
  if (!token.builtin && !token.rootcertbundle && !token.jwks && !token.publickey)
    throw configError(
      source,
      where.lineOf(['auth', 'token']),
      'auth.token: needs builtin, rootcertbundle, jwks or publickey to verify tokens',
    );
  if (!token.builtin && token.realm === undefined)
    throw configError(
      source,
      where.lineOf(['auth', 'token']),
      'auth.token.realm: required for an external token issuer',
    );
  const builtin = token.builtin;
  let key = builtin?.key;
  if (builtin && key === undefined) {
    if (storage.driver !== 'filesystem')
      throw configError(
        source,
        where.lineOf(['auth', 'token', 'builtin']),
        'auth.token.builtin.key: required with in-memory storage',
      );
    key = `${storage.root}/token-signing-key.pem`;
  }
  return {
    kind: 'token',
    ...(token.realm !== undefined ? { realm: token.realm } : {}),
    service: token.service,
    issuer: token.issuer,
    ...(token.rootcertbundle !== undefined ? { rootCertBundle: token.rootcertbundle } : {}),
    ...(token.jwks !== undefined ? { jwks: token.jwks } : {}),
    ...(token.publickey !== undefined ? { publicKey: token.publickey } : {}),
    ...(builtin && key !== undefined
      ? {
          builtin: {
            key,
            ...(builtin.htpasswd !== undefined ? { htpasswd: builtin.htpasswd } : {}),
            expiresInSeconds: Math.max(
              60,
              Math.round((parseGoDuration(builtin.expiration ?? '5m') as number) / 1e9),
            ),
          },
        }
      : {}),
  };
}

/** `:5000`, `0.0.0.0:5000`, `127.0.0.1:5000`, `[::1]:5000`, `localhost:5000`. */
export function parseListenAddress(
  text: string,
  source = 'addr',
  line?: number,
): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535)
    throw configError(source, line, `http.addr: invalid address "${text}": expected HOST:PORT or :PORT`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function configError(source: string, line: number | undefined, message: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `${source}${line !== undefined ? `:${line}` : ''}: ${message}`);
}
