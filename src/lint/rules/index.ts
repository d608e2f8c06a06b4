/** Every rule strata knows, in the order they are run. */
import type { Rule } from '../types.js';
import { BUILDKIT_RULES } from './buildkit.js';
import { HADOLINT_INSTRUCTION_RULES } from './hadolint-instructions.js';
import { HADOLINT_RUN_RULES } from './hadolint-run.js';
import { SHELLCHECK_RULES } from './shellcheck.js';
import { STRATA_RULES } from './strata.js';

/** hadolint's DL rules and the ShellCheck (SC) checks hadolint reports on RUN. */
export const HADOLINT_RULES: readonly Rule[] = [
  ...HADOLINT_INSTRUCTION_RULES,
  ...HADOLINT_RUN_RULES,
  ...SHELLCHECK_RULES,
].sort((a, b) => a.id.localeCompare(b.id));

export { BUILDKIT_RULES, STRATA_RULES };

export const ALL_RULES: readonly Rule[] = [...HADOLINT_RULES, ...BUILDKIT_RULES, ...STRATA_RULES];

export function findRule(id: string): Rule | undefined {
  return ALL_RULES.find((rule) => rule.id.toLowerCase() === id.toLowerCase());
}
