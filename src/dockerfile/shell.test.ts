import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { isStrataError } from '../errors.js';
import { ShellExpansionError, ShellLexer, envFromList, goQuote, type ShellEnv } from './shell.js';

const lexer = new ShellLexer();

function env(entries: Record<string, string>): ShellEnv {
  return new Map(Object.entries(entries));
}

function expand(word: string, vars: Record<string, string> = {}, lex = lexer): string {
  return lex.processWord(word, env(vars));
}

function reasonOf(word: string, vars: Record<string, string> = {}, lex = lexer): string {
  try {
    const result = lex.processWord(word, env(vars));
    assert.fail(`expected ${JSON.stringify(word)} to fail, got ${JSON.stringify(result)}`);
  } catch (err) {
    assert.ok(err instanceof ShellExpansionError, String(err));
    return err.reason;
  }
}

describe('basic expansion', () => {
  test('names, braces and literal dollars', () => {
    assert.equal(expand('$FOO/${FOO}x', { FOO: 'bar' }), 'bar/barx');
    assert.equal(expand('$'), '$');
    assert.equal(expand('a$'), 'a$');
    assert.equal(expand("$'x'"), '$x');
    assert.equal(expand('$a-b', { a: 'A' }), 'A-b');
    assert.equal(expand('$ÄBC.', { ÄBC: 'u' }), 'u.', 'names are Unicode letters and digits');
    assert.equal(expand('$@@@'), '@@');
    assert.equal(expand('$12x', { '12': 'twelve' }), 'twelvex', 'all leading digits form the name');
  });

  test('names are case-sensitive (BuildKit on Linux)', () => {
    const result = lexer.processWordWithMatches('$FOO', env({ foo: 'x' }));
    assert.equal(result.result, '');
    assert.deepEqual([...result.unmatched], ['FOO']);
  });

  test('a function can be the environment', () => {
    const lookup = (name: string): string | undefined => (name === 'X' ? '1' : undefined);
    assert.equal(lexer.processWord('$X${Y:-2}', lookup), '12');
  });

  test('a byte-order mark is skipped only at the very start (Go text/scanner)', () => {
    assert.equal(expand('\uFEFFa\uFEFF'), 'a\uFEFF');
  });

  test('modifiers', () => {
    const vars = { SET: 'v', EMPTY: '' };
    assert.equal(expand('${SET:-d}|${EMPTY:-d}|${UNSET:-d}'), 'd|d|d');
    assert.equal(expand('${SET:-d}|${EMPTY:-d}|${UNSET:-d}', vars), 'v|d|d');
    assert.equal(expand('${SET-d}|${EMPTY-d}|${UNSET-d}', vars), 'v||d');
    assert.equal(expand('${SET:+a}|${EMPTY:+a}|${UNSET:+a}', vars), 'a||');
    assert.equal(expand('${SET+a}|${EMPTY+a}|${UNSET+a}', vars), 'a|a|');
    assert.equal(expand('${SET:?m}${EMPTY?m}', vars), 'v');
    assert.equal(expand('${UNSET:-"a  b"}'), 'a  b', 'quotes are processed in the word');
    assert.equal(expand("${UNSET:-'}'}"), '}');
    assert.equal(expand('${UNSET:-\\}}'), '}');
  });

  test('the word is expanded even when it is not used, so its names are recorded', () => {
    const result = lexer.processWordWithMatches('${A:-$B}', env({ A: '1' }));
    assert.equal(result.result, '1');
    assert.deepEqual([...result.matched], ['A']);
    assert.deepEqual([...result.unmatched], ['B']);
  });
});

describe('errors', () => {
  test('messages are BuildKit’s', () => {
    assert.equal(reasonOf('${}'), 'syntax error: bad substitution');
    assert.equal(reasonOf('${:-x}'), 'syntax error: bad substitution');
    assert.equal(reasonOf('${'), "syntax error: missing '}'");
    assert.equal(reasonOf('${a:-b'), "syntax error: missing '}'");
    assert.equal(reasonOf('${a'), 'unsupported modifier (\uFFFD) in substitution');
    assert.equal(reasonOf('${a:=b}'), 'unsupported modifier (:=) in substitution');
    assert.equal(reasonOf('${a=b}'), 'unsupported modifier (=) in substitution');
    assert.equal(reasonOf('${a:#b}'), 'unsupported modifier (:#) in substitution');
    assert.equal(reasonOf('${1x}'), 'unsupported modifier (x) in substitution');
    assert.equal(reasonOf('${a/b'), "syntax error: missing '/' in ${}");
    assert.equal(reasonOf('${a/b/c'), "syntax error: missing '}'");
    assert.equal(reasonOf('${X?}'), 'X: is not allowed to be unset');
    assert.equal(reasonOf('${X:?}', { X: '' }), 'X: is not allowed to be empty');
    assert.equal(reasonOf('${X:?need $Y}', { Y: 'it' }), 'X: need it');
    assert.equal(reasonOf("a'b"), 'unexpected end of statement while looking for matching single-quote');
    assert.equal(reasonOf('a"b'), 'unexpected end of statement while looking for matching double-quote');
    assert.equal(
      reasonOf('${F#\\x}', { F: 'a' }),
      "invalid pattern (\\x) in substitution: invalid escape '\\x'",
    );
    assert.equal(
      reasonOf('${F%$P}', { F: 'a', P: 'ab\\' }),
      "invalid pattern (\\ba) in substitution: invalid escape '\\b'",
      'suffix patterns are reported reversed, as BuildKit compiles them',
    );
  });

  test('the error is a user-facing StrataError with the word quoted as Go does', () => {
    try {
      lexer.processWord('x\t${', env({}));
      assert.fail('no error');
    } catch (err) {
      assert.ok(err instanceof ShellExpansionError);
      assert.ok(isStrataError(err, 'INVALID_ARGUMENT'));
      assert.equal(err.message, `failed to process "x\\t\${": syntax error: missing '}'`);
      assert.equal(err.word, 'x\t${');
    }
    assert.equal(goQuote('a"\\\u0001\u00a0é😀'), '"a\\"\\\\\\x01\\u00a0é😀"');
  });

  test('deep nesting fails cleanly instead of overflowing the stack', () => {
    const deep = '${a:-'.repeat(5000) + '}'.repeat(5000);
    assert.match(reasonOf(deep), /nested deeper/);
    const ok = '${a:-'.repeat(200) + 'x' + '}'.repeat(200);
    assert.equal(expand(ok), 'x');
  });
});

describe('quotes and escapes', () => {
  test('default escape token', () => {
    assert.equal(expand('a\\ b\\$X'), 'a b$X');
    assert.equal(expand('"a\\b\\"\\$\\\\"'), 'a\\b"$\\');
    assert.equal(expand("'a\\b$X'"), 'a\\b$X');
    assert.equal(expand('abc\\'), 'abc');
  });

  test('backtick escape token (Windows-style Dockerfiles)', () => {
    const tick = new ShellLexer('`');
    assert.equal(tick.escapeToken, '`');
    assert.equal(expand('C:\\dir\\$X', { X: 'x' }, tick), 'C:\\dir\\x', 'backslash is ordinary');
    assert.equal(expand('a`$X`b', {}, tick), 'a$Xb');
    assert.equal(expand('"x`"y``z`q"', {}, tick), 'x"y`z`q');
    assert.throws(
      () => new ShellLexer('ab'),
      (err) => isStrataError(err, 'INVALID_ARGUMENT'),
    );
  });

  test('rawQuotes and rawEscapes keep what they say', () => {
    const raw = new ShellLexer('\\', { rawQuotes: true, rawEscapes: true });
    assert.equal(expand(`'a'"b\\"$X"\\ c`, { X: 'x' }, raw), `'a'"b\\"x"\\ c`);
    assert.deepEqual(raw.processWords('a\\ b c', env({})), ['a\\ b', 'c']);
    // Inside ${v:-w} BuildKit forces escapes off, whatever the lexer option says.
    assert.equal(expand('${U:-a\\b}', {}, raw), 'ab');
  });

  test('skipUnsetEnv leaves unset references as written', () => {
    const keep = new ShellLexer('\\', { skipUnsetEnv: true });
    assert.equal(
      expand('$X ${Y} ${Z:-d} ${W#p} ${V/a/b} ${U//a/b} ${Q:=v} $S', { S: 's' }, keep),
      '$X ${Y} ${Z:-d} ${W#p} ${V/a/b} ${U/a/b} ${Q:=v} s',
    );
  });

  test('skipProcessQuotes treats quotes as text', () => {
    const noQuotes = new ShellLexer('\\', { skipProcessQuotes: true });
    assert.deepEqual(noQuotes.processWords(`'a b' "c"`, env({})), ["'a", "b'", '"c"']);
  });
});

describe('word splitting', () => {
  test('unquoted values split, quoted ones do not, empty words vanish', () => {
    const vars = { S: ' a  b ', N: 'x\u00a0y', B: 'x\uFEFFy' };
    assert.deepEqual(lexer.processWords('1$S"2$S"', env(vars)), ['1', 'a', 'b', '2 a  b ']);
    assert.deepEqual(lexer.processWords('"" \'\' a', env(vars)), ['a']);
    assert.deepEqual(lexer.processWords('$N $B', env(vars)), ['x', 'y', 'x\uFEFFy'], 'Go unicode.IsSpace');
    assert.deepEqual(lexer.processWords('a ${U:-"b c"} d', env({})), ['a', 'b', 'c', 'd']);
  });

  test('text before a ${v:-w} stays in its word (BuildKit shares a buffer and drops it)', () => {
    assert.deepEqual(lexer.processWords('pre${U:-fix} x', env({})), ['prefix', 'x']);
  });
});

describe('patterns', () => {
  const F = { F: 'axbxc' };

  test('prefix and suffix trimming, shortest and longest', () => {
    assert.equal(expand('${F#*x}|${F##*x}|${F%x*}|${F%%x*}', F), 'bxc|c|axb|a');
    assert.equal(expand('${F#a}|${F#b}|${F%c}|${F%b}', F), 'xbxc|axbxc|axbx|axbxc');
    assert.equal(expand('${F#?x?}|${F%?x?}', F), 'xc|ax');
    assert.equal(expand('${F#$P}', { F: '#abc', P: '##a' }), 'bc', 'a pattern value starting with # counts');
  });

  test('every character but * ? \\ is literal; no bracket expressions', () => {
    assert.equal(expand('${F#[ab]}', { F: '[ab]c' }), 'c');
    assert.equal(expand('${F#a.c}', { F: 'abc' }), 'abc');
    assert.equal(expand('${F#\\*\\?\\\\}', { F: '*?\\z' }), 'z');
  });

  test('wildcards match code points but never a newline (Go regexp `.`)', () => {
    assert.equal(expand('${F#?}', { F: '😀x' }), 'x');
    assert.equal(expand('${F//?/-}', { F: 'héllo' }), '-----');
    assert.equal(expand('${F#*b}', { F: 'a\nb' }), 'a\nb');
    assert.equal(expand('${F#?}', { F: '\nab' }), '\nab');
    assert.equal(expand('${F//x*/-}', { F: 'x1\nx2' }), '-\n-');
  });

  test('replacement: first and all, leftmost then greedy', () => {
    assert.equal(expand('${F/x*/Y}', F), 'aY');
    assert.equal(expand('${F/x/Y}|${F//x/Y}', F), 'aYbxc|aYbYc');
    assert.equal(expand('${F/q/Y}', F), 'axbxc');
    assert.equal(expand('${F//a\\/b/-}', { F: 'a/ba/b' }), '--');
  });

  test('replace-all follows Go ReplaceAllString for empty matches', () => {
    assert.equal(expand('${F//$E/-}', { F: 'ab', E: '' }), '-a-b-');
    assert.equal(expand('${F//*/-}', { F: 'ab' }), '-');
    assert.equal(expand('${F//*/-}', { F: 'a\nb' }), '-\n-');
  });

  test('replace-all treats the replacement as a Go template, replace-first does not', () => {
    const vars = { F: 'axbx', R: '<$0|${0}|$$|$1|$x|$>' };
    assert.equal(expand('${F//x/$R}', vars), 'a<x|x|$|||$>b<x|x|$|||$>');
    assert.equal(expand('${F/x/$R}', vars), 'a<$0|${0}|$$|$1|$x|$>bx');
  });

  test('pathological patterns on long values finish quickly (linear-time matching)', () => {
    const long = 'a'.repeat(10_000);
    const star = '*a'.repeat(30) + '*b';
    const started = performance.now();
    assert.equal(expand('${F#' + star + '}', { F: long }), long);
    assert.equal(expand('${F##' + star + '}', { F: long }), long);
    assert.equal(expand('${F%' + star + '}', { F: long }), long);
    assert.equal(expand('${F%%' + '*'.repeat(5000) + 'b}', { F: long }), long);
    assert.equal(expand('${F//' + star + '/x}', { F: long }), long);
    assert.equal(expand('${F//a/b}', { F: long }), 'b'.repeat(10_000));
    assert.equal(expand('${F//?a/}', { F: long + 'b' }), 'b');
    assert.equal(expand('${F#$P}', { F: long, P: 'a?'.repeat(3000) + 'b' }), long);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  });
});

describe('envFromList', () => {
  test('KEY=VALUE lists as BuildKit reads them', () => {
    assert.deepEqual(
      [...envFromList(['a', 'b=', 'c=1=2', 'c=3'])],
      [
        ['a', ''],
        ['b', ''],
        ['c', '3'],
      ],
    );
  });
});

describe('properties', () => {
  const alphabet = fc.constantFrom(
    '$',
    '{',
    '}',
    ':',
    '-',
    '+',
    '?',
    '=',
    '#',
    '%',
    '/',
    '\\',
    '`',
    '"',
    "'",
    '*',
    ' ',
    '\n',
    'a',
    'B',
    '1',
    '@',
    '😀',
    'é',
    '\uFEFF',
  );
  const words = fc.oneof(
    fc.string({ unit: alphabet, maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
  );
  const options = fc.record({
    rawQuotes: fc.boolean(),
    rawEscapes: fc.boolean(),
    skipUnsetEnv: fc.boolean(),
    skipProcessQuotes: fc.boolean(),
  });
  const vars = env({ a: 'x y', B: '*a\\', '1': '', aB: '$0$a' });

  test('arbitrary input never throws anything but ShellExpansionError', () => {
    fc.assert(
      fc.property(words, options, fc.constantFrom('\\', '`'), (word, opts, escape) => {
        const lex = new ShellLexer(escape, opts);
        for (const run of [
          () => lex.processWordWithMatches(word, vars),
          () => lex.processWords(word, vars),
        ]) {
          try {
            run();
          } catch (err) {
            if (!(err instanceof ShellExpansionError)) throw err;
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('text without special characters is returned unchanged', () => {
    const plain = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '.', '/', ':', '😀', '}', '-') });
    fc.assert(fc.property(plain, (word) => lexer.processWord(word, vars) === word));
  });

  test('single-quoting any text without a quote gives the text back', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const body = text.replaceAll("'", '').replace(/^\uFEFF/, '');
        return lexer.processWord(`'${body}'`, vars) === body;
      }),
    );
  });

  test('processWords joins back to processWord for values without whitespace', () => {
    const noSpace = fc.string({ unit: fc.constantFrom('a', '$a1', '${B}', '"x"', "'y'", '\\z') });
    fc.assert(
      fc.property(noSpace, (word) => {
        const single = lexer.processWord(word, env({ a1: 'v', B: 'w' }));
        const split = lexer.processWords(word, env({ a1: 'v', B: 'w' }));
        assert.deepEqual(split, single === '' ? [] : [single]);
      }),
    );
  });
});
