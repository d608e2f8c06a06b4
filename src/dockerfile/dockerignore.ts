/**
 * `.dockerignore` with Docker's exact semantics (moby/patternmatcher and its `ignorefile` reader,
 * as used by BuildKit, buildx and the docker CLI): reading the file into patterns, and an ordered,
 * parent-aware pattern matcher with Go `filepath.Match` globs extended by `**`.
 *
 * The matcher is also the include/exclude filter of the build-context walker (`context.ts`) and of
 * `COPY --exclude`, so it says "matched", not "ignored".
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { StrataError, errnoCode } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// Paths and whitespace the Go way
// ---------------------------------------------------------------------------------------------

/** Go's `filepath.Clean` for `/`-separated paths (lexical only, never touches the disk). */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  const rooted = path.startsWith('/');
  const kept: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (kept.length > 0 && kept[kept.length - 1] !== '..') kept.pop();
      else if (!rooted) kept.push('..');
      continue;
    }
    kept.push(segment);
  }
  const joined = kept.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** Go's `filepath.Dir` for `/`-separated paths. */
function goDir(path: string): string {
  const lastSlash = path.lastIndexOf('/');
  return cleanPath(path.slice(0, lastSlash + 1));
}

// Go's unicode.IsSpace set. JavaScript's trim() differs: it strips U+FEFF and keeps U+0085.
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const GO_TRIM = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

/** Go's `strings.TrimSpace`. */
function goTrimSpace(text: string): string {
  return text.replace(GO_TRIM, '');
}

// ---------------------------------------------------------------------------------------------
// Reading a .dockerignore file
// ---------------------------------------------------------------------------------------------

/**
 * Reads a `.dockerignore` file's content into patterns, like moby's `ignorefile.ReadAll`.
 * A bare `!` is kept here; the matcher rejects it.
 */
export function readIgnorePatterns(text: string | Buffer): string[] {
  let content = typeof text === 'string' ? text : text.toString('utf8');
  if (content.startsWith('\ufeff')) content = content.slice(1);
  const patterns: string[] = [];
  const lines = content.split('\n');
  // A final newline ends the last line; it does not start an empty one (bufio.ScanLines).
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const rawLine of lines) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    // Only the very first column makes a comment: "  # x" is the pattern "# x".
    if (line.startsWith('#')) continue;
    let pattern = goTrimSpace(line);
    if (pattern === '') continue;
    const exception = pattern.startsWith('!');
    if (exception) pattern = goTrimSpace(pattern.slice(1));
    if (pattern !== '') {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    patterns.push(exception ? `!${pattern}` : pattern);
  }
  return patterns;
}

/** Alias of `readIgnorePatterns` (the name the public API exports). */
export const parseDockerignore = readIgnorePatterns;

/**
 * The ignore patterns for a build: `<Dockerfile name>.dockerignore` beside the Dockerfile wins
 * over `<contextDir>/.dockerignore`; neither present gives no patterns. A relative
 * `dockerfilePath` is resolved like `docker build -f` (against the working directory); without
 * one the Dockerfile is `<contextDir>/Dockerfile`.
 */
export async function readIgnoreFile(contextDir: string, dockerfilePath?: string): Promise<string[]> {
  const dockerfile = dockerfilePath === undefined ? join(contextDir, 'Dockerfile') : resolve(dockerfilePath);
  const candidates = [
    join(dirname(dockerfile), `${basename(dockerfile)}.dockerignore`),
    join(contextDir, '.dockerignore'),
  ];
  for (const candidate of candidates) {
    let content: Buffer;
    try {
      content = await readFile(candidate);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw new StrataError('INVALID_ARGUMENT', `cannot read ignore file ${candidate}: ${describe(err)}`, {
        cause: err,
      });
    }
    return readIgnorePatterns(content);
  }
  return [];
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Glob syntax: validation (Go filepath.Match rules) and compilation
// ---------------------------------------------------------------------------------------------

interface CharacterClass {
  negated: boolean;
  ranges: Array<[number, number]>;
  /** Index (in code points) just past the closing `]`. */
  end: number;
}

/**
 * Parses `[...]` starting at `start` with `filepath.Match`'s rules (`\` escapes; `-` and `]`
 * cannot start a range; a class needs at least one range). Returns undefined when malformed.
 */
function parseClass(chars: readonly string[], start: number): CharacterClass | undefined {
  let index = start + 1;
  let negated = false;
  if (chars[index] === '^') {
    negated = true;
    index++;
  }
  const ranges: Array<[number, number]> = [];
  const classChar = (): number | undefined => {
    let char = chars[index];
    if (char === undefined || char === '-' || char === ']') return undefined;
    if (char === '\\') {
      index++;
      char = chars[index];
      if (char === undefined) return undefined;
    }
    index++;
    // Go requires the class to go on after every character (it must still be closed).
    if (index >= chars.length) return undefined;
    return char.codePointAt(0);
  };
  for (;;) {
    if (chars[index] === ']' && ranges.length > 0) return { negated, ranges, end: index + 1 };
    const low = classChar();
    if (low === undefined) return undefined;
    let high = low;
    if (chars[index] === '-') {
      index++;
      const upper = classChar();
      if (upper === undefined) return undefined;
      high = upper;
    }
    ranges.push([low, high]);
  }
}

/** Whether `filepath.Match` would reject the pattern as malformed. */
function isMalformedGlob(pattern: string): boolean {
  const chars = Array.from(pattern);
  for (let index = 0; index < chars.length;) {
    const char = chars[index];
    if (char === '\\') {
      if (index + 1 >= chars.length) return true;
      index += 2;
    } else if (char === '[') {
      const parsed = parseClass(chars, index);
      if (parsed === undefined) return true;
      index = parsed.end;
    } else {
      index++;
    }
  }
  return false;
}

/**
 * How a pattern is matched, mirroring the reference classification: `exact` compares strings,
 * `prefix` (ends in `**`, otherwise literal) and `suffix` (starts with `**`, otherwise literal)
 * compare ends of strings — which is why `**file` matches `dir/dir/file` — and `glob` runs an
 * automaton. `invalid` passes the syntax check but cannot be compiled (a reversed class range
 * such as `[Local-Only]`); matching it fails every time.
 */
export type MatchKind = 'exact' | 'prefix' | 'suffix' | 'regexp' | 'invalid';

type CodePointTest = (codePoint: number) => boolean;

/**
 * A Thompson NFA over code points. Simulating it is linear in the path length for any pattern,
 * unlike a backtracking RegExp built from optional-directory groups, which blows up on patterns
 * with many `**` segments.
 */
type NfaNode =
  | { op: 'char'; test: CodePointTest; next: number }
  | { op: 'split'; first: number; second: number }
  | { op: 'accept' };

const SLASH = 0x2f;
const NEWLINE = 0x0a;
const notSlash: CodePointTest = (codePoint) => codePoint !== SLASH;
// The reference regexps use `.`, which in Go matches anything but a newline.
const notNewline: CodePointTest = (codePoint) => codePoint !== NEWLINE;

class NfaBuilder {
  readonly nodes: NfaNode[] = [];

  char(test: CodePointTest): void {
    this.nodes.push({ op: 'char', test, next: this.nodes.length + 1 });
  }

  /** Zero or more code points passing `test`. */
  repeat(test: CodePointTest): void {
    const start = this.nodes.length;
    this.nodes.push({ op: 'split', first: start + 1, second: start + 2 });
    this.nodes.push({ op: 'char', test, next: start });
  }

  // The reference's `(.*/)?`: nothing, or any run of characters up to and including a `/`.
  optionalDirectories(): void {
    const start = this.nodes.length;
    const exit = start + 4;
    this.nodes.push({ op: 'split', first: start + 1, second: exit });
    this.nodes.push({ op: 'split', first: start + 2, second: start + 3 });
    this.nodes.push({ op: 'char', test: notNewline, next: start + 1 });
    this.nodes.push({ op: 'char', test: (codePoint) => codePoint === SLASH, next: exit });
  }

  finish(): NfaNode[] {
    this.nodes.push({ op: 'accept' });
    return this.nodes;
  }
}

function runNfa(nodes: readonly NfaNode[], text: string): boolean {
  // `seen[node] === generation` marks a node already in the current state set.
  const seen = new Int32Array(nodes.length).fill(-1);
  let generation = 0;
  let current: number[] = [];
  const addState = (states: number[], node: number): void => {
    if (seen[node] === generation) return;
    seen[node] = generation;
    const state = nodes[node];
    if (state?.op === 'split') {
      addState(states, state.first);
      addState(states, state.second);
    } else {
      states.push(node);
    }
  };
  addState(current, 0);
  for (const char of text) {
    const codePoint = char.codePointAt(0) ?? 0;
    generation++;
    const next: number[] = [];
    for (const node of current) {
      const state = nodes[node];
      if (state?.op === 'char' && state.test(codePoint)) addState(next, state.next);
    }
    if (next.length === 0) return false;
    current = next;
  }
  return current.some((node) => nodes[node]?.op === 'accept');
}

interface CompiledGlob {
  kind: MatchKind;
  /** The regular expression the reference matcher builds (RE2 syntax), for `regexp` patterns. */
  regexpSource?: string;
  nfa?: NfaNode[];
}

const REGEXP_SPECIALS = '.+()|{}$';

/** Compiles a cleaned, syntax-checked glob (without its `!`). */
function compileGlob(pattern: string): CompiledGlob {
  const chars = Array.from(pattern);
  const nfa = new NfaBuilder();
  let kind: MatchKind = 'exact';
  let source = '^';
  let invalid = false;
  const literal = (char: string): void => {
    const codePoint = char.codePointAt(0);
    nfa.char((candidate) => candidate === codePoint);
  };
  for (let index = 0; index < chars.length;) {
    const start = index;
    const char = chars[index++] ?? '';
    if (char === '*') {
      if (chars[index] === '*') {
        index++;
        // `**/` is treated as `**`.
        if (chars[index] === '/') index++;
        if (index >= chars.length) {
          if (kind === 'exact') {
            kind = 'prefix';
          } else {
            source += '.*';
            nfa.repeat(notNewline);
            kind = 'regexp';
          }
        } else {
          source += '(.*/)?';
          nfa.optionalDirectories();
          kind = 'regexp';
        }
        if (start === 0) kind = 'suffix';
      } else {
        source += '[^/]*';
        nfa.repeat(notSlash);
        kind = 'regexp';
      }
    } else if (char === '?') {
      source += '[^/]';
      nfa.char(notSlash);
      kind = 'regexp';
    } else if (REGEXP_SPECIALS.includes(char)) {
      source += `\\${char}`;
      literal(char);
    } else if (char === '\\') {
      const escaped = chars[index];
      if (escaped === undefined) {
        source += '\\';
        invalid = true;
      } else {
        index++;
        source += `\\${escaped}`;
        literal(escaped);
        kind = 'regexp';
      }
    } else if (char === '[') {
      const parsed = parseClass(chars, start);
      kind = 'regexp';
      if (parsed === undefined) {
        invalid = true;
        break;
      }
      source += chars.slice(start, parsed.end).join('');
      // Go's regexp compiler rejects a reversed range such as `l-O`.
      if (parsed.ranges.some(([low, high]) => low > high)) invalid = true;
      const { negated, ranges } = parsed;
      nfa.char(
        (codePoint) => ranges.some(([low, high]) => low <= codePoint && codePoint <= high) !== negated,
      );
      index = parsed.end;
    } else if (char === ']') {
      source += ']';
      literal(char);
      kind = 'regexp';
    } else {
      source += char;
      literal(char);
    }
  }
  if (kind === 'regexp' && invalid) return { kind: 'invalid' };
  if (kind !== 'regexp') return { kind };
  return { kind, regexpSource: `${source}$`, nfa: nfa.finish() };
}

/** Characters that make a `!`/include pattern more than a literal path (fsutil's list). */
const GLOB_CHARACTERS = /[*[\]?^\\]/;

/** The pattern without one trailing `/**` and then one trailing `/*`, as fsutil trims it. */
function withoutTrailingGlob(pattern: string): string {
  let trimmed = pattern;
  if (trimmed.endsWith('/**')) trimmed = trimmed.slice(0, -3);
  if (trimmed.endsWith('/*')) trimmed = trimmed.slice(0, -2);
  return trimmed;
}

// ---------------------------------------------------------------------------------------------
// The matcher
// ---------------------------------------------------------------------------------------------

/** One active pattern, cleaned, with its `!` split off. */
export class IgnorePattern {
  /** The cleaned pattern text without the leading `!`. */
  readonly text: string;
  /** True for a `!` pattern (an exception that re-includes). */
  readonly exclusion: boolean;
  #compiled: CompiledGlob | undefined;

  constructor(text: string, exclusion: boolean) {
    this.text = text;
    this.exclusion = exclusion;
  }

  /** How the reference matcher classifies this pattern. */
  get kind(): MatchKind {
    return this.#compile().kind;
  }

  /** The reference matcher's regular expression, for `regexp` patterns. */
  get regexpSource(): string | undefined {
    return this.#compile().regexpSource;
  }

  /** Whether the pattern itself (not its parents) matches `path`. Throws for an invalid pattern. */
  matchesPath(path: string): boolean {
    const compiled = this.#compile();
    switch (compiled.kind) {
      case 'exact':
        return path === this.text;
      case 'prefix':
        return path.startsWith(this.text.slice(0, -2));
      case 'suffix': {
        const suffix = this.text.slice(2);
        if (path.endsWith(suffix)) return true;
        // `**/foo` also matches `foo` itself.
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      case 'regexp':
        return compiled.nfa !== undefined && runNfa(compiled.nfa, path);
      case 'invalid':
        throw new StrataError(
          'INVALID_ARGUMENT',
          `bad pattern ${JSON.stringify(this.toString())}: syntax error`,
        );
    }
  }

  toString(): string {
    return this.exclusion ? `!${this.text}` : this.text;
  }

  // Compiled on first use, like the reference: some bad patterns only fail when matching.
  #compile(): CompiledGlob {
    this.#compiled ??= compileGlob(this.text);
    return this.#compiled;
  }
}

/**
 * Per-pattern results for a directory, handed to its children so that matching a path costs one
 * check per pattern instead of one per pattern and parent. Opaque to callers.
 */
export interface MatchInfo {
  readonly parentMatched: readonly boolean[];
}

export interface MatchResult {
  matched: boolean;
  /** Pass to `matchesWithParent` for the entries inside this path (when it is a directory). */
  info: MatchInfo;
}

/**
 * An ordered pattern list. A path is matched when the last pattern that changed the state says
 * so: while unmatched only normal patterns are tried, while matched only `!` patterns. A pattern
 * counts when it matches the path or one of its parent directories.
 */
export class PatternMatcher {
  readonly patterns: readonly IgnorePattern[];
  readonly #hasExclusions: boolean;
  /** fsutil's "only prefix" flags: every (positive / `!`) pattern is a literal path. */
  readonly #literalPositives: boolean;
  readonly #literalExceptions: boolean;

  /** @throws StrataError INVALID_ARGUMENT for a bare `!` or a malformed glob. */
  constructor(patterns: readonly string[]) {
    const active: IgnorePattern[] = [];
    for (const raw of patterns) {
      let text = goTrimSpace(raw);
      if (text === '') continue;
      // Cleaned before the `!` is split off, exactly as the reference does.
      text = cleanPath(text);
      const exclusion = text.startsWith('!');
      if (exclusion) {
        if (text.length === 1) throw new StrataError('INVALID_ARGUMENT', 'illegal exclusion pattern: "!"');
        text = text.slice(1);
      }
      if (isMalformedGlob(text)) {
        throw new StrataError('INVALID_ARGUMENT', `bad pattern ${JSON.stringify(raw.trim())}: syntax error`);
      }
      active.push(new IgnorePattern(text, exclusion));
    }
    this.patterns = active;
    this.#hasExclusions = active.some((pattern) => pattern.exclusion);
    const isLiteral = (pattern: IgnorePattern): boolean =>
      !GLOB_CHARACTERS.test(withoutTrailingGlob(pattern.text));
    this.#literalPositives = active.every((pattern) => pattern.exclusion || isLiteral(pattern));
    this.#literalExceptions = active.every((pattern) => !pattern.exclusion || isLiteral(pattern));
  }

  /** Whether any `!` pattern exists. */
  hasExclusions(): boolean {
    return this.#hasExclusions;
  }

  /**
   * Whether `path` (slash-separated, relative, used as given) is matched by the list, counting a
   * pattern that matches one of its parent directories.
   */
  matches(path: string): boolean {
    return this.matchesWithParent(path).matched;
  }

  /**
   * `matches` for a walker going down the tree: `parent` is the `info` returned for the
   * directory holding `path`. Without it the parents are checked from the path itself.
   * Like the reference (`MatchesUsingParentResults`), a pattern skipped for the parent (because
   * it could not change the state there) is then tried against the child alone.
   */
  matchesWithParent(path: string, parent?: MatchInfo): MatchResult {
    const inherited = parent?.parentMatched ?? [];
    if (inherited.length !== 0 && inherited.length !== this.patterns.length) {
      throw new StrataError('INTERNAL', 'match info comes from a different pattern list');
    }
    let parentPrefixes: string[] | undefined;
    const prefixesOf = (): string[] => {
      if (parentPrefixes !== undefined) return parentPrefixes;
      parentPrefixes = [];
      const parentPath = goDir(path);
      if (parentPath !== '.') {
        const segments = parentPath.split('/');
        for (let count = 1; count <= segments.length; count++) {
          parentPrefixes.push(segments.slice(0, count).join('/'));
        }
      }
      return parentPrefixes;
    };
    let matched = false;
    const parentMatched: boolean[] = new Array<boolean>(this.patterns.length).fill(false);
    this.patterns.forEach((pattern, index) => {
      let match = inherited[index] ?? false;
      if (!match) {
        if (pattern.exclusion !== matched) return;
        match = pattern.matchesPath(path);
        if (!match && inherited.length === 0) {
          match = prefixesOf().some((prefix) => pattern.matchesPath(prefix));
        }
      }
      parentMatched[index] = match;
      if (match) matched = !pattern.exclusion;
    });
    return { matched, info: { parentMatched } };
  }

  /**
   * True when `dir` is matched (excluded) and no `!` pattern could re-include anything below it,
   * so a walker need not enter it.
   */
  canSkipDirectory(dir: string): boolean {
    return this.matches(dir) && this.canSkipMatchedDirectory(dir);
  }

  /**
   * For a directory already known to be matched: whether its contents can be skipped. With only
   * literal `!` patterns that means none of them lies below `dir`; one wildcard `!` pattern
   * anywhere forces every matched directory to be entered (as the reference walker does).
   */
  canSkipMatchedDirectory(dir: string): boolean {
    if (!this.#hasExclusions) return true;
    if (!this.#literalExceptions) return false;
    return !this.#someLiteralBelow(dir, true);
  }

  /**
   * For a directory that is not matched, when the list is used as include patterns: whether no
   * pattern could match anything below it, so a walker need not enter it.
   */
  canSkipUnmatchedDirectory(dir: string): boolean {
    if (!this.#literalPositives) return false;
    return !this.#someLiteralBelow(dir, false);
  }

  #someLiteralBelow(dir: string, exclusion: boolean): boolean {
    const dirWithSlash = `${dir}/`;
    return this.patterns.some(
      (pattern) =>
        pattern.exclusion === exclusion && `${withoutTrailingGlob(pattern.text)}/`.startsWith(dirWithSlash),
    );
  }
}
