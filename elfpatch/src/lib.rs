//! `elfpatch`: a patchelf-compatible ELF patcher (modes F3/F4). Lands with its own issue.
#![forbid(unsafe_code)]
