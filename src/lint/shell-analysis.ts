/**
 * Just enough of a POSIX shell reader to reason about RUN scripts: the script is cut into simple
 * commands at `&&`, `||`, `;`, `|`, `&` and newlines, each command into words with quotes
 * removed. Substitutions (`$(…)`, backticks) stay inside their word: rules look at the commands
 * a script runs, not at what it computes. Leading `VAR=value` assignments are set aside so that
 * `DEBIAN_FRONTEND=noninteractive apt-get install` is an apt-get command.
 */

export interface ShellWord {
  /** As written, quotes included. */
  raw: string;
  /** Quotes and backslashes removed. */
  value: string;
}

export type Separator = '&&' | '||' | ';' | '|' | '&' | 'newline' | 'end';

export interface ShellCommand {
  /** The program (first word after assignments), e.g. `apt-get`. */
  name: string;
  /** Words after the program, quotes removed. */
  args: string[];
  words: ShellWord[];
  /** `VAR=value` words before the program. */
  assignments: string[];
  /** What ended this command. */
  separator: Separator;
  /** The command's output is piped into the next one. */
  pipedOut: boolean;
}

export interface ShellScript {
  source: string;
  commands: ShellCommand[];
  /** At least one `|` pipe (not `||`). */
  hasPipe: boolean;
}

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

/** Reads the text of a `$(…)`, `${…}` or backquote group so that operators inside are kept. */
function skipGroup(text: string, start: number): number {
  const open = text[start + 1];
  if (text[start] === '`') {
    let i = start + 1;
    while (i < text.length && text[i] !== '`') i += text[i] === '\\' ? 2 : 1;
    return i + 1;
  }
  const close = open === '(' ? ')' : '}';
  let depth = 0;
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (ch === "'" && open === '(') {
      const end = text.indexOf("'", i + 1);
      i = end < 0 ? text.length : end + 1;
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

interface Token {
  kind: 'word' | 'operator';
  word?: ShellWord;
  operator?: Separator | '(' | ')';
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let raw = '';
  let value = '';
  let inWord = false;
  /** The word after a redirection operator is its target, not an argument. */
  let dropNextWord = false;
  const flush = (): void => {
    if (inWord) {
      if (dropNextWord) dropNextWord = false;
      else tokens.push({ kind: 'word', word: { raw, value } });
    }
    raw = '';
    value = '';
    inWord = false;
  };
  while (i < text.length) {
    const ch = text[i] as string;
    const next = text[i + 1];
    if (ch === '\\') {
      if (next === '\n') {
        i += 2;
        continue;
      }
      raw += ch + (next ?? '');
      value += next ?? '';
      inWord = true;
      i += 2;
      continue;
    }
    if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      const stop = end < 0 ? text.length : end;
      raw += text.slice(i, stop + 1);
      value += text.slice(i + 1, stop);
      inWord = true;
      i = stop + 1;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      let inner = '';
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`\n'.includes(text[j + 1] as string)) {
          if (text[j + 1] !== '\n') inner += text[j + 1];
          j += 2;
          continue;
        }
        if (text[j] === '$' && (text[j + 1] === '(' || text[j + 1] === '{')) {
          const end = skipGroup(text, j);
          inner += text.slice(j, end);
          j = end;
          continue;
        }
        inner += text[j];
        j++;
      }
      raw += text.slice(i, j + 1);
      value += inner;
      inWord = true;
      i = j + 1;
      continue;
    }
    if ((ch === '$' && (next === '(' || next === '{')) || ch === '`') {
      const end = skipGroup(text, i);
      raw += text.slice(i, end);
      value += text.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if (ch === '#' && !inWord) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      flush();
      i++;
      continue;
    }
    if (ch === '\n') {
      flush();
      tokens.push({ kind: 'operator', operator: 'newline' });
      i++;
      continue;
    }
    const two = ch + (next ?? '');
    if (two === '&&' || two === '||') {
      flush();
      tokens.push({ kind: 'operator', operator: two });
      i += 2;
      continue;
    }
    if (ch === '>' || ch === '<') {
      // Redirections belong to the command; `2>&1` and `>|` must not read as separators.
      if (/^\d+$/.test(raw)) {
        raw = '';
        value = '';
        inWord = false;
      }
      flush();
      dropNextWord = true;
      let j = i + 1;
      if (text[j] === '&' || text[j] === '>' || text[j] === '|' || text[j] === '<') j++;
      if (ch === '<' && text[j] === '<') j++;
      i = j;
      continue;
    }
    if (ch === ';' || ch === '|' || ch === '&' || ch === '(' || ch === ')') {
      flush();
      if (ch === ';' && next === ';') i++;
      tokens.push({ kind: 'operator', operator: ch as Separator | '(' | ')' });
      i++;
      continue;
    }
    raw += ch;
    value += ch;
    inWord = true;
    i++;
  }
  flush();
  return tokens;
}

/** Reserved words that open or close compound commands: the command is the next word. */
const COMPOUND_WORDS = new Set([
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
]);

export function parseShell(source: string): ShellScript {
  const commands: ShellCommand[] = [];
  let words: ShellWord[] = [];
  let hasPipe = false;
  const finish = (separator: Separator): void => {
    let start = 0;
    while (start < words.length && COMPOUND_WORDS.has((words[start] as ShellWord).raw)) start++;
    const assignments: string[] = [];
    while (start < words.length && ASSIGNMENT.test((words[start] as ShellWord).raw)) {
      assignments.push((words[start] as ShellWord).value);
      start++;
    }
    const rest = words.slice(start);
    words = [];
    if (rest.length === 0) {
      if (separator === '|' && commands.length > 0) hasPipe = true;
      return;
    }
    const first = rest[0] as ShellWord;
    if (first.raw === 'for' || first.raw === 'case') return;
    if (separator === '|') hasPipe = true;
    commands.push({
      name: first.value,
      args: rest.slice(1).map((word) => word.value),
      words: rest.slice(1),
      assignments,
      separator,
      pipedOut: separator === '|',
    });
  };
  for (const token of tokenize(source)) {
    if (token.kind === 'word') words.push(token.word as ShellWord);
    else if (token.operator === '(' || token.operator === ')') finish(';');
    else finish(token.operator as Separator);
  }
  finish('end');
  return { source, commands, hasPipe };
}

// ---------------------------------------------------------------------------------------------
// Questions rules ask about commands

/** `-yq` counts as `-y` and `-q`; `--yes` as `yes`. */
export function flagNames(args: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const arg of args) {
    if (arg === '--') break;
    if (arg.startsWith('--')) names.add(arg.slice(2).split('=')[0] as string);
    else if (arg.startsWith('-') && arg.length > 1) for (const ch of arg.slice(1)) names.add(ch);
  }
  return names;
}

export function hasAnyFlag(command: ShellCommand, flags: readonly string[]): boolean {
  const names = flagNames(command.args);
  return flags.some((flag) => names.has(flag));
}

/** Arguments that are not flags; `valueFlags` name flags that consume the following word. */
export function positionalArgs(command: ShellCommand, valueFlags: readonly string[] = []): string[] {
  const result: string[] = [];
  const args = command.args;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      result.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      const name = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
      if (!arg.includes('=') && valueFlags.includes(name)) i++;
      continue;
    }
    result.push(arg);
  }
  return result;
}

/** The command is `name` (or a versioned variant such as `pip3`, when `match` is a RegExp). */
export function isCommand(command: ShellCommand, match: string | RegExp): boolean {
  const base = command.name.split('/').at(-1) ?? command.name;
  return typeof match === 'string' ? base === match : match.test(base);
}

/** `apt-get install …`: the first positional argument is the subcommand. */
export function hasSubcommand(
  command: ShellCommand,
  subcommands: readonly string[],
  valueFlags: readonly string[] = [],
): boolean {
  const sub = positionalArgs(command, valueFlags)[0];
  return sub !== undefined && subcommands.includes(sub);
}

/** Positional arguments after the subcommand (the packages of `apt-get install a b`). */
export function subcommandArgs(command: ShellCommand, valueFlags: readonly string[] = []): string[] {
  return positionalArgs(command, valueFlags).slice(1);
}
