//! UDP serving: per listener, one thread per core on its own SO_REUSEPORT socket, reading and
//! writing in batches (recvmmsg/sendmmsg), answering from the current answer table and handing
//! what it cannot answer to JS. The table is swapped by generation: a thread re-reads the shared
//! pointer only when the generation moved, so the hot path takes no lock.

use crate::answer::{self, Client, Outcome, Table, OUT_MAX};
use crate::cache;
use crate::querylog;
use crate::sys::*;
use std::net::{IpAddr, Ipv6Addr};
use std::os::raw::c_void;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const IN_MAX: usize = 4096;
/// Queries waiting for JS beyond this are dropped (and counted): a flood of odd queries must not
/// grow the daemon's memory without bound. Bounded in time too: see `Listener::take`.
const JS_QUEUE_MAX: usize = 16384;

static TABLE: Mutex<Option<Arc<Table>>> = Mutex::new(None);
static TABLE_GEN: AtomicU64 = AtomicU64::new(0);
pub static JS_INFLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counters: [type * 6 + rcode] for native answers (types: A AAAA SRV PTR SOA NS TXT other),
/// then to_js, formerr, notimp, dropped, js_queue_full, ..., js_late (after the latency).
pub const STAT_TO_JS: usize = 48;
pub const STAT_FORMERR: usize = 49;
pub const STAT_NOTIMP: usize = 50;
pub const STAT_DROPPED: usize = 51;
pub const STAT_JS_FULL: usize = 52;
/// Latency: 14 buckets + Inf (the JS histogram's), then the sum in nanoseconds. A query's time is
/// its batch's: from recvmmsg returning to sendmmsg done.
pub const STAT_LAT: usize = 53;
pub const STAT_LAT_SUM_NS: usize = 68;
/// Handed to JS but too old when JS got to it: dropped unanswered (the client has retried).
pub const STAT_JS_LATE: usize = 69;
/// Answers over the response rate limit: dropped, or sent truncated (slip).
pub const STAT_RRL_DROP: usize = 70;
pub const STAT_RRL_SLIP: usize = 71;
pub const NSTATS: usize = 72;
const BUCKETS_NS: [u64; 14] = [50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 50_000_000, 100_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000];
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
pub static STATS: [AtomicU64; NSTATS] = [ZERO; NSTATS];

/// Response rate limiting (off at 0): answers per second to one /24 (IPv4) or /56 (IPv6), shared
/// by all threads; every RRL_SLIP-th limited answer goes out truncated instead of dropped.
static RRL_RATE: AtomicU32 = AtomicU32::new(0);
static RRL_SLIP: AtomicU32 = AtomicU32::new(2);
const RRL_SLOTS: usize = 4096;

#[derive(Clone, Copy)]
struct RrlSlot {
    net: [u8; 16],
    /// Thousandths of an answer.
    tokens: u64,
    at_ms: u64,
    limited: u32,
}

/// A fixed table of networks, allocated once when RRL is turned on; a network whose slot is
/// taken by another replaces it (a flood of many networks forgets some, it never grows).
static RRL: Mutex<Vec<RrlSlot>> = Mutex::new(Vec::new());

pub fn set_rrl(rate: u32, slip: u32) {
    let mut t = RRL.lock().unwrap_or_else(|e| e.into_inner());
    if rate > 0 && t.is_empty() {
        *t = vec![RrlSlot { net: [0; 16], tokens: 0, at_ms: 0, limited: 0 }; RRL_SLOTS];
    }
    for slot in t.iter_mut() {
        slot.at_ms = 0;
        slot.net = [0; 16];
    }
    RRL_SLIP.store(slip, Ordering::Relaxed);
    RRL_RATE.store(rate, Ordering::Relaxed);
}

enum Verdict {
    Send,
    Drop,
    Slip,
}

fn rrl_network(c: &Client) -> [u8; 16] {
    let mut net = [0u8; 16];
    let v4 = c.addr[..10].iter().all(|&b| b == 0) && c.addr[10] == 0xff && c.addr[11] == 0xff;
    let n = if v4 { 15 } else { 7 };
    net[..n].copy_from_slice(&c.addr[..n]);
    net
}

fn rrl_check(t: &mut [RrlSlot], c: &Client, rate: u64, slip: u32, now_ms: u64) -> Verdict {
    let net = rrl_network(c);
    let h = net.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let slot = &mut t[(h as usize) % t.len()];
    let full = rate * 1000;
    if slot.net != net || slot.at_ms == 0 {
        *slot = RrlSlot { net, tokens: full, at_ms: now_ms, limited: 0 };
    }
    slot.tokens = (slot.tokens + now_ms.saturating_sub(slot.at_ms) * rate).min(full);
    slot.at_ms = now_ms;
    if slot.tokens >= 1000 {
        slot.tokens -= 1000;
        return Verdict::Send;
    }
    slot.limited = slot.limited.wrapping_add(1);
    if slip > 0 && slot.limited % slip == 0 {
        Verdict::Slip
    } else {
        Verdict::Drop
    }
}

/// Cuts a reply to its header and question, with TC set (the slip answer); returns its length.
fn truncate_reply(out: &mut [u8], len: usize) -> usize {
    let mut i = 12;
    while i < len && out[i] != 0 && out[i] & 0xc0 == 0 {
        i += out[i] as usize + 1;
    }
    let end = (i + 5).min(len);
    out[2] |= 0x02;
    for b in &mut out[6..12] {
        *b = 0;
    }
    end
}

static TABLE_SEQ: AtomicU64 = AtomicU64::new(0);
static INSTALLED_SEQ: AtomicU64 = AtomicU64::new(0);

/// A ticket for the next table: tables parsed in the background are installed in ticket order,
/// a late older one never replaces a newer one.
pub fn table_ticket() -> u64 {
    TABLE_SEQ.fetch_add(1, Ordering::SeqCst) + 1
}

pub fn set_table(t: Option<Table>, ticket: u64) {
    let mut g = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if ticket < INSTALLED_SEQ.load(Ordering::SeqCst) {
        return;
    }
    INSTALLED_SEQ.store(ticket, Ordering::SeqCst);
    let old = std::mem::replace(&mut *g, t.map(Arc::new));
    TABLE_GEN.fetch_add(1, Ordering::Release);
    drop(g);
    // What building the new table left free (the old one trims when it goes: Table's drop).
    drop(old);
    crate::sys::trim();
}

pub fn current_table() -> (u64, Option<Arc<Table>>) {
    let g = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    (TABLE_GEN.load(Ordering::Acquire), g.clone())
}

pub struct Pending {
    pub data: Vec<u8>,
    pub ip: String,
    pub port: u16,
    pub sock: u32,
    at: Instant,
}

/// Tells JS that queries are waiting (called once per empty → non-empty transition).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The queries a listener's threads hand to JS. JS pulls them one at a time within a budget per
/// event-loop turn (src/native/udp.ts), so a flood of them cannot hold the loop that also runs
/// gossip; `woken` says a wake-up is on its way or JS is still draining, so the threads signal
/// only once per drain instead of once per batch.
struct HandOff {
    q: VecDeque<Pending>,
    woken: bool,
}

pub struct Listener {
    pub fds: Vec<i32>,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    handoff: Mutex<HandOff>,
    wake: Wake,
}

impl Listener {
    /// Queues queries for JS; wakes JS if it is not already draining.
    fn hand_off(&self, batch: Vec<Pending>) {
        let wake = {
            let mut h = self.handoff.lock().unwrap_or_else(|e| e.into_inner());
            h.q.extend(batch);
            !std::mem::replace(&mut h.woken, true)
        };
        if wake {
            (self.wake)();
        }
    }

    /// The oldest waiting query that is at most `max_age` old; older ones are dropped and
    /// counted (their clients have retried or given up: answering them only delays the fresh
    /// ones). None when the queue is empty, which also ends the drain (the next query wakes JS).
    pub fn take(&self, max_age: Duration) -> Option<Pending> {
        let mut h = self.handoff.lock().unwrap_or_else(|e| e.into_inner());
        let mut late = 0;
        let got = loop {
            match h.q.pop_front() {
                Some(p) if p.at.elapsed() > max_age => late += 1,
                other => break other,
            }
        };
        if got.is_none() {
            h.woken = false;
        }
        drop(h);
        JS_INFLIGHT.fetch_sub(late + got.is_some() as usize, Ordering::Relaxed);
        if late > 0 {
            STATS[STAT_JS_LATE].fetch_add(late as u64, Ordering::Relaxed);
        }
        got
    }

    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads: Vec<JoinHandle<()>> = self.threads.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        for fd in &self.fds {
            unsafe { close(*fd) };
        }
        let mut h = self.handoff.lock().unwrap_or_else(|e| e.into_inner());
        JS_INFLIGHT.fetch_sub(h.q.len(), Ordering::Relaxed);
        h.q.clear();
    }

    pub fn reply(&self, idx: usize, ip: &str, port: u16, data: &[u8]) -> bool {
        let fd = match self.fds.get(idx) {
            Some(fd) => *fd,
            None => return false,
        };
        let ip: IpAddr = match ip.parse() {
            Ok(ip) => ip,
            Err(_) => return false,
        };
        let (sa, len) = sockaddr(ip, port);
        unsafe { sendto(fd, data.as_ptr() as *const c_void, data.len(), MSG_NOSIGNAL, &sa as *const _ as *const c_void, len) >= 0 }
    }
}

pub fn sockaddr(ip: IpAddr, port: u16) -> (sockaddr_storage, u32) {
    let mut sa = sockaddr_storage { bytes: [0; 128] };
    let b = &mut sa.bytes;
    match ip {
        IpAddr::V4(a) => {
            b[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            b[4..8].copy_from_slice(&a.octets());
            (sa, 16)
        }
        IpAddr::V6(a) => {
            b[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            b[8..24].copy_from_slice(&a.octets());
            (sa, 28)
        }
    }
}

/// Binds `threads` sockets on ip:port (port 0: the first picks one, the others share it). The
/// `adopted` sockets (bound to ip:port by an earlier process, kept by systemd) are served first,
/// as many as `threads`; new ones join their SO_REUSEPORT group for the rest.
pub fn open(host: &str, port: u16, threads: usize, rcvbuf: i32, wake: Wake, id: u32, adopted: &[i32]) -> Result<(Arc<Listener>, u16), (i32, String)> {
    let ip: IpAddr = host.parse().map_err(|_| (22, format!("not an IP address: {}", host)))?;
    let mut fds = Vec::new();
    let mut port = port;
    for fd in adopted.iter().take(threads.max(1)) {
        port = adopt(*fd, rcvbuf);
        fds.push(*fd);
    }
    for _ in fds.len()..threads.max(1) {
        match bind_one(ip, port, rcvbuf) {
            Ok((fd, p)) => {
                fds.push(fd);
                port = p;
            }
            // Adopted sockets from a process that did not share the port (the JS path): they
            // are served by as many threads as there are of them.
            Err(_) if !adopted.is_empty() => break,
            Err(e) => {
                for fd in &fds {
                    unsafe { close(*fd) };
                }
                return Err(e);
            }
        }
    }
    // More threads than CPUs: steering by CPU would leave the extra ones idle; keep the hash.
    let cpus = allowed_cpus();
    if fds.len() > 1 && fds.len() <= cpus.len() {
        steer_by_cpu(fds[0], fds.len());
    }
    // Thread i on CPU i, when there is one thread per CPU and they are CPUs 0..n-1 (the default):
    // the steering above then hands a query to the thread running on the CPU that received it (no
    // cross-CPU wakeup, the packet still in that CPU's cache).
    let pin = fds.len() > 1 && cpus == (0..fds.len()).collect::<Vec<_>>();
    let l = Arc::new(Listener {
        fds: fds.clone(),
        stop: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
        handoff: Mutex::new(HandOff { q: VecDeque::new(), woken: false }),
        wake,
    });
    for (i, fd) in fds.iter().enumerate() {
        let l2 = l.clone();
        let fd = *fd;
        let sock = (id << 8) | i as u32;
        let cpu = if pin { Some(i) } else { None };
        let h = std::thread::Builder::new()
            .name(format!("psdns-udp-{}", i))
            .spawn(move || serve(fd, &l2, sock, cpu))
            .map_err(|e| (12, e.to_string()))?;
        l.threads.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }
    Ok((l, port))
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    let mut mask = [0u64; 16];
    if unsafe { sched_getaffinity(0, 128, mask.as_mut_ptr() as *mut c_void) } != 0 {
        return Vec::new();
    }
    (0..1024).filter(|c| mask[c / 64] & (1 << (c % 64)) != 0).collect()
}

/// SO_REUSEPORT group of `n` sockets: a query goes to socket (receiving CPU % n) instead of the
/// default hash of its addresses, which with a few busy clients often puts all of them on one
/// socket (one thread busy, the other idle: native 240–260k QPS instead of ~400k in bench/dns.mjs
/// with dnsperf -T 2). Packets from containers (veth) and loopback are received on the sender's
/// CPU, so the load spreads like the clients do; a single-queue NIC without RPS would put all
/// outside queries on one thread. The same as knot's `socket-affinity`. A = cpu; A %= n; ret A.
fn steer_by_cpu(fd: i32, n: usize) {
    let prog = [
        sock_filter { code: 0x20, jt: 0, jf: 0, k: (-0x1000i32 + 36) as u32 }, // ld #cpu (SKF_AD_CPU)
        sock_filter { code: 0x94, jt: 0, jf: 0, k: n as u32 },                 // mod #n
        sock_filter { code: 0x16, jt: 0, jf: 0, k: 0 },                        // ret a
    ];
    let fprog = sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() };
    unsafe { setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog as *const _ as *const c_void, std::mem::size_of::<sock_fprog>() as u32) };
}

/// An adopted socket gets the buffers and timeout a new one gets; returns its port.
fn adopt(fd: i32, rcvbuf: i32) -> u16 {
    tune(fd, rcvbuf);
    local_port(fd)
}

fn tune(fd: i32, rcvbuf: i32) {
    // Bursts are absorbed, not dropped: FORCE works as root, the plain one up to rmem_max.
    if rcvbuf > 0 && !set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf) {
        set_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
    }
    set_int(fd, SOL_SOCKET, SO_SNDBUF, 1 << 20);
    // Wake up now and then to notice close().
    let tv = timeval { tv_sec: 0, tv_usec: 200_000 };
    unsafe { setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv as *const timeval as *const c_void, 16) };
}

fn local_port(fd: i32) -> u16 {
    let mut got = sockaddr_storage { bytes: [0; 128] };
    let mut glen: u32 = 128;
    unsafe { getsockname(fd, &mut got as *mut _ as *mut c_void, &mut glen) };
    u16::from_be_bytes([got.bytes[2], got.bytes[3]])
}

fn bind_one(ip: IpAddr, port: u16, rcvbuf: i32) -> Result<(i32, u16), (i32, String)> {
    let v6 = ip.is_ipv6();
    let fd = unsafe { socket(if v6 { AF_INET6 } else { AF_INET }, SOCK_DGRAM | SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err((errno(), "socket".into()));
    }
    set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if v6 {
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
        set_int(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
    } else {
        set_int(fd, IPPROTO_IP, IP_FREEBIND, 1);
    }
    tune(fd, rcvbuf);
    let (sa, len) = sockaddr(ip, port);
    if unsafe { bind(fd, &sa as *const _ as *const c_void, len) } != 0 {
        let e = errno();
        unsafe { close(fd) };
        return Err((e, "bind".into()));
    }
    Ok((fd, local_port(fd)))
}

fn client_of(sa: &sockaddr_storage) -> Option<(Client, IpAddr, u16)> {
    let b = &sa.bytes;
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    let port = u16::from_be_bytes([b[2], b[3]]);
    if family == AF_INET {
        let a = [b[4], b[5], b[6], b[7]];
        Some((Client::v4(a), IpAddr::from(a), port))
    } else if family == AF_INET6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[8..24]);
        Some((Client { addr: a }, IpAddr::V6(Ipv6Addr::from(a)), port))
    } else {
        None
    }
}

pub fn type_index(qtype: u16) -> usize {
    match qtype {
        1 => 0,
        28 => 1,
        33 => 2,
        12 => 3,
        6 => 4,
        2 => 5,
        16 => 6,
        _ => 7,
    }
}

/// qtype of a reply we built (question right after the header), for the metrics.
fn reply_qtype(out: &[u8]) -> u16 {
    let mut i = 12;
    while i < out.len() && out[i] != 0 {
        i += out[i] as usize + 1;
    }
    if i + 2 < out.len() {
        u16::from_be_bytes([out[i + 1], out[i + 2]])
    } else {
        0
    }
}

fn serve(fd: i32, l: &Listener, sock: u32, cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut mask = [0u64; 16];
        mask[cpu / 64] |= 1 << (cpu % 64);
        unsafe { sched_setaffinity(0, 128, mask.as_ptr() as *const c_void) };
    }
    let mut inb = vec![[0u8; IN_MAX]; BATCH];
    let mut outb = vec![[0u8; OUT_MAX]; BATCH];
    let mut names = vec![sockaddr_storage { bytes: [0; 128] }; BATCH];
    let mut iov_in: Vec<iovec> = Vec::with_capacity(BATCH);
    let mut iov_out: Vec<iovec> = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        iov_in.push(iovec { iov_base: inb[i].as_mut_ptr() as *mut c_void, iov_len: IN_MAX });
        iov_out.push(iovec { iov_base: outb[i].as_mut_ptr() as *mut c_void, iov_len: 0 });
    }
    let empty = msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 1,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    };
    let mut rmsgs = vec![mmsghdr { msg_hdr: empty, msg_len: 0 }; BATCH];
    let mut smsgs = vec![mmsghdr { msg_hdr: empty, msg_len: 0 }; BATCH];
    let (mut gen, mut table) = current_table();
    let mut stats = [0u64; NSTATS];
    let mut clients = [Client { addr: [0; 16] }; BATCH];
    let cache = cache::shared();
    let mut cached = cache::Counts::new();
    let epoch = Instant::now();
    let mut qlog = querylog::Picker::new();
    while !l.stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            rmsgs[i].msg_hdr.msg_name = &mut names[i] as *mut _ as *mut c_void;
            rmsgs[i].msg_hdr.msg_namelen = 128;
            rmsgs[i].msg_hdr.msg_iov = &mut iov_in[i];
            rmsgs[i].msg_hdr.msg_iovlen = 1;
            rmsgs[i].msg_hdr.msg_flags = 0;
        }
        let n = unsafe { recvmmsg(fd, rmsgs.as_mut_ptr(), BATCH as u32, MSG_WAITFORONE, std::ptr::null_mut()) };
        // Also on a timeout: an idle thread lets go of a replaced table within the timeout.
        if TABLE_GEN.load(Ordering::Acquire) != gen {
            let (g, t) = current_table();
            gen = g;
            table = t;
        }
        if n <= 0 {
            continue; // timeout (to check stop), EINTR, or a transient error
        }
        let t0 = std::time::Instant::now();
        qlog.begin();
        let mut ns = 0usize;
        let mut pending: Vec<Pending> = Vec::new();
        let now_ns = cache::now_ns();
        let mut hit = 0usize;
        for i in 0..n as usize {
            let len = rmsgs[i].msg_len as usize;
            if rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC != 0 {
                stats[STAT_DROPPED] += 1;
                continue;
            }
            let (client, ip, port) = match client_of(&names[i]) {
                Some(c) => c,
                None => continue,
            };
            let q = &inb[i][..len];
            let olen = match answer::answer(table.as_deref(), q, &client, &mut outb[ns]) {
                Outcome::Reply(olen) => {
                    let rcode = (outb[ns][3] & 0xf) as usize;
                    stats[type_index(reply_qtype(&outb[ns][..olen])) * 6 + rcode.min(5)] += 1;
                    qlog.offer(q, &outb[ns][..olen], &client, port, false);
                    olen
                }
                Outcome::Error(olen) => {
                    stats[if outb[ns][3] & 0xf == 4 { STAT_NOTIMP } else { STAT_FORMERR }] += 1;
                    qlog.offer(q, &outb[ns][..olen], &client, port, false);
                    olen
                }
                Outcome::Drop => {
                    stats[STAT_DROPPED] += 1;
                    continue;
                }
                Outcome::Forward if cache_hit(cache.answer(q, &mut outb[ns], now_ns, &mut cached), &mut hit) => {
                    qlog.offer(q, &outb[ns][..hit], &client, port, true);
                    hit
                }
                Outcome::ToJs | Outcome::Forward => {
                    if JS_INFLIGHT.load(Ordering::Relaxed) >= JS_QUEUE_MAX {
                        stats[STAT_JS_FULL] += 1;
                        continue;
                    }
                    JS_INFLIGHT.fetch_add(1, Ordering::Relaxed);
                    stats[STAT_TO_JS] += 1;
                    pending.push(Pending { data: q.to_vec(), ip: ip.to_string(), port, sock, at: t0 });
                    continue;
                }
            };
            // Queue the answer for this batch's sendmmsg, back to the address it came from.
            clients[ns] = client;
            iov_out[ns].iov_len = olen;
            smsgs[ns].msg_hdr.msg_name = &mut names[i] as *mut _ as *mut c_void;
            smsgs[ns].msg_hdr.msg_namelen = rmsgs[i].msg_hdr.msg_namelen;
            smsgs[ns].msg_hdr.msg_iov = &mut iov_out[ns];
            smsgs[ns].msg_hdr.msg_iovlen = 1;
            ns += 1;
        }
        let rate = RRL_RATE.load(Ordering::Relaxed);
        if rate > 0 && ns > 0 {
            let slip = RRL_SLIP.load(Ordering::Relaxed);
            let now_ms = epoch.elapsed().as_millis() as u64 + 1;
            let mut t = RRL.lock().unwrap_or_else(|e| e.into_inner());
            let mut kept = 0;
            for k in 0..ns {
                match rrl_check(&mut t, &clients[k], rate as u64, slip, now_ms) {
                    Verdict::Send => {}
                    Verdict::Drop => {
                        stats[STAT_RRL_DROP] += 1;
                        continue;
                    }
                    Verdict::Slip => {
                        stats[STAT_RRL_SLIP] += 1;
                        iov_out[k].iov_len = truncate_reply(&mut outb[k], iov_out[k].iov_len);
                    }
                }
                smsgs[kept] = smsgs[k];
                kept += 1;
            }
            ns = kept;
        }
        let mut sent = 0usize;
        while sent < ns {
            let r = unsafe { sendmmsg(fd, smsgs[sent..].as_mut_ptr(), (ns - sent) as u32, MSG_NOSIGNAL) };
            if r <= 0 {
                break; // send buffer full or peer gone: UDP may lose answers, the client retries
            }
            sent += r as usize;
        }
        if ns > 0 {
            let ns_elapsed = t0.elapsed().as_nanos() as u64;
            let b = BUCKETS_NS.iter().position(|&l| ns_elapsed <= l).unwrap_or(BUCKETS_NS.len());
            stats[STAT_LAT + b] += ns as u64;
            stats[STAT_LAT_SUM_NS] += ns_elapsed * ns as u64;
        }
        qlog.finish(t0.elapsed());
        if !pending.is_empty() {
            l.hand_off(pending);
        }
        for (k, v) in stats.iter_mut().enumerate() {
            if *v != 0 {
                STATS[k].fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        }
        cache::flush(&mut cached);
    }
}

/// For a match guard: whether the forwarding cache answered, its length into `len`.
fn cache_hit(r: Option<usize>, len: &mut usize) -> bool {
    *len = r.unwrap_or(0);
    r.is_some()
}
