//! udocker-rs: run Docker/OCI containers as an ordinary user. See README.md.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(udocker::cli::main(argv))
}
