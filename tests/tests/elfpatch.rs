//! `udocker patchelf …` (the `elfpatch` crate behind patchelf's command line), driven through the real
//! binary on copies of real host ELF files: golden round trips that still run, byte-identical no-ops,
//! root prefixes, hostile input, and a seeded mutation run that must never crash.

use e2e::{show, stdout, udocker_bin};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pe(args: &[&str]) -> Output {
    Command::new(udocker_bin())
        .arg("patchelf")
        .args(args)
        .output()
        .expect("run udocker patchelf")
}

fn pe_ok(args: &[&str]) -> String {
    let o = pe(args);
    assert!(o.status.success(), "patchelf {args:?}: {}", show(&o));
    stdout(&o)
}

fn copy(src: &str, dir: &Path, name: &str) -> Option<PathBuf> {
    let s = Path::new(src);
    if !s.exists() {
        eprintln!("skipped part: {src} missing");
        return None;
    }
    let d = dir.join(name);
    fs::copy(s, &d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    Some(d)
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn interp_of(f: &Path) -> String {
    pe_ok(&["--print-interpreter", p(f)]).trim_end().to_string()
}

#[test]
fn long_interpreter_and_rpath_still_run() {
    let t = tempfile::tempdir().unwrap();
    for bin in ["/bin/true", "/bin/ls"] {
        let Some(f) = copy(bin, t.path(), "prog") else {
            continue;
        };
        let real = interp_of(&f);
        // A 150-character directory holding a symlink to the real loader.
        let long = t.path().join("a".repeat(150));
        fs::create_dir_all(&long).unwrap();
        let link = long.join("ld.so");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        pe_ok(&[
            "--set-interpreter",
            p(&link),
            "--set-rpath",
            &format!("/nonexistent/{}", "r".repeat(300)),
            p(&f),
        ]);
        assert_eq!(interp_of(&f), p(&link));
        assert!(pe_ok(&["--print-rpath", p(&f)]).starts_with("/nonexistent/rrr"));
        let o = Command::new(&f).arg("--version").output().unwrap();
        assert!(
            o.status.success(),
            "{bin} patched no longer runs: {}",
            show(&o)
        );
        // Back to the original interpreter: still runs.
        pe_ok(&["--set-interpreter", &real, "--remove-rpath", p(&f)]);
        assert_eq!(pe_ok(&["--print-rpath", p(&f)]), "\n");
        let o = Command::new(&f).arg("--version").output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
    }
}

#[test]
fn unchanged_values_leave_the_file_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let Some(f) = copy("/bin/ls", t.path(), "ls") else {
        return;
    };
    let before = fs::read(&f).unwrap();
    let interp = interp_of(&f);
    pe_ok(&["--set-interpreter", &interp, p(&f)]);
    pe_ok(&["--remove-rpath", p(&f)]); // no run path: nothing to remove
    pe_ok(&["--print-needed", "--print-soname", "--print-rpath", p(&f)]);
    assert!(fs::read(&f).unwrap() == before, "file changed by a no-op");
}

#[test]
fn needed_add_remove_replace_and_soname() {
    let t = tempfile::tempdir().unwrap();
    let Some(f) = copy("/bin/true", t.path(), "true") else {
        return;
    };
    pe_ok(&[
        "--add-needed",
        "libm.so.6",
        "--add-needed",
        "libdl.so.2",
        p(&f),
    ]);
    let n = pe_ok(&["--print-needed", p(&f)]);
    assert!(n.starts_with("libdl.so.2\nlibm.so.6\n"), "{n}");
    assert!(Command::new(&f).status().unwrap().success());
    pe_ok(&["--remove-needed", "libm.so.6", p(&f)]);
    assert!(!pe_ok(&["--print-needed", p(&f)]).contains("libm.so.6"));
    // Suffix replacement reuses the old string: the file does not grow.
    let len = fs::metadata(&f).unwrap().len();
    pe_ok(&["--replace-needed", "libdl.so.2", "dl.so.2", p(&f)]);
    assert_eq!(fs::metadata(&f).unwrap().len(), len);
    assert!(pe_ok(&["--print-needed", p(&f)]).starts_with("dl.so.2\n"));

    let lib = Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1");
    if let Some(l) = lib
        .exists()
        .then(|| copy(p(lib), t.path(), "libz.so.1"))
        .flatten()
    {
        pe_ok(&["--set-soname", "libzzz.so.9", p(&l)]);
        assert_eq!(pe_ok(&["--print-soname", p(&l)]), "libzzz.so.9\n");
        // Shrink keeps nothing absolute that holds no needed library.
        pe_ok(&[
            "--set-rpath",
            "/nonexistent:$ORIGIN/x",
            "--force-rpath",
            p(&l),
        ]);
        pe_ok(&["--shrink-rpath", "--force-rpath", p(&l)]);
        assert_eq!(pe_ok(&["--print-rpath", p(&l)]), "$ORIGIN/x\n");
    }
}

#[test]
fn root_prefix_set_is_idempotent_and_restores() {
    let t = tempfile::tempdir().unwrap();
    let Some(f) = copy("/bin/ls", t.path(), "ls") else {
        return;
    };
    let orig = fs::read(&f).unwrap();
    let interp = interp_of(&f);
    pe_ok(&[
        "--set-rpath",
        "/usr/lib/foo:$ORIGIN/../lib:/opt/x",
        "--add-needed",
        "/lib/libnos.so",
        p(&f),
    ]);
    let root = "/tmp/ctr/ROOT";
    pe_ok(&["--set-root-prefix", root, p(&f)]);
    assert_eq!(interp_of(&f), format!("{root}/{interp}"));
    assert_eq!(
        pe_ok(&["--print-rpath", p(&f)]),
        format!("{root}//usr/lib/foo:$ORIGIN/../lib:{root}//opt/x\n")
    );
    assert!(pe_ok(&["--print-needed", p(&f)]).contains(&format!("{root}//lib/libnos.so\n")));
    let once = fs::read(&f).unwrap();
    pe_ok(&["--set-root-prefix", root, p(&f)]);
    assert!(
        fs::read(&f).unwrap() == once,
        "second --set-root-prefix changed the file"
    );
    pe_ok(&["--restore-root-prefix", root, p(&f)]);
    assert_eq!(interp_of(&f), interp);
    assert_eq!(
        pe_ok(&["--print-rpath", p(&f)]),
        "/usr/lib/foo:$ORIGIN/../lib:/opt/x\n"
    );
    assert!(
        pe_ok(&["--print-needed", p(&f)]).contains("\n/lib/libnos.so\n")
            || pe_ok(&["--print-needed", p(&f)]).starts_with("/lib/libnos.so\n")
    );
    assert!(orig != fs::read(&f).unwrap());
}

#[test]
fn hostile_inputs_fail_cleanly_and_stay_untouched() {
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("script.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let empty = t.path().join("empty");
    fs::write(&empty, "").unwrap();
    let mut cases = vec![
        (script.clone(), "not an ELF executable"),
        (empty.clone(), "not an ELF executable"),
    ];
    if let Some(ls) = copy("/bin/ls", t.path(), "trunc") {
        let d = fs::read(&ls).unwrap();
        fs::write(&ls, &d[..40]).unwrap();
        cases.push((ls, "missing ELF header"));
    }
    if let Some(bb) = copy("/bin/busybox", t.path(), "busybox") {
        let o = pe(&["--print-interpreter", p(&bb)]);
        if !o.status.success() {
            cases.push((bb, "statically linked"));
        }
    }
    for (f, msg) in cases {
        let before = fs::read(&f).unwrap();
        let o = pe(&["--set-interpreter", "/x", "--set-rpath", "/y", p(&f)]);
        assert_eq!(o.status.code(), Some(1), "{}: {}", f.display(), show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{}: {err}", f.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(fs::read(&f).unwrap() == before);
        // -q: silent, still failing.
        let o = pe(&["-q", "--set-interpreter", "/x", p(&f)]);
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stderr.is_empty(), "{}", show(&o));
    }
    let o = pe(&["--print-rpath", p(&t.path().join("missing"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("getting info about"));
    let o = pe(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(pe_ok(&["--version"]).starts_with("patchelf "));
}

#[test]
fn argv0_patchelf_dispatches() {
    let t = tempfile::tempdir().unwrap();
    let link = t.path().join("patchelf");
    std::os::unix::fs::symlink(udocker_bin(), &link).unwrap();
    let o = Command::new(&link)
        .args(["--print-interpreter", "/bin/ls"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(stdout(&o).contains("ld-linux"));
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(dir: &Path, cmd: &str) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd}: {}", show(&o));
}

fn run_prog(dir: &Path) -> Output {
    Command::new(dir.join("prog"))
        .env("LD_LIBRARY_PATH", dir)
        .env("LD_BIND_NOW", "1")
        .output()
        .unwrap()
}

/// `--rename-dynamic-symbols` on a versioned library with both `.gnu.hash` and `.hash`, and relocations
/// against its own exported symbols (so reordering `.dynsym` must fix them): renamed in the library and
/// in the program, the program still runs and prints the same; the program alone no longer links.
#[test]
fn rename_dynamic_symbols_in_library_and_program() {
    if !have("gcc") {
        eprintln!("skipped: gcc missing");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let n = 60;
    let mut lib = String::from("#include <stdio.h>\n");
    for i in 0..n {
        lib.push_str(&format!("int f{i}(void) {{ return {i} * {i}; }}\n"));
    }
    lib.push_str("int (*const table[])(void) = {");
    for i in 0..n {
        lib.push_str(&format!("f{i},"));
    }
    lib.push_str("};\nint call_all(void) { int s = 0; for (unsigned i = 0; i < sizeof table / sizeof *table; i++) s += table[i](); return s; }\n");
    lib.push_str("int counter = 7;\nint *counter_addr = &counter;\n");
    fs::write(d.join("lib.c"), lib).unwrap();
    fs::write(
        d.join("lib.map"),
        "LIBT_1 { global: f*; call_all; table; counter; counter_addr; local: *; };\n",
    )
    .unwrap();
    fs::write(
        d.join("prog.c"),
        "#include <stdio.h>\nextern int f3(void), f41(void), call_all(void), counter, *counter_addr;\n\
         int main(void) { printf(\"%d %d %d %d\\n\", f3() + f41(), call_all(), counter, *counter_addr == counter); return 0; }\n",
    )
    .unwrap();
    sh(
        d,
        "gcc -shared -fPIC -O1 -Wl,--hash-style=both -Wl,--version-script=lib.map -Wl,-soname,libt.so \
         -o libt.so lib.c && gcc -O1 -Wl,--hash-style=both -o prog prog.c -L. -lt",
    );
    let before = run_prog(d);
    assert!(before.status.success(), "{}", show(&before));
    let expected = stdout(&before);

    let mut map = String::new();
    for i in 0..n {
        map.push_str(&format!("f{i} renamed_function_{i}\n"));
    }
    map.push_str("call_all call_all_renamed\ncounter counter_renamed\ncounter_addr ca\n");
    fs::write(d.join("map"), map).unwrap();
    fs::copy(d.join("prog"), d.join("prog.orig")).unwrap();
    fs::copy(d.join("libt.so"), d.join("libt.so.orig")).unwrap();
    pe_ok(&[
        "--rename-dynamic-symbols",
        p(&d.join("map")),
        p(&d.join("libt.so")),
        p(&d.join("prog")),
    ]);
    let after = run_prog(d);
    assert!(after.status.success(), "{}", show(&after));
    assert_eq!(stdout(&after), expected);
    if have("nm") {
        let o = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(d.join("libt.so"))
            .output()
            .unwrap();
        let syms = stdout(&o);
        assert!(syms.contains("renamed_function_59@@LIBT_1"), "{syms}");
        assert!(!syms.contains(" f3@"), "{syms}");
    }

    // Only the program renamed: its new names are not in the old library.
    fs::copy(d.join("libt.so.orig"), d.join("libt.so")).unwrap();
    let o = run_prog(d);
    assert!(!o.status.success(), "{}", show(&o));
    // And back: renaming the library too, then both back to the old names, restores the output.
    pe_ok(&[
        "--rename-dynamic-symbols",
        p(&d.join("map")),
        p(&d.join("libt.so")),
    ]);
    let mut rmap = String::new();
    for line in fs::read_to_string(d.join("map")).unwrap().lines() {
        let (a, b) = line.split_once(' ').unwrap();
        rmap.push_str(&format!("{b} {a}\n"));
    }
    fs::write(d.join("rmap"), rmap).unwrap();
    pe_ok(&[
        "--rename-dynamic-symbols",
        p(&d.join("rmap")),
        p(&d.join("libt.so")),
        p(&d.join("prog")),
    ]);
    let back = run_prog(d);
    assert!(back.status.success(), "{}", show(&back));
    assert_eq!(stdout(&back), expected);
    // The original program runs against the renamed-back library.
    fs::copy(d.join("prog.orig"), d.join("prog")).unwrap();
    let o = run_prog(d);
    assert_eq!(stdout(&o), expected, "{}", show(&o));

    // A malformed map is refused and leaves the file alone.
    fs::write(d.join("bad"), "only_one_name\n").unwrap();
    let before = fs::read(d.join("libt.so")).unwrap();
    let o = pe(&[
        "--rename-dynamic-symbols",
        p(&d.join("bad")),
        p(&d.join("libt.so")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing the second element"));
    assert!(fs::read(d.join("libt.so")).unwrap() == before);
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn seeded_mutations_never_crash() {
    let t = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for src in [
        "/bin/true",
        "/bin/ls",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/bin/busybox",
    ] {
        if let Some(f) = copy(src, t.path(), &format!("in{}", inputs.len())) {
            inputs.push(fs::read(f).unwrap());
        }
    }
    let map = t.path().join("rename-map");
    fs::write(
        &map,
        "free free_renamed\nmalloc malloc_renamed\ndeflate deflate_renamed\nzlibVersion zv\n",
    )
    .unwrap();
    let ops: &[&[&str]] = &[
        &[
            "--print-interpreter",
            "--print-rpath",
            "--print-needed",
            "--print-soname",
        ],
        &[
            "--set-interpreter",
            "/a/much/longer/interpreter/path/than/before/ld.so",
        ],
        &["--set-rpath", "/some/new/rpath/that/is/rather/long:$ORIGIN"],
        &["--add-needed", "libextra.so", "--remove-rpath"],
        &[
            "--replace-needed",
            "libc.so.6",
            "libc-other.so.6",
            "--set-soname",
            "x.so",
        ],
        &["--set-root-prefix", "/tmp/ROOT"],
        &["--clear-execstack", "--no-default-lib"],
        &["--rename-dynamic-symbols", p(&map)],
    ];
    let f = t.path().join("mut");
    let start = std::time::Instant::now();
    let mut runs = 0;
    for seed in 1..=u64::MAX {
        if runs >= 160 || start.elapsed().as_secs() > 8 {
            break;
        }
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let base = &inputs[(r.next() % inputs.len() as u64) as usize];
        let mut d = base.clone();
        // Mutations concentrated on the headers (where counts and offsets live), some anywhere.
        for _ in 0..1 + r.next() % 8 {
            let lim = if matches!(r.next() % 2, 0) {
                4096.min(d.len())
            } else {
                d.len()
            };
            let at = (r.next() % lim as u64) as usize;
            d[at] = match r.next() % 4 {
                0 => 0,
                1 => 0xff,
                _ => r.next() as u8,
            };
        }
        if matches!(r.next() % 10, 0) {
            let n = (r.next() % d.len() as u64) as usize;
            d.truncate(n);
        }
        fs::write(&f, &d).unwrap();
        let op = ops[(r.next() % ops.len() as u64) as usize];
        let mut args: Vec<&str> = op.to_vec();
        args.push(p(&f));
        let o = pe(&args);
        runs += 1;
        let code = o.status.code();
        assert!(
            matches!(code, Some(0) | Some(1)),
            "seed {seed}: {args:?} ended with {:?} (signal or panic): {}",
            o.status,
            show(&o)
        );
        if code == Some(1) {
            assert!(
                fs::read(&f).unwrap() == d,
                "seed {seed}: failed run modified the file"
            );
        }
    }
    assert!(runs >= 20, "only {runs} mutation runs");
}
