//! kur and rr through the C API name a certificate (PEM or DER): the context's own signature
//! certificate, or another one; the server's C handler sees the certificate's issuer and
//! serial number and who asked.

use cmpkit::ffi::ca_handler::*;
use cmpkit::ffi::cmpkit_last_error;
use cmpkit::ffi::ctx::*;
use cmpkit::ffi::key::*;
use cmpkit::ffi::request::*;
use cmpkit::ffi::response::*;
use cmpkit::ffi::server::*;
use cmpkit::ffi::server_config::*;
use cmpkit::ffi::transaction::*;
use cmpkit::ErrorCode;
use der::Decode;
use openssl::x509::X509;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::Mutex;

const REF: &[u8] = b"named-ref";
const SECRET: &[u8] = b"named-secret";

fn ok(rc: ErrorCode, what: &str) {
    // SAFETY: the library's NUL-terminated last error of this thread (or NULL).
    let detail = unsafe { cmpkit_last_error().as_ref().map(|p| CStr::from_ptr(p)) };
    assert_eq!(rc, ErrorCode::Ok, "{what}: {detail:?}");
}

unsafe extern "C" fn to_server(
    userdata: *mut c_void,
    req: *const u8,
    len: usize,
    rsp: *mut cmpkit_buffer,
) -> i32 {
    // SAFETY: `userdata` is the live server; the library passes valid buffers.
    unsafe {
        let mut answer = null_mut();
        ok(
            cmpkit_server_process(userdata.cast(), req, len, &mut answer),
            "process",
        );
        let (mut p, mut n) = (null(), 0usize);
        ok(cmpkit_bytes_data(answer, &mut p, &mut n), "bytes");
        let rc = cmpkit_buffer_append(rsp, p, n);
        cmpkit_bytes_free(answer);
        rc as i32
    }
}

/// What the revoke callback saw, one entry per revocation.
static REVOKED: Mutex<Vec<Revoked>> = Mutex::new(Vec::new());
/// Who sent the certificate requests.
static REQUESTERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Debug, PartialEq)]
struct Revoked {
    issuer: String,
    serial: Vec<u8>,
    reason: i32,
    requester: String,
}

fn text(p: *const std::ffi::c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: a NUL-terminated string borrowed for the callback.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

unsafe extern "C" fn on_revoke(
    _: *mut c_void,
    info: *const cmpkit_revocation_info,
    d: *mut cmpkit_decision,
) -> i32 {
    // SAFETY: the live info and decision of this callback.
    unsafe {
        let (mut p, mut n) = (null(), 0usize);
        ok(
            cmpkit_revocation_info_serial(info, &mut p, &mut n),
            "serial",
        );
        let requester = text(cmpkit_revocation_info_requester(info));
        // Asked twice, a text is the same string.
        assert_eq!(
            cmpkit_revocation_info_requester(info),
            cmpkit_revocation_info_requester(info)
        );
        REVOKED.lock().unwrap().push(Revoked {
            issuer: text(cmpkit_revocation_info_issuer(info)),
            serial: std::slice::from_raw_parts(p, n).to_vec(),
            reason: cmpkit_revocation_info_reason(info),
            requester,
        });
        cmpkit_decision_accept(d) as i32
    }
}

unsafe extern "C" fn on_request(
    _: *mut c_void,
    info: *const cmpkit_cert_request_info,
    _: *mut cmpkit_decision,
) -> i32 {
    // SAFETY: the live info of this callback.
    let who = text(unsafe { cmpkit_cert_request_info_requester(info) });
    REQUESTERS.lock().unwrap().push(who);
    0
}

/// A certificate's serial number (content octets) and issuer, as OpenSSL reads them.
fn serial_and_issuer(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let x = X509::from_der(der).unwrap();
    let serial = x.serial_number().to_bn().unwrap().to_vec();
    (serial, x.issuer_name().to_der().unwrap())
}

/// The serial number without the leading zero octet DER may put before it.
fn strip(serial: &[u8]) -> &[u8] {
    match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    }
}

#[test]
fn kur_and_rr_name_their_certificate_as_pem_or_der_own_or_not() {
    // SAFETY: the C API called as C would; every handle is freed once at the end.
    unsafe {
        let mut cfg = null_mut();
        ok(cmpkit_server_config_new(&mut cfg), "config");
        ok(
            cmpkit_server_config_add_secret(
                cfg,
                REF.as_ptr(),
                REF.len(),
                SECRET.as_ptr(),
                SECRET.len(),
            ),
            "secret",
        );
        let table = cmpkit_ca_handler {
            userdata: null_mut(),
            certificate_request: Some(on_request),
            revoke: Some(on_revoke),
            cert_confirm: None,
        };
        let mut srv = null_mut();
        ok(cmpkit_server_new(cfg, &table, &mut srv), "server");
        cmpkit_server_config_free(cfg);

        let mut ctx = null_mut();
        ok(cmpkit_ctx_new(&mut ctx), "ctx");
        ok(
            cmpkit_ctx_set_transfer(ctx, Some(to_server), srv.cast()),
            "transfer",
        );
        ok(
            cmpkit_ctx_set_secret(ctx, SECRET.as_ptr(), SECRET.len(), REF.as_ptr(), REF.len()),
            "secret",
        );
        // The CA certificate (caCerts genm), to trust its signed answers.
        let run = |req: *mut cmpkit_request| {
            let mut rsp = null_mut();
            ok(cmpkit_execute(ctx, req, &mut rsp), "execute");
            cmpkit_request_free(req);
            rsp
        };
        let mut req = null_mut();
        ok(cmpkit_request_new_genm_ca_certs(&mut req), "genm");
        let rsp = run(req);
        let (mut p, mut n) = (null(), 0usize);
        ok(
            cmpkit_response_cert_at(rsp, CertList::GenpCaCerts as u32, 0, &mut p, &mut n),
            "ca cert",
        );
        let ca = std::slice::from_raw_parts(p, n).to_vec();
        cmpkit_response_free(rsp);
        ok(
            cmpkit_ctx_add_trust_anchors(ctx, ca.as_ptr(), ca.len()),
            "trust",
        );
        let ca_subject = X509::from_der(&ca)
            .unwrap()
            .subject_name()
            .to_der()
            .unwrap();
        let ca_text = x509_cert::Certificate::from_der(&ca)
            .unwrap()
            .tbs_certificate()
            .subject()
            .to_string();

        let issued = |req: *mut cmpkit_request| {
            let rsp = run(req);
            let (mut p, mut n) = (null(), 0usize);
            ok(cmpkit_response_cert_der(rsp, &mut p, &mut n), "cert");
            let der = std::slice::from_raw_parts(p, n).to_vec();
            cmpkit_response_free(rsp);
            der
        };
        let mut k1 = null_mut();
        ok(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut k1),
            "key",
        );
        ok(cmpkit_request_new_ir(k1, &mut req), "ir");
        ok(
            cmpkit_request_set_subject(req, c"CN=device,O=Example".as_ptr()),
            "subject",
        );
        let cert1 = issued(req);
        ok(
            cmpkit_ctx_set_signer(ctx, k1, cert1.as_ptr(), cert1.len()),
            "signer",
        );
        REQUESTERS.lock().unwrap().clear();

        // kur of the context's own certificate, given as DER followed by other bytes (ignored
        // as before): signed with the context's credentials; subject taken from cert1.
        let mut k2 = null_mut();
        ok(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut k2),
            "key",
        );
        let padded = [cert1.as_slice(), b"trailing"].concat();
        ok(
            cmpkit_request_new_kur(k2, padded.as_ptr(), padded.len(), null(), &mut req),
            "kur",
        );
        let cert2 = issued(req);
        let x2 = X509::from_der(&cert2).unwrap();
        let x1 = X509::from_der(&cert1).unwrap();
        assert_eq!(
            x2.subject_name().to_der().unwrap(),
            x1.subject_name().to_der().unwrap()
        );
        assert_eq!(
            *REQUESTERS.lock().unwrap(),
            ["cert:CN=device,O=Example"],
            "the handler sees the kur's signer"
        );

        // rr of the new certificate (not the context's own), DER, started twice through the
        // non-blocking API and cmpkit_execute; and rr of cert1 as PEM, signed with its key.
        let (serial2, issuer2) = serial_and_issuer(&cert2);
        assert_eq!(issuer2, ca_subject);
        ok(
            cmpkit_request_new_rr(cert2.as_ptr(), cert2.len(), 4, null(), &mut req),
            "rr",
        );
        let mut tx = null_mut();
        ok(cmpkit_transaction_start(ctx, req, &mut tx), "start");
        let (mut p, mut n) = (null(), 0usize);
        ok(
            cmpkit_transaction_request(tx, &mut p, &mut n),
            "request bytes",
        );
        assert!(n > 0);
        cmpkit_transaction_free(tx);
        let rsp = run(req);
        assert_eq!(cmpkit_response_status(rsp), 0);
        cmpkit_response_free(rsp);
        let pem = x1.to_pem().unwrap();
        ok(
            cmpkit_request_new_rr(pem.as_ptr(), pem.len(), -1, k1, &mut req),
            "rr pem",
        );
        let rsp = run(req);
        assert_eq!(cmpkit_response_status(rsp), 0);
        cmpkit_response_free(rsp);

        let (serial1, _) = serial_and_issuer(&cert1);
        let seen: Vec<_> = REVOKED
            .lock()
            .unwrap()
            .iter()
            .map(|r| (strip(&r.serial).to_vec(), r.reason, r.requester.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (serial2, 4, "cert:CN=device,O=Example".to_owned()),
                (serial1, -1, "cert:CN=device,O=Example".to_owned()),
            ]
        );
        assert!(REVOKED.lock().unwrap().iter().all(|r| r.issuer == ca_text));

        cmpkit_key_free(k1);
        cmpkit_key_free(k2);
        cmpkit_ctx_free(ctx);
        cmpkit_server_free(srv);
    }
}
