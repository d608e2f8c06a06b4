/**
 * BuildKit's shell-word lexer (`frontend/dockerfile/shell/lex.go`), re-implemented by hand.
 *
 * This is what expands `$VAR` / `${VAR…}` and removes quotes in Dockerfile instruction arguments
 * (FROM, COPY/ADD, ENV, LABEL, ARG, WORKDIR, USER, …). It is not a shell: nothing is executed, and
 * the behaviour deliberately copies BuildKit's, quirks included, because a build argument that
 * expands differently here than under `docker build` would silently produce a different image.
 * The behaviour is pinned by the data-driven suite over `shared/corpora/buildkit-shell/`.
 *
 * Where BuildKit compiles `${v#pat}` / `${v/pat/rep}` patterns into Go regular expressions (RE2:
 * leftmost-first, `.` never matches a newline), we run the same tiny language (literals, `?`, `*`)
 * on a Pike VM: identical match choices, and linear time whatever the pattern.
 */
import { StrataError } from '../errors.js';

/** Variables visible to an expansion: a map, or a lookup that returns `undefined` for "unset". */
export type ShellEnv = ReadonlyMap<string, string> | ((name: string) => string | undefined);

export interface WordResult {
  /** The expanded word (quotes removed, escapes processed, variables substituted). */
  result: string;
  /** The same text split into words on unquoted whitespace (including whitespace from unquoted values). */
  words: string[];
  /** Names that were looked up and found (possibly empty). BuildKit uses these for cache keys. */
  matched: Set<string>;
  /** Names that were looked up and not set (BuildKit warns about them: UndefinedVar). */
  unmatched: Set<string>;
}

export interface ShellLexerOptions {
  /** Keep quote characters in the output (BuildKit uses this for heredoc detection). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  rawEscapes?: boolean;
  /** Leave references to unset variables as written (`$X`, `${X:-w}`) instead of expanding them. */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters. */
  skipProcessQuotes?: boolean;
}

/** Expansion failed; `reason` is BuildKit's inner message, `message` wraps it as BuildKit does. */
export class ShellExpansionError extends StrataError {
  readonly word: string;
  readonly reason: string;

  constructor(word: string, reason: string) {
    super('INVALID_ARGUMENT', `failed to process ${goQuote(word)}: ${reason}`);
    this.name = 'ShellExpansionError';
    this.word = word;
    this.reason = reason;
  }
}

/**
 * Reads a `KEY=VALUE` list the way BuildKit does (`EnvsFromSlice`): an entry without `=` is set
 * to the empty string, and when a key repeats the last entry wins.
 */
export function envFromList(list: readonly string[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of list) {
    const eq = entry.indexOf('=');
    if (eq < 0) env.set(entry, '');
    else env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

const EOF = -1;
/** What Go prints for `string(rune(-1))` / `%c` of EOF: the replacement character. */
const EOF_TEXT = '\uFFFD';
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
/**
 * Go's goroutine stacks grow to a gigabyte; ours do not. Nesting `${a:-${b:-…}}` deeper than this
 * is rejected with a clear error instead of a RangeError.
 */
const MAX_NESTING = 1000;

/** An inner failure; converted to ShellExpansionError (with the source word) at the top. */
class LexError extends Error {}

function cp(ch: string): number {
  return ch.codePointAt(0) ?? EOF;
}

function runeText(ch: number): string {
  return ch === EOF ? EOF_TEXT : String.fromCodePoint(ch);
}

/**
 * A reader over code points with Go `text/scanner` quirks that matter here: `Next`/`Peek` return
 * runes, EOF is -1, and a byte-order mark as the very first character is skipped.
 */
class Scanner {
  private readonly chars: number[];
  private pos = 0;

  constructor(text: string) {
    this.chars = Array.from(text, cp);
    if (this.chars[0] === 0xfeff) this.pos = 1;
  }

  peek(): number {
    return this.chars[this.pos] ?? EOF;
  }

  next(): number {
    const ch = this.chars[this.pos];
    if (ch === undefined) return EOF;
    this.pos++;
    return ch;
  }
}

// Go's unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property (not U+FEFF, unlike /\s/).
function isSpace(ch: number): boolean {
  if (ch <= 0xff) {
    return ch === 0x20 || (ch >= 0x09 && ch <= 0x0d) || ch === 0x85 || ch === 0xa0;
  }
  return (
    ch === 0x1680 ||
    (ch >= 0x2000 && ch <= 0x200a) ||
    ch === 0x2028 ||
    ch === 0x2029 ||
    ch === 0x202f ||
    ch === 0x205f ||
    ch === 0x3000
  );
}

const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

function isLetter(ch: number): boolean {
  if (ch < 0x80) return (ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a);
  return LETTER.test(String.fromCodePoint(ch));
}

function isDigit(ch: number): boolean {
  if (ch < 0x80) return ch >= 0x30 && ch <= 0x39;
  return DIGIT.test(String.fromCodePoint(ch));
}

/** POSIX special parameters; each is a one-character name that is never set in a Dockerfile. */
function isSpecialParam(ch: number): boolean {
  return isOneOf(ch, '@*#?-$!0');
}

/**
 * Collects words for ProcessWords. Characters from unquoted variable values go through `addChar`
 * (whitespace splits), quoted text and escaped characters through the raw variants (kept as is).
 */
class Words {
  private buf = '';
  private inWord = false;
  private readonly list: string[] = [];

  addChar(ch: number): void {
    if (isSpace(ch)) {
      if (this.inWord && this.buf.length !== 0) {
        this.list.push(this.buf);
        this.buf = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }

  addRawChar(ch: number): void {
    this.buf += String.fromCodePoint(ch);
    this.inWord = true;
  }

  addString(text: string): void {
    for (const ch of text) this.addChar(cp(ch));
  }

  addRawString(text: string): void {
    this.buf += text;
    this.inWord = true;
  }

  finish(): string[] {
    if (this.buf.length > 0) {
      this.list.push(this.buf);
      this.buf = '';
      this.inWord = false;
    }
    return this.list;
  }
}

interface LexerConfig {
  escapeToken: number;
  rawQuotes: boolean;
  rawEscapes: boolean;
  skipUnsetEnv: boolean;
  skipProcessQuotes: boolean;
}

/** The state of one expansion (BuildKit's `shellWord`); a fresh one per call, so lexers are reentrant. */
class ShellWord {
  private readonly scanner: Scanner;
  private rawEscapes: boolean;
  private depth = 0;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(
    source: string,
    private readonly config: LexerConfig,
    private readonly env: ShellEnv,
  ) {
    this.scanner = new Scanner(source);
    this.rawEscapes = config.rawEscapes;
  }

  run(): { result: string; words: string[] } {
    return this.processStopOn(EOF, this.config.rawEscapes);
  }

  /**
   * Processes text up to `stopChar` (consumed) or the end. Note: BuildKit shares one word buffer
   * between nested calls, so in words mode `a${x:-b}` loses its `a`; we keep a buffer per call
   * (the evident intent, and what every release before the buffer-sharing change did).
   */
  private processStopOn(stopChar: number, rawEscapes: boolean): { result: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      const s = this.scanner;
      const words = new Words();
      let result = '';
      const esc = this.config.escapeToken;
      const quotes = !this.config.skipProcessQuotes;
      while (s.peek() !== EOF) {
        let ch = s.peek();
        if (stopChar !== EOF && ch === stopChar) {
          s.next();
          return { result, words: words.finish() };
        }
        if (ch === 0x24 /* $ */) {
          const value = this.processDollar();
          result += value;
          words.addString(value);
        } else if (quotes && (ch === 0x27 || ch === 0x22)) {
          const value = ch === 0x27 ? this.processSingleQuote() : this.processDoubleQuote();
          result += value;
          words.addRawString(value);
        } else {
          ch = s.next();
          if (ch === esc) {
            if (this.rawEscapes) {
              words.addRawChar(ch);
              result += String.fromCodePoint(ch);
            }
            // The escape makes the next character literal; a lone escape at the end is dropped.
            ch = s.next();
            if (ch === EOF) break;
            words.addRawChar(ch);
          } else {
            words.addChar(ch);
          }
          result += String.fromCodePoint(ch);
        }
      }
      if (stopChar !== EOF) {
        throw new LexError(`unexpected end of statement while looking for matching ${runeText(stopChar)}`);
      }
      return { result, words: words.finish() };
    } finally {
      this.rawEscapes = saved;
    }
  }

  /** A nested processStopOn whose failure at end of input is reported as `eofMessage` (as BuildKit). */
  private processUntil(stopChar: number, rawEscapes: boolean, eofMessage: string): string {
    try {
      return this.processStopOn(stopChar, rawEscapes).result;
    } catch (err) {
      if (err instanceof LexError && this.scanner.peek() === EOF) throw new LexError(eofMessage);
      throw err;
    }
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a single quote cannot be escaped inside.
    const s = this.scanner;
    let result = '';
    const open = s.next();
    if (this.config.rawQuotes) result += runeText(open);
    for (;;) {
      const ch = s.next();
      if (ch === EOF)
        throw new LexError('unexpected end of statement while looking for matching single-quote');
      if (ch === 0x27) {
        if (this.config.rawQuotes) result += "'";
        return result;
      }
      result += String.fromCodePoint(ch);
    }
  }

  private processDoubleQuote(): string {
    // `$` expands; the escape character only escapes `"`, `$` and itself and is otherwise kept.
    const s = this.scanner;
    const esc = this.config.escapeToken;
    let result = '';
    const open = s.next();
    if (this.config.rawQuotes) result += runeText(open);
    for (;;) {
      const peek = s.peek();
      if (peek === EOF) {
        throw new LexError('unexpected end of statement while looking for matching double-quote');
      }
      if (peek === 0x22) {
        s.next();
        if (this.config.rawQuotes) result += '"';
        return result;
      }
      if (peek === 0x24) {
        result += this.processDollar();
        continue;
      }
      let ch = s.next();
      if (ch === esc) {
        if (this.rawEscapes) result += String.fromCodePoint(ch);
        const after = s.peek();
        if (after === EOF) continue; // dropped; the loop then reports the missing quote
        if (after === 0x22 || after === 0x24 || after === esc) ch = s.next();
      }
      result += String.fromCodePoint(ch);
    }
  }

  private processDollar(): string {
    if (this.depth >= MAX_NESTING) {
      throw new LexError(`expansions nested deeper than ${MAX_NESTING} levels`);
    }
    this.depth++;
    try {
      return this.expandDollar();
    } finally {
      this.depth--;
    }
  }

  private expandDollar(): string {
    const s = this.scanner;
    s.next(); // $

    if (s.peek() !== 0x7b /* { */) {
      const name = this.processName();
      // `$` before anything that is not a name stays literal (`$.`, `$` at the end).
      if (name === '') return '$';
      const value = this.getEnv(name);
      if (value === undefined && this.config.skipUnsetEnv) return '$' + name;
      return value ?? '';
    }

    s.next(); // {
    const first = s.peek();
    if (first === EOF) throw new LexError("syntax error: missing '}'");
    if (first === 0x7b || first === 0x7d || first === 0x3a) {
      throw new LexError('syntax error: bad substitution'); // ${{x}, ${}, ${:x}
    }
    const name = this.processName();
    let ch = s.next();
    let chs = runeText(ch);
    let nullIsUnset = false;

    if (ch === 0x7d /* } */) {
      const value = this.getEnv(name);
      if (value === undefined && this.config.skipUnsetEnv) return `\${${name}}`;
      return value ?? '';
    }

    if (ch === 0x2f /* / */) return this.substitute(name);

    if (ch === 0x3a /* : */) {
      nullIsUnset = true;
      ch = s.next();
      chs += runeText(ch);
    } else if (!isOneOf(ch, '+-?#%')) {
      throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }

    // Patterns keep their escapes so that `\*` can reach the pattern compiler.
    const rawEscapes = ch === 0x23 || ch === 0x25;
    if (nullIsUnset && rawEscapes) throw new LexError(`unsupported modifier (${chs}) in substitution`);
    let word = this.processUntil(0x7d, rawEscapes, "syntax error: missing '}'");

    // BuildKit looks the variable up before checking the modifier, so `${X:=y}` still records X.
    const value = this.getEnv(name);
    if (this.config.skipUnsetEnv && value === undefined) return `\${${name}${chs}${word}}`;
    const set = value !== undefined;
    const empty = !set || (nullIsUnset && value === '');

    switch (ch) {
      case 0x2d: // -
        return empty ? word : (value ?? '');
      case 0x2b: // +
        return empty ? '' : word;
      case 0x3f: // ?
        if (value === undefined) {
          throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
        }
        if (nullIsUnset && value === '') {
          throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
        }
        return value;
      case 0x23: // #
      case 0x25: {
        // %
        // One `#`/`%` is the shortest match, two the longest. The check runs on the expanded
        // pattern, as BuildKit's does, so a pattern variable that starts with `#` also counts.
        const op = String.fromCodePoint(ch);
        let greedy = false;
        if (word.startsWith(op)) {
          greedy = true;
          word = word.slice(1);
        }
        return ch === 0x25 ? trimSuffix(word, value ?? '', greedy) : trimPrefix(word, value ?? '', greedy);
      }
      default:
        throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  /** `${name/pattern/replacement}` and `${name//pattern/replacement}`. */
  private substitute(name: string): string {
    const s = this.scanner;
    const replaceAll = s.peek() === 0x2f;
    if (replaceAll) s.next();
    const pattern = this.processUntil(0x2f, true, "syntax error: missing '/' in ${}");
    const replacement = this.processUntil(0x7d, true, "syntax error: missing '}'");

    const value = this.getEnv(name);
    // (BuildKit rebuilds this with a single `/` even for `//`.)
    if (this.config.skipUnsetEnv && value === undefined) return `\${${name}/${pattern}/${replacement}}`;

    const program = compilePattern(pattern, true);
    const text = Array.from(value ?? '', cp);
    if (replaceAll) return replaceAllMatches(program, text, replacement);
    const match = program.find(text, 0, false);
    if (match === undefined) return value ?? '';
    return fromCodePoints(text, 0, match[0]) + replacement + fromCodePoints(text, match[1], text.length);
  }

  /** A name: letters, digits and `_`; or all leading digits; or one special-parameter character. */
  private processName(): string {
    const s = this.scanner;
    let name = '';
    while (s.peek() !== EOF) {
      const ch = s.peek();
      if (name === '' && isDigit(ch)) {
        while (s.peek() !== EOF && isDigit(s.peek())) name += String.fromCodePoint(s.next());
        return name;
      }
      if (name === '' && isSpecialParam(ch)) {
        s.next();
        return String.fromCodePoint(ch);
      }
      if (!isLetter(ch) && !isDigit(ch) && ch !== 0x5f) break;
      name += String.fromCodePoint(s.next());
    }
    return name;
  }

  /** Looks a name up (case-sensitively, as BuildKit on Linux) and records whether it was set. */
  private getEnv(name: string): string | undefined {
    const env = this.env;
    const value = typeof env === 'function' ? env(name) : env.get(name);
    if (value === undefined) this.unmatched.add(name);
    else this.matched.add(name);
    return value;
  }
}

function isOneOf(ch: number, chars: string): boolean {
  return ch !== EOF && chars.includes(String.fromCodePoint(ch));
}

function fromCodePoints(chars: readonly number[], start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCodePoint(chars[i] ?? 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Patterns. BuildKit turns a pattern into a Go regexp: `*` → `.*` (greedy) or `.*?` (shortest),
// `?` → `.`, `\*` `\?` `\\` → literals, `\}` and `\/` → `}` and `/`, any other escape is an error,
// and every other character is literal (there are no bracket expressions). RE2 semantics follow:
// the leftmost match wins, and among matches starting there the first in backtracking priority
// order (not the longest); `.` never matches a newline.

/** Token values: a code point (literal), or one of these. */
const ANY = -2;
const STAR = -3;

class PatternProgram {
  private readonly tokens: readonly number[];
  private readonly greedy: boolean;
  /** Generation stamps: node i is on the list being built iff visited[i] === generation. */
  private readonly visited: Int32Array;
  private generation = 0;

  constructor(tokens: readonly number[], greedy: boolean) {
    this.tokens = tokens;
    this.greedy = greedy;
    this.visited = new Int32Array(tokens.length + 1);
  }

  /**
   * The leftmost-first match at or after `from` (only at `from` when anchored), as [start, end)
   * code-point offsets. A Pike VM: at most one thread per program node, kept in priority order,
   * so the cost is O(text × pattern) whatever the pattern.
   */
  find(text: readonly number[], from: number, anchored: boolean): [number, number] | undefined {
    const size = this.tokens.length + 1;
    let current: ThreadList = { nodes: new Int32Array(size), starts: new Int32Array(size), count: 0 };
    let following: ThreadList = { nodes: new Int32Array(size), starts: new Int32Array(size), count: 0 };
    let currentGen = ++this.generation;
    let match: [number, number] | undefined;
    const end = this.tokens.length;

    for (let pos = from; ; pos++) {
      // A new attempt starting here has the lowest priority (leftmost wins); none once matched.
      if (match === undefined && (!anchored || pos === from)) this.addThread(current, 0, pos, currentGen);
      if (current.count === 0) break;
      const ch = pos < text.length ? (text[pos] ?? EOF) : EOF;
      const nextGen = ++this.generation;
      following.count = 0;
      for (let i = 0; i < current.count; i++) {
        const node = current.nodes[i] ?? end;
        const start = current.starts[i] ?? pos;
        if (node === end) {
          // Reached the end of the pattern: record, and drop every lower-priority thread.
          match = [start, pos];
          break;
        }
        if (ch === EOF) continue;
        const token = this.tokens[node] ?? EOF;
        if (token === STAR) {
          if (ch !== NEWLINE) this.addThread(following, node, start, nextGen);
        } else if (token === ANY) {
          if (ch !== NEWLINE) this.addThread(following, node + 1, start, nextGen);
        } else if (token === ch) {
          this.addThread(following, node + 1, start, nextGen);
        }
      }
      [current, following] = [following, current];
      currentGen = nextGen;
      if (pos >= text.length) break;
    }
    return match;
  }

  /**
   * Adds the thread entering `node`, following empty transitions in priority order: a greedy star
   * first tries to consume, then to skip; a shortest-match star the reverse. A node already on
   * the list was reached by a higher-priority thread, so this one stops there.
   */
  private addThread(list: ThreadList, node: number, start: number, gen: number): void {
    const tokens = this.tokens;
    const end = tokens.length;
    const visited = this.visited;
    if (this.greedy) {
      for (let k = node; ; k++) {
        if (visited[k] === gen) return;
        visited[k] = gen;
        push(list, k, start);
        if (k === end || tokens[k] !== STAR) return;
      }
    }
    // Shortest match: the stars' "skip" branches come first, then their "consume" branches in
    // reverse order (the innermost alternative has the highest priority).
    let k = node;
    const stars: number[] = [];
    while (k < end && tokens[k] === STAR && visited[k] !== gen) {
      visited[k] = gen;
      stars.push(k);
      k++;
    }
    if (!(k < end && tokens[k] === STAR) && visited[k] !== gen) {
      visited[k] = gen;
      push(list, k, start);
    }
    for (let i = stars.length - 1; i >= 0; i--) push(list, stars[i] ?? 0, start);
  }
}

interface ThreadList {
  nodes: Int32Array;
  starts: Int32Array;
  count: number;
}

function push(list: ThreadList, node: number, start: number): void {
  list.nodes[list.count] = node;
  list.starts[list.count] = start;
  list.count++;
}

/** Compiles a pattern (BuildKit's convertShellPatternToRegex); throws BuildKit's error text. */
function compilePattern(pattern: string, greedy: boolean): PatternProgram {
  const s = new Scanner(pattern);
  const tokens: number[] = [];
  for (let tok = s.next(); tok !== EOF; tok = s.next()) {
    if (tok === 0x2a) {
      // `**` matches exactly what `*` matches (same extent, same priority), and collapsing runs
      // of stars keeps the thread count down for patterns like `********x`.
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
    } else if (tok === 0x3f) {
      tokens.push(ANY);
    } else if (tok === BACKSLASH) {
      // `}` and `/` had to be escaped to get through `${…}`; the escape is not part of the pattern.
      if (s.peek() === 0x7d || s.peek() === 0x2f) continue;
      const escaped = s.next();
      if (escaped !== 0x2a && escaped !== 0x3f && escaped !== BACKSLASH) {
        throw new LexError(
          `invalid pattern (${pattern}) in substitution: invalid escape '\\${runeText(escaped)}'`,
        );
      }
      tokens.push(escaped);
    } else {
      tokens.push(tok);
    }
  }
  return new PatternProgram(tokens, greedy);
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const program = compilePattern(pattern, greedy);
  const text = Array.from(value, cp);
  const match = program.find(text, 0, true);
  return match === undefined ? value : fromCodePoints(text, match[1], text.length);
}

/**
 * Suffixes are trimmed as prefixes of the reversed value with the reversed pattern (as BuildKit:
 * a leftmost search is what regexps do), so "shortest suffix" means shortest in that search.
 */
function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  const reversed = reverseCodePoints(trimPrefix(reversePattern(pattern), reverseCodePoints(value), greedy));
  return reversed;
}

function reverseCodePoints(text: string): string {
  return Array.from(text).reverse().join('');
}

/** Reverses a pattern but keeps each `\x` pair in order (`a\*c` → `c\*a`). */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const out = new Array<string>(chars.length);
  const last = chars.length - 1;
  for (let i = 0; i <= last;) {
    const tok = chars[i] ?? '';
    const outIdx = last - i;
    if (tok === '\\' && i !== last) {
      out[outIdx - 1] = tok;
      out[outIdx] = chars[i + 1] ?? '';
      i += 2;
    } else {
      out[outIdx] = tok;
      i++;
    }
  }
  return out.join('');
}

/**
 * Go's Regexp.ReplaceAllString: after a non-empty match, an empty match at the same place is not
 * replaced again, and the replacement is a template (`$0`/`${0}` is the match, `$$` a dollar,
 * any other `$name` the empty string), which BuildKit passes through unchanged.
 */
function replaceAllMatches(program: PatternProgram, text: readonly number[], replacement: string): string {
  let out = '';
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= text.length) {
    const match = program.find(text, searchPos, false);
    if (match === undefined) break;
    const [start, end] = match;
    out += fromCodePoints(text, lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0)
      out += expandTemplate(replacement, fromCodePoints(text, start, end));
    lastMatchEnd = end;
    searchPos = searchPos + 1 > end ? searchPos + 1 : end;
  }
  return out + fromCodePoints(text, lastMatchEnd, text.length);
}

function expandTemplate(template: string, whole: string): string {
  let out = '';
  let rest = template;
  for (;;) {
    const dollar = rest.indexOf('$');
    if (dollar < 0) break;
    out += rest.slice(0, dollar);
    rest = rest.slice(dollar + 1);
    if (rest.startsWith('$')) {
      out += '$';
      rest = rest.slice(1);
      continue;
    }
    const ref = extractTemplateName(rest);
    if (ref === undefined) {
      out += '$'; // malformed reference: the dollar is literal text
      continue;
    }
    rest = rest.slice(ref.length);
    // The only group a BuildKit pattern has is group 0, the whole match.
    if (ref.name === '0') out += whole;
  }
  return out + rest;
}

/** Go regexp's `extract`: `name` or `{name}`, name = letters, digits, `_`; undefined if malformed. */
function extractTemplateName(text: string): { name: string; length: number } | undefined {
  let i = 0;
  const brace = text.startsWith('{');
  if (brace) i = 1;
  let name = '';
  for (const ch of text.slice(i)) {
    const c = cp(ch);
    if (!isLetter(c) && !isDigit(c) && c !== 0x5f) break;
    name += ch;
  }
  if (name === '') return undefined;
  i += name.length;
  if (brace) {
    if (text[i] !== '}') return undefined;
    i++;
  }
  return { name, length: i };
}

/** Go's `%q` (strconv.Quote), used in BuildKit's "failed to process %q" wrapper. */
export function goQuote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const c = cp(ch);
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (c === 0x20 || PRINTABLE.test(ch)) out += ch;
    else if (c < 0x80) out += '\\x' + c.toString(16).padStart(2, '0');
    else if (c < 0x10000) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += '\\U' + c.toString(16).padStart(8, '0');
  }
  return out + '"';
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/**
 * BuildKit's `Lex`. One instance per escape token / option set; calls are independent of each
 * other (each has its own state), so an instance can be shared freely.
 */
export class ShellLexer {
  private readonly config: LexerConfig;

  constructor(escapeToken = '\\', options: ShellLexerOptions = {}) {
    const chars = Array.from(escapeToken);
    if (chars.length !== 1) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `escape token must be one character, got ${goQuote(escapeToken)}`,
      );
    }
    this.config = {
      escapeToken: cp(escapeToken),
      rawQuotes: options.rawQuotes ?? false,
      rawEscapes: options.rawEscapes ?? false,
      skipUnsetEnv: options.skipUnsetEnv ?? false,
      skipProcessQuotes: options.skipProcessQuotes ?? false,
    };
  }

  /** The escape character this lexer uses (`\` or `` ` ``). */
  get escapeToken(): string {
    return String.fromCodePoint(this.config.escapeToken);
  }

  /** Expands `word` as a single word (BuildKit's ProcessWord). */
  processWord(word: string, env: ShellEnv): string {
    return this.process(word, env).result;
  }

  /** Expands `word` and splits it into words on unquoted whitespace (BuildKit's ProcessWords). */
  processWords(word: string, env: ShellEnv): string[] {
    return this.process(word, env).words;
  }

  /** Expands `word` and reports which names were found and which were not. */
  processWordWithMatches(word: string, env: ShellEnv): WordResult {
    return this.process(word, env);
  }

  private process(word: string, env: ShellEnv): WordResult {
    const sw = new ShellWord(word, this.config, env);
    try {
      const { result, words } = sw.run();
      return { result, words, matched: sw.matched, unmatched: sw.unmatched };
    } catch (err) {
      if (err instanceof LexError) throw new ShellExpansionError(word, err.message);
      throw err;
    }
  }
}
