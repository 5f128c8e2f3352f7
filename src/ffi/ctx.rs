//! `cmpkit_ctx`: a client context — server, credentials, trust, options, transport.

use super::key::cmpkit_key;
use super::log::{c_logger, cmpkit_log_fn};
use super::util::{c_string, free_handle, guard_on, try_bytes, try_mut, try_str, write_handle};
use crate::client::{ClientConfig, Credentials, Transfer};
use crate::crypto::cert::parse_pem_or_der;
use crate::crypto::{Decryptor, SecretBytes, Signer, SoftwareDecryptor, TrustStore};
use crate::error::{Error, ErrorCode, Result};
use crate::message::parse_name;
use crate::protection::{MacParams, PbmConfig, Pbmac1Config};
use crate::transport::http::HttpTransfer;
use openssl::x509::X509;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

/// A buffer the library hands to the transfer callback for the response bytes.
pub struct cmpkit_buffer {
    data: Vec<u8>,
    limit: usize,
}

/// Sends one request (`req`, `req_len`: a DER PKIMessage) to the server and appends the
/// response to `rsp` with `cmpkit_buffer_append`. Return 0 on success, non-zero if the
/// transfer failed. Called on the thread that runs `cmpkit_execute`.
pub type cmpkit_transfer_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        req: *const u8,
        req_len: usize,
        rsp: *mut cmpkit_buffer,
    ) -> i32,
>;

/// Append `len` bytes to the response buffer of a transfer callback.
///
/// Fails with `CMPKIT_RESULT_RESPONSE_TOO_LARGE` past the context's message size limit.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_buffer_append(
    buf: *mut cmpkit_buffer,
    data: *const u8,
    len: usize,
) -> ErrorCode {
    super::util::guard(|| {
        // SAFETY: `buf` is the live buffer passed to the callback.
        let buf = unsafe { try_mut(buf, "buf") }?;
        // SAFETY: the caller passes `len` readable bytes.
        let data = unsafe { try_bytes(data, len, "data") }?;
        if buf.data.len().saturating_add(data.len()) > buf.limit {
            return Err(Error::new(
                ErrorCode::ResponseTooLarge,
                format!("the response exceeds the limit of {} bytes", buf.limit),
            ));
        }
        buf.data.extend_from_slice(data);
        Ok(())
    })
}

enum TransferSetting {
    None,
    Http(HttpTransfer),
    Callback {
        f: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut cmpkit_buffer) -> i32,
        userdata: *mut c_void,
    },
}

/// MAC algorithms for shared-secret protection.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    /// PasswordBasedMac (RFC 9810 §5.1.3.1): SHA-256 OWF, HMAC-SHA256. Understood by every
    /// CMP implementation, including OpenSSL before 3.5; the default.
    Pbm = 1,
    /// PBMAC1 (RFC 9481 §6.1.3): PBKDF2-HMAC-SHA256 and HMAC-SHA256.
    Pbmac1 = 2,
}

/// A client context: who the server is, how to authenticate, whom to trust, how to transfer.
///
/// Configure it with the `cmpkit_ctx_set_*` / `cmpkit_ctx_add_*` functions, then run
/// transactions with `cmpkit_execute` (blocking) or `cmpkit_transaction_start`. Thread
/// safety: use a context from one thread at a time.
pub struct cmpkit_ctx {
    secret: Option<(Vec<u8>, Vec<u8>)>,
    mac_alg: MacAlg,
    /// Iteration count of PBM / PBMAC1 protection; `None`: the algorithm's default.
    mac_iterations: Option<u32>,
    signer: Option<SignerSetting>,
    anchors: Vec<X509>,
    untrusted: Vec<X509>,
    server_cert: Option<X509>,
    recipient: Option<String>,
    implicit_confirm: bool,
    unprotected_errors: bool,
    max_iterations: Option<u64>,
    max_message_size: usize,
    polling_deadline: Duration,
    decryptor: Option<Arc<dyn Decryptor>>,
    log: Option<crate::log::Logger>,
    message_time_tolerance: Option<Duration>,
    require_cmc_eku: bool,
    transfer: TransferSetting,
    /// The configuration built from the settings; rebuilt after a change.
    built: Option<Arc<ClientConfig>>,
    last_error: Option<CString>,
}

/// Signature credentials as set by `cmpkit_ctx_set_signer`.
struct SignerSetting {
    key: Arc<dyn Signer>,
    cert: X509,
    chain: Vec<X509>,
}

impl cmpkit_ctx {
    fn changed(&mut self) {
        self.built = None;
    }

    /// Record the detail of a failure on the context.
    pub(crate) fn set_error(&mut self, e: &Error) {
        self.last_error = Some(c_string(&e.to_string()));
    }

    /// The immutable configuration for a transaction (built once per set of settings, so the
    /// derived MAC keys are reused across transactions).
    pub(crate) fn config(&mut self) -> Result<Arc<ClientConfig>> {
        if let Some(c) = &self.built {
            return Ok(Arc::clone(c));
        }
        let credentials = match (&self.signer, &self.secret) {
            (Some(s), _) => Some(Credentials::signature(
                Arc::clone(&s.key),
                s.cert.clone(),
                s.chain.clone(),
            )),
            (None, Some((secret, reference))) => {
                let params = match self.mac_alg {
                    MacAlg::Pbm => {
                        let mut p = PbmConfig::default();
                        p.iterations = self.mac_iterations.unwrap_or(p.iterations);
                        MacParams::Pbm(p)
                    }
                    MacAlg::Pbmac1 => {
                        let mut p = Pbmac1Config::default();
                        p.iterations = self.mac_iterations.unwrap_or(p.iterations);
                        MacParams::Pbmac1(p)
                    }
                };
                Some(Credentials::mac(secret, reference, params))
            }
            (None, None) => None,
        };
        let mut cfg = ClientConfig {
            credentials,
            trust: if self.anchors.is_empty() {
                None
            } else {
                Some(TrustStore::new(&self.anchors)?)
            },
            untrusted: self.untrusted.clone(),
            server_cert: self.server_cert.clone(),
            recipient: self.recipient.as_deref().map(parse_name).transpose()?,
            implicit_confirm: self.implicit_confirm,
            unprotected_errors: self.unprotected_errors,
            max_message_size: self.max_message_size,
            polling_deadline: self.polling_deadline,
            decryptor: self.decryptor.clone(),
            log: self.log.clone(),
            message_time_tolerance: self.message_time_tolerance,
            require_cmc_eku: self.require_cmc_eku,
            ..ClientConfig::default()
        };
        if let Some(n) = self.max_iterations {
            cfg.mac_limits.max_iterations = n;
        }
        let cfg = Arc::new(cfg);
        self.built = Some(Arc::clone(&cfg));
        Ok(cfg)
    }

    /// The configured transfer, as a [`Transfer`].
    pub(crate) fn transfer(&mut self) -> Result<CtxTransfer<'_>> {
        let limit = self.max_message_size;
        match &self.transfer {
            TransferSetting::None => Err(Error::new(
                ErrorCode::MissingConfig,
                "no transfer: set a server URL (cmpkit_ctx_set_server_url) or a transfer callback",
            )),
            TransferSetting::Http(h) => Ok(CtxTransfer::Http(h)),
            TransferSetting::Callback { f, userdata } => Ok(CtxTransfer::Callback {
                f: *f,
                userdata: *userdata,
                limit,
            }),
        }
    }
}

/// The transfer of a context for one execution.
pub(crate) enum CtxTransfer<'a> {
    Http(&'a HttpTransfer),
    Callback {
        f: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut cmpkit_buffer) -> i32,
        userdata: *mut c_void,
        limit: usize,
    },
}

impl Transfer for CtxTransfer<'_> {
    fn transfer(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        match self {
            CtxTransfer::Http(h) => h.post(request),
            CtxTransfer::Callback { f, userdata, limit } => {
                let mut buf = cmpkit_buffer {
                    data: Vec::new(),
                    limit: *limit,
                };
                // SAFETY: the request is valid for its length and `buf` lives across the call.
                let rc = unsafe { f(*userdata, request.as_ptr(), request.len(), &mut buf) };
                if rc != 0 {
                    return Err(Error::new(
                        ErrorCode::TransferFailed,
                        format!("the transfer callback returned {rc}"),
                    ));
                }
                Ok(buf.data)
            }
        }
    }
}

/// Create a client context with default settings (PBM for MAC protection, 1 MiB message
/// limit, 30 s HTTP timeout, 300 s polling deadline, no messageTime check, no cmcCA/cmcRA
/// check). The caller frees it with `cmpkit_ctx_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_new(out: *mut *mut cmpkit_ctx) -> ErrorCode {
    super::util::guard(|| {
        let ctx = cmpkit_ctx {
            secret: None,
            mac_alg: MacAlg::Pbm,
            mac_iterations: None,
            signer: None,
            anchors: Vec::new(),
            untrusted: Vec::new(),
            server_cert: None,
            recipient: None,
            implicit_confirm: false,
            unprotected_errors: false,
            max_iterations: None,
            max_message_size: crate::message::DEFAULT_MAX_MESSAGE_SIZE,
            polling_deadline: crate::client::DEFAULT_POLLING_DEADLINE,
            decryptor: None,
            log: None,
            message_time_tolerance: None,
            require_cmc_eku: false,
            transfer: TransferSetting::None,
            built: None,
            last_error: None,
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_handle(out, ctx, "out") }
    })
}

/// Free a context (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_free(ctx: *mut cmpkit_ctx) {
    // SAFETY: NULL or a live context handle, freed once.
    unsafe { free_handle(ctx) };
}

/// The detail of the last failure of a call on this context (or a transaction it ran), or
/// NULL. Borrowed until the next failing call on the context or its free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_last_error(ctx: *const cmpkit_ctx) -> *const c_char {
    // SAFETY: NULL or a live context handle.
    match unsafe { ctx.as_ref() } {
        Some(c) => c
            .last_error
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr()),
        None => std::ptr::null(),
    }
}

/// Use the built-in HTTP transfer (RFC 9811) to `url` (`http://host[:port]/path`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_server_url(
    ctx: *mut cmpkit_ctx,
    url: *const c_char,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: NUL-terminated string per the contract.
        let url = unsafe { try_str(url, "url") }?;
        let mut h = HttpTransfer::new(url)?;
        if let TransferSetting::Http(old) = &c.transfer {
            h.set_timeout(old.timeout())?;
        }
        h.set_max_response_size(c.max_message_size)?;
        c.transfer = TransferSetting::Http(h);
        Ok(())
    })
}

/// Set the per-message timeout of the built-in HTTP transfer, in seconds (> 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_timeout(ctx: *mut cmpkit_ctx, seconds: u32) -> ErrorCode {
    guard_on(ctx, |c| match &mut c.transfer {
        TransferSetting::Http(h) => h.set_timeout(Duration::from_secs(u64::from(seconds))),
        _ => Err(Error::new(
            ErrorCode::InvalidState,
            "the timeout applies to the built-in HTTP transfer: set a server URL first",
        )),
    })
}

/// Use the caller's transfer callback instead of HTTP: serial lines, CoAP, files, tests.
/// `userdata` is passed to every call; it stays owned by the caller and must outlive the
/// context's use of it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_transfer(
    ctx: *mut cmpkit_ctx,
    transfer: cmpkit_transfer_fn,
    userdata: *mut c_void,
) -> ErrorCode {
    guard_on(ctx, |c| {
        let f = transfer.ok_or_else(|| Error::new(ErrorCode::NullArgument, "transfer is NULL"))?;
        c.transfer = TransferSetting::Callback { f, userdata };
        Ok(())
    })
}

/// Protect requests with a shared secret (MAC); `reference` is sent as senderKID so the
/// server can find the secret. Replaces signature credentials.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_secret(
    ctx: *mut cmpkit_ctx,
    secret: *const u8,
    secret_len: usize,
    reference: *const u8,
    reference_len: usize,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: buffers of the given lengths per the contract.
        let (s, r) = unsafe {
            (
                try_bytes(secret, secret_len, "secret")?,
                try_bytes(reference, reference_len, "reference")?,
            )
        };
        if s.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the shared secret is empty",
            ));
        }
        c.secret = Some((s.to_vec(), r.to_vec()));
        c.signer = None;
        c.changed();
        Ok(())
    })
}

/// Choose the MAC algorithm for shared-secret protection (a `cmpkit_mac_alg` value; PBM by
/// default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_mac_alg(ctx: *mut cmpkit_ctx, alg: u32) -> ErrorCode {
    guard_on(ctx, |c| {
        c.mac_alg = match alg {
            1 => MacAlg::Pbm,
            2 => MacAlg::Pbmac1,
            a => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("unknown MAC algorithm {a}"),
                ))
            }
        };
        c.changed();
        Ok(())
    })
}

/// The iteration count of the MAC protection of requests (≥ 1): PBM's iterationCount or
/// PBMAC1's PBKDF2 iteration count. Default 10000; `openssl cmp` uses 500 for PBM. Fewer
/// iterations make a guessable secret cheaper to brute-force from a recorded message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_mac_iterations(
    ctx: *mut cmpkit_ctx,
    iterations: u32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        if iterations == 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the MAC iteration count must be at least 1",
            ));
        }
        c.mac_iterations = Some(iterations);
        c.changed();
        Ok(())
    })
}

/// Protect requests by signature with `key` and its certificate `cert` (PEM or DER; further
/// PEM certificates after the first are sent as its chain in extraCerts). Replaces a secret.
/// The context keeps its own reference to the key.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_signer(
    ctx: *mut cmpkit_ctx,
    key: *const cmpkit_key,
    cert: *const u8,
    cert_len: usize,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: NULL or a live key handle; a buffer of `cert_len` bytes.
        let (key, cert) = unsafe {
            (
                super::util::try_ref(key, "key")?,
                try_bytes(cert, cert_len, "cert")?,
            )
        };
        let mut certs = parse_pem_or_der(cert)?;
        let leaf = certs.remove(0);
        if leaf.public_key()?.public_key_to_der()? != key.signer().public_key_der() {
            return Err(Error::new(
                ErrorCode::CertKeyMismatch,
                "the certificate does not belong to the key",
            ));
        }
        c.signer = Some(SignerSetting {
            key: key.signer(),
            cert: leaf,
            chain: certs,
        });
        c.secret = None;
        c.changed();
        Ok(())
    })
}

/// Parse PEM or DER certificates from a C buffer and append them to the list `pick` selects.
fn add_certs(
    ctx: *mut cmpkit_ctx,
    certs: *const u8,
    len: usize,
    pick: fn(&mut cmpkit_ctx) -> &mut Vec<X509>,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: a buffer of `len` bytes per the C API contract.
        let mut v = parse_pem_or_der(unsafe { try_bytes(certs, len, "certs") }?)?;
        pick(c).append(&mut v);
        c.changed();
        Ok(())
    })
}

/// Add trust anchors (PEM, one or more; or one DER certificate) for signed responses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_add_trust_anchors(
    ctx: *mut cmpkit_ctx,
    certs: *const u8,
    len: usize,
) -> ErrorCode {
    add_certs(ctx, certs, len, |c| &mut c.anchors)
}

/// Add intermediate certificates (PEM or DER) that may complete the server's chain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_add_untrusted(
    ctx: *mut cmpkit_ctx,
    certs: *const u8,
    len: usize,
) -> ErrorCode {
    add_certs(ctx, certs, len, |c| &mut c.untrusted)
}

/// Pin the server: signed responses must be protected by exactly this certificate (PEM/DER).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_server_cert(
    ctx: *mut cmpkit_ctx,
    cert: *const u8,
    len: usize,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: a buffer of `len` bytes.
        let mut v = parse_pem_or_der(unsafe { try_bytes(cert, len, "cert") }?)?;
        c.server_cert = Some(v.remove(0));
        c.changed();
        Ok(())
    })
}

/// The recipient name of requests (`/CN=CA/O=Example` or `CN=CA,O=Example`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_recipient(
    ctx: *mut cmpkit_ctx,
    name: *const c_char,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: NUL-terminated string per the contract.
        let n = unsafe { try_str(name, "name") }?;
        parse_name(n)?;
        c.recipient = Some(n.to_owned());
        c.changed();
        Ok(())
    })
}

/// Ask for implicit confirmation (non-zero) or not (0, the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_implicit_confirm(
    ctx: *mut cmpkit_ctx,
    on: i32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        c.implicit_confirm = on != 0;
        c.changed();
        Ok(())
    })
}

/// Report unprotected error responses' content as the peer's status (non-zero) — they are
/// never taken as success — or reject them as `PROTECTION_MISSING` (0, the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_unprotected_errors(
    ctx: *mut cmpkit_ctx,
    on: i32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        c.unprotected_errors = on != 0;
        c.changed();
        Ok(())
    })
}

/// The largest PBM/PBMAC1 iteration count accepted from the server (default 100000);
/// larger values are rejected before any computation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_max_iterations(
    ctx: *mut cmpkit_ctx,
    max: u64,
) -> ErrorCode {
    guard_on(ctx, |c| {
        if max == 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the iteration cap must be at least 1",
            ));
        }
        c.max_iterations = Some(max);
        c.changed();
        Ok(())
    })
}

/// The largest response accepted, in bytes (default 1 MiB).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_max_message_size(
    ctx: *mut cmpkit_ctx,
    max: usize,
) -> ErrorCode {
    guard_on(ctx, |c| {
        if max == 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the message size limit must be positive",
            ));
        }
        c.max_message_size = max;
        if let TransferSetting::Http(h) = &mut c.transfer {
            h.set_max_response_size(max)?;
        }
        c.changed();
        Ok(())
    })
}

/// How long a transaction may keep polling, in seconds (> 0; default 300): `cmpkit_execute`
/// and `cmpkit_transaction_feed` end it with `CMPKIT_RESULT_POLLING_TIMEOUT` (without
/// waiting) when the server asks to poll again later than this after the start.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_polling_deadline(
    ctx: *mut cmpkit_ctx,
    seconds: u32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        if seconds == 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the polling deadline must be at least 1 second",
            ));
        }
        c.polling_deadline = Duration::from_secs(u64::from(seconds));
        c.changed();
        Ok(())
    })
}

/// Check the messageTime of responses: one that differs from this machine's clock by more
/// than `seconds` fails with `CMPKIT_RESULT_BAD_MESSAGE_TIME` (responses without messageTime
/// are accepted). 0 turns the check off (the default).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_message_time_tolerance(
    ctx: *mut cmpkit_ctx,
    seconds: u32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        c.message_time_tolerance = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
        c.changed();
        Ok(())
    })
}

/// Require (non-zero) the certificate that signs responses to carry the extended key usage
/// id-kp-cmcCA or id-kp-cmcRA (RFC 9483 §3.1), else `CMPKIT_RESULT_MISSING_CMC_EKU`; 0 (the
/// default) does not check it. MAC-protected responses are not affected.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_require_cmc_eku(
    ctx: *mut cmpkit_ctx,
    on: i32,
) -> ErrorCode {
    guard_on(ctx, |c| {
        c.require_cmc_eku = on != 0;
        c.changed();
        Ok(())
    })
}

/// Decrypt centrally generated keys (key transport or key agreement recipients) with `key`
/// and its certificate `cert` (PEM or DER). `key` must be an in-memory key; for a key in an
/// HSM use `cmpkit_ctx_set_decrypt_callback`. The context keeps its own reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_decryption_key(
    ctx: *mut cmpkit_ctx,
    key: *const cmpkit_key,
    cert: *const u8,
    cert_len: usize,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: NULL or a live key handle; a buffer of `cert_len` bytes.
        let (key, cert) = unsafe {
            (
                super::util::try_ref(key, "key")?,
                try_bytes(cert, cert_len, "cert")?,
            )
        };
        let sw = key.software_key().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                "an external key cannot decrypt here: use cmpkit_ctx_set_decrypt_callback",
            )
        })?;
        let cert = parse_pem_or_der(cert)?.remove(0);
        c.decryptor = Some(Arc::new(SoftwareDecryptor::new(sw.pkey().clone(), cert)?));
        c.changed();
        Ok(())
    })
}

/// Decrypts a centrally generated key with the caller's private key (HSM, TPM).
///
/// `content_info` is a DER CMS ContentInfo of type envelopedData (RFC 5652) addressed to the
/// caller's key; append the decrypted content to `out` with `cmpkit_buffer_append` and return
/// 0, or return non-zero if it cannot be decrypted.
pub type cmpkit_decrypt_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        content_info: *const u8,
        len: usize,
        out: *mut cmpkit_buffer,
    ) -> i32,
>;

struct CallbackDecryptor {
    f: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut cmpkit_buffer) -> i32,
    userdata: *mut c_void,
    free: super::key::cmpkit_free_fn,
}

// SAFETY: the header states that the callback and userdata are used from the thread driving
// the transaction; the library never calls them concurrently for one context.
unsafe impl Send for CallbackDecryptor {}
// SAFETY: see `Send` above.
unsafe impl Sync for CallbackDecryptor {}

impl Drop for CallbackDecryptor {
    fn drop(&mut self) {
        if let Some(f) = self.free {
            // SAFETY: the caller's finalizer for `userdata`, called exactly once here.
            unsafe { f(self.userdata) };
        }
    }
}

impl Decryptor for CallbackDecryptor {
    fn decrypt_enveloped(&self, content_info_der: &[u8]) -> Result<SecretBytes> {
        let mut buf = cmpkit_buffer {
            data: Vec::new(),
            limit: crate::message::DEFAULT_MAX_MESSAGE_SIZE,
        };
        // SAFETY: the input is valid for its length and `buf` lives across the call.
        let rc = unsafe {
            (self.f)(
                self.userdata,
                content_info_der.as_ptr(),
                content_info_der.len(),
                &mut buf,
            )
        };
        let data = SecretBytes::new(std::mem::take(&mut buf.data));
        if rc != 0 {
            return Err(Error::new(
                ErrorCode::DecryptionFailed,
                format!("the decrypt callback returned {rc}"),
            ));
        }
        Ok(data)
    }
}

/// Decrypt centrally generated keys through the caller's callback (the private key stays in
/// the HSM). `free_userdata` (may be NULL) is called once with `userdata` when the callback is
/// replaced or the context is freed. Thread safety: called on the thread running the transaction.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_decrypt_callback(
    ctx: *mut cmpkit_ctx,
    decrypt: cmpkit_decrypt_fn,
    userdata: *mut c_void,
    free_userdata: super::key::cmpkit_free_fn,
) -> ErrorCode {
    guard_on(ctx, |c| {
        let f = decrypt.ok_or_else(|| Error::new(ErrorCode::NullArgument, "decrypt is NULL"))?;
        c.decryptor = Some(Arc::new(CallbackDecryptor {
            f,
            userdata,
            free: free_userdata,
        }));
        c.changed();
        Ok(())
    })
}

/// Log the context's transactions to `log` (NULL: no logging): lines up to `max_level`
/// (a `cmpkit_log_level`: 1 errors — which check failed and what the peer said —, 2 also each
/// message received and the outcome, 3 also each message sent). `userdata` stays owned by the
/// caller and must outlive the context's use of it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_ctx_set_log(
    ctx: *mut cmpkit_ctx,
    max_level: u32,
    log: cmpkit_log_fn,
    userdata: *mut c_void,
) -> ErrorCode {
    guard_on(ctx, |c| {
        // SAFETY: the caller's callback and userdata, valid as the header requires.
        c.log = unsafe { c_logger(max_level, log, userdata) }?;
        c.changed();
        Ok(())
    })
}
