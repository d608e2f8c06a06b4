/**
 * strata's rules about what the final image does when it runs and what it carries: secrets in
 * ARG/ENV/LABEL values, HEALTHCHECK tools, VOLUME, privileged ports for a non-root user, and the
 * OCI description labels (shared/research/lint.md, section 4, the "Gap" rows).
 */
import type { LintInstruction, LintModel, LintStage } from '../model.js';
import { unquote } from '../model.js';
import { isCommand, parseShell, subcommandArgs } from '../shell-analysis.js';
import type { Rule, Violation } from '../types.js';
import { looksLikeSecret } from './buildkit.js';
import { hasVariable, labelValueValid, splitImage } from './hadolint-instructions.js';
import { commandsOf, stageChain, unquoteValue } from './support.js';

function strata(definition: Omit<Rule, 'origin'>): Rule {
  return { ...definition, origin: 'strata' };
}

const at = (instruction: LintInstruction, message?: string): Violation => ({
  line: instruction.line,
  column: instruction.column,
  ...(message === undefined ? {} : { message }),
});

/** The final stage and the stages it builds FROM, base first. */
export function finalStages(model: LintModel): LintStage[] {
  const last = model.stages.at(-1);
  return last === undefined ? [] : stageChain(last).reverse();
}

/** `python` for `python:3.12` or `docker.io/library/python:3.12`; registry/path otherwise. */
export function repositoryOf(image: string): { name: string; tag?: string } {
  const { registry, path, tag } = splitImage(image.toLowerCase());
  const name = registry === 'docker.io' ? path.replace(/^library\//, '') : `${registry}/${path}`;
  return { name, ...(tag === undefined ? {} : { tag }) };
}

function finalInstructions(model: LintModel): LintInstruction[] {
  return finalStages(model).flatMap((stage) => stage.instructions);
}

// ---------------------------------------------------------------------------------------------
// Secrets by value shape

/** Credential formats with a recognisable shape; the message names the kind, never the value. */
const SECRET_SHAPES: Array<[string, RegExp]> = [
  ['a private key', /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----/],
  ['an AWS access key ID', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['a GitHub token', /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b/],
  ['a GitLab token', /\bglpat-[A-Za-z0-9_-]{20,}/],
  ['a Slack token', /\bxox[abposr]-[A-Za-z0-9-]{10,}/],
  ['a Google API key', /\bAIza[0-9A-Za-z_-]{35}\b/],
  ['a Stripe live key', /\b[sr]k_live_[0-9A-Za-z]{16,}/],
  ['an npm token', /\bnpm_[A-Za-z0-9]{36}\b/],
  ['a PyPI token', /\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{20,}/],
  ['an OpenAI-style API key', /\bsk-(?:proj-)?[A-Za-z0-9_-]{40,}/],
  ['a JSON Web Token', /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/],
  // user:password@ in a URL; a password given by a variable is not a value in the image.
  ['a password in a URL', /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@$]+:[^\s/@$]+@[^\s/]/i],
];

/** What kind of credential `value` looks like, if any. */
export function secretShape(value: string): string | undefined {
  return SECRET_SHAPES.find(([, pattern]) => pattern.test(value))?.[0];
}

/** Name/value pairs an instruction stores in the image (ENV, LABEL) or the build (ARG defaults). */
function storedValues(instruction: LintInstruction): Array<{ name: string; value: string }> {
  const typed = instruction.typed;
  if (typed?.kind === 'ENV' || typed?.kind === 'LABEL')
    return typed.pairs.map((pair) => ({ name: unquote(pair.key), value: unquoteValue(pair.value) }));
  if (typed?.kind === 'ARG')
    return typed.args.flatMap((arg) =>
      arg.value === undefined ? [] : [{ name: arg.name, value: unquoteValue(arg.value) }],
    );
  return [];
}

const ST1010 = strata({
  id: 'ST1010',
  severity: 'error',
  message: 'A value stored in the image looks like a credential',
  hint: 'Remove it and rotate it: ARG, ENV and LABEL values are readable by anyone with the image. Use `RUN --mount=type=secret`.',
  *check(model) {
    for (const instruction of model.instructions) {
      for (const { name, value } of storedValues(instruction)) {
        const kind = secretShape(value);
        if (kind !== undefined)
          yield at(instruction, `${instruction.keyword} ${name} holds what looks like ${kind}`);
      }
    }
  },
});

const ST1011 = strata({
  id: 'ST1011',
  severity: 'warning',
  message: 'A label name suggests it holds a secret',
  hint: 'Labels are public image metadata: never put credentials in them.',
  *check(model) {
    for (const instruction of model.instructions) {
      if (instruction.typed?.kind !== 'LABEL') continue;
      for (const pair of instruction.typed.pairs) {
        const key = unquote(pair.key);
        if (looksLikeSecret(key.replace(/\./g, '_')))
          yield at(instruction, `LABEL ${key} looks like it holds a secret`);
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// HEALTHCHECK tools

/** Packages that provide each tool HEALTHCHECKs commonly call. */
const TOOL_PACKAGES: Record<string, RegExp> = {
  curl: /^curl([=<>-].*)?$/,
  wget: /^(wget|busybox(-extras)?)([=<>-].*)?$/,
  nc: /^(netcat(-openbsd|-traditional)?|nmap-ncat|ncat|busybox-extras)([=<>-].*)?$/,
};

/**
 * What a base image lacks, for the images where that is certain: Debian and Ubuntu ship neither
 * curl nor wget, slim variants even less, Alpine and BusyBox have wget and nc (BusyBox) but no
 * curl, and scratch and distroless images have no tools and no shell at all. Unknown images
 * (most application images) are given the benefit of the doubt.
 */
function missingFromBase(image: string): { tools: Set<string>; hasShell: boolean } | undefined {
  if (image === 'scratch') return { tools: new Set(['curl', 'wget', 'nc']), hasShell: false };
  const { name, tag } = repositoryOf(image);
  if (name.startsWith('gcr.io/distroless/') || name.startsWith('cgr.dev/chainguard/static'))
    return { tools: new Set(['curl', 'wget', 'nc']), hasShell: (tag ?? '').includes('debug') };
  if (name === 'alpine' || name === 'busybox' || (tag ?? '').includes('alpine'))
    return { tools: new Set(['curl']), hasShell: true };
  if (name === 'debian' || name === 'ubuntu' || (tag ?? '').includes('slim'))
    return { tools: new Set(['curl', 'wget', 'nc']), hasShell: true };
  return undefined;
}

const PACKAGE_INSTALL = /^(apt-get|apt|apk|yum|dnf|microdnf|zypper)$/;

/** Tools the final image gets from its instructions: installed packages, copied binaries. */
function installedTools(instructions: readonly LintInstruction[], model: LintModel): Set<string> {
  const tools = new Set<string>();
  const runs = new Map(model.runs.map((script) => [script.instruction.node, script]));
  for (const instruction of instructions) {
    const typed = instruction.typed;
    if (typed?.kind === 'COPY' || typed?.kind === 'ADD') {
      for (const source of typed.sources) {
        const base = source.split('/').filter(Boolean).at(-1) ?? '';
        if (base in TOOL_PACKAGES) tools.add(base);
      }
      const dest = typed.dest.split('/').filter(Boolean).at(-1) ?? '';
      if (dest in TOOL_PACKAGES) tools.add(dest);
    }
    const script = runs.get(instruction.node);
    if (script === undefined) continue;
    for (const command of commandsOf(script)) {
      if (!isCommand(command, PACKAGE_INSTALL)) continue;
      for (const pkg of subcommandArgs(command, ['o', 't', 'c', 'virtual'])) {
        for (const [tool, pattern] of Object.entries(TOOL_PACKAGES)) if (pattern.test(pkg)) tools.add(tool);
      }
    }
  }
  return tools;
}

/** The programs a HEALTHCHECK test runs, and whether it needs /bin/sh. */
function healthcheckPrograms(test: readonly string[]): { programs: string[]; shell: boolean } {
  const [kind, ...rest] = test;
  if (kind === 'CMD-SHELL') {
    const programs = parseShell(rest.join(' ')).commands.map(
      (command) => command.name.split('/').at(-1) ?? '',
    );
    return { programs, shell: true };
  }
  if (kind === 'CMD') return { programs: [(rest[0] ?? '').split('/').at(-1) ?? ''], shell: false };
  return { programs: [], shell: false };
}

const ST1012 = strata({
  id: 'ST1012',
  severity: 'warning',
  message: 'HEALTHCHECK runs a program the image does not have',
  hint: 'Install the tool (e.g. `apk add --no-cache curl`), use one the base has (`wget -q --spider` on Alpine), or a small check binary.',
  *check(model) {
    const stages = finalStages(model);
    const root = stages[0];
    if (root === undefined || hasVariable(root.image)) return;
    const missing = missingFromBase(root.image);
    if (missing === undefined) return;
    const instructions = finalInstructions(model);
    const installed = installedTools(instructions, model);
    const healthchecks = instructions.filter((instruction) => instruction.typed?.kind === 'HEALTHCHECK');
    const last = healthchecks.at(-1);
    if (last?.typed?.kind !== 'HEALTHCHECK') return;
    const { programs, shell } = healthcheckPrograms(last.typed.test);
    if (shell && !missing.hasShell) {
      yield at(
        last,
        `HEALTHCHECK uses the shell form but ${root.image} has no /bin/sh: use HEALTHCHECK CMD ["…"]`,
      );
      return;
    }
    for (const program of programs) {
      if (missing.tools.has(program) && !installed.has(program)) {
        yield at(
          last,
          `HEALTHCHECK runs ${program}, which ${root.image} does not include and no instruction installs`,
        );
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// VOLUME

/** Directories the image's software lives in: a volume there hides or freezes it. */
const SYSTEM_DIRECTORIES = new Set([
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib64',
  '/proc',
  '/sbin',
  '/sys',
  '/usr',
  '/usr/bin',
  '/usr/lib',
  '/usr/local',
  '/usr/sbin',
  '/var',
]);

const ST1013 = strata({
  id: 'ST1013',
  severity: 'warning',
  message: 'VOLUME is misused',
  hint: 'Declare volumes for data the container writes (`VOLUME ["/var/lib/app"]`), with absolute paths in a valid JSON array.',
  *check(model) {
    for (const instruction of model.instructions) {
      if (instruction.typed?.kind !== 'VOLUME') continue;
      for (const path of instruction.typed.paths) {
        if (/^\[|\]$|^"|"$|,$/.test(path)) {
          yield at(
            instruction,
            `VOLUME ${instruction.node.original.replace(/^\S+\s+/, '')} is not a valid JSON array: "${path}" is taken as a path`,
          );
          break;
        }
        if (hasVariable(path)) continue;
        const normal = path.replace(/\/+$/, '') || '/';
        if (!normal.startsWith('/') && !/^[A-Za-z]:/.test(normal))
          yield at(instruction, `VOLUME ${path} is not an absolute path`);
        else if (SYSTEM_DIRECTORIES.has(normal))
          yield at(
            instruction,
            `VOLUME ${normal} covers a system directory: its content is hidden or frozen at run time`,
          );
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Ports below 1024 for a non-root user

const ROOT_USER = /^(root|0)(:.*)?$/;

const ST1014 = strata({
  id: 'ST1014',
  severity: 'info',
  message: 'A port below 1024 is exposed while the image runs as a non-root user',
  hint: 'Listen on a port ≥ 1024 (8080 for 80, 8443 for 443): binding below 1024 needs CAP_NET_BIND_SERVICE outside Docker (e.g. in Kubernetes).',
  *check(model) {
    const instructions = finalInstructions(model);
    const user = instructions
      .filter((instruction) => instruction.typed?.kind === 'USER')
      .map((instruction) => (instruction.typed?.kind === 'USER' ? instruction.typed.user : ''))
      .at(-1);
    if (user === undefined || ROOT_USER.test(user) || hasVariable(user)) return;
    for (const instruction of instructions) {
      if (instruction.typed?.kind !== 'EXPOSE') continue;
      for (const port of instruction.typed.ports) {
        const number = Number(/^(\d+)/.exec(port)?.[1] ?? NaN);
        if (number > 0 && number < 1024)
          yield at(instruction, `Port ${number} is below 1024 but the image runs as user ${user}`);
      }
    }
  },
});

// ---------------------------------------------------------------------------------------------
// OCI description labels

/** Labels the final image gets from its Dockerfile: the final stage's and its FROM chain's. */
function finalLabels(model: LintModel): Map<string, { value: string; instruction: LintInstruction }> {
  const labels = new Map<string, { value: string; instruction: LintInstruction }>();
  for (const instruction of finalInstructions(model)) {
    if (instruction.typed?.kind !== 'LABEL') continue;
    for (const pair of instruction.typed.pairs)
      labels.set(unquote(pair.key), { value: unquoteValue(pair.value), instruction });
  }
  return labels;
}

const ST1015 = strata({
  id: 'ST1015',
  severity: 'info',
  message: 'The final image lacks OCI description labels',
  hint: 'Set them with LABEL (values known at build time through ARG, e.g. `LABEL org.opencontainers.image.revision=$GIT_SHA`); `oci-label-schema` in .hadolint.yaml chooses which.',
  *check(model, settings) {
    const last = model.stages.at(-1);
    const required = Object.keys(settings.ociLabelSchema);
    if (last === undefined || required.length === 0) return;
    const present = finalLabels(model);
    const missing = required.filter((label) => !present.has(label));
    if (missing.length > 0) yield at(last.from, `The final image lacks the labels ${missing.join(', ')}`);
  },
});

const ST1016 = strata({
  id: 'ST1016',
  severity: 'warning',
  message: 'An OCI label value does not have the expected form',
  hint: 'created: RFC 3339 time; source/url: a URL; revision: a git commit; licenses: an SPDX expression.',
  *check(model, settings) {
    for (const [label, { value, instruction }] of finalLabels(model)) {
      const type = settings.ociLabelSchema[label];
      if (type === undefined || hasVariable(value)) continue;
      if (value === '') yield at(instruction, `Label ${label} is empty`);
      else if (!labelValueValid(type, value))
        yield at(instruction, `Label ${label} is not a valid ${type} value`);
    }
  },
});

export const STRATA_RUNTIME_RULES: readonly Rule[] = [ST1010, ST1011, ST1012, ST1013, ST1014, ST1015, ST1016];
