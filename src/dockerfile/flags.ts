/**
 * BuildKit's instruction flags (BFlags): `--name=value` for string flags (repeatable ones
 * collect every value), `--name` or `--name=true|false` for booleans, a bare `--` ends flags.
 * Errors carry BuildKit's wording so users can search for them.
 */
type FlagKind = 'bool' | 'string' | 'strings';

interface FlagState {
  kind: FlagKind;
  values: string[];
  used: boolean;
}

export class FlagError extends Error {}

export class InstructionFlags {
  private readonly flags = new Map<string, FlagState>();

  constructor(private readonly raw: readonly string[]) {}

  bool(name: string): () => boolean | undefined {
    const state = this.add(name, 'bool');
    return () => (state.used ? state.values.at(-1) === 'true' : undefined);
  }

  string(name: string): () => string | undefined {
    const state = this.add(name, 'string');
    return () => (state.used ? state.values.at(-1) : undefined);
  }

  strings(name: string): () => string[] {
    const state = this.add(name, 'strings');
    return () => [...state.values];
  }

  private add(name: string, kind: FlagKind): FlagState {
    const state: FlagState = { kind, values: [], used: false };
    this.flags.set(name, state);
    return state;
  }

  /** Parses the raw flags against the declared ones; `ignoreUnknown` for ARG/STOPSIGNAL/HEALTHCHECK NONE. */
  parse(options: { ignoreUnknown?: boolean } = {}): void {
    for (const raw of this.raw) {
      if (!raw.startsWith('--')) throw new FlagError(`arg should start with -- : ${raw}`);
      if (raw === '--') return;
      const body = raw.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const value = eq < 0 ? undefined : body.slice(eq + 1);
      const state = this.flags.get(name);
      if (!state) {
        if (options.ignoreUnknown) continue;
        throw new FlagError(`unknown flag: ${name}${suggestion(name, [...this.flags.keys()])}`);
      }
      if (state.used && state.kind !== 'strings') throw new FlagError(`duplicate flag specified: ${name}`);
      state.used = true;
      if (state.kind === 'bool') {
        if (value === '') throw new FlagError(`missing a value on flag: ${name}`);
        const lower = (value ?? 'true').toLowerCase();
        if (lower !== 'true' && lower !== 'false') {
          throw new FlagError(`expecting boolean value for flag ${name}, not: ${value}`);
        }
        state.values.push(lower);
        continue;
      }
      if (value === undefined) throw new FlagError(`missing a value on flag: ${name}`);
      state.values.push(value);
    }
  }
}

/** BuildKit's "did you mean" hint: the closest known name within a small edit distance. */
export function suggestion(word: string, candidates: readonly string[], caseInsensitive = false): string {
  const normalize = (text: string) => (caseInsensitive ? text.toLowerCase() : text);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(normalize(word), normalize(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // BuildKit suggests when the distance is at most about a third of the word (and at least 1 edit).
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= limit ? ` (did you mean ${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}
