/**
 * Walking a build context through include and exclude patterns, as BuildKit's file-transfer
 * library (fsutil) does: lexical order by path component, a directory before its contents,
 * excluded directories pruned whenever no `!` pattern could re-include something inside them,
 * and the directories leading to a kept path emitted even when they are themselves filtered out.
 *
 * The walk streams: one `readdir` per directory, and only the current chain of directories (with
 * a bounded window of each one's entries) is held in memory.
 */
import { readdir, stat } from 'node:fs/promises';
import { lstatSync, type Dirent, type Stats } from 'node:fs';
import { join } from 'node:path';

import { StrataError, errnoCode } from '../errors.js';
import { PatternMatcher, type MatchInfo } from './dockerignore.js';

export type ContextEntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface ContextEntry {
  /** Slash-separated, relative to the context root. */
  path: string;
  type: ContextEntryType;
  stats: Stats;
}

export interface ContextFilterOptions {
  /** `.dockerignore`-style patterns: matching paths (and their contents) are left out. */
  excludes?: readonly string[];
  /** Only paths matching one of these (or inside a matching directory) are kept. */
  includes?: readonly string[];
}

export interface WalkContextOptions extends ContextFilterOptions {
  /** Symlinks are reported as such, never followed (the only mode BuildKit has). */
  followSymlinks?: false;
}

/** What the filter says about one entry. */
export type FilterVerdict =
  /** Emit it; descend if it is a directory. */
  | 'keep'
  /** Do not emit it; a directory is still entered and emitted once something inside is kept. */
  | 'hidden'
  /** Leave it and everything below it out, without entering it. */
  | 'prune';

/** Per-directory pattern results, handed from a directory to its entries. */
export interface FilterState {
  include?: MatchInfo;
  exclude?: MatchInfo;
}

export interface FilterDecision {
  verdict: FilterVerdict;
  state: FilterState;
}

/** Compiled include and exclude patterns, deciding entries one at a time as a walk goes down. */
export class ContextFilter {
  readonly #includes: PatternMatcher | undefined;
  readonly #excludes: PatternMatcher | undefined;

  /** @throws StrataError INVALID_ARGUMENT for a malformed pattern. */
  constructor(options: ContextFilterOptions) {
    this.#includes =
      options.includes !== undefined && options.includes.length > 0
        ? new PatternMatcher(options.includes)
        : undefined;
    this.#excludes =
      options.excludes !== undefined && options.excludes.length > 0
        ? new PatternMatcher(options.excludes)
        : undefined;
  }

  /** True when the filter lets everything through. */
  get isEmpty(): boolean {
    return this.#includes === undefined && this.#excludes === undefined;
  }

  /**
   * Decides the entry at `path`; `parent` is the state returned for its directory (undefined for
   * entries at the root).
   */
  decide(path: string, isDirectory: boolean, parent: FilterState | undefined): FilterDecision {
    const state: FilterState = {};
    let hidden = false;
    if (this.#includes !== undefined) {
      const result = this.#includes.matchesWithParent(path, parent?.include);
      state.include = result.info;
      if (!result.matched) {
        if (isDirectory && this.#includes.canSkipUnmatchedDirectory(path)) return { verdict: 'prune', state };
        hidden = true;
      }
    }
    if (this.#excludes !== undefined) {
      const result = this.#excludes.matchesWithParent(path, parent?.exclude);
      state.exclude = result.info;
      if (result.matched) {
        if (isDirectory && this.#excludes.canSkipMatchedDirectory(path)) return { verdict: 'prune', state };
        hidden = true;
      }
    }
    return { verdict: hidden ? 'hidden' : 'keep', state };
  }

  /**
   * Whether a single path is visible through the filter, as when a file is opened by name rather
   * than walked: it must be included (itself or through a parent) and not excluded.
   */
  allows(path: string): boolean {
    if (this.#includes !== undefined && !this.#includes.matches(path)) return false;
    if (this.#excludes !== undefined && this.#excludes.matches(path)) return false;
    return true;
  }
}

function entryType(stats: Stats): ContextEntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

/**
 * Code point order, which is the byte order of the UTF-8 names Go sorts. Plain `<` compares
 * UTF-16 units and would put U+E000..U+FFFF after astral characters.
 */
export function compareNames(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const unitA = a.charCodeAt(index);
    const unitB = b.charCodeAt(index);
    if (unitA === unitB) continue;
    return codePointRank(unitA) - codePointRank(unitB);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** An entry of a directory being walked, decided but not yet emitted. */
interface PendingChild {
  path: string;
  absolutePath: string;
  decision: FilterDecision;
  stats: Stats;
}

interface DirectoryFrame {
  path: string;
  absolutePath: string;
  state: FilterState | undefined;
  /** The directory's own entry, emitted at most once (undefined for the root). */
  entry: ContextEntry | undefined;
  emitted: boolean;
  dirents: Dirent[];
  /** Index in `dirents` of the next entry to prepare. */
  nextDirent: number;
  /** Decided and stat'ed entries, consumed from the front. */
  window: PendingChild[];
}

/** How many entries of a directory are stat'ed ahead of the walk. */
const STAT_WINDOW = 128;

function isPermissionError(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'EACCES' || code === 'EPERM';
}

function isVanished(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function readDirectory(absolutePath: string, path: string, verdict: FilterVerdict): Promise<Dirent[]> {
  try {
    const dirents = await readdir(absolutePath, { withFileTypes: true });
    return dirents.sort((a, b) => compareNames(a.name, b.name));
  } catch (err) {
    if (isVanished(err)) return [];
    // An unreadable directory that is filtered out is not an error; one that is sent is.
    if (verdict === 'hidden' && isPermissionError(err)) return [];
    const shown = path === '' ? '.' : path;
    throw new StrataError(
      'INVALID_ARGUMENT',
      `cannot read build context directory ${shown}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/**
 * Decides the next entries of a directory and stats those that may be emitted. The stats are
 * synchronous on purpose: on a small machine an async `lstat` costs about three times as much
 * (thread-pool round trips), and a bounded window keeps each blocking stretch to about a
 * millisecond; directories are still read asynchronously.
 */
function fillWindow(frame: DirectoryFrame, filter: ContextFilter): void {
  let examined = 0;
  while (
    frame.nextDirent < frame.dirents.length &&
    frame.window.length < STAT_WINDOW &&
    examined < STAT_WINDOW * 4
  ) {
    const dirent = frame.dirents[frame.nextDirent++];
    if (dirent === undefined) break;
    examined++;
    const path = frame.path === '' ? dirent.name : `${frame.path}/${dirent.name}`;
    const direntIsDirectory = dirent.isDirectory();
    let decision = filter.decide(path, direntIsDirectory, frame.state);
    if (!worthStat(decision, direntIsDirectory)) continue;
    const absolutePath = join(frame.absolutePath, dirent.name);
    let stats: Stats;
    try {
      stats = lstatSync(absolutePath);
    } catch (err) {
      if (isVanished(err)) continue;
      throw new StrataError(
        'INVALID_ARGUMENT',
        `cannot stat build context entry ${path}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    const isDirectory = stats.isDirectory();
    // Replaced by another type since readdir: decide again from what lstat saw.
    if (isDirectory !== direntIsDirectory) {
      decision = filter.decide(path, isDirectory, frame.state);
      if (!worthStat(decision, isDirectory)) continue;
    }
    frame.window.push({ path, absolutePath, decision, stats });
  }
}

/** Pruned entries and hidden non-directories are never emitted nor entered: no need to stat them. */
function worthStat(decision: FilterDecision, isDirectory: boolean): boolean {
  if (decision.verdict === 'prune') return false;
  return decision.verdict === 'keep' || isDirectory;
}

/**
 * Walks the build context at `root`, yielding every entry that passes the filters, in lexical
 * order by path component, each directory before its contents. The root itself is not yielded.
 *
 * @throws StrataError NOT_FOUND when `root` is missing, INVALID_ARGUMENT for a malformed pattern
 *   or a directory that is sent but cannot be read.
 */
export async function* walkContext(
  root: string,
  options: WalkContextOptions = {},
): AsyncGenerator<ContextEntry> {
  if ((options.followSymlinks as boolean | undefined) === true) {
    throw new StrataError('UNSUPPORTED', 'following symlinks in the build context is not supported');
  }
  const filter = new ContextFilter(options);
  let rootStats: Stats;
  try {
    // The root itself may be a symlink to the context directory; only entries inside are not followed.
    rootStats = await stat(root);
  } catch (err) {
    if (isVanished(err))
      throw new StrataError('NOT_FOUND', `build context ${root} does not exist`, { cause: err });
    throw new StrataError('INVALID_ARGUMENT', `cannot read build context ${root}`, { cause: err });
  }
  if (!rootStats.isDirectory()) {
    throw new StrataError('INVALID_ARGUMENT', `build context ${root} is not a directory`);
  }
  const stack: DirectoryFrame[] = [
    {
      path: '',
      absolutePath: root,
      state: undefined,
      entry: undefined,
      emitted: true,
      dirents: await readDirectory(root, '', 'keep'),
      nextDirent: 0,
      window: [],
    },
  ];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame === undefined) break;
    if (frame.window.length === 0) {
      if (frame.nextDirent >= frame.dirents.length) {
        stack.pop();
        continue;
      }
      fillWindow(frame, filter);
      continue;
    }
    const child = frame.window.shift();
    if (child === undefined) continue;
    const entry: ContextEntry = { path: child.path, type: entryType(child.stats), stats: child.stats };
    const kept = child.decision.verdict === 'keep';
    if (kept) {
      // The directories leading here may have been filtered out themselves; send them first.
      for (const ancestor of stack) {
        if (ancestor.emitted || ancestor.entry === undefined) continue;
        ancestor.emitted = true;
        yield ancestor.entry;
      }
      yield entry;
    }
    if (entry.type === 'dir') {
      stack.push({
        path: child.path,
        absolutePath: child.absolutePath,
        state: child.decision.state,
        entry,
        emitted: kept,
        dirents: await readDirectory(child.absolutePath, child.path, child.decision.verdict),
        nextDirent: 0,
        window: [],
      });
    }
  }
}

/**
 * Applies a filter to an already ordered stream of entries (another walk, possibly filtered
 * itself). Stacking filters this way is what BuildKit does with several filter layers: a `!`
 * pattern in one layer cannot bring back what another layer excluded.
 */
export async function* filterContextEntries(
  entries: AsyncIterable<ContextEntry>,
  options: ContextFilterOptions,
): AsyncGenerator<ContextEntry> {
  const filter = new ContextFilter(options);
  const ancestors: Array<{ entry: ContextEntry; state: FilterState; emitted: boolean }> = [];
  let prunedPrefix: string | undefined;
  for await (const entry of entries) {
    if (prunedPrefix !== undefined && entry.path.startsWith(prunedPrefix)) continue;
    prunedPrefix = undefined;
    while (ancestors.length > 0) {
      const last = ancestors[ancestors.length - 1];
      if (last !== undefined && entry.path.startsWith(`${last.entry.path}/`)) break;
      ancestors.pop();
    }
    const isDirectory = entry.type === 'dir';
    const decision = filter.decide(entry.path, isDirectory, ancestors[ancestors.length - 1]?.state);
    if (decision.verdict === 'prune') {
      prunedPrefix = `${entry.path}/`;
      continue;
    }
    const kept = decision.verdict === 'keep';
    if (kept) {
      for (const ancestor of ancestors) {
        if (ancestor.emitted) continue;
        ancestor.emitted = true;
        yield ancestor.entry;
      }
      yield entry;
    }
    if (isDirectory) ancestors.push({ entry, state: decision.state, emitted: kept });
  }
}
