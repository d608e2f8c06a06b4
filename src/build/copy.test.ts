import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import fc from 'fast-check';

import { PatternMatcher } from '../dockerfile/dockerignore.js';
import { isStrataError } from '../errors.js';
import {
  applyCopy,
  compileComponentGlob,
  containsWildcards,
  fetchRemote,
  parseChmod,
  selectCopySources,
  type ApplyOptions,
  type SelectOptions,
} from './copy.js';

let scratch: string;
let counter = 0;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-copy-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** A fresh (context, target root) pair. */
async function dirs(): Promise<{ context: string; target: string }> {
  counter++;
  const context = join(scratch, `case-${counter}`, 'context');
  const target = join(scratch, `case-${counter}`, 'target');
  await mkdir(context, { recursive: true });
  await mkdir(target, { recursive: true });
  return { context, target };
}

/** Writes files (string content), directories (trailing '/') and symlinks ({ link }). */
async function tree(root: string, entries: Record<string, string | { link: string }>): Promise<void> {
  for (const [path, value] of Object.entries(entries)) {
    const full = join(root, path);
    if (typeof value === 'object') {
      await mkdir(join(full, '..'), { recursive: true });
      await symlink(value.link, full);
    } else if (path.endsWith('/')) {
      await mkdir(full, { recursive: true });
    } else {
      await mkdir(join(full, '..'), { recursive: true });
      await writeFile(full, value);
    }
  }
}

type CopyExtras = Partial<Omit<ApplyOptions, 'targetRoot' | 'dest'>> & {
  select?: Partial<SelectOptions>;
};

async function copy(
  context: string,
  target: string,
  sources: string[],
  dest: string,
  extras: CopyExtras = {},
): Promise<void> {
  const { select, ...apply } = extras;
  const operands = await selectCopySources({ root: context, sourceIsContext: true, sources, ...select });
  await applyCopy(operands, { targetRoot: target, dest, workdir: '/', ...apply });
}

/** Every path below `root`, sorted, directories with a trailing '/'. */
async function listTree(root: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    const stats = await lstat(join(root, rel));
    if (stats.isDirectory()) {
      found.push(`${rel}/`);
      found.push(...(await listTree(root, rel)));
    } else {
      found.push(rel);
    }
  }
  return found;
}

const text = (path: string): Promise<string> => readFile(path, 'utf8');
const modeOf = async (path: string): Promise<number> => (await lstat(path)).mode & 0o7777;

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isStrataError(err), `expected a StrataError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('COPY destinations', () => {
  it('copies the contents of a source directory, not the directory itself', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/a.txt': 'a', 'src/sub/b.txt': 'b' });
    await copy(context, target, ['src'], '/app');
    assert.deepEqual(await listTree(target), ['app/', 'app/a.txt', 'app/sub/', 'app/sub/b.txt']);
  });

  it('puts a file inside a destination ending with /', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await copy(context, target, ['a.txt'], '/dir/');
    assert.equal(await text(join(target, 'dir/a.txt')), 'a');
  });

  it('copies a file TO a destination without a slash (renaming it)', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await copy(context, target, ['a.txt'], '/opt/renamed');
    assert.equal(await text(join(target, 'opt/renamed')), 'a');
  });

  it('puts a file inside an existing directory even without a slash', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await tree(target, { 'existing/': '' });
    await copy(context, target, ['a.txt'], '/existing');
    assert.equal(await text(join(target, 'existing/a.txt')), 'a');
  });

  it('resolves a relative destination against WORKDIR, and . is a directory', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a', 'b.txt': 'b' });
    await copy(context, target, ['a.txt'], 'rel/x', { workdir: '/work' });
    await copy(context, target, ['a.txt', 'b.txt'], '.', { workdir: '/srv' });
    assert.equal(await text(join(target, 'work/rel/x')), 'a');
    assert.deepEqual(await listTree(join(target, 'srv')), ['a.txt', 'b.txt']);
  });

  it('refuses several sources into a destination that is not a directory', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a', 'b.txt': 'b' });
    await assert.rejects(
      copy(context, target, ['a.txt', 'b.txt'], '/file'),
      rejectsWith(
        'INVALID_ARGUMENT',
        /more than one source file, the destination must be a directory and end with a \//,
      ),
    );
  });

  it('refuses a wildcard matching several files into a file destination, accepts one match', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a', 'b.txt': 'b', 'only.md': 'm' });
    await assert.rejects(copy(context, target, ['*.txt'], '/file'), /must be a directory and end with a \//);
    await copy(context, target, ['*.md'], '/single');
    assert.equal(await text(join(target, 'single')), 'm');
    await copy(context, target, ['*.txt'], '/many/');
    assert.deepEqual(await listTree(join(target, 'many')), ['a.txt', 'b.txt']);
  });

  it('creates missing parents 0755 root-owned, or owned by --chown', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await copy(context, target, ['a.txt'], '/p/q/r');
    const parent = await stat(join(target, 'p/q'));
    assert.equal(parent.mode & 0o7777, 0o755);
    assert.deepEqual([parent.uid, parent.gid], [0, 0]);
    await copy(context, target, ['a.txt'], '/owned/deep/'.concat(''), { owner: { uid: 1234, gid: 5678 } });
    for (const dir of ['owned', 'owned/deep']) {
      const stats = await stat(join(target, dir));
      assert.deepEqual([stats.uid, stats.gid, stats.mode & 0o7777], [1234, 5678, 0o755]);
    }
  });

  it('a created destination directory takes the source directory mode; a dest/ is made 0755', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/a': 'a' });
    await chmod(join(context, 'src'), 0o750);
    await copy(context, target, ['src'], '/new');
    await copy(context, target, ['src'], '/slash/');
    assert.equal(await modeOf(join(target, 'new')), 0o750);
    assert.equal(await modeOf(join(target, 'slash')), 0o755);
  });

  it('writes through a destination symlink to a directory, inside the target root', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a', 'rootfs/lib/x.so': 'so' });
    await tree(target, { 'usr/lib/': '', lib: { link: 'usr/lib' }, out: { link: '/../../../usr/lib' } });
    await copy(context, target, ['a.txt'], '/out');
    await copy(context, target, ['rootfs'], '/');
    assert.equal(await text(join(target, 'usr/lib/a.txt')), 'a');
    assert.equal(await text(join(target, 'usr/lib/x.so')), 'so');
    assert.ok((await lstat(join(target, 'lib'))).isSymbolicLink());
  });
});

describe('COPY sources', () => {
  it('reports a missing literal source by name', async () => {
    const { context, target } = await dirs();
    await assert.rejects(
      copy(context, target, ['missing.txt'], '/x'),
      rejectsWith('NOT_FOUND', /"missing\.txt" not found/),
    );
  });

  it('reports a wildcard matching nothing', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await assert.rejects(
      copy(context, target, ['*.none'], '/x/'),
      rejectsWith('NOT_FOUND', /no source files were specified/),
    );
  });

  it('matches wildcards per component with Go syntax, dotfiles included, in byte order', async () => {
    const { context, target } = await dirs();
    await tree(context, {
      'a/x.txt': 'ax',
      'b/x.txt': 'bx',
      'c/y.txt': 'cy',
      '.hidden': 'h',
      f1: '1',
      f2: '2',
      fz: 'z',
    });
    const operands = await selectCopySources({
      root: context,
      sourceIsContext: true,
      sources: ['*/x.txt', 'f[0-9]', '.h?dden'],
    });
    assert.deepEqual(
      operands.map((operand) => operand.destName),
      ['x.txt', 'x.txt', 'f1', 'f2', '.hidden'],
    );
    await copy(context, target, ['f[^0-9]'], '/z');
    assert.equal(await text(join(target, 'z')), 'z');
  });

  it('rejects a malformed wildcard', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'a' });
    await assert.rejects(copy(context, target, ['a[.txt'], '/x/'), { code: 'INVALID_ARGUMENT' });
  });

  it('cleans .. at the context root and reads absolute sources from the context', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a.txt': 'inside' });
    await writeFile(join(context, '..', 'a.txt'), 'outside');
    await copy(context, target, ['../../a.txt'], '/one');
    await copy(context, target, ['/a.txt'], '/two');
    assert.equal(await text(join(target, 'one')), 'inside');
    assert.equal(await text(join(target, 'two')), 'inside');
  });

  it('follows a symlink operand inside the context and names the copy after the link', async () => {
    const { context, target } = await dirs();
    await tree(context, {
      'real.txt': 'real',
      'alias.txt': { link: 'real.txt' },
      dirlink: { link: '/d' },
      'd/f': 'f',
    });
    await copy(context, target, ['alias.txt', 'dirlink'], '/out/');
    assert.deepEqual(await listTree(join(target, 'out')), ['alias.txt', 'f']);
    assert.ok((await lstat(join(target, 'out/alias.txt'))).isFile());
  });

  it('never follows an operand symlink out of the context', async () => {
    const { context, target } = await dirs();
    const outside = join(context, '..', 'secret');
    await writeFile(outside, 'secret');
    await tree(context, { escape: { link: '../secret' }, abs: { link: outside } });
    await assert.rejects(copy(context, target, ['escape'], '/x'), { code: 'NOT_FOUND' });
    await assert.rejects(copy(context, target, ['abs'], '/x'), { code: 'NOT_FOUND' });
  });

  it('copies symlinks inside a directory as symlinks, verbatim', async () => {
    const { context, target } = await dirs();
    await tree(context, {
      'src/t': 't',
      'src/rel': { link: 't' },
      'src/abs': { link: '/etc/passwd' },
      'src/up': { link: '../../..' },
    });
    await copy(context, target, ['src'], '/app');
    assert.equal(await readlink(join(target, 'app/rel')), 't');
    assert.equal(await readlink(join(target, 'app/abs')), '/etc/passwd');
    assert.equal(await readlink(join(target, 'app/up')), '../../..');
  });

  it('lists a directory: itself first, each directory before its contents, sorted', async () => {
    const { context } = await dirs();
    await tree(context, { 'd/b/z': '', 'd/a': '', 'd/c/': '', 'd/b/a': '' });
    const [operand] = await selectCopySources({ root: context, sourceIsContext: true, sources: ['d'] });
    assert.ok(operand?.isDirectory);
    assert.deepEqual(
      operand.entries.map((entry) => entry.relPath),
      ['', 'a', 'b', 'b/a', 'b/z', 'c'],
    );
  });

  it('applies .dockerignore: ignored files vanish, an ignored literal source is not found', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/keep': 'k', 'src/drop.log': 'd', 'secret.env': 's' });
    const matcher = new PatternMatcher(['**/*.log', 'secret.env']);
    const ignore = (path: string): boolean => matcher.matches(path);
    await copy(context, target, ['src'], '/app', { select: { ignore } });
    assert.deepEqual(await listTree(join(target, 'app')), ['keep']);
    await assert.rejects(copy(context, target, ['secret.env'], '/x', { select: { ignore } }), {
      code: 'NOT_FOUND',
    });
    await assert.rejects(
      copy(context, target, ['secret.*'], '/x', { select: { ignore } }),
      /no source files/,
    );
  });

  it('keeps what a ! pattern re-includes inside an ignored directory', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'vendor/a/keep.go': 'k', 'vendor/b/drop.go': 'd' });
    const matcher = new PatternMatcher(['vendor', '!vendor/a/keep.go']);
    await copy(context, target, ['vendor'], '/v', { select: { ignore: (path) => matcher.matches(path) } });
    assert.deepEqual(await listTree(join(target, 'v')), ['a/', 'a/keep.go']);
  });

  it('--exclude drops paths relative to each operand, with ! exceptions', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/a.txt': '', 'src/b.md': '', 'src/deep/c.txt': '', 'src/deep/keep.txt': '' });
    await copy(context, target, ['src'], '/app', { select: { exclude: ['**/*.txt', '!deep/keep.txt'] } });
    assert.deepEqual(await listTree(join(target, 'app')), ['b.md', 'deep/', 'deep/keep.txt']);
  });

  it('--exclude applies to the names a wildcard matched', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'home.txt': '', 'home.md': '', 'homework/x.txt': '', 'homework/y': '' });
    await copy(context, target, ['hom*'], '/out/', { select: { exclude: ['*.txt'] } });
    assert.deepEqual(await listTree(join(target, 'out')), ['home.md', 'y']);
  });

  it('sources of --from are relative to / (or the given directory) and keep their owners', async () => {
    const { context: stageRoot, target } = await dirs();
    await tree(stageRoot, { 'opt/app/bin': 'bin', bin: 'root-bin' });
    await chown(join(stageRoot, 'opt/app/bin'), 1500, 1600);
    let operands = await selectCopySources({
      root: stageRoot,
      sourceIsContext: false,
      sources: ['opt/app/bin'],
    });
    await applyCopy(operands, { targetRoot: target, dest: '/usr/bin/', workdir: '/work' });
    const copied = await stat(join(target, 'usr/bin/bin'));
    assert.deepEqual([copied.uid, copied.gid], [1500, 1600]);
    operands = await selectCopySources({
      root: stageRoot,
      sourceIsContext: false,
      sources: ['bin'],
      workdirForFromSources: '/opt/app',
    });
    await applyCopy(operands, { targetRoot: target, dest: '/w', workdir: '/' });
    assert.equal(await text(join(target, 'w')), 'bin');
    await assert.rejects(
      selectCopySources({ root: stageRoot, sourceIsContext: false, sources: ['/nope'] }),
      /"\/nope" not found in the source image/,
    );
  });
});

describe('COPY metadata', () => {
  it('keeps modes and mtimes, and makes context files root-owned', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/run.sh': '#!/bin/sh', 'src/sub/data': 'd' });
    await chown(join(context, 'src/run.sh'), 1234, 1234);
    await chmod(join(context, 'src/run.sh'), 0o4755);
    const when = new Date('2001-02-03T04:05:06Z');
    await utimes(join(context, 'src/run.sh'), when, when);
    await utimes(join(context, 'src/sub'), when, when);
    await copy(context, target, ['src'], '/app');
    const file = await stat(join(target, 'app/run.sh'));
    assert.equal(file.mode & 0o7777, 0o4755, 'setuid survives the chown');
    assert.deepEqual([file.uid, file.gid], [0, 0]);
    assert.equal(file.mtime.getTime(), when.getTime());
    assert.equal(
      (await stat(join(target, 'app/sub'))).mtime.getTime(),
      when.getTime(),
      'dir mtime set after contents',
    );
  });

  it('--chown owns files, directories and symlinks', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/f': 'f', 'src/d/g': 'g', 'src/l': { link: 'f' } });
    await copy(context, target, ['src'], '/app', { owner: { uid: 7, gid: 8 } });
    for (const path of ['app', 'app/f', 'app/d', 'app/d/g', 'app/l']) {
      const stats = await lstat(join(target, path));
      assert.deepEqual([stats.uid, stats.gid], [7, 8], path);
    }
  });

  it('--chmod (octal) applies to copied files and directories but not to created parents', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/f': 'f', 'src/d/g': 'g' });
    await copy(context, target, ['src'], '/top/app', { chmod: '751' });
    assert.equal(await modeOf(join(target, 'top')), 0o755);
    for (const path of ['top/app', 'top/app/f', 'top/app/d', 'top/app/d/g']) {
      assert.equal(await modeOf(join(target, path)), 0o751, path);
    }
  });

  it('--chmod (symbolic) changes bits relative to each source mode', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/exe': '', 'src/plain': '', 'src/d/': '' });
    await chmod(join(context, 'src/exe'), 0o744);
    await chmod(join(context, 'src/plain'), 0o664);
    await chmod(join(context, 'src/d'), 0o700);
    await copy(context, target, ['src'], '/app', { chmod: 'go+rX,g-w' });
    assert.equal(await modeOf(join(target, 'app/exe')), 0o755);
    assert.equal(await modeOf(join(target, 'app/plain')), 0o644);
    assert.equal(await modeOf(join(target, 'app/d')), 0o755);
  });

  it('parses --chmod values like chmod(1), and rejects garbage', () => {
    assert.equal(parseChmod('755')(0o600, false), 0o755);
    assert.equal(parseChmod('0644')(0o777, true), 0o644);
    assert.equal(parseChmod('u+x,g-w')(0o664, false), 0o744);
    assert.equal(parseChmod('a=rX')(0o700, true), 0o555);
    assert.equal(parseChmod('a=rX')(0o600, false), 0o444);
    assert.equal(parseChmod('go=u')(0o750, false), 0o777);
    assert.equal(parseChmod('+t')(0o755, true), 0o1755);
    assert.equal(parseChmod('u+s,g+s')(0o755, false), 0o6755);
    assert.equal(parseChmod('o=')(0o777, false), 0o770);
    for (const bad of ['', '8', '77777', 'z+x', 'u*x', 'u+x,', 'rwx']) {
      assert.throws(() => parseChmod(bad), { code: 'INVALID_ARGUMENT' }, bad);
    }
  });

  it('keeps hard links between copied files', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/a': 'shared', 'src/z/other': 'o' });
    await link(join(context, 'src/a'), join(context, 'src/z/b'));
    await copy(context, target, ['src'], '/app');
    const [a, b, other] = await Promise.all(
      ['app/a', 'app/z/b', 'app/z/other'].map((p) => stat(join(target, p))),
    );
    assert.equal(a?.ino, b?.ino);
    assert.notEqual(a?.ino, other?.ino);
    assert.equal(a?.nlink, 2);
  });

  it('copies fifos as fifos', async () => {
    const { context, target } = await dirs();
    await mkdir(join(context, 'src'));
    execFileSync('mkfifo', ['-m', '0640', join(context, 'src/pipe')]);
    await copy(context, target, ['src'], '/app');
    const fifo = await lstat(join(target, 'app/pipe'));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o7777, 0o640);
  });

  it('fills a read-only source directory and gives it its mode at the end', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/ro/f': 'f' });
    await chmod(join(context, 'src/ro'), 0o555);
    await copy(context, target, ['src'], '/app');
    assert.equal(await text(join(target, 'app/ro/f')), 'f');
    assert.equal(await modeOf(join(target, 'app/ro')), 0o555);
  });
});

describe('COPY onto existing content', () => {
  it('replaces an existing file with a new inode, leaving its other hard links alone', async () => {
    const { context, target } = await dirs();
    await tree(context, { conf: 'new' });
    await tree(target, { 'etc/conf': 'old' });
    await link(join(target, 'etc/conf'), join(target, 'etc/conf.bak'));
    await copy(context, target, ['conf'], '/etc/conf');
    assert.equal(await text(join(target, 'etc/conf')), 'new');
    assert.equal(await text(join(target, 'etc/conf.bak')), 'old');
  });

  it('merges into an existing directory, keeping its files and its metadata', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/new': 'n', 'src/sub/new2': 'n2' });
    await tree(target, { 'app/old': 'o', 'app/sub/old2': 'o2' });
    await chmod(join(target, 'app'), 0o711);
    await chown(join(target, 'app'), 99, 99);
    await copy(context, target, ['src'], '/app');
    assert.deepEqual(await listTree(join(target, 'app')), ['new', 'old', 'sub/', 'sub/new2', 'sub/old2']);
    const app = await stat(join(target, 'app'));
    assert.deepEqual([app.mode & 0o7777, app.uid], [0o711, 99]);
  });

  it('replaces an existing symlink at a file target instead of writing through it', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/passwd': 'mine' });
    await tree(target, { 'etc/passwd': 'image', 'app/passwd': { link: '/etc/passwd' } });
    await copy(context, target, ['src'], '/app');
    assert.ok((await lstat(join(target, 'app/passwd'))).isFile());
    assert.equal(await text(join(target, 'etc/passwd')), 'image');
  });

  it('refuses to replace a directory with a file, or to copy a directory into a file', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'src/x': 'file', 'other/y/z': 'z' });
    await tree(target, { 'app/x/inner': '', 'app/y': 'file' });
    await assert.rejects(
      copy(context, target, ['src'], '/app'),
      rejectsWith('INVALID_ARGUMENT', /cannot replace directory \/app\/x/),
    );
    await assert.rejects(
      copy(context, target, ['other'], '/app'),
      rejectsWith('INVALID_ARGUMENT', /cannot copy to non-directory: \/app\/y/),
    );
    await assert.rejects(
      copy(context, target, ['src/x'], '/app/y/deeper'),
      /cannot copy to non-directory: \/app\/y/,
    );
  });
});

describe('COPY --parents', () => {
  it('keeps the path below the context root', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'x/a/file': '1', 'y/a/file': '2' });
    await copy(context, target, ['x/a/file', 'y/a/file'], '/out/', {
      parents: true,
      select: { parents: true },
    });
    assert.deepEqual(await listTree(join(target, 'out')), [
      'x/',
      'x/a/',
      'x/a/file',
      'y/',
      'y/a/',
      'y/a/file',
    ]);
  });

  it('keeps the path below a /./ pivot, and works with wildcards and directories', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'base/p/q/f': 'f', 'base/r/g': 'g' });
    await copy(context, target, ['base/./p/q', 'base/./*/g'], '/o/', {
      parents: true,
      select: { parents: true },
    });
    assert.deepEqual(await listTree(join(target, 'o')), ['p/', 'p/q/', 'p/q/f', 'r/', 'r/g']);
  });

  it('gives created parent directories their source metadata', async () => {
    const { context, target } = await dirs();
    await tree(context, { 'a/b/f': 'f' });
    await chmod(join(context, 'a'), 0o705);
    const when = new Date('2010-01-01T00:00:00Z');
    await utimes(join(context, 'a'), when, when);
    await copy(context, target, ['a/b/f'], '/o', { parents: true, select: { parents: true } });
    const parent = await stat(join(target, 'o/a'));
    assert.equal(parent.mode & 0o7777, 0o705);
    assert.equal(parent.mtime.getTime(), when.getTime());
  });
});

describe('ADD local archives', () => {
  async function makeArchive(context: string): Promise<string> {
    await tree(context, { 'payload/dir/inner.txt': 'inner', 'payload/top.txt': 'top' });
    await chown(join(context, 'payload/top.txt'), 321, 654);
    const archive = join(context, 'archive.tar');
    execFileSync('tar', ['-C', join(context, 'payload'), '-cf', archive, '.']);
    return archive;
  }

  for (const [codec, command] of [
    ['none', undefined],
    ['gzip', 'gzip'],
    ['bzip2', 'bzip2'],
    ['xz', 'xz'],
    ['zstd', 'zstd'],
  ] as const) {
    it(`extracts a ${codec} tar, detected by content not by name`, async () => {
      const { context, target } = await dirs();
      const archive = await makeArchive(context);
      if (command !== undefined)
        execFileSync('sh', ['-c', `${command} -c "$1" > "$2"`, 'sh', archive, join(context, 'blob.bin')]);
      else execFileSync('cp', [archive, join(context, 'blob.bin')]);
      await copy(context, target, ['blob.bin'], '/unpacked', { add: true });
      assert.deepEqual(await listTree(join(target, 'unpacked')), ['dir/', 'dir/inner.txt', 'top.txt']);
      const top = await stat(join(target, 'unpacked/top.txt'));
      assert.deepEqual([top.uid, top.gid], [321, 654], 'archive owners kept');
    });
  }

  it('applies --chown to extracted entries', async () => {
    const { context, target } = await dirs();
    await makeArchive(context);
    await copy(context, target, ['archive.tar'], '/x/', { add: true, owner: { uid: 5, gid: 6 } });
    const top = await stat(join(target, 'x/top.txt'));
    assert.deepEqual([top.uid, top.gid], [5, 6]);
  });

  it('copies a non-archive (even one named .tar.gz, even gzip of non-tar) as a file; COPY never extracts', async () => {
    const { context, target } = await dirs();
    await makeArchive(context);
    await writeFile(join(context, 'fake.tar.gz'), 'just text');
    execFileSync('sh', ['-c', 'printf hello | gzip -c > "$1"', 'sh', join(context, 'text.gz')]);
    await copy(context, target, ['fake.tar.gz', 'text.gz'], '/add/', { add: true });
    await copy(context, target, ['archive.tar'], '/copy/');
    assert.equal(await text(join(target, 'add/fake.tar.gz')), 'just text');
    assert.ok((await stat(join(target, 'add/text.gz'))).isFile());
    assert.ok((await stat(join(target, 'copy/archive.tar'))).isFile());
  });
});

describe('heredoc files', () => {
  it('creates inline files 0644 with the epoch mtime, in a directory or as the destination', async () => {
    const { target } = await dirs();
    await applyCopy([], {
      targetRoot: target,
      dest: '/etc/',
      workdir: '/',
      inline: [{ path: 'motd', data: 'hello\n' }],
      sourceDateEpoch: 1_000_000_000,
    });
    const motd = await stat(join(target, 'etc/motd'));
    assert.equal(await text(join(target, 'etc/motd')), 'hello\n');
    assert.equal(motd.mode & 0o7777, 0o644);
    assert.equal(motd.mtime.getTime(), 1_000_000_000_000);
    await applyCopy([], {
      targetRoot: target,
      dest: 'run.sh',
      workdir: '/app',
      chmod: '755',
      owner: { uid: 3, gid: 4 },
      inline: [{ path: 'EOF', data: 'echo hi' }],
    });
    const script = await stat(join(target, 'app/run.sh'));
    assert.deepEqual([script.mode & 0o7777, script.uid, script.gid], [0o755, 3, 4]);
  });
});

describe('wildcard helpers', () => {
  it('detects wildcards like BuildKit, honouring escapes', () => {
    assert.equal(containsWildcards('a/*.txt'), true);
    assert.equal(containsWildcards('file[1]'), true);
    assert.equal(containsWildcards('a\\*b'), false);
    assert.equal(containsWildcards('plain/path'), false);
  });

  it('matches one component with filepath.Match rules', () => {
    assert.ok(compileComponentGlob('*.go').test('.x.go'));
    assert.ok(compileComponentGlob('[^a-c]x').test('dx'));
    assert.ok(!compileComponentGlob('[^a-c]x').test('bx'));
    assert.ok(compileComponentGlob('\\*').test('*'));
    assert.ok(!compileComponentGlob('\\*').test('a'));
    assert.ok(compileComponentGlob('a?c').test('abc'));
    assert.throws(() => compileComponentGlob('[z-a]'), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => compileComponentGlob('x\\'), { code: 'INVALID_ARGUMENT' });
  });
});

describe('fetchRemote', () => {
  let server: Server;
  let base: string;
  const body = 'remote content\n';
  const digest = createHash('sha256').update(body).digest('hex');

  before(async () => {
    server = createServer((request, response) => {
      if (request.url === '/files/tool.tar.gz') {
        response.writeHead(200, { 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT' });
        response.end(body);
      } else if (request.url === '/download?id=3') {
        response.writeHead(200, { 'content-disposition': 'attachment; filename="named.bin"' });
        response.end(body);
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('downloads with the URL filename, Last-Modified mtime, mode 0600 and a verified checksum', async () => {
    const { context: dir } = await dirs();
    const result = await fetchRemote(`${base}/files/tool.tar.gz`, `sha256:${digest}`, dir);
    assert.equal(result.filename, 'tool.tar.gz');
    assert.equal(await text(result.path), body);
    const stats = await stat(result.path);
    assert.equal(stats.mtime.toISOString(), '2015-10-21T07:28:00.000Z');
    assert.equal(stats.mode & 0o777, 0o600);
    assert.equal(result.lastModified?.toISOString(), '2015-10-21T07:28:00.000Z');
  });

  it('names the file after Content-Disposition when given', async () => {
    const { context: dir } = await dirs();
    const result = await fetchRemote(`${base}/download?id=3`, undefined, dir);
    assert.equal(result.filename, 'named.bin');
    assert.equal(result.lastModified, undefined);
  });

  it('fails clearly on a checksum mismatch, a bad checksum, a 404 and a non-HTTP URL', async () => {
    const { context: dir } = await dirs();
    await assert.rejects(
      fetchRemote(`${base}/files/tool.tar.gz`, `sha256:${'0'.repeat(64)}`, dir),
      rejectsWith('DIGEST_MISMATCH', /checksum of .* does not match/),
    );
    assert.deepEqual(await readdir(dir), [], 'nothing left behind');
    await assert.rejects(fetchRemote(`${base}/files/tool.tar.gz`, 'md5:abc', dir), {
      code: 'INVALID_ARGUMENT',
    });
    await assert.rejects(
      fetchRemote(`${base}/missing`, undefined, dir),
      rejectsWith('NOT_FOUND', /HTTP 404/),
    );
    await assert.rejects(fetchRemote('ftp://example.com/x', undefined, dir), { code: 'INVALID_ARGUMENT' });
  });
});

describe('containment (property)', () => {
  it('random sources and destinations never write outside the target root', async () => {
    counter++;
    const sandbox = join(scratch, `case-${counter}`);
    const context = join(sandbox, 'context');
    await tree(context, {
      'a/f': 'f',
      'a/b/g': 'g',
      out: { link: '../../..' },
      abs: { link: '/..' },
      'a/up': { link: '../../outside' },
    });
    const segment = fc.constantFrom('..', '.', 'a', 'b', 'f', 'out', 'abs', 'up', '*', 'x');
    const path = fc
      .tuple(fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 5 }))
      .map(([absolute, parts]) => (absolute ? '/' : '') + parts.join('/'));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(path, { minLength: 1, maxLength: 3 }),
        path,
        fc.boolean(),
        async (sources, dest, slash) => {
          run++;
          const target = join(sandbox, `target-${run}`);
          await tree(target, { 'etc/': '', escape: { link: '../../../..' }, lnk: { link: '/../../x' } });
          const before = await listTree(sandbox);
          try {
            await copy(context, target, sources, slash ? `${dest}/` : dest, { workdir: '/w/escape' });
          } catch (err) {
            assert.ok(isStrataError(err), `unexpected ${String(err)}`);
          }
          const after = await listTree(sandbox);
          const outside = after.filter((p) => !before.includes(p) && !p.startsWith(`target-${run}/`));
          assert.deepEqual(outside, [], `sources ${JSON.stringify(sources)} dest ${dest}`);
          await rm(target, { recursive: true, force: true });
        },
      ),
      { numRuns: 60 },
    );
  });
});
