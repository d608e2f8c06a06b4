/**
 * Promise-shaped wrappers over synchronous fs calls, for the copy's many tiny metadata calls.
 * Through libuv's 4-thread pool every `fs/promises` call costs a thread round trip that dwarfs
 * the syscall itself; copying 20 000 files that way takes seconds where direct calls take a
 * fraction. Each call blocks the event loop only for one syscall (or one file's copy_file_range).
 */
import {
  chmodSync,
  copyFileSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  type Dirent,
  type MakeDirectoryOptions,
  type Mode,
  type Stats,
  type TimeLike,
} from 'node:fs';

const S_IFMT = 0o170000;

/** The parts of an lstat that a copy and its cache key use. */
export interface StatFields {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  nlink: number;
  rdev: number;
}

/**
 * A source file's lstat, kept by a copy from selection until its layer is written. Not Node's
 * Stats: Node 20 makes four Date objects for each, and holding 20 000 of them (a large context)
 * made most of a no-op rebuild's garbage-collection time.
 */
export class SourceStats implements StatFields {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly dev: number;
  readonly nlink: number;
  readonly rdev: number;

  constructor(fields: StatFields) {
    this.mode = fields.mode;
    this.uid = fields.uid;
    this.gid = fields.gid;
    this.size = fields.size;
    this.mtimeMs = fields.mtimeMs;
    this.ctimeMs = fields.ctimeMs;
    this.ino = fields.ino;
    this.dev = fields.dev;
    this.nlink = fields.nlink;
    this.rdev = fields.rdev;
  }

  /** Rounded to the millisecond like Node's Stats.mtime. */
  get mtime(): Date {
    return new Date(Math.round(this.mtimeMs));
  }

  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }

  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }

  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }

  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000;
  }

  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000;
  }

  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000;
  }

  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000;
  }
}

export async function lstatSource(path: string): Promise<SourceStats> {
  return new SourceStats(lstatSync(path));
}

export async function statSource(path: string): Promise<SourceStats> {
  return new SourceStats(statSync(path));
}

export async function lstat(path: string): Promise<Stats> {
  return lstatSync(path);
}

export async function stat(path: string): Promise<Stats> {
  return statSync(path);
}

export async function readlink(path: string): Promise<string> {
  return readlinkSync(path);
}

export function readdir(path: string): Promise<string[]>;
export function readdir(path: string, options: { withFileTypes: true }): Promise<Dirent[]>;
export async function readdir(path: string, options?: { withFileTypes: true }): Promise<string[] | Dirent[]> {
  return options?.withFileTypes ? readdirSync(path, { withFileTypes: true }) : readdirSync(path);
}

export async function mkdir(
  path: string,
  options?: Mode | MakeDirectoryOptions,
): Promise<string | undefined> {
  return mkdirSync(path, options);
}

export async function chmod(path: string, mode: Mode): Promise<void> {
  chmodSync(path, mode);
}

export async function lchown(path: string, uid: number, gid: number): Promise<void> {
  lchownSync(path, uid, gid);
}

export async function utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
  utimesSync(path, atime, mtime);
}

export async function lutimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
  lutimesSync(path, atime, mtime);
}

export async function copyFile(source: string, target: string, mode?: number): Promise<void> {
  copyFileSync(source, target, mode);
}

export async function link(existing: string, target: string): Promise<void> {
  linkSync(existing, target);
}

export async function symlink(target: string, path: string): Promise<void> {
  symlinkSync(target, path);
}

export async function unlink(path: string): Promise<void> {
  unlinkSync(path);
}

/** lstat, or undefined when the path (or a directory on the way) does not exist. */
export async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
