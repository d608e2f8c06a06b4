/**
 * A new layer's files held as a tree of entries instead of written to disk. A COPY whose
 * destination does not exist yet only adds files, so its layer is exactly what the copy
 * creates: the tree records each entry's metadata and where its bytes are (a source file on
 * the host, or inline bytes), and the layer tar is streamed from it, reading every source once.
 * Creating tens of thousands of files only to read them back into a tar was most of a cold
 * COPY's time; the snapshot directory is unpacked from the blob later, only if a step needs it.
 *
 * The tree implements the few file operations the copy makes (CopyTarget), on absolute paths
 * below a fixed virtual root, with the file system's rules: a parent must exist and be a
 * directory, names are unique, a hard link is a second name of the same node, adding or
 * removing a name touches the directory's mtime.
 */
import { posix } from 'node:path';

import { FileBody, toSeconds, type FileIdentity, type TarWriterEntry } from '../archive/tar-writer.js';
import { compareNames } from '../dockerfile/context.js';
import { cleanPath } from '../dockerfile/dockerignore.js';
import { containsWildcards, type CopySourceEntry, type SelectedOperand } from './copy.js';
import { SourceStats } from './fastfs.js';

/** What the copy needs to know of an existing target path (node's Stats satisfies it). */
export interface TargetStats {
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

/** The file operations COPY/ADD make on their destination tree. */
export interface CopyTarget {
  lstat(path: string): Promise<TargetStats | undefined>;
  readlink(path: string): Promise<string>;
  mkdir(path: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  lchown(path: string, uid: number, gid: number): Promise<void>;
  /** Sets the mtime (atime is not recorded in layers); `symlink` tells not to follow one. */
  setMtime(path: string, mtime: Date, symlink: boolean): Promise<void>;
  symlink(linkTarget: string, path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  /** A regular file with the bytes of `source` (whose lstat is `stats`). */
  copyFile(source: string, path: string, stats: SourceStats): Promise<void>;
  writeFile(path: string, data: string): Promise<void>;
  mknod(
    path: string,
    kind: 'fifo' | 'char-device' | 'block-device',
    major: number,
    minor: number,
  ): Promise<void>;
  unlink(path: string): Promise<void>;
}

type NodeKind = 'directory' | 'file' | 'symlink' | 'fifo' | 'char-device' | 'block-device';

interface TreeNode {
  kind: NodeKind;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  children?: Map<string, TreeNode>;
  /** file: host path of the bytes, with their size and the identity they must still have */
  source?: string;
  size?: number;
  identity?: FileIdentity;
  /** file: inline bytes (heredocs) */
  data?: Buffer;
  linkTarget?: string;
  major?: number;
  minor?: number;
  /** An existing directory of the layers below, in the tree only as the way to new entries. */
  seeded?: boolean;
}

const TYPE_BITS: Record<NodeKind, number> = {
  directory: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  fifo: 0o010000,
  'char-device': 0o020000,
  'block-device': 0o060000,
};

class TreeError extends Error {
  constructor(
    readonly code: 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'EINVAL',
    path: string,
  ) {
    super(`${code}: ${path}`);
  }
}

function nodeStats(node: TreeNode): TargetStats {
  return {
    isDirectory: () => node.kind === 'directory',
    isSymbolicLink: () => node.kind === 'symlink',
  };
}

/** An existing directory of the layer below, kept in the tree with its metadata. */
export interface SeedDirectory {
  /** Relative to the image root, without leading `/`. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

export class LayerTree implements CopyTarget {
  /** The virtual directory every path of the tree is below (never a real path). */
  readonly root = '/.strata-layer-tree';
  readonly #top: TreeNode;
  /**
   * Set when every file's source outlives the step (files of the build context): a later
   * `COPY --from` of this layer can then read them from there (see selectOwned).
   */
  sourcesOutlive = false;
  #names: Map<TreeNode, number> | undefined;
  readonly #inodes = new Map<TreeNode, number>();

  constructor(seed: readonly SeedDirectory[] = []) {
    this.#top = { kind: 'directory', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, children: new Map() };
    for (const dir of seed) {
      const { parent, name } = this.#parentOf(posix.join(this.root, dir.path));
      parent.children?.set(name, {
        kind: 'directory',
        mode: dir.mode & 0o7777,
        uid: dir.uid,
        gid: dir.gid,
        mtimeMs: dir.mtimeMs,
        children: new Map(),
        seeded: true,
      });
    }
  }

  /** What the tree has at `path` (relative to the image root), for looking through layers. */
  describe(path: string): (SeedDirectory & { isDirectory: boolean; isEmpty: boolean }) | undefined {
    let node: TreeNode | undefined;
    try {
      node = this.#find(posix.join(this.root, path));
    } catch {
      return undefined; // below a non-directory
    }
    if (node === undefined) return undefined;
    return {
      path,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtimeMs: node.mtimeMs,
      isDirectory: node.kind === 'directory',
      isEmpty: (node.children?.size ?? 0) === 0,
    };
  }

  /** Whether the copy left nothing in the tree (no layer). */
  get isEmpty(): boolean {
    return this.#top.children?.size === 0;
  }

  #components(path: string): string[] {
    if (path !== this.root && !path.startsWith(`${this.root}/`)) throw new TreeError('EINVAL', path);
    return path
      .slice(this.root.length)
      .split('/')
      .filter((part) => part !== '' && part !== '.');
  }

  #find(path: string): TreeNode | undefined {
    let node = this.#top;
    for (const component of this.#components(path)) {
      if (node.kind !== 'directory') throw new TreeError('ENOTDIR', path);
      const child = node.children?.get(component);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }

  #get(path: string): TreeNode {
    const node = this.#find(path);
    if (node === undefined) throw new TreeError('ENOENT', path);
    return node;
  }

  #parentOf(path: string): { parent: TreeNode; name: string } {
    const components = this.#components(path);
    const name = components.pop();
    if (name === undefined || name === '..') throw new TreeError('EINVAL', path);
    let parent = this.#top;
    for (const component of components) {
      const child = parent.children?.get(component);
      if (child === undefined) throw new TreeError('ENOENT', path);
      if (child.kind !== 'directory') throw new TreeError('ENOTDIR', path);
      parent = child;
    }
    return { parent, name };
  }

  #add(path: string, node: TreeNode): void {
    const { parent, name } = this.#parentOf(path);
    const children = parent.children as Map<string, TreeNode>;
    if (children.has(name)) throw new TreeError('EEXIST', path);
    children.set(name, node);
    parent.mtimeMs = Date.now();
  }

  #fresh(kind: NodeKind, mode: number): TreeNode {
    return { kind, mode, uid: 0, gid: 0, mtimeMs: Date.now() };
  }

  async lstat(path: string): Promise<TargetStats | undefined> {
    try {
      const node = this.#find(path);
      return node === undefined ? undefined : nodeStats(node);
    } catch (err) {
      if (err instanceof TreeError && err.code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async readlink(path: string): Promise<string> {
    const node = this.#get(path);
    if (node.kind !== 'symlink' || node.linkTarget === undefined) throw new TreeError('EINVAL', path);
    return node.linkTarget;
  }

  async mkdir(path: string, mode: number): Promise<void> {
    this.#add(path, { ...this.#fresh('directory', mode & 0o7777), children: new Map() });
  }

  async chmod(path: string, mode: number): Promise<void> {
    this.#get(path).mode = mode & 0o7777;
  }

  async lchown(path: string, uid: number, gid: number): Promise<void> {
    const node = this.#get(path);
    node.uid = uid;
    node.gid = gid;
  }

  async setMtime(path: string, mtime: Date): Promise<void> {
    this.#get(path).mtimeMs = mtime.getTime();
  }

  async symlink(linkTarget: string, path: string): Promise<void> {
    this.#add(path, { ...this.#fresh('symlink', 0o777), linkTarget });
  }

  async link(existing: string, path: string): Promise<void> {
    const node = this.#get(existing);
    if (node.kind === 'directory') throw new TreeError('EISDIR', existing);
    this.#add(path, node);
  }

  async copyFile(source: string, path: string, stats: SourceStats): Promise<void> {
    const identity = { dev: stats.dev, ino: stats.ino, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs };
    this.#add(path, { ...this.#fresh('file', 0o644), source, size: stats.size, identity });
  }

  async writeFile(path: string, data: string): Promise<void> {
    this.#add(path, { ...this.#fresh('file', 0o644), data: Buffer.from(data, 'utf8') });
  }

  async mknod(
    path: string,
    kind: 'fifo' | 'char-device' | 'block-device',
    major: number,
    minor: number,
  ): Promise<void> {
    this.#add(path, { ...this.#fresh(kind, 0o600), major, minor });
  }

  async unlink(path: string): Promise<void> {
    const { parent, name } = this.#parentOf(path);
    const children = parent.children as Map<string, TreeNode>;
    const node = children.get(name);
    if (node === undefined) throw new TreeError('ENOENT', path);
    if (node.kind === 'directory') throw new TreeError('EISDIR', path);
    children.delete(name);
    parent.mtimeMs = Date.now();
  }

  /**
   * `COPY --from` sources read straight from this tree, when this is the stage's top layer and
   * every source is a plain path (no wildcard) naming something the tree created (not a
   * directory of the layers below, whose other contents are elsewhere), reached without
   * symlinks, with only files whose bytes are still where the tree found them. Then nothing of
   * the stage needs unpacking; otherwise undefined, and the caller selects from the stage's
   * files as usual. Operands are what selectCopySources gives for the same sources.
   */
  selectOwned(sources: readonly string[]): SelectedOperand[] | undefined {
    if (!this.sourcesOutlive) return undefined;
    const operands: SelectedOperand[] = [];
    for (const source of sources) {
      if (containsWildcards(source)) return undefined;
      const cleaned = cleanPath(posix.join('/', source));
      const components = cleaned === '/' ? [] : cleaned.slice(1).split('/');
      let node = this.#top;
      let owned = false;
      for (const component of components) {
        const child = node.children?.get(component);
        if (child === undefined || child.kind === 'symlink') return undefined;
        owned ||= child.seeded !== true;
        node = child;
      }
      if (!owned) return undefined;
      const entries: CopySourceEntry[] = [];
      if (!this.#collect(node, cleaned, '', entries)) return undefined;
      operands.push({
        operand: source,
        isDirectory: node.kind === 'directory',
        entries,
        destName: components.at(-1) ?? '',
        preserveOwnership: true,
      });
    }
    return operands;
  }

  /** Appends `node` and what is below it, directories before their contents, names in byte order. */
  #collect(node: TreeNode, imagePath: string, relPath: string, into: CopySourceEntry[]): boolean {
    if (node.kind === 'file' && node.source === undefined) return false; // inline bytes: no host file
    into.push({
      hostPath: node.source ?? posix.join(this.root, imagePath),
      relPath,
      stats: this.#stats(node),
      ...(node.kind === 'symlink' ? { linkTarget: node.linkTarget ?? '' } : {}),
    });
    if (node.kind !== 'directory') return true;
    const names = [...(node.children as Map<string, TreeNode>).keys()].sort(compareNames);
    for (const name of names) {
      const child = (node.children as Map<string, TreeNode>).get(name) as TreeNode;
      const childRel = relPath === '' ? name : `${relPath}/${name}`;
      if (!this.#collect(child, posix.join(imagePath, name), childRel, into)) return false;
    }
    return true;
  }

  /** What lstat would say of the node once unpacked . */
  #stats(node: TreeNode): SourceStats {
    if (this.#names === undefined) {
      const names = new Map<TreeNode, number>();
      const count = (dir: TreeNode): void => {
        for (const child of dir.children?.values() ?? []) {
          names.set(child, (names.get(child) ?? 0) + 1);
          if (child.kind === 'directory') count(child);
        }
      };
      count(this.#top);
      this.#names = names;
    }
    let ino = this.#inodes.get(node);
    if (ino === undefined) {
      ino = this.#inodes.size + 1;
      this.#inodes.set(node, ino);
    }
    const kind = node.kind;
    const major = node.major ?? 0;
    const minor = node.minor ?? 0;
    // A file keeps its source's identity, so that a copy of it checks the very same file.
    const identity = node.identity;
    return new SourceStats({
      dev: identity ? identity.dev : 0,
      ino: identity ? identity.ino : ino,
      mode: TYPE_BITS[kind] | node.mode,
      nlink: this.#names.get(node) ?? 1,
      uid: node.uid,
      gid: node.gid,
      rdev: (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12),
      size: kind === 'file' ? (node.data?.length ?? node.size ?? 0) : 0,
      mtimeMs: identity ? identity.mtimeMs : node.mtimeMs,
      ctimeMs: identity ? identity.ctimeMs : node.mtimeMs,
    });
  }

  /**
   * The layer's tar entries in the order a directory walk of the same files gives (full names
   * sorted bytewise, see walkDirectory): the same files make the same layer either way. A node
   * met a second time is a hard link to its first name. `clamp` caps mtimes (SOURCE_DATE_EPOCH).
   */
  *entries(clamp?: Date): Generator<TarWriterEntry> {
    const limit = clamp === undefined ? undefined : toSeconds(clamp);
    const firstName = new Map<TreeNode, string>();
    function* walk(dir: TreeNode, prefix: string): Generator<TarWriterEntry> {
      const children = [...(dir.children as Map<string, TreeNode>)].map(([name, node]) => ({
        name,
        node,
        key: Buffer.from(node.kind === 'directory' ? `${name}/` : name, 'utf8'),
      }));
      children.sort((a, b) => Buffer.compare(a.key, b.key));
      for (const { name, node } of children) {
        const rel = `${prefix}${name}`;
        const seconds = Math.floor(node.mtimeMs / 1000);
        const base = {
          mode: node.mode,
          uid: node.uid,
          gid: node.gid,
          mtime: new Date((limit !== undefined && seconds > limit ? limit : seconds) * 1000),
        };
        if (node.kind === 'directory') {
          yield { header: { name: rel, type: 'directory', ...base } };
          yield* walk(node, `${rel}/`);
          continue;
        }
        const first = firstName.get(node);
        if (first !== undefined) {
          yield { header: { name: rel, type: 'link', linkname: first, ...base } };
          continue;
        }
        firstName.set(node, rel);
        if (node.kind === 'file') {
          const { data, source } = node;
          if (data !== undefined) {
            yield { header: { name: rel, type: 'file', size: data.length, ...base }, body: data };
          } else if (source !== undefined) {
            const size = node.size ?? 0;
            yield {
              header: { name: rel, type: 'file', size, ...base },
              body: new FileBody(source, source, node.identity),
            };
          }
        } else if (node.kind === 'symlink') {
          yield { header: { name: rel, type: 'symlink', linkname: node.linkTarget ?? '', ...base } };
        } else {
          yield {
            header: {
              name: rel,
              type: node.kind,
              devmajor: node.major ?? 0,
              devminor: node.minor ?? 0,
              ...base,
            },
          };
        }
      }
    }
    yield* walk(this.#top, '');
  }
}
