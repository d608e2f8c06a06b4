/**
 * `strata analyze` on a 1 GB, 20-layer image with 100 000 files: wall seconds and peak memory
 * (maximum resident set of the CLI process, from GNU time) for the JSON report, the CI check and
 * the text report. dive is not packaged in Debian and its releases are not reachable from here,
 * so there is no side-by-side tool: the figures are absolute (the issue asks for seconds and
 * peak memory). The layers overwrite, chmod and delete files and whole directories of the layers
 * below, so that every part of the analysis has work to do. Run with `npm run bench analyze`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { TarWriterEntry } from '../src/archive/tar-writer.js';
import { writeEntries } from '../src/archive/tar-writer.js';
import { creationTime, writeImage } from '../src/image/create.js';
import { setImageNames } from '../src/image/names.js';
import { MediaType } from '../src/oci/mediatypes.js';
import type { Descriptor, ImageConfig } from '../src/oci/types.js';
import { Store } from '../src/store/index.js';
import { REPO_ROOT, run } from '../test/helpers/cli.js';

const LAYERS = 20;
const FILES = 100_000;
const TOTAL_BYTES = 1024 * 1024 * 1024;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FILES_PER_LAYER = FILES / LAYERS;
const FILES_PER_DIR = 250;
/** Sizes vary around the mean (1 GB / 100 000 files ≈ 10.7 KB). */
const MEAN_SIZE = Math.floor(TOTAL_BYTES / FILES);

/** File bodies are slices of one random buffer: the analysis reads headers, not meaning. */
const POOL = randomBytes(4 * MEAN_SIZE);

function fileSize(layer: number, index: number): number {
  return Math.floor(MEAN_SIZE * (0.25 + ((layer * 7919 + index * 104729) % 1000) / 666));
}

function dirOf(layer: number, index: number): string {
  return `data/l${layer}/d${Math.floor(index / FILES_PER_DIR)}`;
}

/**
 * Layer `layer`: 5 000 new files in its own directories; from layer 1 on it also overwrites,
 * chmods and deletes (whiteouts) one in fifty of the previous layer's files, and every fifth
 * layer deletes one whole directory of the layer below and replaces another (opaque whiteout).
 */
function* layerEntries(layer: number): Generator<TarWriterEntry> {
  const mtime = new Date(Date.UTC(2024, 0, 1 + layer));
  const directories = new Set<string>();
  const directory = (path: string): TarWriterEntry[] => {
    const made: TarWriterEntry[] = [];
    const parts = path.split('/');
    for (let depth = 1; depth <= parts.length; depth++) {
      const name = parts.slice(0, depth).join('/');
      if (directories.has(name)) continue;
      directories.add(name);
      made.push({ header: { name, type: 'directory', mode: 0o755, mtime } });
    }
    return made;
  };
  const file = (name: string, size: number, mode = 0o644): TarWriterEntry => ({
    header: { name, type: 'file', mode, size, mtime },
    body: POOL.subarray(0, size),
  });
  if (layer > 0) {
    const below = layer - 1;
    // Not in the last two directories, which every fifth layer deletes or replaces.
    for (let index = 0; index < FILES_PER_DIR * 18; index += 50) {
      yield* directory(dirOf(below, index));
      yield file(`${dirOf(below, index)}/f${index}`, fileSize(layer, index)); // overwritten
      yield file(`${dirOf(below, index + 1)}/f${index + 1}`, fileSize(below, index + 1), 0o600); // chmod
      yield { header: { name: `${dirOf(below, index + 2)}/.wh.f${index + 2}`, type: 'file', mtime } };
    }
    if (layer % 5 === 0) {
      yield* directory(`data/l${below}`);
      yield { header: { name: `data/l${below}/.wh.d19`, type: 'file', mtime } }; // a whole directory
      yield* directory(`data/l${below}/d18`);
      yield { header: { name: `data/l${below}/d18/.wh..wh..opq`, type: 'file', mtime } }; // replaced
      yield file(`data/l${below}/d18/replacement`, MEAN_SIZE);
    }
  }
  for (let index = 0; index < FILES_PER_LAYER; index++) {
    yield* directory(dirOf(layer, index));
    yield file(`${dirOf(layer, index)}/f${index}`, fileSize(layer, index));
  }
}

async function makeImage(store: Store, name: string): Promise<number> {
  const layers: Descriptor[] = [];
  for (let layer = 0; layer < LAYERS; layer++) {
    const blob = await store.content.ingest(writeEntries(layerEntries(layer)));
    layers.push({ mediaType: MediaType.ociLayer, digest: blob.digest, size: blob.size });
  }
  const created = creationTime();
  const config: ImageConfig = {
    created,
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
    history: layers.map((_, layer) => ({ created, created_by: `COPY layer${layer} /data/ # buildkit` })),
  };
  const { target } = await writeImage(store, config, layers);
  await setImageNames(store, [{ target, names: [name] }]);
  return layers.reduce((total, layer) => total + layer.size, 0);
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
}

/** Wall seconds and peak RSS (MB) of one CLI run, through GNU time. */
async function measure(root: string, args: string[]): Promise<{ seconds: number; peakMb: number }> {
  const result = await run('/usr/bin/time', [
    '-f',
    'STRATA-BENCH %e %M',
    join(REPO_ROOT, 'bin', 'strata'),
    '--root',
    root,
    ...args,
  ]);
  const line = /STRATA-BENCH ([\d.]+) (\d+)/.exec(result.stderr);
  // --ci exits 1 when a rule fails, which this image is made to do; anything else is a failure.
  if (line === null || (result.code !== 0 && result.code !== 1))
    throw new Error(`strata ${args.join(' ')} failed (${result.code}): ${result.stderr.slice(-2000)}`);
  return { seconds: Number(line[1]), peakMb: Number(line[2]) / 1024 };
}

export async function benchAnalyze(): Promise<void> {
  const work = join(REPO_ROOT, 'bench', '.work', 'analyze');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const root = join(work, 'store');
    const store = await Store.open(root);
    const name = 'docker.io/bench/analyze:latest';
    const bytes = await makeImage(store, name);
    console.log(
      `analyze: ${LAYERS} layers, ${FILES} files added + overwrites/chmods/deletions, ${(bytes / 1e9).toFixed(2)} GB of layers; median of ${RUNS} runs`,
    );
    const modes: Array<[string, string[]]> = [
      ['--json', ['analyze', '--json', name]],
      ['--ci', ['analyze', '--ci', name]],
      ['text report', ['analyze', name]],
    ];
    for (const [label, args] of modes) {
      const runs: Array<{ seconds: number; peakMb: number }> = [];
      for (let attempt = 0; attempt < RUNS; attempt++) runs.push(await measure(root, args));
      const seconds = median(runs.map((r) => r.seconds));
      const peakMb = Math.max(...runs.map((r) => r.peakMb));
      console.log(
        `${label.padEnd(12)} ${seconds.toFixed(2)} s   ${(bytes / 1e6 / seconds).toFixed(0)} MB/s   peak RSS ${peakMb.toFixed(0)} MB`,
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
