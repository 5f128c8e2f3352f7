//! The CMP server side, sans-IO: [`Server::process`] takes the DER of a request and returns
//! the DER of the response, always (an error message when the request cannot be served).
//!
//! The server checks every request, in this order, and answers a failed check with a CMP
//! error message whose PKIFailureInfo names the failed check (RFC 9810 §5.2.3, RFC 9483
//! §3.5) and whose statusString says which check failed:
//!
//! | check | failInfo |
//! |---|---|
//! | size cap and DER decoding | `badDataFormat` |
//! | `pvno` 2 or 3 | `unsupportedVersion` |
//! | protection present and of a kind this server accepts | `badMessageCheck` / `wrongIntegrity` |
//! | MAC: secret for the senderKID | `signerNotTrusted` ("unknown or not trusted") |
//! | MAC: parameters within [`MacLimits`] (before any hashing), algorithm supported | `badAlg` |
//! | MAC value | `badMessageCheck` |
//! | signature: signer certificate in extraCerts validates against the trust anchors | `signerNotTrusted` |
//! | signature value; sender is the signer certificate's subject | `badMessageCheck` |
//! | transactionID present | `badRequest` |
//! | senderNonce present, at least 16 octets | `badSenderNonce` |
//! | messageTime within the configured skew | `badTime` |
//! | body is a request this server serves | `badRequest` |
//! | template has a public key (certificate requests) | `badCertTemplate` |
//! | proof of possession | `badPOP` |
//! | transactionID not in use (new transactions) | `transactionIdInUse` |
//! | certConf/pollReq: same requester as the transaction's first request | `notAuthorized` |
//! | certConf/pollReq: recipNonce is our last senderNonce | `badRecipientNonce` |
//! | certConf: certHash of the issued certificate | `badCertId` |
//! | transaction store unavailable | `systemUnavail` |
//! | nested: signed by one of [`ServerConfig::trusted_ras`] | `notAuthorized` |
//! | nested: inner message decodes, is not nested again (one level) | `badDataFormat` / `badRequest` |
//! | nested with one inner message: same transactionID / senderNonce as the inner message | `badRequest` / `badSenderNonce` |
//!
//! A nested message (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2) from a trusted RA is unpacked and
//! each inner message goes through the checks above on its own. Where the server cannot
//! check the inner protection (unknown senderKID, untrusted signer, no protection), the RA's
//! signature vouches for it: the RA is the [`Requester`] and the answer is signed. One inner
//! message (the RA added its protection, RFC 9483 §5.2.2.1) is answered with the plain
//! response to it; several (a batch, RFC 9483 §5.2.2.2) with a nested message of responses.
//! [`ra::Ra`] is the RA side.
//!
//! Responses are protected like the request: MAC with exactly the request's parameters
//! ([`MacParams::Explicit`]; the key is derived once per parameter set and kept in the
//! server's [`MacKeyCache`] across requests), or a
//! signature with the server's key, its certificate and chain in extraCerts. A request that
//! could not be authenticated is answered with a signed error if the server has a signing
//! key, else unprotected: MAC-protecting an answer to an unauthenticated request would hand
//! anyone an offline dictionary attack on the shared secret.
//!
//! The CA's decisions come from a [`CaHandler`]; open transactions live in a
//! [`TransactionStore`] ([`MemoryStore`] by default). Transaction rules:
//! - a request that fails a check, or that the CA rejects, leaves no record; the CA's
//!   rejection is answered in the certificate response (status rejection, RFC 9810 §5.3.4),
//!   failed checks with an error message;
//! - once a certConf or pollReq has been authenticated and matched to its requester's
//!   transaction, a failed check ends the transaction (the record is removed and the CA told
//!   that its certificate is not confirmed);
//! - an error message from the client ends its transaction and is answered with pkiConf
//!   (RFC 9810 §5.3.21);
//! - a successfully finished transaction leaves a `Finished` record until it expires, so
//!   its transactionID cannot be reused.
//!
//! The `signerNotTrusted` answer to an unknown senderKID tells a client (authenticated or
//! not) that the reference does not exist (RFC 9810 §5.2.3: "the signer of the message is
//! unknown or not trusted"); answering `badMessageCheck` instead, to hide which references
//! exist, is not configurable yet.

pub mod demo_ca;
pub mod file_store;
mod kga;
pub mod ra;
pub mod store;
pub mod tools;

pub use file_store::FileStore;
pub use store::{MemoryStore, RecordState, TransactionRecord, TransactionStore};
pub use tools::{summarize, PollingCa};

use crate::asn1::{
    oid, CertId, CertOrEncCert, CertRepMessage, CertReqMsg, CertResponse, CertStatus, CertTemplate,
    CertifiedKeyPair, ErrorMsgContent, InfoTypeAndValue, PkiBody, PkiHeader, PkiMessage,
    PkiStatusInfo, PollRepEntry, RevDetails, RevRepContent,
};
use crate::asn1::{CmpCertificate, CmpName};
use crate::crypto::{SigAlg, Signer, TrustStore};
use crate::error::{Error, ErrorCode};
use crate::log::LogLevel;
use crate::message::{self, fail_info as fi, PkiStatus};
use crate::protection::{
    self, HashAlg, MacKeyCache, MacLimits, MacParams, MacProtection, Protection, ProtectionKind,
};
use crmf::pop::ProofOfPossession;
use der::asn1::Int;
use der::{Decode, Encode};
use openssl::x509::{X509Req, X509};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

/// Looks up the shared secret for a senderKID (the reference value of MAC-protected requests).
pub trait SecretLookup: Send + Sync {
    /// The secret for `sender_kid`, or `None` if the reference is unknown.
    fn secret(&self, sender_kid: &[u8]) -> Option<Vec<u8>>;
}

impl<F> SecretLookup for F
where
    F: Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync,
{
    fn secret(&self, sender_kid: &[u8]) -> Option<Vec<u8>> {
        self(sender_kid)
    }
}

/// Who authenticated a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// MAC protection with the secret of this senderKID.
    Mac {
        /// The reference value (senderKID).
        sender_kid: Vec<u8>,
    },
    /// Signature protection by this certificate (validated against the trust anchors).
    Signature {
        /// The signer's certificate, DER.
        cert_der: Vec<u8>,
    },
}

impl Requester {
    /// A byte string identifying the requester, stored with a transaction so that its later
    /// messages must come from the same requester.
    pub fn identity(&self) -> Vec<u8> {
        match self {
            Requester::Mac { sender_kid } => [b"mac:".as_slice(), sender_kid].concat(),
            Requester::Signature { cert_der } => {
                signature_identity(&openssl::sha::sha256(cert_der))
            }
        }
    }
}

/// [`Requester::identity`] of the signer whose certificate has the SHA-256 `cert_sha256`.
fn signature_identity(cert_sha256: &[u8; 32]) -> Vec<u8> {
    [b"sig:".as_slice(), cert_sha256].concat()
}

/// The kind of certificate request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Initialization request (answered with ip).
    Ir,
    /// Certification request (cp).
    Cr,
    /// Key update request (kup).
    Kur,
    /// PKCS#10 request (cp).
    P10cr,
    /// Cross-certification request (ccp).
    Ccr,
    /// Key recovery request (krp; the new signature certificate, no certConf follows).
    Krr,
}

impl RequestKind {
    /// The PKIBody tag number of the request.
    pub fn tag(self) -> u8 {
        match self {
            RequestKind::Ir => 0,
            RequestKind::Cr => 2,
            RequestKind::P10cr => 4,
            RequestKind::Kur => 7,
            RequestKind::Ccr => 13,
            RequestKind::Krr => 9,
        }
    }

    fn response(self, rep: CertRepMessage) -> PkiBody {
        match self {
            RequestKind::Ir => PkiBody::Ip(rep),
            RequestKind::Cr | RequestKind::P10cr => PkiBody::Cp(rep),
            RequestKind::Kur => PkiBody::Kup(rep),
            RequestKind::Ccr => PkiBody::Ccp(rep),
            RequestKind::Krr => {
                // krp (RFC 9810 §5.3.9): the status and the new signature certificate; this
                // server archives no keys, so keyPairHist stays empty.
                let first = rep.response.into_iter().next();
                let new_sig_cert = first.as_ref().and_then(|r| {
                    match r.certified_key_pair.as_ref().map(|k| &k.cert_or_enc_cert) {
                        Some(CertOrEncCert::Certificate(c)) => Some(c.clone()),
                        _ => None,
                    }
                });
                PkiBody::Krp(Box::new(crate::asn1::KeyRecRepContent {
                    status: first.map(|r| r.status).unwrap_or(PkiStatusInfo {
                        status: 2,
                        status_string: None,
                        fail_info: None,
                    }),
                    new_sig_cert,
                    ca_certs: rep.ca_pubs,
                    key_pair_hist: None,
                }))
            }
        }
    }
}

/// A certificate request as the CA handler sees it: already authenticated, with a verified
/// proof of possession.
#[derive(Clone, Debug)]
pub struct CertRequestInfo {
    /// ir, cr, kur, p10cr, ccr or krr.
    pub kind: RequestKind,
    /// The transactionID.
    pub transaction_id: Vec<u8>,
    /// The certReqId (-1 for p10cr).
    pub cert_req_id: i64,
    /// The requested subject.
    pub subject: Option<Name>,
    /// The public key to certify (SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// Requested extensions (from the template or the PKCS#10 extensionRequest).
    pub extensions: Vec<Extension>,
    /// The CRMF template (absent for p10cr).
    pub template: Option<CertTemplate>,
    /// The PKCS#10 request, DER (p10cr only).
    pub csr: Option<Vec<u8>>,
    /// Central key generation: the server generated the key pair of `public_key` and
    /// delivers its private key with the certificate.
    pub central_keygen: bool,
    /// kur: the certificate to update (the oldCertID control, checked to name the certificate
    /// that signed the request; else that certificate). `None` for a MAC-protected or
    /// RA-signed kur without oldCertID, and for the other requests.
    pub old_cert_id: Option<CertId>,
    /// Who sent the request.
    pub requester: Requester,
    /// Whether the client asked for implicit confirmation.
    pub implicit_confirm_requested: bool,
    /// 0 when asked about the request itself, n when asked again on the n-th pollReq.
    pub polls: u32,
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requester::Mac { sender_kid } => match std::str::from_utf8(sender_kid) {
                Ok(t) if t.chars().all(|c| !c.is_control()) => write!(f, "senderKID \"{t}\""),
                _ => write!(f, "senderKID {}", message::hex(sender_kid)),
            },
            Requester::Signature { cert_der } => {
                match crate::asn1::CertFields::read(cert_der)
                    .and_then(|c| Name::from_der(c.subject))
                {
                    Ok(subject) => write!(f, "certificate \"{subject}\""),
                    Err(_) => f.write_str("an unreadable certificate"),
                }
            }
        }
    }
}

/// A refusal: PKIFailureInfo bits (mask, `1 << bit`) and a text for statusString.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// failInfo as a mask (`1 << bit`, see [`message::fail_info`]).
    pub fail_info: u32,
    /// Why, for statusString.
    pub text: String,
}

impl Rejection {
    /// A rejection with failInfo bit `bit` (a [`message::fail_info`] constant) and `text`.
    pub fn new(bit: u32, text: impl Into<String>) -> Self {
        Rejection {
            fail_info: 1 << bit,
            text: text.into(),
        }
    }
}

/// A certificate the CA issued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Issued {
    /// The new certificate, DER.
    pub cert: Vec<u8>,
    /// Certificates for caPubs (DER), e.g. the root for an ir.
    pub ca_pubs: Vec<Vec<u8>>,
    /// The chain of the new certificate (DER), sent in extraCerts.
    pub chain: Vec<Vec<u8>>,
}

/// The CA's answer to a certificate request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Issue this certificate.
    Issue(Issued),
    /// Refuse (answered with status rejection in ip/cp/kup).
    Reject(Rejection),
    /// Not decided yet: the client polls; the handler is asked again on each pollReq.
    Waiting,
}

/// A revocation request (rr) as the CA handler sees it.
#[derive(Clone, Debug)]
pub struct RevocationRequest {
    /// The issuer of the certificate to revoke.
    pub issuer: Name,
    /// Its serial number (the INTEGER's content octets).
    pub serial: Vec<u8>,
    /// The CRLReason code, if given in crlEntryDetails.
    pub reason: Option<u8>,
    /// Who sent the request.
    pub requester: Requester,
}

/// The CA behind the server. Called from several threads at once.
pub trait CaHandler: Send + Sync {
    /// Decide on an authenticated certificate request with a verified proof of possession.
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision;

    /// The outcome for an issued certificate: confirmed (`accepted`, by certConf or implicit
    /// confirmation) or not (rejected in certConf, certConf failed its checks, the client sent
    /// an error). An unconfirmed certificate should be revoked or discarded.
    fn cert_confirm(&self, transaction_id: &[u8], cert_der: &[u8], accepted: bool);

    /// Revoke a certificate; a refusal gives the failInfo (e.g. `badCertId`, `certRevoked`).
    fn revoke(&self, req: &RevocationRequest) -> Result<(), Rejection>;

    /// Answer a genm: the InfoTypeAndValues of the genp.
    fn general_message(
        &self,
        itavs: &[InfoTypeAndValue],
        requester: &Requester,
    ) -> Vec<InfoTypeAndValue>;
}

/// The server's signing key and certificates, for signature-protected responses.
pub struct ServerSigner {
    /// The signing key.
    pub key: Arc<dyn Signer>,
    /// The certificate of `key`; its subject is the sender of signed responses.
    pub cert: X509,
    /// Intermediates sent after `cert` in extraCerts.
    pub chain: Vec<X509>,
}

/// Server settings.
pub struct ServerConfig {
    /// Key and certificate for signed responses (and for errors to unauthenticated requests).
    pub signer: Option<ServerSigner>,
    /// Secrets for MAC-protected requests, by senderKID; `None`: MAC protection not accepted.
    pub secrets: Option<Arc<dyn SecretLookup>>,
    /// The sender name of MAC-protected responses (default: the signer's subject, else NULL-DN).
    pub mac_sender: Option<Name>,
    /// Trust anchors for signature-protected requests; `None` (or no `signer`): signature
    /// protection not accepted.
    pub trust: Option<TrustStore>,
    /// Intermediate certificates that may complete a requester's chain.
    pub untrusted: Vec<X509>,
    /// Caps on the MAC parameters of requests.
    pub mac_limits: MacLimits,
    /// Largest request accepted, in bytes.
    pub max_message_size: usize,
    /// Grant implicitConfirm when the client asks for it.
    pub grant_implicit_confirm: bool,
    /// Accept `raVerified` POP from signature-authenticated requesters (they are trusted RAs);
    /// when [`trusted_ras`](Self::trusted_ras) is not empty, only from those certificates.
    pub accept_ra_verified: bool,
    /// Certificates of trusted RAs (PKI management entities, RFC 9483 §5.2). A nested message
    /// (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2) is accepted only when signed with one of them
    /// (validated against [`trust`](Self::trust) like any signer); the inner messages may then
    /// carry a protection this server cannot check (e.g. a MAC with a secret only the RA
    /// knows), the RA's signature vouching for them. Empty: nested messages are refused.
    pub trusted_ras: Vec<X509>,
    /// The checkAfter of pollRep, in seconds.
    pub check_after: u64,
    /// If set, a request's messageTime may differ from our clock by at most this much.
    pub max_clock_skew: Option<Duration>,
    /// How long an open transaction (and a finished one's transactionID) is remembered.
    pub transaction_timeout: Duration,
    /// Act as key generation authority (RFC 9483 §4.1.6): for an ir or cr whose template
    /// has no public key (or an empty one), generate the key pair the template's algorithm
    /// names, have the CA certify it, and deliver the private key enveloped for the
    /// requester's protection certificate (key transport or agreement) or, for a
    /// MAC-authenticated requester, with its shared secret (password recipient), and signed
    /// with [`signer`](Self::signer). Default: off (such requests are refused with
    /// badCertTemplate).
    pub central_keygen: bool,
    /// With [`central_keygen`](Self::central_keygen): sign the generated key's
    /// `OneAsymmetricKey` itself rather than an `AsymmetricKeyPackage` holding it. RFC 9483
    /// §4.1.6 asks for the package (the default); OpenSSL 3.5's client decodes only the bare
    /// key (`OSSL_CRMF_ENCRYPTEDKEY_get1_pkey` reads the content with `d2i_PrivateKey`).
    /// cmpkit's client accepts both.
    pub central_keygen_bare_key: bool,
    /// Where to log requests and their outcome (none by default): at `Error` each refused
    /// request with the failed check and the failInfo sent, at `Info` also each answered
    /// request and each rejection by the CA, at `Debug` also each request received. Called
    /// from whichever thread runs [`Server::process`].
    pub log: Option<crate::log::Logger>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            signer: None,
            secrets: None,
            mac_sender: None,
            trust: None,
            untrusted: Vec::new(),
            mac_limits: MacLimits::default(),
            max_message_size: message::DEFAULT_MAX_MESSAGE_SIZE,
            grant_implicit_confirm: false,
            accept_ra_verified: false,
            trusted_ras: Vec::new(),
            check_after: 5,
            max_clock_skew: None,
            transaction_timeout: Duration::from_secs(600),
            central_keygen: false,
            central_keygen_bare_key: false,
            log: None,
        }
    }
}

/// A check that failed: failInfo bit and the text for statusString.
#[derive(Debug)]
struct Failure {
    bit: u32,
    text: String,
}

impl Failure {
    fn new(bit: u32, text: impl Into<String>) -> Self {
        Failure {
            bit,
            text: text.into(),
        }
    }
}

type Checked<T> = std::result::Result<T, Failure>;

fn internal(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(fi::SYSTEM_FAILURE, format!("{what}: {e}"))
}

fn store_err(e: Error) -> Failure {
    Failure::new(
        fi::SYSTEM_UNAVAIL,
        format!("transaction store: {}", e.detail),
    )
}

/// How the request was authenticated, and so how the response is protected.
enum Auth {
    None,
    Mac {
        /// The secret with exactly the request's parameters; its cache holds the key derived
        /// while verifying, so protecting the response derives nothing.
        protection: Box<Protection>,
        sender_kid: Vec<u8>,
    },
    Signature,
}

struct Authenticated {
    auth: Auth,
    requester: Requester,
    /// The validated certificate of a [`Requester::Signature`] (the same certificate), as
    /// the trust store keeps it; `None` for the other requesters.
    signer: Option<Arc<crate::crypto::ValidatedCert>>,
    /// `requester.identity()`, computed once (from the SHA-256 that the trust store keeps
    /// with a signer's certificate).
    identity: Vec<u8>,
}

/// A CMP server: checks requests, asks the [`CaHandler`], keeps transactions in a
/// [`TransactionStore`] and answers. `Send + Sync`; call [`process`](Self::process) from
/// as many threads as needed.
pub struct Server {
    config: ServerConfig,
    handler: Arc<dyn CaHandler>,
    store: Arc<dyn TransactionStore>,
    signer_certs: Option<message::SignerIdentity>,
    /// `config.mac_sender` as a header name.
    mac_sender: Option<CmpName>,
    /// `config.trusted_ras` as DER, compared with a signer's certificate.
    trusted_ra_ders: Vec<Vec<u8>>,
    /// MAC keys derived for requests, kept across requests: a client that protects all
    /// messages of a transaction with the same parameters (RFC 4210 §5.1.3.1 recommends
    /// it) costs one derivation per transaction, not one per request.
    mac_keys: MacKeyCache,
}

/// How many derived MAC keys a server keeps (about 200 octets each): one per MAC-protected
/// transaction in progress is needed, a lost one only costs a derivation again.
const MAC_KEY_CACHE_CAPACITY: usize = 64;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("signs", &self.config.signer.is_some())
            .field("mac", &self.config.secrets.is_some())
            .finish_non_exhaustive()
    }
}

/// The PKIBody tag of genm and rr in stored records.
const TAG_RR: u8 = 11;
const TAG_GENM: u8 = 21;

impl Server {
    /// A server with `config`, deciding with `handler`, remembering transactions in `store`.
    ///
    /// Fails if the signer's or the trusted RAs' certificates cannot be read.
    pub fn new(
        config: ServerConfig,
        handler: Arc<dyn CaHandler>,
        store: Arc<dyn TransactionStore>,
    ) -> crate::Result<Self> {
        let signer_certs = config
            .signer
            .as_ref()
            .map(|s| message::SignerIdentity::new(&s.cert, &s.chain))
            .transpose()?;
        let mac_sender = config
            .mac_sender
            .as_ref()
            .map(CmpName::try_from)
            .transpose()?;
        let trusted_ra_ders = config
            .trusted_ras
            .iter()
            .map(|c| c.to_der())
            .collect::<std::result::Result<_, _>>()?;
        Ok(Server {
            config,
            handler,
            store,
            signer_certs,
            mac_sender,
            trusted_ra_ders,
            mac_keys: MacKeyCache::with_capacity(MAC_KEY_CACHE_CAPACITY),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Process one request (DER) and return the response (DER). Never panics: garbage gets
    /// an error message with failInfo `badDataFormat`, a panic inside gets `systemFailure`.
    pub fn process(&self, request: &[u8]) -> Vec<u8> {
        match catch_unwind(AssertUnwindSafe(|| self.process_checked(request))) {
            Ok(rsp) => rsp,
            Err(_) => catch_unwind(AssertUnwindSafe(|| {
                self.error_response(
                    None,
                    &Auth::None,
                    Failure::new(
                        fi::SYSTEM_FAILURE,
                        "internal error while processing the request",
                    ),
                )
            }))
            .unwrap_or_else(|_| FALLBACK_ERROR.to_vec()),
        }
    }

    fn process_checked(&self, bytes: &[u8]) -> Vec<u8> {
        self.check_then(bytes, |msg, bytes, a| self.handle(msg, bytes, a))
    }

    /// The checks every request passes first (size and DER, pvno, protection), then `next`
    /// (the CA's handling, or an RA's relaying); every failure becomes an error response.
    fn check_then(
        &self,
        bytes: &[u8],
        next: impl FnOnce(&PkiMessage, &[u8], &Authenticated) -> Checked<Vec<u8>>,
    ) -> Vec<u8> {
        let msg = match message::decode(bytes, self.config.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                return self.error_response(
                    None,
                    &Auth::None,
                    Failure::new(
                        fi::BAD_DATA_FORMAT,
                        format!("size and DER check: {}", e.detail),
                    ),
                )
            }
        };
        if !(2..=3).contains(&msg.header.pvno) {
            return self.error_response(
                Some(&msg),
                &Auth::None,
                Failure::new(
                    fi::UNSUPPORTED_VERSION,
                    format!(
                        "version check: pvno {} is not supported (2 and 3 are)",
                        msg.header.pvno
                    ),
                ),
            );
        }
        self.log(LogLevel::Debug, || {
            format!(
                "received {} ({} bytes, transactionID {})",
                msg.body.name(),
                bytes.len(),
                transaction_id_text(&msg)
            )
        });
        let authd = match self.authenticate(&msg, Some(bytes)) {
            Ok(a) => a,
            Err(f) => return self.error_response(Some(&msg), &Auth::None, f),
        };
        match next(&msg, bytes, &authd) {
            Ok(rsp) => {
                self.log(LogLevel::Info, || {
                    format!(
                        "answered {} from {} (transactionID {}): {} bytes",
                        msg.body.name(),
                        authd.requester,
                        transaction_id_text(&msg),
                        rsp.len()
                    )
                });
                rsp
            }
            Err(f) => self.error_response(Some(&msg), &authd.auth, f),
        }
    }

    /// Log through the configured logger (nothing is formatted without one).
    fn log(&self, level: LogLevel, line: impl FnOnce() -> String) {
        crate::log::log(&self.config.log, level, line);
    }

    /// Check the protection of `msg`; `der` is the DER it was decoded from, if at hand (a
    /// MAC is then checked over the header and body as received, not encoded again).
    fn authenticate(&self, msg: &PkiMessage, der: Option<&[u8]>) -> Checked<Authenticated> {
        match protection::protection_kind(msg) {
            None => Err(Failure::new(
                fi::BAD_MESSAGE_CHECK,
                "protection check: the request is not protected",
            )),
            Some(ProtectionKind::Mac) => {
                let Some(secrets) = &self.config.secrets else {
                    return Err(Failure::new(
                        fi::WRONG_INTEGRITY,
                        "protection check: this server does not accept MAC protection",
                    ));
                };
                let Some(kid) = message::octets(&msg.header.sender_kid) else {
                    return Err(Failure::new(
                        fi::BAD_MESSAGE_CHECK,
                        "protection check: MAC-protected request without senderKID",
                    ));
                };
                let Some(secret) = secrets.secret(kid) else {
                    return Err(Failure::new(
                        fi::SIGNER_NOT_TRUSTED,
                        "protection check: the senderKID (reference) is unknown",
                    ));
                };
                let alg = msg.header.protection_alg.clone().ok_or_else(|| {
                    Failure::new(fi::BAD_MESSAGE_CHECK, "protection check: no protectionAlg")
                })?;
                let mut mac = MacProtection::new(secret, MacParams::Explicit(alg));
                mac.limits = self.config.mac_limits;
                mac.cache = self.mac_keys.clone();
                match der {
                    Some(der) => mac.verify_der(msg, der),
                    None => mac.verify(msg),
                }
                .map_err(|e| {
                    let bit = match e.code {
                        ErrorCode::IterationCountTooHigh
                        | ErrorCode::BadMacParameters
                        | ErrorCode::UnsupportedAlgorithm => fi::BAD_ALG,
                        ErrorCode::MalformedMessage => fi::BAD_DATA_FORMAT,
                        _ => fi::BAD_MESSAGE_CHECK,
                    };
                    Failure::new(bit, format!("MAC protection check: {}", e.detail))
                })?;
                let requester = Requester::Mac {
                    sender_kid: kid.to_vec(),
                };
                Ok(Authenticated {
                    auth: Auth::Mac {
                        protection: Box::new(Protection::Mac(mac)),
                        sender_kid: kid.to_vec(),
                    },
                    identity: requester.identity(),
                    requester,
                    signer: None,
                })
            }
            Some(ProtectionKind::Signature) => {
                let (Some(trust), Some(_)) = (&self.config.trust, &self.config.signer) else {
                    // Without a signing key the response could not be protected like the request.
                    return Err(Failure::new(
                        fi::WRONG_INTEGRITY,
                        "protection check: this server does not accept signature protection",
                    ));
                };
                let signer =
                    protection::verify_signed_by_trusted(msg, der, trust, &self.config.untrusted)
                        .map_err(|e| {
                        let bit = match e.code {
                            ErrorCode::BadCertificate => fi::BAD_DATA_FORMAT,
                            ErrorCode::SignerNotTrusted => fi::SIGNER_NOT_TRUSTED,
                            ErrorCode::UnsupportedAlgorithm => fi::BAD_ALG,
                            _ => fi::BAD_MESSAGE_CHECK,
                        };
                        Failure::new(bit, e.detail)
                    })?;
                Ok(Authenticated {
                    auth: Auth::Signature,
                    requester: Requester::Signature {
                        cert_der: signer.der.clone(),
                    },
                    identity: signature_identity(signer.sha256()),
                    signer: Some(signer),
                })
            }
        }
    }

    /// Header checks and dispatch by body.
    fn handle(&self, msg: &PkiMessage, bytes: &[u8], a: &Authenticated) -> Checked<Vec<u8>> {
        let tid = self.check_header(msg)?;
        match &msg.body {
            PkiBody::Ir(m) => self.cert_request(RequestKind::Ir, m, msg, bytes, tid, a),
            PkiBody::Cr(m) => self.cert_request(RequestKind::Cr, m, msg, bytes, tid, a),
            PkiBody::Kur(m) => self.cert_request(RequestKind::Kur, m, msg, bytes, tid, a),
            PkiBody::Ccr(m) => self.cert_request(RequestKind::Ccr, m, msg, bytes, tid, a),
            PkiBody::Krr(m) => self.cert_request(RequestKind::Krr, m, msg, bytes, tid, a),
            PkiBody::P10cr(_) => self.cert_request(RequestKind::P10cr, &[], msg, bytes, tid, a),
            PkiBody::CertConf(s) => self.cert_conf(s, msg, tid, a),
            PkiBody::PollReq(e) => self.poll(e, msg, tid, a),
            PkiBody::Rr(d) => self.revoke(d, msg, tid, a),
            PkiBody::Genm(i) => self.genm(i, msg, tid, a),
            PkiBody::Error(_) => self.client_error(msg, tid, a),
            PkiBody::Nested(inner) => self.nested(inner, msg, a),
            other => Err(Failure::new(
                fi::BAD_REQUEST,
                format!(
                    "body check: {} is not a request this server serves",
                    other.name()
                ),
            )),
        }
    }

    /// transactionID, senderNonce and messageTime checks; returns the transactionID.
    fn check_header<'m>(&self, msg: &'m PkiMessage) -> Checked<&'m [u8]> {
        let tid = message::octets(&msg.header.transaction_id)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::new(fi::BAD_REQUEST, "header check: no transactionID"))?;
        match message::octets(&msg.header.sender_nonce) {
            Some(n) if n.len() >= 16 => {}
            Some(n) => {
                return Err(Failure::new(
                    fi::BAD_SENDER_NONCE,
                    format!(
                        "header check: senderNonce of {} octets is shorter than 16",
                        n.len()
                    ),
                ))
            }
            None => {
                return Err(Failure::new(
                    fi::BAD_SENDER_NONCE,
                    "header check: no senderNonce",
                ))
            }
        }
        if let Some(skew) = self.config.max_clock_skew {
            let t =
                msg.header.message_time.as_ref().ok_or_else(|| {
                    Failure::new(fi::BAD_TIME, "messageTime check: no messageTime")
                })?;
            let t = t.to_system_time();
            let now = SystemTime::now();
            let off = now
                .duration_since(t)
                .or_else(|_| t.duration_since(now))
                .unwrap_or_default();
            if off > skew {
                return Err(Failure::new(
                    fi::BAD_TIME,
                    format!(
                        "messageTime check: {} s off our clock (at most {} s allowed)",
                        off.as_secs(),
                        skew.as_secs()
                    ),
                ));
            }
        }
        Ok(tid)
    }

    fn expiry(&self) -> SystemTime {
        SystemTime::now() + self.config.transaction_timeout
    }

    /// Reserve `tid` for a new transaction.
    fn reserve(&self, tid: &[u8], rec: &TransactionRecord) -> Checked<Vec<u8>> {
        let bytes = rec.to_bytes();
        match self.store.insert(tid, &bytes, self.expiry()) {
            Ok(true) => Ok(bytes),
            Ok(false) => Err(Failure::new(
                fi::TRANSACTION_ID_IN_USE,
                "transactionID check: the transactionID is already in use",
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Replace the record `old` by `new` (compare-and-swap).
    fn replace(&self, tid: &[u8], old: &[u8], new: &TransactionRecord) -> Checked<()> {
        match self.store.update(tid, old, &new.to_bytes(), self.expiry()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::new(
                fi::BAD_REQUEST,
                "transaction check: the transaction changed concurrently",
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Remove the record; a store error here only delays cleanup until expiry.
    fn forget(&self, tid: &[u8]) {
        let _ = self.store.remove(tid);
    }

    /// Ask the handler, turning a panic into a failure.
    fn ask<T>(&self, what: &str, f: impl FnOnce() -> T) -> Checked<T> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
            Failure::new(
                fi::SYSTEM_FAILURE,
                format!("the CA handler failed ({what})"),
            )
        })
    }

    fn cert_request(
        &self,
        kind: RequestKind,
        msgs: &[CertReqMsg],
        msg: &PkiMessage,
        bytes: &[u8],
        tid: &[u8],
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let mut info = self.request_info(kind, msg, tid, a, 0)?;
        let generated = if info.central_keygen {
            Some(self.generate_key(&msgs[0], &mut info)?)
        } else {
            None
        };
        if kind == RequestKind::P10cr {
            self.check_csr_signature(msg)?;
        } else if generated.is_none() {
            // request_info checked there is exactly one.
            self.check_pop(&msgs[0], &info, a, bytes)?;
        }
        let rec = TransactionRecord {
            state: Some(RecordState::InProgress),
            request_type: kind.tag(),
            implicit_confirm: info.implicit_confirm_requested,
            cert_req_id: info.cert_req_id,
            requester: a.identity.clone(),
            ..Default::default()
        };
        let reserved = self.reserve(tid, &rec)?;
        let decision = match self.ask("certificate request", || {
            self.handler.certificate_request(&info)
        }) {
            Ok(d) => d,
            Err(f) => {
                self.forget(tid);
                return Err(f);
            }
        };
        if generated.is_some() && matches!(decision, Decision::Waiting) {
            self.forget(tid);
            return Err(Failure::new(
                fi::SYSTEM_UNAVAIL,
                "central key generation check: the CA asked to wait, and delayed delivery of a generated key is not supported",
            ));
        }
        let mut rec = rec;
        rec.request = bytes.to_vec();
        let delivery = generated.as_ref().map(|k| (k, a));
        let r = self.answer_decision(decision, &info, msg, &a.auth, tid, &reserved, rec, delivery);
        if r.is_err() {
            self.forget(tid);
        }
        r
    }

    /// Central key generation: a new key pair for the template of `crm`, whose public key
    /// goes into `info` (the private key is enveloped for the requester later, when the CA
    /// has issued the certificate).
    fn generate_key(
        &self,
        crm: &CertReqMsg,
        info: &mut CertRequestInfo,
    ) -> Checked<crate::crypto::SoftwareKey> {
        let key = kga::generate(crm.cert_req.cert_template.subject_public_key_info.as_ref())
            .map_err(|e| {
                let bit = if e.code == ErrorCode::UnsupportedAlgorithm {
                    fi::BAD_ALG
                } else {
                    fi::SYSTEM_FAILURE
                };
                Failure::new(bit, e.detail)
            })?;
        info.public_key = crate::crypto::Signer::public_key_der(&key).to_vec();
        Ok(key)
    }

    /// The generated `key` of the issued `cert`, enveloped for the requester `a` (its
    /// signature certificate, or its MAC secret) and signed with our signer.
    fn deliver_key(
        &self,
        cert: &CmpCertificate,
        key: &crate::crypto::SoftwareKey,
        a: &Authenticated,
    ) -> Checked<crate::asn1::EncryptedKey> {
        let fail = |t: String| {
            Failure::new(
                fi::SYSTEM_FAILURE,
                format!("central key generation check: {t}"),
            )
        };
        let fields = cert.fields().map_err(|e| internal("certificate key", e))?;
        let spki = fields.spki;
        if spki != crate::crypto::Signer::public_key_der(key) {
            return Err(fail(
                "the CA certified another key than the one generated".into(),
            ));
        }
        let recipient = match (&a.requester, &a.auth) {
            (Requester::Signature { cert_der }, _) => kga::Recipient::Certificate(cert_der),
            (Requester::Mac { .. }, Auth::Mac { protection, .. }) => match protection.as_ref() {
                Protection::Mac(m) => kga::Recipient::Password(m.secret()),
                Protection::Signature(_) => return Err(fail("no MAC secret".into())),
            },
            _ => return Err(fail("no recipient for the key".into())),
        };
        let Some(signer) = &self.config.signer else {
            return Err(fail("no signer for the key package".into()));
        };
        kga::deliver(key, signer, recipient, self.config.central_keygen_bare_key)
            .map_err(|e| fail(e.detail))
    }

    /// kur (RFC 9810 §5.3.5, RFC 9483 §4.1.3): the certificate to update. The oldCertID
    /// control, if present, must name the certificate that signed the request; without it the
    /// signer's certificate is the one updated. For a kur that is MAC-protected, or signed by
    /// an RA (which vouches for the end entity), it is what oldCertID names, if anything: the
    /// CA decides.
    fn check_old_cert_id(&self, crm: &CertReqMsg, a: &Authenticated) -> Checked<Option<CertId>> {
        let control = crm
            .cert_req
            .controls
            .iter()
            .flatten()
            .find(|c| c.oid == oid::REG_CTRL_OLD_CERT_ID);
        let named = control
            .map(|c| {
                c.value.decode_as::<CertId>().map_err(|e| {
                    Failure::new(fi::BAD_DATA_FORMAT, format!("kur check: oldCertID: {e}"))
                })
            })
            .transpose()?;
        // The fields read once when the signer's certificate was validated.
        let signer = match &a.signer {
            Some(signer) if !self.may_act_as_ra(&signer.der) => Some(
                signer
                    .fields()
                    .map_err(|e| internal("signer certificate", e))?,
            ),
            _ => None,
        };
        let name = |der: &[u8]| Name::from_der(der).map_err(|e| internal("signer certificate", e));
        let serial = |der: &[u8]| {
            x509_cert::serial_number::SerialNumber::from_der(der)
                .map_err(|e| internal("signer certificate", e))
        };
        match (named, signer) {
            (Some(id), Some(cert)) => {
                let same = matches!(&id.issuer, GeneralName::DirectoryName(n) if n.to_der().is_ok_and(|d| d == cert.issuer))
                    && id.serial_number.to_der().is_ok_and(|d| d == cert.serial);
                if same {
                    Ok(Some(id))
                } else {
                    Err(Failure::new(
                        fi::BAD_CERT_ID,
                        format!(
                            "kur check: oldCertID names serial {} of {}, but the request is signed with serial {} of \"{}\"",
                            message::hex(id.serial_number.as_bytes()),
                            match &id.issuer {
                                GeneralName::DirectoryName(n) => format!("\"{n}\""),
                                _ => "a non-directory issuer".to_owned(),
                            },
                            message::hex(serial(cert.serial)?.as_bytes()),
                            name(cert.issuer)?
                        ),
                    ))
                }
            }
            (Some(id), None) => Ok(Some(id)),
            (None, Some(cert)) => Ok(Some(CertId {
                issuer: GeneralName::DirectoryName(name(cert.issuer)?),
                serial_number: serial(cert.serial)?,
            })),
            (None, None) => Ok(None),
        }
    }

    /// The CertRequestInfo of a certificate request message.
    fn request_info(
        &self,
        kind: RequestKind,
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
        polls: u32,
    ) -> Checked<CertRequestInfo> {
        let implicit_confirm_requested = message::has_implicit_confirm(&msg.header);
        let base = |cert_req_id, subject, public_key, extensions, template, csr| CertRequestInfo {
            kind,
            transaction_id: tid.to_vec(),
            cert_req_id,
            subject,
            public_key,
            extensions,
            template,
            csr,
            old_cert_id: None,
            central_keygen: false,
            requester: a.requester.clone(),
            implicit_confirm_requested,
            polls,
        };
        match &msg.body {
            PkiBody::P10cr(csr) => {
                let info = &csr.info;
                let spki = info
                    .public_key
                    .to_der()
                    .map_err(|e| internal("CSR key", e))?;
                let mut exts = Vec::new();
                for attr in info.attributes.iter() {
                    if attr.oid == const_oid::db::rfc5912::ID_EXTENSION_REQ {
                        for v in attr.values.iter() {
                            let der = v.to_der().map_err(|e| internal("CSR", e))?;
                            let e = Vec::<Extension>::from_der(&der).map_err(|e| {
                                Failure::new(
                                    fi::BAD_CERT_TEMPLATE,
                                    format!("CSR extensionRequest: {e}"),
                                )
                            })?;
                            exts.extend(e);
                        }
                    }
                }
                let csr_der = csr.to_der().map_err(|e| internal("CSR", e))?;
                Ok(base(
                    -1,
                    Some(info.subject.clone()),
                    spki,
                    exts,
                    None,
                    Some(csr_der),
                ))
            }
            PkiBody::Ir(m)
            | PkiBody::Cr(m)
            | PkiBody::Kur(m)
            | PkiBody::Ccr(m)
            | PkiBody::Krr(m) => {
                let [crm] = m.as_slice() else {
                    return Err(Failure::new(
                        fi::BAD_REQUEST,
                        format!(
                            "request check: {} CertReqMsgs; this server takes exactly one",
                            m.len()
                        ),
                    ));
                };
                let req = &crm.cert_req;
                let id = int_to_i64(&req.cert_req_id).ok_or_else(|| {
                    Failure::new(fi::BAD_REQUEST, "request check: certReqId out of range")
                })?;
                let t = &req.cert_template;
                let central_keygen = kga::requested(t.subject_public_key_info.as_ref());
                let spki = match t
                    .subject_public_key_info
                    .as_ref()
                    .filter(|_| !central_keygen)
                {
                    Some(spki) => spki.to_der().map_err(|e| internal("template key", e))?,
                    None => {
                        let supported = self.config.central_keygen
                            && matches!(kind, RequestKind::Ir | RequestKind::Cr);
                        if !supported {
                            return Err(Failure::new(
                                fi::BAD_CERT_TEMPLATE,
                                format!(
                                    "template check: no public key, and this server does not generate keys{}",
                                    if self.config.central_keygen { " for this request type (ir and cr only)" } else { "" }
                                ),
                            ));
                        }
                        Vec::new()
                    }
                };
                let mut info = base(
                    id,
                    t.subject.clone(),
                    spki,
                    t.extensions.clone().unwrap_or_default(),
                    Some(t.clone()),
                    None,
                );
                if kind == RequestKind::Kur {
                    info.old_cert_id = self.check_old_cert_id(crm, a)?;
                }
                info.central_keygen = central_keygen;
                Ok(info)
            }
            other => Err(Failure::new(
                fi::BAD_REQUEST,
                format!(
                    "request check: {} is not a certificate request",
                    other.name()
                ),
            )),
        }
    }

    /// Proof of possession of a CRMF request (RFC 4211 §4), `crm` of the message whose DER is
    /// `message_der` (a POP signature is checked over the certReq as received there).
    fn check_pop(
        &self,
        crm: &CertReqMsg,
        info: &CertRequestInfo,
        a: &Authenticated,
        message_der: &[u8],
    ) -> Checked<()> {
        match &crm.popo {
            None => Err(Failure::new(
                fi::BAD_POP,
                "POP check: no proof of possession",
            )),
            Some(ProofOfPossession::RaVerified(_)) => {
                let from_ra = match &a.requester {
                    Requester::Signature { cert_der } => {
                        self.config.trusted_ras.is_empty() || self.is_trusted_ra(cert_der)
                    }
                    Requester::Mac { .. } => false,
                };
                if self.config.accept_ra_verified && matches!(a.auth, Auth::Signature) && from_ra {
                    Ok(())
                } else {
                    Err(Failure::new(
                        fi::BAD_POP,
                        "POP check: raVerified is accepted only from a trusted RA",
                    ))
                }
            }
            Some(ProofOfPossession::Signature(sk)) => {
                if sk.poposk_input.is_some() {
                    return Err(Failure::new(
                        fi::BAD_POP,
                        "POP check: poposkInput is not supported (the template must carry subject and key)",
                    ));
                }
                let alg = SigAlg::from_algorithm_identifier(&sk.alg_id)
                    .map_err(|e| Failure::new(fi::BAD_ALG, format!("POP check: {}", e.detail)))?;
                let key = crate::crypto::public_key_from_der(&info.public_key).map_err(|e| {
                    Failure::new(
                        fi::BAD_CERT_TEMPLATE,
                        format!("template check: public key: {}", e.detail),
                    )
                })?;
                let sig = sk.signature.as_bytes().ok_or_else(|| {
                    Failure::new(
                        fi::BAD_POP,
                        "POP check: signature BIT STRING has unused bits",
                    )
                })?;
                // The certReq as received (what the requester signed), else encoded again
                // (the same bytes for DER input, which the decoder insists on).
                let encoded;
                let data = match message::first_cert_request_der(message_der) {
                    Some(d) => d,
                    None => {
                        encoded = crm
                            .cert_req
                            .to_der()
                            .map_err(|e| internal("CertRequest", e))?;
                        &encoded
                    }
                };
                crate::crypto::verify_signature(alg, &key, data, sig)
                    .map_err(|e| Failure::new(fi::BAD_POP, format!("POP check: {}", e.detail)))
            }
            Some(_) => Err(Failure::new(
                fi::BAD_POP,
                "POP check: only signature POP (and raVerified from RAs) is supported",
            )),
        }
    }

    /// The PKCS#10 self-signature is the POP of a p10cr.
    fn check_csr_signature(&self, msg: &PkiMessage) -> Checked<()> {
        let PkiBody::P10cr(csr) = &msg.body else {
            return Err(Failure::new(fi::BAD_REQUEST, "not a p10cr"));
        };
        let der = csr.to_der().map_err(|e| internal("CSR", e))?;
        let ok = X509Req::from_der(&der)
            .and_then(|r| {
                let k = r.public_key()?;
                r.verify(&k)
            })
            .map_err(|e| Failure::new(fi::BAD_POP, format!("POP check: PKCS#10 request: {e}")))?;
        if ok {
            Ok(())
        } else {
            Err(Failure::new(
                fi::BAD_POP,
                "POP check: the PKCS#10 signature does not verify",
            ))
        }
    }

    /// Answer the handler's decision on a certificate request (first time or on pollReq).
    #[allow(clippy::too_many_arguments)]
    fn answer_decision(
        &self,
        decision: Decision,
        info: &CertRequestInfo,
        msg: &PkiMessage,
        auth: &Auth,
        tid: &[u8],
        current: &[u8],
        mut rec: TransactionRecord,
        delivery: Option<(&crate::crypto::SoftwareKey, &Authenticated)>,
    ) -> Checked<Vec<u8>> {
        let id = Int::try_from(info.cert_req_id).map_err(|e| internal("certReqId", e))?;
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        let status = |s: PkiStatus, rej: Option<&Rejection>| -> Checked<PkiStatusInfo> {
            Ok(PkiStatusInfo {
                status: s as u8,
                status_string: rej.map(|r| vec![r.text.clone()]),
                fail_info: rej
                    .map(|r| message::fail_info_bit_string(r.fail_info))
                    .transpose()
                    .map_err(|e| internal("failInfo", e.detail))?,
            })
        };
        match decision {
            Decision::Issue(iss) => {
                // The handler's certificates go out as they are; their shape and TBS fields are
                // checked here so that a broken handler gets an error, not a broken message.
                let check = |d: &[u8], what: &str| -> Checked<CmpCertificate> {
                    CmpCertificate::try_from(d)
                        .and_then(|c| c.fields().map(|_| ()).map(|()| c))
                        .map_err(|e| internal(what, e))
                };
                let cert = check(&iss.cert, "the CA handler's certificate")?;
                let parse_all = |v: &[Vec<u8>]| -> Checked<Vec<CmpCertificate>> {
                    v.iter().map(|d| check(d, "CA certificates")).collect()
                };
                let ca_pubs = parse_all(&iss.ca_pubs)?;
                let chain = parse_all(&iss.chain)?;
                let private_key = match delivery {
                    Some((key, requester)) => Some(self.deliver_key(&cert, key, requester)?),
                    None => None,
                };
                // A krp is never confirmed (RFC 9810 §5.3.9): it ends the transaction like a
                // granted implicit confirmation, without saying so in the header.
                let no_confirm = info.kind == RequestKind::Krr;
                let implicit = no_confirm
                    || (info.implicit_confirm_requested && self.config.grant_implicit_confirm);
                rec.state = Some(if implicit {
                    RecordState::Finished
                } else {
                    RecordState::AwaitingConfirm
                });
                rec.our_nonce = nonce.clone();
                rec.request = Vec::new();
                rec.cert = if implicit {
                    Vec::new()
                } else {
                    iss.cert.clone()
                };
                self.replace(tid, current, &rec)?;
                if implicit {
                    let _ = self.ask("cert_confirm", || {
                        self.handler.cert_confirm(tid, &iss.cert, true)
                    });
                }
                let rep = CertRepMessage {
                    ca_pubs: (!ca_pubs.is_empty()).then_some(ca_pubs),
                    response: vec![CertResponse {
                        cert_req_id: id,
                        status: status(PkiStatus::Accepted, None)?,
                        certified_key_pair: Some(CertifiedKeyPair {
                            cert_or_enc_cert: CertOrEncCert::Certificate(cert),
                            private_key,
                            publication_info: None,
                        }),
                        rsp_info: None,
                    }],
                };
                let gi = (implicit && !no_confirm).then(|| vec![message::implicit_confirm_itav()]);
                self.response(msg, auth, info.kind.response(rep), gi, nonce, chain)
            }
            Decision::Reject(r) => {
                self.log(LogLevel::Info, || {
                    let bits = message::PeerStatus {
                        status: PkiStatus::Rejection as u8,
                        fail_info: r.fail_info,
                        texts: Vec::new(),
                    };
                    format!(
                        "the CA rejected {} (transactionID {}): {} [failInfo {}]",
                        msg.body.name(),
                        message::hex(tid),
                        r.text,
                        bits.fail_info_names().join(",")
                    )
                });
                self.forget(tid);
                let rep = CertRepMessage {
                    ca_pubs: None,
                    response: vec![CertResponse {
                        cert_req_id: id,
                        status: status(PkiStatus::Rejection, Some(&r))?,
                        certified_key_pair: None,
                        rsp_info: None,
                    }],
                };
                self.response(msg, auth, info.kind.response(rep), None, nonce, Vec::new())
            }
            Decision::Waiting => {
                rec.state = Some(RecordState::Waiting);
                rec.our_nonce = nonce.clone();
                let first = info.polls == 0;
                self.replace(tid, current, &rec)?;
                let body = if first {
                    info.kind.response(CertRepMessage {
                        ca_pubs: None,
                        response: vec![CertResponse {
                            cert_req_id: id,
                            status: status(PkiStatus::Waiting, None)?,
                            certified_key_pair: None,
                            rsp_info: None,
                        }],
                    })
                } else {
                    PkiBody::PollRep(vec![PollRepEntry {
                        cert_req_id: id,
                        check_after: self.config.check_after,
                        reason: None,
                    }])
                };
                self.response(msg, auth, body, None, nonce, Vec::new())
            }
        }
    }

    /// The stored record of an ongoing transaction, checked against the requester and nonce.
    /// Returns the raw bytes (for compare-and-swap) and the parsed record.
    fn continue_transaction(
        &self,
        what: &str,
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
        want: RecordState,
    ) -> Checked<(Vec<u8>, TransactionRecord)> {
        let raw = self.store.get(tid).map_err(store_err)?.ok_or_else(|| {
            Failure::new(
                fi::BAD_REQUEST,
                format!("{what} check: no open transaction with this transactionID"),
            )
        })?;
        let rec = TransactionRecord::from_bytes(&raw).map_err(store_err)?;
        if rec.requester != a.identity {
            return Err(Failure::new(
                fi::NOT_AUTHORIZED,
                format!("{what} check: the transaction was started by another requester"),
            ));
        }
        if rec.state() != want {
            return Err(Failure::new(
                fi::BAD_REQUEST,
                format!(
                    "{what} check: the transaction is not expecting a {what} ({:?})",
                    rec.state()
                ),
            ));
        }
        if message::octets(&msg.header.recip_nonce) != Some(rec.our_nonce.as_slice()) {
            self.abort(tid, &rec);
            return Err(Failure::new(
                fi::BAD_RECIPIENT_NONCE,
                "recipNonce check: the recipNonce is not the senderNonce of our last response",
            ));
        }
        Ok((raw, rec))
    }

    /// End a transaction after a failed check: forget it, tell the CA its certificate is not
    /// confirmed.
    fn abort(&self, tid: &[u8], rec: &TransactionRecord) {
        self.forget(tid);
        if !rec.cert.is_empty() {
            let _ = self.ask("cert_confirm", || {
                self.handler.cert_confirm(tid, &rec.cert, false)
            });
        }
    }

    fn cert_conf(
        &self,
        statuses: &[CertStatus],
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let (raw, rec) =
            self.continue_transaction("certConf", msg, tid, a, RecordState::AwaitingConfirm)?;
        let result = (|| -> Checked<bool> {
            let st = match statuses {
                [] => return Ok(false), // empty certConf: all certificates rejected
                [s] => s,
                _ => {
                    return Err(Failure::new(
                        fi::BAD_REQUEST,
                        "certConf check: more than one CertStatus for one certificate",
                    ))
                }
            };
            if int_to_i64(&st.cert_req_id) != Some(rec.cert_req_id) {
                return Err(Failure::new(
                    fi::BAD_CERT_ID,
                    format!("certConf check: certReqId is not {}", rec.cert_req_id),
                ));
            }
            let hash = match &st.hash_alg {
                Some(alg) => {
                    let h = HashAlg::from_digest_oid(&alg.oid).ok_or_else(|| {
                        Failure::new(
                            fi::BAD_ALG,
                            format!("certConf check: hashAlg {} is not supported", alg.oid),
                        )
                    })?;
                    openssl::hash::hash(h.md(), &rec.cert)
                        .map(|d| d.to_vec())
                        .map_err(|e| internal("certHash", e))?
                }
                None => crate::client::cert_hash(&rec.cert)
                    .map_err(|e| internal("certHash", e.detail))?,
            };
            if st.cert_hash.as_bytes() != hash.as_slice() {
                return Err(Failure::new(
                    fi::BAD_CERT_ID,
                    "certConf check: certHash does not match the issued certificate",
                ));
            }
            Ok(st
                .status_info
                .as_ref()
                .is_none_or(|s| s.status != PkiStatus::Rejection as u8))
        })();
        let accepted = match result {
            Ok(a) => a,
            Err(f) => {
                self.abort(tid, &rec);
                return Err(f);
            }
        };
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        let done = TransactionRecord {
            state: Some(RecordState::Finished),
            request_type: rec.request_type,
            cert_req_id: rec.cert_req_id,
            requester: rec.requester.clone(),
            our_nonce: nonce.clone(),
            ..Default::default()
        };
        self.replace(tid, &raw, &done)?;
        let _ = self.ask("cert_confirm", || {
            self.handler.cert_confirm(tid, &rec.cert, accepted)
        });
        self.response(
            msg,
            &a.auth,
            PkiBody::PkiConf(der::asn1::Null),
            None,
            nonce,
            Vec::new(),
        )
    }

    fn poll(
        &self,
        entries: &[crate::asn1::PollReqEntry],
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let (raw, rec) = self.continue_transaction("pollReq", msg, tid, a, RecordState::Waiting)?;
        let ids: Vec<Option<i64>> = entries.iter().map(|e| int_to_i64(&e.cert_req_id)).collect();
        if ids != [Some(rec.cert_req_id)] {
            self.abort(tid, &rec);
            return Err(Failure::new(
                fi::BAD_REQUEST,
                format!(
                    "pollReq check: expected one entry for certReqId {}",
                    rec.cert_req_id
                ),
            ));
        }
        let r = (|| {
            let original = message::decode(&rec.request, usize::MAX)
                .map_err(|e| internal("stored request", e.detail))?;
            let kind = match &original.body {
                PkiBody::Ir(_) => RequestKind::Ir,
                PkiBody::Cr(_) => RequestKind::Cr,
                PkiBody::Kur(_) => RequestKind::Kur,
                PkiBody::Ccr(_) => RequestKind::Ccr,
                PkiBody::Krr(_) => RequestKind::Krr,
                PkiBody::P10cr(_) => RequestKind::P10cr,
                _ => return Err(internal("stored request", "not a certificate request")),
            };
            let polls = rec.polls.saturating_add(1);
            let info = self.request_info(kind, &original, tid, a, polls)?;
            let decision = self.ask("certificate request", || {
                self.handler.certificate_request(&info)
            })?;
            let next = TransactionRecord {
                polls,
                ..rec.clone()
            };
            self.answer_decision(decision, &info, msg, &a.auth, tid, &raw, next, None)
        })();
        if r.is_err() {
            self.abort(tid, &rec);
        }
        r
    }

    fn revoke(
        &self,
        details: &[RevDetails],
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let [d] = details else {
            return Err(Failure::new(
                fi::BAD_REQUEST,
                format!(
                    "rr check: {} RevDetails; this server takes exactly one",
                    details.len()
                ),
            ));
        };
        let t = &d.cert_details;
        let (Some(issuer), Some(serial)) = (&t.issuer, &t.serial_number) else {
            return Err(Failure::new(
                fi::BAD_CERT_TEMPLATE,
                "rr check: certDetails must name issuer and serialNumber",
            ));
        };
        let mut reason = None;
        for e in d.crl_entry_details.iter().flatten() {
            if e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS {
                // ENUMERATED: 0a 01 NN
                match e.extn_value.as_bytes() {
                    [0x0a, 0x01, r] => reason = Some(*r),
                    _ => {
                        return Err(Failure::new(
                            fi::BAD_DATA_FORMAT,
                            "rr check: malformed CRLReason",
                        ))
                    }
                }
            }
        }
        let req = RevocationRequest {
            issuer: issuer.clone(),
            serial: serial.as_bytes().to_vec(),
            reason,
            requester: a.requester.clone(),
        };
        let rec = TransactionRecord {
            state: Some(RecordState::InProgress),
            request_type: TAG_RR,
            requester: a.identity.clone(),
            ..Default::default()
        };
        let reserved = self.reserve(tid, &rec)?;
        let outcome = match self.ask("revoke", || self.handler.revoke(&req)) {
            Ok(o) => o,
            Err(f) => {
                self.forget(tid);
                return Err(f);
            }
        };
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        let status = match outcome {
            Ok(()) => {
                let done = TransactionRecord {
                    state: Some(RecordState::Finished),
                    our_nonce: nonce.clone(),
                    ..rec
                };
                if let Err(f) = self.replace(tid, &reserved, &done) {
                    self.forget(tid);
                    return Err(f);
                }
                PkiStatusInfo {
                    status: PkiStatus::Accepted as u8,
                    status_string: None,
                    fail_info: None,
                }
            }
            Err(r) => {
                self.forget(tid);
                PkiStatusInfo {
                    status: PkiStatus::Rejection as u8,
                    status_string: Some(vec![r.text]),
                    fail_info: Some(
                        message::fail_info_bit_string(r.fail_info)
                            .map_err(|e| internal("failInfo", e.detail))?,
                    ),
                }
            }
        };
        let body = PkiBody::Rp(RevRepContent {
            status: vec![status],
            rev_certs: None,
            crls: None,
        });
        self.response(msg, &a.auth, body, None, nonce, Vec::new())
    }

    fn genm(
        &self,
        itavs: &[InfoTypeAndValue],
        msg: &PkiMessage,
        tid: &[u8],
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let rec = TransactionRecord {
            state: Some(RecordState::InProgress),
            request_type: TAG_GENM,
            requester: a.identity.clone(),
            ..Default::default()
        };
        let reserved = self.reserve(tid, &rec)?;
        let answer = match self.ask("general_message", || {
            self.handler.general_message(itavs, &a.requester)
        }) {
            Ok(v) => v,
            Err(f) => {
                self.forget(tid);
                return Err(f);
            }
        };
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        let done = TransactionRecord {
            state: Some(RecordState::Finished),
            our_nonce: nonce.clone(),
            ..rec
        };
        if let Err(f) = self.replace(tid, &reserved, &done) {
            self.forget(tid);
            return Err(f);
        }
        self.response(msg, &a.auth, PkiBody::Genp(answer), None, nonce, Vec::new())
    }

    /// An error message from the client ends its transaction; answered with pkiConf
    /// (RFC 9810 §5.3.21).
    fn client_error(&self, msg: &PkiMessage, tid: &[u8], a: &Authenticated) -> Checked<Vec<u8>> {
        if let Some(raw) = self.store.get(tid).map_err(store_err)? {
            let rec = TransactionRecord::from_bytes(&raw).map_err(store_err)?;
            if rec.requester != a.identity {
                return Err(Failure::new(
                    fi::NOT_AUTHORIZED,
                    "error check: the transaction was started by another requester",
                ));
            }
            if rec.state() != RecordState::Finished {
                self.abort(tid, &rec);
            }
        }
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        self.response(
            msg,
            &a.auth,
            PkiBody::PkiConf(der::asn1::Null),
            None,
            nonce,
            Vec::new(),
        )
    }

    /// Whether `cert_der` is one of the configured [`ServerConfig::trusted_ras`].
    /// Whether the signer `cert_der` may speak for end entities: a configured trusted RA, or
    /// anyone when raVerified is accepted without a list of RAs.
    fn may_act_as_ra(&self, cert_der: &[u8]) -> bool {
        self.is_trusted_ra(cert_der)
            || (self.config.accept_ra_verified && self.config.trusted_ras.is_empty())
    }

    fn is_trusted_ra(&self, cert_der: &[u8]) -> bool {
        self.trusted_ra_ders.iter().any(|d| d == cert_der)
    }

    /// A nested message (RFC 9810 §5.1.3.4, RFC 9483 §5.2.2) from a trusted RA: each inner
    /// message is processed as if received alone. One inner message (the RA added its
    /// protection, RFC 9483 §5.2.2.1) must carry the outer transactionID and senderNonce and
    /// is answered with its plain response; several (a batch, RFC 9483 §5.2.2.2) are
    /// answered with a nested message holding one response per request, signed by us.
    fn nested(
        &self,
        inner: &[der::Any],
        outer: &PkiMessage,
        a: &Authenticated,
    ) -> Checked<Vec<u8>> {
        let trusted = match &a.requester {
            Requester::Signature { cert_der } => self.is_trusted_ra(cert_der),
            Requester::Mac { .. } => false,
        };
        if !trusted {
            return Err(Failure::new(
                fi::NOT_AUTHORIZED,
                "nested message check: nested messages are accepted only when signed by a trusted RA",
            ));
        }
        if inner.is_empty() {
            return Err(Failure::new(
                fi::BAD_REQUEST,
                "nested message check: no inner message",
            ));
        }
        let single = inner.len() == 1;
        let mut responses = Vec::with_capacity(inner.len());
        for m in inner {
            let der = m.to_der().map_err(|e| internal("inner message", e))?;
            responses.push(self.process_inner(&der, a, single.then_some(outer)));
        }
        if single {
            return Ok(responses.pop().expect("one response"));
        }
        let body = PkiBody::Nested(
            responses
                .iter()
                .map(|r| der::Any::from_der(r).map_err(|e| internal("inner response", e)))
                .collect::<Checked<Vec<_>>>()?,
        );
        let nonce = message::random_bytes(16).map_err(|e| internal("nonce", e.detail))?;
        self.response(outer, &Auth::Signature, body, None, nonce, Vec::new())
    }

    /// One message from inside a nested message signed by the trusted RA `ra`. Its own
    /// protection is checked when this server can check it (a secret for its senderKID, a
    /// signer under our trust anchors) and must then be valid; otherwise (unknown senderKID,
    /// untrusted signer, no or unsupported protection) the RA's signature vouches for it, the
    /// RA is the requester and the answer is signed by us. `outer` is set for a single inner
    /// message, whose transactionID and senderNonce must be the outer ones (RFC 9483
    /// §5.2.2.1). An inner nested message is refused (`badRequest`): one level is enough.
    fn process_inner(&self, der: &[u8], ra: &Authenticated, outer: Option<&PkiMessage>) -> Vec<u8> {
        let msg = match message::decode(der, self.config.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                return self.error_response(
                    outer,
                    &Auth::Signature,
                    Failure::new(
                        fi::BAD_DATA_FORMAT,
                        format!("nested message check: inner message: {}", e.detail),
                    ),
                )
            }
        };
        let vouched = || Authenticated {
            auth: Auth::Signature,
            requester: ra.requester.clone(),
            identity: ra.identity.clone(),
            signer: ra.signer.clone(),
        };
        let pre = (|| -> Checked<()> {
            if matches!(msg.body, PkiBody::Nested(_)) {
                return Err(Failure::new(
                    fi::BAD_REQUEST,
                    "nested message check: nesting deeper than one level is not supported",
                ));
            }
            if !(2..=3).contains(&msg.header.pvno) {
                return Err(Failure::new(
                    fi::UNSUPPORTED_VERSION,
                    format!(
                        "version check: pvno {} is not supported (2 and 3 are)",
                        msg.header.pvno
                    ),
                ));
            }
            if let Some(outer) = outer {
                if outer.header.transaction_id != msg.header.transaction_id {
                    return Err(Failure::new(
                        fi::BAD_REQUEST,
                        "nested message check: the transactionID is not the inner message's",
                    ));
                }
                if outer.header.sender_nonce != msg.header.sender_nonce {
                    return Err(Failure::new(
                        fi::BAD_SENDER_NONCE,
                        "nested message check: the senderNonce is not the inner message's",
                    ));
                }
            }
            Ok(())
        })();
        if let Err(f) = pre {
            return self.error_response(Some(&msg), &Auth::Signature, f);
        }
        let authd = match self.authenticate(&msg, None) {
            Ok(a) => a,
            Err(f)
                if f.bit == fi::SIGNER_NOT_TRUSTED
                    || f.bit == fi::WRONG_INTEGRITY
                    || protection::protection_kind(&msg).is_none() =>
            {
                vouched()
            }
            Err(f) => return self.error_response(Some(&msg), &Auth::Signature, f),
        };
        match self.handle(&msg, der, &authd) {
            Ok(rsp) => rsp,
            Err(f) => self.error_response(Some(&msg), &authd.auth, f),
        }
    }

    /// Build and protect a response to `req`.
    fn response(
        &self,
        req: &PkiMessage,
        auth: &Auth,
        body: PkiBody,
        general_info: Option<Vec<InfoTypeAndValue>>,
        nonce: Vec<u8>,
        extra: Vec<CmpCertificate>,
    ) -> Checked<Vec<u8>> {
        self.build(Some(req), auth, false, body, general_info, nonce, extra)
            .map_err(|e| internal("building the response", e.detail))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        req: Option<&PkiMessage>,
        auth: &Auth,
        plain: bool,
        body: PkiBody,
        general_info: Option<Vec<InfoTypeAndValue>>,
        nonce: Vec<u8>,
        mut extra: Vec<CmpCertificate>,
    ) -> crate::Result<Vec<u8>> {
        let sign = !plain
            && match auth {
                Auth::Signature => true,
                Auth::Mac { .. } => false,
                Auth::None => self.config.signer.is_some(),
            };
        let mac = match auth {
            Auth::Mac { protection, .. } if !plain => Some(protection),
            _ => None,
        };
        let signer_name = self.signer_certs.as_ref().map(|s| &s.sender);
        let (sender, sender_kid) = match auth {
            Auth::Mac { sender_kid, .. } => (
                self.mac_sender.as_ref().or(signer_name),
                Some(message::octet_string(sender_kid)?),
            ),
            _ => (
                signer_name,
                self.signer_certs
                    .as_ref()
                    .and_then(|s| s.ski.as_deref())
                    .map(message::octet_string)
                    .transpose()?,
            ),
        };
        let pvno = req
            .map(|r| r.header.pvno)
            .filter(|p| (2..=3).contains(p))
            .unwrap_or(2);
        let header = PkiHeader {
            pvno,
            sender: sender.cloned().unwrap_or_else(CmpName::null_dn),
            recipient: req
                .map(|r| r.header.sender.clone())
                .unwrap_or_else(CmpName::null_dn),
            message_time: Some(message::now()?),
            protection_alg: None,
            sender_kid: if sign || mac.is_some() {
                sender_kid
            } else {
                None
            },
            recip_kid: None,
            transaction_id: req.and_then(|r| r.header.transaction_id.clone()),
            sender_nonce: Some(message::octet_string(&nonce)?),
            recip_nonce: req.and_then(|r| r.header.sender_nonce.clone()),
            free_text: None,
            general_info,
        };
        let mut msg = PkiMessage {
            header,
            body,
            protection: None,
            extra_certs: None,
        };
        // extraCerts are not part of the ProtectedPart: set before protecting, so that the
        // message is encoded in one go with its protection.
        let protection = if let Some(p) = mac {
            Some(p.as_ref())
        } else if let (true, Some(s), Some(certs)) = (sign, &self.config.signer, &self.signer_certs)
        {
            let mut all = certs.extra.clone();
            for c in extra {
                if !all.contains(&c) {
                    all.push(c);
                }
            }
            extra = all;
            Some(&Protection::Signature(s.key.clone()))
        } else {
            None
        };
        if !extra.is_empty() {
            msg.extra_certs = Some(extra);
        }
        match protection {
            Some(p) => protection::protect_to_der(&mut msg, p, None),
            None => Ok(msg.to_der()?),
        }
    }

    /// An error message answering `req` (or garbage), protected as `auth` allows.
    fn error_response(&self, req: Option<&PkiMessage>, auth: &Auth, f: Failure) -> Vec<u8> {
        self.log(LogLevel::Error, || match req {
            Some(m) => format!(
                "refused {} (transactionID {}): {} [failInfo {}]",
                m.body.name(),
                transaction_id_text(m),
                f.text,
                fail_info_name(f.bit)
            ),
            None => format!(
                "refused a request: {} [failInfo {}]",
                f.text,
                fail_info_name(f.bit)
            ),
        });
        let body = |f: &Failure| -> crate::Result<PkiBody> {
            Ok(PkiBody::Error(ErrorMsgContent {
                pki_status_info: PkiStatusInfo {
                    status: PkiStatus::Rejection as u8,
                    status_string: Some(vec![f.text.clone()]),
                    fail_info: Some(message::fail_info_bit_string(1 << f.bit)?),
                },
                error_code: None,
                error_details: None,
            }))
        };
        let nonce = message::random_bytes(16).unwrap_or_else(|_| vec![0; 16]);
        body(&f)
            .and_then(|b| self.build(req, auth, false, b, None, nonce.clone(), Vec::new()))
            .or_else(|_| {
                // Protection failed (e.g. the signer's callback): answer unprotected.
                let f2 = Failure::new(
                    fi::SYSTEM_FAILURE,
                    format!("{} (and the response could not be protected)", f.text),
                );
                body(&f2).and_then(|b| self.build(req, auth, true, b, None, nonce, Vec::new()))
            })
            .unwrap_or_else(|_| FALLBACK_ERROR.to_vec())
    }
}

/// The transactionID of `m` in hex, or "none".
fn transaction_id_text(m: &PkiMessage) -> String {
    message::octets(&m.header.transaction_id)
        .map(message::hex)
        .unwrap_or_else(|| "none".to_owned())
}

/// The name of failInfo bit `bit`.
fn fail_info_name(bit: u32) -> &'static str {
    message::FAIL_INFO_NAMES
        .get(bit as usize)
        .copied()
        .unwrap_or("unknown")
}

/// An INTEGER as i64, if it fits.
fn int_to_i64(i: &Int) -> Option<i64> {
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

/// An unprotected error message (failInfo systemFailure, statusString "internal error",
/// NULL-DN sender and recipient), used when nothing else could be built.
const FALLBACK_ERROR: &[u8] = &[
    0x30, 0x2f, // PKIMessage
    0x30, 0x0b, 0x02, 0x01, 0x02, 0xa4, 0x02, 0x30, 0x00, 0xa4, 0x02, 0x30, 0x00, // header
    0xb7, 0x20, 0x30, 0x1e, 0x30, 0x1c, 0x02, 0x01, 0x02, // error, PKIStatusInfo, rejection
    0x30, 0x10, 0x0c, 0x0e, b'i', b'n', b't', b'e', b'r', b'n', b'a', b'l', b' ', b'e', b'r', b'r',
    b'o', b'r', // statusString
    0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40, // failInfo systemFailure (bit 25)
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_error_is_a_der_error_message_with_system_failure() {
        let m = PkiMessage::from_der(FALLBACK_ERROR).unwrap();
        let PkiBody::Error(e) = m.body else {
            panic!("not an error")
        };
        let s = message::PeerStatus::from_status_info(&e.pki_status_info);
        assert_eq!(s.fail_info, 1 << fi::SYSTEM_FAILURE);
        assert_eq!(s.texts, ["internal error"]);
    }

    struct NoCa;

    impl CaHandler for NoCa {
        fn certificate_request(&self, _: &CertRequestInfo) -> Decision {
            Decision::Waiting
        }
        fn cert_confirm(&self, _: &[u8], _: &[u8], _: bool) {}
        fn revoke(&self, _: &RevocationRequest) -> Result<(), Rejection> {
            Ok(())
        }
        fn general_message(&self, _: &[InfoTypeAndValue], _: &Requester) -> Vec<InfoTypeAndValue> {
            Vec::new()
        }
    }

    #[test]
    fn mac_key_is_derived_once_for_request_and_response() {
        let server = Server::new(
            ServerConfig {
                secrets: Some(Arc::new(|_: &[u8]| Some(b"s3cret".to_vec()))),
                ..ServerConfig::default()
            },
            Arc::new(NoCa),
            Arc::new(MemoryStore::new()),
        )
        .unwrap();
        let mut msg = PkiMessage {
            header: PkiHeader {
                pvno: 2,
                sender: CmpName::null_dn(),
                recipient: CmpName::null_dn(),
                message_time: None,
                protection_alg: None,
                sender_kid: Some(message::octet_string(b"kid").unwrap()),
                recip_kid: None,
                transaction_id: Some(message::octet_string(&[1; 16]).unwrap()),
                sender_nonce: Some(message::octet_string(&[2; 16]).unwrap()),
                recip_nonce: None,
                free_text: None,
                general_info: None,
            },
            body: PkiBody::Genm(Vec::new()),
            protection: None,
            extra_certs: None,
        };
        let p = Protection::Mac(MacProtection::new(
            b"s3cret".to_vec(),
            MacParams::Pbmac1(Default::default()),
        ));
        protection::protect(&mut msg, &p).unwrap();
        let a = server.authenticate(&msg, None).unwrap();
        let rsp = server
            .response(
                &msg,
                &a.auth,
                PkiBody::PkiConf(der::asn1::Null),
                None,
                vec![3; 16],
                Vec::new(),
            )
            .unwrap();
        let Auth::Mac { protection, .. } = &a.auth else {
            panic!("not MAC")
        };
        let Protection::Mac(m) = protection.as_ref() else {
            panic!("not MAC")
        };
        assert_eq!(m.cache.derivations(), 1);
        let rsp = PkiMessage::from_der(&rsp).unwrap();
        assert_eq!(rsp.header.protection_alg, msg.header.protection_alg);
        protection::verify_mac(&rsp, b"s3cret", &MacLimits::default(), None).unwrap();
    }

    #[test]
    fn int_conversion_handles_negative_and_large() {
        for v in [-1i64, 0, 127, 128, -129, i64::MAX, i64::MIN] {
            assert_eq!(int_to_i64(&Int::try_from(v).unwrap()), Some(v));
        }
    }
}
