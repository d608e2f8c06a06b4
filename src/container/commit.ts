/**
 * `docker commit`: the container's changes (its overlay upper dir, as a deterministic tar with
 * overlay whiteouts turned into OCI ones; volumes are mounts, so never in it) become one new
 * uncompressed layer on top of the image's, and the container's configuration (environment,
 * command, user, working directory, labels) with `--change` instructions applied becomes the
 * image config. The container is not paused (runc's freezer needs a cgroup controller strata
 * does not require): commit a stopped container for an exact snapshot.
 */
import { createTarFromDirectory } from '../archive/tar-writer.js';
import { StrataError } from '../errors.js';
import { applyChanges } from '../image/changes.js';
import { creationTime, writeImage } from '../image/create.js';
import { setImageNames } from '../image/names.js';
import { MediaType } from '../oci/mediatypes.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import { inLower } from './changes.js';
import { imageLowerDirs } from './rootfs.js';
import { containerImage, type ContainerContext } from './process.js';
import type { ContainerEntry } from './store.js';
import { SYSTEM_MOUNT_POINTS } from '../runtime/spec.js';
import { INIT_PATH } from './process.js';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';

export interface CommitOptions {
  reference?: string;
  message?: string;
  author?: string;
  changes?: readonly string[];
}

/** The container's own configuration, as the committed image's (runtime-only variables left out). */
function committedConfig(entry: ContainerEntry, base: ContainerConfig): ContainerConfig {
  const { record } = entry;
  const env = record.env.filter(
    (variable) => !variable.startsWith('HOSTNAME=') && !(record.tty && variable === 'TERM=xterm'),
  );
  return {
    ...base,
    Env: env,
    Cmd: record.cmd.length > 0 ? record.cmd : null,
    Entrypoint: record.entrypoint.length > 0 ? record.entrypoint : null,
    User: record.user,
    WorkingDir: record.workingDir === '/' ? (base.WorkingDir ?? '') : record.workingDir,
    Labels: Object.keys(record.labels).length > 0 ? record.labels : (base.Labels ?? null),
  };
}

/** Returns the new image ID. */
export async function commitContainer(
  cc: ContainerContext,
  entry: ContainerEntry,
  options: CommitOptions,
): Promise<string> {
  const name =
    options.reference === undefined ? undefined : formatReference(parseReference(options.reference));
  const { record } = entry;
  const image = await containerImage(cc.store, record);
  const paths = cc.containers.paths(record.id);
  const config: ImageConfig = structuredClone(image.config);
  config.config = applyChanges(committedConfig(entry, image.config.config ?? {}), options.changes ?? []);
  const lowerDirs = await imageLowerDirs(cc.store, image, paths);
  const stubs = new Set<string>([
    ...SYSTEM_MOUNT_POINTS,
    '/etc/hosts',
    '/etc/hostname',
    '/etc/resolv.conf',
    INIT_PATH,
    ...record.mounts.map((mount) => mount.destination),
  ]);
  // Mount points strata made while the container runs are not the container's files.
  const excluded = new Set<string>();
  for (const stub of stubs) {
    const rel = stub.slice(1);
    try {
      const stats = await lstat(join(paths.upper, rel));
      const empty = stats.isFile() ? stats.size === 0 : stats.isDirectory();
      if (empty && (await inLower(lowerDirs, rel)) === undefined) excluded.add(rel);
    } catch {
      // Not in the upper dir.
    }
  }
  const lease = cc.store.lease();
  try {
    const tar = createTarFromDirectory(paths.upper, {
      whiteouts: 'overlay-to-oci',
      filter: (rel, stats) => !(excluded.has(rel) && (stats.isFile() ? stats.size === 0n : true)),
    });
    const layer = await cc.store.content.ingest(tar, { lease });
    const created = creationTime();
    config.created = created;
    if (options.author !== undefined) config.author = options.author;
    else delete config.author;
    config.rootfs = { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, layer.digest] };
    config.history = [
      ...(image.config.history ?? []),
      {
        created,
        created_by: [...record.entrypoint, ...record.cmd].join(' '),
        ...(options.author !== undefined ? { author: options.author } : {}),
        ...(options.message !== undefined ? { comment: options.message } : {}),
      },
    ];
    const { target, configDigest } = await writeImage(
      cc.store,
      config,
      [...image.manifest.layers, { mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size }],
      { lease },
    );
    await setImageNames(cc.store, [{ target, names: name === undefined ? [] : [name] }]);
    return configDigest;
  } catch (err) {
    if (err instanceof StrataError) throw err;
    throw new StrataError('INTERNAL', `cannot commit container ${record.name}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await lease.release();
  }
}
