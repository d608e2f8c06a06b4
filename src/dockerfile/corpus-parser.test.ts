/**
 * Data-driven suite over BuildKit's own parser test data (shared/corpora/buildkit-parser/, see its
 * FORMAT.md). Every case must pass; the corpus must be present (the suite never skips).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { DockerfileError } from './errors.js';
import { dumpAst } from './dump.js';
import {
  chompHeredocContent,
  detectDirective,
  heredocsFromLine,
  parseDirectiveBlock,
  parseDockerfile,
  parseHeredocWord,
  parseJsonArray,
  parseWords,
  type InstructionNode,
} from './parser.js';
import { corpusPath } from '../testing/corpus.js';

const root = corpusPath('buildkit-parser');

function readJson<T>(name: string): T {
  return JSON.parse(readFileSync(join(root, name), 'utf8')) as T;
}

interface Case {
  name: string;
  run: () => void;
}

/** Runs `cases`, printing "buildkit-parser <label>: N/M", and fails listing every failure. */
function runCases(label: string, cases: Case[]): void {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      c.run();
    } catch (err) {
      failures.push(`${c.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  console.log(`buildkit-parser ${label}: ${cases.length - failures.length}/${cases.length}`);
  assert.ok(cases.length > 0, `${label}: no cases found`);
  assert.deepEqual(failures, [], `${label}: ${failures.length} case(s) failed`);
}

function expectDockerfileError(fn: () => unknown, includes?: string): DockerfileError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DockerfileError, `expected a DockerfileError, got ${String(err)}`);
    assert.ok(err.line >= 1, `error line ${err.line}`);
    if (includes !== undefined)
      assert.ok(err.reason.includes(includes), `"${err.reason}" lacks "${includes}"`);
    return err;
  }
  assert.fail('expected a parse error');
}

test('testfiles: dump equals BuildKit result byte for byte', () => {
  const dir = join(root, 'testfiles');
  const cases = readdirSync(dir).map((name) => ({
    name,
    run: () => {
      const source = readFileSync(join(dir, name, 'Dockerfile'));
      const expected = readFileSync(join(dir, name, 'result'), 'utf8');
      assert.equal(`${dumpAst(parseDockerfile(source))}`, `${expected.trimEnd()}\n`);
    },
  }));
  assert.equal(cases.length, 33);
  runCases('testfiles', cases);
});

test('testfiles-negative: parse fails with a positioned error', () => {
  const dir = join(root, 'testfiles-negative');
  const cases = readdirSync(dir).map((name) => ({
    name,
    run: () => {
      expectDockerfileError(() => parseDockerfile(readFileSync(join(dir, name, 'Dockerfile'))));
    },
  }));
  assert.equal(cases.length, 4);
  runCases('testfiles-negative', cases);
});

interface HeredocExpectation {
  name: string;
  content: string;
  expand: boolean;
  chomp: boolean;
  fileDescriptor: number;
}

test('heredocs.json', () => {
  const data = readJson<{
    attachedHeredocs: {
      dockerfile: string;
      firstInstruction: string;
      expectations: Array<{ instruction: string; heredocs: HeredocExpectation[] }>;
    };
    jsonFormHasNoHeredocs: { dockerfile: string };
    chomp: Array<{ input: string; expect: string }>;
    heredocWord: { valid: string[]; error: string[]; notHeredoc: string[] };
    heredocNamesFromLine: Array<{ line: string; names: string[] }>;
  }>('heredocs.json');
  const cases: Case[] = [];
  const attached = parseDockerfile(data.attachedHeredocs.dockerfile).instructions;
  cases.push({
    name: 'instruction count',
    run: () => {
      assert.equal(attached[0]?.original, data.attachedHeredocs.firstInstruction);
      assert.equal(attached.length, data.attachedHeredocs.expectations.length + 1);
    },
  });
  data.attachedHeredocs.expectations.forEach((expectation, i) => {
    cases.push({
      name: `attached ${expectation.instruction}`,
      run: () => {
        const node = attached[i + 1] as InstructionNode;
        assert.equal(node.original, expectation.instruction);
        assert.deepEqual(
          node.heredocs.map(({ name, content, expand, chomp, fileDescriptor }) => ({
            name,
            content,
            expand,
            chomp,
            fileDescriptor,
          })),
          expectation.heredocs,
        );
      },
    });
  });
  cases.push({
    name: 'json form has no heredocs',
    run: () => {
      const nodes = parseDockerfile(data.jsonFormHasNoHeredocs.dockerfile).instructions;
      assert.equal(nodes.length, 4);
      for (const node of nodes.slice(1)) assert.deepEqual(node.heredocs, []);
    },
  });
  for (const chomp of data.chomp) {
    cases.push({
      name: `chomp ${JSON.stringify(chomp.input)}`,
      run: () => assert.equal(chompHeredocContent(chomp.input), chomp.expect),
    });
  }
  for (const word of data.heredocWord.valid) {
    cases.push({ name: `valid word ${word}`, run: () => assert.equal(parseHeredocWord(word)?.name, 'EOF') });
  }
  for (const word of data.heredocWord.error) {
    cases.push({ name: `error word ${word}`, run: () => assert.throws(() => parseHeredocWord(word)) });
  }
  for (const word of data.heredocWord.notHeredoc) {
    cases.push({
      name: `not a heredoc ${JSON.stringify(word)}`,
      run: () => assert.equal(parseHeredocWord(word), undefined),
    });
  }
  for (const entry of data.heredocNamesFromLine) {
    cases.push({
      name: `names from ${entry.line}`,
      run: () =>
        assert.deepEqual(
          heredocsFromLine(entry.line).map((heredoc) => heredoc.name),
          entry.names,
        ),
    });
  }
  runCases('heredocs', cases);
});

test('json-arrays.json', () => {
  const data = readJson<{ valid: Array<{ input: string; expect: string[] }>; notStringArray: string[] }>(
    'json-arrays.json',
  );
  const cases: Case[] = [
    ...data.valid.map((entry) => ({
      name: entry.input,
      run: () => assert.deepEqual(parseJsonArray(entry.input), entry.expect),
    })),
    ...data.notStringArray.map((input) => ({
      name: input,
      run: () => {
        assert.throws(() => parseJsonArray(input), /arrays must be comprised of strings only/);
        expectDockerfileError(() => parseDockerfile(`FROM x\nCMD ${input}\n`), 'strings only');
      },
    })),
  ];
  runCases('json-arrays', cases);
});

test('directives.json', () => {
  const data = readJson<{
    parseAll: Array<{ input: string; expect: Array<{ name: string; value: string }> }>;
    detectSyntax: Array<{
      input?: string;
      inputHex?: string;
      found: boolean;
      ref?: string;
      cmdline?: string;
      line?: number;
    }>;
    parseDirectiveCheck: Array<{
      input: string;
      found: boolean;
      value?: string;
      cmdline?: string;
      line?: number;
    }>;
  }>('directives.json');
  const cases: Case[] = [];
  for (const entry of data.parseAll) {
    cases.push({
      name: `parseAll ${JSON.stringify(entry.input)}`,
      run: () =>
        assert.deepEqual(
          parseDirectiveBlock(entry.input).map(({ name, value }) => ({ name, value })),
          entry.expect,
        ),
    });
  }
  const check = (
    key: 'syntax' | 'check',
    input: string | Uint8Array,
    entry: { found: boolean; ref?: string; value?: string; cmdline?: string; line?: number },
  ) => {
    const found = detectDirective(key, input);
    if (!entry.found) {
      assert.equal(found, undefined);
      return;
    }
    assert.ok(found, 'directive not found');
    const expectedValue = key === 'syntax' ? entry.ref : entry.value;
    if (expectedValue !== undefined) assert.equal(found.value, expectedValue);
    if (entry.cmdline !== undefined) assert.equal(found.cmdline, entry.cmdline);
    if (entry.line !== undefined) assert.equal(found.line, entry.line);
  };
  for (const entry of data.detectSyntax) {
    const input = entry.inputHex !== undefined ? Buffer.from(entry.inputHex, 'hex') : (entry.input as string);
    cases.push({
      name: `detectSyntax ${JSON.stringify(entry.input ?? entry.inputHex)}`,
      run: () => check('syntax', input, entry),
    });
  }
  for (const entry of data.parseDirectiveCheck) {
    cases.push({
      name: `check ${JSON.stringify(entry.input)}`,
      run: () => check('check', entry.input, entry),
    });
  }
  runCases('directives', cases);
});

test('parser-misc.json', () => {
  const data = readJson<{
    parseWords: { cases: Array<{ input: string; expect: string[] }> };
    nameValue: {
      cases: Array<{ instruction: string; args: string; expect?: string[][]; expectError?: string }>;
    };
    lineNumbers: {
      file: string;
      expect: { rootStartLine: number; rootEndLine: number; children: Array<[number, number]> };
    };
    emptyContinuationWarnings: { dockerfile: string; expectWarnings: number; warningsMention: string[] };
  }>('parser-misc.json');
  const cases: Case[] = [];
  for (const entry of data.parseWords.cases) {
    cases.push({
      name: `parseWords ${entry.input}`,
      run: () => assert.deepEqual(parseWords(entry.input), entry.expect),
    });
  }
  for (const entry of data.nameValue.cases) {
    cases.push({
      name: `nameValue ${entry.instruction} ${entry.args}`,
      run: () => {
        const source = `FROM x\n${entry.instruction} ${entry.args}\n`;
        if (entry.expectError !== undefined) {
          expectDockerfileError(() => parseDockerfile(source), entry.expectError);
          return;
        }
        const node = parseDockerfile(source).instructions[1] as InstructionNode;
        assert.deepEqual(node.args, (entry.expect ?? []).flat());
      },
    });
  }
  cases.push({
    name: 'lineNumbers',
    run: () => {
      const nodes = parseDockerfile(readFileSync(join(root, data.lineNumbers.file))).instructions;
      const expect = data.lineNumbers.expect;
      assert.deepEqual(
        nodes.map((node) => [node.range.start.line, node.range.end.line]),
        expect.children,
      );
      assert.equal(nodes[0]?.range.start.line, expect.rootStartLine);
      assert.equal(nodes.at(-1)?.range.end.line, expect.rootEndLine);
    },
  });
  cases.push({
    name: 'emptyContinuationWarnings',
    run: () => {
      const { warnings } = parseDockerfile(data.emptyContinuationWarnings.dockerfile);
      assert.equal(warnings.length, data.emptyContinuationWarnings.expectWarnings);
      for (const mention of data.emptyContinuationWarnings.warningsMention) {
        assert.ok(
          warnings.some((warning) => warning.message.includes(mention)),
          `no warning mentions ${mention}`,
        );
      }
      for (const warning of warnings)
        assert.ok(warning.message.startsWith('Empty continuation line found in: '));
    },
  });
  cases.push({
    name: 'lineTooLong',
    run: () => {
      const error = expectDockerfileError(
        () => parseDockerfile(`FROM x\nRUN ${'a'.repeat(65536)}\n`),
        'max allowed size of 65535',
      );
      assert.equal(error.line, 2);
      assert.equal(parseDockerfile(`FROM x\nRUN ${'a'.repeat(65000)}\n`).instructions.length, 2);
    },
  });
  runCases('parser-misc', cases);
});
