//! `cmpkit_response`: what the peer said — status, failInfo, statusString, certificates.

use super::util::{borrow_out, c_string, copy_out, free_handle, guard, try_ref};
use crate::client::Response;
use crate::error::{Error, ErrorCode};
use std::ffi::{c_char, CString};

/// The outcome of a transaction. Immutable; may be read from several threads.
pub struct cmpkit_response {
    inner: Response,
    status_text: Option<CString>,
    summary: CString,
}

impl cmpkit_response {
    pub(crate) fn new(inner: Response) -> Self {
        let status_text = inner
            .status
            .as_ref()
            .filter(|s| !s.texts.is_empty())
            .map(|s| c_string(&s.texts.join("; ")));
        let summary = c_string(&match &inner.status {
            Some(s) if inner.unprotected => format!("{s} (unprotected)"),
            Some(s) => s.to_string(),
            None => "no status".to_owned(),
        });
        cmpkit_response {
            inner,
            status_text,
            summary,
        }
    }
}

/// Free a response (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_free(rsp: *mut cmpkit_response) {
    // SAFETY: NULL or a live response handle, freed once.
    unsafe { free_handle(rsp) };
}

/// The peer's PKIStatus (0 accepted, 1 grantedWithMods, 2 rejection, 3 waiting, ...), or -1
/// if the peer gave none (or `rsp` is NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_status(rsp: *const cmpkit_response) -> i32 {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }
        .and_then(|r| r.inner.status.as_ref())
        .map_or(-1, |s| i32::from(s.status))
}

/// The peer's failInfo bits as a mask: bit `n` (`1u << n`) is PKIFailureInfo bit `n`
/// (badAlg = 0, badMessageCheck = 1, badRequest = 2, ..., badPOP = 9, ...). 0 if none.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_fail_info(rsp: *const cmpkit_response) -> u32 {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }
        .and_then(|r| r.inner.status.as_ref())
        .map_or(0, |s| s.fail_info)
}

/// The peer's statusString entries joined with "; ", or NULL if none. Borrowed until the
/// response is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_status_string(
    rsp: *const cmpkit_response,
) -> *const c_char {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }
        .and_then(|r| r.status_text.as_ref())
        .map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The whole verdict in words, e.g. `rejection (failInfo: badPOP): "key too weak"`.
/// Borrowed until the response is freed; NULL only if `rsp` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_summary(rsp: *const cmpkit_response) -> *const c_char {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }.map_or(std::ptr::null(), |r| r.summary.as_ptr())
}

/// Whether the server granted implicit confirmation (1) or not (0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_implicit_confirm_granted(
    rsp: *const cmpkit_response,
) -> i32 {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }.is_some_and(|r| r.inner.implicit_confirm_granted) as i32
}

/// The issued certificate of a response handle.
///
/// # Safety
/// `rsp` must be NULL or a live response handle.
unsafe fn certificate<'a>(rsp: *const cmpkit_response) -> Result<&'a [u8], Error> {
    // SAFETY: per this function's contract.
    let r = unsafe { try_ref(rsp, "rsp") }?;
    r.inner
        .certificate
        .as_deref()
        .ok_or_else(|| Error::new(ErrorCode::NotFound, "the response has no certificate"))
}

/// The issued certificate as DER. Borrowed until the response is freed.
/// `CMPKIT_RESULT_NOT_FOUND` if there is none.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_cert_der(
    rsp: *const cmpkit_response,
    der: *mut *const u8,
    der_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let c = unsafe { certificate(rsp) }?;
        // SAFETY: out-params are NULL or writable.
        unsafe { borrow_out(c, der, der_len) }
    })
}

/// Write the issued certificate as PEM into `buf` (capacity `cap`); its length goes to `*len`.
/// With `buf` NULL or too small: `CMPKIT_RESULT_BUFFER_TOO_SMALL` and the needed size in `*len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_cert_pem(
    rsp: *const cmpkit_response,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let c = unsafe { certificate(rsp) }?;
        let pem = openssl::x509::X509::from_der(c)?.to_pem()?;
        // SAFETY: `buf` NULL or writable for `cap` bytes; `len` NULL or writable.
        unsafe { copy_out(&pem, buf, cap, len) }
    })
}

/// Which certificate list of a response to read.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertList {
    /// caPubs: CA certificates the CA suggests trusting (from ip).
    CaPubs = 1,
    /// extraCerts of the certificate response (chain of the new certificate, the CA's own).
    ExtraCerts = 2,
}

fn list(r: &cmpkit_response, which: u32) -> Result<&[Vec<u8>], Error> {
    match which {
        1 => Ok(&r.inner.ca_pubs),
        2 => Ok(&r.inner.extra_certs),
        w => Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("unknown certificate list {w}"),
        )),
    }
}

/// How many certificates the list `which` (a `cmpkit_cert_list`) holds; 0 for a NULL response
/// or an unknown list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_cert_count(
    rsp: *const cmpkit_response,
    which: u32,
) -> usize {
    // SAFETY: NULL or a live response handle.
    unsafe { rsp.as_ref() }
        .and_then(|r| list(r, which).ok())
        .map_or(0, |l| l.len())
}

/// Certificate `index` of list `which` as DER, borrowed until the response is freed.
/// `CMPKIT_RESULT_NOT_FOUND` if `index` is out of range.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_cert_at(
    rsp: *const cmpkit_response,
    which: u32,
    index: usize,
    der: *mut *const u8,
    der_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let r = unsafe { try_ref(rsp, "rsp") }?;
        let l = list(r, which)?;
        let c = l.get(index).ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("index {index} of {} certificates", l.len()),
            )
        })?;
        // SAFETY: out-params are NULL or writable.
        unsafe { borrow_out(c, der, der_len) }
    })
}
