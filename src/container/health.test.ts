import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { applyProbeResult, initialHealth, nextProbeDelayMs, probeArgs, timeoutMessage } from './health.js';
import { LogWriter, readLogEntries, type LogEntry } from './logs.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HealthSettings } from './types.js';

const settings: HealthSettings = {
  test: ['CMD-SHELL', 'check'],
  interval: 1e9,
  timeout: 1e9,
  startPeriod: 10e9,
  startInterval: 2e8,
  retries: 2,
};
const started = new Date('2024-01-01T00:00:00Z');
const at = (seconds: number, exitCode: number) => ({
  start: new Date(started.getTime() + seconds * 1000),
  end: new Date(started.getTime() + seconds * 1000 + 10),
  exitCode,
  output: `exit ${exitCode}`,
});

describe('healthcheck state', () => {
  test('failures within the start period do not count while starting; success → healthy', () => {
    let health = initialHealth();
    health = applyProbeResult(health, at(1, 1), settings, started);
    health = applyProbeResult(health, at(2, 1), settings, started);
    assert.equal(health.Status, 'starting');
    assert.equal(health.FailingStreak, 0);
    health = applyProbeResult(health, at(3, 0), settings, started);
    assert.equal(health.Status, 'healthy');
  });

  test('retries failures in a row make it unhealthy; a success resets the streak', () => {
    let health = initialHealth();
    health = applyProbeResult(health, at(11, 1), settings, started);
    assert.deepEqual([health.Status, health.FailingStreak], ['starting', 1]);
    health = applyProbeResult(health, at(12, -1), settings, started);
    assert.deepEqual([health.Status, health.FailingStreak], ['unhealthy', 2]);
    health = applyProbeResult(health, at(13, 0), settings, started);
    assert.deepEqual([health.Status, health.FailingStreak], ['healthy', 0]);
  });

  test('after the start period, a healthy container counts failures at once', () => {
    let health = applyProbeResult(initialHealth(), at(1, 0), settings, started);
    health = applyProbeResult(health, at(2, 1), settings, started);
    assert.deepEqual([health.Status, health.FailingStreak], ['healthy', 1]);
  });

  test('keeps the last five results, output cut at 4096 bytes', () => {
    let health = initialHealth();
    for (let i = 0; i < 7; i++)
      health = applyProbeResult(health, { ...at(20 + i, 0), output: 'x'.repeat(5000) }, settings, started);
    assert.equal(health.Log.length, 5);
    assert.equal(health.Log[0]?.Output.length, 4096);
  });

  test('schedule, argv, timeout text', () => {
    assert.equal(nextProbeDelayMs(settings, started, new Date(started.getTime() + 1000)), 200);
    assert.equal(nextProbeDelayMs(settings, started, new Date(started.getTime() + 11_000)), 1000);
    assert.deepEqual(probeArgs(settings), ['/bin/sh', '-c', 'check']);
    assert.deepEqual(probeArgs({ ...settings, test: ['CMD', 'curl', '-f', 'x'] }), ['curl', '-f', 'x']);
    assert.equal(timeoutMessage(3e9), 'Health check exceeded timeout (3s)');
  });
});

describe('json-file logs', () => {
  test('lines per stream, partial lines flushed, long lines split; read back from an offset', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-logs-'));
    try {
      const path = join(dir, 'c-json.log');
      const writer = await LogWriter.open(path);
      writer.write('stdout', Buffer.from('one\ntw'));
      writer.write('stderr', Buffer.from('err\n'));
      writer.write('stdout', Buffer.from('o\nno newline'));
      writer.write('stdout', Buffer.from(`${'z'.repeat(20_000)}\n`));
      await writer.close();
      const entries: LogEntry[] = [];
      const end = await readLogEntries(path, 0, (entry) => entries.push(entry));
      assert.deepEqual(
        entries.map((entry) => [entry.stream, entry.log.length > 100 ? entry.log.length : entry.log]),
        [
          ['stdout', 'one\n'],
          ['stderr', 'err\n'],
          ['stdout', 'two\n'],
          ['stdout', 16384],
          ['stdout', 20_000 + 'no newline'.length - 16384 + 1],
        ],
      );
      assert.match(entries[0]?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      assert.equal(await readLogEntries(path, end, () => assert.fail('nothing new')), end);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
