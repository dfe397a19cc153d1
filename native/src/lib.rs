//! podman-swarm-dns native addon (docs/architecture.md#native-addon): the UDP DNS fast path and sd_notify, exported to
//! Node through hand-declared N-API (napi_sys.rs). The JS side is src/native/.

mod answer;
mod cache;
mod napi_sys;
mod notify;
mod querylog;
mod relay;
mod relay_napi;
mod relay_udp;
mod stored;
mod sys;
#[cfg(test)]
mod testutil;
mod udp;

use napi_sys::*;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr::null_mut;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

struct Tsfn(napi_threadsafe_function);
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

struct Open {
    listener: Arc<udp::Listener>,
    tsfn: Arc<Tsfn>,
}

static LISTENERS: Mutex<Option<HashMap<u32, Open>>> = Mutex::new(None);
static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

unsafe fn throw(env: napi_env, code: &str, msg: &str) -> napi_value {
    let c = CString::new(code).unwrap_or_default();
    let m = CString::new(msg).unwrap_or_default();
    napi_throw_error(env, c.as_ptr(), m.as_ptr());
    null_mut()
}

unsafe fn args<const N: usize>(env: napi_env, info: napi_callback_info) -> [napi_value; N] {
    let mut argv = [null_mut(); N];
    let mut argc = N;
    napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), null_mut(), null_mut());
    argv
}

unsafe fn string(env: napi_env, v: napi_value) -> Option<String> {
    let mut len = 0usize;
    if napi_get_value_string_utf8(env, v, null_mut(), 0, &mut len) != NAPI_OK {
        return None;
    }
    let mut buf = vec![0u8; len + 1];
    if napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut c_char, len + 1, &mut len) != NAPI_OK {
        return None;
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

unsafe fn uint(env: napi_env, v: napi_value) -> Option<u32> {
    let mut n = 0u32;
    if napi_get_value_uint32(env, v, &mut n) == NAPI_OK {
        Some(n)
    } else {
        None
    }
}

unsafe fn buffer<'a>(env: napi_env, v: napi_value) -> Option<&'a [u8]> {
    // Node 18 aborts in napi_get_buffer_info on anything but a buffer: ask first.
    let mut is = false;
    if v.is_null() || napi_is_buffer(env, v, &mut is) != NAPI_OK || !is {
        return None;
    }
    let mut data: *mut c_void = null_mut();
    let mut len = 0usize;
    if napi_get_buffer_info(env, v, &mut data, &mut len) != NAPI_OK {
        return None;
    }
    if len == 0 {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts(data as *const u8, len))
}

unsafe fn new_uint(env: napi_env, n: u32) -> napi_value {
    let mut v = null_mut();
    napi_create_uint32(env, n, &mut v);
    v
}

/// `[a, b]`: what the open functions return (listener id, bound port).
pub(crate) unsafe fn new_uint_pair(env: napi_env, a: u32, b: u32) -> napi_value {
    let mut arr = null_mut();
    napi_create_array_with_length(env, 2, &mut arr);
    napi_set_element(env, arr, 0, new_uint(env, a));
    napi_set_element(env, arr, 1, new_uint(env, b));
    arr
}

unsafe fn new_buffer(env: napi_env, b: &[u8]) -> napi_value {
    let mut v = null_mut();
    let mut d = null_mut();
    napi_create_buffer_copy(env, b.len(), b.as_ptr() as *const c_void, &mut d, &mut v);
    v
}

unsafe fn new_string(env: napi_env, s: &str) -> napi_value {
    let mut v = null_mut();
    napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut v);
    v
}

unsafe fn undefined(env: napi_env) -> napi_value {
    let mut v = null_mut();
    napi_get_undefined(env, &mut v);
    v
}

fn errno_code(e: i32) -> &'static str {
    match e {
        1 => "EPERM",
        13 => "EACCES",
        22 => "EINVAL",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        97 => "EAFNOSUPPORT",
        111 => "ECONNREFUSED",
        2 => "ENOENT",
        11 => "EAGAIN",
        _ => "EIO",
    }
}

/// Runs on the JS thread: tells the listener's callback that queries wait (it pulls them with
/// udpTake at its own pace).
unsafe extern "C" fn call_js(env: napi_env, cb: napi_value, _ctx: *mut c_void, _data: *mut c_void) {
    if env.is_null() || cb.is_null() {
        return;
    }
    let mut result = null_mut();
    if napi_call_function(env, undefined(env), cb, 0, null_mut(), &mut result) != NAPI_OK {
        // The JS side catches its own errors; never let one escape into the addon.
        let mut e = null_mut();
        napi_get_and_clear_last_exception(env, &mut e);
    }
}

/// openUdp(host, port, threads, rcvbuf, onWaiting(), adopt?) → [id, port]; adopt: UDP sockets
/// (int32 fds) already bound to host:port, served before any new one is bound.
unsafe extern "C" fn open_udp(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<6>(env, info);
    let host = match string(env, a[0]) {
        Some(h) => h,
        None => return throw(env, "EINVAL", "openUdp: host must be a string"),
    };
    let (port, threads, rcvbuf) = match (uint(env, a[1]), uint(env, a[2]), uint(env, a[3])) {
        (Some(p), Some(t), Some(r)) if p < 65536 => (p as u16, t.clamp(1, 64) as usize, r.min(i32::MAX as u32) as i32),
        _ => return throw(env, "EINVAL", "openUdp: port, threads and rcvbuf must be numbers"),
    };
    let mut tsfn: napi_threadsafe_function = null_mut();
    let name = new_string(env, "podman-swarm-dns udp");
    if napi_create_threadsafe_function(env, a[4], null_mut(), name, 0, 1, null_mut(), None, null_mut(), Some(call_js), &mut tsfn) != NAPI_OK {
        return throw(env, "EINVAL", "openUdp: onQuery must be a function");
    }
    let tsfn = Arc::new(Tsfn(tsfn));
    let t2 = tsfn.clone();
    let wake: udp::Wake = Arc::new(move || {
        // Fails only while closing, when nobody is left to answer anyway.
        napi_call_threadsafe_function(t2.0, null_mut(), TSFN_NONBLOCKING);
    });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    match udp::open(&host, port, threads, rcvbuf, wake, id, &fds_of(env, a[5])) {
        Ok((listener, bound)) => {
            LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(id, Open { listener, tsfn });
            new_uint_pair(env, id, bound as u32)
        }
        Err((e, what)) => {
            napi_release_threadsafe_function(tsfn.0, TSFN_RELEASE);
            let msg = format!("{} {} {}:{}: {}", what, errno_code(e), host, port, std::io::Error::from_raw_os_error(e));
            throw(env, errno_code(e), &msg)
        }
    }
}

/// udpFds(id) → the listener's sockets (int32 fds), for systemd's descriptor store.
unsafe extern "C" fn udp_fds(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    let id = uint(env, a[0]).unwrap_or(0);
    let fds = LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&id).map(|o| o.listener.fds.clone())).unwrap_or_default();
    new_fds(env, &fds)
}

/// closeUdp(id): stops the threads, closes the sockets, releases the callback.
unsafe extern "C" fn close_udp(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    let id = uint(env, a[0]).unwrap_or(0);
    let open = LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).as_mut().and_then(|m| m.remove(&id));
    if let Some(o) = open {
        o.listener.close();
        napi_release_threadsafe_function(o.tsfn.0, TSFN_RELEASE);
    }
    undefined(env)
}

/// udpTake(id, maxAgeMs) → [packet, ip, port, sock] | undefined: the oldest query of listener
/// `id` waiting for JS that is at most maxAgeMs old (older ones are dropped and counted);
/// undefined when none is left.
unsafe extern "C" fn udp_take(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let (id, max_age) = (uint(env, a[0]).unwrap_or(0), uint(env, a[1]).unwrap_or(0));
    let l = LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&id).map(|o| o.listener.clone()));
    let p = match l.and_then(|l| l.take(std::time::Duration::from_millis(max_age as u64))) {
        Some(p) => p,
        None => return undefined(env),
    };
    let mut arr = null_mut();
    napi_create_array_with_length(env, 4, &mut arr);
    napi_set_element(env, arr, 0, new_buffer(env, &p.data));
    napi_set_element(env, arr, 1, new_string(env, &p.ip));
    napi_set_element(env, arr, 2, new_uint(env, p.port as u32));
    napi_set_element(env, arr, 3, new_uint(env, p.sock));
    arr
}

/// setRrl(rate, slip): response rate limiting in the UDP threads (rate 0: off).
unsafe extern "C" fn set_rrl(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    udp::set_rrl(uint(env, a[0]).unwrap_or(0), uint(env, a[1]).unwrap_or(0));
    undefined(env)
}

/// reply(sock, ip, port, packet) → boolean: JS answers a handed-over query on the same socket.
unsafe extern "C" fn reply(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<4>(env, info);
    let sock = uint(env, a[0]).unwrap_or(0);
    let ok = match (string(env, a[1]), uint(env, a[2]), buffer(env, a[3])) {
        (Some(ip), Some(port), Some(data)) => {
            let l = LISTENERS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&(sock >> 8)).map(|o| o.listener.clone()));
            match l {
                Some(l) => l.reply((sock & 0xff) as usize, &ip, port as u16, data),
                None => false,
            }
        }
        _ => false,
    };
    let mut v = null_mut();
    napi_get_boolean(env, ok, &mut v);
    v
}

/// A whole table being sent in parts (setTable with `staged`): patches go to it until
/// commitTable installs it, so the UDP threads never answer from half a table.
static STAGED: std::sync::Mutex<Option<answer::Table>> = std::sync::Mutex::new(None);

/// setTable(buffer | null, staged?): parses a whole answer table and swaps it in (null: hand
/// everything to JS); with `staged` it is kept aside for patchTable and commitTable instead.
unsafe extern "C" fn set_table(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let mut staged = false;
    napi_get_value_bool(env, a[1], &mut staged);
    let table = match buffer(env, a[0]) {
        None => None,
        Some(b) => match answer::Table::parse(b) {
            Ok(t) => Some(t),
            Err(e) => return throw(env, "EINVAL", &format!("answer table: {}", e)),
        },
    };
    let mut s = STAGED.lock().unwrap_or_else(|e| e.into_inner());
    match table {
        Some(t) if staged => *s = Some(t),
        t => {
            *s = None;
            udp::set_table(t, udp::table_ticket());
        }
    }
    undefined(env)
}

/// A table parsed off the JS thread by parseTable, with its id, until takeParsed takes it.
static PARSED: Mutex<Option<(u32, answer::Table)>> = Mutex::new(None);
static NEXT_PARSE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// What a parse thread hands to the JS thread: its id and the table.
struct Parsed {
    id: u32,
    table: Result<answer::Table, String>,
}

/// parseTable(buffer, done(error | null, id)): parses a whole answer table on a thread of its own
/// (10,000 services: ~100 ms the JS thread goes on meanwhile); `done` runs on the JS thread, and
/// takeParsed(id, true) then installs the table. The thread reads a copy of the buffer: a stop
/// meanwhile may free the buffer itself.
unsafe extern "C" fn parse_table(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let usage = "parseTable(table: Buffer, done: (error, id) => void)";
    let data = match buffer(env, a[0]) {
        Some(b) => b,
        None => return throw(env, "EINVAL", usage),
    };
    let mut tsfn: napi_threadsafe_function = null_mut();
    let name = new_string(env, "podman-swarm-dns table parse");
    if napi_create_threadsafe_function(env, a[1], null_mut(), name, 0, 1, null_mut(), None, null_mut(), Some(parsed_js), &mut tsfn) != NAPI_OK {
        return throw(env, "EINVAL", usage);
    }
    let id = NEXT_PARSE.fetch_add(1, Ordering::Relaxed);
    let (bytes, raw, tsfn) = (data.to_vec(), tsfn, Tsfn(tsfn));
    let spawned = std::thread::Builder::new().name("psdns-parse".into()).spawn(move || {
        let p = Box::into_raw(Box::new(Parsed { id, table: answer::Table::parse(&bytes) }));
        drop(bytes);
        if napi_call_threadsafe_function(tsfn.0, p as *mut c_void, TSFN_BLOCKING) != NAPI_OK {
            // The process is closing: nobody takes it.
            drop(Box::from_raw(p));
        }
        napi_release_threadsafe_function(tsfn.0, TSFN_RELEASE);
    });
    if spawned.is_err() {
        napi_release_threadsafe_function(raw, TSFN_RELEASE);
        return throw(env, "EAGAIN", "parseTable: no thread for the parse");
    }
    new_uint(env, id)
}

/// Runs on the JS thread once a parse is done: keeps the table for takeParsed, calls done.
unsafe extern "C" fn parsed_js(env: napi_env, cb: napi_value, _ctx: *mut c_void, data: *mut c_void) {
    if data.is_null() {
        return;
    }
    let p = Box::from_raw(data as *mut Parsed);
    if env.is_null() || cb.is_null() {
        return;
    }
    let error = match p.table {
        Ok(t) => {
            *PARSED.lock().unwrap_or_else(|e| e.into_inner()) = Some((p.id, t));
            let mut v = null_mut();
            napi_get_null(env, &mut v);
            v
        }
        Err(e) => new_string(env, &format!("answer table: {}", e)),
    };
    let argv = [error, new_uint(env, p.id)];
    let mut result = null_mut();
    if napi_call_function(env, undefined(env), cb, 2, argv.as_ptr(), &mut result) != NAPI_OK {
        let mut e = null_mut();
        napi_get_and_clear_last_exception(env, &mut e);
    }
}

/// takeParsed(id, install) → whether parse `id`'s table was there; installs it (as setTable
/// does, no table staged any more) when `install`, else drops it.
unsafe extern "C" fn take_parsed(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let id = uint(env, a[0]).unwrap_or(0);
    let mut install = false;
    napi_get_value_bool(env, a[1], &mut install);
    let taken = {
        let mut p = PARSED.lock().unwrap_or_else(|e| e.into_inner());
        match p.take() {
            Some((i, t)) if i == id => Some(t),
            other => {
                *p = other;
                None
            }
        }
    };
    let ok = taken.is_some();
    if let (Some(t), true) = (taken, install) {
        *STAGED.lock().unwrap_or_else(|e| e.into_inner()) = None;
        udp::set_table(Some(t), udp::table_ticket());
    }
    let mut v = null_mut();
    napi_get_boolean(env, ok, &mut v);
    v
}

/// patchTable(buffer, installed?) → false when there is no table to patch: applies a patch to
/// the staged table, or else to the one the threads answer from, in place; with `installed`, to
/// the one the threads answer from even while another is staged (a change that must not wait
/// for the staged table to be complete).
unsafe extern "C" fn patch_table(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let b = match buffer(env, a[0]) {
        Some(b) => b,
        None => return throw(env, "EINVAL", "patchTable(patch: Buffer, installed?: boolean)"),
    };
    let mut installed = false;
    napi_get_value_bool(env, a[1], &mut installed);
    let s = STAGED.lock().unwrap_or_else(|e| e.into_inner());
    let r = match s.as_ref() {
        Some(t) if !installed => Some(t.patch(b)),
        _ => udp::current_table().1.map(|t| t.patch(b)),
    };
    let ok = match r {
        None => false,
        Some(Ok(())) => true,
        Some(Err(e)) => return throw(env, "EINVAL", &format!("answer table patch: {}", e)),
    };
    let mut v = null_mut();
    napi_get_boolean(env, ok, &mut v);
    v
}

/// commitTable(): installs the staged table (nothing when none is staged).
unsafe extern "C" fn commit_table(env: napi_env, _info: napi_callback_info) -> napi_value {
    if let Some(t) = STAGED.lock().unwrap_or_else(|e| e.into_inner()).take() {
        t.pack();
        udp::set_table(Some(t), udp::table_ticket());
    }
    undefined(env)
}

/// trimMemory(): gives the free pages of malloc's heaps back to the system, in the background
/// (after JS let go of a whole table's buffers).
unsafe extern "C" fn trim_memory(env: napi_env, _info: napi_callback_info) -> napi_value {
    sys::trim();
    undefined(env)
}

/// answer(packet, ip) → Buffer (reply) | null (dropped) | undefined (for JS): the pure fast path,
/// for tests and the fuzzer.
unsafe extern "C" fn answer_js(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let (q, ip) = match (buffer(env, a[0]), string(env, a[1])) {
        (Some(q), Some(ip)) => (q, ip),
        _ => return throw(env, "EINVAL", "answer(packet: Buffer, ip: string)"),
    };
    let client = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v)) => answer::Client::v4(v.octets()),
        Ok(std::net::IpAddr::V6(v)) => answer::Client { addr: v.octets() },
        Err(_) => return throw(env, "EINVAL", "answer: bad ip"),
    };
    let (_, table) = udp::current_table();
    let mut out = [0u8; answer::OUT_MAX];
    match answer::answer(table.as_deref(), q, &client, &mut out) {
        answer::Outcome::Reply(n) | answer::Outcome::Error(n) => new_buffer(env, &out[..n]),
        answer::Outcome::Drop => {
            let mut v = null_mut();
            napi_get_null(env, &mut v);
            v
        }
        answer::Outcome::Forward => match cache::shared().answer(q, &mut out, cache::now_ns(), &mut cache::Counts::new()) {
            Some(n) => new_buffer(env, &out[..n]),
            None => undefined(env),
        },
        answer::Outcome::ToJs => undefined(env),
    }
}

/// cachePut(key, packet, ttl, ttls) → boolean: installs an upstream reply in the forwarding
/// cache (cache.rs); `ttls` is n × (u16 offset, u32 TTL), big endian.
unsafe extern "C" fn cache_put(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<4>(env, info);
    let ok = match (buffer(env, a[0]), buffer(env, a[1]), uint(env, a[2]), buffer(env, a[3])) {
        (Some(key), Some(packet), Some(ttl), Some(raw)) if raw.len() % 6 == 0 => {
            let ttls: Vec<(u16, u32)> = raw.chunks(6).map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]]))).collect();
            cache::shared().put(key, packet, ttl, &ttls, cache::now_ns())
        }
        _ => false,
    };
    let mut v = null_mut();
    napi_get_boolean(env, ok, &mut v);
    v
}

/// cacheConfigure(size, clear): the forwarding cache's bound in entries; `clear` empties it.
unsafe extern "C" fn cache_configure(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let mut clear = false;
    napi_get_value_bool(env, a[1], &mut clear);
    let c = cache::shared();
    if let Some(n) = uint(env, a[0]) {
        c.resize(n as usize);
    }
    if clear {
        c.clear();
    }
    undefined(env)
}

/// cacheStats() → number[]: answers [type * 6 + rcode], misses, evictions, then entries.
unsafe extern "C" fn cache_stats(env: napi_env, _info: napi_callback_info) -> napi_value {
    let mut arr = null_mut();
    napi_create_array_with_length(env, cache::NSTATS + 1, &mut arr);
    let values = cache::STATS.iter().map(|s| s.load(Ordering::Relaxed) as f64).chain(std::iter::once(cache::shared().len() as f64));
    for (i, n) in values.enumerate() {
        let mut v = null_mut();
        napi_create_double(env, n, &mut v);
        napi_set_element(env, arr, i as u32, v);
    }
    arr
}

/// stats() → number[] (see udp::STATS).
unsafe extern "C" fn stats(env: napi_env, _info: napi_callback_info) -> napi_value {
    let mut arr = null_mut();
    napi_create_array_with_length(env, udp::NSTATS, &mut arr);
    for (i, s) in udp::STATS.iter().enumerate() {
        let mut v = null_mut();
        napi_create_double(env, s.load(Ordering::Relaxed) as f64, &mut v);
        napi_set_element(env, arr, i as u32, v);
    }
    arr
}

/// queryLogSet(mode, sample): 0 off, 1 errors only, 2 one query in `sample` (1: all).
unsafe extern "C" fn query_log_set(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    querylog::set_mode(uint(env, a[0]).unwrap_or(0), uint(env, a[1]).unwrap_or(1));
    undefined(env)
}

/// queryLogTake(max) → [Buffer of up to `max` JSON lines, how many] | undefined (none waiting).
unsafe extern "C" fn query_log_take(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    let max = uint(env, a[0]).unwrap_or(0) as usize;
    let mut out = Vec::new();
    let n = querylog::drain(max.min(querylog::RING_SLOTS), &mut out);
    if n == 0 {
        return undefined(env);
    }
    let mut arr = null_mut();
    napi_create_array_with_length(env, 2, &mut arr);
    napi_set_element(env, arr, 0, new_buffer(env, &out));
    napi_set_element(env, arr, 1, new_uint(env, n as u32));
    arr
}

/// queryLogStats() → [entries put in the ring, entries dropped because it was full].
unsafe extern "C" fn query_log_stats(env: napi_env, _info: napi_callback_info) -> napi_value {
    let mut arr = null_mut();
    napi_create_array_with_length(env, 2, &mut arr);
    for (i, v) in querylog::counts().iter().enumerate() {
        let mut n = null_mut();
        napi_create_double(env, *v as f64, &mut n);
        napi_set_element(env, arr, i as u32, n);
    }
    arr
}

/// Descriptors passed between JS and the addon: a buffer of native-endian int32s.
pub(crate) unsafe fn fds_of(env: napi_env, v: napi_value) -> Vec<i32> {
    buffer(env, v).unwrap_or(&[]).chunks_exact(4).map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub(crate) unsafe fn new_fds(env: napi_env, fds: &[i32]) -> napi_value {
    let bytes: Vec<u8> = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
    let mut v = null_mut();
    napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr() as *const c_void, null_mut(), &mut v);
    v
}

/// notify(socketPath, message, fds?) → 0 or an errno; fds (int32s) ride along as SCM_RIGHTS.
unsafe extern "C" fn notify_js(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<3>(env, info);
    let r = match (string(env, a[0]), string(env, a[1])) {
        (Some(p), Some(m)) => match notify::notify(&p, &m, &fds_of(env, a[2])) {
            Ok(()) => 0,
            Err(e) => e as u32,
        },
        _ => 22,
    };
    new_uint(env, r)
}

/// cores() → CPUs this process may run on (the default thread count).
unsafe extern "C" fn cores(env: napi_env, _info: napi_callback_info) -> napi_value {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    new_uint(env, n as u32)
}

#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let fns: [(&str, unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value); 35] = [
        ("openUdp", open_udp),
        ("udpFds", udp_fds),
        ("setRrl", set_rrl),
        ("closeUdp", close_udp),
        ("udpTake", udp_take),
        ("reply", reply),
        ("setTable", set_table),
        ("patchTable", patch_table),
        ("commitTable", commit_table),
        ("parseTable", parse_table),
        ("takeParsed", take_parsed),
        ("trimMemory", trim_memory),
        ("answer", answer_js),
        ("stats", stats),
        ("cachePut", cache_put),
        ("cacheConfigure", cache_configure),
        ("cacheStats", cache_stats),
        ("notify", notify_js),
        ("cores", cores),
        ("relayListen", relay_napi::listen),
        ("relayConfigure", relay_napi::configure),
        ("relaySetBackends", relay_napi::set_backends),
        ("relaySetMax", relay_napi::set_max),
        ("relaySetThreads", relay_napi::set_threads),
        ("relayClose", relay_napi::close),
        ("relayForget", relay_napi::forget),
        ("relayStats", relay_napi::stats),
        ("relayUdpListen", relay_napi::udp_listen),
        ("relayUdpConfigure", relay_napi::udp_configure),
        ("relayAdopt", relay_napi::adopt),
        ("relayUdpAdopt", relay_napi::udp_adopt),
        ("relayFds", relay_napi::fds),
        ("queryLogSet", query_log_set),
        ("queryLogTake", query_log_take),
        ("queryLogStats", query_log_stats),
    ];
    for (name, f) in fns.iter() {
        let c = CString::new(*name).unwrap();
        let mut v = null_mut();
        napi_create_function(env, c.as_ptr(), name.len(), Some(*f), null_mut(), &mut v);
        napi_set_named_property(env, exports, c.as_ptr(), v);
    }
    exports
}
