//! CMP message types per RFC 9810, where the `cmpv2` pre-release is wrong or incomplete.
//!
//! What differs from `cmpv2 0.3.0-pre.0` and why:
//! - `pvno` is an integer accepting 1, 2 and 3 (cmpv2 knows only 1 and 2).
//! - `PKIBody` has the `nested` body `[20]` (cmpv2 skips it); nested messages are kept as
//!   raw DER so decoding never recurses without a depth bound (the server decodes one level,
//!   from trusted RAs only).
//! - `pollReq` is `SEQUENCE OF SEQUENCE { certReqId }` and `pollRep` a `SEQUENCE OF` entries
//!   (cmpv2 decodes both as a single `PollRepContent`).
//! - `PKIFailureInfo` is kept as a BIT STRING (cmpv2's flag set is a `u16` that cannot hold
//!   bits above 15 and maps `badTime` to bit 2).
//! - `ErrorMsgContent` fields are public; `CertStatus` has `hashAlg [0]` (RFC 9810).
//! - Text is owned (`String`) so messages can outlive the input buffer.
//! - `EncryptedKey` ([`EncryptedKey`]) is our own CHOICE: its `envelopedData [0]` is IMPLICIT
//!   as in the CRMF module (crmf 0.3.0-pre.0 declares it EXPLICIT; see the type's docs).
//! - Announcements are kept as raw DER ([`der::Any`]).
//! - `PKIHeader` ([`PkiHeader`]) has its own decoder and encoder (strict field order), and its
//!   sender and recipient are kept as their DER ([`CmpName`]); see [`header`].
//! - `CMPCertificate` is kept as its DER ([`CmpCertificate`]): certificates travel through
//!   the protocol as opaque blobs (validated by the trust store, hashed for certConf, handed
//!   to the caller), so decoding every name and extension of each one, and encoding it again,
//!   would be work thrown away. A certificate is parsed where one of its fields is needed.
//!
//! CRMF (`crmf`), PKCS#10 (`x509-cert`) and `InfoTypeAndValue` (`cmpv2`) are reused as they are.

use der::asn1::{Any, BitString, Int, Null, OctetString};
use der::{Choice, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::CertificateList;
use x509_cert::request::CertReq;
use x509_cert::Certificate;

use der::asn1::{AnyRef, BitStringRef};
use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Tag, TagNumber,
    Tagged, Writer,
};
use std::sync::Arc;

pub mod genm;
pub mod header;

pub use header::{CmpName, PkiHeader};

pub use cmpv2::gen::InfoTypeAndValue;
pub use cms::enveloped_data::EnvelopedData;
pub use crmf::controls::{CertId, EncryptedValue};
pub use crmf::request::{CertReqMessages, CertReqMsg, CertRequest, CertTemplate};

/// `PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String`.
pub type PkiFreeText = Vec<String>;

/// `PKIMessage` (RFC 9810 §5.1).
///
/// Decoding is strict: `protection [0]` and `extraCerts [1]` come in this order, each at most
/// once, and nothing follows (der's derived decoder skipped a context-specific field whose
/// tag was lower than the one it looked for, so a repeated `[0]` was silently dropped).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PkiMessage {
    /// The header.
    pub header: PkiHeader,
    /// The body.
    pub body: PkiBody,
    /// `protection [0] PKIProtection OPTIONAL`.
    pub protection: Option<BitString>,
    /// `extraCerts [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL`.
    pub extra_certs: Option<Vec<CmpCertificate>>,
}

/// `value` as the EXPLICIT context-specific `[n]`.
pub(crate) fn explicit<T>(n: u32, value: &T) -> der::asn1::ContextSpecificRef<'_, T> {
    der::asn1::ContextSpecificRef {
        tag_number: TagNumber(n),
        tag_mode: der::TagMode::Explicit,
        value,
    }
}

/// An OPTIONAL field as `[n] EXPLICIT`, for encoding.
pub(crate) fn explicit_opt<T>(
    n: u32,
    field: &Option<T>,
) -> Option<der::asn1::ContextSpecificRef<'_, T>> {
    field.as_ref().map(|value| explicit(n, value))
}

impl<'a> DecodeValue<'a> for PkiMessage {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |r| {
            let header = PkiHeader::decode(r)?;
            let body = PkiBody::decode(r)?;
            // The next field if it is the context-specific [n] (constructed: EXPLICIT).
            fn next_is<'a, R: Reader<'a>>(r: &mut R, n: u32) -> der::Result<bool> {
                Ok(!r.is_finished()
                    && Tag::peek(r)?
                        == Tag::ContextSpecific {
                            constructed: true,
                            number: TagNumber(n),
                        })
            }
            let protection = if next_is(r, 0)? {
                Some(der::asn1::ContextSpecific::<BitString>::decode(r)?.value)
            } else {
                None
            };
            let extra_certs = if next_is(r, 1)? {
                Some(der::asn1::ContextSpecific::<Vec<CmpCertificate>>::decode(r)?.value)
            } else {
                None
            };
            // Anything left (a field repeated or out of order) fails the nested read.
            Ok(PkiMessage {
                header,
                body,
                protection,
                extra_certs,
            })
        })
    }
}

impl EncodeValue for PkiMessage {
    fn value_len(&self) -> der::Result<Length> {
        [
            self.header.encoded_len()?,
            self.body.encoded_len()?,
            explicit_opt(0, &self.protection).encoded_len()?,
            explicit_opt(1, &self.extra_certs).encoded_len()?,
        ]
        .into_iter()
        .try_fold(Length::ZERO, |sum, l| sum + l)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.header.encode(writer)?;
        self.body.encode(writer)?;
        explicit_opt(0, &self.protection).encode(writer)?;
        explicit_opt(1, &self.extra_certs).encode(writer)
    }
}

impl FixedTag for PkiMessage {
    const TAG: Tag = Tag::Sequence;
}

/// `CMPCertificate ::= CHOICE { x509v3PKCert Certificate }` (RFC 9810 §5.1), kept as the DER
/// it arrived in or was built from. Decoding checks the outer shape only
/// (`SEQUENCE { SEQUENCE, SEQUENCE, BIT STRING }`, DER lengths); [`CmpCertificate::parse`]
/// decodes the rest when a field is needed. Clones share the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CmpCertificate {
    der: Arc<[u8]>,
    /// Where the contents octets start (the length of the outer tag and length).
    value_at: usize,
}

impl CmpCertificate {
    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Decode the whole certificate.
    pub fn parse(&self) -> der::Result<Certificate> {
        Certificate::from_der(&self.der)
    }

    /// The fields the protocol needs, read without decoding them (see [`CertFields`]).
    pub fn fields(&self) -> der::Result<CertFields<'_>> {
        CertFields::read(&self.der)
    }
}

/// Fields of a certificate (RFC 5280 §4.1), each as its complete DER (tag, length, value),
/// read without decoding names, keys or extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertFields<'a> {
    /// `serialNumber` (an INTEGER).
    pub serial: &'a [u8],
    /// `issuer` (a Name).
    pub issuer: &'a [u8],
    /// `subject` (a Name).
    pub subject: &'a [u8],
    /// `subjectPublicKeyInfo`.
    pub spki: &'a [u8],
    /// The outer `signatureAlgorithm`'s OID.
    pub signature_algorithm: der::oid::ObjectIdentifier,
    /// `extensions` (the `SEQUENCE OF Extension` inside `[3]`), if present; see
    /// [`extension`](Self::extension).
    pub extensions: Option<&'a [u8]>,
}

impl<'a> CertFields<'a> {
    /// Read the fields of the certificate `der`; each field's tag is checked.
    pub fn read(der: &'a [u8]) -> der::Result<Self> {
        let (tbs, signature_algorithm) = read_outer(der)?;
        let mut t = Tlvs::new(Tlvs::new(tbs)?.only(Tag::Sequence)?)?;
        // version [0] EXPLICIT Version DEFAULT v1
        let mut first = t.next(Tag::Integer)?;
        if first.tag.is_context_specific() {
            first = t.next(Tag::Integer)?;
        }
        first.tag.assert_eq(Tag::Integer)?;
        let serial = first.tlv;
        t.expect(Tag::Sequence)?; // signature
        let issuer = t.expect(Tag::Sequence)?.tlv;
        t.expect(Tag::Sequence)?; // validity
        let subject = t.expect(Tag::Sequence)?.tlv;
        let spki = t.expect(Tag::Sequence)?.tlv;
        let mut extensions = None;
        while !t.is_finished() {
            // issuerUniqueID [1], subjectUniqueID [2], extensions [3] EXPLICIT: the SEQUENCE
            // inside the explicit tag (checked when an extension is looked up).
            let f = t.next(Tag::Sequence)?;
            if f.tag.is_context_specific() && f.tag.number() == TagNumber(3) {
                extensions = Some(f.value);
            }
        }
        Ok(CertFields {
            serial,
            issuer,
            subject,
            spki,
            signature_algorithm,
            extensions,
        })
    }

    /// The outer `signatureAlgorithm`'s OID of the certificate `der`: the shape of
    /// `Certificate` is checked, the `tbsCertificate` is not read (cheaper than
    /// [`read`](Self::read) when only the algorithm is needed).
    pub fn signature_algorithm_of(der: &[u8]) -> der::Result<der::oid::ObjectIdentifier> {
        read_outer(der).map(|(_, alg)| alg)
    }

    /// Where the fields lie in `der`, the certificate they were read from, so that they can
    /// be had again ([`CertFieldSpans::fields`]) without reading it again.
    pub(crate) fn spans(&self, der: &'a [u8]) -> CertFieldSpans {
        let span = |f: &[u8]| {
            let start = f.as_ptr() as usize - der.as_ptr() as usize;
            start..start + f.len()
        };
        CertFieldSpans {
            serial: span(self.serial),
            issuer: span(self.issuer),
            subject: span(self.subject),
            spki: span(self.spki),
            signature_algorithm: self.signature_algorithm,
            extensions: self.extensions.map(span),
        }
    }

    /// The value (the contents of `extnValue`) of the certificate's first extension `id`, or
    /// `None` without one; the other extensions are skipped undecoded.
    pub fn extension(&self, id: der::oid::ObjectIdentifier) -> der::Result<Option<&'a [u8]>> {
        let Some(extensions) = self.extensions else {
            return Ok(None);
        };
        let mut r = der::SliceReader::new(extensions)?;
        let found = r.sequence(|r| {
            let mut found = None;
            while !r.is_finished() {
                // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
                let value = r.sequence(|e| {
                    // The OID's DER contents compared as they are (DER has one encoding).
                    let oid = AnyRef::decode(e)?;
                    oid.tag().assert_eq(Tag::ObjectIdentifier)?;
                    if Tag::peek(e)? == Tag::Boolean {
                        bool::decode(e)?;
                    }
                    let value = der::asn1::OctetStringRef::decode(e)?.as_bytes();
                    Ok::<_, der::Error>((oid.value() == id.as_bytes()).then_some(value))
                })?;
                found = found.or(value);
            }
            Ok::<_, der::Error>(found)
        })?;
        r.finish(found)
    }
}

/// The `tbsCertificate` (its complete DER) and the outer `signatureAlgorithm`'s OID of the
/// certificate `der`; the outer shape (`SEQUENCE { SEQUENCE, AlgorithmIdentifier, BIT STRING }`)
/// is checked.
fn read_outer(der: &[u8]) -> der::Result<(&[u8], der::oid::ObjectIdentifier)> {
    let mut r = Tlvs::new(Tlvs::new(der)?.only(Tag::Sequence)?)?;
    let tbs = r.expect(Tag::Sequence)?.tlv;
    let alg = spki::AlgorithmIdentifierRef::from_der(r.expect(Tag::Sequence)?.tlv)?;
    BitStringRef::from_der(r.expect(Tag::BitString)?.tlv)?;
    r.finish()?;
    Ok((tbs, alg.oid))
}

/// One TLV: its tag, its complete encoding and its contents.
pub(crate) struct Tlv<'a> {
    pub(crate) tag: Tag,
    pub(crate) tlv: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// The TLVs one after the other in a run of DER (the contents of a constructed encoding),
/// each read with one header decode (der's peek-then-read costs two, plus a tag peek).
pub(crate) struct Tlvs<'a> {
    rest: &'a [u8],
    /// Where `rest` starts in the whole run, for error positions.
    offset: usize,
}

impl<'a> Tlvs<'a> {
    pub(crate) fn new(run: &'a [u8]) -> der::Result<Self> {
        der::Length::try_from(run.len())?;
        Ok(Tlvs {
            rest: run,
            offset: 0,
        })
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV; `expected` is the tag named in the error when there is none.
    pub(crate) fn next(&mut self, expected: Tag) -> der::Result<Tlv<'a>> {
        let at = der::Length::try_from(self.offset)?;
        if self.rest.is_empty() {
            return Err(der::ErrorKind::TagUnexpected {
                expected: Some(expected),
                actual: Tag::Null,
            }
            .at(at));
        }
        let mut r = der::SliceReader::new(self.rest)?;
        let shifted = |e: der::Error| {
            let pos = e.position().unwrap_or_default() + at;
            der::Error::new(e.kind(), pos.unwrap_or(at))
        };
        let header = der::Header::decode(&mut r).map_err(shifted)?;
        let value = r.read_slice(header.length).map_err(shifted)?;
        let len = usize::try_from(r.position())?;
        let (tlv, rest) = self.rest.split_at(len);
        self.rest = rest;
        self.offset += len;
        Ok(Tlv {
            tag: header.tag,
            tlv,
            value,
        })
    }

    /// The next TLV, which must have tag `tag`.
    pub(crate) fn expect(&mut self, tag: Tag) -> der::Result<Tlv<'a>> {
        let t = self.next(tag)?;
        let at = der::Length::try_from(self.offset - t.tlv.len())?;
        t.tag
            .assert_eq(tag)
            .map_err(|e| der::Error::new(e.kind(), at))?;
        Ok(t)
    }

    /// The contents of the only TLV of the run, which must have tag `tag`.
    pub(crate) fn only(mut self, tag: Tag) -> der::Result<&'a [u8]> {
        let t = self.expect(tag)?;
        self.finish()?;
        Ok(t.value)
    }

    /// Nothing may follow.
    pub(crate) fn finish(&self) -> der::Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(der::ErrorKind::TrailingData {
                decoded: der::Length::try_from(self.offset)?,
                remaining: der::Length::try_from(self.rest.len())?,
            }
            .into())
        }
    }
}

/// [`CertFields`] as positions in the certificate they were read from (see
/// [`CertFields::spans`]): kept beside a certificate's DER to have its fields without reading
/// them again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertFieldSpans {
    serial: std::ops::Range<usize>,
    issuer: std::ops::Range<usize>,
    subject: std::ops::Range<usize>,
    spki: std::ops::Range<usize>,
    signature_algorithm: der::oid::ObjectIdentifier,
    extensions: Option<std::ops::Range<usize>>,
}

impl CertFieldSpans {
    /// The fields again, from `der`: the same octets the spans were taken from (other
    /// octets give wrong fields, or `None` when a span lies outside them).
    pub(crate) fn fields<'a>(&self, der: &'a [u8]) -> Option<CertFields<'a>> {
        Some(CertFields {
            serial: der.get(self.serial.clone())?,
            issuer: der.get(self.issuer.clone())?,
            subject: der.get(self.subject.clone())?,
            spki: der.get(self.spki.clone())?,
            signature_algorithm: self.signature_algorithm,
            extensions: match self.extensions.clone() {
                Some(e) => Some(der.get(e)?),
                None => None,
            },
        })
    }
}

impl std::fmt::Debug for CmpCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CmpCertificate({} bytes)", self.der.len())
    }
}

impl TryFrom<&Certificate> for CmpCertificate {
    type Error = der::Error;

    fn try_from(cert: &Certificate) -> der::Result<Self> {
        let der = cert.to_der()?;
        let value_at = der.len() - Header::from_der_partial(&der)?.1.len();
        Ok(CmpCertificate {
            der: der.into(),
            value_at,
        })
    }
}

impl TryFrom<&[u8]> for CmpCertificate {
    type Error = der::Error;

    /// Takes one certificate's DER (checked as when decoded).
    fn try_from(der: &[u8]) -> der::Result<Self> {
        Self::from_der(der)
    }
}

impl<'a> DecodeValue<'a> for CmpCertificate {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let value = reader.read_slice(header.length)?;
        // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
        // signatureValue BIT STRING }: the outer shape, without decoding the contents.
        let mut fields = Tlvs::new(value)?;
        for tag in [Tag::Sequence, Tag::Sequence, Tag::BitString] {
            fields.expect(tag)?;
        }
        fields.finish()?;
        let mut head = [0u8; 8];
        let head = header.encode_to_slice(&mut head)?;
        let mut der = Vec::with_capacity(head.len() + value.len());
        der.extend_from_slice(head);
        der.extend_from_slice(value);
        Ok(CmpCertificate {
            der: der.into(),
            value_at: head.len(),
        })
    }
}

impl CmpCertificate {
    /// The contents octets (the DER without the outer tag and length).
    fn value(&self) -> &[u8] {
        &self.der[self.value_at..]
    }
}

impl EncodeValue for CmpCertificate {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.value().len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.value())
    }
}

impl FixedTag for CmpCertificate {
    const TAG: Tag = Tag::Sequence;
}

/// `ProtectedPart ::= SEQUENCE { header, body }`: the input to MAC and signature protection.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ProtectedPart {
    /// The header.
    pub header: PkiHeader,
    /// The body.
    pub body: PkiBody,
}

/// `PKIBody` (RFC 9810 §5.1.2): every body type, including `nested [20]`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
#[allow(missing_docs)]
pub enum PkiBody {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", constructed = "true")]
    Ir(CertReqMessages),
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    Ip(CertRepMessage),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    Cr(CertReqMessages),
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", constructed = "true")]
    Cp(CertRepMessage),
    #[asn1(context_specific = "4", tag_mode = "EXPLICIT", constructed = "true")]
    P10cr(Box<CertReq>),
    #[asn1(context_specific = "5", tag_mode = "EXPLICIT", constructed = "true")]
    Popdecc(Any),
    #[asn1(context_specific = "6", tag_mode = "EXPLICIT", constructed = "true")]
    Popdecr(Any),
    #[asn1(context_specific = "7", tag_mode = "EXPLICIT", constructed = "true")]
    Kur(CertReqMessages),
    #[asn1(context_specific = "8", tag_mode = "EXPLICIT", constructed = "true")]
    Kup(CertRepMessage),
    #[asn1(context_specific = "9", tag_mode = "EXPLICIT", constructed = "true")]
    Krr(CertReqMessages),
    #[asn1(context_specific = "10", tag_mode = "EXPLICIT", constructed = "true")]
    Krp(Box<KeyRecRepContent>),
    #[asn1(context_specific = "11", tag_mode = "EXPLICIT", constructed = "true")]
    Rr(Vec<RevDetails>),
    #[asn1(context_specific = "12", tag_mode = "EXPLICIT", constructed = "true")]
    Rp(RevRepContent),
    #[asn1(context_specific = "13", tag_mode = "EXPLICIT", constructed = "true")]
    Ccr(CertReqMessages),
    #[asn1(context_specific = "14", tag_mode = "EXPLICIT", constructed = "true")]
    Ccp(CertRepMessage),
    #[asn1(context_specific = "15", tag_mode = "EXPLICIT", constructed = "true")]
    Ckuann(Any),
    #[asn1(context_specific = "16", tag_mode = "EXPLICIT", constructed = "true")]
    Cann(Any),
    #[asn1(context_specific = "17", tag_mode = "EXPLICIT", constructed = "true")]
    Rann(Any),
    #[asn1(context_specific = "18", tag_mode = "EXPLICIT", constructed = "true")]
    CrlAnn(Any),
    #[asn1(context_specific = "19", tag_mode = "EXPLICIT", constructed = "true")]
    PkiConf(Null),
    /// `nested [20] NestedMessageContent`: the inner messages as raw DER.
    #[asn1(context_specific = "20", tag_mode = "EXPLICIT", constructed = "true")]
    Nested(Vec<Any>),
    #[asn1(context_specific = "21", tag_mode = "EXPLICIT", constructed = "true")]
    Genm(Vec<InfoTypeAndValue>),
    #[asn1(context_specific = "22", tag_mode = "EXPLICIT", constructed = "true")]
    Genp(Vec<InfoTypeAndValue>),
    #[asn1(context_specific = "23", tag_mode = "EXPLICIT", constructed = "true")]
    Error(ErrorMsgContent),
    #[asn1(context_specific = "24", tag_mode = "EXPLICIT", constructed = "true")]
    CertConf(Vec<CertStatus>),
    #[asn1(context_specific = "25", tag_mode = "EXPLICIT", constructed = "true")]
    PollReq(Vec<PollReqEntry>),
    #[asn1(context_specific = "26", tag_mode = "EXPLICIT", constructed = "true")]
    PollRep(Vec<PollRepEntry>),
}

impl PkiBody {
    /// The body's name as RFC 9810 spells it (`"ir"`, `"ip"`, `"certConf"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            PkiBody::Ir(_) => "ir",
            PkiBody::Ip(_) => "ip",
            PkiBody::Cr(_) => "cr",
            PkiBody::Cp(_) => "cp",
            PkiBody::P10cr(_) => "p10cr",
            PkiBody::Popdecc(_) => "popdecc",
            PkiBody::Popdecr(_) => "popdecr",
            PkiBody::Kur(_) => "kur",
            PkiBody::Kup(_) => "kup",
            PkiBody::Krr(_) => "krr",
            PkiBody::Krp(_) => "krp",
            PkiBody::Rr(_) => "rr",
            PkiBody::Rp(_) => "rp",
            PkiBody::Ccr(_) => "ccr",
            PkiBody::Ccp(_) => "ccp",
            PkiBody::Ckuann(_) => "ckuann",
            PkiBody::Cann(_) => "cann",
            PkiBody::Rann(_) => "rann",
            PkiBody::CrlAnn(_) => "crlann",
            PkiBody::PkiConf(_) => "pkiconf",
            PkiBody::Nested(_) => "nested",
            PkiBody::Genm(_) => "genm",
            PkiBody::Genp(_) => "genp",
            PkiBody::Error(_) => "error",
            PkiBody::CertConf(_) => "certConf",
            PkiBody::PollReq(_) => "pollReq",
            PkiBody::PollRep(_) => "pollRep",
        }
    }
}

/// `PKIStatusInfo` (RFC 9810 §5.2.3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PkiStatusInfo {
    /// `PKIStatus` (0 accepted … 6 keyUpdateWarning).
    pub status: u8,
    /// `statusString PKIFreeText OPTIONAL`.
    pub status_string: Option<PkiFreeText>,
    /// `failInfo PKIFailureInfo OPTIONAL` as its BIT STRING.
    pub fail_info: Option<BitString>,
}

/// `ErrorMsgContent` (RFC 9810 §5.3.21).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ErrorMsgContent {
    /// The error's status.
    pub pki_status_info: PkiStatusInfo,
    /// `errorCode INTEGER OPTIONAL`: implementation-specific.
    pub error_code: Option<Int>,
    /// `errorDetails PKIFreeText OPTIONAL`.
    pub error_details: Option<PkiFreeText>,
}

/// `CertStatus` (RFC 9810 §5.3.18), an entry of certConf.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertStatus {
    /// Hash of the certificate.
    pub cert_hash: OctetString,
    /// The certReqId it answers.
    pub cert_req_id: Int,
    /// Acceptance or rejection; absent means accepted.
    pub status_info: Option<PkiStatusInfo>,
    /// `hashAlg [0] AlgorithmIdentifier OPTIONAL` (pvno 3).
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub hash_alg: Option<AlgorithmIdentifierOwned>,
}

/// An entry of `PollReqContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollReqEntry {
    /// The certReqId polled for (-1 for p10cr, rr, genm per RFC 9810).
    pub cert_req_id: Int,
}

/// An entry of `PollRepContent ::= SEQUENCE OF SEQUENCE { certReqId, checkAfter, reason }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollRepEntry {
    /// The certReqId answered.
    pub cert_req_id: Int,
    /// Seconds to wait before polling again.
    pub check_after: u64,
    /// Why the client must wait.
    pub reason: Option<PkiFreeText>,
}

/// `CertRepMessage` (ip, cp, kup, ccp).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertRepMessage {
    /// `caPubs [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL`.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub ca_pubs: Option<Vec<CmpCertificate>>,
    /// One response per request.
    pub response: Vec<CertResponse>,
}

/// `CertResponse`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertResponse {
    /// The certReqId answered (-1 for p10cr).
    pub cert_req_id: Int,
    /// The outcome.
    pub status: PkiStatusInfo,
    /// The certificate (and possibly private key).
    pub certified_key_pair: Option<CertifiedKeyPair>,
    /// `rspInfo OCTET STRING OPTIONAL`.
    pub rsp_info: Option<OctetString>,
}

/// `CertifiedKeyPair`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertifiedKeyPair {
    /// The certificate, plain or encrypted.
    pub cert_or_enc_cert: CertOrEncCert,
    /// `privateKey [0] EncryptedKey OPTIONAL` (central key generation, key recovery).
    ///
    /// EXPLICIT: the CMP module has EXPLICIT TAGS, and a tag on a CHOICE is always explicit.
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub private_key: Option<EncryptedKey>,
    /// `publicationInfo [1] PKIPublicationInfo OPTIONAL`, raw DER.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub publication_info: Option<Any>,
}

/// `CertOrEncCert`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum CertOrEncCert {
    /// `certificate [0] CMPCertificate`.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", constructed = "true")]
    Certificate(CmpCertificate),
    /// `encryptedCert [1] EncryptedKey` (EXPLICIT: the tag is on a CHOICE).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    EncryptedCert(EncryptedKey),
}

/// `EncryptedKey ::= CHOICE { encryptedValue EncryptedValue, envelopedData [0] EnvelopedData }`
/// (RFC 4211 §6.4, RFC 9810 §5.2.2).
///
/// `envelopedData [0]` is **IMPLICIT**: the type is defined in the CRMF module
/// (PKIXCRMF-2005 in RFC 4211 Appendix B, PKIXCRMF-2009 in RFC 5912 §8), which is
/// `DEFINITIONS IMPLICIT TAGS`; RFC 9810's CMP module (EXPLICIT TAGS) only imports the type,
/// and a type's tags follow the tagging environment of the module that defines it. EnvelopedData
/// is a SEQUENCE, so the implicit tag replaces its universal SEQUENCE tag: `A0 len 02 01 ..`
/// (version) rather than `A0 len 30 len 02 01 ..`. BouncyCastle decodes it with
/// `EnvelopedData.getInstance(tagged, false)` (implicit), and OpenSSL's CRMF templates treat
/// the field as an implicitly tagged `CMS_EnvelopedData`. `crmf 0.3.0-pre.0` declares the
/// variant EXPLICIT, which would not interoperate, hence this type.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum EncryptedKey {
    /// `encryptedValue EncryptedValue` (deprecated by RFC 9810, decoded but not decrypted).
    EncryptedValue(Box<EncryptedValue>),
    /// `envelopedData [0] IMPLICIT EnvelopedData`.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    EnvelopedData(Box<EnvelopedData>),
}

/// `KeyRecRepContent` (krp).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct KeyRecRepContent {
    /// The outcome.
    pub status: PkiStatusInfo,
    /// `newSigCert [0] CMPCertificate OPTIONAL`.
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub new_sig_cert: Option<CmpCertificate>,
    /// `caCerts [1] SEQUENCE OF CMPCertificate OPTIONAL`.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub ca_certs: Option<Vec<CmpCertificate>>,
    /// `keyPairHist [2] SEQUENCE OF CertifiedKeyPair OPTIONAL`.
    #[asn1(
        context_specific = "2",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub key_pair_hist: Option<Vec<CertifiedKeyPair>>,
}

/// `RevDetails` (an entry of rr).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RevDetails {
    /// Identifies the certificate to revoke.
    pub cert_details: CertTemplate,
    /// `crlEntryDetails Extensions OPTIONAL` (reason code etc.).
    pub crl_entry_details: Option<x509_cert::ext::Extensions>,
}

/// `RevRepContent` (rp).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct RevRepContent {
    /// One status per revocation request.
    pub status: Vec<PkiStatusInfo>,
    /// `revCerts [0] SEQUENCE OF CertId OPTIONAL`.
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub rev_certs: Option<Vec<CertId>>,
    /// `crls [1] SEQUENCE OF CertificateList OPTIONAL`.
    #[asn1(
        context_specific = "1",
        tag_mode = "EXPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub crls: Option<Vec<CertificateList>>,
}

/// `PBMParameter` (RFC 9810 §5.1.3.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PbmParameter {
    /// Salt.
    pub salt: OctetString,
    /// One-way function (hash) iterated over secret || salt.
    pub owf: AlgorithmIdentifierOwned,
    /// How often the OWF is iterated.
    pub iteration_count: Int,
    /// The MAC algorithm.
    pub mac: AlgorithmIdentifierOwned,
}

/// `PBMAC1-params` (RFC 8018 / RFC 9481 §6.1.3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Pbmac1Params {
    /// The key derivation function (PBKDF2).
    pub key_derivation_func: AlgorithmIdentifierOwned,
    /// The MAC scheme (HMAC-SHA*).
    pub message_auth_scheme: AlgorithmIdentifierOwned,
}

/// `PBKDF2-params` (RFC 8018), with the salt as the `specified` OCTET STRING choice.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Pbkdf2Params {
    /// `salt CHOICE { specified OCTET STRING, ... }` (only `specified` is supported).
    pub salt: OctetString,
    /// Iteration count.
    pub iteration_count: Int,
    /// Derived key length in octets.
    pub key_length: Option<Int>,
    /// The PRF (default hmacWithSHA1).
    pub prf: Option<AlgorithmIdentifierOwned>,
}

/// Object identifiers used by CMP and RFC 9481.
pub mod oid {
    use const_oid::ObjectIdentifier as Oid;

    /// `id-PasswordBasedMac` 1.2.840.113533.7.66.13.
    pub const PASSWORD_BASED_MAC: Oid = Oid::new_unwrap("1.2.840.113533.7.66.13");
    /// `id-PBMAC1` 1.2.840.113549.1.5.14.
    pub const PBMAC1: Oid = Oid::new_unwrap("1.2.840.113549.1.5.14");
    /// `id-PBKDF2` 1.2.840.113549.1.5.12.
    pub const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
    /// SHA-1.
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    /// SHA-224.
    pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    /// SHA-256.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// SHA-384.
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// SHA-512.
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// `hmac-sha1` as PBM uses it (1.3.6.1.5.5.8.1.2).
    pub const HMAC_SHA1_IPSEC: Oid = Oid::new_unwrap("1.3.6.1.5.5.8.1.2");
    /// `hmacWithSHA1` (RSADSI).
    pub const HMAC_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
    /// `hmacWithSHA224`.
    pub const HMAC_WITH_SHA224: Oid = Oid::new_unwrap("1.2.840.113549.2.8");
    /// `hmacWithSHA256`.
    pub const HMAC_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
    /// `hmacWithSHA384`.
    pub const HMAC_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
    /// `hmacWithSHA512`.
    pub const HMAC_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
    /// `ecdsa-with-SHA256`.
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// `ecdsa-with-SHA384`.
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    /// `ecdsa-with-SHA512`.
    pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    /// `sha256WithRSAEncryption`.
    pub const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// `sha384WithRSAEncryption`.
    pub const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    /// `sha512WithRSAEncryption`.
    pub const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    /// `id-RSASSA-PSS`.
    pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// `id-Ed25519`.
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    /// `id-Ed448`.
    pub const ED448: Oid = Oid::new_unwrap("1.3.101.113");
    /// `id-it-implicitConfirm`.
    pub const IT_IMPLICIT_CONFIRM: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.13");
    /// `id-ce-subjectKeyIdentifier`.
    pub const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");
    /// `id-ce-subjectAltName`.
    pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
    /// `id-ce-cRLReasons`.
    pub const CRL_REASON: Oid = Oid::new_unwrap("2.5.29.21");
    /// `id-it-signKeyPairTypes` (RFC 9810 §5.3.19.2).
    pub const IT_SIGN_KEY_PAIR_TYPES: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.2");
    /// `id-it-caCerts` (RFC 9810 §5.3.19.9).
    pub const IT_CA_CERTS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.17");
    /// `id-it-rootCaKeyUpdate` (RFC 9810 §5.3.19.15).
    pub const IT_ROOT_CA_KEY_UPDATE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.18");
    /// `id-it-certReqTemplate` (RFC 9810 §5.3.19.16).
    pub const IT_CERT_REQ_TEMPLATE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.19");
    /// `id-it-rootCaCert` (RFC 9810 §5.3.19.15).
    pub const IT_ROOT_CA_CERT: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.20");
    /// `id-it-crlStatusList` (RFC 9810 §5.3.19.17).
    pub const IT_CRL_STATUS_LIST: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.22");
    /// `id-it-crls` (RFC 9810 §5.3.19.18).
    pub const IT_CRLS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.4.23");
    /// `id-regCtrl-oldCertID` (RFC 4211 §6.5).
    pub const REG_CTRL_OLD_CERT_ID: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.5.1.5");
    /// `id-regCtrl-rsaKeyLen` (RFC 9810 §5.3.19.16).
    pub const REG_CTRL_RSA_KEY_LEN: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.5.1.12");
    /// `id-kp-cmcCA` (RFC 6402): a CA's CMP/CMC protection certificate.
    pub const KP_CMC_CA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.27");
    /// `id-kp-cmcRA` (RFC 6402): an RA's CMP/CMC protection certificate.
    pub const KP_CMC_RA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.28");
    /// `id-kp-cmKGA` (RFC 9483 §4.1.6): a key generation authority's certificate.
    pub const KP_CM_KGA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.32");
    /// `id-data` (RFC 5652).
    pub const CT_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// `id-signedData` (RFC 5652).
    pub const CT_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    /// `id-envelopedData` (RFC 5652).
    pub const CT_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    /// `id-ct-KP-aKeyPackage` (RFC 5958): AsymmetricKeyPackage.
    pub const CT_KP_A_KEY_PACKAGE: Oid = Oid::new_unwrap("2.16.840.1.101.2.1.2.78.5");
    /// `id-ce-extKeyUsage`.
    pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn poll_req_is_sequence_of_sequences() {
        let body = PkiBody::PollReq(vec![PollReqEntry {
            cert_req_id: Int::new(&[0]).unwrap(),
        }]);
        let der = body.to_der().unwrap();
        // [25] { SEQUENCE { SEQUENCE { INTEGER 0 } } }
        assert_eq!(der, [0xb9, 0x07, 0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]);
        assert_eq!(PkiBody::from_der(&der).unwrap(), body);
    }

    /// An EnvelopedData made by OpenSSL (RSA key transport) for `data`.
    fn openssl_enveloped_data(data: &[u8]) -> EnvelopedData {
        use openssl::cms::{CMSOptions, CmsContentInfo};
        use openssl::stack::Stack;
        use openssl::symm::Cipher;
        let rsa =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "recipient").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&rsa).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&rsa, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let mut certs = Stack::new().unwrap();
        certs.push(b.build()).unwrap();
        let ci = CmsContentInfo::encrypt(&certs, data, Cipher::aes_256_cbc(), CMSOptions::BINARY)
            .unwrap()
            .to_der()
            .unwrap();
        let ci = cms::content_info::ContentInfo::from_der(&ci).unwrap();
        assert_eq!(ci.content_type, oid::CT_ENVELOPED_DATA);
        ci.content.decode_as().unwrap()
    }

    #[test]
    fn encrypted_key_enveloped_data_is_implicitly_tagged_and_round_trips() {
        let env = openssl_enveloped_data(b"key");
        let key = EncryptedKey::EnvelopedData(Box::new(env.clone()));
        let der = key.to_der().unwrap();
        // [0] IMPLICIT: A0, then the SEQUENCE's content, starting with version INTEGER.
        let env_der = env.to_der().unwrap();
        assert_eq!(der[0], 0xa0);
        let body = &der[seq_header_len(&der)..];
        assert_eq!(body, &env_der[seq_header_len(&env_der)..]);
        assert_eq!(body[0], 0x02, "version INTEGER right after the [0] header");
        assert_eq!(EncryptedKey::from_der(&der).unwrap(), key);
        // An EXPLICIT encoding ([0] { SEQUENCE { .. } }) is not accepted as this type.
        let explicit = der::asn1::ContextSpecific {
            tag_number: der::TagNumber(0),
            tag_mode: der::TagMode::Explicit,
            value: env,
        }
        .to_der()
        .unwrap();
        assert!(EncryptedKey::from_der(&explicit).is_err());
    }

    fn seq_header_len(der: &[u8]) -> usize {
        match der[1] {
            n if n < 0x80 => 2,
            n => 2 + (n & 0x7f) as usize,
        }
    }

    #[test]
    fn certified_key_pair_with_private_key_and_encrypted_cert_round_trips() {
        let env = openssl_enveloped_data(b"key");
        let ev = EncryptedValue {
            intended_alg: None,
            sym_alg: None,
            enc_sym_key: None,
            key_alg: None,
            value_hint: None,
            enc_value: BitString::from_bytes(&[1, 2, 3]).unwrap(),
        };
        let pair = CertifiedKeyPair {
            cert_or_enc_cert: CertOrEncCert::EncryptedCert(EncryptedKey::EncryptedValue(Box::new(
                ev,
            ))),
            private_key: Some(EncryptedKey::EnvelopedData(Box::new(env))),
            publication_info: None,
        };
        let der = pair.to_der().unwrap();
        assert_eq!(CertifiedKeyPair::from_der(&der).unwrap(), pair);
        let krp = KeyRecRepContent {
            status: PkiStatusInfo {
                status: 0,
                status_string: None,
                fail_info: None,
            },
            new_sig_cert: None,
            ca_certs: None,
            key_pair_hist: Some(vec![pair]),
        };
        let der = PkiBody::Krp(Box::new(krp.clone())).to_der().unwrap();
        assert_eq!(
            PkiBody::from_der(&der).unwrap(),
            PkiBody::Krp(Box::new(krp))
        );
    }

    /// A self-signed EC certificate made by OpenSSL, with v3 extensions (a critical
    /// basicConstraints, a subjectKeyIdentifier and a subjectAltName).
    fn openssl_cert() -> Vec<u8> {
        let key = openssl::pkey::PKey::ec_gen("P-256").unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "fields test").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = openssl::bn::BigNum::from_u32(0x00c0_ffee).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.append_extension(
            openssl::x509::extension::BasicConstraints::new()
                .critical()
                .build()
                .unwrap(),
        )
        .unwrap();
        let ski = openssl::x509::extension::SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        let san = openssl::x509::extension::SubjectAlternativeName::new()
            .dns("fields.example")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha384())
            .unwrap();
        b.build().to_der().unwrap()
    }

    #[test]
    fn cert_fields_find_each_extension_value_as_x509_cert_decodes_it() {
        let der = openssl_cert();
        let c = CmpCertificate::try_from(der.as_slice()).unwrap();
        let f = c.fields().unwrap();
        let full = c.parse().unwrap();
        let exts = full.tbs_certificate().extensions().unwrap();
        assert_eq!(exts.len(), 3);
        for e in exts {
            assert_eq!(
                f.extension(e.extn_id).unwrap(),
                Some(e.extn_value.as_bytes()),
                "{}",
                e.extn_id
            );
        }
        assert_eq!(f.extension(oid::CRL_REASON).unwrap(), None, "absent");
        // A v1 certificate has no extensions field at all.
        let key = openssl::pkey::PKey::ec_gen("P-256").unwrap();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_pubkey(&key).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let v1 = CmpCertificate::try_from(b.build().to_der().unwrap().as_slice()).unwrap();
        let f = v1.fields().unwrap();
        assert_eq!(f.extensions, None);
        assert_eq!(f.extension(oid::SUBJECT_ALT_NAME).unwrap(), None);
    }

    #[test]
    fn cmp_certificate_keeps_the_der_and_reads_the_fields_x509_cert_decodes() {
        let der = openssl_cert();
        let c = CmpCertificate::try_from(der.as_slice()).unwrap();
        assert_eq!(c.der(), der.as_slice());
        assert_eq!(c.to_der().unwrap(), der);
        let full = c.parse().unwrap();
        let tbs = full.tbs_certificate();
        let f = c.fields().unwrap();
        assert_eq!(f.serial, tbs.serial_number().to_der().unwrap().as_slice());
        assert_eq!(f.issuer, tbs.issuer().to_der().unwrap().as_slice());
        assert_eq!(f.subject, tbs.subject().to_der().unwrap().as_slice());
        assert_eq!(
            f.spki,
            tbs.subject_public_key_info().to_der().unwrap().as_slice()
        );
        assert_eq!(f.signature_algorithm, full.signature_algorithm().oid);
        assert_eq!(f.signature_algorithm, oid::ECDSA_SHA384);
        // As a SEQUENCE OF inside an explicit tag (extraCerts), byte for byte both ways.
        let msg_certs = CertRepMessage {
            ca_pubs: Some(vec![c.clone(), c.clone()]),
            response: Vec::new(),
        };
        let enc = msg_certs.to_der().unwrap();
        assert_eq!(CertRepMessage::from_der(&enc).unwrap(), msg_certs);
        assert_eq!(
            enc.windows(der.len())
                .filter(|w| *w == der.as_slice())
                .count(),
            2
        );
    }

    #[test]
    fn signature_algorithm_of_reads_the_outer_algorithm_without_the_tbs_certificate() {
        let der = openssl_cert();
        assert_eq!(
            CertFields::signature_algorithm_of(&der).unwrap(),
            CertFields::read(&der).unwrap().signature_algorithm
        );
        // { SEQUENCE { NULL }, { ecdsa-with-SHA384 }, BIT STRING '' }: a TBSCertificate that
        // does not read, an algorithm that does.
        let bad_tbs = [
            0x30, 0x13, 0x30, 0x02, 0x05, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
            0x3d, 0x04, 0x03, 0x03, 0x03, 0x01, 0x00,
        ];
        assert!(CertFields::read(&bad_tbs).is_err());
        assert_eq!(
            CertFields::signature_algorithm_of(&bad_tbs).unwrap(),
            oid::ECDSA_SHA384
        );
        // The outer shape is still checked: no signature, or something after it.
        assert!(CertFields::signature_algorithm_of(&der[..der.len() - 1]).is_err());
        let mut trailing = bad_tbs.to_vec();
        trailing[1] += 2;
        trailing.extend_from_slice(&[0x05, 0x00]);
        assert!(CertFields::signature_algorithm_of(&trailing).is_err());
    }

    #[test]
    fn cert_field_spans_give_the_fields_back_from_the_same_octets() {
        let der = openssl_cert();
        let f = CertFields::read(&der).unwrap();
        let spans = f.spans(&der);
        assert_eq!(spans.fields(&der), Some(f));
        // Octets too short for the spans give nothing rather than a panic.
        assert_eq!(spans.fields(&der[..f.spki.len()]), None);
    }

    #[test]
    fn cmp_certificate_refuses_what_is_not_shaped_like_a_certificate() {
        let der = openssl_cert();
        // not a SEQUENCE
        assert!(CmpCertificate::from_der(&[0x04, 0x01, 0x00]).is_err());
        // a SEQUENCE of the wrong parts: { INTEGER, SEQUENCE, BIT STRING }
        let wrong = [
            0x30, 0x09, 0x02, 0x01, 0x01, 0x30, 0x00, 0x03, 0x02, 0x00, 0x00,
        ];
        assert!(CmpCertificate::from_der(&wrong).is_err());
        // a fourth element after the signature
        let mut extra = der.clone();
        extra.extend_from_slice(&[0x05, 0x00]);
        let inner_len = extra.len() - 4; // the test certificate has a 2-byte length
        assert_eq!(der[1], 0x82);
        extra[2..4].copy_from_slice(&u16::try_from(inner_len).unwrap().to_be_bytes());
        assert!(CmpCertificate::from_der(&extra).is_err());
        // truncated
        assert!(CmpCertificate::from_der(&der[..der.len() - 1]).is_err());
        // the outer shape holds but the TBSCertificate does not: fields() refuses it
        let bad_tbs = [
            0x30, 0x0b, 0x30, 0x02, 0x05, 0x00, 0x30, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00,
        ];
        let c = CmpCertificate::from_der(&bad_tbs).unwrap();
        assert!(c.fields().is_err());
        assert!(c.parse().is_err());
    }

    #[test]
    fn pvno_three_decodes() {
        // INTEGER 3 as the pvno of a header is accepted by the type (policy is checked later).
        assert_eq!(u8::from_der(&[0x02, 0x01, 0x03]).unwrap(), 3);
    }
}

/// A TBSCertificate to be signed (RFC 5280 §4.1), for issuing certificates: x509-cert
/// 0.3.0-pre.0 offers no public constructor for its `TbsCertificate` outside its `builder`
/// feature (which brings the `signature` crate stack; we sign through OpenSSL).
#[derive(Clone, Debug, Sequence)]
pub struct TbsCertificateOut<'a> {
    /// Always v3 here.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: x509_cert::certificate::Version,
    /// A positive serial number.
    pub serial_number: x509_cert::serial_number::SerialNumber,
    /// The issuer's signature algorithm (equal to the outer signatureAlgorithm).
    pub signature: AlgorithmIdentifierOwned,
    /// The issuer's subject name (a Name's DER, as in the issuer's certificate).
    pub issuer: der::asn1::AnyRef<'a>,
    /// notBefore and notAfter.
    pub validity: x509_cert::time::Validity,
    /// The certified subject.
    pub subject: x509_cert::name::Name,
    /// The certified SubjectPublicKeyInfo, exactly as requested.
    pub subject_public_key_info: der::asn1::AnyRef<'a>,
    /// Extensions.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<x509_cert::ext::Extensions>,
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }, with the
/// TBSCertificate carried as the exact DER that was signed.
#[derive(Clone, Debug, Sequence)]
pub struct SignedCertificateOut<'a> {
    /// The DER of a [`TbsCertificateOut`].
    pub tbs_certificate: der::asn1::AnyRef<'a>,
    /// The signature algorithm.
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature over `tbs_certificate`.
    pub signature: BitString,
}
