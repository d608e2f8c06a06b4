/**
 * The supervisor: the strata process that owns a container while it runs. It starts the process
 * (process.ts), writes its output to the log, runs the healthcheck on its schedule, records the
 * state (state.json), applies the restart policy and, for `--rm`, removes the container at the
 * end. `strata run` in the foreground is its own supervisor; `run -d` and `start` launch a
 * detached `strata container supervise <id>` (launchSupervisor), which tells its launcher on
 * fd 3 whether the first start worked and then lives as long as the container does.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { access, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { StrataError } from '../errors.js';
import { processAlive } from '../store/index.js';
import { execProcess, runProbe } from './exec.js';
import { applyProbeResult, initialHealth, nextProbeDelayMs, probeArgs, timeoutMessage } from './health.js';
import { LogWriter, type LogStream } from './logs.js';
import { ContainerProcess, StartError, type ContainerContext } from './process.js';
import type { ContainerRecord, ContainerState } from './types.js';

/** Docker's restart backoff: 100 ms, doubled at each restart, at most a minute. */
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 60_000;
/** A container that ran this long before exiting restarts with the first delay again. */
const RESET_BACKOFF_AFTER_MS = 10_000;

const STOP_POLL_MS = 50;

export interface SuperviseOptions {
  terminal: boolean;
  stdin: boolean;
  /** Also write the output here (foreground run). */
  echo?: (stream: LogStream, chunk: Buffer) => void;
  /** Told once whether the first start worked. */
  onFirstStart?: (error?: StartError | StrataError) => void;
  /** Forward signals strata receives to the container (runc in its own process group). */
  forwardSignals: boolean;
}

/** The start time of a process (jiffies since boot, /proc/<pid>/stat field 22): pids are reused. */
export async function processStartTime(pid: number): Promise<string> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Whether the supervisor recorded in `state` is still that very process. */
export async function supervisorAlive(state: ContainerState): Promise<boolean> {
  if (state.supervisorPid <= 0 || !processAlive(state.supervisorPid)) return false;
  return (await processStartTime(state.supervisorPid)) === (state.supervisorStart ?? '');
}

export async function stopRequested(ctx: ContainerContext, id: string): Promise<boolean> {
  return access(ctx.containers.paths(id).stopRequested).then(
    () => true,
    () => false,
  );
}

/** Supervises container `id` until it stops for good; returns its last exit code. */
export async function supervise(
  ctx: ContainerContext,
  id: string,
  options: SuperviseOptions,
): Promise<number> {
  const { record, state: stored } = await ctx.containers.read(id);
  const paths = ctx.containers.paths(id);
  await rm(paths.stopRequested, { force: true });
  const state: ContainerState = {
    ...stored,
    supervisorPid: process.pid,
    supervisorStart: await processStartTime(process.pid),
    // A start by the user counts restarts anew, as docker does.
    restartCount: 0,
    error: '',
  };
  let writing = Promise.resolve();
  const save = (): Promise<void> => {
    const snapshot = JSON.parse(JSON.stringify(state)) as ContainerState;
    writing = writing.then(() => ctx.containers.writeState(id, snapshot)).catch(() => undefined);
    return writing;
  };
  await save();

  const log = await LogWriter.open(paths.log);
  // While a start is under way, signals wait for runc to exist; between runs they are dropped.
  let starting: NodeJS.Signals[] | undefined;
  let sendToRunc: ((signal: NodeJS.Signals) => void) | undefined;
  const forward = (signal: NodeJS.Signals) => {
    if (sendToRunc) sendToRunc(signal);
    else starting?.push(signal);
  };
  const handlers = installSignalHandlers(options, forward);
  let first = true;
  let delay = FIRST_RESTART_DELAY_MS;
  try {
    for (;;) {
      starting = [];
      let current: ContainerProcess;
      try {
        current = await ContainerProcess.start(ctx, record, {
          terminal: options.terminal,
          stdin: options.stdin,
          ownProcessGroup: !options.terminal && !(options.stdin && process.stdin.isTTY === true),
          onOutput: (stream, chunk) => {
            log.write(stream, chunk);
            options.echo?.(stream, chunk);
          },
          onNetwork: async (network) => {
            state.pastaPid = network.pastaPid;
            await save();
          },
          onSpawn: (send) => {
            sendToRunc = send;
            for (const signal of starting?.splice(0) ?? []) send(signal);
          },
        });
      } catch (err) {
        sendToRunc = undefined;
        starting = undefined;
        const failure =
          err instanceof StrataError ? err : new StrataError('INTERNAL', String(err), { cause: err });
        state.status = first ? 'created' : 'exited';
        state.exitCode = err instanceof StartError ? err.exitStatus : 125;
        state.error = failure.message;
        state.pid = 0;
        state.finishedAt = new Date().toISOString();
        await save();
        if (first) {
          options.onFirstStart?.(failure);
          return state.exitCode;
        }
        break;
      }
      const startedAt = new Date();
      state.status = 'running';
      state.pid = current.pid;
      state.startedAt = startedAt.toISOString();
      state.ports = current.ports;
      state.exitCode = 0;
      if (record.healthcheck) state.health = initialHealth();
      await save();
      if (first) options.onFirstStart?.();
      first = false;

      const health = record.healthcheck ? monitorHealth(ctx, record, startedAt, state, save) : undefined;
      starting = undefined;
      const exitCode = await current.wait();
      sendToRunc = undefined;
      health?.stop();
      await health?.done;
      await log.flush();
      state.status = 'exited';
      state.pid = 0;
      state.exitCode = exitCode;
      state.finishedAt = new Date().toISOString();
      delete state.pastaPid;
      await save();

      if (!(await shouldRestart(ctx, record, state))) break;
      delay = Date.now() - startedAt.getTime() >= RESET_BACKOFF_AFTER_MS ? FIRST_RESTART_DELAY_MS : delay;
      state.status = 'restarting';
      state.restartCount++;
      await save();
      const deadline = Date.now() + delay;
      while (Date.now() < deadline && !(await stopRequested(ctx, id)))
        await sleep(Math.min(STOP_POLL_MS, delay));
      delay = Math.min(delay * 2, MAX_RESTART_DELAY_MS);
      if (await stopRequested(ctx, id)) {
        state.status = 'exited';
        await save();
        break;
      }
    }
  } finally {
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
    await log.close();
  }
  state.supervisorPid = 0;
  await save();
  if (record.autoRemove) {
    const { removeContainer } = await import('./lifecycle.js');
    await removeContainer(ctx, id, { volumes: true });
  }
  return state.exitCode;
}

async function shouldRestart(
  ctx: ContainerContext,
  record: ContainerRecord,
  state: ContainerState,
): Promise<boolean> {
  if (await stopRequested(ctx, record.id)) return false;
  switch (record.restart.name) {
    case 'no':
      return false;
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return (
        state.exitCode !== 0 &&
        (record.restart.maximumRetryCount === 0 || state.restartCount < record.restart.maximumRetryCount)
      );
  }
}

/**
 * Signals strata receives while supervising: forwarded to the container when runc has a process
 * group of its own; with a terminal, runc gets the terminal's Ctrl-C itself, so strata only has to
 * survive it.
 */
function installSignalHandlers(
  options: SuperviseOptions,
  forward: (signal: NodeJS.Signals) => void,
): Array<[NodeJS.Signals, () => void]> {
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  const fromTerminal: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT'];
  for (const signal of ['SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as NodeJS.Signals[]) {
    const terminalHasIt = options.terminal && fromTerminal.includes(signal);
    const handler = () => {
      if (options.forwardSignals && !terminalHasIt) forward(signal);
    };
    process.on(signal, handler);
    handlers.push([signal, handler]);
  }
  return handlers;
}

/** Runs the healthcheck until stopped; each result updates `state.health` and is saved. */
function monitorHealth(
  ctx: ContainerContext,
  record: ContainerRecord,
  startedAt: Date,
  state: ContainerState,
  save: () => Promise<void>,
): { stop(): void; done: Promise<void> } {
  const settings = record.healthcheck;
  let stopped = false;
  let wake: (() => void) | undefined;
  const done = (async () => {
    if (!settings) return;
    while (!stopped) {
      const delay = nextProbeDelayMs(settings, startedAt, new Date());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stopped) break;
      const start = new Date();
      let result: { exitCode: number; output: string };
      try {
        const process = await execProcess(ctx.containers, record.id, { args: probeArgs(settings) });
        result = await runProbe(
          ctx.containers,
          record.id,
          process,
          settings.timeout / 1e6,
          timeoutMessage(settings.timeout),
        );
      } catch (err) {
        result = { exitCode: -1, output: (err as Error).message };
      }
      if (stopped) break;
      state.health = applyProbeResult(
        state.health ?? initialHealth(),
        { start, end: new Date(), ...result },
        settings,
        startedAt,
      );
      await save();
    }
  })();
  return {
    stop: () => {
      stopped = true;
      wake?.();
    },
    done,
  };
}

export interface LaunchResult {
  /** Set when the first start failed; the supervisor has exited then. */
  error?: { message: string; exitStatus: number };
}

/**
 * Starts a detached supervisor for `id` (`strata --root <root> container supervise <id>`, run by
 * `strataCommand`) and waits until it reports the first start on fd 3.
 */
export async function launchSupervisor(
  ctx: ContainerContext,
  id: string,
  strataCommand: readonly string[],
): Promise<LaunchResult> {
  const paths = ctx.containers.paths(id);
  const output = openSync(paths.supervisorLog, 'a', 0o600);
  try {
    const child = spawn(
      strataCommand[0] as string,
      [...strataCommand.slice(1), '--root', ctx.store.root, 'container', 'supervise', id],
      { detached: true, stdio: ['ignore', output, output, 'pipe'] },
    );
    const report = child.stdio[3];
    if (!report) throw new StrataError('INTERNAL', 'no report pipe to the supervisor');
    const chunks: Buffer[] = [];
    report.on('data', (chunk: Buffer) => chunks.push(chunk));
    const exitedEarly = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
    await Promise.race([
      new Promise<void>((resolve) => report.once('close', () => resolve())),
      exitedEarly.then(() => undefined),
    ]);
    report.destroy();
    child.unref();
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (text === '') {
      const detail = (await readFile(paths.supervisorLog, 'utf8').catch(() => '')).trim().split('\n').at(-1);
      return {
        error: { message: `the container's supervisor exited: ${detail ?? 'no output'}`, exitStatus: 125 },
      };
    }
    const parsed = JSON.parse(text) as { ok?: boolean; error?: string; exitStatus?: number };
    if (parsed.ok) return {};
    return {
      error: { message: parsed.error ?? 'the container did not start', exitStatus: parsed.exitStatus ?? 125 },
    };
  } finally {
    closeSync(output);
  }
}

/** The supervisor's side of fd 3: one JSON line, then the pipe is closed. */
export function reportFirstStart(error?: StrataError): void {
  const message =
    error === undefined
      ? { ok: true }
      : { ok: false, error: error.message, exitStatus: error instanceof StartError ? error.exitStatus : 125 };
  try {
    writeSync(3, `${JSON.stringify(message)}\n`);
    closeSync(3);
  } catch {
    // Launched by hand without fd 3: nobody is waiting.
  }
}
