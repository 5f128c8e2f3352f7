//! message::decode on arbitrary bytes; a decoded message re-encodes and decodes to itself.
#![no_main]

#[path = "../../tests/fuzz_logic/mod.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::decode(data));
