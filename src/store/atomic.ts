import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errnoCode } from '../errors.js';
import { processAlive } from './lock.js';

/**
 * Makes renames and creations inside `dir` durable: without it a crash right after a rename can
 * bring back the old directory entry even though the file data was fsynced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems (and some network mounts) refuse fsync on directories; the rename is still
    // atomic there, only its durability is the filesystem's business.
    if (errnoCode(err) !== 'EINVAL' && errnoCode(err) !== 'ENOTSUP') throw err;
  } finally {
    await handle.close();
  }
}

const TEMP_PATTERN = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** A unique sibling of `path` (same directory, so the rename never crosses filesystems). */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Replaces `path` so that readers see the old content or the new, never a mix, and a crash at any
 * point leaves one of the two: temp file in the same directory → write → fsync → rename → fsync
 * the directory. The temp name is unique, so concurrent writers never share a temp file.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  /**
   * `durable: false` skips both fsyncs: still all or nothing for readers, but a crash of the
   * machine may lose (or empty) the file. Only for files whose readers treat a damaged one as
   * missing (cache records, boot-scoped snapshot metadata).
   */
  options: { mode?: number; durable?: boolean } = {},
): Promise<void> {
  const durable = options.durable !== false;
  const temp = tempSibling(path);
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  if (durable) await fsyncDir(dirname(path));
}

/**
 * Removes temp files `writeFileAtomic` left in `dir` when its process died between creating and
 * renaming them. A temp of a live process is left alone unless older than `olderThanMs` (its pid
 * was reused). Returns the bytes removed (or that would be, with `dryRun`).
 */
export async function cleanAtomicTemps(
  dir: string,
  options: { olderThanMs: number; dryRun?: boolean },
): Promise<{ removed: number; bytes: number }> {
  const result = { removed: 0, bytes: 0 };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return result;
    throw err;
  }
  const now = Date.now();
  for (const name of names) {
    const match = TEMP_PATTERN.exec(name);
    if (!match) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (processAlive(Number(match[2])) && now - info.mtimeMs <= options.olderThanMs) continue;
    if (!options.dryRun) await rm(path, { force: true });
    result.removed++;
    result.bytes += info.size;
  }
  return result;
}

/** fsync a file by path (after a stream wrote it). */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `writeFileAtomic` for streamed content: nothing appears at `path` unless the whole stream did. */
export async function writeStreamAtomic(
  path: string,
  source: Readable | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  mode = 0o644,
): Promise<void> {
  const temp = tempSibling(path);
  try {
    await pipeline(source, createWriteStream(temp, { flags: 'wx', mode }));
    await fsyncFile(temp);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}
