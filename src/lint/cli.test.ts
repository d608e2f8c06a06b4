import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';

import { CliContext } from '../cli/context.js';
import { registerLintCommands } from '../cli/lint.js';

async function runLint(args: string[]): Promise<{ stdout: string; error?: string }> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const program = new Command().exitOverride();
  registerLintCommands(program, new CliContext(() => undefined, stdout, new PassThrough()));
  let error: string | undefined;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    error = (err as Error).message;
  }
  return { stdout: Buffer.concat(chunks).toString('utf8'), error };
}

test('strata lint prints JSON findings and fails at the threshold', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-lint-'));
  try {
    const dockerfile = join(dir, 'Dockerfile');
    await writeFile(dockerfile, 'FROM ubuntu\nRUN apt-get update && apt-get install -y curl\nCMD run\n');
    const json = await runLint(['lint', '--format', 'json', dockerfile]);
    const findings = JSON.parse(json.stdout) as Array<{
      rule: string;
      severity: string;
      line: number;
      column: number;
      message: string;
    }>;
    const rules = findings.map((finding) => finding.rule);
    assert.ok(rules.includes('DL3006'));
    assert.ok(rules.includes('DL3008'));
    assert.ok(rules.includes('JSONArgsRecommended'));
    assert.deepEqual(Object.keys(findings[0] ?? {}).slice(0, 6), [
      'file',
      'line',
      'column',
      'rule',
      'severity',
      'message',
    ]);
    assert.match(json.error ?? '', /failure threshold "info" reached/);

    const relaxed = await runLint(['lint', '-t', 'error', '--ignore', 'DL3006', dockerfile]);
    assert.equal(relaxed.error, undefined);
    assert.match(relaxed.stdout, /Dockerfile:2:1 warning DL3008/);
    assert.doesNotMatch(relaxed.stdout, /DL3006/);

    await writeFile(join(dir, '.hadolint.yaml'), 'ignored: [DL3008]\noverride:\n  error: [DL3015]\n');
    const configured = await runLint([
      'lint',
      '-c',
      join(dir, '.hadolint.yaml'),
      '-f',
      'json',
      '--no-fail',
      dockerfile,
    ]);
    const configuredFindings = JSON.parse(configured.stdout) as Array<{ rule: string; severity: string }>;
    assert.equal(configured.error, undefined);
    assert.ok(!configuredFindings.some((finding) => finding.rule === 'DL3008'));
    assert.equal(configuredFindings.find((finding) => finding.rule === 'DL3015')?.severity, 'error');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('strata lint rejects an unknown format', async () => {
  const { error } = await runLint(['lint', '--format', 'xml', 'Dockerfile']);
  assert.match(error ?? '', /invalid --format "xml"/);
});
