/* eslint-disable no-control-regex -- the output under test is made of terminal escape sequences */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExplorerEnv, ExplorerState } from './state.js';
import { render } from './render.js';
import { demoModel, sampleModel } from './testing/demo-image.js';
import { apply, screen, start, syncEnv, typeFilter } from './testing/harness.js';
import { displayWidth, stripAnsi } from './text.js';

const env = syncEnv(sampleModel());

function text(state: ExplorerState, e: ExplorerEnv = env): string {
  return screen(state, e).join('\n');
}

/** The line of the screen that shows `name` in the tree pane. */
function lineOf(state: ExplorerState, name: string, e: ExplorerEnv = env): string {
  const lines = render(state, e);
  const line = lines.find((l) => stripAnsi(l).split('│').slice(1).join('│').includes(name));
  assert.ok(line, `${name} is not on screen:\n${text(state, e)}`);
  return line;
}

function assertGrid(lines: string[], columns: number, rows: number): void {
  assert.equal(lines.length, rows);
  for (const line of lines) {
    assert.equal(
      displayWidth(stripAnsi(line)),
      columns,
      `not ${columns} cells wide: ${JSON.stringify(stripAnsi(line))}`,
    );
    // The only escapes are styles: nothing that moves the cursor or clears the screen.
    assert.doesNotMatch(line.replace(/\x1b\[[0-9;]*m/g, ''), /[\x00-\x1f\x7f]/);
  }
}

describe('explorer screen', () => {
  test('two panes: layers with details and metrics on the left, the tree on the right, keys below', () => {
    const lines = screen(start(env), env);
    assert.match(lines[0]!, /^ strata analyze · demo\/app:latest +layer 1 of 4 $/);
    assert.match(lines[1]!, /^ Layers ─+│ Changes in this layer ─+$/);
    assert.match(
      lines[2]!,
      /^▶ +2\.1 MB {2}\[0\] FROM debian:bookworm-slim +│ {2}Permission +UID:GID +Size {2}Name +$/,
    );
    assert.match(lines[3]!, /^ +10 MB {2}\[1\] RUN apt-get update/);
    assert.match(text(start(env)), /Image efficiency score: 27 %/);
    assert.match(text(start(env)), /Digest: sha256:1111/);
    assert.equal(
      lines.at(-1)!.trimEnd(),
      ' q quit  Tab files  ↑↓ layer  Space fold  c fold all  v whole image  / filter  a m r u show/hide by kind of change',
    );
    // The longest legend still fits 120 columns.
    const longest = screen(apply(start(env), env, { type: 'fold-all' }, { type: 'switch-pane' }), env).at(
      -1,
    )!;
    assert.doesNotMatch(longest, /…/);
  });

  test('a tree row has the change mark, permissions, uid:gid, size and the guide lines', () => {
    const s = apply(
      start(env, { columns: 120, rows: 160 }),
      env,
      { type: 'move', by: 3 },
      { type: 'toggle-view' },
    );
    const right = (name: string): string =>
      stripAnsi(lineOf(s, name)).split('│').slice(1).join('│').trimEnd();
    assert.equal(right('shadow'), '~ -rw-------        0:42    501 B  │   ├── shadow');
    assert.equal(right('dash'), '  -rwxr-xr-x         0:0   126 kB  │   ├── dash');
    assert.equal(right('sh →'), '  lrwxrwxrwx         0:0      0 B  │   └── sh → dash');
    assert.equal(right('tmp'), '  drwxrwxrwt         0:0      0 B  ├── tmp');
    assert.match(right('deb.debian'), /^- -rw-r--r-- +0:0 +8\.8 MB {10}│ {7}└── deb\.debian\.org_…$/);
  });

  test('entries are coloured by change: added green, modified yellow, removed red', () => {
    const s = apply(
      start(env, { columns: 120, rows: 160 }),
      env,
      { type: 'move', by: 3 },
      { type: 'toggle-view' },
    );
    assert.match(lineOf(s, 'shadow'), /\x1b\[33m/);
    assert.match(lineOf(s, 'deb.debian'), /\x1b\[31m/);
    assert.doesNotMatch(lineOf(s, 'dash'), /\x1b\[3[123]m/);
    const added = apply(start(env), env, { type: 'move', by: 2 });
    assert.match(lineOf(added, 'server.js'), /\x1b\[32m/);
  });

  test('the cursor row is shown in reverse video when the tree has the focus', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 });
    assert.doesNotMatch(lineOf(s, 'app'), /\x1b\[7;32m/);
    s = apply(s, env, { type: 'switch-pane' });
    assert.match(lineOf(s, '── app'), /\x1b\[7;32m/);
    assert.match(screen(s, env)[1]!, /│ Changes in this layer/);
  });

  test('the titles say which view, filter and hidden kinds apply', () => {
    let s = apply(start(env), env, { type: 'toggle-view' }, ...typeFilter('os-'), {
      type: 'toggle-change',
      kind: 'removed',
    });
    assert.match(screen(s, env)[1]!, /Image up to this layer {2}filter \/os-\/ · hiding removed/);
    s = apply(s, env, { type: 'filter-clear' }, ...typeFilter('zz('));
    assert.match(screen(s, env)[1]!, /filter "zz\(" · hiding removed/);
    assert.match(text(s), /Nothing matches the filter\./);
  });

  test('the key line becomes the filter prompt while typing', () => {
    const s = apply(start(env), env, { type: 'filter-start' }, { type: 'filter-type', text: 'cu' });
    assert.match(screen(s, env).at(-1)!, /^ Filter \(regex\): cu▏ {2}Enter apply {2}Esc clear +$/);
  });

  test('a folded directory is marked and its entries are gone', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 }, { type: 'switch-pane' });
    assert.match(text(s), /server\.js/);
    s = apply(s, env, { type: 'fold', mode: 'toggle' });
    assert.match(text(s), /└─\+ app/);
    assert.doesNotMatch(text(s), /server\.js/);
  });

  test('every size from 40×10 up is filled exactly, without wrapping', () => {
    const states: ExplorerState[] = [];
    for (const [columns, rows] of [
      [40, 10],
      [41, 11],
      [57, 13],
      [80, 24],
      [120, 40],
      [211, 63],
    ] as const) {
      const size = { columns, rows };
      const base = start(env, size);
      states.push(
        base,
        apply(
          base,
          env,
          { type: 'move', by: 1 },
          { type: 'toggle-view' },
          { type: 'switch-pane' },
          { type: 'page', by: 1 },
        ),
        apply(
          base,
          env,
          { type: 'filter-start' },
          ...Array.from('a very long filter text indeed', (t) => ({ type: 'filter-type' as const, text: t })),
        ),
        apply(
          base,
          env,
          { type: 'fold-all' },
          { type: 'toggle-change', kind: 'unmodified' },
          { type: 'toggle-change', kind: 'added' },
        ),
      );
    }
    for (const s of states) assertGrid(render(s, env), s.size.columns, s.size.rows);
  });

  test('narrow panes drop the permission, then the owner column, and cut long names', () => {
    const s = apply(start(env, { columns: 40, rows: 10 }), env, { type: 'move', by: 1 });
    const lines = screen(s, env);
    assert.doesNotMatch(lines[2]!, /Permission|UID:GID/);
    assert.match(lines[2]!, /│ +Name +$/);
    assert.match(lines.join('\n'), /…/);
    const wide = screen(apply(start(env, { columns: 90, rows: 20 }), env), env);
    assert.match(wide[2]!, /UID:GID +Size {2}Name/);
    assert.doesNotMatch(wide[2]!, /Permission/);
  });

  test('40×10 keeps three layer rows and the tree; the metrics give way', () => {
    const lines = screen(start(env, { columns: 40, rows: 10 }), env);
    assert.equal(lines.filter((l) => /\[\d\] /.test(l.split('│')[0]!)).length >= 3, true);
    assert.doesNotMatch(lines.join('\n'), /efficiency/);
    assert.match(lines[3]!, /│\+ ├── bin/);
  });

  test('a terminal below 40×10 gets a message instead of a broken screen', () => {
    const s = start(env, { columns: 30, rows: 8 });
    const lines = render(s, env);
    assertGrid(lines, 30, 8);
    assert.match(stripAnsi(lines[0]!), /^Terminal too small: strata an…$/);
  });

  test('a tree being computed shows Loading…', () => {
    const lazy: ExplorerEnv = { model: env.model, tree: () => undefined };
    assert.match(text(start(lazy), lazy), /│ Loading…/);
  });

  test('names with control characters are escaped, wide names keep the grid', () => {
    const hostile = syncEnv(
      demoModel('evil\x1b]0;title\x07', [
        {
          command: 'RUN <<EOF\necho \x1b[2J\nEOF',
          entries: [
            { path: '/x\x1b[2J\x1b[31mred', size: 1 },
            {
              path: '/日本語のとても長いファイル名前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前前',
              size: 2,
            },
            { path: '/sym', type: 'symlink', linkTarget: '\x1b[H' },
          ],
        },
      ]),
    );
    const s = start(hostile, { columns: 60, rows: 12 });
    assertGrid(render(s, hostile), 60, 12);
    const all = text(s, hostile);
    assert.match(all, /x\\x1b\[2J\\x1b\[31mred/);
    assert.match(all, /sym → \\x1b\[H/);
    assert.match(all, /evil\\x1b\]0;title\\x07/);
    assert.match(all, /\[0\] RUN <<EOF echo/);
    assert.match(all, /\\x1b\[2J EOF/);
  });
});
