/**
 * BuildKit's parser dump (`Node.Dump()`): one `(keyword ["--flags"] "arg" …)` line per instruction.
 * Used by `strata dockerfile parse --dump` and to compare our parser with BuildKit's test data.
 */
import type { InstructionNode, ParseResult } from './parser.js';
import { goQuote } from './shell.js';

export function dumpNode(node: InstructionNode): string {
  let text = node.keyword;
  if (node.flags.length > 0) text += ` [${node.flags.map(goQuote).join(' ')}]`;
  for (const arg of node.args) text += ` ${goQuote(arg)}`;
  if (node.child) text += ` (${dumpNode(node.child)})`;
  return text.trim();
}

/** The whole file, one line per instruction, newline-terminated. */
export function dumpAst(result: Pick<ParseResult, 'instructions'>): string {
  return result.instructions.map((node) => `(${dumpNode(node)})\n`).join('');
}
