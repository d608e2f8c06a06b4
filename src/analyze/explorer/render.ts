/**
 * The screen as a pure function of the model, the state and the terminal size: one string per
 * terminal row, each exactly as wide as the terminal (styles included as SGR sequences), so the
 * shell only has to print them and tests can read them.
 */
import type { ChangeKind, ExplorerModel } from './model.js';
import { computeLayout, MIN_SIZE, type Layout } from './layout.js';
import { currentRows, type ExplorerEnv, type ExplorerState } from './state.js';
import { isRegexFilter, rowPrefix, type TreeRow } from './tree.js';
import {
  displayWidth,
  fit,
  formatMode,
  formatSize,
  oneLine,
  printable,
  spansToLine,
  wrap,
  type Span,
} from './text.js';

const CHANGE_SGR: Record<ChangeKind, string | undefined> = {
  added: '32',
  modified: '33',
  removed: '31',
  unmodified: undefined,
};

/** A mark per change kind, so the tree reads without colours too (and in `tmux capture-pane`). */
const CHANGE_MARK: Record<ChangeKind, string> = { added: '+', modified: '~', removed: '-', unmodified: ' ' };

const INVERSE = '7';
const DIM = '2';

/** Which attribute columns the tree pane has room for, widest pane first. */
interface Columns {
  mode: boolean;
  owner: boolean;
  size: boolean;
}

function treeColumns(width: number): Columns {
  return { mode: width >= 56, owner: width >= 40, size: width >= 24 };
}

const MODE_WIDTH = 10;
const OWNER_WIDTH = 11;
const SIZE_WIDTH = 8;

function paneTitle(text: string, focused: boolean, extra: string, width: number): string {
  const spans: Span[] = [{ text: ` ${text} `, sgr: focused ? '1;7' : '1' }];
  if (extra !== '') spans.push({ text: ` ${extra} `, sgr: '1' });
  // The rule fills what is left exactly: cut, it would end in "…" like a truncated name.
  const used = spans.reduce((sum, span) => sum + displayWidth(span.text), 0);
  if (used < width) spans.push({ text: '─'.repeat(width - used), sgr: DIM });
  return spansToLine(spans, width);
}

function leftPane(model: ExplorerModel, state: ExplorerState, layout: Layout): string[] {
  const width = layout.leftWidth;
  const lines: string[] = [paneTitle('Layers', state.focus === 'layers', '', width)];
  const titles = new Set<number>();
  const sizeWidth = 9;
  for (let i = 0; i < layout.layerRows; i++) {
    const index = state.layerTop + i;
    const layer = model.layers[index];
    if (!layer) break;
    const selected = index === state.layer;
    const text = `${selected ? '▶' : ' '}${fit(formatSize(layer.size), sizeWidth, true)}  ${oneLine(layer.label)}`;
    const sgr = selected ? (state.focus === 'layers' ? INVERSE : '1') : undefined;
    lines.push(spansToLine([{ text, ...(sgr ? { sgr } : {}) }], width, sgr));
  }
  if (model.layers.length === 0) lines.push(spansToLine([{ text: ' (no layers)', sgr: DIM }], width));
  const layer = model.layers[state.layer];
  if (layer) {
    titles.add(lines.length);
    lines.push(paneTitle('Layer details', false, '', width));
    lines.push(spansToLine([{ text: 'Digest: ', sgr: '1' }, { text: printable(layer.digest) }], width));
    for (const line of wrap(oneLine(layer.label), width, layout.commandLines)) {
      lines.push(spansToLine([{ text: line }], width));
    }
  }
  if (model.summary.length > 0) {
    titles.add(lines.length);
    lines.push(paneTitle('Image details', false, '', width));
    for (const line of model.summary) lines.push(spansToLine([{ text: oneLine(line) }], width));
  }
  const shown = lines.slice(0, layout.bodyRows);
  // A section title with none of its lines under it is left out.
  if (titles.has(shown.length - 1)) shown.pop();
  return shown;
}

function treeTitle(state: ExplorerState, width: number): string {
  const title = state.view === 'layer' ? 'Changes in this layer' : 'Image up to this layer';
  const notes: string[] = [];
  if (state.filter !== '') {
    notes.push(
      isRegexFilter(state.filter)
        ? `filter /${printable(state.filter)}/`
        : `filter "${printable(state.filter)}"`,
    );
  }
  if (state.hidden.size > 0) notes.push(`hiding ${[...state.hidden].sort().join(', ')}`);
  return paneTitle(title, state.focus === 'tree', notes.join(' · '), width);
}

function attributes(row: TreeRow, columns: Columns): string {
  let text = `${CHANGE_MARK[row.node.change]} `;
  if (columns.mode) text += `${formatMode(row.node.type, row.node.mode)} `;
  if (columns.owner) text += `${fit(`${row.node.uid}:${row.node.gid}`, OWNER_WIDTH, true)} `;
  if (columns.size) text += `${fit(formatSize(row.node.size), SIZE_WIDTH, true)}  `;
  return text;
}

function entryName(row: TreeRow): string {
  const node = row.node;
  let name = printable(node.name);
  if (node.linkTarget && node.type === 'symlink') name += ` → ${printable(node.linkTarget)}`;
  if (node.linkTarget && node.type === 'hardlink') name += ` ⇒ ${printable(node.linkTarget)}`;
  return name;
}

function rightPane(env: ExplorerEnv, state: ExplorerState, layout: Layout): string[] {
  const width = layout.rightWidth;
  const columns = treeColumns(width);
  let header = '  ';
  if (columns.mode) header += `${'Permission'.padEnd(MODE_WIDTH)} `;
  if (columns.owner) header += `${'UID:GID'.padStart(OWNER_WIDTH)} `;
  if (columns.size) header += `${'Size'.padStart(SIZE_WIDTH)}  `;
  header += 'Name';
  const lines = [treeTitle(state, width), spansToLine([{ text: header, sgr: '1' }], width)];
  const rows = currentRows(state, env);
  if (!rows) {
    lines.push(spansToLine([{ text: ' Loading…', sgr: DIM }], width));
    return lines;
  }
  if (rows.length === 0) {
    const why =
      state.filter !== '' || state.hidden.size > 0
        ? ' Nothing matches the filter.'
        : ' No files in this layer.';
    lines.push(spansToLine([{ text: why, sgr: DIM }], width));
    return lines;
  }
  const end = Math.min(rows.length, state.top + layout.treeRows);
  for (let i = state.top; i < end; i++) {
    const row = rows[i]!;
    const colour = CHANGE_SGR[row.node.change];
    const atCursor = i === state.cursor && state.focus === 'tree';
    const sgr = atCursor ? [INVERSE, colour].filter(Boolean).join(';') : colour;
    const attrs = attributes(row, columns);
    const text = attrs + rowPrefix(row, width - attrs.length) + entryName(row);
    lines.push(spansToLine([{ text, ...(sgr ? { sgr } : {}) }], width, atCursor ? sgr : undefined));
  }
  return lines;
}

function legend(state: ExplorerState): Span[] {
  if (state.draft !== undefined) {
    return [
      { text: ' Filter (regex): ', sgr: '1;7' },
      { text: `${printable(state.draft)}▏`, sgr: INVERSE },
      { text: '  Enter', sgr: '1;7' },
      { text: ' apply ', sgr: INVERSE },
      { text: ' Esc', sgr: '1;7' },
      { text: ' clear ', sgr: INVERSE },
    ];
  }
  // Most needed first: a narrow terminal cuts the legend from the right. At 120 columns it all
  // shows; PgUp/PgDn, Home/End and ←/→ are left to docs/explorer.md.
  const keys: [string, string][] = [
    ['q', 'quit'],
    ['Tab', state.focus === 'layers' ? 'files' : 'layers'],
    ['↑↓', state.focus === 'layers' ? 'layer' : 'move'],
    ['Space', 'fold'],
    ['c', state.collapseAll ? 'unfold all' : 'fold all'],
    ['v', state.view === 'layer' ? 'whole image' : 'layer only'],
    ['/', 'filter'],
    ['a m r u', 'show/hide by kind of change'],
  ];

  const spans: Span[] = [];
  for (const [key, what] of keys) {
    spans.push({ text: ` ${key}`, sgr: '1;7' }, { text: ` ${what} `, sgr: INVERSE });
  }
  return spans;
}

/** The whole screen: `size.rows` lines of `size.columns` cells each. */
export function render(state: ExplorerState, env: ExplorerEnv): string[] {
  const layout = computeLayout(env.model, state.size);
  const { columns, rows } = layout.size;
  if (!layout.fits) {
    const lines = [
      spansToLine(
        [{ text: `Terminal too small: strata analyze needs ${MIN_SIZE.columns}×${MIN_SIZE.rows}.` }],
        columns,
      ),
    ];
    while (lines.length < rows) lines.push(' '.repeat(columns));
    return lines.slice(0, rows);
  }
  const model = env.model;
  const position = model.layers.length > 0 ? ` layer ${state.layer + 1} of ${model.layers.length} ` : '';
  const title = ` strata analyze · ${oneLine(model.title)}`;
  const titleRoom = Math.max(0, columns - position.length);
  const out = [spansToLine([{ text: fit(title, titleRoom) + position, sgr: INVERSE }], columns, INVERSE)];
  const left = leftPane(model, state, layout);
  const right = rightPane(env, state, layout);
  const blankLeft = ' '.repeat(layout.leftWidth);
  const blankRight = ' '.repeat(layout.rightWidth);
  for (let i = 0; i < layout.bodyRows; i++) {
    out.push(`${left[i] ?? blankLeft}\x1b[${DIM}m│\x1b[0m${right[i] ?? blankRight}`);
  }
  out.push(spansToLine(legend(state), columns, INVERSE));
  return out;
}
