/**
 * One start of a container: its root filesystem mounted, its user resolved in the image, its
 * mounts and network made ready, the runtime's preparation (src/runtime: /etc files, mount
 * points, the executable checked), then `runc run` in the foreground as a child of the calling
 * strata process (the supervisor, or `strata run` itself), which therefore learns the exit code.
 *
 * Output goes through FIFOs, not socket pairs (what Node's 'pipe' would give): a process that
 * opens /dev/stdout (nginx's log symlinks) needs a real pipe, as docker gives it. With a terminal
 * (`-t`) runc gets strata's own stdio: runc run in the foreground makes the pty itself and copies
 * between it and its stdin/stdout, puts the terminal in raw mode and forwards window size changes,
 * so no console socket (which Node could not read: it carries the pty's fd) is needed.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { access, cp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { runHostCommandOk } from '../archive/shell-runner.js';
import { resolveInRoot, resolveOwner, supplementaryGroups } from '../build/users.js';
import { StrataError, errnoCode } from '../errors.js';
import { resolveTarget, type ResolvedImage } from '../image/resolve.js';
import { findRunc, ociSpec, ownTerminalSize, prepareContainer, type RuntimeMount } from '../runtime/index.js';
import type { Store } from '../store/index.js';
import type { LogStream } from './logs.js';
import { setUpPrivateNetwork, tearDownNetwork, type PrivateNetwork } from './network.js';
import { imageLowerDirs, mountRootfs, unmountIfMounted } from './rootfs.js';
import type { ContainerPaths, ContainerStore } from './store.js';
import type { BoundPort, ContainerRecord } from './types.js';

/** Where `--init` comes from: Debian's tini (package `tini`), statically linked. */
const INIT_CANDIDATES = ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init'];
/** Where docker puts it in the container. */
export const INIT_PATH = '/sbin/docker-init';

const PID_POLL_MS = 5;

export interface ProcessIo {
  /** `-t`: the process gets a terminal; runc uses strata's stdio (a terminal) directly. */
  terminal: boolean;
  /** `-i`: the process reads strata's stdin. */
  stdin: boolean;
  /** Output of a non-terminal process, as it comes. */
  onOutput?: (stream: LogStream, chunk: Buffer) => void;
  /**
   * runc in a process group of its own, so that a terminal's Ctrl-C reaches only strata, which
   * forwards it (once). False when runc reads the terminal itself.
   */
  ownProcessGroup: boolean;
  /** Called once the private network is up (its pasta pid), before the process starts. */
  onNetwork?: (network: PrivateNetwork) => Promise<void>;
  /**
   * Called as soon as runc is spawned, with what sends it a signal: the process may run (and be
   * sent Ctrl-C) before `start` has read runc's pid file.
   */
  onSpawn?: (signal: (signal: NodeJS.Signals) => void) => void;
}

/** Exit status of a start that failed before the process ran, as docker reports them. */
export class StartError extends StrataError {
  constructor(
    message: string,
    /** 127: command not found; 126: cannot be run; 125: anything else. */
    readonly exitStatus: number,
    cause?: unknown,
  ) {
    super(exitStatus === 125 ? 'INTERNAL' : 'NOT_FOUND', message, { cause, userFacing: true });
  }
}

export interface ContainerContext {
  store: Store;
  containers: ContainerStore;
}

export class ContainerProcess {
  private exitCode: Promise<number>;

  private constructor(
    readonly pid: number,
    readonly ports: BoundPort[],
    exited: Promise<number>,
    private readonly cleanup: () => Promise<void>,
  ) {
    this.exitCode = exited.then(
      async (code) => {
        await this.cleanup();
        return code;
      },
      async (err: unknown) => {
        await this.cleanup();
        throw err;
      },
    );
  }

  /** The exit code (128 + n for signal n), once everything the start set up is undone. */
  wait(): Promise<number> {
    return this.exitCode;
  }

  static async start(
    ctx: ContainerContext,
    record: ContainerRecord,
    io: ProcessIo,
  ): Promise<ContainerProcess> {
    const runc = await findRunc();
    if (runc === undefined) throw new StartError('strata run needs runc (Debian package runc)', 125);
    const paths = ctx.containers.paths(record.id);
    const undo: Array<() => Promise<void>> = [];
    const cleanup = async () => {
      for (const step of undo.splice(0).reverse()) await step().catch(() => undefined);
    };
    try {
      const image = await containerImage(ctx.store, record);
      const lowerDirs = await imageLowerDirs(ctx.store, image, paths);
      await mountRootfs(lowerDirs, paths);
      undo.push(() => unmountIfMounted(paths.rootfs));

      const userSpec = record.user === '' ? '0' : record.user;
      const owner = await resolveOwner(userSpec, paths.rootfs, { numericUserGroup: 'run' }).catch(
        (err: unknown) => {
          throw new StartError(`unable to find user ${record.user}: ${(err as Error).message}`, 125, err);
        },
      );
      const additionalGids = await supplementaryGroups(userSpec, paths.rootfs);
      const mounts = await runtimeMounts(ctx.containers, record, paths);
      const args = [...record.entrypoint, ...record.cmd];
      if (record.init) {
        mounts.push({ type: 'bind', source: await initBinary(), destination: INIT_PATH, readonly: true });
        args.unshift(INIT_PATH, '--');
      }

      let network: PrivateNetwork | undefined;
      if (record.network === 'private') {
        network = await setUpPrivateNetwork(paths.netns, join(paths.bundle, 'pasta.pid'), record.ports);
        const up = network;
        undo.push(() => tearDownNetwork(up.namespacePath, up.pastaPid));
        await io.onNetwork?.(network);
      }

      const prepared = await prepareContainer({
        rootfs: paths.rootfs,
        args,
        env: record.env,
        cwd: record.workingDir,
        uid: owner.uid,
        gid: owner.gid,
        additionalGids,
        hostname: record.hostname,
        network: network
          ? { namespacePath: network.namespacePath }
          : record.network === 'host'
            ? 'host'
            : 'none',
        mounts,
        etcDir: paths.etc,
        extraHosts: record.extraHosts,
        terminal: io.terminal,
        readonlyRootfs: record.readOnly,
      }).catch((err: unknown) => {
        if (err instanceof StrataError && err.code === 'NOT_FOUND' && /executable/.test(err.message))
          throw new StartError(err.message, 127, err);
        throw err;
      });
      // Runs before the rootfs is unmounted (undo runs in reverse).
      undo.push(() => prepared.release());

      await mkdir(paths.bundle, { recursive: true, mode: 0o700 });
      const spec = ociSpec(prepared.config);
      const size = io.terminal ? ownTerminalSize() : undefined;
      if (size) spec.process.consoleSize = size;
      await writeFile(join(paths.bundle, 'config.json'), JSON.stringify(spec));
      const pidFile = join(paths.bundle, 'init.pid');
      const runcLog = join(paths.bundle, 'runc.log');
      await rm(pidFile, { force: true });
      await rm(runcLog, { force: true });
      await mkdir(ctx.containers.runcRoot, { recursive: true, mode: 0o700 });
      const global = runcGlobalArgs(ctx.containers, runcLog);
      // A runc state left by a supervisor that died would make `runc run` refuse the id.
      await deleteRuncContainer(runc, ctx.containers, record.id);

      const stdio = await processStdio(paths, io);
      undo.push(stdio.close);
      const child = spawn(
        runc,
        [...global, 'run', '--bundle', paths.bundle, '--pid-file', pidFile, record.id],
        {
          stdio: stdio.spec,
          detached: io.ownProcessGroup,
        },
      );
      stdio.afterSpawn();
      io.onSpawn?.((signal) => child.kill(signal));
      undo.push(() => deleteRuncContainer(runc, ctx.containers, record.id));
      const exited = new Promise<number>((resolve, reject) => {
        child.once('error', (err) => reject(new StartError(`cannot start runc: ${err.message}`, 125, err)));
        child.once('close', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
      });
      // Once runc has written the pid file, the process has been started.
      let finished: number | undefined;
      void exited.then(
        (code) => (finished = code),
        () => (finished = -1),
      );
      let pid = 0;
      for (;;) {
        pid = await readPid(pidFile);
        if (pid > 0 || finished !== undefined) break;
        await sleep(PID_POLL_MS);
      }
      if (pid === 0) {
        const code = await exited;
        const failure = await runcFailure(runcLog);
        throw new StartError(
          `cannot start the container: ${failure ?? `runc exited with ${code}`}`,
          failure !== undefined && /not found|no such file/i.test(failure)
            ? 127
            : failure !== undefined && /permission denied|exec format/i.test(failure)
              ? 126
              : 125,
        );
      }
      // Output pipes are drained before the exit counts: nothing the process wrote is lost.
      const drained = exited.then(async (code) => {
        await stdio.drained();
        return code;
      });
      return new ContainerProcess(pid, network?.ports ?? [], drained, cleanup);
    } catch (err) {
      await cleanup();
      throw err;
    }
  }
}

/** runc's global flags for strata's containers: one state root for all, a JSON log when given. */
export function runcGlobalArgs(containers: ContainerStore, log?: string): string[] {
  return [
    '--root',
    containers.runcRoot,
    ...(log === undefined ? [] : ['--log', log, '--log-format', 'json']),
  ];
}

/** `runc delete --force` when runc still knows the container (a runc that was killed leaves it). */
export async function deleteRuncContainer(
  runc: string,
  containers: ContainerStore,
  id: string,
): Promise<void> {
  try {
    await access(join(containers.runcRoot, id));
  } catch {
    return;
  }
  await new Promise<void>((resolve) => {
    const child = spawn(runc, [...runcGlobalArgs(containers), 'delete', '--force', id], { stdio: 'ignore' });
    child.once('error', () => resolve());
    child.once('close', () => resolve());
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 0;
  const numbers: Partial<Record<string, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 };
  return numbers[signal] ?? 0;
}

async function readPid(path: string): Promise<number> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return /^\d+$/.test(text) ? Number(text) : 0;
  } catch {
    return 0;
  }
}

/** The image the container was made from, by the descriptor it recorded (names may have moved). */
export async function containerImage(store: Store, record: ContainerRecord): Promise<ResolvedImage> {
  try {
    return { names: [], ...(await resolveTarget(store, record.image.target)) };
  } catch (err) {
    throw new StartError(
      `the container's image ${record.image.reference} is no longer in the store`,
      125,
      err,
    );
  }
}

async function initBinary(): Promise<string> {
  for (const candidate of INIT_CANDIDATES) {
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Next.
    }
  }
  throw new StartError('--init needs tini (Debian package tini: /usr/bin/tini-static)', 125);
}

/** Mounts for runc: binds as they are, volumes from the store (seeded from the image when new), tmpfs. */
async function runtimeMounts(
  containers: ContainerStore,
  record: ContainerRecord,
  paths: ContainerPaths,
): Promise<RuntimeMount[]> {
  const mounts: RuntimeMount[] = [];
  for (const mount of record.mounts) {
    if (mount.type === 'tmpfs') {
      mounts.push({
        type: 'tmpfs',
        destination: mount.destination,
        readonly: mount.readonly,
        options: mount.options,
      });
      continue;
    }
    let source = mount.source;
    if (mount.type === 'volume') {
      source = containers.volumePath(mount.source);
      await seedVolume(source, paths.rootfs, mount.destination);
    }
    mounts.push({ type: 'bind', source, destination: mount.destination, readonly: mount.readonly });
  }
  return mounts;
}

/** A new volume gets the image's files at its destination, as docker copies them. */
async function seedVolume(volume: string, rootfs: string, destination: string): Promise<void> {
  try {
    await stat(volume);
    return;
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const staging = `${volume}.seeding`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o755 });
  const inImage = await resolveInRoot(rootfs, destination);
  try {
    if ((await stat(inImage)).isDirectory() && (await readdir(inImage)).length > 0) {
      await cp(inImage, staging, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
      await runHostCommandOk('chown', ['--reference', inImage, staging]).catch(() => undefined);
    }
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
  }
  await rename(staging, volume);
}

interface Stdio {
  spec: Array<'inherit' | 'ignore' | number>;
  afterSpawn(): void;
  drained(): Promise<void>;
  close(): Promise<void>;
}

/** FIFOs for stdout and stderr (read here), or strata's own stdio for a terminal. */
async function processStdio(paths: ContainerPaths, io: ProcessIo): Promise<Stdio> {
  if (io.terminal) {
    return {
      spec: ['inherit', 'inherit', 'inherit'],
      afterSpawn: () => undefined,
      drained: async () => undefined,
      close: async () => undefined,
    };
  }
  const readers: Socket[] = [];
  const writeFds: number[] = [];
  const ended: Array<Promise<void>> = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    const fifo = join(paths.bundle, `${stream}.fifo`);
    await rm(fifo, { force: true });
    await runHostCommandOk('mkfifo', ['-m', '0600', fifo]);
    // The read end first (non-blocking open), so the blocking write-end open returns at once.
    const readFd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const reader = new Socket({ fd: readFd, readable: true, writable: false });
    reader.on('data', (chunk: Buffer) => io.onOutput?.(stream, chunk));
    ended.push(
      new Promise<void>((resolve) => {
        reader.once('end', resolve);
        reader.once('close', () => resolve());
        reader.once('error', () => resolve());
      }),
    );
    readers.push(reader);
    writeFds.push(openSync(fifo, fsConstants.O_WRONLY));
  }
  return {
    spec: [io.stdin ? 'inherit' : 'ignore', writeFds[0] as number, writeFds[1] as number],
    // Only the container keeps the write ends: EOF comes when its last process is gone.
    afterSpawn: () => {
      for (const fd of writeFds.splice(0)) closeSync(fd);
    },
    drained: async () => {
      await Promise.all(ended);
    },
    close: async () => {
      for (const fd of writeFds.splice(0)) closeSync(fd);
      for (const reader of readers) reader.destroy();
      for (const stream of ['stdout', 'stderr'])
        await rm(join(paths.bundle, `${stream}.fifo`), { force: true });
    },
  };
}

/** runc's last error message from its JSON log, if it failed rather than the process. */
async function runcFailure(log: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(log, 'utf8');
  } catch {
    return undefined;
  }
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if (entry.level === 'error' && typeof entry.msg === 'string') errors.push(entry.msg);
    } catch {
      // Plain text before runc's logger was set up.
    }
  }
  return errors.at(-1);
}
