/**
 * CI mode: dive's three rules, configured as dive configures them (`.dive-ci` YAML, flags), judged
 * with dive's comparisons, and reported in dive's words, so that an existing `.dive-ci` and the
 * scripts that read dive's CI output keep working.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { StrataError, errnoCode } from '../errors.js';
import type { ImageAnalysis } from './model.js';

export type CiRuleName = 'lowestEfficiency' | 'highestWastedBytes' | 'highestUserWastedPercent';

/** In the order dive reports them (sorted by name). */
export const CI_RULE_NAMES: readonly CiRuleName[] = [
  'highestUserWastedPercent',
  'highestWastedBytes',
  'lowestEfficiency',
];

/** dive's defaults. */
export const DEFAULT_CI_RULES: Readonly<Record<CiRuleName, string>> = {
  lowestEfficiency: '0.9',
  highestWastedBytes: 'disabled',
  highestUserWastedPercent: '0.1',
};

/** A rule as configured: its threshold, or undefined when disabled. */
export interface CiRule {
  name: CiRuleName;
  threshold: number | undefined;
}

export type CiRules = Readonly<Record<CiRuleName, CiRule>>;

/** Which numbers the rules judge: dive's (the default, what `.dive-ci` files were tuned on) or strata's. */
export type CiMetrics = 'dive' | 'strata';

export interface CiRuleResult {
  name: CiRuleName;
  status: 'pass' | 'fail' | 'skip';
  /** The threshold, undefined for a disabled rule. */
  threshold: number | undefined;
  /** The value judged (a ratio, or bytes); null for a ratio dive cannot compute. */
  value: number | null;
  /** dive's message for a failure, `rule disabled` for a skipped rule, '' for a pass. */
  message: string;
}

export interface CiEvaluation {
  metrics: CiMetrics;
  pass: boolean;
  /** In dive's order (see CI_RULE_NAMES). */
  results: CiRuleResult[];
}

/** Where each key may be spelt: dive ≤ 0.12's camelCase and 0.13's kebab-case. */
const KEY_SPELLINGS: Readonly<Record<string, CiRuleName>> = {
  lowestEfficiency: 'lowestEfficiency',
  'lowest-efficiency': 'lowestEfficiency',
  'lowest-efficiency-threshold': 'lowestEfficiency',
  highestWastedBytes: 'highestWastedBytes',
  'highest-wasted-bytes': 'highestWastedBytes',
  highestUserWastedPercent: 'highestUserWastedPercent',
  'highest-user-wasted-percent': 'highestUserWastedPercent',
};

const DISABLED = new Set(['', 'disabled', 'off', 'false']);

/** Multipliers go-humanize's ParseBytes knows (SI for `kB`/`k`, IEC for `KiB`/`Ki`). */
const BYTE_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1e3],
  ['kb', 1e3],
  ['ki', 2 ** 10],
  ['kib', 2 ** 10],
  ['m', 1e6],
  ['mb', 1e6],
  ['mi', 2 ** 20],
  ['mib', 2 ** 20],
  ['g', 1e9],
  ['gb', 1e9],
  ['gi', 2 ** 30],
  ['gib', 2 ** 30],
  ['t', 1e12],
  ['tb', 1e12],
  ['ti', 2 ** 40],
  ['tib', 2 ** 40],
  ['p', 1e15],
  ['pb', 1e15],
  ['pi', 2 ** 50],
  ['pib', 2 ** 50],
  ['e', 1e18],
  ['eb', 1e18],
  ['ei', 2 ** 60],
  ['eib', 2 ** 60],
]);

/**
 * A byte count the way go-humanize's ParseBytes reads it (dive parses highestWastedBytes with it):
 * a number (digits, `.`, `,` as a thousands separator) and an optional case-insensitive unit,
 * `20MB` = 20 000 000, `20MiB` = 20 971 520; fractions are truncated. Throws on anything else.
 */
export function parseHumanBytes(text: string): number {
  const trimmed = text.trim();
  const match = /^([\d.,]+)\s*(.*)$/.exec(trimmed);
  const number = match ? Number((match[1] as string).replace(/,/g, '')) : NaN;
  const multiplier = match ? BYTE_UNITS.get((match[2] as string).toLowerCase()) : undefined;
  if (!match || !/^(\d+\.?\d*|\.\d+)$/.test((match[1] as string).replace(/,/g, '')) || Number.isNaN(number)) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `"${text}" is not a byte count (examples: 20MB, 1.5GiB, 500000)`,
    );
  }
  if (multiplier === undefined) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `"${text}": unknown unit "${match[2] as string}" (B, kB, MB, GB, KiB, MiB, GiB, …)`,
    );
  }
  const bytes = Math.floor(number * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new StrataError('INVALID_ARGUMENT', `"${text}" is too large`);
  return bytes;
}

function isDisabled(value: unknown): boolean {
  if (value === null || value === undefined || value === false) return true;
  return typeof value === 'string' && DISABLED.has(value.trim().toLowerCase());
}

/**
 * One rule's value, as written in `.dive-ci` or on the command line: a ratio in 0–1 for the
 * efficiency and user-wasted rules, a byte count for highestWastedBytes; empty, `disabled`, `off`
 * or `false` disables it. `where` names the setting in errors.
 */
export function parseCiRule(name: CiRuleName, value: unknown, where: string = name): CiRule {
  if (isDisabled(value)) return { name, threshold: undefined };
  const text =
    typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${where}: expected a ${describe(name)}, got ${JSON.stringify(value)}`,
    );
  }
  if (name === 'highestWastedBytes') {
    try {
      return { name, threshold: parseHumanBytes(text) };
    } catch (err) {
      throw new StrataError('INVALID_ARGUMENT', `${where}: ${(err as Error).message}`);
    }
  }
  const ratio = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
  if (Number.isNaN(ratio) || ratio < 0 || ratio > 1) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${where}: invalid value "${text}": expected a ${describe(name)}`,
    );
  }
  return { name, threshold: ratio };
}

function describe(name: CiRuleName): string {
  return name === 'highestWastedBytes'
    ? 'byte count such as 20MB (or "disabled")'
    : 'ratio between 0 and 1 (or "disabled")';
}

export interface CiConfigFile {
  /** Rule values found, by rule (raw YAML values). */
  values: Partial<Record<CiRuleName, unknown>>;
  /** Keys strata does not know (dive ignores them too; a typo would silently keep a default). */
  warnings: string[];
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads a `.dive-ci` file's text. Rules may sit under `rules:` (dive ≤ 0.12) or at the top level
 * (dive 0.13), in camelCase or kebab-case; `rules:` wins when both have one.
 */
export function parseCiConfig(text: string, source: string): CiConfigFile {
  const document = parseDocument(text);
  const error = document.errors[0];
  if (error) {
    const line = error.linePos?.[0]?.line;
    const reason = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new StrataError(
      'INVALID_ARGUMENT',
      `${source}${line !== undefined ? `:${line}` : ''}: invalid YAML: ${reason}`,
    );
  }
  const top: unknown = document.toJS();
  if (top === null || top === undefined) return { values: {}, warnings: [] };
  if (!isMapping(top))
    throw new StrataError('INVALID_ARGUMENT', `${source}: expected a mapping with "rules:"`);
  const values: Partial<Record<CiRuleName, unknown>> = {};
  const warnings: string[] = [];
  const take = (mapping: Record<string, unknown>, prefix: string): void => {
    for (const [key, value] of Object.entries(mapping)) {
      const name = KEY_SPELLINGS[key];
      if (name) values[name] = value;
      else if (!(prefix === '' && key === 'rules'))
        warnings.push(`${source}: unknown setting "${prefix}${key}" ignored`);
    }
  };
  take(top, '');
  const rules = top.rules;
  if (rules !== undefined && rules !== null) {
    if (!isMapping(rules)) throw new StrataError('INVALID_ARGUMENT', `${source}: "rules" must be a mapping`);
    take(rules, 'rules.');
  }
  for (const name of Object.keys(values) as CiRuleName[]) {
    parseCiRule(name, values[name], `${source}: ${name}`);
  }
  return { values, warnings };
}

export interface LoadCiRulesOptions {
  /** `--ci-config`: must exist. Without it, `.dive-ci` in `cwd` is read when present. */
  configPath?: string;
  cwd?: string;
  /** Command-line values, which win over the file. */
  overrides?: Partial<Record<CiRuleName, string>>;
}

export interface LoadedCiRules {
  rules: CiRules;
  /** The file read, if any. */
  configFile: string | undefined;
  warnings: string[];
}

/** The rules in effect: dive's defaults, then the config file, then the command line. */
export async function loadCiRules(options: LoadCiRulesOptions = {}): Promise<LoadedCiRules> {
  let configFile: string | undefined;
  let file: CiConfigFile = { values: {}, warnings: [] };
  const path = options.configPath ?? join(options.cwd ?? process.cwd(), '.dive-ci');
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (options.configPath === undefined && code === 'ENOENT') text = undefined;
    else if (code === 'ENOENT') throw new StrataError('NOT_FOUND', `CI config ${path}: no such file`);
    else if (code === 'EISDIR') throw new StrataError('INVALID_ARGUMENT', `CI config ${path} is a directory`);
    else throw err;
  }
  if (text !== undefined) {
    configFile = options.configPath ?? '.dive-ci';
    file = parseCiConfig(text, configFile);
  }
  const rules = {} as Record<CiRuleName, CiRule>;
  for (const name of CI_RULE_NAMES) {
    const override = options.overrides?.[name];
    if (override !== undefined) rules[name] = parseCiRule(name, override, `--${kebab(name)}`);
    else if (name in file.values)
      rules[name] = parseCiRule(name, file.values[name], `${configFile}: ${name}`);
    else rules[name] = parseCiRule(name, DEFAULT_CI_RULES[name]);
  }
  return { rules, configFile, warnings: file.warnings };
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/**
 * Go's `%v` for a float64 (strconv's shortest `%g`): plain below 1e6 and from 1e-4, exponent
 * form outside (`1e+06`, `5e-05`), `+Inf`, `NaN`.
 */
export function goFloat(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  if (value === 0) return '0';
  const [mantissa, exp] = value.toExponential().split('e') as [string, string];
  const exponent = Number(exp);
  if (exponent < -4 || exponent >= 6) {
    return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return String(value);
}

/**
 * Judges an analysis like dive: lowestEfficiency fails when efficiency < threshold,
 * highestWastedBytes when wasted > threshold, highestUserWastedPercent when the user-wasted ratio
 * > threshold (a ratio dive cannot compute because the user layers are empty counts as +Inf when
 * bytes are wasted and NaN — never failing — when none are).
 */
export function evaluateCi(
  analysis: ImageAnalysis,
  rules: CiRules,
  metrics: CiMetrics = 'dive',
): CiEvaluation {
  const numbers = metrics === 'dive' ? analysis.dive : analysis.strata;
  const userWasted = metrics === 'dive' ? analysis.dive.wastedBytes : analysis.strata.userWastedBytes;
  const userRatio = numbers.userWastedPercent ?? (userWasted > 0 ? Infinity : NaN);
  const results: CiRuleResult[] = CI_RULE_NAMES.map((name) => {
    const { threshold } = rules[name];
    if (threshold === undefined)
      return { name, status: 'skip', threshold, value: null, message: 'rule disabled' };
    let failed: boolean;
    let value: number;
    let message: string;
    if (name === 'lowestEfficiency') {
      value = numbers.efficiency;
      failed = threshold > value;
      message = `image efficiency is too low (efficiency=${goFloat(value)} < threshold=${goFloat(threshold)})`;
    } else if (name === 'highestWastedBytes') {
      value = numbers.wastedBytes;
      failed = value > threshold;
      message = `too many bytes wasted (wasted-bytes=${value} > threshold=${threshold})`;
    } else {
      value = userRatio;
      failed = value > threshold;
      message = `too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=${goFloat(value)} > threshold=${goFloat(threshold)})`;
    }
    return {
      name,
      status: failed ? 'fail' : 'pass',
      threshold,
      value: Number.isFinite(value) ? value : null,
      message: failed ? message : '',
    };
  });
  return { metrics, pass: results.every((result) => result.status !== 'fail'), results };
}
