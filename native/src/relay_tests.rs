//! The relay's state machine on real loopback sockets, without Node:
//! - the choice of a backend: `pick` (policies, ejection, prefer-local, tried ones), `failed`
//!   (ejection back-off), `set_backends` (counters kept, busy ones retired, bad lines refused);
//! - one direction's bytes: `move_bytes` in read/write and splice mode (byte for byte, bounded
//!   buffering while the destination is full, EOF passed on as a shutdown, a broken destination);
//! - whole connections through the relay thread (`open`, as the N-API face calls it): both ways
//!   with half-close, refused and timed-out connects moving to the next endpoint, no endpoint
//!   left, the idle timeout, the connection limit, closing a listener with and without force, a
//!   backend that answers and closes at once.

use super::*;
use crate::testutil::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::AtomicU32;

fn cfg(policy: u32) -> Config {
    Config { policy, prefer_local: false, idle_ms: 60_000, connect_ms: 5_000, eject_ms: 10_000, attempts: 3, max_sessions: u64::MAX }
}

/// A listener without a socket, for the choice logic alone.
fn bare(c: Config) -> Listener {
    Listener::new(0, vec![-1], 0, c, false)
}

/// One line of the backend list JS sends (src/lb/native-tcp-proxy.ts).
fn line(id: &str, port: u16, weight: i64, local: bool) -> String {
    format!("{}\t127.0.0.1\t{}\t{}\t{}\n", id, port, weight, if local { 1 } else { 0 })
}

fn stats_of(l: &Listener, id: &str) -> Arc<BackendStats> {
    l.backends.lock().unwrap().iter().find(|b| b.id == id).map(|b| b.stats.clone()).expect("backend listed")
}

/// The ids of `n` picks at time `now`; with `hold` each pick stays an open connection.
fn picks(l: &Listener, n: usize, now: u64, hold: bool) -> String {
    let c = l.cfg.lock().unwrap();
    let mut list = l.backends.lock().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = String::new();
    for _ in 0..n {
        let i = pick(l, &mut list, &[], &c, now, &mut rng).expect("a backend");
        if hold {
            list[i].stats.active.fetch_add(1, Ordering::Relaxed);
        }
        out.push_str(&list[i].id);
    }
    out
}

#[test]
fn round_robin_is_smooth_and_weighted() {
    let l = bare(cfg(0));
    set_backends(&l, &(line("a", 1, 5, false) + &line("b", 2, 1, false) + &line("c", 3, 1, false))).unwrap();
    // Smooth weighted round-robin (as nginx): a's five turns spread out, not five in a row.
    assert_eq!(picks(&l, 14, 0, false), "aabacaaaabacaa");
}

#[test]
fn least_connections_goes_by_open_connections_per_weight() {
    let l = bare(cfg(1));
    set_backends(&l, &(line("a", 1, 2, false) + &line("b", 2, 1, false))).unwrap();
    let got = picks(&l, 6, 0, true);
    assert_eq!((got.matches('a').count(), got.matches('b').count()), (4, 2), "picks {}", got);
    // b's connections close: every next one goes to b until it is as loaded as a.
    stats_of(&l, "b").active.store(0, Ordering::Relaxed);
    assert_eq!(picks(&l, 2, 0, true), "bb");
}

#[test]
fn two_choices_takes_the_less_loaded_of_its_draws() {
    let l = bare(cfg(2));
    set_backends(&l, &(line("idle", 1, 1, false) + &line("busy", 2, 1, false))).unwrap();
    stats_of(&l, "busy").active.store(100, Ordering::Relaxed);
    let got = picks(&l, 200, 0, false);
    // "busy" only when both draws were "busy" (about one in four).
    let busy = got.matches("busy").count();
    assert!(busy < 100, "busy picked {} times of 200", busy);
}

#[test]
fn ejected_and_tried_backends_are_skipped() {
    let l = bare(cfg(0));
    set_backends(&l, &(line("a", 1, 1, false) + &line("b", 2, 1, false))).unwrap();
    let a = stats_of(&l, "a");
    a.ejected_until.store(1_000, Ordering::Relaxed);
    assert_eq!(picks(&l, 3, 999, false), "bbb", "a is ejected until 1000");
    assert_eq!(picks(&l, 2, 1_000, false).len(), 2);
    stats_of(&l, "b").ejected_until.store(5_000, Ordering::Relaxed);
    let both = picks(&l, 4, 999, false);
    assert!(both.contains('a') && both.contains('b'), "all ejected: all are candidates again ({})", both);
    // A connection's earlier attempts are not tried again; none left: no backend.
    let c = l.cfg.lock().unwrap();
    let mut list = l.backends.lock().unwrap();
    let mut rng = 1u64;
    let i = pick(&l, &mut list, &[a.clone()], &c, 0, &mut rng).unwrap();
    assert_eq!(list[i].id, "b");
    let tried = vec![a, list[i].stats.clone()];
    assert!(pick(&l, &mut list, &tried, &c, 0, &mut rng).is_none());
}

#[test]
fn prefer_local_keeps_to_local_backends_while_there_are_any() {
    let mut c = cfg(0);
    c.prefer_local = true;
    let l = bare(c);
    set_backends(&l, &(line("r", 1, 1, false) + &line("l", 2, 1, true))).unwrap();
    assert_eq!(picks(&l, 3, 0, false), "lll");
    stats_of(&l, "l").ejected_until.store(100, Ordering::Relaxed);
    assert_eq!(picks(&l, 2, 0, false), "rr", "the local one is ejected");
}

#[test]
fn a_failing_backend_is_ejected_for_longer_each_time_up_to_eight_times() {
    let s = BackendStats::default();
    let mut until = Vec::new();
    for now in [1_000u64, 1_000, 1_000, 1_000, 1_000].iter() {
        failed(&s, 100, *now);
        until.push(s.ejected_until.load(Ordering::Relaxed) - now);
    }
    assert_eq!(until, vec![100, 200, 400, 800, 800]);
    assert_eq!(s.connect_failures.load(Ordering::Relaxed), 5);
    assert_eq!(s.ejections.load(Ordering::Relaxed), 1, "one ejection while it stays ejected");
    failed(&s, 100, 10_000);
    assert_eq!(s.ejections.load(Ordering::Relaxed), 2, "failing again after it came back: a new ejection");
}

#[test]
fn a_new_backend_list_keeps_counters_and_retires_busy_backends() {
    let l = bare(cfg(0));
    set_backends(&l, &(line("a", 1, 1, false) + &line("b", 2, 1, false) + &line("idle", 3, 1, false))).unwrap();
    let (a, b) = (stats_of(&l, "a"), stats_of(&l, "b"));
    a.connections.store(7, Ordering::Relaxed);
    b.active.store(2, Ordering::Relaxed);
    // a: same address, new weight; b: moved to another port; idle: gone; c: new.
    set_backends(&l, &(line("a", 1, 9, true) + &line("b", 4, 1, false) + &line("c", 5, 1, false))).unwrap();
    assert!(Arc::ptr_eq(&stats_of(&l, "a"), &a), "same id and address: same counters");
    assert_eq!(l.backends.lock().unwrap().iter().map(|x| (x.id.as_str(), x.weight, x.local)).collect::<Vec<_>>(), vec![("a", 9, true), ("b", 1, false), ("c", 1, false)]);
    assert!(!Arc::ptr_eq(&stats_of(&l, "b"), &b), "another address: new counters");
    let retired: Vec<String> = l.retired.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(retired, vec!["b".to_string()], "the old b drains (2 open), the idle one is forgotten");
    b.active.store(0, Ordering::Relaxed);
    set_backends(&l, "").unwrap();
    let retired: Vec<String> = l.retired.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
    assert!(!retired.contains(&"b".to_string()), "drained ones are dropped on the next change");
}

#[test]
fn a_bad_backend_list_is_refused_and_changes_nothing() {
    let l = bare(cfg(0));
    set_backends(&l, &line("a", 1, 1, false)).unwrap();
    for (spec, err) in [("x\t127.0.0.1\t80\t1\n", "bad backend line"), ("x\tnot-an-ip\t80\t1\t0\n", "bad address"), ("x\t127.0.0.1\t70000\t1\t0\n", "bad port"), ("x\t127.0.0.1\t80\theavy\t0\n", "bad weight")].iter() {
        let e = set_backends(&l, spec).unwrap_err();
        assert!(e.contains(err), "{:?}: {}", spec, e);
    }
    assert_eq!(picks(&l, 1, 0, false), "a");
    set_backends(&l, &line("z", 1, 0, false)).unwrap();
    assert_eq!(l.backends.lock().unwrap()[0].weight, 1, "weight 0 counts as 1");
}

/// One direction between two real TCP connections: bytes written to `src_peer` go through the
/// relay's end `src`, `move_bytes`, its end `dst`, and arrive at `dst_peer`.
struct Way {
    src_peer: TcpStream,
    src: TcpStream,
    dst: TcpStream,
    dst_peer: TcpStream,
    d: Dir,
    buf: Vec<u8>,
}

impl Way {
    fn new(splice: bool) -> Way {
        let (src_peer, src) = tcp_pair();
        let (dst, dst_peer) = tcp_pair();
        src.set_nonblocking(true).unwrap();
        dst.set_nonblocking(true).unwrap();
        Way { src_peer, src, dst, dst_peer, d: Dir::new(splice), buf: vec![0u8; BUF] }
    }

    /// What one epoll event on the source would make the relay do.
    fn step(&mut self, readable: bool) -> Result<u64, ()> {
        move_bytes(&mut self.d, self.src.as_raw_fd(), self.dst.as_raw_fd(), &mut self.buf, readable, false, false)
    }

    /// Steps until the EOF has been passed on; returns what `dst_peer` received.
    fn run_to_end(mut self, sent: std::thread::JoinHandle<()>) -> (Vec<u8>, Dir) {
        let mut peer = self.dst_peer.try_clone().unwrap();
        let got = std::thread::spawn(move || read_to_eof(&mut peer));
        wait_until("the source's EOF to be passed on", || {
            self.step(true).expect("no error on a healthy connection");
            self.d.shut
        });
        sent.join().unwrap();
        (got.join().unwrap(), self.d)
    }
}

fn send_all(mut s: TcpStream, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    })
}

fn close_pipe(d: &Dir) {
    for fd in d.pipe.iter().filter(|fd| **fd >= 0) {
        unsafe { close(*fd) };
    }
}

#[test]
fn one_direction_arrives_byte_for_byte_and_its_eof_becomes_a_shutdown() {
    for &splice in [false, true].iter() {
        let w = Way::new(splice);
        let data = pattern(3 << 20, 1);
        let sent = send_all(w.src_peer.try_clone().unwrap(), data.clone());
        let (got, d) = w.run_to_end(sent);
        assert!(got == data, "splice {}: {} bytes of {} arrived, equal: {}", splice, got.len(), data.len(), got == data);
        assert_eq!(d.total, data.len() as u64);
        assert_eq!(d.pipe[0] >= 0, splice, "splice mode switches to a pipe after {} bytes", SPLICE_AFTER);
        close_pipe(&d);
    }
}

#[test]
fn a_full_destination_stops_reading_and_holds_at_most_one_buffer() {
    let mut w = Way::new(false);
    // Small kernel buffers on the destination, and nobody reading it.
    set_int(w.dst.as_raw_fd(), SOL_SOCKET, crate::sys::SO_SNDBUF, 16 << 10);
    set_int(w.dst_peer.as_raw_fd(), SOL_SOCKET, crate::sys::SO_RCVBUF, 16 << 10);
    let data = pattern(8 << 20, 2);
    let sent = send_all(w.src_peer.try_clone().unwrap(), data.clone());
    wait_until("a write to be left over", || {
        w.step(true).unwrap();
        !w.d.left.is_empty()
    });
    let held = w.d.left.len();
    assert!(held <= BUF, "holds {} bytes", held);
    for _ in 0..100 {
        w.step(true).unwrap();
    }
    assert!(w.d.left.len() <= held && w.d.blocked, "no more reads while the leftover waits ({} bytes held)", w.d.left.len());
    // The reader reads again: everything arrives.
    let (got, d) = w.run_to_end(sent);
    assert!(got == data, "{} bytes of {} arrived", got.len(), data.len());
    close_pipe(&d);
}

#[test]
fn a_destination_that_went_away_breaks_the_connection() {
    let mut w = Way::new(false);
    drop(std::mem::replace(&mut w.dst_peer, tcp_pair().0));
    let chunk = pattern(64 << 10, 3);
    // The first write may still be accepted (the peer answers it with a reset); a later one fails.
    wait_until("the broken destination to be reported", || {
        w.src_peer.write_all(&chunk).unwrap();
        w.step(true).is_err()
    });
}

// Whole connections through the relay thread.

static NEXT_ID: AtomicU32 = AtomicU32::new(1 << 30);

/// A relay listener on 127.0.0.1 (any port) in front of `backends`.
fn relay_to(backends: &str, c: Config) -> Arc<Listener> {
    let l = open(NEXT_ID.fetch_add(1, Ordering::Relaxed), "127.0.0.1", 0, 128, c).unwrap_or_else(|(e, what)| panic!("relay open: {} errno {}", what, e));
    set_backends(&l, backends).unwrap();
    l
}

/// Closes the listener and its connections when the test ends, passed or not.
struct Closing(Arc<Listener>);

impl Drop for Closing {
    fn drop(&mut self) {
        close_listener(&self.0, true);
    }
}

fn dial(l: &Listener) -> TcpStream {
    bounded(TcpStream::connect(("127.0.0.1", l.port)).unwrap())
}

fn ask(c: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    c.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).unwrap();
    got
}

/// The client sees its connection end (EOF, or a reset when the relay had unread bytes).
fn ends(c: &mut TcpStream) {
    let mut b = [0u8; 1024];
    loop {
        match c.read(&mut b) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection did not end: {}", e),
        }
    }
}

fn settled(l: &Listener) {
    wait_until("the relay to count no open connection", || l.active.load(Ordering::Relaxed) == 0);
}

/// Port 1 on loopback: nothing listens there, so a connect is refused.
const REFUSED: u16 = 1;

#[test]
fn relays_both_ways_and_keeps_the_connection_open_after_the_client_fin() {
    let _s = serial();
    let l = relay_to(&line("b", server(reverse_after_eof), 1, false), cfg(0));
    let _c = Closing(l.clone());
    let mut c = dial(&l);
    let data = pattern(3 << 20, 4);
    let sent = send_all(c.try_clone().unwrap(), data.clone());
    let mut got = read_to_eof(&mut c);
    sent.join().unwrap();
    got.reverse();
    assert!(got == data, "{} bytes of {} came back", got.len(), data.len());
    drop(c);
    settled(&l);
    let b = stats_of(&l, "b");
    let counts = [&b.connections, &b.bytes_out, &b.bytes_in, &b.active].iter().map(|x| x.load(Ordering::Relaxed)).collect::<Vec<_>>();
    assert_eq!(counts, vec![1, data.len() as u64, data.len() as u64, 0], "connections, bytes out, bytes in, active");
}

#[test]
fn a_refused_endpoint_is_ejected_and_the_next_one_serves() {
    let _s = serial();
    let l = relay_to(&(line("dead", REFUSED, 1, false) + &line("live", server(echo), 1, false)), cfg(0));
    let _c = Closing(l.clone());
    for i in 0..3 {
        let mut c = dial(&l);
        assert_eq!(ask(&mut c, b"ping"), b"ping", "connection {}", i);
    }
    let dead = stats_of(&l, "dead");
    assert_eq!(dead.connect_failures.load(Ordering::Relaxed), 1, "tried once, then skipped while ejected");
    assert_eq!(dead.ejections.load(Ordering::Relaxed), 1);
    assert!(dead.ejected_until.load(Ordering::Relaxed) > now_ms());
    assert_eq!(stats_of(&l, "live").connections.load(Ordering::Relaxed), 3);
}

#[test]
fn with_no_endpoint_left_the_client_is_closed() {
    let _s = serial();
    let mut c2 = cfg(0);
    c2.attempts = 2;
    let l = relay_to(&(line("x", REFUSED, 1, false) + &line("y", REFUSED, 1, false) + &line("z", REFUSED, 1, false)), c2);
    let _c = Closing(l.clone());
    let mut c = dial(&l);
    let _ = c.write_all(b"hello");
    ends(&mut c);
    settled(&l);
    let failures: u64 = ["x", "y", "z"].iter().map(|id| stats_of(&l, id).connect_failures.load(Ordering::Relaxed)).sum();
    assert_eq!(failures, 2, "attempts = 2");
}

#[test]
fn a_connect_that_hangs_times_out_and_the_next_endpoint_serves() {
    let _s = serial();
    // A listener whose accept queue is full (backlog 0, one connection never accepted): the
    // kernel drops further SYNs, so a connect to it stays in progress.
    let fd = unsafe { socket(AF_INET, SOCK_STREAM | CLOEXEC, 0) };
    let (sa, len) = sockaddr("127.0.0.1".parse().unwrap(), 0);
    assert_eq!(unsafe { bind(fd, &sa as *const _ as *const c_void, len) }, 0);
    assert_eq!(unsafe { listen(fd, 0) }, 0);
    let mut got = sockaddr_storage { bytes: [0; 128] };
    let mut glen = 128u32;
    unsafe { getsockname(fd, &mut got as *mut _ as *mut c_void, &mut glen) };
    let hole = u16::from_be_bytes([got.bytes[2], got.bytes[3]]);
    let _filler = TcpStream::connect(("127.0.0.1", hole)).unwrap();
    let mut c2 = cfg(0);
    c2.connect_ms = 300;
    let l = relay_to(&(line("hole", hole, 1, false) + &line("live", server(echo), 1, false)), c2);
    let _c = Closing(l.clone());
    let mut c = dial(&l);
    assert_eq!(ask(&mut c, b"ping"), b"ping", "served by the next endpoint, the request kept");
    assert_eq!(stats_of(&l, "hole").connect_failures.load(Ordering::Relaxed), 1);
    drop(c);
    settled(&l);
    unsafe { close(fd) };
}

#[test]
fn an_idle_connection_is_closed() {
    let _s = serial();
    let mut c2 = cfg(0);
    c2.idle_ms = 300;
    let l = relay_to(&line("b", server(echo), 1, false), c2);
    let _c = Closing(l.clone());
    let mut c = dial(&l);
    assert_eq!(ask(&mut c, b"ping"), b"ping");
    ends(&mut c);
    settled(&l);
}

/// Sets the process-wide connection limit for one test and puts it back after.
struct Limit;

impl Limit {
    fn set(max: u64) -> Limit {
        MAX_CONNECTIONS.store(max, Ordering::Relaxed);
        Limit
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        MAX_CONNECTIONS.store(u64::MAX, Ordering::Relaxed);
    }
}

#[test]
fn the_connection_limit_closes_connections_beyond_it() {
    let _s = serial();
    wait_until("the connections of earlier tests to close", || ACTIVE.load(Ordering::Relaxed) == 0);
    let _limit = Limit::set(1);
    let l = relay_to(&line("b", server(echo), 1, false), cfg(0));
    let _c = Closing(l.clone());
    let mut first = dial(&l);
    assert_eq!(ask(&mut first, b"ping"), b"ping");
    let mut second = dial(&l);
    ends(&mut second);
    assert_eq!(l.refused.load(Ordering::Relaxed), 1);
    drop(first);
    settled(&l);
    let mut third = dial(&l);
    assert_eq!(ask(&mut third, b"again"), b"again", "room again after one closed");
}

#[test]
fn a_closed_listener_refuses_new_connections_and_lets_open_ones_drain_unless_forced() {
    let _s = serial();
    let port = server(echo);
    let (drain, force) = (relay_to(&line("b", port, 1, false), cfg(0)), relay_to(&line("b", port, 1, false), cfg(0)));
    let (_c1, _c2) = (Closing(drain.clone()), Closing(force.clone()));
    let (mut a, mut b) = (dial(&drain), dial(&force));
    assert_eq!(ask(&mut a, b"1"), b"1");
    assert_eq!(ask(&mut b, b"2"), b"2");
    close_listener(&drain, false);
    close_listener(&force, true);
    wait_until("the closed ports to refuse connections", || TcpStream::connect(("127.0.0.1", drain.port)).is_err() && TcpStream::connect(("127.0.0.1", force.port)).is_err());
    assert_eq!(ask(&mut a, b"still"), b"still", "without force the open connection goes on");
    ends(&mut b);
    settled(&force);
    drop(a);
    settled(&drain);
}

#[test]
fn a_backend_that_answers_and_closes_at_once_gives_every_client_the_reply_and_its_end() {
    let _s = serial();
    fn hello_bye(mut s: TcpStream) {
        let _ = s.write_all(b"hello");
    }
    let l = relay_to(&line("b", server(hello_bye), 1, false), cfg(0));
    let _c = Closing(l.clone());
    for i in 0..50 {
        let mut c = dial(&l);
        assert_eq!(read_to_eof(&mut c), b"hello", "connection {}", i);
    }
    settled(&l);
}
