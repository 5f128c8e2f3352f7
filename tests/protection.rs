//! Message protection against the captured vectors, tampering, hostile parameters, and
//! protect-then-verify round trips.

use cmpkit::asn1::{oid, Pbkdf2Params, PbmParameter, Pbmac1Params, PkiMessage};
use cmpkit::crypto::{KeyType, SigAlg, Signer, SoftwareKey};
use cmpkit::protection::{
    pbm_floor, protect, protect_in_transaction, protect_to_der, protected_part_der,
    protection_kind, verify_mac, verify_mac_der, verify_signature, verify_signature_der, HashAlg,
    MacKeyCache, MacLimits, MacParams, MacProtection, PbmConfig, Pbmac1Config, Protection,
    ProtectionKind,
};
use cmpkit::ErrorCode;
use der::asn1::{Any, Int, OctetString, Uint};
use der::{Decode, Encode};
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use spki::AlgorithmIdentifierOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPENSSL_SECRET: &[u8] = b"interop-secret-0123";
const RUSTCRYPTO_SECRET: &[u8] = b"1234-5678-1234-5678";
const LWCMPRA_SECRET: &[u8] = b"Password";

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// (file name, message) of every DER vector in a folder, sorted.
fn vectors(folder: &str) -> Vec<(String, PkiMessage)> {
    let mut out: Vec<(String, PkiMessage)> = std::fs::read_dir(dir(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "der"))
        .map(|p| {
            let msg = PkiMessage::from_der(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), msg)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn load(folder: &str, name: &str) -> PkiMessage {
    PkiMessage::from_der(&std::fs::read(dir(folder).join(name)).unwrap()).unwrap()
}

fn cert_key(cert: &cmpkit::asn1::CmpCertificate) -> PKey<Public> {
    X509::from_der(cert.der()).unwrap().public_key().unwrap()
}

fn first_extra_cert_key(msg: &PkiMessage) -> PKey<Public> {
    cert_key(&msg.extra_certs.as_ref().expect("extraCerts")[0])
}

fn pbm_params(msg: &PkiMessage) -> PbmParameter {
    let alg = msg.header.protection_alg.as_ref().unwrap();
    assert_eq!(alg.oid, oid::PASSWORD_BASED_MAC);
    PbmParameter::from_der(&alg.parameters.as_ref().unwrap().to_der().unwrap()).unwrap()
}

fn set_pbm_params(msg: &mut PkiMessage, p: &PbmParameter) {
    msg.header.protection_alg = Some(AlgorithmIdentifierOwned {
        oid: oid::PASSWORD_BASED_MAC,
        parameters: Some(Any::encode_from(p).unwrap()),
    });
}

fn int(n: u64) -> Int {
    Int::from(Uint::new(&n.to_be_bytes()).unwrap())
}

fn flip_protection_bit(msg: &mut PkiMessage) {
    let mut bytes = msg.protection.as_ref().unwrap().raw_bytes().to_vec();
    bytes[0] ^= 0x01;
    msg.protection = Some(der::asn1::BitString::from_bytes(&bytes).unwrap());
}

fn limits() -> MacLimits {
    MacLimits::default()
}

#[test]
fn every_openssl_mac_vector_verifies_with_the_interop_secret() {
    let mut n = 0;
    for (name, msg) in vectors("openssl-3.0") {
        if protection_kind(&msg) != Some(ProtectionKind::Mac) {
            continue;
        }
        assert!(name.contains("_mac_"), "{name} is MAC-protected");
        // PBM with owf SHA-256, 500 iterations, hmac-sha1 (1.3.6.1.5.5.8.1.2).
        let p = pbm_params(&msg);
        assert_eq!(p.owf.oid, oid::SHA256, "{name}");
        assert_eq!(p.mac.oid, oid::HMAC_SHA1_IPSEC, "{name}");
        verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let der = std::fs::read(dir("openssl-3.0").join(&name)).unwrap();
        verify_mac_der(&msg, &der, OPENSSL_SECRET, &limits(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        n += 1;
    }
    // All ir_mac_* and genm_mac_* files except the unprotected error response (INDEX.md).
    assert_eq!(n, 17);
}

#[test]
fn every_rustcrypto_mac_vector_verifies_with_its_secret() {
    let mut n = 0;
    for (name, msg) in vectors("rustcrypto-formats") {
        if protection_kind(&msg) == Some(ProtectionKind::Mac) {
            verify_mac(&msg, RUSTCRYPTO_SECRET, &limits(), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let der = std::fs::read(dir("rustcrypto-formats").join(&name)).unwrap();
            verify_mac_der(&msg, &der, RUSTCRYPTO_SECRET, &limits(), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert_eq!(n, 10);
}

#[test]
fn lightweightcmpra_pbmac1_vectors_verify_reading_key_length_4096_as_bits() {
    let mut n = 0;
    for (name, msg) in vectors("lightweightcmpra") {
        if protection_kind(&msg) != Some(ProtectionKind::Mac) {
            continue;
        }
        assert_eq!(msg.header.protection_alg.as_ref().unwrap().oid, oid::PBMAC1);
        let cache = MacKeyCache::new();
        verify_mac(&msg, LWCMPRA_SECRET, &limits(), Some(&cache))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // keyLength 4096 exceeds 512 octets, so only the bit reading (512 octets) is derived.
        assert_eq!(cache.derivations(), 1, "{name}");
        let err = verify_mac(&msg, b"password", &limits(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::MacMismatch, "{name}");
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn wrong_secret_gives_mac_mismatch() {
    let msg = load("openssl-3.0", "ir_mac_req_1.der");
    let err = verify_mac(&msg, b"interop-secret-0124", &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch, "{err}");
}

#[test]
fn one_flipped_bit_in_the_body_gives_mac_mismatch() {
    let bytes = std::fs::read(dir("openssl-3.0").join("ir_mac_req_1.der")).unwrap();
    let msg = PkiMessage::from_der(&bytes).unwrap();
    let body = msg.body.to_der().unwrap();
    let at = bytes.windows(body.len()).position(|w| w == body).unwrap();
    // The body's last octet is inside the POP signature: the message still decodes.
    let mut tampered = bytes.clone();
    tampered[at + body.len() - 1] ^= 0x01;
    let tampered = PkiMessage::from_der(&tampered).unwrap();
    assert_ne!(tampered.body, msg.body);
    let err = verify_mac(&tampered, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch, "{err}");
}

#[test]
fn flipped_mac_protection_bit_gives_mac_mismatch() {
    let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
    flip_protection_bit(&mut msg);
    let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch);
}

#[test]
fn pbm_iteration_count_of_a_billion_is_refused_before_hashing() {
    let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
    let mut p = pbm_params(&msg);
    p.iteration_count = int(1_000_000_000);
    set_pbm_params(&mut msg, &p);
    let start = Instant::now();
    let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
    assert!(err.detail.contains("1000000000"), "{}", err.detail);
    assert!(err.detail.contains("100000"), "{}", err.detail);
}

#[test]
fn pbkdf2_iteration_count_of_a_billion_is_refused_before_hashing() {
    let protection = Protection::Mac(MacProtection::new(
        b"s".to_vec(),
        MacParams::Pbmac1(Pbmac1Config {
            iterations: 1_000_000_000,
            ..Pbmac1Config::default()
        }),
    ));
    let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
    let start = Instant::now();
    let err = protect(&mut msg, &protection).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(200));
    assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
    // The message keeps its previous protection algorithm.
    assert_eq!(
        msg.header.protection_alg.as_ref().unwrap().oid,
        oid::PASSWORD_BASED_MAC
    );
}

#[test]
fn iteration_count_beyond_u64_is_too_high() {
    let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
    let mut p = pbm_params(&msg);
    p.iteration_count = Int::new(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    set_pbm_params(&mut msg, &p);
    let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::IterationCountTooHigh);
}

#[test]
fn zero_or_negative_iteration_count_is_bad_mac_parameters() {
    for bytes in [&[0x00][..], &[0xff][..]] {
        let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
        let mut p = pbm_params(&msg);
        p.iteration_count = Int::new(bytes).unwrap();
        set_pbm_params(&mut msg, &p);
        let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMacParameters, "{err}");
    }
}

#[test]
fn empty_or_oversized_salt_is_bad_mac_parameters() {
    for len in [0, 257] {
        let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
        let mut p = pbm_params(&msg);
        p.salt = OctetString::new(vec![7u8; len]).unwrap();
        set_pbm_params(&mut msg, &p);
        let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMacParameters, "salt {len}: {err}");
    }
}

#[test]
fn unknown_owf_or_mac_oid_is_unsupported_algorithm() {
    let md5 = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    for which in ["owf", "mac"] {
        let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
        let mut p = pbm_params(&msg);
        if which == "owf" {
            p.owf.oid = md5;
        } else {
            p.mac.oid = md5;
        }
        set_pbm_params(&mut msg, &p);
        let err = verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedAlgorithm, "{which}: {err}");
        assert!(err.detail.contains("1.2.840.113549.2.5"), "{}", err.detail);
    }
}

#[test]
fn unknown_pbkdf2_prf_is_unsupported_algorithm() {
    let mut msg = load(
        "lightweightcmpra",
        "IrWithMacProtection_downstream_INIT_REQ.der",
    );
    let alg = msg.header.protection_alg.as_mut().unwrap();
    let mut p =
        Pbmac1Params::from_der(&alg.parameters.as_ref().unwrap().to_der().unwrap()).unwrap();
    let kdf_any = p.key_derivation_func.parameters.as_ref().unwrap();
    let mut kdf = Pbkdf2Params::from_der(&kdf_any.to_der().unwrap()).unwrap();
    kdf.prf.as_mut().unwrap().oid = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    p.key_derivation_func.parameters = Some(Any::encode_from(&kdf).unwrap());
    alg.parameters = Some(Any::encode_from(&p).unwrap());
    let err = verify_mac(&msg, LWCMPRA_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnsupportedAlgorithm, "{err}");
}

#[test]
fn unprotected_message_is_protection_missing_and_signed_one_is_wrong_type() {
    let unprot = load("openssl-3.0", "cr_sig_error_unprot_rsp_1.der");
    assert_eq!(protection_kind(&unprot), None);
    let err = verify_mac(&unprot, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::ProtectionMissing);
    let signed = load("openssl-3.0", "cr_sig_req_1.der");
    let err = verify_mac(&signed, OPENSSL_SECRET, &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongProtectionType);
    let mac = load("openssl-3.0", "ir_mac_req_1.der");
    let key = first_extra_cert_key(&signed);
    assert_eq!(
        verify_signature(&mac, &key).unwrap_err().code,
        ErrorCode::WrongProtectionType
    );
}

#[test]
fn every_openssl_signed_vector_verifies_with_its_first_extra_cert() {
    let mut n = 0;
    for (name, msg) in vectors("openssl-3.0") {
        if protection_kind(&msg) != Some(ProtectionKind::Signature) {
            continue;
        }
        let key = first_extra_cert_key(&msg);
        verify_signature(&msg, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut tampered = msg.clone();
        flip_protection_bit(&mut tampered);
        let err = verify_signature(&tampered, &key).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignatureInvalid, "{name}");
        n += 1;
    }
    assert_eq!(n, 31);
}

#[test]
fn rustcrypto_signed_vectors_verify_with_the_ec384_server_cert() {
    let pem = std::fs::read(dir("rustcrypto-formats").join("ec384-server-key.crt")).unwrap();
    let key = X509::from_pem(&pem).unwrap().public_key().unwrap();
    let mut n = 0;
    for (name, msg) in vectors("rustcrypto-formats") {
        if protection_kind(&msg) == Some(ProtectionKind::Signature) {
            verify_signature(&msg, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert_eq!(n, 3);
}

#[test]
fn every_lightweightcmpra_signed_vector_verifies_with_one_of_its_extra_certs() {
    let mut n = 0;
    for (name, msg) in vectors("lightweightcmpra") {
        if protection_kind(&msg) != Some(ProtectionKind::Signature) {
            continue;
        }
        let ok = msg
            .extra_certs
            .as_ref()
            .unwrap()
            .iter()
            .any(|c| verify_signature(&msg, &cert_key(c)).is_ok());
        assert!(ok, "{name}");
        n += 1;
    }
    assert_eq!(n, 34);
}

fn genm() -> PkiMessage {
    let mut msg = load("openssl-3.0", "genm_mac_req_1.der");
    msg.header.protection_alg = None;
    msg.protection = None;
    msg
}

fn mac_round_trip(params: MacParams) {
    let protection = Protection::Mac(MacProtection::new(b"round-trip".to_vec(), params));
    let mut msg = genm();
    protect(&mut msg, &protection).unwrap();
    assert_eq!(protection_kind(&msg), Some(ProtectionKind::Mac));
    // Through DER and back, with a fresh cache and without one.
    let der = msg.to_der().unwrap();
    let msg = PkiMessage::from_der(&der).unwrap();
    verify_mac(&msg, b"round-trip", &limits(), None).unwrap();
    verify_mac_der(&msg, &der, b"round-trip", &limits(), None).unwrap();
    let Protection::Mac(m) = &protection else {
        unreachable!()
    };
    m.verify(&msg).unwrap();
    m.verify_der(&msg, &der).unwrap();
    let err = verify_mac(&msg, b"round-trip!", &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch);
    let err = verify_mac_der(&msg, &der, b"round-trip!", &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch);

    // Protected and encoded in one go: the same DER as protect + to_der.
    let mut msg = genm();
    let der = protect_to_der(&mut msg, &protection, None).unwrap();
    assert_eq!(der, msg.to_der().unwrap());
    verify_mac_der(&msg, &der, b"round-trip", &limits(), None).unwrap();
}

/// The benchmarks' PBM floor computes exactly the MAC that protection puts in a message.
#[test]
fn pbm_floor_is_the_mac_of_the_protected_part() {
    for config in [PbmConfig::openssl_compatible(), PbmConfig::default()] {
        let mut msg = genm();
        let mac = MacProtection::new(b"floor".to_vec(), MacParams::Pbm(config));
        protect(&mut msg, &Protection::Mac(mac)).unwrap();
        let salt = pbm_params(&msg).salt.as_bytes().to_vec();
        let data = protected_part_der(&msg).unwrap();
        assert_eq!(
            pbm_floor(&config, b"floor", &salt, &data).unwrap(),
            msg.protection.as_ref().unwrap().as_bytes().unwrap(),
            "{config:?}"
        );
    }
}

/// `verify_mac_der` MACs the header and body as received: a changed octet in them fails,
/// one in extraCerts (not protected) does not.
#[test]
fn mac_over_the_received_der_covers_header_and_body_only() {
    let mut msg = genm();
    msg.extra_certs = load("openssl-3.0", "ir_mac_rsp_1.der").extra_certs;
    assert!(msg.extra_certs.is_some());
    let protection = Protection::Mac(MacProtection::new(
        b"s".to_vec(),
        MacParams::Pbm(PbmConfig::openssl_compatible()),
    ));
    let der = protect_to_der(&mut msg, &protection, None).unwrap();
    assert_eq!(der, msg.to_der().unwrap());
    verify_mac_der(&msg, &der, b"s", &limits(), None).unwrap();
    // The last octet belongs to a certificate signature in extraCerts.
    let mut extra_changed = der.clone();
    *extra_changed.last_mut().unwrap() ^= 1;
    let m = PkiMessage::from_der(&extra_changed).unwrap();
    verify_mac_der(&m, &extra_changed, b"s", &limits(), None).unwrap();
    // The transactionID is in the header.
    let (m, header_changed) = with_transaction_id_changed(&der);
    let err = verify_mac_der(&m, &header_changed, b"s", &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch);
    // Not a PKIMessage at all.
    let err =
        verify_mac_der(&msg, &[0x30, 0x03, 0x02, 0x01, 0x00], b"s", &limits(), None).unwrap_err();
    assert_eq!(err.code, ErrorCode::MalformedMessage);
}

/// The messages of a transaction share one salt and parameter set, so each side derives
/// the key once; separate transactions (separate `reuse`) get fresh salts.
#[test]
fn a_transaction_reuses_its_mac_parameters() {
    for params in [
        MacParams::Pbm(PbmConfig::openssl_compatible()),
        MacParams::Pbmac1(Pbmac1Config::default()),
    ] {
        let client = Protection::Mac(MacProtection::new(b"secret".to_vec(), params));
        let Protection::Mac(c) = &client else {
            unreachable!()
        };
        let server_cache = MacKeyCache::new();
        let mut reuse = None;
        let mut first = genm();
        protect_in_transaction(&mut first, &client, &mut reuse).unwrap();
        assert_eq!(reuse, first.header.protection_alg);
        let mut second = genm();
        let der = protect_to_der(&mut second, &client, Some(&mut reuse)).unwrap();
        assert_eq!(second.header.protection_alg, first.header.protection_alg);
        assert_eq!(c.cache.derivations(), 1);
        verify_mac(&first, b"secret", &limits(), Some(&server_cache)).unwrap();
        verify_mac_der(&second, &der, b"secret", &limits(), Some(&server_cache)).unwrap();
        assert_eq!(server_cache.derivations(), 1);
        // A new transaction: a new salt.
        let mut other = genm();
        protect_in_transaction(&mut other, &client, &mut None).unwrap();
        assert_ne!(other.header.protection_alg, first.header.protection_alg);
        assert_eq!(c.cache.derivations(), 2);
    }
}

#[test]
fn pbm_default_protect_then_verify_round_trips() {
    mac_round_trip(MacParams::Pbm(PbmConfig::default()));
}

#[test]
fn pbm_with_every_hash_protect_then_verify_round_trips() {
    for h in [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        mac_round_trip(MacParams::Pbm(PbmConfig {
            owf: h,
            mac: h,
            iterations: 10,
            salt_len: 8,
        }));
    }
}

#[test]
fn pbm_openssl_compatible_params_are_what_openssl_writes() {
    let mut msg = genm();
    let protection = Protection::Mac(MacProtection::new(
        OPENSSL_SECRET.to_vec(),
        MacParams::Pbm(PbmConfig::openssl_compatible()),
    ));
    protect(&mut msg, &protection).unwrap();
    let ours = pbm_params(&msg);
    let theirs = pbm_params(&load("openssl-3.0", "genm_mac_req_1.der"));
    assert_eq!(ours.owf, theirs.owf);
    assert_eq!(ours.mac, theirs.mac);
    assert_eq!(ours.iteration_count, theirs.iteration_count);
    assert_eq!(ours.salt.as_bytes().len(), theirs.salt.as_bytes().len());
    verify_mac(&msg, OPENSSL_SECRET, &limits(), None).unwrap();
}

#[test]
fn pbmac1_default_protect_then_verify_round_trips() {
    mac_round_trip(MacParams::Pbmac1(Pbmac1Config::default()));
}

#[test]
fn pbmac1_with_every_hash_protect_then_verify_round_trips() {
    for h in [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        mac_round_trip(MacParams::Pbmac1(Pbmac1Config {
            prf: h,
            mac: h,
            iterations: 10,
            salt_len: 8,
            key_len: h.output_len(),
        }));
    }
}

#[test]
fn explicit_params_are_derived_once_through_the_cache() {
    let request = load("openssl-3.0", "ir_mac_req_1.der");
    // A server answering with the request's parameters.
    let server = MacProtection::new(
        OPENSSL_SECRET.to_vec(),
        MacParams::Explicit(request.header.protection_alg.clone().unwrap()),
    );
    server.verify(&request).unwrap();
    assert_eq!(server.cache.derivations(), 1);
    let server = Protection::Mac(server);
    let mut response = genm();
    protect(&mut response, &server).unwrap();
    assert_eq!(
        response.header.protection_alg,
        request.header.protection_alg
    );
    let Protection::Mac(m) = &server else {
        unreachable!()
    };
    m.verify(&response).unwrap();
    assert_eq!(m.cache.derivations(), 1, "the key was derived once");
    assert_eq!(m.cache.len(), 1);
    // Another secret does not reuse the key of this one.
    let err = verify_mac(&response, b"other", &limits(), Some(&m.cache)).unwrap_err();
    assert_eq!(err.code, ErrorCode::MacMismatch);
    assert_eq!(m.cache.derivations(), 2);
}

/// `der` with one bit flipped in its transactionID (in the header), and that decoded.
fn with_transaction_id_changed(der: &[u8]) -> (PkiMessage, Vec<u8>) {
    let msg = PkiMessage::from_der(der).unwrap();
    let tid = msg.header.transaction_id.unwrap().as_bytes().to_vec();
    let at = der.windows(tid.len()).position(|w| w == tid).unwrap();
    let mut changed = der.to_vec();
    changed[at] ^= 1;
    (PkiMessage::from_der(&changed).unwrap(), changed)
}

fn signature_round_trip(key: SoftwareKey) {
    let alg = key.algorithm();
    let public = PKey::public_key_from_der(key.public_key_der()).unwrap();
    let protection = Protection::Signature(Arc::new(key));
    let mut msg = genm();
    let der = protect_to_der(&mut genm(), &protection, None).unwrap();
    let decoded = PkiMessage::from_der(&der).unwrap();
    verify_signature(&decoded, &public).unwrap();
    // Over the header and body as received: also for EdDSA, which signs the joined parts.
    verify_signature_der(&decoded, &der, &public).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    let (m, changed) = with_transaction_id_changed(&der);
    let err = verify_signature_der(&m, &changed, &public).unwrap_err();
    assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
    protect(&mut msg, &protection).unwrap();
    assert_eq!(
        msg.header.protection_alg,
        Some(alg.algorithm_identifier()),
        "{alg:?}"
    );
    assert_eq!(protection_kind(&msg), Some(ProtectionKind::Signature));
    let msg = PkiMessage::from_der(&msg.to_der().unwrap()).unwrap();
    verify_signature(&msg, &public).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    let mut tampered = msg.clone();
    tampered.header.sender_nonce = Some(OctetString::new(vec![0u8; 16]).unwrap());
    let err = verify_signature(&tampered, &public).unwrap_err();
    assert_eq!(err.code, ErrorCode::SignatureInvalid, "{alg:?}");
}

#[test]
fn ec_p256_signature_protect_then_verify_round_trips() {
    signature_round_trip(SoftwareKey::generate(KeyType::EcP256).unwrap());
}

#[test]
fn rsa_signature_protect_then_verify_round_trips() {
    signature_round_trip(SoftwareKey::generate(KeyType::Rsa(2048)).unwrap());
}

#[test]
fn rsa_pss_signature_protect_then_verify_round_trips() {
    let mut key = SoftwareKey::generate(KeyType::Rsa(2048)).unwrap();
    key.set_algorithm(SigAlg::RsaPssSha256).unwrap();
    signature_round_trip(key);
}

#[test]
fn ed25519_signature_protect_then_verify_round_trips() {
    signature_round_trip(SoftwareKey::generate(KeyType::Ed25519).unwrap());
}

/// Writes a PBM-protected (SHA-256, 500, HMAC-SHA1) genm for checking with an external tool:
/// `CMPKIT_PBM_OUT=/tmp/x.der cargo test --test protection -- --ignored`.
#[test]
#[ignore]
fn write_pbm_protected_message_for_external_check() {
    let out = std::env::var("CMPKIT_PBM_OUT").expect("CMPKIT_PBM_OUT");
    let mut msg = genm();
    let protection = Protection::Mac(MacProtection::new(
        OPENSSL_SECRET.to_vec(),
        MacParams::Pbm(PbmConfig::openssl_compatible()),
    ));
    protect(&mut msg, &protection).unwrap();
    std::fs::write(out, msg.to_der().unwrap()).unwrap();
}
