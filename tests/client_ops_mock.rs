//! Every client operation against OpenSSL's `openssl cmp` mock server (3.0): cr, kur, p10cr,
//! rr and genm, polling, error messages, and one failure per operation with its own error
//! code.
//!
//! The 3.0 mock server cannot send typed genp values (it echoes the genm's ITAVs), so
//! caCerts, rootCaKeyUpdate, certReqTemplate and crls are tested at the end with genp
//! messages built here, MAC-protected with our protection module, fed to a transaction.

mod common;

use cmpkit::asn1::genm::{CertReqTemplateContent, RootCaKeyUpdateContent};
use cmpkit::asn1::{oid, CmpCertificate, InfoTypeAndValue, PkiBody, PkiHeader, PkiMessage};
use cmpkit::client::{
    execute, genm, ClientConfig, Credentials, EnrollRequest, Operation, Transaction,
};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::{self, parse_name};
use cmpkit::protection::{self, MacParams, MacProtection, PbmConfig, Protection};
use cmpkit::transport::HttpTransfer;
use cmpkit::{Error, ErrorCode};
use common::{MockServer, RECIPIENT, REF, SECRET};
use der::{Decode, Encode};
use openssl::x509::X509;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

fn pki_cert(name: &str) -> X509 {
    X509::from_pem(&std::fs::read(common::pki().join(name)).unwrap()).unwrap()
}

fn pki_key(name: &str) -> Arc<SoftwareKey> {
    let pem = std::fs::read(common::pki().join(name)).unwrap();
    Arc::new(SoftwareKey::from_pem_or_der(&pem).unwrap())
}

fn mac_config_with(secret: &str) -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::mac(
            secret.as_bytes(),
            REF.as_bytes(),
            MacParams::Pbm(PbmConfig::default()),
        )),
        recipient: Some(parse_name(RECIPIENT).unwrap()),
        ..ClientConfig::default()
    }
}

fn mac_config() -> ClientConfig {
    mac_config_with(SECRET)
}

/// Signature protection with client.crt/client.key, trusting root.crt for responses.
fn signature_config() -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::signature(
            pki_key("client.key"),
            pki_cert("client.crt"),
            vec![pki_cert("ca.crt")],
        )),
        trust: Some(TrustStore::new(&[pki_cert("root.crt")]).unwrap()),
        ..ClientConfig::default()
    }
}

/// No credentials of its own (kur and rr bring their key), trusting root.crt.
fn trust_only_config() -> ClientConfig {
    ClientConfig {
        trust: Some(TrustStore::new(&[pki_cert("root.crt")]).unwrap()),
        ..ClientConfig::default()
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A new key and a certificate for it from the test CA (the mock's response cert).
fn key_and_cert(subject: &str) -> (Arc<SoftwareKey>, PathBuf, Vec<u8>) {
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let path = common::new_work_dir("ops").join("issued.crt");
    common::issue_cert_for(common::pki(), &key.to_pkcs8_pem().unwrap(), subject, &path);
    let der = X509::from_pem(&std::fs::read(&path).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    (key, path, der)
}

fn enroll_request(key: &Arc<SoftwareKey>, subject: &str) -> EnrollRequest {
    EnrollRequest {
        subject: Some(parse_name(subject).unwrap()),
        sans: Vec::new(),
        key: key.clone(),
    }
}

/// Run `op` over HTTP to `server`; `tamper` may change each response. Returns the
/// transaction and the bodies of the requests sent.
fn run_with(
    server: &MockServer,
    config: ClientConfig,
    op: Operation,
    mut tamper: impl FnMut(Vec<u8>) -> Vec<u8>,
) -> (Transaction, Vec<PkiBody>) {
    let http = HttpTransfer::new(&server.url).unwrap();
    let mut tx = Transaction::start(Arc::new(config), op).unwrap();
    let mut sent = Vec::new();
    let mut transfer = |req: &[u8]| -> Result<Vec<u8>, Error> {
        sent.push(PkiMessage::from_der(req).unwrap().body);
        Ok(tamper(http.post(req)?))
    };
    let _ = execute(&mut tx, &mut transfer);
    (tx, sent)
}

fn run(server: &MockServer, config: ClientConfig, op: Operation) -> (Transaction, Vec<PkiBody>) {
    run_with(server, config, op, |r| r)
}

fn names(bodies: &[PkiBody]) -> Vec<&'static str> {
    bodies.iter().map(|b| b.name()).collect()
}

fn int(i: &der::asn1::Int) -> i64 {
    let b = i.as_bytes();
    let mut v: i64 = if b[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in b {
        v = (v << 8) | x as i64;
    }
    v
}

fn cert_conf_id(body: &PkiBody) -> i64 {
    match body {
        PkiBody::CertConf(c) => int(&c[0].cert_req_id),
        other => panic!("expected certConf, got {}", other.name()),
    }
}

// ---------------------------------------------------------------- cr

#[test]
fn cr_signed_with_client_cert_enrolls() {
    if !common::available_or_skip("cr_signed_with_client_cert_enrolls") {
        return;
    }
    let (key, path, der) = key_and_cert("/CN=cmpkit cr");
    let server = MockServer::start(common::pki(), Some(&path), &[]);
    let config = ClientConfig {
        require_cmc_eku: true,
        message_time_tolerance: Some(Duration::from_secs(60)),
        ..signature_config()
    };
    let (tx, sent) = run(
        &server,
        config,
        Operation::Cr(enroll_request(&key, "/CN=cmpkit cr")),
    );
    tx.result().unwrap();
    assert_eq!(tx.response().certificate.as_deref(), Some(&der[..]));
    assert_eq!(names(&sent), ["cr", "certConf"]);
    assert_eq!(cert_conf_id(&sent[1]), 0);
}

#[test]
fn cr_answered_by_a_signer_without_cmc_eku_is_refused_when_required() {
    if !common::available_or_skip("cr_answered_by_a_signer_without_cmc_eku") {
        return;
    }
    let (key, path, _) = key_and_cert("/CN=cmpkit cr");
    // The server signs with client.crt (EKU clientAuth only) instead of server.crt.
    let server = MockServer::start(
        common::pki(),
        Some(&path),
        &["-srv_cert", "client.crt", "-srv_key", "client.key"],
    );
    let config = ClientConfig {
        require_cmc_eku: true,
        ..signature_config()
    };
    let (tx, _) = run(
        &server,
        config,
        Operation::Cr(enroll_request(&key, "/CN=cmpkit cr")),
    );
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::MissingCmcEku, "{e}");
    assert_eq!(e.code.name(), "missing-cmc-eku");
    assert!(e.detail.contains("CMP Interop Client EC"), "{e}");
}

// ---------------------------------------------------------------- kur

/// A certificate for `key_pem` from the test CA with a given serial (the 3.0 mock server
/// accepts a kur only if its oldCertID names the issuer and serial of its response cert).
fn issue_with_serial(key_pem: &[u8], subject: &str, serial: &str) -> PathBuf {
    let pki = common::pki();
    let dir = common::new_work_dir("kur");
    let key = dir.join("key.pem");
    let public = dir.join("pub.pem");
    let cert = dir.join("cert.pem");
    std::fs::write(&key, key_pem).unwrap();
    openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&public)]);
    openssl(&[
        "x509",
        "-new",
        "-subj",
        subject,
        "-force_pubkey",
        s(&public),
        "-CA",
        s(&pki.join("ca.crt")),
        "-CAkey",
        s(&pki.join("ca.key")),
        "-set_serial",
        serial,
        "-days",
        "365",
        "-sha256",
        "-extfile",
        s(&pki.join("ext.cnf")),
        "-extensions",
        "v3_ee",
        "-out",
        s(&cert),
    ]);
    cert
}

fn kur_op(key: &Arc<SoftwareKey>) -> Operation {
    Operation::kur(
        EnrollRequest {
            subject: None,
            sans: Vec::new(),
            key: key.clone(),
        },
        &pki_cert("new.crt"),
        Some(pki_key("new.key")),
    )
    .unwrap()
}

#[test]
fn kur_signed_with_the_old_cert_updates_the_key() {
    if !common::available_or_skip("kur_signed_with_the_old_cert_updates_the_key") {
        return;
    }
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    // new.crt (serial 0x30) is the old cert; the mock returns a cert for the new key with
    // the same issuer and serial, which is what it compares oldCertID against.
    let rsp = issue_with_serial(
        &key.to_pkcs8_pem().unwrap(),
        "/CN=CMP Interop Client",
        "0x30",
    );
    let server = MockServer::start(common::pki(), Some(&rsp), &[]);
    let (tx, sent) = run(&server, trust_only_config(), kur_op(&key));
    tx.result().unwrap();
    assert_eq!(names(&sent), ["kur", "certConf"]);
    let cert = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();
    assert!(cert.public_key().unwrap().public_eq(
        &openssl::pkey::PKey::public_key_from_der(cmpkit::crypto::Signer::public_key_der(&*key))
            .unwrap()
    ));
    let PkiBody::Kur(reqs) = &sent[0] else {
        unreachable!()
    };
    let req = &reqs[0].cert_req;
    // The subject defaults to the old cert's; oldCertID names new.crt.
    assert_eq!(
        req.cert_template.subject.as_ref().unwrap().to_string(),
        "CN=CMP Interop Client"
    );
    let control = &req.controls.as_ref().unwrap()[0];
    assert_eq!(control.oid, oid::REG_CTRL_OLD_CERT_ID);
    let cid = cmpkit::asn1::CertId::from_der(&control.value.to_der().unwrap()).unwrap();
    assert_eq!(cid.serial_number.as_bytes(), [0x30]);
}

#[test]
fn kur_answered_with_a_cert_for_the_old_key_is_cert_key_mismatch() {
    if !common::available_or_skip("kur_answered_with_a_cert_for_the_old_key") {
        return;
    }
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    // The default response cert is new.crt itself: the old key, not the new one.
    let server = MockServer::start(common::pki(), None, &[]);
    let (tx, sent) = run(&server, trust_only_config(), kur_op(&key));
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::CertKeyMismatch, "{e}");
    assert_eq!(names(&sent), ["kur", "certConf"], "rejected in certConf");
}

// ---------------------------------------------------------------- p10cr

fn csr_for(key: &SoftwareKey, subject: &str) -> Vec<u8> {
    let dir = common::new_work_dir("csr");
    let key_path = dir.join("key.pem");
    let csr = dir.join("csr.der");
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap()).unwrap();
    openssl(&[
        "req",
        "-new",
        "-key",
        s(&key_path),
        "-subj",
        subject,
        "-outform",
        "DER",
        "-out",
        s(&csr),
    ]);
    std::fs::read(csr).unwrap()
}

#[test]
fn p10cr_with_mac_enrolls_with_cert_req_id_minus_one() {
    if !common::available_or_skip("p10cr_with_mac_enrolls_with_cert_req_id_minus_one") {
        return;
    }
    let (key, path, der) = key_and_cert("/CN=cmpkit p10cr");
    let server = MockServer::start(common::pki(), Some(&path), &[]);
    let csr_der = csr_for(&key, "/CN=cmpkit p10cr");
    let (tx, sent) = run(&server, mac_config(), Operation::P10cr { csr_der });
    tx.result().unwrap();
    assert_eq!(tx.response().certificate.as_deref(), Some(&der[..]));
    assert_eq!(names(&sent), ["p10cr", "certConf"]);
    assert_eq!(cert_conf_id(&sent[1]), -1);
}

#[test]
fn p10cr_response_with_a_stale_message_time_is_bad_message_time() {
    if !common::available_or_skip("p10cr_response_with_a_stale_message_time") {
        return;
    }
    let (key, path, _) = key_and_cert("/CN=cmpkit p10cr");
    let server = MockServer::start(common::pki(), Some(&path), &[]);
    let csr_der = csr_for(&key, "/CN=cmpkit p10cr");
    let config = ClientConfig {
        message_time_tolerance: Some(Duration::from_secs(300)),
        ..mac_config()
    };
    // The response's messageTime is set an hour back and the message protected again with
    // the shared secret, so only the time is wrong.
    let (tx, sent) = run_with(&server, config, Operation::P10cr { csr_der }, |rsp| {
        let mut msg = PkiMessage::from_der(&rsp).unwrap();
        let past = std::time::SystemTime::now() - Duration::from_secs(3600);
        msg.header.message_time = Some(der::asn1::GeneralizedTime::from_system_time(past).unwrap());
        reprotect(&mut msg);
        msg.to_der().unwrap()
    });
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessageTime, "{e}");
    assert_eq!(e.code as u32, 406);
    assert!(e.detail.contains("behind"), "{e}");
    assert_eq!(names(&sent), ["p10cr"]);
}

/// MAC-protect `msg` again with the test secret and its own PBM parameters.
fn reprotect(msg: &mut PkiMessage) {
    let alg = msg.header.protection_alg.clone().unwrap();
    let p = Protection::Mac(MacProtection::new(
        SECRET.as_bytes().to_vec(),
        MacParams::Explicit(alg),
    ));
    protection::protect(msg, &p).unwrap();
}

// ---------------------------------------------------------------- rr

#[test]
fn rr_signed_by_the_cert_revokes_it() {
    if !common::available_or_skip("rr_signed_by_the_cert_revokes_it") {
        return;
    }
    let server = MockServer::start(common::pki(), None, &[]);
    let op = Operation::rr(&pki_cert("new.crt"), Some(1), Some(pki_key("new.key"))).unwrap();
    let (tx, sent) = run(&server, trust_only_config(), op);
    tx.result().unwrap();
    assert_eq!(tx.response().status.as_ref().unwrap().status, 0);
    assert_eq!(names(&sent), ["rr"]);
    let PkiBody::Rr(details) = &sent[0] else {
        unreachable!()
    };
    let d = &details[0];
    assert_eq!(
        d.cert_details.serial_number.as_ref().unwrap().as_bytes(),
        [0x30]
    );
    assert_eq!(
        d.cert_details.issuer.as_ref().unwrap().to_string(),
        "CN=CMP Interop Issuing CA"
    );
    let ext = &d.crl_entry_details.as_ref().unwrap()[0];
    assert_eq!(ext.extn_id, oid::CRL_REASON);
    assert_eq!(
        ext.extn_value.as_bytes(),
        [0x0a, 0x01, 0x01],
        "keyCompromise"
    );
}

#[test]
fn rr_for_a_cert_the_mock_did_not_issue_is_a_peer_error() {
    if !common::available_or_skip("rr_for_a_cert_the_mock_did_not_issue") {
        return;
    }
    let server = MockServer::start(common::pki(), None, &[]);
    let op = Operation::rr(&pki_cert("client.crt"), None, Some(pki_key("client.key"))).unwrap();
    let (tx, _) = run(&server, trust_only_config(), op);
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::PeerError, "{e}");
    let status = tx.response().status.as_ref().unwrap();
    assert_eq!(status.status, 2, "rejection");
    let said = format!("{status} {:?}", tx.response().error_details).to_lowercase();
    assert!(said.contains("not accepted"), "{e} / {said}");
}

#[test]
fn rr_with_an_invalid_reason_code_is_refused_before_sending() {
    let err = Transaction::start(
        Arc::new(ClientConfig::default()),
        Operation::Rr {
            cert: CmpCertificate::try_from(self_signed_der().as_slice()).unwrap(),
            reason: Some(7),
            key: None,
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
}

fn self_signed_der() -> Vec<u8> {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, x509::X509Builder};
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

/// A v3 certificate of CN=Old Device (serial 0x4711) issued in the name of CN=Some CA, with a
/// subjectKeyIdentifier and a DNS subjectAltName, and its key (it signs the certificate
/// itself: only the certificate's fields matter to the requests built from it).
fn cert_with_ski_and_san() -> (Arc<SoftwareKey>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{SubjectAlternativeName, SubjectKeyIdentifier};
    use openssl::x509::{X509Builder, X509Name};
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let name = |cn: &str| {
        let mut n = X509Name::builder().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(0x4711).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name("Old Device")).unwrap();
    b.set_issuer_name(&name("Some CA")).unwrap();
    b.set_pubkey(key.pkey()).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    let san = SubjectAlternativeName::new()
        .dns("old.example")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(key.pkey(), MessageDigest::sha256()).unwrap();
    (key, b.build().to_der().unwrap())
}

#[test]
fn kur_of_a_der_certificate_takes_its_names_and_is_signed_as_its_subject() {
    let (old_key, old_der) = cert_with_ski_and_san();
    let new_key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let op = Operation::Kur {
        request: EnrollRequest {
            subject: None,
            sans: Vec::new(),
            key: new_key,
        },
        old_cert: CmpCertificate::try_from(old_der.as_slice()).unwrap(),
        old_key: Some(old_key),
    };
    let tx = Transaction::start(Arc::new(ClientConfig::default()), op).unwrap();
    let msg = PkiMessage::from_der(tx.pending_request().unwrap()).unwrap();
    let old = X509::from_der(&old_der).unwrap();
    let (subject, issuer) = (
        x509_cert::name::Name::from_der(&old.subject_name().to_der().unwrap()).unwrap(),
        x509_cert::name::Name::from_der(&old.issuer_name().to_der().unwrap()).unwrap(),
    );
    // The template: the old certificate's subject and subjectAltName; oldCertID: its issuer
    // and serial number.
    let PkiBody::Kur(reqs) = &msg.body else {
        panic!("not a kur")
    };
    let req = &reqs[0].cert_req;
    assert_eq!(req.cert_template.subject.as_ref(), Some(&subject));
    let san = &req.cert_template.extensions.as_ref().unwrap()[0];
    assert_eq!(san.extn_id, oid::SUBJECT_ALT_NAME);
    let sans = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
    assert_eq!(
        sans.0,
        [x509_cert::ext::pkix::name::GeneralName::DnsName(
            der::asn1::Ia5String::new("old.example").unwrap()
        )]
    );
    let control = &req.controls.as_ref().unwrap()[0];
    assert_eq!(control.oid, oid::REG_CTRL_OLD_CERT_ID);
    let cid = cmpkit::asn1::CertId::from_der(&control.value.to_der().unwrap()).unwrap();
    assert_eq!(
        cid.issuer,
        x509_cert::ext::pkix::name::GeneralName::DirectoryName(issuer.clone())
    );
    assert_eq!(cid.serial_number.as_bytes(), [0x47, 0x11]);
    // Signed with the old key as the old certificate's subject: senderKID is its
    // subjectKeyIdentifier, the recipient defaults to its issuer, it goes first in extraCerts.
    let h = &msg.header;
    assert_eq!(h.sender.directory_name().unwrap(), Some(subject));
    assert_eq!(h.recipient.directory_name().unwrap(), Some(issuer));
    assert_eq!(
        h.sender_kid.as_ref().unwrap().as_bytes(),
        old.subject_key_id().unwrap().as_slice()
    );
    assert_eq!(
        msg.extra_certs.as_ref().unwrap()[0].der(),
        old_der.as_slice()
    );
}

#[test]
fn kur_and_rr_of_a_certificate_whose_issuer_does_not_decode_are_bad_certificate() {
    let (key, mut der) = cert_with_ski_and_san();
    // The issuer's first RelativeDistinguishedName tagged INTEGER instead of SET: the
    // certificate keeps its shape, the Name does not decode.
    let offset = {
        let c = CmpCertificate::try_from(der.as_slice()).unwrap();
        let issuer = c.fields().unwrap().issuer;
        issuer.as_ptr() as usize - c.der().as_ptr() as usize
    };
    assert_eq!(der[offset + 2], 0x31, "SET");
    der[offset + 2] = 0x02;
    let cert = CmpCertificate::try_from(der.as_slice()).unwrap();
    assert!(cert.fields().is_ok());
    let kur = Operation::Kur {
        request: EnrollRequest {
            subject: None,
            sans: Vec::new(),
            key: key.clone(),
        },
        old_cert: cert.clone(),
        old_key: None,
    };
    let rr = Operation::Rr {
        cert,
        reason: None,
        key: None,
    };
    for (op, what) in [(kur, "old certificate"), (rr, "certificate to revoke")] {
        let e = Transaction::start(Arc::new(mac_config()), op)
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::BadCertificate, "{e}");
        assert!(e.detail.contains(what), "{e}");
    }
}

// ---------------------------------------------------------------- genm

fn check_sign_key_pair_types_echo(tx: &Transaction, sent: &[PkiBody]) {
    tx.result().unwrap();
    assert_eq!(names(sent), ["genm"]);
    let r = tx.response();
    assert!(r.genp_value(&oid::IT_SIGN_KEY_PAIR_TYPES).is_some());
    // The 3.0 mock echoes the request, which has no value.
    assert_eq!(r.sign_key_pair_types().unwrap(), None);
}

#[test]
fn genm_sign_key_pair_types_with_mac_and_with_signature() {
    if !common::available_or_skip("genm_sign_key_pair_types_with_mac_and_with_signature") {
        return;
    }
    let op = || Operation::Genm(vec![genm::sign_key_pair_types_request()]);
    let server = MockServer::start(common::pki(), None, &[]);
    let (tx, sent) = run(&server, mac_config(), op());
    check_sign_key_pair_types_echo(&tx, &sent);
    drop(server);
    let server = MockServer::start(common::pki(), None, &[]);
    let (tx, sent) = run(&server, signature_config(), op());
    check_sign_key_pair_types_echo(&tx, &sent);
}

#[test]
fn genm_with_a_wrong_secret_is_a_mac_mismatch() {
    if !common::available_or_skip("genm_with_a_wrong_secret_is_a_mac_mismatch") {
        return;
    }
    let server = MockServer::start(common::pki(), None, &[]);
    let (tx, _) = run(
        &server,
        mac_config_with("not-the-secret"),
        Operation::Genm(vec![genm::sign_key_pair_types_request()]),
    );
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::MacMismatch);
}

// ---------------------------------------------------------------- polling

#[test]
fn cr_with_polling_waits_check_after_and_gets_the_cert() {
    if !common::available_or_skip("cr_with_polling_waits_check_after_and_gets_the_cert") {
        return;
    }
    let (key, path, der) = key_and_cert("/CN=cmpkit poll");
    let server = MockServer::start(
        common::pki(),
        Some(&path),
        &["-poll_count", "2", "-check_after", "1"],
    );
    let started = Instant::now();
    let (tx, sent) = run(
        &server,
        mac_config(),
        Operation::Cr(enroll_request(&key, "/CN=cmpkit poll")),
    );
    let elapsed = started.elapsed();
    tx.result().unwrap();
    assert_eq!(tx.response().certificate.as_deref(), Some(&der[..]));
    assert_eq!(names(&sent), ["cr", "pollReq", "pollReq", "certConf"]);
    for b in &sent[1..3] {
        let PkiBody::PollReq(p) = b else {
            unreachable!()
        };
        assert_eq!(int(&p[0].cert_req_id), 0);
    }
    assert_eq!(tx.response().poll_rounds, 1);
    assert_eq!(tx.response().requested_wait, Duration::from_secs(1));
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn p10cr_polls_with_cert_req_id_minus_one() {
    if !common::available_or_skip("p10cr_polls_with_cert_req_id_minus_one") {
        return;
    }
    let (key, path, _) = key_and_cert("/CN=cmpkit p10cr poll");
    let server = MockServer::start(
        common::pki(),
        Some(&path),
        &["-poll_count", "1", "-check_after", "0"],
    );
    let csr_der = csr_for(&key, "/CN=cmpkit p10cr poll");
    let (tx, sent) = run(&server, mac_config(), Operation::P10cr { csr_der });
    tx.result().unwrap();
    assert_eq!(names(&sent), ["p10cr", "pollReq", "certConf"]);
    let PkiBody::PollReq(p) = &sent[1] else {
        unreachable!()
    };
    assert_eq!(int(&p[0].cert_req_id), -1);
}

#[test]
fn polling_past_the_deadline_is_polling_timeout() {
    if !common::available_or_skip("polling_past_the_deadline_is_polling_timeout") {
        return;
    }
    let (key, path, _) = key_and_cert("/CN=cmpkit poll");
    let server = MockServer::start(
        common::pki(),
        Some(&path),
        &["-poll_count", "3", "-check_after", "2"],
    );
    let config = ClientConfig {
        polling_deadline: Duration::from_millis(500),
        ..mac_config()
    };
    let started = Instant::now();
    let (tx, sent) = run(
        &server,
        config,
        Operation::Cr(enroll_request(&key, "/CN=cmpkit poll")),
    );
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::PollingTimeout, "{e}");
    assert_eq!(e.code as u32, 504);
    assert_eq!(e.code.name(), "polling-timeout");
    assert_eq!(names(&sent), ["cr", "pollReq"]);
    assert!(started.elapsed() < Duration::from_secs(2), "did not sleep");
}

// ---------------------------------------------------------------- error messages

#[test]
fn send_error_answers_every_operation_with_a_peer_error() {
    if !common::available_or_skip("send_error_answers_every_operation_with_a_peer_error") {
        return;
    }
    let (key, path, _) = key_and_cert("/CN=cmpkit err");
    for op in [
        Operation::Cr(enroll_request(&key, "/CN=cmpkit err")),
        Operation::P10cr {
            csr_der: csr_for(&key, "/CN=cmpkit err"),
        },
        Operation::Genm(vec![genm::sign_key_pair_types_request()]),
    ] {
        let name = op.name();
        let server = MockServer::start(common::pki(), Some(&path), &["-send_error"]);
        let (tx, sent) = run(&server, mac_config(), op);
        let e = tx.result().unwrap_err();
        assert_eq!(e.code, ErrorCode::PeerError, "{name}: {e}");
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(tx.response().status.as_ref().unwrap().status, 2, "{name}");
    }
}

// ---------------------------------------------------------------- typed genp values

/// A genp answering `tx`'s pending genm, MAC-protected with the test secret.
fn genp_for(tx: &Transaction, itavs: Vec<InfoTypeAndValue>) -> Vec<u8> {
    reply_to(tx.pending_request().unwrap(), PkiBody::Genp(itavs))
}

/// A response with `body` to the request `request`, MAC-protected with the test secret.
fn reply_to(request: &[u8], body: PkiBody) -> Vec<u8> {
    let req = PkiMessage::from_der(request).unwrap();
    let mut msg = PkiMessage {
        header: PkiHeader {
            pvno: 2,
            sender: req.header.recipient.clone(),
            recipient: req.header.sender.clone(),
            message_time: Some(message::now().unwrap()),
            protection_alg: req.header.protection_alg.clone(),
            sender_kid: None,
            recip_kid: None,
            transaction_id: req.header.transaction_id.clone(),
            sender_nonce: Some(der::asn1::OctetString::new([7u8; 16]).unwrap()),
            recip_nonce: req.header.sender_nonce.clone(),
            free_text: None,
            general_info: None,
        },
        body,
        protection: None,
        extra_certs: None,
    };
    reprotect(&mut msg);
    msg.to_der().unwrap()
}

fn genm_tx(itavs: Vec<InfoTypeAndValue>) -> Transaction {
    Transaction::start(Arc::new(mac_config()), Operation::Genm(itavs)).unwrap()
}

fn x509_cert_of(c: &X509) -> x509_cert::Certificate {
    x509_cert::Certificate::from_der(&c.to_der().unwrap()).unwrap()
}

#[test]
fn genp_ca_certs_and_cert_req_template_are_decoded() {
    let mut tx = genm_tx(vec![
        genm::ca_certs_request(),
        genm::cert_req_template_request(),
    ]);
    let anchors = [
        pki_cert_or_generated("root.crt"),
        pki_cert_or_generated("ca.crt"),
    ];
    let template = CertReqTemplateContent {
        cert_template: cmpkit::asn1::CertTemplate {
            version: None,
            serial_number: None,
            signature: None,
            issuer: None,
            validity: None,
            subject: Some(parse_name("/O=Example/CN=template").unwrap()),
            subject_public_key_info: None,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        key_spec: None,
    };
    let ca_certs: Vec<x509_cert::Certificate> = anchors.iter().map(x509_cert_of).collect();
    let rsp = genp_for(
        &tx,
        vec![
            InfoTypeAndValue {
                oid: oid::IT_CA_CERTS,
                value: Some(der::Any::encode_from(&ca_certs).unwrap()),
            },
            InfoTypeAndValue {
                oid: oid::IT_CERT_REQ_TEMPLATE,
                value: Some(der::Any::encode_from(&template).unwrap()),
            },
        ],
    );
    tx.handle_response(&rsp).unwrap();
    tx.result().unwrap();
    let r = tx.response();
    let got = r.ca_certs().unwrap().unwrap();
    assert_eq!(
        got,
        anchors
            .iter()
            .map(|c| c.to_der().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(r.cert_req_template().unwrap().unwrap(), template);
    assert_eq!(r.crls().unwrap(), None, "not asked, not sent");
}

/// The test PKI's cert when the openssl CLI is there, else a generated self-signed one
/// (these tests need no server).
fn pki_cert_or_generated(name: &str) -> X509 {
    if common::is_available() {
        pki_cert(name)
    } else {
        X509::from_der(&self_signed_der()).unwrap()
    }
}

#[test]
fn genp_with_a_malformed_ca_certs_value_is_bad_message_content() {
    let mut tx = genm_tx(vec![genm::ca_certs_request()]);
    let rsp = genp_for(
        &tx,
        vec![InfoTypeAndValue {
            oid: oid::IT_CA_CERTS,
            value: Some(der::Any::encode_from(&der::asn1::Null).unwrap()),
        }],
    );
    tx.handle_response(&rsp).unwrap();
    let e = tx.response().ca_certs().unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessageContent, "{e}");
}

/// Old and new root (self-signed), newWithOld and oldWithNew, made with the openssl CLI.
struct Roots {
    old: X509,
    new_with_new: X509,
    new_with_old: X509,
    old_with_new: X509,
    /// The new root key certified by an unrelated key (for the failure case).
    new_with_other: X509,
}

fn make_roots() -> Roots {
    let dir = common::new_work_dir("roots");
    let f = |n: &str| dir.join(n);
    for k in ["old", "new", "other"] {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            s(&f(&format!("{k}.key"))),
        ]);
        openssl(&[
            "pkey",
            "-in",
            s(&f(&format!("{k}.key"))),
            "-pubout",
            "-out",
            s(&f(&format!("{k}.pub"))),
        ]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            s(&f(&format!("{k}.key"))),
            "-subj",
            &format!("/CN=Root {k}"),
            "-days",
            "30",
            "-sha256",
            "-out",
            s(&f(&format!("{k}.crt"))),
        ]);
    }
    let cross = |subject: &str, public: &str, ca: &str, out: &str| {
        openssl(&[
            "x509",
            "-new",
            "-subj",
            subject,
            "-force_pubkey",
            s(&f(public)),
            "-CA",
            s(&f(&format!("{ca}.crt"))),
            "-CAkey",
            s(&f(&format!("{ca}.key"))),
            "-set_serial",
            "0x77",
            "-days",
            "30",
            "-sha256",
            "-out",
            s(&f(out)),
        ]);
    };
    cross("/CN=Root new", "new.pub", "old", "new_with_old.crt");
    cross("/CN=Root old", "old.pub", "new", "old_with_new.crt");
    cross("/CN=Root new", "new.pub", "other", "new_with_other.crt");
    let load = |n: &str| X509::from_pem(&std::fs::read(f(n)).unwrap()).unwrap();
    Roots {
        old: load("old.crt"),
        new_with_new: load("new.crt"),
        new_with_old: load("new_with_old.crt"),
        old_with_new: load("old_with_new.crt"),
        new_with_other: load("new_with_other.crt"),
    }
}

fn root_update_response(roots: &Roots, new_with_old: &X509) -> Transaction {
    let mut tx = genm_tx(vec![
        genm::root_ca_key_update_request(Some(&roots.old)).unwrap()
    ]);
    let PkiBody::Genm(req) = PkiMessage::from_der(tx.pending_request().unwrap())
        .unwrap()
        .body
    else {
        unreachable!()
    };
    assert_eq!(req[0].oid, oid::IT_ROOT_CA_CERT);
    assert!(req[0].value.is_some(), "the old root is named");
    let content = RootCaKeyUpdateContent {
        new_with_new: x509_cert_of(&roots.new_with_new),
        new_with_old: Some(x509_cert_of(new_with_old)),
        old_with_new: Some(x509_cert_of(&roots.old_with_new)),
    };
    // The content round-trips through DER.
    let der = content.to_der().unwrap();
    assert_eq!(RootCaKeyUpdateContent::from_der(&der).unwrap(), content);
    let rsp = genp_for(
        &tx,
        vec![InfoTypeAndValue {
            oid: oid::IT_ROOT_CA_KEY_UPDATE,
            value: Some(der::Any::from_der(&der).unwrap()),
        }],
    );
    tx.handle_response(&rsp).unwrap();
    tx
}

#[test]
fn genp_root_ca_key_update_is_verified_with_old_and_new_keys() {
    if !common::available_or_skip("genp_root_ca_key_update_is_verified") {
        return;
    }
    let roots = make_roots();
    let tx = root_update_response(&roots, &roots.new_with_old);
    let update = tx
        .response()
        .root_ca_key_update(&roots.old)
        .unwrap()
        .unwrap();
    assert_eq!(update.new_with_new, roots.new_with_new.to_der().unwrap());
    assert_eq!(
        update.new_with_old,
        Some(roots.new_with_old.to_der().unwrap())
    );
    assert_eq!(
        update.old_with_new,
        Some(roots.old_with_new.to_der().unwrap())
    );
}

#[test]
fn genp_root_ca_key_update_with_new_with_old_not_by_the_old_root_is_refused() {
    if !common::available_or_skip("genp_root_ca_key_update_not_by_the_old_root") {
        return;
    }
    let roots = make_roots();
    let tx = root_update_response(&roots, &roots.new_with_other);
    let e = tx.response().root_ca_key_update(&roots.old).unwrap_err();
    assert_eq!(e.code, ErrorCode::RootCaUpdateInvalid, "{e}");
    assert!(e.detail.contains("newWithOld"), "{e}");
    // Checked against another "old" root the genuine update fails the same way.
    let tx = root_update_response(&roots, &roots.new_with_old);
    let e = tx
        .response()
        .root_ca_key_update(&roots.new_with_other)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RootCaUpdateInvalid, "{e}");
}

#[test]
fn genp_crls_are_returned_as_der() {
    if !common::available_or_skip("genp_crls_are_returned_as_der") {
        return;
    }
    let pki = common::pki();
    let dir = common::new_work_dir("crl");
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    let cnf = dir.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\ndefault_crl_days = 30\n",
            s(&dir.join("index.txt")),
            s(&dir.join("crlnumber"))
        ),
    )
    .unwrap();
    let crl_pem = dir.join("crl.pem");
    let crl_der = dir.join("crl.der");
    openssl(&[
        "ca",
        "-gencrl",
        "-config",
        s(&cnf),
        "-cert",
        s(&pki.join("ca.crt")),
        "-keyfile",
        s(&pki.join("ca.key")),
        "-out",
        s(&crl_pem),
    ]);
    openssl(&[
        "crl",
        "-in",
        s(&crl_pem),
        "-outform",
        "DER",
        "-out",
        s(&crl_der),
    ]);
    let crl = std::fs::read(&crl_der).unwrap();
    let list = vec![cmpkit::asn1::genm::CrlStatus {
        source: cmpkit::asn1::genm::CrlSource::Issuer(vec![
            x509_cert::ext::pkix::name::GeneralName::DirectoryName(
                parse_name("/CN=CMP Interop Issuing CA").unwrap(),
            ),
        ]),
        this_update: None,
    }];
    let mut tx = genm_tx(vec![genm::crl_update_request(&list).unwrap()]);
    let crls: Vec<x509_cert::crl::CertificateList> =
        vec![x509_cert::crl::CertificateList::from_der(&crl).unwrap()];
    let rsp = genp_for(
        &tx,
        vec![InfoTypeAndValue {
            oid: oid::IT_CRLS,
            value: Some(der::Any::encode_from(&crls).unwrap()),
        }],
    );
    tx.handle_response(&rsp).unwrap();
    assert_eq!(tx.response().crls().unwrap(), Some(vec![crl]));
}

// ---------------------------------------------------------------- polling, sans-IO

fn status_info(status: u8, text: &str) -> cmpkit::asn1::PkiStatusInfo {
    cmpkit::asn1::PkiStatusInfo {
        status,
        status_string: Some(vec![text.into()]),
        fail_info: None,
    }
}

fn waiting_error() -> PkiBody {
    PkiBody::Error(cmpkit::asn1::ErrorMsgContent {
        pki_status_info: status_info(3, "busy"),
        error_code: None,
        error_details: None,
    })
}

fn poll_rep(check_after: u64) -> PkiBody {
    PkiBody::PollRep(vec![cmpkit::asn1::PollRepEntry {
        cert_req_id: der::asn1::Int::new(&[0xff]).unwrap(),
        check_after,
        reason: Some(vec!["still working".into()]),
    }])
}

/// A transfer that answers each request with the next body of `script`, and the bodies
/// of the requests it saw.
fn scripted(script: Vec<PkiBody>) -> impl FnMut(&[u8]) -> Result<Vec<u8>, Error> {
    let mut script = script.into_iter();
    move |req: &[u8]| Ok(reply_to(req, script.next().expect("script too short")))
}

#[test]
fn genm_answered_by_error_waiting_polls_with_minus_one_then_gets_the_genp() {
    let mut tx = genm_tx(vec![genm::ca_certs_request()]);
    assert_eq!(tx.wait_hint(), None);
    // error(waiting) -> pollReq right away
    let rsp = reply_to(tx.pending_request().unwrap(), waiting_error());
    tx.handle_response(&rsp).unwrap();
    assert_eq!(tx.wait_hint(), Some(Duration::ZERO));
    let PkiBody::PollReq(p) = PkiMessage::from_der(tx.pending_request().unwrap())
        .unwrap()
        .body
    else {
        panic!("expected pollReq")
    };
    assert_eq!(int(&p[0].cert_req_id), -1);
    // pollRep(checkAfter 7) -> pollReq after 7 s
    let rsp = reply_to(tx.pending_request().unwrap(), poll_rep(7));
    tx.handle_response(&rsp).unwrap();
    assert_eq!(tx.wait_hint(), Some(Duration::from_secs(7)));
    assert_eq!(tx.response().poll_reasons, ["still working"]);
    // the final genp
    let rsp = reply_to(tx.pending_request().unwrap(), PkiBody::Genp(vec![]));
    tx.handle_response(&rsp).unwrap();
    tx.result().unwrap();
    assert_eq!(tx.wait_hint(), None);
    assert_eq!(tx.response().poll_rounds, 1);
    assert_eq!(tx.response().requested_wait, Duration::from_secs(7));
}

#[test]
fn rr_polled_then_revocation_notification_is_success() {
    let op = Operation::Rr {
        cert: CmpCertificate::try_from(self_signed_der().as_slice()).unwrap(),
        reason: None,
        key: None,
    };
    let mut tx = Transaction::start(Arc::new(mac_config()), op).unwrap();
    let rp = PkiBody::Rp(cmpkit::asn1::RevRepContent {
        status: vec![status_info(5, "revoked")],
        rev_certs: None,
        crls: None,
    });
    let mut slept = Vec::new();
    let mut transfer = scripted(vec![waiting_error(), poll_rep(30), rp]);
    cmpkit::client::execute_with_sleep(&mut tx, &mut transfer, &mut |d| slept.push(d)).unwrap();
    assert_eq!(slept, [Duration::from_secs(30)]);
    assert_eq!(tx.response().status.as_ref().unwrap().status, 5);
}

#[test]
fn poll_rep_for_another_cert_req_id_is_cert_req_id_mismatch() {
    let mut tx = genm_tx(vec![genm::ca_certs_request()]);
    let wrong = PkiBody::PollRep(vec![cmpkit::asn1::PollRepEntry {
        cert_req_id: der::asn1::Int::new(&[5]).unwrap(),
        check_after: 1,
        reason: None,
    }]);
    let mut transfer = scripted(vec![waiting_error(), wrong]);
    let e = cmpkit::client::execute_with_sleep(&mut tx, &mut transfer, &mut |_| ()).unwrap_err();
    assert_eq!(e.code, ErrorCode::CertReqIdMismatch, "{e}");
}

#[test]
fn execute_gives_up_when_the_requested_waits_pass_the_deadline() {
    let config = ClientConfig {
        polling_deadline: Duration::from_secs(60),
        ..mac_config()
    };
    let mut tx = Transaction::start(
        Arc::new(config),
        Operation::Genm(vec![genm::ca_certs_request()]),
    )
    .unwrap();
    let mut slept = Vec::new();
    let mut transfer = scripted(vec![waiting_error(), poll_rep(40), poll_rep(40)]);
    let e = cmpkit::client::execute_with_sleep(&mut tx, &mut transfer, &mut |d| slept.push(d))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PollingTimeout, "{e}");
    assert_eq!(
        slept,
        [Duration::from_secs(40)],
        "the second wait is not started"
    );
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::PollingTimeout);
    assert_eq!(tx.response().poll_rounds, 2);
}

// ---------------------------------------------------------------- signer fields per config

/// A self-signed certificate of CN=`cn` and its key.
fn self_signed_with_key(cn: &str) -> (Arc<SoftwareKey>, X509) {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, x509::X509Builder, x509::X509NameBuilder};
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_pubkey(key.pkey()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(key.pkey(), MessageDigest::sha256()).unwrap();
    (key, b.build())
}

/// The sender and first extraCert of the first request of a genm under `config`.
fn genm_signer(config: &Arc<ClientConfig>) -> (String, Vec<u8>) {
    let tx = Transaction::start(config.clone(), Operation::Genm(Vec::new())).unwrap();
    let msg = PkiMessage::from_der(tx.pending_request().unwrap()).unwrap();
    let sender = msg
        .header
        .sender
        .directory_name()
        .unwrap()
        .expect("a directoryName")
        .to_string();
    (sender, msg.extra_certs.unwrap()[0].der().to_vec())
}

#[test]
fn each_signature_configuration_signs_as_its_own_certificate_across_transactions() {
    // The client remembers the header fields of a configuration's signer per configuration:
    // transactions of one configuration share them, another configuration (also one made
    // where a dropped one was) never sees them.
    let config = |cn: &str| {
        let (key, cert) = self_signed_with_key(cn);
        let der = cert.to_der().unwrap();
        let c = Arc::new(ClientConfig {
            credentials: Some(Credentials::signature(key, cert, Vec::new())),
            ..ClientConfig::default()
        });
        (c, der)
    };
    let (a, a_der) = config("signer A");
    for round in 0..20 {
        let (b, b_der) = config(&format!("signer B{round}"));
        assert_eq!(genm_signer(&a), ("CN=signer A".to_owned(), a_der.clone()));
        assert_eq!(
            genm_signer(&b),
            (format!("CN=signer B{round}"), b_der.clone())
        );
        assert_eq!(genm_signer(&b).1, b_der, "again, from what was remembered");
        drop(b);
    }
}

/// What the first request of a kur (with the configuration's key) of `old` under `config`
/// takes from it: the template's subject and subjectAltName entries, and oldCertID's issuer
/// and serial number.
fn kur_names(config: &Arc<ClientConfig>, old: &[u8]) -> (String, Vec<String>, String, Vec<u8>) {
    let op = Operation::Kur {
        request: EnrollRequest {
            subject: None,
            sans: Vec::new(),
            key: Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap()),
        },
        old_cert: CmpCertificate::try_from(old).unwrap(),
        old_key: None,
    };
    let tx = Transaction::start(config.clone(), op).unwrap();
    let msg = PkiMessage::from_der(tx.pending_request().unwrap()).unwrap();
    let PkiBody::Kur(reqs) = &msg.body else {
        panic!("not a kur")
    };
    let req = &reqs[0].cert_req;
    let sans = match req.cert_template.extensions.as_ref() {
        Some(exts) => {
            let san = x509_cert::ext::pkix::SubjectAltName::from_der(exts[0].extn_value.as_bytes());
            san.unwrap().0.iter().map(|n| format!("{n:?}")).collect()
        }
        None => Vec::new(),
    };
    let control = &req.controls.as_ref().unwrap()[0];
    let cid = cmpkit::asn1::CertId::from_der(&control.value.to_der().unwrap()).unwrap();
    let x509_cert::ext::pkix::name::GeneralName::DirectoryName(issuer) = cid.issuer else {
        panic!("oldCertID issuer {:?}", cid.issuer)
    };
    (
        req.cert_template.subject.as_ref().unwrap().to_string(),
        sans,
        issuer.to_string(),
        cid.serial_number.as_bytes().to_vec(),
    )
}

/// The issuer and serial number an rr (with the configuration's key) of `cert` under
/// `config` names.
fn rr_names(config: &Arc<ClientConfig>, cert: &[u8]) -> (String, Vec<u8>) {
    let op = Operation::Rr {
        cert: CmpCertificate::try_from(cert).unwrap(),
        reason: None,
        key: None,
    };
    let tx = Transaction::start(config.clone(), op).unwrap();
    let msg = PkiMessage::from_der(tx.pending_request().unwrap()).unwrap();
    let PkiBody::Rr(details) = &msg.body else {
        panic!("not an rr")
    };
    let t = &details[0].cert_details;
    (
        t.issuer.as_ref().unwrap().to_string(),
        t.serial_number.as_ref().unwrap().as_bytes().to_vec(),
    )
}

#[test]
fn kur_and_rr_name_the_certificate_they_are_given_whether_it_is_the_configured_one_or_not() {
    // The client remembers what a kur or rr takes from the configured certificate per
    // configuration; another certificate, or another configuration's, is never taken for it.
    let (key, own_der) = cert_with_ski_and_san();
    let own = X509::from_der(&own_der).unwrap();
    let config = Arc::new(ClientConfig {
        credentials: Some(Credentials::signature(key, own, Vec::new())),
        ..ClientConfig::default()
    });
    let (other_key, other) = self_signed_with_key("Other Device");
    let other_der = other.to_der().unwrap();
    let other_config = Arc::new(ClientConfig {
        credentials: Some(Credentials::signature(other_key, other, Vec::new())),
        ..ClientConfig::default()
    });
    let own_names = (
        "CN=Old Device".to_owned(),
        vec!["DnsName(Ia5String(\"old.example\"))".to_owned()],
        "CN=Some CA".to_owned(),
        vec![0x47, 0x11],
    );
    let other_serial = rr_names(&other_config, &other_der).1;
    let other_names = (
        "CN=Other Device".to_owned(),
        Vec::new(),
        "CN=Other Device".to_owned(),
        other_serial.clone(),
    );
    for _ in 0..3 {
        assert_eq!(kur_names(&config, &own_der), own_names);
        assert_eq!(kur_names(&config, &other_der), other_names);
        assert_eq!(kur_names(&other_config, &other_der), other_names);
        assert_eq!(kur_names(&other_config, &own_der), own_names);
        assert_eq!(
            rr_names(&config, &own_der),
            ("CN=Some CA".to_owned(), vec![0x47, 0x11])
        );
        assert_eq!(
            rr_names(&config, &other_der),
            ("CN=Other Device".to_owned(), other_serial.clone())
        );
    }
}
