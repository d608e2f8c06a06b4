import type { Store } from '../store/index.js';
import type { Digest } from '../oci/digest.js';
import { isDigest } from '../oci/digest.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { parseImageConfig, parseManifestOrIndex } from '../oci/validate.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { hostPlatform, selectManifest } from '../oci/platform.js';
import { StrataError, isStrataError } from '../errors.js';

/** Manifests and configs are small; anything larger than this is refused rather than buffered. */
export const MAX_METADATA_BYTES = 8 * 1024 * 1024;

/** One image as strata sees it: a name (or none) pointing at a manifest, its config and layers. */
export interface ResolvedImage {
  /** Canonical names (`docker.io/library/busybox:latest`) that point at this image's target. */
  names: string[];
  /** What the names point at: an image manifest or an index. */
  target: Descriptor;
  /** The image manifest chosen for the platform (equal to `target` unless it is an index). */
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /**
   * Docker's image ID: the config digest for a single-platform image (what dockerd 20.10 shows and
   * what survives save/load), the index digest for a multi-platform one.
   */
  id: Digest;
  /** When the name was last set, for `docker images`-style listings. */
  tagged?: string;
}

export type ManifestOrIndex =
  { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

export async function readManifestOrIndex(store: Store, descriptor: Descriptor): Promise<ManifestOrIndex> {
  const bytes = await store.content.readBytes(descriptor.digest, MAX_METADATA_BYTES);
  return parseManifestOrIndex(bytes, descriptor.mediaType);
}

export async function readImageConfig(store: Store, descriptor: Descriptor): Promise<ImageConfig> {
  const bytes = await store.content.readBytes(descriptor.digest, MAX_METADATA_BYTES);
  return parseImageConfig(bytes, `config ${descriptor.digest}`);
}

/**
 * Follows a target to the image manifest for `platform`. An index may be only partly present
 * (a single-platform pull keeps the whole index), so the wanted platform is tried first, then any
 * child manifest that the store actually holds.
 */
export async function resolveTarget(
  store: Store,
  target: Descriptor,
  platform: Platform = hostPlatform(),
): Promise<Omit<ResolvedImage, 'names'>> {
  let descriptor = target;
  for (let depth = 0; depth < 4; depth++) {
    const parsed = await readManifestOrIndex(store, descriptor);
    if (parsed.kind === 'manifest') {
      const config = await readImageConfig(store, parsed.manifest.config);
      const id = descriptor === target ? parsed.manifest.config.digest : target.digest;
      return { target, manifestDescriptor: descriptor, manifest: parsed.manifest, config, id };
    }
    const preferred = selectManifest(parsed.index, platform);
    const candidates = preferred ? [preferred, ...parsed.index.manifests] : parsed.index.manifests;
    let next: Descriptor | undefined;
    for (const candidate of candidates) {
      if (await store.content.has(candidate.digest)) {
        next = candidate;
        break;
      }
    }
    if (!next) {
      throw new StrataError('NOT_FOUND', `index ${descriptor.digest} has no manifest present in the store`);
    }
    descriptor = next;
  }
  throw new StrataError('INVALID_MANIFEST', `index ${target.digest} nests indexes too deeply`);
}

/** Canonical store key for a user-typed name, or undefined when the text is not a reference. */
export function canonicalName(text: string): string | undefined {
  try {
    return formatReference(parseReference(text));
  } catch (err) {
    if (isStrataError(err, 'INVALID_REFERENCE')) return undefined;
    throw err;
  }
}

export interface ImageEntry {
  name: string;
  target: Descriptor;
  updated?: string;
}

/** Keys of untagged images in images.json: the target digest itself, never a valid reference. */
export function isUntaggedKey(name: string): boolean {
  return isDigest(name);
}

async function entries(store: Store): Promise<ImageEntry[]> {
  return (await store.images.list()).map((record) => ({
    name: record.name,
    target: record.target,
    updated: record.updated,
  }));
}

/** Every image in the store, grouped by target so an image with several tags appears once. */
export async function listImages(store: Store, platform?: Platform): Promise<ResolvedImage[]> {
  const byTarget = new Map<string, ResolvedImage>();
  for (const entry of await entries(store)) {
    let image = byTarget.get(entry.target.digest);
    if (!image) {
      try {
        image = { names: [], ...(await resolveTarget(store, entry.target, platform)), tagged: entry.updated };
      } catch (err) {
        // A broken or partly deleted image must not hide the others from a listing.
        if (isStrataError(err)) continue;
        throw err;
      }
      byTarget.set(entry.target.digest, image);
    }
    if (!isUntaggedKey(entry.name)) image.names.push(entry.name);
    if (entry.updated && (!image.tagged || entry.updated > image.tagged)) image.tagged = entry.updated;
  }
  for (const image of byTarget.values()) image.names.sort();
  return [...byTarget.values()];
}

function hexOf(id: string): string {
  return id.includes(':') ? id.slice(id.indexOf(':') + 1) : id;
}

/**
 * Finds an image the way docker does: first as a name (`busybox` → `docker.io/library/busybox:latest`,
 * `name@sha256:…`), then as a full or abbreviated image ID or target digest.
 */
export async function findImage(store: Store, text: string, platform?: Platform): Promise<ResolvedImage> {
  const all = await listImages(store, platform);
  const name = canonicalName(text);
  if (name !== undefined) {
    const named = all.find((image) => image.names.includes(name));
    if (named) return named;
    const reference = parseReference(text, { defaultTag: false });
    if (reference.digest !== undefined) {
      const repository = `${reference.registry}/${reference.repository}`;
      const byDigest = all.find(
        (image) =>
          (image.target.digest === reference.digest ||
            image.manifestDescriptor.digest === reference.digest) &&
          (image.names.length === 0 ||
            image.names.some((n) => n.startsWith(`${repository}:`) || n.startsWith(`${repository}@`))),
      );
      if (byDigest) return byDigest;
    }
  }
  // An ID is bare hex or `sha256:<hex>`; `name:1` is a tag, never an ID prefix.
  const idText = /^(?:sha256:|sha512:)?[a-f0-9]{1,128}$/i.test(text) ? text.toLowerCase() : '';
  const hex = hexOf(idText);
  if (hex !== '' && (hex.length >= 4 || idText.includes(':'))) {
    const matches = all.filter(
      (image) => hexOf(image.id).startsWith(hex) || hexOf(image.target.digest).startsWith(hex),
    );
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length > 1) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `image ID prefix "${text}" is ambiguous: ${matches.length} images match`,
      );
    }
  }
  throw new StrataError('NOT_FOUND', `No such image: ${text}`);
}
