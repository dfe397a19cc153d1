use super::*;
use std::sync::Arc;

fn entry(id: u64) -> Entry {
    let mut e = Entry::EMPTY;
    e.unix_us = id;
    // Every byte derived from the id: a torn read (half of one entry, half of another) shows.
    for b in e.name.iter_mut() {
        *b = id as u8;
    }
    e.us = id as u32;
    e
}

fn intact(e: &Entry) -> bool {
    e.name.iter().all(|&b| b == e.unix_us as u8) && e.us == e.unix_us as u32
}

#[test]
fn ring_keeps_order_and_drops_when_full() {
    let r = Ring::new(4);
    assert_eq!(r.push_all(&[entry(0), entry(1), entry(2)]), 3);
    assert_eq!(r.push_all(&[entry(3), entry(98), entry(99)]), 1, "a full ring refuses the rest");
    assert_eq!(r.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(r.pushed.load(Ordering::Relaxed), 4);
    for i in 0..2 {
        assert_eq!(r.pop().map(|e| e.unix_us), Some(i));
    }
    // Room again, wrapping around.
    assert_eq!(r.push_all(&[entry(4), entry(5)]), 2);
    assert!(r.is_full());
    let rest: Vec<u64> = std::iter::from_fn(|| r.pop()).map(|e| e.unix_us).collect();
    assert!(!r.is_full());
    assert_eq!(rest, vec![2, 3, 4, 5]);
    assert!(r.pop().is_none());
}

#[test]
fn ring_many_producers_one_consumer() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 200_000;
    let r = Arc::new(Ring::new(256));
    let done = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for p in 0..PRODUCERS {
        let r = r.clone();
        let done = done.clone();
        hs.push(std::thread::spawn(move || {
            // Batches of 1 to 64, as the UDP threads push them.
            let mut i = 0;
            while i < EACH {
                let n = (i % 64 + 1).min(EACH - i);
                let batch: Vec<Entry> = (i..i + n).map(|k| entry(p << 32 | k)).collect();
                r.push_all(&batch);
                i += n;
            }
            done.fetch_add(1, Ordering::Release);
        }));
    }
    let mut last = [None::<u64>; PRODUCERS as usize];
    let mut got = 0u64;
    loop {
        let finished = done.load(Ordering::Acquire) == PRODUCERS as usize;
        match r.pop() {
            Some(e) => {
                assert!(intact(&e), "entry {} torn", e.unix_us);
                let (p, i) = ((e.unix_us >> 32) as usize, e.unix_us & 0xffff_ffff);
                assert!(last[p].map_or(true, |l| i > l), "producer {} out of order", p);
                last[p] = Some(i);
                got += 1;
            }
            None if finished => break,
            None => std::thread::yield_now(),
        }
    }
    for h in hs {
        h.join().unwrap();
    }
    let dropped = r.dropped.load(Ordering::Relaxed);
    assert_eq!(got + dropped, PRODUCERS * EACH, "every entry either read or counted as dropped");
    assert_eq!(r.pushed.load(Ordering::Relaxed), got);
}

fn query(name: &[&[u8]], qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn line(e: &Entry) -> String {
    let mut out = Vec::new();
    format(e, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn entry_line_has_the_fields() {
    let q = query(&[b"Web", b"default", b"cluster", b"local"], 1);
    let mut reply = q.clone();
    reply[2] |= 0x80;
    reply[3] = 0x83; // NXDOMAIN
    reply[7] = 0;
    let mut e = Entry::new(&q, &reply, &Client::v4([10, 0, 0, 7]), 5353);
    e.unix_us = 1_765_000_000_123_456;
    e.us = 42;
    assert_eq!(
        line(&e),
        "{\"level\":30,\"time\":\"2025-12-06T05:46:40.123Z\",\"msg\":\"query\",\"client\":\"10.0.0.7\",\"name\":\"Web.default.cluster.local\",\"type\":\"A\",\"rcode\":\"NXDOMAIN\",\"answers\":0,\"path\":\"native\",\"us\":42}\n"
    );
}

#[test]
fn odd_names_stay_valid_json() {
    let q = query(&[b"a\"b", b"c\\d", b"e.f", &[0, 200]], 65000);
    let e = Entry::new(&q, &[0; 12], &Client { addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] }, 1);
    let l = line(&e);
    assert!(l.contains("\"name\":\"a\\\"b.c\\\\d.e\\\\046f.\\\\000\\\\200\""), "{}", l);
    assert!(l.contains("\"type\":\"TYPE65000\""), "{}", l);
    assert!(l.contains("\"client\":\"2001:db8::1\""), "{}", l);
    // A compression pointer or a name past the end ends the name, never reads beyond the packet.
    let mut bad = query(&[b"abc"], 1);
    bad[12] = 0xc0;
    assert_eq!(Entry::new(&bad, &[0; 12], &Client::v4([1, 2, 3, 4]), 1).name_len, 0);
    let cut = &query(&[b"abcdef"], 1)[..15];
    assert_eq!(Entry::new(cut, &[0; 12], &Client::v4([1, 2, 3, 4]), 1).name_len, 0);
}

#[test]
fn picker_modes() {
    let q = query(&[b"x"], 1);
    let ok = {
        let mut r = q.clone();
        r[2] |= 0x80;
        r
    };
    let fail = {
        let mut r = ok.clone();
        r[3] = 0x82;
        r
    };
    let c = Client::v4([127, 0, 0, 1]);
    let count = |mode: u32, sample: u32| {
        let mut p = Picker { mode, sample, count: 0, picked: Vec::new(), full: false, skipped: 0 };
        for i in 0..100 {
            p.offer(&q, if i % 10 == 0 { &fail } else { &ok }, &c, 1, false);
        }
        p.picked.len()
    };
    assert_eq!(count(MODE_OFF, 1), 0);
    assert_eq!(count(MODE_ERRORS, 1), 10);
    assert_eq!(count(MODE_SAMPLE, 1), 100);
    assert_eq!(count(MODE_SAMPLE, 7), 14);
}

#[test]
fn picker_on_a_full_ring_counts_without_building() {
    let q = query(&[b"x"], 1);
    let c = Client::v4([127, 0, 0, 1]);
    let mut p = Picker { mode: MODE_SAMPLE, sample: 1, count: 0, picked: Vec::new(), full: true, skipped: 0 };
    for _ in 0..5 {
        p.offer(&q, &q, &c, 1, false);
    }
    assert!(p.picked.is_empty(), "no entry built for a ring that has no room");
    assert_eq!(p.skipped, 5, "each pick counted, to be added to the ring's dropped");
}
