//! The UDP relay thread on real loopback sockets, without Node: the client key (IPv6 flow label
//! ignored), many clients against the session bound (evictions counted, least recently used
//! first, never more sessions than the bound), clients whose bursts interleave in one batch
//! (each datagram on its own client's session, in order, and each reply back to its sender).

use super::*;
use crate::relay::set_backends;
use crate::testutil::*;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn cfg(max_sessions: u64) -> Config {
    Config { policy: 0, prefer_local: false, idle_ms: 60_000, connect_ms: 0, eject_ms: 10_000, attempts: 1, max_sessions }
}

/// An echo backend that answers `<the session socket's port>`; stops when the test ends.
fn echo_backend() -> (u16, Arc<AtomicBool>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let port = s.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(from.port().to_string().as_bytes(), from);
            }
        }
    });
    (port, stop)
}

/// Sends one datagram from `c` to the relay and returns the reply (the session's port).
fn ask(c: &UdpSocket, port: u16) -> String {
    c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        c.send_to(b"q", ("127.0.0.1", port)).unwrap();
        if let Ok(n) = c.recv(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    panic!("no reply through the UDP relay after 10 tries");
}

#[test]
fn the_client_key_is_its_address_and_port_not_the_flow_label() {
    let (a, alen) = sockaddr("2001:db8::1".parse().unwrap(), 53);
    let mut b = a;
    b.bytes[4..8].copy_from_slice(&[0, 1, 2, 3]); // sin6_flowinfo
    assert_eq!(key_of(&a, alen), key_of(&b, alen));
    let (c, clen) = sockaddr("2001:db8::1".parse().unwrap(), 54);
    assert_ne!(key_of(&a, alen), key_of(&c, clen));
    let (d, dlen) = sockaddr("127.0.0.1".parse().unwrap(), 53);
    let (e, elen) = sockaddr("127.0.0.2".parse().unwrap(), 53);
    assert_ne!(key_of(&d, dlen), key_of(&e, elen));
}

#[test]
fn many_clients_against_the_session_bound() {
    let (bport, stop) = echo_backend();
    let l = open(9001, "127.0.0.1", 0, cfg(8)).expect("UDP relay listener");
    set_backends(&l, &format!("b\t127.0.0.1\t{}\t1\t1\n", bport)).unwrap();
    let clients: Vec<UdpSocket> = (0..40).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let first: Vec<String> = clients.iter().map(|c| ask(c, l.port)).collect();
    assert_eq!(l.active.load(Ordering::Relaxed), 8, "never more sessions than the bound");
    assert_eq!(l.refused.load(Ordering::Relaxed), 32, "each client past the bound ended the oldest session");
    // The last eight are the sessions kept: they answer from the same session socket.
    for (i, c) in clients.iter().enumerate().skip(32) {
        assert_eq!(ask(c, l.port), first[i], "client {} kept its session", i);
    }
    assert_eq!(l.refused.load(Ordering::Relaxed), 32);
    // The first client's session was ended long ago: a new one, which ends the oldest again.
    assert_ne!(ask(&clients[0], l.port), first[0]);
    assert_eq!(l.refused.load(Ordering::Relaxed), 33);
    close_listener(&l);
    wait_until("the sessions to end with their listener", || l.active.load(Ordering::Relaxed) == 0);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn interleaved_bursts_keep_each_client_on_its_session_in_order() {
    // A backend that answers "<session port> <payload>" for every datagram.
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let bport = b.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((n, from)) = b.recv_from(&mut buf) {
                let reply = format!("{} {}", from.port(), String::from_utf8_lossy(&buf[..n]));
                let _ = b.send_to(reply.as_bytes(), from);
            }
        }
    });
    let l = open(9002, "127.0.0.1", 0, cfg(64)).expect("UDP relay listener");
    set_backends(&l, &format!("b\t127.0.0.1\t{}\t1\t1\n", bport)).unwrap();
    const CLIENTS: usize = 4;
    const EACH: usize = 40;
    let clients: Vec<UdpSocket> = (0..CLIENTS).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    // Round-robin over the clients, all sent before any reply is read: the relay's batches hold
    // datagrams of every client, interleaved.
    for i in 0..EACH {
        for (c, sock) in clients.iter().enumerate() {
            sock.send_to(format!("{}:{}", c, i).as_bytes(), ("127.0.0.1", l.port)).unwrap();
        }
    }
    let mut ports = Vec::new();
    for (c, sock) in clients.iter().enumerate() {
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 128];
        let mut got = Vec::new();
        while got.len() < EACH {
            match sock.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) => panic!("client {}: {} of {} replies, then {}", c, got.len(), EACH, e),
            }
        }
        let port = got[0].split(' ').next().unwrap().to_string();
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &format!("{} {}:{}", port, c, i), "client {}: reply {} is its own datagram, in order, on one session", c, i);
        }
        ports.push(port);
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), CLIENTS, "a session (its own socket) per client");
    close_listener(&l);
    stop.store(true, Ordering::Relaxed);
}
