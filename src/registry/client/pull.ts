import { prestartDigestThread, type Store } from '../../store/index.js';
import { MediaType } from '../../oci/mediatypes.js';
import { formatPlatform, hostPlatform, platformMatches, selectManifest } from '../../oci/platform.js';
import { formatReference, parseReference, type Reference } from '../../oci/reference.js';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor, ImageManifest, Platform } from '../../oci/types.js';
import { parseImageConfig, parseManifestOrIndex } from '../../oci/validate.js';
import { MAX_METADATA_BYTES, isUntaggedKey, resolveTarget, type ResolvedImage } from '../../image/resolve.js';
import { setImageNames } from '../../image/names.js';
import { StrataError } from '../../errors.js';
import type { ProgressListener } from './progress.js';
import { RemoteRepository } from './repository.js';
import { BlobReporter, downloadBlob, forEachLimited, linkedAbort, settleAll } from './transfer.js';
import { RegistryClient, type ClientOptions } from './transport.js';

export interface PullOptions extends Omit<ClientOptions, 'signal'> {
  /** The platform to take from a multi-platform index (default: this host's). */
  platform?: Platform;
  progress?: ProgressListener;
  /** Hosts to reach without verified TLS (besides loopback ones). */
  insecureRegistries?: string[];
  signal?: AbortSignal;
  /**
   * Layers downloaded at once (default 6: on a local registry 6 streams measured ~40% faster
   * than dockerd's 3, and a remote one is no worse off).
   */
  concurrency?: number;
}

/** A layer to download at least this large starts the digest thread (store/digest-thread.ts). */
const PRESTART_BYTES = 4 * 1024 * 1024;

/** Indexes may nest (an index of indexes); real images go one or two levels deep. */
const MAX_INDEX_DEPTH = 4;

/**
 * `docker pull`: fetches the manifest (an index is narrowed to one platform), the config and the
 * layers into the store, verified by digest, then names the image as docker does
 * (`docker.io/library/busybox:latest`, or `…@sha256:…` when pulled by digest). Layers are kept
 * exactly as the registry serves them, so every digest matches the registry's. An interrupted
 * download resumes on the next pull from the bytes already fetched; a failed pull leaves no
 * partial blob visible and no name changed.
 */
export async function pullImage(
  store: Store,
  reference: string,
  options: PullOptions = {},
): Promise<ResolvedImage> {
  const ref = parseReference(reference);
  const abort = linkedAbort(options.signal);
  const client = await RegistryClient.create(ref.registry, { ...options, signal: abort.signal });
  const repository = new RemoteRepository(client, ref.repository);
  return pullWith(store, repository, ref, options, abort);
}

/** `docker pull --all-tags`: every tag of a repository, one after the other, in tag order. */
export async function pullAllTags(
  store: Store,
  repositoryName: string,
  options: PullOptions = {},
): Promise<{ name: string; image: ResolvedImage }[]> {
  const ref = parseReference(repositoryName, { defaultTag: false });
  if (ref.tag !== undefined || ref.digest !== undefined) {
    throw new StrataError('INVALID_ARGUMENT', `tag can't be used with --all-tags/-a: ${repositoryName}`);
  }
  const abort = linkedAbort(options.signal);
  const client = await RegistryClient.create(ref.registry, { ...options, signal: abort.signal });
  const repository = new RemoteRepository(client, ref.repository);
  const tags = (await repository.listTags()).sort();
  if (tags.length === 0) throw new StrataError('NOT_FOUND', `repository ${repository.name} has no tags`);
  const pulled: { name: string; image: ResolvedImage }[] = [];
  for (const tag of tags) {
    const tagged = { ...ref, tag };
    pulled.push({
      name: formatReference(tagged),
      image: await pullWith(store, repository, tagged, options, abort),
    });
  }
  return pulled;
}

async function pullWith(
  store: Store,
  repository: RemoteRepository,
  ref: Reference,
  options: PullOptions,
  abort: AbortController,
): Promise<ResolvedImage> {
  const platform = options.platform ?? hostPlatform();
  const name = formatReference(ref);
  const progress = options.progress;
  return store.withLease(async () => {
    const top = await repository.getManifest(ref.digest ?? ref.tag ?? 'latest');
    let parsed = parseManifestOrIndex(top.bytes, top.mediaType, { source: `manifest of ${name}` });
    const target: Descriptor = {
      mediaType: documentMediaType(parsed, top.mediaType),
      digest: top.digest,
      size: top.bytes.length,
    };
    progress?.({ type: 'resolved', reference: name, digest: top.digest, mediaType: target.mediaType });
    // Stored while the rest downloads (every document is in the store before the name is set).
    const documents: Array<{ bytes: Buffer; digest: Digest }> = [top];

    for (let depth = 0; parsed.kind === 'index'; depth++) {
      if (depth >= MAX_INDEX_DEPTH)
        throw new StrataError('INVALID_MANIFEST', `${name}: indexes nest too deeply`);
      const chosen = selectManifest(parsed.index, platform);
      if (chosen === undefined) {
        const offered = parsed.index.manifests.flatMap((m) =>
          m.platform ? [formatPlatform(m.platform)] : [],
        );
        throw new StrataError(
          'NOT_FOUND',
          `no matching manifest for ${formatPlatform(platform)} in ${name} (it has: ${offered.join(', ') || 'no platforms'})`,
        );
      }
      const child = await repository.getManifest(chosen.digest);
      parsed = parseManifestOrIndex(child.bytes, chosen.mediaType, {
        source: `manifest ${chosen.digest} of ${name}`,
      });
      documents.push(child);
    }
    const manifest: ImageManifest = parsed.manifest;
    // Layers are digested on the digest thread: started here, it boots (tens of ms) while the
    // first bytes come. Not for a pull with nothing to download: a process that exits while the
    // thread still boots waits for it.
    for (const layer of manifest.layers) {
      if (layer.size >= PRESTART_BYTES && !(await store.content.has(layer.digest))) {
        prestartDigestThread();
        break;
      }
    }

    const layers = manifest.layers.filter(
      (layer, index, all) => all.findIndex((l) => l.digest === layer.digest) === index,
    );
    for (const layer of layers) {
      progress?.({
        type: 'blob',
        direction: 'pull',
        digest: layer.digest,
        size: layer.size,
        kind: 'layer',
        status: 'waiting',
        transferred: 0,
      });
    }
    // The documents, the config and the layers at once: no layer waits for the small blobs'
    // round trips and fsyncs.
    await settleAll(
      [
        (async () => {
          for (const document of documents)
            await store.content.putBytes(document.bytes, { digest: document.digest });
        })(),
        fetchConfig(store, repository, manifest, {
          name,
          platform,
          explicitPlatform: options.platform !== undefined,
          progress,
          abort,
        }),
        forEachLimited(
          layers,
          options.concurrency ?? 6,
          (layer) =>
            downloadBlob(
              store,
              repository,
              layer,
              new BlobReporter(progress, {
                type: 'blob',
                direction: 'pull',
                digest: layer.digest,
                size: layer.size,
                kind: 'layer',
              }),
            ),
          abort,
        ),
      ],
      abort,
    );

    const previous = await store.images.get(name);
    await setImageNames(store, [{ target, names: [name] }]);
    if (previous !== undefined && previous.target.digest !== target.digest) {
      progress?.({
        type: 'warning',
        message: `${name} moved from ${previous.target.digest} to ${target.digest}`,
      });
    }
    const resolved = await resolveTarget(store, target, platform);
    const names = (await store.images.list()).filter(
      (record) => record.target.digest === target.digest && !isUntaggedKey(record.name),
    );
    return { ...resolved, names: names.map((record) => record.name).sort() };
  });
}

async function fetchConfig(
  store: Store,
  repository: RemoteRepository,
  manifest: ImageManifest,
  context: {
    name: string;
    platform: Platform;
    explicitPlatform: boolean;
    progress: ProgressListener | undefined;
    abort: AbortController;
  },
): Promise<void> {
  const config = manifest.config;
  if (config.size > MAX_METADATA_BYTES) {
    throw new StrataError(
      'INVALID_MANIFEST',
      `${context.name}: config of ${config.size} bytes is over the ${MAX_METADATA_BYTES}-byte limit`,
    );
  }
  await downloadBlob(
    store,
    repository,
    config,
    new BlobReporter(context.progress, {
      type: 'blob',
      direction: 'pull',
      digest: config.digest,
      size: config.size,
      kind: 'config',
    }),
  );
  const parsed = parseImageConfig(
    await store.content.readBytes(config.digest, MAX_METADATA_BYTES),
    `config ${config.digest} of ${context.name}`,
  );
  const actual: Platform = {
    os: parsed.os,
    architecture: parsed.architecture,
    ...(parsed.variant !== undefined ? { variant: parsed.variant } : {}),
  };
  if (context.explicitPlatform && !platformMatches(context.platform, actual)) {
    context.progress?.({
      type: 'warning',
      message: `the image ${context.name} is for ${formatPlatform(actual)}, not the requested ${formatPlatform(context.platform)}`,
    });
  }
}

function documentMediaType(parsed: ReturnType<typeof parseManifestOrIndex>, contentType: string): string {
  const own = parsed.kind === 'index' ? parsed.index.mediaType : parsed.manifest.mediaType;
  if (own !== undefined) return own;
  if (contentType !== '' && contentType !== 'application/json') return contentType;
  return parsed.kind === 'index' ? MediaType.ociIndex : MediaType.ociManifest;
}
