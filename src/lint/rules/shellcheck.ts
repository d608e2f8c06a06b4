/**
 * ShellCheck's comments on RUN scripts, reported under ShellCheck's codes as hadolint reports
 * them: at the RUN's line, each distinct comment once per RUN. The checks are strata's own
 * (shellcheck.ts); the setting of each script follows hadolint: the shell is the SHELL in force
 * (sh by default, or the `# hadolint shell=` pragma; shells ShellCheck does not know are not
 * checked), and the ARG and ENV names in scope plus the proxy variables count as set. An
 * ONBUILD trigger runs in a later build, whose shell and variables this file does not decide:
 * like hadolint, it is checked as plain sh with only the proxy variables set.
 */
import { PROXY_ARGS } from '../../dockerfile/stages.js';
import type { LintModel, RunScript } from '../model.js';
import { shellcheck, shellDialect, type ShellcheckComment, type ShellDialect } from '../shellcheck.js';
import type { Rule, Severity, Violation } from '../types.js';
import { instructionsInScope, shellInScope } from './support.js';

/** The script texts of a RUN as the shell receives them, with the dialect to check them in. */
function shellScripts(model: LintModel, script: RunScript): Array<{ text: string; dialect: ShellDialect }> {
  const command = script.run.command;
  if (command.form !== 'shell') return [];
  let dialect: ShellDialect | undefined = 'sh';
  if (!script.instruction.onbuild) {
    const shell = shellInScope(model, script);
    dialect = shell !== undefined ? shellDialect(shell[0]) : shellDialect(model.shellPragma);
  }
  if (dialect === undefined) return [];
  const line = command.args.join(' ');
  const [only] = command.heredocs;
  // `RUN <<EOF` alone: the body is the script (run by its #! interpreter when it has one).
  if (only !== undefined && command.heredocs.length === 1 && /^\d*<<-?\S+$/.test(line.trim())) {
    const shebang = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(only.content);
    if (shebang !== null) {
      const program = /(^|\/)env$/.test(shebang[1] as string) ? shebang[2] : shebang[1];
      const own = shellDialect(program ?? '');
      if (own === undefined) return [];
      dialect = own;
    }
    return [{ text: only.content, dialect }];
  }
  // Otherwise the shell gets the command line with each heredoc appended, as BuildKit passes it.
  const text = command.heredocs.reduce((full, heredoc) => `${full}\n${heredoc.content}${heredoc.name}`, line);
  return [{ text, dialect }];
}

/** The variables set when a RUN starts: ENV of its stage chain, ARGs of its stage, proxies. */
function definedVariables(model: LintModel, script: RunScript): string[] {
  const names = [...PROXY_ARGS];
  if (script.instruction.onbuild) return names;
  const stage = script.instruction.stage;
  for (const earlier of instructionsInScope(model, script.instruction)) {
    const typed = earlier.typed;
    if (typed?.kind === 'ENV') names.push(...typed.pairs.map((pair) => pair.key));
    // An ARG is scoped to its stage: a child stage must declare it again.
    else if (typed?.kind === 'ARG' && earlier.stage === stage)
      names.push(...typed.args.map((arg) => arg.name));
  }
  return names;
}

const analysed = new WeakMap<LintModel, Map<RunScript, ShellcheckComment[]>>();

/** Every RUN's comments, computed once per model for all the SC rules. */
function commentsOf(model: LintModel): Map<RunScript, ShellcheckComment[]> {
  let byRun = analysed.get(model);
  if (byRun !== undefined) return byRun;
  byRun = new Map();
  if (model.shellPragma === undefined || shellDialect(model.shellPragma) !== undefined) {
    for (const script of model.runs) {
      const defined = definedVariables(model, script);
      const comments = shellScripts(model, script).flatMap(({ text, dialect }) =>
        shellcheck(text, { dialect, defined }),
      );
      byRun.set(script, comments);
    }
  }
  analysed.set(model, byRun);
  return byRun;
}

function shellcheckRule(id: string, severity: Severity, message: string, hint: string): Rule {
  return {
    id,
    origin: 'hadolint',
    severity,
    message,
    hint,
    url: `https://www.shellcheck.net/wiki/${id}`,
    *check(model): Iterable<Violation> {
      for (const [script, comments] of commentsOf(model)) {
        const seen = new Set<string>();
        for (const comment of comments) {
          if (comment.code !== id || seen.has(comment.message)) continue;
          seen.add(comment.message);
          yield {
            line: script.instruction.line,
            column: script.instruction.column,
            message: comment.message,
            ...(comment.severity === severity ? {} : { severity: comment.severity }),
          };
        }
      }
    },
  };
}

export const SHELLCHECK_RULES: readonly Rule[] = [
  shellcheckRule(
    'SC2086',
    'info',
    'Double quote to prevent globbing and word splitting.',
    'Write "$var": unquoted, a value with spaces or * becomes several arguments.',
  ),
  shellcheckRule(
    'SC2153',
    'info',
    'Possible misspelling: a variable may not be assigned.',
    'Check the name against the ARG/ENV that set it.',
  ),
  shellcheckRule(
    'SC2154',
    'warning',
    'A variable is referenced but not assigned.',
    'Declare it with ARG or ENV (or assign it in the script), or fix the name.',
  ),
  // Under dash ShellCheck makes the portability comments errors; findings keep that level.
  shellcheckRule(
    'SC3028',
    'warning',
    'In POSIX sh, a bash-only variable is undefined.',
    'Use SHELL ["/bin/bash", "-c"] or a portable alternative.',
  ),
  shellcheckRule(
    'SC3046',
    'warning',
    "In POSIX sh, 'source' in place of '.' is undefined.",
    'Write `. file`, or set SHELL ["/bin/bash", "-c"].',
  ),
];
