//! `cmpkit_request`: what to ask the CA for — any client operation (ir, cr, kur, p10cr, rr,
//! genm).

use super::key::cmpkit_key;
use super::util::{
    free_handle, guard, into_handle, try_bytes, try_mut, try_ref, try_str, write_out,
};
use crate::asn1::genm::{CrlSource, CrlStatus};
use crate::asn1::{CmpCertificate, InfoTypeAndValue};
use crate::client::{genm, EnrollRequest, KeygenRequest, Operation};
use crate::crypto::cert::parse_pem_or_der;
use crate::crypto::Signer;
use crate::error::{Error, ErrorCode, Result};
use crate::message::parse_name;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Reader};
use openssl::pkey::PKey;
use openssl::x509::X509;
use std::ffi::c_char;
use std::sync::Arc;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// What a request handle asks for: an [`Operation`] kept in a form that can be started more
/// than once (each start gets its own copy).
pub(crate) enum RequestOp {
    Ir(EnrollRequest),
    Cr(EnrollRequest),
    Kur {
        request: EnrollRequest,
        old_cert: CmpCertificate,
        old_key: Option<Arc<dyn Signer>>,
    },
    P10cr(Vec<u8>),
    Rr {
        cert: CmpCertificate,
        reason: Option<u8>,
        key: Option<Arc<dyn Signer>>,
    },
    Genm(Vec<InfoTypeAndValue>),
    /// Key recovery request.
    Krr(EnrollRequest),
    /// Cross-certification request.
    Ccr(EnrollRequest),
    /// ir (`cr == false`) or cr with central key generation.
    Keygen {
        cr: bool,
        request: KeygenRequest,
    },
}

fn copy_enroll(r: &EnrollRequest) -> EnrollRequest {
    EnrollRequest {
        subject: r.subject.clone(),
        sans: r.sans.clone(),
        key: Arc::clone(&r.key),
    }
}

impl RequestOp {
    /// A fresh [`Operation`] for one transaction (named certificates are shared, not copied).
    pub(crate) fn operation(&self) -> Operation {
        match self {
            RequestOp::Ir(r) => Operation::Ir(copy_enroll(r)),
            RequestOp::Cr(r) => Operation::Cr(copy_enroll(r)),
            RequestOp::Kur {
                request,
                old_cert,
                old_key,
            } => Operation::Kur {
                request: copy_enroll(request),
                old_cert: old_cert.clone(),
                old_key: old_key.clone(),
            },
            RequestOp::P10cr(csr) => Operation::P10cr {
                csr_der: csr.clone(),
            },
            RequestOp::Rr { cert, reason, key } => Operation::Rr {
                cert: cert.clone(),
                reason: *reason,
                key: key.clone(),
            },
            RequestOp::Genm(itavs) => Operation::Genm(itavs.clone()),
            RequestOp::Krr(r) => Operation::Krr(copy_enroll(r)),
            RequestOp::Ccr(r) => Operation::Ccr(copy_enroll(r)),
            RequestOp::Keygen { cr: false, request } => Operation::IrCentralKeygen(request.clone()),
            RequestOp::Keygen { cr: true, request } => Operation::CrCentralKeygen(request.clone()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RequestOp::Ir(_) => "ir",
            RequestOp::Cr(_) => "cr",
            RequestOp::Kur { .. } => "kur",
            RequestOp::P10cr(_) => "p10cr",
            RequestOp::Rr { .. } => "rr",
            RequestOp::Genm(_) => "genm",
            RequestOp::Krr(_) => "krr",
            RequestOp::Ccr(_) => "ccr",
            RequestOp::Keygen { cr: false, .. } => "ir (central key generation)",
            RequestOp::Keygen { cr: true, .. } => "cr (central key generation)",
        }
    }
}

/// A request: the operation (ir, cr, kur, p10cr, rr or genm) and its content — for the
/// enrollments the key to certify, subject and subjectAltNames.
///
/// Thread safety: use from one thread at a time; it may be freed right after
/// `cmpkit_execute` / `cmpkit_transaction_start` (transactions keep their own copy), and it
/// may be started again.
pub struct cmpkit_request {
    pub(crate) op: RequestOp,
}

/// Store a new request handle in `*out`.
///
/// # Safety
/// `out` must be NULL or writable.
unsafe fn new_request(op: RequestOp, out: *mut *mut cmpkit_request) -> Result<()> {
    if out.is_null() {
        return Err(Error::new(ErrorCode::NullArgument, "out is NULL"));
    }
    // SAFETY: checked non-NULL; writable per the contract.
    unsafe { write_out(out, into_handle(cmpkit_request { op }), "out") }
}

/// An enrollment of `key` with an empty subject and no subjectAltNames.
///
/// # Safety
/// `key` must be NULL or a live key handle.
unsafe fn enroll(key: *const cmpkit_key, name: &str) -> Result<EnrollRequest> {
    // SAFETY: per this function's contract.
    let key = unsafe { try_ref(key, name) }?;
    Ok(EnrollRequest {
        subject: None,
        sans: Vec::new(),
        key: key.signer(),
    })
}

/// Whether `bytes` look like PEM (rather than DER).
fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// The non-empty buffer of a certificate argument.
///
/// # Safety
/// `data` must be NULL or readable for `len` bytes.
unsafe fn cert_bytes<'a>(data: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { try_bytes(data, len, name) }?;
    if bytes.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{name} is empty"),
        ));
    }
    Ok(bytes)
}

/// One certificate from a PEM or DER buffer (the first of several PEM certificates).
///
/// # Safety
/// `data` must be NULL or readable for `len` bytes.
unsafe fn one_cert(data: *const u8, len: usize, name: &str) -> Result<X509> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { cert_bytes(data, len, name) }?;
    Ok(parse_pem_or_der(bytes)
        .map_err(|e| e.context(name))?
        .remove(0))
}

/// The certificate a kur or rr names, from a PEM or DER buffer (the first of several PEM
/// certificates; bytes after a DER certificate are ignored, as OpenSSL's reading does), kept
/// as DER. Its structure is checked (the certificate's parts and the TBSCertificate's fields,
/// see [`CertFields`](crate::asn1::CertFields)), and its serial number, issuer and subject
/// must decode.
///
/// # Safety
/// `data` must be NULL or readable for `len` bytes.
unsafe fn named_cert(data: *const u8, len: usize, name: &str) -> Result<CmpCertificate> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { cert_bytes(data, len, name) }?;
    let pem_der = if is_pem(bytes) {
        let x509 = parse_pem_or_der(bytes)
            .map_err(|e| e.context(name))?
            .remove(0);
        Some(x509.to_der()?)
    } else {
        None
    };
    let input = pem_der.as_deref().unwrap_or(bytes);
    let read = || -> der::Result<CmpCertificate> {
        let cert = CmpCertificate::from_der(der::SliceReader::new(input)?.tlv_bytes()?)?;
        // What the request will take from it decodes now, so that a bad certificate fails
        // here rather than when the transaction starts.
        let fields = cert.fields()?;
        x509_cert::serial_number::SerialNumber::<x509_cert::certificate::Rfc5280>::from_der(
            fields.serial,
        )?;
        x509_cert::name::Name::from_der(fields.issuer)?;
        x509_cert::name::Name::from_der(fields.subject)?;
        Ok(cert)
    };
    read().map_err(|e| {
        Error::new(
            ErrorCode::BadCertificate,
            format!("{name}: cannot parse certificate: {e}"),
        )
    })
}

/// Fails with [`ErrorCode::CertKeyMismatch`] unless `key` (if given) is the key of `cert`;
/// the names are those of the arguments, for the message.
fn check_key(cert: &CmpCertificate, key: Option<&dyn Signer>, names: (&str, &str)) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    let spki = cert.fields()?.spki;
    // Equal bytes are the same key; otherwise compare as OpenSSL re-encodes the certificate's
    // key (it may normalize an encoding).
    if spki == key.public_key_der()
        || PKey::public_key_from_der(spki)?.public_key_to_der()? == key.public_key_der()
    {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::CertKeyMismatch,
        format!("{} is not the key of {}", names.0, names.1),
    ))
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
        // SAFETY: NULL or a live key handle; `out` NULL or writable.
        unsafe { new_request(RequestOp::Ir(enroll(key, "key")?), out) }
    })
}

/// Create a certification request (cr, RFC 9483 §4.1.2) to certify `key`, for an entity
/// that already has a certificate from the PKI (usually with signature credentials on the
/// context). Otherwise like `cmpkit_request_new_ir`: set the subject and subjectAltNames on
/// the request; the caller frees it with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_cr(
    key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live key handle; `out` NULL or writable.
        unsafe { new_request(RequestOp::Cr(enroll(key, "key")?), out) }
    })
}

/// Create a key recovery request (krr, RFC 9810 §5.3.8) for `key`'s certificate: the
/// answer (krp) carries the new signature certificate and the recovered key pairs; read the
/// certificate as for ir. Set subject and subjectAltNames as for `cmpkit_request_new_ir`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_krr(
    key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live key handle; `out` NULL or writable.
        unsafe { new_request(RequestOp::Krr(enroll(key, "key")?), out) }
    })
}

/// Create a cross-certification request (ccr, RFC 9810 §5.3.11): a CA asks another CA to
/// certify `key`; answered by ccp, then certConf. Set subject and subjectAltNames as for
/// `cmpkit_request_new_ir`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_ccr(
    key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live key handle; `out` NULL or writable.
        unsafe { new_request(RequestOp::Ccr(enroll(key, "key")?), out) }
    })
}

/// An ir (`cr` false) or cr asking the CA to generate the key (RFC 9483 §4.1.6): `kind` is
/// a `cmpkit_key_kind` (0: the CA chooses; for RSA `bits` is the size, 0 means 2048).
fn keygen(cr: bool, kind: u32, bits: u32, out: *mut *mut cmpkit_request) -> ErrorCode {
    guard(|| {
        let algorithm = match kind {
            0 => None,
            k => Some(KeygenRequest::algorithm_for(super::key::key_type(
                k, bits,
            )?)?),
        };
        let request = KeygenRequest {
            algorithm,
            ..KeygenRequest::default()
        };
        // SAFETY: `out` NULL or writable per the contract.
        unsafe { new_request(RequestOp::Keygen { cr, request }, out) }
    })
}

/// Create an ir with central key generation (RFC 9483 §4.1.6): the CA (or its key generation
/// authority) makes the key pair of `kind` (a `cmpkit_key_kind`, 0: the CA chooses; `bits`
/// for RSA) and returns the private key encrypted; read it with
/// `cmpkit_response_private_key_pkcs8`. With a shared secret the key comes encrypted with it;
/// with signature credentials set a decryption key (`cmpkit_ctx_set_decryption_key`) or
/// callback. Set subject and subjectAltNames as for `cmpkit_request_new_ir`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_ir_central_keygen(
    kind: u32,
    bits: u32,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    keygen(false, kind, bits, out)
}

/// Like `cmpkit_request_new_ir_central_keygen`, as a cr (for an entity that has a certificate).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_cr_central_keygen(
    kind: u32,
    bits: u32,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    keygen(true, kind, bits, out)
}

/// Create a key update request (kur, RFC 9483 §4.1.3): certify `new_key` in place of the
/// certificate `old_cert` (PEM or DER, `old_cert_len` bytes; with several PEM certificates
/// the first is used).
///
/// Subject and subjectAltNames default to those of `old_cert` unless set on the request; the
/// request names `old_cert` by issuer and serial number (id-regCtrl-oldCertID). With
/// `old_key` (the private key of `old_cert`) the kur is signed with it and `old_cert` is sent
/// in extraCerts, as RFC 9483 asks; with `old_key` NULL the context's credentials protect it.
/// The request keeps its own references to the keys. The caller frees the request with
/// `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_kur(
    new_key: *const cmpkit_key,
    old_cert: *const u8,
    old_cert_len: usize,
    old_key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or live key handles; a buffer of `old_cert_len` bytes.
        let (request, old_key) = unsafe {
            (
                enroll(new_key, "new_key")?,
                old_key.as_ref().map(|k| k.signer()),
            )
        };
        // SAFETY: a buffer of `old_cert_len` bytes.
        let cert = unsafe { named_cert(old_cert, old_cert_len, "old_cert") }?;
        check_key(&cert, old_key.as_deref(), ("old_key", "old_cert"))?;
        let op = RequestOp::Kur {
            request,
            old_cert: cert,
            old_key,
        };
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(op, out) }
    })
}

/// Create a PKCS#10 certification request (p10cr, RFC 9483 §4.1.4) from `csr` (a PKCS#10
/// CertificationRequest, PEM or DER, `csr_len` bytes). The CSR carries subject, key and
/// extensions, so `cmpkit_request_set_subject` and `_add_san` do not apply. The caller frees
/// the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_p10cr(
    csr: *const u8,
    csr_len: usize,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: a buffer of `csr_len` bytes.
        let bytes = unsafe { try_bytes(csr, csr_len, "csr") }?;
        let der = if is_pem(bytes) {
            openssl::x509::X509Req::from_pem(bytes)
                .and_then(|r| r.to_der())
                .map_err(|e| {
                    Error::new(
                        ErrorCode::InvalidArgument,
                        format!("csr is not a PEM certificate request: {e}"),
                    )
                })?
        } else {
            bytes.to_vec()
        };
        x509_cert::request::CertReq::from_der(&der).map_err(|e| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("csr is not a PKCS#10 certification request: {e}"),
            )
        })?;
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::P10cr(der), out) }
    })
}

/// Create a revocation request (rr, RFC 9483 §4.2) for `cert` (PEM or DER, `cert_len`
/// bytes), answered by rp: read the outcome with `cmpkit_response_status` (0 accepted; 5
/// revocationNotification also counts as success) and `_status_string`.
///
/// `reason` is a CRLReason code (RFC 5280 §5.3.1: 0 unspecified, 1 keyCompromise, 2
/// cACompromise, 3 affiliationChanged, 4 superseded, 5 cessationOfOperation, 6
/// certificateHold, 8 removeFromCRL, 9 privilegeWithdrawn, 10 aACompromise) or -1 for none.
/// With `key` (the private key of `cert`) the rr is signed with it and `cert` is sent in
/// extraCerts; with `key` NULL the context's credentials protect it. The caller frees the
/// request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_rr(
    cert: *const u8,
    cert_len: usize,
    reason: i32,
    key: *const cmpkit_key,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live key handle.
        let key = unsafe { key.as_ref() }.map(|k| k.signer());
        // SAFETY: a buffer of `cert_len` bytes.
        let cert = unsafe { named_cert(cert, cert_len, "cert") }?;
        let reason = match reason {
            -1 => None,
            r => {
                let ok = u8::try_from(r).ok().filter(|r| {
                    x509_cert::ext::pkix::crl::CrlReason::try_from(u32::from(*r)).is_ok()
                });
                Some(ok.ok_or_else(|| {
                    Error::new(
                        ErrorCode::InvalidArgument,
                        format!("{r} is not a CRLReason value (0..10 except 7, or -1 for none)"),
                    )
                })?)
            }
        };
        check_key(&cert, key.as_deref(), ("key", "cert"))?;
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::Rr { cert, reason, key }, out) }
    })
}

/// Create a general message (genm, RFC 9483 §4.3) with no InfoTypeAndValue yet: add them
/// with `cmpkit_request_add_itav`. The answer's (genp's) values are read with
/// `cmpkit_response_genp_count` / `_genp_at` and the typed getters. The caller frees the
/// request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm(out: *mut *mut cmpkit_request) -> ErrorCode {
    guard(|| {
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::Genm(Vec::new()), out) }
    })
}

/// Create a genm asking for the CA certificates (id-it-caCerts, RFC 9483 §4.3.1); read the
/// answer with `cmpkit_response_cert_count` / `_cert_at` and
/// `CMPKIT_CERT_LIST_GENP_CA_CERTS`. The caller frees the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm_ca_certs(
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::Genm(vec![genm::ca_certs_request()]), out) }
    })
}

/// Create a genm asking for a root CA key update (id-it-rootCaCert, RFC 9483 §4.3.2), naming
/// the root certificate trusted now (`old_root`, PEM or DER; NULL with length 0 to send the
/// request without it). Check and read the answer with `cmpkit_response_root_ca_update`.
/// The caller frees the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm_root_ca_update(
    old_root: *const u8,
    old_root_len: usize,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        let old = if old_root.is_null() && old_root_len == 0 {
            None
        } else {
            // SAFETY: a buffer of `old_root_len` bytes.
            Some(unsafe { one_cert(old_root, old_root_len, "old_root") }?)
        };
        let itav = genm::root_ca_key_update_request(old.as_ref())?;
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::Genm(vec![itav]), out) }
    })
}

/// Create a genm asking for a certificate request template (id-it-certReqTemplate, RFC 9483
/// §4.3.3); the template comes back DER-encoded through `cmpkit_response_genp_at`. The caller
/// frees the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm_cert_req_template(
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `out` NULL or writable.
        unsafe {
            new_request(
                RequestOp::Genm(vec![genm::cert_req_template_request()]),
                out,
            )
        }
    })
}

/// Create a genm asking for an update of the CRL `crl` (PEM or DER, `crl_len` bytes) that the
/// caller holds (id-it-crlStatusList, RFC 9483 §4.3.4): the request names the CRL by its
/// issuer and sends its thisUpdate. Read newer CRLs with `cmpkit_response_crl_count` /
/// `_crl_at`. The caller frees the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm_crl_update(
    crl: *const u8,
    crl_len: usize,
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: a buffer of `crl_len` bytes.
        let bytes = unsafe { try_bytes(crl, crl_len, "crl") }?;
        let not_a_crl = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("crl is not a PEM or DER CRL: {e}"),
            )
        };
        let der = if is_pem(bytes) {
            openssl::x509::X509Crl::from_pem(bytes)
                .and_then(|c| c.to_der())
                .map_err(|e| not_a_crl(&e))?
        } else {
            bytes.to_vec()
        };
        let crl =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                .map_err(|e| not_a_crl(&e))?;
        let status = CrlStatus {
            source: CrlSource::Issuer(vec![GeneralName::DirectoryName(
                crl.tbs_cert_list.issuer.clone(),
            )]),
            this_update: Some(crl.tbs_cert_list.this_update),
        };
        let itav = genm::crl_update_request(&vec![status])?;
        // SAFETY: `out` NULL or writable.
        unsafe { new_request(RequestOp::Genm(vec![itav]), out) }
    })
}

/// Create a genm asking which key pair types the CA certifies (id-it-signKeyPairTypes); the
/// answer (a DER SEQUENCE OF AlgorithmIdentifier) comes through `cmpkit_response_genp_at`.
/// The caller frees the request with `cmpkit_request_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_new_genm_key_pair_types(
    out: *mut *mut cmpkit_request,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `out` NULL or writable.
        unsafe {
            new_request(
                RequestOp::Genm(vec![genm::sign_key_pair_types_request()]),
                out,
            )
        }
    })
}

/// Add an InfoTypeAndValue to a genm request: `oid` in dotted text (`"1.3.6.1.5.5.7.4.17"`)
/// and its value as one DER element (`value`, `value_len` bytes), or NULL with length 0 for
/// an InfoTypeAndValue without value. `CMPKIT_RESULT_INVALID_STATE` if `req` is not a genm.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_add_itav(
    req: *mut cmpkit_request,
    oid: *const c_char,
    value: *const u8,
    value_len: usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live request handle; a string; a buffer of `value_len` bytes.
        let (r, oid, value) = unsafe {
            (
                try_mut(req, "req")?,
                try_str(oid, "oid")?,
                try_bytes(value, value_len, "value")?,
            )
        };
        let oid = ObjectIdentifier::new(oid).map_err(|e| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("{oid:?} is not a dotted OID: {e}"),
            )
        })?;
        let value = if value.is_empty() {
            None
        } else {
            let any = der::Any::from_der(value).map_err(|e| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("value is not one DER element: {e}"),
                )
            })?;
            // Re-encode to be sure it round-trips (e.g. no trailing bytes were ignored).
            any.to_der()?;
            Some(any)
        };
        match &mut r.op {
            RequestOp::Genm(itavs) => {
                itavs.push(InfoTypeAndValue { oid, value });
                Ok(())
            }
            other => Err(Error::new(
                ErrorCode::InvalidState,
                format!(
                    "InfoTypeAndValues go in a genm, this request is a {}",
                    other.name()
                ),
            )),
        }
    })
}

/// Free a request (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_free(req: *mut cmpkit_request) {
    // SAFETY: NULL or a live request handle, freed once.
    unsafe { free_handle(req) };
}

/// Run `f` on the certificate template of an ir, cr or kur request.
fn on_request(
    req: *mut cmpkit_request,
    f: impl FnOnce(&mut Option<Name>, &mut Vec<GeneralName>) -> Result<()>,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live request handle used by one thread.
        let r = unsafe { try_mut(req, "req") }?;
        match &mut r.op {
            RequestOp::Ir(e)
            | RequestOp::Cr(e)
            | RequestOp::Krr(e)
            | RequestOp::Ccr(e)
            | RequestOp::Kur { request: e, .. } => f(&mut e.subject, &mut e.sans),
            RequestOp::Keygen { request, .. } => f(&mut request.subject, &mut request.sans),
            other => Err(Error::new(
                ErrorCode::InvalidState,
                format!(
                    "subject and subjectAltName belong to ir, cr and kur; this request is a {}",
                    other.name()
                ),
            )),
        }
    })
}

/// Set the subject (`/CN=Device 1/O=Example` or `CN=Device 1,O=Example`) of an ir, cr or kur
/// request; `CMPKIT_RESULT_INVALID_STATE` for other requests.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_set_subject(
    req: *mut cmpkit_request,
    subject: *const c_char,
) -> ErrorCode {
    on_request(req, |subj, _| {
        // SAFETY: NUL-terminated string per the contract.
        *subj = Some(parse_name(unsafe { try_str(subject, "subject") }?)?);
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

/// Add a subjectAltName entry of `kind` (a `cmpkit_san_kind`) with text `value` to an ir, cr
/// or kur request; `CMPKIT_RESULT_INVALID_STATE` for other requests.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_request_add_san(
    req: *mut cmpkit_request,
    kind: u32,
    value: *const c_char,
) -> ErrorCode {
    on_request(req, |_, sans| {
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
        sans.push(name);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::{asn1::Asn1Time, hash::MessageDigest, x509::X509Builder};

    fn self_signed() -> X509 {
        let pkey = PKey::ec_gen("prime256v1").unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&pkey, MessageDigest::sha256()).unwrap();
        b.build()
    }

    /// `named_cert` on a byte slice.
    fn named(bytes: &[u8]) -> Result<CmpCertificate> {
        // SAFETY: a live slice of `bytes.len()` bytes.
        unsafe { named_cert(bytes.as_ptr(), bytes.len(), "cert") }
    }

    #[test]
    fn a_named_cert_is_kept_as_its_der_from_der_with_trailing_bytes_or_pem() {
        let x = self_signed();
        let der = x.to_der().unwrap();
        assert_eq!(named(&der).unwrap().der(), der.as_slice());
        let padded = [der.as_slice(), b"trailing"].concat();
        assert_eq!(named(&padded).unwrap().der(), der.as_slice());
        let pem = x.to_pem().unwrap();
        assert_eq!(named(&pem).unwrap().der(), der.as_slice());
    }

    #[test]
    fn a_named_cert_that_is_not_shaped_like_a_certificate_is_bad_certificate() {
        // junk; a truncated certificate; the outer shape of a certificate around a
        // TBSCertificate that is not one
        let der = self_signed().to_der().unwrap();
        let bad_tbs = [
            0x30, 0x0b, 0x30, 0x02, 0x05, 0x00, 0x30, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00,
        ];
        for bytes in [&b"junk"[..], &der[..der.len() - 1], &bad_tbs] {
            assert_eq!(
                named(bytes).unwrap_err().code,
                ErrorCode::BadCertificate,
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn a_named_cert_whose_issuer_does_not_decode_is_bad_certificate_at_once() {
        let pkey = PKey::ec_gen("prime256v1").unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "named").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.sign(&pkey, MessageDigest::sha256()).unwrap();
        let mut der = b.build().to_der().unwrap();
        assert!(named(&der).is_ok());
        // The issuer's first RelativeDistinguishedName tagged INTEGER instead of SET: the
        // certificate keeps its shape, its issuer Name does not decode.
        let offset = {
            let c = CmpCertificate::try_from(der.as_slice()).unwrap();
            let issuer = c.fields().unwrap().issuer;
            issuer.as_ptr() as usize - c.der().as_ptr() as usize
        };
        assert_eq!(der[offset + 2], 0x31, "SET");
        der[offset + 2] = 0x02;
        let e = named(&der).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadCertificate, "{e}");
        assert!(e.detail.starts_with("cert: "), "{e}");
    }

    #[test]
    fn each_operation_of_a_request_shares_the_named_certificate() {
        let cert = named(&self_signed().to_der().unwrap()).unwrap();
        let op = RequestOp::Rr {
            cert: cert.clone(),
            reason: None,
            key: None,
        };
        for _ in 0..2 {
            let Operation::Rr { cert: given, .. } = op.operation() else {
                panic!("not an rr");
            };
            assert!(std::ptr::eq(given.der(), cert.der()), "no copy");
        }
    }
}
