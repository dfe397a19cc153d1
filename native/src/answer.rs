//! The compiled answer table (built by src/native/table.ts from the registry view) and the pure
//! query → response function the UDP threads run. Anything this cannot answer exactly as the JS
//! path would is handed to JS (`Outcome::ToJs`), so both paths give the same bytes. Records come
//! encoded by the JS path's encoder (src/dns/message.ts); the assembly here follows the same
//! rules: compression pointers into the question (zone pointers patched per query), rotation by
//! the query ID, and truncation that keeps the answer records that fit (docs/dns-wire.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock, RwLockReadGuard};

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const CD: u16 = 0x0010;
const KEEP: u16 = 0x7800 | RD | CD;
const MAX_UDP: usize = 1232;
pub const OUT_MAX: usize = 1280;

const FLAG_RECURSION: u8 = 1;
const FLAG_LOCAL: u8 = 2;
/// One of this host's own addresses: container-name entries of every network answer it.
const FLAG_HOST: u8 = 4;
/// EDNS options the JS path parses (src/dns/wire.ts EDNS_PARSED_OPTIONS): queries with them go to JS.
const JS_OPTIONS: [u16; 4] = [8, 11, 12, 14];
/// The table format this parser reads (src/native/table.ts TABLE_VERSION).
const TABLE_VERSION: u16 = 4;
/// The RFC 8482 answer to ANY, after the question: HINFO "RFC8482" "" owned by the question (C0 0C).
const HINFO_ANY: [u8; 21] = [0xc0, 0x0c, 0, 13, 0, 1, 0, 0, 0x21, 0x22, 0, 9, 7, b'R', b'F', b'C', b'8', b'4', b'8', b'2', 0];

/// A client address as 16 bytes (IPv4 as ::ffff:a.b.c.d).
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: [u8; 16],
}

impl Client {
    pub fn v4(a: [u8; 4]) -> Client {
        let mut addr = [0u8; 16];
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..].copy_from_slice(&a);
        Client { addr }
    }
}

/// A prefix over the 16-byte form (IPv4 prefixes are stored +96 on ::ffff:0:0/96).
struct Cidr {
    addr: [u8; 16],
    prefix: u8,
}

impl Cidr {
    fn contains(&self, c: &Client) -> bool {
        let full = (self.prefix / 8) as usize;
        if c.addr[..full] != self.addr[..full] {
            return false;
        }
        let rest = self.prefix % 8;
        if rest == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rest);
        (c.addr[full] & mask) == (self.addr[full] & mask)
    }
}

/// One resource record, or (`zone_soa`) a reference to the table's negative SOA (its serial
/// changes with every registry change, the entries that carry it need not). In its group's arena
/// at `off`: `patches` big-endian u16 offsets of zone pointers inside the record, then the
/// record's `len` bytes.
#[derive(Clone, Copy)]
struct Item {
    off: u32,
    len: u16,
    patches: u8,
    zone_soa: bool,
}

/// What the entries of one group (a service, an address, the container names...) share: the
/// bytes of their records and the records themselves. One allocation of each per group, none per
/// entry or record: at 10,000 services × 5 endpoints the per-entry vectors were most of the
/// addon's memory.
struct GroupData {
    arena: Box<[u8]>,
    items: Box<[Item]>,
}

/// Sections of an entry, in the order of `Entry::lens`: per variant two answer groups (each
/// rotated on its own: this host's endpoints, then the others; the second is empty when there is
/// one) and the additional section, then the authority section.
const SECTIONS: usize = 7;
const AUTHORITY: usize = 6;

struct Entry {
    /// Its records: `data.items[first..]`, section after section (SECTIONS).
    data: Arc<GroupData>,
    first: u32,
    lens: [u16; SECTIONS],
    /// 1, or 2 when clients on this host or its bridges get their own (prefer-local).
    variants: u8,
    rcode: u8,
    aa: bool,
    /// A service name that also answers with `svc.` before the zone (`<svc>.<ns>.svc.<zone>`
    /// reads as `<svc>.<ns>.<zone>` first, names.ts): stored once, found under both names.
    alias: bool,
    /// Its name answers any type it has no entry for with the zone's NODATA (`Data::nodata`),
    /// instead of an entry of type 0 per name.
    nodata: bool,
    /// The group the entry came with (Data::groups), and its rank: under one name, entries of a
    /// lower rank come first (registry names before container names).
    rank: u8,
    slot: u32,
    scopes: Box<[Cidr]>,
}

impl Entry {
    fn section(&self, i: usize) -> &[Item] {
        let start = self.first as usize + self.lens[..i].iter().map(|&n| n as usize).sum::<usize>();
        &self.data.items[start..start + self.lens[i] as usize]
    }
    /// The variant a client gets: the prefer-local one (1) for local clients, when there is one.
    fn variant(&self, local: bool) -> usize {
        if local && self.variants > 1 {
            1
        } else {
            0
        }
    }
    fn additional(&self, v: usize) -> &[Item] {
        self.section(3 * v + 2)
    }
    fn authority(&self) -> &[Item] {
        self.section(AUTHORITY)
    }
}

/// An entry as read, before its group's records are shared (Reader::groups).
struct Parsed {
    first: u32,
    lens: [u16; SECTIONS],
    variants: u8,
    rcode: u8,
    aa: bool,
    alias: bool,
    nodata: bool,
    scopes: Box<[Cidr]>,
}

impl Parsed {
    fn into_entry(self, data: &Arc<GroupData>, rank: u8) -> Entry {
        Entry { data: data.clone(), first: self.first, lens: self.lens, variants: self.variants, rcode: self.rcode, aa: self.aa, alias: self.alias, nodata: self.nodata, rank, slot: 0, scopes: self.scopes }
    }
}

/// The names one group (a service, a reverse address, the container names...) put in the map.
struct Group {
    slot: u32,
    /// Its keys, each u16 length + key.
    keys: Vec<u8>,
}

type FnvMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<Fnv>>;

#[derive(Default)]
pub struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf29ce484222325 } else { self.0 };
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

/// The answer table the UDP threads share. A registry change patches it in place (the groups of
/// the services it touched, under the write lock for the swap of those entries only); settings
/// and client classes come with a whole new table.
pub struct Table {
    data: RwLock<Data>,
}

struct Data {
    /// At most this many records in an A/AAAA answer (0: no limit).
    answer_limit: u16,
    /// The zone, lower-case wire form without the root label.
    domain: Vec<u8>,
    /// The SOA record of negative answers (NXDOMAIN, NODATA), in `soa_arena`.
    negative_soa: Item,
    soa_arena: Vec<u8>,
    nxdomain: Entry,
    /// The zone's NODATA (no records, the negative SOA) of names whose entries carry `nodata`.
    nodata: Entry,
    cidrs: Vec<(Cidr, u8)>,
    /// Key: lower-case wire name (with root) + qtype (big endian); qtype 0 = any other type.
    map: FnvMap<Vec<Entry>>,
    /// Group id → the group's keys in `map`.
    groups: FnvMap<Group>,
    next_slot: u32,
}

/// A group as read from a table or patch: id, rank and its entries with their keys.
struct NewGroup {
    id: Box<[u8]>,
    rank: u8,
    entries: Vec<(Box<[u8]>, Entry)>,
}

pub enum Outcome {
    Reply(usize),
    ToJs,
    /// A name outside the zone, asked by a client that may recurse: the forwarding cache
    /// (cache.rs) may answer; else JS forwards it.
    Forward,
    Drop,
    /// A header-only error reply (FORMERR / NOTIMP), length 12.
    Error(usize),
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.i).ok_or("table ends early")?;
        self.i += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(((self.u8()? as u16) << 8) | self.u8()? as u16)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(((self.u16()? as u32) << 16) | self.u16()? as u32)
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.i + n > self.b.len() {
            return Err("table ends early".into());
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }
    /// One item (u8 kind, u8 patch count, the patches, u16 length, the record) into the arena.
    fn item(&mut self, arena: &mut Vec<u8>) -> Result<Item, String> {
        let kind = self.u8()?;
        let patches = self.u8()?;
        let raw = self.bytes(2 * patches as usize)?;
        let len = self.u16()? as usize;
        let bytes = self.bytes(len)?;
        for p in raw.chunks(2) {
            // The pointer's two bytes lie inside the record.
            if ((p[0] as usize) << 8 | p[1] as usize) + 2 > len {
                return Err("zone pointer outside its record".into());
            }
        }
        if kind > 1 || arena.len() + raw.len() + len > u32::MAX as usize {
            return Err("bad item or table too large".into());
        }
        let off = arena.len() as u32;
        arena.extend_from_slice(raw);
        arena.extend_from_slice(bytes);
        Ok(Item { off, len: len as u16, patches, zone_soa: kind == 1 })
    }
    /// u16 n + n items, appended to `items`; returns n.
    fn items(&mut self, arena: &mut Vec<u8>, items: &mut Vec<Item>) -> Result<u16, String> {
        let n = self.u16()?;
        for _ in 0..n {
            let it = self.item(arena)?;
            items.push(it);
        }
        Ok(n)
    }
    fn cidr(&mut self) -> Result<Cidr, String> {
        let mut addr = [0u8; 16];
        addr.copy_from_slice(self.bytes(16)?);
        let prefix = self.u8()?;
        if prefix > 128 {
            return Err("bad prefix".into());
        }
        Ok(Cidr { addr, prefix })
    }
    /// One entry; its records go to `items` (and their bytes to `arena`), shared by its group.
    fn entry(&mut self, arena: &mut Vec<u8>, items: &mut Vec<Item>) -> Result<Parsed, String> {
        let nscopes = self.u8()? as usize;
        let mut scopes = Vec::with_capacity(nscopes);
        for _ in 0..nscopes {
            scopes.push(self.cidr()?);
        }
        let rcode = self.u8()?;
        let flags = self.u8()?;
        let aa = flags & 1 != 0;
        let alias = flags & 2 != 0;
        let nodata = flags & 4 != 0;
        let variants = self.u8()?;
        if variants == 0 || variants > 2 {
            return Err("bad variant count".into());
        }
        if items.len() > u32::MAX as usize {
            return Err("table too large".into());
        }
        let first = items.len() as u32;
        let mut lens = [0u16; SECTIONS];
        for v in 0..variants as usize {
            let ngroups = self.u8()? as usize;
            if ngroups > 2 {
                return Err("bad group count".into());
            }
            for g in 0..ngroups {
                lens[3 * v + g] = self.items(arena, items)?;
            }
            lens[3 * v + 2] = self.items(arena, items)?;
        }
        lens[AUTHORITY] = self.items(arena, items)?;
        Ok(Parsed { first, lens, variants, rcode, aa, alias, nodata, scopes: scopes.into_boxed_slice() })
    }
    /// u32 n + n × group: u16 len + id, u8 rank, u32 n + n × (u16 len + key, entry).
    fn groups(&mut self) -> Result<Vec<NewGroup>, String> {
        let n = self.u32()? as usize;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let idlen = self.u16()? as usize;
            let id: Box<[u8]> = self.bytes(idlen)?.into();
            let rank = self.u8()?;
            let count = self.u32()? as usize;
            let mut arena = Vec::new();
            let mut items = Vec::new();
            let mut parsed = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                let klen = self.u16()? as usize;
                let key: Box<[u8]> = self.bytes(klen)?.into();
                parsed.push((key, self.entry(&mut arena, &mut items)?));
            }
            let data = Arc::new(GroupData { arena: arena.into_boxed_slice(), items: items.into_boxed_slice() });
            let entries = parsed.into_iter().map(|(k, p)| (k, p.into_entry(&data, rank))).collect();
            out.push(NewGroup { id, rank, entries });
        }
        Ok(out)
    }
    fn end(&self) -> Result<(), String> {
        if self.i != self.b.len() {
            return Err("trailing bytes after the table".into());
        }
        Ok(())
    }
}

impl Table {
    /// A whole table. Format (big endian): "PSDT" u16 version; u16 answer limit; u16 len + zone
    /// wire name (no root); negative SOA item; nxdomain entry; u32 n + n × (cidr, u8 flags);
    /// groups (Reader::groups).
    pub fn parse(b: &[u8]) -> Result<Table, String> {
        let mut r = Reader { b, i: 0 };
        if r.bytes(4)? != b"PSDT" || r.u16()? != TABLE_VERSION {
            return Err(format!("not an answer table of version {}", TABLE_VERSION));
        }
        let answer_limit = r.u16()?;
        let dlen = r.u16()? as usize;
        let domain = r.bytes(dlen)?.to_vec();
        let mut soa_arena = Vec::new();
        let negative_soa = r.item(&mut soa_arena)?;
        let mut nx_arena = Vec::new();
        let mut nx_items = Vec::new();
        let nx = r.entry(&mut nx_arena, &mut nx_items)?;
        let nxdomain = nx.into_entry(&Arc::new(GroupData { arena: nx_arena.into_boxed_slice(), items: nx_items.into_boxed_slice() }), 0);
        let ncidr = r.u32()? as usize;
        let mut cidrs = Vec::with_capacity(ncidr.min(65536));
        for _ in 0..ncidr {
            let c = r.cidr()?;
            cidrs.push((c, r.u8()?));
        }
        let groups = r.groups()?;
        r.end()?;
        let mut d = Data { answer_limit, domain, negative_soa, soa_arena, nxdomain, nodata: zone_nodata(), cidrs, map: HashMap::default(), groups: HashMap::default(), next_slot: 0 };
        d.map.reserve(groups.iter().map(|g| g.entries.len()).sum::<usize>().min(1 << 20));
        for g in groups {
            d.replace(g);
        }
        d.map.shrink_to_fit();
        Ok(Table { data: RwLock::new(d) })
    }

    /// Applies a patch: "PSDP" u16 version; the new negative SOA item; groups. Each group
    /// replaces the group of the same id (a group without entries removes it); other groups
    /// are left alone. A refused patch changes nothing.
    pub fn patch(&self, b: &[u8]) -> Result<(), String> {
        let mut r = Reader { b, i: 0 };
        if r.bytes(4)? != b"PSDP" || r.u16()? != TABLE_VERSION {
            return Err(format!("not an answer table patch of version {}", TABLE_VERSION));
        }
        let mut soa_arena = Vec::new();
        let negative_soa = r.item(&mut soa_arena)?;
        let groups = r.groups()?;
        r.end()?;
        let mut d = self.data.write().unwrap_or_else(|e| e.into_inner());
        d.negative_soa = negative_soa;
        d.soa_arena = soa_arena;
        for g in groups {
            d.replace(g);
        }
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Data {
    /// Drops the entries of group `g.id` and puts in `g`'s (work: the two groups' entries).
    fn replace(&mut self, g: NewGroup) {
        if let Some(old) = self.groups.remove(&g.id) {
            let mut i = 0;
            while i + 2 <= old.keys.len() {
                let n = be16(&old.keys, i) as usize;
                let key = &old.keys[i + 2..i + 2 + n];
                i += 2 + n;
                if let Some(list) = self.map.get_mut(key) {
                    list.retain(|e| e.slot != old.slot);
                    if list.is_empty() {
                        self.map.remove(key);
                    }
                }
            }
        }
        if g.entries.is_empty() {
            return;
        }
        let slot = self.next_slot;
        self.next_slot = self.next_slot.wrapping_add(1);
        let mut keys = Vec::new();
        let rank = g.rank;
        for (key, mut e) in g.entries {
            e.slot = slot;
            keys.extend_from_slice(&(key.len() as u16).to_be_bytes());
            keys.extend_from_slice(&key);
            let list = self.map.entry(key).or_insert_with(Vec::new);
            let at = list.iter().position(|x| x.rank > rank).unwrap_or(list.len());
            list.reserve_exact(1);
            list.insert(at, e);
        }
        keys.shrink_to_fit();
        self.groups.insert(g.id, Group { slot, keys });
    }

    fn client_flags(&self, c: &Client) -> u8 {
        let mut f = 0;
        for (cidr, flags) in &self.cidrs {
            if cidr.contains(c) {
                f |= *flags;
            }
        }
        f
    }
}

/// No records, the negative SOA in the authority section, authoritative: what an entry of type 0
/// of a name of the zone holds (src/native/table.ts zoneNodata).
fn zone_nodata() -> Entry {
    let soa = Item { off: 0, len: 0, patches: 0, zone_soa: true };
    let data = Arc::new(GroupData { arena: Box::new([]), items: Box::new([soa]) });
    let mut lens = [0u16; SECTIONS];
    lens[AUTHORITY] = 1;
    Entry { data, first: 0, lens, variants: 1, rcode: 0, aa: true, alias: false, nodata: false, rank: 0, slot: 0, scopes: Box::new([]) }
}

/// Types a name of the zone has entries of (src/native/table.ts ZONE_TYPES), most common first.
const ZONE_TYPES: [u16; 6] = [1, 28, 33, 16, 6, 2];

/// Whether `name` (lower-case wire with root, `key[..name_len]`; the two bytes after it are
/// overwritten) has an entry for `client` that answers other types with the zone's NODATA.
fn has_nodata(t: &Data, key: &mut [u8; 258], name_len: usize, client: &Client, cflags: u8, alias: bool) -> bool {
    ZONE_TYPES.iter().any(|ty| {
        key[name_len] = (*ty >> 8) as u8;
        key[name_len + 1] = *ty as u8;
        t.map.get(&key[..name_len + 2]).map_or(false, |list| list.iter().any(|e| e.nodata && (!alias || e.alias) && in_scope(e, client, cflags)))
    })
}

fn be16(b: &[u8], i: usize) -> u16 {
    ((b[i] as u16) << 8) | b[i + 1] as u16
}

fn header_only(q: &[u8], rcode: u16, out: &mut [u8]) -> usize {
    out[..12].copy_from_slice(&[0; 12]);
    out[0] = q[0];
    out[1] = q[1];
    let flags = QR | (be16(q, 2) & KEEP) | rcode;
    out[2] = (flags >> 8) as u8;
    out[3] = flags as u8;
    12
}

/// What the JS path accepts as a plain question name (wire.ts checkQuestionName): FORMERR
/// otherwise. Returns the end offset of the name, or Err(true) for FORMERR.
fn scan_name(q: &[u8], key: &mut [u8; 258], plain: &mut bool) -> Result<usize, ()> {
    let mut i = 12;
    loop {
        if i >= q.len() {
            return Err(());
        }
        let len = q[i] as usize;
        if len == 0 {
            if i - 12 + 1 > 255 {
                return Err(());
            }
            key[i - 12] = 0;
            return Ok(i + 1);
        }
        if len > 63 {
            return Err(());
        }
        if i + len >= q.len() {
            return Err(());
        }
        if i - 12 + 1 + len > 256 {
            return Err(());
        }
        key[i - 12] = len as u8;
        for j in i + 1..=i + len {
            let c = q[j];
            if c < 0x20 || c > 0x7e || c == 0x2e {
                return Err(());
            }
            // Only letters, digits, '-' and '_' are answered here: other printable bytes are
            // escaped by the JS decoder, so those queries take the JS path to stay identical.
            if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                *plain = false;
            }
            key[j - 12] = c.to_ascii_lowercase();
        }
        i += len + 1;
    }
}

/// Answers `q` from `t` for `client` into `out` (at least OUT_MAX bytes).
pub fn answer(t: Option<&Table>, q: &[u8], client: &Client, out: &mut [u8]) -> Outcome {
    match t {
        Some(t) => answer_from(Some(&t.read()), q, client, out),
        None => answer_from(None, q, client, out),
    }
}

fn answer_from<'a>(t: Option<&'a Data>, q: &[u8], client: &Client, out: &mut [u8]) -> Outcome {
    if q.len() < 12 {
        return Outcome::Drop;
    }
    let flags = be16(q, 2);
    if flags & QR != 0 {
        return Outcome::Drop;
    }
    if (flags >> 11) & 0xf != 0 {
        return Outcome::Error(header_only(q, 4, out));
    }
    let qd = be16(q, 4);
    let t = match t {
        Some(t) => t,
        None => return Outcome::ToJs,
    };
    if qd != 1 {
        return Outcome::ToJs;
    }
    let mut key = [0u8; 258];
    let mut plain = true;
    let name_end = match scan_name(q, &mut key, &mut plain) {
        Ok(e) => e,
        Err(()) => return Outcome::Error(header_only(q, 1, out)),
    };
    let name_len = name_end - 12;
    if !plain || q.len() < name_end + 4 || be16(q, 6) != 0 || be16(q, 8) != 0 {
        return Outcome::ToJs;
    }
    let qtype = be16(q, name_end);
    let qclass = be16(q, name_end + 2);
    if qclass != 1 {
        return Outcome::ToJs;
    }
    let ar = be16(q, 10);
    let mut p = name_end + 4;
    // EDNS0: at most one OPT record (root owner), version 0, nothing after it.
    let mut opt: Option<(usize, u16)> = None;
    if ar == 1 {
        if q.len() < p + 11 || q[p] != 0 || be16(q, p + 1) != 41 || q[p + 6] != 0 {
            return Outcome::ToJs;
        }
        let size = be16(q, p + 3) as usize;
        let do_bit = be16(q, p + 7) & 0x8000;
        let rdlen = be16(q, p + 9) as usize;
        p += 11;
        if !plain_options(q, p, rdlen) {
            return Outcome::ToJs;
        }
        p += rdlen;
        opt = Some((size, do_bit));
    } else if ar != 0 {
        return Outcome::ToJs;
    }
    if p != q.len() {
        return Outcome::ToJs;
    }

    // ANY (RFC 8482): a name that exists gets one HINFO record; its "any other type" entry says
    // whether it exists.
    let any = qtype == 255;
    let lookup = if any { 0 } else { qtype };
    key[name_len] = (lookup >> 8) as u8;
    key[name_len + 1] = lookup as u8;
    let cflags = t.client_flags(client);
    let entry = match svc_alias(t, &key, name_len, lookup, client, cflags) {
        Some(e) => e,
        None => match pick(t.map.get(&key[..name_len + 2]), client, cflags) {
            Some(e) if !any || e.rank == 0 => e,
            found => {
                key[name_len] = 0;
                key[name_len + 1] = 0;
                // Type 0 (any other type): its own entry, or the zone's NODATA of a name whose
                // entries say so; those are the registry's, which come before container names.
                let other = if any { found } else { pick(t.map.get(&key[..name_len + 2]), client, cflags) };
                match other {
                    Some(e) if e.rank == 0 => e,
                    _ if has_nodata(t, &mut key, name_len, client, cflags, false) => &t.nodata,
                    Some(e) => e,
                    None if in_zone(&key[..name_len], &t.domain) => &t.nxdomain,
                    None if cflags & FLAG_RECURSION != 0 => return Outcome::Forward,
                    None => return Outcome::ToJs,
                }
            }
        },
    };

    let limit = match opt {
        None => 512,
        Some((size, _)) => size.max(512).min(MAX_UDP),
    };
    let mut rflags = QR | (flags & KEEP) | entry.rcode as u16;
    if entry.aa {
        rflags |= AA;
    }
    if cflags & FLAG_RECURSION != 0 {
        rflags |= RA;
    }
    let opt_len = if opt.is_some() { 11 } else { 0 };
    // ID and question as the client sent them; flags and counts are written below.
    let mut o = name_end + 4;
    out[..o].copy_from_slice(&q[..o]);

    if any && entry.rcode == 0 {
        o = header(out, rflags, [1, 1, 0, opt.is_some() as usize], o);
        out[o..o + HINFO_ANY.len()].copy_from_slice(&HINFO_ANY);
        o += HINFO_ANY.len();
        return Outcome::Reply(put_opt(out, o, opt));
    }

    let variant = entry.variant(cflags & FLAG_LOCAL != 0);
    // An item and the arena its bytes are in.
    let resolve = |it: &'a Item| -> (&'a Item, &'a [u8]) { if it.zone_soa { (&t.negative_soa, &t.soa_arena[..]) } else { (it, &entry.data.arena[..]) } };
    // The zone's labels end the question name (when it is under the zone; else no item has patches).
    let zone_ptr = 0xc000u16 | (12 + name_len).saturating_sub(1 + t.domain.len()) as u16;
    let turn = be16(q, 0) as usize;
    let cap = if t.answer_limit > 0 && (qtype == 1 || qtype == 28) { t.answer_limit as usize } else { usize::MAX };
    let answers = || rotated(entry, variant, turn).take(cap);

    let base = name_end + 4 + opt_len;
    let an: usize = answers().map(|it| resolve(it).0.len as usize).sum();
    let ns: usize = entry.authority().iter().map(|it| resolve(it).0.len as usize).sum();
    let ad: usize = entry.additional(variant).iter().map(|it| resolve(it).0.len as usize).sum();
    // Everything; else without the additional section; else TC and the answer records that fit.
    let (room, with_authority, with_additional) = if base + an + ns + ad <= limit {
        (usize::MAX, true, true)
    } else if base + an + ns <= limit {
        (usize::MAX, true, false)
    } else {
        rflags |= TC;
        (limit - base, false, false)
    };

    let counts_at = o;
    o = header(out, rflags, [1, 0, 0, 0], o);
    let put = |it: &'a Item, out: &mut [u8], o: &mut usize| {
        let (it, arena) = resolve(it);
        let at = it.off as usize;
        let np = it.patches as usize;
        let len = it.len as usize;
        out[*o..*o + len].copy_from_slice(&arena[at + 2 * np..at + 2 * np + len]);
        for k in 0..np {
            let pos = *o + be16(arena, at + 2 * k) as usize;
            out[pos] = (zone_ptr >> 8) as u8;
            out[pos + 1] = zone_ptr as u8;
        }
        *o += len;
    };
    let mut used = 0usize;
    let mut an_count = 0usize;
    for it in answers() {
        let len = resolve(it).0.len as usize;
        if used + len > room {
            break;
        }
        used += len;
        put(it, out, &mut o);
        an_count += 1;
    }
    let mut ns_count = 0;
    if with_authority {
        for it in entry.authority() {
            put(it, out, &mut o);
        }
        ns_count = entry.authority().len();
    }
    let mut ad_count = 0;
    if with_additional {
        for it in entry.additional(variant) {
            put(it, out, &mut o);
        }
        ad_count = entry.additional(variant).len();
    }
    header(out, rflags, [1, an_count, ns_count, ad_count + opt.is_some() as usize], counts_at);
    Outcome::Reply(put_opt(out, o, opt))
}

/// Writes flags and section counts into the header; returns `end` (the header is already sized).
fn header(out: &mut [u8], flags: u16, counts: [usize; 4], end: usize) -> usize {
    out[2] = (flags >> 8) as u8;
    out[3] = flags as u8;
    for (k, c) in counts.iter().enumerate() {
        out[4 + 2 * k] = (*c >> 8) as u8;
        out[5 + 2 * k] = *c as u8;
    }
    end
}

/// Our OPT record (1232 bytes, version 0, the DO bit echoed) at `o`, when the query had one.
fn put_opt(out: &mut [u8], o: usize, opt: Option<(usize, u16)>) -> usize {
    match opt {
        None => o,
        Some((_, do_bit)) => {
            let rec = [0u8, 0, 41, (MAX_UDP >> 8) as u8, MAX_UDP as u8, 0, 0, (do_bit >> 8) as u8, do_bit as u8, 0, 0];
            out[o..o + 11].copy_from_slice(&rec);
            o + 11
        }
    }
}

/// The answer records of variant `v`, each group rotated to start at record `turn % length`.
fn rotated(e: &Entry, v: usize, turn: usize) -> impl Iterator<Item = &Item> {
    IntoIterator::into_iter([e.section(3 * v), e.section(3 * v + 1)]).flat_map(move |g| {
        let k = if g.is_empty() { 0 } else { turn % g.len() };
        g[k..].iter().chain(g[..k].iter())
    })
}

/// EDNS options the JS decoder reads as opaque bytes, well framed: the reply ignores them.
/// Options it parses (client subnet, keepalive, padding, key tag) take the JS path.
fn plain_options(q: &[u8], start: usize, len: usize) -> bool {
    if start + len > q.len() {
        return false;
    }
    let mut i = start;
    while i < start + len {
        if i + 4 > start + len {
            return false;
        }
        let code = be16(q, i);
        let olen = be16(q, i + 2) as usize;
        if JS_OPTIONS.contains(&code) {
            return false;
        }
        i += 4 + olen;
    }
    i == start + len
}

/// For `X.svc.<zone>`: the entry of `X.<zone>` when X is a service name (alias entries).
fn svc_alias<'a>(t: &'a Data, key: &[u8; 258], name_len: usize, qtype: u16, c: &Client, cflags: u8) -> Option<&'a Entry> {
    let d = t.domain.len();
    // name = X [3]svc <domain> [0]; X non-empty.
    if name_len < 1 + 4 + d + 1 {
        return None;
    }
    let p = name_len - 1 - d - 4;
    if &key[p..p + 4] != b"\x03svc" || &key[p + 4..name_len - 1] != &t.domain[..] {
        return None;
    }
    let mut i = 0;
    while i < p {
        i += key[i] as usize + 1;
    }
    if i != p {
        return None;
    }
    let mut k2 = [0u8; 258];
    k2[..p].copy_from_slice(&key[..p]);
    let rest = name_len - (p + 4);
    k2[p..p + rest].copy_from_slice(&key[p + 4..name_len]);
    let n2 = p + rest;
    for ty in [qtype, 0].iter() {
        k2[n2] = (*ty >> 8) as u8;
        k2[n2 + 1] = *ty as u8;
        if let Some(list) = t.map.get(&k2[..n2 + 2]) {
            if let Some(e) = list.iter().find(|e| e.alias && in_scope(e, c, cflags)) {
                return Some(e);
            }
        }
    }
    if has_nodata(t, &mut k2, n2, c, cflags, true) {
        return Some(&t.nodata);
    }
    None
}

fn pick<'a>(list: Option<&'a Vec<Entry>>, c: &Client, cflags: u8) -> Option<&'a Entry> {
    list?.iter().find(|e| in_scope(e, c, cflags))
}

/// Unscoped entries answer everyone; scoped ones (container names) their networks and this host.
fn in_scope(e: &Entry, c: &Client, cflags: u8) -> bool {
    e.scopes.is_empty() || cflags & FLAG_HOST != 0 || e.scopes.iter().any(|s| s.contains(c))
}

/// `name` (lower-case wire, with root) is the zone or below it.
fn in_zone(name: &[u8], domain: &[u8]) -> bool {
    let n = name.len() - 1; // without the root label
    if n < domain.len() || &name[n - domain.len()..n] != domain {
        return false;
    }
    // The suffix must start at a label boundary.
    let start = n - domain.len();
    let mut i = 0;
    while i < start {
        i += name[i] as usize + 1;
    }
    i == start
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
