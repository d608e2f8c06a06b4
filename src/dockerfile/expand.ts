/**
 * Which words of which instructions are expanded, as BuildKit's dispatcher does: ADD, COPY, ENV,
 * EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and flag values (COPY/ADD --chown, --chmod,
 * --exclude, --checksum; RUN --mount option values). RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK,
 * ONBUILD and MAINTAINER are kept as written: the shell (or a later build) reads them. FROM and
 * ARG are expanded where they are resolved (stages.ts), since they read other scopes.
 */
import type { Instruction, InlineSource } from './instructions.js';
import { ShellLexer } from './shell.js';
import type { StageScope } from './stages.js';

/**
 * COPY/ADD heredoc bodies expand variables but keep their quotes (the documented behaviour: the
 * file is the body, not a shell word), and only when no part of the delimiter was quoted.
 */
function expandInline(
  inline: readonly InlineSource[],
  scope: StageScope,
  instruction: Instruction,
): InlineSource[] {
  return inline.map((source) =>
    source.expand
      ? { ...source, data: scope.expandWith(heredocLexer(scope), source.data, instruction.range) }
      : source,
  );
}

const heredocLexers = new Map<string, ShellLexer>();
function heredocLexer(scope: StageScope): ShellLexer {
  let lexer = heredocLexers.get(scope.escapeToken);
  if (!lexer) {
    lexer = new ShellLexer(scope.escapeToken, { rawQuotes: true });
    heredocLexers.set(scope.escapeToken, lexer);
  }
  return lexer;
}

/** `type=cache,target=$DIR` → each option value expanded; keys and separators kept. */
function expandMount(spec: string, expand: (word: string) => string): string {
  return spec
    .split(',')
    .map((field) => {
      const eq = field.indexOf('=');
      return eq < 0 ? field : `${field.slice(0, eq)}=${expand(field.slice(eq + 1))}`;
    })
    .join(',');
}

/** The instruction with its expandable words expanded in `scope` (the scope is not changed). */
export function expandInstruction(instruction: Instruction, scope: StageScope): Instruction {
  const expand = (word: string): string => scope.expand(word, instruction.range);
  const optional = (word: string | undefined): string | undefined =>
    word === undefined ? undefined : expand(word);
  switch (instruction.kind) {
    case 'ENV':
      return { ...instruction, pairs: scope.expandPairs(instruction.pairs, instruction.range, true) };
    case 'LABEL':
      return { ...instruction, pairs: scope.expandPairs(instruction.pairs, instruction.range, true) };
    case 'COPY':
      return {
        ...instruction,
        sources: instruction.sources.map(expand),
        inline: expandInline(instruction.inline, scope, instruction),
        dest: expand(instruction.dest),
        chown: optional(instruction.chown),
        chmod: optional(instruction.chmod),
        exclude: instruction.exclude.map(expand),
      };
    case 'ADD':
      return {
        ...instruction,
        sources: instruction.sources.map(expand),
        inline: expandInline(instruction.inline, scope, instruction),
        dest: expand(instruction.dest),
        chown: optional(instruction.chown),
        chmod: optional(instruction.chmod),
        checksum: optional(instruction.checksum),
        exclude: instruction.exclude.map(expand),
      };
    case 'WORKDIR':
      return { ...instruction, path: expand(instruction.path) };
    case 'USER':
      return { ...instruction, user: expand(instruction.user) };
    case 'STOPSIGNAL':
      return { ...instruction, signal: expand(instruction.signal) };
    case 'VOLUME':
      return { ...instruction, paths: instruction.paths.map(expand) };
    case 'EXPOSE':
      // `EXPOSE $PORTS` with PORTS="80 443" exposes both.
      return {
        ...instruction,
        ports: instruction.ports.flatMap((port) =>
          expand(port)
            .split(/\s+/)
            .filter((word) => word !== ''),
        ),
      };
    case 'RUN':
      return { ...instruction, mounts: instruction.mounts.map((spec) => expandMount(spec, expand)) };
    default:
      return instruction;
  }
}
