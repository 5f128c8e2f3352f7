//! Building and reading PKIMessages: header fields, names, nonces, status and failInfo.

use crate::asn1::{oid, InfoTypeAndValue, PkiHeader, PkiMessage, PkiStatusInfo};
use crate::error::{Error, ErrorCode, Result};
use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::Decode;
use std::fmt;
use std::str::FromStr;
use x509_cert::name::Name;

/// The default cap on a message's size (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Decode one DER PKIMessage, refusing oversized input and trailing bytes.
pub fn decode(bytes: &[u8], max_size: usize) -> Result<PkiMessage> {
    if bytes.len() > max_size {
        return Err(Error::new(
            ErrorCode::MessageTooLarge,
            format!(
                "message of {} bytes exceeds the limit of {max_size} bytes",
                bytes.len()
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(Error::new(ErrorCode::MalformedMessage, "empty message"));
    }
    from_der_checked::<PkiMessage>(bytes).map_err(|e| {
        Error::new(
            ErrorCode::MalformedMessage,
            format!("not a DER PKIMessage: {e}"),
        )
    })
}

/// Octets as lowercase hexadecimal (for messages and logs).
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `T::from_der` after [`check_der_lengths`]: for bytes from a peer.
pub(crate) fn from_der_checked<'a, T: Decode<'a>>(
    bytes: &'a [u8],
) -> std::result::Result<T, T::Error> {
    check_der_lengths(bytes)?;
    T::from_der(bytes)
}

/// The DER of the first CertReqMsg's `certReq` inside `der`, the DER of a PKIMessage whose
/// body is CertReqMessages (ir, cr, kur, krr, ccr): the bytes its POP signature covers
/// (RFC 4211 §4.1), as received. `None` if `der` is not shaped so.
pub(crate) fn first_cert_request_der(der: &[u8]) -> Option<&[u8]> {
    use crate::asn1::Tlvs;
    use der::Tag;
    let find = || -> der::Result<&[u8]> {
        let mut message = Tlvs::new(Tlvs::new(der)?.only(Tag::Sequence)?)?;
        message.next(Tag::Sequence)?; // header
        let body = message.next(Tag::Sequence)?.value; // [n] EXPLICIT
        let msgs = Tlvs::new(body)?.next(Tag::Sequence)?.value; // CertReqMessages
        let first = Tlvs::new(msgs)?.next(Tag::Sequence)?.value; // CertReqMsg
        Ok(Tlvs::new(first)?.next(Tag::Sequence)?.tlv) // certReq
    };
    find().ok()
}

/// Check that the length of every TLV in `bytes` fits in what encloses it (the input, or the
/// constructed encoding it sits in), descending into every constructed encoding; the
/// contents of primitive ones are not looked into. `der` (0.8.0-rc.2) allocates the length
/// an OCTET STRING, UTF8String, BMPString or ANY claims before checking it against the
/// input: without this check a 1 KiB message claiming a 4 GiB senderKID makes it request
/// 4 GiB (found by fuzz/ `decode`; an allocation failure aborts the process). Iterative,
/// so deep nesting costs no stack. Indefinite lengths (not DER) are refused.
pub(crate) fn check_der_lengths(bytes: &[u8]) -> der::Result<()> {
    use der::{ErrorKind, Length};
    let len_of = |n: usize| Length::try_from(n).unwrap_or(Length::MAX);
    // The end offsets of the enclosing constructed encodings, innermost last (CMP messages
    // nest about 12 deep: one allocation, no regrowth, for all but hostile input).
    let mut ends = Vec::with_capacity(32);
    ends.push(bytes.len());
    let mut pos = 0usize;
    while let Some(&end) = ends.last() {
        if pos == end {
            ends.pop();
            continue;
        }
        let start = pos;
        let within = &bytes[..end];
        let short = |expected: usize| {
            let kind = ErrorKind::Incomplete {
                expected_len: len_of(expected),
                actual_len: len_of(end),
            };
            der::Error::new(kind, len_of(start))
        };
        // Identifier octets: the first, then (high tag number form) up to the one without
        // bit 8 set.
        let first = within[pos];
        pos += 1;
        if first & 0x1f == 0x1f {
            loop {
                let b = *within.get(pos).ok_or_else(|| short(pos + 1))?;
                pos += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        // Length octets: short form, or long form with up to four octets (der's limit).
        let l0 = *within.get(pos).ok_or_else(|| short(pos + 1))?;
        pos += 1;
        let len = match l0 {
            0..=0x7f => usize::from(l0),
            0x80 => return Err(der::Error::new(ErrorKind::IndefiniteLength, len_of(start))),
            0x81..=0x84 => {
                let n = usize::from(l0 & 0x7f);
                let octets = within.get(pos..pos + n).ok_or_else(|| short(pos + n))?;
                pos += n;
                octets
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b))
            }
            _ => return Err(der::Error::new(ErrorKind::Overlength, len_of(start))),
        };
        let content_end = pos.saturating_add(len);
        if content_end > end {
            return Err(short(content_end));
        }
        if first & 0x20 != 0 {
            // Constructed: its contents are TLVs, checked next.
            ends.push(content_end);
        } else {
            pos = content_end;
        }
    }
    Ok(())
}

/// Parse a distinguished name written the OpenSSL way (`/CN=Device 1/O=Example`) or as an
/// RFC 4514 string (`CN=Device 1,O=Example`).
pub fn parse_name(s: &str) -> Result<Name> {
    let rfc4514 = if let Some(rest) = s.strip_prefix('/') {
        // OpenSSL order is most significant first; RFC 4514 strings list the last RDN first.
        let mut parts: Vec<String> = rest
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| p.replace(',', "\\,"))
            .collect();
        parts.reverse();
        parts.join(",")
    } else {
        s.to_owned()
    };
    Name::from_str(&rfc4514).map_err(|e| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("cannot parse name {s:?}: {e}"),
        )
    })
}

/// What a signer puts in the messages it protects: its certificate's subject (the sender)
/// and issuer, its subjectKeyIdentifier (senderKID), and the certificate with its chain
/// (extraCerts). Computed once per signer.
#[derive(Clone, Debug)]
pub(crate) struct SignerIdentity {
    /// The protection certificate's subject, as the header's sender.
    pub sender: crate::asn1::CmpName,
    /// The protection certificate's issuer.
    pub issuer: Name,
    /// Its subjectKeyIdentifier, if it has one.
    pub ski: Option<Vec<u8>>,
    /// The certificate followed by `chain`.
    pub extra: Vec<crate::asn1::CmpCertificate>,
}

impl SignerIdentity {
    /// The identity of the signer holding `cert`, sending `chain` along.
    pub fn new(cert: &openssl::x509::X509, chain: &[openssl::x509::X509]) -> Result<Self> {
        let own = crate::asn1::CmpCertificate::try_from(cert.to_der()?.as_slice())?;
        // OpenSSL has read the subjectKeyIdentifier already.
        let ski = cert.subject_key_id().map(|k| k.as_slice().to_vec());
        Self::build(own, chain, |_| ski)
    }

    /// The identity of the signer holding `own` (kept as DER), sending `chain` along.
    ///
    /// As with OpenSSL, a subjectKeyIdentifier extension that does not decode counts as none.
    pub fn from_cert(
        own: crate::asn1::CmpCertificate,
        chain: &[openssl::x509::X509],
    ) -> Result<Self> {
        Self::build(own, chain, |fields| {
            let ski = fields.extension(oid::SUBJECT_KEY_IDENTIFIER).ok()??;
            let ski = der::asn1::OctetStringRef::from_der(ski).ok()?;
            Some(ski.as_bytes().to_vec())
        })
    }

    /// The identity from `own`'s fields, with the subjectKeyIdentifier `ski` reads.
    fn build(
        own: crate::asn1::CmpCertificate,
        chain: &[openssl::x509::X509],
        ski: impl FnOnce(&crate::asn1::CertFields<'_>) -> Option<Vec<u8>>,
    ) -> Result<Self> {
        let fields = own.fields()?;
        let sender = crate::asn1::CmpName::from_name_der(fields.subject)?;
        let issuer = Name::from_der(fields.issuer)?;
        let ski = ski(&fields);
        let mut extra = vec![own];
        for c in chain {
            extra.push(crate::asn1::CmpCertificate::try_from(
                c.to_der()?.as_slice(),
            )?);
        }
        Ok(SignerIdentity {
            sender,
            issuer,
            ski,
            extra,
        })
    }
}

/// `n` octets from OpenSSL's CSPRNG for public values (nonces, transactionIDs, serial
/// numbers), never handed out twice, also not across `fork()`. Small requests are served
/// from a per-thread block of octets drawn at once; not for secret values (keys).
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    crate::crypto::random::fill_public(&mut v)?;
    Ok(v)
}

/// The current time as a GeneralizedTime (whole seconds).
pub fn now() -> Result<GeneralizedTime> {
    GeneralizedTime::from_system_time(std::time::SystemTime::now())
        .map_err(|e| Error::new(ErrorCode::Internal, format!("system clock: {e}")))
}

/// The `implicitConfirm` InfoTypeAndValue (value NULL).
pub fn implicit_confirm_itav() -> InfoTypeAndValue {
    InfoTypeAndValue {
        oid: oid::IT_IMPLICIT_CONFIRM,
        value: Some(der::asn1::Any::null()),
    }
}

/// Whether the header's generalInfo carries implicitConfirm.
pub fn has_implicit_confirm(header: &PkiHeader) -> bool {
    header
        .general_info
        .as_ref()
        .is_some_and(|v| v.iter().any(|i| i.oid == oid::IT_IMPLICIT_CONFIRM))
}

/// Bytes of an optional OCTET STRING header field.
pub fn octets(f: &Option<OctetString>) -> Option<&[u8]> {
    f.as_ref().map(|o| o.as_bytes())
}

/// An OCTET STRING from bytes.
pub fn octet_string(b: &[u8]) -> Result<OctetString> {
    OctetString::new(b)
        .map_err(|e| Error::new(ErrorCode::EncodingFailed, format!("OCTET STRING: {e}")))
}

/// PKIStatus values (RFC 9810 §5.2.3).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkiStatus {
    /// You got exactly what you asked for.
    Accepted = 0,
    /// You got something like what you asked for.
    GrantedWithMods = 1,
    /// You don't get it; more information in failInfo and statusString.
    Rejection = 2,
    /// The request body part has not yet been processed; poll later.
    Waiting = 3,
    /// A revocation is imminent.
    RevocationWarning = 4,
    /// A revocation has occurred.
    RevocationNotification = 5,
    /// The key update was already done.
    KeyUpdateWarning = 6,
}

impl PkiStatus {
    /// From the integer on the wire.
    pub fn from_u8(v: u8) -> Option<PkiStatus> {
        use PkiStatus::*;
        Some(match v {
            0 => Accepted,
            1 => GrantedWithMods,
            2 => Rejection,
            3 => Waiting,
            4 => RevocationWarning,
            5 => RevocationNotification,
            6 => KeyUpdateWarning,
            _ => return None,
        })
    }

    /// The RFC's name.
    pub fn name(self) -> &'static str {
        use PkiStatus::*;
        match self {
            Accepted => "accepted",
            GrantedWithMods => "grantedWithMods",
            Rejection => "rejection",
            Waiting => "waiting",
            RevocationWarning => "revocationWarning",
            RevocationNotification => "revocationNotification",
            KeyUpdateWarning => "keyUpdateWarning",
        }
    }
}

/// Names of the PKIFailureInfo bits, index = bit number (RFC 9810 §5.2.3).
pub const FAIL_INFO_NAMES: [&str; 27] = [
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId",
    "badDataFormat",
    "wrongAuthority",
    "incorrectData",
    "missingTimeStamp",
    "badPOP",
    "certRevoked",
    "certConfirmed",
    "wrongIntegrity",
    "badRecipientNonce",
    "timeNotAvailable",
    "unacceptedPolicy",
    "unacceptedExtension",
    "addInfoNotAvailable",
    "badSenderNonce",
    "badCertTemplate",
    "signerNotTrusted",
    "transactionIdInUse",
    "unsupportedVersion",
    "notAuthorized",
    "systemUnavail",
    "systemFailure",
    "duplicateCertReq",
];

/// PKIFailureInfo bit numbers used when building messages.
pub mod fail_info {
    /// badAlg.
    pub const BAD_ALG: u32 = 0;
    /// badMessageCheck.
    pub const BAD_MESSAGE_CHECK: u32 = 1;
    /// badRequest.
    pub const BAD_REQUEST: u32 = 2;
    /// incorrectData.
    pub const INCORRECT_DATA: u32 = 7;
    /// badPOP.
    pub const BAD_POP: u32 = 9;
    /// badTime.
    pub const BAD_TIME: u32 = 3;
    /// badCertId.
    pub const BAD_CERT_ID: u32 = 4;
    /// badDataFormat.
    pub const BAD_DATA_FORMAT: u32 = 5;
    /// certRevoked.
    pub const CERT_REVOKED: u32 = 10;
    /// wrongIntegrity.
    pub const WRONG_INTEGRITY: u32 = 12;
    /// badRecipientNonce.
    pub const BAD_RECIPIENT_NONCE: u32 = 13;
    /// badSenderNonce.
    pub const BAD_SENDER_NONCE: u32 = 18;
    /// badCertTemplate.
    pub const BAD_CERT_TEMPLATE: u32 = 19;
    /// signerNotTrusted.
    pub const SIGNER_NOT_TRUSTED: u32 = 20;
    /// transactionIdInUse.
    pub const TRANSACTION_ID_IN_USE: u32 = 21;
    /// unsupportedVersion.
    pub const UNSUPPORTED_VERSION: u32 = 22;
    /// notAuthorized.
    pub const NOT_AUTHORIZED: u32 = 23;
    /// systemUnavail.
    pub const SYSTEM_UNAVAIL: u32 = 24;
    /// systemFailure.
    pub const SYSTEM_FAILURE: u32 = 25;
}

/// Decode a PKIFailureInfo BIT STRING into a mask where bit `n` (value `1 << n`) is the
/// RFC's bit `n` (`badAlg` = 0 … `duplicateCertReq` = 26). Bits beyond 31 are ignored.
pub fn fail_info_mask(bits: &BitString) -> u32 {
    let mut mask = 0u32;
    for (n, set) in bits.bits().enumerate().take(32) {
        if set {
            mask |= 1 << n;
        }
    }
    mask
}

/// Encode a failInfo mask as a DER BIT STRING (named-bit list: trailing zero bits dropped).
pub fn fail_info_bit_string(mask: u32) -> Result<BitString> {
    let nbits = 32 - mask.leading_zeros() as usize;
    let nbytes = nbits.div_ceil(8);
    let mut bytes = vec![0u8; nbytes];
    for n in 0..nbits {
        if mask & (1 << n) != 0 {
            bytes[n / 8] |= 0x80 >> (n % 8);
        }
    }
    let unused = (nbytes * 8 - nbits) as u8;
    BitString::new(unused, bytes)
        .map_err(|e| Error::new(ErrorCode::EncodingFailed, format!("failInfo: {e}")))
}

/// A peer's verdict: PKIStatus, failInfo bits and statusString, as reported to callers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// The PKIStatus value (see [`PkiStatus`]).
    pub status: u8,
    /// failInfo as a mask (`1 << bit`), 0 if absent.
    pub fail_info: u32,
    /// statusString entries.
    pub texts: Vec<String>,
}

impl PeerStatus {
    /// Convert from the wire structure.
    pub fn from_status_info(si: &PkiStatusInfo) -> Self {
        PeerStatus {
            status: si.status,
            fail_info: si.fail_info.as_ref().map(fail_info_mask).unwrap_or(0),
            texts: si.status_string.clone().unwrap_or_default(),
        }
    }

    /// The failInfo bit names that are set.
    pub fn fail_info_names(&self) -> Vec<&'static str> {
        (0..FAIL_INFO_NAMES.len())
            .filter(|n| self.fail_info & (1 << n) != 0)
            .map(|n| FAIL_INFO_NAMES[n])
            .collect()
    }
}

impl fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PkiStatus::from_u8(self.status) {
            Some(s) => write!(f, "{}", s.name())?,
            None => write!(f, "status {}", self.status)?,
        }
        let names = self.fail_info_names();
        if !names.is_empty() {
            write!(f, " (failInfo: {})", names.join(", "))?;
        }
        if !self.texts.is_empty() {
            write!(f, ": \"{}\"", self.texts.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn der_lengths_are_checked_against_their_enclosing_encoding() {
        let ok: &[&[u8]] = &[
            &[],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x04, 0x01, 0xaa, 0x05, 0x00],
            // High tag number form ([31] and [200], constructed), primitive contents that
            // look like a too-long TLV (not looked into).
            &[0xbf, 0x1f, 0x02, 0x05, 0x00],
            &[0xbf, 0x81, 0x48, 0x03, 0x04, 0x01, 0xff],
            &[0x04, 0x02, 0x04, 0x84],
            // Long form lengths.
            &[0x04, 0x81, 0x01, 0x00],
        ];
        for d in ok {
            assert!(check_der_lengths(d).is_ok(), "{d:02x?}");
        }
        let bad: &[&[u8]] = &[
            // A field longer than its SEQUENCE, or than the input.
            &[0x30, 0x03, 0x04, 0x02, 0xaa],
            &[0x30, 0x03, 0x04, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x06, 0x04, 0x84, 0x84, 0x84, 0x84, 0x84],
            &[0x04, 0x02, 0x00],
            // Deep inside: the third level claims more than the second holds.
            &[0x30, 0x06, 0x30, 0x04, 0x31, 0x03, 0x02, 0x01],
            // Cut inside a tag or the length octets.
            &[0x30, 0x02, 0x1f, 0x81],
            &[0x30, 0x02, 0x04, 0x82],
            &[0x04],
            // Indefinite length; five length octets.
            &[0x30, 0x80, 0x00, 0x00],
            &[0x04, 0x85, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00],
        ];
        for d in bad {
            assert!(check_der_lengths(d).is_err(), "{d:02x?}");
        }
        // Deep nesting is walked without recursion.
        // 100 000 SEQUENCEs (six-octet headers) around an empty one.
        let depth: u32 = 100_000;
        let mut deep = Vec::new();
        for i in 0..depth {
            deep.extend_from_slice(&[0x30, 0x84]);
            deep.extend_from_slice(&(6 * (depth - 1 - i) + 2).to_be_bytes());
        }
        deep.extend_from_slice(&[0x30, 0x00]);
        assert!(check_der_lengths(&deep).is_ok());
        let last = deep.len() - 1;
        deep[last] = 0x01;
        assert!(check_der_lengths(&deep).is_err());
    }

    #[test]
    fn openssl_style_and_rfc4514_names_encode_the_same() {
        let a = parse_name("/O=Example/CN=Device 1").unwrap();
        let b = parse_name("CN=Device 1,O=Example").unwrap();
        assert_eq!(a.to_der().unwrap(), b.to_der().unwrap());
        assert_eq!(a.to_string(), "CN=Device 1,O=Example");
    }

    #[test]
    fn malformed_name_is_an_invalid_argument() {
        assert_eq!(
            parse_name("/NOPE").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn fail_info_mask_round_trips_through_der_bit_string() {
        for mask in [0u32, 1 << 9, (1 << 2) | (1 << 25), 1 << 26, 1] {
            let bs = fail_info_bit_string(mask).unwrap();
            assert_eq!(fail_info_mask(&bs), mask);
        }
        // badPOP (bit 9) is encoded as 03 03 06 00 40, as OpenSSL does.
        assert_eq!(
            fail_info_bit_string(1 << 9).unwrap().to_der().unwrap(),
            [3, 3, 6, 0, 0x40]
        );
    }

    #[test]
    fn peer_status_reads_like_the_rfc() {
        let s = PeerStatus {
            status: 2,
            fail_info: 1 << 9,
            texts: vec!["no".into()],
        };
        assert_eq!(s.to_string(), "rejection (failInfo: badPOP): \"no\"");
    }

    #[test]
    fn oversized_and_empty_and_truncated_input_get_distinct_errors() {
        assert_eq!(
            decode(&[0x30; 10], 5).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        assert_eq!(
            decode(&[], 5).unwrap_err().code,
            ErrorCode::MalformedMessage
        );
        assert_eq!(
            decode(&[0x30, 0x05, 0x02], 100).unwrap_err().code,
            ErrorCode::MalformedMessage
        );
    }

    #[test]
    fn first_cert_request_der_is_the_received_cert_request_of_every_captured_request() {
        use crate::asn1::PkiBody;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
        let mut seen = 0;
        for sub in ["openssl-3.0", "lightweightcmpra"] {
            for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let path = e.unwrap().path();
                if path.extension().is_none_or(|x| x != "der") {
                    continue;
                }
                let der = std::fs::read(path).unwrap();
                let Ok(msg) = PkiMessage::from_der(&der) else {
                    continue;
                };
                let found = first_cert_request_der(&der);
                match &msg.body {
                    PkiBody::Ir(m) | PkiBody::Cr(m) | PkiBody::Kur(m) => {
                        assert_eq!(found, Some(m[0].cert_req.to_der().unwrap().as_slice()));
                        seen += 1;
                    }
                    _ => {}
                }
            }
        }
        assert!(
            seen >= 10,
            "only {seen} certificate requests among the vectors"
        );
        assert_eq!(
            first_cert_request_der(&[0x30, 0x03, 0x02, 0x01, 0x02]),
            None
        );
        assert_eq!(first_cert_request_der(&[]), None);
    }
}
