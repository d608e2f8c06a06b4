import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGoDuration } from './duration.js';

test('parseGoDuration reads Go durations in nanoseconds', () => {
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('300ms'), 300e6);
  assert.equal(parseGoDuration('1h30m'), 5400e9);
  assert.equal(parseGoDuration('1.5s'), 1.5e9);
  assert.equal(parseGoDuration('.5m'), 30e9);
  assert.equal(parseGoDuration('10us'), 10e3);
  assert.equal(parseGoDuration('10µs'), 10e3);
});

test('parseGoDuration refuses what Go refuses', () => {
  for (const text of ['', '5', '1d', '-1s', '1h ', ' 1h', 's', '1.s.', '1hh']) {
    assert.equal(parseGoDuration(text), undefined, text);
  }
});
