/**
 * `strata analyze` through the CLI: images made for the purpose (with the project's tar writer,
 * and with `strata build`), read from the store, from `strata save` output and from an OCI
 * layout; the JSON document, the CI mode's lines and exit codes, and the errors.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURE_LAYERS, storeTestImage } from '../src/analyze/testing.js';
import { Store } from '../src/store/index.js';
import { strataNoCi, strataNoCiOk } from './helpers/analyze.js';
import { tempDir, writeTree } from './helpers/cli.js';
import { startRegistry, type RunningRegistry } from './helpers/registry.js';

type Json = Record<string, unknown> & {
  image: Record<string, unknown>;
  layers: Array<Record<string, unknown>>;
  dive: Record<string, unknown>;
  strata: Record<string, unknown>;
  ci?: { metrics: string; pass: boolean; rules: Array<Record<string, unknown>> };
};

function assertOneLineError(result: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr.trimEnd(), pattern);
  assert.equal(result.stderr.trimEnd().split('\n').length, 1, `one line: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace for a user mistake');
}

describe('strata analyze (CLI)', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let root: string;

  before(async () => {
    work = await tempDir('analyze');
    root = join(work.path, 'store');
    const store = await Store.open(root);
    await storeTestImage(store, 'test/fixture:1', FIXTURE_LAYERS);
  });
  after(() => work?.cleanup());

  test('--json: stable fields, dive and strata blocks computed by hand', async () => {
    const json = JSON.parse(
      (await strataNoCiOk(root, ['analyze', '--json', 'test/fixture:1'])).stdout,
    ) as Json;
    assert.deepEqual(Object.keys(json), ['schemaVersion', 'image', 'sizeBytes', 'layers', 'dive', 'strata']);
    assert.equal(json.schemaVersion, 1);
    assert.deepEqual(Object.keys(json.image), [
      'reference',
      'source',
      'names',
      'id',
      'manifestDigest',
      'platform',
      'created',
    ]);
    assert.equal(json.image.source, 'store');
    assert.deepEqual(json.image.names, ['docker.io/test/fixture:1']);
    assert.deepEqual(Object.keys(json.layers[0] ?? {}), [
      'index',
      'digest',
      'diffId',
      'mediaType',
      'blobSize',
      'sizeBytes',
      'command',
      'created',
      'entries',
      'changes',
      'shadowedBytes',
      'hidesBytes',
    ]);
    // Layer sizes 9100, 6050, 0, 250 (sum of tar header sizes); image 15400.
    assert.deepEqual(
      json.layers.map((layer) => [layer.sizeBytes, layer.command]),
      [
        [9100, 'ADD rootfs.tar /'],
        [6050, 'RUN edit'],
        [0, 'RUN rm'],
        [250, 'COPY app /app'],
      ],
    );
    assert.equal(json.sizeBytes, 15400);
    // dive (see analyze.test.ts for each path): Σmin 10300 / Σcum 16400; wasted = /bin/tool 10000 +
    // /data/blob 700 + /etc/conf 400 = 11100; user size 6050+0+250 = 6300.
    assert.deepEqual(json.dive, {
      efficiency: 10300 / 16400,
      wastedBytes: 11100,
      userSizeBytes: 6300,
      userWastedPercent: 11100 / 6300,
      inefficientFiles: [
        { path: '/bin/tool', count: 2, sizeBytes: 10000 },
        { path: '/data/blob', count: 2, sizeBytes: 700 },
        { path: '/etc/conf', count: 3, sizeBytes: 400 },
      ],
      scanStoppedLayers: [],
    });
    // strata: visible 5000 (/bin/tool) + 50 + 250 = 5300; wasted 15400 − 5300 = 10100.
    assert.equal(json.strata.efficiency, 5300 / 15400);
    assert.equal(json.strata.wastedBytes, 10100);
    assert.equal(json.strata.finalSizeBytes, 5300);
    assert.equal(json.strata.userWastedPercent, 10100 / 6300);
    assert.deepEqual(
      (json.strata.inefficientFiles as Array<{ path: string; wastedBytes: number }>).map((f) => [
        f.path,
        f.wastedBytes,
      ]),
      [
        ['/bin/tool', 5000],
        ['/app/b', 2000],
        ['/app/a', 1000],
        ['/data/blob', 700],
        ['/cache/y', 600],
        ['/cache/x', 400],
        ['/etc/conf', 400],
      ],
    );
  });

  test("--json --files lists each layer's changes", async () => {
    const json = JSON.parse(
      (await strataNoCiOk(root, ['analyze', '--json', '--files', 'test/fixture:1'])).stdout,
    ) as Json;
    const files = json.layers.map((layer) =>
      (layer.files as Array<{ path: string; change: string; modified: string[]; opaque: boolean }>).map(
        (f) =>
          `${f.path} ${f.change}${f.modified.length ? `:${f.modified.join('+')}` : ''}${f.opaque ? ' opaque' : ''}`,
      ),
    );
    assert.deepEqual(files[1], [
      '/bin/tool modified:mode',
      '/data/blob added',
      '/etc unmodified',
      '/etc/conf modified:content',
      '/new/file added',
    ]);
    assert.deepEqual(files[2], ['/cache removed', '/data/blob removed', '/etc/conf removed']);
    assert.deepEqual(files[3], [
      '/app unmodified opaque',
      '/app/a removed',
      '/app/b removed',
      '/app/c added',
    ]);
  });

  test('reads the same image from the store, a docker-archive, an OCI archive and an OCI layout', async () => {
    const archive = join(work.path, 'fixture.tar');
    const ociArchive = join(work.path, 'fixture-oci.tar');
    const layout = join(work.path, 'layout');
    await strataNoCiOk(root, ['save', '-o', archive, 'test/fixture:1']);
    await strataNoCiOk(root, ['save', '--format', 'oci', '-o', ociArchive, 'test/fixture:1']);
    await strataNoCiOk(root, ['save', '--format', 'oci', '-o', `${layout}/`, 'test/fixture:1']);
    const analyse = async (spec: string): Promise<Json> =>
      JSON.parse((await strataNoCiOk(root, ['analyze', '--json', '--files', spec])).stdout) as Json;
    const fromStore = await analyse('test/fixture:1');
    const sources: Array<[string, string]> = [
      [archive, 'archive'],
      [`oci-archive:${ociArchive}`, 'archive'],
      [layout, 'layout'],
    ];
    for (const [spec, kind] of sources) {
      const other = await analyse(spec);
      assert.equal(other.image.source, kind);
      assert.deepEqual({ ...other, image: undefined }, { ...fromStore, image: undefined }, spec);
      assert.equal(other.image.id, fromStore.image.id);
    }
  });

  test('builds FROM scratch, then reads the copies, the chmod and the overwrite', async () => {
    const context = join(work.path, 'context');
    await writeTree(context, {
      'a.txt': 'a'.repeat(1000),
      'b.txt': 'b'.repeat(400),
      Dockerfile: [
        'FROM scratch',
        'COPY a.txt /data/a.txt',
        'ENV X=1',
        'COPY --chmod=755 a.txt /data/a.txt',
        'COPY --chmod=644 b.txt /data/a.txt',
        '',
      ].join('\n'),
    });
    await strataNoCiOk(root, ['build', '-q', '-t', 'test/built:1', context]);
    const json = JSON.parse(
      (await strataNoCiOk(root, ['analyze', '--json', '--files', 'test/built:1'])).stdout,
    ) as Json;
    // Three layers (ENV makes none): /data/a.txt of 1000, 1000 (chmod) and 400 bytes.
    assert.deepEqual(
      json.layers.map((layer) => layer.sizeBytes),
      [1000, 1000, 400],
    );
    assert.ok(json.layers.every((layer) => String(layer.command).startsWith('COPY ')));
    // dive: /data/a.txt is the only leaf of each layer: 1000+1000+400 = 2400, minimum 400.
    // efficiency 400/2400; wasted 2400; user size 1000+400 = 1400.
    assert.equal(json.dive.efficiency, 400 / 2400);
    assert.equal(json.dive.wastedBytes, 2400);
    assert.equal(json.dive.userWastedPercent, 2400 / 1400);
    // strata: 400 visible of 2400: 2000 wasted, all of it hidden by layers 1 and 2.
    assert.equal(json.strata.wastedBytes, 2000);
    assert.equal(json.strata.userWastedPercent, 2000 / 1400);
    const changeOf = (index: number): unknown =>
      (json.layers[index]?.files as Array<{ path: string; change: string; modified: string[] }>)
        .filter((f) => f.path === '/data/a.txt')
        .map((f) => [f.change, f.modified]);
    assert.deepEqual(changeOf(0), [['added', []]]);
    assert.deepEqual(changeOf(1), [['modified', ['mode']]]);
    assert.deepEqual(changeOf(2), [['modified', ['content', 'mode']]]);
  });

  test('strata diff: the paths and config fields two built images differ in', async () => {
    const context = join(work.path, 'diff-context');
    await writeTree(context, {
      'a.txt': 'first\n',
      'b.txt': 'second\n',
      'A.Dockerfile': 'FROM scratch\nCOPY a.txt b.txt /app/\nENV MODE=dev\n',
      'B.Dockerfile': 'FROM scratch\nCOPY --chmod=600 b.txt /app/a.txt\nENV MODE=prod\n',
    });
    await strataNoCiOk(root, ['build', '-q', '-t', 'diff/a:1', '-f', join(context, 'A.Dockerfile'), context]);
    await strataNoCiOk(root, ['build', '-q', '-t', 'diff/b:1', '-f', join(context, 'B.Dockerfile'), context]);
    const text = (await strataNoCiOk(root, ['diff', 'diff/a:1', 'diff/b:1'])).stdout;
    assert.equal(
      text,
      [
        'C /app/a.txt (content, mode: 6 B → 7 B)',
        'D /app/b.txt',
        '~ config Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","MODE=dev"] → ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","MODE=prod"]',
        '0 added, 1 removed, 1 changed; 1 config field differs',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(
      (await strataNoCiOk(root, ['diff', '--json', 'diff/b:1', 'diff/a:1'])).stdout,
    ) as {
      files: Array<{ path: string; change: string; aspects: string[] }>;
      summary: Record<string, number>;
    };
    assert.deepEqual(
      json.files.map((f) => [f.change, f.path, f.aspects]),
      [
        ['changed', '/app/a.txt', ['content', 'mode']],
        ['added', '/app/b.txt', []],
      ],
    );
    assert.deepEqual(json.summary, { added: 1, removed: 0, changed: 1 });
    const missing = await strataNoCi(root, ['diff', 'diff/a:1', 'diff/nope:1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: .*diff\/nope:1/);
  });

  test('--ci fails with one line per failed rule and exit 1', async () => {
    const result = await strataNoCi(root, ['analyze', '--ci', 'test/fixture:1']);
    assert.equal(result.code, 1);
    const lines = result.stdout.split('\n');
    assert.ok(lines.includes('  efficiency: 62.8049 %'));
    assert.ok(lines.includes('  wastedBytes: 11100 bytes (11 kB)'));
    assert.deepEqual(
      lines.filter((line) => /^ {2}(PASS|FAIL|SKIP): /.test(line)),
      [
        '  FAIL: highestUserWastedPercent: too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=1.7619047619047619 > threshold=0.1)',
        '  SKIP: highestWastedBytes: rule disabled',
        '  FAIL: lowestEfficiency: image efficiency is too low (efficiency=0.6280487804878049 < threshold=0.9)',
      ],
    );
    assert.ok(lines.includes('Result:FAIL [Total:3] [Passed:0] [Failed:2] [Warn:0] [Skipped:1]'));
    assertOneLineError(
      result,
      /^Error: analyze: 2 CI rules failed \(highestUserWastedPercent, lowestEfficiency\)$/,
    );
  });

  test('CI=true turns CI mode on; thresholds from flags and from .dive-ci; --no-ci turns it off', async () => {
    const passing = await strataNoCi(root, [
      'analyze',
      '--lowest-efficiency',
      '0.6',
      '--highest-wasted-bytes',
      '11.1kB',
      '--highest-user-wasted-percent',
      'off',
      'test/fixture:1',
    ]);
    assert.equal(passing.code, 0, passing.stderr);
    assert.match(passing.stdout, /^ {2}PASS: highestWastedBytes$/m);
    assert.match(
      passing.stdout,
      /^Result:PASS \[Total:3\] \[Passed:2\] \[Failed:0\] \[Warn:0\] \[Skipped:1\]$/m,
    );

    const byteFail = await strataNoCi(root, [
      'analyze',
      '--ci',
      '--highest-wasted-bytes',
      '11kB',
      '--lowest-efficiency',
      'off',
      '--highest-user-wasted-percent',
      'disabled',
      'test/fixture:1',
    ]);
    assert.equal(byteFail.code, 1);
    assert.match(
      byteFail.stdout,
      /^ {2}FAIL: highestWastedBytes: too many bytes wasted \(wasted-bytes=11100 > threshold=11000\)$/m,
    );

    const project = join(work.path, 'project');
    await mkdir(project, { recursive: true });
    await writeFile(
      join(project, '.dive-ci'),
      'rules:\n  lowestEfficiency: 0.6\n  highestUserWastedPercent: disabled\n',
    );
    const fromFile = await strataNoCi(root, ['analyze', 'test/fixture:1'], {
      cwd: project,
      env: { CI: 'true' },
    });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /Using CI config: \.dive-ci/);
    assert.match(
      fromFile.stdout,
      /Result:PASS \[Total:3\] \[Passed:1\] \[Failed:0\] \[Warn:0\] \[Skipped:2\]/,
    );

    const strataMetrics = await strataNoCi(root, [
      'analyze',
      '--ci-metrics',
      'strata',
      '--lowest-efficiency',
      '0.3',
      '--highest-wasted-bytes',
      '10100',
      '--highest-user-wasted-percent',
      'off',
      'test/fixture:1',
    ]);
    assert.equal(strataMetrics.code, 0, strataMetrics.stdout);
    assert.match(strataMetrics.stdout, /^Results \(strata metrics\):$/m);

    const off = await strataNoCi(root, ['analyze', '--no-ci', 'test/fixture:1'], {
      cwd: project,
      env: { CI: 'true' },
    });
    assert.equal(off.code, 0);
    assert.match(off.stdout, /^Layers:$/m);
    assert.doesNotMatch(off.stdout, /Result:/);

    const json = await strataNoCi(root, ['analyze', '--ci', '--json', 'test/fixture:1']);
    assert.equal(json.code, 1);
    const document = JSON.parse(json.stdout) as Json;
    assert.deepEqual(
      document.ci?.rules.map((rule) => [rule.name, rule.status, rule.threshold]),
      [
        ['highestUserWastedPercent', 'fail', 0.1],
        ['highestWastedBytes', 'skip', null],
        ['lowestEfficiency', 'fail', 0.9],
      ],
    );
    assert.equal(document.ci?.pass, false);
  });

  test('the terminal report shows layers, both metrics and the top wasted files', async () => {
    const { stdout } = await strataNoCiOk(root, ['analyze', '--top', '2', 'test/fixture:1']);
    assert.match(stdout, /^Image: docker\.io\/test\/fixture:1$/m);
    assert.match(stdout, /^\s+0\s+9\.1 kB\s+\+10 ~0 -0\s+9\.1 kB\s+ADD rootfs\.tar \/$/m);
    assert.match(stdout, /^\s+2\s+0 B\s+\+0 ~0 -3\s+0 B\s+RUN rm$/m);
    assert.match(stdout, /^ {2}efficiency {4}62\.80 % {15}34\.42 %$/m);
    assert.match(stdout, /^ {6}2 {3}10 kB {3}\/bin\/tool$/m);
    assert.match(stdout, /… 1 more \(--top 0 lists all\)/);
    assert.match(stdout, /^ {9}1 {3}2\.0 kB {3}0 {8}\/app\/b \(removed\)$/m);
  });

  test('user mistakes: one clear line and a non-zero exit', async () => {
    assertOneLineError(
      await strataNoCi(root, ['analyze', 'no/such:image']),
      /^Error: No such image: no\/such:image/,
    );
    assertOneLineError(
      await strataNoCi(root, ['analyze', join(work.path, 'missing.tar')]),
      /^Error: .*missing\.tar: no such file or directory$/,
    );
    const junk = join(work.path, 'junk.tar');
    await writeFile(junk, 'not an archive\n'.repeat(100));
    assertOneLineError(
      await strataNoCi(root, ['analyze', junk]),
      /^Error: cannot read image archive .*junk\.tar: /,
    );
    const bad = join(work.path, 'bad-ci');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, '.dive-ci'), 'rules:\n  lowestEfficiency: ninety\n');
    assertOneLineError(
      await strataNoCi(root, ['analyze', '--ci', 'test/fixture:1'], { cwd: bad }),
      /^Error: \.dive-ci: lowestEfficiency: invalid value "ninety": expected a ratio between 0 and 1/,
    );
    await writeFile(join(bad, 'broken.yaml'), 'rules: [\n');
    assertOneLineError(
      await strataNoCi(root, ['analyze', '--ci-config', join(bad, 'broken.yaml'), 'test/fixture:1']),
      /broken\.yaml:\d+: invalid YAML: /,
    );
    assertOneLineError(
      await strataNoCi(root, ['analyze', '--ci-config', join(bad, 'absent.yaml'), 'test/fixture:1']),
      /^Error: CI config .*absent\.yaml: no such file$/,
    );
    assertOneLineError(
      await strataNoCi(root, ['analyze', '--highest-wasted-bytes', 'lots', 'test/fixture:1']),
      /^Error: --highest-wasted-bytes: "lots" is not a byte count/,
    );
    assertOneLineError(
      await strataNoCi(root, ['analyze', '--ci-metrics', 'mine', 'test/fixture:1']),
      /^Error: invalid --ci-metrics "mine": expected dive or strata$/,
    );
    // -i beats the runner's CI=true (the tmux test opens the explorer so); asking for the check
    // explicitly, or for JSON, with -i is a contradiction.
    for (const contradiction of [['--ci'], ['--json'], ['--lowest-efficiency', '0.5']]) {
      assertOneLineError(
        await strataNoCi(root, ['analyze', '-i', ...contradiction, 'test/fixture:1'], {
          env: { CI: 'true' },
        }),
        /^Error: --interactive cannot be combined with --json, --ci or CI rules$/,
      );
    }
  });
});

describe('strata analyze from a registry (CLI, docker-registry on 127.0.0.1)', () => {
  let work: { path: string; cleanup: () => Promise<void> };
  let registry: RunningRegistry;
  let root: string;

  before(async () => {
    work = await tempDir('analyze-registry');
    registry = await startRegistry(join(work.path, 'registry'));
    root = join(work.path, 'store');
    const store = await Store.open(root);
    await storeTestImage(store, `${registry.host}/test/fixture:1`, FIXTURE_LAYERS);
    await strataNoCiOk(root, ['push', `${registry.host}/test/fixture:1`]);
  });
  after(async () => {
    await registry?.stop();
    await work?.cleanup();
  });

  test('registry://REF is analysed from a temporary store; --pull keeps the image', async () => {
    const local = JSON.parse(
      (await strataNoCiOk(root, ['analyze', '--json', `${registry.host}/test/fixture:1`])).stdout,
    ) as Json;
    const fresh = join(work.path, 'fresh');
    const remote = JSON.parse(
      (await strataNoCiOk(fresh, ['analyze', '--json', `registry://${registry.host}/test/fixture:1`])).stdout,
    ) as Json;
    assert.equal(remote.image.source, 'registry');
    // The pushed layers are gzip-compressed: other blobs, the same content and the same numbers.
    assert.deepEqual(remote.dive, local.dive);
    assert.deepEqual(remote.strata, local.strata);
    assert.equal(remote.image.id, local.image.id);
    assert.deepEqual(await readdir(join(fresh, 'tmp')), [], 'the temporary store is removed');
    assert.equal((await strataNoCiOk(fresh, ['images', '-q'])).stdout, '', 'nothing was kept');

    const pulled = JSON.parse(
      (await strataNoCiOk(fresh, ['analyze', '--pull', '--json', `${registry.host}/test/fixture:1`])).stdout,
    ) as Json;
    assert.equal(pulled.image.source, 'store');
    assert.deepEqual(pulled.strata, local.strata);
    assert.match((await strataNoCiOk(fresh, ['images'])).stdout, /test\/fixture\s+1\s/);
  });
});
