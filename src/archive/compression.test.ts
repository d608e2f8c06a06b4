import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { isStrataError } from '../errors.js';
import type { Compression } from '../oci/mediatypes.js';
import { noise } from './testing/helpers.js';
import {
  compressFile,
  compressStream,
  compressionWorkerCount,
  decompressStream,
  detectArchiveCompression,
  detectCompression,
  prestartCompressionWorkers,
  terminateCompressionWorkers,
  type CompressOptions,
} from './compression.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');

/** Deterministic data that compresses like real files: runs of text between runs of noise. */
function sample(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const words = Buffer.from('layer snapshot digest manifest overlay whiteout blob index config tar ');
  let i = 0;
  while (i < size) {
    const run = 64 + (next() % 4096);
    const noisy = next() % 3 === 0;
    for (let j = 0; j < run && i < size; j++, i++)
      out[i] = noisy ? next() & 0xff : words[(i + j) % words.length]!;
  }
  return out;
}

function chunked(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return chunks;
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function compress(
  data: Buffer,
  compression: Compression,
  options: CompressOptions = {},
  chunks: Buffer[] = chunked(data, 64 * KiB),
): Promise<Buffer> {
  let out: Buffer = Buffer.alloc(0);
  await pipeline(
    Readable.from(chunks),
    compressStream(compression, options),
    async (s: AsyncIterable<Buffer>) => {
      out = await collect(s);
    },
  );
  return out;
}

function decompress(data: Buffer, chunks: Buffer[] = chunked(data, 64 * KiB)): Promise<Buffer> {
  return collect(decompressStream(Readable.from(chunks)));
}

interface ToolResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function tool(command: string, args: string[], input: Buffer): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.end(input);
  });
}

/** gzip and pigz both decompress `compressed` to exactly `data`. */
async function assertToolsDecompress(compressed: Buffer, data: Buffer): Promise<void> {
  for (const command of ['gzip', 'pigz']) {
    const result = await tool(command, ['-dc'], compressed);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.equals(data), `${command} -dc gave other bytes`);
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isStrataError(err), `expected a StrataError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('detectArchiveCompression / detectCompression', () => {
  it('recognises each magic number', () => {
    assert.equal(detectArchiveCompression(gzipSync('x')), 'gzip');
    assert.equal(detectArchiveCompression(zstdCompress(Buffer.from('x'))), 'zstd');
    assert.equal(detectArchiveCompression(Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), 'zstd');
    assert.equal(detectArchiveCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0])), 'xz');
    assert.equal(detectArchiveCompression(Buffer.from('BZh91AY&SY\x00\x00')), 'bzip2');
    assert.equal(detectArchiveCompression(Buffer.from('hello world')), 'none');
  });

  it('does not take text that merely starts like a signature for a compressed stream', () => {
    assert.equal(detectArchiveCompression(Buffer.from('BZh9 is a file name in a tar')), 'none');
    assert.equal(detectArchiveCompression(Buffer.from('BZh')), 'none');
    assert.equal(detectArchiveCompression(Buffer.from([0xfd, 0x37, 0x7a])), 'none');
    assert.equal(detectArchiveCompression(Buffer.from([0x1f])), 'none');
    assert.equal(detectArchiveCompression(new Uint8Array(0)), 'none');
  });

  it('reports only layer codecs from detectCompression', () => {
    assert.equal(detectCompression(gzipSync('x')), 'gzip');
    assert.equal(detectCompression(zstdCompress(Buffer.from('x'))), 'zstd');
    assert.equal(detectCompression(Buffer.from('BZh91AY&SY')), 'none');
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'none');
  });
});

describe('round trips', () => {
  const block = 64 * KiB;
  const sizes = [0, 1, block - 1, block, block + 1, 3 * block + 7];
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    for (const size of sizes) {
      it(`${compression}, ${size} bytes`, async () => {
        const data = sample(size, size + 1);
        const packed = await compress(data, compression, { blockSize: block, parallel: 2 });
        assert.equal(detectCompression(packed), size === 0 && compression === 'none' ? 'none' : compression);
        assert.ok((await decompress(packed)).equals(data));
        if (compression === 'gzip') assert.ok(gunzipSync(packed).equals(data));
        if (compression === 'zstd') assert.ok(zstdDecompress(packed).equals(data));
      });
    }
  }

  it('gzip and zstd, 6 MiB with the default block size', async () => {
    const data = sample(6 * MiB, 7);
    for (const compression of ['gzip', 'zstd'] as const) {
      const packed = await compress(data, compression);
      assert.ok(packed.length < data.length * 0.8, `${compression} should compress`);
      assert.ok((await decompress(packed)).equals(data));
    }
  });

  it('gzip of arbitrary bytes in arbitrary chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 80 * KiB }),
        fc.array(fc.integer({ min: 1, max: 40 * KiB }), { minLength: 1, maxLength: 8 }),
        async (bytes, cuts) => {
          const data = Buffer.from(bytes);
          const chunks: Buffer[] = [];
          for (let i = 0, k = 0; i < data.length; k++) {
            const n = cuts[k % cuts.length]!;
            chunks.push(data.subarray(i, i + n));
            i += n;
          }
          const packed = await compress(data, 'gzip', { blockSize: 16 * KiB, parallel: 2 }, chunks);
          assert.ok(gunzipSync(packed).equals(data));
          // The block boundaries come from byte offsets, never from the chunking.
          assert.ok(packed.equals(await compress(data, 'gzip', { blockSize: 16 * KiB, parallel: false })));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('zstd of arbitrary bytes in arbitrary chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 64 * KiB }),
        fc.integer({ min: 1, max: 9000 }),
        async (bytes, cut) => {
          const data = Buffer.from(bytes);
          const packed = await compress(data, 'zstd', {}, chunked(data, cut));
          assert.ok((await decompress(packed, chunked(packed, cut))).equals(data));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('parallel gzip', () => {
  it('gives the same bytes with no worker, 1 worker and 2 workers, whatever the chunking', async () => {
    const data = sample(3 * MiB + 12345, 3);
    const options = { blockSize: 128 * KiB };
    const none = await compress(data, 'gzip', { ...options, parallel: false });
    const one = await compress(data, 'gzip', { ...options, parallel: 1 }, chunked(data, 1000));
    const two = await compress(data, 'gzip', { ...options, parallel: 2 }, chunked(data, 300 * KiB));
    const all = await compress(data, 'gzip', options, [data]);
    assert.equal(sha(one), sha(none));
    assert.equal(sha(two), sha(none));
    assert.equal(sha(all), sha(none));
    assert.ok(gunzipSync(two).equals(data));
  });

  it('compressFile gives the bytes compressStream gives, for every codec and any file size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-compress-file-'));
    try {
      for (const size of [0, 1000, 128 * KiB, 3 * 128 * KiB, 2 * MiB + 777]) {
        const data = sample(size, size + 1);
        const path = join(dir, `in-${size}`);
        await writeFile(path, data);
        for (const codec of ['gzip', 'zstd', 'none'] as const) {
          const options = { blockSize: 128 * KiB };
          let read = 0;
          const fromFile = await collect(
            compressFile(await open(path, 'r'), codec, { ...options, onBytes: (n) => (read += n) }),
          );
          assert.equal(sha(fromFile), sha(await compress(data, codec, options)), `${codec} of ${size} bytes`);
          assert.equal(read, size, 'every input byte is reported');
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('compressFile waits for a slow reader instead of buffering the whole output', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-compress-file-'));
    try {
      const path = join(dir, 'noise');
      const data = noise(4 * MiB, 9);
      await writeFile(path, data);
      let read = 0;
      const stream = compressFile(await open(path, 'r'), 'gzip', {
        blockSize: 64 * KiB,
        onBytes: (n) => (read += n),
      });
      // Nothing is consumed: the pump stops once a few blocks of output wait.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(read < data.length, `read ${read} of ${data.length} bytes with nobody reading`);
      assert.ok(gunzipSync(await collect(stream)).equals(data));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('really runs in worker threads', async () => {
    await compress(sample(2 * MiB), 'gzip', { blockSize: 64 * KiB, parallel: 2 });
    assert.ok(compressionWorkerCount() >= 1, 'no worker started: the pool fell back to in-process');
  });

  it('writes a fixed header: mtime 0, no name, OS 255', async () => {
    const packed = await compress(sample(1000), 'gzip');
    assert.deepEqual([...packed.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    const best = await compress(sample(1000), 'gzip', { level: 9 });
    assert.equal(best[8], 2);
  });

  it('compresses about as well as single-stream zlib', async () => {
    const data = sample(4 * MiB, 11);
    const ours = await compress(data, 'gzip');
    const zlib = gzipSync(data);
    assert.ok(ours.length <= zlib.length * 1.02, `${ours.length} vs zlib ${zlib.length}`);
  });

  it('honours the level', async () => {
    const data = sample(512 * KiB, 5);
    const fast = await compress(data, 'gzip', { level: 1, blockSize: 64 * KiB });
    const stored = await compress(data, 'gzip', { level: 0, blockSize: 64 * KiB });
    assert.ok(stored.length > data.length);
    assert.ok(fast.length < stored.length);
    assert.ok(gunzipSync(stored).equals(data));
    assert.ok(gunzipSync(fast).equals(data));
  });

  it('stores incompressible segments: same bytes on every path, read by zlib, gzip and pigz', async () => {
    // Noise whose runs straddle segment (64 KiB) and block boundaries, text that refers back
    // across a stored run, and noise at the very end, so the last piece is a final stored block.
    const text = sample(300 * KiB, 13).filter((b) => b >= 0x20);
    const data = Buffer.concat([
      text.subarray(0, 100 * KiB),
      noise(700 * KiB + 17, 1),
      text.subarray(0, 150 * KiB),
      noise(64 * KiB, 2),
      text,
      noise(200 * KiB + 5, 3),
    ]);
    for (const blockSize of [128 * KiB, MiB]) {
      const none = await compress(data, 'gzip', { blockSize, parallel: false });
      const one = await compress(data, 'gzip', { blockSize, parallel: 1 }, chunked(data, 999));
      const two = await compress(data, 'gzip', { blockSize, parallel: 2 }, [data]);
      assert.equal(sha(one), sha(none));
      assert.equal(sha(two), sha(none));
      assert.ok(gunzipSync(two).equals(data));
      await assertToolsDecompress(two, data);
    }
    // Stored noise costs 5 bytes per 64 KiB; zlib's deflate of it comes out a little larger.
    const random = noise(2 * MiB, 4);
    const packed = await compress(random, 'gzip');
    assert.ok(packed.length <= random.length + 5 * 64 + 18, `${packed.length}`);
    assert.ok(packed.length <= gzipSync(random).length, `${packed.length}`);
    assert.ok(gunzipSync(packed).equals(random));
    // The smallest blocks are one segment each.
    const small = await compress(random, 'gzip', { blockSize: 16 * KiB, parallel: false });
    assert.ok(small.length <= random.length + 5 * 128 + 18, `${small.length}`);
    assert.ok(gunzipSync(small).equals(random));
  });

  it('is accepted by gzip -t, pigz -d and zstd -t, which decompress it to the input', async () => {
    const data = sample(2 * MiB + 3, 9);
    const gz = await compress(data, 'gzip', { blockSize: 64 * KiB });
    assert.equal((await tool('gzip', ['-t'], gz)).code, 0);
    await assertToolsDecompress(gz, data);
    const empty = await compress(Buffer.alloc(0), 'gzip');
    assert.equal((await tool('gzip', ['-t'], empty)).code, 0);

    const zst = await compress(data, 'zstd');
    assert.equal((await tool('zstd', ['-tq'], zst)).code, 0);
    const viaZstd = await tool('zstd', ['-dcq'], zst);
    assert.equal(viaZstd.code, 0, viaZstd.stderr);
    assert.ok(viaZstd.stdout.equals(data));
  });

  it('keeps memory bounded: a consumer that stops reading stops the source', async () => {
    const blockSize = 64 * KiB;
    let produced = 0;
    const source = new Readable({
      read() {
        produced += 16 * KiB;
        this.push(sample(16 * KiB, produced));
      },
    });
    const gzip = compressStream('gzip', { blockSize, parallel: 2 });
    source.pipe(gzip);
    // Nobody reads `gzip`: give the pipeline time to fill up, then check it stalled.
    let previous = -1;
    while (produced !== previous) {
      previous = produced;
      await new Promise((r) => setTimeout(r, 300));
    }
    source.unpipe(gzip);
    source.destroy();
    gzip.destroy();
    assert.ok(produced < 16 * blockSize, `read ${produced} bytes without any being consumed`);
  });

  it('survives its workers being terminated mid-stream (blocks are redone in-process)', async () => {
    const data = sample(4 * MiB, 13);
    const expected = await compress(data, 'gzip', { blockSize: 64 * KiB, parallel: false });
    const gzip = compressStream('gzip', { blockSize: 64 * KiB, parallel: 2 });
    let terminated = false;
    const out: Buffer[] = [];
    await pipeline(Readable.from(chunked(data, 64 * KiB)), gzip, async (s: AsyncIterable<Buffer>) => {
      for await (const c of s) {
        out.push(c);
        if (!terminated) {
          terminated = true;
          await terminateCompressionWorkers();
        }
      }
    });
    assert.equal(sha(Buffer.concat(out)), sha(expected));
    // The pool still works afterwards.
    await compress(sample(MiB), 'gzip', { blockSize: 64 * KiB, parallel: 2 });
    assert.ok(compressionWorkerCount() >= 1);
  });

  it('prestarts its workers, which then serve the next stream', async () => {
    await terminateCompressionWorkers();
    prestartCompressionWorkers(3);
    assert.equal(compressionWorkerCount(), 3);
    const data = sample(2 * MiB, 21);
    const out = await compress(data, 'gzip', { blockSize: 64 * KiB, parallel: 3 });
    assert.ok(gunzipSync(out).equals(data));
    assert.equal(compressionWorkerCount(), 3);
    prestartCompressionWorkers(false);
    assert.equal(compressionWorkerCount(), 3);
  });

  it('can be destroyed mid-stream without disturbing later streams', async () => {
    const gzip = compressStream('gzip', { blockSize: 64 * KiB, parallel: 2 });
    gzip.on('error', () => undefined);
    gzip.write(sample(MiB));
    gzip.destroy();
    const data = sample(MiB, 2);
    assert.ok(gunzipSync(await compress(data, 'gzip', { blockSize: 64 * KiB })).equals(data));
  });

  it('lets the process exit once a stream ends: idle workers never hold it', async () => {
    const url = new URL('./compression.ts', import.meta.url).href;
    const script = `
      const { compressStream, compressionWorkerCount } = await import(${JSON.stringify(url)});
      const gzip = compressStream('gzip', { blockSize: 65536, parallel: 2 });
      let n = 0;
      gzip.on('data', (c) => (n += c.length));
      gzip.on('end', () => console.log('done', n, compressionWorkerCount(), Date.now()));
      gzip.end(Buffer.alloc(4 << 20, 'strata '));
    `;
    const start = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const exited = Date.now();
    assert.equal(code, 0, `child failed or hung (${exited - start} ms): ${stderr}`);
    const match = /^done (\d+) (\d+) (\d+)$/m.exec(stdout);
    assert.ok(match, stdout + stderr);
    assert.ok(Number(match[2]) >= 1, 'the child used no worker');
    // Idle workers would end on their own after 5 s; the process must not wait for that.
    assert.ok(
      exited - Number(match[3]) < 2500,
      `exited ${exited - Number(match[3])} ms after the stream ended`,
    );
  });

  it('works from the compiled dist/ build too (worker resolved as .js)', async (t) => {
    const compiled = join(REPO, 'dist', 'archive', 'compression.js');
    const worker = join(REPO, 'dist', 'archive', 'gzip-worker.js');
    const sources = ['compression.ts', 'gzip-worker.ts', 'crc32.ts', 'deflate-engine.ts'].map(
      (f) => statSync(join(HERE, f)).mtimeMs,
    );
    if (!existsSync(compiled) || !existsSync(worker) || statSync(worker).mtimeMs < Math.max(...sources)) {
      t.skip('dist/ is missing or older than the sources (run npm run build)');
      return;
    }
    const data = sample(MiB + 5, 21);
    const script = `
      const { compressStream, compressionWorkerCount } = await import(${JSON.stringify(new URL(`file://${compiled}`).href)});
      const { createHash } = await import('node:crypto');
      const chunks = [];
      process.stdin.pipe(compressStream('gzip', { blockSize: 65536, parallel: 2 }))
        .on('data', (c) => chunks.push(c))
        .on('end', () => console.log(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), compressionWorkerCount()));
    `;
    const result = await tool(process.execPath, ['--input-type=module', '-e', script], data);
    assert.equal(result.code, 0, result.stderr);
    const [digest, workers] = result.stdout.toString().trim().split(' ');
    assert.equal(digest, sha(await compress(data, 'gzip', { blockSize: 64 * KiB })));
    assert.ok(Number(workers) >= 1, 'the compiled build used no worker');
  });

  it('rejects bad options', () => {
    const invalid = (f: () => unknown) =>
      assert.throws(f, (err: unknown) => isStrataError(err, 'INVALID_ARGUMENT'));
    invalid(() => compressStream('gzip', { level: 10 }));
    invalid(() => compressStream('gzip', { level: 1.5 }));
    invalid(() => compressStream('gzip', { blockSize: 1000 }));
    invalid(() => compressStream('gzip', { parallel: 0 }));
    invalid(() => compressStream('zstd', { level: 23 }));
  });
});

describe('decompressStream', () => {
  const text = sample(100 * KiB, 4);

  it('detects the codec from 1-byte first chunks', async () => {
    for (const compression of ['gzip', 'zstd', 'none'] as const) {
      const packed = await compress(text, compression);
      const chunks = [...chunked(packed.subarray(0, 16), 1), packed.subarray(16)];
      assert.ok((await decompress(packed, chunks)).equals(text), compression);
    }
  });

  it('passes short uncompressed input through, in 1-byte chunks or not', async () => {
    for (const input of ['', 'a', 'BZh', 'hello']) {
      const data = Buffer.from(input);
      assert.equal((await decompress(data, chunked(data, 1))).toString(), input);
      assert.equal((await decompress(data, [data])).toString(), input);
    }
  });

  it('decompresses every member of a multi-member gzip file', async () => {
    const ours = await compress(Buffer.from('third, from strata'), 'gzip');
    const file = Buffer.concat([gzipSync('first, '), gzipSync(''), gzipSync('second, '), ours]);
    assert.equal((await decompress(file)).toString(), 'first, second, third, from strata');
    assert.equal((await decompress(file, chunked(file, 3))).toString(), 'first, second, third, from strata');
  });

  it('decompresses every frame of a multi-frame zstd file', async () => {
    const file = Buffer.concat([zstdCompress(Buffer.from('one ')), zstdCompress(Buffer.from('two'))]);
    assert.equal((await decompress(file)).toString(), 'one two');
  });

  it('reads what the gzip, pigz and zstd tools write', async () => {
    for (const [command, args] of [
      ['gzip', ['-c']],
      ['pigz', ['-c', '-b', '64']],
      ['zstd', ['-c', '-q']],
    ] as const) {
      const packed = await tool(command, [...args], text);
      assert.equal(packed.code, 0, packed.stderr);
      assert.ok((await decompress(packed.stdout)).equals(text), command);
    }
  });

  it('fails corrupt or truncated gzip with INVALID_ARCHIVE', async () => {
    const packed = await compress(text, 'gzip');
    const flipped = Buffer.from(packed);
    for (let i = 100; i < 140; i++) flipped[i] = flipped[i]! ^ 0x55;
    await rejectsWith(decompress(flipped), 'INVALID_ARCHIVE', /^corrupt gzip stream: /);
    await rejectsWith(
      decompress(packed.subarray(0, packed.length - 20)),
      'INVALID_ARCHIVE',
      /^corrupt gzip stream: /,
    );
    const badCrc = Buffer.from(packed);
    badCrc[badCrc.length - 6] = badCrc[badCrc.length - 6]! ^ 1;
    await rejectsWith(decompress(badCrc), 'INVALID_ARCHIVE', /^corrupt gzip stream: /);
    await rejectsWith(decompress(Buffer.from([0x1f, 0x8b])), 'INVALID_ARCHIVE', /^corrupt gzip stream: /);
  });

  it('fails corrupt or truncated zstd with INVALID_ARCHIVE', async () => {
    const packed = await compress(text, 'zstd');
    await rejectsWith(
      decompress(packed.subarray(0, packed.length - 10)),
      'INVALID_ARCHIVE',
      /^corrupt zstd stream: /,
    );
    const garbage = Buffer.concat([packed.subarray(0, 4), Buffer.alloc(64, 0xee)]);
    await rejectsWith(decompress(garbage), 'INVALID_ARCHIVE', /^corrupt zstd stream: /);
  });

  it('refuses bzip2 and xz with UNSUPPORTED', async () => {
    const bzip2 = await tool('bzip2', ['-c'], text).catch(() => undefined);
    const bz = bzip2?.code === 0 ? bzip2.stdout : Buffer.from('BZh91AY&SY and the rest');
    await rejectsWith(decompress(bz), 'UNSUPPORTED', /bzip2/);
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4, 0xe6, 0xd6, 0xb4, 0x46]);
    await rejectsWith(decompress(xz, chunked(xz, 1)), 'UNSUPPORTED', /xz/);
  });

  it("passes the source's own errors on unchanged", async () => {
    const failure = new Error('disk on fire');
    const source = new Readable({
      read() {
        this.push(gzipSync('partial'));
        this.destroy(failure);
      },
    });
    await assert.rejects(collect(decompressStream(source)), (err) => err === failure);
  });

  it('destroys the source when the result is destroyed', async () => {
    const packed = await compress(sample(4 * MiB), 'gzip');
    const source = Readable.from(chunked(packed, 16 * KiB));
    const output = decompressStream(source);
    await new Promise<void>((resolve) => output.once('data', () => resolve()));
    output.destroy();
    await new Promise((r) => setImmediate(r));
    assert.ok(source.destroyed);
  });

  it('applies backpressure to the source', async () => {
    const data = sample(8 * MiB, 8);
    const packed = await compress(data, 'gzip');
    let read = 0;
    const chunks = chunked(packed, 16 * KiB);
    const source = new Readable({
      read() {
        const next = chunks.shift();
        if (next) read += next.length;
        this.push(next ?? null);
      },
    });
    const output = decompressStream(source);
    await new Promise<void>((resolve) => output.once('readable', () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(read < packed.length / 2, `read ${read} of ${packed.length} with no consumer`);
    let total = 0;
    await pipeline(
      output,
      new Writable({
        write(chunk: Buffer, _e, cb) {
          total += chunk.length;
          cb();
        },
      }),
    );
    assert.equal(total, data.length);
  });
});
