import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { DEFAULT_ZSTD_LEVEL, compressFile, prestartCompressionWorkers } from '../../archive/compression.js';
import { deflateEngine } from '../../archive/deflate-engine.js';
import type { Digest } from '../../oci/digest.js';
import { digestOf } from '../../oci/digest.js';
import { layerCompression, layerMediaType, MediaType, type Compression } from '../../oci/mediatypes.js';
import { familiarString, formatReference, parseReference, type Reference } from '../../oci/reference.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../../oci/types.js';
import { parseManifestOrIndex } from '../../oci/validate.js';
import { MAX_METADATA_BYTES, isUntaggedKey } from '../../image/resolve.js';
import { prestartDigestThread, type BlobInfo, type Store } from '../../store/index.js';
import { StrataError, errnoCode } from '../../errors.js';
import { CompressedLayerCache } from './compressed-cache.js';
import { isRetriable, networkError } from './errors.js';
import type { ProgressListener } from './progress.js';
import { RemoteRepository, counting } from './repository.js';
import { BlobReporter, chunkBatches, forEachLimited, linkedAbort, settleAll } from './transfer.js';
import { RegistryClient, type ClientOptions } from './transport.js';

/**
 * Read size for layers going to the compressor or the socket: 1 MiB reads (one gzip block each)
 * take ~30% less main-thread time than the default 64 KiB over a 500 MB image.
 */
const BULK_READ_BYTES = 1024 * 1024;

export interface PushOptions extends Omit<ClientOptions, 'signal'> {
  progress?: ProgressListener;
  insecureRegistries?: string[];
  signal?: AbortSignal;
  /** Blobs uploaded at once (default 5, as dockerd's max-concurrent-uploads). */
  concurrency?: number;
  /** Upload blobs larger than this in PATCH chunks of this many bytes (default: one PUT per blob). */
  chunkSize?: number;
  /** Repositories of the same registry to mount blobs from before uploading them. */
  mountFrom?: readonly string[];
  /**
   * What uncompressed layers (what `strata build` and `load` store) become on the registry:
   * gzip by default, since docker and podman expect compressed layers; 'none' pushes them as is.
   */
  layerCompression?: Compression;
  /**
   * Compression level for those layers: gzip 0–9 (default 2 with libdeflate, else 4: see
   * defaultPushGzipLevel), zstd 1–22 (default 3). A compressed blob is remembered per codec and
   * level.
   */
  compressionLevel?: number;
}

/**
 * gzip level for layers compressed at push: the fastest level whose layers are still no larger
 * than what skopeo and podman send (Go's pgzip at its default). With libdeflate (the engine when
 * strata's addon is built, see archive/deflate-engine.ts) that is level 2: on the real-file bench
 * image 2.2% smaller than skopeo's layers, and with zlib level 4 (0.9% smaller). Level 6, the
 * usual default, costs about twice the time for 1–3% smaller layers. docs/decisions.md has the
 * measurements.
 */
export function defaultPushGzipLevel(): number {
  return deflateEngine() === 'libdeflate' ? 2 : 4;
}

/** The level a push compresses `codec` at; a level outside the codec's range is an error. */
export function pushCompressionLevel(codec: Compression, level: number | undefined): number {
  if (codec === 'none') return 0;
  const [min, max, fallback] =
    codec === 'gzip' ? [0, 9, defaultPushGzipLevel()] : [1, 22, DEFAULT_ZSTD_LEVEL];
  const chosen = level ?? fallback;
  if (!Number.isInteger(chosen) || chosen < min || chosen > max) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `--compression-level for ${codec} must be an integer ${min}–${max}, not ${String(level)}`,
    );
  }
  return chosen;
}

export interface PushResult {
  /** The canonical name pushed, e.g. `localhost:5000/app:1`. */
  name: string;
  /** What the tag now points at on the registry. */
  digest: Digest;
  size: number;
  mediaType: string;
}

/**
 * `docker push`: uploads what a local name points at. Blobs the registry already has are skipped
 * (HEAD), blobs another repository of the registry holds are mounted, the rest are uploaded
 * (one PUT, or PATCH chunks with `chunkSize`). Uncompressed layers are gzip-compressed first, and
 * the compressed blob is kept and remembered so that the next push is a HEAD hit. When a manifest
 * had to be rewritten for that, the rewritten manifest is stored and the pushed name points at it,
 * so the local name and the registry agree on the digest and GC keeps the compressed blobs.
 */
export async function pushImage(
  store: Store,
  reference: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const ref = parseReference(reference);
  pushCompressionLevel(options.layerCompression ?? 'gzip', options.compressionLevel);
  const abort = linkedAbort(options.signal);
  const client = await RegistryClient.create(ref.registry, { ...options, signal: abort.signal });
  return pushWith(store, new RemoteRepository(client, ref.repository), ref, options, abort);
}

/** `docker push --all-tags`: every local tag of a repository. */
export async function pushAllTags(
  store: Store,
  repositoryName: string,
  options: PushOptions = {},
): Promise<PushResult[]> {
  const ref = parseReference(repositoryName, { defaultTag: false });
  if (ref.tag !== undefined || ref.digest !== undefined) {
    throw new StrataError('INVALID_ARGUMENT', `tag can't be used with --all-tags/-a: ${repositoryName}`);
  }
  pushCompressionLevel(options.layerCompression ?? 'gzip', options.compressionLevel);
  const prefix = `${ref.registry}/${ref.repository}:`;
  const tags = (await store.images.list())
    .filter((record) => record.name.startsWith(prefix) && !record.name.includes('@'))
    .map((record) => record.name.slice(prefix.length));
  if (tags.length === 0) {
    throw new StrataError(
      'NOT_FOUND',
      `An image does not exist locally with the repository name: ${repositoryName}`,
    );
  }
  const abort = linkedAbort(options.signal);
  const client = await RegistryClient.create(ref.registry, { ...options, signal: abort.signal });
  const repository = new RemoteRepository(client, ref.repository);
  const results: PushResult[] = [];
  for (const tag of tags.sort())
    results.push(await pushWith(store, repository, { ...ref, tag }, options, abort));
  return results;
}

interface PushContext {
  store: Store;
  repository: RemoteRepository;
  options: PushOptions;
  abort: AbortController;
  cache: CompressedLayerCache;
  /** What uncompressed layers become (options.layerCompression), and at which level. */
  codec: Compression;
  level: number;
  mountSources: string[];
  /** Blobs handled in this push, so a layer shared by two platforms is sent once. */
  done: Map<Digest, Promise<void>>;
  compressions: Semaphore;
  /**
   * The registry's handshake (`GET /v2/`: which scheme answers, what authentication it wants).
   * Every request of the push waits for it; compressions do not, so layers start compressing
   * while it runs. Never an unhandled rejection (a catch is attached when it starts).
   */
  registryReady: Promise<void>;
}

/**
 * Bounds concurrent compressions: each one already uses every core (compression.ts), so more
 * than two at once only thrash, while uploads of finished layers go on beside them.
 */
class Semaphore {
  private waiting: (() => void)[] = [];
  private running = 0;

  constructor(private readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next waiter, so the count never overshoots.
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }
}

async function pushWith(
  store: Store,
  repository: RemoteRepository,
  ref: Reference,
  options: PushOptions,
  abort: AbortController,
): Promise<PushResult> {
  const name = formatReference(ref);
  const record = await store.images.get(name);
  if (record === undefined) {
    throw new StrataError(
      'NOT_FOUND',
      `An image does not exist locally with the tag: ${familiarString(ref)}`,
    );
  }
  const cache = new CompressedLayerCache(store);
  // The compression workers and the digest thread boot (~60 ms each) while the registry answers.
  const codec = options.layerCompression ?? 'gzip';
  const level = pushCompressionLevel(codec, options.compressionLevel);
  if (await compressesLayers(store, cache, record.target, codec, level)) {
    // (zstd brings its own threads.)
    if (codec === 'gzip') prestartCompressionWorkers();
    prestartDigestThread();
  }
  const registryReady = repository.client.ping();
  registryReady.catch(() => undefined);
  const records = await store.images.list();
  const mountSources = [
    ...(options.mountFrom ?? []),
    ...records
      .filter((other) => other.target.digest === record.target.digest && !isUntaggedKey(other.name))
      .map((other) => parseReference(other.name, { defaultTag: false }))
      .filter((other) => other.registry === ref.registry && other.repository !== ref.repository)
      .map((other) => other.repository),
  ];
  const context: PushContext = {
    store,
    repository,
    options,
    abort,
    cache,
    codec,
    level,
    mountSources: [...new Set(mountSources)],
    done: new Map(),
    compressions: new Semaphore(2),
    registryReady,
  };
  return store.withLease(async () => {
    // Without a tag the manifest goes up under its digest, which is the rewritten one's when
    // layers had to be compressed.
    const pushed = await pushDocument(context, record.target, ref.tag);
    if (pushed.digest !== record.target.digest) {
      // Point the name at what the registry now holds (see the pushImage comment).
      await store.images.set(name, pushed);
    }
    return { name, digest: pushed.digest, size: pushed.size, mediaType: pushed.mediaType };
  });
}

/**
 * Whether pushing `descriptor` compresses a layer: an uncompressed layer with no compressed blob
 * remembered for it (prepareLayer's test, in short). A document it cannot read says no: the push
 * itself reports that.
 */
async function compressesLayers(
  store: Store,
  cache: CompressedLayerCache,
  descriptor: Descriptor,
  codec: Compression,
  level: number,
  depth = 0,
): Promise<boolean> {
  if (codec === 'none' || depth > 4) return false;
  let parsed: ReturnType<typeof parseManifestOrIndex>;
  try {
    const bytes = await store.content.readBytes(descriptor.digest, MAX_METADATA_BYTES);
    parsed = parseManifestOrIndex(bytes, descriptor.mediaType, { source: `manifest ${descriptor.digest}` });
  } catch {
    return false;
  }
  if (parsed.kind === 'index') {
    for (const child of parsed.index.manifests) {
      if (
        (await store.content.has(child.digest)) &&
        (await compressesLayers(store, cache, child, codec, level, depth + 1))
      )
        return true;
    }
    return false;
  }
  for (const layer of parsed.manifest.layers) {
    if (layerCompression(layer.mediaType) !== 'none') continue;
    const known = await cache.get(layer.digest, codec, level);
    if (known === undefined || !(await store.content.has(known))) return true;
  }
  return false;
}

/** Pushes a manifest or index (children first), returning its descriptor as pushed. */
async function pushDocument(
  context: PushContext,
  descriptor: Descriptor,
  tagOrDigest: string | undefined,
): Promise<Descriptor> {
  const { store, repository } = context;
  const bytes = await store.content.readBytes(descriptor.digest, MAX_METADATA_BYTES);
  const parsed = parseManifestOrIndex(bytes, descriptor.mediaType, {
    source: `manifest ${descriptor.digest}`,
  });
  let document: ImageIndex | ImageManifest;
  let changed = false;
  if (parsed.kind === 'index') {
    const children: Descriptor[] = [];
    for (const child of parsed.index.manifests) {
      if (!(await store.content.has(child.digest))) {
        throw new StrataError(
          'NOT_FOUND',
          `cannot push ${repository.name}: the index has a manifest for ${child.platform ? `${child.platform.os}/${child.platform.architecture}` : child.digest} that is not in the store (only some platforms were pulled)`,
        );
      }
      const pushed = await pushDocument(context, child, undefined);
      if (pushed.digest !== child.digest) changed = true;
      children.push({ ...child, mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size });
    }
    document = { ...parsed.index, manifests: children };
  } else {
    const manifest = parsed.manifest;
    const family = manifest.mediaType === MediaType.dockerManifest ? 'docker' : 'oci';
    const layers: Descriptor[] = [...manifest.layers];
    // The config goes up beside the layers, which start compressing without waiting for the
    // registry.
    await settleAll(
      [
        uploadBlob(context, manifest.config, 'config'),
        forEachLimited(
          manifest.layers.map((layer, index) => ({ layer, index })),
          context.options.concurrency ?? 5,
          async ({ layer, index }) => {
            const prepared = await prepareLayer(context, layer, family);
            if (prepared.digest !== layer.digest) changed = true;
            layers[index] = prepared;
            await uploadBlob(context, prepared, 'layer');
          },
          context.abort,
        ),
      ],
      context.abort,
    );
    document = { ...manifest, layers };
  }
  let out = bytes;
  let outDescriptor = descriptor;
  if (changed) {
    out = Buffer.from(JSON.stringify(document, null, 2));
    const digest = digestOf(out);
    await store.content.putBytes(out, { digest });
    outDescriptor = { ...descriptor, digest, size: out.length };
  }
  const mediaType = outDescriptor.mediaType;
  await repository.putManifest(tagOrDigest ?? outDescriptor.digest, out, mediaType);
  context.options.progress?.({
    type: 'manifest',
    direction: 'push',
    reference: `${repository.name}${tagOrDigest !== undefined ? `:${tagOrDigest}` : `@${outDescriptor.digest}`}`,
    digest: outDescriptor.digest,
    size: out.length,
  });
  return outDescriptor;
}

/**
 * The layer as it goes to the registry: compressed layers as they are; an uncompressed one
 * compressed (once: the result is stored and remembered by diff ID and codec). A layer compressed
 * here is uploaded while it is compressed (see streamUpload); the blob is then done as far as
 * uploadBlob is concerned.
 */
async function prepareLayer(
  context: PushContext,
  layer: Descriptor,
  family: 'oci' | 'docker',
): Promise<Descriptor> {
  const { store, cache, codec, level } = context;
  if (layerCompression(layer.mediaType) !== 'none' || codec === 'none') return layer;
  // Annotations of the uncompressed blob may describe it (its digest, its size): drop them.
  const convert = (digest: Digest, size: number): Descriptor => ({
    mediaType: layerMediaType(codec, family),
    digest,
    size,
  });
  const known = await cache.get(layer.digest, codec, level);
  if (known !== undefined && (await store.content.retain(known))) {
    const info = await store.content.info(known);
    if (info !== undefined) return convert(known, info.size);
  }
  const reporter = new BlobReporter(context.options.progress, {
    type: 'blob',
    direction: 'push',
    digest: layer.digest,
    size: layer.size,
    kind: 'layer',
  });
  // The compressed blob is digested on the digest thread, started now if it is not running.
  prestartDigestThread();
  const { signal } = context.abort;
  const { stored, sent } = await context.compressions.run(async () => {
    // A push that failed meanwhile (the registry's handshake, another layer) compresses no more.
    signal.throwIfAborted();
    reporter.status('compressing');
    const compressed = compressFile(await openBlob(store, layer.digest), codec, {
      level,
      onBytes: (bytes) => reporter.add(bytes),
    });
    const stop = (): void => {
      compressed.destroy(signal.reason instanceof Error ? signal.reason : new Error('the push stopped'));
    };
    signal.addEventListener('abort', stop, { once: true });
    compressed.once('close', () => signal.removeEventListener('abort', stop));
    // Chunked uploads (an option for registries that limit request sizes) go from the store.
    const streamed = context.options.chunkSize === undefined;
    const forStore = streamed ? teeInto(compressed, BULK_READ_BYTES) : compressed;
    const forUpload = streamed ? teeInto(compressed, HANDSHAKE_BUFFER_BYTES) : undefined;
    // Never rejects: a failed streamed upload is redone from the store by uploadBlob.
    const sent =
      forUpload !== undefined
        ? streamUpload(context, forUpload, layer.digest).catch(() => undefined)
        : undefined;
    const stored = store.content.ingest(chunkBatches(forStore), { offThread: true });
    // A failed ingest (the disk) stops the compression, and with it the upload.
    stored.catch(() => compressed.destroy());
    // The slot is held while the compressor works, not while the blob is written out and
    // fsynced: that needs no CPU, and the next layer can compress meanwhile. (Wrapped in an
    // object so that returning it does not wait for it; its failure is seen below.)
    await Promise.race([once(compressed, 'end'), stored]).catch(() => undefined);
    return { stored, sent };
  });
  let blob: BlobInfo;
  try {
    blob = await stored;
  } catch (err) {
    await sent;
    throw err;
  }
  await cache.set(layer.digest, codec, level, blob.digest);
  const descriptor = convert(blob.digest, blob.size);
  const session = await sent;
  if (session !== undefined && !context.done.has(blob.digest)) {
    // Closing the session with the digest makes the registry check what it received.
    const closed = context.repository.closeUpload(session, blob.digest);
    context.done.set(blob.digest, closed);
    try {
      await closed;
      reporter.transferred = layer.size;
      reporter.status('done');
    } catch (err) {
      if (context.abort.signal.aborted) throw err;
      // uploadBlob sends it again from the store, in a fresh session.
      context.done.delete(blob.digest);
    }
  }
  return descriptor;
}

/** A stored blob opened for reading; NOT_FOUND when it is not there. */
async function openBlob(store: Store, digest: Digest): Promise<FileHandle> {
  try {
    return await open(store.content.blobPath(digest), 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `blob ${digest} is not in the store`);
    throw err;
  }
}

/**
 * What the upload's branch of a compression may hold while the registry's handshake is still
 * under way (a local registry answers in ~0.1 s, when ~15 MB of a layer are compressed): the
 * compression goes on meanwhile instead of waiting for the upload to start.
 */
const HANDSHAKE_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * A branch of `source` (piped to several: the slowest sets the pace, once its branch holds
 * `highWaterMark` bytes). A branch that fails drops out and the others go on; when the source
 * fails or stops early, every branch fails.
 */
function teeInto(source: Readable, highWaterMark: number): PassThrough {
  const branch = new PassThrough({ highWaterMark });
  source.pipe(branch);
  source.once('error', (err) => branch.destroy(err));
  source.once('close', () => {
    if (!source.readableEnded) branch.destroy(new Error('the compressed stream stopped early'));
  });
  return branch;
}

/**
 * Sends a blob that is still being made: a session, then one PATCH streaming `body`. Resolves
 * with the location to close the session at once the digest is known; rejects (and drops out of
 * the tee, so the compression goes on into the store) when the upload fails.
 */
async function streamUpload(context: PushContext, body: PassThrough, diffId: Digest): Promise<URL> {
  const { repository } = context;
  try {
    await context.registryReady;
    const location = await repository.startUpload();
    return await repository.patchStream(
      location,
      body,
      `upload of the compressed ${diffId} to ${repository.name}`,
    );
  } catch (err) {
    body.destroy();
    throw err;
  }
}

/** Gets one blob onto the registry: already there, mounted, or uploaded (retried from scratch). */
async function uploadBlob(
  context: PushContext,
  descriptor: Descriptor,
  kind: 'layer' | 'config',
): Promise<void> {
  const running = context.done.get(descriptor.digest);
  if (running !== undefined) return running;
  const work = uploadOnce(context, descriptor, kind);
  context.done.set(descriptor.digest, work);
  return work;
}

async function uploadOnce(
  context: PushContext,
  descriptor: Descriptor,
  kind: 'layer' | 'config',
): Promise<void> {
  const { store, repository, options } = context;
  const { digest, size } = descriptor;
  await context.registryReady;
  const reporter = new BlobReporter(options.progress, {
    type: 'blob',
    direction: 'push',
    digest,
    size,
    kind,
  });
  if (!(await store.content.has(digest))) {
    throw new StrataError('NOT_FOUND', `cannot push ${repository.name}: blob ${digest} is not in the store`);
  }
  if (await repository.hasBlob(digest)) {
    reporter.transferred = size;
    reporter.status('exists');
    return;
  }
  let location: URL | undefined;
  const from = context.mountSources[0];
  if (from !== undefined) {
    const mounted = await repository.mountBlob(digest, from);
    if (mounted === 'mounted') {
      reporter.transferred = size;
      reporter.status('mounted');
      return;
    }
    location = mounted;
  }
  const client = repository.client;
  for (let attempt = 0; ; attempt++) {
    try {
      location ??= await repository.startUpload();
      reporter.transferred = 0;
      reporter.status('started');
      const read = (range: { start?: number; end?: number } = {}): Readable =>
        pipeline(
          store.content.openRead(digest, { ...range, highWaterMark: BULK_READ_BYTES }),
          counting((bytes) => reporter.add(bytes)),
          () => undefined,
        );
      const chunkSize = options.chunkSize;
      if (chunkSize !== undefined && size > chunkSize) {
        await repository.putBlobChunked(location, digest, size, chunkSize, (start, end) =>
          read({ start, end }),
        );
      } else {
        await repository.putBlob(location, digest, size, () => read());
      }
      reporter.transferred = size;
      reporter.status('done');
      return;
    } catch (err) {
      client.signal?.throwIfAborted();
      // The session may hold part of the blob now: a retry starts a fresh one.
      location = undefined;
      if (isRetriable(err) && attempt < client.retries) {
        reporter.status('retrying', err instanceof Error ? err.message : String(err));
        await client.backoff(attempt);
        continue;
      }
      if (err instanceof StrataError) throw err;
      throw networkError(
        `upload of ${digest} to ${repository.name} failed after ${attempt + 1} attempts`,
        err,
      );
    }
  }
}
