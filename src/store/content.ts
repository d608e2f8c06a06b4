import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, openSync } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { lock } from 'proper-lockfile';
import {
  Digester,
  digestAlgorithm,
  digestHex,
  isDigest,
  parseDigest,
  type Digest,
  type DigestResult,
} from '../oci/digest.js';
import { StrataError, errnoCode, isStrataError } from '../errors.js';
import { fsyncDir } from './atomic.js';
import { DigestThreadError, openThreadedDigest, type ThreadedDigest } from './digest-thread.js';
import { Leases, type Lease } from './lease.js';
import { DEFAULT_STALE_MS, isLocked, messageOf, processAlive } from './lock.js';
import { storeLayout } from './paths.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
  /** Set by ingest: false when the blob was already stored (the new copy was dropped). */
  created?: boolean;
}

/**
 * Bytes to store: a stream or any async iterable of chunks. A chunk may also be a batch of
 * pieces (in order), which the store writes without joining them (a download hands over what
 * its socket delivered that way).
 */
export type ByteSource = Readable | AsyncIterable<Uint8Array | readonly Uint8Array[]>;

/**
 * What `ingest` reads. A function is called with the offset to start from, so a resumable ingest
 * can ask for just the missing tail (an HTTP Range request); a plain stream always starts at 0.
 */
export type IngestSource = ByteSource | ((offset: number) => ByteSource | Promise<ByteSource>);

export interface IngestExpectation {
  /** Verified while streaming; a mismatch stores nothing. */
  digest?: Digest;
  /** Verified while streaming: more bytes than this fail as soon as they arrive. */
  size?: number;
  /**
   * Makes the ingest resumable (with `digest`): progress is kept in `ingest/<sha256(ref)>.partial`
   * when the source fails, and a later ingest with the same ref and a source function continues
   * from where it stopped. The kept prefix is re-hashed, never trusted.
   */
  ref?: string;
  /** Records the blob in this lease instead of the current one (see lease.ts). */
  lease?: Lease;
  /**
   * Digests on the digest thread (digest-thread.ts, started if need be) when the blob's first
   * write batch is a full 1 MiB: for large transfers whose main thread has other work (a pull's
   * sockets). The result is the same; a resumed ingest digests on the main thread.
   */
  offThread?: boolean;
}

export interface CleanResult {
  removed: number;
  bytes: number;
}

const TEMP_PATTERN = /^(\d+)-[0-9a-f]{16}\.tmp$/;
const PARTIAL_PATTERN = /^[0-9a-f]{64}\.partial$/;
const PARTIAL_LOCK_PATTERN = /^[0-9a-f]{64}\.partial\.lock$/;

/**
 * containerd's content store: blobs by digest under `blobs/<alg>/<hex>`. Content streams into a
 * temp file under `ingest/` (same filesystem), is digested and size-checked on the way, fsynced,
 * and only then renamed into place. So a blob path exists only with complete, verified content;
 * a crash leaves at most a temp file that `cleanIngest` reclaims; two writers of one blob both
 * succeed (the second finds the blob present and drops its copy).
 */
export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly leases: Leases;

  constructor(root: string, options: { leases?: Leases } = {}) {
    const layout = storeLayout(root);
    this.blobsDir = layout.blobs;
    this.ingestDir = layout.ingest;
    this.leases = options.leases ?? new Leases(layout.leases, layout.gcLock);
  }

  /** The file of a blob. The digest is validated, so a crafted one cannot escape the store. */
  blobPath(digest: Digest): string {
    const valid = parseDigest(digest);
    return join(this.blobsDir, digestAlgorithm(valid), digestHex(valid));
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.blobPath(digest));
      return info.isFile() ? { digest, size: info.size } : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  /**
   * Streams a blob, or the bytes `start..end` of it (both inclusive, as in `fs.createReadStream`),
   * in chunks of `highWaterMark` bytes (default 64 KiB; bulk readers save calls with more).
   * Throws NOT_FOUND at once when the blob is absent; once opened, the stream survives a
   * concurrent delete of the blob.
   */
  openRead(digest: Digest, range: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const path = this.blobPath(digest);
    let fd: number;
    try {
      // Opening synchronously makes a missing blob an immediate, clear error instead of an
      // `error` event on whichever consumer reads first.
      fd = openSync(path, 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new StrataError('NOT_FOUND', `blob ${digest} is not in the store`);
      throw err;
    }
    return createReadStream(path, {
      fd,
      start: range.start,
      end: range.end,
      ...(range.highWaterMark !== undefined ? { highWaterMark: range.highWaterMark } : {}),
    });
  }

  /**
   * Reads a small blob (a manifest, a config) whole and re-verifies its digest. A blob larger
   * than `maxBytes` is refused rather than buffered.
   */
  async readBytes(digest: Digest, maxBytes: number): Promise<Buffer> {
    const path = this.blobPath(digest);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new StrataError('NOT_FOUND', `blob ${digest} is not in the store`);
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `blob ${digest} is ${size} bytes, over the ${maxBytes}-byte limit for reading it whole`,
        );
      }
      const bytes = await handle.readFile();
      const actual = createHash(digestAlgorithm(digest)).update(bytes).digest('hex');
      if (actual !== digestHex(digest)) {
        throw new StrataError(
          'CORRUPT_STORE',
          `blob file ${path} is corrupt: its content hashes to ${actual}`,
        );
      }
      return bytes;
    } finally {
      await handle.close();
    }
  }

  /** Stores a stream, verifying `expected` while it flows; see IngestExpectation. */
  async ingest(source: IngestSource, expected: IngestExpectation = {}): Promise<BlobInfo> {
    // A stream that fails before reading starts (we await directories and locks first) would
    // otherwise emit an unhandled 'error'; the iteration below still sees the stored error.
    const ignore = (): void => undefined;
    if (source instanceof Readable) source.on('error', ignore);
    try {
      return await this.ingestChecked(source, expected);
    } finally {
      if (source instanceof Readable) source.off('error', ignore);
    }
  }

  private async ingestChecked(source: IngestSource, expected: IngestExpectation): Promise<BlobInfo> {
    checkExpectation(expected);
    // A source function need not even be called when the blob is already here.
    if (
      typeof source === 'function' &&
      expected.digest !== undefined &&
      (await this.retain(expected.digest, expected.lease))
    ) {
      const present = await this.info(expected.digest);
      if (present) return present;
    }
    await mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
    if (expected.ref !== undefined && expected.digest !== undefined) {
      const resumed = await this.ingestResumable(source, expected.ref, {
        ...expected,
        digest: expected.digest,
      });
      if (resumed) return resumed;
    }
    const temp = join(this.ingestDir, `${process.pid}-${randomBytes(8).toString('hex')}.tmp`);
    try {
      const digester = new Digester(expected.digest ? digestAlgorithm(expected.digest) : 'sha256');
      const result = await writeVerified(temp, 'wx', await sourceAt(source, 0), digester, expected);
      return await this.commit(temp, result, expected.lease);
    } finally {
      // After a commit the temp is gone (renamed or already dropped); after a failure, it goes here.
      await rm(temp, { force: true });
    }
  }

  /**
   * For a caller about to reference a blob it did not ingest (a load that finds a layer already
   * stored): protects it in the lease like an ingest would, then says whether it is present.
   */
  async retain(digest: Digest, lease?: Lease): Promise<boolean> {
    await this.leases.protect([parseDigest(digest)], lease);
    return this.has(digest);
  }

  /** `ingest` of bytes in memory (manifests, configs). */
  putBytes(data: Uint8Array, expected: IngestExpectation = {}): Promise<BlobInfo> {
    return this.ingest(
      (async function* () {
        yield data;
      })(),
      expected,
    );
  }

  /** Removes a blob; false when it was not there. Reachability is the caller's (GC's) concern. */
  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every blob, in digest order per algorithm. Files that are not digests are skipped. */
  async *list(): AsyncIterable<BlobInfo> {
    for (const algorithm of (await readdirIfExists(this.blobsDir)).sort()) {
      const dir = join(this.blobsDir, algorithm);
      for (const hex of (await readdirIfExists(dir)).sort()) {
        const digest = `${algorithm}:${hex}`;
        if (!isDigest(digest)) continue;
        const info = await stat(join(dir, hex)).catch(() => undefined);
        if (info?.isFile()) yield { digest, size: info.size };
      }
    }
  }

  /**
   * Removes what interrupted ingests left behind: temps whose process is dead (a killed load) or
   * that are older than `olderThanMs` (the pid was reused), unlocked resumable partials older
   * than `olderThanMs`, and stale partial locks.
   */
  async cleanIngest(options: { olderThanMs: number; dryRun?: boolean }): Promise<CleanResult> {
    const result: CleanResult = { removed: 0, bytes: 0 };
    const now = Date.now();
    for (const name of await readdirIfExists(this.ingestDir)) {
      const path = join(this.ingestDir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      const old = now - info.mtimeMs > options.olderThanMs;
      const temp = TEMP_PATTERN.exec(name);
      let doomed = false;
      if (temp) doomed = old || !processAlive(Number(temp[1]));
      else if (PARTIAL_PATTERN.test(name)) doomed = old && !(await isLocked(`${path}.lock`));
      else if (PARTIAL_LOCK_PATTERN.test(name)) doomed = !(await isLocked(path));
      if (!doomed) continue;
      if (!options.dryRun) await rm(path, { force: true, recursive: true });
      result.removed++;
      result.bytes += info.isFile() ? info.size : 0;
    }
    return result;
  }

  /**
   * A verified file becomes a blob. The lease is taken first (see lease.ts), and only then is the
   * existing blob checked, so a collection cannot delete the blob between the check and the
   * caller's use of it.
   */
  private async commit(file: string, result: DigestResult, lease: Lease | undefined): Promise<BlobInfo> {
    await this.leases.protect([result.digest], lease);
    const blob = this.blobPath(result.digest);
    if (await this.has(result.digest)) return { digest: result.digest, size: result.size, created: false };
    await mkdir(dirname(blob), { recursive: true, mode: 0o755 });
    // Read-only, as in containerd: a blob is immutable, and an accidental write fails loudly.
    await chmod(file, 0o444);
    await rename(file, blob);
    await fsyncDir(dirname(blob));
    return { digest: result.digest, size: result.size, created: true };
  }

  /**
   * The resumable path. Returns undefined when another ingest of the same ref is running (the
   * caller falls back to a private temp file: correct, just not resumed).
   */
  private async ingestResumable(
    source: IngestSource,
    ref: string,
    expected: IngestExpectation & { digest: Digest },
  ): Promise<BlobInfo | undefined> {
    const partial = join(this.ingestDir, `${createHash('sha256').update(ref).digest('hex')}.partial`);
    let release: () => Promise<void>;
    try {
      release = await lock(partial, {
        realpath: false,
        lockfilePath: `${partial}.lock`,
        stale: DEFAULT_STALE_MS,
        retries: 0,
        onCompromised: () => undefined,
      });
    } catch (err) {
      if (errnoCode(err) === 'ELOCKED') return undefined;
      throw err;
    }
    try {
      let offset =
        typeof source === 'function' ? ((await stat(partial).catch(() => undefined))?.size ?? 0) : 0;
      if (expected.size !== undefined && offset > expected.size) offset = 0;
      const digester = new Digester(digestAlgorithm(expected.digest));
      if (offset > 0) {
        // The prefix is hashed again: the final digest check is what makes resuming safe.
        for await (const chunk of createReadStream(partial, { end: offset - 1 }))
          digester.update(chunk as Buffer);
        offset = digester.size;
      }
      let result: DigestResult;
      try {
        result = await writeVerified(
          partial,
          offset > 0 ? 'r+' : 'w',
          await sourceAt(source, offset),
          digester,
          expected,
        );
      } catch (err) {
        // Wrong content (in the prefix or the source) is dropped so the next try starts over; an
        // interrupted source keeps its progress for the next try.
        if (isStrataError(err, 'DIGEST_MISMATCH')) await rm(partial, { force: true });
        throw err;
      }
      const stored = await this.commit(partial, result, expected.lease);
      // Renamed into place, or left over because another writer stored the blob first.
      await rm(partial, { force: true });
      return stored;
    } finally {
      await release().catch(() => undefined);
    }
  }
}

function checkExpectation(expected: IngestExpectation): void {
  if (expected.digest !== undefined) parseDigest(expected.digest);
  if (expected.size !== undefined && (!Number.isSafeInteger(expected.size) || expected.size < 0)) {
    throw new StrataError('INVALID_ARGUMENT', `invalid expected size ${expected.size}: not a byte count`);
  }
  if (expected.ref !== undefined && expected.ref === '') {
    throw new StrataError('INVALID_ARGUMENT', 'an ingest ref must not be empty');
  }
}

async function sourceAt(source: IngestSource, offset: number): Promise<AsyncIterable<unknown>> {
  return typeof source === 'function' ? await source(offset) : source;
}

const MAX_WRITES_IN_FLIGHT = 4;
const FLUSH_EVERY = 32 * 1024 * 1024;
/**
 * Pieces are gathered up to this many bytes and written with one writev: sources deliver
 * ~64 KiB pieces (sockets) or less, and each write is a round trip through libuv's thread pool.
 * Gathering references instead of joining the bytes spares a copy and the garbage it makes.
 */
const WRITE_BYTES = 1024 * 1024;
/** writev takes at most IOV_MAX (1024 on Linux) buffers per call. */
const MAX_PIECES = 1024;

/**
 * Streams `source` into `path` after the `prefix.size` bytes the digester has seen (the kept
 * part of a resumed ingest), digesting every chunk, failing as soon as the size is exceeded, and
 * checking digest and size at the end; fsyncs before returning so a later rename publishes
 * durable content. On failure the file is left for the caller to remove or keep; what the source
 * delivered before failing is written to it first (a resumable ingest goes on from there). Pieces
 * are written after the source has moved on (see WRITE_BYTES), so a source must not change a
 * buffer once it has yielded it (what Node's streams require as well).
 */
async function writeVerified(
  path: string,
  flags: 'wx' | 'w' | 'r+',
  source: AsyncIterable<unknown>,
  prefix: Digester,
  expected: IngestExpectation,
): Promise<DigestResult> {
  const position = prefix.size;
  const handle = await open(path, flags, 0o600);
  // Writes are positional, so a few can be in flight while the source makes the next chunks;
  // and the data is flushed as it goes (one datasync at a time), so the final fsync does not
  // wait for the whole blob to reach the disk after everything else is done.
  // Started writes never reject (their first error is kept and thrown by the loop), so one that
  // fails while the source is still being read is not an unhandled rejection.
  let writeError: unknown;
  const guard = (work: Promise<void>): Promise<void> =>
    work.catch((err: unknown) => {
      writeError ??= err;
    });
  const check = (): void => {
    if (writeError !== undefined) throw writeError;
  };
  const inFlight: Array<Promise<void>> = [];
  let flushing: Promise<void> = Promise.resolve();
  let unflushed = 0;
  let size = position;
  let offset = position;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  // Chosen with the first batch: the digest thread for a large fresh blob when asked for.
  let threaded: ThreadedDigest | undefined;
  let chosen = false;
  const writeAt = async (pieces: Uint8Array[], at: number): Promise<void> => {
    let first = 0;
    while (first < pieces.length) {
      const { bytesWritten } = await handle.writev(pieces.slice(first, first + MAX_PIECES), at);
      at += bytesWritten;
      // Skip what was written; a piece written in part continues from where it stopped.
      let left = bytesWritten;
      while (first < pieces.length && left >= pieces[first]!.length) left -= pieces[first++]!.length;
      if (left > 0) pieces[first] = pieces[first]!.subarray(left);
    }
  };
  const writePending = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const pieces = pending;
    const bytes = pendingBytes;
    pending = [];
    pendingBytes = 0;
    if (!chosen) {
      chosen = true;
      if (expected.offThread === true && position === 0 && bytes >= WRITE_BYTES)
        threaded = openThreadedDigest(prefix.algorithm);
    }
    if (threaded !== undefined) {
      try {
        await threaded.add(pieces);
      } catch (err) {
        await digestHere(err);
        for (const piece of pieces) prefix.update(piece);
      }
    } else {
      for (const piece of pieces) prefix.update(piece);
    }
    if (inFlight.length >= MAX_WRITES_IN_FLIGHT) await inFlight.shift();
    check();
    inFlight.push(guard(writeAt(pieces, offset)));
    offset += bytes;
    unflushed += bytes;
    if (unflushed >= FLUSH_EVERY) {
      unflushed = 0;
      await flushing;
      const written = Promise.all(inFlight);
      flushing = guard(written.then(() => handle.datasync()));
    }
  };
  /**
   * The digest thread failed (see digest-thread.ts): digest what was written so far (everything
   * it was given) from the file, here, and go on here.
   */
  const digestHere = async (err: unknown): Promise<void> => {
    if (!(err instanceof DigestThreadError)) throw err;
    threaded = undefined;
    await Promise.all(inFlight.splice(0));
    check();
    if (offset > position) {
      for await (const chunk of createReadStream(path, { start: position, end: offset - 1 }))
        prefix.update(chunk as Buffer);
    }
  };
  /** Counts a piece and queues it for the next write; true when that write is due. */
  const take = (piece: unknown): boolean => {
    const bytes = toBytes(piece);
    if (bytes.length === 0) return false;
    size += bytes.length;
    if (expected.size !== undefined && size > expected.size) {
      throw mismatch(`content is larger than the expected ${expected.size} bytes`, expected);
    }
    pending.push(bytes);
    pendingBytes += bytes.length;
    return pendingBytes >= WRITE_BYTES || pending.length >= MAX_PIECES;
  };
  let digest: Digest;
  try {
    if (flags === 'r+') await handle.truncate(position);
    try {
      for await (const chunk of source) {
        if (Array.isArray(chunk)) {
          for (const piece of chunk as unknown[]) if (take(piece)) await writePending();
        } else if (take(chunk)) await writePending();
      }
    } catch (err) {
      // Good bytes that came before a failure of the source are kept (see the function comment).
      if (!isStrataError(err, 'DIGEST_MISMATCH')) await writePending().catch(() => undefined);
      throw err;
    }
    await writePending();
    if (threaded !== undefined) {
      try {
        digest = await threaded.digest();
      } catch (err) {
        await digestHere(err);
        digest = prefix.digest();
      }
    } else {
      digest = prefix.digest();
    }
    await Promise.all(inFlight.splice(0));
    await flushing;
    check();
    await handle.sync();
  } finally {
    threaded?.abandon();
    // Settle whatever is still running before the handle is closed.
    await Promise.all([...inFlight, flushing]);
    await handle.close();
  }
  const result = { digest, size };
  if (expected.size !== undefined && result.size !== expected.size) {
    throw mismatch(`expected ${expected.size} bytes, got ${result.size}`, expected);
  }
  if (expected.digest !== undefined && result.digest !== expected.digest) {
    throw new StrataError(
      'DIGEST_MISMATCH',
      `digest mismatch: expected ${expected.digest}, got ${result.digest}`,
    );
  }
  return result;
}

function mismatch(detail: string, expected: IngestExpectation): StrataError {
  return new StrataError(
    'DIGEST_MISMATCH',
    `size mismatch${expected.digest ? ` for ${expected.digest}` : ''}: ${detail}`,
  );
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new StrataError('INVALID_ARGUMENT', `ingest source yielded a ${typeof chunk}, not bytes`);
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw new StrataError('INTERNAL', `cannot list ${dir}: ${messageOf(err)}`, { cause: err });
  }
}
