//! Certificates: parsing, trust anchors and chain validation, key comparison.

use crate::error::{Error, ErrorCode, Result};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};

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

/// Trust anchors for validating the peer's protection certificate.
pub struct TrustStore {
    store: X509Store,
    count: usize,
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
        })
    }

    /// Validate `leaf` up to a trust anchor, using `untrusted` as intermediate candidates.
    /// Fails with [`ErrorCode::SignerNotTrusted`] naming OpenSSL's reason.
    pub fn verify(&self, leaf: &X509, untrusted: &[X509]) -> Result<()> {
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
