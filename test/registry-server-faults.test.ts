/**
 * Fault tests for `strata registry serve`: the real CLI process (bin/strata, as users run it) with
 * filesystem storage in a temp dir, driven over real sockets on 127.0.0.1.
 *
 * - SIGKILL in the middle of 50 concurrent blob uploads and a few image pushes, then a restart on
 *   the same root: what was acknowledged is intact, nothing corrupt is ever served, interrupted
 *   sessions resume or are cleanly unknown, every stored blob hashes to its path.
 * - Uploads whose bytes do not match `?digest=` are refused and never served.
 * - A few hundred hostile raw requests: never a 5xx, never the storage root or a stack in a
 *   body, nothing read or written outside the root, and the server keeps serving.
 * - A full disk: the upload fails without leaking anything and succeeds once there is room.
 *
 * Needs `npm run build` first (bin/strata runs dist/) and root (the disk-full test mounts a tmpfs).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdir, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaType } from '../src/oci/mediatypes.js';
import { mapLimited } from '../src/registry/server/concurrency.js';
import { REPO_ROOT, STRATA_BIN, mustRun, tempDir } from './helpers/cli.js';

const MIB = 1024 * 1024;
const STARTUP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 30_000;

// -------------------------------------------------------------------------------------------------
// The server under test: the real CLI, one process per start.

interface StrataServer {
  /** `http://127.0.0.1:<port>`, as the banner says (the config asks for port 0: any free one). */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Everything the server has written to stderr so far (banner, internal-error lines). */
  stderr(): string;
  alive(): boolean;
  /** SIGKILL: no handler runs, nothing is flushed; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful path. */
  stop(): Promise<void>;
}

/** A config that turns the access log off: 50 concurrent uploads need no JSON lines on a pipe. */
async function writeServerConfig(dir: string): Promise<string> {
  const file = join(dir, 'config.yml');
  await writeFile(file, 'version: 0.1\nlog:\n  accesslog:\n    disabled: true\n');
  return file;
}

async function startServer(root: string, config: string): Promise<StrataServer> {
  const child = spawn(
    STRATA_BIN,
    ['--root', root, 'registry', 'serve', '--addr', '127.0.0.1:0', '--config', config],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  // A test process that dies without stopping its server must not leave it running.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`strata registry serve did not start in time:\n${stderr}`));
    }, STARTUP_TIMEOUT_MS);
    child.stderr.on('data', (text: string) => {
      stderr += text;
      const match = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(stderr);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`strata registry serve exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const signal = async (name: NodeJS.Signals): Promise<void> => {
    if (alive()) child.kill(name);
    await exited;
  };
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid ?? -1,
    stderr: () => stderr,
    alive,
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

// -------------------------------------------------------------------------------------------------
// HTTP, one connection per request (a kill must not leave pooled sockets behind).

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface CallOptions {
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: Buffer | Readable;
  readonly timeoutMs?: number;
}

function call(url: string, method: string, options: CallOptions = {}): Promise<Reply> {
  const { body } = options;
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (Buffer.isBuffer(body) && headers['content-length'] === undefined)
      headers['content-length'] = body.length;
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.once('aborted', () => reject(new Error(`${method} ${url}: response cut off`)));
      res.once('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`${method} ${url}: no answer in time`)),
    );
    req.once('error', reject);
    if (body instanceof Readable) {
      body.once('error', (err) => req.destroy(err));
      // A request cut by the server stops the source too (a throttled one would go on sleeping).
      req.once('close', () => body.destroy());
      body.pipe(req);
    } else {
      req.end(body);
    }
  });
}

/** The first error code of a `{"errors":[…]}` body, or undefined. */
function errorCode(reply: Reply): string | undefined {
  try {
    const parsed: unknown = JSON.parse(reply.body.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || !('errors' in parsed)) return undefined;
    const errors: unknown = parsed.errors;
    if (!Array.isArray(errors)) return undefined;
    const first: unknown = errors[0];
    if (typeof first !== 'object' || first === null || !('code' in first)) return undefined;
    return typeof first.code === 'string' ? first.code : undefined;
  } catch {
    return undefined;
  }
}

/** Yields `data` in `piece`-byte parts with a pause after each: a slow client's body. */
function throttled(data: Buffer, piece: number, pauseMs: number): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < data.length; offset += piece) {
      yield data.subarray(offset, offset + piece);
      await sleep(pauseMs);
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every file under `dir`, as paths relative to it, sorted; [] when `dir` does not exist. */
async function walkFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * The storage invariant: every file under `blobs/` is `blobs/sha256/<2 hex>/<64 hex>/data` and its
 * bytes hash to that name. A partial or mixed-up blob would break it.
 */
async function assertBlobStoreIntact(root: string): Promise<number> {
  const blobs = join(root, 'blobs');
  const files = await walkFiles(blobs);
  for (const file of files) {
    const match = /^sha256\/([0-9a-f]{2})\/([0-9a-f]{64})\/data$/.exec(file.split(sep).join('/'));
    assert.ok(match, `unexpected file in the blob store: blobs/${file}`);
    assert.equal(match[2]!.slice(0, 2), match[1], `blobs/${file} sits under the wrong prefix`);
    assert.equal(
      await fileSha256(join(blobs, file)),
      match[2],
      `blobs/${file} holds other bytes than its name says`,
    );
  }
  return files.length;
}

// -------------------------------------------------------------------------------------------------
// Images

interface Blob {
  readonly content: Buffer;
  readonly digest: string;
}

function blobOf(content: Buffer): Blob {
  return { content, digest: sha256(content) };
}

interface Image {
  readonly config: Blob;
  readonly layers: readonly Blob[];
  readonly manifest: Buffer;
  readonly digest: string;
}

function makeImage(layers: readonly Buffer[]): Image {
  const layerBlobs = layers.map(blobOf);
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: layerBlobs.map((layer) => layer.digest) },
        nonce: randomUUID(),
      }),
    ),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.content.length },
      layers: layerBlobs.map((layer) => ({
        mediaType: MediaType.ociLayer,
        digest: layer.digest,
        size: layer.content.length,
      })),
    }),
  );
  return { config, layers: layerBlobs, manifest, digest: sha256(manifest) };
}

/** A monolithic `POST …/uploads/?digest=`, which must answer 201 with the digest. */
async function postBlob(base: string, repo: string, blob: Blob): Promise<Reply> {
  return call(`${base}/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, 'POST', {
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.content,
  });
}

async function pushImage(base: string, repo: string, tag: string, image: Image): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const reply = await postBlob(base, repo, blob);
    assert.equal(reply.status, 201, `blob upload: ${reply.body.toString()}`);
  }
  const reply = await call(`${base}/v2/${repo}/manifests/${tag}`, 'PUT', {
    headers: { 'content-type': MediaType.ociManifest },
    body: image.manifest,
  });
  assert.equal(reply.status, 201, `manifest push: ${reply.body.toString()}`);
}

async function assertBlobServed(base: string, repo: string, blob: Blob, what: string): Promise<void> {
  const reply = await call(`${base}/v2/${repo}/blobs/${blob.digest}`, 'GET');
  assert.equal(reply.status, 200, `${what}: GET ${blob.digest} answered ${reply.status}`);
  assert.equal(reply.headers['docker-content-digest'], blob.digest, `${what}: Docker-Content-Digest`);
  assert.equal(Number(reply.headers['content-length']), blob.content.length, `${what}: Content-Length`);
  assert.ok(reply.body.equals(blob.content), `${what}: the bytes served are not the bytes uploaded`);
}

/** Absent (404 BLOB_UNKNOWN) or exactly right; anything else is a corrupt or broken registry. */
async function assertBlobAbsentOrIntact(
  base: string,
  repo: string,
  blob: Blob,
  what: string,
): Promise<boolean> {
  const reply = await call(`${base}/v2/${repo}/blobs/${blob.digest}`, 'GET');
  if (reply.status === 404) {
    assert.equal(errorCode(reply), 'BLOB_UNKNOWN', `${what}: 404 body`);
    return false;
  }
  assert.equal(reply.status, 200, `${what}: GET ${blob.digest} answered ${reply.status}`);
  assert.equal(reply.headers['docker-content-digest'], blob.digest, `${what}: Docker-Content-Digest`);
  assert.ok(reply.body.equals(blob.content), `${what}: a corrupt blob is served under ${blob.digest}`);
  return true;
}

// -------------------------------------------------------------------------------------------------
// Uploads for the kill test

/** An answer the protocol does not allow here: a server bug, as opposed to a cut connection. */
class ProtocolError extends Error {}

type UploadKind =
  | 'monolithic'
  | 'post-put'
  | 'chunked'
  | 'chunked-final-put'
  | 'slow-monolithic'
  | 'slow-chunked'
  | 'slow-post-put';

const UPLOAD_KINDS: readonly UploadKind[] = [
  'monolithic',
  'post-put',
  'chunked',
  'chunked-final-put',
  'slow-monolithic',
  'slow-chunked',
  'slow-post-put',
];
const CHUNK_BYTES = MIB;
/** Slow clients send 64 KiB every 30 ms (~2 MB/s): a 6–8 MiB body takes 3–4 s. */
const SLOW_PIECE = 64 * 1024;
const SLOW_PAUSE_MS = 30;

interface Upload {
  readonly kind: UploadKind;
  readonly repo: string;
  readonly blob: Blob;
  /** The session URL, once the POST that opened it was answered. */
  location?: string;
  /** Bytes of PATCHes answered 202: the server promised to keep them. */
  acknowledged: number;
  /** The request that closes the session (or the monolithic POST) was sent. */
  completing: boolean;
  /** 201 received, with the right Docker-Content-Digest. */
  created: boolean;
  failure?: { readonly kind: 'protocol' | 'network'; readonly detail: string };
}

function expectStatus(reply: Reply, status: number, what: string): void {
  if (reply.status !== status) {
    throw new ProtocolError(
      `${what}: expected ${status}, got ${reply.status} ${reply.body.toString().slice(0, 300)}`,
    );
  }
}

function sessionUrl(base: string, location: string, digest?: string): string {
  const url = new URL(location, base);
  if (digest !== undefined) url.searchParams.set('digest', digest);
  return url.toString();
}

async function runUpload(base: string, upload: Upload): Promise<void> {
  const { repo, blob, kind } = upload;
  const octets = { 'content-type': 'application/octet-stream' };
  const slow = kind.startsWith('slow-');
  const created = (reply: Reply, what: string): void => {
    expectStatus(reply, 201, what);
    if (reply.headers['docker-content-digest'] !== blob.digest) {
      throw new ProtocolError(`${what}: Docker-Content-Digest ${reply.headers['docker-content-digest']}`);
    }
    upload.created = true;
  };
  if (kind === 'monolithic' || kind === 'slow-monolithic') {
    upload.completing = true;
    const reply = slow
      ? await call(`${base}/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, 'POST', {
          headers: { ...octets, 'content-length': blob.content.length },
          body: throttled(blob.content, SLOW_PIECE, SLOW_PAUSE_MS),
        })
      : await postBlob(base, repo, blob);
    created(reply, 'POST ?digest=');
    return;
  }
  const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
  expectStatus(opened, 202, 'POST');
  const location = opened.headers.location;
  if (location === undefined) throw new ProtocolError('POST: no Location');
  upload.location = location;
  const size = blob.content.length;
  if (kind === 'post-put' || kind === 'slow-post-put') {
    upload.completing = true;
    const body = slow ? throttled(blob.content, SLOW_PIECE, SLOW_PAUSE_MS) : blob.content;
    // The slow one goes without Content-Length: a chunked transfer-encoded body.
    const headers = slow ? octets : { ...octets, 'content-length': size };
    created(await call(sessionUrl(base, location, blob.digest), 'PUT', { headers, body }), 'PUT with body');
    return;
  }
  // Chunked: PATCHes with Content-Range; `chunked-final-put` sends its last chunk with the PUT.
  const lastInPut = kind === 'chunked-final-put';
  const patchedEnd = lastInPut ? Math.max(0, size - CHUNK_BYTES) : size;
  for (let start = 0; start < patchedEnd; start += CHUNK_BYTES) {
    const end = Math.min(patchedEnd, start + CHUNK_BYTES) - 1;
    const piece = blob.content.subarray(start, end + 1);
    const reply = await call(sessionUrl(base, location), 'PATCH', {
      headers: { ...octets, 'content-range': `${start}-${end}`, 'content-length': piece.length },
      body: slow ? throttled(piece, SLOW_PIECE, SLOW_PAUSE_MS) : piece,
    });
    expectStatus(reply, 202, 'PATCH');
    if (reply.headers.range !== `0-${end}`) throw new ProtocolError(`PATCH: Range ${reply.headers.range}`);
    upload.acknowledged = end + 1;
  }
  upload.completing = true;
  const rest = blob.content.subarray(patchedEnd);
  created(
    await call(sessionUrl(base, location, blob.digest), 'PUT', {
      headers: { ...octets, 'content-length': rest.length },
      body: rest,
    }),
    'PUT',
  );
}

interface ImagePush {
  readonly repo: string;
  readonly tag: string;
  readonly image: Image;
  created: boolean;
  failure?: { readonly kind: 'protocol' | 'network'; readonly detail: string };
}

async function runImagePush(base: string, push: ImagePush): Promise<void> {
  for (const blob of [push.image.config, ...push.image.layers]) {
    const reply = await postBlob(base, push.repo, blob);
    expectStatus(reply, 201, `image blob ${blob.digest}`);
  }
  const reply = await call(`${base}/v2/${push.repo}/manifests/${push.tag}`, 'PUT', {
    headers: { 'content-type': MediaType.ociManifest },
    body: push.image.manifest,
  });
  expectStatus(reply, 201, 'manifest PUT');
  if (reply.headers['docker-content-digest'] !== push.image.digest) {
    throw new ProtocolError(`manifest PUT: Docker-Content-Digest ${reply.headers['docker-content-digest']}`);
  }
  push.created = true;
}

function failureOf(err: unknown): { kind: 'protocol' | 'network'; detail: string } {
  return {
    kind: err instanceof ProtocolError || err instanceof assert.AssertionError ? 'protocol' : 'network',
    detail: err instanceof Error ? err.message : String(err),
  };
}

/**
 * Continues an interrupted session after the restart, as a client would: GET it, then either it is
 * unknown (404 BLOB_UPLOAD_UNKNOWN) or it holds a prefix of the blob from which a PATCH of the rest
 * and a PUT complete it. Returns the offset it resumed from, undefined when it was unknown.
 */
async function resumeSession(base: string, upload: Upload, location: string): Promise<number | undefined> {
  const what = `${upload.kind} upload ${upload.blob.digest}`;
  const status = await call(sessionUrl(base, location), 'GET');
  if (status.status === 404) {
    assert.equal(errorCode(status), 'BLOB_UPLOAD_UNKNOWN', `${what}: 404 body of the session`);
    return undefined;
  }
  assert.equal(
    status.status,
    204,
    `${what}: GET session answered ${status.status} ${status.body.toString()}`,
  );
  const range = /^0-(\d+)$/.exec(status.headers.range ?? '');
  assert.ok(range, `${what}: session Range ${status.headers.range}`);
  // `0-0` is an empty session (as distribution says it); our chunks are never one byte long.
  const inclusiveEnd = Number(range[1]);
  const offset = inclusiveEnd === 0 ? 0 : inclusiveEnd + 1;
  const size = upload.blob.content.length;
  assert.ok(offset <= size, `${what}: the session holds ${offset} bytes of a ${size}-byte blob`);
  if (!upload.completing) {
    // Acknowledged chunks are durable. (Once the closing PUT is sent, the data may already have
    // been moved into the blob store and the session be empty: that is a restart, not a loss.)
    assert.ok(
      offset >= upload.acknowledged,
      `${what}: ${upload.acknowledged} bytes acknowledged, ${offset} kept`,
    );
  }
  if (offset < size) {
    const rest = upload.blob.content.subarray(offset);
    const patched = await call(sessionUrl(base, location), 'PATCH', {
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${offset}-${size - 1}`,
        'content-length': rest.length,
      },
      body: rest,
    });
    assert.equal(patched.status, 202, `${what}: resuming PATCH from ${offset}: ${patched.body.toString()}`);
    assert.equal(patched.headers.range, `0-${size - 1}`, `${what}: Range after the resuming PATCH`);
  }
  // The digest check at completion proves the bytes kept before the kill were the right prefix.
  const closed = await call(sessionUrl(base, location, upload.blob.digest), 'PUT');
  assert.equal(
    closed.status,
    201,
    `${what}: closing PUT after resuming at ${offset}: ${closed.body.toString()}`,
  );
  return offset;
}

// -------------------------------------------------------------------------------------------------

describe('strata registry serve under faults', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let config: string;

  before(async () => {
    work = await tempDir('registry-faults');
    config = await writeServerConfig(work.path);
  });
  after(() => work?.cleanup());

  test('SIGKILL during 50 concurrent uploads and image pushes: a restart serves only intact content', async (t) => {
    const root = join(work.path, 'kill-root');
    const first = await startServer(root, config);
    const uploads: Upload[] = Array.from({ length: 50 }, (_, index) => {
      const kind = UPLOAD_KINDS[index % UPLOAD_KINDS.length]!;
      const slow = kind.startsWith('slow-');
      // 1–8 MiB (6–8 for slow ones), plus an odd tail so that sizes are never chunk-aligned.
      const mebibytes = slow ? 6 + (index % 3) : 1 + ((index * 5) % 8);
      const size = mebibytes * MIB + Math.floor(Math.random() * 65_536);
      return {
        kind,
        repo: `faults/kill${index % 4}`,
        blob: blobOf(randomBytes(size)),
        acknowledged: 0,
        completing: false,
        created: false,
      };
    });
    // Three small images finish early; three with 2–4 MiB layers may be caught by the kill.
    const pushes: ImagePush[] = Array.from({ length: 6 }, (_, index) => ({
      repo: `faults/image${index}`,
      tag: `v${index}`,
      image: makeImage(
        index < 3
          ? [randomBytes(32 * 1024 + index), randomBytes(100 * 1024)]
          : [randomBytes(2 * MIB + index), randomBytes(4 * MIB)],
      ),
      created: false,
    }));

    // The small image pushes start first, and the uploads and big pushes once one small image is
    // complete (behind 50 big uploads, a push's four round trips would otherwise finish last). The
    // kill comes once 10 uploads are done: fast uploads and big pushes are caught mid-way too.
    const KILL_AFTER_UPLOADS = 10;
    const FALLBACK_KILL_MS = 30_000;
    let settledUploads = 0;
    let triggerKill: () => void = () => undefined;
    const killTime = new Promise<void>((resolve) => {
      triggerKill = resolve;
    });
    const startPush = (push: ImagePush): Promise<void> =>
      runImagePush(first.url, push).catch((err: unknown) => {
        push.failure = failureOf(err);
      });
    const smallPushRuns = pushes.slice(0, 3).map(startPush);
    await Promise.race([Promise.race(smallPushRuns), sleep(REQUEST_TIMEOUT_MS, undefined, { ref: false })]);
    const pushRuns = [...smallPushRuns, ...pushes.slice(3).map(startPush)];
    const check = (): void => {
      const done = uploads.filter((upload) => upload.created).length;
      if (done >= KILL_AFTER_UPLOADS || uploads.length - settledUploads <= 4) triggerKill();
    };
    const uploadRuns = uploads.map((upload) =>
      runUpload(first.url, upload)
        .catch((err: unknown) => {
          upload.failure = failureOf(err);
        })
        .finally(() => {
          settledUploads++;
          check();
        }),
    );
    const fallback = setTimeout(triggerKill, FALLBACK_KILL_MS);
    await killTime;
    clearTimeout(fallback);
    const killAt = {
      uploadsDone: uploads.filter((upload) => upload.created).length,
      uploadsInFlight: uploads.filter((upload) => !upload.created && upload.failure === undefined).length,
      imagesDone: pushes.filter((push) => push.created).length,
    };
    await first.kill();
    // Every client request ends with the connection; bounded anyway.
    const settled = await Promise.race([
      Promise.all([...uploadRuns, ...pushRuns]).then(() => true),
      // Unreferenced: once everything settled, this timer must not keep the test process alive.
      sleep(REQUEST_TIMEOUT_MS, false, { ref: false }),
    ]);
    assert.ok(settled, 'client requests still pending 30 s after the kill');

    const protocolFailures = [...uploads, ...pushes].filter((item) => item.failure?.kind === 'protocol');
    assert.deepEqual(
      protocolFailures.map((item) => item.failure?.detail),
      [],
      'before the kill, every answer followed the protocol (no 5xx, no wrong status)',
    );
    assert.ok(killAt.uploadsDone >= 1, 'the kill came after some uploads completed');
    assert.ok(killAt.uploadsInFlight >= 1, 'the kill came while uploads were in flight');
    assert.ok(killAt.imagesDone >= 1, 'the kill came after an image push completed');
    const leftTemps = await readdir(join(root, '.tmp')).catch(() => []);

    const second = await startServer(root, config);
    try {
      // Interrupted sessions first: each is resumable or cleanly unknown.
      let resumed = 0;
      let unknown = 0;
      let resumedPastAcknowledged = 0;
      const resumedUploads = new Set<Upload>();
      for (const upload of uploads) {
        if (upload.created || upload.location === undefined) continue;
        const offset = await resumeSession(second.url, upload, upload.location);
        if (offset !== undefined) {
          resumed++;
          resumedUploads.add(upload);
          // The interrupted request's bytes that reached the disk were kept (and were right).
          if (offset > upload.acknowledged) resumedPastAcknowledged++;
        } else {
          unknown++;
        }
      }
      // Every acknowledged upload (and every resumed one) is intact; the rest absent or intact.
      let presentAnyway = 0;
      for (const upload of uploads) {
        const what = `${upload.kind} upload to ${upload.repo}`;
        if (upload.created || resumedUploads.has(upload)) {
          await assertBlobServed(second.url, upload.repo, upload.blob, what);
        } else if (await assertBlobAbsentOrIntact(second.url, upload.repo, upload.blob, what)) {
          presentAnyway++;
        }
      }
      // Every image whose manifest PUT got its 201 pulls, with all its blobs.
      for (const push of pushes) {
        const what = `image ${push.repo}:${push.tag}`;
        const manifest = await call(`${second.url}/v2/${push.repo}/manifests/${push.tag}`, 'GET', {
          headers: { accept: MediaType.ociManifest },
        });
        if (!push.created && manifest.status === 404) {
          assert.equal(errorCode(manifest), 'MANIFEST_UNKNOWN', `${what}: 404 body`);
          for (const blob of [push.image.config, ...push.image.layers])
            await assertBlobAbsentOrIntact(second.url, push.repo, blob, `${what} blob`);
          continue;
        }
        assert.equal(manifest.status, 200, `${what}: manifest GET answered ${manifest.status}`);
        assert.ok(manifest.body.equals(push.image.manifest), `${what}: the manifest is not the one pushed`);
        assert.equal(manifest.headers['docker-content-digest'], push.image.digest);
        assert.equal(manifest.headers['content-type'], MediaType.ociManifest);
        for (const blob of [push.image.config, ...push.image.layers])
          await assertBlobServed(second.url, push.repo, blob, `${what} blob`);
      }
      const blobFiles = await assertBlobStoreIntact(root);
      // The killed server's half-written temp files were swept at start-up.
      assert.deepEqual(
        (await readdir(join(root, '.tmp'))).filter((name) => name.includes(`.${first.pid}.`)),
        [],
        'temp files of the killed server survive the restart',
      );
      assert.ok(second.alive(), 'the restarted server is still running');
      assert.doesNotMatch(second.stderr(), /internal error/, 'the restarted server logged internal errors');
      t.diagnostic(
        `at the kill: ${killAt.uploadsDone} uploads done, ${killAt.uploadsInFlight} in flight, ` +
          `${killAt.imagesDone}/6 images pushed; after the restart: ${resumed} sessions resumed ` +
          `(${resumedPastAcknowledged} beyond their acknowledged bytes), ` +
          `${unknown} unknown, ${presentAnyway} unacknowledged blobs present (intact); ` +
          `${blobFiles} blob files verified; ${leftTemps.length} temp files left by the kill`,
      );
    } finally {
      await second.stop();
    }
  });

  test('a restart removes the temp files of the killed server (a write cut between create and rename)', async () => {
    const root = join(work.path, 'temp-root');
    const first = await startServer(root, config);
    await pushImage(first.url, 'faults/temps', 'v1', makeImage([randomBytes(1000)]));
    await first.kill();
    // What putContent leaves when the process dies after creating its temp and before renaming
    // it: `.tmp/.put.<pid>.<12 hex>.tmp` (store/atomic.ts tempSibling). That pid is now dead.
    const temps = join(root, '.tmp');
    await mkdir(temps, { recursive: true });
    const orphan = `.put.${first.pid}.0123456789ab.tmp`;
    await writeFile(join(temps, orphan), randomBytes(MIB));
    const second = await startServer(root, config);
    try {
      // FilesystemDriver.open sweeps these; the server's storage must be opened that way.
      assert.deepEqual(
        (await readdir(temps)).filter((name) => name.includes(`.${first.pid}.`)),
        [],
        `temp files of the killed server (pid ${first.pid}) survive the restart: they are never reclaimed`,
      );
    } finally {
      await second.stop();
    }
  });

  describe('against one running server', () => {
    let root: string;
    let server: StrataServer;

    before(async () => {
      root = join(work.path, 'shared-root');
      server = await startServer(root, config);
    });
    after(() => server?.stop());

    test('content that does not match ?digest= is refused with DIGEST_INVALID and never served', async () => {
      const repo = 'faults/mismatch';
      const base = server.url;
      const cases: { name: string; upload: (content: Buffer, claimed: string) => Promise<Reply> }[] = [
        {
          name: 'monolithic POST ?digest=',
          upload: (content, claimed) =>
            call(`${base}/v2/${repo}/blobs/uploads/?digest=${claimed}`, 'POST', { body: content }),
        },
        {
          name: 'POST, then PUT ?digest= with the body',
          upload: async (content, claimed) => {
            const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
            assert.equal(opened.status, 202);
            return call(sessionUrl(base, opened.headers.location ?? '', claimed), 'PUT', { body: content });
          },
        },
        {
          name: 'chunked: POST, PATCH, PATCH, PUT ?digest=',
          upload: async (content, claimed) => {
            const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
            assert.equal(opened.status, 202);
            const location = opened.headers.location ?? '';
            const half = Math.floor(content.length / 2);
            for (const [start, end] of [
              [0, half],
              [half, content.length],
            ] as const) {
              const patched = await call(sessionUrl(base, location), 'PATCH', {
                headers: { 'content-range': `${start}-${end - 1}` },
                body: content.subarray(start, end),
              });
              assert.equal(patched.status, 202);
            }
            const closed = await call(sessionUrl(base, location, claimed), 'PUT');
            // The refused session is discarded: it cannot be completed later with other bytes.
            const after = await call(sessionUrl(base, location), 'GET');
            assert.equal(after.status, 404, 'the refused session is gone');
            assert.equal(errorCode(after), 'BLOB_UPLOAD_UNKNOWN');
            return closed;
          },
        },
        {
          name: 'chunked, last chunk in the PUT',
          upload: async (content, claimed) => {
            const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
            const location = opened.headers.location ?? '';
            const half = Math.floor(content.length / 2);
            const patched = await call(sessionUrl(base, location), 'PATCH', {
              headers: { 'content-range': `0-${half - 1}` },
              body: content.subarray(0, half),
            });
            assert.equal(patched.status, 202);
            return call(sessionUrl(base, location, claimed), 'PUT', { body: content.subarray(half) });
          },
        },
      ];
      for (const { name, upload } of cases) {
        const content = randomBytes(3 * MIB + 17);
        const actual = blobOf(content);
        // One byte different: the claim is the digest of almost the same bytes.
        const other = Buffer.from(content);
        other[other.length - 1] = other[other.length - 1]! ^ 0xff;
        const claimed = blobOf(other);
        const reply = await upload(content, claimed.digest);
        assert.equal(reply.status, 400, `${name}: ${reply.status} ${reply.body.toString()}`);
        assert.equal(errorCode(reply), 'DIGEST_INVALID', `${name}: ${reply.body.toString()}`);
        for (const blob of [claimed, actual]) {
          const get = await call(`${base}/v2/${repo}/blobs/${blob.digest}`, 'GET');
          assert.equal(get.status, 404, `${name}: ${blob.digest} is served after a refused upload`);
          const head = await call(`${base}/v2/${repo}/blobs/${blob.digest}`, 'HEAD');
          assert.equal(head.status, 404, `${name}: HEAD ${blob.digest}`);
        }
      }
      // Several digests: each is checked (a right sha256 does not excuse a wrong sha512).
      const content = randomBytes(100_000);
      const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
      const url = new URL(opened.headers.location ?? '', base);
      url.searchParams.append('digest', sha256(content));
      url.searchParams.append('digest', `sha512:${createHash('sha512').update('other').digest('hex')}`);
      const both = await call(url.toString(), 'PUT', { body: content });
      assert.equal(both.status, 400, both.body.toString());
      assert.equal(errorCode(both), 'DIGEST_INVALID');
      assert.equal((await call(`${base}/v2/${repo}/blobs/${sha256(content)}`, 'GET')).status, 404);

      // Nothing of it reached the blob store, and no session was left behind.
      const stored = await walkFiles(join(root, 'blobs'));
      assert.deepEqual(stored, [], 'refused uploads left blob files');
      assert.deepEqual(await readdir(join(root, 'repositories', repo, '_uploads')).catch(() => []), []);
    });

    test('hundreds of hostile raw requests: no 5xx, no leak, nothing outside the root, still serving', async (t) => {
      const base = server.url;
      // A legitimate image, and copies of its repository outside `repositories/` (one beside the
      // root, one inside it): a traversal that works would serve them.
      const legitRepo = 'faults/legit';
      const legit = makeImage([randomBytes(40_000)]);
      await pushImage(base, legitRepo, 'latest', legit);
      const legitLayer = legit.layers[0]!.digest;
      const outside = join(work.path, 'escape');
      const insideRoot = join(root, 'escape');
      await cp(join(root, 'repositories', legitRepo), outside, { recursive: true });
      await cp(join(root, 'repositories', legitRepo), insideRoot, { recursive: true });
      const secret = 'strata-fault-test-secret-7f3a';
      await writeFile(join(outside, 'secret'), secret);
      const outsideBefore = await treeSignature(work.path, root);

      // Sessions the range attacks aim at, each holding 1000 bytes.
      const sessionRepo = 'faults/sessions';
      const prefix = randomBytes(1000);
      const newSession = async (): Promise<string> => {
        const opened = await call(`${base}/v2/${sessionRepo}/blobs/uploads/`, 'POST');
        const location = opened.headers.location ?? '';
        const patched = await call(sessionUrl(base, location), 'PATCH', {
          headers: { 'content-range': '0-999' },
          body: prefix,
        });
        assert.equal(patched.status, 202);
        return location;
      };

      const cases = await hostileCases({ legitRepo, legitLayer, legit, newSession });
      assert.ok(cases.length >= 300, `only ${cases.length} hostile cases`);
      const results = await mapLimited(cases, 16, async (hostile) => ({
        hostile,
        result: await rawExchange(server.port, hostile.parts, hostile.finish),
      }));

      const forbidden: readonly [RegExp, string][] = [
        [new RegExp(escapeRegExp(work.path)), 'the storage root path'],
        [new RegExp(escapeRegExp(REPO_ROOT)), 'the source tree path'],
        [/\n\s+at .+[(:]\d+/, 'a stack trace'],
        [/node:internal|node_modules|\.js:\d+/, 'code locations'],
        [/\b(?:ENOENT|EISDIR|ENOTDIR|EACCES|EEXIST|ENAMETOOLONG|EINVAL|ELOOP|ENOSPC)\b/, 'an errno code'],
        [/root:x:0:0/, '/etc/passwd'],
        [new RegExp(secret), 'a file outside the root'],
      ];
      const problems: string[] = [];
      const statusCounts = new Map<string, number>();
      for (const { hostile, result } of results) {
        const text = result.data.toString('latin1');
        const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((match) =>
          Number(match[1]),
        );
        const first = statuses[0];
        const key =
          first === undefined ? (result.timedOut ? 'no answer (timeout)' : 'closed') : String(first);
        statusCounts.set(key, (statusCounts.get(key) ?? 0) + 1);
        for (const status of statuses)
          if (status >= 500) problems.push(`${hostile.name}: answered ${status}`);
        for (const [pattern, what] of forbidden)
          if (pattern.test(text))
            problems.push(`${hostile.name}: the answer shows ${what}: ${text.slice(0, 400)}`);
        if (hostile.expect === 'rejected' && (first === undefined || first < 400 || first >= 500))
          problems.push(`${hostile.name}: expected a 4xx, got ${key}`);
        if (hostile.expect === 'not-success' && first !== undefined && first < 300)
          problems.push(`${hostile.name}: expected a refusal, got ${first}`);
        if ((hostile.expect === 'answered' || hostile.expect === 'not-created') && first === undefined)
          problems.push(`${hostile.name}: no answer (${key})`);
        if (hostile.expect === 'not-created' && first === 201) problems.push(`${hostile.name}: answered 201`);
      }
      assert.deepEqual(problems, [], 'hostile requests were mishandled');

      // Every chunk that was refused or cut off left its session exactly as it was.
      for (const hostile of cases) {
        if (hostile.sessionUnchanged === undefined) continue;
        const location = hostile.sessionUnchanged;
        // The server may still be unwinding a cut-off chunk (truncating it away): wait a little.
        let range: string | undefined;
        for (let attempt = 0; attempt < 20; attempt++) {
          const status = await call(sessionUrl(base, location), 'GET');
          assert.equal(status.status, 204, `${hostile.name}: the session is gone (${status.status})`);
          range = status.headers.range;
          if (range === '0-999') break;
          await sleep(100);
        }
        assert.equal(range, '0-999', `${hostile.name}: a refused or cut-off chunk changed the session`);
        // And it still completes with the right bytes.
        const closed = await call(sessionUrl(base, location, sha256(prefix)), 'PUT');
        assert.equal(closed.status, 201, `${hostile.name}: ${closed.body.toString()}`);
      }

      // No hostile request wrote or read anything outside the root, or under a blob's name.
      assert.deepEqual(await treeSignature(work.path, root), outsideBefore, 'files outside the root changed');
      assert.deepEqual(
        await walkFiles(insideRoot),
        await walkFiles(outside).then((f) => f.filter((n) => n !== 'secret')),
      );
      await assertBlobStoreIntact(root);
      for (const cut of cases.flatMap((hostile) => hostile.neverStored ?? []))
        assert.equal((await call(`${base}/v2/faults/cut/blobs/${cut}`, 'GET')).status, 404, `${cut} stored`);
      assert.equal(
        (await call(`${base}/v2/faults/cut/manifests/truncated`, 'GET')).status,
        404,
        'a truncated manifest PUT created the tag',
      );

      // Still serving: the process lives, nothing was an internal error, a push and a pull work.
      assert.ok(server.alive(), 'the server died');
      assert.doesNotMatch(server.stderr(), /internal error/, 'hostile requests caused internal errors');
      const after = makeImage([randomBytes(2 * MIB)]);
      await pushImage(base, 'faults/after', 'v1', after);
      await assertBlobServed(base, 'faults/after', after.layers[0]!, 'push after the hostile requests');
      await assertBlobServed(base, legitRepo, legit.layers[0]!, 'the legitimate image');
      t.diagnostic(
        `${cases.length} hostile requests; first status: ${[...statusCounts]
          .sort()
          .map(([status, count]) => `${status}×${count}`)
          .join(', ')}`,
      );
    });

    test('a body in a transfer coding other than chunked is refused, not appended as it is', async () => {
      // `Transfer-Encoding: gzip, chunked`: node's parser removes the chunked framing only, so
      // the bytes are still gzip. RFC 9112 §6.1: a server that does not understand a transfer
      // coding answers 501, which is what distribution does ("Unsupported transfer encoding")
      // and the session stays as it was.
      const base = server.url;
      const opened = await call(`${base}/v2/faults/coding/blobs/uploads/`, 'POST');
      const location = opened.headers.location ?? '';
      const prefix = randomBytes(1000);
      assert.equal(
        (
          await call(sessionUrl(base, location), 'PATCH', {
            headers: { 'content-range': '0-999' },
            body: prefix,
          })
        ).status,
        202,
      );
      const { data } = await rawExchange(
        server.port,
        [
          rawRequest(
            'PATCH',
            location,
            [['Transfer-Encoding', 'gzip, chunked']],
            Buffer.from('5\r\nhello\r\n0\r\n\r\n'),
            { contentLength: false },
          ),
        ],
        'wait',
      );
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'))?.[1]);
      const session = await call(sessionUrl(base, location), 'GET');
      assert.equal(
        session.headers.range,
        '0-999',
        `answered ${status}, and the still-encoded bytes were kept`,
      );
      assert.ok(status === 501 || (status >= 400 && status < 500), `answered ${status}`);
    });
  });

  test('a full disk fails the upload cleanly; with room again, the same upload succeeds', async (t) => {
    // A 16 MiB tmpfs holds the root; a filler file leaves ~1 MiB of it free.
    const mountPoint = join(work.path, 'small-disk');
    await mkdir(mountPoint, { recursive: true });
    await mustRun('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', mountPoint]);
    let server: StrataServer | undefined;
    try {
      const root = join(mountPoint, 'root');
      server = await startServer(root, config);
      const base = server.url;
      const repo = 'faults/full';
      const small = blobOf(randomBytes(200_000));
      assert.equal((await postBlob(base, repo, small)).status, 201);
      const space = await statfs(mountPoint);
      const filler = join(mountPoint, 'filler');
      await writeFile(filler, Buffer.alloc(Math.max(0, space.bavail * space.bsize - MIB)));
      const big = blobOf(randomBytes(4 * MIB));

      // Monolithic: refused (a server-side failure), nothing leaks, nothing is stored.
      const refused = await postBlob(base, repo, big).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err)),
      );
      if (!(refused instanceof Error)) {
        assert.ok(refused.status >= 500 && refused.status < 600, `disk full answered ${refused.status}`);
        assert.doesNotMatch(
          refused.body.toString(),
          new RegExp(`${escapeRegExp(work.path)}|ENOSPC|\\n\\s+at `),
        );
      }
      assert.equal((await call(`${base}/v2/${repo}/blobs/${big.digest}`, 'GET')).status, 404);
      // Chunked: the failed chunk leaves the session as it was, so the client can retry it.
      const opened = await call(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
      assert.equal(opened.status, 202, `POST on a full disk: ${opened.body.toString()}`);
      const location = opened.headers.location ?? '';
      const patch = (): Promise<Reply | Error> =>
        call(sessionUrl(base, location), 'PATCH', {
          headers: { 'content-range': `0-${big.content.length - 1}` },
          body: big.content,
        }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      const failed = await patch();
      if (!(failed instanceof Error))
        assert.ok(failed.status >= 500, `PATCH on a full disk: ${failed.status}`);
      t.diagnostic(
        `disk full: monolithic POST → ${refused instanceof Error ? refused.message : refused.status}, ` +
          `PATCH → ${failed instanceof Error ? failed.message : failed.status}`,
      );
      const status = await call(sessionUrl(base, location), 'GET');
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-0', 'the failed chunk was truncated away');

      await rm(filler);
      const retried = await patch();
      assert.ok(!(retried instanceof Error), `retry: ${String(retried)}`);
      assert.equal(retried.status, 202);
      const closed = await call(sessionUrl(base, location, big.digest), 'PUT');
      assert.equal(closed.status, 201, closed.body.toString());
      await assertBlobServed(base, repo, big, 'upload after the disk had room again');
      await assertBlobServed(base, repo, small, 'upload before the disk filled');
      await assertBlobStoreIntact(root);
      assert.ok(server.alive());
    } finally {
      await server?.kill();
      await mustRun('umount', [mountPoint]);
    }
  });
});

// -------------------------------------------------------------------------------------------------
// Hostile requests

interface HostileCase {
  readonly name: string;
  readonly parts: readonly Buffer[];
  /** wait: for the server to close (requests say `Connection: close`); fin: half-close after sending. */
  readonly finish: 'wait' | 'fin';
  /**
   * rejected: a 4xx must come; not-success: no 2xx may come; answered: some non-5xx must come;
   * not-created: an answer, but never 201; any: no answer is fine too (a cut-off request). No
   * case may ever get a 5xx.
   */
  readonly expect: 'rejected' | 'not-success' | 'answered' | 'not-created' | 'any';
  /** The session (1000 bytes) this request aimed a refused or cut-off chunk at. */
  readonly sessionUnchanged?: string;
  /** Digests the request tried to store under `faults/cut` and must not have. */
  readonly neverStored?: readonly string[];
}

interface HostileContext {
  readonly legitRepo: string;
  readonly legitLayer: string;
  readonly legit: Image;
  readonly newSession: () => Promise<string>;
}

function rawRequest(
  method: string,
  target: string | Buffer,
  headers: readonly (readonly [string, string])[] = [],
  body: Buffer = Buffer.alloc(0),
  options: { contentLength?: boolean } = {},
): Buffer {
  const lines = [
    'Host: 127.0.0.1',
    'Connection: close',
    ...headers.map(([name, value]) => `${name}: ${value}`),
    ...(body.length > 0 && options.contentLength !== false ? [`Content-Length: ${body.length}`] : []),
  ];
  return Buffer.concat([
    Buffer.from(`${method} `, 'latin1'),
    Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
    Buffer.from(` HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1'),
    body,
  ]);
}

/** Sends `parts` on one connection and collects everything until the server closes (bounded). */
function rawExchange(
  port: number,
  parts: readonly Buffer[],
  finish: 'wait' | 'fin',
): Promise<{ data: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 3000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A reset by the server is an answer too: what it sent before is what counts.
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), timedOut });
    });
    socket.once('connect', () => {
      for (const part of parts) socket.write(part);
      if (finish === 'fin') socket.end();
    });
  });
}

async function hostileCases(context: HostileContext): Promise<HostileCase[]> {
  const { legitRepo, legitLayer, legit } = context;
  const cases: HostileCase[] = [];
  const uuid = randomUUID();
  const add = (
    name: string,
    request: Buffer | readonly Buffer[],
    expect: HostileCase['expect'],
    extra: Partial<Pick<HostileCase, 'finish' | 'sessionUnchanged' | 'neverStored'>> = {},
  ): void => {
    cases.push({
      name,
      parts: Buffer.isBuffer(request) ? [request] : request,
      finish: extra.finish ?? 'wait',
      expect,
      ...(extra.sessionUnchanged !== undefined ? { sessionUnchanged: extra.sessionUnchanged } : {}),
      ...(extra.neverStored !== undefined ? { neverStored: extra.neverStored } : {}),
    });
  };

  // Names that must never become a repository, and could reach outside `repositories/` if used
  // as paths: traversal, escapes (not decoded: no valid name holds `%`), NUL, bad UTF-8, the
  // driver's own hidden names, overlong ones. Every endpoint must refuse them with a 4xx.
  const names: readonly (string | Buffer)[] = [
    '..',
    '../..',
    '../escape',
    '../../escape',
    '../../../../../../etc/passwd',
    '%2e%2e/%2e%2e/escape',
    '%2E%2E%2F%2E%2E%2Fescape',
    '..%2f..%2fescape',
    '..%252f..%252fescape',
    'a%2Fb',
    'faults/../../escape',
    'faults/./legit',
    './escape',
    'escape/.',
    'a//b',
    '/escape',
    '..\\..\\escape',
    '%5c..%5cescape',
    '%00',
    'a%00b',
    Buffer.from('a\0b', 'latin1'),
    '%ff%fe',
    '%c0%ae%c0%ae/escape',
    '%e0%80%ae%e0%80%ae/escape',
    Buffer.from([0x61, 0xff, 0xfe, 0x62]),
    Buffer.from('café', 'utf8'),
    '.tmp',
    'x/.tmp',
    '_layers',
    'faults/legit/_manifests',
    'Faults/Legit',
    'a'.repeat(10_000),
    'a/'.repeat(5_000) + 'b',
  ];
  const legitManifest = legit.manifest;
  const endpoints: readonly {
    method: string;
    suffix: string;
    body?: Buffer;
    headers?: [string, string][];
  }[] = [
    { method: 'GET', suffix: `blobs/${legitLayer}` },
    { method: 'HEAD', suffix: `blobs/${legitLayer}` },
    { method: 'DELETE', suffix: `blobs/${legitLayer}` },
    { method: 'GET', suffix: 'manifests/latest', headers: [['Accept', MediaType.ociManifest]] },
    { method: 'HEAD', suffix: `manifests/${legit.digest}` },
    {
      method: 'PUT',
      suffix: 'manifests/pwned',
      body: legitManifest,
      headers: [['Content-Type', MediaType.ociManifest]],
    },
    { method: 'DELETE', suffix: 'manifests/latest' },
    { method: 'GET', suffix: 'tags/list' },
    { method: 'GET', suffix: `referrers/${legitLayer}` },
    { method: 'POST', suffix: 'blobs/uploads/' },
    { method: 'POST', suffix: `blobs/uploads/?mount=${legitLayer}&from=${legitRepo}` },
    { method: 'POST', suffix: `blobs/uploads/?digest=${legitLayer}`, body: legit.layers[0]!.content },
    { method: 'GET', suffix: `blobs/uploads/${uuid}` },
    { method: 'PATCH', suffix: `blobs/uploads/${uuid}`, body: Buffer.from('x'.repeat(100)) },
    { method: 'PUT', suffix: `blobs/uploads/${uuid}?digest=${legitLayer}` },
  ];
  for (const name of names) {
    for (const endpoint of endpoints) {
      const target = Buffer.concat([
        Buffer.from('/v2/'),
        Buffer.isBuffer(name) ? name : Buffer.from(name, 'latin1'),
        Buffer.from(`/${endpoint.suffix}`),
      ]);
      const label = Buffer.isBuffer(name) ? JSON.stringify(name.toString('latin1')) : name.slice(0, 40);
      add(
        `${endpoint.method} /v2/${label}/${endpoint.suffix.slice(0, 30)}`,
        rawRequest(endpoint.method, target, endpoint.headers, endpoint.body),
        'rejected',
      );
    }
  }

  // References, digests and upload ids that are not what they claim.
  const legitPath = `/v2/${legitRepo}`;
  for (const reference of [
    '..',
    '%2e%2e',
    '../../../../etc/passwd',
    '..%2f..%2f..%2fescape%2fsecret',
    'latest%00',
    'latest/../latest',
    't'.repeat(10_000),
    `sha256:${'a'.repeat(10_000)}`,
    `sha256:${legit.digest.slice(7).toUpperCase()}`,
    'sha256:../../../escape',
    'md5:d41d8cd98f00b204e9800998ecf8427e',
  ]) {
    add(
      `GET manifest ${reference.slice(0, 40)}`,
      rawRequest('GET', `${legitPath}/manifests/${reference}`),
      'rejected',
    );
    add(
      `PUT manifest ${reference.slice(0, 40)}`,
      rawRequest(
        'PUT',
        `${legitPath}/manifests/${reference}`,
        [['Content-Type', MediaType.ociManifest]],
        legitManifest,
      ),
      'rejected',
    );
  }
  for (const digest of [
    '..',
    '%2e%2e',
    `sha256:..%2f..%2f${'a'.repeat(60)}`,
    `${legitLayer}/../../x`,
    `${legitLayer}%00`,
    `sha256:${'0'.repeat(64)}`,
    `sha256:${legitLayer.slice(7).toUpperCase()}`,
    `sha512:${'0'.repeat(64)}`,
    `sha256:${'a'.repeat(10_000)}`,
    `${'x'.repeat(10_000)}:${'a'.repeat(64)}`,
  ]) {
    add(`GET blob ${digest.slice(0, 40)}`, rawRequest('GET', `${legitPath}/blobs/${digest}`), 'rejected');
    add(
      `DELETE blob ${digest.slice(0, 40)}`,
      rawRequest('DELETE', `${legitPath}/blobs/${digest}`),
      'rejected',
    );
  }
  for (const id of [
    '..',
    '../../../escape',
    '%2e%2e',
    uuid.toUpperCase(),
    `${uuid}/..`,
    `${uuid}%00`,
    'u'.repeat(10_000),
  ]) {
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
      add(
        `${method} upload ${id.slice(0, 40)}`,
        rawRequest(method, `${legitPath}/blobs/uploads/${id}?digest=${legitLayer}`, [], Buffer.from('abc')),
        'rejected',
      );
    }
  }

  // Query strings.
  for (const query of [
    'n=-1',
    'n=99999999999999999999',
    'n=1e3',
    'last=%ff%fe',
    `last=${'z'.repeat(10_000)}`,
    'last=../../..',
    'n=%00',
  ]) {
    add(`tags/list?${query.slice(0, 30)}`, rawRequest('GET', `${legitPath}/tags/list?${query}`), 'any');
    add(`_catalog?${query.slice(0, 30)}`, rawRequest('GET', `/v2/_catalog?${query}`), 'any');
  }
  for (const query of [
    `mount=${legitLayer}&from=../../escape`,
    `mount=${legitLayer}&from=%2e%2e%2fescape`,
    `mount=${legitLayer}&from=faults/../../escape`,
    `mount=..&from=${legitRepo}`,
    'digest=sha256:../../etc/passwd',
    `digest=${'a'.repeat(10_000)}`,
    'digest=%ff',
  ]) {
    // A mount that cannot happen starts an ordinary upload (202): never a 201 from elsewhere.
    add(
      `POST uploads/?${query.slice(0, 40)}`,
      rawRequest('POST', `/v2/faults/mounts/blobs/uploads/?${query}`),
      'not-created',
    );
  }

  // Request lines and headers the HTTP layer must refuse (or ignore) without failing.
  const giant = 'a'.repeat(100 * 1024);
  add('huge header', rawRequest('GET', '/v2/', [['X-Big', giant]]), 'rejected');
  add('huge request line', rawRequest('GET', `/v2/${giant}`), 'rejected');
  add(
    'thousands of headers',
    rawRequest(
      'GET',
      '/v2/',
      Array.from({ length: 3000 }, (_, index) => [`X-H${index}`, 'v'] as const),
    ),
    'any',
  );
  add('header with NUL', rawRequest('GET', '/v2/', [['X-Nul', 'a\0b']]), 'rejected');
  add('header with bare CR', rawRequest('GET', '/v2/', [['X-Cr', 'a\rb']]), 'rejected');
  add(
    'header without a colon',
    Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\nBroken\r\nConnection: close\r\n\r\n'),
    'rejected',
  );
  add('unknown method', rawRequest('FROB', '/v2/'), 'not-success');
  add('TRACE', rawRequest('TRACE', '/v2/'), 'not-success');
  add('CONNECT', Buffer.from('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'), 'any');
  add('OPTIONS *', rawRequest('OPTIONS', '*'), 'not-success');
  add('GET *', rawRequest('GET', '*'), 'not-success');
  add('no leading slash', rawRequest('GET', 'v2/'), 'not-success');
  add(
    'absolute form, escaping',
    rawRequest('GET', 'http://evil.example/v2/../../escape/manifests/latest'),
    'not-success',
  );
  add(
    'absolute form, normalised into another repository',
    rawRequest('GET', `http://evil.example/v2/${legitRepo}/../../escape/manifests/latest`),
    'not-success',
  );
  add('absolute form, garbage', rawRequest('GET', 'http://[::1/v2/'), 'any');
  add('HTTP/1.0 without Host', Buffer.from('GET /v2/ HTTP/1.0\r\n\r\n'), 'answered');
  add('HTTP/9.9', Buffer.from('GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n'), 'any');
  add('HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'any');
  add('binary garbage', randomBytes(4096), 'any');
  add('empty lines only', Buffer.from('\r\n\r\n\r\n'), 'any', { finish: 'fin' });
  add(
    'garbage Authorization',
    rawRequest('GET', '/v2/', [['Authorization', `Bearer ${'x'.repeat(8000)}`]]),
    'answered',
  );
  add('Basic without a colon', rawRequest('GET', '/v2/', [['Authorization', 'Basic !!!!']]), 'answered');
  add(
    'overlong Content-Type on a manifest',
    rawRequest(
      'PUT',
      `${legitPath}/manifests/ct`,
      [['Content-Type', `application/${'x'.repeat(10_000)}`]],
      legitManifest,
    ),
    'rejected',
  );

  // Blob ranges.
  for (const range of [
    'bytes=99999999999999999999-',
    'bytes=-0',
    'bytes=5-1',
    'bytes=0-0,1-1',
    'bytes=--1',
    'bytes=1e3-',
    'bytes=-99999999999999999999',
    'items=0-1',
    'bytes=0-18446744073709551616',
  ]) {
    add(
      `GET blob Range: ${range}`,
      rawRequest('GET', `${legitPath}/blobs/${legitLayer}`, [['Range', range]]),
      'answered',
    );
  }

  // Manifests that are not manifests.
  const manifestPut = (tag: string, body: Buffer, type: string = MediaType.ociManifest): Buffer =>
    rawRequest('PUT', `${legitPath}/manifests/${tag}`, [['Content-Type', type]], body);
  add('manifest: not JSON', manifestPut('bad1', Buffer.from('{"schemaVersion":2,')), 'rejected');
  add('manifest: invalid UTF-8', manifestPut('bad2', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 'rejected');
  add(
    'manifest: JSON nested 500k deep',
    manifestPut('bad3', Buffer.from(`{"schemaVersion":2,"x":${'['.repeat(500_000)}${']'.repeat(500_000)}}`)),
    'rejected',
  );
  add(
    'manifest: nested 100k deep where references are read',
    manifestPut(
      'bad4',
      Buffer.from(
        `{"schemaVersion":2,"mediaType":"${MediaType.ociIndex}","manifests":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      ),
      MediaType.ociIndex,
    ),
    'rejected',
  );
  add('manifest: 5 MiB', manifestPut('bad5', Buffer.alloc(5 * MIB, 0x20)), 'rejected');
  add(
    'manifest: unknown blob',
    manifestPut('bad6', Buffer.from(legitManifest.toString().replace(legitLayer.slice(7), 'f'.repeat(64)))),
    'rejected',
  );
  add(
    'manifest: digest reference mismatch',
    rawRequest(
      'PUT',
      `${legitPath}/manifests/sha256:${'0'.repeat(64)}`,
      [['Content-Type', MediaType.ociManifest]],
      legitManifest,
    ),
    'rejected',
  );
  add(
    'manifest: schema 1',
    manifestPut('bad7', Buffer.from('{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}')),
    'rejected',
  );
  add(
    'manifest: layers not an array',
    manifestPut(
      'bad8',
      Buffer.from(`{"schemaVersion":2,"mediaType":"${MediaType.ociManifest}","config":{},"layers":{}}`),
    ),
    'rejected',
  );
  add(
    'manifest: __proto__',
    manifestPut(
      'bad9',
      Buffer.from(
        `{"schemaVersion":2,"mediaType":"${MediaType.ociManifest}","config":{"__proto__":{"digest":"x"}},"layers":[{"__proto__":null}]}`,
      ),
    ),
    'rejected',
  );

  // Bodies whose framing lies: each aims at its own session holding 1000 bytes, and must leave
  // it unchanged (the chunk is refused before a byte is kept, or cut off and truncated away).
  const sessionCase = async (
    name: string,
    build: (path: string) => readonly Buffer[],
    expect: HostileCase['expect'],
    finish: HostileCase['finish'] = 'wait',
  ): Promise<void> => {
    const location = await context.newSession();
    add(name, build(location), expect, { finish, sessionUnchanged: location });
  };
  const chunk = randomBytes(64 * 1024);
  const badRanges: readonly [string, string][] = [
    ['bytes=5-2', 'backwards'],
    ['abc', 'not a range'],
    ['0-99999999999999999999', 'overflowing'],
    ['-1-5', 'negative'],
    ['0-65535', 'not where the session stands'],
    ['2000-67535', 'past where the session stands'],
    ['1000-1009', 'shorter than the body'],
    ['1000-99999', 'longer than the body'],
    ['1000-', 'open-ended'],
    ['', 'empty'],
    ['1000-1000, 1001-1002', 'two ranges'],
  ];
  for (const [range, why] of badRanges) {
    await sessionCase(
      `PATCH Content-Range ${why}`,
      (path) => [rawRequest('PATCH', path, [['Content-Range', range]], chunk)],
      'rejected',
    );
    await sessionCase(
      `PUT Content-Range ${why}`,
      (path) => [
        rawRequest(
          'PUT',
          `${path}?digest=${sha256(Buffer.concat([randomBytes(1000), chunk]))}`,
          [['Content-Range', range]],
          chunk,
        ),
      ],
      'rejected',
    );
  }
  const badLengths: readonly [string, string][] = [
    ['-1', 'negative'],
    ['abc', 'not a number'],
    ['1, 2', 'a list'],
    ['99999999999999999999999', 'overflowing'],
    ['0x10', 'hexadecimal'],
  ];
  for (const [length, why] of badLengths) {
    await sessionCase(
      `PATCH Content-Length ${why}`,
      (path) => [rawRequest('PATCH', path, [['Content-Length', length]], chunk, { contentLength: false })],
      'rejected',
    );
  }
  await sessionCase(
    'PATCH with two Content-Lengths',
    (path) => [
      rawRequest(
        'PATCH',
        path,
        [
          ['Content-Length', '10'],
          ['Content-Length', '20'],
        ],
        chunk,
        { contentLength: false },
      ),
    ],
    'rejected',
  );
  await sessionCase(
    'PATCH with Content-Length and chunked (smuggling)',
    (path) => [
      rawRequest(
        'PATCH',
        path,
        [
          ['Content-Length', '5'],
          ['Transfer-Encoding', 'chunked'],
        ],
        Buffer.from('5\r\nhello\r\n0\r\n\r\n'),
        {
          contentLength: false,
        },
      ),
    ],
    'rejected',
  );
  await sessionCase(
    'PATCH with a bad chunk size',
    (path) => [
      rawRequest('PATCH', path, [['Transfer-Encoding', 'chunked']], Buffer.from('zz\r\nhello\r\n0\r\n\r\n'), {
        contentLength: false,
      }),
    ],
    'any',
  );
  await sessionCase(
    'PATCH with a 2^64 chunk size',
    (path) => [
      rawRequest(
        'PATCH',
        path,
        [['Transfer-Encoding', 'chunked']],
        Buffer.from('ffffffffffffffffff\r\nhello\r\n'),
        { contentLength: false },
      ),
    ],
    'any',
  );
  // Cut off mid-body, the client gone (half-closed): nothing kept.
  await sessionCase(
    'PATCH cut off mid-body',
    (path) => [rawRequest('PATCH', path, [['Content-Length', String(MIB)]], chunk, { contentLength: false })],
    'any',
    'fin',
  );
  await sessionCase(
    'PATCH with Content-Range cut off mid-body',
    (path) => [
      rawRequest(
        'PATCH',
        path,
        [
          ['Content-Range', `1000-${1000 + MIB - 1}`],
          ['Content-Length', String(MIB)],
        ],
        chunk,
        { contentLength: false },
      ),
    ],
    'any',
    'fin',
  );
  await sessionCase(
    'chunked PATCH cut off mid-chunk',
    (path) => [
      rawRequest(
        'PATCH',
        path,
        [['Transfer-Encoding', 'chunked']],
        Buffer.concat([Buffer.from('10000\r\n'), chunk.subarray(0, 3000)]),
        { contentLength: false },
      ),
    ],
    'any',
    'fin',
  );
  await sessionCase(
    'PUT with its last chunk cut off mid-body',
    (path) => [
      rawRequest('PUT', `${path}?digest=${sha256(chunk)}`, [['Content-Length', String(MIB)]], chunk, {
        contentLength: false,
      }),
    ],
    'any',
    'fin',
  );

  // Cut-off uploads that must never become blobs.
  const full = randomBytes(2 * MIB);
  const fullDigest = sha256(full);
  add(
    'monolithic POST cut off mid-body',
    [
      rawRequest(
        'POST',
        `/v2/faults/cut/blobs/uploads/?digest=${fullDigest}`,
        [['Content-Length', String(full.length)]],
        full.subarray(0, MIB),
        { contentLength: false },
      ),
    ],
    'any',
    { finish: 'fin', neverStored: [fullDigest] },
  );
  const lying = randomBytes(100_000);
  add(
    'monolithic POST whose Content-Length is shorter than the body',
    [
      rawRequest(
        'POST',
        `/v2/faults/cut/blobs/uploads/?digest=${sha256(lying)}`,
        [['Content-Length', '50000']],
        lying,
        { contentLength: false },
      ),
    ],
    'any',
    { neverStored: [sha256(lying)] },
  );
  add(
    'manifest PUT cut off mid-body',
    [
      rawRequest(
        'PUT',
        '/v2/faults/cut/manifests/truncated',
        [
          ['Content-Type', MediaType.ociManifest],
          ['Content-Length', String(legitManifest.length + 10)],
        ],
        legitManifest,
        { contentLength: false },
      ),
    ],
    'any',
    { finish: 'fin' },
  );
  add(
    'Expect: 100-continue, then nothing',
    [
      rawRequest(
        'PUT',
        '/v2/faults/cut/manifests/expect',
        [
          ['Expect', '100-continue'],
          ['Content-Length', '100'],
        ],
        Buffer.alloc(0),
      ),
    ],
    'any',
    { finish: 'fin' },
  );
  return cases;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Paths, sizes and mtimes of every file under `dir` except under `excluded`: what a write would change. */
async function treeSignature(dir: string, excluded: string): Promise<string[]> {
  const files = await walkFiles(dir);
  const kept = files.filter((file) => !join(dir, file).startsWith(excluded + sep));
  return Promise.all(
    kept.map(async (file) => {
      const info = await stat(join(dir, file));
      return `${file} ${info.size} ${info.mtimeMs}`;
    }),
  );
}
