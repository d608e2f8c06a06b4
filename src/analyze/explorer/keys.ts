/**
 * Key bindings: a key press (as Node's `readline.emitKeypressEvents` reports it) to an action.
 * Plain letters rather than dive's Ctrl chords: Ctrl+M is Enter and Ctrl+Space is NUL on most
 * terminals, so several of dive's bindings cannot be told apart; docs/explorer.md lists them all.
 */
import type { ChangeKind } from './model.js';
import type { Action, ExplorerState } from './state.js';

/** What readline passes with a `keypress` event (only the fields used here). */
export interface KeyPress {
  /** The text the key typed, when it typed some. */
  text?: string | undefined;
  name?: string | undefined;
  ctrl?: boolean | undefined;
  meta?: boolean | undefined;
  shift?: boolean | undefined;
}

const CHANGE_KEYS: Record<string, ChangeKind> = { a: 'added', m: 'modified', r: 'removed', u: 'unmodified' };

function isPrintable(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return text !== '' && !/[\x00-\x1f\x7f-\x9f]/.test(text);
}

export function keyToAction(
  key: KeyPress,
  state: Pick<ExplorerState, 'focus' | 'draft' | 'filter'>,
): Action | undefined {
  if (key.ctrl && key.name === 'c') return { type: 'quit' };
  if (key.ctrl && key.name === 'l') return { type: 'redraw' };
  if (state.draft !== undefined) {
    if (key.name === 'return' || key.name === 'enter') return { type: 'filter-apply' };
    if (key.name === 'escape') return { type: 'filter-clear' };
    if (key.name === 'backspace') return { type: 'filter-erase' };
    if (!key.ctrl && !key.meta && key.text !== undefined && isPrintable(key.text)) {
      return { type: 'filter-type', text: key.text };
    }
    return undefined;
  }
  // readline reports a lone Esc with `meta` set (it is the meta prefix): test it before meta keys.
  if (key.name === 'escape') return state.filter !== '' ? { type: 'filter-clear' } : undefined;
  if (key.ctrl || key.meta) return undefined;
  const tree = state.focus === 'tree';
  switch (key.name) {
    case 'tab':
      return { type: 'switch-pane' };
    case 'up':
      return { type: 'move', by: -1 };
    case 'down':
      return { type: 'move', by: 1 };
    case 'pageup':
      return { type: 'page', by: -1 };
    case 'pagedown':
      return { type: 'page', by: 1 };
    case 'home':
      return { type: 'edge', to: 'first' };
    case 'end':
      return { type: 'edge', to: 'last' };
    case 'left':
      return tree ? { type: 'fold', mode: 'close' } : undefined;
    case 'right':
      return tree ? { type: 'fold', mode: 'open' } : { type: 'focus', pane: 'tree' };
    case 'space':
      return tree ? { type: 'fold', mode: 'toggle' } : undefined;
    case 'return':
    case 'enter':
      return tree ? { type: 'fold', mode: 'toggle' } : { type: 'focus', pane: 'tree' };
  }
  switch (key.text) {
    case 'q':
      return { type: 'quit' };
    case 'k':
      return { type: 'move', by: -1 };
    case 'j':
      return { type: 'move', by: 1 };
    case 'g':
      return { type: 'edge', to: 'first' };
    case 'G':
      return { type: 'edge', to: 'last' };
    case 'h':
      return tree ? { type: 'fold', mode: 'close' } : undefined;
    case 'l':
      return tree ? { type: 'fold', mode: 'open' } : { type: 'focus', pane: 'tree' };
    case 'v':
      return { type: 'toggle-view' };
    case 'c':
      return { type: 'fold-all' };
    case '/':
      return { type: 'filter-start' };
  }
  const kind = key.text === undefined ? undefined : CHANGE_KEYS[key.text];
  return kind ? { type: 'toggle-change', kind } : undefined;
}
