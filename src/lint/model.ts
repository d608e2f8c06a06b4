/**
 * The Dockerfile as the linter sees it. Unlike `loadDockerfile`, nothing here rejects the file:
 * a linter must still speak about a Dockerfile with an unknown instruction, a duplicate stage
 * name or no FROM at all. Each instruction keeps its parser node and, when it is valid, its
 * typed form.
 */
import { parseDockerfile, type InstructionNode, type ParseResult } from '../dockerfile/parser.js';
import { parseInstruction, type Instruction } from '../dockerfile/instructions.js';
import { parseShell, type ShellScript } from './shell-analysis.js';

export type TypedInstruction<K extends Instruction['kind']> = Extract<Instruction, { kind: K }>;
export type RunInstruction = TypedInstruction<'RUN'>;

export interface LintInstruction {
  node: InstructionNode;
  /** Undefined when the instruction is invalid (unknown keyword, missing arguments…). */
  typed?: Instruction;
  /** Upper-case keyword. */
  keyword: string;
  /** The keyword exactly as written (`From`, `copy`). */
  keywordAsWritten: string;
  line: number;
  column: number;
  /** The stage the instruction is in; undefined before the first FROM. */
  stage?: LintStage;
  /** True for the trigger of an ONBUILD. */
  onbuild: boolean;
  /** The parse error of an invalid instruction. */
  error?: string;
}

export interface LintStage {
  index: number;
  /** Lower-cased `AS` name. */
  name?: string;
  /** The `AS` name as written. */
  nameAsWritten?: string;
  from: LintInstruction;
  /** The base image as written (`ubuntu:22.04`, `$BASE`, an earlier stage's name). */
  image: string;
  /** The earlier stage this one builds on, when FROM names one. */
  parent?: LintStage;
  /** Instructions after FROM, ONBUILD triggers not included. */
  instructions: LintInstruction[];
}

/** A shell-form RUN (or ONBUILD RUN) with its script read. */
export interface RunScript {
  instruction: LintInstruction;
  run: RunInstruction;
  /** The command line and every heredoc body, read as shell. */
  scripts: ShellScript[];
}

export interface LintModel {
  file: string;
  source: string;
  /** Physical lines without line endings. */
  lines: string[];
  parse: ParseResult;
  /** Every top-level instruction in order (FROMs included, ONBUILD triggers not). */
  instructions: LintInstruction[];
  /** ARGs before the first FROM. */
  metaArgs: LintInstruction[];
  stages: LintStage[];
  /** RUN and ONBUILD RUN instructions, in order, with their shell scripts. */
  runs: RunScript[];
  /** `# hadolint shell=…`: the default shell when it is not POSIX sh (e.g. powershell). */
  shellPragma?: string;
  /** `.dockerignore` patterns of the build context, when the caller knows them. */
  dockerignore?: readonly string[];
}

function keywordOf(node: InstructionNode): string {
  const match = /^\s*(\S+)/.exec(node.original);
  return match?.[1] ?? node.keyword;
}

function typedOrError(node: InstructionNode, file: string): { typed?: Instruction; error?: string } {
  try {
    return { typed: parseInstruction(node, file) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function toLintInstruction(
  node: InstructionNode,
  file: string,
  stage: LintStage | undefined,
  onbuild: boolean,
): LintInstruction {
  return {
    node,
    ...typedOrError(node, file),
    keyword: node.keyword.toUpperCase(),
    keywordAsWritten: keywordOf(node),
    line: node.range.start.line,
    column: node.range.start.column,
    stage,
    onbuild,
  };
}

/** The script texts of a RUN: its command line and heredoc bodies (shell-form only). */
export function runScripts(run: RunInstruction): ShellScript[] {
  if (run.command.form !== 'shell') return [];
  const scripts = run.command.args.map(parseShell);
  for (const heredoc of run.command.heredocs) scripts.push(parseShell(heredoc.content));
  return scripts;
}

export function buildLintModel(source: string, file = 'Dockerfile'): LintModel {
  const parse = parseDockerfile(source, { file });
  const model: LintModel = {
    file,
    source,
    lines: source.split(/\r?\n/),
    parse,
    instructions: [],
    metaArgs: [],
    stages: [],
    runs: [],
    shellPragma: /^#\s*hadolint\s+shell\s*=\s*(\S+)/m.exec(source)?.[1],
  };
  const stagesByName = new Map<string, LintStage>();
  for (const node of parse.instructions) {
    const current = model.stages.at(-1);
    const instruction = toLintInstruction(node, file, current, false);
    model.instructions.push(instruction);
    if (instruction.keyword === 'FROM') {
      const typed = instruction.typed?.kind === 'FROM' ? instruction.typed : undefined;
      const image = typed?.image ?? node.args[0] ?? '';
      const nameIndex = node.args.findIndex((arg) => arg.toLowerCase() === 'as');
      const nameAsWritten = nameIndex >= 0 ? node.args[nameIndex + 1] : undefined;
      const stage: LintStage = {
        index: model.stages.length,
        name: nameAsWritten?.toLowerCase(),
        nameAsWritten,
        from: instruction,
        image,
        parent: stagesByName.get(image.toLowerCase()),
        instructions: [],
      };
      instruction.stage = stage;
      model.stages.push(stage);
      if (stage.name !== undefined && !stagesByName.has(stage.name)) stagesByName.set(stage.name, stage);
      continue;
    }
    if (current) current.instructions.push(instruction);
    else if (instruction.keyword === 'ARG') model.metaArgs.push(instruction);
    const run = runOf(instruction, file);
    if (run) model.runs.push(run);
  }
  return model;
}

function runOf(instruction: LintInstruction, file: string): RunScript | undefined {
  let target = instruction;
  if (instruction.keyword === 'ONBUILD' && instruction.node.child) {
    target = toLintInstruction(instruction.node.child, file, instruction.stage, true);
  }
  if (target.typed?.kind !== 'RUN') return undefined;
  return { instruction: target, run: target.typed, scripts: runScripts(target.typed) };
}

// ---------------------------------------------------------------------------------------------
// Helpers rules share

/** The typed instruction when it is of kind `kind`. */
export function typedAs<K extends Instruction['kind']>(
  instruction: LintInstruction,
  kind: K,
): TypedInstruction<K> | undefined {
  return instruction.typed?.kind === kind ? (instruction.typed as TypedInstruction<K>) : undefined;
}

/** Every top-level instruction of kind `kind` with its typed form. */
export function* instructionsOf<K extends Instruction['kind']>(
  model: LintModel,
  kind: K,
): Generator<{ instruction: LintInstruction; typed: TypedInstruction<K> }> {
  for (const instruction of model.instructions) {
    const typed = typedAs(instruction, kind);
    if (typed) yield { instruction, typed };
  }
}

/** Top-level instructions plus ONBUILD triggers (hadolint checks both). */
export function* withOnbuildTriggers(model: LintModel, file: string): Generator<LintInstruction> {
  for (const instruction of model.instructions) {
    yield instruction;
    if (instruction.keyword === 'ONBUILD' && instruction.node.child) {
      yield toLintInstruction(instruction.node.child, file, instruction.stage, true);
    }
  }
}

/** Removes one level of matching surrounding quotes. */
export function unquote(text: string): string {
  if (text.length >= 2 && (text[0] === '"' || text[0] === "'") && text.at(-1) === text[0]) {
    return text.slice(1, -1);
  }
  return text;
}
