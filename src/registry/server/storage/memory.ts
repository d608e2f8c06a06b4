import { Readable } from 'node:stream';
import type { ObjectInfo, ObjectWriter, StorageDriver } from './driver.js';
import { assertSafeStoragePath } from './filesystem.js';

interface StoredObject {
  data: Buffer;
  modifiedAt: Date;
}

/**
 * Everything in a Map: for tests, and for a throw-away registry (`storage: inmemory`, as
 * distribution has). Objects are immutable buffers, so a reader keeps the bytes it started with.
 */
export class MemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  private readonly objects = new Map<string, StoredObject>();

  async getContent(path: string): Promise<Buffer | undefined> {
    return this.objects.get(normalize(path))?.data;
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    this.objects.set(normalize(path), { data: Buffer.from(data), modifiedAt: new Date() });
  }

  async reader(path: string, range: { offset?: number; end?: number } = {}): Promise<Readable | undefined> {
    const object = this.objects.get(normalize(path));
    if (!object) return undefined;
    return Readable.from([object.data.subarray(range.offset ?? 0, range.end ?? object.data.length)]);
  }

  async stat(path: string): Promise<ObjectInfo | undefined> {
    const key = normalize(path);
    const object = this.objects.get(key);
    if (object) return { size: object.data.length, modifiedAt: object.modifiedAt, isDirectory: false };
    let newest: Date | undefined;
    for (const [other, value] of this.objects) {
      if (other.startsWith(`${key}/`) && (!newest || value.modifiedAt > newest)) newest = value.modifiedAt;
    }
    return newest ? { size: 0, modifiedAt: newest, isDirectory: true } : undefined;
  }

  async writer(path: string, options: { append: boolean }): Promise<ObjectWriter> {
    const key = normalize(path);
    const objects = this.objects;
    const base = options.append ? (objects.get(key)?.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const chunks: Buffer[] = [];
    let written = 0;
    return {
      get size() {
        return base.length + written;
      },
      async write(chunk: Uint8Array) {
        chunks.push(Buffer.from(chunk));
        written += chunk.length;
      },
      async commit() {
        objects.set(key, { data: Buffer.concat([base, ...chunks]), modifiedAt: new Date() });
      },
      async cancel() {
        chunks.length = 0;
        written = 0;
      },
    };
  }

  async list(prefix: string): Promise<string[]> {
    const key = normalize(prefix);
    const start = key === '' ? '' : `${key}/`;
    const names = new Set<string>();
    for (const other of this.objects.keys()) {
      if (other.startsWith(start)) names.add(other.slice(start.length).split('/')[0]!);
    }
    return [...names].sort();
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.objects.get(normalize(from));
    if (!source) throw Object.assign(new Error(`no such object: ${from}`), { code: 'ENOENT' });
    this.objects.set(normalize(to), source);
    this.objects.delete(normalize(from));
  }

  async delete(path: string): Promise<void> {
    const key = normalize(path);
    for (const other of [...this.objects.keys()]) {
      if (other === key || other.startsWith(`${key}/`)) this.objects.delete(other);
    }
  }

  async touch(path: string): Promise<void> {
    const object = this.objects.get(normalize(path));
    if (object) object.modifiedAt = new Date();
  }
}

/** The same paths the filesystem driver accepts ('' = the root), so tests on memory catch bad ones. */
function normalize(path: string): string {
  if (path !== '') assertSafeStoragePath(path);
  return path;
}
