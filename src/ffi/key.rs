//! `cmpkit_key`: a private key, in memory (OpenSSL) or behind the caller's sign callback.

use super::util::{borrow_out, copy_out, free_handle, guard, try_bytes, try_ref, write_handle};
use crate::crypto::{KeyType, SigAlg, Signer, SoftwareKey};
use crate::error::{Error, ErrorCode, Result};
use std::ffi::c_void;
use std::sync::Arc;

/// Kinds of key pair `cmpkit_key_generate` makes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// EC on P-256 (the default choice).
    EcP256 = 1,
    /// EC on P-384.
    EcP384 = 2,
    /// EC on P-521.
    EcP521 = 3,
    /// RSA; the size in bits is the `bits` argument (2048..8192).
    Rsa = 4,
    /// Ed25519.
    Ed25519 = 5,
    /// Ed448.
    Ed448 = 6,
}

/// Signs `tbs` with the caller's private key (HSM, TPM, secure element).
///
/// `alg` says how (hash and padding are the callee's job; EdDSA signs `tbs` itself). Write the
/// signature (DER for ECDSA, raw for RSA and EdDSA) into `sig`, whose capacity is `*sig_len`
/// on entry, and set `*sig_len` to its length. Return 0 on success, non-zero on failure.
/// Called from the thread that drives the transaction.
pub type cmpkit_sign_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        alg: u32,
        tbs: *const u8,
        tbs_len: usize,
        sig: *mut u8,
        sig_len: *mut usize,
    ) -> i32,
>;

/// Releases callback userdata; called exactly once, when the last user of the key is gone.
pub type cmpkit_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// A private key for CMP: generated, loaded, or external (signing through a callback).
///
/// Thread safety: a key may be shared by several contexts and requests; the library holds
/// its own reference, so the caller may free the handle while requests still use it.
pub struct cmpkit_key {
    signer: Arc<dyn Signer>,
    software: Option<Arc<SoftwareKey>>,
}

impl cmpkit_key {
    /// The signer behind the handle.
    pub(crate) fn signer(&self) -> Arc<dyn Signer> {
        Arc::clone(&self.signer)
    }

    /// The in-memory key, if this is not an external key.
    pub(crate) fn software_key(&self) -> Option<&SoftwareKey> {
        self.software.as_deref()
    }

    fn software(key: SoftwareKey) -> Self {
        let key = Arc::new(key);
        cmpkit_key {
            signer: key.clone(),
            software: Some(key),
        }
    }
}

/// The largest signature a callback may return (RSA-8192 is 1024 bytes).
const MAX_SIGNATURE: usize = 2048;

struct ExternalKey {
    spki: Vec<u8>,
    alg: SigAlg,
    sign: unsafe extern "C" fn(*mut c_void, u32, *const u8, usize, *mut u8, *mut usize) -> i32,
    userdata: *mut c_void,
    free: cmpkit_free_fn,
}

// SAFETY: the caller promises (in the header) that the callback and userdata may be used from
// the thread driving each transaction; the library never calls it concurrently for one key
// unless the caller shares the key across threads, which the header says requires a
// thread-safe callback.
unsafe impl Send for ExternalKey {}
// SAFETY: see `Send` above.
unsafe impl Sync for ExternalKey {}

impl Drop for ExternalKey {
    fn drop(&mut self) {
        if let Some(f) = self.free {
            // SAFETY: the caller registered `f` to release `userdata`; called exactly once here.
            unsafe { f(self.userdata) };
        }
    }
}

impl Signer for ExternalKey {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SigAlg {
        self.alg
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; MAX_SIGNATURE];
        let mut len = sig.len();
        // SAFETY: `tbs` and `sig` are valid for the lengths passed; `len` is a valid out-param.
        let rc = unsafe {
            (self.sign)(
                self.userdata,
                self.alg as u32,
                tbs.as_ptr(),
                tbs.len(),
                sig.as_mut_ptr(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(Error::new(
                ErrorCode::KeyCallbackFailed,
                format!("the sign callback returned {rc}"),
            ));
        }
        if len == 0 || len > MAX_SIGNATURE {
            return Err(Error::new(
                ErrorCode::KeyCallbackFailed,
                format!("the sign callback reported a signature length of {len} (capacity {MAX_SIGNATURE})"),
            ));
        }
        sig.truncate(len);
        // Check the callback's signature at once: a broken HSM binding should fail here, not at the CA.
        let public = crate::crypto::public_key_from_der(&self.spki)?;
        crate::crypto::verify_signature(self.alg, &public, tbs, &sig).map_err(|e| {
            Error::new(
                ErrorCode::KeyCallbackFailed,
                format!(
                    "the sign callback's signature does not verify with the key's public key: {}",
                    e.detail
                ),
            )
        })?;
        Ok(sig)
    }
}

/// Generate a new key pair of `kind` (a `cmpkit_key_kind`; `bits` is used for RSA only; 0
/// means 2048).
///
/// On success `*out` receives a key the caller frees with `cmpkit_key_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_generate(
    kind: u32,
    bits: u32,
    out: *mut *mut cmpkit_key,
) -> ErrorCode {
    guard(|| {
        let kind = key_type(kind, bits)?;
        let key = SoftwareKey::generate(kind)?;
        // SAFETY: `out` is NULL or writable per the API contract.
        unsafe { write_handle(out, cmpkit_key::software(key), "out") }
    })
}

/// Load a private key from PEM (PKCS#8, SEC1, PKCS#1) or DER (PKCS#8).
///
/// On success `*out` receives a key the caller frees with `cmpkit_key_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_from_pem_or_der(
    data: *const u8,
    len: usize,
    out: *mut *mut cmpkit_key,
) -> ErrorCode {
    guard(|| {
        // SAFETY: the caller passes a buffer of `len` readable bytes.
        let data = unsafe { try_bytes(data, len, "data") }?;
        let key = SoftwareKey::from_pem_or_der(data)?;
        // SAFETY: `out` is NULL or writable.
        unsafe { write_handle(out, cmpkit_key::software(key), "out") }
    })
}

/// A key whose private half stays with the caller: the library knows only the public key
/// (`spki_der`, a DER SubjectPublicKeyInfo) and asks `sign` for every signature with `alg`
/// (a `cmpkit_sig_alg`). The library checks each returned signature against the public key.
///
/// `free_userdata` (may be NULL) is called exactly once with `userdata` when the key is no
/// longer used by any handle, also when this call fails. On success `*out` receives a key the
/// caller frees with `cmpkit_key_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_new_external(
    spki_der: *const u8,
    spki_len: usize,
    alg: u32,
    sign: cmpkit_sign_fn,
    userdata: *mut c_void,
    free_userdata: cmpkit_free_fn,
    out: *mut *mut cmpkit_key,
) -> ErrorCode {
    guard(|| {
        let release = || {
            if let Some(f) = free_userdata {
                // SAFETY: the caller's finalizer for `userdata`; this call fails, so it runs once here.
                unsafe { f(userdata) };
            }
        };
        let checked = (|| {
            // SAFETY: the caller passes `spki_len` readable bytes.
            let spki = unsafe { try_bytes(spki_der, spki_len, "spki_der") }?.to_vec();
            let sign =
                sign.ok_or_else(|| Error::new(ErrorCode::NullArgument, "sign callback is NULL"))?;
            let alg = sig_alg_from_u32(alg)?;
            let public = crate::crypto::public_key_from_der(&spki).map_err(|e| {
                Error::new(
                    ErrorCode::KeyError,
                    format!("spki_der is not a SubjectPublicKeyInfo: {}", e.detail),
                )
            })?;
            SigAlg::default_for(&public)?;
            if out.is_null() {
                return Err(Error::new(ErrorCode::NullArgument, "out is NULL"));
            }
            Ok((spki, sign, alg))
        })();
        let (spki, sign, alg) = match checked {
            Ok(v) => v,
            Err(e) => {
                release();
                return Err(e);
            }
        };
        let key = ExternalKey {
            spki,
            alg,
            sign,
            userdata,
            free: free_userdata,
        };
        let handle = cmpkit_key {
            signer: Arc::new(key),
            software: None,
        };
        // SAFETY: `out` checked non-NULL above and writable per the contract.
        unsafe { write_handle(out, handle, "out") }
    })
}

/// The key type for a `cmpkit_key_kind` value (`bits` for RSA; 0 means 2048).
pub(crate) fn key_type(kind: u32, bits: u32) -> Result<KeyType> {
    Ok(match kind {
        1 => KeyType::EcP256,
        2 => KeyType::EcP384,
        3 => KeyType::EcP521,
        4 => KeyType::Rsa(if bits == 0 { 2048 } else { bits }),
        5 => KeyType::Ed25519,
        6 => KeyType::Ed448,
        k => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("unknown key kind {k}"),
            ))
        }
    })
}

pub(crate) fn sig_alg_from_u32(v: u32) -> Result<SigAlg> {
    use SigAlg::*;
    Ok(match v {
        1 => EcdsaSha256,
        2 => EcdsaSha384,
        3 => EcdsaSha512,
        4 => RsaSha256,
        5 => RsaSha384,
        6 => RsaSha512,
        7 => RsaPssSha256,
        8 => Ed25519,
        9 => Ed448,
        _ => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("unknown signature algorithm {v}"),
            ))
        }
    })
}

/// The key's public key as DER SubjectPublicKeyInfo. Borrowed until the key is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_public_key_der(
    key: *const cmpkit_key,
    der: *mut *const u8,
    der_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `key` is NULL or a live handle.
        let key = unsafe { try_ref(key, "key") }?;
        // SAFETY: out-params are NULL or writable per the contract.
        unsafe { borrow_out(key.signer.public_key_der(), der, der_len) }
    })
}

/// Write the private key as PKCS#8 PEM into `buf` (capacity `cap`), its length to `*len`.
///
/// If `buf` is NULL or too small, returns `CMPKIT_RESULT_BUFFER_TOO_SMALL` with the
/// required size in `*len`. External keys have no private key to export (`NOT_FOUND`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_private_key_pem(
    key: *const cmpkit_key,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `key` is NULL or a live handle.
        let key = unsafe { try_ref(key, "key") }?;
        let sw = key.software.as_ref().ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                "an external key has no private key to export",
            )
        })?;
        let pem = sw.to_pkcs8_pem()?;
        // SAFETY: `buf` is NULL or writable for `cap` bytes; `len` NULL or writable.
        unsafe { copy_out(&pem, buf, cap, len) }
    })
}

/// Sign `tbs` with `key` (a software key, for sign callbacks and tests): the signature goes
/// into `sig` (capacity `cap`), its length to `*sig_len`. The algorithm is the key's default
/// (ECDSA with SHA-256 for P-256, and so on; DER for ECDSA, raw for RSA and EdDSA).
///
/// If `sig` is NULL or too small, returns `CMPKIT_RESULT_BUFFER_TOO_SMALL` with the required
/// size in `*sig_len` (ECDSA signatures vary in length: size the buffer for the largest,
/// e.g. 72 bytes for P-256, or query with `sig` NULL — the query signs once too). For an
/// external key this calls the key's own sign callback, so a callback must not pass its own
/// key here.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_sign(
    key: *const cmpkit_key,
    tbs: *const u8,
    tbs_len: usize,
    sig: *mut u8,
    cap: usize,
    sig_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `key` is NULL or a live handle.
        let key = unsafe { try_ref(key, "key") }?;
        // SAFETY: the caller passes `tbs_len` readable bytes.
        let tbs = unsafe { try_bytes(tbs, tbs_len, "tbs") }?;
        let signature = key.signer.sign(tbs)?;
        // SAFETY: `sig` is NULL or writable for `cap` bytes; `sig_len` NULL or writable.
        unsafe { copy_out(&signature, sig, cap, sig_len) }
    })
}

/// Free a key handle (NULL is ignored). Requests and contexts using it keep their own reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_key_free(key: *mut cmpkit_key) {
    // SAFETY: `key` is NULL or a handle from this library, freed once.
    unsafe { free_handle(key) };
}
