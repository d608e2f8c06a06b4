/**
 * What a process run by the runtime sees, independent of how it is isolated: the public option
 * and result types, the resolved description both isolations consume, and the OCI runtime spec
 * (config.json) that the runc isolation hands to runc.
 *
 * The defaults are Docker's and BuildKit's (containerd's default Unix spec as BuildKit adjusts
 * it for RUN): Docker's capability set, its masked and read-only /proc paths, /sys read-only,
 * a deny-all device cgroup (runc adds its default devices to it), no rlimits, and
 * `noNewPrivileges: false` so that setuid programs (sudo, su) work in a RUN, as BuildKit allows.
 *
 * Not (yet) like Docker: no seccomp profile and no AppArmor profile are applied, /sys/fs/cgroup
 * is not mounted, and `insecure` does not bind the host's devices into /dev.
 */
import type { RuncSession } from './session.js';

export interface RuntimeMount {
  type: 'bind' | 'tmpfs';
  /** Host path of a bind mount; unused for tmpfs. */
  source?: string;
  /** Absolute path inside the root filesystem. */
  destination: string;
  readonly?: boolean;
  /** Extra mount options, e.g. `size=64m` for a tmpfs. */
  options?: string[];
}

export type Isolation = 'runc' | 'chroot';

export interface RunProcessOptions {
  /** A prepared, writable root filesystem directory (an overlay merged dir). */
  rootfs: string;
  /** argv, already resolved (shell form already wrapped in `['/bin/sh', '-c', …]`). */
  args: string[];
  /** `KEY=VALUE` entries. */
  env: string[];
  /** Absolute path inside the rootfs; created (mode 0755, owned by root) and kept if missing. */
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: number[];
  /** Default: a random 12-hex id, like BuildKit. */
  hostname?: string;
  /**
   * 'host' shares the host's network namespace; 'none' gets a fresh one with only `lo`; a
   * `namespacePath` joins that namespace (runc isolation only).
   */
  network: NetworkMode;
  mounts?: RuntimeMount[];
  /** `RUN --security=insecure`: all capabilities, no masked paths, devices allowed, /sys writable. */
  insecure?: boolean;
  /** 'auto' (default): runc if it works here, else chroot. */
  isolation?: 'auto' | Isolation;
  onOutput?: (stream: 1 | 2, data: Uint8Array) => void;
  /** Kills the container; the run then resolves with `signal: 'SIGKILL'`. */
  signal?: AbortSignal;
  /**
   * A build's long-lived containers (runc isolation): the step runs in one of them instead of
   * its own `runc run` when its rootfs lies under the session's `mountRoot`.
   */
  session?: RuncSession;
}

export interface RunProcessResult {
  /** The process's exit status; 128 + n when it was killed by signal n (as a shell reports it). */
  exitCode: number;
  /**
   * The signal that killed the process, when known: always after an abort; with chroot for any
   * signal. runc only reports 128 + n, which a process may also exit with, so it is not guessed.
   */
  signal?: string;
  isolation: Isolation;
}

/** What an isolation streams the output to, and what stops it. */
export type ProcessIo = Pick<RunProcessOptions, 'onOutput' | 'signal'>;

/** A mount whose destination is already resolved inside the rootfs (no symlinks left in it). */
export interface ResolvedMount {
  type: 'bind' | 'tmpfs';
  source?: string;
  destination: string;
  readonly: boolean;
  options: string[];
}

/**
 * Where the process's network comes from: the host's namespace, a fresh one with only `lo`, or
 * an existing namespace (a bind-mounted nsfs file) that someone else wired up — strata run's
 * private network, connected to the host by pasta.
 */
export type NetworkMode = 'host' | 'none' | { namespacePath: string };

/** Everything an isolation needs to start the process; index.ts builds it from the options. */
export interface ContainerConfig {
  /** Real path (symlinks resolved) of the root filesystem. */
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  hostname: string;
  network: NetworkMode;
  insecure: boolean;
  /** The process gets a terminal (runc creates the pty; only `runc run`/`exec` in the foreground). */
  terminal?: boolean;
  /** The root filesystem is mounted read-only (`strata run --read-only`). */
  readonlyRootfs?: boolean;
  /** /etc/hosts, /etc/hostname, /etc/resolv.conf, then the caller's mounts, in mount order. */
  mounts: ResolvedMount[];
  /**
   * What `insecure` grants: the capabilities this process holds itself (runc cannot hand out
   * more, and a sandboxed host may lack some). Every capability when not given.
   */
  hostCapabilities?: readonly string[];
}

/** Mount points the isolations always mount over; they must exist in the rootfs while it runs. */
export const SYSTEM_MOUNT_POINTS = ['/proc', '/dev', '/sys'] as const;

/** Docker's default capability set (moby `caps.DefaultCapabilities`, containerd's default spec). */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

/** Every capability by number (linux/capability.h), for `--security=insecure`. */
export const ALL_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
] as const;

/** containerd's default masked paths: hidden (bound to /dev/null or an empty read-only tmpfs). */
export const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
] as const;

/** containerd's default read-only paths: kernel knobs a container must not turn. */
export const READONLY_PATHS = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
] as const;

/** The sizes Docker gives /dev and /dev/shm. */
export const DEV_TMPFS_SIZE = 'size=65536k';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciCapabilities {
  bounding: string[];
  effective?: string[];
  permitted?: string[];
}

/** The part of the OCI runtime spec 1.0 that strata writes. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    /** The terminal's size from the start (else runc sets it only after the process started). */
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: OciCapabilities;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: Array<{ type: string; path?: string }>;
    resources: { devices: Array<{ allow: boolean; access: string }> };
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
}

/**
 * Capabilities as Docker sets them: root gets the set in bounding, effective and permitted; any
 * other user only in bounding, which is what execve would leave a non-root user anyway (setuid
 * programs can still gain them). Inheritable and ambient stay empty (CVE-2022-24769).
 */
export function capabilitiesFor(
  uid: number,
  insecure: boolean,
  hostCapabilities: readonly string[] = ALL_CAPABILITIES,
): OciCapabilities {
  const set = [...(insecure ? hostCapabilities : DEFAULT_CAPABILITIES)];
  if (uid !== 0) return { bounding: set };
  return { bounding: set, effective: [...set], permitted: [...set] };
}

/** The kernel file systems every container gets, Docker's options. */
function systemMounts(insecure: boolean): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', DEV_TMPFS_SIZE],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', DEV_TMPFS_SIZE],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/sys',
      type: 'sysfs',
      source: 'sysfs',
      options: ['nosuid', 'noexec', 'nodev', insecure ? 'rw' : 'ro'],
    },
  ];
}

export function ociMount(mount: ResolvedMount): OciMount {
  const access = mount.readonly ? 'ro' : 'rw';
  if (mount.type === 'tmpfs') {
    return {
      destination: mount.destination,
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', ...mount.options, access],
    };
  }
  return {
    destination: mount.destination,
    type: 'bind',
    source: mount.source ?? '',
    options: ['rbind', ...mount.options, access],
  };
}

/** The process part of the spec: also what `runc exec --process` takes for `strata exec`. */
export type OciProcess = OciSpec['process'];

export function ociProcess(
  config: Pick<
    ContainerConfig,
    'args' | 'env' | 'cwd' | 'uid' | 'gid' | 'additionalGids' | 'insecure' | 'hostCapabilities' | 'terminal'
  >,
): OciProcess {
  const user =
    config.additionalGids.length > 0
      ? { uid: config.uid, gid: config.gid, additionalGids: [...config.additionalGids] }
      : { uid: config.uid, gid: config.gid };
  return {
    terminal: config.terminal ?? false,
    user,
    args: [...config.args],
    env: [...config.env],
    cwd: config.cwd,
    capabilities: capabilitiesFor(config.uid, config.insecure, config.hostCapabilities),
    noNewPrivileges: false,
  };
}

export function ociSpec(config: ContainerConfig): OciSpec {
  const namespaces: Array<{ type: string; path?: string }> = ['pid', 'ipc', 'uts', 'mount'].map((type) => ({
    type,
  }));
  // runc brings `lo` up itself in a network namespace it creates; a joined one is wired already.
  if (config.network === 'none') namespaces.push({ type: 'network' });
  else if (typeof config.network === 'object')
    namespaces.push({ type: 'network', path: config.network.namespacePath });
  return {
    ociVersion: '1.0.2',
    process: ociProcess(config),
    root: { path: config.rootfs, readonly: config.readonlyRootfs ?? false },
    hostname: config.hostname,
    mounts: [...systemMounts(config.insecure), ...config.mounts.map(ociMount)],
    linux: {
      namespaces,
      // Deny-all is what keeps CAP_MKNOD harmless; runc appends allow rules for the default
      // devices (null, zero, full, random, urandom, tty, ptmx). No resource limits are set.
      resources: { devices: [{ allow: config.insecure, access: 'rwm' }] },
      ...(config.insecure ? {} : { maskedPaths: [...MASKED_PATHS], readonlyPaths: [...READONLY_PATHS] }),
    },
  };
}

/**
 * This process's terminal size, for a container process that gets a terminal: given to runc as
 * `consoleSize`, the process sees it from its first instruction. Without it runc resizes the pty
 * only once the process runs, and a quick first `stty size` can still read 0 0.
 */
export function ownTerminalSize(): { height: number; width: number } | undefined {
  const { rows, columns, isTTY } = process.stdout;
  return isTTY && rows > 0 && columns > 0 ? { height: rows, width: columns } : undefined;
}

/** The capabilities in this process's bounding set, from a `CapBnd:` hex mask. */
export function capabilitiesInMask(mask: bigint): string[] {
  return ALL_CAPABILITIES.filter((_, bit) => (mask & (1n << BigInt(bit))) !== 0n);
}

/** /etc/hosts as BuildKit writes it: localhost and the container's own name on loopback. */
export function hostsFile(hostname: string): string {
  return `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}

/** Docker's fallback when the host has no resolv.conf: public resolvers. */
export const FALLBACK_RESOLV_CONF = 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n';
