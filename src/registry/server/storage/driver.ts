import type { Readable, Writable } from 'node:stream';

/**
 * What the registry needs from the place its bytes live. Deliberately small and path-based (like
 * distribution's storage drivers) so that an S3-compatible object store fits behind it without
 * any change above: no directories to create, no hard links, no locks; `move` is the only
 * operation that must be atomic, and a reader must never see a partly written object.
 *
 * Paths are `/`-separated, relative, never `..`; the layout above the driver is paths.ts.
 */
export interface StorageDriver {
  /** Shown in logs and `registry serve`'s banner: "filesystem", "inmemory", "s3". */
  readonly name: string;

  /** A whole small object (links, manifests, session state), or undefined when absent. */
  getContent(path: string): Promise<Buffer | undefined>;

  /** Creates or replaces a small object; readers see the old content or the new, never a mix. */
  putContent(path: string, data: Uint8Array): Promise<void>;

  /**
   * The object's bytes from `offset` (default 0) up to `end` (exclusive, default its size), or
   * undefined when absent. The stream must be destroyed by the caller when abandoned.
   */
  reader(path: string, range?: { offset?: number; end?: number }): Promise<Readable | undefined>;

  /**
   * Optional fast path for serving: writes bytes [offset, end) of an object into `destination`
   * (not ending it), reusing a few buffers. A reader has to allocate every chunk it hands away;
   * at GB/s that allocation, not the disk, is what a download costs. A buffer is reused only
   * after the destination's write callback for it, so `destination` must not keep a chunk past
   * that callback. Rejects when the object is absent or shorter than `end`, or when the
   * destination fails or closes first.
   */
  copyTo?(path: string, range: { offset: number; end: number }, destination: Writable): Promise<void>;

  /** Size and modification time, or undefined when absent. Directories (prefixes) are objects too. */
  stat(path: string): Promise<ObjectInfo | undefined>;

  /**
   * A writer for an upload in progress: `append` continues an object written earlier (possibly
   * by another process before a restart) from its current size; otherwise it starts empty.
   */
  writer(path: string, options: { append: boolean }): Promise<ObjectWriter>;

  /** The names directly under `prefix` (objects and prefixes), sorted; [] when nothing is there. */
  list(prefix: string): Promise<string[]>;

  /** Renames an object atomically, replacing `to`; the source must exist. */
  move(from: string, to: string): Promise<void>;

  /** Removes an object or everything under a prefix; absent is not an error. */
  delete(path: string): Promise<void>;

  /** Sets the modification time to now (GC's grace period reads it); absent is not an error. */
  touch(path: string): Promise<void>;
}

export interface ObjectInfo {
  readonly size: number;
  readonly modifiedAt: Date;
  readonly isDirectory: boolean;
}

/** An append-only writer. Nothing written is visible at the path before `commit`. */
export interface ObjectWriter {
  /** Bytes the object holds so far, those written through this writer included. */
  readonly size: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the bytes durable and leaves the object at its path for `append` or `move`. */
  commit(): Promise<void>;
  /** Drops what this writer wrote since it opened (an upload chunk that failed midway). */
  cancel(): Promise<void>;
}
