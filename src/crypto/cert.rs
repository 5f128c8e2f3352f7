//! Certificates: parsing, trust anchors and chain validation, key comparison.

use crate::crypto::{SigAlg, VerifyingKey};
use crate::error::{Error, ErrorCode, Result};
use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Parse one certificate from DER.
pub fn parse_der(der: &[u8]) -> Result<X509> {
    X509::from_der(der).map_err(|e| {
        Error::new(
            ErrorCode::BadCertificate,
            format!("cannot parse certificate: {e}"),
        )
    })
}

/// Parse one or more certificates from PEM or a single DER certificate.
pub fn parse_pem_or_der(data: &[u8]) -> Result<Vec<X509>> {
    if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        let certs = X509::stack_from_pem(data).map_err(|e| {
            Error::new(
                ErrorCode::BadCertificate,
                format!("cannot parse PEM certificates: {e}"),
            )
        })?;
        if certs.is_empty() {
            return Err(Error::new(
                ErrorCode::BadCertificate,
                "no certificate in PEM input",
            ));
        }
        Ok(certs)
    } else {
        Ok(vec![parse_der(data)?])
    }
}

/// How long a successful validation of a certificate is remembered.
pub const VALIDATION_CACHE_TTL: Duration = Duration::from_secs(300);
/// How many validated certificates are remembered at most (the cache is emptied when full).
const VALIDATION_CACHE_CAPACITY: usize = 4096;

/// Trust anchors for validating the peer's protection certificate.
///
/// A certificate that validated is remembered (by its DER) for [`VALIDATION_CACHE_TTL`] as a
/// [`ValidatedCert`]: parsed, with its public key and verification contexts, so the peer's
/// chain is built and checked once, and its certificate parsed and hashed once, not for
/// every message and transaction; revocation is not checked either way. Shared by threads.
pub struct TrustStore {
    store: X509Store,
    count: usize,
    validated: Mutex<HashSet<CacheEntry>>,
}

/// A remembered validation: until when, and the result. Found by the certificate's DER.
struct CacheEntry {
    until: Instant,
    cert: Arc<ValidatedCert>,
}

impl Borrow<[u8]> for CacheEntry {
    fn borrow(&self) -> &[u8] {
        &self.cert.der
    }
}

impl PartialEq for CacheEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cert.der == other.cert.der
    }
}

impl Eq for CacheEntry {}

impl Hash for CacheEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the `[u8]` it borrows as, so that the cache is searched by DER.
        self.cert.der[..].hash(state);
    }
}

/// A certificate that validated against a [`TrustStore`] (or was configured as trusted),
/// parsed once, with what its checks need.
#[derive(Debug)]
pub struct ValidatedCert {
    /// The certificate.
    pub cert: X509,
    /// Its public key.
    pub public_key: PKey<Public>,
    /// Its DER encoding.
    pub der: Vec<u8>,
    /// The DER encoding of its subject name.
    pub subject_der: Vec<u8>,
    /// SHA-256 of `der`, computed when first asked for.
    sha256: OnceLock<[u8; 32]>,
    /// `public_key`, with verification contexts kept for the messages it signs.
    verifier: VerifyingKey,
    /// Where [`fields`](Self::fields) are in `der`, read once (or why they do not read).
    fields: der::Result<crate::asn1::CertFieldSpans>,
}

impl ValidatedCert {
    /// `cert` with its public key, DER and subject. No validation is done: the caller has
    /// established that the certificate is to be trusted.
    pub fn new(cert: X509) -> Result<Self> {
        let der = cert.to_der()?;
        Self::with_der(cert, der)
    }

    /// [`new`](Self::new) for `cert` parsed from `der`.
    fn with_der(cert: X509, der: Vec<u8>) -> Result<Self> {
        let public_key = cert.public_key()?;
        let fields = crate::asn1::CertFields::read(&der).map(|f| f.spans(&der));
        Ok(ValidatedCert {
            subject_der: cert.subject_name().to_der()?,
            sha256: OnceLock::new(),
            verifier: VerifyingKey::new(public_key.clone()),
            fields,
            public_key,
            der,
            cert,
        })
    }

    /// SHA-256 of [`der`](Self::der), computed once (a certificate the [`TrustStore`]
    /// remembers is hashed once while remembered, not for every message).
    pub fn sha256(&self) -> &[u8; 32] {
        self.sha256.get_or_init(|| openssl::sha::sha256(&self.der))
    }

    /// The certificate's fields (serial, issuer, subject, ...), read once when it was
    /// validated: a signer's certificate is read once while the [`TrustStore`] remembers it,
    /// not for every message. An error if they do not read (OpenSSL, which parsed the
    /// certificate, accepts some encodings that `der` refuses).
    pub fn fields(&self) -> der::Result<crate::asn1::CertFields<'_>> {
        match &self.fields {
            // `der` is a public field: should it have been cut short, read what it holds.
            Ok(spans) => spans
                .fields(&self.der)
                .map_or_else(|| crate::asn1::CertFields::read(&self.der), Ok),
            Err(e) => Err(*e),
        }
    }

    /// Verify `sig` over the concatenation of `parts` with the certificate's key, on a
    /// verification context kept from an earlier call where there is one (see
    /// [`VerifyingKey`]). Errors as [`verify_signature_parts`](crate::crypto::verify_signature_parts).
    pub fn verify_signature_parts(&self, alg: SigAlg, parts: &[&[u8]], sig: &[u8]) -> Result<()> {
        self.verifier.verify_parts(alg, parts, sig)
    }
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.count)
            .finish()
    }
}

impl TrustStore {
    /// A store trusting exactly `anchors`.
    pub fn new(anchors: &[X509]) -> Result<Self> {
        let mut b = X509StoreBuilder::new()?;
        for a in anchors {
            b.add_cert(a.clone())?;
        }
        Ok(TrustStore {
            store: b.build(),
            count: anchors.len(),
            validated: Mutex::new(HashSet::new()),
        })
    }

    /// Validate `leaf` up to a trust anchor, using `untrusted` as intermediate candidates.
    /// Fails with [`ErrorCode::SignerNotTrusted`] naming OpenSSL's reason.
    pub fn verify(&self, leaf: &X509, untrusted: &[X509]) -> Result<()> {
        let der = leaf.to_der()?;
        self.validate_der(&der, || Ok(untrusted.to_vec()))
            .map(|_| ())
    }

    /// Validate the DER certificate `leaf_der` up to a trust anchor and return it parsed,
    /// with its public key. `untrusted` supplies intermediate candidates; it is called only
    /// when the certificate is not remembered from an earlier validation. Fails with
    /// [`ErrorCode::BadCertificate`] if `leaf_der` does not parse, and with
    /// [`ErrorCode::SignerNotTrusted`] naming OpenSSL's reason if it does not validate.
    pub fn validate_der(
        &self,
        leaf_der: &[u8],
        untrusted: impl FnOnce() -> Result<Vec<X509>>,
    ) -> Result<Arc<ValidatedCert>> {
        let now = Instant::now();
        // Every operation leaves the set consistent, so a poisoned lock is still usable.
        let cache = || self.validated.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = cache().get(leaf_der) {
            if e.until > now {
                return Ok(Arc::clone(&e.cert));
            }
        }
        let cert = parse_der(leaf_der)?;
        self.verify_chain(&cert, &untrusted()?)?;
        let v = Arc::new(ValidatedCert::with_der(cert, leaf_der.to_vec())?);
        let mut c = cache();
        if c.len() >= VALIDATION_CACHE_CAPACITY {
            c.clear();
        }
        // Replaces an expired entry for the same certificate.
        c.replace(CacheEntry {
            until: now + VALIDATION_CACHE_TTL,
            cert: Arc::clone(&v),
        });
        Ok(v)
    }

    /// [`validate_der`](Self::validate_der) of the first of a message's extraCerts,
    /// `leaf_der`, with `untrusted` and then `more` (the rest of the extraCerts) as
    /// intermediate candidates; they are parsed only when the certificate is not remembered.
    pub fn validate_der_among(
        &self,
        leaf_der: &[u8],
        untrusted: &[X509],
        more: &[crate::asn1::CmpCertificate],
    ) -> Result<Arc<ValidatedCert>> {
        self.validate_der(leaf_der, || {
            let mut all = untrusted.to_vec();
            for c in more {
                all.push(parse_der(c.der())?);
            }
            Ok(all)
        })
    }

    fn verify_chain(&self, leaf: &X509, untrusted: &[X509]) -> Result<()> {
        let mut chain = Stack::new()?;
        for c in untrusted {
            chain.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        let (ok, reason) = ctx.init(&self.store, leaf, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().error_string().to_owned()))
        })?;
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::SignerNotTrusted,
                format!(
                    "certificate {} does not validate against the trust anchors: {reason}",
                    subject_text(leaf)
                ),
            ))
        }
    }
}

/// The subject of a certificate as one line of text (for messages).
pub fn subject_text(cert: &X509) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|e| {
            let k = e.object().nid().short_name().unwrap_or("?");
            let v = e.data().to_string().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect();
    format!("\"{}\"", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_cert(name: &str) -> X509 {
        let p = format!(
            "{}/tests/vectors/openssl-3.0/pki/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse_pem_or_der(&std::fs::read(p).unwrap())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn server_cert_validates_through_the_issuing_ca_to_the_root() {
        let store = TrustStore::new(&[vec_cert("root.crt")]).unwrap();
        store
            .verify(&vec_cert("server.crt"), &[vec_cert("ca.crt")])
            .unwrap();
    }

    #[test]
    fn a_validated_certificate_is_remembered_for_the_next_check() {
        let store = TrustStore::new(&[vec_cert("root.crt")]).unwrap();
        store
            .verify(&vec_cert("server.crt"), &[vec_cert("ca.crt")])
            .unwrap();
        // The chain was proven once; the intermediate is not needed again within the TTL.
        store.verify(&vec_cert("server.crt"), &[]).unwrap();
        // Another certificate is still checked in full.
        assert_eq!(
            store.verify(&vec_cert("client.crt"), &[]).unwrap_err().code,
            ErrorCode::SignerNotTrusted
        );
    }

    fn der(c: &X509) -> Vec<u8> {
        c.to_der().unwrap()
    }

    #[test]
    fn a_remembered_certificate_is_found_by_its_der_and_carries_its_sha256() {
        let store = TrustStore::new(&[vec_cert("root.crt")]).unwrap();
        let server = der(&vec_cert("server.crt"));
        let first = store
            .validate_der(&server, || Ok(vec![vec_cert("ca.crt")]))
            .unwrap();
        assert_eq!(first.sha256(), &openssl::sha::sha256(&server));
        assert_eq!(first.der, server);
        let again = store
            .validate_der(&server, || panic!("remembered: no intermediates needed"))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn a_validated_certificate_keeps_the_fields_read_from_its_der() {
        let v = ValidatedCert::new(vec_cert("server.crt")).unwrap();
        let read = crate::asn1::CertFields::read(&v.der).unwrap();
        assert_eq!(v.fields().unwrap(), read);
        assert_eq!(v.fields().unwrap().subject, v.subject_der.as_slice());
        // The DER is a public field: emptied, there are no fields (and no panic).
        let mut other = ValidatedCert::new(vec_cert("server.crt")).unwrap();
        other.der.clear();
        assert!(other.fields().is_err());
    }

    #[test]
    fn a_certificate_differing_in_one_octet_is_not_taken_for_a_remembered_one() {
        let store = TrustStore::new(&[vec_cert("root.crt")]).unwrap();
        let server = der(&vec_cert("server.crt"));
        store
            .validate_der(&server, || Ok(vec![vec_cert("ca.crt")]))
            .unwrap();
        // The same length and all but the last octet (of the signature) alike.
        let mut forged = server.clone();
        *forged.last_mut().unwrap() ^= 1;
        let err = store
            .validate_der(&forged, || Ok(vec![vec_cert("ca.crt")]))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SignerNotTrusted);
    }

    #[test]
    fn a_cache_entry_hashes_as_the_der_it_is_looked_up_by() {
        use std::hash::BuildHasher;
        let b = std::collections::hash_map::RandomState::new();
        let cert = Arc::new(ValidatedCert::new(vec_cert("server.crt")).unwrap());
        let entry = CacheEntry {
            until: Instant::now(),
            cert: Arc::clone(&cert),
        };
        assert_eq!(b.hash_one(&entry), b.hash_one(&cert.der[..]));
        // Every octet counts, the last partial word too.
        let mut other = cert.der.clone();
        *other.last_mut().unwrap() ^= 1;
        assert_ne!(b.hash_one(&other[..]), b.hash_one(&cert.der[..]));
    }

    /// A self-signed certificate for a new P-256 key, and the key.
    fn self_signed() -> (X509, crate::crypto::SoftwareKey) {
        use crate::crypto::{KeyType, SoftwareKey};
        let key = SoftwareKey::generate(KeyType::EcP256).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "signer").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key.pkey()).unwrap();
        b.sign(key.pkey(), openssl::hash::MessageDigest::sha256())
            .unwrap();
        (b.build(), key)
    }

    #[test]
    fn a_validated_certificate_verifies_its_keys_signatures_again_and_again() {
        use crate::crypto::Signer;
        let (cert, key) = self_signed();
        let v = ValidatedCert::new(cert).unwrap();
        assert_eq!(v.der, der(&v.cert));
        assert_eq!(v.sha256(), &openssl::sha::sha256(&v.der));
        assert_eq!(v.subject_der, v.cert.subject_name().to_der().unwrap());
        let sig = key.sign(b"header body").unwrap();
        for _ in 0..3 {
            v.verify_signature_parts(key.algorithm(), &[b"header ", b"body"], &sig)
                .unwrap();
            let err = v
                .verify_signature_parts(key.algorithm(), &[b"header ", b"bodY"], &sig)
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::SignatureInvalid);
        }
    }

    #[test]
    fn missing_intermediate_or_wrong_anchor_is_signer_not_trusted() {
        let store = TrustStore::new(&[vec_cert("root.crt")]).unwrap();
        let e = store.verify(&vec_cert("server.crt"), &[]).unwrap_err();
        assert_eq!(e.code, ErrorCode::SignerNotTrusted);
        assert!(e.detail.contains("CMP Interop Server"), "{}", e.detail);
        let other = TrustStore::new(&[vec_cert("client.crt")]).unwrap();
        assert_eq!(
            other
                .verify(&vec_cert("server.crt"), &[vec_cert("ca.crt")])
                .unwrap_err()
                .code,
            ErrorCode::SignerNotTrusted
        );
    }
}
