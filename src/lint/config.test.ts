import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseLintConfig } from './config.js';
import { ruleIds } from './testing.js';
import { lintDockerfile } from './engine.js';
import { isStrataError } from '../errors.js';

test('a .hadolint.yaml is read with hadolint key names', () => {
  const config = parseLintConfig(
    [
      'ignored: [DL3008]',
      'override:',
      '  error: [DL3015]',
      'trustedRegistries: [docker.io, "*.corp.example"]',
      'label-schema:',
      '  org.opencontainers.image.source: url',
      'strict-labels: true',
      'failure-threshold: warning',
    ].join('\n'),
  );
  assert.deepEqual(config.ignored, ['DL3008']);
  assert.equal(config.overrides.DL3015, 'error');
  assert.deepEqual(config.trustedRegistries, ['docker.io', '*.corp.example']);
  assert.equal(config.labelSchema['org.opencontainers.image.source'], 'url');
  assert.equal(config.strictLabels, true);
  assert.equal(config.failureThreshold, 'warning');
  const findings = lintDockerfile('FROM a:1\nRUN apt-get install x', { config }).findings;
  assert.ok(!findings.some((finding) => finding.rule === 'DL3008'));
  assert.equal(findings.find((finding) => finding.rule === 'DL3015')?.severity, 'error');
});

test('invalid config is a user error naming the file', () => {
  assert.throws(
    () => parseLintConfig('label-schema:\n  x: colour\n', '.hadolint.yaml'),
    (err) => isStrataError(err, 'INVALID_CONFIG') && /\.hadolint\.yaml: label "x"/.test(err.message),
  );
});

test('hadolint pragmas: next instruction, global, stage; invalid names void the pragma', () => {
  assert.ok(!ruleIds('FROM a:1\n# hadolint ignore=DL3002\nUSER root').includes('DL3002'));
  assert.ok(ruleIds('FROM a:1\n# hadolint ignore=bogus,DL3002\nUSER root').includes('DL3002'));
  assert.ok(!ruleIds('# hadolint global ignore=DL3002\nFROM a:1\nUSER root').includes('DL3002'));
  const staged = lintDockerfile(
    '# hadolint stage ignore=DL3011\nFROM a:1\nEXPOSE 80000\nFROM b:1\nEXPOSE 80000\n',
  );
  assert.deepEqual(
    staged.findings.filter((finding) => finding.rule === 'DL3011').map((finding) => finding.line),
    [5],
  );
  const disabled = parseLintConfig('disable-ignore-pragma: true');
  assert.ok(
    ruleIds('FROM a:1\n# hadolint ignore=DL3002\nUSER root', { config: disabled }).includes('DL3002'),
  );
});

test('a parse error is one DL1000 finding with its position', () => {
  const { findings } = lintDockerfile(`FROM a\nRUN echo ${'x'.repeat(70000)}\n`, { file: 'x/Dockerfile' });
  assert.deepEqual(
    findings.map((finding) => [finding.rule, finding.severity, finding.line]),
    [['DL1000', 'error', 2]],
  );
});
