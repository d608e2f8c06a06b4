/**
 * Content digests of build-context files, behind a stat cache: a file whose size, mtime, ctime
 * and inode are unchanged since the last build is not read again. The cache lives in
 * `<root>/cache/context/<sha256 of the context path>.json` and is replaced atomically after
 * a build; a damaged or missing cache only costs re-reading.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

import type { Store } from '../store/index.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Digest } from '../oci/digest.js';
import {
  walkCopySources,
  type CopySourceEntry,
  type EntrySink,
  type SelectOptions,
  type SelectedOperand,
} from './copy.js';
import type { StatFields } from './fastfs.js';

interface StatEntry {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  digest: Digest;
}

function sameFile(entry: StatEntry, stats: StatFields): boolean {
  return (
    entry.size === stats.size &&
    entry.mtime === stats.mtimeMs &&
    entry.ctime === stats.ctimeMs &&
    entry.ino === stats.ino
  );
}

/** Below this size a file is read synchronously (see fastfs.ts for why), into one reused buffer. */
const SMALL_FILE = 4 * 1024 * 1024;
let readBuffer: Buffer | undefined;

export async function digestFile(path: string, size?: number): Promise<Digest> {
  const hash = createHash('sha256');
  if (size !== undefined && size < SMALL_FILE) {
    readBuffer ??= Buffer.allocUnsafe(SMALL_FILE);
    const fd = openSync(path, 'r');
    try {
      let count: number;
      while ((count = readSync(fd, readBuffer, 0, readBuffer.length, null)) > 0)
        hash.update(readBuffer.subarray(0, count));
    } finally {
      closeSync(fd);
    }
    return `sha256:${hash.digest('hex')}`;
  }
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** How many operand fingerprints a context keeps (newest used first out). */
const MATERIAL_LIMIT = 256;

export class ContextHasher {
  #entries: Promise<Map<string, StatEntry>> | undefined;
  #entriesDirty = false;
  readonly #materials: Map<string, string>;
  #materialsDirty = false;
  /** Files read this build (for progress and benchmarks). */
  bytesRead = 0;

  private constructor(
    private readonly file: string,
    materials: Map<string, string>,
  ) {
    this.#materials = materials;
  }

  /**
   * Opens the context's caches. Only the small fingerprint map is read now: when every operand's
   * stats are as they were, no per-file entry is looked at (on a 20 000-file context the
   * per-file cache is ~4 MB of JSON, a fifth of a no-op rebuild).
   */
  static async open(store: Store, contextDir: string): Promise<ContextHasher> {
    const id = createHash('sha256').update(resolve(contextDir)).digest('hex');
    const file = join(store.layout.cache, 'context', `${id}.json`);
    return new ContextHasher(
      file,
      new Map(Object.entries(await readJsonRecord<string>(materialsFile(file)))),
    );
  }

  #statEntries(): Promise<Map<string, StatEntry>> {
    this.#entries ??= readJsonRecord<StatEntry>(this.file).then((record) => new Map(Object.entries(record)));
    return this.#entries;
  }

  /** The digest of the regular file `relPath` (read only when its stat changed). */
  async digest(hostPath: string, relPath: string, stats: StatFields): Promise<Digest> {
    const entries = await this.#statEntries();
    const known = entries.get(relPath);
    if (known && sameFile(known, stats)) return known.digest;
    const digest = await digestFile(hostPath, stats.size);
    this.bytesRead += stats.size;
    entries.set(relPath, {
      size: stats.size,
      mtime: stats.mtimeMs,
      ctime: stats.ctimeMs,
      ino: stats.ino,
      digest,
    });
    this.#entriesDirty = true;
    return digest;
  }

  /**
   * The entries digest of a context operand (see operandEntriesDigest): remembered per
   * fingerprint of the operand's paths and stats, which decide every per-file digest the stat
   * cache would give, so a hit is exactly what recomputing would give.
   */
  async operandDigest(operand: SelectedOperand, contextRoot: string): Promise<string> {
    const fingerprint = statFingerprint(operand);
    const known = this.#use(fingerprint);
    if (known !== undefined) return known;
    const prefix = `${contextRoot}/`;
    const digest = await operandEntriesDigest(operand, (entry) =>
      this.digest(
        entry.hostPath,
        entry.hostPath.startsWith(prefix)
          ? entry.hostPath.slice(prefix.length)
          : relative(contextRoot, entry.hostPath),
        entry.stats,
      ),
    );
    this.#materials.set(fingerprint, digest);
    // Most recently used last, so that the limit drops the stalest.
    for (const stale of this.#materials.keys()) {
      if (this.#materials.size <= MATERIAL_LIMIT) break;
      this.#materials.delete(stale);
    }
    this.#materialsDirty = true;
    return digest;
  }

  /**
   * The operands `options` selects, fingerprinted by a walk that keeps no entries, when the
   * entries digest of every one is remembered; undefined otherwise, and without walking when no
   * operand of this context is remembered yet (a first build). On a 20 000-file context the
   * walk is most of a no-op rebuild; not keeping 20 000 records makes it cheaper.
   */
  async remembered(options: SelectOptions): Promise<RememberedOperand[] | undefined> {
    if (this.#materials.size === 0) return undefined;
    const fingerprints: StatFingerprint[] = [];
    const operands = await walkCopySources(options, () => {
      const fingerprint = new StatFingerprint();
      fingerprints.push(fingerprint);
      return fingerprint;
    });
    const found: RememberedOperand[] = [];
    for (const [index, operand] of operands.entries()) {
      const fingerprint = (fingerprints[index] as StatFingerprint).digest();
      const entries = this.#use(fingerprint);
      if (entries === undefined) return undefined;
      found.push({ operand: operand.operand, isDirectory: operand.isDirectory, fingerprint, entries });
    }
    return found;
  }

  /** The remembered entries digest of a fingerprint, now the most recently used. */
  #use(fingerprint: string): string | undefined {
    const known = this.#materials.get(fingerprint);
    if (known !== undefined) {
      this.#materials.delete(fingerprint);
      this.#materials.set(fingerprint, known);
    }
    return known;
  }

  async save(): Promise<void> {
    if (!this.#entriesDirty && !this.#materialsDirty) return;
    await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 });
    if (this.#entriesDirty && this.#entries !== undefined)
      await writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(await this.#entries)));
    if (this.#materialsDirty)
      await writeFileAtomic(materialsFile(this.file), JSON.stringify(Object.fromEntries(this.#materials)));
    this.#entriesDirty = false;
    this.#materialsDirty = false;
  }
}

function materialsFile(statFile: string): string {
  return statFile.replace(/\.json$/, '.operands.json');
}

/** A JSON object file's members; empty when missing or damaged (a cache only costs re-reading). */
async function readJsonRecord<T>(file: string): Promise<Record<string, T>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, T>;
  } catch {
    // no cache yet, or a damaged one: start empty
  }
  return {};
}

/**
 * A digest of an operand's root, paths, types, modes, sizes, times, inodes and link targets:
 * what decides its entries digest when the sources are context files. Fed entry by entry (an
 * EntrySink), so that a walk can fingerprint a large context without keeping its entries.
 */
export class StatFingerprint implements EntrySink {
  readonly #hash = createHash('sha256');
  /** Entries are encoded into this buffer and hashed a buffer-full at a time. */
  readonly #buffer = Buffer.allocUnsafe(FINGERPRINT_BUFFER);
  #used = 0;
  #rooted = false;

  add({ hostPath, relPath, stats, linkTarget }: CopySourceEntry): void {
    // The operand itself comes first: its host path places the whole operand.
    if (!this.#rooted) this.#string(hostPath);
    this.#rooted = true;
    this.#string(relPath);
    this.#string(linkTarget ?? '');
    // Numbers as doubles, not text: printing two float times per file was a visible cost.
    if (this.#used + 48 > this.#buffer.length) this.#flush();
    let at = this.#used;
    for (const value of [stats.mode, stats.size, stats.mtimeMs, stats.ctimeMs, stats.ino, stats.dev])
      at = this.#buffer.writeDoubleLE(value, at);
    this.#used = at;
  }

  digest(): string {
    this.#flush();
    return this.#hash.digest('hex');
  }

  /** Length-prefixed UTF-8, so that no name can forge a boundary. */
  #string(text: string): void {
    const room = 4 + text.length * 3;
    if (room > this.#buffer.length) {
      const bytes = Buffer.from(text);
      this.#flush();
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32LE(bytes.length);
      this.#hash.update(length).update(bytes);
      return;
    }
    if (this.#used + room > this.#buffer.length) this.#flush();
    const written = this.#buffer.write(text, this.#used + 4, 'utf8');
    this.#buffer.writeUInt32LE(written, this.#used);
    this.#used += 4 + written;
  }

  #flush(): void {
    if (this.#used > 0) this.#hash.update(this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

const FINGERPRINT_BUFFER = 64 * 1024;

export function statFingerprint(operand: SelectedOperand): string {
  const fingerprint = new StatFingerprint();
  for (const entry of operand.entries) fingerprint.add(entry);
  return fingerprint.digest();
}

/** A context operand whose entries digest is remembered for its fingerprint. */
export interface RememberedOperand {
  operand: string;
  isDirectory: boolean;
  fingerprint: string;
  entries: string;
}

/**
 * Key material of one selected operand: a digest over its entries' paths, types, modes and
 * (with `contentDigest`, for context sources) content digests, else owners; one canonical JSON
 * line each, hashed as it goes (a large context has tens of thousands of entries).
 */
export async function operandEntriesDigest(
  operand: SelectedOperand,
  contentDigest?: (entry: CopySourceEntry) => Promise<Digest>,
): Promise<string> {
  const lines: string[] = new Array<string>(operand.entries.length);
  await forEachLimited([...operand.entries.keys()], 16, async (i) => {
    const entry = operand.entries[i] as CopySourceEntry;
    const { stats } = entry;
    const owner = contentDigest ? 0 : `${stats.uid}:${stats.gid}`;
    let line: unknown[];
    if (stats.isFile()) {
      const digest = contentDigest ? await contentDigest(entry) : '';
      line = [entry.relPath, stats.mode, stats.size, digest, owner];
    } else if (stats.isSymbolicLink()) {
      line = [entry.relPath, stats.mode, entry.linkTarget ?? ''];
    } else {
      line = [entry.relPath, stats.mode, owner];
    }
    lines[i] = JSON.stringify(line);
  });
  const entries = createHash('sha256');
  for (const line of lines) entries.update(`${line}\n`);
  return entries.digest('hex');
}
