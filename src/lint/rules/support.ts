/**
 * Small questions many rules ask: which stages a stage builds on, which mounts a RUN has,
 * which variables are in scope, which commands a RUN runs.
 */
import type { LintInstruction, LintModel, LintStage, RunScript } from '../model.js';
import type { ShellCommand } from '../shell-analysis.js';

/** The stage and the earlier stages it is built `FROM`, nearest first. */
export function stageChain(stage: LintStage | undefined): LintStage[] {
  const chain: LintStage[] = [];
  for (let current = stage; current !== undefined && !chain.includes(current); current = current.parent) {
    chain.push(current);
  }
  return chain;
}

/** Instructions that apply before `instruction`: its stage's earlier ones and its ancestors'. */
export function instructionsInScope(model: LintModel, instruction: LintInstruction): LintInstruction[] {
  const stage = instruction.stage;
  if (stage === undefined) return model.instructions.filter((other) => other.line < instruction.line);
  const [own, ...ancestors] = stageChain(stage);
  const result: LintInstruction[] = [];
  for (const ancestor of ancestors.reverse()) result.push(...ancestor.instructions);
  result.push(...(own?.instructions ?? []).filter((other) => other.line < instruction.line));
  return result;
}

/** The SHELL in force for a RUN: the last SHELL before it in its stage chain. */
export function shellInScope(model: LintModel, script: RunScript): string[] | undefined {
  let shell: string[] | undefined;
  for (const instruction of instructionsInScope(model, script.instruction)) {
    if (instruction.typed?.kind === 'SHELL') shell = instruction.typed.shell;
  }
  return shell;
}

export interface RunMount {
  type: string;
  target?: string;
  from?: string;
  id?: string;
  raw: string;
}

/** `--mount=type=cache,target=/x` flags of a RUN, read as key/value lists. */
export function runMounts(script: RunScript): RunMount[] {
  return script.run.mounts.map((raw) => {
    const fields = new Map<string, string>();
    for (const part of raw.split(',')) {
      const eq = part.indexOf('=');
      if (eq < 0) fields.set(part.toLowerCase(), 'true');
      else fields.set(part.slice(0, eq).toLowerCase(), part.slice(eq + 1));
    }
    return {
      type: fields.get('type') ?? 'bind',
      target: fields.get('target') ?? fields.get('dst') ?? fields.get('destination'),
      from: fields.get('from'),
      id: fields.get('id'),
      raw,
    };
  });
}

/** A cache or tmpfs mount covers `directory` (so nothing written there stays in the layer). */
export function hasCacheMount(script: RunScript, directory: string): boolean {
  const wanted = directory.replace(/\/+$/, '');
  return runMounts(script).some(
    (mount) =>
      (mount.type === 'cache' || mount.type === 'tmpfs') &&
      mount.target !== undefined &&
      mount.target.replace(/\/+$/, '') === wanted,
  );
}

/**
 * A cache or tmpfs mount on `directory` or on a directory above it. hadolint's own rules want
 * the exact directory (its tests pin that for apt); strata's extensions to the clean-the-cache
 * rules accept any mount that keeps the cache out of the layer.
 */
export function hasCacheMountCovering(script: RunScript, ...directories: string[]): boolean {
  const targets = runMounts(script)
    .filter((mount) => (mount.type === 'cache' || mount.type === 'tmpfs') && mount.target !== undefined)
    .map((mount) => (mount.target as string).replace(/\/+$/, '') || '/');
  return directories.some((directory) =>
    targets.some(
      (target) => directory === target || directory.startsWith(target === '/' ? '/' : `${target}/`),
    ),
  );
}

/** Every simple command of a RUN (command line and heredoc bodies). */
export function commandsOf(script: RunScript): ShellCommand[] {
  return script.scripts.flatMap((shell) => shell.commands);
}

/** Variables with their values from ENV in scope (stage chain) and all earlier ARG names. */
export function variablesInScope(
  model: LintModel,
  instruction: LintInstruction,
): Map<string, string | undefined> {
  const variables = new Map<string, string | undefined>();
  for (const arg of model.instructions) {
    if (arg.line >= instruction.line || arg.typed?.kind !== 'ARG') continue;
    for (const declaration of arg.typed.args) variables.set(declaration.name, declaration.value);
  }
  for (const earlier of instructionsInScope(model, instruction)) {
    if (earlier.typed?.kind === 'ENV') {
      for (const pair of earlier.typed.pairs) variables.set(pair.key, unquoteValue(pair.value));
    }
  }
  return variables;
}

/** ENV values in scope of `instruction` (its stage chain only). */
export function envInScope(model: LintModel, instruction: LintInstruction): Map<string, string> {
  const env = new Map<string, string>();
  for (const earlier of instructionsInScope(model, instruction)) {
    if (earlier.typed?.kind === 'ENV') {
      for (const pair of earlier.typed.pairs) env.set(pair.key, unquoteValue(pair.value));
    }
  }
  return env;
}

export function unquoteValue(value: string): string {
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
    return value.slice(1, -1);
  }
  return value;
}

/** Replaces `$name` / `${name}` whose value is known; unknown ones are left as written. */
export function substitute(text: string, variables: ReadonlyMap<string, string | undefined>): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole, braced, bare) => {
      const name = (braced ?? bare) as string;
      return variables.has(name) ? (variables.get(name) ?? whole) : whole;
    },
  );
}

/** The stages other stages build on with FROM or copy from with COPY --from / RUN --mount from=. */
export function referencedStages(model: LintModel): { byFrom: Set<LintStage>; byCopy: Set<LintStage> } {
  const byFrom = new Set<LintStage>();
  const byCopy = new Set<LintStage>();
  for (const stage of model.stages) if (stage.parent) byFrom.add(stage.parent);
  for (const instruction of model.instructions) {
    const from = instruction.typed?.kind === 'COPY' ? instruction.typed.from : undefined;
    if (from === undefined) continue;
    const found = findStage(model, from);
    if (found) byCopy.add(found);
  }
  return { byFrom, byCopy };
}

/** A stage by name or by index (`--from=0`). */
export function findStage(model: LintModel, reference: string): LintStage | undefined {
  const lower = reference.toLowerCase();
  if (/^\d+$/.test(reference)) return model.stages[Number(reference)];
  return model.stages.find((stage) => stage.name === lower);
}
