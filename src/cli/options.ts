import { StrataError } from '../errors.js';

/** Commander argument parser for repeatable options (`-t a -t b` → ['a', 'b']). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** An integer flag's value (`--compression-level 4`); one clear error for anything else. */
export function integer(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d+$/.test(text))
    throw new StrataError('INVALID_ARGUMENT', `invalid ${flag} "${text}": not an integer`);
  return Number(text);
}
