/* eslint-disable no-control-regex -- the output under test is made of terminal escape sequences */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { isStrataError } from '../../errors.js';
import type { ExplorerModel } from './model.js';
import { runExplorer } from './run.js';
import { sampleModel } from './testing/demo-image.js';
import { stripAnsi } from './text.js';

/** A terminal's input: raw-mode switches are recorded, bytes written to it are key presses. */
class FakeInput extends PassThrough {
  isTTY = true;
  readonly rawModes: boolean[] = [];
  setRawMode(mode: boolean): this {
    this.rawModes.push(mode);
    return this;
  }
}

class FakeOutput extends EventEmitter {
  isTTY = true;
  columns = 100;
  rows = 30;
  readonly chunks: string[] = [];
  write(text: string): boolean {
    this.chunks.push(text);
    return true;
  }
  get text(): string {
    return stripAnsi(this.chunks.join(''));
  }
  resize(columns: number, rows: number): void {
    this.columns = columns;
    this.rows = rows;
    this.emit('resize');
  }
}

const ENTER = '\x1b[?1049h\x1b[?25l\x1b[?7l';
const LEAVE = '\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l';

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await sleep(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function session(model: ExplorerModel = sampleModel()) {
  const input = new FakeInput();
  const output = new FakeOutput();
  const done = runExplorer(model, { input, output });
  return { input, output, done };
}

function assertRestored(input: FakeInput, output: FakeOutput): void {
  assert.deepEqual(input.rawModes, [true, false]);
  assert.ok(output.chunks[0]!.startsWith(ENTER), 'entered the alternate screen first');
  assert.equal(output.chunks.at(-1), LEAVE, 'left it last');
}

describe('runExplorer', () => {
  test('draws the screen, follows keys, and restores the terminal on q', async () => {
    const { input, output, done } = session();
    await waitFor('the first screen', () => output.text.includes('layer 1 of 4'));
    assert.match(output.text, /os-release/);
    input.write('\x1b[B'); // ↓ in the layer pane
    await waitFor('the second layer', () => output.text.includes('layer 2 of 4'));
    const before = output.chunks.length;
    input.write('j');
    await waitFor('the third layer', () => output.text.includes('server.js'));
    // Only changed lines are written: not the whole screen again.
    assert.doesNotMatch(output.chunks.slice(before).join(''), /\x1b\[2J/);
    input.write('q');
    await done;
    assertRestored(input, output);
  });

  test('Ctrl+C quits too, also while typing a filter', async () => {
    const { input, output, done } = session();
    input.write('/us');
    await waitFor('the filter prompt', () => output.text.includes('Filter (regex): us'));
    input.write('\x03');
    await done;
    assertRestored(input, output);
  });

  test('a resize redraws the whole screen at the new size', async () => {
    const { input, output, done } = session();
    await waitFor('the first screen', () => output.text.includes('layer 1 of 4'));
    const before = output.chunks.length;
    output.resize(40, 10);
    await waitFor('a redraw', () => output.chunks.length > before);
    const redraw = output.chunks.slice(before).join('');
    assert.match(redraw, /^\x1b\[H\x1b\[2J/);
    assert.equal((redraw.match(/\x1b\[\d+;1H/g) ?? []).length, 10);
    input.write('q');
    await done;
  });

  test('the input ending ends the explorer and restores the terminal', async () => {
    const { input, output, done } = session();
    input.end();
    await done;
    assertRestored(input, output);
  });

  test('a tree that fails rejects, after the terminal is restored', async () => {
    const model = sampleModel();
    const broken: ExplorerModel = {
      ...model,
      layers: model.layers.map((layer, i) =>
        i === 1
          ? {
              ...layer,
              tree: () => {
                throw new Error('layer 1 is corrupt');
              },
            }
          : layer,
      ),
    };
    const { input, output, done } = session(broken);
    input.write('j');
    await assert.rejects(done, /layer 1 is corrupt/);
    assertRestored(input, output);
  });

  test('an asynchronous tree shows Loading… until it is ready; its failure rejects', async () => {
    const { input, output, done } = session(sampleModel({ asyncAggregated: true }));
    input.write('j');
    await waitFor('the second layer', () => output.text.includes('layer 2 of 4'));
    const before = output.chunks.length;
    input.write('v');
    const since = (): string => stripAnsi(output.chunks.slice(before).join(''));
    await waitFor('the image view', () => since().includes('Image up to this layer'));
    // Layer 2's own changes have no /bin: it comes with the image's tree.
    await waitFor('the loaded tree', () => since().includes('dash'));
    assert.match(since(), /Loading…/);
    input.write('q');
    await done;

    const model = sampleModel();
    const failing: ExplorerModel = {
      ...model,
      layers: model.layers.map((layer) => ({
        ...layer,
        aggregated: () => Promise.reject(new Error('registry went away')),
      })),
    };
    const second = session(failing);
    second.input.write('v');
    await assert.rejects(second.done, /registry went away/);
    assertRestored(second.input, second.output);
  });

  test('leaves no listeners behind', async () => {
    const counts = (): number[] =>
      ['SIGINT', 'SIGTERM', 'SIGHUP', 'exit'].map((e) => process.listenerCount(e));
    const before = counts();
    const { input, output, done } = session();
    input.write('q');
    await done;
    assert.deepEqual(counts(), before);
    assert.equal(input.listenerCount('keypress'), 0);
    assert.equal(output.listenerCount('resize'), 0);
  });

  test('refuses to start without a terminal on both sides', async () => {
    for (const side of ['input', 'output'] as const) {
      const input = new FakeInput();
      const output = new FakeOutput();
      (side === 'input' ? input : output).isTTY = false;
      await assert.rejects(
        runExplorer(sampleModel(), { input, output }),
        (err) => isStrataError(err, 'UNSUPPORTED') && err.message.includes(`standard ${side} is not a TTY`),
      );
      assert.deepEqual(input.rawModes, []);
      assert.deepEqual(output.chunks, []);
    }
  });
});
