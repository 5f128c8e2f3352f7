//! The `cmpkit` command-line tool against OpenSSL's mock server: enrollment over HTTP and
//! through request/response files, outcome in words, and exit statuses scripts can rely on.

mod common;

use cmpkit::transport::HttpTransfer;
use common::{MockServer, RECIPIENT, REF, SECRET};
use std::path::Path;
use std::process::{Command, Output};

fn cmpkit(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmpkit"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A key file and a mock server that returns a certificate for it.
fn setup(extra: &[&str]) -> (std::path::PathBuf, MockServer) {
    let pki = common::pki();
    let dir = common::new_work_dir("cli");
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(dir.join("dev.key"))
        .status()
        .unwrap();
    assert!(st.success());
    common::issue_cert_for(
        pki,
        &std::fs::read(dir.join("dev.key")).unwrap(),
        "/CN=cli device",
        &dir.join("preset.crt"),
    );
    let server = MockServer::start(pki, Some(&dir.join("preset.crt")), extra);
    (dir, server)
}

fn mac_args<'a>(url: &'a str, secret: &'a str) -> Vec<&'a str> {
    vec![
        "ir",
        "-server",
        url,
        "-ref",
        REF,
        "-secret",
        secret,
        "-recipient",
        RECIPIENT,
        "-newkey",
        "dev.key",
        "-subject",
        "/CN=cli device",
    ]
}

#[test]
fn cli_ir_enrolls_and_writes_the_certificate_and_ca_certs() {
    if !common::available_or_skip("cli_ir_enrolls_and_writes_the_certificate_and_ca_certs") {
        return;
    }
    let (dir, server) = setup(&[]);
    let secret = format!("pass:{SECRET}");
    let mut args = mac_args(&server.url, &secret);
    args.extend([
        "-certout",
        "dev.crt",
        "-cacertsout",
        "ca.pem",
        "-extracertsout",
        "extra.pem",
    ]);
    let o = cmpkit(&dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("server status: accepted"), "{}", text(&o));
    assert!(
        text(&o).contains("enrolled: subject \"CN=cli device\""),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(dir.join("dev.crt")).unwrap(),
        std::fs::read(dir.join("preset.crt")).unwrap()
    );
    assert!(std::fs::read_to_string(dir.join("ca.pem"))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
}

#[test]
fn cli_ir_rejection_exits_1_and_names_status_fail_info_and_text() {
    if !common::available_or_skip("cli_ir_rejection_exits_1_and_names_status_fail_info_and_text") {
        return;
    }
    let (dir, server) = setup(&[
        "-pkistatus",
        "2",
        "-failure",
        "9",
        "-statusstring",
        "no-way",
    ]);
    let secret = format!("pass:{SECRET}");
    let mut args = mac_args(&server.url, &secret);
    args.extend(["-certout", "dev.crt"]);
    let o = cmpkit(&dir, &args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("rejection (failInfo: badPOP): \"no-way\""),
        "{}",
        text(&o)
    );
    assert!(!dir.join("dev.crt").exists());
}

#[test]
fn cli_wrong_secret_exits_4_with_mac_mismatch() {
    if !common::available_or_skip("cli_wrong_secret_exits_4_with_mac_mismatch") {
        return;
    }
    let (dir, server) = setup(&[]);
    let mut args = mac_args(&server.url, "pass:wrong");
    args.extend(["-certout", "dev.crt"]);
    let o = cmpkit(&dir, &args);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("mac-mismatch"), "{}", text(&o));
}

#[test]
fn cli_store_and_forward_through_request_and_response_files() {
    if !common::available_or_skip("cli_store_and_forward_through_request_and_response_files") {
        return;
    }
    let (dir, server) = setup(&[]);
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).unwrap();
    // The "courier": carries each request file to the server and the answer back.
    let courier = {
        let spool = spool.clone();
        let http = HttpTransfer::new(&server.url).unwrap();
        std::thread::spawn(move || {
            for n in 1..=2 {
                let req = spool.join(format!("req-{n}.der"));
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while !req.exists() {
                    assert!(std::time::Instant::now() < deadline, "no {}", req.display());
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                let rsp = http.post(&std::fs::read(&req).unwrap()).unwrap();
                std::fs::write(spool.join(format!("rsp-{n}.der.tmp")), rsp).unwrap();
                std::fs::rename(
                    spool.join(format!("rsp-{n}.der.tmp")),
                    spool.join(format!("rsp-{n}.der")),
                )
                .unwrap();
            }
        })
    };
    let secret = format!("pass:{SECRET}");
    let o = cmpkit(
        &dir,
        &[
            "ir",
            "-reqout",
            "spool",
            "-rsp_wait",
            "20",
            "-ref",
            REF,
            "-secret",
            &secret,
            "-recipient",
            RECIPIENT,
            "-newkey",
            "dev.key",
            "-subject",
            "/CN=cli device",
            "-certout",
            "dev.crt",
        ],
    );
    courier.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("dev.crt").exists());
}

#[test]
fn cli_usage_errors_exit_2_and_help_exits_0() {
    let dir = std::env::temp_dir();
    let o = cmpkit(&dir, &["ir", "--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("-certout FILE"));
    let o = cmpkit(&dir, &["ir", "-bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown option -bogus"));
    let o = cmpkit(&dir, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = cmpkit(
        &dir,
        &[
            "ir",
            "-server",
            "http://127.0.0.1:1/",
            "-ref",
            "r",
            "-secret",
            "pass:s",
            "-subject",
            "/CN=x",
            "-certout",
            "x.pem",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "connection refused is a transfer failure: {}",
        text(&o)
    );
}

/// Signature options with the PKI's client certificate, absolute paths.
fn sig_args(pki: &Path, cert: &str, key: &str) -> Vec<String> {
    let p = |f: &str| pki.join(f).to_string_lossy().into_owned();
    vec![
        "-cert".into(),
        p(cert),
        "-key".into(),
        p(key),
        "-trusted".into(),
        p("root.crt"),
        "-untrusted".into(),
        p("ca.crt"),
    ]
}

fn run_cli(dir: &Path, cmd: &str, url: &str, sig: Vec<String>, rest: &[&str]) -> Output {
    let mut args: Vec<String> = vec![cmd.into(), "-server".into(), url.into()];
    args.extend(sig);
    args.extend(rest.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cmpkit(dir, &refs)
}

#[test]
fn cli_cr_signed_with_a_certificate_enrolls_and_reports_polling() {
    if !common::available_or_skip("cli_cr_signed_with_a_certificate_enrolls_and_reports_polling") {
        return;
    }
    let (dir, server) = setup(&["-poll_count", "2", "-check_after", "1"]);
    let sig = sig_args(common::pki(), "client.crt", "client.key");
    let o = run_cli(
        &dir,
        "cr",
        &server.url,
        sig,
        &[
            "-newkey",
            "dev.key",
            "-subject",
            "/CN=cli device",
            "-certout",
            "cr.crt",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("polled 1 times (the server asked to wait 1s in all)"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(dir.join("cr.crt")).unwrap(),
        std::fs::read(dir.join("preset.crt")).unwrap()
    );
}

#[test]
fn cli_p10cr_enrolls_a_csr() {
    if !common::available_or_skip("cli_p10cr_enrolls_a_csr") {
        return;
    }
    let (dir, server) = setup(&[]);
    let st = Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req",
            "-new",
            "-key",
            "dev.key",
            "-subj",
            "/CN=cli device",
            "-out",
            "dev.csr",
        ])
        .env("OPENSSL_CONF", "/dev/null")
        .status()
        .unwrap();
    assert!(st.success());
    let sig = sig_args(common::pki(), "client.crt", "client.key");
    let o = run_cli(
        &dir,
        "p10cr",
        &server.url,
        sig,
        &["-csr", "dev.csr", "-certout", "p10.crt"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("p10.crt").exists());
}

#[test]
fn cli_kur_renews_the_mock_servers_certificate_with_a_new_key() {
    if !common::available_or_skip("cli_kur_renews_the_mock_servers_certificate_with_a_new_key") {
        return;
    }
    let pki = common::pki();
    let dir = common::new_work_dir("cli-kur");
    let st = Command::new("sh")
        .current_dir(&dir)
        .arg("-c")
        .arg(format!(
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key && openssl pkey -in dev.key -pubout -out dev.pub && \
             openssl x509 -new -subj '/CN=CMP Interop Client' -force_pubkey dev.pub -CA {p}/ca.crt -CAkey {p}/ca.key -set_serial 0x30 -days 30 -out renewed.crt",
            p = pki.display()
        ))
        .env("OPENSSL_CONF", "/dev/null")
        .status()
        .unwrap();
    assert!(st.success());
    let server = MockServer::start(pki, Some(&dir.join("renewed.crt")), &[]);
    let sig = sig_args(pki, "new.crt", "new.key");
    let o = run_cli(
        &dir,
        "kur",
        &server.url,
        sig,
        &["-newkey", "dev.key", "-certout", "kur.crt"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(dir.join("kur.crt")).unwrap(),
        std::fs::read(dir.join("renewed.crt")).unwrap()
    );
}

#[test]
fn cli_rr_revokes_and_a_refused_revocation_exits_1() {
    if !common::available_or_skip("cli_rr_revokes_and_a_refused_revocation_exits_1") {
        return;
    }
    let pki = common::pki();
    let dir = common::new_work_dir("cli-rr");
    let server = MockServer::start(pki, None, &[]);
    let o = run_cli(
        &dir,
        "rr",
        &server.url,
        sig_args(pki, "new.crt", "new.key"),
        &["-revreason", "4"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("revoked: subject \"CN=CMP Interop Client\""),
        "{}",
        text(&o)
    );
    drop(server);
    // The mock server only revokes the certificate it issued.
    let server = MockServer::start(pki, None, &[]);
    let o = run_cli(
        &dir,
        "rr",
        &server.url,
        sig_args(pki, "client.crt", "client.key"),
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("server status: rejection"),
        "{}",
        text(&o)
    );
}

#[test]
fn cli_genm_asks_for_key_pair_types_with_mac() {
    if !common::available_or_skip("cli_genm_asks_for_key_pair_types_with_mac") {
        return;
    }
    let pki = common::pki();
    let dir = common::new_work_dir("cli-genm");
    let server = MockServer::start(pki, None, &[]);
    let secret = format!("pass:{SECRET}");
    let o = cmpkit(
        &dir,
        &[
            "genm",
            "-server",
            &server.url,
            "-ref",
            REF,
            "-secret",
            &secret,
            "-recipient",
            RECIPIENT,
            "-infotype",
            "signKeyPairTypes",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("genp: signKeyPairTypes (no value)"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_command_has_help() {
    let dir = std::env::temp_dir();
    for c in ["ir", "cr", "kur", "p10cr", "rr", "genm"] {
        let o = cmpkit(&dir, &[c, "--help"]);
        assert!(o.status.success(), "{c}");
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&format!("cmpkit {c} — ")),
            "{c}"
        );
    }
}

/// `cmpkit server` on a free port with one MAC client; returns it and its URL.
fn our_server(max_requests: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = Command::new(env!("CARGO_BIN_EXE_cmpkit"))
        .args([
            "server",
            "-port",
            "0",
            "-ref",
            "r",
            "-secret",
            "pass:s",
            "-max_requests",
            max_requests,
            "-max_seconds",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(server.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_owned();
    (server, url)
}

#[test]
fn cli_ccr_is_cross_certified_by_our_server() {
    let dir = common::new_work_dir("cli-ccr");
    let (mut server, url) = our_server("2");
    let o = cmpkit(
        &dir,
        &[
            "ccr",
            "-server",
            &url,
            "-ref",
            "r",
            "-secret",
            "pass:s",
            "-subject",
            "/CN=Other CA",
            "-newkey",
            "other.key",
            "-certout",
            "other.crt",
        ],
    );
    let _ = server.wait();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("enrolled: subject \"CN=Other CA\""),
        "{}",
        text(&o)
    );
    assert!(
        dir.join("other.key").exists(),
        "the generated key is written to -newkey"
    );
}

#[test]
fn cli_central_keygen_request_reaches_the_ca_which_names_its_refusal() {
    // The demo CA does not generate keys: its answer (a rejection of the keyless template)
    // is reported with status and failInfo, exit 1.
    let dir = common::new_work_dir("cli-ckg");
    let (mut server, url) = our_server("1");
    let o = cmpkit(
        &dir,
        &[
            "ir",
            "-server",
            &url,
            "-ref",
            "r",
            "-secret",
            "pass:s",
            "-subject",
            "/CN=keygen",
            "-centralkeygen",
            "-newkeytype",
            "ec",
            "-certout",
            "k.crt",
            "-keyout",
            "k.key",
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("server status: rejection"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("k.key").exists());
}
