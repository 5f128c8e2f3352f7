//! The C API's contract, called the way C calls it: NULL and bad lengths give an error code
//! and a detail, never a crash; failed calls leave handles valid; `*_free(NULL)` is fine.

use cmpkit::ffi::ctx::*;
use cmpkit::ffi::key::*;
use cmpkit::ffi::request::*;
use cmpkit::ffi::response::*;
use cmpkit::ffi::transaction::*;
use cmpkit::ffi::{cmpkit_last_error, cmpkit_result_name};
use cmpkit::ErrorCode;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

fn last_error() -> String {
    let p = cmpkit_last_error();
    assert!(!p.is_null(), "a failure leaves a detail");
    // SAFETY: a NUL-terminated string owned by the library, valid until the next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn null_arguments_are_reported_not_dereferenced() {
    // SAFETY: exercising the C API with NULL pointers, which it must reject.
    unsafe {
        assert_eq!(cmpkit_ctx_new(null_mut()), ErrorCode::NullArgument);
        assert!(last_error().contains("out is NULL"));
        assert_eq!(
            cmpkit_ctx_set_server_url(null_mut(), c"http://x/".as_ptr()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_key_from_pem_or_der(null(), 5, &mut null_mut()),
            ErrorCode::NullArgument
        );
        assert!(last_error().contains("data is NULL with length 5"));
        assert_eq!(
            cmpkit_request_new_ir(null(), &mut null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_execute(null_mut(), null(), null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_transaction_feed(null_mut(), null(), 0),
            ErrorCode::NullArgument
        );
        assert_eq!(cmpkit_response_status(null()), -1);
        assert!(cmpkit_response_summary(null()).is_null());
        assert_eq!(cmpkit_transaction_is_done(null()), 1);
        cmpkit_ctx_free(null_mut());
        cmpkit_key_free(null_mut());
        cmpkit_request_free(null_mut());
        cmpkit_response_free(null_mut());
        cmpkit_transaction_free(null_mut());
    }
}

#[test]
fn failed_setters_keep_the_context_usable_and_explain_themselves() {
    // SAFETY: valid handles from the library; the strings are NUL-terminated literals.
    unsafe {
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_server_url(ctx, c"https://example.com/".as_ptr()),
            ErrorCode::InvalidArgument
        );
        let detail = CStr::from_ptr(cmpkit_ctx_last_error(ctx))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("https"), "{detail}");
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"".as_ptr(), 0, b"r".as_ptr(), 1),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_ctx_set_recipient(ctx, c"/NOT A NAME".as_ptr()),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_ctx_add_trust_anchors(ctx, b"garbage".as_ptr(), 7),
            ErrorCode::BadCertificate
        );
        // The context still works after those failures.
        assert_eq!(
            cmpkit_ctx_set_server_url(ctx, c"http://127.0.0.1:1/pkix/".as_ptr()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        let mut key = null_mut();
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        let mut req = null_mut();
        assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
        cmpkit_key_free(key); // the request keeps its own reference
        assert_eq!(
            cmpkit_request_set_subject(req, c"/CN=x".as_ptr()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_request_add_san(req, SanKind::Ip as u32, c"not-an-ip".as_ptr()),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_request_add_san(req, 99, c"x".as_ptr()),
            ErrorCode::InvalidArgument
        );
        // Port 1 on loopback refuses: a transfer failure, no response handle.
        let mut rsp = std::ptr::dangling_mut::<cmpkit_response>();
        assert_eq!(
            cmpkit_execute(ctx, req, &mut rsp),
            ErrorCode::TransferFailed
        );
        assert!(rsp.is_null());
        let detail = CStr::from_ptr(cmpkit_ctx_last_error(ctx))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("127.0.0.1:1"), "{detail}");
        cmpkit_request_free(req);
        cmpkit_ctx_free(ctx);
    }
}

#[test]
fn every_result_code_has_a_distinct_name() {
    let codes = [
        0u32, 100, 101, 102, 103, 104, 105, 199, 200, 201, 202, 203, 204, 205, 300, 301, 302, 303,
        304, 305, 306, 307, 400, 401, 402, 403, 404, 405, 500, 501, 502, 503, 600, 601, 602, 603,
        700, 701, 702, 703, 704, 705,
    ];
    let mut names = std::collections::HashSet::new();
    for c in codes {
        // SAFETY: static strings.
        let n = unsafe { CStr::from_ptr(cmpkit_result_name(c)) }
            .to_str()
            .unwrap();
        assert_ne!(n, "unknown", "code {c}");
        assert!(names.insert(n), "duplicate name {n}");
    }
    // SAFETY: static string.
    assert_eq!(
        unsafe { CStr::from_ptr(cmpkit_result_name(12345)) }
            .to_str()
            .unwrap(),
        "unknown"
    );
}

unsafe extern "C" fn failing_sign(
    _: *mut c_void,
    _: u32,
    _: *const u8,
    _: usize,
    _: *mut u8,
    _: *mut usize,
) -> i32 {
    -1
}

unsafe extern "C" fn lying_sign(
    _: *mut c_void,
    _: u32,
    _: *const u8,
    _: usize,
    _: *mut u8,
    len: *mut usize,
) -> i32 {
    // SAFETY: `len` is the library's valid out-parameter.
    unsafe { *len = 1 << 20 };
    0
}

unsafe extern "C" fn count_free(userdata: *mut c_void) {
    // SAFETY: the tests pass a pointer to an AtomicUsize that outlives the key.
    unsafe { &*(userdata as *const std::sync::atomic::AtomicUsize) }
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn external_key_callbacks_that_fail_or_lie_are_reported_and_userdata_freed_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // SAFETY: valid handles and callbacks; the counter outlives every key.
    unsafe {
        let mut sw = null_mut();
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut sw),
            ErrorCode::Ok
        );
        let (mut spki, mut spki_len) = (null(), 0usize);
        assert_eq!(
            cmpkit_key_public_key_der(sw, &mut spki, &mut spki_len),
            ErrorCode::Ok
        );
        for (cb, what) in [
            (
                failing_sign as unsafe extern "C" fn(_, _, _, _, _, _) -> i32,
                "returned -1",
            ),
            (lying_sign, "length"),
        ] {
            let freed = AtomicUsize::new(0);
            let mut key = null_mut();
            let ud = &freed as *const AtomicUsize as *mut c_void;
            assert_eq!(
                cmpkit_key_new_external(
                    spki,
                    spki_len,
                    1,
                    Some(cb),
                    ud,
                    Some(count_free),
                    &mut key
                ),
                ErrorCode::Ok
            );
            let mut req = null_mut();
            // Building the ir signs the proof of possession through the callback.
            assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
            let mut ctx = null_mut();
            assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
            assert_eq!(
                cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
                ErrorCode::Ok
            );
            let mut tx = null_mut();
            assert_eq!(
                cmpkit_transaction_start(ctx, req, &mut tx),
                ErrorCode::KeyCallbackFailed
            );
            assert!(tx.is_null());
            let detail = CStr::from_ptr(cmpkit_ctx_last_error(ctx))
                .to_string_lossy()
                .into_owned();
            assert!(detail.contains(what), "{detail}");
            cmpkit_key_free(key);
            assert_eq!(
                freed.load(Ordering::SeqCst),
                0,
                "the request still holds the key"
            );
            cmpkit_request_free(req);
            assert_eq!(
                freed.load(Ordering::SeqCst),
                1,
                "userdata is released exactly once"
            );
            cmpkit_ctx_free(ctx);
        }
        // A failing constructor releases userdata too.
        let freed = AtomicUsize::new(0);
        let ud = &freed as *const AtomicUsize as *mut c_void;
        assert_eq!(
            cmpkit_key_new_external(
                b"junk".as_ptr(),
                4,
                1,
                Some(failing_sign),
                ud,
                Some(count_free),
                &mut null_mut()
            ),
            ErrorCode::KeyError
        );
        assert_eq!(freed.load(Ordering::SeqCst), 1);
        cmpkit_key_free(sw);
    }
}

#[test]
fn buffer_queries_report_the_needed_size() {
    // SAFETY: valid handles; buffers sized as passed.
    unsafe {
        let mut key = null_mut();
        assert_eq!(
            cmpkit_key_generate(KeyKind::Ed25519 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        let mut len = 0usize;
        assert_eq!(
            cmpkit_key_private_key_pem(key, null_mut(), 0, &mut len),
            ErrorCode::BufferTooSmall
        );
        assert!(len > 50);
        let mut buf = vec![0u8; len];
        assert_eq!(
            cmpkit_key_private_key_pem(key, buf.as_mut_ptr(), buf.len(), &mut len),
            ErrorCode::Ok
        );
        assert!(buf.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        cmpkit_key_free(key);
    }
}

unsafe extern "C" fn failing_transfer(
    _: *mut c_void,
    _: *const u8,
    _: usize,
    _: *mut cmpkit_buffer,
) -> i32 {
    7
}

unsafe extern "C" fn garbage_transfer(
    calls: *mut c_void,
    _: *const u8,
    _: usize,
    rsp: *mut cmpkit_buffer,
) -> i32 {
    // SAFETY: the test passes a pointer to a live AtomicUsize.
    unsafe { &*(calls as *const std::sync::atomic::AtomicUsize) }
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: `rsp` is the library's live buffer; the data is a valid slice.
    (unsafe { cmpkit_buffer_append(rsp, b"\x30\x03\x02".as_ptr(), 3) }) as i32
}

#[test]
fn transfer_callback_failure_and_garbage_answers_get_their_own_codes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // SAFETY: valid handles and callbacks; `calls` outlives the context's use of it.
    unsafe {
        let (mut ctx, mut key, mut req) = (null_mut(), null_mut(), null_mut());
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
        assert_eq!(
            cmpkit_execute(ctx, req, null_mut()),
            ErrorCode::MissingConfig
        );
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(failing_transfer), null_mut()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_execute(ctx, req, null_mut()),
            ErrorCode::TransferFailed
        );
        let detail = CStr::from_ptr(cmpkit_ctx_last_error(ctx))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("returned 7"), "{detail}");
        let calls = AtomicUsize::new(0);
        let ud = &calls as *const AtomicUsize as *mut c_void;
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(garbage_transfer), ud),
            ErrorCode::Ok
        );
        let mut rsp = null_mut();
        assert_eq!(
            cmpkit_execute(ctx, req, &mut rsp),
            ErrorCode::MalformedMessage
        );
        assert!(rsp.is_null(), "the peer said nothing intelligible");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cmpkit_request_free(req);
        cmpkit_key_free(key);
        cmpkit_ctx_free(ctx);
    }
}

/// A self-signed P-256 certificate and its key as PEM.
fn self_signed_pem() -> (Vec<u8>, Vec<u8>) {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, x509::X509Builder};
    let key = PKey::ec_gen("prime256v1").unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

#[test]
fn new_request_constructors_check_their_arguments() {
    let (cert, key_pem) = self_signed_pem();
    // SAFETY: exercising the C API with NULL and bad arguments; valid handles otherwise.
    unsafe {
        let mut key = null_mut();
        assert_eq!(
            cmpkit_key_from_pem_or_der(key_pem.as_ptr(), key_pem.len(), &mut key),
            ErrorCode::Ok
        );
        let mut other = null_mut();
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut other),
            ErrorCode::Ok
        );
        let mut req = null_mut();
        // cr
        assert_eq!(
            cmpkit_request_new_cr(null(), &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_cr(key, null_mut()),
            ErrorCode::NullArgument
        );
        // kur
        assert_eq!(
            cmpkit_request_new_kur(null(), cert.as_ptr(), cert.len(), key, &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_kur(other, null(), 3, key, &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_kur(other, null(), 0, key, &mut req),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_request_new_kur(other, b"junk".as_ptr(), 4, key, &mut req),
            ErrorCode::BadCertificate
        );
        assert_eq!(
            cmpkit_request_new_kur(other, cert.as_ptr(), cert.len(), other, &mut req),
            ErrorCode::CertKeyMismatch,
            "old_key must be old_cert's key"
        );
        assert_eq!(
            cmpkit_request_new_kur(other, cert.as_ptr(), cert.len(), key, null_mut()),
            ErrorCode::NullArgument
        );
        assert!(req.is_null(), "no handle written on failure");
        // p10cr
        assert_eq!(
            cmpkit_request_new_p10cr(null(), 9, &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_p10cr(b"junk".as_ptr(), 4, &mut req),
            ErrorCode::InvalidArgument
        );
        let bad_pem =
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            cmpkit_request_new_p10cr(bad_pem.as_ptr(), bad_pem.len(), &mut req),
            ErrorCode::InvalidArgument
        );
        // rr
        assert_eq!(
            cmpkit_request_new_rr(null(), 5, -1, null(), &mut req),
            ErrorCode::NullArgument
        );
        for reason in [7, 11, -2, 300] {
            assert_eq!(
                cmpkit_request_new_rr(cert.as_ptr(), cert.len(), reason, null(), &mut req),
                ErrorCode::InvalidArgument,
                "reason {reason}"
            );
            assert!(last_error().contains("CRLReason"));
        }
        assert_eq!(
            cmpkit_request_new_rr(cert.as_ptr(), cert.len(), 1, other, &mut req),
            ErrorCode::CertKeyMismatch
        );
        assert_eq!(
            cmpkit_request_new_rr(cert.as_ptr(), cert.len(), -1, key, null_mut()),
            ErrorCode::NullArgument
        );
        // genm
        assert_eq!(cmpkit_request_new_genm(null_mut()), ErrorCode::NullArgument);
        assert_eq!(
            cmpkit_request_new_genm_ca_certs(null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_cert_req_template(null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_key_pair_types(null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_root_ca_update(null(), 4, &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_root_ca_update(b"junk".as_ptr(), 4, &mut req),
            ErrorCode::BadCertificate
        );
        assert_eq!(
            cmpkit_request_new_genm_crl_update(null(), 0, &mut req),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_crl_update(null(), 1, &mut req),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_new_genm_crl_update(b"junk".as_ptr(), 4, &mut req),
            ErrorCode::InvalidArgument
        );
        assert!(req.is_null(), "no handle written on failure");

        // Each valid constructor makes a handle.
        let mut made = Vec::new();
        let rc = cmpkit_request_new_cr(key, &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_kur(other, cert.as_ptr(), cert.len(), key, &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_kur(other, cert.as_ptr(), cert.len(), null(), &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_rr(cert.as_ptr(), cert.len(), 4, key, &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_rr(cert.as_ptr(), cert.len(), -1, null(), &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_genm_root_ca_update(cert.as_ptr(), cert.len(), &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_genm_root_ca_update(null(), 0, &mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_genm_ca_certs(&mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_genm_cert_req_template(&mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        let rc = cmpkit_request_new_genm_key_pair_types(&mut req);
        assert_eq!(rc, ErrorCode::Ok, "{}", last_error());
        assert!(!req.is_null());
        made.push(std::mem::replace(&mut req, null_mut()));
        // Subject and SANs apply to ir/cr/kur only; InfoTypeAndValues to genm only.
        let (cr, kur, rr, genm) = (made[0], made[1], made[3], made[7]);
        assert_eq!(
            cmpkit_request_set_subject(kur, c"/CN=new".as_ptr()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_request_set_subject(rr, c"/CN=x".as_ptr()),
            ErrorCode::InvalidState
        );
        assert_eq!(
            cmpkit_request_add_san(genm, SanKind::Dns as u32, c"x".as_ptr()),
            ErrorCode::InvalidState
        );
        assert_eq!(
            cmpkit_request_add_itav(cr, c"1.3.6.1.5.5.7.4.1".as_ptr(), null(), 0),
            ErrorCode::InvalidState
        );
        assert_eq!(
            cmpkit_request_add_itav(null_mut(), c"1.2.3".as_ptr(), null(), 0),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, null(), null(), 0),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, c"not.an.oid".as_ptr(), null(), 0),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, c"1.2.3".as_ptr(), null(), 2),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, c"1.2.3".as_ptr(), b"\x04\x05ab".as_ptr(), 4),
            ErrorCode::InvalidArgument,
            "a truncated DER element"
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, c"1.2.3".as_ptr(), b"\x04\x02ab".as_ptr(), 4),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_request_add_itav(genm, c"1.3.6.1.5.5.7.4.1".as_ptr(), null(), 0),
            ErrorCode::Ok
        );
        for r in made {
            cmpkit_request_free(r);
        }
        cmpkit_key_free(key);
        cmpkit_key_free(other);
    }
}

#[test]
fn new_ctx_setters_and_getters_handle_null_and_bad_values() {
    // SAFETY: exercising the C API with NULL and bad arguments; valid handles otherwise.
    unsafe {
        assert_eq!(
            cmpkit_ctx_set_polling_deadline(null_mut(), 5),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_ctx_set_message_time_tolerance(null_mut(), 5),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_ctx_set_require_cmc_eku(null_mut(), 1),
            ErrorCode::NullArgument
        );
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_polling_deadline(ctx, 0),
            ErrorCode::InvalidArgument
        );
        assert!(!cmpkit_ctx_last_error(ctx).is_null());
        assert_eq!(cmpkit_ctx_set_polling_deadline(ctx, 60), ErrorCode::Ok);
        assert_eq!(cmpkit_ctx_set_message_time_tolerance(ctx, 0), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_message_time_tolerance(ctx, 300),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_ctx_set_require_cmc_eku(ctx, 1), ErrorCode::Ok);
        cmpkit_ctx_free(ctx);

        // Transaction and response getters on NULL.
        assert_eq!(cmpkit_transaction_wait_ms(null()), -1);
        assert_eq!(cmpkit_response_poll_rounds(null()), 0);
        assert_eq!(cmpkit_response_genp_count(null()), 0);
        assert_eq!(cmpkit_response_crl_count(null()), 0);
        let (mut oid, mut val, mut len) = (null(), null(), 0usize);
        assert_eq!(
            cmpkit_response_genp_at(null(), 0, &mut oid, &mut val, &mut len),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_response_crl_at(null(), 0, &mut val, &mut len),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_response_root_ca_update(null(), null(), 0, &mut val, &mut len),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_response_cert_count(null(), CertList::GenpCaCerts as u32),
            0
        );
    }
}

unsafe extern "C" fn no_answer(
    _: *mut c_void,
    _: *const u8,
    _: usize,
    _: *mut cmpkit_buffer,
) -> i32 {
    1
}

#[test]
fn transaction_of_a_genm_waits_zero_then_minus_one_and_its_response_has_no_genp() {
    // SAFETY: valid handles; the callback ignores its arguments.
    unsafe {
        let (mut ctx, mut req, mut tx) = (null_mut(), null_mut(), null_mut());
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_request_new_genm_ca_certs(&mut req), ErrorCode::Ok);
        assert_eq!(cmpkit_transaction_start(ctx, req, &mut tx), ErrorCode::Ok);
        cmpkit_request_free(req);
        assert_eq!(cmpkit_transaction_wait_ms(tx), 0, "send the genm now");
        assert_eq!(
            cmpkit_transaction_feed(tx, [0x30u8, 0x00].as_ptr(), 2),
            ErrorCode::MalformedMessage
        );
        assert_eq!(cmpkit_transaction_wait_ms(tx), -1, "done");
        let mut rsp = null_mut();
        assert_eq!(cmpkit_transaction_response(tx, &mut rsp), ErrorCode::Ok);
        assert_eq!(cmpkit_response_genp_count(rsp), 0);
        assert_eq!(cmpkit_response_poll_rounds(rsp), 0);
        assert_eq!(
            cmpkit_response_cert_count(rsp, CertList::GenpCaCerts as u32),
            0
        );
        let (mut oid, mut val, mut len) = (null(), null(), 0usize);
        assert_eq!(
            cmpkit_response_genp_at(rsp, 0, &mut oid, &mut val, &mut len),
            ErrorCode::NotFound
        );
        assert_eq!(
            cmpkit_response_genp_at(rsp, 0, null_mut(), &mut val, &mut len),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_response_cert_at(rsp, CertList::GenpCaCerts as u32, 0, &mut val, &mut len),
            ErrorCode::NotFound
        );
        assert_eq!(
            cmpkit_response_crl_at(rsp, 0, &mut val, &mut len),
            ErrorCode::NotFound
        );
        let (root, _) = self_signed_pem();
        assert_eq!(
            cmpkit_response_root_ca_update(rsp, root.as_ptr(), root.len(), &mut val, &mut len),
            ErrorCode::NotFound
        );
        assert_eq!(
            cmpkit_response_root_ca_update(rsp, null(), 0, &mut val, &mut len),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_response_root_ca_update(rsp, root.as_ptr(), root.len(), null_mut(), &mut len),
            ErrorCode::NullArgument
        );
        assert!(val.is_null(), "out-params untouched on failure");
        cmpkit_response_free(rsp);
        cmpkit_transaction_free(tx);
        // execute over a failing transfer: no response for a genm either.
        let mut req = null_mut();
        assert_eq!(
            cmpkit_request_new_genm_key_pair_types(&mut req),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(no_answer), null_mut()),
            ErrorCode::Ok
        );
        let mut rsp = std::ptr::dangling_mut::<cmpkit_response>();
        assert_eq!(
            cmpkit_execute(ctx, req, &mut rsp),
            ErrorCode::TransferFailed
        );
        assert!(rsp.is_null());
        cmpkit_request_free(req);
        cmpkit_ctx_free(ctx);
    }
}

unsafe extern "C" fn refuse_decrypt(
    _: *mut c_void,
    _: *const u8,
    _: usize,
    _: *mut cmpkit_buffer,
) -> i32 {
    1
}

#[test]
fn central_keygen_requests_carry_no_key_and_no_pop_and_decrypt_settings_are_checked() {
    use cmpkit::asn1::{PkiBody, PkiMessage};
    use der::Decode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // SAFETY: valid handles from the library; buffers sized as passed.
    unsafe {
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        for kind in [0u32, KeyKind::EcP256 as u32, KeyKind::Rsa as u32] {
            let mut req = null_mut();
            assert_eq!(
                cmpkit_request_new_ir_central_keygen(kind, 0, &mut req),
                ErrorCode::Ok
            );
            assert_eq!(
                cmpkit_request_set_subject(req, c"/CN=keygen".as_ptr()),
                ErrorCode::Ok
            );
            let mut tx = null_mut();
            assert_eq!(cmpkit_transaction_start(ctx, req, &mut tx), ErrorCode::Ok);
            let (mut p, mut n) = (null(), 0usize);
            assert_eq!(
                cmpkit_transaction_request(tx, &mut p, &mut n),
                ErrorCode::Ok
            );
            let msg = PkiMessage::from_der(std::slice::from_raw_parts(p, n)).unwrap();
            let PkiBody::Ir(reqs) = &msg.body else {
                panic!("not an ir")
            };
            assert!(reqs[0].popo.is_none(), "no POP for a key the CA generates");
            let spki = reqs[0]
                .cert_req
                .cert_template
                .subject_public_key_info
                .as_ref();
            match kind {
                0 => assert!(spki.is_none(), "the CA chooses the algorithm"),
                _ => assert!(
                    spki.unwrap().subject_public_key.raw_bytes().is_empty(),
                    "algorithm only, empty key"
                ),
            }
            let mut rsp = null_mut();
            assert_eq!(cmpkit_transaction_response(tx, &mut rsp), ErrorCode::Ok);
            let mut len = 0usize;
            assert_eq!(
                cmpkit_response_private_key_pkcs8(rsp, null_mut(), 0, &mut len),
                ErrorCode::NotFound
            );
            cmpkit_response_free(rsp);
            cmpkit_transaction_free(tx);
            cmpkit_request_free(req);
        }
        assert_eq!(
            cmpkit_request_new_cr_central_keygen(99, 0, &mut null_mut()),
            ErrorCode::InvalidArgument
        );
        // Decryption settings: NULL callback refused; the finalizer runs once, on replacement.
        assert_eq!(
            cmpkit_ctx_set_decrypt_callback(ctx, None, null_mut(), None),
            ErrorCode::NullArgument
        );
        let freed = AtomicUsize::new(0);
        let ud = &freed as *const AtomicUsize as *mut c_void;
        assert_eq!(
            cmpkit_ctx_set_decrypt_callback(ctx, Some(refuse_decrypt), ud, Some(count_free)),
            ErrorCode::Ok
        );
        assert_eq!(freed.load(Ordering::SeqCst), 0);
        let mut key = null_mut();
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_decryption_key(ctx, key, b"junk".as_ptr(), 4),
            ErrorCode::BadCertificate
        );
        cmpkit_key_free(key);
        cmpkit_ctx_free(ctx);
        assert_eq!(
            freed.load(Ordering::SeqCst),
            1,
            "userdata released exactly once"
        );
    }
}

static CCR_SERVER: std::sync::OnceLock<cmpkit::server::Server> = std::sync::OnceLock::new();

unsafe extern "C" fn to_our_server(
    _: *mut c_void,
    req: *const u8,
    len: usize,
    rsp: *mut cmpkit_buffer,
) -> i32 {
    // SAFETY: the library passes a valid request buffer.
    let answer = CCR_SERVER
        .get()
        .unwrap()
        .process(unsafe { std::slice::from_raw_parts(req, len) });
    // SAFETY: `rsp` is the library's live buffer.
    (unsafe { cmpkit_buffer_append(rsp, answer.as_ptr(), answer.len()) }) as i32
}

#[test]
fn ccr_and_krr_from_c_are_answered_by_our_server() {
    use cmpkit::server::demo_ca::DemoCa;
    use cmpkit::server::{MemoryStore, Server, ServerConfig};
    use std::sync::Arc;
    CCR_SERVER.get_or_init(|| {
        let ca = Arc::new(DemoCa::generate().unwrap());
        let config = ServerConfig {
            signer: Some(ca.signer().unwrap()),
            secrets: Some(Arc::new(|kid: &[u8]| (kid == b"r").then(|| b"s".to_vec()))),
            ..ServerConfig::default()
        };
        Server::new(config, ca, Arc::new(MemoryStore::new())).unwrap()
    });
    // SAFETY: valid handles and callbacks.
    unsafe {
        let (mut ctx, mut key) = (null_mut(), null_mut());
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(to_our_server), null_mut()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        let mut ccr = null_mut();
        assert_eq!(cmpkit_request_new_ccr(key, &mut ccr), ErrorCode::Ok);
        assert_eq!(
            cmpkit_request_set_subject(ccr, c"/CN=Other CA".as_ptr()),
            ErrorCode::Ok
        );
        let mut rsp = null_mut();
        assert_eq!(
            cmpkit_execute(ctx, ccr, &mut rsp),
            ErrorCode::Ok,
            "{}",
            last_error()
        );
        let (mut der, mut len) = (null(), 0usize);
        assert_eq!(
            cmpkit_response_cert_der(rsp, &mut der, &mut len),
            ErrorCode::Ok
        );
        assert!(len > 100);
        cmpkit_response_free(rsp);
        // krr: the server answers krp with a new signature certificate (the demo CA archives
        // no keys, so none are recovered) and no certConf follows.
        let mut krr = null_mut();
        assert_eq!(cmpkit_request_new_krr(key, &mut krr), ErrorCode::Ok);
        assert_eq!(
            cmpkit_request_set_subject(krr, c"/CN=lost key".as_ptr()),
            ErrorCode::Ok
        );
        let mut rsp = null_mut();
        assert_eq!(
            cmpkit_execute(ctx, krr, &mut rsp),
            ErrorCode::Ok,
            "{}",
            last_error()
        );
        assert_eq!(cmpkit_response_status(rsp), 0, "accepted");
        assert_eq!(
            cmpkit_response_cert_der(rsp, &mut der, &mut len),
            ErrorCode::Ok
        );
        cmpkit_response_free(rsp);
        assert_eq!(
            cmpkit_request_new_krr(null(), &mut null_mut()),
            ErrorCode::NullArgument
        );
        cmpkit_request_free(ccr);
        cmpkit_request_free(krr);
        cmpkit_key_free(key);
        cmpkit_ctx_free(ctx);
    }
}

unsafe extern "C" fn collect_log(userdata: *mut c_void, level: u32, line: *const std::ffi::c_char) {
    // SAFETY: the test passes a Mutex<Vec<String>> that outlives the context; `line` is valid
    // during the call.
    let lines = unsafe { &*(userdata as *const std::sync::Mutex<Vec<String>>) };
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    lines.lock().unwrap().push(format!("{level} {text}"));
}

#[test]
fn log_callback_gets_each_message_up_to_its_level() {
    use cmpkit::server::demo_ca::DemoCa;
    use cmpkit::server::{MemoryStore, Server, ServerConfig};
    use std::sync::{Arc, Mutex};
    CCR_SERVER.get_or_init(|| {
        let ca = Arc::new(DemoCa::generate().unwrap());
        let config = ServerConfig {
            signer: Some(ca.signer().unwrap()),
            secrets: Some(Arc::new(|kid: &[u8]| (kid == b"r").then(|| b"s".to_vec()))),
            ..ServerConfig::default()
        };
        Server::new(config, ca, Arc::new(MemoryStore::new())).unwrap()
    });
    let lines = Mutex::new(Vec::<String>::new());
    // SAFETY: valid handles and callbacks; `lines` outlives the context.
    unsafe {
        let (mut ctx, mut req) = (null_mut(), null_mut());
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(to_our_server), null_mut()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_ctx_set_log(ctx, 9, Some(collect_log), null_mut()),
            ErrorCode::InvalidArgument
        );
        let ud = &lines as *const Mutex<Vec<String>> as *mut c_void;
        assert_eq!(
            cmpkit_ctx_set_log(ctx, 2, Some(collect_log), ud),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_request_new_genm_ca_certs(&mut req), ErrorCode::Ok);
        assert_eq!(cmpkit_execute(ctx, req, null_mut()), ErrorCode::Ok);
        cmpkit_request_free(req);
        cmpkit_ctx_free(ctx);
    }
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 2, "level 2: no 'sending' lines: {lines:?}");
    assert!(lines[0].starts_with("2 genm: received genp ("), "{lines:?}");
    assert_eq!(lines[1], "2 genm: finished: done");
}

#[test]
fn server_log_setter_checks_its_arguments_and_logs_a_refused_request() {
    use cmpkit::ffi::server::*;
    use cmpkit::ffi::server_config::*;
    use std::sync::Mutex;
    let lines = Mutex::new(Vec::<String>::new());
    let ud = &lines as *const Mutex<Vec<String>> as *mut c_void;
    // SAFETY: valid handles and callbacks; `lines` outlives the server.
    unsafe {
        assert_eq!(
            cmpkit_server_config_set_log(null_mut(), 1, Some(collect_log), ud),
            ErrorCode::NullArgument
        );
        let mut cfg = null_mut();
        assert_eq!(cmpkit_server_config_new(&mut cfg), ErrorCode::Ok);
        assert_eq!(
            cmpkit_server_config_set_log(cfg, 0, Some(collect_log), ud),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_server_config_set_log(cfg, 1, Some(collect_log), ud),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_server_config_set_central_keygen(null_mut(), 1),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_server_config_set_central_keygen(cfg, 3),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_server_config_set_central_keygen(cfg, 2),
            ErrorCode::Ok
        );
        let mut srv = null_mut();
        assert_eq!(cmpkit_server_new(cfg, null(), &mut srv), ErrorCode::Ok);
        cmpkit_server_config_free(cfg);
        let mut rsp = null_mut();
        let garbage = [0x30u8, 0x03, 0x02, 0x01, 0x02];
        assert_eq!(
            cmpkit_server_process(srv, garbage.as_ptr(), garbage.len(), &mut rsp),
            ErrorCode::Ok
        );
        cmpkit_bytes_free(rsp);
        cmpkit_server_free(srv);
    }
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("1 refused a request: size and DER check: "),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("[failInfo badDataFormat]"), "{lines:?}");
}

/// Keeps the request the library sent, then fails the transfer.
unsafe extern "C" fn capturing_transfer(
    seen: *mut c_void,
    req: *const u8,
    len: usize,
    _: *mut cmpkit_buffer,
) -> i32 {
    // SAFETY: the test passes a pointer to a live Vec; `req` is valid for `len` bytes.
    unsafe { *(seen as *mut Vec<u8>) = std::slice::from_raw_parts(req, len).to_vec() };
    1
}

/// The iteration count of the PBM or PBMAC1 protection of a request (DER).
fn mac_iterations(request: &[u8]) -> u64 {
    use cmpkit::asn1::{oid, Pbkdf2Params, PbmParameter, Pbmac1Params, PkiMessage};
    use der::{Decode, Encode};
    let msg = PkiMessage::from_der(request).unwrap();
    let alg = msg.header.protection_alg.unwrap();
    let params = alg.parameters.unwrap().to_der().unwrap();
    let count = if alg.oid == oid::PASSWORD_BASED_MAC {
        PbmParameter::from_der(&params).unwrap().iteration_count
    } else {
        assert_eq!(alg.oid, oid::PBMAC1);
        let kdf = Pbmac1Params::from_der(&params).unwrap().key_derivation_func;
        Pbkdf2Params::from_der(&kdf.parameters.unwrap().to_der().unwrap())
            .unwrap()
            .iteration_count
    };
    count
        .as_bytes()
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// Runs `req` on `ctx` (whose transfer is `capturing_transfer` writing to `seen`) and
/// returns the iteration count of the request that was sent.
///
/// # Safety
/// Live handles; `seen` is the userdata of the context's transfer.
unsafe fn sent_iterations(
    ctx: *mut cmpkit_ctx,
    req: *const cmpkit_request,
    seen: *mut Vec<u8>,
) -> u64 {
    // SAFETY: per the function's contract.
    unsafe {
        assert_eq!(
            cmpkit_execute(ctx, req, null_mut()),
            ErrorCode::TransferFailed
        );
        mac_iterations(&*seen)
    }
}

#[test]
fn mac_iterations_set_the_pbm_and_pbmac1_iteration_count() {
    // SAFETY: valid handles; `seen` outlives the context's use of it.
    unsafe {
        let (mut ctx, mut key, mut req) = (null_mut(), null_mut(), null_mut());
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_mac_iterations(null_mut(), 500),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_ctx_set_mac_iterations(ctx, 0),
            ErrorCode::InvalidArgument
        );
        assert!(last_error().contains("at least 1"), "{}", last_error());
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::Ok
        );
        let seen: *mut Vec<u8> = Box::into_raw(Box::default());
        assert_eq!(
            cmpkit_ctx_set_transfer(ctx, Some(capturing_transfer), seen.cast()),
            ErrorCode::Ok
        );
        assert_eq!(
            cmpkit_key_generate(KeyKind::EcP256 as u32, 0, &mut key),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
        assert_eq!(sent_iterations(ctx, req, seen), 10_000, "the default");
        assert_eq!(cmpkit_ctx_set_mac_iterations(ctx, 500), ErrorCode::Ok);
        assert_eq!(sent_iterations(ctx, req, seen), 500);
        assert_eq!(
            cmpkit_ctx_set_mac_alg(ctx, MacAlg::Pbmac1 as u32),
            ErrorCode::Ok
        );
        assert_eq!(sent_iterations(ctx, req, seen), 500, "PBMAC1 too");
        cmpkit_request_free(req);
        cmpkit_key_free(key);
        cmpkit_ctx_free(ctx);
        drop(Box::from_raw(seen));
    }
}
