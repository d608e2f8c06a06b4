/**
 * Where an analysed image comes from. Every source gives the same thing (manifest, config, and
 * each layer's blob as a stream, opened only when the analysis reaches it), so the analysis
 * never knows whether it reads the store, an archive or a registry:
 *
 * - the store: blobs are read where they are;
 * - an OCI layout directory: read in place (blobs verified against their digests as they stream);
 * - an archive file (docker-archive of any Docker version, OCI layout tar, optionally gzip/zstd):
 *   loaded into a temporary store under `<root>/tmp/`, removed when the source is closed. A tar
 *   names its members in any order (manifest.json usually comes last), so a single streaming pass
 *   cannot analyse layers in order without keeping them somewhere;
 * - a registry: pulled into a temporary store the same way (`registry://REF`), or into the store
 *   itself with `pull` (the image is kept, like `strata pull`). The pull is a parameter (the
 *   registry client is not a dependency of analyze/).
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { decompressStream } from '../archive/compression.js';
import { StrataError, errnoCode, isStrataError } from '../errors.js';
import { loadArchive } from '../image/load.js';
import {
  MAX_METADATA_BYTES,
  canonicalName,
  findImage,
  resolveTarget,
  type ResolvedImage,
} from '../image/resolve.js';
import { DigestStream, digestAlgorithm, digestHex, digestOf, isDigest, type Digest } from '../oci/digest.js';
import { isIndexMediaType } from '../oci/mediatypes.js';
import { hostPlatform, selectManifest } from '../oci/platform.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../oci/types.js';
import { parseImageConfig, parseImageIndex, parseManifestOrIndex } from '../oci/validate.js';
import { Store } from '../store/index.js';
import { processAlive } from '../store/lock.js';
import type { ImageSourceKind } from './model.js';

/** An image ready to be analysed. */
export interface ImageSource {
  readonly kind: ImageSourceKind;
  /** What the user named. */
  readonly reference: string;
  /** Canonical names the image has where it was found. */
  readonly names: readonly string[];
  readonly manifestDigest: Digest;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  /** Layer `index`'s blob as stored (possibly compressed); the analysis decompresses it. */
  openLayer(index: number): Readable;
  /** Releases what opening the source took (a temporary store). Safe to call twice. */
  close(): Promise<void>;
}

/** Fetches `reference` from its registry into `store` (the registry client's pullImage fits). */
export type PullFunction = (
  store: Store,
  reference: string,
  options: { platform?: Platform },
) => Promise<ResolvedImage>;

export interface OpenSourceOptions {
  /** The store, for names and as the home of temporary stores (opened only when needed). */
  store?: Store | (() => Promise<Store>);
  /** The platform to take from a multi-platform image (default: this host's). */
  platform?: Platform;
  /** How to fetch from a registry; without it, registry references are an error. */
  pull?: PullFunction;
  /** Pull a store name into the store before analysing it (`--pull`), even when it is there. */
  pullIntoStore?: boolean;
  /** Where temporary stores go (default `<store root>/tmp`, or the OS temp dir without a store). */
  tempRoot?: string;
}

const REGISTRY_PREFIXES = ['registry://', 'docker://'];
const ARCHIVE_PREFIXES = ['docker-archive:', 'oci-archive:'];
const LAYOUT_PREFIX = 'oci:';
const ARCHIVE_SUFFIX = /\.(tar|tar\.gz|tgz|tar\.zst|tar\.zstd)$/i;

/** A source over an image already in a store. */
export function storeImageSource(
  store: Store,
  image: ResolvedImage,
  reference: string,
  kind: ImageSourceKind = 'store',
  cleanup: () => Promise<void> = async () => undefined,
): ImageSource {
  let closed = false;
  return {
    kind,
    reference,
    names: image.names,
    manifestDigest: image.manifestDescriptor.digest,
    manifest: image.manifest,
    config: image.config,
    openLayer: (index) => store.content.openRead(layerAt(image.manifest, index).digest),
    close: async () => {
      if (closed) return;
      closed = true;
      await cleanup();
    },
  };
}

function layerAt(manifest: ImageManifest, index: number): Descriptor {
  const layer = manifest.layers[index];
  if (!layer) throw new StrataError('INVALID_ARGUMENT', `the image has no layer ${index}`);
  return layer;
}

async function pathKind(path: string): Promise<'file' | 'directory' | undefined> {
  try {
    const info = await stat(path);
    return info.isDirectory() ? 'directory' : 'file';
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await pathKind(path)) !== undefined;
}

/**
 * Opens what `spec` names:
 * - `registry://REF` or `docker://REF`: pulled into a temporary store;
 * - `docker-archive:PATH`, `oci-archive:PATH`: an archive file; `oci:PATH`: a layout directory
 *   (or a layout tar);
 * - a path to an existing file or directory that looks like one (it contains `/` or ends in
 *   `.tar`, `.tar.gz`, `.tgz`, `.tar.zst`), or a directory holding an `oci-layout` file;
 * - anything else: an image in the store (a name or an ID), pulled first with `pullIntoStore`.
 */
export async function openImageSource(spec: string, options: OpenSourceOptions = {}): Promise<ImageSource> {
  const registryPrefix = REGISTRY_PREFIXES.find((prefix) => spec.startsWith(prefix));
  if (registryPrefix) return openRegistrySource(spec, spec.slice(registryPrefix.length), options);
  const archivePrefix = ARCHIVE_PREFIXES.find((prefix) => spec.startsWith(prefix));
  if (archivePrefix) return openPathSource(spec, spec.slice(archivePrefix.length), options);
  if (spec.startsWith(LAYOUT_PREFIX)) return openPathSource(spec, spec.slice(LAYOUT_PREFIX.length), options);

  const kind = await pathKind(spec);
  const pathLike = spec.includes('/') || ARCHIVE_SUFFIX.test(spec);
  if (
    !options.pullIntoStore &&
    ((kind !== undefined && pathLike) || (kind === 'directory' && (await exists(join(spec, 'oci-layout')))))
  ) {
    return openPathSource(spec, spec, options);
  }
  // `./app.tar` is no image name: say that the file is missing rather than the image.
  if (pathLike && !options.pullIntoStore && canonicalName(spec) === undefined)
    return openPathSource(spec, spec, options);
  const store = await storeOf(options);
  if (options.pullIntoStore) {
    const pull = needPull(options, spec);
    const image = await pull(store, spec, { platform: options.platform });
    return storeImageSource(store, image, spec);
  }
  try {
    return storeImageSource(store, await findImage(store, spec, options.platform), spec);
  } catch (err) {
    if (isStrataError(err, 'NOT_FOUND') && err.message.startsWith('No such image')) {
      const hint = pathLike
        ? 'no file of that name either'
        : options.pull
          ? '--pull fetches it from its registry'
          : '';
      throw new StrataError('NOT_FOUND', `No such image: ${spec}${hint ? ` (${hint})` : ''}`);
    }
    throw err;
  }
}

async function storeOf(options: OpenSourceOptions): Promise<Store> {
  if (!options.store) throw new StrataError('INVALID_ARGUMENT', 'no store to read images from');
  return typeof options.store === 'function' ? options.store() : options.store;
}

function needPull(options: OpenSourceOptions, reference: string): PullFunction {
  if (!options.pull) {
    throw new StrataError('UNSUPPORTED', `cannot fetch ${reference}: no registry client was given`);
  }
  return options.pull;
}

async function openPathSource(spec: string, path: string, options: OpenSourceOptions): Promise<ImageSource> {
  const kind = await pathKind(path);
  if (kind === undefined) {
    throw new StrataError('NOT_FOUND', `${path}: no such file or directory`);
  }
  if (kind === 'directory') {
    if (!(await exists(join(path, 'index.json')))) {
      throw new StrataError('INVALID_ARCHIVE', `${path} is not an OCI image layout (no index.json)`);
    }
    return openLayoutDirectory(spec, path, options.platform);
  }
  return openArchiveFile(spec, path, options);
}

/** A temporary store for one analysis, named after this process so that a later run can reclaim it. */
async function temporaryStore(
  options: OpenSourceOptions,
): Promise<{ store: Store; remove: () => Promise<void> }> {
  let parent = options.tempRoot;
  if (parent === undefined) {
    parent = options.store ? join((await storeOf(options)).root, 'tmp') : tmpdir();
  }
  await mkdir(parent, { recursive: true, mode: 0o700 });
  await reclaimAbandoned(parent);
  const dir = await mkdtemp(join(parent, `analyze-${process.pid}-`));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    return { store: await Store.open(dir), remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** Temporary stores of processes that died before removing them (a killed analysis). */
async function reclaimAbandoned(parent: string): Promise<void> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const match = /^analyze-(\d+)-/.exec(name);
    if (match && !processAlive(Number(match[1]))) {
      await rm(join(parent, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

async function openArchiveFile(spec: string, path: string, options: OpenSourceOptions): Promise<ImageSource> {
  const temp = await temporaryStore(options);
  try {
    let loaded;
    try {
      loaded = await loadArchive(temp.store, decompressStream(createReadStream(path)));
    } catch (err) {
      if (isStrataError(err) && err.userFacing) {
        throw new StrataError(err.code, `cannot read image archive ${path}: ${err.message}`, { cause: err });
      }
      if (errnoCode(err) === 'EACCES' || errnoCode(err) === 'EISDIR') {
        throw new StrataError('INVALID_ARGUMENT', `cannot read image archive ${path}: ${errnoCode(err)}`);
      }
      throw err;
    }
    if (loaded.length !== 1) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        loaded.length === 0
          ? `image archive ${path} holds no image`
          : `image archive ${path} holds ${loaded.length} images: load it (strata load) and analyse them by name`,
      );
    }
    const [first] = loaded as [(typeof loaded)[number]];
    const image = {
      names: first.names,
      ...(await resolveTarget(temp.store, first.target, options.platform)),
    };
    return storeImageSource(temp.store, image, spec, 'archive', temp.remove);
  } catch (err) {
    await temp.remove();
    throw err;
  }
}

async function openRegistrySource(
  spec: string,
  reference: string,
  options: OpenSourceOptions,
): Promise<ImageSource> {
  const pull = needPull(options, reference);
  const temp = await temporaryStore(options);
  try {
    const image = await pull(temp.store, reference, { platform: options.platform });
    return storeImageSource(temp.store, image, spec, 'registry', temp.remove);
  } catch (err) {
    await temp.remove();
    throw err;
  }
}

// --- OCI layout directories, read in place -------------------------------------------------------

function blobPath(root: string, digest: Digest): string {
  return join(root, 'blobs', digestAlgorithm(digest), digestHex(digest));
}

/** A small JSON blob of the layout, verified against its digest. */
async function readLayoutBlob(root: string, descriptor: Descriptor): Promise<Buffer> {
  if (!isDigest(descriptor.digest)) {
    throw new StrataError('INVALID_ARCHIVE', `invalid digest "${String(descriptor.digest)}" in ${root}`);
  }
  const path = blobPath(root, descriptor.digest);
  const bytes = await readBounded(path, `blob ${descriptor.digest}`);
  if (digestOf(bytes, digestAlgorithm(descriptor.digest)) !== descriptor.digest) {
    throw new StrataError('INVALID_ARCHIVE', `${path} does not match its digest ${descriptor.digest}`);
  }
  return bytes;
}

async function readBounded(path: string, what: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new StrataError('INVALID_ARCHIVE', `the layout has no ${what} (${path})`);
    throw err;
  }
  try {
    if ((await handle.stat()).size > MAX_METADATA_BYTES) {
      throw new StrataError('INVALID_ARCHIVE', `${path} is too large for ${what}`);
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function openLayoutDirectory(spec: string, root: string, platform?: Platform): Promise<ImageSource> {
  const index = parseImageIndex(
    await readBounded(join(root, 'index.json'), 'index.json'),
    `${root}/index.json`,
  );
  if (index.manifests.length === 0)
    throw new StrataError('INVALID_ARCHIVE', `${root}/index.json lists no image`);
  if (
    index.manifests.length > 1 &&
    !index.manifests.every((m) => isIndexMediaType(m.mediaType) || m.platform)
  ) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${root} holds ${index.manifests.length} images: load it (strata load) and analyse them by name`,
    );
  }
  let descriptor: Descriptor | undefined =
    index.manifests.length === 1 ? index.manifests[0] : selectManifest(index, platform ?? hostPlatform());
  const names: string[] = [];
  const refName = descriptor?.annotations?.['io.containerd.image.name'];
  if (refName) names.push(refName);
  for (let depth = 0; descriptor && depth < 4; depth++) {
    const parsed = parseManifestOrIndex(await readLayoutBlob(root, descriptor), descriptor.mediaType);
    if (parsed.kind === 'manifest') {
      const config: ImageConfig = parseImageConfig(
        await readLayoutBlob(root, parsed.manifest.config),
        `config ${parsed.manifest.config.digest}`,
      );
      const manifest = parsed.manifest;
      const manifestDigest = descriptor.digest;
      return {
        kind: 'layout',
        reference: spec,
        names,
        manifestDigest,
        manifest,
        config,
        openLayer: (layerIndex) => {
          const layer = layerAt(manifest, layerIndex);
          const verify = new DigestStream({ expected: layer.digest, expectedSize: layer.size });
          const file = createReadStream(blobPath(root, layer.digest));
          file.on('error', (err) =>
            verify.destroy(
              errnoCode(err) === 'ENOENT'
                ? new StrataError(
                    'INVALID_ARCHIVE',
                    `the layout has no blob ${layer.digest} (layer ${layerIndex})`,
                  )
                : err,
            ),
          );
          return file.pipe(verify);
        },
        close: async () => undefined,
      };
    }
    descriptor = selectManifest(parsed.index, platform ?? hostPlatform()) ?? parsed.index.manifests[0];
  }
  throw new StrataError('INVALID_ARCHIVE', `${root}: no image manifest for the platform`);
}
