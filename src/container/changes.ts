/**
 * `docker diff`: a container's changes, read from its overlay upper dir against the image's
 * lower dirs. A path only in the upper dir is Added; one that also exists below is Changed (a
 * directory only when its mode, owner or mtime differ: overlay copies parents up unchanged); an
 * overlay whiteout (0/0 character device) is Deleted, and so is every lower entry hidden by an
 * opaque directory. Empty mount points strata itself created for the container (/etc/hosts,
 * /proc, volume targets…) are not changes of the container's, as docker's init layer hides them.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';

import { readXattrTree } from '../archive/native.js';
import { OVERLAY_OPAQUE_XATTR, isOverlayWhiteout } from '../archive/whiteout.js';
import { SYSTEM_MOUNT_POINTS } from '../runtime/spec.js';
import type { ContainerRecord } from './types.js';

export interface Change {
  kind: 'A' | 'C' | 'D';
  /** Absolute path in the container. */
  path: string;
}

/** Mount points strata puts in every container (besides the record's own mounts). */
const RUNTIME_MOUNT_POINTS = [
  ...SYSTEM_MOUNT_POINTS,
  '/etc/hosts',
  '/etc/hostname',
  '/etc/resolv.conf',
  '/sbin/docker-init',
];

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch {
    return undefined;
  }
}

/** The entry the image has at `rel` (the topmost lower dir that has it), unless a whiteout hides it. */
export async function inLower(lowerDirs: readonly string[], rel: string): Promise<Stats | undefined> {
  for (const lower of lowerDirs) {
    const stats = await lstatOrUndefined(join(lower, rel));
    if (stats === undefined) continue;
    return isOverlayWhiteout(stats) ? undefined : stats;
  }
  return undefined;
}

async function lowerNames(lowerDirs: readonly string[], rel: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const lower of lowerDirs) {
    try {
      for (const name of await readdir(join(lower, rel))) names.add(name);
    } catch {
      // Not a directory in this layer.
    }
  }
  return names;
}

async function isEmptyStub(stats: Stats, path: string): Promise<boolean> {
  if (stats.isFile()) return stats.size === 0;
  if (stats.isDirectory()) return (await readdir(path)).length === 0;
  return false;
}

export async function containerChanges(
  upper: string,
  lowerDirs: readonly string[],
  record: Pick<ContainerRecord, 'mounts'>,
): Promise<Change[]> {
  const mountPoints = new Set([...RUNTIME_MOUNT_POINTS, ...record.mounts.map((mount) => mount.destination)]);
  const xattrs = (await readXattrTree(upper)) ?? new Map<string, Map<string, Buffer>>();
  const changes: Change[] = [];

  const walk = async (rel: string): Promise<void> => {
    const dir = rel === '' ? upper : join(upper, rel);
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const path = `/${childRel}`;
      const host = join(upper, childRel);
      const stats = await lstat(host);
      if (isOverlayWhiteout(stats)) {
        if ((await inLower(lowerDirs, childRel)) !== undefined) changes.push({ kind: 'D', path });
        continue;
      }
      const below = await inLower(lowerDirs, childRel);
      if (mountPoints.has(path) && below === undefined && (await isEmptyStub(stats, host))) continue;
      if (below === undefined) {
        changes.push({ kind: 'A', path });
      } else if (!stats.isDirectory() || !below.isDirectory()) {
        changes.push({ kind: 'C', path });
      } else {
        const opaque = xattrs.get(childRel)?.get(OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
        // Creating strata's own mount points in a directory changes its mtime, not the container.
        const children = await readdir(host);
        const onlyStubs =
          children.length > 0 && children.every((child) => mountPoints.has(`${path}/${child}`));
        const metadataChanged =
          stats.mode !== below.mode ||
          stats.uid !== below.uid ||
          stats.gid !== below.gid ||
          (Math.trunc(stats.mtimeMs) !== Math.trunc(below.mtimeMs) && !onlyStubs);
        if (metadataChanged || opaque) changes.push({ kind: 'C', path });
        if (opaque) {
          const kept = new Set(await readdir(host));
          for (const hidden of [...(await lowerNames(lowerDirs, childRel))].sort()) {
            if (!kept.has(hidden)) changes.push({ kind: 'D', path: `${path}/${hidden}` });
          }
        }
      }
      if (stats.isDirectory()) await walk(childRel);
    }
  };
  await walk('');
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
