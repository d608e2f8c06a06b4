/**
 * In-file switches: hadolint's `# hadolint ignore=…` (next instruction), `global ignore=…`
 * (whole file), `stage ignore=…` (the stage the next FROM opens); BuildKit's `# check=` directive
 * at the top of the file and `# check=skip=…` comments directly above one instruction.
 */
import type { LintInstruction, LintModel } from './model.js';

export interface HadolintPragmas {
  /** Rules ignored everywhere. */
  global: Set<string>;
  /** Instruction start line → rules ignored for that instruction. */
  byLine: Map<number, Set<string>>;
}

function ruleList(text: string): string[] {
  const beforeComment = text.split('#')[0] ?? '';
  return beforeComment
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
}

const RULE_CODE = /^[A-Z]{2,}[0-9]{4}$/;
const PRAGMA = /^\s*#\s*hadolint\s+(?:(global|stage)\s+)?ignore\s*=\s*(.*)$/;

export function readHadolintPragmas(model: LintModel): HadolintPragmas {
  const pragmas: HadolintPragmas = { global: new Set(), byLine: new Map() };
  const starts = model.instructions.map((instruction) => instruction.line).sort((a, b) => a - b);
  const nextInstruction = (line: number): LintInstruction | undefined =>
    model.instructions.find((instruction) => instruction.line > line && starts.includes(instruction.line));
  const ignoreAt = (line: number, rules: readonly string[]): void => {
    const set = pragmas.byLine.get(line) ?? new Set<string>();
    for (const rule of rules) set.add(rule);
    pragmas.byLine.set(line, set);
  };
  for (const [index, text] of model.lines.entries()) {
    const match = PRAGMA.exec(text);
    if (match === null) continue;
    const rules = ruleList(match[2] as string);
    // hadolint drops a pragma that names anything but rule codes, rather than half-applying it.
    if (rules.length === 0 || !rules.every((rule) => RULE_CODE.test(rule))) continue;
    const scope = match[1];
    if (scope === 'global') {
      for (const rule of rules) pragmas.global.add(rule);
      continue;
    }
    const next = nextInstruction(index + 1);
    if (next === undefined) continue;
    if (scope === 'stage') {
      const stage = model.stages.find((candidate) => candidate.from.line >= next.line);
      if (stage === undefined) continue;
      ignoreAt(stage.from.line, rules);
      for (const instruction of stage.instructions) ignoreAt(instruction.line, rules);
      continue;
    }
    ignoreAt(next.line, rules);
  }
  return pragmas;
}

export interface CheckDirective {
  /** Rule names to skip; `all` skips every BuildKit check. */
  skip: Set<string>;
  error: boolean;
  /** Experimental checks switched on. */
  experimental: Set<string>;
  /**
   * What BuildKit would refuse in the value (an option without `=`, an unknown key, an `error`
   * that is not a boolean). `strata lint` ignores them; a build stops on the first.
   */
  problems: string[];
}

const GO_TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** `skip=A,B;error=true;experimental=C` (a trailing `// comment` is ignored). */
export function parseCheckDirective(value: string | undefined): CheckDirective {
  const directive: CheckDirective = { skip: new Set(), error: false, experimental: new Set(), problems: [] };
  if (value === undefined) return directive;
  const text = (value.split('//')[0] ?? '').trim();
  if (text === '') return directive;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      directive.problems.push(`invalid check option "${part}"`);
      continue;
    }
    const key = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim();
    const items = raw
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
    switch (key.toLowerCase()) {
      case 'skip':
        for (const item of items) directive.skip.add(item.toLowerCase());
        break;
      case 'experimental':
        for (const item of items) directive.experimental.add(item.toLowerCase());
        break;
      case 'error':
        if (GO_TRUE.has(raw)) directive.error = true;
        else if (!GO_FALSE.has(raw))
          directive.problems.push(`invalid check option "${part}": "${raw}" is not a boolean`);
        break;
      default:
        directive.problems.push(`invalid check option "${key}"`);
    }
  }
  return directive;
}

/**
 * The `# check=skip=…` comments directly above an instruction. Lines up to `directiveLine` are
 * the file-level directive, which the caller handles (and an override may replace).
 */
export function instructionCheckSkips(
  model: LintModel,
  instruction: LintInstruction,
  directiveLine: number,
): Set<string> {
  const skips = new Set<string>();
  for (let line = instruction.line - 1; line > directiveLine; line--) {
    const text = (model.lines[line - 1] ?? '').trim();
    if (!text.startsWith('#')) break;
    const match = /^#\s*check\s*=\s*(.*)$/i.exec(text);
    if (match) for (const rule of parseCheckDirective(match[1]).skip) skips.add(rule);
  }
  return skips;
}
