//! Threads: one `Server` (demo CA, `MemoryStore`) shared by several client threads, each with
//! its own `ClientConfig` and transactions, doing ir (MAC) + certConf, cr (signature, with
//! the ir's certificate) + certConf and rr (signed with the key of the certificate to
//! revoke) in a loop — in-process, over our `HttpServer` (2 workers, 4 client threads), and
//! through the C API (one `cmpkit_ctx` per thread, a transfer callback into the shared
//! server). Every result is checked against the CA's books: each certificate issued exactly
//! once, confirmed, each revocation recorded once.
//!
//! Also the test run under ThreadSanitizer (README, "Testing"); bounded so it stays quick
//! there too (`CMPKIT_THREADS_ROUNDS=N` for more rounds per thread).

use cmpkit::asn1::CmpCertificate;
use cmpkit::client::{
    execute, ClientConfig, Credentials, EnrollRequest, Operation, Transaction, Transfer,
};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{MemoryStore, Server, ServerConfig};
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use cmpkit::transport::HttpTransfer;
use openssl::x509::X509;
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"threads-secret";
const REF: &[u8] = b"threads-ref";
const THREADS: usize = 4;

fn rounds() -> usize {
    std::env::var("CMPKIT_THREADS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

struct Env {
    ca: Arc<DemoCa>,
    store: Arc<MemoryStore>,
    server: Arc<Server>,
}

fn env() -> Env {
    let ca = Arc::new(DemoCa::generate().unwrap());
    let config = ServerConfig {
        signer: Some(ca.signer().unwrap()),
        secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
        trust: Some(TrustStore::new(&[ca.cert().clone()]).unwrap()),
        ..ServerConfig::default()
    };
    let store = Arc::new(MemoryStore::new());
    let server = Arc::new(Server::new(config, ca.clone(), store.clone()).unwrap());
    Env { ca, store, server }
}

fn new_key() -> Arc<SoftwareKey> {
    Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap())
}

fn request(key: &Arc<SoftwareKey>, cn: &str) -> EnrollRequest {
    EnrollRequest {
        subject: Some(parse_name(&format!("/CN={cn}")).unwrap()),
        sans: Vec::new(),
        key: key.clone(),
    }
}

/// What one client thread got: the certificates of its ir and cr, the serials it revoked.
#[derive(Default)]
struct Outcome {
    ir_certs: Vec<Vec<u8>>,
    cr_certs: Vec<Vec<u8>>,
    revoked: Vec<Vec<u8>>,
}

fn serial_of(der: &[u8]) -> Vec<u8> {
    X509::from_der(der)
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap()
        .to_vec()
}

/// One client thread's loop: per round ir (MAC) + certConf, cr signed with the ir's key and
/// certificate + certConf, and rr of the cr's certificate signed with its own key. Each
/// transaction runs over `transfer`; each round uses fresh `ClientConfig`s.
fn client_rounds(
    t: usize,
    rounds: usize,
    ca_cert: &X509,
    transfer: &mut dyn Transfer,
) -> std::result::Result<Outcome, String> {
    let mut out = Outcome::default();
    let mac = Arc::new(ClientConfig {
        credentials: Some(Credentials::mac(
            SECRET,
            REF,
            MacParams::Pbm(PbmConfig::default()),
        )),
        ..ClientConfig::default()
    });
    for i in 0..rounds {
        let step = |what: &str, e: cmpkit::Error| format!("thread {t} round {i} {what}: {e}");
        // ir, MAC-protected.
        let k1 = new_key();
        let mut tx = Transaction::start_ir(mac.clone(), request(&k1, &format!("ir-{t}-{i}")))
            .map_err(|e| step("ir start", e))?;
        execute(&mut tx, transfer).map_err(|e| step("ir", e))?;
        let ir_cert = tx.response().certificate.clone().ok_or("ir: no cert")?;
        out.ir_certs.push(ir_cert.clone());

        // cr, signed with the ir's key and certificate.
        let signed = Arc::new(ClientConfig {
            credentials: Some(Credentials::signature(
                k1.clone(),
                X509::from_der(&ir_cert).unwrap(),
                vec![],
            )),
            trust: Some(TrustStore::new(std::slice::from_ref(ca_cert)).unwrap()),
            ..ClientConfig::default()
        });
        let k2 = new_key();
        let mut tx = Transaction::start(
            signed.clone(),
            Operation::Cr(request(&k2, &format!("cr-{t}-{i}"))),
        )
        .map_err(|e| step("cr start", e))?;
        execute(&mut tx, transfer).map_err(|e| step("cr", e))?;
        let cr_cert = tx.response().certificate.clone().ok_or("cr: no cert")?;
        out.cr_certs.push(cr_cert.clone());

        // rr of the cr's certificate, signed with its key.
        let mut tx = Transaction::start(
            signed,
            Operation::Rr {
                cert: CmpCertificate::try_from(cr_cert.as_slice()).unwrap(),
                reason: Some(4),
                key: Some(k2),
            },
        )
        .map_err(|e| step("rr start", e))?;
        execute(&mut tx, transfer).map_err(|e| step("rr", e))?;
        out.revoked.push(serial_of(&cr_cert));
    }
    Ok(out)
}

/// Checks the CA's books against what the clients got: every certificate issued exactly
/// once, to the client that got it, confirmed, with distinct serials; every revocation
/// recorded once. `ir_certs`/`cr_certs`/`revoked` are the union over all threads.
fn check_books(e: &Env, outcomes: &[Outcome], expected_rounds: usize) {
    let ir: Vec<_> = outcomes.iter().flat_map(|o| o.ir_certs.clone()).collect();
    let cr: Vec<_> = outcomes.iter().flat_map(|o| o.cr_certs.clone()).collect();
    let revoked: Vec<_> = outcomes.iter().flat_map(|o| o.revoked.clone()).collect();
    assert_eq!(ir.len(), expected_rounds);
    assert_eq!(cr.len(), expected_rounds);
    assert_eq!(revoked.len(), expected_rounds);

    let issued = e.ca.issued();
    assert_eq!(issued.len(), 2 * expected_rounds, "issued by the CA");
    assert!(issued.iter().all(|c| c.confirmed), "an unconfirmed cert");
    let serials: HashSet<_> = issued.iter().map(|c| c.serial.clone()).collect();
    assert_eq!(serials.len(), issued.len(), "duplicate serial numbers");
    let tids: HashSet<_> = issued.iter().map(|c| c.transaction_id.clone()).collect();
    assert_eq!(
        tids.len(),
        issued.len(),
        "two certificates in one transaction"
    );
    for c in ir.iter().chain(&cr) {
        assert_eq!(
            issued.iter().filter(|i| &i.der == c).count(),
            1,
            "a client got a certificate the CA did not issue exactly once"
        );
    }
    let got: HashSet<_> = ir.iter().chain(&cr).collect();
    assert_eq!(
        got.len(),
        issued.len(),
        "two clients got the same certificate"
    );

    let revocations = e.ca.revocations();
    assert_eq!(revocations.len(), expected_rounds, "revocations at the CA");
    let at_ca: HashSet<_> = revocations.iter().map(|r| r.serial.clone()).collect();
    let asked: HashSet<_> = revoked.into_iter().collect();
    assert_eq!(at_ca, asked, "revoked serials");
    assert!(revocations.iter().all(|r| r.reason == Some(4)));
    // ir, cr and rr each leave one record in the store.
    assert_eq!(e.store.len(), 3 * expected_rounds, "store records");
}

#[test]
fn threads_share_one_server_in_process() {
    let e = env();
    let rounds = rounds();
    let start = Instant::now();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let server = e.server.clone();
            let ca_cert = e.ca.cert().clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut transfer = |req: &[u8]| Ok(server.process(req));
                client_rounds(t, rounds, &ca_cert, &mut transfer)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    check_books(&e, &outcomes, THREADS * rounds);
    println!(
        "threads in-process: {THREADS} threads x {rounds} rounds (ir, cr, rr) in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn http_server_with_two_workers_and_four_client_threads() {
    let e = env();
    let rounds = rounds();
    let server = e.server.clone();
    let http = HttpServer::bind(
        "127.0.0.1:0",
        Arc::new(move |req: &[u8]| server.process(req)),
        ServerOptions {
            workers: 2,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let url = format!("http://{}/pkix/", http.local_addr());
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            let ca_cert = e.ca.cert().clone();
            std::thread::spawn(move || {
                let http = HttpTransfer::new(&url).map_err(|e| e.to_string())?;
                let mut transfer = |req: &[u8]| http.post(req);
                client_rounds(t, rounds, &ca_cert, &mut transfer)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let elapsed = start.elapsed();
    let stats = http.stats();
    http.shutdown().unwrap();
    check_books(&e, &outcomes, THREADS * rounds);
    // Per round: ir + certConf, cr + certConf, rr.
    assert_eq!(stats.requests_served, 5 * (THREADS * rounds) as u64);
    assert_eq!(stats.errors(), 0, "{stats:?}");
    assert_eq!(stats.connections_rejected, 0, "{stats:?}");
    assert!(elapsed < Duration::from_secs(300), "took {elapsed:?}");
    println!(
        "threads over HTTP: {THREADS} clients x {rounds} rounds, 2 workers, in {:.2} s",
        elapsed.as_secs_f64()
    );
}

mod c_api {
    use super::*;
    use cmpkit::ffi::cmpkit_last_error;
    use cmpkit::ffi::ctx::*;
    use cmpkit::ffi::key::*;
    use cmpkit::ffi::request::*;
    use cmpkit::ffi::response::*;
    use cmpkit::ffi::transaction::*;
    use cmpkit::ErrorCode;
    use std::ffi::{c_void, CStr, CString};
    use std::ptr::{null, null_mut};

    /// The transfer callback: `userdata` is the shared `Server`.
    unsafe extern "C" fn to_server(
        userdata: *mut c_void,
        req: *const u8,
        len: usize,
        rsp: *mut cmpkit_buffer,
    ) -> i32 {
        // SAFETY: `userdata` is the `Server` the test keeps alive while the contexts run; the
        // library passes a valid request buffer.
        let answer =
            unsafe { (*userdata.cast::<Server>()).process(std::slice::from_raw_parts(req, len)) };
        // SAFETY: `rsp` is the library's live buffer.
        (unsafe { cmpkit_buffer_append(rsp, answer.as_ptr(), answer.len()) }) as i32
    }

    fn last_error() -> String {
        // SAFETY: a library-owned C string for this thread.
        unsafe { CStr::from_ptr(cmpkit_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Asserts `rc` is OK, with this thread's last error otherwise.
    fn ok(rc: ErrorCode, what: &str) {
        assert_eq!(rc, ErrorCode::Ok, "{what}: {}", last_error());
    }

    /// The issued certificate of a response, DER, copied.
    unsafe fn cert_of(rsp: *const cmpkit_response) -> Vec<u8> {
        let (mut der, mut len) = (null(), 0usize);
        // SAFETY: a live response; the borrowed bytes are copied before it is freed.
        unsafe {
            ok(cmpkit_response_cert_der(rsp, &mut der, &mut len), "cert");
            std::slice::from_raw_parts(der, len).to_vec()
        }
    }

    /// One C client: its own context (MAC for ir, then signature credentials for cr and
    /// rr), per round ir, cr and rr through `cmpkit_execute`.
    fn c_client(t: usize, rounds: usize, server: &Server, ca_der: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        // SAFETY: handles created, used and freed by this thread only; `server` outlives
        // the context.
        unsafe {
            let mut ctx = null_mut();
            ok(cmpkit_ctx_new(&mut ctx), "ctx");
            ok(
                cmpkit_ctx_set_transfer(
                    ctx,
                    Some(to_server),
                    (server as *const Server).cast_mut().cast(),
                ),
                "transfer",
            );
            ok(
                cmpkit_ctx_add_trust_anchors(ctx, ca_der.as_ptr(), ca_der.len()),
                "trust",
            );
            // This thread's last-error slot is its own: a failure here names this thread's
            // argument, whatever the other threads do meanwhile.
            let bad = CString::new(format!("not a name {t}")).unwrap();
            let mut req = null_mut();
            let mut k = null_mut();
            ok(
                cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut k),
                "key",
            );
            ok(cmpkit_request_new_ir(k, &mut req), "ir request");
            assert_ne!(cmpkit_request_set_subject(req, bad.as_ptr()), ErrorCode::Ok);
            let detail = last_error();
            cmpkit_request_free(req);
            cmpkit_key_free(k);
            assert!(!detail.is_empty());
            assert_eq!(
                cmpkit_ctx_set_recipient(null_mut(), null()),
                ErrorCode::NullArgument
            );
            assert!(last_error().contains("NULL"), "{}", last_error());

            for i in 0..rounds {
                // ir with the shared secret.
                ok(
                    cmpkit_ctx_set_secret(
                        ctx,
                        SECRET.as_ptr(),
                        SECRET.len(),
                        REF.as_ptr(),
                        REF.len(),
                    ),
                    "secret",
                );
                let mut k1 = null_mut();
                ok(
                    cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut k1),
                    "key",
                );
                let mut ir = null_mut();
                ok(cmpkit_request_new_ir(k1, &mut ir), "ir request");
                let cn = CString::new(format!("/CN=c-ir-{t}-{i}")).unwrap();
                ok(cmpkit_request_set_subject(ir, cn.as_ptr()), "subject");
                let mut rsp = null_mut();
                ok(cmpkit_execute(ctx, ir, &mut rsp), "ir");
                let ir_cert = cert_of(rsp);
                cmpkit_response_free(rsp);
                cmpkit_request_free(ir);
                out.ir_certs.push(ir_cert.clone());

                // cr signed with the ir's key and certificate.
                ok(
                    cmpkit_ctx_set_signer(ctx, k1, ir_cert.as_ptr(), ir_cert.len()),
                    "signer",
                );
                let mut k2 = null_mut();
                ok(
                    cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut k2),
                    "key",
                );
                let mut cr = null_mut();
                ok(cmpkit_request_new_cr(k2, &mut cr), "cr request");
                let cn = CString::new(format!("/CN=c-cr-{t}-{i}")).unwrap();
                ok(cmpkit_request_set_subject(cr, cn.as_ptr()), "subject");
                let mut rsp = null_mut();
                ok(cmpkit_execute(ctx, cr, &mut rsp), "cr");
                let cr_cert = cert_of(rsp);
                cmpkit_response_free(rsp);
                cmpkit_request_free(cr);
                out.cr_certs.push(cr_cert.clone());

                // rr of the cr's certificate, signed with its key.
                let mut rr = null_mut();
                ok(
                    cmpkit_request_new_rr(cr_cert.as_ptr(), cr_cert.len(), 4, k2, &mut rr),
                    "rr request",
                );
                let mut rsp = null_mut();
                ok(cmpkit_execute(ctx, rr, &mut rsp), "rr");
                assert_eq!(cmpkit_response_status(rsp), 0, "rr accepted");
                cmpkit_response_free(rsp);
                cmpkit_request_free(rr);
                out.revoked.push(serial_of(&cr_cert));
                cmpkit_key_free(k1);
                cmpkit_key_free(k2);
            }
            cmpkit_ctx_free(ctx);
        }
        out
    }

    #[test]
    fn c_contexts_on_several_threads_share_one_server() {
        let e = env();
        let rounds = rounds();
        let ca_der = e.ca.cert().to_der().unwrap();
        let start = Instant::now();
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (server, ca_der) = (&*e.server, &ca_der);
                    s.spawn(move || c_client(t, rounds, server, ca_der))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        check_books(&e, &outcomes, THREADS * rounds);
        println!(
            "threads through the C API: {THREADS} contexts x {rounds} rounds in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
}
