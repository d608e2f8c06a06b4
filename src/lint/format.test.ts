import { test } from 'node:test';
import assert from 'node:assert/strict';

import { formatResults } from './format.js';
import { lintDockerfile } from './engine.js';
import { failsThreshold } from './engine.js';

const results = [lintDockerfile('FROM debian\nMAINTAINER me <a&b>\n', { file: 'Dockerfile' })];

test('json: every finding with rule, severity, line, column, message', () => {
  const findings = JSON.parse(formatResults(results, 'json')) as Array<Record<string, unknown>>;
  assert.ok(findings.length > 0);
  for (const finding of findings) {
    for (const key of ['rule', 'severity', 'line', 'column', 'message']) assert.ok(key in finding, key);
  }
});

test('tty: file:line:col, severity, rule, message and hint; colour only when asked', () => {
  const plain = formatResults(results, 'tty');
  assert.match(plain, /^Dockerfile:1:1 warning DL3006 Always tag/m);
  assert.match(plain, /hint: /);
  assert.ok(!plain.includes('\u001b['));
  assert.ok(formatResults(results, 'tty', { colour: true }).includes('\u001b[33mwarning'));
});

test('sarif, checkstyle and gitlab are well-formed', () => {
  const sarif = JSON.parse(formatResults(results, 'sarif')) as {
    version: string;
    runs: Array<{ results: unknown[] }>;
  };
  assert.equal(sarif.version, '2.1.0');
  assert.equal(sarif.runs[0]?.results.length, results[0]?.findings.length);
  const checkstyle = formatResults(results, 'checkstyle');
  assert.match(checkstyle, /<file name="Dockerfile">/);
  assert.doesNotMatch(checkstyle, /<a&b>/);
  const gitlab = JSON.parse(formatResults(results, 'gitlab')) as Array<{
    fingerprint: string;
    severity: string;
  }>;
  assert.equal(new Set(gitlab.map((issue) => issue.fingerprint)).size, gitlab.length);
});

test('failure threshold', () => {
  const findings = results[0]?.findings ?? [];
  assert.equal(failsThreshold(findings, 'error'), true);
  assert.equal(
    failsThreshold(
      findings.filter((finding) => finding.severity !== 'error'),
      'error',
    ),
    false,
  );
  assert.equal(failsThreshold(findings, 'ignore'), false);
});
