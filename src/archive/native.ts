/**
 * File-system operations that Node has no API for — extended attributes and mknod — done by
 * spawning small tools from Debian (`getfattr`/`setfattr` from package `attr`, `mknod` from
 * coreutils). A spawn per file would be far too slow for xattrs, so they are batched: one
 * `getfattr -R` dump per tree walk, one `setfattr --restore` per extraction. mknod is spawned
 * once per device node, which is rare (overlay whiteouts reuse one node through hard links, see
 * extract.ts).
 */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { StrataError } from '../errors.js';
import { runHostCommand } from './shell-runner.js';

const toolCache = new Map<string, Promise<string | undefined>>();

/** The absolute path of an executable on PATH, or undefined. Looked up once per process. */
export function findTool(name: string): Promise<string | undefined> {
  let found = toolCache.get(name);
  if (!found) {
    found = (async () => {
      const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
        .split(delimiter)
        .filter((d) => d !== '');
      for (const dir of dirs) {
        const candidate = join(dir, name);
        try {
          await access(candidate, constants.X_OK);
          return candidate;
        } catch {
          // not here; try the next PATH entry
        }
      }
      return undefined;
    })();
    toolCache.set(name, found);
  }
  return found;
}

/** Through the long-lived helper (see shell-runner.ts): a spawn from Node costs 15–20 ms. */
const run = runHostCommand;

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'unknown error'
  );
}

// ---------------------------------------------------------------------------------------------
// Which xattrs travel in archives
// ---------------------------------------------------------------------------------------------

/**
 * Policy for xattrs in layer tars, shared by the writer and the extractor so a round trip is
 * stable:
 * - `trusted.overlay.*` / `user.overlay.*` are overlayfs bookkeeping (opaque, impure, origin,
 *   redirect…). They describe the snapshot, not the image; the opaque marker is converted to an
 *   OCI whiteout instead. Never copied, and never applied from an archive, where they could
 *   steer overlayfs lookups.
 * - of `security.*`, only `security.capability` (file capabilities, e.g. ping) is image data;
 *   SELinux labels, IMA/EVM signatures are host policy and would make the same tree hash
 *   differently on different hosts.
 * - `user.*`, other `trusted.*` and POSIX ACLs (`system.posix_acl_*`) are kept.
 */
export function isPortableXattr(name: string): boolean {
  if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) return false;
  if (name.startsWith('security.')) return name === 'security.capability';
  if (name.startsWith('system.'))
    return name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
  return name.startsWith('user.') || name.startsWith('trusted.');
}

/** Regex given to `getfattr -m`: filters in C so SELinux labels on every file are never dumped. */
const GETFATTR_PATTERN = '^(user\\.|trusted\\.|security\\.capability$|system\\.posix_acl_(access|default)$)';

/** An extended attribute dump of a tree: path relative to the root ('' is the root) → name → value. */
export type XattrTree = Map<string, Map<string, Buffer>>;

/**
 * Reads every xattr under `root` (absolute, canonical) with one `getfattr -R` run. Symlinks are
 * neither followed during the walk (-P) nor dereferenced (-h). Returns undefined when getfattr
 * is not installed, so callers decide whether that is fatal.
 */
export async function readXattrTree(root: string): Promise<XattrTree | undefined> {
  const getfattr = await findTool('getfattr');
  if (!getfattr) return undefined;
  const result = await run(getfattr, [
    '-R',
    '-P',
    '-h',
    '--absolute-names',
    '-d',
    '-e',
    'hex',
    '-m',
    GETFATTR_PATTERN,
    '--',
    root,
  ]);
  if (result.code !== 0) {
    // A file system without xattr support answers ENOTSUP per file: nothing to read, not an error.
    const real = result.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !/Operation not supported/.test(l));
    if (real.length > 0) {
      throw new StrataError(
        'INTERNAL',
        `cannot read extended attributes under ${root}: ${firstLine(real.join('\n'))}`,
        {
          userFacing: true,
        },
      );
    }
  }
  return parseGetfattrDump(result.stdout, root);
}

/** Parses `getfattr -d -e hex --absolute-names` output. Exported for tests. */
export function parseGetfattrDump(dump: Buffer, root: string): XattrTree {
  const tree: XattrTree = new Map();
  let current: Map<string, Buffer> | undefined;
  let start = 0;
  while (start < dump.length) {
    let end = dump.indexOf(0x0a, start);
    if (end < 0) end = dump.length;
    const line = dump.subarray(start, end);
    start = end + 1;
    if (line.length === 0) {
      current = undefined;
      continue;
    }
    const FILE = '# file: ';
    if (line.subarray(0, FILE.length).toString('latin1') === FILE) {
      const path = unquote(line.subarray(FILE.length)).toString('utf8');
      let rel: string | undefined;
      if (path === root) rel = '';
      else if (path.startsWith(root.endsWith('/') ? root : `${root}/`))
        rel = path.slice(root.length).replace(/^\//, '');
      current = undefined;
      if (rel !== undefined) {
        current = new Map();
        tree.set(rel, current);
      }
      continue;
    }
    if (!current) continue;
    const eq = line.indexOf(0x3d); // '='
    const name = unquote(eq < 0 ? line : line.subarray(0, eq)).toString('utf8');
    const text = eq < 0 ? '' : line.subarray(eq + 1).toString('latin1');
    current.set(name, decodeGetfattrValue(text));
  }
  return tree;
}

function decodeGetfattrValue(text: string): Buffer {
  if (text === '' || text === '""') return Buffer.alloc(0);
  if (/^0x[0-9a-fA-F]*$/.test(text)) return Buffer.from(text.slice(2), 'hex');
  if (text.startsWith('0s')) return Buffer.from(text.slice(2), 'base64');
  if (text.startsWith('"') && text.endsWith('"')) return unquote(Buffer.from(text.slice(1, -1), 'latin1'));
  return Buffer.from(text, 'latin1');
}

/** getfattr/setfattr escape bytes as `\ooo` (and a backslash as `\\` or `\134`). */
function unquote(bytes: Buffer): Buffer {
  if (!bytes.includes(0x5c)) return bytes;
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (
      b === 0x5c &&
      i + 3 < bytes.length &&
      isOctal(bytes[i + 1]) &&
      isOctal(bytes[i + 2]) &&
      isOctal(bytes[i + 3])
    ) {
      out.push(
        (((bytes[i + 1] ?? 0) - 48) << 6) | (((bytes[i + 2] ?? 0) - 48) << 3) | ((bytes[i + 3] ?? 0) - 48),
      );
      i += 3;
    } else if (b === 0x5c && bytes[i + 1] === 0x5c) {
      out.push(0x5c);
      i += 1;
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out);
}

function isOctal(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x37;
}

/** Escapes everything but printable ASCII, plus `\` and `=`, so any path or name survives. */
function quote(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    if (b > 0x20 && b < 0x7f && b !== 0x5c && b !== 0x3d) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return out;
}

export interface XattrWrite {
  /** Absolute path; the last component is not dereferenced (setfattr -h). */
  path: string;
  name: string;
  value: Buffer;
}

/**
 * Sets many xattrs with one `setfattr -h --restore` run. Throws UNSUPPORTED when setfattr is
 * missing, and a one-line error naming the first failure otherwise.
 */
export async function writeXattrs(items: readonly XattrWrite[]): Promise<void> {
  if (items.length === 0) return;
  const setfattr = await findTool('setfattr');
  if (!setfattr) {
    throw new StrataError(
      'UNSUPPORTED',
      `cannot set extended attribute ${items[0]?.name} on ${items[0]?.path}: setfattr not found (install Debian package attr)`,
    );
  }
  const lines: string[] = [];
  for (const item of items) {
    lines.push(`# file: ${quote(item.path)}`, `${quote(item.name)}=0x${item.value.toString('hex')}`, '');
  }
  const result = await run(setfattr, ['-h', '--restore=-'], Buffer.from(lines.join('\n') + '\n', 'latin1'));
  if (result.code !== 0) {
    throw new StrataError('UNSUPPORTED', `cannot set extended attributes: ${firstLine(result.stderr)}`);
  }
}

/** Creates a device node or fifo with mode 0600 (callers chown, then chmod to the real mode). */
export async function mknod(
  path: string,
  type: 'char-device' | 'block-device' | 'fifo',
  major = 0,
  minor = 0,
  mode = 0o600,
): Promise<void> {
  const tool = await findTool('mknod');
  if (!tool) throw new StrataError('UNSUPPORTED', `cannot create device node ${path}: mknod not found`);
  const kind = type === 'char-device' ? 'c' : type === 'block-device' ? 'b' : 'p';
  const args = ['-m', mode.toString(8), '--', path, kind];
  if (kind !== 'p') args.push(String(major), String(minor));
  const result = await run(tool, args);
  if (result.code !== 0) {
    throw new StrataError('UNSUPPORTED', `cannot create device node ${path}: ${firstLine(result.stderr)}`);
  }
}
