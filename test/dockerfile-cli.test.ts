import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { strata, strataOk, tempDir } from './helpers/cli.js';
import { corpusPath } from '../src/testing/corpus.js';

describe('strata dockerfile parse (real CLI)', () => {
  test('--dump prints BuildKit dump format byte for byte', async () => {
    const dir = join(corpusPath('buildkit-parser'), 'testfiles', 'docker');
    const { path, cleanup } = await tempDir('df');
    try {
      const result = await strataOk(path, ['dockerfile', 'parse', '--dump', join(dir, 'Dockerfile')]);
      assert.equal(result.stdout, `${readFileSync(join(dir, 'result'), 'utf8').trimEnd()}\n`);
    } finally {
      await cleanup();
    }
  });

  test('outline and --json show stages with typed, positioned instructions; - reads STDIN', async () => {
    const { path, cleanup } = await tempDir('df');
    try {
      const source = 'ARG V=1\nFROM busybox AS base\nRUN echo $V\nFROM base\nCOPY --from=base /a /b\n';
      const outline = await strataOk(path, ['dockerfile', 'parse', '-'], { input: source });
      assert.match(outline.stdout, /^1:1 +ARG /m);
      assert.match(outline.stdout, /^stage 0 \(base\):$/m);
      assert.match(outline.stdout, /^ {2}5:1 +COPY .*"from":"base"/m);
      const json = await strataOk(path, ['dockerfile', 'parse', '--json', '-'], { input: source });
      const model = JSON.parse(json.stdout) as {
        stages: Array<{
          name?: string;
          instructions: Array<{ kind: string; range: { start: { line: number } } }>;
        }>;
      };
      assert.equal(model.stages.length, 2);
      assert.equal(model.stages[0]?.name, 'base');
      assert.deepEqual(
        model.stages[1]?.instructions.map((i) => [i.kind, i.range.start.line]),
        [['COPY', 5]],
      );
    } finally {
      await cleanup();
    }
  });

  test('bad input: one line naming file:line:column, exit 1, no stack trace', async () => {
    const { path, cleanup } = await tempDir('df');
    try {
      const file = join(path, 'Dockerfile.bad');
      await writeFile(file, 'FROM busybox\n\n  COPY --chmown=x a b\n');
      const result = await strata(path, ['dockerfile', 'parse', file]);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr.trim(), `Error: ${file}:3:3: unknown flag: chmown (did you mean chown?)`);
      const missing = await strata(path, ['dockerfile', 'parse', join(path, 'nope')]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /nope: no such file/);
      assert.doesNotMatch(missing.stderr, /\n\s+at /);
    } finally {
      await cleanup();
    }
  });
});
