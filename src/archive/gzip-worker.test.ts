import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { blockPlan, joinPieces, looksIncompressible, type BlockJob } from './gzip-worker.js';
import { noise } from './testing/helpers.js';

const KiB = 1024;
const SEGMENT = 16 * KiB;

function counts(): Uint32Array {
  return new Uint32Array(1024);
}

function text(size: number): Uint8Array {
  return Buffer.from('a line of an ordinary config file = value\n'.repeat(size / 40 + 1)).subarray(0, size);
}

describe('looksIncompressible', () => {
  it('says yes to noise, from any generator, at any offset', () => {
    for (let seed = 1; seed <= 50; seed++) {
      assert.ok(looksIncompressible(noise(SEGMENT, seed), 0, counts()), `seed ${seed}`);
    }
    const random = randomBytes(4 * SEGMENT + 7);
    for (const start of [0, 7, SEGMENT + 3, 3 * SEGMENT]) {
      assert.ok(looksIncompressible(random, start, counts()), `offset ${start}`);
    }
  });

  it('says no to text, and to noise followed by text inside the segment', () => {
    assert.equal(looksIncompressible(text(SEGMENT), 0, counts()), false);
    const mixed = new Uint8Array(SEGMENT);
    mixed.set(noise(4 * KiB, 3));
    mixed.set(text(SEGMENT - 4 * KiB), 4 * KiB);
    assert.equal(looksIncompressible(mixed, 0, counts()), false);
  });

  it('says no to noise with a fixed byte in every 32-bit word or in every 64-bit value', () => {
    // The sample takes bytes 0, 5, 10, 15 of each 16: every lane of a word, so these are seen.
    for (const [period, lane] of [
      [4, 0],
      [4, 1],
      [4, 2],
      [4, 3],
      [8, 5],
      [8, 7],
    ] as const) {
      const data = noise(SEGMENT, period * 10 + lane);
      for (let i = lane; i < data.length; i += period) data[i] = 0;
      assert.equal(looksIncompressible(data, 0, counts()), false, `period ${period}, lane ${lane}`);
    }
    // Noise from a 64-symbol alphabet (base64 of noise) is compressible too.
    const base64 = Buffer.from(Buffer.from(noise(SEGMENT, 9)).toString('base64')).subarray(0, SEGMENT);
    assert.equal(looksIncompressible(base64, 0, counts()), false);
  });
});

describe('blockPlan', () => {
  const job = (data: Uint8Array, last = false): BlockJob => ({
    id: 1,
    data,
    dictionary: new Uint8Array(0),
    level: 6,
    last,
  });
  /** What the worker sends: the pieces run and joined. */
  const run = (block: BlockJob): Uint8Array =>
    joinPieces(
      blockPlan(block).map((piece) =>
        piece.kind === 'stored' ? piece : deflateRawSync(piece.data, piece.options),
      ),
    );

  it('stores noise, deflates text, and the joined pieces inflate to the block', () => {
    const data = new Uint8Array(8 * SEGMENT);
    data.set(text(3 * SEGMENT));
    data.set(noise(3 * SEGMENT, 5), 3 * SEGMENT);
    data.set(text(2 * SEGMENT), 6 * SEGMENT);
    const plan = blockPlan(job(data, true));
    assert.deepEqual(
      plan.map((piece) => piece.kind),
      ['deflate', 'stored', 'deflate'],
    );
    assert.ok(Buffer.from(inflateRawSync(run(job(data, true)))).equals(data));
  });

  it('deflates a block with no noise in one piece, as zlib alone would', () => {
    const data = text(4 * SEGMENT);
    const plan = blockPlan(job(data));
    assert.equal(plan.length, 1);
    assert.equal(plan[0]!.kind, 'deflate');
  });
});
