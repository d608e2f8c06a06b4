import { test } from 'node:test';
import assert from 'node:assert/strict';

import { expandInstruction } from './expand.js';
import type { Instruction } from './instructions.js';
import { loadDockerfile, resolveBuild, StageScope } from './stages.js';

const amd64 = { os: 'linux', architecture: 'amd64' };

/** Walks the single stage like the build engine: ARG/ENV update the scope, the rest is expanded. */
function expandedStage(lines: string[], buildArgs: Record<string, string> = {}): Instruction[] {
  const model = loadDockerfile(`${lines.join('\n')}\n`);
  const build = resolveBuild(model, { buildArgs, targetPlatform: amd64, buildPlatform: amd64 });
  const scope = new StageScope(build, buildArgs);
  const result: Instruction[] = [];
  for (const instruction of model.stages[0]?.instructions ?? []) {
    if (instruction.kind === 'ARG') {
      scope.declareArgs(instruction);
      continue;
    }
    const expanded = expandInstruction(instruction, scope);
    if (expanded.kind === 'ENV') scope.setEnv(expanded.pairs);
    result.push(expanded);
  }
  return result;
}

function only<K extends Instruction['kind']>(
  instructions: Instruction[],
  kind: K,
): Extract<Instruction, { kind: K }> {
  const found = instructions.filter((instruction) => instruction.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0] as Extract<Instruction, { kind: K }>;
}

test('expanded: ENV keys and values, LABEL, WORKDIR, USER, STOPSIGNAL, VOLUME, EXPOSE split', () => {
  const out = expandedStage(
    [
      'FROM busybox',
      'ARG PORTS="80 443/udp"',
      'ARG NAME=app',
      'ENV K=key ${NAME}_HOME=/opt/$NAME',
      'LABEL $K="v $NAME"',
      'WORKDIR /srv/$NAME',
      'USER ${NAME}:${NAME}',
      'STOPSIGNAL SIG${SIG:-TERM}',
      'VOLUME ["/data/$NAME"]',
      'EXPOSE $PORTS 8080',
    ],
    { NAME: 'web' },
  );
  assert.deepEqual(only(out, 'ENV').pairs, [
    { key: 'K', value: 'key' },
    { key: 'web_HOME', value: '/opt/web' },
  ]);
  assert.deepEqual(only(out, 'LABEL').pairs, [{ key: 'key', value: 'v web' }]);
  assert.equal(only(out, 'WORKDIR').path, '/srv/web');
  assert.equal(only(out, 'USER').user, 'web:web');
  assert.equal(only(out, 'STOPSIGNAL').signal, 'SIGTERM');
  assert.deepEqual(only(out, 'VOLUME').paths, ['/data/web']);
  assert.deepEqual(only(out, 'EXPOSE').ports, ['80', '443/udp', '8080']);
});

test('expanded: COPY/ADD sources, destination and flags; heredoc bodies keep quotes', () => {
  const out = expandedStage([
    'FROM busybox',
    'ARG U=1000 DIR=/app',
    'COPY --chown=$U:$U --exclude=*.$EXT <<EOF <<"RAW" src/$DIR ${DIR}/',
    'say "hi $U" \'there\'',
    'EOF',
    'keep $U',
    'RAW',
    'ADD --checksum=sha256:${SUM:-0} a $DIR/',
  ]);
  const copy = only(out, 'COPY');
  assert.equal(copy.chown, '1000:1000');
  assert.deepEqual(copy.exclude, ['*.']);
  assert.deepEqual(copy.sources, ['src//app']);
  assert.equal(copy.dest, '/app/');
  assert.deepEqual(
    copy.inline.map((source) => source.data),
    ['say "hi 1000" \'there\'\n', 'keep $U\n'],
  );
  assert.equal(only(out, 'ADD').checksum, 'sha256:0');
});

test('kept as written: RUN/CMD/ENTRYPOINT/HEALTHCHECK commands; RUN --mount values expand', () => {
  const out = expandedStage([
    'FROM busybox',
    'ARG CACHE=/root/.cache',
    'RUN --mount=type=cache,target=$CACHE echo $CACHE',
    'CMD echo $CACHE',
    'ENTRYPOINT ["echo", "$CACHE"]',
    'HEALTHCHECK CMD test -d $CACHE',
  ]);
  const run = only(out, 'RUN');
  assert.deepEqual(run.mounts, ['type=cache,target=/root/.cache']);
  assert.deepEqual(run.command.args, ['echo $CACHE']);
  assert.deepEqual(only(out, 'CMD').command.args, ['echo $CACHE']);
  assert.deepEqual(only(out, 'ENTRYPOINT').command.args, ['echo', '$CACHE']);
  assert.deepEqual(only(out, 'HEALTHCHECK').test, ['CMD-SHELL', 'test -d $CACHE']);
});

test('an expansion error names the instruction line', () => {
  assert.throws(
    () => expandedStage(['FROM busybox', 'WORKDIR ${MISSING:?set MISSING}']),
    /DockerfileError: Dockerfile:2:1: failed to process .*: MISSING: set MISSING/,
  );
});
