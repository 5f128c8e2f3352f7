//! The Rust client against OpenSSL's `openssl cmp` mock server: enrollment with MAC and with
//! signature protection, certConf and implicitConfirm, and every failure the client must
//! detect, each with its own error code.

mod common;

use cmpkit::asn1::{PkiBody, PkiMessage};
use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, Signer, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{self, MacParams, MacProtection, PbmConfig, Protection};
use cmpkit::transport::HttpTransfer;
use cmpkit::{Error, ErrorCode};
use common::{MockServer, RECIPIENT, REF, SECRET};
use der::{Decode, Encode};
use openssl::x509::X509;
use std::sync::Arc;

struct Setup {
    server: MockServer,
    key: Arc<SoftwareKey>,
    cert_der: Vec<u8>,
}

/// A fresh key, a certificate for it from the test CA, and a mock server that returns it.
fn setup(kind: KeyType, extra: &[&str]) -> Setup {
    let pki = common::pki();
    let key = Arc::new(SoftwareKey::generate(kind).unwrap());
    let dir = common::new_work_dir("client");
    let cert_path = dir.join("issued.crt");
    common::issue_cert_for(
        pki,
        &key.to_pkcs8_pem().unwrap(),
        "/CN=cmpkit test client",
        &cert_path,
    );
    let cert_der = X509::from_pem(&std::fs::read(&cert_path).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let server = MockServer::start(pki, Some(&cert_path), extra);
    Setup {
        server,
        key,
        cert_der,
    }
}

fn mac_config() -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::mac(
            SECRET.as_bytes(),
            REF.as_bytes(),
            MacParams::Pbm(PbmConfig::default()),
        )),
        recipient: Some(parse_name(RECIPIENT).unwrap()),
        ..ClientConfig::default()
    }
}

/// Signature protection with client.crt/client.key, trusting `anchor` for responses.
fn signature_config(anchor: &str) -> ClientConfig {
    let key = std::fs::read(common::pki().join("client.key")).unwrap();
    let signer = Arc::new(SoftwareKey::from_pem_or_der(&key).unwrap());
    ClientConfig {
        credentials: Some(Credentials::signature(
            signer,
            pki_cert("client.crt"),
            vec![pki_cert("ca.crt")],
        )),
        trust: Some(TrustStore::new(&[pki_cert(anchor)]).unwrap()),
        ..ClientConfig::default()
    }
}

fn request(key: &Arc<SoftwareKey>) -> EnrollRequest {
    EnrollRequest {
        subject: Some(parse_name("/CN=cmpkit test client").unwrap()),
        sans: Vec::new(),
        key: key.clone(),
    }
}

fn pki_cert(name: &str) -> X509 {
    X509::from_pem(&std::fs::read(common::pki().join(name)).unwrap()).unwrap()
}

/// Run an ir over HTTP, with `tamper` applied to every response; returns the transaction
/// and the requests sent.
fn run(
    s: &Setup,
    config: ClientConfig,
    mut tamper: impl FnMut(usize, Vec<u8>) -> Result<Vec<u8>, Error>,
) -> (Transaction, Vec<Vec<u8>>) {
    let http = HttpTransfer::new(&s.server.url).unwrap();
    let mut tx = Transaction::start_ir(Arc::new(config), request(&s.key)).unwrap();
    let mut sent = Vec::new();
    let mut transfer = |req: &[u8]| {
        sent.push(req.to_vec());
        let rsp = http.post(req)?;
        tamper(sent.len(), rsp)
    };
    let _ = execute(&mut tx, &mut transfer);
    (tx, sent)
}

fn no_tamper(_: usize, r: Vec<u8>) -> Result<Vec<u8>, Error> {
    Ok(r)
}

/// Change a MAC-protected response with `edit` and protect it again with the shared secret,
/// so that only the edited field is wrong.
fn edit_and_reprotect(rsp: &[u8], edit: impl FnOnce(&mut PkiMessage)) -> Vec<u8> {
    let mut msg = PkiMessage::from_der(rsp).unwrap();
    edit(&mut msg);
    let alg = msg.header.protection_alg.clone().unwrap();
    let p = Protection::Mac(MacProtection::new(
        SECRET.as_bytes().to_vec(),
        MacParams::Explicit(alg),
    ));
    protection::protect(&mut msg, &p).unwrap();
    msg.to_der().unwrap()
}

fn body_of(der: &[u8]) -> PkiBody {
    PkiMessage::from_der(der).unwrap().body
}

#[test]
fn ir_with_mac_enrolls_and_confirms_the_certificate() {
    if !common::available_or_skip("ir_with_mac_enrolls_and_confirms_the_certificate") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, sent) = run(&s, mac_config(), no_tamper);
    tx.result().unwrap();
    let r = tx.response();
    assert_eq!(r.certificate.as_deref(), Some(&s.cert_der[..]));
    assert_eq!(r.status.as_ref().unwrap().status, 0);
    assert_eq!(r.ca_pubs, vec![pki_cert("root.crt").to_der().unwrap()]);
    assert!(r
        .extra_certs
        .contains(&pki_cert("ca.crt").to_der().unwrap()));
    assert!(!r.implicit_confirm_granted);
    assert_eq!(sent.len(), 2, "ir then certConf");
    assert!(matches!(body_of(&sent[0]), PkiBody::Ir(_)));
    match body_of(&sent[1]) {
        PkiBody::CertConf(c) => {
            let hash =
                openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &s.cert_der).unwrap();
            assert_eq!(c[0].cert_hash.as_bytes(), &hash[..]);
            assert!(
                c[0].status_info.is_none(),
                "accepting certConf carries no status"
            );
        }
        b => panic!("second request is {}", b.name()),
    }
}

#[test]
fn ir_with_mac_for_rsa_and_ed25519_keys_enrolls() {
    if !common::available_or_skip("ir_with_mac_for_rsa_and_ed25519_keys_enrolls") {
        return;
    }
    for kind in [KeyType::Rsa(2048), KeyType::Ed25519] {
        let s = setup(kind, &[]);
        let (tx, _) = run(&s, mac_config(), no_tamper);
        tx.result().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(tx.response().certificate.as_deref(), Some(&s.cert_der[..]));
    }
}

#[test]
fn ir_with_implicit_confirm_granted_ends_after_one_round_trip() {
    if !common::available_or_skip("ir_with_implicit_confirm_granted_ends_after_one_round_trip") {
        return;
    }
    let s = setup(KeyType::EcP256, &["-grant_implicitconf"]);
    let config = ClientConfig {
        implicit_confirm: true,
        ..mac_config()
    };
    let (tx, sent) = run(&s, config, no_tamper);
    tx.result().unwrap();
    assert!(tx.response().implicit_confirm_granted);
    assert_eq!(sent.len(), 1);
}

#[test]
fn ir_asking_implicit_confirm_not_granted_still_sends_cert_conf() {
    if !common::available_or_skip("ir_asking_implicit_confirm_not_granted_still_sends_cert_conf") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let config = ClientConfig {
        implicit_confirm: true,
        ..mac_config()
    };
    let (tx, sent) = run(&s, config, no_tamper);
    tx.result().unwrap();
    assert!(!tx.response().implicit_confirm_granted);
    assert_eq!(sent.len(), 2);
}

#[test]
fn ir_with_signature_protection_validates_the_servers_chain() {
    if !common::available_or_skip("ir_with_signature_protection_validates_the_servers_chain") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let config = signature_config("root.crt");
    let (tx, sent) = run(&s, config, no_tamper);
    tx.result().unwrap();
    assert_eq!(sent.len(), 2);
    let ir = PkiMessage::from_der(&sent[0]).unwrap();
    assert_eq!(
        ir.extra_certs.as_ref().map(|c| c.len()),
        Some(2),
        "our cert and its CA go in extraCerts"
    );
}

#[test]
fn signed_response_from_an_untrusted_server_is_signer_not_trusted() {
    if !common::available_or_skip("signed_response_from_an_untrusted_server_is_signer_not_trusted")
    {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let config = signature_config("client.crt");
    let (tx, sent) = run(&s, config, no_tamper);
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::SignerNotTrusted, "{e}");
    assert!(e.detail.contains("CMP Interop Server"), "{e}");
    assert_eq!(
        sent.len(),
        1,
        "nothing is confirmed with an untrusted server"
    );
}

#[test]
fn wrong_shared_secret_is_a_mac_mismatch() {
    if !common::available_or_skip("wrong_shared_secret_is_a_mac_mismatch") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let config = ClientConfig {
        credentials: Some(Credentials::mac(
            b"not-the-secret",
            REF.as_bytes(),
            MacParams::Pbm(PbmConfig::default()),
        )),
        ..mac_config()
    };
    let (tx, _) = run(&s, config, no_tamper);
    let e = tx.result().unwrap_err();
    // The server cannot verify our MAC and answers with an error MACed with its secret,
    // which our (wrong) secret does not verify.
    assert_eq!(e.code, ErrorCode::MacMismatch, "{e}");
    assert!(e.detail.contains("response protection"), "{e}");
}

#[test]
fn tampered_response_protection_is_a_mac_mismatch() {
    if !common::available_or_skip("tampered_response_protection_is_a_mac_mismatch") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, sent) = run(&s, mac_config(), |_, r| {
        let mut m = PkiMessage::from_der(&r).unwrap();
        let mut bits = m.protection.as_ref().unwrap().raw_bytes().to_vec();
        bits[0] ^= 0x01;
        m.protection = Some(der::asn1::BitString::from_bytes(&bits).unwrap());
        Ok(m.to_der().unwrap())
    });
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::MacMismatch);
    assert_eq!(sent.len(), 1);
}

#[test]
fn response_with_another_transaction_id_is_rejected() {
    if !common::available_or_skip("response_with_another_transaction_id_is_rejected") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, _) = run(&s, mac_config(), |_, r| {
        Ok(edit_and_reprotect(&r, |m| {
            m.header.transaction_id = Some(der::asn1::OctetString::new(vec![7u8; 16]).unwrap())
        }))
    });
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::TransactionIdMismatch, "{e}");
}

#[test]
fn response_with_a_wrong_recip_nonce_is_rejected() {
    if !common::available_or_skip("response_with_a_wrong_recip_nonce_is_rejected") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, _) = run(&s, mac_config(), |_, r| {
        Ok(edit_and_reprotect(&r, |m| {
            m.header.recip_nonce = Some(der::asn1::OctetString::new(vec![9u8; 16]).unwrap())
        }))
    });
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::RecipNonceMismatch);
}

#[test]
fn certificate_for_another_key_is_rejected_in_cert_conf() {
    if !common::available_or_skip("certificate_for_another_key_is_rejected_in_cert_conf") {
        return;
    }
    let pki = common::pki();
    // The server returns new.crt, which is not for our freshly generated key.
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let s = Setup {
        server: MockServer::start(pki, None, &[]),
        key,
        cert_der: Vec::new(),
    };
    let (tx, sent) = run(&s, mac_config(), no_tamper);
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::CertKeyMismatch, "{e}");
    assert_eq!(sent.len(), 2, "the rejection is sent in certConf");
    match body_of(&sent[1]) {
        PkiBody::CertConf(c) => {
            let si = c[0]
                .status_info
                .as_ref()
                .expect("rejecting certConf has a status");
            assert_eq!(si.status, 2);
            let bits = cmpkit::message::fail_info_mask(si.fail_info.as_ref().unwrap());
            assert_eq!(bits, 1 << 7, "failInfo incorrectData");
        }
        b => panic!("second request is {}", b.name()),
    }
}

#[test]
fn ca_rejection_reports_status_fail_info_and_text() {
    if !common::available_or_skip("ca_rejection_reports_status_fail_info_and_text") {
        return;
    }
    let s = setup(
        KeyType::EcP256,
        &[
            "-pkistatus",
            "2",
            "-failure",
            "9",
            "-statusstring",
            "rejected-by-mock",
        ],
    );
    let (tx, sent) = run(&s, mac_config(), no_tamper);
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::Rejected);
    assert!(
        e.detail.contains("badPOP") && e.detail.contains("rejected-by-mock"),
        "{e}"
    );
    let st = tx.response().status.clone().unwrap();
    assert_eq!(
        (st.status, st.fail_info, st.texts),
        (2, 1 << 9, vec!["rejected-by-mock".to_string()])
    );
    assert_eq!(sent.len(), 1, "nothing follows a rejection");
}

#[test]
fn unprotected_error_is_never_success_and_reported_only_when_allowed() {
    if !common::available_or_skip(
        "unprotected_error_is_never_success_and_reported_only_when_allowed",
    ) {
        return;
    }
    let s = setup(KeyType::EcP256, &["-send_error", "-send_unprot_err"]);
    let (tx, _) = run(&s, mac_config(), no_tamper);
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::ProtectionMissing, "{e}");
    assert!(tx.response().status.is_none());
    drop(s);
    let s = setup(KeyType::EcP256, &["-send_error", "-send_unprot_err"]);
    let (tx, _) = run(
        &s,
        ClientConfig {
            unprotected_errors: true,
            ..mac_config()
        },
        no_tamper,
    );
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::PeerError, "{e}");
    assert!(tx.response().unprotected);
    assert_eq!(tx.response().status.as_ref().unwrap().status, 2);
}

#[test]
fn truncated_response_is_malformed() {
    if !common::available_or_skip("truncated_response_is_malformed") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, _) = run(&s, mac_config(), |_, r| Ok(r[..r.len() / 2].to_vec()));
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::MalformedMessage);
}

#[test]
fn oversized_response_is_refused_before_decoding() {
    if !common::available_or_skip("oversized_response_is_refused_before_decoding") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let (tx, _) = run(
        &s,
        ClientConfig {
            max_message_size: 100,
            ..mac_config()
        },
        no_tamper,
    );
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::MessageTooLarge);
}

#[test]
fn hostile_pbm_iteration_count_is_refused_without_computing() {
    if !common::available_or_skip("hostile_pbm_iteration_count_is_refused_without_computing") {
        return;
    }
    let s = setup(KeyType::EcP256, &[]);
    let started = std::time::Instant::now();
    let (tx, _) = run(&s, mac_config(), |_, r| {
        let mut m = PkiMessage::from_der(&r).unwrap();
        let alg = m.header.protection_alg.as_mut().unwrap();
        let mut params = cmpkit::asn1::PbmParameter::from_der(
            &alg.parameters.as_ref().unwrap().to_der().unwrap(),
        )
        .unwrap();
        params.iteration_count = der::asn1::Int::new(&1_000_000_000u32.to_be_bytes()).unwrap();
        alg.parameters = Some(der::asn1::Any::from_der(&params.to_der().unwrap()).unwrap());
        Ok(m.to_der().unwrap())
    });
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::IterationCountTooHigh, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn failing_transfer_ends_the_transaction_with_transfer_failed() {
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let mut tx = Transaction::start_ir(Arc::new(mac_config()), request(&key)).unwrap();
    let mut transfer = |_: &[u8]| -> Result<Vec<u8>, Error> {
        Err(Error::new(ErrorCode::TransferFailed, "link down"))
    };
    let e = execute(&mut tx, &mut transfer).unwrap_err();
    assert_eq!(e.code, ErrorCode::TransferFailed);
    assert!(e.detail.contains("link down"));
    assert!(tx.is_done() && tx.pending_request().is_none());
}

#[test]
fn ir_carries_pop_signature_by_the_new_key_and_the_subject_as_sender() {
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let tx = Transaction::start_ir(Arc::new(mac_config()), request(&key)).unwrap();
    let msg = PkiMessage::from_der(tx.pending_request().unwrap()).unwrap();
    assert_eq!(msg.header.pvno, 2);
    assert_eq!(
        msg.header.sender_kid.as_ref().unwrap().as_bytes(),
        REF.as_bytes()
    );
    let PkiBody::Ir(reqs) = &msg.body else {
        panic!("not an ir")
    };
    let crmf::pop::ProofOfPossession::Signature(pop) = reqs[0].popo.as_ref().unwrap() else {
        panic!("no signature POP")
    };
    let public = openssl::pkey::PKey::public_key_from_der(key.public_key_der()).unwrap();
    let tbs = reqs[0].cert_req.to_der().unwrap();
    cmpkit::crypto::verify_signature(key.algorithm(), &public, &tbs, pop.signature.raw_bytes())
        .unwrap();
    protection::verify_mac(&msg, SECRET.as_bytes(), &Default::default(), None).unwrap();
}
