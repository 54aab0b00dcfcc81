//! udocker-rs: run Docker/OCI containers as an ordinary user, with no daemon and no root.
//! The binary (`main.rs`) is a thin shell over these modules; `cli` is the only one that prints
//! results or chooses exit codes.

pub mod archive;
pub mod cli;
pub mod config;
pub mod container;
pub mod digest;
pub mod engine;
pub mod fsutil;
pub mod msg;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod repo;
pub mod unpack;
