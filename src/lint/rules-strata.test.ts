import { test } from 'node:test';
import assert from 'node:assert/strict';

import { lintDockerfile, type LintOptions } from './engine.js';
import { applyConfigObject, defaultLintConfig } from './config.js';
import { STRATA_RULES } from './rules/index.js';
import { secretShape } from './rules/strata-runtime.js';
import { ruleIds } from './testing.js';

/** `line: message` of each finding of `rule`. */
const found = (rule: string, source: string, options: LintOptions = {}): string[] =>
  lintDockerfile(source, { rules: STRATA_RULES, ...options })
    .findings.filter((finding) => finding.rule === rule)
    .map((finding) => `${finding.line}: ${finding.message}`);
const lines = (rule: string, source: string, options: LintOptions = {}): number[] =>
  found(rule, source, options).map((entry) => Number(entry.split(':')[0]));

test('ST1001: tag without digest', () => {
  assert.deepEqual(lines('ST1001', 'FROM node:20\nUSER 1000'), [1]);
  assert.deepEqual(lines('ST1001', `FROM node:20@sha256:${'a'.repeat(64)}\nUSER 1000`), []);
});

test('ST1002: whole context copied before the dependency install', () => {
  assert.deepEqual(
    lines('ST1002', 'FROM node:20@sha256:x\nWORKDIR /app\nCOPY . .\nRUN npm ci\nUSER 1000'),
    [3],
  );
  assert.deepEqual(
    lines('ST1002', 'FROM node:20@sha256:x\nCOPY package.json .\nRUN npm ci\nCOPY . .\nUSER 1000'),
    [],
  );
});

test('ST1003, ST1004, ST1005', () => {
  assert.deepEqual(lines('ST1003', 'FROM scratch\nRUN apt-get update\nRUN apt-get install -y x'), [2]);
  assert.deepEqual(lines('ST1003', 'FROM scratch\nRUN apt-get update && apt-get install -y x'), []);
  assert.deepEqual(lines('ST1004', 'FROM debian:12@sha256:x'), [1]);
  assert.deepEqual(lines('ST1004', 'FROM debian:12@sha256:x\nUSER 10001'), []);
  assert.deepEqual(lines('ST1005', 'FROM scratch\nEXPOSE 22/tcp'), [2]);
  assert.deepEqual(lines('ST1005', 'FROM scratch\nEXPOSE 2222/tcp'), []);
});

test('ST1006: full-size base image where a slim variant exists', () => {
  assert.deepEqual(found('ST1006', 'FROM python:3.12\nCMD ["app"]'), [
    '1: The final image starts from python:3.12, a full-size image: python:3.12-slim is smaller',
  ]);
  assert.deepEqual(found('ST1006', 'FROM docker.io/library/node\n'), [
    '1: The final image starts from docker.io/library/node, a full-size image: node:<version>-slim is smaller',
  ]);
  // Builder stages may be big; a final stage built FROM one counts from its root.
  assert.deepEqual(
    lines('ST1006', 'FROM golang:1.22 AS build\nFROM gcr.io/distroless/static\nCOPY --from=build /a /a'),
    [],
  );
  assert.deepEqual(lines('ST1006', 'FROM debian:12 AS base\nFROM base\nRUN true'), [1]);
  assert.deepEqual(
    lines('ST1006', 'FROM python:3.12-slim\nFROM node:20-alpine\nFROM ubuntu:24.04\nFROM $BASE'),
    [],
  );
});

test('ST1007, ST1008: .dockerignore when the whole context is copied', () => {
  const source = 'FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci\n';
  assert.deepEqual(lines('ST1007', source, { dockerignore: [] }), [3]);
  assert.deepEqual(lines('ST1007', source), [], 'unknown context: nothing said');
  assert.deepEqual(lines('ST1007', 'FROM a:1\nCOPY app.py /app/\n', { dockerignore: [] }), []);
  assert.deepEqual(found('ST1008', source, { dockerignore: ['.git', 'node_modules'] }), [
    '3: The whole build context is copied but .dockerignore does not exclude .env, private keys (*.pem, *.key, id_rsa)',
  ]);
  assert.deepEqual(
    lines('ST1008', source, { dockerignore: ['.git', '.env', '*.pem', '*.key', 'id_rsa', 'node_modules'] }),
    [],
  );
  // An allow-list .dockerignore excludes everything it does not name.
  assert.deepEqual(lines('ST1008', source, { dockerignore: ['*', '!src', '!package.json'] }), []);
  // node_modules only matters for Node projects.
  assert.deepEqual(
    lines('ST1008', 'FROM python:3.12-slim\nCOPY . /app\n', {
      dockerignore: ['.git', '.env', '*.pem', '*.key', 'id_rsa'],
    }),
    [],
  );
});

test('ST1009: build toolchain in a single-stage final image', () => {
  assert.deepEqual(
    found('ST1009', 'FROM debian:12-slim\nRUN apt-get update && apt-get install -y gcc make\n'),
    [
      '2: The final image installs gcc: its build toolchain ships with the application (use a multi-stage build)',
    ],
  );
  assert.deepEqual(lines('ST1009', 'FROM golang:1.22\nCOPY . .\nRUN go build -o /app .\n'), [3]);
  assert.deepEqual(lines('ST1009', 'FROM node:20-slim\nCOPY . .\nRUN npm ci && npm run build\n'), [3]);
  // Removed in the same layer, or built in another stage: fine.
  assert.deepEqual(
    lines('ST1009', 'FROM alpine:3\nRUN apk add --virtual .deps build-base && make && apk del .deps\n'),
    [],
  );
  assert.deepEqual(
    lines(
      'ST1009',
      'FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM alpine:3\nCOPY --from=build /app /app\n',
    ),
    [],
  );
  assert.deepEqual(
    lines('ST1009', 'FROM debian:12-slim\nRUN apt-get install -y ca-certificates libssl3\n'),
    [],
  );
});

test('ST1010, ST1011: secrets in ARG, ENV and LABEL', () => {
  assert.deepEqual(found('ST1010', 'FROM a:1\nENV AWS_KEY=AKIAIOSFODNN7EXAMPLE\n'), [
    '2: ENV AWS_KEY holds what looks like an AWS access key ID',
  ]);
  assert.deepEqual(found('ST1010', 'FROM a:1\nARG DB=postgres://app:hunter2@db:5432/app\n'), [
    '2: ARG DB holds what looks like a password in a URL',
  ]);
  assert.deepEqual(lines('ST1010', `FROM a:1\nLABEL x="ghp_${'a'.repeat(36)}"\n`), [2]);
  assert.deepEqual(
    lines('ST1010', 'FROM a:1\nENV DB=postgres://app:${DB_PASSWORD}@db/app URL=https://example.com\n'),
    [],
  );
  assert.equal(secretShape('-----BEGIN OPENSSH PRIVATE KEY-----\nabc'), 'a private key');
  assert.equal(secretShape('just-a-value'), undefined);
  assert.deepEqual(found('ST1011', 'FROM a:1\nLABEL com.example.api-token=x com.example.title=y\n'), [
    '2: LABEL com.example.api-token looks like it holds a secret',
  ]);
  assert.deepEqual(lines('ST1011', 'FROM a:1\nLABEL org.opencontainers.image.authors=me\n'), []);
});

test('ST1012: HEALTHCHECK calls a tool the image lacks', () => {
  assert.deepEqual(
    found('ST1012', 'FROM alpine:3.20\nHEALTHCHECK CMD curl -f http://localhost/ || exit 1\n'),
    ['2: HEALTHCHECK runs curl, which alpine:3.20 does not include and no instruction installs'],
  );
  assert.deepEqual(
    lines(
      'ST1012',
      'FROM alpine:3.20\nRUN apk add --no-cache curl\nHEALTHCHECK CMD curl -f http://localhost/\n',
    ),
    [],
  );
  assert.deepEqual(
    lines('ST1012', 'FROM alpine:3.20\nHEALTHCHECK CMD wget -q --spider http://localhost/\n'),
    [],
  );
  assert.deepEqual(
    lines('ST1012', 'FROM python:3.12-slim\nHEALTHCHECK CMD ["curl", "-f", "http://x/"]\n'),
    [2],
  );
  assert.deepEqual(found('ST1012', 'FROM gcr.io/distroless/static\nHEALTHCHECK CMD /app --health\n'), [
    '2: HEALTHCHECK uses the shell form but gcr.io/distroless/static has no /bin/sh: use HEALTHCHECK CMD ["…"]',
  ]);
  assert.deepEqual(
    lines('ST1012', 'FROM gcr.io/distroless/static\nHEALTHCHECK CMD ["/app", "--health"]\n'),
    [],
  );
  // Unknown base images are given the benefit of the doubt.
  assert.deepEqual(lines('ST1012', 'FROM nginx:1.27\nHEALTHCHECK CMD curl -f http://localhost/\n'), []);
});

test('ST1013: VOLUME misuse', () => {
  assert.deepEqual(found('ST1013', 'FROM a:1\nVOLUME data\n'), ['2: VOLUME data is not an absolute path']);
  assert.deepEqual(found('ST1013', 'FROM a:1\nVOLUME /etc /var/lib/app\n'), [
    '2: VOLUME /etc covers a system directory: its content is hidden or frozen at run time',
  ]);
  assert.equal(lines('ST1013', 'FROM a:1\nVOLUME ["/data" "/logs"]\n').length, 1);
  assert.deepEqual(lines('ST1013', 'FROM a:1\nVOLUME ["/var/lib/app", "/data"]\nVOLUME $DATA\n'), []);
});

test('ST1014: privileged port with a non-root user', () => {
  assert.deepEqual(found('ST1014', 'FROM a:1\nEXPOSE 80/tcp 8080\nUSER app\n'), [
    '2: Port 80 is below 1024 but the image runs as user app',
  ]);
  assert.deepEqual(lines('ST1014', 'FROM a:1\nEXPOSE 80\n'), []);
  assert.deepEqual(lines('ST1014', 'FROM a:1\nUSER 1000\nUSER root\nEXPOSE 443\n'), []);
  assert.deepEqual(lines('ST1014', 'FROM a:1\nUSER 1000\nEXPOSE 8443\n'), []);
});

const OCI_LABELS = [
  'org.opencontainers.image.title="app"',
  'org.opencontainers.image.description="An app"',
  'org.opencontainers.image.version="1.2.0"',
  'org.opencontainers.image.revision="0123456789abcdef0123456789abcdef01234567"',
  'org.opencontainers.image.created="2024-05-01T10:00:00Z"',
  'org.opencontainers.image.source="https://example.com/app"',
  'org.opencontainers.image.licenses="Apache-2.0"',
  'org.opencontainers.image.authors="Team <team@example.com>"',
];

test('ST1015, ST1016: OCI description labels, with a configurable schema', () => {
  assert.deepEqual(found('ST1015', 'FROM a:1\nLABEL org.opencontainers.image.title=app\n'), [
    '1: The final image lacks the labels org.opencontainers.image.description, org.opencontainers.image.version, org.opencontainers.image.revision, org.opencontainers.image.created, org.opencontainers.image.source, org.opencontainers.image.licenses, org.opencontainers.image.authors',
  ]);
  const labelled = `FROM a:1 AS base\nLABEL ${OCI_LABELS.slice(0, 4).join(' ')}\nFROM base\nLABEL ${OCI_LABELS.slice(4).join(' ')}\n`;
  assert.deepEqual(lines('ST1015', labelled), []);
  assert.deepEqual(lines('ST1016', labelled), []);
  const config = applyConfigObject(defaultLintConfig(), {
    'oci-label-schema': { 'org.opencontainers.image.source': 'url' },
  });
  assert.deepEqual(found('ST1015', 'FROM a:1\n', { config }), [
    '1: The final image lacks the labels org.opencontainers.image.source',
  ]);
  assert.deepEqual(
    lines('ST1015', 'FROM a:1\n', {
      config: applyConfigObject(defaultLintConfig(), { 'oci-label-schema': {} }),
    }),
    [],
  );
  assert.deepEqual(
    found(
      'ST1016',
      'FROM a:1\nLABEL org.opencontainers.image.created="yesterday" org.opencontainers.image.source=$REPO org.opencontainers.image.title=""\n',
    ),
    [
      '2: Label org.opencontainers.image.created is not a valid rfc3339 value',
      '2: Label org.opencontainers.image.title is empty',
    ],
  );
});

test('cache mounts satisfy the clean-the-cache rules', () => {
  const fires = (rule: string, source: string): boolean => ruleIds(source).includes(rule);
  assert.ok(fires('DL3032', 'RUN yum install -y x-1'));
  assert.ok(!fires('DL3032', 'RUN --mount=type=cache,target=/var/cache/yum yum install -y x-1'));
  assert.ok(!fires('DL3040', 'RUN --mount=type=cache,target=/var/cache dnf install -y x-1'));
  assert.ok(!fires('DL3042', 'RUN --mount=type=cache,target=/root/.cache pip install x==1'));
  assert.ok(
    !fires('DL3060', 'FROM node:20\nRUN --mount=type=cache,target=/usr/local/share/.cache/yarn yarn install'),
  );
  assert.ok(fires('DL3060', 'FROM node:20\nRUN --mount=type=cache,target=/tmp/other yarn install'));
  assert.ok(!fires('DL3019', 'RUN --mount=type=cache,target=/var/cache apk add x=1'));
});
