/**
 * strata's own rules (`STxxxx`) for best practices no other linter checks; see the "Gap" rows
 * of shared/research/lint.md, section 4.
 */
import type { LintInstruction, LintModel } from '../model.js';
import { instructionsOf } from '../model.js';
import { isCommand, positionalArgs } from '../shell-analysis.js';
import type { Rule, Violation } from '../types.js';
import { commandsOf } from './support.js';
import { splitImage } from './hadolint-instructions.js';

function strata(definition: Omit<Rule, 'origin'>): Rule {
  return { ...definition, origin: 'strata' };
}

const at = (instruction: LintInstruction): Violation => ({
  line: instruction.line,
  column: instruction.column,
});

const isStageName = (model: LintModel, image: string): boolean =>
  model.stages.some((stage) => stage.name === image.toLowerCase());

const ST1001 = strata({
  id: 'ST1001',
  severity: 'info',
  message: 'Base image is pinned by tag only; a tag can be moved to different content',
  hint: 'Add the digest: `FROM image:tag@sha256:…` (tools like Renovate keep it current).',
  *check(model) {
    for (const stage of model.stages) {
      const image = stage.image;
      if (image === 'scratch' || image.includes('$') || isStageName(model, image)) continue;
      const { tag, digest } = splitImage(image);
      if (tag !== undefined && tag !== 'latest' && digest === undefined) yield at(stage.from);
    }
  },
});

/** Commands that install dependencies from manifests copied into the context. */
const DEPENDENCY_INSTALL: Array<[string | RegExp, string[]]> = [
  ['npm', ['ci', 'install', 'i']],
  ['yarn', ['install', '']],
  ['pnpm', ['install', 'i']],
  [/^pip[\d.]*$/, ['install']],
  ['go', ['mod']],
  ['bundle', ['install', '']],
  ['composer', ['install']],
  ['poetry', ['install']],
  ['cargo', ['fetch']],
];

const ST1002 = strata({
  id: 'ST1002',
  severity: 'info',
  message:
    'The whole context is copied before dependencies are installed: any source change re-runs the install',
  hint: 'Copy only the dependency manifests (package.json, requirements.txt, go.mod…), install, then `COPY . .`.',
  *check(model) {
    for (const stage of model.stages) {
      let wholeContext: LintInstruction | undefined;
      for (const instruction of stage.instructions) {
        const typed = instruction.typed;
        if ((typed?.kind === 'COPY' && typed.from === undefined) || typed?.kind === 'ADD') {
          if (typed.sources.some((source) => source === '.' || source === './')) wholeContext ??= instruction;
          continue;
        }
        if (wholeContext === undefined || typed?.kind !== 'RUN') continue;
        const script = model.runs.find((run) => run.instruction.node === instruction.node);
        const installs =
          script !== undefined &&
          commandsOf(script).some((command) =>
            DEPENDENCY_INSTALL.some(
              ([tool, subcommands]) =>
                isCommand(command, tool) && subcommands.includes(positionalArgs(command)[0] ?? ''),
            ),
          );
        if (installs) {
          yield at(wholeContext);
          break;
        }
      }
    }
  },
});

const ST1003 = strata({
  id: 'ST1003',
  severity: 'warning',
  message: 'Package index updated in a RUN that installs nothing: the cached index goes stale',
  hint: 'Run `update` and `install` in the same RUN.',
  *check(model) {
    for (const script of model.runs) {
      const commands = commandsOf(script);
      const tools = ['apt-get', 'apt', 'apk', 'yum', 'dnf', 'zypper'];
      for (const tool of tools) {
        const updates = commands.some(
          (command) =>
            isCommand(command, tool) &&
            ['update', 'refresh', 'makecache'].includes(positionalArgs(command)[0] ?? ''),
        );
        const installs = commands.some(
          (command) =>
            isCommand(command, tool) &&
            ['install', 'add', 'in', 'upgrade', 'dist-upgrade'].includes(positionalArgs(command)[0] ?? ''),
        );
        if (updates && !installs) {
          yield at(script.instruction);
          break;
        }
      }
    }
  },
});

const ST1004 = strata({
  id: 'ST1004',
  severity: 'info',
  message: 'The final stage sets no USER: the container runs as root',
  hint: 'Add `USER 10001` (a non-root UID) before CMD/ENTRYPOINT.',
  *check(model) {
    const last = model.stages.at(-1);
    if (last === undefined || last.image === 'scratch') return;
    const chain: (typeof last)[] = [];
    for (let stage: typeof last | undefined = last; stage !== undefined; stage = stage.parent)
      chain.push(stage);
    const hasUser = chain.some((stage) =>
      stage.instructions.some((instruction) => instruction.keyword === 'USER'),
    );
    if (!hasUser) yield at(last.from);
  },
});

const ST1005 = strata({
  id: 'ST1005',
  severity: 'warning',
  message: 'Port 22 (SSH) is exposed; containers should not run an SSH server',
  hint: 'Use `docker exec` (or kubectl exec) instead of SSH.',
  *check(model) {
    for (const { instruction, typed } of instructionsOf(model, 'EXPOSE')) {
      if (typed.ports.some((port) => port.split('/')[0] === '22')) yield at(instruction);
    }
  },
});

export const STRATA_RULES: readonly Rule[] = [ST1001, ST1002, ST1003, ST1004, ST1005];
