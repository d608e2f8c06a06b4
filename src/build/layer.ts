/**
 * Committing a step: the upper dir's deterministic tar (overlay whiteouts turned into OCI ones)
 * is stored as an uncompressed layer blob, and the upper dir itself is renamed into the
 * snapshot store, so the next step can stack it without unpacking anything.
 */
import { readdir, rename, rm } from 'node:fs/promises';

import type { Lease, Store } from '../store/index.js';
import { chainIds } from '../store/index.js';
import { createTarFromDirectory } from '../archive/tar-writer.js';
import type { Digest } from '../oci/digest.js';

export interface CommittedLayer {
  diffId: Digest;
  size: number;
  chainId: Digest;
}

/**
 * Stores the layer of `upper` on top of `parentDiffIds`; undefined when the step changed nothing
 * (no layer, history `empty_layer`). `upper` is consumed either way.
 */
export async function commitLayer(
  store: Store,
  upper: string,
  parentDiffIds: readonly Digest[],
  options: { lease: Lease; mtime?: Date },
): Promise<CommittedLayer | undefined> {
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
  await store.snapshots.prepare(
    chainId,
    async (fsDir) => {
      await rm(fsDir, { recursive: true, force: true });
      await rename(upper, fsDir);
    },
    { diffId: blob.digest, parent: chain.at(-2), size: blob.size },
  );
  // Already there (an earlier build made the same layer): our copy was not used.
  await rm(upper, { recursive: true, force: true });
  return { diffId: blob.digest, size: blob.size, chainId };
}
