/**
 * The registry's logic over a storage driver, without HTTP: blobs seen through per-repository
 * links, resumable upload sessions, cross-repository mounts, manifests with their tags and
 * referrers, listings. The HTTP layer (http.ts) validates the URL's parts and maps errors; this
 * class validates content (digests, manifests) and keeps the storage layout of paths.ts.
 *
 * Everything durable lives in the driver, so any number of Registry instances (processes,
 * replicas) can serve one store: upload sessions continue across restarts, and the only state in
 * memory is a cache of immutable manifest bodies and the running hash of uploads in progress.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestAlgorithm, digestOf, isDigest, type Digest, type DigestAlgorithm } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import {
  RegistryError,
  UploadRangeError,
  blobUnknown,
  digestInvalid,
  manifestInvalid,
  manifestUnknown,
  nameUnknown,
  unsupported,
  uploadUnknown,
} from './errors.js';
import { manifestReferences, type ManifestReferences } from './manifest-refs.js';
import { classifyReference, isRepositoryName, isTag } from './names.js';
import type { StorageDriver } from './storage/driver.js';
import { StoragePaths } from './storage/paths.js';
import { mapLimited } from './concurrency.js';

export interface RegistryOptions {
  readonly driver: StorageDriver;
  /** Manifest, tag and blob deletion (distribution's `delete.enabled`); default true. */
  readonly deleteEnabled?: boolean;
  /**
   * Mount a blob that exists anywhere in the registry when `mount` comes without `from`
   * (`OCI_AUTOMATIC_CROSSMOUNT=1`). Off by default: it lets a client with push rights on one
   * repository probe for, and link, content of repositories it cannot read.
   */
  readonly automaticCrossMount?: boolean;
  /** Largest manifest accepted (413 above); default 4 MiB, the least the spec asks for. */
  readonly maxManifestBytes?: number;
  /** Memory for cached manifest bodies (immutable, keyed by digest); default 64 MiB, 0 disables. */
  readonly manifestCacheBytes?: number;
}

export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** A blob found in a repository: its size, and a way to read all or part of it. */
export interface BlobHandle extends BlobInfo {
  /** Bytes [offset, end) — `end` exclusive; the caller destroys the stream if it gives up. */
  open(range?: { readonly offset: number; readonly end: number }): Promise<Readable>;
  /** Writes bytes [offset, end) into `destination` without ending it (the driver's fast path when it has one). */
  copyTo(destination: Writable, range: { readonly offset: number; readonly end: number }): Promise<void>;
}

export interface UploadStatus {
  readonly id: string;
  /** Bytes received so far: the next chunk starts at this offset. */
  readonly size: number;
}

/** An inclusive byte range from a Content-Range header. */
export interface ChunkRange {
  readonly start: number;
  readonly end: number;
}

export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly body: Buffer;
}

export interface PutManifestResult {
  readonly digest: Digest;
  readonly mediaType: string;
  /** The `subject` the manifest refers to (answered as `OCI-Subject`). */
  readonly subject?: Digest;
}

export interface ReferrerDescriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface PageRequest {
  /** At most this many entries; undefined: all of them. */
  readonly limit?: number;
  /** Only entries sorting after this one. */
  readonly last?: string;
}

export interface Page {
  readonly entries: readonly string[];
  /** More entries follow the last one returned. */
  readonly more: boolean;
}

const MIB = 1024 * 1024;
const DEFAULT_MAX_MANIFEST_BYTES = 4 * MIB;
const DEFAULT_MANIFEST_CACHE_BYTES = 64 * MIB;
/** Larger manifests are read from storage each time: they are rare and would crowd the cache. */
const MAX_CACHED_MANIFEST_BYTES = MIB;
/** Chunks from a socket are small (16–64 KiB); the driver gets them gathered into writes this big. */
const WRITE_BATCH_BYTES = MIB;
/** Upload hashes kept in memory; beyond, the oldest sessions are re-hashed at completion instead. */
const MAX_TRACKED_UPLOADS = 10_000;
/**
 * Driver calls in flight for one request that fans out (tags of a deleted manifest, referrers,
 * an index's children, the catalog walk): enough to hide latency, few enough for any store.
 */
const FAN_OUT = 16;

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest]);
const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);
/** Content-Types that say nothing about the manifest: the body's own type decides. */
const UNINFORMATIVE_CONTENT_TYPES: ReadonlySet<string> = new Set([
  '',
  'application/json',
  'application/octet-stream',
  'text/plain',
]);

interface ManifestEntry extends StoredManifest {
  /** Parsed on first need (referrers, delete); the body never changes, so neither does this. */
  references?: ManifestReferences;
}

interface TrackedHash {
  readonly hash: Hash;
  /** Bytes the hash has seen; valid only while it equals the session's size. */
  readonly offset: number;
}

export class Registry {
  readonly driver: StorageDriver;
  readonly deleteEnabled: boolean;
  readonly automaticCrossMount: boolean;
  readonly maxManifestBytes: number;
  private readonly manifestCache: ManifestCache;
  private readonly uploadHashes = new Map<string, TrackedHash>();
  private readonly sessionLocks = new Map<string, Promise<unknown>>();

  constructor(options: RegistryOptions) {
    this.driver = options.driver;
    this.deleteEnabled = options.deleteEnabled ?? true;
    this.automaticCrossMount = options.automaticCrossMount ?? false;
    this.maxManifestBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.manifestCache = new ManifestCache(options.manifestCacheBytes ?? DEFAULT_MANIFEST_CACHE_BYTES);
  }

  // ---------------------------------------------------------------------------------------------
  // Blobs

  /**
   * A blob linked in `name` (as a layer, or as a manifest revision: distribution serves manifests
   * on the blob endpoint too). The layer link is touched *before* the blob is looked up, as GC's
   * protocol asks (gc.ts): a concurrent collection either sees the touch or we see the blob gone.
   */
  async getBlob(name: string, digest: Digest): Promise<BlobHandle> {
    const layerLink = StoragePaths.layerLink(name, digest);
    const dataPath = StoragePaths.blobData(digest);
    await this.driver.touch(layerLink);
    const [link, data] = await Promise.all([this.driver.stat(layerLink), this.driver.stat(dataPath)]);
    if (data === undefined) throw blobUnknown(digest);
    if (link === undefined) {
      const revision = await this.driver.stat(StoragePaths.manifestRevisionLink(name, digest));
      if (revision === undefined) throw blobUnknown(digest);
    }
    const driver = this.driver;
    const open = async (range?: { readonly offset: number; readonly end: number }): Promise<Readable> => {
      const stream = await driver.reader(dataPath, range);
      if (stream === undefined) throw blobUnknown(digest);
      return stream;
    };
    return {
      digest,
      size: data.size,
      open,
      async copyTo(destination, range) {
        if (driver.copyTo)
          return driver.copyTo(dataPath, { offset: range.offset, end: range.end }, destination);
        await pipeline(await open(range), destination, { end: false });
      },
    };
  }

  /** Unlinks a blob from `name`; the bytes stay until GC finds nothing else uses them. */
  async deleteBlob(name: string, digest: Digest): Promise<void> {
    this.assertDeleteEnabled();
    const link = StoragePaths.layerLink(name, digest);
    if ((await this.driver.stat(link)) === undefined) throw blobUnknown(digest);
    await this.driver.delete(parentOf(link));
  }

  /**
   * Links an existing blob into `name`: from `from` when the blob is linked there, or from
   * anywhere with automatic cross-mounting. Undefined when it cannot (the caller starts an upload).
   */
  async mountBlob(name: string, digest: Digest, from?: string): Promise<BlobInfo | undefined> {
    if (from !== undefined) {
      if (!isRepositoryName(from)) return undefined;
      if ((await this.driver.stat(StoragePaths.layerLink(from, digest))) === undefined) return undefined;
    } else if (!this.automaticCrossMount) {
      return undefined;
    }
    // The new link is one a collection under way has not seen: touch the data before checking it.
    const dataPath = StoragePaths.blobData(digest);
    await this.driver.touch(dataPath);
    const data = await this.driver.stat(dataPath);
    if (data === undefined) return undefined;
    await this.driver.putContent(StoragePaths.layerLink(name, digest), Buffer.from(digest));
    return { digest, size: data.size };
  }

  // ---------------------------------------------------------------------------------------------
  // Upload sessions

  async startUpload(name: string): Promise<UploadStatus> {
    const id = randomUUID();
    const state = { startedAt: new Date().toISOString() };
    // The data object appears with the first chunk; until then the session holds 0 bytes.
    await this.driver.putContent(StoragePaths.uploadState(name, id), Buffer.from(JSON.stringify(state)));
    this.trackHash(sessionKey(name, id), { hash: createHash('sha256'), offset: 0 });
    return { id, size: 0 };
  }

  async uploadStatus(name: string, id: string): Promise<UploadStatus> {
    return { id, size: await this.sessionSize(name, id) };
  }

  /**
   * Appends a chunk. With `range`, it must start exactly where the session stands (else
   * UploadRangeError, nothing written) and hold exactly its length (else SIZE_INVALID, nothing
   * kept). Without, the body is appended whatever its length (a streamed upload).
   */
  async appendUpload(
    name: string,
    id: string,
    body: AsyncIterable<Uint8Array>,
    range?: ChunkRange,
  ): Promise<UploadStatus> {
    return this.withSessionLock(name, id, async () => {
      const size = await this.sessionSize(name, id);
      checkChunkStart(size, range);
      const written = await this.writeChunk(name, id, size, body, range);
      return { id, size: size + written };
    });
  }

  /**
   * Closes a session: appends the optional final chunk, verifies the content against every digest
   * given, then moves it into the blob store and links it into `name`. Content that does not match
   * is refused (DIGEST_INVALID) and the session discarded; it never becomes a blob.
   */
  async completeUpload(
    name: string,
    id: string,
    digests: readonly Digest[],
    body?: AsyncIterable<Uint8Array>,
    range?: ChunkRange,
  ): Promise<BlobInfo> {
    const digest = digests[0];
    if (digest === undefined) throw digestInvalid('the digest parameter is required');
    return this.withSessionLock(name, id, async () => {
      let size = await this.sessionSize(name, id);
      if (body !== undefined) {
        checkChunkStart(size, range);
        size += await this.writeChunk(name, id, size, body, range);
      }
      const computed = await this.sessionDigests(name, id, size, new Set(digests.map(digestAlgorithm)));
      const wrong = digests.find((expected) => computed.get(digestAlgorithm(expected)) !== expected);
      if (wrong !== undefined) {
        await this.discardSession(name, id);
        throw digestInvalid(`uploaded content does not match digest ${wrong}`);
      }
      // Link first and touch the data, then look: if the blob is already stored, a concurrent
      // collection either sees the fresh link and data or has removed the blob before we look.
      const dataPath = StoragePaths.blobData(digest);
      await this.driver.putContent(StoragePaths.layerLink(name, digest), Buffer.from(digest));
      await this.driver.touch(dataPath);
      if ((await this.driver.stat(dataPath)) === undefined) {
        if (size === 0) await this.driver.putContent(dataPath, new Uint8Array(0));
        else await this.driver.move(StoragePaths.uploadData(name, id), dataPath);
      }
      await this.discardSession(name, id);
      return { digest, size };
    });
  }

  /** A whole blob in one request (`POST …/uploads/?digest=`): a session opened and closed at once. */
  async uploadBlob(name: string, digest: Digest, body: AsyncIterable<Uint8Array>): Promise<BlobInfo> {
    const session = await this.startUpload(name);
    try {
      return await this.completeUpload(name, session.id, [digest], body);
    } catch (err) {
      await this.discardSession(name, session.id).catch(() => undefined);
      throw err;
    }
  }

  async cancelUpload(name: string, id: string): Promise<void> {
    await this.withSessionLock(name, id, async () => {
      await this.sessionSize(name, id);
      await this.discardSession(name, id);
    });
  }

  private async sessionSize(name: string, id: string): Promise<number> {
    const [state, data] = await Promise.all([
      this.driver.stat(StoragePaths.uploadState(name, id)),
      this.driver.stat(StoragePaths.uploadData(name, id)),
    ]);
    if (state === undefined) throw uploadUnknown();
    return data?.size ?? 0;
  }

  private async writeChunk(
    name: string,
    id: string,
    offset: number,
    body: AsyncIterable<Uint8Array>,
    range: ChunkRange | undefined,
  ): Promise<number> {
    const key = sessionKey(name, id);
    const expected = range === undefined ? undefined : range.end - range.start + 1;
    const tracked = this.uploadHashes.get(key);
    // The running hash continues only from exactly where it stopped; otherwise completion re-reads.
    const hash = tracked !== undefined && tracked.offset === offset ? tracked.hash : undefined;
    this.uploadHashes.delete(key);
    const writer = await this.driver.writer(StoragePaths.uploadData(name, id), { append: true });
    if (writer.size !== offset) {
      // Another process appended since we looked: refuse this chunk rather than guess.
      await writer.cancel();
      throw new UploadRangeError(writer.size, 'the upload changed while this chunk was sent');
    }
    let written = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    // One write in flight while the next batch arrives: the socket keeps being read during disk
    // writes instead of stalling on each.
    let inFlight: Promise<void> = Promise.resolve();
    const flush = async (): Promise<void> => {
      if (batchBytes === 0) return;
      const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      await inFlight;
      inFlight = writer.write(data);
      // Marked handled here; the failure still surfaces at the next await of `inFlight`.
      inFlight.catch(() => undefined);
    };
    try {
      for await (const piece of body) {
        if (piece.length === 0) continue;
        const chunk = Buffer.isBuffer(piece)
          ? piece
          : Buffer.from(piece.buffer, piece.byteOffset, piece.length);
        written += chunk.length;
        if (expected !== undefined && written > expected) throw chunkSizeMismatch(expected);
        hash?.update(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH_BYTES) await flush();
      }
      if (expected !== undefined && written !== expected) throw chunkSizeMismatch(expected);
      await flush();
      await inFlight;
      await writer.commit();
    } catch (err) {
      await inFlight.catch(() => undefined);
      await writer.cancel().catch(() => undefined);
      throw err;
    }
    if (hash !== undefined) this.trackHash(key, { hash, offset: offset + written });
    return written;
  }

  /** The digest of the session's data for each algorithm asked, from the running hash or a re-read. */
  private async sessionDigests(
    name: string,
    id: string,
    size: number,
    algorithms: ReadonlySet<DigestAlgorithm>,
  ): Promise<Map<DigestAlgorithm, Digest>> {
    const result = new Map<DigestAlgorithm, Digest>();
    const key = sessionKey(name, id);
    const tracked = this.uploadHashes.get(key);
    if (tracked !== undefined && tracked.offset === size && algorithms.has('sha256')) {
      this.uploadHashes.delete(key);
      result.set('sha256', `sha256:${tracked.hash.digest('hex')}`);
    }
    const missing = [...algorithms].filter((algorithm) => !result.has(algorithm));
    if (missing.length === 0) return result;
    // The hash state cannot be persisted, so after a restart (or on another replica) the data is
    // read back once.
    const hashes = missing.map((algorithm) => [algorithm, createHash(algorithm)] as const);
    const stream = await this.driver.reader(StoragePaths.uploadData(name, id));
    if (stream !== undefined) {
      for await (const chunk of stream as AsyncIterable<Buffer>)
        for (const [, hash] of hashes) hash.update(chunk);
    }
    for (const [algorithm, hash] of hashes) result.set(algorithm, `${algorithm}:${hash.digest('hex')}`);
    return result;
  }

  private async discardSession(name: string, id: string): Promise<void> {
    this.uploadHashes.delete(sessionKey(name, id));
    await this.driver.delete(StoragePaths.upload(name, id));
  }

  private trackHash(key: string, tracked: TrackedHash): void {
    this.uploadHashes.set(key, tracked);
    if (this.uploadHashes.size > MAX_TRACKED_UPLOADS) {
      const oldest = this.uploadHashes.keys().next().value;
      if (oldest !== undefined) this.uploadHashes.delete(oldest);
    }
  }

  /** One operation at a time per session in this process (concurrent PATCHes must not interleave). */
  private async withSessionLock<T>(name: string, id: string, operation: () => Promise<T>): Promise<T> {
    const key = sessionKey(name, id);
    const previous = this.sessionLocks.get(key) ?? Promise.resolve();
    const current = previous.then(operation, operation);
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    this.sessionLocks.set(key, settled);
    try {
      return await current;
    } finally {
      if (this.sessionLocks.get(key) === settled) this.sessionLocks.delete(key);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Manifests

  /**
   * Stores a manifest under a tag or its digest. The body is kept byte for byte. Every blob and
   * child manifest it references must already be in `name` (MANIFEST_BLOB_UNKNOWN); its `subject`
   * need not exist (the spec allows referrers to arrive first).
   */
  async putManifest(
    name: string,
    reference: string,
    body: Buffer,
    contentType?: string,
  ): Promise<PutManifestResult> {
    const target = classifyReference(reference);
    if (target.kind === 'invalid') {
      if (target.problem === 'tag') throw new RegistryError('TAG_INVALID', 400, 'invalid tag', { reference });
      throw digestInvalid(
        target.problem === 'unsupported-digest'
          ? 'unsupported digest algorithm (sha256 and sha512 are)'
          : 'invalid digest in the manifest reference',
      );
    }
    if (body.length > this.maxManifestBytes) {
      throw manifestInvalid(`larger than the ${this.maxManifestBytes} bytes this registry accepts`, 413);
    }
    const digest = digestOf(body, target.kind === 'digest' ? digestAlgorithm(target.digest) : 'sha256');
    if (target.kind === 'digest' && digest !== target.digest) {
      throw digestInvalid(`the manifest's digest is ${digest}, not ${target.digest}`);
    }
    const { mediaType, references, foreignLayers } = validateManifest(body, contentType);
    await this.verifyReferences(name, references, foreignLayers);

    const dataPath = StoragePaths.blobData(digest);
    await this.driver.touch(dataPath);
    if ((await this.driver.stat(dataPath)) === undefined) await this.driver.putContent(dataPath, body);
    const digestText = Buffer.from(digest);
    await this.driver.putContent(StoragePaths.manifestRevisionLink(name, digest), digestText);
    if (references.subject !== undefined) {
      await this.driver.putContent(StoragePaths.referrerLink(name, references.subject, digest), digestText);
    }
    if (target.kind === 'tag')
      await this.driver.putContent(StoragePaths.tagLink(name, target.tag), digestText);
    this.manifestCache.set({ digest, mediaType, body, references });
    return {
      digest,
      mediaType,
      ...(references.subject !== undefined ? { subject: references.subject } : {}),
    };
  }

  async getManifest(name: string, reference: string): Promise<StoredManifest> {
    const target = classifyReference(reference);
    let digest: Digest;
    if (target.kind === 'tag') {
      const linked = await this.readLink(StoragePaths.tagLink(name, target.tag));
      if (linked === undefined) throw manifestUnknown(reference);
      digest = linked;
    } else if (target.kind === 'digest') {
      digest = target.digest;
      if ((await this.driver.stat(StoragePaths.manifestRevisionLink(name, digest))) === undefined) {
        throw manifestUnknown(reference);
      }
    } else {
      throw manifestUnknown(reference);
    }
    return this.loadManifest(digest, reference);
  }

  /**
   * By digest: the manifest leaves the repository with every tag pointing at it and its referrer
   * record. By tag: only the tag goes.
   */
  async deleteManifest(name: string, reference: string): Promise<void> {
    this.assertDeleteEnabled();
    const target = classifyReference(reference);
    if (target.kind === 'invalid') throw manifestUnknown(reference);
    if (target.kind === 'tag') {
      const tagLink = StoragePaths.tagLink(name, target.tag);
      if ((await this.driver.stat(tagLink)) === undefined) throw manifestUnknown(reference);
      await this.driver.delete(StoragePaths.tag(name, target.tag));
      return;
    }
    const digest = target.digest;
    const revisionLink = StoragePaths.manifestRevisionLink(name, digest);
    if ((await this.driver.stat(revisionLink)) === undefined) throw manifestUnknown(reference);
    const tags = await this.listTagNames(name);
    const pointing = await mapLimited(tags, FAN_OUT, async (tag) =>
      (await this.readLink(StoragePaths.tagLink(name, tag))) === digest ? tag : undefined,
    );
    // Tags first: a crash midway leaves the manifest reachable by digest, and a retry finishes.
    for (const tag of pointing) if (tag !== undefined) await this.driver.delete(StoragePaths.tag(name, tag));
    const subject = await this.loadManifest(digest, reference)
      .then((entry) => this.referencesOf(entry).subject)
      .catch(() => undefined);
    if (subject !== undefined) {
      await this.driver.delete(parentOf(StoragePaths.referrerLink(name, subject, digest)));
    }
    await this.driver.delete(parentOf(revisionLink));
  }

  /** Tags in ASCII order (Go's sort.Strings order, which the spec allows). */
  async listTags(name: string, page: PageRequest = {}): Promise<Page> {
    const tags = await this.listTagNames(name);
    if (tags.length === 0 && (await this.driver.stat(StoragePaths.repository(name))) === undefined) {
      throw nameUnknown(name);
    }
    return paginate(tags, page);
  }

  /**
   * Manifests in `name` whose `subject` is `digest`, as descriptors for the referrers index;
   * only those of `artifactType` when given. Empty (never an error) when there are none.
   */
  async referrers(name: string, digest: Digest, artifactType?: string): Promise<ReferrerDescriptor[]> {
    const root = StoragePaths.referrers(name, digest);
    const referrerDigests: Digest[] = [];
    for (const algorithm of await this.driver.list(root)) {
      for (const hex of await this.driver.list(`${root}/${algorithm}`)) {
        const candidate = `${algorithm}:${hex}`;
        if (isDigest(candidate)) referrerDigests.push(candidate);
      }
    }
    const descriptors = await mapLimited(
      referrerDigests,
      FAN_OUT,
      async (referrer): Promise<ReferrerDescriptor | undefined> => {
        // A referrer deleted since its record was written is simply not listed.
        const revision = await this.driver.stat(StoragePaths.manifestRevisionLink(name, referrer));
        if (revision === undefined) return undefined;
        const entry = await this.loadManifest(referrer, referrer).catch((err: unknown) => {
          if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') return undefined;
          throw err;
        });
        if (entry === undefined) return undefined;
        const references = this.referencesOf(entry);
        const annotations = references.annotations;
        return {
          mediaType: entry.mediaType,
          digest: entry.digest,
          size: entry.body.length,
          ...(references.artifactType !== undefined ? { artifactType: references.artifactType } : {}),
          ...(annotations !== undefined && Object.keys(annotations).length > 0 ? { annotations } : {}),
        };
      },
    );
    return descriptors.filter(
      (descriptor): descriptor is ReferrerDescriptor =>
        descriptor !== undefined && (artifactType === undefined || descriptor.artifactType === artifactType),
    );
  }

  /** Repository names in ASCII order, from a walk of the storage tree. */
  async catalog(page: PageRequest = {}): Promise<Page> {
    return paginate(await this.repositoryNames(), page);
  }

  private async verifyReferences(
    name: string,
    references: ManifestReferences,
    foreignLayers: ReadonlySet<string>,
  ): Promise<void> {
    const blobs = [...new Set(references.blobs)].filter((digest) => !foreignLayers.has(digest));
    const manifests = [...new Set(references.manifests)];
    const wanted: { digest: Digest; kind: 'blob' | 'manifest' }[] = [
      ...blobs.map((digest) => ({ digest, kind: 'blob' as const })),
      ...manifests.map((digest) => ({ digest, kind: 'manifest' as const })),
    ];
    // The manifest now uses each of them: its link is touched (restarting GC's grace period)
    // before it is checked, so a concurrent collection cannot remove it after the check.
    const present = await mapLimited(wanted, FAN_OUT, async ({ digest, kind }) => {
      if (kind === 'manifest') {
        const link = StoragePaths.manifestRevisionLink(name, digest);
        await this.driver.touch(link);
        return (await this.driver.stat(link)) !== undefined;
      }
      const link = StoragePaths.layerLink(name, digest);
      await this.driver.touch(link);
      const [linked, data] = await Promise.all([
        this.driver.stat(link),
        this.driver.stat(StoragePaths.blobData(digest)),
      ]);
      return linked !== undefined && data !== undefined;
    });
    const missing = wanted.filter((_, index) => !present[index]);
    const first = missing[0];
    if (first !== undefined) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        400,
        `manifest references a ${first.kind} unknown to this repository: ${first.digest}`,
        { digests: missing.map((entry) => entry.digest) },
      );
    }
  }

  private async loadManifest(digest: Digest, reference: string): Promise<ManifestEntry> {
    const cached = this.manifestCache.get(digest);
    if (cached !== undefined) return cached;
    const body = await this.driver.getContent(StoragePaths.blobData(digest));
    if (body === undefined) throw manifestUnknown(reference);
    // Stored content is verified once on its way into the cache, so corruption is never served.
    if (digestOf(body, digestAlgorithm(digest)) !== digest)
      throw new Error(`stored manifest ${digest} is corrupt`);
    const document = JSON.parse(body.toString('utf8')) as unknown;
    const mediaType = isObject(document) ? inferMediaType(document) : undefined;
    if (mediaType === undefined) throw new Error(`stored manifest ${digest} has no media type`);
    const entry: ManifestEntry = { digest, mediaType, body };
    this.manifestCache.set(entry);
    return entry;
  }

  private referencesOf(entry: ManifestEntry): ManifestReferences {
    entry.references ??= manifestReferences(JSON.parse(entry.body.toString('utf8')));
    return entry.references;
  }

  private async listTagNames(name: string): Promise<string[]> {
    const names = await this.driver.list(StoragePaths.tags(name));
    return names.filter(isTag).sort();
  }

  private async readLink(path: string): Promise<Digest | undefined> {
    const content = await this.driver.getContent(path);
    if (content === undefined) return undefined;
    const text = content.toString('utf8').trim();
    return isDigest(text) ? text : undefined;
  }

  private async repositoryNames(): Promise<string[]> {
    const found: string[] = [];
    let level: string[] = [''];
    while (level.length > 0) {
      const next: string[] = [];
      await mapLimited(level, FAN_OUT, async (relative) => {
        const prefix = relative === '' ? StoragePaths.repositoriesRoot : StoragePaths.repository(relative);
        const children = await this.driver.list(prefix);
        if (relative !== '' && children.some((child) => child === '_manifests' || child === '_layers')) {
          found.push(relative);
        }
        for (const child of children) {
          const candidate = relative === '' ? child : `${relative}/${child}`;
          // Every prefix of a valid name is a valid name, so this prunes nothing that matters.
          if (!child.startsWith('_') && isRepositoryName(candidate)) next.push(candidate);
        }
      });
      level = next;
    }
    return found.sort();
  }

  private assertDeleteEnabled(): void {
    if (!this.deleteEnabled) throw unsupported('deletion is disabled on this registry');
  }
}

/** Checks a manifest body and its Content-Type; returns what the registry needs to store it. */
function validateManifest(
  body: Buffer,
  contentType: string | undefined,
): { mediaType: string; references: ManifestReferences; foreignLayers: ReadonlySet<string> } {
  let document: unknown;
  try {
    document = JSON.parse(body.toString('utf8'));
  } catch {
    throw manifestInvalid('not valid JSON');
  }
  if (!isObject(document)) throw manifestInvalid('not a JSON object');
  const declared = contentType === undefined ? '' : contentType.split(';')[0]!.trim();
  if (document.schemaVersion === 1 || SCHEMA1_TYPES.has(declared)) {
    throw manifestInvalid('Docker schema 1 manifests are not supported');
  }
  const mediaType = inferMediaType(document);
  if (mediaType === undefined) {
    throw manifestInvalid('no mediaType field, and not shaped like an OCI image manifest or index');
  }
  if (!UNINFORMATIVE_CONTENT_TYPES.has(declared) && declared !== mediaType) {
    throw manifestInvalid(
      typeof document.mediaType === 'string' && document.mediaType !== ''
        ? `Content-Type ${declared} differs from the manifest's mediaType ${mediaType}`
        : `a manifest without a mediaType field is stored as ${mediaType}, not ${declared}`,
    );
  }
  if (MANIFEST_TYPES.has(mediaType) || INDEX_TYPES.has(mediaType)) {
    if (document.schemaVersion !== 2) throw manifestInvalid('schemaVersion must be 2');
    if (MANIFEST_TYPES.has(mediaType)) {
      if (!isObject(document.config)) throw manifestInvalid('config is required');
      if (!Array.isArray(document.layers)) throw manifestInvalid('layers must be an array');
    } else if (!Array.isArray(document.manifests)) {
      throw manifestInvalid('manifests must be an array');
    }
  }
  let references: ManifestReferences;
  try {
    references = manifestReferences(document);
  } catch (err) {
    throw manifestInvalid(err instanceof Error ? err.message : 'unreadable');
  }
  return { mediaType, references, foreignLayers: foreignLayerDigests(document) };
}

/**
 * The media type a manifest is stored and served as: its own `mediaType`, else the OCI type its
 * shape implies (OCI allows leaving the field out). A pure function of the body, so the type need
 * not be stored beside it and the PUT-time check guarantees GET answers what was pushed.
 */
function inferMediaType(document: Record<string, unknown>): string | undefined {
  if (typeof document.mediaType === 'string' && document.mediaType !== '') return document.mediaType;
  if (Array.isArray(document.manifests)) return MediaType.ociIndex;
  if (isObject(document.config)) return MediaType.ociManifest;
  return undefined;
}

/** Layers fetched from elsewhere (`urls`, Windows foreign layers): distribution does not require them. */
function foreignLayerDigests(document: Record<string, unknown>): Set<string> {
  const foreign = new Set<string>();
  if (!Array.isArray(document.layers)) return foreign;
  for (const layer of document.layers as unknown[]) {
    if (
      isObject(layer) &&
      Array.isArray(layer.urls) &&
      layer.urls.length > 0 &&
      typeof layer.digest === 'string'
    ) {
      foreign.add(layer.digest);
    }
  }
  return foreign;
}

function checkChunkStart(size: number, range: ChunkRange | undefined): void {
  if (range !== undefined && range.start !== size) {
    throw new UploadRangeError(size, `chunk starts at ${range.start}, the upload holds ${size} bytes`);
  }
}

function chunkSizeMismatch(expected: number): RegistryError {
  return new RegistryError(
    'SIZE_INVALID',
    400,
    `the chunk is not the ${expected} bytes its Content-Range says`,
  );
}

function paginate(sorted: readonly string[], page: PageRequest): Page {
  let start = 0;
  if (page.last !== undefined) {
    const last = page.last;
    start = sorted.findIndex((entry) => entry > last);
    if (start < 0) start = sorted.length;
  }
  const end = page.limit === undefined ? sorted.length : Math.min(sorted.length, start + page.limit);
  // `n=0` asks for nothing, and the spec forbids a next link then.
  return { entries: sorted.slice(start, end), more: page.limit !== 0 && end < sorted.length };
}

function sessionKey(name: string, id: string): string {
  return `${name}/${id}`;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Least recently used manifests go first; entries are immutable (keyed by digest). */
class ManifestCache {
  private readonly entries = new Map<Digest, ManifestEntry>();
  private bytes = 0;

  constructor(private readonly capacity: number) {}

  get(digest: Digest): ManifestEntry | undefined {
    const entry = this.entries.get(digest);
    if (entry !== undefined) {
      this.entries.delete(digest);
      this.entries.set(digest, entry);
    }
    return entry;
  }

  set(entry: ManifestEntry): void {
    const size = entry.body.length;
    if (size > MAX_CACHED_MANIFEST_BYTES || size > this.capacity || this.entries.has(entry.digest)) return;
    this.entries.set(entry.digest, entry);
    this.bytes += size;
    for (const [digest, oldest] of this.entries) {
      if (this.bytes <= this.capacity) break;
      this.entries.delete(digest);
      this.bytes -= oldest.body.length;
    }
  }
}
