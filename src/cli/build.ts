import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { buffer } from 'node:stream/consumers';

import { SilentExit, type CliContext } from './context.js';
// The build's own modules, not the whole public API (src/index.ts re-exports these): a cached
// rebuild should not pay for loading the registry client or the whole linter (only BuildKit's
// checks, which every build runs, are loaded: see loadChecks).
import { build, type BuildResult } from '../build/solver.js';
import { createProgress, isProgressMode, type ProgressSink } from '../build/progress.js';
import { outputDirectory, outputStream, parseOutput } from '../build/outputs.js';
import type { SecretSource } from '../build/run-step.js';
import { writeOutputAtomically, writeStdout } from './io.js';
import { StrataError } from '../errors.js';
import { confirm } from './prompt.js';
import { humanSize } from './units.js';
import { collect } from './options.js';
import type * as BuildChecks from '../lint/build-checks.js';
import type { BuildCheckInput, BuildCheckResult } from '../lint/build-checks.js';

/** BuildKit's checks, loaded when a build starts (the module is small: no hadolint rules). */
const loadChecks = (): Promise<typeof BuildChecks> => import('../lint/build-checks.js');

/**
 * `build --check`: BuildKit's checks over the Dockerfile, nothing built. Every stage is checked
 * unless `--target` narrows it, as `docker build --check` does. Findings make the command fail.
 */
async function runCheckOnly(
  ctx: CliContext,
  checks: typeof BuildChecks,
  input: BuildCheckInput,
): Promise<void> {
  const result = await checks.checkBuild({ ...input, allStages: input.target === undefined });
  ctx.stdout.write(checks.formatCheckReport(result));
  if (result.error !== undefined) throw new StrataError('INVALID_DOCKERFILE', result.error.message);
  // The report says it all; buildx adds no error line.
  if (result.warnings.length > 0) throw new SilentExit(1);
}

/**
 * The checks a build runs before it starts: undefined when the Dockerfile or the context cannot
 * be read or parsed (the build itself then reports that, in its own words). A check directive
 * BuildKit cannot read, or `check=error=true` with findings, stops the build here.
 */
async function checksBeforeBuild(
  checks: typeof BuildChecks,
  input: BuildCheckInput,
): Promise<BuildCheckResult | undefined> {
  let result: BuildCheckResult;
  try {
    result = await checks.checkBuild(input);
  } catch (err) {
    if (err instanceof StrataError && err.userFacing) return undefined;
    throw err;
  }
  return result;
}

/** `K=V` pairs; a bare `K` takes its value from the environment (as `docker build` does). */
function keyValues(entries: readonly string[], flag: string, fromEnv: boolean): Record<string, string> {
  const result: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq === 0) throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${entry}": the name is empty`);
    if (eq < 0) {
      if (!fromEnv)
        throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${entry}": expected KEY=VALUE`);
      const value = process.env[entry];
      if (value !== undefined) result[entry] = value;
      continue;
    }
    result[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return result;
}

interface BuildFlags {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  quiet?: boolean;
  cache: boolean;
  /** `--no-cache-filter` (commander files `--no-*` options under the positive name). */
  cacheFilter: string[];
  label: string[];
  platform?: string;
  progress: string;
  iidfile?: string;
  metadataFile?: string;
  pull?: boolean;
  output: string[];
  secret: string[];
  ssh: string[];
  allow: string[];
  isolation: string;
  check?: boolean;
}

/** `--secret id=x,src=FILE` / `id=x,env=VAR` / `id=x` (an env var of that name), like buildx. */
function parseSecrets(entries: readonly string[]): Record<string, SecretSource> {
  const secrets: Record<string, SecretSource> = {};
  for (const entry of entries) {
    const fields = new Map(
      entry.split(',').map((field) => {
        const eq = field.indexOf('=');
        return [eq < 0 ? field : field.slice(0, eq), eq < 0 ? '' : field.slice(eq + 1)] as const;
      }),
    );
    const id = fields.get('id');
    if (id === undefined || id === '')
      throw new StrataError('INVALID_ARGUMENT', `invalid --secret "${entry}": id= is required`);
    const file = fields.get('src') ?? fields.get('source');
    const env = fields.get('env');
    secrets[id] = file !== undefined ? { file } : { env: env ?? id };
  }
  return secrets;
}

function metadata(result: BuildResult): string {
  return `${JSON.stringify(
    {
      'containerimage.config.digest': result.id,
      'containerimage.digest': result.target.digest,
      'containerimage.descriptor': result.target,
      ...(result.names.length > 0 ? { 'image.name': result.names.join(',') } : {}),
    },
    null,
    2,
  )}\n`;
}

function isolationMode(value: string): 'auto' | 'runc' | 'chroot' {
  if (value === 'auto' || value === 'runc' || value === 'chroot') return value;
  throw new StrataError('INVALID_ARGUMENT', `invalid --isolation "${value}": expected auto, runc or chroot`);
}

function sshAgent(entries: readonly string[]): { sshAgent?: string } {
  for (const entry of entries) {
    const [id, socket] = entry.split('=', 2);
    if (id !== 'default')
      throw new StrataError('UNSUPPORTED', `--ssh ${entry}: only the default agent is supported`);
    const path = socket ?? process.env.SSH_AUTH_SOCK;
    if (!path) throw new StrataError('INVALID_ARGUMENT', '--ssh default: SSH_AUTH_SOCK is not set');
    return { sshAgent: path };
  }
  return {};
}

export function registerBuildCommands(program: Command, ctx: CliContext): void {
  program
    .command('build')
    .description('Build an image from a Dockerfile (BuildKit semantics, no daemon)')
    .argument('<path>', 'build context directory')
    .option('-t, --tag <name>', 'name the image (repeatable)', collect, [])
    .option('-f, --file <path>', 'Dockerfile (default: PATH/Dockerfile; - reads STDIN)')
    .option('--build-arg <key=value>', 'set a build argument (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage (default: the last one)')
    .option('-q, --quiet', 'print only the image ID')
    .option('--no-cache', 'do not use the build cache')
    .option('--no-cache-filter <stage>', 'do not use the cache for this stage (repeatable)', collect, [])
    .option('--label <key=value>', 'set a label on the image (repeatable)', collect, [])
    .option('--platform <os/arch[/variant]>', 'platform of the image')
    .option('--progress <mode>', 'auto, tty, plain, rawjson or quiet', 'auto')
    .option('--iidfile <file>', 'write the image ID to this file')
    .option('--metadata-file <file>', 'write build result metadata (JSON) to this file')
    .option('--pull', 'always pull base images again (missing ones are always pulled)')
    .option(
      '--secret <id=ID,src=FILE|env=VAR>',
      'expose a secret to RUN --mount=type=secret (repeatable)',
      collect,
      [],
    )
    .option('--ssh <default[=SOCKET]>', 'forward an SSH agent socket to RUN --mount=type=ssh', collect, [])
    .option(
      '--isolation <mode>',
      'RUN isolation: auto (runc if it works, else chroot), runc or chroot',
      'auto',
    )
    .option('--allow <entitlement>', 'allow security.insecure (RUN --security=insecure)', collect, [])
    .option(
      '-o, --output <spec>',
      'also write the result: type=docker|oci|tar,dest=FILE (- = STDOUT), type=local,dest=DIR, DIR, or - (repeatable)',
      collect,
      [],
    )
    .option('--check', 'run the build checks (BuildKit rules) without building; fail on findings')
    .action(async (context: string, flags: BuildFlags) => {
      const outputs = flags.output.map(parseOutput);
      if (!isProgressMode(flags.progress)) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `invalid --progress "${flags.progress}": expected auto, tty, plain, rawjson or quiet`,
        );
      }
      const dockerfileText = flags.file === '-' ? await buffer(process.stdin) : undefined;
      const dockerfileSource =
        dockerfileText !== undefined
          ? { dockerfileText }
          : flags.file === undefined
            ? {}
            : { dockerfile: flags.file };
      const buildArgs = keyValues(flags.buildArg, '--build-arg', true);
      const checkInput: BuildCheckInput = {
        context,
        ...dockerfileSource,
        buildArgs,
        ...(flags.target === undefined ? {} : { target: flags.target }),
        ...(flags.platform === undefined ? {} : { platform: flags.platform }),
      };
      const checks = await loadChecks();
      if (flags.check) return runCheckOnly(ctx, checks, checkInput);

      const mode = flags.quiet ? 'quiet' : flags.progress;
      let checked = await checksBeforeBuild(checks, checkInput);
      // buildx prints the summary after the progress output, and never in quiet or JSON modes.
      const printWarnings = (): void => {
        if (checked === undefined || mode === 'quiet' || mode === 'rawjson') return;
        const stderr = ctx.stderr as NodeJS.WriteStream;
        ctx.stderr.write(
          checks.formatWarningSummary(checked, {
            debug: program.opts<{ debug?: boolean }>().debug === true,
            colour: stderr.isTTY === true && process.env.NO_COLOR === undefined,
          }),
        );
      };
      // The Dockerfile's own errors are left to the build, which reports them in its words.
      const stop = checked?.error;
      if (stop !== undefined && (stop.kind === 'lint' || stop.kind === 'directive')) {
        printWarnings();
        throw new StrataError('INVALID_DOCKERFILE', stop.message);
      }

      const store = await ctx.openStore();
      const progress: ProgressSink = createProgress(mode, ctx.stderr);
      // Ctrl-C cancels the build, which kills its RUN step and unmounts what it mounted; a
      // second one exits at once.
      const cancel = new AbortController();
      const onSignal = (): void => {
        if (cancel.signal.aborted) process.exit(130);
        cancel.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let result: BuildResult;
      try {
        result = await build(store, {
          signal: cancel.signal,
          context,
          ...dockerfileSource,
          buildArgs,
          ...(flags.target === undefined ? {} : { target: flags.target }),
          tags: flags.tag,
          labels: keyValues(flags.label, '--label', false),
          ...(flags.platform === undefined ? {} : { platform: flags.platform }),
          noCache: !flags.cache,
          noCacheFilter: flags.cacheFilter
            .flatMap((entry) => entry.split(','))
            .filter((entry) => entry !== ''),
          progress,
          secrets: parseSecrets(flags.secret),
          ...sshAgent(flags.ssh),
          allowInsecure: flags.allow.includes('security.insecure'),
          isolation: isolationMode(flags.isolation),
          pull: flags.pull === true,
          pullImage: async (reference, platform) =>
            (await import('../registry/client/index.js')).pullImage(store, reference, { platform }),
        });
      } catch (err) {
        await progress.close();
        printWarnings();
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      await progress.close();
      for (const output of outputs) {
        if (output.type === 'image') continue;
        if (output.type === 'local') await outputDirectory(store, result.id, output.dest);
        else {
          const stream = await outputStream(store, result.id, result.names, output.type);
          if (output.dest === '-') await writeStdout(stream, 'build --output');
          else {
            // buildx creates the destination's directory; so do we.
            await mkdir(dirname(resolve(output.dest)), { recursive: true });
            await writeOutputAtomically(output.dest, stream);
          }
        }
      }
      if (flags.iidfile) await writeFile(flags.iidfile, result.id);
      if (flags.metadataFile) await writeFile(flags.metadataFile, metadata(result));
      // With an archive on STDOUT, the ID goes to stderr so the archive stays intact.
      const stdoutTaken = outputs.some(
        (output) => output.type !== 'image' && output.type !== 'local' && output.dest === '-',
      );
      if (checked !== undefined) checked = checks.withBuildFindings(checked, result.warnings, buildArgs);
      if (flags.quiet) (stdoutTaken ? ctx.warn.bind(ctx) : ctx.print.bind(ctx))(result.id);
      else {
        for (const name of result.names) ctx.warn(`naming to ${name} done`);
        ctx.warn(`writing image ${result.id} done`);
      }
      printWarnings();
    });
}

export function registerBuilderCommands(program: Command, ctx: CliContext): void {
  const builder = program.command('builder').description('Manage the build cache');
  builder
    .command('prune')
    .description('Remove the build cache (and the layers only it kept)')
    .option('-a, --all', 'accepted for docker compatibility: all cache is removed')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (options: { force?: boolean }) => {
      if (!options.force && !(await confirm(ctx, 'WARNING! This will remove all build cache.\n'))) return;
      const store = await ctx.openStore();
      const records = await store.buildCache.clear();
      const report = await store.collectGarbage();
      ctx.print(`Deleted build cache records: ${records}`);
      ctx.print(`Total reclaimed space: ${humanSize(report.bytesFreed)}`);
    });
}
