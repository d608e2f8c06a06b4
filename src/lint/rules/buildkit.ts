/**
 * BuildKit's build checks (`docker build --check`), with BuildKit's names, descriptions and
 * detail wording, so output can be compared with Docker's. Semantics follow BuildKit's rule
 * documentation and its check tests (shared/corpora/buildkit-checks).
 */
import { PROXY_ARGS } from '../../dockerfile/stages.js';
import type { LintInstruction, LintModel, LintStage } from '../model.js';
import { instructionsOf, typedAs } from '../model.js';
import type { Rule, Violation } from '../types.js';
import { ShellLexer } from '../../dockerfile/shell.js';
import { PatternMatcher } from '../../dockerfile/dockerignore.js';
import { parseReference } from '../../oci/reference.js';
import { instructionsInScope, stageChain } from './support.js';

function kebab(name: string): string {
  return name
    .replace(/([a-z])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase();
}

function buildkit(definition: Omit<Rule, 'origin' | 'severity' | 'url'> & { url?: string }): Rule {
  return {
    severity: 'warning',
    url: definition.url ?? `https://docs.docker.com/go/dockerfile/rule/${kebab(definition.id)}/`,
    ...definition,
    origin: 'buildkit',
  };
}

const at = (instruction: LintInstruction, message: string): Violation => ({
  line: instruction.line,
  column: instruction.column,
  message,
});

/** The `AS` word of a FROM as written, if any. */
function asKeyword(stage: LintStage): string | undefined {
  return stage.from.node.args.find((arg) => arg.toLowerCase() === 'as');
}

const isUpper = (word: string): boolean => word === word.toUpperCase();
const isLower = (word: string): boolean => word === word.toLowerCase();

const StageNameCasing = buildkit({
  id: 'StageNameCasing',
  message: 'Stage names should be lowercase',
  hint: 'Write the stage name in lowercase.',
  *check(model) {
    for (const stage of model.stages) {
      const name = stage.nameAsWritten;
      if (name !== undefined && !isLower(name))
        yield at(stage.from, `Stage name '${name}' should be lowercase`);
    }
  },
});

const FromAsCasing = buildkit({
  id: 'FromAsCasing',
  message: "The 'as' keyword should match the case of the 'from' keyword",
  hint: 'Write `FROM … AS …` or `from … as …`.',
  *check(model) {
    for (const stage of model.stages) {
      const as = asKeyword(stage);
      const from = stage.from.keywordAsWritten;
      if (as === undefined) continue;
      const mismatch = (isUpper(from) && !isUpper(as)) || (isLower(from) && !isLower(as));
      if (mismatch) yield at(stage.from, `'${as}' and '${from}' keywords' casing do not match`);
    }
  },
});

const NoEmptyContinuation = buildkit({
  id: 'NoEmptyContinuation',
  message: 'Empty continuation lines will become errors in a future release',
  hint: 'Remove the empty line inside the `\\` continuation (or make it a comment).',
  *check(model) {
    for (const warning of model.parse.warnings) {
      if (warning.url.endsWith('/no-empty-continuation/')) {
        yield { line: warning.range.start.line, column: 1, message: 'Empty continuation line' };
      }
    }
  },
});

const ConsistentInstructionCasing = buildkit({
  id: 'ConsistentInstructionCasing',
  message: 'All commands within the Dockerfile should use the same casing (either upper or lower)',
  hint: 'Write every instruction keyword in the same case.',
  *check(model) {
    const keywords = model.instructions.map((instruction) => instruction.keywordAsWritten);
    const upper = keywords.filter((word) => isUpper(word)).length;
    const lower = keywords.filter((word) => isLower(word) && !isUpper(word)).length;
    const majorityUpper = upper >= lower;
    for (const instruction of model.instructions) {
      const word = instruction.keywordAsWritten;
      if (majorityUpper ? isUpper(word) : isLower(word)) continue;
      yield at(
        instruction,
        `Command '${word}' should match the case of the command majority (${majorityUpper ? 'uppercase' : 'lowercase'})`,
      );
    }
  },
});

const DuplicateStageName = buildkit({
  id: 'DuplicateStageName',
  message: 'Stage names should be unique',
  hint: 'Rename one of the stages.',
  *check(model) {
    const seen = new Set<string>();
    for (const stage of model.stages) {
      if (stage.name === undefined) continue;
      if (seen.has(stage.name)) {
        yield at(stage.from, `Duplicate stage name "${stage.name}", stage names should be unique`);
      }
      seen.add(stage.name);
    }
  },
});

const ReservedStageName = buildkit({
  id: 'ReservedStageName',
  message: 'Reserved words should not be used as stage names',
  hint: 'Pick another stage name.',
  *check(model) {
    for (const stage of model.stages) {
      if (stage.name === 'scratch' || stage.name === 'context') {
        yield at(stage.from, `Stage name should not use the same name as reserved stage "${stage.name}"`);
      }
    }
  },
});

const JSONArgsRecommended = buildkit({
  id: 'JSONArgsRecommended',
  dispatch: true,
  message:
    'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
  hint: 'Write `CMD ["program", "arg"]` so the program runs as PID 1 and receives signals.',
  *check(model) {
    for (const instruction of model.instructions) {
      const typed = instruction.typed;
      if (typed?.kind !== 'CMD' && typed?.kind !== 'ENTRYPOINT') continue;
      if (typed.command.form !== 'shell') continue;
      // A custom SHELL means the author chose how the command runs.
      if (instructionsInScope(model, instruction).some((earlier) => earlier.keyword === 'SHELL')) continue;
      yield at(
        instruction,
        `JSON arguments recommended for ${typed.kind} to prevent unintended behavior related to OS signals`,
      );
    }
  },
});

const MaintainerDeprecated = buildkit({
  id: 'MaintainerDeprecated',
  message: 'The MAINTAINER instruction is deprecated, use a label instead to define an image author',
  hint: 'Use `LABEL org.opencontainers.image.authors="…"`.',
  *check(model) {
    for (const instruction of model.instructions) {
      if (instruction.keyword === 'MAINTAINER') {
        yield at(instruction, 'Maintainer instruction is deprecated in favor of using label');
      }
    }
  },
});

/** ARGs BuildKit defines without a declaration. */
const BUILTIN_ARGS = [
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'TARGETSTAGE',
  'BUILDKIT_SYNTAX',
];

/** Edit distance where swapping two neighbouring letters is one edit (the commonest typo). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const cell = (i: number, j: number): number => (rows[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(
        cell(i - 1, j) + 1,
        cell(i, j - 1) + 1,
        cell(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, cell(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = best;
    }
  }
  return cell(a.length, b.length);
}

/** The closest known name, if it is close enough to be a likely typo. */
export function suggestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= 2 && bestDistance < name.length / 2 ? best : undefined;
}

function metaArgValues(model: LintModel): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>();
  const lexer = new ShellLexer(model.parse.escapeToken);
  for (const instruction of model.metaArgs) {
    const typed = typedAs(instruction, 'ARG');
    for (const arg of typed?.args ?? []) {
      let value: string | undefined;
      if (arg.value !== undefined) {
        try {
          value = lexer.processWord(arg.value, (name) => values.get(name));
        } catch {
          value = arg.value;
        }
      }
      values.set(arg.name, value);
    }
  }
  return values;
}

function unmatchedIn(
  word: string,
  lexer: ShellLexer,
  env: (name: string) => string | undefined,
): Set<string> {
  try {
    return lexer.processWordWithMatches(word, env).unmatched;
  } catch {
    return new Set();
  }
}

const UndefinedArgInFrom = buildkit({
  id: 'UndefinedArgInFrom',
  message: 'FROM command must use declared ARGs',
  hint: 'Declare the ARG before the first FROM.',
  *check(model) {
    const declared = metaArgValues(model);
    const known = new Set([...declared.keys(), ...BUILTIN_ARGS]);
    const lexer = new ShellLexer(model.parse.escapeToken);
    const env = (name: string): string | undefined =>
      known.has(name) ? (declared.get(name) ?? '') : undefined;
    for (const stage of model.stages) {
      const typed = typedAs(stage.from, 'FROM');
      const words = [typed?.platform, stage.image].filter((word): word is string => word !== undefined);
      for (const word of words) {
        for (const name of unmatchedIn(word, lexer, env)) {
          const suggestion = suggestName(name, known);
          yield at(
            stage.from,
            `FROM argument '${name}' is not declared${suggestion ? ` (did you mean ${suggestion}?)` : ''}`,
          );
        }
      }
    }
  },
});

const InvalidDefaultArgInFrom = buildkit({
  id: 'InvalidDefaultArgInFrom',
  message: 'Default value for global ARG results in an empty or invalid base image name',
  hint: 'Give the ARG a default that names a valid image, so the build works without --build-arg.',
  *check(model) {
    const declared = metaArgValues(model);
    const lexer = new ShellLexer(model.parse.escapeToken);
    for (const stage of model.stages) {
      const image = stage.image;
      if (!image.includes('$')) continue;
      let expanded: string;
      try {
        expanded = lexer.processWord(image, (name) =>
          declared.has(name) ? (declared.get(name) ?? '') : undefined,
        );
      } catch {
        continue;
      }
      let valid = expanded !== '';
      if (valid && expanded !== 'scratch') {
        try {
          parseReference(expanded);
        } catch {
          valid = false;
        }
      }
      if (!valid) {
        yield at(stage.from, `Default value for ARG ${image} results in empty or invalid base image name`);
      }
    }
  },
});

const WorkdirRelativePath = buildkit({
  id: 'WorkdirRelativePath',
  dispatch: true,
  message:
    'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
  hint: 'Set an absolute WORKDIR first.',
  *check(model) {
    for (const stage of model.stages) {
      let absoluteSeen = stageChain(stage)
        .slice(1)
        .some((ancestor) =>
          ancestor.instructions.some((instruction) => {
            const typed = typedAs(instruction, 'WORKDIR');
            return typed !== undefined && typed.path.startsWith('/');
          }),
        );
      for (const instruction of stage.instructions) {
        const typed = typedAs(instruction, 'WORKDIR');
        if (typed === undefined) continue;
        if (typed.path.startsWith('/') || typed.path.startsWith('$')) absoluteSeen = true;
        else if (!absoluteSeen) {
          yield at(
            instruction,
            `Relative workdir "${typed.path}" can have unexpected results if the base image changes`,
          );
        }
      }
    }
  },
});

/** Variables every image has (or BuildKit predefines) even without ARG/ENV in the Dockerfile. */
const ALWAYS_DEFINED = ['PATH', ...PROXY_ARGS];

/** The words of an instruction that BuildKit expands (and so checks for undefined variables). */
function expandedWords(instruction: LintInstruction): string[] {
  const typed = instruction.typed;
  switch (typed?.kind) {
    case 'COPY':
    case 'ADD':
      return [...typed.sources, typed.dest];
    case 'ENV':
    case 'LABEL':
      return typed.pairs.flatMap((pair) => [pair.key, pair.value]);
    case 'WORKDIR':
      return [typed.path];
    case 'USER':
      return [typed.user];
    case 'EXPOSE':
      return typed.ports;
    case 'VOLUME':
      return typed.paths;
    case 'STOPSIGNAL':
      return [typed.signal];
    default:
      return [];
  }
}

const UndefinedVar = buildkit({
  id: 'UndefinedVar',
  dispatch: true,
  message: 'Variables should be defined before their use',
  hint: 'Declare it with ARG or ENV first, or fix the spelling.',
  *check(model) {
    const lexer = new ShellLexer(model.parse.escapeToken);
    for (const stage of model.stages) {
      const defined = new Set<string>(ALWAYS_DEFINED);
      for (const ancestor of stageChain(stage).slice(1).reverse()) {
        for (const instruction of ancestor.instructions)
          for (const name of definedBy(instruction)) defined.add(name);
      }
      for (const instruction of stage.instructions) {
        const reported = new Set<string>();
        for (const word of expandedWords(instruction)) {
          for (const name of unmatchedIn(word, lexer, (candidate) =>
            defined.has(candidate) ? '' : undefined,
          )) {
            if (reported.has(name)) continue;
            reported.add(name);
            const suggestion = suggestName(name, defined);
            yield at(
              instruction,
              `Usage of undefined variable '$${name}'${suggestion ? ` (did you mean $${suggestion}?)` : ''}`,
            );
          }
        }
        for (const name of definedBy(instruction)) defined.add(name);
      }
    }
  },
});

function definedBy(instruction: LintInstruction): string[] {
  const typed = instruction.typed;
  if (typed?.kind === 'ARG') return typed.args.map((arg) => arg.name);
  if (typed?.kind === 'ENV') return typed.pairs.map((pair) => pair.key);
  return [];
}

const MultipleInstructionsDisallowed = buildkit({
  id: 'MultipleInstructionsDisallowed',
  dispatch: true,
  message: 'Multiple instructions of the same type should not be used in the same stage',
  hint: 'Only the last one takes effect: remove the others.',
  *check(model) {
    for (const stage of model.stages) {
      for (const keyword of ['ENTRYPOINT', 'CMD', 'HEALTHCHECK']) {
        const matching = stage.instructions.filter((instruction) => instruction.keyword === keyword);
        for (const instruction of matching.slice(0, -1)) {
          yield at(
            instruction,
            `Multiple ${keyword} instructions should not be used in the same stage because only the last one will be used`,
          );
        }
      }
    }
  },
});

const LegacyKeyValueFormat = buildkit({
  id: 'LegacyKeyValueFormat',
  dispatch: true,
  message: 'Legacy key/value format with whitespace separator should not be used',
  hint: 'Write `KEY=value`.',
  *check(model) {
    for (const instruction of model.instructions) {
      const typed = instruction.typed;
      if ((typed?.kind === 'ENV' || typed?.kind === 'LABEL') && typed.legacy) {
        yield at(
          instruction,
          `"${typed.kind} key=value" should be used instead of legacy "${typed.kind} key value" format`,
        );
      }
    }
  },
});

const RedundantTargetPlatform = buildkit({
  id: 'RedundantTargetPlatform',
  message:
    'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
  hint: 'Remove `--platform=$TARGETPLATFORM`.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'FROM')) {
      const platform = typed.platform;
      if (platform === '$TARGETPLATFORM' || platform === '${TARGETPLATFORM}') {
        yield at(
          instruction,
          `Setting platform to predefined ${platform} in FROM is redundant as this is the default behavior`,
        );
      }
    }
  },
});

const FromPlatformFlagConstDisallowed = buildkit({
  id: 'FromPlatformFlagConstDisallowed',
  message: 'FROM --platform flag should not use a constant value',
  hint: 'Use `$BUILDPLATFORM`/`$TARGETPLATFORM` or the `--platform` build option.',
  *check(model) {
    for (const stage of model.stages) {
      const platform = typedAs(stage.from, 'FROM')?.platform;
      if (platform === undefined || platform.includes('$')) continue;
      // A stage named after its platform (`AS linux`, `AS build_amd64`) is pinned on purpose.
      const name = stage.name ?? '';
      if (name !== '' && platform.split('/').some((part) => part !== '' && name.includes(part.toLowerCase())))
        continue;
      yield at(stage.from, `FROM --platform flag should not use constant value "${platform}"`);
    }
  },
});

const CopyIgnoredFile = buildkit({
  id: 'CopyIgnoredFile',
  dispatch: true,
  message: 'Attempting to Copy file that is excluded by .dockerignore',
  hint: 'Remove the path from .dockerignore or stop copying it.',
  *check(model) {
    const patterns = model.dockerignore;
    if (patterns === undefined || patterns.length === 0) return;
    const matcher = new PatternMatcher(patterns);
    for (const instruction of model.instructions) {
      const typed = instruction.typed;
      if (typed?.kind !== 'COPY' && typed?.kind !== 'ADD') continue;
      if (typed.kind === 'COPY' && typed.from !== undefined) continue;
      for (const source of typed.sources) {
        if (/^[a-z]+:\/\//i.test(source)) continue;
        const path = source.replace(/^(\.\/)+/, '').replace(/^\/+/, '') || '.';
        // The context root counts as excluded only when the patterns exclude everything in it.
        const excluded =
          path === '.'
            ? !matcher.hasExclusions() && matcher.matches('.') && matcher.matches('any-file')
            : matcher.matches(path);
        if (excluded) {
          const verb = typed.kind === 'COPY' ? 'Copy' : 'Add';
          yield at(instruction, `Attempting to ${verb} file "${source}" that is excluded by .dockerignore`);
        }
      }
    }
  },
});

const ExposeProtoCasing = buildkit({
  id: 'ExposeProtoCasing',
  dispatch: true,
  message: 'Protocol in EXPOSE instruction should be lowercase',
  hint: 'Write `80/tcp`.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'EXPOSE')) {
      for (const port of typed.ports) {
        const protocol = port.split('/')[1];
        if (protocol !== undefined && protocol !== protocol.toLowerCase()) {
          yield at(instruction, `Defined protocol '${port}' in EXPOSE instruction should be lowercase`);
        }
      }
    }
  },
});

const ExposeInvalidFormat = buildkit({
  id: 'ExposeInvalidFormat',
  dispatch: true,
  message:
    'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
  hint: 'EXPOSE takes container ports only; publish host ports with `docker run -p`.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'EXPOSE')) {
      for (const port of typed.ports) {
        if (port.includes(':')) {
          yield at(
            instruction,
            `EXPOSE instruction should not define an IP address or host-port mapping, found '${port}'`,
          );
        }
      }
    }
  },
});

const SECRET_WORDS = new Set([
  'apikey',
  'auth',
  'credential',
  'credentials',
  'key',
  'password',
  'pword',
  'passwd',
  'secret',
  'token',
]);
const NOT_SECRET_WORDS = new Set(['public', 'file', 'version']);

/** BuildKit's heuristic: a `_`-separated word of the name is a secret word and none is benign. */
export function looksLikeSecret(name: string): boolean {
  const words = name.toLowerCase().split(/[_-]/);
  return words.some((word) => SECRET_WORDS.has(word)) && !words.some((word) => NOT_SECRET_WORDS.has(word));
}

const SecretsUsedInArgOrEnv = buildkit({
  id: 'SecretsUsedInArgOrEnv',
  dispatch: true,
  message: 'Sensitive data should not be used in the ARG or ENV commands',
  hint: 'Pass secrets with `RUN --mount=type=secret`; ARG and ENV values are stored in the image.',
  *check(model) {
    for (const instruction of model.instructions) {
      const typed = instruction.typed;
      const names =
        typed?.kind === 'ARG'
          ? typed.args.map((arg) => arg.name)
          : typed?.kind === 'ENV'
            ? typed.pairs.map((pair) => pair.key)
            : [];
      for (const name of names) {
        if (looksLikeSecret(name)) {
          yield at(
            instruction,
            `Do not use ARG or ENV instructions for sensitive data (${typed?.kind} "${name}")`,
          );
        }
      }
    }
  },
});

const DIRECTIVE_COMMENT = /^(check|syntax|escape)\s*=/i;

const InvalidDefinitionDescription = buildkit({
  id: 'InvalidDefinitionDescription',
  experimental: true,
  message:
    'Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.',
  hint: 'Start the comment with the stage or argument name, or separate it with an empty line.',
  *check(model) {
    for (const instruction of model.instructions) {
      const comments = instruction.node.comments.filter((comment) => !DIRECTIVE_COMMENT.test(comment));
      const first = comments[0];
      if (first === undefined) continue;
      const firstWord = first.split(/\s+/)[0];
      if (instruction.keyword === 'FROM') {
        const name = instruction.stage?.name;
        if (name !== undefined && firstWord !== name) {
          yield at(instruction, `Comment for FROM should follow the format: \`# ${name} <description>\``);
        }
      } else if (instruction.typed?.kind === 'ARG') {
        const args = instruction.typed.args;
        const expected = args.length === 1 ? (args[0]?.name ?? '') : '<arg_key>';
        if (args.length !== 1 || firstWord !== expected) {
          yield at(instruction, `Comment for ARG should follow the format: \`# ${expected} <description>\``);
        }
      }
    }
  },
});

export const BUILDKIT_RULES: readonly Rule[] = [
  StageNameCasing,
  FromAsCasing,
  NoEmptyContinuation,
  ConsistentInstructionCasing,
  DuplicateStageName,
  ReservedStageName,
  JSONArgsRecommended,
  MaintainerDeprecated,
  UndefinedArgInFrom,
  WorkdirRelativePath,
  UndefinedVar,
  MultipleInstructionsDisallowed,
  LegacyKeyValueFormat,
  RedundantTargetPlatform,
  SecretsUsedInArgOrEnv,
  InvalidDefaultArgInFrom,
  FromPlatformFlagConstDisallowed,
  CopyIgnoredFile,
  ExposeProtoCasing,
  ExposeInvalidFormat,
  InvalidDefinitionDescription,
];
