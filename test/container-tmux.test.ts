/**
 * `strata run -it` and `strata exec -it` in a real terminal: a detached tmux session of 100×30 on
 * a private tmux server, keys sent with `send-keys`, the screen read with `capture-pane`. Proves
 * the process gets a terminal of the pane's size, reads what is typed, Ctrl-C reaches the
 * container's foreground process (not strata), and the exit code comes back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { STRATA_BIN, busyboxStore, run, strata, tempDir } from './helpers/cli.js';

let socketDir = '';

async function tmux(...args: string[]): Promise<string> {
  const result = await run('tmux', ['-u', '-f', '/dev/null', '-S', join(socketDir, 'tmux'), ...args]);
  if (result.code !== 0) throw new Error(`tmux ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

async function waitForScreen(target: string, what: string, ok: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 20_000;
  let last = '';
  while (Date.now() < deadline) {
    last = await tmux('capture-pane', '-p', '-t', target);
    if (ok(last)) return last;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}; the screen was:\n${last}`);
}

describe('strata run -it / exec -it in tmux', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;

  before(async () => {
    socketDir = await mkdtemp(join(tmpdir(), 'strata-tmux-'));
    dir = await tempDir('container-tmux');
    ({ root } = await busyboxStore(dir.path));
  });
  after(async () => {
    await tmux('kill-server').catch(() => undefined);
    const ids = (await strata(root, ['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await strata(root, ['rm', '-f', ...ids]);
    await rm(socketDir, { recursive: true, force: true });
    await dir.cleanup();
  });

  test('an interactive shell: a terminal of the pane size, typed input, Ctrl-C, exit code', async () => {
    const command = `${STRATA_BIN} --root ${root} run -it --rm --name tty busybox sh; echo "strata exited $?"; sleep 60`;
    await tmux('new-session', '-d', '-s', 'run', '-x', '100', '-y', '30', command);
    await waitForScreen('run', 'the prompt', (text) => /^\/ [#$] ?$/m.test(text));
    await tmux('send-keys', '-t', 'run', 'tty; stty size; echo $((6 * 7))', 'Enter');
    const screen = await waitForScreen('run', 'the answers', (text) => /^42$/m.test(text));
    assert.match(screen, /^\/dev\/pts\/\d+$/m);
    assert.match(screen, /^30 100$/m);
    // Ctrl-C stops the container's foreground job, not strata: the shell is still there.
    await tmux('send-keys', '-t', 'run', 'sleep 100', 'Enter');
    await sleep(300);
    await tmux('send-keys', '-t', 'run', 'C-c');
    await tmux('send-keys', '-t', 'run', 'echo still-here', 'Enter');
    await waitForScreen('run', 'the shell after Ctrl-C', (text) => /^still-here$/m.test(text));

    // A second terminal into the same container.
    await tmux(
      'new-session',
      '-d',
      '-s',
      'exec',
      '-x',
      '80',
      '-y',
      '24',
      `${STRATA_BIN} --root ${root} exec -it tty sh; sleep 60`,
    );
    await waitForScreen('exec', 'the exec prompt', (text) => /^\/ [#$] ?$/m.test(text));
    await tmux('send-keys', '-t', 'exec', 'stty size; exit', 'Enter');
    await waitForScreen('exec', 'the exec size', (text) => /^24 80$/m.test(text));

    await tmux('send-keys', '-t', 'run', 'exit 3', 'Enter');
    await waitForScreen('run', 'the exit code', (text) => /^strata exited 3$/m.test(text));
    assert.equal((await strata(root, ['ps', '-aq'])).stdout, '', '--rm removed the container');
  });
});
