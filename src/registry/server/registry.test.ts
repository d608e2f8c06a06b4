import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { digestOf, type Digest } from '../../oci/digest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { RegistryError, UploadRangeError } from './errors.js';
import { Registry, type RegistryOptions } from './registry.js';
import type { StorageDriver } from './storage/driver.js';
import { MemoryDriver } from './storage/memory.js';
import { StoragePaths } from './storage/paths.js';

/** A MemoryDriver that records every call (method and first argument). */
function recordingDriver(): { driver: StorageDriver; calls: [string, string][] } {
  const memory = new MemoryDriver();
  const calls: [string, string][] = [];
  const driver = new Proxy(memory, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push([String(property), String(args[0])]);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, calls };
}

/** `first` was called, and before any call of `second`. */
function assertBefore(calls: [string, string][], first: [string, string], second: [string, string]): void {
  const index = (call: [string, string]): number =>
    calls.findIndex(([method, path]) => method === call[0] && path === call[1]);
  assert.ok(index(first) >= 0, `${first.join(' ')} was not called`);
  assert.ok(
    index(second) < 0 || index(first) < index(second),
    `${first.join(' ')} came after ${second.join(' ')}`,
  );
}

function newRegistry(options: Partial<RegistryOptions> = {}): Registry {
  return new Registry({ driver: new MemoryDriver(), ...options });
}

function chunks(...parts: (string | Buffer)[]): AsyncIterable<Uint8Array> {
  return Readable.from(parts.map((part) => Buffer.from(part)));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

async function rejectsWith(promise: Promise<unknown>, code: string, status?: number): Promise<RegistryError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status);
    return err;
  }
  assert.fail(`expected ${code}`);
}

async function pushBlob(registry: Registry, name: string, content: string | Buffer): Promise<Digest> {
  const data = Buffer.from(content);
  const digest = digestOf(data);
  await registry.uploadBlob(name, digest, chunks(data));
  return digest;
}

function descriptor(
  mediaType: string,
  content: string | Buffer,
): { mediaType: string; digest: Digest; size: number } {
  const data = Buffer.from(content);
  return { mediaType, digest: digestOf(data), size: data.length };
}

/** Pushes a config and a layer, returns an image manifest body referencing them. */
async function imageManifest(
  registry: Registry,
  name: string,
  extra: Record<string, unknown> = {},
  seed = 'x',
): Promise<Buffer> {
  const config = `{"author":"${seed}"}`;
  const layer = `layer ${seed}`;
  await pushBlob(registry, name, config);
  await pushBlob(registry, name, layer);
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptor(MediaType.ociConfig, config),
      layers: [descriptor(MediaType.ociLayerGzip, layer)],
      ...extra,
    }),
  );
}

describe('Registry: upload sessions', () => {
  it('assembles chunks, verifies the digest and links the blob in the repository', async () => {
    const registry = newRegistry();
    const session = await registry.startUpload('team/app');
    assert.deepEqual(session.size, 0);
    assert.equal(
      (await registry.appendUpload('team/app', session.id, chunks('hello '), { start: 0, end: 5 })).size,
      6,
    );
    assert.equal((await registry.uploadStatus('team/app', session.id)).size, 6);
    const digest = digestOf('hello world');
    const blob = await registry.completeUpload('team/app', session.id, [digest], chunks('world'), {
      start: 6,
      end: 10,
    });
    assert.deepEqual(blob, { digest, size: 11 });
    const handle = await registry.getBlob('team/app', digest);
    assert.equal(handle.size, 11);
    assert.equal((await readAll(await handle.open())).toString(), 'hello world');
    assert.equal((await readAll(await handle.open({ offset: 6, end: 9 }))).toString(), 'wor');
    assert.equal(
      await registry.driver.getContent(StoragePaths.uploadState('team/app', session.id)),
      undefined,
    );
    await rejectsWith(registry.uploadStatus('team/app', session.id), 'BLOB_UPLOAD_UNKNOWN', 404);
  });

  it('refuses a chunk that does not start at the current offset (416) and keeps the session usable', async () => {
    const registry = newRegistry();
    const { id } = await registry.startUpload('repo');
    const outOfOrder = await rejectsWith(
      registry.appendUpload('repo', id, chunks('bbb'), { start: 3, end: 5 }),
      'RANGE_INVALID',
      416,
    );
    assert.ok(outOfOrder instanceof UploadRangeError);
    assert.equal(outOfOrder.offset, 0);
    await registry.appendUpload('repo', id, chunks('aaa'), { start: 0, end: 2 });
    // The same chunk again (a retry on an old Location) is out of order too.
    const replay = await rejectsWith(
      registry.appendUpload('repo', id, chunks('aaa'), { start: 0, end: 2 }),
      'RANGE_INVALID',
    );
    assert.equal((replay as UploadRangeError).offset, 3);
    await registry.appendUpload('repo', id, chunks('bbb'), { start: 3, end: 5 });
    const blob = await registry.completeUpload('repo', id, [digestOf('aaabbb')]);
    assert.equal(blob.size, 6);
  });

  it('drops a chunk whose length differs from its Content-Range, keeping what came before', async () => {
    const registry = newRegistry();
    const { id } = await registry.startUpload('repo');
    await registry.appendUpload('repo', id, chunks('abc'));
    await rejectsWith(
      registry.appendUpload('repo', id, chunks('defgh'), { start: 3, end: 5 }),
      'SIZE_INVALID',
      400,
    );
    await rejectsWith(
      registry.appendUpload('repo', id, chunks('d'), { start: 3, end: 5 }),
      'SIZE_INVALID',
      400,
    );
    assert.equal((await registry.uploadStatus('repo', id)).size, 3);
    await registry.appendUpload('repo', id, chunks('def'), { start: 3, end: 5 });
    assert.equal((await registry.completeUpload('repo', id, [digestOf('abcdef')])).size, 6);
  });

  it('never turns content that does not match its digest into a blob', async () => {
    const { driver } = recordingDriver();
    const registry = new Registry({ driver });
    const { id } = await registry.startUpload('repo');
    await registry.appendUpload('repo', id, chunks('real content'));
    const claimed = digestOf('other content');
    await rejectsWith(registry.completeUpload('repo', id, [claimed]), 'DIGEST_INVALID', 400);
    assert.equal(await driver.stat(StoragePaths.blobData(claimed)), undefined);
    assert.equal(await driver.stat(StoragePaths.blobData(digestOf('real content'))), undefined);
    assert.equal(await driver.stat(StoragePaths.layerLink('repo', claimed)), undefined);
    await rejectsWith(registry.getBlob('repo', claimed), 'BLOB_UNKNOWN', 404);
    // The session is discarded with its data.
    assert.equal(await driver.stat(StoragePaths.upload('repo', id)), undefined);
    await rejectsWith(registry.uploadBlob('repo', claimed, chunks('not it')), 'DIGEST_INVALID');
    assert.deepEqual(await driver.list(StoragePaths.uploads('repo')), []);
  });

  it('continues a session after a restart: a new Registry on the same driver finishes it', async () => {
    const { driver, calls } = recordingDriver();
    const before = new Registry({ driver });
    const { id } = await before.startUpload('library/app');
    await before.appendUpload('library/app', id, chunks('first half, '), { start: 0, end: 11 });

    const after = new Registry({ driver });
    assert.equal((await after.uploadStatus('library/app', id)).size, 12);
    await rejectsWith(
      after.appendUpload('library/app', id, chunks('x'), { start: 0, end: 0 }),
      'RANGE_INVALID',
    );
    await after.appendUpload('library/app', id, chunks('second half'), { start: 12, end: 22 });
    calls.length = 0;
    const digest = digestOf('first half, second half');
    assert.deepEqual(await after.completeUpload('library/app', id, [digest]), { digest, size: 23 });
    // The hash state did not survive the restart, so the data was read back once to verify it.
    assert.ok(
      calls.some(
        ([method, path]) => method === 'reader' && path === StoragePaths.uploadData('library/app', id),
      ),
    );
    assert.equal(
      (await readAll(await (await after.getBlob('library/app', digest)).open())).toString(),
      'first half, second half',
    );
  });

  it('verifies from the running hash without reading the data back when it has seen every byte', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const { id } = await registry.startUpload('repo');
    await registry.appendUpload('repo', id, chunks('one ', 'two '));
    await registry.appendUpload('repo', id, chunks('three'));
    calls.length = 0;
    await registry.completeUpload('repo', id, [digestOf('one two three')]);
    assert.ok(!calls.some(([method]) => method === 'reader'), JSON.stringify(calls));
    assert.ok(
      calls.some(([method, path]) => method === 'move' && path === StoragePaths.uploadData('repo', id)),
    );
  });

  it('verifies sha512 digests and every digest given', async () => {
    const registry = newRegistry();
    const content = Buffer.from('sha512 content');
    const sha512 = digestOf(content, 'sha512');
    const { id } = await registry.startUpload('repo');
    assert.deepEqual(await registry.completeUpload('repo', id, [sha512], chunks(content)), {
      digest: sha512,
      size: 14,
    });
    assert.equal((await registry.getBlob('repo', sha512)).size, 14);

    const second = await registry.startUpload('repo');
    await rejectsWith(
      registry.completeUpload(
        'repo',
        second.id,
        [digestOf(content), digestOf('wrong', 'sha512')],
        chunks(content),
      ),
      'DIGEST_INVALID',
    );
    const third = await registry.startUpload('repo');
    const both = await registry.completeUpload(
      'repo',
      third.id,
      [digestOf(content), sha512],
      chunks(content),
    );
    assert.equal(both.digest, digestOf(content));
  });

  it('accepts the empty blob and batches large streamed uploads into few writes', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    assert.equal((await registry.uploadBlob('repo', digestOf(''), chunks())).size, 0);
    const piece = Buffer.alloc(64 * 1024, 7);
    const pieces = Array.from({ length: 64 }, () => piece);
    const whole = Buffer.concat(pieces);
    calls.length = 0;
    const blob = await registry.uploadBlob('repo', digestOf(whole), Readable.from(pieces));
    assert.equal(blob.size, whole.length);
    assert.ok(calls.filter(([method]) => method === 'writer').length === 1);
  });

  it('serialises concurrent chunks on one session', async () => {
    const registry = newRegistry();
    const { id } = await registry.startUpload('repo');
    const results = await Promise.allSettled([
      registry.appendUpload('repo', id, chunks('aaaa'), { start: 0, end: 3 }),
      registry.appendUpload('repo', id, chunks('bbbb'), { start: 0, end: 3 }),
    ]);
    assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
    assert.equal((await registry.uploadStatus('repo', id)).size, 4);
  });

  it('cancels a session and answers BLOB_UPLOAD_UNKNOWN afterwards', async () => {
    const registry = newRegistry();
    const { id } = await registry.startUpload('repo');
    await registry.appendUpload('repo', id, chunks('data'));
    await registry.cancelUpload('repo', id);
    await rejectsWith(registry.cancelUpload('repo', id), 'BLOB_UPLOAD_UNKNOWN', 404);
    await rejectsWith(registry.appendUpload('repo', id, chunks('more')), 'BLOB_UPLOAD_UNKNOWN');
    await rejectsWith(registry.completeUpload('repo', id, [digestOf('data')]), 'BLOB_UPLOAD_UNKNOWN');
    // A session belongs to its repository.
    const other = await registry.startUpload('repo');
    await rejectsWith(registry.uploadStatus('elsewhere', other.id), 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('Registry: blobs and mounts', () => {
  it('serves a blob only where it is linked, touching the link before looking (GC protocol)', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const digest = await pushBlob(registry, 'a', 'shared bytes');
    await rejectsWith(registry.getBlob('b', digest), 'BLOB_UNKNOWN', 404);
    calls.length = 0;
    await registry.getBlob('a', digest);
    assertBefore(
      calls,
      ['touch', StoragePaths.layerLink('a', digest)],
      ['stat', StoragePaths.blobData(digest)],
    );
  });

  it('links a finished upload and touches already stored data before checking it', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const digest = await pushBlob(registry, 'a', 'dedup');
    calls.length = 0;
    await pushBlob(registry, 'b', 'dedup');
    assertBefore(
      calls,
      ['putContent', StoragePaths.layerLink('b', digest)],
      ['stat', StoragePaths.blobData(digest)],
    );
    assertBefore(calls, ['touch', StoragePaths.blobData(digest)], ['stat', StoragePaths.blobData(digest)]);
    // Already stored: the second upload's data is dropped, not moved over it.
    assert.ok(!calls.some(([method]) => method === 'move'));
  });

  it('mounts from a repository that links the blob, and only from there', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const digest = await pushBlob(registry, 'source/repo', 'mount me');
    assert.equal(await registry.mountBlob('target', digest, 'nowhere'), undefined);
    assert.equal(await registry.mountBlob('target', digest, 'Invalid Name'), undefined);
    assert.equal(await registry.mountBlob('target', digestOf('absent'), 'source/repo'), undefined);
    // Without `from`, automatic mounting is off by default.
    assert.equal(await registry.mountBlob('target', digest), undefined);
    await rejectsWith(registry.getBlob('target', digest), 'BLOB_UNKNOWN');
    calls.length = 0;
    assert.deepEqual(await registry.mountBlob('target', digest, 'source/repo'), { digest, size: 8 });
    // The new link is unknown to a collection under way: the data is touched before it is checked.
    assertBefore(calls, ['touch', StoragePaths.blobData(digest)], ['stat', StoragePaths.blobData(digest)]);
    assert.equal((await registry.getBlob('target', digest)).size, 8);
  });

  it('mounts without `from` when automatic cross-mounting is enabled', async () => {
    const registry = newRegistry({ automaticCrossMount: true });
    const digest = await pushBlob(registry, 'source', 'auto');
    assert.deepEqual(await registry.mountBlob('target', digest), { digest, size: 4 });
    assert.equal(await registry.mountBlob('target', digestOf('nothing')), undefined);
  });

  it('deletes a blob link (not the bytes other repositories use), unless deletion is disabled', async () => {
    const registry = newRegistry();
    const digest = await pushBlob(registry, 'a', 'bytes');
    await registry.mountBlob('b', digest, 'a');
    await registry.deleteBlob('a', digest);
    await rejectsWith(registry.getBlob('a', digest), 'BLOB_UNKNOWN');
    assert.equal((await registry.getBlob('b', digest)).size, 5);
    await rejectsWith(registry.deleteBlob('a', digest), 'BLOB_UNKNOWN', 404);

    const locked = new Registry({ driver: registry.driver, deleteEnabled: false });
    await rejectsWith(locked.deleteBlob('b', digest), 'UNSUPPORTED', 405);
  });
});

describe('Registry: manifests', () => {
  it('stores a manifest byte for byte and serves it by tag and by digest', async () => {
    const registry = newRegistry();
    const body = await imageManifest(registry, 'app');
    const indented = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, '\t'));
    const stored = await registry.putManifest('app', 'v1', indented, MediaType.ociManifest);
    assert.equal(stored.digest, digestOf(indented));
    assert.equal(stored.subject, undefined);
    for (const reference of ['v1', stored.digest]) {
      const manifest = await registry.getManifest('app', reference);
      assert.deepEqual(manifest.body, indented);
      assert.equal(manifest.mediaType, MediaType.ociManifest);
      assert.equal(manifest.digest, stored.digest);
    }
    // A fresh Registry (cold cache) reads the same from storage.
    const cold = new Registry({ driver: registry.driver });
    assert.equal((await cold.getManifest('app', 'v1')).mediaType, MediaType.ociManifest);
    // Manifests can be fetched on the blob endpoint too, as distribution allows.
    assert.equal((await registry.getBlob('app', stored.digest)).size, indented.length);
    await rejectsWith(registry.getManifest('other', stored.digest), 'MANIFEST_UNKNOWN', 404);
    await rejectsWith(registry.getManifest('app', 'v2'), 'MANIFEST_UNKNOWN', 404);
    await rejectsWith(registry.getManifest('app', '.INVALID_MANIFEST_NAME'), 'MANIFEST_UNKNOWN', 404);
  });

  it('puts by digest (sha256 or sha512) and refuses a body that does not match it', async () => {
    const registry = newRegistry();
    const body = await imageManifest(registry, 'app');
    await rejectsWith(
      registry.putManifest('app', digestOf('something else'), body, MediaType.ociManifest),
      'DIGEST_INVALID',
      400,
    );
    const sha512 = digestOf(body, 'sha512');
    assert.equal((await registry.putManifest('app', sha512, body, MediaType.ociManifest)).digest, sha512);
    assert.deepEqual((await registry.getManifest('app', sha512)).body, body);
    await rejectsWith(registry.putManifest('app', 'sha256:totallywrong', body), 'DIGEST_INVALID', 400);
    await rejectsWith(registry.putManifest('app', `md5:${'a'.repeat(32)}`, body), 'DIGEST_INVALID', 400);
    await rejectsWith(registry.putManifest('app', '-bad-tag', body), 'TAG_INVALID', 400);
  });

  it('requires every referenced blob and child manifest in the repository', async () => {
    const registry = newRegistry();
    const layer = descriptor(MediaType.ociLayerGzip, 'never pushed');
    const config = await pushBlob(registry, 'app', '{}');
    const missingLayer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: config, size: 2 },
        layers: [layer],
      }),
    );
    const error = await rejectsWith(
      registry.putManifest('app', 'v1', missingLayer),
      'MANIFEST_BLOB_UNKNOWN',
      400,
    );
    assert.deepEqual(error.detail, { digests: [layer.digest] });
    // Linked in another repository is not enough.
    await pushBlob(registry, 'elsewhere', 'never pushed');
    await rejectsWith(registry.putManifest('app', 'v1', missingLayer), 'MANIFEST_BLOB_UNKNOWN');
    await rejectsWith(registry.getManifest('app', 'v1'), 'MANIFEST_UNKNOWN');

    const child = await imageManifest(registry, 'app');
    const index = (manifests: unknown[]): Buffer =>
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
    const childDescriptor = descriptor(MediaType.ociManifest, child);
    await rejectsWith(
      registry.putManifest('app', 'multi', index([childDescriptor])),
      'MANIFEST_BLOB_UNKNOWN',
    );
    await registry.putManifest('app', childDescriptor.digest, child);
    const stored = await registry.putManifest('app', 'multi', index([childDescriptor]));
    assert.equal((await registry.getManifest('app', 'multi')).mediaType, MediaType.ociIndex);
    // An index of indexes.
    const nested = index([descriptor(MediaType.ociIndex, index([childDescriptor]))]);
    assert.ok(stored.digest);
    await registry.putManifest('app', 'nested', nested);
  });

  it('does not require foreign layers (with urls) to be uploaded', async () => {
    const registry = newRegistry();
    const config = await pushBlob(registry, 'win', '{}');
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { mediaType: MediaType.dockerConfig, digest: config, size: 2 },
        layers: [
          {
            ...descriptor(MediaType.dockerLayerForeignGzip, 'windows base layer'),
            urls: ['https://example.invalid/layer'],
          },
        ],
      }),
    );
    const stored = await registry.putManifest('win', 'ltsc', body, MediaType.dockerManifest);
    assert.equal(stored.mediaType, MediaType.dockerManifest);
  });

  it('touches the links of every blob a new manifest references before checking them', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const body = await imageManifest(registry, 'app');
    calls.length = 0;
    await registry.putManifest('app', 'v1', body);
    const manifest = JSON.parse(body.toString()) as {
      config: { digest: Digest };
      layers: { digest: Digest }[];
    };
    for (const digest of [manifest.config.digest, manifest.layers[0]!.digest]) {
      const link = StoragePaths.layerLink('app', digest);
      assertBefore(calls, ['touch', link], ['stat', link]);
      assertBefore(calls, ['touch', link], ['stat', StoragePaths.blobData(digest)]);
    }
  });

  it('checks the media type: body against Content-Type, OCI shapes when the field is absent', async () => {
    const registry = newRegistry();
    const body = await imageManifest(registry, 'app');
    const document = JSON.parse(body.toString()) as Record<string, unknown>;
    await rejectsWith(registry.putManifest('app', 'v1', body, MediaType.ociIndex), 'MANIFEST_INVALID', 400);
    await rejectsWith(registry.putManifest('app', 'v1', body, MediaType.dockerManifest), 'MANIFEST_INVALID');
    // Parameters are ignored; uninformative types defer to the body.
    await registry.putManifest('app', 'v1', body, `${MediaType.ociManifest}; charset=utf-8`);
    await registry.putManifest('app', 'v1', body, 'application/json');
    await registry.putManifest('app', 'v1', body);

    const withoutType = Buffer.from(JSON.stringify({ ...document, mediaType: undefined }));
    assert.equal(
      (await registry.putManifest('app', 'bare', withoutType, MediaType.ociManifest)).mediaType,
      MediaType.ociManifest,
    );
    assert.equal((await registry.getManifest('app', 'bare')).mediaType, MediaType.ociManifest);
    await rejectsWith(
      registry.putManifest('app', 'bare', withoutType, MediaType.dockerManifest),
      'MANIFEST_INVALID',
    );
    await rejectsWith(
      registry.putManifest('app', 'bare', withoutType, 'application/vnd.example+json'),
      'MANIFEST_INVALID',
    );

    const artifact = Buffer.from(
      JSON.stringify({ mediaType: 'application/vnd.example.thing.v1+json', anything: 1 }),
    );
    const stored = await registry.putManifest(
      'app',
      'thing',
      artifact,
      'application/vnd.example.thing.v1+json',
    );
    assert.equal(
      (await registry.getManifest('app', stored.digest)).mediaType,
      'application/vnd.example.thing.v1+json',
    );
  });

  it('rejects malformed manifests with MANIFEST_INVALID', async () => {
    const registry = newRegistry({ maxManifestBytes: 1024 });
    const cases: [string, string | undefined][] = [
      ['blablabla', MediaType.ociManifest],
      ['[1,2]', undefined],
      ['{"no":"shape"}', undefined],
      ['{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}', undefined],
      ['{"schemaVersion":2}', 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
      [`{"schemaVersion":3,"mediaType":"${MediaType.ociManifest}","config":{},"layers":[]}`, undefined],
      [`{"schemaVersion":2,"mediaType":"${MediaType.ociManifest}","layers":[]}`, undefined],
      [
        `{"schemaVersion":2,"mediaType":"${MediaType.dockerManifest}","config":{"digest":"sha256:x"},"layers":[]}`,
        undefined,
      ],
      [`{"schemaVersion":2,"mediaType":"${MediaType.ociIndex}","manifests":{}}`, undefined],
      [`{"schemaVersion":2,"mediaType":"${MediaType.ociIndex}","manifests":[{"digest":"nope"}]}`, undefined],
    ];
    for (const [body, contentType] of cases) {
      await rejectsWith(
        registry.putManifest('app', 'v1', Buffer.from(body), contentType),
        'MANIFEST_INVALID',
        400,
      );
    }
    await rejectsWith(registry.putManifest('app', 'v1', Buffer.alloc(1025, 0x20)), 'MANIFEST_INVALID', 413);
  });

  it('deletes by digest with its tags and referrer record, by tag only the tag', async () => {
    const registry = newRegistry();
    const body = await imageManifest(registry, 'app');
    const { digest } = await registry.putManifest('app', 'v1', body);
    await registry.putManifest('app', 'v1.0', body);
    await registry.putManifest('app', 'latest', body);
    const other = await imageManifest(registry, 'app', {}, 'other');
    await registry.putManifest('app', 'other', other);

    await registry.deleteManifest('app', 'latest');
    await rejectsWith(registry.getManifest('app', 'latest'), 'MANIFEST_UNKNOWN');
    assert.equal((await registry.getManifest('app', digest)).digest, digest);
    await rejectsWith(registry.deleteManifest('app', 'latest'), 'MANIFEST_UNKNOWN', 404);

    await registry.deleteManifest('app', digest);
    await rejectsWith(registry.getManifest('app', digest), 'MANIFEST_UNKNOWN');
    await rejectsWith(registry.getManifest('app', 'v1'), 'MANIFEST_UNKNOWN');
    assert.deepEqual((await registry.listTags('app')).entries, ['other']);
    await rejectsWith(registry.deleteManifest('app', digest), 'MANIFEST_UNKNOWN', 404);
    await rejectsWith(registry.deleteManifest('app', 'bad:tag'), 'MANIFEST_UNKNOWN', 404);

    const locked = new Registry({ driver: registry.driver, deleteEnabled: false });
    await rejectsWith(locked.deleteManifest('app', 'other'), 'UNSUPPORTED', 405);
  });

  it('serves a manifest GET from the cache without reading its body again', async () => {
    const { driver, calls } = recordingDriver();
    const registry = new Registry({ driver });
    const body = await imageManifest(registry, 'app');
    const { digest } = await registry.putManifest('app', 'v1', body);
    const cold = new Registry({ driver });
    await cold.getManifest('app', 'v1');
    calls.length = 0;
    await cold.getManifest('app', 'v1');
    await cold.getManifest('app', digest);
    assert.deepEqual(calls, [
      ['getContent', StoragePaths.tagLink('app', 'v1')],
      ['stat', StoragePaths.manifestRevisionLink('app', digest)],
    ]);
  });

  it('keeps serving correctly when the cache is too small to hold anything', async () => {
    const registry = newRegistry({ manifestCacheBytes: 0 });
    const body = await imageManifest(registry, 'app');
    await registry.putManifest('app', 'v1', body);
    assert.deepEqual((await registry.getManifest('app', 'v1')).body, body);
  });
});

describe('Registry: referrers', () => {
  it('lists manifests whose subject is a digest, with artifactType and annotations, filterable', async () => {
    const registry = newRegistry();
    const subjectBody = await imageManifest(registry, 'app');
    const subject = descriptor(MediaType.ociManifest, subjectBody);
    const empty = await pushBlob(registry, 'app', '{}');
    const sbom = await pushBlob(registry, 'app', 'sbom bytes');
    const artifact = (artifactType: string | undefined, configType: string, note: string): Buffer =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          ...(artifactType !== undefined ? { artifactType } : {}),
          config: { mediaType: configType, digest: empty, size: 2 },
          layers: [{ mediaType: 'application/octet-stream', digest: sbom, size: 10 }],
          subject,
          annotations: { note },
        }),
      );
    // Referrers may arrive before their subject.
    const first = artifact('application/vnd.example.sbom', MediaType.ociEmpty, 'first');
    const put = await registry.putManifest('app', digestOf(first), first);
    assert.equal(put.subject, subject.digest);
    await registry.putManifest('app', 'v1', subjectBody);
    const second = artifact(undefined, 'application/vnd.example.signature', 'second');
    await registry.putManifest('app', digestOf(second), second);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [descriptor(MediaType.ociManifest, first)],
        subject,
      }),
    );
    await registry.putManifest('app', digestOf(index), index);

    const all = await registry.referrers('app', subject.digest);
    assert.equal(all.length, 3);
    const byDigest = new Map(all.map((entry) => [entry.digest, entry]));
    assert.deepEqual(byDigest.get(digestOf(first)), {
      mediaType: MediaType.ociManifest,
      digest: digestOf(first),
      size: first.length,
      artifactType: 'application/vnd.example.sbom',
      annotations: { note: 'first' },
    });
    // Without artifactType, a manifest's config media type stands in; an index has none.
    assert.equal(byDigest.get(digestOf(second))?.artifactType, 'application/vnd.example.signature');
    assert.equal(byDigest.get(digestOf(index))?.artifactType, undefined);
    assert.equal(byDigest.get(digestOf(index))?.mediaType, MediaType.ociIndex);

    const filtered = await registry.referrers('app', subject.digest, 'application/vnd.example.signature');
    assert.deepEqual(
      filtered.map((entry) => entry.digest),
      [digestOf(second)],
    );
    assert.deepEqual(await registry.referrers('app', digestOf('nothing refers to this')), []);
    assert.deepEqual(await registry.referrers('no-such-repo', subject.digest), []);

    // A deleted referrer leaves the list.
    await registry.deleteManifest('app', digestOf(second));
    assert.equal((await registry.referrers('app', subject.digest)).length, 2);
  });
});

describe('Registry: listings', () => {
  it('lists tags in order with n/last pagination, and NAME_UNKNOWN for a missing repository', async () => {
    const registry = newRegistry();
    const body = await imageManifest(registry, 'app');
    for (const tag of ['b', 'a', 'C', 'latest', '1.0', 'a_b']) await registry.putManifest('app', tag, body);
    assert.deepEqual((await registry.listTags('app')).entries, ['1.0', 'C', 'a', 'a_b', 'b', 'latest']);
    assert.deepEqual(await registry.listTags('app', { limit: 2 }), { entries: ['1.0', 'C'], more: true });
    assert.deepEqual(await registry.listTags('app', { limit: 2, last: 'C' }), {
      entries: ['a', 'a_b'],
      more: true,
    });
    assert.deepEqual(await registry.listTags('app', { limit: 10, last: 'a_b' }), {
      entries: ['b', 'latest'],
      more: false,
    });
    assert.deepEqual(await registry.listTags('app', { last: 'latest' }), { entries: [], more: false });
    assert.deepEqual(await registry.listTags('app', { limit: 0 }), { entries: [], more: false });
    // `last` need not be an existing tag.
    assert.deepEqual((await registry.listTags('app', { last: 'a0' })).entries, ['a_b', 'b', 'latest']);
    await rejectsWith(registry.listTags('nothing/here'), 'NAME_UNKNOWN', 404);
    // A repository whose tags are all gone still exists.
    const blobOnly = newRegistry();
    await pushBlob(blobOnly, 'blobs/only', 'x');
    assert.deepEqual((await blobOnly.listTags('blobs/only')).entries, []);
  });

  it('lists repositories from the storage tree, nested names included, with pagination', async () => {
    const registry = newRegistry();
    for (const name of ['b', 'a/b/c', 'a', 'a-c', 'a/b', 'z/y']) await pushBlob(registry, name, name);
    // An upload alone does not make a repository appear.
    await registry.startUpload('pending/only');
    assert.deepEqual((await registry.catalog()).entries, ['a', 'a-c', 'a/b', 'a/b/c', 'b', 'z/y']);
    assert.deepEqual(await registry.catalog({ limit: 2 }), { entries: ['a', 'a-c'], more: true });
    assert.deepEqual(await registry.catalog({ limit: 3, last: 'a-c' }), {
      entries: ['a/b', 'a/b/c', 'b'],
      more: true,
    });
    assert.deepEqual(await registry.catalog({ limit: 3, last: 'b' }), { entries: ['z/y'], more: false });
  });
});
