/**
 * Build progress: the events the solver emits and the renderers that show them the way BuildKit
 * and buildx do (`--progress=tty|plain|rawjson|quiet`), so output and tooling built around
 * `docker build` logs keep working.
 */
import { StrataError } from '../errors.js';

export type VertexId = string;

/**
 * One vertex (a build step, or an `[internal]` job) changing state. Each event carries what is
 * known now; fields left out keep their previous value, so `{ id, name, completed }` finishes a
 * vertex announced earlier with `started`.
 */
export interface VertexEvent {
  type: 'vertex';
  id: VertexId;
  /** e.g. "[build 2/5] RUN make" or "[internal] load build definition from Dockerfile". */
  name: string;
  /** ms since the epoch. */
  started?: number;
  completed?: number;
  cached?: boolean;
  error?: string;
}

/** Output of a vertex's process; lines may arrive split across events. */
export interface LogEvent {
  type: 'log';
  id: VertexId;
  stream: 1 | 2;
  data: Uint8Array | string;
  timestamp: number;
}

/**
 * Progress of a sub-task of a vertex ("transferring context", a layer download). `id` names the
 * sub-task and `vertex` the vertex it belongs to; without `vertex`, `id` is the vertex itself and
 * `name` tells its sub-tasks apart.
 */
export interface StatusEvent {
  type: 'status';
  id: VertexId;
  vertex?: VertexId;
  name: string;
  current: number;
  total?: number;
  /** How `current` and `total` are shown; bytes when left out, as in BuildKit. */
  unit?: 'bytes' | 'items';
  timestamp: number;
  completed?: number;
}

export interface WarningEvent {
  type: 'warning';
  message: string;
  location?: { file: string; line: number };
}

export type ProgressEvent = VertexEvent | LogEvent | StatusEvent | WarningEvent;

export interface ProgressSink {
  emit(event: ProgressEvent): void;
  /** Flushes buffered output and prints the final summary; later events are ignored. */
  close(): Promise<void>;
}

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'rawjson' | 'quiet';

export type ProgressOutput = NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };

export interface ProgressOptions {
  /** Clock in ms since the epoch; tests pass a fake one. */
  now?: () => number;
}

const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'tty', 'plain', 'rawjson', 'quiet'];

export function isProgressMode(value: string): value is ProgressMode {
  return (PROGRESS_MODES as readonly string[]).includes(value);
}

/** `auto` means the live view on a terminal and BuildKit's plain log otherwise. */
export function createProgress(
  mode: ProgressMode,
  out: ProgressOutput,
  options: ProgressOptions = {},
): ProgressSink {
  const now = options.now ?? Date.now;
  // The mode often comes straight from a command-line flag, so check it at run time too.
  if (!isProgressMode(mode)) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `invalid progress mode "${String(mode)}": expected one of ${PROGRESS_MODES.join(', ')}`,
    );
  }
  switch (mode) {
    case 'auto':
      return out.isTTY === true ? new TtyProgress(out, now) : new PlainProgress(out);
    case 'tty':
      return new TtyProgress(out, now);
    case 'plain':
      return new PlainProgress(out);
    case 'rawjson':
      return new RawJsonProgress(out);
    case 'quiet':
      return new QuietProgress();
  }
}

/** Keeps every event in memory, for tests and for API users who render progress themselves. */
export class ProgressRecorder implements ProgressSink {
  readonly events: ProgressEvent[] = [];
  closed = false;

  emit(event: ProgressEvent): void {
    this.events.push(event);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The vertex as its events so far describe it, or undefined if none mentioned it. */
  vertex(id: VertexId): VertexState | undefined {
    let state: VertexState | undefined;
    for (const event of this.events) {
      if (event.type === 'vertex' && event.id === id) state = mergeVertex(state, event);
    }
    return state;
  }

  /** Everything the vertex wrote, both streams interleaved as they arrived. */
  logText(id: VertexId): string {
    const decoder = new TextDecoder();
    let text = '';
    for (const event of this.events) {
      if (event.type !== 'log' || event.id !== id) continue;
      text += typeof event.data === 'string' ? event.data : decoder.decode(event.data, { stream: true });
    }
    return text + decoder.decode();
  }
}

// ---------------------------------------------------------------------------------------------
// Shared state and formatting

export interface VertexState {
  id: VertexId;
  name: string;
  started?: number;
  completed?: number;
  cached: boolean;
  error?: string;
}

function mergeVertex(previous: VertexState | undefined, event: VertexEvent): VertexState {
  return {
    id: event.id,
    name: event.name,
    started: event.started ?? previous?.started,
    completed: event.completed ?? previous?.completed,
    cached: event.cached ?? previous?.cached ?? false,
    error: event.error ?? previous?.error,
  };
}

/** A cached or failed vertex is finished even if the solver did not stamp `completed`. */
function isFinished(vertex: VertexState): boolean {
  return vertex.completed !== undefined || vertex.cached || vertex.error !== undefined;
}

function hasBegun(vertex: VertexState): boolean {
  return vertex.started !== undefined || isFinished(vertex);
}

/** BuildKit reports an interrupted step as canceled rather than failed. */
function isCanceled(vertex: VertexState): boolean {
  return vertex.error !== undefined && vertex.error.endsWith('context canceled');
}

const DECIMAL_UNITS = ['kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** Sizes as BuildKit prints them: whole bytes below 1000, else two decimals of a power of 1000. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${Math.round(bytes)}B`;
  let value = bytes / 1000;
  let unitIndex = 0;
  while (value >= 1000 && unitIndex < DECIMAL_UNITS.length - 1) {
    value /= 1000;
    unitIndex++;
  }
  return `${value.toFixed(2)}${DECIMAL_UNITS[unitIndex]}`;
}

/** Go's RFC3339Nano in UTC: nanosecond fraction without trailing zeros, none at all when zero. */
export function formatRfc3339Nano(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const subMsNanos = Math.min(999_999, Math.round((epochMs - wholeMs) * 1e6));
  const nanos = (((wholeMs % 1000) + 1000) % 1000) * 1e6 + subMsNanos;
  const seconds = new Date(wholeMs).toISOString().slice(0, 19);
  const fraction = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${seconds}${fraction}Z`;
}

function seconds(fromMs: number, toMs: number): number {
  return Math.max(0, toMs - fromMs) / 1000;
}

/** "transferring context: 1.23MB / 4.56MB" — BuildKit's status ID followed by the amounts. */
function statusLabel(status: StatusEvent): string {
  const format = status.unit === 'items' ? (n: number) => String(n) : formatBytes;
  let amount = '';
  if (status.total !== undefined && status.total !== 0) {
    amount = `${format(status.current)} / ${format(status.total)}`;
  } else if (status.current !== 0) {
    amount = format(status.current);
  }
  if (amount === '') return status.name;
  // BuildKit's descriptive IDs end in ':' ("transferring context:") while digests stand alone.
  const needsColon = /\s/.test(status.name) && !status.name.endsWith(':');
  return `${status.name}${needsColon ? ':' : ''} ${amount}`;
}

function warningLine(warning: WarningEvent): string {
  return warning.location === undefined
    ? warning.message
    : `${warning.message} (line ${warning.location.line})`;
}

function warningsSummary(warnings: readonly WarningEvent[]): string[] {
  if (warnings.length === 0) return [];
  const count = warnings.length === 1 ? '1 warning found' : `${warnings.length} warnings found`;
  return ['', ` ${count}:`, ...warnings.map((warning) => ` - ${warningLine(warning)}`)];
}

interface LogLine {
  text: string;
  /** When the line's first chunk arrived. */
  timestamp: number;
}

/** Reassembles lines from log chunks that split lines (and UTF-8 sequences) anywhere. */
class LineAssembler {
  private readonly decoder = new TextDecoder();
  private partial = '';
  private partialTimestamp = 0;

  push(data: Uint8Array | string, timestamp: number): LogLine[] {
    const text = typeof data === 'string' ? data : this.decoder.decode(data, { stream: true });
    if (text === '') return [];
    if (this.partial === '') this.partialTimestamp = timestamp;
    const pieces = (this.partial + text).split('\n');
    this.partial = pieces.pop() ?? '';
    const lines = pieces.map((piece) => ({ text: piece, timestamp: this.partialTimestamp }));
    if (lines.length > 0) this.partialTimestamp = timestamp;
    return lines;
  }

  /** The unterminated last line, if any. */
  get pending(): string {
    return this.partial;
  }

  takePending(): LogLine | undefined {
    if (this.partial === '') return undefined;
    const line = { text: this.partial, timestamp: this.partialTimestamp };
    this.partial = '';
    return line;
  }
}

/** Resolves once everything written so far has been handed to the OS. */
function drain(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    out.write('', () => resolve());
  });
}

// ---------------------------------------------------------------------------------------------
// quiet

class QuietProgress implements ProgressSink {
  emit(): void {}

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------
// plain

/** An unfinished status prints at most this often, like BuildKit's plain ticker. */
const PLAIN_STATUS_INTERVAL_MS = 150;

interface PlainStatus {
  started: number;
  lastPrinted?: number;
  done: boolean;
}

interface PlainVertex {
  state: VertexState;
  /** The `#N` number, given when the vertex first prints; 0 until then. */
  index: number;
  /** Its DONE / CACHED / ERROR line is out. */
  reported: boolean;
  lines: LineAssembler;
  /** Lines that arrived before the vertex started; rendered late so log times use its start. */
  waiting: Array<() => string>;
  statuses: Map<string, PlainStatus>;
}

/**
 * BuildKit's `--progress=plain`: every line is `#N …`, grouped in blocks per vertex; a block left
 * before its vertex finished ends with `#N ...` and is reopened with its header later.
 */
class PlainProgress implements ProgressSink {
  private readonly vertices = new Map<VertexId, PlainVertex>();
  private readonly warnings: WarningEvent[] = [];
  private nextIndex = 1;
  private current: PlainVertex | undefined;
  private wroteBlock = false;
  private buffer: string[] = [];
  private closed = false;

  constructor(private readonly out: NodeJS.WritableStream) {}

  emit(event: ProgressEvent): void {
    if (this.closed) return;
    switch (event.type) {
      case 'vertex':
        this.onVertex(event);
        break;
      case 'log':
        this.onLog(event);
        break;
      case 'status':
        this.onStatus(event);
        break;
      case 'warning':
        this.warnings.push(event);
        break;
    }
    this.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const vertex of this.vertices.values()) {
      const pending = vertex.lines.takePending();
      if (pending !== undefined) this.printLine(vertex, () => this.logLine(vertex, pending));
      if (vertex.waiting.length > 0) this.enter(vertex);
    }
    this.buffer.push(...warningsSummary(this.warnings));
    this.flush();
    await drain(this.out);
  }

  private vertexFor(id: VertexId): PlainVertex {
    let vertex = this.vertices.get(id);
    if (vertex === undefined) {
      vertex = {
        state: { id, name: id, cached: false },
        index: 0,
        reported: false,
        lines: new LineAssembler(),
        waiting: [],
        statuses: new Map(),
      };
      this.vertices.set(id, vertex);
    }
    return vertex;
  }

  private onVertex(event: VertexEvent): void {
    const vertex = this.vertexFor(event.id);
    if (vertex.reported) return;
    vertex.state = mergeVertex(vertex.state, event);
    if (!hasBegun(vertex.state)) return;
    this.enter(vertex);
    if (!isFinished(vertex.state)) return;
    const pending = vertex.lines.takePending();
    if (pending !== undefined) this.printLine(vertex, () => this.logLine(vertex, pending));
    this.buffer.push(`#${vertex.index} ${this.outcome(vertex.state)}`);
    vertex.reported = true;
    this.current = undefined;
  }

  private outcome(state: VertexState): string {
    if (state.error !== undefined) return isCanceled(state) ? 'CANCELED' : `ERROR: ${state.error}`;
    if (state.cached) return 'CACHED';
    if (state.started === undefined || state.completed === undefined) return 'DONE';
    return `DONE ${seconds(state.started, state.completed).toFixed(1)}s`;
  }

  private onLog(event: LogEvent): void {
    const vertex = this.vertexFor(event.id);
    for (const line of vertex.lines.push(event.data, event.timestamp)) {
      this.printLine(vertex, () => this.logLine(vertex, line));
    }
  }

  /** `0.231 hello`: seconds since the vertex started, fewer decimals as they grow (BuildKit). */
  private logLine(vertex: PlainVertex, line: LogLine): string {
    const elapsed = seconds(vertex.state.started ?? line.timestamp, line.timestamp);
    const decimals = elapsed < 10 ? 3 : elapsed < 100 ? 2 : 1;
    return `${elapsed.toFixed(decimals)} ${line.text}`;
  }

  private onStatus(event: StatusEvent): void {
    const vertex = this.vertexFor(event.vertex ?? event.id);
    const key = event.vertex === undefined ? event.name : event.id;
    let status = vertex.statuses.get(key);
    if (status === undefined) {
      status = { started: event.timestamp, done: false };
      vertex.statuses.set(key, status);
    }
    if (status.done) return;
    const finished = event.completed !== undefined;
    const due =
      status.lastPrinted === undefined || event.timestamp - status.lastPrinted >= PLAIN_STATUS_INTERVAL_MS;
    if (!finished && !due) return;
    status.lastPrinted = event.timestamp;
    status.done = finished;
    const elapsed = seconds(status.started, event.completed ?? event.timestamp);
    // BuildKit leaves out durations too short to mean anything.
    const time = elapsed > 0.01 ? ` ${elapsed.toFixed(1)}s` : '';
    const line = `${statusLabel(event)}${time}${finished ? ' done' : ''}`;
    this.printLine(vertex, () => line);
  }

  private printLine(vertex: PlainVertex, render: () => string): void {
    if (!hasBegun(vertex.state)) {
      vertex.waiting.push(render);
      return;
    }
    this.enter(vertex);
    this.buffer.push(`#${vertex.index} ${render()}`);
  }

  /** Makes `vertex` the block being written, printing its header (and any waiting lines). */
  private enter(vertex: PlainVertex): void {
    if (vertex.index === 0) vertex.index = this.nextIndex++;
    if (this.current !== vertex) {
      if (this.current !== undefined && !this.current.reported)
        this.buffer.push(`#${this.current.index} ...`);
      if (this.wroteBlock) this.buffer.push('');
      this.buffer.push(`#${vertex.index} ${vertex.state.name}`);
      this.wroteBlock = true;
      this.current = vertex;
    }
    const waiting = vertex.waiting.splice(0);
    for (const render of waiting) this.buffer.push(`#${vertex.index} ${render()}`);
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    this.out.write(this.buffer.map((line) => `${line}\n`).join(''));
    this.buffer = [];
  }
}

// ---------------------------------------------------------------------------------------------
// rawjson

interface JsonVertex {
  digest: string;
  name: string;
  started?: string;
  completed?: string;
  cached?: boolean;
  error?: string;
}

interface JsonStatus {
  id: string;
  vertex: string;
  name: string;
  total?: number;
  current: number;
  timestamp: string;
  started: string;
  completed?: string;
}

interface JsonLog {
  vertex: string;
  stream: number;
  data: string;
  timestamp: string;
}

interface JsonWarning {
  level: number;
  short: string;
  sourceInfo?: { filename: string };
  range?: Array<{ start: { line: number }; end: { line: number } }>;
}

/** BuildKit's client.SolveStatus as encoding/json writes it; empty arrays are left out. */
interface SolveStatusJson {
  vertexes?: JsonVertex[];
  statuses?: JsonStatus[];
  logs?: JsonLog[];
  warnings?: JsonWarning[];
}

function base64(data: Uint8Array | string): string {
  return typeof data === 'string'
    ? Buffer.from(data, 'utf8').toString('base64')
    : Buffer.from(data).toString('base64');
}

/** Go's encoder escapes HTML-significant characters; matching it keeps output byte-identical. */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** One SolveStatus object per line per event, as `buildctl --progress=rawjson` streams them. */
class RawJsonProgress implements ProgressSink {
  private readonly vertices = new Map<VertexId, VertexState>();
  private readonly statusStarts = new Map<string, number>();
  private closed = false;

  constructor(private readonly out: NodeJS.WritableStream) {}

  emit(event: ProgressEvent): void {
    if (this.closed) return;
    this.out.write(`${goJson(this.toSolveStatus(event))}\n`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await drain(this.out);
  }

  private toSolveStatus(event: ProgressEvent): SolveStatusJson {
    switch (event.type) {
      case 'vertex': {
        // Like BuildKit, every update carries the whole vertex, not just what changed.
        const state = mergeVertex(this.vertices.get(event.id), event);
        this.vertices.set(event.id, state);
        const vertex: JsonVertex = { digest: state.id, name: state.name };
        if (state.started !== undefined) vertex.started = formatRfc3339Nano(state.started);
        if (state.completed !== undefined) vertex.completed = formatRfc3339Nano(state.completed);
        if (state.cached) vertex.cached = true;
        if (state.error !== undefined && state.error !== '') vertex.error = state.error;
        return { vertexes: [vertex] };
      }
      case 'status': {
        const vertexId = event.vertex ?? event.id;
        const key = `${vertexId}\u0000${event.id}\u0000${event.name}`;
        const started = this.statusStarts.get(key) ?? event.timestamp;
        this.statusStarts.set(key, started);
        // Spread in BuildKit's struct field order, leaving out what encoding/json omits.
        const status: JsonStatus = {
          id: event.id,
          vertex: vertexId,
          name: event.name,
          ...(event.total !== undefined && event.total !== 0 ? { total: event.total } : {}),
          current: event.current,
          timestamp: formatRfc3339Nano(event.timestamp),
          started: formatRfc3339Nano(started),
          ...(event.completed !== undefined ? { completed: formatRfc3339Nano(event.completed) } : {}),
        };
        return { statuses: [status] };
      }
      case 'log':
        return {
          logs: [
            {
              vertex: event.id,
              stream: event.stream,
              data: base64(event.data),
              timestamp: formatRfc3339Nano(event.timestamp),
            },
          ],
        };
      case 'warning': {
        const warning: JsonWarning = { level: 1, short: base64(event.message) };
        if (event.location !== undefined) {
          const { file, line } = event.location;
          warning.sourceInfo = { filename: file };
          warning.range = [{ start: { line }, end: { line } }];
        }
        return { warnings: [warning] };
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tty

const REDRAW_INTERVAL_MS = 100;
const LOG_WINDOW_LINES = 6;
const DEFAULT_COLUMNS = 80;

const ESC = '\u001b[';
const CLEAR_LINE = `${ESC}2K`;
const CLEAR_BELOW = `${ESC}J`;
const RESET = `${ESC}0m`;
const BLUE = `${ESC}34m`;
const RED = `${ESC}31m`;
const YELLOW = `${ESC}33m`;
const FAINT = `${ESC}2m`;

function cursorUp(lines: number): string {
  return `${ESC}${lines}A`;
}

function paint(text: string, color: string | undefined): string {
  return color === undefined || text === '' ? text : `${color}${text}${RESET}`;
}

/** Log output may carry its own escapes, tabs and carriage returns; any of them breaks the layout. */
function printable(text: string): string {
  const afterLastReturn = text.slice(text.lastIndexOf('\r') + 1);
  // Matching control characters is the point of these patterns.
  /* eslint-disable no-control-regex */
  return afterLastReturn
    .replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\t/g, '    ')
    .replace(/[\u0000-\u001f\u007f]/g, '');
  /* eslint-enable no-control-regex */
}

/** `left` cut to fit, padded so `right` ends at the last usable column. */
function alignRight(left: string, right: string, width: number): string {
  const room = Math.max(0, width - right.length - 1);
  const fitted = left.length > room ? left.slice(0, room) : left;
  return `${fitted.padEnd(room)} ${right}`;
}

interface TtyStatus {
  label: string;
  started: number;
  lastTimestamp: number;
  completed?: number;
}

interface TtyVertex {
  state: VertexState;
  /** Position in the view, by first start; 0 while the vertex has not begun. */
  order: number;
  lines: LineAssembler;
  recentLines: string[];
  statuses: Map<string, TtyStatus>;
}

interface FrameBlock {
  finished: boolean;
  lines: string[];
}

/**
 * buildx's live view: a header and one line per vertex, redrawn in place at most every 100ms.
 * Each frame moves the cursor back over the previous one and rewrites it line by line, then
 * clears below, so a shorter frame leaves nothing behind.
 */
class TtyProgress implements ProgressSink {
  private readonly vertices = new Map<VertexId, TtyVertex>();
  private readonly warnings: WarningEvent[] = [];
  private readonly createdAt: number;
  private readonly timer: NodeJS.Timeout;
  private nextOrder = 1;
  private linesOnScreen = 0;
  private lastFrame = '';
  private lastDrawAt = Number.NEGATIVE_INFINITY;
  private dirty = false;
  private closed = false;

  constructor(
    private readonly out: ProgressOutput,
    private readonly now: () => number,
  ) {
    this.createdAt = now();
    // Running timers must tick even when no events arrive; unref'd so a forgotten close()
    // cannot keep the process alive.
    this.timer = setInterval(() => this.tick(), REDRAW_INTERVAL_MS);
    this.timer.unref();
  }

  emit(event: ProgressEvent): void {
    if (this.closed) return;
    switch (event.type) {
      case 'vertex': {
        const vertex = this.vertexFor(event.id);
        vertex.state = mergeVertex(vertex.state, event);
        if (vertex.order === 0 && hasBegun(vertex.state)) vertex.order = this.nextOrder++;
        break;
      }
      case 'log': {
        const vertex = this.vertexFor(event.id);
        const complete = vertex.lines.push(event.data, event.timestamp).map((line) => printable(line.text));
        vertex.recentLines.push(...complete);
        vertex.recentLines.splice(0, Math.max(0, vertex.recentLines.length - LOG_WINDOW_LINES));
        break;
      }
      case 'status':
        this.onStatus(event);
        break;
      case 'warning':
        this.warnings.push(event);
        break;
    }
    this.dirty = true;
    if (this.now() - this.lastDrawAt >= REDRAW_INTERVAL_MS) this.draw(false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.draw(true);
    const summary = warningsSummary(this.warnings);
    if (summary.length > 0) this.out.write(summary.map((line) => `${paint(line, YELLOW)}\n`).join(''));
    await drain(this.out);
  }

  private tick(): void {
    if (this.closed) return;
    const anyRunning = [...this.vertices.values()].some(
      (vertex) => vertex.order !== 0 && !isFinished(vertex.state),
    );
    if (this.dirty || anyRunning) this.draw(false);
  }

  private vertexFor(id: VertexId): TtyVertex {
    let vertex = this.vertices.get(id);
    if (vertex === undefined) {
      vertex = {
        state: { id, name: id, cached: false },
        order: 0,
        lines: new LineAssembler(),
        recentLines: [],
        statuses: new Map(),
      };
      this.vertices.set(id, vertex);
    }
    return vertex;
  }

  private onStatus(event: StatusEvent): void {
    const vertex = this.vertexFor(event.vertex ?? event.id);
    const key = event.vertex === undefined ? event.name : event.id;
    const previous = vertex.statuses.get(key);
    vertex.statuses.set(key, {
      label: statusLabel(event),
      started: previous?.started ?? event.timestamp,
      lastTimestamp: event.timestamp,
      completed: event.completed ?? previous?.completed,
    });
  }

  private draw(final: boolean): void {
    const lines = this.frame(final);
    const frame = lines.join('\n');
    if (!final && frame === this.lastFrame) return;
    let text = this.linesOnScreen > 0 ? cursorUp(this.linesOnScreen) : '';
    for (const line of lines) text += `\r${CLEAR_LINE}${line}\n`;
    text += CLEAR_BELOW;
    this.out.write(text);
    this.linesOnScreen = lines.length;
    this.lastFrame = frame;
    this.lastDrawAt = this.now();
    this.dirty = false;
  }

  private frame(final: boolean): string[] {
    const now = this.now();
    const width = Math.max(20, (this.out.columns ?? DEFAULT_COLUMNS) - 1);
    const all = [...this.vertices.values()];
    const shown = all.filter((vertex) => vertex.order !== 0).sort((a, b) => a.order - b.order);
    const finishedCount = all.filter((vertex) => isFinished(vertex.state)).length;
    const elapsed = seconds(this.createdAt, now).toFixed(1);
    const header = `[+] Building ${elapsed}s (${finishedCount}/${all.length})${final ? ' FINISHED' : ''}`;
    const blocks = shown.map((vertex) => this.block(vertex, now, width, final));
    return [header, ...this.fitHeight(blocks, final)];
  }

  private block(vertex: TtyVertex, now: number, width: number, final: boolean): FrameBlock {
    const { state } = vertex;
    const finished = isFinished(state);
    const color = !finished ? undefined : isCanceled(state) ? YELLOW : state.error !== undefined ? RED : BLUE;
    const marker = isCanceled(state)
      ? 'CANCELED '
      : state.error !== undefined
        ? 'ERROR '
        : state.cached
          ? 'CACHED '
          : '';
    const end = state.completed ?? now;
    const lines = [paint(alignRight(` => ${marker}${state.name}`, timer(state.started, end), width), color)];
    for (const status of vertex.statuses.values()) {
      const statusEnd = status.completed ?? (finished || final ? status.lastTimestamp : now);
      lines.push(paint(alignRight(` => => ${status.label}`, timer(status.started, statusEnd), width), color));
    }
    // Output matters while a step runs, and after it failed: that is what explains the failure.
    if (!finished || state.error !== undefined) {
      const pending = printable(vertex.lines.pending);
      const window = [...vertex.recentLines, ...(pending === '' ? [] : [pending])].slice(-LOG_WINDOW_LINES);
      for (const line of window) lines.push(paint(` => => # ${line}`.slice(0, width), FAINT));
    }
    return { finished, lines };
  }

  /**
   * The cursor cannot move above the top of the screen, so a live frame taller than the terminal
   * would smear; drop finished vertices first, then the oldest lines. The final frame is printed
   * once and may scroll.
   */
  private fitHeight(blocks: FrameBlock[], final: boolean): string[] {
    const rows = this.out.rows;
    const budget = final || rows === undefined || rows < 2 ? Number.POSITIVE_INFINITY : rows - 2;
    let count = blocks.reduce((sum, block) => sum + block.lines.length, 0);
    const kept = [...blocks];
    for (let i = 0; i < kept.length && count > budget;) {
      const block = kept[i];
      if (block !== undefined && block.finished) {
        kept.splice(i, 1);
        count -= block.lines.length;
      } else {
        i++;
      }
    }
    const lines = kept.flatMap((block) => block.lines);
    return count > budget ? lines.slice(lines.length - budget) : lines;
  }
}

function timer(started: number | undefined, end: number): string {
  const elapsed = started === undefined ? 0 : seconds(started, end);
  // Under 50ms reads as noise, so buildx shows it as nothing at all.
  return `${(elapsed < 0.05 ? 0 : elapsed).toFixed(1)}s`;
}
