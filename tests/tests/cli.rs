//! Command-line grammar, help, version, configuration, repositories, root refusal.

use e2e::{is_root, show, stderr, stdout, udocker_bin, TestEnv};
use std::process::Command;

#[test]
fn no_arguments_prints_help() {
    let t = TestEnv::new();
    let out = t.ud_ok(&[]);
    assert!(
        out.contains("Syntax:") && out.contains("pull"),
        "expected the help text (Syntax:, the command list) on stdout, got:\n{out}"
    );
}

#[test]
fn help_and_version_forms() {
    let t = TestEnv::new();
    for args in [&["help"][..], &["-h"], &["--help"]] {
        let out = t.ud_ok(args);
        assert!(
            out.contains("Commands:") && out.contains("images"),
            "expected `udocker {}` to print the command list, got:\n{out}",
            args.join(" ")
        );
    }
    for args in [
        &["version"][..],
        &["-V"],
        &["--version"],
        &["-q", "version"],
        &["-D", "version"],
    ] {
        let out = t.ud_ok(args);
        assert!(
            out.contains("version:"),
            "expected `udocker {}` to print `version: ...`, got:\n{out}",
            args.join(" ")
        );
    }
}

#[test]
fn showconf_reports_topdir() {
    let t = TestEnv::new();
    let out = t.ud_ok(&["showconf"]);
    let want = format!("topdir = {}", t.udir.display());
    assert!(
        out.lines().any(|l| l.trim() == want),
        "expected showconf to contain the line `{want}`, got:\n{out}"
    );
}

#[test]
fn unknown_command_is_an_error() {
    let t = TestEnv::new();
    let o = t.ud(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(1), "expected rc 1\n{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("invalid command") && err.contains("frobnicate"),
        "expected `invalid command: frobnicate` on stderr, got:\n{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("Error: ")),
        "expected an `Error: ...` line, got:\n{err}"
    );
    assert!(
        stdout(&o).is_empty(),
        "expected nothing on stdout, got:\n{}",
        stdout(&o)
    );
}

#[test]
fn unknown_option_is_a_syntax_error() {
    let t = TestEnv::new();
    for args in [
        &["images", "--bogus"][..],
        &["--bogus", "images"],
        &["pull", "-Z", "x"],
    ] {
        let o = t.ud(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "expected rc 1 for `udocker {}`\n{}",
            args.join(" "),
            show(&o)
        );
        assert!(
            stderr(&o).contains("syntax error"),
            "expected `syntax error` for `udocker {}`, got:\n{}",
            args.join(" "),
            stderr(&o)
        );
    }
}

#[test]
fn command_help() {
    let t = TestEnv::new();
    for cmd in [
        "pull", "images", "rmi", "tag", "verify", "search", "login", "logout", "manifest",
    ] {
        let out = t.ud_ok(&[cmd, "--help"]);
        assert!(
            out.contains("usage") || out.contains(cmd),
            "expected `udocker {cmd} --help` to describe {cmd}, got:\n{out}"
        );
    }
    let out = t.ud_ok(&["pull", "--help"]);
    assert!(
        out.contains("--platform"),
        "expected pull --help to list --platform, got:\n{out}"
    );
}

#[test]
fn option_value_forms() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let img = format!("{reg}/test/multiarch:latest");
    t.ud_ok(&["pull", "--platform", "linux/arm64", &img]);
    let out = t.ud_ok(&["images", "-p"]);
    assert!(
        out.contains("linux/arm64"),
        "expected `pull --platform linux/arm64` (space form) to pull arm64, images -p:\n{out}"
    );
    t.ud_ok(&["rmi", &img]);
    t.ud_ok(&["pull", "--platform=linux/arm64", &img]);
    let out = t.ud_ok(&["images", "-p"]);
    assert!(
        out.contains("linux/arm64"),
        "expected `pull --platform=linux/arm64` (= form) to pull arm64, images -p:\n{out}"
    );
    t.assert_repo_consistent();
}

#[test]
fn repo_option_must_exist() {
    let t = TestEnv::new();
    let err = t.ud_fail(&["--repo=/nonexistent/udocker-repo", "images"]);
    assert!(
        err.contains("Error:"),
        "expected an Error: line for a missing --repo, got:\n{err}"
    );
    assert!(
        !t.udir.exists(),
        "expected --repo=/nonexistent not to create the default repository"
    );
}

#[test]
fn mkrepo_then_use_it() {
    let t = TestEnv::new();
    let dir = t.home.join("altrepo");
    let d = dir.to_str().expect("utf8");
    t.ud_ok(&["mkrepo", d]);
    assert!(
        dir.join("repos").is_dir() && dir.join("layers").is_dir(),
        "expected mkrepo to create repos/ and layers/ in {d}"
    );
    let reg = t.fx.registry();
    let img = format!("{reg}/library/busybox:latest");
    let repo_opt = format!("--repo={d}");
    t.ud_ok(&[&repo_opt, "pull", &img]);
    assert!(
        dir.join("repos")
            .join(format!("{reg}/library/busybox/latest/TAG"))
            .is_file(),
        "expected the image under {d}/repos"
    );
    assert!(
        !t.udir.join("repos").join(&reg).exists(),
        "expected nothing pulled into the default repository"
    );
    let out = t.ud_ok(&["--repo", d, "images"]);
    assert!(
        out.contains(&format!("{reg}/library/busybox:latest")),
        "expected images in --repo to list busybox, got:\n{out}"
    );
    let out = t.ud_ok(&[&repo_opt, "verify", &img]);
    assert!(out.contains("ok"), "expected verify ok, got:\n{out}");
    // mkrepo on an existing directory fails.
    let err = t.ud_fail(&["mkrepo", d]);
    assert!(
        err.contains("Error:"),
        "expected an Error: for mkrepo on an existing dir, got:\n{err}"
    );
}

#[test]
fn root_is_refused_without_allow_root() {
    if !is_root() {
        eprintln!("not root: root refusal cannot be tested");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        Command::new(udocker_bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", tmp.path())
            .env("UDOCKER_DIR", tmp.path().join(".udocker"))
            .output()
            .expect("run udocker")
    };
    let o = run(&["images"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 as root\n{}",
        show(&o)
    );
    assert!(
        stderr(&o).contains("do not run as root"),
        "expected `do not run as root`, got:\n{}",
        stderr(&o)
    );
    assert!(
        !tmp.path().join(".udocker").exists(),
        "expected no repository created by a refused root run"
    );
    let o = run(&["--allow-root", "version"]);
    assert!(
        o.status.success() && stdout(&o).contains("version:"),
        "expected `--allow-root version` to work as root\n{}",
        show(&o)
    );
    let o = run(&["--allow-root", "showconf"]);
    assert!(
        o.status.success(),
        "expected `--allow-root showconf` to work as root\n{}",
        show(&o)
    );
}

#[test]
fn config_file_and_environment() {
    let t = TestEnv::new();
    let conf = t.home.join("my.conf");
    t.write_file(
        &conf,
        b"[DEFAULT]\ntimeout = 17\nverbose_level = 2\nretries = 7\n",
    );
    let copt = format!("--config={}", conf.display());
    let out = t.ud_ok(&[&copt, "showconf"]);
    for want in ["timeout = 17", "verbose_level = 2", "retries = 7"] {
        assert!(
            out.lines().any(|l| l.trim() == want),
            "expected showconf with --config to show `{want}`, got:\n{out}"
        );
    }
    let o = t.ud_env(
        &[
            ("UDOCKER_REGISTRY", "http://127.0.0.1:5999"),
            ("UDOCKER_LOGLEVEL", "1"),
            ("UDOCKER_KEYSTORE", "/tmp/e2e-ks-elsewhere"),
        ],
        &["showconf"],
    );
    assert!(o.status.success(), "showconf with env\n{}", show(&o));
    let out = stdout(&o);
    for want in [
        "registry = http://127.0.0.1:5999",
        "verbose_level = 1",
        "keystore = /tmp/e2e-ks-elsewhere",
    ] {
        assert!(
            out.lines().any(|l| l.trim() == want),
            "expected showconf with UDOCKER_* set to show `{want}`, got:\n{out}"
        );
    }
    // A missing --config file is an error.
    let err = t.ud_fail(&["--config=/nonexistent/u.conf", "showconf"]);
    assert!(
        err.contains("Error:"),
        "expected an error for a missing config file, got:\n{err}"
    );
}

#[test]
fn quiet_suppresses_info() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let img = format!("{reg}/library/busybox:latest");
    let o = t.ud(&["-q", "pull", &img]);
    assert!(o.status.success(), "pull -q\n{}", show(&o));
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected `-q pull` to pull the image: {:?}",
        t.tag_dirs()
    );
    assert!(
        !stderr(&o).contains("Info:"),
        "expected -q to suppress Info: lines, got:\n{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).trim().is_empty(),
        "expected pull to print nothing on stdout, got:\n{}",
        stdout(&o)
    );
}

#[test]
fn install_has_nothing_to_do() {
    let t = TestEnv::new();
    let o = t.ud(&["install"]);
    assert!(o.status.success(), "expected install rc 0\n{}", show(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o)).to_lowercase();
    assert!(
        all.contains("nothing to"),
        "expected install to say there is nothing to install, got:\n{all}"
    );
}

#[test]
fn later_commands_are_not_invalid() {
    let t = TestEnv::new();
    let err = t.ud_fail(&["run", "busybox"]);
    assert!(
        !err.contains("invalid command"),
        "expected `run` to be a known (not yet available) command, got:\n{err}"
    );
}

/// An argument that is not UTF-8 gets one line and status 2, not a panic, whatever the front end
/// (udocker, or the binary called as patchelf).
#[test]
fn non_utf8_argument_is_refused_in_one_line() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestEnv::new();
    let mut c = t.cmd(&["inspect"]);
    c.arg(std::ffi::OsStr::from_bytes(b"bad\xffname"));
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("Error: argument is not valid UTF-8"),
        "{err}"
    );
}
