//! PasswordBasedMac (RFC 9810 §5.1.3.1, RFC 9481 §6.1.1).
//!
//! `BASEKEY = OWF^iterationCount(secret || salt)`: the OWF is applied `iterationCount` times
//! in total, the first time to `secret || salt` and then to its own output. The MAC key is
//! BASEKEY (the OWF output, not truncated or extended) and the MAC is `mac` with that key
//! over the DER of `ProtectedPart`. OpenSSL (`OSSL_CRMF_pbm_new`) computes the same: one
//! digest over secret and salt, then `iterationCount - 1` more.

use super::{check_iterations, check_salt, int_to_u64, u64_to_int, HashAlg, MacLimits};
use crate::asn1::{oid, PbmParameter};
use crate::error::{fail, ErrorCode, Result};
use der::asn1::{Any, IntRef, OctetString, OctetStringRef};
use der::Sequence;
use spki::AlgorithmIdentifierRef;

use openssl::sha;
use openssl_sys as ffi;
use spki::AlgorithmIdentifierOwned;

/// Settings for producing PasswordBasedMac protection: a fresh salt for each message, or for
/// each transaction with [`protect_in_transaction`](super::protect_in_transaction).
///
/// The default is SHA-256 as OWF, 10 000 iterations, HMAC-SHA256, a 16-octet salt:
/// RFC 9481 §6.1.1 names SHA-256 and HMAC-SHA256 among the algorithms to support. OpenSSL's
/// `openssl cmp` uses 500 iterations and HMAC-SHA1; 10 000 is a cheaper brute-force
/// deterrent that is still far below OpenSSL's verification cap of 100 000
/// (`OSSL_CRMF_PBM_MAX_ITERATION_COUNT`) and costs a few milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PbmConfig {
    /// The one-way function iterated over `secret || salt`.
    pub owf: HashAlg,
    /// How often the OWF is applied in total (≥ 1).
    pub iterations: u32,
    /// The hash of the HMAC computed with the derived key.
    pub mac: HashAlg,
    /// Length of the random salt in octets (1..=256).
    pub salt_len: usize,
}

impl Default for PbmConfig {
    fn default() -> Self {
        PbmConfig {
            owf: HashAlg::Sha256,
            iterations: 10_000,
            mac: HashAlg::Sha256,
            salt_len: 16,
        }
    }
}

impl PbmConfig {
    /// The settings `openssl cmp` uses: SHA-256, 500 iterations, HMAC-SHA1, 16-octet salt.
    pub fn openssl_compatible() -> Self {
        PbmConfig {
            owf: HashAlg::Sha256,
            iterations: 500,
            mac: HashAlg::Sha1,
            salt_len: 16,
        }
    }

    /// A protectionAlg for these settings with a fresh random salt.
    pub fn algorithm_identifier(&self) -> Result<AlgorithmIdentifierOwned> {
        let mut salt = vec![0u8; self.salt_len];
        check_salt(&salt)?;
        if self.iterations < 1 {
            return fail(
                ErrorCode::BadMacParameters,
                "PBM iteration count must be ≥ 1",
            );
        }
        crate::crypto::random::fill_public(&mut salt)?;
        let params = PbmParameter {
            salt: OctetString::new(salt)?,
            owf: AlgorithmIdentifierOwned {
                oid: self.owf.digest_oid(),
                parameters: None,
            },
            iteration_count: u64_to_int(self.iterations.into())?,
            mac: AlgorithmIdentifierOwned {
                oid: self.mac.pbm_mac_oid(),
                parameters: None,
            },
        };
        Ok(AlgorithmIdentifierOwned {
            oid: oid::PASSWORD_BASED_MAC,
            parameters: Some(Any::encode_from(&params)?),
        })
    }
}

/// [`PbmParameter`] as it is read from a message: borrowed, without allocations.
#[derive(Sequence)]
struct PbmParameterRef<'a> {
    salt: OctetStringRef<'a>,
    owf: AlgorithmIdentifierRef<'a>,
    iteration_count: IntRef<'a>,
    mac: AlgorithmIdentifierRef<'a>,
}

/// PBM parameters read from a message and checked against the limits.
#[derive(Debug)]
pub(crate) struct Spec {
    salt: Vec<u8>,
    owf: HashAlg,
    iterations: u64,
    mac: HashAlg,
}

impl Spec {
    /// Read and check `params` (the AlgorithmIdentifier's parameters). No hashing is done.
    pub(crate) fn parse(params: Option<&Any>, limits: &MacLimits) -> Result<Spec> {
        let Some(params) = params else {
            return fail(
                ErrorCode::MalformedMessage,
                "PasswordBasedMac protectionAlg has no PBMParameter",
            );
        };
        let p = params.decode_as::<PbmParameterRef<'_>>().map_err(|e| {
            crate::Error::new(ErrorCode::MalformedMessage, format!("PBMParameter: {e}"))
        })?;
        let iterations = int_to_u64(p.iteration_count.as_bytes(), "PBM iterationCount")?;
        check_iterations(iterations, limits, "PBM")?;
        check_salt(p.salt.as_bytes())?;
        let owf = HashAlg::from_digest_oid(&p.owf.oid).ok_or_else(|| {
            crate::Error::new(
                ErrorCode::UnsupportedAlgorithm,
                format!("PBM one-way function {} is not supported", p.owf.oid),
            )
        })?;
        let mac = HashAlg::from_hmac_oid(&p.mac.oid).ok_or_else(|| {
            crate::Error::new(
                ErrorCode::UnsupportedAlgorithm,
                format!("PBM MAC algorithm {} is not supported", p.mac.oid),
            )
        })?;
        Ok(Spec {
            salt: p.salt.as_bytes().to_vec(),
            owf,
            iterations,
            mac,
        })
    }

    /// The parameters `config` describes, with `salt` (unchecked: for the benchmarks' floor).
    pub(crate) fn from_config(config: &PbmConfig, salt: &[u8]) -> Spec {
        Spec {
            salt: salt.to_vec(),
            owf: config.owf,
            iterations: config.iterations.into(),
            mac: config.mac,
        }
    }

    /// The HMAC's hash.
    pub(crate) fn mac(&self) -> HashAlg {
        self.mac
    }

    /// BASEKEY = OWF^iterationCount(secret || salt).
    ///
    /// The first application hashes `secret || salt` with OpenSSL's low-level SHA functions;
    /// the others (see [`iterate`]) call the compression function once each.
    pub(crate) fn derive_key(&self, secret: &[u8]) -> Result<Vec<u8>> {
        macro_rules! first {
            ($hasher:ident) => {{
                let mut h = sha::$hasher::new();
                h.update(secret);
                h.update(&self.salt);
                h.finish().to_vec()
            }};
        }
        let mut key = match self.owf {
            HashAlg::Sha1 => first!(Sha1),
            HashAlg::Sha224 => first!(Sha224),
            HashAlg::Sha256 => first!(Sha256),
            HashAlg::Sha384 => first!(Sha384),
            HashAlg::Sha512 => first!(Sha512),
        };
        iterate(self.owf, &mut key, self.iterations.saturating_sub(1));
        Ok(key)
    }
}

// The compression functions of OpenSSL's low-level SHA API (deprecated in OpenSSL 3 like
// the SHA*_Init/Update/Final that `openssl::sha` uses, and exported alongside them). They
// process one block into the context's chaining state `h` and touch nothing else.
extern "C" {
    fn SHA1_Transform(c: *mut ffi::SHA_CTX, data: *const u8);
    fn SHA256_Transform(c: *mut ffi::SHA256_CTX, data: *const u8);
    fn SHA512_Transform(c: *mut ffi::SHA512_CTX, data: *const u8);
}

/// Applies `owf` `times` more times to `key`, which holds an `owf` output.
///
/// Every input is one `owf` output, shorter than a block, so each application is exactly
/// one compression of a block `key || 0x80 || 0…0 || bit length` from the initial state,
/// and the new output is the state written big-endian (truncated for SHA-224 and SHA-384).
/// That is what SHA*_Init/Update/Final compute; calling the compression function directly
/// skips their buffering, padding and clean-up, which natively cost more than the
/// compression itself (OpenSSL's own PBM takes about 2.5 times the time of its 500 blocks).
fn iterate(owf: HashAlg, key: &mut [u8], times: u64) {
    let n = key.len();
    debug_assert_eq!(n, owf.output_len());
    match owf {
        HashAlg::Sha1 => {
            let mut block = padded_block::<64>(key, 8);
            let mut ctx = std::mem::MaybeUninit::<ffi::SHA_CTX>::zeroed();
            // SAFETY: SHA1_Init initialises the SHA_CTX it is given (all fields are plain
            // integers, so the zeroed value is already a valid one).
            unsafe { ffi::SHA1_Init(ctx.as_mut_ptr()) };
            // SAFETY: initialised just above.
            let mut ctx = unsafe { ctx.assume_init() };
            let iv = [ctx.h0, ctx.h1, ctx.h2, ctx.h3, ctx.h4];
            for _ in 0..times {
                [ctx.h0, ctx.h1, ctx.h2, ctx.h3, ctx.h4] = iv;
                // SAFETY: `ctx` is an initialised SHA_CTX and `block` is one 64-octet
                // block, which is what SHA1_Transform reads.
                unsafe { SHA1_Transform(&mut ctx, block.as_ptr()) };
                let h = [ctx.h0, ctx.h1, ctx.h2, ctx.h3, ctx.h4];
                for (out, w) in block[..n].chunks_exact_mut(4).zip(h) {
                    out.copy_from_slice(&w.to_be_bytes());
                }
            }
            key.copy_from_slice(&block[..n]);
            block.fill(0);
        }
        HashAlg::Sha224 | HashAlg::Sha256 => {
            let mut block = padded_block::<64>(key, 8);
            let mut ctx = std::mem::MaybeUninit::<ffi::SHA256_CTX>::zeroed();
            // SAFETY: as for SHA-1: the Init functions initialise the context.
            unsafe {
                if owf == HashAlg::Sha224 {
                    ffi::SHA224_Init(ctx.as_mut_ptr())
                } else {
                    ffi::SHA256_Init(ctx.as_mut_ptr())
                }
            };
            // SAFETY: initialised just above.
            let mut ctx = unsafe { ctx.assume_init() };
            let iv = ctx.h;
            for _ in 0..times {
                ctx.h = iv;
                // SAFETY: `ctx` is an initialised SHA256_CTX and `block` is one 64-octet
                // block, which is what SHA256_Transform reads.
                unsafe { SHA256_Transform(&mut ctx, block.as_ptr()) };
                for (out, w) in block[..n].chunks_exact_mut(4).zip(ctx.h) {
                    out.copy_from_slice(&w.to_be_bytes());
                }
            }
            key.copy_from_slice(&block[..n]);
            block.fill(0);
        }
        HashAlg::Sha384 | HashAlg::Sha512 => {
            let mut block = padded_block::<128>(key, 16);
            let mut ctx = std::mem::MaybeUninit::<ffi::SHA512_CTX>::zeroed();
            // SAFETY: as for SHA-1: the Init functions initialise the context.
            unsafe {
                if owf == HashAlg::Sha384 {
                    ffi::SHA384_Init(ctx.as_mut_ptr())
                } else {
                    ffi::SHA512_Init(ctx.as_mut_ptr())
                }
            };
            // SAFETY: initialised just above.
            let mut ctx = unsafe { ctx.assume_init() };
            let iv = ctx.h;
            for _ in 0..times {
                ctx.h = iv;
                // SAFETY: `ctx` is an initialised SHA512_CTX and `block` is one 128-octet
                // block, which is what SHA512_Transform reads.
                unsafe { SHA512_Transform(&mut ctx, block.as_ptr()) };
                for (out, w) in block[..n].chunks_exact_mut(8).zip(ctx.h) {
                    out.copy_from_slice(&w.to_be_bytes());
                }
            }
            key.copy_from_slice(&block[..n]);
            block.fill(0);
        }
    }
}

/// The single padded block of a message `m` shorter than a block: `m || 0x80 || 0…0 ||
/// the bit length of m` in a `len_octets` big-endian field at the end.
fn padded_block<const B: usize>(m: &[u8], len_octets: usize) -> [u8; B] {
    debug_assert!(m.len() < B - len_octets);
    let mut block = [0u8; B];
    block[..m.len()].copy_from_slice(m);
    block[m.len()] = 0x80;
    block[B - 8..].copy_from_slice(&(m.len() as u64 * 8).to_be_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(iterations: u64) -> Spec {
        Spec {
            salt: b"salt".to_vec(),
            owf: HashAlg::Sha256,
            iterations,
            mac: HashAlg::Sha1,
        }
    }

    #[test]
    fn iteration_count_is_the_total_number_of_owf_applications() {
        let once = openssl::sha::sha256(b"secretsalt");
        assert_eq!(spec(1).derive_key(b"secret").unwrap(), once);
        let twice = openssl::sha::sha256(&once);
        assert_eq!(spec(2).derive_key(b"secret").unwrap(), twice);
    }

    /// The low-level SHA loop gives what EVP gives, for every one-way function.
    #[test]
    fn every_owf_matches_the_evp_digest_loop() {
        for owf in HashAlg::ALL {
            let s = Spec { owf, ..spec(7) };
            let mut h = openssl::hash::Hasher::new(owf.md()).unwrap();
            h.update(b"secret").unwrap();
            h.update(b"salt").unwrap();
            let mut key = h.finish().unwrap().to_vec();
            for _ in 1..7 {
                key = openssl::hash::hash(owf.md(), &key).unwrap().to_vec();
            }
            assert_eq!(s.derive_key(b"secret").unwrap(), key, "{owf:?}");
        }
    }

    /// The compression-function loop gives what SHA*_Init/Update/Final give.
    #[test]
    fn compression_loop_matches_the_update_final_loop() {
        macro_rules! reference {
            ($hasher:ident, $times:expr) => {{
                let times: u64 = $times;
                let mut key = sha::$hasher::new();
                key.update(b"start");
                let mut key = key.finish();
                for _ in 0..times {
                    let mut h = sha::$hasher::new();
                    h.update(&key);
                    key = h.finish();
                }
                key.to_vec()
            }};
        }
        for times in [0u64, 1, 2, 500] {
            for owf in HashAlg::ALL {
                let (mut key, expected) = match owf {
                    HashAlg::Sha1 => (reference!(Sha1, 0), reference!(Sha1, times)),
                    HashAlg::Sha224 => (reference!(Sha224, 0), reference!(Sha224, times)),
                    HashAlg::Sha256 => (reference!(Sha256, 0), reference!(Sha256, times)),
                    HashAlg::Sha384 => (reference!(Sha384, 0), reference!(Sha384, times)),
                    HashAlg::Sha512 => (reference!(Sha512, 0), reference!(Sha512, times)),
                };
                iterate(owf, &mut key, times);
                assert_eq!(key, expected, "{owf:?} × {times}");
            }
        }
    }

    #[test]
    fn derivation_at_the_default_cap_takes_well_under_a_second() {
        let start = std::time::Instant::now();
        spec(MacLimits::default().max_iterations)
            .derive_key(b"secret")
            .unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
