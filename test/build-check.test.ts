/**
 * `strata build --check` and the check warnings of a real build, through the compiled CLI
 * (`npm run build` first) with a temporary store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, strata, strataOk, tempDir } from './helpers/cli.js';

describe('build checks (real CLI)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let root: string;
  let context: string;

  before(async () => {
    dir = await tempDir('build-check');
    root = join(dir.path, 'root');
    context = dir.path;
    await writeFile(join(context, 'hello.txt'), 'hello\n');
    await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD echo hello\n');
    await writeFile(join(context, 'Clean.Dockerfile'), 'FROM scratch\nCOPY hello.txt /\nCMD ["/hello"]\n');
    await writeFile(
      join(context, 'Strict.Dockerfile'),
      '# check=error=true\nFROM scratch AS Build\nCOPY hello.txt /\n',
    );
  });
  after(() => dir?.cleanup());

  const imageIds = async (): Promise<string> => (await strataOk(root, ['images', '-q'])).stdout;

  test('--check prints the findings, exits 1 and builds nothing', async () => {
    const result = await strata(root, ['build', '--check', '-t', 'checked', context]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stdout,
      [
        'Check complete, 1 warning has been found!',
        '',
        'WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
        'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
        'Dockerfile:3',
        '--------------------',
        '   1 |     FROM scratch',
        '   2 |     COPY hello.txt /hello.txt',
        '   3 | >>> CMD echo hello',
        '   4 |     ',
        '--------------------',
        '',
      ].join('\n'),
    );
    assert.equal(result.stderr, '', 'the report says it all (buildx prints no error line)');
    assert.equal(await imageIds(), '', 'a check stores no image');

    const clean = await strataOk(root, [
      'build',
      '--check',
      '-f',
      join(context, 'Clean.Dockerfile'),
      context,
    ]);
    assert.equal(clean.stdout, 'Check complete, no warnings found.\n');
    const skipped = await strataOk(root, [
      'build',
      '--check',
      '--build-arg',
      'BUILDKIT_DOCKERFILE_CHECK=skip=JSONArgsRecommended',
      context,
    ]);
    assert.equal(skipped.stdout, 'Check complete, no warnings found.\n');
    assert.equal(await imageIds(), '');
  });

  test('--check with check=error=true names the rules; a broken Dockerfile is one error line', async () => {
    const strict = await strata(root, [
      'build',
      '--check',
      '-f',
      join(context, 'Strict.Dockerfile'),
      context,
    ]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /^Check complete, 1 warning has been found!\n\nWARNING: StageNameCasing/);
    assert.equal(
      strict.stderr,
      'Error: Strict.Dockerfile: lint violation found for rules: StageNameCasing\n',
    );

    const broken = await strata(root, ['build', '--check', '-f', '-', context], {
      input: 'FROM scratch\nCOPY\n',
    });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /^Error: Dockerfile:2:1: .*COPY.*\n$/);
    assert.doesNotMatch(broken.stderr, /\n\s+at /);
  });

  test('a build prints the warning summary at the end; -q and check=error=true', async () => {
    const built = await strataOk(root, ['build', '--progress', 'plain', '-t', 'hello', context]);
    assert.ok(
      built.stderr.endsWith(
        [
          'writing image ' +
            (await strataOk(root, ['images', '-q', '--no-trunc', 'hello'])).stdout.trim() +
            ' done',
          '',
          ' 1 warning found (use docker --debug to expand):',
          ' - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 3)',
          '',
        ].join('\n'),
      ),
      built.stderr,
    );
    const quiet = await strataOk(root, ['build', '-q', context]);
    assert.equal(quiet.stderr, '');
    assert.match(quiet.stdout, /^sha256:[0-9a-f]{64}\n$/);

    const before = await imageIds();
    const strict = await strata(root, [
      'build',
      '-t',
      'strict',
      '-f',
      join(context, 'Strict.Dockerfile'),
      context,
    ]);
    assert.equal(strict.code, 1);
    assert.equal(
      strict.stderr,
      [
        '',
        ' 1 warning found (use docker --debug to expand):',
        " - StageNameCasing: Stage name 'Build' should be lowercase (line 2)",
        'Error: Strict.Dockerfile: lint violation found for rules: StageNameCasing',
        '',
      ].join('\n'),
      'the build stops before running anything',
    );
    assert.equal(await imageIds(), before);
  });

  test('InvalidBaseImagePlatform: a base image of another platform, found while building', async () => {
    // A one-layer arm64 image, whatever this host is.
    const rootfs = join(context, 'rootfs.tar');
    assert.equal((await run('tar', ['-cf', rootfs, '-C', context, 'hello.txt'])).code, 0);
    await strataOk(root, ['import', '--platform', 'linux/arm64', rootfs, 'arm/base:1']);
    await writeFile(join(context, 'Arm.Dockerfile'), 'FROM arm/base:1\nCOPY hello.txt /\n');
    await writeFile(
      join(context, 'Skip.Dockerfile'),
      '# check=skip=InvalidBaseImagePlatform\nFROM arm/base:1\nCOPY hello.txt /\n',
    );
    const mismatch = await strataOk(root, [
      'build',
      '--platform',
      'linux/amd64',
      '-f',
      join(context, 'Arm.Dockerfile'),
      context,
    ]);
    assert.match(
      mismatch.stderr,
      / 1 warning found \(use docker --debug to expand\):\n - InvalidBaseImagePlatform: Base image arm\/base:1 was pulled with platform "linux\/arm64", expected "linux\/amd64" for current build \(line 1\)\n$/,
    );
    const matching = await strataOk(root, [
      'build',
      '--platform',
      'linux/arm64',
      '-f',
      join(context, 'Arm.Dockerfile'),
      context,
    ]);
    assert.doesNotMatch(matching.stderr, /warning/);
    const skipped = await strataOk(root, [
      'build',
      '--platform',
      'linux/amd64',
      '-f',
      join(context, 'Skip.Dockerfile'),
      context,
    ]);
    assert.doesNotMatch(skipped.stderr, /warning/);
  });
});
