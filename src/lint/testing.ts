/** Test helper: the rule ids a Dockerfile triggers (all rules, `ignore` severities included). */
import { lintDockerfile, type LintOptions } from './engine.js';

export function ruleIds(source: string, options: LintOptions = {}): string[] {
  return lintDockerfile(source, { includeIgnoredSeverity: true, ...options }).findings.map(
    (finding) => finding.rule,
  );
}
