//! `cmpkit_server`: a CMP server — bytes in, bytes out (`cmpkit_server_process`), or
//! listening on HTTP (`cmpkit_server_listen`, `cmpkit_listener`).

use super::ca_handler::{cmpkit_ca_handler, CHandler};
use super::server_config::cmpkit_server_config;
use super::util::{
    borrow_out, free_handle, guard, into_handle, try_bytes, try_mut, try_ref, try_str, write_out,
};
use crate::crypto::TrustStore;
use crate::error::{Error, ErrorCode};
use crate::server::demo_ca::DemoCa;
use crate::server::{CaHandler, MemoryStore, Server, ServerConfig, ServerSigner};
use crate::transport::http_server::{HttpServer, ServerOptions};
use std::sync::Arc;

/// A CMP server: checks requests, asks the CA handler, keeps transactions in memory.
/// Thread-safe: `cmpkit_server_process` may be called from several threads at once.
pub struct cmpkit_server {
    server: Arc<Server>,
    ca: Arc<DemoCa>,
}

/// Bytes owned by the library (a response), read with `cmpkit_bytes_data`, freed with
/// `cmpkit_bytes_free`.
pub struct cmpkit_bytes {
    data: Vec<u8>,
}

/// An HTTP listener serving a server on a fixed pool of worker threads
/// (`http://ADDR/pkix/`, also `/` and `/.well-known/cmp`). Use from one thread at a time.
pub struct cmpkit_listener {
    http: Option<HttpServer>,
}

/// Make a server from `cfg` (which may be freed afterwards). `handler` may be NULL: then the
/// built-in CA (the one set with `cmpkit_server_config_set_ca`, else a generated demo CA)
/// decides everything; otherwise the handler's callbacks decide and may delegate to it. The
/// handler table is copied. Free with `cmpkit_server_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_new(
    cfg: *const cmpkit_server_config,
    handler: *const cmpkit_ca_handler,
    out: *mut *mut cmpkit_server,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live config handle.
        let c = unsafe { try_ref(cfg, "cfg") }?;
        // SAFETY: NULL or a readable handler table.
        let table = unsafe { handler.as_ref() }.copied();
        let ca = match &c.ca {
            Some(ca) => ca.clone(),
            None => Arc::new(DemoCa::generate()?),
        };
        let signer = match &c.signer {
            Some((key, cert, chain)) => ServerSigner {
                key: key.clone(),
                cert: cert.clone(),
                chain: chain.clone(),
            },
            None => ca.signer()?,
        };
        let anchors = if c.anchors.is_empty() {
            ca.chain().last().cloned().into_iter().collect()
        } else {
            c.anchors.clone()
        };
        let secrets = c.secrets.clone();
        let config = ServerConfig {
            signer: Some(signer),
            secrets: if secrets.is_empty() {
                None
            } else {
                Some(Arc::new(move |kid: &[u8]| secrets.get(kid).cloned()))
            },
            trust: Some(TrustStore::new(&anchors)?),
            untrusted: c.untrusted.clone(),
            grant_implicit_confirm: c.grant_implicit_confirm,
            check_after: c.check_after,
            log: c.log.clone(),
            central_keygen: c.central_keygen != 0,
            central_keygen_bare_key: c.central_keygen == 2,
            ..ServerConfig::default()
        };
        let h: Arc<dyn CaHandler> = match table {
            Some(table) => Arc::new(CHandler {
                table,
                ca: ca.clone(),
                last_issuer: Default::default(),
            }),
            None => ca.clone(),
        };
        let server = Arc::new(Server::new(config, h, Arc::new(MemoryStore::new()))?);
        // SAFETY: NULL or writable per the contract.
        unsafe { write_out(out, into_handle(cmpkit_server { server, ca }), "out") }
    })
}

/// Free a server (NULL is ignored). Listeners keep their own reference and go on serving.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_free(srv: *mut cmpkit_server) {
    // SAFETY: NULL or a live server handle, freed once.
    unsafe { free_handle(srv) };
}

/// Process one request (`req`, a DER PKIMessage) and give the response (DER) in `*out`,
/// to free with `cmpkit_bytes_free`. Every request gets a response, also garbage (an error
/// message); the call fails only on bad arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_process(
    srv: *const cmpkit_server,
    req: *const u8,
    req_len: usize,
    out: *mut *mut cmpkit_bytes,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live server handle; a buffer of `req_len` bytes.
        let (s, req) = unsafe { (try_ref(srv, "srv")?, try_bytes(req, req_len, "req")?) };
        if out.is_null() {
            return Err(Error::new(ErrorCode::NullArgument, "out is NULL"));
        }
        let data = s.server.process(req);
        // SAFETY: non-NULL and writable per the contract.
        unsafe { write_out(out, into_handle(cmpkit_bytes { data }), "out") }
    })
}

/// The number of certificates the built-in CA has issued and not discarded (certificates
/// made by the handler's own CA are not counted). 0 if `srv` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_issued_count(srv: *const cmpkit_server) -> u64 {
    // SAFETY: NULL or a live server handle.
    let srv = unsafe { srv.as_ref() };
    // A poisoned lock inside the CA must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        srv.map_or(0, |s| s.ca.issued().len() as u64)
    }))
    .unwrap_or(0)
}

/// The bytes: `*data` and `*len`, borrowed until the bytes are freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_bytes_data(
    bytes: *const cmpkit_bytes,
    data: *mut *const u8,
    len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live bytes handle; out-params NULL or writable.
        let b = unsafe { try_ref(bytes, "bytes") }?;
        unsafe { borrow_out(&b.data, data, len) }
    })
}

/// Free bytes (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_bytes_free(bytes: *mut cmpkit_bytes) {
    // SAFETY: NULL or a live bytes handle, freed once.
    unsafe { free_handle(bytes) };
}

/// Serve `srv` over HTTP on `addr` (e.g. `"127.0.0.1:0"`: port 0 picks a free port, see
/// `cmpkit_listener_port`) with `workers` worker threads (0: 2). Returns at once; the
/// listener serves in the background until `cmpkit_listener_stop`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_listen(
    srv: *const cmpkit_server,
    addr: *const std::ffi::c_char,
    workers: u32,
    out: *mut *mut cmpkit_listener,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live server handle; a NUL-terminated string.
        let (s, addr) = unsafe { (try_ref(srv, "srv")?, try_str(addr, "addr")?) };
        if out.is_null() {
            return Err(Error::new(ErrorCode::NullArgument, "out is NULL"));
        }
        let server = s.server.clone();
        let http = HttpServer::bind(
            addr,
            Arc::new(move |req: &[u8]| server.process(req)),
            ServerOptions {
                workers: if workers == 0 { 2 } else { workers as usize },
                ..ServerOptions::default()
            },
        )?;
        let l = cmpkit_listener { http: Some(http) };
        // SAFETY: non-NULL and writable per the contract.
        unsafe { write_out(out, into_handle(l), "out") }
    })
}

/// The TCP port the listener is bound to (0 if `listener` is NULL or stopped).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_listener_port(listener: *const cmpkit_listener) -> u16 {
    // SAFETY: NULL or a live listener handle.
    unsafe { listener.as_ref() }
        .and_then(|l| l.http.as_ref())
        .map_or(0, |h| h.local_addr().port())
}

/// HTTP requests answered so far (0 if `listener` is NULL or stopped).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_listener_requests_served(listener: *const cmpkit_listener) -> u64 {
    // SAFETY: NULL or a live listener handle.
    let listener = unsafe { listener.as_ref() };
    // The statistics sit behind a lock: a poisoned one must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        listener
            .and_then(|l| l.http.as_ref())
            .map_or(0, |h| h.stats().requests_served)
    }))
    .unwrap_or(0)
}

/// Stop listening: no new connections, requests in flight are finished (for at most 5 s).
/// Then the listener is freed; `listener` must not be used afterwards (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_listener_stop(listener: *mut cmpkit_listener) -> ErrorCode {
    if listener.is_null() {
        return ErrorCode::Ok;
    }
    let rc = guard(|| {
        // SAFETY: a live listener handle per the contract.
        let l = unsafe { try_mut(listener, "listener") }?;
        match l.http.take() {
            Some(h) => h.shutdown(),
            None => Ok(()),
        }
    });
    // SAFETY: a live listener handle, freed once.
    unsafe { free_handle(listener) };
    rc
}
