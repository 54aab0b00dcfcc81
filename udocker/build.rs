//! Builds the fakechroot shim (`preload/`, modes F1–F4) as a loadable `libpreload.so` and leaves
//! it in `OUT_DIR` for `include_bytes!` (`engine/fakechroot.rs`).
//!
//! Why `rustc` directly and not a cargo crate type: the shim is a `no_std` cdylib that must be
//! built with `-C panic=abort` (no unwinding, no `libgcc_s`), which a cargo profile cannot set for
//! one package; the crate has no dependencies, so one `rustc` call is the whole build and needs no
//! nested cargo (no lock on the target directory). `RUSTFLAGS` are deliberately not passed: the
//! static udocker build's `+crt-static` does not apply to a shared library.
//!
//! Its one versioned import must be `dlsym@GLIBC_2.2.5` (the x86_64 baseline), whatever the build
//! host's glibc: it is linked against a stub `libdl.so.2` that defines only that version
//! (`spec/elf-fakechroot.md` §6.4). Other architectures get an empty file and no F modes.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed: {st}");
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest.join("../preload/src");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let target = env::var("TARGET").expect("TARGET");
    let so = out.join("libpreload.so");
    if !(target.starts_with("x86_64-") && target.contains("-linux-")) {
        fs::write(&so, b"").expect("write empty libpreload.so");
        println!("cargo:rustc-env=PRELOAD_HASH=none");
        return;
    }
    let stub = out.join("preload-stub");
    fs::create_dir_all(&stub).expect("create stub dir");
    fs::write(
        stub.join("dl.c"),
        "void *dlsym(void *h, const char *s) { (void)h; (void)s; return 0; }\n",
    )
    .expect("write stub source");
    fs::write(
        stub.join("dl.map"),
        "GLIBC_2.2.5 { global: dlsym; local: *; };\n",
    )
    .expect("write stub version script");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    run(Command::new(&cc).current_dir(&stub).args([
        "-shared",
        "-nostdlib",
        "-fPIC",
        "-o",
        "libdl.so",
        "dl.c",
        "-Wl,--version-script=dl.map",
        "-Wl,-soname,libdl.so.2",
    ]));
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let tmp = out.join("libpreload.so.tmp");
    let shim = |layout: &[&str]| {
        let mut c = Command::new(&rustc);
        c.env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .args([
                "--crate-name",
                "preload",
                "--edition",
                "2021",
                "--crate-type",
                "cdylib",
                "--target",
                &target,
                "-C",
                "panic=abort",
                "-C",
                "opt-level=2",
                "-C",
                "debuginfo=0",
                "-C",
                "strip=symbols",
                // No crt begin/end files: they would import __cxa_finalize and friends.
                "-C",
                "link-arg=-nostartfiles",
                "-C",
                "link-arg=-Wl,-z,now",
            ]);
        for a in layout {
            c.args(["-C", a]);
        }
        c.arg("-L")
            .arg(format!("native={}", stub.display()))
            .args(["-l", "dylib=dl", "-o"])
            .arg(&tmp)
            .arg(src.join("lib.rs"));
        c
    };
    // Every exec in F1-F4 maps the shim: two segments (code and read-only data together, then
    // data and bss) instead of four, and no RELRO mprotect, are three system calls fewer per
    // program start (measured ~9 us of a 640 us fork+exec, scripts/bench-fake (d)). RELRO would
    // protect 88 relocated words of a library that is no security boundary. `--no-rosegment` is
    // lld's (rustc's default linker on x86_64 Linux); another linker gets the plain layout.
    let quiet = |mut c: Command| c.stderr(std::process::Stdio::null()).status();
    let layout = ["link-arg=-Wl,-z,norelro", "link-arg=-Wl,--no-rosegment"];
    if !quiet(shim(&layout)).is_ok_and(|s| s.success()) {
        run(&mut shim(&[]));
    }
    rename(&tmp, &so);
    // An identity of the library for the container directories' stamp (engine/shim.rs): FNV-1a
    // of its bytes.
    let h = fs::read(&so)
        .expect("read libpreload.so")
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    println!("cargo:rustc-env=PRELOAD_HASH={h:016x}");
}

fn rename(a: &Path, b: &Path) {
    fs::rename(a, b).unwrap_or_else(|e| panic!("rename {} {}: {e}", a.display(), b.display()));
}
