/**
 * What `strata analyze` prints: the terminal report, dive's CI report, and the JSON document
 * (schema in docs/analyze.md; field names are stable, additions only).
 */
import type { CiEvaluation } from './ci.js';
import type { FileNode, ImageAnalysis, LayerAnalysis, ModifiedAspect } from './model.js';

const SI_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** go-humanize's Bytes (what dive prints): `7 B`, `1.5 kB`, `12 MB`. */
export function humanizeBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const exponent = Math.min(Math.floor(Math.log(bytes) / Math.log(1000)), SI_UNITS.length - 1);
  const value = Math.floor((bytes / 1000 ** exponent) * 10 + 0.5) / 10;
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} ${SI_UNITS[exponent]}`;
}

/** Go's `%2.4f %%` of a ratio ×100, as dive prints percentages (NaN/+Inf when it cannot divide). */
function percent(ratio: number | null, wasted: number, digits = 4): string {
  if (ratio === null) return wasted > 0 ? '+Inf %' : 'NaN %';
  return `${(ratio * 100).toFixed(digits)} %`;
}

/** One line of a created_by: the shell form Docker wraps commands in is kept, newlines are not. */
function oneLine(command: string, width: number): string {
  const flat = command.replace(/\s+/g, ' ').trim();
  if (flat === '') return '(missing)';
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

function table(rows: readonly string[][], alignRight: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => {
        if (i === row.length - 1) return cell;
        const width = widths[i] ?? 0;
        return alignRight.has(i) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('   ')
      .trimEnd(),
  );
}

export interface ReportOptions {
  /** Inefficient files to list per metric (default 10; 0 lists them all). */
  top?: number;
  /** Width of the command column (default 80). */
  commandWidth?: number;
}

function changeSummary(layer: LayerAnalysis): string {
  const { added, modified, removed, unmodified } = layer.changes;
  return `+${added} ~${modified} -${removed}${unmodified > 0 ? ` =${unmodified}` : ''}`;
}

/** The readable report: image, layers table, both sets of metrics, the files that waste the most. */
export function formatAnalysisReport(analysis: ImageAnalysis, options: ReportOptions = {}): string {
  const top = options.top ?? 10;
  const limit = <T>(items: readonly T[]): readonly T[] => (top > 0 ? items.slice(0, top) : items);
  const { image, dive, strata } = analysis;
  const lines: string[] = [];
  const name = image.names[0] ?? image.reference;
  lines.push(`Image: ${name}`);
  lines.push(`  id ${image.id}  ${image.platform}  from ${image.source}`);
  lines.push(
    `  ${analysis.layers.length} layer${analysis.layers.length === 1 ? '' : 's'}, ${humanizeBytes(analysis.sizeBytes)} of content (${humanizeBytes(strata.finalSizeBytes)} visible in the final filesystem)`,
  );
  lines.push('');
  lines.push('Layers:');
  const layerRows = [
    ['INDEX', 'SIZE', 'CHANGES', 'WASTED LATER', 'COMMAND'],
    ...analysis.layers.map((layer) => [
      String(layer.index),
      humanizeBytes(layer.sizeBytes),
      changeSummary(layer),
      humanizeBytes(layer.shadowedBytes),
      oneLine(layer.command, options.commandWidth ?? 80),
    ]),
  ];
  lines.push(...table(layerRows, new Set([0, 1, 3])).map((line) => `  ${line}`));
  lines.push(
    '  (CHANGES: +added ~modified -removed =stored again unchanged; WASTED LATER: bytes later layers hide)',
  );
  lines.push('');
  lines.push(
    ...table([
      ['', 'dive', 'strata'],
      ['efficiency', percent(dive.efficiency, 0, 2), percent(strata.efficiency, 0, 2)],
      [
        'wasted',
        `${humanizeBytes(dive.wastedBytes)} (${dive.wastedBytes} bytes)`,
        `${humanizeBytes(strata.wastedBytes)} (${strata.wastedBytes} bytes)`,
      ],
      [
        'user wasted',
        percent(dive.userWastedPercent, dive.wastedBytes, 2),
        percent(strata.userWastedPercent, strata.userWastedBytes, 2),
      ],
    ]).map((line) => `  ${line}`),
  );
  const base = strata.baseLayers === 1 ? 'first layer' : `first ${strata.baseLayers} layers`;
  lines.push(
    '  (dive: every copy of a path stored in two or more layers; strata: the bytes the final image',
    `   does not show; user = the layers above the ${base}, counted as the base image)`,
  );
  if (dive.scanStoppedLayers.length > 0) {
    lines.push(
      `  note: dive stops scanning layer ${dive.scanStoppedLayers.join(', ')} at a whiteout of a missing path; its later entries are not counted`,
    );
  }
  lines.push('');
  lines.push(
    `Inefficient files (dive: occurrences, total size):${dive.inefficientFiles.length === 0 ? ' none' : ''}`,
  );
  if (dive.inefficientFiles.length > 0) {
    const rows = [
      ['COUNT', 'TOTAL', 'PATH'],
      ...limit(dive.inefficientFiles).map((file) => [
        String(file.count),
        humanizeBytes(file.sizeBytes),
        file.path,
      ]),
    ];
    lines.push(...table(rows, new Set([0, 1])).map((line) => `  ${line}`));
    if (limit(dive.inefficientFiles).length < dive.inefficientFiles.length) {
      lines.push(
        `  … ${dive.inefficientFiles.length - limit(dive.inefficientFiles).length} more (--top 0 lists all)`,
      );
    }
  }
  lines.push('');
  lines.push(
    `Wasted files (strata: bytes stored but not visible):${strata.inefficientFiles.length === 0 ? ' none' : ''}`,
  );
  if (strata.inefficientFiles.length > 0) {
    const rows = [
      ['VERSIONS', 'WASTED', 'LAYERS', 'PATH'],
      ...limit(strata.inefficientFiles).map((file) => [
        String(file.count),
        humanizeBytes(file.wastedBytes),
        file.layers.join(','),
        `${file.path}${file.removed ? ' (removed)' : ''}`,
      ]),
    ];
    lines.push(...table(rows, new Set([0, 1])).map((line) => `  ${line}`));
    if (limit(strata.inefficientFiles).length < strata.inefficientFiles.length) {
      lines.push(
        `  … ${strata.inefficientFiles.length - limit(strata.inefficientFiles).length} more (--top 0 lists all)`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * dive's CI output (dive ≤ 0.12's layout, which CI logs and scripts know): the analysis lines, the
 * inefficient files of the judged metrics, one PASS/FAIL/SKIP line per rule and the Result line.
 * strata's numbers follow dive's under their own heading.
 */
export function formatCiReport(analysis: ImageAnalysis, evaluation: CiEvaluation): string {
  const { dive, strata } = analysis;
  const lines: string[] = [];
  lines.push(`Image Source: ${analysis.image.reference}`);
  lines.push('Analyzing image...');
  lines.push(`  efficiency: ${(dive.efficiency * 100).toFixed(4)} %`);
  lines.push(`  wastedBytes: ${dive.wastedBytes} bytes (${humanizeBytes(dive.wastedBytes)})`);
  lines.push(`  userWastedPercent: ${percent(dive.userWastedPercent, dive.wastedBytes)}`);
  lines.push('strata (bytes the final image does not show):');
  lines.push(`  efficiency: ${(strata.efficiency * 100).toFixed(4)} %`);
  lines.push(`  wastedBytes: ${strata.wastedBytes} bytes (${humanizeBytes(strata.wastedBytes)})`);
  lines.push(`  userWastedPercent: ${percent(strata.userWastedPercent, strata.userWastedBytes)}`);
  lines.push(`Inefficient Files${evaluation.metrics === 'strata' ? ' (strata)' : ''}:`);
  const row = (count: string, size: string, path: string): string =>
    `${count.padStart(5)}  ${size.padStart(12)}  ${path}`;
  lines.push(row('Count', 'Wasted Space', 'File Path'));
  const files =
    evaluation.metrics === 'dive'
      ? dive.inefficientFiles.map((file) => row(String(file.count), humanizeBytes(file.sizeBytes), file.path))
      : strata.inefficientFiles.map((file) =>
          row(String(file.count), humanizeBytes(file.wastedBytes), file.path),
        );
  lines.push(...(files.length > 0 ? files : ['None']));
  lines.push(`Results${evaluation.metrics === 'strata' ? ' (strata metrics)' : ''}:`);
  const tally = { pass: 0, fail: 0, skip: 0 };
  for (const result of evaluation.results) {
    tally[result.status]++;
    const status = result.status === 'pass' ? 'PASS' : result.status === 'fail' ? 'FAIL' : 'SKIP';
    lines.push(`  ${status}: ${result.name}${result.message ? `: ${result.message}` : ''}`);
  }
  lines.push(
    `Result:${evaluation.pass ? 'PASS' : 'FAIL'} [Total:${evaluation.results.length}] [Passed:${tally.pass}] [Failed:${tally.fail}] [Warn:0] [Skipped:${tally.skip}]`,
  );
  return `${lines.join('\n')}\n`;
}

/** A layer tree as a flat list (pre-order, children by name), without the root and implicit parents. */
export interface FileChange {
  path: string;
  change: FileNode['change'];
  type: FileNode['type'];
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkTarget: string;
  digest: string;
  modified: readonly ModifiedAspect[];
  opaque: boolean;
}

export function flattenChanges(root: FileNode): FileChange[] {
  const out: FileChange[] = [];
  const visit = (node: FileNode): void => {
    for (const child of node.children) {
      // An implicit parent changes nothing by itself, unless the layer made it opaque.
      if (!child.implicit || child.opaque) out.push(toChange(child));
      visit(child);
    }
  };
  visit(root);
  return out;
}

function toChange(node: FileNode): FileChange {
  return {
    path: node.path,
    change: node.change,
    type: node.type,
    size: node.size,
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    linkTarget: node.linkTarget,
    digest: node.digest,
    modified: node.modified,
    opaque: node.opaque,
  };
}

export const ANALYSIS_SCHEMA_VERSION = 1;

export interface JsonOptions {
  /** Each layer's file changes (`files`); needs the analysis' layer trees. */
  files?: boolean;
  ci?: CiEvaluation;
}

/** The `--json` document (docs/analyze.md). */
export function analysisToJson(analysis: ImageAnalysis, options: JsonOptions = {}): Record<string, unknown> {
  return {
    schemaVersion: ANALYSIS_SCHEMA_VERSION,
    image: analysis.image,
    sizeBytes: analysis.sizeBytes,
    layers: analysis.layers.map((layer) => ({
      index: layer.index,
      digest: layer.digest,
      diffId: layer.diffId ?? null,
      mediaType: layer.mediaType,
      blobSize: layer.blobSize,
      sizeBytes: layer.sizeBytes,
      command: layer.command,
      created: layer.created ?? null,
      entries: layer.entries,
      changes: layer.changes,
      shadowedBytes: layer.shadowedBytes,
      hidesBytes: layer.hidesBytes,
      ...(options.files && layer.tree ? { files: flattenChanges(layer.tree) } : {}),
    })),
    dive: analysis.dive,
    strata: analysis.strata,
    ...(options.ci
      ? {
          ci: {
            metrics: options.ci.metrics,
            pass: options.ci.pass,
            rules: options.ci.results.map((result) => ({
              name: result.name,
              status: result.status,
              threshold: result.threshold ?? null,
              value: result.value,
              message: result.message,
            })),
          },
        }
      : {}),
  };
}
