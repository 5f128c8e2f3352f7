//! Helpers for integration tests: the interop test PKI and OpenSSL's CMP mock server.
//!
//! Include with `mod common;`. Everything runs on loopback and is made by the scripts
//! in `tests/interop/`, in a per-process directory under Cargo's target tmp dir.
//!
//! Tests that need OpenSSL start with
//! `if !common::available_or_skip("name") { return; }`: without `openssl cmp` or `cc`
//! they are skipped with a notice, except when the `CI` environment variable is set,
//! where they fail instead of passing silently.
#![allow(dead_code)]

pub mod cexamples;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The shared secret of MAC-protected messages in the test PKI (`secret.txt`).
pub const SECRET: &str = "interop-secret-0123";
/// The reference value (senderKID) for MAC protection (`ref.txt`).
pub const REF: &str = "interop-ref-4711";
/// The recipient name OpenSSL's client uses for MAC-protected requests.
pub const RECIPIENT: &str = "/CN=CMP Interop Issuing CA";

/// Folder with `make-pki.sh` and `mock-server.sh`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Whether the environment says this is a CI run (`CI` set, not empty, `0` or `false`).
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

/// Whether the tools for the interop tests exist: the `openssl` binary with the `cmp`
/// command (OpenSSL 3.0 or later), `cc` (for the mock server's loopback shim),
/// `timeout` and `sh`. Checked once per process.
pub fn is_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let ok = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .env("OPENSSL_CONF", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        ok("openssl", &["cmp", "-help"])
            && ok("cc", &["--version"])
            && ok("timeout", &["--version"])
            && ok("sh", &["-c", "true"])
    })
}

/// `true` if the interop tools are available. Otherwise: panics when [`in_ci`] (a
/// missing tool must not turn into a silently passing test there), else prints a
/// notice naming `test` and returns `false` so the test can return early.
pub fn available_or_skip(test: &str) -> bool {
    if is_available() {
        return true;
    }
    if in_ci() {
        panic!(
            "{test}: the interop tests need `openssl cmp` (OpenSSL 3.0+), `cc` and `timeout`, \
             and CI is set, so they are not skipped; install them or unset CI"
        );
    }
    eprintln!(
        "NOTICE: skipping {test}: `openssl cmp` (OpenSSL 3.0+), `cc` or `timeout` not available"
    );
    false
}

fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This process's scratch directory, `<target tmp>/cmp-interop/<pid>-<time>`.
/// Directories left by test processes that no longer run are removed on first use.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cmp-interop");
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| !pid_alive(p)) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = root.join(format!("{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    })
}

/// A new empty directory `<scratch>/<prefix>-<n>`.
pub fn new_work_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = scratch_dir().join(format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Runs a command with `OPENSSL_CONF=/dev/null` and no stdin, returning its output.
fn run<I, S>(prog: &str, args: I, envs: &[(&str, &OsStr)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The test PKI (see `tests/interop/make-pki.sh` for its files), made once per test
/// process with fresh keys; safe to call from many threads. Panics if it cannot be made.
pub fn pki() -> &'static Path {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = scratch_dir().join("pki");
        let script = interop_dir().join("make-pki.sh");
        let out = run(
            "timeout",
            [
                OsStr::new("120"),
                OsStr::new("sh"),
                script.as_os_str(),
                dir.as_os_str(),
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "make-pki.sh failed: {}",
            describe(&out)
        );
        dir
    })
}

/// Issues a certificate from the test PKI's issuing CA (`ca.crt`/`ca.key`) for a public
/// key, written as PEM to `out`.
///
/// `key` is a public key as SubjectPublicKeyInfo in PEM (`PUBLIC KEY`) or DER; a private
/// key (PEM or DER PKCS#8/traditional) works too, only its public part is used. Any key
/// type OpenSSL knows (EC, RSA, Ed25519, Ed448, ...). `subject` is in OpenSSL's
/// `-subj` form, e.g. `/CN=Test Client`. The cert is valid 10 years and has the PKI's
/// end-entity extensions (`v3_ee`) and a random serial. Panics on failure.
///
/// On OpenSSL 3.0 this is `openssl x509 -new -force_pubkey PUB -subj SUBJECT -CA ca.crt
/// -CAkey ca.key`: no CSR and no proof of possession is needed.
pub fn issue_cert_for(pki: &Path, key: &[u8], subject: &str, out: &Path) {
    let work = new_work_dir("issue");
    let input = work.join("key.in");
    let public = work.join("pub.pem");
    std::fs::write(&input, key).unwrap();
    let form = if key.trim_ascii_start().starts_with(b"-----BEGIN") {
        "PEM"
    } else {
        "DER"
    };
    let as_public = run(
        "openssl",
        [
            OsStr::new("pkey"),
            OsStr::new("-pubin"),
            OsStr::new("-inform"),
            OsStr::new(form),
            OsStr::new("-in"),
            input.as_os_str(),
            OsStr::new("-pubout"),
            OsStr::new("-out"),
            public.as_os_str(),
        ],
        &[],
    );
    if !as_public.status.success() {
        let as_private = run(
            "openssl",
            [
                OsStr::new("pkey"),
                OsStr::new("-inform"),
                OsStr::new(form),
                OsStr::new("-in"),
                input.as_os_str(),
                OsStr::new("-pubout"),
                OsStr::new("-out"),
                public.as_os_str(),
            ],
            &[],
        );
        assert!(
            as_private.status.success(),
            "issue_cert_for: not a public or private key ({form}): {}\n{}",
            describe(&as_public),
            describe(&as_private)
        );
    }
    let serial = format!("0x{:016x}", random_u64() & 0x7fff_ffff_ffff_ffff | 0x100);
    let issued = run(
        "openssl",
        [
            OsStr::new("x509"),
            OsStr::new("-new"),
            OsStr::new("-subj"),
            OsStr::new(subject),
            OsStr::new("-force_pubkey"),
            public.as_os_str(),
            OsStr::new("-CA"),
            pki.join("ca.crt").as_os_str(),
            OsStr::new("-CAkey"),
            pki.join("ca.key").as_os_str(),
            OsStr::new("-set_serial"),
            OsStr::new(&serial),
            OsStr::new("-days"),
            OsStr::new("3650"),
            OsStr::new("-sha256"),
            OsStr::new("-extfile"),
            pki.join("ext.cnf").as_os_str(),
            OsStr::new("-extensions"),
            OsStr::new("v3_ee"),
            OsStr::new("-out"),
            out.as_os_str(),
        ],
        &[],
    );
    assert!(
        issued.status.success(),
        "issue_cert_for: openssl x509 -new failed: {}",
        describe(&issued)
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A pseudo-random number (time, pid and a counter; good enough for test serials).
fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU32 = AtomicU32::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.write_u32(N.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A free TCP port on 127.0.0.1 at the time of the call.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// One running OpenSSL CMP mock server (`openssl cmp -port`) on 127.0.0.1, with its own
/// working directory (a copy of the PKI plus its pid file and log). Each test should
/// start its own: the 3.0 server handles one transaction at a time and can crash.
/// Dropping it stops the process by its PID.
pub struct MockServer {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT/pkix/`.
    pub url: String,
    /// Its working directory: PKI copy, `mock-server.pid`, `mock-server.log`.
    pub dir: PathBuf,
    /// PID of the openssl process.
    pub pid: i32,
}

impl MockServer {
    /// Starts a mock server with the PKI in `pki` on a free port (retrying with other
    /// ports if the start fails), answering every ir/cr/kur/p10cr with `rsp_cert`
    /// (default `new.crt`, for `new.key`). `extra_args` are appended to the `openssl cmp`
    /// command line (e.g. `-grant_implicitconf`, `-send_error`). Returns once it
    /// listens; panics (with its log) if it does not start.
    pub fn start(pki: &Path, rsp_cert: Option<&Path>, extra_args: &[&str]) -> MockServer {
        let dir = new_work_dir("mock");
        for e in std::fs::read_dir(pki).unwrap().flatten() {
            let name = e.file_name();
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            if is_file && !name.to_string_lossy().contains(".tmp") {
                std::fs::copy(e.path(), dir.join(&name)).unwrap();
            }
        }
        let rsp_cert = rsp_cert.map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|e| panic!("response cert {}: {e}", p.display()))
        });
        let script = interop_dir().join("mock-server.sh");
        let mut failures = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let port_s = port.to_string();
            let mut args: Vec<&OsStr> = vec![
                OsStr::new("60"),
                OsStr::new("sh"),
                script.as_os_str(),
                dir.as_os_str(),
                OsStr::new(&port_s),
            ];
            args.extend(extra_args.iter().map(OsStr::new));
            let mut envs: Vec<(&str, &OsStr)> = vec![("MOCK_TIMEOUT", OsStr::new("600"))];
            if let Some(c) = &rsp_cert {
                envs.push(("MOCK_RSP_CERT", c.as_os_str()));
            }
            let out = run("timeout", args, &envs);
            if out.status.success() {
                let pid_text =
                    std::fs::read_to_string(dir.join("mock-server.pid")).expect("mock-server.pid");
                let pid: i32 = pid_text.trim().parse().expect("PID in mock-server.pid");
                // Later servers copy the compiled shim instead of building it again.
                let shim = pki.join("bind-loopback.so");
                if !shim.exists() {
                    let tmp = pki.join(format!(
                        "bind-loopback.so.tmp{}",
                        std::process::id() ^ port as u32
                    ));
                    if std::fs::copy(dir.join("bind-loopback.so"), &tmp).is_ok() {
                        let _ = std::fs::rename(&tmp, &shim);
                    }
                }
                return MockServer {
                    port,
                    url: format!("http://127.0.0.1:{port}/pkix/"),
                    dir,
                    pid,
                };
            }
            failures.push_str(&format!("port {port}: {}\n", describe(&out)));
            let _ = std::fs::remove_file(dir.join("mock-server.pid"));
        }
        panic!(
            "mock server did not start in {}:\n{failures}",
            dir.display()
        );
    }

    /// `127.0.0.1:PORT`, the form `openssl cmp -server` takes.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its output so far (`mock-server.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mock-server.log")).unwrap_or_default()
    }

    /// Whether the process still runs (the 3.0 server exits after an HTTP 500 and can crash).
    pub fn is_running(&self) -> bool {
        pid_alive(self.pid)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if self.pid > 1 {
            // SAFETY: plain kill(2) on the PID this server wrote, no memory involved.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
            let start = Instant::now();
            while pid_alive(self.pid) && start.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if pid_alive(self.pid) {
                // SAFETY: as above.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "mock server {} (pid {}) log, dir kept at {}:\n{}",
                self.url,
                self.pid,
                self.dir.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
