import { join } from 'node:path';
import { REPO_ROOT, run, type RunResult } from './cli.js';

const STRATA = join(REPO_ROOT, 'bin', 'strata');

/**
 * Runs `strata --root <root> …` (the built CLI) with `CI` cleared unless given, so that a CI
 * runner's own CI=true does not turn every analysis into a check; `cwd` for `.dive-ci` lookups.
 */
export function strataNoCi(
  root: string,
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return run(STRATA, ['--root', root, ...args], {
    input: options.input,
    cwd: options.cwd,
    env: { CI: '', ...options.env },
  });
}

/** Like strataNoCi, failing the test unless the command exits 0. */
export async function strataNoCiOk(
  root: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  const result = await strataNoCi(root, args, options);
  if (result.code !== 0) {
    throw new Error(`strata ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  }
  return result;
}
