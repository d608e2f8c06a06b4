import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { StrataError } from '../errors.js';
import {
  analysisToJson,
  analyzeImage,
  evaluateCi,
  formatAnalysisReport,
  formatCiReport,
  humanizeBytes,
  loadCiRules,
  openImageSource,
  type CiMetrics,
  type CiRuleName,
  type LoadedCiRules,
  type ImageAnalysis,
  type PullFunction,
} from '../analyze/index.js';
import type { ExplorerModel } from '../analyze/explorer/index.js';
import { aggregateTree } from '../analyze/tree.js';
import { diffImages, formatImageDiff } from '../analyze/diff.js';
import { parsePlatform } from '../oci/platform.js';

interface AnalyzeFlags {
  json?: boolean;
  files?: boolean;
  top: string;
  /** `--ci` true, `--no-ci` false, neither undefined. */
  ci?: boolean;
  ciConfig?: string;
  lowestEfficiency?: string;
  highestWastedBytes?: string;
  highestUserWastedPercent?: string;
  ciMetrics: string;
  baseLayers?: string;
  platform?: string;
  pull?: boolean;
  interactive?: boolean;
}

/** dive's reading of the CI variable. */
function truthy(value: string | undefined): boolean {
  return value === 'true' || value === '1' || value === 'yes';
}

function count(text: string, flag: string): number {
  if (!/^\d+$/.test(text))
    throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${text}": expected a whole number`);
  return Number(text);
}

/** What the explorer shows: each layer's own tree, and the image up to it built on demand. */
function explorerModel(analysis: ImageAnalysis): ExplorerModel {
  const { image, dive, strata } = analysis;
  const percent = (ratio: number | null): string =>
    ratio === null ? 'n/a' : `${(ratio * 100).toFixed(1)} %`;
  return {
    title: `${image.reference} (${image.id.slice(7, 19)}, ${image.platform})`,
    layers: analysis.layers.map((layer, index) => ({
      label: `[${index}] ${layer.command === '' ? '(no history)' : layer.command}`,
      size: layer.sizeBytes,
      digest: layer.diffId ?? layer.digest,
      tree: () => {
        if (layer.tree === undefined)
          throw new StrataError('INTERNAL', `layer ${index} was analysed without its tree`);
        return layer.tree;
      },
      aggregated: () => aggregateTree(analysis.layers, index),
    })),
    summary: [
      `dive: efficiency ${percent(dive.efficiency)}, wasted ${humanizeBytes(dive.wastedBytes)}, user wasted ${percent(dive.userWastedPercent)}`,
      `strata: efficiency ${percent(strata.efficiency)}, wasted ${humanizeBytes(strata.wastedBytes)}, user wasted ${percent(strata.userWastedPercent)}`,
    ],
  };
}

/** The registry client, loaded only when an analysis pulls. */
const pull: PullFunction = async (store, reference, options) => {
  const { pullImage } = await import('../registry/client/index.js');
  return pullImage(store, reference, { platform: options.platform });
};

export function registerAnalyzeCommands(program: Command, ctx: CliContext): void {
  program
    .command('analyze')
    .description(
      "Show what each layer of an image adds, changes and removes, and the space it wastes (dive's numbers and strata's)",
    )
    .argument(
      '<image>',
      'a name or ID in the store, an image archive (docker-archive or OCI, .tar[.gz|.zst]), an OCI layout directory, or registry://REF',
    )
    .option('--json', 'print the analysis as JSON (schema: docs/analyze.md)')
    .option('--files', "with --json: list every layer's changed paths")
    .option('--top <n>', 'inefficient files to list in the report (0: all)', '10')
    .option('--ci', 'check the image against CI rules and exit 1 when one fails (also CI=true)')
    .option('--no-ci', 'ignore CI=true in the environment')
    .option('--ci-config <file>', 'rules file (.dive-ci format; default: .dive-ci here, if present)')
    .option('--lowest-efficiency <ratio>', 'fail below this efficiency, 0–1 (default 0.9; "disabled")')
    .option(
      '--highest-wasted-bytes <bytes>',
      'fail above this many wasted bytes, e.g. 20MB (default disabled)',
    )
    .option(
      '--highest-user-wasted-percent <ratio>',
      'fail above this ratio of wasted bytes to the user layers\' size, 0–1 (default 0.1; "disabled")',
    )
    .option('--ci-metrics <metrics>', 'which numbers the rules judge: dive or strata', 'dive')
    .option('--base-layers <n>', "layers of the base image, for strata's user numbers (default 1, like dive)")
    .option('--platform <platform>', 'the platform to analyse in a multi-platform image')
    .option('--pull', 'pull the image into the store first (otherwise only registry://REF is fetched)')
    .option('-i, --interactive', 'explore the layers and their file trees in the terminal (q quits)')
    .action(async (image: string, flags: AnalyzeFlags) => {
      const overrides: Partial<Record<CiRuleName, string>> = {};
      if (flags.lowestEfficiency !== undefined) overrides.lowestEfficiency = flags.lowestEfficiency;
      if (flags.highestWastedBytes !== undefined) overrides.highestWastedBytes = flags.highestWastedBytes;
      if (flags.highestUserWastedPercent !== undefined)
        overrides.highestUserWastedPercent = flags.highestUserWastedPercent;
      // Asking for a threshold or a rules file is asking for the check. A runner's CI=true is only
      // a default: someone who typed -i in a terminal of a CI machine wants the explorer.
      const ci =
        flags.ci === true ||
        (flags.ci === undefined &&
          ((truthy(process.env.CI) && flags.interactive !== true) ||
            Object.keys(overrides).length > 0 ||
            flags.ciConfig !== undefined));
      if (flags.ciMetrics !== 'dive' && flags.ciMetrics !== 'strata') {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `invalid --ci-metrics "${flags.ciMetrics}": expected dive or strata`,
        );
      }
      const metrics: CiMetrics = flags.ciMetrics;
      if (flags.files && !flags.json) throw new StrataError('INVALID_ARGUMENT', '--files needs --json');
      if (flags.interactive && (flags.json || ci))
        throw new StrataError(
          'INVALID_ARGUMENT',
          '--interactive cannot be combined with --json, --ci or CI rules',
        );
      const top = count(flags.top, '--top');
      const baseLayers =
        flags.baseLayers === undefined ? undefined : count(flags.baseLayers, '--base-layers');
      const platform = flags.platform === undefined ? undefined : parsePlatform(flags.platform);

      // A bad rules file is reported before any layer is read.
      let rules: LoadedCiRules | undefined;
      if (ci) {
        rules = await loadCiRules({ configPath: flags.ciConfig, overrides });
        for (const warning of rules.warnings) ctx.warn(`WARNING: ${warning}`);
      }

      // Refused before any layer is read: the explorer needs a terminal on both ends.
      if (flags.interactive && (process.stdin.isTTY !== true || process.stdout.isTTY !== true))
        throw new StrataError('UNSUPPORTED', '--interactive needs a terminal (stdin and stdout)');
      const progress = (ctx.stderr as NodeJS.WriteStream).isTTY === true && flags.json !== true;
      const source = await openImageSource(image, {
        store: () => ctx.openStore(),
        platform,
        pull,
        pullIntoStore: flags.pull === true,
      });
      let analysis;
      try {
        analysis = await analyzeImage(source, {
          baseLayers,
          keepTrees: flags.interactive === true || (flags.json === true && flags.files === true),
          onLayer: progress
            ? ({ index, total }) => ctx.stderr.write(`\rAnalyzing layer ${index + 1}/${total}…\x1b[K`)
            : undefined,
        });
      } finally {
        if (progress) ctx.stderr.write('\r\x1b[K');
        await source.close();
      }

      if (flags.interactive) {
        const { runExplorer } = await import('../analyze/explorer/index.js');
        await runExplorer(explorerModel(analysis), { input: process.stdin, output: process.stdout });
        return;
      }
      const evaluation = rules ? evaluateCi(analysis, rules.rules, metrics) : undefined;
      if (flags.json) {
        ctx.print(JSON.stringify(analysisToJson(analysis, { files: flags.files, ci: evaluation }), null, 2));
      } else if (evaluation) {
        if (rules?.configFile) ctx.print(`  Using CI config: ${rules.configFile}`);
        ctx.stdout.write(formatCiReport(analysis, evaluation));
      } else {
        ctx.stdout.write(formatAnalysisReport(analysis, { top }));
      }
      if (evaluation && !evaluation.pass) {
        const failed = evaluation.results
          .filter((result) => result.status === 'fail')
          .map((result) => result.name);
        throw new StrataError(
          'CHECK_FAILED',
          `analyze: ${failed.length} CI rule${failed.length === 1 ? '' : 's'} failed (${failed.join(', ')})`,
        );
      }
    });

  program
    .command('diff')
    .description(
      'Show what changed between two images: paths added (A), removed (D) or changed (C), and config fields',
    )
    .argument('<image1>', 'the image before: any form analyze accepts (alone: a container, as docker diff)')
    .argument('[image2]', 'the image after')
    .option('--json', 'print the differences as JSON (schema: docs/analyze.md)')
    .option('--platform <platform>', 'the platform to compare in multi-platform images')
    .action(
      async (first: string, second: string | undefined, flags: { json?: boolean; platform?: string }) => {
        if (second === undefined) {
          await (await import('./container.js')).printContainerDiff(ctx, first);
          return;
        }
        const platform = flags.platform === undefined ? undefined : parsePlatform(flags.platform);
        const open = (image: string) =>
          openImageSource(image, { store: () => ctx.openStore(), platform, pull, pullIntoStore: false });
        const before = await open(first);
        try {
          const after = await open(second);
          try {
            const difference = await diffImages(before, after);
            if (flags.json) ctx.print(JSON.stringify(difference, null, 2));
            else ctx.stdout.write(formatImageDiff(difference));
          } finally {
            await after.close();
          }
        } finally {
          await before.close();
        }
      },
    );
}
