import { isDigest, type Digest } from '../../oci/digest.js';

/** What a manifest points at: the registry checks these exist on PUT, and GC marks them live. */
export interface ManifestReferences {
  /** Config and layers (image manifests), blobs (artifact manifests). */
  readonly blobs: readonly Digest[];
  /** Child manifests (indexes). */
  readonly manifests: readonly Digest[];
  /** The OCI 1.1 `subject`, when the manifest refers to another one. */
  readonly subject?: Digest;
  /** `artifactType`, else the config's media type (the referrers API reports it). */
  readonly artifactType?: string;
  /** The manifest's own `mediaType` field, when it has one. */
  readonly mediaType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * Reads the references out of a manifest body already parsed as JSON. Throws a plain Error whose
 * message says what is wrong (the HTTP layer turns it into MANIFEST_INVALID); the caller decides
 * what to do with media types it does not know.
 */
export function manifestReferences(document: unknown): ManifestReferences {
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new Error('manifest is not a JSON object');
  const manifest = document as Record<string, unknown>;
  const blobs: Digest[] = [];
  const manifests: Digest[] = [];
  const config = descriptor(manifest.config, 'config');
  if (config) blobs.push(config.digest);
  for (const [field, into] of [
    ['layers', blobs],
    ['blobs', blobs],
    ['manifests', manifests],
  ] as const) {
    const list = manifest[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new Error(`${field} is not an array`);
    list.forEach((entry, index) => into.push(descriptor(entry, `${field}[${index}]`)!.digest));
  }
  const subject = descriptor(manifest.subject, 'subject');
  const artifactType = typeof manifest.artifactType === 'string' ? manifest.artifactType : config?.mediaType;
  const annotations = stringRecord(manifest.annotations);
  return {
    blobs,
    manifests,
    ...(subject ? { subject: subject.digest } : {}),
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(typeof manifest.mediaType === 'string' ? { mediaType: manifest.mediaType } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

function descriptor(value: unknown, where: string): { digest: Digest; mediaType?: string } | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where} is not a descriptor`);
  const { digest, mediaType } = value as Record<string, unknown>;
  if (typeof digest !== 'string' || !isDigest(digest))
    throw new Error(`${where}.digest is not a valid digest`);
  return { digest, ...(typeof mediaType === 'string' ? { mediaType } : {}) };
}

function stringRecord(value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value).filter(
    (entry): entry is [string, string] => typeof entry[1] === 'string',
  );
  return Object.fromEntries(entries);
}
