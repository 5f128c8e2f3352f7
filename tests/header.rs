//! The checked-in C header is exactly what cbindgen generates from the sources.
//!
//! Regenerate with `CMPKIT_BLESS=1 cargo test --test header`.

use std::path::Path;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/cmpkit.h");
    let fresh = generate();
    if std::env::var_os("CMPKIT_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/cmpkit.h is out of date: run `CMPKIT_BLESS=1 cargo test --test header` and commit it"
    );
}

#[test]
fn header_defines_only_cmpkit_prefixed_macros() {
    for line in generate().lines().filter(|l| l.starts_with("#define ")) {
        let name = line.split_whitespace().nth(1).unwrap();
        assert!(
            name.starts_with("CMPKIT_"),
            "unprefixed macro in the header: {line}"
        );
    }
}

#[test]
fn header_declares_the_api_and_version_macros() {
    let h = generate();
    for needle in [
        "cmpkit_version(void)",
        "cmpkit_result_name(",
        "#define CMPKIT_VERSION_MAJOR",
        "CMPKIT_RESULT_MAC_MISMATCH = 301",
    ] {
        assert!(h.contains(needle), "header lacks {needle}");
    }
}

/// Every function the header declares is ours: `extern "C"` blocks that declare C functions
/// the library calls (e.g. OpenSSL's) must not leak into it.
#[test]
fn header_declares_only_cmpkit_prefixed_functions() {
    let h = generate();
    let mut n = 0;
    for line in h.lines().filter(|l| {
        !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("//") && l.contains('(')
    }) {
        // `type name(` or `type *name(`: the identifier right before the first parenthesis.
        let before = &line[..line.find('(').unwrap()];
        let name = before.rsplit([' ', '*']).next().unwrap();
        if before.starts_with("typedef") || name.is_empty() {
            continue;
        }
        assert!(
            name.starts_with("cmpkit_"),
            "non-cmpkit function in the header: {line}"
        );
        n += 1;
    }
    assert!(
        n > 100,
        "only {n} functions found: the parsing above is off"
    );
}
