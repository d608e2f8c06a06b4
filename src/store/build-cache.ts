/**
 * The persistent build cache: one record per step key (`<root>/cache/records/<hex>.json`),
 * written atomically after the step's layer is committed, so a record never points at content
 * that is not there yet. Two builds that compute the same key write the same result; the last
 * rename wins and both are right. Records are GC roots (store/gc.ts) until `builder prune`.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { ContentStore } from './content.js';
import { writeFileAtomic } from './atomic.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { errnoCode } from '../errors.js';
import { readdirIfExists } from './dirs.js';

export interface CachedLayer {
  /** Uncompressed layer digest (= the stored blob's digest). */
  diffId: Digest;
  size: number;
}

export interface CacheRecord {
  key: string;
  /** When the step first ran: reused so a cached rebuild makes the identical image. */
  created: string;
  /** Absent for a step that changed no file. */
  layer?: CachedLayer;
}

/** A cache key from its parts: stable JSON, hashed. */
export function cacheKey(parts: unknown): string {
  return createHash('sha256').update(stableJson(parts)).digest('hex');
}

/** JSON with sorted object keys, so equal values always hash equally. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function isRecord(value: unknown, key: string): value is CacheRecord {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Partial<CacheRecord>;
  if (record.key !== key || typeof record.created !== 'string') return false;
  if (record.layer === undefined) return true;
  return (
    typeof record.layer === 'object' &&
    isDigest(String(record.layer.diffId)) &&
    Number.isSafeInteger(record.layer.size)
  );
}

export class BuildCache {
  readonly dir: string;

  constructor(
    cacheDir: string,
    private readonly content: ContentStore,
  ) {
    this.dir = join(cacheDir, 'records');
  }

  private pathOf(key: string): string {
    if (!/^[a-f0-9]{64}$/.test(key)) throw new Error(`invalid cache key ${key}`);
    return join(this.dir, `${key}.json`);
  }

  /** The record of `key` if it exists and its layer blob is still in the store. */
  async get(key: string): Promise<CacheRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.pathOf(key), 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return undefined; // a damaged record is a miss; the next write replaces it
    }
    if (!isRecord(value, key)) return undefined;
    if (value.layer && !(await this.content.has(value.layer.diffId))) return undefined;
    return value;
  }

  async put(record: CacheRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Not synced: a record lost or damaged by a machine crash is a cache miss (see get).
    await writeFileAtomic(this.pathOf(record.key), `${JSON.stringify(record)}\n`, { durable: false });
  }

  /** Every record (for GC roots and `builder du`). */
  async list(): Promise<CacheRecord[]> {
    const names = await readdirIfExists(this.dir);
    const records: CacheRecord[] = [];
    for (const name of names) {
      const match = /^([a-f0-9]{64})\.json$/.exec(name);
      if (!match) continue;
      try {
        const value: unknown = JSON.parse(await readFile(join(this.dir, name), 'utf8'));
        if (isRecord(value, match[1] as string)) records.push(value);
      } catch {
        // unreadable or vanished: not a root
      }
    }
    return records;
  }

  /** Drops every record (`strata builder prune`); returns how many there were. */
  async clear(): Promise<number> {
    const records = await this.list();
    await rm(this.dir, { recursive: true, force: true });
    return records.length;
  }
}
