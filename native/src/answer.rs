//! The compiled answer table (built by src/native/table.ts from the registry view) and the pure
//! query → response function the UDP threads run. Anything this cannot answer exactly as the JS
//! path would is handed to JS (`Outcome::ToJs`), so both paths give the same bytes. Records come
//! encoded by the JS path's encoder (src/dns/message.ts); the assembly here follows the same
//! rules: compression pointers into the question (zone pointers patched per query), rotation by
//! the query ID, and truncation that keeps the answer records that fit (docs/dns-wire.md).

use std::hash::Hasher;
use std::sync::{RwLock, RwLockReadGuard};

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
const TABLE_VERSION: u16 = 5;
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

/// Sections of an entry, in the order of `Entry::lens`: per variant two answer groups (each
/// rotated on its own: this host's endpoints, then the others; the second is empty when there is
/// one) and the additional section, then the authority section.
const SECTIONS: usize = 7;
const AUTHORITY: usize = 6;

/// What a name answers for one type (or, type 0, for any other): its records, in its group.
#[derive(Clone, Copy)]
struct Entry {
    /// Its key (lower-case wire name with root + qtype) in the group's arena, without the
    /// suffix `suffix` names (Suffixes): the name's head, then the qtype.
    key: u32,
    key_len: u16,
    suffix: u8,
    /// Its records: the group's items `first..`, section after section (SECTIONS).
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
    /// Its `nscopes` client networks (CIDR_LEN bytes each) in the group's arena: none answers
    /// every client. Stored after its key, after a byte with their count (when there are any).
    scopes: u32,
    nscopes: u8,
}

/// An entry in its group: u32 key offset; u16 key length (9 bits), rcode (4), variants - 1 (1),
/// scoped (1); u24 first record; u16 × SECTIONS lengths; u8 flags (authoritative, alias,
/// nodata, suffix code × 2 bits). 24 bytes: at 10,000 services × 5 endpoints, 110,000 entries.
const ENTRY_LEN: usize = 24;
/// A key: a name (at most 255 bytes) and its qtype.
const MAX_KEY: usize = 257;

/// Name endings a key is stored without (its entry's `suffix`: 1 + the index here; 0: none):
/// every name of a service ends with the zone, every IPv4 reverse name with `in-addr.arpa`
/// (~15 bytes of each of 110,000 keys at 10,000 services × 5 endpoints).
#[derive(Clone)]
struct Suffixes([Vec<u8>; 3]);

impl Suffixes {
    /// For a table of zone `domain` (wire form without the root label).
    fn of_zone(domain: &[u8]) -> Suffixes {
        let mut zone = domain.to_vec();
        zone.push(0);
        Suffixes([zone, b"\x07in-addr\x04arpa\x00".to_vec(), b"\x03ip6\x04arpa\x00".to_vec()])
    }
    fn get(&self, code: u8) -> &[u8] {
        match code {
            0 => &[],
            c => &self.0[c as usize - 1],
        }
    }
    /// The code of the first suffix `name` ends with (0: none).
    fn code(&self, name: &[u8]) -> u8 {
        self.0.iter().position(|s| name.ends_with(s)).map_or(0, |k| k as u8 + 1)
    }
}
const ITEM_LEN: usize = 8;
const CIDR_LEN: usize = 17;

fn get16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn get32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// One group (a service, a reverse address, the container names...) in one allocation: its
/// entries (ENTRY_LEN bytes each), its records (ITEM_LEN bytes each), then the arena: the id,
/// each entry's key and scopes, each record's zone-pointer patches and bytes. Nothing is
/// allocated per entry, key or record: at 10,000 services × 5 endpoints (110,000 entries in
/// 60,000 groups) those allocations were most of the addon's memory.
struct Group {
    blob: Blob,
    entries: u32,
    items: u32,
    id_len: u16,
    /// Under one name, entries of a lower rank come first (registry names before container names).
    rank: u8,
    /// When it was put in (Data::next_seq): under one name and rank, the older group's entries first.
    seq: u32,
}

/// A group's bytes: an allocation of its own (as read from a patch), or a run of the slab its
/// table's groups were packed into (Data::pack).
enum Blob {
    Own(Box<[u8]>),
    /// Points into `Data::slab`, which lives as long as the group and is replaced only together
    /// with every packed group (Data::pack).
    Packed(*const u8, u32),
}

// A packed blob is read-only bytes owned by the table it is in (which the RwLock guards).
unsafe impl Send for Blob {}
unsafe impl Sync for Blob {}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Own(b) => b,
            Blob::Packed(p, len) => unsafe { std::slice::from_raw_parts(*p, *len as usize) },
        }
    }
}

impl Group {
    fn arena(&self) -> &[u8] {
        &self.blob[self.entries as usize * ENTRY_LEN + self.items as usize * ITEM_LEN..]
    }
    fn id(&self) -> &[u8] {
        &self.arena()[..self.id_len as usize]
    }
    /// Entry `i`'s key as stored: the name's head, its suffix's code, the qtype.
    fn key_parts(&self, i: u32) -> (&[u8], u8, &[u8]) {
        let b = &self.blob[i as usize * ENTRY_LEN..];
        let (at, len) = (get32(b, 0) as usize, (get16(b, 4) & 0x1ff) as usize);
        let k = &self.arena()[at..at + len];
        (&k[..len - 2], (b[23] >> 3) & 3, &k[len - 2..])
    }
    /// Whether entry `i` is under `key`.
    fn key_is(&self, i: u32, sfx: &Suffixes, key: &[u8]) -> bool {
        let (head, code, ty) = self.key_parts(i);
        let s = sfx.get(code);
        let (h, n) = (head.len(), head.len() + s.len());
        key.len() == n + 2 && &key[..h] == head && &key[h..n] == s && &key[n..] == ty
    }
    /// Entry `i`'s whole key, in `buf`.
    fn key_into<'b>(&self, i: u32, sfx: &Suffixes, buf: &'b mut [u8; MAX_KEY]) -> &'b [u8] {
        let (head, code, ty) = self.key_parts(i);
        let s = sfx.get(code);
        let (h, n) = (head.len(), head.len() + s.len());
        buf[..h].copy_from_slice(head);
        buf[h..n].copy_from_slice(s);
        buf[n..n + 2].copy_from_slice(ty);
        &buf[..n + 2]
    }
    fn key_hash(&self, i: u32, sfx: &Suffixes) -> u32 {
        hash(self.key_into(i, sfx, &mut [0u8; MAX_KEY]))
    }
    fn entry(&self, i: u32) -> Entry {
        let b = &self.blob[i as usize * ENTRY_LEN..(i as usize + 1) * ENTRY_LEN];
        let mut lens = [0u16; SECTIONS];
        for (k, l) in lens.iter_mut().enumerate() {
            *l = get16(b, 9 + 2 * k);
        }
        let (key, p, f) = (get32(b, 0), get16(b, 4), b[23]);
        let key_len = p & 0x1ff;
        let (scopes, nscopes) = if p & 1 << 14 != 0 {
            let at = key as usize + key_len as usize;
            (at as u32 + 1, self.arena()[at])
        } else {
            (0, 0)
        };
        let first = u32::from_le_bytes([b[6], b[7], b[8], 0]);
        Entry { key, key_len, first, lens, variants: (p >> 13 & 1) as u8 + 1, rcode: (p >> 9 & 0xf) as u8, aa: f & 1 != 0, alias: f & 2 != 0, nodata: f & 4 != 0, suffix: (f >> 3) & 3, scopes, nscopes }
    }
    fn item(&self, i: usize) -> Item {
        let b = &self.blob[self.entries as usize * ENTRY_LEN + i * ITEM_LEN..];
        Item { off: get32(b, 0), len: get16(b, 4), patches: b[6], zone_soa: b[7] != 0 }
    }
    fn scope(&self, e: &Entry, k: usize) -> Cidr {
        let b = &self.arena()[e.scopes as usize + k * CIDR_LEN..];
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&b[..16]);
        Cidr { addr, prefix: b[16] }
    }
}

/// A group as it is read: its three parts grow apart and are joined at the end. One builder
/// reads every group of a table or patch: its buffers are not made and dropped per group
/// (what they left between the groups' blobs was malloc's to keep).
#[derive(Default)]
struct GroupBuilder {
    entries: Vec<u8>,
    items: Vec<u8>,
    arena: Vec<u8>,
}

impl GroupBuilder {
    fn item_count(&self) -> usize {
        self.items.len() / ITEM_LEN
    }
    fn push_item(&mut self, it: Item) {
        self.items.extend_from_slice(&it.off.to_le_bytes());
        self.items.extend_from_slice(&it.len.to_le_bytes());
        self.items.extend_from_slice(&[it.patches, it.zone_soa as u8]);
    }
    fn push_entry(&mut self, e: &Entry) {
        // (The parser keeps each field in its bits: key_len ≤ MAX_KEY, rcode ≤ 15, first < 2^24;
        // the scopes right after the key and their count.)
        let w = &mut self.entries;
        w.extend_from_slice(&e.key.to_le_bytes());
        let p = e.key_len | (e.rcode as u16) << 9 | ((e.variants - 1) as u16) << 13 | ((e.nscopes > 0) as u16) << 14;
        w.extend_from_slice(&p.to_le_bytes());
        w.extend_from_slice(&e.first.to_le_bytes()[..3]);
        for l in e.lens.iter() {
            w.extend_from_slice(&l.to_le_bytes());
        }
        w.push(e.aa as u8 | (e.alias as u8) << 1 | (e.nodata as u8) << 2 | e.suffix << 3);
    }
    /// The group read so far; the builder is empty again.
    fn finish(&mut self, id_len: u16, rank: u8) -> Group {
        let entries = (self.entries.len() / ENTRY_LEN) as u32;
        let items = (self.items.len() / ITEM_LEN) as u32;
        let mut blob = Vec::with_capacity(self.entries.len() + self.items.len() + self.arena.len());
        blob.extend_from_slice(&self.entries);
        blob.extend_from_slice(&self.items);
        blob.extend_from_slice(&self.arena);
        self.entries.clear();
        self.items.clear();
        self.arena.clear();
        Group { blob: Blob::Own(blob.into_boxed_slice()), entries, items, id_len, rank, seq: 0 }
    }
}

/// An entry found under a name, with its group.
#[derive(Clone, Copy)]
struct At<'a> {
    g: &'a Group,
    e: Entry,
}

/// `len` records of a group from `start`.
#[derive(Clone, Copy)]
struct Section<'a> {
    g: &'a Group,
    start: usize,
    len: usize,
}

impl<'a> Section<'a> {
    fn get(&self, k: usize) -> Item {
        self.g.item(self.start + k)
    }
    fn iter(self) -> impl Iterator<Item = Item> + 'a {
        (0..self.len).map(move |k| self.get(k))
    }
}

impl<'a> At<'a> {
    fn section(&self, i: usize) -> Section<'a> {
        let start = self.e.first as usize + self.e.lens[..i].iter().map(|&n| n as usize).sum::<usize>();
        Section { g: self.g, start, len: self.e.lens[i] as usize }
    }
    /// The variant a client gets: the prefer-local one (1) for local clients, when there is one.
    fn variant(&self, local: bool) -> usize {
        if local && self.e.variants > 1 {
            1
        } else {
            0
        }
    }
    fn additional(&self, v: usize) -> Section<'a> {
        self.section(3 * v + 2)
    }
    fn authority(&self) -> Section<'a> {
        self.section(AUTHORITY)
    }
    /// Unscoped entries answer everyone; scoped ones (container names) their networks and this host.
    fn in_scope(&self, c: &Client, cflags: u8) -> bool {
        self.e.nscopes == 0 || cflags & FLAG_HOST != 0 || (0..self.e.nscopes as usize).any(|k| self.g.scope(&self.e, k).contains(c))
    }
}

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

fn hash(key: &[u8]) -> u32 {
    let mut h = Fnv::default();
    h.write(key);
    let h = h.finish();
    (h ^ (h >> 32)) as u32
}

/// A place in the table: entry `entry` of group `group`, under a key whose hash is `hash`.
#[derive(Clone, Copy)]
struct Slot {
    hash: u32,
    group: u32,
    entry: u32,
}

const FREE: Slot = Slot { hash: 0, group: u32::MAX, entry: 0 };

/// A hash index of places whose keys are in the groups (open addressing, linear probing,
/// deletion by shifting back): 12 bytes a slot, no allocation per key. Any number of slots (a
/// hash's home is `hash * slots >> 32`), at most 3/4 full, 2/3 full once grown: a power of two
/// left a 10,000 × 5 table's names 42 % full. Equal keys have a slot each.
#[derive(Default)]
struct Index {
    slots: Vec<Slot>,
    len: usize,
}

impl Index {
    fn with_capacity(n: usize) -> Index {
        let mut ix = Index::default();
        ix.grow(n);
        ix
    }
    fn home(&self, hash: u32) -> usize {
        ((hash as u64 * self.slots.len() as u64) >> 32) as usize
    }
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }
    /// Room for `n` places.
    fn grow(&mut self, n: usize) {
        if n * 4 <= self.slots.len() * 3 {
            return;
        }
        let size = (n * 3 / 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![FREE; size]);
        for s in old.into_iter().filter(|s| s.group != u32::MAX) {
            self.put(s);
        }
    }
    fn put(&mut self, s: Slot) {
        let mut i = self.home(s.hash);
        while self.slots[i].group != u32::MAX {
            i = self.next(i);
        }
        self.slots[i] = s;
    }
    fn insert(&mut self, s: Slot) {
        self.grow(self.len + 1);
        self.put(s);
        self.len += 1;
    }
    /// The places under `hash` (keys of other hashes aside, but not other keys of that hash).
    fn under(&self, hash: u32) -> impl Iterator<Item = Slot> + '_ {
        let start = if self.slots.is_empty() { 0 } else { self.home(hash) };
        let slots = &self.slots;
        slots[start..].iter().chain(slots[..start].iter()).copied().take_while(|s| s.group != u32::MAX).filter(move |s| s.hash == hash)
    }
    /// Removes the place `(group, entry)` under `hash`.
    fn remove(&mut self, hash: u32, group: u32, entry: u32) {
        if self.slots.is_empty() {
            return;
        }
        let n = self.slots.len();
        // How far `to` is past `from`, going round.
        let dist = |from: usize, to: usize| if to >= from { to - from } else { to + n - from };
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s.group == u32::MAX {
                return;
            }
            if s.group == group && s.entry == entry {
                break;
            }
            i = self.next(i);
        }
        // Slots after it that probed past it move back into the hole.
        let mut j = i;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s.group == u32::MAX {
                break;
            }
            if dist(self.home(s.hash), j) >= dist(i, j) {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = FREE;
        self.len -= 1;
    }
}

/// The answer table the UDP threads share. A registry change patches it in place (the groups of
/// the services it touched, under the write lock for the swap of those entries only); settings
/// and client classes come with a whole new table.
pub struct Table {
    data: RwLock<Data>,
    /// Dropped after `data`: the freed table goes back to the system.
    _trim: Trim,
}

struct Trim;
impl Drop for Trim {
    fn drop(&mut self) {
        crate::sys::trim();
    }
}

struct Data {
    /// At most this many records in an A/AAAA answer (0: no limit).
    answer_limit: u16,
    /// The zone, lower-case wire form without the root label.
    domain: Vec<u8>,
    /// What keys are stored without (the zone's among them).
    sfx: Suffixes,
    /// The SOA record of negative answers (NXDOMAIN, NODATA), in `soa_arena`.
    negative_soa: Item,
    soa_arena: Vec<u8>,
    /// A group of one entry each.
    nxdomain: Group,
    /// The zone's NODATA (no records, the negative SOA) of names whose entries carry `nodata`.
    nodata: Group,
    cidrs: Vec<(Cidr, u8)>,
    /// The groups by number (a removed group's number is used again).
    groups: Vec<Option<Group>>,
    free: Vec<u32>,
    /// Key (lower-case wire name with root + qtype, big endian; qtype 0 = any other type) → its
    /// entries.
    names: Index,
    /// Group id → its number (`entry` unused).
    ids: Index,
    next_seq: u32,
    /// The groups of the last pack, one after the other (Blob::Packed points into it), and how
    /// many of its bytes groups still use.
    slab: Box<[u8]>,
    slab_live: usize,
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
    /// u16 n + n items into the group; returns n.
    fn items(&mut self, g: &mut GroupBuilder) -> Result<u16, String> {
        let n = self.u16()?;
        for _ in 0..n {
            let it = self.item(&mut g.arena)?;
            g.push_item(it);
        }
        Ok(n)
    }
    /// A client network, as CIDR_LEN bytes (16 address, 1 prefix length).
    fn cidr_bytes(&mut self) -> Result<&'a [u8], String> {
        let b = self.bytes(CIDR_LEN)?;
        if b[16] > 128 {
            return Err("bad prefix".into());
        }
        Ok(b)
    }
    fn cidr(&mut self) -> Result<Cidr, String> {
        let b = self.cidr_bytes()?;
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&b[..16]);
        Ok(Cidr { addr, prefix: b[16] })
    }
    /// One entry, under the key at `key` (`key_len` bytes, without suffix `suffix`) of the
    /// group's arena, into the group.
    fn entry(&mut self, g: &mut GroupBuilder, key: u32, key_len: u16, suffix: u8) -> Result<(), String> {
        let nscopes = self.u8()?;
        if nscopes > 0 {
            g.arena.push(nscopes);
        }
        let scopes = g.arena.len();
        for _ in 0..nscopes {
            let c = self.cidr_bytes()?;
            g.arena.extend_from_slice(c);
        }
        let rcode = self.u8()?;
        if rcode > 15 {
            return Err("bad rcode".into());
        }
        let flags = self.u8()?;
        let variants = self.u8()?;
        if variants == 0 || variants > 2 {
            return Err("bad variant count".into());
        }
        if g.item_count() >= 1 << 24 || scopes > u32::MAX as usize {
            return Err("table too large".into());
        }
        let first = g.item_count() as u32;
        let mut lens = [0u16; SECTIONS];
        for v in 0..variants as usize {
            let ngroups = self.u8()? as usize;
            if ngroups > 2 {
                return Err("bad group count".into());
            }
            for k in 0..ngroups {
                lens[3 * v + k] = self.items(g)?;
            }
            lens[3 * v + 2] = self.items(g)?;
        }
        lens[AUTHORITY] = self.items(g)?;
        let e = Entry { key, key_len, suffix, first, lens, variants, rcode, aa: flags & 1 != 0, alias: flags & 2 != 0, nodata: flags & 4 != 0, scopes: scopes as u32, nscopes };
        g.push_entry(&e);
        Ok(())
    }
    /// u32 n + n × group: u16 len + id, u8 rank, u32 n + n × (u16 len + key, entry). Keys are
    /// kept without the first of `sfx` their name ends with.
    fn groups(&mut self, sfx: &Suffixes) -> Result<Vec<Group>, String> {
        let n = self.u32()? as usize;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        let mut g = GroupBuilder::default();
        for _ in 0..n {
            let id_len = self.u16()?;
            g.arena.extend_from_slice(self.bytes(id_len as usize)?);
            let rank = self.u8()?;
            let count = self.u32()? as usize;
            for _ in 0..count {
                let klen = self.u16()? as usize;
                if klen < 2 || klen > MAX_KEY {
                    return Err("bad key length".into());
                }
                let (name, ty) = self.bytes(klen)?.split_at(klen - 2);
                let code = sfx.code(name);
                let head = &name[..name.len() - sfx.get(code).len()];
                let key = g.arena.len();
                g.arena.extend_from_slice(head);
                g.arena.extend_from_slice(ty);
                self.entry(&mut g, key as u32, (head.len() + 2) as u16, code)?;
            }
            out.push(g.finish(id_len, rank));
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
        let mut nx = GroupBuilder::default();
        r.entry(&mut nx, 0, 0, 0)?;
        let ncidr = r.u32()? as usize;
        let mut cidrs = Vec::with_capacity(ncidr.min(65536));
        for _ in 0..ncidr {
            let c = r.cidr()?;
            cidrs.push((c, r.u8()?));
        }
        let sfx = Suffixes::of_zone(&domain);
        let groups = r.groups(&sfx)?;
        r.end()?;
        let entries = groups.iter().map(|g| g.entries as usize).sum::<usize>();
        let mut d = Data {
            answer_limit,
            domain,
            sfx,
            negative_soa,
            soa_arena,
            nxdomain: nx.finish(0, 0),
            nodata: zone_nodata(),
            cidrs,
            groups: Vec::with_capacity(groups.len()),
            free: Vec::new(),
            names: Index::with_capacity(entries),
            ids: Index::with_capacity(groups.len()),
            next_seq: 0,
            slab: Box::new([]),
            slab_live: 0,
        };
        for g in groups {
            d.replace(g);
        }
        Ok(Table { data: RwLock::new(d), _trim: Trim })
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
        let sfx = self.read().sfx.clone();
        let groups = r.groups(&sfx)?;
        r.end()?;
        let mut d = self.data.write().unwrap_or_else(|e| e.into_inner());
        d.negative_soa = negative_soa;
        d.soa_arena = soa_arena;
        for g in groups {
            d.replace(g);
        }
        // Once patches replaced half of what was packed, the rest is packed again: the dead half
        // is given back, at a copy of the table per half of it changed.
        if d.slab_live < d.slab.len() / 2 {
            d.pack();
        }
        Ok(())
    }

    /// Packs the groups into one allocation. A whole table sent in parts (staged) has its groups'
    /// blobs strewn between the parts' buffers in malloc's heap, which keeps the holes those leave
    /// (~4 MB at 10,000 services × 5 endpoints); packed, they are one block malloc maps on its own.
    pub fn pack(&self) {
        self.data.write().unwrap_or_else(|e| e.into_inner()).pack();
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Data {
    fn group(&self, n: u32) -> &Group {
        self.groups[n as usize].as_ref().expect("an index slot names a group")
    }

    /// Drops the entries of group `g`'s id and puts in `g`'s (work: the two groups' entries).
    fn replace(&mut self, mut g: Group) {
        let id_hash = hash(g.id());
        let groups = &self.groups;
        let old = self.ids.under(id_hash).find(|s| groups[s.group as usize].as_ref().map_or(false, |o| o.id() == g.id()));
        if let Some(s) = old {
            let o = self.groups[s.group as usize].take().expect("an index slot names a group");
            if let Blob::Packed(_, len) = o.blob {
                self.slab_live -= len as usize;
            }
            self.ids.remove(id_hash, s.group, 0);
            for i in 0..o.entries {
                self.names.remove(o.key_hash(i, &self.sfx), s.group, i);
            }
            self.free.push(s.group);
        }
        if g.entries == 0 {
            return;
        }
        g.seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let n = match self.free.pop() {
            Some(n) => n,
            None => {
                self.groups.push(None);
                (self.groups.len() - 1) as u32
            }
        };
        for i in 0..g.entries {
            let hash = g.key_hash(i, &self.sfx);
            self.names.insert(Slot { hash, group: n, entry: i });
        }
        self.ids.insert(Slot { hash: id_hash, group: n, entry: 0 });
        self.groups[n as usize] = Some(g);
    }

    fn pack(&mut self) {
        let total = self.groups.iter().flatten().map(|g| g.blob.len()).sum::<usize>();
        let mut slab = vec![0u8; total].into_boxed_slice();
        let mut at = 0;
        for g in self.groups.iter_mut().flatten() {
            let n = g.blob.len();
            slab[at..at + n].copy_from_slice(&g.blob);
            g.blob = Blob::Packed(slab[at..].as_ptr(), n as u32);
            at += n;
        }
        // (Moving the box moves no bytes: the pointers stay good.)
        self.slab = slab;
        self.slab_live = total;
    }

    /// The first entry under `key` that `ok` takes: of the lowest rank, then of the older group,
    /// then first in its group.
    fn find<'a>(&'a self, key: &[u8], ok: impl Fn(&At<'a>) -> bool) -> Option<At<'a>> {
        let mut best: Option<(At<'a>, (u8, u32, u32))> = None;
        for s in self.names.under(hash(key)) {
            let g = self.group(s.group);
            if !g.key_is(s.entry, &self.sfx, key) {
                continue;
            }
            let at = At { g, e: g.entry(s.entry) };
            let order = (g.rank, g.seq, s.entry);
            if best.as_ref().map_or(true, |b| order < b.1) && ok(&at) {
                best = Some((at, order));
            }
        }
        best.map(|b| b.0)
    }

    /// The first entry under `key` for client `c`.
    fn pick<'a>(&'a self, key: &[u8], c: &Client, cflags: u8) -> Option<At<'a>> {
        self.find(key, |e| e.in_scope(c, cflags))
    }

    fn nxdomain(&self) -> At<'_> {
        At { g: &self.nxdomain, e: self.nxdomain.entry(0) }
    }

    fn nodata(&self) -> At<'_> {
        At { g: &self.nodata, e: self.nodata.entry(0) }
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

/// Where a table's bytes are, by part (tests: `where_a_table_file_s_bytes_are`). Each boxed
/// group is counted as glibc rounds it (8 bytes of header, 16-byte steps, 32 at least).
#[cfg(test)]
impl Data {
    fn bytes_by_part(&self) -> Vec<(String, usize)> {
        use std::collections::BTreeMap;
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        let mut add = |k: String, n: usize| *m.entry(k).or_insert(0) += n;
        add("group structs (slab)".into(), self.groups.capacity() * std::mem::size_of::<Option<Group>>());
        add("names index".into(), self.names.slots.capacity() * std::mem::size_of::<Slot>());
        add("ids index".into(), self.ids.slots.capacity() * std::mem::size_of::<Slot>());
        for g in self.groups.iter().flatten() {
            let kind = match g.id().first() {
                Some(b'p') => "ptr",
                Some(b's') => "service",
                _ => "other",
            };
            let (ne, ni) = (g.entries as usize, g.items as usize);
            add(format!("{}: groups", kind), 1);
            add(format!("{}: entries", kind), ne * ENTRY_LEN);
            add(format!("{}: items", kind), ni * ITEM_LEN);
            add(format!("{}: ids", kind), g.id_len as usize);
            let keys: usize = (0..g.entries).map(|i| g.key_parts(i).0.len() + 2).sum();
            let scopes: usize = (0..g.entries).map(|i| g.entry(i).nscopes as usize).map(|n| n * CIDR_LEN + (n > 0) as usize).sum();
            add(format!("{}: keys", kind), keys);
            add(format!("{}: scopes", kind), scopes);
            add(format!("{}: records", kind), g.arena().len() - g.id_len as usize - keys - scopes);
            let n = g.blob.len();
            add(format!("{}: malloc overhead", kind), ((n + 8 + 15) & !15).max(32) - n);
        }
        m.into_iter().collect()
    }
}

/// No records, the negative SOA in the authority section, authoritative: what an entry of type 0
/// of a name of the zone holds (src/native/table.ts zoneNodata).
fn zone_nodata() -> Group {
    let mut g = GroupBuilder::default();
    g.push_item(Item { off: 0, len: 0, patches: 0, zone_soa: true });
    let mut lens = [0u16; SECTIONS];
    lens[AUTHORITY] = 1;
    g.push_entry(&Entry { key: 0, key_len: 0, suffix: 0, first: 0, lens, variants: 1, rcode: 0, aa: true, alias: false, nodata: false, scopes: 0, nscopes: 0 });
    g.finish(0, 0)
}

/// Types a name of the zone has entries of (src/native/table.ts ZONE_TYPES), most common first.
const ZONE_TYPES: [u16; 6] = [1, 28, 33, 16, 6, 2];

/// Whether `name` (lower-case wire with root, `key[..name_len]`; the two bytes after it are
/// overwritten) has an entry for `client` that answers other types with the zone's NODATA.
fn has_nodata(t: &Data, key: &mut [u8; 258], name_len: usize, client: &Client, cflags: u8, alias: bool) -> bool {
    ZONE_TYPES.iter().any(|ty| {
        key[name_len] = (*ty >> 8) as u8;
        key[name_len + 1] = *ty as u8;
        t.find(&key[..name_len + 2], |e| e.e.nodata && (!alias || e.e.alias) && e.in_scope(client, cflags)).is_some()
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
        None => match t.pick(&key[..name_len + 2], client, cflags) {
            Some(e) if !any || e.g.rank == 0 => e,
            found => {
                key[name_len] = 0;
                key[name_len + 1] = 0;
                // Type 0 (any other type): its own entry, or the zone's NODATA of a name whose
                // entries say so; those are the registry's, which come before container names.
                let other = if any { found } else { t.pick(&key[..name_len + 2], client, cflags) };
                match other {
                    Some(e) if e.g.rank == 0 => e,
                    _ if has_nodata(t, &mut key, name_len, client, cflags, false) => t.nodata(),
                    Some(e) => e,
                    None if in_zone(&key[..name_len], &t.domain) => t.nxdomain(),
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
    let mut rflags = QR | (flags & KEEP) | entry.e.rcode as u16;
    if entry.e.aa {
        rflags |= AA;
    }
    if cflags & FLAG_RECURSION != 0 {
        rflags |= RA;
    }
    let opt_len = if opt.is_some() { 11 } else { 0 };
    // ID and question as the client sent them; flags and counts are written below.
    let mut o = name_end + 4;
    out[..o].copy_from_slice(&q[..o]);

    if any && entry.e.rcode == 0 {
        o = header(out, rflags, [1, 1, 0, opt.is_some() as usize], o);
        out[o..o + HINFO_ANY.len()].copy_from_slice(&HINFO_ANY);
        o += HINFO_ANY.len();
        return Outcome::Reply(put_opt(out, o, opt));
    }

    let variant = entry.variant(cflags & FLAG_LOCAL != 0);
    // An item and the arena its bytes are in.
    let resolve = |it: Item| -> (Item, &'a [u8]) { if it.zone_soa { (t.negative_soa, &t.soa_arena[..]) } else { (it, entry.g.arena()) } };
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
    let put = |it: Item, out: &mut [u8], o: &mut usize| {
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
        for it in entry.authority().iter() {
            put(it, out, &mut o);
        }
        ns_count = entry.authority().len;
    }
    let mut ad_count = 0;
    if with_additional {
        for it in entry.additional(variant).iter() {
            put(it, out, &mut o);
        }
        ad_count = entry.additional(variant).len;
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
fn rotated(e: At<'_>, v: usize, turn: usize) -> impl Iterator<Item = Item> + '_ {
    IntoIterator::into_iter([e.section(3 * v), e.section(3 * v + 1)]).flat_map(move |g| {
        let k = if g.len == 0 { 0 } else { turn % g.len };
        (0..g.len).map(move |j| g.get((k + j) % g.len))
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
fn svc_alias<'a>(t: &'a Data, key: &[u8; 258], name_len: usize, qtype: u16, c: &Client, cflags: u8) -> Option<At<'a>> {
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
        if let Some(e) = t.find(&k2[..n2 + 2], |e| e.e.alias && e.in_scope(c, cflags)) {
            return Some(e);
        }
    }
    if has_nodata(t, &mut k2, n2, c, cflags, true) {
        return Some(t.nodata());
    }
    None
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
