/**
 * Flattens a docker-archive (what `docker save` and `strata save` write) into the filesystem a
 * container would see, plus the image config, so two builds of one Dockerfile can be compared
 * entry by entry without caring how either builder split its layers or what timestamps it wrote.
 *
 * Layers are read with strata's streaming tar reader (it honours PAX uid/gid/size, which
 * tar-stream ignores) and file bodies are hashed as they stream past: only metadata is kept.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { decompressStream } from '../../src/archive/compression.js';
import { readTar } from '../../src/archive/tar-reader.js';
import type { TarEntryType } from '../../src/archive/tar-writer.js';

export type FsEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'char' | 'block';

export interface FsEntry {
  type: FsEntryType;
  /** Permission bits with setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Content size for files and hardlinks (the target's), 0 otherwise. */
  size: number;
  /** Hex sha256 of the content for files and hardlinks (the target's content). */
  sha256?: string;
  /** Symlink target verbatim, or the absolute path a hardlink points to. */
  linkTarget?: string;
  /** `major:minor` of character and block devices. */
  device?: string;
  /**
   * Identity of the underlying inode for files and hardlinks: paths sharing it are one file.
   * Only meaningful inside one image; compareImages turns it into the set of sibling paths.
   */
  inode?: number;
}

/** The fields of the image config's `config` object that a Dockerfile can set. */
export interface ContainerConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Labels?: Record<string, string> | null;
  Healthcheck?: {
    Test?: string[];
    Interval?: number;
    Timeout?: number;
    StartPeriod?: number;
    StartInterval?: number;
    Retries?: number;
  } | null;
  StopSignal?: string;
  Shell?: string[] | null;
  OnBuild?: string[] | null;
  [key: string]: unknown;
}

export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  author?: string;
  config?: ContainerConfig;
  history?: { created_by?: string; empty_layer?: boolean; comment?: string }[];
  rootfs?: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

export interface FlatImage {
  /** Absolute path (`/etc/passwd`) → entry. The root directory itself is not listed. */
  files: Map<string, FsEntry>;
  config: ImageConfigFile;
  /** How many layers were applied (for messages, not for comparison). */
  layerCount: number;
}

interface ManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** One layer's changes, gathered before applying so whiteouts only hit lower layers. */
interface LayerChanges {
  whiteouts: string[];
  opaque: string[];
  entries: { path: string; entry: FsEntry; hardlinkTo?: string }[];
}

/** Small outer files (manifest, configs) are buffered; layers never are. */
const SMALL_FILE = 1024 * 1024;

function typeOf(type: TarEntryType): FsEntryType {
  switch (type) {
    case 'file':
      return 'file';
    case 'directory':
      return 'dir';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    case 'fifo':
      return 'fifo';
    case 'char-device':
      return 'char';
    case 'block-device':
      return 'block';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseManifest(bytes: Buffer, archive: string): ManifestItem[] {
  const parsed: unknown = JSON.parse(bytes.toString('utf8'));
  if (!Array.isArray(parsed)) throw new Error(`${archive}: manifest.json is not an array`);
  return parsed.map((item: unknown, i) => {
    if (!isRecord(item) || typeof item.Config !== 'string' || !Array.isArray(item.Layers)) {
      throw new Error(`${archive}: manifest.json item ${i} has no Config/Layers`);
    }
    return item as unknown as ManifestItem;
  });
}

/** Resolves symlinks inside the outer archive (newer `docker save` links duplicate blobs). */
function resolveOuter(name: string, links: ReadonlyMap<string, string>): string {
  let current = posix.normalize(name).replace(/^\.\//, '');
  for (let hops = 0; hops < 16; hops++) {
    const target = links.get(current);
    if (target === undefined) return current;
    current = posix.normalize(posix.join(posix.dirname(current), target)).replace(/^\//, '');
  }
  throw new Error(`symlink loop at ${name} in the archive`);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

let nextInode = 1;

/** Reads one layer tar (possibly gzip/zstd compressed) into its list of changes. */
async function readLayer(body: Readable): Promise<LayerChanges> {
  const changes: LayerChanges = { whiteouts: [], opaque: [], entries: [] };
  for await (const item of readTar(decompressStream(body))) {
    const { header } = item;
    if (header.name === '.') {
      await item.drain();
      continue;
    }
    const path = `/${header.name}`;
    const base = posix.basename(path);
    if (base === '.wh..wh..opq') {
      changes.opaque.push(posix.dirname(path));
      await item.drain();
      continue;
    }
    if (base.startsWith('.wh..wh.')) {
      // AUFS bookkeeping (`.wh..wh.plnk` and the like), not a deletion.
      await item.drain();
      continue;
    }
    if (base.startsWith('.wh.')) {
      changes.whiteouts.push(posix.join(posix.dirname(path), base.slice('.wh.'.length)));
      await item.drain();
      continue;
    }
    const entry: FsEntry = {
      type: typeOf(header.type),
      mode: header.mode & 0o7777,
      uid: header.uid,
      gid: header.gid,
      size: 0,
    };
    let hardlinkTo: string | undefined;
    if (entry.type === 'file') {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of item.body) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      entry.size = size;
      entry.sha256 = hash.digest('hex');
      entry.inode = nextInode++;
    } else {
      await item.drain();
      if (entry.type === 'symlink') entry.linkTarget = header.linkname;
      if (entry.type === 'hardlink') {
        hardlinkTo = `/${header.linkname}`;
        entry.linkTarget = hardlinkTo;
      }
      if (entry.type === 'char' || entry.type === 'block') {
        entry.device = `${header.devmajor}:${header.devminor}`;
      }
    }
    changes.entries.push(hardlinkTo === undefined ? { path, entry } : { path, entry, hardlinkTo });
  }
  return changes;
}

function removeTree(files: Map<string, FsEntry>, path: string, keepSelf: boolean): void {
  if (!keepSelf) files.delete(path);
  const prefix = path === '/' ? '/' : `${path}/`;
  for (const key of [...files.keys()]) if (key.startsWith(prefix)) files.delete(key);
}

/** Applies one layer as Docker's applier does: whiteouts of lower content first, then entries. */
function applyLayer(files: Map<string, FsEntry>, changes: LayerChanges, where: string): void {
  // The OCI spec: whiteouts apply only to lower layers, so apply them before this layer's entries.
  for (const dir of changes.opaque) removeTree(files, dir, true);
  for (const path of changes.whiteouts) removeTree(files, path, false);
  for (const { path, entry, hardlinkTo } of changes.entries) {
    // Parents missing from the tar are created by the applier; note them as plain 0755 root dirs.
    for (let dir = posix.dirname(path); dir !== '/'; dir = posix.dirname(dir)) {
      const parent = files.get(dir);
      if (parent === undefined) files.set(dir, { type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 });
      else if (parent.type !== 'dir') throw new Error(`${where}: ${path} lies under non-directory ${dir}`);
    }
    const existing = files.get(path);
    // A directory over a directory only changes its metadata; anything else replaces the tree.
    if (existing !== undefined && !(existing.type === 'dir' && entry.type === 'dir')) {
      removeTree(files, path, false);
    }
    if (hardlinkTo !== undefined) {
      const target = files.get(hardlinkTo);
      if (target === undefined || (target.type !== 'file' && target.type !== 'hardlink')) {
        throw new Error(`${where}: hardlink ${path} → ${hardlinkTo}, which is not a regular file`);
      }
      // Content is the target's as of now: a later layer replacing the target breaks the link.
      entry.size = target.size;
      if (target.sha256 !== undefined) entry.sha256 = target.sha256;
      if (target.inode !== undefined) entry.inode = target.inode;
    }
    files.set(path, entry);
  }
}

/**
 * Reads a docker-archive and returns the flattened image. `tag` picks a manifest entry by its
 * RepoTags when the archive holds several images; otherwise the first one is used.
 */
export async function flattenDockerArchive(archive: string, tag?: string): Promise<FlatImage> {
  // Pass 1: the manifest and configs (small), and the archive's own symlinks. `docker save`
  // writes manifest.json last, so the layer order is only known after a full pass.
  const small = new Map<string, Buffer>();
  const links = new Map<string, string>();
  for await (const item of readTar(createReadStream(archive))) {
    const name = item.header.name;
    if (item.header.type === 'symlink') links.set(name, item.header.linkname);
    if (item.header.type === 'file' && item.header.size <= SMALL_FILE)
      small.set(name, await readAll(item.body));
    else await item.drain();
  }
  const manifestBytes = small.get('manifest.json');
  if (manifestBytes === undefined) throw new Error(`${archive}: no manifest.json (not a docker-archive)`);
  const manifest = parseManifest(manifestBytes, archive);
  const chosen =
    tag === undefined
      ? manifest[0]
      : manifest.find((m) => (m.RepoTags ?? []).some((t) => t === tag || t === `${tag}:latest`));
  if (chosen === undefined) throw new Error(`${archive}: no image ${tag ?? ''} in manifest.json`);
  const configBytes = small.get(resolveOuter(chosen.Config, links));
  if (configBytes === undefined) throw new Error(`${archive}: config ${chosen.Config} is missing`);
  const parsedConfig: unknown = JSON.parse(configBytes.toString('utf8'));
  if (!isRecord(parsedConfig)) throw new Error(`${archive}: config ${chosen.Config} is not an object`);
  const config = parsedConfig as ImageConfigFile;

  // Pass 2: each layer the manifest names, summarised as it streams past (in archive order).
  const layerNames = chosen.Layers.map((l) => resolveOuter(l, links));
  const wanted = new Set(layerNames);
  const summaries = new Map<string, LayerChanges>();
  for await (const item of readTar(createReadStream(archive))) {
    if (item.header.type === 'file' && wanted.has(item.header.name) && !summaries.has(item.header.name)) {
      summaries.set(item.header.name, await readLayer(item.body));
    } else {
      await item.drain();
    }
  }
  const files = new Map<string, FsEntry>();
  layerNames.forEach((name, i) => {
    const changes = summaries.get(name);
    if (changes === undefined) throw new Error(`${archive}: layer ${name} is missing`);
    applyLayer(files, changes, `${archive} layer ${i} (${name})`);
  });
  return { files, config, layerCount: layerNames.length };
}

/**
 * Reads a plain filesystem tar (what `docker export` writes) as a one-layer image with an empty
 * config: the reference a docker-archive's flattening can be checked against.
 */
export async function flattenTar(archive: string): Promise<FlatImage> {
  const files = new Map<string, FsEntry>();
  applyLayer(files, await readLayer(createReadStream(archive)), archive);
  return { files, config: {}, layerCount: 1 };
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** The config fields a Dockerfile controls; everything else (dates, history, IDs) may differ. */
export const COMPARED_CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'ExposedPorts',
  'Volumes',
  'Labels',
  'Healthcheck',
  'StopSignal',
  'Shell',
  'OnBuild',
] as const;

/** Fields where an empty map means the same as no map (Docker writes null, others may write {}). */
const MAP_FIELDS = new Set<string>(['ExposedPorts', 'Volumes', 'Labels']);

/** JSON with sorted object keys, so key order never counts as a difference. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/** Absent, null and "" are one thing for every field; {} too for the map-valued fields. */
function normalizeField(field: string, value: unknown): unknown {
  if (value === undefined || value === null || value === '') return null;
  if (MAP_FIELDS.has(field) && isRecord(value) && Object.keys(value).length === 0) return null;
  return value;
}

export function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** What a path is, as content: hardlinks count as the regular file they share an inode with. */
function contentType(entry: FsEntry): FsEntryType {
  return entry.type === 'hardlink' ? 'file' : entry.type;
}

/** For each multiply-linked inode, its paths; a path alone on its inode gets nothing. */
function linkGroups(files: ReadonlyMap<string, FsEntry>): Map<string, string> {
  const byInode = new Map<number, string[]>();
  for (const [path, entry] of files) {
    if (entry.inode === undefined) continue;
    const list = byInode.get(entry.inode) ?? [];
    list.push(path);
    byInode.set(entry.inode, list);
  }
  const groups = new Map<string, string>();
  for (const paths of byInode.values()) {
    if (paths.length < 2) continue;
    const label = [...paths].sort().join(', ');
    for (const path of paths) groups.set(path, label);
  }
  return groups;
}

function describe(entry: FsEntry): string {
  const what = entry.type === 'symlink' ? `symlink → ${entry.linkTarget ?? ''}` : entry.type;
  return `${what} ${octal(entry.mode)} ${entry.uid}:${entry.gid}`;
}

/**
 * Human-readable differences between two flattened images (empty when they match): every path,
 * type, mode, owner, content, symlink target, device number and hardlink grouping, and the
 * config fields a Dockerfile sets. `names` label the two sides in messages.
 */
export function compareImages(
  a: FlatImage,
  b: FlatImage,
  names: readonly [string, string] = ['a', 'b'],
): string[] {
  const [na, nb] = names;
  const out: string[] = [];
  const paths = [...new Set([...a.files.keys(), ...b.files.keys()])].sort();
  const groupsA = linkGroups(a.files);
  const groupsB = linkGroups(b.files);
  for (const path of paths) {
    const ea = a.files.get(path);
    const eb = b.files.get(path);
    if (ea === undefined || eb === undefined) {
      const [side, entry] = ea === undefined ? [nb, eb as FsEntry] : [na, ea];
      out.push(`${path}: only in ${side} (${describe(entry)})`);
      continue;
    }
    if (contentType(ea) !== contentType(eb)) {
      out.push(`${path}: type ${na}=${describe(ea)} ${nb}=${describe(eb)}`);
      continue;
    }
    if (ea.mode !== eb.mode) out.push(`${path}: mode ${na}=${octal(ea.mode)} ${nb}=${octal(eb.mode)}`);
    if (ea.uid !== eb.uid || ea.gid !== eb.gid) {
      out.push(`${path}: owner ${na}=${ea.uid}:${ea.gid} ${nb}=${eb.uid}:${eb.gid}`);
    }
    if (ea.sha256 !== eb.sha256 || ea.size !== eb.size) {
      out.push(
        `${path}: content ${na}=${ea.size} bytes sha256:${(ea.sha256 ?? '').slice(0, 12)} ` +
          `${nb}=${eb.size} bytes sha256:${(eb.sha256 ?? '').slice(0, 12)}`,
      );
    }
    if (ea.type === 'symlink' && ea.linkTarget !== eb.linkTarget) {
      out.push(`${path}: symlink target ${na}=${ea.linkTarget ?? ''} ${nb}=${eb.linkTarget ?? ''}`);
    }
    if (ea.device !== eb.device)
      out.push(`${path}: device ${na}=${ea.device ?? ''} ${nb}=${eb.device ?? ''}`);
    const ga = groupsA.get(path) ?? '(none)';
    const gb = groupsB.get(path) ?? '(none)';
    if (ga !== gb) out.push(`${path}: hardlinked with ${na}=[${ga}] ${nb}=[${gb}]`);
  }
  const ca = a.config.config ?? {};
  const cb = b.config.config ?? {};
  for (const field of COMPARED_CONFIG_FIELDS) {
    const va = canonical(normalizeField(field, ca[field]));
    const vb = canonical(normalizeField(field, cb[field]));
    if (va !== vb) out.push(`config.${field}: ${na}=${va} ${nb}=${vb}`);
  }
  // MAINTAINER writes the top-level `author`, outside `config`.
  const author = (image: FlatImage) => canonical(normalizeField('author', image.config.author));
  if (author(a) !== author(b)) out.push(`author: ${na}=${author(a)} ${nb}=${author(b)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Expectations (expect.json): what a case is meant to show, checked against one flattened image.

export interface ExpectedEntry {
  type?: FsEntryType;
  /** Octal string, e.g. "0755" or "4755". */
  mode?: string;
  uid?: number;
  gid?: number;
  /** Exact UTF-8 content of a file (or of a hardlink's target). */
  content?: string;
  linkTarget?: string;
}

export interface Expectations {
  /** Paths that must exist, with the properties given (the others are not checked). */
  entries?: Record<string, ExpectedEntry>;
  /** Paths that must not exist. */
  absent?: string[];
  /** Config fields that must equal these values (after the same normalization as compareImages). */
  config?: Partial<Record<(typeof COMPARED_CONFIG_FIELDS)[number], unknown>>;
  /** The image's top-level `author` (MAINTAINER). */
  author?: string;
  /** Free text: what the case demonstrates (not checked). */
  note?: string;
}

export function parseExpectations(text: string, source: string): Expectations {
  const parsed: unknown = JSON.parse(text);
  if (!isRecord(parsed)) throw new Error(`${source}: not a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!['entries', 'absent', 'config', 'author', 'note'].includes(key))
      throw new Error(`${source}: unknown key ${key}`);
  }
  return parsed as Expectations;
}

/** Differences between an image and what expect.json says it must contain (empty when it does). */
export function checkExpectations(image: FlatImage, expect: Expectations): string[] {
  const out: string[] = [];
  for (const [path, want] of Object.entries(expect.entries ?? {})) {
    const got = image.files.get(path);
    if (got === undefined) {
      out.push(`${path}: missing (expected ${want.type ?? 'an entry'})`);
      continue;
    }
    if (want.type !== undefined && want.type !== got.type)
      out.push(`${path}: type ${got.type}, expected ${want.type}`);
    if (want.mode !== undefined && parseInt(want.mode, 8) !== got.mode) {
      out.push(`${path}: mode ${octal(got.mode)}, expected ${want.mode}`);
    }
    if (want.uid !== undefined && want.uid !== got.uid)
      out.push(`${path}: uid ${got.uid}, expected ${want.uid}`);
    if (want.gid !== undefined && want.gid !== got.gid)
      out.push(`${path}: gid ${got.gid}, expected ${want.gid}`);
    if (want.content !== undefined) {
      const sha = createHash('sha256').update(want.content, 'utf8').digest('hex');
      if (got.sha256 !== sha) out.push(`${path}: content differs from ${JSON.stringify(want.content)}`);
    }
    if (want.linkTarget !== undefined && want.linkTarget !== got.linkTarget) {
      out.push(`${path}: link target ${got.linkTarget ?? '(none)'}, expected ${want.linkTarget}`);
    }
  }
  for (const path of expect.absent ?? []) {
    if (image.files.has(path)) out.push(`${path}: present, expected absent`);
  }
  const config = image.config.config ?? {};
  for (const [field, want] of Object.entries(expect.config ?? {})) {
    const got = canonical(normalizeField(field, config[field]));
    const expected = canonical(normalizeField(field, want));
    if (got !== expected) out.push(`config.${field}: ${got}, expected ${expected}`);
  }
  if (expect.author !== undefined && (image.config.author ?? '') !== expect.author) {
    out.push(
      `author: ${JSON.stringify(image.config.author ?? '')}, expected ${JSON.stringify(expect.author)}`,
    );
  }
  return out;
}
