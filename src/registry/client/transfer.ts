import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Store } from '../../store/index.js';
import { StrataError, isStrataError } from '../../errors.js';
import { isRetriable, networkError } from './errors.js';
import type { ProgressListener, TransferEvent } from './progress.js';
import type { RemoteRepository } from './repository.js';

/** How often a transfer reports its byte count: often enough for a live view, not per chunk. */
const PROGRESS_INTERVAL_MS = 100;

/** Runs `work` over `items`, at most `limit` at a time; the first failure stops new work. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  abort?: AbortController,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        // Keep the first cause: the others are usually this failure's abort echoing back.
        failure ??= { error };
        abort?.abort(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
}

/**
 * Waits until every one of `parts` has settled, so that nothing of a transfer is still writing
 * into the store when it goes on or fails. The first part to fail aborts the others, and its error
 * is the one thrown (the abort's reason when the signal had fired first: what fails after an abort
 * is usually that abort echoing back).
 */
export async function settleAll(parts: readonly Promise<unknown>[], abort: AbortController): Promise<void> {
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    failure ??= { error: abort.signal.aborted ? (abort.signal.reason as unknown) : error };
    abort.abort(error);
  };
  await Promise.all(parts.map((part) => part.then(() => undefined, fail)));
  if (failure !== undefined) throw failure.error;
}

/**
 * An AbortController that also fires when the caller's signal does. Every request of a transfer
 * listens to it, so it takes more listeners than EventTarget's default warning threshold (10)
 * when a caller asks for more concurrent downloads than that.
 */
export function linkedAbort(signal: AbortSignal | undefined): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller;
}

/** Emits progress for one blob, rate-limiting the byte counts. */
export class BlobReporter {
  transferred = 0;
  private lastReport = 0;

  constructor(
    private readonly listener: ProgressListener | undefined,
    private readonly base: Omit<
      Extract<TransferEvent, { type: 'blob' }>,
      'status' | 'transferred' | 'message'
    >,
  ) {}

  status(status: Extract<TransferEvent, { type: 'blob' }>['status'], message?: string): void {
    this.listener?.({
      ...this.base,
      status,
      transferred: this.transferred,
      ...(message !== undefined ? { message } : {}),
    });
  }

  add(bytes: number): void {
    this.transferred += bytes;
    const now = Date.now();
    if (now - this.lastReport >= PROGRESS_INTERVAL_MS) {
      this.lastReport = now;
      this.status('progress');
    }
  }
}

/** Marks a body that ended before its announced size: a dropped transfer, worth resuming. */
class TruncatedBody extends Error {
  readonly code = 'ECONNRESET';
}

/**
 * Downloads one blob into the store, verified against its digest and size, resuming after a
 * dropped connection from the bytes already on disk (in this run or, via the ingest's `.partial`
 * file, a later one). A wrong digest stores nothing and is not retried.
 */
export async function downloadBlob(
  store: Store,
  repository: RemoteRepository,
  descriptor: { digest: Digest; size: number },
  reporter: BlobReporter,
): Promise<void> {
  const { digest, size } = descriptor;
  if (await store.content.retain(digest)) {
    reporter.transferred = size;
    reporter.status('exists');
    return;
  }
  const client = repository.client;
  for (let attempt = 0; ; attempt++) {
    try {
      await store.content.ingest(
        async (offset) => {
          reporter.transferred = offset;
          reporter.status(offset > 0 ? 'resumed' : 'started');
          const body = await repository.openBlob(digest, offset);
          return counted(body, offset, size, reporter);
        },
        { digest, size, ref: `registry-blob:${digest}`, offThread: true },
      );
      reporter.transferred = size;
      reporter.status('done');
      return;
    } catch (err) {
      client.signal?.throwIfAborted();
      if (isRetriable(err) && attempt < client.retries) {
        reporter.status('retrying', err instanceof Error ? err.message : String(err));
        await client.backoff(attempt);
        continue;
      }
      if (isStrataError(err, 'DIGEST_MISMATCH')) {
        throw new StrataError(
          'DIGEST_MISMATCH',
          `blob ${digest} from ${repository.name}: ${err.message}; nothing was stored`,
          { cause: err },
        );
      }
      if (isStrataError(err)) throw err;
      throw networkError(
        `blob ${digest} from ${repository.name}: download failed after ${attempt + 1} attempts`,
        err,
      );
    }
  }
}

/** Bytes a stream may hold back, unread, while the store catches up, before it is paused. */
const BODY_HIGH_WATER_BYTES = 4 * 1024 * 1024;

/**
 * A stream's chunks as they arrive, handed over in batches (whatever came in since the last one
 * was taken) without joining them: the store writes a batch with one writev. A Readable is read
 * in flowing mode (its 'data' events), which passes each chunk on as it was pushed (by a socket,
 * a compressor), where async iteration would make the stream join what it buffered into one new
 * Buffer. Stopping early destroys the stream.
 */
export async function* chunkBatches(body: AsyncIterable<unknown>): AsyncGenerator<Uint8Array[]> {
  if (!(body instanceof Readable)) {
    for await (const chunk of body) yield [chunk as Uint8Array];
    return;
  }
  let queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const onData = (chunk: Uint8Array): void => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= BODY_HIGH_WATER_BYTES) body.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (error: unknown): void => {
    failure ??= { error };
    notify();
  };
  body.on('data', onData);
  body.on('end', onEnd);
  // A body destroyed without an error ends early: the size check after it says so.
  body.on('close', onEnd);
  body.on('error', onError);
  try {
    for (;;) {
      if (queue.length > 0) {
        const batch = queue;
        queue = [];
        queued = 0;
        if (body.isPaused()) body.resume();
        yield batch;
      } else if (failure !== undefined) {
        throw failure.error;
      } else if (ended) {
        return;
      } else {
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  } finally {
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('close', onEnd);
    body.off('error', onError);
    if (!body.readableEnded) body.destroy();
  }
}

async function* counted(
  body: AsyncIterable<unknown>,
  offset: number,
  size: number,
  reporter: BlobReporter,
): AsyncGenerator<Uint8Array[]> {
  let received = offset;
  for await (const batch of chunkBatches(body)) {
    let bytes = 0;
    for (const chunk of batch) bytes += chunk.length;
    received += bytes;
    reporter.add(bytes);
    yield batch;
  }
  // A connection closed cleanly but early would look like wrong content to the ingest, which
  // would then throw the partial file away; it is an interruption, so say so and resume.
  if (received < size)
    throw new TruncatedBody(`the registry closed the transfer at byte ${received} of ${size}`);
}
