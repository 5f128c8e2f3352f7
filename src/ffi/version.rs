//! Library version.

use std::ffi::c_char;

/// Major version of the library; the shared library's soname carries it.
pub const CMPKIT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const CMPKIT_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const CMPKIT_VERSION_PATCH: u32 = 0;

/// The library version as text, e.g. `"0.1.0"`. Static; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn cmpkit_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library version as a number: `major * 10000 + minor * 100 + patch`.
#[unsafe(no_mangle)]
pub extern "C" fn cmpkit_version_number() -> u32 {
    CMPKIT_VERSION_MAJOR * 10000 + CMPKIT_VERSION_MINOR * 100 + CMPKIT_VERSION_PATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_cargo_toml() {
        let v = format!("{CMPKIT_VERSION_MAJOR}.{CMPKIT_VERSION_MINOR}.{CMPKIT_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: cmpkit_version returns a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(cmpkit_version()) };
        assert_eq!(s.to_str().unwrap(), v);
    }
}
