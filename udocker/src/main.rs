//! udocker-rs: run Docker/OCI containers as an ordinary user. See README.md.

use std::process::ExitCode;

fn main() -> ExitCode {
    // std::env::args() panics on an argument that is not UTF-8: refuse it in one line instead
    // (every front end here takes its arguments as text).
    let mut all = Vec::new();
    for a in std::env::args_os() {
        match a.into_string() {
            Ok(s) => all.push(s),
            Err(bad) => {
                eprintln!(
                    "Error: argument is not valid UTF-8: {}",
                    bad.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let mut all = all.into_iter();
    let argv0 = all.next().unwrap_or_default();
    let argv: Vec<String> = all.collect();
    // Called as `proot` (a symlink to this binary): PRoot's command line.
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "proot")
    {
        return ExitCode::from(udocker::cli::proot::main(&argv));
    }
    // Called as `patchelf` (a symlink to this binary): patchelf's command line (issue 7).
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "patchelf")
    {
        return ExitCode::from(elfpatch::cli::main(&argv));
    }
    ExitCode::from(udocker::cli::main(argv))
}
