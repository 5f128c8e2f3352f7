//! Public keys from SubjectPublicKeyInfo DER.
//!
//! OpenSSL 3's `d2i_PUBKEY` runs its decoder machinery and builds the curve's group anew for
//! every key (about 120 k instructions for a P-256 key). An EC key on P-256, P-384 or P-521
//! (named curve, the form RFC 5480 requires) is made instead as the TLS stack makes a peer's
//! key: a new key given the parameters of a parameters-only key of that curve, made once
//! (`EVP_PKEY_copy_parameters`), and then the encoded point (the parameter that
//! `EVP_PKEY_set1_encoded_public_key` sets): about 35 k. Both ways decode the point with
//! `EC_KEY_oct2key`, which refuses a point that is not on the curve. Every other key goes
//! through `d2i_PUBKEY`.

use crate::error::{Error, ErrorCode, Result};
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1, SECP_521_R_1};
use const_oid::ObjectIdentifier;
use der::Decode;
use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Params, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl_sys as ffi;
use spki::SubjectPublicKeyInfoRef;
use std::sync::OnceLock;

/// Parse a DER SubjectPublicKeyInfo into an OpenSSL public key.
///
/// Accepts what `d2i_PUBKEY` accepts and gives the same key, faster for EC keys on the NIST
/// curves; an EC point that is not on its curve is refused. Fails with
/// [`ErrorCode::KeyError`].
pub fn public_key_from_der(der: &[u8]) -> Result<PKey<Public>> {
    let imported = match named_curve_point(der) {
        Some((curve, point)) => match curve.template() {
            Some(template) => with_point(template, point),
            None => PKey::public_key_from_der(der),
        },
        None => PKey::public_key_from_der(der),
    };
    imported.map_err(|e| Error::new(ErrorCode::KeyError, format!("cannot parse public key: {e}")))
}

/// The curves imported directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// A parameters-only key of this curve, made on first use; `None` if OpenSSL cannot make
    /// one (then keys are imported through `d2i_PUBKEY`).
    fn template(self) -> Option<&'static PKey<Params>> {
        static TEMPLATES: [OnceLock<Option<PKey<Params>>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (slot, nid) = match self {
            Curve::P256 => (&TEMPLATES[0], Nid::X9_62_PRIME256V1),
            Curve::P384 => (&TEMPLATES[1], Nid::SECP384R1),
            Curve::P521 => (&TEMPLATES[2], Nid::SECP521R1),
        };
        slot.get_or_init(|| {
            let mut ctx = PkeyCtx::new_id(Id::EC).ok()?;
            ctx.paramgen_init().ok()?;
            ctx.set_ec_paramgen_curve_nid(nid).ok()?;
            ctx.paramgen().ok()
        })
        .as_ref()
    }
}

/// The curve and the encoded point of an id-ecPublicKey SubjectPublicKeyInfo on P-256, P-384
/// or P-521 (DER, a whole number of bytes in the BIT STRING), or `None` for anything else.
fn named_curve_point(der: &[u8]) -> Option<(Curve, &[u8])> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return None;
    }
    let curve = match spki
        .algorithm
        .parameters?
        .decode_as::<ObjectIdentifier>()
        .ok()?
    {
        c if c == SECP_256_R_1 => Curve::P256,
        c if c == SECP_384_R_1 => Curve::P384,
        c if c == SECP_521_R_1 => Curve::P521,
        _ => return None,
    };
    Some((curve, spki.subject_public_key.as_bytes()?))
}

/// A new key with the parameters of `template` (an EC parameters-only key) and the public
/// point `point`.
fn with_point(
    template: &PKey<Params>,
    point: &[u8],
) -> std::result::Result<PKey<Public>, ErrorStack> {
    // SAFETY: EVP_PKEY_new takes no arguments and returns a new, empty key or NULL.
    let new = unsafe { ffi::EVP_PKEY_new() };
    if new.is_null() {
        return Err(ErrorStack::get());
    }
    // SAFETY: `new` is a non-NULL key owned by nobody else: the PKey frees it on every path
    // from here. It holds a public key once both steps below succeed, or is dropped.
    let key = unsafe { PKey::<Public>::from_ptr(new) };
    // SAFETY: `key` is valid and ours alone; `template` is valid and only read (OpenSSL keys
    // may be read from several threads at once). The parameter name is a NUL-terminated
    // constant (OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY); OpenSSL reads `point.len()` bytes of
    // `point` and copies what it keeps.
    let ok = unsafe {
        ffi::EVP_PKEY_copy_parameters(key.as_ptr(), template.as_ptr()) == 1
            && ffi::EVP_PKEY_set_octet_string_param(
                key.as_ptr(),
                c"encoded-pub-key".as_ptr(),
                point.as_ptr(),
                point.len(),
            ) == 1
    };
    if !ok {
        return Err(ErrorStack::get());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Any, BitString};
    use der::Encode;
    use openssl::bn::BigNumContext;
    use openssl::ec::{Asn1Flag, EcGroup, EcKey, PointConversionForm};
    use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

    const CURVES: [(Nid, ObjectIdentifier, Curve); 3] = [
        (Nid::X9_62_PRIME256V1, SECP_256_R_1, Curve::P256),
        (Nid::SECP384R1, SECP_384_R_1, Curve::P384),
        (Nid::SECP521R1, SECP_521_R_1, Curve::P521),
    ];

    /// An id-ecPublicKey SubjectPublicKeyInfo naming `curve`, with `point` as it is.
    fn ec_spki(curve: ObjectIdentifier, point: &[u8]) -> Vec<u8> {
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&curve).unwrap()),
            },
            subject_public_key: BitString::from_bytes(point).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    /// A new key's public point on `nid` in `form`.
    fn point(nid: Nid, form: PointConversionForm) -> Vec<u8> {
        let group = EcGroup::from_curve_name(nid).unwrap();
        let key = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        key.public_key().to_bytes(&group, form, &mut ctx).unwrap()
    }

    /// Import `der` both ways: the outcomes must agree, and accepted keys be the same key.
    fn assert_same_as_d2i_pubkey(der: &[u8], what: &str) -> bool {
        let ours = public_key_from_der(der);
        let reference = PKey::public_key_from_der(der);
        match (&ours, &reference) {
            (Ok(a), Ok(b)) => {
                assert!(a.public_eq(b), "{what}: another key");
                assert_eq!(a.id(), b.id(), "{what}");
                assert_eq!(a.bits(), b.bits(), "{what}");
                // (OpenSSL accepts the point at infinity but cannot encode it again.)
                assert_eq!(
                    a.public_key_to_der().ok(),
                    b.public_key_to_der().ok(),
                    "{what}: encodes differently"
                );
                true
            }
            (Err(e), Err(_)) => {
                assert_eq!(e.code, ErrorCode::KeyError, "{what}");
                false
            }
            _ => panic!(
                "{what}: ours {:?}, d2i_PUBKEY {:?}",
                ours.map(|_| ()),
                reference.map(|_| ())
            ),
        }
    }

    #[test]
    fn nist_curve_keys_take_the_direct_import_and_give_the_same_key_as_d2i_pubkey() {
        for (nid, _, curve) in CURVES {
            let group = EcGroup::from_curve_name(nid).unwrap();
            let pkey = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
            let der = pkey.public_key_to_der().unwrap();
            assert_eq!(named_curve_point(&der).map(|(c, _)| c), Some(curve));
            assert!(curve.template().is_some(), "{curve:?}");
            assert!(assert_same_as_d2i_pubkey(&der, &format!("{curve:?}")));
            let imported = public_key_from_der(&der).unwrap();
            assert!(imported.public_eq(&pkey));
        }
    }

    #[test]
    fn imported_key_verifies_a_signature_of_its_private_key() {
        use crate::crypto::{verify_signature, KeyType, Signer, SoftwareKey};
        for kind in [KeyType::EcP256, KeyType::EcP384, KeyType::EcP521] {
            let key = SoftwareKey::generate(kind).unwrap();
            let public = public_key_from_der(key.public_key_der()).unwrap();
            let sig = key.sign(b"pop").unwrap();
            verify_signature(key.algorithm(), &public, b"pop", &sig).unwrap();
        }
    }

    #[test]
    fn threads_import_at_once() {
        let der = ec_spki(
            SECP_256_R_1,
            &point(Nid::X9_62_PRIME256V1, PointConversionForm::UNCOMPRESSED),
        );
        let reference = PKey::public_key_from_der(&der).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        assert!(public_key_from_der(&der).unwrap().public_eq(&reference));
                    }
                });
            }
        });
    }

    #[test]
    fn point_not_on_the_curve_is_refused() {
        for (nid, oid, curve) in CURVES {
            let mut p = point(nid, PointConversionForm::UNCOMPRESSED);
            *p.last_mut().unwrap() ^= 1; // y + 1 or y - 1: not on the curve
            let der = ec_spki(oid, &p);
            assert!(named_curve_point(&der).is_some(), "{curve:?}");
            let err = public_key_from_der(&der).unwrap_err();
            assert_eq!(err.code, ErrorCode::KeyError, "{curve:?}");
            assert!(!assert_same_as_d2i_pubkey(
                &der,
                &format!("{curve:?} off curve")
            ));
        }
    }

    #[test]
    fn every_point_encoding_is_accepted_or_refused_as_by_d2i_pubkey() {
        for (nid, oid, curve) in CURVES {
            let uncompressed = point(nid, PointConversionForm::UNCOMPRESSED);
            let compressed = point(nid, PointConversionForm::COMPRESSED);
            let hybrid = point(nid, PointConversionForm::HYBRID);
            let mut x_too_large = uncompressed.clone();
            x_too_large[1..1 + (uncompressed.len() - 1) / 2].fill(0xff);
            let mut compressed_other_y = compressed.clone();
            compressed_other_y[0] ^= 1;
            let cases: [(&str, Vec<u8>); 9] = [
                ("uncompressed", uncompressed.clone()),
                ("compressed", compressed),
                ("compressed, other y", compressed_other_y),
                ("hybrid", hybrid),
                ("infinity", vec![0]),
                ("empty", vec![]),
                ("truncated", uncompressed[..uncompressed.len() - 1].to_vec()),
                ("one byte more", [&uncompressed[..], &[0]].concat()),
                ("x beyond the field", x_too_large),
            ];
            for (what, p) in cases {
                let der = ec_spki(oid, &p);
                assert!(named_curve_point(&der).is_some(), "{curve:?} {what}");
                assert_same_as_d2i_pubkey(&der, &format!("{curve:?} {what}"));
            }
            // A point of this curve labelled with another curve.
            let other = if curve == Curve::P256 {
                SECP_384_R_1
            } else {
                SECP_256_R_1
            };
            assert!(!assert_same_as_d2i_pubkey(
                &ec_spki(other, &uncompressed),
                &format!("{curve:?} point labelled as another curve")
            ));
        }
    }

    #[test]
    fn uncompressed_and_compressed_points_are_accepted() {
        for (nid, oid, curve) in CURVES {
            for form in [
                PointConversionForm::UNCOMPRESSED,
                PointConversionForm::COMPRESSED,
            ] {
                let der = ec_spki(oid, &point(nid, form));
                assert!(assert_same_as_d2i_pubkey(&der, &format!("{curve:?}")));
            }
        }
    }

    #[test]
    fn explicit_parameters_and_other_curves_and_key_types_go_through_d2i_pubkey() {
        let mut group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        group.set_asn1_flag(Asn1Flag::EXPLICIT_CURVE);
        let explicit = EcKey::generate(&group).unwrap();
        let explicit = PKey::from_ec_key(explicit)
            .unwrap()
            .public_key_to_der()
            .unwrap();
        let k1 = EcKey::generate(&EcGroup::from_curve_name(Nid::SECP256K1).unwrap()).unwrap();
        let k1 = PKey::from_ec_key(k1).unwrap().public_key_to_der().unwrap();
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let ed = PKey::generate_ed25519().unwrap();
        for (what, der) in [
            ("explicit P-256 parameters", explicit),
            ("secp256k1", k1),
            ("RSA", rsa.public_key_to_der().unwrap()),
            ("Ed25519", ed.public_key_to_der().unwrap()),
        ] {
            assert!(named_curve_point(&der).is_none(), "{what}");
            assert_same_as_d2i_pubkey(&der, what);
        }
    }

    #[test]
    fn malformed_input_is_a_key_error() {
        let good = ec_spki(
            SECP_256_R_1,
            &point(Nid::X9_62_PRIME256V1, PointConversionForm::UNCOMPRESSED),
        );
        // Trailing data: not DER, so not the direct path; d2i_PUBKEY reads the first element.
        let trailing = [&good[..], &[0]].concat();
        assert!(named_curve_point(&trailing).is_none());
        assert_same_as_d2i_pubkey(&trailing, "trailing byte");
        for (what, der) in [
            ("empty", &[][..]),
            ("garbage", b"not a key"),
            ("truncated", &good[..good.len() - 1]),
        ] {
            assert_eq!(
                public_key_from_der(der).unwrap_err().code,
                ErrorCode::KeyError,
                "{what}"
            );
        }
        // A BIT STRING with unused bits goes through d2i_PUBKEY.
        let mut unused_bits = good.clone();
        let bit_string = good.len() - 68; // tag, length, unused-bits count, 65 bytes of point
        assert_eq!(unused_bits[bit_string], 0x03);
        unused_bits[bit_string + 2] = 1;
        assert!(named_curve_point(&unused_bits).is_none());
        assert_same_as_d2i_pubkey(&unused_bits, "unused bits");
    }
}
