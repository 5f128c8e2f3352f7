//! What a transaction learned from the peer.

use crate::asn1::InfoTypeAndValue;
use crate::crypto::SecretBytes;
use crate::message::PeerStatus;
use std::time::Duration;

/// The outcome of a transaction as the peer stated it.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The peer's status for our request (from ip/cp/kup/rp or an error message), if any.
    pub status: Option<PeerStatus>,
    /// The newly issued certificate, DER.
    pub certificate: Option<Vec<u8>>,
    /// `caPubs` of the certificate response, DER each.
    pub ca_pubs: Vec<Vec<u8>>,
    /// `extraCerts` of the certificate response, DER each.
    pub extra_certs: Vec<Vec<u8>>,
    /// Whether the server granted implicit confirmation.
    pub implicit_confirm_granted: bool,
    /// `errorCode` of an error message.
    pub error_code: Option<i64>,
    /// `errorDetails` of an error message.
    pub error_details: Vec<String>,
    /// Whether the peer's verdict came in an unprotected message (diagnostics only).
    pub unprotected: bool,
    /// The transaction ID.
    pub transaction_id: Vec<u8>,
    /// The InfoTypeAndValues of a genp, as received (see the typed helpers in
    /// [`super::genm`] implemented on this type).
    pub genp: Vec<InfoTypeAndValue>,
    /// How many pollRep messages arrived (polling rounds).
    pub poll_rounds: u32,
    /// The sum of the `checkAfter` times of those pollReps.
    pub requested_wait: Duration,
    /// The `reason` texts of the last pollRep.
    pub poll_reasons: Vec<String>,
    /// The centrally generated private key of [`certificate`](Self::certificate), PKCS#8
    /// (`OneAsymmetricKey`) DER, decrypted and checked against the certificate (central key
    /// generation, RFC 9483 §4.1.6). Cleared from memory when dropped.
    pub private_key_pkcs8: Option<SecretBytes>,
    /// The certificate (DER) of the key generation authority that signed the delivered key,
    /// if it came signed.
    pub key_generation_authority: Option<Vec<u8>>,
    /// `keyPairHist` of a key recovery response (krp): the recovered certificates and keys.
    pub recovered_keys: Vec<RecoveredKey>,
}

/// One entry of a krp's `keyPairHist` (RFC 9810 §5.3.10).
#[derive(Clone, Debug, Default)]
pub struct RecoveredKey {
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// Its private key, PKCS#8 DER, decrypted and checked against the certificate; `None`
    /// if the entry carries no private key.
    pub private_key_pkcs8: Option<SecretBytes>,
}
