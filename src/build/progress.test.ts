import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { isStrataError } from '../errors.js';
import {
  ProgressRecorder,
  createProgress,
  formatBytes,
  formatRfc3339Nano,
  type ProgressEvent,
  type ProgressMode,
  type ProgressSink,
} from './progress.js';

/** 2024-01-02T03:04:05Z: a whole second, so offsets in ms read directly in the output. */
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

/** Collects everything written; `chunks` shows how many writes (frames) there were. */
class MemoryOutput extends Writable {
  readonly chunks: string[] = [];
  isTTY?: boolean;
  columns?: number;
  rows?: number;

  constructor(terminal: { isTTY?: boolean; columns?: number; rows?: number } = {}) {
    super();
    Object.assign(this, terminal);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = chunk.toString('utf8');
    if (text !== '') this.chunks.push(text);
    callback();
  }

  get text(): string {
    return this.chunks.join('');
  }
}

interface Harness {
  out: MemoryOutput;
  sink: ProgressSink;
  /** Moves the fake clock to T0 + `offset` ms. */
  at(offset: number): void;
  emit(...events: ProgressEvent[]): void;
}

function harness(
  mode: ProgressMode,
  terminal: { isTTY?: boolean; columns?: number; rows?: number } = {},
): Harness {
  const out = new MemoryOutput(terminal);
  let clock = T0;
  const sink = createProgress(mode, out, { now: () => clock });
  return {
    out,
    sink,
    at(offset) {
      clock = T0 + offset;
    },
    emit(...events) {
      for (const event of events) sink.emit(event);
    },
  };
}

function started(id: string, name: string, offset: number): ProgressEvent {
  return { type: 'vertex', id, name, started: T0 + offset };
}

function completed(id: string, name: string, from: number, to: number): ProgressEvent {
  return { type: 'vertex', id, name, started: T0 + from, completed: T0 + to };
}

function log(id: string, data: Uint8Array | string, offset: number): ProgressEvent {
  return { type: 'log', id, stream: 1, data, timestamp: T0 + offset };
}

const RUN_FAILED = 'process "/bin/sh -c false" did not complete successfully: exit code: 1';

/**
 * Replays terminal output the way a terminal would (cursor up, clear line, clear below, colours
 * ignored) and returns the visible lines: what the user is left looking at.
 */
function screen(output: string): string[] {
  const rows: string[] = [];
  let row = 0;
  let column = 0;
  // Escape sequences are exactly what this has to match.
  // eslint-disable-next-line no-control-regex
  for (const match of output.matchAll(/\u001b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\u001b\r\n]+/g)) {
    const token = match[0];
    const command = match[2];
    if (token === '\r') {
      column = 0;
    } else if (token === '\n') {
      row++;
      column = 0;
    } else if (command !== undefined) {
      const count = Number(match[1] === '' ? '1' : match[1]);
      if (command === 'A') row = Math.max(0, row - count);
      else if (command === 'K') rows[row] = '';
      else if (command === 'J') {
        rows.length = Math.min(rows.length, row + 1);
        rows[row] = (rows[row] ?? '').slice(0, column);
      } else if (command !== 'm') assert.fail(`unexpected escape ${JSON.stringify(token)}`);
    } else {
      const line = (rows[row] ?? '').padEnd(column);
      rows[row] = line.slice(0, column) + token + line.slice(column + token.length);
      column += token.length;
    }
  }
  const lines = Array.from(rows, (line) => line ?? '');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

describe('formatting helpers', () => {
  test('formatBytes follows BuildKit: whole bytes, then two decimals of powers of 1000', () => {
    assert.equal(formatBytes(0), '0B');
    assert.equal(formatBytes(123), '123B');
    assert.equal(formatBytes(999), '999B');
    assert.equal(formatBytes(1000), '1.00kB');
    assert.equal(formatBytes(4560), '4.56kB');
    assert.equal(formatBytes(42_170), '42.17kB');
    assert.equal(formatBytes(1_234_567), '1.23MB');
    assert.equal(formatBytes(5_000_000_000), '5.00GB');
  });

  test('formatRfc3339Nano trims trailing zeros like Go and keeps sub-millisecond digits', () => {
    assert.equal(formatRfc3339Nano(T0), '2024-01-02T03:04:05Z');
    assert.equal(formatRfc3339Nano(T0 + 30), '2024-01-02T03:04:05.03Z');
    assert.equal(formatRfc3339Nano(T0 + 1231), '2024-01-02T03:04:06.231Z');
    assert.equal(formatRfc3339Nano(T0 + 123.5), '2024-01-02T03:04:05.1235Z');
  });
});

describe('createProgress', () => {
  test('auto picks the live view on a terminal and plain output elsewhere', async () => {
    for (const isTTY of [true, false]) {
      const { out, sink, emit } = harness('auto', { isTTY, columns: 60 });
      emit(completed('v1', '[internal] load .dockerignore', 0, 10));
      await sink.close();
      if (isTTY) assert.ok(out.text.startsWith('\r\u001b[2K[+] Building'), JSON.stringify(out.text));
      else assert.equal(out.text, '#1 [internal] load .dockerignore\n#1 DONE 0.0s\n');
    }
  });

  test('an unknown mode is a user error', () => {
    assert.throws(
      () => createProgress('fancy' as ProgressMode, new MemoryOutput()),
      (err: unknown) => isStrataError(err, 'INVALID_ARGUMENT') && err.userFacing,
    );
  });

  test('quiet prints nothing, not even on failure or warnings', async () => {
    const { out, sink, emit } = harness('quiet');
    emit(
      started('v1', '[build 1/1] RUN false', 0),
      log('v1', 'boom\n', 5),
      { type: 'vertex', id: 'v1', name: '[build 1/1] RUN false', completed: T0 + 10, error: RUN_FAILED },
      { type: 'warning', message: 'something' },
    );
    await sink.close();
    assert.equal(out.text, '');
  });
});

describe('ProgressRecorder', () => {
  test('keeps events in order and answers vertex state and log text', async () => {
    const recorder = new ProgressRecorder();
    const utf8 = new TextEncoder().encode('café\n');
    recorder.emit(started('v1', '[build 1/1] RUN make', 0));
    recorder.emit(log('v1', utf8.slice(0, 4), 10));
    recorder.emit(log('v1', utf8.slice(4), 20));
    recorder.emit({ type: 'vertex', id: 'v1', name: '[build 1/1] RUN make', completed: T0 + 30 });
    await recorder.close();
    assert.equal(recorder.events.length, 4);
    assert.equal(recorder.closed, true);
    assert.deepEqual(recorder.vertex('v1'), {
      id: 'v1',
      name: '[build 1/1] RUN make',
      started: T0,
      completed: T0 + 30,
      cached: false,
      error: undefined,
    });
    assert.equal(recorder.vertex('nope'), undefined);
    assert.equal(recorder.logText('v1'), 'café\n');
  });
});

describe('plain', () => {
  test('a typical build: internal steps, a status, a cached step, logs and DONE times', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      started('v1', '[internal] load build definition from Dockerfile', 0),
      {
        type: 'status',
        id: 'v1',
        name: 'transferring dockerfile',
        current: 123,
        timestamp: T0 + 10,
        completed: T0 + 10,
      },
      completed('v1', '[internal] load build definition from Dockerfile', 0, 30),
      completed('v2', '[internal] load metadata for docker.io/library/alpine:3.19', 40, 1240),
      {
        type: 'vertex',
        id: 'v3',
        name: '[build 1/3] FROM docker.io/library/alpine:3.19',
        started: T0 + 1300,
        completed: T0 + 1300,
        cached: true,
      },
      started('v4', '[build 2/3] RUN echo hello && make', 1400),
      log('v4', 'hello\n', 1631),
      log('v4', 'partial', 1700),
      log('v4', ' line\nnext', 1800),
      completed('v4', '[build 2/3] RUN echo hello && make', 1400, 2000),
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '#1 [internal] load build definition from Dockerfile',
        '#1 transferring dockerfile: 123B done',
        '#1 DONE 0.0s',
        '',
        '#2 [internal] load metadata for docker.io/library/alpine:3.19',
        '#2 DONE 1.2s',
        '',
        '#3 [build 1/3] FROM docker.io/library/alpine:3.19',
        '#3 CACHED',
        '',
        '#4 [build 2/3] RUN echo hello && make',
        '#4 0.231 hello',
        '#4 0.300 partial line',
        '#4 0.400 next',
        '#4 DONE 0.6s',
        '',
      ].join('\n'),
    );
  });

  test('a failed step prints its error; a canceled one prints CANCELED', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      started('v1', '[build 3/3] RUN false', 0),
      log('v1', '+ false\n', 12),
      { type: 'vertex', id: 'v1', name: '[build 3/3] RUN false', completed: T0 + 50, error: RUN_FAILED },
      started('v2', '[other 1/1] RUN sleep 100', 20),
      {
        type: 'vertex',
        id: 'v2',
        name: '[other 1/1] RUN sleep 100',
        completed: T0 + 60,
        error: 'context canceled',
      },
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '#1 [build 3/3] RUN false',
        '#1 0.012 + false',
        `#1 ERROR: ${RUN_FAILED}`,
        '',
        '#2 [other 1/1] RUN sleep 100',
        '#2 CANCELED',
        '',
      ].join('\n'),
    );
  });

  test('interleaved vertices: "#N ..." when leaving an unfinished block, header again on return', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      started('a', '[a 1/1] RUN make a', 0),
      started('b', '[b 1/1] RUN make b', 10),
      log('a', 'from a\n', 100),
      completed('a', '[a 1/1] RUN make a', 0, 200),
      completed('b', '[b 1/1] RUN make b', 10, 310),
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '#1 [a 1/1] RUN make a',
        '#1 ...',
        '',
        '#2 [b 1/1] RUN make b',
        '#2 ...',
        '',
        '#1 [a 1/1] RUN make a',
        '#1 0.100 from a',
        '#1 DONE 0.2s',
        '',
        '#2 [b 1/1] RUN make b',
        '#2 DONE 0.3s',
        '',
      ].join('\n'),
    );
  });

  test('vertices are numbered by first start, not by announcement; pending ones print nothing', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      { type: 'vertex', id: 'late', name: '[build 2/2] COPY . .' },
      completed('early', '[build 1/2] WORKDIR /src', 0, 100),
      completed('late', '[build 2/2] COPY . .', 100, 150),
    );
    await sink.close();
    assert.equal(
      out.text,
      '#1 [build 1/2] WORKDIR /src\n#1 DONE 0.1s\n\n#2 [build 2/2] COPY . .\n#2 DONE 0.1s\n',
    );
  });

  test('unfinished statuses are throttled; the finished one always prints with its duration', async () => {
    const { out, sink, emit } = harness('plain');
    const layer = (offset: number, current: number, done = false): ProgressEvent => ({
      type: 'status',
      id: 'sha256:abc',
      vertex: 'v1',
      name: 'sha256:abc',
      current,
      total: 3_150_000,
      timestamp: T0 + offset,
      ...(done ? { completed: T0 + offset } : {}),
    });
    emit(
      started('v1', '[build 1/2] FROM docker.io/library/alpine:3.19', 0),
      layer(0, 0),
      layer(50, 1_000_000),
      layer(200, 2_100_000),
      layer(300, 3_150_000, true),
      layer(310, 3_150_000, true),
      completed('v1', '[build 1/2] FROM docker.io/library/alpine:3.19', 0, 400),
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '#1 [build 1/2] FROM docker.io/library/alpine:3.19',
        '#1 sha256:abc 0B / 3.15MB',
        '#1 sha256:abc 2.10MB / 3.15MB 0.2s',
        '#1 sha256:abc 3.15MB / 3.15MB 0.3s done',
        '#1 DONE 0.4s',
        '',
      ].join('\n'),
    );
  });

  test('item counts print as numbers; zero amounts print nothing', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      started('v1', '[build 2/2] COPY . .', 0),
      {
        type: 'status',
        id: 'v1',
        name: 'copying files',
        current: 3,
        total: 10,
        unit: 'items',
        timestamp: T0,
      },
      {
        type: 'status',
        id: 'v1',
        name: 'extracting sha256:abc',
        current: 0,
        timestamp: T0 + 100,
        completed: T0 + 700,
      },
    );
    await sink.close();
    assert.equal(
      out.text,
      '#1 [build 2/2] COPY . .\n#1 copying files: 3 / 10\n#1 extracting sha256:abc 0.6s done\n',
    );
  });

  test('log times switch to fewer decimals past 10s and 100s', async () => {
    const { out, sink, emit } = harness('plain');
    emit(started('v1', '[build 1/1] RUN slow', 0), log('v1', 'a\n', 12_500), log('v1', 'b\n', 123_400));
    await sink.close();
    assert.equal(out.text, '#1 [build 1/1] RUN slow\n#1 12.50 a\n#1 123.4 b\n');
  });

  test('UTF-8 split across chunks and a partial last line are reassembled; close flushes it', async () => {
    const { out, sink, emit } = harness('plain');
    const bytes = new TextEncoder().encode('naïve\ntail');
    emit(
      started('v1', '[build 1/1] RUN printf', 0),
      log('v1', bytes.slice(0, 3), 10),
      log('v1', bytes.slice(3), 20),
    );
    assert.equal(out.text, '#1 [build 1/1] RUN printf\n#1 0.010 naïve\n');
    await sink.close();
    assert.equal(out.text, '#1 [build 1/1] RUN printf\n#1 0.010 naïve\n#1 0.020 tail\n');
  });

  test('output arriving before its vertex starts waits for the header', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      log('v1', 'early\n', 50),
      started('v1', '[build 1/1] RUN make', 0),
      completed('v1', '[build 1/1] RUN make', 0, 90),
    );
    await sink.close();
    assert.equal(out.text, '#1 [build 1/1] RUN make\n#1 0.050 early\n#1 DONE 0.1s\n');
  });

  test('a repeated completion is not printed twice; events after close are ignored', async () => {
    const { out, sink, emit } = harness('plain');
    emit(completed('v1', '[build 1/1] RUN true', 0, 100), completed('v1', '[build 1/1] RUN true', 0, 100));
    await sink.close();
    emit(started('v2', '[build 2/2] RUN late', 200));
    await sink.close();
    assert.equal(out.text, '#1 [build 1/1] RUN true\n#1 DONE 0.1s\n');
  });

  test('warnings are summarised at the end, buildx style', async () => {
    const { out, sink, emit } = harness('plain');
    emit(
      {
        type: 'warning',
        message: 'JSONArgsRecommended: JSON arguments recommended for CMD',
        location: { file: 'Dockerfile', line: 5 },
      },
      completed('v1', '[build 1/1] RUN true', 0, 100),
      { type: 'warning', message: 'FromAsCasing: "as" and "FROM" keywords\' casing do not match' },
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '#1 [build 1/1] RUN true',
        '#1 DONE 0.1s',
        '',
        ' 2 warnings found:',
        ' - JSONArgsRecommended: JSON arguments recommended for CMD (line 5)',
        ' - FromAsCasing: "as" and "FROM" keywords\' casing do not match',
        '',
      ].join('\n'),
    );
  });
});

describe('rawjson', () => {
  test('one SolveStatus per event, whole vertex on each update, empty arrays left out', async () => {
    const { out, sink, emit } = harness('rawjson');
    emit(
      started('v1', '[build 1/2] RUN echo hi', 0),
      log('v1', 'hi\n', 1231),
      {
        type: 'status',
        id: 'sha256:abc',
        vertex: 'v1',
        name: 'sha256:abc',
        current: 1000,
        total: 3_150_000,
        timestamp: T0 + 100,
      },
      {
        type: 'status',
        id: 'v1',
        name: 'transferring context',
        current: 2,
        timestamp: T0 + 200,
        completed: T0 + 250,
      },
      { type: 'vertex', id: 'v1', name: '[build 1/2] RUN echo hi', completed: T0 + 1500, error: RUN_FAILED },
      { type: 'vertex', id: 'v2', name: '[build 2/2] COPY . .', started: T0, completed: T0, cached: true },
      { type: 'log', id: 'v1', stream: 2, data: new Uint8Array([0xff, 0x00]), timestamp: T0 + 30 },
    );
    await sink.close();
    assert.equal(
      out.text,
      [
        '{"vertexes":[{"digest":"v1","name":"[build 1/2] RUN echo hi","started":"2024-01-02T03:04:05Z"}]}',
        '{"logs":[{"vertex":"v1","stream":1,"data":"aGkK","timestamp":"2024-01-02T03:04:06.231Z"}]}',
        '{"statuses":[{"id":"sha256:abc","vertex":"v1","name":"sha256:abc","total":3150000,"current":1000,' +
          '"timestamp":"2024-01-02T03:04:05.1Z","started":"2024-01-02T03:04:05.1Z"}]}',
        '{"statuses":[{"id":"v1","vertex":"v1","name":"transferring context","current":2,' +
          '"timestamp":"2024-01-02T03:04:05.2Z","started":"2024-01-02T03:04:05.2Z","completed":"2024-01-02T03:04:05.25Z"}]}',
        '{"vertexes":[{"digest":"v1","name":"[build 1/2] RUN echo hi","started":"2024-01-02T03:04:05Z",' +
          `"completed":"2024-01-02T03:04:06.5Z","error":${JSON.stringify(RUN_FAILED)}}]}`,
        '{"vertexes":[{"digest":"v2","name":"[build 2/2] COPY . .","started":"2024-01-02T03:04:05Z",' +
          '"completed":"2024-01-02T03:04:05Z","cached":true}]}',
        '{"logs":[{"vertex":"v1","stream":2,"data":"/wA=","timestamp":"2024-01-02T03:04:05.03Z"}]}',
        '',
      ].join('\n'),
    );
  });

  test('a status keeps the start of its first update', async () => {
    const { out, sink, emit } = harness('rawjson');
    const update = (offset: number): ProgressEvent => ({
      type: 'status',
      id: 'v1',
      name: 'transferring context',
      current: offset,
      timestamp: T0 + offset,
    });
    emit(update(100), update(900));
    await sink.close();
    const second = JSON.parse(out.text.split('\n')[1] ?? '') as { statuses: Array<{ started: string }> };
    assert.equal(second.statuses[0]?.started, '2024-01-02T03:04:05.1Z');
  });

  test('warnings carry base64 text and source range; HTML characters are escaped as Go does', async () => {
    const { out, sink, emit } = harness('rawjson');
    emit(
      { type: 'warning', message: 'hi', location: { file: 'Dockerfile', line: 5 } },
      started('v1', '[build 1/1] RUN a > b && c', 0),
    );
    await sink.close();
    assert.equal(
      out.text,
      '{"warnings":[{"level":1,"short":"aGk=","sourceInfo":{"filename":"Dockerfile"},' +
        '"range":[{"start":{"line":5},"end":{"line":5}}]}]}\n' +
        '{"vertexes":[{"digest":"v1","name":"[build 1/1] RUN a \\u003e b \\u0026\\u0026 c","started":"2024-01-02T03:04:05Z"}]}\n',
    );
  });
});

describe('tty', () => {
  const terminal = { isTTY: true, columns: 60 };

  test('header and vertex lines with timers right-aligned to the terminal width', async () => {
    const { out, sink, emit, at } = harness('tty', terminal);
    emit(
      { type: 'vertex', id: 'pending', name: '[build 2/2] COPY . .' },
      started('v1', '[build 1/2] RUN make', 0),
    );
    at(3200);
    emit(log('v1', 'compiling\n', 3200));
    const lines = screen(out.text);
    assert.equal(lines[0], '[+] Building 3.2s (0/2)');
    assert.equal(lines[1], ` => [build 1/2] RUN make${' '.repeat(31)}3.2s`);
    assert.equal(lines[1]?.length, 59);
    assert.equal(lines[2], ' => => # compiling');
    assert.equal(lines.length, 3);
    await sink.close();
  });

  test('redraws move the cursor up over the previous frame and clear each line', async () => {
    const { out, sink, emit, at } = harness('tty', terminal);
    emit(started('v1', '[build 1/1] RUN make', 0));
    at(150);
    emit(log('v1', 'one\n', 150));
    assert.equal(out.chunks.length, 2);
    assert.ok(!(out.chunks[0] ?? '').includes('\u001b[2A'));
    assert.ok((out.chunks[1] ?? '').startsWith('\u001b[2A'));
    assert.ok((out.chunks[1] ?? '').includes('\u001b[2K'));
    await sink.close();
  });

  test('draws at most every 100ms however many events arrive', async () => {
    const { out, sink, emit, at } = harness('tty', terminal);
    emit(started('v1', '[build 1/1] RUN make', 0));
    for (let i = 1; i <= 20; i++) {
      at(i * 4);
      emit(log('v1', `line ${i}\n`, i * 4));
    }
    assert.equal(out.chunks.length, 1);
    at(120);
    emit(log('v1', 'last\n', 120));
    assert.equal(out.chunks.length, 2);
    await sink.close();
  });

  test('a running vertex shows only its last 6 log lines, including a partial one', async () => {
    const { out, sink, emit, at } = harness('tty', terminal);
    emit(started('v1', '[build 1/1] RUN make', 0));
    for (let i = 1; i <= 9; i++) emit(log('v1', `line ${i}\n`, i));
    emit(log('v1', 'progr', 10));
    at(500);
    emit(log('v1', 'ess\u001b[1m!\tdone', 500));
    const logLines = screen(out.text).filter((line) => line.startsWith(' => => # '));
    assert.deepEqual(logLines, [
      ' => => # line 5',
      ' => => # line 6',
      ' => => # line 7',
      ' => => # line 8',
      ' => => # line 9',
      ' => => # progress!    done',
    ]);
    assert.ok(out.text.includes('\u001b[2m => => # line 9\u001b[0m'), 'log lines are dimmed');
    await sink.close();
  });

  test('final frame: CACHED and ERROR markers, statuses, error logs kept, other logs gone, no leftovers', async () => {
    const { out, sink, emit, at } = harness('tty', terminal);
    emit(
      started('ctx', '[internal] load build context', 0),
      {
        type: 'status',
        id: 'ctx',
        name: 'transferring context',
        current: 2,
        timestamp: T0,
        completed: T0 + 20,
      },
      completed('ctx', '[internal] load build context', 0, 30),
      {
        type: 'vertex',
        id: 'base',
        name: '[build 1/3] FROM alpine',
        started: T0,
        completed: T0,
        cached: true,
      },
      started('ok', '[build 2/3] RUN make', 100),
      started('bad', '[build 3/3] RUN false', 100),
    );
    for (let i = 1; i <= 8; i++) emit(log('ok', `make ${i}\n`, 100 + i), log('bad', `bad ${i}\n`, 100 + i));
    at(400);
    emit(log('ok', 'make 9\n', 400));
    const liveLines = screen(out.text).length;
    at(1300);
    emit(completed('ok', '[build 2/3] RUN make', 100, 1300), {
      type: 'vertex',
      id: 'bad',
      name: '[build 3/3] RUN false',
      completed: T0 + 1300,
      error: RUN_FAILED,
    });
    at(1350);
    await sink.close();
    const lines = screen(out.text);
    assert.ok(lines.length < liveLines, 'the final frame is shorter than the live one');
    assert.deepEqual(lines, [
      '[+] Building 1.4s (4/4) FINISHED',
      ` => [internal] load build context${' '.repeat(22)}0.0s`,
      ` => => transferring context: 2B${' '.repeat(24)}0.0s`,
      ` => CACHED [build 1/3] FROM alpine${' '.repeat(21)}0.0s`,
      ` => [build 2/3] RUN make${' '.repeat(31)}1.2s`,
      ` => ERROR [build 3/3] RUN false${' '.repeat(24)}1.2s`,
      ' => => # bad 3',
      ' => => # bad 4',
      ' => => # bad 5',
      ' => => # bad 6',
      ' => => # bad 7',
      ' => => # bad 8',
    ]);
    assert.ok(out.text.includes(`\u001b[31m => ERROR [build 3/3] RUN false`), 'errors are red');
    assert.ok(out.text.endsWith('\u001b[J'), 'the final frame clears anything below it');
  });

  test('long names are cut so no line reaches the last column', async () => {
    const { out, sink, emit } = harness('tty', terminal);
    emit(
      completed('v1', `[build 1/1] RUN ${'x'.repeat(200)}`, 0, 2000),
      log('v1', `${'y'.repeat(200)}\n`, 10),
    );
    await sink.close();
    for (const line of screen(out.text)) assert.ok(line.length <= 59, `too long: ${line}`);
    assert.match(screen(out.text)[1] ?? '', /^ => \[build 1\/1\] RUN x+ 2\.0s$/);
  });

  test('on a short terminal the live frame drops finished steps to stay on screen', async () => {
    const { out, sink, emit, at } = harness('tty', { ...terminal, rows: 6 });
    for (let i = 1; i <= 6; i++) emit(completed(`done${i}`, `[build ${i}/7] RUN step ${i}`, 0, 10));
    emit(started('run', '[build 7/7] RUN make', 10));
    at(200);
    emit(log('run', 'working\n', 200));
    const live = screen(out.text);
    assert.ok(live.length <= 5, `frame of ${live.length} lines`);
    assert.equal(live[0], '[+] Building 0.2s (6/7)');
    assert.ok(live.some((line) => line.startsWith(' => [build 7/7] RUN make')));
    assert.ok(live.includes(' => => # working'));
    await sink.close();
    // Header, all seven steps, and the log line of the step that never finished.
    assert.equal(screen(out.text).length, 9, 'the final frame lists every step');
  });

  test('warnings follow the final frame', async () => {
    const { out, sink, emit } = harness('tty', terminal);
    emit(completed('v1', '[build 1/1] RUN true', 0, 10), {
      type: 'warning',
      message: 'JSONArgsRecommended: JSON arguments recommended for CMD',
      location: { file: 'Dockerfile', line: 3 },
    });
    await sink.close();
    assert.deepEqual(screen(out.text).slice(-2), [
      ' 1 warning found:',
      ' - JSONArgsRecommended: JSON arguments recommended for CMD (line 3)',
    ]);
  });

  test('the refresh timer stops at close: nothing is written afterwards', async () => {
    const { out, sink, emit } = harness('tty', terminal);
    emit(started('v1', '[build 1/1] RUN sleep 1', 0));
    await sink.close();
    const written = out.text;
    await sleep(250);
    assert.equal(out.text, written);
    assert.match(screen(written)[0] ?? '', /FINISHED$/);
  });
});
