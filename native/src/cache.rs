//! Forwarded answers for the UDP threads. JS installs every upstream answer its own cache keeps
//! (src/native/cache.ts); a thread answers a query for a name outside the zone from here when the
//! client may recurse (the answer table's client flags, checked by `answer::answer` before it
//! returns `Outcome::Forward`). A hit follows the JS cache's rules (src/dns/cache.ts) so both paths
//! send the same bytes: the stored reply with the query's ID and question spelling, every TTL
//! lowered by the whole seconds the entry has been held. An expired entry, or one too big for the
//! client's UDP limit, is a miss: JS answers it (it may serve stale, or truncate).
//!
//! Bounded: at most `capacity` entries (`--cache-size`), in shards that each evict by CLOCK
//! (second chance: an entry read since the hand last passed survives one more round), so a flood
//! of one-off names cannot push out the names containers ask all the time.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::answer::Fnv;
use crate::sys::{clock_gettime, timespec, CLOCK_MONOTONIC};
use crate::udp::type_index;

const SHARDS: usize = 16;
/// Smaller caches live in one shard, so the bound is exact and every entry can use all of it.
const SHARDED_FROM: usize = 1024;
/// Largest reply kept: the largest UDP answer sent (answer.rs MAX_UDP).
pub const MAX_PACKET: usize = 1232;
const MAX_TTL: u32 = 86_400;
/// Lower-case wire name (at most 255) + qtype + flags.
pub const KEY_MAX: usize = 255 + 3;
/// Key flags: the query had an OPT record, with the DO bit; checking disabled.
pub const KEY_EDNS: u8 = 1;
pub const KEY_DO: u8 = 2;
pub const KEY_CD: u8 = 4;

struct Slot {
    key: Box<[u8]>,
    packet: Box<[u8]>,
    /// Offset of each record's TTL field (OPT excluded) and its value when stored (at most a day).
    ttls: Box<[(u16, u32)]>,
    stored_ns: u64,
    expires_ns: u64,
    used: bool,
}

#[derive(Default)]
struct Shard {
    index: HashMap<Box<[u8]>, usize>,
    slots: Vec<Slot>,
    hand: usize,
    cap: usize,
}

impl Shard {
    fn remove(&mut self, i: usize) {
        let gone = self.slots.swap_remove(i);
        self.index.remove(&gone.key);
        if i < self.slots.len() {
            let moved = self.slots[i].key.clone();
            self.index.insert(moved, i);
        }
    }

    /// A slot index for a new entry: a free one, else the CLOCK victim (true: one was evicted).
    fn make_room(&mut self) -> Option<(usize, bool)> {
        if self.cap == 0 {
            return None;
        }
        while self.slots.len() > self.cap {
            let last = self.slots.len() - 1;
            self.remove(last);
        }
        if self.slots.len() < self.cap {
            return Some((self.slots.len(), false));
        }
        // Bounded: the first round clears every `used` bit, the second finds a victim.
        for _ in 0..2 * self.slots.len() {
            let h = self.hand % self.slots.len();
            self.hand = h + 1;
            if self.slots[h].used {
                self.slots[h].used = false;
            } else {
                return Some((h, true));
            }
        }
        Some((0, true))
    }
}

/// Per-thread counts, added to the shared ones once per batch (`flush`).
pub struct Counts {
    /// [type * 6 + rcode], as udp::STATS counts native answers.
    pub answers: [u64; 48],
    pub misses: u64,
}

impl Counts {
    pub fn new() -> Counts {
        Counts { answers: [0; 48], misses: 0 }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
/// Answers [type * 6 + rcode], then misses, evictions.
pub const STAT_MISSES: usize = 48;
pub const STAT_EVICTIONS: usize = 49;
pub const NSTATS: usize = 50;
pub static STATS: [AtomicU64; NSTATS] = [ZERO; NSTATS];

pub fn flush(c: &mut Counts) {
    for (k, v) in c.answers.iter_mut().enumerate() {
        if *v != 0 {
            STATS[k].fetch_add(*v, Ordering::Relaxed);
            *v = 0;
        }
    }
    if c.misses != 0 {
        STATS[STAT_MISSES].fetch_add(c.misses, Ordering::Relaxed);
        c.misses = 0;
    }
}

pub struct Cache {
    shards: Vec<Mutex<Shard>>,
    /// Shards in use: 1 or SHARDS (see SHARDED_FROM).
    active: AtomicUsize,
    capacity: AtomicUsize,
}

fn be16(b: &[u8], i: usize) -> u16 {
    ((b[i] as u16) << 8) | b[i + 1] as u16
}

/// The cache key of a query (lower-case name, qtype, key flags) into `key`; returns the key's
/// length, the end of the question and the client's UDP size limit. None for a query that is not
/// one plain question (answer::answer has checked that already; this only stays in bounds).
pub fn query_key(q: &[u8], key: &mut [u8; KEY_MAX]) -> Option<(usize, usize, usize)> {
    if q.len() < 12 || be16(q, 4) != 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 || i + 1 + len >= q.len() || i - 12 + 1 + len >= 255 {
            return None;
        }
        key[i - 12] = len as u8;
        for j in i + 1..=i + len {
            key[j - 12] = q[j].to_ascii_lowercase();
        }
        i += len + 1;
    }
    key[i - 12] = 0;
    let name = i - 12 + 1;
    let qend = i + 5;
    if q.len() < qend {
        return None;
    }
    key[name] = q[i + 1];
    key[name + 1] = q[i + 2];
    let mut flags = if q[3] & 0x10 != 0 { KEY_CD } else { 0 };
    let mut limit = 512;
    if be16(q, 10) == 1 && q.len() >= qend + 11 && q[qend] == 0 && be16(q, qend + 1) == 41 {
        flags |= KEY_EDNS;
        if q[qend + 7] & 0x80 != 0 {
            flags |= KEY_DO;
        }
        limit = (be16(q, qend + 3) as usize).clamp(512, MAX_PACKET);
    }
    key[name + 2] = flags;
    Some((name + 3, qend, limit))
}

fn shard_of(key: &[u8], active: usize) -> usize {
    let mut h = Fnv::default();
    h.write(key);
    (h.finish() as usize) % active
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        let c = Cache { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(), active: AtomicUsize::new(1), capacity: AtomicUsize::new(0) };
        c.resize(capacity);
        c
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At most `capacity` entries from now on (0: nothing is cached).
    pub fn resize(&self, capacity: usize) {
        let mut all: Vec<MutexGuard<'_, Shard>> = (0..SHARDS).map(|i| self.lock(i)).collect();
        let active = if capacity >= SHARDED_FROM { SHARDS } else { 1 };
        if active != self.active.load(Ordering::Relaxed) {
            // Keys now belong to other shards: start empty rather than move them.
            for s in all.iter_mut() {
                **s = Shard::default();
            }
        }
        for (i, s) in all.iter_mut().enumerate() {
            s.cap = if i >= active { 0 } else { capacity / active + (i < capacity % active) as usize };
        }
        self.capacity.store(capacity, Ordering::Relaxed);
        self.active.store(active, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        for i in 0..SHARDS {
            let mut s = self.lock(i);
            let cap = s.cap;
            *s = Shard { cap, ..Shard::default() };
        }
    }

    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).slots.len()).sum()
    }

    /// Stores `packet` (an upstream reply) under `key` (as query_key builds it) for `ttl`
    /// seconds, with its records' TTL fields at `ttls` (offset, value). False when refused:
    /// malformed, too big, no TTL, or a cache of size 0.
    pub fn put(&self, key: &[u8], packet: &[u8], ttl: u32, ttls: &[(u16, u32)], now_ns: u64) -> bool {
        if key.len() < 4 || key.len() > KEY_MAX || packet.len() < 12 || packet.len() > MAX_PACKET || ttl == 0 || ttl > MAX_TTL {
            return false;
        }
        if ttls.iter().any(|&(at, v)| (at as usize) < 12 || at as usize + 4 > packet.len() || v > MAX_TTL) {
            return false;
        }
        let slot = Slot {
            key: key.into(),
            packet: packet.into(),
            ttls: ttls.into(),
            stored_ns: now_ns,
            expires_ns: now_ns + ttl as u64 * 1_000_000_000,
            used: false,
        };
        let mut s = self.lock(shard_of(key, self.active.load(Ordering::Relaxed)));
        if let Some(&i) = s.index.get(key) {
            s.slots[i] = slot;
            return true;
        }
        let (i, evicted) = match s.make_room() {
            Some(r) => r,
            None => return false,
        };
        if evicted {
            let old = std::mem::replace(&mut s.slots[i], slot);
            s.index.remove(&old.key);
            STATS[STAT_EVICTIONS].fetch_add(1, Ordering::Relaxed);
        } else {
            s.slots.push(slot);
        }
        s.index.insert(key.into(), i);
        true
    }

    /// The cached reply to `q` in `out` (at least MAX_PACKET bytes); None: JS must answer.
    pub fn answer(&self, q: &[u8], out: &mut [u8], now_ns: u64, counts: &mut Counts) -> Option<usize> {
        let n = self.lookup(q, out, now_ns);
        match n {
            Some(_) => {
                let qtype = be16(q, len_of_name(q) + 1);
                counts.answers[type_index(qtype) * 6 + ((out[3] & 0xf) as usize).min(5)] += 1;
            }
            None => counts.misses += 1,
        }
        n
    }

    fn lookup(&self, q: &[u8], out: &mut [u8], now_ns: u64) -> Option<usize> {
        if self.capacity.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut key = [0u8; KEY_MAX];
        let (klen, qend, limit) = query_key(q, &mut key)?;
        let mut s = self.lock(shard_of(&key[..klen], self.active.load(Ordering::Relaxed)));
        let i = *s.index.get(&key[..klen])?;
        if s.slots[i].expires_ns <= now_ns {
            s.remove(i);
            return None;
        }
        let e = &mut s.slots[i];
        let len = e.packet.len();
        if len > limit || len < qend || out.len() < len {
            return None;
        }
        e.used = true;
        out[..len].copy_from_slice(&e.packet);
        out[..2].copy_from_slice(&q[..2]);
        out[12..qend].copy_from_slice(&q[12..qend]);
        let aged = (now_ns.saturating_sub(e.stored_ns) / 1_000_000_000) as u32;
        for &(at, v) in e.ttls.iter() {
            let at = at as usize;
            out[at..at + 4].copy_from_slice(&v.saturating_sub(aged).to_be_bytes());
        }
        Some(len)
    }
}

/// Offset of the question's terminating root label (the question is known to be well formed).
fn len_of_name(q: &[u8]) -> usize {
    let mut i = 12;
    while q[i] != 0 {
        i += q[i] as usize + 1;
    }
    i
}

static CACHE: Mutex<Option<&'static Cache>> = Mutex::new(None);

/// The cache the UDP threads read (empty, size 0, until JS sizes it). Created once, never freed.
pub fn shared() -> &'static Cache {
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *c.get_or_insert_with(|| Box::leak(Box::new(Cache::new(0))))
}

/// CLOCK_MONOTONIC in nanoseconds (the clock Node's performance.now() counts on too).
pub fn now_ns() -> u64 {
    let mut ts = timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
