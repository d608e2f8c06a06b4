/**
 * The file trees of an analysis: the running state of the image's filesystem while layers are
 * read (StateNode), each layer's own tree being marked against it (DraftNode), their frozen,
 * plain form (FileNode, model.ts), and the tree of the image up to a layer (aggregateTree), which
 * is rebuilt from the layer trees alone: a layer tree lists every path it removes (whiteouts, and
 * for an opaque directory each path below it that it does not re-create), so stacking the trees
 * gives the filesystem without reading a layer again.
 */
import { StrataError } from '../errors.js';
import type { ChangeKind, FileNode, FileType, LayerAnalysis, ModifiedAspect } from './model.js';

/** A path's metadata as a tar entry gives it (and as the model shows it). */
export interface EntryMeta {
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkTarget: string;
  digest: string;
}

/** What a directory the layers never list has: what containerd's applier creates for a missing parent. */
export const IMPLICIT_DIRECTORY: EntryMeta = {
  type: 'directory',
  size: 0,
  mode: 0o755,
  uid: 0,
  gid: 0,
  linkTarget: '',
  digest: '',
};

/** One path of the image's filesystem after some layers: which layer stored the version it shows. */
export class StateNode {
  children: Map<string, StateNode> | undefined;

  constructor(
    public meta: EntryMeta,
    public layer: number,
    public explicit: boolean,
  ) {}

  child(name: string): StateNode | undefined {
    return this.children?.get(name);
  }

  setChild(name: string, node: StateNode): void {
    this.children ??= new Map();
    this.children.set(name, node);
  }
}

export function isDirectory(meta: EntryMeta): boolean {
  return meta.type === 'directory';
}

/** Slash-separated components of a relative path (`.` and '' are the root: no components). */
export function components(path: string): string[] {
  return path === '.' || path === '' ? [] : path.split('/');
}

export function absolute(path: string): string {
  return path === '.' || path === '' ? '/' : `/${path}`;
}

export function lookup(root: StateNode, path: string): StateNode | undefined {
  let node: StateNode | undefined = root;
  for (const name of components(path)) {
    node = node.child(name);
    if (!node) return undefined;
  }
  return node;
}

/** Bytes of the regular files at and below a node. */
export function fileBytes(node: StateNode): number {
  let total = node.meta.type === 'file' ? node.meta.size : 0;
  if (node.children) for (const child of node.children.values()) total += fileBytes(child);
  return total;
}

/** What differs between two versions of a path, in ModifiedAspect order. */
export function compareMeta(lower: EntryMeta, upper: EntryMeta): ModifiedAspect[] {
  const aspects: ModifiedAspect[] = [];
  if (lower.type !== upper.type) aspects.push('type');
  if (lower.type === 'file' && upper.type === 'file' && lower.digest !== upper.digest)
    aspects.push('content');
  if (lower.mode !== upper.mode) aspects.push('mode');
  if (lower.uid !== upper.uid || lower.gid !== upper.gid) aspects.push('owner');
  if (lower.linkTarget !== upper.linkTarget) aspects.push('link');
  return aspects;
}

/** A node of the layer tree being built. */
export class DraftNode {
  children: Map<string, DraftNode> | undefined;
  opaque = false;
  /** For a removed node: the bytes of what it removes. */
  removedSize = 0;

  constructor(
    readonly name: string,
    public meta: EntryMeta,
    public change: ChangeKind,
    public modified: ModifiedAspect[],
    public implicit: boolean,
  ) {}

  child(name: string): DraftNode | undefined {
    return this.children?.get(name);
  }

  setChild(node: DraftNode): void {
    this.children ??= new Map();
    this.children.set(node.name, node);
  }
}

/** A layer tree's node for a path that a layer lists, marked against the version below. */
export function markedNode(name: string, meta: EntryMeta, lower: StateNode | undefined): DraftNode {
  if (!lower) return new DraftNode(name, meta, 'added', [], false);
  const aspects = compareMeta(lower.meta, meta);
  return new DraftNode(name, meta, aspects.length > 0 ? 'modified' : 'unmodified', aspects, false);
}

/** A parent directory the layer does not list itself. */
export function implicitNode(name: string, lower: StateNode | undefined): DraftNode {
  if (!lower) return new DraftNode(name, IMPLICIT_DIRECTORY, 'added', [], true);
  if (isDirectory(lower.meta)) return new DraftNode(name, lower.meta, 'unmodified', [], true);
  // A non-directory below becomes the directory the layer's paths need.
  return new DraftNode(
    name,
    IMPLICIT_DIRECTORY,
    'modified',
    compareMeta(lower.meta, IMPLICIT_DIRECTORY),
    true,
  );
}

export function removedNode(name: string, lower: StateNode): DraftNode {
  const node = new DraftNode(name, lower.meta, 'removed', [], false);
  node.removedSize = fileBytes(lower);
  return node;
}

function byName(a: FileNode, b: FileNode): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The plain, immutable form of a draft tree, with directory sizes summed. */
export function freeze(node: DraftNode, path: string): FileNode {
  const children: FileNode[] = [];
  let size = node.meta.type === 'file' ? node.meta.size : 0;
  if (node.children) {
    for (const child of node.children.values()) {
      const frozen = freeze(child, path === '/' ? `/${child.name}` : `${path}/${child.name}`);
      children.push(frozen);
      if (frozen.change !== 'removed') size += frozen.size;
    }
    children.sort(byName);
  }
  if (node.change === 'removed') size = node.removedSize;
  return {
    name: path === '/' ? '/' : node.name,
    path,
    type: node.meta.type,
    size,
    mode: node.meta.mode,
    uid: node.meta.uid,
    gid: node.meta.gid,
    linkTarget: node.meta.linkTarget,
    digest: node.meta.digest,
    change: node.change,
    modified: node.modified,
    opaque: node.opaque,
    implicit: node.implicit,
    children,
  };
}

/** Finds the node at an absolute or relative path (`/etc/passwd`, `etc/passwd`). */
export function findNode(root: FileNode, path: string): FileNode | undefined {
  let node: FileNode | undefined = root;
  for (const name of path.split('/')) {
    if (name === '' || name === '.') continue;
    node = node.children.find((child) => child.name === name);
    if (!node) return undefined;
  }
  return node;
}

function metaOf(node: FileNode): EntryMeta {
  return {
    type: node.type,
    size: node.type === 'file' ? node.size : 0,
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    linkTarget: node.linkTarget,
    digest: node.digest,
  };
}

/** Stacks one frozen layer tree onto a draft of the filesystem, every node it touches taking `mark`. */
function stack(target: DraftNode, layer: FileNode, marks: boolean): void {
  for (const child of layer.children) {
    const existing = target.child(child.name);
    if (child.change === 'removed') {
      if (!existing) continue;
      if (marks) markRemoved(existing);
      else target.children?.delete(child.name);
      continue;
    }
    const change: ChangeKind = marks ? child.change : 'unmodified';
    const modified = marks ? child.modified : [];
    let node: DraftNode;
    if (existing && isDirectory(existing.meta) && child.type === 'directory') {
      node = existing;
      if (!child.implicit) {
        node.meta = metaOf(child);
        node.implicit = false;
      }
      if (marks) {
        node.change = change;
        node.modified = [...modified];
      }
    } else {
      node = new DraftNode(child.name, metaOf(child), change, [...modified], child.implicit);
      target.setChild(node);
    }
    if (marks) node.opaque = child.opaque;
    stack(node, child, marks);
  }
}

function markRemoved(node: DraftNode): void {
  node.change = 'removed';
  node.modified = [];
  node.removedSize = 0;
  if (node.children) for (const child of node.children.values()) markRemoved(child);
  node.removedSize = removedBytes(node);
}

function removedBytes(node: DraftNode): number {
  let total = node.meta.type === 'file' ? node.meta.size : 0;
  if (node.children) for (const child of node.children.values()) total += removedBytes(child);
  return total;
}

/**
 * The image's filesystem after layers 0..`index`, as an explorer's "aggregated view" shows it:
 * what layer `index` added, modified or left unmodified carries its mark, what it removed is
 * still there marked `removed` (with everything below it), everything else is `unmodified`.
 */
export function aggregateTree(layers: readonly LayerAnalysis[], index: number): FileNode {
  if (!Number.isInteger(index) || index < 0 || index >= layers.length) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `layer ${index} does not exist (the image has ${layers.length} layer${layers.length === 1 ? '' : 's'})`,
    );
  }
  const root = new DraftNode('', IMPLICIT_DIRECTORY, 'unmodified', [], true);
  for (let i = 0; i <= index; i++) {
    const tree = (layers[i] as LayerAnalysis).tree;
    if (!tree) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        'the analysis was made without its layer trees (keepTrees: false)',
      );
    }
    stack(root, tree, i === index);
    if (i === index) root.opaque = tree.opaque;
  }
  return freeze(root, '/');
}
