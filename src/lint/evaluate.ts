/**
 * The rule runner behind `lintDockerfile` and the build checks: parse once, run the given rules
 * over the model, then apply what the user said about rules (config, pragmas, `# check=`
 * directives) and severities. It imports no rule itself, so a caller that needs only BuildKit's
 * checks (every `strata build`) does not load hadolint's rules.
 */
import { DockerfileError } from '../dockerfile/errors.js';
import { detectDirective } from '../dockerfile/parser.js';
import { buildLintModel, type LintModel } from './model.js';
import { defaultLintConfig, type LintConfig } from './config.js';
import { instructionCheckSkips, parseCheckDirective, readHadolintPragmas } from './pragmas.js';
import type { Finding, LintResult, Rule, Severity } from './types.js';

export interface LintOptions {
  file?: string;
  config?: LintConfig;
  /** `.dockerignore` patterns of the build context (for CopyIgnoredFile); undefined: none. */
  dockerignore?: readonly string[];
  /** The rules to run (default: all). */
  rules?: readonly Rule[];
  /** Also report rules whose severity is `ignore` (as hadolint's own tests evaluate them). */
  includeIgnoredSeverity?: boolean;
  /** `BUILDKIT_DOCKERFILE_CHECK`: replaces the file's `# check=` directive. */
  checkOverride?: string;
  /**
   * Indexes of the stages a build of the chosen target converts. Rules marked `dispatch` report
   * only inside these stages, as BuildKit evaluates them while converting a stage. Undefined:
   * every stage (what `docker build --check` without `--target` does).
   */
  stages?: ReadonlySet<number>;
}

const PARSE_ERROR_RULE = 'DL1000';

/** Parses `source` and runs `rules`; a file that does not parse gives one DL1000 finding. */
export function evaluateRules(source: string, rules: readonly Rule[], options: LintOptions = {}): LintResult {
  const file = options.file ?? 'Dockerfile';
  let model: LintModel;
  try {
    model = buildLintModel(source, file);
  } catch (err) {
    if (!(err instanceof DockerfileError)) throw err;
    const position = /:(\d+):(\d+): /.exec(err.message);
    return {
      file,
      findings: [
        {
          rule: PARSE_ERROR_RULE,
          origin: 'hadolint',
          severity: 'error',
          file,
          line: Number(position?.[1] ?? 1),
          column: Number(position?.[2] ?? 1),
          message: err.message.replace(/^.*?:\d+:\d+: /, ''),
        },
      ],
    };
  }
  model.dockerignore = options.dockerignore;
  return { file, findings: evaluateModel(model, rules, options) };
}

/** Runs `rules` over an already built model. */
export function evaluateModel(
  model: LintModel,
  rules: readonly Rule[],
  options: LintOptions = {},
): Finding[] {
  const file = model.file;
  const config = options.config ?? defaultLintConfig();
  const pragmas = config.disableIgnorePragma ? undefined : readHadolintPragmas(model);
  const fileDirective = detectDirective('check', model.source);
  const checkDirective = parseCheckDirective(options.checkOverride ?? fileDirective?.cmdline);
  const instructionByLine = new Map(model.instructions.map((instruction) => [instruction.line, instruction]));
  const ignored = new Set(config.ignored);

  const findings: Finding[] = [];
  for (const rule of rules) {
    if (ignored.has(rule.id)) continue;
    const severity: Severity = config.overrides[rule.id] ?? rule.severity;
    if (severity === 'ignore' && !options.includeIgnoredSeverity) continue;
    if (rule.origin === 'buildkit') {
      const name = rule.id.toLowerCase();
      if (
        rule.experimental &&
        !checkDirective.experimental.has(name) &&
        !checkDirective.experimental.has('all')
      ) {
        continue;
      }
      if (checkDirective.skip.has(name) || checkDirective.skip.has('all')) continue;
    } else if (pragmas?.global.has(rule.id)) {
      continue;
    }
    for (const violation of rule.check(model, config)) {
      const instruction = instructionByLine.get(violation.line);
      if (rule.dispatch && options.stages !== undefined) {
        const stage = instruction?.stage;
        if (stage !== undefined && !options.stages.has(stage.index)) continue;
      }
      if (rule.origin === 'buildkit' && instruction) {
        const skips = instructionCheckSkips(model, instruction, fileDirective?.line ?? 0);
        if (skips.has(rule.id.toLowerCase()) || skips.has('all')) continue;
      } else if (rule.origin !== 'buildkit' && pragmas?.byLine.get(violation.line)?.has(rule.id)) {
        continue;
      }
      findings.push({
        rule: rule.id,
        origin: rule.origin,
        severity: config.overrides[rule.id] ?? violation.severity ?? severity,
        file,
        line: violation.line,
        column: violation.column ?? instruction?.column ?? 1,
        message: violation.message ?? rule.message,
        ...(rule.hint === undefined ? {} : { hint: rule.hint }),
        ...(rule.url === undefined ? {} : { url: rule.url }),
      });
    }
  }
  findings.sort((a, b) => a.line - b.line || a.column - b.column || a.rule.localeCompare(b.rule));
  return findings;
}
