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
/// - `id-data`: the PKCS#8 key itself, or — as OpenSSL 3.5's CMP server sends it — a
///   SignedData (handled as above).
///
/// Interoperability (OpenSSL 3.5.5, captured in tests/vectors/openssl-3.5-centralkeygen):
/// its SignedData carries `id-data` rather than `id-ct-KP-aKeyPackage`, and a single
/// private key in OpenSSL's type-specific DER (e.g. SEC1 `ECPrivateKey`) rather than an
/// `AsymmetricKeyPackage`; both are accepted, the key is handed on as PKCS#8.
///
/// `key_cert_issuer` is the DER of the issuer name of the certificate the key belongs to: a
/// CA certificate with that subject may sign the package without `id-kp-cmKGA` (RFC 9480
/// §2.2: "CMP key generation authorities are CAs or are identified by the id-kp-cmKGA
/// extended key usage").
pub(crate) fn extract_private_key(
    content_type: ObjectIdentifier,
    content: &[u8],
    trust: Option<&TrustStore>,
    untrusted: &[X509],
    key_cert_issuer: Option<&[u8]>,
) -> Result<DeliveredKey> {
    let invalid = |d: String| Error::new(ErrorCode::KeyPackageInvalid, d);
    let signed_data = content_type == oid::CT_SIGNED_DATA
        || (content_type == oid::CT_DATA
            && crate::message::from_der_checked::<SignedData>(content).is_ok());
    match content_type {
        _ if signed_data => {
            let sd = crate::message::from_der_checked::<SignedData>(content)
                .map_err(|e| invalid(format!("the decrypted content is not a SignedData: {e}")))?;
            let econtent_type = sd.encap_content_info.econtent_type;
            if econtent_type != oid::CT_KP_A_KEY_PACKAGE && econtent_type != oid::CT_DATA {
                return Err(invalid(format!(
                    "the SignedData carries {econtent_type}, not an AsymmetricKeyPackage"
                )));
            }
            let signer = signer_certificate(&sd)?;
            // The signature is checked here; the signer's certificate below, against `trust`.
            let out =
                SecretBytes::new(signed_content(content).map_err(|e| {
                    invalid(format!("the key package signature does not verify: {e}"))
                })?);
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
                check_kga(&signer, key_cert_issuer)?;
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

/// The content of the DER `SignedData` `signed_data` after OpenSSL checked its signature
/// with the signer certificate it carries (the certificate itself is not validated here).
pub(crate) fn signed_content(signed_data: &[u8]) -> Result<Vec<u8>> {
    let ci = ContentInfo {
        content_type: oid::CT_SIGNED_DATA,
        content: Any::from_der(signed_data)?,
    }
    .to_der()?;
    let mut cms = CmsContentInfo::from_der(&ci)?;
    let mut out = Vec::new();
    cms.verify(
        None,
        None,
        None,
        Some(&mut out),
        CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )?;
    Ok(out)
}

/// The one `OneAsymmetricKey` of an `AsymmetricKeyPackage ::= SEQUENCE OF OneAsymmetricKey`;
/// or, as OpenSSL 3.5 sends it, a single private key in PKCS#8 or OpenSSL's type-specific
/// DER, returned as PKCS#8.
fn single_key(package: &[u8]) -> Result<SecretBytes> {
    if let Ok(key) = PKey::private_key_from_der(package) {
        return Ok(SecretBytes::new(key.private_key_to_pkcs8()?));
    }
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
fn check_kga(cert: &X509, key_cert_issuer: Option<&[u8]>) -> Result<()> {
    let parsed = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    let tbs = parsed.tbs_certificate();
    let exts = || tbs.extensions().into_iter().flatten();
    for e in exts().filter(|e| e.extn_id == oid::EXT_KEY_USAGE) {
        let eku = crate::message::from_der_checked::<x509_cert::ext::pkix::ExtendedKeyUsage>(
            e.extn_value.as_bytes(),
        )?;
        if eku.0.contains(&oid::KP_CM_KGA) {
            return Ok(());
        }
    }
    let is_ca = exts()
        .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS)
        .any(|e| {
            crate::message::from_der_checked::<x509_cert::ext::pkix::BasicConstraints>(
                e.extn_value.as_bytes(),
            )
            .is_ok_and(|bc| bc.ca)
        });
    let issued_it =
        key_cert_issuer.is_some_and(|i| tbs.subject().to_der().ok().as_deref() == Some(i));
    if is_ca && issued_it {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::KeyPackageInvalid,
        "the key generation authority's certificate lacks the id-kp-cmKGA extended key usage and is not the CA that issued the certificate",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::{CertOrEncCert, PkiBody, PkiMessage};
    use der::Decode;

    fn vector(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/openssl-3.5-centralkeygen"
        );
        std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cert(name: &str) -> X509 {
        X509::from_pem(&vector(name)).unwrap()
    }

    /// The EncryptedKey and the certificate of the one CertResponse of an ip/cp.
    fn delivered(rsp: &str) -> (EncryptedKey, Vec<u8>) {
        let msg = PkiMessage::from_der(&vector(rsp)).unwrap();
        let (PkiBody::Ip(rep) | PkiBody::Cp(rep)) = msg.body else {
            panic!("{rsp}: not an ip/cp");
        };
        let ckp = rep.response[0].certified_key_pair.clone().unwrap();
        let CertOrEncCert::Certificate(c) = ckp.cert_or_enc_cert else {
            panic!("{rsp}: encrypted certificate");
        };
        (ckp.private_key.unwrap(), c.to_der().unwrap())
    }

    /// OpenSSL 3.5.5's mock server (tests/vectors/openssl-3.5-centralkeygen/INDEX.md): key
    /// agreement to an EC client and key transport to an RSA client, signed by a KGA with
    /// id-kp-cmKGA. The key decrypts, its signer validates, and it is the certified key.
    #[test]
    fn openssl_3_5_central_keygen_responses_deliver_the_certified_key() {
        let trust = TrustStore::new(&[cert("root.crt")]).unwrap();
        for (rsp, key, recipient) in [
            ("cr_centralkeygen_kari_rsp.der", "client.key", "client.crt"),
            (
                "ir_centralkeygen_ktri_rsp.der",
                "client-rsa.key",
                "client-rsa.crt",
            ),
        ] {
            let (encrypted, cert_der) = delivered(rsp);
            let decryptor = SoftwareDecryptor::new(
                PKey::private_key_from_pem(&vector(key)).unwrap(),
                cert(recipient),
            )
            .unwrap();
            let (content_type, content) =
                decrypt_encrypted_key(&encrypted, Some(&decryptor), None).unwrap();
            // OpenSSL's choice (RFC 9483 §4.1.6 has id-signedData here).
            assert_eq!(content_type, oid::CT_DATA, "{rsp}");
            let key = extract_private_key(
                content_type,
                content.as_slice(),
                Some(&trust),
                &[cert("ca.crt")],
                None,
            )
            .unwrap_or_else(|e| panic!("{rsp}: {e}"));
            assert_eq!(key.signer, Some(cert("kga.crt").to_der().unwrap()), "{rsp}");
            let pkey = PKey::private_key_from_pkcs8(key.pkcs8.as_slice()).unwrap();
            let certified = X509::from_der(&cert_der).unwrap().public_key().unwrap();
            assert!(pkey.public_eq(&certified), "{rsp}: not the certified key");
            assert!(certified.public_eq(&cert("new.crt").public_key().unwrap()));
        }
    }

    #[test]
    fn openssl_3_5_key_for_another_recipient_is_decryption_failed() {
        let (encrypted, _) = delivered("cr_centralkeygen_kari_rsp.der");
        let other = SoftwareDecryptor::new(
            PKey::private_key_from_pem(&vector("client-rsa.key")).unwrap(),
            cert("client-rsa.crt"),
        )
        .unwrap();
        let err = decrypt_encrypted_key(&encrypted, Some(&other), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecryptionFailed);
    }

    #[test]
    fn openssl_3_5_key_package_without_trusted_kga_is_key_package_invalid() {
        let (encrypted, _) = delivered("cr_centralkeygen_kari_rsp.der");
        let decryptor = SoftwareDecryptor::new(
            PKey::private_key_from_pem(&vector("client.key")).unwrap(),
            cert("client.crt"),
        )
        .unwrap();
        let (ct, content) = decrypt_encrypted_key(&encrypted, Some(&decryptor), None).unwrap();
        // Trusting only the KGA's issuer's sibling: the client's own certificate.
        let trust = TrustStore::new(&[cert("client.crt")]).unwrap();
        let Err(err) = extract_private_key(ct, content.as_slice(), Some(&trust), &[], None) else {
            panic!("accepted a key signed by an untrusted KGA");
        };
        assert_eq!(err.code, ErrorCode::KeyPackageInvalid);
        assert!(err.detail.contains("key generation authority"), "{err}");
    }
}
