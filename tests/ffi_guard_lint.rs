//! Lint: every exported `extern "C" fn` in src/ffi/ goes through the panic guard.
//!
//! A panic must never unwind into C (since Rust 1.81 it aborts the caller's process), and
//! every failure must set the thread's last error; `guard(` / `guard_on(` do both, and
//! `free_handle(` contains panics of destructors. rustls-ffi once shipped a function that
//! skipped its guard (STYLE.md); this test reads the sources so that cannot happen silently.
//! A function passes if its body calls `guard(`, `guard_on(` or `free_handle(`, or calls a
//! helper of the same file whose body does (e.g. `add_certs`), or is listed in [`ALLOWED`].

use std::collections::BTreeMap;
use std::path::Path;

/// Unguarded functions that cannot panic, each with the reason. Keep this list short: a new
/// entry needs a reason a reviewer can check.
const ALLOWED: &[(&str, &str)] = &[
    (
        "cmpkit_cert_request_info_subject",
        "NULL check; the text is made on first use inside catch_unwind (callback info)",
    ),
    (
        "cmpkit_cert_request_info_common_name",
        "NULL check; the text is made on first use inside catch_unwind (callback info)",
    ),
    (
        "cmpkit_cert_request_info_kind",
        "NULL check and a field read (callback info)",
    ),
    (
        "cmpkit_cert_request_info_polls",
        "NULL check and a field read (callback info)",
    ),
    (
        "cmpkit_cert_request_info_requester",
        "NULL check; the text is made on first use inside catch_unwind (callback info)",
    ),
    (
        "cmpkit_revocation_info_issuer",
        "NULL check; the text is made on first use inside catch_unwind (callback info)",
    ),
    (
        "cmpkit_revocation_info_reason",
        "NULL check and a field read (callback info)",
    ),
    (
        "cmpkit_revocation_info_requester",
        "NULL check; the text is made on first use inside catch_unwind (callback info)",
    ),
    (
        "cmpkit_listener_port",
        "NULL check and a socket address read",
    ),
    (
        "cmpkit_listener_requests_served",
        "NULL check; the counter read runs inside catch_unwind",
    ),
    (
        "cmpkit_server_issued_count",
        "NULL check; the CA's list is read inside catch_unwind",
    ),
    (
        "cmpkit_result_name",
        "match on an integer, returns a static C string",
    ),
    (
        "cmpkit_last_error",
        "reads a thread-local RefCell that no caller holds borrowed",
    ),
    ("cmpkit_version", "returns a static C string"),
    ("cmpkit_version_number", "integer arithmetic on constants"),
    (
        "cmpkit_ctx_last_error",
        "NULL check and an Option<CString> pointer",
    ),
    ("cmpkit_response_status", "NULL check and an Option read"),
    ("cmpkit_response_fail_info", "NULL check and an Option read"),
    (
        "cmpkit_response_status_string",
        "NULL check and a CString pointer",
    ),
    (
        "cmpkit_response_summary",
        "NULL check and a CString pointer",
    ),
    (
        "cmpkit_response_implicit_confirm_granted",
        "NULL check and a bool read",
    ),
    (
        "cmpkit_response_cert_count",
        "NULL check, a match on `which`, Vec::len",
    ),
    ("cmpkit_transaction_is_done", "NULL check and a state match"),
    (
        "cmpkit_transaction_result",
        "NULL check, Result clone, set_last_error (no panic path)",
    ),
    (
        "cmpkit_transaction_last_error",
        "NULL check and an Option<CString> pointer",
    ),
];

const GUARDS: [&str; 3] = ["guard(", "guard_on(", "free_handle("];

/// Blank out comments, string and char literals (keeping offsets), so braces and guard names
/// inside them do not count.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                out[i] = b' ';
                i += 1;
            }
            if i < b.len() {
                out[i] = b' ';
                out[i + 1] = b' ';
                i += 2;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out[i] = b' ';
                    i += 1;
                }
                out[i] = b' ';
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('{', '\n'); lifetimes ('a) are left alone.
            let end = b[i + 1..]
                .iter()
                .position(|&c| c == b'\'')
                .map_or(i, |p| i + 1 + p);
            for o in out.iter_mut().take(end + 1).skip(i + 1) {
                *o = b' ';
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("ASCII blanks keep UTF-8 valid")
}

/// Functions of a source: name → (is `extern "C"`, body), bodies found by brace matching.
fn functions(src: &str) -> BTreeMap<String, (bool, String)> {
    let s = strip(src);
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(p) = s[from..].find("fn ") {
        let at = from + p;
        from = at + 3;
        // `fn` as a whole word, followed by a name (not a `fn(` pointer type).
        if at > 0 && (s.as_bytes()[at - 1].is_ascii_alphanumeric() || s.as_bytes()[at - 1] == b'_')
        {
            continue;
        }
        let rest = &s[at + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let line_start = s[..at].rfind('\n').map_or(0, |n| n + 1);
        // Offsets are the same in `src` (strip keeps them); the ABI string is blanked in `s`.
        let is_extern = src[line_start..at].contains("extern \"C\"");
        // The signature ends at the first `{` or `;` at parenthesis depth 0.
        let mut depth = 0i32;
        let mut body_start = None;
        for (k, c) in s[at..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                '{' if depth == 0 => {
                    body_start = Some(at + k);
                    break;
                }
                ';' if depth == 0 => break,
                _ => {}
            }
        }
        let Some(open) = body_start else { continue };
        let mut braces = 0i32;
        let mut end = open;
        for (k, c) in s[open..].char_indices() {
            match c {
                '{' => braces += 1,
                '}' => {
                    braces -= 1;
                    if braces == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.insert(name, (is_extern, s[open..=end].to_owned()));
    }
    out
}

/// The unguarded exported functions of one file's source.
fn unguarded(src: &str) -> (Vec<String>, usize) {
    let fns = functions(src);
    let guarded = |body: &str| GUARDS.iter().any(|g| body.contains(g));
    // Helpers (non-extern) whose body is guarded, one level deep.
    let helpers: Vec<&String> = fns
        .iter()
        .filter(|(_, (ext, body))| !ext && guarded(body))
        .map(|(n, _)| n)
        .collect();
    let mut bad = Vec::new();
    let mut exported = 0;
    for (name, (ext, body)) in &fns {
        if !ext {
            continue;
        }
        exported += 1;
        let ok = guarded(body)
            || helpers.iter().any(|h| body.contains(&format!("{h}(")))
            || ALLOWED.iter().any(|(n, _)| n == name);
        if !ok {
            bad.push(name.clone());
        }
    }
    (bad, exported)
}

#[test]
fn every_extern_c_function_goes_through_the_guard() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut all_bad = Vec::new();
    let mut seen = Vec::new();
    let mut total = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    entries.sort();
    for path in &entries {
        let src = std::fs::read_to_string(path).unwrap();
        let (bad, n) = unguarded(&src);
        total += n;
        for (name, (ext, _)) in functions(&src) {
            if ext {
                seen.push(name);
            }
        }
        all_bad.extend(
            bad.into_iter()
                .map(|f| format!("{}: {f}", path.file_name().unwrap().to_string_lossy())),
        );
    }
    println!(
        "ffi guard lint: {total} extern \"C\" functions in {} files, {} allow-listed getters, {} unguarded",
        entries.len(),
        ALLOWED.len(),
        all_bad.len()
    );
    assert!(
        all_bad.is_empty(),
        "extern \"C\" functions that do not go through guard(/guard_on(/free_handle( and are not \
         allow-listed in tests/ffi_guard_lint.rs: {all_bad:#?}"
    );
    // Stale allow-list entries would hide a renamed function's new body.
    for (name, _) in ALLOWED {
        assert!(
            seen.iter().any(|s| s == name),
            "allow-listed {name} no longer exists"
        );
    }
    assert!(
        total >= 40,
        "found only {total} exported functions: the parser is broken"
    );
}

#[test]
fn the_lint_catches_an_unguarded_function() {
    let src = r#"
/// Has a "guard(" only in its doc comment: { braces } too.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_bad(x: *const u8) -> ErrorCode {
    let s = "guard(";
    if x.is_null() { return ErrorCode::NullArgument; }
    ErrorCode::Ok
}
fn helper(ctx: *mut c) -> ErrorCode { guard_on(ctx, |_| Ok(())) }
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_good(ctx: *mut c) -> ErrorCode {
    helper(ctx)
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_good2(cb: Option<unsafe extern "C" fn(*mut u8) -> i32>) -> ErrorCode {
    guard(|| Ok(()))
}
"#;
    let (bad, n) = unguarded(src);
    assert_eq!(n, 3);
    assert_eq!(bad, vec!["cmpkit_bad".to_owned()]);
}
