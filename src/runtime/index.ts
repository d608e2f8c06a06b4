/**
 * Runs one process in a prepared root filesystem, isolated by runc (an OCI bundle) or, where runc
 * is missing, by unshare + chroot. This module does what both isolations share: it checks the
 * options, writes /etc/hosts, /etc/hostname and /etc/resolv.conf into a temporary directory
 * outside the rootfs, creates the mount points the run needs, and afterwards removes exactly the
 * mount points it created, so a RUN that changes nothing leaves nothing in the layer.
 *
 * The caller resolves users (uid, gid, supplementary gids come in as numbers) and prepares the
 * rootfs; the working directory is created when missing and kept, as BuildKit keeps it.
 */
import { randomBytes } from 'node:crypto';
// Synchronous on purpose: a step's preparation is some fifty tiny metadata calls, each a
// thread-pool round trip when asynchronous; together they cost milliseconds per RUN step.
import {
  accessSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { setTimesNs } from '../archive/host-calls.js';
import { StrataError, errnoCode } from '../errors.js';
import { runWithChroot } from './chroot.js';
import { findRunc, runWithRunc } from './runc.js';
import {
  ALL_CAPABILITIES,
  FALLBACK_RESOLV_CONF,
  capabilitiesInMask,
  SYSTEM_MOUNT_POINTS,
  hostsFile,
  type ContainerConfig,
  type Isolation,
  type NetworkMode,
  type ResolvedMount,
  type RunProcessOptions,
  type RunProcessResult,
} from './spec.js';

export type {
  ContainerConfig,
  Isolation,
  NetworkMode,
  OciProcess,
  OciSpec,
  RunProcessOptions,
  RunProcessResult,
  RuntimeMount,
} from './spec.js';
export { ociProcess, ociSpec, ownTerminalSize } from './spec.js';
export { findRunc } from './runc.js';
export { RuncSession } from './session.js';

/** Docker's PATH for a process whose environment has none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Same limit as securejoin: more links than this on one path is a loop. */
const MAX_SYMLINK_HOPS = 255;

const MAX_ID = 0xffffffff;

let detected: Promise<Isolation> | undefined;

/** runc when a runc binary answers here, else chroot. Asked once per process. */
export function detectIsolation(): Promise<Isolation> {
  detected ??= findRunc().then((runc) => (runc === undefined ? 'chroot' : 'runc'));
  return detected;
}

export async function runProcess(options: RunProcessOptions): Promise<RunProcessResult> {
  validate(options);
  if (options.signal?.aborted) throw options.signal.reason;
  const isolation = await chooseIsolation(options.isolation ?? 'auto');
  if (isolation === 'chroot' && typeof options.network === 'object')
    throw new StrataError('UNSUPPORTED', 'joining a network namespace needs runc isolation');
  const session = isolation === 'runc' ? options.session : undefined;
  // In a session, the /etc files must be where the session's containers see them.
  const scratch = mkdtempSync(session ? join(session.mountRoot, 'run-') : join(tmpdir(), 'strata-run-'));
  try {
    const prepared = await prepareContainer({ ...options, etcDir: join(scratch, 'etc') });
    try {
      const io = { onOutput: options.onOutput, signal: options.signal };
      if (session?.accepts(prepared.config)) {
        const result = await session.run(prepared.config, io);
        if (result) return result;
      }
      if (isolation === 'runc') {
        return await runWithRunc((await findRunc()) as string, prepared.config, scratch, io);
      }
      return await runWithChroot(prepared.config, io);
    } finally {
      await prepared.release();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export interface PrepareContainerOptions extends Omit<
  RunProcessOptions,
  'isolation' | 'onOutput' | 'signal'
> {
  /** Where /etc/hosts, /etc/hostname and /etc/resolv.conf are written (created if missing). */
  etcDir: string;
  /** Extra /etc/hosts lines (`--add-host`), after the defaults. */
  extraHosts?: string[];
  terminal?: boolean;
  readonlyRootfs?: boolean;
}

export interface PreparedContainer {
  /** What an isolation starts (for runc: `ociSpec(config)` is the bundle's config.json). */
  config: ContainerConfig;
  /** Removes the mount points the preparation created (call when the process has exited). */
  release(): Promise<void>;
}

/**
 * Everything before the process starts, shared by a build's RUN and a long-running container:
 * checks the options, creates the working directory, writes the /etc files into `etcDir`, creates
 * the mount points, checks that the command exists, and fills HOME in.
 */
export async function prepareContainer(options: PrepareContainerOptions): Promise<PreparedContainer> {
  validate(options);
  let rootfs: string;
  try {
    rootfs = realpathSync(options.rootfs);
  } catch (err) {
    throw new StrataError('NOT_FOUND', `root filesystem ${options.rootfs} does not exist`, { cause: err });
  }
  await ensureWorkingDirectory(rootfs, options.cwd);
  const mountPoints = new MountPoints(rootfs);
  try {
    const hostname = options.hostname ?? randomBytes(6).toString('hex');
    const mounts = [
      ...(await etcFileMounts(options.etcDir, hostname, options.network, options.extraHosts ?? [])),
      ...(await callerMounts(options)),
    ];
    for (const path of SYSTEM_MOUNT_POINTS) await mountPoints.ensure(path, 'directory');
    const resolved: ResolvedMount[] = [];
    for (const mount of mounts) {
      const kind =
        mount.type === 'bind' && !statSync(mount.source ?? '').isDirectory() ? 'file' : 'directory';
      resolved.push({ ...mount, destination: await mountPoints.ensure(mount.destination, kind) });
    }
    await checkExecutable(rootfs, options.args[0] as string, options.env, resolved);
    await mountPoints.sealed();
    const config: ContainerConfig = {
      rootfs,
      args: [...options.args],
      env: await withHome(rootfs, options.env, options.uid),
      // As given: the kernel follows its symlinks inside the container's root.
      cwd: options.cwd,
      uid: options.uid,
      gid: options.gid,
      additionalGids: [...(options.additionalGids ?? [])],
      hostname,
      network: options.network,
      insecure: options.insecure ?? false,
      mounts: resolved,
      ...(options.terminal ? { terminal: true } : {}),
      ...(options.readonlyRootfs ? { readonlyRootfs: true } : {}),
      ...(options.insecure ? { hostCapabilities: await ownCapabilities() } : {}),
    };
    return { config, release: () => mountPoints.removeCreated() };
  } catch (err) {
    await mountPoints.removeCreated();
    throw err;
  }
}

/**
 * runc sets HOME, when the environment has none, to the user's home in the image's /etc/passwd
 * (or `/`); done here so that both isolations give the same environment.
 */
async function withHome(rootfs: string, env: readonly string[], uid: number): Promise<string[]> {
  if (env.some((entry) => entry.startsWith('HOME='))) return [...env];
  let home = '/';
  try {
    const passwd = readFileSync(hostPathOf(rootfs, await resolveInRootfs(rootfs, '/etc/passwd')), 'utf8');
    for (const line of passwd.split('\n')) {
      const fields = line.split(':');
      if (fields.length >= 7 && fields[2] === String(uid) && fields[5]) {
        home = fields[5];
        break;
      }
    }
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') throw err;
  }
  return [...env, `HOME=${home}`];
}

/** The bounding set of this process: all that an insecure run can be given. */
async function ownCapabilities(): Promise<string[]> {
  const status = await readFile('/proc/self/status', 'utf8');
  const mask = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return mask === undefined ? [...ALL_CAPABILITIES] : capabilitiesInMask(BigInt(`0x${mask}`));
}

/** BuildKit creates a missing working directory (root-owned, 0755) and keeps it in the layer. */
async function ensureWorkingDirectory(rootfs: string, cwd: string): Promise<void> {
  const host = hostPathOf(rootfs, await resolveInRootfs(rootfs, cwd));
  try {
    mkdirSync(host, { recursive: true, mode: 0o755 });
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
    throw new StrataError('INVALID_ARGUMENT', `working directory ${cwd} is not a directory in the image`);
  }
}

async function chooseIsolation(requested: 'auto' | Isolation): Promise<Isolation> {
  if (requested === 'auto') return detectIsolation();
  if (requested === 'runc' && (await findRunc()) === undefined) {
    throw new StrataError('UNSUPPORTED', 'runc isolation requested but no working runc was found');
  }
  return requested;
}

function validate(options: Omit<RunProcessOptions, 'isolation' | 'onOutput' | 'signal'>): void {
  const fail = (message: string): never => {
    throw new StrataError('INVALID_ARGUMENT', message);
  };
  if (options.args.length === 0 || options.args[0] === '') fail('no command to run');
  if (!options.cwd.startsWith('/')) fail(`working directory ${options.cwd} is not absolute`);
  for (const entry of options.env) {
    if (entry.indexOf('=') <= 0) fail(`environment entry ${JSON.stringify(entry)} is not KEY=VALUE`);
  }
  for (const id of [options.uid, options.gid, ...(options.additionalGids ?? [])]) {
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) fail(`invalid user or group id ${id}`);
  }
  for (const mount of options.mounts ?? []) {
    if (!mount.destination.startsWith('/')) fail(`mount destination ${mount.destination} is not absolute`);
    if (mount.type === 'bind' && !mount.source) fail(`bind mount on ${mount.destination} has no source`);
  }
}

/**
 * /etc/hosts, /etc/hostname and /etc/resolv.conf, written outside the rootfs and bound
 * read-only over the image's files, so the image never sees them in its layer. resolv.conf is
 * the host's as it is (with host networking its nameservers are reachable, with none nothing
 * is), or Docker's public fallback when the host has none.
 */
async function etcFileMounts(
  dir: string,
  hostname: string,
  network: NetworkMode,
  extraHosts: readonly string[],
): Promise<ResolvedMount[]> {
  mkdirSync(dir, { recursive: true });
  let resolvConf: string;
  try {
    resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    resolvConf = FALLBACK_RESOLV_CONF;
  }
  if (typeof network === 'object') resolvConf = withoutLoopbackNameservers(resolvConf);
  const files: Array<[string, string]> = [
    ['hosts', hostsFile(hostname) + extraHosts.map((line) => `${line}\n`).join('')],
    ['hostname', `${hostname}\n`],
    ['resolv.conf', resolvConf],
  ];
  const mounts: ResolvedMount[] = [];
  for (const [name, content] of files) {
    writeFileSync(join(dir, name), content, { mode: 0o644 });
    mounts.push({
      type: 'bind',
      source: join(dir, name),
      destination: `/etc/${name}`,
      readonly: true,
      options: [],
    });
  }
  return mounts;
}

/**
 * A private network namespace cannot reach the host's loopback resolver (systemd-resolved's
 * 127.0.0.53, a local dnsmasq): Docker drops such nameservers and, when none is left, uses its
 * public fallback. Same here.
 */
export function withoutLoopbackNameservers(resolvConf: string): string {
  const lines = resolvConf.split('\n');
  const kept = lines.filter((line) => !/^\s*nameserver\s+(127\.|::1\b)/.test(line));
  if (kept.some((line) => /^\s*nameserver\s/.test(line))) return kept.join('\n');
  return `${kept.join('\n').replace(/\n*$/, '\n')}${FALLBACK_RESOLV_CONF}`.replace(/^\n+/, '');
}

async function callerMounts(options: Pick<RunProcessOptions, 'mounts'>): Promise<ResolvedMount[]> {
  const mounts: ResolvedMount[] = [];
  for (const mount of options.mounts ?? []) {
    let source: string | undefined;
    if (mount.type === 'bind') {
      try {
        source = realpathSync(mount.source as string);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        throw new StrataError('NOT_FOUND', `bind mount source ${mount.source} does not exist`);
      }
    }
    mounts.push({
      type: mount.type,
      ...(source === undefined ? {} : { source }),
      destination: mount.destination,
      readonly: mount.readonly ?? false,
      options: [...(mount.options ?? [])],
    });
  }
  return mounts;
}

/**
 * The in-root absolute path that `path` names inside `rootfs`: symlinks are followed one
 * component at a time (absolute targets start again at the root), `..` stops at the root, and
 * missing components are kept as written. The result has no symlink in it, so mounting on
 * `rootfs + result` can never land outside the rootfs.
 */
async function resolveInRootfs(rootfs: string, path: string): Promise<string> {
  const resolved: string[] = [];
  let pending = path.split('/');
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '' || component === '.') continue;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const candidate = hostPathOf(rootfs, `/${[...resolved, component].join('/')}`);
    let target: string | undefined;
    try {
      if (lstatSync(candidate).isSymbolicLink()) target = readlinkSync(candidate);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (target === undefined) {
      resolved.push(component);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) {
      throw new StrataError('UNSAFE_PATH', `cannot resolve ${path}: too many levels of symbolic links`);
    }
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...target.split('/'), ...pending];
  }
  return `/${resolved.join('/')}`;
}

function hostPathOf(rootfs: string, inRoot: string): string {
  return inRoot === '/' ? rootfs : `${rootfs}${inRoot}`;
}

/**
 * Fails early, with one clear line, when the command does not exist in the image: runc would
 * say it too, but unshare (chroot isolation) only exits 127, like a process could. A command
 * that may come from a mount (RUN --mount) is not known until it runs: the isolation decides.
 */
async function checkExecutable(
  rootfs: string,
  command: string,
  env: readonly string[],
  mounts: readonly ResolvedMount[],
): Promise<void> {
  const pathEntry = [...env].reverse().find((entry) => entry.startsWith('PATH='));
  const searchPath = pathEntry === undefined ? DEFAULT_PATH : pathEntry.slice('PATH='.length);
  const candidates = command.includes('/')
    ? [command.startsWith('/') ? command : `/${command}`]
    : searchPath
        .split(delimiter)
        .filter((dir) => dir.startsWith('/'))
        .map((dir) => `${dir}/${command}`);
  for (const candidate of candidates) {
    const inRoot = await resolveInRootfs(rootfs, candidate);
    if (mounts.some((mount) => inRoot === mount.destination || inRoot.startsWith(`${mount.destination}/`)))
      return;
    const host = hostPathOf(rootfs, inRoot);
    try {
      if (statSync(host).isFile()) {
        accessSync(host, constants.X_OK);
        return;
      }
    } catch {
      // Not this one: try the next directory of PATH.
    }
  }
  throw new StrataError('NOT_FOUND', `executable ${JSON.stringify(command)} not found in the image's PATH`);
}

interface Anchor {
  /** The existing directory a run's first missing component was created in. */
  path: string;
  atimeNs: bigint;
  mtimeNs: bigint;
  /** Its mtime once every mount point exists: a different one afterwards means the process wrote there. */
  mtimeWithStubsNs?: bigint;
}

/**
 * The mount points a run needs, created before it starts and removed after it if this run made
 * them and they are still empty (an empty dir, an empty file). Their parent's times are put back
 * when the process did not write in it, so an overlay upper dir keeps at most unchanged copies
 * of the parent directories.
 */
class MountPoints {
  private readonly created: string[] = [];
  private readonly anchors = new Map<string, Anchor>();

  constructor(private readonly rootfs: string) {}

  /** Creates `path` (and missing parents) if needed; returns it resolved inside the rootfs. */
  async ensure(path: string, kind: 'file' | 'directory'): Promise<string> {
    const inRoot = await resolveInRootfs(this.rootfs, path);
    if (inRoot === '/')
      throw new StrataError('INVALID_ARGUMENT', `cannot mount over the root directory (${path})`);
    const components = inRoot.slice(1).split('/');
    let parent = this.rootfs;
    for (const [index, component] of components.entries()) {
      const host = join(parent, component);
      const last = index === components.length - 1;
      const existing = lstatSync(host, { throwIfNoEntry: false });
      if (existing === undefined) {
        await this.remember(parent);
        if (last && kind === 'file') writeFileSync(host, '', { mode: 0o644, flag: 'wx' });
        else mkdirSync(host, { mode: 0o755 });
        this.created.push(host);
      } else if (!last && !existing.isDirectory()) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `cannot mount on ${path}: ${host.slice(this.rootfs.length)} is not a directory`,
        );
      } else if (last && existing.isDirectory() !== (kind === 'directory')) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `cannot mount a ${kind} on ${path}: the image has a ${kind === 'file' ? 'directory' : 'file'} there`,
        );
      }
      parent = host;
    }
    return inRoot;
  }

  private async remember(dir: string): Promise<void> {
    if (this.anchors.has(dir) || this.created.includes(dir)) return;
    const stats = lstatSync(dir, { bigint: true });
    this.anchors.set(dir, { path: dir, atimeNs: stats.atimeNs, mtimeNs: stats.mtimeNs });
  }

  /** Called once every mount point exists, just before the process starts. */
  async sealed(): Promise<void> {
    for (const anchor of this.anchors.values()) {
      anchor.mtimeWithStubsNs = lstatSync(anchor.path, { bigint: true }).mtimeNs;
    }
  }

  async removeCreated(): Promise<void> {
    const untouched = new Set<string>();
    for (const anchor of this.anchors.values()) {
      const now = lstatSync(anchor.path, { bigint: true, throwIfNoEntry: false });
      // Not sealed: the run never started, so nothing but us wrote there.
      const unchanged = anchor.mtimeWithStubsNs === undefined || now?.mtimeNs === anchor.mtimeWithStubsNs;
      if (now !== undefined && unchanged) untouched.add(anchor.path);
    }
    let kept = 0;
    for (const host of [...this.created].reverse()) {
      if (!(await removeIfEmpty(host))) kept++;
    }
    // A kept entry is a change in its parent, whose times must then say so.
    if (kept > 0) return;
    for (const anchor of this.anchors.values()) {
      if (untouched.has(anchor.path)) await restoreTimes(anchor);
    }
  }
}

/** Removes an empty dir or empty file; keeps anything the process put there. */
async function removeIfEmpty(host: string): Promise<boolean> {
  try {
    const stats = lstatSync(host);
    if (stats.isDirectory() && readdirSync(host).length === 0) rmdirSync(host);
    else if (stats.isFile() && stats.size === 0) unlinkSync(host);
    else return false;
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return true;
    // Still a mount point (a process that outlived the run) or filled meanwhile.
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false;
    throw err;
  }
}

/** Nanosecond-exact: Node's utimes goes through a double and would move the times slightly. */
async function restoreTimes(anchor: Anchor): Promise<void> {
  await setTimesNs(anchor.path, anchor.atimeNs, anchor.mtimeNs);
}
