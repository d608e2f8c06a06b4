/**
 * Where things go on a screen of a given size. The reducer needs it (a page is as tall as the
 * tree pane) and the renderer draws by it, so both compute it from here.
 */
import type { ExplorerModel } from './model.js';
import { displayWidth, oneLine } from './text.js';

export interface Size {
  columns: number;
  rows: number;
}

export const MIN_SIZE: Size = { columns: 40, rows: 10 };

/** Rows above and below the panes: the title bar and the key legend. */
const CHROME_ROWS = 2;
/** The tree pane's own title and column header. */
const TREE_HEADER_ROWS = 2;
/** Fewer layer rows than this are not worth the summary they would make room for. */
const MIN_LAYER_ROWS = 3;
const MAX_COMMAND_LINES = 3;

export interface Layout {
  size: Size;
  /** Whether the screen is big enough to draw the panes at all. */
  fits: boolean;
  leftWidth: number;
  /** Right of the one-column separator. */
  rightWidth: number;
  /** Rows between the title bar and the legend. */
  bodyRows: number;
  layerRows: number;
  /** Lines the selected layer's command takes in the details section. */
  commandLines: number;
  treeRows: number;
}

export function computeLayout(model: ExplorerModel, size: Size): Layout {
  const columns = Math.max(1, Math.floor(size.columns));
  const rows = Math.max(1, Math.floor(size.rows));
  const fits = columns >= MIN_SIZE.columns && rows >= MIN_SIZE.rows;
  // The tree needs the room (four columns and deep paths); the layer list is mostly commands.
  const leftWidth = Math.min(60, Math.max(18, Math.floor(columns * 0.4)));
  const rightWidth = Math.max(1, columns - leftWidth - 1);
  const bodyRows = Math.max(1, rows - CHROME_ROWS);
  const longest = model.layers.reduce((max, layer) => Math.max(max, displayWidth(oneLine(layer.label))), 0);
  const commandLines = Math.min(
    MAX_COMMAND_LINES,
    Math.max(1, Math.ceil(longest / Math.max(1, leftWidth - 1))),
  );
  const detailsRows = 1 + 1 + commandLines;
  const summaryRows = model.summary.length > 0 ? 1 + model.summary.length : 0;
  const count = model.layers.length;
  const room = bodyRows - 1 - detailsRows - summaryRows;
  const layerRows = Math.max(
    0,
    Math.min(count, Math.max(Math.min(count, MIN_LAYER_ROWS), room), bodyRows - 1),
  );
  const treeRows = Math.max(1, bodyRows - TREE_HEADER_ROWS);
  return {
    size: { columns, rows },
    fits,
    leftWidth,
    rightWidth,
    bodyRows,
    layerRows,
    commandLines,
    treeRows,
  };
}
