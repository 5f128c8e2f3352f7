//! The enrollment transaction (ir; cr and kur share it): request, certificate response,
//! certConf, pkiConf, with every check RFC 9810 and RFC 9483 ask of a client.

use super::config::{ClientConfig, Credentials};
use super::response::Response;
use crate::asn1::{
    oid, CertRepMessage, CertReqMsg, CertRequest, CertStatus, CertTemplate, PkiBody, PkiHeader,
    PkiMessage,
};
use crate::crypto::cert::{parse_der, subject_text};
use crate::crypto::Signer;
use crate::error::{Error, ErrorCode, Result};
use crate::message::{self, PeerStatus, PkiStatus};
use crate::protection::{self, ProtectionKind};
use crmf::pop::{PopoSigningKey, ProofOfPossession};
use der::asn1::{BitString, Int, OctetString};
use der::{Decode, Encode};
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use std::sync::Arc;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

/// What to ask the CA for.
pub struct EnrollRequest {
    /// The subject of the new certificate.
    pub subject: Option<Name>,
    /// subjectAltName entries (DNS names, IP addresses, URIs, e-mail addresses).
    pub sans: Vec<GeneralName>,
    /// The key to certify; it signs the proof of possession.
    pub key: Arc<dyn Signer>,
}

/// Where the transaction stands.
enum State {
    /// A request is ready to send; its response is awaited.
    Awaiting { request: Vec<u8>, expect: Expect },
    /// Finished, successfully or not.
    Done(Result<()>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    CertResponse,
    PkiConf,
}

/// The signer of the responses, validated once per transaction.
struct PeerSigner {
    cert_der: Vec<u8>,
    public_key: PKey<Public>,
}

/// One client transaction, driven by the caller: take [`pending_request`](Self::pending_request),
/// send it, and feed the answer to [`handle_response`](Self::handle_response) until it is done.
pub struct Transaction {
    config: Arc<ClientConfig>,
    key_spki: Vec<u8>,
    /// The requested subject: the sender name of MAC-protected requests (RFC 9483 §3.1).
    subject: Option<Name>,
    transaction_id: Vec<u8>,
    /// senderNonce of our last request: the response's recipNonce must equal it.
    sender_nonce: Vec<u8>,
    /// senderNonce of the peer's last response: our next recipNonce.
    peer_nonce: Option<Vec<u8>>,
    peer_signer: Option<PeerSigner>,
    /// A certificate we reject in certConf: reported once pkiConf arrives.
    rejection: Option<Error>,
    state: State,
    response: Response,
}

const CERT_REQ_ID: i64 = 0;

impl Transaction {
    /// Start an initialization request (ir) for `request` under `config`.
    pub fn start_ir(config: Arc<ClientConfig>, request: EnrollRequest) -> Result<Self> {
        let transaction_id = message::random_bytes(16)?;
        let mut tx = Transaction {
            key_spki: request.key.public_key_der().to_vec(),
            subject: request.subject.clone(),
            config,
            response: Response {
                transaction_id: transaction_id.clone(),
                ..Default::default()
            },
            transaction_id,
            sender_nonce: Vec::new(),
            peer_nonce: None,
            peer_signer: None,
            rejection: None,
            state: State::Done(Ok(())),
        };
        let body = PkiBody::Ir(vec![cert_req_msg(&request)?]);
        let bytes = tx.build(body, tx.config.implicit_confirm)?;
        tx.state = State::Awaiting {
            request: bytes,
            expect: Expect::CertResponse,
        };
        Ok(tx)
    }

    /// The request to send now, or `None` when the transaction is over.
    ///
    /// Borrowed until the next call that changes the transaction.
    pub fn pending_request(&self) -> Option<&[u8]> {
        match &self.state {
            State::Awaiting { request, .. } => Some(request),
            State::Done(_) => None,
        }
    }

    /// Whether the transaction is over.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The final result: `Ok` once the certificate is confirmed, the failure otherwise.
    pub fn result(&self) -> Result<()> {
        match &self.state {
            State::Done(r) => r.clone(),
            State::Awaiting { .. } => Err(Error::new(
                ErrorCode::InvalidState,
                "the transaction is still in progress",
            )),
        }
    }

    /// What the peer said so far.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// End the transaction with `error` (e.g. the transfer failed).
    pub fn abort(&mut self, error: Error) {
        if !self.is_done() {
            self.state = State::Done(Err(error));
        }
    }

    /// Process the peer's answer to [`pending_request`](Self::pending_request).
    ///
    /// Every check that fails ends the transaction with a specific error; the returned error
    /// is also the transaction's [`result`](Self::result).
    pub fn handle_response(&mut self, bytes: &[u8]) -> Result<()> {
        let expect = match &self.state {
            State::Awaiting { expect, .. } => *expect,
            State::Done(_) => {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    "no request is awaiting a response",
                ));
            }
        };
        let outcome = self.process(bytes, expect);
        match outcome {
            Ok(Some(next)) => {
                self.state = next;
                Ok(())
            }
            Ok(None) => {
                let r = match self.rejection.take() {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                self.state = State::Done(r.clone());
                r
            }
            Err(e) => {
                self.state = State::Done(Err(e.clone()));
                Err(e)
            }
        }
    }

    /// Check `bytes` and decide the next state (`None`: done).
    fn process(&mut self, bytes: &[u8], expect: Expect) -> Result<Option<State>> {
        let msg = message::decode(bytes, self.config.max_message_size)?;
        if !(2..=3).contains(&msg.header.pvno) {
            return Err(Error::new(
                ErrorCode::UnsupportedVersion,
                format!("response has pvno {}, we support 2 and 3", msg.header.pvno),
            ));
        }
        if msg.header.protection_alg.is_none() || msg.protection.is_none() {
            return Err(self.unprotected(&msg));
        }
        self.verify_protection(&msg)?;
        self.check_ids(&msg)?;
        self.peer_nonce = Some(
            message::octets(&msg.header.sender_nonce)
                .ok_or_else(|| {
                    Error::new(ErrorCode::MissingHeaderField, "response has no senderNonce")
                })?
                .to_vec(),
        );
        match (&msg.body, expect) {
            (PkiBody::Error(e), _) => {
                let status = PeerStatus::from_status_info(&e.pki_status_info);
                self.response.error_code = e.error_code.as_ref().and_then(int_to_i64);
                self.response.error_details = e.error_details.clone().unwrap_or_default();
                let detail = format!(
                    "the server answered with an error message: {status}{}",
                    details_suffix(&self.response.error_details)
                );
                self.response.status = Some(status);
                Err(Error::new(ErrorCode::PeerError, detail))
            }
            (PkiBody::Ip(rep), Expect::CertResponse) => self.handle_cert_rep(&msg, rep),
            (PkiBody::PkiConf(_), Expect::PkiConf) => Ok(None),
            (body, _) => Err(Error::new(
                ErrorCode::UnexpectedBody,
                format!(
                    "expected {}, got {}",
                    if expect == Expect::PkiConf {
                        "pkiConf"
                    } else {
                        "ip"
                    },
                    body.name()
                ),
            )),
        }
    }

    fn handle_cert_rep(&mut self, msg: &PkiMessage, rep: &CertRepMessage) -> Result<Option<State>> {
        self.response.ca_pubs = ders(rep.ca_pubs.as_deref().unwrap_or_default())?;
        self.response.extra_certs = ders(msg.extra_certs.as_deref().unwrap_or_default())?;
        let [resp] = rep.response.as_slice() else {
            return Err(Error::new(
                ErrorCode::BadMessageContent,
                format!("expected one CertResponse, got {}", rep.response.len()),
            ));
        };
        let id = int_to_i64(&resp.cert_req_id);
        if id != Some(CERT_REQ_ID) {
            return Err(Error::new(
                ErrorCode::CertReqIdMismatch,
                format!("response is for certReqId {id:?}, we asked with {CERT_REQ_ID}"),
            ));
        }
        let status = PeerStatus::from_status_info(&resp.status);
        self.response.status = Some(status.clone());
        match PkiStatus::from_u8(status.status) {
            Some(PkiStatus::Accepted) | Some(PkiStatus::GrantedWithMods) => {}
            Some(PkiStatus::Rejection) => {
                return Err(Error::new(
                    ErrorCode::Rejected,
                    format!("the CA rejected the request: {status}"),
                ));
            }
            Some(PkiStatus::Waiting) => {
                return Err(Error::new(
                    ErrorCode::Waiting,
                    format!("the CA asks to poll later ({status}); polling is not supported by this operation"),
                ));
            }
            _ => {
                return Err(Error::new(
                    ErrorCode::BadMessageContent,
                    format!("unexpected status in a certificate response: {status}"),
                ));
            }
        }
        let cert = match resp
            .certified_key_pair
            .as_ref()
            .map(|k| &k.cert_or_enc_cert)
        {
            Some(crate::asn1::CertOrEncCert::Certificate(c)) => c,
            Some(crate::asn1::CertOrEncCert::EncryptedCert(_)) => {
                return Err(Error::new(
                    ErrorCode::UnsupportedAlgorithm,
                    "the certificate came encrypted; decrypting it is not supported yet",
                ));
            }
            None => {
                return Err(Error::new(
                    ErrorCode::NoCertificate,
                    format!("status {status} but no certificate"),
                ))
            }
        };
        let cert_der = cert.to_der()?;
        let cert_spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
        let granted = message::has_implicit_confirm(&msg.header);
        self.response.implicit_confirm_granted = self.config.implicit_confirm && granted;
        self.response.certificate = Some(cert_der.clone());
        let mut cert_status = None;
        if cert_spki != self.key_spki {
            let e = Error::new(
                ErrorCode::CertKeyMismatch,
                "the issued certificate does not carry the public key we asked to certify; rejected it in certConf",
            );
            if self.response.implicit_confirm_granted {
                return Err(e);
            }
            cert_status = Some(crate::asn1::PkiStatusInfo {
                status: PkiStatus::Rejection as u8,
                status_string: Some(vec![
                    "public key in new certificate does not match our enrollment key".into(),
                ]),
                fail_info: Some(message::fail_info_bit_string(
                    1 << message::fail_info::INCORRECT_DATA,
                )?),
            });
            self.rejection = Some(e);
        }
        if self.response.implicit_confirm_granted {
            return Ok(None);
        }
        let hash = cert_hash(&cert_der)?;
        let body = PkiBody::CertConf(vec![CertStatus {
            cert_hash: OctetString::new(hash)?,
            cert_req_id: Int::new(&[CERT_REQ_ID as u8])?,
            status_info: cert_status,
            hash_alg: None,
        }]);
        let request = self.build(body, false)?;
        Ok(Some(State::Awaiting {
            request,
            expect: Expect::PkiConf,
        }))
    }

    /// Build and protect a request with a fresh senderNonce.
    fn build(&mut self, body: PkiBody, implicit_confirm: bool) -> Result<Vec<u8>> {
        let creds = self.config.credentials()?;
        self.sender_nonce = message::random_bytes(16)?;
        let (sender, sender_kid, default_recipient, extra_certs) = match creds {
            Credentials::Mac { reference, .. } => {
                let sender = match self.subject.clone() {
                    Some(s) => GeneralName::DirectoryName(s),
                    None => message::null_dn(),
                };
                (sender, Some(message::octet_string(reference)?), None, None)
            }
            Credentials::Signature { cert, chain, .. } => {
                let parsed = x509_cert::Certificate::from_der(&cert.to_der()?)?;
                let tbs = parsed.tbs_certificate();
                let ski = cert.subject_key_id().map(|s| s.as_slice().to_vec());
                let mut extra = vec![parsed.clone()];
                for c in chain {
                    extra.push(x509_cert::Certificate::from_der(&c.to_der()?)?);
                }
                (
                    GeneralName::DirectoryName(tbs.subject().clone()),
                    ski.map(|s| message::octet_string(&s)).transpose()?,
                    Some(tbs.issuer().clone()),
                    Some(extra),
                )
            }
        };
        let recipient = self
            .config
            .recipient
            .clone()
            .or(default_recipient)
            .map(GeneralName::DirectoryName)
            .unwrap_or_else(message::null_dn);
        let header = PkiHeader {
            pvno: 2,
            sender,
            recipient,
            message_time: Some(message::now()?),
            protection_alg: None,
            sender_kid,
            recip_kid: None,
            transaction_id: Some(message::octet_string(&self.transaction_id)?),
            sender_nonce: Some(message::octet_string(&self.sender_nonce)?),
            recip_nonce: self
                .peer_nonce
                .as_deref()
                .map(message::octet_string)
                .transpose()?,
            free_text: None,
            general_info: implicit_confirm.then(|| vec![message::implicit_confirm_itav()]),
        };
        let mut msg = PkiMessage {
            header,
            body,
            protection: None,
            extra_certs,
        };
        protection::protect(&mut msg, creds.protection())?;
        msg.to_der()
            .map_err(|e| Error::new(ErrorCode::EncodingFailed, format!("request: {e}")))
    }

    /// Check the protection of a response against our credentials and trust settings.
    fn verify_protection(&mut self, msg: &PkiMessage) -> Result<()> {
        match protection::protection_kind(msg) {
            Some(ProtectionKind::Mac) => match self.config.credentials()?.mac_protection() {
                Some(mac) => protection::verify_mac(msg, mac.secret(), &self.config.mac_limits, Some(&mac.cache))
                    .map_err(|e| e.context("response protection")),
                None => Err(Error::new(
                    ErrorCode::WrongProtectionType,
                    "the response is MAC-protected, but we have no shared secret (we sent a signed request)",
                )),
            },
            Some(ProtectionKind::Signature) => {
                let key = self.peer_signer_key(msg)?;
                protection::verify_signature(msg, key)
            }
            None => Err(Error::new(ErrorCode::ProtectionMissing, "the response is not protected")),
        }
    }

    /// The validated public key of the response's signer; validated once per transaction.
    fn peer_signer_key(&mut self, msg: &PkiMessage) -> Result<&PKey<Public>> {
        let first = msg.extra_certs.as_ref().and_then(|c| c.first());
        let first_der = first.map(|c| c.to_der()).transpose()?;
        let reuse = match (&self.peer_signer, &first_der) {
            (Some(p), Some(d)) => &p.cert_der == d,
            (Some(_), None) => true,
            _ => false,
        };
        if !reuse {
            let cert = match (&self.config.server_cert, first_der) {
                (Some(pinned), d) => {
                    if let Some(d) = d {
                        if d != pinned.to_der()? {
                            return Err(Error::new(
                                ErrorCode::SenderMismatch,
                                format!("the response is signed by {}, not the configured server certificate", subject_text(&parse_der(&d)?)),
                            ));
                        }
                    }
                    pinned.clone()
                }
                (None, Some(d)) => {
                    let cert = parse_der(&d)?;
                    let trust = self.config.trust.as_ref().ok_or_else(|| {
                        Error::new(ErrorCode::MissingConfig, "the response is signed, but no trust anchors are configured to validate it")
                    })?;
                    let mut untrusted: Vec<X509> = self.config.untrusted.clone();
                    for c in msg.extra_certs.iter().flatten().skip(1) {
                        untrusted.push(parse_der(&c.to_der()?)?);
                    }
                    trust.verify(&cert, &untrusted)?;
                    cert
                }
                (None, None) => {
                    return Err(Error::new(ErrorCode::SignerNotTrusted, "the signed response carries no certificate in extraCerts and none is configured"));
                }
            };
            if let GeneralName::DirectoryName(sender) = &msg.header.sender {
                let cert_subject = cert.subject_name().to_der()?;
                if sender.to_der()? != cert_subject {
                    return Err(Error::new(
                        ErrorCode::SenderMismatch,
                        format!("the response's sender {sender} is not the subject of its signer certificate {}", subject_text(&cert)),
                    ));
                }
            }
            self.peer_signer = Some(PeerSigner {
                cert_der: cert.to_der()?,
                public_key: cert.public_key()?,
            });
        }
        Ok(&self.peer_signer.as_ref().expect("set above").public_key)
    }

    /// transactionID and recipNonce must be ours.
    fn check_ids(&self, msg: &PkiMessage) -> Result<()> {
        match message::octets(&msg.header.transaction_id) {
            Some(t) if t == self.transaction_id => {}
            Some(t) => {
                return Err(Error::new(
                    ErrorCode::TransactionIdMismatch,
                    format!(
                        "response transactionID {} is not ours ({})",
                        hex(t),
                        hex(&self.transaction_id)
                    ),
                ))
            }
            None => {
                return Err(Error::new(
                    ErrorCode::MissingHeaderField,
                    "response has no transactionID",
                ))
            }
        }
        match message::octets(&msg.header.recip_nonce) {
            Some(n) if n == self.sender_nonce => Ok(()),
            Some(n) => Err(Error::new(
                ErrorCode::RecipNonceMismatch,
                format!(
                    "response recipNonce {} does not match our senderNonce {}",
                    hex(n),
                    hex(&self.sender_nonce)
                ),
            )),
            None => Err(Error::new(
                ErrorCode::RecipNonceMismatch,
                "response has no recipNonce",
            )),
        }
    }

    /// The error for an unprotected response: its content as diagnostics if allowed.
    fn unprotected(&mut self, msg: &PkiMessage) -> Error {
        let status = match &msg.body {
            PkiBody::Error(e) => Some(PeerStatus::from_status_info(&e.pki_status_info)),
            PkiBody::Ip(r) | PkiBody::Cp(r) | PkiBody::Kup(r) => r
                .response
                .first()
                .map(|r| PeerStatus::from_status_info(&r.status)),
            _ => None,
        };
        match status {
            Some(s) if self.config.unprotected_errors && s.status == PkiStatus::Rejection as u8 => {
                let e = Error::new(
                    if matches!(msg.body, PkiBody::Error(_)) {
                        ErrorCode::PeerError
                    } else {
                        ErrorCode::Rejected
                    },
                    format!("the server answered (unprotected, not authenticated): {s}"),
                );
                self.response.status = Some(s);
                self.response.unprotected = true;
                e
            }
            Some(s) => Error::new(
                ErrorCode::ProtectionMissing,
                format!(
                    "the response ({}) is not protected; it says: {s}",
                    msg.body.name()
                ),
            ),
            None => Error::new(
                ErrorCode::ProtectionMissing,
                format!("the response ({}) is not protected", msg.body.name()),
            ),
        }
    }
}

/// CertReqMsg for `request`, with POP by signature over the DER of the CertRequest.
fn cert_req_msg(request: &EnrollRequest) -> Result<CertReqMsg> {
    let spki = request.key.public_key_info()?;
    let extensions = if request.sans.is_empty() {
        None
    } else {
        let san = SubjectAltName(request.sans.clone()).to_der()?;
        Some(vec![Extension {
            extn_id: oid::SUBJECT_ALT_NAME,
            critical: request.subject.as_ref().is_none_or(|s| s.is_empty()),
            extn_value: OctetString::new(san)?,
        }])
    };
    let cert_req = CertRequest {
        cert_req_id: Int::new(&[CERT_REQ_ID as u8])?,
        cert_template: CertTemplate {
            version: None,
            serial_number: None,
            signature: None,
            issuer: None,
            validity: None,
            subject: request.subject.clone(),
            subject_public_key_info: Some(spki),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions,
        },
        controls: None,
    };
    let signature = request
        .key
        .sign(&cert_req.to_der()?)
        .map_err(|e| e.context("proof-of-possession signature"))?;
    Ok(CertReqMsg {
        cert_req,
        popo: Some(ProofOfPossession::Signature(Box::new(PopoSigningKey {
            poposk_input: None,
            alg_id: request.key.algorithm().algorithm_identifier(),
            signature: BitString::from_bytes(&signature)?,
        }))),
        reg_info: None,
    })
}

/// certHash: the hash the certificate's signature algorithm uses (RFC 9810 §5.3.18, RFC 9481).
pub(crate) fn cert_hash(cert_der: &[u8]) -> Result<Vec<u8>> {
    use openssl::hash::{hash, MessageDigest};
    let cert = x509_cert::Certificate::from_der(cert_der)?;
    let sig_oid = cert.signature_algorithm().oid;
    let md = match sig_oid {
        o if o == oid::ECDSA_SHA384 || o == oid::RSA_SHA384 => MessageDigest::sha384(),
        o if o == oid::ECDSA_SHA512 || o == oid::RSA_SHA512 || o == oid::ED25519 => {
            MessageDigest::sha512()
        }
        o if o == oid::ED448 => MessageDigest::shake_256(),
        _ => MessageDigest::sha256(),
    };
    if sig_oid == oid::ED448 {
        let mut h = openssl::hash::Hasher::new(md)?;
        h.update(cert_der)?;
        let mut out = vec![0u8; 64];
        h.finish_xof(&mut out)?;
        return Ok(out);
    }
    Ok(hash(md, cert_der)?.to_vec())
}

fn ders(certs: &[x509_cert::Certificate]) -> Result<Vec<Vec<u8>>> {
    certs.iter().map(|c| Ok(c.to_der()?)).collect()
}

/// An INTEGER as i64, if it fits.
pub(crate) fn int_to_i64(i: &Int) -> Option<i64> {
    let b = i.as_bytes();
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let mut v: i64 = if b[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in b {
        v = (v << 8) | x as i64;
    }
    Some(v)
}

fn details_suffix(details: &[String]) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" [{}]", details.join("; "))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
