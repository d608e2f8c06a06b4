// Bundles the compiled CLI (dist/cli/entry.js) into ONE CommonJS file, dist/bundle/strata.cjs, which
// bin/strata compiles with the V8 code cache that scripts/code-cache.mjs makes for it. Node 20
// compiles every module on every start (its compile cache comes with Node 22): as ~150 ES modules
// that cost 200-300 ms per command; bundled, the cache still saves ~45 ms of a cached rebuild. A
// code cache can only be given to a script (vm.Script), not to ES modules, hence CommonJS.
//  - The command groups main.ts imports lazily stay lazy: esbuild runs a module's top level when
//    it is first imported.
//  - undici (0.7 MB, registry commands only) gets its own bundle beside strata.cjs and zstd-napi
//    (a native addon) stays in node_modules. Modules import them at load time but use them only
//    inside functions, so each is replaced by a facade that requires the real module at first
//    use: a build loads neither.
//  - Minified (whitespace and syntax; names are kept for stack traces): the comments hold
//    characters beyond Latin-1, which would make V8 keep the whole source as UTF-16.
//  - import.meta.url (compression.ts finds the gzip worker beside itself) is this file's URL; the
//    gzip worker is its own ES module beside it, which its thread loads by path.
//  - The first line names the bundle by its digest; bin/strata uses a code cache only if it
//    names the same bundle (V8 itself checks no more than the source's length).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const OUT = 'dist/bundle';

/** Where each deferred package is loaded from at run time (see above). */
const DEFERRED = new Map([
  ['undici', 'separate'],
  ['zstd-napi', 'node_modules'],
]);

const requireHere = createRequire(import.meta.url);
const separateFile = (name) => `${name}.cjs`;

/** A CommonJS module with the package's export names, each requiring the package on first access. */
function facade(name) {
  const names = Object.keys(requireHere(name)).filter((key) => key !== '__esModule');
  const path = DEFERRED.get(name) === 'separate' ? `./${separateFile(name)}` : name;
  return `let loaded;
const load = () => (loaded ??= require("node:module").createRequire(__filename)(${JSON.stringify(path)}));
for (const name of ${JSON.stringify(names)}) {
  Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });
}
`;
}

const deferPackages = {
  name: 'strata-defer-packages',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^[^./]/ }, (args) =>
      DEFERRED.has(args.path) ? { path: args.path, namespace: 'strata-deferred' } : undefined,
    );
    pluginBuild.onLoad({ filter: /.*/, namespace: 'strata-deferred' }, (args) => ({
      contents: facade(args.path),
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
};

await rm(OUT, { recursive: true, force: true });
await mkdir(OUT, { recursive: true });
const [bundled] = (
  await build({
    ...common,
    entryPoints: ['dist/cli/entry.js'],
    outfile: join(OUT, 'strata.cjs'),
    write: false,
    plugins: [deferPackages],
    define: { 'import.meta.url': '__strataModuleUrl', 'import.meta.resolve': '__strataModuleResolve' },
    banner: {
      js:
        'var __strataModuleUrl = require("node:url").pathToFileURL(__filename).href;\n' +
        'var __strataModuleResolve = () => { throw new Error("import.meta.resolve is not bundled"); };',
    },
  })
).outputFiles;
const digest = createHash('sha256').update(bundled.contents).digest('hex');
await writeFile(bundled.path, `// strata bundle ${digest}\n${bundled.text}`);
for (const [name, from] of DEFERRED) {
  if (from === 'separate') {
    await build({
      ...common,
      entryPoints: [requireHere.resolve(name)],
      outfile: join(OUT, separateFile(name)),
    });
  }
}
await build({
  ...common,
  format: 'esm',
  entryPoints: ['dist/archive/gzip-worker.js'],
  outdir: OUT,
});
