//! The N-API face of relay.rs (the load balancer's native TCP relay); src/lb/native-tcp-proxy.ts
//! is the JS side. Listeners are named by a number JS keeps.

use crate::napi_sys::*;
use crate::relay::{self, Config, Listener};
use crate::relay_udp;
use crate::{args, errno_code, fds_of, new_fds, new_string, new_uint_pair, string, throw, uint, undefined};
use std::collections::HashMap;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

static OPEN: Mutex<Option<HashMap<u32, Arc<Listener>>>> = Mutex::new(None);
static NEXT: AtomicU32 = AtomicU32::new(1);

fn get(id: u32) -> Option<Arc<Listener>> {
    OPEN.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&id).cloned())
}

/// Reads [policy, preferLocal, idleMs, connectMs, ejectMs, attempts] from a[from..].
unsafe fn config(env: napi_env, a: &[napi_value]) -> Option<Config> {
    let mut prefer = false;
    if napi_get_value_bool(env, a[1], &mut prefer) != NAPI_OK {
        return None;
    }
    Some(Config {
        policy: uint(env, a[0])?,
        prefer_local: prefer,
        idle_ms: uint(env, a[2])? as u64,
        connect_ms: uint(env, a[3])? as u64,
        eject_ms: uint(env, a[4])? as u64,
        attempts: uint(env, a[5])?,
        max_sessions: u64::MAX,
    })
}

/// Reads [policy, preferLocal, idleMs, ejectMs, maxSessions] (a UDP listener's options).
unsafe fn udp_config(env: napi_env, a: &[napi_value]) -> Option<Config> {
    let mut prefer = false;
    if napi_get_value_bool(env, a[1], &mut prefer) != NAPI_OK {
        return None;
    }
    Some(Config {
        policy: uint(env, a[0])?,
        prefer_local: prefer,
        idle_ms: uint(env, a[2])? as u64,
        connect_ms: 0,
        eject_ms: uint(env, a[3])? as u64,
        attempts: 1,
        max_sessions: uint(env, a[4])?.max(1) as u64,
    })
}

/// A listen or adopt entry's host (a string) and port (below 65536).
unsafe fn host_port(env: napi_env, host: napi_value, port: napi_value) -> Option<(String, u16)> {
    match (string(env, host), uint(env, port)) {
        (Some(h), Some(p)) if p < 65536 => Some((h, p as u16)),
        _ => None,
    }
}

/// A listen entry's answer: the listener, remembered under `id`, as [id, port]; or the error
/// thrown as "<step> <CODE> <where>: <message>".
unsafe fn opened(env: napi_env, id: u32, r: Result<Arc<Listener>, (i32, String)>, at: &str) -> napi_value {
    match r {
        Ok(l) => {
            let bound = l.port;
            OPEN.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(id, l);
            new_uint_pair(env, id, bound as u32)
        }
        Err((e, what)) => {
            let msg = format!("{} {} {}: {}", what, errno_code(e), at, std::io::Error::from_raw_os_error(e));
            throw(env, errno_code(e), &msg)
        }
    }
}

/// relayListen(host, port, backlog, policy, preferLocal, idleMs, connectMs, ejectMs, attempts) → [id, port]
pub unsafe extern "C" fn listen(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<9>(env, info);
    let host = match string(env, a[0]) {
        Some(h) => h,
        None => return throw(env, "EINVAL", "relayListen: host must be a string"),
    };
    let (port, backlog) = match (uint(env, a[1]), uint(env, a[2])) {
        (Some(p), Some(b)) if p < 65536 => (p as u16, b.min(65535) as i32),
        _ => return throw(env, "EINVAL", "relayListen: port and backlog must be numbers"),
    };
    let cfg = match config(env, &a[3..]) {
        Some(c) => c,
        None => return throw(env, "EINVAL", "relayListen: bad options"),
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    opened(env, id, relay::open(id, &host, port, backlog, cfg), &format!("{}:{}", host, port))
}

/// relayUdpListen(host, port, policy, preferLocal, idleMs, ejectMs, maxSessions) → [id, port]
pub unsafe extern "C" fn udp_listen(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<7>(env, info);
    let (host, port) = match host_port(env, a[0], a[1]) {
        Some(hp) => hp,
        None => return throw(env, "EINVAL", "relayUdpListen: host must be a string, port a number"),
    };
    let cfg = match udp_config(env, &a[2..]) {
        Some(c) => c,
        None => return throw(env, "EINVAL", "relayUdpListen: bad options"),
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    opened(env, id, relay_udp::open(id, &host, port, cfg), &format!("{}:{}/udp", host, port))
}

/// An adopt entry's answer: as `opened`, but a refused socket's reason is thrown as it is.
unsafe fn adopted(env: napi_env, id: u32, r: Result<Arc<Listener>, (i32, String)>, at: &str) -> napi_value {
    match r {
        Err((22, why)) => throw(env, "EINVAL", &why),
        r => opened(env, id, r, at),
    }
}

/// relayAdopt(fds, host, port, policy, preferLocal, idleMs, connectMs, ejectMs, attempts, backends) → [id, port]:
/// serves stored listening sockets (int32 fds) bound to host:port with `backends` (relaySetBackends'
/// text) in place; throws, leaving them open, when they do not match.
pub unsafe extern "C" fn adopt(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<10>(env, info);
    let (host, port) = match host_port(env, a[1], a[2]) {
        Some(hp) => hp,
        None => return throw(env, "EINVAL", "relayAdopt: host must be a string, port a number"),
    };
    let cfg = match config(env, &a[3..]) {
        Some(c) => c,
        None => return throw(env, "EINVAL", "relayAdopt: bad options"),
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let backends = string(env, a[9]).unwrap_or_default();
    adopted(env, id, relay::adopt(id, fds_of(env, a[0]), &host, port, cfg, &backends), &format!("{}:{}", host, port))
}

/// relayUdpAdopt(fds, host, port, policy, preferLocal, idleMs, ejectMs, maxSessions, backends) → [id, port]
pub unsafe extern "C" fn udp_adopt(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<9>(env, info);
    let (host, port) = match host_port(env, a[1], a[2]) {
        Some(hp) => hp,
        None => return throw(env, "EINVAL", "relayUdpAdopt: host must be a string, port a number"),
    };
    let cfg = match udp_config(env, &a[3..]) {
        Some(c) => c,
        None => return throw(env, "EINVAL", "relayUdpAdopt: bad options"),
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let backends = string(env, a[8]).unwrap_or_default();
    adopted(env, id, relay_udp::adopt(id, fds_of(env, a[0]), &host, port, cfg, &backends), &format!("{}:{}/udp", host, port))
}

/// relayFds(id) → the listener's sockets (int32 fds), to be kept across a restart.
pub unsafe extern "C" fn fds(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    match uint(env, a[0]).and_then(get) {
        Some(l) => new_fds(env, &l.fds),
        None => undefined(env),
    }
}

/// relayUdpConfigure(id, policy, preferLocal, idleMs, ejectMs, maxSessions)
pub unsafe extern "C" fn udp_configure(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<6>(env, info);
    match (uint(env, a[0]).and_then(get).filter(|l| l.udp), udp_config(env, &a[1..])) {
        (Some(l), Some(c)) => *l.cfg.lock().unwrap_or_else(|e| e.into_inner()) = c,
        _ => return throw(env, "EINVAL", "relayUdpConfigure: bad arguments"),
    }
    undefined(env)
}

/// relayConfigure(id, policy, preferLocal, idleMs, connectMs, ejectMs, attempts)
pub unsafe extern "C" fn configure(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<7>(env, info);
    match (uint(env, a[0]).and_then(get).filter(|l| !l.udp), config(env, &a[1..])) {
        (Some(l), Some(c)) => *l.cfg.lock().unwrap_or_else(|e| e.into_inner()) = c,
        _ => return throw(env, "EINVAL", "relayConfigure: bad arguments"),
    }
    undefined(env)
}

/// relaySetBackends(id, "id\thost\tport\tweight\tlocal(0|1)\n"...)
pub unsafe extern "C" fn set_backends(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    match (uint(env, a[0]).and_then(get), string(env, a[1])) {
        (Some(l), Some(spec)) => {
            if let Err(e) = relay::set_backends(&l, &spec) {
                return throw(env, "EINVAL", &format!("relaySetBackends: {}", e));
            }
        }
        _ => return throw(env, "EINVAL", "relaySetBackends(id, spec)"),
    }
    undefined(env)
}

/// relaySetMax(max): the connection limit shared by every relay listener.
pub unsafe extern "C" fn set_max(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    if let Some(m) = uint(env, a[0]) {
        relay::MAX_CONNECTIONS.store(m as u64, Ordering::Relaxed);
    }
    undefined(env)
}

/// relaySetThreads(n): TCP relay threads (0: one per core); only before the first listener.
pub unsafe extern "C" fn set_threads(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    if let Some(n) = uint(env, a[0]) {
        relay::set_threads(n);
    }
    undefined(env)
}

/// relayClose(id, force, restart?): stops accepting; open connections drain unless `force`. A UDP
/// listener's sessions end at once, and its port is free when this returns. `restart`: a TCP
/// listener's sockets are only closed, not shut down (systemd keeps copies for the next process).
pub unsafe extern "C" fn close(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<3>(env, info);
    let mut force = false;
    let mut restart = false;
    napi_get_value_bool(env, a[1], &mut force);
    napi_get_value_bool(env, a[2], &mut restart);
    if let Some(l) = uint(env, a[0]).and_then(get) {
        if l.udp {
            relay_udp::close_listener(&l);
        } else if restart {
            relay::let_go(&l);
        } else {
            relay::close_listener(&l, force);
        }
        // Its counters stay readable until JS forgets it (relayForget).
    }
    undefined(env)
}

/// relayForget(id): drops the listener's counters (after close, once drained).
pub unsafe extern "C" fn forget(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    if let Some(id) = uint(env, a[0]) {
        OPEN.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(|m| m.remove(&id));
    }
    undefined(env)
}

unsafe fn num(env: napi_env, n: u64) -> napi_value {
    let mut v = null_mut();
    napi_create_double(env, n as f64, &mut v);
    v
}

/// relayStats(id) → [active, refused, totalActive (of its kind: TCP connections or UDP sessions), then per backend (current, then draining):
/// id, connections, active, bytesIn, bytesOut, connectFailures, ejections, ejectedUntil]
pub unsafe extern "C" fn stats(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    let l = match uint(env, a[0]).and_then(get) {
        Some(l) => l,
        None => return undefined(env),
    };
    let mut rows: Vec<(String, Arc<relay::BackendStats>)> = l.backends.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|b| (b.id.clone(), b.stats.clone())).collect();
    {
        let mut r = l.retired.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|(_, s)| s.active.load(Ordering::Relaxed) > 0);
        rows.extend(r.iter().cloned());
    }
    let mut arr = null_mut();
    napi_create_array_with_length(env, 3 + rows.len() * 8, &mut arr);
    napi_set_element(env, arr, 0, num(env, l.active.load(Ordering::Relaxed)));
    napi_set_element(env, arr, 1, num(env, l.refused.load(Ordering::Relaxed)));
    let total = if l.udp { &relay_udp::SESSIONS } else { &relay::ACTIVE };
    napi_set_element(env, arr, 2, num(env, total.load(Ordering::Relaxed)));
    let mut i = 3u32;
    for (id, s) in rows {
        let vals = [&s.connections, &s.active, &s.bytes_in, &s.bytes_out, &s.connect_failures, &s.ejections, &s.ejected_until];
        napi_set_element(env, arr, i, new_string(env, &id));
        for (k, v) in vals.iter().enumerate() {
            napi_set_element(env, arr, i + 1 + k as u32, num(env, v.load(Ordering::Relaxed)));
        }
        i += 8;
    }
    arr
}
