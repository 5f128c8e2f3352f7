//! Server::process on arbitrary bytes: always a DER PKIMessage back, never a panic.
#![no_main]

#[path = "../../tests/fuzz_logic/mod.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::server_process(data));
