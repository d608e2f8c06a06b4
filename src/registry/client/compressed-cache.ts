import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, isDigest, type Digest } from '../../oci/digest.js';
import type { Compression } from '../../oci/mediatypes.js';
import type { Store } from '../../store/index.js';
import { writeFileAtomic } from '../../store/atomic.js';
import { errnoCode } from '../../errors.js';

/**
 * Lazy compression's memory (ARCHITECTURE.md): which compressed blob an uncompressed layer became,
 * per codec and level, in `<root>/cache/compressed/<diffid-hex>.<codec>-<level>` holding the blob
 * digest (records named `<diffid-hex>.<codec>`, from before levels were chosen, are not read).
 * Compression is deterministic, so the mapping is only a shortcut: a lost or stale entry costs
 * one recompression, never a wrong blob (the entry is trusted only when the blob is in the store).
 */
export class CompressedLayerCache {
  readonly dir: string;

  constructor(store: Store) {
    this.dir = join(store.layout.cache, 'compressed');
  }

  private path(diffId: Digest, codec: Compression, level: number): string {
    return join(this.dir, `${digestHex(diffId)}.${codec}-${level}`);
  }

  async get(diffId: Digest, codec: Compression, level: number): Promise<Digest | undefined> {
    try {
      const text = (await readFile(this.path(diffId, codec, level), 'utf8')).trim();
      return isDigest(text) ? text : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async set(diffId: Digest, codec: Compression, level: number, blob: Digest): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Not fsynced: a record lost or emptied by a crash reads as a miss (see the class comment),
    // and a push should not wait on the disk for a shortcut.
    await writeFileAtomic(this.path(diffId, codec, level), `${blob}\n`, { durable: false });
  }
}
