/**
 * The analysis itself: reads an image's layers bottom-up, one at a time and each as a stream
 * (file bodies are hashed as they pass and never kept), and computes for every layer its tree of
 * changes against the layers below, and for the image dive's metrics and strata's.
 *
 * strata's accounting follows each stored version of a path: a version is either visible in the
 * final filesystem or "shadowed" by a later layer (overwritten, removed by a whiteout of it or of
 * a directory above it, hidden by an opaque directory, or replaced along with a directory that
 * became something else), or by a later entry of the same path in its own layer. Shadowed bytes
 * are the waste, attributed to the path, to the layer that stored them and to the layer that
 * hid them.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { decompressStream } from '../archive/compression.js';
import { escapesRoot, readTar } from '../archive/tar-reader.js';
import type { TarEntryType } from '../archive/tar-writer.js';
import { isOpaqueWhiteout, isWhiteout, isWhiteoutMeta, whiteoutTarget } from '../archive/whiteout.js';
import { StrataError, isStrataError } from '../errors.js';
import { formatPlatform } from '../oci/platform.js';
import type { HistoryEntry } from '../oci/types.js';
import { DiveEfficiency, type DiveEntry } from './dive.js';
import type {
  ChangeCounts,
  DiveMetrics,
  FileType,
  ImageAnalysis,
  LayerAnalysis,
  StrataInefficientFile,
  StrataMetrics,
} from './model.js';
import type { ImageSource } from './source.js';
import {
  DraftNode,
  IMPLICIT_DIRECTORY,
  StateNode,
  absolute,
  components,
  fileBytes,
  freeze,
  implicitNode,
  isDirectory,
  lookup,
  markedNode,
  removedNode,
  type EntryMeta,
} from './tree.js';

export interface AnalyzeOptions {
  /**
   * Layers that belong to the base image, for strata's user numbers (default 1, dive's
   * assumption; clamped to the layer count). dive's own numbers always use 1.
   */
  baseLayers?: number;
  /** Keep each layer's tree in the result (default true); false saves memory for CI runs. */
  keepTrees?: boolean;
  /** Called before each layer is read. */
  onLayer?: (progress: { index: number; total: number }) => void;
}

const FILE_TYPES: Record<TarEntryType, FileType> = {
  file: 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'hardlink',
  'char-device': 'char-device',
  'block-device': 'block-device',
  fifo: 'fifo',
};

/** One layer's entries, read: metadata by path (the last entry of a path wins, as on extraction). */
interface LayerRead {
  entries: Map<string, EntryMeta>;
  whiteouts: string[];
  opaques: string[];
  root: EntryMeta | undefined;
  dive: DiveEntry[];
  sizeBytes: number;
  count: number;
  /** Earlier entries of a path the layer lists again: their bytes are stored but never seen. */
  duplicates: Array<{ path: string; size: number }>;
}

function layerError(index: number, digest: string, err: unknown): unknown {
  if (isStrataError(err)) {
    return new StrataError(err.code, `layer ${index} (${digest}): ${err.message}`, { cause: err });
  }
  return err;
}

async function readLayer(stream: Readable): Promise<LayerRead> {
  const read: LayerRead = {
    entries: new Map(),
    whiteouts: [],
    opaques: [],
    root: undefined,
    dive: [],
    sizeBytes: 0,
    count: 0,
    duplicates: [],
  };
  for await (const entry of readTar(decompressStream(stream))) {
    const { header } = entry;
    const name = header.name;
    if (escapesRoot(name)) {
      throw new StrataError('INVALID_ARCHIVE', `entry "${entry.rawName}" points outside the root`);
    }
    read.count++;
    read.sizeBytes += header.size;
    if (name !== '.') read.dive.push({ name, isDir: header.type === 'directory', size: header.size });
    if (isWhiteout(name)) {
      if (isOpaqueWhiteout(name)) read.opaques.push(whiteoutTarget(name));
      else if (!isWhiteoutMeta(name)) read.whiteouts.push(whiteoutTarget(name));
      continue;
    }
    let digest = '';
    if (header.type === 'file') {
      const hash = createHash('sha256');
      for await (const chunk of entry.body) hash.update(chunk as Buffer);
      digest = `sha256:${hash.digest('hex')}`;
    }
    const meta: EntryMeta = {
      type: FILE_TYPES[header.type],
      size: header.size,
      mode: header.mode,
      uid: header.uid,
      gid: header.gid,
      linkTarget: header.type === 'link' ? absolute(header.linkname) : header.linkname,
      digest,
    };
    if (name === '.') {
      read.root = meta;
      continue;
    }
    const previous = read.entries.get(name);
    if (previous && previous.type === 'file' && previous.size > 0) {
      read.duplicates.push({ path: name, size: previous.size });
    }
    read.entries.set(name, meta);
  }
  return read;
}

/** Wasted bytes by path and by layer (strata's accounting). */
class Ledger {
  readonly byPath = new Map<string, { wasted: number; versions: number; layers: Set<number> }>();
  readonly shadowed: number[];
  readonly hides: number[];

  constructor(layers: number) {
    this.shadowed = new Array<number>(layers).fill(0);
    this.hides = new Array<number>(layers).fill(0);
  }

  record(path: string, size: number, storedIn: number, hiddenBy: number): void {
    if (size === 0) return;
    let entry = this.byPath.get(path);
    if (!entry) {
      entry = { wasted: 0, versions: 0, layers: new Set() };
      this.byPath.set(path, entry);
    }
    entry.wasted += size;
    entry.versions++;
    entry.layers.add(storedIn);
    this.shadowed[storedIn] = (this.shadowed[storedIn] ?? 0) + size;
    this.hides[hiddenBy] = (this.hides[hiddenBy] ?? 0) + size;
  }

  /** Every file version at and below `node` leaves the filesystem, hidden by layer `by`. */
  shadow(node: StateNode, path: string, by: number): void {
    if (node.meta.type === 'file') this.record(path, node.meta.size, node.layer, by);
    if (node.children) {
      for (const [name, child] of node.children)
        this.shadow(child, path === '' ? name : `${path}/${name}`, by);
    }
  }
}

/** Where `path`'s parent goes in the layer tree, creating implicit directories on the way. */
function draftParent(root: DraftNode, state: StateNode, path: string): DraftNode | undefined {
  const names = components(path);
  names.pop();
  let node = root;
  let below: StateNode | undefined = state;
  for (const [depth, name] of names.entries()) {
    below = below && isDirectory(below.meta) ? below.child(name) : undefined;
    let next = node.child(name);
    if (!next) {
      next = implicitNode(name, below);
      node.setChild(next);
    } else if (next.change === 'removed') {
      return undefined;
    } else if (!isDirectory(next.meta)) {
      const ancestor = absolute(names.slice(0, depth + 1).join('/'));
      throw new StrataError(
        'INVALID_ARCHIVE',
        `"${absolute(path)}" is stored below "${ancestor}", which the same layer stores as a ${next.meta.type}`,
      );
    }
    node = next;
  }
  return node;
}

function lastName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function draftAt(root: DraftNode, path: string): DraftNode | undefined {
  let node: DraftNode | undefined = root;
  for (const name of components(path)) {
    node = node.child(name);
    if (!node) return undefined;
  }
  return node;
}

/** Marks, below an opaque directory, every lower path the layer does not re-create as removed. */
function hideBelow(draft: DraftNode, lower: StateNode): void {
  if (!lower.children) return;
  for (const [name, lowerChild] of lower.children) {
    const upper = draft.child(name);
    if (!upper) draft.setChild(removedNode(name, lowerChild));
    else if (upper.change !== 'removed' && isDirectory(upper.meta) && isDirectory(lowerChild.meta)) {
      hideBelow(upper, lowerChild);
    }
  }
}

/** The layer's tree of changes, marked against the filesystem below (`state`). */
function buildLayerTree(read: LayerRead, state: StateNode): DraftNode {
  const root = new DraftNode('', read.root ?? state.meta, 'unmodified', [], read.root === undefined);
  const paths = [...read.entries.keys()].sort();
  const parents = new Set<string>();
  for (const path of paths) {
    for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
      parents.add(path.slice(0, slash));
    }
  }
  // A whiteout of a path the layer itself re-creates as a directory (explicitly or as the parent
  // of its entries) empties that directory: the same as an opaque marker on it.
  const opaques = new Set(read.opaques);
  const deletions: string[] = [];
  for (const target of read.whiteouts) {
    const recreated = read.entries.get(target);
    if ((recreated && recreated.type === 'directory') || (!recreated && parents.has(target)))
      opaques.add(target);
    else if (!recreated) deletions.push(target);
  }

  for (const path of paths) {
    // Entries come first, so no removed node can be in the way yet.
    const parent = draftParent(root, state, path) as DraftNode;
    const name = lastName(path);
    const meta = read.entries.get(path) as EntryMeta;
    const existing = parent.child(name);
    const node = markedNode(name, meta, lookup(state, path));
    if (existing?.children) node.children = existing.children;
    parent.setChild(node);
  }
  for (const target of deletions.sort()) {
    const below = lookup(state, target);
    if (!below) continue; // deletes nothing
    const parent = draftParent(root, state, target);
    if (!parent || parent.child(lastName(target))) continue;
    parent.setChild(removedNode(lastName(target), below));
  }
  for (const dir of [...opaques].sort()) {
    let node = draftAt(root, dir);
    if (!node) {
      const parent = draftParent(root, state, dir);
      if (!parent) continue;
      node = implicitNode(lastName(dir), lookup(state, dir));
      parent.setChild(node);
    }
    if (node.change === 'removed' || !isDirectory(node.meta)) continue;
    node.opaque = true;
    const below = lookup(state, dir);
    if (below && isDirectory(below.meta)) hideBelow(node, below);
  }
  return root;
}

/** Applies a layer tree to the filesystem state, recording what it shadows. */
function applyLayer(draft: DraftNode, state: StateNode, layer: number, ledger: Ledger, path: string): void {
  if (!draft.children) return;
  for (const child of draft.children.values()) {
    const childPath = path === '' ? child.name : `${path}/${child.name}`;
    const existing = state.child(child.name);
    if (child.change === 'removed') {
      if (existing) {
        ledger.shadow(existing, childPath, layer);
        state.children?.delete(child.name);
      }
      continue;
    }
    let next: StateNode;
    if (existing && isDirectory(existing.meta) && isDirectory(child.meta)) {
      next = existing;
      if (!child.implicit) {
        next.meta = child.meta;
        next.layer = layer;
        next.explicit = true;
      }
    } else {
      if (existing) ledger.shadow(existing, childPath, layer);
      next = new StateNode(child.meta, layer, !child.implicit);
      state.setChild(child.name, next);
    }
    applyLayer(child, next, layer, ledger, childPath);
  }
}

function countChanges(node: DraftNode, counts: ChangeCounts): ChangeCounts {
  if (node.children) {
    for (const child of node.children.values()) {
      if (!child.implicit) counts[child.change]++;
      countChanges(child, counts);
    }
  }
  return counts;
}

/** dive's pairing: the n-th layer takes the n-th history entry that is not an empty layer. */
function layerHistory(
  history: readonly HistoryEntry[] | undefined,
  layers: number,
): Array<HistoryEntry | undefined> {
  const withLayers = (history ?? []).filter((entry) => entry.empty_layer !== true);
  return Array.from({ length: layers }, (_, index) => withLayers[index]);
}

function ratio(part: number, whole: number): number | null {
  return whole === 0 ? null : part / whole;
}

/**
 * Analyses an image: every layer is read once, bottom-up, as a stream. The source is not closed
 * (the caller opened it).
 */
export async function analyzeImage(
  source: ImageSource,
  options: AnalyzeOptions = {},
): Promise<ImageAnalysis> {
  const manifestLayers = source.manifest.layers;
  const total = manifestLayers.length;
  const keepTrees = options.keepTrees !== false;
  const history = layerHistory(source.config.history, total);
  const state = new StateNode(IMPLICIT_DIRECTORY, 0, false);
  const ledger = new Ledger(total);
  const dive = new DiveEfficiency();
  const layers: LayerAnalysis[] = [];

  for (const [index, descriptor] of manifestLayers.entries()) {
    options.onLayer?.({ index, total });
    let read: LayerRead;
    try {
      read = await readLayer(source.openLayer(index));
    } catch (err) {
      throw layerError(index, descriptor.digest, err);
    }
    dive.addLayer(read.dive);
    for (const duplicate of read.duplicates) ledger.record(duplicate.path, duplicate.size, index, index);
    let draft: DraftNode;
    try {
      draft = buildLayerTree(read, state);
    } catch (err) {
      throw layerError(index, descriptor.digest, err);
    }
    if (read.root) state.meta = read.root;
    applyLayer(draft, state, index, ledger, '');
    const entry = history[index];
    layers.push({
      index,
      digest: descriptor.digest,
      mediaType: descriptor.mediaType,
      blobSize: descriptor.size,
      diffId: source.config.rootfs.diff_ids[index],
      sizeBytes: read.sizeBytes,
      command: entry?.created_by ?? '',
      created: entry?.created,
      entries: read.count,
      changes: countChanges(draft, { added: 0, modified: 0, removed: 0, unmodified: 0 }),
      shadowedBytes: 0,
      hidesBytes: 0,
      tree: keepTrees ? freeze(draft, '/') : undefined,
    });
  }
  for (const layer of layers) {
    layer.shadowedBytes = ledger.shadowed[layer.index] ?? 0;
    layer.hidesBytes = ledger.hides[layer.index] ?? 0;
  }

  const sizeBytes = layers.reduce((sum, layer) => sum + layer.sizeBytes, 0);
  const diveResult = dive.result();
  const diveUserSize = sizeBytes - (layers[0]?.sizeBytes ?? 0);
  const diveMetrics: DiveMetrics = {
    efficiency: diveResult.efficiency,
    wastedBytes: diveResult.wastedBytes,
    userSizeBytes: diveUserSize,
    userWastedPercent: ratio(diveResult.wastedBytes, diveUserSize),
    inefficientFiles: diveResult.inefficientFiles,
    scanStoppedLayers: [...dive.truncatedLayers],
  };

  const finalSizeBytes = fileBytes(state);
  const baseLayers = Math.min(Math.max(0, Math.floor(options.baseLayers ?? 1)), total);
  const userSizeBytes = layers.slice(baseLayers).reduce((sum, layer) => sum + layer.sizeBytes, 0);
  const userWastedBytes = layers.slice(baseLayers).reduce((sum, layer) => sum + layer.hidesBytes, 0);
  const inefficientFiles: StrataInefficientFile[] = [];
  let wastedBytes = 0;
  for (const [path, entry] of ledger.byPath) {
    wastedBytes += entry.wasted;
    const visible = lookup(state, path);
    const shown = visible?.meta.type === 'file' ? visible : undefined;
    const layersOfPath = new Set(entry.layers);
    if (shown) layersOfPath.add(shown.layer);
    inefficientFiles.push({
      path: absolute(path),
      count: entry.versions + (shown ? 1 : 0),
      sizeBytes: entry.wasted + (shown ? shown.meta.size : 0),
      wastedBytes: entry.wasted,
      layers: [...layersOfPath].sort((a, b) => a - b),
      removed: !shown,
    });
  }
  inefficientFiles.sort((a, b) => b.wastedBytes - a.wastedBytes || (a.path < b.path ? -1 : 1));
  const strataMetrics: StrataMetrics = {
    efficiency: sizeBytes === 0 ? 1 : finalSizeBytes / sizeBytes,
    wastedBytes,
    finalSizeBytes,
    baseLayers,
    userSizeBytes,
    userWastedBytes,
    userWastedPercent: ratio(userWastedBytes, userSizeBytes),
    inefficientFiles,
  };

  const config = source.config;
  return {
    image: {
      reference: source.reference,
      source: source.kind,
      names: [...source.names],
      id: source.manifest.config.digest,
      manifestDigest: source.manifestDigest,
      platform: formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
      created: config.created,
    },
    layers,
    sizeBytes,
    dive: diveMetrics,
    strata: strataMetrics,
  };
}
