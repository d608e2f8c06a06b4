/** The interactive image explorer of `strata analyze -i`. */
export type {
  ChangeKind,
  ExplorerLayer,
  ExplorerModel,
  ExplorerNode,
  NodeType,
  TreeSource,
  TreeView,
} from './model.js';
export { runExplorer, type ExplorerIO, type ExplorerInput, type ExplorerOutput } from './run.js';
export {
  initialState,
  reduce,
  type Action,
  type ExplorerEnv,
  type ExplorerState,
  type Pane,
} from './state.js';
export { keyToAction, type KeyPress } from './keys.js';
export { render } from './render.js';
export { computeLayout, MIN_SIZE, type Layout, type Size } from './layout.js';
