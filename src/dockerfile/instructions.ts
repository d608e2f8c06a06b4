/**
 * Typed instructions from parser nodes, with BuildKit's validation (instructions/parse.go):
 * argument counts, flags per instruction, exec/shell forms, heredoc sources, stage names.
 * Nothing is expanded here; expansion needs the build state (see stages.ts).
 */
import type { Heredoc, InstructionNode, SourceRange } from './parser.js';
import { dockerfileError } from './errors.js';
import { FlagError, InstructionFlags, suggestion } from './flags.js';
import { parseGoDuration } from '../oci/duration.js';

export interface CommandLine {
  /** `exec`: JSON array, run as is; `shell`: one string run through SHELL. */
  form: 'exec' | 'shell';
  args: string[];
  /** Heredoc bodies attached to the instruction (RUN <<EOF …). */
  heredocs: Heredoc[];
}

export interface KeyValue {
  key: string;
  /** As written (quotes and escapes kept): expansion removes them. */
  value: string;
}

export interface ArgDeclaration {
  name: string;
  /** Default as written; undefined for a bare `ARG name`. */
  value?: string;
}

/** COPY/ADD heredoc sources: files created from the body. */
export interface InlineSource {
  path: string;
  data: string;
  expand: boolean;
}

interface Common {
  range: SourceRange;
  /** The instruction as written, for history (`created_by`) and error messages. */
  original: string;
}

export type Instruction = Common &
  (
    | { kind: 'FROM'; image: string; name?: string; platform?: string }
    | {
        kind: 'RUN';
        command: CommandLine;
        mounts: string[];
        network?: string;
        security?: string;
        devices: string[];
      }
    | { kind: 'CMD'; command: CommandLine }
    | { kind: 'ENTRYPOINT'; command: CommandLine }
    | { kind: 'ENV'; pairs: KeyValue[]; legacy: boolean }
    | { kind: 'LABEL'; pairs: KeyValue[]; legacy: boolean }
    | { kind: 'ARG'; args: ArgDeclaration[] }
    | {
        kind: 'COPY';
        sources: string[];
        inline: InlineSource[];
        dest: string;
        from?: string;
        chown?: string;
        chmod?: string;
        link: boolean;
        parents: boolean;
        exclude: string[];
      }
    | {
        kind: 'ADD';
        sources: string[];
        inline: InlineSource[];
        dest: string;
        chown?: string;
        chmod?: string;
        link: boolean;
        keepGitDir: boolean;
        checksum?: string;
        unpack?: boolean;
        exclude: string[];
      }
    | { kind: 'WORKDIR'; path: string }
    | { kind: 'USER'; user: string }
    | { kind: 'EXPOSE'; ports: string[] }
    | { kind: 'VOLUME'; paths: string[] }
    | { kind: 'STOPSIGNAL'; signal: string }
    | {
        kind: 'HEALTHCHECK';
        /** `['NONE']`, `['CMD', …exec]` or `['CMD-SHELL', script]`, as in the image config. */
        test: string[];
        /** Nanoseconds, as the image config stores them; undefined when not given. */
        interval?: number;
        timeout?: number;
        startPeriod?: number;
        startInterval?: number;
        retries?: number;
      }
    | { kind: 'SHELL'; shell: string[] }
    | { kind: 'ONBUILD'; expression: string; trigger: Instruction }
    | { kind: 'MAINTAINER'; maintainer: string }
  );

export type InstructionKind = Instruction['kind'];

export const INSTRUCTION_NAMES: readonly InstructionKind[] = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
];

/** Stage names: lower-cased, `[a-z][a-z0-9-_.]*`. */
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

class InstructionError extends Error {}

function fail(message: string): never {
  throw new InstructionError(message);
}

function atLeastOne(name: string): never {
  return fail(`${name} requires at least one argument`);
}

function exactlyOne(name: string): never {
  return fail(`${name} requires exactly one argument`);
}

function commandLine(node: InstructionNode): CommandLine {
  return { form: node.json ? 'exec' : 'shell', args: [...node.args], heredocs: node.heredocs };
}

function pairs(node: InstructionNode, name: string): KeyValue[] {
  if (node.args.length === 0) atLeastOne(name);
  if (node.args.length % 3 !== 0) fail(`Bad input to ${name}, too many arguments`);
  const result: KeyValue[] = [];
  for (let i = 0; i < node.args.length; i += 3) {
    const key = node.args[i] as string;
    if (key === '') fail(`${name} names can not be blank`);
    result.push({ key, value: node.args[i + 1] as string });
  }
  return result;
}

/** `<<EOF` (or `<<-"EOF"` …) as a whole word names a heredoc. */
function heredocName(word: string): { name: string; chomp: boolean } | undefined {
  const match = /^\d*<<(-?)\s*(['"]?)([^'"\s]+)\2$/.exec(word);
  return match ? { name: match[3] as string, chomp: match[1] === '-' } : undefined;
}

function chompTabs(content: string): string {
  return content.replace(/^\t+/gm, '');
}

function sourcesAndDest(
  node: InstructionNode,
  name: string,
): { sources: string[]; inline: InlineSource[]; dest: string } {
  if (node.args.length < 2) {
    fail(
      `${name} requires at least two arguments, but only one was provided. Destination could not be determined`,
    );
  }
  const dest = node.args.at(-1) as string;
  if (heredocName(dest)) fail(`${name} cannot accept a heredoc as a destination`);
  const bodies = new Map(node.heredocs.map((heredoc) => [heredoc.name, heredoc]));
  const sources: string[] = [];
  const inline: InlineSource[] = [];
  for (const source of node.args.slice(0, -1)) {
    const marker = heredocName(source);
    const heredoc = marker ? bodies.get(marker.name) : undefined;
    if (marker && heredoc) {
      inline.push({
        path: marker.name,
        data: marker.chomp ? chompTabs(heredoc.content) : heredoc.content,
        expand: heredoc.expand,
      });
    } else {
      sources.push(source);
    }
  }
  return { sources, inline, dest };
}

/** A HEALTHCHECK duration flag in nanoseconds, with BuildKit's messages. */
function parseDuration(flag: string, text: string): number {
  const total = parseGoDuration(text);
  if (total === undefined) fail(`time: invalid duration "${text}"`);
  if (total !== 0 && total < 1e6) fail(`Interval "${flag}" cannot be less than 1ms`);
  return total;
}

function parseHealthcheck(node: InstructionNode, flags: InstructionFlags): Instruction {
  if (node.args.length === 0) atLeastOne('HEALTHCHECK');
  const type = (node.args[0] as string).toUpperCase();
  const rest = node.args.slice(1);
  const common = { kind: 'HEALTHCHECK' as const, range: node.range, original: node.original };
  if (type === 'NONE') {
    flags.parse({ ignoreUnknown: true });
    if (rest.length > 0) fail('HEALTHCHECK NONE takes no arguments');
    return { ...common, test: ['NONE'] };
  }
  const interval = flags.string('interval');
  const timeout = flags.string('timeout');
  const startPeriod = flags.string('start-period');
  const startInterval = flags.string('start-interval');
  const retries = flags.string('retries');
  flags.parse();
  if (type !== 'CMD') fail(`Unknown type "${type}" in HEALTHCHECK (try CMD)`);
  if (rest.length === 0) fail('Missing command after HEALTHCHECK CMD');
  const result: Instruction = { ...common, test: node.json ? ['CMD', ...rest] : ['CMD-SHELL', ...rest] };
  const durations = { interval, timeout, startPeriod, startInterval } as const;
  const flagNames = {
    interval: 'interval',
    timeout: 'timeout',
    startPeriod: 'start-period',
    startInterval: 'start-interval',
  };
  for (const key of Object.keys(durations) as Array<keyof typeof durations>) {
    const text = durations[key]();
    if (text !== undefined && text !== '') result[key] = parseDuration(flagNames[key], text);
  }
  const retriesText = retries();
  if (retriesText !== undefined && retriesText !== '') {
    if (!/^[+-]?\d+$/.test(retriesText)) fail(`strconv.ParseInt: parsing "${retriesText}": invalid syntax`);
    const count = Number(retriesText);
    if (count < 0) fail(`--retries cannot be negative (${count})`);
    result.retries = count;
  }
  return result;
}

function parseFrom(node: InstructionNode, flags: InstructionFlags): Instruction {
  const platform = flags.string('platform');
  const args = node.args;
  let name: string | undefined;
  if (args.length === 3 && (args[1] as string).toLowerCase() === 'as') {
    name = (args[2] as string).toLowerCase();
    if (!STAGE_NAME.test(name)) {
      fail(`invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`);
    }
  } else if (args.length !== 1) {
    fail('FROM requires either one or three arguments');
  }
  flags.parse();
  return {
    kind: 'FROM',
    range: node.range,
    original: node.original,
    image: args[0] as string,
    name,
    platform: platform(),
  };
}

function parseOnbuild(node: InstructionNode): Instruction {
  if (!node.child) atLeastOne('ONBUILD');
  const trigger = node.child.keyword.toUpperCase();
  if (trigger === 'ONBUILD') fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  if (trigger === 'MAINTAINER' || trigger === 'FROM') fail(`${trigger} isn't allowed as an ONBUILD trigger`);
  let expression = node.original.replace(/^\s*ONBUILD\s*/i, '');
  for (const heredoc of node.heredocs) expression += `\n${heredoc.content}${heredoc.name}`;
  return {
    kind: 'ONBUILD',
    range: node.range,
    original: node.original,
    expression,
    trigger: toInstruction(node.child),
  };
}

function toInstruction(node: InstructionNode): Instruction {
  const flags = new InstructionFlags(node.flags);
  const common = { range: node.range, original: node.original };
  const args = node.args;
  switch (node.keyword) {
    case 'from':
      return parseFrom(node, flags);
    case 'run': {
      const mounts = flags.strings('mount');
      const network = flags.string('network');
      const security = flags.string('security');
      const devices = flags.strings('device');
      flags.parse();
      const networkValue = network();
      if (networkValue !== undefined && !['default', 'none', 'host'].includes(networkValue)) {
        fail(`unsupported network mode "${networkValue}"`);
      }
      const securityValue = security();
      if (securityValue !== undefined && !['sandbox', 'insecure'].includes(securityValue)) {
        fail(`unsupported security mode "${securityValue}"`);
      }
      return {
        kind: 'RUN',
        ...common,
        command: commandLine(node),
        mounts: mounts(),
        network: networkValue,
        security: securityValue,
        devices: devices(),
      };
    }
    case 'cmd':
      flags.parse();
      return { kind: 'CMD', ...common, command: commandLine(node) };
    case 'entrypoint':
      flags.parse();
      return { kind: 'ENTRYPOINT', ...common, command: commandLine(node) };
    case 'env':
    case 'label': {
      flags.parse();
      const kind = node.keyword === 'env' ? 'ENV' : 'LABEL';
      return { kind, ...common, pairs: pairs(node, kind), legacy: args[2] === '' };
    }
    case 'arg': {
      if (args.length === 0) atLeastOne('ARG');
      flags.parse({ ignoreUnknown: true });
      const declarations = args.map((arg): ArgDeclaration => {
        const eq = arg.indexOf('=');
        if (eq < 0) return { name: arg };
        if (eq === 0) fail('ARG names can not be blank');
        return { name: arg.slice(0, eq), value: arg.slice(eq + 1) };
      });
      return { kind: 'ARG', ...common, args: declarations };
    }
    case 'copy': {
      if (args.length < 2) sourcesAndDest(node, 'COPY');
      const chown = flags.string('chown');
      const from = flags.string('from');
      const chmod = flags.string('chmod');
      const link = flags.bool('link');
      const parents = flags.bool('parents');
      const exclude = flags.strings('exclude');
      flags.parse();
      return {
        kind: 'COPY',
        ...common,
        ...sourcesAndDest(node, 'COPY'),
        from: from(),
        chown: chown(),
        chmod: chmod(),
        link: link() === true,
        parents: parents() === true,
        exclude: exclude(),
      };
    }
    case 'add': {
      if (args.length < 2) sourcesAndDest(node, 'ADD');
      const chown = flags.string('chown');
      const chmod = flags.string('chmod');
      const link = flags.bool('link');
      const keepGitDir = flags.bool('keep-git-dir');
      const checksum = flags.string('checksum');
      const unpack = flags.bool('unpack');
      const exclude = flags.strings('exclude');
      flags.parse();
      return {
        kind: 'ADD',
        ...common,
        ...sourcesAndDest(node, 'ADD'),
        chown: chown(),
        chmod: chmod(),
        link: link() === true,
        keepGitDir: keepGitDir() === true,
        checksum: checksum(),
        unpack: unpack(),
        exclude: exclude(),
      };
    }
    case 'workdir':
      if (args.length !== 1) exactlyOne('WORKDIR');
      flags.parse();
      return { kind: 'WORKDIR', ...common, path: args[0] as string };
    case 'user':
      if (args.length !== 1) exactlyOne('USER');
      flags.parse();
      return { kind: 'USER', ...common, user: args[0] as string };
    case 'expose':
      if (args.length === 0) atLeastOne('EXPOSE');
      flags.parse();
      return { kind: 'EXPOSE', ...common, ports: [...args].sort() };
    case 'volume': {
      if (args.length === 0) atLeastOne('VOLUME');
      flags.parse();
      const paths = args.map((path) => path.trim());
      if (paths.includes('')) fail('VOLUME specified can not be an empty string');
      return { kind: 'VOLUME', ...common, paths };
    }
    case 'stopsignal':
      if (args.length !== 1) exactlyOne('STOPSIGNAL');
      flags.parse({ ignoreUnknown: true });
      return { kind: 'STOPSIGNAL', ...common, signal: args[0] as string };
    case 'healthcheck':
      return parseHealthcheck(node, flags);
    case 'shell':
      flags.parse();
      if (args.length === 0) atLeastOne('SHELL');
      if (!node.json) fail(`SHELL requires the arguments to be in JSON form`);
      return { kind: 'SHELL', ...common, shell: [...args] };
    case 'onbuild':
      flags.parse();
      return parseOnbuild(node);
    case 'maintainer':
      if (args.length !== 1) exactlyOne('MAINTAINER');
      flags.parse();
      return { kind: 'MAINTAINER', ...common, maintainer: args[0] as string };
    default:
      fail(
        `unknown instruction: ${node.keyword.toUpperCase()}${suggestion(node.keyword.toUpperCase(), INSTRUCTION_NAMES, true)}`,
      );
  }
}

/** One parser node → a typed instruction; errors name file:line:column. */
export function parseInstruction(node: InstructionNode, file: string): Instruction {
  try {
    return toInstruction(node);
  } catch (err) {
    if (err instanceof InstructionError || err instanceof FlagError)
      throw dockerfileError(file, node.range.start, err.message);
    throw err;
  }
}
