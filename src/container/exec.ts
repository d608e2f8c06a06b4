/**
 * A second process in a running container (`strata exec`, and the healthcheck's probes): `runc
 * exec --process <json>`, the process being the container's own (from the bundle's config.json:
 * its environment, user, working directory and capabilities) with the caller's changes. A JSON
 * process rather than runc's flags because runc's `--user` keeps the container's capabilities,
 * which for a non-root container are none: `exec -u 0` must get root's, as with docker.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { resolveOwner, supplementaryGroups } from '../build/users.js';
import { StrataError } from '../errors.js';
import { capabilitiesFor, ownTerminalSize, type OciSpec } from '../runtime/spec.js';
import { findRunc, type OciProcess } from '../runtime/index.js';
import { mergeEnv } from './options.js';
import { runcGlobalArgs } from './process.js';
import type { ContainerStore } from './store.js';

export interface ExecRequest {
  args: string[];
  user?: string;
  env?: string[];
  workingDir?: string;
  terminal?: boolean;
}

/** The container's process spec with the request's changes. */
export async function execProcess(
  containers: ContainerStore,
  id: string,
  request: ExecRequest,
): Promise<OciProcess> {
  const paths = containers.paths(id);
  let spec: OciSpec;
  try {
    spec = JSON.parse(await readFile(join(paths.bundle, 'config.json'), 'utf8')) as OciSpec;
  } catch (err) {
    throw new StrataError('CONFLICT', `container ${id.slice(0, 12)} is not running`, { cause: err });
  }
  if (request.args.length === 0) throw new StrataError('INVALID_ARGUMENT', 'exec needs a command');
  const process: OciProcess = {
    ...spec.process,
    terminal: request.terminal ?? false,
    args: [...request.args],
    env: mergeEnv(spec.process.env, request.env ?? []),
    cwd: request.workingDir ?? spec.process.cwd,
  };
  const size = request.terminal ? ownTerminalSize() : undefined;
  if (size) process.consoleSize = size;
  else delete process.consoleSize;
  if (request.user !== undefined && request.user !== '') {
    const owner = await resolveOwner(request.user, paths.rootfs, { numericUserGroup: 'run' });
    const groups = await supplementaryGroups(request.user, paths.rootfs);
    process.user = groups.length > 0 ? { uid: owner.uid, gid: owner.gid, additionalGids: groups } : owner;
    process.capabilities = capabilitiesFor(owner.uid, false);
  }
  return process;
}

export interface ExecHandle {
  /** Exit code (128 + n for a signal), or -1 when runc itself could not run the process. */
  exited: Promise<number>;
  /** The process's host pid once runc has started it. */
  pid(): Promise<number>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `runc exec`; the process file and pid file live in the container's bundle dir. */
export async function startExec(
  containers: ContainerStore,
  id: string,
  process: OciProcess,
  stdio: StdioOptions,
  onOutput?: (chunk: Buffer) => void,
): Promise<ExecHandle> {
  const runc = await findRunc();
  if (runc === undefined) throw new StrataError('UNSUPPORTED', 'exec needs runc');
  const token = randomBytes(6).toString('hex');
  const processFile = join(containers.paths(id).bundle, `exec-${token}.json`);
  const pidFile = join(containers.paths(id).bundle, `exec-${token}.pid`);
  await writeFile(processFile, JSON.stringify(process));
  const child = spawn(
    runc,
    [...runcGlobalArgs(containers), 'exec', '--process', processFile, '--pid-file', pidFile, id],
    { stdio },
  );
  child.stdout?.on('data', (chunk: Buffer) => onOutput?.(chunk));
  child.stderr?.on('data', (chunk: Buffer) => onOutput?.(chunk));
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve(-1));
    child.once('close', (code) => resolve(code ?? -1));
  }).finally(async () => {
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    exited,
    kill: (signal) => child.kill(signal),
    pid: async () => {
      while (!done) {
        const text = await readFile(pidFile, 'utf8').catch(() => '');
        if (/^\d+$/.test(text.trim())) return Number(text.trim());
        await sleep(5);
      }
      return 0;
    },
  };
}

/**
 * Runs a probe to completion within `timeoutMs`: its combined output, and its exit code, or -1
 * with docker's timeout message when it ran too long (it is then killed).
 */
export async function runProbe(
  containers: ContainerStore,
  id: string,
  process: OciProcess,
  timeoutMs: number,
  timeoutText: string,
): Promise<{ exitCode: number; output: string }> {
  const chunks: Buffer[] = [];
  const handle = await startExec(containers, id, process, ['ignore', 'pipe', 'pipe'], (chunk) =>
    chunks.push(chunk),
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([handle.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    // runc exec forwards catchable signals only: the process itself gets the SIGKILL.
    const pid = await Promise.race([handle.pid(), sleep(100).then(() => 0)]);
    if (pid > 0) {
      try {
        globalThis.process.kill(pid, 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
    handle.kill('SIGKILL');
    await handle.exited;
    return { exitCode: -1, output: timeoutText };
  }
  return { exitCode: outcome, output: Buffer.concat(chunks).toString('utf8') };
}
