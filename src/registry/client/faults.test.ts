import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../store/index.js';
import { withTempDir } from '../../store/testing/helpers.js';
import { isStrataError } from '../../errors.js';
import { pullImage, type PullOptions } from './pull.js';
import { pushImage } from './push.js';
import { RegistryError } from './errors.js';
import { FakeRegistry, addImage, error, withFakeRegistry } from './testing/fake-registry.js';

const fast: PullOptions = { retryDelayMs: 5, dockerConfigDir: '/nonexistent-docker-config' };

async function ingestLeftovers(store: Store): Promise<string[]> {
  return (await readdir(store.layout.ingest)).filter((name) => !name.endsWith('.lock'));
}

/** Answers the first `times` GETs of `digest`'s blob with half the bytes, then drops the socket. */
function dropMidBlob(registry: FakeRegistry, digest: string, data: Buffer, times: number): void {
  let dropped = 0;
  registry.faults.push((req, res, path) => {
    if (req.method !== 'GET' || !path.endsWith(`/blobs/${digest}`) || dropped >= times) return false;
    dropped++;
    res.writeHead(200, { 'content-length': data.length });
    res.write(data.subarray(0, data.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
    return true;
  });
}

describe('registry client faults', () => {
  test('a connection dropped mid-blob resumes with a Range request', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer } = addImage(registry, { tag: 'latest', layerBytes: 300_000 });
      dropMidBlob(registry, layer.digest, layer.data, 1);
      const image = await pullImage(store, `${registry.host}/app:latest`, fast);
      assert.equal(image.manifest.layers[0]?.digest, layer.digest);
      assert.equal((await store.content.readBytes(layer.digest, 1e6)).equals(layer.data), true);
      const gets = registry.matching(new RegExp(`/blobs/${layer.digest}$`), 'GET');
      assert.equal(gets.length, 2);
      assert.match(
        String(gets[1]?.headers.range),
        /^bytes=[1-9]\d*-$/,
        'the retry asks only for the missing tail',
      );
      assert.deepEqual(await ingestLeftovers(store), []);
    }));

  test('an interrupted pull resumes on the next run; nothing partial is visible meanwhile', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer } = addImage(registry, { tag: 'v1', layerBytes: 400_000 });
      dropMidBlob(registry, layer.digest, layer.data, 100);
      await assert.rejects(
        pullImage(store, `${registry.host}/app:v1`, { ...fast, retries: 1 }),
        (err: unknown) => {
          assert.ok(isStrataError(err));
          assert.doesNotMatch(err.message, /\n/);
          return true;
        },
      );
      assert.equal(await store.content.has(layer.digest), false, 'no partial blob in the store');
      assert.equal(await store.images.get(`${registry.host}/app:v1`), undefined, 'no name for a failed pull');
      assert.equal((await ingestLeftovers(store)).length, 1, 'the partial download is kept in ingest/');
      registry.faults.length = 0;
      const image = await pullImage(store, `${registry.host}/app:v1`, fast);
      assert.equal(image.names[0], `${registry.host}/app:v1`);
      const last = registry.matching(new RegExp(`/blobs/${layer.digest}$`), 'GET').at(-1);
      assert.match(
        String(last?.headers.range),
        /^bytes=[1-9]\d*-$/,
        'the second run continued from the partial',
      );
      assert.equal((await store.content.readBytes(layer.digest, 1e6)).equals(layer.data), true);
      assert.deepEqual(await ingestLeftovers(store), []);
    }));

  test('500 twice then 200 is retried and succeeds', () =>
    withFakeRegistry(async (registry, store) => {
      addImage(registry, { tag: 'latest' });
      let failures = 0;
      registry.faults.push((req, res, path) => {
        if (!path.endsWith('/manifests/latest') || failures >= 2) return false;
        failures++;
        error(res, 500, 'UNKNOWN', 'storage backend hiccup');
        return true;
      });
      await pullImage(store, `${registry.host}/app`, fast);
      assert.equal(registry.matching(/\/manifests\/latest$/).length, 3);
    }));

  test('5xx retries are bounded and the error shows the registry message', () =>
    withFakeRegistry(async (registry, store) => {
      registry.faults.push((_req, res, path) => {
        if (!path.includes('/manifests/')) return false;
        error(res, 503, 'UNAVAILABLE', 'down for maintenance');
        return true;
      });
      await assert.rejects(
        pullImage(store, `${registry.host}/app`, { ...fast, retries: 2 }),
        /down for maintenance \(HTTP 503, UNAVAILABLE\)/,
      );
      assert.equal(registry.matching(/\/manifests\//).length, 3);
    }));

  test('a blob with the wrong content fails clearly and leaves the store clean', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer } = addImage(registry, { tag: 'latest' });
      registry.blobs.set(layer.digest, Buffer.from(layer.data).fill(1, 0, 10));
      await assert.rejects(pullImage(store, `${registry.host}/app`, fast), (err: unknown) => {
        assert.ok(isStrataError(err, 'DIGEST_MISMATCH'));
        assert.match(
          err.message,
          new RegExp(`blob ${layer.digest} from ${registry.host}/app: digest mismatch`),
        );
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.equal(await store.content.has(layer.digest), false);
      assert.deepEqual(await ingestLeftovers(store), []);
      assert.deepEqual(await store.images.list(), []);
      assert.equal(
        registry.matching(new RegExp(`/blobs/${layer.digest}$`), 'GET').length,
        1,
        'wrong content is not retried',
      );
    }));

  test('a bad config fails the pull with its own error while the layers download beside it', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer, config } = addImage(registry, { tag: 'latest', layerBytes: 2_000_000 });
      // Same length, other bytes: a complete transfer whose digest is wrong, sent once the layer
      // has been asked for (which, pulled one after the other, it never would be).
      const bad = Buffer.from(registry.blobs.get(config.digest)!).fill(0x20, 1, 5);
      let layerAskedFirst = false;
      registry.faults.push((req, res, path) => {
        if (req.method !== 'GET' || !path.endsWith(`/blobs/${config.digest}`)) return false;
        const giveUp = Date.now() + 3000;
        const answer = (): void => {
          layerAskedFirst = registry.matching(new RegExp(`/blobs/${layer.digest}$`), 'GET').length > 0;
          if (!layerAskedFirst && Date.now() < giveUp) {
            setTimeout(answer, 5);
            return;
          }
          res.writeHead(200, { 'content-length': bad.length });
          res.end(bad);
        };
        answer();
        return true;
      });
      await assert.rejects(pullImage(store, `${registry.host}/app`, fast), (err: unknown) => {
        assert.ok(isStrataError(err, 'DIGEST_MISMATCH'), String(err));
        assert.match(err.message, new RegExp(`blob ${config.digest} from ${registry.host}/app`));
        return true;
      });
      assert.ok(layerAskedFirst, 'the layer waited for the config');
      // Nothing is named, nothing half-written stays.
      assert.equal(await store.content.has(config.digest), false);
      assert.deepEqual(await ingestLeftovers(store), []);
      assert.deepEqual(await store.images.list(), []);
    }));

  test('a manifest that does not match its digest is refused', () =>
    withFakeRegistry(async (registry, store) => {
      const { manifest } = addImage(registry, { tag: 'latest' });
      registry.manifests.set(manifest.digest, {
        bytes: Buffer.from('{"schemaVersion":2}'),
        mediaType: manifest.mediaType,
      });
      await assert.rejects(
        pullImage(store, `${registry.host}/app@${manifest.digest}`, fast),
        /DIGEST|digest/,
      );
    }));

  test('401 shows the registry error body and how to log in', () =>
    withFakeRegistry(async (registry, store) => {
      registry.faults.push((_req, res) => {
        error(res, 401, 'UNAUTHORIZED', 'authentication required');
        return true;
      });
      await assert.rejects(pullImage(store, `${registry.host}/private/app`, fast), (err: unknown) => {
        assert.ok(err instanceof RegistryError);
        assert.equal(err.status, 401);
        assert.equal(
          err.message,
          `manifest ${registry.host}/private/app:latest: authentication required (HTTP 401, UNAUTHORIZED); log in with strata login ${registry.host}`,
        );
        return true;
      });
    }));

  test('403 and 404 are one-line errors with the registry message', () =>
    withFakeRegistry(async (registry, store) => {
      registry.faults.push((_req, res, path) => {
        if (!path.includes('/denied/')) return false;
        error(res, 403, 'DENIED', 'requested access to the resource is denied');
        return true;
      });
      await assert.rejects(
        pullImage(store, `${registry.host}/denied/app`, fast),
        /requested access to the resource is denied \(HTTP 403, DENIED\)/,
      );
      await assert.rejects(pullImage(store, `${registry.host}/missing:1`, fast), (err: unknown) => {
        assert.ok(isStrataError(err, 'NOT_FOUND'));
        assert.equal(
          err.message,
          `manifest ${registry.host}/missing:1: manifest unknown (HTTP 404, MANIFEST_UNKNOWN)`,
        );
        return true;
      });
    }));

  test('429 is reported with the registry message, without hammering the registry', () =>
    withFakeRegistry(async (registry, store) => {
      registry.faults.push((_req, res, path) => {
        if (!path.includes('/manifests/')) return false;
        error(res, 429, 'TOOMANYREQUESTS', 'You have reached your pull rate limit.', {
          'retry-after': '3600',
        });
        return true;
      });
      await assert.rejects(
        pullImage(store, `${registry.host}/app`, fast),
        /You have reached your pull rate limit\. \(HTTP 429, TOOMANYREQUESTS\)/,
      );
      assert.equal(registry.matching(/\/manifests\//).length, 1);
    }));

  test('a 429 with a short Retry-After is waited out', () =>
    withFakeRegistry(async (registry, store) => {
      addImage(registry, { tag: 'latest' });
      let limited = false;
      registry.faults.push((_req, res, path) => {
        if (!path.includes('/manifests/') || limited) return false;
        limited = true;
        error(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '0' });
        return true;
      });
      await pullImage(store, `${registry.host}/app`, fast);
      assert.equal(registry.matching(/\/manifests\//).length, 2);
    }));

  test('a stalled body times out and is retried', () =>
    withFakeRegistry(async (registry, store) => {
      const { layer } = addImage(registry, { tag: 'latest' });
      let stalled = false;
      registry.faults.push((req, res, path) => {
        if (req.method !== 'GET' || !path.endsWith(`/blobs/${layer.digest}`) || stalled) return false;
        stalled = true;
        res.writeHead(200, { 'content-length': layer.size });
        res.write(layer.data.subarray(0, 1000)); // and then nothing
        return true;
      });
      await pullImage(store, `${registry.host}/app`, { ...fast, timeouts: { bodyMs: 300 } });
      assert.equal(await store.content.has(layer.digest), true);
    }));

  test('an unreachable registry is one clear line after bounded retries', () =>
    withTempDir(async (dir) => {
      const store = await Store.open(join(dir, 'store'));
      await assert.rejects(pullImage(store, '127.0.0.1:1/app', { ...fast, retries: 1 }), (err: unknown) => {
        assert.ok(isStrataError(err));
        assert.match(err.message, /cannot reach 127\.0\.0\.1:1/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
    }));

  test('a failed upload is restarted in a fresh session', () =>
    withFakeRegistry(async (registry, store) => {
      addImage(registry, { tag: 'src' });
      await pullImage(store, `${registry.host}/app:src`, fast);
      await store.images.set(
        `${registry.host}/other:1`,
        (await store.images.get(`${registry.host}/app:src`))!.target,
      );
      registry.blobs.clear();
      let failedPut = false;
      registry.faults.push((req, res, path) => {
        if (req.method !== 'PUT' || !path.includes('/uploads/') || failedPut) return false;
        failedPut = true;
        req.resume();
        error(res, 500, 'UNKNOWN', 'disk full, briefly');
        return true;
      });
      await pushImage(store, `${registry.host}/other:1`, { ...fast, mountFrom: [] });
      assert.ok(failedPut);
      assert.equal(registry.blobs.size, 2, 'config and layer arrived');
    }));
});
