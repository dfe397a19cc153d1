//! Open-loop DNS latency client for bench/dns.mjs.
//!
//!   udp-latency <server ip:port> <queries file> <rate QPS> <seconds> [senders=2] [sockets per sender=2] [burst period µs=100]
//!
//! Sends the queries of the file (`name TYPE` lines, dnsperf's format, in order, looping) at a fixed
//! total rate, whatever the answers do (open loop: a slow answer does not slow the sending, so a
//! stall shows up as latency of every query behind it). Each sender thread owns its sockets and
//! paces itself: it sleeps until the next query is due, at least one burst period (100 µs) after
//! its last wakeup, and then sends every query that is due, spread round
//! robin over its sockets, with ONE sendmmsg() per socket per burst (not one sendto() per query):
//! the client shares the two CPUs with the server it measures, and every CPU-second it saves is
//! one the server can use — the same for every server.
//!
//! Why its figures can be trusted more than dnsperf -v's: a query's latency is measured from a
//! clock read right before the sendmmsg() that sends it to the kernel's receive timestamp of the
//! answer. All queries of one sendmmsg() get that one clock reading, although the kernel sends the
//! later ones of the batch slightly after it (a few µs each): this overstates their latency, never
//! understates it. The receive side: the kernel's receive timestamp of the answer
//! (SO_TIMESTAMPNS: taken when the answer enters the receive path, i.e. inside the server's send
//! call on loopback). So the time the client's own receiving thread waits for a CPU, and its
//! logging, are not counted; dnsperf counts both (it timestamps when its thread reads the answer,
//! and -v writes a line per query). Queries not answered within 1 s after the end count as lost
//! and are placed above every answered one in the percentiles.
//!
//! Prints one JSON line: {"cpu_s" (this client's CPU time), "no_kernel_timestamp", "sent" (queries
//! the kernel accepted), "send_errors" (queries a sendmmsg() refused; not counted as sent), "answered",
//! "lost", "p50", "p90", "p99", "p999", "max"} (ms).

use std::net::{SocketAddr, UdpSocket};
use std::os::raw::{c_int, c_uint, c_void};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[repr(C)]
struct Iovec {
    base: *mut c_void,
    len: usize,
}
#[repr(C)]
struct Msghdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut Iovec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}
#[repr(C)]
struct Mmsghdr {
    hdr: Msghdr,
    len: c_uint,
}
extern "C" {
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn recvmmsg(fd: c_int, msgs: *mut Mmsghdr, n: c_uint, flags: c_int, timeout: *mut c_void) -> c_int;
    fn sendmmsg(fd: c_int, msgs: *mut Mmsghdr, n: c_uint, flags: c_int) -> c_int;
}
const SOL_SOCKET: c_int = 1;
const SO_TIMESTAMPNS: c_int = 35;
const SO_RCVBUF: c_int = 8;
const MSG_DONTWAIT: c_int = 0x40;
const BATCH: usize = 256;
/// Most queries one sendmmsg() carries (a sender far behind its schedule sends in several).
const SEND_BATCH: usize = 256;
/// How often the receiver reads its sockets (it sleeps in between; see the receiver).
const RX_PERIOD: Duration = Duration::from_micros(500);

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn encode(name: &str, qtype: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]; // id 0 (set per send), RD, 1 question
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    let t: u16 = match qtype.to_ascii_uppercase().as_str() {
        "AAAA" => 28,
        "SRV" => 33,
        "PTR" => 12,
        "TXT" => 16,
        _ => 1,
    };
    q.extend_from_slice(&t.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// One socket: the send time of each outstanding DNS id (0 = none), shared by sender and receiver.
struct Sock {
    udp: UdpSocket,
    sent_at: Vec<AtomicU64>,
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: udp-latency <server ip:port> <queries file> <rate QPS> <seconds> [senders=2] [sockets per sender=2] [burst period µs=100]");
        std::process::exit(2);
    }
    let server: SocketAddr = a[1].parse().expect("server ip:port");
    let queries: Vec<Vec<u8>> = std::fs::read_to_string(&a[2])
        .expect("queries file")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(encode(f.next()?, f.next().unwrap_or("A")))
        })
        .collect();
    let rate: f64 = a[3].parse().expect("rate");
    let seconds: f64 = a[4].parse().expect("seconds");
    let senders: usize = a.get(5).map(|s| s.parse().expect("senders")).unwrap_or(2);
    let per: usize = a.get(6).map(|s| s.parse().expect("sockets per sender")).unwrap_or(2);
    // Pacing: a sender wakes at most once per burst period (default 100 µs) and sends the queries
    // that became due, one sendmmsg() per socket. Each wakeup costs a context switch, and the
    // wakeups were this client's largest cost after the sending itself: with no minimum period
    // (woken by the 50 µs timer slack, bursts of ~3 per socket) it took 0.88 CPU at 200k QPS,
    // with 100 µs 0.66, with 200 µs 0.55 (bench/RESULTS.md). A longer period means larger
    // bursts (at 200k QPS and 100 µs: ~10 queries per sender thread, 5 per socket, sent within a
    // few µs): harder on the server, not easier, and the same for every server. Waking up for
    // every query (a timer per 10 µs) cost this client more CPU than the server it measures.

    let tick = Duration::from_micros(a.get(7).map(|s| s.parse().expect("burst period µs")).unwrap_or(100));
    let socks: Arc<Vec<Sock>> = Arc::new(
        (0..senders * per)
            .map(|_| {
                let udp = UdpSocket::bind(if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
                udp.connect(server).unwrap();
                let one: c_int = 1;
                let buf: c_int = 4 << 20;
                unsafe {
                    setsockopt(udp.as_raw_fd(), SOL_SOCKET, SO_TIMESTAMPNS, &one as *const _ as *const c_void, 4);
                    setsockopt(udp.as_raw_fd(), SOL_SOCKET, SO_RCVBUF, &buf as *const _ as *const c_void, 4);
                }
                Sock { udp, sent_at: (0..65536).map(|_| AtomicU64::new(0)).collect() }
            })
            .collect(),
    );
    let done = Arc::new(AtomicBool::new(false));
    // Total the senders had the kernel accept, known once they are done: the receiver stops as
    // soon as it has an answer for each (else 1 s after the end; the rest count as lost).
    let total_sent = Arc::new(AtomicU64::new(u64::MAX));

    // Receiver: sleeps RX_PERIOD, then reads every socket in batches and takes each answer's kernel
    // timestamp. The answers carry their own arrival time, so reading them late changes no figure:
    // letting them pile up keeps this thread's CPU time (taken from the server on 2 shared CPUs)
    // small. It does not wait in poll(): a waiting reader makes every answer's delivery wake it,
    // and that wakeup is work done in the server's send call; a socket nobody waits on costs none.
    let rx = {
        let socks = socks.clone();
        let done = done.clone();
        let total_sent = total_sent.clone();
        std::thread::spawn(move || {
            let mut lat: Vec<u64> = Vec::new();
            let mut no_ts: u64 = 0;
            let mut bufs = vec![[0u8; 512]; BATCH];
            let mut ctl = vec![[0u64; 8]; BATCH];
            let mut iovs: Vec<Iovec> = bufs.iter_mut().map(|b| Iovec { base: b.as_mut_ptr() as *mut c_void, len: 512 }).collect();
            let mut msgs: Vec<Mmsghdr> = (0..BATCH)
                .map(|_| Mmsghdr { hdr: Msghdr { name: std::ptr::null_mut(), namelen: 0, iov: std::ptr::null_mut(), iovlen: 1, control: std::ptr::null_mut(), controllen: 0, flags: 0 }, len: 0 })
                .collect();
            let mut grace_until: Option<Instant> = None;
            loop {
                if done.load(Ordering::Acquire) {
                    if lat.len() as u64 >= total_sent.load(Ordering::Acquire) {
                        break;
                    }
                    let g = *grace_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
                    if Instant::now() >= g {
                        break;
                    }
                }
                std::thread::sleep(RX_PERIOD);
                for s in socks.iter() {
                    loop {
                        for i in 0..BATCH {
                            msgs[i].hdr.iov = &mut iovs[i];
                            msgs[i].hdr.iovlen = 1;
                            msgs[i].hdr.control = ctl[i].as_mut_ptr() as *mut c_void;
                            msgs[i].hdr.controllen = 64;
                            msgs[i].hdr.flags = 0;
                        }
                        let n = unsafe { recvmmsg(s.udp.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, MSG_DONTWAIT, std::ptr::null_mut()) };
                        if n <= 0 {
                            break;
                        }
                        let fallback = now_ns();
                        for i in 0..n as usize {
                            if msgs[i].len < 12 {
                                continue;
                            }
                            let id = u16::from_be_bytes([bufs[i][0], bufs[i][1]]) as usize;
                            let t0 = s.sent_at[id].swap(0, Ordering::AcqRel);
                            if t0 == 0 {
                                continue; // late duplicate or unknown id
                            }
                            // cmsghdr { len: usize, level: i32, type: i32 } then timespec.
                            let c = &ctl[i];
                            let ts = if msgs[i].hdr.controllen >= 32 && (c[1] & 0xffff_ffff) as i32 == SOL_SOCKET && (c[1] >> 32) as i32 == SO_TIMESTAMPNS {
                                c[2] * 1_000_000_000 + c[3]
                            } else {
                                no_ts += 1;
                                fallback
                            };
                            lat.push(ts.saturating_sub(t0));
                        }
                        // A short batch emptied the socket: the next call would only say so.
                        if (n as usize) < BATCH {
                            break;
                        }
                    }
                }
            }
            (lat, no_ts)
        })
    };

    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(seconds);
    let txs: Vec<_> = (0..senders)
        .map(|k| {
            let socks = socks.clone();
            let queries = queries.clone();
            std::thread::spawn(move || {
                // Query i of the run (this thread sends i = k, k + senders, ...) is due at i / rate,
                // computed from i, not by adding a rounded interval: so that exactly rate × seconds
                // are due before the end.
                let due = |i: u64| start + Duration::from_nanos((i as f64 * 1e9 / rate) as u64);
                let mut i = k as u64;
                let mut next = due(i);
                let mut seq: u64 = 0;
                let mut sent: u64 = 0;
                let mut errors: u64 = 0;
                let mut qi = k;
                let mut woke = start;
                // Per socket of this sender: the burst's packets, their lengths and DNS ids.
                let mut pkts = vec![vec![[0u8; 512]; SEND_BATCH]; per];
                let mut lens = vec![[0usize; SEND_BATCH]; per];
                let mut ids = vec![[0u16; SEND_BATCH]; per];
                let mut count = vec![0usize; per];
                let mut iovs: Vec<Iovec> = (0..SEND_BATCH).map(|_| Iovec { base: std::ptr::null_mut(), len: 0 }).collect();
                let mut msgs: Vec<Mmsghdr> = (0..SEND_BATCH)
                    .map(|_| Mmsghdr { hdr: Msghdr { name: std::ptr::null_mut(), namelen: 0, iov: std::ptr::null_mut(), iovlen: 1, control: std::ptr::null_mut(), controllen: 0, flags: 0 }, len: 0 })
                    .collect();
                // Sends socket j's burst with one sendmmsg() (more only if the kernel takes part).
                let mut flush = |j: usize, count: &mut Vec<usize>, pkts: &mut Vec<Vec<[u8; 512]>>, lens: &Vec<[usize; SEND_BATCH]>, ids: &Vec<[u16; SEND_BATCH]>, sent: &mut u64, errors: &mut u64| {
                    let n = count[j];
                    if n == 0 {
                        return;
                    }
                    count[j] = 0;
                    let s = &socks[k * per + j];
                    for i in 0..n {
                        iovs[i].base = pkts[j][i].as_mut_ptr() as *mut c_void;
                        iovs[i].len = lens[j][i];
                        msgs[i].hdr.iov = &mut iovs[i];
                        msgs[i].hdr.iovlen = 1;
                    }
                    // One clock reading for the whole batch, taken before the sent times are
                    // stored and the batch is sent (conservative: see the header).
                    let t = now_ns();
                    for i in 0..n {
                        s.sent_at[ids[j][i] as usize].store(t, Ordering::Release);
                    }
                    let mut off = 0;
                    while off < n {
                        let r = unsafe { sendmmsg(s.udp.as_raw_fd(), msgs[off..].as_mut_ptr(), (n - off) as u32, 0) };
                        if r <= 0 {
                            // Refused (e.g. a pending ICMP error): these queries were not sent.
                            for i in off..n {
                                let _ = s.sent_at[ids[j][i] as usize].compare_exchange(t, 0, Ordering::AcqRel, Ordering::Relaxed);
                            }
                            *errors += (n - off) as u64;
                            break;
                        }
                        off += r as usize;
                        *sent += r as u64;
                    }
                };
                loop {
                    let now = Instant::now();
                    // The last burst sends every query due before the end, so that exactly
                    // rate × seconds are sent however late this thread woke.
                    let last = now >= end;
                    if !last && now < next {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    if !last && now < woke + tick {
                        std::thread::sleep(woke + tick - now);
                        continue;
                    }
                    woke = now;
                    let upto = if last { end } else { now };
                    // Every query that is due, round robin over this sender's sockets.
                    while next <= upto && next < end {
                        let j = seq as usize % per;
                        let id = ((seq / per as u64) % 65536) as u16;
                        seq += 1;
                        let q = &queries[qi % queries.len()];
                        qi += senders;
                        let c = count[j];
                        pkts[j][c][..q.len()].copy_from_slice(q);
                        pkts[j][c][..2].copy_from_slice(&id.to_be_bytes());
                        lens[j][c] = q.len();
                        ids[j][c] = id;
                        count[j] = c + 1;
                        i += senders as u64;
                        next = due(i);
                        if count[j] == SEND_BATCH {
                            flush(j, &mut count, &mut pkts, &lens, &ids, &mut sent, &mut errors);
                        }
                    }
                    for j in 0..per {
                        flush(j, &mut count, &mut pkts, &lens, &ids, &mut sent, &mut errors);
                    }
                    if last {
                        break;
                    }
                }
                (sent, errors)
            })
        })
        .collect();
    let (sent, send_errors) = txs.into_iter().map(|t| t.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    total_sent.store(sent, Ordering::Release);
    done.store(true, Ordering::Release);
    let (mut lat, no_ts) = rx.join().unwrap();
    lat.sort_unstable();
    let answered = lat.len() as u64;
    let lost = sent.saturating_sub(answered);
    // Lost queries rank above every answer.
    let at = |q: f64| -> String {
        let i = ((q * sent as f64) as u64).min(sent.saturating_sub(1));
        if i >= answered {
            "null".into()
        } else {
            format!("{:.4}", lat[i as usize] as f64 / 1e6)
        }
    };
    // This client's own CPU time (utime + stime, clock ticks of 10 ms): what it took from the server.
    let cpu_s = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|st| {
            let f: Vec<u64> = st[st.rfind(')')? + 2..].split(' ').skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
            Some((f.get(0)? + f.get(1)?) as f64 / 100.0)
        })
        .unwrap_or(f64::NAN);
    println!(
        "{{\"cpu_s\":{:.2},\"no_kernel_timestamp\":{},\"sent\":{},\"send_errors\":{},\"answered\":{},\"lost\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        cpu_s,
        no_ts,
        sent,
        send_errors,
        answered,
        lost,
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        lat.last().map(|v| format!("{:.4}", *v as f64 / 1e6)).unwrap_or("null".into())
    );
}
