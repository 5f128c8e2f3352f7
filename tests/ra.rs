//! RA mode (`cmpkit::server::ra`): our client → RA → our CA server with the demo CA, all
//! in-process through `Transfer` closures (and once over HTTP). The EE uses a MAC with a
//! secret only the RA knows; the RA signs upstream with a certificate the CA issued to it.

use cmpkit::asn1::{CmpName, PkiBody, PkiHeader, PkiMessage};
use cmpkit::client::{
    execute, execute_with_sleep, ClientConfig, Credentials, EnrollRequest, Transaction,
};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::{self, fail_info as fi, parse_name, PeerStatus, PkiStatus};
use cmpkit::protection::{self, MacParams, PbmConfig, Protection};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::ra::{ForwardMode, PolicyDecision, Ra, RaConfig, RaPolicy, Upstream};
use cmpkit::server::{
    CaHandler, CertRequestInfo, Decision, MemoryStore, Rejection, Requester, RevocationRequest,
    Server, ServerConfig,
};
use cmpkit::transport::{HttpServer, HttpTransfer, ServerOptions};
use cmpkit::{ErrorCode, Result};
use der::{Decode, Encode};
use openssl::x509::X509;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

const EE_SECRET: &str = "ee-secret-only-the-ra-knows";
const EE_REF: &str = "ee-4711";
const RA_BOOT_SECRET: &str = "ra-bootstrap-secret";
const RA_BOOT_REF: &str = "ra-bootstrap";

/// The demo CA, recording who asked and answering `waiting` a number of times first.
struct Recorder {
    ca: Arc<DemoCa>,
    requesters: Mutex<Vec<Requester>>,
    wait: AtomicU32,
}

impl CaHandler for Recorder {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        self.requesters.lock().unwrap().push(req.requester.clone());
        if self
            .wait
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
    fn revoke(&self, req: &RevocationRequest) -> std::result::Result<(), Rejection> {
        self.ca.revoke(req)
    }
    fn general_message(
        &self,
        itavs: &[cmpkit::asn1::InfoTypeAndValue],
        requester: &Requester,
    ) -> Vec<cmpkit::asn1::InfoTypeAndValue> {
        self.ca.general_message(itavs, requester)
    }
}

/// The CA side: server, CA, recorder, and the RA's key and certificate (issued by the CA).
struct Pki {
    ca: Arc<DemoCa>,
    recorder: Arc<Recorder>,
    server: Arc<Server>,
    ra_key: Arc<SoftwareKey>,
    ra_cert: X509,
    /// The bodies of the messages the CA received.
    seen: Arc<Mutex<Vec<&'static str>>>,
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
        sans: Vec::new(),
        key: key.clone(),
    }
}

fn new_key() -> Arc<SoftwareKey> {
    Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap())
}

/// A CA server trusting the RA; the RA's certificate is enrolled from the CA itself with a
/// bootstrap secret.
fn pki(wait: u32) -> Pki {
    let ca = Arc::new(DemoCa::generate().unwrap());
    let recorder = Arc::new(Recorder {
        ca: ca.clone(),
        requesters: Mutex::new(Vec::new()),
        wait: AtomicU32::new(0),
    });
    let boot = Server::new(
        ServerConfig {
            signer: Some(ca.signer().unwrap()),
            secrets: Some(Arc::new(|kid: &[u8]| {
                (kid == RA_BOOT_REF.as_bytes()).then(|| RA_BOOT_SECRET.as_bytes().to_vec())
            })),
            ..ServerConfig::default()
        },
        ca.clone(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    let ra_key = new_key();
    let mut tx = Transaction::start_ir(
        Arc::new(mac_client(RA_BOOT_SECRET, RA_BOOT_REF)),
        request(&ra_key, "cmpkit test RA"),
    )
    .unwrap();
    execute(&mut tx, &mut |r: &[u8]| Ok(boot.process(r))).unwrap();
    let ra_cert = X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap();
    let server = Arc::new(
        Server::new(
            ServerConfig {
                signer: Some(ca.signer().unwrap()),
                trust: Some(TrustStore::new(&[ca.cert().clone()]).unwrap()),
                trusted_ras: vec![ra_cert.clone()],
                accept_ra_verified: true,
                grant_implicit_confirm: true,
                check_after: 1,
                ..ServerConfig::default()
            },
            recorder.clone(),
            Arc::new(MemoryStore::new()),
        )
        .unwrap(),
    );
    recorder.wait.store(wait, Ordering::SeqCst);
    Pki {
        ca,
        recorder,
        server,
        ra_key,
        ra_cert,
        seen: Arc::new(Mutex::new(Vec::new())),
    }
}

/// The RA in front of `p`'s CA; `tamper` may change each CA answer on its way back.
fn ra_with(
    p: &Pki,
    mode: ForwardMode,
    policy: Arc<dyn RaPolicy>,
    tamper: fn(&mut Vec<u8>),
) -> Arc<Ra> {
    ra_full(p, mode, policy, tamper, |_| {})
}

/// [`ra_with`], `downstream` tweaking the RA's configuration towards the EEs.
fn ra_full(
    p: &Pki,
    mode: ForwardMode,
    policy: Arc<dyn RaPolicy>,
    tamper: fn(&mut Vec<u8>),
    downstream: impl FnOnce(&mut ServerConfig),
) -> Arc<Ra> {
    let server = p.server.clone();
    let seen = p.seen.clone();
    let transfer = move |req: &[u8]| -> Result<Vec<u8>> {
        seen.lock()
            .unwrap()
            .push(PkiMessage::from_der(req).unwrap().body.name());
        let mut rsp = server.process(req);
        tamper(&mut rsp);
        Ok(rsp)
    };
    let mut down = ServerConfig {
        secrets: Some(Arc::new(|kid: &[u8]| {
            (kid == EE_REF.as_bytes()).then(|| EE_SECRET.as_bytes().to_vec())
        })),
        ..ServerConfig::default()
    };
    downstream(&mut down);
    Arc::new(
        Ra::new(
            RaConfig {
                downstream: down,
                upstream: Upstream {
                    credentials: Credentials::signature(
                        p.ra_key.clone(),
                        p.ra_cert.clone(),
                        Vec::new(),
                    ),
                    trust: Some(TrustStore::new(&[p.ca.cert().clone()]).unwrap()),
                    untrusted: Vec::new(),
                    mode,
                    max_message_size: message::DEFAULT_MAX_MESSAGE_SIZE,
                },
            },
            policy,
            Box::new(transfer),
        )
        .unwrap(),
    )
}

fn ra(p: &Pki, mode: ForwardMode) -> Arc<Ra> {
    ra_with(p, mode, Arc::new(cmpkit::server::ra::ApproveAll), |_| {})
}

/// Enroll through the RA; returns the transaction and its result.
fn enroll(ra: &Arc<Ra>, config: ClientConfig, cn: &str) -> (Transaction, cmpkit::Result<()>) {
    let mut tx = Transaction::start_ir(Arc::new(config), request(&new_key(), cn)).unwrap();
    let ra = ra.clone();
    let mut transfer = move |req: &[u8]| Ok(ra.process(req));
    let r = execute_with_sleep(&mut tx, &mut transfer, &mut |_| {});
    (tx, r)
}

fn ra_requester(p: &Pki) -> Requester {
    Requester::Signature {
        cert_der: p.ra_cert.to_der().unwrap(),
    }
}

fn subject_cn(cert_der: &[u8]) -> String {
    let c = X509::from_der(cert_der).unwrap();
    let e = c
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap();
    e.data().to_string().unwrap()
}

fn status(tx: &Transaction) -> PeerStatus {
    tx.response().status.clone().expect("a status")
}

#[test]
fn reprotected_ir_and_cert_conf_end_to_end() {
    let p = pki(0);
    let ra = ra(&p, ForwardMode::Reprotect);
    let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-a");
    r.unwrap();
    let cert = tx.response().certificate.clone().unwrap();
    assert_eq!(subject_cn(&cert), "ee-a");
    assert_eq!(status(&tx).status, PkiStatus::Accepted as u8);
    assert_eq!(*p.seen.lock().unwrap(), ["ir", "certConf"]);
    assert_eq!(*p.recorder.requesters.lock().unwrap(), [ra_requester(&p)]);
    let issued = p.ca.issued();
    let ours: Vec<_> = issued.iter().filter(|c| c.der == cert).collect();
    assert!(ours.len() == 1 && ours[0].confirmed, "{issued:?}");
}

#[test]
fn nested_ir_and_cert_conf_end_to_end() {
    let p = pki(0);
    let ra = ra(&p, ForwardMode::Nested);
    let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-b");
    r.unwrap();
    let cert = tx.response().certificate.clone().unwrap();
    assert_eq!(subject_cn(&cert), "ee-b");
    assert_eq!(*p.seen.lock().unwrap(), ["nested", "nested"]);
    // The CA cannot check the EE's MAC: the RA's signature vouches, the RA is the requester.
    assert_eq!(*p.recorder.requesters.lock().unwrap(), [ra_requester(&p)]);
    assert!(p.ca.issued().iter().any(|c| c.der == cert && c.confirmed));
}

#[test]
fn policy_modifies_the_subject_and_the_ee_sees_granted_with_mods() {
    for mode in [ForwardMode::Reprotect, ForwardMode::Nested] {
        let p = pki(0);
        let policy = |req: &CertRequestInfo| {
            let mut t = req.template.clone().unwrap();
            t.subject = Some(parse_name("/CN=renamed-by-ra/O=Example").unwrap());
            PolicyDecision::Modify(Box::new(t))
        };
        let ra = ra_with(&p, mode, Arc::new(policy), |_| {});
        let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-c");
        r.unwrap();
        let cert = tx.response().certificate.clone().unwrap();
        assert_eq!(subject_cn(&cert), "renamed-by-ra");
        assert_eq!(status(&tx).status, PkiStatus::GrantedWithMods as u8);
        // A modified request is always re-protected (with raVerified); certConf is forwarded
        // in the configured mode.
        let certconf = if mode == ForwardMode::Nested {
            "nested"
        } else {
            "certConf"
        };
        assert_eq!(*p.seen.lock().unwrap(), ["ir", certconf]);
        assert!(p.ca.issued().iter().any(|c| c.der == cert && c.confirmed));
    }
}

#[test]
fn policy_rejection_reaches_the_ee_and_nothing_reaches_the_ca() {
    let p = pki(0);
    let policy = |_: &CertRequestInfo| {
        PolicyDecision::Reject(Rejection::new(
            fi::NOT_AUTHORIZED,
            "device not registered at this RA",
        ))
    };
    let ra = ra_with(&p, ForwardMode::Reprotect, Arc::new(policy), |_| {});
    let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-d");
    assert_eq!(r.unwrap_err().code, ErrorCode::Rejected);
    let s = status(&tx);
    assert_eq!(s.status, PkiStatus::Rejection as u8);
    assert_eq!(s.fail_info, 1 << fi::NOT_AUTHORIZED);
    assert_eq!(s.texts, ["device not registered at this RA"]);
    assert!(tx.response().certificate.is_none());
    assert!(p.seen.lock().unwrap().is_empty());
    // Only the RA's own certificate was ever issued.
    assert_eq!(p.ca.issued().len(), 1);
    assert!(p.recorder.requesters.lock().unwrap().is_empty());
}

#[test]
fn polling_through_the_ra() {
    for mode in [ForwardMode::Reprotect, ForwardMode::Nested] {
        let p = pki(2);
        let ra = ra(&p, mode);
        let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-e");
        r.unwrap();
        assert!(tx.response().certificate.is_some());
        assert_eq!(tx.response().poll_rounds, 1);
        let seen = p.seen.lock().unwrap().clone();
        if mode == ForwardMode::Reprotect {
            assert_eq!(seen, ["ir", "pollReq", "pollReq", "certConf"]);
        } else {
            assert_eq!(seen, ["nested"; 4]);
        }
        assert_eq!(p.recorder.requesters.lock().unwrap().len(), 3);
    }
}

#[test]
fn implicit_confirm_through_the_ra() {
    for mode in [ForwardMode::Reprotect, ForwardMode::Nested] {
        let p = pki(0);
        let ra = ra(&p, mode);
        let config = ClientConfig {
            implicit_confirm: true,
            ..mac_client(EE_SECRET, EE_REF)
        };
        let (tx, r) = enroll(&ra, config, "ee-f");
        r.unwrap();
        assert!(tx.response().implicit_confirm_granted);
        let cert = tx.response().certificate.clone().unwrap();
        assert_eq!(p.seen.lock().unwrap().len(), 1);
        assert!(p.ca.issued().iter().any(|c| c.der == cert && c.confirmed));
    }
}

#[test]
fn bad_upstream_signature_gives_the_ee_a_system_failure_and_no_certificate() {
    for mode in [ForwardMode::Reprotect, ForwardMode::Nested] {
        let p = pki(0);
        // The CA's answer with one bit of its signature value flipped.
        let ra = ra_with(
            &p,
            mode,
            Arc::new(cmpkit::server::ra::ApproveAll),
            tamper_protection,
        );
        let (tx, r) = enroll(&ra, mac_client(EE_SECRET, EE_REF), "ee-g");
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::PeerError, "{e}");
        let s = status(&tx);
        assert_eq!(s.fail_info, 1 << fi::SYSTEM_FAILURE, "{s}");
        assert!(s.texts[0].starts_with("upstream response check"), "{s}");
        assert!(tx.response().certificate.is_none());
    }
}

/// Flip a bit in the protection BIT STRING of a DER PKIMessage.
fn tamper_protection(rsp: &mut Vec<u8>) {
    let mut m = PkiMessage::from_der(rsp).unwrap();
    let mut bits = m.protection.take().unwrap().raw_bytes().to_vec();
    bits[4] ^= 1;
    m.protection = Some(der::asn1::BitString::from_bytes(&bits).unwrap());
    *rsp = m.to_der().unwrap();
}

#[test]
fn ca_refuses_nested_from_untrusted_signers_and_deeper_nesting() {
    let p = pki(0);
    // An EE's ir, MAC-protected with a secret the CA does not know.
    let tx = Transaction::start_ir(
        Arc::new(mac_client(EE_SECRET, EE_REF)),
        request(&new_key(), "ee-h"),
    )
    .unwrap();
    let ir = tx.pending_request().unwrap().to_vec();
    let nest = |inner: &[u8], key: Arc<SoftwareKey>, cert: &X509| -> Vec<u8> {
        let i = PkiMessage::from_der(inner).unwrap();
        let c = x509_cert::Certificate::from_der(&cert.to_der().unwrap()).unwrap();
        let mut m = PkiMessage {
            header: PkiHeader {
                pvno: 2,
                sender: CmpName::try_from(c.tbs_certificate().subject()).unwrap(),
                recipient: CmpName::null_dn(),
                message_time: Some(message::now().unwrap()),
                protection_alg: None,
                sender_kid: None,
                recip_kid: None,
                transaction_id: i.header.transaction_id.clone(),
                sender_nonce: i.header.sender_nonce.clone(),
                recip_nonce: None,
                free_text: None,
                general_info: None,
            },
            body: PkiBody::Nested(vec![der::Any::from_der(inner).unwrap()]),
            protection: None,
            extra_certs: Some(vec![cmpkit::asn1::CmpCertificate::try_from(&c).unwrap()]),
        };
        protection::protect(&mut m, &Protection::Signature(key)).unwrap();
        m.to_der().unwrap()
    };
    let error = |rsp: &[u8]| -> PeerStatus {
        match PkiMessage::from_der(rsp).unwrap().body {
            PkiBody::Error(e) => PeerStatus::from_status_info(&e.pki_status_info),
            other => panic!("expected an error, got {}", other.name()),
        }
    };
    // Signed by a certificate of the CA that is not a trusted RA.
    let other_key = new_key();
    let boot_like = {
        let mut tx = Transaction::start_ir(
            Arc::new(ClientConfig {
                credentials: Some(Credentials::signature(
                    p.ra_key.clone(),
                    p.ra_cert.clone(),
                    Vec::new(),
                )),
                trust: Some(TrustStore::new(&[p.ca.cert().clone()]).unwrap()),
                ..ClientConfig::default()
            }),
            request(&other_key, "not an RA"),
        )
        .unwrap();
        execute(&mut tx, &mut |r: &[u8]| Ok(p.server.process(r))).unwrap();
        X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap()
    };
    let s = error(&p.server.process(&nest(&ir, other_key, &boot_like)));
    assert_eq!(s.fail_info, 1 << fi::NOT_AUTHORIZED, "{s}");
    // Nested twice by the trusted RA.
    let once = nest(&ir, p.ra_key.clone(), &p.ra_cert);
    let twice = nest(&once, p.ra_key.clone(), &p.ra_cert);
    let s = error(&p.server.process(&twice));
    assert_eq!(s.fail_info, 1 << fi::BAD_REQUEST, "{s}");
    assert!(s.texts[0].contains("one level"), "{s}");
    // Once is fine: the CA answers with the plain ip (RFC 9483 §5.2.2.1).
    let rsp = PkiMessage::from_der(&p.server.process(&once)).unwrap();
    assert_eq!(rsp.body.name(), "ip");
}

#[test]
fn ra_over_http() {
    let p = pki(0);
    let ra = ra(&p, ForwardMode::Nested);
    let handler_ra = ra.clone();
    let http = HttpServer::bind(
        "127.0.0.1:0",
        Arc::new(move |req: &[u8]| handler_ra.process(req)),
        ServerOptions::default(),
    )
    .unwrap();
    let url = format!("http://{}/pkix/", http.local_addr());
    let t = HttpTransfer::new(&url).unwrap();
    let mut tx = Transaction::start_ir(
        Arc::new(mac_client(EE_SECRET, EE_REF)),
        request(&new_key(), "ee-http"),
    )
    .unwrap();
    execute(&mut tx, &mut |r: &[u8]| t.post(r)).unwrap();
    assert_eq!(
        subject_cn(tx.response().certificate.as_ref().unwrap()),
        "ee-http"
    );
    http.shutdown().unwrap();
}

#[test]
fn signing_ee_gets_answers_signed_by_the_ra() {
    let p = pki(0);
    // The EE's certificate, issued by the CA (requested by the RA).
    let ee_key = new_key();
    let ee_cert = {
        let mut tx = Transaction::start_ir(
            Arc::new(ClientConfig {
                credentials: Some(Credentials::signature(
                    p.ra_key.clone(),
                    p.ra_cert.clone(),
                    Vec::new(),
                )),
                trust: Some(TrustStore::new(&[p.ca.cert().clone()]).unwrap()),
                ..ClientConfig::default()
            }),
            request(&ee_key, "ee-sig"),
        )
        .unwrap();
        execute(&mut tx, &mut |r: &[u8]| Ok(p.server.process(r))).unwrap();
        X509::from_der(tx.response().certificate.as_ref().unwrap()).unwrap()
    };
    let (ra_key, ra_cert, ca_cert) = (p.ra_key.clone(), p.ra_cert.clone(), p.ca.cert().clone());
    let ra = ra_full(
        &p,
        ForwardMode::Reprotect,
        Arc::new(cmpkit::server::ra::ApproveAll),
        |_| {},
        move |c| {
            c.signer = Some(cmpkit::server::ServerSigner {
                key: ra_key,
                cert: ra_cert,
                chain: Vec::new(),
            });
            c.trust = Some(TrustStore::new(&[ca_cert]).unwrap());
        },
    );
    let config = ClientConfig {
        credentials: Some(Credentials::signature(ee_key, ee_cert, Vec::new())),
        trust: Some(TrustStore::new(&[p.ca.cert().clone()]).unwrap()),
        ..ClientConfig::default()
    };
    let (tx, r) = enroll(&ra, config, "ee-sig-new");
    r.unwrap();
    assert_eq!(
        subject_cn(tx.response().certificate.as_ref().unwrap()),
        "ee-sig-new"
    );
    assert_eq!(
        tx.response().extra_certs[0],
        p.ra_cert.to_der().unwrap(),
        "the answer is signed by the RA"
    );
    assert_eq!(*p.seen.lock().unwrap(), ["ir", "certConf"]);
}
