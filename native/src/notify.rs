//! sd_notify: one datagram to the unix socket systemd names in $NOTIFY_SOCKET ('@' = abstract
//! namespace). Node has no unix datagram sockets, hence here.

use crate::sys::*;
use std::os::raw::c_void;

pub fn notify(path: &str, message: &str) -> Result<(), i32> {
    let p = path.as_bytes();
    if p.is_empty() || p.len() >= 108 {
        return Err(22);
    }
    let mut sa = sockaddr_storage { bytes: [0; 128] };
    sa.bytes[..2].copy_from_slice(&(AF_UNIX as u16).to_ne_bytes());
    sa.bytes[2..2 + p.len()].copy_from_slice(p);
    let mut len = 2 + p.len();
    if p[0] == b'@' {
        sa.bytes[2] = 0; // abstract: leading NUL, no terminator counted
    } else {
        len += 1;
    }
    let fd = unsafe { socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    let m = message.as_bytes();
    let r = unsafe { sendto(fd, m.as_ptr() as *const c_void, m.len(), MSG_NOSIGNAL | MSG_DONTWAIT, &sa as *const _ as *const c_void, len as u32) };
    let e = errno();
    unsafe { close(fd) };
    if r < 0 {
        Err(e)
    } else {
        Ok(())
    }
}
