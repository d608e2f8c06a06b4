/**
 * Layer compression: detection, streaming decompression, and compression with gzip (the
 * compatible default), zstd, or none.
 *
 * gzip is written pigz-style: the input is cut into fixed-size blocks, each block is raw-deflated
 * on its own in a small pool of worker threads, and the pieces are joined in order into ONE gzip
 * member whose CRC-32 is combined from per-block CRCs. The deflate is libdeflate's when strata's
 * addon is built, else zlib's primed with the 32 KiB before the block (deflate-engine.ts). The
 * output is a pure function of (input, level, blockSize, engine): block boundaries come from byte
 * offsets, never from how the input was chunked or which thread ran what, and the header is fixed
 * (mtime 0, OS 255). So a layer gives the same blob digest whether it was compressed with 1
 * worker, 8 workers, or none — which is what lets a blob digest be remembered per (diffID, codec).
 * Inside a block, incompressible segments are stored instead of deflated (gzip-worker.ts,
 * blockPlan), by a rule that reads only the block's bytes.
 *
 * Why worker_threads rather than zlib's async API (which runs on libuv's threadpool)? The libuv
 * pool (4 threads by default) also serves file-system I/O; filling it with deflate jobs would stall
 * the very reads that feed the compressor. Workers are separate threads, and they also take the
 * CRC off the main thread. Inputs of a single block never start a worker: that one block is
 * deflated here instead, with identical bytes (same engine, same options); with
 * `parallel: false` every block is, one at a time. If no worker can start at all (an unusual
 * loader or bundle), compression falls back to the same in-process path, with a warning.
 *
 * The price of blocks is small: the flush adds 4–5 bytes per block, and with zlib the 32 KiB
 * priming keeps the ratio within ~0.05% of one zlib stream (see bench/compression.ts); libdeflate,
 * unprimed, still ends smaller than zlib at the same level.
 */
import { availableParallelism } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import { PassThrough, Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createGunzip, deflateRaw, type ZlibOptions } from 'node:zlib';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { StrataError } from '../errors.js';
import type { Compression } from '../oci/mediatypes.js';
import { crc32, crc32Combine } from './crc32.js';
import { nativeDeflate } from './deflate-engine.js';
import {
  WORKER_ROLE,
  blockPlan,
  joinPieces,
  singlePieceOutput,
  type BlockJob,
  type BlockResult,
  type StoredPiece,
} from './gzip-worker.js';

/** What a file's first bytes can say: the layer codecs plus those ADD of a local archive accepts. */
export type ArchiveCompression = Compression | 'bzip2' | 'xz';

/** How many leading bytes detection looks at (bzip2 needs 10: "BZh", level, block magic). */
export const DETECT_BYTES = 10;

const KiB = 1024;
const MiB = 1024 * KiB;
const WINDOW = 32 * KiB;
export const DEFAULT_BLOCK_SIZE = MiB;
export const DEFAULT_GZIP_LEVEL = 6;
export const DEFAULT_ZSTD_LEVEL = 3;

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  if (bytes.length < magic.length) return false;
  return magic.every((b, i) => bytes[i] === b);
}

/**
 * The compression of a stream from its first bytes (give at least DETECT_BYTES when the stream has
 * them). bzip2 needs its full 10-byte signature — "BZh", a level digit and the first block's magic
 * (the BCD digits of pi) — so that an uncompressed tar whose first file is named "BZh…" is not
 * mistaken for one. zstd skippable frames count as zstd, since the zstd decoder reads past them.
 */
export function detectArchiveCompression(firstBytes: Uint8Array): ArchiveCompression {
  if (startsWith(firstBytes, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(firstBytes, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (
    firstBytes.length >= 4 &&
    (firstBytes[0]! & 0xf0) === 0x50 &&
    startsWith(firstBytes.subarray(1), [0x2a, 0x4d, 0x18])
  ) {
    return 'zstd';
  }
  if (startsWith(firstBytes, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (
    startsWith(firstBytes, [0x42, 0x5a, 0x68]) &&
    firstBytes.length >= 10 &&
    firstBytes[3]! >= 0x31 &&
    firstBytes[3]! <= 0x39 &&
    startsWith(firstBytes.subarray(4), [0x31, 0x41, 0x59, 0x26, 0x53, 0x59])
  ) {
    return 'bzip2';
  }
  return 'none';
}

/**
 * The layer compression of a stream from its first bytes: gzip, zstd, or 'none' for anything else
 * (bzip2 and xz included — they are not layer codecs; use detectArchiveCompression to see them).
 */
export function detectCompression(firstBytes: Uint8Array): Compression {
  const found = detectArchiveCompression(firstBytes);
  return found === 'gzip' || found === 'zstd' ? found : 'none';
}

// ---------------------------------------------------------------------------------------------
// Decompression

function corrupt(codec: 'gzip' | 'zstd', err: unknown): StrataError {
  const detail = err instanceof Error ? err.message : String(err);
  return new StrataError('INVALID_ARCHIVE', `corrupt ${codec} stream: ${detail}`, { cause: err });
}

/**
 * Holds back the first DETECT_BYTES bytes (however they are chunked), picks a decoder from them,
 * then feeds it everything, first the held bytes. Backpressure runs through: the decoder's output
 * is paused while this stream's buffer is full, which delays the decoder's write callbacks, which
 * delays this stream's.
 */
class AutoDecompress extends Transform {
  #head: Buffer[] = [];
  #headLength = 0;
  #mode: 'detecting' | 'none' | 'gzip' | 'zstd' = 'detecting';
  #decoder: Transform | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#mode === 'detecting') {
      this.#head.push(chunk);
      this.#headLength += chunk.length;
      if (this.#headLength < DETECT_BYTES) {
        callback();
        return;
      }
      const head = Buffer.concat(this.#head);
      this.#head = [];
      if (!this.#start(head, callback)) return;
      chunk = head;
    }
    this.#feed(chunk, callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#mode === 'detecting') {
      const head = Buffer.concat(this.#head);
      this.#head = [];
      if (!this.#start(head, callback)) return;
      if (head.length > 0) {
        this.#feed(head, (err) => (err ? callback(err) : this.#end(callback)));
        return;
      }
    }
    this.#end(callback);
  }

  override _read(size: number): void {
    this.#decoder?.resume();
    super._read(size);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#decoder?.destroy();
    callback(err);
  }

  /** Chooses the decoder; false (after failing the callback) for a codec we cannot decode. */
  #start(head: Buffer, callback: TransformCallback): boolean {
    const codec = detectArchiveCompression(head);
    if (codec === 'bzip2' || codec === 'xz') {
      callback(new StrataError('UNSUPPORTED', `${codec} decompression is not supported`));
      return false;
    }
    this.#mode = codec;
    if (codec === 'none') return true;
    const decoder: Transform =
      codec === 'gzip' ? createGunzip({ chunkSize: 64 * KiB }) : new DecompressStream();
    decoder.on('data', (data: Buffer) => {
      if (!this.push(data)) decoder.pause();
    });
    decoder.on('error', (err) => this.destroy(corrupt(codec, err)));
    this.#decoder = decoder;
    return true;
  }

  #feed(chunk: Buffer, callback: TransformCallback): void {
    const decoder = this.#decoder;
    if (decoder === undefined) {
      this.push(chunk);
      callback();
      return;
    }
    // On a decoder error the 'error' listener destroys this stream; the callback is then moot.
    decoder.write(chunk, (err) => {
      if (!err) callback();
    });
  }

  #end(callback: TransformCallback): void {
    const decoder = this.#decoder;
    if (decoder === undefined) {
      callback();
      return;
    }
    decoder.once('end', () => callback());
    decoder.end();
  }
}

/**
 * A stream of `source` decompressed according to its first bytes: gzip (all members of a
 * multi-member file), zstd (all frames), or passed through unchanged when it is not compressed.
 * Corrupt or truncated data fails the stream with StrataError INVALID_ARCHIVE; bzip2 and xz with
 * UNSUPPORTED. Errors of `source` itself are passed on as they are; destroying the result destroys
 * `source`.
 */
export function decompressStream(source: Readable): Readable {
  const output = new AutoDecompress();
  source.on('error', (err) => output.destroy(err));
  output.once('close', () => source.destroy());
  source.pipe(output);
  return output;
}

// ---------------------------------------------------------------------------------------------
// Compression

export interface CompressOptions {
  /** gzip 0–9 (default 6), zstd 1–22 (default 3; negative levels are zstd's fast modes). */
  level?: number;
  /**
   * Threads to compress with: true (default) for os.availableParallelism(), a number for that
   * many, false for none beyond zlib's own (gzip) or zstd's single helper thread. Output bytes do
   * not depend on this.
   */
  parallel?: boolean | number;
  /** gzip block size in bytes (default 1 MiB, 16 KiB – 64 MiB). Changing it changes the output. */
  blockSize?: number;
}

/**
 * A Transform that compresses what is written to it. gzip output is one deterministic gzip member
 * (see the top of this file), zstd one zstd frame; 'none' passes data through.
 */
export function compressStream(compression: Compression, options: CompressOptions = {}): Transform {
  const workers = resolveParallelism(options.parallel);
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip': {
      const level = checkLevel(options.level ?? DEFAULT_GZIP_LEVEL, 0, 9, 'gzip');
      const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
      if (!Number.isInteger(blockSize) || blockSize < 16 * KiB || blockSize > 64 * MiB) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `gzip block size must be 16 KiB – 64 MiB, not ${blockSize}`,
        );
      }
      return new ParallelGzip(level, blockSize, workers);
    }
    case 'zstd': {
      const level = checkLevel(options.level ?? DEFAULT_ZSTD_LEVEL, -131072, 22, 'zstd');
      // zstd's own multithreading. Its output is the same for any nbWorkers >= 1 (but differs from
      // nbWorkers = 0), so always using at least one helper keeps the digest independent of the
      // option, and keeps compression work off the event loop as a bonus.
      return new CompressStream({ compressionLevel: level, nbWorkers: Math.max(1, workers) });
    }
    default: {
      const unknown: never = compression;
      throw new StrataError('UNSUPPORTED', `unsupported compression ${String(unknown)}`);
    }
  }
}

/**
 * `compressStream` of what `handle` holds from its current position to its end, with the same
 * output. gzip reads the file straight into the shared blocks the workers compress: no read
 * buffers to allocate and collect, no copy of every byte into a block. `onBytes` is told how
 * many input bytes were read as they are. The handle is closed when the stream ends or fails.
 */
export function compressFile(
  handle: FileHandle,
  compression: Compression,
  options: CompressOptions & { onBytes?: (bytes: number) => void } = {},
): Readable {
  const compressor = compressStream(compression, options);
  if (compressor instanceof ParallelGzip) {
    void compressor.pump(handle, options.onBytes);
    return compressor;
  }
  const input = handle.createReadStream({ highWaterMark: MiB });
  const onBytes = options.onBytes;
  if (onBytes !== undefined) input.on('data', (chunk: string | Buffer) => onBytes(chunk.length));
  return pipeline(input, compressor, () => undefined);
}

function resolveParallelism(parallel: boolean | number | undefined): number {
  if (parallel === undefined || parallel === true) return availableParallelism();
  if (parallel === false) return 0;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 256) {
    throw new StrataError('INVALID_ARGUMENT', `parallel must be true, false or 1–256, not ${parallel}`);
  }
  return parallel;
}

function checkLevel(level: number, min: number, max: number, codec: string): number {
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${codec} level must be an integer ${min}–${max}, not ${level}`,
    );
  }
  return level;
}

interface BlockOutput {
  deflated: Uint8Array;
  crc: number;
}

const EMPTY = new Uint8Array(0);

/** The gzip header: deflate, no flags, mtime 0, XFL as zlib sets it for the level, OS 255 (unknown). */
function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level < 2 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff]);
}

/** The last (up to) 32 KiB of `previous ‖ data`: the dictionary for the block after `data`. */
function nextWindow(previous: Uint8Array, data: Uint8Array): Uint8Array {
  // Copied (never a view): the block it comes from is reused once its job is done.
  if (data.length >= WINDOW) return Uint8Array.prototype.slice.call(data, data.length - WINDOW);
  const keep = Math.min(previous.length, WINDOW - data.length);
  const window = new Uint8Array(keep + data.length);
  window.set(previous.subarray(previous.length - keep), 0);
  window.set(data, keep);
  return window;
}

function deflateAsync(data: Uint8Array, options: ZlibOptions): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    deflateRaw(data, options, (err, deflated) => (err ? reject(err) : resolve(deflated)));
  });
}

/**
 * The worker's plan (gzip-worker.ts blockPlan) run here, for the same bytes: libdeflate runs on
 * this thread (a run of at most a block, ~10 ms), zlib on its async API.
 */
async function deflateInProcess(job: BlockJob): Promise<BlockOutput> {
  const plan = blockPlan(job);
  const single = singlePieceOutput(plan);
  if (single !== undefined) return { deflated: single, crc: crc32(job.data) };
  const outputs: (Uint8Array | StoredPiece)[] = [];
  for (const piece of plan) {
    if (piece.kind === 'stored') outputs.push(piece);
    else
      outputs.push(
        nativeDeflate(piece.data, piece.level, piece.final) ??
          (await deflateAsync(piece.data, piece.options)),
      );
  }
  return { deflated: joinPieces(outputs), crc: crc32(job.data) };
}

/**
 * Read blocks left by finished streams, kept for the next ones by block size: fresh shared memory
 * costs a page fault per 4 KiB, and a push compresses one layer after another (a 459 MB push
 * faulted in ~60 MB of blocks). A block is kept only once its job is done, so no thread still
 * reads it; at most SHARED_SPARE_BLOCKS per size.
 */
const sharedSpares = new Map<number, Buffer[]>();
const SHARED_SPARE_BLOCKS = 16;

function keepSpares(blocks: Buffer[], blockSize: number): void {
  const kept = sharedSpares.get(blockSize) ?? [];
  while (blocks.length > 0 && kept.length < SHARED_SPARE_BLOCKS) kept.push(blocks.pop()!);
  blocks.length = 0;
  sharedSpares.set(blockSize, kept);
}

class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #blockSize: number;
  readonly #workers: number;
  /** Blocks submitted but not yet written out; bounds memory whatever the input size. */
  readonly #maxInFlight: number;
  #block: Buffer | undefined;
  #fill = 0;
  #window: Uint8Array = EMPTY;
  #nextId = 0;
  #nextOut = 0;
  #inFlight = 0;
  readonly #finished = new Map<number, BlockOutput & { length: number; block: Buffer | undefined }>();
  /** Blocks whose jobs are done, for reuse: fresh shared memory costs a page fault per 4 KiB. */
  readonly #spare: Buffer[] = [];
  #crc = 0;
  #total = 0;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;
  /** pump() waiting for the output to be taken. */
  #reader: (() => void) | undefined;

  constructor(level: number, blockSize: number, workers: number) {
    super();
    this.#level = level;
    this.#blockSize = blockSize;
    this.#workers = workers;
    // Twice the workers keeps every worker busy while finished blocks wait for the main thread.
    this.#maxInFlight = workers === 0 ? 1 : workers * 2;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#write(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.#finish().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#fail(err ?? new Error('stream destroyed'));
    keepSpares(this.#spare, this.#blockSize);
    pool.cancel(this);
    this.#wakeReader();
    callback(err);
  }

  override _read(size: number): void {
    this.#wakeReader();
    super._read(size);
  }

  /**
   * Compresses what `handle` reads (compressFile) instead of what is written: each block is read
   * from the file into its shared buffer directly. Reads wait while the compressed output not yet
   * taken downstream is over two blocks.
   */
  async pump(handle: FileHandle, onBytes: ((bytes: number) => void) | undefined): Promise<void> {
    const fresh = (): Buffer => this.#newBlock();
    try {
      for (;;) {
        while (this.readableLength > 2 * this.#blockSize && !this.#failure && !this.destroyed)
          await new Promise<void>((resolve) => (this.#reader = resolve));
        if (this.#failure || this.destroyed) return;
        if (this.#fill < this.#blockSize) {
          this.#block ??= fresh();
          const { bytesRead } = await handle.read(
            this.#block,
            this.#fill,
            this.#blockSize - this.#fill,
            null,
          );
          if (bytesRead === 0) break;
          this.#fill += bytesRead;
          onBytes?.(bytesRead);
          continue;
        }
        // As in #write, a full block is sent only once more input shows it is not the last one:
        // the next block is read first.
        const next = fresh();
        const { bytesRead } = await handle.read(next, 0, this.#blockSize, null);
        if (bytesRead === 0) {
          this.#spare.push(next);
          break;
        }
        await this.#submit(false);
        this.#block = next;
        this.#fill = bytesRead;
        onBytes?.(bytesRead);
      }
    } catch (err) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    } finally {
      await handle.close().catch(() => undefined);
    }
    this.end();
  }

  #wakeReader(): void {
    const resolve = this.#reader;
    this.#reader = undefined;
    resolve?.();
  }

  async #write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      // A full block is sent only once more input shows it is not the last one.
      if (this.#fill === this.#blockSize) await this.#submit(false);
      // Shared memory: posting the block to a worker then passes a reference instead of copying
      // a MiB through structured clone (~0.7 ms per block on the main thread), and the stream
      // still holds the bytes to redo the block if that worker dies. A submitted block is not
      // written again until its job is done (then it is reused, see #completed).
      this.#block ??= this.#newBlock();
      const n = chunk.copy(this.#block, this.#fill, offset, offset + (this.#blockSize - this.#fill));
      this.#fill += n;
      offset += n;
    }
  }

  async #finish(): Promise<void> {
    await this.#submit(true);
    while (this.#inFlight > 0) await this.#changed();
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(this.#crc, 0);
    trailer.writeUInt32LE(this.#total % 2 ** 32, 4);
    this.push(trailer);
    keepSpares(this.#spare, this.#blockSize);
  }

  /** A block to fill: this stream's spare, another's, or fresh shared memory. */
  #newBlock(): Buffer {
    return (
      this.#spare.pop() ??
      sharedSpares.get(this.#blockSize)?.pop() ??
      Buffer.from(new SharedArrayBuffer(this.#blockSize))
    );
  }

  async #submit(last: boolean): Promise<void> {
    while (this.#inFlight >= this.#maxInFlight) await this.#changed();
    // A view, not a copy, for a short last block: the buffer is shared (see #write).
    const block = this.#block;
    const data = block === undefined ? EMPTY : block.subarray(0, this.#fill);
    const job: BlockJob = { id: this.#nextId++, data, dictionary: this.#window, level: this.#level, last };
    this.#window = nextWindow(this.#window, data);
    this.#block = undefined;
    this.#fill = 0;
    this.#inFlight++;
    // An input of one block never starts a worker; and when the pool cannot run a job (no worker
    // could start, or one died) the block is deflated here instead — the bytes are the same.
    const inPool = this.#workers > 0 && !(last && job.id === 0);
    const output = inPool
      ? pool.run(job, this, this.#workers).catch((err: unknown) => {
          if (err instanceof PoolUnavailable && !this.#failure) return deflateInProcess(job);
          throw err;
        })
      : deflateInProcess(job);
    output.then(
      (out) => this.#completed(job.id, { ...out, length: data.length, block }),
      (err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))),
    );
    if (this.#failure) throw this.#failure;
  }

  #completed(id: number, output: BlockOutput & { length: number; block: Buffer | undefined }): void {
    if (this.#failure) return;
    // Its job is done with the input (the worker answered, or zlib returned): the next block can
    // be filled into it.
    if (output.block !== undefined) this.#spare.push(output.block);
    this.#finished.set(id, { ...output, block: undefined });
    for (let out = this.#finished.get(this.#nextOut); out; out = this.#finished.get(this.#nextOut)) {
      this.#finished.delete(this.#nextOut);
      if (this.#nextOut === 0) {
        this.push(gzipHeader(this.#level));
        this.#crc = out.crc;
      } else {
        this.#crc = crc32Combine(this.#crc, out.crc, out.length);
      }
      this.#total += out.length;
      this.push(out.deflated);
      this.#nextOut++;
      this.#inFlight--;
    }
    this.#notify();
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#finished.clear();
    this.#notify();
    if (!this.destroyed) this.destroy(err);
  }

  /** Resolves at the next completion or failure; throws if the stream has failed. */
  async #changed(): Promise<void> {
    if (this.#failure) throw this.#failure;
    await new Promise<void>((resolve) => (this.#wake = resolve));
    if (this.#failure) throw this.#failure;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Worker pool

/** The pool could not run the job (no worker would start, or its worker died); redo it in-process. */
class PoolUnavailable extends Error {}

/** Idle workers are kept this long for the next stream (a worker takes ~30 ms to start). */
const IDLE_MS = 5000;

interface Task {
  job: BlockJob;
  /** The stream the job is for, and how many of its jobs may run at once. */
  owner: object;
  limit: number;
  resolve: (output: BlockOutput) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  task: Task | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** Whether it has answered a job: proof that it can start at all. */
  served: boolean;
}

/**
 * Starts one worker. Compiled (dist/), its code is gzip-worker.js beside this file. Run from
 * source under tsx there is only gzip-worker.ts, and Node 20 does not carry tsx's loader hooks into
 * worker threads (`--import tsx` in execArgv notwithstanding; tsx registers itself on the main
 * thread only), so the worker first registers tsx itself and then imports the .ts entry.
 *
 * Workers get an empty execArgv rather than inheriting the parent's: they need no flag, and some
 * would break or burden them (`--input-type` makes a file entry fail, `--import` hooks would load
 * in every worker).
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    const entry = new URL('./gzip-worker.js', import.meta.url);
    return new Worker(entry, { execArgv: [], workerData: { role: WORKER_ROLE } });
  }
  const bootstrap = `
    import('node:worker_threads').then(async ({ workerData }) => {
      (await import(workerData.tsx)).register();
      await import(workerData.entry);
    });
  `;
  return new Worker(bootstrap, {
    eval: true,
    execArgv: [],
    workerData: {
      role: WORKER_ROLE,
      tsx: import.meta.resolve('tsx/esm/api'),
      entry: new URL('./gzip-worker.ts', import.meta.url).href,
    },
  });
}

/**
 * One process-wide pool, so that several layers compressed at once share the machine's cores
 * instead of each bringing its own set of threads. It starts no worker until a job needs one and
 * grows to the largest parallelism asked for; a stream's own parallelism caps how many of its jobs
 * run at once. A worker with no job is unref'd (it never keeps the process alive) and ends after
 * IDLE_MS.
 */
class BlockPool {
  readonly #workers = new Set<PoolWorker>();
  #queue: Task[] = [];
  readonly #running = new Map<object, number>();
  #size = 0;
  #unavailable: Error | undefined;

  run(job: BlockJob, owner: object, parallelism: number): Promise<BlockOutput> {
    if (this.#unavailable) return Promise.reject(new PoolUnavailable(this.#unavailable.message));
    this.#size = Math.max(this.#size, parallelism);
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, owner, limit: parallelism, resolve, reject });
      this.#dispatch();
    });
  }

  /**
   * Starts workers up to `parallelism` now, idle, so that the first blocks of a compression that
   * is about to begin do not wait for them (a worker takes ~60 ms to boot).
   */
  prestart(parallelism: number): void {
    if (this.#unavailable) return;
    this.#size = Math.max(this.#size, parallelism);
    while (this.#workers.size < this.#size) {
      const entry = this.#spawn();
      if (entry === undefined) return;
      this.#idle(entry);
    }
  }

  /** Drops the queued jobs of a stream that was destroyed. */
  cancel(owner: object): void {
    const [dropped, kept] = [
      this.#queue.filter((t) => t.owner === owner),
      this.#queue.filter((t) => t.owner !== owner),
    ];
    this.#queue = kept;
    for (const task of dropped) task.reject(new Error('cancelled'));
  }

  /** Ends every worker now; jobs they were running are redone in-process by their streams. */
  async terminate(): Promise<void> {
    const all = [...this.#workers];
    this.#workers.clear();
    await Promise.all(all.map((w) => this.#retire(w)));
  }

  get workerCount(): number {
    return this.#workers.size;
  }

  #dispatch(): void {
    for (let i = 0; i < this.#queue.length;) {
      const task = this.#queue[i]!;
      if ((this.#running.get(task.owner) ?? 0) >= task.limit) {
        i++;
        continue;
      }
      let entry: PoolWorker | undefined;
      for (const w of this.#workers) {
        if (w.task === undefined) {
          entry = w;
          break;
        }
      }
      if (entry === undefined && this.#workers.size < this.#size) entry = this.#spawn();
      if (entry === undefined) return;
      this.#queue.splice(i, 1);
      this.#assign(entry, task);
    }
  }

  #spawn(): PoolWorker | undefined {
    let worker: Worker;
    try {
      worker = startWorker();
    } catch (err) {
      this.#giveUp(err);
      return undefined;
    }
    const entry: PoolWorker = { worker, task: undefined, idleTimer: undefined, served: false };
    this.#workers.add(entry);
    worker.on('message', (result: BlockResult) => this.#answered(entry, result));
    worker.on('error', (err) => this.#died(entry, err));
    worker.on('exit', (code) => this.#died(entry, new Error(`gzip worker exited with code ${code}`)));
    return entry;
  }

  #assign(entry: PoolWorker, task: Task): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    entry.task = task;
    this.#running.set(task.owner, (this.#running.get(task.owner) ?? 0) + 1);
    entry.worker.ref();
    // Not transferred: the block lives in a SharedArrayBuffer (ParallelGzip #write), which the
    // worker sees without a copy while the stream keeps it to redo the block if the worker dies.
    entry.worker.postMessage(task.job);
  }

  #answered(entry: PoolWorker, result: BlockResult): void {
    const task = this.#release(entry);
    entry.served = true;
    if (task !== undefined) {
      if (result.ok) task.resolve({ deflated: result.deflated, crc: result.crc });
      else task.reject(new StrataError('INTERNAL', `gzip block compression failed: ${result.message}`));
    }
    this.#dispatch();
    if (entry.task === undefined) this.#idle(entry);
  }

  /** A worker with nothing to do: it keeps nothing alive, and ends after IDLE_MS. */
  #idle(entry: PoolWorker): void {
    entry.worker.unref();
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = setTimeout(() => {
      this.#workers.delete(entry);
      void this.#retire(entry);
    }, IDLE_MS).unref();
  }

  #died(entry: PoolWorker, err: Error): void {
    const known = this.#workers.delete(entry);
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    this.#release(entry)?.reject(new PoolUnavailable(err.message));
    // A worker that died before answering anything most likely could not start (say, its file is
    // missing from a bundle) and the next ones would not either: stop trying, and let every
    // stream compress in-process.
    if (known && !entry.served) this.#giveUp(err);
    else this.#dispatch();
  }

  /** Takes the task off a worker (it finished or failed), returning it. */
  #release(entry: PoolWorker): Task | undefined {
    const task = entry.task;
    entry.task = undefined;
    if (task !== undefined) {
      const running = (this.#running.get(task.owner) ?? 1) - 1;
      if (running > 0) this.#running.set(task.owner, running);
      else this.#running.delete(task.owner);
    }
    return task;
  }

  #giveUp(err: unknown): void {
    const first = this.#unavailable === undefined;
    this.#unavailable ??= err instanceof Error ? err : new Error(String(err));
    if (first) {
      process.emitWarning(
        `gzip worker threads are unavailable, compressing without them: ${this.#unavailable.message}`,
        { code: 'STRATA_GZIP_WORKERS' },
      );
    }
    const queued = this.#queue;
    this.#queue = [];
    for (const task of queued) task.reject(new PoolUnavailable(this.#unavailable.message));
  }

  async #retire(entry: PoolWorker): Promise<void> {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    await entry.worker.terminate();
  }
}

const pool = new BlockPool();

/**
 * Starts the gzip worker threads of a compression about to begin (`parallel` as in
 * CompressOptions), so that they boot while the caller does other work. They end after their
 * idle time if no compression comes.
 */
export function prestartCompressionWorkers(parallel?: boolean | number): void {
  const workers = resolveParallelism(parallel);
  if (workers > 0) pool.prestart(workers);
}

/**
 * Ends the gzip worker threads now instead of after their idle time. Not needed for the process
 * to exit (idle workers never keep it alive); for long-lived processes that want the memory back.
 */
export function terminateCompressionWorkers(): Promise<void> {
  return pool.terminate();
}

/** How many gzip worker threads exist right now (for tests and diagnostics). */
export function compressionWorkerCount(): number {
  return pool.workerCount;
}
