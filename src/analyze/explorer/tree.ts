/**
 * From a layer's tree to the rows the right pane lists: which entries the path filter and the
 * change-kind toggles let through (with the directories leading to them), which directories are
 * folded, and the guide lines drawn in front of each name. Trees can hold 100 000 entries and be
 * deep enough to overflow the stack of a recursive walk, so every walk here keeps its own stack,
 * and results are cached so that moving the cursor costs nothing.
 */
import type { ChangeKind, ExplorerNode } from './model.js';

export interface TreeOptions {
  /** The applied path filter ('' for none): a regular expression, or literal text if it is not one. */
  filter: string;
  hidden: ReadonlySet<ChangeKind>;
  /** Whether directories are folded unless listed in `toggled`, or unfolded unless listed. */
  collapseAll: boolean;
  /** Paths of directories whose folding differs from `collapseAll`. */
  toggled: ReadonlySet<string>;
}

/**
 * A row's place in the tree, linked to its parent's: a row's guide lines depend on every
 * ancestor, and a string per row would grow with depth (a hostile image can nest thousands deep).
 */
export interface Guide {
  /** The row is the last one shown among its siblings. */
  last: boolean;
  up: Guide | undefined;
}

export interface TreeRow {
  node: ExplorerNode;
  /** Absolute path, "/etc/nginx". */
  path: string;
  depth: number;
  /** Where the row sits among its siblings and theirs, for the guide lines (see rowPrefix). */
  guide: Guide;
  /** A directory that has entries to show. */
  expandable: boolean;
  collapsed: boolean;
}

/**
 * The children each node shows, for a filtered tree; undefined when nothing is filtered, so the
 * common case walks the tree as it is instead of copying it.
 */
type Shown = Map<ExplorerNode, ExplorerNode[]> | undefined;

const NONE: readonly ExplorerNode[] = [];

function kidsOf(node: ExplorerNode, shown: Shown): readonly ExplorerNode[] {
  return shown ? (shown.get(node) ?? NONE) : (node.children ?? NONE);
}

/** The test a path filter makes: a regular expression if it compiles, else the literal text. */
export function pathMatcher(filter: string): (path: string) => boolean {
  if (filter === '') return () => true;
  try {
    const re = new RegExp(filter);
    return (path) => re.test(path);
  } catch {
    return (path) => path.includes(filter);
  }
}

export function isRegexFilter(filter: string): boolean {
  try {
    new RegExp(filter);
    return true;
  } catch {
    return false;
  }
}

export function isCollapsed(path: string, options: Pick<TreeOptions, 'collapseAll' | 'toggled'>): boolean {
  return options.collapseAll !== options.toggled.has(path);
}

/**
 * Which entries pass the filter and the change-kind toggles, with the directories leading to
 * them: a post-order walk (a directory is shown if it passes or anything under it is shown).
 */
function shownEntries(root: ExplorerNode, filter: string, hidden: ReadonlySet<ChangeKind>): Shown {
  if (filter === '' && hidden.size === 0) return undefined;
  const matches = pathMatcher(filter);
  const shown = new Map<ExplorerNode, ExplorerNode[]>();
  const stack: { node: ExplorerNode; path: string; next: number }[] = [{ node: root, path: '', next: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const child = frame.node.children?.[frame.next];
    if (child !== undefined) {
      frame.next++;
      stack.push({ node: child, path: `${frame.path}/${child.name}`, next: 0 });
      continue;
    }
    stack.pop();
    const parent = stack[stack.length - 1];
    if (!parent) break;
    const { node, path } = frame;
    if (shown.has(node) || (!hidden.has(node.change) && matches(path))) {
      const siblings = shown.get(parent.node);
      if (siblings) siblings.push(node);
      else shown.set(parent.node, [node]);
    }
  }
  return shown;
}

/** Visits the shown entries in display order with their paths; `visit` returns whether to go below one. */
function walkShown(
  root: ExplorerNode,
  shown: Shown,
  visit: (
    node: ExplorerNode,
    path: string,
    depth: number,
    guide: Guide,
    kids: readonly ExplorerNode[],
  ) => boolean,
): void {
  interface Item {
    node: ExplorerNode;
    path: string;
    depth: number;
    guide: Guide;
  }
  const stack: Item[] = [];
  const pushKids = (
    kids: readonly ExplorerNode[],
    path: string,
    depth: number,
    up: Guide | undefined,
  ): void => {
    for (let i = kids.length - 1; i >= 0; i--) {
      const node = kids[i]!;
      stack.push({ node, path: `${path}/${node.name}`, depth, guide: { last: i === kids.length - 1, up } });
    }
  };
  pushKids(kidsOf(root, shown), '', 0, undefined);
  while (stack.length > 0) {
    const { node, path, depth, guide } = stack.pop()!;
    const kids = kidsOf(node, shown);
    if (visit(node, path, depth, guide, kids)) pushKids(kids, path, depth + 1, guide);
  }
}

/**
 * Directories shown only because something under them matches the filter (they do not match
 * themselves): applying a filter unfolds these so the matches are on screen at once, while a
 * directory that matches keeps its folding.
 */
export function revealedByFilter(
  root: ExplorerNode,
  filter: string,
  hidden: ReadonlySet<ChangeKind>,
): string[] {
  if (filter === '') return [];
  const matches = pathMatcher(filter);
  const out: string[] = [];
  walkShown(root, shownEntries(root, filter, hidden), (_node, path, _depth, _guide, kids) => {
    if (kids.length === 0) return false;
    if (!matches(path)) out.push(path);
    return true;
  });
  return out;
}

interface ShownMemo {
  root: ExplorerNode;
  filter: string;
  hidden: string;
  shown: Shown;
}

let shownMemo: ShownMemo | undefined;
let rowsMemo:
  { from: ShownMemo; collapseAll: boolean; toggled: ReadonlySet<string>; result: TreeRow[] } | undefined;

/** The rows of the right pane, top to bottom (the root itself is not a row). */
export function visibleRows(root: ExplorerNode, options: TreeOptions): TreeRow[] {
  const hidden = [...options.hidden].sort().join(',');
  if (
    !shownMemo ||
    shownMemo.root !== root ||
    shownMemo.filter !== options.filter ||
    shownMemo.hidden !== hidden
  ) {
    shownMemo = {
      root,
      filter: options.filter,
      hidden,
      shown: shownEntries(root, options.filter, options.hidden),
    };
  }
  const from = shownMemo;
  if (
    rowsMemo &&
    rowsMemo.from === from &&
    rowsMemo.collapseAll === options.collapseAll &&
    rowsMemo.toggled === options.toggled
  ) {
    return rowsMemo.result;
  }
  const rows: TreeRow[] = [];
  walkShown(root, from.shown, (node, path, depth, guide, kids) => {
    const expandable = kids.length > 0;
    const collapsed = expandable && isCollapsed(path, options);
    rows.push({ node, path, depth, guide, expandable, collapsed });
    return expandable && !collapsed;
  });
  rowsMemo = { from, collapseAll: options.collapseAll, toggled: options.toggled, result: rows };
  return rows;
}

const GUIDE_CELLS = 4;

/**
 * The guide lines before a row's name ("│   ├── "; "├─+ " marks a folded directory), at most
 * about `maxCells` wide: deeper than a screen is wide, only the leftmost part can show anyway.
 */
export function rowPrefix(row: TreeRow, maxCells = Infinity): string {
  const chain: Guide[] = [];
  for (let g: Guide | undefined = row.guide; g; g = g.up) chain.push(g);
  const levels = Math.min(chain.length, Math.ceil(maxCells / GUIDE_CELLS) + 1);
  let out = '';
  for (let i = chain.length - 1; i >= chain.length - levels; i--) {
    const g = chain[i]!;
    if (i > 0) out += g.last ? '    ' : '│   ';
    else if (row.collapsed) out += g.last ? '└─+ ' : '├─+ ';
    else out += g.last ? '└── ' : '├── ';
  }
  return out;
}
