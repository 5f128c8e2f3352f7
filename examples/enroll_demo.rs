//! Watch an enrollment: cmpkit enrolls a new key with a shared secret (ir + certConf) at
//! OpenSSL's CMP mock server on loopback, and shows every message and the certificate.
//!
//! `cargo run --example enroll_demo` — needs the `openssl` CLI and `cc` (for the mock
//! server's loopback shim). The OpenSSL 3.0 mock server returns a fixed certificate, so the
//! demo first has the test CA issue one for the key it is about to enroll.

use cmpkit::asn1::{PkiBody, PkiMessage};
use cmpkit::client::{ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, Signer, SoftwareKey};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::transport::HttpTransfer;
use der::Decode;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const SUBJECT: &str = "/CN=cmpkit demo device/O=cmpkit";

fn main() {
    if let Err(e) = run() {
        eprintln!("enroll_demo failed: {e}");
        std::process::exit(1);
    }
}

fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Stops the mock server when the demo ends, however it ends.
struct Server(String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.0).status();
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work: PathBuf = std::env::temp_dir().join(format!("cmpkit-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    println!(
        "1. Test PKI (root CA, issuing CA, CMP server certificate) in {}",
        work.display()
    );
    sh(Command::new("sh")
        .arg(root.join("tests/interop/make-pki.sh"))
        .arg(&work))?;

    println!("2. New EC P-256 key pair for the device");
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256)?);
    std::fs::write(work.join("device.key"), key.to_pkcs8_pem()?)?;
    std::fs::write(
        work.join("device.pub"),
        openssl::pkey::PKey::public_key_from_der(key.public_key_der())?.public_key_to_pem()?,
    )?;

    // The 3.0 mock server answers every request with one preset certificate: prepare it.
    sh(Command::new("openssl")
        .current_dir(&work)
        .env("OPENSSL_CONF", "/dev/null")
        .args([
            "x509",
            "-new",
            "-subj",
            SUBJECT,
            "-force_pubkey",
            "device.pub",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ])
        .args([
            "-set_serial",
            "0x4242",
            "-days",
            "365",
            "-sha256",
            "-out",
            "preset.crt",
        ]))?;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    println!("3. OpenSSL's CMP mock server on http://127.0.0.1:{port}/pkix/");
    sh(Command::new("sh")
        .arg(root.join("tests/interop/mock-server.sh"))
        .arg(&work)
        .arg(port.to_string())
        .env("MOCK_RSP_CERT", work.join("preset.crt"))
        .env("MOCK_TIMEOUT", "60"))?;
    let _server = Server(
        std::fs::read_to_string(work.join("mock-server.pid"))?
            .trim()
            .to_owned(),
    );

    println!("4. Enrolling with cmpkit: ir protected by the shared secret, then certConf");
    let config = ClientConfig {
        credentials: Some(Credentials::mac(
            b"interop-secret-0123",
            b"interop-ref-4711",
            MacParams::Pbm(PbmConfig::default()),
        )),
        recipient: Some(parse_name("/CN=CMP Interop Issuing CA")?),
        ..ClientConfig::default()
    };
    let request = EnrollRequest {
        subject: Some(parse_name(SUBJECT)?),
        sans: Vec::new(),
        key: key.clone(),
    };
    let http = HttpTransfer::new(&format!("http://127.0.0.1:{port}/pkix/"))?;
    let started = std::time::Instant::now();
    let mut tx = Transaction::start_ir(Arc::new(config), request)?;
    while let Some(req) = tx.pending_request() {
        println!("   -> {}", describe(req));
        let rsp = http.post(req)?;
        println!("   <- {}", describe(&rsp));
        if let Err(e) = tx.handle_response(&rsp) {
            println!("   the transaction failed: {e}");
            return Err(e.into());
        }
    }
    let r = tx.response();
    println!(
        "5. Done in {} ms: {}",
        started.elapsed().as_millis(),
        r.status.as_ref().map(|s| s.to_string()).unwrap_or_default()
    );
    let cert = openssl::x509::X509::from_der(r.certificate.as_deref().ok_or("no certificate")?)?;
    std::fs::write(work.join("device.crt"), cert.to_pem()?)?;
    println!(
        "   certificate: {}",
        sh(Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-issuer", "-serial", "-enddate", "-in"])
            .arg(work.join("device.crt")))?
        .replace('\n', "\n                ")
    );
    println!(
        "   caPubs: {}, extraCerts: {}",
        r.ca_pubs.len(),
        r.extra_certs.len()
    );
    println!(
        "   key: {}  certificate: {}",
        work.join("device.key").display(),
        work.join("device.crt").display()
    );
    Ok(())
}

/// One line about a message: body, size, protection, IDs.
fn describe(der: &[u8]) -> String {
    match PkiMessage::from_der(der) {
        Ok(m) => {
            let prot = match &m.header.protection_alg {
                Some(a) if a.oid == cmpkit::asn1::oid::PASSWORD_BASED_MAC => "PBM MAC".to_string(),
                Some(a) if a.oid == cmpkit::asn1::oid::PBMAC1 => "PBMAC1".to_string(),
                Some(a) => format!("signature {}", a.oid),
                None => "unprotected".to_string(),
            };
            let extra = match &m.body {
                PkiBody::Ip(r) => r
                    .response
                    .first()
                    .map(|c| {
                        format!(
                            ", status {}",
                            cmpkit::message::PeerStatus::from_status_info(&c.status)
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            format!("{:<8} {:>5} bytes, {prot}{extra}", m.body.name(), der.len())
        }
        Err(e) => format!("{} bytes that do not decode: {e}", der.len()),
    }
}
