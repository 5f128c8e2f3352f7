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
