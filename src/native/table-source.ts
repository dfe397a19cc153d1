import { createHash } from 'node:crypto';
import type { ZoneSettings } from '../dns/records.js';
import type { Registry } from '../registry/registry.js';
import type { NodeState } from '../registry/types.js';
import { VERSION } from '../version.js';
import { TABLE_VERSION } from './table.js';

// What a whole answer table's groups are compiled from, as one digest: a table file written with
// the same digest holds the groups a compile now would give (table-file.ts), so a start can serve
// it instead of compiling. Left out, because a start renews them without compiling the groups:
// the SOA serial (a patch of the zone's own names), the client classes and what unknown names
// get (the table's header, rebuilt), the container names (their group, patched).
//
// Cost: O(nodes + services) for the other hosts' states, whose (incarnation, version) stand for
// their content (an owner never reuses a version for other content); this host's own state is
// hashed whole (but `lastSeen`), since its version is new in every run, once per state object.

const localDigests = new WeakMap<NodeState, string>();
const PIECE = 65536;

function localDigest(s: NodeState): string {
  let d = localDigests.get(s);
  if (d === undefined) {
    // Endpoint by endpoint, in pieces of ~64 K characters: not one text of the whole state (at
    // 50,000 endpoints two strings of ~10 MB each, at the start's peak). Without `lastSeen`, which
    // a run sets anew for what it finds (it changes no answer).
    const h = createHash('sha1').update(JSON.stringify([s.name, s.address]));
    let piece = '';
    for (const e of s.endpoints) {
      const { lastSeen: _lastSeen, ...rest } = e;
      piece += `\n${JSON.stringify(rest)}`;
      if (piece.length >= PIECE) {
        h.update(piece);
        piece = '';
      }
    }
    d = h.update(piece).digest('hex');
    localDigests.set(s, d);
  }
  return d;
}

/**
 * The digest of what the groups of a whole table depend on: the compiler's format and version,
 * the zone's settings but the serial, the options views are built with (`viewOptions`), every
 * node state and the services' VIPs.
 */
export function tableSource(settings: ZoneSettings, registry: Registry, viewOptions: unknown): string {
  const h = createHash('sha1');
  const { serial: _serial, ...rest } = settings;
  h.update(JSON.stringify([TABLE_VERSION, VERSION, rest, viewOptions, registry.localNode]));
  const nodes = [...registry.nodes()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const n of nodes) {
    h.update(n.id === registry.localNode ? `\n${n.id}\0${localDigest(n)}` : `\n${n.id}\0${n.incarnation}\0${n.version}\0${n.name}\0${n.address}`);
  }
  const vips: string[] = [];
  for (const view of registry.services()) if (view.vip) vips.push(`${view.key}\0${view.vip}`);
  h.update(`\nvips\n${vips.sort().join('\n')}`);
  return h.digest('hex');
}
