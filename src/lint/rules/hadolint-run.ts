/**
 * hadolint's rules about what RUN does: package managers, downloaders, shell habits. Semantics
 * follow hadolint's documented behaviour and its test corpus (shared/corpora/hadolint); every
 * rule looks at ONBUILD RUN as well.
 */
import type { LintModel, RunScript } from '../model.js';
import {
  flagNames,
  hasAnyFlag,
  hasSubcommand,
  isCommand,
  positionalArgs,
  subcommandArgs,
  type ShellCommand,
} from '../shell-analysis.js';
import type { Rule, Violation } from '../types.js';
import {
  commandsOf,
  envInScope,
  hasCacheMount,
  hasCacheMountCovering,
  referencedStages,
  shellInScope,
  substitute,
  variablesInScope,
} from './support.js';

/** A rule that judges each RUN on its own. */
function runRule(
  definition: Omit<Rule, 'check' | 'origin'>,
  violates: (script: RunScript, model: LintModel) => boolean,
): Rule {
  return {
    ...definition,
    origin: 'hadolint',
    *check(model: LintModel): Iterable<Violation> {
      for (const script of model.runs) {
        if (violates(script, model))
          yield { line: script.instruction.line, column: script.instruction.column };
      }
    },
  };
}

const anyCommand = (script: RunScript, test: (command: ShellCommand) => boolean): boolean =>
  commandsOf(script).some(test);

// ---------------------------------------------------------------------------------------------
// apt

const APT_VALUE_FLAGS = ['o', 't', 'c', 'target-release', 'option', 'config-file'];
const isAptGet = (command: ShellCommand): boolean => isCommand(command, 'apt-get');
const aptGetInstall = (command: ShellCommand): boolean =>
  isAptGet(command) && hasSubcommand(command, ['install'], APT_VALUE_FLAGS);

function aptPackages(command: ShellCommand): string[] {
  return subcommandArgs(command, APT_VALUE_FLAGS);
}

const DL3008: Rule = runRule(
  {
    id: 'DL3008',
    severity: 'warning',
    message: 'Pin versions in apt-get install',
    hint: 'Use `apt-get install <package>=<version>` so rebuilds get the same packages.',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        aptGetInstall(command) &&
        aptPackages(command).some((pkg) => !pkg.includes('=') && !pkg.endsWith('.deb') && !pkg.includes('/')),
    ),
);

/** Stages whose RUNs matter for leftovers: the last one and those later stages build FROM. */
function stagesThatShip(model: LintModel): (script: RunScript) => boolean {
  const { byFrom } = referencedStages(model);
  const last = model.stages.at(-1);
  return (script) => {
    const stage = script.instruction.stage;
    // ONBUILD triggers run in whatever image builds on this one, so they always ship.
    return script.instruction.onbuild || stage === undefined || stage === last || byFrom.has(stage);
  };
}

const isAptUpdate = (command: ShellCommand): boolean =>
  (isCommand(command, 'apt-get') || isCommand(command, 'apt') || isCommand(command, 'aptitude')) &&
  hasSubcommand(command, ['update'], APT_VALUE_FLAGS);

const removesAptLists = (command: ShellCommand): boolean =>
  isCommand(command, 'rm') &&
  command.args.some((arg) => arg.replace(/\/+$/, '').startsWith('/var/lib/apt/lists'));

const DL3009: Rule = {
  id: 'DL3009',
  origin: 'hadolint',
  severity: 'info',
  message: 'Delete the apt-get lists after installing something',
  hint: 'End the RUN with `rm -rf /var/lib/apt/lists/*`, or use a cache mount for /var/lib/apt/lists.',
  *check(model) {
    const ships = stagesThatShip(model);
    for (const script of model.runs) {
      if (!ships(script)) continue;
      if (!anyCommand(script, isAptUpdate) || anyCommand(script, removesAptLists)) continue;
      if (hasCacheMount(script, '/var/lib/apt/lists')) continue;
      if (hasCacheMount(script, '/var/lib/apt') && hasCacheMount(script, '/var/cache/apt')) continue;
      yield { line: script.instruction.line };
    }
  },
};

const DL3014: Rule = runRule(
  {
    id: 'DL3014',
    severity: 'warning',
    message: 'Use the `-y` switch to avoid manual input `apt-get -y install <package>`',
    hint: 'A build cannot answer prompts: add `-y`.',
  },
  (script) =>
    anyCommand(script, (command) => {
      if (!aptGetInstall(command)) return false;
      if (hasAnyFlag(command, ['y', 'yes', 'assume-yes'])) return false;
      const quietLevel = command.args.reduce((level, arg) => {
        if (arg === '-qq' || arg === '-q=2' || arg === '--quiet=2') return level + 2;
        if (arg === '-q' || arg === '--quiet') return level + 1;
        return level;
      }, 0);
      return quietLevel < 2;
    }),
);

const DL3015: Rule = runRule(
  {
    id: 'DL3015',
    severity: 'info',
    message: 'Avoid additional packages by specifying `--no-install-recommends`',
    hint: 'Add `--no-install-recommends` to keep the image small.',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        aptGetInstall(command) &&
        !hasAnyFlag(command, ['no-install-recommends']) &&
        !command.args.some((arg) => /^APT::Install-Recommends=(false|0)$/i.test(arg)),
    ),
);

const DL3027: Rule = runRule(
  {
    id: 'DL3027',
    severity: 'warning',
    message: 'Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead',
    hint: '`apt` has no stable command-line interface; scripts should call apt-get.',
  },
  (script) => anyCommand(script, (command) => isCommand(command, 'apt')),
);

// ---------------------------------------------------------------------------------------------
// apk

const APK_VALUE_FLAGS = [
  't',
  'virtual',
  'X',
  'repository',
  'p',
  'root',
  'keys-dir',
  'repositories-file',
  'cache-dir',
  'arch',
];
const apkAdd = (command: ShellCommand): boolean =>
  isCommand(command, 'apk') && hasSubcommand(command, ['add'], APK_VALUE_FLAGS);

const DL3018: Rule = runRule(
  {
    id: 'DL3018',
    severity: 'warning',
    message: 'Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`',
    hint: 'Pin with `<package>=<version>` (or `~<version>` for a range).',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        apkAdd(command) &&
        subcommandArgs(command, APK_VALUE_FLAGS).some((pkg) => !/[=~<>]/.test(pkg) && !pkg.endsWith('.apk')),
    ),
);

const DL3019: Rule = runRule(
  {
    id: 'DL3019',
    severity: 'info',
    message:
      'Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages',
    hint: '`apk add --no-cache` neither keeps the index nor the downloaded packages in the layer.',
  },
  (script) =>
    !hasCacheMountCovering(script, '/var/cache/apk') &&
    anyCommand(script, (command) => apkAdd(command) && !hasAnyFlag(command, ['no-cache'])),
);

// ---------------------------------------------------------------------------------------------
// pip

const PIP_VALUE_FLAGS = [
  'c',
  'constraint',
  'e',
  'editable',
  't',
  'target',
  'platform',
  'python-version',
  'implementation',
  'abi',
  'root',
  'prefix',
  'b',
  'build',
  'src',
  'upgrade-strategy',
  'install-option',
  'global-option',
  'no-binary',
  'only-binary',
  'progress-bar',
  'i',
  'index-url',
  'extra-index-url',
  'f',
  'find-links',
  'trusted-host',
  'root-user-action',
  'log',
  'proxy',
  'retries',
  'timeout',
  'exists-action',
  'cert',
  'client-cert',
  'cache-dir',
  'python',
];

/** The `install` invocation of pip (`pip3 install`, `python -m pip install`), as pip's own args. */
function pipInstallArgs(command: ShellCommand): ShellCommand | undefined {
  let pip = command;
  if (isCommand(command, /^python[\d.]*$/)) {
    const index = command.args.findIndex((arg, i) => arg === 'pip' && command.args[i - 1] === '-m');
    if (index < 0) return undefined;
    pip = {
      ...command,
      name: 'pip',
      args: command.args.slice(index + 1),
      words: command.words.slice(index + 1),
    };
  } else if (!isCommand(command, /^pip[\d.]*$/) && !isCommand(command, 'pipx')) {
    return undefined;
  }
  return hasSubcommand(pip, ['install'], PIP_VALUE_FLAGS) ? pip : undefined;
}

function pipRequirementIsPinned(requirement: string): boolean {
  if (/^(git|hg|svn|bzr)\+/.test(requirement)) {
    const withoutScheme = requirement.replace(/^[a-z+]+:\/\/([^@/]*@)?/, '').split('#')[0] ?? '';
    return withoutScheme.includes('@');
  }
  if (/[=<>!~]/.test(requirement)) return true;
  if (requirement.includes('/') || requirement.startsWith('.')) return true;
  return /\.(whl|tar\.gz|tgz|zip|tar\.bz2)$/.test(requirement);
}

const DL3013: Rule = runRule(
  {
    id: 'DL3013',
    severity: 'warning',
    message:
      'Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`',
    hint: 'Pin with `<package>==<version>` or install from a requirements/constraints file.',
  },
  (script) =>
    anyCommand(script, (command) => {
      const pip = pipInstallArgs(command);
      if (pip === undefined) return false;
      if (hasAnyFlag(pip, ['r', 'requirement', 'c', 'constraint'])) return false;
      return subcommandArgs(pip, PIP_VALUE_FLAGS).some((requirement) => !pipRequirementIsPinned(requirement));
    }),
);

const FALSY = /^(0|off|no|false)$/i;

const DL3042: Rule = {
  id: 'DL3042',
  origin: 'hadolint',
  severity: 'warning',
  message: 'Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`',
  hint: 'Add `--no-cache-dir`, set `PIP_NO_CACHE_DIR=1`, or mount a cache on /root/.cache/pip.',
  *check(model) {
    for (const script of model.runs) {
      if (hasCacheMountCovering(script, '/root/.cache/pip')) continue;
      const envValue = envInScope(model, script.instruction).get('PIP_NO_CACHE_DIR');
      let disabled = envValue !== undefined && !FALSY.test(envValue);
      let violates = false;
      for (const command of commandsOf(script)) {
        if (isCommand(command, 'export')) {
          for (const arg of command.args) {
            if (arg.startsWith('PIP_NO_CACHE_DIR='))
              disabled = !FALSY.test(arg.slice('PIP_NO_CACHE_DIR='.length));
          }
          continue;
        }
        const pip = pipInstallArgs(command);
        if (pip === undefined || isCommand(command, 'pipx')) continue;
        const assigned = command.assignments.find((assignment) => assignment.startsWith('PIP_NO_CACHE_DIR='));
        const off =
          assigned !== undefined ? !FALSY.test(assigned.slice('PIP_NO_CACHE_DIR='.length)) : disabled;
        if (!off && !hasAnyFlag(pip, ['no-cache-dir'])) violates = true;
      }
      if (violates) yield { line: script.instruction.line };
    }
  },
};

// ---------------------------------------------------------------------------------------------
// npm, yarn, gem, go

const NPM_VALUE_FLAGS = ['registry', 'loglevel', 'prefix', 'cache', 'userconfig', 'tag', 'w', 'workspace'];

function npmPackageIsPinned(spec: string): boolean {
  if (/^(\.{0,2}\/|~\/)/.test(spec)) return true;
  if (/\.(tar|tar\.gz|tgz)$/.test(spec)) return true;
  if (/^(git\+|git:)/.test(spec) || /^[a-z]+:\/\//.test(spec)) return spec.includes('#');
  const versionAt = spec.startsWith('@') ? spec.indexOf('@', 1) : spec.indexOf('@');
  return versionAt > 0;
}

const DL3016: Rule = runRule(
  {
    id: 'DL3016',
    severity: 'warning',
    message: 'Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`',
    hint: 'Pin with `<package>@<version>`, or rely on package-lock.json with `npm ci`.',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        isCommand(command, 'npm') &&
        hasSubcommand(command, ['install', 'i', 'add'], NPM_VALUE_FLAGS) &&
        subcommandArgs(command, NPM_VALUE_FLAGS).some((spec) => !npmPackageIsPinned(spec)),
    ),
);

const yarnInstall = (command: ShellCommand): boolean =>
  isCommand(command, 'yarn') && hasSubcommand(command, ['install', 'add']);
const yarnCacheClean = (command: ShellCommand): boolean =>
  isCommand(command, 'yarn') &&
  positionalArgs(command)[0] === 'cache' &&
  positionalArgs(command)[1] === 'clean';

const DL3060: Rule = {
  id: 'DL3060',
  origin: 'hadolint',
  severity: 'info',
  message: '`yarn cache clean` missing after `yarn install` was run.',
  hint: 'Run `yarn cache clean` in the same RUN, or mount a cache on the yarn cache directory.',
  *check(model) {
    const ships = stagesThatShip(model);
    for (const script of model.runs) {
      // yarn 1 keeps its cache in ~/.cache/yarn, or /usr/local/share/.cache/yarn when run as root.
      if (
        !ships(script) ||
        hasCacheMountCovering(script, '/root/.cache/yarn', '/usr/local/share/.cache/yarn')
      )
        continue;
      if (cleanedAfterInstall(commandsOf(script), yarnInstall, yarnCacheClean) === false) {
        yield { line: script.instruction.line };
      }
    }
  },
};

/** undefined: nothing installed; true: a clean follows the last install; false: it does not. */
function cleanedAfterInstall(
  commands: readonly ShellCommand[],
  installs: (command: ShellCommand) => boolean,
  cleans: (command: ShellCommand) => boolean,
): boolean | undefined {
  let state: boolean | undefined;
  for (const command of commands) {
    if (installs(command)) state = false;
    else if (cleans(command) && state === false) state = true;
  }
  return state;
}

const GEM_VALUE_FLAGS = ['source', 'i', 'install-dir', 'n', 'bindir', 'platform', 'g', 'file'];

const DL3028: Rule = runRule(
  {
    id: 'DL3028',
    severity: 'warning',
    message: 'Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`',
    hint: 'Pin with `<gem>:<version>` or `-v <version>`.',
  },
  (script) =>
    anyCommand(script, (command) => {
      if (
        !isCommand(command, 'gem') ||
        !hasSubcommand(command, ['install', 'i'], ['v', 'version', ...GEM_VALUE_FLAGS])
      ) {
        return false;
      }
      if (hasAnyFlag(command, ['v', 'version'])) return false;
      const separator = command.args.indexOf('--');
      const own = separator < 0 ? command : { ...command, args: command.args.slice(0, separator) };
      const gems = subcommandArgs(own, GEM_VALUE_FLAGS).filter((gem) => gem !== 'true' && gem !== 'false');
      return gems.some((gem) => !gem.includes(':'));
    }),
);

const DL3062: Rule = runRule(
  {
    id: 'DL3062',
    severity: 'warning',
    message: 'Pin versions in go. Instead of `go install <package>` use `go install <package>@<version>`',
    hint: 'Pin with `<module>@<version>`; `@latest` is not a pin.',
  },
  (script) =>
    anyCommand(script, (command) => {
      if (!isCommand(command, 'go')) return false;
      const [sub, ...rest] = positionalArgs(command);
      if (sub !== 'install' && sub !== 'get' && sub !== 'run') return false;
      const targets = sub === 'run' ? rest.slice(0, 1) : rest;
      return targets.some((target) => {
        if (target.startsWith('.') || target.startsWith('/')) return false;
        const at = target.lastIndexOf('@');
        return at < 0 || target.slice(at + 1) === 'latest';
      });
    }),
);

// ---------------------------------------------------------------------------------------------
// yum, dnf, zypper

const YUM_VALUE_FLAGS = [
  'setopt',
  'c',
  'config',
  'installroot',
  'releasever',
  'disablerepo',
  'enablerepo',
  'x',
  'exclude',
];
const isYum = (command: ShellCommand): boolean => isCommand(command, 'yum');
const isDnf = (command: ShellCommand): boolean => isCommand(command, 'dnf') || isCommand(command, 'microdnf');
const yumLikeInstall = (command: ShellCommand): boolean =>
  hasSubcommand(command, ['install', 'in', 'groupinstall', 'localinstall'], YUM_VALUE_FLAGS) ||
  (positionalArgs(command, YUM_VALUE_FLAGS)[0] === 'module' &&
    positionalArgs(command, YUM_VALUE_FLAGS)[1] === 'install') ||
  (positionalArgs(command, YUM_VALUE_FLAGS)[0] === 'group' &&
    positionalArgs(command, YUM_VALUE_FLAGS)[1] === 'install');

/** Package arguments of `yum install`/`yum module install`, and whether they are module specs. */
function yumPackages(command: ShellCommand): { packages: string[]; modules: boolean; group: boolean } {
  const positional = positionalArgs(command, YUM_VALUE_FLAGS);
  if (positional[0] === 'module') return { packages: positional.slice(2), modules: true, group: false };
  if (positional[0] === 'group' || positional[0] === 'groupinstall') {
    return { packages: [], modules: false, group: true };
  }
  return { packages: positional.slice(1), modules: false, group: false };
}

function rpmIsPinned(spec: string, module: boolean): boolean {
  if (module) return spec.includes(':');
  if (spec.endsWith('.rpm')) return true;
  return /-\d[^-]*(-[^-]+)?$/.test(spec) || /-\d+:\d/.test(spec);
}

function unpinnedRpm(
  model: LintModel,
  script: RunScript,
  isTool: (command: ShellCommand) => boolean,
): boolean {
  const variables = variablesInScope(model, script.instruction);
  return commandsOf(script).some((command) => {
    if (!isTool(command) || !yumLikeInstall(command)) return false;
    const { packages, modules } = yumPackages(command);
    return packages.some((pkg) => !rpmIsPinned(substitute(pkg, variables), modules));
  });
}

const DL3030: Rule = runRule(
  {
    id: 'DL3030',
    severity: 'warning',
    message: 'Use the -y switch to avoid manual input `yum install -y <package>`',
    hint: 'A build cannot answer prompts: add `-y`.',
  },
  (script) =>
    anyCommand(
      script,
      (command) => isYum(command) && yumLikeInstall(command) && !hasAnyFlag(command, ['y', 'assumeyes']),
    ),
);

const removesCache = (directory: RegExp) => (command: ShellCommand) =>
  isCommand(command, 'rm') && command.args.some((arg) => directory.test(arg));

const DL3032: Rule = runRule(
  {
    id: 'DL3032',
    severity: 'warning',
    message: '`yum clean all` missing after yum command.',
    hint: 'Finish the RUN with `yum clean all` (or `rm -rf /var/cache/yum/*`), or mount a cache on /var/cache/yum.',
  },
  (script) =>
    // yum on EL8+ is dnf, whose cache is /var/cache/dnf.
    !hasCacheMountCovering(script, '/var/cache/yum', '/var/cache/dnf') &&
    cleanedAfterInstall(
      commandsOf(script),
      (command) => isYum(command) && yumLikeInstall(command),
      (command) =>
        (isYum(command) && positionalArgs(command).join(' ') === 'clean all') ||
        removesCache(/^\/var\/cache\/yum/)(command),
    ) === false,
);

const DL3033: Rule = {
  id: 'DL3033',
  origin: 'hadolint',
  severity: 'warning',
  message: 'Specify version with `yum install -y <package>-<version>`.',
  hint: 'Pin with `<package>-<version>` (module streams: `<module>:<stream>`).',
  *check(model) {
    for (const script of model.runs)
      if (unpinnedRpm(model, script, isYum)) yield { line: script.instruction.line };
  },
};

const DL3038: Rule = runRule(
  {
    id: 'DL3038',
    severity: 'warning',
    message: 'Use the -y switch to avoid manual input `dnf install -y <package>`',
    hint: 'A build cannot answer prompts: add `-y`.',
  },
  (script) =>
    anyCommand(
      script,
      (command) => isDnf(command) && yumLikeInstall(command) && !hasAnyFlag(command, ['y', 'assumeyes']),
    ),
);

const DNF_CHANGING = [
  'install',
  'in',
  'upgrade',
  'up',
  'upgrade-minimal',
  'up-min',
  'reinstall',
  'rei',
  'update',
  'groupinstall',
  'localinstall',
];

const DL3040: Rule = {
  id: 'DL3040',
  origin: 'hadolint',
  severity: 'warning',
  message: '`dnf clean all` missing after dnf command.',
  hint: 'Finish the RUN with `dnf clean all`, or mount a cache on /var/cache/libdnf5.',
  *check(model) {
    for (const script of model.runs) {
      if (hasCacheMountCovering(script, '/var/cache/libdnf5', '/var/cache/dnf', '/var/cache/yum')) continue;
      // Each tool cleans its own cache: `dnf install && microdnf clean all` leaves dnf's behind.
      const result = ['dnf', 'microdnf'].map((tool) =>
        cleanedAfterInstall(
          commandsOf(script),
          (command) =>
            isCommand(command, tool) &&
            (hasSubcommand(command, DNF_CHANGING, YUM_VALUE_FLAGS) || yumLikeInstall(command)),
          (command) =>
            (isCommand(command, tool) &&
              positionalArgs(command, YUM_VALUE_FLAGS).join(' ') === 'clean all') ||
            removesCache(/^\/var\/cache\/(yum|dnf)/)(command),
        ),
      );
      if (result.includes(false)) yield { line: script.instruction.line };
    }
  },
};

const DL3041: Rule = {
  id: 'DL3041',
  origin: 'hadolint',
  severity: 'warning',
  message: 'Specify version with `dnf install -y <package>-<version>`',
  hint: 'Pin with `<package>-<version>` (module streams: `<module>:<stream>`).',
  *check(model) {
    for (const script of model.runs)
      if (unpinnedRpm(model, script, isDnf)) yield { line: script.instruction.line };
  },
};

const ZYPPER_VALUE_FLAGS = ['r', 'repo', 't', 'type', 'from'];
const isZypper = (command: ShellCommand): boolean => isCommand(command, 'zypper');
const zypperInstall = (command: ShellCommand): boolean =>
  isZypper(command) && hasSubcommand(command, ['install', 'in'], ZYPPER_VALUE_FLAGS);

const DL3034: Rule = runRule(
  {
    id: 'DL3034',
    severity: 'warning',
    message: 'Non-interactive switch missing from `zypper` command: `zypper install -y`',
    hint: 'Add `-n`/`--non-interactive` (global) or `-y` (install).',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        isZypper(command) &&
        hasSubcommand(
          command,
          ['install', 'in', 'remove', 'rm', 'source-install', 'si', 'patch', 'update', 'up'],
          ZYPPER_VALUE_FLAGS,
        ) &&
        !hasAnyFlag(command, ['n', 'non-interactive', 'y', 'no-confirm']),
    ),
);

const DL3035: Rule = runRule(
  {
    id: 'DL3035',
    severity: 'warning',
    message: 'Do not use `zypper dist-upgrade`.',
    hint: 'Upgrade the base image instead of the distribution inside it.',
  },
  (script) =>
    anyCommand(
      script,
      (command) => isZypper(command) && hasSubcommand(command, ['dist-upgrade', 'dup'], ZYPPER_VALUE_FLAGS),
    ),
);

const DL3036: Rule = runRule(
  {
    id: 'DL3036',
    severity: 'warning',
    message: '`zypper clean` missing after zypper use.',
    hint: 'Finish the RUN with `zypper clean`, or mount a cache on /var/cache/zypp.',
  },
  (script) =>
    !hasCacheMountCovering(script, '/var/cache/zypp') &&
    cleanedAfterInstall(
      commandsOf(script),
      zypperInstall,
      (command) => isZypper(command) && hasSubcommand(command, ['clean', 'cc'], ZYPPER_VALUE_FLAGS),
    ) === false,
);

const DL3037: Rule = runRule(
  {
    id: 'DL3037',
    severity: 'warning',
    message: 'Specify version with `zypper install -y <package>=<version>`.',
    hint: 'Pin with `<package>=<version>` (or `>=`, `<`…).',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        zypperInstall(command) &&
        subcommandArgs(command, ZYPPER_VALUE_FLAGS).some(
          (pkg) => !/[=<>]/.test(pkg) && !pkg.endsWith('.rpm'),
        ),
    ),
);

// ---------------------------------------------------------------------------------------------
// Shell habits

const NONSENSE_COMMANDS = [
  'ssh',
  'vim',
  'shutdown',
  'service',
  'ps',
  'free',
  'top',
  'kill',
  'mount',
  'ifconfig',
];

const DL3001: Rule = runRule(
  {
    id: 'DL3001',
    severity: 'info',
    message:
      'For some bash commands it makes no sense running them in a Docker container like `ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`',
    hint: 'Interactive and system-management commands do nothing useful at build time.',
  },
  (script) => anyCommand(script, (command) => NONSENSE_COMMANDS.some((name) => isCommand(command, name))),
);

const DL3003: Rule = runRule(
  {
    id: 'DL3003',
    severity: 'warning',
    message: 'Use WORKDIR to switch to a directory',
    hint: 'Replace `cd dir && …` with `WORKDIR dir`.',
  },
  (script) => anyCommand(script, (command) => isCommand(command, 'cd')),
);

const DL3004: Rule = runRule(
  {
    id: 'DL3004',
    severity: 'error',
    message: 'Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root',
    hint: 'RUN already runs as the current USER; switch USER or use gosu.',
  },
  (script) => anyCommand(script, (command) => isCommand(command, 'sudo')),
);

const DL3046: Rule = runRule(
  {
    id: 'DL3046',
    severity: 'warning',
    message: '`useradd` without flag `-l` and high UID will result in excessively large Image.',
    hint: 'Add `-l`/`--no-log-init` so /var/log/lastlog is not filled up to the UID.',
  },
  (script) =>
    anyCommand(script, (command) => {
      if (!isCommand(command, 'useradd') || hasAnyFlag(command, ['l', 'no-log-init'])) return false;
      const uidIndex = command.args.findIndex((arg) => arg === '-u' || arg === '--uid');
      const uid =
        uidIndex >= 0
          ? command.args[uidIndex + 1]
          : command.args.find((arg) => arg.startsWith('--uid='))?.slice(6);
      return uid !== undefined && /^\d+$/.test(uid) && uid.length > 5;
    }),
);

const DL3047: Rule = runRule(
  {
    id: 'DL3047',
    severity: 'info',
    message:
      'Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`. Or consider using `-q` or `-nv` (shorthands for `--quiet` or `--no-verbose`).',
    hint: "wget's default progress output floods build logs.",
  },
  (script) =>
    anyCommand(script, (command) => {
      if (!isCommand(command, 'wget')) return false;
      const quiet = command.args.some(
        (arg) =>
          arg === '-nv' ||
          arg === '-q' ||
          arg === '-o' ||
          arg === '-a' ||
          /^--(progress|quiet|no-verbose|output-file|append-output)(=|$)/.test(arg) ||
          /^-[a-zA-Z]*[qoa]/.test(arg),
      );
      return !quiet;
    }),
);

const usesTool = (script: RunScript, tool: string): boolean =>
  anyCommand(script, (command) => isCommand(command, tool));

const DL4001: Rule = {
  id: 'DL4001',
  origin: 'hadolint',
  severity: 'warning',
  message: 'Either use Wget or Curl but not both',
  hint: 'One downloader is enough; drop the other from the image.',
  *check(model) {
    const seen = new Map<unknown, Set<string>>();
    for (const script of model.runs) {
      const key = script.instruction.stage ?? model;
      const tools = seen.get(key) ?? new Set<string>();
      seen.set(key, tools);
      const used = ['wget', 'curl'].filter((tool) => usesTool(script, tool));
      const conflict = used.length === 2 || used.some((tool) => tools.has(tool === 'wget' ? 'curl' : 'wget'));
      for (const tool of used) tools.add(tool);
      if (conflict) yield { line: script.instruction.line };
    }
  },
};

const DL4005: Rule = runRule(
  {
    id: 'DL4005',
    severity: 'warning',
    message: 'Use SHELL to change the default shell',
    hint: 'Write `SHELL ["/bin/bash", "-c"]` instead of relinking /bin/sh.',
  },
  (script) =>
    anyCommand(
      script,
      (command) =>
        isCommand(command, 'ln') &&
        positionalArgs(command).at(-1) === '/bin/sh' &&
        flagNames(command.args).has('s'),
    ),
);

const NON_POSIX_SHELL = /(pwsh|powershell|cmd)(\.exe)?$/i;

const DL4006: Rule = {
  id: 'DL4006',
  origin: 'hadolint',
  severity: 'warning',
  message:
    'Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using /bin/sh in an alpine image or if your shell is symlinked to busybox then consider explicitly setting your SHELL to /bin/ash, or disable this check',
  hint: 'Without pipefail a failing command before `|` does not fail the build.',
  *check(model) {
    for (const script of model.runs) {
      if (!script.scripts.some((shell) => shell.hasPipe)) continue;
      const shell = shellInScope(model, script);
      if (shell !== undefined) {
        const program = shell[0] ?? '';
        if (NON_POSIX_SHELL.test(program)) continue;
        const hasPipefail = shell.some(
          (arg, i) => arg === 'pipefail' && /^-[a-z]*o$/.test(shell[i - 1] ?? ''),
        );
        if (hasPipefail && !/(^|\/)sh$/.test(program)) continue;
      }
      if (model.shellPragma !== undefined && NON_POSIX_SHELL.test(model.shellPragma)) continue;
      yield { line: script.instruction.line };
    }
  },
};

const DL3059: Rule = {
  id: 'DL3059',
  origin: 'hadolint',
  severity: 'info',
  message: 'Multiple consecutive `RUN` instructions. Consider consolidation.',
  hint: 'Join related commands with `&&` in one RUN to save layers.',
  *check(model) {
    let previous: RunScript | undefined;
    const scriptByInstruction = new Map(model.runs.map((script) => [script.instruction.node, script]));
    for (const instruction of model.instructions) {
      const script = scriptByInstruction.get(instruction.node);
      if (script === undefined) {
        previous = undefined;
        continue;
      }
      if (previous !== undefined && isSimpleRun(previous) && isSimpleRun(script)) {
        if (previous.run.mounts.join('\n') === script.run.mounts.join('\n')) yield { line: instruction.line };
      }
      previous = script;
    }
  },
};

function isSimpleRun(script: RunScript): boolean {
  return script.scripts.every((shell) =>
    shell.commands.every(
      (command) => command.separator !== '&&' && command.separator !== ';' && command.separator !== '||',
    ),
  );
}

const DL3010: Rule = {
  id: 'DL3010',
  origin: 'hadolint',
  severity: 'info',
  message: 'Use ADD for extracting archives into an image',
  hint: '`ADD archive.tar /dir/` extracts in one layer instead of COPY + tar.',
  *check(model) {
    const archives = new Map<unknown, Set<string>>();
    const basename = (path: string): string => path.split(/[\\/]/).filter(Boolean).at(-1) ?? path;
    const ARCHIVE = /\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|gz|bz2|xz)$/;
    for (const instruction of model.instructions) {
      const key = instruction.stage ?? model;
      const known = archives.get(key) ?? new Set<string>();
      archives.set(key, known);
      const typed = instruction.typed;
      if (typed?.kind === 'COPY' && typed.from === undefined) {
        for (const source of typed.sources) {
          const name = basename(source.replace(/^"|"$/g, ''));
          if (ARCHIVE.test(name)) {
            known.add(name);
            const dest = basename(typed.dest.replace(/^"|"$/g, ''));
            if (ARCHIVE.test(dest)) known.add(dest);
          }
        }
      }
      if (typed?.kind !== 'RUN') continue;
      const script = model.runs.find((run) => run.instruction.node === instruction.node);
      if (script === undefined) continue;
      const extracts = commandsOf(script).some(
        (command) =>
          isCommand(command, 'tar') &&
          (flagNames(command.args).has('x') ||
            flagNames(command.args).has('extract') ||
            /^x/.test(command.args[0] ?? '')) &&
          command.args.some((arg) => known.has(basename(arg))),
      );
      if (extracts) yield { line: instruction.line };
    }
  },
};

export const HADOLINT_RUN_RULES: readonly Rule[] = [
  DL3001,
  DL3003,
  DL3004,
  DL3008,
  DL3009,
  DL3010,
  DL3013,
  DL3014,
  DL3015,
  DL3016,
  DL3018,
  DL3019,
  DL3027,
  DL3028,
  DL3030,
  DL3032,
  DL3033,
  DL3034,
  DL3035,
  DL3036,
  DL3037,
  DL3038,
  DL3040,
  DL3041,
  DL3042,
  DL3046,
  DL3047,
  DL3059,
  DL3060,
  DL3062,
  DL4001,
  DL4005,
  DL4006,
];
