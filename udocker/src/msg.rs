//! Output with upstream's verbosity levels (`spec/udocker.md` §0): ERR 0, MSG 1, WAR 2, INF 3
//! (default), VER 4, DBG 5. `-q` sets 1, `-D` sets 5, `UDOCKER_LOGLEVEL` sets any.
//! Only the `udocker` crate prints; library crates return errors.

use std::sync::atomic::{AtomicU8, Ordering};

pub const ERR: u8 = 0;
pub const MSG: u8 = 1;
pub const WAR: u8 = 2;
pub const INF: u8 = 3;
pub const VER: u8 = 4;
pub const DBG: u8 = 5;

static LEVEL: AtomicU8 = AtomicU8::new(INF);

pub fn set_level(l: u8) {
    LEVEL.store(l.min(DBG), Ordering::Relaxed);
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

pub fn enabled(l: u8) -> bool {
    l <= level()
}

/// Errors go to stderr whatever the level.
#[macro_export]
macro_rules! error {
    ($($a:tt)*) => { eprintln!("Error: {}", format_args!($($a)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($a:tt)*) => { if $crate::msg::enabled($crate::msg::WAR) { eprintln!("Warning: {}", format_args!($($a)*)) } };
}

/// Informational lines go to stderr so that stdout carries only a command's answer (an id, a
/// listing): `CONT_ID=$(udocker create IMG)` works without `-q`, unlike upstream.
#[macro_export]
macro_rules! info {
    ($($a:tt)*) => { if $crate::msg::enabled($crate::msg::INF) { eprintln!("Info: {}", format_args!($($a)*)) } };
}

#[macro_export]
macro_rules! debug {
    ($($a:tt)*) => { if $crate::msg::enabled($crate::msg::DBG) { eprintln!("Debug: {}", format_args!($($a)*)) } };
}
