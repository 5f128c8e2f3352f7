//! The C API: a thin shell that checks pointers and lengths, catches panics, and calls the
//! safe core. No protocol logic lives here. One file per handle.
//!
//! Conventions (repeated in the header preamble): every function returns a
//! [`cmpkit_result`](crate::ErrorCode); inputs come before outputs; every buffer is followed by
//! its `size_t` length; out-parameters are written only on success; every `*_free` accepts
//! NULL; a failed call leaves the caller's handles valid.

#![allow(non_camel_case_types)]

mod util;

pub mod ctx;
pub mod key;
pub mod request;
pub mod response;
pub mod transaction;
pub mod version;

pub use util::{cmpkit_last_error, cmpkit_result_name};
