// The --query-log setting, parsed (pure: the option table uses it, with no logging code loaded).

export interface QueryLogMode {
  /** off: nothing; errors: rcode other than NOERROR; sample: one query in `every` (1: all). */
  kind: 'off' | 'errors' | 'sample';
  every: number;
}

const SAMPLE_MAX = 1_000_000;

/** off | errors | all | sample:N; throws with what is wrong. */
export function parseQueryLogMode(s: string): QueryLogMode {
  if (s === 'off' || s === 'errors') return { kind: s, every: 1 };
  if (s === 'all') return { kind: 'sample', every: 1 };
  const m = /^sample:(\d+)$/.exec(s);
  if (m) {
    const every = Number(m[1]);
    if (every >= 1 && every <= SAMPLE_MAX) return { kind: 'sample', every };
    throw new Error(`sample:N needs N from 1 to ${SAMPLE_MAX} (one query in N is logged)`);
  }
  throw new Error('is not off, errors, all or sample:N');
}
