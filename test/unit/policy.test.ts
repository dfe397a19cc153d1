import t from 'tap';
import { BackendSet } from '../../src/lb/backends.js';
import { LeastConnections, PowerOfTwo, RoundRobin, preferLocal, type Candidate } from '../../src/lb/policy.js';

const cand = (id: string, extra: Partial<Candidate> = {}): Candidate => ({ id, weight: 10, local: false, active: 0, ...extra });

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function counts(picks: Candidate[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) out[p.id] = (out[p.id] ?? 0) + 1;
  return out;
}

t.test('round-robin with equal weights is an exact rotation', async (t) => {
  const rr = new RoundRobin();
  const cs = [cand('a'), cand('b'), cand('c')];
  const seq = Array.from({ length: 9 }, () => rr.pick(cs).id);
  t.same(seq, ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
});

t.test('round-robin honours weights exactly over each cycle, spread out', async (t) => {
  const rr = new RoundRobin();
  const cs = [cand('a', { weight: 5 }), cand('b', { weight: 1 }), cand('c', { weight: 1 })];
  const seq = Array.from({ length: 70 }, () => rr.pick(cs));
  t.same(counts(seq), { a: 50, b: 10, c: 10 });
  const firstCycle = seq.slice(0, 7).map((c) => c.id).join('');
  t.equal(firstCycle, 'aabacaa', 'smooth: the light ones are not bunched');
});

t.test('least-connections goes to the least loaded per weight', async (t) => {
  const lc = new LeastConnections();
  t.equal(lc.pick([cand('a', { active: 3 }), cand('b', { active: 1 }), cand('c', { active: 2 })]).id, 'b');
  t.equal(lc.pick([cand('a', { active: 4, weight: 20 }), cand('b', { active: 3, weight: 10 })]).id, 'a', 'load is per unit of weight');
  // Ties rotate instead of always taking the first.
  const tied = [cand('a'), cand('b')];
  t.same(new Set([lc.pick(tied).id, lc.pick(tied).id]), new Set(['a', 'b']));
});

t.test('power of two choices avoids the loaded endpoint and follows weights', async (t) => {
  const p2c = new PowerOfTwo(seeded(42));
  const busy = [cand('busy', { active: 50 }), cand('idle1'), cand('idle2'), cand('idle3')];
  const c = counts(Array.from({ length: 4000 }, () => p2c.pick(busy)));
  // Uniform would give busy 25%; it wins only when drawn twice (~1/16, and redraws make it rarer).
  t.ok((c.busy ?? 0) < 4000 * 0.07, `busy picked ${c.busy ?? 0} times of 4000`);
  // Long-lived connections pile up: open ones end up in proportion to the weights (3:1).
  const weighted = [{ ...cand('heavy', { weight: 30 }) }, { ...cand('light', { weight: 10 }) }];
  for (let i = 0; i < 400; i++) (p2c.pick(weighted) as { active: number }).active++;
  t.ok(Math.abs(weighted[0]!.active - 300) <= 10, `heavy holds ${weighted[0]!.active} of 400 (weight 3/4)`);
});

t.test('local endpoints are preferred while there are any', async (t) => {
  const cs = [cand('remote1'), cand('local1', { local: true }), cand('remote2'), cand('local2', { local: true })];
  t.same(preferLocal(cs, true).map((c) => c.id), ['local1', 'local2']);
  t.equal(preferLocal(cs, false).length, 4);
  t.equal(preferLocal([cand('r1'), cand('r2')], true).length, 2, 'no local ones: all');
});

t.test('backend set: a failed endpoint is ejected, skipped, retried after the ejection; removed ones drain', async (t) => {
  let now = 1000;
  const set = new BackendSet({ policy: 'round-robin', preferLocal: true, ejectMs: 100, now: () => now }, [
    { id: 'a', host: '10.0.0.1', port: 80, weight: 10, local: false },
    { id: 'b', host: '10.0.0.2', port: 80, weight: 10, local: false },
  ]);
  const a = set.backends()[0]!;
  t.equal(set.failed(a), true, 'first failure ejects');
  t.equal(a.ejections, 1);
  t.same(Array.from({ length: 4 }, () => set.pick()!.id), ['b', 'b', 'b', 'b'], 'skipped while ejected');
  t.equal(set.pick(new Set([set.backends()[1]!]))!.id, 'a', 'all others tried: the ejected one rather than nothing');
  now += 101;
  t.same(new Set(Array.from({ length: 4 }, () => set.pick()!.id)), new Set(['a', 'b']), 'back after the ejection time');
  t.equal(set.failed(a), true);
  t.equal(set.failed(a), false, 'a second failure while out extends, does not count twice');
  now += 150;
  t.equal(set.pick(new Set([set.backends()[1]!]))!.id, 'a');
  t.ok(a.ejectedUntil > now, 'back-off doubled the ejection');
  set.succeeded(a);
  t.equal(a.ejectedUntil, 0);
  // Removal: no new picks, the object (with its open connections) reported until drained.
  a.active = 2;
  set.update([{ id: 'b', host: '10.0.0.2', port: 80, weight: 10, local: false }]);
  t.same(Array.from({ length: 3 }, () => set.pick()!.id), ['b', 'b', 'b']);
  t.equal(a.current, false);
  t.ok(set.reportable().includes(a), 'draining endpoint still reported');
  a.active = 0;
  t.notOk(set.reportable().includes(a), 'gone once drained');
  set.update([]);
  t.equal(set.pick(), null, 'no endpoints: nothing');
});
