//! The signing-key interface and OpenSSL-backed software keys.

use crate::asn1::oid;
use crate::error::{Error, ErrorCode, Result};
use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode};
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer as OsslSigner, Verifier};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::sync::Mutex;

/// Signature algorithms for CMP protection and POP (RFC 9481 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SigAlg {
    /// ECDSA with SHA-256.
    EcdsaSha256 = 1,
    /// ECDSA with SHA-384.
    EcdsaSha384 = 2,
    /// ECDSA with SHA-512.
    EcdsaSha512 = 3,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256 = 4,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384 = 5,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512 = 6,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256 = 7,
    /// Ed25519 (pure).
    Ed25519 = 8,
    /// Ed448 (pure).
    Ed448 = 9,
}

/// Kinds of key pair cmpkit can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// EC on P-256.
    EcP256,
    /// EC on P-384.
    EcP384,
    /// EC on P-521.
    EcP521,
    /// RSA with the given modulus size in bits.
    Rsa(u32),
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
}

impl SigAlg {
    /// The algorithm's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            SigAlg::EcdsaSha256 => oid::ECDSA_SHA256,
            SigAlg::EcdsaSha384 => oid::ECDSA_SHA384,
            SigAlg::EcdsaSha512 => oid::ECDSA_SHA512,
            SigAlg::RsaSha256 => oid::RSA_SHA256,
            SigAlg::RsaSha384 => oid::RSA_SHA384,
            SigAlg::RsaSha512 => oid::RSA_SHA512,
            SigAlg::RsaPssSha256 => oid::RSASSA_PSS,
            SigAlg::Ed25519 => oid::ED25519,
            SigAlg::Ed448 => oid::ED448,
        }
    }

    /// The digest hashed before signing, or `None` for EdDSA (which signs the message itself).
    pub fn digest(self) -> Option<MessageDigest> {
        self.prehash().map(|h| match h {
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
        })
    }

    /// The hash signed instead of the message, or `None` for EdDSA.
    fn prehash(self) -> Option<HashAlg> {
        match self {
            SigAlg::EcdsaSha256 | SigAlg::RsaSha256 | SigAlg::RsaPssSha256 => Some(HashAlg::Sha256),
            SigAlg::EcdsaSha384 | SigAlg::RsaSha384 => Some(HashAlg::Sha384),
            SigAlg::EcdsaSha512 | SigAlg::RsaSha512 => Some(HashAlg::Sha512),
            SigAlg::Ed25519 | SigAlg::Ed448 => None,
        }
    }

    /// Set up `ctx`, initialised for signing or verification with this algorithm's key, for
    /// a digest computed beforehand ([`Digest`]): RSA needs the digest algorithm (for the
    /// DigestInfo or the PSS encoding) and PSS its parameters; ECDSA signs the digest as is.
    fn configure<T>(self, ctx: &mut PkeyCtx<T>) -> Result<()> {
        let rsa = matches!(
            self,
            SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512 | SigAlg::RsaPssSha256
        );
        if let (true, Some(hash)) = (rsa, self.prehash()) {
            ctx.set_signature_md(hash.md())?;
        }
        if self == SigAlg::RsaPssSha256 {
            ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32))?;
            ctx.set_rsa_mgf1_md(Md::sha256())?;
        }
        Ok(())
    }

    /// The AlgorithmIdentifier to put in protectionAlg or POPOSigningKey.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        let parameters = match self {
            // RFC 4055: sha*WithRSAEncryption carries NULL parameters.
            SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512 => Some(Any::null()),
            SigAlg::RsaPssSha256 => Some(Any::from_der(&PSS_SHA256_PARAMS).expect("constant DER")),
            _ => None,
        };
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters,
        }
    }

    /// Map an AlgorithmIdentifier from a message to a supported algorithm.
    pub fn from_algorithm_identifier(alg: &AlgorithmIdentifierOwned) -> Result<SigAlg> {
        let a = match alg.oid {
            o if o == oid::ECDSA_SHA256 => SigAlg::EcdsaSha256,
            o if o == oid::ECDSA_SHA384 => SigAlg::EcdsaSha384,
            o if o == oid::ECDSA_SHA512 => SigAlg::EcdsaSha512,
            o if o == oid::RSA_SHA256 => SigAlg::RsaSha256,
            o if o == oid::RSA_SHA384 => SigAlg::RsaSha384,
            o if o == oid::RSA_SHA512 => SigAlg::RsaSha512,
            o if o == oid::ED25519 => SigAlg::Ed25519,
            o if o == oid::ED448 => SigAlg::Ed448,
            o if o == oid::RSASSA_PSS => {
                let params = alg.parameters.as_ref().map(|p| p.to_der()).transpose()?;
                if params.as_deref() != Some(&PSS_SHA256_PARAMS[..]) {
                    return Err(Error::new(
                        ErrorCode::UnsupportedAlgorithm,
                        "RSASSA-PSS parameters other than SHA-256/MGF1-SHA-256/salt 32 are not supported",
                    ));
                }
                SigAlg::RsaPssSha256
            }
            o => {
                return Err(Error::new(
                    ErrorCode::UnsupportedAlgorithm,
                    format!("signature algorithm {o} is not supported"),
                ))
            }
        };
        Ok(a)
    }

    /// The default algorithm for a key (RFC 9481): ECDSA with the curve's hash, RSA with
    /// SHA-256 PKCS#1 v1.5, EdDSA pure.
    pub fn default_for(pkey: &PKey<impl openssl::pkey::HasPublic>) -> Result<SigAlg> {
        match pkey.id() {
            Id::EC => {
                let bits = pkey.bits();
                Ok(if bits > 384 {
                    SigAlg::EcdsaSha512
                } else if bits > 256 {
                    SigAlg::EcdsaSha384
                } else {
                    SigAlg::EcdsaSha256
                })
            }
            Id::RSA => Ok(SigAlg::RsaSha256),
            Id::ED25519 => Ok(SigAlg::Ed25519),
            Id::ED448 => Ok(SigAlg::Ed448),
            other => Err(Error::new(
                ErrorCode::UnsupportedAlgorithm,
                format!("key type {other:?} cannot sign CMP messages"),
            )),
        }
    }

    fn fits(self, id: Id) -> bool {
        match self {
            SigAlg::EcdsaSha256 | SigAlg::EcdsaSha384 | SigAlg::EcdsaSha512 => id == Id::EC,
            SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512 | SigAlg::RsaPssSha256 => {
                id == Id::RSA || id == Id::RSA_PSS
            }
            SigAlg::Ed25519 => id == Id::ED25519,
            SigAlg::Ed448 => id == Id::ED448,
        }
    }
}

/// The hash functions the signature algorithms use.
#[derive(Clone, Copy)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn md(self) -> &'static MdRef {
        match self {
            HashAlg::Sha256 => Md::sha256(),
            HashAlg::Sha384 => Md::sha384(),
            HashAlg::Sha512 => Md::sha512(),
        }
    }
}

/// The hash of a message, computed with OpenSSL's low-level SHA functions: no `EVP_MD_CTX`,
/// no provider fetch. Signed and verified with `EVP_PKEY_sign`/`EVP_PKEY_verify`.
pub(crate) struct Digest {
    bytes: [u8; 64],
    len: usize,
}

impl Digest {
    /// The hash of the concatenation of `parts`.
    pub(crate) fn of(hash: HashAlg, parts: &[&[u8]]) -> Digest {
        use openssl::sha::{Sha256, Sha384, Sha512};
        let mut d = Digest {
            bytes: [0; 64],
            len: 0,
        };
        let mut put = |v: &[u8]| {
            d.bytes[..v.len()].copy_from_slice(v);
            d.len = v.len();
        };
        match hash {
            HashAlg::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                put(&h.finish());
            }
            HashAlg::Sha384 => {
                let mut h = Sha384::new();
                parts.iter().for_each(|p| h.update(p));
                put(&h.finish());
            }
            HashAlg::Sha512 => {
                let mut h = Sha512::new();
                parts.iter().for_each(|p| h.update(p));
                put(&h.finish());
            }
        }
        d
    }

    /// The hash value.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// DER of RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt length 32 (RFC 4055/RFC 9481).
const PSS_SHA256_PARAMS: [u8; 54] = [
    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
];

/// A private key that signs: an OpenSSL software key, or the caller's HSM/TPM through callbacks.
///
/// The library only ever sees the public key and asks for signatures.
pub trait Signer: Send + Sync {
    /// The SubjectPublicKeyInfo of the key, DER.
    fn public_key_der(&self) -> &[u8];
    /// The signature algorithm this key signs with.
    fn algorithm(&self) -> SigAlg;
    /// Sign `tbs` (the whole data; the signer hashes it as the algorithm requires).
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>>;

    /// Sign the concatenation of `parts`. The default joins them and calls
    /// [`sign`](Self::sign); a signer that hashes can hash them part by part instead.
    fn sign_parts(&self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        self.sign(&parts.concat())
    }

    /// The SubjectPublicKeyInfo, decoded.
    fn public_key_info(&self) -> Result<SubjectPublicKeyInfoOwned> {
        Ok(SubjectPublicKeyInfoOwned::from_der(self.public_key_der())?)
    }
}

/// A private key held in memory through OpenSSL.
///
/// Signs a digest computed beforehand with `EVP_PKEY_sign` on a context set up once
/// (`EVP_PKEY_sign_init` and the algorithm's parameters), not with a new digest-sign context
/// per signature; EdDSA, which has no digest step, goes through `EVP_DigestSign`.
pub struct SoftwareKey {
    pkey: PKey<Private>,
    spki: Vec<u8>,
    alg: SigAlg,
    /// Signing contexts for `alg`, ready for use.
    contexts: ContextPool<Private>,
}

/// How many idle contexts a [`ContextPool`] keeps (more are made when more threads use the
/// key at once, and freed afterwards).
const MAX_IDLE_CONTEXTS: usize = 16;

/// `EVP_PKEY_CTX`s of one key, initialised for one operation (signing or verification) and
/// set up for an algorithm, ready for reuse: each thread takes one (or makes one when none
/// is free) and puts it back afterwards. Setting one up (`EVP_PKEY_CTX_new`, the init call,
/// the algorithm's parameters) costs about as much as hashing a CMP message.
struct ContextPool<T> {
    idle: Mutex<Vec<(SigAlg, PkeyCtx<T>)>>,
}

impl<T> ContextPool<T> {
    fn new() -> Self {
        ContextPool {
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(SigAlg, PkeyCtx<T>)>> {
        // Push, pop and clear leave the list consistent, so a poisoned lock is still usable.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `op` on an idle context for `alg`, or on a new one from `make`. The context goes
    /// back to the pool unless `op` fails (then it is dropped rather than reused).
    fn with<R>(
        &self,
        alg: SigAlg,
        make: impl FnOnce() -> Result<PkeyCtx<T>>,
        op: impl FnOnce(&mut PkeyCtx<T>) -> Result<R>,
    ) -> Result<R> {
        let idle = {
            let mut idle = self.idle();
            let found = idle.iter().rposition(|(a, _)| *a == alg);
            found.map(|i| idle.swap_remove(i).1)
        };
        let mut ctx = match idle {
            Some(ctx) => ctx,
            None => make()?,
        };
        let r = op(&mut ctx)?;
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_CONTEXTS {
            idle.push((alg, ctx));
        }
        Ok(r)
    }
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Wrap an OpenSSL key, signing with the key type's default algorithm.
    pub fn from_pkey(pkey: PKey<Private>) -> Result<Self> {
        let alg = SigAlg::default_for(&pkey)?;
        let spki = pkey.public_key_to_der()?;
        Ok(SoftwareKey {
            pkey,
            spki,
            alg,
            contexts: ContextPool::new(),
        })
    }

    /// Generate a new key pair.
    pub fn generate(kind: KeyType) -> Result<Self> {
        // EVP_EC_gen makes a provider-native key; a legacy EC_KEY wrapped in an EVP_PKEY
        // would be exported to the provider again on its first use (~150k instructions).
        let pkey = match kind {
            KeyType::EcP256 => PKey::ec_gen("P-256")?,
            KeyType::EcP384 => PKey::ec_gen("P-384")?,
            KeyType::EcP521 => PKey::ec_gen("P-521")?,
            KeyType::Rsa(bits) => {
                if !(2048..=8192).contains(&bits) {
                    return Err(Error::new(
                        ErrorCode::InvalidArgument,
                        format!("RSA key size {bits} is outside 2048..=8192"),
                    ));
                }
                PKey::from_rsa(openssl::rsa::Rsa::generate(bits)?)?
            }
            KeyType::Ed25519 => PKey::generate_ed25519()?,
            KeyType::Ed448 => PKey::generate_ed448()?,
        };
        Self::from_pkey(pkey)
    }

    /// Load a private key from PEM (PKCS#8, SEC1 or PKCS#1) or DER (PKCS#8).
    pub fn from_pem_or_der(data: &[u8]) -> Result<Self> {
        let pkey = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
            PKey::private_key_from_pem(data)
        } else {
            PKey::private_key_from_der(data)
        }
        .map_err(|e| {
            Error::new(
                ErrorCode::KeyError,
                format!("cannot parse private key: {e}"),
            )
        })?;
        Self::from_pkey(pkey)
    }

    /// Choose another signature algorithm (it must fit the key type).
    pub fn set_algorithm(&mut self, alg: SigAlg) -> Result<()> {
        if !alg.fits(self.pkey.id()) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("{alg:?} does not fit a {:?} key", self.pkey.id()),
            ));
        }
        self.alg = alg;
        // Contexts of the former algorithm would only take room.
        self.contexts.idle().clear();
        Ok(())
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<Vec<u8>> {
        Ok(self.pkey.private_key_to_pem_pkcs8()?)
    }

    /// The private key as PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        Ok(self.pkey.private_key_to_pkcs8()?)
    }

    /// The OpenSSL key.
    pub fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }

    /// Sign `digest` on an idle context (a new one when there is none).
    fn sign_digest(&self, digest: &Digest) -> Result<Vec<u8>> {
        let make = || {
            let mut ctx = PkeyCtx::new(&self.pkey)?;
            ctx.sign_init()?;
            self.alg.configure(&mut ctx)?;
            Ok(ctx)
        };
        self.contexts.with(self.alg, make, |ctx| {
            let mut sig = vec![0; self.pkey.size()];
            let len = ctx.sign(digest.as_bytes(), Some(&mut sig))?;
            sig.truncate(len);
            Ok(sig)
        })
    }
}

impl Signer for SoftwareKey {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> SigAlg {
        self.alg
    }

    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        self.sign_parts(&[tbs])
    }

    fn sign_parts(&self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        match self.alg.prehash() {
            Some(hash) => self.sign_digest(&Digest::of(hash, parts)),
            // EdDSA signs the message itself.
            None => {
                Ok(OsslSigner::new_without_digest(&self.pkey)?
                    .sign_oneshot_to_vec(&parts.concat())?)
            }
        }
    }
}

/// Verify `sig` over `data` with `alg` and the public key `pkey`.
///
/// Fails with [`ErrorCode::SignatureInvalid`] when the signature does not verify, and with
/// [`ErrorCode::UnsupportedAlgorithm`] when the algorithm does not fit the key.
pub fn verify_signature(alg: SigAlg, pkey: &PKey<Public>, data: &[u8], sig: &[u8]) -> Result<()> {
    verify_signature_parts(alg, pkey, &[data], sig)
}

/// Like [`verify_signature`], over the concatenation of `parts` (hashed part by part where
/// the algorithm hashes; joined first for EdDSA, which signs the whole message).
///
/// Sets up a verification context for this one call; [`VerifyingKey`] keeps them for a key
/// that verifies again and again.
pub fn verify_signature_parts(
    alg: SigAlg,
    pkey: &PKey<Public>,
    parts: &[&[u8]],
    sig: &[u8],
) -> Result<()> {
    verify_with(alg, pkey, parts, sig, |digest| {
        verify_context(alg, pkey)?
            .verify(digest, sig)
            .map_err(Error::from)
    })
}

/// A new context, initialised for verifying `alg` signatures with `pkey`.
fn verify_context(alg: SigAlg, pkey: &PKey<Public>) -> Result<PkeyCtx<Public>> {
    let mut ctx = PkeyCtx::new(pkey)?;
    ctx.verify_init()?;
    alg.configure(&mut ctx)?;
    Ok(ctx)
}

/// The verification common to one-off and pooled contexts: checks that `alg` fits `pkey`,
/// hashes `parts` and has `verify_digest` check `sig` over the digest (EdDSA verifies the
/// message itself, on a context of its own).
fn verify_with(
    alg: SigAlg,
    pkey: &PKey<Public>,
    parts: &[&[u8]],
    sig: &[u8],
    verify_digest: impl FnOnce(&[u8]) -> Result<bool>,
) -> Result<()> {
    if !alg.fits(pkey.id()) {
        return Err(Error::new(
            ErrorCode::UnsupportedAlgorithm,
            format!(
                "signature algorithm {alg:?} does not fit the signer's {:?} key",
                pkey.id()
            ),
        ));
    }
    // A malformed signature makes OpenSSL report an error rather than `false`: both mean "invalid".
    let verified = match alg.prehash() {
        Some(hash) => verify_digest(Digest::of(hash, parts).as_bytes()),
        None => Verifier::new_without_digest(pkey)
            .and_then(|mut v| v.verify_oneshot(sig, &parts.concat()))
            .map_err(Error::from),
    };
    match verified {
        Ok(true) => Ok(()),
        _ => Err(Error::new(
            ErrorCode::SignatureInvalid,
            format!("{alg:?} signature does not verify"),
        )),
    }
}

/// A public key that verifies signatures on initialised contexts kept for reuse (one per
/// algorithm and concurrent thread), for a peer whose messages are checked again and again:
/// each verification then costs the hash and `EVP_PKEY_verify`, without setting up an
/// `EVP_PKEY_CTX`. Shared by threads.
pub struct VerifyingKey {
    pkey: PKey<Public>,
    contexts: ContextPool<Public>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("id", &self.pkey.id())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Wrap `pkey`; contexts are made when first needed.
    pub fn new(pkey: PKey<Public>) -> Self {
        VerifyingKey {
            pkey,
            contexts: ContextPool::new(),
        }
    }

    /// The key.
    pub fn pkey(&self) -> &PKey<Public> {
        &self.pkey
    }

    /// [`verify_signature_parts`] with this key.
    pub fn verify_parts(&self, alg: SigAlg, parts: &[&[u8]], sig: &[u8]) -> Result<()> {
        verify_with(alg, &self.pkey, parts, sig, |digest| {
            let make = || verify_context(alg, &self.pkey);
            // An OpenSSL error (a malformed signature) drops the context, `false` keeps it.
            self.contexts
                .with(alg, make, |ctx| Ok(ctx.verify(digest, sig)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foreign_types::ForeignType;

    #[test]
    fn every_key_type_signs_and_verifies_and_rejects_other_data() {
        for kind in [
            KeyType::EcP256,
            KeyType::EcP384,
            KeyType::EcP521,
            KeyType::Rsa(2048),
            KeyType::Ed25519,
            KeyType::Ed448,
        ] {
            let key = SoftwareKey::generate(kind).unwrap();
            let sig = key.sign(b"hello").unwrap();
            let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
            verify_signature(key.algorithm(), &public, b"hello", &sig).unwrap();
            let err = verify_signature(key.algorithm(), &public, b"hellO", &sig).unwrap_err();
            assert_eq!(err.code, ErrorCode::SignatureInvalid, "{kind:?}");
        }
    }

    #[test]
    fn rsa_pss_round_trips_through_its_algorithm_identifier() {
        let mut key = SoftwareKey::generate(KeyType::Rsa(2048)).unwrap();
        key.set_algorithm(SigAlg::RsaPssSha256).unwrap();
        let aid = key.algorithm().algorithm_identifier();
        assert_eq!(
            SigAlg::from_algorithm_identifier(&aid).unwrap(),
            SigAlg::RsaPssSha256
        );
        let sig = key.sign(b"x").unwrap();
        let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
        verify_signature(SigAlg::RsaPssSha256, &public, b"x", &sig).unwrap();
    }

    /// A key for every algorithm, set to sign with it.
    fn key_for(alg: SigAlg) -> SoftwareKey {
        let kind = match alg {
            SigAlg::EcdsaSha256 => KeyType::EcP256,
            SigAlg::EcdsaSha384 => KeyType::EcP384,
            SigAlg::EcdsaSha512 => KeyType::EcP521,
            SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512 | SigAlg::RsaPssSha256 => {
                KeyType::Rsa(2048)
            }
            SigAlg::Ed25519 => KeyType::Ed25519,
            SigAlg::Ed448 => KeyType::Ed448,
        };
        let mut key = SoftwareKey::generate(kind).unwrap();
        key.set_algorithm(alg).unwrap();
        key
    }

    const ALL: [SigAlg; 9] = [
        SigAlg::EcdsaSha256,
        SigAlg::EcdsaSha384,
        SigAlg::EcdsaSha512,
        SigAlg::RsaSha256,
        SigAlg::RsaSha384,
        SigAlg::RsaSha512,
        SigAlg::RsaPssSha256,
        SigAlg::Ed25519,
        SigAlg::Ed448,
    ];

    /// OpenSSL's digest-sign/verify contexts for `alg`: the reference the prehash path must
    /// match.
    fn reference_verifier<'a>(alg: SigAlg, public: &'a PKey<Public>) -> Verifier<'a> {
        let mut v = match alg.digest() {
            Some(md) => Verifier::new(md, public).unwrap(),
            None => Verifier::new_without_digest(public).unwrap(),
        };
        if alg == SigAlg::RsaPssSha256 {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
            v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        }
        v
    }

    fn reference_sign(alg: SigAlg, key: &SoftwareKey, data: &[u8]) -> Vec<u8> {
        let mut s = match alg.digest() {
            Some(md) => OsslSigner::new(md, key.pkey()).unwrap(),
            None => OsslSigner::new_without_digest(key.pkey()).unwrap(),
        };
        if alg == SigAlg::RsaPssSha256 {
            s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            s.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
            s.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        }
        s.sign_oneshot_to_vec(data).unwrap()
    }

    #[test]
    fn every_algorithm_round_trips_and_rejects_other_data_and_altered_signatures() {
        for alg in ALL {
            let key = key_for(alg);
            let public = crate::crypto::public_key_from_der(key.public_key_der()).unwrap();
            // Twice: the second signature comes from a reused signing context.
            for data in [&b"first message"[..], b"second message"] {
                let sig = key.sign(data).unwrap();
                verify_signature(alg, &public, data, &sig).unwrap();
                let other = verify_signature(alg, &public, b"other data", &sig).unwrap_err();
                assert_eq!(other.code, ErrorCode::SignatureInvalid, "{alg:?}");
                let mut altered = sig.clone();
                *altered.last_mut().unwrap() ^= 1;
                let err = verify_signature(alg, &public, data, &altered).unwrap_err();
                assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
                let err = verify_signature(alg, &public, data, &sig[..sig.len() - 1]).unwrap_err();
                assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
                let err = verify_signature(alg, &public, data, &[]).unwrap_err();
                assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
            }
        }
    }

    #[test]
    fn signatures_are_interchangeable_with_openssl_digest_sign_and_verify() {
        let data = b"interoperable";
        for alg in ALL {
            let key = key_for(alg);
            let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
            let ours = key.sign(data).unwrap();
            assert!(
                reference_verifier(alg, &public)
                    .verify_oneshot(&ours, data)
                    .unwrap(),
                "{alg:?}: OpenSSL's DigestVerify refuses our signature"
            );
            let theirs = reference_sign(alg, &key, data);
            verify_signature(alg, &public, data, &theirs)
                .unwrap_or_else(|e| panic!("{alg:?}: DigestSign's signature refused: {e}"));
            if matches!(
                alg,
                SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512
            ) {
                // PKCS#1 v1.5 is deterministic: the very same bytes.
                assert_eq!(ours, theirs, "{alg:?}");
            }
        }
    }

    #[test]
    fn ecdsa_signatures_are_der_ecdsa_sig_values() {
        for alg in [
            SigAlg::EcdsaSha256,
            SigAlg::EcdsaSha384,
            SigAlg::EcdsaSha512,
        ] {
            let sig = key_for(alg).sign(b"x").unwrap();
            let parsed = openssl::ecdsa::EcdsaSig::from_der(&sig).unwrap();
            assert_eq!(parsed.to_der().unwrap(), sig, "{alg:?}");
        }
    }

    #[test]
    fn verification_over_parts_equals_verification_over_their_concatenation() {
        for alg in ALL {
            let key = key_for(alg);
            let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
            let sig = key.sign(b"header and body").unwrap();
            verify_signature_parts(alg, &public, &[b"header", b" and", b"", b" body"], &sig)
                .unwrap();
            let err =
                verify_signature_parts(alg, &public, &[b"header", b"body"], &sig).unwrap_err();
            assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
        }
    }

    #[test]
    fn signing_parts_equals_signing_their_concatenation() {
        for alg in ALL {
            let key = key_for(alg);
            let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
            let sig = key
                .sign_parts(&[b"header", b" and", b"", b" body"])
                .unwrap();
            verify_signature(alg, &public, b"header and body", &sig)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            let err = verify_signature(alg, &public, b"headerbody", &sig).unwrap_err();
            assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
        }
    }

    #[test]
    fn a_signature_with_another_key_or_algorithm_is_refused() {
        let key = key_for(SigAlg::EcdsaSha256);
        let other = SoftwareKey::generate(KeyType::EcP256).unwrap();
        let other_public = PKey::public_key_from_der(other.public_key_der()).unwrap();
        let sig = key.sign(b"m").unwrap();
        let err = verify_signature(SigAlg::EcdsaSha256, &other_public, b"m", &sig).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignatureInvalid);
        // Same key, but the signature claims SHA-384.
        let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
        let err = verify_signature(SigAlg::EcdsaSha384, &public, b"m", &sig).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignatureInvalid);
        // PKCS#1 v1.5 and PSS are not mistaken for each other.
        let mut rsa = key_for(SigAlg::RsaSha256);
        let rsa_public = PKey::public_key_from_der(rsa.public_key_der()).unwrap();
        let pkcs1 = rsa.sign(b"m").unwrap();
        rsa.set_algorithm(SigAlg::RsaPssSha256).unwrap();
        let pss = rsa.sign(b"m").unwrap();
        verify_signature(SigAlg::RsaPssSha256, &rsa_public, b"m", &pss).unwrap();
        for (alg, sig) in [(SigAlg::RsaPssSha256, &pkcs1), (SigAlg::RsaSha256, &pss)] {
            let err = verify_signature(alg, &rsa_public, b"m", sig).unwrap_err();
            assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
        }
    }

    #[test]
    fn threads_sign_with_one_key_at_once_and_idle_contexts_stay_bounded() {
        let key = std::sync::Arc::new(key_for(SigAlg::EcdsaSha256));
        let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let key = std::sync::Arc::clone(&key);
                std::thread::spawn(move || {
                    (0..25u8)
                        .map(|i| {
                            let data = [t, i];
                            (data, key.sign(&data).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for (data, sig) in t.join().unwrap() {
                verify_signature(SigAlg::EcdsaSha256, &public, &data, &sig).unwrap();
            }
        }
        let idle = key.contexts.idle().len();
        assert!(
            (1..=MAX_IDLE_CONTEXTS).contains(&idle),
            "{idle} idle contexts"
        );
    }

    #[test]
    fn a_verifying_key_reuses_its_contexts_and_still_tells_valid_from_invalid() {
        for alg in ALL {
            let key = key_for(alg);
            let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
            let verifier = VerifyingKey::new(public);
            let sig = key.sign(b"message").unwrap();
            let mut altered = sig.clone();
            *altered.last_mut().unwrap() ^= 1;
            // Several rounds: valid and invalid signatures alternate on reused contexts.
            for _ in 0..3 {
                verifier
                    .verify_parts(alg, &[b"mess", b"age"], &sig)
                    .unwrap();
                for (data, bad) in [
                    (&b"other"[..], &sig[..]),
                    (b"message", &altered),
                    (b"message", &sig[..sig.len() - 1]),
                    (b"message", &[]),
                ] {
                    let err = verifier.verify_parts(alg, &[data], bad).unwrap_err();
                    assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
                }
                verifier.verify_parts(alg, &[b"message"], &sig).unwrap();
            }
            // One context, kept; EdDSA verifies without one.
            let kept = usize::from(alg.prehash().is_some());
            assert_eq!(verifier.contexts.idle().len(), kept, "{alg:?}");
            // A valid signature is checked on the very context kept from the last one.
            let first = verifier.contexts.idle().first().map(|(_, c)| c.as_ptr());
            verifier.verify_parts(alg, &[b"message"], &sig).unwrap();
            let again = verifier.contexts.idle().first().map(|(_, c)| c.as_ptr());
            assert_eq!(first, again, "{alg:?}");
        }
    }

    #[test]
    fn a_verifying_key_keeps_contexts_of_each_algorithm_apart() {
        let mut key = key_for(SigAlg::RsaSha256);
        let verifier = VerifyingKey::new(PKey::public_key_from_der(key.public_key_der()).unwrap());
        let pkcs1 = key.sign(b"m").unwrap();
        key.set_algorithm(SigAlg::RsaPssSha256).unwrap();
        let pss = key.sign(b"m").unwrap();
        for _ in 0..2 {
            verifier
                .verify_parts(SigAlg::RsaSha256, &[b"m"], &pkcs1)
                .unwrap();
            verifier
                .verify_parts(SigAlg::RsaPssSha256, &[b"m"], &pss)
                .unwrap();
            for (alg, sig) in [(SigAlg::RsaPssSha256, &pkcs1), (SigAlg::RsaSha256, &pss)] {
                let err = verifier.verify_parts(alg, &[b"m"], sig).unwrap_err();
                assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
            }
        }
        let err = verifier
            .verify_parts(SigAlg::EcdsaSha256, &[b"m"], &pkcs1)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedAlgorithm);
    }

    #[test]
    fn threads_verify_with_one_key_at_once_and_idle_contexts_stay_bounded() {
        let key = key_for(SigAlg::EcdsaSha256);
        let sig = key.sign(b"shared").unwrap();
        let verifier = std::sync::Arc::new(VerifyingKey::new(
            PKey::public_key_from_der(key.public_key_der()).unwrap(),
        ));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (verifier, sig) = (std::sync::Arc::clone(&verifier), sig.clone());
                std::thread::spawn(move || {
                    // Each thread ends with a valid signature: OpenSSL 3.5 reports an
                    // invalid one as an error, after which the context is not kept.
                    for _ in 0..25 {
                        let err = verifier
                            .verify_parts(SigAlg::EcdsaSha256, &[b"other"], &sig)
                            .unwrap_err();
                        assert_eq!(err.code, ErrorCode::SignatureInvalid);
                        verifier
                            .verify_parts(SigAlg::EcdsaSha256, &[b"shared"], &sig)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let idle = verifier.contexts.idle().len();
        assert!(
            (1..=MAX_IDLE_CONTEXTS).contains(&idle),
            "{idle} idle contexts"
        );
    }

    #[test]
    fn algorithm_that_does_not_fit_the_key_is_refused() {
        let mut key = SoftwareKey::generate(KeyType::EcP256).unwrap();
        assert_eq!(
            key.set_algorithm(SigAlg::Ed25519).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
