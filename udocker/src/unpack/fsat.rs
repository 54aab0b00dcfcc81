//! Directory-relative file operations (openat(2) family) on owned descriptors. All of layer
//! unpacking goes through these so that no path is ever resolved by the kernel from `/` or through
//! a symlink: every component is looked up with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW` relative to a
//! directory we already hold, which is what keeps a hostile layer inside ROOT.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// An open directory (`O_DIRECTORY`, not `O_PATH`, so `fchmod` and `getdents` work on it).
#[derive(Debug)]
pub struct DirFd(OwnedFd);

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful openat(2) and is owned by no one else; the
    // OwnedFd becomes its only owner and closes it once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl DirFd {
    pub fn open(path: &Path) -> nix::Result<DirFd> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirFd(own(fd)))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Open the child directory `name`, never following a symlink.
    pub fn open_dir(&self, name: &OsStr) -> nix::Result<DirFd> {
        let fd = nix::fcntl::openat(
            Some(self.raw()),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirFd(own(fd)))
    }

    pub fn try_clone(&self) -> nix::Result<DirFd> {
        self.0
            .try_clone()
            .map(DirFd)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)))
    }

    pub fn lstat(&self, name: &OsStr) -> nix::Result<FileStat> {
        nix::sys::stat::fstatat(Some(self.raw()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    pub fn mkdir(&self, name: &OsStr, mode: u32) -> nix::Result<()> {
        nix::sys::stat::mkdirat(Some(self.raw()), name, Mode::from_bits_truncate(mode))
    }

    /// Create a new regular file (`O_EXCL|O_NOFOLLOW`: never reuses or follows what is there).
    pub fn create_file(&self, name: &OsStr, mode: u32) -> nix::Result<File> {
        let fd = nix::fcntl::openat(
            Some(self.raw()),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(own(fd)))
    }

    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> nix::Result<()> {
        nix::unistd::symlinkat(target, Some(self.raw()), name)
    }

    pub fn readlink(&self, name: &OsStr) -> nix::Result<std::ffi::OsString> {
        nix::fcntl::readlinkat(Some(self.raw()), name)
    }

    pub fn hardlink_from(&self, src_dir: &DirFd, src: &OsStr, name: &OsStr) -> nix::Result<()> {
        nix::unistd::linkat(
            Some(src_dir.raw()),
            src,
            Some(self.raw()),
            name,
            AtFlags::empty(),
        )
    }

    pub fn unlink(&self, name: &OsStr, dir: bool) -> nix::Result<()> {
        let f = if dir {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        nix::unistd::unlinkat(Some(self.raw()), name, f)
    }

    /// chmod a child that is known (just checked) not to be a symlink.
    pub fn chmod(&self, name: &OsStr, mode: u32) -> nix::Result<()> {
        nix::sys::stat::fchmodat(
            Some(self.raw()),
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    pub fn set_mtime_nofollow(&self, name: &OsStr, secs: i64) -> nix::Result<()> {
        let t = nix::sys::time::TimeSpec::new(secs, 0);
        nix::sys::stat::utimensat(
            Some(self.raw()),
            name,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
    }

    /// Names in this directory, without `.` and `..`.
    pub fn list(&self) -> nix::Result<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let fd = nix::fcntl::openat(
            Some(self.raw()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut d = nix::dir::Dir::from_fd(fd)?;
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(out)
    }

    /// rm -rf of a child, descending by descriptor so nothing outside is ever touched.
    pub fn remove_all(&self, name: &OsStr) -> nix::Result<()> {
        let st = match self.lstat(name) {
            Ok(s) => s,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        if is_dir(&st) {
            // A directory without u+rwx (mode 000 from a layer) cannot be listed or emptied.
            if st.st_mode & 0o700 != 0o700 {
                self.chmod(name, (st.st_mode & 0o7777) | 0o700)?;
            }
            let sub = self.open_dir(name)?;
            for child in sub.list()? {
                sub.remove_all(&child)?;
            }
            self.unlink(name, true)
        } else {
            self.unlink(name, false)
        }
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

pub fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK
}
