import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { digestOf, type Digest } from '../../oci/digest.js';
import { GC_QUARANTINE_ROOT, collectGarbage, type GcOptions, type GcReport } from './gc.js';
import { readAll, walk } from './storage/driver-contract.js';
import type { ObjectInfo, ObjectWriter, StorageDriver } from './storage/driver.js';
import { FilesystemDriver } from './storage/filesystem.js';
import { MemoryDriver } from './storage/memory.js';
import { StoragePaths } from './storage/paths.js';

const HOUR = 3600_000;
const OLD = 2 * HOUR;

interface Harness {
  driver: StorageDriver;
  /** Makes the object at `path` look last modified `ms` ago. */
  age(path: string, ms: number): Promise<void>;
  cleanup(): Promise<void>;
}

/** MemoryDriver whose objects can be back-dated; anything that writes an object makes it fresh again. */
class AgeableMemoryDriver extends MemoryDriver {
  private readonly backdated = new Map<string, Date>();

  backdate(path: string, ms: number): void {
    this.backdated.set(path, new Date(Date.now() - ms));
  }

  override async stat(path: string): Promise<ObjectInfo | undefined> {
    const info = await super.stat(path);
    const modifiedAt = this.backdated.get(path);
    return info && modifiedAt && !info.isDirectory ? { ...info, modifiedAt } : info;
  }

  override async putContent(path: string, data: Uint8Array): Promise<void> {
    this.backdated.delete(path);
    await super.putContent(path, data);
  }

  override async touch(path: string): Promise<void> {
    this.backdated.delete(path);
    await super.touch(path);
  }

  override async move(from: string, to: string): Promise<void> {
    await super.move(from, to);
    const modifiedAt = this.backdated.get(from);
    this.backdated.delete(from);
    if (modifiedAt) this.backdated.set(to, modifiedAt);
    else this.backdated.delete(to);
  }

  override async delete(path: string): Promise<void> {
    await super.delete(path);
    for (const key of [...this.backdated.keys()]) {
      if (key === path || key.startsWith(`${path}/`)) this.backdated.delete(key);
    }
  }

  override async writer(path: string, options: { append: boolean }): Promise<ObjectWriter> {
    const writer = await super.writer(path, options);
    const commit = writer.commit.bind(writer);
    writer.commit = async () => {
      this.backdated.delete(path);
      await commit();
    };
    return writer;
  }
}

const HARNESSES: Record<string, () => Promise<Harness>> = {
  MemoryDriver: async () => {
    const driver = new AgeableMemoryDriver();
    return { driver, age: async (path, ms) => driver.backdate(path, ms), cleanup: async () => {} };
  },
  FilesystemDriver: async () => {
    const directory = await mkdtemp(join(tmpdir(), 'strata-registry-gc-'));
    const driver = await FilesystemDriver.open(join(directory, 'root'));
    return {
      driver,
      age: async (path, ms) => {
        const then = new Date(Date.now() - ms);
        await utimes(join(driver.root, ...path.split('/')), then, then);
      },
      cleanup: () => rm(directory, { recursive: true, force: true }),
    };
  },
};

/** Every object in the driver, with its content's digest: what a run changed or left alone. */
async function snapshot(driver: StorageDriver): Promise<Map<string, Digest>> {
  const objects = new Map<string, Digest>();
  for (const path of await walk(driver, '')) {
    const content = await driver.getContent(path);
    if (content) objects.set(path, digestOf(content));
  }
  return objects;
}

async function ageEverything(harness: Harness, ms = OLD): Promise<void> {
  for (const path of (await snapshot(harness.driver)).keys()) await harness.age(path, ms);
}

async function exists(driver: StorageDriver, digest: Digest): Promise<boolean> {
  return (await driver.stat(StoragePaths.blobData(digest))) !== undefined;
}

async function totalBlobs(driver: StorageDriver): Promise<number> {
  return [...(await snapshot(driver)).keys()].filter((path) => path.startsWith('blobs/')).length;
}

/** What the registry's HTTP layer writes, reduced to the storage operations. */
class Registry {
  constructor(readonly driver: StorageDriver) {}

  async blob(content: string | Buffer): Promise<Digest> {
    const digest = digestOf(content);
    await this.driver.putContent(StoragePaths.blobData(digest), Buffer.from(content));
    return digest;
  }

  /** A finished blob upload: data and the repository's link to it. */
  async upload(repository: string, content: string | Buffer): Promise<Digest> {
    const digest = await this.blob(content);
    await this.driver.putContent(StoragePaths.layerLink(repository, digest), Buffer.from(digest));
    return digest;
  }

  async image(
    repository: string,
    options: { tag?: string; layers: string[]; subject?: Digest; artifactType?: string },
  ): Promise<{ manifest: Digest; config: Digest; layers: Digest[]; size: number }> {
    const config = await this.upload(
      repository,
      JSON.stringify({ architecture: 'amd64', layers: options.layers }),
    );
    const layers: Digest[] = [];
    for (const layer of options.layers) layers.push(await this.upload(repository, layer));
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...(options.artifactType ? { artifactType: options.artifactType } : {}),
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 1 },
      layers: layers.map((digest) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest,
        size: 1,
      })),
      ...(options.subject
        ? {
            subject: {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: options.subject,
              size: 1,
            },
          }
        : {}),
    });
    const manifest = await this.manifest(repository, body, options.tag);
    if (options.subject) {
      await this.driver.putContent(
        StoragePaths.referrerLink(repository, options.subject, manifest),
        Buffer.from(manifest),
      );
    }
    return { manifest, config, layers, size: Buffer.byteLength(body) };
  }

  async index(repository: string, children: Digest[], tag?: string): Promise<Digest> {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: children.map((digest) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest,
        size: 1,
      })),
    });
    return this.manifest(repository, body, tag);
  }

  /** A manifest body stored as is (valid or not), with its revision link and optional tag. */
  async manifest(repository: string, body: string, tag?: string): Promise<Digest> {
    const digest = await this.blob(body);
    await this.driver.putContent(StoragePaths.manifestRevisionLink(repository, digest), Buffer.from(digest));
    if (tag) await this.tag(repository, tag, digest);
    return digest;
  }

  async tag(repository: string, tag: string, digest: Digest): Promise<void> {
    await this.driver.putContent(StoragePaths.tagLink(repository, tag), Buffer.from(digest));
  }

  async untag(repository: string, tag: string): Promise<void> {
    await this.driver.delete(StoragePaths.tag(repository, tag));
  }
}

/** Every blob is accounted for once: in use, spared, or deleted. */
function assertAccounted(report: GcReport, blobsBefore: number): void {
  assert.equal(report.blobsMarked + report.blobsSpared + report.blobsDeleted.length, blobsBefore);
  assert.equal(
    report.bytesFreed,
    report.blobsDeleted.reduce((sum, blob) => sum + blob.size, 0),
  );
}

async function gc(
  driver: StorageDriver,
  options: GcOptions = {},
): Promise<{ report: GcReport; lines: string[] }> {
  const lines: string[] = [];
  const report = await collectGarbage(driver, { ...options, log: (line) => lines.push(line) });
  return { report, lines };
}

for (const [driverName, makeHarness] of Object.entries(HARNESSES)) {
  const withRegistry = (work: (registry: Registry, harness: Harness) => Promise<void>) => async () => {
    const harness = await makeHarness();
    try {
      await work(new Registry(harness.driver), harness);
    } finally {
      await harness.cleanup();
    }
  };

  describe(`registry gc on ${driverName}`, () => {
    test(
      'empty storage: nothing to do',
      withRegistry(async (registry) => {
        const { report, lines } = await gc(registry.driver);
        assert.deepEqual(report, {
          repositories: 0,
          manifestsMarked: 0,
          blobsMarked: 0,
          blobsDeleted: [],
          bytesFreed: 0,
          blobsSpared: 0,
          manifestsDeleted: [],
          uploadsPurged: 0,
          dryRun: false,
        });
        assert.match(lines.at(-1)!, /^gc: 0 repositories/);
      }),
    );

    test(
      'a clean registry frees 0 bytes and changes nothing, run after run',
      withRegistry(async (registry, harness) => {
        const web = await registry.image('library/web', { tag: 'latest', layers: ['base', 'web'] });
        const arm = await registry.image('library/web', { layers: ['base-arm', 'web-arm'] });
        await registry.index('library/web', [web.manifest, arm.manifest], 'multi');
        await registry.image('tools', { tag: 'v1', layers: ['base', 'tools'] });
        await ageEverything(harness);
        const before = await snapshot(registry.driver);
        const blobs = await totalBlobs(registry.driver);
        for (const deleteUntagged of [false, true]) {
          const { report } = await gc(registry.driver, { deleteUntagged });
          assert.equal(report.repositories, 2);
          assert.equal(report.manifestsMarked, 4);
          assert.equal(report.blobsMarked, blobs);
          assert.deepEqual(report.blobsDeleted, []);
          assert.equal(report.bytesFreed, 0);
          assert.equal(report.blobsSpared, 0);
          assert.deepEqual(report.manifestsDeleted, []);
          assert.deepEqual(await snapshot(registry.driver), before);
        }
      }),
    );

    test(
      'layers shared between repositories stay while one repository still uses them',
      withRegistry(async (registry, harness) => {
        const a = await registry.image('team/a', { tag: 'latest', layers: ['shared base', 'only in a'] });
        const b = await registry.image('team/b', { tag: 'latest', layers: ['shared base', 'only in b'] });
        // A manifest delete, as the HTTP layer does it: the tag and the revision link go.
        await registry.untag('team/a', 'latest');
        await registry.driver.delete(StoragePaths.manifestRevisionLink('team/a', a.manifest));
        await ageEverything(harness);
        const blobs = await totalBlobs(registry.driver);

        const { report } = await gc(registry.driver);
        const gone = [a.manifest, a.config, a.layers[1]!];
        assert.deepEqual(report.blobsDeleted.map((blob) => blob.digest).sort(), [...gone].sort());
        assert.equal(
          report.bytesFreed,
          a.size + JSON.stringify({ architecture: 'amd64', layers: ['shared base', 'only in a'] }).length + 9,
        );
        assertAccounted(report, blobs);
        for (const digest of gone) assert.equal(await exists(registry.driver, digest), false);
        for (const digest of [b.manifest, b.config, ...b.layers])
          assert.ok(await exists(registry.driver, digest));
        // team/a loses its links to what was deleted, and keeps the one to the shared base.
        assert.equal(await registry.driver.stat(StoragePaths.layerLink('team/a', a.layers[1]!)), undefined);
        assert.equal(await registry.driver.stat(StoragePaths.layerLink('team/a', a.config)), undefined);
        assert.ok(await registry.driver.stat(StoragePaths.layerLink('team/a', a.layers[0]!)));
        assert.ok(await registry.driver.stat(StoragePaths.layerLink('team/b', b.layers[1]!)));
        assert.equal(report.repositories, 2, 'an emptied repository is still a repository');
      }),
    );

    test(
      'an index keeps its child manifests and their layers, at any depth',
      withRegistry(async (registry, harness) => {
        const amd = await registry.image('multi', { layers: ['amd64 root'] });
        const arm = await registry.image('multi', { layers: ['arm64 root'] });
        const inner = await registry.index('multi', [arm.manifest]);
        const outer = await registry.index('multi', [amd.manifest, inner], 'latest');
        const orphan = await registry.upload('multi', 'a layer nothing references');
        await ageEverything(harness);
        const blobs = await totalBlobs(registry.driver);

        for (const deleteUntagged of [false, true]) {
          const { report } = await gc(registry.driver, { deleteUntagged });
          assert.equal(report.manifestsMarked, 4);
          assert.deepEqual(
            report.manifestsDeleted,
            [],
            'untagged children of a tagged index are not untagged',
          );
          for (const digest of [
            outer,
            inner,
            amd.manifest,
            amd.config,
            ...amd.layers,
            arm.manifest,
            ...arm.layers,
          ]) {
            assert.ok(await exists(registry.driver, digest), digest);
          }
          if (!deleteUntagged) {
            assert.deepEqual(report.blobsDeleted, [
              { digest: orphan, size: 'a layer nothing references'.length },
            ]);
            assertAccounted(report, blobs);
          }
        }
        assert.equal(await exists(registry.driver, orphan), false);
        assert.equal(await registry.driver.stat(StoragePaths.layerLink('multi', orphan)), undefined);
      }),
    );

    test(
      'referrers live with their subject; with deleteUntagged they go when the subject goes',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('signed', { tag: 'v1', layers: ['app'] });
        const signature = await registry.image('signed', {
          layers: ['signature payload'],
          subject: image.manifest,
          artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        });
        const sbom = await registry.image('signed', {
          layers: ['sbom of the signature'],
          subject: signature.manifest,
        });
        // Listed as a referrer only: its revision link is gone (deleted by digest, say).
        const listedOnly = await registry.image('signed', {
          layers: ['listed only'],
          subject: image.manifest,
        });
        await registry.driver.delete(StoragePaths.manifestRevisionLink('signed', listedOnly.manifest));
        await ageEverything(harness);
        const everything = [image, signature, sbom, listedOnly].flatMap((m) => [
          m.manifest,
          m.config,
          ...m.layers,
        ]);

        for (const deleteUntagged of [false, true]) {
          const { report } = await gc(registry.driver, { deleteUntagged });
          assert.deepEqual(report.blobsDeleted, []);
          assert.equal(report.manifestsMarked, 4);
          for (const digest of everything) assert.ok(await exists(registry.driver, digest));
        }

        await registry.untag('signed', 'v1');
        const { report: keptByDefault } = await gc(registry.driver);
        assert.deepEqual(keptByDefault.blobsDeleted, [], 'without deleteUntagged every revision is kept');

        const { report } = await gc(registry.driver, { deleteUntagged: true });
        assert.deepEqual(report.manifestsDeleted, [image.manifest, signature.manifest, sbom.manifest].sort());
        assert.deepEqual(report.blobsDeleted.map((blob) => blob.digest).sort(), everything.sort());
        assert.deepEqual(await registry.driver.list(StoragePaths.manifestRevisions('signed')), []);
        assert.deepEqual(await registry.driver.list(StoragePaths.referrers('signed', image.manifest)), []);
        assert.deepEqual(
          await registry.driver.list(StoragePaths.referrers('signed', signature.manifest)),
          [],
        );
      }),
    );

    test(
      'deleteUntagged: a kept referrer stays listed under the subject it outlives',
      withRegistry(async (registry, harness) => {
        const subject = await registry.image('lone', { layers: ['untagged image'] });
        // Tag-style signatures (cosign's sha256-<hex>.sig) are tagged referrers.
        const signature = await registry.image('lone', {
          tag: 'sha256-sig',
          layers: ['signature'],
          subject: subject.manifest,
        });
        // An untagged referrer of a subject never pushed: nothing keeps it.
        const absent = digestOf('never pushed');
        const early = await registry.image('lone', { layers: ['early'], subject: absent });
        await ageEverything(harness);
        const { report } = await gc(registry.driver, { deleteUntagged: true });
        assert.deepEqual(report.manifestsDeleted, [subject.manifest, early.manifest].sort());
        assert.deepEqual(
          report.blobsDeleted.map((blob) => blob.digest).sort(),
          [subject, early].flatMap((image) => [image.manifest, image.config, ...image.layers]).sort(),
        );
        assert.deepEqual(await registry.driver.list(StoragePaths.referrers('lone', absent)), []);
        assert.deepEqual(await registry.driver.list(StoragePaths.referrers('lone', subject.manifest)), [
          'sha256',
        ]);
        for (const digest of [signature.manifest, signature.config, ...signature.layers]) {
          assert.ok(await exists(registry.driver, digest));
        }
      }),
    );

    test(
      'a referrer link alone keeps its referrer manifest and blobs, even before its subject is pushed',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('r', { tag: 'v1', layers: ['app'] });
        const attestation = await registry.image('r', { layers: ['provenance'], subject: image.manifest });
        // OCI 1.1 lets a referrer be pushed before its subject exists.
        const early = await registry.image('r', {
          layers: ['signature of an image to come'],
          subject: digestOf('an image not pushed yet'),
        });
        for (const referrer of [attestation, early]) {
          await registry.driver.delete(StoragePaths.manifestRevisionLink('r', referrer.manifest));
        }
        await ageEverything(harness);
        const { report } = await gc(registry.driver);
        assert.deepEqual(report.blobsDeleted, []);
        for (const referrer of [attestation, early]) {
          for (const digest of [referrer.manifest, referrer.config, ...referrer.layers]) {
            assert.ok(await exists(registry.driver, digest));
          }
        }
      }),
    );

    test(
      'a blob uploaded for a manifest not pushed yet is spared within the grace period, deleted after it',
      withRegistry(async (registry, harness) => {
        const layer = await registry.upload('pushing', 'layer of a push in progress');
        const link = StoragePaths.layerLink('pushing', layer);
        const blobs = await totalBlobs(registry.driver);

        const fresh = await gc(registry.driver);
        assert.equal(fresh.report.blobsSpared, 1);
        assert.deepEqual(fresh.report.blobsDeleted, []);
        assertAccounted(fresh.report, blobs);

        // Uploaded two hours ago, but a client HEADed it a minute ago: still in use.
        await ageEverything(harness);
        await registry.driver.touch(link);
        const headed = await gc(registry.driver);
        assert.equal(headed.report.blobsSpared, 1);
        assert.ok(
          !headed.lines.some((line) => line.includes('used during the run')),
          'spared by the grace period, not put back after a deletion began',
        );
        assert.ok(await exists(registry.driver, layer));

        // The same, seen through the clock instead: a run two hours later deletes it.
        const later = await gc(registry.driver, { now: () => Date.now() + OLD });
        const size = 'layer of a push in progress'.length;
        assert.deepEqual(later.report.blobsDeleted, [{ digest: layer, size }]);
        assert.equal(later.report.bytesFreed, size);
        assert.equal(await exists(registry.driver, layer), false);
        assert.equal(await registry.driver.stat(link), undefined);
        assert.deepEqual(await registry.driver.list(StoragePaths.blobsRoot), []);
        assert.deepEqual(await registry.driver.list(GC_QUARANTINE_ROOT), []);
      }),
    );

    test(
      'recently written blob data is spared even when its links are old',
      withRegistry(async (registry, harness) => {
        const layer = await registry.upload('r', 'layer');
        await ageEverything(harness);
        await registry.driver.putContent(StoragePaths.blobData(layer), Buffer.from('layer'));
        const { report } = await gc(registry.driver, { gracePeriodMs: 10 * 60_000 });
        assert.equal(report.blobsSpared, 1);
        assert.ok(await exists(registry.driver, layer));
      }),
    );

    test(
      'a dry run deletes nothing and reports exactly what the real run then does',
      withRegistry(async (registry, harness) => {
        await registry.image('app', { tag: 'v2', layers: ['v2 layer', 'common'] });
        await registry.image('app', { layers: ['v1 layer', 'common'] });
        await registry.upload('app', 'orphan');
        await registry.driver.putContent(StoragePaths.uploadState('app', 'abandoned'), Buffer.from('{}'));
        await ageEverything(harness, 48 * HOUR);
        const before = await snapshot(registry.driver);

        const dry = await gc(registry.driver, { dryRun: true, deleteUntagged: true });
        assert.equal(dry.report.dryRun, true);
        assert.deepEqual(await snapshot(registry.driver), before, 'nothing changed');
        assert.equal(
          dry.report.blobsDeleted.length,
          4,
          'untagged manifest, its config, its layer, the orphan',
        );
        assert.equal(dry.report.manifestsDeleted.length, 1);
        assert.equal(dry.report.uploadsPurged, 1);
        assert.ok(dry.lines.some((line) => line.startsWith('gc: would delete blob')));

        const real = await gc(registry.driver, { deleteUntagged: true });
        assert.deepEqual({ ...real.report, dryRun: true }, dry.report);
        // Four blobs, one revision link, three layer links (config, layer, orphan), one upload state.
        assert.equal((await snapshot(registry.driver)).size, before.size - 4 - 1 - 3 - 1);
      }),
    );

    test(
      'deleteUntagged removes old untagged manifests only; recent ones are pushes in progress',
      withRegistry(async (registry, harness) => {
        const tagged = await registry.image('svc', { tag: 'stable', layers: ['base', 'stable'] });
        const old = await registry.image('svc', { layers: ['base', 'old build'] });
        await ageEverything(harness);
        const recent = await registry.image('svc', { layers: ['base', 'new build'] });
        for (const digest of [recent.config, ...recent.layers]) {
          await harness.age(StoragePaths.blobData(digest), OLD);
          await harness.age(StoragePaths.layerLink('svc', digest), OLD);
        }
        await harness.age(StoragePaths.blobData(recent.manifest), OLD);

        const byDefault = await gc(registry.driver);
        assert.deepEqual(byDefault.report.blobsDeleted, []);
        assert.deepEqual(byDefault.report.manifestsDeleted, []);

        const { report, lines } = await gc(registry.driver, { deleteUntagged: true });
        assert.deepEqual(report.manifestsDeleted, [old.manifest]);
        assert.deepEqual(
          report.blobsDeleted.map((blob) => blob.digest).sort(),
          [old.manifest, old.config, old.layers[1]!].sort(),
        );
        assert.ok(lines.some((line) => line.includes(`deleting untagged manifest ${old.manifest}`)));
        assert.equal(
          await registry.driver.stat(StoragePaths.manifestRevisionLink('svc', old.manifest)),
          undefined,
        );
        for (const image of [tagged, recent]) {
          assert.ok(await registry.driver.stat(StoragePaths.manifestRevisionLink('svc', image.manifest)));
          for (const digest of [image.manifest, image.config, ...image.layers]) {
            assert.ok(await exists(registry.driver, digest));
          }
        }
      }),
    );

    test(
      'abandoned upload sessions are purged, active ones kept',
      withRegistry(async (registry, harness) => {
        const { driver } = registry;
        for (const id of ['stale', 'resumed', 'just-started']) {
          await driver.putContent(StoragePaths.uploadState('repo', id), Buffer.from(`{"id":"${id}"}`));
        }
        for (const id of ['stale', 'resumed']) {
          const writer = await driver.writer(StoragePaths.uploadData('repo', id), { append: false });
          await writer.write(Buffer.from('partial layer'));
          await writer.commit();
          await harness.age(StoragePaths.uploadState('repo', id), 25 * HOUR);
          await harness.age(StoragePaths.uploadData('repo', id), 25 * HOUR);
        }
        // A PATCH an hour ago: the state is old, the data is not.
        await harness.age(StoragePaths.uploadData('repo', 'resumed'), HOUR);

        const { report } = await gc(driver);
        assert.equal(report.uploadsPurged, 1);
        assert.equal(report.repositories, 1);
        assert.deepEqual(await driver.list(StoragePaths.uploads('repo')), ['just-started', 'resumed']);
        const shorter = await gc(driver, { uploadPurgeAgeMs: 30 * 60_000 });
        assert.equal(shorter.report.uploadsPurged, 1);
        assert.deepEqual(await driver.list(StoragePaths.uploads('repo')), ['just-started']);
      }),
    );

    test(
      'missing, damaged and mislabelled manifests are logged and skipped; the run goes on',
      withRegistry(async (registry, harness) => {
        const healthy = await registry.image('mixed', { tag: 'ok', layers: ['healthy layer'] });
        const notJson = await registry.manifest('mixed', '{"schemaVersion": 2, "layers": [', 'broken');
        const badLayers = await registry.manifest('mixed', '{"schemaVersion":2,"layers":"sha256:nope"}');
        const missing = digestOf('a manifest whose blob was lost');
        await registry.driver.putContent(
          StoragePaths.manifestRevisionLink('mixed', missing),
          Buffer.from(missing),
        );
        const mislabelled = digestOf('what the digest promises');
        await registry.driver.putContent(StoragePaths.blobData(mislabelled), Buffer.from('{"layers":[]}'));
        await registry.driver.putContent(
          StoragePaths.manifestRevisionLink('mixed', mislabelled),
          Buffer.from(mislabelled),
        );
        await registry.driver.putContent(
          StoragePaths.tagLink('mixed', 'garbled'),
          Buffer.from('not a digest'),
        );
        const orphan = await registry.upload('mixed', 'orphan');
        await ageEverything(harness);

        const { report, lines } = await gc(registry.driver);
        for (const [digest, reason] of [
          [notJson, 'is unreadable'],
          [badLayers, 'is unreadable (layers is not an array)'],
          [missing, 'is missing'],
          [mislabelled, 'does not match its digest'],
        ] as const) {
          assert.ok(
            lines.some((line) => line.includes(`manifest ${digest} ${reason}`)),
            `a log line for ${digest}: ${lines.join('\n')}`,
          );
        }
        assert.ok(lines.some((line) => line.includes('tag garbled has no valid link')));
        assert.deepEqual(report.blobsDeleted, [{ digest: orphan, size: 6 }]);
        for (const digest of [
          healthy.manifest,
          healthy.config,
          ...healthy.layers,
          notJson,
          badLayers,
          mislabelled,
        ]) {
          assert.ok(
            await exists(registry.driver, digest),
            'damaged manifests themselves are kept for inspection',
          );
        }
      }),
    );

    test(
      'repositories are found at any depth, beside and below each other',
      withRegistry(async (registry, harness) => {
        const top = await registry.image('a', { tag: 't', layers: ['in a'] });
        const nested = await registry.image('a/b', { tag: 't', layers: ['in a/b'] });
        const deep = await registry.image('x/y/z', { tag: 't', layers: ['in x/y/z'] });
        await ageEverything(harness);
        const { report } = await gc(registry.driver);
        assert.equal(report.repositories, 3);
        assert.equal(report.manifestsMarked, 3);
        assert.deepEqual(report.blobsDeleted, []);
        for (const image of [top, nested, deep]) assert.ok(await exists(registry.driver, image.layers[0]!));
      }),
    );

    test(
      'a blob a client touches while it is being deleted is put back',
      withRegistry(async (registry, harness) => {
        const layer = await registry.upload('racy', 'layer being HEADed during the run');
        await ageEverything(harness);
        const link = StoragePaths.layerLink('racy', layer);
        // The client's HEAD lands after the collector's first look, before its second.
        const driver = interceptingDriver(registry.driver, {
          afterMove: async (from) => {
            if (from === StoragePaths.blobData(layer)) await registry.driver.touch(link);
          },
        });
        const { report, lines } = await gc(driver);
        assert.deepEqual(report.blobsDeleted, []);
        assert.equal(report.blobsSpared, 1);
        assert.ok(lines.some((line) => line.includes(`blob ${layer} was used during the run; kept`)));
        assert.equal(
          String(await readAll(await registry.driver.reader(StoragePaths.blobData(layer)))),
          'layer being HEADed during the run',
        );
        assert.ok(await registry.driver.stat(link));
        assert.deepEqual(await registry.driver.list(GC_QUARANTINE_ROOT), []);
      }),
    );

    test(
      'a blob mounted into another repository while it is being deleted is put back',
      withRegistry(async (registry, harness) => {
        const layer = await registry.upload('source', 'mounted elsewhere during the run');
        await ageEverything(harness);
        const data = StoragePaths.blobData(layer);
        let looks = 0;
        const driver = interceptingDriver(registry.driver, {
          // The mount lands between the collector's first look and its move: a link in a
          // repository the run never scanned, and a touch of the data before checking it exists.
          afterStat: async (path) => {
            if (path !== data || ++looks !== 1) return;
            await registry.driver.touch(data);
            await registry.driver.putContent(StoragePaths.layerLink('target', layer), Buffer.from(layer));
          },
        });
        const { report } = await gc(driver);
        assert.deepEqual(report.blobsDeleted, []);
        assert.equal(report.blobsSpared, 1);
        assert.ok(await exists(registry.driver, layer));
        assert.ok(await registry.driver.stat(StoragePaths.layerLink('source', layer)));
      }),
    );

    test(
      'a blob uploaded again while it is being deleted stays',
      withRegistry(async (registry, harness) => {
        const layer = await registry.upload('racy', 'uploaded twice');
        await ageEverything(harness);
        const driver = interceptingDriver(registry.driver, {
          afterMove: async (from) => {
            if (from === StoragePaths.blobData(layer)) await registry.blob('uploaded twice');
          },
        });
        const { report } = await gc(driver);
        assert.deepEqual(report.blobsDeleted, []);
        assert.equal(report.blobsSpared, 1);
        assert.ok(await exists(registry.driver, layer));
        assert.deepEqual(await registry.driver.list(GC_QUARANTINE_ROOT), []);
      }),
    );

    test(
      'a manifest tagged while its untagged revision is being deleted keeps its revision and blobs',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('retag', { layers: ['layer'] });
        await ageEverything(harness);
        const revision = StoragePaths.manifestRevisionLink('retag', image.manifest);
        const driver = interceptingDriver(registry.driver, {
          // The PUT of the tag, as the HTTP layer does it: manifest, links touched, tag written.
          afterDelete: async (path) => {
            if (path !== revision) return;
            const body = await registry.driver.getContent(StoragePaths.blobData(image.manifest));
            await registry.driver.putContent(StoragePaths.blobData(image.manifest), body!);
            for (const digest of [image.config, ...image.layers]) {
              await registry.driver.touch(StoragePaths.layerLink('retag', digest));
            }
            await registry.tag('retag', 'late', image.manifest);
          },
        });
        const { report, lines } = await gc(driver, { deleteUntagged: true });
        assert.deepEqual(report.manifestsDeleted, []);
        assert.deepEqual(report.blobsDeleted, []);
        assert.ok(lines.some((line) => line.includes(`was tagged late during the run; kept`)));
        assert.equal(String(await registry.driver.getContent(revision)), image.manifest);
        for (const digest of [image.manifest, image.config, ...image.layers]) {
          assert.ok(await exists(registry.driver, digest));
        }
      }),
    );

    test(
      'an untagged manifest pushed again after the first look is not deleted',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('again', { layers: ['layer'] });
        await ageEverything(harness);
        const revision = StoragePaths.manifestRevisionLink('again', image.manifest);
        let looks = 0;
        const driver = interceptingDriver(registry.driver, {
          // The PUT lands right after the collector first saw the revision as old.
          afterStat: async (path) => {
            if (path !== revision || ++looks !== 1) return;
            for (const digest of [image.config, ...image.layers]) {
              await registry.driver.touch(StoragePaths.layerLink('again', digest));
            }
            await registry.driver.touch(StoragePaths.blobData(image.manifest));
            await registry.driver.putContent(revision, Buffer.from(image.manifest));
          },
        });
        const { report } = await gc(driver, { deleteUntagged: true });
        assert.ok(looks >= 2, 'the revision link was looked at again before deleting');
        assert.deepEqual(report.manifestsDeleted, []);
        assert.deepEqual(report.blobsDeleted, []);
        assert.ok(await registry.driver.stat(revision));
      }),
    );

    test(
      'a run that died with a blob in quarantine puts it back first',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('r', { tag: 'v1', layers: ['live layer'] });
        await ageEverything(harness);
        const [algorithm, hex] = image.layers[0]!.split(':');
        await registry.driver.move(
          StoragePaths.blobData(image.layers[0]!),
          `${GC_QUARANTINE_ROOT}/${algorithm}/${hex}`,
        );
        const { report, lines } = await gc(registry.driver);
        assert.deepEqual(report.blobsDeleted, []);
        assert.ok(lines.some((line) => line.includes(`recovered ${image.layers[0]}`)));
        assert.ok(await exists(registry.driver, image.layers[0]!));
        assert.deepEqual(await registry.driver.list(GC_QUARANTINE_ROOT), []);
      }),
    );

    test(
      'a storage error while marking aborts the run before anything is deleted',
      withRegistry(async (registry, harness) => {
        const image = await registry.image('r', { tag: 'v1', layers: ['layer'] });
        await registry.upload('r', 'orphan');
        await ageEverything(harness);
        const before = await snapshot(registry.driver);
        const driver = interceptingDriver(registry.driver, {
          beforeGetContent: async (path) => {
            if (path === StoragePaths.blobData(image.manifest))
              throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
          },
        });
        await assert.rejects(collectGarbage(driver), /EIO/);
        assert.deepEqual(await snapshot(registry.driver), before);
      }),
    );
  });
}

interface Interceptions {
  afterMove?(from: string, to: string): Promise<void>;
  afterDelete?(path: string): Promise<void>;
  beforeGetContent?(path: string): Promise<void>;
  afterStat?(path: string): Promise<void>;
}

/** The driver, with a client's concurrent actions (or a failure) injected at chosen moments. */
function interceptingDriver(driver: StorageDriver, hooks: Interceptions): StorageDriver {
  return {
    name: driver.name,
    getContent: async (path) => {
      await hooks.beforeGetContent?.(path);
      return driver.getContent(path);
    },
    putContent: (path, data) => driver.putContent(path, data),
    reader: (path, range) => driver.reader(path, range),
    stat: async (path) => {
      const info = await driver.stat(path);
      await hooks.afterStat?.(path);
      return info;
    },
    writer: (path, options) => driver.writer(path, options),
    list: (prefix) => driver.list(prefix),
    move: async (from, to) => {
      await driver.move(from, to);
      await hooks.afterMove?.(from, to);
    },
    delete: async (path) => {
      await driver.delete(path);
      await hooks.afterDelete?.(path);
    },
    touch: (path) => driver.touch(path),
  };
}
