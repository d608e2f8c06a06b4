#!/usr/bin/env node
'use strict';
// Started by bin/strata (a sh wrapper). Runs the CLI: dist/bundle/strata.cjs
// (scripts/bundle.mjs), compiled with the V8 code cache that scripts/code-cache.mjs made for it,
// so that V8 deserializes the functions a command runs instead of parsing and compiling them
// (Node 20 has no compile cache of its own). The cache is used only if it names this very
// bundle; V8 refuses one from another node binary or made with other V8 flags
// (cachedDataRejected) and the bundle is then compiled from source, as it is when there is no
// cache. Without a bundle, the plain compiled code runs.
//
// CommonJS (bin/package.json) because an ES module entry costs Node ~15 ms more to start.
const { existsSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const { isAscii } = require('node:buffer');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'bundle', 'strata.cjs');

/** The code cache file of a bundle: the bundle's first line, then V8's data. */
const cacheFile = (bundle) => `${bundle}.cache`;

/**
 * Compiles `bundle` as a CommonJS module body, with its code cache when there is one for it.
 * `cache` says what became of the cache: 'used', 'rejected' (by V8) or 'none'.
 */
function compile(bundle) {
  const bytes = readFileSync(bundle);
  // esbuild writes ASCII; decoding it as UTF-8 took ~10 ms, as Latin-1 (the same text) ~0.3 ms.
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  const header = source.slice(0, source.indexOf('\n') + 1);
  let cachedData;
  try {
    const cache = readFileSync(cacheFile(bundle));
    if (header !== '' && cache.subarray(0, header.length).toString('latin1') === header) {
      cachedData = cache.subarray(header.length);
    }
  } catch {
    // No cache: compiled from source.
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
  });
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
  return { script, header, cache };
}

/**
 * Runs `bundle`. With `writeCache` (scripts/code-cache.mjs), its code cache is rewritten at exit
 * with every function compiled so far, those the cache already had included.
 */
function run(bundle, { writeCache = false } = {}) {
  const { script, header } = compile(bundle);
  if (writeCache) {
    process.once('exit', () => {
      const partial = `${cacheFile(bundle)}.${process.pid}`;
      writeFileSync(partial, Buffer.concat([Buffer.from(header, 'latin1'), script.createCachedData()]));
      renameSync(partial, cacheFile(bundle));
    });
  } else {
    keepWasmBaseline();
  }
  const exports = {};
  script.runInThisContext()(exports, createRequire(bundle), { exports }, bundle, dirname(bundle));
}

/**
 * WebAssembly stays on V8's baseline compiler (Liftoff). The only wasm strata runs is undici's
 * HTTP parser, whose one huge function V8 otherwise recompiles with TurboFan in the background
 * once it is warm: ~0.3 s of CPU during a pull, and a process that is done waits for that
 * compile to finish before it exits (a pull with nothing to fetch took 0.50 s instead of 0.34 s).
 * Baseline code parses headers a little slower, which a registry's few large responses never
 * notice. Set after the bundle is compiled: V8 checks a code cache against the flags it was made
 * with, and the cache is made without this one (its training runs skip this).
 */
function keepWasmBaseline() {
  require('node:v8').setFlagsFromString('--liftoff-only');
}

/**
 * bin/strata started node without NODE_EXTRA_CA_CERTS (see there): the variable goes back into
 * the environment of child processes, and src/trust.ts is told to load the file itself.
 */
function takeDeferredCaCerts() {
  const file = process.env.STRATA_DEFERRED_CA_CERTS;
  if (file === undefined) return;
  delete process.env.STRATA_DEFERRED_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = file;
  globalThis[Symbol.for('strata.deferredExtraCaCerts')] = file;
}

/**
 * bin/strata started node with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES (see there): child
 * processes get the caller's value back (or none).
 */
function restoreGlibcTunables() {
  if (process.env.STRATA_HUGETLB === undefined) return;
  const caller = process.env.STRATA_CALLER_GLIBC_TUNABLES;
  delete process.env.STRATA_HUGETLB;
  delete process.env.STRATA_CALLER_GLIBC_TUNABLES;
  if (caller === undefined) delete process.env.GLIBC_TUNABLES;
  else process.env.GLIBC_TUNABLES = caller;
}

if (require.main === module) {
  // bin/strata puts `--` before the user's arguments (Node 20 would read `--env-file` after it).
  if (process.argv[2] === '--') process.argv.splice(2, 1);
  takeDeferredCaCerts();
  restoreGlibcTunables();
  try {
    run(BUNDLE);
  } catch (err) {
    if (err?.code !== 'ENOENT' || err.path !== BUNDLE) throw err;
    const compiled = join(__dirname, '..', 'dist', 'cli', 'entry.js');
    if (existsSync(compiled)) {
      keepWasmBaseline();
      import(pathToFileURL(compiled).href);
    } else {
      process.stderr.write('strata: not built yet; run scripts/setup.sh (or npm run build) first\n');
      process.exitCode = 1;
    }
  }
} else {
  module.exports = { BUNDLE, cacheFile, compile, run };
}
