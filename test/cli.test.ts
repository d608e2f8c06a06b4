import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxStore, mustRun, strata, strataOk, tempDir } from './helpers/cli.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function assertOneLineError(result: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace for a user mistake');
}

describe('strata image commands (real CLI, real store)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let rootfsTar: string;

  before(async () => {
    dir = await tempDir('cli');
    ({ root, rootfsTar } = await busyboxStore(dir.path));
  });
  after(() => dir?.cleanup());

  test('images lists busybox with docker columns', async () => {
    const { stdout } = await strataOk(root, ['images']);
    const [header, row] = stdout.trimEnd().split('\n');
    assert.match(header ?? '', /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    assert.match(row ?? '', /^busybox\s+latest\s+[0-9a-f]{12}\s+\S.*ago\s+\d+(\.\d+)?MB$/);
    const quiet = await strataOk(root, ['images', '-q']);
    assert.match(quiet.stdout, /^[0-9a-f]{12}\n$/);
  });

  test('tag, inspect --format, images filters and rmi', async () => {
    await strataOk(root, ['tag', 'busybox', 'localhost:5000/team/bb:v1']);
    const names = (
      await strataOk(root, ['inspect', '--format', '{{range .RepoTags}}{{.}} {{end}}', 'busybox'])
    ).stdout;
    assert.equal(names.trim(), 'busybox:latest localhost:5000/team/bb:v1');
    const filtered = await strataOk(root, [
      'images',
      '--format',
      '{{.Repository}}:{{.Tag}}',
      '--filter',
      'reference=localhost:5000/*/*',
    ]);
    assert.equal(filtered.stdout, 'localhost:5000/team/bb:v1\n');
    const removed = await strataOk(root, ['rmi', 'localhost:5000/team/bb:v1']);
    assert.equal(removed.stdout, 'Untagged: localhost:5000/team/bb:v1\n');
    const id = (await strataOk(root, ['inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    assert.equal((await strataOk(root, ['inspect', '-f', '{{.Id}}', id.slice(7, 19)])).stdout.trim(), id);
  });

  test('inspect prints dockerd-shaped JSON', async () => {
    const [image] = JSON.parse((await strataOk(root, ['image', 'inspect', 'busybox'])).stdout) as Array<
      Record<string, unknown>
    >;
    assert.ok(image);
    assert.deepEqual(image.RepoTags, ['busybox:latest']);
    assert.equal((image.Config as { Cmd: string[] }).Cmd[0], 'sh');
    assert.equal((image.RootFS as { Type: string }).Type, 'layers');
    assert.equal(typeof image.Size, 'number');
  });

  test('history shows the import layer', async () => {
    const { stdout } = await strataOk(root, ['history', 'busybox']);
    const lines = stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1] ?? '', /busybox from Debian busybox-static/);
    const raw = await strataOk(root, ['history', '-H=false', '--format', '{{.Size}}', 'busybox']);
    assert.match(raw.stdout, /^\d+\n$/);
  });

  test('save is deterministic and load restores a removed image', async () => {
    const first = join(dir.path, 'one.tar');
    const second = join(dir.path, 'two.tar');
    await strataOk(root, ['save', '-o', first, 'busybox']);
    await strataOk(root, ['save', '-o', second, 'busybox']);
    assert.equal(sha256(await readFile(first)), sha256(await readFile(second)));
    const ociOne = await strataOk(root, ['save', '--format', 'oci', 'busybox']);
    const ociTwo = await strataOk(root, ['save', '--format', 'oci', 'busybox']);
    assert.equal(sha256(ociOne.stdoutBytes), sha256(ociTwo.stdoutBytes));

    const other = join(dir.path, 'other-store');
    const loaded = await strataOk(other, ['load', '-i', first]);
    assert.equal(loaded.stdout, 'Loaded image: busybox:latest\n');
    const ids = await Promise.all(
      [root, other].map(
        async (r) =>
          (await strataOk(r, ['inspect', '-f', '{{.Id}} {{.Descriptor.digest}}', 'busybox'])).stdout,
      ),
    );
    assert.equal(ids[0], ids[1], 'image ID and manifest digest survive save/load');
    const resaved = join(dir.path, 'three.tar');
    await strataOk(other, ['save', '-o', resaved, 'busybox']);
    assert.equal(
      sha256(await readFile(resaved)),
      sha256(await readFile(first)),
      'save(load(save(x))) == save(x)',
    );
  });

  test('load from stdin, gzip-compressed', async () => {
    const archive = join(dir.path, 'gz.tar');
    await strataOk(root, ['save', '-o', archive, 'busybox']);
    await mustRun('gzip', ['-k', archive]);
    const other = join(dir.path, 'gz-store');
    const loaded = await strataOk(other, ['load'], { input: await readFile(`${archive}.gz`) });
    assert.equal(loaded.stdout, 'Loaded image: busybox:latest\n');
  });

  test('import with --change and export round-trip the filesystem', async () => {
    const imported = await strataOk(root, [
      'import',
      '-c',
      'ENV A=1',
      '-c',
      'ENTRYPOINT ["/bin/sh", "-c"]',
      '-c',
      'EXPOSE 8080',
      '-m',
      'hello',
      rootfsTar,
      'imported:1',
    ]);
    assert.match(imported.stdout, /^sha256:[0-9a-f]{64}\n$/);
    const config = JSON.parse(
      (await strataOk(root, ['inspect', '-f', '{{json .Config}}', 'imported:1'])).stdout,
    ) as {
      Env: string[];
      Entrypoint: string[];
      ExposedPorts: Record<string, object>;
    };
    assert.deepEqual(config.Env, ['A=1']);
    assert.deepEqual(config.Entrypoint, ['/bin/sh', '-c']);
    assert.deepEqual(Object.keys(config.ExposedPorts), ['8080/tcp']);
    const exported = join(dir.path, 'exported.tar');
    await strataOk(root, ['export', '-o', exported, 'imported:1']);
    // Same entries with the same modes, owners, sizes and times (names compared without "./").
    const list = async (file: string) =>
      (await mustRun('tar', ['--numeric-owner', '-tvf', file])).stdout
        .split('\n')
        .map((line) => line.replace(/ \.\//g, ' ').replace(/\/$/, ''))
        .filter((line) => line !== '' && !/ \.$/.test(line))
        .sort()
        .join('\n');
    assert.equal(await list(exported), await list(rootfsTar));
  });

  test('image prune removes dangling images and their blobs', async () => {
    const pruneRoot = join(dir.path, 'prune-store');
    await strataOk(pruneRoot, ['import', rootfsTar, 'first:1']);
    await strataOk(pruneRoot, ['import', '-c', 'USER nobody', rootfsTar, 'first:1']);
    const dangling = await strataOk(pruneRoot, ['images', '--filter', 'dangling=true', '-q']);
    assert.equal(dangling.stdout.trim().split('\n').length, 1, 'retagging leaves the old image dangling');
    const refused = await strataOk(pruneRoot, ['image', 'prune']);
    assert.match(refused.stdout, /Are you sure/);
    assert.equal(
      (await strataOk(pruneRoot, ['images', '-q'])).stdout.trim().split('\n').length,
      2,
      'no answer → nothing removed',
    );
    const pruned = await strataOk(pruneRoot, ['image', 'prune', '-f']);
    assert.match(pruned.stdout, /deleted: sha256:[0-9a-f]{64}/);
    assert.match(pruned.stdout, /Total reclaimed space: \d/);
    assert.equal((await strataOk(pruneRoot, ['images', '-q'])).stdout.trim().split('\n').length, 1);
    await strataOk(pruneRoot, ['rmi', 'first:1']);
    const blobs = await readdir(join(pruneRoot, 'blobs', 'sha256'));
    assert.deepEqual(blobs, [], 'removing the last image leaves no blobs');
  });

  test('user mistakes: one clear line, non-zero exit, nothing half-written', async () => {
    assertOneLineError(await strata(root, ['inspect', 'nosuch']), /^Error: No such image: nosuch$/m);
    assertOneLineError(
      await strata(root, ['tag', 'busybox', 'Upper/Case']),
      /invalid reference "Upper\/Case": .*lowercase/,
    );
    assertOneLineError(
      await strata(root, ['import', '-c', 'RUN echo', rootfsTar]),
      /invalid --change "RUN echo"/,
    );
    const target = join(dir.path, 'missing-dir', 'x.tar');
    assertOneLineError(await strata(root, ['save', '-o', target, 'busybox']), /Error: /);
    assert.equal(existsSync(target), false);
    const garbage = join(dir.path, 'garbage.tar');
    await writeFile(garbage, Buffer.alloc(4096, 7));
    const before = (await strataOk(root, ['images', '-q'])).stdout;
    assertOneLineError(await strata(root, ['load', '-i', garbage]), /Error: .*(tar|archive)/i);
    assert.equal((await strataOk(root, ['images', '-q'])).stdout, before);
    const blobsBefore = await readdir(join(root, 'blobs', 'sha256'));
    assertOneLineError(await strata(root, ['import', garbage, 'junk:1']), /not a valid tar archive/);
    assert.deepEqual(
      await readdir(join(root, 'blobs', 'sha256')),
      blobsBefore,
      'a refused import leaves no blob',
    );
    const unknown = await strata(root, ['images', '--bogus']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
  });

  test('an archive whose blob does not match its digest is refused and names nothing', async () => {
    const layout = join(dir.path, 'tamper-layout');
    await strataOk(root, ['save', '--format', 'oci', '-o', `${layout}/`, 'busybox']);
    const blobs = join(layout, 'blobs', 'sha256');
    const largest = (
      await Promise.all(
        (await readdir(blobs)).map(async (name) => ({
          name,
          size: (await readFile(join(blobs, name))).length,
        })),
      )
    ).sort((a, b) => b.size - a.size)[0]!.name;
    const bytes = await readFile(join(blobs, largest));
    bytes.writeUInt8((bytes.at(-1) as number) ^ 1, bytes.length - 1);
    await writeFile(join(blobs, largest), bytes);
    const victim = join(dir.path, 'tamper-store');
    const result = await strata(victim, ['load', '-i', layout]);
    assertOneLineError(result, new RegExp(`blobs/sha256/${largest}.*does not match its digest`));
    assert.equal((await strataOk(victim, ['images', '-q'])).stdout, '');
    assert.equal(existsSync(join(victim, 'blobs', 'sha256', largest)), false);
  });

  test('--help on every command', async () => {
    for (const command of [
      [],
      ['images'],
      ['image', 'ls'],
      ['save'],
      ['load'],
      ['import'],
      ['export'],
      ['history'],
      ['system', 'df'],
      ['system', 'prune'],
      ['image', 'prune'],
      ['rmi'],
      ['tag'],
      ['inspect'],
      ['build'],
      ['builder', 'prune'],
      ['dockerfile', 'parse'],
      ['pull'],
      ['push'],
      ['login'],
      ['logout'],
      ['lint'],
      ['--root', root, 'build'],
    ]) {
      const result = await strataOk(root, [...command, '--help']);
      assert.match(result.stdout, /Usage: strata/, command.join(' '));
    }
    // Command groups load lazily; the top-level help still lists every one of them.
    const top = await strataOk(root, ['--help']);
    for (const name of [
      'images',
      'build',
      'builder',
      'dockerfile',
      'pull',
      'push',
      'login',
      'lint',
      'system',
    ]) {
      assert.match(top.stdout, new RegExp(`^ {2}${name}\\b`, 'm'), name);
    }
    const unknown = await strata(root, ['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  test("push --compression-level takes an integer in the codec's range, or says what is wrong", async () => {
    const word = await strata(root, ['push', '--compression-level', 'fast', 'localhost:5000/app:1']);
    assert.equal(word.code, 1);
    assert.equal(word.stderr, 'Error: invalid --compression-level "fast": not an integer\n');
    const high = await strata(root, ['push', '--compression-level', '12', 'localhost:5000/app:1']);
    assert.equal(high.code, 1);
    assert.equal(high.stderr, 'Error: --compression-level for gzip must be an integer 0–9, not 12\n');
  });

  test('system df counts images and reclaimable space', async () => {
    const { stdout } = await strataOk(root, ['system', 'df']);
    assert.match(stdout, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/m);
    assert.match(stdout, /^Images\s+\d+\s+\d+\s+\S+B\s+/m);
  });
});
