//! Our client's genm questions (RFC 9483 §4.3) answered by our server's demo CA: CA
//! certificates, certificate request template, CRL update, root CA update, key pair types.

use cmpkit::asn1::genm::{CrlSource, CrlStatus};
use cmpkit::client::{execute, genm, ClientConfig, Credentials, Operation, Response, Transaction};
use cmpkit::crypto::TrustStore;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{MemoryStore, Server, ServerConfig};
use der::Decode;
use std::sync::Arc;

const SECRET: &[u8] = b"genm-secret";
const REF: &[u8] = b"genm-ref";

/// Ask `questions` of a fresh demo CA over an in-process transfer; return the answer.
fn ask(questions: Vec<cmpkit::asn1::InfoTypeAndValue>) -> (Arc<DemoCa>, Response) {
    let ca = Arc::new(DemoCa::generate().unwrap());
    let config = ServerConfig {
        signer: Some(ca.signer().unwrap()),
        secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
        trust: Some(TrustStore::new(&[ca.cert().clone()]).unwrap()),
        ..ServerConfig::default()
    };
    let server = Server::new(config, ca.clone(), Arc::new(MemoryStore::new())).unwrap();
    let client = ClientConfig {
        credentials: Some(Credentials::mac(
            SECRET,
            REF,
            MacParams::Pbm(PbmConfig::default()),
        )),
        ..ClientConfig::default()
    };
    let mut tx = Transaction::start(Arc::new(client), Operation::Genm(questions)).unwrap();
    let mut transfer = |req: &[u8]| Ok(server.process(req));
    execute(&mut tx, &mut transfer).unwrap();
    (ca, tx.response().clone())
}

#[test]
fn ca_certs_are_the_demo_cas_chain() {
    let (ca, r) = ask(vec![genm::ca_certs_request()]);
    let certs = r.ca_certs().unwrap().expect("caCerts value");
    assert_eq!(certs[0], ca.cert().to_der().unwrap());
}

#[test]
fn cert_req_template_asks_for_an_ec_p256_key() {
    let (_, r) = ask(vec![genm::cert_req_template_request()]);
    let t = r
        .cert_req_template()
        .unwrap()
        .expect("certReqTemplate value");
    let spec = t.key_spec.expect("keySpec");
    assert_eq!(
        spec[0].oid.to_string(),
        "1.3.6.1.5.5.7.5.1.11",
        "id-regCtrl-algId"
    );
    let alg =
        spki::AlgorithmIdentifierOwned::from_der(&der::Encode::to_der(&spec[0].value).unwrap())
            .unwrap();
    assert_eq!(alg.oid.to_string(), "1.2.840.10045.2.1", "id-ecPublicKey");
}

#[test]
fn crl_update_returns_the_current_crl_signed_by_the_ca() {
    let (ca, r) = ask(vec![genm::crl_update_request(&vec![CrlStatus {
        source: CrlSource::Issuer(vec![
            x509_cert::ext::pkix::name::GeneralName::DirectoryName(Default::default()),
        ]),
        this_update: None,
    }])
    .unwrap()]);
    let crls = r.crls().unwrap().expect("crls value");
    assert_eq!(crls.len(), 1);
    let crl = openssl::x509::X509Crl::from_der(&crls[0]).unwrap();
    assert!(
        crl.verify(&ca.cert().public_key().unwrap()).unwrap(),
        "signed by the CA"
    );
}

#[test]
fn root_ca_update_without_a_new_root_says_no_update() {
    let (ca, r) = ask(vec![genm::root_ca_key_update_request(Some(
        ca_root_placeholder(),
    ))
    .unwrap()]);
    assert_eq!(
        r.root_ca_key_update(ca.cert()).unwrap(),
        None,
        "no value: no update available"
    );
    assert!(r
        .genp
        .iter()
        .any(|i| i.oid == cmpkit::asn1::oid::IT_ROOT_CA_KEY_UPDATE && i.value.is_none()));
}

/// Any certificate serves as the "old root" the client names; the demo CA has no successor.
fn ca_root_placeholder() -> &'static openssl::x509::X509 {
    static ROOT: std::sync::OnceLock<openssl::x509::X509> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| DemoCa::generate().unwrap().cert().clone())
}

#[test]
fn key_pair_types_include_ecdsa_and_ed25519() {
    let (_, r) = ask(vec![genm::sign_key_pair_types_request()]);
    let types: Vec<String> = r
        .sign_key_pair_types()
        .unwrap()
        .unwrap()
        .iter()
        .map(|a| a.oid.to_string())
        .collect();
    assert!(
        types.contains(&"1.2.840.10045.4.3.2".to_string()),
        "{types:?}"
    );
    assert!(types.contains(&"1.3.101.112".to_string()), "{types:?}");
}

#[test]
fn the_log_names_each_message_and_the_failed_check() {
    use cmpkit::log::{LogLevel, Logger};
    use std::sync::Mutex;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let logger = Logger::new(LogLevel::Debug, move |level, line| {
        sink.lock()
            .unwrap()
            .push(format!("{}: {line}", level.name()))
    });
    let ca = Arc::new(DemoCa::generate().unwrap());
    let config = ServerConfig {
        secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
        ..ServerConfig::default()
    };
    let server = Server::new(config, ca, Arc::new(MemoryStore::new())).unwrap();
    for secret in [SECRET, b"wrong".as_slice()] {
        let client = ClientConfig {
            credentials: Some(Credentials::mac(
                secret,
                REF,
                MacParams::Pbm(PbmConfig::default()),
            )),
            log: Some(logger.clone()),
            ..ClientConfig::default()
        };
        let mut tx = Transaction::start(
            Arc::new(client),
            Operation::Genm(vec![genm::ca_certs_request()]),
        )
        .unwrap();
        let mut transfer = |req: &[u8]| Ok(server.process(req));
        let _ = execute(&mut tx, &mut transfer);
    }
    let lines = lines.lock().unwrap();
    assert!(
        lines[0].starts_with("debug: genm: sending genm ("),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("info: genm: received genp ("),
        "{lines:?}"
    );
    assert_eq!(lines[2], "info: genm: finished: done", "{lines:?}");
    // Wrong secret: the server cannot authenticate us and (having no signing key) answers
    // with an unprotected error, which is never taken as success; the log shows what it said.
    assert!(
        lines[4].starts_with("info: genm: received error ("),
        "{lines:?}"
    );
    assert!(
        lines[5].starts_with("error: genm: failed: protection-missing (300)"),
        "{lines:?}"
    );
    assert!(
        lines[5].contains("failInfo: badMessageCheck") && lines[5].contains("MAC protection check"),
        "{lines:?}"
    );
}
