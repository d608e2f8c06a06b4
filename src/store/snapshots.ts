import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { digestHex, isDigest, parseDigest, type Digest } from '../oci/digest.js';
import { StrataError, errnoCode } from '../errors.js';
import { fsyncDir, writeFileAtomic } from './atomic.js';
import { Leases, snapshotLeaseKey } from './lease.js';
import { processAlive } from './lock.js';
import { storeLayout } from './paths.js';
import { readdirIfExists } from './dirs.js';

/**
 * Chain IDs of a layer stack (OCI image spec, config.md "Layer ChainID"): the identity of a
 * layer *together with everything below it*, which is what an unpacked snapshot is.
 *   ChainID(L0) = DiffID(L0)
 *   ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const result: Digest[] = [];
  for (const diffId of diffIds) {
    const parent = result[result.length - 1];
    result.push(parent === undefined ? diffId : chainIdOf(parent, diffId));
  }
  return result;
}

function chainIdOf(parent: Digest, diffId: Digest): Digest {
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}

/** `snapshots/<chain-hex>/meta.json`, the commit record of a snapshot. */
interface SnapshotMeta {
  chainId: Digest;
  diffId: Digest;
  /** Chain ID of the snapshot below, null for a base layer. */
  parent: Digest | null;
  /** Bytes of regular files in the layer (hard links counted once). */
  size: number;
  created: string;
  /**
   * Set when the tree was not synced to disk: the boot it was written in. After a reboot it may
   * have lost data, so it counts as missing and is unpacked again.
   */
  unsyncedBoot?: string;
}

export interface SnapshotInfo {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  size: number;
  created: string;
  /** The unpacked tree: an overlay lower dir. */
  path: string;
}

export interface PrepareMeta {
  diffId: Digest;
  /** Chain ID of the layer below; it must already be prepared. */
  parent?: Digest;
  /** Bytes of the layer, when the unpacker knows; otherwise the tree is measured. */
  size?: number;
}

const TMP_PATTERN = /^tmp-(\d+)-[0-9a-f]{12}$/;
const TRASH_PATTERN = /^trash-(\d+)-[0-9a-f]{12}$/;
const SNAPSHOT_PATTERN = /^(?:[0-9a-f]{64}|[0-9a-f]{128})$/;

/**
 * Unpacked layers (containerd's snapshotter, overlay flavour), one directory per chain ID:
 * `snapshots/<chain-hex>/fs/` holds the layer's own files (with overlay whiteouts), meta.json
 * its record. A snapshot is built in `tmp-<pid>-<random>/` and renamed into place with its
 * meta.json inside, so it appears complete or not at all; a directory without a valid meta.json
 * is debris of something else and is ignored, then cleaned.
 */
export class SnapshotStore {
  readonly dir: string;
  private readonly leases: Leases;
  /** Snapshots survive a crash (synced); otherwise they are void after a reboot. */
  readonly durable: boolean;

  constructor(root: string, options: { leases?: Leases; durable?: boolean } = {}) {
    const layout = storeLayout(root);
    this.dir = layout.snapshots;
    this.leases = options.leases ?? new Leases(layout.leases, layout.gcLock);
    this.durable = options.durable ?? false;
  }

  private pathOf(chainId: Digest): string {
    return join(this.dir, digestHex(parseDigest(chainId)));
  }

  /** The snapshot, if it is complete. */
  async get(chainId: Digest): Promise<SnapshotInfo | undefined> {
    return this.readMeta(this.pathOf(chainId), chainId);
  }

  /** Every complete snapshot, by chain ID. */
  async list(): Promise<SnapshotInfo[]> {
    const found: SnapshotInfo[] = [];
    for (const name of await readdirIfExists(this.dir)) {
      if (!SNAPSHOT_PATTERN.test(name)) continue;
      const info = await this.readMeta(join(this.dir, name));
      if (info) found.push(info);
    }
    return found.sort((a, b) => (a.chainId < b.chainId ? -1 : 1));
  }

  /**
   * Returns the snapshot of `chainId`, creating it if needed: `unpack` fills a fresh empty
   * directory (it is not called when the snapshot exists), then the snapshot is committed. When
   * several callers prepare one chain ID at once, the first rename wins and the others drop
   * their copy and return the winner. If `unpack` fails, nothing is left behind.
   */
  async prepare(
    chainId: Digest,
    /** Fills `fsDir`; may return the bytes of regular files it wrote (else they are counted). */
    unpack: (fsDir: string) => Promise<number | void>,
    meta: PrepareMeta,
  ): Promise<SnapshotInfo> {
    parseDigest(chainId);
    parseDigest(meta.diffId);
    const expected =
      meta.parent === undefined ? meta.diffId : chainIdOf(parseDigest(meta.parent), meta.diffId);
    if (expected !== chainId) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `snapshot ${chainId} does not match its diff ID and parent (their chain ID is ${expected})`,
      );
    }
    const key = snapshotLeaseKey(chainId);
    if (await this.get(chainId)) {
      // Leased before it is handed out, so a concurrent collection cannot take it away.
      await this.leases.protect([key]);
      const existing = await this.get(chainId);
      if (existing) return existing;
    }
    if (meta.parent !== undefined && !(await this.get(meta.parent))) {
      throw new StrataError(
        'NOT_FOUND',
        `snapshot ${chainId} needs its parent ${meta.parent}, which is not prepared`,
      );
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fsDir = join(tmp, 'fs');
    await mkdir(fsDir, { recursive: true, mode: 0o755 });
    try {
      const written = await unpack(fsDir);
      const record: SnapshotMeta = {
        chainId,
        diffId: meta.diffId,
        parent: meta.parent ?? null,
        size: meta.size ?? (typeof written === 'number' ? written : await treeSize(fsDir)),
        created: new Date().toISOString(),
      };
      const boot = this.durable ? undefined : currentBootId();
      if (boot === undefined) await syncTree(fsDir);
      else record.unsyncedBoot = boot;
      // An unsynced snapshot is void after a reboot anyway: its metadata need not be synced either.
      const durable = boot === undefined;
      await writeFileAtomic(join(tmp, 'meta.json'), `${JSON.stringify(record, null, 2)}\n`, { durable });
      await this.leases.protect([key]);
      const final = this.pathOf(chainId);
      for (let attempt = 0; ; attempt++) {
        try {
          await rename(tmp, final);
          if (durable) await fsyncDir(this.dir);
          return toInfo(record, final);
        } catch (err) {
          if (errnoCode(err) !== 'ENOTEMPTY' && errnoCode(err) !== 'EEXIST') throw err;
          const winner = await this.get(chainId);
          if (winner) return winner;
          if (attempt >= 3) {
            throw new StrataError(
              'INTERNAL',
              `cannot commit snapshot ${final}: an incomplete directory is in the way`,
            );
          }
          // An incomplete directory (no valid meta.json) is in the way: set it aside, try again.
          const trash = await this.detachPath(final);
          if (trash) await removeTree(trash);
        }
      }
    } finally {
      // Gone after a successful rename; the loser's copy or a failed unpack goes here.
      await removeTree(tmp);
    }
  }

  /** Deletes a snapshot; false when it did not exist. Children that use it as a lower dir break. */
  async remove(chainId: Digest): Promise<boolean> {
    const trash = await this.detach(chainId);
    if (!trash) return false;
    await removeTree(trash);
    return true;
  }

  /**
   * Takes a snapshot out of the namespace at once (one rename) and returns where it went, so a
   * collector can delete the tree later without holding locks. Undefined when absent.
   */
  async detach(chainId: Digest): Promise<string | undefined> {
    return this.detachPath(this.pathOf(chainId));
  }

  /** Deletes a tree returned by `detach`. */
  async removeDetached(path: string): Promise<void> {
    await removeTree(path);
  }

  /** Overlay lower dirs for a snapshot, top (the snapshot itself) to bottom (the base layer). */
  async lowerDirs(chainId: Digest): Promise<string[]> {
    const dirs: string[] = [];
    const seen = new Set<Digest>();
    let next: Digest | undefined = chainId;
    while (next !== undefined) {
      if (seen.has(next)) throw new StrataError('CORRUPT_STORE', `snapshot ${chainId} has a parent cycle`);
      seen.add(next);
      const info: SnapshotInfo | undefined = await this.get(next);
      if (!info) {
        throw new StrataError(
          'NOT_FOUND',
          next === chainId
            ? `snapshot ${chainId} is not prepared`
            : `snapshot ${chainId} lacks its ancestor ${next}`,
        );
      }
      dirs.push(info.path);
      next = info.parent;
    }
    return dirs;
  }

  /**
   * Removes debris: build dirs of dead processes (or older than `olderThanMs`), trash of dead
   * processes, and snapshot dirs without a valid meta.json. Returns how many entries went.
   */
  async cleanup(options: { olderThanMs: number; dryRun?: boolean }): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const name of await readdirIfExists(this.dir)) {
      const path = join(this.dir, name);
      const tmp = TMP_PATTERN.exec(name) ?? TRASH_PATTERN.exec(name);
      let doomed: boolean;
      if (tmp) {
        const info = await lstat(path).catch(() => undefined);
        if (!info) continue;
        doomed = !processAlive(Number(tmp[1])) || now - info.mtimeMs > options.olderThanMs;
      } else if (SNAPSHOT_PATTERN.test(name)) {
        doomed = (await this.readMeta(path)) === undefined;
      } else {
        continue;
      }
      if (!doomed) continue;
      removed++;
      if (options.dryRun) continue;
      const trash = tmp ? path : await this.detachPath(path);
      if (trash) await removeTree(trash);
    }
    return removed;
  }

  private async detachPath(path: string): Promise<string | undefined> {
    const trash = join(this.dir, `trash-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await rename(path, trash);
      return trash;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async readMeta(dir: string, expected?: Digest): Promise<SnapshotInfo | undefined> {
    let text: string;
    try {
      text = await readFile(join(dir, 'meta.json'), 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
    let meta: unknown;
    try {
      meta = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (!isMeta(meta) || digestHex(meta.chainId) !== basename(dir)) return undefined;
    if (meta.unsyncedBoot !== undefined && meta.unsyncedBoot !== currentBootId()) return undefined;
    if (expected !== undefined && meta.chainId !== expected) return undefined;
    return toInfo(meta, dir);
  }
}

function toInfo(meta: SnapshotMeta, dir: string): SnapshotInfo {
  const info: SnapshotInfo = {
    chainId: meta.chainId,
    diffId: meta.diffId,
    size: meta.size,
    created: meta.created,
    path: join(dir, 'fs'),
  };
  if (meta.parent !== null) info.parent = meta.parent;
  return info;
}

function isMeta(value: unknown): value is SnapshotMeta {
  if (typeof value !== 'object' || value === null) return false;
  const meta = value as Record<string, unknown>;
  return (
    typeof meta.chainId === 'string' &&
    isDigest(meta.chainId) &&
    typeof meta.diffId === 'string' &&
    isDigest(meta.diffId) &&
    (meta.parent === null || (typeof meta.parent === 'string' && isDigest(meta.parent))) &&
    typeof meta.size === 'number' &&
    typeof meta.created === 'string' &&
    (meta.unsyncedBoot === undefined || typeof meta.unsyncedBoot === 'string')
  );
}

/** Bytes of regular files under `dir`, each inode once. */
async function treeSize(dir: string): Promise<number> {
  let total = 0;
  const inodes = new Set<string>();
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
      } else if (entry.isFile()) {
        const info = await lstat(path);
        const inode = `${info.dev}:${info.ino}`;
        if (info.nlink > 1) {
          if (inodes.has(inode)) continue;
          inodes.add(inode);
        }
        total += info.size;
      }
    }
  }
  return total;
}

const execFileAsync = promisify(execFile);

let bootId: string | undefined | null = null;

/**
 * This boot's ID (Linux: /proc/sys/kernel/random/boot_id); undefined where there is none, and
 * snapshots are then synced instead.
 */
function currentBootId(): string | undefined {
  if (bootId === null) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootId = undefined;
    }
  }
  return bootId;
}

/**
 * Makes an unpacked tree durable before its commit rename, so a crash cannot leave a committed
 * snapshot with empty files. One syncfs (`sync -f`) flushes the whole filesystem at the cost of a
 * single call, far cheaper than an fsync per file of a large layer; where that command is missing,
 * every file and directory is fsynced.
 */
async function syncTree(dir: string): Promise<void> {
  try {
    await execFileAsync('sync', ['-f', dir]);
    return;
  } catch {
    // Fall through to the portable way.
  }
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) await fsyncPath(path);
    }
    await fsyncPath(current);
  }
}

async function fsyncPath(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    // A file without read permission (mode 000 in a layer) cannot be opened by its non-root owner.
    if (errnoCode(err) === 'EACCES') return;
    throw err;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * rm -rf that also works on trees with read-only directories, which layers often contain (a
 * non-root owner cannot delete entries of a 0555 directory until it makes it writable).
 */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (err) {
    if (errnoCode(err) !== 'EACCES' && errnoCode(err) !== 'EPERM') throw err;
  }
  const pending = [path];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    await chmod(current, 0o700).catch(() => undefined);
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) pending.push(join(current, entry.name));
  }
  await rm(path, { recursive: true, force: true });
}
