// Typed configuration errors. The CLI prints the message and exits with code 2, the code a
// script can rely on for "you gave me something wrong".

export type ConfigErrorCode =
  | 'ERR_CONFIG_FILE'
  | 'ERR_CONFIG_YAML'
  | 'ERR_CONFIG_UNKNOWN_KEY'
  | 'ERR_CONFIG_BAD_VALUE'
  | 'ERR_USAGE';

export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(
    readonly code: ConfigErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** "did you mean" for a mistyped key or flag. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  // A truncated name ("upstream" for "upstream-dns") is the likeliest slip.
  const prefixed = list.filter((c) => c.startsWith(word) || word.startsWith(c));
  if (prefixed.length > 0) return prefixed.sort((a, b) => a.length - b.length)[0];
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of list) {
    const d = distance(word, c);
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

export const didYouMean = (word: string, candidates: Iterable<string>, prefix = ''): string => {
  const c = closest(word, candidates);
  return c ? ` (did you mean ${prefix}${c}?)` : '';
};

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
