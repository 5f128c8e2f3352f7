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
use der::asn1::{Any, OctetString};
use der::{Decode, Encode};
use openssl::sha;
use spki::AlgorithmIdentifierOwned;

/// Settings for producing PasswordBasedMac protection; each message gets a fresh salt.
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
        openssl::rand::rand_bytes(&mut salt)?;
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
        let p = PbmParameter::from_der(&params.to_der()?).map_err(|e| {
            crate::Error::new(ErrorCode::MalformedMessage, format!("PBMParameter: {e}"))
        })?;
        let iterations = int_to_u64(&p.iteration_count, "PBM iterationCount")?;
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

    /// The HMAC's hash.
    pub(crate) fn mac(&self) -> HashAlg {
        self.mac
    }

    /// BASEKEY = OWF^iterationCount(secret || salt).
    ///
    /// With OpenSSL's low-level SHA functions: through EVP, OpenSSL 3.0 re-fetches the
    /// digest implementation in every `EVP_DigestInit_ex` of an implicitly fetched digest,
    /// which made each of the (by default 10 000) iterations several times dearer than the
    /// hash itself.
    pub(crate) fn derive_key(&self, secret: &[u8]) -> Result<Vec<u8>> {
        macro_rules! iterate {
            ($hasher:ident) => {{
                let mut h = sha::$hasher::new();
                h.update(secret);
                h.update(&self.salt);
                let mut key = h.finish();
                for _ in 1..self.iterations {
                    // Not the one-shot sha::sha256(): OpenSSL 3 implements it with
                    // EVP_Q_digest, which fetches the digest every time.
                    let mut h = sha::$hasher::new();
                    h.update(&key);
                    key = h.finish();
                }
                let out = key.to_vec();
                key.iter_mut().for_each(|b| *b = 0);
                out
            }};
        }
        Ok(match self.owf {
            HashAlg::Sha1 => iterate!(Sha1),
            HashAlg::Sha224 => iterate!(Sha224),
            HashAlg::Sha256 => iterate!(Sha256),
            HashAlg::Sha384 => iterate!(Sha384),
            HashAlg::Sha512 => iterate!(Sha512),
        })
    }
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

    #[test]
    fn derivation_at_the_default_cap_takes_well_under_a_second() {
        let start = std::time::Instant::now();
        spec(MacLimits::default().max_iterations)
            .derive_key(b"secret")
            .unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
