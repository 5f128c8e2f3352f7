//! Keys and certificates: the signing-key interface (software keys through OpenSSL, or the
//! caller's own through [`Signer`]), signature verification, and certificate helpers.

pub mod cert;
mod key;

pub use cert::TrustStore;
pub use key::{verify_signature, KeyType, SigAlg, Signer, SoftwareKey};
