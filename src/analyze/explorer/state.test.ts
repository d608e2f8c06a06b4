import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeLayout } from './layout.js';
import { currentRows, type Action, type ExplorerEnv, type ExplorerState } from './state.js';
import { demoModel, sampleModel, type DemoLayer } from './testing/demo-image.js';
import { apply, start, syncEnv, typeFilter } from './testing/harness.js';

const env = syncEnv(sampleModel());

function paths(state: ExplorerState, e: ExplorerEnv = env): string[] {
  return (currentRows(state, e) ?? []).map((row) => row.path);
}

function at(state: ExplorerState, e: ExplorerEnv = env): string | undefined {
  return currentRows(state, e)?.[state.cursor]?.path;
}

/** Moves the tree cursor to a path by pressing ↓ as a user would. */
function cursorTo(state: ExplorerState, path: string, e: ExplorerEnv = env): ExplorerState {
  let s = apply(state, e, { type: 'focus', pane: 'tree' }, { type: 'edge', to: 'first' });
  const index = paths(s, e).indexOf(path);
  assert.ok(index >= 0, `${path} is not shown`);
  s = apply(s, e, { type: 'move', by: index });
  assert.equal(at(s, e), path);
  return s;
}

/** The tree cursor is always on a row and on screen. */
function assertCursorShown(state: ExplorerState, e: ExplorerEnv = env): void {
  const rows = currentRows(state, e) ?? [];
  const { treeRows } = computeLayout(e.model, state.size);
  assert.ok(state.cursor >= 0 && (rows.length === 0 || state.cursor < rows.length), `cursor ${state.cursor}`);
  assert.ok(
    state.top <= state.cursor && state.cursor < state.top + treeRows,
    `top ${state.top} cursor ${state.cursor}`,
  );
  assert.ok(state.top <= Math.max(0, rows.length - treeRows), 'no blank rows below the last entry');
}

describe('explorer reducer', () => {
  test('starts on the first layer with the layer pane focused', () => {
    const s = start(env);
    assert.equal(s.focus, 'layers');
    assert.equal(s.layer, 0);
    assert.equal(s.view, 'layer');
    assert.equal(paths(s)[0], '/bin');
    assert.ok(paths(s).includes('/etc/os-release'));
  });

  test('moving in the layer pane selects another layer and the tree follows', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 });
    assert.equal(s.layer, 2);
    assert.deepEqual(paths(s), [
      '/app',
      '/app/node_modules',
      '/app/node_modules/left-pad',
      '/app/node_modules/left-pad/index.js',
      '/app/node_modules/left-pad/package.json',
      '/app/package.json',
      '/app/server.js',
    ]);
    s = apply(s, env, { type: 'move', by: 10 });
    assert.equal(s.layer, 3, 'stops at the last layer');
    s = apply(s, env, { type: 'move', by: -10 });
    assert.equal(s.layer, 0);
    s = apply(s, env, { type: 'edge', to: 'last' });
    assert.equal(s.layer, 3);
  });

  test('v switches between the layer’s changes and the image up to it', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 });
    assert.ok(!paths(s).includes('/bin/dash'));
    s = apply(s, env, { type: 'toggle-view' });
    assert.equal(s.view, 'image');
    assert.ok(paths(s).includes('/bin/dash'));
    assert.ok(paths(s).includes('/app/server.js'));
    s = apply(s, env, { type: 'toggle-view' });
    assert.equal(s.view, 'layer');
  });

  test('the cursor keeps its path across layers, and comes back to it', () => {
    let s = apply(start(env), env, { type: 'move', by: 1 }, { type: 'toggle-view' });
    s = cursorTo(s, '/etc/passwd');
    s = apply(s, env, { type: 'switch-pane' }, { type: 'move', by: 1 });
    assert.equal(s.layer, 2);
    assert.equal(at(s), '/etc/passwd');
    s = apply(s, env, { type: 'toggle-view' });
    assert.notEqual(at(s), '/etc/passwd', 'not in the layer’s own changes');
    s = apply(s, env, { type: 'toggle-view' });
    assert.equal(at(s), '/etc/passwd');
  });

  test('Space folds and unfolds the directory under the cursor', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 });
    s = cursorTo(s, '/app/node_modules');
    s = apply(s, env, { type: 'fold', mode: 'toggle' });
    assert.deepEqual(paths(s), ['/app', '/app/node_modules', '/app/package.json', '/app/server.js']);
    assert.equal(currentRows(s, env)![1]!.collapsed, true);
    assert.equal(at(s), '/app/node_modules');
    s = apply(s, env, { type: 'fold', mode: 'toggle' });
    assert.ok(paths(s).includes('/app/node_modules/left-pad/index.js'));
    // Space on a file does nothing.
    s = cursorTo(s, '/app/server.js');
    assert.deepEqual(apply(s, env, { type: 'fold', mode: 'toggle' }), s);
  });

  test('← folds, or goes to the parent; → unfolds', () => {
    let s = apply(start(env), env, { type: 'move', by: 2 });
    s = cursorTo(s, '/app/node_modules/left-pad/index.js');
    s = apply(s, env, { type: 'fold', mode: 'close' });
    assert.equal(at(s), '/app/node_modules/left-pad');
    s = apply(s, env, { type: 'fold', mode: 'close' });
    assert.ok(!paths(s).includes('/app/node_modules/left-pad/index.js'));
    s = apply(s, env, { type: 'fold', mode: 'close' });
    assert.equal(at(s), '/app/node_modules');
    s = cursorTo(s, '/app/node_modules/left-pad');
    s = apply(s, env, { type: 'fold', mode: 'open' });
    assert.ok(paths(s).includes('/app/node_modules/left-pad/index.js'));
  });

  test('c folds every directory, and unfolds them all again', () => {
    let s = apply(start(env), env, { type: 'toggle-view' });
    s = cursorTo(s, '/etc/passwd');
    s = apply(s, env, { type: 'fold-all' });
    assert.deepEqual(paths(s), ['/bin', '/etc', '/tmp', '/usr', '/var']);
    assert.equal(at(s), '/etc', 'the cursor goes to the folded directory that holds its entry');
    s = apply(s, env, { type: 'fold-all' });
    assert.equal(s.collapseAll, false);
    assert.ok(paths(s).length > 60);
    assert.equal(at(s), '/etc/passwd', 'back on the entry it was on');
    s = apply(s, env, { type: 'fold-all' }, { type: 'fold', mode: 'toggle' });
    assert.deepEqual(paths(s), [
      '/bin',
      '/etc',
      '/etc/os-release',
      '/etc/passwd',
      '/etc/shadow',
      '/tmp',
      '/usr',
      '/var',
    ]);
    assert.equal(at(s), '/etc', 'unfolding keeps the cursor on the directory');
  });

  test('/ types a filter that Enter applies and Esc clears', () => {
    let s = apply(
      start(env),
      env,
      { type: 'move', by: 1 },
      { type: 'toggle-view' },
      { type: 'filter-start' },
    );
    assert.equal(s.draft, '');
    s = apply(s, env, ...'curlx'.split('').map((text): Action => ({ type: 'filter-type', text })));
    assert.equal(s.draft, 'curlx');
    assert.equal(s.filter, '', 'not applied while typing');
    s = apply(s, env, { type: 'filter-erase' }, { type: 'filter-apply' });
    assert.equal(s.filter, 'curl');
    assert.equal(s.draft, undefined);
    assert.equal(s.focus, 'tree');
    assert.deepEqual(paths(s), [
      '/usr',
      '/usr/bin',
      '/usr/bin/curl',
      '/usr/lib',
      '/usr/lib/x86_64-linux-gnu',
      '/usr/lib/x86_64-linux-gnu/libcurl.so.4',
    ]);
    // Editing starts from the applied filter.
    assert.equal(apply(s, env, { type: 'filter-start' }).draft, 'curl');
    s = apply(s, env, { type: 'filter-clear' });
    assert.equal(s.filter, '');
    assert.ok(paths(s).includes('/bin/dash'));
    // Typed text is ignored when no filter is being typed.
    assert.deepEqual(apply(s, env, { type: 'filter-type', text: 'x' }), s);
  });

  test('applying a filter unfolds the folded directories that hold matches', () => {
    let s = apply(start(env), env, { type: 'move', by: 1 }, { type: 'toggle-view' }, { type: 'fold-all' });
    assert.deepEqual(paths(s), ['/bin', '/etc', '/tmp', '/usr', '/var']);
    s = apply(s, env, ...typeFilter('libcurl'));
    assert.deepEqual(paths(s), [
      '/usr',
      '/usr/lib',
      '/usr/lib/x86_64-linux-gnu',
      '/usr/lib/x86_64-linux-gnu/libcurl.so.4',
    ]);
    assert.equal(s.collapseAll, true, 'other directories stay folded');
  });

  test('a/m/r/u hide and show entries of one change kind', () => {
    let s = apply(start(env), env, { type: 'move', by: 3 }, { type: 'toggle-view' });
    assert.ok(paths(s).includes('/bin/dash'));
    s = apply(s, env, { type: 'toggle-change', kind: 'unmodified' });
    assert.deepEqual(paths(s), [
      '/etc',
      '/etc/shadow',
      '/var',
      '/var/lib',
      '/var/lib/apt',
      '/var/lib/apt/lists',
      '/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages',
    ]);
    s = apply(s, env, { type: 'toggle-change', kind: 'removed' });
    assert.deepEqual(paths(s), ['/etc', '/etc/shadow']);
    s = apply(s, env, { type: 'toggle-change', kind: 'modified' });
    assert.deepEqual(paths(s), []);
    s = apply(
      s,
      env,
      { type: 'toggle-change', kind: 'unmodified' },
      { type: 'toggle-change', kind: 'removed' },
      { type: 'toggle-change', kind: 'modified' },
    );
    assert.equal(s.hidden.size, 0);
    assert.ok(paths(s).includes('/bin/dash'));
  });

  test('PgDn/PgUp page through a long tree and the cursor stays on screen', () => {
    const size = { columns: 120, rows: 20 };
    const { treeRows } = computeLayout(env.model, size);
    let s = apply(start(env, size), env, { type: 'toggle-view' }, { type: 'focus', pane: 'tree' });
    const count = paths(s).length;
    assert.ok(count > 3 * treeRows);
    s = apply(s, env, { type: 'page', by: 1 });
    assert.equal(s.cursor, treeRows);
    assert.equal(s.top, treeRows);
    assertCursorShown(s);
    for (let i = 0; i < count / treeRows; i++) s = apply(s, env, { type: 'page', by: 1 });
    assert.equal(s.cursor, count - 1);
    assert.equal(s.top, count - treeRows);
    assertCursorShown(s);
    s = apply(s, env, { type: 'page', by: -1 });
    assert.equal(s.cursor, count - 1 - treeRows);
    assertCursorShown(s);
    s = apply(s, env, { type: 'edge', to: 'first' }, { type: 'move', by: -1 });
    assert.equal(s.cursor, 0);
    assert.equal(s.top, 0);
    s = apply(s, env, { type: 'move', by: treeRows });
    assert.equal(s.top, 1, '↓ past the last row scrolls by one');
    assertCursorShown(s);
  });

  test('a resize keeps the cursor on screen and fills the screen', () => {
    let s = apply(
      start(env),
      env,
      { type: 'toggle-view' },
      { type: 'focus', pane: 'tree' },
      { type: 'edge', to: 'last' },
    );
    s = apply(s, env, { type: 'resize', size: { columns: 40, rows: 10 } });
    assertCursorShown(s);
    s = apply(s, env, { type: 'edge', to: 'first' }, { type: 'move', by: 40 });
    s = apply(s, env, { type: 'resize', size: { columns: 200, rows: 100 } });
    assertCursorShown(s);
    s = apply(s, env, { type: 'resize', size: { columns: 200, rows: 200 } });
    assert.equal(s.top, 0, 'everything fits: nothing scrolled away');
    assertCursorShown(s);
  });

  test('the layer list scrolls when there are more layers than rows', () => {
    const layers: DemoLayer[] = Array.from({ length: 30 }, (_, i) => ({
      command: `RUN step ${i}`,
      entries: [{ path: `/f${i}`, size: i }],
    }));
    const many = syncEnv(demoModel('many', layers));
    const size = { columns: 80, rows: 12 };
    const { layerRows } = computeLayout(many.model, size);
    let s = apply(start(many, size), many, { type: 'move', by: layerRows });
    assert.equal(s.layer, layerRows);
    assert.equal(s.layerTop, 1);
    s = apply(s, many, { type: 'page', by: 1 });
    assert.equal(s.layer, 2 * layerRows);
    assert.ok(s.layerTop <= s.layer && s.layer < s.layerTop + layerRows);
    s = apply(s, many, { type: 'edge', to: 'last' });
    assert.equal(s.layerTop, 30 - layerRows);
    assert.deepEqual(paths(s, many), ['/f29']);
  });

  test('Tab switches panes and q quits', () => {
    const s = start(env);
    assert.equal(apply(s, env, { type: 'switch-pane' }).focus, 'tree');
    assert.equal(apply(s, env, { type: 'switch-pane' }, { type: 'switch-pane' }).focus, 'layers');
    assert.equal(apply(s, env, { type: 'quit' }).quit, true);
  });

  test('a tree still being computed leaves the cursor alone until it is ready', () => {
    let ready = false;
    const base = syncEnv(sampleModel());
    const lazy: ExplorerEnv = {
      model: base.model,
      tree: (layer, view) => (ready ? base.tree(layer, view) : undefined),
    };
    let s = apply(start(lazy), lazy, { type: 'focus', pane: 'tree' }, { type: 'move', by: 3 });
    assert.equal(currentRows(s, lazy), undefined);
    assert.equal(s.cursor, 0);
    ready = true;
    s = apply(s, lazy, { type: 'loaded' }, { type: 'move', by: 3 });
    assert.equal(at(s, lazy), '/etc');
  });

  test('an image without layers shows an empty tree', () => {
    const empty = syncEnv({ title: 'empty', layers: [], summary: [] });
    const s = apply(
      start(empty),
      empty,
      { type: 'move', by: 1 },
      { type: 'toggle-view' },
      { type: 'fold-all' },
      ...typeFilter('x'),
    );
    assert.equal(s.layer, 0);
    assert.deepEqual(currentRows(s, empty), []);
  });
});
