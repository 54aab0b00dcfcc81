//! `loader-patcher`: patches a container's `ld.so` for modes F2–F4. Lands with its own issue.
#![forbid(unsafe_code)]
