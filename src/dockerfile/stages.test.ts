import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDockerfile, resolveBuild, StageScope, type ArgInstruction } from './stages.js';
import { DockerfileError } from './errors.js';
import type { Instruction } from './instructions.js';

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64' };

function expectError(source: string, pattern: RegExp, line?: number): void {
  assert.throws(
    () => loadDockerfile(source, { file: 'Dockerfile' }),
    (err: unknown) => {
      assert.ok(err instanceof DockerfileError, `expected a DockerfileError, got ${String(err)}`);
      assert.match(err.message, pattern);
      if (line !== undefined) assert.equal(err.line, line, err.message);
      return true;
    },
    source,
  );
}

test('typed instructions with BuildKit validation and file:line:column errors', () => {
  expectError('RUN echo\n', /no build stage in current context/, 1);
  expectError('FROM a\nFROB x\n', /^Dockerfile:2:1: unknown instruction: FROB \(did you mean FROM\?\)/, 2);
  expectError('FROM a\nCOPY --bogus=1 a b\n', /unknown flag: bogus/, 2);
  expectError('FROM a\nCOPY --link=maybe a b\n', /expecting boolean value for flag link, not: maybe/, 2);
  expectError('FROM a\nCOPY --from a b\n', /missing a value on flag: from/, 2);
  expectError('FROM a\nCOPY onlyone\n', /COPY requires at least two arguments/, 2);
  expectError('FROM a AS 1bad\n', /invalid name for build stage: "1bad"/, 1);
  expectError('FROM a AS b extra\n', /FROM requires either one or three arguments/, 1);
  expectError('FROM a AS x\nFROM b AS X\n', /duplicate stage name "x"/, 2);
  expectError('FROM a\nSHELL /bin/bash -c\n', /SHELL requires the arguments to be in JSON form/, 2);
  expectError('FROM a\nHEALTHCHECK --interval=10us CMD true\n', /cannot be less than 1ms/, 2);
  expectError('FROM a\nHEALTHCHECK NONE extra\n', /HEALTHCHECK NONE takes no arguments/, 2);
  expectError('FROM a\nONBUILD ONBUILD RUN x\n', /Chaining ONBUILD/, 2);
  expectError('FROM a\nONBUILD FROM b\n', /FROM isn't allowed as an ONBUILD trigger/, 2);
  expectError('FROM a\nWORKDIR\n', /WORKDIR requires exactly one argument/, 2);
  expectError('FROM a\nENV PATH\n', /ENV must have two arguments/, 2);
  expectError('FROM a\nCMD ["a", 1]\n', /arrays must be comprised of strings only/, 2);
  expectError('FROM a\nRUN <<EOF\necho\n', /unterminated heredoc/, 2);
  expectError('# escape=x\nFROM a\n', /invalid escape token 'x'/, 1);
  expectError(
    '# syntax=docker/dockerfile:1\n# syntax=docker/dockerfile:1\nFROM a\n',
    /only one syntax parser directive/,
    2,
  );
  expectError('#!/bin/sh\n# syntax=example.com/other\nFROM a\n', /unsupported frontend/);
  expectError(
    '# syntax=example.com/my/frontend:1\nFROM a\n',
    /unsupported frontend "example.com\/my\/frontend:1"/,
  );
});

test('the typed fields', () => {
  const model = loadDockerfile(
    [
      '# syntax=docker/dockerfile:1.7-labs',
      'ARG BASE=busybox',
      'FROM --platform=$BUILDPLATFORM ${BASE} AS Build',
      'COPY --chown=app:app --chmod=0755 --link --exclude=*.md --exclude=x src/ /app/',
      'RUN --mount=type=cache,target=/root/.cache --network=none make',
      'HEALTHCHECK --interval=30s --retries=3 CMD curl -f localhost',
      'ENV A=1 B="two words"',
      'CMD ["sh", "-c", "echo"]',
      'ONBUILD COPY . /src',
      '',
    ].join('\n'),
  );
  assert.equal(model.metaArgs.length, 1);
  const [stage] = model.stages;
  assert.ok(stage);
  assert.equal(stage.name, 'build');
  assert.deepEqual([stage.from.image, stage.from.platform], ['${BASE}', '$BUILDPLATFORM']);
  const byKind = (kind: Instruction['kind']) => stage.instructions.find((i) => i.kind === kind);
  const copy = byKind('COPY');
  assert.ok(copy?.kind === 'COPY');
  assert.deepEqual(
    [copy.sources, copy.dest, copy.chown, copy.chmod, copy.link, copy.exclude],
    [['src/'], '/app/', 'app:app', '0755', true, ['*.md', 'x']],
  );
  const run = byKind('RUN');
  assert.ok(run?.kind === 'RUN');
  assert.deepEqual(
    [run.mounts, run.network, run.command.form],
    [['type=cache,target=/root/.cache'], 'none', 'shell'],
  );
  const health = byKind('HEALTHCHECK');
  assert.ok(health?.kind === 'HEALTHCHECK');
  assert.deepEqual(
    [health.test, health.interval, health.retries],
    [['CMD-SHELL', 'curl -f localhost'], 30e9, 3],
  );
  const cmd = byKind('CMD');
  assert.ok(cmd?.kind === 'CMD');
  assert.deepEqual([cmd.command.form, cmd.command.args], ['exec', ['sh', '-c', 'echo']]);
  const onbuild = byKind('ONBUILD');
  assert.ok(onbuild?.kind === 'ONBUILD');
  assert.equal(onbuild.trigger.kind, 'COPY');
  assert.equal(onbuild.expression, 'COPY . /src');
  assert.equal(copy.range.start.line, 4);
});

test('global ARGs, build-arg overrides, platform args and FROM expansion', () => {
  const model = loadDockerfile(
    [
      'ARG TAG=1.0',
      'ARG REGISTRY',
      'ARG TARGETARCH',
      'FROM ${REGISTRY:-docker.io}/app:${TAG}-${TARGETARCH} AS base',
      'FROM base',
      '',
    ].join('\n'),
  );
  const build = resolveBuild(model, {
    buildArgs: { TAG: '2.0' },
    targetPlatform: arm64,
    buildPlatform: amd64,
  });
  assert.deepEqual(build.stages[0]?.base, { kind: 'image', reference: 'docker.io/app:2.0-arm64' });
  assert.deepEqual(build.stages[1]?.base, { kind: 'stage', stage: 0 });
  assert.equal(build.globalArgs.get('TARGETARCH'), 'arm64', 'a bare global ARG keeps the automatic value');
  assert.deepEqual(build.needed, [0, 1]);
});

test('only the stages the target needs; COPY --from and RUN --mount from= link stages', () => {
  const model = loadDockerfile(
    [
      'FROM busybox AS deps',
      'FROM busybox AS unused',
      'FROM busybox AS tools',
      'FROM busybox AS final',
      'COPY --from=deps /a /a',
      'RUN --mount=type=bind,from=tools,target=/t true',
      'COPY --from=alpine:3 /b /b',
      '',
    ].join('\n'),
  );
  const build = resolveBuild(model, { targetPlatform: amd64, buildPlatform: amd64 });
  assert.deepEqual(build.needed, [0, 2, 3]);
  assert.deepEqual(build.stages[3]?.imageRefs, ['alpine:3']);
  const deps = resolveBuild(model, { targetPlatform: amd64, buildPlatform: amd64, target: 'DEPS' });
  assert.deepEqual(deps.needed, [0]);
  assert.throws(
    () => resolveBuild(model, { targetPlatform: amd64, buildPlatform: amd64, target: 'nope' }),
    /target stage "nope" could not be found/,
  );
});

test('circular and variable --from are errors', () => {
  const selfCopy = loadDockerfile('FROM busybox AS a\nCOPY --from=a /x /x\n');
  assert.throws(
    () => resolveBuild(selfCopy, { targetPlatform: amd64, buildPlatform: amd64 }),
    /circular dependency detected on stage: a/,
  );
  const variable = loadDockerfile('FROM busybox\nARG S=x\nCOPY --from=$S /x /x\n');
  assert.throws(
    () => resolveBuild(variable, { targetPlatform: amd64, buildPlatform: amd64 }),
    /variable expansion is not supported for --from/,
  );
});

test('a FROM --platform that expands to nothing is an error, not the default platform', () => {
  const model = loadDockerfile('FROM --platform=$NOPE busybox\nRUN true\n');
  assert.throws(
    () => resolveBuild(model, { targetPlatform: amd64, buildPlatform: amd64 }),
    /Dockerfile:1:1: empty platform value from expression \$NOPE$/,
  );
  const set = loadDockerfile('ARG P=linux/arm64\nFROM --platform=$P busybox\n');
  assert.equal(
    resolveBuild(set, { targetPlatform: amd64, buildPlatform: amd64 }).stages[0]?.platform,
    'linux/arm64',
  );
});

test('stage scope: ENV reads the old value, ARG scoping, ENV wins over ARG, proxies need no ARG', () => {
  const model = loadDockerfile(
    [
      'ARG GLOBAL=g',
      'FROM busybox',
      'ARG GLOBAL',
      'ARG LOCAL=l-${GLOBAL}',
      'ARG V=arg',
      'ENV a=1',
      'ENV a=2 b=$a',
      'ENV V=env',
      '',
    ].join('\n'),
  );
  const build = resolveBuild(model, {
    buildArgs: { HTTP_PROXY: 'http://proxy' },
    targetPlatform: amd64,
    buildPlatform: amd64,
  });
  const scope = new StageScope(build, { HTTP_PROXY: 'http://proxy' }, ['PATH=/bin']);
  for (const instruction of model.stages[0]?.instructions ?? []) {
    if (instruction.kind === 'ARG') scope.declareArgs(instruction as ArgInstruction);
    if (instruction.kind === 'ENV')
      scope.setEnv(scope.expandPairs(instruction.pairs, instruction.range, false));
  }
  assert.equal(scope.args.get('GLOBAL'), 'g', 'a re-declared global ARG takes the global value');
  assert.equal(scope.args.get('LOCAL'), 'l-g');
  assert.equal(scope.env.get('a'), '2');
  assert.equal(scope.env.get('b'), '1', 'ENV a=2 b=$a reads the old a');
  assert.equal(scope.expand('$V', model.stages[0]!.from.range), 'env', 'ENV wins over ARG');
  const runEnv = scope.runEnvironment();
  assert.equal(runEnv.get('HTTP_PROXY'), 'http://proxy');
  assert.equal(runEnv.get('PATH'), '/bin');
  assert.equal(runEnv.get('LOCAL'), 'l-g');
});
