//! What a transaction learned from the peer.

use crate::message::PeerStatus;

/// The outcome of a transaction as the peer stated it.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The peer's status for our request (from ip/cp/kup or an error message), if any.
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
}
