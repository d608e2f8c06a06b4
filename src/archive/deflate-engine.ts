/**
 * The deflate of parallel gzip's runs: libdeflate, through strata's Node-API addon
 * (native/deflate.c, built by scripts/build-native.sh when a C compiler, Node's headers and
 * Debian's libdeflate-dev are there), else zlib. On layer content libdeflate is ~1.2x faster than
 * zlib at the same level with output a little smaller, and ~1.6x faster at level 6
 * (docs/decisions.md has the measurements).
 *
 * Every thread that compresses (the main thread, each gzip worker) loads the addon itself; all of
 * them find the same file, so a process uses one engine throughout and a stream's bytes do not
 * depend on which thread ran a block. They do depend on the engine: a layer compressed with
 * libdeflate has another digest than with zlib (valid gzip either way). STRATA_DEFLATE_ENGINE=zlib
 * turns the addon off (benchmarks, tests of the zlib path).
 */
import { StrataError } from '../errors.js';

export type DeflateEngineName = 'libdeflate' | 'zlib';

interface DeflateAddon {
  /**
   * Raw deflate of `data`; unless `final`, ending byte-aligned and not final (as after zlib's
   * Z_SYNC_FLUSH). null when the addon's check of its own stream fails (see native/deflate.c).
   * The result's ArrayBuffer is its own: it can be transferred to another thread.
   */
  deflateRaw(data: Uint8Array, level: number, final: boolean): Uint8Array<ArrayBuffer> | null;
}

/** libdeflate's levels (1–12); zlib serves level 0 (stored). */
const MAX_LEVEL = 12;

let loaded: { addon: DeflateAddon | undefined } | undefined;

/** Where `npm run build` puts the addon: dist/native, beside the compiled modules or the bundle. */
function addonPaths(): string[] {
  return ['../native/strata-deflate.node', '../../dist/native/strata-deflate.node'].map(
    (candidate) => new URL(candidate, import.meta.url).pathname,
  );
}

function load(): DeflateAddon | undefined {
  if (loaded !== undefined) return loaded.addon;
  let addon: DeflateAddon | undefined;
  if (process.env.STRATA_DEFLATE_ENGINE !== 'zlib') {
    for (const path of addonPaths()) {
      const module = { exports: {} as Partial<DeflateAddon> };
      try {
        process.dlopen(module, path);
      } catch {
        continue; // not built there (or not loadable: zlib does the work)
      }
      if (typeof module.exports.deflateRaw === 'function') {
        addon = module.exports as DeflateAddon;
        break;
      }
    }
  }
  loaded = { addon };
  return addon;
}

/** The engine this thread deflates with. */
export function deflateEngine(): DeflateEngineName {
  return load() !== undefined ? 'libdeflate' : 'zlib';
}

/**
 * `data` deflated by libdeflate at `level`, ending as described at DeflateAddon (in an ArrayBuffer
 * of its own); undefined when zlib must do it (no addon, level 0, or the addon refused its output).
 */
export function nativeDeflate(
  data: Uint8Array,
  level: number,
  final: boolean,
): Uint8Array<ArrayBuffer> | undefined {
  if (level < 1 || level > MAX_LEVEL) return undefined;
  const addon = load();
  if (addon === undefined) return undefined;
  try {
    return addon.deflateRaw(data, level, final) ?? undefined;
  } catch (err) {
    throw new StrataError('INTERNAL', `libdeflate: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
