/**
 * What the interactive explorer (`strata analyze -i`) shows, independent of how an image was read:
 * the analysis core is adapted to these few types, so the explorer can be driven and tested with
 * a hand-made image.
 */

export type ChangeKind = 'added' | 'modified' | 'removed' | 'unmodified';

export type NodeType =
  | 'file'
  | 'directory'
  | 'symlink'
  | 'hardlink'
  | 'char-device'
  | 'block-device'
  | 'fifo'
  | 'socket'
  | 'other';

export interface ExplorerNode {
  /** One path component; the root's name is ignored (it is never shown). */
  name: string;
  type: NodeType;
  /**
   * The bytes shown in the Size column, as given: a file's content; for a directory, the total
   * of what is under it that the image still holds; for a removed entry, the bytes it removed.
   */
  size: number;
  /** Permission bits with setuid/setgid/sticky; S_IFMT bits, if present, name an `other` entry. */
  mode: number;
  uid: number;
  gid: number;
  /** A symlink's target, or the path a hard link points at; absent or '' for anything else. */
  linkTarget?: string;
  change: ChangeKind;
  /** A directory's entries, in the order to show (the explorer does not sort). */
  children?: readonly ExplorerNode[];
}

/**
 * A tree may be given at once or computed on demand; a promise lets the adapter read layers
 * lazily while the explorer shows "loading" instead of blocking its keyboard.
 */
export type TreeSource = () => ExplorerNode | Promise<ExplorerNode>;

export interface ExplorerLayer {
  /** One line, e.g. "[3] RUN apt-get install -y curl"; newlines are shown as spaces. */
  label: string;
  /** Bytes this layer adds to the image. */
  size: number;
  digest: string;
  /** This layer's own changes, marked relative to the layers below it. */
  tree: TreeSource;
  /** The image's file system up to and including this layer. */
  aggregated: TreeSource;
}

export interface ExplorerModel {
  /** Shown on the top line, e.g. the image reference. */
  title: string;
  layers: readonly ExplorerLayer[];
  /** Metric lines shown under the layer list (efficiency, wasted bytes, …), one per line. */
  summary: readonly string[];
}

/** Which tree of the selected layer the right pane shows. */
export type TreeView = 'layer' | 'image';
