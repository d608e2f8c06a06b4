import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf, type Digest } from '../oci/digest.js';
import { isStrataError } from '../errors.js';
import { SnapshotStore, chainIds } from './snapshots.js';
import { deadPid, withTempDir } from './testing/helpers.js';

// The diff_ids of the example configuration in the OCI image spec (config.md).
const L0: Digest = 'sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1';
const L1: Digest = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

describe('chainIds', () => {
  test('follow the OCI definition', () => {
    // By hand from the spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    const c1 = `sha256:${createHash('sha256').update(`${L0} ${L1}`).digest('hex')}`;
    const c2 = `sha256:${createHash('sha256').update(`${c1} ${L0}`).digest('hex')}`;
    assert.deepEqual(chainIds([L0, L1, L0]), [L0, c1, c2]);
    // The same values from `printf '%s %s' … | sha256sum`, independent of node:crypto.
    assert.equal(c1, 'sha256:c3191d32a37d7159b2e30830937d2e30268ad6c375a773a8994911a3aba9b93f');
    assert.equal(c2, 'sha256:ce60e381e7c2941cc3c11bc7a60b267bb56a3be80df231da8c523c53af72518b');
    assert.deepEqual(chainIds([]), []);
    assert.deepEqual(chainIds([L1]), [L1]);
  });
});

/** An unpacker that writes the given files (what a layer extraction does, in miniature). */
function unpackFiles(files: Record<string, string>): (dir: string) => Promise<void> {
  return async (dir) => {
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  };
}

describe('SnapshotStore', () => {
  test('an unsynced snapshot counts only in the boot that wrote it; a durable one is synced and always counts', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const diffId = digestOf('boot');
      const info = await snapshots.prepare(diffId, unpackFiles({ f: 'one' }), { diffId });
      const metaPath = join(info.path, '..', 'meta.json');
      const meta = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
      const thisBoot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      assert.equal(meta.unsyncedBoot, thisBoot);
      assert.ok(await snapshots.get(diffId));
      // As after a reboot: the files may have been lost, so it is unpacked again.
      await writeFile(metaPath, JSON.stringify({ ...meta, unsyncedBoot: 'another-boot' }));
      assert.equal(await snapshots.get(diffId), undefined);
      assert.deepEqual(await snapshots.list(), []);
      let unpacked = 0;
      const again = await snapshots.prepare(
        diffId,
        async (dir) => {
          unpacked++;
          await writeFile(join(dir, 'f'), 'two');
        },
        { diffId },
      );
      assert.equal(unpacked, 1);
      assert.equal(await readFile(join(again.path, 'f'), 'utf8'), 'two');

      const durable = new SnapshotStore(join(root, 'durable'), { durable: true });
      const synced = await durable.prepare(diffId, unpackFiles({ f: 'x' }), { diffId });
      const syncedMeta = JSON.parse(await readFile(join(synced.path, '..', 'meta.json'), 'utf8')) as object;
      assert.equal('unsyncedBoot' in syncedMeta, false);
    }));

  test('prepare, get, list and lower dirs of a three-layer stack', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const diffIds = [digestOf('a'), digestOf('b'), digestOf('c')];
      const chains = chainIds(diffIds);
      for (let i = 0; i < 3; i++) {
        const info = await snapshots.prepare(
          chains[i] as Digest,
          unpackFiles({ [`f${i}`]: 'x'.repeat(i + 1) }),
          {
            diffId: diffIds[i] as Digest,
            parent: chains[i - 1],
          },
        );
        assert.equal(info.size, i + 1, 'size is measured');
        assert.equal(await readFile(join(info.path, `f${i}`), 'utf8'), 'x'.repeat(i + 1));
      }
      const top = await snapshots.get(chains[2] as Digest);
      assert.ok(top);
      assert.equal(top.parent, chains[1]);
      assert.equal(top.diffId, diffIds[2]);
      const meta = JSON.parse(
        await readFile(join(snapshots.dir, (chains[0] as string).slice(7), 'meta.json'), 'utf8'),
      );
      assert.deepEqual(Object.keys(meta).sort(), [
        'chainId',
        'created',
        'diffId',
        'parent',
        'size',
        'unsyncedBoot',
      ]);
      assert.equal(meta.parent, null);
      assert.deepEqual(
        (await snapshots.list()).map((info) => info.chainId),
        [...chains].sort(),
      );
      assert.deepEqual(
        await snapshots.lowerDirs(chains[2] as Digest),
        [...chains].reverse().map((chain) => join(snapshots.dir, chain.slice(7), 'fs')),
      );
      assert.equal(await snapshots.remove(chains[1] as Digest), true);
      assert.equal(await snapshots.remove(chains[1] as Digest), false);
      await assert.rejects(snapshots.lowerDirs(chains[2] as Digest), (err) =>
        isStrataError(err, 'NOT_FOUND'),
      );
      assert.deepEqual(
        (await readdir(snapshots.dir)).sort(),
        [chains[0], chains[2]].map((chain) => (chain as string).slice(7)).sort(),
      );
    }));

  test('concurrent prepares of one chain ID: one snapshot, every caller gets it', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const chainId = digestOf('layer');
      let unpacks = 0;
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          snapshots.prepare(
            chainId,
            async (dir) => {
              unpacks++;
              await writeFile(join(dir, 'file'), `writer ${i}`);
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
            },
            { diffId: chainId },
          ),
        ),
      );
      assert.ok(unpacks >= 1);
      const winner = await snapshots.get(chainId);
      assert.ok(winner);
      for (const result of results) assert.deepEqual(result, winner);
      assert.deepEqual(await readdir(snapshots.dir), [chainId.slice(7)]);
      assert.match(await readFile(join(winner.path, 'file'), 'utf8'), /^writer \d$/);
      let again = 0;
      await snapshots.prepare(chainId, async () => void again++, { diffId: chainId });
      assert.equal(again, 0, 'a present snapshot is not unpacked again');
    }));

  test('a failed unpack leaves nothing; bad chains and missing parents are refused', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const chainId = digestOf('layer');
      await assert.rejects(
        snapshots.prepare(
          chainId,
          async (dir) => {
            await writeFile(join(dir, 'half'), 'x');
            throw new Error('bad tar');
          },
          { diffId: chainId },
        ),
        /bad tar/,
      );
      assert.deepEqual(await readdir(snapshots.dir), []);
      await assert.rejects(
        snapshots.prepare(chainId, async () => undefined, { diffId: digestOf('other') }),
        (err) => isStrataError(err, 'INVALID_ARGUMENT'),
      );
      const [, child] = chainIds([chainId, digestOf('next')]);
      await assert.rejects(
        snapshots.prepare(child as Digest, async () => undefined, {
          diffId: digestOf('next'),
          parent: chainId,
        }),
        (err) => isStrataError(err, 'NOT_FOUND'),
      );
    }));

  test('hard links are counted once; read-only directories can be removed', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const chainId = digestOf('links');
      const info = await snapshots.prepare(
        chainId,
        async (dir) => {
          await writeFile(join(dir, 'a'), '12345');
          await link(join(dir, 'a'), join(dir, 'b'));
          await mkdir(join(dir, 'ro'));
          await writeFile(join(dir, 'ro', 'file'), '1');
          await chmod(join(dir, 'ro'), 0o555);
        },
        { diffId: chainId },
      );
      assert.equal(info.size, 6);
      assert.equal(await snapshots.remove(chainId), true);
      assert.deepEqual(await readdir(snapshots.dir), []);
    }));

  test('cleanup removes incomplete snapshots and debris of dead processes only', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const chainId = digestOf('kept');
      await snapshots.prepare(chainId, async () => undefined, { diffId: chainId });
      const dead = await deadPid();
      const incomplete = join(snapshots.dir, digestOf('half').slice(7));
      const deadTmp = join(snapshots.dir, `tmp-${dead}-0123456789ab`);
      const deadTrash = join(snapshots.dir, `trash-${dead}-0123456789ab`);
      const liveTmp = join(snapshots.dir, `tmp-${process.pid}-0123456789ab`);
      for (const dir of [incomplete, deadTmp, deadTrash, liveTmp])
        await mkdir(join(dir, 'fs'), { recursive: true });
      assert.equal(await snapshots.get(digestOf('half')), undefined, 'no meta.json: not a snapshot');
      assert.equal(await snapshots.cleanup({ olderThanMs: 3600_000, dryRun: true }), 3);
      assert.equal((await readdir(snapshots.dir)).length, 5);
      assert.equal(await snapshots.cleanup({ olderThanMs: 3600_000 }), 3);
      assert.deepEqual(
        (await readdir(snapshots.dir)).sort(),
        [chainId.slice(7), `tmp-${process.pid}-0123456789ab`].sort(),
      );
      await rm(liveTmp, { recursive: true });
    }));

  test('an incomplete directory in the way does not block a prepare', () =>
    withTempDir(async (root) => {
      const snapshots = new SnapshotStore(root);
      const chainId = digestOf('blocked');
      await mkdir(join(snapshots.dir, chainId.slice(7), 'fs', 'junk'), { recursive: true });
      const info = await snapshots.prepare(chainId, unpackFiles({ ok: '1' }), { diffId: chainId });
      assert.deepEqual(await readdir(info.path), ['ok']);
      assert.deepEqual(await readdir(snapshots.dir), [chainId.slice(7)]);
    }));
});
