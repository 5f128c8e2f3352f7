//! OpenSSL's CMP client (`openssl cmp`, 3.0) against our server: the sans-IO `Server` with
//! a `DemoCa` issuing from the test PKI's issuing CA, behind our `HttpServer` on 127.0.0.1.
//! ir with MAC (certConf and implicitConfirm), cr, p10cr, kur and rr signed, genm with
//! signature and MAC, and polling. Every certificate is checked to chain to the test root.

mod common;

use cmpkit::crypto::{SoftwareKey, TrustStore};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{
    summarize, CaHandler, MemoryStore, PollingCa, Server, ServerConfig, ServerSigner,
};
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use common::{RECIPIENT, REF, SECRET};
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

struct OurServer {
    http: Option<HttpServer>,
    ca: Arc<DemoCa>,
    log: Arc<Mutex<Vec<String>>>,
    addr: String,
}

impl Drop for OurServer {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            let _ = h.shutdown();
        }
    }
}

fn read(p: &Path, name: &str) -> Vec<u8> {
    std::fs::read(p.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Our server configured with the test PKI: secret/ref, trust root.crt (+ ca.crt as
/// intermediate), responses signed with server.crt/server.key + ca.crt, certificates issued
/// by ca.crt/ca.key; `polls` > 0 makes the CA answer "waiting" that often first.
fn start(grant_implicit_confirm: bool, polls: u32) -> OurServer {
    let pki = common::pki();
    let ca = Arc::new(
        DemoCa::from_pem(
            &read(pki, "ca.crt"),
            &read(pki, "ca.key"),
            &read(pki, "root.crt"),
        )
        .unwrap(),
    );
    let ca_cert = X509::from_pem(&read(pki, "ca.crt")).unwrap();
    let config = ServerConfig {
        signer: Some(ServerSigner {
            key: Arc::new(SoftwareKey::from_pem_or_der(&read(pki, "server.key")).unwrap()),
            cert: X509::from_pem(&read(pki, "server.crt")).unwrap(),
            chain: vec![ca_cert.clone()],
        }),
        secrets: Some(Arc::new(|kid: &[u8]| {
            (kid == REF.as_bytes()).then(|| SECRET.as_bytes().to_vec())
        })),
        trust: Some(TrustStore::new(&[X509::from_pem(&read(pki, "root.crt")).unwrap()]).unwrap()),
        untrusted: vec![ca_cert],
        grant_implicit_confirm,
        check_after: 1,
        ..ServerConfig::default()
    };
    let handler: Arc<dyn CaHandler> = if polls > 0 {
        Arc::new(PollingCa::new(ca.clone(), polls))
    } else {
        ca.clone()
    };
    let server = Server::new(config, handler, Arc::new(MemoryStore::new())).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let http = HttpServer::bind(
        "127.0.0.1:0",
        Arc::new(move |req: &[u8]| {
            let rsp = server.process(req);
            l.lock()
                .unwrap()
                .push(format!("{} -> {}", summarize(req), summarize(&rsp)));
            rsp
        }),
        ServerOptions::default(),
    )
    .unwrap();
    let addr = http.local_addr().to_string();
    OurServer {
        http: Some(http),
        ca,
        log,
        addr,
    }
}

impl OurServer {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// `openssl cmp` against this server, run in the PKI folder, bounded by `timeout`.
    fn cmp(&self, args: &[&str]) -> Output {
        let out = Command::new("timeout")
            .args(["-k", "5", "60", "openssl", "cmp", "-config", "", "-server"])
            .arg(&self.addr)
            .args(["-path", "pkix/", "-msg_timeout", "30"])
            .args(args)
            .current_dir(common::pki())
            .env("OPENSSL_CONF", "/dev/null")
            .output()
            .unwrap();
        out
    }

    fn cmp_ok(&self, what: &str, args: &[&str]) -> String {
        let out = self.cmp(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{what}: openssl cmp failed ({}):\n{text}\nserver log: {:#?}",
            out.status,
            self.log()
        );
        text
    }
}

fn mac_args() -> Vec<&'static str> {
    vec![
        "-ref",
        REF,
        "-secret",
        "file:secret.txt",
        "-recipient",
        RECIPIENT,
    ]
}

fn sig_args() -> Vec<&'static str> {
    vec![
        "-cert",
        "client.crt",
        "-key",
        "client.key",
        "-untrusted",
        "ca.crt",
        "-trusted",
        "root.crt",
    ]
}

fn out_dir() -> PathBuf {
    common::new_work_dir("srv-ossl")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts `cert` exists, chains to root.crt through ca.crt, and has `subject` (if given).
fn assert_chains(cert: &Path, subject: Option<&str>) {
    let pki = common::pki();
    assert!(cert.exists(), "{} missing", cert.display());
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(pki.join("root.crt"))
        .arg("-untrusted")
        .arg(pki.join("ca.crt"))
        .arg(cert)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify {}: {}{}",
        cert.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(s) = subject {
        let c = X509::from_pem(&std::fs::read(cert).unwrap()).unwrap();
        let cn = c
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .unwrap()
            .data()
            .to_string()
            .unwrap();
        assert_eq!(format!("/CN={cn}"), s);
    }
}

#[test]
fn openssl_ir_with_mac_then_kur_and_rr_signed_with_the_new_cert() {
    if !common::available_or_skip("openssl_ir_with_mac_then_kur_and_rr_signed_with_the_new_cert") {
        return;
    }
    let srv = start(false, 0);
    let dir = out_dir();
    let (ir, capubs, kur) = (
        dir.join("ir.crt"),
        dir.join("capubs.crt"),
        dir.join("kur.crt"),
    );
    let mut args = vec!["-cmd", "ir"];
    args.extend(mac_args());
    args.extend([
        "-newkey",
        "new.key",
        "-subject",
        "/CN=openssl ir",
        "-certout",
        p(&ir),
        "-cacertsout",
        p(&capubs),
    ]);
    srv.cmp_ok("ir", &args);
    assert_chains(&ir, Some("/CN=openssl ir"));
    // caPubs in the ip: the root.
    let root = X509::from_pem(&read(common::pki(), "root.crt")).unwrap();
    let got = X509::from_pem(&std::fs::read(&capubs).unwrap()).unwrap();
    assert_eq!(got.to_der().unwrap(), root.to_der().unwrap());

    srv.cmp_ok(
        "kur",
        &[
            "-cmd",
            "kur",
            "-cert",
            p(&ir),
            "-key",
            "new.key",
            "-oldcert",
            p(&ir),
            "-untrusted",
            "ca.crt",
            "-trusted",
            "root.crt",
            "-newkey",
            "new.key",
            "-certout",
            p(&kur),
        ],
    );
    assert_chains(&kur, Some("/CN=openssl ir"));
    srv.cmp_ok(
        "rr",
        &[
            "-cmd",
            "rr",
            "-cert",
            p(&kur),
            "-key",
            "new.key",
            "-oldcert",
            p(&kur),
            "-untrusted",
            "ca.crt",
            "-trusted",
            "root.crt",
            "-revreason",
            "4",
        ],
    );
    let issued = srv.ca.issued();
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|c| c.confirmed));
    let revoked = srv.ca.revocations();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].reason, Some(4));
    let kur_serial = X509::from_pem(&std::fs::read(&kur).unwrap())
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap()
        .to_vec();
    assert_eq!(revoked[0].serial, kur_serial);
    assert_eq!(
        srv.log(),
        [
            "ir -> ip accepted",
            "certConf -> pkiconf",
            "kur -> kup accepted",
            "certConf -> pkiconf",
            "rr -> rp accepted"
        ]
    );
}

#[test]
fn openssl_ir_with_implicit_confirm_granted_sends_no_cert_conf() {
    if !common::available_or_skip("openssl_ir_with_implicit_confirm_granted_sends_no_cert_conf") {
        return;
    }
    let srv = start(true, 0);
    let cert = out_dir().join("ir-implicit.crt");
    let mut args = vec!["-cmd", "ir", "-implicit_confirm"];
    args.extend(mac_args());
    args.extend([
        "-newkey",
        "new.key",
        "-subject",
        "/CN=implicit",
        "-certout",
        p(&cert),
    ]);
    srv.cmp_ok("ir -implicit_confirm", &args);
    assert_chains(&cert, Some("/CN=implicit"));
    assert_eq!(srv.log(), ["ir -> ip accepted"]);
    assert!(srv.ca.issued()[0].confirmed);
}

#[test]
fn openssl_cr_p10cr_and_genm_signed_and_genm_with_mac() {
    if !common::available_or_skip("openssl_cr_p10cr_and_genm_signed_and_genm_with_mac") {
        return;
    }
    let srv = start(false, 0);
    let dir = out_dir();
    let (cr, cr_rsa, p10) = (
        dir.join("cr.crt"),
        dir.join("cr-rsa.crt"),
        dir.join("p10cr.crt"),
    );
    let mut args = vec!["-cmd", "cr"];
    args.extend(sig_args());
    args.extend([
        "-newkey",
        "new.key",
        "-subject",
        "/CN=openssl cr",
        "-certout",
        p(&cr),
    ]);
    srv.cmp_ok("cr", &args);
    assert_chains(&cr, Some("/CN=openssl cr"));

    srv.cmp_ok(
        "cr signed with RSA",
        &[
            "-cmd",
            "cr",
            "-cert",
            "client-rsa.crt",
            "-key",
            "client-rsa.key",
            "-untrusted",
            "ca.crt",
            "-trusted",
            "root.crt",
            "-newkey",
            "new.key",
            "-subject",
            "/CN=rsa signed",
            "-certout",
            p(&cr_rsa),
        ],
    );
    assert_chains(&cr_rsa, Some("/CN=rsa signed"));

    let mut args = vec!["-cmd", "p10cr"];
    args.extend(sig_args());
    args.extend(["-csr", "new.csr", "-certout", p(&p10)]);
    srv.cmp_ok("p10cr", &args);
    assert_chains(&p10, Some("/CN=CMP Interop Client"));

    let mut args = vec!["-cmd", "genm"];
    args.extend(sig_args());
    args.extend(["-infotype", "signKeyPairTypes"]);
    let text = srv.cmp_ok("genm signKeyPairTypes", &args);
    assert!(text.contains("signKeyPairTypes"), "{text}");

    let mut args = vec!["-cmd", "genm"];
    args.extend(mac_args());
    args.extend(["-infotype", "caCerts"]);
    let text = srv.cmp_ok("genm caCerts with MAC", &args);
    assert!(text.contains("id-it-caCerts"), "{text}");
    assert_eq!(
        srv.log(),
        [
            "cr -> cp accepted",
            "certConf -> pkiconf",
            "cr -> cp accepted",
            "certConf -> pkiconf",
            "p10cr -> cp accepted",
            "certConf -> pkiconf",
            "genm -> genp",
            "genm -> genp"
        ]
    );
}

#[test]
fn openssl_polls_until_the_ca_decides() {
    if !common::available_or_skip("openssl_polls_until_the_ca_decides") {
        return;
    }
    let srv = start(false, 2);
    let cert = out_dir().join("polled.crt");
    let mut args = vec!["-cmd", "cr"];
    args.extend(sig_args());
    args.extend([
        "-newkey",
        "new.key",
        "-subject",
        "/CN=polled",
        "-certout",
        p(&cert),
    ]);
    let t = std::time::Instant::now();
    srv.cmp_ok("cr with polling", &args);
    assert_chains(&cert, Some("/CN=polled"));
    assert_eq!(
        srv.log(),
        [
            "cr -> cp waiting",
            "pollReq -> pollRep waiting",
            "pollReq -> cp accepted",
            "certConf -> pkiconf"
        ]
    );
    // checkAfter 1 s, honoured once (the first "waiting" is the cp itself).
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn openssl_ir_with_wrong_secret_is_refused() {
    if !common::available_or_skip("openssl_ir_with_wrong_secret_is_refused") {
        return;
    }
    let srv = start(false, 0);
    let cert = out_dir().join("never.crt");
    let out = srv.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        REF,
        "-secret",
        "pass:wrong",
        "-recipient",
        RECIPIENT,
        "-newkey",
        "new.key",
        "-subject",
        "/CN=x",
        "-certout",
        p(&cert),
        "-unprotected_errors",
    ]);
    assert!(!out.status.success());
    assert!(!cert.exists());
    assert!(srv.ca.issued().is_empty());
    let log = srv.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("ir -> error rejection"), "{log:?}");
}
