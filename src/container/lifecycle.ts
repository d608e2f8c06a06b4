/**
 * Container lifecycle without a daemon: create (resolve the run configuration, pin the image),
 * stop and kill (through runc; the supervisor records the exit), remove, wait, and the
 * reconciliation of a container whose supervisor died (its state says running, nobody owns it).
 */
import { hostname as hostHostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { StrataError, errnoCode } from '../errors.js';
import { findImage } from '../image/resolve.js';
import { findRunc } from '../runtime/index.js';
import {
  DEFAULT_PATH,
  mergeEnv,
  normalizeSignal,
  parseEnvFile,
  parseEnvFlags,
  parseMountFlag,
  parsePublish,
  parseRestart,
  parseVolumeFlag,
  publishAll,
  resolveCommand,
  resolveHealthcheck,
  validateName,
} from './options.js';
import { deleteRuncContainer, runcGlobalArgs, type ContainerContext } from './process.js';
import { tearDownNetwork } from './network.js';
import { unmountIfMounted } from './rootfs.js';
import { ContainerStore, type ContainerEntry } from './store.js';
import { stopRequested, supervisorAlive } from './supervisor.js';
import type { ContainerMount, ContainerRecord, NetworkName, PortBinding } from './types.js';
import { parseGoDuration } from '../oci/duration.js';

const execFileAsync = promisify(execFile);

/** docker's default `stop -t`. */
export const DEFAULT_STOP_TIMEOUT_SECONDS = 10;

const POLL_MS = 50;

/** `docker run`/`create` flags, as the CLI collected them. */
export interface CreateRequest {
  image: string;
  args: string[];
  name?: string;
  env?: string[];
  envFiles?: string[];
  user?: string;
  workdir?: string;
  entrypoint?: string;
  volumes?: string[];
  mounts?: string[];
  tmpfs?: string[];
  publish?: string[];
  publishAll?: boolean;
  network?: string;
  hostname?: string;
  readOnly?: boolean;
  init?: boolean;
  tty?: boolean;
  interactive?: boolean;
  restart?: string;
  autoRemove?: boolean;
  stopSignal?: string;
  stopTimeout?: number;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  healthRetries?: number;
  noHealthcheck?: boolean;
  addHosts?: string[];
  labels?: string[];
  /** Relative bind sources and env files are resolved against this. */
  cwd: string;
  hostEnv: NodeJS.ProcessEnv;
}

export function openContainers(ctx: Pick<ContainerContext, 'store'>): ContainerStore {
  return new ContainerStore(ctx.store.root);
}

function duration(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = parseGoDuration(text);
  if (value === undefined)
    throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${text}": not a duration`);
  if (value !== 0 && value < 1e6) throw new StrataError('INVALID_ARGUMENT', `${flag} must be at least 1ms`);
  return value;
}

function parseNetwork(text: string | undefined): NetworkName {
  const value = text ?? 'private';
  if (value === 'default' || value === 'bridge' || value === 'private' || value === 'pasta') return 'private';
  if (value === 'host' || value === 'none') return value;
  throw new StrataError(
    'INVALID_ARGUMENT',
    `unknown network "${value}": use private (default), host or none`,
  );
}

/** `--add-host NAME:IP` → a hosts line. */
function hostsLine(text: string): string {
  const colon = text.indexOf(':');
  const name = text.slice(0, colon);
  const address = text.slice(colon + 1);
  if (colon <= 0 || address === '' || !/^[0-9a-fA-F:.]+$/.test(address))
    throw new StrataError('INVALID_ARGUMENT', `invalid --add-host "${text}": use NAME:IP`);
  return `${address}\t${name}`;
}

/**
 * Resolves a run request into a container on disk (state `created`), or fails with nothing
 * created. Returns the record and warnings (docker's, e.g. ports ignored with --network host).
 */
export async function createContainer(
  ctx: ContainerContext,
  request: CreateRequest,
): Promise<{ record: ContainerRecord; warnings: string[] }> {
  const warnings: string[] = [];
  const restart = parseRestart(request.restart ?? 'no');
  if (request.autoRemove && restart.name !== 'no')
    throw new StrataError('INVALID_ARGUMENT', 'conflicting options: --restart and --rm');
  const name = request.name === undefined ? undefined : validateName(request.name);
  const network = parseNetwork(request.network);
  const image = await findImage(ctx.store, request.image);
  const config = image.config.config ?? {};
  const { entrypoint, cmd } = resolveCommand(config, request.entrypoint, request.args);

  const workdir = request.workdir ?? (config.WorkingDir || '/');
  if (!posix.isAbsolute(workdir))
    throw new StrataError(
      'INVALID_ARGUMENT',
      `the working directory '${workdir}' is invalid, it needs to be an absolute path`,
    );

  const fromFiles: string[] = [];
  for (const file of request.envFiles ?? []) {
    const path = posix.resolve(request.cwd, file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new StrataError(
        'NOT_FOUND',
        `cannot read env file ${file}: ${errnoCode(err) ?? (err as Error).message}`,
      );
    }
    fromFiles.push(...parseEnvFile(text, file, request.hostEnv));
  }
  const fromFlags = parseEnvFlags(request.env ?? [], request.hostEnv);

  const id = ContainerStore.newId();
  const hostname = request.hostname ?? (network === 'host' ? hostHostname() : id.slice(0, 12));
  let env = mergeEnv(
    [`HOSTNAME=${hostname}`],
    request.tty ? ['TERM=xterm'] : [],
    config.Env ?? [],
    fromFiles,
    fromFlags,
  );
  if (!env.some((entry) => entry.startsWith('PATH='))) env = [`PATH=${DEFAULT_PATH}`, ...env];

  const mounts: ContainerMount[] = [];
  for (const text of request.volumes ?? []) mounts.push(parseVolumeFlag(text, request.cwd));
  for (const text of request.mounts ?? []) mounts.push(parseMountFlag(text, request.cwd));
  for (const text of request.tmpfs ?? []) {
    const [destination, options] = text.split(':', 2) as [string, string | undefined];
    mounts.push(parseMountFlag(`type=tmpfs,target=${destination}`, request.cwd));
    if (options) (mounts.at(-1) as ContainerMount).options.push(...options.split(','));
  }
  // The image's VOLUMEs that no mount covers get anonymous volumes, as with docker.
  for (const destination of Object.keys(config.Volumes ?? {})) {
    const normal = posix.normalize(destination);
    if (!mounts.some((mount) => mount.destination === normal))
      mounts.push({
        type: 'volume',
        source: '',
        destination: normal,
        readonly: false,
        options: [],
        anonymous: true,
      });
  }
  const destinations = new Set<string>();
  for (const mount of mounts) {
    if (destinations.has(mount.destination))
      throw new StrataError('INVALID_ARGUMENT', `duplicate mount point: ${mount.destination}`);
    destinations.add(mount.destination);
    if (mount.anonymous) mount.source = randomBytes(32).toString('hex');
  }
  for (const mount of mounts.filter((candidate) => candidate.type === 'bind')) {
    try {
      await stat(mount.source);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      const fromVolumeFlag = (request.volumes ?? []).some(
        (text) => parseVolumeFlag(text, request.cwd).destination === mount.destination,
      );
      if (!fromVolumeFlag)
        throw new StrataError(
          'NOT_FOUND',
          `invalid mount config for type "bind": bind source path does not exist: ${mount.source}`,
        );
      // `-v` creates a missing host directory, as docker does.
      await mkdir(mount.source, { recursive: true });
    }
  }

  let ports: PortBinding[] = (request.publish ?? []).map(parsePublish);
  if (request.publishAll) {
    for (const port of publishAll(config.ExposedPorts)) {
      if (
        !ports.some((bound) => bound.containerPort === port.containerPort && bound.protocol === port.protocol)
      )
        ports.push(port);
    }
  }
  if (ports.length > 0 && network !== 'private') {
    warnings.push(`WARNING: Published ports are discarded when using ${network} network mode`);
    ports = [];
  }

  const healthcheck = resolveHealthcheck(config.Healthcheck, {
    cmd: request.healthCmd,
    interval: duration(request.healthInterval, '--health-interval'),
    timeout: duration(request.healthTimeout, '--health-timeout'),
    startPeriod: duration(request.healthStartPeriod, '--health-start-period'),
    startInterval: duration(request.healthStartInterval, '--health-start-interval'),
    retries: request.healthRetries,
    disabled: request.noHealthcheck,
  });

  const labels: Record<string, string> = { ...(config.Labels ?? {}) };
  for (const label of request.labels ?? []) {
    const eq = label.indexOf('=');
    labels[eq < 0 ? label : label.slice(0, eq)] = eq < 0 ? '' : label.slice(eq + 1);
  }

  const containers = ctx.containers;
  const record: ContainerRecord = {
    id,
    name: name ?? (await containers.generateName()),
    created: new Date().toISOString(),
    image: { reference: request.image, id: image.id, target: image.target },
    entrypoint,
    cmd,
    env,
    user: request.user ?? config.User ?? '',
    workingDir: workdir,
    hostname,
    network,
    ports,
    mounts,
    readOnly: request.readOnly ?? false,
    init: request.init ?? false,
    tty: request.tty ?? false,
    openStdin: request.interactive ?? false,
    restart,
    autoRemove: request.autoRemove ?? false,
    stopSignal: normalizeSignal(request.stopSignal ?? config.StopSignal ?? 'SIGTERM'),
    stopTimeoutSeconds: request.stopTimeout ?? DEFAULT_STOP_TIMEOUT_SECONDS,
    ...(healthcheck ? { healthcheck } : {}),
    extraHosts: (request.addHosts ?? []).map(hostsLine),
    labels,
  };
  // Pinned first: a collection between here and the first start must keep the image's layers.
  await ctx.store.pin(pinName(id), image.target);
  try {
    await containers.create(record);
  } catch (err) {
    await ctx.store.unpin(pinName(id));
    throw err;
  }
  return { record, warnings };
}

export function pinName(id: string): string {
  return `container-${id}`;
}

function isActive(entry: ContainerEntry): boolean {
  return entry.state.status === 'running' || entry.state.status === 'restarting';
}

/**
 * A container whose state says it runs while its supervisor is gone (killed, machine crash):
 * whatever is left of it is stopped and undone, and it is recorded as exited.
 */
export async function reconcile(ctx: ContainerContext, entry: ContainerEntry): Promise<ContainerEntry> {
  if (!isActive(entry) || (await supervisorAlive(entry.state))) return entry;
  await cleanUpRuntime(ctx, entry);
  const state = await ctx.containers.updateState(entry.record.id, (current) => {
    current.status = 'exited';
    current.pid = 0;
    current.exitCode = current.exitCode === 0 ? 137 : current.exitCode;
    current.error = 'the strata process supervising the container exited';
    current.finishedAt = new Date().toISOString();
    current.supervisorPid = 0;
    delete current.pastaPid;
  });
  return { record: entry.record, state };
}

/** runc's container, the network and the rootfs mount: whatever of them still exists. */
async function cleanUpRuntime(ctx: ContainerContext, entry: ContainerEntry): Promise<void> {
  const runc = await findRunc();
  const paths = ctx.containers.paths(entry.record.id);
  if (runc !== undefined) await deleteRuncContainer(runc, ctx.containers, entry.record.id);
  await tearDownNetwork(paths.netns, entry.state.pastaPid);
  await unmountIfMounted(paths.rootfs);
}

/** `runc kill`; false when the container is not running (any more). */
export async function signalContainer(ctx: ContainerContext, id: string, signal: string): Promise<boolean> {
  const runc = await findRunc();
  if (runc === undefined) throw new StrataError('UNSUPPORTED', 'runc is not available');
  const runcSignal = /^\d+$/.test(signal) ? signal : signal.replace(/^SIG/, '');
  try {
    await execFileAsync(runc, [...runcGlobalArgs(ctx.containers), 'kill', id, runcSignal]);
    return true;
  } catch {
    return false;
  }
}

/** Until the supervisor has recorded the exit (and, with `supervisorGone`, has itself exited). */
async function waitUntilStopped(
  ctx: ContainerContext,
  id: string,
  timeoutMs: number,
  supervisorGone = false,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entry = await reconcile(ctx, await ctx.containers.read(id));
    const stopped = !isActive(entry) && (!supervisorGone || !(await supervisorAlive(entry.state)));
    if (stopped) return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
}

/**
 * `docker stop`: the stop signal, then SIGKILL after `timeoutSeconds`; the restart policy does not
 * bring it back. Returns once the exit is recorded.
 */
export async function stopContainer(
  ctx: ContainerContext,
  id: string,
  timeoutSeconds?: number,
): Promise<void> {
  const entry = await reconcile(ctx, await ctx.containers.read(id));
  if (!isActive(entry)) return;
  await writeFile(ctx.containers.paths(id).stopRequested, new Date().toISOString());
  const timeout = timeoutSeconds ?? entry.record.stopTimeoutSeconds;
  if (timeout !== 0 && entry.state.status === 'running')
    await signalContainer(ctx, id, entry.record.stopSignal);
  if (timeout >= 0 && (await waitUntilStopped(ctx, id, timeout * 1000))) return;
  for (;;) {
    await signalContainer(ctx, id, 'KILL');
    if (await waitUntilStopped(ctx, id, 10_000)) return;
  }
}

/** `docker kill`: one signal to a running container. */
export async function killContainer(ctx: ContainerContext, id: string, signal: string): Promise<void> {
  const entry = await reconcile(ctx, await ctx.containers.read(id));
  if (entry.state.status !== 'running')
    throw new StrataError('CONFLICT', `cannot kill container ${entry.record.name}: it is not running`);
  const normal = normalizeSignal(signal);
  if (normal === 'SIGKILL' || normal === '9') await writeFile(ctx.containers.paths(id).stopRequested, 'kill');
  if (!(await signalContainer(ctx, id, normal)))
    throw new StrataError('CONFLICT', `cannot kill container ${entry.record.name}: it is not running`);
}

/**
 * `docker rm`: refuses a running container unless `force` (then SIGKILL first); unmounts what is
 * left, unpins the image, removes the directory, and with `volumes` the anonymous volumes.
 */
export async function removeContainer(
  ctx: ContainerContext,
  id: string,
  options: { force?: boolean; volumes?: boolean } = {},
): Promise<void> {
  const entry = await reconcile(ctx, await ctx.containers.read(id));
  if (isActive(entry)) {
    if (!options.force) {
      throw new StrataError(
        'CONFLICT',
        `cannot remove container ${entry.record.name}: container is ${entry.state.status}: stop the container before removing or force remove`,
      );
    }
    await stopContainer(ctx, id, 0);
  }
  // A supervisor still writing its last state (or removing the container itself, for --rm): let it end.
  if (entry.state.supervisorPid !== process.pid)
    await waitUntilStopped(ctx, id, 10_000, true).catch(() => false);
  await cleanUpRuntime(ctx, entry);
  await ctx.store.unpin(pinName(id));
  await ctx.containers.remove(id);
  if (options.volumes) {
    for (const mount of entry.record.mounts) {
      if (mount.anonymous)
        await rm(posix.dirname(ctx.containers.volumePath(mount.source)), { recursive: true, force: true });
    }
  }
}

/** `docker wait`: blocks until the container is stopped for good; its exit code. */
export async function waitContainer(ctx: ContainerContext, id: string): Promise<number> {
  for (;;) {
    let entry: ContainerEntry;
    try {
      entry = await reconcile(ctx, await ctx.containers.read(id));
    } catch (err) {
      throw err instanceof StrataError && err.code === 'NOT_FOUND'
        ? new StrataError('NOT_FOUND', `container ${id.slice(0, 12)} was removed while waiting`)
        : err;
    }
    if (!isActive(entry) && !(entry.state.status === 'created' && (await supervisorAlive(entry.state))))
      return entry.state.exitCode;
    await sleep(POLL_MS * 2);
  }
}

export { stopRequested };
