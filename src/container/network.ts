/**
 * The default `private` network: a network namespace of the container's own, connected to the
 * host by pasta (Debian's `passt` package), which gives it the host's addresses and routes in a
 * tap device, forwards outgoing TCP/UDP through host sockets, and forwards published ports
 * (`-p`) from the host into the namespace. pasta needs no bridge, no iptables and no root-owned
 * daemon; slirp4netns would work too but needs its API socket for every port and copies packets
 * through libslirp (docs/run.md says why pasta).
 *
 * The namespace is made with `unshare --net=<file>` (an nsfs bind mount in the container's
 * directory) before runc starts, so pasta is attached and every port bound before the process
 * runs; runc joins it by path. pasta 2023-03 (Debian 12) run as root drops to `nobody` before
 * joining a namespace and then cannot, hence `--runas 0:0` (documented in docs/run.md).
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

import { StrataError, errnoCode } from '../errors.js';
import { processAlive } from '../store/index.js';
import { isMountPoint } from './rootfs.js';
import { runHostCommandOk } from '../archive/shell-runner.js';
import type { BoundPort, PortBinding } from './types.js';

const execFileAsync = promisify(execFile);

export interface PrivateNetwork {
  namespacePath: string;
  ports: BoundPort[];
  /** pid of the pasta daemon (recorded so a later `rm -f` can stop it if the supervisor died). */
  pastaPid: number;
}

/** A free port on `hostIp` now (the kernel's choice); pasta binds it a moment later. */
async function freePort(hostIp: string, protocol: 'tcp' | 'udp'): Promise<number> {
  const host = hostIp === '' ? '0.0.0.0' : hostIp;
  if (protocol === 'udp') {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => resolve());
    });
    const { port } = socket.address();
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    return port;
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new StrataError('INTERNAL', 'no port was bound');
  return address.port;
}

/** pasta's `-t`/`-u` spec for one binding: `[ADDR/]HOST:CONTAINER`. */
export function pastaPortSpec(port: BoundPort): string {
  return `${port.hostIp === '' ? '' : `${port.hostIp}/`}${port.hostPort}:${port.containerPort}`;
}

export async function setUpPrivateNetwork(
  namespacePath: string,
  pidFile: string,
  bindings: readonly PortBinding[],
): Promise<PrivateNetwork> {
  const ports: BoundPort[] = [];
  for (const binding of bindings) {
    ports.push({
      ...binding,
      hostPort: binding.hostPort === 0 ? await freePort(binding.hostIp, binding.protocol) : binding.hostPort,
    });
  }
  await tearDownNetwork(namespacePath, undefined);
  await writeFile(namespacePath, '', { mode: 0o600 });
  try {
    await runHostCommandOk('unshare', [`--net=${namespacePath}`, 'true']);
  } catch (err) {
    await rm(namespacePath, { force: true });
    throw new StrataError('UNSUPPORTED', `cannot create a network namespace: ${(err as Error).message}`);
  }
  const tcp = ports.filter((port) => port.protocol === 'tcp').map(pastaPortSpec);
  const udp = ports.filter((port) => port.protocol === 'udp').map(pastaPortSpec);
  const args = [
    '--quiet',
    '--config-net',
    ...(tcp.length > 0 ? tcp.flatMap((spec) => ['-t', spec]) : ['-t', 'none']),
    ...(udp.length > 0 ? udp.flatMap((spec) => ['-u', spec]) : ['-u', 'none']),
    // Nothing from the namespace to the host's own ports (pasta's default forwards them all).
    '-T',
    'none',
    '-U',
    'none',
    '--netns',
    namespacePath,
    '--runas',
    '0:0',
    '--pid',
    pidFile,
  ];
  try {
    // pasta daemonizes once the namespace is configured and every port is bound.
    await execFileAsync('pasta', args, { timeout: 30_000 });
  } catch (err) {
    await tearDownNetwork(namespacePath, undefined);
    if (errnoCode(err) === 'ENOENT')
      throw new StrataError(
        'UNSUPPORTED',
        'the private network needs pasta (Debian package passt): install it or use --network host|none',
      );
    const stderr = String((err as { stderr?: unknown }).stderr ?? '')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('Failed to send'))
      .join('; ');
    throw new StrataError(
      'CONFLICT',
      `cannot publish ports or set up the network: ${stderr || (err as Error).message}`,
    );
  }
  const pastaPid = Number((await readFile(pidFile, 'utf8')).trim());
  return { namespacePath, ports, pastaPid };
}

/** Stops pasta and removes the namespace file; safe to call when either is already gone. */
export async function tearDownNetwork(namespacePath: string, pastaPid: number | undefined): Promise<void> {
  if (pastaPid !== undefined && pastaPid > 0 && processAlive(pastaPid) && (await isPasta(pastaPid))) {
    try {
      process.kill(pastaPid, 'SIGTERM');
    } catch {
      // Gone meanwhile.
    }
    for (let i = 0; i < 50 && processAlive(pastaPid) && !(await isZombie(pastaPid)); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (await isMountPoint(namespacePath)) {
    await runHostCommandOk('umount', [namespacePath]).catch(() =>
      runHostCommandOk('umount', ['-l', namespacePath]),
    );
  }
  await rm(namespacePath, { force: true });
}

/** Exited but not reaped yet: the daemonized pasta's parent is init, which reaps when it can. */
async function isZombie(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** The pid still belongs to a pasta (pids are reused). */
async function isPasta(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return /(^|\/)(pasta|passt)[^\0]*\0/.test(cmdline);
  } catch {
    return false;
  }
}
