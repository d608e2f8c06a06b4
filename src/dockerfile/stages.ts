/**
 * The Dockerfile as BuildKit's dispatcher sees it: global ARGs, stages, which stages a target
 * needs, and the variable scope each instruction is expanded in.
 */
import {
  detectSyntax,
  parseDockerfile,
  type Directives,
  type ParseWarning,
  type SourceRange,
} from './parser.js';
import { dockerfileError } from './errors.js';
import { parseInstruction, type ArgDeclaration, type Instruction, type KeyValue } from './instructions.js';
import { ShellLexer, type ShellEnv } from './shell.js';
import { formatPlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { StrataError } from '../errors.js';

export type FromInstruction = Extract<Instruction, { kind: 'FROM' }>;
export type ArgInstruction = Extract<Instruction, { kind: 'ARG' }>;

export interface Stage {
  index: number;
  /** Lower-cased `AS` name. */
  name?: string;
  from: FromInstruction;
  instructions: Instruction[];
}

export interface DockerfileModel {
  file: string;
  directives: Directives;
  escapeToken: string;
  /** ARGs before the first FROM (global scope). */
  metaArgs: ArgInstruction[];
  stages: Stage[];
  warnings: ParseWarning[];
}

/** `# syntax=` values strata implements natively: the Dockerfile 1.x language levels. */
const SUPPORTED_SYNTAX =
  /^(?:(?:docker\.io\/)?docker\/dockerfile(?:-upstream)?:1(?:\.\d+){0,2}(?:-labs)?(?:@sha256:[a-f0-9]{64})?|dockerfile\.v0)$/;

/** BuildKit picks the frontend with the looser DetectSyntax search, so we check with it too. */
function checkSyntax(source: string | Uint8Array, file: string): void {
  const detected = detectSyntax(source);
  const syntax = detected?.value;
  if (detected === undefined || syntax === undefined || syntax === '' || SUPPORTED_SYNTAX.test(syntax))
    return;
  throw dockerfileError(
    file,
    { line: detected.line, column: 1 },
    `unsupported frontend "${syntax}": strata implements the Dockerfile language itself (use docker/dockerfile:1[.N][-labs] or remove the syntax directive)`,
  );
}

/** Parses and types a Dockerfile; errors (parse, instruction, structure) name file:line:column. */
export function loadDockerfile(
  source: string | Uint8Array,
  options: { file?: string } = {},
): DockerfileModel {
  const file = options.file ?? 'Dockerfile';
  checkSyntax(source, file);
  const parsed = parseDockerfile(source, { file });
  const model: DockerfileModel = {
    file,
    directives: parsed.directives,
    escapeToken: parsed.escapeToken,
    metaArgs: [],
    stages: [],
    warnings: parsed.warnings,
  };
  const names = new Map<string, Stage>();
  for (const node of parsed.instructions) {
    const instruction = parseInstruction(node, file);
    if (instruction.kind === 'FROM') {
      const stage: Stage = {
        index: model.stages.length,
        name: instruction.name,
        from: instruction,
        instructions: [],
      };
      if (stage.name !== undefined) {
        if (names.has(stage.name))
          throw dockerfileError(file, instruction.range.start, `duplicate stage name "${stage.name}"`);
        names.set(stage.name, stage);
      }
      model.stages.push(stage);
      continue;
    }
    const current = model.stages.at(-1);
    if (current) current.instructions.push(instruction);
    else if (instruction.kind === 'ARG') model.metaArgs.push(instruction);
    else throw dockerfileError(file, instruction.range.start, 'no build stage in current context');
  }
  if (model.stages.length === 0) {
    throw dockerfileError(
      file,
      { line: 1, column: 1 },
      'the Dockerfile has no FROM: no build stage in current context',
    );
  }
  return model;
}

// ---------------------------------------------------------------------------------------------
// Build arguments and scopes

export interface BuildArgOptions {
  /** `--build-arg NAME=VALUE`. */
  buildArgs?: Readonly<Record<string, string>>;
  targetPlatform: Platform;
  buildPlatform: Platform;
  /** `--target`: a stage name (case-insensitive); default the last stage. */
  target?: string;
}

/** Proxy args usable without ARG, kept out of history unless declared (BuildKit). */
export const PROXY_ARGS: readonly string[] = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];

/** The automatic platform args of the global scope. */
export function platformArgs(target: Platform, build: Platform, targetStage: string): Map<string, string> {
  return new Map([
    ['TARGETPLATFORM', formatPlatform(target)],
    ['TARGETOS', target.os],
    ['TARGETARCH', target.architecture],
    ['TARGETVARIANT', target.variant ?? ''],
    ['BUILDPLATFORM', formatPlatform(build)],
    ['BUILDOS', build.os],
    ['BUILDARCH', build.architecture],
    ['BUILDVARIANT', build.variant ?? ''],
    ['TARGETSTAGE', targetStage],
  ]);
}

export type StageSource =
  { kind: 'scratch' } | { kind: 'stage'; stage: number } | { kind: 'image'; reference: string };

export interface ResolvedStage {
  stage: Stage;
  /** FROM after global-ARG expansion. */
  base: StageSource;
  platform?: string;
  /** Stages this one reads from (FROM, COPY --from, RUN --mount from=), by index. */
  dependsOn: number[];
  /** Images named by COPY --from / RUN --mount from= that are not stages. */
  imageRefs: string[];
}

export interface ResolvedBuild {
  model: DockerfileModel;
  globalArgs: Map<string, string>;
  /** Every stage, in file order. */
  stages: ResolvedStage[];
  target: number;
  /** Indexes of the stages the target needs (itself included), dependencies first. */
  needed: number[];
}

/** The stage `ref` names (lower-cased name or index) among those before `before`. */
export function stageByRef(model: DockerfileModel, ref: string, before = Infinity): number | undefined {
  const lower = ref.toLowerCase();
  const named = model.stages.find((stage) => stage.name === lower && stage.index < before);
  if (named) return named.index;
  if (/^\d+$/.test(ref)) {
    const index = Number(ref);
    if (index < before) return index;
  }
  return undefined;
}

/** `from=` of each `--mount` CSV; the full mount grammar is the runtime's concern. */
function mountSources(mounts: readonly string[]): string[] {
  const sources: string[] = [];
  for (const mount of mounts) {
    for (const field of mount.split(',')) {
      const eq = field.indexOf('=');
      if (eq > 0 && field.slice(0, eq).trim().toLowerCase() === 'from')
        sources.push(field.slice(eq + 1).trim());
    }
  }
  return sources;
}

/**
 * Resolves global ARGs (build args override defaults; platform args are built in), expands each
 * FROM, links stage references, rejects cycles, and selects the stages the target needs.
 */
export function resolveBuild(model: DockerfileModel, options: BuildArgOptions): ResolvedBuild {
  const buildArgs = options.buildArgs ?? {};
  const lexer = new ShellLexer(model.escapeToken);
  let target = model.stages.length - 1;
  if (options.target !== undefined) {
    const found = model.stages.find((stage) => stage.name === options.target?.toLowerCase());
    if (!found)
      throw new StrataError(
        'INVALID_ARGUMENT',
        `${model.file}: target stage "${options.target}" could not be found`,
      );
    target = found.index;
  }
  const targetStage = model.stages[target]?.name ?? 'default';
  const builtins = platformArgs(options.targetPlatform, options.buildPlatform, targetStage);
  const globalArgs = new Map<string, string>();
  for (const instruction of model.metaArgs) {
    for (const declaration of instruction.args) {
      const value = resolveArgValue(
        declaration,
        buildArgs,
        builtins,
        (word) => lexer.processWord(word, scopeOf(builtins, globalArgs)),
        model.file,
        instruction.range,
      );
      globalArgs.set(declaration.name, value ?? '');
    }
  }
  const globalScope = scopeOf(builtins, globalArgs);

  const stages: ResolvedStage[] = model.stages.map((stage) => {
    const expand = (word: string) => expandOrFail(lexer, word, globalScope, model.file, stage.from.range);
    const image = expand(stage.from.image);
    if (image === '')
      throw dockerfileError(
        model.file,
        stage.from.range.start,
        `base name (${stage.from.image}) should not be blank`,
      );
    const byName = stageByRef(model, image, stage.index);
    const base: StageSource =
      image.toLowerCase() === 'scratch'
        ? { kind: 'scratch' }
        : byName !== undefined && !/^\d+$/.test(image)
          ? { kind: 'stage', stage: byName }
          : { kind: 'image', reference: image };
    const dependsOn = new Set<number>(base.kind === 'stage' ? [base.stage] : []);
    const imageRefs: string[] = [];
    for (const instruction of stage.instructions) {
      const refs =
        instruction.kind === 'COPY' && instruction.from !== undefined
          ? [instruction.from]
          : instruction.kind === 'RUN'
            ? mountSources(instruction.mounts)
            : [];
      for (const ref of refs) {
        if (ref.includes('$')) {
          throw dockerfileError(
            model.file,
            instruction.range.start,
            `variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround`,
          );
        }
        const index = stageByRef(model, ref, Infinity);
        if (index === stage.index)
          throw dockerfileError(
            model.file,
            instruction.range.start,
            `circular dependency detected on stage: ${stage.name ?? stage.index}`,
          );
        if (index !== undefined) dependsOn.add(index);
        else imageRefs.push(ref);
      }
    }
    const platform = stage.from.platform === undefined ? undefined : expand(stage.from.platform);
    // BuildKit refuses a platform that expands to nothing instead of taking the default.
    if (platform === '')
      throw dockerfileError(
        model.file,
        stage.from.range.start,
        `empty platform value from expression ${stage.from.platform ?? ''}`,
      );
    return { stage, base, platform, dependsOn: [...dependsOn], imageRefs };
  });

  return { model, globalArgs, stages, target, needed: neededStages(model, stages, target) };
}

function neededStages(model: DockerfileModel, stages: readonly ResolvedStage[], target: number): number[] {
  const order: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (index: number): void => {
    const current = state.get(index);
    if (current === 'done') return;
    const resolved = stages[index] as ResolvedStage;
    if (current === 'visiting') {
      throw dockerfileError(
        model.file,
        resolved.stage.from.range.start,
        `circular dependency detected on stage: ${resolved.stage.name ?? index}`,
      );
    }
    state.set(index, 'visiting');
    for (const dependency of resolved.dependsOn) visit(dependency);
    state.set(index, 'done');
    order.push(index);
  };
  visit(target);
  return order;
}

function scopeOf(...maps: ReadonlyArray<ReadonlyMap<string, string>>): ShellEnv {
  return (name: string) => {
    for (let i = maps.length - 1; i >= 0; i--) {
      const value = (maps[i] as ReadonlyMap<string, string>).get(name);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}

function expandOrFail(
  lexer: ShellLexer,
  word: string,
  env: ShellEnv,
  file: string,
  range: SourceRange,
): string {
  try {
    return lexer.processWord(word, env);
  } catch (err) {
    throw dockerfileError(file, range.start, (err as Error).message);
  }
}

/** `--build-arg` wins; then the declared default (expanded); a bare ARG keeps a built-in value. */
function resolveArgValue(
  declaration: ArgDeclaration,
  buildArgs: Readonly<Record<string, string>>,
  inherited: ReadonlyMap<string, string>,
  expand: (word: string) => string,
  file: string,
  range: SourceRange,
): string | undefined {
  if (Object.hasOwn(buildArgs, declaration.name)) return buildArgs[declaration.name];
  if (declaration.value !== undefined) {
    try {
      return expand(declaration.value);
    } catch (err) {
      throw dockerfileError(file, range.start, (err as Error).message);
    }
  }
  return inherited.get(declaration.name);
}

/**
 * The variables one stage's instructions see as the build walks it: ENV (from the base image and
 * ENV instructions) over ARGs declared in the stage. `ENV a=1 b=$a` reads the old `a`: every
 * value of one instruction is expanded before any is set.
 */
export class StageScope {
  readonly env = new Map<string, string>();
  /** ARGs declared in this stage, with their values. */
  readonly args = new Map<string, string>();
  private readonly lexer: ShellLexer;

  constructor(
    private readonly build: ResolvedBuild,
    private readonly buildArgs: Readonly<Record<string, string>>,
    baseEnv: readonly string[] = [],
  ) {
    this.lexer = new ShellLexer(build.model.escapeToken);
    for (const entry of baseEnv) {
      const eq = entry.indexOf('=');
      if (eq > 0) this.env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }

  private get variables(): ShellEnv {
    return scopeOf(this.args, this.env);
  }

  expand(word: string, range: SourceRange): string {
    return expandOrFail(this.lexer, word, this.variables, this.build.model.file, range);
  }

  /** Expansion with another lexer configuration (heredoc bodies keep their quotes). */
  expandWith(lexer: ShellLexer, word: string, range: SourceRange): string {
    return expandOrFail(lexer, word, this.variables, this.build.model.file, range);
  }

  get escapeToken(): string {
    return this.build.model.escapeToken;
  }

  declareArgs(instruction: ArgInstruction): void {
    for (const declaration of instruction.args) {
      const value = resolveArgValue(
        declaration,
        this.buildArgs,
        this.build.globalArgs,
        (word) => this.lexer.processWord(word, this.variables),
        this.build.model.file,
        instruction.range,
      );
      this.args.set(declaration.name, value ?? '');
    }
  }

  /** Expands all pairs against the scope before the instruction, then applies them. */
  expandPairs(pairs: readonly KeyValue[], range: SourceRange, expandKeys: boolean): KeyValue[] {
    return pairs.map((pair) => ({
      key: expandKeys ? this.expand(pair.key, range) : pair.key,
      value: this.expand(pair.value, range),
    }));
  }

  setEnv(pairs: readonly KeyValue[]): void {
    for (const pair of pairs) this.env.set(pair.key, pair.value);
  }

  /**
   * The environment of a RUN step: declared ARGs and ENV (ENV wins), plus proxy build args that
   * need no ARG. Only ENV reaches the image config.
   */
  runEnvironment(): Map<string, string> {
    const result = new Map<string, string>();
    for (const name of PROXY_ARGS) {
      const value = this.buildArgs[name];
      if (value !== undefined) result.set(name, value);
    }
    for (const [name, value] of this.args) result.set(name, value);
    for (const [name, value] of this.env) result.set(name, value);
    return result;
  }
}
