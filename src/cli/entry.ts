/**
 * The program `bin/strata` runs (bundled into dist/bundle/strata.cjs by scripts/bundle.mjs):
 * the CLI with the process's arguments.
 */
import { main } from './main.js';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
