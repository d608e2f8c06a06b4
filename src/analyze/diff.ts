/**
 * `strata diff IMAGE1 IMAGE2`: what changed between two images — the paths of their final
 * filesystems (added, removed, or changed in type, content, mode, owner or link target) and the
 * fields of their configs. Both images are analysed layer by layer (streamed, as `analyze` does)
 * and their final trees compared; contents are compared by digest, never read twice.
 *
 * Like `docker diff`, every path of an added or removed subtree is listed; a directory is
 * listed as changed only when its own metadata changed (not because something inside did).
 */
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import { analyzeImage } from './analyze.js';
import type { AnalyzedImage, FileNode, FileType, ModifiedAspect } from './model.js';
import type { ImageSource } from './source.js';
import { IMPLICIT_DIRECTORY, aggregateTree, compareMeta } from './tree.js';

export interface PathDifference {
  path: string;
  change: 'added' | 'removed' | 'changed';
  /** The type in the second image (the first one's for a removal). */
  type: FileType;
  /** For `changed`: what differs, in this order: type, content, mode, owner, link. */
  aspects: ModifiedAspect[];
  /** Content bytes in each image (undefined where the path is absent or not a file). */
  sizeBefore?: number;
  sizeAfter?: number;
}

export interface ConfigDifference {
  /** `architecture`, `os`, `variant`, or a field of `config` (`Env`, `Cmd`, `Labels`, …). */
  field: string;
  before: unknown;
  after: unknown;
}

export interface ImageDiff {
  from: AnalyzedImage;
  to: AnalyzedImage;
  files: PathDifference[];
  config: ConfigDifference[];
  summary: { added: number; removed: number; changed: number };
}

/** The config fields compared, in the order they are reported (Docker's inspect order). */
const CONFIG_FIELDS: ReadonlyArray<keyof ContainerConfig> = [
  'User',
  'ExposedPorts',
  'Env',
  'Entrypoint',
  'Cmd',
  'Volumes',
  'WorkingDir',
  'Labels',
  'StopSignal',
  'Healthcheck',
  'Shell',
  'OnBuild',
];

const EMPTY_ROOT: FileNode = {
  ...IMPLICIT_DIRECTORY,
  name: '/',
  path: '/',
  change: 'unmodified',
  modified: [],
  opaque: false,
  implicit: true,
  children: [],
};

export async function diffImages(from: ImageSource, to: ImageSource): Promise<ImageDiff> {
  const [before, after] = [await analyzeImage(from), await analyzeImage(to)];
  const finalTree = (layers: typeof before.layers): FileNode =>
    layers.length === 0 ? EMPTY_ROOT : aggregateTree(layers, layers.length - 1);
  const files: PathDifference[] = [];
  compareChildren(finalTree(before.layers), finalTree(after.layers), files);
  const summary = { added: 0, removed: 0, changed: 0 };
  for (const difference of files) summary[difference.change]++;
  return {
    from: before.image,
    to: after.image,
    files,
    config: compareConfigs(from.config, to.config),
    summary,
  };
}

/** What the final filesystem shows: an aggregated tree keeps the last layer's removals, marked. */
function present(node: FileNode): readonly FileNode[] {
  return node.children.filter((child) => child.change !== 'removed');
}

function compareChildren(before: FileNode, after: FileNode, into: PathDifference[]): void {
  const left = present(before);
  const right = present(after);
  // Both lists are sorted by name (byte order): a merge walk.
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    const a = left[i];
    const b = right[j];
    if (b === undefined || (a !== undefined && a.name < b.name)) {
      listAll(a as FileNode, 'removed', into);
      i++;
    } else if (a === undefined || b.name < a.name) {
      listAll(b, 'added', into);
      j++;
    } else {
      const aspects = compareMeta(a, b);
      if (aspects.includes('type')) {
        // A new kind of thing at the path: everything that was below it went, all below it came.
        into.push(entry(b, 'changed', aspects, a));
        for (const child of present(a)) listAll(child, 'removed', into);
        for (const child of present(b)) listAll(child, 'added', into);
      } else {
        if (aspects.length > 0) into.push(entry(b, 'changed', aspects, a));
        if (a.type === 'directory') compareChildren(a, b, into);
      }
      i++;
      j++;
    }
  }
}

function listAll(node: FileNode, change: 'added' | 'removed', into: PathDifference[]): void {
  into.push(change === 'added' ? entry(node, change, [], undefined) : entry(node, change, [], node, true));
  for (const child of present(node)) listAll(child, change, into);
}

function entry(
  node: FileNode,
  change: PathDifference['change'],
  aspects: ModifiedAspect[],
  before: FileNode | undefined,
  removed = false,
): PathDifference {
  const fileSize = (n: FileNode | undefined): number | undefined => (n?.type === 'file' ? n.size : undefined);
  const sizeBefore = fileSize(before);
  const sizeAfter = removed ? undefined : fileSize(node);
  return {
    path: node.path,
    change,
    type: node.type,
    aspects,
    ...(sizeBefore !== undefined ? { sizeBefore } : {}),
    ...(sizeAfter !== undefined ? { sizeAfter } : {}),
  };
}

function compareConfigs(before: ImageConfig, after: ImageConfig): ConfigDifference[] {
  const found: ConfigDifference[] = [];
  const compare = (field: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(canonical(a)) !== JSON.stringify(canonical(b)))
      found.push({ field, before: a ?? null, after: b ?? null });
  };
  compare('architecture', before.architecture, after.architecture);
  compare('os', before.os, after.os);
  compare('variant', before.variant, after.variant);
  for (const field of CONFIG_FIELDS) compare(field, before.config?.[field], after.config?.[field]);
  return found;
}

/** Object keys sorted, empty collections as absent: `{}` and a missing field say the same. */
function canonical(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1));
    return entries.length === 0 ? undefined : Object.fromEntries(entries);
  }
  return value;
}

/** `docker diff`-like lines (A/D/C), then the config fields that differ. */
export function formatImageDiff(diff: ImageDiff): string {
  const lines: string[] = [];
  const size = (bytes: number | undefined): string => (bytes === undefined ? '-' : `${bytes} B`);
  for (const file of diff.files) {
    const mark = file.change === 'added' ? 'A' : file.change === 'removed' ? 'D' : 'C';
    let detail = '';
    if (file.change === 'changed') {
      detail = ` (${file.aspects.join(', ')}`;
      if (file.aspects.includes('content')) detail += `: ${size(file.sizeBefore)} → ${size(file.sizeAfter)}`;
      detail += ')';
    }
    lines.push(`${mark} ${file.path}${detail}`);
  }
  for (const field of diff.config)
    lines.push(`~ config ${field.field}: ${JSON.stringify(field.before)} → ${JSON.stringify(field.after)}`);
  const { added, removed, changed } = diff.summary;
  lines.push(
    `${added} added, ${removed} removed, ${changed} changed; ${diff.config.length} config field${diff.config.length === 1 ? '' : 's'} differ${diff.config.length === 1 ? 's' : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
