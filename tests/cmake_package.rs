//! The CMake build installs a usable C package: configure, build and install the project with
//! cmake into a temporary prefix, then build tests/cmake_consumer against it (shared and static,
//! via find_package) and via pkg-config, run the programs, and check the soname.
//!
//! The cargo build that CMake drives uses the persistent `target/cmake-cargo` directory
//! (CMPKIT_CARGO_TARGET_DIR), so only the first run pays for a release build of the crate.
//! Without cmake the test is skipped, except under CI (env CI set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`, panics with its output unless it succeeds, returns stdout.
fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fresh_dir(p: &Path) -> PathBuf {
    if p.exists() {
        std::fs::remove_dir_all(p).unwrap();
    }
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// A command for a built program, without the LD_LIBRARY_PATH cargo test sets up.
fn program(path: &Path) -> Command {
    let mut c = Command::new(path);
    c.env_remove("LD_LIBRARY_PATH");
    c
}

fn soname(lib: &Path) -> String {
    let dynamic = run(Command::new("readelf").arg("-d").arg(lib));
    dynamic
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| Some(l[l.find('[')? + 1..l.rfind(']')?].to_string()))
        .unwrap_or_else(|| panic!("{} has no SONAME:\n{dynamic}", lib.display()))
}

fn needed(exe: &Path) -> String {
    run(Command::new("readelf").arg("-d").arg(exe))
}

#[test]
fn cmake_build_installs_a_consumable_package() {
    if !have("cmake") {
        if std::env::var_os("CI").is_some() {
            panic!("cmake is required in CI");
        }
        eprintln!("NOTICE: cmake not found; skipping the CMake package test");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cmake_package");
    let build = fresh_dir(&work.join("build"));
    let prefix = fresh_dir(&work.join("prefix"));
    let consumer = fresh_dir(&work.join("consumer"));
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let expected_line = format!(
        "cmpkit {version} ({})",
        env!("CARGO_PKG_VERSION_MAJOR").parse::<u32>().unwrap() * 10000
            + env!("CARGO_PKG_VERSION_MINOR").parse::<u32>().unwrap() * 100
            + env!("CARGO_PKG_VERSION_PATCH").parse::<u32>().unwrap()
    );

    // Build and install the library.
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(repo)
        .arg("-B")
        .arg(&build)
        .arg("-DCMAKE_BUILD_TYPE=Release")
        .arg("-DCMAKE_INSTALL_LIBDIR=lib")
        .arg(format!(
            "-DCMPKIT_CARGO_TARGET_DIR={}",
            repo.join("target/cmake-cargo").display()
        ));
    if let Some(cargo) = std::env::var_os("CARGO") {
        // The same toolchain that runs this test.
        configure.arg(format!("-DCMPKIT_CARGO={}", Path::new(&cargo).display()));
    }
    run(&mut configure);
    run(Command::new("cmake").arg("--build").arg(&build));
    run(Command::new("cmake")
        .arg("--install")
        .arg(&build)
        .arg("--prefix")
        .arg(&prefix));

    // Every C example was built (CMPKIT_BUILD_EXAMPLES defaults to ON), under <build>/c-examples.
    if let Ok(entries) = std::fs::read_dir(repo.join("c-examples")) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "c") {
                let exe = build.join("c-examples").join(path.file_stem().unwrap());
                assert!(exe.exists(), "example not built: {}", exe.display());
            }
        }
    }

    // Installed layout and soname.
    let lib = prefix.join("lib");
    for f in [
        format!("libcmpkit.so.{version}"),
        format!("libcmpkit.so.{major}"),
        "libcmpkit.so".into(),
        "libcmpkit.a".into(),
        "cmake/cmpkit/cmpkitConfig.cmake".into(),
        "cmake/cmpkit/cmpkitConfigVersion.cmake".into(),
        "pkgconfig/cmpkit.pc".into(),
    ] {
        assert!(lib.join(&f).exists(), "not installed: lib/{f}");
    }
    assert!(
        prefix.join("include/cmpkit.h").exists(),
        "not installed: include/cmpkit.h"
    );
    for link in [format!("libcmpkit.so.{major}"), "libcmpkit.so".into()] {
        let target = std::fs::read_link(lib.join(&link)).expect("a symlink");
        assert_eq!(
            target,
            Path::new(&format!("libcmpkit.so.{version}")),
            "{link}"
        );
    }
    assert_eq!(
        soname(&lib.join(format!("libcmpkit.so.{version}"))),
        format!("libcmpkit.so.{major}")
    );

    // find_package consumer: shared and static.
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo.join("tests/cmake_consumer"))
        .arg("-B")
        .arg(&consumer)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
    run(Command::new("cmake").arg("--build").arg(&consumer));
    let shared = consumer.join("consumer_shared");
    let stat = consumer.join("consumer_static");
    assert_eq!(run(&mut program(&shared)).trim(), expected_line);
    assert_eq!(run(&mut program(&stat)).trim(), expected_line);
    assert!(
        needed(&shared).contains(&format!("[libcmpkit.so.{major}]")),
        "shared consumer does not need the soname"
    );
    assert!(
        !needed(&stat).contains("libcmpkit"),
        "static consumer depends on the shared library"
    );

    // pkg-config consumer.
    if !have("pkg-config") {
        if std::env::var_os("CI").is_some() {
            panic!("pkg-config is required in CI");
        }
        eprintln!("NOTICE: pkg-config not found; skipping the pkg-config part");
        return;
    }
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "cmpkit"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig")));
    let exe = consumer.join("consumer_pkgconfig");
    run(Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg(repo.join("tests/cmake_consumer/main.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe));
    assert_eq!(
        run(program(&exe).env("LD_LIBRARY_PATH", &lib)).trim(),
        expected_line
    );
}
