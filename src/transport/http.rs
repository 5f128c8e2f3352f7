//! A minimal blocking HTTP/1.1 client for CMP over HTTP (RFC 9811), on `std::net` only.
//!
//! One [`HttpTransfer::post`] call opens one TCP connection, sends one
//! `POST` with `Content-Type: application/pkixcmp` and `Connection: close`, and reads
//! one response. The response is framed by `Content-Length`, chunked transfer coding,
//! or the end of the connection (HTTP/1.0 style). Everything the peer sends is
//! bounded: the header block, the body (checked before anything is allocated for it)
//! and the time the whole exchange may take.
//!
//! Plain `http://` only; for TLS use a transfer callback.

use crate::error::{fail, Error, ErrorCode, Result};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The media type of CMP messages over HTTP (RFC 9811 section 3.4).
pub const CONTENT_TYPE: &str = "application/pkixcmp";
/// Default time one message exchange (connect, send, receive) may take: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time establishing the TCP connection may take (also bounded by the overall timeout): 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest accepted response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 1 << 20;
/// Largest accepted response header block (status line and header fields): 16 KiB.
pub const MAX_HEADER_SIZE: usize = 16 * 1024;

/// Longest chunk-size line accepted in a chunked body (the size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// How many interim (1xx) responses are skipped before giving up.
const MAX_INTERIM_RESPONSES: usize = 8;
/// How many body bytes of an error response are quoted in the error detail.
const ERROR_SNIPPET: usize = 200;
/// How long to wait for those bytes at most.
const ERROR_SNIPPET_WAIT: Duration = Duration::from_secs(1);

/// The host part of the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Sends CMP messages to one server URL with HTTP `POST` and returns the answers.
///
/// Built with [`HttpTransfer::new`] from `http://host[:port]/path`; the host may be a
/// name, an IPv4 address or an IPv6 literal in brackets (`http://[::1]:8080/pkix/`).
/// Each [`post`](HttpTransfer::post) is independent (one connection per message), so
/// a transfer can be shared between threads.
#[derive(Clone, Debug)]
pub struct HttpTransfer {
    host: Host,
    port: u16,
    path: String,
    connect_timeout: Duration,
    timeout: Duration,
    max_response_size: usize,
}

impl HttpTransfer {
    /// A transfer to `url` (`http://host[:port]/path`, port 80 by default, path `/` if
    /// empty; a `#fragment` is dropped) with the default limits.
    ///
    /// Fails with [`ErrorCode::InvalidArgument`] naming the problem for `https://` (not
    /// supported here), other schemes, user information, a missing or malformed host,
    /// a bad port, and whitespace, control or non-ASCII characters.
    pub fn new(url: &str) -> Result<Self> {
        let (host, port, path) = parse_url(url)?;
        Ok(HttpTransfer {
            host,
            port,
            path,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
        })
    }

    /// Sets the time one whole exchange (resolve excluded; connect, send, receive) may
    /// take; beyond it [`post`](HttpTransfer::post) fails with [`ErrorCode::Timeout`].
    /// Zero is rejected with [`ErrorCode::InvalidArgument`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return fail(
                ErrorCode::InvalidArgument,
                "HTTP message timeout must be greater than zero",
            );
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Sets the time connecting (per address tried) may take; the overall timeout still
    /// applies. Zero is rejected with [`ErrorCode::InvalidArgument`].
    pub fn set_connect_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return fail(
                ErrorCode::InvalidArgument,
                "HTTP connect timeout must be greater than zero",
            );
        }
        self.connect_timeout = timeout;
        Ok(())
    }

    /// Sets the largest accepted response body in bytes; a larger one fails with
    /// [`ErrorCode::ResponseTooLarge`]. Zero is rejected with [`ErrorCode::InvalidArgument`].
    pub fn set_max_response_size(&mut self, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return fail(
                ErrorCode::InvalidArgument,
                "maximum HTTP response size must be greater than zero",
            );
        }
        self.max_response_size = bytes;
        Ok(())
    }

    /// The overall per-message timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The largest accepted response body in bytes.
    pub fn max_response_size(&self) -> usize {
        self.max_response_size
    }

    /// The host as given in the URL (IPv6 without brackets).
    pub fn host(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target sent in the request line (path and query), e.g. `/pkix/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL in normalized form, e.g. `http://[::1]:8080/pkix/`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.path)
    }

    /// `host[:port]` as sent in the `Host` header (the port only if not 80).
    fn authority(&self) -> String {
        let host = match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Host::Name(n) => n.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Sends `body` (a DER-encoded PKIMessage) in one HTTP `POST` and returns the
    /// response body.
    ///
    /// Errors: [`ErrorCode::TransferFailed`] when connecting, sending or receiving
    /// fails (the detail names the address and the OS error) or the connection ends
    /// early; [`ErrorCode::Timeout`] when the exchange exceeds the timeout;
    /// [`ErrorCode::HttpError`] for a status other than 200 (with the start of the body
    /// if it is text), a `Content-Type` other than `application/pkixcmp` or a malformed
    /// response; [`ErrorCode::ResponseTooLarge`] when the body exceeds the configured
    /// maximum or the header block exceeds [`MAX_HEADER_SIZE`].
    pub fn post(&self, body: &[u8]) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let (stream, peer) = self.connect(deadline)?;
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            deadline,
            timeout: self.timeout,
            peer,
        };
        let request = self.request(body);
        if let Err(write_err) = conn.write_all(&request) {
            // A server may answer early (e.g. 413) and close before reading everything;
            // its answer says more than the broken pipe does.
            if write_err.code != ErrorCode::Timeout {
                if let Err(e) = self.read_response(&mut conn) {
                    if e.code == ErrorCode::HttpError {
                        return Err(e);
                    }
                }
            }
            return Err(write_err);
        }
        self.read_response(&mut conn)
    }

    /// The complete request: head and body.
    fn request(&self, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\n\
             Host: {host}\r\n\
             Content-Type: {CONTENT_TYPE}\r\n\
             Content-Length: {len}\r\n\
             Accept: {CONTENT_TYPE}\r\n\
             User-Agent: cmpkit/{version}\r\n\
             Cache-Control: no-cache\r\n\
             Connection: close\r\n\
             \r\n",
            path = self.path,
            host = self.authority(),
            len = body.len(),
            version = env!("CARGO_PKG_VERSION"),
        );
        let mut out = Vec::with_capacity(head.len() + body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Connects to the first address of the host that accepts.
    fn connect(&self, deadline: Instant) -> Result<(TcpStream, String)> {
        let addrs: Vec<SocketAddr> = match &self.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            Host::Name(name) => (name.as_str(), self.port)
                .to_socket_addrs()
                .map_err(|e| {
                    Error::new(
                        ErrorCode::TransferFailed,
                        format!("cannot resolve host {name:?}: {e}"),
                    )
                })?
                .collect(),
        };
        let mut last = Error::new(
            ErrorCode::TransferFailed,
            format!("host {:?} resolved to no address", self.host()),
        );
        for addr in addrs {
            let left = remaining(deadline, self.timeout, &format!("connect to {addr}"))?;
            match TcpStream::connect_timeout(&addr, left.min(self.connect_timeout)) {
                Ok(stream) => {
                    // Small requests: do not wait for more data before sending.
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr.to_string()));
                }
                Err(e) => last = io_error(e, &format!("connect to {addr}"), self.timeout),
            }
        }
        Err(last)
    }

    /// Reads the response head and, for a 200 with the right content type, the body.
    fn read_response(&self, conn: &mut Conn) -> Result<Vec<u8>> {
        let mut interim = 0;
        let head = loop {
            let head = conn.read_head()?;
            if (100..200).contains(&head.status) && head.status != 101 {
                interim += 1;
                if interim > MAX_INTERIM_RESPONSES {
                    return Err(Error::new(
                        ErrorCode::HttpError,
                        format!("server {} sent too many interim (1xx) responses", conn.peer),
                    ));
                }
                continue;
            }
            break head;
        };
        if head.status != 200 {
            let snippet = describe_snippet(&error_snippet(conn, &head));
            return Err(Error::new(
                ErrorCode::HttpError,
                format!(
                    "server {} answered HTTP status {}{}{}",
                    conn.peer,
                    head.status,
                    if head.reason.is_empty() { "" } else { " " },
                    head.reason,
                ) + &snippet,
            ));
        }
        match head.header("content-type") {
            None => {
                return Err(Error::new(
                    ErrorCode::HttpError,
                    format!(
                        "response from {} has no Content-Type, expected {CONTENT_TYPE}",
                        conn.peer
                    ),
                ))
            }
            Some(ct) => {
                let media = ct.split(';').next().unwrap_or("").trim();
                if !media.eq_ignore_ascii_case(CONTENT_TYPE) {
                    return Err(Error::new(
                        ErrorCode::HttpError,
                        format!(
                            "response from {} has Content-Type {:?}, expected {CONTENT_TYPE}",
                            conn.peer,
                            truncate(ct, 100)
                        ),
                    ));
                }
            }
        }
        let framing = head.framing()?;
        conn.read_body(framing, self.max_response_size)
    }
}

/// Parses `http://host[:port]/path` into its parts.
fn parse_url(url: &str) -> Result<(Host, u16, String)> {
    let bad = |why: &str| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("URL {:?}: {why}", truncate(url, 200)),
        )
    };
    if !url.is_ascii() {
        return Err(bad("contains non-ASCII characters"));
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("contains whitespace or control characters"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected http://host[:port]/path"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad(
            "https is not supported by the built-in HTTP transfer (plain http:// only); use a transfer callback for TLS",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad(&format!(
            "unsupported scheme {scheme:?}, only http:// is supported"
        )));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("user information (user@host) is not supported"));
    }
    if authority.is_empty() {
        return Err(bad("missing host"));
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let close = r
            .find(']')
            .ok_or_else(|| bad("unterminated IPv6 literal (missing ']')"))?;
        let literal = &r[..close];
        if literal.contains('%') {
            return Err(bad("IPv6 zone identifiers are not supported"));
        }
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| bad(&format!("invalid IPv6 address {literal:?}")))?;
        let after = &r[close + 1..];
        let port = if after.is_empty() {
            None
        } else {
            Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("unexpected characters after the IPv6 literal"))?,
            )
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(bad(
                "IPv6 addresses must be written in brackets, e.g. http://[::1]:8080/",
            ));
        }
        if name.is_empty() {
            return Err(bad("missing host"));
        }
        let host = if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let ip: Ipv4Addr = name
                .parse()
                .map_err(|_| bad(&format!("invalid IPv4 address {name:?}")))?;
            Host::Ip(IpAddr::V4(ip))
        } else {
            let labels_ok = name.len() <= 253
                && name.strip_suffix('.').unwrap_or(name).split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !labels_ok {
                return Err(bad(&format!("invalid host name {name:?}")));
            }
            Host::Name(name.to_ascii_lowercase())
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some("") => return Err(bad("empty port after ':'")),
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("invalid port {p:?}")));
            }
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return Err(bad(&format!("port {p} out of range 1-65535"))),
            }
        }
    };
    let target = tail.split('#').next().unwrap_or("");
    let path = if target.is_empty() {
        "/".to_string()
    } else if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    Ok((host, port, path))
}

/// Time left before `deadline`, or a Timeout error naming `what`.
fn remaining(deadline: Instant, timeout: Duration, what: &str) -> Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return Err(Error::new(
            ErrorCode::Timeout,
            format!("{what}: message timeout of {timeout:?} exceeded"),
        ));
    }
    Ok(deadline - now)
}

/// Maps an I/O error: timeouts to Timeout, everything else to TransferFailed.
fn io_error(e: io::Error, what: &str, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            ErrorCode::Timeout,
            format!("{what}: timed out (message timeout {timeout:?}): {e}"),
        ),
        _ => Error::new(ErrorCode::TransferFailed, format!("{what}: {e}")),
    }
}

/// Shortens `s` to at most `max` characters for error details.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    ToEof,
}

/// A parsed response head.
#[derive(Debug)]
struct Head {
    status: u16,
    reason: String,
    /// (lower-case name, value)
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All comma-separated elements of all fields named `name` (lower case).
    fn list(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The body framing (RFC 9112 section 6.3): chunked, Content-Length, or until close.
    fn framing(&self) -> Result<Framing> {
        let codings = self.list("transfer-encoding");
        if !codings.is_empty() {
            let only_chunked = codings
                .iter()
                .all(|c| c.eq_ignore_ascii_case("chunked") || c.eq_ignore_ascii_case("identity"));
            if !only_chunked {
                return Err(Error::new(
                    ErrorCode::HttpError,
                    format!("unsupported Transfer-Encoding {:?}", codings.join(", ")),
                ));
            }
            if codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
            {
                return Ok(Framing::Chunked);
            }
            return Ok(Framing::ToEof);
        }
        let lengths = self.list("content-length");
        let Some(first) = lengths.first() else {
            if self.headers.iter().any(|(n, _)| n == "content-length") {
                return Err(Error::new(ErrorCode::HttpError, "empty Content-Length"));
            }
            return Ok(Framing::ToEof);
        };
        if lengths.iter().any(|l| l != first) {
            return Err(Error::new(
                ErrorCode::HttpError,
                format!("conflicting Content-Length values {:?}", lengths.join(", ")),
            ));
        }
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::new(
                ErrorCode::HttpError,
                format!("invalid Content-Length {:?}", truncate(first, 40)),
            ));
        }
        // All digits: a value that does not fit is simply too large.
        Ok(Framing::Length(first.parse::<u64>().unwrap_or(u64::MAX)))
    }
}

/// One connection with a read buffer and the message deadline.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    deadline: Instant,
    timeout: Duration,
    peer: String,
}

impl Conn {
    /// Writes all of `data` before the deadline.
    fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        let what = format!("send request to {}", self.peer);
        while !data.is_empty() {
            let left = remaining(self.deadline, self.timeout, &what)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| io_error(e, &what, self.timeout))?;
            match self.stream.write(data) {
                Ok(0) => {
                    return Err(Error::new(
                        ErrorCode::TransferFailed,
                        format!("{what}: connection closed"),
                    ))
                }
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, &what, self.timeout)),
            }
        }
        Ok(())
    }

    /// The bytes received but not consumed yet.
    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` unread bytes as consumed.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Receives more bytes (appending them to the buffer); `Ok(0)` at end of stream.
    fn fill(&mut self) -> Result<usize> {
        let what = format!("receive response from {}", self.peer);
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 8192];
        loop {
            let left = remaining(self.deadline, self.timeout, &what)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| io_error(e, &what, self.timeout))?;
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, &what, self.timeout)),
            }
        }
    }

    /// Reads the status line and header fields, at most [`MAX_HEADER_SIZE`] bytes.
    fn read_head(&mut self) -> Result<Head> {
        let mut scanned = 0;
        let end = loop {
            let data = self.unread();
            let limit = data.len().min(MAX_HEADER_SIZE);
            if let Some(end) = find_head_end(&data[..limit], scanned) {
                break end;
            }
            if data.len() >= MAX_HEADER_SIZE {
                return Err(Error::new(
                    ErrorCode::ResponseTooLarge,
                    format!(
                        "response header from {} exceeds {MAX_HEADER_SIZE} bytes",
                        self.peer
                    ),
                ));
            }
            scanned = data.len().saturating_sub(3);
            if self.fill()? == 0 {
                let got = self.unread().len();
                return Err(Error::new(
                    ErrorCode::TransferFailed,
                    if got == 0 {
                        format!(
                            "server {} closed the connection without a response",
                            self.peer
                        )
                    } else {
                        format!(
                            "server {} closed the connection within the response header (after {got} bytes)",
                            self.peer
                        )
                    },
                ));
            }
        };
        let head = parse_head(&self.unread()[..end]);
        self.consume(end);
        head.map_err(|e| e.context(&format!("response from {}", self.peer)))
    }

    /// Reads one line ending in LF of at most `max` bytes (without CR LF).
    fn read_line(&mut self, max: usize, what: &str) -> Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            let data = self.unread();
            if let Some(i) = data[scanned..].iter().position(|&b| b == b'\n') {
                let i = scanned + i;
                let mut line = data[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(i + 1);
                if line.len() > max {
                    return Err(Error::new(
                        ErrorCode::HttpError,
                        format!("{what} from {} is longer than {max} bytes", self.peer),
                    ));
                }
                return Ok(line);
            }
            if data.len() > max + 1 {
                return Err(Error::new(
                    ErrorCode::HttpError,
                    format!("{what} from {} is longer than {max} bytes", self.peer),
                ));
            }
            scanned = data.len();
            if self.fill()? == 0 {
                return Err(Error::new(
                    ErrorCode::TransferFailed,
                    format!(
                        "server {} closed the connection within the {what}",
                        self.peer
                    ),
                ));
            }
        }
    }

    /// Appends exactly `n` more bytes to `out`.
    fn read_exact_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<()> {
        let mut want = n;
        loop {
            let take = want.min(self.unread().len());
            out.extend_from_slice(&self.unread()[..take]);
            self.consume(take);
            want -= take;
            if want == 0 {
                return Ok(());
            }
            if self.fill()? == 0 {
                return Err(Error::new(
                    ErrorCode::TransferFailed,
                    format!(
                        "server {} closed the connection after {} of {n} announced body bytes",
                        self.peer,
                        n - want
                    ),
                ));
            }
        }
    }

    /// Reads the body delimited by `framing`, at most `max` bytes.
    fn read_body(&mut self, framing: Framing, max: usize) -> Result<Vec<u8>> {
        let too_large = |what: String| {
            Error::new(
                ErrorCode::ResponseTooLarge,
                format!("{what}, more than the limit of {max} bytes"),
            )
        };
        match framing {
            Framing::Length(n) => {
                if n > max as u64 {
                    return Err(too_large(format!(
                        "server {} announced a {n}-byte response",
                        self.peer
                    )));
                }
                let n = n as usize;
                let mut out = Vec::with_capacity(n);
                self.read_exact_into(&mut out, n)?;
                Ok(out)
            }
            Framing::Chunked => {
                let mut out = Vec::new();
                loop {
                    let line = self.read_line(MAX_CHUNK_LINE, "chunk size line")?;
                    let size = parse_chunk_size(&line).ok_or_else(|| {
                        Error::new(
                            ErrorCode::HttpError,
                            format!(
                                "malformed chunk size line {:?} from {}",
                                truncate(&String::from_utf8_lossy(&line), 40),
                                self.peer
                            ),
                        )
                    })?;
                    if size == 0 {
                        break;
                    }
                    if size > (max - out.len()) as u64 {
                        return Err(too_large(format!(
                            "chunked response from {} grows to at least {} bytes",
                            self.peer,
                            (out.len() as u64).saturating_add(size)
                        )));
                    }
                    self.read_exact_into(&mut out, size as usize)?;
                    if !self.read_line(0, "chunk terminator")?.is_empty() {
                        return Err(Error::new(
                            ErrorCode::HttpError,
                            format!("chunk from {} not followed by CRLF", self.peer),
                        ));
                    }
                }
                // Trailer fields: read and ignore, bounded like the header.
                let mut trailer = 0usize;
                loop {
                    let line = self.read_line(MAX_HEADER_SIZE, "trailer")?;
                    if line.is_empty() {
                        break;
                    }
                    trailer += line.len() + 2;
                    if trailer > MAX_HEADER_SIZE {
                        return Err(Error::new(
                            ErrorCode::ResponseTooLarge,
                            format!("trailer from {} exceeds {MAX_HEADER_SIZE} bytes", self.peer),
                        ));
                    }
                }
                Ok(out)
            }
            Framing::ToEof => {
                let mut out = Vec::new();
                loop {
                    let data = self.unread();
                    if data.len() > max - out.len() {
                        return Err(too_large(format!(
                            "response from {} exceeds {} bytes",
                            self.peer,
                            out.len() + data.len()
                        )));
                    }
                    out.extend_from_slice(data);
                    let n = data.len();
                    self.consume(n);
                    if self.fill()? == 0 {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// Best effort: up to `n` bytes, less if the peer sends no more or fails.
    fn read_up_to(&mut self, n: usize) -> Vec<u8> {
        while self.unread().len() < n {
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let take = n.min(self.unread().len());
        let out = self.unread()[..take].to_vec();
        self.consume(take);
        out
    }
}

/// The start of an error response's body, read briefly and without failing.
fn error_snippet(conn: &mut Conn, head: &Head) -> Vec<u8> {
    conn.deadline = conn.deadline.min(Instant::now() + ERROR_SNIPPET_WAIT);
    match head.framing() {
        Ok(Framing::Length(n)) => conn.read_up_to(n.min(ERROR_SNIPPET as u64) as usize),
        Ok(Framing::Chunked) => match conn.read_line(MAX_CHUNK_LINE, "chunk size line") {
            Ok(line) => match parse_chunk_size(&line) {
                Some(size) => conn.read_up_to(size.min(ERROR_SNIPPET as u64) as usize),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        },
        Ok(Framing::ToEof) | Err(_) => conn.read_up_to(ERROR_SNIPPET),
    }
}

/// `: "text"` if the bytes are printable text, a size note otherwise, "" if empty.
fn describe_snippet(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        // A cut in the middle of a character at the end is fine.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => "",
    };
    if !valid.is_empty() && valid.chars().all(|c| !c.is_control() || c.is_whitespace()) {
        let text = valid.split_whitespace().collect::<Vec<_>>().join(" ");
        format!(": {text:?}")
    } else {
        format!(
            " (body starts with {} bytes that are not text)",
            bytes.len()
        )
    }
}

/// Where the header block ends (index just past the empty line), if it does.
fn find_head_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Parses the status line and header fields (case-insensitive names, obs-fold joined).
fn parse_head(raw: &[u8]) -> Result<Head> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let malformed = || {
        Error::new(
            ErrorCode::HttpError,
            format!("malformed status line {:?}", truncate(status_line, 80)),
        )
    };
    let rest = status_line.strip_prefix("HTTP/").ok_or_else(malformed)?;
    let (version, rest) = rest.split_once(' ').ok_or_else(malformed)?;
    if !matches!(version, "1.0" | "1.1") {
        return Err(Error::new(
            ErrorCode::HttpError,
            format!("unsupported HTTP version {:?}", truncate(version, 20)),
        ));
    }
    let rest = rest.trim_start_matches(' ');
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let status: u16 = code.parse().map_err(|_| malformed())?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // obs-fold: a continuation of the previous field value.
            let Some(last) = headers.last_mut() else {
                return Err(Error::new(
                    ErrorCode::HttpError,
                    "header block starts with a continuation line",
                ));
            };
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            Error::new(
                ErrorCode::HttpError,
                format!("malformed header line {:?}", truncate(line, 80)),
            )
        })?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(Error::new(
                ErrorCode::HttpError,
                format!("malformed header name {:?}", truncate(name, 80)),
            ));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        status,
        reason: reason.trim().to_string(),
        headers,
    })
}

/// The size of a chunk-size line (`HEX[;ext...]`), if well-formed.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    let hex = line.split(';').next()?.trim();
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// Reads one request (head plus Content-Length body) from `s`.
    fn read_request(s: &mut TcpStream) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(end) = find_head_end(&req, 0) {
                let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if req.len() >= end + len {
                    return req;
                }
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return req,
                Ok(n) => req.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// Waits (bounded) until the client closes the connection.
    fn wait_for_close(s: &mut TcpStream) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tmp = [0u8; 4096];
        while let Ok(n) = s.read(&mut tmp) {
            if n == 0 {
                break;
            }
        }
    }

    /// A one-connection server; `respond` gets the stream after the request was read.
    /// Returns the URL and a receiver for the request bytes.
    fn serve(
        respond: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> (String, mpsc::Receiver<Vec<u8>>, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let req = read_request(&mut s);
            let _ = tx.send(req);
            respond(&mut s);
        });
        (format!("http://127.0.0.1:{port}/pkix/"), rx, handle)
    }

    /// A server that answers with the fixed bytes `response` and closes.
    fn serve_bytes(response: Vec<u8>) -> (String, mpsc::Receiver<Vec<u8>>, thread::JoinHandle<()>) {
        serve(move |s| {
            let _ = s.write_all(&response);
        })
    }

    fn transfer(url: &str) -> HttpTransfer {
        let mut t = HttpTransfer::new(url).unwrap();
        t.set_timeout(Duration::from_secs(5)).unwrap();
        t
    }

    #[test]
    fn ok_200_with_content_length_and_request_headers() {
        let (url, rx, h) = serve_bytes(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
        );
        let t = transfer(&url);
        assert_eq!(t.post(b"\x30\x03\x02\x01\x00").unwrap(), b"hello");
        let req = rx.recv().unwrap();
        let text = String::from_utf8_lossy(&req);
        assert!(text.starts_with("POST /pkix/ HTTP/1.1\r\n"), "{text}");
        assert!(text.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", t.port())));
        assert!(text.contains("\r\nContent-Type: application/pkixcmp\r\n"));
        assert!(text.contains("\r\nAccept: application/pkixcmp\r\n"));
        assert!(text.contains("\r\nContent-Length: 5\r\n"));
        assert!(text.contains(&format!(
            "\r\nUser-Agent: cmpkit/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(req.ends_with(b"\r\n\r\n\x30\x03\x02\x01\x00"));
        h.join().unwrap();
    }

    #[test]
    fn openssl_style_http10_with_parameters_in_content_type() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.0 200 OK\r\nContent-type: Application/PKIXCMP; charset=binary\r\ncontent-LENGTH: 3\r\n\r\nabc"
                .to_vec(),
        );
        assert_eq!(transfer(&url).post(b"x").unwrap(), b"abc");
        h.join().unwrap();
    }

    #[test]
    fn http10_read_to_eof() {
        let body: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let mut resp = b"HTTP/1.0 200 OK\r\nContent-type: application/pkixcmp\r\n\r\n".to_vec();
        resp.extend_from_slice(&body);
        let (url, _rx, h) = serve_bytes(resp);
        assert_eq!(transfer(&url).post(b"x").unwrap(), body);
        h.join().unwrap();
    }

    #[test]
    fn bare_lf_line_endings_and_interim_response() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nContent-Type: application/pkixcmp\nContent-Length: 2\n\nok"
                .to_vec(),
        );
        assert_eq!(transfer(&url).post(b"x").unwrap(), b"ok");
        h.join().unwrap();
    }

    #[test]
    fn chunked_in_pieces() {
        let (url, _rx, h) = serve(|s| {
            let parts: [&[u8]; 5] = [
                b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5;ext=1\r\nhel",
                b"lo\r\n6\r\n world\r\n",
                b"0\r\nX-Trailer: 1\r\n",
                b"\r\n",
            ];
            for p in parts {
                s.write_all(p).unwrap();
                s.flush().unwrap();
                thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!(transfer(&url).post(b"x").unwrap(), b"hello world");
        h.join().unwrap();
    }

    #[test]
    fn chunked_over_limit() {
        let (url, _rx, h) = serve(|s| {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n",
            );
            wait_for_close(s);
        });
        let mut t = transfer(&url);
        t.set_max_response_size(100).unwrap();
        let e = t.post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseTooLarge, "{e}");
        h.join().unwrap();
    }

    #[test]
    fn status_404_is_http_error_with_body_text() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nnot found here"
                .to_vec(),
        );
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::HttpError);
        assert!(e.detail.contains("404 Not Found"), "{e}");
        assert!(e.detail.contains("not found here"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn status_500_with_binary_body() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\x03"
                .to_vec(),
        );
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::HttpError);
        assert!(e.detail.contains("500"), "{e}");
        assert!(e.detail.contains("not text"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn wrong_or_missing_content_type() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
        );
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::HttpError);
        assert!(e.detail.contains("text/html"), "{e}");
        h.join().unwrap();

        let (url, _rx, h) = serve_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec());
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::HttpError);
        assert!(e.detail.contains("no Content-Type"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn oversize_content_length_fails_without_reading() {
        let (url, _rx, h) = serve(|s| {
            // Announce far more than the limit, send nothing more, keep the connection open.
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 99999999999999999999\r\n\r\n",
            );
            wait_for_close(s);
        });
        let start = Instant::now();
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseTooLarge, "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
        h.join().unwrap();

        let (url, _rx, h) = serve(|s| {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1001\r\n\r\n",
            );
            wait_for_close(s);
        });
        let mut t = transfer(&url);
        t.set_max_response_size(1000).unwrap();
        let e = t.post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseTooLarge, "{e}");
        assert!(e.detail.contains("1001"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn oversize_body_without_content_length() {
        let mut resp = b"HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\n\r\n".to_vec();
        resp.extend_from_slice(&[0x41; 5000]);
        let (url, _rx, h) = serve_bytes(resp);
        let mut t = transfer(&url);
        t.set_max_response_size(1000).unwrap();
        let e = t.post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseTooLarge, "{e}");
        h.join().unwrap();

        // Exactly at the limit is fine.
        let mut resp = b"HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\n\r\n".to_vec();
        resp.extend_from_slice(&[0x41; 1000]);
        let (url, _rx, h) = serve_bytes(resp);
        let mut t = transfer(&url);
        t.set_max_response_size(1000).unwrap();
        assert_eq!(t.post(b"x").unwrap().len(), 1000);
        h.join().unwrap();
    }

    #[test]
    fn oversize_header_block() {
        let (url, _rx, h) = serve(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
            for _ in 0..20 {
                if s.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
            wait_for_close(s);
        });
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResponseTooLarge, "{e}");
        assert!(e.detail.contains("header"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn truncated_body_and_malformed_responses() {
        let (url, _rx, h) = serve_bytes(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 10\r\n\r\nabc"
                .to_vec(),
        );
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::TransferFailed, "{e}");
        assert!(e.detail.contains("3 of 10"), "{e}");
        h.join().unwrap();

        for bad in [
            &b"SMTP/1.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 1, 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ] {
            let (url, _rx, h) = serve_bytes(bad.to_vec());
            let e = transfer(&url).post(b"x").unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::HttpError,
                "{e} for {:?}",
                String::from_utf8_lossy(bad)
            );
            h.join().unwrap();
        }

        let (url, _rx, h) = serve_bytes(Vec::new());
        let e = transfer(&url).post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::TransferFailed, "{e}");
        assert!(e.detail.contains("without a response"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn server_that_never_answers_times_out() {
        let (url, _rx, h) = serve(wait_for_close);
        let mut t = HttpTransfer::new(&url).unwrap();
        t.set_timeout(Duration::from_millis(300)).unwrap();
        let start = Instant::now();
        let e = t.post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::Timeout, "{e}");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        h.join().unwrap();
    }

    #[test]
    fn server_that_trickles_times_out() {
        // Each byte arrives in time, but the whole exchange exceeds the overall timeout.
        let (url, _rx, h) = serve(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            for _ in 0..40 {
                if s.write_all(b"X: y\r\n").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let mut t = HttpTransfer::new(&url).unwrap();
        t.set_timeout(Duration::from_millis(300)).unwrap();
        let e = t.post(b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::Timeout, "{e}");
        h.join().unwrap();
    }

    #[test]
    fn connection_refused_is_transfer_failed() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = transfer(&format!("http://127.0.0.1:{port}/"))
            .post(b"x")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TransferFailed, "{e}");
        assert!(e.detail.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.detail.contains("os error"), "{e}");
    }

    #[test]
    fn url_parsing() {
        let t = HttpTransfer::new("http://127.0.0.1:8080/pkix/").unwrap();
        assert_eq!(
            (t.host().as_str(), t.port(), t.path()),
            ("127.0.0.1", 8080, "/pkix/")
        );
        let t = HttpTransfer::new("HTTP://Example.COM").unwrap();
        assert_eq!(
            (t.host().as_str(), t.port(), t.path()),
            ("example.com", 80, "/")
        );
        assert_eq!(t.url(), "http://example.com/");
        let t = HttpTransfer::new("http://[::1]:18080/.well-known/cmp?x=1#frag").unwrap();
        assert_eq!(t.host(), "::1");
        assert_eq!(t.port(), 18080);
        assert_eq!(t.path(), "/.well-known/cmp?x=1");
        assert_eq!(t.url(), "http://[::1]:18080/.well-known/cmp?x=1");
        assert_eq!(t.authority(), "[::1]:18080");
        let t = HttpTransfer::new("http://[2001:db8::1]/").unwrap();
        assert_eq!((t.port(), t.authority().as_str()), (80, "[2001:db8::1]"));
        let t = HttpTransfer::new("http://ca-1.example_x.org.:99?q").unwrap();
        assert_eq!(
            (t.host().as_str(), t.port(), t.path()),
            ("ca-1.example_x.org.", 99, "/?q")
        );
        assert_eq!(t.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(t.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(t.max_response_size(), DEFAULT_MAX_RESPONSE_SIZE);

        for (url, needle) in [
            ("https://ca.example/pkix/", "https"),
            ("ftp://ca.example/", "scheme"),
            ("ca.example/pkix", "http://"),
            ("http://", "missing host"),
            ("http:///pkix", "missing host"),
            ("http://:80/", "missing host"),
            ("http://user@ca.example/", "user"),
            ("http://ca.example:/", "empty port"),
            ("http://ca.example:0/", "range"),
            ("http://ca.example:65536/", "range"),
            ("http://ca.example:8a/", "invalid port"),
            ("http://::1/", "brackets"),
            ("http://[::1/", "unterminated"),
            ("http://[::g]/", "invalid IPv6"),
            ("http://[fe80::1%25eth0]/", "zone"),
            ("http://[::1]x/", "after the IPv6"),
            ("http://1.2.3.999/", "invalid IPv4"),
            ("http://bad..name/", "invalid host"),
            ("http://bad name/", "whitespace"),
            ("http://ca.example/a\r\nX: y", "control"),
            ("http://cä.example/", "non-ASCII"),
        ] {
            let e = HttpTransfer::new(url).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{url}");
            assert!(e.detail.contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn setters_reject_zero() {
        let mut t = HttpTransfer::new("http://localhost/").unwrap();
        assert_eq!(
            t.set_timeout(Duration::ZERO).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            t.set_connect_timeout(Duration::ZERO).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            t.set_max_response_size(0).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        t.set_connect_timeout(Duration::from_millis(10)).unwrap();
        assert_eq!(t.connect_timeout(), Duration::from_millis(10));
    }

    #[test]
    fn snippet_description() {
        assert_eq!(describe_snippet(b""), "");
        assert_eq!(describe_snippet(b"a\r\n  b"), ": \"a b\"");
        assert!(describe_snippet(b"\x00\x01").contains("not text"));
        // A UTF-8 character cut at the end is still text.
        assert_eq!(
            describe_snippet("é".as_bytes().get(..1).unwrap()),
            " (body starts with 1 bytes that are not text)"
        );
        assert_eq!(describe_snippet(&"aé".as_bytes()[..2]), ": \"a\"");
    }
}
