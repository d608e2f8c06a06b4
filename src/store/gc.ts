import { MediaType } from '../oci/mediatypes.js';
import type { BuildCache } from './build-cache.js';
import { dirname } from 'node:path';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import {
  isConfigMediaType,
  isIndexMediaType,
  isLayerMediaType,
  isManifestMediaType,
} from '../oci/mediatypes.js';
import { StrataError, isStrataError } from '../errors.js';
import { cleanAtomicTemps } from './atomic.js';
import type { ContentStore } from './content.js';
import type { ImageNames } from './images.js';
import { snapshotLeaseKey, type Leases } from './lease.js';
import { messageOf, withFileLock } from './lock.js';
import { chainIds, type SnapshotInfo, type SnapshotStore } from './snapshots.js';

/** What a reachable blob references: its children, and for an image config, its layers' diff IDs. */
export interface GcNode {
  children: Descriptor[];
  diffIds?: Digest[];
}

/**
 * Tells the collector what a present blob references. The default reads manifests, indexes and
 * configs leniently (see `expandOciNode`); a caller with stricter parsing can pass its own.
 */
export type ExpandNode = (descriptor: Descriptor, content: ContentStore) => Promise<GcNode>;

export interface GcOptions {
  /** Report what would go, remove nothing. */
  dryRun?: boolean;
  /** More roots besides named images: descriptors, or bare digests (their content is sniffed). */
  extraRoots?: readonly (Descriptor | Digest)[];
  expand?: ExpandNode;
  /** Ingest partials and temps of live processes older than this are debris. Default 24 h. */
  debrisAgeMs?: number;
}

export interface GcReport {
  blobsRemoved: number;
  snapshotsRemoved: number;
  /** Blobs, snapshots (their recorded size) and ingest debris. */
  bytesFreed: number;
  /** Abandoned ingest temps, partials and atomic-write temps. */
  debrisRemoved: number;
  /** Leases of processes that died. */
  leasesRemoved: number;
  /** Digests of the blobs removed (or that would be). */
  removed: Digest[];
  removedSnapshots: Digest[];
  /** Reachable blobs that could not be read; they are kept, but what they reference is not. */
  warnings: string[];
}

export interface GcStore {
  content: ContentStore;
  buildCache: BuildCache;
  images: ImageNames;
  snapshots: SnapshotStore;
  leases: Leases;
}

const DEFAULT_DEBRIS_AGE_MS = 24 * 60 * 60 * 1000;
/** Manifests, indexes and configs are small; larger blobs are not read as JSON. */
const METADATA_LIMIT = 8 * 1024 * 1024;
const EXPAND_CONCURRENCY = 16;

/**
 * Mark and sweep. Roots are every named target (index → manifests → config + layers, any depth)
 * and `extraRoots`; a referrer's `subject` is not followed and an unnamed referrer is not a root,
 * so signatures and SBOMs live exactly as long as something names them. Swept: unreachable blobs,
 * snapshots whose chain ID no reachable config needs, debris of interrupted writes.
 *
 * Race model:
 * - Names: the whole mark and sweep runs under the images lock, so a concurrent tag either lands
 *   before (and is marked) or after (and then only names content that was kept).
 * - Content written but not yet named (a load in progress): protected by leases (lease.ts). The
 *   sweep also holds `locks/gc.lock`, lists blobs and snapshots *before* reading leases, and a
 *   writer records its lease *before* it checks that lock; together these guarantee a writer's
 *   blob is either seen as leased or committed after the sweep. No grace period is needed, so
 *   `rmi` frees space at once, and a killed load's blobs go with its (dead) lease.
 * - Deleting snapshot trees is slow, so they are only renamed aside under the locks and deleted
 *   after.
 */
export async function collectGarbage(store: GcStore, options: GcOptions = {}): Promise<GcReport> {
  const dryRun = options.dryRun === true;
  const expand = options.expand ?? expandOciNode;
  const report: GcReport = {
    blobsRemoved: 0,
    snapshotsRemoved: 0,
    bytesFreed: 0,
    debrisRemoved: 0,
    leasesRemoved: 0,
    removed: [],
    removedSnapshots: [],
    warnings: [],
  };
  const detached: string[] = [];
  await store.images.withLock((records) =>
    withFileLock(store.leases.gcLockPath, async () => {
      const roots: Descriptor[] = records.map((record) => record.target);
      // Build cache records keep their layers (their snapshots can be unpacked again from them).
      for (const record of await store.buildCache.list()) {
        if (record.layer)
          roots.push({ mediaType: MediaType.ociLayer, digest: record.layer.diffId, size: record.layer.size });
      }
      for (const root of options.extraRoots ?? []) {
        roots.push(typeof root === 'string' ? { mediaType: '', digest: root, size: 0 } : root);
      }
      const { marked, neededChains } = await mark(store.content, roots, expand, report.warnings);

      // Listing strictly before reading the leases: see the race model above and lease.ts.
      const unmarked: { digest: Digest; size: number }[] = [];
      for await (const blob of store.content.list()) if (!marked.has(blob.digest)) unmarked.push(blob);
      const snapshots = await store.snapshots.list();
      const { keys: leased, deadRemoved } = await store.leases.held({ dryRun });
      report.leasesRemoved = deadRemoved;

      for (const blob of unmarked) {
        if (leased.has(blob.digest)) continue;
        if (!dryRun && !(await store.content.delete(blob.digest))) continue;
        report.blobsRemoved++;
        report.bytesFreed += blob.size;
        report.removed.push(blob.digest);
      }

      const keep = keptSnapshots(snapshots, neededChains, leased);
      for (const snapshot of snapshots) {
        if (keep.has(snapshot.chainId)) continue;
        if (!dryRun) {
          const trash = await store.snapshots.detach(snapshot.chainId);
          if (!trash) continue;
          detached.push(trash);
        }
        report.snapshotsRemoved++;
        report.bytesFreed += snapshot.size;
        report.removedSnapshots.push(snapshot.chainId);
      }
    }),
  );
  for (const trash of detached) await store.snapshots.removeDetached(trash);

  // Debris belongs to no image and is judged by owner liveness and age, so no lock is needed.
  const olderThanMs = options.debrisAgeMs ?? DEFAULT_DEBRIS_AGE_MS;
  const ingest = await store.content.cleanIngest({ olderThanMs, dryRun });
  const temps = await cleanAtomicTemps(dirname(store.images.path), { olderThanMs, dryRun });
  report.debrisRemoved = ingest.removed + temps.removed;
  report.debrisRemoved += await store.snapshots.cleanup({ olderThanMs, dryRun });
  report.bytesFreed += ingest.bytes + temps.bytes;
  return report;
}

async function mark(
  content: ContentStore,
  roots: readonly Descriptor[],
  expand: ExpandNode,
  warnings: string[],
): Promise<{ marked: Set<Digest>; neededChains: Set<Digest> }> {
  const marked = new Set<Digest>();
  const neededChains = new Set<Digest>();
  let frontier = roots.filter((root) => isDigest(root.digest));
  while (frontier.length > 0) {
    const next: Descriptor[] = [];
    const fresh = frontier.filter((descriptor) => {
      if (marked.has(descriptor.digest)) return false;
      marked.add(descriptor.digest);
      return true;
    });
    for (let start = 0; start < fresh.length; start += EXPAND_CONCURRENCY) {
      const batch = fresh.slice(start, start + EXPAND_CONCURRENCY);
      const nodes = await Promise.all(
        batch.map((descriptor) => expandPresent(content, descriptor, expand, warnings)),
      );
      for (const node of nodes) {
        next.push(...node.children.filter((child) => isDigest(child.digest)));
        for (const chainId of chainIds(node.diffIds ?? [])) neededChains.add(chainId);
      }
    }
    frontier = next;
  }
  return { marked, neededChains };
}

/** A child that is not in the store (one platform of an index was pulled) references nothing. */
async function expandPresent(
  content: ContentStore,
  descriptor: Descriptor,
  expand: ExpandNode,
  warnings: string[],
): Promise<GcNode> {
  if (!(await content.has(descriptor.digest))) return { children: [] };
  try {
    return await expand(descriptor, content);
  } catch (err) {
    // Unreadable content (corrupt, not JSON) is kept but cannot protect anything; a system error
    // (EIO, EMFILE) aborts the collection instead, since guessing would delete too much.
    if (!isStrataError(err)) throw err;
    warnings.push(`cannot read ${descriptor.digest}: ${messageOf(err)}; kept, but not what it references`);
    return { children: [] };
  }
}

/**
 * The default `expand`: layers are leaves and never read; manifests, indexes, configs and small
 * blobs of unknown type are read as JSON, and whatever looks like `manifests`, `config` +
 * `layers` or `rootfs.diff_ids` is followed. Erring on the side of following more only keeps
 * more, which is the safe direction for a collector. This stays independent of the strict
 * validation in oci/validate.ts on purpose: a GC must not lose content over a schema nit.
 */
export async function expandOciNode(descriptor: Descriptor, content: ContentStore): Promise<GcNode> {
  const type = descriptor.mediaType;
  if (isLayerMediaType(type)) return { children: [] };
  const known = isManifestMediaType(type) || isIndexMediaType(type) || isConfigMediaType(type);
  let bytes: Buffer;
  try {
    bytes = await content.readBytes(descriptor.digest, METADATA_LIMIT);
  } catch (err) {
    if (!known && isStrataError(err, 'INVALID_ARGUMENT')) return { children: [] }; // too big to be metadata
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    if (!known) return { children: [] };
    throw new StrataError('INVALID_MANIFEST', `${type} blob is not valid JSON (${messageOf(err)})`);
  }
  return describeJson(json);
}

function describeJson(json: unknown): GcNode {
  const node: GcNode = { children: [] };
  if (!isRecord(json)) return node;
  const descriptors = (value: unknown): Descriptor[] =>
    Array.isArray(value) ? value.filter(isDescriptor) : [];
  node.children.push(...descriptors(json.manifests));
  if (isDescriptor(json.config)) node.children.push(json.config);
  node.children.push(...descriptors(json.layers));
  // Deliberately not `subject`: a referrer does not keep its subject alive.
  const rootfs = json.rootfs;
  if (isRecord(rootfs) && Array.isArray(rootfs.diff_ids)) {
    node.diffIds = rootfs.diff_ids.filter((id): id is Digest => typeof id === 'string' && isDigest(id));
  }
  return node;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDescriptor(value: unknown): value is Descriptor {
  return (
    isRecord(value) &&
    typeof value.digest === 'string' &&
    isDigest(value.digest) &&
    typeof value.mediaType === 'string' &&
    typeof value.size === 'number'
  );
}

/** Snapshots to keep: needed by a reachable config or leased, plus every ancestor of those. */
function keptSnapshots(snapshots: SnapshotInfo[], needed: Set<Digest>, leased: Set<string>): Set<Digest> {
  const byId = new Map(snapshots.map((snapshot) => [snapshot.chainId, snapshot]));
  const keep = new Set<Digest>();
  for (const snapshot of snapshots) {
    if (!needed.has(snapshot.chainId) && !leased.has(snapshotLeaseKey(snapshot.chainId))) continue;
    for (let at: SnapshotInfo | undefined = snapshot; at && !keep.has(at.chainId);) {
      keep.add(at.chainId);
      at = at.parent === undefined ? undefined : byId.get(at.parent);
    }
  }
  return keep;
}
