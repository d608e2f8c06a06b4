import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';

import { isStrataError } from '../errors.js';
import {
  PatternMatcher,
  cleanPath,
  readIgnoreFile,
  readIgnorePatterns,
  type MatchInfo,
} from './dockerignore.js';

function excluded(patterns: string[], path: string): boolean {
  return new PatternMatcher(patterns).matches(path);
}

/** The answer a walker gets, feeding each parent's results into the child. */
function excludedWalkingDown(matcher: PatternMatcher, path: string): boolean {
  const segments = path.split('/');
  let info: MatchInfo | undefined;
  let matched = false;
  for (let count = 1; count <= segments.length; count++) {
    ({ matched, info } = matcher.matchesWithParent(segments.slice(0, count).join('/'), info));
  }
  return matched;
}

function assertStrataError(fn: () => unknown, code = 'INVALID_ARGUMENT'): void {
  assert.throws(fn, (err: unknown) => isStrataError(err) && err.code === code);
}

describe('cleanPath (Go filepath.Clean)', () => {
  test('collapses slashes, drops dots, resolves dot-dots lexically', () => {
    assert.equal(cleanPath(''), '.');
    assert.equal(cleanPath('a//b/./c/'), 'a/b/c');
    assert.equal(cleanPath('a/../../b'), '../b');
    assert.equal(cleanPath('/../a'), '/a');
    assert.equal(cleanPath('/'), '/');
    assert.equal(cleanPath('./'), '.');
  });
});

describe('readIgnorePatterns', () => {
  test('drops the BOM, comments in the first column only, blank lines; trims; cleans', () => {
    const text =
      '\ufeff# comment\r\nnode_modules/\r\n  # not a comment\n\n  /dist//x/../y  \n!  keep.txt\n!\n';
    assert.deepEqual(readIgnorePatterns(text), [
      'node_modules',
      '# not a comment',
      'dist/y',
      '!keep.txt',
      '!',
    ]);
  });

  test('accepts a Buffer and a last line without newline', () => {
    assert.deepEqual(readIgnorePatterns(Buffer.from('a\nb')), ['a', 'b']);
  });

  test('a BOM is only dropped at the very start', () => {
    assert.deepEqual(readIgnorePatterns('a\n\ufeffb'), ['a', '\ufeffb']);
  });

  test('trims like Go: U+0085 is space, U+FEFF is not', () => {
    assert.deepEqual(readIgnorePatterns('\u0085a\u00a0\n'), ['a']);
  });

  test('one leading slash is removed after cleaning; a bare slash stays', () => {
    assert.deepEqual(readIgnorePatterns('//a/b\n/\n!/c'), ['a/b', '/', '!c']);
  });
});

describe('readIgnoreFile', () => {
  test('<Dockerfile>.dockerignore beside the Dockerfile wins over the context one', async () => {
    const context = await mkdtemp(join(tmpdir(), 'strata-ignore-'));
    try {
      assert.deepEqual(await readIgnoreFile(context), []);
      await writeFile(join(context, '.dockerignore'), 'from-context\n');
      assert.deepEqual(await readIgnoreFile(context), ['from-context']);
      await writeFile(join(context, 'Dockerfile.dockerignore'), 'from-default-dockerfile\n');
      assert.deepEqual(await readIgnoreFile(context), ['from-default-dockerfile']);
      await mkdir(join(context, 'build'));
      const dockerfile = join(context, 'build', 'app.Dockerfile');
      assert.deepEqual(await readIgnoreFile(context, dockerfile), ['from-context']);
      await writeFile(`${dockerfile}.dockerignore`, 'from-app\n');
      assert.deepEqual(await readIgnoreFile(context, dockerfile), ['from-app']);
    } finally {
      await rm(context, { recursive: true, force: true });
    }
  });
});

describe('PatternMatcher construction', () => {
  test('drops empty patterns and trims', () => {
    const matcher = new PatternMatcher(['docs', '  ', '', ' !docs/README.md ']);
    assert.equal(matcher.patterns.length, 2);
    assert.equal(matcher.hasExclusions(), true);
    assert.equal(matcher.patterns[1]?.toString(), '!docs/README.md');
  });

  test('rejects a bare ! and malformed globs with a StrataError', () => {
    for (const bad of ['!', '[', '[^', 'a[', '[]a]', '[-]', '[x-]', '[a-b-c]', 'a\\', '!['])
      assertStrataError(() => new PatternMatcher([bad]));
  });

  test('a reversed class range passes construction and fails every match', () => {
    const matcher = new PatternMatcher(['[Local-Only]/']);
    assertStrataError(() => matcher.matches('x'));
    assertStrataError(() => matcher.matches('x'));
  });
});

describe('PatternMatcher matching', () => {
  test('anchored at the root; a directory pattern covers its contents', () => {
    assert.equal(excluded(['node_modules/'], 'node_modules/left-pad/index.js'), true);
    assert.equal(excluded(['node_modules/'], 'packages/a/node_modules/x'), false);
    assert.equal(excluded(['**/node_modules'], 'packages/a/node_modules/x'), true);
  });

  test('ordered, last state change wins', () => {
    assert.equal(excluded(['*.md', '!README.md'], 'README.md'), false);
    assert.equal(excluded(['!README.md', '*.md'], 'README.md'), true);
    assert.equal(excluded(['docs', '!docs/README.md'], 'docs/README.md'), false);
    assert.equal(excluded(['docs', '!docs/README.md'], 'docs/other.md'), true);
    assert.equal(excluded(['docs', '!docs/README.md', 'docs/README.md'], 'docs/README.md'), true);
  });

  test('globs: * and ? stop at /, classes, escapes, literal regexp characters', () => {
    assert.equal(excluded(['*.log'], 'a.log'), true);
    assert.equal(excluded(['*.log'], 'dir/a.log'), false);
    assert.equal(excluded(['**/*.log'], 'dir/sub/a.log'), true);
    assert.equal(excluded(['a?c'], 'a/c'), false);
    assert.equal(excluded(['[a-c]x'], 'bx'), true);
    assert.equal(excluded(['[^a-c]x'], 'dx'), true);
    assert.equal(excluded(['a\\*b'], 'a*b'), true);
    assert.equal(excluded(['a\\*b'], 'axb'), false);
    assert.equal(excluded(['a+(b)|$'], 'a+(b)|$'), true);
    assert.equal(excluded(['file.txt'], 'fileXtxt'), false);
  });

  test('** forms', () => {
    assert.equal(excluded(['dir/**'], 'dir'), false);
    assert.equal(excluded(['dir/**'], 'dir/a/b'), true);
    assert.equal(excluded(['**file'], 'dir/dir/file'), true);
    assert.equal(excluded(['**file'], 'dir/myfile'), true, 'a leading ** then text is "ends with"');
    assert.equal(excluded(['**/file'], 'dir/myfile'), false);
    assert.equal(excluded(['**/file'], 'file'), true);
    assert.equal(excluded(['a**/*.txt'], 'a/b/c/d.txt'), true);
    assert.equal(excluded(['**'], 'anything/at/all'), true);
  });

  test('classification mirrors the reference', () => {
    const kinds = ['abc', 'abc/**', '**/abc', 'a*c', '[Local-Only]'].map(
      (pattern) => new PatternMatcher([pattern]).patterns[0]?.kind,
    );
    assert.deepEqual(kinds, ['exact', 'prefix', 'suffix', 'regexp', 'invalid']);
  });

  test('the walking-down form reproduces the reference quirk with a skipped ! pattern', () => {
    // Upstream's MatchesUsingParentResults records no result for a pattern it skipped at the
    // parent, so `!a` is then tried against `a/q` alone; the path-only form checks `a` too.
    const matcher = new PatternMatcher(['a/q', '!a']);
    assert.equal(matcher.matches('a/q'), false);
    assert.equal(excludedWalkingDown(matcher, 'a/q'), true);
  });

  test('matching is linear, even for many ** segments', () => {
    const matcher = new PatternMatcher([`${'**/'.repeat(30)}*.txt`, `${'*a'.repeat(30)}b`]);
    const started = performance.now();
    assert.equal(matcher.matches(`${'d/'.repeat(200)}x.txt`), true);
    assert.equal(matcher.matches('a'.repeat(500)), false);
    assert.ok(performance.now() - started < 1000, 'took too long');
  });
});

describe('canSkipDirectory', () => {
  test('without ! patterns every excluded directory is skipped', () => {
    const matcher = new PatternMatcher(['node_modules', '**/*.log']);
    assert.equal(matcher.canSkipDirectory('node_modules'), true);
    assert.equal(matcher.canSkipDirectory('src'), false, 'not excluded');
  });

  test('literal ! patterns only force entering the directories above them', () => {
    const matcher = new PatternMatcher(['dist', 'node_modules', '!dist/keep.txt', '!node_modules/**']);
    assert.equal(matcher.canSkipDirectory('dist'), false);
    assert.equal(matcher.canSkipMatchedDirectory('node_modules'), false);
    assert.equal(new PatternMatcher(['dist', 'cache', '!dist/keep.txt']).canSkipDirectory('cache'), true);
  });

  test('a wildcard ! pattern forces entering every excluded directory', () => {
    const matcher = new PatternMatcher(['node_modules', '!*/package.json']);
    assert.equal(matcher.canSkipDirectory('node_modules'), false);
  });

  test('include patterns: literal ones prune directories outside them', () => {
    const includes = new PatternMatcher(['src/app', '!src/app/test']);
    assert.equal(includes.canSkipUnmatchedDirectory('docs'), true);
    assert.equal(includes.canSkipUnmatchedDirectory('src'), false);
    assert.equal(new PatternMatcher(['*/app']).canSkipUnmatchedDirectory('docs'), false);
  });
});

describe('properties', () => {
  const globChar = fc.constantFrom(
    'a',
    'b',
    '/',
    '*',
    '?',
    '[',
    ']',
    '^',
    '-',
    '\\',
    '!',
    '.',
    ' ',
    'é',
    '😀',
  );
  const pattern = fc.array(globChar, { maxLength: 12 }).map((chars) => chars.join(''));
  const segment = fc.constantFrom('a', 'b', 'ab', '.a', 'a-b', 'é', '😀', '[', '*');
  const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((segments) => segments.join('/'));

  test('random patterns and paths give a boolean or a StrataError, never a crash', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 5 }), path, (patterns, candidate) => {
        try {
          const matcher = new PatternMatcher(patterns);
          assert.equal(typeof matcher.matches(candidate), 'boolean');
          assert.equal(typeof excludedWalkingDown(matcher, candidate), 'boolean');
          assert.equal(typeof matcher.canSkipDirectory(candidate), 'boolean');
        } catch (err) {
          if (!isStrataError(err)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('without ! patterns, the path-only and walking-down answers agree', () => {
    const positive = pattern.filter((text) => !text.trim().startsWith('!'));
    fc.assert(
      fc.property(fc.array(positive, { maxLength: 4 }), path, (patterns, candidate) => {
        let matcher: PatternMatcher;
        try {
          matcher = new PatternMatcher(patterns);
          matcher.matches(candidate);
        } catch (err) {
          if (isStrataError(err)) return;
          throw err;
        }
        assert.equal(matcher.matches(candidate), excludedWalkingDown(matcher, candidate));
      }),
      { numRuns: 1000 },
    );
  });

  test('a literal pattern excludes exactly itself and what is below it', () => {
    fc.assert(
      fc.property(path, path, (literal, candidate) => {
        const safe = literal.replace(/[*?[\]\\]/g, 'x');
        const matcher = new PatternMatcher([safe]);
        assert.equal(matcher.matches(safe), true);
        assert.equal(matcher.matches(`${safe}/${candidate}`), true);
        const cleanCandidate = candidate.replace(/[*?[\]\\]/g, 'x');
        const expected = cleanCandidate === safe || cleanCandidate.startsWith(`${safe}/`);
        assert.equal(matcher.matches(cleanCandidate), expected);
      }),
    );
  });
});
