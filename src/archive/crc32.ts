/**
 * CRC-32 as used by gzip, zip and PNG (IEEE 802.3, reflected polynomial 0xEDB88320).
 *
 * - `crc32` is zlib's own (`zlib.crc32`, ~5 GB/s on one core here) where Node has it (20.15 and
 *   later); on older Nodes it is `crc32Portable`, written out in JS.
 * - `crc32Portable` is table driven, slice-by-8: eight 256-entry tables let one step consume 8
 *   bytes with 8 independent lookups instead of 8 dependent ones, which is what makes it fast in
 *   JS (~1.3 GB/s on one core here).
 * - `crc32Combine` gives the CRC of A‖B from crc(A), crc(B) and len(B) alone. Parallel gzip needs it:
 *   each worker computes the CRC of its own block and the main thread joins them in order.
 *
 * All values are unsigned 32-bit numbers (0 … 2^32-1).
 */

import * as zlib from 'node:zlib';

const POLY = 0xedb88320;

/**
 * TABLES[k * 256 + b]: the CRC contribution of byte b followed by k zero bytes. Int32Array rather
 * than Uint32Array: the CRC is kept as a signed 32-bit value inside the loop, which V8 handles as
 * a small integer instead of a heap number.
 */
const TABLES: Int32Array = (() => {
  const tables = new Int32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    tables[b] = c;
  }
  for (let b = 0; b < 256; b++) {
    let c = tables[b]!;
    for (let k = 1; k < 8; k++) {
      c = tables[c & 0xff]! ^ (c >>> 8);
      tables[k * 256 + b] = c;
    }
  }
  return tables;
})();

/** Whether 32-bit words read from memory hold their bytes little end first, as CRC-32 wants. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Eight bytes at a time, given as two little-endian 32-bit words. */
function step8(c: number, lo: number, hi: number): number {
  const t = TABLES;
  const x = c ^ lo;
  return (
    t[1792 + (x & 0xff)]! ^
    t[1536 + ((x >>> 8) & 0xff)]! ^
    t[1280 + ((x >>> 16) & 0xff)]! ^
    t[1024 + (x >>> 24)]! ^
    t[768 + (hi & 0xff)]! ^
    t[512 + ((hi >>> 8) & 0xff)]! ^
    t[256 + ((hi >>> 16) & 0xff)]! ^
    t[hi >>> 24]!
  );
}

/**
 * Updates `crc` (the CRC of the data before, 0 for none) with `data` and returns the CRC of the
 * whole. `crc32(b, crc32(a))` equals `crc32(a ‖ b)`.
 */
export const crc32: (data: Uint8Array, crc?: number) => number =
  typeof zlib.crc32 === 'function' ? (data, crc = 0) => zlib.crc32(data, crc) : crc32Portable;

/** `crc32` in plain JS, for Nodes whose zlib does not expose one (before 20.15). */
export function crc32Portable(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  const n = data.length;
  let c = ~crc;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 16) {
    // Bytes up to a 4-byte boundary, then whole words straight from memory (about 1.4x faster
    // than assembling them from bytes), then the tail.
    for (const head = (4 - (data.byteOffset & 3)) & 3; i < head; i++)
      c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    const words = new Int32Array(data.buffer, data.byteOffset + i, ((n - i) >>> 3) << 1);
    for (let w = 0; w < words.length; w += 2) c = step8(c, words[w]!, words[w + 1]!);
    i += words.length * 4;
  } else {
    for (; i + 8 <= n; i += 8) {
      const lo = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      const hi = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      c = step8(c, lo, hi);
    }
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/*
 * Combining. Appending one zero bit to the message is a linear map on the 32-bit CRC register over
 * GF(2), so it is a 32×32 bit matrix; appending n zero bytes is that matrix to the power 8n, found
 * by repeated squaring in O(log n) matrix products. With the pre- and post-inversion of the CRC
 * cancelling out, crc(A‖B) = Z^len(B) · crc(A) ⊕ crc(B), where Z is the one-zero-byte operator.
 *
 * A matrix is stored as its 32 columns: column i is the image of the register with only bit i set.
 */

function matrixTimesVector(matrix: Uint32Array, vector: number): number {
  let result = 0;
  let v = vector >>> 0;
  for (let i = 0; v !== 0; i++, v >>>= 1) {
    if (v & 1) result ^= matrix[i]!;
  }
  return result >>> 0;
}

function matrixSquare(matrix: Uint32Array): Uint32Array<ArrayBuffer> {
  const square = new Uint32Array(32);
  for (let i = 0; i < 32; i++) square[i] = matrixTimesVector(matrix, matrix[i]!);
  return square;
}

/** The operator for one zero byte: the one-zero-bit operator raised to the 8th power. */
const ZERO_BYTE: Uint32Array = (() => {
  let bit = new Uint32Array(32);
  // Shifting right by one: bit 0 falls out and brings in the polynomial, bit i moves to bit i-1.
  bit[0] = POLY;
  for (let i = 1; i < 32; i++) bit[i] = (1 << (i - 1)) >>> 0;
  for (let k = 0; k < 3; k++) bit = matrixSquare(bit);
  return bit;
})();

/**
 * ZERO_BYTE^(2^k) for k = 0, 1, …: the operator for 2^k zero bytes, squared once and kept, so a
 * combine costs one matrix-vector product per set bit of the length (one for a power of two,
 * as parallel gzip's blocks are) instead of a matrix squaring per bit.
 */
const POWERS: Uint32Array[] = [ZERO_BYTE];

function zeroBytesOperator(k: number): Uint32Array {
  while (POWERS.length <= k) POWERS.push(matrixSquare(POWERS[POWERS.length - 1]!));
  return POWERS[k]!;
}

/**
 * The CRC-32 of A‖B given `crcA` = crc32(A), `crcB` = crc32(B) and `lengthB` = B's length in
 * bytes (any safe integer; lengths beyond 4 GiB work).
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (!Number.isSafeInteger(lengthB) || lengthB < 0) throw new RangeError(`invalid length ${lengthB}`);
  let shifted = crcA >>> 0;
  let remaining = lengthB;
  for (let k = 0; remaining > 0; k++) {
    if (remaining % 2 === 1) shifted = matrixTimesVector(zeroBytesOperator(k), shifted);
    remaining = Math.floor(remaining / 2);
  }
  return (shifted ^ crcB) >>> 0;
}
