import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { buffer } from 'node:stream/consumers';
import type { CliContext } from './context.js';
import {
  dumpAst,
  loadDockerfile,
  parseDockerfile,
  type DockerfileModel,
  type Instruction,
} from '../index.js';
import { StrataError, errnoCode } from '../errors.js';

async function readSource(file: string): Promise<Buffer> {
  if (file === '-') return buffer(process.stdin);
  try {
    return await readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new StrataError('NOT_FOUND', `${file}: no such file`);
    if (errnoCode(err) === 'EISDIR') throw new StrataError('INVALID_ARGUMENT', `${file} is a directory`);
    throw err;
  }
}

function position(instruction: Instruction): string {
  return `${instruction.range.start.line}:${instruction.range.start.column}`;
}

/** A readable outline: stages, their instructions and the fields strata understood. */
function outline(model: DockerfileModel): string {
  const lines: string[] = [];
  const show = (instruction: Instruction, indent: string) => {
    const { range: _range, original: _original, kind, ...fields } = instruction;
    lines.push(`${indent}${position(instruction).padEnd(7)} ${kind} ${JSON.stringify(fields)}`);
  };
  for (const arg of model.metaArgs) show(arg, '');
  for (const stage of model.stages) {
    lines.push(`stage ${stage.index}${stage.name ? ` (${stage.name})` : ''}:`);
    show(stage.from, '  ');
    for (const instruction of stage.instructions) show(instruction, '  ');
  }
  return `${lines.join('\n')}\n`;
}

export function registerDockerfileCommands(program: Command, ctx: CliContext): void {
  const dockerfile = program.command('dockerfile').description('Read Dockerfiles as BuildKit does');
  dockerfile
    .command('parse')
    .description("Parse a Dockerfile and print its typed instructions (or BuildKit's AST dump)")
    .argument('<file>', 'Dockerfile path, or - for STDIN')
    .option('--json', 'print the typed instructions as JSON')
    .option('--dump', "print BuildKit's parser dump format")
    .action(async (file: string, options: { json?: boolean; dump?: boolean }) => {
      if (options.json && options.dump)
        throw new StrataError('INVALID_ARGUMENT', '--json and --dump cannot be combined');
      const source = await readSource(file);
      const name = file === '-' ? 'Dockerfile' : file;
      if (options.dump) {
        ctx.stdout.write(dumpAst(parseDockerfile(source, { file: name })));
        return;
      }
      const model = loadDockerfile(source, { file: name });
      for (const warning of model.warnings) {
        ctx.warn(`${name}:${warning.range.start.line}: warning: ${warning.message}`);
      }
      ctx.stdout.write(options.json ? `${JSON.stringify(model, null, 2)}\n` : outline(model));
    });
}
