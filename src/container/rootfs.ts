/**
 * A container's root filesystem: an overlay mount of the image's unpacked layers (read-only
 * lower dirs, shared with builds and other containers) under the container's own upper dir,
 * which therefore holds exactly the container's changes (what `diff` and `commit` read).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { mountFileSystem, unmountFileSystem } from '../archive/host-calls.js';
import { StrataError } from '../errors.js';
import { unpackImage } from '../image/unpack.js';
import type { ResolvedImage } from '../image/resolve.js';
import type { Store } from '../store/index.js';
import type { ContainerPaths } from './store.js';

/** The kernel copies mount options into one page. */
const MAX_MOUNT_OPTIONS = 4000;

/** The image's lower dirs (topmost first), unpacking layers not unpacked yet. */
export async function imageLowerDirs(
  store: Store,
  image: ResolvedImage,
  paths: ContainerPaths,
): Promise<string[]> {
  const { lowerDirs } = await store.withLease(() => unpackImage(store, image));
  if (lowerDirs.length > 0) return lowerDirs;
  // An image without layers (FROM scratch, metadata only): overlay needs one lower dir.
  const empty = join(paths.dir, 'empty-lower');
  await mkdir(empty, { recursive: true, mode: 0o755 });
  return [empty];
}

export async function mountRootfs(lowerDirs: readonly string[], paths: ContainerPaths): Promise<void> {
  if (await isMountPoint(paths.rootfs)) return;
  await mkdir(paths.rootfs, { recursive: true, mode: 0o700 });
  await mkdir(paths.work, { recursive: true, mode: 0o700 });
  const options = `lowerdir=${lowerDirs.join(':')},upperdir=${paths.upper},workdir=${paths.work}`;
  if (options.length > MAX_MOUNT_OPTIONS)
    throw new StrataError(
      'UNSUPPORTED',
      `the image has too many layers (${lowerDirs.length}) for one overlay mount`,
    );
  try {
    await mountFileSystem('overlay', paths.rootfs, options);
  } catch (err) {
    throw new StrataError(
      'UNSUPPORTED',
      `cannot mount the container's root filesystem: ${(err as Error).message}`,
    );
  }
}

/** Unmounts `target` if something is mounted there; lazily when busy, so removal can go on. */
export async function unmountIfMounted(target: string): Promise<void> {
  if (!(await isMountPoint(target))) return;
  try {
    await unmountFileSystem(target);
  } catch {
    await unmountFileSystem(target, { lazy: true }).catch(() => undefined);
  }
}

/** Octal escapes of /proc/self/mountinfo (space, tab, newline, backslash). */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function mountPointsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const found: string[] = [];
  for (const line of info.split('\n')) {
    const path = line.split(' ')[4];
    if (path === undefined) continue;
    const target = unescapeMountPath(path);
    if (target === prefix || target.startsWith(`${prefix}/`)) found.push(target);
  }
  return found;
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPointsUnder(path)).includes(path);
}
