/**
 * Content digests of build-context files, behind a stat cache: a file whose size, mtime, ctime
 * and inode are unchanged since the last build is not read again. The cache lives in
 * `<root>/cache/context/<sha256 of the context path>.json` and is replaced atomically after
 * a build; a damaged or missing cache only costs re-reading.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, type Stats } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import type { Store } from '../store/index.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Digest } from '../oci/digest.js';

interface StatEntry {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  digest: Digest;
}

function sameFile(entry: StatEntry, stats: Stats): boolean {
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

export class ContextHasher {
  private readonly entries: Map<string, StatEntry>;
  private dirty = false;
  /** Files read this build (for progress and benchmarks). */
  bytesRead = 0;

  private constructor(
    private readonly file: string,
    entries: Map<string, StatEntry>,
  ) {
    this.entries = entries;
  }

  static async open(store: Store, contextDir: string): Promise<ContextHasher> {
    const id = createHash('sha256').update(resolve(contextDir)).digest('hex');
    const file = join(store.layout.cache, 'context', `${id}.json`);
    let entries = new Map<string, StatEntry>();
    try {
      const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        entries = new Map(Object.entries(parsed as Record<string, StatEntry>));
      }
    } catch {
      // no cache yet, or a damaged one: start empty
    }
    return new ContextHasher(file, entries);
  }

  /** The digest of the regular file `relPath` (read only when its stat changed). */
  async digest(hostPath: string, relPath: string, stats: Stats): Promise<Digest> {
    const known = this.entries.get(relPath);
    if (known && sameFile(known, stats)) return known.digest;
    const digest = await digestFile(hostPath, stats.size);
    this.bytesRead += stats.size;
    this.entries.set(relPath, {
      size: stats.size,
      mtime: stats.mtimeMs,
      ctime: stats.ctimeMs,
      ino: stats.ino,
      digest,
    });
    this.dirty = true;
    return digest;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(this.entries)));
    this.dirty = false;
  }
}
