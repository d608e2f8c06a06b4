import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { deflateEngine } from '../../archive/deflate-engine.js';
import { createTarFromDirectory } from '../../archive/tar-writer.js';
import { importImage } from '../../image/import.js';
import { MediaType } from '../../oci/mediatypes.js';
import type { Descriptor, ImageManifest } from '../../oci/types.js';
import { parseImageManifest } from '../../oci/validate.js';
import { Store } from '../../store/index.js';
import { isStrataError } from '../../errors.js';
import { pullAllTags, pullImage } from './pull.js';
import { defaultPushGzipLevel, pushImage } from './push.js';
import type { TransferEvent } from './progress.js';
import { linkedAbort } from './transfer.js';
import { addImage, error, withFakeRegistry } from './testing/fake-registry.js';

const options = { dockerConfigDir: '/nonexistent-docker-config', retryDelayMs: 5 };

/**
 * A one-layer image with an uncompressed layer, as `strata build` and `import` store them: what
 * `name` points at, and its manifest.
 */
async function importRandomImage(
  store: Store,
  dir: string,
  name: string,
): Promise<{ target: Descriptor; manifest: ImageManifest }> {
  const tree = join(dir, 'tree');
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, 'data.bin'), randomBytes(300_000));
  await writeFile(join(tree, 'text.txt'), 'hello\n'.repeat(50_000));
  await importImage(store, createTarFromDirectory(tree), { reference: name });
  const target = (await store.images.get(name))!.target;
  return { target, manifest: parseImageManifest(await store.content.readBytes(target.digest, 1e6)) };
}

describe('pull', () => {
  test('picks the requested platform from an index and names the index', () =>
    withFakeRegistry(async (registry, store) => {
      const amd = addImage(registry, { platform: { os: 'linux', architecture: 'amd64' } });
      const arm = addImage(registry, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      const index = registry.addManifest(
        {
          schemaVersion: 2,
          mediaType: MediaType.ociIndex,
          manifests: [
            {
              mediaType: MediaType.ociManifest,
              digest: amd.manifest.digest,
              size: amd.manifest.size,
              platform: { os: 'linux', architecture: 'amd64' },
            },
            {
              mediaType: MediaType.ociManifest,
              digest: arm.manifest.digest,
              size: arm.manifest.size,
              platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
            },
          ],
        },
        MediaType.ociIndex,
        'multi',
      );
      const image = await pullImage(store, `${registry.host}/app:multi`, {
        ...options,
        platform: { os: 'linux', architecture: 'arm64' },
      });
      assert.equal(image.target.digest, index.digest);
      assert.equal(image.manifestDescriptor.digest, arm.manifest.digest);
      assert.equal(image.config.architecture, 'arm64');
      assert.equal(image.id, index.digest, 'a multi-platform image is known by its index digest');
      assert.equal(await store.content.has(amd.layer.digest), false, 'other platforms are not downloaded');
      await assert.rejects(
        pullImage(store, `${registry.host}/app:multi`, {
          ...options,
          platform: { os: 'linux', architecture: 's390x' },
        }),
        (err: unknown) =>
          isStrataError(err, 'NOT_FOUND') &&
          /no matching manifest for linux\/s390x .*linux\/amd64, linux\/arm64\/v8/.test(err.message),
      );
    }));

  test('by digest, the name carries the digest; --all-tags pulls every tag', () =>
    withFakeRegistry(async (registry, store) => {
      const one = addImage(registry, { tag: 'one' });
      addImage(registry, { tag: 'two' });
      const image = await pullImage(store, `${registry.host}/app@${one.manifest.digest}`, options);
      assert.deepEqual(image.names, [`${registry.host}/app@${one.manifest.digest}`]);
      const all = await pullAllTags(store, `${registry.host}/app`, options);
      assert.deepEqual(
        all.map((pulled) => pulled.name),
        [`${registry.host}/app:one`, `${registry.host}/app:two`],
      );
    }));

  test('layers already in the store are not downloaded again', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer } = addImage(registry, { tag: 'latest' });
      await pullImage(store, `${registry.host}/app`, options);
      const events: TransferEvent[] = [];
      await pullImage(store, `${registry.host}/app`, { ...options, progress: (e) => events.push(e) });
      assert.equal(registry.matching(new RegExp(`/blobs/${layer.digest}$`), 'GET').length, 1);
      assert.ok(events.some((e) => e.type === 'blob' && e.digest === layer.digest && e.status === 'exists'));
    }));
});

describe('push', () => {
  test('uncompressed layers go out gzip-compressed; the mapping makes the next push a HEAD hit', () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/built:1`;
      const { manifest: local } = await importRandomImage(store, dir, name);
      const diffId = local.layers[0]!.digest;
      assert.equal(local.layers[0]?.mediaType, MediaType.ociLayer);

      const result = await pushImage(store, name, options);
      const pushed = parseImageManifest(registry.manifests.get('1')!.bytes);
      assert.equal(pushed.layers[0]?.mediaType, MediaType.ociLayerGzip);
      assert.notEqual(pushed.layers[0]?.digest, diffId);
      assert.equal(
        pushed.config.digest,
        local.config.digest,
        'the config (and so the image ID) is unchanged',
      );
      assert.equal(
        (
          await readFile(
            join(store.root, 'cache', 'compressed', `${diffId.slice(7)}.gzip-${defaultPushGzipLevel()}`),
            'utf8',
          )
        ).trim(),
        pushed.layers[0]?.digest,
      );
      assert.equal(
        (await store.images.get(name))?.target.digest,
        result.digest,
        'the name points at what was pushed',
      );

      // GC keeps the compressed blob and the rewritten manifest: the name references them.
      await store.collectGarbage();
      assert.equal(await store.content.has(pushed.layers[0]!.digest), true);
      assert.equal(await store.content.has(result.digest), true);

      const uploadsBefore = registry.matching(/\/blobs\/uploads\//).length;
      const again = await pushImage(store, name, options);
      assert.equal(again.digest, result.digest);
      assert.equal(
        registry.matching(/\/blobs\/uploads\//).length,
        uploadsBefore,
        'nothing uploaded the second time',
      );

      const other = await Store.open(join(dir, 'other'));
      const pulled = await pullImage(other, name, options);
      assert.equal(pulled.id, local.config.digest);
    }));

  test('a second image with the same layer reuses the remembered compressed blob', () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/built:1`;
      await importRandomImage(store, dir, name);
      await pushImage(store, name, options);
      const target = (await store.images.get(name))!.target;
      // The same content under a fresh name pointing at the original, uncompressed manifest.
      await store.images.set(`${registry.host}/again:1`, target);
      const events: TransferEvent[] = [];
      await pushImage(store, `${registry.host}/again:1`, { ...options, progress: (e) => events.push(e) });
      assert.ok(!events.some((e) => e.type === 'blob' && e.status === 'compressing'));
    }));

  test('layers start compressing while the registry handshake is still under way', () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/early:1`;
      await importRandomImage(store, dir, name);
      let answeredAt: number | undefined;
      registry.faults.push((req, res, path) => {
        if (req.method !== 'GET' || path !== '/v2/' || answeredAt !== undefined) return false;
        setTimeout(() => {
          answeredAt = performance.now();
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        }, 300);
        return true;
      });
      let compressingAt: number | undefined;
      await pushImage(store, name, {
        ...options,
        progress: (event) => {
          if (event.type === 'blob' && event.status === 'compressing') compressingAt ??= performance.now();
        },
      });
      assert.ok(compressingAt !== undefined && answeredAt !== undefined);
      assert.ok(compressingAt < answeredAt, 'the layer waited for the registry to answer /v2/');
      assert.equal(registry.manifests.has('1'), true, 'the push completed');
    }));

  test('a handshake refused by the registry is the error reported; no blob goes out, nothing partial stays', () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/refused:1`;
      await importRandomImage(store, dir, name);
      registry.faults.push((_req, res, path) => {
        if (path !== '/v2/') return false;
        error(res, 403, 'DENIED', 'no pushes today');
        return true;
      });
      await assert.rejects(pushImage(store, name, options), (err: unknown) => {
        assert.ok(isStrataError(err));
        assert.match(err.message, /no pushes today \(HTTP 403, DENIED\)/);
        return true;
      });
      assert.equal(registry.matching(/\/blobs\//).length, 0, 'no blob request went out');
      assert.deepEqual(
        (await readdir(store.layout.ingest)).filter((entry) => !entry.endsWith('.lock')),
        [],
        'no partial blob left behind',
      );
    }));

  test("the gzip level is the engine's default unless asked; each level is compressed and remembered on its own", () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/levels:1`;
      const { target: original, manifest: local } = await importRandomImage(store, dir, name);
      const layerBytes = await store.content.readBytes(local.layers[0]!.digest, 1e7);
      const pushedLayer = async (level: number | undefined): Promise<Buffer> => {
        await store.images.set(name, original);
        await pushImage(store, name, { ...options, compressionLevel: level });
        const pushed = parseImageManifest(registry.manifests.get('1')!.bytes);
        return store.content.readBytes(pushed.layers[0]!.digest, 1e7);
      };
      const byDefault = await pushedLayer(undefined);
      const chosen = await pushedLayer(defaultPushGzipLevel());
      const four = await pushedLayer(4);
      const one = await pushedLayer(1);
      const nine = await pushedLayer(9);
      assert.ok(byDefault.equals(chosen), `the default is level ${defaultPushGzipLevel()}`);
      assert.equal(defaultPushGzipLevel(), deflateEngine() === 'libdeflate' ? 2 : 4);
      assert.ok(!one.equals(nine), 'levels 1 and 9 give different blobs');
      for (const blob of [one, four, nine]) assert.ok(gunzipSync(blob).equals(layerBytes));
      // The gzip header says which kind of level made it (XFL: 4 fastest, 2 best, 0 other).
      assert.deepEqual([one[8], four[8], nine[8]], [4, 0, 2]);
      const events: TransferEvent[] = [];
      await store.images.set(name, original);
      await pushImage(store, name, { ...options, compressionLevel: 1, progress: (e) => events.push(e) });
      assert.ok(
        !events.some((e) => e.type === 'blob' && e.status === 'compressing'),
        'level 1 is remembered',
      );
      await assert.rejects(pushImage(store, name, { ...options, compressionLevel: 10 }), (err: unknown) => {
        assert.ok(isStrataError(err, 'INVALID_ARGUMENT'));
        assert.match(err.message, /--compression-level for gzip must be an integer 0–9, not 10/);
        return true;
      });
    }));

  test('chunked uploads PATCH the blob in pieces', () =>
    withFakeRegistry(async (registry, store, dir) => {
      const name = `${registry.host}/chunked:1`;
      await importRandomImage(store, dir, name);
      await pushImage(store, name, { ...options, chunkSize: 64 * 1024 });
      const patches = registry.matching(/\/blobs\/uploads\//, 'PATCH');
      assert.ok(patches.length >= 4, `${patches.length} PATCH requests`);
      assert.match(String(patches[1]?.headers['content-range']), /^65536-131071$/);
      const other = await Store.open(join(dir, 'other'));
      await pullImage(other, name, options);
    }));

  test('pushing a name that is not in the store says so', () =>
    withFakeRegistry(async (registry, store) => {
      await assert.rejects(
        pushImage(store, `${registry.host}/nothing:1`, options),
        /An image does not exist locally with the tag: 127\.0\.0\.1:\d+\/nothing:1/,
      );
    }));
});

test('a transfer signal takes a listener per concurrent request without a leak warning', async () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    warnings.push(warning);
  };
  process.on('warning', onWarning);
  try {
    const abort = linkedAbort(new AbortController().signal);
    for (let i = 0; i < 32; i++) abort.signal.addEventListener('abort', () => undefined);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
      [],
    );
  } finally {
    process.off('warning', onWarning);
  }
});
