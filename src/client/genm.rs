//! General messages (RFC 9483 §4.3): building the usual genm requests, and typed access to
//! the genp values in a [`Response`].
//!
//! ```no_run
//! # use cmpkit::client::{genm, Operation};
//! let op = Operation::Genm(vec![genm::ca_certs_request()]);
//! ```

use super::response::Response;
use crate::asn1::genm::{
    CaCertsValue, CertReqTemplateContent, CrlStatusListValue, CrlsValue, RootCaKeyUpdateContent,
    SignKeyPairTypesValue,
};
use crate::asn1::{oid, InfoTypeAndValue};
use crate::crypto::cert::{parse_der, subject_text};
use crate::error::{Error, ErrorCode, Result};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use openssl::x509::X509;
use spki::AlgorithmIdentifierOwned;

fn itav(oid: ObjectIdentifier, value: Option<der::Any>) -> InfoTypeAndValue {
    InfoTypeAndValue { oid, value }
}

/// genm asking for the CA certificates (id-it-caCerts without value, RFC 9483 §4.3.1).
pub fn ca_certs_request() -> InfoTypeAndValue {
    itav(oid::IT_CA_CERTS, None)
}

/// genm asking for a root CA key update (id-it-rootCaCert, RFC 9483 §4.3.2), naming the root
/// we trust now if given.
pub fn root_ca_key_update_request(old_root: Option<&X509>) -> Result<InfoTypeAndValue> {
    let value = old_root
        .map(|c| -> Result<der::Any> {
            let cert = x509_cert::Certificate::from_der(&c.to_der()?)?;
            Ok(der::Any::encode_from(&cert)?)
        })
        .transpose()?;
    Ok(itav(oid::IT_ROOT_CA_CERT, value))
}

/// genm asking for a certificate request template (id-it-certReqTemplate, RFC 9483 §4.3.3).
pub fn cert_req_template_request() -> InfoTypeAndValue {
    itav(oid::IT_CERT_REQ_TEMPLATE, None)
}

/// genm asking for CRL updates (id-it-crlStatusList, RFC 9483 §4.3.4): which CRLs and the
/// thisUpdate we have.
pub fn crl_update_request(list: &CrlStatusListValue) -> Result<InfoTypeAndValue> {
    Ok(itav(
        oid::IT_CRL_STATUS_LIST,
        Some(der::Any::encode_from(list)?),
    ))
}

/// genm asking which key pair types the CA certifies (id-it-signKeyPairTypes, no value).
pub fn sign_key_pair_types_request() -> InfoTypeAndValue {
    itav(oid::IT_SIGN_KEY_PAIR_TYPES, None)
}

/// A verified root CA key update, the certificates in DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCaKeyUpdate {
    /// The new root certificate (self-signed with the new key).
    pub new_with_new: Vec<u8>,
    /// The new root key certified with the old root key, if sent.
    pub new_with_old: Option<Vec<u8>>,
    /// The old root key certified with the new root key, if sent.
    pub old_with_new: Option<Vec<u8>>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::BadMessageContent,
        format!("genp {what} value: {e}"),
    )
}

fn invalid(detail: String) -> Error {
    Error::new(ErrorCode::RootCaUpdateInvalid, detail)
}

impl Response {
    /// The genp InfoTypeAndValue with type `oid`, if present.
    pub fn genp_value(&self, oid: &ObjectIdentifier) -> Option<&InfoTypeAndValue> {
        self.genp.iter().find(|i| i.oid == *oid)
    }

    /// Decode the value of the genp entry `oid` as `T`: `None` if the entry or its value is
    /// absent; [`ErrorCode::BadMessageContent`] if it does not decode.
    fn genp_decode<T: for<'a> Decode<'a, Error = der::Error>>(
        &self,
        oid: &ObjectIdentifier,
        what: &str,
    ) -> Result<Option<T>> {
        let Some(value) = self.genp_value(oid).and_then(|i| i.value.as_ref()) else {
            return Ok(None);
        };
        let der = value.to_der().map_err(|e| bad(what, e))?;
        T::from_der(&der).map(Some).map_err(|e| bad(what, e))
    }

    /// id-it-caCerts: the CA certificates in DER (`None`: not in the genp or no value).
    pub fn ca_certs(&self) -> Result<Option<Vec<Vec<u8>>>> {
        let v: Option<CaCertsValue> = self.genp_decode(&oid::IT_CA_CERTS, "caCerts")?;
        Ok(v.map(|certs| certs.iter().map(|c| c.der().to_vec()).collect()))
    }

    /// id-it-certReqTemplate: the template the CA wants requests to follow.
    pub fn cert_req_template(&self) -> Result<Option<CertReqTemplateContent>> {
        self.genp_decode(&oid::IT_CERT_REQ_TEMPLATE, "certReqTemplate")
    }

    /// id-it-crls: the CRLs in DER.
    pub fn crls(&self) -> Result<Option<Vec<Vec<u8>>>> {
        let v: Option<CrlsValue> = self.genp_decode(&oid::IT_CRLS, "crls")?;
        v.map(|crls| crls.iter().map(|c| Ok(c.to_der()?)).collect())
            .transpose()
    }

    /// id-it-crlStatusList (as echoed or sent by the server).
    pub fn crl_status_list(&self) -> Result<Option<CrlStatusListValue>> {
        self.genp_decode(&oid::IT_CRL_STATUS_LIST, "crlStatusList")
    }

    /// id-it-signKeyPairTypes: the algorithms the CA certifies keys for.
    pub fn sign_key_pair_types(&self) -> Result<Option<Vec<AlgorithmIdentifierOwned>>> {
        let v: Option<SignKeyPairTypesValue> =
            self.genp_decode(&oid::IT_SIGN_KEY_PAIR_TYPES, "signKeyPairTypes")?;
        Ok(v)
    }

    /// id-it-rootCaKeyUpdate, verified against the root we trust now (`old_root`):
    /// newWithNew must be self-signed, newWithOld must carry the new key and verify with the
    /// old root's key, oldWithNew must carry the old key and verify with the new key.
    ///
    /// `None` when the genp has no update (the entry or its value is absent); a failed check
    /// is [`ErrorCode::RootCaUpdateInvalid`].
    pub fn root_ca_key_update(&self, old_root: &X509) -> Result<Option<RootCaKeyUpdate>> {
        let Some(content): Option<RootCaKeyUpdateContent> =
            self.genp_decode(&oid::IT_ROOT_CA_KEY_UPDATE, "rootCaKeyUpdate")?
        else {
            return Ok(None);
        };
        let new_with_new = parse_der(&content.new_with_new.to_der()?)?;
        let new_key = new_with_new.public_key()?;
        let old_key = old_root.public_key()?;
        if !new_with_new.verify(&new_key).unwrap_or(false) {
            return Err(invalid(format!(
                "newWithNew ({}) is not self-signed with its key",
                subject_text(&new_with_new)
            )));
        }
        let new_with_old = match &content.new_with_old {
            Some(c) => {
                let cert = parse_der(&c.to_der()?)?;
                if !cert.public_key()?.public_eq(&new_key) {
                    return Err(invalid(
                        "newWithOld does not carry the key of newWithNew".into(),
                    ));
                }
                if !cert.verify(&old_key).unwrap_or(false) {
                    return Err(invalid(format!(
                        "newWithOld is not signed by the old root {}",
                        subject_text(old_root)
                    )));
                }
                Some(cert.to_der()?)
            }
            None => None,
        };
        let old_with_new = match &content.old_with_new {
            Some(c) => {
                let cert = parse_der(&c.to_der()?)?;
                if !cert.public_key()?.public_eq(&old_key) {
                    return Err(invalid(
                        "oldWithNew does not carry the key of the old root".into(),
                    ));
                }
                if !cert.verify(&new_key).unwrap_or(false) {
                    return Err(invalid(
                        "oldWithNew is not signed with the new root key".into(),
                    ));
                }
                Some(cert.to_der()?)
            }
            None => None,
        };
        Ok(Some(RootCaKeyUpdate {
            new_with_new: new_with_new.to_der()?,
            new_with_old,
            old_with_new,
        }))
    }
}
