use super::*;
use crate::testutil::serial;

const SEC: u64 = 1_000_000_000;

fn name(n: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in n.split('.') {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

/// A query: id, RD (+CD), one question, optionally an OPT record (size, DO).
fn query(id: u16, n: &str, qtype: u16, opt: Option<(u16, bool)>, cd: bool) -> Vec<u8> {
    let mut q = vec![(id >> 8) as u8, id as u8, 0x01, if cd { 0x10 } else { 0 }, 0, 1, 0, 0, 0, 0, 0, opt.is_some() as u8];
    q.extend_from_slice(&name(n));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some((size, dnssec)) = opt {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, if dnssec { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

/// An upstream reply to `q` (its question as the upstream spells it: lower case) with `n` A
/// records of TTL `ttl`, or NXDOMAIN with an SOA (TTL `ttl`, minimum 30) when n is 0. Returns the
/// reply and its TTL fields.
fn reply(q: &[u8], n: usize, ttl: u32) -> (Vec<u8>, Vec<(u16, u32)>) {
    let mut r = q.to_vec();
    let mut qend = 12;
    while r[qend] != 0 {
        qend += r[qend] as usize + 1;
    }
    qend += 5;
    r.truncate(qend);
    for b in &mut r[12..qend - 4] {
        *b = b.to_ascii_lowercase();
    }
    r[0] = 0x55; // the forwarder's own ID
    r[2] = 0x81;
    r[3] = if n == 0 { 0x83 } else { 0x80 };
    r[10] = 0;
    r[11] = 0;
    let mut ttls = Vec::new();
    if n == 0 {
        r[8] = 0;
        r[9] = 1;
        r.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1]);
        ttls.push((r.len() as u16, ttl));
        r.extend_from_slice(&ttl.to_be_bytes());
        let rdata = [name("ns.test"), name("h.test"), vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 30]].concat();
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    } else {
        r[6] = 0;
        r[7] = n as u8;
        for i in 0..n {
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
            ttls.push((r.len() as u16, ttl));
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&[0, 4, 192, 0, 2, i as u8]);
        }
    }
    (r, ttls)
}

fn key_of(q: &[u8]) -> Vec<u8> {
    let mut k = [0u8; KEY_MAX];
    let (n, _, _) = query_key(q, &mut k).unwrap();
    k[..n].to_vec()
}

fn ask(c: &Cache, q: &[u8], now: u64) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_PACKET];
    c.answer(q, &mut out, now, &mut Counts::new()).map(|n| out[..n].to_vec())
}

fn install(c: &Cache, q: &[u8], n: usize, ttl: u32, now: u64) -> Vec<u8> {
    let (r, ttls) = reply(q, n, ttl);
    assert!(c.put(&key_of(q), &r, ttl.min(30), &ttls, now), "stored");
    r
}

fn ttl_at(r: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]])
}

#[test]
fn a_hit_carries_the_askers_id_and_spelling_and_aged_ttls() {
    let c = Cache::new(100);
    let first = query(1, "registry.example.com", 1, None, false);
    let stored = install(&c, &first, 2, 20, 5 * SEC);
    let q = query(0xbeef, "ReGiStRy.Example.COM", 1, None, false);
    let r = ask(&c, &q, 5 * SEC + SEC / 2).expect("a hit");
    assert_eq!(&r[..2], &[0xbe, 0xef], "the asker's ID");
    assert_eq!(&r[12..q.len()], &q[12..], "the asker's spelling of the question");
    assert_eq!(&r[2..12], &stored[2..12], "the upstream's flags and counts");
    let (_, ttls) = reply(&q, 2, 20);
    assert_eq!(ttls.iter().map(|&(at, _)| ttl_at(&r, at as usize)).collect::<Vec<_>>(), vec![20, 20], "under a second: not aged");
    let r = ask(&c, &q, 5 * SEC + 7 * SEC + SEC / 3).unwrap();
    assert_eq!(ttls.iter().map(|&(at, _)| ttl_at(&r, at as usize)).collect::<Vec<_>>(), vec![13, 13], "7.3 s later: 7 s less");
    assert!(ask(&c, &q, 5 * SEC + 20 * SEC).is_none(), "expired: JS answers (it may serve stale)");
    assert_eq!(c.len(), 0, "and the expired entry is gone");
}

#[test]
fn negative_answers_are_cached_until_their_ttl() {
    let c = Cache::new(100);
    let q = query(7, "nothing.example.com", 28, Some((1232, false)), false);
    let (r, ttls) = reply(&q, 0, 60);
    // min(SOA TTL, SOA minimum) = 30, computed by the caller (src/dns/cache.ts inspect).
    assert!(c.put(&key_of(&q), &r, 30, &ttls, 0));
    let got = ask(&c, &q, 29 * SEC).expect("NXDOMAIN from the cache");
    assert_eq!(got[3] & 0xf, 3);
    assert_eq!(ttl_at(&got, ttls[0].0 as usize), 31, "the SOA record's own TTL, aged");
    assert!(ask(&c, &q, 30 * SEC).is_none(), "expired at the negative TTL");
}

#[test]
fn qtype_edns_do_and_cd_are_part_of_the_key() {
    let c = Cache::new(100);
    let base = query(1, "api.example.com", 1, Some((1232, false)), false);
    install(&c, &base, 1, 300, 0);
    assert!(ask(&c, &base, SEC).is_some());
    for (what, q) in [
        ("AAAA", query(1, "api.example.com", 28, Some((1232, false)), false)),
        ("no EDNS", query(1, "api.example.com", 1, None, false)),
        ("DO", query(1, "api.example.com", 1, Some((1232, true)), false)),
        ("CD", query(1, "api.example.com", 1, Some((1232, false)), true)),
        ("other name", query(1, "api.example.org", 1, Some((1232, false)), false)),
    ] {
        assert!(ask(&c, &q, SEC).is_none(), "{} is another key", what);
    }
    assert!(ask(&c, &query(1, "api.example.com", 1, Some((4096, false)), false), SEC).is_some(), "another EDNS size is the same key");
}

#[test]
fn a_reply_too_big_for_the_client_goes_to_js() {
    let c = Cache::new(100);
    let big = query(1, "many.example.com", 1, Some((1232, false)), false);
    install(&c, &big, 40, 300, 0);
    assert!(ask(&c, &big, 0).map(|r| r.len() > 512) == Some(true), "fits 1232");
    assert!(ask(&c, &query(1, "many.example.com", 1, Some((512, false)), false), 0).is_none(), "not 512: JS sends it truncated");
}

#[test]
fn bad_installs_are_refused() {
    let c = Cache::new(100);
    let q = query(1, "x.example.com", 1, None, false);
    let (r, ttls) = reply(&q, 1, 300);
    let k = key_of(&q);
    assert!(!c.put(&k, &r, 0, &ttls, 0), "no TTL");
    assert!(!c.put(&k, &r, 86_401, &ttls, 0), "more than a day");
    assert!(!c.put(&k, &r, 30, &[(r.len() as u16 - 3, 5)], 0), "a TTL field past the end");
    assert!(!c.put(&k, &r, 30, &[(4, 5)], 0), "a TTL field in the header");
    assert!(!c.put(&k, &vec![0u8; MAX_PACKET + 1], 30, &[], 0), "too big");
    assert!(!c.put(&k, &r[..11], 30, &[], 0), "shorter than a header");
    assert!(!c.put(&[0, 0], &r, 30, &ttls, 0), "a short key");
    assert_eq!(c.len(), 0);
    let none = Cache::new(0);
    assert!(!none.put(&k, &r, 30, &ttls, 0), "size 0 caches nothing");
}

#[test]
fn the_bound_holds_and_clock_keeps_what_is_read() {
    let _g = serial();
    let c = Cache::new(8);
    let hot = query(1, "hot.example.com", 1, None, false);
    install(&c, &hot, 1, 300, 0);
    let before = STATS[STAT_EVICTIONS].load(Ordering::Relaxed);
    for i in 0..100 {
        assert!(ask(&c, &hot, 0).is_some(), "the name read all the time stays (round {})", i);
        install(&c, &query(1, &format!("once-{}.example.com", i), 1, None, false), 1, 300, 0);
        assert!(c.len() <= 8);
    }
    assert_eq!(c.len(), 8);
    assert_eq!(STATS[STAT_EVICTIONS].load(Ordering::Relaxed) - before, 93, "every install past the bound evicted one");
    c.resize(3);
    install(&c, &query(1, "after.example.com", 1, None, false), 1, 300, 0);
    assert_eq!(c.len(), 3, "a smaller bound applies at the next install");
    c.clear();
    assert_eq!(c.len(), 0);
}

#[test]
fn a_big_cache_is_sharded_and_still_bounded() {
    let c = Cache::new(2000);
    for i in 0..5000 {
        install(&c, &query(1, &format!("n{}.example.com", i), 1, None, false), 1, 300, 0);
    }
    assert!(c.len() <= 2000 && c.len() > 1900, "{} entries", c.len());
    assert!(ask(&c, &query(9, "n4999.example.com", 1, None, false), 0).is_some(), "the newest is there");
    c.resize(10);
    assert_eq!(c.len(), 0, "going to one shard starts empty");
}

#[test]
fn garbage_queries_are_misses_not_panics() {
    let c = Cache::new(100);
    install(&c, &query(1, "a.example.com", 1, None, false), 1, 300, 0);
    let q = query(1, "a.example.com", 1, None, false);
    let mut seed = 0x1234_5678u32;
    for _ in 0..100_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let mut m = q.clone();
        let i = seed as usize % m.len();
        m[i] = (seed >> 8) as u8;
        m.truncate(((seed >> 16) as usize % (m.len() + 1)).max(1));
        let _ = ask(&c, &m, 0);
    }
}
