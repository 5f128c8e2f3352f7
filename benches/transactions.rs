//! Criterion benchmarks: whole CMP transactions, client and server in one process (DER
//! between them), the scenarios of OpenSSL's `ossl_cmp_bench`; message encode/decode and
//! protect/verify; the crypto floor. `cargo bench --bench transactions`. The standalone run
//! with OpenSSL's output format, allocation counts and the overhead table is
//! `examples/bench_cmp.rs` (BENCHMARKS.md).

#[path = "common/mod.rs"]
mod common;

use cmpkit::asn1::PkiMessage;
use cmpkit::protection::{self, MacLimits, MacParams, MacProtection, PbmConfig, Protection};
use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use der::{Decode, Encode};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn transactions(c: &mut Criterion) {
    let pki = Pki::new();
    let mut g = c.benchmark_group("txn");
    g.sample_size(20);
    for s in SCENARIOS {
        g.bench_function(s.name(), |b| {
            b.iter_batched(new_key, |k| run_local(&pki, s, &k), BatchSize::SmallInput)
        });
    }
    g.finish();
}

/// A real message: the first request (ir, MAC-protected with OpenSSL's PBM parameters).
fn sample_ir(pki: &Pki) -> Vec<u8> {
    let tx = cmpkit::client::Transaction::start(
        pki.mac_config.clone(),
        cmpkit::client::Operation::Ir(cmpkit::client::EnrollRequest {
            subject: Some(cmpkit::message::parse_name("/CN=Bench").unwrap()),
            sans: Vec::new(),
            key: new_key(),
        }),
    )
    .unwrap();
    tx.pending_request().unwrap().to_vec()
}

fn messages(c: &mut Criterion) {
    let pki = Pki::new();
    let der = sample_ir(&pki);
    let msg = PkiMessage::from_der(&der).unwrap();
    let mac = Protection::Mac(MacProtection::new(
        SECRET.to_vec(),
        MacParams::Pbm(PbmConfig::openssl_compatible()),
    ));
    let sig = Protection::Signature(pki.cli_key.clone());
    let mut signed = msg.clone();
    protection::protect(&mut signed, &sig).unwrap();
    let cli_pub = pki.cli_cert.public_key().unwrap();

    let mut g = c.benchmark_group("message");
    g.bench_function("decode_ir", |b| {
        b.iter(|| PkiMessage::from_der(black_box(&der)).unwrap())
    });
    g.bench_function("encode_ir", |b| {
        b.iter(|| black_box(&msg).to_der().unwrap())
    });
    g.bench_function("protected_part_der", |b| {
        b.iter(|| protection::protected_part_der(black_box(&msg)).unwrap())
    });
    // Fresh salt each time: one PBM derivation + HMAC (no cache hit).
    g.bench_function("protect_pbm", |b| {
        b.iter_batched(
            || msg.clone(),
            |mut m| protection::protect(&mut m, &mac).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_pbm_uncached", |b| {
        b.iter(|| protection::verify_mac(&msg, SECRET, &MacLimits::default(), None).unwrap())
    });
    g.bench_function("protect_ecdsa", |b| {
        b.iter_batched(
            || msg.clone(),
            |mut m| protection::protect(&mut m, &sig).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_ecdsa", |b| {
        b.iter(|| protection::verify_signature(&signed, &cli_pub).unwrap())
    });
    g.finish();
}

fn floor(c: &mut Criterion) {
    let mut f = Floor::new();
    let mut g = c.benchmark_group("floor");
    let mut sig = [0u8; 80];
    g.bench_function("ecdsa_p256_sign", |b| b.iter(|| f.sign(&mut sig)));
    g.bench_function("ecdsa_p256_verify", |b| b.iter(|| f.verify()));
    g.bench_function("pbm_key_sha256_500", |b| b.iter(|| f.pbm_key()));
    let key = f.pbm_key();
    g.bench_function("hmac_sha1_512", |b| b.iter(|| f.mac(&key)));
    g.finish();
}

criterion_group!(benches, transactions, messages, floor);
criterion_main!(benches);
