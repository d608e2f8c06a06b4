import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { digestOf, type Digest } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import type { AuthDecision, AuthRequest, Authorizer, Scope, TokenEndpoint } from './auth/types.js';
import {
  createRegistryHandler,
  parseContentRange,
  parseRange,
  type AccessLogEntry,
  type RegistryHandlerOptions,
} from './http.js';
import { Registry, type RegistryOptions } from './registry.js';
import type { StorageDriver } from './storage/driver.js';
import { MemoryDriver } from './storage/memory.js';

// -------------------------------------------------------------------------------------------------
// Harness: a real server on 127.0.0.1 and a client with full control over headers and bodies.

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  header(name: string): string | undefined;
  json<T = Record<string, unknown>>(): T;
}

interface CallOptions {
  readonly headers?: Record<string, string | number>;
  readonly body?: Buffer | string | Readable;
}

type HarnessOptions = Omit<RegistryHandlerOptions, 'registry'> & {
  readonly registry?: Registry;
  readonly registryOptions?: Partial<RegistryOptions>;
};

class Harness {
  readonly agent = new Agent({ keepAlive: true });
  port = 0;

  private constructor(
    readonly server: Server,
    readonly registry: Registry,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<Harness> {
    const registry =
      options.registry ?? new Registry({ driver: new MemoryDriver(), ...options.registryOptions });
    const server = createServer(createRegistryHandler({ ...options, registry }));
    const harness = new Harness(server, registry);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    harness.port = (server.address() as AddressInfo).port;
    return harness;
  }

  call(method: string, path: string, options: CallOptions = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: this.port, method, path, headers: options.headers, agent: this.agent },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (part: Buffer) => parts.push(part));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(parts);
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body,
              header: (name) => {
                const value = res.headers[name.toLowerCase()];
                return Array.isArray(value) ? value.join(', ') : value;
              },
              json: <T>() => JSON.parse(body.toString('utf8')) as T,
            });
          });
        },
      );
      req.on('error', reject);
      if (options.body instanceof Readable) options.body.pipe(req);
      else req.end(options.body);
    });
  }

  /** Sends raw bytes on a fresh connection and returns what came back before it closed. */
  raw(data: Buffer | string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.port, '127.0.0.1');
      const parts: Buffer[] = [];
      socket.on('data', (part) => parts.push(part));
      socket.on('error', (err: NodeJS.ErrnoException) =>
        err.code === 'ECONNRESET' ? undefined : reject(err),
      );
      socket.on('close', () => {
        const text = Buffer.concat(parts).toString('latin1');
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
      });
      // Not end(): node's server drops requests still in flight when the client half-closes.
      // `Connection: close` in the request makes the server close once it has answered.
      socket.write(data);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function blobOf(content: Buffer | string): { content: Buffer; digest: Digest; size: number } {
  const data = Buffer.from(content);
  return { content: data, digest: digestOf(data), size: data.length };
}

/** As the conformance suite marshals its documents: indented with tabs. */
function documentOf(value: unknown): { content: Buffer; digest: Digest; size: number } {
  return blobOf(JSON.stringify(value, null, '\t'));
}

function descriptorOf(mediaType: string, blob: { digest: Digest; size: number }): Record<string, unknown> {
  return { mediaType, digest: blob.digest, size: blob.size };
}

function errorCodes(reply: Reply): string[] {
  return reply.json<{ errors: { code: string }[] }>().errors.map((error) => error.code);
}

/** Every code the conformance suite accepts in an error body. */
const CONFORMANCE_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_UNVERIFIED',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
];

const ok2xx = (status: number): boolean => status >= 200 && status < 300;

async function pushBlob(
  harness: Harness,
  name: string,
  content: Buffer | string,
  headers: Record<string, string> = {},
): Promise<Digest> {
  const blob = blobOf(content);
  const reply = await harness.call('POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size, ...headers },
    body: blob.content,
  });
  assert.equal(reply.status, 201, reply.body.toString());
  return blob.digest;
}

async function pushImage(
  harness: Harness,
  name: string,
  tag: string,
  seed = 'x',
): Promise<{ content: Buffer; digest: Digest }> {
  const config = blobOf(`{"author":"${seed}"}`);
  const layer = blobOf(`layer ${seed}`);
  await pushBlob(harness, name, config.content);
  await pushBlob(harness, name, layer.content);
  const manifest = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorOf(MediaType.ociConfig, config),
    layers: [descriptorOf(MediaType.ociLayerGzip, layer)],
  });
  const reply = await harness.call('PUT', `/v2/${name}/manifests/${tag}`, {
    headers: { 'Content-Type': MediaType.ociManifest },
    body: manifest.content,
  });
  assert.equal(reply.status, 201, reply.body.toString());
  return manifest;
}

// -------------------------------------------------------------------------------------------------
// The OCI conformance suite v1.1.1, replayed check by check (all four workflows, run in the
// suite's order against one registry, OCI_AUTOMATIC_CROSSMOUNT=0). The test data has the shapes
// the suite builds in setup.go; the names say which check each test is, and the twelve checks
// CNCF distribution 2.8.2 fails are marked [distribution fails].

describe('OCI conformance v1.1.1 (replayed)', () => {
  const namespace = 'conformance/myrepo';
  const crossmount = 'conformance/other';
  const testTagName = 'tagtest0';
  const artifactTypeA = 'application/vnd.example.peanut.butter';
  const artifactTypeB = 'application/vnd.example.strawberry.jam';
  const artifactTypeIndex = 'application/vnd.example.food.stand';
  const annotationKey = 'org.example.conformance.test';
  let harness: Harness;

  const configs = Array.from({ length: 5 }, () =>
    documentOf({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [] },
      author: randomBytes(8).toString('hex'),
    }),
  );
  const layer = blobOf(gzipSync(Buffer.from('you bothered to find out what was in here\n')));
  const manifests = configs.map((config) =>
    documentOf({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      // Unknown descriptor fields must be kept and tolerated.
      config: {
        ...descriptorOf(MediaType.ociConfig, config),
        data: config.content.toString('base64'),
        future: 'aGk=',
      },
      layers: [descriptorOf(MediaType.ociLayerGzip, layer)],
    }),
  );
  // No mediaType field at all: the registry must infer an OCI image manifest.
  const emptyLayerManifest = documentOf({
    schemaVersion: 2,
    config: descriptorOf(MediaType.ociConfig, configs[1]!),
    layers: [],
  });
  const testBlobA = blobOf(randomBytes(42));
  const testBlobB = blobOf(randomBytes(42));
  const chunk1 = testBlobB.content.subarray(0, 22);
  const chunk2 = testBlobB.content.subarray(22);
  const chunk1Range = `0-${chunk1.length - 1}`;
  const chunk2Range = `${chunk1.length}-${testBlobB.size - 1}`;
  const emptyJSON = blobOf('{}');
  const emptyDescriptor = descriptorOf(MediaType.ociEmpty, emptyJSON);
  const refBlobA = blobOf('peanut butter on a bagel');
  const refBlobB = blobOf('strawberry jam on a croissant');
  const subject4 = descriptorOf(MediaType.ociManifest, manifests[4]!);
  const subject3 = descriptorOf(MediaType.ociManifest, manifests[3]!);
  const refsAConfig = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorOf(artifactTypeA, refBlobA),
    subject: subject4,
    layers: [emptyDescriptor],
    annotations: { [annotationKey]: 'test config a' },
  });
  const refsBConfig = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorOf(artifactTypeB, refBlobB),
    subject: subject4,
    layers: [emptyDescriptor],
    annotations: { [annotationKey]: 'test config b' },
  });
  const refsALayer = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: artifactTypeA,
    config: emptyDescriptor,
    subject: subject4,
    layers: [descriptorOf(artifactTypeA, refBlobA)],
    annotations: { [annotationKey]: 'test layer a' },
  });
  const refsBLayer = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: artifactTypeB,
    config: emptyDescriptor,
    subject: subject4,
    layers: [descriptorOf(artifactTypeB, refBlobB)],
    annotations: { [annotationKey]: 'test layer b' },
  });
  // Refers to manifests[3], which is never pushed to this repository before it is listed.
  const refsCLayer = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: artifactTypeB,
    config: emptyDescriptor,
    subject: subject3,
    layers: [descriptorOf(artifactTypeB, refBlobB)],
  });
  const refsIndex = documentOf({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    artifactType: artifactTypeIndex,
    manifests: [
      descriptorOf(MediaType.ociManifest, refsAConfig),
      descriptorOf(MediaType.ociManifest, refsALayer),
    ],
    subject: subject4,
    annotations: { [annotationKey]: 'test index' },
  });
  const annotationValues = new Map<string, string>([
    [refsAConfig.digest, 'test config a'],
    [refsBConfig.digest, 'test config b'],
    [refsALayer.digest, 'test layer a'],
    [refsBLayer.digest, 'test layer b'],
    [refsIndex.digest, 'test index'],
  ]);
  const dummyDigest = digestOf('hello world');
  const nonexistentManifest = '.INVALID_MANIFEST_NAME';

  const post = (name = namespace, headers: Record<string, string | number> = {}): Promise<Reply> =>
    harness.call('POST', `/v2/${name}/blobs/uploads/`, { headers });
  const putBlobAt = (
    location: string,
    blob: { content: Buffer; digest: Digest; size: number },
  ): Promise<Reply> =>
    harness.call('PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${blob.digest}`, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size },
      body: blob.content,
    });
  const uploadBlob = async (blob: { content: Buffer; digest: Digest; size: number }): Promise<Reply> => {
    const started = await post();
    return putBlobAt(started.header('location')!, blob);
  };
  const putManifest = (
    reference: string,
    content: Buffer,
    mediaType: string = MediaType.ociManifest,
  ): Promise<Reply> =>
    harness.call('PUT', `/v2/${namespace}/manifests/${reference}`, {
      headers: { 'Content-Type': mediaType },
      body: content,
    });
  const path = (kind: 'blobs' | 'manifests' | 'referrers', reference: string): string =>
    `/v2/${namespace}/${kind}/${reference}`;

  before(async () => {
    harness = await Harness.start();
  });
  after(() => harness.close());

  describe('Pull', () => {
    let tag = '';
    it('Setup: populate registry with test blob, layer and manifest; get the name of a tag', async () => {
      assert.ok(ok2xx((await uploadBlob(configs[0]!)).status));
      assert.ok(ok2xx((await uploadBlob(layer)).status));
      assert.ok(ok2xx((await putManifest(testTagName, manifests[0]!.content)).status));
      tag = (await harness.call('GET', `/v2/${namespace}/tags/list`)).json<{ tags: string[] }>().tags[0]!;
      assert.equal(tag, testTagName);
    });

    it('Pull blobs: HEAD/GET of nonexistent blob give 404; of existing blob 200 with its digest', async () => {
      assert.equal((await harness.call('HEAD', path('blobs', dummyDigest))).status, 404);
      const head = await harness.call('HEAD', path('blobs', configs[0]!.digest));
      assert.equal(head.status, 200);
      assert.equal(head.header('docker-content-digest'), configs[0]!.digest);
      assert.equal((await harness.call('GET', path('blobs', dummyDigest))).status, 404);
      const get = await harness.call('GET', path('blobs', configs[0]!.digest));
      assert.equal(get.status, 200);
      assert.deepEqual(get.body, configs[0]!.content);
    });

    it('Pull manifests: HEAD/GET by digest and tag give 200; nonexistent (an invalid tag) gives 404', async () => {
      const accept = { Accept: MediaType.ociManifest };
      assert.equal((await harness.call('HEAD', path('manifests', nonexistentManifest))).status, 404);
      for (const method of ['HEAD', 'GET']) {
        for (const reference of [manifests[0]!.digest, tag]) {
          const reply = await harness.call(method, path('manifests', reference), { headers: accept });
          assert.equal(reply.status, 200, `${method} ${reference}`);
          assert.equal(reply.header('docker-content-digest'), manifests[0]!.digest);
        }
      }
      assert.equal((await harness.call('GET', path('manifests', nonexistentManifest))).status, 404);
    });

    it('Error codes: 400 response body should contain OCI-conforming JSON message [distribution fails]', async () => {
      const reply = await putManifest('sha256:totallywrong', Buffer.from('blablabla'));
      assert.ok(reply.status === 400 || reply.status === 404, String(reply.status));
      assert.equal(reply.status, 400);
      const codes = errorCodes(reply);
      assert.ok(codes.length > 0 && CONFORMANCE_ERROR_CODES.includes(codes[0]!), codes.join());
      assert.ok(!reply.body.toString().includes('repositories/'));
    });

    it('Teardown: delete manifest, config blob and layer blob', async () => {
      for (const target of [
        path('manifests', manifests[0]!.digest),
        path('blobs', configs[0]!.digest),
        path('blobs', layer.digest),
      ]) {
        const reply = await harness.call('DELETE', target);
        assert.ok(ok2xx(reply.status) || reply.status === 405, `${target}: ${reply.status}`);
      }
    });
  });

  describe('Push', () => {
    let last: Reply | undefined;
    let previous: Reply | undefined;

    it('Setup: upload empty JSON blob and the reference blob', async () => {
      assert.equal(
        emptyJSON.digest,
        'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
      );
      assert.ok(ok2xx((await uploadBlob(emptyJSON)).status));
      assert.ok(ok2xx((await uploadBlob(refBlobA)).status));
    });

    it('Blob Upload Streamed: PATCH with blob in body yields 202; PUT with digest yields 201', async () => {
      const started = await post();
      assert.ok(started.header('location'));
      const patched = await harness.call('PATCH', started.header('location')!, {
        headers: { 'Content-Type': 'application/octet-stream' },
        body: testBlobA.content,
      });
      assert.equal(patched.status, 202);
      const closed = await harness.call('PUT', `${patched.header('location')}?digest=${testBlobA.digest}`, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': 0 },
      });
      assert.equal(closed.status, 201);
      assert.ok(closed.header('location'));
    });

    it('Blob Upload Monolithic: single POST, POST then PUT, layer upload; GETs agree', async () => {
      assert.equal((await harness.call('GET', path('blobs', dummyDigest))).status, 404);
      const single = await harness.call(
        'POST',
        `/v2/${namespace}/blobs/uploads/?digest=${configs[1]!.digest}`,
        {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': configs[1]!.size },
          body: configs[1]!.content,
        },
      );
      assert.ok(single.header('location'));
      assert.ok(single.status === 201 || single.status === 202);
      const fetched = await harness.call('GET', path('blobs', configs[1]!.digest));
      assert.equal(fetched.status, single.status === 202 ? 404 : 200);

      const session = await post();
      assert.equal(session.status, 202);
      const put = await putBlobAt(session.header('location')!, configs[1]!);
      assert.equal(put.status, 201);
      assert.ok(put.header('location'));
      assert.equal((await harness.call('GET', path('blobs', configs[1]!.digest))).status, 200);

      const layerPut = await uploadBlob(layer);
      assert.equal(layerPut.status, 201);
      assert.ok(layerPut.header('location'));
      assert.equal((await harness.call('GET', path('blobs', layer.digest))).status, 200);
    });

    it('Blob Upload Chunked: out-of-order blob upload should return 416 [distribution fails]', async () => {
      const started = await post(namespace, { 'Content-Length': 0 });
      assert.ok(started.header('location'));
      const reply = await harness.call('PATCH', started.header('location')!, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Length': chunk2.length,
          'Content-Range': chunk2Range,
        },
        body: chunk2,
      });
      assert.equal(reply.status, 416);
    });

    it('Blob Upload Chunked: PATCH request with first chunk should return 202', async () => {
      previous = await post(namespace, { 'Content-Length': 0 });
      assert.ok(previous.header('location'));
      last = await harness.call('PATCH', previous.header('location')!, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Length': chunk1.length,
          'Content-Range': chunk1Range,
        },
        body: chunk1,
      });
      assert.equal(last.status, 202);
      assert.equal(last.header('range'), chunk1Range);
    });

    it('Blob Upload Chunked: retry previous blob chunk should return 416 [distribution fails]', async () => {
      const reply = await harness.call('PATCH', previous!.header('location')!, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Length': chunk1.length,
          'Content-Range': chunk1Range,
        },
        body: chunk1,
      });
      assert.equal(reply.status, 416);
    });

    it('Blob Upload Chunked: get on stale blob upload should return 204 with a range and location [distribution fails]', async () => {
      last = await harness.call('GET', previous!.header('location')!);
      assert.equal(last.status, 204);
      assert.ok(last.header('location'));
      assert.equal(last.header('range'), chunk1Range);
    });

    it('Blob Upload Chunked: PATCH with second chunk returns 202; PUT with digest returns 201', async () => {
      const second = await harness.call('PATCH', last!.header('location')!, {
        headers: {
          'Content-Length': chunk2.length,
          'Content-Range': chunk2Range,
          'Content-Type': 'application/octet-stream',
        },
        body: chunk2,
      });
      assert.equal(second.status, 202);
      assert.equal(second.header('range'), `0-${testBlobB.size - 1}`);
      assert.ok(second.header('location'));
      const closed = await harness.call('PUT', `${second.header('location')}?digest=${testBlobB.digest}`, {
        headers: { 'Content-Length': 0, 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(closed.status, 201);
      assert.ok(closed.header('location'));
      assert.deepEqual((await harness.call('GET', path('blobs', testBlobB.digest))).body, testBlobB.content);
    });

    it('Cross-Repository Blob Mount: without from yields a session; from another repository 201', async () => {
      const withoutFrom = await harness.call('POST', `/v2/${crossmount}/blobs/uploads/?mount=${dummyDigest}`);
      assert.equal(withoutFrom.status, 202);
      assert.ok(withoutFrom.header('location'));

      last = await harness.call(
        'POST',
        `/v2/${crossmount}/blobs/uploads/?mount=${testBlobA.digest}&from=${namespace}`,
      );
      assert.equal(last.status, 201);
      assert.equal(last.header('location'), `/v2/${crossmount}/blobs/${testBlobA.digest}`);
      assert.equal((await harness.call('GET', last.header('location')!)).status, 200);

      // OCI_AUTOMATIC_CROSSMOUNT=0: a known digest without `from` still starts an upload.
      const automatic = await harness.call(
        'POST',
        `/v2/${crossmount}/blobs/uploads/?mount=${testBlobA.digest}`,
      );
      assert.equal(automatic.status, 202);
      assert.ok(automatic.header('location')!.startsWith(`/v2/${crossmount}/blobs/uploads/`));
    });

    it('Manifest Upload: tags test0..test3, a manifest with no layers, artifacts, index, nested index', async () => {
      assert.equal((await harness.call('GET', path('manifests', nonexistentManifest))).status, 404);
      for (let i = 0; i < 4; i++) {
        const reply = await putManifest(`test${i}`, manifests[1]!.content);
        assert.equal(reply.status, 201);
        assert.ok(reply.header('location'));
      }
      const empty = await putManifest('emptylayer', emptyLayerManifest.content);
      assert.equal(empty.status, 201);
      assert.ok(empty.header('location'));
      const byDigest = await harness.call('GET', path('manifests', manifests[1]!.digest), {
        headers: { Accept: MediaType.ociManifest },
      });
      assert.equal(byDigest.status, 200);

      const configTypeArtifact = documentOf({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: descriptorOf(artifactTypeA, refBlobA),
        layers: [emptyDescriptor],
      });
      assert.ok(ok2xx((await putManifest(configTypeArtifact.digest, configTypeArtifact.content)).status));
      const artifactTypeArtifact = documentOf({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        artifactType: artifactTypeA,
        config: emptyDescriptor,
        layers: [descriptorOf(artifactTypeA, refBlobA)],
      });
      assert.ok(ok2xx((await putManifest(artifactTypeArtifact.digest, artifactTypeArtifact.content)).status));

      assert.ok(ok2xx((await uploadBlob(configs[0]!)).status));
      assert.ok(ok2xx((await putManifest(testTagName, manifests[0]!.content)).status));
      const index = documentOf({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        artifactType: artifactTypeIndex,
        manifests: [descriptorOf(MediaType.ociManifest, manifests[0]!)],
        annotations: { [annotationKey]: 'test index' },
      });
      assert.ok(ok2xx((await putManifest(index.digest, index.content, MediaType.ociIndex)).status));
      const nested = documentOf({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        artifactType: artifactTypeIndex,
        manifests: [descriptorOf(MediaType.ociIndex, index)],
      });
      assert.ok(ok2xx((await putManifest(nested.digest, nested.content, MediaType.ociIndex)).status));
    });

    it('Manifest Upload: dangling subject is accepted and answered with OCI-Subject', async () => {
      assert.ok(ok2xx((await uploadBlob(refBlobB)).status));
      const reply = await putManifest(refsCLayer.digest, refsCLayer.content);
      assert.ok(ok2xx(reply.status), reply.body.toString());
      assert.equal(reply.header('oci-subject'), manifests[3]!.digest);
    });

    it('Teardown: delete manifests and blobs created in tests', async () => {
      for (const target of [
        path('manifests', manifests[1]!.digest),
        path('manifests', emptyLayerManifest.digest),
        path('manifests', refsCLayer.digest),
        path('blobs', configs[1]!.digest),
        path('blobs', layer.digest),
        path('blobs', emptyJSON.digest),
      ]) {
        const reply = await harness.call('DELETE', target);
        assert.ok(
          ok2xx(reply.status) || reply.status === 404 || reply.status === 405,
          `${target}: ${reply.status}`,
        );
      }
    });
  });

  describe('Content Discovery', () => {
    let tagList: string[] = [];

    it('Setup: populate registry with test blob, layer and four tags', async () => {
      assert.ok(ok2xx((await uploadBlob(configs[2]!)).status));
      assert.ok(ok2xx((await uploadBlob(layer)).status));
      for (let i = 0; i < 4; i++)
        assert.ok(ok2xx((await putManifest(`test${i}`, manifests[2]!.content)).status));
    });

    it('References setup: every referrer PUT answers OCI-Subject [distribution fails]', async () => {
      assert.ok(ok2xx((await uploadBlob(emptyJSON)).status));
      assert.ok(ok2xx((await uploadBlob(refBlobA)).status));
      // Referrers pushed before their subject exists.
      for (const referrer of [refsAConfig, refsALayer]) {
        const reply = await putManifest(referrer.digest, referrer.content);
        assert.ok(ok2xx(reply.status), reply.body.toString());
        assert.equal(reply.header('oci-subject'), manifests[4]!.digest);
      }
      const index = await putManifest(refsIndex.digest, refsIndex.content, MediaType.ociIndex);
      assert.ok(ok2xx(index.status), index.body.toString());
      assert.equal(index.header('oci-subject'), manifests[4]!.digest);
      assert.ok(ok2xx((await uploadBlob(configs[4]!)).status));
      assert.ok(ok2xx((await uploadBlob(layer)).status));
      assert.ok(ok2xx((await putManifest(testTagName, manifests[4]!.content)).status));
      assert.ok(ok2xx((await uploadBlob(refBlobB)).status));
      for (const referrer of [refsBConfig, refsBLayer]) {
        const reply = await putManifest(referrer.digest, referrer.content);
        assert.ok(ok2xx(reply.status));
        assert.equal(reply.header('oci-subject'), manifests[4]!.digest);
      }
      const dangling = await putManifest(refsCLayer.digest, refsCLayer.content);
      assert.ok(ok2xx(dangling.status));
      assert.equal(dangling.header('oci-subject'), manifests[3]!.digest);
    });

    it('listing tags: GET request to list tags should yield 200, sorted', async () => {
      const reply = await harness.call('GET', `/v2/${namespace}/tags/list`);
      assert.equal(reply.status, 200);
      tagList = reply.json<{ tags: string[] }>().tags;
      assert.deepEqual(tagList, [...tagList].sort());
      assert.ok(tagList.length >= 4);
    });

    it('listing tags: GET number of tags should be limitable by `n` query parameter [distribution fails]', async () => {
      const numResults = Math.floor(tagList.length / 2);
      const reply = await harness.call('GET', `/v2/${namespace}/tags/list?n=${numResults}`);
      assert.equal(reply.status, 200);
      const tags = reply.json<{ tags: string[] }>().tags;
      assert.equal(tags.length, numResults);
      assert.equal(
        reply.header('link'),
        `</v2/${namespace}/tags/list?last=${tags.at(-1)}&n=${numResults}>; rel="next"`,
      );
    });

    it('listing tags: GET start of tag is set by `last` query parameter [distribution fails]', async () => {
      const numResults = Math.floor(tagList.length / 2);
      const first = (await harness.call('GET', `/v2/${namespace}/tags/list?n=${numResults}`)).json<{
        tags: string[];
      }>().tags;
      const reply = await harness.call(
        'GET',
        `/v2/${namespace}/tags/list?n=${numResults}&last=${first[numResults - 1]}`,
      );
      assert.equal(reply.status, 200);
      const next = reply.json<{ tags: string[] }>().tags;
      assert.ok(next.length <= numResults);
      assert.deepEqual(next, tagList.slice(numResults, numResults * 2));
      assert.ok(!next.includes(first[numResults - 1]!));
    });

    it('listing references: GET request to nonexistent blob should result in empty 200 response [distribution fails]', async () => {
      const reply = await harness.call('GET', path('referrers', dummyDigest));
      assert.equal(reply.status, 200);
      assert.equal(reply.header('content-type'), MediaType.ociIndex);
      const index = reply.json<{ schemaVersion: number; mediaType: string; manifests: unknown[] }>();
      assert.deepEqual(index, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] });
    });

    it('listing references: GET request to existing blob should yield 200 [distribution fails]', async () => {
      const reply = await harness.call('GET', path('referrers', manifests[4]!.digest));
      assert.equal(reply.status, 200);
      assert.equal(reply.header('content-type'), MediaType.ociIndex);
      const index = reply.json<{ manifests: { digest: string; annotations?: Record<string, string> }[] }>();
      assert.equal(index.manifests.length, 5);
      assert.notEqual(index.manifests[0]!.digest, index.manifests[1]!.digest);
      for (const entry of index.manifests) {
        assert.equal(Object.keys(entry.annotations ?? {}).length, 1);
        assert.equal(entry.annotations?.[annotationKey], annotationValues.get(entry.digest));
      }
    });

    it('listing references: GET request to existing blob with filter should yield 200 [distribution fails]', async () => {
      const reply = await harness.call(
        'GET',
        `${path('referrers', manifests[4]!.digest)}?artifactType=${encodeURIComponent(artifactTypeA)}`,
      );
      assert.equal(reply.status, 200);
      assert.equal(reply.header('content-type'), MediaType.ociIndex);
      assert.equal(reply.header('oci-filters-applied'), 'artifactType');
      const index = reply.json<{
        manifests: { digest: string; artifactType: string; annotations: Record<string, string> }[];
      }>();
      assert.equal(index.manifests.length, 2);
      for (const entry of index.manifests) {
        assert.equal(entry.artifactType, artifactTypeA);
        assert.equal(entry.annotations[annotationKey], annotationValues.get(entry.digest));
      }
    });

    it('listing references: GET request to missing manifest should yield 200 [distribution fails]', async () => {
      const reply = await harness.call('GET', path('referrers', manifests[3]!.digest));
      assert.equal(reply.status, 200);
      assert.equal(reply.header('content-type'), MediaType.ociIndex);
      const index = reply.json<{ manifests: { digest: string }[] }>();
      assert.deepEqual(
        index.manifests.map((entry) => entry.digest),
        [refsCLayer.digest],
      );
    });

    it('Teardown: delete created manifests (by digest, and the tag through the digest route) and blobs', async () => {
      for (const reference of [
        refsIndex.digest,
        manifests[2]!.digest,
        manifests[4]!.digest,
        refsAConfig.digest,
        refsALayer.digest,
        testTagName,
        refsBConfig.digest,
        refsBLayer.digest,
        refsCLayer.digest,
      ]) {
        const reply = await harness.call('DELETE', path('manifests', reference));
        assert.ok(
          ok2xx(reply.status) || reply.status === 404 || reply.status === 405,
          `${reference}: ${reply.status}`,
        );
      }
      for (const digest of [configs[2]!.digest, layer.digest]) {
        const reply = await harness.call('DELETE', path('blobs', digest));
        assert.ok(ok2xx(reply.status) || reply.status === 405, `${digest}: ${reply.status}`);
      }
      for (const digest of [configs[4]!.digest, refBlobA.digest, refBlobB.digest, emptyJSON.digest]) {
        const reply = await harness.call('DELETE', path('blobs', digest));
        assert.ok(ok2xx(reply.status) || reply.status === 404 || reply.status === 405);
      }
    });
  });

  describe('Content Management', () => {
    let numTags = 0;

    it('Setup: populate registry with test config blob, layer and tag; count tags', async () => {
      assert.ok(ok2xx((await uploadBlob(configs[3]!)).status));
      assert.ok(ok2xx((await uploadBlob(layer)).status));
      assert.ok(ok2xx((await putManifest(testTagName, manifests[3]!.content)).status));
      const reply = await harness.call('GET', `/v2/${namespace}/tags/list`);
      assert.equal(reply.status, 200);
      numTags = reply.json<{ tags: string[] }>().tags.length;
    });

    it('Manifest delete: DELETE request to manifest tag should return 202 [distribution fails]', async () => {
      const reply = await harness.call('DELETE', path('manifests', testTagName));
      assert.equal(reply.status, 202);
    });

    it('Manifest delete: by digest 202, GET then 404, tag list reflects the deletion', async () => {
      const deleted = await harness.call('DELETE', path('manifests', manifests[3]!.digest));
      assert.ok(deleted.status === 202 || deleted.status === 404);
      assert.equal((await harness.call('GET', path('manifests', manifests[3]!.digest))).status, 404);
      const reply = await harness.call('GET', `/v2/${namespace}/tags/list`);
      assert.equal(reply.status, 200);
      assert.ok(reply.json<{ tags: string[] }>().tags.length < numTags);
    });

    it('Blob delete: DELETE request to blob URL should yield 202; GET then 404', async () => {
      assert.equal((await harness.call('DELETE', path('blobs', configs[3]!.digest))).status, 202);
      assert.equal((await harness.call('DELETE', path('blobs', layer.digest))).status, 202);
      assert.equal((await harness.call('GET', path('blobs', configs[3]!.digest))).status, 404);
    });
  });
});

// -------------------------------------------------------------------------------------------------

describe('HTTP: base, errors and routing', () => {
  let harness: Harness;
  before(async () => {
    harness = await Harness.start();
  });
  after(() => harness.close());

  it('answers GET /v2/ with 200 and the API version header', async () => {
    for (const path of ['/v2/', '/v2']) {
      const reply = await harness.call('GET', path);
      assert.equal(reply.status, 200);
      assert.equal(reply.header('docker-distribution-api-version'), 'registry/2.0');
      assert.deepEqual(reply.json(), {});
    }
    const head = await harness.call('HEAD', '/v2/');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it('answers unknown endpoints 404, wrong methods 405 with Allow, bad names 400, all as error JSON', async () => {
    const unknown = await harness.call('GET', '/v2/a/unknown/x');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.header('content-type'), 'application/json; charset=utf-8');
    assert.equal(errorCodes(unknown).length, 1);
    assert.equal((await harness.call('GET', '/v1/')).status, 404);

    const wrongMethod = await harness.call('POST', '/v2/a/manifests/latest');
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.header('allow'), 'GET, HEAD, PUT, DELETE');
    assert.deepEqual(errorCodes(wrongMethod), ['UNSUPPORTED']);

    for (const name of ['Upper', 'a/../b', '%2e%2e', 'a%2Fb', '_layers', 'a//b']) {
      const reply = await harness.call('GET', `/v2/${name}/tags/list`);
      assert.equal(reply.status, 400, name);
      assert.deepEqual(errorCodes(reply), ['NAME_INVALID']);
    }
    assert.deepEqual(errorCodes(await harness.call('GET', '/v2/nothing/tags/list')), ['NAME_UNKNOWN']);
  });

  it('answers invalid digests with 400 DIGEST_INVALID and unknown blobs/manifests/uploads with 404', async () => {
    for (const target of [
      '/v2/a/blobs/sha256:abc',
      `/v2/a/blobs/sha384:${'a'.repeat(96)}`,
      '/v2/a/referrers/nope',
    ]) {
      const reply = await harness.call('GET', target);
      assert.equal(reply.status, 400, target);
      assert.deepEqual(errorCodes(reply), ['DIGEST_INVALID']);
    }
    assert.deepEqual(errorCodes(await harness.call('GET', `/v2/a/blobs/${digestOf('x')}`)), ['BLOB_UNKNOWN']);
    assert.deepEqual(errorCodes(await harness.call('GET', '/v2/a/manifests/latest')), ['MANIFEST_UNKNOWN']);
    assert.deepEqual(errorCodes(await harness.call('GET', '/v2/a/blobs/uploads/not-a-session')), [
      'BLOB_UPLOAD_UNKNOWN',
    ]);
    const unknownSession = await harness.call(
      'PATCH',
      '/v2/a/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e',
      { body: 'x' },
    );
    assert.equal(unknownSession.status, 404);
    assert.deepEqual(errorCodes(unknownSession), ['BLOB_UPLOAD_UNKNOWN']);
  });

  it('answers an internal failure with a generic 500 that names no storage path, and reports it', async () => {
    const failing = new Proxy(new MemoryDriver(), {
      get(target, property, receiver) {
        if (property === 'stat' || property === 'getContent') {
          return async () => {
            throw new Error(
              'EIO: i/o error, open /var/lib/strata/registry/repositories/a/_layers/sha256/00/link',
            );
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    }) as StorageDriver;
    const reported: unknown[] = [];
    const broken = await Harness.start({
      registry: new Registry({ driver: failing }),
      onError: (error) => reported.push(error),
    });
    try {
      for (const target of [`/v2/a/blobs/${digestOf('x')}`, '/v2/a/manifests/latest', '/v2/a/tags/list']) {
        const reply = await broken.call('GET', target);
        assert.equal(reply.status, 500);
        assert.deepEqual(reply.json(), { errors: [{ code: 'UNKNOWN', message: 'internal server error' }] });
        assert.ok(!reply.body.toString().includes('/var/lib'));
      }
      assert.equal(reported.length, 3);
      assert.match(String(reported[0]), /EIO/);
    } finally {
      await broken.close();
    }
  });

  it('gives no 500 and leaks no storage path for thousands of crafted requests', async () => {
    const seeded = await pushImage(harness, 'fuzz/repo', 'latest');
    const session = (await harness.call('POST', '/v2/fuzz/repo/blobs/uploads/')).header('location')!;
    const sessionId = session.slice(session.lastIndexOf('/') + 1);
    const hostile = fc.constantFrom(
      '..',
      '%2e%2e',
      '%2F',
      '%00',
      '%',
      '%zz',
      '_layers',
      'A',
      '\u00e9',
      '%C3%A9',
      '~',
      ';',
      '*',
      'sha256:',
      'x'.repeat(300),
      '',
    );
    const name = fc.oneof(
      fc.constantFrom('fuzz/repo', 'fuzz', 'other', 'a/b/c'),
      fc
        .array(fc.oneof(hostile, fc.stringMatching(/^[a-z0-9._-]{1,10}$/)), { minLength: 1, maxLength: 4 })
        .map((p) => p.join('/')),
    );
    const reference = fc.oneof(
      fc.constantFrom(seeded.digest, 'latest', digestOf('absent'), sessionId, `sha512:${'0'.repeat(128)}`),
      hostile,
      fc.stringMatching(/^[A-Za-z0-9:._%-]{0,80}$/),
    );
    const route = fc.constantFrom(
      'blobs',
      'manifests',
      'referrers',
      'tags',
      'blobs/uploads',
      '_catalog',
      'tags/list',
    );
    const queryValue = fc.oneof(
      hostile,
      fc.constantFrom(seeded.digest, '-1', '0', '99999999999999', '3', 'fuzz/repo'),
    );
    const query = fc
      .array(
        fc.tuple(
          fc.constantFrom('digest', 'n', 'last', 'mount', 'from', 'artifactType', '_state', 'ns'),
          queryValue,
        ),
        {
          maxLength: 3,
        },
      )
      .map((pairs) =>
        pairs.length === 0 ? '' : `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`,
      );
    const target = fc.oneof(
      fc.tuple(name, route, reference, query).map(([n, r, ref, q]) => `/v2/${n}/${r}/${ref}${q}`),
      fc.tuple(name, route, query).map(([n, r, q]) => `/v2/${n}/${r}${q}`),
      fc
        .string({ unit: 'binary-ascii', maxLength: 120 })
        .map((text) => `/v2/${encodeURI(text).replace(/%25/g, '%')}`),
      fc.constantFrom('*', '/', '/v2/_catalog?n=abc', '/healthz', 'http://127.0.0.1/v2/', '//v2//'),
    );
    const headerValue = fc.oneof(
      hostile,
      fc.constantFrom(
        'bytes=0-1',
        'bytes=5-2',
        'bytes=-0',
        'bytes=99999999999999999999-',
        '0-0',
        '0--1',
        '1-0',
        'bytes */*',
        '18446744073709551616-1',
      ),
      fc.stringMatching(/^[ -~]{0,40}$/),
    );
    const headers = fc.dictionary(
      fc.constantFrom(
        'Range',
        'Content-Range',
        'Content-Type',
        'Accept',
        'Authorization',
        'Transfer-Encoding',
        'Expect',
      ),
      headerValue,
      { maxKeys: 3 },
    );
    const method = fc.constantFrom(
      'GET',
      'HEAD',
      'POST',
      'PUT',
      'PATCH',
      'DELETE',
      'OPTIONS',
      'TRACE',
      'BREW',
    );
    const body = fc.uint8Array({ maxLength: 64 });
    const storagePath =
      /\/_(?:layers|manifests|uploads|referrers)\b|blobs\/sha(?:256|512)\/[0-9a-f]{2}\/|\n\s+at /;
    const crafted = fc.tuple(method, target, headers, body);
    let answered = 0;
    // Eight requests per run, sent at once: thousands of requests in about a second.
    await fc.assert(
      fc.asyncProperty(fc.array(crafted, { minLength: 8, maxLength: 8 }), async (batch) => {
        await Promise.all(
          batch.map(async ([m, t, h, b]) => {
            const headerLines = Object.entries(h)
              .filter(([key]) => key !== 'Transfer-Encoding')
              .map(([key, value]) => `${key}: ${value}\r\n`)
              .join('');
            const head = `${m} ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headerLines}Content-Length: ${b.length}\r\n\r\n`;
            const reply = await harness.raw(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(b)]));
            assert.ok(
              reply.status >= 200 && reply.status < 500,
              `${m} ${t} ${JSON.stringify(h)} → ${reply.status}\n${reply.text}`,
            );
            assert.ok(!storagePath.test(reply.text), reply.text);
            answered++;
          }),
        );
      }),
      { numRuns: 320 },
    );
    assert.equal(answered, 2560);
    // The registry still works after all that (the fuzz may have deleted its own seed, rightly).
    await pushImage(harness, 'after/fuzz', 'v1');
    assert.equal((await harness.call('GET', '/v2/after/fuzz/manifests/v1')).status, 200);
  });
});

describe('HTTP: blobs and uploads', () => {
  let harness: Harness;
  before(async () => {
    harness = await Harness.start();
  });
  after(() => harness.close());

  it('serves ranges: 206 with Content-Range, suffix and open ranges, 416 with the size when unsatisfiable', async () => {
    const digest = await pushBlob(harness, 'r', '0123456789');
    const target = `/v2/r/blobs/${digest}`;
    const cases: [string, number, string, string | undefined][] = [
      ['bytes=2-5', 206, '2345', 'bytes 2-5/10'],
      ['bytes=7-', 206, '789', 'bytes 7-9/10'],
      ['bytes=-3', 206, '789', 'bytes 7-9/10'],
      ['bytes=5-100', 206, '56789', 'bytes 5-9/10'],
      ['bytes=0-0,2-3', 200, '0123456789', undefined],
      ['items=0-1', 200, '0123456789', undefined],
    ];
    for (const [range, status, body, contentRange] of cases) {
      const reply = await harness.call('GET', target, { headers: { Range: range } });
      assert.equal(reply.status, status, range);
      assert.equal(reply.body.toString(), body, range);
      assert.equal(reply.header('content-range'), contentRange, range);
      assert.equal(reply.header('content-length'), String(body.length));
      assert.equal(reply.header('accept-ranges'), 'bytes');
      assert.equal(reply.header('docker-content-digest'), digest);
    }
    for (const range of ['bytes=10-', 'bytes=5-2', 'bytes=-0', 'bytes=abc', 'bytes=99999999999999999999-']) {
      const reply = await harness.call('GET', target, { headers: { Range: range } });
      assert.equal(reply.status, 416, range);
      assert.equal(reply.header('content-range'), 'bytes */10');
      assert.deepEqual(errorCodes(reply), ['RANGE_INVALID']);
    }
  });

  it('answers HEAD with the same headers as GET and no body', async () => {
    const digest = await pushBlob(harness, 'h', 'head me');
    const manifest = await pushImage(harness, 'h', 'v1');
    for (const target of [
      `/v2/h/blobs/${digest}`,
      '/v2/h/manifests/v1',
      `/v2/h/manifests/${manifest.digest}`,
      '/v2/h/blobs/' + digestOf('no'),
    ]) {
      const get = await harness.call('GET', target);
      const head = await harness.call('HEAD', target);
      assert.equal(head.status, get.status);
      assert.equal(head.body.length, 0);
      const { date: _getDate, ...getHeaders } = get.headers;
      const { date: _headDate, ...headHeaders } = head.headers;
      assert.deepEqual(headHeaders, getHeaders, target);
    }
  });

  it('streams a large chunked upload (no Content-Length) and download byte for byte', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 123);
    const started = await harness.call('POST', '/v2/big/blobs/uploads/');
    const pieces = Array.from({ length: 50 }, (_, i) =>
      data.subarray(Math.floor((i * data.length) / 50), Math.floor(((i + 1) * data.length) / 50)),
    );
    const patched = await harness.call('PATCH', started.header('location')!, {
      headers: { 'Transfer-Encoding': 'chunked', 'Content-Type': 'application/octet-stream' },
      body: Readable.from(pieces),
    });
    assert.equal(patched.status, 202);
    assert.equal(patched.header('range'), `0-${data.length - 1}`);
    const digest = digestOf(data);
    const closed = await harness.call('PUT', `${patched.header('location')}?digest=${digest}`);
    assert.equal(closed.status, 201);
    assert.equal(closed.header('docker-content-digest'), digest);
    const fetched = await harness.call('GET', `/v2/big/blobs/${digest}`);
    assert.equal(fetched.status, 200);
    assert.ok(fetched.body.equals(data));
  });

  it('closes an upload with a final chunk in the PUT, with or without Content-Range', async () => {
    for (const withRange of [true, false]) {
      const started = await harness.call('POST', '/v2/final/blobs/uploads/');
      const location = started.header('location')!;
      assert.equal(
        (await harness.call('PATCH', location, { headers: { 'Content-Range': '0-2' }, body: 'abc' })).status,
        202,
      );
      const closed = await harness.call('PUT', `${location}?digest=${digestOf('abcdef')}`, {
        headers: withRange ? { 'Content-Range': '3-5' } : {},
        body: 'def',
      });
      assert.equal(closed.status, 201, closed.body.toString());
      assert.equal(closed.header('location'), `/v2/final/blobs/${digestOf('abcdef')}`);
    }
  });

  it('refuses content that does not match its digest and keeps it out of the registry', async () => {
    const claimed = digestOf('the real thing');
    const monolithic = await harness.call('POST', `/v2/liar/blobs/uploads/?digest=${claimed}`, {
      body: 'an impostor',
    });
    assert.equal(monolithic.status, 400);
    assert.deepEqual(errorCodes(monolithic), ['DIGEST_INVALID']);
    const started = await harness.call('POST', '/v2/liar/blobs/uploads/');
    const closed = await harness.call('PUT', `${started.header('location')}?digest=${claimed}`, {
      body: 'an impostor',
    });
    assert.equal(closed.status, 400);
    assert.equal((await harness.call('HEAD', `/v2/liar/blobs/${claimed}`)).status, 404);
    assert.equal((await harness.call('GET', started.header('location')!)).status, 404);
  });

  it('requires a valid digest to close an upload, and answers bad Content-Ranges with 416 and the real state', async () => {
    const started = await harness.call('POST', '/v2/strict/blobs/uploads/');
    const location = started.header('location')!;
    assert.deepEqual(errorCodes(await harness.call('PUT', location)), ['DIGEST_INVALID']);
    assert.deepEqual(errorCodes(await harness.call('PUT', `${location}?digest=sha256:nothex`)), [
      'DIGEST_INVALID',
    ]);
    await harness.call('PATCH', location, { body: 'abcd' });
    for (const range of ['garbage', '0--1', '5-2', 'bytes=x-y']) {
      const reply = await harness.call('PATCH', location, {
        headers: { 'Content-Range': range },
        body: 'xy',
      });
      assert.equal(reply.status, 416, range);
      assert.equal(reply.header('range'), '0-3');
      assert.equal(reply.header('location'), location);
      assert.deepEqual(errorCodes(reply), ['RANGE_INVALID']);
    }
    const mismatch = await harness.call('PATCH', location, {
      headers: { 'Content-Range': '4-9' },
      body: 'xy',
    });
    assert.equal(mismatch.status, 400);
    assert.deepEqual(errorCodes(mismatch), ['SIZE_INVALID']);
    const status = await harness.call('GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), '0-3');
    assert.equal(status.header('content-length'), undefined);
  });

  it('starts sessions with Location, Range 0-0 and Docker-Upload-UUID; cancels them with DELETE', async () => {
    const started = await harness.call('POST', '/v2/s/blobs/uploads/');
    assert.equal(started.status, 202);
    assert.equal(started.header('range'), '0-0');
    const location = started.header('location')!;
    assert.match(location, /^\/v2\/s\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal(started.header('docker-upload-uuid'), location.slice(location.lastIndexOf('/') + 1));
    // Without the trailing slash, as some clients send it.
    assert.equal((await harness.call('POST', '/v2/s/blobs/uploads')).status, 202);
    assert.equal((await harness.call('DELETE', location)).status, 204);
    assert.equal((await harness.call('GET', location)).status, 404);
    assert.equal((await harness.call('DELETE', location)).status, 404);
  });

  it('falls back to an upload when a mount cannot happen, and mounts manifests-free blobs across repositories', async () => {
    const digest = await pushBlob(harness, 'src', 'mountable');
    const cases: [string, number][] = [
      [`/v2/dst/blobs/uploads/?mount=${digest}&from=src`, 201],
      [`/v2/dst2/blobs/uploads/?mount=${digest}&from=nowhere`, 202],
      [`/v2/dst2/blobs/uploads/?mount=${digest}&from=Bad..Name`, 202],
      ['/v2/dst2/blobs/uploads/?mount=sha256:bad&from=src', 202],
      [`/v2/dst2/blobs/uploads/?mount=${digest}`, 202],
    ];
    for (const [target, status] of cases) {
      const reply = await harness.call('POST', target);
      assert.equal(reply.status, status, target);
      if (status === 201) assert.equal(reply.header('docker-content-digest'), digest);
    }
    assert.equal((await harness.call('HEAD', `/v2/dst/blobs/${digest}`)).status, 200);
    assert.equal((await harness.call('HEAD', `/v2/dst2/blobs/${digest}`)).status, 404);

    const automatic = await Harness.start({ registryOptions: { automaticCrossMount: true } });
    try {
      const known = await pushBlob(automatic, 'src', 'auto');
      assert.equal((await automatic.call('POST', `/v2/dst/blobs/uploads/?mount=${known}`)).status, 201);
    } finally {
      await automatic.close();
    }
  });

  it('deletes blobs with 202 and refuses with 405 UNSUPPORTED when deletion is disabled', async () => {
    const digest = await pushBlob(harness, 'del', 'delete me');
    const deleted = await harness.call('DELETE', `/v2/del/blobs/${digest}`);
    assert.equal(deleted.status, 202);
    assert.equal((await harness.call('DELETE', `/v2/del/blobs/${digest}`)).status, 404);
    const locked = await Harness.start({ registryOptions: { deleteEnabled: false } });
    try {
      const kept = await pushBlob(locked, 'del', 'keep me');
      const manifest = await pushImage(locked, 'del', 'v1');
      for (const target of [
        `/v2/del/blobs/${kept}`,
        '/v2/del/manifests/v1',
        `/v2/del/manifests/${manifest.digest}`,
      ]) {
        const reply = await locked.call('DELETE', target);
        assert.equal(reply.status, 405, target);
        assert.deepEqual(errorCodes(reply), ['UNSUPPORTED']);
      }
    } finally {
      await locked.close();
    }
  });
});

describe('HTTP: manifests, tags, referrers, catalog', () => {
  let harness: Harness;
  before(async () => {
    harness = await Harness.start({ registryOptions: { maxManifestBytes: 64 * 1024 } });
  });
  after(() => harness.close());

  it('returns the stored media type, digest and exact bytes; PUT answers 201 with Location', async () => {
    const config = await pushBlob(harness, 'm', '{}');
    const body = Buffer.from(
      `{\n  "schemaVersion": 2,\n  "mediaType": "${MediaType.dockerManifest}",\n  "config": {"mediaType": "${MediaType.dockerConfig}", "digest": "${config}", "size": 2},\n  "layers": []\n}`,
    );
    const put = await harness.call('PUT', '/v2/m/manifests/docker', {
      headers: { 'Content-Type': MediaType.dockerManifest },
      body,
    });
    assert.equal(put.status, 201);
    assert.equal(put.header('location'), `/v2/m/manifests/${digestOf(body)}`);
    assert.equal(put.header('docker-content-digest'), digestOf(body));
    assert.equal(put.header('oci-subject'), undefined);
    const get = await harness.call('GET', '/v2/m/manifests/docker', {
      headers: { Accept: MediaType.dockerManifest },
    });
    assert.equal(get.header('content-type'), MediaType.dockerManifest);
    assert.ok(get.body.equals(body));
  });

  it('refuses mismatched media types, missing blobs, oversized bodies and bad references', async () => {
    const image = await pushImage(harness, 'm', 'v1');
    const mismatch = await harness.call('PUT', '/v2/m/manifests/v2', {
      headers: { 'Content-Type': MediaType.ociIndex },
      body: image.content,
    });
    assert.equal(mismatch.status, 400);
    assert.deepEqual(errorCodes(mismatch), ['MANIFEST_INVALID']);
    const missing = await harness.call('PUT', '/v2/elsewhere/manifests/v1', {
      headers: { 'Content-Type': MediaType.ociManifest },
      body: image.content,
    });
    assert.equal(missing.status, 400);
    assert.deepEqual(errorCodes(missing), ['MANIFEST_BLOB_UNKNOWN']);
    const huge = await harness.call('PUT', '/v2/m/manifests/huge', {
      body: Buffer.alloc(64 * 1024 + 1, 0x20),
    });
    assert.equal(huge.status, 413);
    assert.deepEqual(errorCodes(huge), ['MANIFEST_INVALID']);
    // Chunked, so the size is only known while reading.
    const hugeStream = await harness.call('PUT', '/v2/m/manifests/huge', {
      headers: { 'Transfer-Encoding': 'chunked' },
      body: Readable.from([Buffer.alloc(40 * 1024, 0x20), Buffer.alloc(40 * 1024, 0x20)]),
    });
    assert.equal(hugeStream.status, 413);
    // Refused while the client still sends a body too large to drain: the connection closes, but
    // only after the 413 is out (a close with unread bytes resets it, and the client could see a
    // dropped connection instead). Many at once, where an early reset shows up.
    const body = Buffer.alloc(5 * 1024 * 1024, 0x20);
    const request = Buffer.concat([
      Buffer.from(
        `PUT /v2/m/manifests/huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`,
      ),
      body,
    ]);
    const refused = await Promise.all(Array.from({ length: 64 }, () => harness.raw(request)));
    assert.deepEqual(
      refused.map((answer) => answer.status).filter((status) => status !== 413),
      [],
      'every oversized manifest is answered 413',
    );
    const badTag = await harness.call('PUT', '/v2/m/manifests/-x', { body: image.content });
    assert.equal(badTag.status, 400);
    assert.deepEqual(errorCodes(badTag), ['TAG_INVALID']);
    const wrongDigest = await harness.call('PUT', `/v2/m/manifests/${digestOf('other')}`, {
      body: image.content,
    });
    assert.deepEqual(errorCodes(wrongDigest), ['DIGEST_INVALID']);
  });

  it('deletes a tag with 202 leaving the manifest, and a digest with its tags', async () => {
    const image = await pushImage(harness, 'd', 'one');
    await harness.call('PUT', '/v2/d/manifests/two', {
      headers: { 'Content-Type': MediaType.ociManifest },
      body: image.content,
    });
    assert.equal((await harness.call('DELETE', '/v2/d/manifests/one')).status, 202);
    assert.equal((await harness.call('GET', '/v2/d/manifests/one')).status, 404);
    assert.equal((await harness.call('GET', `/v2/d/manifests/${image.digest}`)).status, 200);
    assert.equal((await harness.call('DELETE', `/v2/d/manifests/${image.digest}`)).status, 202);
    assert.equal((await harness.call('GET', '/v2/d/manifests/two')).status, 404);
    assert.deepEqual((await harness.call('GET', '/v2/d/tags/list')).json(), { name: 'd', tags: [] });
  });

  it('paginates tags with n/last and a Link to the next page; n=0 is empty without Link', async () => {
    const image = await pushImage(harness, 't/list', 'a');
    for (const tag of ['b', 'c', 'd', 'e']) {
      await harness.call('PUT', `/v2/t/list/manifests/${tag}`, {
        headers: { 'Content-Type': MediaType.ociManifest },
        body: image.content,
      });
    }
    const pages: string[][] = [];
    let next: string | undefined = '/v2/t/list/tags/list?n=2';
    while (next !== undefined) {
      const reply = await harness.call('GET', next);
      assert.equal(reply.status, 200);
      pages.push(reply.json<{ tags: string[] }>().tags);
      next = /^<([^>]+)>; rel="next"$/.exec(reply.header('link') ?? '')?.[1];
    }
    assert.deepEqual(pages, [['a', 'b'], ['c', 'd'], ['e']]);
    const none = await harness.call('GET', '/v2/t/list/tags/list?n=0');
    assert.deepEqual(none.json(), { name: 't/list', tags: [] });
    assert.equal(none.header('link'), undefined);
    assert.deepEqual(
      (await harness.call('GET', '/v2/t/list/tags/list?last=c')).json<{ tags: string[] }>().tags,
      ['d', 'e'],
    );
    for (const n of ['-1', 'abc', '1.5']) {
      const reply = await harness.call('GET', `/v2/t/list/tags/list?n=${n}`);
      assert.equal(reply.status, 400, n);
    }
  });

  it('lists referrers with the filter header only when filtering', async () => {
    const subject = await pushImage(harness, 'ref', 'v1');
    const empty = await pushBlob(harness, 'ref', '{}');
    const signature = documentOf({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: 'application/vnd.example.sig',
      config: { mediaType: MediaType.ociEmpty, digest: empty, size: 2 },
      layers: [{ mediaType: MediaType.ociEmpty, digest: empty, size: 2 }],
      subject: { mediaType: MediaType.ociManifest, digest: subject.digest, size: subject.content.length },
    });
    const put = await harness.call('PUT', `/v2/ref/manifests/${signature.digest}`, {
      headers: { 'Content-Type': MediaType.ociManifest },
      body: signature.content,
    });
    assert.equal(put.header('oci-subject'), subject.digest);
    const all = await harness.call('GET', `/v2/ref/referrers/${subject.digest}`);
    assert.equal(all.header('oci-filters-applied'), undefined);
    assert.deepEqual(all.json<{ manifests: unknown[] }>().manifests, [
      {
        mediaType: MediaType.ociManifest,
        digest: signature.digest,
        size: signature.size,
        artifactType: 'application/vnd.example.sig',
      },
    ]);
    const other = await harness.call(
      'GET',
      `/v2/ref/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`,
    );
    assert.equal(other.header('oci-filters-applied'), 'artifactType');
    assert.deepEqual(other.json<{ manifests: unknown[] }>().manifests, []);
  });

  it('lists the catalog in order with n/last and Link', async () => {
    const fresh = await Harness.start();
    try {
      for (const name of ['c', 'a/b', 'a', 'b']) await pushBlob(fresh, name, name);
      const first = await fresh.call('GET', '/v2/_catalog?n=2');
      assert.deepEqual(first.json(), { repositories: ['a', 'a/b'] });
      assert.equal(first.header('link'), `</v2/_catalog?last=${encodeURIComponent('a/b')}&n=2>; rel="next"`);
      const second = await fresh.call('GET', `/v2/_catalog?n=2&last=${encodeURIComponent('a/b')}`);
      assert.deepEqual(second.json(), { repositories: ['b', 'c'] });
      assert.equal(second.header('link'), undefined);
      assert.deepEqual((await fresh.call('GET', '/v2/_catalog')).json(), {
        repositories: ['a', 'a/b', 'b', 'c'],
      });
    } finally {
      await fresh.close();
    }
  });
});

describe('HTTP: authorization', () => {
  const CHALLENGE = 'Bearer realm="http://127.0.0.1/token",service="test"';

  /** Allows `Bearer good`, denies repository `secret` to `Bearer no-secret`, challenges the rest. */
  class StubAuthorizer implements Authorizer {
    readonly seen: { authorization: string | undefined; needed: readonly Scope[] }[] = [];

    async authorize(request: AuthRequest, needed: readonly Scope[]): Promise<AuthDecision> {
      this.seen.push({ authorization: request.authorization, needed });
      if (request.authorization === 'Bearer good') return { kind: 'allow', subject: 'alice' };
      if (request.authorization === 'Bearer no-secret') {
        if (needed.some((scope) => scope.name === 'secret')) {
          return {
            kind: 'deny',
            status: 403,
            code: 'DENIED',
            message: 'requested access to the resource is denied',
          };
        }
        return { kind: 'allow', subject: 'bob' };
      }
      const scope = needed.map((entry) => `${entry.type}:${entry.name}:${entry.actions.join(',')}`).join(' ');
      return {
        kind: 'deny',
        status: 401,
        code: 'UNAUTHORIZED',
        message: 'authentication required',
        challenge: scope === '' ? CHALLENGE : `${CHALLENGE},scope="${scope}"`,
      };
    }
  }

  let harness: Harness;
  let authorizer: StubAuthorizer;
  const log: AccessLogEntry[] = [];
  before(async () => {
    authorizer = new StubAuthorizer();
    harness = await Harness.start({ authorizer, onRequest: (entry) => log.push(entry) });
  });
  after(() => harness.close());

  const good = { Authorization: 'Bearer good' };

  it('challenges anonymous requests with 401, UNAUTHORIZED and WWW-Authenticate naming the scope', async () => {
    const base = await harness.call('GET', '/v2/');
    assert.equal(base.status, 401);
    assert.equal(base.header('www-authenticate'), CHALLENGE);
    assert.deepEqual(errorCodes(base), ['UNAUTHORIZED']);
    const pull = await harness.call('GET', '/v2/foo/bar/manifests/latest');
    assert.equal(pull.status, 401);
    assert.equal(pull.header('www-authenticate'), `${CHALLENGE},scope="repository:foo/bar:pull"`);
    const denied = await harness.call('GET', '/v2/secret/tags/list', {
      headers: { Authorization: 'Bearer no-secret' },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.header('www-authenticate'), undefined);
    assert.deepEqual(errorCodes(denied), ['DENIED']);
  });

  it('asks for the scopes each route needs', async () => {
    const digest = digestOf('x');
    const cases: [string, string, string][] = [
      ['GET', '/v2/', ''],
      ['GET', '/v2/_catalog', 'registry:catalog:*'],
      ['GET', `/v2/a/b/blobs/${digest}`, 'repository:a/b:pull'],
      ['HEAD', `/v2/a/b/blobs/${digest}`, 'repository:a/b:pull'],
      ['DELETE', `/v2/a/b/blobs/${digest}`, 'repository:a/b:delete'],
      ['POST', '/v2/a/b/blobs/uploads/', 'repository:a/b:pull,push'],
      [
        'POST',
        `/v2/a/b/blobs/uploads/?mount=${digest}&from=c/d`,
        'repository:a/b:pull,push repository:c/d:pull',
      ],
      ['GET', '/v2/a/b/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e', 'repository:a/b:pull,push'],
      ['GET', '/v2/a/b/manifests/latest', 'repository:a/b:pull'],
      ['PUT', '/v2/a/b/manifests/latest', 'repository:a/b:pull,push'],
      ['DELETE', '/v2/a/b/manifests/latest', 'repository:a/b:delete'],
      ['GET', '/v2/a/b/tags/list', 'repository:a/b:pull'],
      ['GET', `/v2/a/b/referrers/${digest}`, 'repository:a/b:pull'],
    ];
    for (const [method, target, expected] of cases) {
      await harness.call(method, target, { headers: good, body: method === 'PUT' ? '{}' : undefined });
      const needed = authorizer.seen.at(-1)!.needed;
      assert.equal(
        needed.map((scope) => `${scope.type}:${scope.name}:${scope.actions.join(',')}`).join(' '),
        expected,
        `${method} ${target}`,
      );
    }
  });

  it('mounts only from repositories the caller may read, else falls back to an upload', async () => {
    const digest = await pushBlob(harness, 'secret', 'classified', good);
    const canRead = await harness.call('POST', `/v2/mine/blobs/uploads/?mount=${digest}&from=secret`, {
      headers: good,
    });
    assert.equal(canRead.status, 201);
    const cannot = await harness.call('POST', `/v2/theirs/blobs/uploads/?mount=${digest}&from=secret`, {
      headers: { Authorization: 'Bearer no-secret' },
    });
    assert.equal(cannot.status, 202);
    assert.equal((await harness.call('HEAD', `/v2/theirs/blobs/${digest}`, { headers: good })).status, 404);
  });

  it('logs each request with the subject, status, bytes and only safe query parameters', async () => {
    log.length = 0;
    const digest = await pushBlob(harness, 'logged', 'twelve bytes', good);
    await harness.call('GET', `/v2/logged/blobs/${digest}?secret=hunter2&n=1`, {
      headers: { ...good, 'User-Agent': 'probe/1' },
    });
    await new Promise((resolve) => setImmediate(resolve));
    const entry = log.find((line) => line.method === 'GET');
    assert.ok(entry);
    assert.equal(entry.path, `/v2/logged/blobs/${digest}?n=1`);
    assert.equal(entry.status, 200);
    assert.equal(entry.bytes, 12);
    assert.equal(entry.subject, 'alice');
    assert.equal(entry.userAgent, 'probe/1');
    assert.equal(entry.remote, '127.0.0.1');
    assert.ok(entry.durationMs >= 0 && !Number.isNaN(Date.parse(entry.time)));
    assert.ok(log.every((line) => !line.path.includes('hunter2')));
  });
});

describe('HTTP: token endpoint, health, connections', () => {
  const endpoint: TokenEndpoint = {
    path: '/token',
    async handle(request) {
      return {
        status: 200,
        headers: { 'X-Token-Server': 'stub' },
        body: {
          token: 'opaque',
          method: request.method,
          scope: request.query.getAll('scope'),
          grant: request.form?.get('grant_type') ?? null,
          authorization: request.authorization ?? null,
        },
      };
    },
  };
  let healthy = true;
  let harness: Harness;
  before(async () => {
    harness = await Harness.start({
      tokenEndpoint: endpoint,
      health: async () => (healthy ? { ok: true } : { ok: false, detail: 'storage unreachable' }),
    });
  });
  after(() => harness.close());

  it('serves the token endpoint for GET and the OAuth2 POST form', async () => {
    const get = await harness.call(
      'GET',
      '/token?service=test&scope=repository:a:pull&scope=repository:b:push',
      {
        headers: { Authorization: 'Basic dTpw' },
      },
    );
    assert.equal(get.status, 200);
    assert.equal(get.header('x-token-server'), 'stub');
    assert.equal(get.header('cache-control'), 'no-store');
    assert.deepEqual(get.json(), {
      token: 'opaque',
      method: 'GET',
      scope: ['repository:a:pull', 'repository:b:push'],
      grant: null,
      authorization: 'Basic dTpw',
    });
    const post = await harness.call('POST', '/token', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=password&service=test&username=u&password=p',
    });
    assert.equal(post.json<{ grant: string }>().grant, 'password');
    assert.equal((await harness.call('DELETE', '/token')).status, 405);
  });

  it('reports health on /healthz: 200 when ok, 503 with the detail otherwise', async () => {
    healthy = true;
    const up = await harness.call('GET', '/healthz');
    assert.equal(up.status, 200);
    assert.deepEqual(up.json(), { status: 'ok' });
    healthy = false;
    const down = await harness.call('GET', '/healthz');
    assert.equal(down.status, 503);
    assert.deepEqual(down.json(), { status: 'unavailable', detail: 'storage unreachable' });
    healthy = true;
    const plain = await Harness.start({ health: async () => Promise.reject(new Error('boom')) });
    try {
      assert.equal((await plain.call('GET', '/healthz')).status, 503);
    } finally {
      await plain.close();
    }
  });

  it('drains a small body sent to a route that takes none, keeping the connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const send = (path: string, body?: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const headers = body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) };
        const req = httpRequest(
          { host: '127.0.0.1', port: harness.port, method: 'GET', path, headers, agent },
          (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      assert.equal(await send('/v2/', 'unexpected body'), 200);
      assert.equal(await send('/v2/'), 200);
      assert.equal(sockets.size, 1);
    } finally {
      agent.destroy();
    }
  });

  it('closes the connection instead of reading a large unwanted body', async () => {
    const reply = await harness
      .call('GET', '/v2/', {
        headers: { 'Content-Length': 8 * 1024 * 1024 },
        body: Readable.from([Buffer.alloc(64 * 1024)]),
      })
      .catch((err: NodeJS.ErrnoException) => err);
    if (!(reply instanceof Error)) {
      assert.equal(reply.status, 200);
      assert.equal(reply.header('connection'), 'close');
    }
    assert.equal((await harness.call('GET', '/v2/')).status, 200);
  });
});

describe('HTTP: header parsers', () => {
  it('parses Range against a size', () => {
    assert.equal(parseRange(undefined, 10), undefined);
    assert.deepEqual(parseRange('bytes=0-0', 10), { offset: 0, end: 1 });
    assert.deepEqual(parseRange(' bytes=3-', 10), { offset: 3, end: 10 });
    assert.deepEqual(parseRange('bytes=-20', 10), { offset: 0, end: 10 });
    assert.equal(parseRange('bytes=0-1', 0), 'unsatisfiable');
    assert.equal(parseRange('bytes=-', 10), 'unsatisfiable');
    assert.equal(parseRange('pages=1-2', 10), undefined);
  });

  it('parses Content-Range as the spec writes it, with the HTTP forms tolerated', () => {
    assert.deepEqual(parseContentRange('0-21'), { start: 0, end: 21 });
    assert.deepEqual(parseContentRange('bytes 22-41/42'), { start: 22, end: 41 });
    assert.deepEqual(parseContentRange('bytes=5-5/*'), { start: 5, end: 5 });
    for (const bad of ['', '0--1', '-1-5', '5-2', 'a-b', '1-2-3', '0-99999999999999999', '0-1/']) {
      assert.equal(parseContentRange(bad), undefined, bad);
    }
  });
});
