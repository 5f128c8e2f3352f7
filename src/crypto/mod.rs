//! Keys and certificates: the signing-key interface (software keys through OpenSSL, or the
//! caller's own through [`Signer`]), signature verification, and certificate helpers.

pub mod cert;
pub mod decrypt;
mod key;
mod pubkey;
pub(crate) mod random;

pub use cert::{TrustStore, ValidatedCert};
pub use decrypt::{Decryptor, SecretBytes, SoftwareDecryptor};
pub use key::{
    verify_signature, verify_signature_parts, KeyType, SigAlg, Signer, SoftwareKey, VerifyingKey,
};
pub(crate) use key::{Digest, HashAlg};
pub use pubkey::public_key_from_der;
