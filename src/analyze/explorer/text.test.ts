/* eslint-disable no-control-regex -- the output under test is made of terminal escape sequences */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  displayWidth,
  fit,
  formatMode,
  formatSize,
  oneLine,
  printable,
  spansToLine,
  stripAnsi,
  truncate,
  wrap,
} from './text.js';

describe('explorer text', () => {
  test('wide characters take two cells and combining marks none', () => {
    assert.equal(displayWidth('abc'), 3);
    assert.equal(displayWidth('日本'), 4);
    assert.equal(displayWidth('e\u0301'), 1);
    assert.equal(displayWidth('📦'), 2);
  });

  test('truncation never exceeds the width, even across a wide character', () => {
    assert.equal(truncate('hello world', 8), 'hello w…');
    assert.equal(truncate('short', 8), 'short');
    assert.equal(truncate('日本語のファイル', 5), '日本…');
    assert.equal(displayWidth(truncate('日本語のファイル', 6)), 5);
    assert.equal(truncate('anything', 0), '');
    assert.equal(fit('ab', 4), 'ab  ');
    assert.equal(fit('ab', 4, true), '  ab');
    assert.equal(fit('abcdef', 4), 'abc…');
  });

  test('control characters in names are shown escaped, never sent to the terminal', () => {
    assert.equal(printable('evil\x1b[2Jname'), 'evil\\x1b[2Jname');
    assert.equal(printable('a\nb\x7f\x9b'), 'a\\x0ab\\x7f\\x9b');
    assert.equal(oneLine('RUN <<EOF\n  apt-get update\nEOF'), 'RUN <<EOF apt-get update EOF');
  });

  test('sizes read like dive', () => {
    assert.equal(formatSize(0), '0 B');
    assert.equal(formatSize(999), '999 B');
    assert.equal(formatSize(1000), '1.0 kB');
    assert.equal(formatSize(4_700_000), '4.7 MB');
    assert.equal(formatSize(9_960_000), '10 MB');
    assert.equal(formatSize(75_400_000), '75 MB');
    assert.equal(formatSize(2_500_000_000), '2.5 GB');
  });

  test('modes read like ls -l', () => {
    assert.equal(formatMode('directory', 0o755), 'drwxr-xr-x');
    assert.equal(formatMode('file', 0o644), '-rw-r--r--');
    assert.equal(formatMode('symlink', 0o777), 'lrwxrwxrwx');
    assert.equal(formatMode('directory', 0o1777), 'drwxrwxrwt');
    assert.equal(formatMode('file', 0o4755), '-rwsr-xr-x');
    assert.equal(formatMode('file', 0o2644), '-rw-r-Sr--');
    assert.equal(formatMode('other', 0o020666), 'crw-rw-rw-');
    assert.equal(formatMode('other', 0o010644), 'prw-r--r--');
    assert.equal(formatMode('other', 0o644), '?rw-r--r--');
    assert.equal(formatMode('char-device', 0o666), 'crw-rw-rw-');
    assert.equal(formatMode('block-device', 0o660), 'brw-rw----');
    assert.equal(formatMode('fifo', 0o644), 'prw-r--r--');
    assert.equal(formatMode('hardlink', 0o755), '-rwxr-xr-x');
  });

  test('wrap breaks at spaces, cuts long words and marks what is left over', () => {
    assert.deepEqual(wrap('RUN apt-get update && apt-get install', 16, 3), [
      'RUN apt-get',
      'update &&',
      'apt-get install',
    ]);
    assert.deepEqual(wrap('abcdefghijklmnop', 5, 2), ['abcde', 'fghi…']);
    assert.deepEqual(wrap('one two three four five', 9, 2), ['one two', 'three fo…']);
    assert.deepEqual(wrap('', 9, 2), []);
  });

  test('a styled line is exactly as wide as asked, and resets its styles', () => {
    const line = spansToLine([{ text: 'green', sgr: '32' }, { text: ' and plain text that is long' }], 12);
    assert.equal(stripAnsi(line), 'green and p…');
    assert.equal(displayWidth(stripAnsi(line)), 12);
    assert.match(line, /^\x1b\[32mgreen\x1b\[0m/);
    assert.equal(stripAnsi(spansToLine([{ text: 'ab' }], 5, '7')), 'ab   ');
    assert.equal(stripAnsi(spansToLine([{ text: '日本語' }], 4)), '日… ');
  });
});
