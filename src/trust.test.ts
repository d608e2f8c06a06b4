import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { after, before, test } from 'node:test';

import { extraCertificates, splitPem, trustedCertificates } from './trust.js';

const PEM = (body: string): string => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-trust-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('splitPem: every certificate of a bundle, comments and other blocks left out', () => {
  const bundle = `# a comment\n${PEM('AAAA')}\nnoise\n${PEM('BBBB')}\n-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n`;
  assert.deepEqual(splitPem(bundle), [PEM('AAAA'), PEM('BBBB')]);
  assert.deepEqual(splitPem(''), []);
});

test('deferred by bin/strata: connections name Node roots plus the file; own CAs add to them', async () => {
  const file = join(dir, 'extra.pem');
  await writeFile(file, `${PEM('EXTRA1')}\n${PEM('EXTRA2')}\n`);
  const slot = globalThis as Record<symbol, unknown>;
  const key = Symbol.for('strata.deferredExtraCaCerts');
  slot[key] = file;
  try {
    assert.deepEqual(extraCertificates(), [PEM('EXTRA1'), PEM('EXTRA2')]);
    assert.deepEqual(trustedCertificates(), [...rootCertificates, PEM('EXTRA1'), PEM('EXTRA2')]);
    assert.deepEqual(trustedCertificates([PEM('OWN')]), [
      ...rootCertificates,
      PEM('EXTRA1'),
      PEM('EXTRA2'),
      PEM('OWN'),
    ]);
    delete slot[key];
    // Node's default store has them when nothing was deferred: no list needed then.
    assert.equal(trustedCertificates(), undefined);
  } finally {
    delete slot[key];
  }
});
