// The status page: reads /api/v1/overview as a blocking query (it answers at once on a registry
// change, else after a few seconds with fresh counters) and redraws the sections from it. No
// library: a small element builder is all the page needs.

interface Endpoint {
  id: string;
  hostname: string;
  node_name: string;
  node_id: string;
  local: boolean;
  address: string;
  ports: Record<string, { port: number; protocol: string }>;
  healthy: boolean;
  health: string;
  reachable: boolean;
  source: string;
  problems: string[];
  reason: string | null;
}

interface Service {
  namespace: string;
  name: string;
  mode: string;
  vip: string | null;
  ports: Record<string, string>;
  endpoints: number;
  healthy: number;
  problems: string[];
  endpoints_shown: Endpoint[];
}

interface Member {
  id: string;
  name: string;
  address: string;
  state: string;
  local: boolean;
  endpoints: number;
  gossip_address?: string | null;
  state_since?: string | null;
  last_contact?: string | null;
}

interface Backend {
  backend: string;
  /** `<node>/<endpoint>` */
  id: string;
  active: number;
  connections: number;
  bytes_to_backend: number;
  bytes_from_backend: number;
  connect_failures: number;
  ejections: number;
  ejected: boolean;
  current: boolean;
}

interface Overview {
  time: number;
  status: { node: { id: string; name: string; address: string }; version: string; ready: boolean; problems: string[]; dns: { path: string; domain: string } };
  members: Member[];
  services: Service[];
  services_total: number;
  lb: Array<{ service: string; listener: string; backends: Backend[] }> | null;
  lb_refused: number;
  dns: Array<{ rcode: string; path: string; count: number }>;
  changes: Array<{ index: number; time: number; services: Array<{ key: string; endpoints?: number; healthy?: number; removed?: true }>; more: number; nodes: string[] }>;
}

/** How long one read may wait for a change before it returns with fresh counters. */
const WAIT = '3s';
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

type Child = Node | string | number | null | undefined | false;

function h(tag: string, attrs: Record<string, string> = {}, ...children: Array<Child | Child[]>): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
  return el;
}

const byId = (id: string): HTMLElement => document.getElementById(id)!;
const body = (section: string): HTMLElement => byId(section).querySelector<HTMLElement>('.body')!;

function table(head: string[], rows: HTMLElement[], narrowHidden: number[] = []): HTMLElement {
  const ths = head.map((t, i) => h('th', { scope: 'col', ...(narrowHidden.includes(i) ? { class: 'hide-narrow' } : {}) }, t));
  return h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ths)), h('tbody', {}, rows)));
}

function td(text: Child, cls = ''): HTMLElement {
  return h('td', cls ? { class: cls } : {}, text);
}

/** How long ago `ms` (epoch ms) was, roughly: `12 s`, `5 min`, `3 h`, `2 d`. */
function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
}
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const bytes = (n: number): string => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / (1 << 30)).toFixed(2)} GiB`);
const ports = (p: Record<string, { port: number; protocol: string }>): string =>
  Object.entries(p).map(([n, v]) => `${n} ${v.port}/${v.protocol}`).join(', ') || '–';

function renderProblems(o: Overview): void {
  const list = o.status.problems;
  body('problems').replaceChildren(list.length ? h('ul', { class: 'problems' }, list.map((p) => h('li', {}, p))) : h('p', { class: 'ok' }, 'none'));
}

function renderMembers(o: Overview): void {
  const rows = o.members.map((m) =>
    h('tr', {},
      td(m.local ? `${m.name} (this node)` : m.name),
      td(`${m.state}${m.state_since ? ` for ${ago(Date.parse(m.state_since))}` : ''}`, m.state === 'alive' ? 'ok' : m.state === 'suspect' ? 'warn' : m.state === 'dead' ? 'bad' : 'muted'),
      td(m.address),
      td(m.local ? '–' : m.last_contact ? `${ago(Date.parse(m.last_contact))} ago` : 'never'),
      td(m.endpoints, 'num'),
      h('td', { class: 'hide-narrow muted' }, m.id)),
  );
  body('members').replaceChildren(table(['Name', 'State', 'Address', 'Last contact', 'Endpoints', 'Id'], rows, [5]));
}

function endpointState(e: Endpoint): HTMLElement {
  if (!e.healthy) return td(`unhealthy${e.reason ? `: ${e.reason}` : ''}`, 'bad');
  if (!e.reachable) return td('unreachable from this host (no published port)', 'warn');
  return td('healthy', 'ok');
}

function renderService(s: Service): HTMLElement {
  const key = `${s.namespace}/${s.name}`;
  const nodes = new Map<string, Endpoint[]>();
  for (const e of s.endpoints_shown) nodes.set(e.node_name, [...(nodes.get(e.node_name) ?? []), e]);
  const rows: HTMLElement[] = [];
  for (const [node, list] of nodes) {
    rows.push(h('tr', {}, h('th', { colspan: '5', scope: 'rowgroup' }, `node ${node}${list[0]!.local ? ' (this node)' : ''}`)));
    for (const e of list) {
      rows.push(
        h('tr', { 'data-endpoint': `${key}/${e.id}`, 'data-health': e.healthy ? (e.reachable ? 'healthy' : 'unreachable') : 'unhealthy' },
          td(e.hostname === e.id ? e.id : `${e.id} (${e.hostname})`),
          td(e.address),
          h('td', { class: 'hide-narrow' }, ports(e.ports)),
          endpointState(e),
          h('td', { class: 'hide-narrow muted' }, `${e.source}, check ${e.health}${e.problems.length ? `; ${e.problems.join('; ')}` : ''}`)),
      );
    }
  }
  const hidden = s.endpoints - s.endpoints_shown.length;
  const portText = Object.entries(s.ports).map(([n, p]) => `${n}/${p}`).join(', ') || 'no named ports';
  return h('article', { class: 'service', 'data-service': key, 'aria-label': `service ${key}` },
    h('h3', {}, h('code', {}, key), ' ', h('span', { class: s.healthy === s.endpoints ? 'ok' : s.healthy === 0 ? 'bad' : 'warn' }, `${s.healthy}/${s.endpoints} healthy`)),
    h('p', { class: 'meta' }, `${s.mode}${s.vip ? `, VIP ${s.vip}` : ''}, ${portText}`),
    s.problems.length ? h('ul', { class: 'problems' }, s.problems.map((p) => h('li', {}, p))) : null,
    table(['Endpoint', 'Address', 'Ports', 'Health', 'Source'], rows, [2, 4]),
    hidden > 0 ? h('p', { class: 'muted' }, `${plural(hidden, 'more endpoint')} not shown`) : null,
  );
}

function renderServices(o: Overview, query: string): void {
  const q = query.trim().toLowerCase();
  const shown = o.services.filter((s) => `${s.namespace}/${s.name}`.includes(q));
  const note = o.services_total > o.services.length ? h('p', { class: 'muted' }, `showing ${o.services.length} of ${o.services_total} services: search to narrow`) : null;
  body('services').replaceChildren(
    ...(shown.length ? shown.map(renderService) : [h('p', { class: 'muted' }, q ? `no service matches “${query}”` : 'no services')]),
    ...(note ? [note] : []),
  );
}

function renderLb(o: Overview): void {
  if (!o.lb) {
    body('lb').replaceChildren(h('p', { class: 'muted' }, 'the load balancer is off on this node'));
    return;
  }
  const rows: HTMLElement[] = [];
  for (const l of o.lb) {
    rows.push(h('tr', {}, h('th', { colspan: '7', scope: 'rowgroup' }, `${l.service} on ${l.listener}`)));
    for (const b of l.backends) {
      rows.push(h('tr', {},
        td(`${b.backend} (${b.id.split('/').at(-1)})${b.current ? '' : ', draining'}`),
        td(b.active, 'num'), td(b.connections, 'num'),
        td(bytes(b.bytes_to_backend), 'num'), td(bytes(b.bytes_from_backend), 'num'),
        td(b.connect_failures, b.connect_failures ? 'num bad' : 'num'),
        td(b.ejected ? `${b.ejections} (ejected now)` : b.ejections, b.ejected ? 'num bad' : 'num')));
    }
  }
  body('lb').replaceChildren(
    o.lb.length ? table(['Backend', 'Active', 'Total', 'Bytes in', 'Bytes out', 'Errors', 'Ejections'], rows) : h('p', { class: 'muted' }, 'no VIP listeners'),
    h('p', { class: 'muted' }, `${o.lb_refused} connections refused at --lb-max-connections`),
  );
}

let previous: { time: number; counts: Map<string, number> } | null = null;

function renderDns(o: Overview): void {
  const counts = new Map(o.dns.map((d) => [`${d.rcode}|${d.path}`, d.count]));
  const paths = [...new Set(o.dns.map((d) => d.path))].sort();
  const rcodes = [...new Set(o.dns.map((d) => d.rcode))].sort();
  const dt = previous ? (o.time - previous.time) / 1000 : 0;
  const rate = (k: string): string => {
    if (!previous || dt <= 0) return '…';
    // A restarted daemon counts from zero again: no negative rate.
    return (Math.max(0, (counts.get(k) ?? 0) - (previous.counts.get(k) ?? 0)) / dt).toFixed(1);
  };
  const rows = rcodes.map((rc) => h('tr', {}, h('th', { scope: 'row' }, rc), paths.map((p) => td(`${rate(`${rc}|${p}`)} (${counts.get(`${rc}|${p}`) ?? 0})`, 'num'))));
  previous = { time: o.time, counts };
  body('dns').replaceChildren(
    rows.length ? table(['Response code', ...paths.map((p) => `${p} path /s (total)`)], rows) : h('p', { class: 'muted' }, 'no queries answered yet'),
    h('p', { class: 'muted' }, `served by the ${o.status.dns.path} path, zone ${o.status.dns.domain}`),
  );
}

function renderChanges(o: Overview): void {
  const items = o.changes.map((c) => {
    const what = c.services.map((s) => (s.removed ? `${s.key} removed` : `${s.key}: ${plural(s.endpoints ?? 0, 'endpoint')}, ${s.healthy} healthy`));
    if (c.more) what.push(`and ${c.more} more services`);
    if (c.nodes.length) what.push(`nodes ${c.nodes.join(', ')}`);
    return h('li', {}, h('time', { datetime: new Date(c.time).toISOString() }, new Date(c.time).toLocaleTimeString()), ` #${c.index} `, what.join('; ') || 'no service changed');
  });
  body('changes').replaceChildren(items.length ? h('ol', { class: 'changes', reversed: '' }, items) : h('p', { class: 'muted' }, 'none since the daemon started'));
}

let last: Overview | null = null;

function render(o: Overview): void {
  last = o;
  byId('node').textContent = `— ${o.status.node.name} (${o.status.node.address}), ${o.status.version}`;
  renderProblems(o);
  renderMembers(o);
  renderServices(o, search().value);
  renderLb(o);
  renderDns(o);
  renderChanges(o);
}

const search = (): HTMLInputElement => byId('search') as HTMLInputElement;

function setConnection(state: 'live' | 'disconnected', detail = ''): void {
  const el = byId('conn');
  if (el.dataset.state === state && !detail) return;
  el.dataset.state = state;
  el.textContent = state === 'live' ? 'live' : `disconnected${detail ? ` (${detail})` : ''}: retrying`;
}

let current: AbortController | null = null;

/** Reads forever: a blocking read after each answer, a growing pause after a failure. */
async function follow(): Promise<void> {
  let index = 0;
  let retry = RETRY_MIN_MS;
  for (;;) {
    const q = search().value.trim();
    current = new AbortController();
    try {
      const url = `/api/v1/overview?index=${index}&wait=${WAIT}${q ? `&q=${encodeURIComponent(q)}` : ''}`;
      const res = await fetch(url, { signal: current.signal, cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const o = (await res.json()) as Overview;
      index = Number(res.headers.get('x-podman-swarm-index') ?? 0);
      render(o);
      setConnection('live');
      retry = RETRY_MIN_MS;
    } catch (e) {
      if (current.signal.aborted) {
        index = 0; // the search changed: read again at once
        continue;
      }
      setConnection('disconnected', (e as Error).message.startsWith('HTTP') ? (e as Error).message : '');
      index = 0;
      await new Promise((r) => setTimeout(r, retry));
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    }
  }
}

search().addEventListener('input', () => {
  if (last) renderServices(last, search().value); // at once from what the page has
  current?.abort(); // and again from the daemon, which searches every service
});

void follow();
