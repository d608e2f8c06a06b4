import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';

import { isStrataError } from '../errors.js';
import {
  ContextFilter,
  compareNames,
  filterContextEntries,
  walkContext,
  type ContextEntry,
  type FilterState,
  type WalkContextOptions,
} from './context.js';

/** Creates `paths` under a temp dir: a trailing `/` makes a directory, anything else an empty file. */
async function tree(paths: string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'strata-context-'));
  for (const path of paths) {
    if (path.endsWith('/')) {
      await mkdir(join(root, path), { recursive: true });
    } else {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), path);
    }
  }
  return root;
}

async function walk(root: string, options: WalkContextOptions = {}): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of walkContext(root, options)) lines.push(`${entry.type} ${entry.path}`);
  return lines;
}

async function withTree(paths: string[], work: (root: string) => Promise<void>): Promise<void> {
  const root = await tree(paths);
  try {
    await work(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe('walkContext order and types', () => {
  test('lexical by path component, each directory before its contents', () =>
    withTree(['foo2', 'foo/bar', 'foo.txt', 'a/b/c', 'B'], async (root) => {
      assert.deepEqual(await walk(root), [
        'file B',
        'dir a',
        'dir a/b',
        'file a/b/c',
        'dir foo',
        'file foo/bar',
        'file foo.txt',
        'file foo2',
      ]);
    }));

  test('names sort by code point (UTF-8 byte order), not UTF-16 units', () => {
    const names = ['\uffff', '😀', 'z', 'é'];
    assert.deepEqual([...names].sort(compareNames), ['z', 'é', '\uffff', '😀']);
  });

  test('symlinks are reported, not followed; stats come with every entry', () =>
    withTree(['real/file'], async (root) => {
      await symlink('real', join(root, 'link'));
      const entries: ContextEntry[] = [];
      for await (const entry of walkContext(root)) entries.push(entry);
      assert.deepEqual(
        entries.map((entry) => `${entry.type} ${entry.path}`),
        ['symlink link', 'dir real', 'file real/file'],
      );
      assert.equal(entries[2]?.stats.size, 'real/file'.length);
    }));

  test('directories larger than the stat window keep their order', async () => {
    const names = Array.from({ length: 300 }, (_, index) => `f${String(index).padStart(3, '0')}`);
    await withTree(names, async (root) => {
      assert.deepEqual(
        await walk(root),
        names.map((name) => `file ${name}`),
      );
    });
  });
});

describe('walkContext filtering', () => {
  test('excluded directories and files are left out', () =>
    withTree(['node_modules/x/index.js', 'src/a.ts', 'src/a.log', 'debug.log'], async (root) => {
      assert.deepEqual(await walk(root, { excludes: ['node_modules', '**/*.log'] }), [
        'dir src',
        'file src/a.ts',
      ]);
    }));

  test('parent directories of a re-included path are emitted, nothing else inside them', () =>
    withTree(['dist/app.js', 'dist/keep.txt', 'dist/sub/keep.txt', 'src/x'], async (root) => {
      assert.deepEqual(await walk(root, { excludes: ['dist', '!dist/keep.txt', '!dist/sub/keep.txt'] }), [
        'dir dist',
        'file dist/keep.txt',
        'dir dist/sub',
        'file dist/sub/keep.txt',
        'dir src',
        'file src/x',
      ]);
    }));

  test('include patterns keep matches, their contents and the directories leading to them', () =>
    withTree(['a/b/c.txt', 'a/b/d.md', 'a/e.txt', 'f.txt', 'empty/'], async (root) => {
      assert.deepEqual(await walk(root, { includes: ['**/*.txt'] }), [
        'dir a',
        'dir a/b',
        'file a/b/c.txt',
        'file a/e.txt',
        'file f.txt',
      ]);
      assert.deepEqual(await walk(root, { includes: ['a/b'], excludes: ['**/*.md'] }), [
        'dir a',
        'dir a/b',
        'file a/b/c.txt',
      ]);
    }));

  test('the filter prunes excluded directories unless a ! pattern may reach inside', () => {
    const decide = (excludes: string[], path: string) =>
      new ContextFilter({ excludes }).decide(path, true, undefined).verdict;
    assert.equal(decide(['node_modules'], 'node_modules'), 'prune');
    assert.equal(decide(['node_modules', '!dist/keep.txt'], 'node_modules'), 'prune');
    assert.equal(decide(['dist', '!dist/keep.txt'], 'dist'), 'hidden');
    assert.equal(decide(['node_modules', '!*/package.json'], 'node_modules'), 'hidden');
    assert.equal(decide(['node_modules'], 'src'), 'keep');
    assert.equal(new ContextFilter({ includes: ['src'] }).decide('docs', true, undefined).verdict, 'prune');
  });

  test('stacked filters: a ! in one cannot undo an exclusion by another', () =>
    withTree(['foo/bar', 'baz'], async (root) => {
      const lines: string[] = [];
      const layered = filterContextEntries(walkContext(root, { excludes: ['foo'] }), {
        excludes: ['!foo/bar'],
      });
      for await (const entry of layered) lines.push(`${entry.type} ${entry.path}`);
      assert.deepEqual(lines, ['file baz']);
    }));

  test('user errors are StrataErrors', async () => {
    await assert.rejects(walk('/nonexistent/strata-context'), (err: unknown) =>
      isStrataError(err, 'NOT_FOUND'),
    );
    await withTree(['a'], async (root) => {
      await assert.rejects(walk(root, { excludes: ['!'] }), (err: unknown) =>
        isStrataError(err, 'INVALID_ARGUMENT'),
      );
      await assert.rejects(walk(join(root, 'a')), (err: unknown) => isStrataError(err, 'INVALID_ARGUMENT'));
    });
  });
});

describe('walkContext properties', () => {
  interface Node {
    path: string;
    isDirectory: boolean;
    children: Node[];
  }

  /** The walk computed in memory from the filter alone, entering every directory (no pruning). */
  function referenceWalk(filter: ContextFilter, nodes: Node[], parent: FilterState | undefined): string[] {
    const lines: string[] = [];
    for (const node of [...nodes].sort((a, b) => compareNames(a.path, b.path))) {
      const decision = filter.decide(node.path, node.isDirectory, parent);
      const below = node.isDirectory ? referenceWalk(filter, node.children, decision.state) : [];
      const kept = decision.verdict === 'keep';
      if (kept || below.length > 0) lines.push(`${node.isDirectory ? 'dir' : 'file'} ${node.path}`);
      if (kept || below.length > 0) lines.push(...below);
    }
    return lines;
  }

  function buildNodes(paths: string[]): Node[] {
    const byPath = new Map<string, Node>();
    const roots: Node[] = [];
    for (const full of paths) {
      const segments = full.replace(/\/$/, '').split('/');
      segments.forEach((_, index) => {
        const path = segments.slice(0, index + 1).join('/');
        const isDirectory = index < segments.length - 1 || full.endsWith('/');
        if (byPath.has(path)) return;
        const node: Node = { path, isDirectory, children: [] };
        byPath.set(path, node);
        const parent = byPath.get(segments.slice(0, index).join('/'));
        (parent?.children ?? roots).push(node);
      });
    }
    return roots;
  }

  const segment = fc.constantFrom('a', 'b', 'node_modules', 'x.log', 'keep.txt');
  const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((segments) => segments.join('/'));
  const patternArb = fc.constantFrom(
    'a',
    'b/**',
    'node_modules',
    '**/*.log',
    '*/keep.txt',
    '!a/keep.txt',
    '!**/keep.txt',
    '!b',
    'a/b',
    '!node_modules/a',
    '*',
  );

  test('the streaming walk (with pruning) equals the unpruned in-memory reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(pathArb, { minLength: 1, maxLength: 12 }),
        fc.array(patternArb, { maxLength: 4 }),
        fc.array(
          patternArb.filter((p) => !p.startsWith('!')),
          { maxLength: 2 },
        ),
        async (paths, excludes, includes) => {
          // A path cannot be both a file and a directory: keep only leaves that are not prefixes.
          const files = paths.filter((path) => !paths.some((other) => other.startsWith(`${path}/`)));
          const expected = referenceWalk(
            new ContextFilter({ excludes, includes }),
            buildNodes(files),
            undefined,
          );
          await withTree(files, async (root) => {
            assert.deepEqual(await walk(root, { excludes, includes }), expected);
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});
