import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import {
  HostCallError,
  MountFlag,
  bindMount,
  findExecutor,
  getXattr,
  mountFileSystem,
  setPropagation,
  setTimesNs,
  unmountFileSystem,
  useExecutorForTests,
} from './host-calls.js';

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const executor = await findExecutor();

async function mountOptions(target: string): Promise<string | undefined> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  const line = mounts.split('\n').find((entry) => entry.split(' ')[4] === target);
  return line?.split(' ')[5];
}

const modes = [
  { name: 'strata-exec --host', path: executor },
  { name: 'host commands (no strata-exec)', path: undefined },
] as const;

for (const mode of modes) {
  const skip = !isRoot
    ? 'needs root'
    : mode.path === undefined && mode.name.startsWith('strata')
      ? 'needs strata-exec'
      : false;
  describe(`host calls through ${mode.name}`, { skip, concurrency: 1 }, () => {
    let dir: string;
    before(async () => {
      useExecutorForTests(mode.path);
      dir = await mkdtemp(join(tmpdir(), 'strata-host-calls-'));
    });
    after(async () => {
      await execFileAsync('umount', ['-R', '-l', dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      useExecutorForTests(executor);
    });

    it('mounts an overlay, read-write and read-only, and unmounts it', async () => {
      const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((name) =>
        join(dir, name),
      ) as [string, string, string, string];
      for (const path of [lower, upper, work, merged]) await mkdir(path);
      await writeFile(join(lower, 'below'), 'b');
      await mountFileSystem('overlay', merged, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
      await writeFile(join(merged, 'new'), 'n');
      assert.deepEqual((await readdir(upper)).sort(), ['new']);
      await unmountFileSystem(merged);
      assert.deepEqual(await readdir(merged), []);

      await mountFileSystem('overlay', merged, `lowerdir=${upper}:${lower}`, MountFlag.readonly);
      assert.deepEqual((await readdir(merged)).sort(), ['below', 'new']);
      await assert.rejects(writeFile(join(merged, 'x'), ''), { code: 'EROFS' });
      assert.match((await mountOptions(merged)) ?? '', /^ro\b/);
      await unmountFileSystem(merged);
    });

    it('binds read-only, changes propagation, detaches lazily', async () => {
      const source = join(dir, 'bind-source');
      const target = join(dir, 'bind-target');
      await mkdir(source);
      await mkdir(target);
      await writeFile(join(source, 'file'), 'content');
      await bindMount(source, target, { readonly: true });
      assert.equal(await readFile(join(target, 'file'), 'utf8'), 'content');
      await assert.rejects(writeFile(join(target, 'other'), ''), { code: 'EROFS' });
      await setPropagation(target, 'shared');
      const info = await readFile('/proc/self/mountinfo', 'utf8');
      assert.ok(info.split('\n').some((line) => line.split(' ')[4] === target && / shared:\d+/.test(line)));
      await unmountFileSystem(target, { lazy: true });
      assert.equal(await mountOptions(target), undefined);
    });

    it('fails with the system error for a missing mount point', async () => {
      await assert.rejects(mountFileSystem('tmpfs', join(dir, 'missing'), ''), (err: unknown) => {
        assert.ok(err instanceof Error);
        if (mode.path !== undefined) assert.ok(err instanceof HostCallError && err.errno === 2);
        assert.match(err.message, /no such file or directory|does not exist/i);
        return true;
      });
    });

    it('sets times to the nanosecond on a symlink itself', async () => {
      const target = join(dir, 'times-target');
      const link = join(dir, 'times-link');
      await writeFile(target, '');
      await symlink(target, link);
      const before = await lstat(target, { bigint: true });
      await setTimesNs(link, 1_234_567_890_123_456_789n, 1_000_000_000_987_654_321n);
      const linked = await lstat(link, { bigint: true });
      assert.equal(linked.atimeNs, 1_234_567_890_123_456_789n);
      assert.equal(linked.mtimeNs, 1_000_000_000_987_654_321n);
      assert.equal((await lstat(target, { bigint: true })).mtimeNs, before.mtimeNs);
    });

    it('reads an extended attribute, or nothing when there is none', async () => {
      const file = join(dir, 'xattr');
      await writeFile(file, '');
      await execFileAsync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', file]);
      assert.equal((await getXattr(file, 'trusted.overlay.opaque'))?.toString(), 'y');
      assert.equal(await getXattr(file, 'trusted.strata.none'), undefined);
    });
  });
}
