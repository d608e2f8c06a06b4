import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';

import { StrataError, errnoCode } from '../../../errors.js';

/**
 * An htpasswd file as distribution reads it: `user:hash` lines, `#` comments, blank lines, bcrypt
 * hashes only (`htpasswd -B`). It is read again when it changes, so accounts can be added or
 * removed without a restart.
 */

export interface HtpasswdOptions {
  /** How often, at most, the file is stat'ed for a change (ms). Default 1000. */
  readonly checkIntervalMs?: number;
  /** How many successful verifications are remembered. Default 1000. */
  readonly cacheEntries?: number;
  /** How long a remembered verification is trusted (ms). Default 5 minutes. */
  readonly cacheTtlMs?: number;
  /** The clock, for tests. */
  readonly now?: () => number;
  /** bcrypt's comparison; tests pass a counting wrapper to see which verifications pay for it. */
  readonly compare?: (password: string, hash: string) => Promise<boolean>;
}

export interface BasicCredentials {
  readonly user: string;
  readonly password: string;
}

const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
const BCRYPT_SALT_AND_HASH_LENGTH = 53;

/** Parses the file's text into user → bcrypt hash; errors name the file and line. */
export function parseHtpasswd(text: string, path: string): Map<string, string> {
  const hashes = new Map<string, string>();
  const lineOfUser = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (problem: string): never => {
      throw new StrataError('INVALID_CONFIG', `${path}:${lineNumber}: ${problem}`);
    };
    const colon = line.indexOf(':');
    if (colon <= 0) fail('expected "user:bcrypt-hash"');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT_HASH.test(hash)) {
      // The hash itself stays out of the message: it is still a secret worth keeping.
      fail(
        `user "${user}" has a ${describeHash(hash)}; only bcrypt hashes ($2y$, "htpasswd -B") are supported`,
      );
    }
    const earlier = lineOfUser.get(user);
    if (earlier !== undefined) fail(`user "${user}" is already defined on line ${earlier}`);
    lineOfUser.set(user, lineNumber);
    hashes.set(user, hash);
  });
  return hashes;
}

function describeHash(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'MD5 (apr1) hash';
  if (hash.startsWith('{SHA}')) return 'SHA-1 hash';
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return 'SHA-crypt hash';
  if (/^\$2[aby]?\$/.test(hash)) return 'malformed bcrypt hash';
  return 'hash of an unsupported kind (or a plain password)';
}

/**
 * `Authorization: Basic base64(user:password)`, or undefined when the header is not Basic or is
 * malformed. The user is everything before the first `:` (RFC 7617), so passwords may contain `:`.
 */
export function parseBasicAuthorization(header: string): BasicCredentials | undefined {
  const match = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  const encoded = match?.[1];
  if (encoded === undefined || encoded.length % 4 === 1) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

interface RememberedVerification {
  readonly user: string;
  /** The hash the password was verified against: a changed or removed account no longer matches. */
  readonly hash: string;
  readonly expiresAt: number;
}

interface FileVersion {
  readonly mtimeMs: number;
  readonly size: number;
  readonly ino: number;
}

export class Htpasswd {
  readonly path: string;
  private hashes: Map<string, string>;
  private dummyHash: string;
  private version: FileVersion;
  /** Set while the file on disk cannot be used: every verification fails with it (fail closed). */
  private brokenBy: StrataError | undefined;
  private lastCheck: number;
  private pendingCheck: Promise<void> | undefined;
  private readonly checkIntervalMs: number;
  private readonly now: () => number;
  private readonly compare: (password: string, hash: string) => Promise<boolean>;
  /**
   * Successful verifications, keyed by an HMAC of user and password under a key that lives only
   * in this process, in least-recently-used order (Map iteration order). Only successes are kept,
   * so a wrong password always pays bcrypt.
   */
  private readonly remembered = new Map<string, RememberedVerification>();
  private readonly cacheKey = randomBytes(32);
  private readonly cacheEntries: number;
  private readonly cacheTtlMs: number;

  private constructor(
    path: string,
    hashes: Map<string, string>,
    version: FileVersion,
    options: HtpasswdOptions,
  ) {
    this.path = path;
    this.hashes = hashes;
    this.dummyHash = dummyHashFor(hashes);
    this.version = version;
    this.now = options.now ?? Date.now;
    this.compare = options.compare ?? ((password, hash) => bcrypt.compare(password, hash));
    this.lastCheck = this.now();
    this.checkIntervalMs = options.checkIntervalMs ?? 1000;
    this.cacheEntries = options.cacheEntries ?? 1000;
    this.cacheTtlMs = options.cacheTtlMs ?? 5 * 60 * 1000;
  }

  /** Reads the file; a missing file or a bad line is an error naming the file (and the line). */
  static async load(path: string, options: HtpasswdOptions = {}): Promise<Htpasswd> {
    const { hashes, version } = await readHtpasswdFile(path);
    return new Htpasswd(path, hashes, version, options);
  }

  /** The user names, for diagnostics. */
  users(): string[] {
    return [...this.hashes.keys()];
  }

  /**
   * Whether the password is the user's. An unknown user costs one bcrypt comparison too (against
   * a dummy hash of the file's usual cost), so response times do not tell which users exist.
   * Rejects while the file is unreadable or invalid after a change.
   */
  async verify(user: string, password: string): Promise<boolean> {
    await this.checkForChanges();
    if (this.brokenBy !== undefined) throw this.brokenBy;
    const key = createHmac('sha256', this.cacheKey)
      .update(user)
      .update('\0')
      .update(password)
      .digest('base64');
    const stored = this.hashes.get(user);
    const remembered = this.remembered.get(key);
    if (remembered !== undefined) {
      this.remembered.delete(key);
      if (remembered.expiresAt > this.now() && remembered.user === user && remembered.hash === stored) {
        this.remembered.set(key, remembered);
        return true;
      }
    }
    const matches = await this.compare(password, stored ?? this.dummyHash);
    if (!matches || stored === undefined) return false;
    this.remembered.set(key, { user, hash: stored, expiresAt: this.now() + this.cacheTtlMs });
    while (this.remembered.size > this.cacheEntries) {
      const oldest = this.remembered.keys().next();
      if (oldest.done === true) break;
      this.remembered.delete(oldest.value);
    }
    return true;
  }

  /** The user of a valid `Authorization: Basic …` header; undefined when missing, malformed or wrong. */
  async verifyAuthorization(header: string | undefined): Promise<string | undefined> {
    const credentials = header === undefined ? undefined : parseBasicAuthorization(header);
    if (credentials === undefined) return undefined;
    return (await this.verify(credentials.user, credentials.password)) ? credentials.user : undefined;
  }

  /**
   * A short digest of the user's current hash, or undefined for an unknown user. Long-lived
   * grants (refresh tokens) record it, so changing a password or removing the user revokes them.
   */
  async credentialFingerprint(user: string): Promise<string | undefined> {
    await this.checkForChanges();
    if (this.brokenBy !== undefined) throw this.brokenBy;
    const stored = this.hashes.get(user);
    return stored === undefined
      ? undefined
      : createHash('sha256').update(stored).digest('base64url').slice(0, 22);
  }

  private async checkForChanges(): Promise<void> {
    if (this.pendingCheck !== undefined) return this.pendingCheck;
    if (this.now() - this.lastCheck < this.checkIntervalMs) return;
    this.lastCheck = this.now();
    this.pendingCheck = this.reloadIfChanged().finally(() => {
      this.pendingCheck = undefined;
    });
    return this.pendingCheck;
  }

  private async reloadIfChanged(): Promise<void> {
    try {
      const current = await statVersion(this.path);
      if (this.brokenBy === undefined && sameVersion(current, this.version)) return;
      const { hashes, version } = await readHtpasswdFile(this.path);
      this.hashes = hashes;
      this.dummyHash = dummyHashFor(hashes);
      this.version = version;
      this.brokenBy = undefined;
    } catch (err) {
      this.brokenBy = err instanceof StrataError ? err : unreadable(this.path, err);
    }
  }
}

async function readHtpasswdFile(
  path: string,
): Promise<{ hashes: Map<string, string>; version: FileVersion }> {
  let text: string;
  let version: FileVersion;
  try {
    version = await statVersion(path);
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw unreadable(path, err);
  }
  return { hashes: parseHtpasswd(text, path), version };
}

function unreadable(path: string, err: unknown): StrataError {
  const problem = errnoCode(err) === 'ENOENT' ? 'not found' : 'cannot be read';
  return new StrataError('INVALID_CONFIG', `${path}: htpasswd file ${problem}`, { cause: err });
}

async function statVersion(path: string): Promise<FileVersion> {
  const info = await stat(path);
  return { mtimeMs: info.mtimeMs, size: info.size, ino: info.ino };
}

// Size and inode as well as the mtime: an editor replacing the file, or a write landing within
// the mtime's granularity, still shows up as a change.
function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;
}

/**
 * A well-formed bcrypt hash nobody's password matches, at the cost most of the file's users have
 * (ties: the higher), so that checking an unknown user takes as long as checking a typical known
 * one. Not the highest cost: one slow admin hash would make every unknown name expensive to try.
 */
function dummyHashFor(hashes: Map<string, string>): string {
  const usersByCost = new Map<number, number>();
  for (const hash of hashes.values()) {
    const cost = Number(hash.slice(4, 6));
    usersByCost.set(cost, (usersByCost.get(cost) ?? 0) + 1);
  }
  let usualCost = 10;
  let mostUsers = 0;
  for (const [cost, users] of usersByCost) {
    if (users > mostUsers || (users === mostUsers && cost > usualCost)) {
      usualCost = cost;
      mostUsers = users;
    }
  }
  return `$2y$${String(usualCost).padStart(2, '0')}$${'N'.repeat(BCRYPT_SALT_AND_HASH_LENGTH)}`;
}
