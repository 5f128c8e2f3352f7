//! Client configuration: credentials, trust, and checks, shared by the transactions of a context.

use crate::crypto::{Decryptor, Signer, TrustStore};
use crate::error::{Error, ErrorCode, Result};
use crate::message::DEFAULT_MAX_MESSAGE_SIZE;
use crate::protection::{MacLimits, MacParams, MacProtection, Protection};
use openssl::x509::X509;
use std::sync::Arc;
use std::time::Duration;
use x509_cert::name::Name;

/// How the client authenticates its requests.
pub enum Credentials {
    /// A shared secret (PBM or PBMAC1) and its reference value, sent as senderKID.
    Mac {
        /// The secret and MAC parameters (a [`Protection::Mac`]).
        protection: Protection,
        /// The reference value identifying the secret to the server.
        reference: Vec<u8>,
    },
    /// A private key and its certificate (plus the chain to send in extraCerts).
    Signature {
        /// The signing key (a [`Protection::Signature`]).
        protection: Protection,
        /// Our protection certificate.
        cert: X509,
        /// Intermediate certificates sent after `cert` in extraCerts.
        chain: Vec<X509>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Mac { .. } => f.write_str("Credentials::Mac"),
            Credentials::Signature { .. } => f.write_str("Credentials::Signature"),
        }
    }
}

impl Credentials {
    /// Shared-secret credentials with the given MAC parameters.
    pub fn mac(secret: &[u8], reference: &[u8], params: MacParams) -> Self {
        Credentials::Mac {
            protection: Protection::Mac(MacProtection::new(secret.to_vec(), params)),
            reference: reference.to_vec(),
        }
    }

    /// Signature credentials: `key` signs, `cert` (and `chain`) go in extraCerts.
    pub fn signature(key: Arc<dyn Signer>, cert: X509, chain: Vec<X509>) -> Self {
        Credentials::Signature {
            protection: Protection::Signature(key),
            cert,
            chain,
        }
    }

    /// The protection to apply to our requests.
    pub(crate) fn protection(&self) -> &Protection {
        match self {
            Credentials::Mac { protection, .. } | Credentials::Signature { protection, .. } => {
                protection
            }
        }
    }

    /// The shared secret's protection settings, if these are MAC credentials.
    pub(crate) fn mac_protection(&self) -> Option<&MacProtection> {
        match self.protection() {
            Protection::Mac(m) => Some(m),
            Protection::Signature(_) => None,
        }
    }
}

/// Everything a client transaction needs besides the request itself.
#[derive(Debug)]
pub struct ClientConfig {
    /// How requests are protected.
    pub credentials: Option<Credentials>,
    /// Where to log the transaction's steps and failures (none by default).
    pub log: Option<crate::log::Logger>,
    /// Trust anchors for signed responses.
    pub trust: Option<TrustStore>,
    /// Intermediate certificates that may complete the server's chain.
    pub untrusted: Vec<X509>,
    /// If set, signed responses must come from exactly this certificate (pinning).
    pub server_cert: Option<X509>,
    /// The recipient name put in requests (default: the NULL-DN, or our certificate's issuer).
    pub recipient: Option<Name>,
    /// Ask the server for implicit confirmation (no certConf/pkiConf round trip).
    pub implicit_confirm: bool,
    /// Caps on MAC parameters of responses.
    pub mac_limits: MacLimits,
    /// Largest response accepted, in bytes.
    pub max_message_size: usize,
    /// Report the content of unprotected error responses as the peer's diagnostics (they are
    /// never taken as success; without this they fail as [`ErrorCode::ProtectionMissing`]).
    pub unprotected_errors: bool,
    /// If set, a response whose messageTime differs from our clock by more than this fails
    /// with [`ErrorCode::BadMessageTime`] (responses without messageTime are accepted).
    pub message_time_tolerance: Option<Duration>,
    /// Require the signer certificate of signed responses to carry the extended key usage
    /// `id-kp-cmcCA` or `id-kp-cmcRA` (RFC 9483 §3.1); else [`ErrorCode::MissingCmcEku`].
    pub require_cmc_eku: bool,
    /// How long [`execute`](super::execute) keeps polling (the sum of the waits the server
    /// asks for, and the time spent) before giving up with [`ErrorCode::PollingTimeout`].
    pub polling_deadline: Duration,
    /// Decrypts private keys the server delivers (central key generation, key recovery) from
    /// key transport and key agreement recipient infos: usually the key of our CMP protection
    /// certificate ([`SoftwareDecryptor`](crate::crypto::SoftwareDecryptor), or an HSM's).
    /// Password recipient infos are decrypted with the MAC credentials' shared secret.
    pub decryptor: Option<Arc<dyn Decryptor>>,
}

/// The default [`ClientConfig::polling_deadline`]: 5 minutes.
pub const DEFAULT_POLLING_DEADLINE: Duration = Duration::from_secs(300);

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            credentials: None,
            log: None,
            trust: None,
            untrusted: Vec::new(),
            server_cert: None,
            recipient: None,
            implicit_confirm: false,
            mac_limits: MacLimits::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            unprotected_errors: false,
            message_time_tolerance: None,
            require_cmc_eku: false,
            polling_deadline: DEFAULT_POLLING_DEADLINE,
            decryptor: None,
        }
    }
}

impl ClientConfig {
    /// The credentials, or a [`ErrorCode::MissingConfig`] error.
    pub(crate) fn credentials(&self) -> Result<&Credentials> {
        self.credentials.as_ref().ok_or_else(|| {
            Error::new(
                ErrorCode::MissingConfig,
                "no credentials: set a shared secret and reference, or a key and certificate",
            )
        })
    }
}
