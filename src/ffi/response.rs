//! `cmpkit_response`: what the peer said — status, failInfo, statusString, certificates.

use super::util::{
    borrow_out, c_string, copy_out, free_handle, guard, try_bytes, try_ref, write_out,
};
use crate::asn1::genm::RootCaKeyUpdateContent;
use crate::asn1::oid;
use crate::client::Response;
use crate::crypto::cert::parse_pem_or_der;
use crate::error::{Error, ErrorCode};
use der::{Decode, Encode};
use std::ffi::{c_char, CString};

/// One genp InfoTypeAndValue as C sees it: the OID as text, the value as DER.
struct GenpEntry {
    oid: CString,
    value: Option<Vec<u8>>,
}

/// The outcome of a transaction. Immutable; may be read from several threads.
pub struct cmpkit_response {
    inner: Response,
    status_text: Option<CString>,
    summary: CString,
    genp: Vec<GenpEntry>,
    /// caCerts of a genp (empty if absent), or why they do not decode.
    ca_certs: Result<Vec<Vec<u8>>, Error>,
    /// crls of a genp (empty if absent), or why they do not decode.
    crls: Result<Vec<Vec<u8>>, Error>,
    /// newWithNew of a genp rootCaKeyUpdate, DER, as received (handed out once verified).
    new_root: Option<Vec<u8>>,
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
        let genp = inner
            .genp
            .iter()
            .map(|i| GenpEntry {
                oid: c_string(&i.oid.to_string()),
                value: i.value.as_ref().and_then(|v| v.to_der().ok()),
            })
            .collect();
        let ca_certs = inner.ca_certs().map(Option::unwrap_or_default);
        let crls = inner.crls().map(Option::unwrap_or_default);
        let new_root = inner
            .genp_value(&oid::IT_ROOT_CA_KEY_UPDATE)
            .and_then(|i| i.value.as_ref())
            .and_then(|v| v.to_der().ok())
            .and_then(|d| RootCaKeyUpdateContent::from_der(&d).ok())
            .and_then(|c| c.new_with_new.to_der().ok());
        cmpkit_response {
            inner,
            status_text,
            summary,
            genp,
            ca_certs,
            crls,
            new_root,
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
    /// extraCerts of the response (chain of the new certificate, the CA's own).
    ExtraCerts = 2,
    /// The CA certificates of a genp answering a caCerts genm (id-it-caCerts). Empty when the
    /// genp has no caCerts value; `cmpkit_response_cert_at` fails with
    /// `CMPKIT_RESULT_BAD_MESSAGE_CONTENT` if the value does not decode.
    GenpCaCerts = 3,
}

fn list(r: &cmpkit_response, which: u32) -> Result<&[Vec<u8>], Error> {
    match which {
        1 => Ok(&r.inner.ca_pubs),
        2 => Ok(&r.inner.extra_certs),
        3 => r.ca_certs.as_deref().map_err(Clone::clone),
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

/// How many pollRep messages arrived, i.e. how often the server said "not yet, ask again"
/// (0 without polling or for a NULL response).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_poll_rounds(rsp: *const cmpkit_response) -> u32 {
    let mut n = 0;
    guard(|| {
        // SAFETY: NULL or a live response handle.
        n = unsafe { try_ref(rsp, "rsp") }?.inner.poll_rounds;
        Ok(())
    });
    n
}

/// How many InfoTypeAndValues the genp held (0 for other responses or a NULL response).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_genp_count(rsp: *const cmpkit_response) -> usize {
    let mut n = 0;
    guard(|| {
        // SAFETY: NULL or a live response handle.
        n = unsafe { try_ref(rsp, "rsp") }?.genp.len();
        Ok(())
    });
    n
}

/// InfoTypeAndValue `index` of the genp: `*oid` gets its type as dotted text
/// (`"1.3.6.1.5.5.7.4.17"`), `*value`/`*value_len` its value as one DER element — NULL and 0
/// when it has no value (e.g. a server that echoes the request). Both borrowed until the
/// response is freed. `CMPKIT_RESULT_NOT_FOUND` if `index` is out of range.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_genp_at(
    rsp: *const cmpkit_response,
    index: usize,
    oid: *mut *const c_char,
    value: *mut *const u8,
    value_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let r = unsafe { try_ref(rsp, "rsp") }?;
        if oid.is_null() || value.is_null() || value_len.is_null() {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "oid, value or value_len is NULL",
            ));
        }
        let e = r.genp.get(index).ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("index {index} of {} genp values", r.genp.len()),
            )
        })?;
        // SAFETY: the out-params are checked non-NULL and writable per the contract.
        unsafe {
            write_out(oid, e.oid.as_ptr(), "oid")?;
            match &e.value {
                Some(v) => borrow_out(v, value, value_len),
                None => {
                    value.write(std::ptr::null());
                    value_len.write(0);
                    Ok(())
                }
            }
        }
    })
}

/// How many CRLs the genp holds (id-it-crls, the answer to a CRL update genm); 0 if none,
/// for other responses or a NULL response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_crl_count(rsp: *const cmpkit_response) -> usize {
    let mut n = 0;
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let r = unsafe { try_ref(rsp, "rsp") }?;
        n = r.crls.as_ref().map_or(0, Vec::len);
        Ok(())
    });
    n
}

/// CRL `index` of the genp as DER, borrowed until the response is freed.
/// `CMPKIT_RESULT_NOT_FOUND` if `index` is out of range, `CMPKIT_RESULT_BAD_MESSAGE_CONTENT`
/// if the genp's crls value does not decode.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_crl_at(
    rsp: *const cmpkit_response,
    index: usize,
    der: *mut *const u8,
    der_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let r = unsafe { try_ref(rsp, "rsp") }?;
        let crls = r.crls.as_ref().map_err(Clone::clone)?;
        let c = crls.get(index).ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("index {index} of {} CRLs", crls.len()),
            )
        })?;
        // SAFETY: out-params are NULL or writable.
        unsafe { borrow_out(c, der, der_len) }
    })
}

/// The new root CA certificate of a genp rootCaKeyUpdate (the answer to
/// `cmpkit_request_new_genm_root_ca_update`), verified against the root trusted now
/// (`old_root`, PEM or DER): newWithNew must be self-signed; newWithOld, if sent, must carry
/// the new key and verify with the old root's key; oldWithNew, if sent, must carry the old
/// key and verify with the new key. On success `*new_root`/`*new_root_len` point to
/// newWithNew as DER, borrowed until the response is freed.
///
/// `CMPKIT_RESULT_NOT_FOUND` when the genp has no update (no rootCaKeyUpdate value: the CA
/// has no new root); `CMPKIT_RESULT_ROOT_CA_UPDATE_INVALID` when a check fails.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_root_ca_update(
    rsp: *const cmpkit_response,
    old_root: *const u8,
    old_root_len: usize,
    new_root: *mut *const u8,
    new_root_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle; a buffer of `old_root_len` bytes.
        let (r, old) = unsafe {
            (
                try_ref(rsp, "rsp")?,
                try_bytes(old_root, old_root_len, "old_root")?,
            )
        };
        if new_root.is_null() || new_root_len.is_null() {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "new_root or new_root_len is NULL",
            ));
        }
        if old.is_empty() {
            return Err(Error::new(ErrorCode::InvalidArgument, "old_root is empty"));
        }
        let old = parse_pem_or_der(old)
            .map_err(|e| e.context("old_root"))?
            .remove(0);
        let update = r
            .inner
            .root_ca_key_update(&old)?
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "the genp has no root CA key update"))?;
        let raw = r
            .new_root
            .as_deref()
            .filter(|raw| *raw == update.new_with_new.as_slice())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Internal,
                    "the verified newWithNew differs from the received one",
                )
            })?;
        // SAFETY: out-params checked non-NULL; writable per the contract.
        unsafe { borrow_out(raw, new_root, new_root_len) }
    })
}

/// Write the centrally generated private key (PKCS#8 DER, RFC 9483 §4.1.6) into `buf`
/// (capacity `cap`); its length goes to `*len`. With `buf` NULL or too small:
/// `CMPKIT_RESULT_BUFFER_TOO_SMALL` and the needed size in `*len`; `NOT_FOUND` if the response
/// carries no private key. Wipe the buffer when done.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_response_private_key_pkcs8(
    rsp: *const cmpkit_response,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live response handle.
        let r = unsafe { try_ref(rsp, "rsp") }?;
        let key = r.inner.private_key_pkcs8.as_ref().ok_or_else(|| {
            Error::new(ErrorCode::NotFound, "the response carries no private key")
        })?;
        // SAFETY: `buf` NULL or writable for `cap` bytes; `len` NULL or writable.
        unsafe { copy_out(key.as_ref(), buf, cap, len) }
    })
}
