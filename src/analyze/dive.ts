/**
 * dive's efficiency metric, reproduced from its documented behaviour (research notes
 * analyze-scan.md §1.2, and dive's filetree package read for its exact rules), so that
 * `.dive-ci` thresholds mean the same thing here as there. Its quirks are kept on purpose:
 *
 * - each layer is a tree of its tar entries; parents without an entry of their own are implicit
 *   nodes that are not directories; whiteouts stay in the tree under their `.wh.` names; names
 *   starting with `.wh..wh..` (the opaque marker) are dropped, so opaque directories are invisible;
 * - only leaves count, each an occurrence of its path (a whiteout's path is its target) with the
 *   entry's size, or for a whiteout the size of what it deletes in the stacked view below — the
 *   whole subtree for a path that was a directory entry, 0 for anything else;
 * - the stacked view is dive's: an entry sets its node's data even for an implicit parent (so a
 *   later layer listing `/etc/x` without `/etc` turns `/etc` into a non-directory), whiteouts
 *   remove subtrees, a whiteout of a missing path is ignored;
 * - a whiteout whose target is missing below ends the scan of that layer (dive logs the error and
 *   stops visiting that tree), so the layer's remaining leaves, in sorted depth-first order, are
 *   never counted;
 * - layer 0's whiteouts are looked up in a copy of layer 0 itself.
 *
 * Memory is one node per path of the image plus the layer being added; no file bytes.
 */
import type { DiveInefficientFile } from './model.js';

/** One tar entry as dive sees it: the cleaned relative name (no leading `/`), its type and size. */
export interface DiveEntry {
  name: string;
  isDir: boolean;
  size: number;
}

const WHITEOUT_PREFIX = '.wh.';
const DROPPED_PREFIX = '.wh..wh..';

class DiveNode {
  isDir = false;
  size = 0;
  children: Map<string, DiveNode> | undefined;

  constructor(readonly name: string) {}

  child(name: string): DiveNode | undefined {
    return this.children?.get(name);
  }

  /** Children in Go's sort.Strings order (bytewise; code-unit order equals it below U+D800). */
  sortedChildren(): DiveNode[] {
    if (!this.children) return [];
    return [...this.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  clone(): DiveNode {
    const copy = new DiveNode(this.name);
    copy.isDir = this.isDir;
    copy.size = this.size;
    if (this.children) {
      copy.children = new Map();
      for (const [name, child] of this.children) copy.children.set(name, child.clone());
    }
    return copy;
  }
}

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '');
}

/** dive's AddPath: creates missing parents as empty nodes and sets the data of the last one. */
function addPath(root: DiveNode, path: string, data: { isDir: boolean; size: number }): void {
  const names = components(path);
  let node = root;
  for (const [index, name] of names.entries()) {
    let next = node.child(name);
    if (!next) {
      if (name.startsWith(DROPPED_PREFIX)) return;
      next = new DiveNode(name);
      node.children ??= new Map();
      node.children.set(name, next);
    }
    node = next;
    if (index === names.length - 1) {
      node.isDir = data.isDir;
      node.size = data.size;
    }
  }
}

function getNode(root: DiveNode, path: string): DiveNode | undefined {
  let node: DiveNode | undefined = root;
  for (const name of components(path)) {
    node = node.child(name);
    if (!node) return undefined;
  }
  return node;
}

function removePath(root: DiveNode, path: string): void {
  const names = components(path);
  const last = names.pop();
  if (last === undefined) return; // the root is never removed
  const parent = getNode(root, names.join('/'));
  parent?.children?.delete(last);
}

function subtreeSize(node: DiveNode): number {
  let total = node.size;
  if (node.children) for (const child of node.children.values()) total += subtreeSize(child);
  return total;
}

/** Children first, sorted, never the root: dive's VisitDepthChildFirst. Stops when `visit` says so. */
function visitChildFirst(
  node: DiveNode,
  parentPath: string,
  isRoot: boolean,
  visit: (node: DiveNode, path: string) => boolean,
): boolean {
  const path = isRoot ? '' : `${parentPath}/${node.name}`;
  for (const child of node.sortedChildren()) {
    if (!visitChildFirst(child, path, false, visit)) return false;
  }
  return isRoot ? true : visit(node, path);
}

/** dive's FileNode.Path(): a whiteout's own `.wh.` prefix is dropped. */
function divePath(node: DiveNode, path: string): string {
  if (!node.name.startsWith(WHITEOUT_PREFIX)) return path;
  return `${path.slice(0, path.length - node.name.length)}${node.name.slice(WHITEOUT_PREFIX.length)}`;
}

interface PathTally {
  cumulative: number;
  minimum: number;
  count: number;
}

export interface DiveResult {
  efficiency: number;
  wastedBytes: number;
  inefficientFiles: DiveInefficientFile[];
}

/** Feeds layers bottom-up (`addLayer`), then `result()`. */
export class DiveEfficiency {
  private stacked: DiveNode | undefined;
  private readonly tallies = new Map<string, PathTally>();
  /** Layers whose scan a missing whiteout target cut short (dive's silent quirk), for reports. */
  readonly truncatedLayers: number[] = [];
  private layers = 0;

  addLayer(entries: Iterable<DiveEntry>): void {
    const tree = new DiveNode('');
    for (const entry of entries) {
      if (entry.name === '.' || entry.name === '') continue;
      addPath(tree, entry.name, entry);
    }
    const index = this.layers++;
    // dive stacks trees[0] (a copy) with trees[0..L-1] for layer L; for layer 0 that is the copy alone.
    if (this.stacked === undefined) this.stacked = tree.clone();
    const stacked = this.stacked;
    const complete = visitChildFirst(tree, '', true, (node, path) => {
      if (node.children && node.children.size > 0) return true; // only leaves count
      const key = divePath(node, path);
      let size = node.size;
      if (node.name.startsWith(WHITEOUT_PREFIX)) {
        const below = getNode(stacked, key);
        if (!below) return false;
        size = below.isDir ? subtreeSize(below) : 0;
      }
      const tally = this.tallies.get(key);
      if (tally) {
        tally.cumulative += size;
        tally.minimum = Math.min(tally.minimum, size);
        tally.count++;
      } else {
        this.tallies.set(key, { cumulative: size, minimum: size, count: 1 });
      }
      return true;
    });
    if (!complete) this.truncatedLayers.push(index);
    visitChildFirst(tree, '', true, (node, path) => {
      if (node.name.startsWith(WHITEOUT_PREFIX)) removePath(stacked, divePath(node, path));
      else addPath(stacked, path, node);
      return true;
    });
  }

  result(): DiveResult {
    let minimum = 0;
    let cumulative = 0;
    let wastedBytes = 0;
    const inefficientFiles: DiveInefficientFile[] = [];
    for (const [path, tally] of this.tallies) {
      minimum += tally.minimum;
      cumulative += tally.cumulative;
      if (tally.count >= 2) {
        wastedBytes += tally.cumulative;
        inefficientFiles.push({ path, count: tally.count, sizeBytes: tally.cumulative });
      }
    }
    // dive sorts with an unstable sort on the size alone; ties go by path here so output is stable.
    inefficientFiles.sort((a, b) => b.sizeBytes - a.sizeBytes || (a.path < b.path ? -1 : 1));
    return { efficiency: cumulative === 0 ? 1 : minimum / cumulative, wastedBytes, inefficientFiles };
  }
}
