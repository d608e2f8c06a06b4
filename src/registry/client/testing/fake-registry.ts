/**
 * A small in-memory registry for fault tests: just enough of the distribution API (manifests,
 * blobs with Range, uploads, tags) on 127.0.0.1, with hooks that let a test break any request.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Store } from '../../../store/index.js';
import { withTempDir } from '../../../store/testing/helpers.js';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
}

/** Returns true when it answered the request itself (the normal handling is then skipped). */
export type Fault = (req: IncomingMessage, res: ServerResponse, path: string) => boolean | Promise<boolean>;

export function sha256(data: Buffer | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  readonly requests: RecordedRequest[] = [];
  readonly faults: Fault[] = [];
  private readonly uploads = new Map<string, Buffer[]>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  host = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  addBlob(data: Buffer | string): { digest: `sha256:${string}`; size: number } {
    const bytes = Buffer.from(data);
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { digest, size: bytes.length };
  }

  /** Stores a manifest under its digest and, when given, a tag; returns its descriptor. */
  addManifest(
    document: object,
    mediaType: string,
    tag?: string,
  ): { digest: `sha256:${string}`; size: number; mediaType: string } {
    const bytes = Buffer.from(JSON.stringify(document));
    const digest = sha256(bytes);
    this.manifests.set(digest, { bytes, mediaType });
    if (tag !== undefined) this.manifests.set(tag, { bytes, mediaType });
    return { digest, size: bytes.length, mediaType };
  }

  /** Requests whose path matches, for assertions. */
  matching(pattern: RegExp, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => pattern.test(r.path) && (method === undefined || r.method === method));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const path = url.pathname;
    this.requests.push({ method: req.method ?? 'GET', path: `${path}${url.search}`, headers: req.headers });
    for (const fault of this.faults) if (await fault(req, res, `${path}${url.search}`)) return;
    if (path === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const match = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.*)$/.exec(path);
    if (match === null) return error(res, 404, 'NAME_UNKNOWN', 'unknown path');
    const [, repository, kind, rest] = match as unknown as [string, string, string, string];
    if (kind === 'manifests') return this.manifest(req, res, rest);
    if (kind === 'tags') {
      const tags = [...this.manifests.keys()].filter((key) => !key.startsWith('sha256:'));
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ name: repository, tags }));
    }
    if (rest.startsWith('uploads/'))
      return this.upload(req, res, url, rest.slice('uploads/'.length), repository);
    return this.blob(req, res, rest);
  }

  private async manifest(req: IncomingMessage, res: ServerResponse, reference: string): Promise<void> {
    if (req.method === 'PUT') {
      const bytes = await readBody(req);
      const mediaType = req.headers['content-type'] ?? '';
      const digest = sha256(bytes);
      this.manifests.set(digest, { bytes, mediaType });
      this.manifests.set(reference, { bytes, mediaType });
      return void res.writeHead(201, { 'docker-content-digest': digest }).end();
    }
    const found = this.manifests.get(reference);
    if (found === undefined) return error(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    res.writeHead(200, {
      'content-type': found.mediaType,
      'content-length': found.bytes.length,
      'docker-content-digest': sha256(found.bytes),
    });
    res.end(req.method === 'HEAD' ? undefined : found.bytes);
  }

  private blob(req: IncomingMessage, res: ServerResponse, digest: string): void {
    const data = this.blobs.get(digest);
    if (data === undefined) return error(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range !== null) {
      const start = Number(range[1]);
      res.writeHead(206, {
        'content-length': data.length - start,
        'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
      });
      res.end(req.method === 'HEAD' ? undefined : data.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': data.length, 'docker-content-digest': digest });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  private async upload(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    id: string,
    repository: string,
  ): Promise<void> {
    if (req.method === 'POST') {
      const mount = url.searchParams.get('mount');
      if (mount !== null && url.searchParams.get('from') !== null && this.blobs.has(mount)) {
        return void res
          .writeHead(201, { location: `/v2/${repository}/blobs/${mount}`, 'docker-content-digest': mount })
          .end();
      }
      const session = randomBytes(8).toString('hex');
      this.uploads.set(session, []);
      return void res
        .writeHead(202, { location: `/v2/${repository}/blobs/uploads/${session}`, range: '0-0' })
        .end();
    }
    const parts = this.uploads.get(id);
    if (parts === undefined) return error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown');
    parts.push(await readBody(req));
    if (req.method === 'PATCH') {
      return void res.writeHead(202, { location: `/v2/${repository}/blobs/uploads/${id}` }).end();
    }
    const data = Buffer.concat(parts);
    const digest = url.searchParams.get('digest') ?? '';
    if (sha256(data) !== digest)
      return error(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
    this.uploads.delete(id);
    this.blobs.set(digest, data);
    res
      .writeHead(201, { 'docker-content-digest': digest, location: `/v2/${repository}/blobs/${digest}` })
      .end();
  }
}

export function error(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ errors: [{ code, message, detail: null }] }));
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Builds a one-layer image in the fake registry: random layer bytes (so digests differ per test),
 * a config for `platform`, and the manifest, optionally tagged.
 */
export function addImage(
  registry: FakeRegistry,
  options: {
    tag?: string;
    layerBytes?: number;
    platform?: { os: string; architecture: string; variant?: string };
  } = {},
): {
  manifest: ReturnType<FakeRegistry['addManifest']>;
  layer: { digest: `sha256:${string}`; size: number; data: Buffer };
  config: { digest: `sha256:${string}`; size: number };
} {
  const data = randomBytes(options.layerBytes ?? 200_000);
  const layer = { ...registry.addBlob(data), data };
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = registry.addBlob(
    JSON.stringify({
      ...platform,
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      config: { Cmd: ['sh'] },
    }),
  );
  const manifest = registry.addManifest(
    {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size },
      ],
    },
    'application/vnd.oci.image.manifest.v1+json',
    options.tag,
  );
  return { manifest, layer, config };
}

/** Runs `work` with a started fake registry and an empty store in a temporary directory. */
export async function withFakeRegistry(
  work: (registry: FakeRegistry, store: Store, dir: string) => Promise<void>,
): Promise<void> {
  const registry = await new FakeRegistry().start();
  try {
    await withTempDir(async (dir) => work(registry, await Store.open(join(dir, 'store')), dir));
  } finally {
    await registry.stop();
  }
}
