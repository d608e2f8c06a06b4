/**
 * Test-only entry of the CLI with `strata analyze` registered, run from source (tsx), while
 * src/cli/main.ts's command groups do not list `analyze` yet. Once they do, this entry registers
 * nothing itself and behaves like bin/strata; the tests can then move to helpers/cli.ts's
 * `strata` and this file can go. Errors are printed the way main() prints them.
 */
import { CommanderError } from 'commander';
import { registerAnalyzeCommands } from '../../src/cli/analyze.js';
import { createProgram } from '../../src/cli/main.js';
import { StrataError } from '../../src/errors.js';

const argv = process.argv.slice(2);
const { program, context } = await createProgram(undefined, argv);
if (!program.commands.some((command) => command.name() === 'analyze')) {
  registerAnalyzeCommands(program, context);
  program.commands.at(-1)?.exitOverride();
}
try {
  await program.parseAsync(argv, { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 || err.code === 'commander.helpDisplayed' ? 0 : 2;
  } else {
    const userFacing = err instanceof StrataError && err.userFacing;
    context.warn(
      `Error: ${err instanceof Error ? (userFacing ? err.message : (err.stack ?? err.message)) : String(err)}`,
    );
    process.exitCode = 1;
  }
}
