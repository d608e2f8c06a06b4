import type { Command } from 'commander';
import { buffer } from 'node:stream/consumers';

import type { CliContext } from './context.js';
import { StrataError } from '../errors.js';
import {
  applyConfigObject,
  formatResults,
  isLintFormat,
  lintFiles,
  loadLintConfig,
  LINT_FORMATS,
  type LintConfig,
} from '../lint/index.js';
import { isSeverity, type Severity } from '../lint/types.js';
import { collect } from './options.js';

interface LintFlags {
  config?: string;
  format?: string;
  ignore: string[];
  error: string[];
  warning: string[];
  info: string[];
  style: string[];
  trustedRegistry: string[];
  requireLabel: string[];
  strictLabels?: boolean;
  failureThreshold?: string;
  /** `--no-fail` (commander files `--no-*` options under the positive name). */
  fail: boolean;
  color?: boolean;
  dockerignore: boolean;
}

/** Command-line flags win over the config file, as with hadolint. */
function applyFlags(config: LintConfig, flags: LintFlags): LintConfig {
  const labelSchema: Record<string, string> = {};
  for (const entry of flags.requireLabel) {
    const [label, type] = entry.split(':', 2);
    if (!label || !type)
      throw new StrataError('INVALID_ARGUMENT', `invalid --require-label "${entry}": expected LABEL:TYPE`);
    labelSchema[label] = type;
  }
  const override: Partial<Record<Severity, string[]>> = {};
  for (const severity of ['error', 'warning', 'info', 'style'] as const) {
    if (flags[severity].length > 0) override[severity] = flags[severity];
  }
  const merged = applyConfigObject(
    config,
    {
      ignored: flags.ignore,
      trustedRegistries: flags.trustedRegistry,
      override,
      'label-schema': labelSchema,
      ...(flags.strictLabels ? { 'strict-labels': true } : {}),
      ...(flags.fail ? {} : { 'no-fail': true }),
    },
    'command line',
  );
  if (flags.failureThreshold !== undefined) {
    const threshold = flags.failureThreshold === 'none' ? 'ignore' : flags.failureThreshold;
    if (!isSeverity(threshold)) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `invalid --failure-threshold "${flags.failureThreshold}": expected error, warning, info, style or none`,
      );
    }
    merged.failureThreshold = threshold;
  }
  return merged;
}

export function registerLintCommands(program: Command, ctx: CliContext): void {
  program
    .command('lint')
    .description('Find problems in Dockerfiles before building them (hadolint and BuildKit rules)')
    .argument('[dockerfile...]', 'Dockerfiles to lint (- reads STDIN)', ['Dockerfile'])
    .option(
      '-c, --config <path>',
      'hadolint-compatible config file (default: .hadolint.yaml, then ~/.config)',
    )
    .option('-f, --format <format>', `output format: ${LINT_FORMATS.join(', ')}`)
    .option('--ignore <rule>', 'do not report this rule (repeatable)', collect, [])
    .option('--error <rule>', 'report this rule as an error (repeatable)', collect, [])
    .option('--warning <rule>', 'report this rule as a warning (repeatable)', collect, [])
    .option('--info <rule>', 'report this rule as info (repeatable)', collect, [])
    .option('--style <rule>', 'report this rule as style (repeatable)', collect, [])
    .option(
      '--trusted-registry <registry>',
      'allow base images from this registry (DL3026; repeatable)',
      collect,
      [],
    )
    .option('--require-label <label:type>', 'require a label of this type (repeatable)', collect, [])
    .option('--strict-labels', 'report labels that are not in the label schema')
    .option('-t, --failure-threshold <severity>', 'exit non-zero at this severity or worse (default: info)')
    .option('--no-fail', 'always exit 0')
    .option('--no-color', 'no colours in tty output')
    .option('--no-dockerignore', 'do not read .dockerignore next to the Dockerfile')
    .action(async (paths: string[], flags: LintFlags) => {
      const config = applyFlags(await loadLintConfig({ explicit: flags.config }), flags);
      const format = flags.format ?? config.format ?? 'tty';
      if (!isLintFormat(format)) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `invalid --format "${format}": expected ${LINT_FORMATS.join(', ')}`,
        );
      }
      const run = await lintFiles(paths, {
        config,
        useDockerignore: flags.dockerignore,
        stdin: async () => (await buffer(process.stdin)).toString('utf8'),
      });
      const colour =
        flags.color !== false &&
        process.env.NO_COLOR === undefined &&
        (ctx.stdout as NodeJS.WriteStream).isTTY === true;
      const output = formatResults(run.results, format, { colour });
      if (output !== '') ctx.stdout.write(output);
      if (run.failed) {
        const count = run.results.reduce((total, result) => total + result.findings.length, 0);
        throw new StrataError(
          'INVALID_DOCKERFILE',
          `lint: ${count} finding${count === 1 ? '' : 's'}, failure threshold "${config.failureThreshold}" reached`,
        );
      }
    });
}
