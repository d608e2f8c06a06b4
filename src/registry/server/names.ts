/**
 * Strict validators for everything a client puts in a URL (distribution spec 1.1), and the path
 * router. Nothing here decodes percent-escapes: no valid name, tag, digest or upload id contains
 * `%`, so an escaped `..` or `/` simply fails validation instead of turning into a path.
 */
import type { Digest } from '../../oci/digest.js';

/** The spec's limit for `<name>` (the whole name, slashes included). */
export const MAX_NAME_LENGTH = 255;

// One path component: alphanumeric runs joined by `.`, `_`, `__` or any run of `-`.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
// The image spec's digest grammar: any well-formed algorithm parses, only two are supported.
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;
const SUPPORTED_HEX: Readonly<Record<string, RegExp>> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};
// Upload ids are ours (crypto.randomUUID); anything else cannot name a session.
const UPLOAD_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Far above any valid digest; keeps the regular expressions away from megabyte inputs.
const MAX_DIGEST_INPUT = 300;

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function isTag(tag: string): boolean {
  return tag.length <= 128 && TAG_PATTERN.test(tag);
}

export function isUploadId(id: string): boolean {
  return id.length === 36 && UPLOAD_ID_PATTERN.test(id);
}

export type DigestCheck =
  | { readonly ok: true; readonly digest: Digest }
  /** `malformed`: not a digest at all; `unsupported`: well-formed, but not sha256/sha512. */
  | { readonly ok: false; readonly reason: 'malformed' | 'unsupported' };

export function checkDigest(value: string): DigestCheck {
  if (value.length > MAX_DIGEST_INPUT || !DIGEST_GRAMMAR.test(value))
    return { ok: false, reason: 'malformed' };
  const colon = value.indexOf(':');
  const hexPattern = SUPPORTED_HEX[value.slice(0, colon)];
  if (hexPattern === undefined) return { ok: false, reason: 'unsupported' };
  // Uppercase hex is well-formed by the grammar but never canonical: refuse it rather than
  // store the same content under two spellings.
  if (!hexPattern.test(value.slice(colon + 1))) return { ok: false, reason: 'malformed' };
  return { ok: true, digest: value as Digest };
}

export type ManifestReference =
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'digest'; readonly digest: Digest }
  | { readonly kind: 'invalid'; readonly problem: 'tag' | 'digest' | 'unsupported-digest' };

/** A `<reference>` is a digest when it has a colon (tags cannot), a tag otherwise. */
export function classifyReference(reference: string): ManifestReference {
  if (reference.includes(':')) {
    const check = checkDigest(reference);
    if (check.ok) return { kind: 'digest', digest: check.digest };
    return { kind: 'invalid', problem: check.reason === 'unsupported' ? 'unsupported-digest' : 'digest' };
  }
  return isTag(reference) ? { kind: 'tag', tag: reference } : { kind: 'invalid', problem: 'tag' };
}

/** The endpoints of the spec. `name` and the last segment are raw: the caller validates them. */
export type Route =
  | { readonly kind: 'base' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'blob'; readonly name: string; readonly digest: string }
  | { readonly kind: 'uploads'; readonly name: string }
  | { readonly kind: 'upload'; readonly name: string; readonly id: string }
  | { readonly kind: 'manifest'; readonly name: string; readonly reference: string }
  | { readonly kind: 'tags'; readonly name: string }
  | { readonly kind: 'referrers'; readonly name: string; readonly digest: string };

/**
 * Matches a request path (no query string) to an endpoint, or undefined. Names contain slashes,
 * so the endpoint is recognised from the right: what is left of it is the name.
 */
export function parseRoute(pathname: string): Route | undefined {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (!pathname.startsWith('/v2/')) return undefined;
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  const segments = pathname.slice(4).split('/');
  const count = segments.length;
  if (count < 3) return undefined;
  const last = segments[count - 1]!;
  const beforeLast = segments[count - 2]!;
  const nameOf = (length: number): string => segments.slice(0, length).join('/');

  if (beforeLast === 'tags' && last === 'list') return { kind: 'tags', name: nameOf(count - 2) };
  if (beforeLast === 'manifests') return { kind: 'manifest', name: nameOf(count - 2), reference: last };
  if (beforeLast === 'referrers') return { kind: 'referrers', name: nameOf(count - 2), digest: last };
  if (count >= 4 && beforeLast === 'uploads' && segments[count - 3] === 'blobs') {
    const name = nameOf(count - 3);
    return last === '' ? { kind: 'uploads', name } : { kind: 'upload', name, id: last };
  }
  if (beforeLast === 'blobs') {
    // `POST /v2/<name>/blobs/uploads` without the trailing slash, as some clients send it.
    if (last === 'uploads') return { kind: 'uploads', name: nameOf(count - 2) };
    return { kind: 'blob', name: nameOf(count - 2), digest: last };
  }
  return undefined;
}
