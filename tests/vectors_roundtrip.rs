//! Every captured DER vector decodes with our types and re-encodes to identical bytes.

use cmpkit::asn1::PkiMessage;
use der::{Decode, Encode};
use std::path::{Path, PathBuf};

fn vector_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out = Vec::new();
    for dir in [
        "openssl-3.0",
        "openssl-3.5-centralkeygen",
        "lightweightcmpra",
        "rustcrypto-formats",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "der") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_vector_decodes_and_reencodes_to_identical_bytes() {
    let files = vector_files();
    assert!(
        files.len() >= 103,
        "expected all vectors, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        match PkiMessage::from_der(&bytes) {
            Ok(msg) => match msg.to_der() {
                Ok(again) if again == bytes => {}
                Ok(_) => failures.push(format!("{}: re-encoding differs", f.display())),
                Err(e) => failures.push(format!("{}: encode: {e}", f.display())),
            },
            Err(e) => failures.push(format!("{}: decode: {e}", f.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!("{} vectors round-trip", files.len());
}
