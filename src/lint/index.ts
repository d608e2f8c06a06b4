/**
 * `strata lint` as a library: lint Dockerfiles from disk (with their context's .dockerignore)
 * or from text, and decide whether the run fails.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { readIgnoreFile } from '../dockerfile/dockerignore.js';
import { StrataError, errnoCode } from '../errors.js';
import { failsThreshold, lintDockerfile, type LintOptions } from './engine.js';
import { defaultLintConfig, type LintConfig } from './config.js';
import type { LintResult } from './types.js';

export { lintDockerfile, failsThreshold, type LintOptions } from './engine.js';
export {
  applyConfigObject,
  defaultLintConfig,
  loadLintConfig,
  parseLintConfig,
  type LintConfig,
} from './config.js';
export { formatResults, isLintFormat, LINT_FORMATS, type LintFormat } from './format.js';
export { ALL_RULES, BUILDKIT_RULES, HADOLINT_RULES, STRATA_RULES, findRule } from './rules/index.js';
export type { Finding, LintResult, Rule, Severity, RuleOrigin } from './types.js';
export {
  CHECK_BUILD_ARG,
  checkBuild,
  checkDockerfile,
  formatCheckReport,
  formatSourceSnippet,
  formatWarningSummary,
  withBuildFindings,
  type BuildFinding,
  shortWarning,
  type BuildCheckError,
  type BuildCheckInput,
  type BuildCheckOptions,
  type BuildCheckResult,
  type BuildCheckWarning,
} from './build-checks.js';

export interface LintFilesOptions {
  config?: LintConfig;
  /** Read `.dockerignore` next to each Dockerfile (default true). */
  useDockerignore?: boolean;
  /** Text to lint for the path `-` (standard input). */
  stdin?: () => Promise<string>;
}

export interface LintRun {
  results: LintResult[];
  /** True when a finding reaches the failure threshold and `no-fail` is off. */
  failed: boolean;
}

export async function lintFiles(paths: readonly string[], options: LintFilesOptions = {}): Promise<LintRun> {
  const config = options.config ?? defaultLintConfig();
  const results: LintResult[] = [];
  for (const path of paths) {
    let source: string;
    if (path === '-') {
      if (!options.stdin)
        throw new StrataError('INVALID_ARGUMENT', 'lint: no standard input to read for "-"');
      source = await options.stdin();
    } else {
      try {
        source = await readFile(path, 'utf8');
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `lint: ${path}: no such file`);
        throw err;
      }
    }
    const lintOptions: LintOptions = { file: path === '-' ? '<stdin>' : path, config };
    if (path !== '-' && options.useDockerignore !== false) {
      lintOptions.dockerignore = await readIgnoreFile(dirname(path), path);
    }
    results.push(lintDockerfile(source, lintOptions));
  }
  const failed =
    !config.noFail &&
    failsThreshold(
      results.flatMap((result) => result.findings),
      config.failureThreshold,
    );
  return { results, failed };
}
