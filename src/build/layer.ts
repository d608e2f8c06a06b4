/**
 * Committing a step: the upper dir's deterministic tar (overlay whiteouts turned into OCI ones)
 * is stored as an uncompressed layer blob, and the upper dir itself is renamed into the
 * snapshot store, so the next step can stack it without unpacking anything.
 */
import { lstatSync, readdirSync, rmdirSync, type Stats } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OVERLAY_OPAQUE_XATTR } from '../archive/whiteout.js';
import { getXattr } from '../archive/host-calls.js';

import type { Lease, Store } from '../store/index.js';
import { chainIds } from '../store/index.js';
import { createTarFromDirectory, writeEntries } from '../archive/tar-writer.js';
import type { LayerTree } from './layer-tree.js';
import type { Digest } from '../oci/digest.js';

export interface CommittedLayer {
  diffId: Digest;
  size: number;
  chainId: Digest;
  /** The snapshot's files: the next step's top lower dir. */
  snapshotPath: string;
}

/**
 * Stores the layer of `upper` on top of `parentDiffIds`; undefined when the step changed nothing
 * (no layer, history `empty_layer`). `upper` is consumed either way.
 */
export async function commitLayer(
  store: Store,
  upper: string,
  parentDiffIds: readonly Digest[],
  options: { lease: Lease; mtime?: Date; lowerDirs?: readonly string[] },
): Promise<CommittedLayer | undefined> {
  if (options.lowerDirs && options.lowerDirs.length > 0)
    await pruneRedundantDirectories(upper, options.lowerDirs);
  if ((await readdir(upper)).length === 0) {
    await rm(upper, { recursive: true, force: true });
    return undefined;
  }
  const tar = createTarFromDirectory(upper, {
    whiteouts: 'overlay-to-oci',
    ...(options.mtime ? { mtime: options.mtime } : {}),
  });
  const blob = await store.content.ingest(tar, { lease: options.lease });
  const diffIds = [...parentDiffIds, blob.digest];
  const chain = chainIds(diffIds);
  const chainId = chain.at(-1) as Digest;
  const snapshot = await store.snapshots.prepare(
    chainId,
    async (fsDir) => {
      await rm(fsDir, { recursive: true, force: true });
      await rename(upper, fsDir);
    },
    { diffId: blob.digest, parent: chain.at(-2), size: blob.size },
  );
  // Already there (an earlier build made the same layer): our copy was not used.
  await rm(upper, { recursive: true, force: true });
  return { diffId: blob.digest, size: blob.size, chainId, snapshotPath: snapshot.path };
}

/**
 * Stores the layer recorded in `tree` on top of `parentDiffIds`, streamed from the tree's
 * sources; undefined when the tree is empty. No snapshot is made: the next step that needs the
 * filesystem unpacks the blob (most COPY layers are never unpacked at all).
 */
export async function commitTreeLayer(
  store: Store,
  tree: LayerTree,
  options: { lease: Lease; mtime?: Date },
): Promise<Omit<CommittedLayer, 'chainId' | 'snapshotPath'> | undefined> {
  if (tree.isEmpty) return undefined;
  const blob = await store.content.ingest(writeEntries(tree.entries(options.mtime)), {
    lease: options.lease,
  });
  return { diffId: blob.digest, size: blob.size };
}

/** The layer's own copy of `path`'s directory below, if some lower dir has it (top first). */
function lowerDirectory(lowerDirs: readonly string[], path: string): Stats | undefined {
  for (const lower of lowerDirs) {
    try {
      const stats = lstatSync(join(lower, path));
      return stats.isDirectory() ? stats : undefined;
    } catch {
      // not in this layer: look further down
    }
  }
  return undefined;
}

/**
 * Removes directories overlay copied up only because something was created and removed inside
 * them (mount points of the run: /etc/hosts in an image without one): empty, not opaque, and
 * with the same mode, owner and mtime as below. BuildKit's overlay differ drops them too;
 * otherwise every RUN would add an `etc/` entry.
 */
async function pruneRedundantDirectories(upper: string, lowerDirs: readonly string[]): Promise<void> {
  const visit = async (relative: string): Promise<boolean> => {
    const dir = join(upper, relative);
    let empty = true;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !(await visit(join(relative, entry.name)))) empty = false;
    }
    if (relative === '' || !empty) return false;
    const stats = lstatSync(dir);
    const below = lowerDirectory(lowerDirs, relative);
    if (!below || below.mode !== stats.mode || below.uid !== stats.uid || below.gid !== stats.gid)
      return false;
    if (below.mtimeMs !== stats.mtimeMs || (await isOpaque(dir))) return false;
    rmdirSync(dir);
    return true;
  };
  await visit('');
}

async function isOpaque(dir: string): Promise<boolean> {
  return (await getXattr(dir, OVERLAY_OPAQUE_XATTR))?.toString() === 'y';
}
