/**
 * Users and groups of an image, and paths inside an image's root filesystem.
 *
 * Everything here reads the image, never the host: `/etc/passwd` of a build step is the one in its
 * root filesystem, found by resolving the path inside that root (an image may make `/etc` a
 * symlink, absolute or relative, and it must land inside the image, never on the host's `/etc`).
 */
import { readFile } from 'node:fs/promises';
import { lstatIfExists, readlink } from './fastfs.js';

import { StrataError, errnoCode } from '../errors.js';

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * How a user given by number alone gets its group:
 * - 'copy': `COPY --chown=10` means 10:10 (BuildKit's file operations), whatever passwd says;
 * - 'run': `USER 10` takes the gid of the passwd entry with uid 10 if there is one, else 0
 *   (runc's rule, which is what a RUN or the container's process gets).
 */
export type NumericUserGroup = 'copy' | 'run';

export interface ResolveOwnerOptions {
  numericUserGroup?: NumericUserGroup;
}

/** Same limit as securejoin: more links than this on one path is a loop. */
const MAX_SYMLINK_HOPS = 255;

const MAX_ID = 0xffffffff;

/**
 * `path` resolved inside `rootfs` as if `rootfs` were `/`: symlinks are followed one component
 * at a time (absolute targets start again at `rootfs`), `..` stops at `rootfs`, and the result
 * is a host path that is always `rootfs` or below it. Components that do not exist are kept as
 * written, so the last ones may name something to create. Like securejoin, a symlink as the last
 * component is followed too.
 */
export async function resolveInRoot(rootfs: string, path: string, fs: ResolvingFs = diskFs): Promise<string> {
  const root = rootfs.length > 1 && rootfs.endsWith('/') ? rootfs.slice(0, -1) : rootfs;
  const resolved: string[] = [];
  let pending = path.split('/');
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '' || component === '.') continue;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const candidate = hostPath(root, [...resolved, component]);
    // A missing component (or one under a non-directory) is simply kept lexically.
    const isSymlink = (await fs.lstat(candidate))?.isSymbolicLink() ?? false;
    if (!isSymlink) {
      resolved.push(component);
      continue;
    }
    hops++;
    if (hops > MAX_SYMLINK_HOPS) {
      throw new StrataError(
        'UNSAFE_PATH',
        `cannot resolve ${path} in ${rootfs}: too many levels of symbolic links`,
      );
    }
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...target.split('/'), ...pending];
  }
  return hostPath(root, resolved);
}

/** What resolving needs of a tree: lstat (undefined when missing) and readlink. */
export interface ResolvingFs {
  lstat(path: string): Promise<{ isSymbolicLink(): boolean } | undefined>;
  readlink(path: string): Promise<string>;
}

const diskFs: ResolvingFs = {
  lstat: lstatIfExists,
  readlink,
};

function hostPath(root: string, components: readonly string[]): string {
  if (components.length === 0) return root;
  return root === '/' ? `/${components.join('/')}` : `${root}/${components.join('/')}`;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return value <= MAX_ID ? value : undefined;
}

/** The lines of `<rootfs>/<file>`, or none when the image has no such file. */
async function readDatabase(rootfs: string, file: string): Promise<string[][]> {
  let text: string;
  try {
    text = await readFile(await resolveInRoot(rootfs, file), 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return [];
    throw err;
  }
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

async function readPasswd(rootfs: string): Promise<PasswdEntry[]> {
  const entries: PasswdEntry[] = [];
  for (const fields of await readDatabase(rootfs, '/etc/passwd')) {
    const uid = parseId(fields[2] ?? '');
    const gid = parseId(fields[3] ?? '');
    // Malformed lines are skipped, as libc and runc skip them.
    if (fields[0] === undefined || uid === undefined || gid === undefined) continue;
    entries.push({ name: fields[0], uid, gid });
  }
  return entries;
}

async function readGroups(rootfs: string): Promise<GroupEntry[]> {
  const entries: GroupEntry[] = [];
  for (const fields of await readDatabase(rootfs, '/etc/group')) {
    const gid = parseId(fields[2] ?? '');
    if (fields[0] === undefined || gid === undefined) continue;
    const members = (fields[3] ?? '')
      .split(',')
      .map((member) => member.trim())
      .filter((member) => member !== '');
    entries.push({ name: fields[0], gid, members });
  }
  return entries;
}

function splitSpec(spec: string): { user: string; group: string | undefined } {
  const trimmed = spec.trim();
  if (trimmed === '') throw new StrataError('INVALID_ARGUMENT', 'empty user specification');
  const colon = trimmed.indexOf(':');
  if (colon < 0) return { user: trimmed, group: undefined };
  const group = trimmed.slice(colon + 1);
  if (group.includes(':')) {
    throw new StrataError('INVALID_ARGUMENT', `invalid user specification "${spec}": too many colons`);
  }
  return { user: trimmed.slice(0, colon), group };
}

/**
 * The uid and gid a `--chown` (or USER) spec names in the image at `rootfs`: `user`, `uid`,
 * `user:group`, `uid:gid` and mixes of them, or `:group` (the user is then root). Numbers are
 * taken as they are, names are looked up in the image's `/etc/passwd` and `/etc/group`.
 */
export async function resolveOwner(
  spec: string,
  rootfs: string,
  options: ResolveOwnerOptions = {},
): Promise<Owner> {
  const numericUserGroup = options.numericUserGroup ?? 'copy';
  const { user, group } = splitSpec(spec);
  let uid = 0;
  let gid = 0;
  if (user !== '') {
    const numericUid = parseId(user);
    if (numericUid !== undefined) {
      uid = numericUid;
      if (numericUserGroup === 'copy') {
        gid = numericUid;
      } else {
        gid = (await readPasswd(rootfs)).find((entry) => entry.uid === numericUid)?.gid ?? 0;
      }
    } else {
      const entry = (await readPasswd(rootfs)).find((candidate) => candidate.name === user);
      if (entry === undefined) {
        throw new StrataError(
          'INVALID_ARGUMENT',
          `unable to find user ${user}: no matching entries in passwd file`,
        );
      }
      uid = entry.uid;
      gid = entry.gid;
    }
  }
  if (group !== undefined && group !== '') {
    gid = await resolveGroup(group, rootfs);
  } else if (group === '' && user === '') {
    throw new StrataError('INVALID_ARGUMENT', `invalid user specification "${spec}"`);
  }
  return { uid, gid };
}

async function resolveGroup(group: string, rootfs: string): Promise<number> {
  const numericGid = parseId(group);
  if (numericGid !== undefined) return numericGid;
  const entry = (await readGroups(rootfs)).find((candidate) => candidate.name === group);
  if (entry === undefined) {
    throw new StrataError(
      'INVALID_ARGUMENT',
      `unable to find group ${group}: no matching entries in group file`,
    );
  }
  return entry.gid;
}

/**
 * The supplementary groups a RUN process of `user` gets: the gids of the groups in the image's
 * `/etc/group` that list the user's name as a member, in file order without repeats (runc's
 * rule). A spec with an explicit group (`user:group`) gets none, and a uid without a passwd
 * entry has no name to be a member by.
 */
export async function supplementaryGroups(user: string, rootfs: string): Promise<number[]> {
  const { user: userPart, group } = splitSpec(user);
  if (group !== undefined || userPart === '') return [];
  let name: string | undefined = userPart;
  const numericUid = parseId(userPart);
  if (numericUid !== undefined) {
    name = (await readPasswd(rootfs)).find((entry) => entry.uid === numericUid)?.name;
  }
  if (name === undefined) return [];
  const gids: number[] = [];
  for (const entry of await readGroups(rootfs)) {
    if (entry.members.includes(name) && !gids.includes(entry.gid)) gids.push(entry.gid);
  }
  return gids;
}
