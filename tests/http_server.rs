//! The CMP-over-HTTP server (`transport::http_server`): round trips with our client,
//! error statuses for raw requests, keep-alive, chunked bodies, timeouts, panics,
//! shutdown, load, and OpenSSL's `openssl cmp` client as a peer.

mod common;

use cmpkit::transport::http_server::{Handler, HttpServer, ServerOptions};
use cmpkit::transport::HttpTransfer;
use cmpkit::ErrorCode;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

fn echo() -> Handler {
    Arc::new(|b: &[u8]| b.to_vec())
}

fn start(handler: Handler, options: ServerOptions) -> HttpServer {
    HttpServer::bind("127.0.0.1:0", handler, options).expect("bind")
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    /// (lower-case name, value)
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw client connection with a read buffer.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).unwrap();
    }

    /// Reads one response framed by Content-Length (the server always sends one).
    fn response(&mut self) -> Option<Response> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("Content-Length");
        while self.buf.len() < len {
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = self.buf.drain(..len).collect();
        Some(Response {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (EOF or reset) with nothing more to read.
    fn closed(&mut self) -> bool {
        let mut tmp = [0u8; 1];
        matches!(self.s.read(&mut tmp), Ok(0) | Err(_)) && self.buf.is_empty()
    }
}

fn post(path: &str, version: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} {version}\r\nHost: localhost\r\nContent-Type: application/pkixcmp\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// One request on a fresh connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut c = Raw::connect(addr);
    c.send(request);
    c.response().expect("a response")
}

#[test]
fn round_trip_with_http_transfer() {
    let server = start(echo(), ServerOptions::default());
    let port = server.local_addr().port();
    for path in [
        "/",
        "/pkix/",
        "/.well-known/cmp",
        "/.well-known/cmp/p/ca-1",
        "/.well-known/cmp/p/ca-1/initialization",
    ] {
        let t = HttpTransfer::new(&format!("http://127.0.0.1:{port}{path}")).unwrap();
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(t.post(&body).unwrap(), body, "{path}");
    }
    // Our client reports the server's error statuses.
    let t = HttpTransfer::new(&format!("http://127.0.0.1:{port}/nope")).unwrap();
    let e = t.post(b"x").unwrap_err();
    assert_eq!(e.code, ErrorCode::HttpError, "{e}");
    assert!(e.detail.contains("404"), "{e}");
    let mut t = HttpTransfer::new(&format!("http://127.0.0.1:{port}/pkix/")).unwrap();
    t.set_timeout(Duration::from_secs(10)).unwrap();
    let e = t.post(&vec![0u8; (1 << 20) + 1]).unwrap_err();
    assert_eq!(e.code, ErrorCode::HttpError, "{e}");
    assert!(e.detail.contains("413"), "{e}");
    let stats = server.stats();
    assert_eq!(stats.requests_served, 5);
    assert_eq!(stats.status_count(404), 1);
    assert_eq!(stats.status_count(413), 1);
    server.shutdown().unwrap();
}

#[test]
fn response_headers() {
    let server = start(
        Arc::new(|_: &[u8]| b"\x30\x03abc".to_vec()),
        ServerOptions::default(),
    );
    let r = exchange(
        server.local_addr(),
        &post("/pkix/?a=b", "HTTP/1.1", "Connection: close\r\n", b"req"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pkixcmp"));
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"\x30\x03abc");
}

#[test]
fn error_statuses() {
    let server = start(echo(), ServerOptions::default());
    let addr = server.local_addr();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (post("/unknown", "HTTP/1.1", "", b"x"), 404),
        (post("/pkix", "HTTP/1.1", "", b"x"), 404),
        (b"GET /pkix/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 405),
        (b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            415,
        ),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            415,
        ),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\n\r\n".to_vec(),
            411,
        ),
        (b"garbage\r\n\r\n".to_vec(), 400),
        (b"POST /pkix/ HTTP/1.1\r\nbad header\r\n\r\n".to_vec(), 400),
        (b"POST /pkix/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 400),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx".to_vec(),
            400,
        ),
        (
            b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            400,
        ),
        (b"POST /pkix/ HTTP/3.0\r\nHost: a\r\n\r\n".to_vec(), 505),
    ];
    for (req, want) in &cases {
        let r = exchange(addr, req);
        assert_eq!(r.status, *want, "{}", String::from_utf8_lossy(req));
        assert!(
            r.header("content-type").unwrap().starts_with("text/plain"),
            "{r:?}"
        );
        if *want == 405 {
            assert_eq!(r.header("allow"), Some("POST"));
        }
    }
    // A chunked body growing past the limit: 413 once it is noticed.
    let mut c = Raw::connect(addr);
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"80000\r\n");
    c.send(&vec![b'a'; 0x80000]);
    c.send(b"\r\n80001\r\n");
    assert_eq!(c.response().unwrap().status, 413);
    assert!(c.closed());

    let stats = server.stats();
    assert_eq!(stats.status_count(400), 5);
    assert_eq!(stats.status_count(404), 2);
    assert_eq!(stats.status_count(405), 2);
    assert_eq!(stats.status_count(411), 1);
    assert_eq!(stats.status_count(413), 2);
    assert_eq!(stats.status_count(415), 2);
    assert_eq!(stats.status_count(505), 1);
    assert_eq!(stats.requests_served, 0);
    assert_eq!(stats.errors(), cases.len() as u64 + 1);
}

#[test]
fn keep_alive_two_requests_on_one_connection() {
    let server = start(echo(), ServerOptions::default());
    let mut c = Raw::connect(server.local_addr());
    c.send(&post("/pkix/", "HTTP/1.1", "", b"first"));
    let r = c.response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // An error without a body keeps the connection too.
    c.send(b"GET /pkix/ HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.response().unwrap().status, 405);
    // Pipelined: two requests in one write, answered in order.
    let mut both = post("/pkix/", "HTTP/1.1", "", b"second");
    both.extend(post("/", "HTTP/1.1", "Connection: close\r\n", b"third"));
    c.send(&both);
    assert_eq!(c.response().unwrap().body, b"second");
    let r = c.response().unwrap();
    assert_eq!(r.body, b"third");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    assert_eq!(server.stats().connections, 1);
}

#[test]
fn head_request_gets_no_body_and_small_header_limit() {
    let opts = ServerOptions {
        max_header_size: 1024,
        ..Default::default()
    };
    let server = start(echo(), opts);
    let mut c = Raw::connect(server.local_addr());
    c.send(b"HEAD /pkix/ HTTP/1.1\r\nHost: a\r\n\r\n");
    c.send(&post("/pkix/", "HTTP/1.1", "", b"after HEAD"));
    // Read the HEAD answer by hand: Content-Length is there, but no body follows.
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.s.read_exact(&mut b).unwrap();
        buf.push(b[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(text.contains("Allow: POST\r\n"), "{text}");
    assert_eq!(c.response().unwrap().body, b"after HEAD");
    // 1 KiB header limit.
    let big = format!("X-Big: {}\r\n", "a".repeat(1100));
    let r = exchange(server.local_addr(), &post("/", "HTTP/1.1", &big, b"x"));
    assert_eq!(r.status, 431);
}

#[test]
fn requests_per_connection_are_bounded() {
    let opts = ServerOptions {
        max_requests_per_connection: 3,
        ..Default::default()
    };
    let server = start(echo(), opts);
    let mut c = Raw::connect(server.local_addr());
    for i in 1..=3 {
        c.send(&post("/", "HTTP/1.1", "", b"x"));
        let r = c.response().unwrap();
        let want = if i < 3 { "keep-alive" } else { "close" };
        assert_eq!(r.header("connection"), Some(want), "request {i}");
    }
    assert!(c.closed());
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let opts = ServerOptions {
        idle_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = start(echo(), opts);
    let mut c = Raw::connect(server.local_addr());
    c.send(&post("/", "HTTP/1.1", "", b"x"));
    assert_eq!(c.response().unwrap().status, 200);
    let start = Instant::now();
    assert!(c.closed());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn http10_requests() {
    let server = start(echo(), ServerOptions::default());
    let addr = server.local_addr();
    // Plain HTTP/1.0 (no Host needed): answered, then closed.
    let mut c = Raw::connect(addr);
    c.send(b"POST /pkix/ HTTP/1.0\r\nContent-Type: application/pkixcmp\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // HTTP/1.0 with keep-alive, as OpenSSL's client sends ir and then certConf.
    let mut c = Raw::connect(addr);
    for body in [&b"ir"[..], b"certConf"] {
        c.send(&post(
            "/pkix/",
            "HTTP/1.0",
            "Connection: keep-alive\r\n",
            body,
        ));
        let r = c.response().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, body));
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    assert_eq!(server.stats().connections, 2);
}

#[test]
fn chunked_request_body() {
    let server = start(echo(), ServerOptions::default());
    let mut c = Raw::connect(server.local_addr());
    c.send(b"POST /pkix/ HTTP/1.1\r\nHost: a\r\nContent-Type: application/PKIXCMP; charset=x\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"5;ext=1\r\nhello\r\n");
    thread::sleep(Duration::from_millis(20));
    c.send(b"1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n");
    let r = c.response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world!"[..]));
    // The connection stays usable after a chunked body.
    c.send(&post("/", "HTTP/1.1", "", b"next"));
    assert_eq!(c.response().unwrap().body, b"next");
}

#[test]
fn expect_100_continue() {
    let server = start(echo(), ServerOptions::default());
    let mut c = Raw::connect(server.local_addr());
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/pkixcmp\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let mut interim = [0u8; 25];
    c.s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"body");
    assert_eq!(c.response().unwrap().body, b"body");
}

#[test]
fn slowloris_client_is_closed_after_timeout() {
    let opts = ServerOptions {
        request_timeout: Duration::from_millis(300),
        workers: 1,
        ..Default::default()
    };
    let server = start(echo(), opts);
    let addr = server.local_addr();
    let start_t = Instant::now();
    let mut c = Raw::connect(addr);
    // Trickle the header, one line every 100 ms: never complete in time.
    let writer = {
        let mut s = c.s.try_clone().unwrap();
        thread::spawn(move || {
            let _ = s.write_all(b"POST /pkix/ HTTP/1.1\r\n");
            for _ in 0..30 {
                thread::sleep(Duration::from_millis(100));
                if s.write_all(b"X-Slow: 1\r\n").is_err() {
                    break;
                }
            }
        })
    };
    let r = c.response().expect("a 408 before the close");
    assert_eq!(r.status, 408);
    assert!(c.closed());
    let took = start_t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    writer.join().unwrap();
    // The single worker is free again.
    assert_eq!(
        exchange(addr, &post("/", "HTTP/1.1", "", b"ok")).status,
        200
    );
    assert_eq!(server.stats().timeouts, 1);
}

#[test]
fn panicking_handler_gives_500_and_server_lives_on() {
    let handler: Handler = Arc::new(|b: &[u8]| {
        if b == b"boom" {
            panic!("handler panic (expected by the test)");
        }
        b.to_vec()
    });
    let server = start(
        handler,
        ServerOptions {
            workers: 1,
            ..Default::default()
        },
    );
    let addr = server.local_addr();
    let mut c = Raw::connect(addr);
    c.send(&post("/", "HTTP/1.1", "", b"boom"));
    assert_eq!(c.response().unwrap().status, 500);
    // Same connection, then a new one.
    c.send(&post("/", "HTTP/1.1", "", b"fine"));
    assert_eq!(c.response().unwrap().body, b"fine");
    let t = HttpTransfer::new(&format!("http://{addr}/pkix/")).unwrap();
    assert_eq!(t.post(b"again").unwrap(), b"again");
    let stats = server.stats();
    assert_eq!(
        (
            stats.handler_panics,
            stats.status_count(500),
            stats.requests_served
        ),
        (1, 1, 2)
    );
}

#[test]
fn shutdown_lets_in_flight_request_finish() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let handler: Handler = Arc::new(move |b: &[u8]| {
        let _ = started_tx.lock().unwrap().send(());
        thread::sleep(Duration::from_millis(300));
        b.to_vec()
    });
    let server = start(handler, ServerOptions::default());
    let addr = server.local_addr();
    // An idle keep-alive connection does not hold up the shutdown.
    let mut idle = Raw::connect(addr);
    idle.send(&post("/", "HTTP/1.1", "", b"warm-up"));
    assert_eq!(idle.response().unwrap().status, 200);
    started_rx.recv().unwrap();

    let client = thread::spawn(move || {
        let mut c = Raw::connect(addr);
        c.send(&post("/pkix/", "HTTP/1.1", "", b"in flight"));
        let r = c.response();
        (r, c.closed())
    });
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the handler started");
    let t0 = Instant::now();
    server.shutdown().expect("clean shutdown");
    let took = t0.elapsed();
    let (r, closed) = client.join().unwrap();
    let r = r.expect("the in-flight request is answered");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"in flight"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed);
    assert!(idle.closed());
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Not listening any more.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn shutdown_is_bounded_with_a_stuck_handler() {
    let handler: Handler = Arc::new(|b: &[u8]| {
        thread::sleep(Duration::from_secs(3));
        b.to_vec()
    });
    let opts = ServerOptions {
        shutdown_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let server = start(handler, opts);
    let addr = server.local_addr();
    let client = thread::spawn(move || {
        let mut c = Raw::connect(addr);
        c.send(&post("/", "HTTP/1.1", "", b"slow"));
        c.response()
    });
    thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let e = server.shutdown().unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(e.code, ErrorCode::Timeout, "{e}");
    assert!(e.detail.contains("1 worker"), "{e}");
    // The detached worker still answers its request.
    assert_eq!(client.join().unwrap().unwrap().status, 200);
}

#[test]
fn drop_stops_the_server() {
    let addr = {
        let server = start(echo(), ServerOptions::default());
        server.local_addr()
    };
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn load_8_clients_by_50_requests_on_2_workers() {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 50;
    let server = start(echo(), ServerOptions::default());
    assert_eq!(server.options().workers, 2);
    let url = format!("http://{}/pkix/", server.local_addr());
    let ok = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, ok) = (url.clone(), ok.clone());
            thread::spawn(move || {
                let mut t = HttpTransfer::new(&url).unwrap();
                t.set_timeout(Duration::from_secs(20)).unwrap();
                let mut failures = Vec::new();
                for i in 0..PER_CLIENT {
                    let body = format!("client {c} request {i}").repeat(20).into_bytes();
                    match t.post(&body) {
                        Ok(r) if r == body => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => failures.push(format!("{c}/{i}: wrong body")),
                        Err(e) => failures.push(format!("{c}/{i}: {e}")),
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let took = t0.elapsed();
    let total = CLIENTS * PER_CLIENT;
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
    assert_eq!(ok.load(Ordering::Relaxed), total);
    let stats = server.stats();
    assert_eq!(stats.requests_served, total as u64);
    assert_eq!(stats.status_count(200), total as u64);
    assert_eq!(stats.errors(), 0);
    assert_eq!(stats.connections, total as u64);
    assert!(took < Duration::from_secs(60), "{took:?}");
    println!(
        "load: {total} requests ({CLIENTS} clients x {PER_CLIENT}, one connection each) on 2 workers in {took:?}: {:.0} requests/s",
        total as f64 / took.as_secs_f64()
    );
    server.shutdown().unwrap();
}

#[test]
fn full_queue_answers_503() {
    // One worker held by a slow request, room for one queued connection: a third gets 503.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let handler: Handler = Arc::new(move |b: &[u8]| {
        let _ = started_tx.lock().unwrap().send(());
        thread::sleep(Duration::from_millis(500));
        b.to_vec()
    });
    let opts = ServerOptions {
        workers: 1,
        max_pending: 1,
        ..Default::default()
    };
    let server = start(handler, opts);
    let addr = server.local_addr();
    let busy = thread::spawn(move || {
        exchange(addr, &post("/", "HTTP/1.1", "Connection: close\r\n", b"1")).status
    });
    started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let _queued = TcpStream::connect(addr).unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut third = Raw::connect(addr);
    let r = third.response().expect("503");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(server.stats().connections_rejected, 1);
}

/// `openssl cmp` as the HTTP client: it accepts our HTTP response and only complains
/// about the CMP content (the canned genp does not match its transaction).
#[test]
fn openssl_cmp_client_accepts_our_responses() {
    if !common::available_or_skip("openssl_cmp_client_accepts_our_responses") {
        return;
    }
    let genp = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/openssl-3.0/genm_mac_rsp_1.der"),
    )
    .unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let handler: Handler = Arc::new(move |req: &[u8]| {
        assert_eq!(req.first(), Some(&0x30), "a DER SEQUENCE");
        seen.fetch_add(1, Ordering::SeqCst);
        genp.clone()
    });
    let server = start(handler, ServerOptions::default());
    let out = std::process::Command::new("timeout")
        .args(["60", "openssl", "cmp", "-config", ""])
        .args([
            "-server",
            &format!("127.0.0.1:{}", server.local_addr().port()),
        ])
        .args(["-path", "pkix/", "-cmd", "genm"])
        .args(["-ref", common::REF])
        .args(["-secret", &format!("pass:{}", common::SECRET)])
        .args(["-recipient", common::RECIPIENT])
        .args(["-infotype", "signKeyPairTypes"])
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl cmp");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("openssl cmp: {}\n{output}", out.status);
    assert!(
        !out.status.success(),
        "the canned genp must not be accepted"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "one genm reached the handler"
    );
    // OpenSSL 3.0 prints "CMP error: transactionid unmatched" (on stdout); the
    // "will contact http://..." info line is not a complaint.
    let errors: Vec<String> = output
        .lines()
        .map(str::to_ascii_lowercase)
        .filter(|l| l.contains("error") || l.contains("fail"))
        .collect();
    assert!(
        errors.iter().any(|l| l.contains("transaction")
            || l.contains("nonce")
            || l.contains("failed to check")),
        "expected a CMP-level complaint: {output}"
    );
    for transfer_problem in [
        "content-type",
        "content type",
        "connection",
        "http",
        "transfer",
        "error while reading",
        "timeout",
        "timed out",
    ] {
        assert!(
            !errors.iter().any(|l| l.contains(transfer_problem)),
            "HTTP/transfer-level complaint {transfer_problem:?}: {output}"
        );
    }
    let stats = server.stats();
    assert_eq!((stats.requests_served, stats.errors()), (1, 0));
    server.shutdown().unwrap();
}
