//! `PKIHeader` (RFC 9810 §5.1.1) with a decoder and encoder written for it, and the
//! sender/recipient `GeneralName` kept as DER ([`CmpName`]).
//!
//! Every message decodes and encodes a header on each side, so they are on the hot path. The
//! derived decoder peeked at the input for each of the nine optional fields, and the names
//! were decoded into x509-cert's owned `Name` (one allocation per RDN, per attribute and per
//! value) only to be compared byte for byte with a certificate subject or copied into the
//! next message. Here each present optional field is dispatched on its tag once; a name is
//! checked as x509-cert would decode it, without allocating, and kept as its DER, and a name
//! this thread decoded lately (the CA's, the end entity's: they repeat in every message of a
//! transaction) is neither checked nor copied again. Encoding writes the fields on the stack
//! first, which spares der's second pass over them for the length.

use super::{explicit, explicit_opt, InfoTypeAndValue, PkiFreeText};
use der::asn1::{AnyRef, GeneralizedTime, ObjectIdentifier, OctetString, OctetStringRef};
use der::referenced::RefToOwned;
use der::{
    Decode, DecodeValue, Encode, ErrorKind, FixedTag, Header, Length, Reader, Sequence,
    SliceReader, Tag, TagNumber, Writer,
};
use spki::AlgorithmIdentifierOwned;
use std::cell::RefCell;
use std::sync::{Arc, LazyLock};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// `PKIHeader` (RFC 9810 §5.1.1).
///
/// Decoding is strict DER: the optional fields must come in the order of their tags, each at
/// most once (der's derived decoder skipped a context-specific field whose tag was lower than
/// the one it looked for, so a repeated or misplaced field was silently dropped).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PkiHeader {
    /// `pvno INTEGER { cmp1999(1), cmp2000(2), cmp2021(3) }`.
    pub pvno: u8,
    /// The sender's name (NULL-DN when unknown).
    pub sender: CmpName,
    /// The intended recipient's name.
    pub recipient: CmpName,
    /// `messageTime [0] GeneralizedTime OPTIONAL`.
    pub message_time: Option<GeneralizedTime>,
    /// `protectionAlg [1] AlgorithmIdentifier OPTIONAL`.
    pub protection_alg: Option<AlgorithmIdentifierOwned>,
    /// `senderKID [2] KeyIdentifier OPTIONAL`.
    pub sender_kid: Option<OctetString>,
    /// `recipKID [3] KeyIdentifier OPTIONAL`.
    pub recip_kid: Option<OctetString>,
    /// `transactionID [4] OCTET STRING OPTIONAL`.
    pub transaction_id: Option<OctetString>,
    /// `senderNonce [5] OCTET STRING OPTIONAL`.
    pub sender_nonce: Option<OctetString>,
    /// `recipNonce [6] OCTET STRING OPTIONAL`.
    pub recip_nonce: Option<OctetString>,
    /// `freeText [7] PKIFreeText OPTIONAL`.
    pub free_text: Option<PkiFreeText>,
    /// `generalInfo [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue OPTIONAL`.
    pub general_info: Option<Vec<InfoTypeAndValue>>,
}

/// The highest tag number of the optional fields (`generalInfo [8]`).
const LAST_OPTIONAL: u32 = 8;

impl FixedTag for PkiHeader {
    const TAG: Tag = Tag::Sequence;
}

impl<'a> DecodeValue<'a> for PkiHeader {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |r| {
            let mut h = PkiHeader {
                pvno: r.decode()?,
                sender: r.decode()?,
                recipient: r.decode()?,
                message_time: None,
                protection_alg: None,
                sender_kid: None,
                recip_kid: None,
                transaction_id: None,
                sender_nonce: None,
                recip_nonce: None,
                free_text: None,
                general_info: None,
            };
            // The optional fields, each `[n] EXPLICIT`, in increasing order of n.
            let mut lowest = 0;
            while !r.is_finished() {
                let field = Header::decode(r)?;
                let n = match field.tag {
                    Tag::ContextSpecific {
                        number: TagNumber(n),
                        constructed: true,
                    } if (lowest..=LAST_OPTIONAL).contains(&n) => n,
                    actual => {
                        let kind = ErrorKind::TagUnexpected {
                            expected: None,
                            actual,
                        };
                        return Err(r.error(kind));
                    }
                };
                lowest = n + 1;
                r.read_nested(field.length, |r| {
                    match n {
                        0 => h.message_time = Some(r.decode()?),
                        1 => h.protection_alg = Some(r.decode()?),
                        2 => h.sender_kid = Some(octet_string(r)?),
                        3 => h.recip_kid = Some(octet_string(r)?),
                        4 => h.transaction_id = Some(octet_string(r)?),
                        5 => h.sender_nonce = Some(octet_string(r)?),
                        6 => h.recip_nonce = Some(octet_string(r)?),
                        7 => h.free_text = Some(r.decode()?),
                        _ => h.general_info = Some(r.decode()?),
                    }
                    Ok::<_, der::Error>(())
                })?;
            }
            Ok(h)
        })
    }
}

/// An OCTET STRING, copied out of the input once (der's `OctetString` decoder zeroes its
/// buffer before copying).
fn octet_string<'a>(r: &mut impl Reader<'a>) -> der::Result<OctetString> {
    Ok(OctetStringRef::decode(r)?.ref_to_owned())
}

impl PkiHeader {
    /// The length of the contents (the fields' encodings).
    fn value_len(&self) -> der::Result<Length> {
        [
            self.pvno.encoded_len()?,
            self.sender.encoded_len()?,
            self.recipient.encoded_len()?,
            explicit_opt(0, &self.message_time).encoded_len()?,
            explicit_opt(1, &self.protection_alg).encoded_len()?,
            explicit_opt(2, &self.sender_kid).encoded_len()?,
            explicit_opt(3, &self.recip_kid).encoded_len()?,
            explicit_opt(4, &self.transaction_id).encoded_len()?,
            explicit_opt(5, &self.sender_nonce).encoded_len()?,
            explicit_opt(6, &self.recip_nonce).encoded_len()?,
            explicit_opt(7, &self.free_text).encoded_len()?,
            explicit_opt(8, &self.general_info).encoded_len()?,
        ]
        .into_iter()
        .try_fold(Length::ZERO, |sum, len| sum + len)
    }

    /// Write the contents (the fields' encodings) to `w`.
    fn encode_fields(&self, w: &mut impl Writer) -> der::Result<()> {
        self.pvno.encode(w)?;
        self.sender.encode(w)?;
        self.recipient.encode(w)?;
        explicit_opt(0, &self.message_time).encode(w)?;
        explicit_opt(1, &self.protection_alg).encode(w)?;
        explicit_opt(2, &self.sender_kid).encode(w)?;
        explicit_opt(3, &self.recip_kid).encode(w)?;
        explicit_opt(4, &self.transaction_id).encode(w)?;
        explicit_opt(5, &self.sender_nonce).encode(w)?;
        explicit_opt(6, &self.recip_nonce).encode(w)?;
        explicit_opt(7, &self.free_text).encode(w)?;
        explicit_opt(8, &self.general_info).encode(w)
    }
}

/// Room on the stack for a header's contents while encoding (headers usually take 150 to
/// 250 octets).
const ENCODE_ROOM: usize = 512;

/// A [`Writer`] into a fixed buffer, without der's `SliceWriter`'s bookkeeping per write (a
/// header's encoding is some fifty writes of one to a few octets).
struct RoomWriter<'a> {
    room: &'a mut [u8],
    len: usize,
}

impl<'a> RoomWriter<'a> {
    /// An empty writer into `room`.
    fn new(room: &'a mut [u8]) -> Self {
        RoomWriter { room, len: 0 }
    }

    /// What was written.
    fn written(self) -> &'a [u8] {
        &self.room[..self.len]
    }
}

impl Writer for RoomWriter<'_> {
    fn write(&mut self, slice: &[u8]) -> der::Result<()> {
        let end = self.len + slice.len();
        let to = self
            .room
            .get_mut(self.len..end)
            .ok_or(ErrorKind::Overlength)?;
        to.copy_from_slice(slice);
        self.len = end;
        Ok(())
    }

    fn write_byte(&mut self, byte: u8) -> der::Result<()> {
        *self.room.get_mut(self.len).ok_or(ErrorKind::Overlength)? = byte;
        self.len += 1;
        Ok(())
    }
}

/// Encoded directly rather than through `EncodeValue`, so that encoding needs no separate
/// pass over the fields for the length: the contents are written on the stack first (unless
/// they do not fit), then the header and the contents in one write.
impl Encode for PkiHeader {
    fn encoded_len(&self) -> der::Result<Length> {
        self.value_len()?.for_tlv(Tag::Sequence)
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        let mut room = [0u8; ENCODE_ROOM];
        let mut w = RoomWriter::new(&mut room);
        if self.encode_fields(&mut w).is_ok() {
            let value = w.written();
            Header::new(Tag::Sequence, value.len())?.encode(writer)?;
            return writer.write(value);
        }
        // Too large for the room (a long freeText or generalInfo), or an error to report.
        Header::new(Tag::Sequence, self.value_len()?)?.encode(writer)?;
        self.encode_fields(writer)
    }
}

/// A header's `sender` or `recipient` (`GeneralName`), kept as its DER.
///
/// Decoding accepts exactly what x509-cert's [`GeneralName`] decoder accepts (a directoryName
/// is checked without allocating; the other choices, rare in CMP, are decoded), so a value
/// always holds a valid GeneralName. [`directory_name`](Self::directory_name) and
/// [`general_name`](Self::general_name) decode it when needed;
/// [`directory_name_der`](Self::directory_name_der) gives the Name's DER for comparing with
/// a certificate's subject. Equality is equality of the DER. Clones share the bytes, and so
/// do decodings of a name among the last few this thread decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct CmpName {
    der: Arc<[u8]>,
}

/// `[4] { SEQUENCE {} }`: the NULL-DN as a directoryName.
const NULL_DN_DER: [u8; 4] = [0xa4, 0x02, 0x30, 0x00];

/// The NULL-DN's bytes, shared by every [`CmpName::null_dn`].
static NULL_DN: LazyLock<Arc<[u8]>> = LazyLock::new(|| Arc::from(&NULL_DN_DER[..]));

/// The tag of the `directoryName [4]` choice of GeneralName (EXPLICIT, so constructed).
const DIRECTORY_NAME: Tag = Tag::ContextSpecific {
    number: TagNumber(4),
    constructed: true,
};

impl CmpName {
    /// The NULL-DN (an empty directoryName), the name of an unknown sender or recipient.
    pub fn null_dn() -> Self {
        CmpName {
            der: NULL_DN.clone(),
        }
    }

    /// Whether this is the NULL-DN.
    pub fn is_null_dn(&self) -> bool {
        *self.der == NULL_DN_DER
    }

    /// The GeneralName's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The DER of the Name (the `SEQUENCE`) of a directoryName, `None` for another choice.
    pub fn directory_name_der(&self) -> Option<&[u8]> {
        let name = super::Tlvs::new(&self.der)
            .ok()?
            .next(DIRECTORY_NAME)
            .ok()?;
        (name.tag == DIRECTORY_NAME).then_some(name.value)
    }

    /// The Name of a directoryName, decoded; `None` for another choice.
    pub fn directory_name(&self) -> der::Result<Option<Name>> {
        self.directory_name_der().map(Name::from_der).transpose()
    }

    /// The GeneralName, decoded.
    pub fn general_name(&self) -> der::Result<GeneralName> {
        GeneralName::from_der(&self.der)
    }

    /// The directoryName holding the Name whose DER is `name` (a certificate's subject, say),
    /// byte for byte; checked as when decoded.
    pub fn from_name_der(name: &[u8]) -> der::Result<Self> {
        Self::from_der(&explicit(4, &AnyRef::from_der(name)?).to_der()?)
    }

    /// Keep `tlv`, already checked to be one GeneralName; a NULL-DN shares the static bytes.
    fn from_checked(tlv: &[u8]) -> Self {
        if tlv == NULL_DN_DER {
            return Self::null_dn();
        }
        CmpName {
            der: Arc::from(tlv),
        }
    }
}

/// `AttributeTypeAndValue` as x509-cert decodes it, borrowed: for checking a Name without
/// allocating.
#[derive(Sequence)]
struct AttributeTypeAndValueRef<'a> {
    oid: ObjectIdentifier,
    value: AnyRef<'a>,
}

/// Check that `tlv` is a GeneralName x509-cert decodes. The usual directoryName, with one
/// attribute per RDN, is checked with der's decoders of the types x509-cert decodes a Name
/// into (`SEQUENCE OF SET OF SEQUENCE { OBJECT IDENTIFIER, ANY }`; a SET of one element needs
/// no ordering check), without allocating; anything else gets x509-cert's own verdict.
fn check_general_name(tlv: &[u8]) -> der::Result<()> {
    let single_valued_directory_name = || -> der::Result<()> {
        let mut r = SliceReader::new(tlv)?;
        let header = Header::decode(&mut r)?;
        header.tag.assert_eq(DIRECTORY_NAME)?;
        r.read_nested(header.length, |r| {
            r.sequence(|rdns| {
                while !rdns.is_finished() {
                    let set = Header::decode(rdns)?;
                    set.tag.assert_eq(Tag::Set)?;
                    rdns.read_nested(set.length, AttributeTypeAndValueRef::decode)?;
                }
                Ok::<_, der::Error>(())
            })
        })?;
        r.finish(())
    };
    if single_valued_directory_name().is_err() {
        GeneralName::from_der(tlv)?;
    }
    Ok(())
}

/// How many names [`RECENT_NAMES`] keeps.
const RECENT_NAMES_MAX: usize = 4;

/// A name in [`RECENT_NAMES`]: its tag and length, and its DER.
type RecentName = (Header, Arc<[u8]>);

thread_local! {
    /// The GeneralNames this thread decoded last, most recent first. A header's names repeat
    /// from message to message (the CA's name, the end entity's subject), so one found here is
    /// shared instead of being checked and copied again. Only checked names are kept.
    static RECENT_NAMES: RefCell<[Option<RecentName>; RECENT_NAMES_MAX]> =
        const { RefCell::new([const { None }; RECENT_NAMES_MAX]) };
}

/// Room on the stack for a name's DER while it is checked; the longest name kept among the
/// recent ones (so a thread keeps at most `RECENT_NAMES_MAX` times this many octets).
const NAME_ROOM: usize = 256;

impl<'a> Decode<'a> for CmpName {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let header = Header::decode(reader)?;
        let value = reader.read_slice(header.length)?;
        if header.tag == DIRECTORY_NAME && *value == NULL_DN_DER[2..] {
            return Ok(Self::null_dn());
        }
        RECENT_NAMES.with_borrow_mut(|names| {
            // The same tag and length (so the same DER header) and the same contents.
            let same = |(h, der): &RecentName| *h == header && der.ends_with(value);
            match names.iter().position(|n| n.as_ref().is_some_and(same)) {
                Some(at) => names[..=at].rotate_right(1),
                None => {
                    let mut room = [0u8; NAME_ROOM];
                    let mut w = RoomWriter::new(&mut room);
                    if header.encode(&mut w).and_then(|()| w.write(value)).is_err() {
                        // Longer than any usual name: checked, and not kept among the recent.
                        let tlv = [header.to_der()?.as_slice(), value].concat();
                        check_general_name(&tlv)?;
                        return Ok(CmpName { der: tlv.into() });
                    }
                    let tlv = w.written();
                    check_general_name(tlv)?;
                    names.rotate_right(1);
                    names[0] = Some((header, Arc::from(tlv)));
                }
            }
            let (_, der) = names[0].as_ref().ok_or(ErrorKind::Failed)?;
            Ok(CmpName { der: der.clone() })
        })
    }
}

impl Encode for CmpName {
    fn encoded_len(&self) -> der::Result<Length> {
        Length::try_from(self.der.len())
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.der)
    }
}

impl TryFrom<&Name> for CmpName {
    type Error = der::Error;

    /// The directoryName `name`.
    fn try_from(name: &Name) -> der::Result<Self> {
        Ok(Self::from_checked(&explicit(4, name).to_der()?))
    }
}

impl TryFrom<&GeneralName> for CmpName {
    type Error = der::Error;

    fn try_from(name: &GeneralName) -> der::Result<Self> {
        Ok(Self::from_checked(&name.to_der()?))
    }
}

impl std::fmt::Display for CmpName {
    /// A directoryName as an RFC 4514 string, another choice as `type:value`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.general_name() {
            Ok(GeneralName::DirectoryName(n)) => write!(f, "{n}"),
            Ok(GeneralName::Rfc822Name(s)) => write!(f, "rfc822Name:{s}"),
            Ok(GeneralName::DnsName(s)) => write!(f, "dNSName:{s}"),
            Ok(GeneralName::UniformResourceIdentifier(s)) => write!(f, "URI:{s}"),
            Ok(GeneralName::IpAddress(a)) => match <[u8; 4]>::try_from(a.as_bytes()) {
                Ok(v4) => write!(f, "iPAddress:{}", std::net::Ipv4Addr::from(v4)),
                Err(_) => match <[u8; 16]>::try_from(a.as_bytes()) {
                    Ok(v6) => write!(f, "iPAddress:{}", std::net::Ipv6Addr::from(v6)),
                    Err(_) => write!(f, "iPAddress:{}", crate::message::hex(a.as_bytes())),
                },
            },
            Ok(GeneralName::RegisteredId(oid)) => write!(f, "registeredID:{oid}"),
            Ok(GeneralName::OtherName(o)) => write!(f, "otherName:{}", o.type_id),
            Ok(GeneralName::EdiPartyName(_)) => write!(f, "ediPartyName"),
            Err(e) => write!(f, "<undecodable GeneralName: {e}>"),
        }
    }
}

impl std::fmt::Debug for CmpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CmpName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::oid;
    use der::asn1::Any;
    use std::str::FromStr;

    /// The header as der's derive decoded and encoded it before: the reference for the
    /// encoding, and for what is accepted apart from field order.
    #[derive(Clone, Debug, Eq, PartialEq, Sequence)]
    struct DerivedHeader {
        pvno: u8,
        sender: GeneralName,
        recipient: GeneralName,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        message_time: Option<GeneralizedTime>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        protection_alg: Option<AlgorithmIdentifierOwned>,
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
        sender_kid: Option<OctetString>,
        #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
        recip_kid: Option<OctetString>,
        #[asn1(context_specific = "4", tag_mode = "EXPLICIT", optional = "true")]
        transaction_id: Option<OctetString>,
        #[asn1(context_specific = "5", tag_mode = "EXPLICIT", optional = "true")]
        sender_nonce: Option<OctetString>,
        #[asn1(context_specific = "6", tag_mode = "EXPLICIT", optional = "true")]
        recip_nonce: Option<OctetString>,
        #[asn1(context_specific = "7", tag_mode = "EXPLICIT", optional = "true")]
        free_text: Option<PkiFreeText>,
        #[asn1(context_specific = "8", tag_mode = "EXPLICIT", optional = "true")]
        general_info: Option<Vec<InfoTypeAndValue>>,
    }

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn octets(b: &[u8]) -> OctetString {
        OctetString::new(b).unwrap()
    }

    /// A derived header with every optional field whose bit is set in `present`.
    fn derived(present: u16) -> DerivedHeader {
        let on = |bit: u16| present & (1 << bit) != 0;
        DerivedHeader {
            pvno: 2,
            sender: GeneralName::DirectoryName(name("CN=sender,O=Example")),
            recipient: GeneralName::DirectoryName(name("CN=recipient")),
            message_time: on(0).then(|| {
                GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(1_700_000_000))
                    .unwrap()
            }),
            protection_alg: on(1).then_some(AlgorithmIdentifierOwned {
                oid: oid::ECDSA_SHA256,
                parameters: None,
            }),
            sender_kid: on(2).then(|| octets(&[2; 20])),
            recip_kid: on(3).then(|| octets(&[3; 20])),
            transaction_id: on(4).then(|| octets(&[4; 16])),
            sender_nonce: on(5).then(|| octets(&[5; 16])),
            recip_nonce: on(6).then(|| octets(&[6; 16])),
            free_text: on(7).then(|| vec!["free".to_owned(), "text".to_owned()]),
            general_info: on(8).then(|| {
                vec![InfoTypeAndValue {
                    oid: oid::IT_IMPLICIT_CONFIRM,
                    value: Some(Any::from(der::asn1::Null)),
                }]
            }),
        }
    }

    /// The same header as a [`PkiHeader`].
    fn ours(d: &DerivedHeader) -> PkiHeader {
        PkiHeader {
            pvno: d.pvno,
            sender: CmpName::try_from(&d.sender).unwrap(),
            recipient: CmpName::try_from(&d.recipient).unwrap(),
            message_time: d.message_time,
            protection_alg: d.protection_alg.clone(),
            sender_kid: d.sender_kid.clone(),
            recip_kid: d.recip_kid.clone(),
            transaction_id: d.transaction_id.clone(),
            sender_nonce: d.sender_nonce.clone(),
            recip_nonce: d.recip_nonce.clone(),
            free_text: d.free_text.clone(),
            general_info: d.general_info.clone(),
        }
    }

    /// `der` with its outer SEQUENCE's length set to fit its contents (short or 0x81 form).
    fn resequence(contents: &[u8]) -> Vec<u8> {
        let mut out = Header::new(Tag::Sequence, contents.len())
            .unwrap()
            .to_der()
            .unwrap();
        out.extend_from_slice(contents);
        out
    }

    /// The TLVs inside the outer SEQUENCE of `der`.
    fn fields(der: &[u8]) -> Vec<Vec<u8>> {
        let mut r = SliceReader::new(der).unwrap();
        r.sequence(|r| {
            let mut v = Vec::new();
            while !r.is_finished() {
                v.push(r.tlv_bytes()?.to_vec());
            }
            Ok::<_, der::Error>(v)
        })
        .unwrap()
    }

    #[test]
    fn every_combination_of_optional_fields_encodes_and_decodes_as_the_derived_sequence() {
        for present in 0..1u16 << 9 {
            let d = derived(present);
            let reference = d.to_der().unwrap();
            let h = ours(&d);
            assert_eq!(
                h.encoded_len().unwrap(),
                reference.len().try_into().unwrap()
            );
            assert_eq!(h.to_der().unwrap(), reference, "fields {present:#011b}");
            let decoded = PkiHeader::from_der(&reference).unwrap();
            assert_eq!(decoded, h, "fields {present:#011b}");
            // Nested in a longer encoding (the PKIMessage's) as well.
            let mut buf = vec![0xff; 3];
            h.encode_to_vec(&mut buf).unwrap();
            assert_eq!(&buf[3..], reference.as_slice());
        }
    }

    #[test]
    fn a_header_too_long_for_the_stack_room_encodes_the_same() {
        let mut d = derived(0x1ff);
        d.free_text = Some(vec!["x".repeat(2 * ENCODE_ROOM)]);
        let reference = d.to_der().unwrap();
        assert_eq!(ours(&d).to_der().unwrap(), reference);
        assert_eq!(PkiHeader::from_der(&reference).unwrap(), ours(&d));
    }

    #[test]
    fn optional_fields_out_of_order_or_repeated_are_refused() {
        let der = derived(0b0_0111_0101).to_der().unwrap(); // [0] [2] [4] [5] [6]
        let f = fields(&der);
        let (pvno_names, opt) = f.split_at(3);
        let build = |order: &[usize]| {
            let mut c = pvno_names.concat();
            for &i in order {
                c.extend_from_slice(&opt[i]);
            }
            resequence(&c)
        };
        assert!(PkiHeader::from_der(&build(&[0, 1, 2, 3, 4])).is_ok());
        for order in [
            &[1, 0, 2, 3, 4][..], // [2] before [0]
            &[0, 2, 1, 3, 4],     // [4] before [2]
            &[0, 1, 2, 4, 3],     // [6] before [5]
            &[0, 1, 1, 2, 3, 4],  // [2] twice
            &[0, 1, 2, 3, 4, 4],  // [6] twice, last
            &[0, 0, 1, 2, 3, 4],  // [0] twice, first
        ] {
            let bad = build(order);
            let e = PkiHeader::from_der(&bad).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::TagUnexpected { .. }),
                "{order:?}: {e}"
            );
        }
        // der's derived decoder skipped a lower-numbered field it met while looking for the
        // next one: it took a repeated [2] (and dropped it) without an error.
        let repeated = build(&[0, 1, 1, 2, 3, 4]);
        assert!(DerivedHeader::from_der(&repeated).is_ok());
    }

    #[test]
    fn unknown_primitive_or_misplaced_fields_are_refused() {
        let der = derived(0b0_0001_0000).to_der().unwrap(); // [4] only
        let f = fields(&der);
        let head = f[..3].concat();
        let with = |extra: &[u8]| resequence(&[head.as_slice(), extra].concat());
        for extra in [
            &[0xa9, 0x02, 0x05, 0x00][..],         // [9]: no such field
            &[0x84, 0x02, 0x04, 0x00],             // [4] primitive: EXPLICIT must be constructed
            &[0x04, 0x00],                         // an OCTET STRING without its tag
            &[0xa4, 0x03, 0x04, 0x00, 0x00],       // trailing octet inside [4]
            &[0xa4, 0x02, 0x02, 0x00],             // [4] holding an INTEGER
            &[0xa4, 0x04, 0x04, 0x00, 0x04, 0x00], // [4] holding two OCTET STRINGs
            &[0xa4, 0x03, 0x04, 0x02, 0x00],       // truncated OCTET STRING
        ] {
            let bad = with(extra);
            assert!(PkiHeader::from_der(&bad).is_err(), "{extra:02x?}");
            assert!(DerivedHeader::from_der(&bad).is_err(), "{extra:02x?}");
        }
        // No recipient; the pvno missing.
        assert!(PkiHeader::from_der(&resequence(&f[..2].concat())).is_err());
        assert!(PkiHeader::from_der(&resequence(&f[1..].concat())).is_err());
        // A non-canonical length of the outer SEQUENCE.
        let mut long_form = vec![0x30, 0x81, u8::try_from(der.len() - 2).unwrap()];
        long_form.extend_from_slice(&der[2..]);
        assert!(PkiHeader::from_der(&long_form).is_err());
    }

    /// GeneralNames, well-formed or not: each is accepted as a [`CmpName`] exactly when
    /// x509-cert's `GeneralName` accepts it.
    fn name_corpus() -> Vec<Vec<u8>> {
        let dn = |s: &str| GeneralName::DirectoryName(name(s)).to_der().unwrap();
        let cn = dn("CN=a");
        let mut v = vec![
            NULL_DN_DER.to_vec(),
            cn.clone(),
            dn("CN=Device 1,OU=Unit,O=Example,C=DE"),
            dn("CN=a+O=b"), // multi-valued RDN
            GeneralName::DnsName(der::asn1::Ia5String::new("example.com").unwrap())
                .to_der()
                .unwrap(),
            GeneralName::from(std::net::IpAddr::from([192, 0, 2, 1]))
                .to_der()
                .unwrap(),
            GeneralName::RegisteredId(oid::ECDSA_SHA256)
                .to_der()
                .unwrap(),
            // [4] { SEQUENCE { SET {} } }: an empty RDN (x509-cert takes it)
            vec![0xa4, 0x04, 0x30, 0x02, 0x31, 0x00],
            // a multi-valued RDN out of DER order, and one with a duplicate
            multi_valued(&[(b"\x55\x04\x0a", b"b"), (b"\x55\x04\x03", b"a")]),
            multi_valued(&[(b"\x55\x04\x03", b"a"), (b"\x55\x04\x03", b"a")]),
            // an OID with a non-minimal arc (a leading 0x80 octet), which const-oid takes
            vec![
                0xa4, 0x0f, 0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x04, 0x55, 0x80, 0x04, 0x03,
                0x0c, 0x01, 0x61,
            ],
            // [3] x400Address: not a choice x509-cert knows
            vec![0xa3, 0x02, 0x30, 0x00],
            // [4] primitive
            vec![0x84, 0x02, 0x30, 0x00],
            // [4] holding a SET instead of a SEQUENCE
            vec![0xa4, 0x02, 0x31, 0x00],
            // [4] with a trailing octet after the Name
            vec![0xa4, 0x04, 0x30, 0x00, 0x05, 0x00],
            // an RDN that is a SEQUENCE instead of a SET
            vec![0xa4, 0x04, 0x30, 0x02, 0x30, 0x00],
            // an attribute without a value, and one with an INTEGER for its type
            vec![
                0xa4, 0x0b, 0x30, 0x09, 0x31, 0x07, 0x30, 0x05, 0x06, 0x03, 0x55, 0x04, 0x03,
            ],
            vec![
                0xa4, 0x0d, 0x30, 0x0b, 0x31, 0x09, 0x30, 0x07, 0x02, 0x01, 0x01, 0x0c, 0x02, 0x61,
                0x62,
            ],
            // a value whose length runs past its attribute
            vec![
                0xa4, 0x0e, 0x30, 0x0c, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c,
                0x02, 0x61,
            ],
            // empty; only a tag
            vec![],
            vec![0xa4],
        ];
        // every truncation of a good name
        for n in 1..cn.len() {
            v.push(cn[..n].to_vec());
        }
        v
    }

    /// `[4] { SEQUENCE { SET { SEQUENCE { OID, UTF8String } ... } } }` with the attributes in
    /// the given order.
    fn multi_valued(atvs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut set = Vec::new();
        for (oid, value) in atvs {
            let atv = [
                &[0x06, u8::try_from(oid.len()).unwrap()][..],
                oid,
                &[0x0c, u8::try_from(value.len()).unwrap()],
                value,
            ]
            .concat();
            set.extend_from_slice(&[0x30, u8::try_from(atv.len()).unwrap()]);
            set.extend_from_slice(&atv);
        }
        let rdn = [&[0x31, u8::try_from(set.len()).unwrap()][..], &set].concat();
        let seq = [&[0x30, u8::try_from(rdn.len()).unwrap()][..], &rdn].concat();
        [&[0xa4, u8::try_from(seq.len()).unwrap()][..], &seq].concat()
    }

    #[test]
    fn names_are_accepted_exactly_when_x509_cert_accepts_them() {
        let mut accepted = 0;
        for der in name_corpus() {
            // Twice: the second decode may find the first in the recent names.
            for _ in 0..2 {
                let x509 = GeneralName::from_der(&der);
                let ours = CmpName::from_der(&der);
                assert_eq!(
                    ours.is_ok(),
                    x509.is_ok(),
                    "{der:02x?}: {ours:?} / {x509:?}"
                );
                if let Ok(n) = ours {
                    assert_eq!(n.der(), der.as_slice());
                    assert_eq!(n.to_der().unwrap(), der);
                    assert_eq!(n.general_name().unwrap(), x509.unwrap());
                    accepted += 1;
                }
            }
        }
        // The eight well-formed names, the RDN out of order and the non-minimal OID arc.
        assert_eq!(accepted, 2 * 10);
    }

    #[test]
    fn a_malformed_name_fails_the_header_with_a_der_error() {
        let der = derived(0b0_0011_0101).to_der().unwrap();
        let f = fields(&der);
        for bad in [vec![0xa4, 0x02, 0x31, 0x00], vec![0xa3, 0x02, 0x30, 0x00]] {
            let as_sender = resequence(&[f[0].as_slice(), &bad, &f[2..].concat()].concat());
            let as_recipient =
                resequence(&[&f[..2].concat(), bad.as_slice(), &f[3..].concat()].concat());
            for h in [as_sender, as_recipient] {
                assert!(PkiHeader::from_der(&h).is_err());
                assert!(crate::message::decode(&h, 1 << 20).is_err());
            }
        }
    }

    #[test]
    fn recent_names_share_their_bytes_and_only_checked_ones_are_kept() {
        let der = GeneralName::DirectoryName(name("CN=shared name"))
            .to_der()
            .unwrap();
        let a = CmpName::from_der(&der).unwrap();
        let b = CmpName::from_der(&der).unwrap();
        assert!(Arc::ptr_eq(&a.der, &b.der));
        // Pushed out by RECENT_NAMES_MAX others, it is checked and copied again.
        for i in 0..RECENT_NAMES_MAX {
            let other = GeneralName::DirectoryName(name(&format!("CN=other {i}")));
            CmpName::from_der(&other.to_der().unwrap()).unwrap();
        }
        let c = CmpName::from_der(&der).unwrap();
        assert!(!Arc::ptr_eq(&a.der, &c.der));
        assert_eq!(a, c);
        // A refused name is refused every time.
        let bad = [0xa4, 0x02, 0x31, 0x00];
        assert!(CmpName::from_der(&bad).is_err());
        assert!(CmpName::from_der(&bad).is_err());
        // A name longer than NAME_ROOM is checked as well, and not kept.
        let long = GeneralName::DirectoryName(name(&format!("CN={}", "x".repeat(NAME_ROOM))))
            .to_der()
            .unwrap();
        let (l1, l2) = (
            CmpName::from_der(&long).unwrap(),
            CmpName::from_der(&long).unwrap(),
        );
        assert_eq!(l1.der(), long.as_slice());
        assert!(!Arc::ptr_eq(&l1.der, &l2.der));
        let mut bad_long = long.clone();
        let oid_at = long
            .windows(5)
            .position(|w| w == [0x06, 0x03, 0x55, 0x04, 0x03])
            .unwrap();
        bad_long[oid_at] = 0x04; // the commonName OID made an OCTET STRING
        assert!(CmpName::from_der(&bad_long).is_err());
        assert!(GeneralName::from_der(&bad_long).is_err());
        // The NULL-DN is always the shared static.
        let n = CmpName::from_der(&NULL_DN_DER).unwrap();
        assert!(Arc::ptr_eq(&n.der, &CmpName::null_dn().der));
    }

    #[test]
    fn name_accessors_give_the_directory_name_its_der_and_text() {
        let n = name("CN=Device 1,O=Example");
        let c = CmpName::try_from(&n).unwrap();
        assert_eq!(
            c.der(),
            GeneralName::DirectoryName(n.clone()).to_der().unwrap()
        );
        assert_eq!(c.directory_name_der(), Some(n.to_der().unwrap().as_slice()));
        assert_eq!(c.directory_name().unwrap(), Some(n.clone()));
        assert_eq!(CmpName::from_name_der(&n.to_der().unwrap()).unwrap(), c);
        assert_eq!(c.to_string(), "CN=Device 1,O=Example");
        assert_eq!(format!("{c:?}"), "CmpName(CN=Device 1,O=Example)");
        assert!(!c.is_null_dn());
        assert!(CmpName::from_name_der(&[0x31, 0x00]).is_err());

        let null = CmpName::null_dn();
        assert!(null.is_null_dn());
        assert_eq!(
            null.der(),
            GeneralName::DirectoryName(Name::default())
                .to_der()
                .unwrap()
        );
        assert_eq!(null.directory_name().unwrap(), Some(Name::default()));
        assert_eq!(CmpName::try_from(&Name::default()).unwrap(), null);

        let dns = GeneralName::DnsName(der::asn1::Ia5String::new("example.com").unwrap());
        let c = CmpName::try_from(&dns).unwrap();
        assert_eq!(c.directory_name_der(), None);
        assert_eq!(c.directory_name().unwrap(), None);
        assert_eq!(c.to_string(), "dNSName:example.com");
        let ip = CmpName::try_from(&GeneralName::from(std::net::IpAddr::from([192, 0, 2, 1])));
        assert_eq!(ip.unwrap().to_string(), "iPAddress:192.0.2.1");
    }
}
