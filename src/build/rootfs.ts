/**
 * The root filesystem of a build step: an overlay of the stage's snapshots (read-only lower
 * dirs) with a fresh upper dir that collects exactly what the step changes. Work directories
 * live under `<root>/build/tmp/` so the upper dir can be renamed into the snapshot store.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';

import { StrataError } from '../errors.js';
import { MountFlag, bindMount, mountFileSystem, unmountFileSystem } from '../archive/host-calls.js';
import { lstatIfExists } from './fastfs.js';
import type { LayerTree, SeedDirectory } from './layer-tree.js';

/** The kernel copies mount options into one page. */
const MAX_MOUNT_OPTIONS = 4000;

async function mount(work: () => Promise<void>, what: string): Promise<void> {
  try {
    await work();
  } catch (err) {
    throw new StrataError('UNSUPPORTED', `cannot mount ${what}: ${(err as Error).message}`);
  }
}

export async function unmount(target: string): Promise<void> {
  try {
    await unmountFileSystem(target);
  } catch {
    // Busy (a straggling process) or already gone: detach lazily so the tree can be removed.
    await unmountFileSystem(target, { lazy: true }).catch(() => undefined);
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
  /** Where to read the image's existing files, when `merged` does not show them. */
  lookup?: string;
  /** What the step changed (overlay whiteouts for deletions): the new layer. */
  upper: string;
  /** Unmounts; the upper dir stays until the caller commits or removes `workDir`. */
  unmount(): Promise<void>;
  workDir: string;
}

/**
 * Mounts lower dirs (top first) under a fresh upper dir; without lowers the upper is used as is.
 * `mountParent`: where the merged dir goes instead of the work dir (a runc session's mount root).
 * `volatile`: the overlay never syncs its upper dir (unmounting it otherwise waits for a sync of
 * the whole file system); for snapshots that are void after a crash anyway.
 */
export async function mountStepRoot(
  storeRoot: string,
  lowerDirs: readonly string[],
  options: { mountParent?: string; volatile?: boolean } = {},
): Promise<StepRoot> {
  const { mountParent } = options;
  const workDir = await makeWorkDir(storeRoot);
  const upper = join(workDir, 'upper');
  await mkdir(upper, { mode: 0o755 });
  if (lowerDirs.length === 0) return { merged: upper, upper, workDir, unmount: async () => undefined };
  const merged = mountParent === undefined ? join(workDir, 'merged') : join(mountParent, basename(workDir));
  const work = join(workDir, 'work');
  await mkdir(merged);
  await mkdir(work);
  try {
    const data = overlayOptions(
      lowerDirs,
      `,upperdir=${upper},workdir=${work}${options.volatile ? ',volatile' : ''}`,
    );
    await mount(() => mountFileSystem('overlay', merged, data), 'the build step root filesystem');
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    if (mountParent !== undefined) await rm(merged, { recursive: true, force: true });
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
      if (mountParent !== undefined) await rmdir(merged).catch(() => undefined);
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
      const lower = lowerDirs[0] as string;
      await mount(
        () => bindMount(lower, target, { readonly: true, recursive: false }),
        'a read-only layer view',
      );
    } else {
      const data = overlayOptions(lowerDirs, '');
      await mount(
        () => mountFileSystem('overlay', target, data, MountFlag.readonly),
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

/**
 * The existing directories on the way to `destination` (an absolute image path), for a step
 * that only adds `destination` and what is below it, so that its layer can be made without an
 * overlay (a LayerTree seeded with these directories, as overlay's copy-up would have them).
 * Applies when the destination does not exist in the layers yet, or is an empty directory, and
 * every existing component on the way is a real directory; otherwise (and for `/`, which
 * always exists and is never empty: copying into it merges with the image, symlinked /lib and
 * all) undefined, and the step runs on an overlay.
 *
 * The layers are `upperTrees` (layers recorded in trees, topmost first: they only ever add, so
 * the first one holding a path decides) over `lowerDirs`. The view of the lower layers it
 * returns is where the step reads the image's users; the caller releases it.
 */
export async function directLayerSeed(
  storeRoot: string,
  upperTrees: readonly LayerTree[],
  lowerDirs: readonly string[],
  destination: string,
): Promise<{ seed: SeedDirectory[]; view?: ReadOnlyRoot } | undefined> {
  const components = posix
    .resolve('/', destination)
    .split('/')
    .filter((part) => part !== '');
  if (components.length === 0) return undefined;
  const view = lowerDirs.length > 0 ? await mountReadOnlyRoot(storeRoot, lowerDirs) : undefined;
  let keep = false;
  try {
    const seed: SeedDirectory[] = [];
    for (let index = 0; index < components.length; index++) {
      const path = components.slice(0, index + 1).join('/');
      const last = index === components.length - 1;
      let found: (SeedDirectory & { isDirectory: boolean }) | undefined;
      for (const tree of upperTrees) {
        found = tree.describe(path);
        if (found !== undefined) break;
      }
      if (found === undefined && view !== undefined) {
        const host = join(view.path, path);
        const stats = await lstatIfExists(host);
        if (stats !== undefined) {
          found = {
            path,
            mode: stats.mode,
            uid: stats.uid,
            gid: stats.gid,
            mtimeMs: stats.mtimeMs,
            isDirectory: stats.isDirectory(),
          };
        }
      }
      if (found === undefined) break;
      if (!found.isDirectory) return undefined; // a symlink or a file on the way: overlay rules
      // The destination itself may exist only as an empty directory (WORKDIR /app; COPY . .),
      // in every layer that has it.
      if (last && !isEmptyBelow(upperTrees, view, path)) return undefined;
      seed.push({ path, mode: found.mode, uid: found.uid, gid: found.gid, mtimeMs: found.mtimeMs });
    }
    keep = true;
    return { seed, ...(view ? { view } : {}) };
  } finally {
    if (!keep) await view?.release();
  }
}

/** Whether directory `path` is empty (or absent) in every tree and in the view. */
function isEmptyBelow(trees: readonly LayerTree[], view: ReadOnlyRoot | undefined, path: string): boolean {
  if (trees.some((tree) => tree.describe(path)?.isEmpty === false)) return false;
  if (view === undefined) return true;
  try {
    return readdirSync(join(view.path, path)).length === 0;
  } catch {
    return true;
  }
}
