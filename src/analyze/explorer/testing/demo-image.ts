/**
 * A small fake image for the explorer's tests and demo: a few layers written as the tar entries
 * and whiteouts they would hold, stacked here into the per-layer and aggregated trees the
 * explorer shows. Only what tests need: the real analysis lives in the analysis core.
 */
import type { ChangeKind, ExplorerLayer, ExplorerModel, ExplorerNode, NodeType } from '../model.js';

export interface DemoEntry {
  path: string;
  type?: NodeType;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  linkTarget?: string;
  /** A whiteout: the path and everything under it are removed. */
  removed?: true;
}

export interface DemoLayer {
  command: string;
  entries: readonly DemoEntry[];
}

type Stack = Map<string, DemoEntry>;

function parents(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

interface Marked {
  entry: DemoEntry;
  change: ChangeKind;
}

/**
 * Sizes as the analysis core gives them: a directory totals what is under it that the image
 * holds, a removed entry what it removed.
 */
function sumSizes(node: ExplorerNode, removed: boolean): number {
  if (!node.children) return node.change === 'removed' && !removed ? 0 : node.size;
  const gone = removed || node.change === 'removed';
  let total = 0;
  for (const child of node.children) total += sumSizes(child, gone);
  node.size = total;
  return node.change === 'removed' && !removed ? 0 : total;
}

/** Nests marked paths into a tree, children sorted by name as the analysis core lists them. */
function nest(marked: Map<string, Marked>): ExplorerNode {
  const root: ExplorerNode = {
    name: '',
    type: 'directory',
    size: 0,
    mode: 0o755,
    uid: 0,
    gid: 0,
    change: 'unmodified',
    children: [],
  };
  const nodes = new Map<string, ExplorerNode>([['', root]]);
  for (const path of [...marked.keys()].sort()) {
    const { entry, change } = marked.get(path)!;
    const type = entry.type ?? 'file';
    const node: ExplorerNode = {
      name: path.slice(path.lastIndexOf('/') + 1),
      type,
      size: entry.size ?? 0,
      mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      change,
      ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}),
      ...(type === 'directory' ? { children: [] } : {}),
    };
    nodes.set(path, node);
    const parent = nodes.get(path.slice(0, path.lastIndexOf('/')));
    (parent?.children as ExplorerNode[] | undefined)?.push(node);
  }
  sumSizes(root, false);
  return root;
}

function changeOf(before: Stack, entry: DemoEntry): ChangeKind {
  if (entry.removed) return 'removed';
  return before.has(entry.path) ? 'modified' : 'added';
}

/** Builds the explorer's model of an image made of `layers`, bottom first. */
export function demoModel(
  title: string,
  layers: readonly DemoLayer[],
  options: { summary?: string[]; asyncAggregated?: boolean } = {},
): ExplorerModel {
  const stacks: Stack[] = [new Map()];
  for (const layer of layers) {
    const stack = new Map(stacks[stacks.length - 1]);
    for (const entry of layer.entries) {
      if (entry.removed) {
        for (const path of [...stack.keys()]) if (isUnder(path, entry.path)) stack.delete(path);
        continue;
      }
      for (const dir of parents(entry.path)) {
        if (!stack.has(dir)) stack.set(dir, { path: dir, type: 'directory' });
      }
      stack.set(entry.path, entry);
    }
    stacks.push(stack);
  }
  const explorerLayers: ExplorerLayer[] = layers.map((layer, index) => {
    const before = stacks[index]!;
    const after = stacks[index + 1]!;
    const own = (): ExplorerNode => {
      const marked = new Map<string, Marked>();
      for (const entry of layer.entries) {
        for (const dir of parents(entry.path)) {
          if (!marked.has(dir)) {
            marked.set(dir, {
              entry: before.get(dir) ?? { path: dir, type: 'directory' },
              change: before.has(dir) ? 'unmodified' : 'added',
            });
          }
        }
        const shown = entry.removed ? (before.get(entry.path) ?? entry) : entry;
        marked.set(entry.path, { entry: shown, change: changeOf(before, entry) });
      }
      return nest(marked);
    };
    const aggregated = (): ExplorerNode => {
      const marked = new Map<string, Marked>();
      const touched = new Set(layer.entries.filter((e) => !e.removed).map((e) => e.path));
      for (const [path, entry] of after) {
        const change: ChangeKind =
          touched.has(path) || !before.has(path) ? changeOf(before, entry) : 'unmodified';
        marked.set(path, { entry, change });
      }
      for (const entry of layer.entries.filter((e) => e.removed)) {
        for (const [path, old] of before)
          if (isUnder(path, entry.path)) marked.set(path, { entry: old, change: 'removed' });
      }
      return nest(marked);
    };
    let size = 0;
    for (const entry of layer.entries) if (!entry.removed) size += entry.size ?? 0;
    return {
      label: `[${index}] ${layer.command}`,
      size,
      digest: `sha256:${(index + 1).toString(16).repeat(64).slice(0, 64)}`,
      tree: own,
      aggregated: options.asyncAggregated
        ? () => new Promise<ExplorerNode>((resolve) => setImmediate(() => resolve(aggregated())))
        : aggregated,
    };
  });
  return { title, layers: explorerLayers, summary: options.summary ?? [] };
}

/** The fixed image the tests and the tmux demo use: a base, a package install, an app, a cleanup. */
export function sampleLayers(): DemoLayer[] {
  const docs: DemoEntry[] = [];
  for (let i = 0; i < 60; i++)
    docs.push({ path: `/usr/share/doc/pkg-${String(i).padStart(2, '0')}/copyright`, size: 1200 + i });
  return [
    {
      command: 'FROM debian:bookworm-slim',
      entries: [
        { path: '/bin', type: 'directory' },
        { path: '/bin/dash', size: 125_560, mode: 0o755 },
        { path: '/bin/sh', type: 'symlink', linkTarget: 'dash', mode: 0o777 },
        { path: '/etc', type: 'directory' },
        { path: '/etc/os-release', size: 267 },
        { path: '/etc/passwd', size: 922 },
        { path: '/etc/shadow', size: 501, mode: 0o640, gid: 42 },
        { path: '/tmp', type: 'directory', mode: 0o1777 },
        { path: '/usr/lib/x86_64-linux-gnu/libc.so.6', size: 1_922_136, mode: 0o755 },
        ...docs,
        { path: '/var/lib/apt/lists', type: 'directory' },
      ],
    },
    {
      command: 'RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates',
      entries: [
        { path: '/usr/bin/curl', size: 260_912, mode: 0o755 },
        { path: '/usr/lib/x86_64-linux-gnu/libcurl.so.4', size: 730_048 },
        { path: '/etc/ssl/certs/ca-certificates.crt', size: 219_342 },
        {
          path: '/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages',
          size: 8_788_464,
        },
        { path: '/var/lib/dpkg/status', size: 72_318 },
      ],
    },
    {
      command: 'COPY app/ /app/',
      entries: [
        { path: '/app', type: 'directory', uid: 1000, gid: 1000 },
        { path: '/app/package.json', size: 412, uid: 1000, gid: 1000 },
        { path: '/app/server.js', size: 18_230, uid: 1000, gid: 1000 },
        { path: '/app/node_modules/left-pad/index.js', size: 1_024, uid: 1000, gid: 1000 },
        { path: '/app/node_modules/left-pad/package.json', size: 640, uid: 1000, gid: 1000 },
      ],
    },
    {
      command: 'RUN rm -rf /var/lib/apt/lists/* && chmod 600 /etc/shadow',
      entries: [
        {
          path: '/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages',
          removed: true,
        },
        { path: '/etc/shadow', size: 501, mode: 0o600, gid: 42 },
      ],
    },
  ];
}

export function sampleModel(options: { asyncAggregated?: boolean } = {}): ExplorerModel {
  return demoModel('demo/app:latest', sampleLayers(), {
    ...options,
    summary: ['Total size: 12 MB', 'Potential wasted space: 8.8 MB', 'Image efficiency score: 27 %'],
  });
}
