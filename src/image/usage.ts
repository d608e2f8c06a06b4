import type { Store } from '../store/index.js';
import { listImages } from './resolve.js';
import { pruneImages, type RemovalReport } from './remove.js';
import { chainIds } from '../store/snapshots.js';

export interface UsageRow {
  count: number;
  /** Items something still needs: tagged images; snapshots of layers of a named image. */
  active: number;
  size: number;
  /** What `system prune` (without --all) would free. */
  reclaimable: number;
}

export interface DiskUsage {
  images: UsageRow;
  snapshots: UsageRow;
  buildCache: UsageRow;
}

/**
 * `system df`. strata has no containers, so "active" means what a prune keeps: an image is active
 * while it has a name, and sizes count each blob once however many images share it.
 */
export async function diskUsage(store: Store): Promise<DiskUsage> {
  const images = await listImages(store);
  const blobSizes = new Map<string, number>();
  for await (const blob of store.content.list()) blobSizes.set(blob.digest, blob.size);
  const kept = new Set<string>();
  const keptChains = new Set<string>();
  for (const image of images.filter((candidate) => candidate.names.length > 0)) {
    for (const blob of [
      image.target,
      image.manifestDescriptor,
      image.manifest.config,
      ...image.manifest.layers,
    ])
      kept.add(blob.digest);
    for (const chainId of chainIds(image.config.rootfs.diff_ids)) keptChains.add(chainId);
  }
  let total = 0;
  let reclaimable = 0;
  for (const [digest, size] of blobSizes) {
    total += size;
    if (!kept.has(digest)) reclaimable += size;
  }
  const cacheRecords = await store.buildCache.list();
  // Layers only the cache keeps (an image's layer is counted with the image).
  const cacheSize = cacheRecords.reduce(
    (sum, record) => sum + (record.layer && !kept.has(record.layer.diffId) ? record.layer.size : 0),
    0,
  );
  const snapshots = await store.snapshots.list();
  const snapshotSize = snapshots.reduce((sum, snapshot) => sum + (snapshot.size ?? 0), 0);
  const activeSnapshots = snapshots.filter((snapshot) => keptChains.has(snapshot.chainId));
  return {
    images: {
      count: images.length,
      active: images.filter((image) => image.names.length > 0).length,
      size: total,
      reclaimable,
    },
    snapshots: {
      count: snapshots.length,
      active: activeSnapshots.length,
      size: snapshotSize,
      reclaimable: snapshotSize - activeSnapshots.reduce((sum, snapshot) => sum + (snapshot.size ?? 0), 0),
    },
    buildCache: {
      count: cacheRecords.length,
      active: 0,
      size: cacheSize,
      reclaimable: cacheSize,
    },
  };
}

/**
 * `system prune`: the build cache, then dangling (or, with `all`, every) image and every
 * unreferenced blob and snapshot (the image prune ends with a full collection).
 */
export async function pruneSystem(store: Store, options: { all?: boolean } = {}): Promise<RemovalReport> {
  await store.buildCache.clear();
  return pruneImages(store, options);
}
