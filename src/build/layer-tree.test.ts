import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, link, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';

import { createTarFromDirectory, writeEntries } from '../archive/tar-writer.js';
import { Readable } from 'node:stream';
import { readTar } from '../archive/tar-reader.js';
import type { TarHeader } from '../archive/tar-writer.js';
import { isStrataError } from '../errors.js';
import { applyCopy, selectCopySources, type ApplyOptions } from './copy.js';
import { LayerTree, type SeedDirectory } from './layer-tree.js';

let scratch: string;
let counter = 0;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-layer-tree-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const PAST = new Date('2020-01-02T03:04:05Z');
const CLAMP = new Date('2021-06-07T08:09:10Z');

/** A context with every kind of entry COPY handles, with fixed mtimes and odd modes. */
async function makeContext(): Promise<string> {
  counter++;
  const context = join(scratch, `context-${counter}`);
  await mkdir(join(context, 'src', 'deep', 'er'), { recursive: true });
  await writeFile(join(context, 'src', 'a.txt'), 'alpha\n');
  await writeFile(join(context, 'src', 'deep', 'b.bin'), Buffer.alloc(300_000, 7)); // passes through the batcher
  await writeFile(join(context, 'src', 'deep', 'er', 'empty'), '');
  await writeFile(join(context, 'src', 'run.sh'), '#!/bin/sh\n');
  await chmod(join(context, 'src', 'run.sh'), 0o4755);
  await link(join(context, 'src', 'a.txt'), join(context, 'src', 'deep', 'hard'));
  await symlink('../a.txt', join(context, 'src', 'deep', 'link'));
  execFileSync('mkfifo', [join(context, 'src', 'pipe')]);
  await chown(join(context, 'src', 'a.txt'), 1234, 5678);
  await writeFile(join(context, 'top.txt'), 'top\n');
  for (const path of [
    'src/a.txt',
    'src/deep/b.bin',
    'src/deep/er/empty',
    'src/run.sh',
    'src/pipe',
    'top.txt',
  ])
    await utimes(join(context, path), PAST, PAST);
  for (const dir of ['src/deep/er', 'src/deep', 'src']) await utimes(join(context, dir), PAST, PAST);
  return context;
}

interface Scenario {
  sources: string[];
  dest: string;
  options?: Partial<Omit<ApplyOptions, 'targetRoot' | 'dest' | 'target'>>;
  seed?: SeedDirectory[];
}

/** The layer tar of a copy made on disk (into a fresh directory) and through a LayerTree. */
async function bothWays(
  context: string,
  scenario: Scenario,
  clamp?: Date,
): Promise<{ disk: Buffer; tree: Buffer }> {
  counter++;
  const target = join(scratch, `target-${counter}`);
  await mkdir(target);
  for (const dir of scenario.seed ?? []) {
    const path = join(target, dir.path);
    await mkdir(path);
    await chown(path, dir.uid, dir.gid);
    await chmod(path, dir.mode);
  }
  for (const dir of [...(scenario.seed ?? [])].reverse())
    await utimes(join(target, dir.path), new Date(dir.mtimeMs), new Date(dir.mtimeMs));
  const select = async () =>
    scenario.sources.length === 0
      ? []
      : selectCopySources({ root: context, sourceIsContext: true, sources: scenario.sources });
  const common = { dest: scenario.dest, workdir: '/', ...scenario.options };
  await applyCopy(await select(), { targetRoot: target, ...common });
  const tree = new LayerTree(scenario.seed);
  await applyCopy(await select(), { targetRoot: tree.root, target: tree, ...common });
  return {
    disk: await buffer(createTarFromDirectory(target, { xattrs: false, ...(clamp ? { mtime: clamp } : {}) })),
    tree: await buffer(writeEntries(tree.entries(clamp))),
  };
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function readTarEntries(tar: Buffer): Promise<Array<{ header: TarHeader; body: Buffer }>> {
  const entries: Array<{ header: TarHeader; body: Buffer }> = [];
  for await (const entry of readTar(Readable.from([tar])))
    entries.push({ header: entry.header, body: await buffer(entry.body) });
  return entries;
}

describe('LayerTree', () => {
  const scenarios: Array<[string, Scenario]> = [
    ['a directory into a new destination', { sources: ['src'], dest: '/app/' }],
    ['several sources, a file renamed', { sources: ['src', 'top.txt'], dest: '/opt/x/' }],
    ['a file to a path without a slash', { sources: ['top.txt'], dest: '/etc/renamed' }],
    ['the context root', { sources: ['.'], dest: '/srv/' }],
    [
      '--chown and --chmod',
      { sources: ['src'], dest: '/app/', options: { owner: { uid: 10, gid: 20 }, chmod: 'u=rwx,go=rx' } },
    ],
    ['--parents', { sources: ['src/deep'], dest: '/p/', options: { parents: true } }],
    [
      'heredoc files',
      {
        sources: [],
        dest: '/h/',
        options: {
          inline: [
            { path: 'one', data: 'x\n' },
            { path: 'sub/two', data: 'y' },
          ],
        },
      },
    ],
    [
      'below existing directories of the image (seeded, as overlay copy-up leaves them)',
      {
        sources: ['src'],
        dest: '/usr/local/app/',
        seed: [
          { path: 'usr', mode: 0o755, uid: 0, gid: 0, mtimeMs: PAST.getTime() },
          { path: 'usr/local', mode: 0o2775, uid: 0, gid: 50, mtimeMs: PAST.getTime() },
        ],
      },
    ],
    [
      'a later source replacing a file of an earlier one',
      { sources: ['top.txt', 'src/a.txt'], dest: '/d/top.txt/' },
    ],
  ];
  for (const [name, scenario] of scenarios) {
    it(`makes the same layer as copying to disk: ${name}`, async () => {
      const context = await makeContext();
      const { disk, tree } = await bothWays(context, scenario, CLAMP);
      const entries = await readTarEntries(tree);
      assert.ok(entries.length > 0);
      assert.equal(sha(tree), sha(disk), 'the tree and the disk copy give different tars');
    });
  }

  it('keeps source mtimes, ids, modes, hard links, symlinks and fifos', async () => {
    const context = await makeContext();
    const { tree } = await bothWays(context, { sources: ['src'], dest: '/app/', options: {} });
    const byName = new Map((await readTarEntries(tree)).map((entry) => [entry.header.name, entry]));
    const file = byName.get('app/a.txt');
    assert.equal(file?.header.mtime.getTime(), PAST.getTime());
    assert.equal(file?.header.uid, 0, 'files from the context belong to root without --chown');
    assert.equal(byName.get('app/run.sh')?.header.mode, 0o4755);
    assert.equal(byName.get('app/deep/hard')?.header.type, 'link');
    assert.equal(byName.get('app/deep/hard')?.header.linkname, 'app/a.txt');
    assert.equal(byName.get('app/deep/link')?.header.linkname, '../a.txt');
    assert.equal(byName.get('app/pipe')?.header.type, 'fifo');
    assert.equal(byName.get('app/deep/b.bin')?.body.length, 300_000);
    assert.equal(byName.get('app/deep/er')?.header.mtime.getTime(), PAST.getTime());
  });

  it('refuses a file changed between the copy and the layer, whatever its size', async () => {
    for (const content of ['grown since\n', 'TOP\n']) {
      const context = await makeContext();
      const tree = new LayerTree();
      const operands = await selectCopySources({
        root: context,
        sourceIsContext: true,
        sources: ['top.txt'],
      });
      await applyCopy(operands, { targetRoot: tree.root, target: tree, dest: '/x', workdir: '/' });
      await writeFile(join(context, 'top.txt'), content);
      await assert.rejects(buffer(writeEntries(tree.entries())), (err: unknown) => {
        assert.ok(isStrataError(err));
        assert.match(err.message, /top\.txt.*changed during the build/);
        return true;
      });
    }
  });

  it('gives COPY --from sources only for what it created, from files that outlive it', async () => {
    const context = await makeContext();
    const seed = [{ path: 'usr', mode: 0o755, uid: 0, gid: 0, mtimeMs: PAST.getTime() }];
    const tree = new LayerTree(seed);
    const operands = await selectCopySources({ root: context, sourceIsContext: true, sources: ['src'] });
    await applyCopy(operands, { targetRoot: tree.root, target: tree, dest: '/usr/app/', workdir: '/' });
    assert.equal(tree.selectOwned(['/usr/app']), undefined, 'only when its sources outlive the step');
    tree.sourcesOutlive = true;
    const [app] = tree.selectOwned(['/usr/app/']) ?? [];
    assert.ok(app);
    assert.equal(app.isDirectory, true);
    assert.equal(app.destName, 'app');
    assert.equal(app.preserveOwnership, true);
    const byPath = new Map(app.entries.map((entry) => [entry.relPath, entry]));
    assert.deepEqual(
      app.entries.map((entry) => entry.relPath),
      [
        '',
        'a.txt',
        'deep',
        'deep/b.bin',
        'deep/er',
        'deep/er/empty',
        'deep/hard',
        'deep/link',
        'pipe',
        'run.sh',
      ],
    );
    assert.equal(byPath.get('a.txt')?.hostPath, join(context, 'src', 'a.txt'), 'bytes read from the context');
    assert.equal(byPath.get('deep/link')?.linkTarget, '../a.txt');
    assert.equal(byPath.get('run.sh')?.stats.mode, 0o100000 | 0o4755);
    assert.equal(byPath.get('deep/hard')?.stats.nlink, 2);
    assert.equal(byPath.get('deep/hard')?.stats.ino, byPath.get('a.txt')?.stats.ino);
    assert.equal(byPath.get('pipe')?.stats.isFIFO(), true);
    // Not from the tree: a directory of the layers below, a wildcard, a path through a symlink,
    // something missing, heredoc bytes (no file to read).
    assert.equal(tree.selectOwned(['/usr']), undefined);
    assert.equal(tree.selectOwned(['/usr/app/*.txt']), undefined);
    assert.equal(tree.selectOwned(['/usr/app/deep/link']), undefined);
    assert.equal(tree.selectOwned(['/usr/app/nope']), undefined);
    const inline = new LayerTree();
    inline.sourcesOutlive = true;
    await applyCopy([], {
      targetRoot: inline.root,
      target: inline,
      dest: '/h/',
      workdir: '/',
      inline: [{ path: 'x', data: 'y' }],
    });
    assert.equal(inline.selectOwned(['/h']), undefined);
  });

  it('follows the file system rules the copy relies on', async () => {
    const tree = new LayerTree();
    await tree.mkdir(`${tree.root}/d`, 0o755);
    await assert.rejects(tree.mkdir(`${tree.root}/d`, 0o755), /EEXIST/);
    await assert.rejects(tree.mkdir(`${tree.root}/missing/d`, 0o755), /ENOENT/);
    await tree.symlink('/elsewhere', `${tree.root}/d/s`);
    assert.equal(await tree.readlink(`${tree.root}/d/s`), '/elsewhere');
    assert.equal((await tree.lstat(`${tree.root}/d/s`))?.isSymbolicLink(), true);
    assert.equal(await tree.lstat(`${tree.root}/d/s/below`), undefined);
    await assert.rejects(tree.unlink(`${tree.root}/d`), /EISDIR/);
    await tree.unlink(`${tree.root}/d/s`);
    assert.equal(await tree.lstat(`${tree.root}/d/s`), undefined);
    await assert.rejects(tree.lstat('/not/below/the/root'), /EINVAL/);
    assert.equal(tree.isEmpty, false);
    assert.equal(new LayerTree().isEmpty, true);
  });
});
