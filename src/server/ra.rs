//! RA mode: a PKI management entity (RFC 9483 §5) between end entities and a CA, sans-IO
//! towards the EE ([`Ra::process`] takes a request's DER and returns the response's DER) and a
//! client towards the CA (through a [`Transfer`]).
//!
//! [`Ra::process`] checks an EE's message with the [`Server`] machinery (size, DER, pvno,
//! MAC or signature protection, transactionID, senderNonce, messageTime, POP; the table is in
//! the [`server`](super) module docs), asks the [`RaPolicy`] about certificate requests, then
//! forwards the message upstream (RFC 9483 §5.2):
//!
//! - [`ForwardMode::Reprotect`] (RFC 9483 §5.2.3): the same header and body, protected with the
//!   RA's credentials. transactionID, senderNonce and recipNonce are kept (§5.2.3), so the
//!   nonces run end to end between EE and CA; the sender becomes the RA, the RA's certificate
//!   (and chain) go first in extraCerts, followed by the EE's extraCerts.
//! - [`ForwardMode::Nested`] (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2.1): a nested message whose
//!   body holds the EE's message unchanged, with the inner transactionID, senderNonce and
//!   recipNonce copied into its header, signed by the RA.
//!
//! A policy that modifies a template (RFC 9483 §5.2.3.2) always leads to re-protection: the
//! RA has verified the POP, changes the template and replaces the POP by `raVerified`; the
//! original protection cannot be kept (so it is refused for kur and p10cr, whose original
//! protection or signature must stay intact). A policy rejection is answered by the RA
//! itself, in the ip/cp/kup with status rejection (as the server answers a CA's rejection),
//! and nothing reaches the CA.
//!
//! certConf/pkiConf, pollReq/pollRep, rr/rp, genm/genp and error messages are relayed the same
//! way. The RA keeps no per-transaction state: every message is forwarded on its own.
//!
//! The upstream answer is checked before anything reaches the EE: DER, protection (MAC with
//! the RA's secret, or a signature validating against [`Upstream::trust`], its sender being
//! the signer), transactionID and recipNonce (the senderNonce forwarded); a nested answer is
//! unwrapped (exactly one inner message, not nested again, a signed one verified the same
//! way). A failed check gives the EE an error message with failInfo `systemFailure` and a
//! statusString starting "upstream response check": `badMessageCheck` would tell the EE
//! that *its* request failed the integrity check, while the fault lies between RA and CA
//! (RFC 9810 §5.2.3: systemFailure, "the request cannot be handled due to system failure").
//! An upstream that cannot be reached gives `systemUnavail`.
//!
//! The answer towards the EE keeps the upstream header's transactionID, senderNonce and
//! recipNonce (RFC 9483 §5.2.3) and is
//! - relayed unchanged when the EE used MAC protection and the answer verifies with the EE's
//!   secret (the CA knows it), or when the EE signed and the RA has no downstream signer;
//! - else re-protected: with the EE's secret and exactly its MAC parameters (the EE used a
//!   MAC), or signed with the RA's downstream signer ([`ServerConfig::signer`]).
//!
//! When the policy modified the request, the re-protected answer's status `accepted` becomes
//! `grantedWithMods` (RFC 9810 §5.2.3: "you got something like what you requested; the
//! requester is responsible for ascertaining the differences"); the CA itself granted what
//! it was asked for.

use super::{
    internal, Auth, Authenticated, CaHandler, CertRequestInfo, Checked, Decision, Failure,
    MemoryStore, Rejection, RequestKind, Requester, RevocationRequest, Server, ServerConfig,
};
use crate::asn1::{
    CertRepMessage, CertReqMsg, CertResponse, CertTemplate, InfoTypeAndValue, PkiBody, PkiHeader,
    PkiMessage, PkiStatusInfo,
};
use crate::asn1::{CmpCertificate, CmpName};
use crate::client::{Credentials, Transfer};
use crate::crypto::TrustStore;
use crate::error::{Error, ErrorCode};
use crate::message::{self, fail_info as fi, PkiStatus};
use crate::protection::{self, Protection, ProtectionKind};
use crmf::pop::ProofOfPossession;
use der::asn1::Null;
use der::{Decode, Encode};
use openssl::x509::X509;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// How the RA forwards requests upstream (RFC 9483 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// Replace the protection by the RA's own (RFC 9483 §5.2.3), keeping transactionID and
    /// nonces.
    Reprotect,
    /// Wrap the original message, unchanged, in a nested message signed by the RA (RFC 9810
    /// §5.1.3.4, RFC 9483 §5.2.2.1). Needs signature credentials.
    Nested,
}

/// The RA's verdict on a certificate request.
#[derive(Clone, Debug)]
pub enum PolicyDecision {
    /// Forward the request as it is.
    Approve,
    /// Forward the request with this template instead (same public key), POP `raVerified`
    /// (RFC 9483 §5.2.3.2). Only for ir, cr and ccr.
    Modify(Box<CertTemplate>),
    /// Refuse: the EE gets a rejection with these failInfo bits and text; nothing is sent
    /// upstream.
    Reject(Rejection),
}

/// The RA's registration policy, asked about every authenticated certificate request whose
/// POP verified. Called from several threads at once.
pub trait RaPolicy: Send + Sync {
    /// Decide on `req` (its `template` is the CRMF template; `csr` for p10cr).
    fn check(&self, req: &CertRequestInfo) -> PolicyDecision;
}

impl<F> RaPolicy for F
where
    F: Fn(&CertRequestInfo) -> PolicyDecision + Send + Sync,
{
    fn check(&self, req: &CertRequestInfo) -> PolicyDecision {
        self(req)
    }
}

/// A policy approving every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApproveAll;

impl RaPolicy for ApproveAll {
    fn check(&self, _: &CertRequestInfo) -> PolicyDecision {
        PolicyDecision::Approve
    }
}

/// The RA's side towards the CA.
pub struct Upstream {
    /// How the RA protects what it forwards: normally its RA key and certificate
    /// ([`Credentials::signature`]); MAC credentials only with [`ForwardMode::Reprotect`].
    pub credentials: Credentials,
    /// Trust anchors for the upstream's signed answers.
    pub trust: Option<TrustStore>,
    /// Intermediate certificates that may complete the upstream signer's chain.
    pub untrusted: Vec<X509>,
    /// Re-protection or nesting.
    pub mode: ForwardMode,
    /// Largest upstream answer accepted, in bytes.
    pub max_message_size: usize,
}

/// The RA's settings.
pub struct RaConfig {
    /// Towards the EEs, as for a [`Server`]: secrets for MAC-protected requests, trust anchors
    /// for signed ones, the signer for signed answers, MAC limits, size cap, clock skew.
    /// [`grant_implicit_confirm`](ServerConfig::grant_implicit_confirm),
    /// [`check_after`](ServerConfig::check_after) and the transaction timeout are the CA's
    /// business and not used.
    pub downstream: ServerConfig,
    /// Towards the CA.
    pub upstream: Upstream,
}

/// The handler of the inner [`Server`]: never asked, the RA only uses the server's checks.
struct NoCa;

impl CaHandler for NoCa {
    fn certificate_request(&self, _: &CertRequestInfo) -> Decision {
        Decision::Reject(Rejection::new(fi::SYSTEM_FAILURE, "not a CA"))
    }
    fn cert_confirm(&self, _: &[u8], _: &[u8], _: bool) {}
    fn revoke(&self, _: &RevocationRequest) -> Result<(), Rejection> {
        Err(Rejection::new(fi::SYSTEM_FAILURE, "not a CA"))
    }
    fn general_message(&self, _: &[InfoTypeAndValue], _: &Requester) -> Vec<InfoTypeAndValue> {
        Vec::new()
    }
}

/// The RA's upstream identity, parsed once.
struct UpstreamIdentity {
    sender: CmpName,
    sender_kid: Option<Vec<u8>>,
    extra: Vec<CmpCertificate>,
}

/// A registration authority: a [`Server`] towards the EEs, a client towards the CA.
/// `Send + Sync`; [`process`](Self::process) may be called from several threads, the upstream
/// exchanges being serialized on the transfer.
pub struct Ra {
    server: Server,
    upstream: Upstream,
    identity: UpstreamIdentity,
    policy: Arc<dyn RaPolicy>,
    transfer: Mutex<Box<dyn Transfer + Send>>,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ra")
            .field("mode", &self.upstream.mode)
            .field("downstream", &self.server)
            .finish_non_exhaustive()
    }
}

/// The answer from upstream, checked.
struct UpstreamAnswer {
    msg: PkiMessage,
    /// Its DER (the inner message's, if it came nested).
    der: Vec<u8>,
}

impl Ra {
    /// An RA with `config`, deciding with `policy`, reaching the CA through `transfer`.
    ///
    /// Fails with [`ErrorCode::InvalidArgument`] for [`ForwardMode::Nested`] with MAC
    /// credentials (RFC 9483 §5.2.2.1: the RA signs), or if certificates cannot be read.
    pub fn new(
        config: RaConfig,
        policy: Arc<dyn RaPolicy>,
        transfer: Box<dyn Transfer + Send>,
    ) -> crate::Result<Self> {
        let identity = match &config.upstream.credentials {
            Credentials::Signature { cert, chain, .. } => {
                let id = message::SignerIdentity::new(cert, chain)?;
                UpstreamIdentity {
                    sender: id.sender,
                    sender_kid: id.ski,
                    extra: id.extra,
                }
            }
            Credentials::Mac { reference, .. } => {
                if config.upstream.mode == ForwardMode::Nested {
                    return Err(Error::new(
                        ErrorCode::InvalidArgument,
                        "nested forwarding needs signature credentials (RFC 9483 §5.2.2.1)",
                    ));
                }
                UpstreamIdentity {
                    sender: CmpName::null_dn(),
                    sender_kid: Some(reference.clone()),
                    extra: Vec::new(),
                }
            }
        };
        let server = Server::new(
            config.downstream,
            Arc::new(NoCa),
            Arc::new(MemoryStore::new()),
        )?;
        Ok(Ra {
            server,
            upstream: config.upstream,
            identity,
            policy,
            transfer: Mutex::new(transfer),
        })
    }

    /// The downstream settings.
    pub fn config(&self) -> &ServerConfig {
        self.server.config()
    }

    /// Process one request from an EE (DER) and return the answer for it (DER). Never
    /// panics; every failure becomes a CMP error message.
    pub fn process(&self, request: &[u8]) -> Vec<u8> {
        match catch_unwind(AssertUnwindSafe(|| self.process_checked(request))) {
            Ok(rsp) => rsp,
            Err(_) => self.server.error_response(
                None,
                &Auth::None,
                Failure::new(
                    fi::SYSTEM_FAILURE,
                    "internal error while relaying the request",
                ),
            ),
        }
    }

    fn process_checked(&self, bytes: &[u8]) -> Vec<u8> {
        self.server
            .check_then(bytes, |msg, bytes, a| self.relay(msg, bytes, a))
    }

    /// Check, apply the policy, forward, check the answer and answer the EE.
    fn relay(&self, msg: &PkiMessage, bytes: &[u8], a: &Authenticated) -> Checked<Vec<u8>> {
        let s = &self.server;
        let tid = s.check_header(msg)?;
        let kind = match &msg.body {
            PkiBody::Ir(_) => Some(RequestKind::Ir),
            PkiBody::Cr(_) => Some(RequestKind::Cr),
            PkiBody::Kur(_) => Some(RequestKind::Kur),
            PkiBody::Ccr(_) => Some(RequestKind::Ccr),
            PkiBody::Krr(_) => Some(RequestKind::Krr),
            PkiBody::P10cr(_) => Some(RequestKind::P10cr),
            PkiBody::CertConf(_)
            | PkiBody::PollReq(_)
            | PkiBody::Rr(_)
            | PkiBody::Genm(_)
            | PkiBody::Error(_) => None,
            other => {
                return Err(Failure::new(
                    fi::BAD_REQUEST,
                    format!(
                        "body check: {} is not a request this RA forwards",
                        other.name()
                    ),
                ))
            }
        };
        let mut new_body = None;
        if let Some(kind) = kind {
            let info = s.request_info(kind, msg, tid, a, 0)?;
            let crm = match &msg.body {
                PkiBody::Ir(m)
                | PkiBody::Cr(m)
                | PkiBody::Kur(m)
                | PkiBody::Ccr(m)
                | PkiBody::Krr(m) => {
                    // request_info checked there is exactly one.
                    let crm = &m[0];
                    s.check_pop(crm, &info, a, bytes)?;
                    Some(crm)
                }
                _ => {
                    s.check_csr_signature(msg)?;
                    None
                }
            };
            let decision = catch_unwind(AssertUnwindSafe(|| self.policy.check(&info)))
                .map_err(|_| Failure::new(fi::SYSTEM_FAILURE, "the RA policy failed"))?;
            match decision {
                PolicyDecision::Approve => {}
                PolicyDecision::Reject(r) => return self.reject(kind, &info, msg, a, r),
                PolicyDecision::Modify(t) => {
                    new_body = Some(modified_body(kind, crm, *t, &info)?);
                }
            }
        }
        let modified = new_body.is_some();
        let upstream_request = match (self.upstream.mode, new_body) {
            (ForwardMode::Nested, None) => self.nest(msg, bytes),
            (_, body) => self.reprotect_request(msg, body),
        }
        .map_err(|e| internal("protecting the upstream request", e.detail))?;
        let answer = {
            let mut t = self.transfer.lock().unwrap_or_else(|e| e.into_inner());
            t.transfer(&upstream_request)
        }
        .map_err(|e| {
            Failure::new(
                fi::SYSTEM_UNAVAIL,
                format!("upstream transfer: {}", e.detail),
            )
        })?;
        let answer = self
            .check_answer(&answer, msg)
            .map_err(|f| Failure::new(f.bit, format!("upstream response check: {}", f.text)))?;
        self.answer_downstream(answer, a, modified)
    }

    /// Answer a policy rejection in the certificate response (status rejection).
    fn reject(
        &self,
        kind: RequestKind,
        info: &CertRequestInfo,
        msg: &PkiMessage,
        a: &Authenticated,
        r: Rejection,
    ) -> Checked<Vec<u8>> {
        let rep = CertRepMessage {
            ca_pubs: None,
            response: vec![CertResponse {
                cert_req_id: der::asn1::Int::try_from(info.cert_req_id)
                    .map_err(|e| internal("certReqId", e))?,
                status: PkiStatusInfo {
                    status: PkiStatus::Rejection as u8,
                    status_string: Some(vec![r.text.clone()]),
                    fail_info: Some(
                        message::fail_info_bit_string(r.fail_info)
                            .map_err(|e| internal("failInfo", e.detail))?,
                    ),
                },
                certified_key_pair: None,
                rsp_info: None,
            }],
        };
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        self.server
            .response(msg, &a.auth, kind.response(rep), None, nonce, Vec::new())
    }

    /// The protection of upstream requests.
    fn upstream_protection(&self) -> &Protection {
        self.upstream.credentials.protection()
    }

    /// RFC 9483 §5.2.3: the same message (or `body`), protected by the RA; transactionID,
    /// senderNonce, recipNonce and generalInfo kept; the RA's certificates first in extraCerts.
    fn reprotect_request(&self, msg: &PkiMessage, body: Option<PkiBody>) -> crate::Result<Vec<u8>> {
        let mut header = msg.header.clone();
        header.sender = self.identity.sender.clone();
        header.sender_kid = self
            .identity
            .sender_kid
            .as_deref()
            .map(message::octet_string)
            .transpose()?;
        header.protection_alg = None;
        header.message_time = Some(message::now()?);
        let mut extra = self.identity.extra.clone();
        for c in msg.extra_certs.iter().flatten() {
            if !extra.contains(c) {
                extra.push(c.clone());
            }
        }
        let mut out = PkiMessage {
            header,
            body: body.unwrap_or_else(|| msg.body.clone()),
            protection: None,
            extra_certs: (!extra.is_empty()).then_some(extra),
        };
        protection::protect(&mut out, self.upstream_protection())?;
        Ok(out.to_der()?)
    }

    /// RFC 9810 §5.1.3.4, RFC 9483 §5.2.2.1: a nested message holding the original unchanged,
    /// its transactionID, senderNonce and recipNonce copied, signed by the RA.
    fn nest(&self, msg: &PkiMessage, bytes: &[u8]) -> crate::Result<Vec<u8>> {
        let h = &msg.header;
        let header = PkiHeader {
            pvno: h.pvno,
            sender: self.identity.sender.clone(),
            recipient: h.recipient.clone(),
            message_time: Some(message::now()?),
            protection_alg: None,
            sender_kid: self
                .identity
                .sender_kid
                .as_deref()
                .map(message::octet_string)
                .transpose()?,
            recip_kid: None,
            transaction_id: h.transaction_id.clone(),
            sender_nonce: h.sender_nonce.clone(),
            recip_nonce: h.recip_nonce.clone(),
            free_text: None,
            general_info: None,
        };
        let mut out = PkiMessage {
            header,
            body: PkiBody::Nested(vec![der::Any::from_der(bytes)?]),
            protection: None,
            extra_certs: Some(self.identity.extra.clone()),
        };
        protection::protect(&mut out, self.upstream_protection())?;
        Ok(out.to_der()?)
    }

    /// Check the upstream answer to our forwarding of `req`; unwrap it if nested.
    fn check_answer(&self, bytes: &[u8], req: &PkiMessage) -> Checked<UpstreamAnswer> {
        let msg = message::decode(bytes, self.upstream.max_message_size)
            .map_err(|e| Failure::new(fi::SYSTEM_FAILURE, e.detail))?;
        self.verify_upstream(&msg)?;
        let (msg, der) = match &msg.body {
            PkiBody::Nested(inner) => {
                let [one] = inner.as_slice() else {
                    return Err(Failure::new(
                        fi::SYSTEM_FAILURE,
                        format!(
                            "a nested answer with {} messages; one was expected",
                            inner.len()
                        ),
                    ));
                };
                let der = one.to_der().map_err(|e| internal("inner answer", e))?;
                let m = message::decode(&der, self.upstream.max_message_size)
                    .map_err(|e| Failure::new(fi::SYSTEM_FAILURE, e.detail))?;
                if matches!(m.body, PkiBody::Nested(_)) {
                    return Err(Failure::new(
                        fi::SYSTEM_FAILURE,
                        "a nested answer inside a nested answer",
                    ));
                }
                if protection::protection_kind(&m) == Some(ProtectionKind::Signature) {
                    self.verify_upstream(&m)?;
                }
                (m, der)
            }
            _ => (msg, bytes.to_vec()),
        };
        if msg.header.transaction_id != req.header.transaction_id {
            return Err(Failure::new(
                fi::SYSTEM_FAILURE,
                "the transactionID is not the request's",
            ));
        }
        if msg.header.recip_nonce != req.header.sender_nonce {
            return Err(Failure::new(
                fi::SYSTEM_FAILURE,
                "the recipNonce is not the senderNonce forwarded",
            ));
        }
        if message::octets(&msg.header.sender_nonce).is_none() {
            return Err(Failure::new(fi::SYSTEM_FAILURE, "no senderNonce"));
        }
        Ok(UpstreamAnswer { msg, der })
    }

    /// The protection of an upstream message: MAC with the RA's secret, or a signature by a
    /// certificate validating against the upstream trust anchors, whose subject is the sender.
    fn verify_upstream(&self, msg: &PkiMessage) -> Checked<()> {
        let fail = |t: String| Failure::new(fi::SYSTEM_FAILURE, t);
        match protection::protection_kind(msg) {
            None => Err(fail(format!(
                "the answer ({}) is not protected",
                msg.body.name()
            ))),
            Some(ProtectionKind::Mac) => match self.upstream.credentials.mac_protection() {
                Some(m) => m.verify(msg).map_err(|e| fail(e.detail)),
                None => Err(fail(
                    "the answer is MAC-protected, but the RA signs its requests".into(),
                )),
            },
            Some(ProtectionKind::Signature) => {
                let trust = self.upstream.trust.as_ref().ok_or_else(|| {
                    fail(
                        "the answer is signed, but no upstream trust anchors are configured".into(),
                    )
                })?;
                protection::verify_signed_by_trusted(msg, None, trust, &self.upstream.untrusted)
                    .map_err(|e| fail(e.detail))?;
                Ok(())
            }
        }
    }

    /// Relay the checked upstream answer to the EE, re-protected if needed.
    fn answer_downstream(
        &self,
        answer: UpstreamAnswer,
        a: &Authenticated,
        modified: bool,
    ) -> Checked<Vec<u8>> {
        let UpstreamAnswer { mut msg, der } = answer;
        match &a.auth {
            Auth::Mac { protection, .. } => {
                let end_to_end = protection::protection_kind(&msg) == Some(ProtectionKind::Mac)
                    && matches!(protection.as_ref(), Protection::Mac(m) if m.verify(&msg).is_ok());
                if end_to_end && !modified {
                    return Ok(der);
                }
                if modified {
                    granted_with_mods(&mut msg.body);
                }
                msg.header.protection_alg = None;
                if let Auth::Mac { sender_kid, .. } = &a.auth {
                    msg.header.sender_kid = Some(
                        message::octet_string(sender_kid).map_err(|e| internal("senderKID", e))?,
                    );
                }
                protection::protect(&mut msg, protection)
                    .map_err(|e| internal("protecting the answer", e.detail))?;
            }
            Auth::Signature | Auth::None => {
                let (Some(signer), Some(certs)) =
                    (&self.server.config.signer, &self.server.signer_certs)
                else {
                    return Ok(der);
                };
                if modified {
                    granted_with_mods(&mut msg.body);
                }
                msg.header.sender = certs.sender.clone();
                msg.header.sender_kid = certs
                    .ski
                    .as_deref()
                    .map(message::octet_string)
                    .transpose()
                    .map_err(|e| internal("senderKID", e))?;
                msg.header.protection_alg = None;
                let mut extra = certs.extra.clone();
                for c in msg.extra_certs.iter().flatten() {
                    if !extra.contains(c) {
                        extra.push(c.clone());
                    }
                }
                msg.extra_certs = Some(extra);
                protection::protect(&mut msg, &Protection::Signature(signer.key.clone()))
                    .map_err(|e| internal("protecting the answer", e.detail))?;
            }
        }
        msg.to_der().map_err(|e| internal("encoding the answer", e))
    }
}

/// The request body with `template` instead of the EE's, POP `raVerified` (RFC 9483
/// §5.2.3.2). Only for ir, cr and ccr, and only with the same public key.
fn modified_body(
    kind: RequestKind,
    crm: Option<&CertReqMsg>,
    template: CertTemplate,
    info: &CertRequestInfo,
) -> Checked<PkiBody> {
    let crm = match (kind, crm) {
        (RequestKind::Ir | RequestKind::Cr | RequestKind::Ccr | RequestKind::Krr, Some(c)) => c,
        _ => {
            return Err(Failure::new(
                fi::SYSTEM_FAILURE,
                "RA policy: a kur or p10cr cannot be modified (its original protection or signature must be kept)",
            ))
        }
    };
    let spki = template
        .subject_public_key_info
        .as_ref()
        .map(|k| k.to_der())
        .transpose()
        .map_err(|e| internal("template key", e))?;
    if spki.as_deref() != Some(info.public_key.as_slice()) {
        return Err(Failure::new(
            fi::SYSTEM_FAILURE,
            "RA policy: the modified template must keep the requested public key",
        ));
    }
    let mut crm = crm.clone();
    crm.cert_req.cert_template = template;
    crm.popo = Some(ProofOfPossession::RaVerified(Null));
    let msgs = vec![crm];
    Ok(match kind {
        RequestKind::Ir => PkiBody::Ir(msgs),
        RequestKind::Cr => PkiBody::Cr(msgs),
        RequestKind::Krr => PkiBody::Krr(msgs),
        _ => PkiBody::Ccr(msgs),
    })
}

/// Status `accepted` of a certificate response becomes `grantedWithMods`.
fn granted_with_mods(body: &mut PkiBody) {
    if let PkiBody::Ip(r) | PkiBody::Cp(r) | PkiBody::Ccp(r) = body {
        for resp in &mut r.response {
            if resp.status.status == PkiStatus::Accepted as u8 {
                resp.status.status = PkiStatus::GrantedWithMods as u8;
            }
        }
    }
}
