/**
 * `strata run` and the container lifecycle end to end: the real CLI, runc, overlayfs, pasta, and
 * the busybox image made from Debian's busybox-static. Every container is removed and every
 * mount under the store checked gone in `after`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { STRATA_BIN, busyboxStore, strata, strataOk, tempDir, writeTree } from './helpers/cli.js';

async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((path) => path.startsWith(prefix));
}

function httpGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

describe('strata run (real CLI, runc, overlayfs, pasta)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;

  const inspect = async (name: string, format: string): Promise<string> =>
    (await strataOk(root, ['inspect', '--format', format, name])).stdout.trim();

  before(async () => {
    dir = await tempDir('container-run');
    ({ root } = await busyboxStore(dir.path));
  });
  after(async () => {
    const ids = (await strata(root, ['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await strata(root, ['rm', '-f', ...ids]);
    const left = await mountsUnder(root);
    await dir.cleanup();
    assert.deepEqual(left, [], 'mounts left under the store');
  });

  test('foreground: output, exit code propagated, errors are one line', async () => {
    const ok = await strataOk(root, [
      'run',
      '--rm',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo out; echo err >&2',
    ]);
    assert.equal(ok.stdout, 'out\n');
    assert.equal(ok.stderr, 'err\n');
    const three = await strata(root, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'exit 3']);
    assert.equal(three.code, 3);
    const missing = await strata(root, ['run', '--rm', 'busybox', 'no-such-command']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /^Error: .*no-such-command.*\n$/);
    const noImage = await strata(root, ['run', '--rm', 'nosuch/image']);
    assert.notEqual(noImage.code, 0);
    assert.equal(noImage.stderr.split('\n').filter(Boolean).length, 1, noImage.stderr);
    assert.doesNotMatch(noImage.stderr, /at .*\.js/);
    const badPort = await strata(root, ['run', '--rm', '-p', '99999:80', 'busybox', 'true']);
    assert.equal(badPort.code, 1);
    assert.match(badPort.stderr, /^Error: invalid host port/);
    assert.deepEqual((await strataOk(root, ['ps', '-aq'])).stdout, '', 'failed runs leave no container');
  });

  test('--rm leaves no state directory and no mount', async () => {
    await strataOk(root, ['run', '--rm', 'busybox', 'true']);
    const entries = (await readdir(join(root, 'containers')).catch(() => [])).filter(
      (name) => !name.startsWith('.'),
    );
    assert.deepEqual(entries, []);
    assert.deepEqual(await mountsUnder(join(root, 'containers')), []);
    assert.deepEqual(await readdir(join(root, 'pins')).catch(() => []), []);
  });

  test('environment: image Env, --env-file, -e (later wins), KEY alone from the host', async () => {
    const envFile = join(dir.path, 'app.env');
    await writeFile(envFile, '# comment\nFROM_FILE=file value\nOVERRIDDEN=file\nFROM_HOST\n\n');
    const result = await strataOk(
      root,
      ['run', '--rm', '--env-file', envFile, '-e', 'OVERRIDDEN=flag', '-e', 'EMPTY=', 'busybox', 'env'],
      { env: { FROM_HOST: 'host value' } },
    );
    const env = result.stdout.split('\n');
    assert.ok(env.includes('FROM_FILE=file value'), result.stdout);
    assert.ok(env.includes('OVERRIDDEN=flag'), result.stdout);
    assert.ok(env.includes('FROM_HOST=host value'), result.stdout);
    assert.ok(env.includes('EMPTY='), result.stdout);
    assert.ok(
      env.some((line) => line.startsWith('PATH=')),
      result.stdout,
    );
    assert.ok(
      env.some((line) => line.startsWith('HOSTNAME=')),
      result.stdout,
    );
    const missing = await strata(root, [
      'run',
      '--rm',
      '--env-file',
      join(dir.path, 'nope.env'),
      'busybox',
      'true',
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: cannot read env file/);
  });

  test('users: -u 1000, -u name:group, and the image USER give a non-root process', async () => {
    assert.equal(
      (await strataOk(root, ['run', '--rm', '-u', '1000', 'busybox', 'id', '-u'])).stdout,
      '1000\n',
    );
    assert.equal(
      (await strataOk(root, ['run', '--rm', '-u', 'nobody:daemon', 'busybox', 'id'])).stdout,
      'uid=65534(nobody) gid=1(daemon)\n',
    );
    const context = join(dir.path, 'ctx-user');
    await writeTree(context, { Dockerfile: 'FROM busybox\nUSER nobody\nCMD ["id", "-u"]\n' });
    await strataOk(root, ['build', '-q', '-t', 'test/nobody', context]);
    assert.equal((await strataOk(root, ['run', '--rm', 'test/nobody'])).stdout, '65534\n');
    const unknown = await strata(root, ['run', '--rm', '-u', 'ghost', 'busybox', 'true']);
    assert.equal(unknown.code, 125);
    assert.match(unknown.stderr, /^Error: unable to find user ghost/);
  });

  test('-v binds read and write, :ro refuses writes, --mount tmpfs, -w, --entrypoint', async () => {
    const data = join(dir.path, 'data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'in.txt'), 'from the host\n');
    const rw = await strataOk(root, [
      'run',
      '--rm',
      '-v',
      `${data}:/data`,
      '-w',
      '/data',
      'busybox',
      'sh',
      '-c',
      'cat in.txt && echo written > out.txt && pwd',
    ]);
    assert.equal(rw.stdout, 'from the host\n/data\n');
    assert.equal(await readFile(join(data, 'out.txt'), 'utf8'), 'written\n');
    const ro = await strata(root, [
      'run',
      '--rm',
      '-v',
      `${data}:/data:ro`,
      'busybox',
      'sh',
      '-c',
      'echo x > /data/nope',
    ]);
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    await assert.rejects(stat(join(data, 'nope')));
    const tmpfs = await strataOk(root, [
      'run',
      '--rm',
      '--mount',
      'type=tmpfs,target=/scratch',
      'busybox',
      'sh',
      '-c',
      'grep " /scratch " /proc/mounts',
    ]);
    assert.match(tmpfs.stdout, /^tmpfs \/scratch tmpfs/);
    const entry = await strataOk(root, ['run', '--rm', '--entrypoint', 'echo', 'busybox', 'a', 'b']);
    assert.equal(entry.stdout, 'a b\n');
    const readOnly = await strata(root, ['run', '--rm', '--read-only', 'busybox', 'touch', '/x']);
    assert.notEqual(readOnly.code, 0);
    const badMount = await strata(root, [
      'run',
      '--rm',
      '--mount',
      `type=bind,source=${join(dir.path, 'absent')},target=/x`,
      'busybox',
      'true',
    ]);
    assert.equal(badMount.code, 1);
    assert.match(badMount.stderr, /^Error: .*bind source path does not exist/);
  });

  test('networks: none has only lo, host shares the host, --hostname', async () => {
    const none = await strataOk(root, ['run', '--rm', '--network', 'none', 'busybox', 'ip', '-o', 'link']);
    assert.deepEqual(
      none.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(':')[1]?.trim()),
      ['lo'],
    );
    const host = await strataOk(root, ['run', '--rm', '--network', 'host', 'busybox', 'ip', '-o', 'link']);
    assert.ok(host.stdout.split('\n').filter(Boolean).length > 1, host.stdout);
    assert.equal(
      (await strataOk(root, ['run', '--rm', '--hostname', 'box', 'busybox', 'hostname'])).stdout,
      'box\n',
    );
  });

  test('Ctrl-C (SIGINT) is forwarded to the container and its exit code returned', async () => {
    const child = spawn(
      STRATA_BIN,
      ['--root', root, 'run', '--rm', '--init', 'busybox', 'sh', '-c', 'echo ready; sleep 30'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await until('the container to start', async () => (output.includes('ready') ? true : undefined));
    const started = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 130, 'sh killed by SIGINT: 128 + 2');
    assert.ok(Date.now() - started < 5000);
  });

  test('an HTTP server answers through -p 8080:80; ps shows the port, logs the requests', async () => {
    const www = join(dir.path, 'www');
    await writeTree(www, { 'index.html': 'hello from busybox httpd\n' });
    const id = (
      await strataOk(root, [
        'run',
        '-d',
        '--name',
        'web',
        '-p',
        '127.0.0.1:8080:80',
        '-v',
        `${www}:/www:ro`,
        'busybox',
        'httpd',
        '-f',
        '-vv',
        '-p',
        '80',
        '-h',
        '/www',
      ])
    ).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const answer = await until('httpd to answer', () => httpGet(8080));
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'hello from busybox httpd\n');
    const ps = await strataOk(root, ['ps', '--format', '{{.Names}}|{{.Ports}}|{{.Status}}']);
    assert.match(ps.stdout, /^web\|127\.0\.0\.1:8080->80\/tcp\|Up /m);
    const logs = await until('the request in the logs', async () => {
      const result = await strataOk(root, ['logs', 'web']);
      return /url:\//.test(result.stderr) ? result : undefined;
    });
    assert.match(logs.stderr, /response:200/);
    assert.equal(await inspect('web', '{{.State.Status}} {{.HostConfig.NetworkMode}}'), 'running pasta');
    await strataOk(root, ['rm', '-f', 'web']);
    await assert.rejects(httpGet(8080));
  });

  test('stop honours STOPSIGNAL; start, restart, wait, exec, logs --tail, inspect', async () => {
    const context = join(dir.path, 'ctx-stop');
    await writeTree(context, {
      Dockerfile: 'FROM busybox\nCOPY run.sh /run.sh\nSTOPSIGNAL SIGUSR1\nCMD ["sh", "/run.sh"]\n',
      'run.sh': "trap 'echo got USR1; exit 42' USR1\necho started\nwhile true; do sleep 0.1; done\n",
    });
    await strataOk(root, ['build', '-q', '-t', 'test/stopsignal', context]);
    await strataOk(root, ['run', '-d', '--name', 'trap', 'test/stopsignal']);
    await until('the trap to be set', async () =>
      (await strataOk(root, ['logs', 'trap'])).stdout.includes('started') ? true : undefined,
    );
    const started = Date.now();
    await strataOk(root, ['stop', 'trap']);
    assert.ok(Date.now() - started < 5000, 'stopped by its signal, not by the SIGKILL after 10 s');
    assert.equal(await inspect('trap', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 42');
    assert.equal((await strataOk(root, ['logs', '--tail', '1', 'trap'])).stdout, 'got USR1\n');
    assert.equal((await strataOk(root, ['wait', 'trap'])).stdout, '42\n');

    await strataOk(root, ['start', 'trap']);
    assert.equal(await inspect('trap', '{{.State.Status}}'), 'running');
    const exec = await strataOk(root, [
      'exec',
      '-u',
      'nobody',
      '-e',
      'X=1',
      'trap',
      'sh',
      '-c',
      'id -u; echo $X',
    ]);
    assert.equal(exec.stdout, '65534\n1\n');
    const piped = await strataOk(root, ['exec', '-i', 'trap', 'cat'], { input: 'through stdin\n' });
    assert.equal(piped.stdout, 'through stdin\n');
    assert.equal((await strata(root, ['exec', 'trap', 'sh', '-c', 'exit 7'])).code, 7);
    await strataOk(root, ['restart', '-t', '5', 'trap']);
    assert.equal(await inspect('trap', '{{.State.Status}}'), 'running');
    const waiting = strata(root, ['wait', 'trap']);
    await strataOk(root, ['stop', 'trap']);
    assert.equal((await waiting).stdout, '42\n');
    const running = await strata(root, ['rm', 'trap']);
    assert.equal(running.code, 0, running.stderr);
    assert.equal((await strata(root, ['inspect', 'trap'])).code, 1);
  });

  test('rm refuses a running container without -f; -f kills and removes it', async () => {
    await strataOk(root, ['run', '-d', '--name', 'sleeper', 'busybox', 'sleep', '300']);
    const refused = await strata(root, ['rm', 'sleeper']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^Error: cannot remove container sleeper: container is running/);
    await strataOk(root, ['rm', '-f', 'sleeper']);
    assert.equal((await strata(root, ['inspect', 'sleeper'])).code, 1);
    assert.deepEqual(await mountsUnder(join(root, 'containers')), []);
  });

  test("HEALTHCHECK: the image's check goes starting → healthy; a failing one → unhealthy", async () => {
    const context = join(dir.path, 'ctx-health');
    await writeTree(context, {
      Dockerfile:
        // The start period keeps the failures before /tmp/ready exists from counting, however
        // slowly a loaded machine gets to the checks below: starting, then healthy, never unhealthy.
        'FROM busybox\nHEALTHCHECK --interval=300ms --timeout=2s --retries=2 --start-period=30s CMD test -f /tmp/ready\nCMD ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 300"]\n',
    });
    await strataOk(root, ['build', '-q', '-t', 'test/health', context]);
    await strataOk(root, ['run', '-d', '--name', 'healthy', 'test/health']);
    assert.equal(await inspect('healthy', '{{.State.Health.Status}}'), 'starting');
    assert.match(
      (await strataOk(root, ['ps', '--format', '{{.Names}} {{.Status}}'])).stdout,
      /^healthy Up .*\((health: starting|healthy)\)$/m,
    );
    await until('healthy', async () =>
      (await inspect('healthy', '{{.State.Health.Status}}')) === 'healthy' ? true : undefined,
    );
    assert.match(
      (await strataOk(root, ['ps', '--format', '{{.Names}} {{.Status}}'])).stdout,
      /^healthy Up .* \(healthy\)$/m,
    );

    await strataOk(root, [
      'run',
      '-d',
      '--name',
      'sick',
      '--health-cmd',
      'echo checking; exit 1',
      '--health-interval',
      '200ms',
      '--health-retries',
      '2',
      'busybox',
      'sleep',
      '300',
    ]);
    await until('unhealthy', async () =>
      (await inspect('sick', '{{.State.Health.Status}}')) === 'unhealthy' ? true : undefined,
    );
    const health = JSON.parse(await inspect('sick', '{{json .State.Health}}')) as {
      FailingStreak: number;
      Log: Array<{ ExitCode: number; Output: string }>;
    };
    assert.ok(health.FailingStreak >= 2);
    assert.equal(health.Log.at(-1)?.ExitCode, 1);
    assert.equal(health.Log.at(-1)?.Output, 'checking\n');
    assert.match(
      (await strataOk(root, ['ps', '--format', '{{.Names}} {{.Status}}'])).stdout,
      /^sick Up .* \(unhealthy\)$/m,
    );
    await strataOk(root, ['rm', '-f', 'healthy', 'sick']);
  });

  test('diff shows A/C/D; commit makes an image with the changes and the config', async () => {
    await strataOk(root, [
      'run',
      '--name',
      'changer',
      '-e',
      'COMMITTED=yes',
      'busybox',
      'sh',
      '-c',
      'echo new > /root/new.txt && rm /etc/group && echo more >> /etc/passwd',
    ]);
    const diff = (await strataOk(root, ['diff', 'changer'])).stdout.split('\n').filter(Boolean);
    assert.deepEqual(diff, ['C /etc', 'D /etc/group', 'C /etc/passwd', 'C /root', 'A /root/new.txt']);
    const id = (
      await strataOk(root, [
        'commit',
        '-m',
        'a message',
        '-a',
        'tester',
        '-c',
        'CMD ["cat", "/root/new.txt"]',
        'changer',
        'test/committed:1',
      ])
    ).stdout.trim();
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    assert.equal((await strataOk(root, ['run', '--rm', 'test/committed:1'])).stdout, 'new\n');
    const check = await strataOk(root, [
      'run',
      '--rm',
      'test/committed:1',
      'sh',
      '-c',
      'test -e /etc/group || echo no-group; tail -n1 /etc/passwd; echo $COMMITTED',
    ]);
    assert.equal(check.stdout, 'no-group\nmore\nyes\n');
    const history = await strataOk(root, [
      'history',
      '--no-trunc',
      '--format',
      '{{.Comment}}',
      'test/committed:1',
    ]);
    assert.equal(history.stdout.split('\n')[0], 'a message');
    assert.equal(
      (
        await strataOk(root, ['image', 'inspect', '--format', '{{.Author}}', 'test/committed:1'])
      ).stdout.trim(),
      'tester',
    );
    await strataOk(root, ['rm', 'changer']);
  });

  test('--restart on-failure:2 restarts a failing container twice, then leaves it exited', async () => {
    await strataOk(root, [
      'run',
      '-d',
      '--name',
      'flaky',
      '--restart',
      'on-failure:2',
      'busybox',
      'sh',
      '-c',
      'echo attempt; exit 5',
    ]);
    await until('the retries to end', async () => {
      const status = await inspect('flaky', '{{.State.Status}} {{.RestartCount}}');
      return status === 'exited 2' ? status : undefined;
    });
    assert.equal((await strataOk(root, ['logs', 'flaky'])).stdout, 'attempt\nattempt\nattempt\n');
    assert.equal((await strataOk(root, ['wait', 'flaky'])).stdout, '5\n');
    const conflicting = await strata(root, ['run', '--rm', '--restart', 'always', 'busybox', 'true']);
    assert.match(conflicting.stderr, /^Error: conflicting options: --restart and --rm/);
    await strataOk(root, ['rm', 'flaky']);
  });

  test('a name is unique; ps -a lists stopped containers; ps -s shows sizes', async () => {
    await strataOk(root, ['run', '--name', 'once', 'busybox', 'sh', '-c', 'head -c 5000 /dev/zero > /big']);
    const again = await strata(root, ['run', '--name', 'once', 'busybox', 'true']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^Error: the container name "\/once" is already in use/);
    assert.doesNotMatch((await strataOk(root, ['ps'])).stdout, /once/);
    const listed = await strataOk(root, ['ps', '-a', '-s', '--format', '{{.Names}} {{.Status}} {{.Size}}']);
    assert.match(listed.stdout, /^once Exited \(0\) .* ago 5(\.\d+)?kB \(virtual [\d.]+MB\)$/m);
    await strataOk(root, ['rm', 'once']);
  });
});
