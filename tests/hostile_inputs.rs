//! Hostile input corpus: systematic mutations of valid messages (tests/vectors/openssl-3.0)
//! fed to `message::decode`, to protection verification and to a client transaction.
//! Every case names the error code it expects; counts and timings are printed (see them
//! with `cargo test --test hostile_inputs -- --nocapture`).

mod fuzz_logic;

use cmpkit::asn1::{oid, PbmParameter, PkiBody, PkiMessage};
use cmpkit::client::ClientConfig;
use cmpkit::message::{self, DEFAULT_MAX_MESSAGE_SIZE};
use cmpkit::protection::{
    self, verify_mac, verify_signature, MacLimits, MacParams, MacProtection, Pbmac1Config,
    Protection,
};
use cmpkit::ErrorCode;
use der::asn1::{Any, Int, Uint};
use der::{Decode, Encode};
use fuzz_logic::{fix_up, start_ir_with, SECRET};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The system allocator, remembering per thread the largest size requested (see
/// [`largest_allocation_in`]).
struct LargestRequest;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn note_request(size: usize) {
    // try_with: no panic while the thread is being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards every call to the system allocator, only noting sizes.
unsafe impl std::alloc::GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        note_request(l.size());
        // SAFETY: the caller's layout contract, passed on.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        note_request(l.size());
        // SAFETY: as alloc.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new_size: usize) -> *mut u8 {
        note_request(new_size);
        // SAFETY: `p` came from this allocator with `l`; the caller's contract for new_size.
        unsafe { std::alloc::System.realloc(p, l, new_size) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: `p` came from this allocator with `l`.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

/// The largest single allocation (bytes) `f` requests on this thread.
fn largest_allocation_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(|l| l.get()))
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/openssl-3.0")
}

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(vector_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every DER vector of the folder, sorted by name.
fn all_vectors() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(vector_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "der"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn decode_code(bytes: &[u8]) -> Result<PkiMessage, ErrorCode> {
    message::decode(bytes, DEFAULT_MAX_MESSAGE_SIZE).map_err(|e| e.code)
}

/// Runs `f` on a thread with a 256 KiB stack: a recursion without a depth bound would
/// overflow it (and abort the test process).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic on the small stack")
}

/// A client with default MAC limits (the product defaults), MAC credentials with the
/// vectors' secret.
fn default_client() -> Arc<ClientConfig> {
    Arc::new(fuzz_logic::mac_config(MacLimits::default()))
}

/// Feeds `rsp` as is to a fresh ir transaction and returns the outcome's code.
fn client_code(config: &Arc<ClientConfig>, rsp: &[u8]) -> ErrorCode {
    let mut tx = start_ir_with(config.clone());
    match tx.handle_response(rsp) {
        Ok(()) => ErrorCode::Ok,
        Err(e) => e.code,
    }
}

/// `ir_mac_rsp_1.der` edited with `edit`, made an answer to `tx`'s pending request and
/// MAC-protected again with `params` (None: the response's own protectionAlg).
fn edited_answer(
    tx: &cmpkit::client::Transaction,
    edit: impl FnOnce(&mut PkiMessage),
    params: Option<MacParams>,
) -> Vec<u8> {
    let req = tx.pending_request().unwrap();
    let fixed = fix_up(&vector("ir_mac_rsp_1.der"), req).expect("fix up the vector");
    let mut msg = PkiMessage::from_der(&fixed).unwrap();
    edit(&mut msg);
    let params =
        params.unwrap_or_else(|| MacParams::Explicit(msg.header.protection_alg.clone().unwrap()));
    let mut mac = MacProtection::new(SECRET.to_vec(), params);
    mac.limits.max_iterations = u64::MAX;
    mac.limits.max_pbkdf2_work = u64::MAX;
    // Protection with hostile parameters would take forever: those cases set protectionAlg
    // by hand instead (see `hostile_iteration_counts_*`).
    protection::protect(&mut msg, &Protection::Mac(mac)).unwrap();
    msg.to_der().unwrap()
}

#[test]
fn truncation_at_every_length_is_malformed_message() {
    let start = Instant::now();
    let (mut inputs, mut rejected) = (0u64, 0u64);
    for (name, bytes) in all_vectors() {
        for len in 0..bytes.len() {
            inputs += 1;
            match decode_code(&bytes[..len]) {
                Err(ErrorCode::MalformedMessage) => rejected += 1,
                other => panic!(
                    "{name} truncated to {len} of {} bytes: expected malformed-message, got {other:?}",
                    bytes.len()
                ),
            }
        }
    }
    println!(
        "truncations (decode, all {} openssl-3.0 vectors): {inputs} inputs, {rejected} rejected as malformed-message in {:?}",
        all_vectors().len(),
        start.elapsed()
    );
    assert_eq!(inputs, rejected);

    // The same through a client transaction: every truncated ip ends it with malformed-message.
    let start = Instant::now();
    let config = default_client();
    let rsp = vector("ir_mac_rsp_1.der");
    let mut tx_rejected = 0;
    for len in 0..rsp.len() {
        let mut tx = start_ir_with(config.clone());
        let e = tx.handle_response(&rsp[..len]).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::MalformedMessage,
            "truncated to {len}: {e}"
        );
        assert!(tx.is_done());
        tx_rejected += 1;
    }
    println!(
        "truncations (client, ir_mac_rsp_1.der): {} inputs, {tx_rejected} rejected as malformed-message in {:?}",
        rsp.len(),
        start.elapsed()
    );
}

/// The length of the tag and length octets of the TLV at the start of `d`.
fn hdr_len(d: &[u8]) -> usize {
    if d[1] < 0x80 {
        2
    } else {
        2 + (d[1] & 0x7f) as usize
    }
}

/// The byte range `[start, end)` of the header and body TLVs (the ProtectedPart's content)
/// inside a message's outer SEQUENCE.
fn protected_range(bytes: &[u8]) -> (usize, usize) {
    let outer_hdr = hdr_len(bytes);
    let header_len = fuzz_logic::der_tlv_len(&bytes[outer_hdr..]).unwrap();
    let body_len = fuzz_logic::der_tlv_len(&bytes[outer_hdr + header_len..]).unwrap();
    (outer_hdr, outer_hdr + header_len + body_len)
}

/// The bits flipped in byte `i`: two per byte by default (bit `i % 8` and `(i + 4) % 8`, so
/// every bit position is hit across the message); all eight with `CMPKIT_ALL_BIT_FLIPS=1`
/// (about 8x the time: 35 000 inputs, ~30 s in a debug build).
fn bits_to_flip(i: usize) -> Vec<u32> {
    if std::env::var_os("CMPKIT_ALL_BIT_FLIPS").is_some() {
        (0..8).collect()
    } else {
        vec![(i % 8) as u32, ((i + 4) % 8) as u32]
    }
}

#[test]
fn single_bit_flips_never_verify_inside_the_protected_part() {
    let pki = vector_dir().join("pki");
    let server_key = openssl::x509::X509::from_pem(&std::fs::read(pki.join("server.crt")).unwrap())
        .unwrap()
        .public_key()
        .unwrap();
    let limits = MacLimits::default();
    // Flips outside protectionAlg reuse the derived key (as a client's cache does).
    let cache = cmpkit::protection::MacKeyCache::new();
    let start = Instant::now();
    for name in [
        "ir_mac_rsp_1.der",
        "genm_mac_rsp_1.der",
        "ir_mac_rejected_rsp_1.der",
        "cr_sig_rsp_1.der",
    ] {
        let bytes = vector(name);
        let (p_start, p_end) = protected_range(&bytes);
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..bytes.len() {
            for bit in bits_to_flip(i) {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                let Ok(msg) = decode_code(&m).map_err(|c| {
                    assert_eq!(c, ErrorCode::MalformedMessage, "{name} byte {i} bit {bit}");
                    *outcomes
                        .entry("decode: malformed-message".into())
                        .or_default() += 1;
                }) else {
                    continue;
                };
                let verdict = match protection::protection_kind(&msg) {
                    Some(protection::ProtectionKind::Mac) => {
                        verify_mac(&msg, SECRET, &limits, Some(&cache))
                    }
                    _ => verify_signature(&msg, &server_key),
                };
                let inside = (p_start..p_end).contains(&i);
                let what = match (&verdict, inside) {
                    (Ok(()), false) => "verified (flip outside the protected part)".to_owned(),
                    (Ok(()), true) => panic!(
                        "{name}: flipping bit {bit} of byte {i} (inside the protected part {p_start}..{p_end}) still verifies"
                    ),
                    (Err(e), _) => {
                        assert!(
                            matches!(
                                e.code,
                                ErrorCode::MacMismatch
                                    | ErrorCode::SignatureInvalid
                                    | ErrorCode::BadMacParameters
                                    | ErrorCode::IterationCountTooHigh
                                    | ErrorCode::UnsupportedAlgorithm
                                    | ErrorCode::WrongProtectionType
                                    | ErrorCode::ProtectionMissing
                                    | ErrorCode::MalformedMessage
                            ),
                            "{name} byte {i} bit {bit}: unexpected {e}"
                        );
                        // Outside the protected part only the protection value (or its BIT
                        // STRING framing) can make verification fail.
                        assert!(
                            inside
                                || matches!(
                                    e.code,
                                    ErrorCode::MacMismatch
                                        | ErrorCode::SignatureInvalid
                                        | ErrorCode::MalformedMessage
                                ),
                            "{name} byte {i} bit {bit} (outside {p_start}..{p_end}): {e}"
                        );
                        format!("decoded, verification: {}", e.code.name())
                    }
                };
                *outcomes.entry(what).or_default() += 1;
            }
        }
        let total: u64 = outcomes.values().sum();
        println!("bit flips {name} ({} bytes, protected part {p_start}..{p_end}): {total} inputs: {outcomes:?}", bytes.len());
        assert_eq!(
            total,
            (0..bytes.len()).map(|i| bits_to_flip(i).len() as u64).sum()
        );
    }
    println!("bit flips: done in {:?}", start.elapsed());
}

#[test]
fn absurd_der_lengths_are_malformed_and_fast() {
    let rsp = vector("ir_mac_rsp_1.der");
    let (p_start, _) = protected_range(&rsp);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "outer 0x84 ffffffff",
            [&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..], &rsp[6..]].concat(),
        ),
        (
            "outer 0x88 (8 length octets)",
            [
                &[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
                &rsp[4..],
            ]
            .concat(),
        ),
        (
            "outer indefinite 0x80 (BER)",
            [&[0x30, 0x80][..], &rsp[4..], &[0, 0][..]].concat(),
        ),
        ("outer 0x84 with leading zero octets (non-minimal)", {
            let n = rsp.len() - 4;
            [&[0x30, 0x84, 0, 0, (n >> 8) as u8, n as u8][..], &rsp[4..]].concat()
        }),
        ("only a header", vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
    ];
    // The header's own length replaced by 0x84 ffffffff.
    let mut inner = rsp.clone();
    assert_eq!(inner[p_start], 0x30);
    let len_octets = hdr_len(&inner[p_start..]) - 1;
    inner.splice(
        p_start + 1..p_start + 1 + len_octets,
        [0x84, 0xff, 0xff, 0xff, 0xff],
    );
    cases.push(("header 0x84 ffffffff", inner));
    for (what, bytes) in &cases {
        let start = Instant::now();
        let code = decode_code(bytes).map(|_| ()).unwrap_err();
        let took = start.elapsed();
        assert_eq!(code, ErrorCode::MalformedMessage, "{what}");
        assert!(took < Duration::from_millis(100), "{what}: {took:?}");
        println!("absurd length: {what}: malformed-message in {took:?}");
    }
}

/// Regression (fuzz/ `decode`, tests/regressions/decode-senderkid-4gib-length.bin): a
/// 1133-byte ir whose senderKID claimed 0x84848484 bytes made der allocate 2.2 GB before
/// noticing the input was shorter. Every field of a message that claims more than its
/// enclosing encoding holds is now refused before any such allocation, wherever a peer's
/// message is decoded: message::decode, the server, the client (with logging on) and
/// server::summarize.
#[test]
fn lengths_beyond_the_enclosing_encoding_allocate_nothing_big() {
    const BIG: usize = 16 << 20;
    let regression = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions/decode-senderkid-4gib-length.bin"),
    )
    .unwrap();
    let req = vector("ir_mac_req_1.der");
    let rsp = vector("ir_mac_rsp_1.der");
    // Every primitive TLV inside the ir and ip in turn claims 0x84 ffffffff (the message's
    // remaining bytes shifted, all enclosing lengths left as they were).
    let mut cases = vec![("regression".to_owned(), regression)];
    for (name, msg) in [("ir", &req), ("ip", &rsp)] {
        let mut at = 0;
        let mut n = 0;
        while at + 2 <= msg.len() {
            let hl = hdr_len(&msg[at..]);
            let constructed = msg[at] & 0x20 != 0;
            if !constructed && msg[at] & 0x1f != 0x1f {
                let mut m = msg.clone();
                m.splice(at + 1..at + hl, [0x84, 0xff, 0xff, 0xff, 0xff]);
                cases.push((format!("{name}: TLV at {at}"), m));
                n += 1;
            }
            at += if constructed {
                hl
            } else {
                hl + der_content_len(&msg[at..])
            };
        }
        assert!(n > 20, "{name}: only {n} primitive TLVs");
    }
    let logged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = {
        let mut c = fuzz_logic::mac_config(fuzz_logic::FUZZ_LIMITS);
        let logged = logged.clone();
        c.log = Some(cmpkit::log::Logger::new(
            cmpkit::log::LogLevel::Debug,
            move |_, _| {
                logged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
        ));
        Arc::new(c)
    };
    for (what, bytes) in &cases {
        let (code, largest) = largest_allocation_in(|| decode_code(bytes).map(|_| ()));
        assert_eq!(code, Err(ErrorCode::MalformedMessage), "{what}");
        assert!(largest < BIG, "{what}: decode allocated {largest} bytes");
        let (_, largest) = largest_allocation_in(|| cmpkit::server::summarize(bytes));
        assert!(largest < BIG, "{what}: summarize allocated {largest} bytes");
        let (code, largest) = largest_allocation_in(|| client_code(&client, bytes));
        assert_eq!(code, ErrorCode::MalformedMessage, "{what}");
        assert!(
            largest < BIG,
            "{what}: the client allocated {largest} bytes"
        );
        let (answer, largest) = largest_allocation_in(|| fuzz_logic::server_process_answer(bytes));
        assert!(
            largest < BIG,
            "{what}: the server allocated {largest} bytes"
        );
        assert!(PkiMessage::from_der(&answer).is_ok(), "{what}: the answer");
    }
    assert!(logged.load(std::sync::atomic::Ordering::Relaxed) > 0);
    println!("{} messages with an overlong field: refused", cases.len());
}

/// The content length of the TLV at the start of `d`.
fn der_content_len(d: &[u8]) -> usize {
    fuzz_logic::der_tlv_len(d).unwrap() - hdr_len(d)
}

/// `depth` SEQUENCEs nested inside each other, innermost empty (minimal DER lengths).
fn nested_sequences(depth: usize) -> Vec<u8> {
    let mut v: Vec<u8> = vec![0x30, 0x00];
    for _ in 0..depth {
        v = tlv(0x30, &v);
    }
    v
}

/// A DER TLV with a minimal length encoding.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut v = vec![tag];
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        v.push(0x80 | (4 - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    v.extend_from_slice(content);
    v
}

#[test]
fn deep_nesting_is_refused_quickly_on_a_small_stack() {
    // 10 000 nested SEQUENCEs as the whole message.
    let seqs = nested_sequences(10_000);
    let (code, took) = on_small_stack(move || {
        let start = Instant::now();
        let r = message::decode(&seqs, usize::MAX)
            .map(|_| ())
            .unwrap_err()
            .code;
        (r, start.elapsed())
    });
    assert_eq!(code, ErrorCode::MalformedMessage);
    assert!(took < Duration::from_secs(1), "{took:?}");
    println!(
        "deep nesting: 10000 nested SEQUENCEs: malformed-message in {took:?} on a 256 KiB stack"
    );

    // 10 000 nested [20] bodies: PKIMessage { header, nested [20] { PKIMessage { header,
    // nested [20] { ... } } } }, innermost body an unknown tag [27] (malformed).
    let rsp = vector("ir_mac_rsp_1.der");
    let (p_start, _) = protected_range(&rsp);
    let header = rsp[p_start..p_start + fuzz_logic::der_tlv_len(&rsp[p_start..]).unwrap()].to_vec();
    let mut msg = tlv(0x30, &[&header[..], &tlv(0xbb, &[0x30, 0x00])[..]].concat());
    for _ in 0..10_000 {
        let body = tlv(0xb4, &tlv(0x30, &msg));
        msg = tlv(0x30, &[&header[..], &body[..]].concat());
    }
    let size = msg.len();
    let config = default_client();
    let (decoded, client, took) = on_small_stack(move || {
        let start = Instant::now();
        let decoded = message::decode(&msg, usize::MAX).map(|m| m.body.name());
        let client = {
            let mut tx = start_ir_with(config);
            tx.handle_response(&msg).unwrap_err().code
        };
        (decoded.map_err(|e| e.code), client, start.elapsed())
    });
    // Nested messages are kept as raw DER (src/asn1: decoding never recurses into them), so
    // the outer message decodes as a `nested` body without touching the 10 000 levels; the
    // client refuses it: it is too large (5 MiB+ of headers) or, below the cap, unprotected.
    assert_eq!(decoded, Ok("nested"));
    assert!(
        matches!(
            client,
            ErrorCode::MessageTooLarge | ErrorCode::ProtectionMissing
        ),
        "{client:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    println!(
        "deep nesting: 10000 nested [20] bodies ({size} bytes): decode keeps them raw (body 'nested'), client: {} in {took:?} on a 256 KiB stack",
        client.name()
    );
    // 200 levels (below the size cap): the client gets as far as the protection check.
    let mut msg = tlv(0x30, &[&header[..], &tlv(0xbb, &[0x30, 0x00])[..]].concat());
    for _ in 0..200 {
        msg = tlv(
            0x30,
            &[&header[..], &tlv(0xb4, &tlv(0x30, &msg))[..]].concat(),
        );
    }
    let mut tx = start_ir_with(default_client());
    let e = tx.handle_response(&msg).unwrap_err();
    assert_eq!(e.code, ErrorCode::ProtectionMissing, "{e}");
}

#[test]
fn huge_extra_certs_are_message_too_large() {
    let rsp = PkiMessage::from_der(&vector("ir_mac_rsp_1.der")).unwrap();
    let cert = rsp.extra_certs.as_ref().unwrap()[0].clone();
    let cert_len = cert.to_der().unwrap().len();
    let mut msg = rsp.clone();
    let n = (5 << 20) / cert_len + 1;
    msg.extra_certs = Some(vec![cert; n]);
    let bytes = msg.to_der().unwrap();
    assert!(bytes.len() > 5 << 20);
    let start = Instant::now();
    assert_eq!(
        decode_code(&bytes).map(|_| ()).unwrap_err(),
        ErrorCode::MessageTooLarge
    );
    let mut tx = start_ir_with(default_client());
    let e = tx.handle_response(&bytes).unwrap_err();
    assert_eq!(e.code, ErrorCode::MessageTooLarge, "{e}");
    println!(
        "huge extraCerts: {} certificates, {} bytes: message-too-large (decode and client) in {:?}",
        n,
        bytes.len(),
        start.elapsed()
    );
}

#[test]
fn wrong_pvno_is_unsupported_version_via_the_client() {
    let config = default_client();
    for pvno in [1u8, 99] {
        let mut tx = start_ir_with(config.clone());
        let rsp = edited_answer(&tx, |m| m.header.pvno = pvno, None);
        let e = tx.handle_response(&rsp).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedVersion, "pvno {pvno}: {e}");
        println!("pvno {pvno}: unsupported-version");
    }
    // The control: the same edit path with pvno 2 is accepted (certConf follows).
    let mut tx = start_ir_with(config);
    let rsp = edited_answer(&tx, |m| m.header.pvno = 2, None);
    tx.handle_response(&rsp).unwrap();
    assert!(tx.pending_request().is_some());
}

#[test]
fn unknown_body_tags_are_malformed_message() {
    let rsp = vector("ir_mac_rsp_1.der");
    let (p_start, _) = protected_range(&rsp);
    let header = &rsp[p_start..p_start + fuzz_logic::der_tlv_len(&rsp[p_start..]).unwrap()];
    let config = default_client();
    for tag in [27u8, 30] {
        let body = tlv(0xa0 | tag, &[0x30, 0x00]);
        let msg = tlv(0x30, &[header, &body[..]].concat());
        assert_eq!(
            decode_code(&msg).map(|_| ()).unwrap_err(),
            ErrorCode::MalformedMessage,
            "[{tag}]"
        );
        assert_eq!(
            client_code(&config, &msg),
            ErrorCode::MalformedMessage,
            "[{tag}]"
        );
        println!("body [{tag}]: malformed-message (decode and client)");
    }
}

fn int(n: u64) -> Int {
    Int::from(Uint::new(&n.to_be_bytes()).unwrap())
}

#[test]
fn hostile_iteration_counts_are_refused_fast() {
    let config = default_client();
    let base = PkiMessage::from_der(&vector("ir_mac_rsp_1.der")).unwrap();
    let alg = base.header.protection_alg.clone().unwrap();
    assert_eq!(alg.oid, oid::PASSWORD_BASED_MAC);
    let pbm = PbmParameter::from_der(&alg.parameters.as_ref().unwrap().to_der().unwrap()).unwrap();
    let pbmac1_alg = Pbmac1Config {
        iterations: 1,
        ..Pbmac1Config::default()
    }
    .algorithm_identifier()
    .unwrap();
    let mut cases: Vec<(String, spki::AlgorithmIdentifierOwned)> = Vec::new();
    for (what, n) in [
        ("PBM 100001", int(100_001)),
        ("PBM 10^9", int(1_000_000_000)),
        ("PBM u64::MAX", int(u64::MAX)),
        (
            "PBM 2^72",
            Int::new(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
        ),
    ] {
        let mut p = pbm.clone();
        p.iteration_count = n;
        cases.push((
            what.to_owned(),
            spki::AlgorithmIdentifierOwned {
                oid: oid::PASSWORD_BASED_MAC,
                parameters: Some(Any::encode_from(&p).unwrap()),
            },
        ));
    }
    // PBMAC1: patch the PBKDF2 iterationCount inside the parameters' DER.
    for (what, count) in [
        ("PBMAC1 10^9", 1_000_000_000u32),
        ("PBMAC1 2^32-1", u32::MAX),
    ] {
        let mut params = cmpkit::asn1::Pbmac1Params::from_der(
            &pbmac1_alg.parameters.as_ref().unwrap().to_der().unwrap(),
        )
        .unwrap();
        let mut kdf = cmpkit::asn1::Pbkdf2Params::from_der(
            &params
                .key_derivation_func
                .parameters
                .as_ref()
                .unwrap()
                .to_der()
                .unwrap(),
        )
        .unwrap();
        kdf.iteration_count = int(count as u64);
        params.key_derivation_func.parameters = Some(Any::encode_from(&kdf).unwrap());
        cases.push((
            what.to_owned(),
            spki::AlgorithmIdentifierOwned {
                oid: oid::PBMAC1,
                parameters: Some(Any::encode_from(&params).unwrap()),
            },
        ));
    }
    for (what, alg) in cases {
        let mut tx = start_ir_with(config.clone());
        // IDs fixed up, then the hostile protectionAlg with any protection value.
        let req = tx.pending_request().unwrap();
        let fixed = fix_up(&vector("ir_mac_rsp_1.der"), req).unwrap();
        let mut msg = PkiMessage::from_der(&fixed).unwrap();
        msg.header.protection_alg = Some(alg);
        let bytes = msg.to_der().unwrap();
        let start = Instant::now();
        let direct = verify_mac(&msg, SECRET, &MacLimits::default(), None).unwrap_err();
        let e = tx.handle_response(&bytes).unwrap_err();
        let took = start.elapsed();
        assert_eq!(
            direct.code,
            ErrorCode::IterationCountTooHigh,
            "{what}: {direct}"
        );
        assert_eq!(e.code, ErrorCode::IterationCountTooHigh, "{what}: {e}");
        assert!(took < Duration::from_millis(200), "{what}: {took:?}");
        println!("hostile iterations: {what}: iteration-count-too-high (verify_mac and client) in {took:?}");
    }
}

#[test]
fn body_name_of_every_vector_is_known() {
    // Sanity for the corpus: every vector decodes and has a body this crate names.
    for (name, bytes) in all_vectors() {
        let m = decode_code(&bytes).unwrap_or_else(|c| panic!("{name}: {c:?}"));
        assert!(!matches!(m.body, PkiBody::Nested(_)), "{name}");
    }
}

/// The TLVs of a message's outer SEQUENCE: header, body, [0] protection, [1] extraCerts.
fn message_fields(d: &[u8]) -> Vec<Vec<u8>> {
    let mut rest = &d[hdr_len(d)..];
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let n = fuzz_logic::der_tlv_len(rest).unwrap();
        fields.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    fields
}

#[test]
fn repeated_or_misplaced_protection_and_extra_certs_are_malformed_message() {
    // A signed request with both optional fields: header, body, [0], [1].
    let d = vector("cr_sig_req_1.der");
    let f = message_fields(&d);
    assert_eq!(f.len(), 4);
    assert!(decode_code(&tlv(0x30, &f.concat())).is_ok());
    let cases: [(&str, Vec<&Vec<u8>>); 5] = [
        ("[0] twice", vec![&f[0], &f[1], &f[2], &f[2], &f[3]]),
        ("[1] twice", vec![&f[0], &f[1], &f[2], &f[3], &f[3]]),
        ("[1] before [0]", vec![&f[0], &f[1], &f[3], &f[2]]),
        (
            "[0] after [1], twice",
            vec![&f[0], &f[1], &f[2], &f[3], &f[2]],
        ),
        ("body twice", vec![&f[0], &f[1], &f[1], &f[2], &f[3]]),
    ];
    for (what, fields) in cases {
        let bytes = tlv(
            0x30,
            &fields.into_iter().flatten().copied().collect::<Vec<u8>>(),
        );
        assert_eq!(
            decode_code(&bytes).err(),
            Some(ErrorCode::MalformedMessage),
            "{what}"
        );
    }
}
