import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { isStrataError } from '../errors.js';
import { runProcess, type RunProcessOptions, type RunProcessResult } from './index.js';
import { findRunc } from './runc.js';
import { RuncSession, findExecutor } from './session.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, ociSpec } from './spec.js';

const execFileAsync = promisify(execFile);

const BUSYBOX = '/bin/busybox';
const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const isRoot = process.getuid?.() === 0;
const hasBusybox = await lstat(BUSYBOX).then(
  () => true,
  () => false,
);
const runc = isRoot ? await findRunc() : undefined;

let scratch: string;
/** A busybox image as scripts/test-images.sh makes it: /proc, /sys, /dev, /etc, no /etc/hosts. */
let busybox: string;
/** Only /bin and /etc/passwd: every mount point must be created, and removed again. */
let bare: string;
/** Has every mount point and /etc file already: nothing at all may change. */
let complete: string;
const mounted: string[] = [];

async function buildBusybox(dir: string, layout: 'busybox' | 'bare' | 'complete'): Promise<void> {
  const dirs =
    layout === 'bare'
      ? ['bin', 'etc']
      : ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev'];
  for (const sub of dirs) await mkdir(join(dir, sub), { recursive: true, mode: 0o755 });
  if (layout !== 'bare') await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  const { stdout } = await execFileAsync(BUSYBOX, ['--list-full']);
  for (const applet of stdout.split('\n').filter(Boolean)) {
    if (applet === 'bin/busybox') continue;
    if (layout === 'bare' && !applet.startsWith('bin/')) continue;
    await symlink('/bin/busybox', join(dir, applet)).catch(() => undefined);
  }
  await writeFile(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n',
  );
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  if (layout === 'complete') {
    for (const name of ['hosts', 'hostname', 'resolv.conf']) await writeFile(join(dir, 'etc', name), '');
  }
}

interface Overlay {
  merged: string;
  upper: string;
  lower: string;
}

/** Set while the session variant runs: overlays are mounted where its containers see them. */
let activeSession: RuncSession | undefined;

async function overlay(lower: string): Promise<Overlay> {
  const name = `ov-${randomBytes(4).toString('hex')}`;
  const dir = join(scratch, name);
  const [upper, work] = ['upper', 'work'].map((sub) => join(dir, sub)) as [string, string];
  const merged = activeSession ? join(activeSession.mountRoot, name) : join(dir, 'merged');
  for (const sub of [merged, upper, work]) await mkdir(sub, { recursive: true });
  await execFileAsync('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
    merged,
  ]);
  mounted.push(merged);
  return { merged, upper, lower };
}

interface Captured extends RunProcessResult {
  stdout: string;
  stderr: string;
}

async function run(
  options: Partial<RunProcessOptions> & Pick<RunProcessOptions, 'rootfs' | 'args' | 'isolation'>,
): Promise<Captured> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const result = await runProcess({
    env: [PATH],
    cwd: '/',
    uid: 0,
    gid: 0,
    network: 'none',
    onOutput: (stream, data) => (stream === 1 ? out : err).push(Buffer.from(data)),
    ...(activeSession ? { session: activeSession } : {}),
    ...options,
  });
  return { ...result, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

async function sh(
  rootfs: string,
  isolation: 'runc' | 'chroot',
  script: string,
  extra: Partial<RunProcessOptions> = {},
) {
  return run({ rootfs, isolation, args: ['/bin/sh', '-c', script], ...extra });
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    names.push(relative);
    if (entry.isDirectory()) names.push(...(await tree(dir, relative)));
  }
  return names.sort();
}

/**
 * What a layer made of `upper` would hold beyond nothing: entries that are not plain copies of a
 * lower directory (overlay copies a directory up when something is created in it; with its times
 * restored it is the lower's directory again, which a layer differ leaves out).
 */
async function changes(ov: Overlay): Promise<string[]> {
  const changed: string[] = [];
  for (const path of await tree(ov.upper)) {
    const up = await lstat(join(ov.upper, path), { bigint: true });
    const low = await lstat(join(ov.lower, path), { bigint: true }).catch(() => undefined);
    const same =
      low !== undefined &&
      up.isDirectory() &&
      low.isDirectory() &&
      up.mode === low.mode &&
      up.uid === low.uid &&
      up.gid === low.gid &&
      up.mtimeNs === low.mtimeNs;
    if (!same) changed.push(path);
  }
  return changed;
}

function capabilityMask(names: readonly string[]): string {
  let mask = 0n;
  for (const name of names)
    mask |= 1n << BigInt(ALL_CAPABILITIES.indexOf(name as (typeof ALL_CAPABILITIES)[number]));
  return mask.toString(16).padStart(16, '0');
}

function statusField(status: string, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(status)?.[1];
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-runtime-'));
  if (!isRoot || !hasBusybox) return;
  busybox = join(scratch, 'busybox');
  bare = join(scratch, 'bare');
  complete = join(scratch, 'complete');
  await buildBusybox(busybox, 'busybox');
  await buildBusybox(bare, 'bare');
  await buildBusybox(complete, 'complete');
});

after(async () => {
  for (const target of mounted.reverse()) {
    await execFileAsync('umount', [target]).catch(() =>
      execFileAsync('umount', ['-l', target]).catch(() => undefined),
    );
  }
  await rm(scratch, { recursive: true, force: true });
});

describe('ociSpec', () => {
  const base = {
    rootfs: '/var/lib/strata/build/tmp/x/merged',
    args: ['/bin/sh', '-c', 'true'],
    env: [PATH],
    cwd: '/work',
    uid: 0,
    gid: 0,
    additionalGids: [],
    hostname: 'abcdef012345',
    network: 'none' as const,
    insecure: false,
    mounts: [],
  };

  it('has namespaces, Docker capabilities, kernel file systems, masks and a deny-all device rule', () => {
    const spec = ociSpec(base);
    assert.equal(spec.ociVersion, '1.0.2');
    assert.deepEqual(spec.root, { path: base.rootfs, readonly: false });
    assert.equal(spec.hostname, 'abcdef012345');
    assert.deepEqual(spec.process.user, { uid: 0, gid: 0 });
    assert.equal(spec.process.terminal, false);
    assert.equal(spec.process.noNewPrivileges, false);
    assert.deepEqual(spec.process.args, base.args);
    assert.equal(spec.process.cwd, '/work');
    assert.deepEqual(
      spec.linux.namespaces.map((ns) => ns.type),
      ['pid', 'ipc', 'uts', 'mount', 'network'],
    );
    assert.deepEqual(spec.process.capabilities.bounding, [...DEFAULT_CAPABILITIES]);
    assert.deepEqual(spec.process.capabilities.effective, [...DEFAULT_CAPABILITIES]);
    assert.deepEqual(spec.process.capabilities.permitted, [...DEFAULT_CAPABILITIES]);
    assert.equal('inheritable' in spec.process.capabilities, false);
    assert.equal('ambient' in spec.process.capabilities, false);
    const byDestination = new Map(spec.mounts.map((mount) => [mount.destination, mount]));
    assert.deepEqual(
      [...byDestination.keys()],
      ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys'],
    );
    assert.equal(byDestination.get('/proc')?.type, 'proc');
    assert.deepEqual(byDestination.get('/dev')?.options, [
      'nosuid',
      'strictatime',
      'mode=755',
      'size=65536k',
    ]);
    assert.ok(byDestination.get('/dev/pts')?.options.includes('newinstance'));
    assert.ok(byDestination.get('/dev/pts')?.options.includes('gid=5'));
    assert.ok(byDestination.get('/dev/shm')?.options.includes('size=65536k'));
    assert.ok(byDestination.get('/sys')?.options.includes('ro'));
    assert.deepEqual(spec.linux.maskedPaths, [...MASKED_PATHS]);
    assert.deepEqual(spec.linux.readonlyPaths, [...READONLY_PATHS]);
    assert.ok(spec.linux.maskedPaths?.includes('/proc/kcore'));
    assert.ok(spec.linux.readonlyPaths?.includes('/proc/sys'));
    assert.deepEqual(spec.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
    assert.equal('cgroupsPath' in spec.linux, false);
  });

  it('keeps the host network namespace, gives non-root users only a bounding set', () => {
    const spec = ociSpec({ ...base, network: 'host', uid: 1000, gid: 1000, additionalGids: [27, 100] });
    assert.deepEqual(
      spec.linux.namespaces.map((ns) => ns.type),
      ['pid', 'ipc', 'uts', 'mount'],
    );
    assert.deepEqual(spec.process.user, { uid: 1000, gid: 1000, additionalGids: [27, 100] });
    assert.deepEqual(spec.process.capabilities, { bounding: [...DEFAULT_CAPABILITIES] });
  });

  it('insecure: every capability, no masks, devices allowed, /sys writable', () => {
    const spec = ociSpec({ ...base, insecure: true });
    assert.deepEqual(spec.process.capabilities.effective, [...ALL_CAPABILITIES]);
    assert.equal(spec.linux.maskedPaths, undefined);
    assert.equal(spec.linux.readonlyPaths, undefined);
    assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
    assert.ok(spec.mounts.find((mount) => mount.destination === '/sys')?.options.includes('rw'));
  });

  it('turns caller mounts into rbind and tmpfs mounts with their access', () => {
    const spec = ociSpec({
      ...base,
      mounts: [
        { type: 'bind', source: '/host/cache', destination: '/cache', readonly: false, options: [] },
        { type: 'bind', source: '/host/etc/hosts', destination: '/etc/hosts', readonly: true, options: [] },
        { type: 'tmpfs', destination: '/tmp', readonly: false, options: ['size=64m'] },
      ],
    });
    assert.deepEqual(spec.mounts.slice(6), [
      { destination: '/cache', type: 'bind', source: '/host/cache', options: ['rbind', 'rw'] },
      { destination: '/etc/hosts', type: 'bind', source: '/host/etc/hosts', options: ['rbind', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'size=64m', 'rw'] },
    ]);
  });
});

const variants = [
  { isolation: 'runc', session: false },
  { isolation: 'runc', session: true },
  { isolation: 'chroot', session: false },
] as const;

for (const { isolation, session } of variants) {
  const skip = !isRoot
    ? 'needs root'
    : !hasBusybox
      ? 'needs busybox-static'
      : isolation === 'runc' && runc === undefined
        ? 'needs runc'
        : session && (await findExecutor()) === undefined
          ? 'needs strata-exec (npm run build)'
          : false;
  const label = session ? 'runc isolation in a build session (strata-exec)' : `${isolation} isolation`;

  describe(`runProcess with ${label}`, { skip, concurrency: 1 }, () => {
    if (session) {
      before(async () => {
        activeSession = await RuncSession.open(runc as string, join(scratch, 'session'));
      });
      after(async () => {
        await activeSession?.close();
        activeSession = undefined;
      });
    }

    it('returns the exit code', async () => {
      const ov = await overlay(busybox);
      for (const code of [0, 1, 42]) {
        const result = await sh(ov.merged, isolation, `exit ${code}`);
        assert.equal(result.exitCode, code);
        assert.equal(result.isolation, isolation);
        assert.equal(result.signal, undefined);
      }
      assert.equal((await run({ rootfs: ov.merged, isolation, args: ['true'] })).exitCode, 0);
      assert.equal((await run({ rootfs: ov.merged, isolation, args: ['false'] })).exitCode, 1);
    });

    it('keeps stdout and stderr apart', async () => {
      const ov = await overlay(busybox);
      const result = await sh(ov.merged, isolation, 'echo out; echo err >&2; echo out2');
      assert.equal(result.stdout, 'out\nout2\n');
      assert.equal(result.stderr, 'err\n');
    });

    it('passes exactly the environment, and starts in cwd (created when missing, then kept)', async () => {
      const ov = await overlay(busybox);
      process.env.STRATA_TEST_HOST_ONLY = '1';
      const result = await sh(
        ov.merged,
        isolation,
        'env | cut -d= -f1 | sort | tr "\\n" " "; echo; echo "$MULTI"; pwd',
        {
          env: [PATH, 'FOO=bar baz', 'EMPTY=', 'MULTI=a\nb'],
          cwd: '/work/dir',
        },
      ).finally(() => delete process.env.STRATA_TEST_HOST_ONLY);
      const [names, multiFirst, multiSecond, pwd] = result.stdout.split('\n');
      // HOME comes from the image's passwd as runc sets it, PWD and SHLVL from the shell (and b
      // from MULTI's second line); nothing of the host's environment gets in.
      assert.deepEqual(names?.trim().split(' '), [
        'EMPTY',
        'FOO',
        'HOME',
        'MULTI',
        'PATH',
        'PWD',
        'SHLVL',
        'b',
      ]);
      assert.deepEqual([multiFirst, multiSecond], ['a', 'b']);
      assert.equal(pwd, '/work/dir');
      assert.ok((await lstat(join(ov.merged, 'work/dir'))).isDirectory());
      assert.equal((await lstat(join(ov.merged, 'work/dir'))).mode & 0o777, 0o755);
    });

    it('runs as the given uid, gid and supplementary groups', async () => {
      const ov = await overlay(busybox);
      const root = await sh(ov.merged, isolation, 'id -u; id -g; id -G');
      assert.equal(root.stdout, '0\n0\n0\n');
      const user = await sh(ov.merged, isolation, 'id -u; id -g; id -G', {
        uid: 1000,
        gid: 1001,
        additionalGids: [50, 1001],
      });
      assert.equal(user.stdout.split('\n').slice(0, 2).join(' '), '1000 1001');
      assert.deepEqual(user.stdout.split('\n')[2]?.split(' ').sort(), ['1001', '50']);
      const noGroups = await sh(ov.merged, isolation, 'id -G; echo $HOME', { uid: 65534, gid: 65534 });
      assert.equal(noGroups.stdout, '65534\n/home\n');
      assert.equal((await sh(ov.merged, isolation, 'echo $HOME', { uid: 1000 })).stdout, '/\n');
      assert.equal((await sh(ov.merged, isolation, 'echo $HOME', { env: [PATH, 'HOME=/x'] })).stdout, '/x\n');
    });

    it('sets the hostname, a random 12-hex one by default', async () => {
      const ov = await overlay(busybox);
      assert.equal((await sh(ov.merged, isolation, 'hostname', { hostname: 'builder' })).stdout, 'builder\n');
      assert.match((await sh(ov.merged, isolation, 'hostname')).stdout, /^[0-9a-f]{12}\n$/);
      assert.equal((await readFile('/proc/sys/kernel/hostname', 'utf8')).trim() !== 'builder', true);
    });

    it('has its own /proc (it is pid 1), /dev with the default devices, and /dev/shm', async () => {
      const ov = await overlay(busybox);
      const result = await sh(
        ov.merged,
        isolation,
        'echo $$; echo x > /dev/null; head -c 4 /dev/zero | wc -c; ls /dev | sort | tr "\\n" " "; echo; ' +
          'echo shm > /dev/shm/x && cat /dev/shm/x; test -L /dev/fd && echo fd; test -c /dev/full && echo full',
      );
      const [pid, zero, devices, shm, fd, full] = result.stdout.split('\n');
      assert.equal(pid, '1');
      assert.equal(zero?.trim(), '4');
      for (const name of [
        'null',
        'zero',
        'full',
        'random',
        'urandom',
        'tty',
        'pts',
        'shm',
        'mqueue',
        'ptmx',
        'fd',
        'stdin',
        'stdout',
        'stderr',
      ]) {
        assert.ok(devices?.split(' ').includes(name), `missing /dev/${name} in ${devices}`);
      }
      assert.equal(shm, 'shm');
      assert.equal(fd, 'fd');
      assert.equal(full, 'full');
      assert.equal(result.stderr, '');
    });

    it('binds /etc/hosts, /etc/hostname and /etc/resolv.conf read-only', async () => {
      const ov = await overlay(busybox);
      const result = await sh(
        ov.merged,
        isolation,
        'cat /etc/hosts; echo ---; cat /etc/hostname; echo ---; cat /etc/resolv.conf; echo ---; ' +
          'echo x > /etc/hosts && echo writable; true',
        { hostname: 'myhost' },
      );
      const [hosts, hostname, resolv] = result.stdout.split('---\n');
      assert.match(hosts ?? '', /^127\.0\.0\.1\s+localhost myhost$/m);
      assert.match(hosts ?? '', /^::1\s+localhost/m);
      assert.equal(hostname, 'myhost\n');
      assert.equal(
        resolv,
        await readFile('/etc/resolv.conf', 'utf8').catch(() => 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n'),
      );
      assert.ok(!result.stdout.includes('writable'));
      assert.match(result.stderr, /read-only/i);
    });

    it('network none: only lo, and it is up', async () => {
      const ov = await overlay(busybox);
      const result = await sh(
        ov.merged,
        isolation,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo",
      );
      const [interfaces, link] = [
        result.stdout.split('\n').slice(0, 1),
        result.stdout.split('\n').slice(1).join('\n'),
      ];
      assert.deepEqual(interfaces, ['lo']);
      assert.match(result.stdout.split('\n')[1] ?? '', /^1: lo:/);
      assert.match(link, /UP/);
    });

    it('network host: sees the host interfaces', async () => {
      const ov = await overlay(busybox);
      const result = await sh(ov.merged, isolation, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", {
        network: 'host',
      });
      const hostInterfaces = (await readFile('/proc/net/dev', 'utf8'))
        .split('\n')
        .slice(2)
        .map((line) => line.split(':')[0]?.trim())
        .filter(Boolean)
        .sort();
      assert.deepEqual(result.stdout.split('\n').filter(Boolean).sort(), hostInterfaces);
    });

    it('mounts tmpfs and bind mounts, enforcing read-only', async () => {
      const ov = await overlay(busybox);
      const rw = join(scratch, `rw-${isolation}`);
      const ro = join(scratch, `ro-${isolation}`);
      await mkdir(rw, { recursive: true });
      await mkdir(ro, { recursive: true });
      await writeFile(join(ro, 'file'), 'from host\n');
      const result = await sh(
        ov.merged,
        isolation,
        'echo cached > /cache/new; cat /src/file; echo x > /src/other || echo ro-enforced; ' +
          'echo t > /scratch/t && cat /scratch/t; grep " /scratch " /proc/mounts',
        {
          mounts: [
            { type: 'bind', source: rw, destination: '/cache' },
            { type: 'bind', source: ro, destination: '/src', readonly: true },
            { type: 'tmpfs', destination: '/scratch', options: ['size=1m'] },
          ],
        },
      );
      assert.equal(await readFile(join(rw, 'new'), 'utf8'), 'cached\n');
      const lines = result.stdout.split('\n');
      assert.deepEqual(lines.slice(0, 3), ['from host', 'ro-enforced', 't']);
      assert.match(lines[3] ?? '', /tmpfs \/scratch tmpfs rw,.*size=1024k/);
      // Nothing of the mounts, nor their created mount points, is left in the layer.
      assert.deepEqual(await changes(ov), []);

      // A command may come from a mount (RUN --mount=type=bind … /src/tool).
      await writeFile(join(ro, 'tool'), '#!/bin/sh\necho tool "$@"\n', { mode: 0o755 });
      const tool = await run({
        rootfs: ov.merged,
        isolation,
        args: ['/src/tool', 'arg'],
        mounts: [{ type: 'bind', source: ro, destination: '/src', readonly: true }],
      });
      assert.equal(tool.stdout, 'tool arg\n');
    });

    it('has Docker capabilities by default, all of them when insecure', async () => {
      const ov = await overlay(busybox);
      const docker = capabilityMask(DEFAULT_CAPABILITIES);
      const rootStatus = (await sh(ov.merged, isolation, 'cat /proc/self/status')).stdout;
      assert.equal(statusField(rootStatus, 'CapEff'), docker);
      assert.equal(statusField(rootStatus, 'CapBnd'), docker);
      assert.equal(statusField(rootStatus, 'CapInh'), '0000000000000000');
      assert.equal(statusField(rootStatus, 'CapAmb'), '0000000000000000');
      const userStatus = (await sh(ov.merged, isolation, 'cat /proc/self/status', { uid: 1000, gid: 1000 }))
        .stdout;
      assert.equal(statusField(userStatus, 'CapEff'), '0000000000000000');
      assert.equal(statusField(userStatus, 'CapBnd'), docker);

      // Insecure grants every capability this process has (a sandbox may lack some).
      const all = statusField(await readFile('/proc/self/status', 'utf8'), 'CapBnd');
      const insecure = await sh(
        ov.merged,
        isolation,
        'grep CapEff /proc/self/status; grep " /sys " /proc/mounts',
        {
          insecure: true,
        },
      );
      assert.equal(statusField(insecure.stdout, 'CapEff'), all);
      assert.match(insecure.stdout, / \/sys sysfs rw,/);
    });

    it('masks and write-protects /proc paths, /sys read-only, unless insecure', async () => {
      const ov = await overlay(busybox);
      // Which masked paths exist depends on the kernel; these two are common.
      const masked = await lstat('/proc/timer_list').then(
        () => true,
        () => false,
      );
      const script =
        'wc -c < /proc/timer_list 2>/dev/null || echo none; ' +
        'grep -E " /proc/(sys|timer_list) | /sys " /proc/mounts | cut -d" " -f2,4 | cut -d, -f1';
      const confined = await sh(ov.merged, isolation, script);
      const [timerList, ...mountLines] = confined.stdout.trim().split('\n');
      if (masked) assert.equal(timerList?.trim(), '0');
      assert.ok(mountLines.includes('/proc/sys ro'), confined.stdout);
      assert.ok(mountLines.includes('/sys ro'), confined.stdout);
      if (masked) assert.ok(mountLines.includes('/proc/timer_list rw'), confined.stdout);

      const insecure = await sh(ov.merged, isolation, script, { insecure: true });
      const [insecureTimerList, ...insecureMounts] = insecure.stdout.trim().split('\n');
      if (masked) assert.notEqual(insecureTimerList?.trim(), '0');
      assert.deepEqual(insecureMounts, ['/sys rw']);
    });

    it('leaves no trace in the upper dir when the run changes nothing', async () => {
      // Every mount point exists in the image: the upper dir stays empty.
      const full = await overlay(complete);
      const result = await run({
        rootfs: full.merged,
        isolation,
        args: ['true'],
        mounts: [{ type: 'tmpfs', destination: '/new/deep/dir' }],
      });
      assert.equal(result.exitCode, 0);
      assert.deepEqual(await tree(full.upper), []);

      // No /proc, /dev, /sys, /etc/hosts…: all created for the run, all removed after it; /etc,
      // copied up by overlay when the files were created in it, keeps the lower's metadata.
      const empty = await overlay(bare);
      const before = await tree(empty.merged);
      const again = await run({
        rootfs: empty.merged,
        isolation,
        args: ['true'],
        mounts: [{ type: 'bind', source: scratch, destination: '/etc/app/cache', readonly: true }],
      });
      assert.equal(again.exitCode, 0);
      assert.deepEqual(await tree(empty.merged), before);
      assert.deepEqual(await changes(empty), []);
    });

    it('follows symlinks of the image inside the rootfs, never out to the host', async () => {
      const ov = await overlay(busybox);
      // An image whose resolv.conf points at a systemd path it does not have, absolutely.
      await symlink('/run/systemd/resolve/stub-resolv.conf', join(ov.merged, 'etc/resolv.conf'));
      await symlink('../srv/app', join(ov.merged, 'app'));
      const hostStub = await lstat('/run/systemd/resolve/stub-resolv.conf').then(
        (stats) => stats.mtimeMs,
        () => undefined,
      );
      const before = await changes(ov);
      const result = await sh(ov.merged, isolation, 'cat /etc/resolv.conf >/dev/null && pwd', {
        cwd: '/app',
      });
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout, '/srv/app\n');
      assert.ok((await lstat(join(ov.merged, 'srv/app'))).isDirectory());
      await assert.rejects(lstat(join(ov.merged, 'run')));
      assert.deepEqual(
        (await changes(ov)).filter((path) => !before.includes(path) && !path.startsWith('srv')),
        [],
      );
      assert.equal(
        await lstat('/run/systemd/resolve/stub-resolv.conf').then(
          (stats) => stats.mtimeMs,
          () => undefined,
        ),
        hostStub,
      );
    });

    it('does not start when aborted before it starts', async () => {
      const ov = await overlay(busybox);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(sh(ov.merged, isolation, 'true', { signal: controller.signal }), {
        name: 'AbortError',
      });
    });

    it('keeps what the process wrote, and only that', async () => {
      const ov = await overlay(bare);
      const result = await sh(
        ov.merged,
        isolation,
        'echo data > /etc/made; mkdir -p /out && echo 1 > /out/f; echo s > /dev/shm/gone',
      );
      assert.equal(result.exitCode, 0, result.stderr);
      assert.deepEqual(await tree(ov.upper), ['etc', 'etc/made', 'out', 'out/f']);
    });

    it('kills the process on abort', async () => {
      const ov = await overlay(busybox);
      const controller = new AbortController();
      const started = Date.now();
      // An unusual duration: other test files (tmux) run `sleep 60` on the host meanwhile.
      const running = sh(ov.merged, isolation, 'echo started; sleep 57.31 & sleep 57.31', {
        signal: controller.signal,
        onOutput: () => controller.abort(),
      });
      const result = await running;
      assert.equal(result.signal, 'SIGKILL');
      assert.equal(result.exitCode, 137);
      assert.ok(Date.now() - started < 20_000);
      const { stdout } = await execFileAsync('ps', ['-eo', 'args']);
      assert.ok(!stdout.split('\n').some((line) => line === 'sleep 57.31'), 'a container process survived');
      assert.deepEqual(await changes(ov), []);
    });

    it('rejects a command that is not in the image', async () => {
      const ov = await overlay(busybox);
      await assert.rejects(run({ rootfs: ov.merged, isolation, args: ['no-such-command'] }), (err: unknown) =>
        isStrataError(err, 'NOT_FOUND'),
      );
      await assert.rejects(
        run({ rootfs: ov.merged, isolation, args: ['true'], env: ['NOEQUALS'] }),
        (err: unknown) => isStrataError(err, 'INVALID_ARGUMENT'),
      );
    });
  });
}

describe(
  'RuncSession',
  {
    skip:
      !isRoot || runc === undefined || !hasBusybox || (await findExecutor()) === undefined
        ? 'needs root, runc, busybox-static and strata-exec'
        : false,
    concurrency: 1,
  },
  () => {
    let session: RuncSession;
    before(async () => {
      session = (await RuncSession.open(runc as string, join(scratch, 'session-own'))) as RuncSession;
    });
    after(async () => {
      await session.close();
    });

    async function stepRoot(): Promise<Overlay> {
      activeSession = session;
      try {
        return await overlay(busybox);
      } finally {
        activeSession = undefined;
      }
    }

    it('runs every step in its long-lived containers: one container for steps one after another', async () => {
      const before = session.stats();
      for (let index = 0; index < 3; index++) {
        const ov = await stepRoot();
        const result = await sh(ov.merged, 'runc', `echo $$ > /pid-${index}; hostname`, { session });
        assert.equal(result.exitCode, 0);
        // PID 1 of a fresh PID namespace each time, as with its own runc.
        assert.equal(await readFile(join(ov.upper, `pid-${index}`), 'utf8'), '1\n');
      }
      const after = session.stats();
      assert.equal(after.steps - before.steps, 3);
      assert.equal(after.containers, Math.max(before.containers, 1));
    });

    it('starts a second container for a step that runs while the first is busy', async () => {
      const [first, second] = [await stepRoot(), await stepRoot()];
      const results = await Promise.all([
        sh(first.merged, 'runc', 'sleep 0.3; echo one', { session }),
        sh(second.merged, 'runc', 'echo two', { session }),
      ]);
      assert.deepEqual(
        results.map((result) => result.stdout),
        ['one\n', 'two\n'],
      );
      assert.ok(session.stats().containers >= 2);
    });

    it('kills what a step left running when it ends, and its mounts are gone from the containers', async () => {
      const ov = await stepRoot();
      const result = await sh(ov.merged, 'runc', '(sleep 30 &) ; echo started', { session });
      assert.equal(result.stdout, 'started\n');
      const next = await stepRoot();
      const check = await sh(next.merged, 'runc', 'ps -o pid,comm | grep -c sleep || true', { session });
      assert.equal(check.stdout.trim(), '0');
    });

    it("reports a command the executor cannot start with runc's words and code", async () => {
      const ov = await stepRoot();
      await assert.rejects(
        run({
          rootfs: ov.merged,
          isolation: 'runc',
          session,
          args: ['/scratch/missing'],
          mounts: [{ type: 'tmpfs', destination: '/scratch' }],
        }),
        (err: unknown) =>
          isStrataError(err, 'NOT_FOUND') && /executable file not found|no such file/i.test(String(err)),
      );
      // The container survives a failed start.
      assert.equal((await sh(ov.merged, 'runc', 'true', { session })).exitCode, 0);
    });

    it('leaves a bind of a directory that holds the session to its own runc', async () => {
      const ov = await stepRoot();
      const before = session.stats().steps;
      const result = await run({
        rootfs: ov.merged,
        isolation: 'runc',
        session,
        args: ['ls', '/outer'],
        mounts: [{ type: 'bind', source: scratch, destination: '/outer', readonly: true }],
      });
      assert.equal(result.exitCode, 0);
      assert.match(result.stdout, /session-own/);
      assert.equal(session.stats().steps, before);
      // The step's root is still mounted and intact after the bind went away.
      assert.ok((await readdir(ov.merged)).includes('bin'));
    });

    it('falls back to runc per step when its containers cannot start', async () => {
      const broken = (await RuncSession.open('/bin/false', join(scratch, 'session-broken'))) as RuncSession;
      activeSession = broken;
      try {
        const ov = await overlay(busybox);
        const result = await sh(ov.merged, 'runc', 'echo still runs');
        assert.equal(result.stdout, 'still runs\n');
        assert.equal(broken.stats().steps, 0);
        assert.match(String(broken.stats().broken), /build container stopped/);
      } finally {
        activeSession = undefined;
        await broken.close();
      }
    });

    it('replaces a container that died, with a clear error for the step it was running', async () => {
      const ov = await stepRoot();
      const running = sh(ov.merged, 'runc', 'sleep 30', { session });
      await new Promise((resolve) => setTimeout(resolve, 300));
      session.killContainers();
      await assert.rejects(
        running,
        (err: unknown) => isStrataError(err, 'INTERNAL') && /build container stopped/.test(String(err)),
      );
      const again = await sh((await stepRoot()).merged, 'runc', 'echo alive', { session });
      assert.equal(again.stdout, 'alive\n');
    });
  },
);

describe('runc state', { skip: runc === undefined ? 'needs runc and root' : false }, () => {
  it('never touches the host runc state in /run/runc', async () => {
    const ov = await overlay(busybox);
    const before = await readdir('/run/runc').catch(() => undefined);
    await run({ rootfs: ov.merged, isolation: 'runc', args: ['true'] });
    assert.deepEqual(await readdir('/run/runc').catch(() => undefined), before);
  });
});
