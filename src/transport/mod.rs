//! Transports that carry CMP messages to a server and bring back its answer.
//!
//! The protocol core is sans-IO; these are optional helpers. [`HttpTransfer`] is a
//! small blocking HTTP/1.1 client for CMP over HTTP (RFC 9811) built on `std::net`;
//! [`HttpServer`] is the matching server side, passing each request body to a handler.

pub mod http;
pub mod http_server;

pub use http::HttpTransfer;
pub use http_server::{HttpServer, ServerOptions, ServerStats};
