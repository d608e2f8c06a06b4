/**
 * Data-driven suite over BuildKit's own shell-lexer test data (shared/corpora/buildkit-shell/, see
 * its FORMAT.md). Every applicable case must pass; the corpus must be present (never skipped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ShellExpansionError, ShellLexer, envFromList } from './shell.js';
import { corpusPath } from '../testing/corpus.js';

const corpusDir = corpusPath('buildkit-shell');

function corpusFile(name: string): string {
  return readFileSync(join(corpusDir, name), 'utf8');
}

/** Runs `cases`, printing "buildkit-shell <label>: N/M", and fails listing every failure. */
function runCases(label: string, cases: Array<{ name: string; run: () => void }>): void {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      c.run();
    } catch (err) {
      failures.push(`${c.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  console.log(`buildkit-shell ${label}: ${cases.length - failures.length}/${cases.length}`);
  assert.ok(cases.length > 0, `${label}: no cases found`);
  assert.deepEqual(failures, [], `${label}: ${failures.length} case(s) failed`);
}

function expectFailure(fn: () => unknown, what: string): ShellExpansionError {
  try {
    const result = fn();
    throw new assert.AssertionError({ message: `${what}: expected an error, got ${JSON.stringify(result)}` });
  } catch (err) {
    if (err instanceof ShellExpansionError) return err;
    throw err;
  }
}

test('buildkit-shell envVarTest', () => {
  const env = envFromList(['PWD=/home', 'SHELL=bash', 'KOREAN=한국어', 'NULL=']);
  const lexer = new ShellLexer('\\');
  const cases: Array<{ name: string; run: () => void }> = [];
  let windowsOnly = 0;
  corpusFile('envVarTest')
    .split('\n')
    .forEach((raw, index) => {
      if (raw.startsWith('#')) return;
      const line = raw.trim();
      if (line === '') return;
      const fields = line.split('|');
      assert.equal(fields.length, 3, `envVarTest line ${index + 1}: expected 3 fields`);
      const [platform, source, expected] = fields.map((f) => f.trim()) as [string, string, string];
      assert.ok(['A', 'U', 'W'].includes(platform), `envVarTest line ${index + 1}: bad platform ${platform}`);
      // Windows lines differ only by case-insensitive names; strata implements Linux semantics.
      if (platform === 'W') {
        windowsOnly++;
        return;
      }
      cases.push({
        name: `line ${index + 1} ${JSON.stringify(source)}`,
        run: () => {
          if (expected === 'error') {
            expectFailure(() => lexer.processWord(source, env), source);
          } else {
            assert.equal(lexer.processWord(source, env), expected);
          }
        },
      });
    });
  assert.equal(windowsOnly, 2);
  runCases('envVarTest', cases);
  assert.equal(cases.length, 228);
});

test('buildkit-shell wordsTest', () => {
  const lexer = new ShellLexer('\\');
  const envList: string[] = [];
  const cases: Array<{ name: string; run: () => void }> = [];
  corpusFile('wordsTest')
    .split('\n')
    .forEach((line, index) => {
      if (line.startsWith('#')) return;
      if (line.startsWith('ENV ')) {
        envList.push(line.slice(3).replace(/^ +/, ''));
        return;
      }
      if (line === '') return; // the trailing newline of the file
      const fields = line.split('|');
      assert.equal(fields.length, 2, `wordsTest line ${index + 1}: expected exactly one |`);
      const source = (fields[0] ?? '').trim();
      const expected = (fields[1] ?? '').replace(/^ +/, '').split(',');
      const env = envFromList(envList); // the environment as it stands at this line
      cases.push({
        name: `line ${index + 1} ${JSON.stringify(source)}`,
        run: () => {
          if (expected.length === 1 && expected[0] === 'error') {
            expectFailure(() => lexer.processWords(source, env), source);
          } else {
            assert.deepEqual(lexer.processWords(source, env), expected);
          }
        },
      });
    });
  runCases('wordsTest', cases);
  assert.equal(cases.length, 24);
});

interface MatchCase {
  input: string;
  env: Record<string, string>;
  expect?: string;
  expectError?: boolean;
  matched?: string[];
  unmatched?: string[];
}

interface MatchesFile {
  processWordWithMatches: MatchCase[];
  platformFilename: MatchCase[];
  requiredVariables: {
    cases: Array<{ input: string; envList: string[]; expect?: string; expectErrorContains?: string }>;
  };
  envListLookup: { cases: Array<{ envList: string[]; key: string; expect: string }> };
}

test('buildkit-shell process-with-matches.json', () => {
  const data = JSON.parse(corpusFile('process-with-matches.json')) as MatchesFile;
  const lexer = new ShellLexer('\\');
  const cases: Array<{ name: string; run: () => void }> = [];

  for (const [i, c] of [...data.processWordWithMatches, ...data.platformFilename].entries()) {
    const env = new Map(Object.entries(c.env));
    cases.push({
      name: `expansion #${i} ${JSON.stringify(c.input)}`,
      run: () => {
        if (c.expectError === true) {
          expectFailure(() => lexer.processWordWithMatches(c.input, env), c.input);
          return;
        }
        const result = lexer.processWordWithMatches(c.input, env);
        assert.equal(result.result, c.expect);
        if (c.matched !== undefined) assert.deepEqual([...result.matched].sort(), c.matched);
        if (c.unmatched !== undefined) assert.deepEqual([...result.unmatched].sort(), c.unmatched);
      },
    });
  }

  for (const [i, c] of data.requiredVariables.cases.entries()) {
    cases.push({
      name: `requiredVariables #${i} ${JSON.stringify(c.input)} ${JSON.stringify(c.envList)}`,
      run: () => {
        const env = envFromList(c.envList);
        if (c.expectErrorContains !== undefined) {
          const err = expectFailure(() => lexer.processWord(c.input, env), c.input);
          assert.ok(err.message.includes(c.expectErrorContains), err.message);
        } else {
          assert.equal(lexer.processWord(c.input, env), c.expect);
        }
      },
    });
  }

  for (const [i, c] of data.envListLookup.cases.entries()) {
    cases.push({
      name: `envListLookup #${i} ${JSON.stringify(c.envList)}`,
      run: () => {
        const env = envFromList(c.envList);
        assert.equal(env.get(c.key) ?? '', c.expect);
        assert.equal(lexer.processWord('$' + c.key, env), c.expect);
      },
    });
  }

  runCases('process-with-matches.json', cases);
  assert.equal(cases.length, 47 + 3 + 6 + 6);
});
