import { readdir } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/** The names in `dir`, or none when it does not exist (yet): stores create directories lazily. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}
