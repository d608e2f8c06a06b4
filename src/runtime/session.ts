/**
 * RUN steps in long-lived runc containers. `runc run` costs ~55 ms here, more than the rest of a
 * RUN step; a build therefore starts a container once and runs each step in it through
 * strata-exec (native/strata-exec.c), which gives every step fresh mount, PID, UTS and IPC
 * namespaces (and a network namespace for `none`), a fresh /proc, /dev and /sys, the masked and
 * read-only paths, the step's mounts and a pivot_root into the step's root — what `runc run`
 * would give it — while the container keeps the cgroup and device rules.
 *
 * How a step's root reaches a running container: the session owns one directory, `mountRoot`,
 * bound onto itself and made a shared mount on the host; every container binds it at /steps as
 * a slave. A step root mounted on the host under `mountRoot` then appears in every container,
 * and so do the files written there (/etc/hosts and co.). A bind mount whose source lies
 * elsewhere is bound under `mountRoot` first, for the time of the step.
 *
 * Containers are started as steps need them (one per step running at the same time: parallel
 * stages) and reused; each runs one step at a time.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  FrameDecoder,
  bindMount,
  encodeFrame,
  findExecutor,
  nulSeparated,
  setPropagation,
  unmountFileSystem,
  type Frame,
} from '../archive/host-calls.js';
import { StrataError } from '../errors.js';
import { failureCode, runcFailure } from './runc.js';
import {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  DEV_TMPFS_SIZE,
  MASKED_PATHS,
  READONLY_PATHS,
  ociSpec,
  type ContainerConfig,
  type ProcessIo,
  type RunProcessResult,
} from './spec.js';

const execFileAsync = promisify(execFile);

/** Where a container sees `mountRoot`. */
const STEPS_IN_CONTAINER = '/steps';
const EXECUTOR_IN_CONTAINER = '/strata-exec';

/** How long a closing container may take to exit before runc kills it. */
const CLOSE_TIMEOUT_MS = 5_000;

/** One running container and its strata-exec. */
class SessionContainer {
  private readonly decoder = new FrameDecoder();
  private waiting: ((frame: Frame) => void) | undefined;
  private readonly queued: Frame[] = [];
  private stderr = '';
  private exitError: Error | undefined;
  readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly describeFailure: () => Promise<string | undefined>,
  ) {
    child.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4000);
    });
    // The container may die while nobody reads: its stdin then fails; the next step reports it.
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.exitError = err;
        resolve();
      });
      child.on('close', () => resolve());
    });
    void this.exited.then(async () => {
      const detail = (await this.describeFailure().catch(() => undefined)) ?? this.stderr.trim();
      this.exitError ??= new StrataError(
        'INTERNAL',
        `the build container stopped${detail ? `: ${detail}` : ` (runc ${child.signalCode ? `killed by ${child.signalCode}` : `exit status ${child.exitCode}`})`}`,
      );
      this.waiting?.({ type: 'gone', payload: Buffer.alloc(0) });
    });
  }

  get alive(): boolean {
    return this.exitError === undefined;
  }

  private receive(chunk: Buffer): void {
    for (const frame of this.decoder.push(chunk)) {
      const waiting = this.waiting;
      if (waiting) {
        this.waiting = undefined;
        waiting(frame);
      } else this.queued.push(frame);
    }
  }

  /** The next frame, or a `gone` frame when the container has stopped. */
  private next(): Promise<Frame> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    if (!this.alive) return Promise.resolve({ type: 'gone', payload: Buffer.alloc(0) });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  async ready(): Promise<void> {
    const frame = await this.next();
    if (frame.type !== 'r') throw this.stopped();
  }

  private stopped(): Error {
    return this.exitError ?? new StrataError('INTERNAL', 'the build container stopped');
  }

  async run(request: Buffer, io: ProcessIo): Promise<RunProcessResult> {
    this.child.stdin.write(encodeFrame('R', request));
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      this.child.stdin.write('K');
    };
    io.signal?.addEventListener('abort', onAbort, { once: true });
    if (io.signal?.aborted) onAbort();
    try {
      for (;;) {
        const frame = await this.next();
        switch (frame.type) {
          case 'o':
            io.onOutput?.(1, frame.payload);
            break;
          case 'e':
            io.onOutput?.(2, frame.payload);
            break;
          case 'x': {
            if (aborted) return { exitCode: 128 + 9, signal: 'SIGKILL', isolation: 'runc' };
            return { exitCode: Number(frame.payload.toString('latin1')), isolation: 'runc' };
          }
          case 'f': {
            const message = frame.payload.toString('utf8');
            throw new StrataError(failureCode(message), `runc: ${message}`);
          }
          case 'gone':
            throw this.stopped();
          default:
            throw new StrataError('INTERNAL', `strata-exec sent an unknown frame "${frame.type}"`);
        }
      }
    } finally {
      io.signal?.removeEventListener('abort', onAbort);
    }
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A step's description as strata-exec reads it (NUL-separated keys and values). */
export function executorRequest(config: ContainerConfig, inContainer: (hostPath: string) => string): Buffer {
  const fields: string[] = [
    'root',
    inContainer(config.rootfs),
    'cwd',
    config.cwd,
    'hostname',
    config.hostname,
    'devsize',
    DEV_TMPFS_SIZE,
    'uid',
    String(config.uid),
    'gid',
    String(config.gid),
    'network',
    config.network === 'none' ? 'none' : 'host',
    'capabilities',
    capabilityMask(DEFAULT_CAPABILITIES).toString(),
  ];
  for (const gid of config.additionalGids) fields.push('group', String(gid));
  for (const arg of config.args) fields.push('arg', arg);
  for (const entry of config.env) fields.push('env', entry);
  for (const mount of config.mounts) {
    const options = [...mount.options, mount.readonly ? 'ro' : 'rw'].join(',');
    fields.push(
      'mount',
      mount.type,
      mount.source ? inContainer(mount.source) : '',
      mount.destination,
      options,
    );
  }
  for (const path of MASKED_PATHS) fields.push('masked', path);
  for (const path of READONLY_PATHS) fields.push('readonly', path);
  if (fields.some((field) => field.includes('\0')))
    throw new StrataError('INVALID_ARGUMENT', 'a RUN argument, variable or path contains a NUL byte');
  return nulSeparated(fields);
}

function capabilityMask(names: readonly string[]): bigint {
  let mask = 0n;
  for (const name of names) {
    const bit = (ALL_CAPABILITIES as readonly string[]).indexOf(name);
    if (bit >= 0) mask |= 1n << BigInt(bit);
  }
  return mask;
}

export { findExecutor };

export class RuncSession {
  private readonly idle: SessionContainer[] = [];
  private readonly all = new Set<SessionContainer>();
  private readonly ids: string[] = [];
  private started = 0;
  private stepsRun = 0;
  private closed = false;
  /** Why no container could be started: the session then takes no more steps. */
  private broken: Error | undefined;

  private constructor(
    private readonly runc: string,
    private readonly executor: string,
    private readonly dir: string,
    /** Step roots, and every file a step is given, must be made below this directory. */
    readonly mountRoot: string,
  ) {}

  /**
   * Makes `dir` (empty or missing; removed by close) the session's home. Undefined when this
   * machine cannot have one (no strata-exec built): steps then start runc themselves.
   */
  static async open(runc: string, dir: string): Promise<RuncSession | undefined> {
    const executor = await findExecutor();
    if (executor === undefined) return undefined;
    await mkdir(join(dir, 'steps'), { recursive: true, mode: 0o700 });
    // Real path: runProcess compares it with the step's real rootfs path.
    const mountRoot = await realpath(join(dir, 'steps'));
    try {
      await bindMount(mountRoot, mountRoot, { recursive: false });
      await setPropagation(mountRoot, 'shared');
    } catch (err) {
      await unmountFileSystem(mountRoot, { lazy: true }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      throw new StrataError(
        'UNSUPPORTED',
        `cannot share the build's step directory: ${(err as Error).message}`,
      );
    }
    return new RuncSession(runc, executor, dir, mountRoot);
  }

  /**
   * Whether a step can run here; the others start their own `runc run`: insecure steps (all
   * capabilities), a joined network namespace, and a bind of a directory holding `mountRoot`
   * (bound below `mountRoot` it would contain itself and propagate into itself).
   */
  accepts(config: ContainerConfig): boolean {
    return (
      this.broken === undefined &&
      isBelow(config.rootfs, this.mountRoot) &&
      !config.insecure &&
      !config.terminal &&
      !config.readonlyRootfs &&
      (config.network === 'host' || config.network === 'none') &&
      config.mounts.every(
        (mount) =>
          mount.source === undefined ||
          !(mount.source === '/' || isBelow(this.mountRoot, mount.source) || this.mountRoot === mount.source),
      )
    );
  }

  /** A path under `mountRoot` as the containers see it. */
  private inContainer(hostPath: string): string {
    if (!isBelow(hostPath, this.mountRoot))
      throw new StrataError('INTERNAL', `${hostPath} is outside the build's step directory`);
    return `${STEPS_IN_CONTAINER}${hostPath.slice(this.mountRoot.length)}`;
  }

  /**
   * Runs one prepared step (its rootfs under `mountRoot`) in an idle container. Undefined when
   * no container can be started here (the caller then runs the step with its own runc).
   */
  async run(config: ContainerConfig, io: ProcessIo): Promise<RunProcessResult | undefined> {
    if (this.closed) throw new StrataError('INTERNAL', 'the build session is closed');
    let bound: string | undefined;
    const bindings: string[] = [];
    try {
      const mounts = [];
      for (const mount of config.mounts) {
        if (mount.type !== 'bind' || mount.source === undefined || isBelow(mount.source, this.mountRoot)) {
          mounts.push(mount);
          continue;
        }
        // Sources elsewhere on the host reach the containers through the shared directory.
        bound ??= await mkdtemp(join(this.mountRoot, 'mounts-'));
        const target = join(bound, String(bindings.length));
        if ((await stat(mount.source)).isDirectory()) await mkdir(target);
        else await writeFile(target, '');
        await bindMount(mount.source, target);
        bindings.push(target);
        mounts.push({ ...mount, source: target });
      }
      const request = executorRequest({ ...config, mounts }, (path) => this.inContainer(path));
      const container = this.takeIdle() ?? (await this.startOrBreak());
      if (container === undefined) return undefined;
      this.stepsRun++;
      try {
        return await container.run(request, io);
      } finally {
        if (container.alive && !this.closed) this.idle.push(container);
        else this.all.delete(container);
      }
    } finally {
      for (const target of bindings.reverse())
        await unmountFileSystem(target, { lazy: true }).catch(() => undefined);
      if (bound !== undefined) await rm(bound, { recursive: true, force: true });
    }
  }

  /** An idle container still running; dead ones (runc killed meanwhile) are dropped. */
  private takeIdle(): SessionContainer | undefined {
    for (let container = this.idle.pop(); container !== undefined; container = this.idle.pop()) {
      if (container.alive) return container;
      this.all.delete(container);
    }
    return undefined;
  }

  private async startOrBreak(): Promise<SessionContainer | undefined> {
    try {
      return await this.start();
    } catch (err) {
      this.broken = err as Error;
      return undefined;
    }
  }

  private async start(): Promise<SessionContainer> {
    const name = `c${this.started++}`;
    const holder = join(this.dir, `${name}-root`);
    const bundle = join(this.dir, `${name}-bundle`);
    const state = join(this.dir, 'runc-state');
    const log = join(this.dir, `${name}-runc.log`);
    for (const path of ['', '/steps', '/proc', '/dev', '/sys'])
      await mkdir(`${holder}${path}`, { recursive: true });
    await writeFile(join(holder, 'strata-exec'), '');
    await mkdir(bundle, { recursive: true });
    await mkdir(state, { recursive: true, mode: 0o700 });
    const spec = ociSpec({
      rootfs: holder,
      args: [EXECUTOR_IN_CONTAINER],
      env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      uid: 0,
      gid: 0,
      additionalGids: [],
      hostname: 'strata-build',
      network: 'host',
      insecure: false,
      readonlyRootfs: true,
      mounts: [
        // rslave: what the host mounts under mountRoot later shows up in here.
        {
          type: 'bind',
          source: this.mountRoot,
          destination: STEPS_IN_CONTAINER,
          readonly: false,
          options: ['rslave'],
        },
        {
          type: 'bind',
          source: this.executor,
          destination: EXECUTOR_IN_CONTAINER,
          readonly: true,
          options: [],
        },
      ],
    });
    // strata-exec mounts each step's file systems and brings a private network's lo up; every
    // step drops these capabilities again.
    for (const set of [
      spec.process.capabilities.bounding,
      spec.process.capabilities.effective,
      spec.process.capabilities.permitted,
    ])
      set?.push('CAP_SYS_ADMIN', 'CAP_NET_ADMIN');
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const id = `strata-build-${randomBytes(8).toString('hex')}`;
    this.ids.push(id);
    const child = spawn(
      this.runc,
      ['--root', state, '--log', log, '--log-format', 'json', 'run', '--bundle', bundle, id],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const container = new SessionContainer(child, () => runcFailure(log));
    this.all.add(container);
    try {
      await container.ready();
    } catch (err) {
      this.all.delete(container);
      throw err;
    }
    return container;
  }

  /** How many steps it ran, how many containers are running, and why it stopped taking steps. */
  stats(): { steps: number; containers: number; broken?: Error } {
    return {
      steps: this.stepsRun,
      containers: this.all.size,
      ...(this.broken ? { broken: this.broken } : {}),
    };
  }

  /** Kills every container at once (what a crash of runc would do); for tests. */
  killContainers(): void {
    for (const container of this.all) container.kill();
  }

  /** Stops the containers and removes the session's directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.all].map((container) => container.close()));
    this.idle.length = 0;
    this.all.clear();
    // runc removes a container (and its cgroup) when it exits normally; not when it was killed.
    const state = join(this.dir, 'runc-state');
    for (const id of this.ids) {
      if (
        await access(join(state, id)).then(
          () => true,
          () => false,
        )
      )
        await execFileAsync(this.runc, ['--root', state, 'delete', '--force', id]).catch(() => undefined);
    }
    await unmountFileSystem(this.mountRoot, { lazy: true }).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

function isBelow(path: string, dir: string): boolean {
  return path.startsWith(`${dir}/`);
}
