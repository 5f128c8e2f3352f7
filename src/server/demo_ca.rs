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
use crate::crypto::{SigAlg, Signer, SoftwareKey};
use crate::error::{Error, ErrorCode, Result};
use crate::message::fail_info as fi;
use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, CrlNumber, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{
    X509Builder, X509CrlBuilder, X509Extension, X509NameBuilder, X509RevokedBuilder, X509,
};
use std::sync::{Arc, Mutex};

pub use crate::asn1::oid::{IT_CA_CERTS, IT_SIGN_KEY_PAIR_TYPES};
use crate::asn1::oid::{
    IT_CERT_REQ_TEMPLATE, IT_CRLS, IT_CRL_STATUS_LIST, IT_ROOT_CA_CERT, IT_ROOT_CA_KEY_UPDATE,
};

/// `id-regCtrl-algId` (RFC 9483 §4.3.3): the key algorithm a certReqTemplate asks for.
const REG_CTRL_ALG_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.1.11");

/// Extensions copied from the request template: subjectAltName, keyUsage, extKeyUsage.
const COPIED_EXTENSIONS: [ObjectIdentifier; 3] = [
    const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
    const_oid::db::rfc5280::ID_CE_KEY_USAGE,
    const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
];

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
    validity_days: u32,
    issuing: Issuing,
    state: Mutex<CaState>,
}

/// What issuing needs from the CA, prepared once.
struct Issuing {
    /// The CA key as a signer.
    key: SoftwareKey,
    /// The CA's subject name: the issuer of its certificates.
    name: x509_cert::name::Name,
    /// `name` as DER, as it goes into every certificate.
    name_der: Vec<u8>,
    /// The extensions every issued certificate carries: basicConstraints (critical, not a
    /// CA) and authorityKeyIdentifier (the CA's key identifier).
    fixed_extensions: [x509_cert::ext::Extension; 2],
    /// The CA certificate and the chain above it, DER.
    chain_der: Vec<Vec<u8>>,
    /// The value of a genp caCerts: the same certificates as a SEQUENCE OF Certificate.
    ca_certs: Any,
}

impl Issuing {
    fn new(key: &PKey<Private>, cert: &X509, chain: &[X509]) -> Result<Self> {
        let key_id = match cert.subject_key_id() {
            Some(id) => id.as_slice().to_vec(),
            None => {
                let spki = cert.public_key()?.public_key_to_der()?;
                key_id(
                    spki::SubjectPublicKeyInfoRef::from_der(&spki)?
                        .subject_public_key
                        .raw_bytes(),
                )
            }
        };
        let chain_der: Vec<Vec<u8>> = std::iter::once(cert)
            .chain(chain)
            .map(|c| c.to_der())
            .collect::<std::result::Result<_, _>>()?;
        let certs = chain_der
            .iter()
            .map(|d| x509_cert::Certificate::from_der(d))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints};
        let name_der = cert.subject_name().to_der()?;
        let fixed_extensions = [
            extension(
                const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
                true,
                BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                }
                .to_der()?,
            )?,
            extension(
                const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                false,
                AuthorityKeyIdentifier {
                    key_identifier: Some(der::asn1::OctetString::new(key_id)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                }
                .to_der()?,
            )?,
        ];
        Ok(Issuing {
            key: SoftwareKey::from_pkey(key.clone())?,
            name: x509_cert::name::Name::from_der(&name_der)?,
            name_der,
            fixed_extensions,
            chain_der,
            ca_certs: Any::from_der(&certs.to_der()?)?,
        })
    }
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
        b.set_serial_number(&*BigNum::from_slice(&random_serial()?)?.to_asn1_integer()?)?;
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
        Ok(DemoCa {
            issuing: Issuing::new(&key, &cert, &chain)?,
            key,
            cert,
            chain,
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

    /// Why the certificate `id` (named by a kur) cannot be updated: it is one of ours and
    /// revoked.
    fn cannot_update(&self, id: &crate::asn1::CertId) -> Option<String> {
        let ours = matches!(&id.issuer, x509_cert::ext::pkix::name::GeneralName::DirectoryName(n)
            if *n == self.issuing.name);
        let serial = strip_zeros(id.serial_number.as_bytes());
        let revoked = ours
            && self
                .lock()
                .revoked
                .iter()
                .any(|r| strip_zeros(&r.serial) == serial);
        revoked.then(|| {
            format!(
                "the certificate to update (serial {}) is revoked",
                crate::message::hex(serial)
            )
        })
    }

    /// Build and sign a certificate for `req`: returns its DER and serial number.
    ///
    /// The certificate is assembled with the der/x509-cert types and signed once through
    /// OpenSSL; the requested SubjectPublicKeyInfo is copied as received, never decoded.
    fn issue(&self, req: &CertRequestInfo) -> Result<(Vec<u8>, Vec<u8>)> {
        use crate::asn1::{SignedCertificateOut, TbsCertificateOut};
        use der::asn1::{AnyRef, BitString, OctetString};
        use x509_cert::ext::pkix::SubjectKeyIdentifier;

        let subject = req
            .subject
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::new(ErrorCode::BadMessageContent, "no subject requested"))?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&req.public_key)?;
        let mut extensions = Vec::with_capacity(3 + req.extensions.len());
        extensions.extend(self.issuing.fixed_extensions.iter().cloned());
        extensions.push(extension(
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            SubjectKeyIdentifier(OctetString::new(key_id(
                spki.subject_public_key.raw_bytes(),
            ))?)
            .to_der()?,
        )?);
        extensions.extend(
            req.extensions
                .iter()
                .filter(|e| COPIED_EXTENSIONS.contains(&e.extn_id))
                .cloned(),
        );
        let serial = random_serial()?;
        let alg = self.issuing.key.algorithm().algorithm_identifier();
        let tbs = TbsCertificateOut {
            version: x509_cert::certificate::Version::V3,
            serial_number: x509_cert::serial_number::SerialNumber::new(&serial)?,
            signature: alg.clone(),
            issuer: AnyRef::from_der(&self.issuing.name_der)?,
            validity: validity(self.validity_days)?,
            subject: subject.clone(),
            subject_public_key_info: AnyRef::from_der(&req.public_key)?,
            extensions: Some(extensions),
        }
        .to_der()?;
        let signature = self.issuing.key.sign(&tbs)?;
        let der = SignedCertificateOut {
            tbs_certificate: AnyRef::from_der(&tbs)?,
            signature_algorithm: alg,
            signature: BitString::from_bytes(&signature)?,
        }
        .to_der()?;
        Ok((der, serial))
    }
}

/// How far an issued certificate's notBefore lies before the moment of issuing: relying
/// parties whose clocks lag a little must already accept it (time(2) itself may be a clock
/// tick behind the clock the validity is read from, which made fresh certificates "not yet
/// valid" for a few milliseconds after each full second).
const NOT_BEFORE_BACKDATE: std::time::Duration = std::time::Duration::from_secs(60);

/// notBefore (backdated by [`NOT_BEFORE_BACKDATE`]) to now + `days`.
fn validity(days: u32) -> Result<x509_cert::time::Validity> {
    let mut v = x509_cert::time::Validity::from_now(std::time::Duration::from_secs(
        u64::from(days) * 86_400,
    ))?;
    v.not_before =
        x509_cert::time::Time::try_from(std::time::SystemTime::now() - NOT_BEFORE_BACKDATE)?;
    Ok(v)
}

/// A certificate extension with `value` (the extension's DER) as its extnValue.
fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: Vec<u8>,
) -> Result<x509_cert::ext::Extension> {
    Ok(x509_cert::ext::Extension {
        extn_id: oid,
        critical,
        extn_value: der::asn1::OctetString::new(value)?,
    })
}

/// 16 random octets, the first non-zero and below 0x80: a positive, minimally encoded
/// serial number's content octets.
fn random_serial() -> Result<Vec<u8>> {
    let mut b = crate::message::random_bytes(16)?;
    b[0] = (b[0] & 0x7f) | 0x01;
    Ok(b)
}

/// An unsigned big-endian number without leading zero octets.
fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    &b[n..]
}

/// A key identifier: the SHA-1 hash of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
fn key_id(subject_public_key: &[u8]) -> Vec<u8> {
    let mut h = openssl::sha::Sha1::new();
    h.update(subject_public_key);
    h.finish().to_vec()
}

impl CaHandler for DemoCa {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        if let Some(id) = &req.old_cert_id {
            if let Some(reason) = self.cannot_update(id) {
                return Decision::Reject(Rejection::new(fi::CERT_REVOKED, reason));
            }
        }
        let cert = match self.issue(req) {
            Ok(c) => c,
            Err(e) => {
                return Decision::Reject(Rejection::new(
                    fi::BAD_CERT_TEMPLATE,
                    format!("the demo CA cannot issue this certificate: {}", e.detail),
                ))
            }
        };
        let (der, serial) = cert;
        self.lock().issued.push(IssuedCert {
            serial,
            der: der.clone(),
            transaction_id: req.transaction_id.clone(),
            confirmed: false,
        });
        // The top of the chain (the CA certificate itself when there is no chain).
        let ca_pubs = if req.kind == super::RequestKind::Ir {
            self.issuing.chain_der.last().cloned().into_iter().collect()
        } else {
            Vec::new()
        };
        Decision::Issue(Issued {
            cert: der,
            ca_pubs,
            chain: self.issuing.chain_der.clone(),
        })
    }

    fn cert_confirm(&self, _transaction_id: &[u8], cert_der: &[u8], accepted: bool) {
        let mut g = self.lock();
        if accepted {
            // Newest first: the certificate being confirmed was issued last, most likely.
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
                Some(self.issuing.ca_certs.clone())
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
    use crate::crypto::{KeyType, TrustStore};
    use crate::server::RequestKind;
    use openssl::x509::X509VerifyResult;

    fn request(key: &SoftwareKey) -> CertRequestInfo {
        let san = x509_cert::ext::pkix::SubjectAltName(vec![
            x509_cert::ext::pkix::name::GeneralName::DnsName(
                der::asn1::Ia5String::new("ee.example").unwrap(),
            ),
        ]);
        CertRequestInfo {
            kind: RequestKind::Cr,
            transaction_id: vec![1; 16],
            cert_req_id: 0,
            subject: Some(crate::message::parse_name("CN=ee,O=cmpkit").unwrap()),
            public_key: key.public_key_der().to_vec(),
            extensions: vec![
                x509_cert::ext::Extension {
                    extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
                    critical: false,
                    extn_value: der::asn1::OctetString::new(san.to_der().unwrap()).unwrap(),
                },
                // Not copied: the CA decides on basicConstraints itself.
                x509_cert::ext::Extension {
                    extn_id: const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
                    critical: true,
                    extn_value: der::asn1::OctetString::new(vec![0x30, 0x03, 0x01, 0x01, 0xff])
                        .unwrap(),
                },
            ],
            template: None,
            csr: None,
            old_cert_id: None,
            central_keygen: false,
            requester: Requester::Mac {
                sender_kid: b"kid".to_vec(),
            },
            implicit_confirm_requested: false,
            polls: 0,
        }
    }

    #[test]
    fn issued_certificate_is_a_valid_v3_end_entity_certificate_for_the_requested_key() {
        let ca = DemoCa::generate().unwrap();
        let key = SoftwareKey::generate(KeyType::EcP256).unwrap();
        let req = request(&key);
        let (der, serial) = ca.issue(&req).unwrap();
        let cert = X509::from_der(&der).unwrap();

        // OpenSSL parses it, its signature verifies with the CA key and the path validates.
        assert!(cert.verify(&ca.cert().public_key().unwrap()).unwrap());
        assert_eq!(ca.cert().issued(&cert), X509VerifyResult::OK);
        TrustStore::new(&[ca.cert().clone()])
            .unwrap()
            .verify(&cert, &[])
            .unwrap();
        assert_eq!(cert.version(), 2);
        assert_eq!(cert.serial_number().to_bn().unwrap().to_vec(), serial);
        assert_eq!(serial.len(), 16);
        assert_eq!(
            cert.public_key().unwrap().public_key_to_der().unwrap(),
            key.public_key_der()
        );

        // SKI is the SHA-1 of the key bits, AKI the CA's SKI; basicConstraints is the CA's
        // (critical, not a CA), the requested SAN is copied.
        let spki = spki::SubjectPublicKeyInfoRef::from_der(key.public_key_der()).unwrap();
        let mut sha1 = openssl::sha::Sha1::new();
        sha1.update(spki.subject_public_key.raw_bytes());
        assert_eq!(cert.subject_key_id().unwrap().as_slice(), sha1.finish());
        assert_eq!(
            cert.authority_key_id().unwrap().as_slice(),
            ca.cert().subject_key_id().unwrap().as_slice()
        );
        let parsed = x509_cert::Certificate::from_der(&der).unwrap();
        assert_eq!(
            Some(parsed.tbs_certificate().subject()),
            req.subject.as_ref()
        );
        assert_eq!(
            cert.issuer_name().to_der().unwrap(),
            ca.cert().subject_name().to_der().unwrap()
        );
        let exts = parsed.tbs_certificate().extensions().unwrap();
        let bc: Vec<_> = exts
            .iter()
            .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS)
            .collect();
        assert_eq!(bc.len(), 1);
        assert!(bc[0].critical);
        assert_eq!(bc[0].extn_value.as_bytes(), [0x30, 0x00]);
        let sans = cert.subject_alt_names().unwrap();
        assert_eq!(sans.len(), 1);
        assert_eq!(sans.get(0).unwrap().dnsname(), Some("ee.example"));

        // Valid for the configured 365 days from now, and already a minute before now (so
        // that a verifier whose clock is a little behind accepts it at once).
        let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        let diff = now.diff(cert.not_after()).unwrap();
        assert_eq!(diff.days, 365);
        let before = now.diff(cert.not_before()).unwrap();
        assert_eq!(before.days, 0);
        assert!((-61..=-59).contains(&before.secs), "{before:?}");
    }

    #[test]
    fn a_request_without_subject_is_rejected_with_bad_cert_template() {
        let ca = DemoCa::generate().unwrap();
        let key = SoftwareKey::generate(KeyType::EcP256).unwrap();
        let mut req = request(&key);
        req.subject = None;
        match ca.certificate_request(&req) {
            Decision::Reject(r) => {
                assert_eq!(r.fail_info, 1 << fi::BAD_CERT_TEMPLATE);
                assert!(r.text.contains("no subject"), "{}", r.text);
            }
            _ => panic!("expected a rejection"),
        }
    }

    /// An ir for CN=unit, issued: the CA certificate is in caPubs and is the chain.
    fn issue_ir(ca: &DemoCa, n: u8) -> Vec<u8> {
        let key = SoftwareKey::generate(KeyType::EcP256).unwrap();
        let mut info = request(&key);
        info.kind = RequestKind::Ir;
        info.transaction_id = vec![n; 16];
        match ca.certificate_request(&info) {
            Decision::Issue(i) => {
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
        let certs: Vec<Vec<u8>> = (0..4).map(|n| issue_ir(&ca, n)).collect();
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
