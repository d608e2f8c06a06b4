import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { constants, deflateRawSync, gunzipSync, inflateRawSync } from 'node:zlib';
import { deflateEngine, nativeDeflate } from './deflate-engine.js';
import { hasCommand, noise, sha256 } from './testing/helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const REPO = resolve(import.meta.dirname, '..', '..');

/** Whether this machine can build the addon (scripts/build-native.sh's conditions). */
function canBuildAddon(): boolean {
  const headers = resolve(process.execPath, '..', '..', 'include', 'node', 'node_api.h');
  const libdeflate = spawnSync('sh', ['-c', 'echo "#include <libdeflate.h>" | cc -E - >/dev/null'], {
    stdio: 'ignore',
  });
  return hasCommand('cc') && existsSync(headers) && libdeflate.status === 0;
}

/** This repository's TypeScript sources, concatenated: text with the repeats of real code. */
function sources(): Buffer {
  const files: Buffer[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.name.endsWith('.ts')) files.push(readFileSync(join(dir, entry.name)));
    }
  };
  walk(join(REPO, 'src'));
  return Buffer.concat(files);
}

/** `data` cut into runs of `run` bytes, each deflated by libdeflate, the last one final. */
function deflateInRuns(data: Uint8Array, run: number, level: number): Buffer {
  const pieces: Uint8Array[] = [];
  for (let start = 0; ; start += run) {
    const final = start + run >= data.length;
    const piece = nativeDeflate(data.subarray(start, start + run), level, final);
    assert.ok(piece !== undefined, `libdeflate refused the run at ${start} (level ${level})`);
    pieces.push(piece);
    if (final) break;
  }
  return Buffer.concat(pieces);
}

describe('deflate engine', () => {
  const built = canBuildAddon();
  const skip = built ? false : 'this machine cannot build the addon (cc, Node headers, libdeflate-dev)';

  it('is libdeflate wherever the addon can be built (npm run build builds it)', { skip }, () => {
    assert.equal(deflateEngine(), 'libdeflate');
  });

  it(
    'ends every run but the last byte-aligned and not final: the runs join into one stream',
    { skip },
    () => {
      const mixed = Buffer.concat([
        noise(200 * KiB, 3),
        Buffer.alloc(300 * KiB),
        sources().subarray(0, 700 * KiB),
      ]);
      const inputs: Record<string, Uint8Array> = {
        sources: sources().subarray(0, 3 * MiB),
        noise: noise(2 * MiB, 9),
        zeros: Buffer.alloc(2 * MiB),
        mixed,
        tiny: Buffer.from('x'),
      };
      let checked = 0;
      for (const level of [1, 2, 4, 6, 9, 12]) {
        for (const [name, data] of Object.entries(inputs)) {
          for (const run of [MiB, 64 * KiB, 1000]) {
            const sample = run < 64 * KiB ? data.subarray(0, 20 * KiB) : data;
            const joined = deflateInRuns(sample, run, level);
            assert.ok(inflateRawSync(joined).equals(sample), `${name}, level ${level}, runs of ${run}`);
            checked++;
          }
        }
      }
      assert.equal(checked, 6 * 5 * 3);
    },
  );

  it('ends a non-final run with an empty stored block, the way zlib sync-flushes', { skip }, () => {
    const run = nativeDeflate(sources().subarray(0, 100 * KiB), 6, false)!;
    assert.deepEqual([...run.subarray(run.length - 4)], [0x00, 0x00, 0xff, 0xff]);
    // The decoder stops at the end of the data, still waiting for a final block.
    assert.throws(() => inflateRawSync(run, { finishFlush: constants.Z_FINISH }), /unexpected end/);
    assert.ok(
      inflateRawSync(run, { finishFlush: constants.Z_SYNC_FLUSH }).equals(sources().subarray(0, 100 * KiB)),
    );
  });

  it('handles empty runs, final or not', { skip }, () => {
    const joined = Buffer.concat([
      nativeDeflate(new Uint8Array(0), 6, false)!,
      nativeDeflate(Buffer.from('end'), 6, true)!,
    ]);
    assert.equal(inflateRawSync(joined).toString(), 'end');
    assert.equal(inflateRawSync(nativeDeflate(new Uint8Array(0), 6, true)!).length, 0);
  });

  it('compresses source code about as well as zlib at the same level, or better', { skip }, () => {
    const data = sources().subarray(0, MiB);
    for (const level of [1, 4, 6, 9]) {
      const ours = nativeDeflate(data, level, true)!.length;
      const zlib = deflateRawSync(data, { level }).length;
      assert.ok(ours <= zlib * 1.01, `level ${level}: libdeflate ${ours} bytes, zlib ${zlib}`);
    }
  });

  it('leaves level 0 (stored) and levels past 12 to zlib', () => {
    assert.equal(nativeDeflate(Buffer.from('abc'), 0, true), undefined);
    assert.equal(nativeDeflate(Buffer.from('abc'), 13, true), undefined);
  });

  it('is off with STRATA_DEFLATE_ENGINE=zlib, and both engines write gzip that reads back', { skip }, () => {
    const script = `
      const { compressStream } = await import(${JSON.stringify(new URL('./compression.ts', import.meta.url).href)});
      const { deflateEngine } = await import(${JSON.stringify(new URL('./deflate-engine.ts', import.meta.url).href)});
      const chunks = [];
      for await (const chunk of process.stdin.pipe(compressStream('gzip', { blockSize: 65536 }))) chunks.push(chunk);
      process.stderr.write(deflateEngine());
      process.stdout.write(Buffer.concat(chunks));
    `;
    const data = sources().subarray(0, 600 * KiB);
    const run = (engine: string): { engine: string; gzip: Buffer } => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        input: data,
        env: { ...process.env, STRATA_DEFLATE_ENGINE: engine },
        maxBuffer: 64 * MiB,
      });
      assert.equal(result.status, 0, result.stderr.toString());
      return { engine: result.stderr.toString(), gzip: result.stdout };
    };
    const zlib = run('zlib');
    const libdeflate = run('libdeflate');
    assert.equal(zlib.engine, 'zlib');
    assert.equal(libdeflate.engine, 'libdeflate');
    assert.notEqual(sha256(zlib.gzip), sha256(libdeflate.gzip));
    assert.ok(gunzipSync(zlib.gzip).equals(data));
    assert.ok(gunzipSync(libdeflate.gzip).equals(data));
  });
});
