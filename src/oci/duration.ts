/**
 * Go's time.ParseDuration ("1h30m", "1.5s", "300ms", "0"), which Docker's formats use for
 * HEALTHCHECK intervals and distribution's config for its durations. Returns nanoseconds, or
 * undefined when the text is not a duration. Negative durations are not accepted.
 */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    total += Number(match[1]) * (units[match[2] as string] as number);
    consumed = pattern.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) return undefined;
  return Math.round(total);
}
