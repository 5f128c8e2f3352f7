//! PBMAC1 with PBKDF2 (RFC 8018 §7.1, RFC 9481 §6.1.3).
//!
//! The MAC key is `PBKDF2(prf, secret, salt, iterationCount, keyLength)`; the MAC is the
//! `messageAuthScheme` HMAC with that key over the DER of `ProtectedPart`.
//!
//! `keyLength` is in octets (RFC 8018). Some implementations (the LightweightCmpRa flows,
//! which use Bouncy Castle) write the length in bits, e.g. 4096 for what they derive as a
//! 512-octet key. Verification therefore also tries `keyLength / 8` when the octet reading
//! does not verify (or exceeds [`MAX_KEY_LEN`]); producing always writes octets.

use super::{check_iterations, check_salt, int_to_u64, u64_to_int, HashAlg, MacLimits};
use crate::asn1::{oid, Pbkdf2Params, Pbmac1Params};
use crate::error::{fail, Error, ErrorCode, Result};
use der::asn1::{Any, IntRef, OctetString, OctetStringRef};
use der::Sequence;
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef};

/// The largest PBKDF2 derived key accepted, in octets; 512 admits the bit-length quirk
/// (keyLength 4096). The work is bounded separately by [`MacLimits::max_pbkdf2_work`].
pub const MAX_KEY_LEN: usize = 512;

/// Settings for producing PBMAC1 protection: a fresh salt for each message, or for each
/// transaction with [`protect_in_transaction`](super::protect_in_transaction).
///
/// The default is PBKDF2 with hmacWithSHA256, 10 000 iterations, a 16-octet salt, a
/// 32-octet key, and HMAC-SHA256 as MAC: RFC 9481 §6.1.3 lists hmacWithSHA256 for both;
/// RFC 8018 asks for at least 1 000 iterations, 10 000 is what LightweightCmpRa uses, and
/// 32 octets is the HMAC-SHA256 output length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pbmac1Config {
    /// The PBKDF2 pseudo-random function (hmacWithSHA*).
    pub prf: HashAlg,
    /// PBKDF2 iteration count (≥ 1).
    pub iterations: u32,
    /// The hash of the HMAC computed with the derived key.
    pub mac: HashAlg,
    /// Length of the random salt in octets (1..=256).
    pub salt_len: usize,
    /// Length of the derived key in octets (1..=[`MAX_KEY_LEN`]).
    pub key_len: usize,
}

impl Default for Pbmac1Config {
    fn default() -> Self {
        Pbmac1Config {
            prf: HashAlg::Sha256,
            iterations: 10_000,
            mac: HashAlg::Sha256,
            salt_len: 16,
            key_len: 32,
        }
    }
}

impl Pbmac1Config {
    /// A protectionAlg for these settings with a fresh random salt.
    pub fn algorithm_identifier(&self) -> Result<AlgorithmIdentifierOwned> {
        let mut salt = vec![0u8; self.salt_len];
        check_salt(&salt)?;
        if self.iterations < 1 {
            return fail(
                ErrorCode::BadMacParameters,
                "PBKDF2 iteration count must be ≥ 1",
            );
        }
        if !(1..=MAX_KEY_LEN).contains(&self.key_len) {
            return fail(
                ErrorCode::BadMacParameters,
                format!(
                    "PBKDF2 key length {} is outside 1..={MAX_KEY_LEN}",
                    self.key_len
                ),
            );
        }
        crate::crypto::random::fill_public(&mut salt)?;
        let kdf = Pbkdf2Params {
            salt: OctetString::new(salt)?,
            iteration_count: u64_to_int(self.iterations.into())?,
            key_length: Some(u64_to_int(self.key_len as u64)?),
            prf: Some(AlgorithmIdentifierOwned {
                oid: self.prf.hmac_oid(),
                parameters: Some(Any::null()),
            }),
        };
        let params = Pbmac1Params {
            key_derivation_func: AlgorithmIdentifierOwned {
                oid: oid::PBKDF2,
                parameters: Some(Any::encode_from(&kdf)?),
            },
            message_auth_scheme: AlgorithmIdentifierOwned {
                oid: self.mac.hmac_oid(),
                parameters: Some(Any::null()),
            },
        };
        Ok(AlgorithmIdentifierOwned {
            oid: oid::PBMAC1,
            parameters: Some(Any::encode_from(&params)?),
        })
    }
}

/// [`Pbmac1Params`] as it is read from a message: borrowed, without allocations.
#[derive(Sequence)]
struct Pbmac1ParamsRef<'a> {
    key_derivation_func: AlgorithmIdentifierRef<'a>,
    message_auth_scheme: AlgorithmIdentifierRef<'a>,
}

/// [`Pbkdf2Params`] as it is read from a message: borrowed, without allocations.
#[derive(Sequence)]
struct Pbkdf2ParamsRef<'a> {
    salt: OctetStringRef<'a>,
    iteration_count: IntRef<'a>,
    key_length: Option<IntRef<'a>>,
    prf: Option<AlgorithmIdentifierRef<'a>>,
}

/// PBMAC1 parameters read from a message and checked against the limits.
#[derive(Debug)]
pub(crate) struct Spec {
    salt: Vec<u8>,
    iterations: u64,
    prf: HashAlg,
    mac: HashAlg,
    /// The derived key lengths to try, in order (octets; then the bit-length reading).
    key_lens: Vec<usize>,
}

impl Spec {
    /// Read and check `params` (the AlgorithmIdentifier's parameters). No hashing is done.
    pub(crate) fn parse(params: Option<&Any>, limits: &MacLimits) -> Result<Spec> {
        let Some(params) = params else {
            return fail(
                ErrorCode::MalformedMessage,
                "PBMAC1 protectionAlg has no parameters",
            );
        };
        let p = params
            .decode_as::<Pbmac1ParamsRef<'_>>()
            .map_err(|e| Error::new(ErrorCode::MalformedMessage, format!("PBMAC1-params: {e}")))?;
        if p.key_derivation_func.oid != oid::PBKDF2 {
            return fail(
                ErrorCode::UnsupportedAlgorithm,
                format!(
                    "PBMAC1 key derivation function {} is not supported (only PBKDF2)",
                    p.key_derivation_func.oid
                ),
            );
        }
        let kdf_params = p.key_derivation_func.parameters.ok_or_else(|| {
            Error::new(ErrorCode::MalformedMessage, "PBKDF2 without PBKDF2-params")
        })?;
        let kdf = kdf_params
            .decode_as::<Pbkdf2ParamsRef<'_>>()
            .map_err(|e| Error::new(ErrorCode::MalformedMessage, format!("PBKDF2-params: {e}")))?;
        let iterations = int_to_u64(kdf.iteration_count.as_bytes(), "PBKDF2 iterationCount")?;
        check_iterations(iterations, limits, "PBKDF2")?;
        check_salt(kdf.salt.as_bytes())?;
        // RFC 8018: the PRF defaults to hmacWithSHA1.
        let prf = match &kdf.prf {
            None => HashAlg::Sha1,
            Some(a) => HashAlg::from_hmac_oid(&a.oid).ok_or_else(|| {
                Error::new(
                    ErrorCode::UnsupportedAlgorithm,
                    format!("PBKDF2 PRF {} is not supported", a.oid),
                )
            })?,
        };
        let mac = HashAlg::from_hmac_oid(&p.message_auth_scheme.oid).ok_or_else(|| {
            Error::new(
                ErrorCode::UnsupportedAlgorithm,
                format!("PBMAC1 MAC {} is not supported", p.message_auth_scheme.oid),
            )
        })?;
        let key_lens = match &kdf.key_length {
            None => vec![mac.output_len()],
            Some(k) => {
                let k = int_to_u64(k.as_bytes(), "PBKDF2 keyLength")?;
                let fits = |n: u64| n >= 1 && n <= MAX_KEY_LEN as u64;
                let mut v = Vec::new();
                if fits(k) {
                    v.push(k as usize);
                }
                if k % 8 == 0 && fits(k / 8) {
                    v.push((k / 8) as usize);
                }
                if v.is_empty() {
                    return fail(
                        ErrorCode::BadMacParameters,
                        format!(
                            "PBKDF2 keyLength {k} is outside 1..={MAX_KEY_LEN} octets \
                             (also when read as bits)"
                        ),
                    );
                }
                v
            }
        };
        // Bound the PBKDF2 work of each reading of keyLength; drop readings beyond the cap.
        let work = |len: usize| iterations.saturating_mul(len.div_ceil(prf.output_len()) as u64);
        let first_work = work(key_lens[0]);
        let key_lens: Vec<usize> = key_lens
            .into_iter()
            .filter(|&len| work(len) <= limits.max_pbkdf2_work)
            .collect();
        if key_lens.is_empty() {
            return fail(
                ErrorCode::IterationCountTooHigh,
                format!(
                    "PBKDF2 work (iterationCount {iterations} × output blocks) {first_work} \
                     exceeds the cap of {}",
                    limits.max_pbkdf2_work
                ),
            );
        }
        Ok(Spec {
            salt: kdf.salt.as_bytes().to_vec(),
            iterations,
            prf,
            mac,
            key_lens,
        })
    }

    /// The HMAC's hash.
    pub(crate) fn mac(&self) -> HashAlg {
        self.mac
    }

    /// The derived key lengths to try when verifying, in order of preference.
    pub(crate) fn key_lens(&self) -> &[usize] {
        &self.key_lens
    }

    /// PBKDF2(prf, secret, salt, iterations, key_len).
    pub(crate) fn derive_key(&self, secret: &[u8], key_len: usize) -> Result<Vec<u8>> {
        let iterations = usize::try_from(self.iterations).map_err(|_| {
            Error::new(
                ErrorCode::IterationCountTooHigh,
                "iteration count exceeds usize",
            )
        })?;
        let mut key = vec![0u8; key_len];
        openssl::pkcs5::pbkdf2_hmac(secret, &self.salt, iterations, self.prf.md(), &mut key)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc6070_sha1_vector() {
        let spec = Spec {
            salt: b"salt".to_vec(),
            iterations: 2,
            prf: HashAlg::Sha1,
            mac: HashAlg::Sha1,
            key_lens: vec![20],
        };
        let key = spec.derive_key(b"password", 20).unwrap();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
    }

    fn alg(key_len: u64, iterations: u64) -> Any {
        let kdf = Pbkdf2Params {
            salt: OctetString::new(vec![1u8; 16]).unwrap(),
            iteration_count: u64_to_int(iterations).unwrap(),
            key_length: Some(u64_to_int(key_len).unwrap()),
            prf: None,
        };
        let p = Pbmac1Params {
            key_derivation_func: AlgorithmIdentifierOwned {
                oid: oid::PBKDF2,
                parameters: Some(Any::encode_from(&kdf).unwrap()),
            },
            message_auth_scheme: AlgorithmIdentifierOwned {
                oid: oid::HMAC_WITH_SHA256,
                parameters: None,
            },
        };
        Any::encode_from(&p).unwrap()
    }

    fn key_lens(key_len: u64) -> Vec<usize> {
        Spec::parse(Some(&alg(key_len, 1000)), &MacLimits::default())
            .unwrap()
            .key_lens
    }

    #[test]
    fn key_length_is_read_as_octets_then_as_bits() {
        assert_eq!(key_lens(32), [32, 4]);
        assert_eq!(key_lens(20), [20]);
        assert_eq!(key_lens(4096), [512]);
        let err = Spec::parse(Some(&alg(8192, 1000)), &MacLimits::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMacParameters);
        // The default PRF is hmacWithSHA1 (RFC 8018).
        let s = Spec::parse(Some(&alg(32, 1000)), &MacLimits::default()).unwrap();
        assert_eq!(s.prf, HashAlg::Sha1);
    }

    #[test]
    fn pbkdf2_work_beyond_the_cap_is_refused_or_that_reading_dropped() {
        let limits = MacLimits::default();
        // 100 000 iterations × 25 SHA-1 blocks for 500 octets (no bit reading): too much work.
        let start = std::time::Instant::now();
        let err = Spec::parse(Some(&alg(500, 100_000)), &limits).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
        assert!(err.detail.contains("400000"), "{}", err.detail);
        // 256 octets (13 blocks) is too much, its bit reading (32 octets, 2 blocks) is not.
        let s = Spec::parse(Some(&alg(256, 100_000)), &limits).unwrap();
        assert_eq!(s.key_lens, [32]);
    }
}
