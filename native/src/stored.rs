//! Listening sockets an earlier process left (systemd's descriptor store passes them on): before
//! the relay serves one it must be what the configuration asks for now — the family, the type
//! (a listening TCP socket, or a UDP one) and the bound address and port. A socket that is not
//! is refused here, and the caller closes it and binds a new one.

use crate::sys::{getsockname, sockaddr_storage, AF_INET, AF_INET6, SOL_SOCKET};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::raw::{c_int, c_void};

const SO_TYPE: c_int = 3;
const SO_ACCEPTCONN: c_int = 30;
const SO_DOMAIN: c_int = 39;
const SOCK_STREAM: c_int = 1;
const SOCK_DGRAM: c_int = 2;
const F_GETFL: c_int = 3;
const F_SETFL: c_int = 4;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;
const O_NONBLOCK: c_int = 0o4000;

extern "C" {
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut u32) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int;
}

fn int_opt(fd: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut len = 4u32;
    if unsafe { getsockopt(fd, SOL_SOCKET, name, &mut v as *mut c_int as *mut c_void, &mut len) } != 0 {
        return None;
    }
    Some(v)
}

/// The address and port `fd` is bound to (None: not an IP socket).
fn bound(fd: c_int) -> Option<(IpAddr, u16)> {
    let mut sa = sockaddr_storage { bytes: [0; 128] };
    let mut len = 128u32;
    if unsafe { getsockname(fd, &mut sa as *mut _ as *mut c_void, &mut len) } != 0 {
        return None;
    }
    let b = &sa.bytes;
    let port = u16::from_be_bytes([b[2], b[3]]);
    match u16::from_ne_bytes([b[0], b[1]]) as c_int {
        AF_INET => Some((IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port)),
        AF_INET6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            Some((IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

/// Why `fd` cannot serve `ip`:`port` (a listening TCP socket when `stream`, else UDP), or None
/// when it can. `port` 0 accepts any port.
pub fn mismatch(fd: c_int, ip: IpAddr, port: u16, stream: bool) -> Option<String> {
    let family = if ip.is_ipv6() { AF_INET6 } else { AF_INET };
    if int_opt(fd, SO_DOMAIN) != Some(family) {
        return Some(format!("descriptor {} is not an IPv{} socket", fd, if ip.is_ipv6() { 6 } else { 4 }));
    }
    if int_opt(fd, SO_TYPE) != Some(if stream { SOCK_STREAM } else { SOCK_DGRAM }) {
        return Some(format!("descriptor {} is not a {} socket", fd, if stream { "TCP" } else { "UDP" }));
    }
    if stream && int_opt(fd, SO_ACCEPTCONN) != Some(1) {
        return Some(format!("descriptor {} is not listening", fd));
    }
    match bound(fd) {
        Some((a, p)) if a == ip && (port == 0 || p == port) => None,
        Some((a, p)) => Some(format!("descriptor {} is bound to {}:{}", fd, a, p)),
        None => Some(format!("descriptor {} has no address", fd)),
    }
}

/// Checks every one of `fds` (see `mismatch`) and, when all fit, makes them non-blocking and
/// close-on-exec (systemd passes them without); returns their port.
pub fn check(fds: &[c_int], ip: IpAddr, port: u16, stream: bool) -> Result<u16, (i32, String)> {
    if fds.is_empty() {
        return Err((22, "no stored descriptor".into()));
    }
    for fd in fds {
        if let Some(why) = mismatch(*fd, ip, port, stream) {
            return Err((22, why));
        }
    }
    for fd in fds {
        unsafe {
            let fl = fcntl(*fd, F_GETFL, 0);
            if fl >= 0 {
                fcntl(*fd, F_SETFL, fl | O_NONBLOCK);
            }
            fcntl(*fd, F_SETFD, FD_CLOEXEC);
        }
    }
    Ok(bound(fds[0]).map_or(port, |(_, p)| p))
}

#[cfg(test)]
#[path = "stored_tests.rs"]
mod tests;
