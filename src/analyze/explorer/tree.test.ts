import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeKind, ExplorerNode } from './model.js';
import { pathMatcher, revealedByFilter, rowPrefix, visibleRows, type TreeOptions } from './tree.js';

function file(name: string, change: ChangeKind = 'unmodified', size = 10): ExplorerNode {
  return { name, type: 'file', size, mode: 0o644, uid: 0, gid: 0, change };
}

function dir(name: string, children: ExplorerNode[], change: ChangeKind = 'unmodified'): ExplorerNode {
  return { name, type: 'directory', size: 0, mode: 0o755, uid: 0, gid: 0, change, children };
}

const root = dir('', [
  dir('etc', [file('hostname', 'modified', 5), file('passwd', 'unmodified', 100)]),
  dir('usr', [dir('bin', [file('curl', 'added', 1000), file('old', 'removed', 300)])], 'modified'),
  file('zz', 'added', 1),
]);

function options(over: Partial<TreeOptions> = {}): TreeOptions {
  return { filter: '', hidden: new Set(), collapseAll: false, toggled: new Set(), ...over };
}

function lines(opts: TreeOptions, tree: ExplorerNode = root): string[] {
  return visibleRows(tree, opts).map((row) => rowPrefix(row) + row.node.name);
}

describe('explorer tree rows', () => {
  test('lists every entry with guide lines, the root left out', () => {
    assert.deepEqual(lines(options()), [
      '├── etc',
      '│   ├── hostname',
      '│   └── passwd',
      '├── usr',
      '│   └── bin',
      '│       ├── curl',
      '│       └── old',
      '└── zz',
    ]);
    const rows = visibleRows(root, options());
    assert.deepEqual(
      rows.map((r) => r.path),
      ['/etc', '/etc/hostname', '/etc/passwd', '/usr', '/usr/bin', '/usr/bin/curl', '/usr/bin/old', '/zz'],
    );
    assert.deepEqual(
      rows.map((r) => r.depth),
      [0, 1, 1, 0, 1, 2, 2, 0],
    );
  });

  test('a folded directory hides its entries and is marked', () => {
    assert.deepEqual(lines(options({ toggled: new Set(['/usr']) })), [
      '├── etc',
      '│   ├── hostname',
      '│   └── passwd',
      '├─+ usr',
      '└── zz',
    ]);
    const everything = lines(options({ collapseAll: true }));
    assert.deepEqual(everything, ['├─+ etc', '├─+ usr', '└── zz']);
    // Under "fold all", a toggled directory is the one left open.
    assert.deepEqual(lines(options({ collapseAll: true, toggled: new Set(['/usr']) })), [
      '├─+ etc',
      '├── usr',
      '│   └─+ bin',
      '└── zz',
    ]);
  });

  test('the filter keeps matches and the directories leading to them', () => {
    assert.deepEqual(lines(options({ filter: 'curl' })), ['└── usr', '    └── bin', '        └── curl']);
    // A regular expression, matched against the whole path.
    assert.deepEqual(lines(options({ filter: '^/etc/h' })), ['└── etc', '    └── hostname']);
    // Not a valid expression: the literal text.
    assert.deepEqual(lines(options({ filter: 'bin/(' })), []);
    assert.equal(pathMatcher('a(')('/x/a('), true);
    assert.deepEqual(lines(options({ filter: 'nothing-matches' })), []);
  });

  test('hidden change kinds drop entries but keep directories with shown entries under them', () => {
    assert.deepEqual(lines(options({ hidden: new Set(['unmodified']) })), [
      '├── etc',
      '│   └── hostname',
      '├── usr',
      '│   └── bin',
      '│       ├── curl',
      '│       └── old',
      '└── zz',
    ]);
    assert.deepEqual(lines(options({ hidden: new Set(['unmodified', 'added', 'removed']) })), [
      '├── etc',
      '│   └── hostname',
      '└── usr',
    ]);
  });

  test('applying a filter unfolds only the directories that lead to matches', () => {
    assert.deepEqual(revealedByFilter(root, 'curl', new Set()).sort(), ['/usr', '/usr/bin']);
    // "/usr" matches "usr" itself: it keeps its folding.
    assert.deepEqual(revealedByFilter(root, 'usr', new Set()), []);
    assert.deepEqual(revealedByFilter(root, '', new Set()), []);
  });

  test('a very deep tree does not overflow the stack', () => {
    let deep = file('leaf', 'added');
    // Deeper than a recursive walk survives (about 10 000 frames), as a crafted layer can nest.
    for (let i = 0; i < 30_000; i++) deep = dir('d', [deep]);
    const rows = visibleRows(dir('', [deep]), options({ hidden: new Set(['unmodified']) }));
    assert.equal(rows.length, 30_001);
    assert.equal(rows.at(-1)!.node.name, 'leaf');
    // Only what a screen can show of the guide lines is made.
    assert.equal(rowPrefix(rows.at(-1)!, 80).length, 84);
  });

  test('the same inputs give the same rows without walking again', () => {
    const opts = options();
    assert.equal(visibleRows(root, opts), visibleRows(root, opts));
  });
});
