import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  checkBuild,
  checkDockerfile,
  formatCheckReport,
  formatSourceSnippet,
  formatWarningSummary,
} from './build-checks.js';

const rules = (source: string, options: Parameters<typeof checkDockerfile>[1] = {}): string[] =>
  checkDockerfile(source, options).warnings.map((warning) => `${warning.rule}:${warning.startLine}`);

test('the --check report is buildx text: count, then each warning with its source', () => {
  const result = checkDockerfile('FROM alpine\nCMD echo "Hello, world!"\n');
  assert.equal(
    formatCheckReport(result),
    [
      'Check complete, 1 warning has been found!',
      '',
      'WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
      'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
      'Dockerfile:2',
      '--------------------',
      '   1 |     FROM alpine',
      '   2 | >>> CMD echo "Hello, world!"',
      '   3 |     ',
      '--------------------',
      '',
    ].join('\n'),
  );
  assert.equal(
    formatCheckReport(checkDockerfile('FROM alpine\nCMD ["a"]\n')),
    'Check complete, no warnings found.\n',
  );
  const two = formatCheckReport(checkDockerfile('FROM alpine AS Build\nCMD a\n'));
  assert.match(two, /^Check complete, 2 warnings have been found!\n/);
});

test('a build prints a summary, expanded with --debug', () => {
  const result = checkDockerfile('FROM alpine\nMAINTAINER me\nCMD echo hi\n');
  assert.equal(
    formatWarningSummary(result),
    [
      '',
      ' 2 warnings found (use docker --debug to expand):',
      ' - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)',
      ' - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 3)',
      '',
    ].join('\n'),
  );
  const debug = formatWarningSummary(result, { debug: true });
  assert.match(debug, /^\n 2 warnings found:\n - MaintainerDeprecated: .* \(line 2\)\n/);
  assert.match(
    debug,
    /The MAINTAINER instruction is deprecated, use a label instead to define an image author\nMore info: https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/maintainer-deprecated\/\nDockerfile:2\n/,
  );
  assert.ok(formatWarningSummary(result, { colour: true }).includes('\u001b[33m2 warnings found'));
  assert.equal(formatWarningSummary(checkDockerfile('FROM alpine\n')), '');
});

test('source snippets: two lines of context for one line, one for a longer location', () => {
  const source = ['FROM a', 'ENV A=1', 'RUN x \\', '  y', 'ENV B=2', 'ENV C=3', 'ENV D=4'].join('\n');
  assert.equal(
    formatSourceSnippet(source, 'Dockerfile', 3, 4),
    [
      'Dockerfile:3',
      '--------------------',
      '   2 |     ENV A=1',
      '   3 | >>> RUN x \\',
      '   4 | >>>   y',
      '   5 |     ENV B=2',
      '--------------------',
      '',
    ].join('\n'),
  );
  // At the top of the file the context below still comes out.
  assert.deepEqual(
    formatSourceSnippet(source, 'Dockerfile', 1, 1)
      .split('\n')
      .filter((line) => / \| /.test(line))
      .map((line) => line.slice(0, 6)),
    ['   1 |', '   2 |', '   3 |'],
  );
  assert.equal(formatSourceSnippet(source, 'Dockerfile', 99, 99), '');
});

test('# check= directives and BUILDKIT_DOCKERFILE_CHECK', () => {
  const source = '# check=skip=JSONArgsRecommended\nFROM alpine AS Build\nCMD echo hi\n';
  assert.deepEqual(rules(source), ['StageNameCasing:2']);
  // The build argument replaces the directive as a whole.
  assert.deepEqual(rules(source, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=StageNameCasing' } }), [
    'JSONArgsRecommended:3',
  ]);
  const strict = checkDockerfile('# check=error=true\nFROM alpine\nCMD echo hi\nMAINTAINER x\n');
  assert.deepEqual(strict.error, {
    kind: 'lint',
    message: 'Dockerfile: lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated',
  });
  assert.equal(checkDockerfile('# check=error=true\nFROM alpine\nCMD ["x"]\n').error, undefined);
  const invalid = checkDockerfile('# check=skip=A;oops\nFROM alpine\n');
  assert.deepEqual(invalid.error, { kind: 'directive', message: 'Dockerfile: invalid check option "oops"' });
  assert.equal(invalid.warnings.length, 0);
  const badArg = checkDockerfile('FROM alpine\n', {
    buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'error=maybe' },
  });
  assert.match(
    badArg.error?.message ?? '',
    /^--build-arg BUILDKIT_DOCKERFILE_CHECK: .*"maybe" is not a boolean/,
  );
});

test('--target: conversion-time checks look only at the stages the target needs', () => {
  const source = [
    'FROM alpine AS base',
    'CMD echo base',
    'FROM base AS app',
    'ENV token=x',
    'FROM alpine AS Other',
    'CMD echo other',
  ].join('\n');
  // StageNameCasing is a parse-time check: it covers the whole file whatever the target.
  assert.deepEqual(rules(source, { target: 'app' }), [
    'JSONArgsRecommended:2',
    'SecretsUsedInArgOrEnv:4',
    'StageNameCasing:5',
  ]);
  assert.deepEqual(rules(source, { target: 'base' }), ['JSONArgsRecommended:2', 'StageNameCasing:5']);
  assert.deepEqual(rules(source, { allStages: true }), [
    'JSONArgsRecommended:2',
    'SecretsUsedInArgOrEnv:4',
    'StageNameCasing:5',
    'JSONArgsRecommended:6',
  ]);
  // Without a target a build converts the last stage only.
  assert.deepEqual(rules(source), ['StageNameCasing:5', 'JSONArgsRecommended:6']);
  assert.match(
    checkDockerfile(source, { target: 'nope' }).error?.message ?? '',
    /target stage "nope" could not be found/,
  );
});

test('warnings before an invalid instruction, and errors the build would stop at', () => {
  const result = checkDockerfile('FROM scratch AS Bad\nMAINTAINER me\nBADCMD\n');
  assert.deepEqual(
    result.warnings.map((warning) => warning.rule),
    ['StageNameCasing', 'MaintainerDeprecated'],
  );
  assert.deepEqual(result.error, {
    kind: 'dockerfile',
    message: 'Dockerfile:3:1: unknown instruction: BADCMD',
  });
  assert.match(formatCheckReport(result), /\n--------------------\n\n$/);
  assert.match(
    checkDockerfile('FROM --platform=$NOPE scratch\n').error?.message ?? '',
    /^Dockerfile:1:1: empty platform value from expression \$NOPE$/,
  );
  // A heredoc instruction points at all its lines.
  const heredoc = checkDockerfile('FROM alpine\nRUN <<EOF\necho $undefined_var\nEOF\nCOPY $NOPE /\n');
  assert.deepEqual(
    heredoc.warnings.map((warning) => [warning.rule, warning.startLine, warning.endLine]),
    [['UndefinedVar', 5, 5]],
  );
});

test('checkBuild reads the Dockerfile and the context like a build', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-check-'));
  try {
    await writeFile(join(dir, 'Dockerfile.dev'), 'FROM scratch\nCOPY secret.txt /\n');
    await writeFile(join(dir, '.dockerignore'), 'secret.txt\n');
    const result = await checkBuild({ context: dir, dockerfile: join(dir, 'Dockerfile.dev') });
    assert.equal(result.file, 'Dockerfile.dev');
    assert.deepEqual(
      result.warnings.map((warning) => warning.detail),
      ['Attempting to Copy file "secret.txt" that is excluded by .dockerignore'],
    );
    const piped = await checkBuild({ context: dir, dockerfileText: 'FROM scratch\nCMD x\n' });
    assert.equal(piped.file, 'Dockerfile');
    await assert.rejects(
      checkBuild({ context: dir }),
      /failed to read dockerfile: open .*Dockerfile: no such file/,
    );
    await assert.rejects(checkBuild({ context: join(dir, 'missing') }), /unable to prepare context/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
