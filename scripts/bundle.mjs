// Bundles the compiled CLI (dist/cli/main.js) into dist/bundle/ so that `bin/strata` loads a
// handful of files instead of ~150 ES modules: Node 20's module loader spent 200-300 ms of
// every command resolving and compiling them (no compile cache before Node 22). Lazily loaded
// command groups stay separate chunks (splitting); the gzip worker is its own entry next to them,
// where compression.ts looks for it; native addons stay external.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';

await rm('dist/bundle', { recursive: true, force: true });
await build({
  entryPoints: ['dist/cli/main.js', 'dist/archive/gzip-worker.js'],
  outdir: 'dist/bundle',
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['zstd-napi'],
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: {
    js: "import { createRequire as strataCreateRequire } from 'node:module';\nconst require = strataCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
