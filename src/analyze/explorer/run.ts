/**
 * The terminal shell around the reducer and the renderer: raw mode and the alternate screen in,
 * key presses and resizes to actions, changed lines out, and the terminal as it was afterwards
 * whatever happens (a quit key, a failing tree, a signal, the input closing).
 */
import { emitKeypressEvents } from 'node:readline';
import { StrataError } from '../../errors.js';
import type { ExplorerModel, ExplorerNode, TreeView } from './model.js';
import { keyToAction } from './keys.js';
import type { Size } from './layout.js';
import { render } from './render.js';
import { initialState, reduce, type Action, type ExplorerEnv } from './state.js';

/** The parts of a TTY input stream the explorer uses (process.stdin is one). */
export interface ExplorerInput extends NodeJS.EventEmitter {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
  resume(): unknown;
  pause(): unknown;
}

/** The parts of a TTY output stream the explorer uses (process.stdout is one). */
export interface ExplorerOutput extends NodeJS.EventEmitter {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
  write(text: string): boolean;
}

export interface ExplorerIO {
  input: ExplorerInput;
  output: ExplorerOutput;
}

// Alternate screen, hidden cursor, and no auto-wrap: a line that came out one cell too wide is
// cut by the terminal instead of scrolling the whole screen by a row.
const ENTER = '\x1b[?1049h\x1b[?25l\x1b[?7l';
const LEAVE = '\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l';

/** Trees kept computed: enough to step back and forth between layers and both views. */
const TREE_CACHE_SIZE = 6;

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function isPromise(value: ExplorerNode | Promise<ExplorerNode>): value is Promise<ExplorerNode> {
  return typeof (value as { then?: unknown }).then === 'function';
}

function sizeOf(output: ExplorerOutput): Size {
  return { columns: output.columns ?? 80, rows: output.rows ?? 24 };
}

/**
 * Runs the explorer until the user quits (q, Ctrl+C) or the input ends. Rejects with the error
 * of a tree that could not be computed, after the terminal is restored.
 */
export async function runExplorer(model: ExplorerModel, io: ExplorerIO): Promise<void> {
  const { input, output } = io;
  if (!input.isTTY || typeof input.setRawMode !== 'function') {
    throw new StrataError(
      'UNSUPPORTED',
      'the interactive explorer needs a terminal: standard input is not a TTY',
    );
  }
  // Escape sequences written to a file or a pipe would only garble it.
  if (!output.isTTY) {
    throw new StrataError(
      'UNSUPPORTED',
      'the interactive explorer needs a terminal: standard output is not a TTY',
    );
  }
  const setRawMode = input.setRawMode.bind(input);

  return new Promise<void>((resolve, reject) => {
    let done = false;
    let restored = false;
    let previous: string[] = [];
    const trees = new Map<string, ExplorerNode>();
    const pending = new Set<string>();

    const env: ExplorerEnv = {
      model,
      tree(layer: number, view: TreeView): ExplorerNode | undefined {
        const key = `${layer}:${view}`;
        const cached = trees.get(key);
        if (cached) {
          // Most recently used last, so the first key is the one to drop.
          trees.delete(key);
          trees.set(key, cached);
          return cached;
        }
        const source = model.layers[layer];
        if (!source || pending.has(key)) return undefined;
        const result = view === 'layer' ? source.tree() : source.aggregated();
        if (!isPromise(result)) {
          remember(key, result);
          return result;
        }
        pending.add(key);
        result.then(
          (node) => {
            pending.delete(key);
            remember(key, node);
            dispatch({ type: 'loaded' });
          },
          (err: unknown) => finish(err),
        );
        return undefined;
      },
    };

    function remember(key: string, node: ExplorerNode): void {
      trees.set(key, node);
      while (trees.size > TREE_CACHE_SIZE) trees.delete(trees.keys().next().value!);
    }

    let state = initialState(sizeOf(output));

    function restore(): void {
      if (restored) return;
      restored = true;
      try {
        setRawMode(false);
      } catch {
        // The terminal may be gone (SIGHUP): there is nothing left to restore then.
      }
      try {
        output.write(LEAVE);
      } catch {
        // Same as above.
      }
    }

    function detach(): void {
      input.off('keypress', onKeypress);
      input.off('end', onEnd);
      input.off('error', finish);
      output.off('resize', onResize);
      output.off('error', finish);
      for (const signal of SIGNALS) process.off(signal, onSignal);
      process.off('exit', restore);
      input.pause();
    }

    function finish(err?: unknown): void {
      if (done) return;
      done = true;
      restore();
      detach();
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    }

    function draw(full: boolean): void {
      const lines = render(state, env);
      const clear = full || lines.length !== previous.length;
      let out = clear ? '\x1b[H\x1b[2J' : '';
      lines.forEach((line, i) => {
        // Only the lines that changed: holding a key down stays cheap on a slow terminal.
        if (clear || line !== previous[i]) out += `\x1b[${i + 1};1H${line}`;
      });
      previous = lines;
      if (out !== '') output.write(out);
    }

    function dispatch(action: Action): void {
      if (done) return;
      try {
        const before = state.size;
        state = reduce(state, action, env);
        if (state.quit) {
          finish();
          return;
        }
        const resized = before.columns !== state.size.columns || before.rows !== state.size.rows;
        draw(action.type === 'redraw' || resized);
      } catch (err) {
        finish(err);
      }
    }

    function onKeypress(
      text: string | undefined,
      key: { name?: string; ctrl?: boolean; meta?: boolean; shift?: boolean } | undefined,
    ): void {
      const action = keyToAction(
        { text, name: key?.name, ctrl: key?.ctrl, meta: key?.meta, shift: key?.shift },
        state,
      );
      if (action) dispatch(action);
    }

    function onResize(): void {
      dispatch({ type: 'resize', size: sizeOf(output) });
    }

    function onEnd(): void {
      finish();
    }

    // Raw mode turns Ctrl+C into a key, so these come from elsewhere (kill, a closed terminal):
    // restore the terminal, then let the signal do what it would have done.
    function onSignal(signal: NodeJS.Signals): void {
      finish();
      process.kill(process.pid, signal);
    }

    try {
      emitKeypressEvents(input as NodeJS.ReadableStream);
      output.write(ENTER);
      setRawMode(true);
      input.on('keypress', onKeypress);
      input.on('end', onEnd);
      input.on('error', finish);
      output.on('resize', onResize);
      output.on('error', finish);
      for (const signal of SIGNALS) process.on(signal, onSignal);
      // A synchronous process.exit() elsewhere skips everything else: leave the terminal usable.
      process.on('exit', restore);
      input.resume();
      // The first tree: drawn at once when it is ready, with "Loading…" when it is computed.
      dispatch({ type: 'loaded' });
    } catch (err) {
      finish(err);
    }
  });
}
