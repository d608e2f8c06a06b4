/**
 * One block of parallel gzip: raw deflate plus the block's CRC-32. Used two ways, which must give
 * identical bytes (parallel gzip promises the same output whatever runs it):
 *  - as a `worker_threads` entry point (the pool in compression.ts starts this file), where it
 *    answers `BlockJob` messages with `BlockResult`s;
 *  - imported by compression.ts for `blockPlan` and `joinPieces`: the in-process path runs the
 *    same plan (with zlib's async `deflateRaw` when zlib is the engine, see deflate-engine.ts).
 *    Importing has no side effect: the message loop starts only inside a worker started with
 *    `workerData.role === WORKER_ROLE`.
 */
import { deflateRawSync, constants, type ZlibOptions } from 'node:zlib';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { crc32 } from './crc32.js';
import { nativeDeflate } from './deflate-engine.js';

export const WORKER_ROLE = 'strata-gzip-block';

export interface BlockJob {
  id: number;
  /** The uncompressed block: a view of a SharedArrayBuffer, which the worker reads in place. */
  data: Uint8Array;
  /** Up to 32 KiB of input that precedes the block (empty for the first block). */
  dictionary: Uint8Array;
  level: number;
  /** The last block ends the deflate stream (Z_FINISH); others end byte-aligned (Z_SYNC_FLUSH). */
  last: boolean;
}

export type BlockResult =
  | { id: number; ok: true; deflated: Uint8Array<ArrayBuffer>; crc: number }
  | { id: number; ok: false; message: string };

/**
 * zlib options for one block. Priming with the previous 32 KiB (as pigz does) lets the block refer
 * back across the boundary, which costs almost nothing in speed and keeps the ratio close to a
 * single-threaded stream; the decoder needs nothing special because in the joined stream that data
 * really is in its window. Z_SYNC_FLUSH ends a block on a byte boundary with no final-block bit,
 * so blocks can simply be concatenated. The output buffer is sized for the worst case (zlib's
 * deflateBound, rounded up), so that zlib's bytes come back in one piece rather than in 16 KiB
 * chunks that Node then joins with a copy; its size does not change the bytes.
 */
function blockDeflateOptions(job: Pick<BlockJob, 'dictionary' | 'level' | 'last' | 'data'>): ZlibOptions {
  const options: ZlibOptions = {
    level: job.level,
    finishFlush: job.last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    chunkSize: Math.max(64 * 1024, job.data.length + (job.data.length >>> 10) * 6 + 64),
  };
  if (job.dictionary.length > 0) options.dictionary = job.dictionary;
  return options;
}

/**
 * Incompressible data (already-compressed files, random bytes) is not given to zlib: deflating it
 * costs ~22 ms per MiB at level 6 only to emit it at its own size, while a stored block is a copy.
 * (klauspost/compress, which skopeo and containerd use, skips such data too.) So a block is cut
 * into SEGMENT-byte segments at fixed offsets, each full segment whose byte
 * histogram is nearly flat is emitted as stored deflate blocks, and the runs between them are
 * deflated as before (primed with the 32 KiB preceding them, ending with Z_SYNC_FLUSH so the next
 * piece starts on a byte boundary). The decision depends on the block's bytes alone, so the output
 * stays a function of (input, level, block size). A block with no such segment is deflated in one
 * piece exactly as before this existed.
 *
 * Segments are small so that little noise at the edge of a noisy run lands in a segment that is
 * deflated anyway: 16 KiB segments made deflate ~35% faster than 64 KiB ones on half-noise data.
 */
const SEGMENT = 16 * 1024;
/** A stored block holds at most 65 535 bytes (its LEN field is 16 bits). */
const STORED_MAX = 0xffff;
const WINDOW = 32 * 1024;

/** The chi-squared limit of the flatness tests: random data scores ~255 ± 23 at any length. */
const FLATNESS_LIMIT = 512;
/** A segment's prefix checked first, so that ordinary (compressible) data costs little to classify. */
const PREFIX = 2 * 1024;

/**
 * Whether byte counts (four interleaved histograms in `counts`, 1024 entries) of n bytes are
 * nearly flat: the chi-squared statistic against a uniform distribution, 256·Σc²/n − n, is at
 * most FLATNESS_LIMIT. Integer arithmetic only (every value stays below 2^53), so the decision is
 * the same on every machine.
 */
function flat(counts: Uint32Array, n: number): boolean {
  let squares = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b]! + counts[256 + b]! + counts[512 + b]! + counts[768 + b]!;
    squares += c * c;
  }
  return 256 * squares - n * n <= FLATNESS_LIMIT * n;
}

/**
 * Whether a sample of the `length` bytes from data[start] is nearly flat (see `flat`): bytes 0, 5,
 * 10 and 15 of every 16, a quarter of them at a quarter of the cost. Those offsets fall in every
 * lane of 4-byte words and in half the lanes of 8-byte ones, so noise with a fixed byte in each
 * word or in each 64-bit value (compressible) is not mistaken for pure noise. Each offset has a
 * histogram of its own (four in `counts`), so that runs of one byte value do not make every
 * increment wait for the previous one. The statistic is as good on a sample as on every byte: it
 * needs a few counts per bin on average, and 2 KiB already gives 2.
 */
function sampleIsFlat(data: Uint8Array, start: number, length: number, counts: Uint32Array): boolean {
  counts.fill(0);
  const end = start + length;
  for (let i = start; i < end; i += 16) {
    counts[data[i]!]!++;
    counts[256 + data[i + 5]!]!++;
    counts[512 + data[i + 10]!]!++;
    counts[768 + data[i + 15]!]!++;
  }
  return flat(counts, length / 4);
}

/**
 * Whether data[start, start + SEGMENT) looks incompressible: samples of its first 2 KiB and of
 * the whole segment are both flat; the short check first turns ordinary data away cheaply. Random
 * data scores ~255 ± 23, far below the limit of 512. A sample at the limit has a collision
 * entropy of 8 − log2(1 + 512/4096) ≈ 7.83 bits per byte, so entropy coding could save at most
 * ~2% of such a segment, and real data (compressed files, noise) sits far closer to 8 bits.
 * What a histogram cannot see are repeats of noise within 32 KiB (LZ77 could still shrink those):
 * rare in layers, and a cost in ratio only, never in correctness.
 */
export function looksIncompressible(data: Uint8Array, start: number, counts: Uint32Array): boolean {
  return sampleIsFlat(data, start, PREFIX, counts) && sampleIsFlat(data, start, SEGMENT, counts);
}

/** `data` to go out as stored deflate blocks, the last of them final when `final` is. */
export interface StoredPiece {
  kind: 'stored';
  data: Uint8Array;
  final: boolean;
}

/**
 * `data` to be deflated at `level`, ending the stream when `final`: by libdeflate when it is the
 * engine (deflate-engine.ts), else by zlib with `options` (the same level and end, and the 32 KiB
 * before `data` as dictionary, which libdeflate cannot take).
 */
export interface DeflatePiece {
  kind: 'deflate';
  data: Uint8Array;
  level: number;
  final: boolean;
  options: ZlibOptions;
}

/** One piece of a block's output: deflated, or stored. */
export type BlockPiece = DeflatePiece | StoredPiece;

/** The 32 KiB of input before data[start] (the job's dictionary supplies what the block lacks). */
function windowBefore(job: Pick<BlockJob, 'data' | 'dictionary'>, start: number): Uint8Array {
  if (start >= WINDOW) return job.data.subarray(start - WINDOW, start);
  const keep = Math.min(job.dictionary.length, WINDOW - start);
  const window = new Uint8Array(keep + start);
  window.set(job.dictionary.subarray(job.dictionary.length - keep), 0);
  window.set(job.data.subarray(0, start), keep);
  return window;
}

/** The size of `piece` as stored deflate blocks: 5 bytes of header per block of up to 65 535. */
function storedSize(piece: StoredPiece): number {
  return piece.data.length + 5 * Math.ceil(piece.data.length / STORED_MAX);
}

/**
 * Writes `piece` as stored deflate blocks into `out` at `at`, returning where it ends. The writer
 * is on a byte boundary here (the gzip header, a Z_SYNC_FLUSH or another stored block came
 * before), so a block header is one byte: BFINAL, then BTYPE 00, then padding; LEN and NLEN
 * follow, little-endian.
 */
function writeStored(piece: StoredPiece, out: Uint8Array, at: number): number {
  const { data, final } = piece;
  for (let offset = 0; offset < data.length; offset += STORED_MAX) {
    const length = Math.min(STORED_MAX, data.length - offset);
    out[at] = final && offset + length === data.length ? 1 : 0;
    out[at + 1] = length & 0xff;
    out[at + 2] = length >>> 8;
    out[at + 3] = ~length & 0xff;
    out[at + 4] = (~length >>> 8) & 0xff;
    out.set(data.subarray(offset, offset + length), at + 5);
    at += 5 + length;
  }
  return at;
}

/**
 * How a block is compressed: the pieces, in order, whose outputs are concatenated. Both the
 * worker and the in-process path run exactly this plan (only how zlib is called differs), which
 * is what keeps their bytes identical.
 */
export function blockPlan(job: BlockJob): BlockPiece[] {
  const { data } = job;
  const whole: BlockPiece[] = [
    { kind: 'deflate', data, level: job.level, final: job.last, options: blockDeflateOptions(job) },
  ];
  // Level 0 is zlib's own stored mode already; a block under one segment has nothing to skip.
  if (job.level === 0 || data.length < SEGMENT) return whole;
  const counts = new Uint32Array(1024);
  // Runs of consecutive segments of one kind: [start, end, stored].
  const runs: [number, number, boolean][] = [];
  for (let start = 0; start < data.length; start += SEGMENT) {
    const end = Math.min(start + SEGMENT, data.length);
    const stored = end - start === SEGMENT && looksIncompressible(data, start, counts);
    const last = runs[runs.length - 1];
    if (last !== undefined && last[2] === stored) last[1] = end;
    else runs.push([start, end, stored]);
  }
  if (runs.length === 1 && runs[0]![2] === false) return whole;
  return runs.map(([start, end, stored], index): BlockPiece => {
    const final = job.last && index === runs.length - 1;
    const slice = data.subarray(start, end);
    if (stored) return { kind: 'stored', data: slice, final };
    const dictionary = windowBefore(job, start);
    return {
      kind: 'deflate',
      data: slice,
      level: job.level,
      final,
      options: blockDeflateOptions({ data: slice, dictionary, level: job.level, last: final }),
    };
  });
}

/**
 * The block's output: the pieces' outputs (zlib's bytes for a deflated piece, the piece itself
 * for a stored one) written once into one array of their total size. The array owns its whole
 * ArrayBuffer, so it is transferred to the main thread without a copy; it is not zero-filled
 * first (every byte is written).
 */
export function joinPieces(outputs: readonly (Uint8Array | StoredPiece)[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const output of outputs) length += output instanceof Uint8Array ? output.length : storedSize(output);
  const joined = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer);
  let at = 0;
  for (const output of outputs) {
    if (output instanceof Uint8Array) {
      joined.set(output, at);
      at += output.length;
    } else {
      at = writeStored(output, joined, at);
    }
  }
  return joined;
}

/** A piece deflated here and now: by libdeflate, or by zlib when it is the engine or refuses. */
export function deflatePieceSync(piece: DeflatePiece): Uint8Array {
  return nativeDeflate(piece.data, piece.level, piece.final) ?? deflateRawSync(piece.data, piece.options);
}

/**
 * A block that is one deflated piece (no noise in it) is libdeflate's output as it is: that
 * array is already the block's whole output, in a buffer of its own, so joinPieces' copy is
 * skipped. undefined when the plan has more pieces or zlib deflates.
 */
export function singlePieceOutput(plan: readonly BlockPiece[]): Uint8Array<ArrayBuffer> | undefined {
  const only = plan.length === 1 ? plan[0] : undefined;
  return only?.kind === 'deflate' ? nativeDeflate(only.data, only.level, only.final) : undefined;
}

function compressBlock(job: BlockJob): BlockResult {
  try {
    const plan = blockPlan(job);
    const deflated =
      singlePieceOutput(plan) ??
      joinPieces(plan.map((piece) => (piece.kind === 'stored' ? piece : deflatePieceSync(piece))));
    return { id: job.id, ok: true, deflated, crc: crc32(job.data) };
  } catch (err) {
    return { id: job.id, ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

function isWorkerData(data: unknown): data is { role: string } {
  return typeof data === 'object' && data !== null && 'role' in data;
}

if (!isMainThread && parentPort && isWorkerData(workerData) && workerData.role === WORKER_ROLE) {
  const port = parentPort;
  port.on('message', (job: BlockJob) => {
    const result = compressBlock(job);
    port.postMessage(result, result.ok ? [result.deflated.buffer] : []);
  });
}
