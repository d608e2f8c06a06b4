import { test } from 'node:test';
import assert from 'node:assert/strict';

import { lintDockerfile } from './engine.js';
import { BUILDKIT_RULES } from './rules/index.js';
import { looksLikeSecret, suggestName } from './rules/buildkit.js';

const details = (source: string, dockerignore?: string[]): string[] =>
  lintDockerfile(source, { rules: BUILDKIT_RULES, dockerignore }).findings.map(
    (finding) => `${finding.rule}:${finding.line}: ${finding.message}`,
  );

test('casing checks', () => {
  assert.deepEqual(details('FROM a AS Build\nrun x\nRUN y\n'), [
    "StageNameCasing:1: Stage name 'Build' should be lowercase",
    "ConsistentInstructionCasing:2: Command 'run' should match the case of the command majority (uppercase)",
  ]);
  assert.deepEqual(details('FROM a as b\n'), [
    "FromAsCasing:1: 'as' and 'FROM' keywords' casing do not match",
  ]);
});

test('variables: UndefinedVar and UndefinedArgInFrom suggest near names', () => {
  assert.deepEqual(details('FROM a\nARG NAME=x\nCOPY $NAEM /\n'), [
    "UndefinedVar:3: Usage of undefined variable '$NAEM' (did you mean $NAME?)",
  ]);
  assert.deepEqual(
    details('ARG VERSION=1\nFROM a:$VERISON\n').filter((detail) => detail.startsWith('UndefinedArg')),
    ["UndefinedArgInFrom:2: FROM argument 'VERISON' is not declared (did you mean VERSION?)"],
  );
  assert.equal(suggestName('abc', ['xyz']), undefined);
});

test('secrets heuristic', () => {
  assert.ok(looksLikeSecret('GITHUB_TOKEN'));
  assert.ok(looksLikeSecret('db_password'));
  assert.ok(!looksLikeSecret('PUBLIC_KEY'));
  assert.ok(!looksLikeSecret('TOKEN_FILE'));
  assert.ok(!looksLikeSecret('monkey'));
});

test('# check=skip directives, file-wide and per instruction', () => {
  assert.deepEqual(details('# check=skip=MaintainerDeprecated\nFROM a\nMAINTAINER me\n'), []);
  assert.deepEqual(
    details('FROM a\n# check=skip=JSONArgsRecommended\nCMD x\nCMD y\n').filter((d) => d.startsWith('JSON')),
    [
      'JSONArgsRecommended:4: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
    ],
  );
});

test('CopyIgnoredFile reads .dockerignore patterns', () => {
  assert.deepEqual(details('FROM a\nCOPY secret.txt /\n', ['secret.txt']), [
    'CopyIgnoredFile:2: Attempting to Copy file "secret.txt" that is excluded by .dockerignore',
  ]);
});
