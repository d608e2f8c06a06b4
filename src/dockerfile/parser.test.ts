import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { DockerfileError } from './errors.js';
import { dumpAst } from './dump.js';
import { detectSyntax, extractFlags, parseDockerfile, type InstructionNode } from './parser.js';
import { loadDockerfile } from './stages.js';

function nodes(source: string | Uint8Array): InstructionNode[] {
  return parseDockerfile(source).instructions;
}

test('positions: start line and column of the keyword, end of the last consumed line', () => {
  const [from, run] = nodes('\n  FROM busybox\n\nRUN a \\\n  b \\\n  c\n');
  assert.deepEqual(from?.range, { start: { line: 2, column: 3 }, end: { line: 2, column: 15 } });
  assert.deepEqual(run?.range.start, { line: 4, column: 1 });
  assert.deepEqual(run?.range.end, { line: 6, column: 4 });
  assert.equal(run?.args[0], 'a   b   c');
});

test('BOM and CRLF are accepted; line endings are not part of the text', () => {
  const source = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from('# escape=`\r\nFROM a\r\nRUN x `\r\n y\r\n'),
  ]);
  const result = parseDockerfile(source);
  assert.equal(result.escapeToken, '`');
  assert.equal(dumpAst(result), '(from "a")\n(run "x  y")\n');
});

test('keywords are case-insensitive; the original text is kept', () => {
  const [node] = nodes('fRoM Alpine AS Build\n');
  assert.equal(node?.keyword, 'from');
  assert.deepEqual(node?.args, ['Alpine', 'AS', 'Build']);
  assert.equal(node?.original, 'fRoM Alpine AS Build');
});

test('exec and shell forms, and text after a JSON array is ignored like Go does', () => {
  const [, exec, shell, trailing, broken] = nodes(
    'FROM a\nCMD ["a", "b c"]\nCMD echo "hi"\nCMD ["a"] ignored\nCMD ["a",\n',
  );
  assert.deepEqual([exec?.json, exec?.args], [true, ['a', 'b c']]);
  assert.deepEqual([shell?.json, shell?.args], [false, ['echo "hi"']]);
  assert.deepEqual([trailing?.json, trailing?.args], [true, ['a']]);
  assert.deepEqual([broken?.json, broken?.args], [false, ['["a",']]);
});

test('flags: quotes removed, backslash escapes, bare -- ends them', () => {
  assert.deepEqual(extractFlags('--mount=type=cache,target="/a b" --network=none make'), {
    flags: ['--mount=type=cache,target=/a b', '--network=none'],
    rest: 'make',
  });
  assert.deepEqual(extractFlags('--x=a\\ b -- --not-a-flag'), { flags: ['--x=a b'], rest: ' --not-a-flag' });
  assert.deepEqual(extractFlags('-x'), { flags: [], rest: '-x' });
});

test('heredocs: several per line, file descriptors, ONBUILD, body not parsed as instructions', () => {
  const [, copy, run, onbuild, last] = nodes(
    'FROM a\nCOPY <<one <<two /dst/\n1\none\n2\ntwo\nRUN 3<<-EOF cat <&3\n\tFROM inside\n\tEOF\nONBUILD RUN <<X\nx\nX\nUSER me\n',
  );
  assert.deepEqual(
    copy?.heredocs.map((heredoc) => [heredoc.name, heredoc.content]),
    [
      ['one', '1\n'],
      ['two', '2\n'],
    ],
  );
  assert.deepEqual(run?.heredocs, [
    { name: 'EOF', content: '\tFROM inside\n', expand: true, chomp: true, fileDescriptor: 3 },
  ]);
  assert.equal(onbuild?.child?.keyword, 'run');
  assert.deepEqual(
    onbuild?.heredocs.map((heredoc) => heredoc.name),
    ['X'],
  );
  assert.equal(last?.keyword, 'user');
  assert.deepEqual(run?.range, { start: { line: 7, column: 1 }, end: { line: 9, column: 5 } });
});

test('comments directly above an instruction are attached to it', () => {
  const [, run] = nodes('FROM a\n# install\n# tools\nRUN x\n');
  assert.deepEqual(run?.comments, ['install', 'tools']);
});

test('syntax detection accepts a shebang, // comments and JSON', () => {
  assert.equal(
    detectSyntax('#!/usr/bin/env strata\n# syntax=docker/dockerfile:1.7\nFROM a\n')?.value,
    'docker/dockerfile:1.7',
  );
  assert.equal(detectSyntax('FROM a\n# syntax=x\n'), undefined);
});

const keywords = [
  'FROM',
  'RUN',
  'CMD',
  'COPY',
  'ADD',
  'ENV',
  'LABEL',
  'ARG',
  'ONBUILD',
  'HEALTHCHECK',
  'SHELL',
  'WORKDIR',
  'USER',
  'EXPOSE',
  'VOLUME',
  'ENTRYPOINT',
  'STOPSIGNAL',
  'MAINTAINER',
  'BOGUS',
];
const fragments = [
  ' ',
  '\t',
  '\\',
  '`',
  '\n',
  '\r\n',
  '"',
  "'",
  '[',
  ']',
  ',',
  '=',
  '$',
  '{',
  '}',
  ':-',
  '<<',
  '<<-',
  'EOF',
  '--',
  '--from=',
  '--mount=type=cache',
  '#',
  '# escape=`',
  '# syntax=',
  'AS',
  'x',
  'a b',
  '\u00a0',
  '♥',
  '\0',
];

const dockerfileLike = fc
  .array(fc.tuple(fc.constantFrom(...keywords), fc.array(fc.constantFrom(...fragments), { maxLength: 12 })), {
    maxLength: 12,
  })
  .map((lines) => lines.map(([keyword, parts]) => `${keyword} ${parts.join('')}`).join('\n'));

/** Either a result or a DockerfileError with a real position: nothing else may escape. */
function assertCleanOutcome(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof DockerfileError, `unexpected ${err instanceof Error ? err.stack : String(err)}`);
    assert.ok(err.line >= 1 && err.column >= 1, `bad position ${err.line}:${err.column}`);
    assert.ok(err.message.startsWith(`${err.file}:${err.line}:${err.column}: `));
  }
}

test('property: random bytes never crash the parser or the instruction layer', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      assertCleanOutcome(() => parseDockerfile(bytes));
      assertCleanOutcome(() => loadDockerfile(bytes));
    }),
    { numRuns: 2000 },
  );
});

test('property: random Dockerfile-like text never crashes and positions stay inside the file', () => {
  fc.assert(
    fc.property(dockerfileLike, (text) => {
      const lineCount = text.split('\n').length;
      assertCleanOutcome(() => {
        for (const node of parseDockerfile(text).instructions) {
          assert.ok(node.range.start.line >= 1 && node.range.end.line <= lineCount);
          assert.ok(node.range.start.line <= node.range.end.line);
        }
      });
      assertCleanOutcome(() => loadDockerfile(text));
    }),
    { numRuns: 3000 },
  );
});
