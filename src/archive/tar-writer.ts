/**
 * Deterministic tar writing.
 *
 * The same tree must give the same bytes, hence the same diffID, every time and on every host
 * (ARCHITECTURE.md, "Deterministic tars"). So the encoder here, not tar-stream's, decides every
 * header byte:
 * - entries sorted by their tar name bytewise (directories carry their trailing `/`), which
 *   puts parents before children;
 * - ustar headers, with PAX extended headers only when a value does not fit ustar (long names
 *   or link targets, uid/gid ≥ 2^21, sizes ≥ 8 GiB, mtimes before 1970 or after 2242) or when
 *   there are xattrs (`SCHILY.xattr.*`, values as raw bytes, so binary values such as
 *   `security.capability` survive — tar-stream would turn them into UTF-8 strings);
 * - no uname/gname, mtime in whole seconds, atime/ctime never written, fixed PAX header names,
 *   PAX records sorted by key, octal fields zero-padded and NUL-terminated (as Go's
 *   archive/tar, which Docker and BuildKit use, writes them).
 * Everything streams: a file is opened only when its entry is written, and read in chunks.
 * The directory walk and file reads use synchronous calls, for the reason given in extract.ts:
 * a thread-pool round trip per call made tarring /usr/share (54k entries) take 11 s against
 * GNU tar's 0.5 s; synchronously it takes 1.3–2 s, and the event loop turns between chunks.
 */
import type { BigIntStats } from 'node:fs';
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
} from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { StrataError, errnoCode, isStrataError } from '../errors.js';
import { isPortableXattr, readXattrTree, type XattrTree } from './native.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX, isOverlayOpaque, overlayWhiteoutHeader } from './whiteout.js';

/** `link` is a hard link (tar type `1`, named as Go's archive/tar and tar-stream name it). */
export type TarEntryType =
  'file' | 'directory' | 'symlink' | 'link' | 'char-device' | 'block-device' | 'fifo';

/** A tar entry's metadata, normalized: what the writer takes and what the reader gives. */
export interface TarHeader {
  /** Relative `/`-separated path: no leading `/` or `./`, no `.`/`..`/empty components, no trailing `/`. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Written in whole seconds (truncated towards −∞). */
  mtime: Date;
  /** Body size; 0 for every type but `file`. */
  size: number;
  /** Symlink target (verbatim) or hardlink target (an entry name); '' otherwise. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes, written as PAX `SCHILY.xattr.<name>` records. */
  xattrs: ReadonlyMap<string, Buffer>;
}

/** Writer input: name and type are required, everything else has a neutral default. */
export type TarHeaderInput = Pick<TarHeader, 'name' | 'type'> & Partial<Omit<TarHeader, 'name' | 'type'>>;

/**
 * An entry body: bytes, an async iterable of chunks (a Readable is one), or a function that
 * opens the body lazily — only when the entry is being written, so a walk over thousands of
 * files never holds more than one open.
 */
export type TarBody =
  | Uint8Array
  | FileBody
  | AsyncIterable<Uint8Array>
  | (() => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>);

/**
 * A body that is a regular file on the host, `path`, of the header's size: the encoder reads
 * it itself, small files straight into its output buffer.
 */
export class FileBody {
  /**
   * `label` names the file in errors (default: the entry's name). With `unchanged`, the file
   * must still be that inode with those times when it is read (an fstat after opening): it was
   * chosen, and perhaps hashed, earlier.
   */
  constructor(
    readonly path: string,
    readonly label?: string,
    readonly unchanged?: FileIdentity,
  ) {}
}

/** What tells that a file is still the one seen before: lstat's dev, ino, mtimeMs and ctimeMs. */
export interface FileIdentity {
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

export interface TarWriterEntry {
  header: TarHeaderInput;
  body?: TarBody;
}

/** Alias of TarWriterEntry for callers that build archives from other sources. */
export type TarEntryInput = TarWriterEntry;

const BLOCK = 512;
const ZERO_BLOCKS = Buffer.alloc(2 * BLOCK);
/** Largest value of an octal field of `length` bytes (length − 1 digits and a NUL). */
const maxOctal = (length: number): number => 8 ** (length - 1) - 1;
const MAX_ID = maxOctal(8); // uid, gid, devmajor, devminor: 2^21 − 1
const MAX_SIZE = maxOctal(12); // size, mtime: 8 GiB − 1

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

/** True for a clean relative entry path (see TarHeader.name). */
export function isCleanEntryPath(name: string): boolean {
  if (name === '' || name.includes('\0')) return false;
  return name.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

function invalid(name: string, what: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', `tar entry "${name}": ${what}`);
}

function checkInteger(name: string, field: string, value: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw invalid(name, `${field} ${value} is not an integer between 0 and ${max}`);
  }
}

/** Fills defaults and validates; throws INVALID_ARGUMENT naming the entry. */
export function normalizeHeader(input: TarHeaderInput): TarHeader {
  const { type } = input;
  let name = input.name;
  // Directories may be named with their tar-style trailing slash; `.` is the root directory.
  if (type === 'directory' && name.length > 1 && name.endsWith('/')) name = name.slice(0, -1);
  if (!isCleanEntryPath(name) && !(type === 'directory' && name === '.')) {
    throw invalid(
      name,
      'name must be a clean relative path (no leading "/", no ".", ".." or empty components)',
    );
  }
  if (!(type in TYPEFLAG)) throw invalid(name, `unknown type ${String(type)}`);
  const header: TarHeader = {
    name,
    type,
    mode: (input.mode ?? (type === 'directory' ? 0o755 : 0o644)) & 0o7777,
    uid: input.uid ?? 0,
    gid: input.gid ?? 0,
    mtime: input.mtime ?? new Date(0),
    size: input.size ?? 0,
    linkname: input.linkname ?? '',
    devmajor: input.devmajor ?? 0,
    devminor: input.devminor ?? 0,
    xattrs: input.xattrs ?? new Map(),
  };
  checkInteger(name, 'uid', header.uid);
  checkInteger(name, 'gid', header.gid);
  checkInteger(name, 'size', header.size);
  checkInteger(name, 'devmajor', header.devmajor, MAX_ID);
  checkInteger(name, 'devminor', header.devminor, MAX_ID);
  if (Number.isNaN(header.mtime.getTime())) throw invalid(name, 'mtime is not a valid date');
  if (type !== 'file' && header.size !== 0) throw invalid(name, `a ${type} entry cannot have a body`);
  if (type === 'symlink' || type === 'link') {
    if (header.linkname === '' || header.linkname.includes('\0'))
      throw invalid(name, `${type} needs a link target`);
    if (type === 'link' && !isCleanEntryPath(header.linkname)) {
      throw invalid(name, `hardlink target "${header.linkname}" must be a clean relative entry name`);
    }
  } else if (header.linkname !== '') {
    throw invalid(name, `a ${type} entry cannot have a link target`);
  }
  if (type !== 'char-device' && type !== 'block-device' && (header.devmajor !== 0 || header.devminor !== 0)) {
    throw invalid(name, `a ${type} entry cannot have device numbers`);
  }
  for (const key of header.xattrs.keys()) {
    // A PAX record is `key=value`: the first `=` ends the key, so a name cannot contain one.
    if (key === '' || key.includes('=') || key.includes('\0') || key.includes('\n')) {
      throw invalid(name, `extended attribute name "${key}" cannot be stored in a PAX header`);
    }
  }
  return header;
}

/** Whole seconds since the epoch, rounded towards −∞ (so 1969-12-31T23:59:59.5 is −1). */
export function toSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** Cuts UTF-8 bytes to at most `max` without splitting a character. */
function truncateUtf8(bytes: Buffer, max: number): Buffer {
  if (bytes.length <= max) return bytes;
  let cut = max;
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return bytes.subarray(0, cut);
}

/**
 * Splits a long name into ustar prefix (≤ 155 bytes) and name (≤ 100 bytes) at a `/`, taking
 * the last usable slash so the prefix is as long as possible (Go's archive/tar does the same,
 * so our headers match a Go-written tar of the same tree). A directory's trailing `/` stays in
 * the name part. Returns undefined when no split fits.
 */
function splitUstarName(bytes: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (bytes.length <= 100) return { name: bytes, prefix: Buffer.alloc(0) };
  let limit = Math.min(bytes.length, 156);
  if (limit === bytes.length && bytes[limit - 1] === 0x2f) limit--;
  const slash = bytes.subarray(0, limit).lastIndexOf(0x2f);
  const suffix = bytes.length - slash - 1;
  if (slash <= 0 || suffix === 0 || suffix > 100 || slash > 155) return undefined;
  return { prefix: bytes.subarray(0, slash), name: bytes.subarray(slash + 1) };
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  // Zero-padded to length − 1 digits, then NUL. Callers guarantee the value fits.
  block.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'ascii');
  block[offset + length - 1] = 0;
}

interface UstarFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}

function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  f.name.copy(block, 0);
  writeOctal(block, 100, 8, f.mode);
  writeOctal(block, 108, 8, f.uid);
  writeOctal(block, 116, 8, f.gid);
  writeOctal(block, 124, 12, f.size);
  writeOctal(block, 136, 12, f.mtime);
  block.write(f.typeflag, 156, 1, 'ascii');
  f.linkname.copy(block, 157);
  block.write('ustar\u000000', 257, 8, 'ascii'); // magic "ustar\0", version "00"
  // uname (265) and gname (297) stay empty: names are host-specific and ids are what count.
  writeOctal(block, 329, 8, f.devmajor);
  writeOctal(block, 337, 8, f.devminor);
  f.prefix.copy(block, 345);
  // Checksum: computed with its own field as spaces, written as 6 digits, NUL, space.
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0'), 148, 6, 'ascii');
  block[154] = 0;
  block[155] = 0x20;
  return block;
}

/** PAX records `"<len> <key>=<value>\n"`, sorted by key so the bytes are stable. */
function encodePaxRecords(records: Map<string, Buffer>): Buffer {
  const keys = [...records.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const parts: Buffer[] = [];
  for (const key of keys) {
    const value = records.get(key) ?? Buffer.alloc(0);
    const rest = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
    // The length counts its own digits: grow until the digit count is stable.
    let length = rest + String(rest).length;
    while (String(length).length + rest !== length) length = String(length).length + rest;
    parts.push(Buffer.from(`${length} ${key}=`), value, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

function padding(size: number): Buffer | undefined {
  const rest = size % BLOCK;
  return rest === 0 ? undefined : ZERO_BLOCKS.subarray(0, BLOCK - rest);
}

/** The header blocks of one entry: a PAX extended header when needed, then the ustar header. */
export function encodeHeader(input: TarHeaderInput): Buffer {
  const h = normalizeHeader(input);
  const pax = new Map<string, Buffer>();
  const fullName = Buffer.from(h.type === 'directory' ? `${h.name}/` : h.name, 'utf8');
  let split = splitUstarName(fullName);
  if (!split) {
    pax.set('path', fullName);
    // Readers that ignore PAX still see a recognisable (truncated) name.
    split = { name: truncateUtf8(fullName, 100), prefix: Buffer.alloc(0) };
  }
  let linkname: Buffer = Buffer.from(h.linkname, 'utf8');
  if (linkname.length > 100) {
    pax.set('linkpath', linkname);
    linkname = truncateUtf8(linkname, 100);
  }
  const fit = (key: string, value: number, max: number): number => {
    if (value <= max && value >= 0) return value;
    pax.set(key, Buffer.from(String(value)));
    return 0;
  };
  const uid = fit('uid', h.uid, MAX_ID);
  const gid = fit('gid', h.gid, MAX_ID);
  const size = fit('size', h.size, MAX_SIZE);
  const mtime = fit('mtime', toSeconds(h.mtime), MAX_SIZE);
  for (const [key, value] of h.xattrs) pax.set(`SCHILY.xattr.${key}`, value);

  const blocks: Buffer[] = [];
  if (pax.size > 0) {
    const data = encodePaxRecords(pax);
    const base = h.name.slice(h.name.lastIndexOf('/') + 1);
    blocks.push(
      ustarBlock({
        name: truncateUtf8(Buffer.from(`PaxHeaders/${base}`, 'utf8'), 100),
        prefix: Buffer.alloc(0),
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: data.length,
        mtime,
        typeflag: 'x',
        linkname: Buffer.alloc(0),
        devmajor: 0,
        devminor: 0,
      }),
      data,
    );
    const pad = padding(data.length);
    if (pad) blocks.push(pad);
  }
  blocks.push(
    ustarBlock({
      name: split.name,
      prefix: split.prefix,
      mode: h.mode,
      uid,
      gid,
      size,
      mtime,
      typeflag: TYPEFLAG[h.type],
      linkname,
      devmajor: h.devmajor,
      devminor: h.devminor,
    }),
  );
  return Buffer.concat(blocks);
}

/** An entry body as chunks, whatever form it was given in. */
export async function openBody(
  body: TarBody,
  size: number,
  name: string,
): Promise<AsyncIterable<Uint8Array>> {
  if (body instanceof Uint8Array) return [body] as unknown as AsyncIterable<Uint8Array>;
  if (body instanceof FileBody) return readFileBody(body, size, body.label ?? name);
  if (typeof body === 'function') return body();
  return body;
}

const BATCH_SIZE = 1024 * 1024;
/** Pieces at least this large are passed on as they are rather than copied into a batch. */
const PASS_THROUGH = BATCH_SIZE / 4;

/**
 * Output chunks of about BATCH_SIZE: headers, small bodies and padding are copied into one
 * buffer, so a tree of small files makes a few hundred chunks, not three per file (each chunk
 * costs a stream round trip and a hash update of its own).
 */
class Batcher {
  #buffer = Buffer.allocUnsafe(BATCH_SIZE);
  #used = 0;
  readonly ready: Buffer[] = [];

  constructor(private readonly coalesce: boolean) {}

  push(bytes: Uint8Array): void {
    if (!this.coalesce || bytes.length >= PASS_THROUGH) {
      this.flush();
      this.ready.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
      return;
    }
    if (this.#used + bytes.length > this.#buffer.length) this.flush();
    this.#buffer.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  /** Reads up to `length` bytes of `fd` at `position` straight into the batch. */
  read(fd: number, length: number, position: number): number {
    if (this.#used + length > this.#buffer.length) this.flush();
    const count = readSync(fd, this.#buffer, this.#used, length, position);
    this.#used += count;
    return count;
  }

  flush(): void {
    if (this.#used === 0) return;
    this.ready.push(this.#buffer.subarray(0, this.#used));
    this.#buffer = Buffer.allocUnsafe(BATCH_SIZE);
    this.#used = 0;
  }
}

/**
 * A FileBody's bytes into the batch: small files in one read of size + 1 bytes (a regular
 * file's read is short only at its end, so getting exactly `size` proves it did not grow, and
 * the extra byte would show it did), large ones in READ_CHUNK pieces passed through.
 */
function readFileInto(batch: Batcher, body: FileBody, size: number, name: string): void {
  if (size === 0 && body.unchanged === undefined) return;
  const fd = openArchived(body.path, name, body.unchanged);
  try {
    let position = 0;
    while (true) {
      const want = Math.min(READ_CHUNK, size - position + 1);
      let count: number;
      if (want >= PASS_THROUGH) {
        const chunk = Buffer.allocUnsafe(want);
        count = readSync(fd, chunk, 0, want, position);
        if (position + count <= size && count > 0) batch.push(chunk.subarray(0, count));
      } else {
        count = batch.read(fd, want, position);
      }
      position += count;
      if (position > size) break;
      if (count < want) break;
    }
    if (position !== size) throw sizeChanged(name, size, position);
  } finally {
    closeSync(fd);
  }
}

/** The tar byte stream of `entries` as chunks: headers, bodies, padding, the 1024-byte end. */
export async function* encodeEntries(
  entries: AsyncIterable<TarWriterEntry> | Iterable<TarWriterEntry>,
  options: { coalesce?: boolean } = {},
): AsyncGenerator<Buffer> {
  const batch = new Batcher(options.coalesce !== false);
  for await (const entry of entries) {
    const header = normalizeHeader(entry.header);
    batch.push(encodeHeader(header));
    if (entry.body === undefined) {
      if (header.size !== 0) throw invalid(header.name, `declares ${header.size} bytes but has no body`);
    } else if (entry.body instanceof FileBody && options.coalesce !== false) {
      readFileInto(batch, entry.body, header.size, entry.body.label ?? header.name);
      const pad = padding(header.size);
      if (pad) batch.push(pad);
    } else {
      let written = 0;
      for await (const chunk of await openBody(entry.body, header.size, header.name)) {
        if (!(chunk instanceof Uint8Array)) throw invalid(header.name, 'body chunks must be bytes');
        written += chunk.length;
        if (written > header.size) {
          throw invalid(header.name, `body is larger than the declared ${header.size} bytes`);
        }
        if (chunk.length > 0) batch.push(chunk);
        yield* batch.ready.splice(0);
      }
      if (written !== header.size) {
        throw invalid(header.name, `body has ${written} bytes, the header declares ${header.size}`);
      }
      const pad = padding(written);
      if (pad) batch.push(pad);
    }
    yield* batch.ready.splice(0);
  }
  batch.push(ZERO_BLOCKS);
  batch.flush();
  yield* batch.ready.splice(0);
}

/**
 * A tar stream of `entries`, pulled lazily: an entry (and its body) is read only when needed.
 * `coalesce: false` passes every piece on at once instead of gathering small ones (for a
 * producer that waits for its entries to come out).
 */
export function writeEntries(
  entries: AsyncIterable<TarWriterEntry> | Iterable<TarWriterEntry>,
  options: { coalesce?: boolean } = {},
): Readable {
  return Readable.from(encodeEntries(entries, options), { objectMode: false, highWaterMark: 64 * 1024 });
}

/** Alias of writeEntries. */
export const writeTarEntries = writeEntries;

interface PendingEntry {
  entry: TarWriterEntry;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Push-style writer for callers that assemble a tar from several sources (image export):
 * `await writer.add(header, body)` resolves once the entry has been written to `stream`
 * (backpressure: it waits for the reader of `stream`); `finish()` writes the end marker.
 */
export class TarWriter {
  readonly stream: Readable;
  private readonly queue: PendingEntry[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  private closed = false;

  constructor() {
    this.stream = writeEntries(this.source(), { coalesce: false });
  }

  add(header: TarHeaderInput, body?: TarBody): Promise<void> {
    if (this.finished || this.closed) {
      return Promise.reject(invalid(header.name, 'added after the tar writer was finished or closed'));
    }
    // Validate now so the caller gets the error from add(), not from the stream later.
    try {
      normalizeHeader(header);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolvePromise, reject) => {
      this.queue.push({ entry: { header, body }, resolve: resolvePromise, reject });
      this.notify();
    });
  }

  /** Ends the archive after the queued entries. */
  finish(): void {
    this.finished = true;
    this.notify();
  }

  /** Fails the stream (and every pending add) with `error`. */
  abort(error: Error): void {
    this.stream.destroy(error);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async *source(): AsyncGenerator<TarWriterEntry> {
    let current: PendingEntry | undefined;
    try {
      while (true) {
        while (this.queue.length === 0) {
          if (this.finished) return;
          await new Promise<void>((r) => (this.wake = r));
        }
        current = this.queue.shift();
        if (!current) continue;
        yield current.entry;
        // The encoder asks for the next entry only after it has written this one's body.
        current.resolve();
        current = undefined;
      }
    } finally {
      this.closed = true;
      const error = (name: string) => invalid(name, 'not written: the tar stream was closed');
      if (current) current.reject(error(current.entry.header.name));
      for (const pending of this.queue.splice(0)) pending.reject(error(pending.entry.header.name));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Directory trees
// ---------------------------------------------------------------------------------------------

export interface DirectoryTarOptions {
  /**
   * Clamp mtimes to this instant (SOURCE_DATE_EPOCH semantics, like BuildKit's
   * rewrite-timestamp): later mtimes become this one, earlier ones are kept.
   */
  mtime?: Date;
  /**
   * 'overlay-to-oci': the tree is an overlayfs upper dir; 0/0 char devices become `.wh.<name>`
   * files and opaque directories get a `.wh..wh..opq` entry. 'none' (default): copy as is.
   */
  whiteouts?: 'overlay-to-oci' | 'none';
  /**
   * Entries to keep, by relative path (no leading `./`, no trailing `/`). Returning false for a
   * directory leaves out its whole subtree.
   */
  filter?: (relPath: string, stats: BigIntStats) => boolean;
  /**
   * Record xattrs (default true). Needs `getfattr` (Debian package attr); without it xattrs are
   * left out — except with 'overlay-to-oci', which cannot find opaque directories without it
   * and fails with UNSUPPORTED.
   */
  xattrs?: boolean;
}

/** A deterministic tar of the tree under `root` (the root itself has no entry). */
export function createTarFromDirectory(root: string, options: DirectoryTarOptions = {}): Readable {
  return writeEntries(walkDirectory(root, options));
}

const READ_CHUNK = 256 * 1024;

function decodeName(raw: Buffer, where: string): string {
  const name = raw.toString('utf8');
  // Tar names are carried as UTF-8 strings here; a byte sequence that is not UTF-8 would be
  // silently changed, so refuse it rather than produce a layer with different names.
  if (!Buffer.from(name, 'utf8').equals(raw)) {
    throw new StrataError(
      'UNSUPPORTED',
      `cannot archive "${where}${raw.toString('latin1')}": the name is not valid UTF-8`,
    );
  }
  return name;
}

/** Linux dev_t → (major, minor), glibc's encoding. */
export function splitDevice(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

function secondsOf(stats: BigIntStats): number {
  const ns = stats.mtimeNs;
  let seconds = ns / 1_000_000_000n;
  if (ns < 0n && seconds * 1_000_000_000n !== ns) seconds -= 1n; // floor, not truncation
  return Number(seconds);
}

/** A file-system error met while archiving, as a one-line StrataError. */
function archivingError(where: string, err: unknown): StrataError {
  if (isStrataError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ELOOP') {
    // Something was removed or replaced by a symlink between the walk and the read.
    return new StrataError(
      'CONFLICT',
      `cannot archive ${where}: it changed while being archived (${message})`,
      {
        cause: err,
      },
    );
  }
  return new StrataError('INTERNAL', `cannot archive ${where}: ${message}`, { cause: err, userFacing: true });
}

/**
 * A file's bytes, read in chunks. Asks for one byte more than the rest each time, so a file
 * that grew since the walk's lstat is noticed without an fstat (and one that shrank by the short
 * read): the entry would otherwise not match its header.
 */
async function* readFileBody(body: FileBody, size: number, name: string): AsyncGenerator<Buffer> {
  if (size === 0 && body.unchanged === undefined) return;
  const fd = openArchived(body.path, name, body.unchanged);
  try {
    let position = 0;
    while (position <= size) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - position + 1));
      const bytesRead = readSync(fd, chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      if (position > size) break;
      yield chunk.subarray(0, bytesRead);
    }
    if (position !== size) throw sizeChanged(name, size, position);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a file found as a regular file, never through a symlink swapped in since (O_NOFOLLOW),
 * and checks it is still `unchanged` when given.
 */
function openArchived(path: string, name: string, unchanged?: FileIdentity): number {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw archivingError(`"${name}"`, err);
  }
  if (unchanged !== undefined) {
    const now = fstatSync(fd);
    if (
      now.dev !== unchanged.dev ||
      now.ino !== unchanged.ino ||
      now.mtimeMs !== unchanged.mtimeMs ||
      now.ctimeMs !== unchanged.ctimeMs
    ) {
      closeSync(fd);
      throw new StrataError(
        'CONFLICT',
        `file "${name}" changed during the build (it was modified or replaced)`,
      );
    }
  }
  return fd;
}

function sizeChanged(name: string, size: number, position: number): StrataError {
  return new StrataError(
    'CONFLICT',
    `file "${name}" changed size while being archived (${size} bytes when walked, ${position > size ? 'more' : position} when read)`,
  );
}

interface Child {
  name: string;
  stats: BigIntStats;
  /** Basename in the tar (differs for converted whiteouts). */
  outName: string;
  whiteout: boolean;
  /** Sort key: the tar basename's bytes, with `/` for directories (see walkDirectory). */
  key: Buffer;
}

/**
 * The entries of a deterministic tar of `root`, for `writeEntries`. Entries come out sorted by
 * their full tar name bytewise: sorting each directory's children by `name` (+ `/` for
 * directories) and recursing depth-first gives exactly that order, because every descendant
 * of `d/` shares that prefix and so sorts right after it and before any sibling that follows.
 */
export async function* walkDirectory(
  root: string,
  options: DirectoryTarOptions = {},
): AsyncGenerator<TarWriterEntry> {
  let absRoot: string;
  let rootStats: BigIntStats;
  try {
    absRoot = await realpath(resolve(root));
    rootStats = await lstat(absRoot, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new StrataError('NOT_FOUND', `cannot archive ${root}: no such directory`);
    throw archivingError(root, err);
  }
  if (!rootStats.isDirectory()) {
    throw new StrataError('INVALID_ARGUMENT', `cannot archive ${root}: not a directory`);
  }
  const convert = options.whiteouts === 'overlay-to-oci';
  const emitXattrs = options.xattrs !== false;
  let xattrTree: XattrTree | undefined;
  if (emitXattrs || convert) {
    xattrTree = await readXattrTree(absRoot);
    if (!xattrTree && convert) {
      throw new StrataError(
        'UNSUPPORTED',
        `cannot convert overlay whiteouts under ${root}: getfattr not found (install Debian package attr) to detect opaque directories`,
      );
    }
  }
  const xattrs = xattrTree ?? new Map<string, Map<string, Buffer>>();
  const clamp = options.mtime ? toSeconds(options.mtime) : undefined;
  const firstPathOfInode = new Map<string, string>();

  const mtimeOf = (stats: BigIntStats): Date => {
    const seconds = secondsOf(stats);
    return new Date((clamp !== undefined && seconds > clamp ? clamp : seconds) * 1000);
  };
  const portableXattrs = (rel: string): Map<string, Buffer> | undefined => {
    if (!emitXattrs) return undefined;
    const all = xattrs.get(rel);
    if (!all) return undefined;
    const kept = new Map<string, Buffer>();
    // Sorted here too, although the encoder sorts PAX records: keeps headers equal in memory.
    for (const [key, value] of [...all].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
      if (isPortableXattr(key) && !key.includes('=')) kept.set(key, value);
    }
    return kept.size > 0 ? kept : undefined;
  };

  async function* walk(absDir: string, relDir: string): AsyncGenerator<TarWriterEntry> {
    const rawNames = readdirSync(absDir, { encoding: 'buffer' });
    const prefix = relDir === '' ? '' : `${relDir}/`;
    const children: Child[] = [];
    for (const raw of rawNames) {
      const name = decodeName(raw, prefix);
      const stats = lstatSync(join(absDir, name), { bigint: true });
      let outName = name;
      let whiteout = false;
      if (convert) {
        if (name.startsWith(WHITEOUT_PREFIX)) {
          throw new StrataError(
            'UNSUPPORTED',
            `cannot put "${prefix}${name}" in an OCI layer: the ${WHITEOUT_PREFIX} prefix is reserved for whiteouts`,
          );
        }
        if (stats.isCharacterDevice() && stats.rdev === 0n) {
          whiteout = true;
          outName = `${WHITEOUT_PREFIX}${name}`;
        }
      }
      const key = Buffer.from(stats.isDirectory() && !whiteout ? `${outName}/` : outName, 'utf8');
      children.push({ name, stats, outName, whiteout, key });
    }
    children.sort((a, b) => Buffer.compare(a.key, b.key));

    for (const child of children) {
      const { stats } = child;
      const rel = `${prefix}${child.name}`;
      if (options.filter && !options.filter(rel, stats)) continue;
      const abs = join(absDir, child.name);
      const base = {
        mode: Number(stats.mode & 0o7777n),
        uid: Number(stats.uid),
        gid: Number(stats.gid),
        mtime: mtimeOf(stats),
      };
      if (child.whiteout) {
        // Checked before hardlinks: overlayfs shares one whiteout inode between many paths.
        yield { header: overlayWhiteoutHeader(`${prefix}${child.outName}`, base) };
        continue;
      }
      const fileXattrs = xattrs.get(rel);
      if (convert && fileXattrs) {
        for (const key of fileXattrs.keys()) {
          if (/^(trusted|user)\.overlay\.(redirect|metacopy)$/.test(key)) {
            throw new StrataError(
              'UNSUPPORTED',
              `cannot convert "${rel}" to an OCI layer: overlayfs ${key.slice(key.lastIndexOf('.') + 1)} is in use (mount overlays with redirect_dir=off,metacopy=off)`,
            );
          }
        }
      }
      if (!stats.isDirectory() && stats.nlink > 1n) {
        const inode = `${stats.dev}:${stats.ino}`;
        const first = firstPathOfInode.get(inode);
        if (first !== undefined) {
          yield { header: { name: rel, type: 'link', linkname: first, ...base } };
          continue;
        }
        firstPathOfInode.set(inode, rel);
      }
      const xattrMap = portableXattrs(rel);
      const withXattrs = xattrMap ? { ...base, xattrs: xattrMap } : base;
      if (stats.isFile()) {
        const size = Number(stats.size);
        yield {
          header: { name: rel, type: 'file', size, ...withXattrs },
          body: new FileBody(abs),
        };
      } else if (stats.isDirectory()) {
        yield { header: { name: rel, type: 'directory', ...withXattrs } };
        if (convert && isOverlayOpaque(fileXattrs)) {
          yield {
            header: { name: `${rel}/${OPAQUE_WHITEOUT}`, type: 'file', ...base, mode: base.mode & 0o777 },
          };
        }
        yield* walk(abs, rel);
      } else if (stats.isSymbolicLink()) {
        const target = decodeName(readlinkSync(abs, { encoding: 'buffer' }), `${rel} -> `);
        yield { header: { name: rel, type: 'symlink', linkname: target, ...withXattrs } };
      } else if (stats.isCharacterDevice() || stats.isBlockDevice()) {
        const { major, minor } = splitDevice(stats.rdev);
        const type = stats.isCharacterDevice() ? 'char-device' : 'block-device';
        yield { header: { name: rel, type, devmajor: major, devminor: minor, ...withXattrs } };
      } else if (stats.isFIFO()) {
        yield { header: { name: rel, type: 'fifo', ...withXattrs } };
      }
      // Sockets are left out, as Docker and GNU tar do: they cannot be archived.
    }
  }

  try {
    yield* walk(absRoot, '');
  } catch (err) {
    throw archivingError(root, err);
  }
}
