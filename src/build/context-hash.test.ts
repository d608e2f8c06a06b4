import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  chmod,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  symlink,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Store } from '../store/index.js';
import { ContextHasher, StatFingerprint, operandEntriesDigest, statFingerprint } from './context-hash.js';
import { selectCopySources, walkCopySources, type SelectOptions, type SelectedOperand } from './copy.js';
import { PatternMatcher } from '../dockerfile/dockerignore.js';

let scratch: string;
let counter = 0;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-context-hash-'));
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const PAST = new Date('2020-01-02T03:04:05Z');

async function makeContext(): Promise<string> {
  counter++;
  const context = join(scratch, `context-${counter}`);
  await mkdir(join(context, 'app', 'lib'), { recursive: true });
  await writeFile(join(context, 'app', 'main.js'), 'console.log(1)\n');
  await writeFile(join(context, 'app', 'lib', 'util.js'), 'export {}\n');
  await symlink('main.js', join(context, 'app', 'entry.js'));
  return context;
}

async function select(context: string, source = 'app'): Promise<SelectedOperand> {
  const [operand] = await selectCopySources({ root: context, sourceIsContext: true, sources: [source] });
  assert.ok(operand);
  return operand;
}

/** The digest recomputed from scratch: every file read, no cache. */
async function expectedDigest(operand: SelectedOperand): Promise<string> {
  return operandEntriesDigest(operand, async (entry) => {
    return `sha256:${createHash('sha256')
      .update(await readFile(entry.hostPath))
      .digest('hex')}`;
  });
}

describe('statFingerprint', () => {
  it('is stable for an unchanged operand and changes with every stat that decides a digest', async () => {
    const context = await makeContext();
    const first = statFingerprint(await select(context));
    assert.equal(statFingerprint(await select(context)), first);

    const seen = new Set([first]);
    const changes: Array<() => Promise<unknown>> = [
      () => utimes(join(context, 'app', 'main.js'), PAST, PAST), // mtime (and ctime)
      () => chmod(join(context, 'app', 'lib', 'util.js'), 0o600), // mode, ctime
      () => writeFile(join(context, 'app', 'lib', 'util.js'), 'export {};\n'), // size
      async () => {
        await unlink(join(context, 'app', 'entry.js'));
        await symlink('lib/util.js', join(context, 'app', 'entry.js')); // link target, inode
      },
      () => writeFile(join(context, 'app', 'new.js'), ''), // a new name
    ];
    for (const change of changes) {
      await change();
      const next = statFingerprint(await select(context));
      assert.ok(!seen.has(next), 'every change gives a new fingerprint');
      seen.add(next);
    }
  });

  it('tells apart operands with the same relative paths in different places', async () => {
    const context = await makeContext();
    await mkdir(join(context, 'copy'));
    await writeFile(join(context, 'copy', 'main.js'), 'console.log(1)\n');
    assert.notEqual(
      statFingerprint(await select(context, 'app')),
      statFingerprint(await select(context, 'copy')),
    );
  });
});

describe('ContextHasher', () => {
  it('gives the digest a full read gives, then answers from the fingerprint without the per-file cache', async () => {
    const context = await makeContext();
    const store = await Store.open(join(scratch, `store-${counter}`));
    const operand = await select(context);
    const expected = await expectedDigest(operand);

    const first = await ContextHasher.open(store, context);
    assert.equal(await first.operandDigest(operand, context), expected);
    assert.ok(first.bytesRead > 0, 'the first build reads the files');
    await first.save();

    // The per-file cache is gone: an unchanged operand still needs no read.
    const cacheDir = join(store.layout.cache, 'context');
    const files = await readdir(cacheDir);
    assert.equal(files.length, 2, `a per-file cache and a fingerprint map: ${files.join(', ')}`);
    for (const file of files.filter((name) => !name.endsWith('.operands.json')))
      await unlink(join(cacheDir, file));
    const second = await ContextHasher.open(store, context);
    assert.equal(await second.operandDigest(await select(context), context), expected);
    assert.equal(second.bytesRead, 0);
  });

  it('re-reads exactly the changed file when a stat changed', async () => {
    const context = await makeContext();
    const store = await Store.open(join(scratch, `store-${counter}`));
    const first = await ContextHasher.open(store, context);
    await first.operandDigest(await select(context), context);
    await first.save();

    await writeFile(join(context, 'app', 'lib', 'util.js'), 'export const changed = true;\n');
    const operand = await select(context);
    const second = await ContextHasher.open(store, context);
    assert.equal(await second.operandDigest(operand, context), await expectedDigest(operand));
    assert.equal(second.bytesRead, 'export const changed = true;\n'.length);
  });

  it('ignores damaged cache files', async () => {
    const context = await makeContext();
    const store = await Store.open(join(scratch, `store-${counter}`));
    const first = await ContextHasher.open(store, context);
    await first.operandDigest(await select(context), context);
    await first.save();
    const cacheDir = join(store.layout.cache, 'context');
    for (const file of await readdir(cacheDir)) await writeFile(join(cacheDir, file), '{"truncated');

    const operand = await select(context);
    const second = await ContextHasher.open(store, context);
    assert.equal(await second.operandDigest(operand, context), await expectedDigest(operand));
    assert.ok(second.bytesRead > 0);
  });
});

describe('walkCopySources', () => {
  it('hands a sink what selectCopySources keeps, hidden directories only above kept entries', async () => {
    const context = await makeContext();
    await mkdir(join(context, 'app', 'node_modules', 'dep', 'deeper'), { recursive: true });
    await writeFile(join(context, 'app', 'node_modules', 'dep', 'deeper', 'index.js'), '');
    await writeFile(join(context, 'app', 'node_modules', 'dep', 'package.json'), '{}');
    await mkdir(join(context, 'app', 'node_modules', 'other'));
    await writeFile(join(context, 'app', 'node_modules', 'other', 'x.js'), '');
    await writeFile(join(context, 'app', 'secret.env'), '');
    const ignore = new PatternMatcher([
      'app/node_modules',
      'app/*.env',
      '!app/node_modules/dep/package.json',
    ]);
    const options: SelectOptions = {
      root: context,
      sourceIsContext: true,
      sources: ['app'],
      ignore: (path) => ignore.matches(path),
      canSkipIgnoredDirectory: (path) => ignore.canSkipDirectory(path),
    };
    const [selected] = await selectCopySources(options);
    assert.ok(selected);
    assert.deepEqual(
      selected.entries.map((entry) => entry.relPath),
      [
        '',
        'entry.js',
        'lib',
        'lib/util.js',
        'main.js',
        'node_modules',
        'node_modules/dep',
        'node_modules/dep/package.json',
      ],
    );
    const handed: string[] = [];
    const fingerprint = new StatFingerprint();
    const walked = await walkCopySources(options, () => ({
      add: (entry) => {
        handed.push(entry.relPath);
        fingerprint.add(entry);
      },
    }));
    assert.deepEqual(
      handed,
      selected.entries.map((entry) => entry.relPath),
    );
    assert.deepEqual(walked[0]?.entries, []);
    assert.equal(fingerprint.digest(), statFingerprint(selected));
  });
});

describe('ContextHasher.remembered', () => {
  it('knows an unchanged operand from a walk alone, and nothing once a file changed', async () => {
    const context = await makeContext();
    const store = await Store.open(join(scratch, `store-${counter}`));
    const options: SelectOptions = { root: context, sourceIsContext: true, sources: ['app'] };
    const first = await ContextHasher.open(store, context);
    assert.equal(await first.remembered(options), undefined, 'a first build does not walk twice');
    const [operand] = await selectCopySources(options);
    assert.ok(operand);
    const digest = await first.operandDigest(operand, context);
    await first.save();

    const second = await ContextHasher.open(store, context);
    assert.deepEqual(await second.remembered(options), [
      { operand: 'app', isDirectory: true, fingerprint: statFingerprint(operand), entries: digest },
    ]);
    assert.equal(second.bytesRead, 0);

    await writeFile(join(context, 'app', 'main.js'), 'console.log(2)\n');
    assert.equal(await (await ContextHasher.open(store, context)).remembered(options), undefined);
  });
});
