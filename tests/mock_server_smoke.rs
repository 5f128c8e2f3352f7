//! The interop test support works: the OpenSSL mock server runs on loopback, OpenSSL's
//! own client enrolls against it, and our HTTP transfer talks to it.

mod common;

use cmpkit::asn1::PkiMessage;
use cmpkit::transport::HttpTransfer;
use cmpkit::ErrorCode;
use common::MockServer;
use der::{Decode, DecodePem};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use x509_cert::Certificate;

/// Runs `openssl cmp` (bounded to 60 s) with the arguments; returns success and the output.
fn openssl_cmp(args: &[OsString]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["-k", "5", "60", "openssl", "cmp"])
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run openssl cmp");
    let text = format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl cmp -cmd ir` with MAC protection, certifying `newkey`, writing `certout`.
fn ir_with_mac(server: &MockServer, pki: &Path, newkey: &Path, certout: &Path) -> (bool, String) {
    let args: Vec<OsString> = vec![
        "-config".into(),
        "".into(),
        "-server".into(),
        server.host_port().into(),
        "-path".into(),
        "pkix/".into(),
        "-msg_timeout".into(),
        "30".into(),
        "-cmd".into(),
        "ir".into(),
        "-ref".into(),
        common::REF.into(),
        "-secret".into(),
        format!("file:{}", pki.join("secret.txt").display()).into(),
        "-recipient".into(),
        common::RECIPIENT.into(),
        "-newkey".into(),
        newkey.into(),
        "-subject".into(),
        "/CN=CMP Interop Client".into(),
        "-certout".into(),
        certout.into(),
    ];
    openssl_cmp(&args)
}

fn read_cert(path: &Path) -> Certificate {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn openssl_client_ir_with_mac() {
    if !common::available_or_skip("openssl_client_ir_with_mac") {
        return;
    }
    let pki = common::pki();
    let server = MockServer::start(pki, None, &[]);
    let out = common::new_work_dir("ir").join("ir.crt");
    let (ok, text) = ir_with_mac(&server, pki, &pki.join("new.key"), &out);
    assert!(
        ok,
        "openssl cmp ir failed: {text}\nserver log:\n{}",
        server.log()
    );
    assert_eq!(read_cert(&out), read_cert(&pki.join("new.crt")));
    assert!(server.is_running());
}

#[test]
fn issued_cert_as_response_cert() {
    if !common::available_or_skip("issued_cert_as_response_cert") {
        return;
    }
    let pki = common::pki();
    let work = common::new_work_dir("rsp-cert");
    let key = work.join("ed25519.key");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ED25519", "-out"])
        .arg(&key)
        .env("OPENSSL_CONF", "/dev/null")
        .status()
        .unwrap();
    assert!(made.success());
    // A private key is accepted; only its public part is certified.
    let cert = work.join("ed25519.crt");
    common::issue_cert_for(
        pki,
        &std::fs::read(&key).unwrap(),
        "/CN=CMP Interop Client",
        &cert,
    );

    let server = MockServer::start(pki, Some(&cert), &[]);
    let out = work.join("ir.crt");
    let (ok, text) = ir_with_mac(&server, pki, &key, &out);
    assert!(
        ok,
        "openssl cmp ir failed: {text}\nserver log:\n{}",
        server.log()
    );
    assert_eq!(read_cert(&out), read_cert(&cert));
}

#[test]
fn issue_cert_for_public_keys_in_pem_and_der() {
    if !common::available_or_skip("issue_cert_for_public_keys_in_pem_and_der") {
        return;
    }
    let pki = common::pki();
    let work = common::new_work_dir("issue-test");
    for (name, der) in [("new.pub", false), ("client-rsa.key", true)] {
        // Public key of an existing key, in PEM or DER SubjectPublicKeyInfo.
        let spki = Command::new("openssl")
            .args([
                "pkey",
                "-pubout",
                "-outform",
                if der { "DER" } else { "PEM" },
                "-in",
            ])
            .arg(pki.join(name))
            .args(if name.ends_with(".pub") {
                &["-pubin"][..]
            } else {
                &[][..]
            })
            .env("OPENSSL_CONF", "/dev/null")
            .output()
            .unwrap();
        assert!(spki.status.success(), "{spki:?}");
        let out = work.join(format!("{name}.crt"));
        common::issue_cert_for(pki, &spki.stdout, "/CN=Issued For Test/O=cmpkit", &out);
        let cert = read_cert(&out);
        let expected_spki = if der {
            spki.stdout.clone()
        } else {
            let again = Command::new("openssl")
                .args(["pkey", "-pubin", "-pubout", "-outform", "DER", "-in"])
                .arg(pki.join(name))
                .env("OPENSSL_CONF", "/dev/null")
                .output()
                .unwrap();
            again.stdout
        };
        use der::Encode;
        assert_eq!(
            cert.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .unwrap(),
            expected_spki,
            "{name}"
        );
        assert_eq!(
            cert.tbs_certificate().issuer(),
            read_cert(&pki.join("ca.crt")).tbs_certificate().subject()
        );
    }
}

#[test]
fn http_transfer_posts_genm_vector() {
    if !common::available_or_skip("http_transfer_posts_genm_vector") {
        return;
    }
    let server = MockServer::start(common::pki(), None, &[]);
    let req = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/openssl-3.0/genm_mac_req_1.der"),
    )
    .unwrap();
    let mut transfer = HttpTransfer::new(&server.url).unwrap();
    transfer.set_timeout(Duration::from_secs(30)).unwrap();
    let rsp = transfer
        .post(&req)
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log()));
    let req_msg = PkiMessage::from_der(&req).unwrap();
    let rsp_msg = PkiMessage::from_der(&rsp).unwrap();
    assert_eq!(rsp_msg.header.transaction_id, req_msg.header.transaction_id);
    eprintln!(
        "mock server answered the genm vector with {}",
        rsp_msg.body.name()
    );

    // Paths other than / and /pkix/ get 404 from the mock server.
    let wrong = HttpTransfer::new(&format!("http://127.0.0.1:{}/.well-known/cmp", server.port))
        .unwrap()
        .post(&req)
        .unwrap_err();
    assert_eq!(wrong.code, ErrorCode::HttpError, "{wrong}");
    assert!(wrong.detail.contains("404"), "{wrong}");
}
