//! The libc socket calls and structures the addon needs (Linux, 64-bit), declared by hand so the
//! crate builds offline with no registry dependency.
#![allow(non_camel_case_types)]

use std::os::raw::{c_int, c_uint, c_void};

pub const AF_UNIX: c_int = 1;
pub const AF_INET: c_int = 2;
pub const AF_INET6: c_int = 10;
pub const SOCK_DGRAM: c_int = 2;
pub const SOCK_CLOEXEC: c_int = 0o2000000;
pub const SOL_SOCKET: c_int = 1;
pub const SO_SNDBUF: c_int = 7;
pub const SO_RCVBUF: c_int = 8;
pub const SO_REUSEPORT: c_int = 15;
pub const SO_RCVTIMEO: c_int = 20;
pub const SO_RCVBUFFORCE: c_int = 33;
pub const SO_ATTACH_REUSEPORT_CBPF: c_int = 51;
pub const IPPROTO_IP: c_int = 0;
pub const IPPROTO_IPV6: c_int = 41;
pub const IP_FREEBIND: c_int = 15;
pub const IPV6_V6ONLY: c_int = 26;
pub const IPV6_FREEBIND: c_int = 78;
pub const SCM_RIGHTS: c_int = 1;
pub const MSG_TRUNC: c_int = 0x20;
pub const MSG_DONTWAIT: c_int = 0x40;
pub const MSG_NOSIGNAL: c_int = 0x4000;
pub const MSG_WAITFORONE: c_int = 0x10000;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct iovec {
    pub iov_base: *mut c_void,
    pub iov_len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct msghdr {
    pub msg_name: *mut c_void,
    pub msg_namelen: u32,
    pub msg_iov: *mut iovec,
    pub msg_iovlen: usize,
    pub msg_control: *mut c_void,
    pub msg_controllen: usize,
    pub msg_flags: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsghdr {
    pub msg_hdr: msghdr,
    pub msg_len: c_uint,
}

/// Big enough for sockaddr_in6 and sockaddr_un, aligned like sockaddr_storage.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct sockaddr_storage {
    pub bytes: [u8; 128],
}

#[repr(C)]
pub struct sock_filter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
pub struct sock_fprog {
    pub len: u16,
    pub filter: *const sock_filter,
}

#[repr(C)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// struct timespec (x86_64 / aarch64 Linux).
#[repr(C)]
pub struct timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

pub const CLOCK_MONOTONIC: c_int = 1;

extern "C" {
    pub fn clock_gettime(clock: c_int, tp: *mut timespec) -> c_int;
    pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    pub fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    pub fn bind(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    pub fn getsockname(fd: c_int, addr: *mut c_void, len: *mut u32) -> c_int;
    pub fn close(fd: c_int) -> c_int;
    pub fn recvmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int, timeout: *mut c_void) -> c_int;
    pub fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int;
    pub fn sched_getaffinity(pid: c_int, size: usize, mask: *mut c_void) -> c_int;
    pub fn sched_setaffinity(pid: c_int, size: usize, mask: *const c_void) -> c_int;
    pub fn sendto(fd: c_int, buf: *const c_void, len: usize, flags: c_int, addr: *const c_void, addrlen: u32) -> isize;
    pub fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> isize;
}

#[cfg(target_env = "gnu")]
extern "C" {
    fn malloc_trim(pad: usize) -> c_int;
}

/// Gives the free pages of malloc's heaps back to the system (glibc's malloc_trim), on a thread
/// of its own (it walks every heap: 35–190 ms at 10,000 services × 5 endpoints on a loaded
/// machine, not to be spent on the event loop or a UDP thread). A whole answer table, built or
/// dropped, frees megabytes in many small pieces, which malloc otherwise keeps (~60 MB of RSS
/// after the first table at that size).
pub fn trim() {
    #[cfg(target_env = "gnu")]
    {
        // No thread, no trim: memory, not correctness.
        let _ = std::thread::Builder::new().name("malloc-trim".into()).spawn(|| unsafe {
            malloc_trim(0);
        });
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn set_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> bool {
    unsafe { setsockopt(fd, level, name, &value as *const c_int as *const c_void, 4) == 0 }
}
