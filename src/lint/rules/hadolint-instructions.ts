/**
 * hadolint's rules about instructions other than what RUN executes: FROM hygiene, stages,
 * COPY/ADD, ENV/ARG, USER, labels and their schema. Semantics follow hadolint's documented
 * behaviour and its test corpus (shared/corpora/hadolint).
 */
import type { LintInstruction, LintModel, LintStage } from '../model.js';
import { instructionsOf, unquote, withOnbuildTriggers } from '../model.js';
import type { LabelType, Rule, RuleSettings, Violation } from '../types.js';
import {
  findStage,
  instructionsInScope,
  referencedStages,
  runMounts,
  stageChain,
  unquoteValue,
} from './support.js';

function hadolint(definition: Omit<Rule, 'origin'>): Rule {
  return { ...definition, origin: 'hadolint' };
}

const at = (instruction: LintInstruction): Violation => ({
  line: instruction.line,
  column: instruction.column,
});

/** `$VAR` / `${VAR}` somewhere in the text: hadolint does not judge values it cannot know. */
export const hasVariable = (text: string): boolean => /\$\{?[A-Za-z_]/.test(text);

const WINDOWS_ABSOLUTE = /^[A-Za-z]:[\\/]?/;

// ---------------------------------------------------------------------------------------------
// FROM and stages

/** Splits an image reference into registry, path, tag and digest (docker's default rules). */
export function splitImage(image: string): { registry: string; path: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const atSign = rest.indexOf('@');
  if (atSign >= 0) {
    digest = rest.slice(atSign + 1);
    rest = rest.slice(0, atSign);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const firstSlash = rest.indexOf('/');
  const first = firstSlash < 0 ? '' : rest.slice(0, firstSlash);
  if (first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    return { registry: first, path: rest.slice(firstSlash + 1), tag, digest };
  }
  return { registry: 'docker.io', path: rest, tag, digest };
}

function isStageReference(model: LintModel, stage: LintStage, image: string): boolean {
  const lower = image.toLowerCase();
  return model.stages.some((other) => other.index < stage.index && other.name === lower);
}

const DL3006 = hadolint({
  id: 'DL3006',
  severity: 'warning',
  message: 'Always tag the version of an image explicitly',
  hint: 'Name a tag (`debian:12`) or a digest so the base does not change under you.',
  *check(model) {
    for (const stage of model.stages) {
      const image = stage.image;
      if (image === '' || image === 'scratch' || hasVariable(image) || isStageReference(model, stage, image))
        continue;
      const { tag, digest } = splitImage(image);
      if (tag === undefined && digest === undefined) yield at(stage.from);
    }
  },
});

const DL3007 = hadolint({
  id: 'DL3007',
  severity: 'warning',
  message:
    'Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag',
  hint: 'Replace `:latest` with a release tag or a digest.',
  *check(model) {
    for (const stage of model.stages) {
      const { tag, digest } = splitImage(stage.image);
      if (tag === 'latest' && digest === undefined) yield at(stage.from);
    }
  },
});

function isTrusted(registry: string, trusted: readonly string[]): boolean {
  return trusted.some((pattern) => {
    if (pattern === '*') return true;
    if (pattern.startsWith('*.')) return registry.endsWith(pattern.slice(1));
    return pattern === registry;
  });
}

const DL3026 = hadolint({
  id: 'DL3026',
  severity: 'error',
  message: 'Use only an allowed registry in the FROM image',
  hint: 'Pull from a registry listed in `trustedRegistries`.',
  *check(model, settings) {
    const trusted = settings.trustedRegistries;
    if (trusted.length === 0) return;
    const untrusted = (image: string, stage: LintStage | undefined): boolean => {
      if (image === '' || image === 'scratch' || hasVariable(image)) return false;
      if (stage !== undefined && isStageReference(model, stage, image)) return false;
      if (findStage(model, image)) return false;
      return !isTrusted(splitImage(image).registry, trusted);
    };
    for (const stage of model.stages) if (untrusted(stage.image, stage)) yield at(stage.from);
    for (const { instruction, typed } of instructionsOf(model, 'COPY')) {
      const from = typed.from;
      if (from !== undefined && /[:/]/.test(from) && untrusted(from, instruction.stage))
        yield at(instruction);
    }
    for (const script of model.runs) {
      for (const mount of runMounts(script)) {
        if (
          mount.from !== undefined &&
          /[:/]/.test(mount.from) &&
          untrusted(mount.from, script.instruction.stage)
        ) {
          yield at(script.instruction);
        }
      }
    }
  },
});

const DL3024 = hadolint({
  id: 'DL3024',
  severity: 'error',
  message: 'FROM aliases (stage names) must be unique',
  hint: 'Rename one of the stages.',
  *check(model) {
    const seen = new Set<string>();
    for (const stage of model.stages) {
      if (stage.name === undefined) continue;
      if (seen.has(stage.name)) yield at(stage.from);
      seen.add(stage.name);
    }
  },
});

const DL3029 = hadolint({
  id: 'DL3029',
  severity: 'warning',
  message: 'Do not use --platform flag with FROM',
  hint: 'Let `--platform` on the command line choose; only `$BUILDPLATFORM`/`$TARGETPLATFORM` make sense here.',
  *check(model) {
    for (const stage of model.stages) {
      const platform = stage.from.typed?.kind === 'FROM' ? stage.from.typed.platform : undefined;
      if (platform === undefined) continue;
      if (/\$\{?(BUILDPLATFORM|TARGETPLATFORM)\b/.test(platform)) continue;
      yield at(stage.from);
    }
  },
});

const DL3063 = hadolint({
  id: 'DL3063',
  severity: 'warning',
  message: 'Stage name must not be a reserved word (`scratch`, `context`)',
  hint: 'Pick another stage name.',
  *check(model) {
    for (const stage of model.stages) {
      if (stage.name === 'scratch' || stage.name === 'context') yield at(stage.from);
    }
  },
});

const DL3065 = hadolint({
  id: 'DL3065',
  severity: 'warning',
  message: '`--platform=$TARGETPLATFORM` is the default and is redundant in FROM',
  hint: 'Remove the flag.',
  *check(model) {
    for (const stage of model.stages) {
      const platform = stage.from.typed?.kind === 'FROM' ? stage.from.typed.platform : undefined;
      if (platform !== undefined && /^"?\$(\{TARGETPLATFORM\}|TARGETPLATFORM)"?$/.test(platform))
        yield at(stage.from);
    }
  },
});

const DL3061 = hadolint({
  id: 'DL3061',
  severity: 'error',
  message: 'Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.',
  hint: 'Move this instruction below the first FROM.',
  *check(model) {
    for (const instruction of model.instructions) {
      if (instruction.keyword === 'FROM') return;
      if (instruction.keyword !== 'ARG') {
        yield at(instruction);
        return;
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Instructions per stage

/** Instructions grouped by stage; those before the first FROM form their own group. */
function* stageGroups(model: LintModel): Generator<LintInstruction[]> {
  const loose = model.instructions.filter((instruction) => instruction.stage === undefined);
  if (loose.length > 0) yield loose;
  for (const stage of model.stages) yield stage.instructions;
}

function repeated(
  id: string,
  keyword: string,
  severity: Rule['severity'],
  message: string,
  hint: string,
): Rule {
  return hadolint({
    id,
    severity,
    message,
    hint,
    *check(model) {
      for (const group of stageGroups(model)) {
        const matching = group.filter((instruction) => instruction.keyword === keyword);
        for (const instruction of matching.slice(1)) yield at(instruction);
      }
    },
  });
}

const DL3012 = repeated(
  'DL3012',
  'HEALTHCHECK',
  'error',
  'Multiple `HEALTHCHECK` instructions',
  'Keep one HEALTHCHECK per stage.',
);
const DL4003 = repeated(
  'DL4003',
  'CMD',
  'warning',
  'Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect',
  'Keep one CMD per stage.',
);
const DL4004 = repeated(
  'DL4004',
  'ENTRYPOINT',
  'error',
  'Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect',
  'Keep one ENTRYPOINT per stage.',
);

const DL3000 = hadolint({
  id: 'DL3000',
  severity: 'error',
  message: 'Use absolute WORKDIR',
  hint: 'A relative WORKDIR depends on the previous one; write the full path.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'WORKDIR') continue;
      const path = unquote(instruction.typed.path);
      if (path.startsWith('/') || path.startsWith('$') || WINDOWS_ABSOLUTE.test(path)) continue;
      yield at(instruction);
    }
  },
});

const isRoot = (user: string): boolean => {
  const name = unquote(user).split(':')[0];
  return name === 'root' || name === '0';
};

const DL3002 = hadolint({
  id: 'DL3002',
  severity: 'warning',
  message: 'Last USER should not be root',
  hint: 'Switch to an unprivileged USER at the end of the stage.',
  *check(model) {
    for (const group of stageGroups(model)) {
      const users = group.filter((instruction) => instruction.typed?.kind === 'USER');
      const last = users.at(-1);
      if (last?.typed?.kind === 'USER' && isRoot(last.typed.user)) yield at(last);
    }
  },
});

const DL3066 = hadolint({
  id: 'DL3066',
  severity: 'info',
  message: 'Prefer a numeric UID in USER (user names may not resolve, e.g. with runAsNonRoot)',
  hint: 'Write `USER 10001:10001`.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'USER')) {
      const user = unquote(typed.user);
      if (hasVariable(user)) continue;
      if (!user.split(':').every((part) => /^\d+$/.test(part))) yield at(instruction);
    }
  },
});

const DL3011 = hadolint({
  id: 'DL3011',
  severity: 'error',
  message: 'Valid UNIX ports range from 0 to 65535',
  hint: 'Use a port number between 0 and 65535.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'EXPOSE') continue;
      const invalid = instruction.typed.ports.some((port) =>
        port
          .split('/')[0]
          ?.split('-')
          .some((part) => /^\d+$/.test(part) && Number(part) > 65535),
      );
      if (invalid) yield at(instruction);
    }
  },
});

const DL3025 = hadolint({
  id: 'DL3025',
  severity: 'warning',
  message: 'Use arguments JSON notation for CMD and ENTRYPOINT arguments',
  hint: 'Exec form (`CMD ["app", "--flag"]`) makes the program PID 1 and lets it receive signals.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      const typed = instruction.typed;
      if ((typed?.kind === 'CMD' || typed?.kind === 'ENTRYPOINT') && typed.command.form === 'shell')
        yield at(instruction);
      if (typed?.kind === 'HEALTHCHECK' && typed.test[0] === 'CMD-SHELL') yield at(instruction);
    }
  },
});

const DL3043 = hadolint({
  id: 'DL3043',
  severity: 'error',
  message: '`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.',
  hint: 'These instructions are not allowed as ONBUILD triggers.',
  *check(model) {
    for (const instruction of model.instructions) {
      const child = instruction.keyword === 'ONBUILD' ? instruction.node.child : undefined;
      if (child && ['onbuild', 'from', 'maintainer'].includes(child.keyword)) yield at(instruction);
    }
  },
});

const DL4000 = hadolint({
  id: 'DL4000',
  severity: 'error',
  message: 'MAINTAINER is deprecated',
  hint: 'Use `LABEL org.opencontainers.image.authors="…"`.',
  *check(model) {
    for (const instruction of model.instructions)
      if (instruction.keyword === 'MAINTAINER') yield at(instruction);
  },
});

// ---------------------------------------------------------------------------------------------
// COPY / ADD

const ADD_ARCHIVE = /\.(tar|gz|bz2|xz|tgz|tbz2?|txz|zst|lz|lzma|tar\.[a-z0-9]+)$/i;

const DL3020 = hadolint({
  id: 'DL3020',
  severity: 'error',
  message: 'Use COPY instead of ADD for files and folders',
  hint: 'ADD is for URLs and local archives to extract; COPY says what it does.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'ADD') continue;
      const plain = instruction.typed.sources.some((source) => {
        const path = unquote(source);
        return !/^[a-z]+:\/\//i.test(path) && !path.startsWith('git@') && !ADD_ARCHIVE.test(path);
      });
      if (plain) yield at(instruction);
    }
  },
});

const DL3021 = hadolint({
  id: 'DL3021',
  severity: 'error',
  message: 'COPY with more than 2 arguments requires the last argument to end with /',
  hint: 'Several sources need a directory destination: end it with `/`.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'COPY') continue;
      if (instruction.typed.sources.length > 1 && !unquote(instruction.typed.dest).endsWith('/'))
        yield at(instruction);
    }
  },
});

const DL3022 = hadolint({
  id: 'DL3022',
  severity: 'warning',
  message: '`COPY --from` should reference a previously defined `FROM` alias',
  hint: 'Name an earlier stage (`FROM … AS name`) or an image reference.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'COPY')) {
      const from = typed.from;
      if (from === undefined || /[:/]/.test(from) || hasVariable(from)) continue;
      const current = instruction.stage?.index ?? -1;
      const stage = findStage(model, from);
      if (stage === undefined || stage.index >= current) yield at(instruction);
    }
  },
});

const DL3023 = hadolint({
  id: 'DL3023',
  severity: 'error',
  message: '`COPY --from` cannot reference its own `FROM` alias',
  hint: 'Copy from an earlier stage.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'COPY')) {
      const stage = instruction.stage;
      if (typed.from !== undefined && stage?.name !== undefined && typed.from.toLowerCase() === stage.name) {
        yield at(instruction);
      }
    }
  },
});

const DL3045 = hadolint({
  id: 'DL3045',
  severity: 'warning',
  message: '`COPY` to a relative destination without `WORKDIR` set.',
  hint: 'Set WORKDIR first, or use an absolute destination.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'COPY') continue;
      const dest = unquote(instruction.typed.dest);
      if (dest.startsWith('/') || hasVariable(dest) || WINDOWS_ABSOLUTE.test(dest)) continue;
      const scope = instructionsInScope(model, instruction);
      const hasWorkdir = scope.some(
        (earlier) =>
          earlier.keyword === 'WORKDIR' ||
          (earlier.keyword === 'ONBUILD' && earlier.node.child?.keyword === 'workdir'),
      );
      if (!hasWorkdir) yield at(instruction);
    }
  },
});

const DL3067 = hadolint({
  id: 'DL3067',
  severity: 'warning',
  message: 'Do not copy the whole filesystem of another stage (`COPY --from=<stage> / /`)',
  hint: 'Copy only the paths you need.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'COPY')) {
      if (typed.from === undefined) continue;
      if (
        typed.sources.length === 1 &&
        unquote(typed.sources[0] as string) === '/' &&
        unquote(typed.dest) === '/'
      ) {
        yield at(instruction);
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// ENV / ARG

const DL3044 = hadolint({
  id: 'DL3044',
  severity: 'error',
  message: 'Do not refer to an environment variable within the same `ENV` statement where it is defined.',
  hint: 'Split the ENV in two: a variable set in one ENV is visible only to the next instructions.',
  *check(model) {
    for (const instruction of withOnbuildTriggers(model, model.file)) {
      if (instruction.typed?.kind !== 'ENV') continue;
      const defined: string[] = [];
      let violates = false;
      for (const pair of instruction.typed.pairs) {
        if (defined.some((name) => new RegExp(`\\$\\{?${name}(?![A-Za-z0-9_])`).test(pair.value)))
          violates = true;
        defined.push(pair.key);
      }
      if (violates) yield at(instruction);
    }
  },
});

const SECRET_NAMES =
  /(passw(or)?d|secret|token|api_?key|apikey|private_?key|access_?key|credential|auth_?key)/i;

const DL3064 = hadolint({
  id: 'DL3064',
  severity: 'warning',
  message: 'Possible secret in ARG or ENV name; use a secret mount (`RUN --mount=type=secret`) instead',
  hint: 'Values of ARG and ENV end up in the image metadata.',
  *check(model) {
    for (const instruction of model.instructions) {
      const names =
        instruction.typed?.kind === 'ARG'
          ? instruction.typed.args.map((arg) => arg.name)
          : instruction.typed?.kind === 'ENV'
            ? instruction.typed.pairs.map((pair) => pair.key)
            : [];
      if (names.some((name) => SECRET_NAMES.test(name))) yield at(instruction);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Labels

const RESERVED_LABEL_NAMESPACES = ['com.docker.', 'io.docker.', 'org.dockerproject.'];

function validLabelKey(key: string): boolean {
  if (RESERVED_LABEL_NAMESPACES.some((prefix) => key.startsWith(prefix))) return false;
  return /^[a-z]([a-z0-9.-]*[a-z0-9])?$/.test(key) && !key.includes('..') && !key.includes('--');
}

const DL3048 = hadolint({
  id: 'DL3048',
  severity: 'style',
  message: 'Invalid label key.',
  hint: 'Label keys are lowercase reverse-DNS names; com.docker.*, io.docker.* and org.dockerproject.* are reserved.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'LABEL')) {
      for (const pair of typed.pairs) if (!validLabelKey(unquote(pair.key))) yield at(instruction);
    }
  },
});

function labelsSetIn(stage: LintStage): Set<string> {
  const keys = new Set<string>();
  for (const instruction of stage.instructions) {
    if (instruction.typed?.kind === 'LABEL')
      for (const pair of instruction.typed.pairs) keys.add(unquote(pair.key));
  }
  return keys;
}

const DL3049 = hadolint({
  id: 'DL3049',
  severity: 'info',
  message: 'Label is missing.',
  hint: 'Set every label the label schema requires.',
  *check(model, settings) {
    const required = Object.keys(settings.labelSchema);
    if (required.length === 0) return;
    const { byCopy } = referencedStages(model);
    // A label counts for a stage when the stage, a stage it builds on or a stage built on it sets it.
    const descendants = (stage: LintStage): LintStage[] =>
      model.stages.filter((other) => other !== stage && stageChain(other).includes(stage));
    for (const stage of model.stages) {
      if (byCopy.has(stage)) continue;
      const related = [...stageChain(stage), ...descendants(stage)];
      const present = new Set(related.flatMap((other) => [...labelsSetIn(other)]));
      for (const label of required) {
        if (!present.has(label)) yield { ...at(stage.from), message: `Label \`${label}\` is missing.` };
      }
    }
  },
});

const DL3050 = hadolint({
  id: 'DL3050',
  severity: 'info',
  message: 'Superfluous label(s) present.',
  hint: 'With strict labels, only labels in the schema are allowed.',
  *check(model, settings) {
    if (!settings.strictLabels) return;
    for (const { instruction, typed } of instructionsOf(model, 'LABEL')) {
      for (const pair of typed.pairs) {
        if (!(unquote(pair.key) in settings.labelSchema)) yield at(instruction);
      }
    }
  },
});

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
const GIT_HASH = /^([0-9a-f]{7,40})$/;
const EMAIL =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
/** Common SPDX identifiers; expressions combine them with AND/OR/WITH and parentheses. */
const SPDX_IDS = new Set(
  [
    '0BSD',
    'AGPL-3.0',
    'AGPL-3.0-only',
    'AGPL-3.0-or-later',
    'Apache-1.1',
    'Apache-2.0',
    'Artistic-2.0',
    'BSD-1-Clause',
    'BSD-2-Clause',
    'BSD-3-Clause',
    'BSD-4-Clause',
    'BSL-1.0',
    'CC-BY-4.0',
    'CC-BY-SA-4.0',
    'CC0-1.0',
    'CDDL-1.0',
    'EPL-1.0',
    'EPL-2.0',
    'EUPL-1.2',
    'GPL-2.0',
    'GPL-2.0-only',
    'GPL-2.0-or-later',
    'GPL-3.0',
    'GPL-3.0-only',
    'GPL-3.0-or-later',
    'ISC',
    'LGPL-2.0',
    'LGPL-2.1',
    'LGPL-2.1-only',
    'LGPL-2.1-or-later',
    'LGPL-3.0',
    'LGPL-3.0-only',
    'LGPL-3.0-or-later',
    'MIT',
    'MIT-0',
    'MPL-1.1',
    'MPL-2.0',
    'MS-PL',
    'NCSA',
    'OFL-1.1',
    'OpenSSL',
    'PostgreSQL',
    'Python-2.0',
    'Unlicense',
    'UPL-1.0',
    'WTFPL',
    'Zlib',
    'Classpath-exception-2.0',
    'LLVM-exception',
  ].map((id) => id.toLowerCase()),
);

function validSpdx(expression: string): boolean {
  const tokens = expression.replace(/[()]/g, ' ').split(/\s+/).filter(Boolean);
  if (tokens.length === 0) return false;
  return tokens.every(
    (token, index) =>
      (index % 2 === 1 && /^(AND|OR|WITH)$/.test(token)) ||
      (index % 2 === 0 &&
        (SPDX_IDS.has(token.replace(/\+$/, '').toLowerCase()) || token.startsWith('LicenseRef-'))),
  );
}

function validUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol !== '' && url.host !== '';
  } catch {
    return false;
  }
}

const LABEL_VALIDATORS: Record<Exclude<LabelType, 'text'>, (value: string) => boolean> = {
  url: validUrl,
  rfc3339: (value) => RFC3339.test(value) && !Number.isNaN(Date.parse(value)),
  spdx: validSpdx,
  hash: (value) => GIT_HASH.test(value),
  semver: (value) => SEMVER.test(value),
  email: (value) => EMAIL.test(value),
};

/** True when `value` is a valid value of the label type (text: anything). */
export function labelValueValid(type: LabelType, value: string): boolean {
  return type === 'text' || LABEL_VALIDATORS[type](value);
}

function labelValueRule(id: string, type: Exclude<LabelType, 'text'> | 'empty', message: string): Rule {
  return hadolint({
    id,
    severity: 'warning',
    message,
    hint: 'Fix the label value so it matches the type the label schema gives it.',
    *check(model, settings: RuleSettings) {
      for (const { instruction, typed } of instructionsOf(model, 'LABEL')) {
        for (const pair of typed.pairs) {
          const schemaType = settings.labelSchema[unquote(pair.key)];
          if (schemaType === undefined) continue;
          const value = unquoteValue(pair.value);
          if (type === 'empty') {
            if (value === '') yield at(instruction);
          } else if (schemaType === type && !hasVariable(value) && !LABEL_VALIDATORS[type](value)) {
            yield at(instruction);
          }
        }
      }
    },
  });
}

const DL3051 = labelValueRule('DL3051', 'empty', 'Label is empty.');
const DL3052 = labelValueRule('DL3052', 'url', 'Label is not a valid URL.');
const DL3053 = labelValueRule(
  'DL3053',
  'rfc3339',
  'Label is not a valid time format - must conform to RFC3339.',
);
const DL3054 = labelValueRule('DL3054', 'spdx', 'Label is not a valid SPDX identifier.');
const DL3055 = labelValueRule('DL3055', 'hash', 'Label is not a valid git hash.');
const DL3056 = labelValueRule('DL3056', 'semver', 'Label does not conform to semantic versioning.');
const DL3058 = labelValueRule('DL3058', 'email', 'Label is not a valid email address.');

// ---------------------------------------------------------------------------------------------
// HEALTHCHECK presence and pragma hygiene

const DL3057 = hadolint({
  id: 'DL3057',
  severity: 'ignore',
  message: '`HEALTHCHECK` instruction missing.',
  hint: 'Add a HEALTHCHECK (or `HEALTHCHECK NONE` to say none is wanted).',
  *check(model) {
    const { byFrom } = referencedStages(model);
    const hasHealthcheck = (stage: LintStage): boolean =>
      stageChain(stage).some((link) =>
        link.instructions.some((instruction) => instruction.keyword === 'HEALTHCHECK'),
      );
    const leaves = model.stages.filter((stage) => !byFrom.has(stage));
    const missing = leaves.find((stage) => !hasHealthcheck(stage));
    if (missing) yield at(missing.from);
  },
});

const DL1001 = hadolint({
  id: 'DL1001',
  severity: 'ignore',
  message: 'Please refrain from using inline ignore pragmas `# hadolint ignore=DLxxxx`.',
  hint: 'Prefer a config file (`ignored:`) so exceptions are reviewed in one place.',
  *check(model) {
    for (const [index, line] of model.lines.entries()) {
      if (/^\s*#\s*hadolint\s+ignore\s*=/.test(line)) yield { line: index + 1, column: 1 };
    }
  },
});

export const HADOLINT_INSTRUCTION_RULES: readonly Rule[] = [
  DL1001,
  DL3000,
  DL3002,
  DL3006,
  DL3007,
  DL3011,
  DL3012,
  DL3020,
  DL3021,
  DL3022,
  DL3023,
  DL3024,
  DL3025,
  DL3026,
  DL3029,
  DL3043,
  DL3044,
  DL3045,
  DL3048,
  DL3049,
  DL3050,
  DL3051,
  DL3052,
  DL3053,
  DL3054,
  DL3055,
  DL3056,
  DL3057,
  DL3058,
  DL3061,
  DL3063,
  DL3064,
  DL3065,
  DL3066,
  DL3067,
  DL4000,
  DL4003,
  DL4004,
];
