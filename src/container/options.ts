/**
 * `docker run`'s flags and the image config turned into a container's resolved configuration:
 * environment (image Env, then `--env-file`, then `-e`), ENTRYPOINT/CMD, mounts (`-v`,
 * `--mount`), published ports (`-p`, `-P`), restart policy and healthcheck. Pure functions: what
 * needs the root filesystem (users) or the host (free ports) is done at start.
 */
import { constants } from 'node:os';
import { isAbsolute, posix } from 'node:path';

import { StrataError } from '../errors.js';
import type { ContainerConfig, HealthConfig } from '../oci/types.js';
import type {
  ContainerMount,
  HealthSettings,
  PortBinding,
  Protocol,
  RestartPolicy,
  RestartPolicyName,
} from './types.js';

const invalid = (message: string): StrataError => new StrataError('INVALID_ARGUMENT', message);

/** Docker's PATH for a container whose image sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's name rule for containers. */
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function validateName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw invalid(`invalid container name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return name;
}

/**
 * An env file as docker reads it: `KEY=VALUE` lines taken literally (no quote removal), `KEY`
 * alone takes the value from strata's own environment (and is dropped when unset there), blank
 * lines and `#` comments are skipped.
 */
export function parseEnvFile(text: string, file: string, hostEnv: NodeJS.ProcessEnv): string[] {
  const entries: string[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const entry = envEntry(line, hostEnv);
    if (entry === null) throw invalid(`${file}:${index + 1}: variable name is empty`);
    if (entry !== undefined) entries.push(entry);
  }
  return entries;
}

/** `-e KEY=VALUE` or `-e KEY` (host value); undefined when KEY is unset here; null when malformed. */
function envEntry(text: string, hostEnv: NodeJS.ProcessEnv): string | undefined | null {
  const eq = text.indexOf('=');
  const key = eq < 0 ? text : text.slice(0, eq);
  if (key === '' || /\s/.test(key)) return null;
  if (eq >= 0) return text;
  const value = hostEnv[key];
  return value === undefined ? undefined : `${key}=${value}`;
}

export function parseEnvFlags(flags: readonly string[], hostEnv: NodeJS.ProcessEnv): string[] {
  const entries: string[] = [];
  for (const flag of flags) {
    const entry = envEntry(flag, hostEnv);
    if (entry === null) throw invalid(`invalid environment variable: ${flag}`);
    if (entry !== undefined) entries.push(entry);
  }
  return entries;
}

/** Later entries replace earlier ones with the same name, keeping the first one's position. */
export function mergeEnv(...lists: ReadonlyArray<readonly string[]>): string[] {
  const merged = new Map<string, string>();
  for (const list of lists) {
    for (const entry of list) {
      const eq = entry.indexOf('=');
      merged.set(eq < 0 ? entry : entry.slice(0, eq), entry);
    }
  }
  return [...merged.values()];
}

/**
 * ENTRYPOINT and CMD as docker combines them: `--entrypoint` replaces the image's entrypoint and
 * drops its CMD (an empty `--entrypoint ""` clears it), arguments after the image replace CMD.
 */
export function resolveCommand(
  image: Pick<ContainerConfig, 'Entrypoint' | 'Cmd'>,
  entrypointFlag: string | undefined,
  args: readonly string[],
): { entrypoint: string[]; cmd: string[] } {
  let entrypoint = [...(image.Entrypoint ?? [])];
  let cmd = [...(image.Cmd ?? [])];
  if (entrypointFlag !== undefined) {
    entrypoint = entrypointFlag === '' ? [] : [entrypointFlag];
    cmd = [];
  }
  if (args.length > 0) cmd = [...args];
  if (entrypoint.length === 0 && cmd.length === 0) {
    throw invalid('no command specified: the image has no ENTRYPOINT or CMD and none was given');
  }
  return { entrypoint, cmd };
}

function checkDestination(destination: string, flag: string): string {
  if (!posix.isAbsolute(destination))
    throw invalid(`invalid ${flag}: ${destination} is not an absolute path`);
  const normal = posix.normalize(destination).replace(/(.)\/+$/, '$1');
  if (normal === '/') throw invalid(`invalid ${flag}: cannot mount over /`);
  return normal;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * `-v SRC:DST[:OPTS]`: SRC an absolute host path (bind; created when missing, as docker does for
 * `-v`) or a volume name; `-v DST` alone is an anonymous volume. OPTS: `ro`, `rw`, and SELinux or
 * propagation flags, which are accepted and ignored.
 */
export function parseVolumeFlag(text: string, cwd: string): ContainerMount {
  const parts = text.split(':');
  if (parts.length > 3 || parts.some((part) => part === ''))
    throw invalid(`invalid volume specification: "${text}"`);
  if (parts.length === 1) {
    return {
      type: 'volume',
      source: '',
      destination: checkDestination(parts[0] as string, '-v'),
      readonly: false,
      options: [],
      anonymous: true,
    };
  }
  const [source, destination, optionText] = parts as [string, string, string | undefined];
  let readonly = false;
  for (const option of optionText?.split(',') ?? []) {
    if (option === 'ro') readonly = true;
    else if (option === 'rw') readonly = false;
    else if (
      !['z', 'Z', 'nocopy', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(option)
    )
      throw invalid(`invalid volume specification: "${text}": unknown option ${option}`);
  }
  const isPath = source.startsWith('/') || source.startsWith('.') || source.startsWith('~');
  if (isPath) {
    if (!isAbsolute(source) && !source.startsWith('.'))
      throw invalid(`invalid volume specification: "${text}": ~ is not expanded`);
    return {
      type: 'bind',
      source: posix.resolve(cwd, source),
      destination: checkDestination(destination, '-v'),
      readonly,
      options: [],
    };
  }
  if (!VOLUME_NAME.test(source)) throw invalid(`invalid volume name "${source}"`);
  return { type: 'volume', source, destination: checkDestination(destination, '-v'), readonly, options: [] };
}

/** `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`. */
export function parseMountFlag(text: string, cwd: string): ContainerMount {
  const fields = new Map<string, string | undefined>();
  for (const field of text.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    if (key === '') throw invalid(`invalid --mount "${text}": empty field`);
    fields.set(key, eq < 0 ? undefined : field.slice(eq + 1));
  }
  const take = (...keys: string[]): string | undefined => {
    for (const key of keys) {
      if (fields.has(key)) {
        const value = fields.get(key);
        fields.delete(key);
        return value ?? '';
      }
    }
    return undefined;
  };
  const type = take('type') ?? 'volume';
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs')
    throw invalid(`invalid --mount "${text}": type must be bind, volume or tmpfs`);
  const source = take('source', 'src');
  const target = take('target', 'destination', 'dst');
  const readonlyText = take('readonly', 'ro');
  const readonly = readonlyText !== undefined && readonlyText !== 'false' && readonlyText !== '0';
  if (readonlyText !== undefined && !['', 'true', '1', 'false', '0'].includes(readonlyText))
    throw invalid(`invalid --mount "${text}": readonly takes true or false`);
  if (target === undefined || target === '') throw invalid(`invalid --mount "${text}": target is required`);
  const destination = checkDestination(target, '--mount');
  const options: string[] = [];
  if (type === 'tmpfs') {
    if (source !== undefined) throw invalid(`invalid --mount "${text}": a tmpfs has no source`);
    const size = take('tmpfs-size');
    const mode = take('tmpfs-mode');
    if (size !== undefined) {
      if (!/^\d+[kmg]?$/i.test(size)) throw invalid(`invalid --mount "${text}": bad tmpfs-size ${size}`);
      options.push(`size=${size}`);
    }
    if (mode !== undefined) {
      if (!/^[0-7]{3,4}$/.test(mode)) throw invalid(`invalid --mount "${text}": bad tmpfs-mode ${mode}`);
      options.push(`mode=${mode}`);
    }
  } else {
    take('bind-propagation', 'volume-nocopy', 'consistency');
  }
  const unknown = [...fields.keys()];
  if (unknown.length > 0) throw invalid(`invalid --mount "${text}": unknown field ${unknown.join(', ')}`);
  if (type === 'bind') {
    if (source === undefined || source === '') throw invalid(`invalid --mount "${text}": source is required`);
    return { type, source: posix.resolve(cwd, source), destination, readonly, options };
  }
  if (type === 'volume') {
    if (source === undefined || source === '')
      return { type, source: '', destination, readonly, options, anonymous: true };
    if (!VOLUME_NAME.test(source)) throw invalid(`invalid volume name "${source}"`);
    return { type, source, destination, readonly, options };
  }
  return { type, source: '', destination, readonly, options };
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^\d+$/.test(text)) throw invalid(`invalid ${what} "${text}" in -p ${spec}`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw invalid(`invalid ${what} "${text}" in -p ${spec}: not in 1-65535`);
  return port;
}

/** `-p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]`; an IPv6 address is written in brackets. */
export function parsePublish(spec: string): PortBinding {
  let rest = spec;
  let protocol: Protocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const proto = rest.slice(slash + 1).toLowerCase();
    if (proto !== 'tcp' && proto !== 'udp') throw invalid(`invalid protocol "${proto}" in -p ${spec}`);
    protocol = proto;
    rest = rest.slice(0, slash);
  }
  let hostIp = '';
  const bracket = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (bracket) {
    hostIp = bracket[1] as string;
    rest = bracket[2] as string;
  }
  const parts = rest.split(':');
  if (parts.some((part) => part.includes('-'))) throw invalid(`port ranges are not supported: -p ${spec}`);
  let hostPortText = '';
  let containerText: string;
  if (parts.length === 1) containerText = parts[0] as string;
  else if (parts.length === 2) [hostPortText, containerText] = parts as [string, string];
  else if (parts.length === 3 && !bracket)
    [hostIp, hostPortText, containerText] = parts as [string, string, string];
  else throw invalid(`invalid port specification: -p ${spec}`);
  if (hostIp !== '' && !/^(\d{1,3}\.){3}\d{1,3}$/.test(hostIp) && !hostIp.includes(':'))
    throw invalid(`invalid IP address "${hostIp}" in -p ${spec}`);
  return {
    hostIp,
    hostPort: hostPortText === '' ? 0 : parsePort(hostPortText, 'host port', spec),
    containerPort: parsePort(containerText, 'container port', spec),
    protocol,
  };
}

/** `-P`: every port the image EXPOSEs, to a free host port each. */
export function publishAll(exposed: Record<string, object> | null | undefined): PortBinding[] {
  return Object.keys(exposed ?? {}).map((key) => {
    const [port, proto] = key.split('/') as [string, string | undefined];
    return {
      hostIp: '',
      hostPort: 0,
      containerPort: parsePort(port, 'exposed port', key),
      protocol: proto === 'udp' ? 'udp' : 'tcp',
    };
  });
}

export function parseRestart(text: string): RestartPolicy {
  const [name, count, extra] = text.split(':');
  const names: RestartPolicyName[] = ['no', 'on-failure', 'always', 'unless-stopped'];
  if (extra !== undefined || !names.includes(name as RestartPolicyName))
    throw invalid(`invalid restart policy "${text}": use no, on-failure[:N], always or unless-stopped`);
  if (count !== undefined && (name !== 'on-failure' || !/^\d+$/.test(count)))
    throw invalid(`invalid restart policy "${text}": only on-failure takes a retry count`);
  return { name: name as RestartPolicyName, maximumRetryCount: count === undefined ? 0 : Number(count) };
}

/** Docker's defaults (moby's container/health defaults). */
export const HEALTH_DEFAULTS = {
  interval: 30e9,
  timeout: 30e9,
  startPeriod: 0,
  startInterval: 5e9,
  retries: 3,
} as const;

/**
 * The healthcheck a container runs: the image's, with `--health-*` flags overriding its fields;
 * none for `--no-healthcheck`, for an image without one, or for `["NONE"]`.
 */
export function resolveHealthcheck(
  image: HealthConfig | undefined,
  flags: {
    cmd?: string;
    interval?: number;
    timeout?: number;
    startPeriod?: number;
    startInterval?: number;
    retries?: number;
    disabled?: boolean;
  },
): HealthSettings | undefined {
  if (flags.disabled) {
    if (flags.cmd !== undefined) throw invalid('--no-healthcheck conflicts with --health-cmd');
    return undefined;
  }
  const test = flags.cmd !== undefined ? ['CMD-SHELL', flags.cmd] : (image?.Test ?? undefined);
  if (!test || test.length === 0 || test[0] === 'NONE') return undefined;
  if (test[0] !== 'CMD' && test[0] !== 'CMD-SHELL')
    throw invalid(`unknown healthcheck type ${JSON.stringify(test[0])}`);
  // Zero in an image config means "inherit the default", as in docker.
  const pick = (flag: number | undefined, fromImage: number | undefined, fallback: number) =>
    flag !== undefined && flag > 0 ? flag : fromImage !== undefined && fromImage > 0 ? fromImage : fallback;
  return {
    test: [...test],
    interval: pick(flags.interval, image?.Interval, HEALTH_DEFAULTS.interval),
    timeout: pick(flags.timeout, image?.Timeout, HEALTH_DEFAULTS.timeout),
    startPeriod: pick(flags.startPeriod, image?.StartPeriod, HEALTH_DEFAULTS.startPeriod),
    startInterval: pick(flags.startInterval, image?.StartInterval, HEALTH_DEFAULTS.startInterval),
    retries: pick(flags.retries, image?.Retries, HEALTH_DEFAULTS.retries),
  };
}

/** `docker run --stop-signal` / STOPSIGNAL: a name (`SIGTERM`, `TERM`) or number, as `SIGTERM` or `9`. */
export function normalizeSignal(text: string): string {
  const trimmed = text.trim().toUpperCase();
  if (/^\d+$/.test(trimmed)) {
    const number = Number(trimmed);
    if (number < 1 || number > 64) throw invalid(`invalid signal: ${text}`);
    return trimmed;
  }
  const name = trimmed.startsWith('SIG') ? trimmed : `SIG${trimmed}`;
  if (!(name in constants.signals)) throw invalid(`invalid signal: ${text}`);
  return name;
}
