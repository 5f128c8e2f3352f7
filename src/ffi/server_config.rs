//! `cmpkit_server_config`: settings of a CMP server — shared secrets, trust anchors, the
//! response signer, the issuing CA and options.

use super::key::cmpkit_key;
use super::util::{free_handle, guard, into_handle, try_bytes, try_mut, try_ref, write_out};
use crate::crypto::cert::parse_pem_or_der;
use crate::crypto::Signer;
use crate::error::{Error, ErrorCode};
use crate::server::demo_ca::DemoCa;
use openssl::x509::X509;
use std::collections::HashMap;
use std::sync::Arc;

/// Server settings, filled by the `cmpkit_server_config_*` setters and read by
/// `cmpkit_server_new`. Use from one thread at a time; may be freed once the server is made.
pub struct cmpkit_server_config {
    pub(crate) secrets: HashMap<Vec<u8>, Vec<u8>>,
    pub(crate) anchors: Vec<X509>,
    pub(crate) untrusted: Vec<X509>,
    pub(crate) signer: Option<(Arc<dyn Signer>, X509, Vec<X509>)>,
    pub(crate) ca: Option<Arc<DemoCa>>,
    pub(crate) grant_implicit_confirm: bool,
    pub(crate) check_after: u64,
    pub(crate) log: Option<crate::log::Logger>,
    pub(crate) central_keygen: u32,
}

/// Run `f` on a live config.
fn on(
    cfg: *mut cmpkit_server_config,
    f: impl FnOnce(&mut cmpkit_server_config) -> Result<(), Error>,
) -> ErrorCode {
    guard(|| {
        // SAFETY: the C API contract: NULL or a live config used by this thread only.
        f(unsafe { try_mut(cfg, "cfg") }?)
    })
}

/// A new server configuration: no secrets (MAC-protected requests refused until one is
/// added), the issuing CA's root as the only trust anchor, the CA signs the responses,
/// a generated throwaway demo CA, no implicit confirmation, checkAfter 1 second.
/// Free with `cmpkit_server_config_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_new(
    out: *mut *mut cmpkit_server_config,
) -> ErrorCode {
    guard(|| {
        let cfg = cmpkit_server_config {
            secrets: HashMap::new(),
            anchors: Vec::new(),
            untrusted: Vec::new(),
            signer: None,
            ca: None,
            grant_implicit_confirm: false,
            check_after: 1,
            log: None,
            central_keygen: 0,
        };
        // SAFETY: NULL or writable per the contract.
        unsafe { write_out(out, into_handle(cfg), "out") }
    })
}

/// Free a server configuration (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_free(cfg: *mut cmpkit_server_config) {
    // SAFETY: NULL or a live config handle, freed once.
    unsafe { free_handle(cfg) };
}

/// Accept MAC-protected requests whose senderKID is `reference`, with `secret`. May be
/// called for several references; the same reference again replaces its secret.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_add_secret(
    cfg: *mut cmpkit_server_config,
    reference: *const u8,
    reference_len: usize,
    secret: *const u8,
    secret_len: usize,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: buffers of the given lengths per the contract.
        let (r, s) = unsafe {
            (
                try_bytes(reference, reference_len, "reference")?,
                try_bytes(secret, secret_len, "secret")?,
            )
        };
        if r.is_empty() || s.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "reference and secret must not be empty",
            ));
        }
        c.secrets.insert(r.to_vec(), s.to_vec());
        Ok(())
    })
}

/// Add trust anchors (PEM, one or more; or one DER certificate) for signature-protected
/// requests. Without any, the issuing CA's root is the trust anchor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_add_trust_anchors(
    cfg: *mut cmpkit_server_config,
    certs: *const u8,
    len: usize,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: a buffer of `len` bytes per the contract.
        let mut v = parse_pem_or_der(unsafe { try_bytes(certs, len, "certs") }?)?;
        c.anchors.append(&mut v);
        Ok(())
    })
}

/// Add intermediate certificates (PEM or DER) that may complete requesters' chains.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_add_untrusted(
    cfg: *mut cmpkit_server_config,
    certs: *const u8,
    len: usize,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: a buffer of `len` bytes per the contract.
        let mut v = parse_pem_or_der(unsafe { try_bytes(certs, len, "certs") }?)?;
        c.untrusted.append(&mut v);
        Ok(())
    })
}

/// Sign responses with `key` and its certificate `cert` (PEM or DER; further PEM
/// certificates after the first are sent as its chain in extraCerts). Default: the issuing
/// CA signs. The configuration keeps its own reference to the key.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_signer(
    cfg: *mut cmpkit_server_config,
    key: *const cmpkit_key,
    cert: *const u8,
    cert_len: usize,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: NULL or a live key handle; a buffer of `cert_len` bytes.
        let (key, cert) = unsafe { (try_ref(key, "key")?, try_bytes(cert, cert_len, "cert")?) };
        let mut certs = parse_pem_or_der(cert)?;
        let leaf = certs.remove(0);
        if leaf.public_key()?.public_key_to_der()? != key.signer().public_key_der() {
            return Err(Error::new(
                ErrorCode::CertKeyMismatch,
                "the certificate does not belong to the key",
            ));
        }
        c.signer = Some((key.signer(), leaf, certs));
        Ok(())
    })
}

/// The built-in CA issues with this certificate (PEM; further certificates after the first
/// are its chain up to the root) and private key (PEM). Default: a generated throwaway
/// self-signed CA "CN=cmpkit Demo CA".
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_ca(
    cfg: *mut cmpkit_server_config,
    cert: *const u8,
    cert_len: usize,
    key: *const u8,
    key_len: usize,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: buffers of the given lengths per the contract.
        let (cert, key) = unsafe {
            (
                try_bytes(cert, cert_len, "cert")?,
                try_bytes(key, key_len, "key")?,
            )
        };
        let mut certs = parse_pem_or_der(cert)?;
        let leaf = certs.remove(0).to_pem()?;
        let mut chain = Vec::new();
        for x in certs {
            chain.extend(x.to_pem()?);
        }
        c.ca = Some(Arc::new(DemoCa::from_pem(&leaf, key, &chain)?));
        Ok(())
    })
}

/// Grant implicit confirmation (no certConf/pkiConf) to clients that ask for it (1) or not
/// (0, the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_implicit_confirm(
    cfg: *mut cmpkit_server_config,
    grant: i32,
) -> ErrorCode {
    on(cfg, |c| {
        c.grant_implicit_confirm = grant != 0;
        Ok(())
    })
}

/// Central key generation (RFC 9483 §4.1.6): `mode` 0 refuses ir/cr without a public key
/// (the default); 1 makes the server the key generation authority — it generates the key the
/// template's algorithm names, has the CA certify it, and delivers the private key enveloped
/// for the requester's signature certificate (or, for a MAC-authenticated requester, with
/// its shared secret), signed by the server as an AsymmetricKeyPackage; 2 does the same with
/// the bare OneAsymmetricKey signed (what OpenSSL 3.5's client reads).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_central_keygen(
    cfg: *mut cmpkit_server_config,
    mode: u32,
) -> ErrorCode {
    on(cfg, |c| {
        if mode > 2 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("central key generation mode {mode}: 0, 1 or 2"),
            ));
        }
        c.central_keygen = mode;
        Ok(())
    })
}

/// The checkAfter (seconds) sent when the CA handler answers "waiting" (default 1).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_check_after(
    cfg: *mut cmpkit_server_config,
    seconds: u32,
) -> ErrorCode {
    on(cfg, |c| {
        c.check_after = u64::from(seconds);
        Ok(())
    })
}

/// Log the server's requests to `log` (NULL: no logging): lines up to `max_level` (a
/// `cmpkit_log_level`: 1 each refused request — the check that failed and the failInfo sent —,
/// 2 also each answered request and each rejection by the CA, 3 also each request received).
/// The server calls `log` from whichever thread processes a request, possibly from several at
/// once; `userdata` stays owned by the caller and must outlive the servers made from `cfg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_server_config_set_log(
    cfg: *mut cmpkit_server_config,
    max_level: u32,
    log: super::log::cmpkit_log_fn,
    userdata: *mut std::ffi::c_void,
) -> ErrorCode {
    on(cfg, |c| {
        // SAFETY: the caller's callback and userdata, usable from any thread as documented.
        c.log = unsafe { super::log::c_logger(max_level, log, userdata) }?;
        Ok(())
    })
}
