/**
 * `RUN --mount=…` options, parsed and checked as BuildKit's Dockerfile frontend does
 * (instructions/commands_runmount.go): CSV fields `key=value` (or a bare boolean key), types
 * bind (default), cache, tmpfs, secret and ssh, with their defaults.
 */
import { posix } from 'node:path';

import { StrataError } from '../errors.js';

export type SharingMode = 'shared' | 'private' | 'locked';

export type MountSpec =
  | { type: 'bind'; target: string; source: string; from?: string; readwrite: boolean }
  | {
      type: 'cache';
      target: string;
      id: string;
      readonly: boolean;
      sharing: SharingMode;
      from?: string;
      source: string;
      mode: number;
      uid: number;
      gid: number;
    }
  | { type: 'tmpfs'; target: string; size?: number }
  | {
      type: 'secret';
      id: string;
      target?: string;
      env?: string;
      required: boolean;
      mode: number;
      uid: number;
      gid: number;
    }
  | { type: 'ssh'; id: string; target: string; required: boolean; mode: number; uid: number; gid: number };

function fail(message: string): never {
  throw new StrataError('INVALID_ARGUMENT', message);
}

/** Splits one `--mount` value like Go's csv reader: commas separate, double quotes group. */
function csvFields(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      fields.push(field);
      field = '';
    } else field += ch;
  }
  if (quoted) fail(`invalid mount "${text}": unterminated quote`);
  fields.push(field);
  return fields;
}

function parseBool(key: string, value: string | undefined): boolean {
  if (value === undefined) return true;
  const lower = value.toLowerCase();
  if (['1', 't', 'true'].includes(lower)) return true;
  if (['0', 'f', 'false'].includes(lower)) return false;
  return fail(`invalid value for ${key}: ${value}`);
}

function parseNumber(key: string, value: string, radix: 8 | 10): number {
  if (!(radix === 8 ? /^0?[0-7]+$/ : /^\d+$/).test(value)) fail(`invalid value for ${key}: ${value}`);
  return Number.parseInt(value, radix);
}

/** `64m`, `1g`, `1024` (bytes) → bytes, like go-units RAMInBytes. */
function parseSize(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(value);
  if (!match) fail(`invalid size: ${value}`);
  const units = ['', 'k', 'm', 'g', 't', 'p'];
  return Math.round(Number(match[1]) * 1024 ** units.indexOf((match[2] ?? '').toLowerCase()));
}

/** One `--mount` option value; `sshIndex` numbers default ssh targets like BuildKit. */
export function parseMount(text: string, sshIndex = 0): MountSpec {
  const values = new Map<string, string | undefined>();
  for (const field of csvFields(text)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    if (key === '') continue;
    values.set(key, eq < 0 ? undefined : field.slice(eq + 1));
  }
  const type = (values.get('type') ?? 'bind').toLowerCase();
  const allowed: Record<string, readonly string[]> = {
    bind: [
      'type',
      'target',
      'dst',
      'destination',
      'source',
      'src',
      'from',
      'rw',
      'readwrite',
      'ro',
      'readonly',
    ],
    cache: [
      'type',
      'target',
      'dst',
      'destination',
      'id',
      'ro',
      'readonly',
      'rw',
      'readwrite',
      'sharing',
      'from',
      'source',
      'src',
      'mode',
      'uid',
      'gid',
    ],
    tmpfs: ['type', 'target', 'dst', 'destination', 'size'],
    secret: [
      'type',
      'id',
      'target',
      'dst',
      'destination',
      'env',
      'required',
      'mode',
      'uid',
      'gid',
      'source',
      'src',
    ],
    ssh: ['type', 'id', 'target', 'dst', 'destination', 'required', 'mode', 'uid', 'gid'],
  };
  const keys = allowed[type];
  if (keys === undefined) fail(`unsupported mount type "${type}"`);
  for (const key of values.keys()) if (!keys.includes(key)) fail(`unexpected key '${key}' in '${text}'`);
  const get = (...names: string[]): string | undefined => {
    for (const name of names) if (values.has(name)) return values.get(name) ?? '';
    return undefined;
  };
  const target = get('target', 'dst', 'destination');
  const absolute = (path: string): string => posix.resolve('/', path);
  // A bare boolean key (`rw`) means true: parseBool takes the raw value (undefined), not get()'s ''.
  const flag = (...names: string[]): string | undefined =>
    values.get(names.find((name) => values.has(name)) ?? '');
  const readwrite =
    values.has('rw') || values.has('readwrite') ? parseBool('rw', flag('rw', 'readwrite')) : false;
  const readonlyFlag =
    values.has('ro') || values.has('readonly') ? parseBool('ro', flag('ro', 'readonly')) : undefined;
  const ids = (key: 'uid' | 'gid'): number => (values.has(key) ? parseNumber(key, get(key) ?? '', 10) : 0);
  switch (type) {
    case 'bind':
      if (target === undefined || target === '') fail('mount type=bind requires a target');
      return {
        type,
        target: absolute(target),
        source: get('source', 'src') ?? '/',
        ...(values.has('from') ? { from: get('from') as string } : {}),
        readwrite: readonlyFlag === undefined ? readwrite : !readonlyFlag,
      };
    case 'cache': {
      if (target === undefined || target === '') fail('mount type=cache requires a target');
      const sharing = (get('sharing') ?? 'shared').toLowerCase();
      if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked')
        fail(`unrecognized sharing parameter in mount: ${sharing}`);
      return {
        type,
        target: absolute(target),
        id: get('id') || absolute(target),
        readonly: readonlyFlag ?? (values.has('rw') || values.has('readwrite') ? !readwrite : false),
        sharing,
        ...(values.has('from') ? { from: get('from') as string } : {}),
        source: get('source', 'src') ?? '/',
        mode: values.has('mode') ? parseNumber('mode', get('mode') ?? '', 8) : 0o755,
        uid: ids('uid'),
        gid: ids('gid'),
      };
    }
    case 'tmpfs': {
      if (target === undefined || target === '') fail('mount type=tmpfs requires a target');
      const size = get('size');
      return { type, target: absolute(target), ...(size !== undefined ? { size: parseSize(size) } : {}) };
    }
    case 'secret': {
      if (values.has('source') || values.has('src')) fail('secret mount source is not supported: use id');
      const env = get('env');
      let id = get('id');
      if ((id === undefined || id === '') && target !== undefined && target !== '')
        id = posix.basename(target);
      if (id === undefined || id === '') fail('secret mount requires an id or a target');
      return {
        type,
        id,
        ...(target !== undefined && target !== ''
          ? { target: absolute(target) }
          : env === undefined
            ? { target: `/run/secrets/${id}` }
            : {}),
        ...(env !== undefined && env !== '' ? { env } : {}),
        required: values.has('required') ? parseBool('required', flag('required')) : false,
        mode: values.has('mode') ? parseNumber('mode', get('mode') ?? '', 8) : 0o400,
        uid: ids('uid'),
        gid: ids('gid'),
      };
    }
    default: {
      const id = get('id') || 'default';
      return {
        type: 'ssh',
        id,
        target:
          target !== undefined && target !== '' ? absolute(target) : `/run/buildkit/ssh_agent.${sshIndex}`,
        required: values.has('required') ? parseBool('required', flag('required')) : false,
        mode: values.has('mode') ? parseNumber('mode', get('mode') ?? '', 8) : 0o600,
        uid: ids('uid'),
        gid: ids('gid'),
      };
    }
  }
}
