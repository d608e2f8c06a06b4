import assert from 'node:assert/strict';
import { link, mkdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isStrataError } from '../errors.js';
import { readTar } from './tar-reader.js';
import {
  FileBody,
  TarWriter,
  createTarFromDirectory,
  encodeHeader,
  walkDirectory,
  splitDevice,
  writeEntries,
  type TarHeader,
  type TarWriterEntry,
} from './tar-writer.js';
import { collect, hasCommand, isRoot, rawHeaders, sh, sha256, tempDir } from './testing/helpers.js';

const hasAttr = hasCommand('getfattr') && hasCommand('setfattr');

async function headersOf(archive: Buffer): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const entry of readTar(Readable.from([archive]))) out.push(entry.header);
  return out;
}

async function buildTree(root: string): Promise<void> {
  await mkdir(join(root, 'etc/conf.d'), { recursive: true });
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'a-b'));
  await writeFile(join(root, 'etc/hostname'), 'box\n');
  await writeFile(join(root, 'etc/conf.d/x.conf'), 'x=1\n');
  await writeFile(join(root, 'a.txt'), 'a');
  await writeFile(join(root, 'a0'), '');
  await writeFile(join(root, 'usr/bin/tool'), Buffer.alloc(100_000, 7), { mode: 0o755 });
  await link(join(root, 'usr/bin/tool'), join(root, 'usr/bin/tool-alias'));
  await symlink('../etc/hostname', join(root, 'usr/hostname-link'));
  const when = new Date('2020-01-02T03:04:05.678Z');
  for (const p of [
    'etc/hostname',
    'etc/conf.d/x.conf',
    'a.txt',
    'a0',
    'usr/bin/tool',
    'etc/conf.d',
    'etc',
    'usr/bin',
    'usr',
    'a-b',
  ]) {
    await utimes(join(root, p), when, when);
  }
}

describe('createTarFromDirectory', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let tree: string;
  before(async () => {
    dir = await tempDir();
    tree = join(dir.path, 'tree');
    await mkdir(tree);
    await buildTree(tree);
  });
  after(() => dir.cleanup());

  it('gives byte-identical output for the same tree, also after atime changes', async () => {
    const first = await collect(createTarFromDirectory(tree));
    const second = await collect(createTarFromDirectory(tree));
    assert.equal(sha256(first), sha256(second));
    assert.ok(first.equals(second));
    // Reading files and touching atime must not change anything.
    const st = await stat(join(tree, 'a.txt'));
    await utimes(join(tree, 'a.txt'), new Date('2001-01-01'), st.mtime);
    const third = await collect(createTarFromDirectory(tree));
    assert.ok(first.equals(third));
    assert.equal(first.length % 512, 0);
  });

  it('sorts entries bytewise by tar name, parents before children, no ./ prefix', async () => {
    const headers = await headersOf(await collect(createTarFromDirectory(tree)));
    const tarNames = headers.map((h) => (h.type === 'directory' ? `${h.name}/` : h.name));
    const sorted = [...tarNames].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(tarNames, sorted);
    assert.deepEqual(tarNames.slice(0, 4), ['a-b/', 'a.txt', 'a0', 'etc/']);
    for (const name of tarNames) assert.ok(!name.startsWith('./') && !name.startsWith('/'));
  });

  it('writes ustar only (no PAX), no uname/gname, whole-second mtimes for a plain tree', async () => {
    const archive = await collect(createTarFromDirectory(tree, { xattrs: false }));
    const raw = rawHeaders(archive);
    assert.ok(raw.length > 5);
    for (const { typeflag, block } of raw) {
      assert.notEqual(typeflag, 'x');
      assert.equal(block.subarray(257, 265).toString('latin1'), 'ustar\u000000');
      assert.ok(
        block.subarray(265, 329).every((b) => b === 0),
        'uname/gname empty',
      );
    }
    const hostname = (await headersOf(archive)).find((h) => h.name === 'etc/hostname');
    assert.equal(hostname?.mtime.toISOString(), '2020-01-02T03:04:05.000Z');
  });

  it('turns second and later paths of an inode into hard links to the first', async () => {
    const headers = await headersOf(await collect(createTarFromDirectory(tree)));
    const tool = headers.find((h) => h.name === 'usr/bin/tool');
    const alias = headers.find((h) => h.name === 'usr/bin/tool-alias');
    assert.equal(tool?.type, 'file');
    assert.equal(tool?.size, 100_000);
    assert.equal(alias?.type, 'link');
    assert.equal(alias?.linkname, 'usr/bin/tool');
    assert.equal(alias?.size, 0);
    const sl = headers.find((h) => h.name === 'usr/hostname-link');
    assert.equal(sl?.type, 'symlink');
    assert.equal(sl?.linkname, '../etc/hostname');
  });

  it('clamps mtimes to options.mtime and keeps older ones', async () => {
    const clamp = new Date('2021-06-01T00:00:00Z');
    const sub = join(dir.path, 'clamp');
    await mkdir(sub);
    await writeFile(join(sub, 'new'), 'n');
    await writeFile(join(sub, 'old'), 'o');
    await utimes(join(sub, 'old'), new Date('2000-01-01'), new Date('2000-01-01T00:00:00Z'));
    const headers = await headersOf(await collect(createTarFromDirectory(sub, { mtime: clamp })));
    assert.equal(headers.find((h) => h.name === 'new')?.mtime.toISOString(), clamp.toISOString());
    assert.equal(headers.find((h) => h.name === 'old')?.mtime.toISOString(), '2000-01-01T00:00:00.000Z');
  });

  it('leaves out filtered paths with their subtrees', async () => {
    const headers = await headersOf(
      await collect(createTarFromDirectory(tree, { filter: (p) => p !== 'etc' })),
    );
    assert.ok(headers.every((h) => !h.name.startsWith('etc')));
    assert.ok(headers.some((h) => h.name === 'usr/bin/tool'));
  });

  it('uses a ustar prefix for long splittable names and PAX only for unsplittable ones', async () => {
    const sub = join(dir.path, 'long');
    const deep = join(sub, 'd'.repeat(90), 'e'.repeat(40));
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'f'.repeat(90)), 'x');
    await writeFile(join(sub, 'g'.repeat(150)), 'y');
    const archive = await collect(createTarFromDirectory(sub, { xattrs: false }));
    const raw = rawHeaders(archive);
    const pax = raw.filter((r) => r.typeflag === 'x');
    assert.equal(pax.length, 1, 'only the 150-byte file name needs PAX');
    const names = (await headersOf(archive)).map((h) => h.name);
    assert.ok(names.includes(`${'d'.repeat(90)}/${'e'.repeat(40)}/${'f'.repeat(90)}`));
    assert.ok(names.includes('g'.repeat(150)));
    if (hasCommand('tar')) {
      const listed = sh('tar', ['-tf', '-'], archive).toString().trim().split('\n');
      assert.ok(listed.includes('g'.repeat(150)));
      assert.ok(listed.includes(`${'d'.repeat(90)}/${'e'.repeat(40)}/${'f'.repeat(90)}`));
    }
  });

  it('archives device nodes and fifos', { skip: !isRoot && 'needs root for mknod' }, async () => {
    const sub = join(dir.path, 'dev');
    await mkdir(sub);
    sh('mknod', [join(sub, 'null'), 'c', '1', '3']);
    sh('mknod', [join(sub, 'loop'), 'b', '7', '300']);
    sh('mkfifo', [join(sub, 'pipe')]);
    const headers = await headersOf(await collect(createTarFromDirectory(sub)));
    assert.deepEqual(
      headers.map((h) => [h.name, h.type, h.devmajor, h.devminor]),
      [
        ['loop', 'block-device', 7, 300],
        ['null', 'char-device', 1, 3],
        ['pipe', 'fifo', 0, 0],
      ],
    );
  });

  it(
    'records xattrs as binary-safe PAX SCHILY.xattr records',
    { skip: !hasAttr && 'needs getfattr' },
    async () => {
      const sub = join(dir.path, 'xattr');
      await mkdir(sub);
      await writeFile(join(sub, 'f'), 'x');
      sh('setfattr', ['-n', 'user.bin', '-v', '0x00ff0a3d', join(sub, 'f')]);
      sh('setfattr', ['-n', 'user.text', '-v', 'hello', join(sub, 'f')]);
      const archive = await collect(createTarFromDirectory(sub));
      assert.equal(rawHeaders(archive).filter((r) => r.typeflag === 'x').length, 1);
      const [header] = await headersOf(archive);
      assert.deepEqual(header?.xattrs.get('user.bin'), Buffer.from([0x00, 0xff, 0x0a, 0x3d]));
      assert.deepEqual(header?.xattrs.get('user.text'), Buffer.from('hello'));
      const without = await headersOf(await collect(createTarFromDirectory(sub, { xattrs: false })));
      assert.equal(without[0]?.xattrs.size, 0);
    },
  );

  it('refuses names that are not UTF-8 rather than change them', async () => {
    const sub = join(dir.path, 'latin1');
    await mkdir(sub);
    await writeFile(Buffer.from(`${sub}/caf\xe9`, 'latin1'), 'x');
    await assert.rejects(
      collect(createTarFromDirectory(sub)),
      (e) => isStrataError(e, 'UNSUPPORTED') && /not valid UTF-8/.test(e.message),
    );
  });

  it('refuses a missing root and a root that is a file', async () => {
    const vanishing = join(dir.path, 'vanishing');
    await mkdir(vanishing);
    await writeFile(join(vanishing, 'f'), 'soon gone');
    const entries = walkDirectory(vanishing);
    const first = await entries.next();
    assert.equal(first.done, false);
    await rm(join(vanishing, 'f'));
    const entry = first.value as TarWriterEntry;
    assert.ok(entry.body instanceof FileBody);
    await assert.rejects(
      collect(writeEntries([entry])),
      (e) => isStrataError(e, 'CONFLICT') && /"f"/.test(e.message),
    );
    await assert.rejects(collect(createTarFromDirectory(join(dir.path, 'nope'))), (e) =>
      isStrataError(e, 'NOT_FOUND'),
    );
    await assert.rejects(collect(createTarFromDirectory(join(tree, 'a.txt'))), (e) =>
      isStrataError(e, 'INVALID_ARGUMENT'),
    );
  });
});

describe('createTarFromDirectory overlay-to-oci', () => {
  const canRun = isRoot && hasAttr;

  it(
    'converts 0/0 devices and opaque xattrs into OCI whiteouts',
    { skip: !canRun && 'needs root and attr' },
    async () => {
      const dir = await tempDir();
      try {
        const upper = join(dir.path, 'upper');
        await mkdir(join(upper, 'opaque/kept'), { recursive: true });
        await mkdir(join(upper, 'sub'), { recursive: true });
        sh('mknod', [join(upper, 'gone'), 'c', '0', '0']);
        // overlayfs shares one whiteout inode between paths: they must not become hard links.
        await link(join(upper, 'gone'), join(upper, 'sub/gone-too'));
        sh('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'opaque')]);
        sh('setfattr', ['-n', 'trusted.overlay.impure', '-v', 'y', upper]);
        await writeFile(join(upper, 'opaque/kept/file'), 'k');
        const archive = await collect(createTarFromDirectory(upper, { whiteouts: 'overlay-to-oci' }));
        const headers = await headersOf(archive);
        assert.deepEqual(
          headers.map((h) => [h.name, h.type]),
          [
            ['.wh.gone', 'file'],
            ['opaque', 'directory'],
            ['opaque/.wh..wh..opq', 'file'],
            ['opaque/kept', 'directory'],
            ['opaque/kept/file', 'file'],
            ['sub', 'directory'],
            ['sub/.wh.gone-too', 'file'],
          ],
        );
        for (const h of headers) assert.ok(![...h.xattrs.keys()].some((k) => k.includes('overlay')));
        // 'none' keeps them as devices.
        const plain = await headersOf(await collect(createTarFromDirectory(upper)));
        assert.equal(plain.find((h) => h.name === 'gone')?.type, 'char-device');
      } finally {
        await dir.cleanup();
      }
    },
  );

  it('works on a real overlayfs upper dir', { skip: !canRun && 'needs root and attr' }, async (t) => {
    const dir = await tempDir();
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((p) =>
      join(dir.path, p),
    ) as [string, string, string, string];
    try {
      for (const p of [lower, upper, work, merged]) await mkdir(p);
      await mkdir(join(lower, 'd'));
      await writeFile(join(lower, 'd/old'), 'old');
      await writeFile(join(lower, 'f'), 'f');
      await writeFile(join(lower, 'g'), 'g');
      try {
        sh('mount', [
          '-t',
          'overlay',
          'overlay',
          '-o',
          `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
          merged,
        ]);
      } catch {
        t.skip('overlay mount not available');
        return;
      }
      try {
        sh('rm', ['-rf', join(merged, 'f'), join(merged, 'g'), join(merged, 'd')]);
        await mkdir(join(merged, 'd'));
        await writeFile(join(merged, 'd/new'), 'new');
      } finally {
        sh('umount', [merged]);
      }
      const headers = await headersOf(
        await collect(createTarFromDirectory(upper, { whiteouts: 'overlay-to-oci' })),
      );
      const names = headers.map((h) => h.name);
      assert.deepEqual(names, ['.wh.f', '.wh.g', 'd', 'd/.wh..wh..opq', 'd/new']);
      assert.ok(headers.every((h) => h.type === 'file' || h.type === 'directory'));
    } finally {
      await dir.cleanup();
    }
  });

  it(
    'refuses real files named .wh.* (they cannot be told from whiteouts)',
    { skip: !hasAttr && 'needs attr' },
    async () => {
      const dir = await tempDir();
      try {
        await writeFile(join(dir.path, '.wh.sneaky'), '');
        await assert.rejects(
          collect(createTarFromDirectory(dir.path, { whiteouts: 'overlay-to-oci' })),
          (e) => isStrataError(e, 'UNSUPPORTED'),
        );
      } finally {
        await dir.cleanup();
      }
    },
  );
});

describe('writeEntries / encodeHeader', () => {
  it('writes PAX records for big ids, sizes and out-of-range mtimes only', async () => {
    const big = encodeHeader({ name: 'f', type: 'file', size: 9 * 1024 ** 3, uid: 3_000_000, gid: 5 });
    const text = big.toString('latin1');
    assert.match(text, /size=9663676416\n/);
    assert.match(text, /uid=3000000\n/);
    assert.doesNotMatch(text, /gid=/);
    const old = encodeHeader({ name: 'f', type: 'file', mtime: new Date('1960-01-01T00:00:00Z') });
    assert.match(old.toString('latin1'), /mtime=-315619200\n/);
    assert.equal(encodeHeader({ name: 'f', type: 'file' }).length, 512);
  });

  it('round-trips big uids through the reader and GNU tar', async () => {
    const archive = await collect(
      writeEntries([
        {
          header: { name: 'f', type: 'file', uid: 3_000_000, gid: 4_000_000, size: 2 },
          body: Buffer.from('hi'),
        },
      ]),
    );
    const [h] = await headersOf(archive);
    assert.equal(h?.uid, 3_000_000);
    assert.equal(h?.gid, 4_000_000);
    if (hasCommand('tar'))
      assert.match(sh('tar', ['--numeric-owner', '-tvf', '-'], archive).toString(), /3000000\/4000000/);
  });

  it('truncates mtimes to whole seconds (towards −∞)', async () => {
    const archive = await collect(
      writeEntries([
        { header: { name: 'a', type: 'file', mtime: new Date(1_700_000_000_999) } },
        { header: { name: 'b', type: 'file', mtime: new Date(-1500) } },
      ]),
    );
    const [a, b] = await headersOf(archive);
    assert.equal(a?.mtime.getTime(), 1_700_000_000_000);
    assert.equal(b?.mtime.getTime(), -2000);
  });

  it('refuses unclean names, bodies that do not match the size, bodies on non-files', async () => {
    for (const name of ['', '/abs', 'a/../b', './a', 'a//b', '..']) {
      assert.throws(
        () => encodeHeader({ name, type: 'file' }),
        (e) => isStrataError(e, 'INVALID_ARGUMENT'),
        name,
      );
    }
    assert.equal(encodeHeader({ name: 'dir/', type: 'directory' }).subarray(0, 5).toString(), 'dir/\0');
    assert.equal(encodeHeader({ name: '.', type: 'directory' }).subarray(0, 3).toString(), './\0');
    const tooLong: TarWriterEntry[] = [
      { header: { name: 'f', type: 'file', size: 1 }, body: Buffer.from('ab') },
    ];
    await assert.rejects(collect(writeEntries(tooLong)), /larger than the declared 1 bytes/);
    const tooShort: TarWriterEntry[] = [
      { header: { name: 'f', type: 'file', size: 3 }, body: Buffer.from('ab') },
    ];
    await assert.rejects(collect(writeEntries(tooShort)), /body has 2 bytes, the header declares 3/);
    assert.throws(() => encodeHeader({ name: 'd', type: 'directory', size: 3 }), /cannot have a body/);
    assert.throws(() => encodeHeader({ name: 'l', type: 'link', linkname: '../x' }), /clean relative/);
  });

  it('opens lazy bodies only when their entry is written', async () => {
    const opened: string[] = [];
    const entries = (function* (): Generator<TarWriterEntry> {
      for (const name of ['a', 'b']) {
        yield {
          header: { name, type: 'file', size: 1 },
          body: () => {
            opened.push(name);
            return Readable.from([Buffer.from(name)]);
          },
        };
      }
    })();
    const archive = await collect(writeEntries(entries));
    assert.deepEqual(opened, ['a', 'b']);
    assert.deepEqual(
      (await headersOf(archive)).map((h) => h.name),
      ['a', 'b'],
    );
  });
});

describe('TarWriter', () => {
  it('writes pushed entries in order and ends on finish()', async () => {
    const writer = new TarWriter();
    const output = collect(writer.stream);
    await writer.add({ name: 'dir', type: 'directory' });
    await writer.add(
      { name: 'dir/file', type: 'file', size: 5 },
      Readable.from([Buffer.from('hel'), Buffer.from('lo')]),
    );
    await writer.add({ name: 'dir/link', type: 'symlink', linkname: 'file' });
    writer.finish();
    const archive = await output;
    const entries: Array<[string, string]> = [];
    for await (const entry of readTar(Readable.from([archive]))) {
      entries.push([entry.header.name, (await collect(entry.body)).toString()]);
    }
    assert.deepEqual(entries, [
      ['dir', ''],
      ['dir/file', 'hello'],
      ['dir/link', ''],
    ]);
  });

  it('rejects invalid headers from add() and adds after finish()', async () => {
    const writer = new TarWriter();
    const output = collect(writer.stream);
    await assert.rejects(writer.add({ name: '../x', type: 'file' }), (e) =>
      isStrataError(e, 'INVALID_ARGUMENT'),
    );
    writer.finish();
    await assert.rejects(writer.add({ name: 'late', type: 'file' }), /after the tar writer was finished/);
    assert.equal((await output).length, 1024);
  });
});

describe('splitDevice', () => {
  it('decodes glibc dev_t', () => {
    assert.deepEqual(splitDevice(0x0103n), { major: 1, minor: 3 });
    assert.deepEqual(splitDevice((259n << 8n) | 0x12n | (0x34500n << 12n)), { major: 259, minor: 0x34512 });
  });
});
