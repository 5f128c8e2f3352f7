//! The C API: a thin shell that checks pointers and lengths, catches panics, and calls the
//! safe core. No protocol logic lives here. One file per handle.
//!
//! Conventions (repeated in the header preamble): every function returns a
//! [`cmpkit_result`](crate::ErrorCode); inputs come before outputs; every buffer is followed by
//! its `size_t` length; out-parameters are written only on success; every `*_free` accepts
//! NULL; a failed call leaves the caller's handles valid.

//! Safety contract of every `unsafe extern "C"` function here (stated once, in the header
//! preamble too, rather than on each function): pointer arguments are NULL or valid for the
//! access their type and length describe, handles are live and not freed concurrently, and
//! a handle is used by one thread at a time unless its documentation says otherwise.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod util;

pub mod ca_handler;
pub mod ctx;
pub mod key;
pub mod log;
pub mod request;
pub mod response;
pub mod server;
pub mod server_config;
pub mod transaction;
pub mod version;

pub use util::{cmpkit_last_error, cmpkit_result_name};
