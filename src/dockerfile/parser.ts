/**
 * The low-level Dockerfile parser: text → one node per instruction, exactly as BuildKit's
 * `frontend/dockerfile/parser` cuts it (directives, escape token, continuations, comments,
 * heredocs, exec vs shell form, flags). Nothing is validated or expanded here; instructions.ts
 * gives nodes their meaning. Behaviour is pinned by the suite over shared/corpora/buildkit-parser.
 */
import { dockerfileError, type Position } from './errors.js';
import { ShellLexer } from './shell.js';

export type { Position } from './errors.js';

export interface SourceRange {
  start: Position;
  end: Position;
}

export interface Heredoc {
  /** The delimiter word with quotes removed. */
  name: string;
  /** `3<<EOF` → 3; default 0 (stdin). */
  fileDescriptor: number;
  /** False when any part of the delimiter was quoted: the body is then used verbatim. */
  expand: boolean;
  /** `<<-`: leading tabs are stripped from body lines when the body is used. */
  chomp: boolean;
  /** Body lines as written, each with its line ending, without the terminator line. */
  content: string;
}

export interface InstructionNode {
  /** The keyword, lower-cased (`run`, `healthcheck`, or an unknown word). */
  keyword: string;
  /** The instruction line after continuations were joined (for history and messages). */
  original: string;
  /** Leading `--flags`, quotes removed (`--mount=type=cache`). */
  flags: string[];
  /**
   * Argument nodes as BuildKit's dump prints them: exec-form elements, whitespace-split words,
   * one shell string, or ENV/LABEL `key, value, separator` triples. Unknown keywords: `['']`.
   */
  args: string[];
  /** The arguments were a JSON array (exec form). */
  json: boolean;
  heredocs: Heredoc[];
  /** ONBUILD's trigger instruction. */
  child?: InstructionNode;
  range: SourceRange;
  /** Comment lines directly above the instruction (without `#`). */
  comments: string[];
}

export interface Directives {
  syntax?: string;
  escape?: string;
  check?: string;
}

export interface Directive {
  /** Lower-cased name: `syntax`, `escape` or `check`. */
  name: string;
  value: string;
  line: number;
}

export interface ParseWarning {
  message: string;
  detail: string;
  url: string;
  range: SourceRange;
}

export interface ParseResult {
  instructions: InstructionNode[];
  directives: Directives;
  escapeToken: string;
  warnings: ParseWarning[];
}

/** Go's bufio.Scanner default limit: a physical line this long (in bytes) is rejected. */
export const MAX_LINE_BYTES = 65536;
const NOT_STRING_ARRAY = 'when using JSON array syntax, arrays must be comprised of strings only';
const ALLOWED_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const HEREDOC_INSTRUCTIONS = new Set(['add', 'copy', 'run']);

/** Go's unicode.IsSpace: the whitespace BuildKit trims and splits on. */
export function isGoSpace(ch: string): boolean {
  switch (ch) {
    case ' ':
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case '\u0085':
    case '\u00a0':
    case '\u1680':
    case '\u2028':
    case '\u2029':
    case '\u202f':
    case '\u205f':
    case '\u3000':
      return true;
    default:
      return ch >= '\u2000' && ch <= '\u200a';
  }
}

function trimLeftSpace(text: string): string {
  let i = 0;
  while (i < text.length && isGoSpace(text[i] as string)) i++;
  return text.slice(i);
}

function trimSpace(text: string): string {
  let end = text.length;
  while (end > 0 && isGoSpace(text[end - 1] as string)) end--;
  return trimLeftSpace(text.slice(0, end));
}

/** Go's `[\t\v\f\r ]+` split: the whitespace that separates words (not Unicode spaces). */
const WORD_SEPARATOR = /[\t\v\f\r ]+/;

function splitWhitespace(text: string, limit?: number): string[] {
  const parts = text.split(WORD_SEPARATOR);
  if (limit === undefined || parts.length <= limit) return parts;
  const match = WORD_SEPARATOR.exec(text) as RegExpExecArray;
  return [text.slice(0, match.index), text.slice(match.index + match[0].length)];
}

function trimNewline(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === '\n' || line[end - 1] === '\r')) end--;
  return line.slice(0, end);
}

function isComment(line: string): boolean {
  return trimLeftSpace(line).startsWith('#');
}

function escapeRegExp(ch: string): string {
  return ch.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// Directives

const DIRECTIVE_LINE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;

/** Reads the directive block: only comment lines at the very top, each known key at most once. */
class DirectiveScanner {
  private done = false;
  private lineNumber = 0;
  readonly parsed: Directive[] = [];

  constructor(private readonly pattern: RegExp = DIRECTIVE_LINE) {}

  /** The block has ended: later comment lines are ordinary comments. */
  get finished(): boolean {
    return this.done;
  }

  /** Returns the directive on `line`, if any; throws (a plain message) on a repeated key. */
  next(line: string): Directive | undefined {
    this.lineNumber++;
    if (this.done) return undefined;
    const match = this.pattern.exec(line);
    const name = match?.[1]?.toLowerCase();
    if (match === null || name === undefined || !ALLOWED_DIRECTIVES.has(name)) {
      this.done = true;
      return undefined;
    }
    if (this.parsed.some((directive) => directive.name === name)) {
      throw new SyntaxError(`only one ${name} parser directive can be used`);
    }
    const directive = { name, value: match[2] as string, line: this.lineNumber };
    this.parsed.push(directive);
    return directive;
  }
}

function directivesOf(list: readonly Directive[]): Directives {
  const result: Directives = {};
  for (const { name, value } of list) result[name as keyof Directives] = value;
  return result;
}

/** The physical lines of `text`: each keeps its `\n` (heredoc bodies need line endings). */
function physicalLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline + 1;
    lines.push(text.slice(start, end));
    start = end;
  }
  return lines;
}

function decodeSource(source: string | Uint8Array): string {
  const text =
    typeof source === 'string' ? source : new TextDecoder('utf-8', { ignoreBOM: true }).decode(source);
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/** The directive block at the top of a Dockerfile (what `# escape=` and friends set). */
export function parseDirectiveBlock(source: string | Uint8Array): Directive[] {
  const scanner = new DirectiveScanner();
  for (const line of physicalLines(decodeSource(source))) {
    scanner.next(trimLeftSpace(trimNewline(line)));
    if (scanner.finished) break;
  }
  return scanner.parsed;
}

export interface DetectedDirective {
  /** The value up to the first space (for `syntax`, the frontend reference). */
  value: string;
  /** The whole value as written. */
  cmdline: string;
  line: number;
}

/**
 * The looser search BuildKit uses to pick a frontend: a `#!` first line is skipped, `//` works
 * as the comment prefix and a whole-file JSON object with a `syntax` key counts (syntax only).
 */
export function detectDirective(
  key: 'syntax' | 'check',
  source: string | Uint8Array,
): DetectedDirective | undefined {
  const text = decodeSource(source);
  const anyFormat = key === 'syntax';
  if (anyFormat) {
    try {
      const json: unknown = JSON.parse(text);
      if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
        const value: unknown = (json as Record<string, unknown>)[key];
        if (typeof value === 'string') return { value: firstWord(value), cmdline: value, line: 1 };
      }
    } catch {
      // not JSON: look for comment directives
    }
  }
  const prefixes = anyFormat ? ['#', '//'] : ['#'];
  for (const prefix of prefixes) {
    const pattern = new RegExp(
      `^${escapeRegExp(prefix)}[ \\t]*([a-zA-Z][a-zA-Z0-9]*)[ \\t]*=[ \\t]*(.+?)[ \\t]*$`,
    );
    const lines = physicalLines(text).map(trimNewline);
    let offset = 0;
    if (lines[0]?.startsWith('#!')) offset = 1;
    const scanner = new DirectiveScanner(pattern);
    for (let i = offset; i < lines.length; i++) {
      let directive: Directive | undefined;
      try {
        directive = scanner.next(lines[i] as string);
      } catch {
        break;
      }
      if (directive === undefined) break;
      if (directive.name === key) {
        return { value: firstWord(directive.value), cmdline: directive.value, line: i + 1 };
      }
    }
  }
  return undefined;
}

/** `docker/dockerfile:1 // comment`: the reference is the first word. */
function firstWord(value: string): string {
  const space = value.indexOf(' ');
  return space < 0 ? value : value.slice(0, space);
}

/** The frontend named by `# syntax=` (BuildKit's DetectSyntax), if any. */
export function detectSyntax(source: string | Uint8Array): DetectedDirective | undefined {
  return detectDirective('syntax', source);
}

// ---------------------------------------------------------------------------------------------
// Instruction lines

/** A failure inside one instruction line; the caller adds the location. */
class LineError extends Error {}

interface LineNode {
  keyword: string;
  original: string;
  flags: string[];
  args: string[];
  json: boolean;
  child?: LineNode;
}

/**
 * Leading `--flag` words (BuildKit's extractBuilderFlags): quotes removed, `\` escapes, a bare
 * `--` ends the flags and is dropped. Returns the rest of the line after the flags.
 */
export function extractFlags(line: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && isGoSpace(line[pos] as string)) pos++;
    if (pos >= line.length) return { flags, rest: '' };
    if (line[pos] !== '-' || line[pos + 1] !== '-') return { flags, rest: line.slice(pos) };
    let word = '';
    let quoted = false;
    let quote = '';
    for (; pos < line.length; pos++) {
      let ch = line[pos] as string;
      if (quote === '') {
        if (isGoSpace(ch)) break;
        if (ch === "'" || ch === '"') {
          quote = ch;
          quoted = true;
          continue;
        }
      } else if (ch === quote) {
        quote = '';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) {
          quote = '';
          continue;
        }
        pos++;
        ch = line[pos] as string;
      }
      word += ch;
    }
    if (word === '--') return { flags, rest: pos >= line.length ? '' : line.slice(pos) };
    if (quoted || word.length > 0) flags.push(word);
    if (pos >= line.length) return { flags, rest: '' };
  }
}

/**
 * ARG/ENV/LABEL word splitting (BuildKit's parseWords): whitespace separates words, quotes group
 * and are kept, the escape token keeps the next character (both kept).
 */
export function parseWords(rest: string, escapeToken = '\\'): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let word = '';
  let inWord = false;
  let quote = '';
  let blankOk = false;
  for (let i = 0; i < chars.length; i++) {
    let ch = chars[i] as string;
    if (!inWord) {
      if (isGoSpace(ch)) continue;
      inWord = true;
    }
    if (quote === '') {
      if (isGoSpace(ch)) {
        if (blankOk || word.length > 0) words.push(word);
        word = '';
        blankOk = false;
        inWord = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
      } else if (ch === escapeToken) {
        if (i + 1 === chars.length) continue;
        word += ch;
        ch = chars[++i] as string;
      }
      word += ch;
      continue;
    }
    if (ch === quote) quote = '';
    else if (ch === escapeToken && quote !== "'") {
      if (i + 1 === chars.length) {
        quote = '';
        continue;
      }
      word += ch;
      ch = chars[++i] as string;
    }
    word += ch;
  }
  if (inWord && (blankOk || word.length > 0)) words.push(word);
  return words;
}

/** End index (exclusive) of the JSON array starting at text[0], or -1 if it never closes. */
function jsonArrayEnd(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Exec-form arguments: a JSON array of strings, else undefined (shell form). Like Go's
 * json.Decoder, only the first JSON value is read; text after it is ignored. A valid array with
 * a non-string element is an error, not a fallback.
 */
export function parseJsonArray(rest: string): string[] | undefined {
  const text = trimLeftSpace(rest);
  if (!text.startsWith('[')) return undefined;
  const end = jsonArrayEnd(text);
  if (end < 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(0, end));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  if (!value.every((element): element is string => typeof element === 'string'))
    throw new LineError(NOT_STRING_ARRAY);
  return value;
}

function parseMaybeJson(rest: string): { args: string[]; json: boolean } {
  if (rest === '') return { args: [], json: false };
  const exec = parseJsonArray(rest);
  return exec === undefined ? { args: [rest], json: false } : { args: exec, json: true };
}

function parseMaybeJsonToList(rest: string): { args: string[]; json: boolean } {
  const exec = parseJsonArray(rest);
  if (exec !== undefined) return { args: exec, json: true };
  return { args: rest === '' ? [] : splitWhitespace(rest), json: false };
}

function parseNameValue(rest: string, keyword: string, escapeToken: string): string[] {
  const words = parseWords(rest, escapeToken);
  if (words.length === 0) return [];
  if (!(words[0] as string).includes('=')) {
    const parts = splitWhitespace(rest, 2);
    if (parts.length < 2) throw new LineError(`${keyword} must have two arguments`);
    return [parts[0] as string, parts[1] as string, ''];
  }
  const triples: string[] = [];
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 0) {
      throw new LineError(
        `Syntax error - can't find = in ${JSON.stringify(word)}. Must be of the form: name=value`,
      );
    }
    triples.push(word.slice(0, eq), word.slice(eq + 1), '=');
  }
  return triples;
}

function parseHealthcheck(rest: string): { args: string[]; json: boolean } {
  let sep = 0;
  while (sep < rest.length && !isGoSpace(rest[sep] as string)) sep++;
  if (sep === 0) return { args: [], json: false };
  let next = sep;
  while (next < rest.length && isGoSpace(rest[next] as string)) next++;
  const command = parseMaybeJson(rest.slice(next));
  return { args: [rest.slice(0, sep), ...command.args], json: command.json };
}

function parseLine(line: string, escapeToken: string): LineNode {
  const [keyword = '', afterKeyword] = splitWhitespace(trimSpace(line), 2);
  const { flags, rest: flagRest } =
    afterKeyword === undefined ? { flags: [], rest: '' } : extractFlags(afterKeyword);
  const rest = trimSpace(flagRest);
  const node: LineNode = { keyword: keyword.toLowerCase(), original: line, flags, args: [], json: false };
  switch (node.keyword) {
    case 'add':
    case 'copy':
    case 'volume':
      Object.assign(node, parseMaybeJsonToList(rest));
      break;
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell':
      Object.assign(node, parseMaybeJson(rest));
      break;
    case 'from':
    case 'expose':
      node.args = rest === '' ? [] : splitWhitespace(rest);
      break;
    case 'arg':
      node.args = parseWords(rest, escapeToken);
      break;
    case 'env':
    case 'label':
      node.args = parseNameValue(rest, node.keyword.toUpperCase(), escapeToken);
      break;
    case 'maintainer':
    case 'user':
    case 'workdir':
    case 'stopsignal':
      node.args = rest === '' ? [] : [rest];
      break;
    case 'healthcheck':
      Object.assign(node, parseHealthcheck(rest));
      break;
    case 'onbuild':
      if (rest !== '') node.child = parseLine(rest, escapeToken);
      break;
    default:
      // Unknown instructions parse; the instruction layer rejects them with a suggestion.
      node.args = [''];
  }
  return node;
}

function canContainHeredoc(node: LineNode): boolean {
  const target = node.keyword === 'onbuild' && node.child ? node.child : node;
  return HEREDOC_INSTRUCTIONS.has(target.keyword) && !target.json;
}

// ---------------------------------------------------------------------------------------------
// Heredocs

const HEREDOC_WORD = /^(\d*)<<(-?)\s*([^<]*)$/;
const heredocNameLexer = new ShellLexer('\\', { skipUnsetEnv: true });
const heredocRawNameLexer = new ShellLexer('\\', { skipUnsetEnv: true, rawQuotes: true });
const heredocLineLexer = new ShellLexer('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
const noVariables = (): string | undefined => undefined;

function countQuotes(text: string): number {
  let count = 0;
  for (const ch of text) if (ch === '"' || ch === "'") count++;
  return count;
}

/**
 * One word as a heredoc opener (`<<EOF`, `3<<-'EOF'`, `<< EOF`); undefined when it is not one.
 * Throws (plain message) on an unterminated quote in the delimiter.
 */
export function parseHeredocWord(word: string): Omit<Heredoc, 'content'> | undefined {
  const match = HEREDOC_WORD.exec(word);
  if (match === null) return undefined;
  const rest = match[3] as string;
  if (rest === '') return undefined;
  let words: string[];
  let rawWords: string[];
  try {
    words = heredocNameLexer.processWords(rest, noVariables);
    if (words.length !== 1) return undefined;
    rawWords = heredocRawNameLexer.processWords(rest, noVariables);
  } catch (err) {
    throw new LineError(err instanceof Error ? err.message : String(err));
  }
  const name = words[0] as string;
  const raw = rawWords[0] ?? '';
  return {
    name,
    // Quotes that survive only in the raw reading mean part of the delimiter was quoted.
    expand: countQuotes(name) === countQuotes(raw),
    chomp: match[2] === '-',
    fileDescriptor: match[1] === '' ? 0 : Number(match[1]),
  };
}

/** The heredoc openers on an instruction line, in order. */
export function heredocsFromLine(line: string): Array<Omit<Heredoc, 'content'>> {
  let words: string[];
  try {
    words = heredocLineLexer.processWords(line, noVariables);
  } catch {
    return [];
  }
  const heredocs: Array<Omit<Heredoc, 'content'>> = [];
  for (let i = 0; i < words.length; i++) {
    let word = words[i] as string;
    // `<< EOF`: the delimiter is the next word (but `<<- EOF` is not a heredoc).
    if (/^\d*<<$/.test(word) && i + 1 < words.length) word = `${word} ${words[++i] as string}`;
    const heredoc = parseHeredocWord(word);
    if (heredoc) heredocs.push(heredoc);
  }
  return heredocs;
}

/** `<<-` bodies: leading tabs removed from every line. */
export function chompHeredocContent(content: string): string {
  return content.replace(/^\t+/gm, '');
}

// ---------------------------------------------------------------------------------------------
// The file

function toInstructionNode(
  line: LineNode,
  range: SourceRange,
  comments: string[],
  heredocs: Heredoc[],
): InstructionNode {
  const node: InstructionNode = {
    keyword: line.keyword,
    original: line.original,
    flags: line.flags,
    args: line.args,
    json: line.json,
    heredocs,
    range,
    comments,
  };
  if (line.child) node.child = toInstructionNode(line.child, range, [], []);
  return node;
}

/** Parses a Dockerfile into instruction nodes; errors are DockerfileErrors with positions. */
export function parseDockerfile(source: string | Uint8Array, options: { file?: string } = {}): ParseResult {
  const file = options.file ?? 'Dockerfile';
  const lines = physicalLines(decodeSource(source));
  const fail = (line: number, column: number, reason: string): never => {
    throw dockerfileError(file, { line, column }, reason);
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length >= MAX_LINE_BYTES / 4 && Buffer.byteLength(trimNewline(line)) >= MAX_LINE_BYTES) {
      fail(i + 1, 1, `dockerfile line greater than max allowed size of ${MAX_LINE_BYTES - 1}`);
    }
  }

  const directives = new DirectiveScanner();
  let escapeToken = '\\';
  let continuation = /(^|[^\\])\\[ \t]*$/;
  /** Strips the line-continuation escape; reports whether the instruction goes on. */
  const trimContinuation = (text: string): { text: string; continues: boolean } => {
    const match = continuation.exec(text);
    if (match === null) return { text, continues: false };
    return { text: text.slice(0, match.index) + (match[1] as string), continues: true };
  };
  /** Comment removal plus directive recognition, as BuildKit's processLine. */
  const processLine = (raw: string, index: number, stripLeft: boolean): string => {
    let text = trimNewline(raw);
    if (stripLeft) text = trimLeftSpace(text);
    let directive: Directive | undefined;
    try {
      directive = directives.next(text);
    } catch (err) {
      return fail(index + 1, 1, (err as Error).message);
    }
    if (directive?.name === 'escape') {
      if (directive.value !== '`' && directive.value !== '\\') {
        fail(index + 1, 1, `invalid escape token '${directive.value}' does not match \` or \\`);
      }
      escapeToken = directive.value;
      const token = escapeRegExp(escapeToken);
      continuation = new RegExp(`(^|[^${token}])${token}[ \\t]*$`);
    }
    return isComment(text) ? '' : text;
  };

  const instructions: InstructionNode[] = [];
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];
  let index = 0;
  while (index < lines.length) {
    const raw = lines[index] as string;
    if (isComment(raw)) {
      const comment = trimSpace(trimLeftSpace(trimNewline(raw)).slice(1));
      comments = comment === '' ? [] : [...comments, comment];
    }
    const processed = processLine(raw, index, true);
    const startIndex = index;
    const column = trimNewline(raw).length - trimLeftSpace(trimNewline(raw)).length + 1;
    index++;
    let { text: joined, continues } = trimContinuation(processed);
    if (!continues && joined === '') continue;

    let emptyContinuation = false;
    while (continues && index < lines.length) {
      const next = lines[index] as string;
      const text = processLine(next, index, false);
      index++;
      if (isComment(next)) continue;
      if (trimLeftSpace(trimNewline(next)) === '') {
        emptyContinuation = true;
        continue;
      }
      const trimmed = trimContinuation(text);
      joined += trimmed.text;
      continues = trimmed.continues;
    }

    let lineNode: LineNode;
    try {
      lineNode = parseLine(joined, escapeToken);
    } catch (err) {
      if (err instanceof LineError) return fail(startIndex + 1, column, err.message);
      throw err;
    }
    if (emptyContinuation) {
      warnings.push({
        message: `Empty continuation line found in: ${joined}`,
        detail: 'Empty continuation lines will become errors in a future release',
        url: 'https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/',
        range: { start: { line: index, column: 1 }, end: { line: index, column: 1 } },
      });
    }

    const heredocs: Heredoc[] = [];
    if (canContainHeredoc(lineNode) && joined.includes('<<')) {
      let openers: Array<Omit<Heredoc, 'content'>>;
      try {
        openers = heredocsFromLine(joined);
      } catch (err) {
        if (err instanceof LineError) return fail(startIndex + 1, column, err.message);
        throw err;
      }
      for (const opener of openers) {
        let content = '';
        let terminated = false;
        while (index < lines.length) {
          const body = lines[index] as string;
          index++;
          let candidate = trimNewline(body);
          if (opener.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === opener.name) {
            terminated = true;
            break;
          }
          content += body;
        }
        if (!terminated) fail(startIndex + 1, column, `unterminated heredoc ${opener.name}`);
        heredocs.push({ ...opener, content });
      }
    }

    const lastLine = trimNewline(lines[index - 1] as string);
    const range: SourceRange = {
      start: { line: startIndex + 1, column },
      end: { line: index, column: lastLine.length + 1 },
    };
    instructions.push(toInstructionNode(lineNode, range, comments, heredocs));
    comments = [];
  }
  if (instructions.length === 0) fail(Math.max(lines.length, 1), 1, 'file with no instructions');
  return { instructions, directives: directivesOf(directives.parsed), escapeToken, warnings };
}
