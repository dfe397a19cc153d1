//! UDP VIPs for the load balancer: one thread owns the VIP:port sockets and their sessions, as
//! the JS proxy (src/lb/udp-proxy.ts) does. A session is one client address:port with its own
//! socket connected to the backend the policy picked (relay.rs's `pick`, as for TCP), so the
//! backend's replies go back to that client alone and a client's datagrams stay on one backend.
//! - A listener's sessions are kept in least-recently-used order (a list through the slots):
//!   the idle timeout pops them from the old end, and at the listener's session bound the oldest
//!   one ends for the new client (counted in `refused`). So the work per datagram is a hash
//!   look-up and a few index writes, whatever the number of sessions.
//! - A session whose backend left the list moves to another at its client's next datagram; an
//!   ICMP refusal (ECONNREFUSED on the connected socket) ejects the backend and ends the session.
//! - Sockets are level-triggered and each wakeup reads at most BUDGET datagrams from one socket,
//!   so a flood on one listener or session cannot starve the others.
//! - System calls, not the relay's own work, are the cost per datagram, so they are batched:
//!   datagrams from clients are read with recvmmsg and each session's share of a batch is sent
//!   with one sendmmsg; replies are read with recvmmsg from the session's socket, collected over
//!   the epoll round and sent back from each listener with sendmmsg.
//! A datagram that finds a full socket buffer is dropped, as the network would.

use crate::relay::{
    connect, epoll_ctl, failed, now_ms, pick, spin_max_us, start_threads, would_block, Config, EpollEvent, Handle, Listener, Spin, CLOEXEC, EINTR, EMFILE, ENFILE, EPOLLIN,
    EPOLL_CTL_ADD, LISTENER_BIT, NONBLOCK, WAKE_TOKEN,
};
use crate::relay::BackendStats;
use crate::sys::{bind, close, errno, getsockname, iovec, mmsghdr, msghdr, recvmmsg, sendmmsg, set_int, socket, sockaddr_storage, AF_INET, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPV6_FREEBIND, IPV6_V6ONLY, IP_FREEBIND, MSG_DONTWAIT, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE};
use crate::udp::sockaddr;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

const EPOLL_CTL_DEL: c_int = 2;
const ECONNREFUSED: i32 = 111;
/// Datagrams one recvmmsg takes from a socket (and most one sendmmsg sends). The buffers are
/// BATCH × 64 KiB each, but only the pages that datagrams touch are ever resident.
const BATCH: usize = 32;
/// Datagrams read from one socket per wakeup (the rest wait for the next round).
const BUDGET: usize = 64;
/// The largest UDP payload.
const DGRAM: usize = 65536;
const NONE: usize = usize::MAX;
/// Receive buffer of a listener's socket (the kernel doubles it for its bookkeeping).
const LISTENER_RCVBUF: c_int = 4 << 20;

const EMPTY_MSG: mmsghdr = mmsghdr {
    msg_hdr: msghdr { msg_name: std::ptr::null_mut(), msg_namelen: 0, msg_iov: std::ptr::null_mut(), msg_iovlen: 1, msg_control: std::ptr::null_mut(), msg_controllen: 0, msg_flags: 0 },
    msg_len: 0,
};

/// Sessions open on every UDP listener.
pub static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// A client's address as the kernel wrote it (family, port, address; for IPv6 the scope too).
type Key = [u8; 28];

/// FNV-1a: the keys are short and come from the kernel's own sockaddr; SipHash would cost more
/// than the rest of the datagram's handling.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

type Map = HashMap<Key, usize, BuildHasherDefault<Fnv>>;

fn key_of(sa: &sockaddr_storage, len: u32) -> Key {
    let mut k = [0u8; 28];
    let n = (len as usize).min(28);
    k[..n].copy_from_slice(&sa.bytes[..n]);
    if n >= 8 && u16::from_ne_bytes([k[0], k[1]]) as c_int == AF_INET6 {
        k[4..8].copy_from_slice(&[0; 4]); // the flow label is no part of the client's identity
    }
    k
}

struct Session {
    port: u32,
    key: Key,
    fd: c_int,
    client: sockaddr_storage,
    client_len: u32,
    backend: Arc<BackendStats>,
    last: u64,
    /// Neighbours in the listener's LRU list (slot indexes; NONE at the ends).
    older: usize,
    newer: usize,
}

struct Slot {
    gen: u32,
    s: Option<Session>,
}

/// A listener as the thread sees it: its sessions by client and in LRU order.
struct Port {
    l: Arc<Listener>,
    sessions: Map,
    oldest: usize,
    newest: usize,
}

enum Cmd {
    Add(Arc<Listener>),
    Close(u32, Arc<(Mutex<bool>, Condvar)>),
}

static HANDLE: Mutex<Option<Arc<Handle<Cmd>>>> = Mutex::new(None);

fn send_cmd(c: Cmd) -> Result<(), i32> {
    let mut g = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = start_threads("psdns-udp-relay", 1, |ep, h, _| UdpRelay::new(ep, h).run())?.pop();
    }
    if let Some(h) = g.as_ref() {
        h.send(c);
    }
    Ok(())
}

/// Binds host:port (0: any free port) for UDP and hands the socket to the thread.
pub fn open(id: u32, host: &str, port: u16, cfg: Config) -> Result<Arc<Listener>, (i32, String)> {
    let ip: IpAddr = host.parse().map_err(|_| (22, format!("not an IP address: {}", host)))?;
    let v6 = ip.is_ipv6();
    let fd = unsafe { socket(if v6 { AF_INET6 } else { AF_INET }, SOCK_DGRAM | NONBLOCK | CLOEXEC, 0) };
    if fd < 0 {
        return Err((errno(), "socket".into()));
    }
    // Room for the bursts that arrive while the thread waits for a CPU (as the DNS sockets have);
    // without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max.
    if !set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, LISTENER_RCVBUF) {
        set_int(fd, SOL_SOCKET, SO_RCVBUF, LISTENER_RCVBUF);
    }
    if v6 {
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
        set_int(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
    } else {
        set_int(fd, IPPROTO_IP, IP_FREEBIND, 1);
    }
    let (sa, len) = sockaddr(ip, port);
    if unsafe { bind(fd, &sa as *const _ as *const c_void, len) } != 0 {
        let e = errno();
        unsafe { close(fd) };
        return Err((e, "bind".into()));
    }
    let mut got = sockaddr_storage { bytes: [0; 128] };
    let mut glen = 128u32;
    unsafe { getsockname(fd, &mut got as *mut _ as *mut c_void, &mut glen) };
    let bound = u16::from_be_bytes([got.bytes[2], got.bytes[3]]);
    start(Listener::new(id, vec![fd], bound, cfg, true))
}

fn start(l: Listener) -> Result<Arc<Listener>, (i32, String)> {
    let l = Arc::new(l);
    if let Err(e) = send_cmd(Cmd::Add(l.clone())) {
        unsafe { close(l.fds[0]) };
        return Err((e, "relay thread".into()));
    }
    Ok(l)
}

/// Serves the UDP socket an earlier process bound to host:port (systemd's descriptor store);
/// refuses it (and leaves it open) when it does not match. Its datagrams queued meanwhile are
/// relayed as any others, to `backends` (set_backends' text), in place before the first is read.
pub fn adopt(id: u32, fds: Vec<c_int>, host: &str, port: u16, cfg: Config, backends: &str) -> Result<Arc<Listener>, (i32, String)> {
    let ip: IpAddr = host.parse().map_err(|_| (22, format!("not an IP address: {}", host)))?;
    if fds.len() != 1 {
        return Err((22, format!("stored {} sockets, the UDP relay serves 1", fds.len())));
    }
    let bound = crate::stored::check(&fds, ip, port, false)?;
    let l = Listener::new(id, fds, bound, cfg, true);
    crate::relay::set_backends(&l, backends).map_err(|e| (22, e))?;
    start(l)
}

/// Closes the listener and ends its sessions; returns once the thread has done so (the port can
/// be bound again, by the JS proxy too), or after two seconds at worst.
pub fn close_listener(l: &Listener) {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    if send_cmd(Cmd::Close(l.id, done.clone())).is_err() {
        return;
    }
    let (m, cv) = &*done;
    let g = m.lock().unwrap_or_else(|e| e.into_inner());
    let _ = cv.wait_timeout_while(g, std::time::Duration::from_secs(2), |d| !*d);
}

fn token(slot: usize, gen: u32) -> u64 {
    ((gen as u64) << 32) | slot as u64
}

struct UdpRelay {
    ep: c_int,
    h: Arc<Handle<Cmd>>,
    ports: HashMap<u32, Port>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// recvmmsg's buffers and client addresses.
    bufs: Vec<u8>,
    names: Vec<sockaddr_storage>,
    /// Replies waiting for the round's sendmmsg: their bytes, and (listener fd, client, length).
    replies: Vec<u8>,
    pending: Vec<(c_int, sockaddr_storage, u32, usize)>,
    now: u64,
    mono: u64,
    base: std::time::Instant,
    rng: u64,
}

impl UdpRelay {
    fn new(ep: c_int, h: Arc<Handle<Cmd>>) -> UdpRelay {
        UdpRelay {
            ep,
            h,
            ports: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            bufs: vec![0u8; BATCH * DGRAM],
            names: vec![sockaddr_storage { bytes: [0; 128] }; BATCH],
            replies: vec![0u8; BATCH * DGRAM],
            pending: Vec::with_capacity(BATCH),
            now: now_ms(),
            mono: 0,
            base: std::time::Instant::now(),
            rng: 0x2545_f491_4f6c_dd1d ^ now_ms(),
        }
    }

    fn run(mut self) {
        let mut evs = vec![EpollEvent { events: 0, data: 0 }; 256];
        let mut last_sweep = 0;
        let mut spin = Spin::new(spin_max_us());
        loop {
            let n = spin.wait(self.ep, &mut evs, 100);
            self.now = now_ms();
            self.mono = self.base.elapsed().as_millis() as u64;
            if n < 0 && errno() != EINTR {
                eprintln!("podman-swarm-dns native UDP relay: epoll_wait failed: {}", std::io::Error::last_os_error());
                return;
            }
            for ev in evs.iter().take(n.max(0) as usize) {
                let data = ev.data;
                if data == WAKE_TOKEN {
                    self.commands();
                } else if data & LISTENER_BIT != 0 {
                    self.from_clients((data & 0xffff_ffff) as u32);
                } else {
                    self.from_backend((data & 0xffff_ffff) as usize, (data >> 32) as u32);
                }
            }
            self.flush();
            if self.mono.saturating_sub(last_sweep) >= 50 {
                last_sweep = self.mono;
                self.sweep();
            }
        }
    }

    fn commands(&mut self) {
        self.flush(); // replies go out before a listener's socket may close
        for c in self.h.take() {
            match c {
                Cmd::Add(l) => {
                    let mut ev = EpollEvent { events: EPOLLIN, data: LISTENER_BIT | l.id as u64 };
                    unsafe { epoll_ctl(self.ep, EPOLL_CTL_ADD, l.fds[0], &mut ev) };
                    self.ports.insert(l.id, Port { l, sessions: Map::default(), oldest: NONE, newest: NONE });
                }
                Cmd::Close(id, done) => {
                    if let Some(p) = self.ports.get(&id) {
                        let slots: Vec<usize> = p.sessions.values().copied().collect();
                        for s in slots {
                            self.end(s);
                        }
                    }
                    if let Some(p) = self.ports.remove(&id) {
                        unsafe { close(p.l.fds[0]) };
                    }
                    let (m, cv) = &*done;
                    *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    cv.notify_all();
                }
            }
        }
    }

    /// Datagrams from clients on listener `id`: each to its session's backend.
    fn from_clients(&mut self, id: u32) {
        let fd = match self.ports.get(&id) {
            Some(p) => p.l.fds[0],
            None => return,
        };
        let mut iov = [iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        let mut msgs = [EMPTY_MSG; BATCH];
        let mut taken = 0;
        while taken < BUDGET {
            for i in 0..BATCH {
                iov[i] = iovec { iov_base: self.bufs[i * DGRAM..].as_mut_ptr() as *mut c_void, iov_len: DGRAM };
                msgs[i].msg_hdr.msg_name = &mut self.names[i] as *mut _ as *mut c_void;
                msgs[i].msg_hdr.msg_namelen = 128;
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            let n = unsafe { recvmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, MSG_DONTWAIT, std::ptr::null_mut()) };
            if n <= 0 {
                return;
            }
            let n = n as usize;
            // Each datagram's session first, then one sendmmsg per session for its datagrams of
            // the batch, in their order (clients' datagrams interleave; a bulk sender's whole
            // batch is one call). A session ended by a later datagram of the batch (at the
            // bound) has a new generation: what was meant for it is dropped.
            let mut dest = [(NONE, 0u32); BATCH];
            for k in 0..n {
                let name = self.names[k];
                let slot = self.session_for(id, &name, msgs[k].msg_hdr.msg_namelen);
                dest[k] = (slot, if slot == NONE { 0 } else { self.slots[slot].gen });
            }
            let mut order = [0usize; BATCH];
            for (k, o) in order.iter_mut().enumerate().take(n) {
                *o = k;
            }
            // Insertion sort by slot: stable (each session's datagrams keep their order), no
            // allocation, and a batch is mostly runs already.
            for i in 1..n {
                let mut j = i;
                while j > 0 && dest[order[j - 1]].0 > dest[order[j]].0 {
                    order.swap(j - 1, j);
                    j -= 1;
                }
            }
            let mut i = 0;
            while i < n {
                let mut end = i + 1;
                while end < n && dest[order[end]] == dest[order[i]] {
                    end += 1;
                }
                let (slot, gen) = dest[order[i]];
                if slot != NONE && self.slots[slot].gen == gen && self.slots[slot].s.is_some() {
                    let mut run = [(0usize, 0usize); BATCH];
                    for (r, &k) in order[i..end].iter().enumerate() {
                        run[r] = (k, msgs[k].msg_len as usize);
                    }
                    self.send_run(slot, &run[..end - i]);
                }
                i = end;
            }
            taken += n;
            if n < BATCH {
                return;
            }
        }
    }

    /// The session of client `name` on listener `id`, used now; opened if it has none (or its
    /// backend left the list). NONE: no backend, or no socket to be had (the datagram is dropped).
    fn session_for(&mut self, id: u32, name: &sockaddr_storage, name_len: u32) -> usize {
        let key = key_of(name, name_len);
        let mut slot = self.ports.get(&id).and_then(|p| p.sessions.get(&key).copied()).unwrap_or(NONE);
        if slot != NONE && self.slots[slot].s.as_ref().map_or(true, |s| s.backend.gone.load(Ordering::Relaxed)) {
            self.end(slot);
            slot = NONE;
        }
        if slot == NONE {
            slot = match self.open_session(id, key, name, name_len) {
                Some(s) => s,
                None => return NONE,
            };
        }
        self.touch(slot);
        slot
    }

    /// Sends the batch's datagrams `run` (index, length) on `slot`'s socket, in one call.
    fn send_run(&mut self, slot: usize, run: &[(usize, usize)]) {
        let mut iov = [iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        let mut msgs = [EMPTY_MSG; BATCH];
        for (m, &(k, len)) in run.iter().enumerate() {
            iov[m] = iovec { iov_base: self.bufs[k * DGRAM..].as_mut_ptr() as *mut c_void, iov_len: len };
            msgs[m].msg_hdr.msg_iov = &mut iov[m];
        }
        let s = self.slots[slot].s.as_ref().unwrap();
        let r = unsafe { sendmmsg(s.fd, msgs.as_mut_ptr(), run.len() as u32, MSG_DONTWAIT) };
        if r > 0 {
            s.backend.bytes_out.fetch_add(run[..r as usize].iter().map(|&(_, len)| len).sum::<usize>() as u64, Ordering::Relaxed);
        } else if r < 0 && errno() == ECONNREFUSED {
            self.refused(slot);
        }
    }

    fn open_session(&mut self, id: u32, key: Key, name: &sockaddr_storage, name_len: u32) -> Option<usize> {
        let l = self.ports.get(&id)?.l.clone();
        let (addr, stats, max, eject_ms): (SocketAddr, Arc<BackendStats>, u64, u64) = {
            let cfg = l.cfg.lock().unwrap_or_else(|e| e.into_inner());
            let mut list = l.backends.lock().unwrap_or_else(|e| e.into_inner());
            let i = pick(&l, &mut list, &[], &cfg, self.now, &mut self.rng)?;
            (list[i].addr, list[i].stats.clone(), cfg.max_sessions.max(1), cfg.eject_ms)
        };
        let full = self.ports.get(&id).map_or(false, |p| p.sessions.len() as u64 >= max);
        if full {
            let oldest = self.ports.get(&id).map_or(NONE, |p| p.oldest);
            if oldest != NONE {
                self.end(oldest);
                l.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        let fd = unsafe { socket(if addr.is_ipv6() { AF_INET6 } else { AF_INET }, SOCK_DGRAM | NONBLOCK | CLOEXEC, 0) };
        if fd < 0 {
            return None; // out of descriptors: the datagram is dropped
        }
        let (sa, len) = sockaddr(addr.ip(), addr.port());
        if unsafe { connect(fd, &sa as *const _ as *const c_void, len) } != 0 {
            let e = errno();
            unsafe { close(fd) };
            if e != EMFILE && e != ENFILE {
                failed(&stats, eject_ms, self.now);
            }
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, s: None });
                self.slots.len() - 1
            }
        };
        let mut ev = EpollEvent { events: EPOLLIN, data: token(slot, self.slots[slot].gen) };
        unsafe { epoll_ctl(self.ep, EPOLL_CTL_ADD, fd, &mut ev) };
        stats.active.fetch_add(1, Ordering::Relaxed);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        l.active.fetch_add(1, Ordering::Relaxed);
        SESSIONS.fetch_add(1, Ordering::Relaxed);
        self.slots[slot].s = Some(Session { port: id, key, fd, client: *name, client_len: name_len, backend: stats, last: self.mono, older: NONE, newer: NONE });
        if let Some(p) = self.ports.get_mut(&id) {
            p.sessions.insert(key, slot);
        }
        Some(slot)
    }

    /// Replies from a session's backend, back to its client from the listener's address: read
    /// with recvmmsg straight into the round's reply slots (a short batch means the socket is
    /// empty, so no read ends in EAGAIN unless the first does).
    fn from_backend(&mut self, slot: usize, gen: u32) {
        let (fd, port) = match self.slots.get(slot) {
            Some(Slot { gen: g, s: Some(s) }) if *g == gen => (s.fd, s.port),
            _ => return,
        };
        let lfd = match self.ports.get(&port) {
            Some(p) => p.l.fds[0],
            None => return,
        };
        let mut iov = [iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        let mut msgs = [EMPTY_MSG; BATCH];
        let mut taken = 0;
        while taken < BUDGET {
            if self.pending.len() == BATCH {
                self.flush();
            }
            let first = self.pending.len();
            let room = BATCH - first;
            for i in 0..room {
                iov[i] = iovec { iov_base: self.replies[(first + i) * DGRAM..].as_mut_ptr() as *mut c_void, iov_len: DGRAM };
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            let n = unsafe { recvmmsg(fd, msgs.as_mut_ptr(), room as u32, MSG_DONTWAIT, std::ptr::null_mut()) };
            if n < 0 {
                let e = errno();
                if e == ECONNREFUSED {
                    return self.refused(slot);
                }
                if would_block(e) {
                    break;
                }
                return self.end(slot);
            }
            let n = n as usize;
            let s = self.slots[slot].s.as_ref().unwrap();
            let mut bytes = 0;
            for m in msgs.iter().take(n) {
                self.pending.push((lfd, s.client, s.client_len, m.msg_len as usize));
                bytes += m.msg_len as u64;
            }
            s.backend.bytes_in.fetch_add(bytes, Ordering::Relaxed);
            taken += n;
            if n < room {
                break;
            }
        }
        if taken > 0 {
            self.touch(slot);
        }
    }

    /// Sends the collected replies: one sendmmsg per run of replies from the same listener. A
    /// full send buffer drops the rest (UDP may lose datagrams; the client retries).
    fn flush(&mut self) {
        let n = self.pending.len();
        if n == 0 {
            return;
        }
        let mut iov = [iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH];
        let mut msgs = [EMPTY_MSG; BATCH];
        for k in 0..n {
            let (_, ref client, clen, len) = self.pending[k];
            iov[k] = iovec { iov_base: self.replies[k * DGRAM..].as_mut_ptr() as *mut c_void, iov_len: len };
            msgs[k].msg_hdr.msg_name = client as *const _ as *mut c_void;
            msgs[k].msg_hdr.msg_namelen = clen;
            msgs[k].msg_hdr.msg_iov = &mut iov[k];
        }
        let mut start = 0;
        while start < n {
            let lfd = self.pending[start].0;
            let mut end = start + 1;
            while end < n && self.pending[end].0 == lfd {
                end += 1;
            }
            let mut sent = start;
            while sent < end {
                let r = unsafe { sendmmsg(lfd, msgs[sent..end].as_mut_ptr(), (end - sent) as u32, MSG_DONTWAIT) };
                if r <= 0 {
                    break;
                }
                sent += r as usize;
            }
            start = end;
        }
        self.pending.clear();
    }

    /// The backend refused (ICMP port unreachable): it is ejected and the session ends.
    fn refused(&mut self, slot: usize) {
        if let Some(s) = self.slots[slot].s.as_ref() {
            if let Some(p) = self.ports.get(&s.port) {
                let eject_ms = p.l.cfg.lock().unwrap_or_else(|e| e.into_inner()).eject_ms;
                failed(&s.backend, eject_ms, self.now);
            }
        }
        self.end(slot);
    }

    fn unlink(&mut self, slot: usize) {
        let (port, older, newer) = match self.slots[slot].s.as_ref() {
            Some(s) => (s.port, s.older, s.newer),
            None => return,
        };
        if older != NONE {
            self.slots[older].s.as_mut().unwrap().newer = newer;
        }
        if newer != NONE {
            self.slots[newer].s.as_mut().unwrap().older = older;
        }
        if let Some(p) = self.ports.get_mut(&port) {
            if p.oldest == slot {
                p.oldest = newer;
            }
            if p.newest == slot {
                p.newest = older;
            }
        }
    }

    /// Marks the session used now: it moves to the new end of its listener's list.
    fn touch(&mut self, slot: usize) {
        let port = match self.slots[slot].s.as_ref() {
            Some(s) => s.port,
            None => return,
        };
        let newest = self.ports.get(&port).map_or(NONE, |p| p.newest);
        if newest == slot {
            self.slots[slot].s.as_mut().unwrap().last = self.mono;
            return;
        }
        self.unlink(slot);
        {
            let s = self.slots[slot].s.as_mut().unwrap();
            s.last = self.mono;
            s.older = newest;
            s.newer = NONE;
        }
        if newest != NONE {
            self.slots[newest].s.as_mut().unwrap().newer = slot;
        }
        if let Some(p) = self.ports.get_mut(&port) {
            p.newest = slot;
            if p.oldest == NONE {
                p.oldest = slot;
            }
        }
    }

    fn end(&mut self, slot: usize) {
        self.unlink(slot);
        let st = &mut self.slots[slot];
        if let Some(s) = st.s.take() {
            st.gen = st.gen.wrapping_add(1);
            unsafe {
                let mut ev = EpollEvent { events: 0, data: 0 };
                epoll_ctl(self.ep, EPOLL_CTL_DEL, s.fd, &mut ev);
                close(s.fd);
            }
            s.backend.active.fetch_sub(1, Ordering::Relaxed);
            SESSIONS.fetch_sub(1, Ordering::Relaxed);
            if let Some(p) = self.ports.get_mut(&s.port) {
                p.l.active.fetch_sub(1, Ordering::Relaxed);
                if p.sessions.get(&s.key) == Some(&slot) {
                    p.sessions.remove(&s.key);
                }
            }
            self.free.push(slot);
        }
    }

    /// Ends the sessions idle for their listener's timeout: from the old end of each list, so
    /// only the expired ones are looked at.
    fn sweep(&mut self) {
        let ids: Vec<u32> = self.ports.keys().copied().collect();
        for id in ids {
            let idle = match self.ports.get(&id) {
                Some(p) => p.l.cfg.lock().unwrap_or_else(|e| e.into_inner()).idle_ms,
                None => continue,
            };
            loop {
                let oldest = self.ports.get(&id).map_or(NONE, |p| p.oldest);
                if oldest == NONE || self.mono.saturating_sub(self.slots[oldest].s.as_ref().map_or(0, |s| s.last)) < idle {
                    break;
                }
                self.end(oldest);
            }
        }
    }
}

#[cfg(test)]
#[path = "relay_udp_tests.rs"]
mod tests;
