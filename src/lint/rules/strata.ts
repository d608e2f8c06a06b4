/**
 * strata's own rules (`STxxxx`) for best practices no other linter checks; see the "Gap" rows
 * of shared/research/lint.md, section 4.
 */
import { PatternMatcher } from '../../dockerfile/dockerignore.js';
import type { LintInstruction, LintModel, RunScript } from '../model.js';
import { instructionsOf } from '../model.js';
import { isCommand, positionalArgs, subcommandArgs, type ShellCommand } from '../shell-analysis.js';
import type { Rule, Violation } from '../types.js';
import { commandsOf } from './support.js';
import { hasVariable, splitImage } from './hadolint-instructions.js';
import { STRATA_RUNTIME_RULES, finalStages, repositoryOf } from './strata-runtime.js';

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

/** `COPY . …` / `ADD . …` from the context: the whole build context goes into the image. */
function copiesWholeContext(instruction: LintInstruction): boolean {
  const typed = instruction.typed;
  if (typed?.kind !== 'ADD' && !(typed?.kind === 'COPY' && typed.from === undefined)) return false;
  return typed.sources.some((source) => source === '.' || source === './' || source === '*');
}

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
          if (copiesWholeContext(instruction)) wholeContext ??= instruction;
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

// ---------------------------------------------------------------------------------------------
// What the final image is built from

/** Official images whose default variants carry a full OS (compilers, docs, package caches). */
const SLIM_VARIANTS: Record<string, string> = {
  debian: '-slim',
  python: '-slim',
  node: '-slim',
  ruby: '-slim',
  perl: '-slim',
  rust: '-slim',
  openjdk: '-slim',
  php: '-alpine',
  golang: '-alpine',
  'buildpack-deps': '',
};

const ST1006 = strata({
  id: 'ST1006',
  severity: 'info',
  message: 'The final image starts from a full-size base image where a smaller variant exists',
  hint: 'Use the -slim (or -alpine) variant, or build in this image and copy the result into a slim or distroless one.',
  *check(model) {
    const root = finalStages(model)[0];
    if (root === undefined || root.image === 'scratch' || hasVariable(root.image)) return;
    const base = { stage: root, image: root.image };
    const { name, tag } = repositoryOf(base.image);
    const suffix = SLIM_VARIANTS[name];
    if (suffix === undefined) return;
    if (tag !== undefined && /slim|alpine|distroless|minimal|busybox/.test(tag)) return;
    const suggestion =
      name === 'buildpack-deps'
        ? 'debian:<version>-slim'
        : `${name}:${tag === undefined || tag === 'latest' ? '<version>' : tag}${suffix}`;
    yield {
      line: base.stage.from.line,
      column: base.stage.from.column,
      message: `The final image starts from ${base.image}, a full-size image: ${suggestion} is smaller`,
    };
  },
});

// ---------------------------------------------------------------------------------------------
// .dockerignore when the whole context is copied

const ST1007 = strata({
  id: 'ST1007',
  severity: 'warning',
  message: 'The whole build context is copied and no .dockerignore excludes anything from it',
  hint: 'Add a .dockerignore listing .git, .env, keys, node_modules, build output…: they would end up in the image.',
  *check(model) {
    if (model.dockerignore === undefined || model.dockerignore.some((pattern) => pattern.trim() !== ''))
      return;
    const first = model.instructions.find(copiesWholeContext);
    if (first !== undefined) yield at(first);
  },
});

/** What a .dockerignore should keep out of an image, with a path each to test the patterns. */
const SHOULD_IGNORE: Array<{ label: string; samples: string[]; node?: boolean }> = [
  { label: '.git', samples: ['.git'] },
  { label: '.env', samples: ['.env'] },
  { label: 'private keys (*.pem, *.key, id_rsa)', samples: ['server.pem', 'server.key', 'id_rsa'] },
  { label: 'node_modules', samples: ['node_modules'], node: true },
];

const NODE_TOOLS = new Set(['npm', 'yarn', 'pnpm', 'npx']);

function usesNode(model: LintModel): boolean {
  if (model.stages.some((stage) => repositoryOf(stage.image).name === 'node')) return true;
  return model.runs.some((script) => commandsOf(script).some((command) => NODE_TOOLS.has(command.name)));
}

const ST1008 = strata({
  id: 'ST1008',
  severity: 'info',
  message: 'The whole build context is copied but .dockerignore lets sensitive or bulky files in',
  hint: 'Add the missing entries to .dockerignore.',
  *check(model) {
    const patterns = model.dockerignore;
    if (patterns === undefined || !patterns.some((pattern) => pattern.trim() !== '')) return;
    const first = model.instructions.find(copiesWholeContext);
    if (first === undefined) return;
    const matcher = new PatternMatcher(patterns);
    const node = usesNode(model);
    const missing = SHOULD_IGNORE.filter(
      (entry) => (entry.node !== true || node) && entry.samples.some((sample) => !matcher.matches(sample)),
    ).map((entry) => entry.label);
    if (missing.length > 0)
      yield {
        ...at(first),
        message: `The whole build context is copied but .dockerignore does not exclude ${missing.join(', ')}`,
      };
  },
});

// ---------------------------------------------------------------------------------------------
// Build toolchains in a single-stage image

/** Packages that exist to compile things. */
const TOOLCHAIN_PACKAGE =
  /^(gcc|g\+\+|clang|llvm|make|cmake|ninja-build|autoconf|automake|libtool|pkg-config|pkgconf|build-essential|build-base|alpine-sdk|musl-dev|golang|golang-go|go|rustc|cargo|maven|gradle|openjdk-\d+-jdk|java-[\d.]+-openjdk-devel|[a-z0-9.+-]+-dev|[a-z0-9.+-]+-devel)([=<>].*)?$/;

const PACKAGE_INSTALLS: Array<[string, string[]]> = [
  ['apt-get', ['install']],
  ['apt', ['install']],
  ['apk', ['add']],
  ['yum', ['install']],
  ['dnf', ['install']],
  ['microdnf', ['install']],
  ['zypper', ['install', 'in']],
];
const PACKAGE_REMOVALS: Array<[string, string[]]> = [
  ['apt-get', ['purge', 'remove', 'autoremove']],
  ['apt', ['purge', 'remove', 'autoremove']],
  ['apk', ['del']],
  ['yum', ['remove', 'erase']],
  ['dnf', ['remove', 'erase']],
  ['microdnf', ['remove']],
  ['zypper', ['remove', 'rm']],
];

const runsSubcommand = (command: ShellCommand, table: Array<[string, string[]]>): boolean =>
  table.some(
    ([tool, subcommands]) =>
      isCommand(command, tool) && subcommands.includes(positionalArgs(command)[0] ?? ''),
  );

/** Commands that compile in place, leaving compilers and sources in the image. */
function compiles(command: ShellCommand): boolean {
  const [first, second] = positionalArgs(command);
  if (isCommand(command, 'go')) return first === 'build' || first === 'install';
  if (isCommand(command, 'cargo')) return first === 'build' || first === 'install';
  if (isCommand(command, 'mvn') || isCommand(command, 'mvnw'))
    return ['package', 'install', 'verify'].some((goal) => positionalArgs(command).includes(goal));
  if (isCommand(command, 'gradle') || isCommand(command, 'gradlew'))
    return ['build', 'assemble', 'jar', 'bootJar', 'installDist'].some((task) =>
      positionalArgs(command).includes(task),
    );
  if (isCommand(command, 'dotnet')) return first === 'publish' || first === 'build';
  if (isCommand(command, /^(gcc|g\+\+|cc|c\+\+|clang|javac)$/)) return true;
  if (isCommand(command, 'npm') || isCommand(command, 'pnpm')) return first === 'run' && second === 'build';
  if (isCommand(command, 'yarn')) return first === 'build' || (first === 'run' && second === 'build');
  return false;
}

function toolchainIn(script: RunScript): string | undefined {
  const commands = commandsOf(script);
  // `apk add --virtual .deps gcc … && apk del .deps`: installed and removed in one layer.
  if (commands.some((command) => runsSubcommand(command, PACKAGE_REMOVALS))) return undefined;
  for (const command of commands) {
    if (runsSubcommand(command, PACKAGE_INSTALLS)) {
      const found = subcommandArgs(command, ['o', 't', 'c', 'virtual', 't']).find((pkg) =>
        TOOLCHAIN_PACKAGE.test(pkg),
      );
      if (found !== undefined) return `installs ${found.split(/[=<>]/)[0]}`;
    }
    if (compiles(command)) return `runs ${[command.name, ...positionalArgs(command).slice(0, 2)].join(' ')}`;
  }
  return undefined;
}

const ST1009 = strata({
  id: 'ST1009',
  severity: 'info',
  message:
    'A build toolchain ends up in the final image: build in one stage and copy the result into a clean one',
  hint: 'Multi-stage: `FROM golang:1.22 AS build` … `RUN go build` … `FROM gcr.io/distroless/static` + `COPY --from=build /out/app /app`.',
  *check(model) {
    const chain = finalStages(model);
    const last = chain.at(-1);
    if (last === undefined) return;
    // A final stage that copies from another stage is multi-stage already.
    if (
      last.instructions.some(
        (instruction) => instruction.typed?.kind === 'COPY' && instruction.typed.from !== undefined,
      )
    )
      return;
    const inChain = new Set(chain);
    for (const script of model.runs) {
      if (script.instruction.onbuild || script.instruction.stage === undefined) continue;
      if (!inChain.has(script.instruction.stage)) continue;
      const what = toolchainIn(script);
      if (what === undefined) continue;
      yield {
        ...at(script.instruction),
        message: `The final image ${what}: its build toolchain ships with the application (use a multi-stage build)`,
      };
      return;
    }
  },
});

export const STRATA_RULES: readonly Rule[] = [
  ST1001,
  ST1002,
  ST1003,
  ST1004,
  ST1005,
  ST1006,
  ST1007,
  ST1008,
  ST1009,
  ...STRATA_RUNTIME_RULES,
];
