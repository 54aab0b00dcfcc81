//! `preload`: the LD_PRELOAD fakechroot shim (modes F1–F4). Lands with its own issue; it will be a
//! `no_std` cdylib whose only versioned import is `dlsym`.
#![no_std]
#![forbid(unsafe_code)]
