//! Open-loop DNS latency client for bench/dns.mjs.
//!
//!   udp-latency <server ip:port> <queries file> <rate QPS> <seconds> [senders=2] [sockets per sender=2]
//!
//! Sends the queries of the file (`name TYPE` lines, dnsperf's format, in order, looping) at a fixed
//! total rate, whatever the answers do (open loop: a slow answer does not slow the sending, so a
//! stall shows up as latency of every query behind it). Each sender thread owns its sockets and
//! paces itself: it sleeps until the next query is due and then sends every query that is due
//! (with the default 50 µs timer slack: bursts of a few queries, like dnsperf -Q).
//!
//! Why its figures can be trusted more than dnsperf -v's: a query's latency is measured from a
//! clock read right before its sendto() to the kernel's receive timestamp of the answer
//! (SO_TIMESTAMPNS: taken when the answer enters the receive path, i.e. inside the server's send
//! call on loopback). So the time the client's own receiving thread waits for a CPU, and its
//! logging, are not counted; dnsperf counts both (it timestamps when its thread reads the answer,
//! and -v writes a line per query). Queries not answered within 1 s after the end count as lost
//! and are placed above every answered one in the percentiles.
//!
//! Prints one JSON line: {"cpu_s" (this client's CPU time), "no_kernel_timestamp", "sent", "answered", "lost", "p50", "p90", "p99", "p999", "max"} (ms).

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
#[repr(C)]
struct Pollfd {
    fd: c_int,
    events: i16,
    revents: i16,
}
extern "C" {
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn recvmmsg(fd: c_int, msgs: *mut Mmsghdr, n: c_uint, flags: c_int, timeout: *mut c_void) -> c_int;
    fn poll(fds: *mut Pollfd, n: u64, timeout: c_int) -> c_int;
}
const SOL_SOCKET: c_int = 1;
const SO_TIMESTAMPNS: c_int = 35;
const SO_RCVBUF: c_int = 8;
const MSG_DONTWAIT: c_int = 0x40;
const BATCH: usize = 64;

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
        eprintln!("usage: udp-latency <server ip:port> <queries file> <rate QPS> <seconds> [senders=2] [sockets per sender=2]");
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
    // Pacing keeps the default timer slack (50 µs): a sender sleeps ~50 µs and then sends the few
    // queries that became due, as dnsperf -Q does. Waking up for every query (a timer per 10 µs)
    // cost this client more CPU than the server it measures, on the 2 CPUs they share.

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

    // Receiver: waits in poll() (it does not spin: the CPUs are the server's), reads every socket
    // in batches, and takes each answer's kernel timestamp.
    let rx = {
        let socks = socks.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut lat: Vec<u64> = Vec::new();
            let mut no_ts: u64 = 0;
            let mut bufs = vec![[0u8; 512]; BATCH];
            let mut ctl = vec![[0u64; 8]; BATCH];
            let mut iovs: Vec<Iovec> = bufs.iter_mut().map(|b| Iovec { base: b.as_mut_ptr() as *mut c_void, len: 512 }).collect();
            let mut msgs: Vec<Mmsghdr> = (0..BATCH)
                .map(|_| Mmsghdr { hdr: Msghdr { name: std::ptr::null_mut(), namelen: 0, iov: std::ptr::null_mut(), iovlen: 1, control: std::ptr::null_mut(), controllen: 0, flags: 0 }, len: 0 })
                .collect();
            let mut pfds: Vec<Pollfd> = socks.iter().map(|s| Pollfd { fd: s.udp.as_raw_fd(), events: 1, revents: 0 }).collect();
            let mut grace_until: Option<Instant> = None;
            loop {
                if done.load(Ordering::Relaxed) {
                    let g = *grace_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
                    if Instant::now() >= g {
                        break;
                    }
                }
                if unsafe { poll(pfds.as_mut_ptr(), pfds.len() as u64, 50) } <= 0 {
                    continue;
                }
                // The answers carry their own arrival time, so reading them late changes no
                // figure: let them pile up a little and read them in big batches, which keeps this
                // thread's CPU time (taken from the server on 2 shared CPUs) small.
                std::thread::sleep(Duration::from_micros(200));
                for p in pfds.iter_mut() {
                    p.revents = 1;
                }
                for (si, s) in socks.iter().enumerate() {
                    if pfds[si].revents == 0 {
                        continue;
                    }
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
                let interval = Duration::from_secs_f64(senders as f64 / rate);
                let mut next = start + interval.mul_f64(k as f64 / senders as f64);
                let mut seq: u64 = 0;
                let mut sent: u64 = 0;
                let mut qi = k;
                let mut pkt = Vec::with_capacity(512);
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now < next {
                        std::thread::sleep(next - now);
                        continue;
                    }
                    // Every query that is due, each with its own clock reading.
                    while next <= now {
                        let s = &socks[k * per + (seq as usize % per)];
                        let id = ((seq / per as u64) % 65536) as u16;
                        seq += 1;
                        pkt.clear();
                        pkt.extend_from_slice(&queries[qi % queries.len()]);
                        qi += senders;
                        pkt[..2].copy_from_slice(&id.to_be_bytes());
                        s.sent_at[id as usize].store(now_ns(), Ordering::Release);
                        let _ = s.udp.send(&pkt);
                        sent += 1;
                        next += interval;
                    }
                }
                sent
            })
        })
        .collect();
    let sent: u64 = txs.into_iter().map(|t| t.join().unwrap()).sum();
    done.store(true, Ordering::Relaxed);
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
        "{{\"cpu_s\":{:.2},\"no_kernel_timestamp\":{},\"sent\":{},\"answered\":{},\"lost\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        cpu_s,
        no_ts,
        sent,
        answered,
        lost,
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        lat.last().map(|v| format!("{:.4}", *v as f64 / 1e6)).unwrap_or("null".into())
    );
}
