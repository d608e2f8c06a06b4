/**
 * Containers on disk, under the store root (docs/run.md):
 *
 *   containers/<id>/config.json     the resolved run configuration (ContainerRecord), written once
 *   containers/<id>/state.json      status, pids, exit code, times, health (ContainerState)
 *   containers/<id>/<id>-json.log   stdout/stderr in docker's json-file format
 *   containers/<id>/upper, work     the overlay upper and work dirs: the container's changes
 *   containers/<id>/rootfs          the overlay mount point while the container runs
 *   containers/<id>/bundle          runc's bundle (config.json = the OCI spec of the last start)
 *   containers/<id>/etc             hosts, hostname, resolv.conf bound into the container
 *   containers/<id>/netns           the private network namespace (an nsfs bind mount) while running
 *   containers/.runc                runc's state root for every strata container
 *   volumes/<name>/_data            named and anonymous volumes
 *
 * Each container directory is created complete under a temporary name and renamed into place, so
 * a listing never sees half a container.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { StrataError, errnoCode } from '../errors.js';
import { withFileLock, writeFileAtomic } from '../store/index.js';
import type { ContainerRecord, ContainerState } from './types.js';
import { initialState } from './types.js';
import { readdirIfExists } from '../store/dirs.js';

export interface ContainerPaths {
  dir: string;
  config: string;
  state: string;
  log: string;
  upper: string;
  work: string;
  rootfs: string;
  bundle: string;
  etc: string;
  netns: string;
  /** Present while a `stop` is under way: the supervisor must not restart the container. */
  stopRequested: string;
  /** Output of a detached supervisor itself (its own errors), for debugging. */
  supervisorLog: string;
}

export interface ContainerEntry {
  record: ContainerRecord;
  state: ContainerState;
}

const ID_PATTERN = /^[0-9a-f]{64}$/;

export class ContainerStore {
  readonly dir: string;
  readonly runcRoot: string;
  readonly volumesDir: string;
  private readonly lockPath: string;

  constructor(readonly storeRoot: string) {
    this.dir = join(storeRoot, 'containers');
    this.runcRoot = join(this.dir, '.runc');
    this.volumesDir = join(storeRoot, 'volumes');
    this.lockPath = join(storeRoot, 'locks', 'containers.lock');
  }

  paths(id: string): ContainerPaths {
    const dir = join(this.dir, id);
    return {
      dir,
      config: join(dir, 'config.json'),
      state: join(dir, 'state.json'),
      log: join(dir, `${id}-json.log`),
      upper: join(dir, 'upper'),
      work: join(dir, 'work'),
      rootfs: join(dir, 'rootfs'),
      bundle: join(dir, 'bundle'),
      etc: join(dir, 'etc'),
      netns: join(dir, 'netns'),
      stopRequested: join(dir, 'stop-requested'),
      supervisorLog: join(dir, 'supervisor.log'),
    };
  }

  static newId(): string {
    return randomBytes(32).toString('hex');
  }

  /**
   * Creates the container's directory with its config and a `created` state. Names are unique:
   * the check and the creation happen under one lock.
   */
  async create(record: ContainerRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await withFileLock(this.lockPath, async () => {
      const existing = await this.list();
      if (existing.some((entry) => entry.record.name === record.name)) {
        throw new StrataError(
          'CONFLICT',
          `the container name "/${record.name}" is already in use by container ${existing.find((entry) => entry.record.name === record.name)?.record.id}`,
        );
      }
      const staging = join(this.dir, `.${record.id}.creating`);
      await rm(staging, { recursive: true, force: true });
      await mkdir(staging, { mode: 0o710 });
      try {
        await writeFileAtomic(join(staging, 'config.json'), `${JSON.stringify(record, null, 2)}\n`);
        await writeFileAtomic(join(staging, 'state.json'), `${JSON.stringify(initialState(), null, 2)}\n`, {
          durable: false,
        });
        const paths = this.paths(record.id);
        for (const name of ['upper', 'work', 'rootfs', 'bundle', 'etc']) {
          await mkdir(join(staging, name), { mode: name === 'upper' ? 0o755 : 0o700 });
        }
        await rename(staging, paths.dir);
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    });
  }

  /** Every container, oldest first. Unreadable directories (a crash mid-removal) are skipped. */
  async list(): Promise<ContainerEntry[]> {
    const names = await readdirIfExists(this.dir);
    const entries: ContainerEntry[] = [];
    for (const name of names) {
      if (!ID_PATTERN.test(name)) continue;
      const entry = await this.read(name).catch(() => undefined);
      if (entry) entries.push(entry);
    }
    return entries.sort((a, b) => a.record.created.localeCompare(b.record.created));
  }

  async read(id: string): Promise<ContainerEntry> {
    const paths = this.paths(id);
    let record: ContainerRecord;
    try {
      record = JSON.parse(await readFile(paths.config, 'utf8')) as ContainerRecord;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `no such container: ${id}`);
      throw err;
    }
    return { record, state: await this.readState(id) };
  }

  async readState(id: string): Promise<ContainerState> {
    try {
      return {
        ...initialState(),
        ...(JSON.parse(await readFile(this.paths(id).state, 'utf8')) as ContainerState),
      };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `no such container: ${id}`);
      throw err;
    }
  }

  /** State is derived, rewritten often and re-derivable: atomic but not fsynced. */
  async writeState(id: string, state: ContainerState): Promise<void> {
    await writeFileAtomic(this.paths(id).state, `${JSON.stringify(state, null, 2)}\n`, { durable: false });
  }

  async updateState(id: string, change: (state: ContainerState) => void): Promise<ContainerState> {
    const state = await this.readState(id);
    change(state);
    await this.writeState(id, state);
    return state;
  }

  /**
   * Docker's lookup order: the full ID, then an exact name (with or without the leading `/`),
   * then a unique ID prefix.
   */
  async find(text: string): Promise<ContainerEntry> {
    const wanted = text.startsWith('/') ? text.slice(1) : text;
    if (wanted === '') throw new StrataError('INVALID_ARGUMENT', 'empty container name or ID');
    if (ID_PATTERN.test(wanted)) {
      try {
        return await this.read(wanted);
      } catch (err) {
        if (!(err instanceof StrataError && err.code === 'NOT_FOUND')) throw err;
      }
    }
    const all = await this.list();
    const byName = all.find((entry) => entry.record.name === wanted);
    if (byName) return byName;
    if (/^[0-9a-f]+$/.test(wanted)) {
      const matches = all.filter((entry) => entry.record.id.startsWith(wanted));
      if (matches.length === 1) return matches[0] as ContainerEntry;
      if (matches.length > 1)
        throw new StrataError(
          'CONFLICT',
          `multiple containers match the ID prefix ${wanted}: be more specific`,
        );
    }
    throw new StrataError('NOT_FOUND', `no such container: ${text}`);
  }

  /** Removes the directory (the caller has unmounted everything in it). */
  async remove(id: string): Promise<void> {
    const paths = this.paths(id);
    // Renamed first: a crash during the slow delete leaves a name list() skips, not half a container.
    const trash = join(this.dir, `.${id}.removing`);
    try {
      await rename(paths.dir, trash);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
  }

  /** A fresh name like docker's (`adjective_scientist`), not used by another container. */
  async generateName(): Promise<string> {
    const taken = new Set((await this.list()).map((entry) => entry.record.name));
    for (let attempt = 0; ; attempt++) {
      const adjective = ADJECTIVES[(randomBytes(1)[0] as number) % ADJECTIVES.length] as string;
      const surname = SURNAMES[(randomBytes(1)[0] as number) % SURNAMES.length] as string;
      const name = attempt < 10 ? `${adjective}_${surname}` : `${adjective}_${surname}${attempt}`;
      if (!taken.has(name)) return name;
    }
  }

  volumePath(name: string): string {
    return join(this.volumesDir, name, '_data');
  }
}

/** A few of moby's names-generator words. */
const ADJECTIVES = [
  'admiring',
  'bold',
  'brave',
  'clever',
  'compassionate',
  'dreamy',
  'eager',
  'elegant',
  'festive',
  'focused',
  'gallant',
  'happy',
  'jolly',
  'keen',
  'loving',
  'nifty',
  'peaceful',
  'quirky',
  'serene',
  'sharp',
  'stoic',
  'tender',
  'vibrant',
  'wizardly',
  'youthful',
  'zealous',
];
const SURNAMES = [
  'albattani',
  'babbage',
  'curie',
  'darwin',
  'einstein',
  'feynman',
  'goldberg',
  'hopper',
  'hypatia',
  'johnson',
  'kepler',
  'lovelace',
  'meitner',
  'noether',
  'pasteur',
  'ritchie',
  'shannon',
  'thompson',
  'turing',
  'wozniak',
];
