//! `setup --nvidia`: copy the host's NVIDIA driver libraries, configuration files and tools into a
//! container, as udocker 1.3 does (`spec/udocker.md` §6), so CUDA programs in the container find
//! a driver that matches the host's kernel module. Symlinks are recreated as they are (relative
//! targets stay relative: upstream's PR #438 bug), files are copied with u+rw(x) kept.
//! The host root is a parameter so tests can give a driver-like tree of their own.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Library name prefixes copied (upstream's `nvi_lib_list`).
const LIBS: &[&str] = &[
    "libOpenCL.",
    "libcuda.",
    "libnvcuvid.",
    "libnvidia-cfg.",
    "libnvidia-compiler.",
    "libnvidia-encode.",
    "libnvidia-fatbinaryloader.",
    "libnvidia-fbc.",
    "libnvidia-ifr.",
    "libnvidia-ml.",
    "libnvidia-opencl.",
    "libnvidia-ptxjitcompiler.",
    "libnvidia-tls.",
    "libnvidia-nvvm.",
    "libnvidia-gpucomp.",
];

const FILES: &[&str] = &[
    "etc/vulkan/icd.d/nvidia_icd.json",
    "etc/OpenCL/vendors/nvidia.icd",
];

const TOOLS: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
    "nvidia-settings",
    "nvidia-xconfig",
    "nvidia-installer",
    "nvidia-uninstall",
    "nvidia-bug-report.sh",
];

#[derive(Debug)]
pub enum NvidiaError {
    NoDriver,
    AlreadyThere(PathBuf),
    Io(PathBuf, io::Error),
}

impl fmt::Display for NvidiaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvidiaError::NoDriver => write!(
                f,
                "no NVIDIA driver libraries found on this host (libcuda.so, libnvidia-cfg.so)"
            ),
            NvidiaError::AlreadyThere(p) => write!(
                f,
                "NVIDIA libraries already in the container ({}): use --force to replace them",
                p.display()
            ),
            NvidiaError::Io(p, e) => write!(f, "copying {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for NvidiaError {}

#[derive(Debug, Default)]
pub struct Report {
    pub copied: Vec<PathBuf>,
}

fn is_driver_dir(d: &Path) -> bool {
    fs::read_dir(d)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("libcuda.so") || n.starts_with("libnvidia-cfg.so")
            })
        })
        .unwrap_or(false)
}

/// Host directories holding the driver's libraries: the distribution's library directories and
/// `extra` (LD_LIBRARY_PATH entries), those that contain libcuda or libnvidia-cfg.
pub fn host_lib_dirs(host_root: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut cands: Vec<PathBuf> = [
        "usr/lib/x86_64-linux-gnu",
        "usr/lib64",
        "usr/lib/aarch64-linux-gnu",
        "usr/lib/powerpc64le-linux-gnu",
        "usr/lib",
    ]
    .iter()
    .map(|d| host_root.join(d))
    .collect();
    cands.extend(extra.iter().cloned());
    let mut out: Vec<PathBuf> = Vec::new();
    for c in cands {
        if is_driver_dir(&c) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn copy_entry(src: &Path, dst: &Path) -> Result<(), NvidiaError> {
    let err = |e| NvidiaError::Io(src.to_path_buf(), e);
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p).map_err(err)?;
    }
    if fs::symlink_metadata(dst).is_ok() {
        fs::remove_file(dst).map_err(err)?;
    }
    let m = fs::symlink_metadata(src).map_err(err)?;
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).map_err(err)?, dst).map_err(err)
    } else {
        fs::copy(src, dst).map_err(err)?;
        fs::set_permissions(
            dst,
            fs::Permissions::from_mode((m.permissions().mode() & 0o7777 & !0o6000) | 0o600),
        )
        .map_err(err)
    }
}

/// Copy the driver into the container's ROOT. `force` replaces a driver copied before.
pub fn setup(
    host_root: &Path,
    extra_lib_dirs: &[PathBuf],
    root: &Path,
    force: bool,
) -> Result<Report, NvidiaError> {
    let dirs = host_lib_dirs(host_root, extra_lib_dirs);
    if dirs.is_empty() {
        return Err(NvidiaError::NoDriver);
    }
    // Where the container keeps its libraries (Debian/Ubuntu multiarch, else RHEL's lib64).
    let dest = ["usr/lib/x86_64-linux-gnu", "usr/lib64"]
        .iter()
        .map(|d| root.join(d))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| root.join("usr/lib64"));
    if !force && is_driver_dir(&dest) {
        return Err(NvidiaError::AlreadyThere(dest));
    }
    let mut rep = Report::default();
    for d in &dirs {
        let rd = fs::read_dir(d).map_err(|e| NvidiaError::Io(d.clone(), e))?;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if LIBS.iter().any(|l| n.starts_with(l)) {
                let to = dest.join(&n);
                copy_entry(&e.path(), &to)?;
                rep.copied.push(to);
            }
        }
    }
    for f in FILES {
        let src = host_root.join(f);
        if fs::symlink_metadata(&src).is_ok() {
            let to = root.join(f);
            copy_entry(&src, &to)?;
            rep.copied.push(to);
        }
    }
    for t in TOOLS {
        for bin in ["usr/bin", "bin"] {
            let src = host_root.join(bin).join(t);
            if fs::symlink_metadata(&src).is_ok() {
                let to = root.join("usr/bin").join(t);
                copy_entry(&src, &to)?;
                rep.copied.push(to);
                break;
            }
        }
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_driver_like_tree() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        let lib = host.join("usr/lib/x86_64-linux-gnu");
        fs::create_dir_all(&lib).unwrap();
        fs::write(lib.join("libcuda.so.550.54"), b"ELF driver").unwrap();
        std::os::unix::fs::symlink("libcuda.so.550.54", lib.join("libcuda.so.1")).unwrap();
        fs::write(lib.join("libnvidia-ml.so.550.54"), b"ELF nvml").unwrap();
        fs::write(lib.join("libc.so.6"), b"not nvidia").unwrap();
        fs::create_dir_all(host.join("usr/bin")).unwrap();
        fs::write(host.join("usr/bin/nvidia-smi"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(
            host.join("usr/bin/nvidia-smi"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::create_dir_all(host.join("etc/OpenCL/vendors")).unwrap();
        fs::write(
            host.join("etc/OpenCL/vendors/nvidia.icd"),
            b"libnvidia-opencl.so.1",
        )
        .unwrap();
        let root = d.path().join("ROOT");
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();

        let rep = setup(&host, &[], &root, false).unwrap();
        let cl = root.join("usr/lib/x86_64-linux-gnu");
        assert_eq!(
            fs::read(cl.join("libcuda.so.550.54")).unwrap(),
            b"ELF driver"
        );
        assert_eq!(
            fs::read_link(cl.join("libcuda.so.1")).unwrap(),
            PathBuf::from("libcuda.so.550.54"),
            "relative link kept"
        );
        assert!(cl.join("libnvidia-ml.so.550.54").is_file());
        assert!(!cl.join("libc.so.6").exists(), "only NVIDIA libraries");
        assert!(
            fs::metadata(root.join("usr/bin/nvidia-smi"))
                .unwrap()
                .permissions()
                .mode()
                & 0o100
                != 0
        );
        assert!(root.join("etc/OpenCL/vendors/nvidia.icd").is_file());
        assert_eq!(rep.copied.len(), 5);
        assert!(matches!(
            setup(&host, &[], &root, false),
            Err(NvidiaError::AlreadyThere(_))
        ));
        assert!(setup(&host, &[], &root, true).is_ok());
        let empty = d.path().join("nohost");
        fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            setup(&empty, &[], &root, true),
            Err(NvidiaError::NoDriver)
        ));
    }
}
