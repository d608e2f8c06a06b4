/**
 * `strata build` end to end: the real CLI, a real store, overlayfs steps, the persistent cache.
 * Base image: busybox made from Debian's busybox-static by scripts/test-images.sh.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile, utimes } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

import { busyboxStore, run, strata, strataOk, tempDir, writeTree } from './helpers/cli.js';

/** Step outcomes from `--progress plain`: the names of steps that ran and that were cached. */
function steps(stderr: string): { ran: string[]; cached: string[] } {
  const names = new Map<string, string>();
  const ran: string[] = [];
  const cached: string[] = [];
  for (const line of stderr.split('\n')) {
    const header = /^#(\d+) (\[.*)$/.exec(line);
    if (header) names.set(header[1] as string, header[2] as string);
    const done = /^#(\d+) (DONE|CACHED)/.exec(line);
    const name = done ? names.get(done[1] as string) : undefined;
    if (!done || !name || !/\] (COPY|ADD|RUN|WORKDIR)/.test(name)) continue;
    (done[2] === 'CACHED' ? cached : ran).push(name.replace(/^\[[^\]]*\] /, ''));
  }
  return { ran, cached };
}

/** The unpacked layers in the store (snapshot directory names). */
async function snapshotNames(root: string): Promise<string[]> {
  return (await run('ls', [join(root, 'snapshots')])).stdout
    .split('\n')
    .filter((name) => /^[0-9a-f]{64}$/.test(name));
}

describe('strata build (real CLI, store, overlayfs, cache)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;

  before(async () => {
    dir = await tempDir('build');
    ({ root } = await busyboxStore(dir.path));
  });
  after(async () => dir.cleanup());

  test('builds, then a second build reuses every step and makes the identical image', async () => {
    const context = join(dir.path, 'ctx-cache');
    await writeTree(context, {
      Dockerfile:
        'FROM busybox\nWORKDIR /app\nCOPY deps.txt ./\nCOPY src/ ./src/\nENV MODE=prod\nCMD ["cat", "/app/src/main.txt"]\n',
      'deps.txt': 'deps\n',
      'src/main.txt': 'v1\n',
    });
    const first = await strataOk(root, [
      'build',
      '--progress',
      'plain',
      '--iidfile',
      join(dir.path, 'iid1'),
      '-t',
      'cache/app',
      context,
    ]);
    assert.deepEqual(steps(first.stderr).cached, []);
    assert.deepEqual(steps(first.stderr).ran, ['WORKDIR /app', 'COPY deps.txt ./', 'COPY src/ ./src/']);
    const second = await strataOk(root, [
      'build',
      '--progress',
      'plain',
      '--iidfile',
      join(dir.path, 'iid2'),
      '-t',
      'cache/app',
      context,
    ]);
    assert.deepEqual(steps(second.stderr).ran, []);
    assert.equal(steps(second.stderr).cached.length, 3);
    assert.equal(
      await readFile(join(dir.path, 'iid1'), 'utf8'),
      await readFile(join(dir.path, 'iid2'), 'utf8'),
    );

    // Touching without changing content keeps the cache (content digests, like BuildKit).
    await utimes(join(context, 'src/main.txt'), new Date(), new Date(Date.now() + 5000));
    assert.deepEqual(steps((await strataOk(root, ['build', '--progress', 'plain', context])).stderr).ran, []);

    // Changing one file re-runs exactly the steps that depend on it.
    await writeFile(join(context, 'src/main.txt'), 'v2\n');
    const third = await strataOk(root, ['build', '--progress', 'plain', '-t', 'cache/app', context]);
    assert.deepEqual(steps(third.stderr).ran, ['COPY src/ ./src/']);
    assert.deepEqual(steps(third.stderr).cached, ['WORKDIR /app', 'COPY deps.txt ./']);

    const exported = await run('sh', [
      '-c',
      `bin/strata --root ${root} export cache/app | tar -xOf - app/src/main.txt`,
    ]);
    assert.equal(exported.stdout, 'v2\n');

    // A new step over sources the context cache remembers: the key needs no selection, the copy
    // selects them when it runs, and gets the current bytes.
    const elsewhere = await strataOk(
      root,
      ['build', '--progress', 'plain', '-f', '-', '-t', 'cache/elsewhere', context],
      { input: 'FROM busybox\nCOPY src/ /elsewhere/\n' },
    );
    assert.deepEqual(steps(elsewhere.stderr).ran, ['COPY src/ /elsewhere/']);
    const copied = await run('sh', [
      '-c',
      `bin/strata --root ${root} export cache/elsewhere | tar -xOf - elsewhere/main.txt`,
    ]);
    assert.equal(copied.stdout, 'v2\n');
    const inspect = JSON.parse((await strataOk(root, ['image', 'inspect', 'cache/app'])).stdout) as Array<{
      Config: { Env: string[]; Cmd: string[]; WorkingDir: string };
    }>;
    assert.ok(inspect[0]?.Config.Env.includes('MODE=prod'));
    assert.deepEqual(inspect[0]?.Config.Cmd, ['cat', '/app/src/main.txt']);
    assert.equal(inspect[0]?.Config.WorkingDir, '/app');
  });

  test('the cache survives image removal and GC; builder prune drops it', async () => {
    const context = join(dir.path, 'ctx-prune');
    await writeTree(context, { Dockerfile: 'FROM busybox\nCOPY a /a\n', a: 'a\n' });
    await strataOk(root, ['build', '-q', '-t', 'prune/app', context]);
    await strataOk(root, ['rmi', 'prune/app']);
    await strataOk(root, ['image', 'prune', '-f']);
    assert.deepEqual(steps((await strataOk(root, ['build', '--progress', 'plain', context])).stderr).ran, []);
    const pruned = await strataOk(root, ['builder', 'prune', '-f']);
    assert.match(pruned.stdout, /Deleted build cache records: [1-9]/);
    assert.deepEqual(steps((await strataOk(root, ['build', '--progress', 'plain', context])).stderr).ran, [
      'COPY a /a',
    ]);
  });

  test('two concurrent builds sharing one cache both succeed', async () => {
    const context = join(dir.path, 'ctx-concurrent');
    const files: Record<string, string> = {
      Dockerfile: 'FROM busybox\nCOPY a/ /a/\nCOPY b/ /b/\nLABEL built=yes\n',
    };
    for (let i = 0; i < 200; i++) files[`a/f${i}`] = `a${i}\n`.repeat(50);
    for (let i = 0; i < 200; i++) files[`b/f${i}`] = `b${i}\n`;
    await writeTree(context, files);
    const builds = await Promise.all([
      strata(root, ['build', '-q', '-t', 'concurrent/one', context]),
      strata(root, ['build', '-q', '-t', 'concurrent/two', context]),
    ]);
    for (const result of builds) assert.equal(result.code, 0, result.stderr);
    // Both may run the steps (each sees no record yet); either's records serve the next build.
    for (const name of ['concurrent/one', 'concurrent/two']) {
      const listing = await run('sh', [
        '-c',
        `bin/strata --root ${root} export ${name} | tar -tf - | grep -c '^[ab]/f'`,
      ]);
      assert.equal(listing.stdout.trim(), '400');
    }
    const again = await strataOk(root, ['build', '--progress', 'plain', context]);
    assert.deepEqual(steps(again.stderr).ran, []);
  });

  test('multi-stage: --target, COPY --from, build args, labels, -f -, metadata file', async () => {
    const context = join(dir.path, 'ctx-stages');
    await writeTree(context, { 'one.txt': '1\n', 'two.txt': '2\n' });
    const dockerfile = [
      'ARG BASE=busybox',
      'FROM ${BASE} AS first',
      'ARG WHO=nobody',
      'COPY one.txt /one-$WHO.txt',
      'FROM scratch AS second',
      'COPY two.txt /',
      'FROM first AS final',
      'COPY --from=second /two.txt /from-second.txt',
      'COPY --from=0 /one-world.txt /again.txt',
      '',
    ].join('\n');
    const metadataFile = join(dir.path, 'meta.json');
    await strataOk(
      root,
      [
        'build',
        '-q',
        '-f',
        '-',
        '--build-arg',
        'WHO=world',
        '--label',
        'team=core',
        '--metadata-file',
        metadataFile,
        '-t',
        'stages/final',
        context,
      ],
      { input: dockerfile },
    );
    const listing = await run('sh', [
      '-c',
      `bin/strata --root ${root} export stages/final | tar -tf - | grep -E 'one-|second|again' | sort`,
    ]);
    assert.deepEqual(listing.stdout.trim().split('\n'), ['again.txt', 'from-second.txt', 'one-world.txt']);
    const metadata = JSON.parse(await readFile(metadataFile, 'utf8')) as Record<string, string>;
    assert.match(metadata['containerimage.config.digest'] ?? '', /^sha256:/);
    assert.equal(metadata['image.name'], 'docker.io/stages/final:latest');
    const labels = JSON.parse(
      (await strataOk(root, ['image', 'inspect', '--format', '{{json .Config.Labels}}', 'stages/final']))
        .stdout,
    ) as Record<string, string>;
    assert.deepEqual(labels, { team: 'core' });

    await strataOk(root, ['build', '-q', '-f', '-', '--target', 'second', '-t', 'stages/second', context], {
      input: dockerfile,
    });
    const second = await run('sh', ['-c', `bin/strata --root ${root} export stages/second | tar -tf -`]);
    assert.equal(second.stdout.trim(), 'two.txt');
  });

  test('COPY steps into new directories write only blobs; a COPY into a directory with files uses the overlay', async () => {
    const context = join(dir.path, 'ctx-tree');
    await writeTree(context, {
      'a/x.txt': 'x',
      'b/y.txt': 'y',
      'c/z.txt': 'z',
      'f.txt': 'f',
    });
    const snapshots = () => snapshotNames(root);
    const before = await snapshots();
    await strataOk(root, ['build', '-q', '-f', '-', '-t', 'tree/adds', context], {
      input: 'FROM busybox\nCOPY a /app/a/\nCOPY b /app/b/\n',
    });
    // Neither layer was unpacked: the second step found /app in the first one's tree.
    assert.deepEqual(await snapshots(), before);
    const adds = await run('sh', [
      '-c',
      `bin/strata --root ${root} export tree/adds | tar -tf - | grep ^app/ | sort`,
    ]);
    assert.deepEqual(adds.stdout.trim().split('\n'), [
      'app/',
      'app/a/',
      'app/a/x.txt',
      'app/b/',
      'app/b/y.txt',
    ]);

    await strataOk(root, ['build', '-q', '-f', '-', '-t', 'tree/merge', context], {
      input: 'FROM busybox\nCOPY a /app/a/\nCOPY b /app/b/\nCOPY c/ /app/a/\n',
    });
    const merged = await run('sh', [
      '-c',
      `bin/strata --root ${root} export tree/merge | tar -tf - | grep ^app/a/ | sort`,
    ]);
    assert.deepEqual(merged.stdout.trim().split('\n'), ['app/a/', 'app/a/x.txt', 'app/a/z.txt']);

    const refused = await strata(root, ['build', '-q', '-f', '-', context], {
      input: 'FROM busybox\nCOPY f.txt /app/f\nCOPY a /app/f/sub/\n',
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Dockerfile:3.*non-directory.*\/app\/f/);
  });

  test('COPY --from a stage this build copied from the context reads the context, and makes the same layer', async () => {
    const context = join(dir.path, 'ctx-from-tree');
    await writeTree(context, {
      'src/a.txt': 'alpha',
      'src/deep/b.txt': 'beta',
      'src/run.sh': '#!/bin/sh\n',
    });
    await run('chmod', ['0750', join(context, 'src', 'run.sh')]);
    await run('ln', [join(context, 'src', 'a.txt'), join(context, 'src', 'deep', 'hard.txt')]);
    await run('ln', ['-s', '../a.txt', join(context, 'src', 'deep', 'link')]);
    // Sources dated 2020; SOURCE_DATE_EPOCH (2023) clamps what the copies create now, so two
    // builds at different times can make the same bytes, and the sources' own times still show.
    await run('sh', ['-c', `find ${join(context, 'src')} -exec touch -h -d 2020-01-01T00:00:00Z {} +`]);
    const env = { SOURCE_DATE_EPOCH: '1672531200' };
    const dockerfile =
      'FROM busybox AS stage\nCOPY --chown=7:8 src /app/src/\n' +
      'FROM busybox AS final\nCOPY --from=stage /app/src /copied/\nCOPY --from=stage /app/src/deep/b.txt /one.txt\n';
    const snapshots = async (): Promise<number> => (await snapshotNames(root)).length;
    const before = await snapshots();
    const layers = async (tag: string): Promise<string[]> =>
      JSON.parse(
        (await strataOk(root, ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', tag])).stdout,
      ) as string[];
    await strataOk(root, ['build', '-q', '--no-cache', '-f', '-', '-t', 'fromtree/a', context], {
      input: dockerfile,
      env,
    });
    assert.equal(await snapshots(), before, 'the stage was not unpacked');
    // The stage now comes from the cache (no tree in this process): the final stage reads an
    // unpacked view of it, and must make the very same layers.
    await strataOk(
      root,
      ['build', '-q', '--no-cache-filter', 'final', '-f', '-', '-t', 'fromtree/b', context],
      { input: dockerfile, env },
    );
    assert.ok((await snapshots()) > before, 'the second build unpacked the stage');
    assert.deepEqual(await layers('fromtree/a'), await layers('fromtree/b'));
    const listing = await run('sh', [
      '-c',
      `bin/strata --root ${root} export fromtree/a | tar -tvf - --full-time | grep -E ' (copied|one)' | awk '{ printf "%s %s %s", $1, $2, $4; for (i = 6; i <= NF; i++) printf " %s", $i; print "" }' | sort -k4`,
    ]);
    assert.deepEqual(listing.stdout.trim().split('\n'), [
      'drwxr-xr-x 0/0 2023-01-01 copied/',
      '-rw-r--r-- 7/8 2020-01-01 copied/a.txt',
      'drwxr-xr-x 7/8 2020-01-01 copied/deep/',
      '-rw-r--r-- 7/8 2020-01-01 copied/deep/b.txt',
      'hrw-r--r-- 7/8 2020-01-01 copied/deep/hard.txt link to copied/a.txt',
      'lrwxrwxrwx 7/8 2020-01-01 copied/deep/link -> ../a.txt',
      '-rwxr-x--- 7/8 2020-01-01 copied/run.sh',
      '-rw-r--r-- 7/8 2020-01-01 one.txt',
    ]);
  });

  test('.dockerignore keeps files out of COPY .', async () => {
    const context = join(dir.path, 'ctx-ignore');
    await writeTree(context, {
      Dockerfile: 'FROM scratch\nCOPY . /ctx/\n',
      '.dockerignore': 'node_modules\n.git\n*.env\n!keep.env\n',
      'app.js': 'x',
      'node_modules/dep/index.js': 'y',
      '.git/HEAD': 'z',
      'secret.env': 's',
      'keep.env': 'k',
    });
    await strataOk(root, ['build', '-q', '-t', 'ignore/app', context]);
    const listing = await run('sh', ['-c', `bin/strata --root ${root} export ignore/app | tar -tf - | sort`]);
    assert.deepEqual(listing.stdout.trim().split('\n'), [
      'ctx/',
      'ctx/.dockerignore',
      'ctx/Dockerfile',
      'ctx/app.js',
      'ctx/keep.env',
    ]);
  });

  test('SOURCE_DATE_EPOCH: the same inputs give the same image digest from an empty store', async () => {
    const context = join(dir.path, 'ctx-epoch');
    await writeTree(context, { Dockerfile: 'FROM scratch\nCOPY f /f\nENV A=1\n', f: 'data\n' });
    const ids: string[] = [];
    for (const name of ['epoch-a', 'epoch-b']) {
      const fresh = join(dir.path, name);
      const result = await strataOk(fresh, ['build', '-q', context], {
        env: { SOURCE_DATE_EPOCH: '1700000000' },
      });
      ids.push(result.stdout.trim());
    }
    assert.equal(ids[0], ids[1]);
  });

  test('ADD from a URL (with --checksum) and --output docker/oci/tar/local', async () => {
    const payload = 'remote payload\n';
    const server = createServer((request, response) => {
      if (request.url === '/files/data.txt') {
        response.writeHead(200, { 'last-modified': 'Tue, 01 Oct 2024 10:00:00 GMT' });
        response.end(payload);
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const sum = createHash('sha256').update(payload).digest('hex');
      const context = join(dir.path, 'ctx-url');
      await writeTree(context, {
        Dockerfile: `FROM scratch\nADD --checksum=sha256:${sum} http://127.0.0.1:${port}/files/data.txt /dl/\nCOPY local.txt /\n`,
        'Dockerfile.badsum': `FROM scratch\nADD --checksum=sha256:${'0'.repeat(64)} http://127.0.0.1:${port}/files/data.txt /dl/\n`,
        'local.txt': 'local\n',
      });
      const out = join(dir.path, 'outputs');
      await strataOk(root, [
        'build',
        '-q',
        '-t',
        'url/app',
        '--output',
        `type=docker,dest=${join(out, 'docker.tar')}`,
        '--output',
        `type=oci,dest=${join(out, 'oci.tar')}`,
        '--output',
        `type=tar,dest=${join(out, 'fs.tar')}`,
        '--output',
        join(out, 'local'),
        context,
      ]);
      assert.equal(await readFile(join(out, 'local', 'dl', 'data.txt'), 'utf8'), payload);
      assert.equal(await readFile(join(out, 'local', 'local.txt'), 'utf8'), 'local\n');
      const mode = (await stat(join(out, 'local', 'dl', 'data.txt'))).mode & 0o777;
      assert.equal(mode, 0o600, 'ADD from a URL gives mode 0600');
      const listing = await run('tar', ['-tf', join(out, 'fs.tar')]);
      assert.deepEqual(listing.stdout.trim().split('\n').sort(), ['dl/', 'dl/data.txt', 'local.txt']);
      for (const archive of ['docker.tar', 'oci.tar']) {
        const other = join(dir.path, `load-${archive}`);
        await strataOk(other, ['load', '-i', join(out, archive)]);
        const id = (await strataOk(other, ['images', '-q', '--no-trunc'])).stdout.trim();
        assert.match(id, /^sha256:/);
      }
      const bad = await strata(root, ['build', '-q', '-f', join(context, 'Dockerfile.badsum'), context]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /Dockerfile\.badsum:2:1: .*checksum/i);
    } finally {
      server.close();
    }
  });

  test('user mistakes: one line with file:line, non-zero exit, no image', async () => {
    const context = join(dir.path, 'ctx-errors');
    await writeTree(context, {
      Dockerfile: 'FROM busybox\nCOPY missing.txt /\n',
      'Dockerfile.bad': 'FROM busybox\nFROB x\n',
      'Dockerfile.base': 'FROM nosuch/image:1\n',
      'Dockerfile.port': 'FROM scratch\nEXPOSE 99999\n',
    });
    const missing = await strata(root, ['build', '-q', '-t', 'errors/missing', context]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Dockerfile:2:1: .*missing\.txt/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);
    const bad = await strata(root, ['build', '-q', '-f', join(context, 'Dockerfile.bad'), context]);
    assert.match(bad.stderr, /Dockerfile\.bad:2:1: unknown instruction: FROB/);
    const base = await strata(root, ['build', '-q', '-f', join(context, 'Dockerfile.base'), context]);
    // Not in the store: strata tries the registry, which this sandbox cannot reach.
    assert.match(base.stderr, /Dockerfile\.base:1:1: .*nosuch\/image:1/, JSON.stringify(base));
    assert.equal(base.code, 1);
    const port = await strata(root, ['build', '-q', '-f', join(context, 'Dockerfile.port'), context]);
    assert.match(port.stderr, /Dockerfile\.port:2:1: invalid port range: 99999/);
    const images = await strataOk(root, ['images', '--format', '{{.Repository}}']);
    assert.doesNotMatch(images.stdout, /errors\//);
  });
});
