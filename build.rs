//! Gives the cdylib an ELF soname carrying the ABI major version (`libcmpkit.so.<major>`),
//! so a plain `cargo build` already produces a library that can be installed with the usual
//! `libcmpkit.so.X.Y.Z` / `libcmpkit.so.X` / `libcmpkit.so` links (CMake does exactly that).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcmpkit.so.{major}");
    }
}
