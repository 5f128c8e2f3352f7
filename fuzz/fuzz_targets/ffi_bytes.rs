//! The C API entry points that take bytes: cmpkit_key_from_pem_or_der,
//! cmpkit_ctx_add_trust_anchors and cmpkit_transaction_feed on a started transaction.
#![no_main]

#[path = "../../tests/fuzz_logic/mod.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::ffi_bytes(data));
