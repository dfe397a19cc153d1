//! The query log of the native path: the UDP threads put one fixed-size entry per logged query
//! into a bounded lock-free ring (many producers, one consumer: Vyukov's bounded queue); JS drains
//! it on a timer and gets the entries as JSON lines (src/dns/querylog.ts writes them). A full
//! ring never blocks a UDP thread: the entry is dropped and counted. The ring is allocated the
//! first time the log is turned on and kept (RING_SLOTS × ~300 bytes).

use crate::answer::Client;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const RING_SLOTS: usize = 8192;
const NAME_MAX: usize = 255;

/// What is logged: 0 off, 1 errors (rcode ≠ NOERROR), 2 one query in SAMPLE (1: all).
static MODE: AtomicU32 = AtomicU32::new(0);
static SAMPLE: AtomicU32 = AtomicU32::new(1);
pub const MODE_OFF: u32 = 0;
pub const MODE_ERRORS: u32 = 1;
pub const MODE_SAMPLE: u32 = 2;

pub fn set_mode(mode: u32, sample: u32) {
    if mode != MODE_OFF {
        ring();
    }
    SAMPLE.store(sample.max(1), Ordering::Relaxed);
    MODE.store(mode.min(MODE_SAMPLE), Ordering::Release);
}

#[derive(Clone, Copy)]
pub struct Entry {
    pub unix_us: u64,
    pub us: u32,
    pub addr: [u8; 16],
    pub port: u16,
    pub qtype: u16,
    pub ancount: u16,
    pub rcode: u8,
    pub name_len: u8,
    /// 1: answered from the forwarded-name cache ("cache"), 0: from the answer table ("native").
    pub cached: u8,
    /// The question name in wire form (labels), without the root byte.
    pub name: [u8; NAME_MAX],
}

impl Entry {
    const EMPTY: Entry = Entry { unix_us: 0, us: 0, addr: [0; 16], port: 0, qtype: 0, ancount: 0, rcode: 0, name_len: 0, cached: 0, name: [0; NAME_MAX] };

    /// From the query as received and the reply built for it (rcode and answer count).
    pub fn new(query: &[u8], reply: &[u8], client: &Client, port: u16) -> Entry {
        let mut e = Entry::EMPTY;
        e.addr = client.addr;
        e.port = port;
        if reply.len() >= 8 {
            e.rcode = reply[3] & 0xf;
            e.ancount = u16::from_be_bytes([reply[6], reply[7]]);
        }
        // The question: plain labels only (a pointer or a name running past the end stops it).
        let mut i = 12;
        let mut n = 0usize;
        if query.len() > 12 && u16::from_be_bytes([query[4], query[5]]) > 0 {
            while i < query.len() {
                let len = query[i] as usize;
                if len == 0 {
                    if i + 2 < query.len() {
                        e.qtype = u16::from_be_bytes([query[i + 1], query[i + 2]]);
                    }
                    break;
                }
                if len > 63 || i + 1 + len > query.len() || n + 1 + len > NAME_MAX {
                    break;
                }
                e.name[n..n + 1 + len].copy_from_slice(&query[i..i + 1 + len]);
                n += 1 + len;
                i += 1 + len;
            }
        }
        e.name_len = n as u8;
        e
    }
}

struct Slot {
    seq: AtomicUsize,
    entry: UnsafeCell<Entry>,
}

pub struct Ring {
    slots: Box<[Slot]>,
    mask: usize,
    head: AtomicUsize,
    tail: AtomicUsize,
    pub dropped: AtomicU64,
    pub pushed: AtomicU64,
}

// Each slot's entry is written by the one producer that claimed it and read by the one consumer
// that claimed it; `seq` (release/acquire) orders the two.
unsafe impl Sync for Ring {}

impl Ring {
    pub fn new(slots: usize) -> Ring {
        let n = slots.next_power_of_two().max(2);
        let slots: Vec<Slot> = (0..n).map(|i| Slot { seq: AtomicUsize::new(i), entry: UnsafeCell::new(Entry::EMPTY) }).collect();
        Ring { slots: slots.into_boxed_slice(), mask: n - 1, head: AtomicUsize::new(0), tail: AtomicUsize::new(0), dropped: AtomicU64::new(0), pushed: AtomicU64::new(0) }
    }

    /// Puts `es` in, in order, until the ring is full; the rest are dropped. The counters are
    /// shared by the threads: touched once per call, not per entry.
    pub fn push_all(&self, es: &[Entry]) -> usize {
        let n = es.iter().take_while(|e| self.try_push(e)).count();
        if n > 0 {
            self.pushed.fetch_add(n as u64, Ordering::Relaxed);
        }
        if n < es.len() {
            self.dropped.fetch_add((es.len() - n) as u64, Ordering::Relaxed);
        }
        n
    }

    /// Never waits: false when the ring is full.
    fn try_push(&self, e: &Entry) -> bool {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as isize;
            if diff == 0 {
                match self.tail.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        unsafe { *slot.entry.get() = *e };
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return true;
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return false;
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// No free slot (a hint: it may change right after).
    pub fn is_full(&self) -> bool {
        self.tail.load(Ordering::Relaxed).wrapping_sub(self.head.load(Ordering::Relaxed)) > self.mask
    }

    pub fn pop(&self) -> Option<Entry> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as isize;
            if diff == 0 {
                match self.head.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        let e = unsafe { *slot.entry.get() };
                        slot.seq.store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                        return Some(e);
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return None; // empty, or the next entry is still being written
            } else {
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }
}

// Made the first time the log is on, never freed. (No OnceLock: the crate builds with Debian 12's
// rustc 1.63.)
static RING: AtomicPtr<Ring> = AtomicPtr::new(std::ptr::null_mut());

pub fn ring() -> &'static Ring {
    if let Some(r) = existing() {
        return r;
    }
    let fresh = Box::into_raw(Box::new(Ring::new(RING_SLOTS)));
    match RING.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` is leaked for the life of the process.
        Ok(_) => unsafe { &*fresh },
        Err(won) => {
            // Another thread made it first: ours was never shared.
            drop(unsafe { Box::from_raw(fresh) });
            unsafe { &*won }
        }
    }
}

fn existing() -> Option<&'static Ring> {
    let p = RING.load(Ordering::Acquire);
    // SAFETY: a non-null pointer is a leaked Ring that lives as long as the process.
    if p.is_null() { None } else { Some(unsafe { &*p }) }
}

/// [entries put in the ring, entries dropped because it was full] (zeros before the first use).
pub fn counts() -> [u64; 2] {
    existing().map_or([0, 0], |r| [r.pushed.load(Ordering::Relaxed), r.dropped.load(Ordering::Relaxed)])
}

/// A UDP thread's side: picks the queries of a batch to log (its own sample counter, no shared
/// write), and pushes them once the batch is sent, with the batch's time.
pub struct Picker {
    mode: u32,
    sample: u32,
    count: u32,
    picked: Vec<Entry>,
    /// The ring was full when the batch began: its picks are only counted as dropped, not built.
    full: bool,
    skipped: u64,
}

impl Picker {
    pub fn new() -> Picker {
        Picker { mode: MODE_OFF, sample: 1, count: 0, picked: Vec::new(), full: false, skipped: 0 }
    }

    /// At the start of a batch: one relaxed load when the log is off.
    #[inline]
    pub fn begin(&mut self) {
        self.mode = MODE.load(Ordering::Acquire);
        if self.mode == MODE_SAMPLE {
            self.sample = SAMPLE.load(Ordering::Relaxed);
        }
        if self.mode != MODE_OFF {
            self.full = ring().is_full();
        }
    }

    #[inline]
    pub fn offer(&mut self, query: &[u8], reply: &[u8], client: &Client, port: u16, cached: bool) {
        let take = match self.mode {
            MODE_OFF => return,
            MODE_ERRORS => reply.len() >= 4 && reply[3] & 0xf != 0,
            _ => {
                self.count += 1;
                if self.count >= self.sample {
                    self.count = 0;
                    true
                } else {
                    false
                }
            }
        };
        if take && self.full {
            self.skipped += 1;
        } else if take {
            let mut e = Entry::new(query, reply, client, port);
            e.cached = cached as u8;
            self.picked.push(e);
        }
    }

    /// After the batch's replies went out: `elapsed` since the batch was received.
    pub fn finish(&mut self, elapsed: Duration) {
        if self.skipped > 0 {
            ring().dropped.fetch_add(std::mem::take(&mut self.skipped), Ordering::Relaxed);
        }
        if self.picked.is_empty() {
            return;
        }
        let unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let us = elapsed.as_micros().min(u32::MAX as u128) as u32;
        for e in self.picked.iter_mut() {
            e.unix_us = unix_us;
            e.us = us;
        }
        ring().push_all(&self.picked);
        self.picked.clear();
    }
}

/// Up to `max` entries as JSON lines, appended to `out`; returns how many.
pub fn drain(max: usize, out: &mut Vec<u8>) -> usize {
    let r = match existing() {
        Some(r) => r,
        None => return 0,
    };
    let mut n = 0;
    while n < max {
        match r.pop() {
            Some(e) => format(&e, out),
            None => break,
        }
        n += 1;
    }
    n
}

const RCODES: [&str; 6] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

pub fn type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return None,
    })
}

/// One line: the same fields, order and spelling as the JS path's (src/dns/querylog.ts).
pub fn format(e: &Entry, out: &mut Vec<u8>) {
    use std::io::Write;
    out.extend_from_slice(b"{\"level\":30,\"time\":\"");
    iso_time(e.unix_us, out);
    out.extend_from_slice(b"\",\"msg\":\"query\",\"client\":\"");
    client_text(&e.addr, out);
    out.extend_from_slice(b"\",\"name\":\"");
    name_text(&e.name[..e.name_len as usize], out);
    out.extend_from_slice(b"\",\"type\":\"");
    match type_name(e.qtype) {
        Some(t) => out.extend_from_slice(t.as_bytes()),
        None => {
            let _ = write!(out, "TYPE{}", e.qtype);
        }
    }
    out.extend_from_slice(b"\",\"rcode\":\"");
    match RCODES.get(e.rcode as usize) {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        None => {
            let _ = write!(out, "RCODE{}", e.rcode);
        }
    }
    let path = if e.cached != 0 { "cache" } else { "native" };
    let _ = writeln!(out, "\",\"answers\":{},\"path\":\"{}\",\"us\":{}}}", e.ancount, path, e.us);
}

fn client_text(a: &[u8; 16], out: &mut Vec<u8>) {
    use std::io::Write;
    let v4 = a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff;
    let _ = if v4 { write!(out, "{}", std::net::Ipv4Addr::new(a[12], a[13], a[14], a[15])) } else { write!(out, "{}", std::net::Ipv6Addr::from(*a)) };
}

/// Dotted, as the JS path has it (dns-packet: no final dot, the root is "."), JSON-escaped; a dot
/// inside a label or a byte outside printable ASCII as \DDD, so the line stays valid JSON
/// whatever a client sent.
fn name_text(wire: &[u8], out: &mut Vec<u8>) {
    if wire.is_empty() {
        out.push(b'.');
        return;
    }
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if i > 0 {
            out.push(b'.');
        }
        for &c in &wire[i + 1..(i + 1 + len).min(wire.len())] {
            if c == b'"' || c == b'\\' {
                out.extend_from_slice(&[b'\\', c]);
            } else if (0x20..=0x7e).contains(&c) && c != b'.' {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'\\', b'\\', b'0' + c / 100, b'0' + c / 10 % 10, b'0' + c % 10]);
            }
        }
        i += 1 + len;
    }
}

/// 2026-12-06T06:01:34.123Z (the daemon log's time format), from microseconds since 1970.
fn iso_time(unix_us: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    let secs = unix_us / 1_000_000;
    let ms = (unix_us / 1000) % 1000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let _ = write!(out, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, m, d, rem / 3600, rem / 60 % 60, rem % 60, ms);
}

#[cfg(test)]
#[path = "querylog_tests.rs"]
mod tests;
