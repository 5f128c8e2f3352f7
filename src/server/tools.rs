//! Small building blocks around the [`Server`](super::Server): a [`CaHandler`] decorator that
//! makes clients poll ([`PollingCa`]) and a one-line description of a message for logs
//! ([`summarize`]).

use super::{CaHandler, CertRequestInfo, Decision, RevocationRequest};
use crate::asn1::{InfoTypeAndValue, PkiBody, PkiMessage};
use crate::message::PeerStatus;
use std::sync::Arc;

/// Wraps a [`CaHandler`]: every certificate request is answered "waiting" `polls` times
/// (the client polls, [`ServerConfig::check_after`](super::ServerConfig) seconds apart)
/// before the inner handler decides. Everything else goes straight to the inner handler.
pub struct PollingCa {
    inner: Arc<dyn CaHandler>,
    polls: u32,
}

impl PollingCa {
    /// `inner` decides after the client has polled `polls` times.
    pub fn new(inner: Arc<dyn CaHandler>, polls: u32) -> Self {
        PollingCa { inner, polls }
    }
}

impl std::fmt::Debug for PollingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingCa")
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

impl CaHandler for PollingCa {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        if req.polls < self.polls {
            Decision::Waiting
        } else {
            self.inner.certificate_request(req)
        }
    }

    fn cert_confirm(&self, transaction_id: &[u8], cert_der: &[u8], accepted: bool) {
        self.inner.cert_confirm(transaction_id, cert_der, accepted)
    }

    fn revoke(&self, req: &RevocationRequest) -> Result<(), super::Rejection> {
        self.inner.revoke(req)
    }

    fn general_message(
        &self,
        itavs: &[InfoTypeAndValue],
        requester: &super::Requester,
    ) -> Vec<InfoTypeAndValue> {
        self.inner.general_message(itavs, requester)
    }
}

/// A PKIMessage in a few words for a log line: the body type and, for answers, the status,
/// e.g. `ir`, `ip accepted`, `error rejection (failInfo: badPOP): "..."`, `pollRep waiting`.
/// Garbage gives `undecodable (N bytes)`.
pub fn summarize(der: &[u8]) -> String {
    let Ok(m) = crate::message::from_der_checked::<PkiMessage>(der) else {
        return format!("undecodable ({} bytes)", der.len());
    };
    let name = m.body.name();
    let status = match &m.body {
        PkiBody::Ip(r) | PkiBody::Cp(r) | PkiBody::Kup(r) | PkiBody::Ccp(r) => r
            .response
            .first()
            .map(|c| PeerStatus::from_status_info(&c.status).to_string()),
        PkiBody::Rp(r) => r
            .status
            .first()
            .map(|s| PeerStatus::from_status_info(s).to_string()),
        PkiBody::Error(e) => Some(PeerStatus::from_status_info(&e.pki_status_info).to_string()),
        PkiBody::PollRep(_) => Some("waiting".to_owned()),
        _ => None,
    };
    match status {
        Some(s) => format!("{name} {s}"),
        None => name.to_owned(),
    }
}
