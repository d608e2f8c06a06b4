/**
 * How bin/strata starts: the one-file bundle (scripts/bundle.mjs) compiled with the V8 code cache
 * that `npm run build` trains for it (scripts/code-cache.mjs), and what happens when the cache
 * cannot be used or the bundle is missing. The bundle finds what it loads at first use (the gzip
 * worker, undici's bundle, zstd-napi) from where it is, not from where it was built.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { compressStream } from '../src/archive/compression.js';
import { REPO_ROOT, STRATA_BIN, mustRun, run, strata, strataOk, tempDir } from './helpers/cli.js';
import { REGISTRY_BIN, startRegistry } from './helpers/registry.js';

interface Launcher {
  BUNDLE: string;
  compile(bundle: string): { cache: 'used' | 'rejected' | 'none' };
}

const BUNDLE_DIR = join(REPO_ROOT, 'dist', 'bundle');

/**
 * What the launcher beside `bin` (a copy of bin/strata: bin/launch.cjs) makes of its bundle's
 * code cache, in a fresh process.
 */
async function cacheState(bin: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const script = 'const l = require(process.argv[1]); process.stdout.write(l.compile(l.BUNDLE).cache)';
  const result = await run(process.execPath, ['-e', script, join(dirname(bin), 'launch.cjs')], { env });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

describe('CLI startup', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let tar: string;

  /** A copy of the built CLI elsewhere, as if installed there (the bundle copied, the rest linked). */
  async function install(name: string): Promise<string> {
    const home = join(dir.path, name);
    await mkdir(join(home, 'dist'), { recursive: true });
    await mustRun('cp', ['-a', join(REPO_ROOT, 'bin'), join(home, 'bin')]);
    for (const entry of await readdir(join(REPO_ROOT, 'dist'))) {
      if (entry === 'bundle') await mustRun('cp', ['-a', BUNDLE_DIR, join(home, 'dist', 'bundle')]);
      else await symlink(join(REPO_ROOT, 'dist', entry), join(home, 'dist', entry));
    }
    await symlink(join(REPO_ROOT, 'node_modules'), join(home, 'node_modules'));
    return join(home, 'bin', 'strata');
  }

  before(async () => {
    assert.ok(existsSync(join(BUNDLE_DIR, 'strata.cjs.cache')), 'no code cache: run npm run build first');
    dir = await tempDir('startup');
    root = join(dir.path, 'store');
    const tree = join(dir.path, 'tree');
    await mkdir(tree);
    await writeFile(join(tree, 'hello.txt'), 'hello\n');
    // Over one gzip block (1 MiB): a push compresses it in the worker threads.
    await writeFile(join(tree, 'noise.bin'), randomBytes(3 * 1024 * 1024));
    tar = join(dir.path, 'tree.tar');
    await mustRun('tar', ['-C', tree, '-cf', tar, '.']);
    await strataOk(root, ['import', tar, 'startup/plain:1']);
  });
  after(() => dir?.cleanup());

  test('node does not load NODE_EXTRA_CA_CERTS at start-up (strata reads it on its first TLS connection)', async () => {
    // node warns at start-up when it cannot load the file; bin/strata hands it over instead.
    const missing = join(dir.path, 'no-such-bundle.pem');
    const eager = await run(process.execPath, ['-e', '0'], { env: { NODE_EXTRA_CA_CERTS: missing } });
    assert.match(eager.stderr, /Ignoring extra certs/, 'node itself loads it eagerly');
    const result = await run(STRATA_BIN, ['--version'], { env: { NODE_EXTRA_CA_CERTS: missing } });
    assert.equal(result.code, 0);
    assert.equal(result.stderr, '');
  });

  test("node runs with glibc's huge pages for malloc; child processes get the caller's GLIBC_TUNABLES back", async () => {
    const caller = 'glibc.malloc.arena_max=4';
    // The node process itself (bin/strata execs it): its environment at start.
    const child = spawn(STRATA_BIN, ['--root', root, 'load'], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { ...process.env, GLIBC_TUNABLES: caller },
    });
    let environ = '';
    for (let tries = 0; tries < 500 && !/(^|\/)node\0/.test(environ); tries++) {
      environ = await readFile(`/proc/${child.pid}/cmdline`, 'utf8').catch(() => '');
      await sleep(10);
    }
    environ = await readFile(`/proc/${child.pid}/environ`, 'utf8');
    child.kill('SIGINT');
    // glibc rewrites the variable it parsed at start-up: the separator may read as a NUL there.
    assert.match(environ, /(^|\0)GLIBC_TUNABLES=glibc\.malloc\.arena_max=4[:\0]glibc\.malloc\.hugetlb=1\0/);
    // A child of strata (a credential helper, run by logout) sees what the caller set, or nothing.
    const helpers = join(dir.path, 'helpers');
    const seen = join(dir.path, 'helper-saw');
    await mkdir(helpers, { recursive: true });
    await writeFile(
      join(helpers, 'docker-credential-probe'),
      `#!/bin/sh\necho "\${GLIBC_TUNABLES-unset}" > '${seen}'\ncat > /dev/null\n`,
      { mode: 0o755 },
    );
    const config = join(dir.path, 'docker-config');
    await mkdir(config, { recursive: true });
    await writeFile(join(config, 'config.json'), JSON.stringify({ credsStore: 'probe' }));
    const env = { DOCKER_CONFIG: config, PATH: `${helpers}:${process.env.PATH ?? ''}` };
    for (const [given, expected] of [
      [caller, caller],
      [undefined, 'unset'],
    ] as const) {
      const logout = await run(STRATA_BIN, ['logout', 'localhost:5000'], {
        env: { ...env, GLIBC_TUNABLES: given },
      });
      assert.equal(logout.code, 0, logout.stderr);
      assert.equal((await readFile(seen, 'utf8')).trim(), expected);
    }
  });

  test('the code cache the build made is used by bin/strata', async () => {
    assert.equal(await cacheState(STRATA_BIN), 'used');
    const launcher = createRequire(import.meta.url)(join(dirname(STRATA_BIN), 'launch.cjs')) as Launcher;
    assert.equal(launcher.BUNDLE, join(BUNDLE_DIR, 'strata.cjs'));
  });

  test('save | load streams through stdout and stdin', async () => {
    const saved = await strataOk(root, ['save', 'startup/plain:1']);
    const other = join(dir.path, 'loaded');
    const loaded = await strataOk(other, ['load'], { input: saved.stdoutBytes });
    assert.equal(loaded.stdout, 'Loaded image: startup/plain:1\n');
    const ids = await Promise.all(
      [root, other].map(async (store) => (await strataOk(store, ['images', '-q'])).stdout),
    );
    assert.equal(ids[0], ids[1]);
  });

  test('arguments, environment and working directory are those of the run', async () => {
    const cwd = join(dir.path, 'cwd');
    await mkdir(cwd);
    const env = { STRATA_ROOT: 'relative-store', SOURCE_DATE_EPOCH: '86400' };
    const imported = await run(STRATA_BIN, ['import', '../tree.tar', 'startup/env:1'], { cwd, env });
    assert.equal(imported.code, 0, imported.stderr);
    assert.ok(existsSync(join(cwd, 'relative-store', 'images.json')), 'STRATA_ROOT resolved against the cwd');
    const created = await run(STRATA_BIN, ['inspect', '-f', '{{.Created}}', 'startup/env:1'], { cwd, env });
    assert.equal(created.stdout.trim(), '1970-01-02T00:00:00Z');
    const listed = await run(STRATA_BIN, ['--root', root, 'images', '--format', '{{.Repository}}'], {
      cwd,
      env,
    });
    assert.equal(listed.stdout, 'startup/plain\n', '--root wins over STRATA_ROOT');
  });

  test('exit codes: 0 for --version, 2 for a usage error, 1 for a user mistake', async () => {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const shown = await run(STRATA_BIN, ['--version']);
    assert.deepEqual([shown.code, shown.stdout], [0, `${version}\n`]);
    const unknown = await strata(root, ['no-such-command']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'no-such-command'/);
    const missing = await strata(root, ['rmi', 'no/such:image']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: .*no\/such:image/m);
  });

  test('SIGINT reaches node itself', async () => {
    // `load` waits for its archive on stdin; the signal must end it, not a wrapper around it.
    const child = spawn(STRATA_BIN, ['--root', root, 'load'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    for (let tries = 0; tries < 500; tries++) {
      const cmdline = await readFile(`/proc/${child.pid}/cmdline`, 'utf8').catch(() => '');
      if (/(^|\/)node\0/.test(cmdline)) break;
      await sleep(10);
    }
    await sleep(200);
    child.kill('SIGINT');
    assert.equal(await exited, 'SIGINT');
  });

  test('a relocated copy finds zstd-napi and the gzip worker from where it is', async () => {
    const bin = await install('relocated');
    assert.equal(await cacheState(bin), 'used');
    const zst = join(dir.path, 'tree.tar.zst');
    await pipeline(createReadStream(tar), compressStream('zstd'), createWriteStream(zst));
    const other = join(dir.path, 'relocated-store');
    const imported = await run(bin, ['--root', other, 'import', zst, 'startup/zstd:1']);
    assert.equal(imported.code, 0, imported.stderr);
    const layers = ['inspect', '-f', '{{json .RootFS.Layers}}'];
    const relocated = await run(bin, ['--root', other, ...layers, 'startup/zstd:1']);
    assert.equal(relocated.stdout, (await strataOk(root, [...layers, 'startup/plain:1'])).stdout);
  });

  test('a cache V8 refuses, a cache of another bundle, or no bundle: strata still runs', async () => {
    const bin = await install('fallback');
    const works = async (env: NodeJS.ProcessEnv = {}): Promise<void> => {
      const result = await run(bin, ['--root', root, 'images', '--format', '{{.Repository}}:{{.Tag}}'], {
        env,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'startup/plain:1\n');
    };
    // V8 flags are part of what a code cache must match.
    const flags = { NODE_OPTIONS: '--max-old-space-size=512' };
    assert.equal(await cacheState(bin, flags), 'rejected');
    await works(flags);
    // A cache names its bundle in its first line; a rebuilt bundle does not take an old cache.
    const bundle = join(dir.path, 'fallback', 'dist', 'bundle', 'strata.cjs');
    const source = await readFile(bundle, 'utf8');
    await writeFile(bundle, source.replace(/^\/\/ strata bundle [0-9a-f]{8}/, '// strata bundle 00000000'));
    assert.equal(await cacheState(bin), 'none');
    await works();
    // Without the bundle, the plain compiled modules run.
    await rm(join(dir.path, 'fallback', 'dist', 'bundle'), { recursive: true });
    await works();
  });

  test('push compresses in the gzip worker threads and talks through undici', async (t) => {
    if (!existsSync(REGISTRY_BIN)) {
      t.skip(`${REGISTRY_BIN} is not installed`);
      return;
    }
    const registry = await startRegistry(join(dir.path, 'registry'));
    try {
      const name = `${registry.host}/startup/plain:1`;
      await strataOk(root, ['tag', 'startup/plain:1', name]);
      const pushed = await strataOk(root, ['push', name]);
      assert.match(pushed.stdout, /^1: digest: sha256:[0-9a-f]{64} size: \d+$/m);
      // Without its worker threads the pool compresses in-process, and warns.
      assert.doesNotMatch(pushed.stderr, /worker/i);
    } finally {
      await registry.stop();
    }
  });
});
