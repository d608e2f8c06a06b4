/**
 * RUN steps end to end: the real CLI, real runc (and the chroot fallback), overlayfs, a busybox
 * base made from Debian's busybox-static.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readFile, readdir, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';

import { STRATA_BIN, busyboxStore, run, strata, strataOk, tempDir, writeTree } from './helpers/cli.js';

/** `tar -tv` lines of each layer the build added on top of busybox. */
async function newLayers(root: string, image: string): Promise<string[][]> {
  const archive = join(root, '..', `${image.replace(/\W/g, '_')}.tar`);
  await strataOk(root, ['save', '-o', archive, image]);
  const manifest = JSON.parse((await run('tar', ['-xOf', archive, 'manifest.json'])).stdout) as Array<{
    Layers: string[];
  }>;
  const layers = manifest[0]?.Layers.slice(1) ?? [];
  const listings: string[][] = [];
  for (const layer of layers) {
    const listing = await run('sh', ['-c', `tar -xOf '${archive}' '${layer}' | tar -tvf -`]);
    listings.push(
      listing.stdout
        .trim()
        .split('\n')
        .filter((line) => line !== ''),
    );
  }
  return listings;
}

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) found.push(path);
    }
  };
  await walk(dir);
  return found;
}

describe('RUN steps (real CLI, runc, overlayfs)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;

  before(async () => {
    dir = await tempDir('run');
    ({ root } = await busyboxStore(dir.path));
  });
  after(async () => dir.cleanup());

  for (const isolation of ['runc', 'chroot'] as const) {
    test(`filesystem semantics with ${isolation}: whiteouts, opaque dirs, hardlinks, fifos, setuid, owners`, async () => {
      const context = join(dir.path, `ctx-fs-${isolation}`);
      await writeTree(context, {
        Dockerfile: [
          'FROM busybox',
          'RUN mkdir -p /data/keep /data/gone /data/reset && echo a > /data/gone/f && echo b > /data/reset/old && echo k > /data/keep/k',
          'RUN rm -rf /data/gone && rm -rf /data/reset && mkdir /data/reset && echo new > /data/reset/new',
          'RUN echo same > /h1 && ln /h1 /h2 && mkfifo /fifo && cp /bin/busybox /suid && chmod 4755 /suid && chown 1:2 /h1',
          'RUN echo ran',
          '',
        ].join('\n'),
      });
      await strataOk(root, ['build', '-q', '--isolation', isolation, '-t', `fs/${isolation}`, context]);
      const [, deletions, links, nothing] = await newLayers(root, `fs/${isolation}`);
      assert.ok(
        deletions?.some((line) => line.endsWith('data/.wh.gone')),
        `whiteout for /data/gone:\n${deletions?.join('\n')}`,
      );
      assert.ok(
        deletions?.some((line) => line.endsWith('data/reset/.wh..wh..opq')),
        'opaque marker for /data/reset',
      );
      assert.ok(
        links?.some((line) => / h2 link to h1$/.test(line)),
        `hard link:\n${links?.join('\n')}`,
      );
      assert.ok(
        links?.some((line) => line.startsWith('p') && line.endsWith(' fifo')),
        'fifo',
      );
      assert.ok(
        links?.some((line) => line.startsWith('-rwsr-xr-x') && line.endsWith(' suid')),
        'setuid bit',
      );
      assert.ok(
        links?.some((line) => / 1\/2 .* h1$/.test(line)),
        'owner 1:2',
      );
      assert.equal(nothing, undefined, 'a RUN that changes nothing adds no layer (no mount point debris)');
      const exported = await run('sh', [
        '-c',
        `bin/strata --root ${root} export fs/${isolation} | tar -tf - | grep '^data/' | sort`,
      ]);
      assert.deepEqual(exported.stdout.trim().split('\n'), [
        'data/',
        'data/keep/',
        'data/keep/k',
        'data/reset/',
        'data/reset/new',
      ]);
    });
  }

  test('COPY into / merges through the image: a symlinked directory stays a symlink', async () => {
    const context = join(dir.path, 'ctx-root-merge');
    await writeTree(context, {
      'tree/mylib/x.txt': 'x\n',
      'tree/etc/extra.conf': 'extra\n',
      Dockerfile:
        'FROM busybox\nRUN mkdir -p /usr/mylib && ln -s usr/mylib /mylib && chmod 0750 /etc\nCOPY tree/ /\n',
    });
    await strataOk(root, ['build', '-q', '-t', 'rootmerge/app', context]);
    const listing = await run('sh', [
      '-c',
      `bin/strata --root ${root} export rootmerge/app | tar -tvf - | grep -E ' (mylib|usr/mylib/x.txt|etc/)( |$)'`,
    ]);
    assert.match(listing.stdout, /^l.* mylib -> usr\/mylib$/m, `the symlink survives:\n${listing.stdout}`);
    assert.match(listing.stdout, / usr\/mylib\/x\.txt$/m);
    assert.match(listing.stdout, /^drwxr-x--- .* etc\/$/m, 'an existing directory keeps its mode');
  });

  test('users, env, workdir, SHELL, exec form and heredocs', async () => {
    const context = join(dir.path, 'ctx-user');
    await writeTree(context, {
      Dockerfile: [
        'FROM busybox',
        'ARG BUILD=arg-value',
        'ENV GREETING=hi',
        'WORKDIR /work',
        'RUN echo "$GREETING $BUILD $(pwd)" > /out.txt',
        'USER nobody',
        'RUN id -u > /tmp/uid && id -g >> /tmp/uid',
        'USER 0',
        'SHELL ["/bin/sh", "-ec"]',
        'RUN ["/bin/sh", "-c", "echo exec > /exec.txt"]',
        'RUN <<EOF',
        'echo "line $((6*7))" > /heredoc.txt',
        'EOF',
        'RUN cat <<A > /a.txt && cat <<B > /b.txt',
        'first',
        'A',
        'second',
        'B',
        '',
      ].join('\n'),
    });
    await strataOk(root, ['build', '-q', '-t', 'user/app', context]);
    const read = async (path: string) =>
      (await run('sh', ['-c', `bin/strata --root ${root} export user/app | tar -xOf - ${path}`])).stdout;
    assert.equal(await read('out.txt'), 'hi arg-value /work\n');
    assert.equal(await read('tmp/uid'), '65534\n65534\n');
    assert.equal(await read('exec.txt'), 'exec\n');
    assert.equal(await read('heredoc.txt'), 'line 42\n');
    assert.equal(await read('a.txt'), 'first\n');
    assert.equal(await read('b.txt'), 'second\n');
    const env = (await strataOk(root, ['image', 'inspect', '--format', '{{json .Config.Env}}', 'user/app']))
      .stdout;
    assert.doesNotMatch(env, /BUILD=/, 'ARG values never reach the image config');
  });

  test('a failing RUN: step, command and exit code; last output lines; no image, no cache record', async () => {
    const context = join(dir.path, 'ctx-fail');
    await writeTree(context, {
      Dockerfile: 'FROM busybox\nRUN echo before\nRUN echo visible-output && exit 3\n',
    });
    const failed = await strata(root, ['build', '--progress', 'plain', '-t', 'fail/app', context]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /visible-output/);
    assert.match(
      failed.stderr,
      /Dockerfile:3:1: process "\/bin\/sh -c echo visible-output && exit 3" did not complete successfully: exit code: 3/,
    );
    const quiet = await strata(root, ['build', '-q', context]);
    assert.match(quiet.stderr, /exit code: 3\n {2}> visible-output/, 'the error keeps the last output lines');
    const images = await strataOk(root, ['images', '--format', '{{.Repository}}']);
    assert.doesNotMatch(images.stdout, /fail\/app/);
    const again = await strata(root, ['build', '--progress', 'plain', context]);
    assert.match(again.stderr, /#\d+ CACHED/, 'the successful step is cached');
    assert.match(again.stderr, /visible-output/, 'the failed step runs again');
  });

  test('secrets: available to the step, never in any blob, snapshot, config, history or cache record', async () => {
    const secret = `s3cr3t-${Date.now()}-value`;
    const secretFile = join(dir.path, 'secret.txt');
    await writeFile(secretFile, secret);
    const context = join(dir.path, 'ctx-secret');
    await writeTree(context, {
      Dockerfile: [
        'FROM busybox',
        'RUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = "' +
          secret.slice(0, 6) +
          '${SUFFIX}" || true; cat /run/secrets/token | wc -c > /len',
        'RUN --mount=type=secret,id=token,env=TOKEN test -n "$TOKEN" && echo has-token > /env-ok',
        'RUN --mount=type=secret,id=token,target=/custom/path,required=true test -f /custom/path && echo ok > /target-ok',
        '',
      ].join('\n'),
    });
    await strataOk(root, [
      'build',
      '-q',
      '--secret',
      `id=token,src=${secretFile}`,
      '-t',
      'secret/app',
      context,
    ]);
    const read = async (path: string) =>
      (await run('sh', ['-c', `bin/strata --root ${root} export secret/app | tar -xOf - ${path}`])).stdout;
    assert.equal((await read('len')).trim(), String(secret.length));
    assert.equal(await read('env-ok'), 'has-token\n');
    assert.equal(await read('target-ok'), 'ok\n');
    const exported = await run('sh', [
      '-c',
      `bin/strata --root ${root} export secret/app | tar -tf - | grep -E '^(run/secrets|custom)' || true`,
    ]);
    assert.equal(exported.stdout.trim(), '', 'no mount point left in the image');
    for (const file of await filesUnder(root)) {
      if ((await lstat(file)).size > 64 * 1024 * 1024) continue;
      const bytes = await readFile(file);
      assert.equal(bytes.includes(secret), false, `the secret is in ${file}`);
    }
    const missing = await strata(root, ['build', '-q', '--no-cache', context]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Dockerfile:3:1: .*exit code: 1/, 'without the secret the step fails');
  });

  test('cache mounts persist between builds and are never part of a layer', async () => {
    const context = join(dir.path, 'ctx-cache-mount');
    await writeTree(context, {
      Dockerfile:
        'FROM busybox\nARG RUNID\nRUN --mount=type=cache,target=/var/cache/app echo $RUNID >> /var/cache/app/log && wc -l < /var/cache/app/log > /count\n',
    });
    await strataOk(root, ['build', '-q', '--build-arg', 'RUNID=1', '-t', 'cachemount/app', context]);
    await strataOk(root, ['build', '-q', '--build-arg', 'RUNID=2', '-t', 'cachemount/app', context]);
    const count = await run('sh', [
      '-c',
      `bin/strata --root ${root} export cachemount/app | tar -xOf - count`,
    ]);
    assert.equal(count.stdout.trim(), '2');
    const listing = await run('sh', [
      '-c',
      `bin/strata --root ${root} export cachemount/app | tar -tf - | grep var/cache/app || true`,
    ]);
    assert.equal(listing.stdout.trim(), '', 'the cache directory is not in the image');
  });

  test('RUN --mount=type=ssh: the agent socket given with --ssh is there, at SSH_AUTH_SOCK', async () => {
    const context = join(dir.path, 'ctx-ssh');
    await writeTree(context, {
      Dockerfile:
        'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "agent at $SSH_AUTH_SOCK"\n',
    });
    const socket = join(dir.path, 'agent.sock');
    const agent = createServer((connection) => connection.end());
    await new Promise<void>((resolve) => agent.listen(socket, resolve));
    try {
      const built = await strataOk(root, [
        'build',
        '--progress',
        'plain',
        '--ssh',
        `default=${socket}`,
        '-t',
        'ssh/agent',
        context,
      ]);
      assert.match(built.stderr, /agent at \/run\/buildkit\/ssh_agent\.0$/m);
    } finally {
      await new Promise((resolve) => agent.close(resolve));
    }
  });

  test('Ctrl-C cancels a build: its RUN step is killed, exit 130, nothing left mounted or running', async () => {
    const context = join(dir.path, 'ctx-cancel');
    await writeTree(context, {
      Dockerfile: 'FROM busybox\nRUN echo started; sleep 57.32\nRUN touch /never\n',
    });
    const child = spawn(
      STRATA_BIN,
      ['--root', root, 'build', '--progress', 'plain', '-t', 'cancel/me', context],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (/^#\d+ [\d.]+ started$/m.test(output)) resolve();
      });
      child.on('close', () => reject(new Error(`build ended before its step started:\n${output}`)));
    });
    const interrupted = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 130, output);
    assert.ok(Date.now() - interrupted < 15_000, 'the step was not killed');
    assert.match(output, /build cancelled/);
    assert.doesNotMatch(output, /touch \/never/);
    const mounts = await readFile('/proc/self/mounts', 'utf8');
    assert.deepEqual(
      mounts.split('\n').filter((line) => line.includes(root)),
      [],
    );
    const { stdout } = await run('ps', ['-eo', 'args']);
    assert.ok(!stdout.split('\n').some((line) => line === 'sleep 57.32'), 'the step survived');
    assert.equal((await strata(root, ['inspect', 'cancel/me'])).code, 1);
  });

  test('network none, tmpfs and bind mounts; insecure needs --allow', async () => {
    const context = join(dir.path, 'ctx-net');
    await writeTree(context, {
      'input.txt': 'from-context\n',
      Dockerfile: [
        'FROM busybox AS tools',
        'RUN echo tool > /tool.txt',
        'FROM busybox',
        'RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " > /ifaces',
        'RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/x && test -f /scratch/x',
        'RUN --mount=type=bind,source=input.txt,target=/in.txt cp /in.txt /copied.txt',
        'RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t cp /t /tool-copy.txt',
        '',
      ].join('\n'),
    });
    await strataOk(root, ['build', '-q', '-t', 'net/app', context]);
    const read = async (path: string) =>
      (await run('sh', ['-c', `bin/strata --root ${root} export net/app | tar -xOf - ${path}`])).stdout;
    assert.equal(await read('ifaces'), 'lo\n');
    assert.equal(await read('copied.txt'), 'from-context\n');
    assert.equal(await read('tool-copy.txt'), 'tool\n');
    const listing = await run('sh', [
      '-c',
      `bin/strata --root ${root} export net/app | tar -tf - | grep -E '^(scratch|in.txt|t)$' || true`,
    ]);
    assert.equal(listing.stdout.trim(), '');
    const insecure = join(dir.path, 'ctx-insecure');
    await writeTree(insecure, { Dockerfile: 'FROM busybox\nRUN --security=insecure true\n' });
    const denied = await strata(root, ['build', '-q', insecure]);
    assert.match(denied.stderr, /--allow security.insecure/);
    await strataOk(root, ['build', '-q', '--allow', 'security.insecure', insecure]);
  });
});
