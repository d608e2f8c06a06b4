/**
 * The lint engine with every rule strata knows: `lintDockerfile` runs them (or the ones asked
 * for) through evaluate.ts; `failsThreshold` turns findings into an exit status.
 */
import { evaluateRules, type LintOptions } from './evaluate.js';
import { ALL_RULES } from './rules/index.js';
import { severityRank, type Finding, type LintResult, type Severity } from './types.js';

export type { LintOptions } from './evaluate.js';

export function lintDockerfile(source: string, options: LintOptions = {}): LintResult {
  return evaluateRules(source, options.rules ?? ALL_RULES, options);
}

/** True when a finding reaches the failure threshold (`ignore` as threshold: never fail). */
export function failsThreshold(findings: readonly Finding[], threshold: Severity): boolean {
  if (threshold === 'ignore') return false;
  return findings.some((finding) => severityRank(finding.severity) <= severityRank(threshold));
}
