/**
 * Data-driven suite over the .dockerignore corpus (shared/corpora/dockerignore/, see its
 * FORMAT.md): moby/patternmatcher's match table and file reader, fsutil's filtered walks, and the
 * walk-level part of BuildKit's end-to-end scenarios. Every case must pass; the corpus must be
 * present (the suite never skips). Cases that cannot be exercised are counted and printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { isStrataError } from '../errors.js';
import { ContextFilter, filterContextEntries, walkContext, type ContextEntry } from './context.js';
import {
  PatternMatcher,
  cleanPath,
  readIgnoreFile,
  readIgnorePatterns,
  type MatchInfo,
} from './dockerignore.js';

const corporaRoot =
  process.env.STRATA_CORPORA ?? fileURLToPath(new URL('../../../shared/corpora/', import.meta.url));
const corpusDir = join(corporaRoot, 'dockerignore');

function corpusJson<T>(name: string): T {
  const path = join(corpusDir, name);
  if (!existsSync(path)) {
    throw new Error(
      `dockerignore corpus file missing: ${path} (the suite never skips; restore shared/corpora or set STRATA_CORPORA)`,
    );
  }
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

interface NamedCase {
  name: string;
  run: () => void | Promise<void>;
}

/** Runs `cases`, printing "dockerignore <label>: N/M", and fails listing every failure. */
async function runCases(
  label: string,
  cases: NamedCase[],
  notApplicable?: { count: number; reason: string },
) {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      await c.run();
    } catch (err) {
      failures.push(`${c.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  console.log(`dockerignore ${label}: ${cases.length - failures.length}/${cases.length}`);
  if (notApplicable !== undefined && notApplicable.count > 0) {
    console.log(`dockerignore ${label} not applicable: ${notApplicable.count} (${notApplicable.reason})`);
  }
  assert.ok(cases.length + (notApplicable?.count ?? 0) > 0, `${label}: no cases found`);
  assert.deepEqual(failures, [], `${label}: ${failures.length} case(s) failed`);
}

/** Runs `fn`, which must fail with a StrataError (any other exception is a crash, not an answer). */
function expectStrataError(fn: () => unknown, what: string): void {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    assert.ok(isStrataError(err), `${what}: expected a StrataError, got ${String(err)}`);
    return;
  }
  assert.fail(`${what}: expected an error, got ${JSON.stringify(result)}`);
}

// ---------------------------------------------------------------------------------------------
// cases.json
// ---------------------------------------------------------------------------------------------

interface MatchCase {
  id: string;
  patterns: string[];
  path: string;
  expectMatch: boolean;
  expectError?: boolean;
  semantics: 'parent-aware' | 'legacy';
}

/** The three ways upstream checks a parent-aware entry; all must agree. */
function parentAwareAnswers(matcher: PatternMatcher, path: string): boolean[] {
  const whole = matcher.matches(path);
  // Walking down from the top, each parent's per-pattern results fed into the child.
  const parentPath = cleanPath(path.slice(0, path.lastIndexOf('/') + 1));
  let info: MatchInfo | undefined;
  if (parentPath !== '.') {
    const segments = parentPath.split('/');
    for (let count = 1; count <= segments.length; count++) {
      info = matcher.matchesWithParent(segments.slice(0, count).join('/'), info).info;
    }
  }
  const walked = matcher.matchesWithParent(path, info).matched;
  const emptyParent = matcher.matchesWithParent(path, { parentMatched: [] }).matched;
  return [whole, walked, emptyParent];
}

test('dockerignore cases.json', async () => {
  const cases = corpusJson<MatchCase[]>('cases.json');
  assert.equal(cases.length, 138, 'cases.json should hold 138 entries');
  await runCases(
    'cases',
    cases.map((c) => ({
      name: `${c.id} ${JSON.stringify(c.patterns)} ${JSON.stringify(c.path)}`,
      run: () => {
        const answer = (): boolean[] => {
          const matcher = new PatternMatcher(c.patterns);
          if (c.semantics === 'legacy') {
            const cleaned = cleanPath(c.path);
            return [cleaned === '.' ? false : matcher.matches(cleaned)];
          }
          return parentAwareAnswers(matcher, c.path);
        };
        if (c.expectError === true) {
          expectStrataError(answer, 'building or matching');
          // Failing once must not leave the matcher broken: it fails again, cleanly.
          expectStrataError(answer, 'matching again');
          return;
        }
        for (const got of answer()) assert.equal(got, c.expectMatch);
      },
    })),
  );
});

// ---------------------------------------------------------------------------------------------
// pattern-file.json
// ---------------------------------------------------------------------------------------------

interface PatternFile {
  readIgnoreFile: Array<{ content: string | null; expectPatterns: string[] }>;
  matcherConstruction: Array<{
    patterns: string[];
    expectActivePatterns?: number;
    expectHasExclusions?: boolean;
    expectError?: boolean;
  }>;
  matchKind: { cases: Array<{ pattern: string; kind: string; regexp?: string }> };
}

test('dockerignore pattern-file.json', async () => {
  const data = corpusJson<PatternFile>('pattern-file.json');
  const work = await mkdtemp(join(tmpdir(), 'strata-ignorefile-'));
  try {
    await runCases(
      'pattern-file readIgnoreFile',
      data.readIgnoreFile.map((c, index) => ({
        name: `readIgnoreFile #${index}`,
        run: async () => {
          const context = join(work, `context-${index}`);
          await mkdir(context);
          if (c.content !== null) {
            assert.deepEqual(readIgnorePatterns(c.content), c.expectPatterns);
            await writeFile(join(context, '.dockerignore'), c.content);
          }
          assert.deepEqual(await readIgnoreFile(context), c.expectPatterns);
        },
      })),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await runCases(
    'pattern-file matcherConstruction',
    data.matcherConstruction.map((c, index) => ({
      name: `matcherConstruction #${index} ${JSON.stringify(c.patterns)}`,
      run: () => {
        if (c.expectError === true) {
          expectStrataError(() => new PatternMatcher(c.patterns), 'building the matcher');
          return;
        }
        const matcher = new PatternMatcher(c.patterns);
        if (c.expectActivePatterns !== undefined)
          assert.equal(matcher.patterns.length, c.expectActivePatterns);
        if (c.expectHasExclusions !== undefined) assert.equal(matcher.hasExclusions(), c.expectHasExclusions);
      },
    })),
  );
  await runCases(
    'pattern-file matchKind',
    data.matchKind.cases.map((c) => ({
      name: `matchKind ${JSON.stringify(c.pattern)}`,
      run: () => {
        const [pattern] = new PatternMatcher([c.pattern]).patterns;
        assert.ok(pattern !== undefined);
        assert.equal(pattern.kind, c.kind);
        if (c.regexp !== undefined) assert.equal(pattern.regexpSource, c.regexp);
      },
    })),
  );
});

// ---------------------------------------------------------------------------------------------
// walk-cases.json
// ---------------------------------------------------------------------------------------------

interface TreeEntry {
  path: string;
  type: 'dir' | 'file';
}

type WalkLine = [string, string];

interface WalkCase {
  name: string;
  tree: TreeEntry[];
  includePatterns?: string[];
  excludePatterns?: string[];
  expectWalk: WalkLine[];
}

interface WalkCorpus {
  walks: WalkCase[];
  layeredFilters: Array<{
    name: string;
    tree: TreeEntry[];
    filterLayers: Array<{ includePatterns?: string[]; excludePatterns?: string[] }>;
    expectWalk: WalkLine[];
  }>;
  filteredOpen: Array<{
    name: string;
    tree: TreeEntry[];
    includePatterns?: string[];
    excludePatterns?: string[];
    expectWalk?: WalkLine[];
    open: Array<{ path: string; exists: boolean }>;
  }>;
  pruning: {
    tree: TreeEntry[];
    cases: Array<{
      includePatterns?: string[];
      excludePatterns?: string[];
      expectWalk?: WalkLine[];
      expect?: string;
    }>;
  };
}

async function makeTree(root: string, tree: TreeEntry[]): Promise<void> {
  for (const entry of tree) {
    const path = join(root, entry.path);
    if (entry.type === 'dir') {
      await mkdir(path, { recursive: true });
    } else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, '');
    }
  }
}

async function collect(entries: AsyncIterable<ContextEntry>): Promise<WalkLine[]> {
  const lines: WalkLine[] = [];
  for await (const entry of entries) lines.push([entry.type, entry.path]);
  return lines;
}

async function withTree<T>(tree: TreeEntry[], work: (root: string) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'strata-walk-'));
  try {
    await makeTree(root, tree);
    return await work(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('dockerignore walk-cases.json', async () => {
  const corpus = corpusJson<WalkCorpus>('walk-cases.json');
  await runCases(
    'walks',
    corpus.walks.map((c) => ({
      name: c.name,
      run: () =>
        withTree(c.tree, async (root) => {
          const walked = await collect(
            walkContext(root, { includes: c.includePatterns, excludes: c.excludePatterns }),
          );
          assert.deepEqual(walked, c.expectWalk);
        }),
    })),
  );
  await runCases(
    'layeredFilters',
    corpus.layeredFilters.map((c) => ({
      name: c.name,
      run: () =>
        withTree(c.tree, async (root) => {
          const [first, ...rest] = c.filterLayers;
          let entries: AsyncIterable<ContextEntry> = walkContext(root, {
            includes: first?.includePatterns,
            excludes: first?.excludePatterns,
          });
          for (const layer of rest) {
            entries = filterContextEntries(entries, {
              includes: layer.includePatterns,
              excludes: layer.excludePatterns,
            });
          }
          assert.deepEqual(await collect(entries), c.expectWalk);
        }),
    })),
  );
  await runCases(
    'filteredOpen',
    corpus.filteredOpen.map((c) => ({
      name: c.name,
      run: () =>
        withTree(c.tree, async (root) => {
          const options = { includes: c.includePatterns, excludes: c.excludePatterns };
          const walked = await collect(walkContext(root, options));
          if (c.expectWalk !== undefined) assert.deepEqual(walked, c.expectWalk);
          const filter = new ContextFilter(options);
          for (const check of c.open) {
            const opened = filter.allows(check.path) && existsSync(join(root, check.path));
            assert.equal(opened, check.exists, `open ${check.path}`);
            const inWalk = walked.some(([, path]) => path === check.path);
            assert.equal(inWalk, check.exists, `${check.path} in the walk`);
          }
        }),
    })),
  );

  const pruning = await runPruning(corpus.pruning);
  await runCases(
    'pruning',
    corpus.pruning.cases.flatMap((c, index) => {
      const outcome = pruning.outcomes[index];
      if (outcome === undefined) return [];
      return [
        {
          name: `pruning #${index} ${JSON.stringify(c)}`,
          run: () => {
            if (c.expect !== undefined) {
              const wanted = c.expect.replace(/^error: /, '');
              assert.ok(
                outcome.error !== undefined,
                `expected "${c.expect}", walked ${JSON.stringify(outcome.walk)}`,
              );
              assert.ok(outcome.strataError, `expected a StrataError, got: ${outcome.error}`);
              assert.match(outcome.error, new RegExp(wanted, 'i'));
            } else {
              assert.equal(outcome.error, undefined);
              assert.deepEqual(outcome.walk, c.expectWalk);
            }
          },
        },
      ];
    }),
    { count: pruning.notApplicable, reason: pruning.reason },
  );
});

interface PruningOutcome {
  walk: WalkLine[];
  error?: string;
  strataError: boolean;
}

/**
 * The pruning cases need a directory the walker cannot read. Root reads anything, so as root the
 * walks run in a child process under the `nobody` user; otherwise they run here.
 */
async function runPruning(
  pruning: WalkCorpus['pruning'],
): Promise<{ outcomes: PruningOutcome[]; notApplicable: number; reason: string }> {
  const root = await mkdtemp(join(tmpdir(), 'strata-pruning-'));
  try {
    await chmod(root, 0o755);
    await makeTree(root, pruning.tree);
    await chmod(join(root, 'foo/bar'), 0o000);
    const cases = pruning.cases.map((c) => ({ includes: c.includePatterns, excludes: c.excludePatterns }));
    const script = `
      import { readdirSync } from 'node:fs';
      const { walkContext } = await import(process.env.STRATA_CONTEXT_MODULE);
      const root = process.env.STRATA_PRUNING_ROOT;
      let unreadable = false;
      try { readdirSync(root + '/foo/bar'); } catch { unreadable = true; }
      const outcomes = [];
      for (const options of JSON.parse(process.env.STRATA_PRUNING_CASES)) {
        const walk = [];
        try {
          for await (const entry of walkContext(root, options)) walk.push([entry.type, entry.path]);
          outcomes.push({ walk, strataError: false });
        } catch (err) {
          outcomes.push({ walk, error: String(err?.message ?? err), strataError: err?.name === 'StrataError' });
        }
      }
      process.stdout.write(JSON.stringify({ unreadable, outcomes }));
    `;
    const env = {
      ...process.env,
      STRATA_CONTEXT_MODULE: pathToFileURL(fileURLToPath(new URL('./context.ts', import.meta.url))).href,
      STRATA_PRUNING_ROOT: root,
      STRATA_PRUNING_CASES: JSON.stringify(cases),
    };
    const asRoot = process.getuid?.() === 0;
    let stdout: string;
    try {
      ({ stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '--eval', script],
        {
          env,
          cwd: fileURLToPath(new URL('../../', import.meta.url)),
          ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
        },
      ));
    } catch (err) {
      return {
        outcomes: [],
        notApplicable: pruning.cases.length,
        reason: `could not run the walker as an unprivileged user: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    const result = JSON.parse(stdout) as { unreadable: boolean; outcomes: PruningOutcome[] };
    if (!result.unreadable) {
      return {
        outcomes: [],
        notApplicable: pruning.cases.length,
        reason: 'the walker process can read a mode 0000 directory (running with CAP_DAC_OVERRIDE?)',
      };
    }
    return { outcomes: result.outcomes, notApplicable: 0, reason: '' };
  } finally {
    await chmod(join(root, 'foo/bar'), 0o755).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// buildkit-scenarios.json (walk level only: full builds need the build engine)
// ---------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  context: Record<string, string>;
  contextSymlinks?: Record<string, string>;
  dockerfile?: string;
  expectFiles?: Record<string, string>;
  expectAbsent?: string[];
  expectBuildError?: boolean;
  builds?: Array<{ dockerfile: string; expectSuccess: boolean }>;
  expect?: Array<[string, string | null]>;
  expectEmptyDir?: string;
}

async function makeContext(root: string, scenario: Scenario): Promise<void> {
  for (const [path, content] of Object.entries(scenario.context)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  for (const [path, target] of Object.entries(scenario.contextSymlinks ?? {})) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await symlink(target, join(root, path));
  }
}

/** The files `COPY . .` would get: the context walked through its ignore file. */
async function copiedFiles(root: string, dockerfile?: string): Promise<Set<string>> {
  const excludes = await readIgnoreFile(root, dockerfile);
  const files = new Set<string>();
  for await (const entry of walkContext(root, { excludes })) if (entry.type !== 'dir') files.add(entry.path);
  return files;
}

/**
 * The COPY/ADD sources of the copy-exclude scenario, resolved the way BuildKit does for these
 * simple forms (`.`, `dir/`, a wildcard over top-level names), each walked with its own
 * `--exclude` patterns; returns output path -> file content or symlink target.
 */
async function simulateExcludeCopies(root: string, dockerfile: string): Promise<Map<string, string>> {
  const output = new Map<string, string>();
  let stage = '';
  const topLevel = Object.keys(
    Object.fromEntries((await collect(walkContext(root, {}))).map(([, path]) => [path.split('/')[0], true])),
  );
  for (const line of dockerfile.split('\n')) {
    const from = /^FROM\s+\S+\s+as\s+(\S+)/i.exec(line);
    if (from !== null) stage = from[1] ?? '';
    const copy = /^(?:COPY|ADD)\s+(.*)$/.exec(line);
    if (copy === null || (copy[1] ?? '').includes('--from')) continue;
    const words = (copy[1] ?? '').split(/\s+/);
    const excludes = words.filter((word) => word.startsWith('--exclude=')).map((word) => word.slice(10));
    const operands = words.filter((word) => !word.startsWith('--'));
    const destination = (operands.pop() ?? '').replace(/^\/|\/$/g, '');
    for (const source of operands) {
      const cleaned = cleanPath(source);
      const sources =
        cleaned === '.'
          ? ['']
          : /[*?[]/.test(cleaned)
            ? topLevel.filter((name) => new PatternMatcher([cleaned]).patterns[0]?.matchesPath(name))
            : [cleaned];
      for (const sourceDir of sources) {
        for await (const entry of walkContext(join(root, sourceDir), { excludes })) {
          if (entry.type === 'dir') continue;
          const absolute = join(root, sourceDir, entry.path);
          const value =
            entry.type === 'symlink' ? await readlink(absolute) : await readFile(absolute, 'utf8');
          output.set(`${stage}/${destination}/${entry.path}`, value);
        }
      }
    }
  }
  return output;
}

test('dockerignore buildkit-scenarios.json (walk level)', async () => {
  const { scenarios } = corpusJson<{ scenarios: Scenario[] }>('buildkit-scenarios.json');
  const checks: NamedCase[] = [];
  const work = await mkdtemp(join(tmpdir(), 'strata-scenarios-'));
  try {
    for (const [index, scenario] of scenarios.entries()) {
      const root = join(work, `s${index}`);
      await makeContext(root, scenario);
      const name = (what: string) => `${scenario.name}: ${what}`;
      if (scenario.expectBuildError === true) {
        checks.push({
          name: name('the ignore file fails the build'),
          run: async () => {
            await assert.rejects(copiedFiles(root), (err: unknown) => isStrataError(err, 'INVALID_ARGUMENT'));
          },
        });
      }
      if (scenario.expectFiles !== undefined || scenario.expectAbsent !== undefined) {
        const files = copiedFiles(root);
        for (const path of Object.keys(scenario.expectFiles ?? {})) {
          checks.push({ name: name(`${path} is sent`), run: async () => assert.ok((await files).has(path)) });
        }
        for (const path of scenario.expectAbsent ?? []) {
          checks.push({
            name: name(`${path} is not sent`),
            run: async () => assert.ok(!(await files).has(path)),
          });
        }
        files.catch(() => undefined);
      }
      for (const build of scenario.builds ?? []) {
        // The RUN line asserts `[ -f x ]` / `[ ! -f x ]`: that is what the walk must give.
        const runLine =
          scenario.context[build.dockerfile]?.split('\n').find((line) => line.startsWith('RUN')) ?? '';
        const files = copiedFiles(root, join(root, build.dockerfile));
        files.catch(() => undefined);
        for (const [, negation, path] of runLine.matchAll(/\[ (! )?-f (\S+) \]/g)) {
          checks.push({
            name: name(`-f ${build.dockerfile}: ${path} ${negation === undefined ? 'sent' : 'not sent'}`),
            run: async () => assert.equal((await files).has(path ?? ''), negation === undefined),
          });
        }
      }
      if (scenario.expect !== undefined && scenario.dockerfile !== undefined) {
        const output = simulateExcludeCopies(root, scenario.dockerfile);
        output.catch(() => undefined);
        for (const [path, content] of scenario.expect) {
          checks.push({
            name: name(`${path} ${content === null ? 'absent' : 'present'}`),
            run: async () => assert.equal((await output).get(path), content ?? undefined),
          });
        }
        if (scenario.expectEmptyDir !== undefined) {
          const emptyDir = `${scenario.expectEmptyDir}/`;
          checks.push({
            name: name(`${emptyDir} is empty`),
            run: async () =>
              assert.deepEqual(
                [...(await output).keys()].filter((p) => p.startsWith(emptyDir)),
                [],
              ),
          });
        }
      }
    }
    await runCases(`buildkit-scenarios (walk-level checks of ${scenarios.length} scenarios)`, checks);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
