/**
 * The analysis model: what `strata analyze` computes about an image, as plain data. The terminal
 * report, `--json`, the interactive explorer and `strata diff` all read these types; nothing in
 * them refers back to the store or to a stream, so an analysis can be kept, compared or
 * serialised freely.
 */
import type { Digest } from '../oci/digest.js';

/** What a path is. `hardlink` is a tar hard link (its bytes are the target's). */
export type FileType =
  'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo';

/**
 * A path's change in a layer against the layers below it. `unmodified` is a path the layer
 * stores again without changing anything dive compares (type, content, mode, owner, link): the
 * bytes are stored twice all the same (`touch`, a re-copied identical file), and a directory that
 * is only listed because something inside it changed.
 */
export type ChangeKind = 'added' | 'modified' | 'removed' | 'unmodified';

/** What differs from the version below, for a `modified` node. */
export type ModifiedAspect = 'type' | 'content' | 'mode' | 'owner' | 'link';

/**
 * One node of a file tree: a layer's own tree (its entries and what it removes) or the tree of
 * the image up to a layer (aggregateTree). Paths are absolute (`/etc/passwd`; the root is `/`).
 */
export interface FileNode {
  /** The last path component; `/` for the root. */
  readonly name: string;
  readonly path: string;
  readonly type: FileType;
  /**
   * Content bytes (tar header size) for a file; for a directory, the sum over the nodes below it
   * that are not removed; for a removed node, the bytes it hid (its whole subtree below).
   */
  readonly size: number;
  /** Permission bits, with setuid/setgid/sticky (`0o4755`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Symlink target as stored, or the absolute path a hard link points at; '' otherwise. */
  readonly linkTarget: string;
  /** `sha256:<hex>` of a regular file's content; '' for every other type. */
  readonly digest: string;
  readonly change: ChangeKind;
  /** For `modified`: what changed, in this order: type, content, mode, owner, link. Else empty. */
  readonly modified: readonly ModifiedAspect[];
  /** The layer marked this directory opaque (`.wh..wh..opq`): what lay below it is hidden. */
  readonly opaque: boolean;
  /**
   * The layer has no entry of its own for this directory, only for things inside it; its mode and
   * owner are then those of the directory below (or 0755 root:root when there is none).
   */
  readonly implicit: boolean;
  /** Sorted by name (byte order). */
  readonly children: readonly FileNode[];
}

/** How many paths of each kind of change a layer has (implicit directories not counted). */
export interface ChangeCounts {
  added: number;
  modified: number;
  removed: number;
  unmodified: number;
}

export interface LayerAnalysis {
  /** Position in the manifest, 0 = bottom (the base image's first layer). */
  index: number;
  /** The blob as stored or served (compressed or not). */
  digest: Digest;
  mediaType: string;
  /** Size of the blob (compressed size for a compressed layer). */
  blobSize: number;
  /** The digest of the uncompressed tar (from the config's `rootfs.diff_ids`). */
  diffId: Digest | undefined;
  /** dive's layer size: the sum of the tar header sizes of its entries (uncompressed content bytes). */
  sizeBytes: number;
  /**
   * The history entry that made the layer: the n-th entry not marked `empty_layer`, as dive
   * pairs them; '' when the history has no entry left for it.
   */
  command: string;
  created: string | undefined;
  /** Tar entries in the layer, whiteouts included. */
  entries: number;
  changes: ChangeCounts;
  /** strata: bytes stored in this layer that the final image does not show (overwritten or removed later). */
  shadowedBytes: number;
  /** strata: bytes of lower layers (or earlier entries of this one) that this layer overwrites or removes. */
  hidesBytes: number;
  /** The layer's own tree; undefined when the analysis was run with `keepTrees: false`. */
  tree: FileNode | undefined;
}

/** A path dive counts as inefficient: seen as a leaf in `count` ≥ 2 layers. */
export interface DiveInefficientFile {
  path: string;
  count: number;
  /** dive's "Total Space": the sum of the sizes of every occurrence (the kept copy included). */
  sizeBytes: number;
}

/** The numbers exactly as dive (v0.10–v0.13) computes them; see docs/analyze.md. */
export interface DiveMetrics {
  /** Σ per-path minimum / Σ per-path cumulative size (1 when nothing has a size). */
  efficiency: number;
  /** Σ cumulative size of every path seen in two or more layers. */
  wastedBytes: number;
  /** Every layer but the first. */
  userSizeBytes: number;
  /**
   * wastedBytes / userSizeBytes, as a ratio (dive prints it ×100). null when userSizeBytes is 0:
   * dive divides by zero there (NaN when nothing is wasted, +Inf otherwise).
   */
  userWastedPercent: number | null;
  /** Largest sizeBytes first (ties by path). */
  inefficientFiles: DiveInefficientFile[];
  /**
   * Layers whose scan dive cuts short: a whiteout of a path missing below ends it, and the
   * layer's leaves after it (sorted depth-first) are not counted. Not part of dive's output;
   * here so that a surprising number can be explained.
   */
  scanStoppedLayers: number[];
}

/** A path with bytes stored in the image that the final filesystem does not show. */
export interface StrataInefficientFile {
  path: string;
  /** Versions of the path stored across the layers (the visible one included). */
  count: number;
  /** Bytes of every stored version. */
  sizeBytes: number;
  /** Bytes of the versions the final image does not show: what a squash would save. */
  wastedBytes: number;
  /** Layers holding a version, ascending. */
  layers: number[];
  /** The final image no longer has the path (deleted, or hidden by an opaque directory). */
  removed: boolean;
}

/**
 * strata's numbers: every stored byte is either visible in the final filesystem or wasted, so
 * deleting a directory, hiding one with an opaque whiteout, and overwriting a file all count
 * exactly the bytes they leave behind, once.
 */
export interface StrataMetrics {
  /** finalSizeBytes / image size (1 for an empty image). */
  efficiency: number;
  /** Bytes stored in the layers that the final filesystem does not show (= size − finalSizeBytes). */
  wastedBytes: number;
  /** Bytes of the regular files the final filesystem shows: what a squashed image would hold. */
  finalSizeBytes: number;
  /** Layers counted as the base image (dive assumes 1). */
  baseLayers: number;
  /** Size of the layers above the base. */
  userSizeBytes: number;
  /** Wasted bytes that layers above the base caused (by overwriting or removing). */
  userWastedBytes: number;
  /** userWastedBytes / userSizeBytes; null when userSizeBytes is 0. */
  userWastedPercent: number | null;
  /** Largest wastedBytes first (ties by path); only paths with wasted bytes. */
  inefficientFiles: StrataInefficientFile[];
}

export type ImageSourceKind = 'store' | 'archive' | 'layout' | 'registry';

export interface AnalyzedImage {
  /** What the user asked for (`busybox`, `./app.tar`, `registry://…`). */
  reference: string;
  source: ImageSourceKind;
  /** Canonical names the image has where it was read (store names, archive tags). */
  names: string[];
  /** The config digest (Docker's image ID for a single-platform image). */
  id: Digest;
  /** The image manifest's digest. */
  manifestDigest: Digest;
  /** `os/arch[/variant]` from the config. */
  platform: string;
  created: string | undefined;
}

export interface ImageAnalysis {
  image: AnalyzedImage;
  layers: LayerAnalysis[];
  /** Σ layer sizeBytes (dive's image size). */
  sizeBytes: number;
  dive: DiveMetrics;
  strata: StrataMetrics;
}
