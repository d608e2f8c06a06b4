import { test } from 'node:test';
import assert from 'node:assert/strict';

import { lintDockerfile } from './engine.js';
import { STRATA_RULES } from './rules/index.js';

const ids = (source: string): string[] =>
  lintDockerfile(source, { rules: STRATA_RULES }).findings.map(
    (finding) => `${finding.rule}:${finding.line}`,
  );

test('ST1001: tag without digest', () => {
  assert.deepEqual(ids('FROM node:20\nUSER 1000'), ['ST1001:1']);
  assert.deepEqual(ids(`FROM node:20@sha256:${'a'.repeat(64)}\nUSER 1000`), []);
});

test('ST1002: whole context copied before the dependency install', () => {
  const source = 'FROM node:20@sha256:x\nWORKDIR /app\nCOPY . .\nRUN npm ci\nUSER 1000';
  assert.deepEqual(ids(source), ['ST1002:3']);
  assert.deepEqual(ids('FROM node:20@sha256:x\nCOPY package.json .\nRUN npm ci\nCOPY . .\nUSER 1000'), []);
});

test('ST1003, ST1004, ST1005', () => {
  assert.deepEqual(ids('FROM scratch\nRUN apt-get update\nRUN apt-get install -y x'), ['ST1003:2']);
  assert.deepEqual(ids('FROM debian:12@sha256:x'), ['ST1004:1']);
  assert.deepEqual(ids('FROM scratch\nEXPOSE 22/tcp'), ['ST1005:2']);
});
