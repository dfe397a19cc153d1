//! TCP relay for the load balancer (issue 6): epoll threads (one per core unless told otherwise,
//! `set_threads`) each own a listening socket per VIP:port (an SO_REUSEPORT group: the kernel
//! spreads new connections over the threads by their addresses; PODMAN_SWARM_DNS_RELAY_SHARED=1
//! shares one socket instead, each thread waiting on it with EPOLLEXCLUSIVE) and the connections
//! they accept. A thread accepts, picks a backend from the list JS pushes (JS keeps the registry, the policy
//! name and the options; the ejection bookkeeping mirrors src/lb/backends.ts), connects without
//! blocking and relays both directions. Per connection, per direction:
//!  - the first bytes go through read/write with one buffer shared by the thread (a request and
//!    its reply: no pipe to create), and once a direction has carried SPLICE_AFTER bytes it
//!    switches to splice(2) through its own pipe (bulk: no copy through user space);
//!  - backpressure: nothing more is read while the pipe or the leftover of a partial write is not
//!    flushed, so a slow reader holds at most a pipe (or a buffer) per direction here;
//!  - half-close: EOF from one side becomes shutdown(SHUT_WR) on the other once its bytes are out;
//!  - idle timeout, connect timeout, connect failure → next endpoint (up to `attempts`) and
//!    ejection, a connection limit shared by every relay listener.
//! Counters are atomics JS polls (relayStats): a callback per connection would cost the JS thread
//! what the relay saves.

use crate::sys::{bind, close, errno, getsockname, set_int, socket, sockaddr_storage, AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPV6_FREEBIND, IPV6_V6ONLY, IP_FREEBIND, SOL_SOCKET, SO_REUSEPORT};
use crate::udp::sockaddr;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy)]
pub(crate) struct EpollEvent {
    pub(crate) events: u32,
    pub(crate) data: u64,
}

extern "C" {
    pub(crate) fn epoll_create1(flags: c_int) -> c_int;
    pub(crate) fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut EpollEvent) -> c_int;
    fn epoll_wait(ep: c_int, evs: *mut EpollEvent, max: c_int, timeout: c_int) -> c_int;
    fn accept4(fd: c_int, addr: *mut c_void, len: *mut u32, flags: c_int) -> c_int;
    pub(crate) fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn splice(fd_in: c_int, off_in: *mut i64, fd_out: c_int, off_out: *mut i64, len: usize, flags: u32) -> isize;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    pub(crate) fn eventfd(init: u32, flags: c_int) -> c_int;
    pub(crate) fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
    pub(crate) fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int;
    pub(crate) fn send(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> isize;
    /// Sockets are read with recv, not read: the same for a stream socket, without the VFS
    /// layer's file-position lock and access notification on every request.
    fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize;
    fn sched_yield() -> c_int;
}

const SOCK_STREAM: c_int = 1;
pub(crate) const NONBLOCK: c_int = 0o4000;
pub(crate) const CLOEXEC: c_int = 0o2000000;
pub(crate) const EPOLL_CTL_ADD: c_int = 1;
const EPOLL_CTL_MOD: c_int = 3;
pub(crate) const EPOLLIN: u32 = 1;
const EPOLLOUT: u32 = 4;
const EPOLLERR: u32 = 8;
const EPOLLHUP: u32 = 0x10;
const EPOLLRDHUP: u32 = 0x2000;
pub(crate) const EPOLLET: u32 = 1 << 31;
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLL_CTL_DEL: c_int = 2;
const SPLICE_F_MOVE: u32 = 1;
const SPLICE_F_NONBLOCK: u32 = 2;
const SHUT_RD: c_int = 0;
const SHUT_WR: c_int = 1;
const SO_REUSEADDR: c_int = 2;
const IPPROTO_TCP: c_int = 6;
const TCP_NODELAY: c_int = 1;
const TCP_QUICKACK: c_int = 12;
const MSG_NOSIGNAL: c_int = 0x4000;
const MSG_MORE: c_int = 0x8000;
pub(crate) const EINTR: i32 = 4;
const ECONNABORTED: i32 = 103;
pub(crate) const EAGAIN: i32 = 11;
const EINPROGRESS: i32 = 115;
pub(crate) const EMFILE: i32 = 24;
pub(crate) const ENFILE: i32 = 23;

/// With PODMAN_SWARM_DNS_RELAY_SPLICE=1 a direction switches from read/write to splice after
/// this many bytes. Off by default: on loopback read/write relays bulk faster (splice stalls the
/// single relay thread at ~40% CPU, see bench/RESULTS.md), though with less CPU per byte.
const SPLICE_AFTER: u64 = 256 * 1024;
const BUF: usize = 256 * 1024;
const PIPE_MAX: usize = 1 << 20;
/// Pipe capacity asked for (1 MiB is what an unprivileged process may set by default); a bigger
/// pipe moves more per splice pair. It is also what a slow reader can hold here per direction.
const PIPE_SIZE: c_int = 1 << 20;
const F_SETPIPE_SZ: c_int = 1031;
pub(crate) const LISTENER_BIT: u64 = 1 << 63;
pub(crate) const WAKE_TOKEN: u64 = 1 << 62;

/// Delayed ACKs on both of a connection's sockets (TCP_QUICKACK off, as HAProxy's
/// tcp-smart-accept / tcp-smart-connect do, its default in HTTP mode): the ACK of a request
/// rides on the reply instead of being a packet of its own, and on loopback a packet's receive
/// work is paid by the process that sent it: one packet less per connection for the client and
/// one for the backend (+7–9 % new connections/s in bench/lb.mjs). The kernel still ACKs within
/// its delayed-ACK timeout if no reply comes. The backend socket gets it once connected (see
/// mark_connected). PODMAN_SWARM_DNS_RELAY_QUICKACK=1 keeps immediate ACKs.
fn delay_acks() -> bool {
    static ON: std::sync::Once = std::sync::Once::new();
    static mut VALUE: bool = true;
    unsafe {
        ON.call_once(|| VALUE = std::env::var("PODMAN_SWARM_DNS_RELAY_QUICKACK").map_or(true, |v| v != "1"));
        VALUE
    }
}

/// PODMAN_SWARM_DNS_RELAY_SHARED=1: one listening socket per VIP:port shared by the threads.
fn shared_listener() -> bool {
    static ON: std::sync::Once = std::sync::Once::new();
    static mut VALUE: bool = false;
    unsafe {
        ON.call_once(|| VALUE = std::env::var("PODMAN_SWARM_DNS_RELAY_SHARED").map_or(false, |v| v == "1"));
        VALUE
    }
}

/// Relay threads to start (0: one per core); read when the first listener starts them.
static THREADS: AtomicU64 = AtomicU64::new(0);

/// The number of TCP relay threads; has no effect once they run.
pub fn set_threads(n: u32) {
    THREADS.store(n as u64, Ordering::Relaxed);
}

fn thread_count() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n as usize,
    }
    .min(64)
}

fn splice_on() -> bool {
    static ON: std::sync::Once = std::sync::Once::new();
    static mut VALUE: bool = false;
    unsafe {
        ON.call_once(|| VALUE = std::env::var("PODMAN_SWARM_DNS_RELAY_SPLICE").map_or(false, |v| v == "1"));
        VALUE
    }
}

/// Longest busy-poll window after a batch of events, in µs (PODMAN_SWARM_DNS_RELAY_SPIN_US;
/// 0 turns it off). See `Spin`.
const SPIN_MAX_US: u64 = 100;

pub(crate) fn spin_max_us() -> u64 {
    std::env::var("PODMAN_SWARM_DNS_RELAY_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(SPIN_MAX_US)
}

/// Adaptive busy polling before the relay thread sleeps (as KVM's halt polling does for a
/// vCPU). A thread that sleeps in epoll_wait between every few events makes each sender pay a
/// wakeup of an idle CPU: an inter-processor interrupt, on a VM a VM exit too, charged to the
/// client or backend process that wrote (on the 2-core bench VM this cost the relay ~8% of the
/// new-connection rate against HAProxy, whose slower loop finds more events per wait). So
/// after a batch the thread polls (epoll_wait with a zero timeout, yielding the CPU between
/// polls to whatever else is runnable on it) for a window that grows while blocking waits turn
/// out short (events were coming anyway) and shrinks when they are long: a busy relay stays
/// awake, a quiet one (events further apart than the maximum window) does not poll at all.
pub(crate) struct Spin {
    max: std::time::Duration,
    window: std::time::Duration,
}

impl Spin {
    pub(crate) fn new(max_us: u64) -> Spin {
        Spin { max: std::time::Duration::from_micros(max_us), window: std::time::Duration::ZERO }
    }

    pub(crate) fn wait(&mut self, ep: c_int, evs: &mut [EpollEvent], timeout_ms: c_int) -> c_int {
        use std::time::{Duration, Instant};
        if !self.window.is_zero() {
            let until = Instant::now() + self.window;
            loop {
                let n = unsafe { epoll_wait(ep, evs.as_mut_ptr(), evs.len() as c_int, 0) };
                if n != 0 {
                    return n;
                }
                if Instant::now() >= until {
                    break;
                }
                unsafe { sched_yield() };
            }
        }
        let t0 = if self.max.is_zero() { None } else { Some(Instant::now()) };
        let n = unsafe { epoll_wait(ep, evs.as_mut_ptr(), evs.len() as c_int, timeout_ms) };
        if let Some(t0) = t0 {
            if n > 0 && t0.elapsed() <= self.max {
                // A longer window would have caught these events without sleeping.
                self.window = if self.window.is_zero() { self.max / 8 } else { (self.window * 2).min(self.max) };
            } else {
                self.window /= 2;
                if self.window < self.max / 8 {
                    self.window = Duration::ZERO;
                }
            }
        }
        n
    }
}

/// The call found nothing to do now (or was interrupted): not an error of the connection.
pub(crate) fn would_block(e: i32) -> bool {
    e == EAGAIN || e == EINTR
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Default)]
pub struct BackendStats {
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connect_failures: AtomicU64,
    pub ejections: AtomicU64,
    /// ms since the epoch (as JS's Date.now()) until which it is skipped.
    pub ejected_until: AtomicU64,
    streak: AtomicU64,
    /// It left the list: UDP sessions on it move elsewhere at their client's next datagram.
    pub gone: AtomicBool,
}

pub struct BackendEntry {
    pub id: String,
    pub(crate) addr: SocketAddr,
    weight: i64,
    local: bool,
    current: i64,
    pub stats: Arc<BackendStats>,
}

pub struct Config {
    /// 0 round-robin (smooth weighted), 1 least-connections, 2 power of two choices.
    pub policy: u32,
    pub prefer_local: bool,
    pub idle_ms: u64,
    pub connect_ms: u64,
    pub eject_ms: u64,
    pub attempts: u32,
    /// UDP: sessions one listener keeps at most (TCP's limit is MAX_CONNECTIONS, shared).
    pub max_sessions: u64,
}

pub struct Listener {
    pub id: u32,
    /// Its sockets: one per relay thread (SO_REUSEPORT), or one they share.
    pub(crate) fds: Vec<c_int>,
    /// Threads still holding a shared socket: the last to let go closes it.
    holders: AtomicU64,
    /// A UDP listener (relay_udp.rs's thread serves it), else TCP.
    pub udp: bool,
    pub port: u16,
    pub backends: Mutex<Vec<BackendEntry>>,
    /// Backends that left the list but still have open connections (reported until they drain).
    pub retired: Mutex<Vec<(String, Arc<BackendStats>)>>,
    pub cfg: Mutex<Config>,
    /// TCP: open connections; UDP: open sessions.
    pub active: AtomicU64,
    /// TCP: connections closed at the limit; UDP: sessions ended early for a new client at the
    /// session bound.
    pub refused: AtomicU64,
    closed: AtomicBool,
    rr_next: AtomicU64,
}

impl Listener {
    pub(crate) fn new(id: u32, fds: Vec<c_int>, port: u16, cfg: Config, udp: bool) -> Listener {
        Listener {
            id,
            fds,
            holders: AtomicU64::new(0),
            udp,
            port,
            backends: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
            cfg: Mutex::new(cfg),
            active: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            rr_next: AtomicU64::new(0),
        }
    }
}

pub static MAX_CONNECTIONS: AtomicU64 = AtomicU64::new(u64::MAX);
pub static ACTIVE: AtomicU64 = AtomicU64::new(0);

#[derive(Clone)]
enum Cmd {
    Add(Arc<Listener>),
    Close(u32, bool),
}

/// A relay thread's mailbox: commands, and the eventfd (in its epoll set as WAKE_TOKEN) that
/// wakes it for them.
pub(crate) struct Handle<C> {
    efd: c_int,
    cmds: Mutex<Vec<C>>,
}

impl<C> Handle<C> {
    pub(crate) fn send(&self, c: C) {
        self.cmds.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        let one: u64 = 1;
        unsafe { write(self.efd, &one as *const u64 as *const c_void, 8) };
    }

    /// The commands sent since the last call (the thread calls it on WAKE_TOKEN).
    pub(crate) fn take(&self) -> Vec<C> {
        let mut v = [0u8; 8];
        unsafe { read(self.efd, v.as_mut_ptr() as *mut c_void, 8) };
        std::mem::take(&mut *self.cmds.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Starts `n` threads named `name`, each running `run(its epoll fd, its handle, its index)`.
pub(crate) fn start_threads<C: Send + 'static>(name: &str, n: usize, run: fn(c_int, Arc<Handle<C>>, usize)) -> Result<Vec<Arc<Handle<C>>>, i32> {
    let mut out = Vec::new();
    for i in 0..n {
        let ep = unsafe { epoll_create1(CLOEXEC) };
        if ep < 0 {
            return Err(errno());
        }
        let efd = unsafe { eventfd(0, NONBLOCK | CLOEXEC) };
        if efd < 0 {
            let e = errno();
            unsafe { close(ep) };
            return Err(e);
        }
        let mut ev = EpollEvent { events: EPOLLIN | EPOLLET, data: WAKE_TOKEN };
        unsafe { epoll_ctl(ep, EPOLL_CTL_ADD, efd, &mut ev) };
        let h = Arc::new(Handle { efd, cmds: Mutex::new(Vec::new()) });
        let h2 = h.clone();
        std::thread::Builder::new().name(name.into()).spawn(move || run(ep, h2, i)).map_err(|_| 12)?;
        out.push(h);
    }
    Ok(out)
}

static HANDLES: Mutex<Vec<Arc<Handle<Cmd>>>> = Mutex::new(Vec::new());

fn handles() -> Result<Vec<Arc<Handle<Cmd>>>, i32> {
    let mut g = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_empty() {
        *g = start_threads("psdns-relay", thread_count(), |ep, h, i| Relay::new(ep, h, i).run())?;
    }
    Ok(g.clone())
}

fn send_cmd(c: Cmd) -> Result<(), i32> {
    for h in handles()? {
        h.send(c.clone());
    }
    Ok(())
}

fn close_all(fds: &[c_int]) {
    for fd in fds {
        unsafe { close(*fd) };
    }
}

/// Binds and listens on host:port (0: any free port), a socket per relay thread (or one they
/// share), and hands them to the threads.
pub fn open(id: u32, host: &str, port: u16, backlog: i32, cfg: Config) -> Result<Arc<Listener>, (i32, String)> {
    let ip: IpAddr = host.parse().map_err(|_| (22, format!("not an IP address: {}", host)))?;
    let threads = handles().map_err(|e| (e, "relay thread".to_string()))?.len();
    let n = if shared_listener() { 1 } else { threads };
    let v6 = ip.is_ipv6();
    let mut fds: Vec<c_int> = Vec::new();
    let mut bound = port;
    for _ in 0..n {
        let fd = unsafe { socket(if v6 { AF_INET6 } else { AF_INET }, SOCK_STREAM | NONBLOCK | CLOEXEC, 0) };
        if fd < 0 {
            let e = errno();
            close_all(&fds);
            return Err((e, "socket".into()));
        }
        fds.push(fd);
        set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if n > 1 {
            set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        }
        set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        if v6 {
            set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
            set_int(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
        } else {
            set_int(fd, IPPROTO_IP, IP_FREEBIND, 1);
        }
        // The first binds the port asked for (0: any); the others join it.
        let (sa, len) = sockaddr(ip, bound);
        if unsafe { bind(fd, &sa as *const _ as *const c_void, len) } != 0 || unsafe { listen(fd, backlog) } != 0 {
            let e = errno();
            close_all(&fds);
            return Err((e, "listen".into()));
        }
        let mut got = sockaddr_storage { bytes: [0; 128] };
        let mut glen = 128u32;
        unsafe { getsockname(fd, &mut got as *mut _ as *mut c_void, &mut glen) };
        bound = u16::from_be_bytes([got.bytes[2], got.bytes[3]]);
    }
    start(Listener::new(id, fds, bound, cfg, false), threads)
}

/// Hands a listener's sockets to the `threads` relay threads; on failure they are closed.
fn start(l: Listener, threads: usize) -> Result<Arc<Listener>, (i32, String)> {
    let l = Arc::new(l);
    l.holders.store(threads as u64, Ordering::Relaxed);
    if let Err(e) = send_cmd(Cmd::Add(l.clone())) {
        close_all(&l.fds);
        return Err((e, "relay thread".into()));
    }
    Ok(l)
}

/// Serves listening sockets an earlier process bound to host:port (systemd's descriptor store),
/// as many as `open` would bind; refuses them (and leaves them open) when they do not match. The
/// connections queued on them meanwhile are accepted at once: `backends` (set_backends' text)
/// are in place before that, so none of them meets an empty list.
pub fn adopt(id: u32, fds: Vec<c_int>, host: &str, port: u16, cfg: Config, backends: &str) -> Result<Arc<Listener>, (i32, String)> {
    let ip: IpAddr = host.parse().map_err(|_| (22, format!("not an IP address: {}", host)))?;
    let threads = handles().map_err(|e| (e, "relay thread".to_string()))?.len();
    let n = if shared_listener() { 1 } else { threads };
    if fds.len() != n {
        return Err((22, format!("stored {} socket(s), the relay serves {}", fds.len(), n)));
    }
    let bound = crate::stored::check(&fds, ip, port, true)?;
    let l = Listener::new(id, fds, bound, cfg, false);
    set_backends(&l, backends).map_err(|e| (22, e))?;
    start(l, threads)
}

/// Stops serving for a restart: the threads close their descriptors and connections but the
/// sockets are not shut down, so the copies systemd keeps go on queueing connections for the
/// next process.
pub fn let_go(l: &Listener) {
    l.closed.store(true, Ordering::Relaxed);
    let _ = send_cmd(Cmd::Close(l.id, true));
}

/// Stops listening at once (shutdown on a listening socket: its port can be bound again right
/// away, by the JS proxy too); the relay threads close the sockets and, with `force`, the
/// listener's open connections.
pub fn close_listener(l: &Listener, force: bool) {
    if !l.closed.swap(true, Ordering::Relaxed) {
        for fd in &l.fds {
            unsafe { shutdown(*fd, SHUT_RD) };
        }
    }
    let _ = send_cmd(Cmd::Close(l.id, force));
}

/// Replaces the backend list: an entry whose id and address stay keeps its counters; one that
/// leaves is retired (its open connections drain and keep counting).
pub fn set_backends(l: &Listener, spec: &str) -> Result<(), String> {
    let mut next: Vec<(String, SocketAddr, i64, bool)> = Vec::new();
    for line in spec.lines().filter(|x| !x.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 5 {
            return Err(format!("bad backend line {:?}", line));
        }
        let ip: IpAddr = f[1].parse().map_err(|_| format!("bad address {:?}", f[1]))?;
        let port: u16 = f[2].parse().map_err(|_| format!("bad port {:?}", f[2]))?;
        let weight: i64 = f[3].parse().map_err(|_| format!("bad weight {:?}", f[3]))?;
        next.push((f[0].to_string(), SocketAddr::new(ip, port), weight.max(1), f[4] == "1"));
    }
    let mut list = l.backends.lock().unwrap_or_else(|e| e.into_inner());
    let mut old: HashMap<String, BackendEntry> = list.drain(..).map(|b| (b.id.clone(), b)).collect();
    for (id, addr, weight, local) in next {
        match old.remove(&id) {
            Some(mut b) if b.addr == addr => {
                b.weight = weight;
                b.local = local;
                list.push(b);
            }
            prev => {
                if let Some(p) = prev {
                    retire(l, p);
                }
                list.push(BackendEntry { id, addr, weight, local, current: 0, stats: Arc::new(BackendStats::default()) });
            }
        }
    }
    for (_, b) in old {
        retire(l, b);
    }
    Ok(())
}

fn retire(l: &Listener, b: BackendEntry) {
    b.stats.gone.store(true, Ordering::Relaxed);
    let mut r = l.retired.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|(_, s)| s.active.load(Ordering::Relaxed) > 0);
    if b.stats.active.load(Ordering::Relaxed) > 0 {
        r.push((b.id, b.stats));
    }
}

/// Index of the backend for a new connection: untried, not ejected (unless all untried ones
/// are), local first when asked, then the policy (as src/lb/backends.ts and policy.ts).
pub(crate) fn pick(l: &Listener, list: &mut [BackendEntry], tried: &[Arc<BackendStats>], cfg: &Config, now: u64, rng: &mut u64) -> Option<usize> {
    let mut cands: Vec<usize> = (0..list.len()).filter(|&i| !tried.iter().any(|t| Arc::ptr_eq(t, &list[i].stats))).collect();
    if cands.is_empty() {
        return None;
    }
    if cands.iter().any(|&i| list[i].stats.ejected_until.load(Ordering::Relaxed) <= now) {
        cands.retain(|&i| list[i].stats.ejected_until.load(Ordering::Relaxed) <= now);
    }
    if cfg.prefer_local {
        let locals = cands.iter().filter(|&&i| list[i].local).count();
        if locals > 0 && locals < cands.len() {
            cands.retain(|&i| list[i].local);
        }
    }
    if cands.len() == 1 {
        return Some(cands[0]);
    }
    let load = |b: &BackendEntry| b.stats.active.load(Ordering::Relaxed) as f64 / b.weight as f64;
    match cfg.policy {
        1 => {
            let n = cands.len();
            let start = (l.rr_next.fetch_add(1, Ordering::Relaxed) as usize) % n;
            let mut best = cands[start];
            for k in 1..n {
                let c = cands[(start + k) % n];
                if load(&list[c]) < load(&list[best]) {
                    best = c;
                }
            }
            Some(best)
        }
        2 => {
            let total: i64 = cands.iter().map(|&i| list[i].weight).sum();
            let mut draw = || {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let mut x = (*rng % total as u64) as i64;
                for &i in &cands {
                    if x < list[i].weight {
                        return i;
                    }
                    x -= list[i].weight;
                }
                cands[cands.len() - 1]
            };
            let a = draw();
            let b = draw();
            Some(if load(&list[b]) < load(&list[a]) { b } else { a })
        }
        _ => {
            let mut total = 0;
            let mut best = cands[0];
            let mut best_v = i64::MIN;
            for &i in &cands {
                total += list[i].weight;
                list[i].current += list[i].weight;
                if list[i].current > best_v {
                    best_v = list[i].current;
                    best = i;
                }
            }
            list[best].current -= total;
            Some(best)
        }
    }
}

pub(crate) fn failed(s: &BackendStats, eject_ms: u64, now: u64) {
    s.connect_failures.fetch_add(1, Ordering::Relaxed);
    let n = s.streak.fetch_add(1, Ordering::Relaxed) + 1;
    let was_in = s.ejected_until.load(Ordering::Relaxed) <= now;
    s.ejected_until.store(now + eject_ms * (1u64 << (n - 1).min(3)), Ordering::Relaxed);
    if was_in {
        s.ejections.fetch_add(1, Ordering::Relaxed);
    }
}

struct Dir {
    pipe: [c_int; 2],
    /// Bytes in the pipe (splice mode) not yet written on.
    in_pipe: usize,
    /// Leftover of a partial write (read/write mode).
    left: Vec<u8>,
    total: u64,
    eof: bool,
    shut: bool,
    /// Reading stopped for backpressure: read again once the pending bytes are out.
    blocked: bool,
    /// The source signalled FIN or an error: from now on read to EOF/EAGAIN, never stop at a
    /// short read (that edge is spent; nothing would wake us for the FIN behind the data).
    hup: bool,
    /// Switch to splice(2) once SPLICE_AFTER bytes went through (see splice_on).
    splice: bool,
}

impl Dir {
    fn new(splice: bool) -> Dir {
        Dir { pipe: [-1, -1], in_pipe: 0, left: Vec::new(), total: 0, eof: false, shut: false, blocked: false, hup: false, splice }
    }
}

struct Conn {
    listener: Arc<Listener>,
    client: c_int,
    up: c_int,
    backend: Option<Arc<BackendStats>>,
    connected: bool,
    /// The client socket is in the epoll set (it joins after the first speculative read).
    client_watched: bool,
    /// EPOLLOUT is in a side's interest set (0 client, 1 backend): only while a connect is
    /// unconfirmed or a write is pending, so an idle writable socket brings no wakeups.
    out: [bool; 2],
    tried: Vec<Arc<BackendStats>>,
    started: u64,
    last: u64,
    dirs: [Dir; 2],
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

struct Relay {
    ep: c_int,
    h: Arc<Handle<Cmd>>,
    /// This thread's index among the relay threads: which of a listener's sockets is its own.
    index: usize,
    /// Listeners by id, with this thread's socket of each.
    listeners: HashMap<u32, (Arc<Listener>, c_int)>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    buf: Vec<u8>,
    /// Wall clock (ms since the epoch, as JS's Date.now()): ejections, which JS reads.
    now: u64,
    /// Monotonic ms: idle and connect timeouts (a clock step must not close every connection).
    mono: u64,
    base: std::time::Instant,
    rng: u64,
}

enum Step {
    Keep,
    Close,
}

/// A connection socket's events: always input and the peer's FIN, edge-triggered; writability
/// only while something waits for it (`out`).
fn interest(ep: c_int, op: c_int, fd: c_int, token: u64, out: bool) {
    let mut ev = EpollEvent { events: EPOLLIN | EPOLLRDHUP | EPOLLET | if out { EPOLLOUT } else { 0 }, data: token };
    unsafe { epoll_ctl(ep, op, fd, &mut ev) };
}

fn token(slot: usize, gen: u32, side: u64) -> u64 {
    ((gen as u64) << 32) | ((slot as u64) << 1) | side
}

impl Relay {
    fn new(ep: c_int, h: Arc<Handle<Cmd>>, index: usize) -> Relay {
        Relay { ep, h, index, listeners: HashMap::new(), slots: Vec::new(), free: Vec::new(), buf: vec![0u8; BUF], now: now_ms(), mono: 0, base: std::time::Instant::now(), rng: 0x9e37_79b9_7f4a_7c15 ^ now_ms() }
    }

    fn run(mut self) {
        let mut evs = vec![EpollEvent { events: 0, data: 0 }; 256];
        let mut last_sweep = 0;
        let mut spin = Spin::new(spin_max_us());
        loop {
            let n = spin.wait(self.ep, &mut evs, 250);
            self.now = now_ms();
            self.mono = self.base.elapsed().as_millis() as u64;
            if n < 0 && errno() != EINTR {
                eprintln!("podman-swarm-dns native relay: epoll_wait failed: {}", std::io::Error::last_os_error());
                return;
            }
            for ev in evs.iter().take(n.max(0) as usize) {
                let (events, data) = (ev.events, ev.data);
                if data == WAKE_TOKEN {
                    self.commands();
                } else if data & LISTENER_BIT != 0 {
                    self.accept((data & 0xffff_ffff) as u32);
                } else {
                    self.event(data, events);
                }
            }
            if self.mono.saturating_sub(last_sweep) >= 100 {
                last_sweep = self.mono;
                self.sweep();
            }
        }
    }

    fn commands(&mut self) {
        for c in self.h.take() {
            match c {
                Cmd::Add(l) => {
                    let fd = l.fds[self.index % l.fds.len()];
                    // A shared socket wakes one waiting thread per connection, not all of them.
                    let exclusive = if l.fds.len() == 1 && l.holders.load(Ordering::Relaxed) > 1 { EPOLLEXCLUSIVE } else { 0 };
                    let mut ev = EpollEvent { events: EPOLLIN | EPOLLET | exclusive, data: LISTENER_BIT | l.id as u64 };
                    unsafe { epoll_ctl(self.ep, EPOLL_CTL_ADD, fd, &mut ev) };
                    let id = l.id;
                    self.listeners.insert(id, (l, fd));
                    self.accept(id);
                }
                Cmd::Close(id, force) => {
                    if let Some((l, fd)) = self.listeners.remove(&id) {
                        if l.fds.len() > 1 {
                            unsafe { close(fd) };
                        } else {
                            let mut ev = EpollEvent { events: 0, data: 0 };
                            unsafe { epoll_ctl(self.ep, EPOLL_CTL_DEL, fd, &mut ev) };
                            if l.holders.fetch_sub(1, Ordering::Relaxed) == 1 {
                                unsafe { close(fd) };
                            }
                        }
                        if force {
                            for i in 0..self.slots.len() {
                                if self.slots[i].conn.as_ref().map_or(false, |c| Arc::ptr_eq(&c.listener, &l)) {
                                    self.drop_conn(i);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn accept(&mut self, id: u32) {
        let (l, lfd) = match self.listeners.get(&id) {
            Some((l, fd)) => (l.clone(), *fd),
            None => return,
        };
        loop {
            let fd = unsafe { accept4(lfd, null_mut(), null_mut(), NONBLOCK | CLOEXEC) };
            if fd < 0 {
                match errno() {
                    EINTR | ECONNABORTED => continue,
                    // EMFILE/ENFILE: the connection waits in the backlog; the sweep tries again.
                    _ => return,
                }
            }
            if ACTIVE.load(Ordering::Relaxed) >= MAX_CONNECTIONS.load(Ordering::Relaxed) {
                l.refused.fetch_add(1, Ordering::Relaxed);
                unsafe { close(fd) };
                continue;
            }
            // TCP_NODELAY comes from the listening socket (accepted sockets inherit it on Linux).
            if delay_acks() {
                set_int(fd, IPPROTO_TCP, TCP_QUICKACK, 0);
            }
            ACTIVE.fetch_add(1, Ordering::Relaxed);
            l.active.fetch_add(1, Ordering::Relaxed);
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.slots.push(Slot { gen: 0, conn: None });
                    self.slots.len() - 1
                }
            };
            self.slots[slot].conn = Some(Conn {
                listener: l.clone(),
                client: fd,
                up: -1,
                backend: None,
                connected: false,
                client_watched: false,
                out: [false, false],
                tried: Vec::new(),
                started: self.mono,
                last: self.mono,
                dirs: [Dir::new(splice_on()), Dir::new(splice_on())],
            });
            // Not in the epoll set yet: dial() reads the request first (on loopback it is often
            // already here), and adding the socket after that read reports whatever came since.
            self.dial(slot);
        }
    }

    /// Connects the slot's connection to the next backend; closes it when none is left.
    fn dial(&mut self, slot: usize) {
        loop {
            let c = match self.slots[slot].conn.as_mut() {
                Some(c) => c,
                None => return,
            };
            let l = c.listener.clone();
            let (attempts, eject_ms) = {
                let cfg = l.cfg.lock().unwrap_or_else(|e| e.into_inner());
                (cfg.attempts as usize, cfg.eject_ms)
            };
            let chosen = if c.tried.len() >= attempts.max(1) {
                None
            } else {
                let cfg = l.cfg.lock().unwrap_or_else(|e| e.into_inner());
                let mut list = l.backends.lock().unwrap_or_else(|e| e.into_inner());
                pick(&l, &mut list, &c.tried, &cfg, self.now, &mut self.rng).map(|i| (list[i].addr, list[i].stats.clone()))
            };
            let (addr, stats) = match chosen {
                Some(x) => x,
                None => return self.drop_conn(slot),
            };
            let fd = unsafe { socket(if addr.is_ipv6() { AF_INET6 } else { AF_INET }, SOCK_STREAM | NONBLOCK | CLOEXEC, 0) };
            if fd < 0 {
                // Out of descriptors is this host's problem, not the endpoint's: no ejection.
                return self.drop_conn(slot);
            }
            set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
            let (sa, len) = sockaddr(addr.ip(), addr.port());
            let r = unsafe { connect(fd, &sa as *const _ as *const c_void, len) };
            let e = if r == 0 { 0 } else { errno() };
            if r == 0 || e == EINPROGRESS {
                stats.active.fetch_add(1, Ordering::Relaxed);
                c.up = fd;
                c.backend = Some(stats);
                c.started = self.mono;
                return self.speculate(slot);
            }
            unsafe { close(fd) };
            if e == EMFILE || e == ENFILE {
                return self.drop_conn(slot);
            }
            failed(&stats, eject_ms, self.now);
            c.tried.push(stats);
        }
    }

    /// The current attempt failed (refused, timed out): eject that endpoint, try the next.
    fn attempt_failed(&mut self, slot: usize) {
        if let Some(c) = self.slots[slot].conn.as_mut() {
            if let Some(s) = c.backend.take() {
                s.active.fetch_sub(1, Ordering::Relaxed);
                let eject_ms = c.listener.cfg.lock().unwrap_or_else(|e| e.into_inner()).eject_ms;
                failed(&s, eject_ms, self.now);
                c.tried.push(s);
            }
            if c.up >= 0 {
                unsafe { close(c.up) };
                c.up = -1;
            }
        }
        self.dial(slot);
    }

    /// Right after connect(): on loopback the handshake has usually completed inside the call
    /// (it runs in softirq before connect returns) and the client's request is often already
    /// queued, so read the client and write to the backend now instead of waiting two epoll
    /// rounds (what HAProxy calls speculative I/O). A write that succeeds proves the connection;
    /// EAGAIN means it is still in progress (the bytes wait in `left` for the connect event);
    /// an error means the attempt failed (next endpoint, the bytes kept for it).
    fn speculate(&mut self, slot: usize) {
        enum Spec {
            Connected,
            Unknown,
            Failed,
            ClientGone,
        }
        let (spec, moved) = {
            let c = match self.slots[slot].conn.as_mut() {
                Some(c) => c,
                None => return,
            };
            let d = &mut c.dirs[0];
            let mut n = 0usize;
            let mut gone = false;
            if d.left.is_empty() && !d.eof {
                let r = unsafe { recv(c.client, self.buf.as_mut_ptr() as *mut c_void, self.buf.len(), 0) };
                if r > 0 {
                    n = r as usize;
                } else if r == 0 {
                    d.eof = true;
                } else {
                    gone = !would_block(errno());
                }
            }
            let (ptr, len) = if !d.left.is_empty() { (d.left.as_ptr(), d.left.len()) } else { (self.buf.as_ptr(), n) };
            if gone {
                (Spec::ClientGone, 0)
            } else if len == 0 {
                (Spec::Unknown, 0)
            } else {
                let w = unsafe { send(c.up, ptr as *const c_void, len, MSG_NOSIGNAL) };
                let e = if w < 0 { errno() } else { 0 };
                let w = w.max(0) as usize;
                if d.left.is_empty() {
                    d.left.extend_from_slice(&self.buf[w..n]);
                } else {
                    d.left.drain(..w);
                }
                d.total += w as u64;
                if e == 0 {
                    (Spec::Connected, w as u64)
                } else if would_block(e) {
                    (Spec::Unknown, 0)
                } else {
                    (Spec::Failed, 0)
                }
            }
        };
        match spec {
            Spec::ClientGone => self.drop_conn(slot),
            Spec::Failed => self.attempt_failed(slot),
            Spec::Connected => {
                let retry = self.slots[slot].conn.as_ref().map_or(false, |c| c.client_watched);
                self.mark_connected(slot);
                let c = self.slots[slot].conn.as_mut().unwrap();
                if let Some(s) = &c.backend {
                    s.bytes_out.fetch_add(moved, Ordering::Relaxed);
                }
                let pending = !c.dirs[0].left.is_empty();
                c.dirs[0].blocked = pending;
                self.watch(slot, pending);
                // A retry: the client's edges while connecting were not acted on (read them
                // now); an EOF read above: pass it on. Else nothing is pending: the sockets just
                // joined the epoll set, which reports what arrived since the read.
                let eof = self.slots[slot].conn.as_ref().map_or(false, |c| c.dirs[0].eof);
                if retry || eof || pending {
                    self.pump(slot, [retry, false], [false, false]);
                }
            }
            Spec::Unknown => self.watch(slot, true),
        }
    }

    /// Adds the new backend socket (and, the first time, the client) to the epoll set.
    fn watch(&mut self, slot: usize, up_out: bool) {
        let gen = self.slots[slot].gen;
        let c = match self.slots[slot].conn.as_mut() {
            Some(c) => c,
            None => return,
        };
        if !c.client_watched {
            c.client_watched = true;
            c.out[0] = false;
            interest(self.ep, EPOLL_CTL_ADD, c.client, token(slot, gen, 0), false);
        }
        c.out[1] = up_out;
        interest(self.ep, EPOLL_CTL_ADD, c.up, token(slot, gen, 1), up_out);
    }

    fn mark_connected(&mut self, slot: usize) {
        if let Some(c) = self.slots[slot].conn.as_mut() {
            // Only now, not before connect(): in delayed-ACK mode the kernel holds back the
            // handshake's last ACK (up to 200 ms) when the SYN-ACK comes, and a backend that
            // speaks first (MySQL, SMTP) would not see the connection until then.
            if delay_acks() {
                set_int(c.up, IPPROTO_TCP, TCP_QUICKACK, 0);
            }
            c.connected = true;
            c.last = self.mono;
            c.tried = Vec::new();
            if let Some(s) = &c.backend {
                s.connections.fetch_add(1, Ordering::Relaxed);
                s.ejected_until.store(0, Ordering::Relaxed);
                s.streak.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The connect-complete event: flush what the client sent meanwhile (its edges while
    /// connecting only set `blocked`), and read the backend if the event says it has bytes.
    fn connected(&mut self, slot: usize, up_readable: bool) {
        self.mark_connected(slot);
        self.pump(slot, [false, up_readable], [false, false]);
    }

    fn event(&mut self, data: u64, events: u32) {
        let slot = ((data & 0xffff_ffff) >> 1) as usize;
        let side = data & 1;
        let gen = (data >> 32) as u32;
        let c = match self.slots.get_mut(slot) {
            Some(s) if s.gen == gen => match s.conn.as_mut() {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
        if !c.connected {
            if side == 0 {
                // Bytes or a FIN from the client while connecting: read them once connected.
                c.dirs[0].blocked = true;
                if events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) != 0 {
                    c.dirs[0].hup = true;
                }
            }
            if side == 1 && events & (EPOLLOUT | EPOLLERR | EPOLLHUP) != 0 {
                // A refused or reset connect reports EPOLLERR (with HUP): no SO_ERROR call needed.
                if events & (EPOLLERR | EPOLLHUP) != 0 {
                    self.attempt_failed(slot);
                } else {
                    // A backend that answers and closes at once (its FIN here before we saw the
                    // connect complete) gets no further edge: remember the FIN, or the reply's
                    // end waits for the idle timeout.
                    if events & EPOLLRDHUP != 0 {
                        c.dirs[1].hup = true;
                    }
                    self.connected(slot, events & (EPOLLIN | EPOLLRDHUP) != 0);
                }
            }
            return;
        }
        let readable = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) != 0;
        let drain = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) != 0;
        // side 0 is the client: readable means client → backend (direction 0) has bytes. A FIN
        // or error on one side says nothing about the other side's receive queue (reading it
        // would only return EAGAIN): only the writes pending towards this side are retried.
        let (read, hup) = if side == 0 { ([readable, false], [drain, false]) } else { ([false, readable], [false, drain]) };
        self.pump(slot, read, hup);
    }

    /// Moves bytes on the directions an event concerns: `read[d]` — direction d's source is
    /// readable; every direction is looked at (a writable destination flushes what is pending).
    fn pump(&mut self, slot: usize, read: [bool; 2], hup: [bool; 2]) {
        let step = {
            let c = match self.slots[slot].conn.as_mut() {
                Some(c) => c,
                None => return,
            };
            let mut step = Step::Keep;
            for d in 0..2 {
                let (src, dst) = if d == 0 { (c.client, c.up) } else { (c.up, c.client) };
                let last = c.dirs[1 - d].shut;
                match move_bytes(&mut c.dirs[d], src, dst, &mut self.buf, read[d], hup[d], last) {
                    Ok(moved) => {
                        if moved > 0 {
                            c.last = self.mono;
                            if let Some(s) = &c.backend {
                                if d == 0 { &s.bytes_out } else { &s.bytes_in }.fetch_add(moved, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(()) => {
                        step = Step::Close;
                        break;
                    }
                }
            }
            if c.dirs[0].shut && c.dirs[1].shut {
                step = Step::Close;
            }
            if let Step::Keep = step {
                // A write left bytes behind: its destination must now report writability.
                let gen = self.slots[slot].gen;
                let c = self.slots[slot].conn.as_mut().unwrap();
                for d in 0..2 {
                    let side = 1 - d;
                    if !c.out[side] && (!c.dirs[d].left.is_empty() || c.dirs[d].in_pipe > 0) {
                        c.out[side] = true;
                        let fd = if side == 0 { c.client } else { c.up };
                        interest(self.ep, EPOLL_CTL_MOD, fd, token(slot, gen, side as u64), true);
                    }
                }
            }
            step
        };
        if let Step::Close = step {
            self.drop_conn(slot);
        }
    }

    fn drop_conn(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if let Some(c) = s.conn.take() {
            s.gen = s.gen.wrapping_add(1);
            for fd in [c.client, c.up, c.dirs[0].pipe[0], c.dirs[0].pipe[1], c.dirs[1].pipe[0], c.dirs[1].pipe[1]].iter() {
                if *fd >= 0 {
                    unsafe { close(*fd) };
                }
            }
            if let Some(b) = &c.backend {
                b.active.fetch_sub(1, Ordering::Relaxed);
            }
            c.listener.active.fetch_sub(1, Ordering::Relaxed);
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
            self.free.push(slot);
        }
    }

    /// Idle and connect timeouts; accepts that EMFILE held back.
    fn sweep(&mut self) {
        let ids: Vec<u32> = self.listeners.keys().copied().collect();
        for id in ids {
            self.accept(id);
        }
        for i in 0..self.slots.len() {
            let (connected, started, last, idle, connect) = match &self.slots[i].conn {
                Some(c) => {
                    let cfg = c.listener.cfg.lock().unwrap_or_else(|e| e.into_inner());
                    (c.connected, c.started, c.last, cfg.idle_ms, cfg.connect_ms)
                }
                None => continue,
            };
            if !connected && self.mono.saturating_sub(started) >= connect {
                self.attempt_failed(i);
            } else if connected && self.mono.saturating_sub(last) >= idle {
                self.drop_conn(i);
            }
        }
    }
}

/// Moves what it can from `src` to `dst` without blocking; Ok(bytes written on), Err on a broken
/// connection. A direction's EOF is passed on as shutdown(SHUT_WR) once its bytes are out.
/// `readable`: the event said `src` has something (else only `dst` became writable, and nothing
/// is read unless an earlier read stopped for backpressure). `hup`: the event signalled a FIN or
/// an error on `src`. `last`: the other direction has already ended.
fn move_bytes(d: &mut Dir, src: c_int, dst: c_int, buf: &mut [u8], readable: bool, hup: bool, last: bool) -> Result<u64, ()> {
    let mut moved = 0u64;
    d.hup |= hup;
    let drain = d.hup;
    if d.shut {
        return Ok(0);
    }
    let mut can_read = readable || d.blocked;
    if !can_read && d.in_pipe == 0 && d.left.is_empty() && !d.eof {
        return Ok(0); // a writable edge with nothing to write: no system call
    }
    loop {
        let mut progress = false;
        if d.pipe[0] < 0 && d.left.is_empty() && d.total >= SPLICE_AFTER && d.splice {
            let mut p = [-1; 2];
            if unsafe { pipe2(p.as_mut_ptr(), NONBLOCK | CLOEXEC) } == 0 {
                unsafe { fcntl(p[0], F_SETPIPE_SZ, PIPE_SIZE) };
                d.pipe = p;
            }
        }
        if d.pipe[0] >= 0 {
            if !d.eof && can_read {
                let n = unsafe { splice(src, null_mut(), d.pipe[1], null_mut(), PIPE_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK) };
                if n > 0 {
                    d.in_pipe += n as usize;
                    progress = true;
                } else if n == 0 {
                    d.eof = true;
                } else {
                    if !would_block(errno()) {
                        return Err(());
                    }
                    // EAGAIN with bytes in the pipe may mean the pipe is full: read again once
                    // they are out. With an empty pipe it means the socket is drained.
                    d.blocked = d.in_pipe > 0;
                    can_read = d.blocked;
                }
            }
            if d.in_pipe > 0 {
                let n = unsafe { splice(d.pipe[0], null_mut(), dst, null_mut(), d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK) };
                if n > 0 {
                    d.in_pipe -= n as usize;
                    d.total += n as u64;
                    moved += n as u64;
                    progress = true;
                } else if n < 0 && !would_block(errno()) {
                    return Err(());
                } else if n < 0 {
                    d.blocked = true;
                }
            }
        } else {
            if !d.left.is_empty() {
                let n = unsafe { send(dst, d.left.as_ptr() as *const c_void, d.left.len(), MSG_NOSIGNAL) };
                if n > 0 {
                    d.left.drain(..n as usize);
                    d.total += n as u64;
                    moved += n as u64;
                    progress = true;
                } else if n < 0 && !would_block(errno()) {
                    return Err(());
                }
            }
            if d.left.is_empty() && !d.eof && can_read {
                let n = unsafe { recv(src, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
                if n > 0 {
                    let n = n as usize;
                    progress = true;
                    // The source's FIN is already here and this read took what preceded it: the
                    // next read returns EOF and the shutdown (or close) that follows pushes these
                    // bytes out with the FIN in the same segment (one packet and ACK fewer).
                    let more = if drain && n < buf.len() { MSG_MORE } else { 0 };
                    let w = unsafe { send(dst, buf.as_ptr() as *const c_void, n, MSG_NOSIGNAL | more) };
                    let w = if w < 0 {
                        if !would_block(errno()) {
                            return Err(());
                        }
                        0
                    } else {
                        w as usize
                    };
                    d.total += w as u64;
                    moved += w as u64;
                    if w < n {
                        d.left.extend_from_slice(&buf[w..n]);
                        d.blocked = true;
                    } else if n < buf.len() && !drain {
                        // A short read took all there was; new bytes bring a new edge.
                        d.blocked = false;
                        can_read = false;
                    }
                } else if n == 0 {
                    d.eof = true;
                } else {
                    if !would_block(errno()) {
                        return Err(());
                    }
                    d.blocked = false;
                    can_read = false;
                }
            }
        }
        if d.eof && d.in_pipe == 0 && d.left.is_empty() {
            // `last`: the other direction is done too, and the close that follows sends the FIN
            // (both receive queues are read to EOF, so it is a FIN, not a reset).
            if !last {
                unsafe { shutdown(dst, SHUT_WR) };
            }
            d.shut = true;
            return Ok(moved);
        }
        if !progress {
            return Ok(moved);
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
