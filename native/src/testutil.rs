//! Helpers for the crate's unit tests (`cargo test`, run by `npm test` through
//! test/native/cargo.test.ts). A module's tests live next to it in `<module>_tests.rs`, declared at
//! the end of the module as a child (so they reach its private items):
//!
//!     #[cfg(test)]
//!     #[path = "<module>_tests.rs"]
//!     mod tests;
//!
//! Tests use real sockets on loopback; every wait is bounded (a hang becomes a failure naming
//! what it waited for).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(10);

/// Polls `f` every 10 ms until it holds; panics naming `what` after HANG.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + HANG;
    while !f() {
        if Instant::now() > end {
            panic!("timed out after {:?} waiting for {}", HANG, what);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tests that share process-wide state (the relay thread's connection count and limit) take this
/// lock; a test that panicked while holding it does not fail the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocking reads and writes that give up after HANG.
pub fn bounded(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(HANG)).unwrap();
    s.set_write_timeout(Some(HANG)).unwrap();
    s
}

/// A connected loopback TCP pair: (the connecting side, the accepted side), both `bounded`.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (bounded(c), bounded(s))
}

/// Everything until EOF; panics on a timeout or an error (a reset is not an EOF).
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap_or_else(|e| panic!("reading to EOF: {} after {} bytes", e, out.len()));
    out
}

/// `n` bytes that differ from a shifted copy of themselves (a lost or repeated chunk shows).
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A loopback server that runs `serve` on every connection it accepts (one thread each) until
/// the test process ends; returns its port.
pub fn server(serve: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(bounded(s)));
        }
    });
    port
}

/// Reads to EOF, then writes back what it read reversed and closes (a reply that only comes
/// after the client's FIN: the connection must stay open the other way).
pub fn reverse_after_eof(mut s: TcpStream) {
    let mut got = Vec::new();
    if s.read_to_end(&mut got).is_ok() {
        got.reverse();
        let _ = s.write_all(&got);
        let _ = s.shutdown(Shutdown::Write);
    }
}

/// Echoes until EOF, then closes.
pub fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
