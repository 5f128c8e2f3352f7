//! Transports that carry CMP messages to a server and bring back its answer.
//!
//! The protocol core is sans-IO; these are optional helpers. [`HttpTransfer`] is a
//! small blocking HTTP/1.1 client for CMP over HTTP (RFC 9811) built on `std::net`.

pub mod http;

pub use http::HttpTransfer;
