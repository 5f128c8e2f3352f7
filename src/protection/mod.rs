//! Message protection (RFC 9810 §5.1.3): producing and verifying MAC protection
//! (PasswordBasedMac and PBMAC1) and signature protection.
//!
//! Both kinds are computed over the DER of `ProtectedPart ::= SEQUENCE { header, body }`,
//! and `header.protectionAlg` is part of it, so [`protect`] sets the algorithm first.
//!
//! MAC key derivation is deliberately expensive; two things keep it under control:
//! - [`MacLimits`] caps the iteration count a peer can make us compute, checked before any
//!   hashing (a hostile `iterationCount` of 10^9 costs nothing);
//! - [`MacKeyCache`] remembers parsed parameters and derived keys per secret and parameter
//!   set, so the messages of a transaction that reuse the same salt and parameters parse
//!   them and derive the key only once: the client protects all requests of a transaction
//!   with the parameters of its first one ([`protect_in_transaction`]), the server answers
//!   with the request's parameters and keeps its keys across requests. A [`MacProtection`]
//!   hashes its secret for the cache once (after the first parameters passed the limits),
//!   not per message.
//!
//! HMAC is computed on OpenSSL's low-level SHA functions and the PBM iterations call the
//! SHA compression function directly; both avoid the per-call fetches and allocations of
//! OpenSSL 3's EVP layer (see `hmac` and `pbm::iterate`).

mod pbm;
mod pbmac1;

pub use pbm::PbmConfig;
pub use pbmac1::{Pbmac1Config, MAX_KEY_LEN as PBKDF2_MAX_KEY_LEN};

use crate::asn1::{oid, PkiBody, PkiHeader, PkiMessage};
use crate::crypto::{SigAlg, Signer};
use crate::error::{fail, Error, ErrorCode, Result};
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Int, Uint};
use der::{
    Decode, Encode, EncodeValue, FixedTag, Header, Length, Reader, SliceReader, Tag, Writer,
};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sha;
use spki::AlgorithmIdentifierOwned;
use std::sync::{Arc, Mutex, OnceLock};

/// The longest salt accepted in PBM/PBKDF2 parameters, in octets.
pub const MAX_SALT_LEN: usize = 256;

/// Hash functions used as PBM one-way function, PBKDF2 PRF and HMAC hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (interoperability only; RFC 9481 allows it for HMAC).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// The OpenSSL digest.
    pub fn md(self) -> MessageDigest {
        match self {
            HashAlg::Sha1 => MessageDigest::sha1(),
            HashAlg::Sha224 => MessageDigest::sha224(),
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
        }
    }

    /// Output length in octets.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Input block length in octets (the HMAC key block).
    pub fn block_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha224 | HashAlg::Sha256 => 64,
            HashAlg::Sha384 | HashAlg::Sha512 => 128,
        }
    }

    /// The digest's OID (as PBM `owf`).
    pub fn digest_oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => oid::SHA1,
            HashAlg::Sha224 => oid::SHA224,
            HashAlg::Sha256 => oid::SHA256,
            HashAlg::Sha384 => oid::SHA384,
            HashAlg::Sha512 => oid::SHA512,
        }
    }

    /// The `hmacWithSHA*` OID (RFC 8018; PBKDF2 PRF, PBMAC1 and PBM MAC).
    pub fn hmac_oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => oid::HMAC_WITH_SHA1,
            HashAlg::Sha224 => oid::HMAC_WITH_SHA224,
            HashAlg::Sha256 => oid::HMAC_WITH_SHA256,
            HashAlg::Sha384 => oid::HMAC_WITH_SHA384,
            HashAlg::Sha512 => oid::HMAC_WITH_SHA512,
        }
    }

    /// The MAC OID written into PBMParameter: `hmac-sha1` (1.3.6.1.5.5.8.1.2, as OpenSSL
    /// writes it) for SHA-1, `hmacWithSHA*` otherwise.
    pub fn pbm_mac_oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => oid::HMAC_SHA1_IPSEC,
            other => other.hmac_oid(),
        }
    }

    /// The hash of a digest OID.
    pub fn from_digest_oid(o: &ObjectIdentifier) -> Option<HashAlg> {
        Self::ALL.into_iter().find(|h| h.digest_oid() == *o)
    }

    /// The hash of an HMAC OID (`hmacWithSHA*` or `hmac-sha1` 1.3.6.1.5.5.8.1.2).
    pub fn from_hmac_oid(o: &ObjectIdentifier) -> Option<HashAlg> {
        if *o == oid::HMAC_SHA1_IPSEC {
            return Some(HashAlg::Sha1);
        }
        Self::ALL.into_iter().find(|h| h.hmac_oid() == *o)
    }
}

/// Caps on MAC parameters taken from a message, checked before any key derivation.
///
/// Measured on this project's 2-core build machine (OpenSSL 3.0): at the default caps PBM
/// derivation costs about 0.1 s and PBKDF2 about 0.2 s, which bounds what one hostile
/// message can make us compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacLimits {
    /// The largest PBM `iterationCount` / PBKDF2 `iterationCount` accepted.
    ///
    /// Default 100 000: the cap OpenSSL applies to PBM (`OSSL_CRMF_PBM_MAX_ITERATION_COUNT`)
    /// and ten times the PBKDF2 count LightweightCmpRa uses.
    pub max_iterations: u64,
    /// The largest PBKDF2 work accepted, counted as `iterationCount × ceil(keyLength / hLen)`
    /// PRF computations (PBKDF2 runs the full iteration count once per output block).
    ///
    /// Default 400 000: admits the default cap for keys up to four hash blocks, and the
    /// LightweightCmpRa messages (10 000 iterations × 16 blocks for their 512-octet key).
    pub max_pbkdf2_work: u64,
}

impl Default for MacLimits {
    fn default() -> Self {
        MacLimits {
            max_iterations: 100_000,
            max_pbkdf2_work: 400_000,
        }
    }
}

/// Remembers, per shared secret and protectionAlg, the parsed and limit-checked MAC
/// parameters and the keys derived with them.
///
/// A transaction whose messages reuse the same MAC parameters (a server answering with the
/// request's parameters, a client protecting all its requests with the parameters of its
/// first one) parses them and derives the key once on each side. An entry is found by the
/// secret's SHA-256 (the secret itself is not kept), the exact protectionAlg (OID and
/// parameters, salt included) and the [`MacLimits`] the parameters were checked against;
/// it never serves another secret or other parameters. The cache holds at most
/// [`capacity`](Self::with_capacity) entries, one per secret and parameter set (the least
/// recently used is dropped), each with one key (two if verification derived both readings
/// of an ambiguous PBMAC1 keyLength, octets and bits), and is safe to share between threads;
/// clones share the same keys (a server keeps one for all its requests).
#[derive(Clone)]
pub struct MacKeyCache {
    inner: Arc<Mutex<CacheInner>>,
}

struct CacheInner {
    capacity: usize,
    entries: Vec<CacheEntry>,
    derivations: u64,
    /// Counts uses; an entry's `used` is the count at its last use.
    clock: u64,
}

/// One secret with one protectionAlg: the parameters as parsed and the keys derived.
struct CacheEntry {
    secret_id: SecretId,
    /// [`AlgKey::hash`] of `alg`, compared first.
    alg_hash: u64,
    /// The protectionAlg: equal OIDs and parameters (tag and content) mean equal DER.
    alg: AlgorithmIdentifierOwned,
    /// The limits `scheme` was checked against.
    limits: MacLimits,
    scheme: Arc<Scheme>,
    keys: KeySlots,
    used: u64,
}

/// The SHA-256 of a shared secret: how the cache tells secrets apart without keeping them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SecretId([u8; 32]);

impl SecretId {
    fn of(secret: &[u8]) -> SecretId {
        // Not the one-shot sha::sha256(): OpenSSL 3 implements it with EVP_Q_digest, which
        // fetches the digest and allocates contexts every time.
        let mut h = sha::Sha256::new();
        h.update(secret);
        SecretId(h.finish())
    }
}

/// A protectionAlg with a hash of it, so that looking it up among many entries (a server's,
/// say, all for one secret) rarely compares whole parameters.
#[derive(Clone, Copy)]
struct AlgKey<'a> {
    alg: &'a AlgorithmIdentifierOwned,
    hash: u64,
}

impl<'a> AlgKey<'a> {
    fn new(alg: &'a AlgorithmIdentifierOwned) -> Self {
        // FNV-1a over 8-octet words of the parameters (salt included): only a quick filter,
        // entries are matched by comparing the whole protectionAlg.
        const PRIME: u64 = 0x100_0000_01b3;
        let params = alg.parameters.as_ref().map_or(&[][..], |p| p.value());
        let mut hash = 0xcbf2_9ce4_8422_2325 ^ params.len() as u64;
        let mut words = params.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(PRIME);
        }
        let mut last = [0u8; 8];
        last[..words.remainder().len()].copy_from_slice(words.remainder());
        hash = (hash ^ u64::from_le_bytes(last)).wrapping_mul(PRIME);
        AlgKey { alg, hash }
    }

    #[inline]
    fn matches(&self, e: &CacheEntry) -> bool {
        e.alg_hash == self.hash && e.alg == *self.alg
    }
}

/// A derived MAC key, zeroed when dropped.
pub(crate) struct DerivedKey(Vec<u8>);

impl DerivedKey {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for DerivedKey {
    fn drop(&mut self) {
        // Best effort: do not leave derived keys in freed memory.
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl Default for MacKeyCache {
    fn default() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }
}

impl std::fmt::Debug for MacKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacKeyCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// The keys derived for one secret and protectionAlg, with their derived key length (0 for
/// PBM's natural length): at most two, as a PBMAC1 keyLength has at most two readings.
type KeySlots = [Option<(usize, Arc<DerivedKey>)>; 2];

/// What the cache holds for a protectionAlg.
#[derive(Default)]
struct Found {
    /// The scheme parsed from it and checked against the same limits (for any secret: the
    /// parameters are public).
    scheme: Option<Arc<Scheme>>,
    /// The keys derived with it from the secret asked for.
    keys: KeySlots,
    /// Whether any entry holds it (for any secret).
    held: bool,
}

impl MacKeyCache {
    /// How many entries (secret and parameter set) a cache made by [`new`](Self::new) keeps.
    pub(crate) const CAPACITY: usize = 4;

    /// An empty cache for a few keys (enough for a client's transactions).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache that keeps at most `capacity` entries (secret and parameter set; at
    /// least one).
    pub fn with_capacity(capacity: usize) -> Self {
        MacKeyCache {
            inner: Arc::new(Mutex::new(CacheInner {
                capacity: capacity.max(1),
                entries: Vec::new(),
                derivations: 0,
                clock: 0,
            })),
        }
    }

    /// Forget all derived keys.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.entries
            .iter()
            .flat_map(|e| e.keys.iter().flatten())
            .count()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys were derived through this cache so far (misses), for diagnostics.
    pub fn derivations(&self) -> u64 {
        self.lock().derivations
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock cannot leave the entries inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is held for `alg`: the scheme checked against `limits`, and the keys of secret
    /// `id` if given.
    fn find(&self, alg: AlgKey<'_>, limits: &MacLimits, id: Option<&SecretId>) -> Found {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let mut found = Found::default();
        let mut keys_found = id.is_none();
        for e in g.entries.iter_mut().filter(|e| alg.matches(e)) {
            found.held = true;
            if found.scheme.is_none() && e.limits == *limits {
                found.scheme = Some(e.scheme.clone());
            }
            if !keys_found && id == Some(&e.secret_id) {
                e.used = now;
                found.keys = e.keys.clone();
                keys_found = true;
            }
            if keys_found && found.scheme.is_some() {
                break;
            }
        }
        found
    }

    /// Remember `key`, derived from secret `id` with `scheme` (parsed from `alg` under
    /// `limits`) for `key_len`; drops the least recently used entry when full.
    fn insert(
        &self,
        id: &SecretId,
        alg: AlgKey<'_>,
        limits: &MacLimits,
        scheme: &Arc<Scheme>,
        key_len: usize,
        key: &Arc<DerivedKey>,
    ) {
        let mut g = self.lock();
        g.derivations += 1;
        g.clock += 1;
        let now = g.clock;
        if let Some(e) = g
            .entries
            .iter_mut()
            .find(|e| alg.matches(e) && e.secret_id == *id)
        {
            e.used = now;
            // Another thread may have derived the same key meanwhile.
            let held = e.keys.iter().flatten().any(|(len, _)| *len == key_len);
            if let (false, Some(free)) = (held, e.keys.iter_mut().find(|k| k.is_none())) {
                *free = Some((key_len, key.clone()));
            }
            return;
        }
        if g.entries.len() >= g.capacity {
            let lru = (0..g.entries.len()).min_by_key(|&i| g.entries[i].used);
            if let Some(i) = lru {
                g.entries.swap_remove(i);
            }
        }
        g.entries.push(CacheEntry {
            secret_id: *id,
            alg_hash: alg.hash,
            alg: alg.alg.clone(),
            limits: *limits,
            scheme: scheme.clone(),
            keys: [Some((key_len, key.clone())), None],
            used: now,
        });
    }
}

/// Which MAC algorithm and parameters to protect with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MacParams {
    /// PasswordBasedMac with a fresh salt per message ([`protect`]) or per transaction
    /// ([`protect_in_transaction`], as the client does).
    Pbm(PbmConfig),
    /// PBMAC1 (PBKDF2 + HMAC) with a fresh salt per message ([`protect`]) or per
    /// transaction ([`protect_in_transaction`], as the client does).
    Pbmac1(Pbmac1Config),
    /// Exactly this protectionAlg (PBM or PBMAC1, salt included), e.g. the one of the
    /// request being answered; with a [`MacKeyCache`] the key is derived only once.
    Explicit(AlgorithmIdentifierOwned),
}

impl Default for MacParams {
    /// PBMAC1 with [`Pbmac1Config::default`] (RFC 9481 recommends PBMAC1 for new use).
    fn default() -> Self {
        MacParams::Pbmac1(Pbmac1Config::default())
    }
}

impl MacParams {
    /// The protectionAlg to use for the next message (a fresh salt unless explicit).
    pub fn algorithm_identifier(&self) -> Result<AlgorithmIdentifierOwned> {
        match self {
            MacParams::Pbm(c) => c.algorithm_identifier(),
            MacParams::Pbmac1(c) => c.algorithm_identifier(),
            MacParams::Explicit(a) => Ok(a.clone()),
        }
    }
}

/// Shared-secret credentials: the secret, how to protect, limits for verifying, and the
/// derived-key cache. The secret is not shown by `Debug`.
pub struct MacProtection {
    secret: Vec<u8>,
    /// Computed once (when first needed), so that finding keys in the cache costs no
    /// hashing per message.
    secret_id: OnceLock<SecretId>,
    /// The algorithm and parameters for protecting.
    pub params: MacParams,
    /// Caps applied to parameters, both those from a peer and our own.
    pub limits: MacLimits,
    /// Derived keys for `secret`.
    pub cache: MacKeyCache,
}

impl std::fmt::Debug for MacProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacProtection")
            .field("params", &self.params)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MacProtection {
    /// Credentials for `secret`, protecting with `params`, default limits, an empty cache.
    pub fn new(secret: impl Into<Vec<u8>>, params: MacParams) -> Self {
        MacProtection {
            secret: secret.into(),
            secret_id: OnceLock::new(),
            params,
            limits: MacLimits::default(),
            cache: MacKeyCache::new(),
        }
    }

    /// The shared secret.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Verify the MAC protection of `msg` with this secret, limits and cache.
    pub fn verify(&self, msg: &PkiMessage) -> Result<()> {
        self.verify_with_limits(msg, None, &self.limits)
    }

    /// Verify like [`verify`](Self::verify), over the header and body as they are in
    /// `der`, the DER that `msg` was decoded from.
    pub fn verify_der(&self, msg: &PkiMessage, der: &[u8]) -> Result<()> {
        self.verify_with_limits(msg, Some(der), &self.limits)
    }

    /// Verify like [`verify_der`](Self::verify_der) (without `der`: like
    /// [`verify`](Self::verify)), checking the parameters against `limits`.
    pub(crate) fn verify_with_limits(
        &self,
        msg: &PkiMessage,
        der: Option<&[u8]>,
        limits: &MacLimits,
    ) -> Result<()> {
        verify_mac_input(msg, der, self.keys(), limits)
    }

    /// Where this secret's keys come from.
    fn keys(&self) -> KeySource<'_> {
        KeySource {
            secret: &self.secret,
            cache: Some((&self.cache, &self.secret_id)),
        }
    }
}

/// How to protect outgoing messages.
pub enum Protection {
    /// MAC protection with a shared secret.
    Mac(MacProtection),
    /// Signature protection with a private key; protectionAlg is the signer's algorithm.
    Signature(Arc<dyn Signer>),
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::Mac(m) => f.debug_tuple("Mac").field(m).finish(),
            Protection::Signature(s) => f.debug_tuple("Signature").field(&s.algorithm()).finish(),
        }
    }
}

/// The kind of protection a message carries, judged by its protectionAlg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectionKind {
    /// PasswordBasedMac or PBMAC1.
    Mac,
    /// Any other algorithm (a signature, possibly unsupported).
    Signature,
}

/// The kind of protection of `msg`, or `None` if it has no protectionAlg.
pub fn protection_kind(msg: &PkiMessage) -> Option<ProtectionKind> {
    let alg = msg.header.protection_alg.as_ref()?;
    Some(if is_mac_oid(&alg.oid) {
        ProtectionKind::Mac
    } else {
        ProtectionKind::Signature
    })
}

fn is_mac_oid(o: &ObjectIdentifier) -> bool {
    *o == oid::PASSWORD_BASED_MAC || *o == oid::PBMAC1
}

/// `ProtectedPart` over borrowed header and body, so protecting does not clone the message.
struct ProtectedPartRef<'a> {
    header: &'a PkiHeader,
    body: &'a PkiBody,
}

impl FixedTag for ProtectedPartRef<'_> {
    const TAG: Tag = Tag::Sequence;
}

impl EncodeValue for ProtectedPartRef<'_> {
    fn value_len(&self) -> der::Result<Length> {
        self.header.encoded_len()? + self.body.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.header.encode(writer)?;
        self.body.encode(writer)
    }
}

/// The DER of `ProtectedPart { header, body }` of `msg`: the data MACed or signed.
pub fn protected_part_der(msg: &PkiMessage) -> Result<Vec<u8>> {
    ProtectedPartRef {
        header: &msg.header,
        body: &msg.body,
    }
    .to_der()
    .map_err(|e| Error::new(ErrorCode::EncodingFailed, format!("ProtectedPart: {e}")))
}

/// Protect `msg`: set `header.protectionAlg`, then compute the MAC or signature over the
/// ProtectedPart and set `protection`. On failure `msg` keeps its previous protectionAlg.
///
/// MAC protection with [`MacParams::Pbm`] or [`MacParams::Pbmac1`] takes a fresh salt; the
/// messages of a transaction share one with [`protect_in_transaction`].
pub fn protect(msg: &mut PkiMessage, protection: &Protection) -> Result<()> {
    let alg = match protection {
        Protection::Mac(m) => m.params.algorithm_identifier()?,
        Protection::Signature(s) => s.algorithm().algorithm_identifier(),
    };
    protect_encoding(msg, protection, alg).map(drop)
}

/// Protect `msg` like [`protect`], but MAC-protect it with the protectionAlg in `reuse` if
/// there is one, and otherwise with fresh parameters that are then stored in `reuse`.
///
/// A client passes the same `reuse` for all requests of a transaction, so that they share
/// one salt and parameter set: with the [`MacKeyCache`], the client and a server that
/// keeps its keys (as [`Server`](crate::server::Server) does) then derive the MAC key once
/// per transaction instead of once per message. RFC 4210 §5.1.3.1 RECOMMENDS exactly this
/// ("the fields of PBMParameter remain constant throughout the messages of a single
/// transaction (e.g., ir/ip/certConf/pkiConf)") to reduce the PasswordBasedMac overhead,
/// and RFC 4211 §4.4 asks for a randomly generated salt, not for one per message. The salt
/// stops precomputation across secrets and parameter sets; the messages of a transaction
/// have the same secret and peer anyway. The same holds for PBMAC1's PBKDF2 salt.
/// Signature protection is not affected.
pub fn protect_in_transaction(
    msg: &mut PkiMessage,
    protection: &Protection,
    reuse: &mut Option<AlgorithmIdentifierOwned>,
) -> Result<()> {
    let Protection::Mac(m) = protection else {
        return protect(msg, protection);
    };
    let alg = match reuse {
        Some(a) => a.clone(),
        None => m.params.algorithm_identifier()?,
    };
    protect_encoding(msg, protection, alg)?;
    if reuse.is_none() {
        *reuse = msg.header.protection_alg.clone();
    }
    Ok(())
}

/// Protect `msg` like [`protect_in_transaction`] (with `reuse`) or [`protect`] (without),
/// and return the DER of the protected message.
///
/// Header and body are encoded once: the encoding MACed or signed as the ProtectedPart is
/// also the start of the message's own encoding (`to_der` after [`protect`] encodes them a
/// second time).
pub fn protect_to_der(
    msg: &mut PkiMessage,
    protection: &Protection,
    reuse: Option<&mut Option<AlgorithmIdentifierOwned>>,
) -> Result<Vec<u8>> {
    let alg = match (protection, &reuse) {
        (Protection::Mac(_), Some(Some(a))) => a.clone(),
        (Protection::Mac(m), _) => m.params.algorithm_identifier()?,
        (Protection::Signature(s), _) => s.algorithm().algorithm_identifier(),
    };
    let der = protect_encoding(msg, protection, alg)?;
    if let (Protection::Mac(_), Some(r @ None)) = (protection, reuse) {
        *r = msg.header.protection_alg.clone();
    }
    Ok(der)
}

/// Room left at the start of the encoding buffer for the PKIMessage's tag and length.
const OUTER_ROOM: usize = 6;

/// Protect `msg` with protectionAlg `alg` and return its DER.
fn protect_encoding(
    msg: &mut PkiMessage,
    protection: &Protection,
    alg: AlgorithmIdentifierOwned,
) -> Result<Vec<u8>> {
    let old = msg.header.protection_alg.replace(alg);
    // [room for the message's tag and length] header body
    let mut buf = Vec::with_capacity(2048);
    buf.resize(OUTER_ROOM, 0);
    let value = (|| {
        msg.header
            .encode_to_vec(&mut buf)
            .map_err(encoding_failed)?;
        msg.body.encode_to_vec(&mut buf).map_err(encoding_failed)?;
        let mut prefix = [0u8; OUTER_ROOM];
        let prefix = sequence_header(buf.len() - OUTER_ROOM, &mut prefix)?;
        let data: [&[u8]; 2] = [prefix, &buf[OUTER_ROOM..]];
        let alg = msg.header.protection_alg.as_ref().expect("just set");
        match protection {
            Protection::Mac(m) => {
                let mac_keys = m.keys().for_alg(alg, &m.limits)?;
                let scheme = &mac_keys.scheme;
                let key = mac_keys.key(scheme.key_lens()[0])?;
                Ok(BitString::from_bytes(&hmac(
                    scheme.mac(),
                    key.bytes(),
                    &data,
                ))?)
            }
            Protection::Signature(s) => Ok(BitString::from_bytes(&s.sign_parts(&data)?)?),
        }
    })();
    let bits = match value {
        Ok(bits) => bits,
        Err(e) => {
            msg.header.protection_alg = old;
            return Err(e);
        }
    };
    msg.protection = Some(bits);
    // The fields after header and body, encoded as PkiMessage's encoder does.
    crate::asn1::explicit_opt(0, &msg.protection)
        .encode_to_vec(&mut buf)
        .map_err(encoding_failed)?;
    crate::asn1::explicit_opt(1, &msg.extra_certs)
        .encode_to_vec(&mut buf)
        .map_err(encoding_failed)?;
    let mut outer = [0u8; OUTER_ROOM];
    let outer = sequence_header(buf.len() - OUTER_ROOM, &mut outer)?;
    let start = OUTER_ROOM - outer.len();
    buf[start..OUTER_ROOM].copy_from_slice(outer);
    buf.drain(..start);
    Ok(buf)
}

/// The DER tag and length of a SEQUENCE with `len` octets of content.
fn sequence_header(len: usize, out: &mut [u8; OUTER_ROOM]) -> Result<&[u8]> {
    Header::new(Tag::Sequence, len)
        .and_then(|h| h.encode_to_slice(out))
        .map_err(encoding_failed)
}

fn encoding_failed(e: der::Error) -> Error {
    Error::new(ErrorCode::EncodingFailed, format!("PKIMessage: {e}"))
}

/// The DER of `header` and `body` inside `der`, the DER of a PKIMessage: the content of
/// its ProtectedPart, as received.
/// The `ProtectedPart` a received message's protection covers, as two pieces: its SEQUENCE
/// tag and length (written into `room`), and header and body — taken from `der`, the DER the
/// message was decoded from, when given, else encoded from `msg` into `encoded`.
fn protected_part_pieces<'a>(
    msg: &PkiMessage,
    der: Option<&'a [u8]>,
    encoded: &'a mut Vec<u8>,
    room: &'a mut [u8; OUTER_ROOM],
) -> Result<[&'a [u8]; 2]> {
    let content = match der {
        Some(der) => header_and_body(der)?,
        None => {
            *encoded = protected_part_der(msg)?;
            let encoded: &'a Vec<u8> = encoded;
            // Skip the ProtectedPart's own tag and length.
            let mut r = SliceReader::new(encoded)?;
            Header::decode(&mut r)?;
            &encoded[u32::from(r.position()) as usize..]
        }
    };
    Ok([sequence_header(content.len(), room)?, content])
}

fn header_and_body(der: &[u8]) -> Result<&[u8]> {
    let bad = |e: der::Error| Error::new(ErrorCode::MalformedMessage, format!("PKIMessage: {e}"));
    let mut r = SliceReader::new(der).map_err(bad)?;
    Header::decode(&mut r).map_err(bad)?;
    let start = u32::from(r.position()) as usize;
    for _ in 0..2 {
        let h = Header::decode(&mut r).map_err(bad)?;
        r.read_slice(h.length).map_err(bad)?;
    }
    let end = u32::from(r.position()) as usize;
    Ok(&der[start..end])
}

/// Verify the MAC protection (PasswordBasedMac or PBMAC1) of `msg` with `secret`.
///
/// The parameters are checked against `limits` before any hashing. With a `cache`, a key
/// derived earlier for the same parameters is reused. Errors: [`ErrorCode::ProtectionMissing`]
/// (no protectionAlg or protection), [`ErrorCode::WrongProtectionType`] (signature-protected),
/// [`ErrorCode::IterationCountTooHigh`], [`ErrorCode::BadMacParameters`],
/// [`ErrorCode::UnsupportedAlgorithm`], [`ErrorCode::MacMismatch`].
pub fn verify_mac(
    msg: &PkiMessage,
    secret: &[u8],
    limits: &MacLimits,
    cache: Option<&MacKeyCache>,
) -> Result<()> {
    let id = OnceLock::new();
    verify_mac_input(msg, None, KeySource::new(secret, cache, &id), limits)
}

/// Verify the MAC protection of `msg` like [`verify_mac`], over the header and body as
/// they are in `der`, the DER that `msg` was decoded from (instead of encoding them again).
pub fn verify_mac_der(
    msg: &PkiMessage,
    der: &[u8],
    secret: &[u8],
    limits: &MacLimits,
    cache: Option<&MacKeyCache>,
) -> Result<()> {
    let id = OnceLock::new();
    verify_mac_input(msg, Some(der), KeySource::new(secret, cache, &id), limits)
}

fn verify_mac_input(
    msg: &PkiMessage,
    der: Option<&[u8]>,
    keys: KeySource<'_>,
    limits: &MacLimits,
) -> Result<()> {
    let (alg, value) = protection_parts(msg)?;
    if !is_mac_oid(&alg.oid) {
        return fail(
            ErrorCode::WrongProtectionType,
            format!("message is protected with {}, not a MAC", alg.oid),
        );
    }
    let mac_keys = keys.for_alg(alg, limits)?;
    let scheme = &mac_keys.scheme;
    let (mut encoded, mut room) = (Vec::new(), [0u8; OUTER_ROOM]);
    let parts = protected_part_pieces(msg, der, &mut encoded, &mut room)?;
    for &key_len in scheme.key_lens() {
        let key = mac_keys.key(key_len)?;
        let mac = hmac(scheme.mac(), key.bytes(), &parts);
        if mac.len() == value.len() && openssl::memcmp::eq(&mac, value) {
            return Ok(());
        }
    }
    fail(
        ErrorCode::MacMismatch,
        format!(
            "{} MAC does not verify (wrong shared secret or altered message)",
            scheme.name()
        ),
    )
}

/// Verify the signature protection of `msg` with the signer's public key.
///
/// Errors: [`ErrorCode::ProtectionMissing`], [`ErrorCode::WrongProtectionType`]
/// (MAC-protected), [`ErrorCode::UnsupportedAlgorithm`], [`ErrorCode::SignatureInvalid`].
pub fn verify_signature(msg: &PkiMessage, signer_public_key: &PKey<Public>) -> Result<()> {
    verify_signature_input(msg, None, |alg, parts, sig| {
        crate::crypto::verify_signature_parts(alg, signer_public_key, parts, sig)
    })
}

/// Verify the signature protection of `msg` like [`verify_signature`], over the header and
/// body as they are in `der`, the DER that `msg` was decoded from (not encoded again).
pub fn verify_signature_der(
    msg: &PkiMessage,
    der: &[u8],
    signer_public_key: &PKey<Public>,
) -> Result<()> {
    verify_signature_input(msg, Some(der), |alg, parts, sig| {
        crate::crypto::verify_signature_parts(alg, signer_public_key, parts, sig)
    })
}

/// Verify the signature protection of `msg` like [`verify_signature`], with the key of the
/// validated `signer` (on its kept verification contexts), over the header and body as
/// they are in `der` when given.
pub fn verify_signature_by(
    msg: &PkiMessage,
    der: Option<&[u8]>,
    signer: &crate::crypto::ValidatedCert,
) -> Result<()> {
    verify_signature_input(msg, der, |alg, parts, sig| {
        signer.verify_signature_parts(alg, parts, sig)
    })
}

/// Check the protection of `msg` (over `der`'s header and body when given) with `verify`,
/// which checks a signature with an algorithm over the concatenation of parts.
fn verify_signature_input(
    msg: &PkiMessage,
    der: Option<&[u8]>,
    verify: impl FnOnce(SigAlg, &[&[u8]], &[u8]) -> Result<()>,
) -> Result<()> {
    let (alg, value) = protection_parts(msg)?;
    if is_mac_oid(&alg.oid) {
        return fail(
            ErrorCode::WrongProtectionType,
            "message is MAC-protected, not signed",
        );
    }
    let sig_alg = SigAlg::from_algorithm_identifier(alg)?;
    let (mut encoded, mut room) = (Vec::new(), [0u8; OUTER_ROOM]);
    let parts = protected_part_pieces(msg, der, &mut encoded, &mut room)?;
    verify(sig_alg, &parts, value).map_err(|e| e.context("message protection"))
}

/// Check a signature-protected `msg` against trust anchors: its first extraCert must
/// validate against `trust` (the other extraCerts and `untrusted` may complete the path),
/// its signature must verify with that certificate's key (over the header and body as
/// received in `der`, when given), and a directoryName sender must be its subject. Returns
/// the validated signer.
///
/// Errors, each detail naming the check: [`ErrorCode::SignerNotTrusted`] (no certificate,
/// or it does not validate), [`ErrorCode::BadCertificate`] (an extraCert does not parse),
/// [`ErrorCode::UnsupportedAlgorithm`], [`ErrorCode::SignatureInvalid`],
/// [`ErrorCode::SenderMismatch`].
pub fn verify_signed_by_trusted(
    msg: &PkiMessage,
    der: Option<&[u8]>,
    trust: &crate::crypto::TrustStore,
    untrusted: &[openssl::x509::X509],
) -> Result<Arc<crate::crypto::ValidatedCert>> {
    let certs = msg.extra_certs.as_deref().unwrap_or_default();
    let Some(first) = certs.first() else {
        return fail(
            ErrorCode::SignerNotTrusted,
            "signer check: no protection certificate in extraCerts",
        );
    };
    let signer = trust
        .validate_der_among(first.der(), untrusted, &certs[1..])
        .map_err(|e| e.context("signer check"))?;
    verify_signature_by(msg, der, &signer).map_err(|e| e.context("signature protection check"))?;
    let sender = msg.header.sender.directory_name_der();
    if sender.is_some_and(|s| s != signer.subject_der.as_slice()) {
        return fail(
            ErrorCode::SenderMismatch,
            "sender check: the sender is not the subject of the protection certificate",
        );
    }
    Ok(signer)
}

/// The protectionAlg and the protection value (a whole number of octets).
fn protection_parts(msg: &PkiMessage) -> Result<(&AlgorithmIdentifierOwned, &[u8])> {
    let Some(alg) = msg.header.protection_alg.as_ref() else {
        return fail(ErrorCode::ProtectionMissing, "message has no protectionAlg");
    };
    let Some(bits) = msg.protection.as_ref() else {
        return fail(
            ErrorCode::ProtectionMissing,
            "message has a protectionAlg but no protection",
        );
    };
    let value = bits.as_bytes().ok_or_else(|| {
        Error::new(
            ErrorCode::MalformedMessage,
            "protection BIT STRING has unused bits",
        )
    })?;
    Ok((alg, value))
}

/// A parsed, limit-checked MAC algorithm.
enum Scheme {
    Pbm(pbm::Spec),
    Pbmac1(pbmac1::Spec),
}

impl Scheme {
    fn parse(alg: &AlgorithmIdentifierOwned, limits: &MacLimits) -> Result<Scheme> {
        match alg.oid {
            o if o == oid::PASSWORD_BASED_MAC => Ok(Scheme::Pbm(pbm::Spec::parse(
                alg.parameters.as_ref(),
                limits,
            )?)),
            o if o == oid::PBMAC1 => Ok(Scheme::Pbmac1(pbmac1::Spec::parse(
                alg.parameters.as_ref(),
                limits,
            )?)),
            o => fail(
                ErrorCode::UnsupportedAlgorithm,
                format!("MAC algorithm {o} is not supported"),
            ),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Scheme::Pbm(_) => "PasswordBasedMac",
            Scheme::Pbmac1(_) => "PBMAC1",
        }
    }

    fn mac(&self) -> HashAlg {
        match self {
            Scheme::Pbm(s) => s.mac(),
            Scheme::Pbmac1(s) => s.mac(),
        }
    }

    /// Derived key lengths to try; PBM's key is the OWF output (reported as 0 = natural).
    fn key_lens(&self) -> &[usize] {
        match self {
            Scheme::Pbm(_) => &[0],
            Scheme::Pbmac1(s) => s.key_lens(),
        }
    }

    /// The key for `secret` and `key_len` (one of [`key_lens`](Self::key_lens)).
    fn derive_key(&self, secret: &[u8], key_len: usize) -> Result<DerivedKey> {
        Ok(DerivedKey(match self {
            Scheme::Pbm(s) => s.derive_key(secret)?,
            Scheme::Pbmac1(s) => s.derive_key(secret, key_len)?,
        }))
    }
}

/// A shared secret, and the cache to take its keys from (with the secret's id, computed
/// when first needed) if any.
#[derive(Clone, Copy)]
struct KeySource<'a> {
    secret: &'a [u8],
    cache: Option<(&'a MacKeyCache, &'a OnceLock<SecretId>)>,
}

impl<'a> KeySource<'a> {
    /// `secret` with `cache`, keeping its id in `id` once computed.
    fn new(secret: &'a [u8], cache: Option<&'a MacKeyCache>, id: &'a OnceLock<SecretId>) -> Self {
        KeySource {
            secret,
            cache: cache.map(|c| (c, id)),
        }
    }

    /// The MAC scheme of `alg`, checked against `limits` before any hashing (the secret's
    /// id included), and its keys for this secret as far as the cache has them.
    fn for_alg(
        self,
        alg: &'a AlgorithmIdentifierOwned,
        limits: &'a MacLimits,
    ) -> Result<MacKeys<'a>> {
        let alg = AlgKey::new(alg);
        let Some((cache, id)) = self.cache else {
            return Ok(MacKeys {
                source: self,
                alg,
                limits,
                scheme: Arc::new(Scheme::parse(alg.alg, limits)?),
                keys: KeySlots::default(),
            });
        };
        let known = id.get();
        let found = cache.find(alg, limits, known);
        let scheme = match found.scheme {
            Some(scheme) => scheme,
            None => Arc::new(Scheme::parse(alg.alg, limits)?),
        };
        let keys = match known {
            Some(_) => found.keys,
            None => {
                let id = id.get_or_init(|| SecretId::of(self.secret));
                if found.held {
                    cache.find(alg, limits, Some(id)).keys
                } else {
                    KeySlots::default()
                }
            }
        };
        Ok(MacKeys {
            source: self,
            alg,
            limits,
            scheme,
            keys,
        })
    }
}

/// A parsed, limit-checked protectionAlg and the keys for it that are at hand.
struct MacKeys<'a> {
    source: KeySource<'a>,
    alg: AlgKey<'a>,
    limits: &'a MacLimits,
    scheme: Arc<Scheme>,
    keys: KeySlots,
}

impl MacKeys<'_> {
    /// The key for `key_len` (one of the scheme's [`key_lens`](Scheme::key_lens)): held, or
    /// derived and then remembered by the cache.
    fn key(&self, key_len: usize) -> Result<Arc<DerivedKey>> {
        let held = self.keys.iter().flatten().find(|(len, _)| *len == key_len);
        if let Some((_, key)) = held {
            return Ok(key.clone());
        }
        let secret = self.source.secret;
        let key = Arc::new(self.scheme.derive_key(secret, key_len)?);
        if let Some((cache, id)) = self.source.cache {
            let id = id.get_or_init(|| SecretId::of(secret));
            cache.insert(id, self.alg, self.limits, &self.scheme, key_len, &key);
        }
        Ok(key)
    }
}

/// A MAC value (at most 64 octets, the SHA-512 output), kept on the stack.
pub(crate) struct MacValue {
    len: usize,
    buf: [u8; 64],
}

impl std::ops::Deref for MacValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// HMAC (RFC 2104) with `hash` and `key` over the concatenation of `parts`.
///
/// Built on OpenSSL's low-level SHA functions: no allocation and no algorithm fetch. Through
/// `PKey::hmac` and a `Signer`, OpenSSL 3 creates the MAC key object with the key
/// generation API (`EVP_PKEY_generate`) and several contexts for every MAC, which cost
/// several times the hashing of a typical CMP message.
pub(crate) fn hmac(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> MacValue {
    macro_rules! hmac_with {
        ($hasher:ident, $block:literal) => {{
            // K0: the key, hashed first if longer than a block, zero-padded to a block.
            let mut k0 = [0u8; $block];
            if key.len() > $block {
                let mut h = sha::$hasher::new();
                h.update(key);
                let d = h.finish();
                k0[..d.len()].copy_from_slice(&d);
            } else {
                k0[..key.len()].copy_from_slice(key);
            }
            let mut pad = [0u8; $block];
            for (p, k) in pad.iter_mut().zip(&k0) {
                *p = k ^ 0x36;
            }
            let mut inner = sha::$hasher::new();
            inner.update(&pad);
            for part in parts {
                inner.update(part);
            }
            let inner = inner.finish();
            for (p, k) in pad.iter_mut().zip(&k0) {
                *p = k ^ 0x5c;
            }
            let mut outer = sha::$hasher::new();
            outer.update(&pad);
            outer.update(&inner);
            let out = outer.finish();
            // Best effort: do not leave key material on the stack.
            k0.iter_mut().chain(pad.iter_mut()).for_each(|b| *b = 0);
            let mut v = MacValue {
                len: out.len(),
                buf: [0u8; 64],
            };
            v.buf[..out.len()].copy_from_slice(&out);
            v
        }};
    }
    match hash {
        HashAlg::Sha1 => hmac_with!(Sha1, 64),
        HashAlg::Sha224 => hmac_with!(Sha224, 64),
        HashAlg::Sha256 => hmac_with!(Sha256, 64),
        HashAlg::Sha384 => hmac_with!(Sha384, 128),
        HashAlg::Sha512 => hmac_with!(Sha512, 128),
    }
}

/// PasswordBasedMac's cryptography alone, for the benchmarks' crypto floor: BASEKEY =
/// OWF^iterations(secret || salt) as `config` says, then the HMAC over `data`, computed as
/// message protection computes them (compression-function iterations, HMAC on OpenSSL's
/// low-level SHA functions) but without encoding or parsing parameters, limits or key cache.
/// Not part of the API.
#[doc(hidden)]
pub fn pbm_floor(config: &PbmConfig, secret: &[u8], salt: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let key = pbm_floor_key(config, secret, salt)?;
    Ok(pbm_floor_mac(config, &key, data))
}

/// The key derivation of [`pbm_floor`] alone. Not part of the API.
#[doc(hidden)]
pub fn pbm_floor_key(config: &PbmConfig, secret: &[u8], salt: &[u8]) -> Result<Vec<u8>> {
    Ok(pbm::Spec::from_config(config, salt)
        .derive_key(secret)?
        .to_vec())
}

/// The MAC of [`pbm_floor`] alone, with a derived `key`. Not part of the API.
#[doc(hidden)]
pub fn pbm_floor_mac(config: &PbmConfig, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac(config.mac, key, &[data]).to_vec()
}

/// An INTEGER (its content octets, as `Int::as_bytes` gives them) as a u64: negative →
/// BadMacParameters, beyond u64 → IterationCountTooHigh.
fn int_to_u64(bytes: &[u8], what: &str) -> Result<u64> {
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return fail(ErrorCode::BadMacParameters, format!("{what} is negative"));
    }
    // Non-negative: big-endian magnitude, with a leading zero octet when the top bit is set.
    let magnitude = bytes.strip_prefix(&[0]).unwrap_or(bytes);
    if magnitude.len() > 8 {
        return fail(
            ErrorCode::IterationCountTooHigh,
            format!("{what} exceeds 2^64 - 1"),
        );
    }
    Ok(magnitude.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

/// A u64 as an INTEGER.
fn u64_to_int(n: u64) -> Result<Int> {
    Ok(Int::from(Uint::new(&n.to_be_bytes())?))
}

/// Iteration count within 1..=limits.max_iterations.
fn check_iterations(n: u64, limits: &MacLimits, what: &str) -> Result<()> {
    if n < 1 {
        return fail(
            ErrorCode::BadMacParameters,
            format!("{what} iteration count {n} is below 1"),
        );
    }
    if n > limits.max_iterations {
        return fail(
            ErrorCode::IterationCountTooHigh,
            format!(
                "{what} iteration count {n} exceeds the cap of {}",
                limits.max_iterations
            ),
        );
    }
    Ok(())
}

/// Salt of 1..=MAX_SALT_LEN octets.
fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return fail(
            ErrorCode::BadMacParameters,
            format!(
                "salt of {} octets is outside 1..={MAX_SALT_LEN}",
                salt.len()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PBM protectionAlg with `iterations` and a fresh random salt.
    fn pbm_alg(iterations: u32) -> AlgorithmIdentifierOwned {
        let config = PbmConfig {
            iterations,
            ..PbmConfig::openssl_compatible()
        };
        config.algorithm_identifier().unwrap()
    }

    /// The key for `secret` and `alg` through `cache`.
    fn cached_key(cache: &MacKeyCache, secret: &[u8], alg: &AlgorithmIdentifierOwned) -> Vec<u8> {
        let limits = MacLimits::default();
        let id = OnceLock::new();
        let keys = KeySource::new(secret, Some(cache), &id)
            .for_alg(alg, &limits)
            .unwrap();
        let key = keys.key(keys.scheme.key_lens()[0]).unwrap();
        key.bytes().to_vec()
    }

    /// The key for `secret` and `alg`, derived without a cache.
    fn fresh_key(secret: &[u8], alg: &AlgorithmIdentifierOwned) -> Vec<u8> {
        let scheme = Scheme::parse(alg, &MacLimits::default()).unwrap();
        let key_len = scheme.key_lens()[0];
        scheme.derive_key(secret, key_len).unwrap().bytes().to_vec()
    }

    #[test]
    fn cache_keeps_at_most_capacity_parameter_sets_and_reuses_them() {
        let cache = MacKeyCache::new();
        let algs: Vec<_> = (0..MacKeyCache::CAPACITY + 2).map(|_| pbm_alg(3)).collect();
        for alg in &algs {
            assert_eq!(cached_key(&cache, b"s", alg), fresh_key(b"s", alg));
        }
        assert_eq!(cache.len(), MacKeyCache::CAPACITY);
        let n = MacKeyCache::CAPACITY as u64 + 2;
        assert_eq!(cache.derivations(), n);
        // The newest are held...
        let last = algs.last().unwrap();
        assert_eq!(cached_key(&cache, b"s", last), fresh_key(b"s", last));
        assert_eq!(cache.derivations(), n);
        // ...the oldest two were dropped.
        cached_key(&cache, b"s", &algs[0]);
        assert_eq!(cache.derivations(), n + 1);
        assert_eq!(cache.len(), MacKeyCache::CAPACITY);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_drops_the_least_recently_used_set_and_clones_share_keys() {
        let cache = MacKeyCache::with_capacity(2);
        let shared = cache.clone();
        let (a, b, c) = (pbm_alg(3), pbm_alg(3), pbm_alg(3));
        cached_key(&cache, b"s", &a);
        cached_key(&cache, b"s", &b);
        // Using `a` makes `b` the least recently used: `c` evicts `b`.
        cached_key(&shared, b"s", &a);
        cached_key(&cache, b"s", &c);
        assert_eq!(shared.derivations(), 3);
        cached_key(&shared, b"s", &a);
        assert_eq!(shared.derivations(), 3);
        cached_key(&cache, b"s", &b);
        assert_eq!(shared.derivations(), 4);
        assert_eq!(shared.len(), 2);
    }

    /// The same parameters with another secret derive that secret's key, never the cached
    /// key of the first.
    #[test]
    fn cache_never_gives_a_key_for_another_secret() {
        let cache = MacKeyCache::new();
        let alg = pbm_alg(3);
        assert_eq!(cached_key(&cache, b"s", &alg), fresh_key(b"s", &alg));
        assert_eq!(cached_key(&cache, b"t", &alg), fresh_key(b"t", &alg));
        assert_ne!(fresh_key(b"s", &alg), fresh_key(b"t", &alg));
        // A secret that is a prefix or an extension of the first.
        assert_eq!(cached_key(&cache, b"", &alg), fresh_key(b"", &alg));
        assert_eq!(cached_key(&cache, b"s\0", &alg), fresh_key(b"s\0", &alg));
        assert_eq!(cache.derivations(), 4);
        assert_eq!(cached_key(&cache, b"s", &alg), fresh_key(b"s", &alg));
        assert_eq!(cache.derivations(), 4);
    }

    /// Parameters that differ in any field (salt, iteration count, hash, MAC, keyLength)
    /// derive their own key.
    #[test]
    fn cache_never_gives_a_key_for_other_parameters() {
        let cache = MacKeyCache::with_capacity(16);
        let pbm = |salt: &[u8], owf: HashAlg, iterations: u64, mac: HashAlg| {
            let p = crate::asn1::PbmParameter {
                salt: der::asn1::OctetString::new(salt).unwrap(),
                owf: AlgorithmIdentifierOwned {
                    oid: owf.digest_oid(),
                    parameters: None,
                },
                iteration_count: u64_to_int(iterations).unwrap(),
                mac: AlgorithmIdentifierOwned {
                    oid: mac.pbm_mac_oid(),
                    parameters: None,
                },
            };
            AlgorithmIdentifierOwned {
                oid: oid::PASSWORD_BASED_MAC,
                parameters: Some(der::Any::encode_from(&p).unwrap()),
            }
        };
        let (sha1, sha256) = (HashAlg::Sha1, HashAlg::Sha256);
        let pbmac1 = |key_len: usize| {
            Pbmac1Config {
                iterations: 3,
                key_len,
                ..Pbmac1Config::default()
            }
            .algorithm_identifier()
            .unwrap()
        };
        let algs = [
            pbm(b"salt", sha256, 3, sha1),
            pbm(b"salT", sha256, 3, sha1),
            pbm(b"salt", sha256, 4, sha1),
            pbm(b"salt", HashAlg::Sha512, 3, sha1),
            pbm(b"salt", sha256, 3, sha256),
            pbmac1(32),
            pbmac1(48),
        ];
        for (i, alg) in algs.iter().enumerate() {
            assert_eq!(cached_key(&cache, b"s", alg), fresh_key(b"s", alg), "{i}");
            assert_eq!(cache.derivations(), i as u64 + 1, "{i}");
        }
        for (i, alg) in algs.iter().enumerate() {
            assert_eq!(cached_key(&cache, b"s", alg), fresh_key(b"s", alg), "{i}");
        }
        assert_eq!(cache.derivations(), algs.len() as u64);
    }

    /// A parameter set parsed once is reused as parsed; with other limits it is checked
    /// again, so a cached set beyond stricter limits is refused before anything is derived.
    #[test]
    fn cached_parameters_are_parsed_once_and_checked_against_new_limits() {
        let cache = MacKeyCache::new();
        let alg = pbm_alg(50);
        let id = OnceLock::new();
        let source = KeySource::new(b"s", Some(&cache), &id);
        let limits = MacLimits::default();
        let first = source.for_alg(&alg, &limits).unwrap();
        first.key(0).unwrap();
        let again = source.for_alg(&alg, &limits).unwrap();
        assert!(Arc::ptr_eq(&first.scheme, &again.scheme));
        let strict = MacLimits {
            max_iterations: 49,
            ..limits
        };
        let err = source.for_alg(&alg, &strict).err().unwrap();
        assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
        // Looser limits accept it and take the cached key.
        let loose = MacLimits {
            max_iterations: 1000,
            ..limits
        };
        let keys = source.for_alg(&alg, &loose).unwrap();
        assert!(!Arc::ptr_eq(&first.scheme, &keys.scheme));
        keys.key(0).unwrap();
        assert_eq!(cache.derivations(), 1);
    }

    /// Both readings of an ambiguous PBMAC1 keyLength (octets, then bits) keep their own
    /// key in the one entry of that secret and parameter set.
    #[test]
    fn cache_keeps_both_key_length_readings_of_a_parameter_set() {
        let cache = MacKeyCache::with_capacity(1);
        let alg = Pbmac1Config {
            iterations: 3,
            key_len: 256,
            ..Pbmac1Config::default()
        }
        .algorithm_identifier()
        .unwrap();
        let limits = MacLimits::default();
        let id = OnceLock::new();
        let source = KeySource::new(b"s", Some(&cache), &id);
        let keys = source.for_alg(&alg, &limits).unwrap();
        assert_eq!(keys.scheme.key_lens(), [256, 32]);
        let octets = keys.key(256).unwrap();
        let bits = keys.key(32).unwrap();
        assert_eq!((octets.bytes().len(), bits.bytes().len()), (256, 32));
        assert_eq!((cache.len(), cache.derivations()), (2, 2));
        let again = source.for_alg(&alg, &limits).unwrap();
        assert_eq!(again.key(256).unwrap().bytes(), octets.bytes());
        assert_eq!(again.key(32).unwrap().bytes(), bits.bytes());
        assert_eq!(cache.derivations(), 2);
    }

    /// Parameters beyond the limits are refused before anything is hashed, the secret (for
    /// its id in the cache) included; within the limits the id is computed once.
    #[test]
    fn limits_are_checked_before_the_secret_is_hashed() {
        let cache = MacKeyCache::new();
        let id = OnceLock::new();
        let source = KeySource::new(b"s", Some(&cache), &id);
        let strict = MacLimits {
            max_iterations: 9,
            ..MacLimits::default()
        };
        let err = source.for_alg(&pbm_alg(10), &strict).err().unwrap();
        assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
        assert!(id.get().is_none());
        let alg = pbm_alg(9);
        source.for_alg(&alg, &strict).unwrap().key(0).unwrap();
        assert_eq!(id.get().map(|i| i.0), Some(SecretId::of(b"s").0));
        // Another secret's request with the same parameters finds them parsed, yet refused
        // under stricter limits before its secret is hashed.
        let other_id = OnceLock::new();
        let other = KeySource::new(b"t", Some(&cache), &other_id);
        let stricter = MacLimits {
            max_iterations: 8,
            ..strict
        };
        let err = other.for_alg(&alg, &stricter).err().unwrap();
        assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
        assert!(other_id.get().is_none());
        assert_eq!(cache.derivations(), 1);
    }

    /// The HMAC on low-level SHA gives what OpenSSL's HMAC gives, for every hash, with keys
    /// shorter than, as long as, and longer than a block, and data in several parts.
    #[test]
    fn hmac_matches_openssl_for_every_hash() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for hash in HashAlg::ALL {
            let b = hash.block_len();
            for key_len in [1, 20, 32, b - 1, b, b + 1, 2 * b + 5, 512] {
                let key: Vec<u8> = (0..key_len).map(|i| (i * 13 + 1) as u8).collect();
                for data_len in [0, 1, 55, 64, 700] {
                    let pkey = PKey::hmac(&key).unwrap();
                    let mut s = openssl::sign::Signer::new(hash.md(), &pkey).unwrap();
                    s.update(&data[..data_len]).unwrap();
                    let expected = s.sign_to_vec().unwrap();
                    let (a, rest) = data[..data_len].split_at(data_len / 3);
                    let got = hmac(hash, &key, &[a, &[], rest]);
                    assert_eq!(got.len(), hash.output_len());
                    assert_eq!(
                        &*got,
                        &expected[..],
                        "{hash:?} key {key_len} data {data_len}"
                    );
                }
            }
        }
    }

    /// RFC 4231 test case 2 (HMAC-SHA-256 and -512 with the key "Jefe").
    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex(&hmac(HashAlg::Sha256, b"Jefe", &[data])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac(HashAlg::Sha512, b"Jefe", &[data])),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn integers_convert_both_ways() {
        for n in [0u64, 1, 127, 128, 255, 256, 500, 1 << 40, u64::MAX] {
            assert_eq!(
                int_to_u64(u64_to_int(n).unwrap().as_bytes(), "n").unwrap(),
                n
            );
        }
        let two_to_64 = Int::new(&[1, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        let err = int_to_u64(two_to_64.as_bytes(), "n").unwrap_err();
        assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
        let minus_one = Int::new(&[0xff]).unwrap();
        let err = int_to_u64(minus_one.as_bytes(), "n").unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMacParameters);
    }
}
