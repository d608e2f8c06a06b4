/**
 * A few of ShellCheck's checks, the ones hadolint's users meet on almost every RUN line, so that
 * strata reports them without shelling out to ShellCheck (hadolint links it in):
 *
 * - SC2086 (info): an unquoted variable is split into words and globbed.
 * - SC2154 (warning): a lower-case variable is used but never assigned.
 * - SC2153 (info): an upper-case variable is never assigned but one with a close name is.
 * - SC3028 (sh/dash): a variable only bash sets (RANDOM, EUID…).
 * - SC3046 (sh/dash): `source` instead of `.`.
 *
 * Codes and message texts are ShellCheck's, so `# hadolint ignore=SC2086` and configs written
 * for hadolint carry over. The reader below knows what these checks need: quoting, parameter
 * expansions, command substitutions, arithmetic, heredocs, and the places where words are not
 * split (assignments, `[[ ]]`, `case`, `for` lists, here-strings, redirection targets). Like
 * hadolint, callers pass the variables the Dockerfile defines (ARG, ENV, the proxy variables):
 * they count as assigned, with values free of spaces.
 */

export type ShellDialect = 'sh' | 'dash' | 'bash' | 'ksh';

export type ShellcheckSeverity = 'error' | 'warning' | 'info' | 'style';

export interface ShellcheckComment {
  /** `SC2086`. */
  code: string;
  severity: ShellcheckSeverity;
  message: string;
}

export interface ShellcheckOptions {
  dialect: ShellDialect;
  /** Variables set before the script runs (ARG/ENV names): assigned, without spaces. */
  defined?: Iterable<string>;
}

/**
 * The dialect ShellCheck would check for a shell program (`/bin/bash`, `ash`, …); undefined for
 * shells it does not know (PowerShell, cmd, zsh…), which are not checked at all.
 */
export function shellDialect(program: string | undefined): ShellDialect | undefined {
  if (program === undefined) return 'sh';
  const name = (program.split(/[\\/]/).at(-1) ?? program).toLowerCase();
  if (name === 'sh') return 'sh';
  if (name === 'bash') return 'bash';
  // ShellCheck checks ash (and busybox's shell) as dash.
  if (name === 'dash' || name === 'ash' || name === 'busybox') return 'dash';
  if (name === 'ksh' || name === 'mksh' || name === 'ksh93' || name === 'pdksh') return 'ksh';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading script text

interface VarPart {
  kind: 'var';
  name: string;
  /** `${#name}`: the length, a number. */
  length: boolean;
  /** `${name:-…}`-style operator (`:-`, `+`, `%%`…), empty for a plain reference. */
  operator: string;
  /** The word after the operator, read for the references it holds. */
  inner: Part[];
  /** `${name[@]}` / `${name[*]}`: every element of an array. */
  allElements: boolean;
}

type Part =
  | { kind: 'literal'; text: string }
  | { kind: 'single'; text: string }
  | { kind: 'double'; parts: Part[] }
  | VarPart
  | { kind: 'substitution'; script: string }
  | { kind: 'arithmetic'; text: string };

interface Word {
  parts: Part[];
  /** The word as written. */
  raw: string;
}

type Token =
  | { type: 'word'; word: Word }
  | { type: 'op'; op: string }
  | { type: 'redirect'; op: string; target?: Word }
  | { type: 'heredoc'; parts: Part[] };

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const SPECIAL_PARAMETERS = '@*#?-$!0123456789';

/** The index after the group opened at `start` (`(`…`)` or `{`…`}`), quotes respected. */
function groupEnd(text: string, start: number, open: string, close: string): number {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (ch === "'" && open === '(') {
      const end = text.indexOf("'", i + 1);
      i = end < 0 ? text.length : end + 1;
      continue;
    }
    if (ch === '"') {
      i = doubleQuoteEnd(text, i);
      continue;
    }
    if (ch === '`') {
      i = backquoteEnd(text, i);
      continue;
    }
    if (ch === open) depth++;
    else if (ch === close) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return text.length;
}

function doubleQuoteEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') {
    if (text[i] === '\\') i += 2;
    else if (text[i] === '$' && text[i + 1] === '(') i = groupEnd(text, i + 1, '(', ')');
    else if (text[i] === '$' && text[i + 1] === '{') i = groupEnd(text, i + 1, '{', '}');
    else if (text[i] === '`') i = backquoteEnd(text, i);
    else i++;
  }
  return i + 1;
}

function backquoteEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '`') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** Reads one `$…` expansion at `start`; returns the part and the index after it. */
function readDollar(text: string, start: number): { part: Part; end: number } {
  const next = text[start + 1];
  if (next === '(' && text[start + 2] === '(') {
    const end = groupEnd(text, start + 1, '(', ')');
    return { part: { kind: 'arithmetic', text: text.slice(start + 3, end - 2) }, end };
  }
  if (next === '(') {
    const end = groupEnd(text, start + 1, '(', ')');
    return { part: { kind: 'substitution', script: text.slice(start + 2, end - 1) }, end };
  }
  if (next === '{') {
    const end = groupEnd(text, start + 1, '{', '}');
    return { part: braced(text.slice(start + 2, end - 1)), end };
  }
  if (next === "'") {
    let i = start + 2;
    while (i < text.length && text[i] !== "'") i += text[i] === '\\' ? 2 : 1;
    return { part: { kind: 'single', text: text.slice(start + 2, i) }, end: i + 1 };
  }
  if (next === '"') {
    const end = doubleQuoteEnd(text, start + 1);
    return { part: { kind: 'double', parts: readDouble(text.slice(start + 2, end - 1)) }, end };
  }
  if (next !== undefined && NAME_START.test(next)) {
    let i = start + 1;
    while (i < text.length && NAME_CHAR.test(text[i] as string)) i++;
    return { part: plainVar(text.slice(start + 1, i)), end: i };
  }
  if (next !== undefined && SPECIAL_PARAMETERS.includes(next)) {
    return { part: plainVar(next), end: start + 2 };
  }
  return { part: { kind: 'literal', text: '$' }, end: start + 1 };
}

function plainVar(name: string): VarPart {
  return { kind: 'var', name, length: false, operator: '', inner: [], allElements: false };
}

/** The inside of `${…}`. */
function braced(body: string): VarPart {
  let i = 0;
  let length = false;
  if (body[0] === '#' && body.length > 1 && body[1] !== '}') {
    length = true;
    i = 1;
  } else if (body[0] === '!') {
    // `${!name}` (indirection) and `${!prefix*}`: the name read is not a plain reference.
    return { kind: 'var', name: '', length: false, operator: '!', inner: [], allElements: false };
  }
  let name: string;
  if (NAME_START.test(body[i] ?? '')) {
    const begin = i;
    while (i < body.length && NAME_CHAR.test(body[i] as string)) i++;
    name = body.slice(begin, i);
  } else {
    name = body[i] ?? '';
    i++;
  }
  let allElements = false;
  if (body[i] === '[') {
    const close = body.indexOf(']', i);
    const index = body.slice(i + 1, close < 0 ? body.length : close);
    allElements = index === '@' || index === '*';
    i = close < 0 ? body.length : close + 1;
  }
  const rest = body.slice(i);
  const operator = /^(:[-=?+]|[-=?+]|##?|%%?|\/\/?|\^\^?|,,?|:)/.exec(rest)?.[0] ?? '';
  return {
    kind: 'var',
    name,
    length,
    operator,
    inner: readOperand(rest.slice(operator.length)),
    allElements,
  };
}

/** The word after a `${name…}` operator: quotes in it group, as in a word of their own. */
function readOperand(text: string): Part[] {
  const parts: Part[] = [];
  let i = 0;
  let plain = '';
  const flush = (): void => {
    if (plain !== '') parts.push(...readDouble(plain));
    plain = '';
  };
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '\\') {
      plain += text.slice(i, i + 2);
      i += 2;
    } else if (ch === "'") {
      flush();
      const end = text.indexOf("'", i + 1);
      const stop = end < 0 ? text.length : end;
      parts.push({ kind: 'single', text: text.slice(i + 1, stop) });
      i = stop + 1;
    } else if (ch === '"') {
      flush();
      const end = doubleQuoteEnd(text, i);
      parts.push({ kind: 'double', parts: readDouble(text.slice(i + 1, end - 1)) });
      i = end;
    } else {
      plain += ch;
      i++;
    }
  }
  flush();
  return parts;
}

/** Parts of text read as inside double quotes (heredoc bodies, `${x:-…}` words). */
function readDouble(text: string): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  const flush = (): void => {
    if (literal !== '') parts.push({ kind: 'literal', text: literal });
    literal = '';
  };
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '\\') {
      literal += text[i + 1] ?? '';
      i += 2;
    } else if (ch === '$') {
      flush();
      const { part, end } = readDollar(text, i);
      parts.push(part);
      i = end;
    } else if (ch === '`') {
      flush();
      const end = backquoteEnd(text, i);
      parts.push({ kind: 'substitution', script: unescapeBackquoted(text.slice(i + 1, end - 1)) });
      i = end;
    } else {
      literal += ch;
      i++;
    }
  }
  flush();
  return parts;
}

function unescapeBackquoted(text: string): string {
  return text.replace(/\\([`\\$])/g, '$1');
}

interface PendingHeredoc {
  delimiter: string;
  stripTabs: boolean;
  expand: boolean;
}

/** Cuts script text into words, operators, redirections and heredoc bodies. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const pending: PendingHeredoc[] = [];
  let parts: Part[] = [];
  let literal = '';
  let raw = '';
  let inWord = false;
  /** A redirection waiting for its target word. */
  let redirect: { op: string } | undefined;
  let i = 0;

  const flushLiteral = (): void => {
    if (literal !== '') parts.push({ kind: 'literal', text: literal });
    literal = '';
  };
  const endWord = (): void => {
    flushLiteral();
    if (inWord) {
      const word: Word = { parts, raw };
      if (redirect !== undefined) {
        tokens.push({ type: 'redirect', op: redirect.op, target: word });
        if (redirect.op === '<<' || redirect.op === '<<-') {
          const quoted = /['"\\]/.test(raw);
          pending.push({
            delimiter: raw.replace(/['"\\]/g, ''),
            stripTabs: redirect.op === '<<-',
            expand: !quoted,
          });
        }
        redirect = undefined;
      } else {
        tokens.push({ type: 'word', word });
      }
    }
    parts = [];
    raw = '';
    inWord = false;
  };
  const readHeredocBodies = (): void => {
    for (const heredoc of pending.splice(0)) {
      const lines: string[] = [];
      while (i < text.length) {
        const newline = text.indexOf('\n', i);
        const line = text.slice(i, newline < 0 ? text.length : newline);
        i = newline < 0 ? text.length : newline + 1;
        const compared = heredoc.stripTabs ? line.replace(/^\t+/, '') : line;
        if (compared === heredoc.delimiter) break;
        lines.push(compared);
      }
      const body = lines.join('\n');
      tokens.push({
        type: 'heredoc',
        parts: heredoc.expand ? readDouble(body) : [{ kind: 'single', text: body }],
      });
    }
  };

  while (i < text.length) {
    const ch = text[i] as string;
    const next = text[i + 1];
    if (ch === '\\') {
      if (next === '\n') {
        i += 2;
        continue;
      }
      literal += next ?? '';
      raw += ch + (next ?? '');
      inWord = true;
      i += 2;
      continue;
    }
    if (ch === "'") {
      flushLiteral();
      const end = text.indexOf("'", i + 1);
      const stop = end < 0 ? text.length : end;
      parts.push({ kind: 'single', text: text.slice(i + 1, stop) });
      raw += text.slice(i, stop + 1);
      inWord = true;
      i = stop + 1;
      continue;
    }
    if (ch === '"') {
      flushLiteral();
      const end = doubleQuoteEnd(text, i);
      parts.push({ kind: 'double', parts: readDouble(text.slice(i + 1, end - 1)) });
      raw += text.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if (ch === '$') {
      flushLiteral();
      const { part, end } = readDollar(text, i);
      parts.push(part);
      raw += text.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if (ch === '`') {
      flushLiteral();
      const end = backquoteEnd(text, i);
      parts.push({ kind: 'substitution', script: unescapeBackquoted(text.slice(i + 1, end - 1)) });
      raw += text.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if ((ch === '<' || ch === '>') && next === '(' && !inWord) {
      // bash process substitution: a command list whose output is a file name.
      const end = groupEnd(text, i + 1, '(', ')');
      parts.push({ kind: 'substitution', script: text.slice(i + 2, end - 1) });
      raw += text.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if (ch === '#' && !inWord) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      endWord();
      i++;
      continue;
    }
    if (ch === '\n') {
      endWord();
      tokens.push({ type: 'op', op: 'newline' });
      i++;
      readHeredocBodies();
      continue;
    }
    if (ch === '<' || ch === '>' || (ch === '&' && next === '>')) {
      // `2>&1`: the digits before the operator name a file descriptor, not a word.
      if (/^\d+$/.test(raw) && parts.every((part) => part.kind === 'literal')) {
        parts = [];
        literal = '';
        raw = '';
        inWord = false;
      }
      endWord();
      const op = /^(<<<|<<-|<<|<>|<&|>>|>&|>\||&>>|&>|<|>)/.exec(text.slice(i))?.[0] ?? ch;
      i += op.length;
      // `>&2`, `<&-`: a descriptor, nothing to read.
      if ((op === '>&' || op === '<&') && /^[\d-]/.test(text[i] ?? '')) {
        while (i < text.length && /[\d-]/.test(text[i] as string)) i++;
        tokens.push({ type: 'redirect', op });
        continue;
      }
      redirect = { op };
      continue;
    }
    const two = ch + (next ?? '');
    if (two === '&&' || two === '||' || two === ';;' || two === ';&') {
      endWord();
      tokens.push({ type: 'op', op: two });
      i += 2;
      continue;
    }
    if (ch === ';' || ch === '|' || ch === '&' || ch === '(' || ch === ')') {
      endWord();
      tokens.push({ type: 'op', op: ch });
      i++;
      continue;
    }
    literal += ch;
    raw += ch;
    inWord = true;
    i++;
  }
  endWord();
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// What a script does with variables

interface Reference {
  name: string;
  /** Unquoted where the shell splits words: SC2086 applies if the value can hold spaces. */
  split: boolean;
  /** `${name:-…}` and friends: an unset variable is expected. */
  guarded: boolean;
  /** `${#name}`: a number. */
  length: boolean;
  /** `${name:+…}` whose alternative is quoted: what is substituted is quoted. */
  quotedAlternative: boolean;
}

interface Assignment {
  name: string;
  /** Parts of the value; undefined when the value is unknown (read, for over a glob…). */
  value?: Part[];
}

class ScriptFacts {
  readonly references: Reference[] = [];
  readonly assignments: Assignment[] = [];
  readonly commands: string[] = [];
}

/** Words of `declare`-like builtins are assignments, not split. */
const DECLARATIONS = new Set(['export', 'local', 'declare', 'typeset', 'readonly']);
const RESERVED = new Set([
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'do',
  'done',
  'while',
  'until',
  '{',
  '}',
  '!',
  'time',
]);
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=/;
/** `read` flags that take a value. */
const READ_VALUE_FLAGS = new Set(['a', 'd', 'i', 'n', 'N', 'p', 't', 'u']);

function literalText(word: Word): string | undefined {
  let text = '';
  for (const part of word.parts) {
    if (part.kind === 'literal' || part.kind === 'single') text += part.text;
    else if (part.kind === 'double' && part.parts.every((inner) => inner.kind === 'literal'))
      text += part.parts.map((inner) => (inner as { text: string }).text).join('');
    else return undefined;
  }
  return text;
}

/** Records the references in parts; `split` when they stand unquoted in a splitting context. */
function collectParts(facts: ScriptFacts, parts: readonly Part[], split: boolean): void {
  for (const part of parts) {
    switch (part.kind) {
      case 'double':
        collectParts(facts, part.parts, false);
        break;
      case 'var': {
        if (part.name !== '') {
          const alternative = part.operator === '+' || part.operator === ':+';
          facts.references.push({
            name: part.name,
            split: split && !part.allElements,
            guarded: part.operator !== '' && /^:?[-=?+]$/.test(part.operator),
            length: part.length,
            quotedAlternative:
              alternative &&
              part.inner.length > 0 &&
              part.inner.every((inner) => inner.kind === 'double' || inner.kind === 'single'),
          });
          if (part.operator === '=' || part.operator === ':=') {
            facts.assignments.push({ name: part.name, value: part.inner });
          }
        }
        collectParts(facts, part.inner, false);
        break;
      }
      case 'substitution':
        analyse(facts, part.script);
        break;
      case 'arithmetic':
        // `$x` inside arithmetic is a number context: referenced, never split.
        collectParts(facts, readDouble(part.text), false);
        break;
      default:
        break;
    }
  }
}

function collectWord(facts: ScriptFacts, word: Word | undefined, split: boolean): void {
  if (word !== undefined) collectParts(facts, word.parts, split);
}

/** `NAME=value` at the start of a word: records the assignment and the value's references. */
function collectAssignment(facts: ScriptFacts, word: Word): boolean {
  const match = ASSIGNMENT.exec(word.raw);
  if (match === null) return false;
  // The name and `=` are one literal prefix; the value is what follows in the parts.
  const valueParts = partsAfter(word.parts, match[0].length);
  facts.assignments.push({ name: match[1] as string, value: valueParts });
  collectParts(facts, valueParts, false);
  return true;
}

/** The parts of a word after its first `length` literal characters. */
function partsAfter(parts: readonly Part[], length: number): Part[] {
  const first = parts[0];
  if (first?.kind !== 'literal' || first.text.length < length) return [...parts];
  const rest = first.text.slice(length);
  return [...(rest === '' ? [] : [{ kind: 'literal' as const, text: rest }]), ...parts.slice(1)];
}

/** Reads a script and records its references, assignments and command names into `facts`. */
function analyse(facts: ScriptFacts, script: string): void {
  const tokens = tokenize(script);
  let i = 0;
  let atStart = true;
  let command: string | undefined;
  let args: Word[] = [];
  /** Open `case` statements: true while the next words are a pattern list. */
  const cases: boolean[] = [];

  const finishCommand = (): void => {
    if (command !== undefined) collectArguments(facts, command, args);
    command = undefined;
    args = [];
    atStart = true;
  };

  while (i < tokens.length) {
    const token = tokens[i] as Token;
    i++;
    if (token.type === 'op') {
      if (token.op === ';;' || token.op === ';&') {
        finishCommand();
        if (cases.length > 0) cases[cases.length - 1] = true;
        continue;
      }
      if (
        token.op === '(' &&
        atStart &&
        tokens[i]?.type === 'op' &&
        (tokens[i] as { op: string }).op === '('
      ) {
        // `(( … ))`: arithmetic, nothing is split.
        let depth = 0;
        while (i < tokens.length) {
          const inner = tokens[i] as Token;
          i++;
          if (inner.type === 'op' && inner.op === '(') depth++;
          else if (inner.type === 'op' && inner.op === ')') {
            if (depth === 0) break;
            depth--;
          } else if (inner.type === 'word') collectWord(facts, inner.word, false);
        }
        if (tokens[i]?.type === 'op' && (tokens[i] as { op: string }).op === ')') i++;
        continue;
      }
      finishCommand();
      continue;
    }
    if (token.type === 'redirect') {
      // Targets are not split (bash refuses an ambiguous redirect); here-strings are not either.
      collectWord(facts, token.target, false);
      continue;
    }
    if (token.type === 'heredoc') {
      collectParts(facts, token.parts, false);
      continue;
    }
    const word = token.word;
    if (atStart) {
      const inCase = cases.length > 0;
      if (inCase && cases[cases.length - 1] === true) {
        if (word.raw === 'esac') {
          cases.pop();
          continue;
        }
        // A pattern list up to `)`: patterns are matched, not split.
        collectWord(facts, word, false);
        while (i < tokens.length) {
          const inner = tokens[i] as Token;
          i++;
          if (inner.type === 'op' && inner.op === ')') break;
          if (inner.type === 'word') collectWord(facts, inner.word, false);
        }
        cases[cases.length - 1] = false;
        continue;
      }
      if (word.raw === 'esac' && inCase) {
        cases.pop();
        continue;
      }
      if (RESERVED.has(word.raw)) continue;
      if (word.raw === 'case') {
        collectWord(
          facts,
          tokens[i]?.type === 'word' ? (tokens[i] as { word: Word }).word : undefined,
          false,
        );
        i++;
        if (tokens[i]?.type === 'word' && (tokens[i] as { word: Word }).word.raw === 'in') i++;
        cases.push(true);
        continue;
      }
      if (word.raw === 'for' || word.raw === 'select') {
        const variable = tokens[i]?.type === 'word' ? (tokens[i] as { word: Word }).word.raw : undefined;
        i++;
        const values: Word[] = [];
        if (tokens[i]?.type === 'word' && (tokens[i] as { word: Word }).word.raw === 'in') {
          i++;
          while (tokens[i]?.type === 'word') {
            values.push((tokens[i] as { word: Word }).word);
            i++;
          }
        }
        for (const value of values) collectWord(facts, value, false);
        if (variable !== undefined && ASSIGNMENT.test(`${variable}=`)) {
          // Each value is one word; the loop variable can hold a space only where a value can.
          const known = values.every((value) => {
            const text = literalText(value);
            return text !== undefined && !/[\s*?[]/.test(text);
          });
          facts.assignments.push({
            name: variable,
            ...(known
              ? { value: [{ kind: 'literal', text: values.map((v) => literalText(v)).join('') }] }
              : {}),
          });
        }
        continue;
      }
      if (word.raw === '[[') {
        while (i < tokens.length) {
          const inner = tokens[i] as Token;
          if (
            inner.type === 'op' &&
            (inner.op === '&&' || inner.op === '||' || inner.op === '(' || inner.op === ')')
          ) {
            i++;
            continue;
          }
          if (inner.type !== 'word') break;
          i++;
          if (inner.word.raw === ']]') break;
          collectWord(facts, inner.word, false);
        }
        atStart = false;
        command = '[[';
        continue;
      }
      if (collectAssignment(facts, word)) {
        // `a=(x y)`: an array; its elements are not split.
        if (word.raw.endsWith('=') && tokens[i]?.type === 'op' && (tokens[i] as { op: string }).op === '(') {
          i++;
          while (
            i < tokens.length &&
            !(tokens[i]?.type === 'op' && (tokens[i] as { op: string }).op === ')')
          ) {
            const inner = tokens[i] as Token;
            if (inner.type === 'word') collectWord(facts, inner.word, false);
            i++;
          }
          i++;
          facts.assignments.push({ name: (ASSIGNMENT.exec(word.raw) as RegExpExecArray)[1] as string });
        }
        continue;
      }
      // `name() { … }`: a function definition, not a command.
      if (
        tokens[i]?.type === 'op' &&
        (tokens[i] as { op: string }).op === '(' &&
        tokens[i + 1]?.type === 'op'
      ) {
        i += 2;
        continue;
      }
      // The command word itself is not checked for splitting (`$SUDO apt-get …` is an idiom).
      collectWord(facts, word, false);
      command = literalText(word) ?? word.raw;
      facts.commands.push(command);
      atStart = false;
      continue;
    }
    args.push(word);
  }
  finishCommand();
}

function collectArguments(facts: ScriptFacts, command: string, args: readonly Word[]): void {
  const name = command.split('/').at(-1) ?? command;
  if (DECLARATIONS.has(name)) {
    for (const arg of args) {
      if (arg.raw.startsWith('-') || arg.raw.startsWith('+')) continue;
      if (collectAssignment(facts, arg)) continue;
      collectWord(facts, arg, false);
      if (ASSIGNMENT.test(`${arg.raw}=`)) facts.assignments.push({ name: arg.raw, value: [] });
    }
    return;
  }
  if (name === 'read') {
    for (let index = 0; index < args.length; index++) {
      const arg = (args[index] as Word).raw;
      if (arg.startsWith('-')) {
        // In a cluster (`-rp`) only the last letter can take the next word as its value.
        const last = arg.at(-1) ?? '';
        if (READ_VALUE_FLAGS.has(last)) {
          const value = args[index + 1]?.raw;
          if (last === 'a' && value !== undefined) facts.assignments.push({ name: value });
          index++;
        }
        continue;
      }
      facts.assignments.push({ name: arg });
    }
    return;
  }
  if (name === 'getopts' && args[1] !== undefined) {
    facts.assignments.push({ name: args[1].raw, value: [{ kind: 'literal', text: 'x' }] });
  } else if ((name === 'mapfile' || name === 'readarray') && args.length > 0) {
    const array = args.filter((arg) => !arg.raw.startsWith('-')).at(-1)?.raw ?? 'MAPFILE';
    facts.assignments.push({ name: array });
  } else if (name === 'printf') {
    const v = args.findIndex((arg) => arg.raw === '-v');
    const target = v >= 0 ? args[v + 1]?.raw : undefined;
    if (target !== undefined) facts.assignments.push({ name: target });
  } else if (name === 'unset') {
    return;
  } else if (name === 'let') {
    for (const arg of args) collectWord(facts, arg, false);
    return;
  }
  for (const arg of args) collectWord(facts, arg, true);
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Variables whose values never hold spaces (numbers, flags), whoever set them. */
const WITHOUT_SPACES = new Set([
  '#',
  '?',
  '$',
  '!',
  '-',
  'BASHPID',
  'BASH_ARGC',
  'BASH_LINENO',
  'BASH_SUBSHELL',
  'COLUMNS',
  'EPOCHREALTIME',
  'EPOCHSECONDS',
  'EUID',
  'HISTFILESIZE',
  'HISTSIZE',
  'LINENO',
  'LINES',
  'OPTIND',
  'PPID',
  'RANDOM',
  'SECONDS',
  'SHELLOPTS',
  'SHLVL',
  'SRANDOM',
  'UID',
]);

/** Variables the shell or the environment sets: never reported as unassigned. */
const ENVIRONMENT = new Set([
  'HOME',
  'PATH',
  'PWD',
  'OLDPWD',
  'USER',
  'LOGNAME',
  'SHELL',
  'TERM',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TMPDIR',
  'TZ',
  'HOSTNAME',
  'IFS',
  'PS1',
  'PS2',
  'PS4',
  'OPTARG',
  'REPLY',
  'MAPFILE',
  'PIPESTATUS',
  'FUNCNAME',
  'GROUPS',
  'DIRSTACK',
  'HOSTTYPE',
  'MACHTYPE',
  'OSTYPE',
  'BASH',
  'BASHOPTS',
  'BASH_SOURCE',
  'BASH_VERSION',
  'BASH_VERSINFO',
  'BASH_REMATCH',
  'BASH_COMMAND',
  'COMP_WORDS',
  'COMP_CWORD',
  ...WITHOUT_SPACES,
]);

/** Variables only bash (and ksh) set: unset under POSIX sh and dash. */
const BASH_ONLY = new Set([
  'BASH',
  'BASHOPTS',
  'BASHPID',
  'BASH_ALIASES',
  'BASH_ARGC',
  'BASH_ARGV',
  'BASH_CMDS',
  'BASH_COMMAND',
  'BASH_LINENO',
  'BASH_REMATCH',
  'BASH_SOURCE',
  'BASH_SUBSHELL',
  'BASH_VERSINFO',
  'BASH_VERSION',
  'DIRSTACK',
  'EPOCHREALTIME',
  'EPOCHSECONDS',
  'EUID',
  'FUNCNAME',
  'GROUPS',
  'HOSTTYPE',
  'MACHTYPE',
  'OSTYPE',
  'PIPESTATUS',
  'RANDOM',
  'SECONDS',
  'SHELLOPTS',
  'SRANDOM',
  'UID',
]);

/** Restricted edit distance (a swap of neighbours is one edit). */
function distance(a: string, b: string): number {
  const previous2: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, (previous2[j - 2] as number) + 1);
      row.push(best);
    }
    previous2.splice(0, previous2.length, ...previous);
    previous = row;
  }
  return previous[b.length] as number;
}

/** The assigned name `name` is most likely a typo of, if one is close enough. */
function closeName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best === undefined) return undefined;
  // One edit in a name of more than three letters, two in a long one: a typo, not a cousin.
  const ok = (best.length > 3 && bestDistance <= 1) || (best.length > 7 && bestDistance <= 2);
  return ok ? best : undefined;
}

const isVariableName = (name: string): boolean => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);

/** Which assigned variables may hold spaces (ShellCheck's reason for SC2086). */
function spacefulVariables(facts: ScriptFacts, defined: ReadonlySet<string>): (name: string) => boolean {
  const assigned = new Set(facts.assignments.map((assignment) => assignment.name));
  const spaceful = new Set<string>();
  const partMaySplit = (part: Part): boolean => {
    switch (part.kind) {
      case 'literal':
      case 'single':
        return /[\s*?[]/.test(part.text);
      case 'double':
        return part.parts.some(partMaySplit);
      case 'var':
        return !part.length && mayHoldSpaces(part.name);
      case 'arithmetic':
        return false;
      default:
        return true;
    }
  };
  const mayHoldSpaces = (name: string): boolean => {
    if (WITHOUT_SPACES.has(name)) return false;
    if (spaceful.has(name)) return true;
    return !assigned.has(name) && !defined.has(name);
  };
  // Values depend on other variables: settle the set by repeating until nothing changes.
  let changed = true;
  while (changed) {
    changed = false;
    for (const assignment of facts.assignments) {
      if (spaceful.has(assignment.name)) continue;
      if (assignment.value === undefined || assignment.value.some(partMaySplit)) {
        spaceful.add(assignment.name);
        changed = true;
      }
    }
  }
  return mayHoldSpaces;
}

/** ShellCheck's comments on one script (each distinct comment once, as hadolint reports them). */
export function shellcheck(script: string, options: ShellcheckOptions): ShellcheckComment[] {
  const facts = new ScriptFacts();
  analyse(facts, script);
  const defined = new Set(options.defined ?? []);
  const assigned = new Set([...facts.assignments.map((assignment) => assignment.name), ...defined]);
  const mayHoldSpaces = spacefulVariables(facts, defined);
  const posix = options.dialect === 'sh' || options.dialect === 'dash';
  const comments: ShellcheckComment[] = [];
  const add = (comment: ShellcheckComment): void => {
    if (!comments.some((other) => other.code === comment.code && other.message === comment.message))
      comments.push(comment);
  };
  // ShellCheck words its portability comments per dialect, and makes them errors for dash.
  const notPortable = (code: string, what: string): ShellcheckComment =>
    options.dialect === 'dash'
      ? { code, severity: 'error', message: `In dash, ${what} not supported.` }
      : { code, severity: 'warning', message: `In POSIX sh, ${what} undefined.` };

  for (const reference of facts.references) {
    const { name } = reference;
    if (posix && BASH_ONLY.has(name) && !assigned.has(name)) {
      add(notPortable('SC3028', `${name} is`));
    }
    if (
      reference.split &&
      !reference.length &&
      !reference.quotedAlternative &&
      name !== '@' &&
      name !== '*' &&
      mayHoldSpaces(name)
    ) {
      add({
        code: 'SC2086',
        severity: 'info',
        message: 'Double quote to prevent globbing and word splitting.',
      });
    }
    if (!isVariableName(name) || reference.guarded || assigned.has(name) || ENVIRONMENT.has(name)) continue;
    if (/[a-z]/.test(name)) {
      const match = closeName(name, assigned);
      add({
        code: 'SC2154',
        severity: 'warning',
        message: `${name} is referenced but not assigned${match === undefined ? '' : ` (did you mean '${match}'?)`}.`,
      });
    } else {
      const match = closeName(name, assigned);
      if (match !== undefined) {
        add({
          code: 'SC2153',
          severity: 'info',
          message: `Possible misspelling: ${name} may not be assigned. Did you mean ${match}?`,
        });
      }
    }
  }
  if (posix && facts.commands.includes('source')) {
    add(notPortable('SC3046', `'source' in place of '.' is`));
  }
  return comments;
}
