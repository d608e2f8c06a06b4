/**
 * The certificates of NODE_EXTRA_CA_CERTS, for the TLS connections strata makes itself.
 *
 * Node loads that file when it starts, for every command; bin/strata starts node without it and
 * bin/launch.cjs records the file here (a global symbol), so that it is read only when strata
 * first opens a TLS connection. Node's default store then lacks those certificates, so every
 * connection strata makes names its CAs itself: Node's bundled roots plus these. A `ca` list
 * also replaces the default store when it is not deferred (a registry's certs.d CA), so lists
 * strata builds always include them.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

const DEFERRED = Symbol.for('strata.deferredExtraCaCerts');

let extra: string[] | undefined;

/** The file bin/strata kept from Node, if it did. */
function deferredFile(): string | undefined {
  const value = (globalThis as Record<symbol, unknown>)[DEFERRED];
  return typeof value === 'string' ? value : undefined;
}

/** PEM certificates of a bundle file, in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/** NODE_EXTRA_CA_CERTS's certificates (read once); none when unset or unreadable, as in Node. */
export function extraCertificates(): string[] {
  if (extra !== undefined) return extra;
  extra = [];
  const file = deferredFile() ?? process.env.NODE_EXTRA_CA_CERTS;
  if (file === undefined || file === '') return extra;
  try {
    extra = splitPem(readFileSync(file, 'utf8'));
  } catch (err) {
    // Node's own wording when it cannot load the file at start-up; it goes on without it.
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(err as Error).message}`);
  }
  return extra;
}

/**
 * The CA list for a connection: Node's roots, the extra certificates and `own` (a registry's
 * CA). Undefined when Node's default store already says the same (nothing deferred, no `own`).
 */
export function trustedCertificates(own: readonly string[] = []): string[] | undefined {
  if (own.length === 0 && deferredFile() === undefined) return undefined;
  return [...rootCertificates, ...extraCertificates(), ...own];
}
