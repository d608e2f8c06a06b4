import { join } from 'node:path';
import { REPO_ROOT, run, type RunResult } from './cli.js';

const ENTRY = join(REPO_ROOT, 'test', 'helpers', 'analyze-cli.ts');
/** tsx by URL, so that the command may run in any working directory. */
const TSX = import.meta.resolve('tsx');

/**
 * Runs the CLI from source with `analyze` registered (helpers/analyze-cli.ts), as `strata --root
 * <root> …`. `CI` is cleared unless given, so a CI runner's own CI=true does not turn every
 * analysis into a check.
 */
export function strataDev(
  root: string,
  args: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return run(process.execPath, ['--import', TSX, ENTRY, '--root', root, ...args], {
    input: options.input,
    cwd: options.cwd,
    env: { CI: '', ...options.env },
  });
}

/** Like strataDev, failing the test unless the command exits 0. */
export async function strataDevOk(
  root: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  const result = await strataDev(root, args, options);
  if (result.code !== 0) {
    throw new Error(`strata ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  }
  return result;
}
