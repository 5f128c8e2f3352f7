//! Shared FFI plumbing: the panic guard, pointer and length checks, thread-local last error.
// Some helpers are only used once the handle-based API lands; keep clippy -D warnings green.

use crate::error::{Error, ErrorCode};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

thread_local! {
    /// Detail of the last failure on this thread, for calls that have no handle to keep it on.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Remember `e` as this thread's last error and return its code.
pub(crate) fn set_last_error(e: &Error) -> ErrorCode {
    let text = CString::new(e.to_string().replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(text));
    e.code
}

/// Run `f`, turning an `Err` into its code (recording the detail) and a panic into
/// [`ErrorCode::Internal`]. Every exported function body goes through this.
pub(crate) fn guard<F>(f: F) -> ErrorCode
where
    F: FnOnce() -> Result<(), Error>,
{
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => ErrorCode::Ok,
        Ok(Err(e)) => set_last_error(&e),
        Err(_) => set_last_error(&Error::new(
            ErrorCode::Internal,
            "internal error (panic caught at the C API boundary)",
        )),
    }
}

/// Borrow a `&T` from a handle pointer, or fail with [`ErrorCode::NullArgument`].
///
/// # Safety
/// `p` must be NULL or point to a live `T` not mutably aliased for the returned lifetime.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller guarantees `p` is NULL or valid; NULL is handled by `as_ref`.
    unsafe { p.as_ref() }
        .ok_or_else(|| Error::new(ErrorCode::NullArgument, format!("{name} is NULL")))
}

/// Borrow a `&mut T` from a handle pointer, or fail with [`ErrorCode::NullArgument`].
///
/// # Safety
/// `p` must be NULL or point to a live `T` not otherwise aliased for the returned lifetime.
pub(crate) unsafe fn try_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Error> {
    // SAFETY: the caller guarantees `p` is NULL or valid and unaliased.
    unsafe { p.as_mut() }
        .ok_or_else(|| Error::new(ErrorCode::NullArgument, format!("{name} is NULL")))
}

/// View `(ptr, len)` as a byte slice; NULL with a non-zero length is an error, NULL with zero
/// length is the empty slice.
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `len` bytes for the returned lifetime.
pub(crate) unsafe fn try_bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::new(
            ErrorCode::NullArgument,
            format!("{name} is NULL with length {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{name}: length {len} is too large"),
        ));
    }
    // SAFETY: non-NULL, length bounded, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Read a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for the returned lifetime.
pub(crate) unsafe fn try_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::new(
            ErrorCode::NullArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{name} is not valid UTF-8"),
        )
    })
}

/// Write `v` to an out-parameter.
///
/// # Safety
/// `out` must be NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, v: T, name: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::new(
            ErrorCode::NullArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { out.write(v) };
    Ok(())
}

/// Move `v` into a new handle and write it to `*out`. With a NULL `out` nothing is allocated
/// and `v` is dropped here (boxing first and then finding `out` NULL leaked the handle, and
/// for an external key skipped its `free_userdata`).
///
/// # Safety
/// `out` must be NULL or valid for a write of a pointer.
pub(crate) unsafe fn write_handle<T>(out: *mut *mut T, v: T, name: &str) -> Result<(), Error> {
    if out.is_null() {
        drop(v);
        return Err(Error::new(
            ErrorCode::NullArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { write_out(out, into_handle(v), name) }
}

/// Move a value into a new heap handle for C.
pub(crate) fn into_handle<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Free a handle made by [`into_handle`]; NULL is ignored; a panic in a destructor (e.g. a
/// caller's finalizer unwinding) is contained.
///
/// # Safety
/// `p` must be NULL or a pointer from `into_handle::<T>` not yet freed.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: produced by Box::into_raw in `into_handle` and not yet freed.
            drop(unsafe { Box::from_raw(p) });
        }));
    }
}

/// A C string owned by a handle, for getters that return `const char *`.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// The short stable name of a result code (e.g. `"mac-mismatch"`), or `"unknown"`.
///
/// The returned string is static; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn cmpkit_result_name(code: u32) -> *const c_char {
    let name: &'static CStr = match ErrorCode::from_u32(code) {
        Some(c) => c.c_name(),
        None => c"unknown",
    };
    name.as_ptr()
}

/// The detail of the last failure on the calling thread, or NULL if there was none.
///
/// Valid until the next cmpkit call on this thread; do not free it. Handles keep their own
/// detail too (e.g. `cmpkit_ctx_last_error`), which stays valid longer.
#[unsafe(no_mangle)]
pub extern "C" fn cmpkit_last_error() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}

/// Copy `data` into the caller's buffer (`buf`, capacity `cap`) and its length to `*len`.
/// If `buf` is NULL or too small, only `*len` is written and the result is
/// [`ErrorCode::BufferTooSmall`].
///
/// # Safety
/// `buf` must be NULL or writable for `cap` bytes; `len` must be NULL or writable.
pub(crate) unsafe fn copy_out(
    data: &[u8],
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Result<(), Error> {
    if len.is_null() {
        return Err(Error::new(ErrorCode::NullArgument, "len is NULL"));
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { len.write(data.len()) };
    if buf.is_null() || cap < data.len() {
        return Err(Error::new(
            ErrorCode::BufferTooSmall,
            format!("the buffer holds {cap} bytes, {} are needed", data.len()),
        ));
    }
    // SAFETY: `buf` has room for `data.len()` bytes (checked above) and does not overlap `data`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    Ok(())
}

/// Point `*ptr`/`*len` at borrowed bytes.
///
/// # Safety
/// `ptr` and `len` must be NULL or writable.
pub(crate) unsafe fn borrow_out(
    data: &[u8],
    ptr: *mut *const u8,
    len: *mut usize,
) -> Result<(), Error> {
    if ptr.is_null() || len.is_null() {
        return Err(Error::new(
            ErrorCode::NullArgument,
            "output pointer or length is NULL",
        ));
    }
    // SAFETY: both checked non-NULL and writable per the contract.
    unsafe {
        ptr.write(data.as_ptr());
        len.write(data.len());
    }
    Ok(())
}

/// [`guard`] for calls on a context: NULL check, and the failure's detail kept on the context.
///
/// `ctx` comes straight from a C caller, whose contract (stated in the header) is that it is
/// NULL or a live context handle used by one thread at a time.
pub(crate) fn guard_on<F>(ctx: *mut super::ctx::cmpkit_ctx, f: F) -> ErrorCode
where
    F: FnOnce(&mut super::ctx::cmpkit_ctx) -> Result<(), Error>,
{
    guard(|| {
        // SAFETY: the C API contract: NULL or a live, unaliased context handle.
        let c = unsafe { try_mut(ctx, "ctx") }?;
        f(c).inspect_err(|e| c.set_error(e))
    })
}

/// The plumbing on its own, without OpenSSL, so that it also runs under miri
/// (`cargo +nightly miri test --lib ffi::util`; see README, "Testing").
#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    #[test]
    fn copy_out_reports_the_size_and_copies_only_when_it_fits() {
        let data = [1u8, 2, 3, 4];
        let mut len = 0usize;
        // SAFETY: NULL buffer with capacity 0; `len` is writable.
        let e = unsafe { copy_out(&data, null_mut(), 0, &mut len) }.unwrap_err();
        assert_eq!((e.code, len), (ErrorCode::BufferTooSmall, 4));
        let mut small = [0u8; 3];
        // SAFETY: `small` holds 3 bytes.
        let e = unsafe { copy_out(&data, small.as_mut_ptr(), 3, &mut len) }.unwrap_err();
        assert_eq!((e.code, small), (ErrorCode::BufferTooSmall, [0; 3]));
        let mut buf = [0u8; 8];
        // SAFETY: `buf` holds 8 bytes.
        unsafe { copy_out(&data, buf.as_mut_ptr(), 8, &mut len) }.unwrap();
        assert_eq!((&buf[..4], len), (&data[..], 4));
        // SAFETY: NULL `len` is rejected before any write.
        let e = unsafe { copy_out(&data, buf.as_mut_ptr(), 8, null_mut()) }.unwrap_err();
        assert_eq!(e.code, ErrorCode::NullArgument);
        // Empty data into an empty, dangling-but-aligned buffer.
        // SAFETY: zero bytes are written.
        unsafe { copy_out(&[], std::ptr::NonNull::dangling().as_ptr(), 0, &mut len) }.unwrap();
        assert_eq!(len, 0);
    }

    #[test]
    fn borrow_out_points_at_the_data() {
        let data = vec![9u8; 5];
        let (mut p, mut len) = (null(), 0usize);
        // SAFETY: both out-params are writable.
        unsafe { borrow_out(&data, &mut p, &mut len) }.unwrap();
        // SAFETY: `p`/`len` describe `data`, alive here.
        assert_eq!(unsafe { std::slice::from_raw_parts(p, len) }, &data[..]);
        // SAFETY: NULL out-params are rejected.
        unsafe {
            assert!(borrow_out(&data, null_mut(), &mut len).is_err());
            assert!(borrow_out(&data, &mut p, null_mut()).is_err());
        }
    }

    #[test]
    fn try_bytes_and_try_str_check_null_length_and_utf8() {
        // SAFETY: NULL/len combinations the function must reject or map to empty.
        unsafe {
            assert_eq!(try_bytes(null(), 0, "b").unwrap(), &[] as &[u8]);
            assert_eq!(
                try_bytes(null(), 1, "b").unwrap_err().code,
                ErrorCode::NullArgument
            );
            let x = [7u8; 2];
            assert_eq!(
                try_bytes(x.as_ptr(), usize::MAX, "b").unwrap_err().code,
                ErrorCode::InvalidArgument
            );
            assert_eq!(try_bytes(x.as_ptr(), 2, "b").unwrap(), &x);
            assert_eq!(
                try_str(null(), "s").unwrap_err().code,
                ErrorCode::NullArgument
            );
            assert_eq!(try_str(c"ok".as_ptr(), "s").unwrap(), "ok");
            let bad = [0xffu8, 0];
            assert_eq!(
                try_str(bad.as_ptr().cast(), "s").unwrap_err().code,
                ErrorCode::InvalidArgument
            );
            let mut out = 0u32;
            write_out(&mut out, 5, "o").unwrap();
            assert_eq!(out, 5);
            assert!(write_out(null_mut::<u32>(), 5, "o").is_err());
        }
    }

    #[test]
    fn guard_turns_errors_and_panics_into_codes_and_a_last_error() {
        assert_eq!(guard(|| Ok(())), ErrorCode::Ok);
        assert_eq!(
            guard(|| Err(Error::new(ErrorCode::NotFound, "nope\0with nul"))),
            ErrorCode::NotFound
        );
        // SAFETY: the last error is a NUL-terminated string owned by this thread.
        let text = unsafe { CStr::from_ptr(cmpkit_last_error()) };
        assert!(text.to_str().unwrap().contains("nope with nul"));
        assert_eq!(guard(|| panic!("boom")), ErrorCode::Internal);
        // SAFETY: as above.
        let text = unsafe { CStr::from_ptr(cmpkit_last_error()) };
        assert!(text.to_str().unwrap().contains("panic caught"));
    }

    #[test]
    fn handles_round_trip_and_free_null() {
        let p = into_handle(String::from("handle"));
        // SAFETY: `p` is live until freed below, once.
        unsafe {
            assert_eq!(*p, "handle");
            free_handle(p);
            free_handle(null_mut::<String>());
        }
        struct PanicsOnDrop;
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("destructor");
            }
        }
        // SAFETY: freed once; the destructor's panic is contained.
        unsafe { free_handle(into_handle(PanicsOnDrop)) };
    }

    #[test]
    fn every_result_code_has_a_c_name() {
        for v in 0..1000u32 {
            let p = cmpkit_result_name(v);
            // SAFETY: static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(p) }.to_str().unwrap();
            match ErrorCode::from_u32(v) {
                Some(c) => assert_eq!(name, c.name()),
                None => assert_eq!(name, "unknown"),
            }
        }
    }
}
