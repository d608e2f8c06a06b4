import type { Command } from 'commander';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { CliContext } from './context.js';
import { SilentExit } from './context.js';
import { formatRows, type Column } from './format.js';
import { compileTemplate } from './gotemplate.js';
import { collect, integer } from './options.js';
import { humanDuration, humanSize, shortId } from './units.js';
import { StrataError } from '../errors.js';
import type { Store } from '../store/index.js';
import { imageSize } from '../image/inspect.js';
import { execProcess, startExec } from '../container/exec.js';
import { inspectContainer } from '../container/inspect.js';
import {
  createContainer,
  killContainer,
  openContainers,
  reconcile,
  removeContainer,
  stopContainer,
  waitContainer,
  type CreateRequest,
} from '../container/lifecycle.js';
import { readLogEntries, type LogEntry } from '../container/logs.js';
import { containerImage, type ContainerContext } from '../container/process.js';
import { imageLowerDirs } from '../container/rootfs.js';
import type { ContainerEntry } from '../container/store.js';
import { launchSupervisor, reportFirstStart, supervise, supervisorAlive } from '../container/supervisor.js';
import type { BoundPort, ContainerRecord, ContainerState, PortBinding } from '../container/types.js';

/** How this very CLI is started again (the detached supervisor): node, its flags, the entry script. */
function strataCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1] as string];
}

async function containerContext(ctx: CliContext): Promise<ContainerContext> {
  const store = await ctx.openStore();
  return { store, containers: openContainers({ store }) };
}

async function findContainer(cc: ContainerContext, text: string): Promise<ContainerEntry> {
  return reconcile(cc, await cc.containers.find(text));
}

interface RunFlags {
  detach?: boolean;
  rm?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  user?: string;
  workdir?: string;
  entrypoint?: string;
  volume: string[];
  mount: string[];
  tmpfs: string[];
  publish: string[];
  publishAll?: boolean;
  network?: string;
  hostname?: string;
  readOnly?: boolean;
  init?: boolean;
  tty?: boolean;
  interactive?: boolean;
  restart?: string;
  stopSignal?: string;
  stopTimeout?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  healthRetries?: string;
  healthcheck?: boolean;
  addHost: string[];
  label: string[];
}

function addCreateOptions(command: Command): Command {
  return command
    .argument('<image>', 'image name or ID')
    .argument('[command...]', 'command and arguments (replace the image CMD)')
    .option('--name <name>', 'assign a name to the container')
    .option(
      '-e, --env <KEY=VALUE>',
      'set an environment variable (KEY alone: take it from here)',
      collect,
      [],
    )
    .option('--env-file <file>', 'read environment variables from a file', collect, [])
    .option('-u, --user <user[:group]>', 'user (name or uid) and group in the image')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--entrypoint <command>', 'replace the image\'s ENTRYPOINT ("" clears it)')
    .option('-v, --volume <src:dst[:ro]>', 'bind mount a host path or a named volume', collect, [])
    .option('--mount <spec>', 'type=bind|volume|tmpfs,source=…,target=…[,readonly]', collect, [])
    .option('--tmpfs <dst[:options]>', 'mount a tmpfs', collect, [])
    .option(
      '-p, --publish <[ip:]host:container[/proto]>',
      'publish a container port on the host',
      collect,
      [],
    )
    .option('-P, --publish-all', 'publish every exposed port to a free host port')
    .option('--network <mode>', 'private (default: own namespace through pasta), host or none')
    .option('--hostname <name>', 'container host name')
    .option('--add-host <name:ip>', 'add a line to /etc/hosts', collect, [])
    .option('--read-only', "mount the container's root filesystem read-only")
    .option('--init', 'run tini as PID 1 to forward signals and reap zombies')
    .option('-t, --tty', 'allocate a terminal')
    .option('-i, --interactive', 'keep stdin open')
    .option('--restart <policy>', 'no, on-failure[:N], always or unless-stopped', 'no')
    .option('--stop-signal <signal>', 'signal to stop the container')
    .option('--stop-timeout <seconds>', 'seconds to wait before killing the container on stop')
    .option('--health-cmd <command>', 'healthcheck command (shell form)')
    .option('--health-interval <duration>', 'time between checks')
    .option('--health-timeout <duration>', 'maximum time one check may take')
    .option('--health-start-period <duration>', 'start period during which failures do not count')
    .option('--health-start-interval <duration>', 'time between checks during the start period')
    .option('--health-retries <n>', 'consecutive failures that make the container unhealthy')
    .option('--no-healthcheck', "disable the image's HEALTHCHECK")
    .option('-l, --label <key=value>', 'set a label', collect, [])
    .passThroughOptions();
}

function createRequest(image: string, args: string[], flags: RunFlags): CreateRequest {
  return {
    image,
    args,
    name: flags.name,
    env: flags.env,
    envFiles: flags.envFile,
    user: flags.user,
    workdir: flags.workdir,
    entrypoint: flags.entrypoint,
    volumes: flags.volume,
    mounts: flags.mount,
    tmpfs: flags.tmpfs,
    publish: flags.publish,
    publishAll: flags.publishAll,
    network: flags.network,
    hostname: flags.hostname,
    readOnly: flags.readOnly,
    init: flags.init,
    tty: flags.tty,
    interactive: flags.interactive,
    restart: flags.restart,
    autoRemove: flags.rm,
    stopSignal: flags.stopSignal,
    stopTimeout: integer(flags.stopTimeout, '--stop-timeout'),
    healthCmd: flags.healthCmd,
    healthInterval: flags.healthInterval,
    healthTimeout: flags.healthTimeout,
    healthStartPeriod: flags.healthStartPeriod,
    healthStartInterval: flags.healthStartInterval,
    healthRetries: integer(flags.healthRetries, '--health-retries'),
    noHealthcheck: flags.healthcheck === false,
    addHosts: flags.addHost,
    labels: flags.label,
    cwd: process.cwd(),
    hostEnv: process.env,
  };
}

/** Starts a created container with a detached supervisor; fails like docker (exit 125/126/127). */
async function startDetached(ctx: CliContext, cc: ContainerContext, record: ContainerRecord): Promise<void> {
  const launched = await launchSupervisor(cc, record.id, strataCommand());
  if (launched.error) {
    ctx.warn(`Error: ${launched.error.message}`);
    if (record.autoRemove)
      await removeContainer(cc, record.id, { force: true, volumes: true }).catch(() => undefined);
    throw new SilentExit(launched.error.exitStatus);
  }
}

function defineRun(command: Command, ctx: CliContext): void {
  addCreateOptions(command)
    .description('Create and run a container from an image')
    .option('-d, --detach', 'run in the background and print the container ID')
    .option('--rm', 'remove the container when it exits')
    .action(async (image: string, args: string[], flags: RunFlags) => {
      if (flags.tty && process.stdin.isTTY !== true)
        throw new StrataError('INVALID_ARGUMENT', 'the input device is not a TTY (-t needs a terminal)');
      if (flags.tty && flags.detach)
        throw new StrataError(
          'UNSUPPORTED',
          '-t with -d is not supported: strata has no attach; use exec -it',
        );
      const cc = await containerContext(ctx);
      const { record, warnings } = await createContainer(cc, createRequest(image, args, flags));
      for (const warning of warnings) ctx.warn(warning);
      if (flags.detach) {
        await startDetached(ctx, cc, record);
        ctx.print(record.id);
        return;
      }
      let startError: StrataError | undefined;
      const exitCode = await supervise(cc, record.id, {
        terminal: flags.tty === true,
        stdin: flags.interactive === true,
        forwardSignals: true,
        echo: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
        onFirstStart: (error) => (startError = error),
      });
      if (startError) {
        ctx.warn(`Error: ${startError.message}`);
        if (record.autoRemove)
          await removeContainer(cc, record.id, { force: true, volumes: true }).catch(() => undefined);
      }
      if (exitCode !== 0) throw new SilentExit(exitCode);
    });
}

function defineCreate(command: Command, ctx: CliContext): void {
  addCreateOptions(command)
    .description('Create a container (start it with `strata start`)')
    .option('--rm', 'remove the container when it exits')
    .action(async (image: string, args: string[], flags: RunFlags) => {
      const cc = await containerContext(ctx);
      const { record, warnings } = await createContainer(cc, createRequest(image, args, flags));
      for (const warning of warnings) ctx.warn(warning);
      ctx.print(record.id);
    });
}

/** Runs `work` for each name; prints the name on success (docker's output), the errors at the end. */
async function forEachContainer(
  ctx: CliContext,
  names: readonly string[],
  work: (cc: ContainerContext, entry: ContainerEntry) => Promise<void>,
): Promise<void> {
  const cc = await containerContext(ctx);
  const failures: string[] = [];
  for (const name of names) {
    try {
      await work(cc, await findContainer(cc, name));
      ctx.print(name);
    } catch (err) {
      if (err instanceof SilentExit) throw err;
      if (!(err instanceof StrataError)) throw err;
      failures.push(err.message);
    }
  }
  if (failures.length > 0) throw new StrataError('CONFLICT', failures.join('\nError: '));
}

function defineStart(command: Command, ctx: CliContext): void {
  command
    .description('Start one or more stopped containers')
    .argument('<containers...>')
    .action(async (names: string[]) => {
      await forEachContainer(ctx, names, async (cc, entry) => {
        if (entry.state.status === 'running' || entry.state.status === 'restarting') return;
        await startDetached(ctx, cc, entry.record);
      });
    });
}

function defineStop(command: Command, ctx: CliContext, restart: boolean): void {
  command
    .description(restart ? 'Restart one or more containers' : 'Stop one or more running containers')
    .argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing the container')
    .option('-s, --signal <signal>', 'signal to send instead of the container stop signal')
    .action(async (names: string[], flags: { time?: string; signal?: string }) => {
      const time = integer(flags.time, '--time');
      await forEachContainer(ctx, names, async (cc, entry) => {
        if (flags.signal !== undefined && entry.state.status === 'running') {
          await killContainer(cc, entry.record.id, flags.signal);
        }
        await stopContainer(cc, entry.record.id, time);
        if (restart) await startDetached(ctx, cc, (await cc.containers.read(entry.record.id)).record);
      });
    });
}

function defineKill(command: Command, ctx: CliContext): void {
  command
    .description('Send a signal (default SIGKILL) to one or more running containers')
    .argument('<containers...>')
    .option('-s, --signal <signal>', 'signal to send', 'SIGKILL')
    .action(async (names: string[], flags: { signal: string }) => {
      await forEachContainer(ctx, names, (cc, entry) => killContainer(cc, entry.record.id, flags.signal));
    });
}

function defineRm(command: Command, ctx: CliContext): void {
  command
    .description('Remove one or more containers')
    .argument('<containers...>')
    .option('-f, --force', 'kill and remove a running container')
    .option('-v, --volumes', 'remove the anonymous volumes of the container')
    .action(async (names: string[], flags: { force?: boolean; volumes?: boolean }) => {
      await forEachContainer(ctx, names, (cc, entry) =>
        removeContainer(cc, entry.record.id, { force: flags.force, volumes: flags.volumes }),
      );
    });
}

function defineWait(command: Command, ctx: CliContext): void {
  command
    .description('Block until one or more containers stop, then print their exit codes')
    .argument('<containers...>')
    .action(async (names: string[]) => {
      const cc = await containerContext(ctx);
      for (const name of names) {
        const entry = await findContainer(cc, name);
        ctx.print(String(await waitContainer(cc, entry.record.id)));
      }
    });
}

function portsText(ports: readonly (BoundPort | PortBinding)[]): string {
  return ports
    .map(
      (port) =>
        `${port.hostIp === '' ? '0.0.0.0' : port.hostIp}:${port.hostPort}->${port.containerPort}/${port.protocol}`,
    )
    .join(', ');
}

/** docker's STATUS column: `Up 5 seconds (healthy)`, `Exited (3) 2 minutes ago`, `Created`. */
export function statusText(state: ContainerState, now: Date = new Date()): string {
  const since = (time: string) => humanDuration(Math.max(0, now.getTime() - Date.parse(time)));
  switch (state.status) {
    case 'running': {
      const health = state.health
        ? state.health.Status === 'starting'
          ? ' (health: starting)'
          : ` (${state.health.Status})`
        : '';
      return `Up ${since(state.startedAt)}${health}`;
    }
    case 'restarting':
      return `Restarting (${state.exitCode}) ${since(state.finishedAt)} ago`;
    case 'exited':
      return `Exited (${state.exitCode}) ${since(state.finishedAt)} ago`;
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}

async function treeSize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeSize(path);
    else total += (await lstat(path).catch(() => undefined))?.size ?? 0;
  }
  return total;
}

const PS_COLUMNS: Column[] = [
  { field: 'ID', header: 'CONTAINER ID' },
  { field: 'Image', header: 'IMAGE' },
  { field: 'Command', header: 'COMMAND' },
  { field: 'RunningFor', header: 'CREATED' },
  { field: 'Status', header: 'STATUS' },
  { field: 'Ports', header: 'PORTS' },
  { field: 'Names', header: 'NAMES' },
];

function definePs(command: Command, ctx: CliContext): void {
  command
    .description('List containers (running ones unless -a)')
    .option('-a, --all', 'show all containers')
    .option('-q, --quiet', 'only IDs')
    .option('-s, --size', 'show sizes: the container layer and (virtual) the image with it')
    .option('--no-trunc', 'do not truncate output')
    .option('--format <format>', "docker's formats: table, json or a Go template")
    .action(
      async (flags: { all?: boolean; quiet?: boolean; size?: boolean; trunc: boolean; format?: string }) => {
        const cc = await containerContext(ctx);
        const entries: ContainerEntry[] = [];
        for (const entry of await cc.containers.list()) entries.push(await reconcile(cc, entry));
        const shown = entries
          .filter(
            (entry) => flags.all || entry.state.status === 'running' || entry.state.status === 'restarting',
          )
          .reverse();
        if (flags.quiet) {
          for (const entry of shown) ctx.print(flags.trunc ? shortId(entry.record.id) : entry.record.id);
          return;
        }
        const rows = [];
        for (const { record, state } of shown) {
          const line = [...record.entrypoint, ...record.cmd].join(' ');
          let size = '';
          if (flags.size) {
            const own = await treeSize(cc.containers.paths(record.id).upper);
            const image = await containerImage(cc.store, record).catch(() => undefined);
            size = `${humanSize(own)} (virtual ${humanSize(own + (image ? imageSize(image) : 0))})`;
          }
          rows.push({
            ID: flags.trunc ? shortId(record.id) : record.id,
            Image: record.image.reference,
            Command: JSON.stringify(flags.trunc && line.length > 20 ? `${line.slice(0, 19)}…` : line),
            CreatedAt: record.created,
            RunningFor: `${humanDuration(Date.now() - Date.parse(record.created))} ago`,
            Status: statusText(state),
            State: state.status,
            Ports: portsText(state.status === 'running' ? state.ports : []),
            Names: record.name,
            Size: size,
            Labels: Object.entries(record.labels)
              .map(([key, value]) => `${key}=${value}`)
              .join(','),
          });
        }
        const columns = flags.size ? [...PS_COLUMNS, { field: 'Size', header: 'SIZE' }] : PS_COLUMNS;
        ctx.stdout.write(formatRows(rows, columns, flags.format));
      },
    );
}

function defineLogs(command: Command, ctx: CliContext): void {
  command
    .description("Print a container's output (stdout and stderr)")
    .argument('<container>')
    .option('-f, --follow', 'keep printing new output until the container stops')
    .option('-n, --tail <lines>', 'only the last N lines (all by default)', 'all')
    .option('-t, --timestamps', 'prefix each line with its time')
    .action(async (name: string, flags: { follow?: boolean; tail: string; timestamps?: boolean }) => {
      const cc = await containerContext(ctx);
      const { record } = await findContainer(cc, name);
      if (flags.tail !== 'all' && !/^\d+$/.test(flags.tail))
        throw new StrataError('INVALID_ARGUMENT', `invalid --tail "${flags.tail}": a number or all`);
      const path = cc.containers.paths(record.id).log;
      const print = (entry: LogEntry) => {
        const text = flags.timestamps ? `${entry.time} ${entry.log}` : entry.log;
        (entry.stream === 'stderr' ? process.stderr : process.stdout).write(text);
      };
      const first: LogEntry[] = [];
      let position = await readLogEntries(path, 0, (entry) => first.push(entry));
      for (const entry of flags.tail === 'all' ? first : first.slice(first.length - Number(flags.tail)))
        print(entry);
      if (!flags.follow) return;
      for (;;) {
        const entry = await reconcile(cc, await cc.containers.read(record.id)).catch(() => undefined);
        const active =
          entry !== undefined &&
          (entry.state.status === 'running' ||
            entry.state.status === 'restarting' ||
            (await supervisorAlive(entry.state)));
        position = await readLogEntries(path, position, print);
        if (!active) return;
        await sleep(100);
      }
    });
}

function defineExec(command: Command, ctx: CliContext): void {
  command
    .description('Run a command in a running container')
    .argument('<container>')
    .argument('<command...>')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a terminal')
    .option('-u, --user <user[:group]>', 'user (name or uid) and group')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-d, --detach', 'run the command in the background')
    .passThroughOptions()
    .action(
      async (
        name: string,
        args: string[],
        flags: {
          interactive?: boolean;
          tty?: boolean;
          user?: string;
          env: string[];
          workdir?: string;
          detach?: boolean;
        },
      ) => {
        if (flags.tty && process.stdin.isTTY !== true)
          throw new StrataError('INVALID_ARGUMENT', 'the input device is not a TTY (-t needs a terminal)');
        const cc = await containerContext(ctx);
        const { record, state } = await findContainer(cc, name);
        if (state.status !== 'running')
          throw new StrataError('CONFLICT', `container ${record.name} is not running`);
        const { parseEnvFlags } = await import('../container/options.js');
        const spec = await execProcess(cc.containers, record.id, {
          args,
          user: flags.user,
          env: parseEnvFlags(flags.env, process.env),
          workingDir: flags.workdir,
          terminal: flags.tty === true && flags.detach !== true,
        });
        const stdio = flags.detach
          ? (['ignore', 'ignore', 'ignore'] as const)
          : flags.tty
            ? (['inherit', 'inherit', 'inherit'] as const)
            : ([flags.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'] as const);
        // runc is in strata's process group: a terminal's Ctrl-C reaches it (it forwards it) and
        // strata, which must outlive it to report the exit code.
        const ignore = () => undefined;
        for (const signal of ['SIGINT', 'SIGQUIT'] as const) process.on(signal, ignore);
        const handle = await startExec(cc.containers, record.id, spec, [...stdio]);
        const forward = () => handle.kill('SIGTERM');
        process.on('SIGTERM', forward);
        if (flags.detach) return;
        const code = await handle.exited;
        if (code === -1) throw new StrataError('INTERNAL', 'runc exec failed');
        if (code !== 0) throw new SilentExit(code);
      },
    );
}

async function inspectEntries(cc: ContainerContext, entry: ContainerEntry): Promise<Record<string, unknown>> {
  const paths = cc.containers.paths(entry.record.id);
  let lowerDirs: string[] = [];
  try {
    lowerDirs = await imageLowerDirs(cc.store, await containerImage(cc.store, entry.record), paths);
  } catch {
    // The image is gone: inspect still shows the container.
  }
  return inspectContainer(entry.record, entry.state, paths, lowerDirs);
}

/** `inspect` of containers (also the fallback of the top-level `inspect` for non-images). */
export async function inspectContainers(
  store: Store,
  names: readonly string[],
): Promise<{ found: Array<Record<string, unknown>>; missing: string[] }> {
  const cc: ContainerContext = { store, containers: openContainers({ store }) };
  const found: Array<Record<string, unknown>> = [];
  const missing: string[] = [];
  for (const name of names) {
    try {
      found.push(await inspectEntries(cc, await findContainer(cc, name)));
    } catch (err) {
      if (err instanceof StrataError && err.code === 'NOT_FOUND') missing.push(err.message);
      else throw err;
    }
  }
  return { found, missing };
}

function defineInspect(command: Command, ctx: CliContext): void {
  command
    .description('Display detailed information on one or more containers')
    .argument('<containers...>')
    .option('-f, --format <format>', 'format the output using the given Go template')
    .action(async (names: string[], flags: { format?: string }) => {
      const { found, missing } = await inspectContainers(await ctx.openStore(), names);
      if (flags.format !== undefined) {
        const template = compileTemplate(flags.format);
        for (const item of found) ctx.print(template.execute(item));
      } else {
        ctx.print(JSON.stringify(found, null, 4));
      }
      if (missing.length > 0) throw new StrataError('NOT_FOUND', missing.join('\n'));
    });
}

function defineCommit(command: Command, ctx: CliContext): void {
  command
    .description("Create a new image from a container's changes")
    .argument('<container>')
    .argument('[image]', 'REPOSITORY[:TAG] for the new image')
    .option('-m, --message <text>', 'commit message')
    .option('-a, --author <name>', 'author')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config', collect, [])
    .action(
      async (
        name: string,
        reference: string | undefined,
        flags: { message?: string; author?: string; change: string[] },
      ) => {
        const cc = await containerContext(ctx);
        const entry = await findContainer(cc, name);
        const { commitContainer } = await import('../container/commit.js');
        const id = await commitContainer(cc, entry, {
          reference,
          message: flags.message,
          author: flags.author,
          changes: flags.change,
        });
        ctx.print(id);
      },
    );
}

function defineDiff(command: Command, ctx: CliContext): void {
  command
    .description("Show a container's changes to its image: A added, C changed, D deleted")
    .argument('<container>')
    .action(async (name: string) => {
      await printContainerDiff(ctx, name);
    });
}

/** `strata diff CONTAINER` (one argument) and `container diff`. */
export async function printContainerDiff(ctx: CliContext, name: string): Promise<void> {
  const cc = await containerContext(ctx);
  const entry = await findContainer(cc, name);
  const { containerChanges } = await import('../container/changes.js');
  const image = await containerImage(cc.store, entry.record);
  const lowerDirs = await imageLowerDirs(cc.store, image, cc.containers.paths(entry.record.id));
  for (const change of await containerChanges(
    cc.containers.paths(entry.record.id).upper,
    lowerDirs,
    entry.record,
  )) {
    ctx.print(`${change.kind} ${change.path}`);
  }
}

function definePrune(command: Command, ctx: CliContext): void {
  command
    .description('Remove all stopped containers')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async () => {
      const cc = await containerContext(ctx);
      ctx.print('Deleted Containers:');
      for (const entry of await cc.containers.list()) {
        const current = await reconcile(cc, entry);
        if (current.state.status === 'running' || current.state.status === 'restarting') continue;
        if (await supervisorAlive(current.state)) continue;
        await removeContainer(cc, current.record.id);
        ctx.print(current.record.id);
      }
    });
}

function defineSupervise(command: Command, ctx: CliContext): void {
  command
    .argument('<id>')
    .description('(internal) supervise a detached container')
    .action(async (id: string) => {
      const cc = await containerContext(ctx);
      let failed: StrataError | undefined;
      const exitCode = await supervise(cc, id, {
        terminal: false,
        stdin: false,
        forwardSignals: true,
        onFirstStart: (error) => {
          failed = error;
          reportFirstStart(error);
        },
      });
      if (failed) throw new SilentExit(exitCode);
    });
}

export function registerContainerCommands(program: Command, ctx: CliContext): void {
  // `run IMAGE sh -c …`: everything after the image is the container's command line, which
  // needs options parsed by position (global options go before the command, as everywhere).
  program.enablePositionalOptions();
  defineRun(program.command('run'), ctx);
  defineCreate(program.command('create'), ctx);
  defineStart(program.command('start'), ctx);
  defineStop(program.command('stop'), ctx, false);
  defineStop(program.command('restart'), ctx, true);
  defineKill(program.command('kill'), ctx);
  defineRm(program.command('rm'), ctx);
  defineWait(program.command('wait'), ctx);
  definePs(program.command('ps'), ctx);
  defineLogs(program.command('logs'), ctx);
  defineExec(program.command('exec'), ctx);
  defineCommit(program.command('commit'), ctx);

  const container = program.command('container').description('Manage containers');
  defineRun(container.command('run'), ctx);
  defineCreate(container.command('create'), ctx);
  defineStart(container.command('start'), ctx);
  defineStop(container.command('stop'), ctx, false);
  defineStop(container.command('restart'), ctx, true);
  defineKill(container.command('kill'), ctx);
  defineRm(container.command('rm').alias('remove'), ctx);
  defineWait(container.command('wait'), ctx);
  definePs(container.command('ls').alias('ps').alias('list'), ctx);
  defineLogs(container.command('logs'), ctx);
  defineExec(container.command('exec'), ctx);
  defineInspect(container.command('inspect'), ctx);
  defineCommit(container.command('commit'), ctx);
  defineDiff(container.command('diff'), ctx);
  definePrune(container.command('prune'), ctx);
  defineSupervise(container.command('supervise', { hidden: true }), ctx);
}
