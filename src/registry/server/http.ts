/**
 * The distribution protocol (OCI distribution spec 1.1) over node:http, in front of a Registry.
 * Repository names contain slashes, so routing is ours (names.ts). Bodies stream end to end with
 * backpressure: a blob upload or download never sits in memory; only manifests (≤ 4 MiB) and
 * token forms are read whole.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Digest } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import type { Authorizer, Scope, TokenEndpoint } from './auth/types.js';
import {
  RegistryError,
  UploadRangeError,
  asRegistryError,
  digestInvalid,
  isRegistryError,
  manifestInvalid,
  nameInvalid,
  unsupported,
  uploadUnknown,
} from './errors.js';
import { checkDigest, isRepositoryName, isUploadId, parseRoute, type Route } from './names.js';
import type { ChunkRange, Registry } from './registry.js';

/** One line of the access log, given to `onRequest` when the response is done (or abandoned). */
export interface AccessLogEntry {
  /** When the request arrived (ISO 8601). */
  readonly time: string;
  readonly method: string;
  /** The path, and only query parameters known to hold no secret. */
  readonly path: string;
  /** The status sent; 499 (nginx's "client closed request") when the client left before it. */
  readonly status: number;
  /** Body bytes sent. */
  readonly bytes: number;
  readonly durationMs: number;
  readonly remote?: string;
  /** The authenticated user, when there is one. */
  readonly subject?: string;
  readonly userAgent?: string;
}

export interface RegistryHandlerOptions {
  readonly registry: Registry;
  /** Absent: every request is allowed (no authentication configured). */
  readonly authorizer?: Authorizer;
  /** The built-in token issuer, served at its own path. */
  readonly tokenEndpoint?: TokenEndpoint;
  readonly onRequest?: (entry: AccessLogEntry) => void;
  /** `GET /healthz`: 200 when it says ok (or when absent), 503 otherwise. */
  readonly health?: () => Promise<{ ok: boolean; detail?: string }>;
  /** Internal failures (answered with a generic 500): the place to log them with their cause. */
  readonly onError?: (error: unknown, request: { readonly method: string; readonly path: string }) => void;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const ALLOWED_METHODS: Readonly<Record<Route['kind'], readonly Method[]>> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET', 'HEAD'],
  blob: ['GET', 'HEAD', 'DELETE'],
  uploads: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  tags: ['GET', 'HEAD'],
  referrers: ['GET', 'HEAD'],
};

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;
const JSON_TYPE = 'application/json; charset=utf-8';
const DEFAULT_CATALOG_PAGE = 1000;
const MAX_CATALOG_PAGE = 10_000;
const MAX_TOKEN_FORM_BYTES = 64 * 1024;
const MAX_DRAINED_BYTES = 256 * 1024;
/** How long a connection closed on a body still coming keeps reading before it is dropped. */
const LINGER_MS = 500;
/** Query parameters safe to log; anything else (a token server's, a future signed URL's) is not. */
const LOGGED_PARAMETERS: ReadonlySet<string> = new Set([
  'digest',
  'mount',
  'from',
  'n',
  'last',
  'artifactType',
]);
const NO_QUERY = new URLSearchParams();

/** The state of one request/response pair as it goes through the handler. */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly head: boolean;
  pathname: string;
  query: URLSearchParams;
  bytes: number;
  subject?: string;
  /** Set on upload-session routes, so that a 416 can say where the session stands. */
  uploadLocation?: string;
  /** For `POST …/uploads/?mount=&from=`: whether the caller may read `from`. */
  mayReadMountSource?: boolean;
}

export function createRegistryHandler(
  options: RegistryHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { registry, authorizer, tokenEndpoint, onRequest, health, onError } = options;

  const authorize = async (exchange: Exchange, route: Route): Promise<boolean> => {
    if (authorizer === undefined) {
      exchange.mayReadMountSource = true;
      return true;
    }
    const request = {
      ...(exchange.req.headers.authorization !== undefined
        ? { authorization: exchange.req.headers.authorization }
        : {}),
      ...(exchange.req.socket.remoteAddress !== undefined
        ? { remoteAddress: exchange.req.socket.remoteAddress }
        : {}),
      ...(exchange.req.headers.host !== undefined ? { host: exchange.req.headers.host } : {}),
    };
    const needed = scopesFor(route, exchange.method);
    const mountSource = mountSourceScope(route, exchange.query);
    let decision = await authorizer.authorize(request, mountSource ? [...needed, mountSource] : needed);
    exchange.mayReadMountSource = decision.kind === 'allow';
    if (decision.kind === 'deny' && mountSource !== undefined) {
      // Without read access to `from` the request is still a valid upload start: fall back to one.
      const withoutMount = await authorizer.authorize(request, needed);
      if (withoutMount.kind === 'allow') decision = withoutMount;
    }
    if (decision.kind === 'allow') {
      if (decision.subject !== undefined) exchange.subject = decision.subject;
      return true;
    }
    const error = new RegistryError(decision.code, decision.status, decision.message);
    sendJson(
      exchange,
      error.status,
      error.toJSON(),
      decision.challenge ? { 'WWW-Authenticate': decision.challenge } : {},
    );
    return false;
  };

  const handle = async (exchange: Exchange): Promise<void> => {
    const { pathname } = exchange;
    // Node removes only the chunked framing: a gzip-coded body would reach a blob as its bytes.
    const coding = exchange.req.headers['transfer-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked')
      throw unsupported(`unsupported transfer encoding "${coding}"`, 501);
    if (pathname === '/healthz') return serveHealth(exchange, health);
    if (tokenEndpoint !== undefined && pathname === tokenEndpoint.path)
      return serveToken(exchange, tokenEndpoint);
    const route = parseRoute(pathname);
    if (route === undefined) throw new RegistryError('UNSUPPORTED', 404, 'no such endpoint');
    const allowed = ALLOWED_METHODS[route.kind];
    if (!allowed.includes(exchange.method as Method)) {
      const error = unsupported(`${exchange.method} is not supported here`);
      sendJson(exchange, error.status, error.toJSON(), { Allow: allowed.join(', ') });
      return;
    }
    if ('name' in route && !isRepositoryName(route.name)) throw nameInvalid();
    if (!(await authorize(exchange, route))) return;
    switch (route.kind) {
      case 'base':
        return sendJson(exchange, 200, {});
      case 'catalog':
        return serveCatalog(exchange, registry);
      case 'blob':
        return serveBlob(exchange, registry, route.name, route.digest);
      case 'uploads':
        return startUpload(exchange, registry, route.name);
      case 'upload':
        return serveUpload(exchange, registry, route.name, route.id);
      case 'manifest':
        return serveManifest(exchange, registry, route.name, route.reference);
      case 'tags':
        return serveTags(exchange, registry, route.name);
      case 'referrers':
        return serveReferrers(exchange, registry, route.name, route.digest);
    }
  };

  const fail = (exchange: Exchange, err: unknown): void => {
    const { req, res } = exchange;
    const abandoned = req.destroyed && !req.complete;
    if (res.headersSent || res.destroyed || abandoned) {
      // Mid-stream or the client is gone: nothing can be said any more, only cut the connection.
      if (!isRegistryError(err) && !abandoned && !res.destroyed) report(err);
      res.destroy();
      return;
    }
    if (!isRegistryError(err)) report(err);
    const error = asRegistryError(err);
    const headers: OutgoingHttpHeaders = {};
    if (error instanceof UploadRangeError && exchange.uploadLocation !== undefined) {
      Object.assign(headers, uploadHeaders(exchange.uploadLocation, error.offset));
    }
    sendJson(exchange, error.status, error.toJSON(), headers);

    function report(cause: unknown): void {
      try {
        onError?.(cause, { method: exchange.method, path: loggedPath(exchange) });
      } catch {
        // A failing logger must not take the response down with it.
      }
    }
  };

  return (req, res) => {
    const startedAt = performance.now();
    const [pathname, query] = splitUrl(req.url ?? '/');
    const method = req.method ?? 'GET';
    const exchange: Exchange = { req, res, method, head: method === 'HEAD', pathname, query, bytes: 0 };
    if (onRequest !== undefined) {
      const time = new Date().toISOString();
      res.once('close', () => {
        const userAgent = req.headers['user-agent'];
        try {
          onRequest({
            time,
            method,
            path: loggedPath(exchange),
            status: res.headersSent ? res.statusCode : 499,
            bytes: exchange.bytes,
            durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
            ...(req.socket.remoteAddress !== undefined ? { remote: req.socket.remoteAddress } : {}),
            ...(exchange.subject !== undefined ? { subject: exchange.subject } : {}),
            ...(userAgent !== undefined ? { userAgent } : {}),
          });
        } catch {
          // The access log is an observer; it cannot fail a request.
        }
      });
    }
    handle(exchange).catch((err: unknown) => fail(exchange, err));
  };
}

// -------------------------------------------------------------------------------------------------
// Endpoints

async function serveBlob(
  exchange: Exchange,
  registry: Registry,
  name: string,
  digestText: string,
): Promise<void> {
  const digest = requireDigest(digestText);
  if (exchange.method === 'DELETE') {
    await registry.deleteBlob(name, digest);
    return send(exchange, 202, { 'Docker-Content-Digest': digest });
  }
  const blob = await registry.getBlob(name, digest);
  const headers: OutgoingHttpHeaders = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    // Content under a digest never changes.
    'Cache-Control': 'max-age=31536000',
  };
  const range = parseRange(exchange.req.headers.range, blob.size);
  if (range === 'unsatisfiable') {
    const error = new RegistryError('RANGE_INVALID', 416, 'requested range not satisfiable', {
      size: blob.size,
    });
    return sendJson(exchange, 416, error.toJSON(), { ...headers, 'Content-Range': `bytes */${blob.size}` });
  }
  const status = range === undefined ? 200 : 206;
  const offset = range?.offset ?? 0;
  const end = range?.end ?? blob.size;
  headers['Content-Length'] = end - offset;
  if (range !== undefined) headers['Content-Range'] = `bytes ${offset}-${end - 1}/${blob.size}`;
  if (exchange.head || end === offset) return send(exchange, status, headers);
  exchange.res.writeHead(status, { ...API_VERSION, ...headers });
  await blob.copyTo(exchange.res, { offset, end });
  exchange.bytes += end - offset;
  exchange.res.end();
}

async function startUpload(exchange: Exchange, registry: Registry, name: string): Promise<void> {
  const { query } = exchange;
  const mount = query.get('mount');
  if (mount !== null) {
    const check = checkDigest(mount);
    const from = query.get('from') ?? undefined;
    if (check.ok && (from === undefined || exchange.mayReadMountSource === true)) {
      const mounted = await registry.mountBlob(name, check.digest, from);
      if (mounted !== undefined) return blobCreated(exchange, name, mounted.digest);
    }
    // The spec's fallback: a mount that cannot happen starts an ordinary upload.
  } else {
    const digestParameter = query.get('digest');
    if (digestParameter !== null) {
      const digest = requireDigest(digestParameter);
      const blob = await registry.uploadBlob(name, digest, requestBody(exchange.req));
      return blobCreated(exchange, name, blob.digest);
    }
  }
  const session = await registry.startUpload(name);
  send(exchange, 202, uploadHeaders(uploadLocation(name, session.id), session.size, session.id));
}

async function serveUpload(exchange: Exchange, registry: Registry, name: string, id: string): Promise<void> {
  if (!isUploadId(id)) throw uploadUnknown();
  const location = uploadLocation(name, id);
  exchange.uploadLocation = location;
  switch (exchange.method) {
    case 'GET': {
      const status = await registry.uploadStatus(name, id);
      return send(exchange, 204, uploadHeaders(location, status.size, id));
    }
    case 'DELETE':
      await registry.cancelUpload(name, id);
      return send(exchange, 204, {});
    case 'PATCH': {
      const range = await chunkRange(exchange, registry, name, id);
      const status = await registry.appendUpload(name, id, requestBody(exchange.req), range);
      return send(exchange, 202, uploadHeaders(location, status.size, id));
    }
    default: {
      const digests = exchange.query.getAll('digest');
      if (digests.length === 0) throw digestInvalid('the digest parameter is required to close an upload');
      const checked = digests.map(requireDigest);
      const range = await chunkRange(exchange, registry, name, id);
      const body = hasBody(exchange.req) ? requestBody(exchange.req) : undefined;
      const blob = await registry.completeUpload(name, id, checked, body, range);
      return blobCreated(exchange, name, blob.digest);
    }
  }
}

async function serveManifest(
  exchange: Exchange,
  registry: Registry,
  name: string,
  reference: string,
): Promise<void> {
  switch (exchange.method) {
    case 'PUT': {
      const body = await readBody(exchange.req, registry.maxManifestBytes, () =>
        manifestInvalid(`larger than the ${registry.maxManifestBytes} bytes this registry accepts`, 413),
      );
      const stored = await registry.putManifest(name, reference, body, exchange.req.headers['content-type']);
      return send(exchange, 201, {
        Location: `/v2/${name}/manifests/${stored.digest}`,
        'Docker-Content-Digest': stored.digest,
        ...(stored.subject !== undefined ? { 'OCI-Subject': stored.subject } : {}),
      });
    }
    case 'DELETE':
      await registry.deleteManifest(name, reference);
      return send(exchange, 202, {});
    default: {
      const manifest = await registry.getManifest(name, reference);
      return send(
        exchange,
        200,
        {
          'Content-Type': manifest.mediaType,
          'Docker-Content-Digest': manifest.digest,
          ETag: `"${manifest.digest}"`,
        },
        manifest.body,
      );
    }
  }
}

async function serveTags(exchange: Exchange, registry: Registry, name: string): Promise<void> {
  const limit = pageSize(exchange.query);
  const last = exchange.query.get('last') ?? undefined;
  const page = await registry.listTags(name, {
    ...(limit !== undefined ? { limit } : {}),
    ...(last ? { last } : {}),
  });
  const headers: OutgoingHttpHeaders = {};
  const lastTag = page.entries.at(-1);
  if (page.more && limit !== undefined && lastTag !== undefined) {
    headers.Link = `</v2/${name}/tags/list?last=${encodeURIComponent(lastTag)}&n=${limit}>; rel="next"`;
  }
  sendJson(exchange, 200, { name, tags: page.entries }, headers);
}

async function serveCatalog(exchange: Exchange, registry: Registry): Promise<void> {
  const limit = Math.min(pageSize(exchange.query) ?? DEFAULT_CATALOG_PAGE, MAX_CATALOG_PAGE);
  const last = exchange.query.get('last') ?? undefined;
  const page = await registry.catalog({ limit, ...(last ? { last } : {}) });
  const headers: OutgoingHttpHeaders = {};
  const lastName = page.entries.at(-1);
  if (page.more && lastName !== undefined) {
    headers.Link = `</v2/_catalog?last=${encodeURIComponent(lastName)}&n=${limit}>; rel="next"`;
  }
  sendJson(exchange, 200, { repositories: page.entries }, headers);
}

async function serveReferrers(
  exchange: Exchange,
  registry: Registry,
  name: string,
  digestText: string,
): Promise<void> {
  const digest = requireDigest(digestText);
  const artifactType = exchange.query.get('artifactType') || undefined;
  const manifests = await registry.referrers(name, digest, artifactType);
  sendJson(
    exchange,
    200,
    { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests },
    {
      'Content-Type': MediaType.ociIndex,
      ...(artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {}),
    },
  );
}

async function serveHealth(exchange: Exchange, health: RegistryHandlerOptions['health']): Promise<void> {
  if (exchange.method !== 'GET' && exchange.method !== 'HEAD') {
    const error = unsupported(`${exchange.method} is not supported here`);
    return sendJson(exchange, error.status, error.toJSON(), { Allow: 'GET, HEAD' });
  }
  let result: { ok: boolean; detail?: string };
  try {
    result = health === undefined ? { ok: true } : await health();
  } catch {
    result = { ok: false };
  }
  if (result.ok) return sendJson(exchange, 200, { status: 'ok' }, { 'Cache-Control': 'no-store' });
  sendJson(
    exchange,
    503,
    { status: 'unavailable', ...(result.detail !== undefined ? { detail: result.detail } : {}) },
    { 'Cache-Control': 'no-store' },
  );
}

async function serveToken(exchange: Exchange, endpoint: TokenEndpoint): Promise<void> {
  const method = exchange.method;
  if (method !== 'GET' && method !== 'POST') {
    const error = unsupported(`${method} is not supported here`);
    return sendJson(exchange, error.status, error.toJSON(), { Allow: 'GET, POST' });
  }
  let form: URLSearchParams | undefined;
  if (method === 'POST') {
    const body = await readBody(
      exchange.req,
      MAX_TOKEN_FORM_BYTES,
      () => new RegistryError('SIZE_INVALID', 413, 'the token request is too large'),
    );
    form = new URLSearchParams(body.toString('utf8'));
  }
  const authorization = exchange.req.headers.authorization;
  const response = await endpoint.handle({
    method,
    query: exchange.query,
    ...(form !== undefined ? { form } : {}),
    ...(authorization !== undefined ? { authorization } : {}),
  });
  sendJson(exchange, response.status, response.body, { 'Cache-Control': 'no-store', ...response.headers });
}

// -------------------------------------------------------------------------------------------------
// Helpers

function scopesFor(route: Route, method: string): Scope[] {
  const repository = (name: string, actions: Scope['actions']): Scope => ({
    type: 'repository',
    name,
    actions,
  });
  switch (route.kind) {
    case 'base':
      return [];
    case 'catalog':
      return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
    case 'blob':
      return [repository(route.name, method === 'DELETE' ? ['delete'] : ['pull'])];
    case 'manifest':
      return [
        repository(
          route.name,
          method === 'DELETE' ? ['delete'] : method === 'PUT' ? ['pull', 'push'] : ['pull'],
        ),
      ];
    case 'uploads':
    case 'upload':
      return [repository(route.name, ['pull', 'push'])];
    case 'tags':
    case 'referrers':
      return [repository(route.name, ['pull'])];
  }
}

/** A cross-repository mount also reads `from`; distribution asks for that scope too. */
function mountSourceScope(route: Route, query: URLSearchParams): Scope | undefined {
  if (route.kind !== 'uploads') return undefined;
  const from = query.get('from');
  if (query.get('mount') === null || from === null || from === route.name || !isRepositoryName(from)) {
    return undefined;
  }
  return { type: 'repository', name: from, actions: ['pull'] };
}

function requireDigest(value: string): Digest {
  const check = checkDigest(value);
  if (check.ok) return check.digest;
  throw digestInvalid(
    check.reason === 'unsupported'
      ? 'unsupported digest algorithm (sha256 and sha512 are)'
      : 'invalid digest: expected sha256:<64 hex> or sha512:<128 hex>',
  );
}

/** `n`: absent, or a non-negative integer. */
function pageSize(query: URLSearchParams): number | undefined {
  const value = query.get('n');
  if (value === null || value === '') return undefined;
  if (!/^\d{1,9}$/.test(value)) {
    throw new RegistryError('UNSUPPORTED', 400, 'n must be a non-negative integer', {
      n: value.slice(0, 32),
    });
  }
  return Number(value);
}

/**
 * A `Range: bytes=…` request header against a blob of `size` bytes: a single range as [offset,
 * end), undefined to send everything (no header, another unit, several ranges), or unsatisfiable.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { offset: number; end: number } | undefined | 'unsatisfiable' {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (!/^bytes=/i.test(value)) return undefined;
  const spec = value.slice(6).trim();
  if (spec.includes(',')) return undefined;
  const match = /^(\d*)-(\d*)$/.exec(spec);
  if (match === null) return 'unsatisfiable';
  const [, first = '', last = ''] = match;
  if (first === '') {
    const suffix = Number(last);
    if (last === '' || suffix === 0 || size === 0) return 'unsatisfiable';
    return { offset: Math.max(0, size - suffix), end: size };
  }
  const offset = Number(first);
  if (offset >= size) return 'unsatisfiable';
  if (last === '') return { offset, end: size };
  const inclusiveEnd = Number(last);
  if (inclusiveEnd < offset) return 'unsatisfiable';
  return { offset, end: Math.min(size, inclusiveEnd + 1) };
}

/** The Content-Range of an upload chunk (`<start>-<end>`, inclusive; `bytes ` and `/total` tolerated). */
export function parseContentRange(header: string): ChunkRange | undefined {
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  return end >= start ? { start, end } : undefined;
}

async function chunkRange(
  exchange: Exchange,
  registry: Registry,
  name: string,
  id: string,
): Promise<ChunkRange | undefined> {
  const header = exchange.req.headers['content-range'];
  if (header === undefined) return undefined;
  const range = parseContentRange(header);
  if (range === undefined) {
    const status = await registry.uploadStatus(name, id);
    throw new UploadRangeError(status.size, 'invalid Content-Range: expected <start>-<end>');
  }
  const declared = exchange.req.headers['content-length'];
  if (declared !== undefined && Number(declared) !== range.end - range.start + 1) {
    throw new RegistryError(
      'SIZE_INVALID',
      400,
      'Content-Length differs from the length of the Content-Range',
    );
  }
  return range;
}

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function uploadHeaders(location: string, size: number, id?: string): OutgoingHttpHeaders {
  return {
    Location: location,
    // Inclusive range of what the session holds; an empty session reads `0-0`, as distribution's.
    Range: `0-${Math.max(0, size - 1)}`,
    ...(id !== undefined ? { 'Docker-Upload-UUID': id, 'Blob-Upload-Session-ID': id } : {}),
  };
}

function blobCreated(exchange: Exchange, name: string, digest: Digest): void {
  send(exchange, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

/**
 * The request body as an async iterable that, when the reader stops early (a refused chunk, a
 * manifest too large), leaves the socket alive so that the refusal can still be answered.
 */
function requestBody(req: IncomingMessage): AsyncIterable<Buffer> {
  return { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer> };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * Whether a body nobody read (an error came first, or the route takes none) is small enough for
 * node to read and discard after the response, keeping the connection; larger or of unknown
 * length, the connection is closed instead (as Go's net/http does past 256 KiB).
 */
function worthDraining(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return Number(length) <= MAX_DRAINED_BYTES;
  return req.headers['transfer-encoding'] === undefined;
}

/**
 * How the connection of a request answered before its (large) body arrived is closed: the write
 * side closes (the answer and a FIN go out), and what the client still sends is read and dropped
 * for up to LINGER_MS before the socket is destroyed. node destroys it at once for `Connection:
 * close`, and closing a socket with unread bytes makes the kernel send a reset, which can reach
 * the client before it has read the answer: it then sees a dropped connection instead of the
 * 413. Go's net/http lingers the same way. (node closes through `socket.destroySoon`, which is
 * what this replaces, for this socket only.)
 */
function lingerOnClose(req: IncomingMessage): void {
  const socket = req.socket;
  socket.destroySoon = () => {
    socket.end();
    req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

/** The whole body, refusing it (with `tooLarge`) as soon as it passes `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of requestBody(req)) {
    total += chunk.length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function send(exchange: Exchange, status: number, headers: OutgoingHttpHeaders, body?: Buffer): void {
  const { res, req } = exchange;
  const all: OutgoingHttpHeaders = { ...API_VERSION, ...headers };
  // 204 carries no Content-Length at all (RFC 9110 §8.6).
  if (status === 204) delete all['Content-Length'];
  else if (all['Content-Length'] === undefined) all['Content-Length'] = body?.length ?? 0;
  if (!req.complete && !worthDraining(req)) {
    all.Connection = 'close';
    lingerOnClose(req);
  }
  res.writeHead(status, all);
  if (body === undefined || exchange.head) {
    res.end();
  } else {
    exchange.bytes += body.length;
    res.end(body);
  }
}

function sendJson(
  exchange: Exchange,
  status: number,
  value: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const body = Buffer.from(JSON.stringify(value));
  send(exchange, status, { 'Content-Type': JSON_TYPE, ...headers, 'Content-Length': body.length }, body);
}

/** Splits a request target into path and query without decoding the path (names.ts explains why). */
function splitUrl(url: string): [string, URLSearchParams] {
  let target = url;
  if (!target.startsWith('/')) {
    // Absolute form (`GET http://host/v2/ HTTP/1.1`), as a proxy would send it.
    try {
      const parsed = new URL(target);
      target = `${parsed.pathname}${parsed.search}`;
    } catch {
      return ['', NO_QUERY];
    }
  }
  const question = target.indexOf('?');
  if (question < 0) return [target, NO_QUERY];
  return [target.slice(0, question), new URLSearchParams(target.slice(question + 1))];
}

function loggedPath(exchange: Exchange): string {
  const kept: string[] = [];
  for (const [key, value] of exchange.query) {
    if (LOGGED_PARAMETERS.has(key)) kept.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return kept.length === 0 ? exchange.pathname : `${exchange.pathname}?${kept.join('&')}`;
}
