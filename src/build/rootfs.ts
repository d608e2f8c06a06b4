/**
 * The root filesystem of a build step: an overlay of the stage's snapshots (read-only lower
 * dirs) with a fresh upper dir that collects exactly what the step changes. Work directories
 * live under `<root>/build/tmp/` so the upper dir can be renamed into the snapshot store.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { StrataError } from '../errors.js';

const run = promisify(execFile);

/** The kernel copies mount options into one page. */
const MAX_MOUNT_OPTIONS = 4000;

async function mount(args: string[], what: string): Promise<void> {
  try {
    await run('mount', args);
  } catch (err) {
    const message = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new StrataError('UNSUPPORTED', `cannot mount ${what}: ${message}`);
  }
}

export async function unmount(target: string): Promise<void> {
  try {
    await run('umount', [target]);
  } catch {
    // Busy (a straggling process) or already gone: detach lazily so the tree can be removed.
    await run('umount', ['-l', target]).catch(() => undefined);
  }
}

function overlayOptions(lowerDirs: readonly string[], extra: string): string {
  const options = `lowerdir=${lowerDirs.join(':')}${extra}`;
  if (options.length > MAX_MOUNT_OPTIONS) {
    throw new StrataError('UNSUPPORTED', `too many layers (${lowerDirs.length}) for one overlay mount`);
  }
  return options;
}

export async function makeWorkDir(storeRoot: string): Promise<string> {
  const dir = join(storeRoot, 'build', 'tmp', `${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export interface StepRoot {
  /** Where the step reads and writes the image's filesystem. */
  merged: string;
  /** What the step changed (overlay whiteouts for deletions): the new layer. */
  upper: string;
  /** Unmounts; the upper dir stays until the caller commits or removes `workDir`. */
  unmount(): Promise<void>;
  workDir: string;
}

/** Mounts lower dirs (top first) under a fresh upper dir; without lowers the upper is used as is. */
export async function mountStepRoot(storeRoot: string, lowerDirs: readonly string[]): Promise<StepRoot> {
  const workDir = await makeWorkDir(storeRoot);
  const upper = join(workDir, 'upper');
  await mkdir(upper, { mode: 0o755 });
  if (lowerDirs.length === 0) return { merged: upper, upper, workDir, unmount: async () => undefined };
  const merged = join(workDir, 'merged');
  const work = join(workDir, 'work');
  await mkdir(merged);
  await mkdir(work);
  try {
    await mount(
      [
        '-t',
        'overlay',
        'overlay',
        '-o',
        overlayOptions(lowerDirs, `,upperdir=${upper},workdir=${work}`),
        merged,
      ],
      'the build step root filesystem',
    );
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
  let mounted = true;
  return {
    merged,
    upper,
    workDir,
    unmount: async () => {
      if (!mounted) return;
      mounted = false;
      await unmount(merged);
    },
  };
}

export interface ReadOnlyRoot {
  path: string;
  release(): Promise<void>;
}

/** A read-only view of a filesystem made of snapshots (COPY --from, bind mounts). */
export async function mountReadOnlyRoot(
  storeRoot: string,
  lowerDirs: readonly string[],
): Promise<ReadOnlyRoot> {
  const workDir = await makeWorkDir(storeRoot);
  const target = join(workDir, 'root');
  await mkdir(target);
  const cleanup = () => rm(workDir, { recursive: true, force: true });
  if (lowerDirs.length === 0) return { path: target, release: cleanup };
  try {
    if (lowerDirs.length === 1) {
      await mount(['--bind', '-o', 'ro', lowerDirs[0] as string, target], 'a read-only layer view');
      await mount(['-o', 'remount,bind,ro', target], 'a read-only layer view');
    } else {
      await mount(
        ['-t', 'overlay', 'overlay', '-o', `ro,${overlayOptions(lowerDirs, '')}`, target],
        'a read-only layer view',
      );
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    path: target,
    release: async () => {
      await unmount(target);
      await cleanup();
    },
  };
}
