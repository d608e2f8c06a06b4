import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../../../errors.js';
import type { StorageDriver } from './driver.js';

export interface DriverUnderTest {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

/**
 * Registers the behaviour every StorageDriver must have, as node:test tests: the registry above
 * relies on exactly these properties, whichever driver it runs on. Each test gets a fresh driver.
 */
export function describeDriverContract(name: string, makeDriver: () => Promise<DriverUnderTest>): void {
  const withDriver = (work: (driver: StorageDriver) => Promise<void>) => async () => {
    const { driver, cleanup } = await makeDriver();
    try {
      await work(driver);
    } finally {
      await cleanup();
    }
  };

  describe(`storage driver contract: ${name}`, () => {
    test(
      'putContent creates (without parents being made first), replaces, and getContent reads back',
      withDriver(async (driver) => {
        assert.equal(await driver.getContent('a/b/c/link'), undefined);
        await driver.putContent('a/b/c/link', text('first'));
        assert.equal(String(await driver.getContent('a/b/c/link')), 'first');
        await driver.putContent('a/b/c/link', text('second, longer than the first'));
        assert.equal(String(await driver.getContent('a/b/c/link')), 'second, longer than the first');
        await driver.putContent('a/b/c/link', text('3'));
        assert.equal(String(await driver.getContent('a/b/c/link')), '3');
        assert.equal(await driver.getContent('a/b'), undefined, 'a prefix has no content');
      }),
    );

    test(
      'an empty object exists and has size 0',
      withDriver(async (driver) => {
        await driver.putContent('empty', new Uint8Array(0));
        assert.equal((await driver.getContent('empty'))?.length, 0);
        assert.deepEqual(await statShape(driver, 'empty'), { size: 0, isDirectory: false });
        assert.deepEqual(await readAll(await driver.reader('empty')), Buffer.alloc(0));
      }),
    );

    test(
      'reader streams the whole object or a range, clamped to its size',
      withDriver(async (driver) => {
        const data = randomBytes(200_000);
        await driver.putContent('blobs/x/data', data);
        assert.deepEqual(await readAll(await driver.reader('blobs/x/data')), data);
        assert.deepEqual(
          await readAll(await driver.reader('blobs/x/data', { offset: 70_001 })),
          data.subarray(70_001),
        );
        assert.deepEqual(
          await readAll(await driver.reader('blobs/x/data', { offset: 5, end: 100_005 })),
          data.subarray(5, 100_005),
        );
        assert.deepEqual(await readAll(await driver.reader('blobs/x/data', { end: 1 })), data.subarray(0, 1));
        assert.deepEqual(
          await readAll(await driver.reader('blobs/x/data', { offset: 199_990, end: 300_000 })),
          data.subarray(199_990),
        );
        assert.equal((await readAll(await driver.reader('blobs/x/data', { offset: 10, end: 10 }))).length, 0);
        assert.equal((await readAll(await driver.reader('blobs/x/data', { offset: 300_000 }))).length, 0);
        assert.equal(await driver.reader('blobs/absent/data'), undefined);
        assert.equal(await driver.reader('blobs/x'), undefined, 'a prefix is not readable');
      }),
    );

    test(
      'stat describes objects and prefixes, and nothing for absent paths',
      withDriver(async (driver) => {
        const before = Date.now();
        await driver.putContent('dir/sub/object', text('12345'));
        const after = Date.now();
        const object = await driver.stat('dir/sub/object');
        assert.ok(object);
        assert.equal(object.size, 5);
        assert.equal(object.isDirectory, false);
        // File systems stamp with a coarse clock; a second either side is plenty.
        assert.ok(
          object.modifiedAt.getTime() >= before - 1000 && object.modifiedAt.getTime() <= after + 1000,
        );
        assert.equal((await driver.stat('dir'))?.isDirectory, true);
        assert.equal((await driver.stat('dir/sub'))?.isDirectory, true);
        assert.equal(await driver.stat('dir/absent'), undefined);
        assert.equal(await driver.stat('nothing/here'), undefined);
        assert.equal(await driver.stat('dir/sub/object/below'), undefined, 'nothing is under an object');
      }),
    );

    test(
      'a fresh writer shows nothing before commit, then the whole object',
      withDriver(async (driver) => {
        const writer = await driver.writer('uploads/1/data', { append: false });
        assert.equal(writer.size, 0);
        await writer.write(text('hello '));
        await writer.write(text('world'));
        assert.equal(writer.size, 11);
        assert.equal(await driver.getContent('uploads/1/data'), undefined);
        await writer.commit();
        assert.equal(String(await driver.getContent('uploads/1/data')), 'hello world');
      }),
    );

    test(
      'a fresh writer replaces an existing object only when it commits',
      withDriver(async (driver) => {
        await driver.putContent('object', text('old bytes'));
        const writer = await driver.writer('object', { append: false });
        await writer.write(text('new'));
        assert.equal(String(await driver.getContent('object')), 'old bytes');
        await writer.commit();
        assert.equal(String(await driver.getContent('object')), 'new');
      }),
    );

    test(
      'append continues the object across writers, as after a restart',
      withDriver(async (driver) => {
        const first = await driver.writer('uploads/2/data', { append: true });
        assert.equal(first.size, 0, 'appending to nothing starts empty');
        await first.write(text('part one;'));
        await first.commit();
        const second = await driver.writer('uploads/2/data', { append: true });
        assert.equal(second.size, 9);
        await second.write(text('part two;'));
        assert.equal(second.size, 18);
        await second.commit();
        const third = await driver.writer('uploads/2/data', { append: true });
        assert.equal(third.size, 18);
        await third.write(text('three'));
        await third.commit();
        assert.equal(String(await driver.getContent('uploads/2/data')), 'part one;part two;three');
        assert.equal((await driver.stat('uploads/2/data'))?.size, 23);
      }),
    );

    test(
      'cancel drops what the writer wrote, and is safe to repeat',
      withDriver(async (driver) => {
        await driver.putContent('uploads/3/data', text('kept'));
        const appending = await driver.writer('uploads/3/data', { append: true });
        await appending.write(text(' dropped'));
        await appending.cancel();
        await appending.cancel();
        assert.equal(String(await driver.getContent('uploads/3/data')), 'kept');
        assert.equal((await driver.writer('uploads/3/data', { append: true })).size, 4);

        const fresh = await driver.writer('uploads/4/data', { append: false });
        await fresh.write(text('never published'));
        await fresh.cancel();
        assert.equal(await driver.stat('uploads/4/data'), undefined);

        const replacing = await driver.writer('uploads/3/data', { append: false });
        await replacing.write(text('never published'));
        await replacing.cancel();
        assert.equal(String(await driver.getContent('uploads/3/data')), 'kept');
      }),
    );

    test(
      'list returns the sorted names of objects and prefixes directly under a prefix',
      withDriver(async (driver) => {
        for (const path of ['r/zeta', 'r/alpha/x', 'r/Beta', 'r/mid/deep/er', 'r/10', 'r/9', 'other/thing']) {
          await driver.putContent(path, text(path));
        }
        assert.deepEqual(await driver.list('r'), ['10', '9', 'Beta', 'alpha', 'mid', 'zeta']);
        assert.deepEqual(await driver.list('r/mid'), ['deep']);
        assert.deepEqual(await driver.list(''), ['other', 'r']);
        assert.deepEqual(await driver.list('absent'), []);
        assert.deepEqual(await driver.list('r/zeta'), [], 'an object has nothing under it');
      }),
    );

    test(
      'every name a listing shows can be stat-ed, also after deletes and moves (no ghosts)',
      withDriver(async (driver) => {
        for (const path of ['t/a/1', 't/a/2', 't/b/c/d', 't/e', 'u/f/g'])
          await driver.putContent(path, text(path));
        await driver.delete('t/a/1');
        await driver.delete('t/a/2');
        await driver.move('t/b/c/d', 'v/d');
        const writer = await driver.writer('t/pending/data', { append: false });
        await writer.write(text('not yet committed'));
        const seen = await walk(driver, '');
        assert.deepEqual(seen, ['t', 't/e', 'u', 'u/f', 'u/f/g', 'v', 'v/d']);
        for (const path of seen) assert.ok(await driver.stat(path), `${path} is listed, so it exists`);
        assert.equal(await driver.stat('t/a'), undefined, 'a prefix whose objects are gone is gone');
        await writer.cancel();
      }),
    );

    test(
      'move replaces the destination and removes the source; a missing source is an error',
      withDriver(async (driver) => {
        await driver.putContent('uploads/5/data', text('uploaded'));
        await driver.putContent('blobs/ab/data', text('stale'));
        await driver.move('uploads/5/data', 'blobs/ab/data');
        assert.equal(String(await driver.getContent('blobs/ab/data')), 'uploaded');
        assert.equal(await driver.stat('uploads/5/data'), undefined);
        await driver.putContent('uploads/6/data', text('to a new place'));
        await driver.move('uploads/6/data', 'blobs/cd/ef/data');
        assert.equal(String(await driver.getContent('blobs/cd/ef/data')), 'to a new place');
        await assert.rejects(
          driver.move('uploads/404/data', 'blobs/gh/data'),
          (err) => errnoCode(err) === 'ENOENT',
        );
        assert.equal(await driver.stat('blobs/gh/data'), undefined);
      }),
    );

    test(
      'delete removes an object or a whole prefix, leaves siblings, and tolerates absence',
      withDriver(async (driver) => {
        for (const path of [
          'repo/_uploads/1/data',
          'repo/_uploads/1/state.json',
          'repo/_uploads/2/data',
          'repo/x',
        ]) {
          await driver.putContent(path, text(path));
        }
        await driver.delete('repo/_uploads/1');
        assert.deepEqual(await driver.list('repo/_uploads'), ['2']);
        assert.equal(await driver.getContent('repo/_uploads/1/state.json'), undefined);
        await driver.delete('repo/x');
        assert.equal(await driver.stat('repo/x'), undefined);
        await driver.delete('repo/x');
        await driver.delete('never/was');
        await driver.delete('repo/_uploads/2/data/below');
        assert.equal(String(await driver.getContent('repo/_uploads/2/data')), 'repo/_uploads/2/data');
        await driver.delete('repo');
        assert.deepEqual(await driver.list(''), []);
      }),
    );

    test(
      'touch moves modifiedAt to now and does not create absent objects',
      withDriver(async (driver) => {
        await driver.putContent('links/l', text('sha256:…'));
        const written = (await driver.stat('links/l'))!.modifiedAt.getTime();
        await sleep(30);
        const beforeTouch = Date.now();
        await driver.touch('links/l');
        const touched = (await driver.stat('links/l'))!.modifiedAt.getTime();
        assert.ok(touched > written, `touched ${touched} after written ${written}`);
        assert.ok(touched >= beforeTouch - 1000);
        assert.equal(String(await driver.getContent('links/l')), 'sha256:…', 'touch keeps the content');
        await driver.touch('links/absent');
        assert.equal(await driver.stat('links/absent'), undefined);
      }),
    );

    test(
      'a reader opened before a replace or a delete keeps streaming the bytes it started with',
      withDriver(async (driver) => {
        const original = Buffer.alloc(1 << 20, 'a');
        await driver.putContent('blob', original);
        const beforeReplace = await driver.reader('blob');
        const rangeBeforeReplace = await driver.reader('blob', { offset: 1000, end: 600_000 });
        await driver.putContent('blob', Buffer.alloc(1 << 20, 'b'));
        assert.deepEqual(await readAll(beforeReplace), original);
        assert.deepEqual(await readAll(rangeBeforeReplace), original.subarray(1000, 600_000));

        const beforeDelete = await driver.reader('blob');
        await driver.delete('blob');
        assert.deepEqual(await readAll(beforeDelete), Buffer.alloc(1 << 20, 'b'));
      }),
    );

    test(
      'concurrent putContent of one path leaves one whole version, and readers never see a mix',
      withDriver(async (driver) => {
        const versions = Array.from({ length: 12 }, (_, index) => Buffer.alloc(50_000, 65 + index));
        const reads: Buffer[] = [];
        const reader = (async () => {
          for (let attempt = 0; attempt < 40; attempt++) {
            const content = await driver.getContent('contended');
            if (content) reads.push(content);
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();
        await Promise.all([...versions.map((version) => driver.putContent('contended', version)), reader]);
        for (const content of [...reads, (await driver.getContent('contended'))!]) {
          assert.ok(
            versions.some((version) => version.equals(content)),
            'every read is one complete version',
          );
        }
      }),
    );
  });
}

function text(value: string): Uint8Array {
  return Buffer.from(value, 'utf8');
}

async function statShape(driver: StorageDriver, path: string) {
  const info = await driver.stat(path);
  return info && { size: info.size, isDirectory: info.isDirectory };
}

/** Reads a driver stream to the end; fails the test if the object was absent. */
export async function readAll(stream: Readable | undefined): Promise<Buffer> {
  assert.ok(stream, 'the object exists');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Every path under `prefix` that a listing shows, prefixes included, in listing order. */
export async function walk(driver: StorageDriver, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await driver.list(prefix)) {
    const path = prefix === '' ? name : `${prefix}/${name}`;
    found.push(path, ...(await walk(driver, path)));
  }
  return found;
}
