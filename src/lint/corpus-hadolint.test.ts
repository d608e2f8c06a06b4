/**
 * hadolint's own rule tests as data (shared/corpora/hadolint/cases.jsonl): each case names one
 * rule, a Dockerfile and whether the rule must fire (and how often). Cases strata knowingly
 * answers differently are listed, with the reason, in corpus-known-failures.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { corpusPath } from '../testing/corpus.js';
import { lintDockerfile } from './engine.js';
import { applyConfigObject, defaultLintConfig } from './config.js';
import { HADOLINT_RULES } from './rules/index.js';
import { knownFailures } from './corpus-known-failures.js';

interface HadolintCase {
  rule: string;
  dockerfile: string;
  expect: 'pass' | 'fail';
  count?: number;
  variant?: string;
  config?: Record<string, unknown>;
  name: string;
  source: string;
}

export function hadolintCaseKey(testCase: Pick<HadolintCase, 'source' | 'variant' | 'rule'>): string {
  return `${testCase.source}${testCase.variant ? ` [${testCase.variant}]` : ''} ${testCase.rule}`;
}

/** Why the case does not hold, or undefined when it does. */
function judge(testCase: HadolintCase): string | undefined {
  const config = applyConfigObject(defaultLintConfig(), testCase.config ?? {}, 'case config');
  const { findings } = lintDockerfile(testCase.dockerfile, {
    config,
    rules: HADOLINT_RULES,
    includeIgnoredSeverity: true,
  });
  // hadolint's ShellCheck cases expect any SC finding (hadolint reports them under their codes).
  const matches = (rule: string): boolean =>
    testCase.rule === '*' ||
    rule === testCase.rule ||
    (testCase.rule === 'shellcheck' && /^SC\d+$/.test(rule));
  const relevant = findings.filter((finding) => matches(finding.rule));
  const seen = relevant.map((finding) => `${finding.rule}@${finding.line}`).join(', ') || 'none';
  if (testCase.expect === 'pass')
    return relevant.length === 0 ? undefined : `expected no finding, got ${seen}`;
  if (testCase.count !== undefined) {
    return relevant.length === testCase.count ? undefined : `expected ${testCase.count}, got ${seen}`;
  }
  return relevant.length > 0 ? undefined : 'expected a finding, got none';
}

test('hadolint corpus', () => {
  const cases = readFileSync(join(corpusPath('hadolint'), 'cases.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HadolintCase);
  assert.equal(cases.length, 1050, 'the corpus should hold 1050 cases');
  const known = knownFailures('hadolint');
  let passed = 0;
  const unexpected: string[] = [];
  const fixed: string[] = [];
  const expectedFailures: string[] = [];
  for (const testCase of cases) {
    const key = hadolintCaseKey(testCase);
    const failure = judge(testCase);
    if (failure === undefined) {
      passed++;
      if (known.has(key)) fixed.push(key);
    } else if (known.has(key)) {
      expectedFailures.push(`${key}: ${failure} (known: ${known.get(key)})`);
    } else {
      unexpected.push(`${key} "${testCase.name}": ${failure}\n    ${JSON.stringify(testCase.dockerfile)}`);
    }
  }
  console.log(`hadolint corpus: ${passed}/${cases.length} pass (${expectedFailures.length} known failures)`);
  if (process.env.LINT_CORPUS_VERBOSE) for (const line of expectedFailures) console.log(`  known: ${line}`);
  for (const line of unexpected) console.log(`  FAIL ${line}`);
  for (const key of fixed) console.log(`  now passing, remove from corpus-known-failures: ${key}`);
  assert.deepEqual(unexpected, [], 'unexpected hadolint corpus failures');
  assert.deepEqual(fixed, [], 'known failures that now pass');
});
