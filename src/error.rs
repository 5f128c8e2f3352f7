//! Error type shared by the whole library: a stable code plus a detail a person can act on.

use std::fmt;

/// Stable result codes. The numeric values are part of the C ABI and are never reused.
///
/// Ranges: 1xx API misuse, 2xx message encoding, 3xx protection, 4xx transaction
/// consistency, 5xx the peer's verdict, 6xx transport, 7xx keys and cryptography.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 100,
    /// An argument was out of range, not valid UTF-8, or otherwise unusable.
    InvalidArgument = 101,
    /// The object is not in a state that allows this call.
    InvalidState = 102,
    /// The context lacks configuration this operation needs.
    MissingConfig = 103,
    /// An internal error (a caught panic or a broken invariant); the handle stays valid.
    Internal = 199,
    /// A message could not be decoded as DER (truncated, malformed, trailing data).
    MalformedMessage = 200,
    /// The message has a protocol version we do not support.
    UnsupportedVersion = 201,
    /// The message body type is not the one expected at this point.
    UnexpectedBody = 202,
    /// A message exceeds the configured size limit.
    MessageTooLarge = 203,
    /// A message could not be encoded.
    EncodingFailed = 204,
    /// A required field of the message is absent or invalid.
    BadMessageContent = 205,
    /// The message carries no protection but must be protected.
    ProtectionMissing = 300,
    /// The MAC protection does not verify (wrong shared secret or tampered message).
    MacMismatch = 301,
    /// The signature protection does not verify.
    SignatureInvalid = 302,
    /// The protection or POP algorithm is not supported.
    UnsupportedAlgorithm = 303,
    /// The PBM/PBMAC1 iteration count exceeds the configured cap.
    IterationCountTooHigh = 304,
    /// The signer of the message is not trusted (chain validation failed).
    SignerNotTrusted = 305,
    /// The protection type does not match the configured credentials.
    WrongProtectionType = 306,
    /// The PBM/PBMAC1 parameters are unusable: iteration count below 1, salt empty or too
    /// long, derived key length out of range.
    BadMacParameters = 307,
    /// The transactionID of the response does not match the request.
    TransactionIdMismatch = 400,
    /// The recipNonce of the response does not match our senderNonce.
    RecipNonceMismatch = 401,
    /// The sender of the response is not the expected server.
    SenderMismatch = 402,
    /// The issued certificate does not carry the public key we asked to certify.
    CertKeyMismatch = 403,
    /// The certReqId of the response does not match the request.
    CertReqIdMismatch = 404,
    /// The response lacks a senderNonce or transactionID.
    MissingHeaderField = 405,
    /// The peer rejected the request (PKIStatus rejection); see the response's status.
    Rejected = 500,
    /// The peer answered with a CMP error message; see the response's status.
    PeerError = 501,
    /// The peer asks to wait (polling is not done by this operation).
    Waiting = 502,
    /// The peer answered pkiConf/ip without the certificate we expected.
    NoCertificate = 503,
    /// The transfer (I/O) failed: connection, callback error.
    TransferFailed = 600,
    /// The HTTP server answered with a non-200 status or a wrong content type.
    HttpError = 601,
    /// The transfer timed out.
    Timeout = 602,
    /// The response exceeds the size limit.
    ResponseTooLarge = 603,
    /// A key could not be parsed, generated or used.
    KeyError = 700,
    /// An OpenSSL operation failed.
    CryptoError = 701,
    /// The caller's key callback reported a failure.
    KeyCallbackFailed = 702,
    /// A certificate could not be parsed.
    BadCertificate = 703,
}

impl ErrorCode {
    /// A short stable name, e.g. `"mac-mismatch"`.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Ok => "ok",
            NullArgument => "null-argument",
            InvalidArgument => "invalid-argument",
            InvalidState => "invalid-state",
            MissingConfig => "missing-config",
            Internal => "internal",
            MalformedMessage => "malformed-message",
            UnsupportedVersion => "unsupported-version",
            UnexpectedBody => "unexpected-body",
            MessageTooLarge => "message-too-large",
            EncodingFailed => "encoding-failed",
            BadMessageContent => "bad-message-content",
            ProtectionMissing => "protection-missing",
            MacMismatch => "mac-mismatch",
            SignatureInvalid => "signature-invalid",
            UnsupportedAlgorithm => "unsupported-algorithm",
            IterationCountTooHigh => "iteration-count-too-high",
            SignerNotTrusted => "signer-not-trusted",
            WrongProtectionType => "wrong-protection-type",
            BadMacParameters => "bad-mac-parameters",
            TransactionIdMismatch => "transaction-id-mismatch",
            RecipNonceMismatch => "recip-nonce-mismatch",
            SenderMismatch => "sender-mismatch",
            CertKeyMismatch => "cert-key-mismatch",
            CertReqIdMismatch => "cert-req-id-mismatch",
            MissingHeaderField => "missing-header-field",
            Rejected => "rejected",
            PeerError => "peer-error",
            Waiting => "waiting",
            NoCertificate => "no-certificate",
            TransferFailed => "transfer-failed",
            HttpError => "http-error",
            Timeout => "timeout",
            ResponseTooLarge => "response-too-large",
            KeyError => "key-error",
            CryptoError => "crypto-error",
            KeyCallbackFailed => "key-callback-failed",
            BadCertificate => "bad-certificate",
        }
    }
}

/// A failure: its stable code and a human-readable detail naming what was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub detail: String,
}

impl Error {
    /// A new error with `code` and `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error {
            code,
            detail: detail.into(),
        }
    }

    /// Prefix the detail with context, keeping the code.
    pub fn context(mut self, what: &str) -> Self {
        self.detail = format!("{what}: {}", self.detail);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code as u32,
            self.detail
        )
    }
}

impl std::error::Error for Error {}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Error::new(ErrorCode::MalformedMessage, format!("DER: {e}"))
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::new(ErrorCode::CryptoError, format!("OpenSSL: {e}"))
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand: `Err(Error::new(code, detail))`.
pub(crate) fn fail<T>(code: ErrorCode, detail: impl Into<String>) -> Result<T> {
    Err(Error::new(code, detail))
}
