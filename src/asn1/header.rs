//! `PKIHeader` (RFC 9810 §5.1.1) with a decoder and encoder written for it, and the
//! sender/recipient `GeneralName` kept as DER ([`CmpName`]).
//!
//! Every message decodes and encodes a header on each side, so they are on the hot path. The
//! derived decoder peeked at the input for each of the nine optional fields, and the names
//! were decoded into x509-cert's owned `Name` (one allocation per RDN, per attribute and per
//! value) only to be compared byte for byte with a certificate subject or copied into the
//! next message. Here each present optional field is dispatched on its tag once, and a name
//! is checked as x509-cert would decode it, without allocating, and kept as its DER.

use super::{InfoTypeAndValue, PkiFreeText};
use der::asn1::{AnyRef, ContextSpecificRef, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{
    Decode, DecodeValue, Encode, ErrorKind, FixedTag, Header, Length, Reader, Sequence,
    SliceReader, Tag, TagMode, TagNumber, Writer,
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
                        2 => h.sender_kid = Some(r.decode()?),
                        3 => h.recip_kid = Some(r.decode()?),
                        4 => h.transaction_id = Some(r.decode()?),
                        5 => h.sender_nonce = Some(r.decode()?),
                        6 => h.recip_nonce = Some(r.decode()?),
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

/// An optional field as `[n] EXPLICIT`, for encoding.
fn explicit<T>(n: u32, field: &Option<T>) -> Option<ContextSpecificRef<'_, T>> {
    field.as_ref().map(|value| ContextSpecificRef {
        tag_number: TagNumber(n),
        tag_mode: TagMode::Explicit,
        value,
    })
}

impl PkiHeader {
    /// The length of the contents (the fields' encodings).
    fn value_len(&self) -> der::Result<Length> {
        [
            self.pvno.encoded_len()?,
            self.sender.encoded_len()?,
            self.recipient.encoded_len()?,
            explicit(0, &self.message_time).encoded_len()?,
            explicit(1, &self.protection_alg).encoded_len()?,
            explicit(2, &self.sender_kid).encoded_len()?,
            explicit(3, &self.recip_kid).encoded_len()?,
            explicit(4, &self.transaction_id).encoded_len()?,
            explicit(5, &self.sender_nonce).encoded_len()?,
            explicit(6, &self.recip_nonce).encoded_len()?,
            explicit(7, &self.free_text).encoded_len()?,
            explicit(8, &self.general_info).encoded_len()?,
        ]
        .into_iter()
        .try_fold(Length::ZERO, |sum, len| sum + len)
    }

    /// Write the contents (the fields' encodings) to `w`.
    fn encode_fields(&self, w: &mut impl Writer) -> der::Result<()> {
        self.pvno.encode(w)?;
        self.sender.encode(w)?;
        self.recipient.encode(w)?;
        explicit(0, &self.message_time).encode(w)?;
        explicit(1, &self.protection_alg).encode(w)?;
        explicit(2, &self.sender_kid).encode(w)?;
        explicit(3, &self.recip_kid).encode(w)?;
        explicit(4, &self.transaction_id).encode(w)?;
        explicit(5, &self.sender_nonce).encode(w)?;
        explicit(6, &self.recip_nonce).encode(w)?;
        explicit(7, &self.free_text).encode(w)?;
        explicit(8, &self.general_info).encode(w)
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
        let mut w = RoomWriter {
            room: &mut room,
            len: 0,
        };
        if self.encode_fields(&mut w).is_ok() {
            let len = w.len;
            let value = &room[..len];
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
/// a certificate's subject. Equality is equality of the DER. Clones share the bytes.
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
        let mut r = SliceReader::new(&self.der).ok()?;
        let header = Header::decode(&mut r).ok()?;
        if header.tag != DIRECTORY_NAME {
            return None;
        }
        let start = self
            .der
            .len()
            .checked_sub(usize::try_from(header.length).ok()?)?;
        self.der.get(start..)
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
        let der = ContextSpecificRef {
            tag_number: TagNumber(4),
            tag_mode: TagMode::Explicit,
            value: &AnyRef::from_der(name)?,
        }
        .to_der()?;
        Self::from_der(&der)
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

/// Whether `name` (the contents of a directoryName) is a Name whose every RDN holds one
/// attribute, checked with der's decoders of the types x509-cert decodes a Name into:
/// `SEQUENCE OF SET OF SEQUENCE { OBJECT IDENTIFIER, ANY }`. A SET of one element needs no
/// ordering check; other Names (multi-valued or empty RDNs, rare) are left to x509-cert.
fn check_single_valued_name(name: &[u8]) -> der::Result<()> {
    let mut r = SliceReader::new(name)?;
    r.sequence(|rdns| {
        while !rdns.is_finished() {
            let set = Header::decode(rdns)?;
            set.tag.assert_eq(Tag::Set)?;
            rdns.read_nested(set.length, AttributeTypeAndValueRef::decode)?;
        }
        Ok::<_, der::Error>(())
    })?;
    r.finish(())
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

impl<'a> Decode<'a> for CmpName {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let header = Header::decode(reader)?;
        let value = reader.read_slice(header.length)?;
        if header.tag == DIRECTORY_NAME && *value == NULL_DN_DER[2..] {
            return Ok(Self::null_dn());
        }
        // The same tag and length (so the same DER header) and the same contents.
        let same = |(h, der): &RecentName| *h == header && der.ends_with(value);
        let recent = RECENT_NAMES.with_borrow_mut(|names| {
            let at = names.iter().position(|n| n.as_ref().is_some_and(same))?;
            names[..=at].rotate_right(1);
            names[0].as_ref().map(|(_, der)| der.clone())
        });
        if let Some(der) = recent {
            return Ok(CmpName { der });
        }
        let mut head = [0u8; 8];
        let head = header.encode_to_slice(&mut head)?;
        let der: Arc<[u8]> = head.iter().chain(value).copied().collect();
        // The usual directoryName is checked without allocating; anything else gets x509-cert's
        // verdict.
        if header.tag != DIRECTORY_NAME || check_single_valued_name(value).is_err() {
            GeneralName::from_der(&der)?;
        }
        RECENT_NAMES.with_borrow_mut(|names| {
            names.rotate_right(1);
            names[0] = Some((header, der.clone()));
        });
        Ok(CmpName { der })
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
        let der = ContextSpecificRef {
            tag_number: TagNumber(4),
            tag_mode: TagMode::Explicit,
            value: name,
        }
        .to_der()?;
        Ok(Self::from_checked(&der))
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
