// Polls `check` until it returns a truthy value (which is returned) or the time is up. A check that
// throws counts as "not yet"; the last error is part of the timeout message, which names what was
// awaited — the line a failing test prints.

type Maybe<T> = T | undefined | null | false | '' | 0;

export async function until<T>(what: string, check: () => Maybe<T> | Promise<Maybe<T>>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `until` with a test file's own default timeout: `const until = waiter(10_000)`. */
export const waiter =
  (defaultMs: number) =>
  <T>(what: string, check: () => Maybe<T> | Promise<Maybe<T>>, timeoutMs = defaultMs): Promise<T> =>
    until(what, check, timeoutMs);

/**
 * Asserts that a daemon's log has (or comes to have, within `timeoutMs`) a line matching
 * `pattern`. The daemon writes its log asynchronously: a line can reach the pipe after the
 * effect the test waited for, so it is awaited, not read at once. Fails as `t.match` does.
 */
export async function expectLog(
  t: { match(found: unknown, wanted: unknown, ...rest: [] | [string]): boolean },
  d: { logs(): string },
  pattern: RegExp | string,
  message?: string,
  timeoutMs = 10_000,
): Promise<void> {
  const has = (): boolean => (typeof pattern === 'string' ? d.logs().includes(pattern) : pattern.test(d.logs()));
  await until(`a log line matching ${String(pattern)}`, has, timeoutMs).catch(() => undefined);
  if (message === undefined) t.match(d.logs(), pattern);
  else t.match(d.logs(), pattern, message);
}
