import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { digestOf, isDigest, type Digest } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { MAX_MANIFEST_BYTES } from '../../oci/validate.js';
import { StrataError } from '../../errors.js';
import { repositoryScope } from './auth.js';
import { header, readBounded, type RegistryClient } from './transport.js';

/** Every manifest kind strata can use, so the registry never has to down-convert. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(', ');

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** Counts bytes as they pass, for progress reports. */
export function counting(onBytes: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

/** Drops the first `count` bytes: for servers that answer a Range request with the whole blob. */
async function* skipping(body: AsyncIterable<unknown>, count: number): AsyncGenerator<Uint8Array> {
  let remaining = count;
  for await (const chunk of body) {
    const bytes = chunk as Uint8Array;
    if (remaining >= bytes.length) {
      remaining -= bytes.length;
      continue;
    }
    yield remaining > 0 ? bytes.subarray(remaining) : bytes;
    remaining = 0;
  }
}

/** The distribution API for one repository of one registry. */
export class RemoteRepository {
  readonly pullScope: string;
  readonly pushScope: string;

  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
  ) {
    this.pullScope = repositoryScope(repository, ['pull']);
    this.pushScope = repositoryScope(repository, ['pull', 'push']);
  }

  /** `registry/repository`, for messages. */
  get name(): string {
    return `${this.client.registry}/${this.repository}`;
  }

  private path(suffix: string): string {
    return `/v2/${this.repository}/${suffix}`;
  }

  /**
   * A manifest or index by tag or digest. By digest, the bytes must hash to it; by tag, they must
   * match the digest the registry states (when it states one we can check), so a tampering proxy
   * or a truncated body is caught before anything is stored.
   */
  async getManifest(tagOrDigest: string): Promise<FetchedManifest> {
    const what = `manifest ${this.name}${isDigest(tagOrDigest) ? '@' : ':'}${tagOrDigest}`;
    const response = await this.client.request({
      method: 'GET',
      target: this.path(`manifests/${tagOrDigest}`),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [this.pullScope],
      what,
      expect: [200],
    });
    const bytes = await readBounded(response.body, MAX_MANIFEST_BYTES, what);
    const stated = header(response, 'docker-content-digest');
    const expected = isDigest(tagOrDigest)
      ? tagOrDigest
      : stated !== undefined && isDigest(stated)
        ? stated
        : undefined;
    const algorithm = expected?.startsWith('sha512:') ? 'sha512' : 'sha256';
    const digest = digestOf(bytes, algorithm);
    if (expected !== undefined && digest !== expected) {
      throw new StrataError(
        'DIGEST_MISMATCH',
        `${what}: the registry sent content with digest ${digest}, expected ${expected}`,
      );
    }
    const contentType = (header(response, 'content-type') ?? '').split(';', 1)[0]?.trim() ?? '';
    return { bytes, mediaType: contentType, digest };
  }

  /** Whether the registry has a blob in this repository (HEAD). */
  async hasBlob(digest: Digest): Promise<boolean> {
    const response = await this.client.request({
      method: 'HEAD',
      target: this.path(`blobs/${digest}`),
      scopes: [this.pullScope],
      what: `blob ${digest} in ${this.name}`,
      expect: [200, 404],
    });
    await response.body.dump();
    return response.status === 200;
  }

  /**
   * The blob's bytes from `offset` on. A registry that ignores Range answers 200 with the whole
   * blob; the bytes already held are then skipped here rather than downloaded into the file twice.
   */
  async openBlob(digest: Digest, offset: number): Promise<AsyncIterable<unknown>> {
    const response = await this.client.request({
      method: 'GET',
      target: this.path(`blobs/${digest}`),
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      scopes: [this.pullScope],
      what: `blob ${digest} from ${this.name}`,
      expect: offset > 0 ? [200, 206] : [200],
    });
    if (offset > 0 && response.status === 200) return skipping(response.body, offset);
    if (response.status === 206) {
      const range = /^bytes (\d+)-/.exec(header(response, 'content-range') ?? '');
      if (range === null || Number(range[1]) !== offset) {
        response.body.destroy();
        throw new StrataError(
          'INTERNAL',
          `blob ${digest} from ${this.name}: the registry answered a range request for offset ${offset} with ${header(response, 'content-range') ?? 'no Content-Range'}`,
          { userFacing: true },
        );
      }
    }
    return response.body;
  }

  /** Opens an upload session; returns its location. */
  async startUpload(): Promise<URL> {
    const started = await this.post('', [this.pushScope], `blob upload to ${this.name}`);
    if (started === 'mounted') {
      throw new StrataError(
        'INTERNAL',
        `blob upload to ${this.name}: the registry answered 201 to a plain upload request`,
        { userFacing: true },
      );
    }
    return started;
  }

  /**
   * Cross-repository mount: the registry links a blob it holds in `from` into this repository
   * without a byte sent. A registry that cannot (no such blob, no access) opens an ordinary
   * upload session instead, whose location is returned.
   */
  mountBlob(digest: Digest, from: string): Promise<'mounted' | URL> {
    return this.post(
      `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      [this.pushScope, repositoryScope(from, ['pull'])],
      `mount of ${digest} from ${from} into ${this.name}`,
    );
  }

  private async post(query: string, scopes: string[], what: string): Promise<'mounted' | URL> {
    const response = await this.client.request({
      method: 'POST',
      target: this.path(`blobs/uploads/${query}`),
      headers: { 'content-length': '0' },
      scopes,
      what,
      expect: [201, 202],
    });
    await response.body.dump();
    if (response.status === 201) return 'mounted';
    return this.location(response.headers, response.url, what);
  }

  private location(headers: Record<string, string | string[] | undefined>, base: URL, what: string): URL {
    const location = header({ headers }, 'location');
    if (location === undefined || location === '') {
      throw new StrataError('INTERNAL', `${what}: the registry sent no upload Location`, {
        userFacing: true,
      });
    }
    return new URL(location, base);
  }

  /** Monolithic upload: the whole blob in one PUT that also closes the session. */
  async putBlob(location: URL, digest: Digest, size: number, body: () => Readable | Buffer): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const response = await this.client.request({
      method: 'PUT',
      target: url.href,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body,
      scopes: [this.pushScope],
      what: `upload of ${digest} to ${this.name}`,
      expect: [201, 204],
      retry: false,
    });
    await response.body.dump();
  }

  /**
   * Chunked upload: PATCH each `chunkSize` piece with its Content-Range, following the Location
   * the registry returns each time, then a PUT without body closes the session.
   */
  async putBlobChunked(
    location: URL,
    digest: Digest,
    size: number,
    chunkSize: number,
    readRange: (start: number, end: number) => Readable,
  ): Promise<void> {
    let at = location;
    for (let start = 0; start < size; start += chunkSize) {
      const end = Math.min(start + chunkSize, size) - 1;
      const response = await this.client.request({
        method: 'PATCH',
        target: at.href,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(end - start + 1),
          'content-range': `${start}-${end}`,
        },
        body: () => readRange(start, end),
        scopes: [this.pushScope],
        what: `upload of ${digest} to ${this.name} (bytes ${start}-${end})`,
        expect: [202],
        retry: false,
      });
      await response.body.dump();
      at = this.location(response.headers, response.url, `upload of ${digest} to ${this.name}`);
    }
    await this.closeUpload(at, digest);
  }

  /**
   * Streamed upload: sends `body` in one PATCH of unknown length (chunked transfer encoding),
   * the way docker pushes, so a blob can go out while it is being made; returns the location to
   * close the session at (closeUpload) once its digest is known. The body cannot be sent twice:
   * anything that would resend it (an auth round) fails the upload instead.
   */
  async patchStream(location: URL, body: Readable, what: string): Promise<URL> {
    let sent = false;
    const response = await this.client.request({
      method: 'PATCH',
      target: location.href,
      headers: { 'content-type': 'application/octet-stream' },
      body: () => {
        if (sent) throw new StrataError('INTERNAL', `${what}: the stream cannot be sent twice`);
        sent = true;
        return body;
      },
      scopes: [this.pushScope],
      what,
      expect: [202],
      retry: false,
    });
    await response.body.dump();
    return this.location(response.headers, response.url, what);
  }

  /** Ends an upload session with the blob's digest (a PUT without body), as the spec asks. */
  async closeUpload(location: URL, digest: Digest): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const response = await this.client.request({
      method: 'PUT',
      target: url.href,
      headers: { 'content-length': '0' },
      scopes: [this.pushScope],
      what: `upload of ${digest} to ${this.name}`,
      expect: [201, 204],
      retry: false,
    });
    await response.body.dump();
  }

  /** Pushes a manifest or index under a tag or its digest; returns the digest the registry states. */
  async putManifest(tagOrDigest: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const what = `manifest ${this.name}${isDigest(tagOrDigest) ? '@' : ':'}${tagOrDigest}`;
    const response = await this.client.request({
      method: 'PUT',
      target: this.path(`manifests/${tagOrDigest}`),
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
      scopes: [this.pushScope],
      what,
      expect: [201, 200, 202],
    });
    await response.body.dump();
    const digest = digestOf(bytes);
    const stated = header(response, 'docker-content-digest');
    if (stated !== undefined && stated.startsWith('sha256:') && stated !== digest) {
      throw new StrataError(
        'DIGEST_MISMATCH',
        `${what}: the registry stored it as ${stated}, expected ${digest}`,
      );
    }
    return digest;
  }

  /** Every tag, following the registry's `Link: <…>; rel="next"` pagination. */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let target: string | undefined = this.path('tags/list?n=1000');
    for (let page = 0; target !== undefined && page < 1000; page++) {
      const response = await this.client.request({
        method: 'GET',
        target,
        scopes: [this.pullScope],
        what: `tags of ${this.name}`,
        expect: [200],
      });
      const body = await readBounded(response.body, 16 * 1024 * 1024, `tags of ${this.name}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `tags of ${this.name}: the registry answered with invalid JSON`,
        );
      }
      const list =
        typeof parsed === 'object' && parsed !== null && 'tags' in parsed ? parsed.tags : undefined;
      if (Array.isArray(list)) for (const tag of list) if (typeof tag === 'string') tags.push(tag);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(response, 'link') ?? '');
      target = link?.[1] !== undefined ? new URL(link[1], response.url).href : undefined;
    }
    return [...new Set(tags)];
  }
}
