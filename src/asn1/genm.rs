//! Values of general messages (genm/genp) used by the Lightweight CMP Profile (RFC 9483 §4.3)
//! and RFC 9810 §5.3.19: CA certificates, root CA key update, certificate request template,
//! CRL status lists and CRLs, signing key pair types.
//!
//! The `InfoTypeAndValue` OIDs are in [`super::oid`] (`IT_*`).

use der::asn1::ObjectIdentifier;
use der::{Choice, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralNames};
use x509_cert::time::Time;
use x509_cert::Certificate;

pub use crmf::controls::Controls;

/// `CaCertsValue ::= SEQUENCE SIZE (1..MAX) OF CMPCertificate` (id-it-caCerts).
pub type CaCertsValue = Vec<super::CmpCertificate>;

/// `SignKeyPairTypesValue ::= SEQUENCE SIZE (1..MAX) OF AlgorithmIdentifier`
/// (id-it-signKeyPairTypes).
pub type SignKeyPairTypesValue = Vec<AlgorithmIdentifierOwned>;

/// `CRLsValue ::= SEQUENCE SIZE (1..MAX) OF CertificateList` (id-it-crls).
pub type CrlsValue = Vec<CertificateList>;

/// `CRLStatusListValue ::= SEQUENCE SIZE (1..MAX) OF CRLStatus` (id-it-crlStatusList).
pub type CrlStatusListValue = Vec<CrlStatus>;

/// `RootCaKeyUpdateContent` (RFC 9810 §5.3.19.15), the value of id-it-rootCaKeyUpdate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RootCaKeyUpdateContent {
    /// The new root CA certificate, self-signed with the new key.
    pub new_with_new: Certificate,
    /// `newWithOld [0] CMPCertificate OPTIONAL`: the new root key certified by the old one.
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub new_with_old: Option<Certificate>,
    /// `oldWithNew [1] CMPCertificate OPTIONAL`: the old root key certified by the new one.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub old_with_new: Option<Certificate>,
}

/// `CertReqTemplateContent ::= SEQUENCE { certTemplate, keySpec Controls OPTIONAL }`
/// (RFC 9810 §5.3.19.16), the value of id-it-certReqTemplate in genp.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertReqTemplateContent {
    /// The fields the CA wants filled (or fixes).
    pub cert_template: crmf::request::CertTemplate,
    /// Key specifications (`id-regCtrl-algId`, `id-regCtrl-rsaKeyLen`).
    pub key_spec: Option<Controls>,
}

/// `CRLSource ::= CHOICE { dpn [0] DistributionPointName, issuer [1] GeneralNames }`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum CrlSource {
    /// The CRL distribution point name.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", constructed = "true")]
    Dpn(DistributionPointName),
    /// The CRL issuer.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    Issuer(GeneralNames),
}

/// `CRLStatus ::= SEQUENCE { source CRLSource, thisUpdate Time OPTIONAL }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CrlStatus {
    /// Which CRL.
    pub source: CrlSource,
    /// thisUpdate of the CRL the client has, if any.
    pub this_update: Option<Time>,
}

/// An `InfoTypeAndValue` OID with its name, for diagnostics.
pub fn info_type_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    use super::oid::*;
    Some(match *oid {
        o if o == IT_SIGN_KEY_PAIR_TYPES => "signKeyPairTypes",
        o if o == IT_IMPLICIT_CONFIRM => "implicitConfirm",
        o if o == IT_CA_CERTS => "caCerts",
        o if o == IT_ROOT_CA_KEY_UPDATE => "rootCaKeyUpdate",
        o if o == IT_CERT_REQ_TEMPLATE => "certReqTemplate",
        o if o == IT_ROOT_CA_CERT => "rootCaCert",
        o if o == IT_CRL_STATUS_LIST => "crlStatusList",
        o if o == IT_CRLS => "crls",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{GeneralizedTime, Int};
    use der::{Decode, Encode};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::name::Name;

    #[test]
    fn crl_status_list_round_trips() {
        let name: Name = "CN=CA".parse().unwrap();
        let list: CrlStatusListValue = vec![
            CrlStatus {
                source: CrlSource::Issuer(vec![GeneralName::DirectoryName(name.clone())]),
                this_update: Some(Time::GeneralTime(
                    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                        4_000_000_000,
                    ))
                    .unwrap(),
                )),
            },
            CrlStatus {
                source: CrlSource::Dpn(DistributionPointName::FullName(vec![
                    GeneralName::DirectoryName(name),
                ])),
                this_update: None,
            },
        ];
        let der = list.to_der().unwrap();
        assert_eq!(CrlStatusListValue::from_der(&der).unwrap(), list);
        // [1] EXPLICIT wraps the GeneralNames SEQUENCE: 30 .. 30 .. a1 ..
        assert_eq!(&der[4..5], &[0xa1]);
    }

    #[test]
    fn cert_req_template_round_trips() {
        let t = CertReqTemplateContent {
            cert_template: crmf::request::CertTemplate {
                version: None,
                serial_number: None,
                signature: None,
                issuer: None,
                validity: None,
                subject: Some("CN=x,O=Example".parse().unwrap()),
                subject_public_key_info: None,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: None,
            },
            key_spec: Some(vec![x509_cert::attr::AttributeTypeAndValue {
                oid: super::super::oid::REG_CTRL_RSA_KEY_LEN,
                value: der::Any::encode_from(&Int::new(&[0x08, 0x00]).unwrap()).unwrap(),
            }]),
        };
        let der = t.to_der().unwrap();
        assert_eq!(CertReqTemplateContent::from_der(&der).unwrap(), t);
    }

    #[test]
    fn sign_key_pair_types_round_trip() {
        let v: SignKeyPairTypesValue = vec![
            crate::crypto::SigAlg::EcdsaSha256.algorithm_identifier(),
            crate::crypto::SigAlg::Ed25519.algorithm_identifier(),
        ];
        let der = v.to_der().unwrap();
        assert_eq!(SignKeyPairTypesValue::from_der(&der).unwrap(), v);
    }

    fn self_signed(cn: &str) -> Certificate {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, x509};
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Certificate::from_der(&b.build().to_der().unwrap()).unwrap()
    }

    #[test]
    fn root_ca_key_update_round_trips_with_explicit_tags() {
        let new = self_signed("new");
        let old_with_new = self_signed("old");
        let v = RootCaKeyUpdateContent {
            new_with_new: new.clone(),
            new_with_old: None,
            old_with_new: Some(old_with_new.clone()),
        };
        let der = v.to_der().unwrap();
        assert_eq!(RootCaKeyUpdateContent::from_der(&der).unwrap(), v);
        // newWithNew, then [1] EXPLICIT (constructed, 0xa1) around oldWithNew.
        let inner = der::asn1::SequenceRef::from_der(&der).unwrap();
        let after_first = &inner.as_bytes()[new.to_der().unwrap().len()..];
        assert_eq!(after_first[0], 0xa1);
        assert_eq!(
            Certificate::from_der(
                &after_first[after_first.len() - old_with_new.to_der().unwrap().len()..]
            )
            .unwrap(),
            old_with_new
        );
    }

    #[test]
    fn names_of_info_types() {
        assert_eq!(
            info_type_name(&super::super::oid::IT_CA_CERTS),
            Some("caCerts")
        );
    }
}
