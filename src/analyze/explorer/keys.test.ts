import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { keyToAction, type KeyPress } from './keys.js';
import type { ExplorerState } from './state.js';

type Mode = Pick<ExplorerState, 'focus' | 'draft' | 'filter'>;
const layers: Mode = { focus: 'layers', draft: undefined, filter: '' };
const tree: Mode = { focus: 'tree', draft: undefined, filter: '' };
const typing: Mode = { focus: 'tree', draft: 'us', filter: '' };

/** A key as readline reports it: the typed text, and the name it gives letters and special keys. */
function key(text: string | undefined, name?: string, extra: Partial<KeyPress> = {}): KeyPress {
  return { text, name: name ?? text, ...extra };
}

describe('explorer keys', () => {
  test('movement and panes', () => {
    assert.deepEqual(keyToAction(key(undefined, 'down'), tree), { type: 'move', by: 1 });
    assert.deepEqual(keyToAction(key('j'), tree), { type: 'move', by: 1 });
    assert.deepEqual(keyToAction(key(undefined, 'up'), layers), { type: 'move', by: -1 });
    assert.deepEqual(keyToAction(key('k'), layers), { type: 'move', by: -1 });
    assert.deepEqual(keyToAction(key(undefined, 'pagedown'), tree), { type: 'page', by: 1 });
    assert.deepEqual(keyToAction(key(undefined, 'pageup'), tree), { type: 'page', by: -1 });
    assert.deepEqual(keyToAction(key('g'), tree), { type: 'edge', to: 'first' });
    assert.deepEqual(keyToAction(key('G', 'g', { shift: true }), tree), { type: 'edge', to: 'last' });
    assert.deepEqual(keyToAction(key(undefined, 'end'), tree), { type: 'edge', to: 'last' });
    assert.deepEqual(keyToAction(key('\t', 'tab'), tree), { type: 'switch-pane' });
    assert.deepEqual(keyToAction(key('\r', 'return'), layers), { type: 'focus', pane: 'tree' });
  });

  test('folding keys act in the tree pane', () => {
    assert.deepEqual(keyToAction(key(' ', 'space'), tree), { type: 'fold', mode: 'toggle' });
    assert.deepEqual(keyToAction(key('\r', 'return'), tree), { type: 'fold', mode: 'toggle' });
    assert.deepEqual(keyToAction(key(undefined, 'left'), tree), { type: 'fold', mode: 'close' });
    assert.deepEqual(keyToAction(key('l'), tree), { type: 'fold', mode: 'open' });
    assert.equal(keyToAction(key(' ', 'space'), layers), undefined);
    assert.deepEqual(keyToAction(key('c'), tree), { type: 'fold-all' });
  });

  test('view, change kinds, filter and quit', () => {
    assert.deepEqual(keyToAction(key('v'), layers), { type: 'toggle-view' });
    assert.deepEqual(keyToAction(key('a'), tree), { type: 'toggle-change', kind: 'added' });
    assert.deepEqual(keyToAction(key('m'), layers), { type: 'toggle-change', kind: 'modified' });
    assert.deepEqual(keyToAction(key('r'), tree), { type: 'toggle-change', kind: 'removed' });
    assert.deepEqual(keyToAction(key('u'), tree), { type: 'toggle-change', kind: 'unmodified' });
    assert.deepEqual(keyToAction(key('/'), tree), { type: 'filter-start' });
    assert.deepEqual(keyToAction(key('q'), tree), { type: 'quit' });
    assert.deepEqual(keyToAction(key('\x03', 'c', { ctrl: true }), tree), { type: 'quit' });
    assert.deepEqual(keyToAction(key('\x0c', 'l', { ctrl: true }), tree), { type: 'redraw' });
    assert.equal(keyToAction(key('\x1b', 'escape', { meta: true }), tree), undefined);
    assert.deepEqual(keyToAction(key('\x1b', 'escape', { meta: true }), { ...tree, filter: 'x' }), {
      type: 'filter-clear',
    });
    assert.equal(keyToAction(key('\x01', 'a', { ctrl: true }), tree), undefined);
    assert.equal(keyToAction(key('z'), tree), undefined);
  });

  test('while typing a filter, letters are text and only Enter, Esc, Backspace and Ctrl+C act', () => {
    assert.deepEqual(keyToAction(key('q'), typing), { type: 'filter-type', text: 'q' });
    assert.deepEqual(keyToAction(key('/'), typing), { type: 'filter-type', text: '/' });
    assert.deepEqual(keyToAction(key(' ', 'space'), typing), { type: 'filter-type', text: ' ' });
    assert.deepEqual(keyToAction(key('é', undefined), typing), { type: 'filter-type', text: 'é' });
    assert.deepEqual(keyToAction(key('\r', 'return'), typing), { type: 'filter-apply' });
    assert.deepEqual(keyToAction(key('\x1b', 'escape', { meta: true }), typing), { type: 'filter-clear' });
    assert.deepEqual(keyToAction(key('\x7f', 'backspace'), typing), { type: 'filter-erase' });
    assert.deepEqual(keyToAction(key('\x03', 'c', { ctrl: true }), typing), { type: 'quit' });
    assert.equal(keyToAction(key(undefined, 'down'), typing), undefined);
    assert.equal(keyToAction(key('\t', 'tab'), typing), undefined);
  });
});
