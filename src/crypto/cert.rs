//! Certificates: parsing, trust anchors and chain validation, key comparison.

use crate::error::{Error, ErrorCode, Result};
use openssl::pkey::{PKey, Public};
use openssl::sha::Sha256;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
/// A certificate that validated is remembered (by its SHA-256 fingerprint) for
/// [`VALIDATION_CACHE_TTL`], parsed and with its public key, so the peer's chain is built and
/// checked once, and its certificate parsed once, not for every message and transaction;
/// revocation is not checked either way. Shared by threads.
pub struct TrustStore {
    store: X509Store,
    count: usize,
    validated: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

/// A remembered validation: until when, and the result.
type CacheEntry = (Instant, Arc<ValidatedCert>);

/// A certificate that validated against a [`TrustStore`], parsed once.
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
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.count)
            .finish()
    }
}

/// SHA-256 of `der`, through OpenSSL's low-level digest (no per-call algorithm fetch).
fn fingerprint(der: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(der);
    h.finish()
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
            validated: Mutex::new(HashMap::new()),
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
        let fp = fingerprint(leaf_der);
        let now = Instant::now();
        // Every operation leaves the map consistent, so a poisoned lock is still usable.
        let cache = || self.validated.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((until, v)) = cache().get(&fp) {
            if *until > now {
                return Ok(Arc::clone(v));
            }
        }
        let cert = parse_der(leaf_der)?;
        self.verify_chain(&cert, &untrusted()?)?;
        let v = Arc::new(ValidatedCert {
            public_key: cert.public_key()?,
            subject_der: cert.subject_name().to_der()?,
            der: leaf_der.to_vec(),
            cert,
        });
        let mut c = cache();
        if c.len() >= VALIDATION_CACHE_CAPACITY {
            c.clear();
        }
        c.insert(fp, (now + VALIDATION_CACHE_TTL, Arc::clone(&v)));
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
