//! The load generator of `bench_cmp http` (BENCHMARKS.md, "HTTP server throughput"):
//! drives [`HttpServer`] over loopback with requests that were built and protected before
//! the clock, and accounts the CPU time of the server's and the client's threads apart.
//!
//! ```text
//! bench_cmp http <seconds> <workers> <connections> [key=value ...]
//!   scenario=ir_mac_implicit|cr_sig_implicit   what each request is (one round trip each)
//!   client=keepalive   one thread per persistent connection (default)
//!   client=poll        one thread serving all connections with poll(2)
//!   client=close       one thread per connection slot, a new connection per request
//!                      (HttpTransfer, `Connection: close`), the earlier method
//!   client=direct      no HTTP: <connections> threads call Server::process themselves
//!   depth=N            requests in flight per persistent connection (pipelining; default 1)
//!   warmup=S           seconds run before the clock starts (default 0.5)
//! ```
//!
//! During the clock a client only writes prepared bytes and finds the end of each response
//! (status line, `Content-Length`, `Connection: close`); every response body is handed to
//! its transaction after the clock, which must accept it and hold a certificate.

use super::Pki;
use cmpkit::client::{EnrollRequest, Operation, Transaction};
use cmpkit::transport::http::HttpTransfer;
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What each request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// ir, MAC (OpenSSL's PBM parameters), implicit confirmation.
    IrMacImplicit,
    /// cr, signature (client certificate), implicit confirmation.
    CrSigImplicit,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::IrMacImplicit => "ir_mac_implicit",
            Kind::CrSigImplicit => "cr_sig_implicit",
        }
    }

    /// A generous upper bound of the request rate on this kind of machine, to prepare enough.
    fn max_rate(self) -> f64 {
        match self {
            Kind::IrMacImplicit => 16000.0,
            Kind::CrSigImplicit => 9000.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientMode {
    KeepAlive,
    Poll,
    Close,
    Direct,
}

impl ClientMode {
    fn name(self) -> &'static str {
        match self {
            ClientMode::KeepAlive => "keepalive",
            ClientMode::Poll => "poll",
            ClientMode::Close => "close",
            ClientMode::Direct => "direct",
        }
    }
}

struct Settings {
    secs: f64,
    workers: usize,
    connections: usize,
    kind: Kind,
    mode: ClientMode,
    depth: usize,
    warmup: f64,
}

fn parse(args: &[String]) -> Settings {
    let mut s = Settings {
        secs: args.first().map_or(5.0, |a| a.parse().expect("seconds")),
        workers: args.get(1).map_or(1, |a| a.parse().expect("workers")),
        connections: args.get(2).map_or(2, |a| a.parse().expect("connections")),
        kind: Kind::IrMacImplicit,
        mode: ClientMode::KeepAlive,
        depth: 1,
        warmup: 0.5,
    };
    for a in args.iter().skip(3) {
        let (k, v) = a.split_once('=').expect("options are key=value");
        match k {
            "scenario" => {
                s.kind = match v {
                    "ir_mac_implicit" => Kind::IrMacImplicit,
                    "cr_sig_implicit" => Kind::CrSigImplicit,
                    _ => panic!("scenario: ir_mac_implicit or cr_sig_implicit"),
                }
            }
            "client" => {
                s.mode = match v {
                    "keepalive" => ClientMode::KeepAlive,
                    "poll" => ClientMode::Poll,
                    "close" => ClientMode::Close,
                    "direct" => ClientMode::Direct,
                    _ => panic!("client: keepalive, poll, close or direct"),
                }
            }
            "depth" => s.depth = v.parse().expect("depth"),
            "warmup" => s.warmup = v.parse().expect("warmup"),
            _ => panic!("unknown option {k}"),
        }
    }
    assert!(s.connections >= 1 && s.depth >= 1 && s.workers >= 1);
    s
}

/// Transactions with their first request, prepared (and protected) before any clock.
fn prepare(pki: &Pki, kind: Kind, n: usize) -> Vec<(Transaction, Vec<u8>)> {
    let key = super::new_key();
    let (config, subject) = match kind {
        Kind::IrMacImplicit => (&pki.mac_implicit_config, "/CN=Bench"),
        // As OpenSSL's harness: the subject of the client certificate.
        Kind::CrSigImplicit => (&pki.sig_implicit_config, "/CN=Bench Client"),
    };
    (0..n)
        .map(|_| {
            let req = EnrollRequest {
                subject: Some(cmpkit::message::parse_name(subject).unwrap()),
                sans: Vec::new(),
                key: key.clone(),
            };
            let op = match kind {
                Kind::IrMacImplicit => Operation::Ir(req),
                Kind::CrSigImplicit => Operation::Cr(req),
            };
            let tx = Transaction::start(config.clone(), op).unwrap();
            let der = tx.pending_request().unwrap().to_vec();
            (tx, der)
        })
        .collect()
}

/// The request as it goes on the wire: a keep-alive POST, head and body in one buffer.
fn http_request(addr: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /pkix/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pkixcmp\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Response bodies of one connection, back to back, with their ends.
#[derive(Default)]
struct Bodies {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Bodies {
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
}

/// One persistent connection and the requests it sends, in order.
struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    reqs: Vec<Vec<u8>>,
    /// Requests written on the current connection or earlier ones (not all answered).
    sent: usize,
    bodies: Bodies,
    buf: Vec<u8>,
    /// Parsed up to here in `buf`.
    pos: usize,
    reconnects: usize,
    depth: usize,
    /// Stopped sending (clock over or requests used up).
    draining: bool,
    exhausted: bool,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// Where the body of a complete response starts and ends in `data`, and whether the server
/// closes after it; `None` while incomplete. Only what framing needs is looked at.
fn frame(data: &[u8]) -> Option<(usize, usize, bool)> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &data[..head_end];
    assert!(
        head.starts_with(b"HTTP/1.1 200 "),
        "HTTP status: {}",
        String::from_utf8_lossy(&head[..head.len().min(40)])
    );
    let mut len: Option<usize> = None;
    let mut close = false;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            len = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    let end = head_end + len.expect("Content-Length");
    (data.len() >= end).then_some((head_end, end, close))
}

impl Conn {
    fn new(addr: SocketAddr, reqs: Vec<Vec<u8>>, depth: usize) -> Conn {
        Conn {
            addr,
            stream: connect(addr),
            bodies: Bodies {
                data: Vec::with_capacity(reqs.len() * 1024),
                ends: Vec::with_capacity(reqs.len()),
            },
            reqs,
            sent: 0,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            reconnects: 0,
            depth,
            draining: false,
            exhausted: false,
        }
    }

    fn answered(&self) -> usize {
        self.bodies.ends.len()
    }

    /// Fills the pipeline up to `depth` requests in flight, unless told to stop.
    fn send(&mut self, stop: &AtomicBool) {
        if stop.load(Ordering::Relaxed) {
            self.draining = true;
        }
        while !self.draining && self.sent < self.answered() + self.depth {
            if self.sent == self.reqs.len() {
                self.exhausted = true;
                self.draining = true;
                break;
            }
            self.stream.write_all(&self.reqs[self.sent]).expect("send");
            self.sent += 1;
        }
    }

    /// Whether everything sent has been answered and nothing more will be sent.
    fn finished(&self) -> bool {
        self.draining && self.answered() == self.sent
    }

    /// One read (blocks if nothing is there), then every complete response is taken and
    /// the pipeline refilled.
    fn read_some(&mut self, done: &AtomicUsize, stop: &AtomicBool) {
        let mut tmp = [0u8; 16 * 1024];
        let n = match self.stream.read(&mut tmp) {
            Ok(0) => panic!("the server closed a connection unexpectedly"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => panic!("receive: {e}"),
        };
        self.buf.extend_from_slice(&tmp[..n]);
        let mut closed = false;
        while let Some((start, end, close)) = frame(&self.buf[self.pos..]) {
            let body = &self.buf[self.pos + start..self.pos + end];
            self.bodies.data.extend_from_slice(body);
            self.bodies.ends.push(self.bodies.data.len());
            self.pos += end;
            done.fetch_add(1, Ordering::Relaxed);
            if close {
                closed = true;
                break;
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if closed {
            // The server's limit of requests per connection: what was sent after the last
            // answer was not served; send it again on a new connection.
            self.stream = connect(self.addr);
            self.sent = self.answered();
            self.buf.clear();
            self.pos = 0;
            self.reconnects += 1;
        }
        self.send(stop);
    }
}

/// Per group of this process's threads — server (`cmp-http-*`), client (`bench-client*`),
/// rest — the CPU time (ns) and the voluntary context switches: a thread that computes
/// switches voluntarily only when it waits (for the network, or for a lock).
fn thread_stats() -> [(u64, u64); 3] {
    let mut out = [(0u64, 0u64); 3];
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let p = e.path();
        let (Ok(comm), Ok(st), Ok(status)) = (
            std::fs::read_to_string(p.join("comm")),
            std::fs::read_to_string(p.join("schedstat")),
            std::fs::read_to_string(p.join("status")),
        ) else {
            continue; // the thread just ended
        };
        let ns: u64 = st.split_whitespace().next().unwrap().parse().unwrap();
        let vcs: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let g = if comm.starts_with("cmp-http") {
            0
        } else if comm.starts_with("bench-client") {
            1
        } else {
            2
        };
        out[g].0 += ns;
        out[g].1 += vcs;
    }
    out
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    (total - v[3] - v[4], total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Entry point of `bench_cmp http`.
pub fn run(args: &[String]) {
    let st = parse(args);
    let pki = Pki::new();
    let server = pki.server.clone();
    let direct = st.mode == ClientMode::Direct;
    let http = (!direct).then(|| {
        let server = server.clone();
        HttpServer::bind(
            "127.0.0.1:0",
            Arc::new(move |req: &[u8]| server.process(req)),
            ServerOptions {
                workers: st.workers,
                ..ServerOptions::default()
            },
        )
        .unwrap()
    });
    let addr = http.as_ref().map(|h| h.local_addr());
    let per_conn =
        ((st.secs + st.warmup + 1.0) * st.kind.max_rate() / st.connections as f64) as usize + 100;
    let t_prep = Instant::now();
    let mut prepared: Vec<Vec<(Transaction, Vec<u8>)>> = (0..st.connections)
        .map(|_| prepare(&pki, st.kind, per_conn))
        .collect();
    eprintln!(
        "# prepared {} requests in {:.1} s",
        per_conn * st.connections,
        t_prep.elapsed().as_secs_f64()
    );

    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ders = |txs: &Vec<(Transaction, Vec<u8>)>| -> Vec<Vec<u8>> {
        txs.iter().map(|(_, r)| r.clone()).collect()
    };
    type Out = Vec<(Bodies, usize, bool)>;
    let spawn = |name: String, f: Box<dyn FnOnce() -> Out + Send>| {
        std::thread::Builder::new().name(name).spawn(f).unwrap()
    };
    let mut handles = Vec::new();
    match st.mode {
        ClientMode::KeepAlive => {
            for (i, txs) in prepared.iter().enumerate() {
                let reqs: Vec<Vec<u8>> = txs
                    .iter()
                    .map(|(_, r)| http_request(addr.unwrap(), r))
                    .collect();
                let (done, stop, depth) = (done.clone(), stop.clone(), st.depth);
                handles.push(spawn(
                    format!("bench-client{i}"),
                    Box::new(move || {
                        let mut c = Conn::new(addr.unwrap(), reqs, depth);
                        c.send(&stop);
                        while !c.finished() {
                            c.read_some(&done, &stop);
                        }
                        vec![(c.bodies, c.reconnects, c.exhausted)]
                    }),
                ));
            }
        }
        ClientMode::Poll => {
            let all: Vec<Vec<Vec<u8>>> = prepared
                .iter()
                .map(|txs| {
                    txs.iter()
                        .map(|(_, r)| http_request(addr.unwrap(), r))
                        .collect()
                })
                .collect();
            let (done, stop, depth) = (done.clone(), stop.clone(), st.depth);
            handles.push(spawn(
                "bench-client".into(),
                Box::new(move || poll_client(addr.unwrap(), all, depth, &done, &stop)),
            ));
        }
        ClientMode::Close => {
            for (i, txs) in prepared.iter().enumerate() {
                let reqs = ders(txs);
                let url = format!("http://{}/pkix/", addr.unwrap());
                let (done, stop) = (done.clone(), stop.clone());
                handles.push(spawn(
                    format!("bench-client{i}"),
                    Box::new(move || {
                        let t = HttpTransfer::new(&url).unwrap();
                        one_by_one(reqs, &stop, &done, |r| t.post(r).expect("HTTP post"))
                    }),
                ));
            }
        }
        ClientMode::Direct => {
            for (i, txs) in prepared.iter().enumerate() {
                let reqs = ders(txs);
                let (done, stop, server) = (done.clone(), stop.clone(), server.clone());
                // Named like the server's threads: they do the server's work.
                handles.push(spawn(
                    format!("cmp-http-direct{i}"),
                    Box::new(move || one_by_one(reqs, &stop, &done, |r| server.process(r))),
                ));
            }
        }
    }

    std::thread::sleep(Duration::from_secs_f64(st.warmup));
    let load_start = loadavg();
    let (n0, cpu0, m0, t0) = (
        done.load(Ordering::Relaxed),
        thread_stats(),
        machine_jiffies(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(st.secs));
    let (n1, cpu1, m1, elapsed) = (
        done.load(Ordering::Relaxed),
        thread_stats(),
        machine_jiffies(),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    let outs: Vec<Out> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let outs: Vec<(Bodies, usize, bool)> = outs.into_iter().flatten().collect();

    let mut checked = 0;
    let mut reconnects = 0;
    let mut exhausted = false;
    for (txs, (bodies, rc, ex)) in prepared.iter_mut().zip(&outs) {
        reconnects += rc;
        exhausted |= ex;
        for (i, (tx, _)) in txs.iter_mut().take(bodies.ends.len()).enumerate() {
            tx.handle_response(bodies.get(i)).expect("response checks");
            assert!(tx.is_done() && tx.response().certificate.is_some());
            checked += 1;
        }
    }
    let http_200 = http.map(|h| {
        let n = h.stats().status_count(200);
        h.shutdown().unwrap();
        n
    });
    assert_eq!(checked, done.load(Ordering::Relaxed));
    if let Some(n) = http_200 {
        assert_eq!(
            n as usize, checked,
            "every request answered 200 and checked"
        );
    }
    let n = (n1 - n0) as f64;
    // A thread that ended before the second reading is missing from it: saturate rather
    // than wrap (the run then says WARNING=prepared_requests_ran_out anyway).
    let us = |g: usize| cpu1[g].0.saturating_sub(cpu0[g].0) as f64 / 1e3 / n;
    let waits = |g: usize| cpu1[g].1.saturating_sub(cpu0[g].1) as f64 / n;
    let ours_s = (0..3)
        .map(|g| cpu1[g].0.saturating_sub(cpu0[g].0))
        .sum::<u64>() as f64
        / 1e9;
    let (busy, total) = (m1.0 - m0.0, m1.1 - m0.1);
    // Jiffies are 1/100 s on Linux; the machine's busy CPU-seconds minus ours is the others'.
    let machine_busy_s = busy as f64 / 100.0;
    let others = (machine_busy_s - ours_s).max(0.0) / elapsed;
    println!(
        "http scenario={} client={} workers={} connections={} depth={} seconds={elapsed:.2} \
         requests={} req_per_s={:.0} server_cpu_us_per_req={:.1} client_cpu_us_per_req={:.1} \
         server_waits_per_req={:.2} client_waits_per_req={:.2} cpus_used_by_us={:.2} cpus_used_by_others={others:.2} machine_idle_pct={:.0} \
         loadavg=\"{load_start}\" checked={checked} reconnects={reconnects}{}",
        st.kind.name(),
        st.mode.name(),
        if direct { st.connections } else { st.workers },
        st.connections,
        st.depth,
        n1 - n0,
        n / elapsed,
        us(0),
        us(1),
        waits(0),
        waits(1),
        ours_s / elapsed,
        100.0 * (total - busy) as f64 / total as f64,
        if exhausted {
            " WARNING=prepared_requests_ran_out"
        } else {
            ""
        }
    );
}

/// A client that sends `reqs` one after the other through `answer` until told to stop:
/// the responses, no reconnects, and whether it ran out of requests first.
fn one_by_one(
    reqs: Vec<Vec<u8>>,
    stop: &AtomicBool,
    done: &AtomicUsize,
    mut answer: impl FnMut(&[u8]) -> Vec<u8>,
) -> Vec<(Bodies, usize, bool)> {
    let mut b = Bodies::default();
    for r in reqs {
        if stop.load(Ordering::Relaxed) {
            return vec![(b, 0, false)];
        }
        b.data.extend_from_slice(&answer(&r));
        b.ends.push(b.data.len());
        done.fetch_add(1, Ordering::Relaxed);
    }
    vec![(b, 0, true)]
}

/// One thread, all connections: waits in poll(2) for any of them to have data.
fn poll_client(
    addr: SocketAddr,
    all: Vec<Vec<Vec<u8>>>,
    depth: usize,
    done: &AtomicUsize,
    stop: &AtomicBool,
) -> Vec<(Bodies, usize, bool)> {
    use std::os::unix::io::AsRawFd;
    let mut conns: Vec<Conn> = all
        .into_iter()
        .map(|reqs| Conn::new(addr, reqs, depth))
        .collect();
    for c in &mut conns {
        c.send(stop);
    }
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
    loop {
        fds.clear();
        let mut open = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            if c.finished() {
                // Frees the server's worker for a connection still waiting in its queue.
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
            } else {
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                open.push(i);
            }
        }
        if open.is_empty() {
            break;
        }
        // SAFETY: `fds` holds `fds.len()` initialised pollfd entries and outlives the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if r <= 0 {
            continue;
        }
        for (k, &i) in open.iter().enumerate() {
            if fds[k].revents != 0 {
                // Readable: the one read in read_some does not block.
                conns[i].read_some(done, stop);
            }
        }
        // Connections waiting in the server's queue get nothing until a worker is free;
        // the clock may end meanwhile, so look at it here too.
        for c in &mut conns {
            c.send(stop);
        }
    }
    conns
        .into_iter()
        .map(|c| (c.bodies, c.reconnects, c.exhausted))
        .collect()
}
