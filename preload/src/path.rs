//! Guest ⇄ host path rules (`spec/elf-fakechroot.md` §4.2), pure and allocation-free: every
//! function writes into a caller's buffer and returns the length, or `None` when it does not fit.

/// Linux `PATH_MAX`, including the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// The translation settings, as udocker passes them in the environment.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// `FAKECHROOT_BASE`: the host path of the container root, no trailing `/`.
    pub base: &'a [u8],
    /// `FAKECHROOT_EXCLUDE_PATH`: host-passthrough prefixes (`split_exclude`).
    pub exclude: &'a [Rule<'a>],
    /// `FAKECHROOT_DIR_MAP`: `(host, guest)` pairs (`split_dir_map`).
    pub dir_map: &'a [Map<'a>],
}

/// One exclusion. An `Option` so that the library's table of them starts as zero bytes (in
/// .bss: a non-zero initial value would put the whole configuration in .data, read from the
/// file and relocated at every program start).
pub type Rule<'a> = Option<&'a [u8]>;
/// One volume mapping `(host, guest)`; `Option` for the same reason.
pub type Map<'a> = Option<(&'a [u8], &'a [u8])>;

/// The entries of `FAKECHROOT_EXCLUDE_PATH` (`:`-separated) into `out`, empty ones dropped;
/// their number. Split once when the configuration is read, not on every call (every path a
/// program names is checked against them).
pub fn split_exclude<'a>(s: &'a [u8], out: &mut [Rule<'a>]) -> usize {
    let mut n = 0;
    for e in s.split(|&b| b == b':').filter(|e| !e.is_empty()) {
        if n == out.len() {
            break;
        }
        out[n] = Some(e);
        n += 1;
    }
    n
}

/// The `host!guest` pairs of `FAKECHROOT_DIR_MAP` (`:`-separated) into `out`; their number.
pub fn split_dir_map<'a>(s: &'a [u8], out: &mut [Map<'a>]) -> usize {
    let mut n = 0;
    for e in dir_map_entries(s) {
        if n == out.len() {
            break;
        }
        out[n] = Some(e);
        n += 1;
    }
    n
}

/// `rest` when `prefix` is a whole-component prefix of `path` (`/dev` matches `/dev` and
/// `/dev/x`, not `/devices`).
pub fn strip_component_prefix<'p>(prefix: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    let mut p = prefix;
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    if p.is_empty() {
        return None;
    }
    if p == b"/" {
        return path.starts_with(b"/").then_some(path);
    }
    let rest = path.strip_prefix(p)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

fn put(out: &mut [u8], at: usize, s: &[u8]) -> Option<usize> {
    let end = at.checked_add(s.len())?;
    out.get_mut(at..end)?.copy_from_slice(s);
    Some(end)
}

/// Join pieces into `out`, NUL-terminated; the length without the NUL.
pub fn concat(out: &mut [u8], parts: &[&[u8]]) -> Option<usize> {
    let mut n = 0;
    for p in parts {
        n = put(out, n, p)?;
    }
    put(out, n, b"\0")?;
    Some(n)
}

/// The decimal digits of `v`, written at the end of `buf`.
pub fn decimal(mut v: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut d = buf.len();
    loop {
        d -= 1;
        buf[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || d == 0 {
            break;
        }
    }
    &buf[d..]
}

/// True when some component of `p` is `..` (only such relative paths need translating: the
/// host cwd is the host path of the guest cwd, but `..` could climb out of the root).
pub fn has_dotdot(p: &[u8]) -> bool {
    p.split(|&b| b == b'/').any(|c| c == b"..")
}

/// True when `normalize` would return the path unchanged: no empty, `.` or `..` component
/// (a trailing `/` is kept by both). One pass, no copy: the common case of every call.
pub fn is_clean(p: &[u8]) -> bool {
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'/' {
            let c = &p[i + 1..];
            let end = c.iter().position(|&b| b == b'/').unwrap_or(c.len());
            let comp = &c[..end];
            if (comp.is_empty() && end < c.len()) || comp == b"." || comp == b".." {
                return false;
            }
            i += 1 + end;
        } else {
            i += 1;
        }
    }
    true
}

/// Lexical normalisation of an absolute path (`dedotdot`): `.`, `..` and `//` removed, `..` at
/// `/` stays at `/`. A trailing `/` (or a final `.`/`..`) is kept as a trailing `/`, so that
/// "must be a directory" still reaches the kernel.
pub fn normalize(path: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = put(out, 0, b"/")?;
    let mut dir_end = false;
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" => {}
            b"." => dir_end = true,
            b".." => {
                dir_end = true;
                while n > 1 && out[n - 1] != b'/' {
                    n -= 1;
                }
                if n > 1 {
                    n -= 1;
                }
            }
            _ => {
                dir_end = false;
                if n > 1 {
                    n = put(out, n, b"/")?;
                }
                n = put(out, n, c)?;
            }
        }
    }
    if (dir_end || path.ends_with(b"/")) && n > 1 {
        n = put(out, n, b"/")?;
    }
    put(out, n, b"\0")?;
    Some(n)
}

fn dir_map_entries(m: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    m.split(|&b| b == b':').filter_map(|e| {
        let i = e.iter().position(|&b| b == b'!')?;
        let (h, g) = (&e[..i], &e[i + 1..]);
        (!h.is_empty() && !g.is_empty()).then_some((h, g))
    })
}

/// What an absolute, normalised guest path becomes on the host.
pub fn expand(v: &View<'_>, guest: &[u8], out: &mut [u8]) -> Option<usize> {
    if v.base.is_empty() || strip_component_prefix(v.base, guest).is_some() {
        // No root, or a host path under the root already (idempotence, as udocker's fork).
        return concat(out, &[guest]);
    }
    if v.exclude
        .iter()
        .flatten()
        .any(|e| strip_component_prefix(e, guest).is_some())
    {
        return concat(out, &[guest]);
    }
    let mut best: Option<(&[u8], &[u8])> = None;
    for &(h, g) in v.dir_map.iter().flatten() {
        if let Some(rest) = strip_component_prefix(g, guest) {
            if best.is_none_or(|(_, r)| rest.len() < r.len()) {
                best = Some((h, rest));
            }
        }
    }
    if let Some((h, rest)) = best {
        return concat(out, &[h, rest]);
    }
    concat(out, &[v.base, guest])
}

/// A library search path the program set (`LD_LIBRARY_PATH` of a child): the loader reads it
/// with host eyes, so every absolute entry becomes its host path, and the container's own
/// directories (`orig`, as udocker set them) follow, so the program's libraries are found
/// first and the container's libc after them, never the host's. Writes `name=value` and a NUL
/// into `out`; `None` when it does not fit.
pub fn library_path(
    v: &View<'_>,
    name: &[u8],
    value: &[u8],
    orig: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let mut n = put(out, 0, name)?;
    n = put(out, n, b"=")?;
    let mut first = true;
    for d in value
        .split(|&b| b == b':')
        .chain(orig.split(|&b| b == b':'))
    {
        if d.is_empty() {
            continue;
        }
        if !first {
            n = put(out, n, b":")?;
        }
        first = false;
        if d[0] == b'/' {
            let mut norm = [0u8; PATH_MAX];
            let k = normalize(d, &mut norm)?;
            let m = expand(v, &norm[..k], &mut out[n..])?;
            n += m;
        } else {
            n = put(out, n, d)?;
        }
    }
    put(out, n, b"\0")?;
    Some(n)
}

/// What a host path returned by the kernel is in the container, or `None` when it is the same
/// (outside the root and every volume).
pub fn narrow(v: &View<'_>, host: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut best: Option<(&[u8], &[u8])> = None;
    for &(h, g) in v.dir_map.iter().flatten() {
        if let Some(rest) = strip_component_prefix(h, host) {
            if best.is_none_or(|(_, r)| rest.len() < r.len()) {
                best = Some((g, rest));
            }
        }
    }
    if let Some((g, rest)) = best {
        return concat(out, &[g, rest]);
    }
    if v.base.is_empty() {
        return None;
    }
    let rest = strip_component_prefix(v.base, host)?;
    if rest.is_empty() {
        concat(out, &[b"/"])
    } else {
        concat(out, &[rest])
    }
}

/// `#!interp arg` of a script header: the interpreter and the optional argument (Linux
/// `binfmt_script`: the rest of the line, blanks trimmed, is one argument). Up to 16 blanks
/// before `#!` are skipped, as udocker's fork does.
pub fn shebang(hdr: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let skip = hdr.iter().take(16).take_while(|&&b| b == b' ').count();
    let h = hdr.get(skip..)?.strip_prefix(b"#!")?;
    let line = &h[..h.iter().position(|&b| b == b'\n').unwrap_or(h.len())];
    let blank = |b: &u8| *b == b' ' || *b == b'\t' || *b == b'\r';
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let end = line.iter().position(blank).unwrap_or(line.len());
    let interp = &line[..end];
    let rest = &line[end..];
    let rest = match rest.iter().position(|b| !blank(b)) {
        Some(s) => {
            let r = &rest[s..];
            let e = r.iter().rposition(|b| !blank(b)).map_or(0, |e| e + 1);
            Some(&r[..e])
        }
        None => None,
    };
    Some((interp, rest))
}

/// For an ELF header: `Some(true)` when it has a `PT_INTERP` (dynamic, run through the
/// container's loader), `Some(false)` for a static one, `None` when it is not ELF. Program
/// headers beyond the bytes read are assumed to hold an interpreter.
pub fn elf_is_dynamic(hdr: &[u8]) -> Option<bool> {
    if hdr.len() < 64 || &hdr[..4] != b"\x7fELF" {
        return None;
    }
    if hdr[4] != 2 {
        // 32-bit: not run through a 64-bit loader.
        return Some(false);
    }
    let u16at = |o: usize| u16::from_le_bytes([hdr[o], hdr[o + 1]]) as usize;
    let mut phoff = [0u8; 8];
    phoff.copy_from_slice(&hdr[32..40]);
    let phoff = u64::from_le_bytes(phoff) as usize;
    let (phentsize, phnum) = (u16at(54), u16at(56));
    if phentsize < 4 {
        return Some(true);
    }
    for i in 0..phnum {
        let o = match phoff.checked_add(i.saturating_mul(phentsize)) {
            Some(o) if o.saturating_add(4) <= hdr.len() => o,
            _ => return Some(true),
        };
        if u32::from_le_bytes([hdr[o], hdr[o + 1], hdr[o + 2], hdr[o + 3]]) == 3 {
            return Some(true);
        }
    }
    Some(false)
}

/// The `PT_INTERP` string of a 64-bit little-endian ELF header, when its program header and the
/// string both lie within `hdr` (the first bytes of the file; ELF(5): p_offset at +8, p_filesz
/// at +32 of a 56-byte Elf64_Phdr). The string is returned without its NUL.
pub fn elf_interp(hdr: &[u8]) -> Option<&[u8]> {
    if hdr.len() < 64 || &hdr[..4] != b"\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
        return None;
    }
    let u16at = |o: usize| u16::from_le_bytes([hdr[o], hdr[o + 1]]) as usize;
    let u64at = |o: usize| -> Option<usize> {
        let b = hdr.get(o..o.checked_add(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(a)).ok()
    };
    let phoff = u64at(32)?;
    let (phentsize, phnum) = (u16at(54), u16at(56));
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum {
        let o = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let ty = hdr.get(o..o.checked_add(4)?)?;
        if u32::from_le_bytes([ty[0], ty[1], ty[2], ty[3]]) != 3 {
            continue;
        }
        let (off, size) = (u64at(o + 8)?, u64at(o + 32)?);
        let s = hdr.get(off..off.checked_add(size)?)?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        return Some(&s[..end]);
    }
    None
}

/// False when no entry of the FAKECHROOT_CMD_SUBST `list` can match `file`: its last component,
/// when a plain name (normalizing keeps it last), must appear as `/<name>=` in some entry. Every
/// exec asks, and udocker always sets a list (ldconfig): this saves the cwd lookup and the
/// normalization for the others.
pub fn may_subst(list: &[u8], file: &[u8]) -> bool {
    let name = &file[file.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    if matches!(name, b"" | b"." | b"..") {
        return true;
    }
    list.split(|&b| b == b':').any(|e| {
        e.windows(name.len() + 2)
            .any(|w| w[0] == b'/' && &w[1..=name.len()] == name && w[name.len() + 1] == b'=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &[u8], n: Option<usize>) -> String {
        String::from_utf8(out[..n.expect("fits")].to_vec()).unwrap()
    }

    const V: View<'static> = View {
        base: b"/c/ROOT",
        exclude: &[
            Some(b"/dev"),
            Some(b"/proc"),
            Some(b"/sys"),
            Some(b"/etc/resolv.conf"),
        ],
        dir_map: &[
            Some((b"/host/data", b"/data")),
            Some((b"/srv/x", b"/mnt/deep/x")),
        ],
    };

    fn norm(p: &str) -> String {
        let mut o = [0u8; PATH_MAX];
        let n = normalize(p.as_bytes(), &mut o);
        s(&o, n)
    }

    #[test]
    fn clean_paths_skip_normalisation() {
        for p in ["/", "/a", "/a/b/", "/a/.b/c..", "/a/b/c"] {
            assert!(is_clean(p.as_bytes()), "{p}");
            assert_eq!(norm(p), p);
        }
        for p in [
            "//a", "/a//b", "/a/./b", "/a/..", "/a/../b", "/.", "/a/b/.", "/a/b//",
        ] {
            assert!(!is_clean(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn rules_are_split_once() {
        let mut ex = [None; 3];
        assert_eq!(split_exclude(b"/dev::/proc:/sys:/x", &mut ex), 3);
        assert_eq!(ex, [Some(&b"/dev"[..]), Some(b"/proc"), Some(b"/sys")]);
        let mut dm = [None; 4];
        assert_eq!(split_dir_map(b"/h!/g:bad:/a!/b", &mut dm), 2);
        assert_eq!(
            dm[..2],
            [
                Some((&b"/h"[..], &b"/g"[..])),
                Some((&b"/a"[..], &b"/b"[..]))
            ]
        );
    }

    #[test]
    fn dedotdot() {
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/../etc//passwd"), "/etc/passwd");
        assert_eq!(norm("/a/b/../c/./d"), "/a/c/d");
        assert_eq!(norm("/a/b/"), "/a/b/");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/../../.."), "/");
    }

    fn exp(p: &str) -> String {
        let mut o = [0u8; PATH_MAX];
        let n = expand(&V, p.as_bytes(), &mut o);
        s(&o, n)
    }

    #[test]
    fn expand_rules() {
        assert_eq!(exp("/etc/passwd"), "/c/ROOT/etc/passwd");
        assert_eq!(exp("/"), "/c/ROOT/");
        assert_eq!(exp("/dev/null"), "/dev/null");
        assert_eq!(exp("/devices"), "/c/ROOT/devices");
        assert_eq!(exp("/proc"), "/proc");
        assert_eq!(exp("/etc/resolv.conf"), "/etc/resolv.conf");
        assert_eq!(exp("/data"), "/host/data");
        assert_eq!(exp("/data/f"), "/host/data/f");
        assert_eq!(exp("/database"), "/c/ROOT/database");
        assert_eq!(exp("/mnt/deep/x/y"), "/srv/x/y");
        // Already under the root: unchanged.
        assert_eq!(exp("/c/ROOT/bin/sh"), "/c/ROOT/bin/sh");
    }

    #[test]
    fn library_paths_become_host_paths_with_the_containers_after() {
        let mut o = [0u8; 4096];
        let n = library_path(
            &V,
            b"LD_LIBRARY_PATH",
            b"/opt/l::rel/d:/data/x",
            b"/c/ROOT/lib",
            &mut o,
        );
        assert_eq!(
            s(&o, n),
            "LD_LIBRARY_PATH=/c/ROOT/opt/l:rel/d:/host/data/x:/c/ROOT/lib"
        );
        let mut tiny = [0u8; 20];
        assert_eq!(
            library_path(&V, b"LD_LIBRARY_PATH", b"/opt/l", b"/c/ROOT/lib", &mut tiny),
            None
        );
    }

    fn nar(p: &str) -> Option<String> {
        let mut o = [0u8; PATH_MAX];
        narrow(&V, p.as_bytes(), &mut o).map(|n| s(&o, Some(n)))
    }

    #[test]
    fn narrow_rules() {
        assert_eq!(nar("/c/ROOT").as_deref(), Some("/"));
        assert_eq!(nar("/c/ROOT/usr/lib").as_deref(), Some("/usr/lib"));
        assert_eq!(nar("/c/ROOTS"), None);
        assert_eq!(nar("/proc/1"), None);
        assert_eq!(nar("/host/data/f").as_deref(), Some("/data/f"));
        assert_eq!(nar("/srv/x").as_deref(), Some("/mnt/deep/x"));
    }

    #[test]
    fn too_long_is_none() {
        let mut o = [0u8; 16];
        assert_eq!(expand(&V, b"/etc/passwd", &mut o), None);
        assert_eq!(concat(&mut o, &[b"0123456789abcde"]), Some(15));
        assert_eq!(concat(&mut o, &[b"0123456789abcdef"]), None);
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang(b"#!/bin/sh\necho"), Some((&b"/bin/sh"[..], None)));
        assert_eq!(
            shebang(b"#! /usr/bin/env  python3 -u \nx"),
            Some((&b"/usr/bin/env"[..], Some(&b"python3 -u"[..])))
        );
        assert_eq!(shebang(b"  #!/bin/bash"), Some((&b"/bin/bash"[..], None)));
        assert_eq!(shebang(b"echo hi"), None);
        assert_eq!(shebang(b"#!\n"), None);
    }

    #[test]
    fn dotdot() {
        assert!(has_dotdot(b"../x"));
        assert!(has_dotdot(b"a/.."));
        assert!(!has_dotdot(b"a/..b/c"));
    }

    #[test]
    fn elf_kinds() {
        assert_eq!(elf_is_dynamic(b"#!/bin/sh"), None);
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert!(elf_is_dynamic(&me[..4096.min(me.len())]).is_some());
    }

    #[test]
    fn subst_prefilter() {
        let list = b"/sbin/ldconfig=#RETURN(TRUE)#:/usr/sbin/ldconfig=/h/x";
        assert!(may_subst(list, b"/sbin/ldconfig"));
        assert!(may_subst(list, b"ldconfig"));
        assert!(may_subst(list, b"../usr/./sbin/ldconfig"));
        assert!(!may_subst(list, b"/bin/true"));
        assert!(!may_subst(list, b"/sbin/ldconfi"));
        assert!(!may_subst(list, b"/sbin/dconfig"));
        // Not a plain last name: normalizing decides.
        assert!(may_subst(list, b"/sbin/ldconfig/.."));
        assert!(may_subst(list, b"/x/."));
        assert!(may_subst(list, b"/sbin/"));
        assert!(!may_subst(b"", b"/bin/true"));
    }
}
