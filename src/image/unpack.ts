import { pipeline } from 'node:stream/promises';
import type { Store, SnapshotInfo } from '../store/index.js';
import { chainIds } from '../store/index.js';
import { decompressStream } from '../archive/compression.js';
import { extractTar } from '../archive/extract.js';
import { DigestStream } from '../oci/digest.js';
import type { ResolvedImage } from './resolve.js';
import type { Descriptor } from '../oci/types.js';
import type { Digest } from '../oci/digest.js';

export interface UnpackedImage {
  snapshots: SnapshotInfo[];
  /** Overlay lower dirs, topmost first (`lowerdir=` order). */
  lowerDirs: string[];
}

/**
 * Unpacks every layer of an image into a snapshot keyed by chain ID (already-unpacked layers are
 * reused), with overlay whiteouts, so the snapshots stack as overlayfs lower dirs. Each layer's
 * uncompressed bytes are checked against the config's diff ID while they stream.
 */
export function unpackImage(store: Store, image: ResolvedImage): Promise<UnpackedImage> {
  return unpackLayers(store, image.manifest.layers, image.config.rootfs.diff_ids);
}

/** Like unpackImage, for any layer list (a build stage's layers: base image's plus its own). */
export async function unpackLayers(
  store: Store,
  layers: readonly Descriptor[],
  diffIds: readonly Digest[],
): Promise<UnpackedImage> {
  const chain = chainIds(diffIds);
  const snapshots: SnapshotInfo[] = [];
  for (const [index, layer] of layers.entries()) {
    const chainId = chain[index];
    const diffId = diffIds[index];
    if (chainId === undefined || diffId === undefined) break;
    const unpackLayer = async (fsDir: string): Promise<number> => {
      const verified = new DigestStream({ expected: diffId });
      const feeding = pipeline(decompressStream(store.content.openRead(layer.digest)), verified);
      try {
        const { bytes } = await extractTar(verified, fsDir, { whiteouts: 'overlay', allowDevices: true });
        await feeding;
        return bytes;
      } catch (err) {
        // Stop reading the layer, and keep the feeding pipeline's own rejection from going unhandled.
        verified.destroy();
        await feeding.catch(() => undefined);
        throw err;
      }
    };
    snapshots.push(await store.snapshots.prepare(chainId, unpackLayer, { diffId, parent: chain[index - 1] }));
  }
  const top = snapshots.at(-1);
  return { snapshots, lowerDirs: top ? await store.snapshots.lowerDirs(top.chainId) : [] };
}
