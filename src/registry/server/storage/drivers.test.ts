import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join, relative, sep } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isStrataError } from '../../../errors.js';
import { deadPid } from '../../../store/testing/helpers.js';
import { describeDriverContract, readAll, walk } from './driver-contract.js';
import { FilesystemDriver, assertSafeStoragePath } from './filesystem.js';
import { MemoryDriver } from './memory.js';

describeDriverContract('MemoryDriver', async () => ({ driver: new MemoryDriver(), cleanup: async () => {} }));

describeDriverContract('FilesystemDriver', async () => {
  const sandbox = await makeSandbox();
  return { driver: await FilesystemDriver.open(sandbox.root), cleanup: sandbox.cleanup };
});

interface Sandbox {
  /** The directory that holds the driver's root, and nothing else. */
  outer: string;
  root: string;
  cleanup(): Promise<void>;
}

async function makeSandbox(): Promise<Sandbox> {
  const outer = await mkdtemp(join(tmpdir(), 'strata-registry-fs-'));
  return {
    outer,
    root: join(outer, 'root'),
    cleanup: () => rm(outer, { recursive: true, force: true }),
  };
}

async function withFilesystemDriver(work: (driver: FilesystemDriver, sandbox: Sandbox) => Promise<void>) {
  const sandbox = await makeSandbox();
  try {
    await work(await FilesystemDriver.open(sandbox.root), sandbox);
  } finally {
    await sandbox.cleanup();
  }
}

/** Every file and directory under `directory`, relative to it, dot-names included. */
async function diskTree(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true });
  return entries.map((entry) => entry.split(sep).join('/')).sort();
}

const CRAFTED_UNSAFE_PATHS = [
  '',
  '/',
  '/etc/passwd',
  '//server/share',
  '..',
  '../outside',
  'a/../../outside',
  'a/..',
  '.',
  './a',
  'a/./b',
  'a/.',
  'a//b',
  'a/',
  '.tmp',
  '.tmp/x',
  'repositories/.hidden/link',
  'a\\..\\..\\outside',
  '..\\outside',
  'a\0b',
  'blobs/sha256/ab\0/data',
  '\0',
];

type DriverOperation = (driver: FilesystemDriver, path: string) => Promise<unknown>;
const EVERY_OPERATION: Record<string, DriverOperation> = {
  getContent: (driver, path) => driver.getContent(path),
  putContent: (driver, path) => driver.putContent(path, Buffer.from('escaped')),
  reader: (driver, path) => driver.reader(path),
  writer: (driver, path) => driver.writer(path, { append: true }),
  freshWriter: (driver, path) => driver.writer(path, { append: false }),
  moveFrom: (driver, path) => driver.move(path, 'safe/target'),
  moveTo: (driver, path) => driver.move('safe/source', path),
  delete: (driver, path) => driver.delete(path),
  touch: (driver, path) => driver.touch(path),
  stat: (driver, path) => driver.stat(path),
  list: (driver, path) => driver.list(path),
};

/** The root itself ('') may be listed and stat-ed; every other operation refuses it. */
function refusable(operation: string, path: string): boolean {
  return !(path === '' && (operation === 'stat' || operation === 'list'));
}

function isUnsafePathError(err: unknown): boolean {
  return isStrataError(err, 'UNSAFE_PATH');
}

test('FilesystemDriver refuses every crafted unsafe path, in every operation, touching nothing', () =>
  withFilesystemDriver(async (driver, sandbox) => {
    await driver.putContent('safe/source', Buffer.from('source'));
    const before = await diskTree(sandbox.outer);
    for (const path of CRAFTED_UNSAFE_PATHS) {
      for (const [operation, run] of Object.entries(EVERY_OPERATION)) {
        if (!refusable(operation, path)) continue;
        await assert.rejects(run(driver, path), isUnsafePathError, `${operation}(${JSON.stringify(path)})`);
      }
    }
    assert.deepEqual(await diskTree(sandbox.outer), before);
    assert.equal(String(await driver.getContent('safe/source')), 'source');
    assert.deepEqual(await driver.list(''), ['safe']);
    assert.equal((await driver.stat(''))?.isDirectory, true);
  }));

test('FilesystemDriver refuses generated paths with any dangerous segment (property)', () =>
  withFilesystemDriver(async (driver, sandbox) => {
    await driver.putContent('safe/source', Buffer.from('source'));
    const before = await diskTree(sandbox.outer);
    const plainSegment = fc.stringMatching(/^[a-z0-9_][a-z0-9._-]{0,8}$/);
    const dangerousSegment = fc.oneof(
      fc.constantFrom('..', '.', '', '.tmp', '.x', '...'),
      fc
        .tuple(plainSegment, fc.constantFrom('\\', '\0', '\\..\\'), plainSegment)
        .map((parts) => parts.join('')),
    );
    const unsafePath = fc
      .tuple(
        fc.array(plainSegment, { maxLength: 3 }),
        dangerousSegment,
        fc.array(plainSegment, { maxLength: 3 }),
        fc.boolean(),
      )
      .map(([head, danger, tail, absolute]) => (absolute ? '/' : '') + [...head, danger, ...tail].join('/'));
    await fc.assert(
      fc.asyncProperty(
        unsafePath,
        fc.constantFrom(...Object.keys(EVERY_OPERATION)),
        async (path, operation) => {
          if (!refusable(operation, path)) return;
          await assert.rejects(EVERY_OPERATION[operation]!(driver, path), isUnsafePathError);
        },
      ),
      { numRuns: 400 },
    );
    assert.deepEqual(await diskTree(sandbox.outer), before);
  }));

test('FilesystemDriver: whatever path it accepts lands inside the root, at that path (property)', () =>
  withFilesystemDriver(async (driver, sandbox) => {
    const anyPath = fc.string({ unit: fc.constantFrom('a', 'b', '.', '/', '\\', '\0', ' '), maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(anyPath, async (path) => {
        let accepted = true;
        try {
          assertSafeStoragePath(path);
        } catch (err) {
          assert.ok(isStrataError(err, 'UNSAFE_PATH'));
          accepted = false;
        }
        if (!accepted) {
          await assert.rejects(driver.putContent(path, Buffer.from('x')), isUnsafePathError);
          return;
        }
        await driver.delete(path.split('/')[0]!);
        await driver.putContent(path, Buffer.from(path));
        const onDisk = join(sandbox.root, ...path.split('/'));
        assert.ok(!relative(sandbox.root, onDisk).startsWith('..'));
        assert.ok((await stat(onDisk)).isFile());
        assert.equal(String(await driver.getContent(path)), path);
        await driver.delete(path.split('/')[0]!);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(await readdir(sandbox.outer), ['root']);
  }));

test('FilesystemDriver keeps temp files out of the layout, and out of every listing', () =>
  withFilesystemDriver(async (driver, sandbox) => {
    const pending = await driver.writer('repositories/r/_uploads/u/data', { append: false });
    await pending.write(Buffer.alloc(10_000, 1));
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        driver.putContent(
          `repositories/r/_manifests/tags/t${index % 3}/current/link`,
          Buffer.from(`${index}`),
        ),
      ),
    );
    const resumed = await driver.writer('repositories/r/_uploads/v/data', { append: true });
    await resumed.write(Buffer.from('resumed upload'));
    await resumed.commit();

    const tempsOnDisk = (await readdir(join(sandbox.root, '.tmp'))).length;
    assert.equal(tempsOnDisk, 1, 'the uncommitted writer has its temp file');
    assert.deepEqual(await driver.list(''), ['repositories']);
    const listed = await walk(driver, '');
    assert.ok(listed.every((path) => !path.split('/').some((segment) => segment.startsWith('.'))));
    assert.deepEqual(
      (await diskTree(sandbox.root)).filter((path) => !path.startsWith('.tmp')),
      listed.slice().sort(),
      'the layout on disk is exactly what the listings show',
    );
    await pending.commit();
    assert.deepEqual(await readdir(join(sandbox.root, '.tmp')), []);
    assert.equal((await driver.stat('repositories/r/_uploads/u/data'))?.size, 10_000);
  }));

test('FilesystemDriver.open sweeps temp files of interrupted writes; they were never visible', async () => {
  const sandbox = await makeSandbox();
  try {
    const first = await FilesystemDriver.open(sandbox.root);
    await first.putContent('repositories/r/_manifests/tags/latest/current/link', Buffer.from('sha256:old'));
    const temps = join(sandbox.root, '.tmp');
    // A putContent that died between writing its temp file and renaming it, in a dead process…
    const deadWriter = join(temps, `.put.${await deadPid()}.0123456789ab.tmp`);
    await writeFile(deadWriter, 'sha256:new, never renamed');
    // …one of a live process that has been silent for two days (a hung writer, or a reused pid)…
    const staleLiveWriter = join(temps, `.write.${process.pid}.aaaaaaaaaaaa.tmp`);
    await writeFile(staleLiveWriter, 'partial upload');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600_000);
    await utimes(staleLiveWriter, twoDaysAgo, twoDaysAgo);
    // …and one a live writer is filling right now, which must survive.
    const activeWriter = join(temps, `.put.${process.pid}.bbbbbbbbbbbb.tmp`);
    await writeFile(activeWriter, 'in progress');

    assert.equal(
      String(await first.getContent('repositories/r/_manifests/tags/latest/current/link')),
      'sha256:old',
    );
    assert.deepEqual(await first.list(''), ['repositories']);

    const reopened = await FilesystemDriver.open(sandbox.root);
    assert.deepEqual(await readdir(temps), [`.put.${process.pid}.bbbbbbbbbbbb.tmp`]);
    assert.deepEqual(await reopened.sweepTemps({ olderThanMs: 0 }), { removed: 1, bytes: 11 });
    assert.deepEqual(await readdir(temps), []);
  } finally {
    await sandbox.cleanup();
  }
});

test('FilesystemDriver leaves no empty directories behind deletes and moves', () =>
  withFilesystemDriver(async (driver, sandbox) => {
    await driver.putContent('repositories/a/b/_uploads/u1/data', Buffer.from('upload'));
    await driver.putContent('repositories/a/b/_uploads/u1/state.json', Buffer.from('{}'));
    await driver.putContent('repositories/a/b/_layers/sha256/cd/link', Buffer.from('sha256:cd'));
    await driver.move('repositories/a/b/_uploads/u1/data', 'blobs/sha256/cd/cdcd/data');
    await driver.delete('repositories/a/b/_uploads/u1/state.json');
    assert.deepEqual(await diskTree(sandbox.root), [
      '.tmp',
      'blobs',
      'blobs/sha256',
      'blobs/sha256/cd',
      'blobs/sha256/cd/cdcd',
      'blobs/sha256/cd/cdcd/data',
      'repositories',
      'repositories/a',
      'repositories/a/b',
      'repositories/a/b/_layers',
      'repositories/a/b/_layers/sha256',
      'repositories/a/b/_layers/sha256/cd',
      'repositories/a/b/_layers/sha256/cd/link',
    ]);
    await driver.delete('blobs/sha256/cd/cdcd/data');
    await driver.delete('repositories/a/b/_layers/sha256/cd/link');
    assert.deepEqual(await diskTree(sandbox.root), ['.tmp'], 'the root and its temp directory stay');
  }));

test('FilesystemDriver: writes racing with deletes that prune their directory all succeed', () =>
  withFilesystemDriver(async (driver) => {
    // Each delete empties x/y/z and prunes it while other writers are between their mkdir and their
    // rename into it: the rename must retry, never fail.
    for (let round = 0; round < 60; round++) {
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, async (_, index) => {
          await driver.putContent(`x/y/z/f${index}`, Buffer.from(`${round}`));
          assert.equal(String(await driver.getContent(`x/y/z/f${index}`)), `${round}`);
          await driver.delete(`x/y/z/f${index}`);
        }),
      );
      assert.deepEqual(
        results.filter((result) => result.status === 'rejected'),
        [],
      );
    }
    assert.deepEqual(await driver.list(''), []);
  }));

test('FilesystemDriver: an upload continues after a restart (a new driver on the same root)', async () => {
  const sandbox = await makeSandbox();
  try {
    const before = await FilesystemDriver.open(sandbox.root);
    const writer = await before.writer('repositories/r/_uploads/u/data', { append: true });
    await writer.write(Buffer.from('first chunk|'));
    await writer.commit();
    const after = await FilesystemDriver.open(sandbox.root);
    const resumed = await after.writer('repositories/r/_uploads/u/data', { append: true });
    assert.equal(resumed.size, 12);
    await resumed.write(Buffer.from('second chunk'));
    await resumed.commit();
    assert.equal(
      String(await readAll(await after.reader('repositories/r/_uploads/u/data'))),
      'first chunk|second chunk',
    );
    await assert.rejects(resumed.write(Buffer.from('late')), /writer committed/);
  } finally {
    await sandbox.cleanup();
  }
});

test('FilesystemDriver refuses invalid reader ranges', () =>
  withFilesystemDriver(async (driver) => {
    await driver.putContent('object', Buffer.from('0123456789'));
    await assert.rejects(driver.reader('object', { offset: -1 }), (err) =>
      isStrataError(err, 'INVALID_ARGUMENT'),
    );
    await assert.rejects(driver.reader('object', { end: 1.5 }), (err) =>
      isStrataError(err, 'INVALID_ARGUMENT'),
    );
  }));

test('FilesystemDriver constructed directly (no open) creates its root and temp directory on first write', async () => {
  const sandbox = await makeSandbox();
  try {
    const driver = new FilesystemDriver(sandbox.root);
    assert.deepEqual(await driver.list(''), []);
    await driver.putContent('a/b', Buffer.from('ok'));
    assert.equal(String(await driver.getContent('a/b')), 'ok');
    assert.deepEqual(await diskTree(sandbox.root), ['.tmp', 'a', 'a/b']);
    await mkdir(join(sandbox.root, 'empty-by-hand'));
    assert.deepEqual(
      (await driver.stat('empty-by-hand'))?.isDirectory,
      true,
      'listed prefixes stat as present',
    );
  } finally {
    await sandbox.cleanup();
  }
});

/**
 * A destination that takes each chunk's bytes only when it gets to it, as a socket does when the
 * kernel accepts them: with `holdMs`, chunks queue up behind a slow one (a high-water mark big
 * enough that copyTo keeps writing), so a buffer that copyTo read into again before its write
 * callback shows up as corrupted output, and as a chunk changed while it was being taken.
 */
function slowSink(options: { holdMs?: number } = {}): Writable & { bytes(): Buffer; reusedEarly: number } {
  const chunks: Buffer[] = [];
  const sink = Object.assign(
    new Writable({
      highWaterMark: 64 * 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        const copy = Buffer.from(chunk);
        chunks.push(copy);
        if (options.holdMs === undefined) return callback();
        setTimeout(() => {
          if (!chunk.equals(copy)) sink.reusedEarly++;
          callback();
        }, options.holdMs);
      },
    }),
    { bytes: () => Buffer.concat(chunks), reusedEarly: 0 },
  );
  return sink;
}

test('FilesystemDriver.copyTo: whole objects and ranges through reused buffers; a closed destination stops it', async () => {
  await withFilesystemDriver(async (driver) => {
    // 9 MiB + 3: more 2 MiB chunks than copyTo has buffers, and a short last one.
    const data = randomBytes(9 * 1024 * 1024 + 3);
    await driver.putContent('blobs/big', data);
    const copy = async (offset: number, end: number, holdMs?: number): Promise<Buffer> => {
      const sink = slowSink(holdMs === undefined ? {} : { holdMs });
      await driver.copyTo('blobs/big', { offset, end }, sink);
      await new Promise((resolve) => sink.end(resolve));
      assert.equal(sink.reusedEarly, 0, 'a buffer was read into before its write callback');
      return sink.bytes();
    };
    assert.ok((await copy(0, data.length)).equals(data));
    assert.ok((await copy(0, data.length, 5)).equals(data), 'a slow destination gets every byte intact');
    assert.ok((await copy(1_000_000, 8_500_000)).equals(data.subarray(1_000_000, 8_500_000)));
    assert.ok((await copy(3, 2 * 1024 * 1024 + 5)).equals(data.subarray(3, 2 * 1024 * 1024 + 5)));
    assert.ok((await copy(5, 8)).equals(data.subarray(5, 8)));
    assert.equal((await copy(7, 7)).length, 0);
    await assert.rejects(copy(0, data.length + 1), /shorter than expected/);
    await assert.rejects(
      driver.copyTo('blobs/absent', { offset: 0, end: 1 }, slowSink()),
      (err: unknown) => errnoCodeOf(err) === 'ENOENT',
    );

    // A consumer that goes away mid-copy: the copy rejects instead of waiting forever.
    const slow = slowSink({ holdMs: 50 });
    const copying = driver.copyTo('blobs/big', { offset: 0, end: data.length }, slow);
    setTimeout(() => slow.destroy(), 20);
    await assert.rejects(copying, /closed before the copy finished/);
    // One that fails: its error is the copy's.
    const failing = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk on fire'));
      },
    });
    failing.on('error', () => undefined);
    await assert.rejects(
      driver.copyTo('blobs/big', { offset: 0, end: data.length }, failing),
      /disk on fire/,
    );
  });
});

function errnoCodeOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}
