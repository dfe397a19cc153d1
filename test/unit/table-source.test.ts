import t from 'tap';
import { tableSource } from '../../src/native/table-source.js';
import { Registry } from '../../src/registry/registry.js';
import { ep, node } from '../helpers/registry.js';
import type { ZoneSettings } from '../../src/dns/records.js';

// The digest a table file is kept under: this host's own state counts by content, `lastSeen`
// aside (a new run sets it anew for what it finds, and it changes no answer).

const settings = { domain: 'cluster.local', serial: 1 } as unknown as ZoneSettings;
const opts = { localNode: 'me', routableContainerIps: false, defaultMode: 'dnsrr' as const };

t.test("this host's state: its content counts, not when it was seen", async (t) => {
  const digest = (lastSeen: number, hostname = 'h1'): string => {
    const r = new Registry(opts);
    const eps = Array.from({ length: 3000 }, (_, i) => ep(`s${i}`, `10.0.${i >> 8}.${i & 255}`, { id: `e${i}`, hostname: i === 7 ? hostname : `e${i}`, lastSeen }));
    r.apply(node('me', 1, eps));
    return tableSource(settings, r, null);
  };
  const base = digest(1);
  t.equal(digest(2), base, 'other lastSeen: the same digest');
  t.not(digest(1, 'other'), base, "one endpoint's hostname: another digest");
  t.match(base, /^[0-9a-f]{40}$/);
});
