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
