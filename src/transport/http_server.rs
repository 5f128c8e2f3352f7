//! A small blocking HTTP/1.1 server for CMP over HTTP (RFC 9811), on `std::net` and
//! threads only.
//!
//! [`HttpServer`] accepts connections on one thread and serves them on a fixed pool of
//! worker threads fed through a bounded queue; when the queue is full a new connection
//! gets `503` and is closed, so the number of threads and buffered connections never
//! grows with the load. Each request body (a DER-encoded PKIMessage) is passed to a
//! handler, `Fn(&[u8]) -> Vec<u8>`, whose answer goes back as `200` with
//! `Content-Type: application/pkixcmp`. A panicking handler gives `500` and the server
//! lives on.
//!
//! Everything a client sends is bounded: the header block ([`MAX_HEADER_SIZE`], else
//! `431`), the body ([`ServerOptions::max_body_size`], else `413`), the time a request
//! may take to arrive ([`ServerOptions::request_timeout`], else `408` and close: a
//! slowloris client cannot hold a worker), the idle time between keep-alive requests and
//! the number of requests per connection.
//!
//! Served paths (RFC 9811 section 3.3): by default `/`, `/pkix/`, `/.well-known/cmp`
//! and everything below `/.well-known/cmp/` (`/.well-known/cmp/<operation>`,
//! `/.well-known/cmp/p/<name>`, `/.well-known/cmp/p/<name>/<operation>`). A query
//! string is ignored for matching.
//!
//! Plain HTTP only; put a TLS terminator in front for HTTPS.

use crate::error::{Error, ErrorCode, Result};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use super::http::{CONTENT_TYPE, MAX_HEADER_SIZE};

/// The request handler: takes a request body (a DER-encoded PKIMessage) and returns the
/// response body. Called from the worker threads, possibly concurrently.
pub type Handler = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// The RFC 9811 well-known path; it and everything below `/.well-known/cmp/` is served
/// when [`ServerOptions::well_known`] is set.
pub const WELL_KNOWN_PATH: &str = "/.well-known/cmp";

/// How often blocked reads and the accept loop look at the shutdown flag.
const TICK: Duration = Duration::from_millis(20);
/// Longest chunk-size line accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 1024;
/// Before closing after an error, unread request bytes are drained for at most this long…
const LINGER_TIME: Duration = Duration::from_millis(500);
/// …and at most this many bytes, so that the client sees the response instead of a reset.
const LINGER_BYTES: usize = 256 * 1024;

/// Settings of an [`HttpServer`]; start from [`ServerOptions::default`].
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads serving connections (default 2, at least 1).
    pub workers: usize,
    /// Accepted connections that may wait for a worker (default 32); beyond that a new
    /// connection is answered `503` and closed.
    pub max_pending: usize,
    /// Largest accepted request body in bytes (default 1 MiB); larger gives `413`.
    pub max_body_size: usize,
    /// Largest accepted request header block (request line and fields) in bytes,
    /// also the limit for a chunked body's trailer (default [`MAX_HEADER_SIZE`],
    /// 16 KiB, at least 256); larger gives `431`.
    pub max_header_size: usize,
    /// Time a request (header and body) may take to arrive, counted from the start of
    /// waiting for it on a new connection and from its first byte on a kept-alive one
    /// (default 10 s). A slower client gets `408` (or nothing, if it sent nothing) and
    /// the connection is closed.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may stay idle between requests (default 5 s).
    pub idle_timeout: Duration,
    /// Time writing one response may take (default 10 s).
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed (default 100).
    pub max_requests_per_connection: usize,
    /// How long [`HttpServer::shutdown`] waits for in-flight requests (default 5 s).
    pub shutdown_grace: Duration,
    /// Exact request paths served (query ignored); default `["/", "/pkix/"]`.
    pub paths: Vec<String>,
    /// Also serve `/.well-known/cmp` and everything below it (default `true`).
    pub well_known: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 2,
            max_pending: 32,
            max_body_size: 1 << 20,
            max_header_size: MAX_HEADER_SIZE,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_requests_per_connection: 100,
            shutdown_grace: Duration::from_secs(5),
            paths: vec!["/".to_string(), "/pkix/".to_string()],
            well_known: true,
        }
    }
}

impl ServerOptions {
    /// Rejects zero counts, sizes and durations, and paths that do not start with `/`.
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("HTTP server option {what}"),
            ))
        };
        if self.workers == 0 {
            return bad("workers must be at least 1");
        }
        if self.max_pending == 0 {
            return bad("max_pending must be at least 1");
        }
        if self.max_body_size == 0 {
            return bad("max_body_size must be greater than zero");
        }
        if self.max_header_size < 256 {
            return bad("max_header_size must be at least 256");
        }
        if self.max_requests_per_connection == 0 {
            return bad("max_requests_per_connection must be at least 1");
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if d.is_zero() {
                return bad(&format!("{name} must be greater than zero"));
            }
        }
        if let Some(p) = self
            .paths
            .iter()
            .find(|p| !p.starts_with('/') || p.contains(['?', '#', ' ']))
        {
            return bad(&format!(
                "paths: {p:?} must start with '/' and contain no '?', '#' or space"
            ));
        }
        if self.paths.is_empty() && !self.well_known {
            return bad("paths is empty and well_known is off: nothing would be served");
        }
        Ok(())
    }

    /// Whether `path` (without query) is served.
    fn serves(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
            || (self.well_known
                && path
                    .strip_prefix(WELL_KNOWN_PATH)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// Counters of an [`HttpServer`], as returned by [`HttpServer::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted (including those rejected with `503`).
    pub connections: u64,
    /// Connections answered `503` because the queue was full.
    pub connections_rejected: u64,
    /// Connections closed because their request did not arrive in time (slowloris).
    pub timeouts: u64,
    /// Requests answered by the handler with `200`.
    pub requests_served: u64,
    /// Handler panics (each answered `500`).
    pub handler_panics: u64,
    /// Responses sent, by status code (including `200`).
    pub responses_by_status: BTreeMap<u16, u64>,
}

impl ServerStats {
    /// Responses sent with status `status`.
    pub fn status_count(&self, status: u16) -> u64 {
        self.responses_by_status.get(&status).copied().unwrap_or(0)
    }

    /// Responses sent with a status of 400 or above.
    pub fn errors(&self) -> u64 {
        self.responses_by_status
            .range(400..)
            .map(|(_, n)| n)
            .sum::<u64>()
    }
}

/// State shared by the acceptor, the workers and the [`HttpServer`] handle.
struct Shared {
    handler: Handler,
    options: ServerOptions,
    stopping: AtomicBool,
    /// Set when shutdown starts: in-flight requests must be done by then.
    grace_deadline: OnceLock<Instant>,
    stats: Mutex<ServerStats>,
    /// Workers that have exited, with a condition variable to wait for them.
    exited: Mutex<usize>,
    /// Per worker: it has left its loop (its thread ends right after).
    done: Vec<AtomicBool>,
    exited_cv: Condvar,
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, ServerStats> {
        // Counters stay usable even if a thread panicked while holding the lock.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn count_status(&self, status: u16) {
        *self.stats().responses_by_status.entry(status).or_insert(0) += 1;
    }
}

/// A running CMP-over-HTTP server. Stops (cleanly, see [`HttpServer::shutdown`]) when
/// dropped.
///
/// ```no_run
/// use cmpkit::transport::http_server::{HttpServer, ServerOptions};
/// use std::sync::Arc;
/// let server = HttpServer::bind("127.0.0.1:0", Arc::new(|req: &[u8]| req.to_vec()),
///                               ServerOptions::default()).unwrap();
/// println!("listening on http://{}/pkix/", server.local_addr());
/// server.shutdown().unwrap();
/// ```
pub struct HttpServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds to `addr` (e.g. `"127.0.0.1:0"` for a free port) and starts the acceptor
    /// and [`ServerOptions::workers`] worker threads, each request body going to
    /// `handler`.
    ///
    /// Errors: [`ErrorCode::InvalidArgument`] for unusable options;
    /// [`ErrorCode::TransferFailed`] when the address cannot be resolved or bound (the
    /// detail names the address and the OS error); [`ErrorCode::Internal`] when a thread
    /// cannot be started.
    pub fn bind(addr: &str, handler: Handler, options: ServerOptions) -> Result<HttpServer> {
        options.validate()?;
        let listener = TcpListener::bind(addr).map_err(|e| {
            Error::new(
                ErrorCode::TransferFailed,
                format!("HTTP server cannot bind {addr:?}: {e}"),
            )
        })?;
        let io_err = |what: &str, e: io::Error| {
            Error::new(
                ErrorCode::TransferFailed,
                format!("HTTP server on {addr:?}: {what}: {e}"),
            )
        };
        let local_addr = listener
            .local_addr()
            .map_err(|e| io_err("local address", e))?;
        // Non-blocking accept so the acceptor notices shutdown within a tick.
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("set non-blocking", e))?;

        let (tx, rx) = sync_channel::<TcpStream>(options.max_pending);
        let rx = Arc::new(Mutex::new(rx));
        let workers_wanted = options.workers;
        let shared = Arc::new(Shared {
            handler,
            options,
            stopping: AtomicBool::new(false),
            grace_deadline: OnceLock::new(),
            stats: Mutex::new(ServerStats::default()),
            exited: Mutex::new(0),
            exited_cv: Condvar::new(),
            done: (0..workers_wanted)
                .map(|_| AtomicBool::new(false))
                .collect(),
        });
        let mut server = HttpServer {
            shared: shared.clone(),
            local_addr,
            acceptor: None,
            workers: Vec::with_capacity(workers_wanted),
            stopped: false,
        };
        for i in 0..workers_wanted {
            let (shared, rx) = (shared.clone(), rx.clone());
            let h = thread::Builder::new()
                .name(format!("cmp-http-worker-{i}"))
                .spawn(move || worker_loop(&shared, &rx, i))
                .map_err(|e| {
                    Error::new(
                        ErrorCode::Internal,
                        format!("cannot start HTTP worker thread: {e}"),
                    )
                })?;
            server.workers.push(h);
        }
        let acceptor_shared = shared.clone();
        let h = thread::Builder::new()
            .name("cmp-http-accept".to_string())
            .spawn(move || accept_loop(&acceptor_shared, listener, tx))
            .map_err(|e| {
                Error::new(
                    ErrorCode::Internal,
                    format!("cannot start HTTP acceptor thread: {e}"),
                )
            })?;
        server.acceptor = Some(h);
        Ok(server)
    }

    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The options the server runs with.
    pub fn options(&self) -> &ServerOptions {
        &self.shared.options
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats().clone()
    }

    /// Stops the server: stops accepting (the listening socket is closed, new connections
    /// are refused), closes idle and queued connections, lets requests in flight finish
    /// (their response carries `Connection: close`) for at most
    /// [`ServerOptions::shutdown_grace`], and joins all threads.
    ///
    /// Fails with [`ErrorCode::Timeout`] if some worker is still busy after the grace
    /// time (a handler that does not return); those threads are left to finish on their
    /// own (detached), everything else is stopped.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let grace = self.shared.options.shutdown_grace;
        let deadline = Instant::now() + grace;
        let _ = self.shared.grace_deadline.set(deadline);
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The acceptor exits within a tick; it drops the listener and the queue's sender,
        // which ends the workers' wait for connections.
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        // Wait for the workers until the grace time (plus a tick for them to notice) ends.
        let wait_until = deadline + TICK * 5;
        let n = self.workers.len();
        let mut exited = self.shared.exited.lock().unwrap_or_else(|e| e.into_inner());
        while *exited < n {
            let now = Instant::now();
            if now >= wait_until {
                break;
            }
            exited = self
                .shared
                .exited_cv
                .wait_timeout(exited, wait_until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(exited);
        let mut busy = 0;
        for (i, h) in self.workers.drain(..).enumerate() {
            // A worker that left its loop ends at once: join it.
            if self.shared.done[i].load(Ordering::SeqCst) {
                let _ = h.join();
            } else {
                busy += 1; // detached: it finishes its request on its own
            }
        }
        if busy > 0 {
            return Err(Error::new(
                ErrorCode::Timeout,
                format!(
                    "HTTP server {}: {busy} worker(s) still busy after the shutdown grace time of {grace:?}",
                    self.local_addr
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for HttpServer {
    /// Same as [`HttpServer::shutdown`], ignoring the result.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Accepts connections and queues them for the workers until shutdown.
fn accept_loop(shared: &Shared, listener: TcpListener, tx: SyncSender<TcpStream>) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _peer)) => {
                shared.stats().connections += 1;
                // Accepted sockets must block (with timeouts) in the workers.
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                match tx.try_send(stream) {
                    Ok(()) => {}
                    Err(TrySendError::Full(stream)) => {
                        shared.stats().connections_rejected += 1;
                        reject_busy(shared, stream);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_for_connection(&listener),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // E.g. out of file descriptors or a connection reset before accept: back off.
            Err(_) => thread::sleep(TICK),
        }
    }
}

/// Waits until a connection is pending or a [`TICK`] has passed (so that shutdown is
/// noticed). With `poll(2)` a new connection is accepted at once; sleeping a fixed time
/// instead delayed each new connection on an idle acceptor by up to that time, which capped
/// the rate of short (`Connection: close`) requests far below what the workers can serve.
#[cfg(unix)]
fn wait_for_connection(listener: &TcpListener) {
    use std::os::unix::io::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that lives across the call; the result only says whether
    // to try accept() again, which is non-blocking and handles every outcome.
    let r = unsafe { libc::poll(&mut fd, 1, TICK.as_millis() as libc::c_int) };
    if r < 0 {
        thread::sleep(TICK / 4);
    }
}

#[cfg(not(unix))]
fn wait_for_connection(_listener: &TcpListener) {
    thread::sleep(TICK / 4);
}

/// Answers `503` on a connection the queue has no room for, without blocking the acceptor.
fn reject_busy(shared: &Shared, mut stream: TcpStream) {
    let resp = response_bytes(
        503,
        &[("Retry-After", "1")],
        "text/plain; charset=utf-8",
        b"server busy, try again\n",
        false,
    );
    shared.count_status(503);
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write_all(&resp);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Takes connections from the queue until it is closed; counts itself out at the end.
fn worker_loop(shared: &Shared, rx: &Mutex<Receiver<TcpStream>>, index: usize) {
    loop {
        let next = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(stream) = next else { break };
        if shared.stopping() {
            // Queued but not started when shutdown began: close it.
            continue;
        }
        // A panic in here (not in the handler, which is caught separately) must not take
        // the worker down.
        let _ = catch_unwind(AssertUnwindSafe(|| serve_connection(shared, stream)));
    }
    shared.done[index].store(true, Ordering::SeqCst);
    let mut exited = shared.exited.lock().unwrap_or_else(|e| e.into_inner());
    *exited += 1;
    shared.exited_cv.notify_all();
}

/// Why reading a request stopped.
#[derive(Debug)]
enum ReadError {
    /// The peer closed the connection (`got` bytes of the request had arrived).
    Closed { got: usize },
    /// The deadline passed (`got` bytes of the request had arrived).
    TimedOut { got: usize },
    /// Shutdown began and nothing of a request had arrived.
    Stopping,
    /// Any other I/O error.
    Io,
}

/// One connection being served: the stream and its read buffer.
struct ServerConn<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// Bytes of the current request received so far (for timeout handling).
    request_bytes: usize,
    /// The read timeout last set on the socket: it is set again only when it changes, so
    /// a request costs no `setsockopt` call on a busy connection.
    read_timeout: Option<Duration>,
    /// Whether the write timeout has been set (it is the same for every response).
    write_timeout_set: bool,
}

impl ServerConn<'_> {
    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Receives more bytes before `deadline` (shortened to the shutdown grace deadline
    /// once shutdown began). With `idle`, shutdown ends the wait at once.
    fn fill(&mut self, deadline: Instant, idle: bool) -> std::result::Result<usize, ReadError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 8192];
        loop {
            let mut deadline = deadline;
            if self.shared.stopping() {
                if idle {
                    return Err(ReadError::Stopping);
                }
                if let Some(g) = self.shared.grace_deadline.get() {
                    deadline = deadline.min(*g);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::TimedOut {
                    got: self.request_bytes,
                });
            }
            let wait = (deadline - now).min(TICK);
            if self.read_timeout != Some(wait) {
                if self.stream.set_read_timeout(Some(wait)).is_err() {
                    return Err(ReadError::Io);
                }
                self.read_timeout = Some(wait);
            }
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    return Err(ReadError::Closed {
                        got: self.request_bytes,
                    })
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    self.request_bytes += n;
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(ReadError::Io),
            }
        }
    }

    /// Writes a whole response within the write timeout.
    fn send(&mut self, data: &[u8]) -> bool {
        if !self.write_timeout_set {
            let _ = self
                .stream
                .set_write_timeout(Some(self.shared.options.write_timeout));
            self.write_timeout_set = true;
        }
        self.stream.write_all(data).is_ok() && self.stream.flush().is_ok()
    }

    /// Closes after an error response: stops sending, then discards what the client is
    /// still sending (bounded) so that closing does not reset the connection before the
    /// client has read the response.
    fn linger_close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let end = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut tmp = [0u8; 8192];
        while drained < LINGER_BYTES {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if self.stream.set_read_timeout(Some(end - now)).is_err() {
                break;
            }
            match self.stream.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// A parsed request head.
#[derive(Debug)]
struct RequestHead {
    method: String,
    /// The path of the request target, without query.
    path: String,
    /// HTTP/1.0 (`false`) or 1.1 and later minor versions (`true`).
    http11: bool,
    /// (lower-case name, value)
    headers: Vec<(String, String)>,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    /// All comma-separated elements of the fields named `name` (lower case).
    fn list(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept open after this request.
    fn wants_keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            false
        } else if self.http11 {
            true
        } else {
            self.has_token("connection", "keep-alive")
        }
    }
}

/// A response to send instead of calling the handler.
#[derive(Debug)]
struct Reject {
    status: u16,
    detail: String,
    extra: Vec<(&'static str, &'static str)>,
    /// Answer to a HEAD request: header fields only, no body.
    head_only: bool,
}

fn reject(status: u16, detail: impl Into<String>) -> Reject {
    Reject {
        status,
        detail: detail.into(),
        extra: Vec::new(),
        head_only: false,
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

/// Serves requests on one connection until it closes, fails, times out or has served
/// its maximum number of requests.
fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let opts = &shared.options;
    let mut conn = ServerConn {
        shared,
        stream,
        buf: Vec::new(),
        pos: 0,
        request_bytes: 0,
        read_timeout: None,
        write_timeout_set: false,
    };
    let mut served = 0usize;
    loop {
        let first = served == 0;
        conn.request_bytes = conn.unread().len();
        // Wait for the start of the next request: on a new connection the whole request
        // must arrive within the request timeout; on a kept-alive one the first byte must
        // arrive within the idle timeout and the rest within the request timeout.
        let mut deadline = Instant::now()
            + if first {
                opts.request_timeout
            } else {
                opts.idle_timeout
            };
        if conn.unread().is_empty() {
            match conn.fill(deadline, true) {
                Ok(_) => {}
                Err(ReadError::TimedOut { .. }) if first => {
                    shared.stats().timeouts += 1;
                    return;
                }
                Err(_) => return,
            }
        }
        if !first {
            deadline = Instant::now() + opts.request_timeout;
        }
        let head = match read_head(&mut conn, deadline) {
            Ok(h) => h,
            Err(HeadError::Read(e)) => {
                on_read_error(shared, conn, e);
                return;
            }
            Err(HeadError::Reject(r)) => {
                send_reject(&mut conn, &r, false);
                conn.linger_close();
                return;
            }
        };
        served += 1;
        let keep_alive = head.wants_keep_alive()
            && served < opts.max_requests_per_connection
            && !shared.stopping();
        let framing = match check_request(opts, &head) {
            Ok(f) => f,
            Err(mut r) => {
                r.head_only = head.method == "HEAD";
                // The body (if any) is not read, so the connection cannot be reused
                // unless there is none.
                let no_body = head.count("transfer-encoding") == 0
                    && head.list("content-length").iter().all(|l| l == "0");
                let keep = keep_alive && no_body && r.status != 400;
                send_reject(&mut conn, &r, keep);
                if keep {
                    continue;
                }
                conn.linger_close();
                return;
            }
        };
        if let Some(expect) = head.header("expect") {
            if !expect.eq_ignore_ascii_case("100-continue") {
                send_reject(
                    &mut conn,
                    &reject(417, format!("unsupported Expect: {expect:?}")),
                    false,
                );
                conn.linger_close();
                return;
            }
            if head.http11
                && conn.unread().is_empty()
                && !conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            {
                return;
            }
        }
        let body = match read_body(&mut conn, framing, opts.max_body_size, deadline) {
            Ok(b) => b,
            Err(BodyError::Read(e)) => {
                on_read_error(shared, conn, e);
                return;
            }
            Err(BodyError::Reject(r)) => {
                send_reject(&mut conn, &r, false);
                conn.linger_close();
                return;
            }
        };
        // The handler may take a while; shutdown may begin meanwhile.
        let handler = &shared.handler;
        let answer = catch_unwind(AssertUnwindSafe(|| handler(&body)));
        let keep_alive = keep_alive && !shared.stopping();
        match answer {
            Ok(resp_body) => {
                let resp = response_bytes(
                    200,
                    &[("Cache-Control", "no-cache")],
                    CONTENT_TYPE,
                    &resp_body,
                    keep_alive,
                );
                {
                    let mut st = shared.stats();
                    st.requests_served += 1;
                    *st.responses_by_status.entry(200).or_insert(0) += 1;
                }
                if !conn.send(&resp) || !keep_alive {
                    return;
                }
            }
            Err(_) => {
                shared.stats().handler_panics += 1;
                send_reject(
                    &mut conn,
                    &reject(500, "the request handler failed"),
                    keep_alive,
                );
                if !keep_alive {
                    return;
                }
            }
        }
    }
}

/// Answers a read failure: `408` for a request that started but did not complete in
/// time, `400` for one cut short by the client; nothing otherwise.
fn on_read_error(shared: &Shared, mut conn: ServerConn<'_>, e: ReadError) {
    match e {
        ReadError::TimedOut { got } => {
            shared.stats().timeouts += 1;
            if got > 0 {
                send_reject(
                    &mut conn,
                    &reject(408, "the request did not arrive in time"),
                    false,
                );
            }
        }
        // A half-closed client may still read the answer.
        ReadError::Closed { got } if got > 0 => {
            send_reject(&mut conn, &reject(400, "incomplete request"), false);
        }
        _ => {}
    }
}

/// Sends an error response with a short text body and counts it.
fn send_reject(conn: &mut ServerConn<'_>, r: &Reject, keep_alive: bool) {
    let body = format!("{} {}: {}\n", r.status, reason(r.status), r.detail);
    let mut extra: Vec<(&str, &str)> = r.extra.clone();
    extra.push(("Cache-Control", "no-cache"));
    let mut resp = response_bytes(
        r.status,
        &extra,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        keep_alive,
    );
    if r.head_only {
        // Content-Length still tells the size a GET would have had.
        resp.truncate(resp.len() - body.len());
    }
    // Counted before sending, so a client that has seen the response sees it counted.
    conn.shared.count_status(r.status);
    conn.send(&resp);
}

/// The reason phrase of the status codes this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete HTTP/1.1 response.
fn response_bytes(
    status: u16,
    extra: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

enum HeadError {
    Read(ReadError),
    Reject(Reject),
}

/// Reads and parses the request line and header fields (at most [`MAX_HEADER_SIZE`]
/// bytes, empty lines before the request line skipped).
fn read_head(
    conn: &mut ServerConn<'_>,
    deadline: Instant,
) -> std::result::Result<RequestHead, HeadError> {
    let max = conn.shared.options.max_header_size;
    let mut scanned = 0;
    let mut skipped = 0;
    loop {
        // RFC 9112 section 2.2: ignore empty lines before the request line.
        while let Some(n) = leading_crlf(conn.unread()) {
            conn.consume(n);
            skipped += n;
            scanned = 0;
            if skipped > max {
                return Err(HeadError::Reject(reject(400, "too many empty lines")));
            }
        }
        let data = conn.unread();
        let limit = data.len().min(max);
        if let Some(end) = find_head_end(&data[..limit], scanned) {
            let head = parse_request_head(&data[..end]);
            conn.consume(end);
            return head.map_err(HeadError::Reject);
        }
        if data.len() >= max {
            return Err(HeadError::Reject(reject(
                431,
                format!("request header exceeds {max} bytes"),
            )));
        }
        scanned = data.len().saturating_sub(3);
        conn.fill(deadline, false).map_err(HeadError::Read)?;
    }
}

/// Length of a leading CRLF or LF, if the data starts with one.
fn leading_crlf(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\r\n") {
        Some(2)
    } else if data.starts_with(b"\n") {
        Some(1)
    } else {
        None
    }
}

/// The end of the head (after the empty line), searching from `from`; accepts CRLF and
/// bare LF line ends.
fn find_head_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < data.len() {
        if data[i] == b'\n' {
            if data[i + 1..].starts_with(b"\n") {
                return Some(i + 2);
            }
            if data[i + 1..].starts_with(b"\r\n") {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a request head (request line and fields, ending with the empty line).
fn parse_request_head(raw: &[u8]) -> std::result::Result<RequestHead, Reject> {
    let text = std::str::from_utf8(raw).map_err(|_| reject(400, "request header is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(reject(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(reject(400, "malformed method in request line"));
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f || b >= 0x80) {
        return Err(reject(400, "malformed request target"));
    }
    let Some(v) = version.strip_prefix("HTTP/") else {
        return Err(reject(400, "malformed HTTP version in request line"));
    };
    let vb = v.as_bytes();
    if vb.len() != 3 || !vb[0].is_ascii_digit() || vb[1] != b'.' || !vb[2].is_ascii_digit() {
        return Err(reject(400, "malformed HTTP version in request line"));
    }
    if vb[0] != b'1' {
        return Err(reject(
            505,
            format!("HTTP/{v} is not supported, only HTTP/1.x"),
        ));
    }
    let http11 = vb[2] != b'0';
    // origin-form (/path?query) or absolute-form (http://host/path?query)
    let path = if target.starts_with('/') {
        target
    } else if let Some(rest) = target
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])
    {
        rest.find('/').map(|i| &rest[i..]).unwrap_or("/")
    } else {
        return Err(reject(400, "request target must be a path"));
    };
    let path = path.split(['?', '#']).next().unwrap_or("/").to_string();

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err(reject(400, "obsolete header line folding"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(reject(400, "header line without ':'"));
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(reject(400, "malformed header field name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(reject(400, "control character in header field value"));
        }
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    let head = RequestHead {
        method: method.to_string(),
        path,
        http11,
        headers,
    };
    let hosts = head.count("host");
    if hosts > 1 || (head.http11 && hosts == 0) {
        return Err(reject(
            400,
            "HTTP/1.1 request needs exactly one Host header",
        ));
    }
    Ok(head)
}

/// The body framing of a request (RFC 9112 section 6): chunked or Content-Length.
fn framing_of(head: &RequestHead) -> std::result::Result<Framing, Reject> {
    let codings = head.list("transfer-encoding");
    if head.count("transfer-encoding") > 0 {
        if !head.http11 {
            return Err(reject(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if head.count("content-length") > 0 {
            return Err(reject(400, "both Transfer-Encoding and Content-Length"));
        }
        if codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked") {
            return Ok(Framing::Chunked);
        }
        if codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
        {
            return Err(Reject {
                status: 501,
                detail: format!("unsupported Transfer-Encoding {:?}", codings.join(", ")),
                extra: Vec::new(),
                head_only: false,
            });
        }
        return Err(reject(400, "Transfer-Encoding does not end with chunked"));
    }
    let lengths = head.list("content-length");
    let Some(first) = lengths.first() else {
        if head.count("content-length") > 0 {
            return Err(reject(400, "empty Content-Length"));
        }
        return Err(reject(411, "a Content-Length or chunked body is required"));
    };
    if lengths.iter().any(|l| l != first) {
        return Err(reject(400, "conflicting Content-Length values"));
    }
    if !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(reject(400, "invalid Content-Length"));
    }
    Ok(Framing::Length(first.parse::<u64>().unwrap_or(u64::MAX)))
}

/// Checks path, method, content type and framing; returns the framing to read the body.
fn check_request(opts: &ServerOptions, head: &RequestHead) -> std::result::Result<Framing, Reject> {
    if !opts.serves(&head.path) {
        return Err(reject(404, format!("no CMP endpoint at {:?}", head.path)));
    }
    if head.method != "POST" {
        return Err(Reject {
            status: 405,
            detail: format!("method {} not allowed, CMP uses POST", head.method),
            extra: vec![("Allow", "POST")],
            head_only: false,
        });
    }
    let ct = head.header("content-type").unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(CONTENT_TYPE) {
        return Err(reject(415, format!("Content-Type must be {CONTENT_TYPE}")));
    }
    let framing = framing_of(head)?;
    if let Framing::Length(n) = framing {
        if n > opts.max_body_size as u64 {
            return Err(reject(
                413,
                format!(
                    "request body of {n} bytes exceeds the limit of {} bytes",
                    opts.max_body_size
                ),
            ));
        }
    }
    Ok(framing)
}

enum BodyError {
    Read(ReadError),
    Reject(Reject),
}

impl From<ReadError> for BodyError {
    fn from(e: ReadError) -> Self {
        BodyError::Read(e)
    }
}

/// Reads one line ending in LF of at most `max` bytes (without CR LF).
fn read_line(
    conn: &mut ServerConn<'_>,
    max: usize,
    deadline: Instant,
) -> std::result::Result<Vec<u8>, BodyError> {
    let mut scanned = 0;
    loop {
        let data = conn.unread();
        if let Some(i) = data[scanned..].iter().position(|&b| b == b'\n') {
            let i = scanned + i;
            let mut line = data[..i].to_vec();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            conn.consume(i + 1);
            if line.len() > max {
                return Err(BodyError::Reject(reject(400, "chunk line too long")));
            }
            return Ok(line);
        }
        if data.len() > max + 1 {
            return Err(BodyError::Reject(reject(400, "chunk line too long")));
        }
        scanned = data.len();
        conn.fill(deadline, false)?;
    }
}

/// Appends exactly `n` more bytes to `out`.
fn read_exact_into(
    conn: &mut ServerConn<'_>,
    out: &mut Vec<u8>,
    n: usize,
    deadline: Instant,
) -> std::result::Result<(), ReadError> {
    let mut want = n;
    loop {
        let take = want.min(conn.unread().len());
        out.extend_from_slice(&conn.unread()[..take]);
        conn.consume(take);
        want -= take;
        if want == 0 {
            return Ok(());
        }
        conn.fill(deadline, false)?;
    }
}

/// The hexadecimal chunk size of a chunk-size line (extensions ignored).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.split(';').next()?.trim_matches([' ', '\t']);
    if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// Reads the request body, at most `max` bytes.
fn read_body(
    conn: &mut ServerConn<'_>,
    framing: Framing,
    max: usize,
    deadline: Instant,
) -> std::result::Result<Vec<u8>, BodyError> {
    match framing {
        Framing::Length(n) => {
            // Checked against max before (413).
            let n = n as usize;
            let mut out = Vec::with_capacity(n);
            read_exact_into(conn, &mut out, n, deadline)?;
            Ok(out)
        }
        Framing::Chunked => {
            let max_trailer = conn.shared.options.max_header_size;
            let mut out = Vec::new();
            loop {
                let line = read_line(conn, MAX_CHUNK_LINE, deadline)?;
                let size = parse_chunk_size(&line)
                    .ok_or_else(|| BodyError::Reject(reject(400, "malformed chunk size line")))?;
                if size == 0 {
                    break;
                }
                if size > (max - out.len()) as u64 {
                    return Err(BodyError::Reject(reject(
                        413,
                        format!("chunked request body exceeds the limit of {max} bytes"),
                    )));
                }
                read_exact_into(conn, &mut out, size as usize, deadline)?;
                if !read_line(conn, 0, deadline)?.is_empty() {
                    return Err(BodyError::Reject(reject(400, "chunk not followed by CRLF")));
                }
            }
            let mut trailer = 0usize;
            loop {
                let line = read_line(conn, max_trailer, deadline)?;
                if line.is_empty() {
                    break;
                }
                trailer += line.len() + 2;
                if trailer > max_trailer {
                    return Err(BodyError::Reject(reject(431, "trailer too large")));
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> std::result::Result<RequestHead, Reject> {
        parse_request_head(raw.as_bytes())
    }

    #[test]
    fn request_head_parsing() {
        let h = head("POST /pkix/?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: Application/PKIXCMP; q=1\r\nContent-Length:  5 \r\n\r\n").unwrap();
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.http11),
            ("POST", "/pkix/", true)
        );
        assert_eq!(h.header("content-length"), Some("5"));
        assert_eq!(framing_of(&h).unwrap(), Framing::Length(5));
        assert!(check_request(&ServerOptions::default(), &h).is_ok());
        assert!(h.wants_keep_alive());

        let h = head(
            "POST http://ca.example:80/.well-known/cmp/p/x HTTP/1.0\nConnection: Keep-Alive\n\n",
        )
        .unwrap();
        assert_eq!((h.path.as_str(), h.http11), ("/.well-known/cmp/p/x", false));
        assert!(h.wants_keep_alive());
        let h = head("POST / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.wants_keep_alive());
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n").unwrap();
        assert!(!h.wants_keep_alive());
        // Later 1.x minor versions are served as 1.1.
        assert!(head("POST / HTTP/1.2\r\nHost: a\r\n\r\n").unwrap().http11);

        for (raw, status) in [
            ("POST /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("POST / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400),
            ("PO(ST / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("POST / HTTP/11\r\nHost: a\r\n\r\n", 400),
            ("POST / FTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("POST / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("POST pkix HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
        ] {
            assert_eq!(head(raw).unwrap_err().status, status, "{raw:?}");
        }
    }

    #[test]
    fn framing_and_checks() {
        let opts = ServerOptions::default();
        let status = |raw: &str| {
            let h = head(raw).unwrap();
            check_request(&opts, &h).map_err(|r| r.status)
        };
        let ok = "Host: a\r\nContent-Type: application/pkixcmp\r\n";
        assert_eq!(
            status(&format!(
                "POST / HTTP/1.1\r\n{ok}Transfer-Encoding: chunked\r\n\r\n"
            )),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            status(&format!(
                "POST / HTTP/1.1\r\n{ok}Content-Length: 3, 3\r\n\r\n"
            )),
            Ok(Framing::Length(3))
        );
        for (raw, want) in [
            (format!("POST /x HTTP/1.1\r\n{ok}Content-Length: 1\r\n\r\n"), 404),
            (format!("POST /pkix HTTP/1.1\r\n{ok}Content-Length: 1\r\n\r\n"), 404),
            (format!("POST /.well-known/cmpx HTTP/1.1\r\n{ok}Content-Length: 1\r\n\r\n"), 404),
            (format!("GET /pkix/ HTTP/1.1\r\n{ok}\r\n"), 405),
            (format!("post /pkix/ HTTP/1.1\r\n{ok}\r\n"), 405),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n".to_string(), 415),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmpx\r\n\r\n".to_string(), 415),
            (format!("POST / HTTP/1.1\r\n{ok}\r\n"), 411),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length: 1048577\r\n\r\n"), 413),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length: 99999999999999999999999\r\n\r\n"), 413),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length: 1, 2\r\n\r\n"), 400),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length: -1\r\n\r\n"), 400),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length:\r\n\r\n"), 400),
            (format!("POST / HTTP/1.1\r\n{ok}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
            (format!("POST / HTTP/1.1\r\n{ok}Transfer-Encoding: gzip, chunked\r\n\r\n"), 501),
            (format!("POST / HTTP/1.1\r\n{ok}Transfer-Encoding: chunked, gzip\r\n\r\n"), 400),
            (format!("POST / HTTP/1.0\r\n{ok}Transfer-Encoding: chunked\r\n\r\n"), 400),
        ] {
            assert_eq!(status(&raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn served_paths() {
        let opts = ServerOptions::default();
        for p in [
            "/",
            "/pkix/",
            "/.well-known/cmp",
            "/.well-known/cmp/",
            "/.well-known/cmp/p/ca1",
            "/.well-known/cmp/p/ca1/initialization",
            "/.well-known/cmp/getcacerts",
        ] {
            assert!(opts.serves(p), "{p}");
        }
        for p in [
            "/pkix",
            "/other",
            "/.well-known/cmpfoo",
            "/.well-known/",
            "",
        ] {
            assert!(!opts.serves(p), "{p}");
        }
        let opts = ServerOptions {
            paths: vec!["/ca".into()],
            well_known: false,
            ..Default::default()
        };
        assert!(opts.serves("/ca") && !opts.serves("/") && !opts.serves("/.well-known/cmp"));
    }

    #[test]
    fn options_are_validated() {
        let ok = ServerOptions::default();
        assert!(ok.validate().is_ok());
        for o in [
            ServerOptions {
                workers: 0,
                ..ok.clone()
            },
            ServerOptions {
                max_pending: 0,
                ..ok.clone()
            },
            ServerOptions {
                max_body_size: 0,
                ..ok.clone()
            },
            ServerOptions {
                max_requests_per_connection: 0,
                ..ok.clone()
            },
            ServerOptions {
                request_timeout: Duration::ZERO,
                ..ok.clone()
            },
            ServerOptions {
                idle_timeout: Duration::ZERO,
                ..ok.clone()
            },
            ServerOptions {
                write_timeout: Duration::ZERO,
                ..ok.clone()
            },
            ServerOptions {
                paths: vec!["pkix".into()],
                ..ok.clone()
            },
            ServerOptions {
                paths: vec!["/a?b".into()],
                ..ok.clone()
            },
            ServerOptions {
                paths: vec![],
                well_known: false,
                ..ok.clone()
            },
        ] {
            let e =
                HttpServer::bind("127.0.0.1:0", Arc::new(|b: &[u8]| b.to_vec()), o).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
        }
        let e = HttpServer::bind("256.0.0.1:0", Arc::new(|b: &[u8]| b.to_vec()), ok).unwrap_err();
        assert_eq!(e.code, ErrorCode::TransferFailed, "{e}");
    }

    #[test]
    fn helpers() {
        assert_eq!(find_head_end(b"a\r\n\r\nbody", 0), Some(5));
        assert_eq!(find_head_end(b"a\n\nbody", 0), Some(3));
        assert_eq!(find_head_end(b"a\r\nb", 0), None);
        assert_eq!(parse_chunk_size(b"1A;ext=1"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"x"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111"), None);
        let r = String::from_utf8(response_bytes(
            200,
            &[("Cache-Control", "no-cache")],
            CONTENT_TYPE,
            b"ab",
            true,
        ))
        .unwrap();
        assert_eq!(r, "HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\nab");
        let mut s = ServerStats::default();
        s.responses_by_status.insert(200, 3);
        s.responses_by_status.insert(404, 2);
        s.responses_by_status.insert(500, 1);
        assert_eq!(
            (s.errors(), s.status_count(404), s.status_count(418)),
            (3, 2, 0)
        );
    }

    /// A header block over 16 KiB gets 431; an idle (silent) new connection is closed
    /// after the request timeout without an answer.
    #[test]
    fn oversized_header_and_silent_client() {
        let opts = ServerOptions {
            request_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let server =
            HttpServer::bind("127.0.0.1:0", Arc::new(|b: &[u8]| b.to_vec()), opts).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while req.len() <= MAX_HEADER_SIZE {
            req.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        s.write_all(&req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");

        let start = Instant::now();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let stats = server.stats();
        assert_eq!(stats.status_count(431), 1);
        assert_eq!(stats.timeouts, 1);
        server.shutdown().unwrap();
    }
}
