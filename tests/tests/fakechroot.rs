//! Mode F1: the fakechroot shim (`preload/`, embedded in udocker and written to
//! `containers/<id>/libfakechroot.so`) with the container's own loader, on debian:bookworm.
//! The library's imports are checked on the file udocker writes out (`spec/elf-fakechroot.md`
//! §6.6): one versioned import, `dlsym@GLIBC_2.2.5`, and `NEEDED libdl.so.2` only.

use e2e::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh world with debian:bookworm in a container `deb` set to F1; its id and ROOT.
fn setup() -> (TestEnv, String, PathBuf) {
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    let id = t.ud_ok(&["create", "--name=deb", &img]).trim().to_string();
    let out = t.ud_ok(&["setup", "--execmode=F1", "deb"]);
    assert!(out.contains("execmode: F1"), "{out}");
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "deb"]).trim());
    (t, id, root)
}

fn run(t: &TestEnv, args: &[&str]) -> Output {
    let mut a = vec!["run", "--nobanner"];
    a.extend_from_slice(args);
    t.ud(&a)
}

fn run_ok(t: &TestEnv, args: &[&str]) -> String {
    let o = run(t, args);
    assert!(
        o.status.success(),
        "expected `run {}` to succeed\n{}",
        args.join(" "),
        show(&o)
    );
    stdout(&o)
}

fn sh(t: &TestEnv, script: &str) -> String {
    run_ok(t, &["deb", "sh", "-c", script])
}

fn tool(prog: &str, args: &[&str], so: &Path) -> String {
    let o = Command::new(prog)
        .args(args)
        .arg(so)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(o.status.success(), "{prog} failed\n{}", show(&o));
    stdout(&o)
}

/// The import check on the library as udocker writes it out; `needed` is the one library it
/// names: `libdl.so.2` as built (glibc before 2.34 keeps dlsym there), `libc.so.6` where
/// the container's libc defines dlsym@GLIBC_2.2.5 (udocker/src/engine/shim.rs).
fn check_imports(so: &Path, needed: &str) {
    let syms = tool("objdump", &["-T"], so);
    let undefined: Vec<&str> = syms.lines().filter(|l| l.contains("*UND*")).collect();
    assert_eq!(
        undefined.len(),
        1,
        "exactly one undefined symbol expected:\n{syms}"
    );
    assert!(
        undefined[0].contains("(GLIBC_2.2.5)") && undefined[0].trim_end().ends_with(" dlsym"),
        "the one import must be dlsym@GLIBC_2.2.5:\n{syms}"
    );
    // The memory functions and the personality stub are private to the library: exporting them
    // would interpose the program's own.
    for private in [
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        "bcmp",
        "strlen",
        "rust_eh_personality",
    ] {
        assert!(
            !syms
                .lines()
                .any(|l| l.split_whitespace().last() == Some(private)),
            "{private} must be neither imported nor exported:\n{syms}"
        );
    }
    // Exported: the wrappers (both stat ABIs, FORTIFY names), nothing versioned.
    for w in [
        "open",
        "openat",
        "fopen",
        "stat",
        "__xstat",
        "statx",
        "execve",
        "execvp",
        "getcwd",
        "readlink",
        "realpath",
        "opendir",
        "dlopen",
        "posix_spawn",
        "__open_2",
        "system",
        "popen",
        "pclose",
        "execl",
        "execle",
        "execlp",
        "mkstemp",
        "mkdtemp",
        "glob",
        "scandir",
        "nftw",
        "ftw",
        "fts_open",
        "fts_read",
    ] {
        assert!(
            syms.lines()
                .any(|l| l.contains(" g ") && l.split_whitespace().last() == Some(w)),
            "{w} is not exported:\n{syms}"
        );
    }
    let dynamic = tool("readelf", &["-d"], so);
    let entries: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert_eq!(entries.len(), 1, "NEEDED entries:\n{dynamic}");
    assert!(entries[0].contains(&format!("[{needed}]")), "{dynamic}");
    assert!(!dynamic.contains("TEXTREL"), "{dynamic}");
    let versions = tool("objdump", &["-T"], so);
    let mut v: Vec<&str> = versions
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.starts_with("GLIBC_"))
        .collect();
    v.sort();
    v.dedup();
    assert_eq!(v, ["GLIBC_2.2.5"], "glibc versions referenced");
}

#[test]
fn library_imports_only_dlsym_at_the_baseline_version() {
    let (t, id, _) = setup();
    run_ok(&t, &["deb", "true"]);
    let so = t.udir.join("containers").join(&id).join("libfakechroot.so");
    assert!(so.is_file(), "{} not written", so.display());
    // Bookworm: glibc 2.36, whose libc.so.6 has dlsym@GLIBC_2.2.5.
    check_imports(&so, "libc.so.6");
    // Written once: a second run leaves the same file (same inode) in place.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let before = ino(&so);
    run_ok(&t, &["deb", "true"]);
    assert_eq!(ino(&so), before, "libfakechroot.so rewritten");
}

/// A shell execs the same path again after the file or the symlink behind it changed: the shim's
/// memory of earlier execs (preload/src/execcache.rs) must not run the old program, and the
/// resolved name (/proc/self/exe) follows the link.
#[test]
fn repeated_execs_see_replaced_programs() {
    let (t, _, _) = setup();
    let out = sh(
        &t,
        "cd /tmp && cp /bin/false prog && for i in 1 2; do ./prog; echo \"false=$?\"; done; \
         cp /bin/true prog.new && mv prog.new prog && ./prog; echo \"true=$?\"; \
         ln -sf /usr/bin/readlink l && for i in 1 2; do ./l /proc/self/exe; done; \
         ln -sf /usr/bin/realpath l && ./l /proc/self/exe; \
         chmod -x prog; ./prog; echo \"noexec=$?\"; rm -f prog l",
    );
    assert_eq!(
        out,
        "false=1\nfalse=1\ntrue=0\n/usr/bin/readlink\n/usr/bin/readlink\n/usr/bin/realpath\nnoexec=126\n",
        "{out}"
    );
}

/// The loader probes no library subdirectory the container lacks: `--glibc-hwcaps-mask` with an
/// empty list (glibc >= 2.33) and LD_HWCAP_MASK=0 (the legacy capability directories) are
/// given only while no such directory exists; a program still sees its own name and path.
#[test]
fn loader_skips_hwcap_directories_the_container_lacks() {
    let (t, _, root) = setup();
    let show = "cat /proc/self/cmdline | tr '\\0' ' '; echo; echo \"hwcap=$LD_HWCAP_MASK\"; readlink /proc/self/exe";
    let out = sh(&t, show);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains(" --argv0 cat --glibc-hwcaps-mask  /"),
        "expected the empty mask after --argv0:\n{out}"
    );
    assert_eq!(lines[1], "hwcap=0", "{out}");
    assert_eq!(lines[2], "/usr/bin/readlink", "{out}");
    // A container with such directories gets neither.
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    fs::create_dir_all(lib.join("glibc-hwcaps/x86-64-v2")).unwrap();
    fs::create_dir_all(lib.join("tls")).unwrap();
    let out = sh(&t, show);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines[0].contains("hwcaps"), "{out}");
    assert_eq!(lines[1], "hwcap=", "{out}");
    assert_eq!(lines[2], "/usr/bin/readlink", "{out}");
    fs::remove_dir_all(lib.join("glibc-hwcaps")).unwrap();
    fs::remove_dir_all(lib.join("tls")).unwrap();
}

#[test]
fn reads_the_container_files_not_the_hosts() {
    let (t, _, root) = setup();
    let want = fs::read_to_string(root.join("etc/debian_version")).unwrap();
    assert_eq!(run_ok(&t, &["deb", "cat", "/etc/debian_version"]), want);
    assert!(want.starts_with("12."), "{want}");
    // A marker that exists only in ROOT.
    let marker = format!("f1-marker-{}\n", std::process::id());
    t.write_file(&root.join("etc/f1-marker"), marker.as_bytes());
    assert!(!Path::new("/etc/f1-marker").exists());
    assert_eq!(run_ok(&t, &["deb", "cat", "/etc/f1-marker"]), marker);
    assert_eq!(
        run_ok(&t, &["deb", "cat", "/etc/os-release"]),
        fs::read_to_string(root.join("etc/os-release")).unwrap()
    );
    // `..` cannot climb out of the root.
    assert_eq!(
        sh(&t, "cd /usr/lib && cat ../../../../../etc/f1-marker"),
        marker
    );
    // The environment udocker sets for the shim.
    let env = run_ok(&t, &["deb", "env"]);
    let base = fs::canonicalize(&root).unwrap();
    assert!(
        env.lines()
            .any(|l| l == format!("FAKECHROOT_BASE={}", base.display())),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l.starts_with("LD_PRELOAD=") && l.ends_with("/libfakechroot.so")),
        "{env}"
    );
}

#[test]
fn ls_and_cwd_are_in_the_container() {
    let (t, _, root) = setup();
    fs::create_dir(root.join("f1-dir")).unwrap();
    let ls = run_ok(&t, &["deb", "ls", "/"]);
    let names: Vec<&str> = ls.lines().collect();
    for n in ["bin", "etc", "usr", "f1-dir"] {
        assert!(names.contains(&n), "{n} missing from `ls /`:\n{ls}");
    }
    assert_eq!(sh(&t, "cd /usr/lib && pwd"), "/usr/lib\n");
    assert_eq!(sh(&t, "cd /usr/lib && /bin/pwd"), "/usr/lib\n");
    assert_eq!(sh(&t, "cd / && cd .. && /bin/pwd"), "/\n");
    assert_eq!(run_ok(&t, &["-w", "/etc", "deb", "pwd"]), "/etc\n");
    assert_eq!(
        sh(
            &t,
            "cd /tmp && touch f1-file && ls /tmp && rm f1-file && ls -A /tmp"
        ),
        "f1-file\n"
    );
    assert!(!root.join("tmp/f1-file").exists());
}

#[test]
fn bash_scripts_and_exit_status() {
    let (t, _, root) = setup();
    t.write_file(
        &root.join("usr/local/bin/f1script"),
        b"#!/bin/bash\necho \"$0 $# $1\"\ncat /etc/debian_version >/dev/null && echo bash-ok\nexit 5\n",
    );
    fs::set_permissions(
        root.join("usr/local/bin/f1script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = run(&t, &["deb", "f1script", "arg1"]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert_eq!(stdout(&o), "/usr/local/bin/f1script 1 arg1\nbash-ok\n");
    // From a shell: PATH search, shebang, and $? of the child.
    assert_eq!(
        sh(&t, "f1script x; echo rc=$?"),
        "/usr/local/bin/f1script 1 x\nbash-ok\nrc=5\n"
    );
    assert_eq!(
        run(&t, &["deb", "sh", "-c", "exit 42"]).status.code(),
        Some(42)
    );
    assert_eq!(
        sh(
            &t,
            "bash -c 'echo ${BASH_VERSION%%.*}'; awk 'BEGIN{print 6*7}'"
        ),
        "5\n42\n"
    );
}

#[test]
fn readlink_and_symlinks_show_container_paths() {
    let (t, _, root) = setup();
    // F1 runs programs as `ld.so PROGRAM`; /proc/self/exe is still the program.
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "/proc/self/exe"]),
        "/usr/bin/readlink\n"
    );
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "-f", "/bin/sh"]),
        "/usr/bin/dash\n"
    );
    // setup F1 made absolute links point into ROOT; the container sees them as they were.
    let awk = root.join("etc/alternatives/awk");
    let host_target = fs::read_link(&awk).unwrap();
    assert!(
        host_target.starts_with(fs::canonicalize(&root).unwrap()),
        "{}",
        host_target.display()
    );
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "/etc/alternatives/awk"]),
        "/usr/bin/mawk\n"
    );
    assert_eq!(
        sh(&t, "ln -s /etc/debian_version /tmp/l && readlink /tmp/l && cat /tmp/l >/dev/null && echo ok"),
        "/etc/debian_version\nok\n"
    );
    // lstat's size of a link is the length readlink returns (the narrowed target), through
    // statx (stat), lstat (find -printf %s) and fstatat (ls -l): spec §5, symlink.t.
    assert_eq!(
        sh(
            &t,
            "stat -c %s /etc/alternatives/awk; find /etc/alternatives/awk -printf '%s\\n'; \
             ls -l /etc/alternatives/awk | awk '{print $5}'"
        ),
        "13\n13\n13\n"
    );
    // Leaving F restores the original targets.
    t.ud_ok(&["setup", "--execmode=P1", "deb"]);
    assert_eq!(fs::read_link(&awk).unwrap(), Path::new("/usr/bin/mawk"));
}

#[test]
fn volumes_are_mapped() {
    let (t, _, _) = setup();
    let vol = t.home.join("vol");
    fs::create_dir(&vol).unwrap();
    t.write_file(&vol.join("data.txt"), b"volume data\n");
    let spec = format!("{}:/data", vol.display());
    assert_eq!(
        run_ok(&t, &["-v", &spec, "deb", "cat", "/data/data.txt"]),
        "volume data\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &["-v", &spec, "-w", "/data", "deb", "sh", "-c", "pwd; ls"]
        ),
        "/data\ndata.txt\n"
    );
    // Same-path volumes (sysdirs) are passed through: /proc is the host's.
    assert!(run_ok(&t, &["deb", "cat", "/proc/self/status"]).contains("Name:"));
}

/// A small C program calling the libc functions whose glibc versions exec or create files
/// through internal calls (system, popen, execl*, mk*temp), compiled here (dynamic, run with
/// the container's glibc) and installed as /usr/local/bin/f1probe.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#if __has_include(<fts.h>) /* musl has no fts (Alpine's is the separate musl-fts) */
#include <fts.h>
#define HAVE_FTS 1
#endif
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static int nftw_cb(const char *p, const struct stat *sb, int ty, struct FTW *f) {
    printf("nftw %s %s %d\n", p, p + f->base, f->level);
    return 0;
}
static int ftw_cb(const char *p, const struct stat *sb, int ty) {
    printf("ftw %s\n", p);
    return 0;
}
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = -3; /* ".", "..", and the directory's own descriptor */
    if (!d) return -1;
    while ((e = readdir(d))) n++;
    closedir(d);
    return n;
}
static long vm_kb(void) {
    char l[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(l, sizeof l, f))
        if (!strncmp(l, "VmSize:", 7)) kb = atol(l + 7);
    fclose(f);
    return kb;
}
int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    const char *c = argc > 2 ? argv[2] : "true";
    char b[256];
    size_t n;
    int r, fd;
    if (!strcmp(w, "system")) {
        fflush(stdout);
        r = system(c);
        printf("rc=%d\n", WIFEXITED(r) ? WEXITSTATUS(r) : -1);
    } else if (!strcmp(w, "popen")) {
        FILE *f = popen(c, "r"), *g = popen("cat", "w");
        if (!f || !g) { perror("popen"); return 1; }
        while ((n = fread(b, 1, sizeof b, f)) > 0) fwrite(b, 1, n, stdout);
        r = pclose(f);
        printf("rc=%d\n", WIFEXITED(r) ? WEXITSTATUS(r) : -1);
        fflush(stdout);
        fputs("to-cat\n", g);
        r = pclose(g);
        printf("rc=%d\n", WIFEXITED(r) ? WEXITSTATUS(r) : -1);
    } else if (!strcmp(w, "execl")) {
        execl("/bin/echo", "echo", "1", "2", "3", "4", "5", "6", "7", "8", (char *)0);
        perror("execl");
    } else if (!strcmp(w, "execlp")) {
        execlp("sh", "sh", "-c", c, (char *)0);
        perror("execlp");
    } else if (!strcmp(w, "execle")) {
        char *env[] = {"F1VAR=from-execle", 0};
        execle("/bin/sh", "sh", "-c", c, (char *)0, env);
        perror("execle");
    } else if (!strcmp(w, "mktemp")) {
        char t1[] = "/var/tmp/f1sXXXXXX", t2[] = "/var/tmp/f1dXXXXXX";
        char t3[] = "/var/tmp/f1xXXXXXX.txt", t4[] = "/var/tmp/f1oXXXXXX";
        char t5[] = "/var/tmp/f1mXXXXXX";
        fd = mkstemp(t1);
        if (fd < 0 || write(fd, "x\n", 2) != 2) { perror("mkstemp"); return 1; }
        close(fd);
        puts(t1);
        puts(mkdtemp(t2) ? t2 : "mkdtemp-failed");
        fd = mkstemps(t3, 4);
        puts(fd >= 0 ? t3 : "mkstemps-failed");
        fd = mkostemp(t4, O_CLOEXEC);
        puts(fd >= 0 ? t4 : "mkostemp-failed");
        puts(mktemp(t5));
        return 0;
    } else if (!strcmp(w, "glob")) {
        glob_t g;
        r = glob(c, 0, 0, &g);
        if (r == 0) {
            r = glob("/etc/f1-sd/*", GLOB_APPEND, 0, &g);
            for (n = 0; n < g.gl_pathc; n++) puts(g.gl_pathv[n]);
            globfree(&g);
        }
        printf("rc=%d\n", r);
    } else if (!strcmp(w, "nftw")) {
        r = nftw(c, nftw_cb, 8, FTW_PHYS);
        printf("rc=%d\n", r);
        r = ftw(c, ftw_cb, 8);
        printf("rc=%d\n", r);
#ifdef HAVE_FTS
    } else if (!strcmp(w, "fts")) {
        char *roots[] = {(char *)c, 0};
        int opts[] = {FTS_PHYSICAL | FTS_NOCHDIR, FTS_PHYSICAL}, k;
        for (k = 0; k < 2; k++) {
            FTS *t = fts_open(roots, opts[k], 0);
            FTSENT *e;
            if (!t) { perror("fts_open"); return 1; }
            while ((e = fts_read(t)))
                if (e->fts_info != FTS_DP)
                    printf("fts%d %s %d %s %d\n", k, e->fts_path, (int)e->fts_pathlen,
                           k ? "-" : e->fts_accpath, e->fts_level);
            fts_close(t);
        }
#endif
    } else if (!strcmp(w, "chroot")) {
        /* chroot(2) without the chdir("/") the chroot command does: the cwd stays outside. */
        if (chroot(c)) { perror("chroot"); return 1; }
        execl("/bin/sh", "sh", "-c", argc > 3 ? argv[3] : "true", (char *)0);
        perror("execl");
        return 1;
    } else if (!strcmp(w, "vfork")) {
        /* vfork children that close every descriptor above 2 (as a close_fds spawn does) and
         * exec `c`, while the parent keeps naming paths: what the parent has afterwards. */
        int k, lim = argc > 3 ? atoi(argv[3]) : 100, fds0;
        long vm0;
        struct stat st;
        stat("/usr", &st); /* what the shim opens for itself is open before counting */
        fds0 = count_fds();
        vm0 = vm_kb();
        for (k = 0; k < lim; k++) {
            pid_t p;
            if (stat("/usr/bin", &st)) { perror("stat"); return 1; }
            p = vfork();
            if (p == 0) {
                int i;
                for (i = 3; i < 256; i++) close(i);
                execl(c, c, (char *)0);
                _exit(127);
            }
            if (p < 0 || waitpid(p, &r, 0) != p || r != 0) { puts("child failed"); return 1; }
        }
        printf("fds+%d vm+%ldkB\n", count_fds() - fds0, vm_kb() - vm0);
    } else if (!strcmp(w, "scandir")) {
        struct dirent **nl;
        int i, k = scandir(c, &nl, 0, alphasort);
        for (i = 0; i < k; i++)
            if (nl[i]->d_name[0] != '.') puts(nl[i]->d_name);
        printf("n=%d\n", k);
    }
    return 0;
}
"#;

/// vfork children (dash, Python's subprocess) share their parent's memory but not its
/// descriptors: an exec from one must leave the parent neither mappings (the exec's scratch
/// memory was a fresh mapping that outlived the child: 20 KiB per command) nor descriptors (a
/// child closing its copy of the root descriptor made the parent forget its own and open one
/// more per child).
#[test]
fn vfork_children_leave_their_parent_nothing() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    let out = run_ok(&t, &["deb", "f1probe", "vfork", "/bin/true", "300"]);
    let (fds, vm) = out
        .trim()
        .strip_prefix("fds+")
        .and_then(|r| r.strip_suffix("kB"))
        .and_then(|r| r.split_once(" vm+"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(fds, "0", "descriptors left in the parent: {out}");
    // 300 leaked scratch mappings would be 6000 kB or more; allow the stdio buffers' growth.
    let vm: i64 = vm.parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(vm < 1024, "the parent's memory grew: {out}");
}

/// Compile PROBE_C (cached in the target dir) and install it in ROOT.
fn install_probe(t: &TestEnv, root: &Path) {
    install_probe_with(t, root, "cc");
}

/// A minimal tree for a chroot inside the container: the container's sh (dash), cat, pwd and
/// chroot copied in (their libraries are not: in F1 every program runs on the container's loader
/// and LD_LIBRARY_PATH), and a `marker` file naming it.
fn chroot_tree(t: &TestEnv, root: &Path, dir: &str) {
    let d = root.join(dir);
    for sub in ["bin", "usr/sbin", "tmp"] {
        fs::create_dir_all(d.join(sub)).unwrap();
    }
    for (from, to) in [
        ("usr/bin/dash", "bin/sh"),
        ("usr/bin/cat", "bin/cat"),
        ("usr/bin/pwd", "bin/pwd"),
        ("usr/sbin/chroot", "usr/sbin/chroot"),
    ] {
        let dst = d.join(to);
        t.write_file(&dst, &fs::read(root.join(from)).unwrap());
        fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    t.write_file(&d.join("marker"), format!("{dir}\n").as_bytes());
}

/// chroot(2) emulation (spec §4.2 "chroot(2) emulation", §5 chroot.t and
/// escape-nested-chroot.t): a chroot inside an F1 container moves the root for the process and
/// its children, nested chroots compose, and `..` never climbs out of the new root (nor, from a
/// cwd a chroot left outside it, out of the container).
#[test]
fn chroot_inside_the_container() {
    let (t, _, root) = setup();
    t.write_file(&root.join("marker"), b"container\n");
    chroot_tree(&t, &root, "inner");
    chroot_tree(&t, &root, "inner/inner2");
    install_probe(&t, &root);
    assert_eq!(
        run_ok(&t, &["deb", "chroot", "/inner", "/bin/cat", "/marker"]),
        "inner\n"
    );
    // The spellings of chroot.t, resolved through the current root and the cwd.
    assert_eq!(
        sh(
            &t,
            "cd / && for d in inner /inner ./inner /./inner inner/. inner/./. inner/ /inner/; do \
             chroot $d /bin/cat /marker; done; cd /inner && chroot . /bin/cat /marker"
        ),
        "inner\n".repeat(9)
    );
    // Nested: the inner chroot resolves against the first one; `/` is the current root.
    assert_eq!(
        run_ok(
            &t,
            &[
                "deb",
                "chroot",
                "/inner",
                "/usr/sbin/chroot",
                "/inner2",
                "/bin/cat",
                "/marker"
            ]
        ),
        "inner/inner2\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &[
                "deb",
                "chroot",
                "/inner",
                "/usr/sbin/chroot",
                "/",
                "/bin/cat",
                "/marker"
            ]
        ),
        "inner\n"
    );
    // No escape with `..`, and children see the new root in FAKECHROOT_BASE.
    let out = run_ok(
        &t,
        &[
            "deb",
            "chroot",
            "/inner",
            "/bin/sh",
            "-c",
            "cd ../../../..; /bin/pwd; /bin/cat marker /../../marker; echo $FAKECHROOT_BASE",
        ],
    );
    let want = format!("/\ninner\ninner\n{}/inner\n", root.display());
    assert_eq!(out, want);
    // chroot(2) does not chdir: from the container's `/`, left outside the new root, relative
    // paths are the container's and `..` stops at the container root; absolute ones are the
    // new root's.
    assert_eq!(
        run_ok(
            &t,
            &[
                "-w",
                "/",
                "deb",
                "f1probe",
                "chroot",
                "/inner",
                "/bin/cat marker ../../../../marker /marker"
            ]
        ),
        "container\ncontainer\ninner\n"
    );
    // Children are told they run under fakechroot (spec §4.4).
    let v = sh(&t, "sh -c 'echo $FAKECHROOT $FAKECHROOT_VERSION'");
    assert!(v.starts_with("true udocker-rs-"), "{v}");
    // Not a directory, missing: errors, the root unchanged.
    let o = run(&t, &["deb", "chroot", "/marker", "/bin/true"]);
    assert!(!o.status.success(), "{}", show(&o));
    let o = run(&t, &["deb", "chroot", "/nonexistent", "/bin/true"]);
    assert!(!o.status.success(), "{}", show(&o));
}

/// FAKECHROOT_CMD_SUBST (spec §4.3 item 1): the placeholders exit 0/1 without an exec, a host
/// substitute runs outside the root with the container's variables renamed `*_ORIG` and
/// FAKECHROOT_CMD_ORIG set; the match is on the container path after dedotdot, also through
/// execvp's PATH search.
#[test]
fn command_substitution() {
    let (t, _, _) = setup();
    let host = t.home.join("subst.sh");
    t.write_file(
        &host,
        b"#!/bin/sh\necho \"subst $FAKECHROOT_CMD_ORIG ${LD_PRELOAD:-none} $# $1\"\n",
    );
    fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let subst = format!(
        "FAKECHROOT_CMD_SUBST=/usr/sbin/ldconfig=#RETURN(TRUE)#:/usr/bin/true=#RETURN(FALSE)#:\
         /usr/bin/whoami={}",
        host.display()
    );
    let out = run_ok(
        &t,
        &[
            "-e",
            &subst,
            "deb",
            "sh",
            "-c",
            "ldconfig -p; echo $?; /usr/bin/true; echo $?; env true || echo env-false; whoami a; /usr/bin/../bin/whoami; cd /usr && bin/whoami",
        ],
    );
    assert_eq!(
        out,
        "0\n1\nenv-false\nsubst /usr/bin/whoami none 1 a\nsubst /usr/bin/../bin/whoami none 0 \n\
         subst bin/whoami none 0 \n"
    );
}

/// Compile PROBE_C with `cc` (`cc` for glibc, `musl-gcc` for the musl image) into ROOT.
fn install_probe_with(t: &TestEnv, root: &Path, cc: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("f1-probe");
    fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel threads of one process: a name per call.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let src = dir.join(format!("probe-{}-{n}.c", std::process::id()));
    fs::write(&src, PROBE_C).unwrap();
    let bin = dir.join(format!("probe-{}-{n}", std::process::id()));
    let o = Command::new(cc)
        .args(["-O1", "-U_FORTIFY_SOURCE", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("running cc");
    assert!(o.status.success(), "cc failed\n{}", show(&o));
    let dst = root.join("usr/local/bin/f1probe");
    t.write_file(&dst, &fs::read(&bin).unwrap());
    let _ = fs::remove_file(&src);
    let _ = fs::remove_file(&bin);
    fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A shell command that prints `inside` only when the shell running it was started by the
/// container's loader (mapped from under FAKECHROOT_BASE), not the host's `/bin/sh` through
/// the host's loader (which would still find the container's libc through LD_LIBRARY_PATH).
const INSIDE: &str = r#"grep ld-linux /proc/$$/maps | grep -qvF "$FAKECHROOT_BASE" && echo HOST-SHELL || echo inside"#;

#[test]
fn system_and_popen_run_the_containers_shell() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    let marker = format!("f1-sys-{}\n", std::process::id());
    t.write_file(&root.join("etc/f1-marker"), marker.as_bytes());
    let cmd = format!("cat /etc/f1-marker; {INSIDE}; exit 3");
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "system", &cmd]),
        format!("{marker}inside\nrc=3\n")
    );
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "popen", &cmd]),
        format!("{marker}inside\nrc=3\nto-cat\nrc=0\n")
    );
    // perl's system and pipe open go through execl("/bin/sh", …) or execvp.
    assert_eq!(
        run_ok(
            &t,
            &["deb", "perl", "-e", r#"system("cat /etc/f1-marker")"#]
        ),
        marker
    );
    let script = format!("system(q{{cat /etc/f1-marker; {INSIDE}}})");
    assert_eq!(
        run_ok(&t, &["deb", "perl", "-e", &script]),
        format!("{marker}inside\n")
    );
    assert_eq!(
        run_ok(
            &t,
            &[
                "deb",
                "perl",
                "-e",
                r#"open(F, "cat /etc/f1-marker|"); print <F>"#
            ]
        ),
        marker
    );
    let script = format!("open(F, q{{cat /etc/f1-marker; {INSIDE} |}}); print <F>");
    assert_eq!(
        run_ok(&t, &["deb", "perl", "-e", &script]),
        format!("{marker}inside\n")
    );
}

#[test]
fn execl_family_stays_inside() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    // Eight arguments after argv[0]: five in registers, the rest on the caller's stack.
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "execl"]),
        "1 2 3 4 5 6 7 8\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &["deb", "f1probe", "execlp", &format!("echo lp; {INSIDE}")]
        ),
        "lp\ninside\n"
    );
    // execle: the given environment, plus what keeps the child inside.
    assert_eq!(
        run_ok(
            &t,
            &[
                "deb",
                "f1probe",
                "execle",
                &format!("echo $F1VAR; {INSIDE}")
            ]
        ),
        "from-execle\ninside\n"
    );
}

#[test]
fn temp_files_land_in_the_container() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    let out = run_ok(&t, &["deb", "f1probe", "mktemp"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (l, prefix) in lines.iter().zip(["f1s", "f1d", "f1x", "f1o", "f1m"]) {
        let name = l
            .strip_prefix("/var/tmp/")
            .unwrap_or_else(|| panic!("not a guest path: {out}"));
        assert!(
            name.starts_with(prefix) && !name.contains("XXXXXX"),
            "{out}"
        );
    }
    assert!(lines[2].ends_with(".txt"), "{out}");
    let host = |l: &str| root.join(l.trim_start_matches('/'));
    assert_eq!(fs::read_to_string(host(lines[0])).unwrap(), "x\n");
    assert!(host(lines[1]).is_dir(), "{out}");
    assert!(
        host(lines[2]).is_file() && host(lines[3]).is_file(),
        "{out}"
    );
    // mktemp only makes a name; it is free in the container.
    assert!(!host(lines[4]).exists(), "{out}");
    // The guest can use the names it got back.
    assert_eq!(
        sh(
            &t,
            &format!("cat {}; test -d {} && echo dir", lines[0], lines[1])
        ),
        "x\ndir\n"
    );
}

#[test]
fn glob_and_scandir_read_the_container() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    for f in ["etc/f1-ga", "etc/f1-gb"] {
        t.write_file(&root.join(f), b"g\n");
    }
    fs::create_dir(root.join("etc/f1-sd")).unwrap();
    for f in ["etc/f1-sd/x", "etc/f1-sd/y"] {
        t.write_file(&root.join(f), b"s\n");
    }
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "glob", "/etc/f1-g*"]),
        "/etc/f1-ga\n/etc/f1-gb\n/etc/f1-sd/x\n/etc/f1-sd/y\nrc=0\n"
    );
    // `..` in a pattern cannot climb out of the root either.
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "glob", "/../../etc/f1-g?"]),
        "/etc/f1-ga\n/etc/f1-gb\n/etc/f1-sd/x\n/etc/f1-sd/y\nrc=0\n"
    );
    assert_eq!(
        run_ok(&t, &["deb", "f1probe", "scandir", "/etc/f1-sd"]),
        "x\ny\nn=4\n"
    );
}

#[test]
fn nftw_and_ftw_walk_the_container() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    fs::create_dir_all(root.join("etc/f1-walk/sub")).unwrap();
    t.write_file(&root.join("etc/f1-walk/a"), b"a\n");
    t.write_file(&root.join("etc/f1-walk/sub/b"), b"b\n");
    let out = run_ok(&t, &["deb", "f1probe", "nftw", "/etc/f1-walk"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "ftw /etc/f1-walk",
            "ftw /etc/f1-walk/a",
            "ftw /etc/f1-walk/sub",
            "ftw /etc/f1-walk/sub/b",
            "nftw /etc/f1-walk f1-walk 0",
            "nftw /etc/f1-walk/a a 1",
            "nftw /etc/f1-walk/sub sub 1",
            "nftw /etc/f1-walk/sub/b b 2",
            "rc=0",
            "rc=0",
        ],
        "{out}"
    );
    // A relative root walks relative paths, unchanged.
    let out = run_ok(&t, &["-w", "/etc", "deb", "f1probe", "nftw", "f1-walk/sub"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "ftw f1-walk/sub",
            "ftw f1-walk/sub/b",
            "nftw f1-walk/sub sub 0",
            "nftw f1-walk/sub/b b 1",
            "rc=0",
            "rc=0",
        ],
        "{out}"
    );
}

#[test]
fn fts_shows_container_paths() {
    let (t, _, root) = setup();
    install_probe(&t, &root);
    fs::create_dir_all(root.join("etc/f1-fts/sub")).unwrap();
    t.write_file(&root.join("etc/f1-fts/a"), b"a\n");
    t.write_file(&root.join("etc/f1-fts/sub/b"), b"b\n");
    let out = run_ok(&t, &["deb", "f1probe", "fts", "/etc/f1-fts"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "fts0 /etc/f1-fts 11 /etc/f1-fts 0",
            "fts0 /etc/f1-fts/a 13 /etc/f1-fts/a 1",
            "fts0 /etc/f1-fts/sub 15 /etc/f1-fts/sub 1",
            "fts0 /etc/f1-fts/sub/b 17 /etc/f1-fts/sub/b 2",
            "fts1 /etc/f1-fts 11 - 0",
            "fts1 /etc/f1-fts/a 13 - 1",
            "fts1 /etc/f1-fts/sub 15 - 1",
            "fts1 /etc/f1-fts/sub/b 17 - 2",
        ],
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// musl: the same library file in the musl image (test/musl, built by scripts/fixtures.sh with
// Debian's musl-gcc: /bin/sh is tests/probe/msh.c, /usr/bin/mhello needs /usr/lib/libmhello.so.1)

/// The musl image in a container `mus` set to MODE, or None (with the reason printed) when the
/// fixtures have no musl image or musl-gcc is missing.
fn setup_musl(mode: &str) -> Option<(TestEnv, String, PathBuf)> {
    let t = TestEnv::new();
    let Some(img) = t.fx.opt("MUSL_REF") else {
        eprintln!("skipped: no MUSL_REF in fixtures.env (scripts/fixtures.sh up builds it)");
        return None;
    };
    if Command::new("musl-gcc").arg("--version").output().is_err() {
        eprintln!("skipped: musl-gcc is not installed (apt-get install musl-tools)");
        return None;
    }
    t.ud_ok(&["pull", &img]);
    let id = t.ud_ok(&["create", "--name=mus", &img]).trim().to_string();
    let out = t.ud_ok(&["setup", &format!("--execmode={mode}"), "mus"]);
    assert!(out.contains(&format!("execmode: {mode}")), "{out}");
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "mus"]).trim());
    Some((t, id, root))
}

#[test]
fn musl_container_runs_with_the_same_library() {
    let Some((t, id, root)) = setup_musl("F1") else {
        return;
    };
    let marker = format!("musl-marker-{}\n", std::process::id());
    t.write_file(&root.join("etc/f1-marker"), marker.as_bytes());
    assert_eq!(run_ok(&t, &["mus", "cat", "/etc/f1-marker"]), marker);
    assert_eq!(
        run_ok(&t, &["mus", "sh", "-c", "cat /etc/os-release"]),
        fs::read_to_string(root.join("etc/os-release")).unwrap()
    );
    // The loader finds the container's own library (LD_LIBRARY_PATH from the container dirs).
    assert_eq!(run_ok(&t, &["mus", "mhello"]), "hello from libmhello\n");
    assert_eq!(
        run_ok(
            &t,
            &["mus", "sh", "-c", "cd /usr/lib && pwd && ls /usr/lib"]
        ),
        "/usr/lib\nlibmhello.so.1\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &[
                "mus",
                "sh",
                "-c",
                "cd / && cd .. && pwd && cat ../../etc/f1-marker"
            ]
        ),
        format!("/\n{marker}")
    );
    assert_eq!(run_ok(&t, &["-w", "/etc", "mus", "pwd"]), "/etc\n");
    // Programs see their container name, not the loader's (musl's loader takes --argv0).
    assert_eq!(
        run_ok(&t, &["mus", "sh", "-c", "readlink /proc/self/exe; echo $0"]),
        "/bin/msh\n/bin/sh\n"
    );
    let o = run(&t, &["mus", "sh", "-c", "mhello && exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    // A file written in the container lands in ROOT.
    run_ok(&t, &["mus", "sh", "-c", "echo w > /tmp/musl-written"]);
    assert_eq!(
        fs::read_to_string(root.join("tmp/musl-written")).unwrap(),
        "w\n"
    );
    // The library udocker wrote is the one it writes for glibc containers (up to the name of
    // the library that defines dlsym), and its imports pass the same check.
    let so = t.udir.join("containers").join(&id).join("libfakechroot.so");
    // musl has no libc.so.6: the library as built (musl's loader takes libdl.so.2 as itself).
    check_imports(&so, "libdl.so.2");
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    let deb = t.ud_ok(&["create", "--name=deb", &img]).trim().to_string();
    t.ud_ok(&["setup", "--execmode=F1", "deb"]);
    run_ok(&t, &["deb", "true"]);
    let deb_so = t
        .udir
        .join("containers")
        .join(&deb)
        .join("libfakechroot.so");
    let (a, b) = (fs::read(&so).unwrap(), fs::read(&deb_so).unwrap());
    assert_eq!(a.len(), b.len(), "library sizes differ");
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    let at = a
        .windows(12)
        .position(|w| w == b"\0libdl.so.2\0")
        .expect("libdl.so.2 named in the musl container's library");
    assert!(
        differ.iter().all(|&i| i > at && i < at + 12) && &b[at..at + 12] == b"\0libc.so.6\0\0",
        "the two libraries differ at {differ:?}, not only in the needed name at {at}"
    );
}

#[test]
fn musl_libc_calls_stay_inside() {
    let Some((t, _, root)) = setup_musl("F1") else {
        return;
    };
    install_probe_with(&t, &root, "musl-gcc");
    let marker = format!("musl-sys-{}\n", std::process::id());
    t.write_file(&root.join("etc/f1-marker"), marker.as_bytes());
    let base = fs::canonicalize(&root).unwrap();
    // The shell that system() and popen() start is the container's (msh through musl's loader
    // under ROOT): its own maps show the loader mapped from ROOT.
    let maps = run_ok(
        &t,
        &[
            "mus",
            "f1probe",
            "system",
            "cat /etc/f1-marker /proc/self/maps; exit 3",
        ],
    );
    assert!(maps.starts_with(&marker), "{maps}");
    assert!(maps.ends_with("rc=3\n"), "{maps}");
    assert!(
        maps.contains(&format!("{}/lib/ld-musl-x86_64.so.1", base.display())),
        "{maps}"
    );
    assert_eq!(
        run_ok(
            &t,
            &["mus", "f1probe", "popen", "cat /etc/f1-marker; exit 3"]
        ),
        format!("{marker}rc=3\nto-cat\nrc=0\n")
    );
    assert_eq!(
        run_ok(&t, &["mus", "f1probe", "execl"]),
        "1 2 3 4 5 6 7 8\n"
    );
    assert_eq!(
        run_ok(&t, &["mus", "f1probe", "execlp", "cat /etc/f1-marker"]),
        marker
    );
    assert_eq!(
        run_ok(&t, &["mus", "f1probe", "execle", "echo $F1VAR"]),
        "from-execle\n"
    );
    let out = run_ok(&t, &["mus", "f1probe", "mktemp"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("/var/tmp/f1")), "{out}");
    assert_eq!(
        fs::read_to_string(root.join(&lines[0][1..])).unwrap(),
        "x\n"
    );
    assert!(root.join(&lines[1][1..]).is_dir(), "{out}");
    for f in ["etc/f1-ga", "etc/f1-gb", "etc/f1-sd/x", "etc/f1-sd/y"] {
        fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        t.write_file(&root.join(f), b"g\n");
    }
    assert_eq!(
        run_ok(&t, &["mus", "f1probe", "glob", "/../../etc/f1-g?"]),
        "/etc/f1-ga\n/etc/f1-gb\n/etc/f1-sd/x\n/etc/f1-sd/y\nrc=0\n"
    );
    assert_eq!(
        run_ok(&t, &["mus", "f1probe", "scandir", "/etc/f1-sd"]),
        "x\ny\nn=4\n"
    );
    let out = run_ok(&t, &["mus", "f1probe", "nftw", "/etc/f1-sd"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "ftw /etc/f1-sd",
            "ftw /etc/f1-sd/x",
            "ftw /etc/f1-sd/y",
            "nftw /etc/f1-sd f1-sd 0",
            "nftw /etc/f1-sd/x x 1",
            "nftw /etc/f1-sd/y y 1",
            "rc=0",
            "rc=0",
        ],
        "{out}"
    );
}

#[test]
fn musl_container_runs_in_p1_too() {
    let Some((t, _, root)) = setup_musl("P1") else {
        return;
    };
    let marker = format!("musl-p1-{}\n", std::process::id());
    t.write_file(&root.join("etc/p1-marker"), marker.as_bytes());
    assert_eq!(
        run_ok(
            &t,
            &[
                "mus",
                "sh",
                "-c",
                "cat /etc/p1-marker; mhello; cd /usr/lib && pwd; readlink /proc/self/exe"
            ]
        ),
        format!("{marker}hello from libmhello\n/usr/lib\n/bin/msh\n")
    );
}

// ---------------------------------------------------------------------------------------------
// F2: the container's loader patched by loader-patcher (spec/elf-fakechroot.md §7)

/// `setup --execmode=F2 NAME`: its stderr (what the patcher said), asserting success.
fn setup_f2(t: &TestEnv, name: &str) -> String {
    let o = t.ud(&["setup", "--execmode=F2", name]);
    assert!(o.status.success(), "setup F2 failed\n{}", show(&o));
    assert!(stdout(&o).contains("execmode: F2"), "{}", show(&o));
    stderr(&o)
}

/// The host path of the loader file in ROOT (glibc's or musl's, links followed in ROOT).
fn loader_file(root: &Path) -> PathBuf {
    for g in [
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib64/ld-linux-x86-64.so.2",
        "lib/ld-musl-x86_64.so.1",
    ] {
        let p = root.join(g);
        if let Ok(t) = fs::read_link(&p) {
            let t = t.to_string_lossy().into_owned();
            let base = fs::canonicalize(root).unwrap();
            let t = t
                .strip_prefix(&*base.to_string_lossy())
                .unwrap_or(&t)
                .to_string();
            let next = if t.starts_with('/') {
                root.join(t.trim_start_matches('/'))
            } else {
                p.parent().unwrap().join(t)
            };
            if next.is_file() && fs::symlink_metadata(&next).unwrap().is_file() {
                return next;
            }
        } else if p.is_file() {
            return p;
        }
    }
    panic!("no loader in {}", root.display());
}

/// Patched on F2, the pristine loader kept, restored byte for byte on leaving F2.
fn f2_round_trip(t: &TestEnv, name: &str, id: &str, root: &Path, probe: &[&str], want: &str) {
    let ld = loader_file(root);
    let orig = fs::read(&ld).unwrap();
    let said = setup_f2(t, name);
    assert!(said.contains("patched"), "{said}");
    let backup = t.udir.join("containers").join(id).join("ld.so.orig");
    assert_eq!(
        fs::read(&backup).unwrap(),
        orig,
        "ld.so.orig is not the pristine loader"
    );
    let patched = fs::read(&ld).unwrap();
    assert_eq!(patched.len(), orig.len());
    assert_ne!(patched, orig, "the loader was not patched");
    let mut args = vec![name];
    args.extend_from_slice(probe);
    assert_eq!(run_ok(t, &args), want);
    // The environment F2 adds for the shim and the patched loader.
    let env = run_ok(
        t,
        &[
            name,
            "sh",
            "-c",
            "echo $LD_LIBRARY_REAL; echo $FAKECHROOT_LIBRARY_ORIG",
        ],
    );
    let l: Vec<&str> = env.lines().collect();
    assert!(
        l.len() == 2 && l[0] == l[1] && l[0].contains("/ROOT/"),
        "{env}"
    );
    // Setting F2 again patches from ld.so.orig: the same bytes.
    setup_f2(t, name);
    assert_eq!(fs::read(&ld).unwrap(), patched);
    let o = t.ud(&["setup", "--execmode=F1", name]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(fs::read(&ld).unwrap(), orig, "not restored byte for byte");
    assert!(!backup.exists());
    assert_eq!(run_ok(t, &args), want);
}

#[test]
fn f2_bookworm_patches_and_restores_the_loader() {
    let (t, id, root) = setup();
    f2_round_trip(
        &t,
        "deb",
        &id,
        &root,
        &[
            "sh",
            "-c",
            "cat /etc/debian_version; perl -e 'print qq(perl\\n)'; cd /usr/lib && pwd",
        ],
        &format!(
            "{}perl\n/usr/lib\n",
            fs::read_to_string(root.join("etc/debian_version")).unwrap()
        ),
    );
    // A program that sets its own library path for a child: the shim turns it into host
    // paths and puts the container's directories after it, so the child still finds the
    // container's libc (the loader reads LD_LIBRARY_PATH itself, untranslated). In F2 too,
    // where glibc's loader has no host fallback left.
    for mode in ["F1", "F2"] {
        if mode == "F2" {
            setup_f2(&t, "deb");
        }
        assert_eq!(
            run_ok(
                &t,
                &[
                    "deb",
                    "sh",
                    "-c",
                    "LD_LIBRARY_PATH=/nowhere:/usr/local/lib /bin/true && LD_LIBRARY_PATH=/opt/l cat /proc/self/maps | grep -m1 libc.so | grep -q \"$FAKECHROOT_BASE\" && echo ok"
                ]
            ),
            "ok\n",
            "{mode}"
        );
    }
}

#[test]
fn f2_musl_reads_ld_library_real() {
    let Some((t, id, root)) = setup_musl("F1") else {
        return;
    };
    let said = setup_f2(&t, "mus");
    // musl's loader reads the renamed variable (glibc's compares the name in code).
    assert!(said.contains("it reads LD_LIBRARY_REAL"), "{said}");
    // A program that points LD_LIBRARY_PATH elsewhere still gets the container's libraries.
    assert_eq!(
        run_ok(
            &t,
            &["mus", "sh", "-c", "export LD_LIBRARY_PATH=/nowhere; mhello"]
        ),
        "hello from libmhello\n"
    );
    // libc's own data (it is the loader) is untouched: only three strings changed.
    let ld = loader_file(&root);
    let b = fs::read(&ld).unwrap();
    assert!(b.windows(20).any(|w| w == b"/usr/share/zoneinfo/"));
    t.ud_ok(&["setup", "--execmode=F1", "mus"]);
    f2_round_trip(&t, "mus", &id, &root, &["mhello"], "hello from libmhello\n");
}

/// A container made from the fixture rootfs SUITE (`import --tocontainer` of a tar of it).
fn rootfs_container(t: &TestEnv, suite: &str) -> Option<(String, PathBuf)> {
    let Some(dir) = t.fx.opt(&format!("ROOTFS_{}", suite.to_uppercase())) else {
        eprintln!(
            "skipped: no ROOTFS_{} in fixtures.env",
            suite.to_uppercase()
        );
        return None;
    };
    let tar = t.home.join(format!("{suite}.tar"));
    let o = Command::new("tar")
        .args(["-C", &dir, "-cf"])
        .arg(&tar)
        .args([
            "--exclude=./usr/share/doc",
            "--exclude=./usr/share/locale",
            "--exclude=./var/cache",
            ".",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    // The tar is root's; udocker runs as the test user.
    fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let id = t
        .ud_ok(&[
            "import",
            "--tocontainer",
            &format!("--name={suite}"),
            &tar.to_string_lossy(),
        ])
        .trim()
        .to_string();
    let _ = fs::remove_file(&tar);
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", suite]).trim());
    Some((id, root))
}

fn f2_suite(suite: &str, version_prefix: &str, needed: &str) {
    let t = TestEnv::new();
    let Some((id, root)) = rootfs_container(&t, suite) else {
        return;
    };
    let v = fs::read_to_string(root.join("etc/debian_version")).unwrap();
    assert!(v.starts_with(version_prefix), "{suite}: {v}");
    f2_round_trip(
        &t,
        suite,
        &id,
        &root,
        &["bash", "-c", "cat /etc/debian_version; ls /usr/lib/os-release; cd /etc && /bin/pwd; dpkg-query -W -f='${Package}\\n' bash"],
        &format!("{v}/usr/lib/os-release\n/etc\nbash\n"),
    );
    // The library written for it names the libc that has dlsym (glibc >= 2.34) or libdl.
    let so = t.udir.join("containers").join(&id).join("libfakechroot.so");
    let dynamic = tool("readelf", &["-d"], &so);
    assert!(
        dynamic.contains(&format!("[{needed}]")),
        "{suite}:\n{dynamic}"
    );
}

#[test]
fn f2_bullseye_glibc_2_31() {
    f2_suite("bullseye", "11.", "libdl.so.2");
}

#[test]
fn f2_trixie_glibc_2_41() {
    f2_suite("trixie", "13", "libc.so.6");
}

// ---------------------------------------------------------------------------------------------
// F3/F4: every ELF of the container re-rooted under ROOT
// ---------------------------------------------------------------------------------------------

fn interp(p: &Path) -> String {
    tool("patchelf", &["--print-interpreter"], p)
        .trim()
        .to_string()
}

/// Real programs in F3: no loader on any command line (the kernel starts the re-rooted
/// program with the container's loader), libraries from the container.
fn f3_programs_run(t: &TestEnv, name: &str, root: &Path) {
    let out = run_ok(
        t,
        &[
            name,
            "bash",
            "-c",
            "tr '\\0' ' ' < /proc/$$/cmdline; echo; grep -c \"$FAKECHROOT_BASE\" /proc/$$/maps >/dev/null && echo maps-inside; \
             perl -e 'print qq(perl ok\\n)'; dpkg-query -W -f='${Package}\\n' bash; ls /etc/debian_version; echo ${FAKECHROOT_ELFLOADER:-no-elfloader}",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("bash -c") && !lines[0].contains("ld-linux"),
        "{out}"
    );
    assert_eq!(
        &lines[1..],
        &[
            "maps-inside",
            "perl ok",
            "bash",
            "/etc/debian_version",
            "no-elfloader"
        ],
        "{out}"
    );
    let real = fs::canonicalize(root).unwrap();
    let i = interp(&root.join("bin/bash"));
    assert!(
        i.starts_with(&format!("{}//", real.display())) && i.contains("ld-linux-x86-64.so.2"),
        "{i}"
    );
}

#[test]
fn f3_f4_bookworm_patch_run_new_programs_and_restore() {
    let (t, _id, root) = setup();
    let bash = root.join("bin/bash");
    let before = interp(&bash);
    let out = t.ud_ok(&["setup", "--execmode=F3", "deb"]);
    assert!(out.contains("execmode: F3"), "{out}");
    f3_programs_run(&t, "deb", &root);
    // Scripts and static programs are left alone; a second setup changes nothing.
    let after = fs::read(&bash).unwrap();
    t.ud_ok(&["setup", "--execmode=F3", "deb"]);
    assert!(
        fs::read(&bash).unwrap() == after,
        "a second F3 setup rewrote bash"
    );

    // F4: programs that appear after setup are re-rooted before their first run, both when
    // udocker starts them and when a container program execs them (the shim).
    t.ud_ok(&["setup", "--execmode=F4", "deb"]);
    let src = t.home.join("hello.c");
    fs::write(
        &src,
        "#include <stdio.h>\nint main(int c, char **v) { printf(\"hello %s\\n\", v[0]); return 0; }\n",
    )
    .unwrap();
    for n in ["h1", "h2"] {
        let exe = root.join("usr/local/bin").join(n);
        let o = Command::new("gcc")
            .arg("-O2")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        if let Some((u, g)) = t.user {
            chown(&exe, u, g);
        }
        assert_eq!(interp(&exe), "/lib64/ld-linux-x86-64.so.2");
    }
    assert_eq!(
        run_ok(&t, &["deb", "/usr/local/bin/h1"]),
        "hello /usr/local/bin/h1\n"
    );
    assert_eq!(
        run_ok(&t, &["deb", "sh", "-c", "h2 && /usr/local/bin/h2"]),
        "hello h2\nhello /usr/local/bin/h2\n"
    );
    let real = fs::canonicalize(&root).unwrap();
    for n in ["h1", "h2"] {
        let i = interp(&root.join("usr/local/bin").join(n));
        assert!(i.starts_with(&format!("{}//", real.display())), "{n}: {i}");
    }

    // A clone is re-rooted by itself (its links and programs name its own ROOT), and works
    // without the original.
    let cid = t.ud_ok(&["clone", "--name=deb2", "deb"]).trim().to_string();
    let croot = PathBuf::from(t.ud_ok(&["inspect", "-p", "deb2"]).trim());
    let creal = fs::canonicalize(&croot).unwrap();
    let i = interp(&croot.join("bin/bash"));
    assert!(i.starts_with(&format!("{}//", creal.display())), "{i}");
    let l = fs::read_link(croot.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert!(l.starts_with(&creal), "{}", l.display());
    fs::rename(&root, root.with_file_name("ROOT.away")).unwrap();
    assert_eq!(
        run_ok(
            &t,
            &["deb2", "sh", "-c", "h2; perl -e 'print qq(perl ok\\n)'"]
        ),
        "hello h2\nperl ok\n"
    );
    fs::rename(root.with_file_name("ROOT.away"), &root).unwrap();
    t.ud_ok(&["rm", &cid]);

    // Back to P1: every program names its own loader again (the strings as they were; a file
    // that had to grow keeps its new layout, as with upstream's patcher).
    t.ud_ok(&["setup", "--execmode=P1", "deb"]);
    assert_eq!(interp(&bash), before, "bash restored");
    assert_eq!(
        interp(&root.join("usr/local/bin/h2")),
        "/lib64/ld-linux-x86-64.so.2"
    );
    assert_eq!(
        run_ok(&t, &["deb", "sh", "-c", "id -u; h2"]),
        "0\nhello h2\n"
    );
}

fn f3_suite(suite: &str) {
    let t = TestEnv::new();
    let Some((_id, root)) = rootfs_container(&t, suite) else {
        return;
    };
    t.ud_ok(&["setup", "--execmode=F3", suite]);
    f3_programs_run(&t, suite, &root);
}

#[test]
fn f3_bullseye_glibc_2_31() {
    f3_suite("bullseye");
}

#[test]
fn f3_trixie_glibc_2_41() {
    f3_suite("trixie");
}

/// Issue 7's F4 scenario end to end: gcc installed with apt-get in P1 (fake root, from Debian's
/// mirror; skipped when the mirror cannot be reached), the container set to F4, a program
/// compiled inside by that gcc and run at once: re-rooted before its first exec.
#[test]
fn f4_runs_a_program_compiled_inside_with_gcc() {
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    t.ud_ok(&["create", "--name=cc", &img]);
    let o = run(
        &t,
        &[
            "-e",
            "DEBIAN_FRONTEND=noninteractive",
            "cc",
            "/bin/sh",
            "-c",
            "apt-get update -q >/dev/null 2>&1 || exit 42; \
             apt-get install -y -q --no-install-recommends gcc libc6-dev >/dev/null && gcc --version | head -1",
        ],
    );
    if o.status.code() == Some(42) {
        eprintln!("SKIP f4_runs_a_program_compiled_inside_with_gcc: apt-get update failed (no Debian mirror reachable)");
        return;
    }
    assert!(
        o.status.success(),
        "apt-get install gcc in P1:\n{}",
        show(&o)
    );
    assert!(stdout(&o).contains("gcc"), "{}", show(&o));
    let out = t.ud_ok(&["setup", "--execmode=F4", "cc"]);
    assert!(out.contains("execmode: F4"), "{out}");
    assert_eq!(
        run_ok(
            &t,
            &[
                "cc",
                "/bin/sh",
                "-c",
                "cd /tmp && printf '#include <stdio.h>\\nint main(void){puts(\"built inside\");return 0;}\\n' > h.c \
                 && gcc -o /usr/local/bin/hin h.c && hin && /usr/local/bin/hin",
            ],
        ),
        "built inside\nbuilt inside\n"
    );
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "cc"]).trim());
    let real = fs::canonicalize(&root).unwrap();
    let i = interp(&root.join("usr/local/bin/hin"));
    assert!(i.starts_with(&format!("{}//", real.display())), "{i}");
}

// ---------------------------------------------------------------------------------------------
// The differential probe through libc (issue 6 item 7)
// ---------------------------------------------------------------------------------------------

/// `tests/probe/probe.c` built with `-DPROBE_LIBC` (dynamic, against the host's glibc 2.36 =
/// bookworm's), cached by content in the target dir.
fn libc_probe() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/probe.c");
    let text = fs::read(&src).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("f-probes");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("probe-libc-{}", &sha256_hex(&text)[..16]));
    if !out.is_file() {
        let tmp = dir.join(format!("probe-libc.tmp.{}", std::process::id()));
        let o = Command::new("cc")
            .args(["-O2", "-Wall", "-DPROBE_LIBC", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("running cc");
        assert!(o.status.success(), "cc -DPROBE_LIBC failed\n{}", show(&o));
        fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// The same probe program as the tracer's differential tests, every call through libc, gives
/// the kernel's answers (chroot) in F1, F2, F3 and F4: the shim's translation seen from a
/// program (in F3/F4 the probe itself is re-rooted by setup, and runs without the loader on
/// its command line).
#[test]
fn libc_probe_f_modes_match_chroot() {
    if !is_root() {
        eprintln!("SKIP libc_probe_f_modes_match_chroot: needs root (the chroot reference)");
        return;
    }
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    t.ud_ok(&["create", "--name=deb", &img]);
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "deb"]).trim());
    let (u, g) = Fixtures::load().uid_gid();
    let probe = root.join("probe");
    fs::copy(libc_probe(), &probe).unwrap();
    fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fresh_w = |r: &Path| {
        let w = r.join("w");
        let _ = fs::remove_dir_all(&w);
        fs::create_dir(&w).unwrap();
        chown(&w, u, g);
    };
    fresh_w(&root);
    // The reference is a copy of the tree before any F-mode setup touched it.
    let refd = tempfile::tempdir().unwrap();
    let reference = refd.path().join("ref");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let want = chroot_run(&reference, &[], &["/probe", "/w"]);
    assert!(
        want.status.success() && stdout(&want).contains("== done"),
        "the probe must complete under chroot:\n{}",
        show(&want)
    );
    for mode in ["F1", "F2", "F3", "F4"] {
        fresh_w(&root);
        t.ud_ok(&["setup", &format!("--execmode={mode}"), "deb"]);
        let got = run(&t, &["-w", "/", "deb", "/probe", "/w"]);
        let (a, mut b) = (transcript(&want), transcript(&got));
        // F3/F4 re-root every ELF of the container, the probe included, which may change its
        // size: the probe's own size is the one thing that differs by design.
        let (orig, now) = (
            fs::metadata(reference.join("probe")).unwrap().len(),
            fs::metadata(&probe).unwrap().len(),
        );
        if orig != now {
            b = b.replace(&format!(" size={now} "), &format!(" size={orig} "));
            b = b.replace(&format!(" size={now}\n"), &format!(" size={orig}\n"));
        }
        if a != b {
            let d = tempfile::tempdir().unwrap();
            fs::write(d.path().join("chroot"), &a).unwrap();
            fs::write(d.path().join(mode), &b).unwrap();
            let diff = Command::new("diff")
                .arg("-u")
                .arg(d.path().join("chroot"))
                .arg(d.path().join(mode))
                .output()
                .unwrap();
            panic!(
                "probe through libc in {mode} differs from chroot (- chroot, + {mode}):\n{}",
                stdout(&diff)
            );
        }
    }
}
