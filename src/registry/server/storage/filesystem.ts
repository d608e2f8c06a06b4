import { constants } from 'node:fs';
import {
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { StrataError, errnoCode } from '../../../errors.js';
import { cleanAtomicTemps, fsyncDir, tempSibling } from '../../../store/atomic.js';
import type { ObjectInfo, ObjectWriter, StorageDriver } from './driver.js';

/**
 * Temp files live in one directory under the root, not beside their targets: the layout never
 * shows them (no directory holds only a half-written temp), and sweeping after a crash is one
 * readdir instead of a walk of every blob directory. It is a dot-name, and dot-names are refused
 * as path segments, so no caller can ever address it.
 */
const TEMP_DIRECTORY = '.tmp';
const DEFAULT_STALE_TEMP_AGE_MS = 24 * 60 * 60 * 1000;
/**
 * A delete prunes empty parent directories, so a directory can vanish between our mkdir and the
 * rename into it; each retry recreates it. Giving up after a few means something else is wrong.
 */
const PARENT_ATTEMPTS = 5;

export interface FilesystemDriverOptions {
  /**
   * Temp files of processes that are still alive are kept by the start-up sweep unless untouched
   * for this long (their pid was reused, or the writer hung). Default 24 h.
   */
  staleTempAgeMs?: number;
}

/**
 * Objects are files under `root`, prefixes are directories. Every replacement is a rename of a
 * fsynced temp file (readers see old or new bytes, never a mix; an open reader keeps its inode),
 * and deletes prune the directories they empty so that listings match an object store's: a
 * prefix exists exactly while something is under it.
 *
 * Paths are checked even though the HTTP layer validated the names they were built from: the
 * driver must never reach outside its root whatever it is given.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;
  private readonly tempDirectory: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.tempDirectory = join(this.root, TEMP_DIRECTORY);
  }

  /** Creates the root if needed and removes temp files that interrupted writes left behind. */
  static async open(root: string, options: FilesystemDriverOptions = {}): Promise<FilesystemDriver> {
    const driver = new FilesystemDriver(root);
    await mkdir(driver.tempDirectory, { recursive: true });
    await driver.sweepTemps({ olderThanMs: options.staleTempAgeMs ?? DEFAULT_STALE_TEMP_AGE_MS });
    return driver;
  }

  /**
   * Removes temp files of dead processes, and of live ones untouched for `olderThanMs`. Pids are
   * only meaningful on this host: several hosts sharing one root must not run it concurrently.
   */
  sweepTemps(options: { olderThanMs: number }): Promise<{ removed: number; bytes: number }> {
    return cleanAtomicTemps(this.tempDirectory, options);
  }

  async getContent(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.locate(path));
    } catch (err) {
      if (isAbsent(err) || errnoCode(err) === 'EISDIR') return undefined;
      throw err;
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    const target = this.locate(path);
    const temp = this.tempPath('put');
    try {
      const handle = await this.createTemp(temp);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.renameInto(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async reader(path: string, range: { offset?: number; end?: number } = {}): Promise<Readable | undefined> {
    const offset = range.offset ?? 0;
    checkPosition(offset, 'offset');
    if (range.end !== undefined) checkPosition(range.end, 'end');
    let handle: FileHandle;
    try {
      // Opened before returning, so a replace or delete that happens later does not change
      // what this reader streams: it holds the inode it found.
      handle = await open(this.locate(path), 'r');
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        await handle.close();
        return undefined;
      }
      const end = Math.min(range.end ?? info.size, info.size);
      if (end <= offset) {
        await handle.close();
        return Readable.from([], { objectMode: false });
      }
      return new FileRangeReader(handle, offset, end);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async copyTo(path: string, range: { offset: number; end: number }, destination: Writable): Promise<void> {
    checkPosition(range.offset, 'offset');
    checkPosition(range.end, 'end');
    const handle = await open(this.locate(path), 'r');
    try {
      await copyRange(handle, range.offset, range.end, destination);
    } finally {
      await handle.close();
    }
  }

  async stat(path: string): Promise<ObjectInfo | undefined> {
    try {
      const info = await stat(this.locate(path, { rootAllowed: true }));
      if (info.isDirectory()) return { size: 0, modifiedAt: info.mtime, isDirectory: true };
      if (info.isFile()) return { size: info.size, modifiedAt: info.mtime, isDirectory: false };
      return undefined;
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  async writer(path: string, options: { append: boolean }): Promise<ObjectWriter> {
    const target = this.locate(path);
    if (options.append) {
      let handle: FileHandle | undefined;
      try {
        // No O_CREAT: appending to nothing is a fresh object, written aside like any other.
        handle = await open(target, constants.O_WRONLY | constants.O_APPEND);
      } catch (err) {
        if (!isAbsent(err)) throw err;
      }
      if (handle) {
        try {
          const info = await handle.stat();
          if (!info.isFile()) throw new StrataError('CONFLICT', `cannot append to a prefix: ${path}`);
          return new AppendingWriter(handle, info.size);
        } catch (err) {
          await handle.close();
          throw err;
        }
      }
    }
    const temp = this.tempPath('write');
    const handle = await this.createTemp(temp);
    return new ReplacingWriter(
      handle,
      async () => {
        try {
          await this.renameInto(temp, target);
        } catch (err) {
          await rm(temp, { force: true });
          throw err;
        }
      },
      () => rm(temp, { force: true }),
    );
  }

  async list(prefix: string): Promise<string[]> {
    try {
      const names = await readdir(this.locate(prefix, { rootAllowed: true }));
      return names.filter((name) => !name.startsWith('.')).sort();
    } catch (err) {
      if (isAbsent(err)) return [];
      throw err;
    }
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.locate(from);
    const target = this.locate(to);
    const info = await stat(source).catch((err: unknown) => {
      if (isAbsent(err)) return undefined;
      throw err;
    });
    // Prefixes are not objects: an object store cannot rename one atomically, so neither do we.
    if (!info?.isFile()) throw Object.assign(new Error(`no such object: ${from}`), { code: 'ENOENT' });
    await this.renameInto(source, target);
    await this.pruneEmptyParents(source);
  }

  async delete(path: string): Promise<void> {
    const target = this.locate(path);
    try {
      await rm(target, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
    await this.pruneEmptyParents(target);
  }

  async touch(path: string): Promise<void> {
    const now = new Date();
    try {
      await utimes(this.locate(path), now, now);
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
  }

  /** The absolute location of a driver path, after refusing anything that could leave the root. */
  private locate(path: string, options: { rootAllowed?: boolean } = {}): string {
    if (path === '' && options.rootAllowed) return this.root;
    assertSafeStoragePath(path);
    const location = join(this.root, ...path.split('/'));
    if (!location.startsWith(this.root + sep)) throw unsafePath(path, 'it resolves outside the root');
    return location;
  }

  private tempPath(purpose: string): string {
    return tempSibling(join(this.tempDirectory, purpose));
  }

  private async createTemp(temp: string): Promise<FileHandle> {
    try {
      return await open(temp, 'wx', 0o644);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    // Built with the constructor rather than open(), or the directory was removed by hand.
    await mkdir(this.tempDirectory, { recursive: true });
    return open(temp, 'wx', 0o644);
  }

  /** rename(2) into place, creating parents as needed, then makes the new entry durable. */
  private async renameInto(source: string, target: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await rename(source, target);
        break;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' || attempt >= PARENT_ATTEMPTS) throw err;
      }
      await this.makeParents(dirname(target));
    }
    await fsyncDir(dirname(target));
  }

  /**
   * mkdir -p, and fsync every directory that gained an entry: otherwise a crash could drop a new
   * blob directory (and the data renamed into it) after a manifest naming it was made durable.
   */
  private async makeParents(directory: string): Promise<void> {
    let firstCreated: string | undefined;
    try {
      firstCreated = await mkdir(directory, { recursive: true });
    } catch (err) {
      // A concurrent prune removed a level while mkdir walked down; the caller retries.
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    if (firstCreated === undefined) return;
    const highest = dirname(firstCreated);
    for (let current = dirname(directory); ; current = dirname(current)) {
      await fsyncDir(current).catch((err: unknown) => {
        if (!isAbsent(err)) throw err;
      });
      if (current === highest || current.length <= this.root.length) break;
    }
  }

  /**
   * Removes the directories a delete or move emptied, up to but not including the root. rmdir only
   * succeeds on an empty directory, so a concurrent write into one of them wins: it either finds
   * the directory still there, or recreates it (renameInto retries).
   */
  private async pruneEmptyParents(removed: string): Promise<void> {
    for (
      let directory = dirname(removed);
      directory.startsWith(this.root + sep);
      directory = dirname(directory)
    ) {
      try {
        await rmdir(directory);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        return;
      }
    }
  }
}

/** Large reads: a 1 GB blob in 64 KiB pieces (createReadStream's default) is 16 384 thread-pool hops. */
const READ_CHUNK_BYTES = 1024 * 1024;

type PoolBuffer = Buffer<ArrayBuffer>;

/**
 * copyTo's shape, from serving a 1 GiB blob (bench/registry-server.ts, per-process CPU time): each
 * chunk costs a thread-pool hop for its read and a few socket writes, so small chunks cost server
 * CPU (256 KiB ones about twice what 4 MiB ones do), while 2 MiB ones serve as fast as 4 MiB ones
 * with half the memory per download. A second read in flight keeps the socket fed when the page
 * cache has lost part of the file (hosts trim cold pages) and a read has to wait for the disk.
 */
const COPY_CHUNK_BYTES = 2 * 1024 * 1024;
const COPY_READS_AHEAD = 2;
/** The reads ahead, the chunk the socket is sending, and one to absorb a slow write callback. */
const COPY_BUFFERS = COPY_READS_AHEAD + 2;

interface CopyChunk {
  readonly buffer: PoolBuffer;
  readonly length: number;
}

/**
 * Bytes [start, end) of `handle` into `destination` through COPY_BUFFERS reused buffers, with up
 * to COPY_READS_AHEAD reads in flight while the current chunk is written. A buffer is read into
 * again only after the destination's write callback, which a socket calls once the kernel holds
 * the bytes; a destination that keeps a reference to a chunk past its callback (a PassThrough
 * does) would see it overwritten, so it must copy what it keeps.
 */
async function copyRange(
  handle: FileHandle,
  start: number,
  end: number,
  destination: Writable,
): Promise<void> {
  let failure: Error | undefined;
  /** Reads waiting for a free buffer, oldest first. */
  const forBuffer: Array<() => void> = [];
  /** The loop waiting for 'drain', when it is. */
  let forDrain: (() => void) | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    for (const wake of forBuffer.splice(0)) wake();
    forDrain?.();
  };
  const onClose = (): void => fail(new Error('the destination closed before the copy finished'));
  destination.on('close', onClose);
  destination.on('error', fail);

  // Allocated as reads need them, and no bigger than the range: a config blob of a few hundred
  // bytes gets one small buffer, not megabytes.
  const bufferBytes = Math.min(COPY_CHUNK_BYTES, end - start);
  let allocated = 0;
  const free: PoolBuffer[] = [];
  const allocate = (): PoolBuffer => {
    allocated++;
    return Buffer.allocUnsafe(bufferBytes);
  };
  const give = (buffer: PoolBuffer): void => {
    free.push(buffer);
    forBuffer.shift()?.();
  };
  const drained = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        destination.off('drain', done);
        forDrain = undefined;
        resolve();
      };
      forDrain = done;
      destination.on('drain', done);
    });
  /** The chunk at `at`, or undefined when the copy failed while it waited for a buffer. */
  const readAt = async (at: number): Promise<CopyChunk | undefined> => {
    while (free.length === 0 && allocated === COPY_BUFFERS && failure === undefined)
      await new Promise<void>((wake) => forBuffer.push(wake));
    if (failure !== undefined) return undefined;
    const buffer = free.pop() ?? allocate();
    const length = Math.min(COPY_CHUNK_BYTES, end - at);
    const { bytesRead } = await handle.read(buffer, 0, length, at);
    if (bytesRead !== length) throw new Error(`object shorter than expected at offset ${at + bytesRead}`);
    return { buffer, length };
  };

  const reads: Array<Promise<CopyChunk | undefined>> = [];
  let position = start;
  const readAhead = (): void => {
    while (reads.length < COPY_READS_AHEAD && position < end && failure === undefined) {
      const read = readAt(position);
      // Observed by the loop when its turn comes; until then a rejection must not go unhandled.
      read.catch(() => undefined);
      reads.push(read);
      position += COPY_CHUNK_BYTES;
    }
  };
  try {
    readAhead();
    for (let read = reads.shift(); read !== undefined; read = reads.shift()) {
      const chunk = await read;
      if (failure !== undefined || chunk === undefined) throw failure ?? new Error('copy stopped');
      readAhead();
      const { buffer, length } = chunk;
      const accepted = destination.write(
        length === buffer.length ? buffer : buffer.subarray(0, length),
        (err) => {
          if (!err) give(buffer);
        },
      );
      if (!accepted) await drained();
    }
    if (failure !== undefined) throw failure;
  } finally {
    destination.off('close', onClose);
    destination.off('error', fail);
    // Reads still waiting for a buffer give up; one in progress must finish before the caller
    // closes the file descriptor (which a new open could then reuse).
    fail(new Error('copy stopped'));
    await Promise.allSettled(reads);
  }
}

/**
 * Streams bytes [start, end) of an open file, 1 MiB per read, with the next read already in flight
 * while the current chunk goes out: the disk and the socket work at the same time, where
 * createReadStream waits for the consumer before it reads on. Blobs never change, so a short read
 * means the file was cut under us, which is an error, not an end.
 */
class FileRangeReader extends Readable {
  private position: number;
  private ahead: Promise<Buffer | null> | undefined;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: READ_CHUNK_BYTES });
    this.position = start;
  }

  private readNext(): Promise<Buffer | null> {
    if (this.position >= this.end) return Promise.resolve(null);
    const length = Math.min(READ_CHUNK_BYTES, this.end - this.position);
    const at = this.position;
    this.position += length;
    return this.handle.read(Buffer.allocUnsafe(length), 0, length, at).then(({ bytesRead, buffer }) => {
      if (bytesRead !== length)
        throw new Error(`blob file shorter than expected at offset ${at + bytesRead}`);
      return buffer;
    });
  }

  override _read(): void {
    const current = this.ahead ?? this.readNext();
    this.ahead = this.readNext();
    // An unobserved rejection of the read ahead is reported through `current` of the next call.
    this.ahead.catch(() => undefined);
    current.then(
      (chunk) => {
        this.push(chunk);
      },
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A read still in flight must finish before its file descriptor is closed and reused.
    void Promise.allSettled([this.ahead])
      .then(() => this.handle.close())
      .then(
        () => callback(error),
        () => callback(error),
      );
  }
}

/**
 * Throws unless `path` is a relative, `/`-separated path of plain names: no empty, `.` or `..`
 * segments, no segment starting with a dot (the driver's own hidden names), no NUL, no backslash.
 */
export function assertSafeStoragePath(path: string): void {
  if (typeof path !== 'string') throw unsafePath(String(path), 'it is not a string');
  if (path === '') throw unsafePath(path, 'it is empty');
  if (path.startsWith('/')) throw unsafePath(path, 'it is absolute');
  if (path.includes('\0')) throw unsafePath(path, 'it contains NUL');
  if (path.includes('\\')) throw unsafePath(path, 'it contains a backslash');
  for (const segment of path.split('/')) {
    if (segment === '') throw unsafePath(path, 'it has an empty segment');
    if (segment.startsWith('.')) throw unsafePath(path, `segment "${segment}" starts with a dot`);
  }
}

function unsafePath(path: string, reason: string): StrataError {
  return new StrataError('UNSAFE_PATH', `refusing storage path ${JSON.stringify(path)}: ${reason}`, {
    userFacing: false,
  });
}

function checkPosition(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new StrataError('INVALID_ARGUMENT', `reader ${what} must be a non-negative integer, got ${value}`);
}

/** ENOTDIR: a path through an object (`blob/data/x`) is absent, as it would be in an object store. */
function isAbsent(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

type WriterState = 'open' | 'committed' | 'cancelled';

abstract class FileWriter implements ObjectWriter {
  private state: WriterState = 'open';
  private closed = false;
  private written = 0;

  constructor(
    protected readonly handle: FileHandle,
    private readonly startSize: number,
  ) {}

  get size(): number {
    return this.startSize + this.written;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.assertOpen('write');
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
    this.written += chunk.length;
  }

  async commit(): Promise<void> {
    this.assertOpen('commit');
    // A failed fsync leaves the writer open, so that cancel can still undo what it wrote.
    await this.handle.sync();
    this.closed = true;
    await this.handle.close();
    await this.publish();
    this.state = 'committed';
  }

  /** Idempotent, and a no-op after a commit, so `catch { await writer.cancel() }` is always safe. */
  async cancel(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'cancelled';
    try {
      await this.discard(this.startSize);
    } finally {
      if (!this.closed) {
        this.closed = true;
        await this.handle.close();
      }
    }
  }

  protected abstract publish(): Promise<void>;
  protected abstract discard(startSize: number): Promise<void>;

  private assertOpen(operation: string): void {
    if (this.state !== 'open') throw new StrataError('CONFLICT', `cannot ${operation}: writer ${this.state}`);
  }
}

/**
 * Continues an existing object in place (a resumed upload may be gigabytes: copying it aside to
 * append would be absurd). Appended bytes are visible before commit; only the upload session reads
 * its own data, and it never does so while one of its writers is open.
 */
class AppendingWriter extends FileWriter {
  protected async publish(): Promise<void> {}

  protected async discard(startSize: number): Promise<void> {
    await this.handle.truncate(startSize);
  }
}

/** A fresh object, written in the temp directory and renamed into place on commit. */
class ReplacingWriter extends FileWriter {
  constructor(
    handle: FileHandle,
    private readonly rename: () => Promise<void>,
    private readonly remove: () => Promise<void>,
  ) {
    super(handle, 0);
  }

  protected publish(): Promise<void> {
    return this.rename();
  }

  protected discard(): Promise<void> {
    return this.remove();
  }
}
