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
    /// The caller's buffer is too small; the required size was written to the length out-parameter.
    BufferTooSmall = 104,
    /// The requested item does not exist (e.g. no certificate in the response, index out of range).
    NotFound = 105,
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
    /// The MAC parameters are malformed or out of range (salt, iteration count, key length).
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
    /// The response's messageTime is further from our clock than the configured tolerance.
    BadMessageTime = 406,
    /// The response's signer certificate lacks the `id-kp-cmcCA`/`id-kp-cmcRA` extended key
    /// usage the configuration requires (RFC 9483 §3.1).
    MissingCmcEku = 407,
    /// A root CA key update (genp rootCaKeyUpdate) does not verify: newWithOld is not signed
    /// by the old root, oldWithNew not by the new one, or the keys do not fit.
    RootCaUpdateInvalid = 408,
    /// The peer rejected the request (PKIStatus rejection); see the response's status.
    Rejected = 500,
    /// The peer answered with a CMP error message; see the response's status.
    PeerError = 501,
    /// The peer asks to wait and the operation does not poll (the client transactions poll;
    /// see [`ErrorCode::PollingTimeout`]).
    Waiting = 502,
    /// The peer answered pkiConf/ip without the certificate we expected.
    NoCertificate = 503,
    /// Polling (the peer said waiting) did not finish within the configured deadline.
    PollingTimeout = 504,
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
    /// A centrally generated or recovered private key (EnvelopedData) could not be
    /// decrypted: no recipient info for our key or shared secret, a wrong key or secret, or an
    /// unsupported key management or content encryption algorithm.
    DecryptionFailed = 704,
    /// The key package that carries a centrally generated key is not signed by a valid key
    /// generation authority (signature, chain or `id-kp-cmKGA` check failed, RFC 9483 §4.1.6).
    KeyPackageInvalid = 705,
}

impl ErrorCode {
    /// The code for a numeric value, if it is one of ours.
    pub fn from_u32(v: u32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match v {
            0 => Ok,
            100 => NullArgument,
            101 => InvalidArgument,
            102 => InvalidState,
            103 => MissingConfig,
            104 => BufferTooSmall,
            105 => NotFound,
            199 => Internal,
            200 => MalformedMessage,
            201 => UnsupportedVersion,
            202 => UnexpectedBody,
            203 => MessageTooLarge,
            204 => EncodingFailed,
            205 => BadMessageContent,
            300 => ProtectionMissing,
            301 => MacMismatch,
            302 => SignatureInvalid,
            303 => UnsupportedAlgorithm,
            304 => IterationCountTooHigh,
            305 => SignerNotTrusted,
            306 => WrongProtectionType,
            307 => BadMacParameters,
            400 => TransactionIdMismatch,
            401 => RecipNonceMismatch,
            402 => SenderMismatch,
            403 => CertKeyMismatch,
            404 => CertReqIdMismatch,
            405 => MissingHeaderField,
            406 => BadMessageTime,
            407 => MissingCmcEku,
            408 => RootCaUpdateInvalid,
            500 => Rejected,
            501 => PeerError,
            502 => Waiting,
            503 => NoCertificate,
            504 => PollingTimeout,
            600 => TransferFailed,
            601 => HttpError,
            602 => Timeout,
            603 => ResponseTooLarge,
            700 => KeyError,
            701 => CryptoError,
            702 => KeyCallbackFailed,
            703 => BadCertificate,
            704 => DecryptionFailed,
            705 => KeyPackageInvalid,
            _ => return None,
        })
    }

    /// A short stable name, e.g. `"mac-mismatch"`.
    pub fn name(self) -> &'static str {
        // The names are ASCII literals.
        self.c_name().to_str().unwrap_or("unknown")
    }

    /// The short stable name as a C string.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        use ErrorCode::*;
        match self {
            Ok => c"ok",
            NullArgument => c"null-argument",
            InvalidArgument => c"invalid-argument",
            InvalidState => c"invalid-state",
            MissingConfig => c"missing-config",
            BufferTooSmall => c"buffer-too-small",
            NotFound => c"not-found",
            Internal => c"internal",
            MalformedMessage => c"malformed-message",
            UnsupportedVersion => c"unsupported-version",
            UnexpectedBody => c"unexpected-body",
            MessageTooLarge => c"message-too-large",
            EncodingFailed => c"encoding-failed",
            BadMessageContent => c"bad-message-content",
            ProtectionMissing => c"protection-missing",
            MacMismatch => c"mac-mismatch",
            SignatureInvalid => c"signature-invalid",
            UnsupportedAlgorithm => c"unsupported-algorithm",
            IterationCountTooHigh => c"iteration-count-too-high",
            SignerNotTrusted => c"signer-not-trusted",
            WrongProtectionType => c"wrong-protection-type",
            BadMacParameters => c"bad-mac-parameters",
            TransactionIdMismatch => c"transaction-id-mismatch",
            RecipNonceMismatch => c"recip-nonce-mismatch",
            SenderMismatch => c"sender-mismatch",
            CertKeyMismatch => c"cert-key-mismatch",
            CertReqIdMismatch => c"cert-req-id-mismatch",
            MissingHeaderField => c"missing-header-field",
            BadMessageTime => c"bad-message-time",
            MissingCmcEku => c"missing-cmc-eku",
            RootCaUpdateInvalid => c"root-ca-update-invalid",
            Rejected => c"rejected",
            PeerError => c"peer-error",
            Waiting => c"waiting",
            NoCertificate => c"no-certificate",
            PollingTimeout => c"polling-timeout",
            TransferFailed => c"transfer-failed",
            HttpError => c"http-error",
            Timeout => c"timeout",
            ResponseTooLarge => c"response-too-large",
            KeyError => c"key-error",
            CryptoError => c"crypto-error",
            KeyCallbackFailed => c"key-callback-failed",
            BadCertificate => c"bad-certificate",
            DecryptionFailed => c"decryption-failed",
            KeyPackageInvalid => c"key-package-invalid",
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
