import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { runHostCommand, runHostCommandOk } from './shell-runner.js';

describe('runHostCommand', () => {
  it('passes every word as it is: quotes, spaces, backslashes, newlines, $ and globs', async () => {
    const words = ["it's", 'two words', 'back\\slash', 'line\nbreak\r', '$HOME', '*', '`id`', "$'x'", ''];
    const { code, stdout } = await runHostCommand('printf', ['%s\\0', ...words]);
    assert.equal(code, 0);
    assert.deepEqual(stdout.toString('utf8').split('\0').slice(0, -1), words);
  });

  it('returns binary stdout, stderr and the exit status, and feeds stdin', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 10, 13, 0]);
    const echoed = await runHostCommand('cat', [], bytes);
    assert.deepEqual(echoed.stdout, bytes);
    const failed = await runHostCommand('sh', ['-c', 'echo out; echo oops >&2; exit 3']);
    assert.equal(failed.code, 3);
    assert.equal(failed.stdout.toString(), 'out\n');
    assert.equal(failed.stderr, 'oops\n');
    const empty = await runHostCommand('cat', []);
    assert.equal(empty.stdout.length, 0, 'stdin is empty when no input is given');
  });

  it('runs concurrent calls one at a time, each with its own answer', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => runHostCommand('sh', ['-c', `printf ${i}; exit ${i % 3}`])),
    );
    results.forEach((result, i) => {
      assert.equal(result.stdout.toString(), String(i));
      assert.equal(result.code, i % 3);
    });
  });

  it('runHostCommandOk rejects with the error output on one line', async () => {
    assert.equal((await runHostCommandOk('echo', ['fine'])).toString(), 'fine\n');
    await assert.rejects(runHostCommandOk('sh', ['-c', 'echo first >&2; echo second >&2; exit 1']), {
      message: 'first second',
    });
    await assert.rejects(runHostCommandOk('sh', ['-c', 'exit 4']), { message: 'sh exited 4' });
  });
});
