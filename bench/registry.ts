/**
 * push and pull of a ~500 MB, 10-layer image against a local CNCF distribution (Debian's
 * docker-registry on 127.0.0.1): strata vs `skopeo copy`, side by side in one run.
 *
 * - cold push: the image as `strata build` stores it (uncompressed layers), so both tools gzip
 *   and upload: strata from its store, skopeo from a docker-archive of the same image;
 * - warm push: compressed layers ready (strata: remembered from the cold push; skopeo: an OCI
 *   layout holding the registry's blobs), to an empty registry, so only the upload is timed;
 * - pull: into an empty store (strata) / an empty OCI layout (skopeo);
 * - cold push of a second image made of real files (this machine's /usr, ~500 MB in 10 layers),
 *   since the first one's layers (half noise, half one repeated sentence) compress unlike any
 *   real layer: there the gzip level barely matters, on real files it decides the time.
 * Both tools run as their users run them, one process per transfer: `bin/strata` (the compiled
 * bundle) beside `skopeo`, so each pays its own start-up (strata's gzip workers, skopeo's Go
 * runtime) and neither runs warmed up by an earlier step. The page cache is flushed (`sync`,
 * untimed) before every timed step, so no step pays for the previous one's write-back.
 * Prints MB/s and the ratio (skopeo time / strata time; > 1 means strata is faster), and for the
 * real files how large each tool's compressed layers are (the gzip level is a speed/size trade).
 */
import { timed, writeLayerFiles } from './save-load.js';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTarFromDirectory } from '../src/archive/tar-writer.js';
import { MediaType } from '../src/oci/mediatypes.js';
import { digestOf, type Digest } from '../src/oci/digest.js';
import { Store } from '../src/store/index.js';
import { REPO_ROOT, mustRun, strataOk } from '../test/helpers/cli.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';

const LAYERS = 10;
const LAYER_MB = 50;

/** The image as a build stores it: uncompressed layers (blob digest = diff ID), OCI types. */
export async function makeImage(store: Store, work: string, name: string): Promise<number> {
  const layers: { digest: Digest; size: number }[] = [];
  for (let layer = 0; layer < LAYERS; layer++) {
    const dir = join(work, 'layers', `l${layer}`);
    await writeLayerFiles(join(dir, 'data', `l${layer}`), layer, LAYER_MB, 5);
    const blob = await store.content.ingest(createTarFromDirectory(dir));
    layers.push({ digest: blob.digest, size: blob.size });
    await rm(dir, { recursive: true, force: true });
  }
  return nameImage(store, name, layers);
}

/**
 * The same shape from real files: this machine's /usr (binaries, libraries, scripts, data), the
 * first ~LAYER_MB of regular files in path order per layer, as GNU tar packs them. The synthetic
 * layers above are half noise (stored) and half one repeated sentence (which any level deflates
 * at once): they say little about how fast real layers compress.
 */
export async function makeRealImage(store: Store, work: string, name: string): Promise<number> {
  const files: { path: string; size: number }[] = [];
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const size = (await lstat(path)).size;
        files.push({ path, size });
        total += size;
      }
      if (total >= LAYERS * LAYER_MB * 1e6) return;
    }
  };
  await walk('/usr');
  const layers: { digest: Digest; size: number }[] = [];
  await mkdir(work, { recursive: true });
  for (let layer = 0, next = 0; layer < LAYERS && next < files.length; layer++) {
    const chunk: string[] = [];
    for (let bytes = 0; next < files.length && bytes < LAYER_MB * 1e6; next++) {
      chunk.push(files[next]!.path.slice(1));
      bytes += files[next]!.size;
    }
    const list = join(work, `l${layer}.list`);
    const tar = join(work, `l${layer}.tar`);
    await writeFile(list, `${chunk.join('\n')}\n`);
    await mustRun('tar', ['-cf', tar, '-C', '/', '--no-recursion', '-T', list]);
    const blob = await store.content.ingest(createReadStream(tar));
    layers.push({ digest: blob.digest, size: blob.size });
    await rm(tar);
  }
  return nameImage(store, name, layers);
}

/** Config and manifest for `layers`, stored, and `name` pointing at them; the size in MB. */
async function nameImage(
  store: Store,
  name: string,
  layers: { digest: Digest; size: number }[],
): Promise<number> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'COPY' })),
    }),
  );
  const configDigest = digestOf(config);
  await store.content.putBytes(config, { digest: configDigest });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers: layers.map((layer) => ({ mediaType: MediaType.ociLayer, ...layer })),
    }),
  );
  const manifestDigest = digestOf(manifest);
  await store.content.putBytes(manifest, { digest: manifestDigest });
  await store.images.set(name, {
    mediaType: MediaType.ociManifest,
    digest: manifestDigest,
    size: manifest.length,
  });
  return layers.reduce((total, layer) => total + layer.size, 0) / 1e6;
}

/** The compressed size of the layers a registry holds for `repository:1`. */
async function layerBytes(host: string, repository: string): Promise<number> {
  const response = await fetch(`http://${host}/v2/${repository}/manifests/1`, {
    headers: { accept: `${MediaType.ociManifest}, ${MediaType.dockerManifest}` },
  });
  const manifest = (await response.json()) as { layers: { size: number }[] };
  return manifest.layers.reduce((total, layer) => total + layer.size, 0);
}

export async function benchRegistry(): Promise<void> {
  const work = join(REPO_ROOT, 'bench', '.work', 'registry');
  await rm(work, { recursive: true, force: true });
  const registries: RunningRegistry[] = [];
  const fresh = async (label: string): Promise<RunningRegistry> => {
    const registry = await startRegistry(join(work, `registry-${label}`));
    registries.push(registry);
    return registry;
  };
  // Neither tool finds credentials: an empty Docker config for strata, no auth file for skopeo.
  const env = { DOCKER_CONFIG: join(work, 'no-docker-config') };
  /** `skopeo copy` to a registry (plain HTTP on loopback), and from one. */
  const skopeoCopyTo = (source: string, target: string) =>
    mustRun('skopeo', ['copy', '-q', '--dest-tls-verify=false', source, target]);
  const skopeoCopyFrom = (source: string, target: string) =>
    mustRun('skopeo', ['copy', '-q', '--src-tls-verify=false', source, target]);
  /** Times one step, after flushing what earlier steps left in the page cache (untimed). */
  const step = async (task: () => Promise<unknown>): Promise<number> => {
    await mustRun('sync', []);
    return timed(task);
  };
  try {
    const root = join(work, 'store');
    const store = await Store.open(root);
    const local = 'bench/big:1';
    const megabytes = await makeImage(store, work, `docker.io/${local}`);
    const archive = join(work, 'image.tar');
    await strataOk(root, ['save', '-o', archive, local]);

    // Cold push: both compress and upload, each to its own empty registry.
    const strataCold = await fresh('strata-cold');
    const strataTarget = `${strataCold.host}/bench/big:1`;
    await store.images.set(strataTarget, (await store.images.get(`docker.io/${local}`))!.target);
    const strataColdPush = await step(() => strataOk(root, ['push', '-q', strataTarget], { env }));
    const skopeoCold = await fresh('skopeo-cold');
    const skopeoTarget = `${skopeoCold.host}/bench/big:1`;
    const skopeoColdPush = await step(() =>
      skopeoCopyTo(`docker-archive:${archive}`, `docker://${skopeoTarget}`),
    );

    // Pull into empty destinations, from the registry each tool pushed to.
    const pullRoot = join(work, 'pull-store');
    const strataPull = await step(() => strataOk(pullRoot, ['pull', '-q', strataTarget], { env }));
    const layout = join(work, 'layout');
    const skopeoPull = await step(() => skopeoCopyFrom(`docker://${skopeoTarget}`, `oci:${layout}:big`));

    // Warm push: compressed blobs at hand, empty registries: the upload alone.
    const strataWarm = await fresh('strata-warm');
    const strataWarmTarget = `${strataWarm.host}/bench/big:1`;
    await store.images.set(strataWarmTarget, (await store.images.get(strataTarget))!.target);
    const strataWarmPush = await step(() => strataOk(root, ['push', '-q', strataWarmTarget], { env }));
    const skopeoWarm = await fresh('skopeo-warm');
    const skopeoWarmPush = await step(() =>
      skopeoCopyTo(`oci:${layout}:big`, `docker://${skopeoWarm.host}/bench/big:1`),
    );

    // Cold push again, of real files: both compress at their default gzip settings.
    const realRoot = join(work, 'real-store');
    const realStore = await Store.open(realRoot);
    const realMegabytes = await makeRealImage(realStore, join(work, 'real-layers'), 'docker.io/bench/usr:1');
    const realArchive = join(work, 'real.tar');
    await strataOk(realRoot, ['save', '-o', realArchive, 'bench/usr:1']);
    const strataReal = await fresh('strata-real');
    const strataRealTarget = `${strataReal.host}/bench/usr:1`;
    await realStore.images.set(
      strataRealTarget,
      (await realStore.images.get('docker.io/bench/usr:1'))!.target,
    );
    const strataRealPush = await step(() => strataOk(realRoot, ['push', '-q', strataRealTarget], { env }));
    const skopeoReal = await fresh('skopeo-real');
    const skopeoRealPush = await step(() =>
      skopeoCopyTo(`docker-archive:${realArchive}`, `docker://${skopeoReal.host}/bench/usr:1`),
    );

    const row = (label: string, strata: number, skopeo: number, size = megabytes): string =>
      `${label.padEnd(24)} strata ${(size / strata).toFixed(0).padStart(5)} MB/s (${strata.toFixed(2)} s)   ` +
      `skopeo ${(size / skopeo).toFixed(0).padStart(5)} MB/s (${skopeo.toFixed(2)} s)   ratio ${(skopeo / strata).toFixed(2)}x`;
    console.log(
      `registry push/pull of a ${megabytes.toFixed(0)} MB image with ${LAYERS} layers (local distribution 2.8)`,
    );
    console.log(row('push (gzip + upload)', strataColdPush, skopeoColdPush));
    console.log(row('push (compressed ready)', strataWarmPush, skopeoWarmPush));
    console.log(row('pull', strataPull, skopeoPull));
    console.log(
      `a ${realMegabytes.toFixed(0)} MB image of /usr files in ${LAYERS} layers, skopeo's layers from its docker-archive`,
    );
    console.log(row('push (gzip + upload)', strataRealPush, skopeoRealPush, realMegabytes));
    const strataSent = await layerBytes(strataReal.host, 'bench/usr');
    const skopeoSent = await layerBytes(skopeoReal.host, 'bench/usr');
    console.log(
      `  layers sent: strata ${(strataSent / 1e6).toFixed(1)} MB, skopeo ${(skopeoSent / 1e6).toFixed(1)} MB ` +
        `(strata ${(((strataSent - skopeoSent) / skopeoSent) * 100).toFixed(1)}%)`,
    );
  } finally {
    for (const registry of registries) await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1])) await benchRegistry();
