//! Stored sockets on real loopback sockets, without Node: a relay listener that lets go for a
//! restart leaves copies of its sockets listening (as systemd's store holds them), a connection
//! and a datagram sent meanwhile wait in them and are relayed by the listener that adopts them;
//! the ordinary close shuts the socket down, copies included; sockets that do not fit are refused
//! and left open.

use crate::relay::{self, Config};
use crate::relay_udp;
use crate::testutil::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::raw::c_int;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
}

fn cfg() -> Config {
    Config { policy: 0, prefer_local: false, idle_ms: 60_000, connect_ms: 5_000, eject_ms: 10_000, attempts: 3, max_sessions: 1024 }
}

fn backend(port: u16) -> String {
    format!("b\t127.0.0.1\t{}\t1\t0\n", port)
}

/// Copies of a listener's sockets, as systemd keeps them.
fn copies(l: &relay::Listener) -> Vec<c_int> {
    l.fds.iter().map(|fd| unsafe { dup(*fd) }).collect()
}

/// Waits until the relay threads have dropped the listener (closed their descriptors).
fn released(l: &Arc<relay::Listener>) {
    wait_until("the relay threads to let the listener go", || Arc::strong_count(l) == 1);
}

#[test]
fn a_connection_made_during_a_restart_is_relayed_by_the_next_listener() {
    let _s = serial();
    let echo_port = server(echo);
    let old = relay::open(9001, "127.0.0.1", 0, 128, cfg()).unwrap();
    let port = old.port;
    let kept = copies(&old);
    relay::let_go(&old);
    released(&old);

    // Nobody serves the port now; the kernel queues the connection in the kept sockets.
    let mut c = bounded(TcpStream::connect(("127.0.0.1", port)).expect("the kept socket still listens"));
    c.write_all(b"sent during the restart").unwrap();

    // The backends are in place before the queued connection is accepted.
    let next = relay::adopt(9002, kept, "127.0.0.1", port, cfg(), &backend(echo_port)).unwrap();
    let mut got = [0u8; 23];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"sent during the restart");

    // The ordinary close shuts the socket down: a copy kept elsewhere stops listening too.
    let more = copies(&next);
    relay::close_listener(&next, true);
    released(&next);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "a shut-down socket refuses, even with a copy open");
    for fd in more {
        unsafe { close(fd) };
    }
}

#[test]
fn a_datagram_sent_during_a_restart_gets_its_reply() {
    let _s = serial();
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let old = relay_udp::open(9003, "127.0.0.1", 0, cfg()).unwrap();
    let port = old.port;
    let kept = copies(&old);
    relay_udp::close_listener(&old);

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client.send_to(b"one datagram", ("127.0.0.1", port)).unwrap();

    let next = relay_udp::adopt(9004, kept, "127.0.0.1", port, cfg(), &backend(echo_port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).expect("the reply to the queued datagram");
    assert_eq!(&buf[..n], b"one datagram");
    relay_udp::close_listener(&next);
}

#[test]
fn sockets_that_do_not_fit_are_refused_and_left_open() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = tcp.as_raw_fd();
    assert_eq!(mismatch_of(fd, "127.0.0.1", port, true), None);
    assert!(mismatch_of(fd, "127.0.0.1", port + 1, true).unwrap().contains("is bound to 127.0.0.1:"));
    assert!(mismatch_of(fd, "127.0.0.2", port, true).unwrap().contains("is bound to"));
    assert!(mismatch_of(fd, "::1", port, true).unwrap().contains("not an IPv6 socket"));
    assert!(mismatch_of(udp.as_raw_fd(), "127.0.0.1", udp.local_addr().unwrap().port(), true).unwrap().contains("not a TCP socket"));
    assert!(mismatch_of(fd, "127.0.0.1", port, false).unwrap().contains("not a UDP socket"));
    let unbound = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(mismatch_of(unbound.as_raw_fd(), "127.0.0.1", 0, true).unwrap().contains("not listening"));
    // Refused by the relay: the descriptor stays open for the caller to close.
    assert!(relay::adopt(9005, vec![fd; 65], "127.0.0.1", port, cfg(), "").is_err(), "more sockets than relay threads");
    assert!(relay_udp::adopt(9006, vec![fd], "127.0.0.1", port, cfg(), "").is_err());
    assert!(tcp.local_addr().is_ok(), "still open");
}

fn mismatch_of(fd: c_int, ip: &str, port: u16, stream: bool) -> Option<String> {
    super::mismatch(fd, ip.parse().unwrap(), port, stream)
}
