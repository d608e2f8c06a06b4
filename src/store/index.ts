import { BuildCache } from './build-cache.js';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Descriptor } from '../oci/types.js';
import { writeFileAtomic } from './atomic.js';
import { StrataError, errnoCode } from '../errors.js';
import { ContentStore } from './content.js';
export { prestartDigestThread, terminateDigestThread } from './digest-thread.js';
import { collectGarbage, type GcOptions, type GcReport } from './gc.js';
import { ImageNames } from './images.js';
import { Leases, type Lease } from './lease.js';
import { storeLayout, type StoreLayout } from './paths.js';
import { SnapshotStore } from './snapshots.js';
import { readdirIfExists } from './dirs.js';

export {
  ContentStore,
  type BlobInfo,
  type ByteSource,
  type CleanResult,
  type IngestExpectation,
  type IngestSource,
} from './content.js';
export { BuildCache, cacheKey, stableJson, type CacheRecord, type CachedLayer } from './build-cache.js';
export { ImageNames, type ImageMap, type ImageRecord } from './images.js';
export { SnapshotStore, chainIds, type PrepareMeta, type SnapshotInfo } from './snapshots.js';
export { Lease, Leases, snapshotLeaseKey, type LeaseKind } from './lease.js';
export {
  collectGarbage,
  expandOciNode,
  type ExpandNode,
  type GcNode,
  type GcOptions,
  type GcReport,
  type GcStore,
} from './gc.js';
export { defaultStoreRoot, resolveStoreRoot, storeLayout, type StoreLayout } from './paths.js';
export {
  cleanAtomicTemps,
  fsyncDir,
  fsyncFile,
  tempSibling,
  writeFileAtomic,
  writeStreamAtomic,
} from './atomic.js';
export { isLocked, processAlive, waitUntilUnlocked, withFileLock, type FileLockOptions } from './lock.js';

export interface StoreOptions {
  /**
   * Sync unpacked snapshot trees to disk before committing them (default false: a snapshot
   * records the boot it was written in and is unpacked again after a reboot, which is when
   * unsynced files can be lost; a syncfs per snapshot made every build step flush the whole
   * filesystem, other programs' writes included).
   */
  durableSnapshots?: boolean;
}

/**
 * One store root: content, image names and snapshots sharing one set of leases, laid out as in
 * ARCHITECTURE.md ("Store layout").
 */
export class Store {
  readonly layout: StoreLayout;
  readonly leases: Leases;
  readonly content: ContentStore;
  readonly images: ImageNames;
  readonly snapshots: SnapshotStore;
  readonly buildCache: BuildCache;

  private constructor(
    readonly root: string,
    options: StoreOptions,
  ) {
    this.layout = storeLayout(root);
    this.leases = new Leases(this.layout.leases, this.layout.gcLock);
    this.content = new ContentStore(root, { leases: this.leases });
    this.images = new ImageNames(root);
    this.snapshots = new SnapshotStore(root, { leases: this.leases, durable: options.durableSnapshots });
    this.buildCache = new BuildCache(this.layout.cache, this.content);
  }

  /** Opens the store at `root`, creating its directories when missing. */
  static async open(root: string, options: StoreOptions = {}): Promise<Store> {
    const absolute = resolve(root);
    const layout = storeLayout(absolute);
    try {
      // Like /var/lib/containerd: the root may be traversed, snapshots (which can hold setuid
      // binaries) and partial writes are private, blobs are world-readable content.
      await mkdir(absolute, { recursive: true, mode: 0o711 });
      await mkdir(layout.blobs, { recursive: true, mode: 0o755 });
      await mkdir(layout.ingest, { recursive: true, mode: 0o700 });
      await mkdir(layout.snapshots, { recursive: true, mode: 0o700 });
      await mkdir(layout.cache, { recursive: true, mode: 0o700 });
      await mkdir(layout.locks, { recursive: true, mode: 0o755 });
      await mkdir(layout.leases, { recursive: true, mode: 0o755 });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `cannot create the store at ${absolute}: ${code} (use --root or STRATA_ROOT)`,
          {
            cause: err,
          },
        );
      }
      if (code === 'EEXIST' || code === 'ENOTDIR') {
        throw new StrataError('INVALID_ARGUMENT', `store root ${absolute} is not a directory`, {
          cause: err,
        });
      }
      throw err;
    }
    if (!(await stat(absolute)).isDirectory()) {
      throw new StrataError('INVALID_ARGUMENT', `store root ${absolute} is not a directory`);
    }
    return new Store(absolute, options);
  }

  /**
   * Runs `work` under an operation lease: blobs and snapshots it stores stay safe from any
   * collection (in this process too) until it returns, by which time it should have named them.
   */
  withLease<T>(work: () => Promise<T>): Promise<T> {
    return this.leases.withLease(work);
  }

  /** An operation lease to pass as `{ lease }` to ingests; the caller releases it (lease.ts). */
  lease(): Lease {
    return this.leases.create();
  }

  /**
   * Pins `target` as a GC root under `name` until `unpin(name)`: content that something other
   * than an image name needs (a container's image, which `rmi` may untag while it runs).
   * `pins/<name>.json` holds the descriptor.
   */
  async pin(name: string, target: Descriptor): Promise<void> {
    await mkdir(this.layout.pins, { recursive: true, mode: 0o755 });
    await writeFileAtomic(join(this.layout.pins, `${pinFileName(name)}.json`), JSON.stringify(target));
  }

  async unpin(name: string): Promise<void> {
    await rm(join(this.layout.pins, `${pinFileName(name)}.json`), { force: true });
  }

  /** Every pinned descriptor (unreadable pin files are skipped). */
  async pinnedTargets(): Promise<Descriptor[]> {
    const names = await readdirIfExists(this.layout.pins);
    const targets: Descriptor[] = [];
    for (const name of names.filter((entry) => entry.endsWith('.json'))) {
      try {
        targets.push(JSON.parse(await readFile(join(this.layout.pins, name), 'utf8')) as Descriptor);
      } catch {
        // A torn write cannot happen (atomic), a hand-edited file protects nothing.
      }
    }
    return targets;
  }

  async collectGarbage(options: GcOptions = {}): Promise<GcReport> {
    const pinned = await this.pinnedTargets();
    return collectGarbage(this, { ...options, extraRoots: [...(options.extraRoots ?? []), ...pinned] });
  }
}

/** Pin names are free text (`container-<id>`); kept to safe file names. */
function pinFileName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    throw new StrataError('INVALID_ARGUMENT', `invalid pin name ${name}`);
  return name;
}
