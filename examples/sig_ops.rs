//! Cost of one signature operation and one public-key import, outside CMP: P-256 sign,
//! P-256 verify, P-256 SubjectPublicKeyInfo import (and the same for the other key types).
//!
//! ```text
//! sig_ops [N] [p256|p384|rsa|ed25519]   # N operations of each kind after a warm-up, for
//!                                       # every key type or one; prints ns per operation
//! ```
//! For instructions per operation, run it under callgrind twice, with N = 200 and N = 400
//! (`valgrind --tool=callgrind ./sig_ops 200 p256`), and divide the difference of the
//! inclusive costs of each `op_*` function (`callgrind_annotate --inclusive=yes`) by 200: that
//! leaves out set-up and warm-up. `ECDSA_sign_ex` and `ECDSA_verify` are the primitives' share.

use cmpkit::crypto::{verify_signature, KeyType, Signer, SoftwareKey};
use openssl::pkey::{PKey, Public};
use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn op_sign(key: &SoftwareKey, data: &[u8]) -> Vec<u8> {
    key.sign(data).expect("sign")
}

#[inline(never)]
fn op_verify(key: &SoftwareKey, public: &PKey<Public>, data: &[u8], sig: &[u8]) {
    verify_signature(key.algorithm(), public, data, sig).expect("verify");
}

#[inline(never)]
fn op_import(spki: &[u8]) -> PKey<Public> {
    cmpkit::crypto::public_key_from_der(spki).expect("import")
}

#[inline(never)]
fn op_import_decoder(spki: &[u8]) -> PKey<Public> {
    PKey::public_key_from_der(spki).expect("import")
}

fn per_op(n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..n.min(20) {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N is a number"))
        .unwrap_or(2000);
    let only = std::env::args().nth(2);
    // About the size of a CMP message's ProtectedPart.
    let data = vec![0x5au8; 1500];
    println!("| key | sign ns | verify ns | import ns | import (decoder) ns |");
    println!("|---|---:|---:|---:|---:|");
    for (name, kind) in [
        ("p256", KeyType::EcP256),
        ("p384", KeyType::EcP384),
        ("rsa", KeyType::Rsa(2048)),
        ("ed25519", KeyType::Ed25519),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let key = SoftwareKey::generate(kind).expect("key");
        let public = op_import(key.public_key_der());
        let sig = op_sign(&key, &data);
        let sign = per_op(n, || drop(black_box(op_sign(&key, &data))));
        let verify = per_op(n, || op_verify(&key, &public, &data, &sig));
        let import = per_op(n, || drop(black_box(op_import(key.public_key_der()))));
        let decoder = per_op(n, || {
            drop(black_box(op_import_decoder(key.public_key_der())))
        });
        println!("| {kind:?} | {sign:.0} | {verify:.0} | {import:.0} | {decoder:.0} |");
    }
}
