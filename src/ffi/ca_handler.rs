//! `cmpkit_ca_handler`: a CA whose decisions are C code. The C side sees each certificate
//! request (`cmpkit_cert_request_info`) or revocation (`cmpkit_revocation_info`) and answers
//! through a `cmpkit_decision`: delegate to the built-in CA (the default), issue its own
//! certificate, reject, or wait.

use super::util::{borrow_out, c_string, guard, try_bytes, try_mut, try_ref, try_str};
use crate::asn1::InfoTypeAndValue;
use crate::error::{Error, ErrorCode};
use crate::message::fail_info as fi;
use crate::server::demo_ca::DemoCa;
use crate::server::{
    CaHandler, CertRequestInfo, Decision, Issued, Rejection, Requester, RevocationRequest,
};
use der::Decode;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use x509_cert::name::Name;

/// Decides on a certificate request: read `info`, answer with `cmpkit_decision_issue`,
/// `_reject`, `_waiting` or `_delegate` (the default if none is called). Return 0; non-zero
/// means the handler failed and the request is rejected with failInfo systemFailure.
pub type cmpkit_cert_request_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        info: *const cmpkit_cert_request_info,
        decision: *mut cmpkit_decision,
    ) -> i32,
>;

/// Decides on a revocation: `cmpkit_decision_accept` (revoked), `_reject`, or `_delegate`
/// (the default: the built-in CA revokes it if it issued it). Return 0; non-zero rejects
/// with systemFailure.
pub type cmpkit_revoke_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        info: *const cmpkit_revocation_info,
        decision: *mut cmpkit_decision,
    ) -> i32,
>;

/// Told whether an issued certificate (DER) was confirmed (`accepted` 1: certConf or
/// implicit confirmation) or not (0); the transaction is identified by its transactionID.
pub type cmpkit_cert_confirm_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        transaction_id: *const u8,
        transaction_id_len: usize,
        cert: *const u8,
        cert_len: usize,
        accepted: i32,
    ),
>;

/// A CA handler as a function table. Any callback may be NULL (then the built-in CA
/// decides). The callbacks are called from the server's worker threads, possibly at the
/// same time (serialize in the callbacks if needed, or listen with one worker);
/// `userdata` must stay valid until the server and all its listeners are freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmpkit_ca_handler {
    /// Passed to every callback.
    pub userdata: *mut c_void,
    /// Certificate requests (ir, cr, kur, p10cr, ccr), also asked again on each pollReq
    /// after a "waiting".
    pub certificate_request: cmpkit_cert_request_fn,
    /// Revocation requests (rr).
    pub revoke: cmpkit_revoke_fn,
    /// Outcome of an issued certificate.
    pub cert_confirm: cmpkit_cert_confirm_fn,
}

/// A text of a callback's info, made when the callback first asks for it (most callbacks
/// look at few of them, and formatting names is not cheap).
type LazyText = OnceLock<Option<CString>>;

/// The text in `cell`, made by `make` on first use: NULL if there is none (or, which a
/// panic must not reach C, if making it panicked).
fn lazy_text(cell: &LazyText, make: impl FnOnce() -> Option<CString>) -> *const c_char {
    catch_unwind(AssertUnwindSafe(|| {
        cell.get_or_init(make)
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr())
    }))
    .unwrap_or(std::ptr::null())
}

/// The RFC 4514 text of the name formatted last, kept: revocations mostly name the same
/// issuer (the CA's own), and formatting a name is slow (x509-cert looks the name of each
/// attribute up in a long list).
#[derive(Default)]
pub(crate) struct LastName(Mutex<Option<(Name, CString)>>);

impl LastName {
    fn text(&self, name: &Name) -> CString {
        let last = |l: &Option<(Name, CString)>| {
            l.as_ref()
                .filter(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
        };
        if let Some(t) = self.0.lock().ok().and_then(|l| last(&l)) {
            return t;
        }
        let text = c_string(&name.to_string());
        if let Ok(mut l) = self.0.lock() {
            *l = Some((name.clone(), text.clone()));
        }
        text
    }
}

/// An authenticated certificate request with verified proof of possession, as the C
/// handler sees it. Borrowed for the duration of the callback.
pub struct cmpkit_cert_request_info<'a> {
    req: &'a CertRequestInfo,
    subject: LazyText,
    common_name: LazyText,
    requester: LazyText,
}

/// A revocation request as the C handler sees it. Borrowed for the duration of the callback.
pub struct cmpkit_revocation_info<'a> {
    req: &'a RevocationRequest,
    issuer: LazyText,
    requester: LazyText,
    last_issuer: &'a LastName,
}

enum Answer {
    Delegate,
    Issue(Vec<u8>),
    Reject(u32, String),
    Waiting,
    Accept,
}

/// The handler's answer, set with the `cmpkit_decision_*` functions during the callback.
pub struct cmpkit_decision {
    for_revocation: bool,
    answer: Answer,
}

fn requester_text(r: &Requester) -> CString {
    c_string(&match r {
        Requester::Mac { sender_kid } => format!("mac:{}", String::from_utf8_lossy(sender_kid)),
        Requester::Signature { cert_der } => match x509_cert::Certificate::from_der(cert_der) {
            Ok(c) => format!("cert:{}", c.tbs_certificate().subject()),
            Err(_) => "cert:?".to_owned(),
        },
    })
}

/// The first commonName of `name` as UTF-8, as OpenSSL reads it (which this replaced):
/// UTF8String as is (if valid), BMPString from UCS-2, Numeric-, Printable-, Teletex- and
/// IA5String from Latin-1; `None` for other types and invalid values. (OpenSSL also gave
/// `None` when another attribute of the name held an unreadable string.)
fn common_name(name: &Name) -> Option<String> {
    use der::{Tag, Tagged};
    let value = &name
        .iter()
        .find(|a| a.oid == const_oid::db::rfc4519::COMMON_NAME)?
        .value;
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String => String::from_utf8(bytes.to_vec()).ok(),
        Tag::NumericString | Tag::PrintableString | Tag::TeletexString | Tag::Ia5String => {
            Some(bytes.iter().map(|&b| char::from(b)).collect())
        }
        Tag::BmpString if bytes.len() % 2 == 0 => bytes
            .chunks_exact(2)
            .map(|c| char::from_u32(u32::from(u16::from_be_bytes([c[0], c[1]]))))
            .collect(),
        _ => None,
    }
}

/// The [`CaHandler`] that calls the C function table, with the built-in CA behind it.
pub(crate) struct CHandler {
    pub(crate) table: cmpkit_ca_handler,
    pub(crate) ca: Arc<DemoCa>,
    /// The issuer text of the last revocation asked for it.
    pub(crate) last_issuer: LastName,
}

// SAFETY: the C caller promises (header documentation of cmpkit_ca_handler) that the
// callbacks may be called from any thread, concurrently, and that userdata stays valid.
unsafe impl Send for CHandler {}
// SAFETY: as above.
unsafe impl Sync for CHandler {}

fn failed() -> Rejection {
    Rejection::new(fi::SYSTEM_FAILURE, "the CA handler failed")
}

impl CaHandler for CHandler {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        let Some(f) = self.table.certificate_request else {
            return self.ca.certificate_request(req);
        };
        let info = cmpkit_cert_request_info {
            req,
            subject: LazyText::new(),
            common_name: LazyText::new(),
            requester: LazyText::new(),
        };
        let mut d = cmpkit_decision {
            for_revocation: false,
            answer: Answer::Delegate,
        };
        // SAFETY: a C callback given by the caller; both pointers live for the call.
        let rc = unsafe { f(self.table.userdata, &info, &mut d) };
        if rc != 0 {
            return Decision::Reject(failed());
        }
        match d.answer {
            Answer::Delegate | Answer::Accept => self.ca.certificate_request(req),
            Answer::Issue(cert) => Decision::Issue(Issued {
                cert,
                ca_pubs: Vec::new(),
                chain: Vec::new(),
            }),
            Answer::Reject(fail_info, text) => Decision::Reject(Rejection { fail_info, text }),
            Answer::Waiting => Decision::Waiting,
        }
    }

    fn cert_confirm(&self, transaction_id: &[u8], cert_der: &[u8], accepted: bool) {
        if let Some(f) = self.table.cert_confirm {
            // SAFETY: a C callback given by the caller; the buffers live for the call.
            unsafe {
                f(
                    self.table.userdata,
                    transaction_id.as_ptr(),
                    transaction_id.len(),
                    cert_der.as_ptr(),
                    cert_der.len(),
                    i32::from(accepted),
                )
            };
        }
        self.ca.cert_confirm(transaction_id, cert_der, accepted);
    }

    fn revoke(&self, req: &RevocationRequest) -> Result<(), Rejection> {
        let Some(f) = self.table.revoke else {
            return self.ca.revoke(req);
        };
        let info = cmpkit_revocation_info {
            req,
            issuer: LazyText::new(),
            requester: LazyText::new(),
            last_issuer: &self.last_issuer,
        };
        let mut d = cmpkit_decision {
            for_revocation: true,
            answer: Answer::Delegate,
        };
        // SAFETY: a C callback given by the caller; both pointers live for the call.
        let rc = unsafe { f(self.table.userdata, &info, &mut d) };
        if rc != 0 {
            return Err(failed());
        }
        match d.answer {
            Answer::Accept => Ok(()),
            Answer::Reject(fail_info, text) => Err(Rejection { fail_info, text }),
            _ => self.ca.revoke(req),
        }
    }

    fn general_message(
        &self,
        itavs: &[InfoTypeAndValue],
        requester: &Requester,
    ) -> Vec<InfoTypeAndValue> {
        self.ca.general_message(itavs, requester)
    }
}

/// The kind of request: its PKIBody tag, 0 ir, 2 cr, 4 p10cr, 7 kur, 13 ccr (0 if `info`
/// is NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_kind(
    info: *const cmpkit_cert_request_info,
) -> u32 {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(0, |i| u32::from(i.req.kind.tag()))
}

/// 0 for the request itself, n when asked again on the n-th pollReq after "waiting".
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_polls(
    info: *const cmpkit_cert_request_info,
) -> u32 {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(0, |i| i.req.polls)
}

/// The requested subject as an RFC 4514 string (e.g. `CN=device-1,O=Example`), or NULL if
/// the request has none. Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_subject(
    info: *const cmpkit_cert_request_info,
) -> *const c_char {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |i| {
        lazy_text(&i.subject, || {
            i.req.subject.as_ref().map(|n| c_string(&n.to_string()))
        })
    })
}

/// The first commonName of the requested subject, or NULL. Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_common_name(
    info: *const cmpkit_cert_request_info,
) -> *const c_char {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |i| {
        lazy_text(&i.common_name, || {
            i.req
                .subject
                .as_ref()
                .and_then(common_name)
                .map(|s| c_string(&s))
        })
    })
}

/// Who sent the request: `mac:REFERENCE` or `cert:SUBJECT` (signature). Borrowed for the
/// callback; NULL only if `info` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_requester(
    info: *const cmpkit_cert_request_info,
) -> *const c_char {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |i| {
        lazy_text(&i.requester, || Some(requester_text(&i.req.requester)))
    })
}

/// The public key to certify (SubjectPublicKeyInfo DER). Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_public_key_der(
    info: *const cmpkit_cert_request_info,
    der: *mut *const u8,
    der_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or the live info; out-params NULL or writable.
        let i = unsafe { try_ref(info, "info") }?;
        unsafe { borrow_out(&i.req.public_key, der, der_len) }
    })
}

/// The transactionID. Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_cert_request_info_transaction_id(
    info: *const cmpkit_cert_request_info,
    id: *mut *const u8,
    id_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or the live info; out-params NULL or writable.
        let i = unsafe { try_ref(info, "info") }?;
        unsafe { borrow_out(&i.req.transaction_id, id, id_len) }
    })
}

/// The issuer of the certificate to revoke (RFC 4514 string). Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_revocation_info_issuer(
    info: *const cmpkit_revocation_info,
) -> *const c_char {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |i| {
        lazy_text(&i.issuer, || Some(i.last_issuer.text(&i.req.issuer)))
    })
}

/// The serial number to revoke (the INTEGER's content octets). Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_revocation_info_serial(
    info: *const cmpkit_revocation_info,
    serial: *mut *const u8,
    serial_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or the live info; out-params NULL or writable.
        let i = unsafe { try_ref(info, "info") }?;
        unsafe { borrow_out(&i.req.serial, serial, serial_len) }
    })
}

/// The CRLReason code of the request, or -1 if none was given.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_revocation_info_reason(info: *const cmpkit_revocation_info) -> i32 {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(-1, |i| i.req.reason.map_or(-1, i32::from))
}

/// Who sent the request: `mac:REFERENCE` or `cert:SUBJECT`. Borrowed for the callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_revocation_info_requester(
    info: *const cmpkit_revocation_info,
) -> *const c_char {
    // SAFETY: NULL or the live info of the running callback.
    unsafe { info.as_ref() }.map_or(std::ptr::null(), |i| {
        lazy_text(&i.requester, || Some(requester_text(&i.req.requester)))
    })
}

fn decide(
    decision: *mut cmpkit_decision,
    f: impl FnOnce(&mut cmpkit_decision) -> Result<Answer, Error>,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or the live decision of the running callback.
        let d = unsafe { try_mut(decision, "decision") }?;
        d.answer = f(d)?;
        Ok(())
    })
}

fn only_for_requests(d: &cmpkit_decision, what: &str) -> Result<(), Error> {
    if d.for_revocation {
        return Err(Error::new(
            ErrorCode::InvalidState,
            format!("{what} answers a certificate request, not a revocation"),
        ));
    }
    Ok(())
}

/// Let the built-in CA decide (the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_decision_delegate(decision: *mut cmpkit_decision) -> ErrorCode {
    decide(decision, |_| Ok(Answer::Delegate))
}

/// Issue this certificate (DER), made by the caller's own CA; it must certify the requested
/// public key (the server sends it as is). Certificate requests only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_decision_issue(
    decision: *mut cmpkit_decision,
    cert: *const u8,
    cert_len: usize,
) -> ErrorCode {
    decide(decision, |d| {
        only_for_requests(d, "cmpkit_decision_issue")?;
        // SAFETY: a buffer of `cert_len` bytes per the contract.
        let der = unsafe { try_bytes(cert, cert_len, "cert") }?;
        x509_cert::Certificate::from_der(der).map_err(|e| {
            Error::new(
                ErrorCode::BadCertificate,
                format!("not a DER certificate: {e}"),
            )
        })?;
        Ok(Answer::Issue(der.to_vec()))
    })
}

/// Refuse: `fail_info` is a PKIFailureInfo mask (bit n = `1u << n`, e.g. badCertTemplate
/// = `1u << 19`; 0 gives badRequest), `text` (may be NULL) goes into statusString.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_decision_reject(
    decision: *mut cmpkit_decision,
    fail_info: u32,
    text: *const c_char,
) -> ErrorCode {
    decide(decision, |_| {
        let text = if text.is_null() {
            "rejected by the CA".to_owned()
        } else {
            // SAFETY: a NUL-terminated string per the contract.
            unsafe { try_str(text, "text") }?.to_owned()
        };
        let mask = if fail_info == 0 {
            1 << fi::BAD_REQUEST
        } else {
            fail_info
        };
        Ok(Answer::Reject(mask, text))
    })
}

/// Not decided yet: the client polls, and the handler is asked again on each pollReq.
/// Certificate requests only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_decision_waiting(decision: *mut cmpkit_decision) -> ErrorCode {
    decide(decision, |d| {
        only_for_requests(d, "cmpkit_decision_waiting")?;
        Ok(Answer::Waiting)
    })
}

/// The certificate is revoked (by the caller's own CA). Revocations only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_decision_accept(decision: *mut cmpkit_decision) -> ErrorCode {
    decide(decision, |d| {
        if !d.for_revocation {
            return Err(Error::new(
                ErrorCode::InvalidState,
                "cmpkit_decision_accept answers a revocation; use cmpkit_decision_issue or _delegate",
            ));
        }
        Ok(Answer::Accept)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Any, SetOfVec};
    use der::{Encode, Tag};
    use std::ffi::CStr;
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

    /// A name of RDNs, each of (attribute OID, value tag, value bytes).
    fn name(rdns: &[&[(&str, Tag, &[u8])]]) -> Name {
        let rdns: Vec<RelativeDistinguishedName> = rdns
            .iter()
            .map(|atvs| {
                let set: Vec<_> = atvs
                    .iter()
                    .map(|(oid, tag, v)| AttributeTypeAndValue {
                        oid: oid.parse().unwrap(),
                        value: Any::new(*tag, v.to_vec()).unwrap(),
                    })
                    .collect();
                SetOfVec::try_from(set).unwrap().into()
            })
            .collect();
        Name::from_der(&RdnSequence::from(rdns).to_der().unwrap()).unwrap()
    }

    /// The first commonName as OpenSSL reads it (what the accessor used before).
    fn openssl_common_name(name: &Name) -> Option<String> {
        let n = openssl::x509::X509Name::from_der(&name.to_der().ok()?).ok()?;
        let e = n.entries_by_nid(openssl::nid::Nid::COMMONNAME).next()?;
        e.data().to_string().ok()
    }

    #[test]
    fn common_name_reads_every_string_type_as_openssl_does() {
        const CN: &str = "2.5.4.3";
        const O: &str = "2.5.4.10";
        let org: (&str, Tag, &[u8]) = (O, Tag::Utf8String, b"Example");
        let values: &[(Tag, &[u8])] = &[
            (Tag::Utf8String, "Gerät 1".as_bytes()),
            (Tag::Utf8String, b"nul\0inside"),
            (Tag::Utf8String, b"\xff bad"),
            (Tag::PrintableString, b"device 1"),
            (Tag::TeletexString, b"M\xfcller"),
            (Tag::Ia5String, b"a@example.com"),
            (Tag::NumericString, b"12345"),
            (Tag::BmpString, b"\x00A\x03\xa9"),
            (Tag::BmpString, b"\x00A\x00"),
            (Tag::BmpString, b"\xd8\x00\xdc\x00"),
            (Tag::VisibleString, b"visible"),
            (Tag::UtcTime, b"250101000000Z"),
            (Tag::GeneralizedTime, b"20250101000000Z"),
            (Tag::OctetString, b"\x01\x02"),
        ];
        for &(tag, v) in values {
            for n in [
                name(&[&[(CN, tag, v)]]),
                name(&[&[org], &[(CN, tag, v)], &[(CN, Tag::Utf8String, b"second")]]),
                name(&[&[org, (CN, tag, v)]]),
            ] {
                assert_eq!(common_name(&n), openssl_common_name(&n), "{tag:?} {v:?}");
            }
        }
        assert_eq!(
            common_name(&name(&[&[(CN, Tag::TeletexString, b"M\xfcller")]])).as_deref(),
            Some("Müller")
        );
        let no_cn = name(&[&[org]]);
        assert_eq!(common_name(&no_cn), None);
        assert_eq!(openssl_common_name(&no_cn), None);
    }

    #[test]
    fn the_last_issuer_text_is_kept_and_used_for_that_name_only() {
        let last = LastName::default();
        let (a, b) = (
            crate::message::parse_name("CN=CA 1,O=Example").unwrap(),
            crate::message::parse_name("CN=CA 2").unwrap(),
        );
        for (name, text) in [
            (&a, "CN=CA 1,O=Example"),
            (&a, "CN=CA 1,O=Example"),
            (&b, "CN=CA 2"),
        ] {
            assert_eq!(last.text(name).to_str(), Ok(text));
            assert_eq!(last.0.lock().unwrap().as_ref().map(|(n, _)| n), Some(name));
        }
    }

    #[test]
    fn revocation_texts_are_made_when_first_asked_for_and_kept() {
        let req = RevocationRequest {
            issuer: crate::message::parse_name("CN=Issuing CA,O=Example").unwrap(),
            serial: vec![0x01, 0x02],
            reason: Some(1),
            requester: Requester::Mac {
                sender_kid: b"kid".to_vec(),
            },
        };
        let last_issuer = LastName::default();
        let info = cmpkit_revocation_info {
            req: &req,
            issuer: LazyText::new(),
            requester: LazyText::new(),
            last_issuer: &last_issuer,
        };
        // SAFETY: `info` lives across the calls, as during a callback.
        unsafe {
            let issuer = cmpkit_revocation_info_issuer(&info);
            assert_eq!(info.requester.get(), None, "not asked for, not made");
            assert_eq!(
                CStr::from_ptr(issuer).to_str().unwrap(),
                "CN=Issuing CA,O=Example"
            );
            assert_eq!(cmpkit_revocation_info_issuer(&info), issuer, "made once");
            assert_eq!(
                CStr::from_ptr(cmpkit_revocation_info_requester(&info)).to_str(),
                Ok("mac:kid")
            );
            assert_eq!(cmpkit_revocation_info_reason(&info), 1);
            assert!(cmpkit_revocation_info_issuer(std::ptr::null()).is_null());
        }
    }
}
