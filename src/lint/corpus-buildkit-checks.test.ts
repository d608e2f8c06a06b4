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

test('buildkit-checks corpus', () => {
  const corpus = JSON.parse(readFileSync(join(corpusPath('buildkit-checks'), 'cases.json'), 'utf8')) as {
    cases: BuildkitCase[];
  };
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
