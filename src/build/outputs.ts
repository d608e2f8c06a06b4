/**
 * `strata build --output`: besides the image in the store (always made: it is the cache's and
 * `-t`'s), a build can be written as a docker-archive, an OCI layout tar, a flattened filesystem
 * tar, or a directory — BuildKit's exporter names and its `-o` shorthands.
 */
import type { Readable } from 'node:stream';

import type { Store } from '../store/index.js';
import { StrataError } from '../errors.js';
import { extractTar } from '../archive/extract.js';
import { exportImage } from '../image/export.js';
import { findImage } from '../image/resolve.js';
import { saveImages } from '../image/save.js';
import type { Digest } from '../oci/digest.js';

export type OutputSpec =
  { type: 'image' } | { type: 'docker' | 'oci' | 'tar'; dest: string } | { type: 'local'; dest: string };

/** `type=local,dest=out`, or the shorthands `out` (a directory) and `-` (a tar on STDOUT). */
export function parseOutput(text: string): OutputSpec {
  if (text === '-') return { type: 'tar', dest: '-' };
  if (!text.includes('=')) return { type: 'local', dest: text };
  const fields = new Map<string, string>();
  for (const field of text.split(',')) {
    const eq = field.indexOf('=');
    if (eq <= 0)
      throw new StrataError('INVALID_ARGUMENT', `invalid --output "${text}": "${field}" is not key=value`);
    fields.set(field.slice(0, eq).trim().toLowerCase(), field.slice(eq + 1).trim());
  }
  const type = fields.get('type');
  const dest = fields.get('dest');
  switch (type) {
    case 'image':
    case 'registry':
      if (type === 'registry')
        throw new StrataError('UNSUPPORTED', '--output type=registry: use strata push');
      return { type: 'image' };
    case 'docker':
    case 'oci':
    case 'tar':
      return { type, dest: dest ?? '-' };
    case 'local':
      if (dest === undefined || dest === '')
        throw new StrataError('INVALID_ARGUMENT', '--output type=local needs dest=<directory>');
      return { type, dest };
    case undefined:
      throw new StrataError('INVALID_ARGUMENT', `invalid --output "${text}": type is required`);
    default:
      throw new StrataError(
        'INVALID_ARGUMENT',
        `invalid --output "${text}": unknown type "${type}" (image, docker, oci, tar, local)`,
      );
  }
}

/** The archive stream of a `docker`, `oci` or `tar` output of the image `id`. */
export async function outputStream(
  store: Store,
  id: Digest,
  names: readonly string[],
  type: 'docker' | 'oci' | 'tar',
): Promise<Readable> {
  const image = await findImage(store, id);
  if (type === 'tar') return exportImage(store, image);
  return saveImages(store, [{ image, names: [...names] }], type);
}

/** `type=local`: the image's flattened filesystem written into `dest`. */
export async function outputDirectory(store: Store, id: Digest, dest: string): Promise<void> {
  const image = await findImage(store, id);
  await extractTar(await exportImage(store, image), dest, { whiteouts: 'apply', allowDevices: true });
}
