/**
 * HEALTHCHECK as dockerd runs it (moby daemon/health.go): the first probe one interval after the
 * start (the start interval while the start period lasts), then one per interval; a probe that
 * exits 0 makes the container healthy and resets the failing streak, any other result (a
 * timeout included) adds to the streak, except while the container has never been healthy and
 * is within its start period; `retries` failures in a row make it unhealthy. The last five
 * results are kept, their output cut at 4096 bytes.
 */
import type { HealthLogEntry, HealthSettings, HealthState } from './types.js';

export const MAX_HEALTH_LOG_ENTRIES = 5;
export const MAX_HEALTH_OUTPUT = 4096;

export interface ProbeResult {
  start: Date;
  end: Date;
  exitCode: number;
  output: string;
}

export function initialHealth(): HealthState {
  return { Status: 'starting', FailingStreak: 0, Log: [] };
}

/** The delay before the next probe, in ms: the start interval while within the start period. */
export function nextProbeDelayMs(settings: HealthSettings, startedAt: Date, now: Date): number {
  const inStartPeriod =
    settings.startPeriod > 0 && now.getTime() - startedAt.getTime() < settings.startPeriod / 1e6;
  return (inStartPeriod ? settings.startInterval : settings.interval) / 1e6;
}

export function applyProbeResult(
  health: HealthState,
  result: ProbeResult,
  settings: HealthSettings,
  startedAt: Date,
): HealthState {
  const entry: HealthLogEntry = {
    Start: result.start.toISOString(),
    End: result.end.toISOString(),
    ExitCode: result.exitCode,
    Output: truncateOutput(result.output),
  };
  const next: HealthState = {
    Status: health.Status,
    FailingStreak: health.FailingStreak,
    Log: [...health.Log, entry].slice(-MAX_HEALTH_LOG_ENTRIES),
  };
  if (result.exitCode === 0) {
    next.FailingStreak = 0;
    next.Status = 'healthy';
    return next;
  }
  const withinStartPeriod =
    health.Status === 'starting' && result.start.getTime() - startedAt.getTime() < settings.startPeriod / 1e6;
  if (!withinStartPeriod) {
    next.FailingStreak++;
    if (next.FailingStreak >= settings.retries) next.Status = 'unhealthy';
  }
  return next;
}

function truncateOutput(output: string): string {
  const bytes = Buffer.from(output);
  return bytes.length <= MAX_HEALTH_OUTPUT ? output : bytes.subarray(0, MAX_HEALTH_OUTPUT).toString('utf8');
}

/** The probe's argv: `CMD` runs its arguments, `CMD-SHELL` runs its script with /bin/sh -c. */
export function probeArgs(settings: HealthSettings): string[] {
  const [kind, ...rest] = settings.test;
  return kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : rest;
}

/** Docker's text for a probe that ran out of time. */
export function timeoutMessage(timeoutNs: number): string {
  const seconds = timeoutNs / 1e9;
  return `Health check exceeded timeout (${Number.isInteger(seconds) ? `${seconds}s` : `${timeoutNs / 1e6}ms`})`;
}
