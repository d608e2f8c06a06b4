/**
 * BuildKit's build-check tests as data (shared/corpora/buildkit-checks/cases.json), compared the
 * way `docker build --check` results are: the exact set of warnings, sorted by line then detail,
 * each with the same rule name, description, URL, detail and line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { corpusPath } from '../testing/corpus.js';
import { readIgnorePatterns } from '../dockerfile/dockerignore.js';
import { lintDockerfile } from './engine.js';
import { checkDockerfile } from './build-checks.js';
import { BUILDKIT_RULES } from './rules/index.js';
import { knownFailures } from './corpus-known-failures.js';

interface ExpectedWarning {
  rule: string;
  description: string;
  detail: string;
  url: string;
  line: number;
}

interface BuildkitCase {
  name: string;
  dockerfile: string;
  dockerignore?: string;
  frontendAttrs?: Record<string, string>;
  warnings: ExpectedWarning[];
  unmarshalWarnings?: ExpectedWarning[];
  buildError?: string;
  buildErrorRegexp?: string;
}

const describe = (warning: Omit<ExpectedWarning, 'description'> & { description?: string }): string =>
  `${warning.rule}@${warning.line} ${warning.detail} | ${warning.description ?? ''} | ${warning.url}`;

function judge(testCase: BuildkitCase): string | undefined {
  const descriptions = new Map(BUILDKIT_RULES.map((rule) => [rule.id, rule.message]));
  const { findings } = lintDockerfile(testCase.dockerfile, {
    rules: BUILDKIT_RULES,
    dockerignore: testCase.dockerignore === undefined ? undefined : readIgnorePatterns(testCase.dockerignore),
    checkOverride: testCase.frontendAttrs?.['build-arg:BUILDKIT_DOCKERFILE_CHECK'],
  });
  const order = (a: { line: number; detail: string }, b: { line: number; detail: string }): number =>
    a.line - b.line || (a.detail < b.detail ? -1 : a.detail > b.detail ? 1 : 0);
  const actual = findings
    .map((finding) => ({
      rule: finding.rule,
      line: finding.line,
      detail: finding.message,
      url: finding.url ?? '',
      description: descriptions.get(finding.rule),
    }))
    .sort(order)
    .map(describe);
  const expected = [...(testCase.unmarshalWarnings ?? testCase.warnings)].sort(order).map(describe);
  if (JSON.stringify(actual) === JSON.stringify(expected)) return undefined;
  return `expected [${expected.join('; ')}]\n      got [${actual.join('; ')}]`;
}

function loadCases(): BuildkitCase[] {
  const corpus = JSON.parse(readFileSync(join(corpusPath('buildkit-checks'), 'cases.json'), 'utf8')) as {
    cases: BuildkitCase[];
  };
  return corpus.cases;
}

test('buildkit-checks corpus', () => {
  const corpus = { cases: loadCases() };
  assert.equal(corpus.cases.length, 87, 'the corpus should hold 87 cases');
  const known = knownFailures('buildkit-checks');
  let passed = 0;
  const unexpected: string[] = [];
  const fixed: string[] = [];
  for (const testCase of corpus.cases) {
    const failure = judge(testCase);
    if (failure === undefined) {
      passed++;
      if (known.has(testCase.name)) fixed.push(testCase.name);
    } else if (!known.has(testCase.name)) {
      unexpected.push(`${testCase.name}: ${failure}`);
    }
  }
  console.log(`buildkit-checks corpus: ${passed}/${corpus.cases.length} pass (${known.size} known failures)`);
  for (const line of unexpected) console.log(`  FAIL ${line}`);
  for (const name of fixed) console.log(`  now passing, remove from corpus-known-failures: ${name}`);
  assert.deepEqual(unexpected, [], 'unexpected buildkit-checks corpus failures');
  assert.deepEqual(fixed, [], 'known failures that now pass');
});

/** The frontend attributes' build args (`build-arg:NAME` → NAME). */
function buildArgsOf(testCase: BuildkitCase): Record<string, string> {
  const args: Record<string, string> = {};
  for (const [key, value] of Object.entries(testCase.frontendAttrs ?? {})) {
    if (key.startsWith('build-arg:')) args[key.slice('build-arg:'.length)] = value;
  }
  return args;
}

/**
 * Upstream's error text is a Go error chain; strata words some links differently. The error
 * matches when strata's message holds upstream's text, or at least its first link (what failed),
 * with the location prefixes of both sides and Go's "did you mean" suffix set aside.
 */
function errorMatches(expected: string, actual: string): boolean {
  const wanted = expected
    .replace(/^dockerfile parse error on line \d+: /, '')
    .replace(/ \(did you mean [^)]*\)$/, '');
  return actual.includes(wanted) || actual.includes(wanted.split(': ')[0] as string);
}

/** The same corpus through `checkDockerfile`, the path `strata build --check` takes. */
function judgeCheck(testCase: BuildkitCase): string | undefined {
  const result = checkDockerfile(testCase.dockerfile, {
    allStages: true,
    buildArgs: buildArgsOf(testCase),
    ...(testCase.dockerignore === undefined
      ? {}
      : { dockerignore: readIgnorePatterns(testCase.dockerignore) }),
  });
  const order = (a: { line: number; detail: string }, b: { line: number; detail: string }): number =>
    a.line - b.line || (a.detail < b.detail ? -1 : a.detail > b.detail ? 1 : 0);
  const actual = result.warnings
    .map((warning) => ({ ...warning, line: warning.startLine }))
    .sort(order)
    .map(describe);
  const expected = [...(testCase.unmarshalWarnings ?? testCase.warnings)].sort(order).map(describe);
  if (JSON.stringify(actual) !== JSON.stringify(expected))
    return `expected [${expected.join('; ')}]\n      got [${actual.join('; ')}]`;
  // A regexp describes a failure while building (a missing file): a check does not get there.
  const expectedError = testCase.buildErrorRegexp === undefined ? testCase.buildError : undefined;
  if (expectedError === undefined) {
    return result.error === undefined ? undefined : `expected no error, got ${result.error.message}`;
  }
  if (result.error === undefined) return `expected error "${expectedError}", got none`;
  return errorMatches(expectedError, result.error.message)
    ? undefined
    : `expected error "${expectedError}", got "${result.error.message}"`;
}

test('buildkit-checks corpus through the build check (warnings and errors)', () => {
  const cases = loadCases();
  const known = new Map([...knownFailures('buildkit-checks'), ...knownFailures('build-check')]);
  let passed = 0;
  const unexpected: string[] = [];
  const fixed: string[] = [];
  for (const testCase of cases) {
    const failure = judgeCheck(testCase);
    if (failure === undefined) {
      passed++;
      if (known.has(testCase.name)) fixed.push(testCase.name);
    } else if (!known.has(testCase.name)) {
      unexpected.push(`${testCase.name}: ${failure}`);
    }
  }
  console.log(`buildkit-checks corpus (build --check): ${passed}/${cases.length} pass`);
  for (const line of unexpected) console.log(`  FAIL ${line}`);
  for (const name of fixed) console.log(`  now passing, remove from corpus-known-failures: ${name}`);
  assert.deepEqual(unexpected, [], 'unexpected build-check corpus failures');
  assert.deepEqual(fixed, [], 'known failures that now pass');
});
