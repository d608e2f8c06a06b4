import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openBody, type TarEntryInput } from '../archive/tar-writer.js';
import { StrataError, errnoCode } from '../errors.js';

/**
 * Materialises archive members as a directory (an OCI image layout). Files go to a sibling temp
 * directory first and the whole tree is renamed into place, so a failure leaves nothing half-written.
 */
export async function writeEntriesToDirectory(
  entries: AsyncIterable<TarEntryInput>,
  directory: string,
): Promise<void> {
  const staging = `${directory.replace(/\/+$/, '')}.strata-tmp-${process.pid}-${Date.now()}`;
  const replaceEmpty = await assertWritableTarget(directory);
  await mkdir(staging, { recursive: true });
  try {
    for await (const entry of entries) {
      const path = join(staging, entry.header.name);
      if (!path.startsWith(staging + '/')) {
        throw new StrataError('UNSAFE_PATH', `refusing to write ${entry.header.name} outside ${directory}`);
      }
      if (entry.header.type === 'directory') {
        await mkdir(path, { recursive: true });
        continue;
      }
      await mkdir(dirname(path), { recursive: true });
      const { body } = entry;
      if (body === undefined || body instanceof Uint8Array) await writeFile(path, body ?? '');
      else
        await pipeline(
          Readable.from(await openBody(body, entry.header.size ?? 0, entry.header.name)),
          createWriteStream(path),
        );
    }
    if (replaceEmpty) await rmdir(directory);
    await rename(staging, directory);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * An existing, non-empty directory is the user's data: never overwrite it. Returns whether an
 * (empty) directory is there to be replaced.
 */
async function assertWritableTarget(directory: string): Promise<boolean> {
  try {
    if ((await readdir(directory)).length > 0)
      throw new StrataError('CONFLICT', `${directory} exists and is not empty`);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    if (errnoCode(err) === 'ENOTDIR')
      throw new StrataError('CONFLICT', `${directory} exists and is not a directory`);
    throw err;
  }
}
