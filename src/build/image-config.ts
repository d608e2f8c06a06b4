/**
 * How each Dockerfile instruction changes the image config, and the history entry it leaves,
 * as BuildKit's Dockerfile frontend does (dockerfile2llb). Pure functions over plain objects:
 * the solver owns the state, this module only knows the rules.
 */
import { posix } from 'node:path';

import type { Instruction } from '../dockerfile/instructions.js';
import type { ContainerConfig, HistoryEntry, ImageConfig } from '../oci/types.js';
import { StrataError } from '../errors.js';

/** Linux's default PATH, which BuildKit puts in images that have none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c'];

export function getEnv(config: ContainerConfig, name: string): string | undefined {
  for (const entry of config.Env ?? []) {
    const eq = entry.indexOf('=');
    if ((eq < 0 ? entry : entry.slice(0, eq)) === name) return eq < 0 ? '' : entry.slice(eq + 1);
  }
  return undefined;
}

/** Sets `name` in place (keeping its position) or appends it, like BuildKit's addEnv. */
export function setEnv(config: ContainerConfig, name: string, value: string): void {
  const env = [...(config.Env ?? [])];
  const index = env.findIndex((entry) => entry === name || entry.startsWith(`${name}=`));
  if (index >= 0) env[index] = `${name}=${value}`;
  else env.push(`${name}=${value}`);
  config.Env = env;
}

/** `80`, `80/udp`, `8000-8002/tcp` → the ExposedPorts keys. */
export function exposedPorts(spec: string): string[] {
  const match = /^(\d+)(?:-(\d+))?(?:\/([a-zA-Z]+))?$/.exec(spec);
  if (!match) throw new StrataError('INVALID_ARGUMENT', `invalid containerPort: ${spec}`);
  const protocol = (match[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(protocol))
    throw new StrataError('INVALID_ARGUMENT', `invalid proto: ${protocol}`);
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  if (first > 65535 || last > 65535 || last < first)
    throw new StrataError('INVALID_ARGUMENT', `invalid port range: ${spec}`);
  const ports: string[] = [];
  for (let port = first; port <= last; port++) ports.push(`${port}/${protocol}`);
  return ports;
}

/** WORKDIR relative to the current one; always absolute and clean. */
export function resolveWorkdir(current: string | undefined, path: string): string {
  return posix.resolve('/', current || '/', path);
}

/** The command a CMD/ENTRYPOINT/RUN runs: exec form as is, shell form through SHELL. */
export function commandArgs(
  command: { form: 'exec' | 'shell'; args: readonly string[] },
  shell: readonly string[],
): string[] {
  return command.form === 'exec' ? [...command.args] : [...shell, command.args.join(' ')];
}

/** `CMD []` leaves the field out, as BuildKit's omitempty does. */
function setCommand(config: ContainerConfig, field: 'Cmd' | 'Entrypoint', args: string[]): void {
  if (args.length === 0) delete config[field];
  else config[field] = args;
}

/** Per-stage facts that are not in the config but change how instructions apply. */
export interface StageFlags {
  /** A CMD was given in this stage (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/**
 * Applies a metadata instruction (already expanded) to `config`. Returns false for instructions
 * that are not metadata (RUN, COPY, ADD, ARG, FROM): the solver handles those.
 */
export function applyMetadata(image: ImageConfig, instruction: Instruction, flags: StageFlags): boolean {
  const config = (image.config ??= {});
  const shell = config.Shell && config.Shell.length > 0 ? config.Shell : DEFAULT_SHELL;
  switch (instruction.kind) {
    case 'ENV':
      for (const pair of instruction.pairs) setEnv(config, pair.key, pair.value);
      return true;
    case 'LABEL':
      config.Labels = { ...(config.Labels ?? {}) };
      for (const pair of instruction.pairs) config.Labels[pair.key] = pair.value;
      return true;
    case 'MAINTAINER':
      image.author = instruction.maintainer;
      return true;
    case 'USER':
      config.User = instruction.user;
      return true;
    case 'WORKDIR':
      config.WorkingDir = resolveWorkdir(config.WorkingDir, instruction.path);
      return true;
    case 'EXPOSE':
      config.ExposedPorts = { ...(config.ExposedPorts ?? {}) };
      for (const spec of instruction.ports)
        for (const port of exposedPorts(spec)) config.ExposedPorts[port] = {};
      return true;
    case 'VOLUME':
      config.Volumes = { ...(config.Volumes ?? {}) };
      for (const path of instruction.paths) {
        if (path.trim() === '')
          throw new StrataError('INVALID_ARGUMENT', 'VOLUME specified can not be an empty string');
        config.Volumes[path] = {};
      }
      return true;
    case 'CMD':
      setCommand(config, 'Cmd', commandArgs(instruction.command, shell));
      flags.cmdSet = true;
      return true;
    case 'ENTRYPOINT':
      setCommand(config, 'Entrypoint', commandArgs(instruction.command, shell));
      if (!flags.cmdSet) delete config.Cmd;
      return true;
    case 'STOPSIGNAL':
      config.StopSignal = instruction.signal;
      return true;
    case 'HEALTHCHECK': {
      const health: NonNullable<ContainerConfig['Healthcheck']> = { Test: instruction.test };
      if (instruction.test[0] !== 'NONE') {
        if (instruction.interval !== undefined) health.Interval = instruction.interval;
        if (instruction.timeout !== undefined) health.Timeout = instruction.timeout;
        if (instruction.startPeriod !== undefined) health.StartPeriod = instruction.startPeriod;
        if (instruction.startInterval !== undefined) health.StartInterval = instruction.startInterval;
        if (instruction.retries !== undefined) health.Retries = instruction.retries;
      }
      config.Healthcheck = health;
      return true;
    }
    case 'SHELL':
      config.Shell = [...instruction.shell];
      return true;
    case 'ONBUILD':
      config.OnBuild = [...(config.OnBuild ?? []), instruction.expression];
      return true;
    default:
      return false;
  }
}

/** The history text BuildKit writes for an instruction (`created_by`). */
export function historyText(instruction: Instruction, shell: readonly string[] = DEFAULT_SHELL): string {
  switch (instruction.kind) {
    case 'RUN':
      return `RUN ${commandArgs(instruction.command, shell).join(' ')} # buildkit`;
    case 'COPY':
    case 'ADD': {
      const sources = [...instruction.inline.map((source) => `<<${source.path}`), ...instruction.sources];
      return `${instruction.kind} ${[...sources, instruction.dest].join(' ')} # buildkit`;
    }
    case 'ENV':
    case 'LABEL':
      return `${instruction.kind} ${instruction.pairs.map((pair) => `${pair.key}=${pair.value}`).join(' ')}`;
    case 'CMD':
    case 'ENTRYPOINT':
      return `${instruction.kind} ${JSON.stringify(commandArgs(instruction.command, shell))}`;
    case 'WORKDIR':
      return `WORKDIR ${instruction.path}`;
    case 'USER':
      return `USER ${instruction.user}`;
    case 'EXPOSE':
      return `EXPOSE map[${instruction.ports
        .flatMap(exposedPorts)
        .map((port) => `${port}:{}`)
        .join(' ')}]`;
    case 'VOLUME':
      return `VOLUME ${JSON.stringify(instruction.paths)}`;
    case 'STOPSIGNAL':
      return `STOPSIGNAL ${instruction.signal}`;
    case 'HEALTHCHECK':
      return `HEALTHCHECK &{${JSON.stringify(instruction.test)}}`;
    case 'SHELL':
      return `SHELL ${JSON.stringify(instruction.shell)}`;
    case 'ONBUILD':
      return `ONBUILD ${instruction.expression}`;
    case 'MAINTAINER':
      return `MAINTAINER ${instruction.maintainer}`;
    case 'ARG':
      return `ARG ${instruction.args.map((arg) => (arg.value === undefined ? arg.name : `${arg.name}=${arg.value}`)).join(' ')}`;
    case 'FROM':
      return `FROM ${instruction.image}`;
  }
}

export function historyEntry(
  createdBy: string,
  created: string,
  emptyLayer: boolean,
  comment?: string,
): HistoryEntry {
  return {
    created,
    created_by: createdBy,
    ...(comment === undefined ? {} : { comment }),
    ...(emptyLayer ? { empty_layer: true } : {}),
  };
}
