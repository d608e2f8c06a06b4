// Makes the V8 code cache of dist/bundle/strata.cjs (see bin/launch.cjs, scripts/bundle.mjs); run by
// `npm run build` after the bundle. A code cache holds the functions compiled when it is made, so
// it is trained: a build from scratch in a scratch store, then the same build again (the cached
// rebuild, where startup matters most), the second starting from the cache the first left and
// writing it back with what it compiled too. Only that: every command deserializes the whole
// cache, and a larger one trained on more commands (help, lint, images, save/load) made each of
// those no faster and the cached rebuild ~5 ms slower than compiling their few other functions.
// No network, no base image. The cache suits the node binary and V8 flags that made it; strata
// run with others compiles from source (V8 refuses the cache).
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const requireHere = createRequire(import.meta.url);
const launcherPath = requireHere.resolve('../bin/launch.cjs');
const launcher = requireHere(launcherPath);

if (process.argv[2] === '--train') {
  // One training command, in this process: the bundle reads its arguments from process.argv.
  process.argv.splice(2, 1);
  launcher.run(launcher.BUNDLE, { writeCache: true });
} else {
  const scratch = await mkdtemp(join(tmpdir(), 'strata-code-cache-'));
  try {
    await train(scratch);
  } catch (err) {
    // strata works without the cache, only slower: a build that cannot train one (strata build
    // broken mid-change, an odd machine) still builds. test/startup.test.ts insists on one.
    await rm(launcher.cacheFile(launcher.BUNDLE), { force: true });
    process.stderr.write(`warning: no code cache for dist/bundle/strata.cjs: ${err.message}\n`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function train(scratch) {
  const context = join(scratch, 'context');
  await mkdir(join(context, 'src'), { recursive: true });
  await writeFile(join(context, 'src', 'main.txt'), 'hello\n');
  await writeFile(join(context, 'notes.md'), 'ignored\n');
  await writeFile(join(context, '.dockerignore'), '*.md\n');
  await writeFile(
    join(context, 'Dockerfile'),
    [
      // Steps that need no mount (a scratch base, copies into new directories): root or not.
      'FROM scratch',
      'ARG VERSION=1',
      'ENV APP_VERSION=$VERSION',
      'LABEL org.opencontainers.image.title=train',
      'COPY src/ /app/src/',
      'COPY --chmod=0755 . /srv/',
      'USER 1000',
      'CMD ["/app/run"]',
      '',
    ].join('\n'),
  );
  const build = ['--root', join(scratch, 'store'), 'build', '-q', '-t', 'strata-code-cache/train:1', context];
  const commands = [build, build];
  // V8 flags from NODE_OPTIONS would make a cache that strata, run without them, refuses.
  const env = { ...process.env, NODE_OPTIONS: '' };
  await rm(launcher.cacheFile(launcher.BUNDLE), { force: true });
  for (const args of commands) {
    const ran = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--train', ...args], {
      env,
      encoding: 'utf8',
    });
    if (ran.status !== 0) {
      throw new Error(
        `code cache training: strata ${args.join(' ')} failed (${ran.status ?? ran.signal}):\n${ran.stderr}`,
      );
    }
  }
  // What a plain `strata` makes of it, in a fresh process.
  const check = spawnSync(
    process.execPath,
    [
      '-e',
      'const l = require(process.argv[1]); process.stdout.write(l.compile(l.BUNDLE).cache)',
      launcherPath,
    ],
    { env, encoding: 'utf8' },
  );
  if (check.stdout !== 'used') throw new Error(`the code cache is not used (${check.stdout}${check.stderr})`);
}
