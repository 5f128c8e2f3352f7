//! The C API's plumbing without OpenSSL (no key, no protection): NULL checks, bad lengths,
//! strings, the last-error slot, and handle life cycles. Written so it also runs under miri,
//! which cannot call OpenSSL: `cargo +nightly miri test --test ffi_plumbing` (README,
//! "Testing"); the contract tests that need keys are in tests/ffi_contract.rs.

use cmpkit::ffi::ctx::*;
use cmpkit::ffi::key::*;
use cmpkit::ffi::request::*;
use cmpkit::ffi::response::*;
use cmpkit::ffi::transaction::*;
use cmpkit::ffi::version::*;
use cmpkit::ffi::{cmpkit_last_error, cmpkit_result_name};
use cmpkit::ErrorCode;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn last_error() -> String {
    let p = cmpkit_last_error();
    assert!(!p.is_null());
    // SAFETY: library-owned C string, valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn null_handles_and_out_params_are_rejected() {
    // SAFETY: calling the C API with NULL pointers and consistent lengths.
    unsafe {
        assert_eq!(cmpkit_ctx_new(null_mut()), ErrorCode::NullArgument);
        assert_eq!(
            cmpkit_ctx_set_secret(null_mut(), b"s".as_ptr(), 1, b"r".as_ptr(), 1),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_ctx_set_recipient(null_mut(), null()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_ctx_add_trust_anchors(null_mut(), null(), 0),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_key_from_pem_or_der(null(), 3, &mut null_mut()),
            ErrorCode::NullArgument
        );
        assert!(last_error().contains("data is NULL with length 3"));
        assert_eq!(
            cmpkit_request_set_subject(null_mut(), c"/CN=x".as_ptr()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_transaction_start(null_mut(), null(), null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_transaction_request(null(), null_mut(), null_mut()),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_transaction_feed(null_mut(), null(), 0),
            ErrorCode::NullArgument
        );
        assert_eq!(cmpkit_transaction_result(null()), ErrorCode::NullArgument);
        assert_eq!(cmpkit_transaction_is_done(null()), 1);
        assert!(cmpkit_transaction_last_error(null()).is_null());
        assert_eq!(cmpkit_response_status(null()), -1);
        assert_eq!(cmpkit_response_fail_info(null()), 0);
        assert!(cmpkit_response_summary(null()).is_null());
        assert!(cmpkit_response_status_string(null()).is_null());
        assert_eq!(cmpkit_response_cert_count(null(), 1), 0);
        let mut len = 0usize;
        assert_eq!(
            cmpkit_response_cert_pem(null(), null_mut(), 0, &mut len),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_response_cert_at(null(), 1, 0, null_mut(), null_mut()),
            ErrorCode::NullArgument
        );
        assert!(cmpkit_ctx_last_error(null()).is_null());
        cmpkit_ctx_free(null_mut());
        cmpkit_key_free(null_mut());
        cmpkit_request_free(null_mut());
        cmpkit_response_free(null_mut());
        cmpkit_transaction_free(null_mut());
    }
}

#[test]
fn a_context_keeps_its_own_last_error_and_stays_usable() {
    // SAFETY: a live context used by this thread only, freed once.
    unsafe {
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        assert!(cmpkit_ctx_last_error(ctx).is_null());
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, null(), 4, b"ref".as_ptr(), 3),
            ErrorCode::NullArgument
        );
        let detail = CStr::from_ptr(cmpkit_ctx_last_error(ctx))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("NULL"), "{detail}");
        let bad_utf8 = [0xc3u8, 0x28, 0];
        assert_eq!(
            cmpkit_ctx_set_recipient(ctx, bad_utf8.as_ptr().cast()),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            cmpkit_ctx_set_recipient(ctx, c"/CN=CA/O=Example".as_ptr()),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_ctx_set_implicit_confirm(ctx, 1), ErrorCode::Ok);
        assert_eq!(cmpkit_ctx_set_max_message_size(ctx, 4096), ErrorCode::Ok);
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, b"secret".as_ptr(), 6, b"ref".as_ptr(), 3),
            ErrorCode::Ok
        );
        // No key was given: starting a transaction needs a request, which needs a key.
        assert_eq!(
            cmpkit_transaction_start(ctx, null(), &mut null_mut()),
            ErrorCode::NullArgument
        );
        cmpkit_ctx_free(ctx);
    }
}

#[test]
fn static_strings_are_nul_terminated() {
    for code in [0u32, 100, 200, 301, 600, 703, 9999] {
        // SAFETY: static C strings.
        let name = unsafe { CStr::from_ptr(cmpkit_result_name(code)) };
        assert!(!name.to_bytes().is_empty());
    }
    // SAFETY: a static C string.
    let v = unsafe { CStr::from_ptr(cmpkit_version()) }
        .to_str()
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert!(cmpkit_version_number() >= 100);
}
