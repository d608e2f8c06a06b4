/**
 * The runc isolation: an OCI bundle (config.json) in a temporary directory outside the rootfs,
 * run with `runc run` in the foreground. runc gets its own `--root` state directory, so it never
 * reads or writes the host's /run/runc, and the process inherits runc's stdout and stderr pipes.
 * runc exits with the container's status (128 + n for a signal), which is the run's exit code.
 *
 * No cgroup is configured: runc makes one named after the container under its own cgroup and
 * removes it when the container exits; no controller limits are set.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { StrataError, errnoCode, type ErrorCode } from '../errors.js';
import { ociSpec, type ContainerConfig, type ProcessIo, type RunProcessResult } from './spec.js';

const execFileAsync = promisify(execFile);

const DEBIAN_RUNC = '/usr/sbin/runc';

/** How often an abort retries `runc kill` while the container is still being created. */
const KILL_RETRY_MS = 50;

let found: Promise<string | undefined> | undefined;

/** The runc binary that answers `--version`: Debian's first, then one on PATH. */
export function findRunc(): Promise<string | undefined> {
  found ??= (async () => {
    const onPath = (process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'runc'));
    for (const candidate of [DEBIAN_RUNC, ...onPath]) {
      try {
        await access(candidate, constants.X_OK);
        await execFileAsync(candidate, ['--version'], { timeout: 10_000 });
        return candidate;
      } catch {
        // Missing or broken: try the next one.
      }
    }
    return undefined;
  })();
  return found;
}

export async function runWithRunc(
  runc: string,
  config: ContainerConfig,
  scratch: string,
  io: ProcessIo,
): Promise<RunProcessResult> {
  const bundle = join(scratch, 'bundle');
  const state = join(scratch, 'state');
  const log = join(scratch, 'runc.log');
  await mkdir(bundle);
  await mkdir(state, { mode: 0o700 });
  await writeFile(join(bundle, 'config.json'), JSON.stringify(ociSpec(config)));
  const id = `strata-${randomBytes(8).toString('hex')}`;
  const global = ['--root', state, '--log', log, '--log-format', 'json'];

  const child = spawn(runc, [...global, 'run', '--bundle', bundle, id], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => io.onOutput?.(1, chunk));
  child.stderr.on('data', (chunk: Buffer) => io.onOutput?.(2, chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });

  let aborted = false;
  let running = true;
  const onAbort = () => {
    aborted = true;
    void (async () => {
      // Until the container exists `runc kill` fails; keep asking until runc run returns.
      while (running) {
        await execFileAsync(runc, [...global, 'kill', id, 'KILL']).catch(() => undefined);
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
    throw new StrataError('UNSUPPORTED', `cannot start runc: ${(err as Error).message}`, { cause: err });
  } finally {
    running = false;
    io.signal?.removeEventListener('abort', onAbort);
    // runc run removes its container on exit; only a runc that died itself leaves one (and its cgroup).
    if (await exists(join(state, id))) {
      await execFileAsync(runc, [...global, 'delete', '--force', id]).catch(() => undefined);
    }
  }

  if (aborted) return { exitCode: 128 + 9, signal: 'SIGKILL', isolation: 'runc' };
  if (status.signal !== null) {
    throw new StrataError('INTERNAL', `runc was killed by ${status.signal}`);
  }
  const exitCode = status.code ?? 1;
  if (exitCode !== 0) {
    const failure = await runcFailure(log);
    if (failure !== undefined) throw new StrataError(failureCode(failure), `runc: ${failure}`);
  }
  return { exitCode, isolation: 'runc' };
}

/** The user's command could not be started (their mistake), or runc itself failed (ours). */
export function failureCode(message: string): ErrorCode {
  if (/executable file not found|no such file or directory/i.test(message)) return 'NOT_FOUND';
  if (/exec format error|permission denied/i.test(message)) return 'INVALID_ARGUMENT';
  return 'INTERNAL';
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * runc's own error, if it failed rather than the process: runc logs an error only when it could
 * not create or start the container; a process's non-zero exit is not logged.
 */
export async function runcFailure(log: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(log, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if (entry.level === 'error' && typeof entry.msg === 'string') errors.push(entry.msg);
    } catch {
      // runc's child may write plain text before the logger is set up.
    }
  }
  return errors.at(-1);
}
