import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Where the store lives when neither `--root` nor `STRATA_ROOT` says otherwise: the system-wide
 * `/var/lib/strata` for root (like `/var/lib/docker`), the XDG data directory for everyone else so
 * that rootless use never needs privileges.
 */
export function defaultStoreRoot(
  env: NodeJS.ProcessEnv = process.env,
  uid: number | undefined = process.getuid?.(),
): string {
  if (uid === 0) return '/var/lib/strata';
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'strata');
  return join(env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(), '.local', 'share', 'strata');
}

/** The store root to use: the `--root` flag, else `$STRATA_ROOT`, else the default; always absolute. */
export function resolveStoreRoot(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return resolve(flag);
  const fromEnv = env.STRATA_ROOT;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  return defaultStoreRoot(env);
}

/** Every path of the store layout (ARCHITECTURE.md, "Store layout"), in one place. */
export interface StoreLayout {
  root: string;
  /** `blobs/<alg>/<hex>`: the content store. */
  blobs: string;
  /** Partial writes: unique temps and resumable `.partial` files. */
  ingest: string;
  /** Names → targets, replaced atomically under `locks/images.lock`. */
  imagesFile: string;
  /** `snapshots/<chain-hex>/{fs,meta.json}`: unpacked layers. */
  snapshots: string;
  /** Build cache records (owned by the build cache, created here so the layout is complete). */
  cache: string;
  locks: string;
  /** Lease files protecting content that is written but not yet named (see lease.ts). */
  leases: string;
  imagesLock: string;
  gcLock: string;
  /** GC roots held by something other than a name (a container's image): `pins/<name>.json`. */
  pins: string;
}

export function storeLayout(root: string): StoreLayout {
  const locks = join(root, 'locks');
  return {
    root,
    blobs: join(root, 'blobs'),
    ingest: join(root, 'ingest'),
    imagesFile: join(root, 'images.json'),
    snapshots: join(root, 'snapshots'),
    cache: join(root, 'cache'),
    locks,
    leases: join(root, 'leases'),
    imagesLock: join(locks, 'images.lock'),
    gcLock: join(locks, 'gc.lock'),
    pins: join(root, 'pins'),
  };
}
