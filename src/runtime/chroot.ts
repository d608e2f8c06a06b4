/**
 * The chroot isolation, for machines without runc. util-linux's `unshare` makes new mount, PID,
 * IPC and UTS namespaces (and a network namespace unless the host's is shared) and runs a small
 * setup script with the host's /bin/sh — never anything from the image — that mounts what runc
 * would: /proc, a tmpfs /dev with the host's null, zero, full, random, urandom and tty bound in,
 * /dev/pts, /dev/shm, /dev/mqueue, /sys read-only, the /etc files and the caller's mounts, and
 * masks and write-protects the same /proc and /sys paths. The script then execs:
 *
 *   env -i ENV…  setpriv --bounding-set … --regid G --groups …  unshare --root R --wd CWD --setuid U  ARGS…
 *
 * setpriv narrows the capability bounding set to Docker's while still root, so the chroot and the
 * uid switch (both in that set) still work; unshare then enters the root, changes directory and
 * drops to the user, after which execve leaves a non-root user no capabilities, as with runc.
 *
 * This is not a security boundary like runc: there is no device cgroup and no pivot_root, so a
 * root process with CAP_MKNOD or CAP_SYS_CHROOT can reach the host. It is for trusted builds.
 */
import { spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { StrataError, errnoCode } from '../errors.js';
import {
  DEFAULT_CAPABILITIES,
  DEV_TMPFS_SIZE,
  MASKED_PATHS,
  READONLY_PATHS,
  type ContainerConfig,
  type ProcessIo,
  type ResolvedMount,
  type RunProcessResult,
} from './spec.js';

/** Devices every container gets; the same list runc creates itself. */
const DEFAULT_DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** The last line the setup script writes to fd 3 before it execs the process. */
const READY = 'strata-setup-done';

const KILL_RETRY_MS = 50;

const signals: Partial<Record<string, number>> = osConstants.signals;

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export async function runWithChroot(config: ContainerConfig, io: ProcessIo): Promise<RunProcessResult> {
  const [unshare, setpriv, env] = await Promise.all([
    hostTool('unshare'),
    hostTool('setpriv'),
    hostTool('env'),
  ]);
  const namespaces = [
    '--mount',
    '--pid',
    '--fork',
    '--ipc',
    '--uts',
    ...(config.network === 'none' ? ['--net'] : []),
  ];
  const exec = [
    env,
    '-i',
    '--',
    ...config.env,
    setpriv,
    ...(config.insecure ? [] : ['--bounding-set', boundingSet()]),
    '--regid',
    String(config.gid),
    ...(config.additionalGids.length > 0
      ? ['--groups', config.additionalGids.join(',')]
      : ['--clear-groups']),
    '--',
    unshare,
    `--root=${config.rootfs}`,
    `--wd=${config.cwd}`,
    ...(config.uid === 0 ? [] : [`--setuid=${config.uid}`]),
    '--',
    ...config.args,
  ];
  const script = setupScript(config, config.network === 'none' ? await findHostTool('ip') : undefined);
  const child = spawn(
    unshare,
    [...namespaces, '--propagation', 'private', '--', '/bin/sh', '-c', script, 'strata-setup', ...exec],
    { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
  );
  const [, stdout, stderr, setup] = child.stdio as unknown as [null, Readable, Readable, Readable];
  stdout.on('data', (chunk: Buffer) => io.onOutput?.(1, chunk));
  stderr.on('data', (chunk: Buffer) => io.onOutput?.(2, chunk));
  let setupOutput = '';
  setup.setEncoding('utf8');
  setup.on('data', (chunk: string) => {
    setupOutput += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });

  let aborted = false;
  let running = true;
  const onAbort = () => {
    aborted = true;
    void (async () => {
      while (running && child.pid !== undefined) {
        await killNamespaceInit(child.pid);
        await sleep(KILL_RETRY_MS);
      }
    })();
  };
  io.signal?.addEventListener('abort', onAbort, { once: true });
  // Aborted while the rootfs was being prepared: the event has fired already.
  if (io.signal?.aborted) onAbort();
  let status: { code: number | null; signal: NodeJS.Signals | null };
  try {
    status = await exited;
  } catch (err) {
    throw new StrataError('UNSUPPORTED', `cannot start unshare: ${(err as Error).message}`, { cause: err });
  } finally {
    running = false;
    io.signal?.removeEventListener('abort', onAbort);
  }

  if (aborted) return { exitCode: 128 + 9, signal: 'SIGKILL', isolation: 'chroot' };
  if (!setupOutput.trimEnd().endsWith(READY)) {
    const detail = setupOutput.trim() || `exit status ${status.code ?? status.signal}`;
    throw new StrataError('INTERNAL', `cannot set up the chroot isolation: ${detail}`);
  }
  if (status.signal !== null) {
    return { exitCode: 128 + (signals[status.signal] ?? 0), signal: status.signal, isolation: 'chroot' };
  }
  return { exitCode: status.code ?? 1, isolation: 'chroot' };
}

/** `-all,+chown,…`: setpriv's syntax for "exactly these". */
function boundingSet(): string {
  return ['-all', ...DEFAULT_CAPABILITIES.map((cap) => `+${cap.slice('CAP_'.length).toLowerCase()}`)].join(
    ',',
  );
}

function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The mounts, as shell commands on host paths under the rootfs. Every destination is already
 * resolved inside the rootfs (no symlink left), so none of these can land outside it.
 */
export function setupScript(config: ContainerConfig, ip: string | undefined): string {
  const at = (inRoot: string) => quote(`${config.rootfs}${inRoot}`);
  const lines = [
    'set -eu',
    // Setup errors go to fd 3, so a failed mount is told apart from the process's own exit.
    'exec 4>&2 2>&3',
    `mount -t proc -o nosuid,noexec,nodev proc ${at('/proc')}`,
    `mount -t tmpfs -o nosuid,strictatime,mode=755,${DEV_TMPFS_SIZE} tmpfs ${at('/dev')}`,
  ];
  for (const device of DEFAULT_DEVICES) {
    lines.push(`: > ${at(`/dev/${device}`)}`, `mount --bind /dev/${device} ${at(`/dev/${device}`)}`);
  }
  lines.push(
    `mkdir ${at('/dev/pts')} ${at('/dev/shm')} ${at('/dev/mqueue')}`,
    `mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts ${at('/dev/pts')}`,
    `mount -t tmpfs -o nosuid,noexec,nodev,mode=1777,${DEV_TMPFS_SIZE} shm ${at('/dev/shm')}`,
    `mount -t mqueue -o nosuid,noexec,nodev mqueue ${at('/dev/mqueue')}`,
    `ln -s pts/ptmx ${at('/dev/ptmx')}`,
    `ln -s /proc/self/fd ${at('/dev/fd')}`,
    `ln -s /proc/self/fd/0 ${at('/dev/stdin')}`,
    `ln -s /proc/self/fd/1 ${at('/dev/stdout')}`,
    `ln -s /proc/self/fd/2 ${at('/dev/stderr')}`,
    `mount -t sysfs -o nosuid,noexec,nodev,${config.insecure ? 'rw' : 'ro'} sysfs ${at('/sys')}`,
  );
  for (const mount of config.mounts) lines.push(mountCommand(mount, at(mount.destination)));
  if (!config.insecure) {
    for (const path of MASKED_PATHS) {
      lines.push(
        `if [ -d ${at(path)} ]; then mount -t tmpfs -o ro,nosuid,nodev,noexec tmpfs ${at(path)};` +
          ` elif [ -e ${at(path)} ]; then mount --bind /dev/null ${at(path)}; fi`,
      );
    }
    for (const path of READONLY_PATHS) {
      lines.push(`if [ -e ${at(path)} ]; then mount --bind -o ro ${at(path)} ${at(path)}; fi`);
    }
  }
  // The UTS namespace is new: this names it without touching the host's name.
  lines.push(`printf %s ${quote(config.hostname)} > /proc/sys/kernel/hostname`);
  // A new network namespace starts with lo down; runc brings it up, so do we.
  if (ip !== undefined) lines.push(`${quote(ip)} link set lo up`);
  lines.push(`echo ${READY} >&3`, 'exec 2>&4 3>&- 4>&-', 'exec "$@"');
  return lines.join('\n');
}

function mountCommand(mount: ResolvedMount, target: string): string {
  const access = mount.readonly ? 'ro' : 'rw';
  if (mount.type === 'tmpfs') {
    return `mount -t tmpfs -o ${['nosuid', 'nodev', ...mount.options, access].join(',')} tmpfs ${target}`;
  }
  const options = [...mount.options, access].join(',');
  // util-linux applies ro to a bind mount by remounting it, as runc does.
  return `mount --rbind -o ${quote(options)} ${quote(mount.source ?? '')} ${target}`;
}

/**
 * Kills the namespace's init (unshare's forked child): the kernel then kills everything else in
 * the PID namespace. Before the fork there is no child yet, so unshare itself goes.
 */
async function killNamespaceInit(unsharePid: number): Promise<void> {
  let children: number[] = [];
  try {
    const text = await readFile(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8');
    children = text.split(/\s+/).filter(Boolean).map(Number);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  for (const pid of children.length > 0 ? children : [unsharePid]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

async function findHostTool(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SYSTEM_PATH.split(':')].filter((dir) =>
    dir.startsWith('/'),
  );
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

async function hostTool(name: string): Promise<string> {
  const path = await findHostTool(name);
  if (path === undefined) {
    throw new StrataError(
      'UNSUPPORTED',
      `chroot isolation needs ${name} (util-linux, coreutils) on the host`,
    );
  }
  return path;
}
