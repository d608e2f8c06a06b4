import { test } from 'node:test';
import assert from 'node:assert/strict';

import { flagNames, parseShell, positionalArgs } from './shell-analysis.js';

test('commands are split at &&, ||, ;, | and newlines', () => {
  const script = parseShell('apt-get update && apt-get install -y curl || true; echo a | wc -l\nls');
  assert.deepEqual(
    script.commands.map((command) => command.name),
    ['apt-get', 'apt-get', 'true', 'echo', 'wc', 'ls'],
  );
  assert.equal(script.hasPipe, true);
  assert.deepEqual(parseShell('a || b').hasPipe, false);
});

test('quotes are removed and operators inside quotes or substitutions are kept', () => {
  const [command] = parseShell(`echo "a && b" 'c | d' $(x && y) \`z; w\``).commands;
  assert.deepEqual(command?.args, ['a && b', 'c | d', '$(x && y)', '`z; w`']);
});

test('assignments, redirections and compound words are not the command', () => {
  const commands = parseShell(
    'DEBIAN_FRONTEND=noninteractive apt-get install x > /dev/null 2>&1; if true; then cd /; fi',
  ).commands;
  assert.equal(commands[0]?.name, 'apt-get');
  assert.deepEqual(commands[0]?.assignments, ['DEBIAN_FRONTEND=noninteractive']);
  assert.deepEqual(commands[0]?.args, ['install', 'x']);
  assert.ok(commands.some((command) => command.name === 'cd'));
});

test('flags: combined short flags and value flags', () => {
  const [command] = parseShell('apt-get -yq -o Foo=1 install --no-install-recommends pkg').commands;
  assert.ok(command);
  assert.deepEqual([...flagNames(command.args)].sort(), ['no-install-recommends', 'o', 'q', 'y']);
  assert.deepEqual(positionalArgs(command, ['o']), ['install', 'pkg']);
});
