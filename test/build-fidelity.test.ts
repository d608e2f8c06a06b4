/**
 * Build fidelity: every Dockerfile under test/fidelity/cases is built by dockerd 20.10 (BuildKit)
 * and by `strata build`, both images are saved as docker-archives and flattened, and the two
 * must not differ in any file, mode, owner, content, link or Dockerfile-controlled config field.
 * Each case's optional expect.json is checked against docker's result too, which proves that the
 * case shows what it was written to show (and that the harness reads images correctly).
 *
 * test/fidelity/modern holds cases for Dockerfile features newer than dockerd 20.10's BuildKit
 * (heredocs, COPY --link/--parents/--exclude, symbolic --chmod): strata alone builds them and
 * its result is checked against expect.json, written from the Dockerfile reference. Where dockerd
 * 20.10 behaves as BuildKit later stopped behaving (ADD --chown of archives, setuid via --chmod),
 * the case lives there too, so strata is held to current BuildKit, not to old bugs.
 *
 * A case is a directory: `Dockerfile` and context files (binary or git-hostile ones are made by
 * fidelity/prepare.ts), optional `.dockerignore`, optional `args.json`
 * (`{ "buildArgs": {…}, "target": "…", "dockerfile": "path/in/context" }`) and `expect.json`
 * (see Expectations in helpers/flatten.ts). Run with FIDELITY_SHOW=1 to see each case's result.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, busyboxStore, run, strata, strataOk, tempDir, type RunResult } from './helpers/cli.js';
import { DOCKER_CLIENT, Dockerd } from './helpers/dockerd.js';
import {
  checkExpectations,
  compareImages,
  flattenDockerArchive,
  flattenTar,
  parseExpectations,
  type ContainerConfig,
  type Expectations,
  type FlatImage,
  type FsEntry,
} from './helpers/flatten.js';
import { prepareCase } from './fidelity/prepare.js';

const CASES_DIR = join(REPO_ROOT, 'test', 'fidelity', 'cases');
const MODERN_DIR = join(REPO_ROOT, 'test', 'fidelity', 'modern');
/** Builds in flight at once: enough to overlap I/O, few enough for a 2-CPU sandbox. */
const CONCURRENCY = 4;
/** Differences printed per failing case; the rest are counted. */
const MAX_SHOWN = 25;
/**
 * FIDELITY_ONLY=a,b runs only those cases (announced, and the case-count test then fails, so a
 * filtered run is never mistaken for a full one). FIDELITY_SHOW=1 prints what docker's build of
 * each case changed relative to busybox: the raw material for writing an expect.json.
 */
const ONLY = (process.env.FIDELITY_ONLY ?? '').split(',').filter((s) => s !== '');
const SHOW = process.env.FIDELITY_SHOW === '1';

interface CaseArgs {
  buildArgs?: Record<string, string>;
  target?: string;
  /** Dockerfile path relative to the context (passed as -f). */
  dockerfile?: string;
}

interface FidelityCase {
  name: string;
  dir: string;
  args: CaseArgs;
  expect?: Expectations;
}

interface SideResult {
  image?: FlatImage;
  /** The saved docker-archive the image was flattened from. */
  archive?: string;
  /** Why this side produced no image (the builder's stderr), when it did not. */
  error?: string;
}

interface CaseResult {
  fidelityCase: FidelityCase;
  /** Wall-clock milliseconds per side, to keep the suite's time budget visible. */
  ms: { docker: number; strata: number };
  docker?: SideResult;
  strata: SideResult;
}

type Builder = 'buildkit' | 'legacy';

async function loadCases(dir: string): Promise<FidelityCase[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const caseDir = join(dir, name);
      const argsPath = join(caseDir, 'args.json');
      const expectPath = join(caseDir, 'expect.json');
      const args = existsSync(argsPath) ? (JSON.parse(await readFile(argsPath, 'utf8')) as CaseArgs) : {};
      const expect = existsSync(expectPath)
        ? parseExpectations(await readFile(expectPath, 'utf8'), expectPath)
        : undefined;
      return expect === undefined ? { name, dir: caseDir, args } : { name, dir: caseDir, args, expect };
    }),
  );
}

/** `-t`, `-f`, `--build-arg`, `--target`: the flags both builders take the same way. */
function buildFlags(c: FidelityCase, context: string): string[] {
  const flags = ['-t', `fidelity/${c.name}`];
  if (c.args.dockerfile !== undefined) flags.push('-f', join(context, c.args.dockerfile));
  for (const [key, value] of Object.entries(c.args.buildArgs ?? {}))
    flags.push('--build-arg', `${key}=${value}`);
  if (c.args.target !== undefined) flags.push('--target', c.args.target);
  return flags;
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping the order of results. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

function failure(what: string, result: RunResult): string {
  const output = `${result.stderr}${result.stdout}`.trim().split('\n').slice(-30).join('\n');
  return `${what} exited ${result.code ?? result.signal}:\n${output}`;
}

function formatDiffs(diffs: readonly string[]): string {
  const shown = diffs.slice(0, MAX_SHOWN).map((d) => `    ${d}`);
  if (diffs.length > MAX_SHOWN) shown.push(`    … and ${diffs.length - MAX_SHOWN} more`);
  return shown.join('\n');
}

describe('build fidelity: strata build vs dockerd 20.10', { timeout: 8 * 60_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let dockerd: Dockerd | undefined;
  let root: string;
  let builder: Builder = 'buildkit';
  let builderNote = '';
  let cases: FidelityCase[] = [];
  let modern: FidelityCase[] = [];
  let results: CaseResult[] = [];
  let modernResults: CaseResult[] = [];

  function docker(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    if (!dockerd) throw new Error('dockerd is not running');
    return run(DOCKER_CLIENT, ['-H', `unix://${dockerd.socket}`, ...args], { env });
  }

  function dockerBuild(args: readonly string[]): Promise<RunResult> {
    return docker(['build', '--network', 'host', ...args], {
      DOCKER_BUILDKIT: builder === 'buildkit' ? '1' : '0',
    });
  }

  /**
   * BuildKit is what strata follows, so it is required unless it truly cannot run here: a probe
   * build tells, and a failure is printed with its reason next to the fallback.
   */
  async function chooseBuilder(): Promise<void> {
    const probe = join(dir.path, 'probe');
    await mkdir(probe);
    await writeFile(join(probe, 'Dockerfile'), 'FROM busybox\nCOPY Dockerfile /probe\n');
    builder = 'buildkit';
    const result = await dockerBuild(['-t', 'fidelity-probe', probe]);
    if (result.code === 0) {
      builderNote = 'dockerd 20.10 BuildKit (DOCKER_BUILDKIT=1)';
      return;
    }
    builder = 'legacy';
    builderNote = `legacy builder: BuildKit failed here: ${failure('docker build (BuildKit probe)', result)}`;
    const legacy = await dockerBuild(['-t', 'fidelity-probe', probe]);
    if (legacy.code !== 0) throw new Error(`${builderNote}\nand ${failure('legacy docker build', legacy)}`);
  }

  async function buildWithDocker(c: FidelityCase, context: string, out: string): Promise<SideResult> {
    const built = await dockerBuild([...buildFlags(c, context), context]);
    if (built.code !== 0) return { error: failure(`docker build (${builder})`, built) };
    const archive = join(out, 'docker.tar');
    const saved = await docker(['save', '-o', archive, `fidelity/${c.name}`]);
    if (saved.code === 0) return { image: await flattenDockerArchive(archive), archive };
    // dockerd 20.10 cannot save an image without layers ("empty export - not implemented"), e.g.
    // FROM scratch with only metadata; its config is then taken from `docker image inspect`,
    // whose Config object has the same field names as the image config's `config`.
    if (/empty export/.test(saved.stderr)) {
      const inspected = await docker(['image', 'inspect', '--format', '{{json .}}', `fidelity/${c.name}`]);
      if (inspected.code !== 0) return { error: failure('docker image inspect', inspected) };
      const parsed = JSON.parse(inspected.stdout) as { Config?: ContainerConfig; Author?: string };
      const config = { config: parsed.Config ?? {}, author: parsed.Author ?? '' };
      return { image: { files: new Map<string, FsEntry>(), config, layerCount: 0 } };
    }
    return { error: failure('docker save', saved) };
  }

  async function buildWithStrata(c: FidelityCase, context: string, out: string): Promise<SideResult> {
    const built = await strata(root, ['build', ...buildFlags(c, context), context]);
    if (built.code !== 0) return { error: failure('strata build', built) };
    const archive = join(out, 'strata.tar');
    const saved = await strata(root, ['save', `fidelity/${c.name}`, '-o', archive]);
    if (saved.code !== 0) return { error: failure('strata save', saved) };
    return { image: await flattenDockerArchive(archive), archive };
  }

  async function runCase(c: FidelityCase, kind: 'classic' | 'modern'): Promise<CaseResult> {
    const context = join(dir.path, kind, c.name, 'context');
    const out = join(dir.path, kind, c.name);
    await mkdir(out, { recursive: true });
    await prepareCase(c.dir, context);
    const capture = async (side: () => Promise<SideResult>): Promise<SideResult> => {
      try {
        return await side();
      } catch (err) {
        return { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
      }
    };
    const t0 = Date.now();
    const dockerSide = kind === 'classic' ? await capture(() => buildWithDocker(c, context, out)) : undefined;
    const t1 = Date.now();
    const strataSide = await capture(() => buildWithStrata(c, context, out));
    const ms = { docker: t1 - t0, strata: Date.now() - t1 };
    return dockerSide === undefined
      ? { fidelityCase: c, ms, strata: strataSide }
      : { fidelityCase: c, ms, docker: dockerSide, strata: strataSide };
  }

  before(async () => {
    dir = await tempDir('fidelity');
    cases = await loadCases(CASES_DIR);
    modern = await loadCases(MODERN_DIR);
    if (ONLY.length > 0) {
      cases = cases.filter((c) => ONLY.includes(c.name));
      modern = modern.filter((c) => ONLY.includes(c.name));
      console.log(`build fidelity: FIDELITY_ONLY set, running ${cases.length + modern.length} cases`);
    }
    try {
      ({ root } = await busyboxStore(dir.path));
    } catch (err) {
      throw new Error(`cannot prepare the busybox base image (scripts/test-images.sh): ${String(err)}`, {
        cause: err,
      });
    }
    try {
      dockerd = await Dockerd.start();
    } catch (err) {
      throw new Error(`cannot start dockerd 20.10 for the fidelity suite: ${String(err)}`, { cause: err });
    }
    // Both builders start from byte-identical bases: strata's busybox, loaded into dockerd.
    const base = join(dir.path, 'busybox.tar');
    await strataOk(root, ['save', '-o', base, 'busybox']);
    const loaded = await docker(['load', '-i', base]);
    if (loaded.code !== 0) throw new Error(`cannot load the busybox base into dockerd: ${loaded.stderr}`);
    const dockerId = (await docker(['image', 'inspect', '--format', '{{.Id}}', 'busybox'])).stdout.trim();
    const strataId = (
      await strataOk(root, ['image', 'inspect', '--format', '{{.Id}}', 'busybox'])
    ).stdout.trim();
    if (dockerId !== strataId) throw new Error(`busybox differs: dockerd ${dockerId}, strata ${strataId}`);
    await chooseBuilder();
    console.log(`build fidelity: docker side built with ${builderNote}`);
    const started = Date.now();
    results = await pool(cases, CONCURRENCY, (c) => runCase(c, 'classic'));
    const sum = (side: 'docker' | 'strata') => results.reduce((total, r) => total + r.ms[side], 0) / 1000;
    console.log(
      `build fidelity: ${results.length} cases in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
        `(docker ${sum('docker').toFixed(1)} s, strata ${sum('strata').toFixed(1)} s summed over cases)`,
    );
    if (SHOW) {
      const baseImage = await flattenDockerArchive(base);
      for (const { fidelityCase: c, docker: side } of results) {
        if (side?.image === undefined) continue;
        // Images not built on busybox are shown whole (against an empty image).
        const onBusybox = side.image.files.has('/bin/busybox');
        const reference = onBusybox
          ? baseImage
          : { files: new Map<string, FsEntry>(), config: {}, layerCount: 0 };
        const changes = compareImages(reference, side.image, ['base', c.name]);
        console.log(
          `--- ${c.name} (docker) vs ${onBusybox ? 'busybox' : 'scratch'}:\n${changes.map((d) => `    ${d}`).join('\n')}`,
        );
      }
    }
    modernResults = await pool(modern, CONCURRENCY, (c) => runCase(c, 'modern'));
  });

  after(async () => {
    await dockerd?.stop();
    await dir?.cleanup();
  });

  test('there are enough cases', () => {
    assert.equal(ONLY.length, 0, 'FIDELITY_ONLY filtered the cases');
    assert.ok(cases.length >= 40, `only ${cases.length} cases in ${CASES_DIR}`);
    assert.ok(modern.length >= 5, `only ${modern.length} cases in ${MODERN_DIR}`);
  });

  // Proof of the harness on what the cases cannot produce without RUN: whiteouts, opaque
  // directories, a hardlink whose target is later deleted, a setuid file. The flattened
  // `docker save` must equal `docker export` of a container, which is dockerd's own flattening.
  test('flatten(docker save) equals docker export, whiteouts and all', async () => {
    const context = join(dir.path, 'harness');
    await mkdir(context);
    await writeFile(
      join(context, 'Dockerfile'),
      [
        'FROM busybox',
        'RUN mkdir -p /data/keep /data/gone && echo one > /data/keep/a && echo two > /data/gone/b \\',
        '  && echo 3 > /three && ln /three /three-hard && ln /data/keep/a /a-hard',
        'RUN rm -rf /data/gone /three /bin/vi && echo changed > /data/keep/a',
        'RUN rm -rf /data && mkdir -p /data && echo fresh > /data/new && chmod 4755 /data/new',
        '',
      ].join('\n'),
    );
    const built = await dockerBuild(['-t', 'fidelity-harness', context]);
    assert.equal(built.code, 0, failure('docker build of the harness image', built));
    const saved = join(dir.path, 'harness-save.tar');
    await docker(['save', '-o', saved, 'fidelity-harness']);
    const container = (await docker(['create', 'fidelity-harness'])).stdout.trim();
    const exported = join(dir.path, 'harness-export.tar');
    const exportResult = await docker(['export', '-o', exported, container]);
    await docker(['rm', container]);
    assert.equal(exportResult.code, 0, failure('docker export', exportResult));
    const flat = await flattenDockerArchive(saved);
    const reference = await flattenTar(exported);
    // dockerd adds the container's own mount points to an export; the image has no say in them.
    const containerOnly = /^\/(\.dockerenv|dev|proc|sys|etc\/(hosts|hostname|resolv\.conf|mtab))(\/|:)/;
    const diffs = compareImages(flat, { ...reference, config: flat.config }, ['save', 'export']).filter(
      (d) => !containerOnly.test(d),
    );
    assert.deepEqual(diffs, [], diffs.join('\n'));
    assert.ok(!flat.files.has('/data/keep') && !flat.files.has('/three') && !flat.files.has('/bin/vi'));
    assert.equal(flat.files.get('/data/new')?.mode, 0o4755);
    assert.equal(
      flat.files.get('/three-hard')?.size,
      2,
      'a hardlink keeps its content after its target is deleted',
    );
    assert.equal(flat.files.get('/a-hard')?.sha256, reference.files.get('/a-hard')?.sha256);
  });

  // Proof of the harness: docker builds every case, its flattening is stable, and it shows
  // what the case's expect.json says the case is about.
  test('docker side: every case builds and shows what it is meant to', async () => {
    const problems: string[] = [];
    for (const { fidelityCase: c, docker: side } of results) {
      if (side?.image === undefined) {
        problems.push(`${c.name}: ${side?.error ?? 'not built'}`);
        continue;
      }
      // A second, independent read of the same archive must agree entry for entry (no state
      // leaks between flattenings, no order dependence).
      if (side.archive !== undefined) {
        const again = await flattenDockerArchive(side.archive);
        const self = compareImages(side.image, again, ['docker', 'docker again']);
        if (self.length > 0) problems.push(`${c.name}: differs from itself:\n${formatDiffs(self)}`);
      }
      if (c.expect) {
        const unmet = checkExpectations(side.image, c.expect);
        if (unmet.length > 0)
          problems.push(`${c.name}: expect.json not met by docker:\n${formatDiffs(unmet)}`);
      }
    }
    const withExpect = results.filter((r) => r.fidelityCase.expect).length;
    console.log(
      `build fidelity (docker side): ${results.length - problems.length}/${results.length} built and checked, ` +
        `${withExpect} with expect.json`,
    );
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  test('strata builds every case identically to dockerd', () => {
    const failures: string[] = [];
    for (const { fidelityCase: c, docker: dockerSide, strata: strataSide } of results) {
      if (dockerSide?.image === undefined) {
        failures.push(`${c.name}: docker could not build it (see the docker-side test)`);
      } else if (strataSide.image === undefined) {
        failures.push(`${c.name}: ${strataSide.error ?? 'not built'}`);
      } else {
        const diffs = compareImages(dockerSide.image, strataSide.image, ['docker', 'strata']);
        if (diffs.length > 0) failures.push(`${c.name}: ${diffs.length} differences\n${formatDiffs(diffs)}`);
      }
    }
    console.log(`build fidelity: ${results.length - failures.length}/${results.length} identical`);
    if (failures.length > 0) console.log(failures.map((f) => `  ✗ ${f}`).join('\n'));
    assert.equal(failures.length, 0, `${failures.length} cases differ:\n${failures.join('\n')}`);
  });

  test('strata builds the modern cases as the Dockerfile reference says', () => {
    const failures: string[] = [];
    for (const { fidelityCase: c, strata: side } of modernResults) {
      if (!c.expect) failures.push(`${c.name}: has no expect.json`);
      else if (side.image === undefined) failures.push(`${c.name}: ${side.error ?? 'not built'}`);
      else {
        const unmet = checkExpectations(side.image, c.expect);
        if (unmet.length > 0) failures.push(`${c.name}:\n${formatDiffs(unmet)}`);
      }
    }
    console.log(`build fidelity (modern): ${modernResults.length - failures.length}/${modernResults.length}`);
    if (failures.length > 0) console.log(failures.map((f) => `  ✗ ${f}`).join('\n'));
    assert.equal(failures.length, 0, `${failures.length} modern cases fail:\n${failures.join('\n')}`);
  });
});
