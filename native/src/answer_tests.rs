//! The answer table and the native DNS fast path, without Node:
//! - `Table::parse`: a table in the format src/native/table.ts writes is read; anything else
//!   (wrong magic or version, any truncation, trailing bytes, a zone pointer outside its record,
//!   a bad item kind, variant count or prefix) is an Err, never a panic;
//! - `Table::patch`: a group replaces its previous entries and only those, an empty group
//!   removes them, a lower rank answers first under a shared name, the negative SOA follows the
//!   patch, and a refused patch changes nothing;
//! - `answer`: the exact bytes of a reply (owner C0 0C, zone pointers patched to the zone's place
//!   in the question as the client spelled it), negative answers with the zone's SOA, the
//!   `X.svc.<zone>` alias, rotation by query ID per group, prefer-local, truncation (whole records,
//!   additional section first without TC), the A/AAAA answer limit, ANY (RFC 8482), scoped
//!   container names, EDNS and malformed queries.
//!
//! Tables are written by the small builder below (`Tb`), which follows the format documented on
//! `Table::parse` and the encoding of src/dns/message.ts.

use super::*;

const ZONE: &str = "cluster.local";
const T_A: u16 = 1;
const T_NS: u16 = 2;
const T_MX: u16 = 15;
const T_TXT: u16 = 16;
const T_AAAA: u16 = 28;
const T_ANY: u16 = 255;

// ---- table builder ----

/// Wire form of `name` (labels as given, with the root label).
fn wire(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// One table item: a record (kind 0) with the offsets of its zone pointers, or (kind 1) a
/// reference to the table's negative SOA.
#[derive(Clone)]
struct It {
    kind: u8,
    patches: Vec<u16>,
    bytes: Vec<u8>,
}

impl It {
    /// Labels of `head` then a placeholder pointer to the zone (a patch).
    fn zone_name(&mut self, head: &str) {
        for l in head.split('.').filter(|l| !l.is_empty()) {
            self.bytes.push(l.len() as u8);
            self.bytes.extend_from_slice(l.as_bytes());
        }
        self.patches.push(self.bytes.len() as u16);
        self.bytes.extend_from_slice(&[0xc0, 0x00]);
    }
}

/// A record as message.ts encodes it: owner `None` is the question (C0 0C), `Some(head)` is
/// `head` under the zone; `rdata` writes the data (the length is filled in).
fn record(owner: Option<&str>, rtype: u16, ttl: u32, rdata: impl FnOnce(&mut It)) -> It {
    let mut r = It { kind: 0, patches: Vec::new(), bytes: Vec::new() };
    match owner {
        None => r.bytes.extend_from_slice(&[0xc0, 0x0c]),
        Some(head) => r.zone_name(head),
    }
    r.bytes.extend_from_slice(&rtype.to_be_bytes());
    r.bytes.extend_from_slice(&[0, 1]);
    r.bytes.extend_from_slice(&ttl.to_be_bytes());
    let at = r.bytes.len();
    r.bytes.extend_from_slice(&[0, 0]);
    rdata(&mut r);
    let n = (r.bytes.len() - at - 2) as u16;
    r.bytes[at..at + 2].copy_from_slice(&n.to_be_bytes());
    r
}

/// An A record of the question, TTL 60.
fn a(ip: [u8; 4]) -> It {
    record(None, T_A, 60, |r| r.bytes.extend_from_slice(&ip))
}

/// An A record owned by `head` under the zone (an additional record, say).
fn a_under(head: &str, ip: [u8; 4]) -> It {
    record(Some(head), T_A, 60, |r| r.bytes.extend_from_slice(&ip))
}

/// A TXT record of the question with one string.
fn txt(s: &str) -> It {
    record(None, T_TXT, 60, |r| {
        r.bytes.push(s.len() as u8);
        r.bytes.extend_from_slice(s.as_bytes());
    })
}

/// The NS record of the question: ns.dns.<zone>.
fn ns() -> It {
    record(None, T_NS, 60, |r| r.zone_name("ns.dns"))
}

/// The zone's negative SOA: owner the zone, mname ns.dns.<zone>, rname hostmaster.<zone>.
fn negative_soa() -> It {
    record(Some(""), 6, 5, |r| {
        r.zone_name("ns.dns");
        r.zone_name("hostmaster");
        for v in [7u32, 30, 10, 3600, 5].iter() {
            r.bytes.extend_from_slice(&v.to_be_bytes());
        }
    })
}

/// A reference to the negative SOA (table.ts ZONE_SOA).
fn soa_ref() -> It {
    It { kind: 1, patches: Vec::new(), bytes: Vec::new() }
}

struct Var {
    groups: Vec<Vec<It>>,
    additional: Vec<It>,
}

struct Ent {
    scopes: Vec<([u8; 16], u8)>,
    rcode: u8,
    /// 1: authoritative, 2: alias, 4: other types get the zone's NODATA.
    flags: u8,
    variants: Vec<Var>,
    authority: Vec<It>,
}

/// A positive answer for everyone.
fn ent(answers: Vec<It>) -> Ent {
    Ent { scopes: Vec::new(), rcode: 0, flags: 1, variants: vec![Var { groups: vec![answers], additional: Vec::new() }], authority: Vec::new() }
}

/// NODATA with the zone's SOA (the qtype-0 entry of a name of the zone).
fn nodata() -> Ent {
    Ent { authority: vec![soa_ref()], ..ent(Vec::new()) }
}

impl Ent {
    fn alias(mut self) -> Ent {
        self.flags |= 2;
        self
    }
    /// Its name's other types: the zone's NODATA, without an entry of type 0.
    fn nodata(mut self) -> Ent {
        self.flags |= 4;
        self
    }
    fn scoped(mut self, net: ([u8; 16], u8)) -> Ent {
        self.scopes.push(net);
        self
    }
    fn additional(mut self, items: Vec<It>) -> Ent {
        self.variants[0].additional = items;
        self
    }
    fn authority(mut self, items: Vec<It>) -> Ent {
        self.authority = items;
        self
    }
    /// The prefer-local variant: this host's records, then the others', each rotated alone.
    fn local(mut self, mine: Vec<It>, theirs: Vec<It>) -> Ent {
        self.variants.push(Var { groups: vec![mine, theirs], additional: Vec::new() });
        self
    }
}

/// An IPv4 network in the table's 16-byte form (::ffff:a.b.c.d, prefix + 96).
fn v4net(a: [u8; 4], prefix: u8) -> ([u8; 16], u8) {
    (Client::v4(a).addr, prefix + 96)
}

/// A table: `Tb::new()` is a valid empty one for ZONE; the fields can be spoiled on purpose.
struct Tb {
    zone: String,
    magic: [u8; 4],
    version: u16,
    limit: u16,
    soa: It,
    nx: Ent,
    clients: Vec<(([u8; 16], u8), u8)>,
    /// Groups: id, rank, entries (`add` puts entries in one group "all", rank 0).
    groups: Vec<(String, u8, Vec<(Vec<u8>, Ent)>)>,
}

impl Tb {
    fn new() -> Tb {
        let nx = Ent { rcode: 3, authority: vec![soa_ref()], ..ent(Vec::new()) };
        Tb { zone: ZONE.to_string(), magic: *b"PSDT", version: TABLE_VERSION, limit: 0, soa: negative_soa(), nx, clients: Vec::new(), groups: Vec::new() }
    }
    fn limit(mut self, n: u16) -> Tb {
        self.limit = n;
        self
    }
    fn client(mut self, net: ([u8; 16], u8), flags: u8) -> Tb {
        self.clients.push((net, flags));
        self
    }
    /// An entry for `name` (lower-cased as table.ts does) and `qtype` (0: any other type).
    fn add(self, name: &str, qtype: u16, e: Ent) -> Tb {
        self.add_to("all", 0, name, qtype, e)
    }
    /// An entry in group `group` of rank `rank` (created on first use).
    fn add_to(mut self, group: &str, rank: u8, name: &str, qtype: u16, e: Ent) -> Tb {
        let mut k = wire(&name.to_ascii_lowercase());
        k.extend_from_slice(&qtype.to_be_bytes());
        match self.groups.iter_mut().find(|g| g.0 == group) {
            Some(g) => g.2.push((k, e)),
            None => self.groups.push((group.to_string(), rank, vec![(k, e)])),
        }
        self
    }
    /// The groups part (shared by tables and patches).
    fn put_groups(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&(self.groups.len() as u32).to_be_bytes());
        for (id, rank, entries) in &self.groups {
            w.extend_from_slice(&(id.len() as u16).to_be_bytes());
            w.extend_from_slice(id.as_bytes());
            w.push(*rank);
            w.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (k, e) in entries {
                w.extend_from_slice(&(k.len() as u16).to_be_bytes());
                w.extend_from_slice(k);
                put_entry(w, e);
            }
        }
    }
    /// These groups and negative SOA as a patch.
    fn patch_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(b"PSDP");
        w.extend_from_slice(&self.version.to_be_bytes());
        put_item(&mut w, &self.soa);
        self.put_groups(&mut w);
        w
    }
    fn bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(&self.magic);
        w.extend_from_slice(&self.version.to_be_bytes());
        w.extend_from_slice(&self.limit.to_be_bytes());
        let z = wire(&self.zone);
        w.extend_from_slice(&((z.len() - 1) as u16).to_be_bytes());
        w.extend_from_slice(&z[..z.len() - 1]);
        put_item(&mut w, &self.soa);
        put_entry(&mut w, &self.nx);
        w.extend_from_slice(&(self.clients.len() as u32).to_be_bytes());
        for ((addr, prefix), flags) in &self.clients {
            w.extend_from_slice(addr);
            w.push(*prefix);
            w.push(*flags);
        }
        self.put_groups(&mut w);
        w
    }
    fn parse(&self) -> Table {
        Table::parse(&self.bytes()).unwrap_or_else(|e| panic!("the table is refused: {}", e))
    }
}

fn put_item(w: &mut Vec<u8>, it: &It) {
    w.push(it.kind);
    w.push(it.patches.len() as u8);
    for p in &it.patches {
        w.extend_from_slice(&p.to_be_bytes());
    }
    w.extend_from_slice(&(it.bytes.len() as u16).to_be_bytes());
    w.extend_from_slice(&it.bytes);
}

fn put_items(w: &mut Vec<u8>, list: &[It]) {
    w.extend_from_slice(&(list.len() as u16).to_be_bytes());
    for it in list {
        put_item(w, it);
    }
}

fn put_entry(w: &mut Vec<u8>, e: &Ent) {
    w.push(e.scopes.len() as u8);
    for (addr, prefix) in &e.scopes {
        w.extend_from_slice(addr);
        w.push(*prefix);
    }
    w.push(e.rcode);
    w.push(e.flags);
    w.push(e.variants.len() as u8);
    for v in &e.variants {
        w.push(v.groups.len() as u8);
        for g in &v.groups {
            put_items(w, g);
        }
        put_items(w, &v.additional);
    }
    put_items(w, &e.authority);
}

/// A table with every part of the format: clients, scopes, two variants, groups, additional
/// records with zone pointers, authority, SOA references, aliases.
fn rich() -> Tb {
    Tb::new()
        .limit(4)
        .client(v4net([10, 88, 0, 0], 16), FLAG_LOCAL | FLAG_RECURSION)
        .client(v4net([192, 168, 1, 10], 32), FLAG_HOST)
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1]), a([10, 0, 0, 2])]).alias().local(vec![a([10, 88, 0, 1])], vec![a([10, 0, 0, 2])]))
        .add("web.default.cluster.local", 0, nodata().alias())
        .add("_http._tcp.web.default.cluster.local", T_TXT, ent(vec![txt("x")]).additional(vec![a_under("h1.web.default", [10, 0, 0, 1])]).authority(vec![ns()]))
        .add("web", T_A, ent(vec![a([10, 88, 0, 7])]).scoped(v4net([10, 88, 0, 0], 16)))
        .add("web", 0, ent(Vec::new()).scoped(v4net([10, 88, 0, 0], 16)))
}

// ---- queries and replies ----

const RD_FLAG: u16 = 0x0100;

/// A query for `name` as spelled (case kept), class IN, RD set, no EDNS.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&RD_FLAG.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// The same with an OPT record: UDP size, DO bit, options (code, data).
fn query_edns(id: u16, name: &str, qtype: u16, size: u16, dnssec_ok: bool, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut q = query(id, name, qtype);
    q[11] = 1;
    let mut data = Vec::new();
    for (code, d) in options {
        data.extend_from_slice(&code.to_be_bytes());
        data.extend_from_slice(&(d.len() as u16).to_be_bytes());
        data.extend_from_slice(d);
    }
    q.extend_from_slice(&[0, 0, 41]);
    q.extend_from_slice(&size.to_be_bytes());
    q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    q.extend_from_slice(&(data.len() as u16).to_be_bytes());
    q.extend_from_slice(&data);
    q
}

fn client(a: [u8; 4]) -> Client {
    Client::v4(a)
}

/// What `answer` did: "reply", "js", "drop" or "error", and the bytes written.
fn run(t: Option<&Table>, q: &[u8], c: Client) -> (&'static str, Vec<u8>) {
    let mut out = vec![0u8; OUT_MAX];
    match answer(t, q, &c, &mut out) {
        Outcome::Reply(n) => ("reply", out[..n].to_vec()),
        Outcome::ToJs | Outcome::Forward => ("js", Vec::new()),
        Outcome::Drop => ("drop", Vec::new()),
        Outcome::Error(n) => ("error", out[..n].to_vec()),
    }
}

/// The reply to `q`; panics when there is none.
fn ask(t: &Table, q: &[u8], c: Client) -> Vec<u8> {
    let (what, r) = run(Some(t), q, c);
    assert_eq!(what, "reply", "outcome of the query");
    r
}

fn flags(r: &[u8]) -> u16 {
    be16(r, 2)
}

fn counts(r: &[u8]) -> [u16; 4] {
    [be16(r, 4), be16(r, 6), be16(r, 8), be16(r, 10)]
}

/// End of the name at `i` (labels, then the root or a pointer).
fn skip_name(r: &[u8], mut i: usize) -> usize {
    loop {
        let l = r[i] as usize;
        if l == 0 {
            return i + 1;
        }
        if l >= 0xc0 {
            return i + 2;
        }
        i += l + 1;
    }
}

/// Every record after the question: (type, rdata), in order, through all sections.
fn records(r: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut i = skip_name(r, 12) + 4;
    let mut out = Vec::new();
    while i < r.len() {
        let j = skip_name(r, i);
        let len = be16(r, j + 8) as usize;
        out.push((be16(r, j), r[j + 10..j + 10 + len].to_vec()));
        i = j + 10 + len;
    }
    assert_eq!(i, r.len(), "records end with the message");
    out
}

/// The last byte of each A record of the reply (the test addresses differ there).
fn a_hosts(r: &[u8]) -> Vec<u8> {
    records(r).iter().filter(|(t, _)| *t == T_A).map(|(_, d)| d[3]).collect()
}

/// `it` as it goes out when the zone starts at `zone_at` in the message.
fn patched(it: &It, zone_at: u16) -> Vec<u8> {
    let mut b = it.bytes.clone();
    for p in &it.patches {
        let p = *p as usize;
        b[p..p + 2].copy_from_slice(&(0xc000 | zone_at).to_be_bytes());
    }
    b
}

// ---- parser ----

#[test]
fn a_table_in_the_documented_format_parses() {
    let t = rich().parse();
    let t = t.read();
    assert_eq!(t.answer_limit, 4);
    assert_eq!(t.domain, b"\x07cluster\x05local".to_vec());
    assert_eq!(t.cidrs.len(), 2);
    assert_eq!(t.nxdomain().e.rcode, 3);
    // Two names have two entries each (A and any other type), "web" A and 0: 5 keys.
    assert_eq!(key_count(&t), 5);
    let web = t.find(&[wire("web.default.cluster.local"), vec![0, 1]].concat(), |_| true).unwrap();
    assert!(web.e.alias && web.e.aa);
    assert_eq!(web.e.variants, 2);
    assert!(web.section(3).len > 0 && web.section(4).len > 0, "the prefer-local variant has two groups");
    // An empty table is valid too.
    Tb::new().parse();
}

#[test]
fn wrong_magic_or_version_is_refused() {
    let mut tb = Tb::new();
    tb.magic = *b"PSDX";
    assert!(Table::parse(&tb.bytes()).is_err(), "wrong magic");
    for v in [0u16, 1, 2, 3, 4, 6, 0x0500].iter() {
        let mut tb = Tb::new();
        tb.version = *v;
        assert!(Table::parse(&tb.bytes()).is_err(), "version {}", v);
    }
    assert!(Table::parse(b"").is_err(), "empty");
}

#[test]
fn every_truncation_is_refused() {
    let b = rich().bytes();
    for n in 0..b.len() {
        assert!(Table::parse(&b[..n]).is_err(), "the first {} of {} bytes were accepted", n, b.len());
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut b = rich().bytes();
    b.push(0);
    assert!(Table::parse(&b).is_err());
}

#[test]
fn a_zone_pointer_outside_its_record_is_refused() {
    // A 16-byte A record: a pointer may start at 14 at most (it takes two bytes).
    for (at, ok) in [(14u16, true), (15, false), (16, false), (0xffff, false)].iter() {
        let mut r = a([10, 0, 0, 1]);
        r.patches = vec![*at];
        let tb = Tb::new().add("x.cluster.local", T_A, ent(vec![r]));
        assert_eq!(Table::parse(&tb.bytes()).is_ok(), *ok, "patch at {} of a 16-byte record", at);
    }
    // Records too short to hold a pointer at all.
    for len in [0usize, 1].iter() {
        let r = It { kind: 0, patches: vec![0], bytes: vec![0xc0; *len] };
        let tb = Tb::new().add("x.cluster.local", T_A, ent(vec![r]));
        assert!(Table::parse(&tb.bytes()).is_err(), "patch at 0 of a {}-byte record", len);
    }
    // The negative SOA is checked the same way.
    let mut tb = Tb::new();
    let n = tb.soa.bytes.len() as u16;
    tb.soa.patches.push(n - 1);
    assert!(Table::parse(&tb.bytes()).is_err(), "negative SOA");
}

#[test]
fn a_bad_item_kind_is_refused() {
    let mut r = a([10, 0, 0, 1]);
    r.kind = 2;
    assert!(Table::parse(&Tb::new().add("x.cluster.local", T_A, ent(vec![r])).bytes()).is_err());
}

#[test]
fn a_bad_variant_count_is_refused() {
    for n in [0usize, 3].iter() {
        let mut e = ent(vec![a([10, 0, 0, 1])]);
        while e.variants.len() < *n {
            e.variants.push(Var { groups: Vec::new(), additional: Vec::new() });
        }
        e.variants.truncate(*n);
        assert!(Table::parse(&Tb::new().add("x.cluster.local", T_A, e).bytes()).is_err(), "{} variants", n);
    }
    let mut tb = Tb::new();
    tb.nx.variants.truncate(0);
    assert!(Table::parse(&tb.bytes()).is_err(), "nxdomain without variants");
}

#[test]
fn an_rcode_over_15_is_refused() {
    // An entry keeps its rcode in 4 bits; the header has no more.
    for (rcode, ok) in [(15u8, true), (16, false), (255, false)].iter() {
        let e = Ent { rcode: *rcode, ..ent(Vec::new()) };
        assert_eq!(Table::parse(&Tb::new().add("x.cluster.local", T_A, e).bytes()).is_ok(), *ok, "rcode {}", rcode);
    }
    // 15 is answered as it is, beside two variants and a scope (the bits next to it).
    let e = Ent { rcode: 15, ..ent(vec![a([10, 0, 0, 1])]) }.local(vec![a([10, 0, 0, 2])], Vec::new()).scoped(v4net([1, 2, 3, 0], 24));
    let t = Tb::new().client(v4net([1, 2, 3, 0], 24), FLAG_LOCAL).add("x.cluster.local", T_A, e).parse();
    let r = ask(&t, &query(0, "x.cluster.local", T_A), client([1, 2, 3, 4]));
    assert_eq!((flags(&r) & 0xf, a_hosts(&r)), (15, vec![2]));
}

#[test]
fn a_prefix_over_128_is_refused() {
    let ok = Tb::new().client(([0; 16], 128), FLAG_HOST);
    assert!(Table::parse(&ok.bytes()).is_ok(), "/128 client");
    let bad = Tb::new().client(([0; 16], 129), FLAG_HOST);
    assert!(Table::parse(&bad.bytes()).is_err(), "/129 client");
    let scoped = Tb::new().add("web", T_A, ent(vec![a([10, 88, 0, 7])]).scoped(([0; 16], 200)));
    assert!(Table::parse(&scoped.bytes()).is_err(), "/200 scope");
}

#[test]
fn damaged_tables_never_panic() {
    // Every byte of a table replaced by a few values: parsed or refused, and a parsed one
    // answers (or declines) without panicking. Bounded: 4 values per byte.
    let b = rich().bytes();
    let qs = [
        query(1, "web.default.cluster.local", T_A),
        query(2, "web.default.svc.cluster.local", T_MX),
        query(3, "_http._tcp.web.default.cluster.local", T_TXT),
        query(4, "nope.cluster.local", T_A),
        query(5, "web", T_A),
        query(6, "web.default.cluster.local", T_ANY),
    ];
    for i in 0..b.len() {
        for v in [0u8, 1, 0xff, b[i] ^ 0x80].iter() {
            let mut d = b.clone();
            d[i] = *v;
            if let Ok(t) = Table::parse(&d) {
                for q in qs.iter() {
                    for c in [client([10, 88, 0, 5]), client([192, 168, 1, 10]), client([1, 2, 3, 4])].iter() {
                        run(Some(&t), q, *c);
                    }
                }
            }
        }
    }
}

// ---- matcher ----

#[test]
fn an_answer_is_the_exact_bytes_with_pointers_into_the_question() {
    let t = Tb::new()
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]).additional(vec![a_under("h1", [10, 0, 0, 9])]))
        .parse();
    // Mixed case: looked up case-insensitively, echoed as sent.
    let q = query(0x1234, "wEb.Default.CLUSTER.local", T_A);
    let r = ask(&t, &q, client([1, 2, 3, 4]));
    let mut want = vec![
        0x12, 0x34, // ID
        0x85, 0x00, // QR AA RD
        0, 1, 0, 1, 0, 0, 0, 1, // QD AN NS AR
    ];
    want.extend_from_slice(b"\x03wEb\x07Default\x07CLUSTER\x05local\x00\x00\x01\x00\x01");
    // The answer, owned by the question.
    want.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    // The additional record h1.<zone>: the zone's labels start at 12 + 4 + 8 = 24 (0x18).
    want.extend_from_slice(&[2, b'h', b'1', 0xc0, 0x18, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 9]);
    assert_eq!(r, want);
}

#[test]
fn an_unknown_name_under_the_zone_is_nxdomain_with_the_zone_soa() {
    let t = rich().parse();
    let q = query(7, "No.Such.Cluster.Local", T_A);
    let r = ask(&t, &q, client([1, 2, 3, 4]));
    assert_eq!(flags(&r), 0x8000 | AA | RD | 3, "NXDOMAIN, authoritative");
    assert_eq!(counts(&r), [1, 0, 1, 0]);
    // The question, then the SOA with its three zone pointers at 12 + 3 + 5 = 20.
    let qend = q.len();
    assert_eq!(&r[..2], &q[..2]);
    assert_eq!(&r[12..qend], &q[12..]);
    assert_eq!(&r[qend..], &patched(&negative_soa(), 20)[..]);
    // A name that only ends like the zone is not under it: JS answers it.
    let (what, _) = run(Some(&t), &query(8, "xcluster.local", T_A), client([1, 2, 3, 4]));
    assert_eq!(what, "js", "xcluster.local");
    let (what, _) = run(Some(&t), &query(8, "example.com", T_A), client([1, 2, 3, 4]));
    assert_eq!(what, "js", "example.com");
    // Nor is one whose bytes end like the zone inside a label: with a zone label of 48 bytes
    // (a length byte that reads as '0'), the label "a0kkk…" holds the zone's first label.
    let k48 = "k".repeat(48);
    let mut tb = Tb::new();
    tb.zone = format!("{}.local", k48);
    let t = tb.parse();
    let r = ask(&t, &query(8, &format!("x.{}.local", k48), T_A), client([1, 2, 3, 4]));
    assert_eq!(flags(&r) & 0xf, 3, "a name under the long zone: NXDOMAIN");
    let (what, _) = run(Some(&t), &query(8, &format!("a0{}.local", k48), T_A), client([1, 2, 3, 4]));
    assert_eq!(what, "js", "a0<zone's first label>.local");
}

#[test]
fn another_type_of_a_known_name_is_nodata_from_its_qtype_0_entry() {
    let t = rich().parse();
    let q = query(9, "web.default.cluster.local", T_MX);
    let r = ask(&t, &q, client([1, 2, 3, 4]));
    assert_eq!(flags(&r), 0x8000 | AA | RD, "NOERROR, authoritative");
    assert_eq!(counts(&r), [1, 0, 1, 0]);
    // The zone starts at 12 + 4 + 8 = 24.
    assert_eq!(&r[q.len()..], &patched(&negative_soa(), 24)[..]);
}

#[test]
fn the_zone_nodata_flag_answers_like_an_entry_of_type_0() {
    // The same names twice: with a stored NODATA entry of type 0, and with the flag instead.
    let stored = Tb::new()
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]).alias())
        .add("web.default.cluster.local", 0, nodata().alias())
        .add("_http._tcp.web.default.cluster.local", 0, nodata())
        .parse();
    let flagged = Tb::new()
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]).alias().nodata())
        .add("_http._tcp.web.default.cluster.local", 0, nodata())
        .parse();
    let c = client([1, 2, 3, 4]);
    let names = ["web.default.cluster.local", "WEB.default.svc.cluster.local", "_http._tcp.web.default.cluster.local", "nothing.default.cluster.local"];
    for (i, name) in names.iter().enumerate() {
        for qtype in [T_A, T_AAAA, T_MX, T_TXT, T_ANY].iter() {
            let q = query(i as u16, name, *qtype);
            assert_eq!(ask(&flagged, &q, c), ask(&stored, &q, c), "{} type {}", name, qtype);
        }
    }
    let r = ask(&flagged, &query(1, "web.default.cluster.local", T_AAAA), c);
    assert_eq!((flags(&r) & 0xf, counts(&r)), (0, [1, 0, 1, 0]), "NODATA with the SOA");
    assert_eq!(key_count(&flagged.read()), 2, "no entry of type 0 for the flagged name");
}

#[test]
fn the_zone_nodata_of_a_registry_name_comes_before_a_container_names_own() {
    // A name both have (the zone is dns.podman here): the registry's NODATA (the zone's SOA)
    // answers first, as the JS path asks the zone first.
    let scope = v4net([10, 88, 0, 0], 16);
    let podman_soa = record(Some("dns.podman"), 6, 0, |r| r.bytes.extend_from_slice(&[0; 22]));
    let t = Tb::new()
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]).nodata())
        .add_to("containers", 1, "web.default.cluster.local", T_AAAA, ent(vec![]).scoped(scope).authority(vec![podman_soa.clone()]))
        .add_to("containers", 1, "web.default.cluster.local", 0, ent(vec![]).scoped(scope).authority(vec![podman_soa]))
        .parse();
    let c = client([10, 88, 0, 5]);
    for qtype in [T_MX, T_ANY].iter() {
        let q = query(3, "web.default.cluster.local", *qtype);
        let r = ask(&t, &q, c);
        if *qtype == T_ANY {
            assert_eq!(counts(&r), [1, 1, 0, 0], "ANY: one HINFO");
        } else {
            assert_eq!(&r[q.len()..], &patched(&negative_soa(), 24)[..], "the zone's SOA, not Podman's");
        }
    }
    // A type the container entry has: rank order as before (its entry, the only one of that type).
    let r = ask(&t, &query(4, "web.default.cluster.local", T_AAAA), c);
    assert_eq!(counts(&r), [1, 0, 1, 0]);
}

#[test]
fn the_svc_form_of_a_service_name_finds_its_alias_entries() {
    let t = Tb::new()
        .add("web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]).alias().additional(vec![a_under("h1", [10, 0, 0, 9])]))
        .add("web.default.cluster.local", 0, nodata().alias())
        .add("db.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 2])]))
        .parse();
    let c = client([1, 2, 3, 4]);
    let q = query(1, "Web.Default.SVC.cluster.local", T_A);
    let r = ask(&t, &q, c);
    assert_eq!(flags(&r) & 0xf, 0);
    assert_eq!(counts(&r), [1, 1, 0, 1]);
    // The answer owned by the svc question, the additional record pointing at the zone in it
    // (12 + 4 + 8 + 4 = 28).
    let mut want = patched(&a([10, 0, 0, 1]), 28);
    want.extend_from_slice(&patched(&a_under("h1", [10, 0, 0, 9]), 28));
    assert_eq!(&r[q.len()..], &want[..]);
    // Its other types: the alias's NODATA.
    let q = query(2, "web.default.svc.cluster.local", T_MX);
    let r = ask(&t, &q, c);
    assert_eq!((flags(&r) & 0xf, counts(&r)), (0, [1, 0, 1, 0]));
    assert_eq!(&r[q.len()..], &patched(&negative_soa(), 28)[..]);
    // A name without the alias flag has no svc form.
    let r = ask(&t, &query(3, "db.default.svc.cluster.local", T_A), c);
    assert_eq!(flags(&r) & 0xf, 3, "db.default.svc: NXDOMAIN");
    // `svc` must be the label right before the zone, after a whole label.
    let r = ask(&t, &query(4, "web.default.xsvc.cluster.local", T_A), c);
    assert_eq!(flags(&r) & 0xf, 3, "xsvc: NXDOMAIN");
}

#[test]
fn each_group_rotates_by_the_query_id() {
    let mut tb = Tb::new()
        .client(v4net([10, 88, 0, 0], 16), FLAG_LOCAL)
        .add(
            "web.default.cluster.local",
            T_A,
            ent(vec![a([0, 0, 0, 1]), a([0, 0, 0, 2]), a([0, 0, 0, 3])]).local(vec![a([0, 0, 0, 11]), a([0, 0, 0, 12])], vec![a([0, 0, 0, 21]), a([0, 0, 0, 22]), a([0, 0, 0, 23])]),
        );
    // Each variant has its own additional records.
    tb.groups[0].2[0].1.variants[0].additional = vec![a_under("h1", [0, 0, 0, 31])];
    tb.groups[0].2[0].1.variants[1].additional = vec![a_under("h1", [0, 0, 0, 41]), a_under("h2", [0, 0, 0, 42])];
    let t = tb.parse();
    let name = "web.default.cluster.local";
    let remote = client([1, 2, 3, 4]);
    let local = client([10, 88, 3, 4]);
    // Everyone else: one group of three, starting at id % 3.
    // (The additional records, never rotated, come last.)
    assert_eq!(a_hosts(&ask(&t, &query(0, name, T_A), remote)), vec![1, 2, 3, 31]);
    assert_eq!(a_hosts(&ask(&t, &query(1, name, T_A), remote)), vec![2, 3, 1, 31]);
    assert_eq!(a_hosts(&ask(&t, &query(2, name, T_A), remote)), vec![3, 1, 2, 31]);
    assert_eq!(a_hosts(&ask(&t, &query(3, name, T_A), remote)), vec![1, 2, 3, 31]);
    // A local client: this host's records first, each group rotated on its own (id % 2, id % 3).
    assert_eq!(a_hosts(&ask(&t, &query(0, name, T_A), local)), vec![11, 12, 21, 22, 23, 41, 42]);
    assert_eq!(a_hosts(&ask(&t, &query(1, name, T_A), local)), vec![12, 11, 22, 23, 21, 41, 42]);
    assert_eq!(a_hosts(&ask(&t, &query(2, name, T_A), local)), vec![11, 12, 23, 21, 22, 41, 42]);
    assert_eq!(a_hosts(&ask(&t, &query(0xffff, name, T_A), local)), vec![12, 11, 21, 22, 23, 41, 42]);
    assert_eq!(counts(&ask(&t, &query(0, name, T_A), local)), [1, 5, 0, 2]);
}

/// `n` A records 0.0.i/256.i%256.
fn many_a(n: usize) -> Vec<It> {
    (0..n).map(|i| a([0, 0, (i / 256) as u8, i as u8])).collect()
}

#[test]
fn a_big_answer_keeps_the_whole_records_that_fit_and_sets_tc() {
    let t = Tb::new().add("big.default.cluster.local", T_A, ent(many_a(40)).authority(vec![ns()]).additional(many_a(3))).parse();
    let q = query(0, "big.default.cluster.local", T_A);
    // 12 + 31 bytes of question = 43; (512 - 43) / 16 = 29 whole records; no authority or
    // additional records.
    let r = ask(&t, &q, client([1, 2, 3, 4]));
    assert_eq!(q.len(), 43);
    assert_ne!(flags(&r) & TC, 0, "TC");
    assert_eq!(counts(&r), [1, 29, 0, 0]);
    assert_eq!(r.len(), 43 + 29 * 16);
    assert_eq!(a_hosts(&r), (0..29u8).collect::<Vec<u8>>(), "the first records, in order");
}

#[test]
fn the_additional_section_goes_first_without_tc() {
    let t = Tb::new().add("big.default.cluster.local", T_A, ent(many_a(20)).authority(vec![ns()]).additional(many_a(20))).parse();
    // 43 + 320 + NS + 320 > 512 but 43 + 320 + NS fits: answers and authority kept, no TC.
    let r = ask(&t, &query(0, "big.default.cluster.local", T_A), client([1, 2, 3, 4]));
    assert_eq!(flags(&r) & TC, 0, "no TC");
    assert_eq!(counts(&r), [1, 20, 1, 0]);
    assert_eq!(records(&r).iter().filter(|(t, _)| *t == T_NS).count(), 1, "the NS record");
    // With a client that takes 1232 bytes everything fits.
    let r = ask(&t, &query_edns(0, "big.default.cluster.local", T_A, 1232, false, &[]), client([1, 2, 3, 4]));
    assert_eq!(flags(&r) & TC, 0, "no TC");
    assert_eq!(counts(&r), [1, 20, 1, 21]);
}

#[test]
fn the_answer_limit_caps_a_and_aaaa_without_tc() {
    let aaaa = |i: u8| record(None, T_AAAA, 60, |r| r.bytes.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i]));
    let t = Tb::new()
        .limit(3)
        .add("web.default.cluster.local", T_A, ent(many_a(5)))
        .add("web.default.cluster.local", T_AAAA, ent((0..5).map(aaaa).collect()))
        .add("web.default.cluster.local", T_TXT, ent(vec![txt("a"), txt("b"), txt("c"), txt("d"), txt("e")]))
        .parse();
    let c = client([1, 2, 3, 4]);
    let r = ask(&t, &query(0, "web.default.cluster.local", T_A), c);
    assert_eq!((flags(&r) & TC, counts(&r)), (0, [1, 3, 0, 0]));
    // After rotation: id 4 starts at the fifth record.
    let r = ask(&t, &query(4, "web.default.cluster.local", T_A), c);
    assert_eq!(a_hosts(&r), vec![4, 0, 1]);
    let r = ask(&t, &query(0, "web.default.cluster.local", T_AAAA), c);
    assert_eq!((flags(&r) & TC, counts(&r)), (0, [1, 3, 0, 0]));
    // Other types are not capped.
    let r = ask(&t, &query(0, "web.default.cluster.local", T_TXT), c);
    assert_eq!((flags(&r) & TC, counts(&r)), (0, [1, 5, 0, 0]));
    // No limit: all of them.
    let t = Tb::new().add("web.default.cluster.local", T_A, ent(many_a(5))).parse();
    assert_eq!(counts(&ask(&t, &query(0, "web.default.cluster.local", T_A), c)), [1, 5, 0, 0]);
}

#[test]
fn any_gets_one_hinfo_nxdomain_or_goes_to_js() {
    let t = rich().parse();
    let c = client([1, 2, 3, 4]);
    let q = query(5, "Web.Default.Cluster.Local", T_ANY);
    let r = ask(&t, &q, c);
    assert_eq!(flags(&r), 0x8000 | AA | RD);
    assert_eq!(counts(&r), [1, 1, 0, 0]);
    // HINFO "RFC8482" "" owned by the question, TTL 8482.
    let hinfo = [0xc0, 0x0c, 0, 13, 0, 1, 0, 0, 0x21, 0x22, 0, 9, 7, b'R', b'F', b'C', b'8', b'4', b'8', b'2', 0];
    assert_eq!(&r[q.len()..], &hinfo[..]);
    // Through the svc alias too.
    let q = query(5, "web.default.svc.cluster.local", T_ANY);
    assert_eq!(&ask(&t, &q, c)[q.len()..], &hinfo[..]);
    // A missing name under the zone.
    let q = query(6, "nope.cluster.local", T_ANY);
    let r = ask(&t, &q, c);
    assert_eq!((flags(&r) & 0xf, counts(&r)), (3, [1, 0, 1, 0]));
    assert_eq!(&r[q.len()..], &patched(&negative_soa(), 17)[..]);
    // Outside the zone: JS.
    assert_eq!(run(Some(&t), &query(7, "example.com", T_ANY), c).0, "js");
}

#[test]
fn container_names_answer_their_networks_and_this_host_only() {
    let t = Tb::new()
        .client(v4net([192, 168, 1, 10], 32), FLAG_HOST | FLAG_RECURSION)
        .add("web", T_A, ent(vec![a([10, 88, 0, 7])]).scoped(v4net([10, 88, 0, 0], 16)))
        .add("web", T_A, ent(vec![a([10, 89, 0, 7])]).scoped(v4net([10, 89, 0, 0], 16)))
        .add("web", 0, ent(Vec::new()).scoped(v4net([10, 88, 0, 0], 16)))
        .parse();
    let q = query(1, "web", T_A);
    let r = ask(&t, &q, client([10, 88, 0, 5]));
    assert_eq!(a_hosts(&r), vec![7]);
    assert_eq!(records(&r)[0].1, vec![10, 88, 0, 7]);
    assert_eq!(flags(&r) & RA, 0, "no RA for a client without recursion");
    let r = ask(&t, &q, client([10, 89, 200, 5]));
    assert_eq!(records(&r)[0].1, vec![10, 89, 0, 7], "the other network's container");
    // This host sees every network (the first that has the name) and gets RA.
    let r = ask(&t, &q, client([192, 168, 1, 10]));
    assert_eq!(records(&r)[0].1, vec![10, 88, 0, 7]);
    assert_ne!(flags(&r) & RA, 0, "RA for a recursion client");
    // Anyone else: not a name of the zone, JS forwards it.
    assert_eq!(run(Some(&t), &q, client([10, 90, 0, 5])).0, "js");
    assert_eq!(run(Some(&t), &q, client([192, 168, 1, 11])).0, "js");
    // A prefix that ends inside a byte: 10.90.0.0/20 holds 10.90.15.x, not 10.90.16.x.
    let t2 = Tb::new().add("db", T_A, ent(vec![a([10, 90, 0, 7])]).scoped(v4net([10, 90, 0, 0], 20))).parse();
    let db = query(3, "db", T_A);
    assert_eq!(a_hosts(&ask(&t2, &db, client([10, 90, 15, 255]))), vec![7]);
    assert_eq!(run(Some(&t2), &db, client([10, 90, 16, 0])).0, "js", "10.90.16.0 is outside /20");
    // Other types only where the network has the qtype-0 entry.
    let mx = query(2, "web", T_MX);
    assert_eq!(counts(&ask(&t, &mx, client([10, 88, 0, 5]))), [1, 0, 0, 0]);
    assert_eq!(run(Some(&t), &mx, client([10, 89, 0, 5])).0, "js");
}

#[test]
fn edns_is_echoed_with_the_do_bit_and_a_1232_byte_limit() {
    let t = Tb::new().add("big.default.cluster.local", T_A, ent(many_a(100))).parse();
    let c = client([1, 2, 3, 4]);
    let name = "big.default.cluster.local";
    for dnssec_ok in [false, true].iter() {
        let r = ask(&t, &query_edns(0, name, T_A, 4096, *dnssec_ok, &[]), c);
        // 43 + 11 of OPT = 54; (1232 - 54) / 16 = 73 records.
        assert_eq!(r.len(), 54 + 73 * 16, "1232 at most");
        assert_eq!(counts(&r), [1, 73, 0, 1]);
        assert_ne!(flags(&r) & TC, 0);
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, if *dnssec_ok { 0x80 } else { 0 }, 0, 0, 0];
        assert_eq!(&r[r.len() - 11..], &opt[..], "our OPT, DO {}", dnssec_ok);
    }
    // A size below 512 counts as 512.
    let r = ask(&t, &query_edns(0, name, T_A, 100, false, &[]), c);
    assert_eq!(counts(&r), [1, (512 - 54) / 16, 0, 1]);
    // A cookie (10) or an unknown option is ignored; ones the JS decoder parses go to JS.
    let r = ask(&t, &query_edns(0, name, T_A, 1232, false, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8]), (65001, &[])]), c);
    assert_eq!(counts(&r), [1, 73, 0, 1]);
    for code in [8u16, 11, 12, 14].iter() {
        let q = query_edns(0, name, T_A, 1232, false, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8]), (*code, &[0, 0])]);
        assert_eq!(run(Some(&t), &q, c).0, "js", "option {}", code);
    }
    // A badly framed option list, or EDNS version 1: JS.
    let mut q = query_edns(0, name, T_A, 1232, false, &[(10, &[1, 2])]);
    let n = q.len();
    q[n - 3] = 9; // the option claims 9 bytes
    assert_eq!(run(Some(&t), &q, c).0, "js", "option past the end");
    let mut q = query_edns(0, name, T_A, 1232, false, &[]);
    let n = q.len();
    q[n - 5] = 1;
    assert_eq!(run(Some(&t), &q, c).0, "js", "EDNS version 1");
}

#[test]
fn malformed_queries_are_dropped_or_get_an_error_header() {
    let t = rich().parse();
    let c = client([1, 2, 3, 4]);
    let good = query(0xabcd, "web.default.cluster.local", T_A);
    for n in 0..12 {
        assert_eq!(run(Some(&t), &good[..n], c).0, "drop", "{}-byte header", n);
    }
    // A response (QR set) is never answered.
    let mut q = good.clone();
    q[2] |= 0x80;
    assert_eq!(run(Some(&t), &q, c).0, "drop", "QR set");
    // Opcode 2 (STATUS): NOTIMP, header only, ID, opcode and RD kept, counts zero.
    let mut q = good.clone();
    q[2] |= 2 << 3;
    let (what, r) = run(Some(&t), &q, c);
    assert_eq!(what, "error");
    assert_eq!(r, vec![0xab, 0xcd, 0x80 | (2 << 3) | 0x01, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Even with no table.
    assert_eq!(run(None, &q, c).0, "error", "NOTIMP without a table");
    // A compression pointer in the question: FORMERR.
    let mut q = query(0xabcd, "", T_A);
    q.truncate(12);
    q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let (what, r) = run(Some(&t), &q, c);
    assert_eq!(what, "error");
    assert_eq!(r, vec![0xab, 0xcd, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    // A name that runs past the end: FORMERR too.
    let q = &good[..good.len() - 10];
    assert_eq!(run(Some(&t), q, c).0, "error", "name past the end");
    // Two questions, class CH, a missing type, extra bytes: JS decides.
    let mut q = good.clone();
    q[5] = 2;
    assert_eq!(run(Some(&t), &q, c).0, "js", "two questions");
    let mut q = good.clone();
    let n = q.len();
    q[n - 1] = 3;
    assert_eq!(run(Some(&t), &q, c).0, "js", "class CH");
    assert_eq!(run(Some(&t), &good[..good.len() - 2], c).0, "js", "no class");
    let mut q = good.clone();
    q.push(0);
    assert_eq!(run(Some(&t), &q, c).0, "js", "a trailing byte");
    // No table yet: everything well formed goes to JS.
    assert_eq!(run(None, &good, c).0, "js", "no table");
}

// ---- patches ----

/// A patch with these groups and the zone's SOA with serial `serial`.
fn patch_of(serial: u32, groups: Tb) -> Vec<u8> {
    let mut p = groups;
    p.soa = record(Some(""), 6, 5, |r| {
        r.zone_name("ns.dns");
        r.zone_name("hostmaster");
        for v in [serial, 30, 10, 3600, 5].iter() {
            r.bytes.extend_from_slice(&v.to_be_bytes());
        }
    });
    p.patch_bytes()
}

#[test]
fn a_patch_replaces_one_group_and_leaves_the_others() {
    let t = Tb::new()
        .add_to("svc:web", 0, "web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]))
        .add_to("svc:web", 0, "h1.web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])]))
        .add_to("svc:db", 0, "db.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 9])]))
        .parse();
    let c = client([1, 2, 3, 4]);
    let web = query(0, "web.default.cluster.local", T_A);
    let h1 = query(2, "h1.web.default.cluster.local", T_A);
    let db = query(3, "db.default.cluster.local", T_A);
    // web gets a second endpoint and loses the host name h1.
    let p = Tb::new().add_to("svc:web", 0, "web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1]), a([10, 0, 0, 2])]));
    t.patch(&patch_of(8, p)).unwrap();
    assert_eq!(a_hosts(&ask(&t, &web, c)), vec![1, 2]);
    let r = ask(&t, &h1, c);
    assert_eq!((flags(&r) & 0xf, counts(&r)), (3, [1, 0, 1, 0]), "h1 is gone: NXDOMAIN");
    assert_eq!(&r[h1.len() + 34..h1.len() + 38], &8u32.to_be_bytes()[..], "with the patch's SOA serial");
    assert_eq!(a_hosts(&ask(&t, &db, c)), vec![9], "another group is untouched");
    // Rotation is by query ID, whatever was patched in between.
    let id2 = query(0, "web.default.cluster.local", T_A);
    t.patch(&patch_of(9, Tb::new().add_to("svc:db", 0, "db.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 8])])))).unwrap();
    assert_eq!(ask(&t, &id2, c), ask(&t, &web, c));
    // An empty group removes its names.
    let mut gone = Tb::new();
    gone.groups.push(("svc:db".to_string(), 0, Vec::new()));
    t.patch(&patch_of(10, gone)).unwrap();
    assert_eq!(flags(&ask(&t, &db, c)) & 0xf, 3, "db removed");
    assert_eq!(t.read().ids.len, 1);
    assert_eq!(key_count(&t.read()), 1, "only web's name is left");
}

#[test]
fn keys_kept_without_their_ending_answer_under_their_whole_name_only() {
    // The zone and the reverse trees end most names; keys are kept without that ending
    // (Suffixes). Names that differ only there, have no such ending, or are only the ending
    // each answer for themselves, through a patch too.
    let names = ["h.cluster.local", "h.in-addr.arpa", "h.ip6.arpa", "h.example", "cluster.local", "in-addr.arpa", "hcluster.local", "h.cluster.local.in-addr.arpa", "cluster.local.h"];
    let mut tb = Tb::new();
    for (k, n) in names.iter().enumerate() {
        tb = tb.add(n, T_A, ent(vec![a([10, 0, 0, k as u8 + 1])]));
    }
    let t = tb.parse();
    let c = client([1, 2, 3, 4]);
    for (k, n) in names.iter().enumerate() {
        assert_eq!(a_hosts(&ask(&t, &query(k as u16, &n.to_ascii_uppercase(), T_A), c)), vec![k as u8 + 1], "{}", n);
    }
    assert_eq!(run(Some(&t), &query(0, "x.in-addr.arpa", T_A), c).0, "js", "another name with the same ending");
    assert_eq!(flags(&ask(&t, &query(0, "x.cluster.local", T_A), c)) & 0xf, 3, "NXDOMAIN under the zone");
    t.patch(&patch_of(2, Tb::new().add("h.in-addr.arpa", T_A, ent(vec![a([10, 0, 0, 99])])))).unwrap();
    assert_eq!(key_count(&t.read()), 1, "the patch's group replaced them all");
    assert_eq!(a_hosts(&ask(&t, &query(0, "h.in-addr.arpa", T_A), c)), vec![99]);
    assert_eq!(run(Some(&t), &query(0, "h.ip6.arpa", T_A), c).0, "js");
    // Under one hash only the comparison tells keys apart: a zone as long as `in-addr.arpa`.
    let mut tb = Tb::new();
    tb.zone = "zzzzzzz.arpa".to_string();
    let t = tb.add("h.zzzzzzz.arpa", T_A, ent(vec![a([10, 0, 0, 1])])).add("h.in-addr.arpa", T_A, ent(vec![a([10, 0, 0, 2])])).parse();
    let d = t.read();
    let whole: Vec<Vec<u8>> = ["h.zzzzzzz.arpa", "h.in-addr.arpa"].iter().map(|n| [wire(n), T_A.to_be_bytes().to_vec()].concat()).collect();
    let g = d.groups.iter().flatten().next().unwrap();
    for i in 0..2u32 {
        assert_eq!(g.key_into(i, &d.sfx, &mut [0u8; MAX_KEY]), &whole[i as usize][..]);
        assert!(g.key_is(i, &d.sfx, &whole[i as usize]));
        assert!(!g.key_is(i, &d.sfx, &whole[1 - i as usize]), "entry {} is not under the other name", i);
    }
}

/// The name of service `i` in the tests with thousands of groups, and its `v`-th address.
fn svc_name(i: usize) -> String {
    format!("s{}.default.cluster.local", i)
}
fn svc_ip(i: usize, v: u8) -> It {
    a([10, (i >> 8) as u8, i as u8, v])
}

#[test]
fn thousands_of_groups_patched_in_and_out_answer_as_their_last_patch_says() {
    // The name index grows from an empty table, and moves places back when groups leave.
    let t = Tb::new().parse();
    let c = client([1, 2, 3, 4]);
    let n = 3000;
    for part in 0..3 {
        let mut p = Tb::new();
        for i in part * 1000..(part + 1) * 1000 {
            p = p.add_to(&format!("svc:{}", i), 0, &svc_name(i), T_A, ent(vec![svc_ip(i, 1)]));
        }
        t.patch(&patch_of(1 + part as u32, p)).unwrap();
    }
    // Every third group removed, the next one replaced, the third left alone.
    let mut p = Tb::new();
    for i in (0..n).step_by(3) {
        p.groups.push((format!("svc:{}", i), 0, Vec::new()));
    }
    for i in (1..n).step_by(3) {
        p = p.add_to(&format!("svc:{}", i), 0, &svc_name(i), T_A, ent(vec![svc_ip(i, 2)]));
    }
    t.patch(&patch_of(9, p)).unwrap();
    for i in 0..n {
        let r = ask(&t, &query(i as u16, &svc_name(i), T_A), c);
        match i % 3 {
            0 => assert_eq!(flags(&r) & 0xf, 3, "{} removed: NXDOMAIN", svc_name(i)),
            1 => assert_eq!(a_hosts(&r), vec![2], "{} replaced", svc_name(i)),
            _ => assert_eq!(a_hosts(&r), vec![1], "{} untouched", svc_name(i)),
        }
    }
    assert_eq!((key_count(&t.read()), t.read().ids.len), (2000, 2000));
}

#[test]
fn packed_groups_answer_as_before_and_are_packed_again_once_half_is_replaced() {
    let t = Tb::new().parse();
    let c = client([1, 2, 3, 4]);
    let n = 3000;
    let mut p = Tb::new();
    for i in 0..n {
        p = p.add_to(&format!("svc:{}", i), 0, &svc_name(i), T_A, ent(vec![svc_ip(i, 1), svc_ip(i, 2)]));
    }
    t.patch(&patch_of(1, p)).unwrap();
    let answers = |t: &Table| (0..n).map(|i| ask(t, &query(i as u16, &svc_name(i), T_A), c)).collect::<Vec<_>>();
    let before = answers(&t);
    t.pack();
    let size = t.read().slab.len();
    assert!(size > 0 && t.read().slab_live == size);
    assert_eq!(answers(&t), before, "packed groups answer the same bytes");
    // A third replaced: still packed (with the dead third kept)...
    let mut p = Tb::new();
    for i in (0..n).step_by(3) {
        p = p.add_to(&format!("svc:{}", i), 0, &svc_name(i), T_A, ent(vec![svc_ip(i, 3)]));
    }
    t.patch(&patch_of(2, p)).unwrap();
    assert_eq!(t.read().slab.len(), size);
    // ...a second third removed: less than half is live, all is packed again, the removed gone.
    let mut p = Tb::new();
    for i in (1..n).step_by(3) {
        p.groups.push((format!("svc:{}", i), 0, Vec::new()));
    }
    t.patch(&patch_of(3, p)).unwrap();
    let d = t.read();
    let live = d.groups.iter().flatten().map(|g| g.blob.len()).sum::<usize>();
    assert!(d.slab.len() == live && d.slab_live == live && live < size, "packed again: {} of {}", live, size);
    drop(d);
    for i in 0..n {
        let r = ask(&t, &query(i as u16, &svc_name(i), T_A), c);
        match i % 3 {
            0 => assert_eq!(a_hosts(&r), vec![3], "{} replaced", svc_name(i)),
            1 => assert_eq!(flags(&r) & 0xf, 3, "{} removed: NXDOMAIN", svc_name(i)),
            _ => assert_eq!(r, before[i], "{} untouched", svc_name(i)),
        }
    }
}

#[test]
fn under_a_shared_name_the_lower_rank_answers_whatever_the_patch_order() {
    let scope = v4net([10, 88, 0, 0], 16);
    let t = Tb::new().add_to("containers", 1, "web", T_A, ent(vec![a([10, 88, 0, 7])]).scoped(scope)).parse();
    let q = query(1, "web", T_A);
    let c = client([10, 88, 0, 5]);
    assert_eq!(a_hosts(&ask(&t, &q, c)), vec![7]);
    t.patch(&patch_of(8, Tb::new().add_to("ptr:x", 0, "web", T_A, ent(vec![a([10, 88, 0, 3])])))).unwrap();
    assert_eq!(a_hosts(&ask(&t, &q, c)), vec![3], "rank 0 first, though patched in later");
    t.patch(&patch_of(9, Tb::new().add_to("containers", 1, "web", T_A, ent(vec![a([10, 88, 0, 8])]).scoped(scope)))).unwrap();
    assert_eq!(a_hosts(&ask(&t, &q, c)), vec![3], "still after a new rank-1 group");
    assert_eq!(entries_under(&t.read(), &[wire("web"), vec![0, 1]].concat()), 2, "the old container entry is gone");
}

#[test]
fn a_bad_patch_is_refused_and_changes_nothing() {
    let t = Tb::new().add_to("svc:web", 0, "web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 1])])).parse();
    let good = patch_of(8, Tb::new().add_to("svc:web", 0, "web.default.cluster.local", T_A, ent(vec![a([10, 0, 0, 2])])));
    for n in 0..good.len() {
        assert!(t.patch(&good[..n]).is_err(), "the first {} of {} bytes were accepted", n, good.len());
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(t.patch(&trailing).is_err());
    assert!(t.patch(&Tb::new().bytes()).is_err(), "a whole table is not a patch");
    let mut old = Tb::new();
    old.version = 2;
    assert!(t.patch(&old.patch_bytes()).is_err(), "another version");
    assert!(Table::parse(&good).is_err(), "a patch is not a whole table");
    let q = query(1, "web.default.cluster.local", T_A);
    assert_eq!(a_hosts(&ask(&t, &q, client([1, 2, 3, 4]))), vec![1]);
    t.patch(&good).unwrap();
    assert_eq!(a_hosts(&ask(&t, &q, client([1, 2, 3, 4]))), vec![2]);
}

/// How many distinct keys the table has entries under.
fn key_count(t: &Data) -> usize {
    let mut keys = std::collections::HashSet::new();
    for s in t.names.slots.iter().filter(|s| s.group != u32::MAX) {
        keys.insert(t.group(s.group).key_into(s.entry, &t.sfx, &mut [0u8; MAX_KEY]).to_vec());
    }
    keys.len()
}

fn entries_under(t: &Data, key: &[u8]) -> usize {
    t.names.under(hash(key)).filter(|s| t.group(s.group).key_is(s.entry, &t.sfx, key)).count()
}

/// Where the bytes of a table file are (`TABLE_FILE=... cargo test --release -- --ignored
/// --nocapture where_a_table`; e.g. the answers.table a daemon leaves in $RUNTIME_DIRECTORY).
#[test]
#[ignore]
fn where_a_table_file_s_bytes_are() {
    let path = std::env::var("TABLE_FILE").expect("TABLE_FILE");
    let t = Table::parse(&std::fs::read(path).unwrap()).unwrap();
    let d = t.read();
    let parts = d.bytes_by_part();
    let total: usize = parts.iter().filter(|(k, _)| !k.ends_with(": groups")).map(|p| p.1).sum();
    for (k, n) in parts {
        println!("{:>32} {:>11}", k, n);
    }
    println!("{:>32} {:>11}", "total bytes", total);
}
