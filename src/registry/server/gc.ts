import { errnoCode } from '../../errors.js';
import { digestAlgorithm, digestOf, isDigest, type Digest } from '../../oci/digest.js';
import { manifestReferences, type ManifestReferences } from './manifest-refs.js';
import type { ObjectInfo, StorageDriver } from './storage/driver.js';
import { StoragePaths } from './storage/paths.js';
import { mapLimited } from './concurrency.js';

export interface GcOptions {
  /** Decide and report exactly as a real run would, but change nothing. */
  dryRun?: boolean;
  /**
   * Also remove manifest revisions that no tag reaches (directly, as an index's child, or as a
   * referrer of a reached manifest) once their link is older than the grace period.
   */
  deleteUntagged?: boolean;
  /**
   * Unreferenced blobs whose data or any link to them changed more recently than this are spared:
   * they belong to a push in progress. Default 1 hour.
   */
  gracePeriodMs?: number;
  /** Upload sessions untouched for longer than this are abandoned and removed. Default 24 hours. */
  uploadPurgeAgeMs?: number;
  /** Milliseconds since the epoch; tests pass a clock. */
  now?: () => number;
  /** One line per decision worth knowing (deletions, skipped damaged content) and a summary. */
  log?: (line: string) => void;
}

export interface GcReport {
  repositories: number;
  /** Distinct manifests found live (tagged, revisions, index children, referrers). */
  manifestsMarked: number;
  /** Blobs present in storage that something live references (manifests included). */
  blobsMarked: number;
  blobsDeleted: Array<{ digest: Digest; size: number }>;
  bytesFreed: number;
  /** Blobs nothing references that were kept because they were used within the grace period. */
  blobsSpared: number;
  /** Untagged manifests whose revision was removed from at least one repository. */
  manifestsDeleted: Digest[];
  uploadsPurged: number;
  dryRun: boolean;
}

/**
 * Where a blob waits while the collector checks that no client started using it during the
 * delete. Outside `blobs/` and `repositories/`, so nothing else ever reads or lists it; a run that
 * died with blobs still here puts them back first.
 */
export const GC_QUARANTINE_ROOT = '_gc/quarantine';

const HOUR_MS = 60 * 60 * 1000;
const DEFAULT_GRACE_PERIOD_MS = HOUR_MS;
const DEFAULT_UPLOAD_PURGE_AGE_MS = 24 * HOUR_MS;
/** Manifests are small (registries refuse more than 4 MiB); a larger "manifest" is damage. */
const MANIFEST_READ_LIMIT = 8 * 1024 * 1024;
/** Storage calls in flight at once: enough to hide an object store's latency, not to flood a disk. */
const CONCURRENCY = 16;
const REPOSITORY_MARKERS = new Set(['_manifests', '_layers', '_uploads', '_referrers']);

/**
 * Online mark and sweep over a registry's storage (see paths.ts for the layout).
 *
 * Mark: in every repository, every manifest revision, tag and referrer (only what tags reach, plus
 * recent revisions, with `deleteUntagged`) is live, with everything it references, through index
 * children at any depth. A referrer's subject is not followed: signatures keep nothing alive but
 * themselves. A manifest that is missing or damaged is logged and its references are not followed;
 * a storage error, on the other hand, aborts the run before anything is deleted (a mark built on
 * a partial read would delete live blobs).
 *
 * Sweep, safe while clients push: the registry touches a repository's link to a blob whenever a
 * client uploads, HEADs, mounts or references it (manifest PUT), *before* checking that the blob
 * exists. An unreferenced blob is deleted only if neither its data nor any link to it changed
 * within the grace period, and the deletion itself is two-phase: the data moves to a quarantine,
 * the links are checked again, and the blob goes back if a client touched one in between. So a
 * client either sees its touch honoured or finds the blob gone (and uploads it again); it never
 * gets a manifest accepted over a blob that is then deleted.
 *
 * What this asks of the HTTP layer: touch (or write) the repository's link *before* checking that
 * a blob exists (HEAD, GET), on upload commit, and on manifest PUT for every blob and child
 * manifest it references. A mount creates a link a run already under way does not know: it must
 * touch the blob's data before checking it (as should anything that reaches a blob without a link
 * of its own). One collection at a time per storage.
 */
export async function collectGarbage(driver: StorageDriver, options: GcOptions = {}): Promise<GcReport> {
  return new Collector(driver, options).run();
}

interface RepositoryScan {
  readonly name: string;
  readonly revisions: readonly Digest[];
  readonly tags: ReadonlyMap<string, Digest>;
  /** Subject → the referrers listed for it. */
  readonly referrers: ReadonlyMap<Digest, readonly Digest[]>;
  readonly layers: readonly Digest[];
  readonly uploads: readonly string[];
}

interface LiveSet {
  /** Manifests this repository keeps. */
  readonly kept: ReadonlySet<Digest>;
  /** Untagged, unreachable revisions past the grace period (only with `deleteUntagged`). */
  readonly doomed: readonly Digest[];
}

/** The links that can mark a blob as in use: layer links go with the blob, the others are kept. */
interface BlobLinks {
  readonly layerLinks: string[];
  readonly otherLinks: string[];
}

class Collector {
  private readonly dryRun: boolean;
  private readonly deleteUntagged: boolean;
  private readonly gracePeriodMs: number;
  private readonly uploadPurgeAgeMs: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly limiter = new Limiter(CONCURRENCY);
  private readonly references = new Map<Digest, Promise<ManifestReferences | undefined>>();
  private readonly markedManifests = new Set<Digest>();
  private readonly marked = new Set<Digest>();
  private readonly blobsDeleted: Array<{ digest: Digest; size: number }> = [];
  private blobsSpared = 0;

  constructor(
    private readonly driver: StorageDriver,
    options: GcOptions,
  ) {
    this.dryRun = options.dryRun ?? false;
    this.deleteUntagged = options.deleteUntagged ?? false;
    this.gracePeriodMs = options.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS;
    this.uploadPurgeAgeMs = options.uploadPurgeAgeMs ?? DEFAULT_UPLOAD_PURGE_AGE_MS;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => {});
  }

  async run(): Promise<GcReport> {
    await this.recoverQuarantine();
    // Blobs are listed before the manifests are read: a blob that arrives later is not in the
    // sweep at all, and one listed now but referenced by a later push is protected by its links.
    const blobs = await this.listBlobs();
    const names = await this.findRepositories(StoragePaths.repositoriesRoot, []);
    const repositories = await mapLimited(names, CONCURRENCY, (name) => this.scanRepository(name));

    const liveSets = await mapLimited(repositories, CONCURRENCY, (repository) => this.liveSet(repository));
    await Promise.all(
      repositories.flatMap((repository, index) =>
        [...liveSets[index]!.kept].map((digest) => this.markManifest(digest, repository.name)),
      ),
    );

    const deletedManifests = new Map<RepositoryScan, Set<Digest>>();
    for (const [index, repository] of repositories.entries()) {
      const deleted = await this.deleteManifests(repository, liveSets[index]!);
      if (deleted.size > 0) deletedManifests.set(repository, deleted);
    }

    const links = this.indexLinks(repositories);
    const unmarked = blobs.filter((digest) => !this.marked.has(digest));
    await mapLimited(unmarked, CONCURRENCY, (digest) =>
      this.sweepBlob(digest, links.get(digest) ?? { layerLinks: [], otherLinks: [] }),
    );
    await this.restoreRetaggedManifests(deletedManifests);

    const uploadsPurged = (
      await mapLimited(repositories, CONCURRENCY, (repository) => this.purgeUploads(repository))
    ).reduce((sum, count) => sum + count, 0);

    const blobsDeleted = this.blobsDeleted.sort((a, b) => compare(a.digest, b.digest));
    const manifestsDeleted = [...new Set([...deletedManifests.values()].flatMap((set) => [...set]))].sort(
      compare,
    );
    const report: GcReport = {
      repositories: repositories.length,
      manifestsMarked: this.markedManifests.size,
      blobsMarked: blobs.filter((digest) => this.marked.has(digest)).length,
      blobsDeleted,
      bytesFreed: blobsDeleted.reduce((sum, blob) => sum + blob.size, 0),
      blobsSpared: this.blobsSpared,
      manifestsDeleted,
      uploadsPurged,
      dryRun: this.dryRun,
    };
    this.log(summary(report));
    return report;
  }

  /** Puts back blobs a previous run quarantined and then died before finishing with. */
  private async recoverQuarantine(): Promise<void> {
    for (const digest of await this.digestsUnder(GC_QUARANTINE_ROOT)) {
      const held = quarantinePath(digest);
      const data = StoragePaths.blobData(digest);
      if (this.dryRun) {
        this.log(`gc: would recover ${digest} from an interrupted run`);
      } else if (await this.driver.stat(data)) {
        await this.driver.delete(held);
      } else {
        await this.driver.move(held, data);
        this.log(`gc: recovered ${digest} from an interrupted run`);
      }
    }
  }

  private async listBlobs(): Promise<Digest[]> {
    const blobs: Digest[] = [];
    for (const algorithm of await this.driver.list(StoragePaths.blobsRoot)) {
      const algorithmPrefix = `${StoragePaths.blobsRoot}/${algorithm}`;
      for (const shard of await this.driver.list(algorithmPrefix)) {
        for (const hex of await this.driver.list(`${algorithmPrefix}/${shard}`)) {
          const digest = `${algorithm}:${hex}`;
          // Only what sits exactly where blobData puts it is a blob we understand; anything else
          // is left alone rather than guessed at.
          if (
            isDigest(digest) &&
            StoragePaths.blobData(digest) === `${algorithmPrefix}/${shard}/${hex}/data`
          ) {
            blobs.push(digest);
          } else {
            this.log(`gc: ignoring ${algorithmPrefix}/${shard}/${hex}: not a blob path`);
          }
        }
      }
    }
    return blobs;
  }

  /** Repository names: prefixes under repositories/ holding any of the `_…` layout directories. */
  private async findRepositories(prefix: string, components: readonly string[]): Promise<string[]> {
    const children = await this.driver.list(prefix);
    const found: string[] = [];
    if (components.length > 0 && children.some((child) => REPOSITORY_MARKERS.has(child))) {
      found.push(components.join('/'));
    }
    for (const child of children) {
      // Name components start with [a-z0-9]; `_…` names are the layout's own.
      if (!child.startsWith('_'))
        found.push(...(await this.findRepositories(`${prefix}/${child}`, [...components, child])));
    }
    return found;
  }

  private async scanRepository(name: string): Promise<RepositoryScan> {
    const tags = new Map<string, Digest>();
    for (const tag of await this.driver.list(StoragePaths.tags(name))) {
      const target = await this.readLink(StoragePaths.tagLink(name, tag));
      if (target) tags.set(tag, target);
      else this.log(`gc: ${name}: tag ${tag} has no valid link; ignored`);
    }
    const referrers = new Map<Digest, Digest[]>();
    for (const subject of await this.digestsUnder(`${StoragePaths.repository(name)}/_referrers`)) {
      referrers.set(subject, await this.digestsUnder(StoragePaths.referrers(name, subject)));
    }
    return {
      name,
      revisions: await this.digestsUnder(StoragePaths.manifestRevisions(name)),
      tags,
      referrers,
      layers: await this.digestsUnder(StoragePaths.layerLinks(name)),
      uploads: await this.driver.list(StoragePaths.uploads(name)),
    };
  }

  /** What the repository keeps: every revision, or with `deleteUntagged` what tags and recency keep. */
  private async liveSet(repository: RepositoryScan): Promise<LiveSet> {
    const kept = new Set<Digest>();
    if (!this.deleteUntagged) {
      const referrers = [...repository.referrers.values()].flat();
      await this.reach(
        repository,
        [...repository.revisions, ...repository.tags.values(), ...referrers],
        kept,
      );
      return { kept, doomed: [] };
    }
    await this.reach(repository, repository.tags.values(), kept);
    const untagged = repository.revisions.filter((digest) => !kept.has(digest));
    const links = await Promise.all(
      untagged.map((digest) =>
        this.limiter.run(() => this.driver.stat(StoragePaths.manifestRevisionLink(repository.name, digest))),
      ),
    );
    // A recent untagged revision is a push in progress (an index's children come before the
    // index, a manifest can be pushed by digest and tagged later): it and what it reaches stay.
    const recent = untagged.filter((_, index) => links[index] && this.isRecent(links[index].modifiedAt));
    await this.reach(repository, recent, kept);
    return { kept, doomed: untagged.filter((digest, index) => links[index] && !kept.has(digest)) };
  }

  /** Adds to `reached` the roots, their index children and their referrers, transitively. */
  private async reach(
    repository: RepositoryScan,
    roots: Iterable<Digest>,
    reached: Set<Digest>,
  ): Promise<void> {
    let frontier = [...new Set(roots)].filter((digest) => !reached.has(digest));
    for (const digest of frontier) reached.add(digest);
    while (frontier.length > 0) {
      const found = await Promise.all(
        frontier.map((digest) => this.manifestReferences(digest, repository.name)),
      );
      const next: Digest[] = [];
      frontier.forEach((digest, index) => {
        for (const child of [
          ...(found[index]?.manifests ?? []),
          ...(repository.referrers.get(digest) ?? []),
        ]) {
          if (reached.has(child)) continue;
          reached.add(child);
          next.push(child);
        }
      });
      frontier = next;
    }
  }

  private async markManifest(digest: Digest, repository: string): Promise<void> {
    if (this.markedManifests.has(digest)) return;
    this.markedManifests.add(digest);
    this.marked.add(digest);
    const references = await this.manifestReferences(digest, repository);
    if (!references) return;
    for (const blob of references.blobs) this.marked.add(blob);
    await Promise.all(references.manifests.map((child) => this.markManifest(child, repository)));
  }

  /** A manifest's references, read once per run; undefined (and one log line) when unusable. */
  private manifestReferences(digest: Digest, repository: string): Promise<ManifestReferences | undefined> {
    let references = this.references.get(digest);
    if (!references) {
      references = this.limiter.run(() => this.readManifest(digest, repository));
      this.references.set(digest, references);
    }
    return references;
  }

  private async readManifest(digest: Digest, repository: string): Promise<ManifestReferences | undefined> {
    const path = StoragePaths.blobData(digest);
    const skip = (reason: string) => {
      this.log(`gc: ${repository}: manifest ${digest} ${reason}; its references are not followed`);
      return undefined;
    };
    const info = await this.driver.stat(path);
    if (!info || info.isDirectory) return skip('is missing');
    if (info.size > MANIFEST_READ_LIMIT) return skip(`is ${info.size} bytes, too large for a manifest`);
    const content = await this.driver.getContent(path);
    if (!content) return skip('is missing');
    if (digestOf(content, digestAlgorithm(digest)) !== digest) return skip('does not match its digest');
    try {
      return manifestReferences(JSON.parse(content.toString('utf8')));
    } catch (err) {
      return skip(`is unreadable (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  /**
   * Removes the revision links of doomed manifests, then the referrer links that would name a
   * deleted manifest: those of a deleted referrer, and those under a deleted subject whose referrer
   * is not kept. A kept referrer stays listed under its deleted subject, as OCI 1.1 lets referrers
   * exist before their subject: if the subject is pushed again, its signatures are still found.
   */
  private async deleteManifests(repository: RepositoryScan, live: LiveSet): Promise<Set<Digest>> {
    const deleted = new Set<Digest>();
    const { name } = repository;
    for (const digest of live.doomed) {
      const link = StoragePaths.manifestRevisionLink(name, digest);
      // Looked at again right before deleting: a client may have pushed it again since.
      const current = await this.driver.stat(link);
      if (!current || this.isRecent(current.modifiedAt)) continue;
      deleted.add(digest);
      this.log(`gc: ${name}: ${this.dryRun ? 'would delete' : 'deleting'} untagged manifest ${digest}`);
      if (!this.dryRun) await this.driver.delete(link);
    }
    if (this.dryRun || deleted.size === 0) return deleted;
    const doomed = new Set(live.doomed);
    const stillLive = (digest: Digest) =>
      live.kept.has(digest) || (doomed.has(digest) && !deleted.has(digest));
    for (const [subject, referrers] of repository.referrers) {
      for (const referrer of referrers) {
        if (stillLive(referrer) || !(deleted.has(referrer) || deleted.has(subject))) continue;
        await this.driver.delete(StoragePaths.referrerLink(name, subject, referrer));
      }
    }
    return deleted;
  }

  /**
   * A client may tag a manifest between our last look at its revision link and its deletion; the
   * tag would then name a manifest the repository no longer lists. Put such links back.
   */
  private async restoreRetaggedManifests(deletedManifests: Map<RepositoryScan, Set<Digest>>): Promise<void> {
    if (this.dryRun) return;
    for (const [{ name }, deleted] of deletedManifests) {
      for (const tag of await this.driver.list(StoragePaths.tags(name))) {
        const target = await this.readLink(StoragePaths.tagLink(name, tag));
        if (!target || !deleted.has(target)) continue;
        const link = StoragePaths.manifestRevisionLink(name, target);
        if (!(await this.driver.stat(link))) await this.driver.putContent(link, Buffer.from(target));
        deleted.delete(target);
        this.log(`gc: ${name}: manifest ${target} was tagged ${tag} during the run; kept`);
      }
    }
  }

  private indexLinks(repositories: readonly RepositoryScan[]): Map<Digest, BlobLinks> {
    const links = new Map<Digest, BlobLinks>();
    const entry = (digest: Digest) => {
      let found = links.get(digest);
      if (!found) links.set(digest, (found = { layerLinks: [], otherLinks: [] }));
      return found;
    };
    for (const { name, layers, revisions, referrers } of repositories) {
      for (const digest of layers) entry(digest).layerLinks.push(StoragePaths.layerLink(name, digest));
      for (const digest of revisions)
        entry(digest).otherLinks.push(StoragePaths.manifestRevisionLink(name, digest));
      for (const [subject, listed] of referrers) {
        for (const digest of listed)
          entry(digest).otherLinks.push(StoragePaths.referrerLink(name, subject, digest));
      }
    }
    return links;
  }

  private async sweepBlob(digest: Digest, links: BlobLinks): Promise<void> {
    const dataPath = StoragePaths.blobData(digest);
    const data = await this.driver.stat(dataPath);
    if (!data || data.isDirectory) return;
    const allLinks = [...links.layerLinks, ...links.otherLinks];
    if (this.isRecent(data.modifiedAt) || (await this.anyRecent(allLinks))) {
      this.blobsSpared++;
      return;
    }
    if (this.dryRun) {
      this.log(`gc: would delete blob ${digest} (${data.size} bytes)`);
      this.blobsDeleted.push({ digest, size: data.size });
      return;
    }
    const held = quarantinePath(digest);
    try {
      await this.driver.move(dataPath, held);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    // A client that used the blob since we looked touched a link (or the data, which the move
    // carried along with its time) first, so we see it now; a client that comes later finds the
    // blob absent. A new upload of the same bytes puts data back.
    const uploadedAgain = await this.driver.stat(dataPath);
    const quarantined = await this.driver.stat(held);
    const touched = quarantined !== undefined && this.isRecent(quarantined.modifiedAt);
    if (uploadedAgain || touched || (await this.anyRecent(allLinks))) {
      if (uploadedAgain) await this.driver.delete(held);
      else await this.driver.move(held, dataPath);
      this.blobsSpared++;
      this.log(`gc: blob ${digest} was used during the run; kept`);
      return;
    }
    await this.driver.delete(held);
    for (const link of links.layerLinks) await this.driver.delete(link);
    this.log(`gc: deleted blob ${digest} (${data.size} bytes)`);
    this.blobsDeleted.push({ digest, size: data.size });
  }

  private async purgeUploads(repository: RepositoryScan): Promise<number> {
    let purged = 0;
    for (const id of repository.uploads) {
      const [state, data] = await Promise.all([
        this.driver.stat(StoragePaths.uploadState(repository.name, id)),
        this.driver.stat(StoragePaths.uploadData(repository.name, id)),
      ]);
      const session = StoragePaths.upload(repository.name, id);
      const lastModified = newest([state, data]) ?? (await this.driver.stat(session))?.modifiedAt;
      if (!lastModified || this.now() - lastModified.getTime() <= this.uploadPurgeAgeMs) continue;
      this.log(`gc: ${repository.name}: ${this.dryRun ? 'would purge' : 'purging'} abandoned upload ${id}`);
      if (!this.dryRun) await this.driver.delete(session);
      purged++;
    }
    return purged;
  }

  private async anyRecent(paths: readonly string[]): Promise<boolean> {
    for (const path of paths) {
      const info = await this.driver.stat(path);
      if (info && this.isRecent(info.modifiedAt)) return true;
    }
    return false;
  }

  private isRecent(modifiedAt: Date): boolean {
    return this.now() - modifiedAt.getTime() < this.gracePeriodMs;
  }

  private async readLink(path: string): Promise<Digest | undefined> {
    const content = (await this.driver.getContent(path))?.toString('utf8').trim();
    return content !== undefined && isDigest(content) ? content : undefined;
  }

  /** Digests stored as `<prefix>/<algorithm>/<hex>/…`, the shape of every link directory. */
  private async digestsUnder(prefix: string): Promise<Digest[]> {
    const digests: Digest[] = [];
    for (const algorithm of await this.driver.list(prefix)) {
      for (const hex of await this.driver.list(`${prefix}/${algorithm}`)) {
        const digest = `${algorithm}:${hex}`;
        if (isDigest(digest)) digests.push(digest);
        else this.log(`gc: ignoring ${prefix}/${algorithm}/${hex}: not a digest`);
      }
    }
    return digests;
  }
}

function quarantinePath(digest: Digest): string {
  return `${GC_QUARANTINE_ROOT}/${digestAlgorithm(digest)}/${digest.slice(digest.indexOf(':') + 1)}`;
}

function newest(infos: ReadonlyArray<ObjectInfo | undefined>): Date | undefined {
  let latest: Date | undefined;
  for (const info of infos) if (info && (!latest || info.modifiedAt > latest)) latest = info.modifiedAt;
  return latest;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function summary(report: GcReport): string {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  return (
    `gc: ${report.repositories} repositories; ${report.manifestsMarked} manifests and ${report.blobsMarked} blobs in use; ` +
    `${verb} ${report.blobsDeleted.length} blobs (${report.bytesFreed} bytes) and ${report.manifestsDeleted.length} untagged manifests; ` +
    `${report.blobsSpared} unreferenced blobs within the grace period; ` +
    `${report.dryRun ? 'would purge' : 'purged'} ${report.uploadsPurged} abandoned uploads`
  );
}

/** At most `limit` tasks at once; only leaf storage calls go through it, so it cannot deadlock. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so `active` counts it still.
      const wake = this.waiting.shift();
      if (wake) wake();
      else this.active--;
    }
  }
}
