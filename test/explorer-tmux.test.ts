/**
 * The interactive explorer driven as a user drives it: in a real terminal (a detached tmux
 * session of 120×40 on a private server), with keys sent by `tmux send-keys` and the screen read
 * back with `tmux capture-pane` after each step. Needs tmux (scripts/setup.sh installs it); no
 * TTY of its own, so it runs in CI with stdin closed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, run, strataOk, writeTree } from './helpers/cli.js';

/** A tmux server of our own (its socket in a temporary directory), so nothing else is touched. */
let socketDir = '';
const TARGET = 'explorer';
const PROMPT = 'demo$ ';

async function tmux(...args: string[]): Promise<string> {
  // -f /dev/null: no user configuration; -u: UTF-8 whatever the locale says.
  const result = await run('tmux', ['-u', '-f', '/dev/null', '-S', join(socketDir, 'tmux'), ...args]);
  if (result.code !== 0) throw new Error(`tmux ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

async function screen(): Promise<string> {
  return tmux('capture-pane', '-p', '-t', TARGET);
}

async function paneFlag(name: string): Promise<string> {
  return (await tmux('display-message', '-p', '-t', TARGET, `#{${name}}`)).trim();
}

/** Polls the screen until `ok` holds; fails with the last screen after `timeoutMs`. */
async function waitForScreen(
  what: string,
  ok: (text: string) => boolean,
  timeoutMs = 15_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await screen();
    if (ok(last)) return last;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}; the screen was:\n${last}`);
}

/** The right-hand pane of the explorer's screen: the tree. */
function treePane(text: string): string {
  return text
    .split('\n')
    .map((line) => line.split('│').slice(1).join('│'))
    .join('\n');
}

type Pattern = string | RegExp;

function matches(text: string, pattern: Pattern): boolean {
  return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
}

/** What a screen must show (anywhere, or in the tree pane) and what its tree must not. */
interface Expected {
  screen?: Pattern[];
  tree?: Pattern[];
  notInTree?: Pattern[];
}

/**
 * Waits until the screen is the one expected. Negative checks are part of the wait too: a
 * capture can land in the middle of a redraw, where old lines are still on screen.
 */
async function expectScreen(what: string, expected: Expected): Promise<string> {
  return waitForScreen(what, (text) => {
    const tree = treePane(text);
    return (
      (expected.screen ?? []).every((p) => matches(text, p)) &&
      (expected.tree ?? []).every((p) => matches(tree, p)) &&
      !(expected.notInTree ?? []).some((p) => matches(tree, p))
    );
  });
}

async function press(...keys: string[]): Promise<void> {
  await tmux('send-keys', '-t', TARGET, ...keys);
}

async function type(text: string): Promise<void> {
  await tmux('send-keys', '-t', TARGET, '-l', text);
}

describe('strata analyze -i explorer, in tmux', () => {
  before(async () => {
    const which = await run('sh', ['-c', 'command -v tmux']);
    assert.equal(which.code, 0, 'tmux is not installed (scripts/setup.sh installs it)');
    socketDir = await mkdtemp(join(tmpdir(), 'strata-explorer-tmux-'));
    await tmux(
      'new-session',
      '-d',
      '-s',
      TARGET,
      '-x',
      '120',
      '-y',
      '40',
      '-c',
      REPO_ROOT,
      // CI=true as on a CI runner: an explicit -i must still open the explorer.
      `env PS1='${PROMPT}' LANG=C.UTF-8 CI=true sh`,
    );
    // capture-pane drops trailing blanks, the prompt's included.
    await waitForScreen('the shell prompt', (text) => text.includes(PROMPT.trimEnd()));
  });

  after(async () => {
    if (socketDir === '') return;
    await run('tmux', ['-S', join(socketDir, 'tmux'), 'kill-server']);
    await rm(socketDir, { recursive: true, force: true });
  });

  test('a user walks through layers, folds, filters, hides changes, resizes and quits', async () => {
    await type(`${process.execPath} --import tsx test/helpers/explorer-demo.ts`);
    await press('Enter');

    await expectScreen('the explorer', {
      screen: [
        /strata analyze · demo\/app:latest +layer 1 of 4/,
        /▶ +2\.1 MB {2}\[0\] FROM debian:bookworm-slim/,
        'Changes in this layer',
        /^ q quit {2}Tab files/m,
      ],
      tree: ['os-release', /\+ -rw-r----- +0:42 +501 B {2}│ {3}└── shadow/],
    });
    assert.equal(await paneFlag('alternate_on'), '1', 'on the alternate screen');
    assert.equal(await paneFlag('cursor_flag'), '0', 'cursor hidden');

    // The layer pane has the focus: ↓ selects the next layer and the tree shows its changes.
    await press('Down');
    await expectScreen('layer 2', {
      screen: ['layer 2 of 4', /▶ +10 MB {2}\[1\] RUN apt-get/],
      tree: [/\+ -rwxr-xr-x +0:0 +261 kB {2}│ {3}│ {3}└── curl/, 'ca-certificates.crt'],
      notInTree: ['os-release', 'dash'],
    });
    await press('j');
    await expectScreen('layer 3', {
      screen: ['layer 3 of 4'],
      tree: ['server.js', 'left-pad', /\+ drwxr-xr-x +1000:1000 +20 kB {2}└── app/],
      notInTree: ['curl'],
    });

    // Into the tree: Space on /app folds it, and again unfolds it.
    await press('Tab', 'Space');
    await expectScreen('/app folded', { tree: ['└─+ app'], notInTree: ['server.js', 'node_modules'] });
    await press('Space');
    await expectScreen('/app unfolded', { tree: ['└── app', 'server.js', 'node_modules'] });

    // v: the whole image up to this layer (computed asynchronously by the demo).
    await press('v');
    await expectScreen('the image view', {
      screen: ['Image up to this layer'],
      tree: ['dash', 'server.js', 'curl'],
    });

    // A path filter narrows the tree to matches and the directories leading to them.
    await press('/');
    await type('curl');
    await expectScreen('the filter prompt', {
      screen: [/^ Filter \(regex\): curl▏ {2}Enter apply {2}Esc clear$/m],
    });
    await press('Enter');
    await expectScreen('the filtered tree', {
      screen: ['filter /curl/', /^ q quit/m],
      tree: ['curl', 'libcurl.so.4'],
      notInTree: ['dash', 'server.js', 'os-release'],
    });
    await press('Escape');
    await expectScreen('the filter cleared', {
      tree: ['dash', 'server.js'],
      screen: [/Image up to this layer ─/],
    });

    // The last layer removes the apt lists and changes /etc/shadow; u hides unmodified entries.
    await press('Tab', 'Down');
    await expectScreen('layer 4', { screen: ['layer 4 of 4'], tree: ['dash'] });
    await press('u');
    await expectScreen('unmodified hidden', {
      screen: ['hiding unmodified'],
      tree: [
        /~ -rw------- +0:42 +501 B {2}│ {3}└── shadow/,
        /- -rw-r--r-- +0:0 +8\.8 MB .*└── deb\.debian\.org/,
      ],
      notInTree: ['dash', 'server.js', 'os-release'],
    });
    await press('r');
    await expectScreen('removed hidden too', {
      screen: ['hiding removed, unmodified'],
      tree: ['shadow'],
      notInTree: ['deb.debian.org', 'dash'],
    });
    await press('r', 'u');
    await expectScreen('everything shown', {
      screen: [/Image up to this layer ─/],
      tree: ['dash', 'os-release'],
    });

    // PgDn scrolls the long image tree by a page (the first tree row is on line 4).
    const firstRow = /^.*│ {2}d\S+ +1000:1000 .*├── app$/m;
    await press('Tab', 'NPage');
    await expectScreen('the next page', {
      tree: ['copyright'],
      notInTree: [/^ {2}drwx\S+ +1000:1000 +\S+ \S+ {2}├── app/m],
    });
    await press('PPage');
    await expectScreen('back on the first page', { screen: [firstRow] });

    // A smaller terminal: everything redrawn to fit, nothing wrapped.
    await tmux('resize-window', '-t', TARGET, '-x', '60', '-y', '15');
    const small = await waitForScreen('the small screen', (t) => {
      const lines = t.replace(/\n+$/, '').split('\n');
      return lines.length === 15 && lines[0]!.includes('layer 4 of 4') && lines[14]!.startsWith(' q quit');
    });
    for (const line of small.split('\n')) assert.ok([...line].length <= 60, `wider than the pane: ${line}`);
    await tmux('resize-window', '-t', TARGET, '-x', '120', '-y', '40');
    await waitForScreen(
      'the big screen again',
      (t) => /layer 4 of 4$/m.test(t) && /^ q quit/m.test(t.split('\n')[39] ?? ''),
    );

    // q: back to the shell, with the terminal as it was.
    await press('q');
    await waitForScreen(
      'the shell prompt again',
      (t) => t.includes('explorer closed') && t.trimEnd().endsWith(PROMPT.trimEnd()),
    );
    assert.equal(await paneFlag('alternate_on'), '0', 'left the alternate screen');
    assert.equal(await paneFlag('cursor_flag'), '1', 'cursor shown');
    await type(
      'stty -a | tr -s " ;" "\\n\\n" | grep -x -e icanon -e echo -e -icanon -e -echo | sort | tr "\\n" " "; echo END',
    );
    await press('Enter');
    await waitForScreen('the terminal back in cooked mode with echo', (t) => /^echo icanon END$/m.test(t));
  });

  test('strata analyze -i on an image the CLI built: layers, their changes, the image view, quit', async () => {
    const root = join(socketDir, 'store');
    const context = join(socketDir, 'context');
    await writeTree(context, {
      Dockerfile: 'FROM scratch\nCOPY one/ /app/\nCOPY two/ /app/\n',
      'one/a.txt': 'first version\n',
      'one/keep.txt': 'kept\n',
      'two/a.txt': 'second, longer version\n',
      'two/b.txt': 'new\n',
    });
    await strataOk(root, ['build', '-q', '-t', 'explore/me', context]);

    await type(`bin/strata --root ${root} analyze -i explore/me`);
    await press('Enter');
    await expectScreen('the first layer', {
      screen: ['layer 1 of 2', /\[0\] COPY one\/ \/app\//, /efficiency/],
      tree: [/\+ .*a\.txt/, 'keep.txt'],
      notInTree: ['b.txt'],
    });
    await press('Down');
    await expectScreen('the second layer: a.txt modified, b.txt added', {
      screen: ['layer 2 of 2', /\[1\] COPY two\/ \/app\//],
      tree: [/~ .*a\.txt/, /\+ .*b\.txt/],
      notInTree: ['keep.txt'],
    });
    await press('v');
    await expectScreen('the image up to the second layer', {
      screen: ['Image up to this layer'],
      tree: ['a.txt', 'b.txt', 'keep.txt'],
    });
    await press('q');
    await waitForScreen('the shell prompt after analyze', (t) => t.trimEnd().endsWith(PROMPT.trimEnd()));
    assert.equal(await paneFlag('alternate_on'), '0', 'left the alternate screen');
  });
});
