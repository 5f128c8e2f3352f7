//! `cmpkit_request`: what to ask the CA for.

use super::key::cmpkit_key;
use super::util::{free_handle, guard, try_mut, try_ref, try_str, write_handle};
use crate::client::EnrollRequest;
use crate::error::{Error, ErrorCode, Result};
use crate::message::parse_name;
use std::ffi::c_char;
use x509_cert::ext::pkix::name::GeneralName;

/// A certificate request: the key to certify, subject and subjectAltNames.
///
/// Thread safety: use from one thread at a time; it may be freed right after use.
pub struct cmpkit_request {
    pub(crate) inner: EnrollRequest,
}

/// Create an initialization request (ir) to certify `key` (which also signs the proof of
/// possession). The request keeps its own reference to the key. The caller frees the request
/// with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_ir(
    key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live key handle.
        let key = unsafe { try_ref(key, "key") }?;
        let req = cmpkit_request {
            inner: EnrollRequest {
                subject: None,
                sans: Vec::new(),
                key: key.signer(),
            },
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_handle(out, req, "out") }
    })
}

/// Free a request (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_free(req: *mut cmpkit_request) {
    // SAFETY: NULL or a live request handle, freed once.
    unsafe { free_handle(req) };
}

fn on_request(
    req: *mut cmpkit_request,
    f: impl FnOnce(&mut EnrollRequest) -> Result<()>,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live request handle used by one thread.
        let r = unsafe { try_mut(req, "req") }?;
        f(&mut r.inner)
    })
}

/// Set the subject (`/CN=Device 1/O=Example` or `CN=Device 1,O=Example`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_set_subject(
    req: *mut cmpkit_request,
    subject: *const c_char,
) -> ErrorCode {
    on_request(req, |r| {
        // SAFETY: NUL-terminated string per the contract.
        r.subject = Some(parse_name(unsafe { try_str(subject, "subject") }?)?);
        Ok(())
    })
}

/// Kinds of subjectAltName entries for `cmpkit_request_add_san`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanKind {
    /// A DNS name (`device1.example.com`).
    Dns = 1,
    /// An IPv4 or IPv6 address in text form.
    Ip = 2,
    /// A URI.
    Uri = 3,
    /// An e-mail address (rfc822Name).
    Email = 4,
}

/// Add a subjectAltName entry of `kind` (a `cmpkit_san_kind`) with text `value`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_add_san(
    req: *mut cmpkit_request,
    kind: u32,
    value: *const c_char,
) -> ErrorCode {
    on_request(req, |r| {
        // SAFETY: NUL-terminated string per the contract.
        let v = unsafe { try_str(value, "value") }?;
        let ia5 = |s: &str| {
            der::asn1::Ia5String::new(s).map_err(|_| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("{s:?} is not an IA5 (ASCII) string"),
                )
            })
        };
        let name = match kind {
            1 => GeneralName::DnsName(ia5(v)?),
            2 => GeneralName::from(v.parse::<std::net::IpAddr>().map_err(|_| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("{v:?} is not an IP address"),
                )
            })?),
            3 => GeneralName::UniformResourceIdentifier(ia5(v)?),
            4 => GeneralName::Rfc822Name(ia5(v)?),
            k => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("unknown subjectAltName kind {k}"),
                ))
            }
        };
        r.sans.push(name);
        Ok(())
    })
}
