//! cmpkit: the Certificate Management Protocol (CMP, RFC 9810) with a C API.
//!
//! The protocol core is sans-IO: client transactions emit request bytes and consume
//! response bytes; transports and private-key operations come from the caller or from
//! the built-in helpers (HTTP transfer, OpenSSL software keys).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod asn1;
pub mod client;
pub mod crypto;
pub mod error;
pub mod ffi;
pub mod log;
pub mod message;
pub mod protection;
pub mod server;
pub mod transport;

pub use error::{Error, ErrorCode, Result};
