/** Commander argument parser for repeatable options (`-t a -t b` → ['a', 'b']). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
