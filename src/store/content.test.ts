import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import fc from 'fast-check';
import { digestOf, type Digest } from '../oci/digest.js';
import { isStrataError } from '../errors.js';
import { ContentStore } from './content.js';
import { openThreadedDigest, prestartDigestThread, terminateDigestThread } from './digest-thread.js';
import { deadPid, exitCode, spawnFixture, withTempDir } from './testing/helpers.js';

async function blobs(content: ContentStore): Promise<Digest[]> {
  const found: Digest[] = [];
  for await (const blob of content.list()) found.push(blob.digest);
  return found;
}

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

describe('ContentStore', () => {
  test('stores, verifies and reads back a blob', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const digest = digestOf('hello world');
      const stored = await content.ingest(chunks('hello ', 'world'), { digest, size: 11 });
      assert.deepEqual(stored, { digest, size: 11, created: true });
      assert.equal(await content.has(digest), true);
      assert.deepEqual(await content.info(digest), { digest, size: 11 });
      assert.equal((await content.readBytes(digest, 100)).toString(), 'hello world');
      assert.equal(await text(content.openRead(digest)), 'hello world');
      assert.equal(await text(content.openRead(digest, { start: 6, end: 8 })), 'wor');
      assert.equal(content.blobPath(digest), join(root, 'blobs', 'sha256', digest.slice(7)));
      assert.equal((await stat(content.blobPath(digest))).mode & 0o777, 0o444, 'blobs are read-only');
      assert.deepEqual(await blobs(content), [digest]);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('a digest or size mismatch stores nothing and leaves no temp', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const wrong = digestOf('something else');
      await assert.rejects(content.putBytes(Buffer.from('data'), { digest: wrong }), (err) =>
        isStrataError(err, 'DIGEST_MISMATCH'),
      );
      await assert.rejects(content.putBytes(Buffer.from('data'), { size: 5 }), (err) =>
        isStrataError(err, 'DIGEST_MISMATCH'),
      );
      assert.equal(await content.has(wrong), false);
      assert.deepEqual(await blobs(content), []);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('content larger than expected fails as soon as it arrives, without reading the rest', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      let produced = 0;
      let closed = false;
      async function* endless(): AsyncIterable<Uint8Array> {
        try {
          for (;;) {
            produced++;
            yield Buffer.alloc(1024);
          }
        } finally {
          closed = true;
        }
      }
      await assert.rejects(content.ingest(endless(), { size: 3000 }), (err) =>
        isStrataError(err, 'DIGEST_MISMATCH'),
      );
      assert.equal(produced, 3);
      assert.equal(closed, true, 'the source is closed');
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('a stream that errors midway leaves no blob and no temp', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      async function* failing(): AsyncIterable<Uint8Array> {
        yield Buffer.alloc(100_000, 1);
        throw new Error('connection reset');
      }
      await assert.rejects(content.ingest(failing()), /connection reset/);
      const readable = new Readable({ read() {} });
      readable.push(Buffer.alloc(10));
      setImmediate(() => readable.destroy(new Error('socket hang up')));
      await assert.rejects(content.ingest(readable), /socket hang up/);
      assert.deepEqual(await blobs(content), []);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('20 concurrent ingests of one blob all succeed with one blob', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const data = Buffer.alloc(256 * 1024, 7);
      const digest = digestOf(data);
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          content.ingest(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), { digest }),
        ),
      );
      for (const result of results)
        assert.deepEqual({ digest: result.digest, size: result.size }, { digest, size: data.length });
      assert.ok(
        results.some((result) => result.created === true),
        'one writer created the blob',
      );
      assert.deepEqual(await blobs(content), [digest]);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
      assert.deepEqual(await readFile(content.blobPath(digest)), data);
    }));

  test('readBytes refuses large blobs and detects a corrupt file; openRead of a missing blob throws NOT_FOUND', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const { digest } = await content.putBytes(Buffer.alloc(100));
      await assert.rejects(content.readBytes(digest, 10), (err) => isStrataError(err, 'INVALID_ARGUMENT'));
      assert.throws(
        () => content.openRead(digestOf('missing')),
        (err) => isStrataError(err, 'NOT_FOUND'),
      );
      await assert.rejects(content.readBytes(digestOf('missing'), 10), (err) =>
        isStrataError(err, 'NOT_FOUND'),
      );
      await chmod(content.blobPath(digest), 0o644);
      await writeFile(content.blobPath(digest), Buffer.alloc(100, 1));
      await assert.rejects(
        content.readBytes(digest, 1000),
        (err) => isStrataError(err, 'CORRUPT_STORE') && err.message.includes(content.blobPath(digest)),
      );
    }));

  test('a crafted digest cannot name a path outside the store', () => {
    const content = new ContentStore('/nonexistent');
    assert.throws(
      () => content.blobPath('sha256:../../etc/passwd' as Digest),
      (err) => isStrataError(err, 'INVALID_DIGEST'),
    );
  });

  test('delete and list', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const a = await content.putBytes(Buffer.from('a'));
      const b = await content.putBytes(Buffer.from('b'));
      assert.deepEqual(new Set(await blobs(content)), new Set([a.digest, b.digest]));
      assert.equal(await content.delete(a.digest), true);
      assert.equal(await content.delete(a.digest), false);
      assert.deepEqual(await blobs(content), [b.digest]);
    }));

  test('any chunking of any content stores the digest of the whole', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), async (parts) => {
          const whole = Buffer.concat(parts);
          const stored = await content.ingest(Readable.from(parts.map((part) => Buffer.from(part))));
          assert.deepEqual(
            { digest: stored.digest, size: stored.size },
            { digest: digestOf(whole), size: whole.length },
          );
          assert.deepEqual(await content.readBytes(stored.digest, 10_000), whole);
        }),
        { numRuns: 50 },
      );
    }));

  test('cleanIngest removes temps of dead processes and old partials, and keeps live work', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const ingest = join(root, 'ingest');
      await mkdir(ingest, { recursive: true });
      const dead = join(ingest, `${await deadPid()}-0123456789abcdef.tmp`);
      const live = join(ingest, `${process.pid}-0123456789abcdef.tmp`);
      const stuck = join(ingest, `${process.pid}-fedcba9876543210.tmp`);
      const oldPartial = join(ingest, `${'a'.repeat(64)}.partial`);
      const freshPartial = join(ingest, `${'b'.repeat(64)}.partial`);
      const foreign = join(ingest, 'README');
      for (const path of [dead, live, stuck, oldPartial, freshPartial, foreign]) await writeFile(path, 'xx');
      const past = new Date(Date.now() - 2 * 3600_000);
      await utimes(stuck, past, past);
      await utimes(oldPartial, past, past);

      const dry = await content.cleanIngest({ olderThanMs: 3600_000, dryRun: true });
      assert.deepEqual(dry, { removed: 3, bytes: 6 });
      assert.equal((await readdir(ingest)).length, 6, 'dry run removes nothing');
      assert.deepEqual(await content.cleanIngest({ olderThanMs: 3600_000 }), { removed: 3, bytes: 6 });
      assert.deepEqual(
        (await readdir(ingest)).sort(),
        [live, freshPartial, foreign].map((path) => path.slice(ingest.length + 1)).sort(),
      );
    }));
});

describe('resumable ingest', () => {
  const data = Buffer.from('0123456789'.repeat(1000));
  const digest = digestOf(data);
  const ref = 'docker.io/library/busybox@layer-1';

  /** A source that delivers bytes from `offset` and fails after `failAfter` of them. */
  function source(calls: number[], failAfter?: number) {
    return (offset: number) => {
      calls.push(offset);
      const rest = data.subarray(offset);
      return (async function* () {
        if (failAfter === undefined) {
          yield rest.subarray(0, 100);
          yield rest.subarray(100);
          return;
        }
        yield rest.subarray(0, failAfter);
        throw new Error('connection reset');
      })();
    };
  }

  test('continues from the kept prefix after a failure', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const calls: number[] = [];
      await assert.rejects(content.ingest(source(calls, 4000), { digest, ref }), /connection reset/);
      assert.equal(await content.has(digest), false);
      assert.equal(
        (await readdir(join(root, 'ingest'))).filter((name) => name.endsWith('.partial')).length,
        1,
      );
      const stored = await content.ingest(source(calls), { digest, size: data.length, ref });
      assert.deepEqual({ digest: stored.digest, size: stored.size }, { digest, size: data.length });
      assert.deepEqual(calls, [0, 4000]);
      assert.deepEqual(await readFile(content.blobPath(digest)), data);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('a corrupted prefix is caught by the final digest and dropped', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const calls: number[] = [];
      await assert.rejects(content.ingest(source(calls, 4000), { digest, ref }), /connection reset/);
      const [partial] = (await readdir(join(root, 'ingest'))).filter((name) => name.endsWith('.partial'));
      assert.ok(partial);
      await writeFile(join(root, 'ingest', partial), Buffer.alloc(4000, 0x41));
      await assert.rejects(content.ingest(source(calls), { digest, ref }), (err) =>
        isStrataError(err, 'DIGEST_MISMATCH'),
      );
      assert.deepEqual(await readdir(join(root, 'ingest')), [], 'the bad partial is gone');
      await content.ingest(source(calls), { digest, ref });
      assert.deepEqual(calls, [0, 4000, 0]);
      assert.deepEqual(await readFile(content.blobPath(digest)), data);
    }));

  test('a plain stream restarts from zero; a present blob is not fetched again', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const calls: number[] = [];
      await assert.rejects(content.ingest(source(calls, 4000), { digest, ref }), /connection reset/);
      assert.deepEqual(await content.ingest(Readable.from([data]), { digest, ref }), {
        digest,
        size: data.length,
        created: true,
      });
      await content.ingest(source(calls), { digest, ref });
      assert.deepEqual(calls, [0], 'the source function was not called for a present blob');
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('concurrent ingests of one ref both succeed', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      const calls: number[] = [];
      const results = await Promise.all([
        content.ingest(source(calls), { digest, ref }),
        content.ingest(source(calls), { digest, ref }),
      ]);
      assert.deepEqual(
        results.map(({ digest: d, size }) => ({ digest: d, size })),
        [
          { digest, size: data.length },
          { digest, size: data.length },
        ],
      );
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));
});

describe('large ingests', () => {
  /** Waits until the digest thread runs, so that ingests asking for it really use it. */
  async function threadRunning(): Promise<void> {
    prestartDigestThread();
    for (;;) {
      const probe = openThreadedDigest('sha256');
      if (probe !== undefined) {
        probe.abandon();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** `size` bytes in batches of pieces of odd sizes, as a download hands them over. */
  async function* batches(data: Buffer): AsyncIterable<Uint8Array[]> {
    let at = 0;
    for (let n = 0; at < data.length; n++) {
      const batch: Uint8Array[] = [];
      for (let i = 0; i < 1 + (n % 5) && at < data.length; i++) {
        const length = 1 + ((n * 7919 + i * 104729) % 200_000);
        batch.push(data.subarray(at, at + length));
        at += length;
      }
      yield batch;
    }
  }

  const data = Buffer.alloc(9 * 1024 * 1024 + 12345);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const digest = digestOf(data);

  test('batches of pieces are stored and digested as one stream, on the digest thread or not', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      await threadRunning();
      for (const offThread of [true, false]) {
        const stored = await content.ingest(batches(data), { digest, size: data.length, offThread });
        assert.deepEqual({ digest: stored.digest, size: stored.size }, { digest, size: data.length });
        assert.ok((await readFile(content.blobPath(digest))).equals(data));
        await content.delete(digest);
      }
      // Without an expected digest, the thread's digest is the blob's name.
      const unnamed = await content.ingest(batches(data), { offThread: true });
      assert.equal(unnamed.digest, digest);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('wrong content digested on the thread stores nothing', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      await threadRunning();
      const wrong = digestOf('something else');
      await assert.rejects(content.ingest(batches(data), { digest: wrong, offThread: true }), (err) =>
        isStrataError(err, 'DIGEST_MISMATCH'),
      );
      assert.deepEqual(await blobs(content), []);
      assert.deepEqual(await readdir(join(root, 'ingest')), []);
    }));

  test('an ingest whose digest thread stops goes on digesting here, from what it wrote', () =>
    withTempDir(async (root) => {
      const content = new ContentStore(root);
      await threadRunning();
      async function* stopping(): AsyncIterable<Uint8Array[]> {
        let n = 0;
        for await (const batch of batches(data)) {
          if (n++ === 20) await terminateDigestThread();
          yield batch;
        }
      }
      const stored = await content.ingest(stopping(), { digest, size: data.length, offThread: true });
      assert.equal(stored.digest, digest);
      assert.ok((await readFile(content.blobPath(digest))).equals(data));
      await content.delete(digest);
      // The next large ingest starts the thread again.
      await threadRunning();
      assert.equal((await content.ingest(batches(data), { offThread: true })).digest, digest);
    }));

  test('a process that used the digest thread exits when its work is done', { timeout: 60_000 }, () =>
    withTempDir(async (root) => {
      const child = spawnFixture('digest-thread-fixture.ts', [root]);
      assert.equal(await exitCode(child), 0);
    }),
  );
});
