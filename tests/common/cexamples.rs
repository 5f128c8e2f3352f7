//! Compiling the C examples against the cdylib and running them against OpenSSL's mock
//! server: shared by tests/c_examples.rs and tests/c_sanitizers.rs.

use super::MockServer;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The directory holding `libcmpkit.so` built for this test run.
///
/// Cargo builds the cdylib with the library for integration tests into `target/<profile>/deps`
/// (the test binary's own directory) and uplifts it to `target/<profile>` only on `cargo
/// build`; the fresh copy in `deps` is preferred.
pub fn cdylib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary directory").to_path_buf();
    let mut candidates = vec![deps.clone()];
    if let Some(profile) = deps.parent() {
        candidates.push(profile.to_path_buf());
    }
    if let Some(t) = option_env!("CARGO_TARGET_DIR") {
        candidates.push(Path::new(t).join("debug"));
    }
    candidates
        .iter()
        .find(|d| d.join("libcmpkit.so").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libcmpkit.so not found in any of {candidates:?}; the cdylib should be built \
                 with the library (crate-type includes \"cdylib\")"
            )
        })
}

/// A directory with `libcmpkit.so` and `libcmpkit.so.<major>` (the soname the cdylib carries,
/// which cargo does not create) linking to the cdylib, for `-L` and the run-time rpath.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let lib = cdylib_dir().join("libcmpkit.so");
        let dir = super::new_work_dir("c-examples-lib");
        let soname = format!("libcmpkit.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
        for link in ["libcmpkit.so", soname.as_str()] {
            std::os::unix::fs::symlink(&lib, dir.join(link))
                .unwrap_or_else(|e| panic!("symlink {link} -> {}: {e}", lib.display()));
        }
        dir
    })
}

/// Compiles `c-examples/<name>.c` once per test process; returns the executable.
pub fn compile(name: &str) -> PathBuf {
    compile_with(name, "", &[])
}

/// Compiles `c-examples/<name>.c` with extra compiler and linker `flags` into an executable
/// named `<name><variant>`, once per test process.
pub fn compile_with(name: &str, variant: &str, flags: &[&str]) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out_dir = BUILT.get_or_init(|| super::new_work_dir("c-examples-bin"));
    let exe = out_dir.join(format!("{name}{variant}"));
    // Each example is compiled by the first test that needs it; a lock keeps two tests from
    // writing the same file.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if exe.exists() {
        return exe;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("c-examples").join(format!("{name}.c"));
    cc_against_cmpkit(&source, &exe, flags, &[] as &[&str]);
    exe
}

/// Compiles the C11 program `source` warning-free (`-Werror`) against `include/cmpkit.h`
/// and this build's cdylib into `exe`: `flags` come before the source, `libs` after
/// `-lcmpkit`. Panics with the compiler's output on failure.
pub fn cc_against_cmpkit(
    source: &Path,
    exe: &Path,
    flags: &[impl AsRef<OsStr>],
    libs: &[impl AsRef<OsStr>],
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    let out = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-I",
        ])
        .arg(root.join("include"))
        .args(flags)
        .arg(source)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(lib)
        .arg("-lcmpkit")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(libs)
        .stdin(Stdio::null())
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {} failed:\n{}",
        source.display(),
        describe(&out)
    );
}

/// A process's exit status and output, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn openssl(args: &[&OsStr]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        describe(&out)
    );
    out
}

/// One test's setup: a P-256 key, a certificate issued for it, a mock server returning it.
pub struct Setup {
    pub dir: PathBuf,
    pub key: PathBuf,
    pub server: MockServer,
}

impl Setup {
    pub fn new(prefix: &str, extra_args: &[&str]) -> Setup {
        let pki = super::pki();
        let dir = super::new_work_dir(prefix);
        let key = dir.join("key.pem");
        openssl(&[
            OsStr::new("genpkey"),
            OsStr::new("-algorithm"),
            OsStr::new("EC"),
            OsStr::new("-pkeyopt"),
            OsStr::new("ec_paramgen_curve:P-256"),
            OsStr::new("-out"),
            key.as_os_str(),
        ]);
        let cert = dir.join("issued.crt");
        super::issue_cert_for(pki, &std::fs::read(&key).unwrap(), "/CN=C Example", &cert);
        let server = MockServer::start(pki, Some(&cert), extra_args);
        Setup { dir, key, server }
    }

    /// A setup around the PKI's `new.key` and a mock server returning `new.crt`, the
    /// certificate the 3.0 mock server also renews (kur) and revokes (rr).
    pub fn with_default_cert(prefix: &str) -> Setup {
        let pki = super::pki();
        Setup {
            dir: super::new_work_dir(prefix),
            key: pki.join("new.key"),
            server: MockServer::start(pki, None, &[]),
        }
    }

    pub fn out_key(&self) -> PathBuf {
        self.dir.join("out.key")
    }

    pub fn out_cert(&self) -> PathBuf {
        self.dir.join("out.crt")
    }

    /// Arguments for an example: URL SECRET REF SUBJECT OUT_KEY OUT_CERT --key KEY
    /// --recipient DN, then `extra`.
    pub fn args(&self, secret: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            self.server.url.clone(),
            secret.to_owned(),
            super::REF.to_owned(),
            "/CN=C Example".to_owned(),
            self.out_key().display().to_string(),
            self.out_cert().display().to_string(),
            "--key".to_owned(),
            self.key.display().to_string(),
            "--recipient".to_owned(),
            super::RECIPIENT.to_owned(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `program` (optionally under a wrapper like valgrind), bounded to 120 s.
    pub fn run(&self, wrapper: &[&str], program: &Path, args: &[String]) -> Output {
        self.run_env(wrapper, program, args, &[])
    }

    /// [`run`](Self::run) with extra environment variables.
    pub fn run_env(
        &self,
        wrapper: &[&str],
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "120"])
            .args(wrapper)
            .arg(program)
            .args(args)
            .env("OPENSSL_CONF", "/dev/null")
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run the example")
    }

    /// Asserts success: exit 0, "accepted", and the issued certificate carries our key.
    pub fn assert_enrolled(&self, what: &str, out: &Output) -> String {
        let text = describe(out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what} failed: {text}\nserver log:\n{}",
            self.server.log()
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            stdout.contains("status: accepted"),
            "{what}: no accepted status: {text}"
        );
        assert!(self.out_cert().is_file(), "{what}: no certificate written");
        let cert_pub = openssl(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            self.out_cert().as_os_str(),
            OsStr::new("-pubkey"),
            OsStr::new("-noout"),
        ])
        .stdout;
        let key_pub = openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            self.key.as_os_str(),
            OsStr::new("-pubout"),
        ])
        .stdout;
        assert_eq!(
            String::from_utf8_lossy(&cert_pub),
            String::from_utf8_lossy(&key_pub),
            "{what}: the certificate does not carry the key"
        );
        // The written private key is the one we enrolled.
        let written_pub = openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            self.out_key().as_os_str(),
            OsStr::new("-pubout"),
        ])
        .stdout;
        assert_eq!(written_pub, key_pub, "{what}: OUT_KEY.pem is another key");
        stdout
    }
}

/// Exit code, and stdout + stderr as one text.
pub fn failure_text(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
