/**
 * Corpus cases strata knowingly answers differently, with the reason. The data lives in
 * corpus-known-failures.json so it can be reviewed apart from code.
 */
import { readFileSync } from 'node:fs';

interface KnownFailure {
  case: string;
  reason: string;
}

type KnownFailureFile = Record<'hadolint' | 'buildkit-checks' | 'build-check', KnownFailure[]>;

/** Case key → reason. */
export function knownFailures(corpus: keyof KnownFailureFile): Map<string, string> {
  const file = JSON.parse(
    readFileSync(new URL('./corpus-known-failures.json', import.meta.url), 'utf8'),
  ) as KnownFailureFile;
  return new Map((file[corpus] ?? []).map((entry) => [entry.case, entry.reason]));
}
