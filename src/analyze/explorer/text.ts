/**
 * Text for a fixed grid of terminal cells: display widths, truncation that never lets a line
 * wrap, names made safe to print (an image's file names are untrusted bytes: an ESC in one must
 * not reach the terminal as a control sequence), and dive-like columns.
 */
import type { NodeType } from './model.js';

/** Cells a code point takes; East Asian wide and emoji take two, combining marks none. */
export function codePointWidth(cp: number): number {
  if (
    (cp >= 0x0300 && cp <= 0x036f) ||
    (cp >= 0x1ab0 && cp <= 0x1aff) ||
    (cp >= 0x1dc0 && cp <= 0x1dff) ||
    (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x20d0 && cp <= 0x20ff) ||
    (cp >= 0xfe00 && cp <= 0xfe0f) ||
    (cp >= 0xfe20 && cp <= 0xfe2f)
  ) {
    return 0;
  }
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += codePointWidth(ch.codePointAt(0) ?? 0);
  return width;
}

function isControl(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/** Control characters become visible `\xNN` escapes: printed raw they would move the cursor. */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    out += isControl(cp) ? `\\x${cp.toString(16).padStart(2, '0')}` : ch;
  }
  return out;
}

/** A label on one line: a heredoc RUN's newlines read best as spaces. */
export function oneLine(text: string): string {
  return printable(text.replace(/[ \t]*[\n\r\v\f][\s]*/g, ' ').replace(/\t/g, ' '));
}

/** At most `width` cells, ending in "…" when something was cut. */
export function truncate(text: string, width: number): string {
  if (width <= 0) return '';
  if (displayWidth(text) <= width) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    const w = codePointWidth(ch.codePointAt(0) ?? 0);
    if (used + w > width - 1) break;
    out += ch;
    used += w;
  }
  return `${out}…`;
}

/** Exactly `width` cells: truncated, then padded on the right (or the left with `alignRight`). */
export function fit(text: string, width: number, alignRight = false): string {
  const cut = truncate(text, width);
  const pad = ' '.repeat(Math.max(0, width - displayWidth(cut)));
  return alignRight ? pad + cut : cut + pad;
}

/** A run of text in one style; `sgr` is the parameter list of an SGR sequence ("1;32"). */
export interface Span {
  text: string;
  sgr?: string;
}

/**
 * Spans laid into exactly `width` cells (cut or padded with `fillSgr`), each styled and reset, so
 * a line never spills a colour into the next one nor wraps.
 */
export function spansToLine(spans: readonly Span[], width: number, fillSgr?: string): string {
  let out = '';
  let used = 0;
  for (const span of spans) {
    if (used >= width) break;
    const room = width - used;
    const text = displayWidth(span.text) > room ? truncate(span.text, room) : span.text;
    if (text === '') continue;
    out += span.sgr ? `\x1b[${span.sgr}m${text}\x1b[0m` : text;
    used += displayWidth(text);
  }
  if (used < width) {
    const pad = ' '.repeat(width - used);
    out += fillSgr ? `\x1b[${fillSgr}m${pad}\x1b[0m` : pad;
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** The text of a rendered line as a terminal shows it, without its styles. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** dive's sizes (SI units, one decimal under ten): "0 B", "812 B", "4.7 MB", "75 MB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  // Rounding 9.96 to one decimal gives "10.0": show it as the next magnitude would.
  const text = value < 9.95 ? value.toFixed(1) : value.toFixed(0);
  return `${text} ${units[unit]}`;
}

const TYPE_CHAR: Partial<Record<NodeType, string>> = {
  directory: 'd',
  symlink: 'l',
  'char-device': 'c',
  'block-device': 'b',
  fifo: 'p',
  socket: 's',
};

const TYPE_BITS: Record<number, string> = {
  0o010000: 'p',
  0o020000: 'c',
  0o060000: 'b',
  0o140000: 's',
};

/** `ls -l`'s mode string, with setuid/setgid/sticky as s/S and t/T. */
export function formatMode(type: NodeType, mode: number): string {
  // A hard link is a regular file to `ls`; `other` says what it is only through its mode's type bits.
  const kind = type === 'other' ? (TYPE_BITS[mode & 0o170000] ?? '?') : (TYPE_CHAR[type] ?? '-');
  const bit = (mask: number, ch: string): string => ((mode & mask) !== 0 ? ch : '-');
  const special = (exec: number, flag: number, set: string, unset: string): string => {
    const x = (mode & exec) !== 0;
    if ((mode & flag) !== 0) return x ? set : unset;
    return x ? 'x' : '-';
  };
  return (
    kind +
    bit(0o400, 'r') +
    bit(0o200, 'w') +
    special(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') +
    bit(0o020, 'w') +
    special(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') +
    bit(0o002, 'w') +
    special(0o001, 0o1000, 't', 'T')
  );
}

/**
 * Greedy word wrap into at most `maxLines` lines of `width` cells; a word longer than a line is
 * cut, and the last line ends in "…" when text is left over.
 */
export function wrap(text: string, width: number, maxLines: number): string[] {
  if (width <= 0 || maxLines <= 0) return [];
  const lines: string[] = [];
  let rest = text.trim();
  while (rest !== '' && lines.length < maxLines) {
    if (displayWidth(rest) <= width || lines.length === maxLines - 1) {
      lines.push(truncate(rest, width));
      break;
    }
    let cut = '';
    let used = 0;
    for (const ch of rest) {
      const w = codePointWidth(ch.codePointAt(0) ?? 0);
      if (used + w > width) break;
      cut += ch;
      used += w;
    }
    const space = cut.lastIndexOf(' ');
    // Break at the last space when there is one after a reasonable first part of the line.
    const line = space > width / 3 ? cut.slice(0, space) : cut;
    lines.push(line.trimEnd());
    rest = rest.slice(line.length).trimStart();
  }
  return lines;
}
