//! Central key generation (RFC 9483 §4.1.6), key recovery (krr/krp) and cross-certification
//! (ccr/ccp), sans-IO: the server side is built here. The key generation authority's
//! SignedData and the password-based EnvelopedData are made with the `openssl cms` command,
//! key transport (RSA) and key agreement (ECDH) EnvelopedData with OpenSSL's CMS through the
//! `openssl` crate; responses are MAC-protected with our protection module.

mod common;

use cmpkit::asn1::{
    oid, CertOrEncCert, CertRepMessage, CertResponse, CertifiedKeyPair, EncryptedKey,
    EnvelopedData, KeyRecRepContent, PkiBody, PkiHeader, PkiMessage, PkiStatusInfo,
};
use cmpkit::client::{
    ClientConfig, Credentials, EnrollRequest, KeygenRequest, Operation, Transaction,
};
use cmpkit::crypto::{KeyType, SoftwareDecryptor, SoftwareKey, TrustStore};
use cmpkit::message::{self, parse_name};
use cmpkit::protection::{self, MacParams, MacProtection, PbmConfig, Protection};
use cmpkit::ErrorCode;
use common::{REF, SECRET};
use der::asn1::{Any, Int};
use der::{Decode, Encode};
use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509NameBuilder, X509};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

// ---------------------------------------------------------------- a small PKI

struct Issuer {
    key: PKey<Private>,
    cert: X509,
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn ca() -> Issuer {
    ca_named("keygen test CA")
}

/// A self-signed CA named `cn`.
fn ca_named(cn: &str) -> Issuer {
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_issuer_name(&name(cn)).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    Issuer { key, cert }
}

/// A certificate for `key` from `ca`, with extended key usage `eku` (an OID) if given.
fn issue<T: HasPublic>(ca: &Issuer, cn: &str, key: &PKeyRef<T>, eku: Option<&str>) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(rand_u32()).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    if let Some(eku) = eku {
        b.append_extension(ExtendedKeyUsage::new().other(eku).build().unwrap())
            .unwrap();
    }
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_be_bytes(b) >> 1
}

fn openssl_cli(args: &[&str]) {
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

// ---------------------------------------------------------------- the server's key delivery

/// `AsymmetricKeyPackage ::= SEQUENCE OF OneAsymmetricKey` with the one key `pkcs8`.
fn key_package(pkcs8: &[u8]) -> Vec<u8> {
    vec![Any::from_der(pkcs8).unwrap()].to_der().unwrap()
}

/// The DER SignedData (not its ContentInfo) of `kga` over the key package, eContentType
/// id-ct-KP-aKeyPackage, with the signer's certificate.
fn signed_by_kga(kga: &Issuer, package: &[u8]) -> Vec<u8> {
    let dir = common::new_work_dir("kga");
    let (input, cert, key, out) = (
        dir.join("pkg.der"),
        dir.join("kga.pem"),
        dir.join("kga.key"),
        dir.join("sd.der"),
    );
    std::fs::write(&input, package).unwrap();
    std::fs::write(&cert, kga.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key, kga.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    openssl_cli(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-econtent_type",
        "2.16.840.1.101.2.1.2.78.5",
        "-signer",
        s(&cert),
        "-inkey",
        s(&key),
        "-in",
        s(&input),
        "-outform",
        "DER",
        "-out",
        s(&out),
    ]);
    let ci = cms::content_info::ContentInfo::from_der(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(ci.content_type, oid::CT_SIGNED_DATA);
    ci.content.to_der().unwrap()
}

/// The EnvelopedData of a DER ContentInfo, its inner content type set to id-signedData (as
/// RFC 9483 asks; the content type is not authenticated in EnvelopedData, so OpenSSL's
/// default id-data can be replaced after encryption).
fn enveloped(content_info_der: &[u8]) -> EnvelopedData {
    let ci = cms::content_info::ContentInfo::from_der(content_info_der).unwrap();
    assert_eq!(ci.content_type, oid::CT_ENVELOPED_DATA);
    let mut env: EnvelopedData = ci.content.decode_as().unwrap();
    env.encrypted_content.content_type = oid::CT_SIGNED_DATA;
    env
}

/// EnvelopedData for `recipient` (RSA: ktri, EC: kari).
fn envelop_for(recipient: &X509, content: &[u8]) -> EncryptedKey {
    let mut certs = Stack::new().unwrap();
    certs.push(recipient.clone()).unwrap();
    let ci = CmsContentInfo::encrypt(
        &certs,
        content,
        openssl::symm::Cipher::aes_256_cbc(),
        CMSOptions::BINARY,
    )
    .unwrap();
    EncryptedKey::EnvelopedData(Box::new(enveloped(&ci.to_der().unwrap())))
}

/// EnvelopedData with a password recipient info (PBKDF2, id-alg-PWRI-KEK) for `password`.
fn envelop_with_password(password: &str, content: &[u8]) -> EncryptedKey {
    let dir = common::new_work_dir("pwri");
    let (input, out) = (dir.join("in.der"), dir.join("env.der"));
    std::fs::write(&input, content).unwrap();
    openssl_cli(&[
        "cms",
        "-encrypt",
        "-binary",
        "-aes256",
        "-pwri_password",
        password,
        "-in",
        s(&input),
        "-outform",
        "DER",
        "-out",
        s(&out),
    ]);
    EncryptedKey::EnvelopedData(Box::new(enveloped(&std::fs::read(&out).unwrap())))
}

// ---------------------------------------------------------------- messages

fn mac_config() -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::mac(
            SECRET.as_bytes(),
            REF.as_bytes(),
            MacParams::Pbm(PbmConfig::default()),
        )),
        recipient: Some(parse_name("/CN=keygen test CA").unwrap()),
        ..ClientConfig::default()
    }
}

/// A response with `body` to `request`, MAC-protected with the test secret.
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
    let p = Protection::Mac(MacProtection::new(
        SECRET.as_bytes().to_vec(),
        MacParams::Explicit(msg.header.protection_alg.clone().unwrap()),
    ));
    protection::protect(&mut msg, &p).unwrap();
    msg.to_der().unwrap()
}

fn accepted() -> PkiStatusInfo {
    PkiStatusInfo {
        status: 0,
        status_string: None,
        fail_info: None,
    }
}

fn cmp_cert(c: &X509) -> cmpkit::asn1::CmpCertificate {
    cmpkit::asn1::CmpCertificate::try_from(c.to_der().unwrap().as_slice()).unwrap()
}

fn cert_rep(cert: &X509, private_key: Option<EncryptedKey>) -> CertRepMessage {
    CertRepMessage {
        ca_pubs: None,
        response: vec![CertResponse {
            cert_req_id: Int::new(&[0]).unwrap(),
            status: accepted(),
            certified_key_pair: Some(CertifiedKeyPair {
                cert_or_enc_cert: CertOrEncCert::Certificate(cmp_cert(cert)),
                private_key,
                publication_info: None,
            }),
            rsp_info: None,
        }],
    }
}

fn sent_body(tx: &Transaction) -> PkiBody {
    PkiMessage::from_der(tx.pending_request().unwrap())
        .unwrap()
        .body
}

fn keygen_request() -> KeygenRequest {
    KeygenRequest {
        subject: Some(parse_name("/CN=central key").unwrap()),
        sans: Vec::new(),
        algorithm: Some(KeygenRequest::algorithm_for(KeyType::EcP256).unwrap()),
    }
}

/// Run a central-keygen ir whose ip delivers `private_key` with `cert`; returns the
/// transaction after the certConf was answered by pkiConf, and the certConf body.
fn run_keygen(
    config: ClientConfig,
    cert: &X509,
    private_key: EncryptedKey,
) -> (Transaction, PkiBody) {
    let mut tx = Transaction::start(
        Arc::new(config),
        Operation::IrCentralKeygen(keygen_request()),
    )
    .unwrap();
    // The ir asks for a key: algorithm only, empty subjectPublicKey, no POP.
    let PkiBody::Ir(msgs) = sent_body(&tx) else {
        panic!("expected ir")
    };
    let template = &msgs[0].cert_req.cert_template;
    let spki = template.subject_public_key_info.as_ref().unwrap();
    assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.10045.2.1");
    assert!(spki.subject_public_key.raw_bytes().is_empty());
    assert!(msgs[0].popo.is_none());
    let ip = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::Ip(cert_rep(cert, Some(private_key))),
    );
    let _ = tx.handle_response(&ip);
    let cert_conf = sent_body(&tx);
    assert_eq!(cert_conf.name(), "certConf");
    let conf = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::PkiConf(der::asn1::Null),
    );
    let _ = tx.handle_response(&conf);
    assert!(tx.is_done());
    (tx, cert_conf)
}

fn cert_conf_rejected(body: &PkiBody) -> bool {
    let PkiBody::CertConf(c) = body else {
        panic!("expected certConf")
    };
    c[0].status_info.as_ref().is_some_and(|s| s.status == 2)
}

/// The generated key, its certificate from `ca`, and the signed key package.
fn generated(ca: &Issuer, kga: &Issuer) -> (PKey<Private>, X509, Vec<u8>) {
    let key = PKey::ec_gen("prime256v1").unwrap();
    let cert = issue(ca, "central key", &key, None);
    let pkcs8 = key.private_key_to_pkcs8().unwrap();
    let sd = signed_by_kga(kga, &key_package(&pkcs8));
    (key, cert, sd)
}

fn kga(ca: &Issuer) -> Issuer {
    let key = PKey::ec_gen("prime256v1").unwrap();
    let cert = issue(
        ca,
        "key generation authority",
        &key,
        Some("1.3.6.1.5.5.7.3.32"),
    );
    Issuer { key, cert }
}

// ---------------------------------------------------------------- central key generation

#[test]
fn central_keygen_rsa_key_transport_with_a_trusted_kga() {
    if !common::available_or_skip("central_keygen_rsa_key_transport") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (key, cert, sd) = generated(&ca, &kga);
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let rsa_cert = issue(&ca, "client rsa", &rsa, None);
    let config = ClientConfig {
        decryptor: Some(Arc::new(
            SoftwareDecryptor::new(rsa, rsa_cert.clone()).unwrap(),
        )),
        trust: Some(TrustStore::new(std::slice::from_ref(&ca.cert)).unwrap()),
        ..mac_config()
    };
    let (tx, cert_conf) = run_keygen(config, &cert, envelop_for(&rsa_cert, &sd));
    tx.result().unwrap();
    assert!(!cert_conf_rejected(&cert_conf));
    let r = tx.response();
    assert_eq!(
        r.private_key_pkcs8.as_deref(),
        Some(&key.private_key_to_pkcs8().unwrap()[..])
    );
    assert_eq!(
        r.key_generation_authority.as_deref(),
        Some(&kga.cert.to_der().unwrap()[..])
    );
}

#[test]
fn central_keygen_ec_key_agreement() {
    if !common::available_or_skip("central_keygen_ec_key_agreement") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (key, cert, sd) = generated(&ca, &kga);
    let ec = PKey::ec_gen("prime256v1").unwrap();
    let ec_cert = issue(&ca, "client ec", &ec, None);
    let encrypted = envelop_for(&ec_cert, &sd);
    let EncryptedKey::EnvelopedData(env) = &encrypted else {
        unreachable!()
    };
    assert!(matches!(
        env.recip_infos.0.iter().next().unwrap(),
        cms::enveloped_data::RecipientInfo::Kari(_)
    ));
    let config = ClientConfig {
        decryptor: Some(Arc::new(SoftwareDecryptor::new(ec, ec_cert).unwrap())),
        ..mac_config()
    };
    let (tx, _) = run_keygen(config, &cert, encrypted);
    tx.result().unwrap();
    let pkcs8 = tx.response().private_key_pkcs8.clone().unwrap();
    assert!(PKey::private_key_from_der(&pkcs8).unwrap().public_eq(&key));
}

#[test]
fn central_keygen_password_recipient_with_the_mac_secret_in_a_cr() {
    if !common::available_or_skip("central_keygen_password_recipient") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (key, cert, sd) = generated(&ca, &kga);
    let mut tx = Transaction::start(
        Arc::new(mac_config()),
        Operation::CrCentralKeygen(KeygenRequest {
            algorithm: None,
            ..keygen_request()
        }),
    )
    .unwrap();
    let PkiBody::Cr(msgs) = sent_body(&tx) else {
        panic!("expected cr")
    };
    assert!(msgs[0]
        .cert_req
        .cert_template
        .subject_public_key_info
        .is_none());
    let cp = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::Cp(cert_rep(&cert, Some(envelop_with_password(SECRET, &sd)))),
    );
    tx.handle_response(&cp).unwrap();
    assert!(!cert_conf_rejected(&sent_body(&tx)));
    let conf = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::PkiConf(der::asn1::Null),
    );
    tx.handle_response(&conf).unwrap();
    assert_eq!(
        tx.response().private_key_pkcs8.as_deref(),
        Some(&key.private_key_to_pkcs8().unwrap()[..])
    );
}

#[test]
fn central_keygen_for_another_recipient_is_decryption_failed_and_rejected() {
    if !common::available_or_skip("central_keygen_for_another_recipient") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (_, cert, sd) = generated(&ca, &kga);
    let ours = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let our_cert = issue(&ca, "us", &ours, None);
    let other = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let other_cert = issue(&ca, "someone else", &other, None);
    let config = ClientConfig {
        decryptor: Some(Arc::new(SoftwareDecryptor::new(ours, our_cert).unwrap())),
        ..mac_config()
    };
    let (tx, cert_conf) = run_keygen(config, &cert, envelop_for(&other_cert, &sd));
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::DecryptionFailed, "{e}");
    assert_eq!(e.code as u32, 704);
    assert!(cert_conf_rejected(&cert_conf));
    assert!(tx.response().private_key_pkcs8.is_none());
    // A wrong shared secret fails the same way.
    let (tx, cert_conf) = run_keygen(mac_config(), &cert, envelop_with_password("wrong", &sd));
    assert_eq!(tx.result().unwrap_err().code, ErrorCode::DecryptionFailed);
    assert!(cert_conf_rejected(&cert_conf));
}

#[test]
fn central_keygen_key_not_matching_the_certificate_is_cert_key_mismatch() {
    if !common::available_or_skip("central_keygen_key_not_matching") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (_, _, sd) = generated(&ca, &kga);
    let other = PKey::ec_gen("prime256v1").unwrap();
    let cert_for_other = issue(&ca, "central key", &other, None);
    let (tx, cert_conf) = run_keygen(
        mac_config(),
        &cert_for_other,
        envelop_with_password(SECRET, &sd),
    );
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::CertKeyMismatch, "{e}");
    assert!(cert_conf_rejected(&cert_conf));
}

#[test]
fn central_keygen_signed_by_a_kga_without_cm_kga_eku_is_key_package_invalid() {
    if !common::available_or_skip("central_keygen_kga_without_eku") {
        return;
    }
    let ca = ca();
    let key = PKey::ec_gen("prime256v1").unwrap();
    let not_kga = Issuer {
        cert: issue(&ca, "not a KGA", &key, Some("clientAuth")),
        key,
    };
    let (_, cert, sd) = generated(&ca, &not_kga);
    let config = ClientConfig {
        trust: Some(TrustStore::new(std::slice::from_ref(&ca.cert)).unwrap()),
        ..mac_config()
    };
    let (tx, cert_conf) = run_keygen(config, &cert, envelop_with_password(SECRET, &sd));
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyPackageInvalid, "{e}");
    assert!(e.detail.contains("cmKGA"), "{e}");
    assert!(cert_conf_rejected(&cert_conf));
}

/// RFC 9480 §2.2: a KGA is a CA or carries id-kp-cmKGA. The CA that issued the certificate
/// may sign the key package itself; another CA (here: a second root) may not.
#[test]
fn central_keygen_signed_by_the_issuing_ca_needs_no_cm_kga_eku() {
    if !common::available_or_skip("central_keygen_signed_by_the_ca") {
        return;
    }
    let ca = ca();
    let (_, cert, sd) = generated(&ca, &ca);
    let config = ClientConfig {
        trust: Some(TrustStore::new(std::slice::from_ref(&ca.cert)).unwrap()),
        ..mac_config()
    };
    let (tx, cert_conf) = run_keygen(config, &cert, envelop_with_password(SECRET, &sd));
    tx.result().unwrap();
    assert!(!cert_conf_rejected(&cert_conf));
    assert_eq!(
        tx.response().key_generation_authority,
        Some(ca.cert.to_der().unwrap())
    );

    let other_ca = ca_named("another CA");
    let (key, cert, _) = generated(&ca, &ca);
    let sd = signed_by_kga(
        &other_ca,
        &key_package(&key.private_key_to_pkcs8().unwrap()),
    );
    let config = ClientConfig {
        trust: Some(TrustStore::new(&[ca.cert.clone(), other_ca.cert.clone()]).unwrap()),
        ..mac_config()
    };
    let (tx, _) = run_keygen(config, &cert, envelop_with_password(SECRET, &sd));
    let e = tx.result().unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyPackageInvalid, "{e}");
    assert!(e.detail.contains("not the CA that issued"), "{e}");
}

// ---------------------------------------------------------------- krr / ccr

fn enroll_request(key: &Arc<SoftwareKey>) -> EnrollRequest {
    EnrollRequest {
        subject: Some(parse_name("/CN=recovering").unwrap()),
        sans: Vec::new(),
        key: key.clone(),
    }
}

#[test]
fn krr_gets_new_sig_cert_ca_certs_and_the_recovered_key() {
    if !common::available_or_skip("krr_gets_the_recovered_key") {
        return;
    }
    let ca = ca();
    let kga = kga(&ca);
    let (old_key, old_cert, sd) = generated(&ca, &kga);
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let new_sig_cert = issue(
        &ca,
        "recovering",
        &PKey::public_key_from_der(cmpkit::crypto::Signer::public_key_der(&*key)).unwrap(),
        None,
    );
    let mut tx =
        Transaction::start(Arc::new(mac_config()), Operation::Krr(enroll_request(&key))).unwrap();
    assert_eq!(tx.operation_name(), "krr");
    assert_eq!(sent_body(&tx).name(), "krr");
    let krp = KeyRecRepContent {
        status: accepted(),
        new_sig_cert: Some(cmp_cert(&new_sig_cert)),
        ca_certs: Some(vec![cmp_cert(&ca.cert)]),
        key_pair_hist: Some(vec![CertifiedKeyPair {
            cert_or_enc_cert: CertOrEncCert::Certificate(cmp_cert(&old_cert)),
            private_key: Some(envelop_with_password(SECRET, &sd)),
            publication_info: None,
        }]),
    };
    let rsp = reply_to(tx.pending_request().unwrap(), PkiBody::Krp(Box::new(krp)));
    tx.handle_response(&rsp).unwrap();
    assert!(tx.is_done(), "no certConf after krp");
    tx.result().unwrap();
    let r = tx.response();
    assert_eq!(
        r.certificate.as_deref(),
        Some(&new_sig_cert.to_der().unwrap()[..])
    );
    assert_eq!(r.ca_pubs, [ca.cert.to_der().unwrap()]);
    assert_eq!(r.recovered_keys.len(), 1);
    assert_eq!(r.recovered_keys[0].certificate, old_cert.to_der().unwrap());
    assert_eq!(
        r.recovered_keys[0].private_key_pkcs8.as_deref(),
        Some(&old_key.private_key_to_pkcs8().unwrap()[..])
    );
}

#[test]
fn krp_rejection_is_rejected() {
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let mut tx =
        Transaction::start(Arc::new(mac_config()), Operation::Krr(enroll_request(&key))).unwrap();
    let krp = KeyRecRepContent {
        status: PkiStatusInfo {
            status: 2,
            status_string: Some(vec!["no archived keys".into()]),
            fail_info: None,
        },
        new_sig_cert: None,
        ca_certs: None,
        key_pair_hist: None,
    };
    let rsp = reply_to(tx.pending_request().unwrap(), PkiBody::Krp(Box::new(krp)));
    let e = tx.handle_response(&rsp).unwrap_err();
    assert_eq!(e.code, ErrorCode::Rejected, "{e}");
    assert!(e.detail.contains("no archived keys"), "{e}");
}

#[test]
fn ccr_is_answered_by_ccp_then_cert_conf() {
    let ca = ca();
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let public = PKey::public_key_from_der(cmpkit::crypto::Signer::public_key_der(&*key)).unwrap();
    let cross = issue(&ca, "other CA", &public, None);
    let mut tx =
        Transaction::start(Arc::new(mac_config()), Operation::Ccr(enroll_request(&key))).unwrap();
    assert_eq!(sent_body(&tx).name(), "ccr");
    // An ip does not answer a ccr.
    let mut tx2 =
        Transaction::start(Arc::new(mac_config()), Operation::Ccr(enroll_request(&key))).unwrap();
    let wrong2 = reply_to(
        tx2.pending_request().unwrap(),
        PkiBody::Ip(cert_rep(&cross, None)),
    );
    assert_eq!(
        tx2.handle_response(&wrong2).unwrap_err().code,
        ErrorCode::UnexpectedBody
    );
    let ccp = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::Ccp(cert_rep(&cross, None)),
    );
    tx.handle_response(&ccp).unwrap();
    assert!(!cert_conf_rejected(&sent_body(&tx)));
    let conf = reply_to(
        tx.pending_request().unwrap(),
        PkiBody::PkiConf(der::asn1::Null),
    );
    tx.handle_response(&conf).unwrap();
    tx.result().unwrap();
    assert_eq!(
        tx.response().certificate.as_deref(),
        Some(&cross.to_der().unwrap()[..])
    );
}
