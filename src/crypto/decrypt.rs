//! Decrypting private keys delivered in CMP responses (central key generation, RFC 9483
//! §4.1.6; key recovery, RFC 9810 §5.3.9/§5.3.10): the EnvelopedData of an `EncryptedKey`,
//! the SignedData of the key generation authority inside it, and the `OneAsymmetricKey`.
//!
//! Key transport and key agreement recipients are decrypted by a [`Decryptor`] (the software
//! one, [`SoftwareDecryptor`], lets OpenSSL's CMS do it; an HSM implements the trait itself);
//! password recipients (`pwri`, `id-alg-PWRI-KEK` with PBKDF2, as OpenSSL's CMP server sends
//! them for MAC-protected transactions) are decrypted with the shared secret.

use crate::asn1::{oid, EncryptedKey, EnvelopedData};
use crate::crypto::TrustStore;
use crate::error::{Error, ErrorCode, Result};
use cms::content_info::ContentInfo;
use cms::enveloped_data::RecipientInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

/// Bytes of secret material (a decrypted private key), overwritten with zeros when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Take ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into our own buffer; the
            // volatile write keeps the compiler from eliding the clearing of dead memory.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// A private key that decrypts CMS EnvelopedData for us (key transport or key agreement):
/// usually the key of our CMP protection certificate (RFC 9483 §4.1.6.1/§4.1.6.2).
///
/// Implement it to keep the key in an HSM: the library hands over the whole EnvelopedData and
/// expects its decrypted content.
pub trait Decryptor: Send + Sync {
    /// Decrypt `content_info_der`, a DER `ContentInfo` of type `id-envelopedData`, and return
    /// the decrypted content (the bytes of `encryptedContent` after decryption).
    ///
    /// Fail with [`ErrorCode::DecryptionFailed`] when no recipient info is for this key or
    /// the decryption fails.
    fn decrypt_enveloped(&self, content_info_der: &[u8]) -> Result<SecretBytes>;
}

impl std::fmt::Debug for dyn Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decryptor")
    }
}

/// A software [`Decryptor`]: an OpenSSL private key and its certificate. RSA keys decrypt
/// `KeyTransRecipientInfo`, EC (and X25519/X448) keys `KeyAgreeRecipientInfo`.
pub struct SoftwareDecryptor {
    pkey: PKey<Private>,
    cert: X509,
}

impl SoftwareDecryptor {
    /// The decryptor for `pkey`, the private key of `cert` (the certificate identifies the
    /// recipient info to use). Fails with [`ErrorCode::KeyError`] if they do not belong
    /// together.
    pub fn new(pkey: PKey<Private>, cert: X509) -> Result<Self> {
        if !cert.public_key()?.public_eq(&pkey) {
            return Err(Error::new(
                ErrorCode::KeyError,
                "the decryption key does not belong to the certificate",
            ));
        }
        Ok(SoftwareDecryptor { pkey, cert })
    }
}

impl Decryptor for SoftwareDecryptor {
    fn decrypt_enveloped(&self, content_info_der: &[u8]) -> Result<SecretBytes> {
        let cms = CmsContentInfo::from_der(content_info_der)?;
        cms.decrypt(&self.pkey, &self.cert)
            .map(SecretBytes::new)
            .map_err(|e| {
                Error::new(
                    ErrorCode::DecryptionFailed,
                    format!("OpenSSL CMS decryption with our key: {e}"),
                )
            })
    }
}

/// libcrypto functions openssl-sys does not declare (not part of our C API).
///
/// cbindgen:ignore
mod ffi {
    extern "C" {
        /// Part of libcrypto's public CMS API since OpenSSL 1.0.2.
        pub(super) fn CMS_decrypt_set1_password(
            cms: *mut openssl_sys::CMS_ContentInfo,
            pass: *mut libc::c_uchar,
            passlen: libc::ssize_t,
        ) -> libc::c_int;
    }
}

/// Decrypt a DER ContentInfo(EnvelopedData) with a password recipient info and `secret`.
fn decrypt_with_password(content_info_der: &[u8], secret: &[u8]) -> Result<SecretBytes> {
    let fail = |what: &str| {
        Error::new(
            ErrorCode::DecryptionFailed,
            format!(
                "password recipient (shared secret): {what}: {}",
                openssl::error::ErrorStack::get()
            ),
        )
    };
    let der_len = libc::c_long::try_from(content_info_der.len())
        .map_err(|_| Error::new(ErrorCode::MessageTooLarge, "EnvelopedData too large"))?;
    let mut pass = SecretBytes::new(secret.to_vec());
    let pass_len = libc::ssize_t::try_from(pass.0.len())
        .map_err(|_| Error::new(ErrorCode::InvalidArgument, "secret too long"))?;
    // SAFETY: d2i reads at most `der_len` bytes from our slice and returns an owned
    // CMS_ContentInfo (or NULL), freed below on every path. OpenSSL copies the password
    // (set1) and reads `pass_len` bytes of it. `out` is a fresh memory BIO freed on every
    // path; BIO_get_mem_data returns a pointer into its buffer, valid until the BIO is freed,
    // and its length: we copy the bytes before freeing it.
    unsafe {
        let mut p = content_info_der.as_ptr();
        let cms = openssl_sys::d2i_CMS_ContentInfo(std::ptr::null_mut(), &mut p, der_len);
        if cms.is_null() {
            return Err(fail("d2i_CMS_ContentInfo"));
        }
        if ffi::CMS_decrypt_set1_password(cms, pass.0.as_mut_ptr(), pass_len) != 1 {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("no password recipient info decrypts with the secret"));
        }
        let out = openssl_sys::BIO_new(openssl_sys::BIO_s_mem());
        if out.is_null() {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("BIO_new"));
        }
        let ok = openssl_sys::CMS_decrypt(
            cms,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            out,
            openssl_sys::CMS_BINARY,
        );
        openssl_sys::CMS_ContentInfo_free(cms);
        if ok != 1 {
            openssl_sys::BIO_free_all(out);
            return Err(fail("wrong shared secret or unsupported algorithm"));
        }
        let mut data: *mut libc::c_char = std::ptr::null_mut();
        let n = openssl_sys::BIO_get_mem_data(out, &mut data);
        let plain = if n > 0 && !data.is_null() {
            std::slice::from_raw_parts(data as *const u8, n as usize).to_vec()
        } else {
            Vec::new()
        };
        openssl_sys::BIO_free_all(out);
        Ok(SecretBytes::new(plain))
    }
}

/// Decrypt an `EncryptedKey` with whatever we have: `decryptor` for key transport/agreement
/// recipients, `secret` for password recipients. Returns the inner content type
/// (`encryptedContentInfo.contentType`) and the decrypted content.
pub(crate) fn decrypt_encrypted_key(
    key: &EncryptedKey,
    decryptor: Option<&dyn Decryptor>,
    secret: Option<&[u8]>,
) -> Result<(ObjectIdentifier, SecretBytes)> {
    let env: &EnvelopedData = match key {
        EncryptedKey::EnvelopedData(e) => e,
        EncryptedKey::EncryptedValue(_) => {
            return Err(Error::new(
                ErrorCode::DecryptionFailed,
                "the key comes as EncryptedValue, which RFC 9810 deprecates and cmpkit does not decrypt; ask the server for EnvelopedData",
            ))
        }
    };
    let mut kinds = Vec::new();
    for ri in env.recip_infos.0.iter() {
        kinds.push(match ri {
            RecipientInfo::Ktri(_) => "ktri",
            RecipientInfo::Kari(_) => "kari",
            RecipientInfo::Kekri(_) => "kekri",
            RecipientInfo::Pwri(_) => "pwri",
            RecipientInfo::Ori(_) => "ori",
        });
    }
    let ci = ContentInfo {
        content_type: oid::CT_ENVELOPED_DATA,
        content: Any::encode_from(env)?,
    }
    .to_der()?;
    let content_type = env.encrypted_content.content_type;
    let mut errors = Vec::new();
    if kinds.iter().any(|k| *k == "ktri" || *k == "kari") {
        match decryptor {
            Some(d) => match d.decrypt_enveloped(&ci) {
                Ok(plain) => return Ok((content_type, plain)),
                Err(e) => errors.push(e.detail),
            },
            None => errors.push("key transport/agreement recipient, but no decryptor is configured (ClientConfig::decryptor)".into()),
        }
    }
    if kinds.contains(&"pwri") {
        match secret {
            Some(s) => match decrypt_with_password(&ci, s) {
                Ok(plain) => return Ok((content_type, plain)),
                Err(e) => errors.push(e.detail),
            },
            None => errors.push("password recipient, but we have no shared secret".into()),
        }
    }
    Err(Error::new(
        ErrorCode::DecryptionFailed,
        format!(
            "cannot decrypt the EnvelopedData (recipients: {}): {}",
            kinds.join(", "),
            if errors.is_empty() {
                "no recipient type we support".to_string()
            } else {
                errors.join("; ")
            }
        ),
    ))
}

/// What [`extract_private_key`] found.
pub(crate) struct DeliveredKey {
    /// The private key, PKCS#8 (`OneAsymmetricKey`) DER.
    pub pkcs8: SecretBytes,
    /// The key generation authority's certificate, DER, if the key came signed.
    pub signer: Option<Vec<u8>>,
}

/// The private key in decrypted content of type `content_type`:
/// - `id-signedData` (RFC 9483 §4.1.6): a SignedData over an `AsymmetricKeyPackage`, verified
///   against its signer's certificate; with `trust`, that certificate must validate and
///   carry `id-kp-cmKGA`;
/// - `id-ct-KP-aKeyPackage`: an unsigned `AsymmetricKeyPackage`;
/// - `id-data`: the PKCS#8 key itself.
pub(crate) fn extract_private_key(
    content_type: ObjectIdentifier,
    content: &[u8],
    trust: Option<&TrustStore>,
    untrusted: &[X509],
) -> Result<DeliveredKey> {
    let invalid = |d: String| Error::new(ErrorCode::KeyPackageInvalid, d);
    match content_type {
        o if o == oid::CT_SIGNED_DATA => {
            let sd = crate::message::from_der_checked::<SignedData>(content)
                .map_err(|e| invalid(format!("the decrypted content is not a SignedData: {e}")))?;
            if sd.encap_content_info.econtent_type != oid::CT_KP_A_KEY_PACKAGE {
                return Err(invalid(format!(
                    "the SignedData carries {}, not an AsymmetricKeyPackage",
                    sd.encap_content_info.econtent_type
                )));
            }
            let signer = signer_certificate(&sd)?;
            let ci = ContentInfo {
                content_type: oid::CT_SIGNED_DATA,
                content: Any::from_der(content)?,
            }
            .to_der()?;
            let mut cms = CmsContentInfo::from_der(&ci)?;
            let mut out = Vec::new();
            // The signature is checked here; the signer's certificate below, against `trust`.
            cms.verify(
                None,
                None,
                None,
                Some(&mut out),
                CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
            )
            .map_err(|e| invalid(format!("the key package signature does not verify: {e}")))?;
            let out = SecretBytes::new(out);
            if let Some(trust) = trust {
                let mut chain = untrusted.to_vec();
                for c in sd.certificates.iter().flat_map(|s| s.0.iter()) {
                    if let cms::cert::CertificateChoices::Certificate(c) = c {
                        chain.push(X509::from_der(&c.to_der()?)?);
                    }
                }
                trust
                    .verify(&signer, &chain)
                    .map_err(|e| invalid(format!("key generation authority: {}", e.detail)))?;
                check_kga_eku(&signer)?;
            }
            Ok(DeliveredKey {
                pkcs8: single_key(&out)?,
                signer: Some(signer.to_der()?),
            })
        }
        o if o == oid::CT_KP_A_KEY_PACKAGE => Ok(DeliveredKey {
            pkcs8: single_key(content)?,
            signer: None,
        }),
        o if o == oid::CT_DATA => Ok(DeliveredKey {
            pkcs8: SecretBytes::new(content.to_vec()),
            signer: None,
        }),
        o => Err(invalid(format!(
            "the EnvelopedData carries content type {o}; expected SignedData (RFC 9483 §4.1.6)"
        ))),
    }
}

/// The one `OneAsymmetricKey` of an `AsymmetricKeyPackage ::= SEQUENCE OF OneAsymmetricKey`.
fn single_key(package: &[u8]) -> Result<SecretBytes> {
    let keys = crate::message::from_der_checked::<Vec<Any>>(package).map_err(|e| {
        Error::new(
            ErrorCode::KeyPackageInvalid,
            format!("not an AsymmetricKeyPackage: {e}"),
        )
    })?;
    match keys.as_slice() {
        [one] => Ok(SecretBytes::new(one.to_der()?)),
        other => Err(Error::new(
            ErrorCode::KeyPackageInvalid,
            format!(
                "the AsymmetricKeyPackage holds {} keys; RFC 9483 §4.1.6 asks for exactly one",
                other.len()
            ),
        )),
    }
}

/// The certificate in `sd.certificates` named by the (single) signer info's sid.
fn signer_certificate(sd: &SignedData) -> Result<X509> {
    let invalid = |d: &str| Error::new(ErrorCode::KeyPackageInvalid, d.to_string());
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(invalid("the key package needs exactly one signer"));
    };
    for c in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        let cms::cert::CertificateChoices::Certificate(c) = c else {
            continue;
        };
        let tbs = c.tbs_certificate();
        let matches = match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                let x = X509::from_der(&c.to_der()?)?;
                x.subject_key_id().map(|k| k.as_slice()) == Some(ski.0.as_bytes())
            }
        };
        if matches {
            return Ok(X509::from_der(&c.to_der()?)?);
        }
    }
    Err(invalid(
        "the key package's signer certificate is not in the SignedData",
    ))
}

/// RFC 9483 §4.1.6: the key generation authority's certificate has `id-kp-cmKGA`.
fn check_kga_eku(cert: &X509) -> Result<()> {
    let parsed = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    for e in parsed
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == oid::EXT_KEY_USAGE)
    {
        let eku = crate::message::from_der_checked::<x509_cert::ext::pkix::ExtendedKeyUsage>(
            e.extn_value.as_bytes(),
        )?;
        if eku.0.contains(&oid::KP_CM_KGA) {
            return Ok(());
        }
    }
    Err(Error::new(
        ErrorCode::KeyPackageInvalid,
        "the key generation authority's certificate lacks the id-kp-cmKGA extended key usage",
    ))
}
