//! The client transaction for every operation (ir, cr, kur, p10cr, rr, genm, krr, ccr, and
//! ir/cr with central key generation): request, response, certConf/pkiConf and polling, with
//! every check RFC 9810 and RFC 9483 ask of a client.

use super::config::{ClientConfig, Credentials};
use super::response::RecoveredKey;
use super::response::Response;
use crate::asn1::{
    oid, CertId, CertRepMessage, CertReqMsg, CertRequest, CertStatus, CertTemplate,
    CertifiedKeyPair, CmpCertificate, CmpName, InfoTypeAndValue, KeyRecRepContent, PkiBody,
    PkiHeader, PkiMessage, PollRepEntry, PollReqEntry, RevDetails, RevRepContent,
};
use crate::crypto::cert::{parse_der, subject_text, ValidatedCert};
use crate::crypto::decrypt::{decrypt_encrypted_key, extract_private_key};
use crate::crypto::SecretBytes;
use crate::crypto::Signer;
use crate::error::{Error, ErrorCode, Result};
use crate::log::LogLevel;
use crate::message::{self, PeerStatus, PkiStatus};
use crate::protection::{self, Protection, ProtectionKind};
use crmf::pop::{PopoSigningKey, ProofOfPossession};
use der::asn1::{BitString, Int, OctetString};
use der::{Decode, Encode};
use openssl::pkey::PKey;
use openssl::x509::{X509Ref, X509};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::sync::Arc;
use std::time::Duration;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

/// What to ask the CA for.
pub struct EnrollRequest {
    /// The subject of the new certificate.
    pub subject: Option<Name>,
    /// subjectAltName entries (DNS names, IP addresses, URIs, e-mail addresses).
    pub sans: Vec<GeneralName>,
    /// The key to certify; it signs the proof of possession.
    pub key: Arc<dyn Signer>,
}

/// What to ask the CA for when the CA (or a key generation authority) generates the key
/// (central key generation, RFC 9483 §4.1.6).
///
/// The request's certTemplate carries the algorithm of the wanted key with an empty
/// subjectPublicKey (or no publicKey at all) and no proof of possession. The response's
/// private key is decrypted with [`ClientConfig::decryptor`] (key transport or key agreement:
/// signature-protected transactions) or the shared secret (password: MAC-protected ones).
#[derive(Clone, Debug, Default)]
pub struct KeygenRequest {
    /// The subject of the new certificate.
    pub subject: Option<Name>,
    /// subjectAltName entries.
    pub sans: Vec<GeneralName>,
    /// The algorithm of the key to generate (the SubjectPublicKeyInfo algorithm, e.g.
    /// `id-ecPublicKey` with the curve as parameter); `None` leaves the choice to the server.
    pub algorithm: Option<AlgorithmIdentifierOwned>,
}

impl KeygenRequest {
    /// The SubjectPublicKeyInfo algorithm identifier of a key of `kind` (for
    /// [`algorithm`](Self::algorithm)).
    pub fn algorithm_for(kind: crate::crypto::KeyType) -> Result<AlgorithmIdentifierOwned> {
        // The AlgorithmIdentifier of a freshly generated key of that type.
        let key = crate::crypto::SoftwareKey::generate(kind)?;
        Ok(
            SubjectPublicKeyInfoOwned::from_der(crate::crypto::Signer::public_key_der(&key))?
                .algorithm,
        )
    }
}

/// A client operation: what [`Transaction::start`] sends.
pub enum Operation {
    /// Initialization request (ir, RFC 9483 §4.1.1): answered by ip, then certConf/pkiConf.
    Ir(EnrollRequest),
    /// Certification request (cr, RFC 9483 §4.1.2): answered by cp, then certConf/pkiConf.
    Cr(EnrollRequest),
    /// Key update request (kur, RFC 9483 §4.1.3) for a certificate we hold.
    ///
    /// Subject and subjectAltName default to those of `old_cert` when `request` leaves them
    /// empty; the request carries the `id-regCtrl-oldCertID` control with the issuer and
    /// serial number of `old_cert`. RFC 9483 asks for the kur to be signed with the key of
    /// `old_cert`: with `old_key` set the request is signed with it and `old_cert` is sent
    /// first in extraCerts (plus the chain of signature credentials, if configured), so the
    /// sender is the old certificate's subject; without it the configured credentials
    /// protect the request.
    ///
    /// [`Operation::kur`] makes one from an OpenSSL certificate; from DER,
    /// `CmpCertificate::try_from(der)`.
    Kur {
        /// The new key and, optionally, subject and subjectAltName.
        request: EnrollRequest,
        /// The certificate to update (its DER).
        old_cert: CmpCertificate,
        /// The private key of `old_cert`, to sign the request with.
        old_key: Option<Arc<dyn Signer>>,
    },
    /// PKCS#10 certification request (p10cr, RFC 9483 §4.1.4): the DER CSR is the body; the
    /// cp and certConf use certReqId -1.
    P10cr {
        /// The DER `CertificationRequest`.
        csr_der: Vec<u8>,
    },
    /// Revocation request (rr, RFC 9483 §4.2) for `cert`, answered by rp.
    ///
    /// certDetails carries the issuer and serial number of `cert`; `reason` (a CRLReason
    /// value, RFC 5280 §5.3.1) goes in crlEntryDetails. RFC 9483 asks for the rr to be signed
    /// with the key of the certificate to revoke (or by an authorized entity): with `key` set
    /// the request is signed with it and `cert` goes first in extraCerts; without it the
    /// configured credentials protect the request.
    ///
    /// [`Operation::rr`] makes one from an OpenSSL certificate; from DER,
    /// `CmpCertificate::try_from(der)`.
    Rr {
        /// The certificate to revoke (its DER).
        cert: CmpCertificate,
        /// CRLReason code (0 unspecified, 1 keyCompromise, 4 superseded, 5
        /// cessationOfOperation, ...).
        reason: Option<u8>,
        /// The private key of `cert`, to sign the request with.
        key: Option<Arc<dyn Signer>>,
    },
    /// General message (genm, RFC 9483 §4.3) with these InfoTypeAndValues, answered by genp
    /// (see [`Response::genp`](super::Response::genp) and the typed helpers on
    /// [`Response`](super::Response)); [`super::genm`] builds the usual requests.
    Genm(Vec<InfoTypeAndValue>),
    /// Initialization request (ir) for a centrally generated key (RFC 9483 §4.1.6): the ip
    /// delivers the private key, in [`Response::private_key_pkcs8`](super::Response::private_key_pkcs8).
    IrCentralKeygen(KeygenRequest),
    /// Certification request (cr) for a centrally generated key, as
    /// [`IrCentralKeygen`](Self::IrCentralKeygen).
    CrCentralKeygen(KeygenRequest),
    /// Key recovery request (krr, RFC 9810 §5.3.9): a new signature certificate for
    /// `key` (POP by signature, like ir) plus the recovered key history, answered by krp
    /// (newSigCert, caCerts, keyPairHist; see
    /// [`Response::recovered_keys`](super::Response::recovered_keys)). No certConf follows.
    Krr(EnrollRequest),
    /// Cross-certification request (ccr, RFC 9810 §5.3.11): answered by ccp, then
    /// certConf/pkiConf, like cr.
    Ccr(EnrollRequest),
}

impl Operation {
    /// [`Operation::Kur`] for `old_cert` as OpenSSL holds it (the operation keeps its DER).
    pub fn kur(
        request: EnrollRequest,
        old_cert: &X509Ref,
        old_key: Option<Arc<dyn Signer>>,
    ) -> Result<Self> {
        Ok(Operation::Kur {
            request,
            old_cert: cert_der(old_cert)?,
            old_key,
        })
    }

    /// [`Operation::Rr`] for `cert` as OpenSSL holds it (the operation keeps its DER).
    pub fn rr(cert: &X509Ref, reason: Option<u8>, key: Option<Arc<dyn Signer>>) -> Result<Self> {
        Ok(Operation::Rr {
            cert: cert_der(cert)?,
            reason,
            key,
        })
    }

    /// The request body's name (`"ir"`, `"cr"`, `"kur"`, `"p10cr"`, `"rr"`, `"genm"`,
    /// `"krr"`, `"ccr"`).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Ir(_) | Operation::IrCentralKeygen(_) => "ir",
            Operation::Cr(_) | Operation::CrCentralKeygen(_) => "cr",
            Operation::Krr(_) => "krr",
            Operation::Ccr(_) => "ccr",
            Operation::Kur { .. } => "kur",
            Operation::P10cr { .. } => "p10cr",
            Operation::Rr { .. } => "rr",
            Operation::Genm(_) => "genm",
        }
    }
}

/// The DER of an OpenSSL certificate.
fn cert_der(cert: &X509Ref) -> Result<CmpCertificate> {
    CmpCertificate::try_from(cert.to_der()?.as_slice())
        .map_err(|e| Error::new(ErrorCode::BadCertificate, format!("certificate: {e}")))
}

/// What a kur or rr takes from the certificate it names, decoded from its DER. A serial,
/// issuer or subject that does not decode is an [`ErrorCode::BadCertificate`] naming `what`;
/// a subjectAltName extension that does not decode is one only when a kur asks for the
/// entries (its template's default).
struct NamedCert {
    serial: SerialNumber,
    issuer: Name,
    subject: Name,
    /// The subjectAltName entries, if the certificate has that extension.
    sans: der::Result<Option<Vec<GeneralName>>>,
}

impl NamedCert {
    fn read(cert: &CmpCertificate, what: &'static str) -> Result<Self> {
        let bad = |e| bad_named_cert(what, e);
        let fields = cert.fields().map_err(bad)?;
        Ok(NamedCert {
            serial: SerialNumber::from_der(fields.serial).map_err(bad)?,
            issuer: message::from_der_checked(fields.issuer).map_err(bad)?,
            subject: message::from_der_checked(fields.subject).map_err(bad)?,
            sans: fields.extension(oid::SUBJECT_ALT_NAME).and_then(|ext| {
                ext.map(|v| message::from_der_checked::<SubjectAltName>(v).map(|s| s.0))
                    .transpose()
            }),
        })
    }

    /// [`sans`](Self::sans), or the error naming `what` if they do not decode.
    fn sans(&self, what: &str) -> Result<Option<&[GeneralName]>> {
        match &self.sans {
            Ok(sans) => Ok(sans.as_deref()),
            Err(e) => Err(bad_named_cert(what, *e)),
        }
    }
}

fn bad_named_cert(what: &str, e: der::Error) -> Error {
    Error::new(ErrorCode::BadCertificate, format!("{what}: {e}"))
}

/// The kind of operation, remembered to know which response body finishes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ir,
    Cr,
    Kur,
    P10cr,
    Rr,
    Genm,
    Krr,
    Ccr,
}

impl Kind {
    /// The name of the body that answers the request.
    fn response_name(self) -> &'static str {
        match self {
            Kind::Ir => "ip",
            Kind::Cr | Kind::P10cr => "cp",
            Kind::Kur => "kup",
            Kind::Rr => "rp",
            Kind::Genm => "genp",
            Kind::Krr => "krp",
            Kind::Ccr => "ccp",
        }
    }
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
    /// The operation's response (ip, cp, kup, rp, genp).
    Final,
    /// pkiConf after our certConf.
    PkiConf,
    /// After a pollReq: pollRep or the final response.
    Poll,
}

/// A signer that protects this transaction's requests instead of the configured credentials
/// (kur and rr with the key of the certificate concerned).
struct OwnSigner {
    protection: Protection,
    cert: CmpCertificate,
}

/// One client transaction, driven by the caller: take [`pending_request`](Self::pending_request),
/// send it, and feed the answer to [`handle_response`](Self::handle_response) until it is done.
pub struct Transaction {
    config: Arc<ClientConfig>,
    kind: Kind,
    /// certReqId of the certificate request (0, or -1 for p10cr).
    cert_req_id: i64,
    /// The certified key we expect in the new certificate (enrollments).
    key_spki: Vec<u8>,
    /// The server generates the key (central key generation): the response must deliver it.
    central_keygen: bool,
    /// Signs the requests instead of the configured credentials, if set.
    own_signer: Option<OwnSigner>,
    /// How long to wait before sending the pending pollReq.
    wait: Option<Duration>,
    /// The requested subject: the sender name of MAC-protected requests (RFC 9483 §3.1).
    subject: Option<Name>,
    transaction_id: Vec<u8>,
    /// senderNonce of our last request: the response's recipNonce must equal it.
    sender_nonce: Vec<u8>,
    /// senderNonce of the peer's last response: our next recipNonce.
    peer_nonce: Option<Vec<u8>>,
    peer_signer: Option<Arc<ValidatedCert>>,
    /// sender, senderKID, recipient and extraCerts of our signed requests, made once.
    signer_fields: Option<SignerFields>,
    /// The certReqId of the running polling (0 or -1).
    cert_req_id_polled: i64,
    /// The protectionAlg (salt included) of our first MAC-protected request: the later
    /// requests of the transaction reuse it, so that the MAC key is derived once per side
    /// (see [`protection::protect_in_transaction`]).
    mac_alg: Option<AlgorithmIdentifierOwned>,
    /// A certificate we reject in certConf: reported once pkiConf arrives.
    rejection: Option<Error>,
    state: State,
    response: Response,
}

const CERT_REQ_ID: i64 = 0;
/// certReqId of p10cr responses and of polling for non-certificate requests.
const NO_CERT_REQ_ID: i64 = -1;

impl Transaction {
    /// Start an initialization request (ir) for `request` under `config`.
    ///
    /// The same as [`start`](Self::start) with [`Operation::Ir`].
    pub fn start_ir(config: Arc<ClientConfig>, request: EnrollRequest) -> Result<Self> {
        Self::start(config, Operation::Ir(request))
    }

    /// Start `operation` under `config`: builds and protects the first request.
    ///
    /// Fails with [`ErrorCode::MissingConfig`] without credentials (unless the operation
    /// brings its own signing key), [`ErrorCode::BadCertificate`] or
    /// [`ErrorCode::InvalidArgument`] for an unusable certificate, CSR or reason code.
    pub fn start(config: Arc<ClientConfig>, operation: Operation) -> Result<Self> {
        let transaction_id = message::random_bytes(16)?;
        let mut tx = Transaction {
            kind: Kind::Ir,
            cert_req_id: CERT_REQ_ID,
            key_spki: Vec::new(),
            central_keygen: false,
            own_signer: None,
            wait: None,
            cert_req_id_polled: CERT_REQ_ID,
            mac_alg: None,
            subject: None,
            config,
            response: Response {
                transaction_id: transaction_id.clone(),
                ..Default::default()
            },
            transaction_id,
            sender_nonce: Vec::new(),
            peer_nonce: None,
            peer_signer: None,
            signer_fields: None,
            rejection: None,
            state: State::Done(Ok(())),
        };
        let implicit_confirm = tx.config.implicit_confirm;
        let operation_kind = match &operation {
            Operation::CrCentralKeygen(_) => Kind::Cr,
            _ => Kind::Ir,
        };
        let (body, implicit_confirm) = match operation {
            Operation::Ir(request) => {
                tx.key_spki = request.key.public_key_der().to_vec();
                tx.subject = request.subject.clone();
                (
                    PkiBody::Ir(vec![cert_req_msg(&request, None)?]),
                    implicit_confirm,
                )
            }
            Operation::Cr(request) => {
                tx.kind = Kind::Cr;
                tx.key_spki = request.key.public_key_der().to_vec();
                tx.subject = request.subject.clone();
                (
                    PkiBody::Cr(vec![cert_req_msg(&request, None)?]),
                    implicit_confirm,
                )
            }
            Operation::Kur {
                mut request,
                old_cert,
                old_key,
            } => {
                tx.kind = Kind::Kur;
                const WHAT: &str = "old certificate";
                let old = named_cert(&tx.config, &old_cert, WHAT)?;
                let old_cert_id = CertId {
                    issuer: GeneralName::DirectoryName(old.issuer.clone()),
                    serial_number: old.serial.clone(),
                };
                request.subject.get_or_insert_with(|| old.subject.clone());
                if request.sans.is_empty() {
                    if let Some(sans) = old.sans(WHAT)? {
                        request.sans = sans.to_vec();
                    }
                }
                let control = x509_cert::attr::AttributeTypeAndValue {
                    oid: oid::REG_CTRL_OLD_CERT_ID,
                    value: der::Any::encode_from(&old_cert_id)?,
                };
                tx.key_spki = request.key.public_key_der().to_vec();
                tx.subject = request.subject.clone();
                if let Some(key) = old_key {
                    tx.own_signer = Some(OwnSigner {
                        protection: Protection::Signature(key),
                        cert: old_cert,
                    });
                }
                (
                    PkiBody::Kur(vec![cert_req_msg(&request, Some(vec![control]))?]),
                    implicit_confirm,
                )
            }
            Operation::P10cr { csr_der } => {
                tx.kind = Kind::P10cr;
                tx.cert_req_id = NO_CERT_REQ_ID;
                let csr = x509_cert::request::CertReq::from_der(&csr_der).map_err(|e| {
                    Error::new(
                        ErrorCode::InvalidArgument,
                        format!("not a DER PKCS#10 certification request: {e}"),
                    )
                })?;
                tx.key_spki = csr.info.public_key.to_der()?;
                tx.subject = Some(csr.info.subject.clone());
                (PkiBody::P10cr(Box::new(csr)), implicit_confirm)
            }
            Operation::Rr { cert, reason, key } => {
                tx.kind = Kind::Rr;
                tx.cert_req_id = NO_CERT_REQ_ID;
                let named = named_cert(&tx.config, &cert, "certificate to revoke")?;
                let (serial, issuer) = (named.serial.clone(), named.issuer.clone());
                tx.subject = Some(named.subject.clone());
                let crl_entry_details = reason
                    .map(|r| -> Result<_> {
                        let reason = x509_cert::ext::pkix::crl::CrlReason::try_from(r as u32)
                            .map_err(|_| {
                                Error::new(
                                    ErrorCode::InvalidArgument,
                                    format!("{r} is not a CRLReason value"),
                                )
                            })?;
                        Ok(vec![Extension {
                            extn_id: oid::CRL_REASON,
                            critical: false,
                            extn_value: OctetString::new(reason.to_der()?)?,
                        }])
                    })
                    .transpose()?;
                let details = RevDetails {
                    cert_details: CertTemplate {
                        version: None,
                        serial_number: Some(serial),
                        signature: None,
                        issuer: Some(issuer),
                        validity: None,
                        subject: None,
                        subject_public_key_info: None,
                        issuer_unique_id: None,
                        subject_unique_id: None,
                        extensions: None,
                    },
                    crl_entry_details,
                };
                if let Some(key) = key {
                    tx.own_signer = Some(OwnSigner {
                        protection: Protection::Signature(key),
                        cert,
                    });
                }
                (PkiBody::Rr(vec![details]), false)
            }
            Operation::Genm(itavs) => {
                tx.kind = Kind::Genm;
                tx.cert_req_id = NO_CERT_REQ_ID;
                (PkiBody::Genm(itavs), false)
            }
            Operation::IrCentralKeygen(request) | Operation::CrCentralKeygen(request) => {
                let ir = matches!(operation_kind, Kind::Ir);
                tx.kind = operation_kind;
                tx.central_keygen = true;
                tx.subject = request.subject.clone();
                let msg = keygen_req_msg(&request)?;
                let body = if ir {
                    PkiBody::Ir(vec![msg])
                } else {
                    PkiBody::Cr(vec![msg])
                };
                (body, implicit_confirm)
            }
            Operation::Krr(request) => {
                tx.kind = Kind::Krr;
                tx.key_spki = request.key.public_key_der().to_vec();
                tx.subject = request.subject.clone();
                (PkiBody::Krr(vec![cert_req_msg(&request, None)?]), false)
            }
            Operation::Ccr(request) => {
                tx.kind = Kind::Ccr;
                tx.key_spki = request.key.public_key_der().to_vec();
                tx.subject = request.subject.clone();
                (
                    PkiBody::Ccr(vec![cert_req_msg(&request, None)?]),
                    implicit_confirm,
                )
            }
        };
        let bytes = tx.build(body, implicit_confirm)?;
        tx.state = State::Awaiting {
            request: bytes,
            expect: Expect::Final,
        };
        Ok(tx)
    }

    /// How long to wait before sending [`pending_request`](Self::pending_request).
    ///
    /// `Some` while polling (RFC 9810 §5.3.22): the pending request is a pollReq, to be sent
    /// after the returned delay (zero for the first pollReq, then the `checkAfter` of the
    /// last pollRep). `None` means: send the pending request (if any) right away.
    pub fn wait_hint(&self) -> Option<Duration> {
        match self.state {
            State::Awaiting { .. } => self.wait,
            State::Done(_) => None,
        }
    }

    /// The operation's kind as its request body's name (`"ir"`, `"kur"`, `"genm"`, ...).
    pub fn operation_name(&self) -> &'static str {
        match self.kind {
            Kind::Ir => "ir",
            Kind::Cr => "cr",
            Kind::Kur => "kur",
            Kind::P10cr => "p10cr",
            Kind::Rr => "rr",
            Kind::Genm => "genm",
            Kind::Krr => "krr",
            Kind::Ccr => "ccr",
        }
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

    /// The configuration this transaction runs under.
    pub fn config(&self) -> &ClientConfig {
        &self.config
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
        let log = self.config.log.clone();
        let op = self.operation_name();
        crate::log::log(&log, LogLevel::Info, || {
            let body = message::from_der_checked::<PkiMessage>(bytes)
                .map(|m| m.body.name())
                .unwrap_or("undecodable message");
            format!("{op}: received {body} ({} bytes)", bytes.len())
        });
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
                match &r {
                    Ok(()) => crate::log::log(&log, LogLevel::Info, || {
                        let status = self
                            .response
                            .status
                            .as_ref()
                            .map_or("done".to_owned(), |s| s.to_string());
                        format!("{op}: finished: {status}")
                    }),
                    Err(e) => {
                        crate::log::log(&log, LogLevel::Error, || format!("{op}: failed: {e}"))
                    }
                }
                self.state = State::Done(r.clone());
                r
            }
            Err(e) => {
                crate::log::log(&log, LogLevel::Error, || format!("{op}: failed: {e}"));
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
        self.verify_protection(&msg, bytes)?;
        self.check_ids(&msg)?;
        self.peer_nonce = Some(
            message::octets(&msg.header.sender_nonce)
                .ok_or_else(|| {
                    Error::new(ErrorCode::MissingHeaderField, "response has no senderNonce")
                })?
                .to_vec(),
        );
        self.check_message_time(&msg)?;
        self.wait = None;
        let kind = self.kind;
        match (&msg.body, expect) {
            (PkiBody::Error(e), Expect::Final | Expect::Poll)
                if e.pki_status_info.status == PkiStatus::Waiting as u8 =>
            {
                // RFC 9810 §5.3.22: any request may be answered by an error message with
                // status waiting; polling then uses certReqId -1.
                self.response.status = Some(PeerStatus::from_status_info(&e.pki_status_info));
                self.start_polling(NO_CERT_REQ_ID)
            }
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
            (PkiBody::PollRep(entries), Expect::Poll) => self.handle_poll_rep(entries),
            (PkiBody::Ip(rep), Expect::Final | Expect::Poll) if kind == Kind::Ir => {
                self.handle_cert_rep(&msg, rep)
            }
            (PkiBody::Cp(rep), Expect::Final | Expect::Poll)
                if matches!(kind, Kind::Cr | Kind::P10cr) =>
            {
                self.handle_cert_rep(&msg, rep)
            }
            (PkiBody::Kup(rep), Expect::Final | Expect::Poll) if kind == Kind::Kur => {
                self.handle_cert_rep(&msg, rep)
            }
            (PkiBody::Ccp(rep), Expect::Final | Expect::Poll) if kind == Kind::Ccr => {
                self.handle_cert_rep(&msg, rep)
            }
            (PkiBody::Krp(rep), Expect::Final | Expect::Poll) if kind == Kind::Krr => {
                self.handle_key_rec_rep(&msg, rep)
            }
            (PkiBody::Rp(rep), Expect::Final | Expect::Poll) if kind == Kind::Rr => {
                self.handle_rev_rep(&msg, rep)
            }
            (PkiBody::Genp(itavs), Expect::Final | Expect::Poll) if kind == Kind::Genm => {
                self.response.extra_certs = ders(msg.extra_certs.as_ref());
                self.response.genp = itavs.clone();
                Ok(None)
            }
            (PkiBody::PkiConf(_), Expect::PkiConf) => Ok(None),
            (body, _) => Err(Error::new(
                ErrorCode::UnexpectedBody,
                format!(
                    "expected {}, got {}",
                    match expect {
                        Expect::PkiConf => "pkiConf",
                        Expect::Final => kind.response_name(),
                        Expect::Poll => "pollRep or the final response",
                    },
                    body.name()
                ),
            )),
        }
    }

    /// With a tolerance configured, the response's messageTime must be within it of our clock.
    fn check_message_time(&self, msg: &PkiMessage) -> Result<()> {
        let (Some(tolerance), Some(t)) = (
            self.config.message_time_tolerance,
            msg.header.message_time.as_ref(),
        ) else {
            return Ok(());
        };
        let theirs = t.to_system_time();
        let now = std::time::SystemTime::now();
        let off = match theirs.duration_since(now) {
            Ok(ahead) => ahead,
            Err(e) => e.duration(),
        };
        if off > tolerance {
            return Err(Error::new(
                ErrorCode::BadMessageTime,
                format!(
                    "response messageTime {} is {} s {} our clock, more than the tolerance of {} s",
                    t.to_date_time(),
                    off.as_secs(),
                    if theirs > now { "ahead of" } else { "behind" },
                    tolerance.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Answer a waiting status with a pollReq for `cert_req_id`, sent right away.
    fn start_polling(&mut self, cert_req_id: i64) -> Result<Option<State>> {
        self.cert_req_id_polled = cert_req_id;
        self.wait = Some(Duration::ZERO);
        self.poll_request()
    }

    /// A fresh pollReq for the polled certReqId.
    fn poll_request(&mut self) -> Result<Option<State>> {
        let body = PkiBody::PollReq(vec![PollReqEntry {
            cert_req_id: int_from_i64(self.cert_req_id_polled)?,
        }]);
        let request = self.build(body, false)?;
        Ok(Some(State::Awaiting {
            request,
            expect: Expect::Poll,
        }))
    }

    /// pollRep: wait `checkAfter` seconds, then poll again.
    fn handle_poll_rep(&mut self, entries: &[PollRepEntry]) -> Result<Option<State>> {
        let [entry] = entries else {
            return Err(Error::new(
                ErrorCode::BadMessageContent,
                format!("expected one pollRep entry, got {}", entries.len()),
            ));
        };
        let id = int_to_i64(&entry.cert_req_id);
        if id != Some(self.cert_req_id_polled) {
            return Err(Error::new(
                ErrorCode::CertReqIdMismatch,
                format!(
                    "pollRep is for certReqId {id:?}, we polled for {}",
                    self.cert_req_id_polled
                ),
            ));
        }
        let check_after = Duration::from_secs(entry.check_after);
        self.response.poll_rounds += 1;
        self.response.requested_wait += check_after;
        if let Some(reason) = &entry.reason {
            self.response.poll_reasons = reason.clone();
        }
        let next = self.poll_request()?;
        self.wait = Some(check_after);
        Ok(next)
    }

    /// rp: one status for our one RevDetails.
    fn handle_rev_rep(&mut self, msg: &PkiMessage, rep: &RevRepContent) -> Result<Option<State>> {
        self.response.extra_certs = ders(msg.extra_certs.as_ref());
        let [si] = rep.status.as_slice() else {
            return Err(Error::new(
                ErrorCode::BadMessageContent,
                format!("expected one status in rp, got {}", rep.status.len()),
            ));
        };
        let status = PeerStatus::from_status_info(si);
        self.response.status = Some(status.clone());
        match PkiStatus::from_u8(status.status) {
            // RFC 9810 §5.2.3: revocationWarning (revocation imminent) and
            // revocationNotification (revocation occurred) are not failures of the request.
            Some(
                PkiStatus::Accepted
                | PkiStatus::GrantedWithMods
                | PkiStatus::RevocationWarning
                | PkiStatus::RevocationNotification,
            ) => Ok(None),
            Some(PkiStatus::Rejection) => Err(Error::new(
                ErrorCode::Rejected,
                format!("the CA rejected the revocation: {status}"),
            )),
            Some(PkiStatus::Waiting) => self.start_polling(NO_CERT_REQ_ID),
            _ => Err(Error::new(
                ErrorCode::BadMessageContent,
                format!("unexpected status in rp: {status}"),
            )),
        }
    }

    fn handle_cert_rep(&mut self, msg: &PkiMessage, rep: &CertRepMessage) -> Result<Option<State>> {
        self.response.ca_pubs = ders(rep.ca_pubs.as_ref());
        self.response.extra_certs = ders(msg.extra_certs.as_ref());
        let [resp] = rep.response.as_slice() else {
            return Err(Error::new(
                ErrorCode::BadMessageContent,
                format!("expected one CertResponse, got {}", rep.response.len()),
            ));
        };
        let id = int_to_i64(&resp.cert_req_id);
        if id != Some(self.cert_req_id) {
            return Err(Error::new(
                ErrorCode::CertReqIdMismatch,
                format!(
                    "response is for certReqId {id:?}, we asked with {}",
                    self.cert_req_id
                ),
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
            Some(PkiStatus::Waiting) => return self.start_polling(self.cert_req_id),
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
        let fields = cert.fields()?;
        let cert_spki = fields.spki;
        let granted = message::has_implicit_confirm(&msg.header);
        self.response.implicit_confirm_granted = self.config.implicit_confirm && granted;
        self.response.certificate = Some(cert.der().to_vec());
        // The certificate is unusable if its key is not ours (or, with central key generation,
        // if we cannot decrypt the delivered key or it does not match): reject it in certConf.
        let problem = if self.central_keygen {
            self.take_delivered_key(resp.certified_key_pair.as_ref(), cert_spki, fields.issuer)
                .err()
                .map(|e| {
                    let text = match e.code {
                        ErrorCode::CertKeyMismatch => {
                            "the delivered private key does not match the new certificate"
                        }
                        _ => "cannot decrypt or verify the delivered private key",
                    };
                    (e, text)
                })
        } else if cert_spki != self.key_spki.as_slice() {
            Some((
                Error::new(
                    ErrorCode::CertKeyMismatch,
                    "the issued certificate does not carry the public key we asked to certify; rejected it in certConf",
                ),
                "public key in new certificate does not match our enrollment key",
            ))
        } else {
            None
        };
        let mut cert_status = None;
        if let Some((e, text)) = problem {
            if self.response.implicit_confirm_granted {
                return Err(e);
            }
            cert_status = Some(crate::asn1::PkiStatusInfo {
                status: PkiStatus::Rejection as u8,
                status_string: Some(vec![text.into()]),
                fail_info: Some(message::fail_info_bit_string(
                    1 << message::fail_info::INCORRECT_DATA,
                )?),
            });
            self.rejection = Some(e.context("rejected the certificate in certConf"));
        }
        if self.response.implicit_confirm_granted {
            return Ok(None);
        }
        let hash = cert_hash(cert.der())?;
        let body = PkiBody::CertConf(vec![CertStatus {
            cert_hash: OctetString::new(hash)?,
            cert_req_id: int_from_i64(self.cert_req_id)?,
            status_info: cert_status,
            hash_alg: None,
        }]);
        let request = self.build(body, false)?;
        Ok(Some(State::Awaiting {
            request,
            expect: Expect::PkiConf,
        }))
    }

    /// Decrypt and check the private key delivered with a centrally generated certificate
    /// (SubjectPublicKeyInfo DER `cert_spki`, issuer name DER `issuer`); store it in the
    /// response.
    fn take_delivered_key(
        &mut self,
        pair: Option<&CertifiedKeyPair>,
        cert_spki: &[u8],
        issuer: &[u8],
    ) -> Result<()> {
        let Some(encrypted) = pair.and_then(|p| p.private_key.as_ref()) else {
            return Err(Error::new(
                ErrorCode::NoCertificate,
                "we asked for a centrally generated key, but the response carries no privateKey",
            ));
        };
        let (pkcs8, signer) = self.decrypt_key(encrypted, issuer)?;
        check_key_matches(&pkcs8, cert_spki)?;
        self.response.private_key_pkcs8 = Some(pkcs8);
        self.response.key_generation_authority = signer;
        Ok(())
    }

    /// Decrypt an EncryptedKey with our decryptor or shared secret, and verify its signer
    /// (the key belongs to a certificate issued by `issuer`, name DER).
    fn decrypt_key(
        &self,
        encrypted: &crate::asn1::EncryptedKey,
        issuer: &[u8],
    ) -> Result<(SecretBytes, Option<Vec<u8>>)> {
        let secret = self
            .config
            .credentials
            .as_ref()
            .and_then(|c| c.mac_protection())
            .map(|m| m.secret());
        let (content_type, content) =
            decrypt_encrypted_key(encrypted, self.config.decryptor.as_deref(), secret)?;
        let key = extract_private_key(
            content_type,
            &content,
            self.config.trust.as_ref(),
            &self.config.untrusted,
            Some(issuer),
        )?;
        Ok((key.pkcs8, key.signer))
    }

    /// krp (RFC 9810 §5.3.10): newSigCert for our key, caCerts, and the recovered key pairs.
    fn handle_key_rec_rep(
        &mut self,
        msg: &PkiMessage,
        rep: &KeyRecRepContent,
    ) -> Result<Option<State>> {
        self.response.extra_certs = ders(msg.extra_certs.as_ref());
        let status = PeerStatus::from_status_info(&rep.status);
        self.response.status = Some(status.clone());
        match PkiStatus::from_u8(status.status) {
            Some(PkiStatus::Accepted) | Some(PkiStatus::GrantedWithMods) => {}
            Some(PkiStatus::Rejection) => {
                return Err(Error::new(
                    ErrorCode::Rejected,
                    format!("the CA rejected the key recovery: {status}"),
                ));
            }
            Some(PkiStatus::Waiting) => return self.start_polling(self.cert_req_id),
            _ => {
                return Err(Error::new(
                    ErrorCode::BadMessageContent,
                    format!("unexpected status in krp: {status}"),
                ));
            }
        }
        self.response.ca_pubs = ders(rep.ca_certs.as_ref());
        if let Some(cert) = &rep.new_sig_cert {
            self.response.certificate = Some(cert.der().to_vec());
            if cert.fields()?.spki != self.key_spki.as_slice() {
                return Err(Error::new(
                    ErrorCode::CertKeyMismatch,
                    "krp newSigCert does not carry the public key of our krr",
                ));
            }
        }
        let mut recovered = Vec::new();
        for (i, pair) in rep.key_pair_hist.iter().flatten().enumerate() {
            let cert = match &pair.cert_or_enc_cert {
                crate::asn1::CertOrEncCert::Certificate(c) => c,
                crate::asn1::CertOrEncCert::EncryptedCert(_) => {
                    return Err(Error::new(
                        ErrorCode::UnsupportedAlgorithm,
                        format!("keyPairHist entry {i}: encrypted certificates are not supported"),
                    ));
                }
            };
            let certificate = cert.der().to_vec();
            let private_key_pkcs8 = match &pair.private_key {
                Some(encrypted) => {
                    let fields = cert.fields()?;
                    let (pkcs8, _) = self
                        .decrypt_key(encrypted, fields.issuer)
                        .map_err(|e| e.context(&format!("keyPairHist entry {i}")))?;
                    check_key_matches(&pkcs8, fields.spki)
                        .map_err(|e| e.context(&format!("keyPairHist entry {i}")))?;
                    Some(pkcs8)
                }
                None => None,
            };
            recovered.push(RecoveredKey {
                certificate,
                private_key_pkcs8,
            });
        }
        self.response.recovered_keys = recovered;
        Ok(None)
    }

    /// Build and protect a request with a fresh senderNonce.
    fn build(&mut self, body: PkiBody, implicit_confirm: bool) -> Result<Vec<u8>> {
        let config = self.config.clone();
        let creds = match &self.own_signer {
            Some(_) => config.credentials.as_ref(),
            None => Some(config.credentials()?),
        };
        self.sender_nonce = message::random_bytes(16)?;
        let (sender, sender_kid, default_recipient, extra_certs) = match (&self.own_signer, creds) {
            (None, None) => unreachable!("checked above"),
            (None, Some(Credentials::Mac { reference, .. })) => {
                let sender = match &self.subject {
                    Some(s) => CmpName::try_from(s)?,
                    None => CmpName::null_dn(),
                };
                (sender, Some(message::octet_string(reference)?), None, None)
            }
            (own, creds) => {
                if self.signer_fields.is_none() {
                    let chain = match creds {
                        Some(Credentials::Signature { chain, .. }) => chain.as_slice(),
                        _ => &[],
                    };
                    let fields = match (own, creds) {
                        (Some(own), creds) => {
                            // Usually the configured certificate itself (a kur or rr of our
                            // own certificate): then its remembered fields serve.
                            let configured = match creds {
                                Some(Credentials::Signature { cert, .. }) => {
                                    Some(config_signer_fields(&config, cert, chain)?)
                                }
                                _ => None,
                            };
                            match configured {
                                Some(f) if signs_with(&f, &own.cert) => f,
                                _ => signer_header_fields(message::SignerIdentity::from_cert(
                                    own.cert.clone(),
                                    chain,
                                )?)?,
                            }
                        }
                        (None, Some(Credentials::Signature { cert, .. })) => {
                            config_signer_fields(&config, cert, chain)?
                        }
                        _ => unreachable!("MAC credentials handled above"),
                    };
                    self.signer_fields = Some(fields);
                }
                self.signer_fields.clone().expect("set above")
            }
        };
        let recipient = match &self.config.recipient {
            Some(r) => CmpName::try_from(r)?,
            None => default_recipient.unwrap_or_else(CmpName::null_dn),
        };
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
        let protection = match (&self.own_signer, creds) {
            (Some(own), _) => &own.protection,
            (None, Some(c)) => c.protection(),
            (None, None) => unreachable!("checked above"),
        };
        let der = protection::protect_to_der(&mut msg, protection, Some(&mut self.mac_alg))?;
        crate::log::log(&self.config.log, LogLevel::Debug, || {
            format!(
                "{}: sending {} ({} bytes)",
                self.operation_name(),
                msg.body.name(),
                der.len()
            )
        });
        Ok(der)
    }

    /// Check the protection of a response (`msg`, decoded from `der`) against our credentials
    /// and trust settings.
    fn verify_protection(&mut self, msg: &PkiMessage, der: &[u8]) -> Result<()> {
        match protection::protection_kind(msg) {
            Some(ProtectionKind::Mac) => match self.config.credentials.as_ref().and_then(|c| c.mac_protection()) {
                Some(mac) => mac.verify_with_limits(msg, Some(der), &self.config.mac_limits)
                    .map_err(|e| e.context("response protection")),
                None => Err(Error::new(
                    ErrorCode::WrongProtectionType,
                    "the response is MAC-protected, but we have no shared secret (we sent a signed request)",
                )),
            },
            Some(ProtectionKind::Signature) => {
                let signer = self.checked_peer_signer(msg)?;
                protection::verify_signature_by(msg, Some(der), signer)
            }
            None => Err(Error::new(ErrorCode::ProtectionMissing, "the response is not protected")),
        }
    }

    /// The validated certificate of the response's signer; checked once per transaction
    /// (and its chain validated once per [`TrustStore`](crate::crypto::TrustStore) cache period).
    fn checked_peer_signer(&mut self, msg: &PkiMessage) -> Result<&ValidatedCert> {
        let first_der = msg
            .extra_certs
            .as_ref()
            .and_then(|c| c.first())
            .map(CmpCertificate::der);
        let reuse = match (&self.peer_signer, first_der) {
            (Some(p), Some(d)) => p.der == d,
            (Some(_), None) => true,
            _ => false,
        };
        if !reuse {
            let signer = match (&self.config.server_cert, first_der) {
                (Some(pinned), d) => {
                    if let Some(d) = d {
                        if d != pinned.to_der()?.as_slice() {
                            return Err(Error::new(
                                ErrorCode::SenderMismatch,
                                format!("the response is signed by {}, not the configured server certificate", subject_text(&parse_der(d)?)),
                            ));
                        }
                    }
                    Arc::new(ValidatedCert::new(pinned.clone())?)
                }
                (None, Some(d)) => {
                    let trust = self.config.trust.as_ref().ok_or_else(|| {
                        Error::new(ErrorCode::MissingConfig, "the response is signed, but no trust anchors are configured to validate it")
                    })?;
                    let more = msg.extra_certs.as_deref().unwrap_or_default();
                    trust.validate_der_among(
                        d,
                        &self.config.untrusted,
                        more.get(1..).unwrap_or_default(),
                    )?
                }
                (None, None) => {
                    return Err(Error::new(ErrorCode::SignerNotTrusted, "the signed response carries no certificate in extraCerts and none is configured"));
                }
            };
            let sender = &msg.header.sender;
            if sender
                .directory_name_der()
                .is_some_and(|s| s != signer.subject_der.as_slice())
            {
                return Err(Error::new(
                    ErrorCode::SenderMismatch,
                    format!("the response's sender {sender} is not the subject of its signer certificate {}", subject_text(&signer.cert)),
                ));
            }
            if self.config.require_cmc_eku {
                check_cmc_eku(&signer.cert)?;
            }
            self.peer_signer = Some(signer);
        }
        Ok(self.peer_signer.as_ref().expect("set above"))
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
                        message::hex(t),
                        message::hex(&self.transaction_id)
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
                    message::hex(n),
                    message::hex(&self.sender_nonce)
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
            PkiBody::Krp(r) => Some(PeerStatus::from_status_info(&r.status)),
            PkiBody::Ip(r) | PkiBody::Cp(r) | PkiBody::Kup(r) | PkiBody::Ccp(r) => r
                .response
                .first()
                .map(|r| PeerStatus::from_status_info(&r.status)),
            PkiBody::Rp(r) => r.status.first().map(PeerStatus::from_status_info),
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

/// sender, senderKID, default recipient and extraCerts for requests signed with `cert`.
type SignerFields = (
    CmpName,
    Option<OctetString>,
    Option<CmpName>,
    Option<Vec<CmpCertificate>>,
);

/// What is remembered of a configuration with signature credentials, see [`CONFIG_CACHE`].
struct ConfigEntry {
    /// The configuration (see [`CONFIG_CACHE`] for why a `Weak`).
    config: std::sync::Weak<ClientConfig>,
    /// The [`SignerFields`] of its certificate.
    signer: SignerFields,
    /// Its certificate as a kur or rr names it, once one did.
    named: Option<Arc<NamedCert>>,
}

/// Per configuration with signature credentials: the [`SignerFields`] of its certificate,
/// and that certificate as a kur or rr (of our own certificate, the usual case) names it.
/// They are the same for every transaction of a configuration, and making them encodes,
/// reads and decodes certificates (a few µs each). An entry holds a `Weak` to its
/// configuration, which keeps the configuration's allocation (not its contents) from being
/// reused, so the address of a live `Arc<ClientConfig>` matches only its own entry; entries
/// of dropped configurations go first.
static CONFIG_CACHE: std::sync::Mutex<Vec<ConfigEntry>> = std::sync::Mutex::new(Vec::new());

/// How many configurations [`CONFIG_CACHE`] remembers.
const CONFIG_CACHE_MAX: usize = 16;

/// `f` on the [`CONFIG_CACHE`] entry of `config`, whose signature credentials are `cert`
/// and `chain`; the entry is made first if there is none.
fn with_config_entry<T>(
    config: &Arc<ClientConfig>,
    cert: &X509,
    chain: &[X509],
    f: impl FnOnce(&mut ConfigEntry) -> T,
) -> Result<T> {
    let ours = |e: &ConfigEntry| std::ptr::eq(e.config.as_ptr(), Arc::as_ptr(config));
    let lock = || {
        CONFIG_CACHE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(e) = lock().iter_mut().find(|e| ours(e)) {
        return Ok(f(e));
    }
    // Made without the lock held; another thread may have made it meanwhile.
    let signer = signer_header_fields(message::SignerIdentity::new(cert, chain)?)?;
    let mut cache = lock();
    let at = match cache.iter().position(ours) {
        Some(at) => at,
        None => {
            cache.retain(|e| e.config.strong_count() > 0);
            if cache.len() >= CONFIG_CACHE_MAX {
                cache.remove(0);
            }
            cache.push(ConfigEntry {
                config: Arc::downgrade(config),
                signer,
                named: None,
            });
            cache.len() - 1
        }
    };
    Ok(f(&mut cache[at]))
}

/// [`SignerFields`] for the signature credentials (`cert`, `chain`) of `config`, remembered.
fn config_signer_fields(
    config: &Arc<ClientConfig>,
    cert: &X509,
    chain: &[X509],
) -> Result<SignerFields> {
    with_config_entry(config, cert, chain, |e| e.signer.clone())
}

/// Whether requests with the header fields `fields` are signed with `cert`.
fn signs_with(fields: &SignerFields, cert: &CmpCertificate) -> bool {
    fields
        .3
        .as_ref()
        .and_then(|e| e.first())
        .is_some_and(|c| c.der() == cert.der())
}

/// The [`NamedCert`] of `cert`, which a kur or rr under `config` names: remembered with the
/// configuration if `cert` is its signature certificate, else read.
fn named_cert(
    config: &Arc<ClientConfig>,
    cert: &CmpCertificate,
    what: &'static str,
) -> Result<Arc<NamedCert>> {
    let read = || NamedCert::read(cert, what).map(Arc::new);
    let Some(Credentials::Signature {
        cert: own, chain, ..
    }) = &config.credentials
    else {
        return read();
    };
    let remembered = with_config_entry(config, own, chain, |e| {
        signs_with(&e.signer, cert).then(|| e.named.clone())
    })?;
    match remembered {
        None => read(),
        Some(Some(named)) => Ok(named),
        Some(None) => {
            let named = read()?;
            with_config_entry(config, own, chain, |e| e.named = Some(named.clone()))?;
            Ok(named)
        }
    }
}

fn signer_header_fields(id: message::SignerIdentity) -> Result<SignerFields> {
    Ok((
        id.sender,
        id.ski.map(|s| message::octet_string(&s)).transpose()?,
        Some(CmpName::try_from(&id.issuer)?),
        Some(id.extra),
    ))
}

/// RFC 9483 §3.1 / RFC 9810: the CMP protection certificate of a CA or RA carries
/// `id-kp-cmcCA` or `id-kp-cmcRA` in its extended key usage.
fn check_cmc_eku(cert: &X509) -> Result<()> {
    let parsed = x509_cert::Certificate::from_der(&cert.to_der()?)?;
    let mut ekus = Vec::new();
    for e in parsed
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == oid::EXT_KEY_USAGE)
    {
        let eku = crate::message::from_der_checked::<x509_cert::ext::pkix::ExtendedKeyUsage>(
            e.extn_value.as_bytes(),
        )?;
        ekus.extend(eku.0);
    }
    if ekus
        .iter()
        .any(|o| *o == oid::KP_CMC_CA || *o == oid::KP_CMC_RA)
    {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::MissingCmcEku,
            format!(
                "the response signer {} has no id-kp-cmcCA or id-kp-cmcRA extended key usage{}",
                subject_text(cert),
                if ekus.is_empty() {
                    " (no extendedKeyUsage at all)".to_string()
                } else {
                    format!(
                        " (it has {})",
                        ekus.iter()
                            .map(|o| o.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        ))
    }
}

/// The private key `pkcs8` must be the key of the certificate with SubjectPublicKeyInfo
/// `cert_spki`; else [`ErrorCode::CertKeyMismatch`].
fn check_key_matches(pkcs8: &[u8], cert_spki: &[u8]) -> Result<()> {
    let key = PKey::private_key_from_der(pkcs8).map_err(|e| {
        Error::new(
            ErrorCode::KeyError,
            format!("the delivered private key is not a PKCS#8 key OpenSSL can read: {e}"),
        )
    })?;
    if key.public_key_to_der()? != cert_spki {
        return Err(Error::new(
            ErrorCode::CertKeyMismatch,
            "the delivered private key does not belong to the certificate's public key",
        ));
    }
    Ok(())
}

/// CertTemplate subject, extensions (subjectAltName) for a request.
fn template_extensions(
    subject: &Option<Name>,
    sans: &[GeneralName],
) -> Result<Option<x509_cert::ext::Extensions>> {
    if sans.is_empty() {
        return Ok(None);
    }
    let san = SubjectAltName(sans.to_vec()).to_der()?;
    Ok(Some(vec![Extension {
        extn_id: oid::SUBJECT_ALT_NAME,
        critical: subject.as_ref().is_none_or(|s| s.is_empty()),
        extn_value: OctetString::new(san)?,
    }]))
}

/// CertReqMsg for central key generation (RFC 9483 §4.1.6): publicKey with the algorithm and
/// an empty subjectPublicKey (or absent), no POP.
fn keygen_req_msg(request: &KeygenRequest) -> Result<CertReqMsg> {
    let spki = request
        .algorithm
        .clone()
        .map(|algorithm| -> Result<_> {
            Ok(SubjectPublicKeyInfoOwned {
                algorithm,
                subject_public_key: BitString::from_bytes(&[])?,
            })
        })
        .transpose()?;
    Ok(CertReqMsg {
        cert_req: CertRequest {
            cert_req_id: Int::new(&[CERT_REQ_ID as u8])?,
            cert_template: CertTemplate {
                version: None,
                serial_number: None,
                signature: None,
                issuer: None,
                validity: None,
                subject: request.subject.clone(),
                subject_public_key_info: spki,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: template_extensions(&request.subject, &request.sans)?,
            },
            controls: None,
        },
        popo: None,
        reg_info: None,
    })
}

/// CertReqMsg for `request`, with POP by signature over the DER of the CertRequest.
fn cert_req_msg(
    request: &EnrollRequest,
    controls: Option<crmf::controls::Controls>,
) -> Result<CertReqMsg> {
    let spki = request.key.public_key_info()?;
    let extensions = template_extensions(&request.subject, &request.sans)?;
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
        controls,
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
    use crate::crypto::{Digest, HashAlg};
    let hash = match crate::asn1::CertFields::signature_algorithm_of(cert_der)? {
        o if o == oid::ECDSA_SHA384 || o == oid::RSA_SHA384 => HashAlg::Sha384,
        o if o == oid::ECDSA_SHA512 || o == oid::RSA_SHA512 || o == oid::ED25519 => HashAlg::Sha512,
        o if o == oid::ED448 => {
            let mut h = openssl::hash::Hasher::new(openssl::hash::MessageDigest::shake_256())?;
            h.update(cert_der)?;
            let mut out = vec![0u8; 64];
            h.finish_xof(&mut out)?;
            return Ok(out);
        }
        _ => HashAlg::Sha256,
    };
    Ok(Digest::of(hash, &[cert_der]).as_bytes().to_vec())
}

fn ders(certs: Option<&Vec<CmpCertificate>>) -> Vec<Vec<u8>> {
    certs
        .into_iter()
        .flatten()
        .map(|c| c.der().to_vec())
        .collect()
}

/// An INTEGER from an i64 (minimal two's complement, as DER wants).
pub(crate) fn int_from_i64(v: i64) -> Result<Int> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(Int::new(&bytes[start..])?)
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
