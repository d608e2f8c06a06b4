import type { Digest } from '../../../oci/digest.js';

/**
 * Where everything lives in a storage driver. Blobs are stored once, by digest; a repository
 * sees a blob only through a link (so access control and GC work per repository); tags and
 * manifest revisions are links too. Repository name components always start with [a-z0-9], so
 * the `_layers`-style names below can never be a repository's own.
 *
 * Link objects hold the digest as text. Their modification time is the last time a client used
 * the link (upload, HEAD, mount, manifest put): GC spares blobs whose links are that recent.
 */
export const StoragePaths = {
  blobData(digest: Digest): string {
    const [algorithm, hex] = split(digest);
    return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}/data`;
  },
  blobsRoot: 'blobs',
  repositoriesRoot: 'repositories',
  repository(name: string): string {
    return `repositories/${name}`;
  },
  layerLink(name: string, digest: Digest): string {
    const [algorithm, hex] = split(digest);
    return `repositories/${name}/_layers/${algorithm}/${hex}/link`;
  },
  layerLinks(name: string): string {
    return `repositories/${name}/_layers`;
  },
  manifestRevisionLink(name: string, digest: Digest): string {
    const [algorithm, hex] = split(digest);
    return `repositories/${name}/_manifests/revisions/${algorithm}/${hex}/link`;
  },
  manifestRevisions(name: string): string {
    return `repositories/${name}/_manifests/revisions`;
  },
  tagLink(name: string, tag: string): string {
    return `repositories/${name}/_manifests/tags/${tag}/current/link`;
  },
  tag(name: string, tag: string): string {
    return `repositories/${name}/_manifests/tags/${tag}`;
  },
  tags(name: string): string {
    return `repositories/${name}/_manifests/tags`;
  },
  /** A referrer of `subject` in `name`: the link holds the referrer manifest's digest. */
  referrerLink(name: string, subject: Digest, referrer: Digest): string {
    const [subjectAlgorithm, subjectHex] = split(subject);
    const [algorithm, hex] = split(referrer);
    return `repositories/${name}/_referrers/${subjectAlgorithm}/${subjectHex}/${algorithm}/${hex}/link`;
  },
  referrers(name: string, subject: Digest): string {
    const [algorithm, hex] = split(subject);
    return `repositories/${name}/_referrers/${algorithm}/${hex}`;
  },
  uploads(name: string): string {
    return `repositories/${name}/_uploads`;
  },
  uploadData(name: string, id: string): string {
    return `repositories/${name}/_uploads/${id}/data`;
  },
  uploadState(name: string, id: string): string {
    return `repositories/${name}/_uploads/${id}/state.json`;
  },
  upload(name: string, id: string): string {
    return `repositories/${name}/_uploads/${id}`;
  },
} as const;

function split(digest: Digest): [string, string] {
  const colon = digest.indexOf(':');
  return [digest.slice(0, colon), digest.slice(colon + 1)];
}
