import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { crc32 as crc32Native, crc32Combine, crc32Portable } from './crc32.js';

const crc32 = crc32Native;

/** zlib's CRC-32 of `data` as gzip writes it: the trailer of a member (works on every Node). */
function zlibCrc32(data: Uint8Array): number {
  const member = gzipSync(data, { level: 0 });
  return member.readUInt32LE(member.length - 8);
}

for (const [name, crc32] of [
  ['crc32', crc32Native],
  ['crc32Portable', crc32Portable],
] as const) {
  describe(name, () => {
    it('gives the standard check values', () => {
      assert.equal(crc32(new Uint8Array(0)), 0);
      assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
      assert.equal(crc32(Buffer.from('a')), 0xe8b7be43);
      assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
      assert.equal(crc32(new Uint8Array(32)), 0x190a55ad);
      assert.equal(crc32(new Uint8Array(32).fill(0xff)), 0xff6cab0b);
    });

    it('agrees with zlib on arbitrary data of every length mod 8 and at any offset', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), (bytes, skip) => {
          const view = bytes.subarray(Math.min(skip, bytes.length));
          assert.equal(crc32(view), zlibCrc32(view));
        }),
        { numRuns: 300 },
      );
    });

    it('agrees with zlib on a large buffer', () => {
      const big = new Uint8Array(3 * 1024 * 1024 + 5);
      for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
      assert.equal(crc32(big), zlibCrc32(big));
    });

    it('reads a view into shared memory (the gzip workers hash their blocks in place)', () => {
      const shared = new Uint8Array(new SharedArrayBuffer(4096));
      for (let i = 0; i < shared.length; i++) shared[i] = (i * 7 + 3) & 0xff;
      const view = shared.subarray(5, 4000);
      assert.equal(crc32(view), zlibCrc32(Buffer.from(view)));
    });

    it('continues from a previous CRC', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
          assert.equal(crc32(b, crc32(a)), crc32(Buffer.concat([a, b])));
        }),
      );
    });
  });
}

describe('crc32Combine', () => {
  it('joins the CRCs of two pieces into the CRC of the whole', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }), (a, b) => {
        assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(Buffer.concat([a, b])));
      }),
      { numRuns: 300 },
    );
  });

  it('joins many pieces in order', () => {
    const pieces = [1, 0, 7, 8, 9, 1000, 65536, 3, 1 << 20].map((n, k) =>
      Uint8Array.from({ length: n }, (_, i) => (i * 31 + k * 7) & 0xff),
    );
    let combined = 0;
    for (const piece of pieces) combined = crc32Combine(combined, crc32(piece), piece.length);
    assert.equal(combined, crc32(Buffer.concat(pieces)));
  });

  it('leaves the first CRC alone when the second piece is empty', () => {
    assert.equal(crc32Combine(0xdeadbeef, 0, 0), 0xdeadbeef);
  });

  it('handles lengths beyond 32 bits consistently', () => {
    // crc(zeros(2n)) = combine(crc(zeros(n)), crc(zeros(n)), n): build 2^32 and 2^33 zero bytes
    // without allocating them, then check that appending 2^33 zeros at once equals twice 2^32.
    let zeros = crc32(new Uint8Array(1024));
    for (let n = 1024; n < 2 ** 32; n *= 2) zeros = crc32Combine(zeros, zeros, n);
    const zeros33 = crc32Combine(zeros, zeros, 2 ** 32);
    const start = crc32(Buffer.from('strata'));
    const once = crc32Combine(start, zeros33, 2 ** 33);
    const twice = crc32Combine(crc32Combine(start, zeros, 2 ** 32), zeros, 2 ** 32);
    assert.equal(once, twice);
    assert.notEqual(once, start);
  });

  it('rejects a length that is not a non-negative safe integer', () => {
    assert.throws(() => crc32Combine(0, 0, -1), RangeError);
    assert.throws(() => crc32Combine(0, 0, 1.5), RangeError);
  });
});
