/**
 * The explorer's state and the pure reducer that applies one user action to it. Nothing here
 * touches a terminal: keys are mapped to actions elsewhere (keys.ts) and the screen is drawn from
 * the state (render.ts), so both can be tested as plain functions.
 */
import { type ChangeKind, type ExplorerModel, type ExplorerNode, type TreeView } from './model.js';
import { computeLayout, type Size } from './layout.js';
import { isCollapsed, revealedByFilter, visibleRows, type TreeRow } from './tree.js';

export type Pane = 'layers' | 'tree';

export interface ExplorerState {
  size: Size;
  focus: Pane;
  /** Index of the selected layer, 0 = the bottom (first) layer. */
  layer: number;
  /** First layer shown in the list (it scrolls when there are more layers than rows). */
  layerTop: number;
  view: TreeView;
  /** Row of the tree cursor, and the first row shown. */
  cursor: number;
  top: number;
  /**
   * The path the user put the cursor on. It outlives the row: when the tree changes (another
   * layer, a filter, a fold) the cursor goes back to this path, or to its nearest shown ancestor,
   * so stepping through layers keeps the place.
   */
  anchor: string;
  collapseAll: boolean;
  toggled: ReadonlySet<string>;
  hidden: ReadonlySet<ChangeKind>;
  /** The applied path filter ('' for none). */
  filter: string;
  /** The filter being typed after `/`, undefined when not typing. */
  draft: string | undefined;
  quit: boolean;
}

export type Action =
  | { type: 'move'; by: number }
  | { type: 'page'; by: 1 | -1 }
  | { type: 'edge'; to: 'first' | 'last' }
  | { type: 'switch-pane' }
  | { type: 'focus'; pane: Pane }
  | { type: 'toggle-view' }
  /** `toggle` is Space/Enter; `close` on a file or a folded directory goes to the parent. */
  | { type: 'fold'; mode: 'toggle' | 'open' | 'close' }
  | { type: 'fold-all' }
  | { type: 'toggle-change'; kind: ChangeKind }
  | { type: 'filter-start' }
  | { type: 'filter-type'; text: string }
  | { type: 'filter-erase' }
  | { type: 'filter-apply' }
  | { type: 'filter-clear' }
  | { type: 'resize'; size: Size }
  /** A tree that was being computed is ready. */
  | { type: 'loaded' }
  /** Draw the whole screen again (Ctrl+L); the state does not change. */
  | { type: 'redraw' }
  | { type: 'quit' };

/** What the reducer reads besides the state: the model, and the trees computed so far. */
export interface ExplorerEnv {
  model: ExplorerModel;
  /** The tree of a layer in a view, or undefined while it is still being computed. */
  tree(layer: number, view: TreeView): ExplorerNode | undefined;
}

export function initialState(size: Size): ExplorerState {
  return {
    size,
    focus: 'layers',
    layer: 0,
    layerTop: 0,
    view: 'layer',
    cursor: 0,
    top: 0,
    anchor: '',
    collapseAll: false,
    toggled: new Set(),
    hidden: new Set(),
    filter: '',
    draft: undefined,
    quit: false,
  };
}

/** The rows of the tree pane for a state, or undefined while its tree is not ready. */
export function currentRows(state: ExplorerState, env: ExplorerEnv): TreeRow[] | undefined {
  if (env.model.layers.length === 0) return [];
  const root = env.tree(state.layer, state.view);
  if (!root) return undefined;
  return visibleRows(root, state);
}

function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, value));
}

/** A `top` that keeps `cursor` in a window of `height` rows and leaves no blank rows at the end. */
function scrollTo(top: number, cursor: number, height: number, count: number): number {
  let next = top;
  if (cursor < next) next = cursor;
  if (cursor >= next + height) next = cursor - height + 1;
  return clamp(next, 0, Math.max(0, count - height));
}

function parentPath(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/** Puts the cursor back on the anchor (or its nearest shown ancestor) and scrolls to it. */
function settle(state: ExplorerState, env: ExplorerEnv): ExplorerState {
  const layout = computeLayout(env.model, state.size);
  const count = env.model.layers.length;
  const layer = clamp(state.layer, 0, Math.max(0, count - 1));
  const layerTop = scrollTo(state.layerTop, layer, Math.max(1, layout.layerRows), count);
  const rows = currentRows({ ...state, layer }, env);
  if (!rows) return { ...state, layer, layerTop };
  let cursor = -1;
  for (let path = state.anchor; cursor < 0 && path !== ''; path = parentPath(path)) {
    cursor = rows.findIndex((row) => row.path === path);
  }
  if (cursor < 0) cursor = clamp(state.cursor, 0, Math.max(0, rows.length - 1));
  const top = scrollTo(state.top, cursor, layout.treeRows, rows.length);
  return { ...state, layer, layerTop, cursor, top };
}

/** Moves the tree cursor to a row the user chose, which becomes the new anchor. */
function moveCursor(state: ExplorerState, env: ExplorerEnv, rows: TreeRow[], cursor: number, top: number) {
  const layout = computeLayout(env.model, state.size);
  const at = clamp(cursor, 0, Math.max(0, rows.length - 1));
  const scrolled = scrollTo(
    clamp(top, 0, Math.max(0, rows.length - layout.treeRows)),
    at,
    layout.treeRows,
    rows.length,
  );
  return { ...state, cursor: at, top: scrolled, anchor: rows[at]?.path ?? state.anchor };
}

function toggledWith(set: ReadonlySet<string>, path: string): ReadonlySet<string> {
  const next = new Set(set);
  if (!next.delete(path)) next.add(path);
  return next;
}

function moveIn(
  state: ExplorerState,
  env: ExplorerEnv,
  target: (current: number, page: number, count: number) => number,
  scrollBy: (page: number) => number,
): ExplorerState {
  const layout = computeLayout(env.model, state.size);
  if (state.focus === 'layers') {
    const count = env.model.layers.length;
    const page = Math.max(1, layout.layerRows);
    const layer = clamp(target(state.layer, page, count), 0, Math.max(0, count - 1));
    return settle({ ...state, layer, layerTop: state.layerTop + scrollBy(page) }, env);
  }
  const rows = currentRows(state, env);
  if (!rows) return state;
  const page = layout.treeRows;
  return moveCursor(state, env, rows, target(state.cursor, page, rows.length), state.top + scrollBy(page));
}

function fold(state: ExplorerState, env: ExplorerEnv, mode: 'toggle' | 'open' | 'close'): ExplorerState {
  const rows = currentRows(state, env);
  const row = rows?.[state.cursor];
  if (!rows || !row) return state;
  if (mode === 'close' && (!row.expandable || row.collapsed)) {
    const parent = rows.findIndex((r) => r.path === parentPath(row.path));
    return parent < 0 ? state : moveCursor(state, env, rows, parent, state.top);
  }
  if (!row.expandable) return state;
  if ((mode === 'open' && !row.collapsed) || (mode === 'close' && row.collapsed)) return state;
  return settle({ ...state, toggled: toggledWith(state.toggled, row.path), anchor: row.path }, env);
}

export function reduce(state: ExplorerState, action: Action, env: ExplorerEnv): ExplorerState {
  switch (action.type) {
    case 'move':
      return moveIn(
        state,
        env,
        (current) => current + action.by,
        () => 0,
      );
    case 'page':
      return moveIn(
        state,
        env,
        (current, page) => current + action.by * page,
        (page) => action.by * page,
      );
    case 'edge':
      return moveIn(
        state,
        env,
        (_current, _page, count) => (action.to === 'first' ? 0 : count - 1),
        () => 0,
      );
    case 'switch-pane':
      return { ...state, focus: state.focus === 'layers' ? 'tree' : 'layers' };
    case 'focus':
      return { ...state, focus: action.pane };
    case 'toggle-view':
      return settle({ ...state, view: state.view === 'layer' ? 'image' : 'layer' }, env);
    case 'fold':
      return fold(state, env, action.mode);
    case 'fold-all':
      return settle({ ...state, collapseAll: !state.collapseAll, toggled: new Set() }, env);
    case 'toggle-change': {
      const hidden = new Set(state.hidden);
      if (!hidden.delete(action.kind)) hidden.add(action.kind);
      return settle({ ...state, hidden }, env);
    }
    case 'filter-start':
      return { ...state, draft: state.filter };
    case 'filter-type':
      return state.draft === undefined ? state : { ...state, draft: state.draft + action.text };
    case 'filter-erase':
      return state.draft === undefined
        ? state
        : { ...state, draft: Array.from(state.draft).slice(0, -1).join('') };
    case 'filter-apply': {
      const filter = state.draft ?? state.filter;
      let toggled = state.toggled;
      const root = env.model.layers.length > 0 ? env.tree(state.layer, state.view) : undefined;
      if (root) {
        const next = new Set(toggled);
        for (const path of revealedByFilter(root, filter, state.hidden)) {
          if (isCollapsed(path, { collapseAll: state.collapseAll, toggled: next })) {
            if (!next.delete(path)) next.add(path);
          }
        }
        toggled = next;
      }
      return settle({ ...state, filter, draft: undefined, toggled, focus: 'tree' }, env);
    }
    case 'filter-clear':
      return settle({ ...state, filter: '', draft: undefined }, env);
    case 'resize':
      return settle({ ...state, size: action.size }, env);
    case 'loaded':
      return settle(state, env);
    case 'redraw':
      return state;
    case 'quit':
      return { ...state, quit: true };
  }
}
