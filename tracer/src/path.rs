//! Guest ↔ host path translation.
//!
//! A guest path is resolved component by component the way the kernel would inside the guest
//! (path_resolution(7)): symlinks are read from the host file they map to and their targets are
//! interpreted in the guest (absolute targets restart at the guest's `/`), `..` at `/` stays at
//! `/`, and at most 40 symlinks are followed (then ELOOP). Each guest prefix maps to the host
//! through the bindings (longest guest prefix wins) or else under the root; so a binding whose
//! guest path does not exist in the rootfs still works. The file-system view is a trait so the
//! algorithm is tested against an in-memory tree.

use nix::errno::Errno;

pub const MAX_SYMLINKS: usize = 40;

/// `-b HOST:GUEST`: both absolute, normalised, no trailing slash (except `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub host: Vec<u8>,
    pub guest: Vec<u8>,
    /// `-v HOST:GUEST:ro`: calls that would change anything below it fail with EROFS.
    pub readonly: bool,
    /// The guest path is taken as written: a symlink in its last component is not followed
    /// (PRoot's `-b HOST:GUEST!`). By default the guest path is resolved in the rootfs, as a
    /// bind mount onto a symlink lands on the symlink's target.
    pub nofollow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    Other,
}

/// What translation needs from the host file system.
pub trait FsView {
    fn kind(&self, host: &[u8]) -> Option<Kind>;
    fn readlink(&self, host: &[u8]) -> Option<Vec<u8>>;
    /// As `kind`, with the reason a lookup failed: going below a component that could not be
    /// looked at fails as the kernel's own walk would (EACCES for a directory the user may not
    /// search, not ENOENT).
    fn kind_or_errno(&self, host: &[u8]) -> Result<Kind, Errno> {
        self.kind(host).ok_or(Errno::ENOENT)
    }
}

/// The real host file system (lstat(2), readlink(2)), as seen by one guest task: the
/// `/proc/self` and `/proc/thread-self` links name that task, not the tracer reading them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs {
    pub task: Option<i32>,
}

#[allow(non_upper_case_globals)]
pub const RealFs: RealFs = RealFs { task: None };

impl RealFs {
    pub fn for_task(pid: i32) -> RealFs {
        RealFs { task: Some(pid) }
    }
}

thread_local! {
    /// The last `lstat` made while resolving a path in this stop: (host path, answer). A stat
    /// call the tracer answers itself (emulate.rs) usually asks about exactly the path whose
    /// last component was just looked at; when that is not a symlink the answer is the same,
    /// and one system call per emulated stat is saved. Cleared at every syscall-entry stop
    /// (`forget_last_lstat`) so it never outlives the stop it was made in.
    static LAST_LSTAT: std::cell::RefCell<Option<(Vec<u8>, libc::stat)>> =
        const { std::cell::RefCell::new(None) };
}

/// Drop the remembered `lstat` (start of a stop).
pub fn forget_last_lstat() {
    LAST_LSTAT.with(|c| c.borrow_mut().take());
}

/// The remembered `lstat` of `host`, if the last lookup was of that very path; consumed.
pub fn take_last_lstat(host: &[u8]) -> Option<libc::stat> {
    LAST_LSTAT.with(|c| match c.borrow_mut().take() {
        Some((p, st)) if p == host => Some(st),
        _ => None,
    })
}

impl FsView for RealFs {
    fn kind(&self, host: &[u8]) -> Option<Kind> {
        self.kind_or_errno(host).ok()
    }

    fn kind_or_errno(&self, host: &[u8]) -> Result<Kind, Errno> {
        let c = std::ffi::CString::new(host).map_err(|_| Errno::EINVAL)?;
        let (rv, st) = crate::sys::fstatat(&c, libc::AT_SYMLINK_NOFOLLOW);
        if rv != 0 {
            return Err(Errno::from_raw((-rv) as i32));
        }
        LAST_LSTAT.with(|l| *l.borrow_mut() = Some((host.to_vec(), st)));
        Ok(match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        })
    }

    fn readlink(&self, host: &[u8]) -> Option<Vec<u8>> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        if let Some(pid) = self.task {
            match host {
                b"/proc/self" => return Some(pid.to_string().into_bytes()),
                b"/proc/thread-self" => return Some(format!("{pid}/task/{pid}").into_bytes()),
                _ => {}
            }
        }
        nix::fcntl::readlink(std::ffi::OsStr::from_bytes(host))
            .ok()
            .map(|s| s.into_vec())
    }
}

/// Lexically normalise an absolute path: collapse `//`, `.`, `..` (never above `/`).
pub fn normalize(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    join(&parts)
}

fn join<T: AsRef<[u8]>>(parts: &[T]) -> Vec<u8> {
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p.as_ref());
    }
    out
}

/// Is `p` equal to `prefix` or below it (component boundary)? Returns the rest (`""` or `/…`).
fn strip_prefix<'a>(p: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if prefix == b"/" {
        return Some(if p == b"/" { b"" } else { p });
    }
    let rest = p.strip_prefix(prefix)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// A resolved path: (canonical guest path, host path).
pub type Resolved = (Vec<u8>, Vec<u8>);

#[derive(Debug, Clone)]
pub struct Translator {
    root: Vec<u8>,
    /// Sorted by guest path length, longest first.
    bindings: Vec<Binding>,
    /// Canonical guest paths known to be real directories (not symlinks). Resolving a path
    /// then costs one lookup per component instead of one lstat(2). Cleared whenever the guest
    /// changes the namespace (rename, unlink, rmdir, symlink, mount: see `invalidate`), the only
    /// way a directory can turn into something else behind our back — short of another host
    /// process editing the rootfs while the guest runs, which upstream does not support either.
    dirs: std::cell::RefCell<std::collections::HashSet<Vec<u8>>>,
}

impl Translator {
    pub fn new(root: &[u8], mut bindings: Vec<Binding>) -> Translator {
        let root = normalize(root);
        for b in &mut bindings {
            b.host = normalize(&b.host);
            b.guest = normalize(&b.guest);
        }
        // One guest path bound twice: the later binding hides the earlier (as a second mount
        // on the same point would).
        let mut seen = std::collections::HashSet::new();
        bindings.reverse();
        bindings.retain(|b| seen.insert(b.guest.clone()));
        bindings.reverse();
        bindings.sort_by_key(|b| std::cmp::Reverse(b.guest.len()));
        Translator {
            root,
            bindings,
            dirs: Default::default(),
        }
    }

    /// Forget every cached directory (after a namespace change by the guest).
    pub fn invalidate(&self) {
        self.dirs.borrow_mut().clear();
    }

    pub fn root(&self) -> &[u8] {
        &self.root
    }

    /// Map a canonical guest path to the host without looking at the file system.
    pub fn map(&self, guest: &[u8]) -> Vec<u8> {
        for b in &self.bindings {
            if let Some(rest) = strip_prefix(guest, &b.guest) {
                let mut h = b.host.clone();
                if h == b"/" && !rest.is_empty() {
                    h.clear();
                }
                h.extend_from_slice(rest);
                return h;
            }
        }
        let mut h = self.root.clone();
        if guest != b"/" {
            if h == b"/" {
                h.clear();
            }
            h.extend_from_slice(guest);
        }
        h
    }

    /// Resolve an absolute guest path. Returns the canonical guest path and its host path.
    /// `follow` says whether a symlink in the last component is followed (stat vs lstat).
    pub fn resolve(&self, fs: &dyn FsView, guest: &[u8], follow: bool) -> Result<Resolved, Errno> {
        self.resolve_with(fs, guest, follow, true)
    }

    /// As `resolve`; `slash_follows: false` for mkdir(2), where `link/` on a symlink must not
    /// be followed (the kernel answers EEXIST).
    ///
    /// The kernel's rules are kept where they differ from text folding (path_resolution(7)):
    /// `x/.` and `x/..` require `x` to be a directory (ENOTDIR, ENOENT otherwise); a final `.`,
    /// `..` or trailing `/` is handed to the kernel as written, so `rmdir("d/.")` still fails
    /// with EINVAL instead of removing `d`; a link whose target ends in `/` must lead to a
    /// directory; `..` at the guest's `/` stays there.
    pub fn resolve_with(
        &self,
        fs: &dyn FsView,
        guest: &[u8],
        follow: bool,
        slash_follows: bool,
    ) -> Result<Resolved, Errno> {
        if guest.first() != Some(&b'/') {
            return Err(Errno::EINVAL);
        }
        let trailing_slash = guest.len() > 1 && guest.ends_with(b"/");
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut todo: Vec<Vec<u8>> = guest
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut hops = 0;
        // What `out` currently names: None = missing (nothing below can exist), and why.
        let mut cur = Some(Kind::Dir);
        let mut missing = Errno::ENOENT;
        let mut final_literal: Option<&[u8]> = None;
        while let Some(c) = todo.pop() {
            let is_last = todo.is_empty();
            if c == b"." || c == b".." {
                match cur {
                    None => return Err(missing),
                    Some(Kind::Dir) => {}
                    Some(_) => return Err(Errno::ENOTDIR),
                }
                if is_last {
                    // Let the kernel see it (rmdir("d/.") is EINVAL, not rmdir("d")); `..` at
                    // the guest root must not climb out of it on the host, nor out of a binding
                    // (the host parent of a bound directory is not its guest parent): there the
                    // guest parent itself is named.
                    if c == b".." && !out.is_empty() {
                        let child = self.map(&join(&out));
                        let mut parent_out = out.clone();
                        parent_out.pop();
                        let mut inside = self.map(&join(&parent_out));
                        if inside != b"/" {
                            inside.push(b'/');
                        }
                        inside.extend_from_slice(out.last().map_or(&b""[..], |v| &v[..]));
                        if inside == child {
                            final_literal = Some(b"..");
                        } else {
                            out = parent_out;
                        }
                    } else {
                        final_literal = Some(b".");
                    }
                    break;
                }
                if c == b".." {
                    out.pop();
                    cur = Some(Kind::Dir);
                }
                continue;
            }
            match cur {
                None => return Err(missing),
                Some(Kind::Dir) => {}
                Some(_) => return Err(Errno::ENOTDIR),
            }
            out.push(c);
            let follow_this = !is_last || follow || (trailing_slash && slash_follows);
            let guest_now = join(&out);
            if self.dirs.borrow().contains(&guest_now) {
                cur = Some(Kind::Dir);
                continue;
            }
            let host = self.map(&guest_now);
            cur = match fs.kind_or_errno(&host) {
                Ok(k) => Some(k),
                Err(e) => {
                    missing = e;
                    None
                }
            };
            if cur.is_none() && self.leads_to_binding(&guest_now) {
                // A binding below a directory the rootfs lacks: the directory exists for the guest.
                cur = Some(Kind::Dir);
            }
            match cur {
                Some(Kind::Dir) => {
                    let mut d = self.dirs.borrow_mut();
                    if d.len() > 100_000 {
                        d.clear();
                    }
                    d.insert(guest_now);
                }
                Some(Kind::Symlink) if follow_this => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    let mut target = fs.readlink(&host).ok_or(Errno::ENOENT)?;
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    let in_proc =
                        host.starts_with(b"/proc/") && self.map(b"/proc").starts_with(b"/proc");
                    // Magic links to things without a path (pipe:[N], socket:[N], anon_inode:…)
                    // are opened by the kernel itself: hand it the link.
                    if in_proc && target[0] != b'/' && target.contains(&b':') {
                        let mut h = host.clone();
                        while let Some(rest) = todo.pop() {
                            h.push(b'/');
                            h.extend_from_slice(&rest);
                        }
                        if trailing_slash {
                            h.push(b'/'); // the kernel then says ENOTDIR, as it should
                        }
                        return Ok((guest_now, h));
                    }
                    // Absolute targets of links that live on the host side of a binding are host
                    // paths (as PRoot reads them): a bound /proc's magic links (cwd, exe, fd/N),
                    // and the absolute symlinks of a bound host directory. They are seen through
                    // the guest's eyes. `/proc/PID/root` of a guest task is the guest's own `/`.
                    let is_root_link = in_proc && host.ends_with(b"/root") && target == b"/";
                    if target[0] == b'/' && !is_root_link && !in_proc {
                        if let Some(t) = self.within_same_binding(&host, &target) {
                            target = t;
                        }
                    }
                    if target[0] == b'/' && !is_root_link && in_proc {
                        match self.to_guest(&target) {
                            Some(g) => target = g,
                            None => {
                                // Outside the guest (an inherited descriptor): use it as is.
                                let mut h = target;
                                while let Some(rest) = todo.pop() {
                                    h.push(b'/');
                                    h.extend_from_slice(&rest);
                                }
                                return Ok((h.clone(), h));
                            }
                        }
                    }
                    out.pop();
                    cur = Some(Kind::Dir);
                    if target[0] == b'/' {
                        out.clear();
                    }
                    if target.ends_with(b"/") {
                        todo.push(b".".to_vec());
                    }
                    for t in target.split(|b| *b == b'/').filter(|c| !c.is_empty()).rev() {
                        todo.push(t.to_vec());
                    }
                }
                _ => {}
            }
        }
        let g = join(&out);
        let mut h = self.map(&g);
        match final_literal {
            Some(lit) => {
                if !h.ends_with(b"/") {
                    h.push(b'/');
                }
                h.extend_from_slice(lit);
            }
            None if trailing_slash && !h.ends_with(b"/") => h.push(b'/'),
            None => {}
        }
        if g.len() > crate::mem::PATH_MAX || h.len() > crate::mem::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok((g, h))
    }

    /// An absolute symlink target found in a bound host directory that points inside that same
    /// binding's host tree is a host path: its guest form, as any host path is seen by the guest
    /// (`-b /tmp:/foo`, `/tmp/l -> /tmp/a` reads `/foo/a`). Which binding a host path belongs to
    /// is decided on the host side (a link inside the rootfs belongs to the guest; else the
    /// longest host prefix among the bindings), as PRoot does. Any other target is the guest's own text (what the guest wrote).
    pub fn within_same_binding(&self, link_host: &[u8], target: &[u8]) -> Option<Vec<u8>> {
        let owner = |h: &[u8]| -> Option<usize> {
            let mut best: Option<(usize, Option<usize>)> = None;
            let mut consider = |prefix: &[u8], who: Option<usize>| {
                if strip_prefix(h, prefix).is_some() && best.is_none_or(|(l, _)| prefix.len() > l) {
                    best = Some((prefix.len(), who));
                }
            };
            for (i, b) in self.bindings.iter().enumerate() {
                consider(&b.host, Some(i));
            }
            best.and_then(|(_, w)| w)
        };
        // A link that lives in the rootfs (seen from the host) holds the guest's own text.
        if strip_prefix(link_host, &self.root).is_some() {
            return None;
        }
        let link_owner = owner(link_host)?;
        (owner(target) == Some(link_owner)).then(|| self.to_guest(target))?
    }

    /// Is this canonical guest path inside a binding (mapped to the host outside the root)?
    pub fn in_binding(&self, guest: &[u8]) -> bool {
        self.bindings
            .iter()
            .any(|b| strip_prefix(guest, &b.guest).is_some())
    }

    /// Is `guest` a binding's guest path or one of its ancestors?
    pub fn leads_to_binding(&self, guest: &[u8]) -> bool {
        self.bindings
            .iter()
            .any(|b| strip_prefix(&b.guest, guest).is_some())
    }

    /// Is this canonical guest path inside a read-only binding (the innermost binding decides)?
    pub fn is_readonly(&self, guest: &[u8]) -> bool {
        self.bindings
            .iter()
            .find(|b| strip_prefix(guest, &b.guest).is_some())
            .is_some_and(|b| b.readonly)
    }

    pub fn has_readonly(&self) -> bool {
        self.bindings.iter().any(|b| b.readonly)
    }

    /// Does going from guest directory `base` down to `full` enter a binding that `base` is not
    /// already in? Then the kernel, resolving relative to the host side of `base`, would miss it.
    pub fn enters_binding(&self, base: &[u8], full: &[u8]) -> bool {
        self.bindings.iter().any(|b| {
            strip_prefix(full, &b.guest).is_some() && strip_prefix(base, &b.guest).is_none()
        })
    }

    /// Map a host path back into the guest: the longest matching host prefix among the root and
    /// the bindings. `None` when the path is outside everything the guest can see.
    pub fn to_guest(&self, host: &[u8]) -> Option<Vec<u8>> {
        let mut best: Option<(usize, Vec<u8>)> = None;
        let mut consider = |hprefix: &[u8], gprefix: &[u8]| {
            if let Some(rest) = strip_prefix(host, hprefix) {
                if best.as_ref().is_none_or(|(l, _)| hprefix.len() > *l) {
                    let mut g = if gprefix == b"/" && !rest.is_empty() {
                        Vec::new()
                    } else {
                        gprefix.to_vec()
                    };
                    g.extend_from_slice(rest);
                    if g.is_empty() {
                        g.push(b'/');
                    }
                    best = Some((hprefix.len(), g));
                }
            }
        };
        consider(&self.root, b"/");
        for b in &self.bindings {
            consider(&b.host, &b.guest);
        }
        best.map(|(_, g)| g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory host tree: path → kind (and link target).
    struct Mem(HashMap<Vec<u8>, (Kind, Vec<u8>)>);

    impl Mem {
        fn new(entries: &[(&str, &str)]) -> Mem {
            let mut m = HashMap::new();
            for (p, t) in entries {
                let kind = if t.is_empty() {
                    Kind::Dir
                } else if *t == "FILE" {
                    Kind::Other
                } else {
                    Kind::Symlink
                };
                m.insert(p.as_bytes().to_vec(), (kind, t.as_bytes().to_vec()));
            }
            Mem(m)
        }
    }

    impl FsView for Mem {
        fn kind(&self, host: &[u8]) -> Option<Kind> {
            self.0.get(host).map(|e| e.0)
        }
        fn readlink(&self, host: &[u8]) -> Option<Vec<u8>> {
            self.0
                .get(host)
                .filter(|e| e.0 == Kind::Symlink)
                .map(|e| e.1.clone())
        }
    }

    fn s(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    fn tr() -> Translator {
        Translator::new(
            b"/r",
            vec![
                Binding {
                    host: b"/hostproc".to_vec(),
                    guest: b"/proc".to_vec(),
                    readonly: false,
                    nofollow: false,
                },
                Binding {
                    host: b"/data/in".to_vec(),
                    guest: b"/mnt/deep/x".to_vec(),
                    readonly: true,
                    nofollow: false,
                },
                Binding {
                    host: b"/etc/resolv.conf".to_vec(),
                    guest: b"/etc/resolv.conf".to_vec(),
                    readonly: false,
                    nofollow: false,
                },
            ],
        )
    }

    fn fs() -> Mem {
        Mem::new(&[
            ("/r", ""),
            ("/r/usr", ""),
            ("/r/usr/lib", ""),
            ("/r/usr/lib/libc.so", "FILE"),
            ("/r/lib", "usr/lib"),
            ("/r/abs", "/usr/lib"),
            ("/r/up", "../../../.."),
            ("/r/loop1", "loop2"),
            ("/r/loop2", "loop1"),
            ("/r/filelink", "usr/lib/libc.so/"),
            ("/r/etc", ""),
            ("/r/etc/resolv.conf", "FILE"),
            ("/r/tomnt", "/mnt/deep/x/f"),
            ("/data/in/f", "FILE"),
            ("/data/in/abs", "/data/in/f"),
            ("/hostproc", ""),
            ("/hostproc/self", "1234"),
            ("/hostproc/1234", ""),
        ])
    }

    fn host(p: &str, follow: bool) -> Result<String, Errno> {
        tr().resolve(&fs(), p.as_bytes(), follow)
            .map(|(_, h)| s(&h).to_string())
    }

    #[test]
    fn symlinks_resolved_inside() {
        assert_eq!(host("/lib/libc.so", true).unwrap(), "/r/usr/lib/libc.so");
        assert_eq!(host("/abs/libc.so", true).unwrap(), "/r/usr/lib/libc.so");
        assert_eq!(
            host("/up/etc", true).unwrap(),
            "/r/etc",
            "'..' above / must stay at /"
        );
        assert_eq!(
            host("/../../etc/../etc/./resolv.conf", true).unwrap(),
            "/etc/resolv.conf"
        );
        assert_eq!(
            host("/lib", false).unwrap(),
            "/r/lib",
            "lstat must not follow the last link"
        );
        assert_eq!(host("/lib", true).unwrap(), "/r/usr/lib");
        assert_eq!(
            host("/lib/", false).unwrap(),
            "/r/usr/lib/",
            "a trailing slash follows"
        );
        assert_eq!(host("/loop1/x", true), Err(Errno::ELOOP));
        assert_eq!(host("/usr/lib/libc.so/..", true), Err(Errno::ENOTDIR));
        assert_eq!(host("/usr/lib/libc.so/.", false), Err(Errno::ENOTDIR));
        assert_eq!(
            host("/usr/lib/.", false).unwrap(),
            "/r/usr/lib/.",
            "a final '.' reaches the kernel"
        );
        assert_eq!(
            host("/usr/..", false).unwrap(),
            "/r/usr/..",
            "a final '..' too"
        );
        assert_eq!(
            host("/..", false).unwrap(),
            "/r/.",
            "but never above the guest root"
        );
        assert_eq!(
            host("/filelink", true),
            Err(Errno::ENOTDIR),
            "a target ending in / must be a dir"
        );
    }

    #[test]
    fn bindings() {
        assert_eq!(host("/proc/self", false).unwrap(), "/hostproc/self");
        assert_eq!(host("/proc/self/exe", false).unwrap(), "/hostproc/1234/exe");
        assert_eq!(
            host("/mnt/deep/x/f", true).unwrap(),
            "/data/in/f",
            "binding without guest dir"
        );
        assert_eq!(
            host("/tomnt", true).unwrap(),
            "/data/in/f",
            "symlink into a binding"
        );
        assert_eq!(
            host("/etc/resolv.conf", true).unwrap(),
            "/etc/resolv.conf",
            "file binding"
        );
        assert_eq!(host("/etc/hosts", true).unwrap(), "/r/etc/hosts");
        assert_eq!(
            host("/mnt/deep/x/abs", true).unwrap(),
            "/data/in/f",
            "absolute link inside a binding is a host path"
        );
        assert_eq!(
            host("/missing/../etc", true),
            Err(Errno::ENOENT),
            "the kernel checks x in x/.."
        );
    }

    #[test]
    fn readonly_bindings() {
        let t = tr();
        assert!(t.is_readonly(b"/mnt/deep/x/f") && t.is_readonly(b"/mnt/deep/x"));
        assert!(
            !t.is_readonly(b"/mnt/deep")
                && !t.is_readonly(b"/etc/resolv.conf")
                && !t.is_readonly(b"/usr")
        );
    }

    #[test]
    fn back_to_guest() {
        let t = tr();
        assert_eq!(s(&t.to_guest(b"/r/usr/lib").unwrap()), "/usr/lib");
        assert_eq!(s(&t.to_guest(b"/r").unwrap()), "/");
        assert_eq!(s(&t.to_guest(b"/data/in/f").unwrap()), "/mnt/deep/x/f");
        assert_eq!(s(&t.to_guest(b"/hostproc/1").unwrap()), "/proc/1");
        assert!(t.to_guest(b"/elsewhere").is_none());
        assert!(
            t.to_guest(b"/rx").is_none(),
            "prefix must end at a component boundary"
        );
        let nested = Translator::new(
            b"/tmp/c/ROOT",
            vec![Binding {
                host: b"/tmp".to_vec(),
                guest: b"/tmp".to_vec(),
                readonly: false,
                nofollow: false,
            }],
        );
        assert_eq!(
            s(&nested.to_guest(b"/tmp/c/ROOT/etc").unwrap()),
            "/etc",
            "longest host prefix wins"
        );
        assert_eq!(s(&nested.to_guest(b"/tmp/x").unwrap()), "/tmp/x");
    }

    #[test]
    fn root_slash_binding() {
        let t = Translator::new(
            b"/r",
            vec![Binding {
                host: b"/".to_vec(),
                guest: b"/host".to_vec(),
                readonly: false,
                nofollow: false,
            }],
        );
        assert_eq!(s(&t.map(b"/host/etc")), "/etc");
        assert_eq!(s(&t.map(b"/host")), "/");
        assert_eq!(normalize(b"//a/./b/../c/"), b"/a/c");
    }

    /// A directory the user may not search: what lies below it fails with EACCES, as the
    /// kernel's own walk says, not ENOENT.
    #[test]
    fn unsearchable_directory_is_eacces() {
        struct Locked;
        impl FsView for Locked {
            fn kind(&self, host: &[u8]) -> Option<Kind> {
                self.kind_or_errno(host).ok()
            }
            fn readlink(&self, _: &[u8]) -> Option<Vec<u8>> {
                None
            }
            fn kind_or_errno(&self, host: &[u8]) -> Result<Kind, Errno> {
                match host {
                    b"/r/locked" => Ok(Kind::Dir),
                    h if h.starts_with(b"/r/locked/") => Err(Errno::EACCES),
                    _ => Ok(Kind::Dir),
                }
            }
        }
        let t = Translator::new(b"/r", Vec::new());
        assert_eq!(
            t.resolve(&Locked, b"/locked/foo/bar", true).unwrap_err(),
            Errno::EACCES
        );
        // The last component itself is the kernel's to refuse.
        assert!(t.resolve(&Locked, b"/locked/foo", true).is_ok());
    }
}
