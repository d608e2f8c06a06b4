import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Leases } from './lease.js';
import { withFileLock } from './lock.js';
import { deadPid, withTempDir } from './testing/helpers.js';

test('withLease records what is protected inside it, follows async calls, and cleans up', () =>
  withTempDir(async (root) => {
    const leases = new Leases(join(root, 'leases'), join(root, 'locks', 'gc.lock'));
    const seen = await leases.withLease(async () => {
      await Promise.all([leases.protect(['k1']), (async () => leases.protect(['k2', 'k3']))()]);
      await leases.withLease(() => leases.protect(['nested']));
      const [file] = await readdir(join(root, 'leases'));
      assert.match(file ?? '', new RegExp(`^${process.pid}\\.op\\.[0-9a-f]{12}\\.lease$`));
      return (await readFile(join(root, 'leases', file ?? ''), 'utf8')).split('\n').filter(Boolean).sort();
    });
    assert.deepEqual(seen, ['k1', 'k2', 'k3', 'nested']);
    assert.deepEqual(await readdir(join(root, 'leases')), []);
  }));

test('held: live leases count, this process lease does not, dead ones are removed', () =>
  withTempDir(async (root) => {
    const dir = join(root, 'leases');
    const leases = new Leases(dir, join(root, 'locks', 'gc.lock'));
    await leases.protect(['mine']); // outside withLease: the process lease
    const op = leases.create();
    await op.add('op-key');
    const dead = `${await deadPid()}.op.0123456789ab.lease`;
    await writeFile(join(dir, dead), 'dead-key\n');
    await writeFile(join(dir, `1.op.0123456789ab.lease`), 'init-key\npartial-line-without-newline'); // pid 1 lives
    const dry = await leases.held({ dryRun: true });
    assert.deepEqual([...dry.keys].sort(), ['init-key', 'op-key']);
    assert.equal(dry.deadRemoved, 1);
    assert.ok((await readdir(dir)).includes(dead));
    await leases.held();
    assert.ok(!(await readdir(dir)).includes(dead));
    await op.release();
    assert.deepEqual([...(await leases.held()).keys], ['init-key']);
  }));

test('protect waits while a collection holds the gc lock', () =>
  withTempDir(async (root) => {
    const gcLock = join(root, 'locks', 'gc.lock');
    const leases = new Leases(join(root, 'leases'), gcLock);
    let done = false;
    let pending: Promise<void> | undefined;
    await withFileLock(gcLock, async () => {
      pending = leases.withLease(() => leases.protect(['key'])).then(() => void (done = true));
      await sleep(100);
      assert.equal(done, false);
    });
    await pending;
    assert.equal(done, true);
  }));

test('keys added while an append runs go out together, each add resolving once its keys are written', () =>
  withTempDir(async (root) => {
    const dir = join(root, 'leases');
    const lease = new Leases(dir, join(root, 'locks', 'gc.lock')).create();
    const keys = Array.from({ length: 20 }, (_, i) => `sha256:${String(i).padStart(64, '0')}`);
    const read = async (): Promise<string[]> =>
      (await readFile(lease.path, 'utf8')).split('\n').filter(Boolean);
    // The first add starts an append; the other 19 wait for it, then share the next one.
    await Promise.all(
      keys.map(async (key) => {
        await lease.add(key);
        assert.ok((await read()).includes(key), `${key} resolved before it was written`);
      }),
    );
    assert.deepEqual(await read(), keys);
    await lease.release();
    await assert.rejects(lease.add('late'), /used after its release/);
    assert.deepEqual(await readdir(dir), []);
  }));

test('a failed append rejects the adds it carried, and later adds still work', () =>
  withTempDir(async (root) => {
    // The lease directory's place is taken by a file: mkdir fails until it is removed.
    const dir = join(root, 'leases');
    await writeFile(dir, 'not a directory');
    const lease = new Leases(dir, join(root, 'locks', 'gc.lock')).create();
    await assert.rejects(Promise.all([lease.add('a'), lease.add('b')]));
    await rm(dir);
    await lease.add('c');
    assert.deepEqual((await readFile(lease.path, 'utf8')).split('\n').filter(Boolean), ['c']);
    await lease.release();
  }));
