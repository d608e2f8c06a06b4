/**
 * COPY and ADD: choosing the source files (`selectCopySources`) and writing them into a step's
 * root filesystem (`applyCopy`), with BuildKit's semantics; `fetchRemote` for `ADD <url>`.
 *
 * Decisions where Docker's documentation leaves room (BuildKit's behaviour unless said):
 * - Sources never leave their root: `..` is cleaned at the root and absolute sources start at
 *   it. A source operand that is a symlink is followed (inside the root, like BuildKit's
 *   FollowSymlinks for Dockerfile copies); symlinks met inside a copied directory are copied as
 *   symlinks. The destination name is the operand's own basename, not its target's.
 * - Relative `--from` sources are relative to `/` of the source image (BuildKit), unless the
 *   caller passes `workdirForFromSources`.
 * - A destination ending in `/`, `.` or `..` is a directory and is created (mode 0755) before
 *   anything is copied; otherwise a destination that exists as a directory (after following
 *   symlinks inside the target root) receives the operands, and anything else is the name the
 *   single operand is copied to. Parent directories created on the way are 0755 and owned by the
 *   `--chown` owner when there is one (BuildKit's MkdirAll gets the chown option), else root;
 *   `--chmod` does not apply to them.
 * - More than one operand (several sources, or one wildcard matching several) into a
 *   destination that is neither directory syntax nor an existing directory is an error.
 * - A directory operand's contents go into the destination. If the destination directory is
 *   created by the copy it takes the source directory's mode, owner rule and mtime; an existing
 *   directory keeps its metadata and is merged into. Inside the tree, an existing symlink where
 *   the source has a directory is followed when it resolves (inside the target root) to a
 *   directory — so `COPY rootfs/ /` works on usr-merged images — and anything else there is the
 *   error "cannot copy to non-directory". A non-directory replaces a file or symlink (the
 *   symlink itself, never its target) but not a directory ("cannot replace directory … with
 *   file", as BuildKit's copier refuses it).
 * - Owners: 0:0 for context sources, the source's uid/gid for `--from` sources and local
 *   archives, the `--chown` owner for everything when given. Modes and mtimes are kept;
 *   `--chmod` (octal or symbolic, `X` meaning "x if a directory or already executable by
 *   someone") replaces the permission bits of every copied file and directory. A symbolic clause
 *   without `ugoa` means `a` (no umask: the result must not depend on the builder's umask).
 * - `--exclude` patterns are matched against paths relative to each directory operand, and
 *   against the basename of operands that a wildcard matched (so `--exclude=*.txt *` skips
 *   top-level .txt files); an operand named literally is never excluded by its own name.
 * - `--parents` keeps each operand's path below the context root, or below a `/./` pivot in the
 *   source; the directories on that path are created with their source metadata when missing.
 * - ADD of a local file whose content (after gzip, zstd, bzip2 or xz decompression) starts with
 *   a valid tar header is extracted into the destination directory; it is first unpacked into a
 *   scratch directory by the safe extractor and then copied in with the same rules as a
 *   directory operand, so `--chown`, `--chmod`, merging and destination symlinks behave alike.
 * - Sockets cannot be recreated meaningfully and are skipped; fifos and device nodes are
 *   recreated.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type Dirent } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import {
  chmod,
  copyFile,
  lchown,
  link,
  lstatIfExists,
  lstat,
  lstatSource,
  lutimes,
  mkdir,
  readdir,
  readlink,
  statSource,
  symlink,
  unlink,
  utimes,
  type SourceStats,
} from './fastfs.js';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { DETECT_BYTES, decompressStream, detectArchiveCompression } from '../archive/compression.js';
import type { ArchiveCompression } from '../archive/compression.js';
import { extractTar } from '../archive/extract.js';
import { mknod } from '../archive/native.js';
import { cleanPath, PatternMatcher } from '../dockerfile/dockerignore.js';
import { compareNames } from '../dockerfile/context.js';
import { StrataError, errnoCode, isStrataError } from '../errors.js';
import { resolveInRoot, type Owner } from './users.js';
import { Agent, fetch as undiciFetch } from 'undici';
import type { CopyTarget } from './layer-tree.js';

export type { Owner } from './users.js';

// ---------------------------------------------------------------------------------------------
// Selecting sources
// ---------------------------------------------------------------------------------------------

/** One selected file, directory, symlink or special file. */
export interface CopySourceEntry {
  hostPath: string;
  /** Slash-separated path relative to the copied operand ('' = the operand itself). */
  relPath: string;
  /** lstat of hostPath (for the operand itself: of the symlink's resolved target). */
  stats: SourceStats;
  linkTarget?: string;
}

export interface SelectedOperand {
  /** The source as written in the instruction. */
  operand: string;
  isDirectory: boolean;
  /**
   * For a directory: the directory itself (relPath '') then its contents recursively, each
   * directory before its contents, names in byte order. For anything else: one entry, relPath ''.
   */
  entries: CopySourceEntry[];
  /**
   * Where the operand goes below a directory destination: its basename, or with `--parents` its
   * path below the pivot (slash-separated, possibly '' for the root itself).
   */
  destName: string;
  /** `--parents`: the source directories from the pivot down to the operand's parent. */
  parentDirs?: CopySourceEntry[];
  /** Keep the source uid/gid when no `--chown` is given (`--from` sources and archives). */
  preserveOwnership: boolean;
}

export interface SelectOptions {
  /** The build context directory, or the root filesystem of a `--from` stage or image. */
  root: string;
  sourceIsContext: boolean;
  /** Sources after word expansion; may contain `*`, `?` and `[...]` per path component. */
  sources: string[];
  /** `COPY --exclude` patterns (.dockerignore syntax), relative to each operand. */
  exclude?: string[];
  /** True when `.dockerignore` leaves out the context-relative path (context only). */
  ignore?: (relPath: string) => boolean;
  /**
   * For an ignored directory: true when nothing below it can be re-included by a `!` pattern,
   * so it need not be walked (`PatternMatcher.canSkipDirectory`). Without it ignored
   * directories are walked to find re-included contents.
   */
  canSkipIgnoredDirectory?: (relPath: string) => boolean;
  parents?: boolean;
  /** Base of relative `--from` sources; BuildKit uses `/`, which is the default. */
  workdirForFromSources?: string;
}

/** BuildKit's wildcard test: an unescaped `*`, `?` or `[`. */
export function containsWildcards(path: string): boolean {
  for (let index = 0; index < path.length; index++) {
    const char = path[index];
    if (char === '\\') index++;
    else if (char === '*' || char === '?' || char === '[') return true;
  }
  return false;
}

/**
 * Go's `filepath.Match` for one path component, compiled to a RegExp.
 * @throws StrataError INVALID_ARGUMENT for a malformed pattern (Go's ErrBadPattern).
 */
export function compileComponentGlob(pattern: string): RegExp {
  const chars = Array.from(pattern);
  const codePoint = (char: string): string => `\\u{${(char.codePointAt(0) ?? 0).toString(16)}}`;
  const bad = (): StrataError =>
    new StrataError('INVALID_ARGUMENT', `bad source pattern ${JSON.stringify(pattern)}: syntax error`);
  let source = '^';
  for (let index = 0; index < chars.length; index++) {
    const char = chars[index] as string;
    if (char === '*') {
      source += '[^/]*';
    } else if (char === '?') {
      source += '[^/]';
    } else if (char === '\\') {
      index++;
      const escaped = chars[index];
      if (escaped === undefined) throw bad();
      source += codePoint(escaped);
    } else if (char === '[') {
      index++;
      let negated = false;
      if (chars[index] === '^') {
        negated = true;
        index++;
      }
      const ranges: string[] = [];
      const classChar = (): string => {
        let value = chars[index];
        if (value === undefined || value === '-' || value === ']') throw bad();
        if (value === '\\') {
          index++;
          value = chars[index];
          if (value === undefined) throw bad();
        }
        index++;
        return value;
      };
      while (!(chars[index] === ']' && ranges.length > 0)) {
        if (index >= chars.length) throw bad();
        const low = classChar();
        let high = low;
        if (chars[index] === '-') {
          index++;
          high = classChar();
        }
        if ((low.codePointAt(0) ?? 0) > (high.codePointAt(0) ?? 0)) throw bad();
        ranges.push(`${codePoint(low)}-${codePoint(high)}`);
      }
      // `index` is on the closing `]`; the for loop steps past it.
      source += negated ? `(?:(?![${ranges.join('')}])[^/])` : `[${ranges.join('')}]`;
    } else {
      source += codePoint(char);
    }
  }
  return new RegExp(`${source}$`, 'u');
}

function notFoundError(source: string, sourceIsContext: boolean): StrataError {
  const where = sourceIsContext ? 'in build context or excluded by .dockerignore' : 'in the source image';
  return new StrataError('NOT_FOUND', `COPY failed: "${source}" not found ${where}`);
}

/** The source split at a `/./` pivot (`--parents`): the part above it and the part below. */
function splitPivot(source: string): { pivot: string; rest: string } {
  const at = source.indexOf('/./');
  if (at < 0) return { pivot: '', rest: source };
  return { pivot: source.slice(0, at), rest: source.slice(at + 3) };
}

/** Root-relative, cleaned, without leading slash ('' = the root). */
function rootRelative(base: string, path: string): string {
  const cleaned = cleanPath(posix.join('/', base, path));
  return cleaned === '/' ? '' : cleaned.slice(1);
}

/** Where a walk hands the entries it keeps. */
export interface EntrySink {
  add(entry: CopySourceEntry): void;
}

/** Hands `entry` to the sink after the hidden directories still waiting above it. */
function keep(entry: CopySourceEntry, sink: EntrySink, pending: CopySourceEntry[]): void {
  for (const directory of pending.splice(0)) sink.add(directory);
  sink.add(entry);
}

class SourceSelector {
  readonly #options: SelectOptions;
  readonly #excludes: PatternMatcher | undefined;
  readonly #keptBelow = new Map<string, boolean>();
  readonly #sinkFor: ((operand: SelectedOperand) => EntrySink) | undefined;

  constructor(options: SelectOptions, sinkFor?: (operand: SelectedOperand) => EntrySink) {
    this.#options = options;
    this.#sinkFor = sinkFor;
    this.#excludes =
      options.exclude !== undefined && options.exclude.length > 0
        ? new PatternMatcher(options.exclude)
        : undefined;
  }

  get #root(): string {
    return this.#options.root;
  }

  #ignored(contextPath: string): boolean {
    if (!this.#options.sourceIsContext || this.#options.ignore === undefined || contextPath === '')
      return false;
    return this.#options.ignore(contextPath);
  }

  /** The host path's position below the root ('' = the root). */
  #relativeToRoot(hostPath: string): string {
    const relative = posix.relative(this.#root, hostPath);
    return relative === '' ? '' : relative;
  }

  /**
   * Whether a context path exists in the context as BuildKit receives it: not ignored, or an
   * ignored directory holding something re-included.
   */
  async #visible(contextPath: string, stats: { isDirectory(): boolean }): Promise<boolean> {
    if (!this.#ignored(contextPath)) return true;
    if (!stats.isDirectory()) return false;
    return this.#hasKeptDescendant(contextPath);
  }

  async #hasKeptDescendant(contextDir: string): Promise<boolean> {
    const cached = this.#keptBelow.get(contextDir);
    if (cached !== undefined) return cached;
    let found = false;
    if (!(this.#options.canSkipIgnoredDirectory?.(contextDir) ?? false)) {
      for (const name of await readdir(posix.join(this.#root, contextDir))) {
        const child = posix.join(contextDir, name);
        const childStats = await lstat(posix.join(this.#root, child));
        if (await this.#visible(child, childStats)) {
          found = true;
          break;
        }
      }
    }
    this.#keptBelow.set(contextDir, found);
    return found;
  }

  /** Every visible directory below `candidate` (not following symlinks), depth first, sorted. */
  async #directoriesBelow(candidate: string): Promise<string[]> {
    const found: string[] = [];
    const directory = await resolveInRoot(this.#root, candidate);
    let entries: Dirent[];
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return found;
      throw err;
    }
    for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => compareNames(a.name, b.name))) {
      const path = posix.join(candidate, entry.name);
      const stats = await statOrUndefined(join(directory, entry.name));
      if (
        stats === undefined ||
        !(await this.#visible(this.#relativeToRoot(join(directory, entry.name)), stats))
      )
        continue;
      found.push(path, ...(await this.#directoriesBelow(path)));
    }
    return found;
  }

  /** The root-relative paths (as written, symlinks not yet followed) a source names. */
  async #expand(relativePath: string): Promise<string[]> {
    if (!containsWildcards(relativePath)) return [relativePath];
    let candidates = [''];
    for (const component of relativePath.split('/')) {
      if (!containsWildcards(component)) {
        candidates = candidates.map((candidate) => posix.join(candidate, component));
        continue;
      }
      if (component === '**') {
        // Any depth, including none: each candidate and every visible directory below it.
        const next: string[] = [];
        for (const candidate of candidates)
          next.push(candidate, ...(await this.#directoriesBelow(candidate)));
        candidates = next;
        continue;
      }
      const glob = compileComponentGlob(component);
      const next: string[] = [];
      for (const candidate of candidates) {
        const directory = await resolveInRoot(this.#root, candidate);
        let names: string[];
        try {
          names = await readdir(directory);
        } catch (err) {
          const code = errnoCode(err);
          if (code === 'ENOENT' || code === 'ENOTDIR') continue;
          throw err;
        }
        for (const name of names.filter((entry) => glob.test(entry)).sort(compareNames)) {
          const path = posix.join(candidate, name);
          const hostPath = await resolveInRoot(this.#root, path);
          const stats = await statOrUndefined(hostPath);
          if (stats === undefined) continue;
          if (!(await this.#visible(this.#relativeToRoot(hostPath), stats))) continue;
          next.push(path);
        }
      }
      candidates = next;
    }
    // Literal components after a wildcard may name nothing for some of the matched directories.
    const existing: string[] = [];
    for (const candidate of candidates) {
      const hostPath = await resolveInRoot(this.#root, candidate);
      const stats = await statOrUndefined(hostPath);
      if (stats !== undefined && (await this.#visible(this.#relativeToRoot(hostPath), stats)))
        existing.push(candidate);
    }
    return existing;
  }

  async select(): Promise<SelectedOperand[]> {
    const operands: SelectedOperand[] = [];
    for (const source of this.#options.sources) {
      const base = this.#options.sourceIsContext ? '/' : (this.#options.workdirForFromSources ?? '/');
      const { pivot, rest } = this.#options.parents ? splitPivot(source) : { pivot: '', rest: source };
      const pivotPath = rootRelative(base, pivot);
      const wildcard = containsWildcards(rest);
      const matches = await this.#expand(rootRelative(posix.join(base, pivot), rest));
      if (matches.length === 0) {
        if (wildcard) {
          throw new StrataError(
            'NOT_FOUND',
            `COPY failed: no source files were specified (nothing matches "${source}")`,
          );
        }
        throw notFoundError(source, this.#options.sourceIsContext);
      }
      for (const match of matches) {
        const operand = await this.#operand(source, match, pivotPath, wildcard);
        if (operand !== undefined) operands.push(operand);
      }
    }
    return operands;
  }

  async #operand(
    source: string,
    match: string,
    pivotPath: string,
    wildcard: boolean,
  ): Promise<SelectedOperand | undefined> {
    const hostPath = await resolveInRoot(this.#root, match);
    const stats = await statOrUndefined(hostPath);
    const contextPath = this.#relativeToRoot(hostPath);
    if (stats === undefined || !(await this.#visible(contextPath, stats))) {
      throw notFoundError(source, this.#options.sourceIsContext);
    }
    const baseName = match === '' ? '' : posix.basename(match);
    if (wildcard && this.#excludes?.matches(baseName)) return undefined;
    const preserveOwnership = !this.#options.sourceIsContext;
    const operand: SelectedOperand = {
      operand: source,
      isDirectory: stats.isDirectory(),
      entries: [],
      destName: baseName,
      preserveOwnership,
    };
    const entries = operand.entries;
    const sink = this.#sinkFor?.(operand) ?? { add: (entry: CopySourceEntry) => entries.push(entry) };
    sink.add({ hostPath, relPath: '', stats });
    if (stats.isDirectory()) await this.#walk(hostPath, contextPath, '', sink, []);
    if (this.#options.parents) {
      const belowPivot = pivotPath === '' ? match : posix.relative(pivotPath, match);
      operand.destName = belowPivot;
      operand.parentDirs = [];
      const segments = belowPivot === '' ? [] : belowPivot.split('/').slice(0, -1);
      for (let count = 1; count <= segments.length; count++) {
        const relPath = segments.slice(0, count).join('/');
        const dirHost = await resolveInRoot(this.#root, posix.join(pivotPath, relPath));
        operand.parentDirs.push({ hostPath: dirHost, relPath, stats: await statSource(dirHost) });
      }
    }
    return operand;
  }

  /**
   * Hands the kept entries below `dirHost` to `sink`, each directory before its contents, names in
   * byte order. A hidden directory waits on `pending` (outermost first) and is handed over only
   * when something inside it is kept (fsutil copies it then).
   */
  async #walk(
    dirHost: string,
    contextDir: string,
    relDir: string,
    sink: EntrySink,
    pending: CopySourceEntry[],
  ): Promise<void> {
    const names = (await readdir(dirHost)).sort(compareNames);
    for (const name of names) {
      // Plain concatenation: dirHost is already clean and a name has no slash (posix.join
      // normalizes the whole path again, for every file).
      const hostPath = `${dirHost}/${name}`;
      const relPath = relDir === '' ? name : `${relDir}/${name}`;
      const contextPath = contextDir === '' ? name : `${contextDir}/${name}`;
      const stats = await lstatSource(hostPath);
      const hidden = this.#ignored(contextPath) || (this.#excludes?.matches(relPath) ?? false);
      if (stats.isDirectory()) {
        if (hidden && !this.#mayHoldKeptEntries(contextPath, relPath)) continue;
        const entry: CopySourceEntry = { hostPath, relPath, stats };
        if (hidden) {
          pending.push(entry);
          await this.#walk(hostPath, contextPath, relPath, sink, pending);
          // Still waiting: nothing inside was kept.
          if (pending.at(-1) === entry) pending.pop();
        } else {
          keep(entry, sink, pending);
          await this.#walk(hostPath, contextPath, relPath, sink, pending);
        }
        continue;
      }
      if (hidden) continue;
      const entry: CopySourceEntry = { hostPath, relPath, stats };
      if (stats.isSymbolicLink()) entry.linkTarget = await readlink(hostPath);
      keep(entry, sink, pending);
    }
  }

  #mayHoldKeptEntries(contextPath: string, relPath: string): boolean {
    if (this.#ignored(contextPath) && (this.#options.canSkipIgnoredDirectory?.(contextPath) ?? false))
      return false;
    if (this.#excludes?.matches(relPath) && !this.#excludes.hasExclusions()) return false;
    return true;
  }
}

async function statOrUndefined(path: string): Promise<SourceStats | undefined> {
  try {
    return await statSource(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw err;
  }
}

/**
 * The operands a COPY/ADD copies, in source order, each with its entries. Errors: a literal
 * source that does not exist (or is excluded by .dockerignore) is NOT_FOUND naming it, a
 * wildcard that matches nothing is NOT_FOUND "no source files were specified".
 */
export async function selectCopySources(options: SelectOptions): Promise<SelectedOperand[]> {
  return newSelector(options).select();
}

function newSelector(
  options: SelectOptions,
  sinkFor?: (operand: SelectedOperand) => EntrySink,
): SourceSelector {
  if (options.sources.length === 0) {
    throw new StrataError('INVALID_ARGUMENT', 'COPY failed: no source files were specified');
  }
  return new SourceSelector(options, sinkFor);
}

/**
 * Walks the sources exactly as selectCopySources does, but hands each operand's entries to the
 * sink `sinkFor` gives for it instead of keeping them (the operands come back with no entries):
 * for a cache key of a large context without holding one record per file.
 */
export async function walkCopySources(
  options: SelectOptions,
  sinkFor: (operand: SelectedOperand) => EntrySink,
): Promise<SelectedOperand[]> {
  return newSelector(options, sinkFor).select();
}

// ---------------------------------------------------------------------------------------------
// --chmod
// ---------------------------------------------------------------------------------------------

/** A `--chmod` value compiled to a function of (current mode, is a directory). */
export type ModeChange = (mode: number, isDirectory: boolean) => number;

const PERMISSION_MASK = 0o7777;

/**
 * Parses `--chmod`: octal (`755`, `0644`, up to 4 digits) or chmod(1) symbolic clauses
 * (`u+x,g-w,o=`, `a=rX`, `go=u`).
 * @throws StrataError INVALID_ARGUMENT for anything else.
 */
export function parseChmod(spec: string): ModeChange {
  const invalid = (): StrataError => new StrataError('INVALID_ARGUMENT', `invalid --chmod value "${spec}"`);
  if (/^[0-7]{1,4}$/.test(spec)) {
    const fixed = parseInt(spec, 8);
    return () => fixed;
  }
  if (spec === '') throw invalid();
  const clauses = spec.split(',').map((clause) => {
    const match = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/.exec(clause);
    if (match === null) throw invalid();
    const who = match[1] ?? '';
    const actions = [...(match[2] ?? '').matchAll(/([-+=])([ugo]|[rwxXst]*)/g)].map((action) => ({
      op: action[1] as '+' | '-' | '=',
      perms: action[2] ?? '',
    }));
    return { who: who === '' || who.includes('a') ? 'ugo' : who, actions };
  });
  return (mode, isDirectory) => {
    let result = mode & PERMISSION_MASK;
    for (const { who, actions } of clauses) {
      let whoMask = 0;
      if (who.includes('u')) whoMask |= 0o4700;
      if (who.includes('g')) whoMask |= 0o2070;
      if (who.includes('o')) whoMask |= 0o0007;
      for (const { op, perms } of actions) {
        let bits = 0;
        if (/^[ugo]$/.test(perms)) {
          // Copy another class's rwx bits (chmod's `g=u`).
          const shift = perms === 'u' ? 6 : perms === 'g' ? 3 : 0;
          const rwx = (result >> shift) & 0o7;
          bits = rwx * 0o111;
        } else {
          for (const perm of perms) {
            if (perm === 'r') bits |= 0o444;
            else if (perm === 'w') bits |= 0o222;
            else if (perm === 'x') bits |= 0o111;
            else if (perm === 'X') {
              if (isDirectory || (result & 0o111) !== 0) bits |= 0o111;
            } else if (perm === 's') bits |= 0o6000;
            else if (perm === 't') bits |= 0o1000;
          }
        }
        // The sticky bit is nobody's class but applies with `o` or `a`, as in chmod(1).
        const mask = whoMask | (who.includes('o') ? 0o1000 : 0);
        bits &= mask;
        if (op === '+') result |= bits;
        else if (op === '-') result &= ~bits;
        else result = (result & ~mask) | bits;
      }
    }
    return result & PERMISSION_MASK;
  };
}

// ---------------------------------------------------------------------------------------------
// Applying a copy
// ---------------------------------------------------------------------------------------------

export interface ApplyOptions {
  /** The step's root filesystem (the overlay's merged directory). */
  targetRoot: string;
  /** The destination as written (after expansion); relative means relative to `workdir`. */
  dest: string;
  workdir: string;
  owner?: Owner;
  /** `--chmod`: octal (`755`) or symbolic (`u+x,g-w`). */
  chmod?: string;
  parents?: boolean;
  /** ADD: local tar archives (any supported compression, detected by content) are extracted. */
  add?: boolean;
  /** Heredoc files: created with mode 0644 (or `--chmod`). */
  inline?: Array<{ path: string; data: string }>;
  /** mtime of heredoc files (seconds); default: now. */
  sourceDateEpoch?: number;
  /** Where ADD unpacks archives before copying them in; default the OS temp directory. */
  scratchDir?: string;
  /**
   * Where the files go; default the disk below `targetRoot`. A LayerTree (whose root is
   * `targetRoot`) records them instead and reads their sources later: ADD's unpacked archives
   * then stay in `scratchDir` until the caller removes it.
   */
  target?: CopyTarget;
}

interface DeferredDirectory {
  path: string;
  mode: number;
  mtime: Date;
}

/**
 * An absolute, cleaned path inside the image: `..` stops at `/`. Every image path is made this
 * way, so that taking its dirname and basename can never produce `..`.
 */
function imagePath(base: string, path: string): string {
  return cleanPath(path.startsWith('/') ? path : `/${base}/${path}`);
}

/** Whether the destination as written names a directory (`dir/`, `.`, `..`, `dir/.`). */
function isDirectorySyntax(dest: string): boolean {
  if (dest === '' || dest.endsWith('/')) return true;
  const last = dest.slice(dest.lastIndexOf('/') + 1);
  return last === '.' || last === '..';
}

class CopyWriter {
  readonly #options: ApplyOptions;
  readonly #modeChange: ModeChange | undefined;
  readonly #deferred: DeferredDirectory[] = [];
  /** Placing the contents of an ADD archive (see #placeDirectory). */
  #extracting = false;
  /** Source inode → destination path, so hard links between copied files stay hard links. */
  readonly #linked = new Map<string, string>();

  readonly #target: CopyTarget;

  constructor(options: ApplyOptions) {
    this.#options = options;
    this.#target = options.target ?? diskTarget;
    this.#modeChange = options.chmod === undefined ? undefined : parseChmod(options.chmod);
  }

  get #root(): string {
    return this.#options.targetRoot;
  }

  /** The last line of defence: nothing is ever created at or above the target root itself. */
  #assertInside(hostPath: string): void {
    const relative = posix.relative(this.#root, hostPath);
    if (relative === '' || relative === '..' || relative.startsWith('../') || posix.isAbsolute(relative)) {
      throw new StrataError('UNSAFE_PATH', `refusing to write ${hostPath}: outside ${this.#root}`);
    }
  }

  /** An image path for messages. */
  #imagePath(hostPath: string): string {
    return `/${posix.relative(this.#root, hostPath)}`;
  }

  #ownerFor(stats: SourceStats, preserveOwnership: boolean): Owner {
    if (this.#options.owner !== undefined) return this.#options.owner;
    return preserveOwnership ? { uid: stats.uid, gid: stats.gid } : { uid: 0, gid: 0 };
  }

  #modeFor(stats: SourceStats): number {
    const mode = stats.mode & PERMISSION_MASK;
    return this.#modeChange === undefined ? mode : this.#modeChange(mode, stats.isDirectory());
  }

  /**
   * Makes `directory` (absolute inside the image) an existing directory, following symlinks
   * inside the root and creating what is missing as 0755 owned by the `--chown` owner or root.
   * Returns its host path.
   */
  async #ensureDirectory(directory: string): Promise<string> {
    const resolved = await resolveInRoot(this.#root, directory, this.#target);
    const relative = posix.relative(this.#root, resolved);
    let current = this.#root;
    const owner = this.#options.owner ?? { uid: 0, gid: 0 };
    for (const component of relative === '' ? [] : relative.split('/')) {
      current = posix.join(current, component);
      const existing = await this.#target.lstat(current);
      if (existing === undefined) {
        await this.#target.mkdir(current, 0o755);
        await this.#target.chmod(current, 0o755);
        await this.#target.lchown(current, owner.uid, owner.gid);
        if (this.#options.sourceDateEpoch !== undefined) {
          // Set at the end: writing into it now would move its mtime again.
          this.#deferred.push({
            path: current,
            mode: 0o755,
            mtime: new Date(this.#options.sourceDateEpoch * 1000),
          });
        }
      } else if (!existing.isDirectory()) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `cannot copy to non-directory: ${this.#imagePath(current)}`,
        );
      }
    }
    return resolved;
  }

  async run(operands: SelectedOperand[]): Promise<void> {
    const options = this.#options;
    const destImagePath = imagePath(options.workdir, options.dest);
    const inline = options.inline ?? [];
    const operandCount = operands.length + inline.length;
    const destHost = await resolveInRoot(this.#root, destImagePath, this.#target);
    const destExists = await this.#target.lstat(destHost);
    let destIsDirectory = isDirectorySyntax(options.dest) || options.parents === true;
    if (!destIsDirectory && destExists?.isDirectory()) destIsDirectory = true;
    if (operandCount > 1 && !destIsDirectory) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        'When using COPY with more than one source file, the destination must be a directory and end with a /',
      );
    }
    // BuildKit creates a directory-syntax destination up front (MkdirAll with the chown owner).
    if (isDirectorySyntax(options.dest) || options.parents === true)
      await this.#ensureDirectory(destImagePath);

    for (const operand of operands) {
      if (options.add && !operand.isDirectory && operand.entries[0]?.stats.isFile()) {
        const compression = await tarArchiveCompression(operand.entries[0].hostPath);
        if (compression !== undefined) {
          await this.#extractArchive(operand, compression, destImagePath);
          continue;
        }
      }
      await this.#copyOperand(operand, destImagePath, destIsDirectory);
    }
    for (const file of inline) await this.#writeInline(file, destImagePath, destIsDirectory);
    await this.#finish();
  }

  async #copyOperand(
    operand: SelectedOperand,
    destImagePath: string,
    destIsDirectory: boolean,
  ): Promise<void> {
    const top = operand.entries[0];
    if (top === undefined) return;
    let targetImagePath: string;
    if (operand.isDirectory) {
      targetImagePath =
        this.#options.parents === true ? imagePath(destImagePath, operand.destName) : destImagePath;
    } else {
      targetImagePath = destIsDirectory ? imagePath(destImagePath, operand.destName) : destImagePath;
    }
    const parentImagePath = posix.dirname(targetImagePath);
    if (this.#options.parents === true && operand.parentDirs !== undefined) {
      await this.#createParents(destImagePath, operand);
    }
    const parentHost = await this.#ensureDirectory(parentImagePath);
    const directories = new Map<string, string>();
    // The operand's own target: a directory operand whose target already is a directory merges.
    const targetHost =
      targetImagePath === '/' ? this.#root : posix.join(parentHost, posix.basename(targetImagePath));
    if (operand.isDirectory) {
      directories.set('', await this.#placeDirectory(top, targetHost, operand.preserveOwnership));
    } else {
      await this.#placeNonDirectory(top, targetHost, operand.preserveOwnership);
    }
    for (const entry of operand.entries.slice(1)) {
      const parentRel = entry.relPath.includes('/')
        ? entry.relPath.slice(0, entry.relPath.lastIndexOf('/'))
        : '';
      const parentDir = directories.get(parentRel);
      if (parentDir === undefined) {
        throw new StrataError('INTERNAL', `copy entry ${entry.relPath} comes before its directory`);
      }
      const target = posix.join(parentDir, posix.basename(entry.relPath));
      if (entry.stats.isDirectory()) {
        directories.set(entry.relPath, await this.#placeDirectory(entry, target, operand.preserveOwnership));
      } else {
        await this.#placeNonDirectory(entry, target, operand.preserveOwnership);
      }
    }
  }

  /** `--parents`: the source directories between the pivot and the operand, when missing. */
  async #createParents(destImagePath: string, operand: SelectedOperand): Promise<void> {
    let parentHost = await this.#ensureDirectory(destImagePath);
    for (const dir of operand.parentDirs ?? []) {
      parentHost = await this.#placeDirectory(
        dir,
        posix.join(parentHost, posix.basename(dir.relPath)),
        operand.preserveOwnership,
      );
    }
  }

  /**
   * Makes `target` a directory for `entry`: created with the entry's metadata (applied at the
   * end), or an existing directory (or symlink resolving to one inside the root) merged into.
   * Returns the host directory the entry's contents go into.
   */
  async #placeDirectory(entry: CopySourceEntry, target: string, preserveOwnership: boolean): Promise<string> {
    // Merging into the root itself is fine (`COPY dir/ /`); creating anything above it is not.
    if (target !== this.#root) this.#assertInside(target);
    const existing = await this.#target.lstat(target);
    if (existing === undefined) {
      // Owner-writable until the end, so a read-only source directory can still be filled.
      await this.#target.mkdir(target, 0o700);
      const owner = this.#ownerFor(entry.stats, preserveOwnership);
      await this.#target.lchown(target, owner.uid, owner.gid);
      this.#deferred.push({ path: target, mode: this.#modeFor(entry.stats), mtime: entry.stats.mtime });
      return target;
    }
    if (existing.isDirectory()) {
      // Extracting an archive applies its directory entries to directories already there
      // (Docker's untar does); a plain copy merges into them and leaves them as they are.
      if (this.#extracting && entry.relPath !== '') {
        const owner = this.#ownerFor(entry.stats, preserveOwnership);
        await this.#target.lchown(target, owner.uid, owner.gid);
        this.#deferred.push({ path: target, mode: this.#modeFor(entry.stats), mtime: entry.stats.mtime });
      }
      return target;
    }
    if (existing.isSymbolicLink()) {
      const resolved = await resolveInRoot(this.#root, this.#imagePath(target), this.#target);
      if ((await this.#target.lstat(resolved))?.isDirectory()) return resolved;
    }
    throw new StrataError('INVALID_ARGUMENT', `cannot copy to non-directory: ${this.#imagePath(target)}`);
  }

  async #placeNonDirectory(
    entry: CopySourceEntry,
    target: string,
    preserveOwnership: boolean,
  ): Promise<void> {
    const { stats } = entry;
    if (stats.isSocket()) return;
    await this.#clearTarget(target);
    const inode = `${stats.dev}:${stats.ino}`;
    if (stats.isFile() && stats.nlink > 1) {
      const first = this.#linked.get(inode);
      if (first !== undefined) {
        await this.#target.link(first, target);
        return;
      }
      this.#linked.set(inode, target);
    }
    const owner = this.#ownerFor(stats, preserveOwnership);
    if (stats.isSymbolicLink()) {
      await this.#target.symlink(entry.linkTarget ?? (await readlink(entry.hostPath)), target);
      await this.#target.lchown(target, owner.uid, owner.gid);
      await this.#target.setMtime(target, stats.mtime, true);
      return;
    }
    if (stats.isFile()) {
      await this.#target.copyFile(entry.hostPath, target, stats);
    } else if (stats.isFIFO()) {
      await this.#target.mknod(target, 'fifo', 0, 0);
    } else if (stats.isCharacterDevice() || stats.isBlockDevice()) {
      // Linux dev_t: major in bits 8–19 (and 32+), minor in bits 0–7 and 20–31.
      const major = ((stats.rdev >> 8) & 0xfff) | (Math.floor(stats.rdev / 2 ** 32) & ~0xfff);
      const minor = (stats.rdev & 0xff) | ((stats.rdev >> 12) & 0xfff00);
      await this.#target.mknod(
        target,
        stats.isCharacterDevice() ? 'char-device' : 'block-device',
        major,
        minor,
      );
    } else {
      return;
    }
    // chown before chmod: chown clears setuid/setgid bits.
    await this.#target.lchown(target, owner.uid, owner.gid);
    await this.#target.chmod(target, this.#modeFor(stats));
    await this.#target.setMtime(target, stats.mtime, false);
  }

  /** Removes a non-directory in the way; a directory in the way is an error. */
  async #clearTarget(target: string): Promise<void> {
    this.#assertInside(target);
    const existing = await this.#target.lstat(target);
    if (existing === undefined) return;
    if (existing.isDirectory()) {
      throw new StrataError(
        'INVALID_ARGUMENT',
        `cannot replace directory ${this.#imagePath(target)} with a file`,
      );
    }
    await this.#target.unlink(target);
  }

  async #extractArchive(
    operand: SelectedOperand,
    compression: ArchiveCompression,
    destImagePath: string,
  ): Promise<void> {
    const archive = operand.entries[0];
    if (archive === undefined) return;
    const scratch = await mkdtemp(posix.join(this.#options.scratchDir ?? tmpdir(), 'strata-add-'));
    try {
      const unpacked = posix.join(scratch, 'root');
      await extractTar(openDecompressed(archive.hostPath, compression), unpacked, {
        whiteouts: 'keep',
        allowDevices: true,
        preserveOwnership: true,
      });
      const [extracted] = await selectCopySources({ root: unpacked, sourceIsContext: false, sources: ['/'] });
      if (extracted === undefined) return;
      // The archive's contents go into the destination, which is a directory even without a `/`.
      await this.#ensureDirectory(destImagePath);
      this.#extracting = true;
      try {
        await this.#copyOperand(
          { ...extracted, operand: operand.operand, destName: '', preserveOwnership: true },
          destImagePath,
          true,
        );
      } finally {
        this.#extracting = false;
      }
    } finally {
      // A LayerTree reads the unpacked files when the layer is written, after this.
      if (this.#target === diskTarget) await rm(scratch, { recursive: true, force: true });
    }
  }

  async #writeInline(
    file: { path: string; data: string },
    destImagePath: string,
    destIsDirectory: boolean,
  ): Promise<void> {
    const targetImagePath = destIsDirectory ? imagePath(destImagePath, file.path) : destImagePath;
    const parentHost = await this.#ensureDirectory(posix.dirname(targetImagePath));
    const target = posix.join(parentHost, posix.basename(targetImagePath));
    await this.#clearTarget(target);
    await this.#target.writeFile(target, file.data);
    const owner = this.#options.owner ?? { uid: 0, gid: 0 };
    await this.#target.lchown(target, owner.uid, owner.gid);
    await this.#target.chmod(target, this.#modeChange === undefined ? 0o644 : this.#modeChange(0o644, false));
    if (this.#options.sourceDateEpoch !== undefined) {
      const epoch = new Date(this.#options.sourceDateEpoch * 1000);
      await this.#target.setMtime(target, epoch, false);
    }
  }

  /** Directory modes and mtimes, deepest first, after all their contents are written. */
  async #finish(): Promise<void> {
    for (const dir of [...this.#deferred].reverse()) {
      await this.#target.chmod(dir.path, dir.mode);
      await this.#target.setMtime(dir.path, dir.mtime, false);
    }
  }
}

/** The destination on disk (an overlay's merged directory, or a plain directory). */
const diskTarget: CopyTarget = {
  lstat: lstatIfExists,
  readlink,
  mkdir: async (path, mode) => {
    await mkdir(path, mode);
  },
  chmod,
  lchown,
  setMtime: (path, mtime, isSymlink) =>
    isSymlink ? lutimes(path, mtime, mtime) : utimes(path, mtime, mtime),
  symlink,
  link,
  copyFile: (source, path) => copyFile(source, path),
  writeFile: (path, data) => writeFile(path, data),
  mknod: (path, kind, major, minor) => mknod(path, kind, major, minor),
  unlink,
};

/**
 * Copies the selected operands (and heredoc files) into `targetRoot` as COPY/ADD does. All
 * writes stay inside `targetRoot`: the destination and every existing directory on the way are
 * resolved inside it.
 */
export async function applyCopy(operands: SelectedOperand[], options: ApplyOptions): Promise<void> {
  try {
    await new CopyWriter(options).run(operands);
  } catch (err) {
    if (isStrataError(err)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new StrataError('INTERNAL', `COPY failed: ${message}`, { cause: err, userFacing: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Local archives (ADD)
// ---------------------------------------------------------------------------------------------

const TAR_BLOCK = 512;

function isTarHeader(block: Buffer): boolean {
  if (block.length < TAR_BLOCK) return false;
  const field = block
    .subarray(148, 156)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const recorded = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < TAR_BLOCK; index++) {
    const byte = index >= 148 && index < 156 ? 0x20 : (block[index] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  // Some old tars computed the checksum over signed chars; Go accepts both.
  return recorded === unsigned || recorded === signed;
}

/** A readable of the file's decompressed content (bzip2 and xz through Debian's tools). */
function openDecompressed(path: string, compression: ArchiveCompression): Readable {
  if (compression !== 'bzip2' && compression !== 'xz') return decompressStream(createReadStream(path));
  const tool = compression === 'bzip2' ? 'bzip2' : 'xz';
  const child = spawn(tool, ['-dc', '--', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = new PassThrough();
  const stderr: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.on('error', (err) =>
    output.destroy(
      new StrataError('UNSUPPORTED', `cannot decompress ${path}: ${tool} not available (${err.message})`, {
        cause: err,
      }),
    ),
  );
  child.stdout.pipe(output, { end: false });
  child.on('close', (code, signal) => {
    if (code === 0) output.end();
    else if (signal === null) {
      const detail = Buffer.concat(stderr).toString('utf8').trim().split('\n')[0] ?? '';
      output.destroy(new StrataError('INVALID_ARCHIVE', `cannot decompress ${path}: ${detail}`));
    }
  });
  output.once('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return output;
}

/**
 * The compression of a local file that is a tar archive (possibly compressed), or undefined
 * when it is not one: only a valid first tar header after decompression counts.
 */
async function tarArchiveCompression(path: string): Promise<ArchiveCompression | undefined> {
  const handle = await open(path, 'r');
  const head = Buffer.alloc(DETECT_BYTES);
  let length: number;
  try {
    length = (await handle.read(head, 0, DETECT_BYTES, 0)).bytesRead;
  } finally {
    await handle.close();
  }
  const compression = detectArchiveCompression(head.subarray(0, length));
  const stream = openDecompressed(path, compression);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(buffer);
      size += buffer.length;
      if (size >= TAR_BLOCK) break;
    }
  } catch {
    // Corrupt compressed data is not an archive: ADD copies such a file as it is.
    return undefined;
  } finally {
    stream.destroy();
  }
  return isTarHeader(Buffer.concat(chunks)) ? compression : undefined;
}

// ---------------------------------------------------------------------------------------------
// Remote sources (ADD <url>)
// ---------------------------------------------------------------------------------------------

const CHECKSUM_ALGORITHMS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

function parseChecksum(checksum: string): { algorithm: string; hex: string } {
  const match = /^([a-z0-9]+):([a-f0-9]+)$/.exec(checksum);
  const expectedLength = match === null ? undefined : CHECKSUM_ALGORITHMS[match[1] ?? ''];
  if (match === null || expectedLength === undefined || match[2]?.length !== expectedLength) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `invalid checksum "${checksum}": expected sha256:<64 hex digits> (or sha384, sha512)`,
    );
  }
  return { algorithm: match[1] as string, hex: match[2] };
}

/** BuildKit's choice: Content-Disposition's filename, else the URL path's last segment, else "index". */
function remoteFilename(url: URL, contentDisposition: string | null): string {
  const fromHeader =
    contentDisposition === null ? undefined : /filename="?([^";]+)"?/i.exec(contentDisposition)?.[1];
  const candidates = [fromHeader, safeDecode(posix.basename(url.pathname))];
  for (const candidate of candidates) {
    if (candidate === undefined) continue;
    const name = posix.basename(candidate.replace(/\\/g, '/'));
    if (name !== '' && name !== '.' && name !== '..' && name !== '/') return name;
  }
  return 'index';
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** fetch naming its CAs (src/trust.ts): undici's own fetch, whose dispatcher takes them. */
async function fetchTrusting(url: URL, ca: string[]): Promise<Response> {
  const response = await undiciFetch(url, { redirect: 'follow', dispatcher: new Agent({ connect: { ca } }) });
  return response as unknown as Response;
}

/**
 * Downloads `url` into `dir` (mode 0600, as BuildKit stores HTTP sources), verifying
 * `checksum` (`sha256:<hex>`; sha384 and sha512 too) when given. The file's mtime is the
 * response's Last-Modified when it has one.
 */
export async function fetchRemote(
  url: string,
  checksum: string | undefined,
  dir: string,
): Promise<{ path: string; filename: string; lastModified?: Date }> {
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw new StrataError('INVALID_ARGUMENT', `invalid URL "${url}"`);
  }
  if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') {
    throw new StrataError('INVALID_ARGUMENT', `unsupported URL scheme "${parsedUrl.protocol}" in ${url}`);
  }
  const expected = checksum === undefined ? undefined : parseChecksum(checksum);
  let response: Response;
  try {
    // Loaded here: src/trust.ts loads node:tls (~13 ms), which a build without ADD <url> never needs.
    const { trustedCertificates } = await import('../trust.js');
    const ca = trustedCertificates();
    response =
      ca === undefined ? await fetch(parsedUrl, { redirect: 'follow' }) : await fetchTrusting(parsedUrl, ca);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new StrataError('NOT_FOUND', `failed to fetch ${url}: ${message}`, { cause: err });
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new StrataError(
      'NOT_FOUND',
      `failed to fetch ${url}: HTTP ${response.status} ${response.statusText}`,
    );
  }
  const filename = remoteFilename(parsedUrl, response.headers.get('content-disposition'));
  const path = posix.join(dir, filename);
  const hash = createHash(expected?.algorithm ?? 'sha256');
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  await mkdir(dir, { recursive: true });
  await pipeline(
    body,
    async function* hashing(chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(path, { mode: 0o600 }),
  );
  if (expected !== undefined) {
    const actual = hash.digest('hex');
    if (actual !== expected.hex) {
      await rm(path, { force: true });
      throw new StrataError(
        'DIGEST_MISMATCH',
        `checksum of ${url} does not match: expected ${expected.algorithm}:${expected.hex}, got ${expected.algorithm}:${actual}`,
      );
    }
  }
  await chmod(path, 0o600);
  const header = response.headers.get('last-modified');
  const lastModified = header === null ? undefined : new Date(header);
  if (lastModified !== undefined && !Number.isNaN(lastModified.getTime())) {
    await utimes(path, lastModified, lastModified);
    return { path, filename, lastModified };
  }
  return { path, filename };
}
