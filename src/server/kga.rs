//! Central key generation on the server side (RFC 9483 §4.1.6, RFC 9810 §5.2.2): the server
//! acts as key generation authority (KGA). It generates the key pair the request's template
//! asks for, has the CA certify it, and delivers the private key to the requester as an
//! `EncryptedKey`: an EnvelopedData (key transport or key agreement to the requester's CMP
//! protection certificate, or a password recipient keyed by its MAC secret) holding a
//! SignedData over an `AsymmetricKeyPackage`, signed with
//! the server's own key — the CA's, for the demo CA, which RFC 9480 §2.2 allows without the
//! id-kp-cmKGA extended key usage.
//!
//! The SignedData is assembled with the `cms` crate's types and signed through our
//! [`Signer`](crate::crypto::Signer) (so an HSM-held server key works); the EnvelopedData is
//! OpenSSL's CMS, labelled id-signedData as RFC 9483 asks.

use super::ServerSigner;
use crate::asn1::{oid, EncryptedKey};
use crate::crypto::{KeyType, SigAlg, SoftwareKey};
use crate::error::{Error, ErrorCode, Result};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::EnvelopedData;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::{hash, MessageDigest};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::ffi::{c_int, c_void};
use x509_cert::attr::Attribute;

/// Whether a certificate template asks for central key generation: no public key, or an
/// algorithm with an empty subjectPublicKey (RFC 9483 §4.1.6).
pub(crate) fn requested(spki: Option<&SubjectPublicKeyInfoOwned>) -> bool {
    spki.is_none_or(|s| s.subject_public_key.raw_bytes().is_empty())
}

/// A new key pair of the algorithm the template names (EC P-256/384/521 by its curve,
/// RSA 2048, Ed25519, Ed448), EC P-256 when it names none.
pub(crate) fn generate(spki: Option<&SubjectPublicKeyInfoOwned>) -> Result<SoftwareKey> {
    let kind = match spki.map(|s| &s.algorithm) {
        None => KeyType::EcP256,
        Some(alg) if alg.oid == const_oid::db::rfc5912::ID_EC_PUBLIC_KEY => {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
            match curve {
                None => KeyType::EcP256,
                Some(c) if c == const_oid::db::rfc5912::SECP_256_R_1 => KeyType::EcP256,
                Some(c) if c == const_oid::db::rfc5912::SECP_384_R_1 => KeyType::EcP384,
                Some(c) if c == const_oid::db::rfc5912::SECP_521_R_1 => KeyType::EcP521,
                Some(c) => return Err(unsupported(format!("the curve {c}"))),
            }
        }
        Some(alg) if alg.oid == const_oid::db::rfc5912::RSA_ENCRYPTION => KeyType::Rsa(2048),
        Some(alg) if alg.oid == const_oid::db::rfc8410::ID_ED_25519 => KeyType::Ed25519,
        Some(alg) if alg.oid == const_oid::db::rfc8410::ID_ED_448 => KeyType::Ed448,
        Some(alg) => return Err(unsupported(format!("the key algorithm {}", alg.oid))),
    };
    SoftwareKey::generate(kind)
}

fn unsupported(what: String) -> Error {
    Error::new(
        ErrorCode::UnsupportedAlgorithm,
        format!("central key generation: {what} is not supported"),
    )
}

/// The `EncryptedKey` delivering `key` to the holder of `recipient` (DER certificate):
/// signed by `signer`, enveloped for `recipient`'s public key. The signed content is an
/// `AsymmetricKeyPackage` holding the key's `OneAsymmetricKey`, or with `bare` that
/// `OneAsymmetricKey` itself (see [`ServerConfig::central_keygen_bare_key`]).
///
/// [`ServerConfig::central_keygen_bare_key`]: super::ServerConfig::central_keygen_bare_key
pub(crate) fn deliver(
    key: &SoftwareKey,
    signer: &ServerSigner,
    recipient: Recipient<'_>,
    bare: bool,
) -> Result<EncryptedKey> {
    let signed = sign_key_package(&key_package(key, bare)?, signer)?;
    match recipient {
        Recipient::Certificate(der) => envelop(&signed, &X509::from_der(der)?),
        Recipient::Password(secret) => envelop_with_password(&signed, secret),
    }
}

/// Who can open the delivered key.
pub(crate) enum Recipient<'a> {
    /// The holder of this certificate's key (DER): key transport or key agreement.
    Certificate(&'a [u8]),
    /// Whoever knows this shared secret (the request's MAC secret): a password recipient
    /// (RFC 3211 PWRI-KEK with PBKDF2, RFC 9483 §4.1.6.3).
    Password(&'a [u8]),
}

/// PBKDF2 iterations of the password recipient info.
const PWRI_ITERATIONS: c_int = 10_000;

/// libcrypto functions openssl-sys does not declare (not part of our C API).
///
/// cbindgen:ignore
mod ffi {
    use std::ffi::{c_int, c_uint};
    extern "C" {
        /// Part of libcrypto's public CMS API since OpenSSL 1.0.2. Takes ownership of `pass`
        /// (allocated with OPENSSL_malloc).
        pub(super) fn CMS_add0_recipient_password(
            cms: *mut openssl_sys::CMS_ContentInfo,
            iter: c_int,
            wrap_nid: c_int,
            pbe_nid: c_int,
            pass: *mut u8,
            passlen: isize,
            kekciph: *const openssl_sys::EVP_CIPHER,
        ) -> *mut c_void;
        /// Part of libcrypto's public CMS API since OpenSSL 1.0.2.
        pub(super) fn CMS_final(
            cms: *mut openssl_sys::CMS_ContentInfo,
            data: *mut openssl_sys::BIO,
            dcont: *mut openssl_sys::BIO,
            flags: c_uint,
        ) -> c_int;
    }
    use std::ffi::c_void;
}

/// EnvelopedData (AES-256-CBC) around `signed` for a password recipient: the KEK is derived
/// from `secret` with PBKDF2 and wraps the content key (RFC 3211).
fn envelop_with_password(signed: &[u8], secret: &[u8]) -> Result<EncryptedKey> {
    let fail = |what: &str| {
        Error::new(
            ErrorCode::EncodingFailed,
            format!(
                "password recipient: {what}: {}",
                openssl::error::ErrorStack::get()
            ),
        )
    };
    let data_len = c_int::try_from(signed.len())
        .map_err(|_| Error::new(ErrorCode::EncodingFailed, "key package too large"))?;
    let pass_len = isize::try_from(secret.len())
        .map_err(|_| Error::new(ErrorCode::InvalidArgument, "secret too long"))?;
    let flags = openssl_sys::CMS_BINARY | openssl_sys::CMS_PARTIAL;
    // SAFETY: every pointer below is checked for NULL before use and freed on every path:
    // `cms` with CMS_ContentInfo_free, `bio` with BIO_free_all. `pass` is allocated with
    // OPENSSL_malloc because CMS_add0_recipient_password takes ownership of it (freed with
    // the CMS structure); on its failure we free it ourselves. The memory BIO reads `signed`,
    // which outlives it. i2d writes at most the length it reported into `der`.
    unsafe {
        let cms = openssl_sys::CMS_encrypt(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            openssl_sys::EVP_aes_256_cbc(),
            flags,
        );
        if cms.is_null() {
            return Err(fail("CMS_encrypt"));
        }
        let pass =
            openssl_sys::CRYPTO_malloc(secret.len().max(1), c"kga.rs".as_ptr(), line!() as c_int)
                as *mut u8;
        if pass.is_null() {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("OPENSSL_malloc"));
        }
        std::ptr::copy_nonoverlapping(secret.as_ptr(), pass, secret.len());
        let ri = ffi::CMS_add0_recipient_password(
            cms,
            PWRI_ITERATIONS,
            openssl_sys::NID_undef,
            openssl_sys::NID_undef,
            pass,
            pass_len,
            std::ptr::null(),
        );
        if ri.is_null() {
            openssl_sys::CRYPTO_free(pass as *mut c_void, c"kga.rs".as_ptr(), line!() as c_int);
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("CMS_add0_recipient_password"));
        }
        let bio = openssl_sys::BIO_new_mem_buf(signed.as_ptr() as *const c_void, data_len);
        if bio.is_null() {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("BIO_new_mem_buf"));
        }
        let ok = ffi::CMS_final(cms, bio, std::ptr::null_mut(), flags);
        openssl_sys::BIO_free_all(bio);
        if ok != 1 {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("CMS_final"));
        }
        let len = openssl_sys::i2d_CMS_ContentInfo(cms, std::ptr::null_mut());
        let Ok(n) = usize::try_from(len) else {
            openssl_sys::CMS_ContentInfo_free(cms);
            return Err(fail("i2d_CMS_ContentInfo"));
        };
        let mut der = vec![0u8; n];
        let mut p = der.as_mut_ptr();
        let written = openssl_sys::i2d_CMS_ContentInfo(cms, &mut p);
        openssl_sys::CMS_ContentInfo_free(cms);
        if written != len {
            return Err(fail("i2d_CMS_ContentInfo"));
        }
        labelled_signed_data(&der)
    }
}

/// The content to sign: an `AsymmetricKeyPackage` holding `key`'s `OneAsymmetricKey`, or
/// with `bare` the `OneAsymmetricKey` itself.
fn key_package(key: &SoftwareKey, bare: bool) -> Result<Vec<u8>> {
    let one_asymmetric_key = key.to_pkcs8_der()?;
    Ok(if bare {
        one_asymmetric_key
    } else {
        vec![Any::from_der(&one_asymmetric_key)?].to_der()?
    })
}

/// `SignedData` (DER, not wrapped in a ContentInfo) over the `AsymmetricKeyPackage`
/// `package`, with signed attributes contentType and messageDigest (RFC 5652 §5.3).
fn sign_key_package(package: &[u8], signer: &ServerSigner) -> Result<Vec<u8>> {
    let (md, digest_oid) = match signer.key.algorithm() {
        SigAlg::EcdsaSha256 | SigAlg::RsaSha256 | SigAlg::RsaPssSha256 => {
            (MessageDigest::sha256(), const_oid::db::rfc5912::ID_SHA_256)
        }
        SigAlg::EcdsaSha384 | SigAlg::RsaSha384 => {
            (MessageDigest::sha384(), const_oid::db::rfc5912::ID_SHA_384)
        }
        // RFC 8419 §3: Ed25519 in CMS with SHA-512 as the message digest.
        SigAlg::EcdsaSha512 | SigAlg::RsaSha512 | SigAlg::Ed25519 => {
            (MessageDigest::sha512(), const_oid::db::rfc5912::ID_SHA_512)
        }
        other => {
            return Err(unsupported(format!(
                "signing the key package with {other:?}"
            )))
        }
    };
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest_oid,
        parameters: None,
    };
    let attr = |oid, value: Any| -> Result<Attribute> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attr(
            const_oid::db::rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&oid::CT_KP_A_KEY_PACKAGE)?,
        )?,
        attr(
            const_oid::db::rfc5911::ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(hash(md, package)?.to_vec())?)?,
        )?,
    ])?;
    // The signature covers the DER of the attributes as a SET (RFC 5652 §5.4).
    let signature = signer.key.sign(&signed_attrs.to_der()?)?;
    let cert = x509_cert::Certificate::from_der(&signer.cert.to_der()?)?;
    let tbs = cert.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signer.key.algorithm().algorithm_identifier(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(cert)];
    for c in &signer.chain {
        certs.push(CertificateChoices::Certificate(
            x509_cert::Certificate::from_der(&c.to_der()?)?,
        ));
    }
    Ok(SignedData {
        // RFC 5652 §5.1: version 3 when the eContentType is not id-data.
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::CT_KP_A_KEY_PACKAGE,
            econtent: Some(Any::encode_from(&OctetString::new(package)?)?),
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(certs)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    }
    .to_der()?)
}

/// EnvelopedData (AES-256-CBC; key transport for RSA, key agreement for EC recipients)
/// around `signed`, with content type id-signedData.
///
/// OpenSSL's `CMS_encrypt` labels the content id-data; the label is not covered by the
/// encryption (EnvelopedData has no integrity protection of its own), so it is set to
/// id-signedData in the decoded structure, as RFC 9483 §4.1.6 asks.
fn envelop(signed: &[u8], recipient: &X509) -> Result<EncryptedKey> {
    let mut recipients = Stack::new()?;
    recipients.push(recipient.clone())?;
    let cms = CmsContentInfo::encrypt(
        &recipients,
        signed,
        Cipher::aes_256_cbc(),
        CMSOptions::BINARY,
    )?;
    labelled_signed_data(&cms.to_der()?)
}

/// The EnvelopedData of the DER ContentInfo `content_info`, its content labelled
/// id-signedData.
fn labelled_signed_data(content_info: &[u8]) -> Result<EncryptedKey> {
    let ci = ContentInfo::from_der(content_info)?;
    let mut enveloped: EnvelopedData = ci.content.decode_as()?;
    enveloped.encrypted_content.content_type = oid::CT_SIGNED_DATA;
    Ok(EncryptedKey::EnvelopedData(Box::new(enveloped)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Signer;
    use crate::server::demo_ca::DemoCa;

    /// The signed content: an AsymmetricKeyPackage with the one key, or the bare key; the
    /// SignedData is labelled id-ct-KP-aKeyPackage, signed by the server's key (OpenSSL
    /// verifies it), and the EnvelopedData around it is labelled id-signedData. (Opening
    /// a delivered key end to end: tests/server.rs, with cmpkit's client.)
    #[test]
    fn key_package_signed_data_and_envelope_carry_rfc_9483_labels() {
        let ca = DemoCa::generate().unwrap();
        let signer = ca.signer().unwrap();
        let key = generate(None).unwrap();
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let package = key_package(&key, false).unwrap();
        assert_eq!(
            Vec::<Any>::from_der(&package).unwrap()[0].to_der().unwrap(),
            pkcs8
        );
        assert_eq!(key_package(&key, true).unwrap(), pkcs8);

        let signed = sign_key_package(&package, &signer).unwrap();
        let sd = SignedData::from_der(&signed).unwrap();
        assert_eq!(
            sd.encap_content_info.econtent_type,
            oid::CT_KP_A_KEY_PACKAGE
        );
        let out = crate::crypto::decrypt::signed_content(&signed)
            .expect("OpenSSL verifies the SignedData");
        assert_eq!(out, package);

        let recipient = ca.cert().clone();
        let EncryptedKey::EnvelopedData(env) = envelop(&signed, &recipient).unwrap() else {
            panic!("not EnvelopedData")
        };
        assert_eq!(env.encrypted_content.content_type, oid::CT_SIGNED_DATA);
    }

    #[test]
    fn the_template_algorithm_chooses_the_key_and_unknown_ones_are_refused() {
        let spki = |k: KeyType| {
            let key = SoftwareKey::generate(k).unwrap();
            SubjectPublicKeyInfoOwned::from_der(key.public_key_der()).unwrap()
        };
        assert_eq!(
            generate(Some(&spki(KeyType::EcP384)))
                .unwrap()
                .pkey()
                .bits(),
            384
        );
        assert_eq!(
            generate(Some(&spki(KeyType::Ed25519))).unwrap().algorithm(),
            SigAlg::Ed25519
        );
        let mut odd = spki(KeyType::EcP256);
        odd.algorithm.oid = const_oid::db::rfc5912::ID_DSA;
        assert_eq!(
            generate(Some(&odd)).unwrap_err().code,
            ErrorCode::UnsupportedAlgorithm
        );
        assert!(requested(None));
        assert!(!requested(Some(&spki(KeyType::EcP256))));
    }
}
