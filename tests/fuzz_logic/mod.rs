//! The logic of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo-fuzz, nightly) and
//! `tests/fuzz_replay.rs` (a std-only replay of the seed corpus plus seeded random mutations
//! that runs in every `cargo test`). Each function takes arbitrary bytes and panics only on a
//! bug: a panic in the library, or a broken invariant asserted here.
#![allow(dead_code)]

use cmpkit::asn1::PkiMessage;
use cmpkit::client::{ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, SoftwareKey};
use cmpkit::message::{self, DEFAULT_MAX_MESSAGE_SIZE};
use cmpkit::protection::{self, MacLimits, MacParams, MacProtection, PbmConfig, Protection};
use cmpkit::ErrorCode;
use der::{Decode, Encode};
use std::sync::{Arc, OnceLock};

/// The shared secret of the client transactions (that of the OpenSSL vectors, so that the
/// seed responses' MACs verify after [`fix_up`]).
pub const SECRET: &[u8] = b"interop-secret-0123";
/// The reference value (senderKID).
pub const REF: &[u8] = b"interop-ref-4711";

/// MAC caps for fuzzing: low, so that one input cannot cost 0.1 s of key derivation (the
/// defaults are exercised by tests/hostile_inputs.rs).
pub const FUZZ_LIMITS: MacLimits = MacLimits {
    max_iterations: 2_000,
    max_pbkdf2_work: 8_000,
};

/// `decode`: message::decode, and a message that decodes re-encodes (whole and its
/// ProtectedPart) and decodes again to the same value.
pub fn decode(data: &[u8]) {
    let Ok(msg) = message::decode(data, DEFAULT_MAX_MESSAGE_SIZE) else {
        return;
    };
    let der = msg
        .to_der()
        .unwrap_or_else(|e| panic!("a decoded message does not re-encode: {e}"));
    protection::protected_part_der(&msg).expect("the ProtectedPart of a decoded message encodes");
    let again = PkiMessage::from_der(&der)
        .unwrap_or_else(|e| panic!("the re-encoding of a decoded message does not decode: {e}"));
    assert_eq!(again, msg, "decode(encode(msg)) != msg");
    let _ = msg.body.name();
    let _ = protection::protection_kind(&msg);
}

/// ClientConfig with MAC credentials ([`SECRET`], PBM with one iteration for our requests)
/// and `limits` for the responses' MAC parameters; unprotected errors are reported.
pub fn mac_config(limits: MacLimits) -> ClientConfig {
    let mut mac = MacProtection::new(
        SECRET.to_vec(),
        MacParams::Pbm(PbmConfig {
            iterations: 1,
            ..PbmConfig::default()
        }),
    );
    mac.limits = limits;
    ClientConfig {
        credentials: Some(Credentials::Mac {
            protection: Protection::Mac(mac),
            reference: REF.to_vec(),
        }),
        mac_limits: limits,
        unprotected_errors: true,
        ..ClientConfig::default()
    }
}

fn key() -> Arc<SoftwareKey> {
    static K: OnceLock<Arc<SoftwareKey>> = OnceLock::new();
    K.get_or_init(|| Arc::new(SoftwareKey::generate(KeyType::EcP256).expect("key")))
        .clone()
}

/// A started ir transaction under `config`.
pub fn start_ir_with(config: Arc<ClientConfig>) -> Transaction {
    Transaction::start_ir(
        config,
        EnrollRequest {
            subject: Some(message::parse_name("/CN=fuzz").expect("name")),
            sans: Vec::new(),
            key: key(),
        },
    )
    .expect("start_ir")
}

/// A started ir transaction with MAC credentials and [`FUZZ_LIMITS`].
pub fn start_ir() -> Transaction {
    static C: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    start_ir_with(C.get_or_init(|| Arc::new(mac_config(FUZZ_LIMITS))).clone())
}

/// Split the input into one or two messages: the first DER TLV (by its header) and the rest.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let n = der_tlv_len(data).unwrap_or(data.len()).min(data.len());
    data.split_at(n)
}

/// The total length of the TLV at the start of `d` (short or long definite form), if any.
pub fn der_tlv_len(d: &[u8]) -> Option<usize> {
    let l0 = *d.get(1)?;
    if l0 < 0x80 {
        return Some(2 + l0 as usize);
    }
    let n = (l0 & 0x7f) as usize;
    if n == 0 || n > 4 || d.len() < 2 + n {
        return None;
    }
    let len = d[2..2 + n]
        .iter()
        .fold(0usize, |a, &b| (a << 8) | b as usize);
    Some(2 + n + len)
}

/// Make `rsp` a believable answer to `request` if it decodes: its transactionID and
/// recipNonce set to the request's, and MAC-protected again with [`SECRET`], so that the
/// checks after the protection are reached. `None` if it does not decode or cannot be
/// protected (e.g. hostile MAC parameters, which the raw feed covers).
pub fn fix_up(rsp: &[u8], request: &[u8]) -> Option<Vec<u8>> {
    let req = message::decode(request, usize::MAX).ok()?;
    // message::decode, not PkiMessage::from_der: it refuses lengths that der would try to
    // allocate before checking them (tests/regressions/decode-senderkid-4gib-length.bin).
    let mut msg = message::decode(rsp, usize::MAX).ok()?;
    msg.header.transaction_id = req.header.transaction_id.clone();
    msg.header.recip_nonce = req.header.sender_nonce.clone();
    if msg.header.sender_nonce.is_none() {
        msg.header.sender_nonce = req.header.sender_nonce.clone();
    }
    let params = match &msg.header.protection_alg {
        Some(a) if protection::protection_kind(&msg) == Some(protection::ProtectionKind::Mac) => {
            MacParams::Explicit(a.clone())
        }
        _ => MacParams::Pbm(PbmConfig {
            iterations: 1,
            ..PbmConfig::default()
        }),
    };
    let mut mac = MacProtection::new(SECRET.to_vec(), params);
    mac.limits = FUZZ_LIMITS;
    protection::protect(&mut msg, &Protection::Mac(mac)).ok()?;
    msg.to_der().ok()
}

/// Outcome counts of [`client_response`], for reports.
#[derive(Default, Debug, Clone, Copy)]
pub struct ClientStats {
    /// Fixed-up first responses that were accepted (a certConf or the end followed).
    pub accepted_first: u64,
    /// Second responses fed to a transaction waiting for pkiConf.
    pub second_fed: u64,
}

/// `client_response`: a started ir transaction with MAC credentials fed the input as is, and
/// another fed it fixed up ([`fix_up`]); when a transaction then waits for pkiConf, the
/// second part of the input is its second response. Invariants: a failed response ends the
/// transaction with that error, a done transaction refuses more input (InvalidState), and
/// the pending request of a waiting one decodes.
pub fn client_response(data: &[u8], stats: &mut ClientStats) {
    let (first, second) = split(data);
    // As is.
    let mut tx = start_ir();
    drive(&mut tx, first, second, false, stats);
    // Fixed up: past the protection and ID checks.
    let mut tx = start_ir();
    let req = tx.pending_request().expect("pending ir").to_vec();
    if let Some(fixed) = fix_up(first, &req) {
        drive(&mut tx, &fixed, second, true, stats);
    }
}

fn drive(tx: &mut Transaction, first: &[u8], second: &[u8], fix: bool, stats: &mut ClientStats) {
    let r = tx.handle_response(first);
    check_after_feed(tx, &r);
    if r.is_ok() && fix {
        stats.accepted_first += 1;
    }
    if let Some(req) = tx.pending_request().map(<[u8]>::to_vec) {
        message::decode(&req, usize::MAX).expect("our certConf decodes");
        let second = if fix {
            fix_up(second, &req).unwrap_or_else(|| second.to_vec())
        } else {
            second.to_vec()
        };
        stats.second_fed += 1;
        let r = tx.handle_response(&second);
        check_after_feed(tx, &r);
    }
    // A done transaction refuses more input.
    if tx.is_done() {
        let e = tx.handle_response(first).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidState, "{e}");
    }
}

fn check_after_feed(tx: &Transaction, r: &cmpkit::Result<()>) {
    if let Err(e) = r {
        assert!(tx.is_done(), "a failed response must end the transaction");
        assert_eq!(tx.result().unwrap_err(), *e, "the result is the failure");
        assert_ne!(e.code, ErrorCode::Internal, "internal error: {e}");
    }
}

/// The C API state `ffi_bytes` needs: a context with a shared secret and an ir request.
struct FfiState {
    ctx: *mut cmpkit::ffi::ctx::cmpkit_ctx,
    req: *mut cmpkit::ffi::request::cmpkit_request,
}

thread_local! {
    static FFI: FfiState = unsafe { ffi_state() };
}

/// # Safety
/// Calls the C API as C would.
unsafe fn ffi_state() -> FfiState {
    use cmpkit::ffi::{ctx::*, key::*, request::*};
    use std::ptr::null_mut;
    unsafe {
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, SECRET.as_ptr(), SECRET.len(), REF.as_ptr(), REF.len()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_max_iterations(ctx, FUZZ_LIMITS.max_iterations),
            ErrorCode::Ok
        );
        // One PBM iteration for our requests (the default 10 000 made every execution cost
        // ~15 ms of key derivation, mostly under ASan); responses are still capped by
        // FUZZ_LIMITS.
        assert_eq!(cmpkit_ctx_set_mac_iterations(ctx, 1), ErrorCode::Ok);
        let mut key = null_mut();
        assert_eq!(cmpkit_key_generate(1, 0, &mut key), ErrorCode::Ok);
        let mut req = null_mut();
        assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
        cmpkit_key_free(key);
        assert_eq!(
            cmpkit_request_set_subject(req, c"/CN=fuzz".as_ptr()),
            ErrorCode::Ok
        );
        FfiState { ctx, req }
    }
}

/// `ffi_bytes`: the C API entry points that take bytes — cmpkit_key_from_pem_or_der,
/// cmpkit_ctx_add_trust_anchors (on a fresh context) and cmpkit_transaction_feed (on a
/// started transaction, twice: the second call must be InvalidState or a further answer).
pub fn ffi_bytes(data: &[u8]) {
    use cmpkit::ffi::{ctx::*, key::*, transaction::*};
    use std::ptr::null_mut;
    // SAFETY: valid pointers and lengths, handles used by this thread only, freed once.
    unsafe {
        let mut key = null_mut();
        let rc = cmpkit_key_from_pem_or_der(data.as_ptr(), data.len(), &mut key);
        assert_eq!(
            rc == ErrorCode::Ok,
            !key.is_null(),
            "out written only on success"
        );
        cmpkit_key_free(key);

        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        let rc = cmpkit_ctx_add_trust_anchors(ctx, data.as_ptr(), data.len());
        assert_ne!(rc, ErrorCode::Internal);
        cmpkit_ctx_free(ctx);

        FFI.with(|s| {
            let mut tx = null_mut();
            assert_eq!(
                cmpkit_transaction_start(s.ctx, s.req, &mut tx),
                ErrorCode::Ok
            );
            let rc = cmpkit_transaction_feed(tx, data.as_ptr(), data.len());
            assert_ne!(rc, ErrorCode::Internal);
            if rc != ErrorCode::Ok {
                assert_eq!(cmpkit_transaction_is_done(tx), 1);
                assert_eq!(cmpkit_transaction_result(tx), rc);
                assert!(!cmpkit_transaction_last_error(tx).is_null());
            }
            let rc2 = cmpkit_transaction_feed(tx, data.as_ptr(), data.len());
            assert_ne!(rc2, ErrorCode::Internal);
            if rc != ErrorCode::Ok {
                assert_eq!(rc2, ErrorCode::InvalidState);
            }
            let mut rsp = null_mut();
            assert_eq!(cmpkit_transaction_response(tx, &mut rsp), ErrorCode::Ok);
            cmpkit::ffi::response::cmpkit_response_free(rsp);
            cmpkit_transaction_free(tx);
        });
    }
}

/// One server (demo CA, the vectors' MAC secret, low MAC caps) for `server_process`.
fn fuzz_server() -> &'static cmpkit::server::Server {
    use cmpkit::server::demo_ca::DemoCa;
    use cmpkit::server::{MemoryStore, Server, ServerConfig};
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let ca = Arc::new(DemoCa::generate().expect("demo CA"));
        let config = ServerConfig {
            signer: Some(ca.signer().expect("CA signer")),
            secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
            mac_limits: FUZZ_LIMITS,
            ..ServerConfig::default()
        };
        Server::new(config, ca, Arc::new(MemoryStore::new())).expect("server")
    })
}

/// The answer of the `server_process` server to `data`.
pub fn server_process_answer(data: &[u8]) -> Vec<u8> {
    fuzz_server().process(data)
}

/// `server_process`: whatever the bytes, the server answers with a DER PKIMessage (an error
/// message for anything it cannot accept) and does not panic.
pub fn server_process(data: &[u8]) {
    let answer = server_process_answer(data);
    let msg = PkiMessage::from_der(&answer)
        .unwrap_or_else(|e| panic!("the server's answer is not a PKIMessage: {e}"));
    assert!(
        msg.header.pvno == 2 || msg.header.pvno == 3,
        "answer pvno {}",
        msg.header.pvno
    );
}

/// Our own messages, for the seed corpora: complete exchanges between our client (MAC
/// credentials as in [`start_ir`]) and the `server_process` server — ir, cr, kur and rr (for
/// the ir's certificate), genm — every request and answer in order,
/// named `own_<operation>_<n>_<req|rsp>.der`. Panics if an exchange does not succeed, so
/// the seeds stay the messages of a working flow.
pub fn own_messages() -> Vec<(String, Vec<u8>)> {
    use cmpkit::asn1::CmpCertificate;
    use cmpkit::client::{genm, Operation};
    static C: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = C.get_or_init(|| Arc::new(mac_config(FUZZ_LIMITS)));
    let enroll = |cn: &str| EnrollRequest {
        subject: Some(message::parse_name(&format!("/CN={cn}")).expect("name")),
        sans: Vec::new(),
        key: key(),
    };
    let mut out = Vec::new();
    let mut run = |name: &str, op: Operation| -> Transaction {
        let mut tx = Transaction::start(config.clone(), op)
            .unwrap_or_else(|e| panic!("own {name}: start: {e}"));
        let mut n = 1;
        while let Some(req) = tx.pending_request().map(<[u8]>::to_vec) {
            let rsp = fuzz_server().process(&req);
            tx.handle_response(&rsp)
                .unwrap_or_else(|e| panic!("own {name}: response {n}: {e}"));
            out.push((format!("own_{name}_{n}_req.der"), req));
            out.push((format!("own_{name}_{n}_rsp.der"), rsp));
            n += 1;
        }
        tx.result()
            .unwrap_or_else(|e| panic!("own {name}: result: {e}"));
        tx
    };
    let ir = run("ir", Operation::Ir(enroll("fuzz-ir")));
    let cert_der = ir
        .response()
        .certificate
        .clone()
        .expect("ir: a certificate");
    let cert = CmpCertificate::try_from(cert_der.as_slice()).expect("ir: a certificate");
    run("cr", Operation::Cr(enroll("fuzz-cr")));
    run(
        "kur",
        Operation::Kur {
            request: enroll("fuzz-kur"),
            old_cert: cert.clone(),
            old_key: None,
        },
    );
    run(
        "rr",
        Operation::Rr {
            cert,
            reason: Some(1),
            key: None,
        },
    );
    run(
        "genm",
        Operation::Genm(vec![
            genm::ca_certs_request(),
            genm::cert_req_template_request(),
        ]),
    );
    out
}
