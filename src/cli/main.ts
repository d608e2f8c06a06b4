import { Command, CommanderError } from 'commander';
import { StrataError } from '../errors.js';
import { CliContext } from './context.js';
import { registerImageCommands } from './image.js';
import { registerSystemCommands } from './system.js';
import { registerDockerfileCommands } from './dockerfile.js';
import { registerBuildCommands, registerBuilderCommands } from './build.js';
import { registerRegistryCommands } from './registry.js';
import { registerLintCommands } from './lint.js';

export function createProgram(context?: CliContext): { program: Command; context: CliContext } {
  const program = new Command('strata');
  const ctx = context ?? new CliContext(() => program.opts<{ root?: string }>().root);
  program
    .description('Daemonless Docker image toolchain: build, inspect, save/load, push/pull OCI images')
    .version(process.env.npm_package_version ?? '0.1.0', '-v, --version')
    .option(
      '--root <dir>',
      'store root (default: $STRATA_ROOT, /var/lib/strata as root, else $XDG_DATA_HOME/strata)',
    )
    .option('-D, --debug', 'print stack traces for errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerImageCommands(program, ctx);
  registerSystemCommands(program, ctx);
  registerDockerfileCommands(program, ctx);
  registerBuildCommands(program, ctx);
  registerBuilderCommands(program, ctx);
  registerRegistryCommands(program, ctx);
  registerLintCommands(program, ctx);
  for (const command of program.commands) applyExitOverride(command);
  return { program, context: ctx };
}

function applyExitOverride(command: Command): void {
  command.exitOverride();
  for (const child of command.commands) applyExitOverride(child);
}

/** Runs the CLI; returns the exit code. User mistakes print one line, never a stack trace. */
export async function main(argv: readonly string[]): Promise<number> {
  const { program, context } = createProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed the message (or the help/version text).
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
        ? 0
        : 2;
    }
    const debug = program.opts<{ debug?: boolean }>().debug === true;
    if (err instanceof StrataError && err.userFacing && !debug) {
      context.warn(`Error: ${err.message}`);
      return 1;
    }
    context.warn(
      `Error: ${err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err)}`,
    );
    if (!debug && err instanceof Error && err.cause !== undefined)
      context.warn(`  caused by: ${String(err.cause)}`);
    return 1;
  }
}
