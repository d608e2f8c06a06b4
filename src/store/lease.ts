import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { StrataError, errnoCode } from '../errors.js';
import { processAlive, waitUntilUnlocked } from './lock.js';

/**
 * Leases: how content that is stored but not yet named survives a concurrent garbage collection.
 *
 * A load writes blobs one by one and names the image only at the end; between the two, its blobs
 * are unreachable. Before a blob (or snapshot) becomes visible, the writer appends its key to a
 * lease file `leases/<pid>.<kind>.<random>.lease`, then waits while a collection holds
 * `locks/gc.lock`. The collector lists blobs first and reads leases after, all under that lock,
 * so for any blob it could delete, the writer's key was either already visible to it, or the
 * writer was still before its lock check and now waits for the collection to end and re-checks
 * that the blob exists. A lease of a dead process protects nothing and is removed by the next
 * collection; pids are only meaningful on one host, so one store must not be shared by hosts or
 * pid namespaces that run collections.
 *
 * Two kinds of lease:
 * - an operation lease, the precise one: with `Leases.withLease`, everything stored inside the
 *   callback (followed through async calls) is protected until it returns; or created with
 *   `Leases.create`, passed to `ingest(…, { lease })` and released by the caller;
 * - the process lease, used for content stored outside any operation lease: it protects the
 *   content from collections run by *other* processes until this process exits. A collection
 *   ignores its own process's process lease, so `load` then `rmi` in one long-running program
 *   still frees space; code that stores and collects concurrently in one process uses withLease.
 */
export type LeaseKind = 'process' | 'op';

const LEASE_PATTERN = /^(\d+)\.(process|op)\.[0-9a-f]{12}\.lease$/;

/** The lease key of a snapshot (blobs use their digest). */
export function snapshotLeaseKey(chainId: Digest): string {
  return `snapshot:${chainId}`;
}

/** Process lease files to delete when the process exits; one listener however many stores. */
const exitRemovals = new Set<string>();

function removeAtExit(path: string): void {
  // Best effort: a crash leaves the file to the next collection, which sees a dead pid.
  if (exitRemovals.size === 0) {
    process.once('exit', () => {
      for (const file of exitRemovals) rmSync(file, { force: true });
    });
  }
  exitRemovals.add(path);
}

export class Lease {
  readonly path: string;
  /** The append running now (and the ones after it), settled when there is nothing left to write. */
  private tail: Promise<void> = Promise.resolve();
  /** Keys added while an append runs: written together by the next one. */
  private batch:
    { lines: string; waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> } | undefined;
  private writing = false;
  private written = false;
  private released = false;

  constructor(
    private readonly dir: string,
    readonly kind: LeaseKind,
  ) {
    this.path = join(dir, `${process.pid}.${kind}.${randomBytes(6).toString('hex')}.lease`);
  }

  /**
   * Appends keys (one line each); resolves once they are in the file. Appends are serialised so
   * lines never interleave, and keys added while one runs go out together in the next: a pull
   * that retains ten blobs at once waits for two appends, not ten in a row.
   */
  add(keys: string | readonly string[]): Promise<void> {
    const lines = (typeof keys === 'string' ? [keys] : keys).map((key) => `${key}\n`).join('');
    if (this.released) {
      return Promise.reject(new StrataError('INTERNAL', `lease ${this.path} used after its release`));
    }
    return new Promise<void>((resolve, reject) => {
      this.batch ??= { lines: '', waiters: [] };
      this.batch.lines += lines;
      this.batch.waiters.push({ resolve, reject });
      if (!this.writing) this.tail = this.writeBatches();
    });
  }

  private async writeBatches(): Promise<void> {
    this.writing = true;
    for (let batch = this.batch; batch !== undefined; batch = this.batch) {
      this.batch = undefined;
      try {
        await mkdir(this.dir, { recursive: true });
        await appendFile(this.path, batch.lines, { mode: 0o644 });
        if (!this.written && this.kind === 'process') removeAtExit(this.path);
        this.written = true;
        for (const waiter of batch.waiters) waiter.resolve();
      } catch (err) {
        for (const waiter of batch.waiters) waiter.reject(err);
      }
    }
    this.writing = false;
  }

  async release(): Promise<void> {
    this.released = true;
    await this.tail;
    if (this.written) await rm(this.path, { force: true });
  }
}

export class Leases {
  private readonly context = new AsyncLocalStorage<Lease>();
  private processLease: Lease | undefined;

  constructor(
    readonly dir: string,
    readonly gcLockPath: string,
  ) {}

  /**
   * Runs `work` under an operation lease: whatever it stores is protected from collections until
   * it returns (and it can then name what it stored). Nested calls share the outer lease.
   */
  async withLease<T>(work: () => Promise<T>): Promise<T> {
    if (this.context.getStore()) return work();
    const lease = new Lease(this.dir, 'op');
    try {
      return await this.context.run(lease, work);
    } finally {
      await lease.release();
    }
  }

  /**
   * An operation lease managed by the caller, for code that prefers passing it explicitly
   * (`ingest(…, { lease })`) to `withLease`; release it once what it protects is named.
   */
  create(): Lease {
    return new Lease(this.dir, 'op');
  }

  /** The lease that new content is recorded in, here and now. */
  current(): Lease {
    const active = this.context.getStore();
    if (active) return active;
    this.processLease ??= new Lease(this.dir, 'process');
    return this.processLease;
  }

  /**
   * Records keys in the current lease and waits until no collection is running. Call it after
   * the content is complete and before making it visible (or before deciding it already exists).
   */
  async protect(keys: readonly string[], lease: Lease = this.current()): Promise<void> {
    await lease.add(keys);
    await waitUntilUnlocked(this.gcLockPath);
  }

  /**
   * Keys held by live leases, except this process's own process lease. Leases of dead processes
   * are removed (unless `dryRun`). Must be read after the content it filters was listed.
   */
  async held(options: { dryRun?: boolean } = {}): Promise<{ keys: Set<string>; deadRemoved: number }> {
    const keys = new Set<string>();
    let deadRemoved = 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { keys, deadRemoved };
      throw err;
    }
    for (const name of names) {
      const match = LEASE_PATTERN.exec(name);
      if (!match) continue;
      const pid = Number(match[1]);
      const path = join(this.dir, name);
      if (!processAlive(pid)) {
        if (!options.dryRun) await rm(path, { force: true });
        deadRemoved++;
        continue;
      }
      if (pid === process.pid && match[2] === 'process') continue;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue; // released meanwhile
        throw err;
      }
      // A last line without its newline is an append in progress; its writer is still before its
      // lock check and will wait for this collection (see above), so it can be skipped.
      const lines = text.split('\n');
      lines.pop();
      for (const line of lines) if (line !== '') keys.add(line);
    }
    return { keys, deadRemoved };
  }
}
