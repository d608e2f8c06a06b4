/**
 * save/load of a ~500 MB multi-layer image: strata vs dockerd 20.10, side by side in one run.
 * Prints MB/s for each and the ratio (docker time / strata time; > 1 means strata is faster).
 * Run with `npm run bench` (needs root and Debian's docker.io).
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Dockerd } from '../test/helpers/dockerd.js';
import { REPO_ROOT, strataOk } from '../test/helpers/cli.js';

const LAYERS = 5;
const LAYER_MB = 100;

export async function timed<T>(work: () => Promise<T>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Half random, half repetitive text: compressible like real layers, not trivially so. */
export async function writeLayerFiles(
  dir: string,
  layer: number,
  layerMb = LAYER_MB,
  fileMb = 4,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let file = 0; file < layerMb / fileMb; file++) {
    const chunks: Buffer[] = [];
    for (let mb = 0; mb < fileMb; mb++) {
      chunks.push(
        randomBytes(512 * 1024),
        Buffer.from(`layer ${layer} file ${file} `.repeat((512 * 1024) / 20).slice(0, 512 * 1024)),
      );
    }
    await writeFile(join(dir, `file${file}.bin`), Buffer.concat(chunks));
  }
}

export async function benchSaveLoad(): Promise<void> {
  const work = join(REPO_ROOT, 'bench', '.work', 'save-load');
  await rm(work, { recursive: true, force: true });
  const context = join(work, 'context');
  const dockerfile = ['FROM scratch'];
  for (let layer = 0; layer < LAYERS; layer++) {
    await writeLayerFiles(join(context, `l${layer}`), layer);
    dockerfile.push(`COPY l${layer}/ /data/l${layer}/`);
  }
  await writeFile(join(context, 'Dockerfile'), `${dockerfile.join('\n')}\n`);
  const dockerd = await Dockerd.start();
  try {
    await dockerd.dockerOk(['build', '-q', '-t', 'bench/big:1', context]);
    const dockerArchive = join(work, 'docker.tar');
    const strataArchive = join(work, 'strata.tar');
    const root = join(work, 'store');

    const dockerSave = await timed(() => dockerd.dockerOk(['save', '-o', dockerArchive, 'bench/big:1']));
    const megabytes = (await stat(dockerArchive)).size / 1e6;
    const strataLoad = await timed(() => strataOk(root, ['load', '-i', dockerArchive]));
    // dockerd's load also unpacks every layer; strata unpacks lazily, so time that step as well.
    const mountPoint = join(work, 'mnt');
    const strataUnpack = await timed(() => strataOk(root, ['image', 'mount', 'bench/big:1', mountPoint]));
    await strataOk(root, ['image', 'unmount', mountPoint]);
    const strataSave = await timed(() => strataOk(root, ['save', '-o', strataArchive, 'bench/big:1']));
    await dockerd.dockerOk(['rmi', 'bench/big:1']);
    const dockerLoad = await timed(() => dockerd.dockerOk(['load', '-i', dockerArchive]));

    const row = (name: string, strata: number, docker: number) =>
      `${name.padEnd(11)} strata ${(megabytes / strata).toFixed(0).padStart(5)} MB/s (${strata.toFixed(2)} s)   ` +
      `docker ${(megabytes / docker).toFixed(0).padStart(5)} MB/s (${docker.toFixed(2)} s)   ratio ${(docker / strata).toFixed(2)}x`;
    console.log(`save/load of a ${megabytes.toFixed(0)} MB image with ${LAYERS} layers`);
    console.log(row('save', strataSave, dockerSave));
    console.log(row('load', strataLoad, dockerLoad));
    console.log(row('load+unpack', strataLoad + strataUnpack, dockerLoad));
  } finally {
    await dockerd.stop();
    await rm(work, { recursive: true, force: true });
  }
}
