//! The server (`cmpkit::server`) with the demo CA against our client and against requests
//! crafted with our types: enrollment with MAC and signature protection, certConf and
//! implicitConfirm, polling, rr, genm, and every check with its failInfo — and that a
//! failed request leaves no trace in the transaction store or the CA.

use cmpkit::asn1::{
    CertStatus, CertTemplate, CmpName, InfoTypeAndValue, PkiBody, PkiHeader, PkiMessage,
    PollReqEntry, RevDetails,
};
use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::{self, fail_info as fi, parse_name, PeerStatus};
use cmpkit::protection::{self, MacLimits, MacParams, MacProtection, PbmConfig, Protection};
use cmpkit::server::demo_ca::{DemoCa, IT_CA_CERTS};
use cmpkit::server::{
    CaHandler, CertRequestInfo, Decision, MemoryStore, RecordState, Rejection, Requester,
    RevocationRequest, Server, ServerConfig, TransactionRecord, TransactionStore,
};
use cmpkit::{Error, ErrorCode};
use der::asn1::{BitString, Int, OctetString};
use der::{Decode, Encode};
use openssl::x509::X509;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "server-test-secret";
const REF: &str = "ref-4711";

struct Env {
    ca: Arc<DemoCa>,
    store: Arc<MemoryStore>,
    server: Arc<Server>,
}

fn env() -> Env {
    env_with(|_, _| None, |_| {})
}

/// A server with a fresh demo CA (which also signs the responses), the secret `SECRET` for
/// `REF`, the CA as trust anchor; `handler` may wrap the CA, `tweak` the configuration.
fn env_with(
    handler: impl FnOnce(&Arc<DemoCa>, ()) -> Option<Arc<dyn CaHandler>>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Env {
    let ca = Arc::new(DemoCa::generate().unwrap());
    let store = Arc::new(MemoryStore::new());
    let mut config = ServerConfig {
        signer: Some(ca.signer().unwrap()),
        secrets: Some(Arc::new(|kid: &[u8]| {
            (kid == REF.as_bytes()).then(|| SECRET.as_bytes().to_vec())
        })),
        trust: Some(TrustStore::new(&[ca.cert().clone()]).unwrap()),
        check_after: 7,
        ..ServerConfig::default()
    };
    tweak(&mut config);
    let h = handler(&ca, ()).unwrap_or_else(|| ca.clone());
    let server = Arc::new(Server::new(config, h, store.clone()).unwrap());
    Env { ca, store, server }
}

fn mac_client(secret: &str, reference: &str) -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::mac(
            secret.as_bytes(),
            reference.as_bytes(),
            MacParams::Pbm(PbmConfig::default()),
        )),
        ..ClientConfig::default()
    }
}

fn request(key: &Arc<SoftwareKey>, cn: &str) -> EnrollRequest {
    EnrollRequest {
        subject: Some(parse_name(&format!("/CN={cn}")).unwrap()),
        sans: vec![x509_cert::ext::pkix::name::GeneralName::DnsName(
            der::asn1::Ia5String::new("device.example").unwrap(),
        )],
        key: key.clone(),
    }
}

fn new_key() -> Arc<SoftwareKey> {
    Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap())
}

/// Run a whole client transaction against the server in-process; returns it and the number
/// of messages exchanged.
fn enroll(e: &Env, config: ClientConfig, cn: &str) -> (Transaction, usize, Result<(), Error>) {
    let mut tx = Transaction::start_ir(Arc::new(config), request(&new_key(), cn)).unwrap();
    let mut n = 0;
    let server = e.server.clone();
    let mut transfer = |req: &[u8]| {
        n += 1;
        Ok(server.process(req))
    };
    let r = execute(&mut tx, &mut transfer);
    (tx, n, r)
}

fn parse(rsp: &[u8]) -> PkiMessage {
    PkiMessage::from_der(rsp).expect("the server always answers with a DER PKIMessage")
}

/// The status of an error message.
fn error_status(m: &PkiMessage) -> PeerStatus {
    match &m.body {
        PkiBody::Error(e) => PeerStatus::from_status_info(&e.pki_status_info),
        other => panic!("expected an error message, got {}", other.name()),
    }
}

/// Asserts `rsp` is an error with exactly failInfo `bit`; returns the message.
fn expect_error(rsp: &[u8], bit: u32) -> PkiMessage {
    let m = parse(rsp);
    let s = error_status(&m);
    assert_eq!(
        s.fail_info,
        1 << bit,
        "expected failInfo {}, got {s}",
        message::FAIL_INFO_NAMES[bit as usize]
    );
    assert!(!s.texts.is_empty() && s.texts[0].contains("check"), "{s}");
    m
}

/// Signed by the demo CA (its certificate first in extraCerts).
fn assert_signed_by_ca(m: &PkiMessage, ca: &DemoCa) {
    assert!(m.protection.is_some(), "response is unprotected");
    assert_eq!(
        m.extra_certs.as_ref().unwrap()[0].to_der().unwrap(),
        ca.cert().to_der().unwrap()
    );
    protection::verify_signature(m, &ca.cert().public_key().unwrap()).unwrap();
}

fn assert_mac_protected(m: &PkiMessage, secret: &str) {
    protection::verify_mac(m, secret.as_bytes(), &MacLimits::default(), None).unwrap();
}

fn assert_no_trace(e: &Env) {
    assert!(e.store.is_empty(), "store holds {:?}", e.store.ids());
    assert!(e.ca.issued().is_empty(), "CA issued {:?}", e.ca.issued());
}

/// Re-protect a MAC-protected message with `secret` and its own parameters.
fn remac(m: &mut PkiMessage, secret: &str) {
    let alg = m.header.protection_alg.clone().unwrap();
    let p = Protection::Mac(MacProtection::new(
        secret.as_bytes().to_vec(),
        MacParams::Explicit(alg),
    ));
    protection::protect(m, &p).unwrap();
}

/// A new MAC-protected message with `body` in transaction `tid`.
fn mac_message(body: PkiBody, tid: &[u8], recip_nonce: Option<&[u8]>) -> Vec<u8> {
    let mut m = PkiMessage {
        header: PkiHeader {
            pvno: 2,
            sender: CmpName::null_dn(),
            recipient: CmpName::null_dn(),
            message_time: Some(message::now().unwrap()),
            protection_alg: None,
            sender_kid: Some(OctetString::new(REF.as_bytes()).unwrap()),
            recip_kid: None,
            transaction_id: Some(OctetString::new(tid).unwrap()),
            sender_nonce: Some(OctetString::new(message::random_bytes(16).unwrap()).unwrap()),
            recip_nonce: recip_nonce.map(|n| OctetString::new(n).unwrap()),
            free_text: None,
            general_info: None,
        },
        body,
        protection: None,
        extra_certs: None,
    };
    let p = Protection::Mac(MacProtection::new(
        SECRET.as_bytes().to_vec(),
        MacParams::Pbm(PbmConfig::default()),
    ));
    protection::protect(&mut m, &p).unwrap();
    m.to_der().unwrap()
}

fn sender_nonce(m: &PkiMessage) -> Vec<u8> {
    m.header.sender_nonce.as_ref().unwrap().as_bytes().to_vec()
}

fn record(e: &Env, tid: &[u8]) -> TransactionRecord {
    TransactionRecord::from_bytes(&e.store.get(tid).unwrap().unwrap()).unwrap()
}

/// The ir of a fresh client transaction (MAC-protected), and the transaction.
fn client_ir(e: &Env) -> (Transaction, Vec<u8>) {
    let _ = e;
    let tx = Transaction::start_ir(
        Arc::new(mac_client(SECRET, REF)),
        request(&new_key(), "Dev"),
    )
    .unwrap();
    let ir = tx.pending_request().unwrap().to_vec();
    (tx, ir)
}

#[test]
fn server_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Server>();
    check::<MemoryStore>();
    check::<DemoCa>();
}

#[test]
fn ir_with_mac_and_cert_conf() {
    let e = env();
    let (tx, n, r) = enroll(&e, mac_client(SECRET, REF), "Device 1");
    r.unwrap();
    assert_eq!(n, 2, "ir/ip and certConf/pkiConf");
    let cert = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();
    assert!(cert.verify(&e.ca.cert().public_key().unwrap()).unwrap());
    let san = cert.subject_alt_names().unwrap();
    assert_eq!(san.get(0).unwrap().dnsname(), Some("device.example"));
    assert_eq!(tx.response().ca_pubs.len(), 1, "ir gets the root in caPubs");
    let issued = e.ca.issued();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].confirmed);
    // Only the finished transaction's ID is remembered (against reuse).
    let tid = &tx.response().transaction_id;
    assert_eq!(record(&e, tid).state(), RecordState::Finished);
    assert!(record(&e, tid).cert.is_empty());
}

#[test]
fn ir_with_implicit_confirm_granted_by_policy() {
    let e = env_with(|_, _| None, |c| c.grant_implicit_confirm = true);
    let mut config = mac_client(SECRET, REF);
    config.implicit_confirm = true;
    let (tx, n, r) = enroll(&e, config, "Device 2");
    r.unwrap();
    assert_eq!(n, 1, "no certConf round trip");
    assert!(tx.response().implicit_confirm_granted);
    assert!(e.ca.issued()[0].confirmed);

    // Not granted by policy: the client confirms explicitly.
    let e = env();
    let mut config = mac_client(SECRET, REF);
    config.implicit_confirm = true;
    let (tx, n, r) = enroll(&e, config, "Device 3");
    r.unwrap();
    assert_eq!(n, 2);
    assert!(!tx.response().implicit_confirm_granted);
}

#[test]
fn ir_signed_with_a_client_certificate_the_server_validates() {
    let e = env();
    // Get a certificate for a key first (MAC), then enroll another key signing with it.
    let key = new_key();
    let mut tx =
        Transaction::start_ir(Arc::new(mac_client(SECRET, REF)), request(&key, "Signer")).unwrap();
    let s = e.server.clone();
    execute(&mut tx, &mut |r: &[u8]| Ok(s.process(r))).unwrap();
    let cert_der = tx.response().certificate.clone().unwrap();
    let cert = X509::from_der(&cert_der).unwrap();
    let config = ClientConfig {
        credentials: Some(Credentials::signature(key.clone(), cert, vec![])),
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let (tx, n, r) = enroll(&e, config, "Device 4");
    r.unwrap();
    assert_eq!(n, 2);
    assert!(tx.response().certificate.is_some());
    assert_eq!(e.ca.issued().len(), 2);
    // The transaction was recorded as the signer's (by the SHA-256 of its certificate).
    assert_eq!(
        record(&e, &tx.response().transaction_id).requester,
        Requester::Signature { cert_der }.identity()
    );

    // A certificate from another CA is not trusted: signerNotTrusted, signed by the server.
    let other = DemoCa::generate().unwrap().signer().unwrap();
    let config = ClientConfig {
        credentials: Some(Credentials::signature(other.key, other.cert, vec![])),
        ..ClientConfig::default()
    };
    let tx = Transaction::start_ir(Arc::new(config), request(&new_key(), "Intruder")).unwrap();
    let rsp = e.server.process(tx.pending_request().unwrap());
    let m = expect_error(&rsp, fi::SIGNER_NOT_TRUSTED);
    assert_signed_by_ca(&m, &e.ca);
    assert_eq!(e.ca.issued().len(), 2);
    assert_eq!(e.store.len(), 2);
}

/// Answers "waiting" `n` times, then lets the demo CA decide.
struct Delayed {
    ca: Arc<DemoCa>,
    waits: AtomicU32,
    asked: AtomicU32,
    polls_seen: std::sync::Mutex<Vec<u32>>,
}

impl CaHandler for Delayed {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.polls_seen.lock().unwrap().push(req.polls);
        if self
            .waits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| w.checked_sub(1))
            .is_ok()
        {
            return Decision::Waiting;
        }
        self.ca.certificate_request(req)
    }
    fn cert_confirm(&self, tid: &[u8], cert: &[u8], accepted: bool) {
        self.ca.cert_confirm(tid, cert, accepted)
    }
    fn revoke(&self, req: &RevocationRequest) -> Result<(), Rejection> {
        self.ca.revoke(req)
    }
    fn general_message(&self, i: &[InfoTypeAndValue], r: &Requester) -> Vec<InfoTypeAndValue> {
        self.ca.general_message(i, r)
    }
}

fn poll_req(tid: &[u8], recip_nonce: &[u8], id: i64) -> Vec<u8> {
    mac_message(
        PkiBody::PollReq(vec![PollReqEntry {
            cert_req_id: Int::try_from(id).unwrap(),
        }]),
        tid,
        Some(recip_nonce),
    )
}

#[test]
fn waiting_twice_then_issued_through_polling() {
    let delayed: Arc<std::sync::OnceLock<Arc<Delayed>>> = Default::default();
    let d2 = delayed.clone();
    let e = env_with(
        move |ca, _| {
            let d = Arc::new(Delayed {
                ca: ca.clone(),
                waits: AtomicU32::new(2),
                asked: AtomicU32::new(0),
                polls_seen: Default::default(),
            });
            let _ = d2.set(d.clone());
            Some(d as Arc<dyn CaHandler>)
        },
        |_| {},
    );
    let (_tx, ir) = client_ir(&e);
    let tid = parse(&ir)
        .header
        .transaction_id
        .unwrap()
        .as_bytes()
        .to_vec();

    // ir -> ip "waiting"
    let ip = parse(&e.server.process(&ir));
    assert_mac_protected(&ip, SECRET);
    let PkiBody::Ip(rep) = &ip.body else {
        panic!("{}", ip.body.name())
    };
    assert_eq!(rep.response[0].status.status, 3, "waiting");
    assert!(rep.response[0].certified_key_pair.is_none());
    assert_eq!(record(&e, &tid).state(), RecordState::Waiting);

    // pollReq -> pollRep with checkAfter (the handler still waits)
    let rsp = parse(&e.server.process(&poll_req(&tid, &sender_nonce(&ip), 0)));
    assert_mac_protected(&rsp, SECRET);
    let PkiBody::PollRep(p) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    assert_eq!(p[0].check_after, 7);

    // A pollReq with a stale recipNonce is refused (and ends the transaction) — check it on
    // a copy of the store state later; first finish normally.
    // pollReq -> ip with the certificate
    let rsp = parse(&e.server.process(&poll_req(&tid, &sender_nonce(&rsp), 0)));
    let PkiBody::Ip(rep) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    assert_eq!(rep.response[0].status.status, 0);
    let Some(cmpkit::asn1::CertOrEncCert::Certificate(cert)) = rep.response[0]
        .certified_key_pair
        .as_ref()
        .map(|k| &k.cert_or_enc_cert)
    else {
        panic!("no certificate")
    };
    let d = delayed.get().unwrap();
    assert_eq!(d.asked.load(Ordering::SeqCst), 3);
    assert_eq!(*d.polls_seen.lock().unwrap(), [0, 1, 2]);
    assert_eq!(record(&e, &tid).state(), RecordState::AwaitingConfirm);

    // certConf -> pkiConf
    let hash = openssl::sha::sha256(&cert.to_der().unwrap());
    let conf = mac_message(
        PkiBody::CertConf(vec![CertStatus {
            cert_hash: OctetString::new(hash.to_vec()).unwrap(),
            cert_req_id: Int::try_from(0i64).unwrap(),
            status_info: None,
            hash_alg: None,
        }]),
        &tid,
        Some(&sender_nonce(&rsp)),
    );
    let rsp = parse(&e.server.process(&conf));
    assert!(
        matches!(rsp.body, PkiBody::PkiConf(_)),
        "{}",
        rsp.body.name()
    );
    assert!(e.ca.issued()[0].confirmed);
    assert_eq!(record(&e, &tid).state(), RecordState::Finished);
}

#[test]
fn poll_req_with_wrong_recip_nonce_is_bad_recipient_nonce_and_ends_the_transaction() {
    let e = env_with(
        |ca, _| {
            Some(Arc::new(Delayed {
                ca: ca.clone(),
                waits: AtomicU32::new(5),
                asked: AtomicU32::new(0),
                polls_seen: Default::default(),
            }) as Arc<dyn CaHandler>)
        },
        |_| {},
    );
    let (_tx, ir) = client_ir(&e);
    let tid = parse(&ir)
        .header
        .transaction_id
        .unwrap()
        .as_bytes()
        .to_vec();
    let _ip = parse(&e.server.process(&ir));
    let rsp = e.server.process(&poll_req(&tid, &[9; 16], 0));
    let m = expect_error(&rsp, fi::BAD_RECIPIENT_NONCE);
    assert_mac_protected(&m, SECRET);
    assert_no_trace(&e);
}

/// Enroll with MAC; returns the certificate.
fn enrolled_cert(e: &Env) -> X509 {
    let (tx, _, r) = enroll(e, mac_client(SECRET, REF), "Revokee");
    r.unwrap();
    X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap()
}

fn rr_message(cert: &X509, tid: &[u8]) -> Vec<u8> {
    let c = x509_cert::Certificate::from_der(&cert.to_der().unwrap()).unwrap();
    let tbs = c.tbs_certificate();
    let details = RevDetails {
        cert_details: CertTemplate {
            version: None,
            serial_number: Some(tbs.serial_number().clone()),
            signature: None,
            issuer: Some(tbs.issuer().clone()),
            validity: None,
            subject: None,
            subject_public_key_info: None,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        // CRLReason keyCompromise (1)
        crl_entry_details: Some(vec![x509_cert::ext::Extension {
            extn_id: const_oid::db::rfc5280::ID_CE_CRL_REASONS,
            critical: false,
            extn_value: OctetString::new(vec![0x0a, 0x01, 0x01]).unwrap(),
        }]),
    };
    mac_message(PkiBody::Rr(vec![details]), tid, None)
}

#[test]
fn rr_revokes_and_the_crl_lists_it() {
    let e = env();
    let cert = enrolled_cert(&e);
    let rsp = parse(&e.server.process(&rr_message(&cert, b"rr-transaction-1")));
    assert_mac_protected(&rsp, SECRET);
    let PkiBody::Rp(rp) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    assert_eq!(rp.status[0].status, 0, "accepted");
    let revs = e.ca.revocations();
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].reason, Some(1));
    let crl = openssl::x509::X509Crl::from_der(&e.ca.crl().unwrap()).unwrap();
    assert!(crl.verify(&e.ca.cert().public_key().unwrap()).unwrap());
    assert!(matches!(
        crl.get_by_cert(&cert),
        openssl::x509::CrlStatus::Revoked(_)
    ));

    // Again: rejected with certRevoked, and the rejected rr leaves no record.
    let before = e.store.len();
    let rsp = parse(&e.server.process(&rr_message(&cert, b"rr-transaction-2")));
    let PkiBody::Rp(rp) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    let s = PeerStatus::from_status_info(&rp.status[0]);
    assert_eq!((s.status, s.fail_info), (2, 1 << fi::CERT_REVOKED), "{s}");
    assert_eq!(e.store.len(), before);
}

#[test]
fn genm_ca_certs_returns_the_chain() {
    let e = env();
    let genm = mac_message(
        PkiBody::Genm(vec![InfoTypeAndValue {
            oid: IT_CA_CERTS,
            value: None,
        }]),
        b"genm-transaction",
        None,
    );
    let rsp = parse(&e.server.process(&genm));
    assert_mac_protected(&rsp, SECRET);
    let PkiBody::Genp(itavs) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    assert_eq!(itavs[0].oid, IT_CA_CERTS);
    let certs = Vec::<x509_cert::Certificate>::from_der(
        &itavs[0].value.as_ref().unwrap().to_der().unwrap(),
    )
    .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), e.ca.cert().to_der().unwrap());
}

/// The server keeps derived MAC keys across requests; a request under another senderKID
/// that reuses a protectionAlg seen before is checked with that senderKID's own secret,
/// never with the key cached for the first.
#[test]
fn a_cached_mac_key_does_not_authenticate_another_sender_kid() {
    const OTHER_REF: &str = "ref-0815";
    const OTHER_SECRET: &str = "another-secret";
    let e = env_with(
        |_, _| None,
        |c| {
            c.secrets = Some(Arc::new(|kid: &[u8]| match kid {
                k if k == REF.as_bytes() => Some(SECRET.as_bytes().to_vec()),
                k if k == OTHER_REF.as_bytes() => Some(OTHER_SECRET.as_bytes().to_vec()),
                _ => None,
            }))
        },
    );
    let ca_certs = || {
        PkiBody::Genm(vec![InfoTypeAndValue {
            oid: IT_CA_CERTS,
            value: None,
        }])
    };
    let first = mac_message(ca_certs(), b"genm-first", None);
    let rsp = parse(&e.server.process(&first));
    assert!(matches!(rsp.body, PkiBody::Genp(_)), "{}", rsp.body.name());
    // The same protectionAlg (salt included) under the other senderKID.
    let under_other_kid = |tid: &[u8], secret: &str| {
        let mut m = parse(&first);
        m.header.transaction_id = Some(OctetString::new(tid).unwrap());
        m.header.sender_kid = Some(OctetString::new(OTHER_REF.as_bytes()).unwrap());
        remac(&mut m, secret);
        m.to_der().unwrap()
    };
    let m = expect_error(
        &e.server.process(&under_other_kid(b"genm-second", SECRET)),
        fi::BAD_MESSAGE_CHECK,
    );
    assert!(error_status(&m).texts[0].contains("MAC protection check"));
    let rsp = parse(
        &e.server
            .process(&under_other_kid(b"genm-third", OTHER_SECRET)),
    );
    assert!(matches!(rsp.body, PkiBody::Genp(_)), "{}", rsp.body.name());
    assert_mac_protected(&rsp, OTHER_SECRET);
}

#[test]
fn garbage_and_truncated_der_are_bad_data_format() {
    let e = env();
    let m = expect_error(&e.server.process(b"hello, CA"), fi::BAD_DATA_FORMAT);
    assert_signed_by_ca(&m, &e.ca);
    let m = expect_error(&e.server.process(&[]), fi::BAD_DATA_FORMAT);
    assert!(m.protection.is_some());
    let (_tx, ir) = client_ir(&e);
    expect_error(&e.server.process(&ir[..ir.len() - 3]), fi::BAD_DATA_FORMAT);
    assert_no_trace(&e);

    // Without a signing key nothing can protect the answer: unprotected.
    let e = env_with(|_, _| None, |c| c.signer = None);
    let m = expect_error(&e.server.process(&[0x30, 0x80, 0xff]), fi::BAD_DATA_FORMAT);
    assert!(m.protection.is_none() && m.header.protection_alg.is_none());
    // Oversized
    let big = vec![0x30; message::DEFAULT_MAX_MESSAGE_SIZE + 1];
    expect_error(&e.server.process(&big), fi::BAD_DATA_FORMAT);
}

#[test]
fn wrong_mac_secret_is_bad_message_check() {
    let e = env();
    let mut config = mac_client("not-the-secret", REF);
    config.trust = Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap());
    let (tx, n, r) = enroll(&e, config, "Device");
    assert_eq!(n, 1);
    // The client verified the server's signature and reports its verdict.
    assert_eq!(r.unwrap_err().code, ErrorCode::PeerError);
    let s = tx.response().status.clone().unwrap();
    assert_eq!(s.fail_info, 1 << fi::BAD_MESSAGE_CHECK, "{s}");
    assert!(s.texts[0].contains("MAC protection check"), "{s}");
    assert_no_trace(&e);
}

#[test]
fn unknown_sender_kid_is_signer_not_trusted() {
    let e = env();
    let tx = Transaction::start_ir(
        Arc::new(mac_client(SECRET, "who-am-i")),
        request(&new_key(), "Dev"),
    )
    .unwrap();
    let m = expect_error(
        &e.server.process(tx.pending_request().unwrap()),
        fi::SIGNER_NOT_TRUSTED,
    );
    assert_signed_by_ca(&m, &e.ca);
    assert_no_trace(&e);
}

#[test]
fn flipped_pop_signature_is_bad_pop_in_a_mac_protected_error() {
    let e = env();
    let (_tx, ir) = client_ir(&e);
    let mut m = parse(&ir);
    let PkiBody::Ir(msgs) = &mut m.body else {
        unreachable!()
    };
    let Some(crmf::pop::ProofOfPossession::Signature(sk)) = &mut msgs[0].popo else {
        unreachable!()
    };
    let mut sig = sk.signature.raw_bytes().to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    sk.signature = BitString::from_bytes(&sig).unwrap();
    remac(&mut m, SECRET);
    let rsp = expect_error(&e.server.process(&m.to_der().unwrap()), fi::BAD_POP);
    assert_mac_protected(&rsp, SECRET);
    assert_eq!(rsp.header.recip_nonce, m.header.sender_nonce);
    assert_eq!(rsp.header.transaction_id, m.header.transaction_id);
    assert_no_trace(&e);
}

#[test]
fn replayed_transaction_id_of_a_finished_transaction_is_transaction_id_in_use() {
    let e = env();
    let (tx, ir) = client_ir(&e);
    let mut tx = tx;
    let s = e.server.clone();
    execute(&mut tx, &mut |r: &[u8]| Ok(s.process(r))).unwrap();
    let (issued, records) = (e.ca.issued().len(), e.store.len());
    let m = expect_error(&e.server.process(&ir), fi::TRANSACTION_ID_IN_USE);
    assert_mac_protected(&m, SECRET);
    assert_eq!((e.ca.issued().len(), e.store.len()), (issued, records));
}

#[test]
fn pvno_1_is_unsupported_version() {
    let e = env();
    let (_tx, ir) = client_ir(&e);
    let mut m = parse(&ir);
    m.header.pvno = 1;
    remac(&mut m, SECRET);
    let rsp = expect_error(
        &e.server.process(&m.to_der().unwrap()),
        fi::UNSUPPORTED_VERSION,
    );
    assert_eq!(rsp.header.pvno, 2);
    assert_no_trace(&e);
}

#[test]
fn cert_conf_with_wrong_cert_hash_is_bad_cert_id_and_discards_the_certificate() {
    let e = env();
    let (mut tx, ir) = client_ir(&e);
    let ip = e.server.process(&ir);
    tx.handle_response(&ip).unwrap();
    assert_eq!(e.ca.issued().len(), 1);
    let mut conf = parse(tx.pending_request().unwrap());
    let PkiBody::CertConf(st) = &mut conf.body else {
        unreachable!()
    };
    st[0].cert_hash = OctetString::new(vec![0u8; 32]).unwrap();
    remac(&mut conf, SECRET);
    let rsp = expect_error(&e.server.process(&conf.to_der().unwrap()), fi::BAD_CERT_ID);
    assert_mac_protected(&rsp, SECRET);
    assert_no_trace(&e);
}

#[test]
fn hostile_pbm_iteration_count_is_refused_before_computing() {
    let e = env();
    let (_tx, ir) = client_ir(&e);
    let mut m = parse(&ir);
    let alg = m.header.protection_alg.as_mut().unwrap();
    let mut p =
        cmpkit::asn1::PbmParameter::from_der(&alg.parameters.as_ref().unwrap().to_der().unwrap())
            .unwrap();
    p.iteration_count = Int::try_from(1_000_000_000i64).unwrap();
    alg.parameters = Some(der::asn1::Any::from_der(&p.to_der().unwrap()).unwrap());
    let t = Instant::now();
    let rsp = e.server.process(&m.to_der().unwrap());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let m = expect_error(&rsp, fi::BAD_ALG);
    assert!(
        error_status(&m).texts[0].contains("iteration count"),
        "{}",
        error_status(&m)
    );
    assert_signed_by_ca(&m, &e.ca);
    assert_no_trace(&e);
}

#[test]
fn client_error_message_ends_the_transaction_with_pki_conf() {
    let e = env();
    let (mut tx, ir) = client_ir(&e);
    let ip = e.server.process(&ir);
    tx.handle_response(&ip).unwrap();
    let ipm = parse(&ip);
    let tid = ipm
        .header
        .transaction_id
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec();
    let err = mac_message(
        PkiBody::Error(cmpkit::asn1::ErrorMsgContent {
            pki_status_info: cmpkit::asn1::PkiStatusInfo {
                status: 2,
                status_string: Some(vec!["changed my mind".into()]),
                fail_info: None,
            },
            error_code: None,
            error_details: None,
        }),
        &tid,
        Some(&sender_nonce(&ipm)),
    );
    let rsp = parse(&e.server.process(&err));
    assert!(
        matches!(rsp.body, PkiBody::PkiConf(_)),
        "{}",
        rsp.body.name()
    );
    assert_no_trace(&e);
}

#[test]
fn cert_conf_from_another_requester_is_not_authorized_and_changes_nothing() {
    let e = env_with(
        |_, _| None,
        |c| {
            c.secrets = Some(Arc::new(|kid: &[u8]| match kid {
                b"ref-4711" => Some(SECRET.as_bytes().to_vec()),
                b"other" => Some(b"other-secret".to_vec()),
                _ => None,
            }))
        },
    );
    let (mut tx, ir) = client_ir(&e);
    tx.handle_response(&e.server.process(&ir)).unwrap();
    let mut conf = parse(tx.pending_request().unwrap());
    conf.header.sender_kid = Some(OctetString::new(b"other".to_vec()).unwrap());
    remac(&mut conf, "other-secret");
    expect_error(
        &e.server.process(&conf.to_der().unwrap()),
        fi::NOT_AUTHORIZED,
    );
    // The real client can still finish.
    let s = e.server.clone();
    execute(&mut tx, &mut |r: &[u8]| Ok(s.process(r))).unwrap();
    assert!(e.ca.issued()[0].confirmed);
}

#[test]
fn concurrent_enrollments_from_several_threads() {
    let e = Arc::new(env());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let (_, _, r) = enroll(&e, mac_client(SECRET, REF), &format!("T{i}"));
                r.unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.ca.issued().iter().filter(|c| c.confirmed).count(), 4);
}

#[test]
fn rejected_request_leaves_no_trace() {
    let e = env();
    // The demo CA refuses a request without subject.
    let key = new_key();
    let req = EnrollRequest {
        subject: None,
        sans: Vec::new(),
        key,
    };
    let mut tx = Transaction::start_ir(Arc::new(mac_client(SECRET, REF)), req).unwrap();
    let s = e.server.clone();
    let r = execute(&mut tx, &mut |r: &[u8]| Ok(s.process(r)));
    assert_eq!(r.unwrap_err().code, ErrorCode::Rejected);
    let st = tx.response().status.clone().unwrap();
    assert_eq!(st.fail_info, 1 << fi::BAD_CERT_TEMPLATE, "{st}");
    assert_no_trace(&e);
}

#[test]
fn message_time_outside_the_window_is_bad_time() {
    let e = env_with(
        |_, _| None,
        |c| c.max_clock_skew = Some(Duration::from_secs(60)),
    );
    let (_tx, ir) = client_ir(&e);
    let mut m = parse(&ir);
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    m.header.message_time = Some(der::asn1::GeneralizedTime::from_system_time(old).unwrap());
    remac(&mut m, SECRET);
    let rsp = expect_error(&e.server.process(&m.to_der().unwrap()), fi::BAD_TIME);
    assert_mac_protected(&rsp, SECRET);
    assert_no_trace(&e);
    // In the window: served.
    let rsp = parse(&e.server.process(&ir));
    assert!(matches!(rsp.body, PkiBody::Ip(_)), "{}", rsp.body.name());
}

/// The client's ir turned into another CRMF body (cr, kur), re-protected.
fn as_body(ir: &[u8], make: fn(cmpkit::asn1::CertReqMessages) -> PkiBody) -> PkiMessage {
    let mut m = parse(ir);
    let PkiBody::Ir(msgs) = m.body else {
        unreachable!()
    };
    m.body = make(msgs);
    remac(&mut m, SECRET);
    m
}

fn cert_conf_for(rsp: &PkiMessage, cert_der: &[u8], id: i64) -> Vec<u8> {
    let tid = rsp
        .header
        .transaction_id
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec();
    mac_message(
        PkiBody::CertConf(vec![CertStatus {
            cert_hash: OctetString::new(openssl::sha::sha256(cert_der).to_vec()).unwrap(),
            cert_req_id: Int::try_from(id).unwrap(),
            status_info: None,
            hash_alg: None,
        }]),
        &tid,
        Some(&sender_nonce(rsp)),
    )
}

fn issued_cert(rep: &cmpkit::asn1::CertRepMessage) -> Vec<u8> {
    match rep.response[0]
        .certified_key_pair
        .as_ref()
        .map(|k| &k.cert_or_enc_cert)
    {
        Some(cmpkit::asn1::CertOrEncCert::Certificate(c)) => c.to_der().unwrap(),
        _ => panic!("no certificate: {:?}", rep.response[0].status),
    }
}

#[test]
fn cr_and_kur_get_cp_and_kup() {
    let e = env();
    for (make, expect) in [
        (PkiBody::Cr as fn(_) -> _, "cp"),
        (PkiBody::Kur as fn(_) -> _, "kup"),
    ] {
        let (_tx, ir) = client_ir(&e);
        let req = as_body(&ir, make);
        let rsp = parse(&e.server.process(&req.to_der().unwrap()));
        assert_eq!(rsp.body.name(), expect);
        let (PkiBody::Cp(rep) | PkiBody::Kup(rep)) = &rsp.body else {
            unreachable!()
        };
        assert!(rep.ca_pubs.is_none(), "caPubs only for ir");
        let cert = issued_cert(rep);
        let conf = parse(&e.server.process(&cert_conf_for(&rsp, &cert, 0)));
        assert!(
            matches!(conf.body, PkiBody::PkiConf(_)),
            "{}",
            conf.body.name()
        );
    }
    assert_eq!(e.ca.issued().iter().filter(|c| c.confirmed).count(), 2);
}

#[test]
fn p10cr_gets_cp_with_cert_req_id_minus_one_and_a_tampered_csr_is_bad_pop() {
    use openssl::x509::{X509NameBuilder, X509ReqBuilder};
    let e = env();
    let key = openssl::pkey::PKey::ec_gen("prime256v1").unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "p10 device").unwrap();
    let mut b = X509ReqBuilder::new().unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let csr_der = b.build().to_der().unwrap();
    let csr = x509_cert::request::CertReq::from_der(&csr_der).unwrap();

    let req = mac_message(
        PkiBody::P10cr(Box::new(csr.clone())),
        b"p10-transaction",
        None,
    );
    let rsp = parse(&e.server.process(&req));
    let PkiBody::Cp(rep) = &rsp.body else {
        panic!("{}", rsp.body.name())
    };
    assert_eq!(rep.response[0].cert_req_id, Int::try_from(-1i64).unwrap());
    let cert = issued_cert(rep);
    let conf = parse(&e.server.process(&cert_conf_for(&rsp, &cert, -1)));
    assert!(
        matches!(conf.body, PkiBody::PkiConf(_)),
        "{}",
        conf.body.name()
    );
    let x = X509::from_der(&cert).unwrap();
    assert!(x.public_key().unwrap().public_eq(&key));

    let e = env();
    let mut bad = csr;
    let mut sig = bad.signature.raw_bytes().to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    bad.signature = BitString::from_bytes(&sig).unwrap();
    let req = mac_message(PkiBody::P10cr(Box::new(bad)), b"p10-transaction", None);
    expect_error(&e.server.process(&req), fi::BAD_POP);
    assert_no_trace(&e);
}

#[test]
fn the_log_names_each_refused_request_with_its_failed_check_and_each_answered_one() {
    use cmpkit::log::{LogLevel, Logger};
    let lines = Arc::new(std::sync::Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = lines.clone();
    let e = env_with(
        |_, _| None,
        |c| {
            c.log = Some(Logger::new(LogLevel::Debug, move |l, s| {
                sink.lock().unwrap().push((l, s.to_owned()))
            }))
        },
    );
    // Refused; the error is signed (the request is not authenticated), and this client has no
    // trust anchors to check it: what matters here is the server's log.
    let (_, _, r) = enroll(&e, mac_client("not the secret", REF), "log test");
    assert!(r.is_err());
    let (_, _, r) = enroll(&e, mac_client(SECRET, REF), "log test");
    r.unwrap();

    let lines = lines.lock().unwrap();
    let at = |level: LogLevel| -> Vec<&str> {
        lines
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    let refused = at(LogLevel::Error);
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert!(
        refused[0].starts_with("refused ir (transactionID "),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].contains("MAC protection check"),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].ends_with("[failInfo badMessageCheck]"),
        "{}",
        refused[0]
    );
    let answered = at(LogLevel::Info);
    assert_eq!(answered.len(), 2, "{lines:?}");
    assert!(answered[0].starts_with("answered ir from senderKID \"ref-4711\" (transactionID "));
    assert!(answered[1].starts_with("answered certConf from senderKID \"ref-4711\""));
    let received = at(LogLevel::Debug);
    assert_eq!(received.len(), 3, "{lines:?}");
    assert!(
        received.iter().all(|s| s.starts_with("received ")),
        "{received:?}"
    );
}

/// Run `op` under `config` against the server; returns the transaction, the last response
/// and the result.
fn run_op(
    e: &Env,
    config: ClientConfig,
    op: cmpkit::client::Operation,
) -> (Transaction, Vec<u8>, Result<(), Error>) {
    let mut tx = Transaction::start(Arc::new(config), op).unwrap();
    let mut last = Vec::new();
    let server = e.server.clone();
    let r = execute(&mut tx, &mut |req: &[u8]| {
        last = server.process(req);
        Ok(last.clone())
    });
    (tx, last, r)
}

/// A certificate and its key, enrolled with the shared secret.
fn issued(e: &Env, cn: &str) -> (X509, Arc<SoftwareKey>) {
    let key = new_key();
    let op = cmpkit::client::Operation::Ir(request(&key, cn));
    let (tx, _, r) = run_op(e, mac_client(SECRET, REF), op);
    r.unwrap();
    let cert = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();
    (cert, key)
}

fn kur(old_cert: X509, old_key: Option<Arc<SoftwareKey>>) -> cmpkit::client::Operation {
    cmpkit::client::Operation::kur(
        EnrollRequest {
            subject: None,
            sans: Vec::new(),
            key: new_key(),
        },
        &old_cert,
        old_key.map(|k| k as Arc<dyn cmpkit::crypto::Signer>),
    )
    .unwrap()
}

#[test]
fn kur_signed_with_the_old_certificate_gets_a_new_certificate_for_the_same_subject() {
    let e = env();
    let (old, old_key) = issued(&e, "Device K1");
    let config = ClientConfig {
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let (tx, _, r) = run_op(&e, config, kur(old.clone(), Some(old_key)));
    r.unwrap();
    let new = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();
    assert_eq!(
        new.subject_name().to_der().unwrap(),
        old.subject_name().to_der().unwrap()
    );
    assert_ne!(
        new.serial_number().to_bn().unwrap(),
        old.serial_number().to_bn().unwrap()
    );
}

#[test]
fn kur_whose_old_cert_id_names_another_certificate_than_its_signer_is_refused_with_bad_cert_id() {
    let e = env();
    let (signer, signer_key) = issued(&e, "Device K2");
    let (other, _) = issued(&e, "Device K3");
    // Signed with the credentials of `signer`, but oldCertID names `other`.
    let config = ClientConfig {
        credentials: Some(Credentials::signature(signer_key, signer, Vec::new())),
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let (_, last, r) = run_op(&e, config, kur(other, None));
    assert!(r.is_err());
    let m = expect_error(&last, fi::BAD_CERT_ID);
    let text = &error_status(&m).texts[0];
    assert!(text.contains("oldCertID names serial"), "{text}");
    assert_eq!(e.ca.issued().len(), 2, "nothing issued for the refused kur");
}

#[test]
fn kur_of_a_revoked_certificate_is_rejected_by_the_demo_ca_with_cert_revoked() {
    let e = env();
    let (old, old_key) = issued(&e, "Device K4");
    let rr = cmpkit::client::Operation::rr(&old, Some(1), None).unwrap();
    let (_, _, r) = run_op(&e, mac_client(SECRET, REF), rr);
    r.unwrap();
    let config = ClientConfig {
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let (tx, _, r) = run_op(&e, config, kur(old, Some(old_key)));
    assert_eq!(r.unwrap_err().code, ErrorCode::Rejected);
    let status = tx.response().status.clone().unwrap();
    assert_eq!(status.fail_info, 1 << fi::CERT_REVOKED, "{status}");
    assert!(status.texts[0].contains("is revoked"), "{status}");
}

// ------------------------------------------------------------ central key generation (KGA)

fn keygen_op(kind: Option<KeyType>, cn: &str) -> cmpkit::client::KeygenRequest {
    cmpkit::client::KeygenRequest {
        subject: Some(parse_name(&format!("CN={cn}")).unwrap()),
        sans: Vec::new(),
        algorithm: kind.map(|k| cmpkit::client::KeygenRequest::algorithm_for(k).unwrap()),
    }
}

/// A client signing with `cert`/`key`, decrypting delivered keys with the same key, trusting
/// the demo CA.
fn signing_client(e: &Env, cert: &X509, key: &Arc<SoftwareKey>) -> ClientConfig {
    ClientConfig {
        credentials: Some(Credentials::signature(
            key.clone(),
            cert.clone(),
            Vec::new(),
        )),
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        decryptor: Some(Arc::new(
            cmpkit::crypto::SoftwareDecryptor::new(key.pkey().clone(), cert.clone()).unwrap(),
        )),
        ..ClientConfig::default()
    }
}

/// The server as KGA: the key comes enveloped for the requester (key agreement for an EC
/// requester, key transport for an RSA one), signed by the CA (no cmKGA needed: RFC 9480
/// §2.2), and it is the key of the certificate; the CA issued exactly that certificate.
#[test]
fn server_generates_the_key_and_delivers_it_to_ec_and_rsa_requesters() {
    kga_round_trip(false);
}

/// The same with the bare OneAsymmetricKey as signed content (what OpenSSL 3.5's client
/// reads): cmpkit's client accepts it too.
#[test]
fn server_generated_key_as_bare_one_asymmetric_key_is_accepted_too() {
    kga_round_trip(true);
}

fn kga_round_trip(bare: bool) {
    let e = env_with(
        |_, _| None,
        |c| {
            c.central_keygen = true;
            c.central_keygen_bare_key = bare;
        },
    );
    for (requester_kind, wanted) in [
        (KeyType::EcP256, Some(KeyType::EcP384)),
        (KeyType::Rsa(2048), None),
    ] {
        // An enrolled requester with a key of `requester_kind`.
        let key = Arc::new(SoftwareKey::generate(requester_kind).unwrap());
        let (tx, _, r) = run_op(
            &e,
            mac_client(SECRET, REF),
            cmpkit::client::Operation::Ir(request(&key, "KGA requester")),
        );
        r.unwrap();
        let cert = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();

        let op = cmpkit::client::Operation::CrCentralKeygen(keygen_op(wanted, "generated"));
        let (tx, _, r) = run_op(&e, signing_client(&e, &cert, &key), op);
        r.unwrap_or_else(|err| panic!("{requester_kind:?}: {err}"));
        let rsp = tx.response();
        let new_cert = X509::from_der(rsp.certificate.as_ref().unwrap()).unwrap();
        let pkcs8 = rsp.private_key_pkcs8.as_ref().expect("a delivered key");
        let private = openssl::pkey::PKey::private_key_from_pkcs8(pkcs8.as_slice()).unwrap();
        assert!(private.public_eq(&new_cert.public_key().unwrap()));
        let expected_bits = if wanted == Some(KeyType::EcP384) {
            384
        } else {
            256
        };
        assert_eq!(private.bits(), expected_bits, "{requester_kind:?}");
        assert_eq!(
            rsp.key_generation_authority,
            Some(e.ca.cert().to_der().unwrap()),
            "signed by the CA"
        );
        assert!(e
            .ca
            .issued()
            .iter()
            .any(|c| c.der == new_cert.to_der().unwrap() && c.confirmed));
    }
}

#[test]
fn central_keygen_is_refused_when_off() {
    // Off (the default): badCertTemplate, and nothing issued.
    let e = env();
    let op = cmpkit::client::Operation::IrCentralKeygen(keygen_op(None, "refused"));
    let (_, last, r) = run_op(&e, mac_client(SECRET, REF), op);
    assert!(r.is_err());
    let m = expect_error(&last, fi::BAD_CERT_TEMPLATE);
    assert!(error_status(&m).texts[0].contains("does not generate keys"));
    assert!(e.ca.issued().is_empty());
}

/// A MAC-authenticated requester (RFC 9483 §4.1.6.3) gets the key with a password recipient
/// info keyed by the shared secret.
#[test]
fn server_generated_key_reaches_a_mac_requester_through_its_shared_secret() {
    let e = env_with(|_, _| None, |c| c.central_keygen = true);
    let op = cmpkit::client::Operation::IrCentralKeygen(keygen_op(None, "mac keygen"));
    let config = ClientConfig {
        trust: Some(TrustStore::new(&[e.ca.cert().clone()]).unwrap()),
        ..mac_client(SECRET, REF)
    };
    let (tx, _, r) = run_op(&e, config, op);
    r.unwrap();
    let rsp = tx.response();
    let new_cert = X509::from_der(rsp.certificate.as_ref().unwrap()).unwrap();
    let pkcs8 = rsp.private_key_pkcs8.as_ref().expect("a delivered key");
    let private = openssl::pkey::PKey::private_key_from_pkcs8(pkcs8.as_slice()).unwrap();
    assert!(private.public_eq(&new_cert.public_key().unwrap()));
}
