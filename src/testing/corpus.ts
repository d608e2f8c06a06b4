/**
 * Where the shared test corpora live: `$STRATA_CORPORA`, else `../shared/corpora` next to the
 * repository. A missing corpus fails the suite loudly: a data-driven suite never skips.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repositoryRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function corpusRoot(): string {
  return process.env.STRATA_CORPORA ?? join(repositoryRoot, '..', 'shared', 'corpora');
}

/** The directory of one corpus (`buildkit-parser`, `dockerignore`, …); throws if it is absent. */
export function corpusPath(name: string): string {
  const path = join(corpusRoot(), name);
  if (!existsSync(path)) {
    throw new Error(
      `corpus ${name} not found at ${path}: set STRATA_CORPORA or restore ../shared/corpora (suites never skip)`,
    );
  }
  return path;
}
