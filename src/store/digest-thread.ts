/**
 * Digests of large blobs computed on a helper thread, so that the main thread of a download is
 * free to read sockets and issue writes while SHA-256 (about a third of a pull's main-thread
 * time on the registry bench) runs on another core.
 *
 * One process-wide thread serves every blob being ingested; each blob has its own hash there,
 * fed in order (a MessagePort delivers in order). Bytes go over in a few 1 MiB slots of shared
 * memory per blob: the main thread copies a batch into a free slot (a memcpy, far cheaper than
 * hashing it) and posts the slot; the thread hashes it in place and hands the slot back. The
 * caller keeps its own pieces to write them, so the thread never holds the only copy.
 *
 * The thread's code is a few lines of plain JavaScript evaluated in the worker, so it needs no
 * file beside this one (the CLI bundle, running from source under tsx: all the same). It starts
 * with the first blob that asks for it (`prestartDigestThread` gets it going earlier); what is
 * posted before it runs waits in its port. If it fails to start or dies, the digests using it
 * fail with DigestThreadError, which the store's ingest answers by digesting the bytes it
 * already wrote, from its file, on the main thread and going on there; a thread that never came
 * up is not tried again in this process.
 */
import { Worker } from 'node:worker_threads';
import type { Digest, DigestAlgorithm } from '../oci/digest.js';
import { StrataError } from '../errors.js';

/** Shared-memory slot size: one batch of the store's writes. */
const DIGEST_SLOT_BYTES = 1024 * 1024;
/** Slots per blob: enough that the copy never waits on the thread while it keeps up. */
const SLOTS_PER_BLOB = 4;
/** Spare slots kept for the next blobs (fresh shared memory costs a page fault per 4 KiB). */
const MAX_SPARE_SLOTS = 32;
/** The idle thread ends after this long (it never keeps the process alive meanwhile). */
const IDLE_MS = 5000;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.type === 'open') {
      hashes.set(m.id, createHash(m.algorithm));
    } else if (m.type === 'data') {
      hashes.get(m.id).update(new Uint8Array(m.buffer, 0, m.length));
      parentPort.postMessage({ type: 'done', id: m.id, slot: m.slot });
    } else if (m.type === 'end') {
      const hash = hashes.get(m.id);
      hashes.delete(m.id);
      parentPort.postMessage({ type: 'digest', id: m.id, hex: hash.digest('hex') });
    } else if (m.type === 'drop') {
      hashes.delete(m.id);
    }
  } catch (err) {
    hashes.delete(m.id);
    parentPort.postMessage({ type: 'failed', id: m.id, message: String(err && err.message || err) });
  }
});
`;

type ToThread =
  | { type: 'open'; id: number; algorithm: DigestAlgorithm }
  | { type: 'data'; id: number; slot: number; buffer: SharedArrayBuffer; length: number }
  | { type: 'end' | 'drop'; id: number };

type FromThread =
  | { type: 'done'; id: number; slot: number }
  | { type: 'digest'; id: number; hex: string }
  | { type: 'failed'; id: number; message: string };

/** The digest thread stopped (or never started) while a digest was using it. */
export class DigestThreadError extends StrataError {
  constructor(message: string, cause: unknown) {
    super('INTERNAL', message, { cause });
  }
}

/** An incremental digest whose hashing runs on the digest thread. */
export class ThreadedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly #thread: DigestThread;
  readonly #id: number;
  readonly #slots: SharedArrayBuffer[] = [];
  readonly #free: number[] = [];
  #fill = 0;
  /** The slot being filled, if any. */
  #current: number | undefined;
  #waiting: (() => void) | undefined;
  #result: { resolve: (hex: string) => void; reject: (err: Error) => void } | undefined;
  #failure: Error | undefined;
  #closed = false;

  constructor(thread: DigestThread, id: number, algorithm: DigestAlgorithm) {
    this.#thread = thread;
    this.#id = id;
    this.algorithm = algorithm;
  }

  /**
   * Hashes `pieces` after everything given before. Resolves once they are copied into slots
   * (waiting for the thread when every slot is in use); the pieces are not kept.
   */
  async add(pieces: readonly Uint8Array[]): Promise<void> {
    for (const piece of pieces) {
      let at = 0;
      while (at < piece.length) {
        if (this.#failure) throw this.#failure;
        const slot = this.#current ?? (await this.#takeSlot());
        this.#current = slot;
        const n = Math.min(piece.length - at, DIGEST_SLOT_BYTES - this.#fill);
        new Uint8Array(this.#slots[slot]!, this.#fill, n).set(piece.subarray(at, at + n));
        this.#fill += n;
        at += n;
        if (this.#fill === DIGEST_SLOT_BYTES) this.#send();
      }
    }
  }

  /** The digest of everything added. */
  async digest(): Promise<Digest> {
    if (this.#failure) throw this.#failure;
    if (this.#current !== undefined) this.#send();
    const hex = await new Promise<string>((resolve, reject) => {
      this.#result = { resolve, reject };
      this.#thread.post({ type: 'end', id: this.#id });
    });
    this.#close();
    return `${this.algorithm}:${hex}`;
  }

  /** Gives up (the ingest failed): the thread forgets this blob. */
  abandon(): void {
    if (this.#closed) return;
    if (!this.#failure) this.#thread.post({ type: 'drop', id: this.#id });
    this.#close();
  }

  /** From the thread. */
  answer(message: FromThread): void {
    if (message.type === 'done') {
      this.#free.push(message.slot);
      this.#wake();
    } else if (message.type === 'digest') {
      this.#result?.resolve(message.hex);
    } else {
      this.fail(new DigestThreadError(`digest thread: ${message.message}`, undefined));
    }
  }

  /** The thread is gone (or refused this blob): every wait of this digest fails. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#result?.reject(this.#failure);
    this.#wake();
  }

  #send(): void {
    const slot = this.#current!;
    this.#thread.post({
      type: 'data',
      id: this.#id,
      slot,
      buffer: this.#slots[slot]!,
      length: this.#fill,
    });
    this.#current = undefined;
    this.#fill = 0;
  }

  async #takeSlot(): Promise<number> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      const free = this.#free.pop();
      if (free !== undefined) return free;
      if (this.#slots.length < SLOTS_PER_BLOB) {
        this.#slots.push(this.#thread.spareSlot());
        return this.#slots.length - 1;
      }
      await new Promise<void>((resolve) => (this.#waiting = resolve));
    }
  }

  #wake(): void {
    const resolve = this.#waiting;
    this.#waiting = undefined;
    resolve?.();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Slots the thread may still be reading (after a failure, or a drop) are not reused.
    const returnable = this.#failure === undefined && this.#free.length === this.#slots.length;
    this.#thread.closed(this.#id, returnable ? this.#slots : []);
  }
}

/** The process-wide digest thread (see the top of this file). */
class DigestThread {
  #worker: Worker | undefined;
  #online = false;
  #unavailable = false;
  readonly #blobs = new Map<number, ThreadedDigest>();
  readonly #spare: SharedArrayBuffer[] = [];
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;

  /** Starts the thread if it is not running, so that it is ready when a large blob comes. */
  prestart(): void {
    if (this.#worker !== undefined || this.#unavailable) return;
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    } catch (err) {
      this.#giveUp(err);
      return;
    }
    this.#worker = worker;
    this.#online = false;
    worker.on('online', () => {
      if (this.#worker === worker) this.#online = true;
    });
    worker.on('message', (message: FromThread) => this.#blobs.get(message.id)?.answer(message));
    worker.on('error', (err) => this.#died(worker, err));
    worker.on('exit', (code) => this.#died(worker, new Error(`the digest thread exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    worker.unref();
    this.#idle();
  }

  /**
   * A digest on the thread (started if need be: what is posted meanwhile waits for it), or
   * undefined when it cannot run. If it fails to come up, its digests fail with DigestThreadError.
   */
  open(algorithm: DigestAlgorithm): ThreadedDigest | undefined {
    this.prestart();
    if (this.#worker === undefined) return undefined;
    const id = this.#nextId++;
    const digest = new ThreadedDigest(this, id, algorithm);
    this.#blobs.set(id, digest);
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#worker.ref();
    this.post({ type: 'open', id, algorithm });
    return digest;
  }

  post(message: ToThread): void {
    this.#worker?.postMessage(message);
  }

  spareSlot(): SharedArrayBuffer {
    return this.#spare.pop() ?? new SharedArrayBuffer(DIGEST_SLOT_BYTES);
  }

  closed(id: number, slots: readonly SharedArrayBuffer[]): void {
    this.#blobs.delete(id);
    for (const slot of slots) if (this.#spare.length < MAX_SPARE_SLOTS) this.#spare.push(slot);
    if (this.#blobs.size === 0) {
      this.#worker?.unref();
      this.#idle();
    }
  }

  /** Ends the thread now (for tests and long-lived processes); the next large blob restarts it. */
  async terminate(): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    this.#died(worker, new Error('the digest thread was ended'));
    await worker.terminate();
  }

  #idle(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    const worker = this.#worker;
    this.#idleTimer = setTimeout(() => {
      if (this.#worker !== worker || this.#blobs.size > 0 || worker === undefined) return;
      this.#worker = undefined;
      this.#online = false;
      this.#spare.length = 0;
      void worker.terminate();
    }, IDLE_MS).unref();
  }

  #died(worker: Worker, err: Error): void {
    if (this.#worker !== worker) return;
    // One that never came up will not next time either: digest on the main thread from now on.
    if (!this.#online) this.#giveUp(err);
    this.#worker = undefined;
    this.#online = false;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const failure = new DigestThreadError(`the digest thread stopped: ${err.message}`, err);
    const blobs = [...this.#blobs.values()];
    this.#blobs.clear();
    for (const blob of blobs) blob.fail(failure);
  }

  #giveUp(err: unknown): void {
    if (this.#unavailable) return;
    this.#unavailable = true;
    process.emitWarning(
      `the digest thread is unavailable, digesting on the main thread: ${err instanceof Error ? err.message : String(err)}`,
      { code: 'STRATA_DIGEST_THREAD' },
    );
  }
}

const thread = new DigestThread();

/** Starts the digest thread ahead of a large transfer (a pull), so that its blobs can use it. */
export function prestartDigestThread(): void {
  thread.prestart();
}

/** A digest on the digest thread, or undefined when it is not available right now. */
export function openThreadedDigest(algorithm: DigestAlgorithm): ThreadedDigest | undefined {
  return thread.open(algorithm);
}

/** Ends the digest thread now instead of after its idle time. */
export function terminateDigestThread(): Promise<void> {
  return thread.terminate();
}
