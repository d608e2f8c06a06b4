import { Command, CommanderError } from 'commander';
import { StrataError } from '../errors.js';
import { CliContext, SilentExit } from './context.js';
type Register = (program: Command, ctx: CliContext) => void;

/**
 * Command groups, loaded only when used: starting the CLI with every module (the registry
 * client, the linter, …) costs more than a cached rebuild itself.
 */
const GROUPS: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Register[]> }> = [
  {
    names: ['images', 'image', 'tag', 'rmi', 'inspect', 'history', 'save', 'load', 'import', 'export'],
    load: async () => [(await import('./image.js')).registerImageCommands],
  },
  { names: ['system'], load: async () => [(await import('./system.js')).registerSystemCommands] },
  { names: ['dockerfile'], load: async () => [(await import('./dockerfile.js')).registerDockerfileCommands] },
  {
    names: ['build', 'builder'],
    load: async () => {
      const module = await import('./build.js');
      return [module.registerBuildCommands, module.registerBuilderCommands];
    },
  },
  {
    names: ['pull', 'push', 'login', 'logout'],
    load: async () => [(await import('./registry.js')).registerRegistryCommands],
  },
  {
    names: ['registry'],
    load: async () => [(await import('./registry-server.js')).registerRegistryServerCommands],
  },
  { names: ['lint'], load: async () => [(await import('./lint.js')).registerLintCommands] },
  {
    names: [
      'run',
      'create',
      'start',
      'stop',
      'restart',
      'kill',
      'rm',
      'wait',
      'ps',
      'logs',
      'exec',
      'commit',
      'container',
    ],
    load: async () => [(await import('./container.js')).registerContainerCommands],
  },
  { names: ['analyze', 'diff'], load: async () => [(await import('./analyze.js')).registerAnalyzeCommands] },
];

/** The command word of `argv` (after global options), if any. */
function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--root') i++;
    else if (!word.startsWith('-')) return word;
  }
  return undefined;
}

/**
 * The groups `argv` needs: its command's; none to print the version; all of them for help,
 * unknown words or no command.
 */
function groupsFor(argv: readonly string[]): typeof GROUPS {
  const word = commandWord(argv);
  if (word === undefined) {
    const version = argv.some((arg) => arg === '-v' || arg === '--version');
    const help = argv.some((arg) => arg === '-h' || arg === '--help');
    return version && !help ? [] : GROUPS;
  }
  const wanted = GROUPS.filter((group) => group.names.includes(word));
  return wanted.length > 0 ? wanted : GROUPS;
}

/** The program with the groups `argv` needs (see groupsFor). */
export async function createProgram(
  context?: CliContext,
  argv: readonly string[] = [],
): Promise<{ program: Command; context: CliContext }> {
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
  for (const group of groupsFor(argv)) {
    for (const register of await group.load()) register(program, ctx);
  }
  for (const command of program.commands) applyExitOverride(command);
  return { program, context: ctx };
}

function applyExitOverride(command: Command): void {
  command.exitOverride();
  for (const child of command.commands) applyExitOverride(child);
}

/** Runs the CLI; returns the exit code. User mistakes print one line, never a stack trace. */
export async function main(argv: readonly string[]): Promise<number> {
  const { program, context } = await createProgram(undefined, argv);
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
    if (err instanceof SilentExit) return err.exitCode;
    // Ctrl-C: the shell's code for SIGINT, after the command cleaned up.
    if (err instanceof StrataError && err.code === 'CANCELLED') {
      context.warn(`Error: ${err.message}`);
      return 130;
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
