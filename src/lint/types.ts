/**
 * The vocabulary shared by the lint engine, its rules and its formatters.
 */
import type { LintModel } from './model.js';

/** hadolint's levels, most severe first; `ignore` rules are evaluated but not reported. */
export const SEVERITIES = ['error', 'warning', 'info', 'style', 'ignore'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function isSeverity(value: string): value is Severity {
  return (SEVERITIES as readonly string[]).includes(value);
}

/** Lower rank = more severe; used for thresholds and sorting. */
export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** Where a rule's semantics come from; decides which pragmas can switch it off. */
export type RuleOrigin = 'hadolint' | 'buildkit' | 'strata';

/** One place a rule found something; the message defaults to the rule's message. */
export interface Violation {
  line: number;
  column?: number;
  message?: string;
  /** When this occurrence is graver or milder than the rule's default (ShellCheck under dash). */
  severity?: Severity;
}

/** Settings rules read (the hadolint config keys that feed rules). */
export interface RuleSettings {
  trustedRegistries: string[];
  labelSchema: Record<string, LabelType>;
  strictLabels: boolean;
  /** The OCI annotation labels the final image should carry (ST1015/ST1016); `{}` turns them off. */
  ociLabelSchema: Record<string, LabelType>;
}

export const LABEL_TYPES = ['text', 'url', 'rfc3339', 'semver', 'hash', 'spdx', 'email'] as const;
export type LabelType = (typeof LABEL_TYPES)[number];

export interface Rule {
  /** `DL3008`, `StageNameCasing`, `ST1001`. */
  id: string;
  origin: RuleOrigin;
  severity: Severity;
  /** The rule's fixed description (BuildKit's "description"; hadolint's message). */
  message: string;
  /** What to do about it, shown by the tty formatter. */
  hint?: string;
  url?: string;
  /** BuildKit experimental checks run only when `# check=experimental=` names them. */
  experimental?: boolean;
  /**
   * BuildKit evaluates the check while it converts a stage's instructions, so a build reports it
   * only for the stages the target needs (parse-time checks cover the whole file).
   */
  dispatch?: boolean;
  check(model: LintModel, settings: RuleSettings): Iterable<Violation>;
}

export interface Finding {
  rule: string;
  origin: RuleOrigin;
  severity: Severity;
  file: string;
  line: number;
  column: number;
  message: string;
  hint?: string;
  url?: string;
}

export interface LintResult {
  file: string;
  findings: Finding[];
}
