//! sd_notify: one datagram to the unix socket systemd names in $NOTIFY_SOCKET ('@' = abstract
//! namespace), optionally carrying descriptors (SCM_RIGHTS, for FDSTORE=1). Node has no unix
//! datagram sockets, hence here.

use crate::sys::*;
use std::os::raw::c_void;

/// Most descriptors one notification carries (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 253;

pub fn notify(path: &str, message: &str, fds: &[i32]) -> Result<(), i32> {
    if fds.len() > MAX_FDS {
        return Err(22);
    }
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
    let mut iov = iovec { iov_base: m.as_ptr() as *mut c_void, iov_len: m.len() };
    // cmsghdr (len: usize, level: i32, type: i32) then the descriptors, 8-byte aligned.
    let mut control = vec![0u64; (16 + 4 * fds.len() + 7) / 8];
    let controllen = if fds.is_empty() { 0 } else { 16 + 4 * fds.len() };
    if !fds.is_empty() {
        let c = control.as_mut_ptr() as *mut u8;
        unsafe {
            (c as *mut usize).write(controllen);
            (c.add(8) as *mut i32).write(SOL_SOCKET);
            (c.add(12) as *mut i32).write(SCM_RIGHTS);
            for (i, f) in fds.iter().enumerate() {
                (c.add(16 + 4 * i) as *mut i32).write(*f);
            }
        }
    }
    let msg = msghdr {
        msg_name: &mut sa as *mut _ as *mut c_void,
        msg_namelen: len as u32,
        msg_iov: &mut iov,
        msg_iovlen: 1,
        msg_control: if fds.is_empty() { std::ptr::null_mut() } else { control.as_mut_ptr() as *mut c_void },
        msg_controllen: controllen,
        msg_flags: 0,
    };
    let r = unsafe { sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) };
    let e = errno();
    unsafe { close(fd) };
    if r < 0 {
        Err(e)
    } else {
        Ok(())
    }
}
