/** Small helpers shared by the archive tests (and usable by integration tests). */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const isRoot = process.getuid?.() === 0;

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a command, throwing with its stderr when it fails. */
export function sh(command: string, args: string[], input?: Buffer): Buffer {
  const result = spawnSync(command, args, { input, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed: ${result.stderr?.toString() ?? result.error?.message}`,
    );
  }
  return result.stdout;
}

export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A fresh temporary directory; `cleanup()` removes it. */
export async function tempDir(
  prefix = 'strata-archive-',
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface SnapshotEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: string;
  ino: string;
  nlink: number;
  content?: string;
  link?: string;
}

/**
 * Everything observable about a tree, by relative path: types, modes, owners, sizes, mtimes,
 * inode numbers, link counts, content hashes, symlink targets. Paths in `exclude` (relative)
 * are left out with their subtrees.
 */
export async function snapshotTree(
  root: string,
  exclude: readonly string[] = [],
): Promise<Record<string, SnapshotEntry>> {
  const out: Record<string, SnapshotEntry> = {};
  async function visit(rel: string): Promise<void> {
    const abs = rel === '' ? root : join(root, rel);
    const stats = await lstat(abs, { bigint: true });
    const entry: SnapshotEntry = {
      type: stats.isDirectory()
        ? 'dir'
        : stats.isFile()
          ? 'file'
          : stats.isSymbolicLink()
            ? 'symlink'
            : stats.isCharacterDevice()
              ? 'char'
              : stats.isBlockDevice()
                ? 'block'
                : 'other',
      mode: Number(stats.mode),
      uid: Number(stats.uid),
      gid: Number(stats.gid),
      size: stats.isDirectory() ? 0 : Number(stats.size),
      mtimeNs: String(stats.mtimeNs),
      ino: String(stats.ino),
      nlink: stats.isDirectory() ? 0 : Number(stats.nlink),
    };
    if (stats.isFile()) entry.content = sha256(await readFile(abs));
    if (stats.isSymbolicLink()) entry.link = await readlink(abs);
    out[rel === '' ? '.' : rel] = entry;
    if (stats.isDirectory()) {
      for (const name of (await readdir(abs)).sort()) {
        const child = rel === '' ? name : `${rel}/${name}`;
        if (!exclude.includes(child)) await visit(child);
      }
    }
  }
  await visit('');
  return out;
}

/** The typeflag and name of every raw header block in a tar (PAX and GNU headers included). */
export function rawHeaders(
  archive: Buffer,
): Array<{ typeflag: string; name: string; offset: number; block: Buffer }> {
  const out: Array<{ typeflag: string; name: string; offset: number; block: Buffer }> = [];
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const block = archive.subarray(offset, offset + 512);
    if (block.every((b) => b === 0)) break;
    const nul = block.indexOf(0);
    const name = block.subarray(0, nul < 0 || nul > 100 ? 100 : nul).toString('utf8');
    const sizeText = block.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim();
    const size = sizeText === '' ? 0 : parseInt(sizeText, 8);
    const typeflag = String.fromCharCode(block[156] ?? 0);
    out.push({ typeflag, name, offset, block });
    const hasBody = ['0', '\0', '7', 'x', 'g', 'L', 'K'].includes(typeflag);
    offset += 512 + (hasBody ? Math.ceil(size / 512) * 512 : 0);
  }
  return out;
}

/** A raw ustar header block with a correct checksum, for hand-crafted archives. */
export function rawBlock(fields: {
  name: string;
  typeflag?: string;
  size?: number;
  mode?: number;
  uid?: Buffer | number;
  magic?: string;
  linkname?: string;
}): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name, 0, 100, 'utf8');
  block.write((fields.mode ?? 0o644).toString(8).padStart(7, '0'), 100, 'ascii');
  if (Buffer.isBuffer(fields.uid)) fields.uid.copy(block, 108);
  else block.write((fields.uid ?? 0).toString(8).padStart(7, '0'), 108, 'ascii');
  block.write('0000000', 116, 'ascii');
  block.write((fields.size ?? 0).toString(8).padStart(11, '0'), 124, 'ascii');
  block.write('00000000000', 136, 'ascii');
  block.write(fields.typeflag ?? '0', 156, 1, 'latin1');
  if (fields.linkname) block.write(fields.linkname, 157, 100, 'utf8');
  block.write(fields.magic ?? 'ustar\u000000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/** A body padded to whole blocks. */
export function padded(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** Deterministic bytes with a flat histogram (xorshift): what compressed or encrypted files look like. */
export function noise(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) >>> 24;
  }
  return out;
}
