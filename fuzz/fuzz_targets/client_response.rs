//! A started ir transaction (MAC credentials) fed arbitrary responses, as is and fixed up to
//! pass the protection and ID checks; the rest of the input is the answer to certConf.
#![no_main]

#[path = "../../tests/fuzz_logic/mod.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut stats = logic::ClientStats::default();
    logic::client_response(data, &mut stats);
});
