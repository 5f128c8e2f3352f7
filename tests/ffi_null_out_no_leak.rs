//! Regression: a constructor called with a NULL `out` allocated its handle first and then
//! failed with null-argument, leaking it (found by miri in tests/ffi_plumbing.rs:
//! `cmpkit_ctx_new(NULL)` leaked a 344-byte context). The handle is now dropped instead.
//! This test counts the Rust heap with a global allocator, so it catches the leak without
//! miri, for every constructor that takes `out` (OpenSSL's own heap is not counted).
//! One test in its own binary: no other thread allocates while it measures.

use cmpkit::ffi::ctx::*;
use cmpkit::ffi::key::*;
use cmpkit::ffi::request::*;
use cmpkit::ffi::transaction::*;
use cmpkit::ErrorCode;
use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Live Rust heap bytes that `f` leaves behind, measured on its second call (the first one
/// fills the thread's last-error slot and lazily initialized statics).
fn leaked_by(mut f: impl FnMut() -> ErrorCode) -> isize {
    assert_eq!(f(), ErrorCode::NullArgument);
    let before = LIVE.load(Ordering::Relaxed);
    assert_eq!(f(), ErrorCode::NullArgument);
    LIVE.load(Ordering::Relaxed) - before
}

#[test]
fn constructors_with_a_null_out_leak_nothing() {
    // SAFETY: the C API called as C would, with NULL out-parameters it must reject.
    unsafe {
        let mut key = null_mut();
        assert_eq!(cmpkit_key_generate(1, 0, &mut key), ErrorCode::Ok);
        let mut pem = vec![0u8; 4096];
        let mut len = 0usize;
        assert_eq!(
            cmpkit_key_private_key_pem(key, pem.as_mut_ptr(), pem.len(), &mut len),
            ErrorCode::Ok
        );
        pem.truncate(len);
        let mut ctx = null_mut();
        assert_eq!(cmpkit_ctx_new(&mut ctx), ErrorCode::Ok);
        let (s, r) = (b"secret", b"ref");
        assert_eq!(
            cmpkit_ctx_set_secret(ctx, s.as_ptr(), s.len(), r.as_ptr(), r.len()),
            ErrorCode::Ok
        );
        let mut req = null_mut();
        assert_eq!(cmpkit_request_new_ir(key, &mut req), ErrorCode::Ok);
        let mut tx = null_mut();
        assert_eq!(cmpkit_transaction_start(ctx, req, &mut tx), ErrorCode::Ok);

        let cases: Vec<(&str, isize)> = vec![
            ("cmpkit_ctx_new", leaked_by(|| cmpkit_ctx_new(null_mut()))),
            (
                "cmpkit_key_generate",
                leaked_by(|| cmpkit_key_generate(1, 0, null_mut())),
            ),
            (
                "cmpkit_key_from_pem_or_der",
                leaked_by(|| cmpkit_key_from_pem_or_der(pem.as_ptr(), pem.len(), null_mut())),
            ),
            (
                "cmpkit_request_new_ir",
                leaked_by(|| cmpkit_request_new_ir(key, null_mut())),
            ),
            (
                "cmpkit_transaction_response",
                leaked_by(|| cmpkit_transaction_response(tx, null_mut())),
            ),
        ];
        for (f, leaked) in &cases {
            println!("{f}(…, out = NULL): null-argument, {leaked} bytes left on the Rust heap");
        }
        for (f, leaked) in cases {
            assert_eq!(leaked, 0, "{f} with a NULL out leaks {leaked} bytes");
        }
        cmpkit_transaction_free(tx);
        cmpkit_request_free(req);
        cmpkit_ctx_free(ctx);
        cmpkit_key_free(key);
    }
}
