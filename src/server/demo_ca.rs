//! A demonstration CA behind the [`Server`](super::Server): issues X.509v3 certificates with
//! OpenSSL from the request template, keeps its issued and revoked certificates in memory,
//! builds a CRL on request and answers genm caCerts and signKeyPairTypes.
//!
//! It is meant for tests and demos: every authenticated requester may enroll any subject and
//! revoke any certificate of this CA.

use super::{
    CaHandler, CertRequestInfo, Decision, Issued, Rejection, Requester, RevocationRequest,
    ServerSigner,
};
use crate::asn1::InfoTypeAndValue;
use crate::crypto::{SigAlg, SoftwareKey};
use crate::error::{Error, ErrorCode, Result};
use crate::message::fail_info as fi;
use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode};
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509CrlBuilder, X509Extension, X509Name, X509NameBuilder, X509RevokedBuilder, X509,
};
use std::sync::{Arc, Mutex};

pub use crate::asn1::oid::{IT_CA_CERTS, IT_SIGN_KEY_PAIR_TYPES};
use crate::asn1::oid::{
    IT_CERT_REQ_TEMPLATE, IT_CRLS, IT_CRL_STATUS_LIST, IT_ROOT_CA_CERT, IT_ROOT_CA_KEY_UPDATE,
};

/// `id-regCtrl-algId` (RFC 9483 §4.3.3): the key algorithm a certReqTemplate asks for.
const REG_CTRL_ALG_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.1.11");

/// Extensions copied from the request template: subjectAltName, keyUsage, extKeyUsage.
const COPIED_EXTENSIONS: [&str; 3] = ["2.5.29.17", "2.5.29.15", "2.5.29.37"];

/// A certificate the demo CA issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The serial number (big-endian magnitude).
    pub serial: Vec<u8>,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The transaction that requested it.
    pub transaction_id: Vec<u8>,
    /// Whether the requester confirmed it (certConf or implicit confirmation).
    pub confirmed: bool,
}

/// A revocation the demo CA recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The serial number of the revoked certificate.
    pub serial: Vec<u8>,
    /// The CRLReason code given in the request.
    pub reason: Option<u8>,
}

#[derive(Default)]
struct CaState {
    issued: Vec<IssuedCert>,
    revoked: Vec<Revocation>,
    crl_number: u32,
}

/// An in-memory CA signing with OpenSSL. Implements [`CaHandler`].
pub struct DemoCa {
    key: PKey<Private>,
    cert: X509,
    chain: Vec<X509>,
    /// DER of `cert` followed by `chain`, encoded once: every issued certificate's response
    /// carries them, and encoding (or cloning) the shared `X509`s on each request would
    /// touch their reference counts from every worker thread.
    chain_der: Vec<Vec<u8>>,
    validity_days: u32,
    state: Mutex<CaState>,
}

impl std::fmt::Debug for DemoCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCa")
            .field("subject", &crate::crypto::cert::subject_text(&self.cert))
            .finish_non_exhaustive()
    }
}

impl DemoCa {
    /// A CA from its certificate and private key (PEM); `chain_pem` holds the certificates
    /// above it (may be empty). Certificates are valid for 365 days.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], chain_pem: &[u8]) -> Result<Self> {
        let cert = X509::from_pem(cert_pem)
            .map_err(|e| Error::new(ErrorCode::BadCertificate, format!("CA certificate: {e}")))?;
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| Error::new(ErrorCode::KeyError, format!("CA key: {e}")))?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(Error::new(
                ErrorCode::KeyError,
                "the CA key does not belong to the CA certificate",
            ));
        }
        let chain = if chain_pem.trim_ascii().is_empty() {
            Vec::new()
        } else {
            crate::crypto::cert::parse_pem_or_der(chain_pem)?
        };
        Self::new(key, cert, chain)
    }

    /// A throwaway self-signed root CA with an EC P-256 key, "CN=cmpkit Demo CA".
    pub fn generate() -> Result<Self> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, "cmpkit Demo CA")?;
        let name = name.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(&*random_serial()?)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Self::new(key, b.build(), Vec::new())
    }

    fn new(key: PKey<Private>, cert: X509, chain: Vec<X509>) -> Result<Self> {
        let chain_der = std::iter::once(&cert)
            .chain(&chain)
            .map(|c| c.to_der())
            .collect::<std::result::Result<_, _>>()?;
        Ok(DemoCa {
            key,
            cert,
            chain,
            chain_der,
            validity_days: 365,
            state: Mutex::new(CaState::default()),
        })
    }

    /// Issue certificates valid for `days` days from now.
    pub fn set_validity_days(&mut self, days: u32) {
        self.validity_days = days;
    }

    /// The CA certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// The CA certificate and the chain above it.
    pub fn chain(&self) -> Vec<X509> {
        std::iter::once(self.cert.clone())
            .chain(self.chain.iter().cloned())
            .collect()
    }

    /// The CA key and certificate as the server's signer (the CA signs its CMP responses).
    pub fn signer(&self) -> Result<ServerSigner> {
        Ok(ServerSigner {
            key: Arc::new(SoftwareKey::from_pkey(self.key.clone())?),
            cert: self.cert.clone(),
            chain: self.chain.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The certificates issued and not discarded (unconfirmed ones included).
    pub fn issued(&self) -> Vec<IssuedCert> {
        self.lock().issued.clone()
    }

    /// The revocations so far.
    pub fn revocations(&self) -> Vec<Revocation> {
        self.lock().revoked.clone()
    }

    /// The certReqTemplate this CA hands out (RFC 9483 §4.3.3): subject and key left to the
    /// requester, with an EC P-256 key asked for in keySpec.
    fn cert_req_template(&self) -> Option<Any> {
        let p256 = crate::crypto::SoftwareKey::generate(crate::crypto::KeyType::EcP256).ok()?;
        let alg =
            spki::SubjectPublicKeyInfoOwned::from_der(crate::crypto::Signer::public_key_der(&p256))
                .ok()?
                .algorithm;
        let content = crate::asn1::genm::CertReqTemplateContent {
            cert_template: crmf::request::CertTemplate {
                version: None,
                serial_number: None,
                signature: None,
                issuer: None,
                validity: None,
                subject: None,
                subject_public_key_info: None,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: None,
            },
            key_spec: Some(vec![x509_cert::attr::AttributeTypeAndValue {
                oid: REG_CTRL_ALG_ID,
                value: Any::from_der(&alg.to_der().ok()?).ok()?,
            }]),
        };
        Any::from_der(&content.to_der().ok()?).ok()
    }

    /// A CRL (v2, DER) listing every revoked certificate, valid for one day, with a fresh
    /// CRL number.
    pub fn crl(&self) -> Result<Vec<u8>> {
        let (revoked, number) = {
            let mut g = self.lock();
            g.crl_number += 1;
            (g.revoked.clone(), g.crl_number)
        };
        let mut b = X509CrlBuilder::new()?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_last_update(&*Asn1Time::days_from_now(0)?)?;
        b.set_next_update(&*Asn1Time::days_from_now(1)?)?;
        let ski = self.cert.subject_key_id().map(|k| k.as_slice().to_vec());
        let ski = ski.ok_or_else(|| {
            Error::new(ErrorCode::BadCertificate, "the CA certificate has no SKI")
        })?;
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
        let mut aki = vec![0x30, (ski.len() + 2) as u8, 0x80, ski.len() as u8];
        aki.extend_from_slice(&ski);
        b.append_extension(X509Extension::new_from_der(
            &*Asn1Object::from_str("2.5.29.35")?,
            false,
            &*Asn1OctetString::new_from_bytes(&aki)?,
        )?)?;
        b.append_extension(CrlNumber::new(BigNum::from_u32(number)?)?.build()?)?;
        let now = Asn1Time::days_from_now(0)?;
        for r in &revoked {
            let mut rb = X509RevokedBuilder::new()?;
            rb.set_serial_number(&*BigNum::from_slice(&r.serial)?.to_asn1_integer()?)?;
            rb.set_revocation_date(&now)?;
            b.add_revoked(rb.build())?;
        }
        b.sign(&self.key, self.digest()?)?;
        Ok(b.build()?.to_der()?)
    }

    fn digest(&self) -> Result<MessageDigest> {
        Ok(SigAlg::default_for(&self.key)?
            .digest()
            .unwrap_or_else(MessageDigest::null))
    }

    /// Build and sign a certificate for `req`.
    fn issue(&self, req: &CertRequestInfo) -> Result<X509> {
        let subject = req
            .subject
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::new(ErrorCode::BadMessageContent, "no subject requested"))?;
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(&*random_serial()?)?;
        b.set_subject_name(&*X509Name::from_der(&subject.to_der()?)?)?;
        b.set_issuer_name(self.cert.subject_name())?;
        let key = PKey::public_key_from_der(&req.public_key)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(self.validity_days)?)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        for e in &req.extensions {
            let id = e.extn_id.to_string();
            if COPIED_EXTENSIONS.contains(&id.as_str()) {
                b.append_extension(X509Extension::new_from_der(
                    &*Asn1Object::from_str(&id)?,
                    e.critical,
                    &*Asn1OctetString::new_from_bytes(e.extn_value.as_bytes())?,
                )?)?;
            }
        }
        b.sign(&self.key, self.digest()?)?;
        Ok(b.build())
    }
}

/// 16 random octets as a positive serial number.
fn random_serial() -> Result<Asn1Integer> {
    let mut b = crate::message::random_bytes(16)?;
    b[0] = (b[0] & 0x7f) | 0x01;
    Ok(BigNum::from_slice(&b)?.to_asn1_integer()?)
}

impl CaHandler for DemoCa {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        let cert = match self.issue(req) {
            Ok(c) => c,
            Err(e) => {
                return Decision::Reject(Rejection::new(
                    fi::BAD_CERT_TEMPLATE,
                    format!("the demo CA cannot issue this certificate: {}", e.detail),
                ))
            }
        };
        let (Ok(der), Ok(serial)) = (cert.to_der(), cert.serial_number().to_bn()) else {
            return Decision::Reject(Rejection::new(fi::SYSTEM_FAILURE, "encoding failed"));
        };
        self.lock().issued.push(IssuedCert {
            serial: serial.to_vec(),
            der: der.clone(),
            transaction_id: req.transaction_id.clone(),
            confirmed: false,
        });
        // The top of the chain (the CA certificate itself when there is no chain).
        let ca_pubs = if req.kind == super::RequestKind::Ir {
            self.chain_der.last().cloned().into_iter().collect()
        } else {
            Vec::new()
        };
        Decision::Issue(Issued {
            cert: der,
            ca_pubs,
            chain: self.chain_der.clone(),
        })
    }

    fn cert_confirm(&self, _transaction_id: &[u8], cert_der: &[u8], accepted: bool) {
        let mut g = self.lock();
        if accepted {
            // The certificate being confirmed was issued recently: search from the newest,
            // so that the time under the lock does not grow with the number issued.
            if let Some(c) = g.issued.iter_mut().rev().find(|c| c.der == cert_der) {
                c.confirmed = true;
            }
        } else {
            // Not confirmed: the demo CA forgets it (a production CA would revoke it).
            g.issued.retain(|c| c.der != cert_der);
        }
    }

    fn revoke(&self, req: &RevocationRequest) -> std::result::Result<(), Rejection> {
        let ours = self.cert.subject_name().to_der().ok();
        if req.issuer.to_der().ok() != ours {
            return Err(Rejection::new(
                fi::BAD_CERT_ID,
                "the certificate was not issued by this CA",
            ));
        }
        let serial = req
            .serial
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<_>>();
        let mut g = self.lock();
        if !g.issued.iter().any(|c| c.serial == serial) {
            return Err(Rejection::new(
                fi::BAD_CERT_ID,
                "no certificate with this serial number was issued",
            ));
        }
        if g.revoked.iter().any(|r| r.serial == serial) {
            return Err(Rejection::new(
                fi::CERT_REVOKED,
                "the certificate is already revoked",
            ));
        }
        g.revoked.push(Revocation {
            serial,
            reason: req.reason,
        });
        Ok(())
    }

    fn general_message(
        &self,
        itavs: &[InfoTypeAndValue],
        _requester: &Requester,
    ) -> Vec<InfoTypeAndValue> {
        let mut out = Vec::new();
        for itav in itavs {
            let value = if itav.oid == IT_CA_CERTS {
                let certs: Vec<x509_cert::Certificate> = self
                    .chain_der
                    .iter()
                    .filter_map(|d| x509_cert::Certificate::from_der(d).ok())
                    .collect();
                certs.to_der().ok().and_then(|d| Any::from_der(&d).ok())
            } else if itav.oid == IT_SIGN_KEY_PAIR_TYPES {
                let algs: Vec<_> = [
                    SigAlg::EcdsaSha256,
                    SigAlg::EcdsaSha384,
                    SigAlg::EcdsaSha512,
                    SigAlg::RsaSha256,
                    SigAlg::Ed25519,
                    SigAlg::Ed448,
                ]
                .into_iter()
                .map(SigAlg::algorithm_identifier)
                .collect();
                algs.to_der().ok().and_then(|d| Any::from_der(&d).ok())
            } else if itav.oid == IT_CERT_REQ_TEMPLATE {
                self.cert_req_template()
            } else if itav.oid == IT_CRL_STATUS_LIST {
                // Answered with id-it-crls: the current CRL (RFC 9483 §4.3.4).
                let crls: Option<crate::asn1::genm::CrlsValue> = self
                    .crl()
                    .ok()
                    .and_then(|d| Decode::from_der(&d).ok())
                    .map(|c| vec![c]);
                let value = crls
                    .and_then(|c| c.to_der().ok())
                    .and_then(|d| Any::from_der(&d).ok());
                out.push(InfoTypeAndValue {
                    oid: IT_CRLS,
                    value,
                });
                continue;
            } else if itav.oid == IT_ROOT_CA_CERT {
                // This CA never rolls its root over: rootCaKeyUpdate without a value says
                // "no update available" (RFC 9483 §4.3.2).
                out.push(InfoTypeAndValue {
                    oid: IT_ROOT_CA_KEY_UPDATE,
                    value: None,
                });
                continue;
            } else {
                continue;
            };
            if let Some(value) = value {
                out.push(InfoTypeAndValue {
                    oid: itav.oid,
                    value: Some(value),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{RequestKind, Requester};

    fn request(ca: &DemoCa, n: u8) -> Vec<u8> {
        let key = crate::crypto::SoftwareKey::generate(crate::crypto::KeyType::EcP256).unwrap();
        let info = CertRequestInfo {
            kind: RequestKind::Ir,
            transaction_id: vec![n; 16],
            cert_req_id: 0,
            subject: Some(crate::message::parse_name("/CN=unit").unwrap()),
            public_key: crate::crypto::Signer::public_key_der(&key).to_vec(),
            extensions: Vec::new(),
            template: None,
            csr: None,
            requester: Requester::Mac {
                sender_kid: b"kid".to_vec(),
            },
            implicit_confirm_requested: false,
            polls: 0,
        };
        match ca.certificate_request(&info) {
            Decision::Issue(i) => {
                // An ir gets the CA certificate in caPubs and as the chain, encoded once.
                assert_eq!(i.ca_pubs, vec![ca.cert().to_der().unwrap()]);
                assert_eq!(i.chain, vec![ca.cert().to_der().unwrap()]);
                i.cert
            }
            _ => panic!("the demo CA did not issue"),
        }
    }

    #[test]
    fn confirming_marks_exactly_that_certificate_old_or_new() {
        let ca = DemoCa::generate().unwrap();
        let certs: Vec<Vec<u8>> = (0..4).map(|n| request(&ca, n)).collect();
        ca.cert_confirm(&[0; 16], &certs[0], true);
        ca.cert_confirm(&[2; 16], &certs[2], true);
        ca.cert_confirm(&[3; 16], &certs[3], false);
        let issued = ca.issued();
        let confirmed: Vec<bool> = issued.iter().map(|c| c.confirmed).collect();
        assert_eq!(
            confirmed,
            [true, false, true],
            "the rejected one is forgotten"
        );
        assert_eq!(issued[1].der, certs[1]);
    }
}
