/** Drives the reducer and the renderer without a terminal, for the explorer's unit tests. */
import type { ExplorerModel, ExplorerNode } from '../model.js';
import { render } from '../render.js';
import { initialState, reduce, type Action, type ExplorerEnv, type ExplorerState } from '../state.js';
import { stripAnsi } from '../text.js';
import type { Size } from '../layout.js';

/** An environment whose trees are computed on first use and kept (all of them: tests are small). */
export function syncEnv(model: ExplorerModel): ExplorerEnv {
  const trees = new Map<string, ExplorerNode>();
  return {
    model,
    tree(layer, view) {
      const key = `${layer}:${view}`;
      let tree = trees.get(key);
      if (!tree) {
        const source = model.layers[layer];
        if (!source) return undefined;
        const result = view === 'layer' ? source.tree() : source.aggregated();
        if (result instanceof Promise) throw new Error('syncEnv takes synchronous trees only');
        tree = result;
        trees.set(key, tree);
      }
      return tree;
    },
  };
}

export function start(env: ExplorerEnv, size: Size = { columns: 120, rows: 40 }): ExplorerState {
  return reduce(initialState(size), { type: 'loaded' }, env);
}

export function apply(state: ExplorerState, env: ExplorerEnv, ...actions: Action[]): ExplorerState {
  return actions.reduce((s, action) => reduce(s, action, env), state);
}

/** The screen as text, one string per row, trailing blanks kept (each is exactly as wide as the screen). */
export function screen(state: ExplorerState, env: ExplorerEnv): string[] {
  return render(state, env).map(stripAnsi);
}

export function typeFilter(text: string): Action[] {
  return [
    { type: 'filter-start' },
    ...Array.from(text, (ch): Action => ({ type: 'filter-type', text: ch })),
    { type: 'filter-apply' },
  ];
}
