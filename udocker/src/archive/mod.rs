//! Image and container archives: `export`, `import`, `load`, `save` (`spec/udocker.md` §1–2).
//!
//! * [`export`]: a container's ROOT as a flat tar (what `docker export` writes), or with `--clone`
//!   the whole container directory (udocker's clone format).
//! * [`import`]: a flat rootfs tar becomes a one-layer **v2** image (synthesized OCI config and
//!   manifest), or goes straight into a new container (`--tocontainer`), or a clone archive becomes
//!   a container again (`--clone`).
//! * [`load`]: `docker save` archives (legacy and Docker ≥ 25) and OCI image layout tarballs
//!   (`skopeo copy … oci-archive:`), stored as v2 images with every blob's digest checked.
//! * [`save`]: the docker-archive format `docker load` and `skopeo copy docker-archive:` read
//!   (uncompressed `layer.tar`s), or an OCI image layout tarball (`--oci`).
//!
//! Every tar we read is hostile: it is only ever extracted through [`crate::unpack::Unpacker`],
//! which keeps every member inside the directory it extracts into, and paths named *inside* an
//! archive (manifest.json's `Layers`, symlinked blobs) are resolved by [`resolve_member`], which
//! never leaves the extracted tree.

pub mod export;
pub mod import;
pub mod load;
pub mod save;

use crate::digest::{Digest, Hasher};
use crate::fsutil;
use crate::repo::RepoError;
use crate::unpack::UnpackError;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

pub use export::export_container;
pub use import::{import_clone, import_image, import_to_container, ImportOptions, Source};
pub use load::{load, LoadOptions, LoadReport};
pub use save::{save_docker, save_oci};

/// OCI media types (image-spec `media-types.md`).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Bound on JSON documents read from an archive (manifests, indexes, configs): containerd uses
/// 4 MiB for manifests; configs with long histories can be larger, hence 16 MiB.
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug)]
pub enum ArchiveError {
    Repo(RepoError),
    Io(String, PathBuf, io::Error),
    /// Extraction of an archive failed (unreadable tar, bad compression, disk full).
    Unpack(UnpackError),
    /// The input is not an archive of the expected kind, or is inconsistent.
    Format(String),
    /// A blob's content does not match the digest the archive names it by.
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The output file already exists: archives are never written over an existing file.
    OutputExists(PathBuf),
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Repo(e) => write!(f, "{e}"),
            ArchiveError::Io(op, p, e) => write!(f, "{op} {}: {e}", p.display()),
            ArchiveError::Unpack(e) => write!(f, "{e}"),
            ArchiveError::Format(m) => f.write_str(m),
            ArchiveError::DigestMismatch {
                what,
                expected,
                actual,
            } => write!(f, "{what}: content is {actual}, expected {expected}"),
            ArchiveError::OutputExists(p) => {
                write!(f, "output file already exists: {}", p.display())
            }
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<RepoError> for ArchiveError {
    fn from(e: RepoError) -> Self {
        ArchiveError::Repo(e)
    }
}

impl From<UnpackError> for ArchiveError {
    fn from(e: UnpackError) -> Self {
        ArchiveError::Unpack(e)
    }
}

pub type Result<T> = std::result::Result<T, ArchiveError>;

pub(crate) fn io_err(op: &str, p: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let op = op.to_string();
    let p = p.to_path_buf();
    move |e| ArchiveError::Io(op, p, e)
}

// ---------------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------------

/// Compression of a layer or archive, from its magic bytes (gzip RFC 1952 `1f 8b`, zstd RFC 8878
/// `28 b5 2f fd`); anything else is taken as a plain tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn of_file(p: &Path) -> io::Result<Compression> {
        let mut f = File::open(p)?;
        let mut m = [0u8; 4];
        let n = read_full(&mut f, &mut m)?;
        Ok(Compression::sniff(&m[..n]))
    }

    /// The OCI layer media type for a tar with this compression.
    pub fn oci_layer_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Read until `buf` is full or EOF; returns how much was read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader yielding the decompressed stream of `r` (gzip, zstd or plain, by magic bytes). Works
/// on pipes: the magic bytes are read, then put back in front of the rest.
pub fn decompress<'a, R: Read + Send + 'a>(
    mut r: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut m = [0u8; 4];
    let n = read_full(&mut r, &mut m)?;
    let c = Compression::sniff(&m[..n]);
    let whole = io::BufReader::with_capacity(1 << 20, io::Cursor::new(m[..n].to_vec()).chain(r));
    Ok(match c {
        Compression::Gzip => (c, Box::new(flate2::read::MultiGzDecoder::new(whole))),
        Compression::Zstd => (
            c,
            Box::new(
                ruzstd::decoding::StreamingDecoder::new(whole)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
            ),
        ),
        Compression::None => (c, Box::new(whole)),
    })
}

/// Hashes (sha256) and counts what passes through.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    pub count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(crate::digest::Algorithm::Sha256),
            count: 0,
        }
    }

    /// Read the rest of the stream (so the digest covers all of it), then return the digest.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<R> fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashingReader")
    }
}

/// sha256 and size of a file.
pub fn hash_file(p: &Path) -> Result<(Digest, u64)> {
    let f = File::open(p).map_err(io_err("reading", p))?;
    HashingReader::new(f).finish().map_err(io_err("reading", p))
}

// ---------------------------------------------------------------------------------------------
// Output: a new file, written under a temporary name and renamed into place, or stdout
// ---------------------------------------------------------------------------------------------

enum Sink {
    File(BufWriter<File>),
    Stdout(BufWriter<io::Stdout>),
}

/// Where an archive is written. A file output is created beside its final name and only renamed
/// to it when complete (a failed or killed export leaves no half archive behind), and never
/// replaces an existing file (renameat2 `RENAME_NOREPLACE`, falling back to link(2)).
pub struct Output {
    sink: Sink,
    /// `(temporary, final)` for file outputs; the temporary is removed if never committed.
    paths: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("paths", &self.paths)
            .finish()
    }
}

impl Output {
    /// `None` writes to stdout.
    pub fn create(dest: Option<&Path>) -> Result<Output> {
        let Some(dest) = dest else {
            return Ok(Output {
                sink: Sink::Stdout(BufWriter::with_capacity(1 << 20, io::stdout())),
                paths: None,
            });
        };
        if fs::symlink_metadata(dest).is_ok() {
            return Err(ArchiveError::OutputExists(dest.to_path_buf()));
        }
        let tmp = fsutil::temp_sibling(dest);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        Ok(Output {
            sink: Sink::File(BufWriter::with_capacity(1 << 20, f)),
            paths: Some((tmp, dest.to_path_buf())),
        })
    }

    /// Flush, and for a file give it its final name.
    pub fn commit(mut self) -> Result<()> {
        let what = self
            .paths
            .as_ref()
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| PathBuf::from("<stdout>"));
        match &mut self.sink {
            Sink::Stdout(w) => w.flush().map_err(io_err("writing", &what))?,
            Sink::File(w) => {
                w.flush().map_err(io_err("writing", &what))?;
                w.get_ref().sync_all().map_err(io_err("writing", &what))?;
            }
        }
        if let Some((tmp, dest)) = self.paths.take() {
            let res = match nix::fcntl::renameat2(
                None,
                &tmp,
                None,
                &dest,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => Ok(()),
                Err(nix::errno::Errno::EEXIST) => {
                    Err(ArchiveError::OutputExists(dest.to_path_buf()))
                }
                // File systems without renameat2 flags: link(2) also refuses an existing name.
                Err(_) => match fs::hard_link(&tmp, &dest) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Err(ArchiveError::OutputExists(dest.to_path_buf()))
                    }
                    Err(e) => Err(ArchiveError::Io("renaming".into(), tmp.clone(), e)),
                },
            };
            let _ = fs::remove_file(&tmp);
            res?;
            fsutil::sync_dir(dest.parent().unwrap_or(Path::new(".")));
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::File(w) => w.write(buf),
            Sink::Stdout(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::File(w) => w.flush(),
            Sink::Stdout(w) => w.flush(),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.paths {
            let _ = fs::remove_file(tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tar writing
// ---------------------------------------------------------------------------------------------

/// A tar writer that stores names and link targets byte for byte (the `tar` crate's builder
/// normalises them as paths, which would turn a symlink to `a/./b` into `a/b`). Names longer than
/// the 100-byte header field use GNU long-name entries (`././@LongLink`, type `L`/`K`), which GNU
/// tar, bsdtar, Go's archive/tar (docker, skopeo) and the `tar` crate all read.
pub struct TarOut<W: Write> {
    w: W,
}

impl<W: Write> fmt::Debug for TarOut<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TarOut")
    }
}

const BLOCK: usize = 512;

impl<W: Write> TarOut<W> {
    pub fn new(w: W) -> Self {
        TarOut { w }
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn long_entry(&mut self, kind: u8, data: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(data)?;
        self.w.write_all(&[0])?;
        self.pad(data.len() as u64 + 1)
    }

    /// Write one member: `h` carries type, mode, owner, mtime and size (0 for non-files); `data`
    /// must yield `h`'s size in bytes (shorter input is padded with zeros, longer is cut, so a
    /// file changing while it is archived cannot corrupt the archive's framing).
    pub fn append(
        &mut self,
        h: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let name_field = &mut h.as_gnu_mut().expect("gnu header").name;
        name_field.fill(0);
        if name.len() > name_field.len() {
            self.long_entry(b'L', name)?;
            let name_field = &mut h.as_gnu_mut().expect("gnu header").name;
            name_field.copy_from_slice(&name[..100]);
        } else {
            name_field[..name.len()].copy_from_slice(name);
        }
        if let Some(l) = link {
            let lf = &mut h.as_gnu_mut().expect("gnu header").linkname;
            lf.fill(0);
            if l.len() > lf.len() {
                self.long_entry(b'K', l)?;
                let lf = &mut h.as_gnu_mut().expect("gnu header").linkname;
                lf.copy_from_slice(&l[..100]);
            } else {
                lf[..l.len()].copy_from_slice(l);
            }
        }
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        let size = h.entry_size()?;
        if size > 0 {
            let mut exact = data.take(size).chain(io::repeat(0)).take(size);
            io::copy(&mut exact, &mut self.w)?;
            self.pad(size)?;
        }
        Ok(())
    }

    /// A regular file member with fixed metadata (mode, root owner, mtime 0): save's members.
    pub fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        self.append(&mut h, name.as_bytes(), None, data)
    }

    pub fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.file(name, data.len() as u64, &mut io::Cursor::new(data))
    }

    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        self.append(&mut h, name.as_bytes(), None, &mut io::empty())
    }

    /// The end-of-archive marker (two zero blocks); returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading extracted archives
// ---------------------------------------------------------------------------------------------

/// Resolve `rel`, a path named inside an archive (manifest.json's `Config`/`Layers`, an OCI blob
/// path), to a regular file of the tree extracted at `root`, following symlinks the archive holds
/// (Docker ≥ 25 links `<id>/layer.tar` to `../blobs/sha256/<hex>`) but never out of `root`:
/// an absolute link target, or `..` above `root`, is refused. `root` is a private directory of
/// ours (mode 0700, created by this process), so nothing changes under us between the checks
/// and the use.
pub fn resolve_member(root: &Path, rel: &str) -> Result<PathBuf> {
    let bad = |why: &str| ArchiveError::Format(format!("archive member {rel:?}: {why}"));
    if rel.starts_with('/') {
        return Err(bad("absolute path"));
    }
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: Vec<std::ffi::OsString> = Path::new(rel)
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if stack.pop().is_none() {
                    return Err(bad("leads outside the archive"));
                }
                continue;
            }
            _ => {}
        }
        let mut p = root.to_path_buf();
        p.extend(&stack);
        p.push(&c);
        let m = fs::symlink_metadata(&p).map_err(|_| bad("not found in the archive"))?;
        if m.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(bad("too many levels of symbolic links"));
            }
            let t = fs::read_link(&p).map_err(io_err("reading", &p))?;
            if t.is_absolute() {
                return Err(bad("symbolic link out of the archive"));
            }
            for part in t.components().rev() {
                match part {
                    Component::Normal(_) | Component::ParentDir | Component::CurDir => {
                        todo.push(part.as_os_str().to_os_string())
                    }
                    _ => return Err(bad("symbolic link out of the archive")),
                }
            }
        } else {
            stack.push(c);
        }
    }
    let mut p = root.to_path_buf();
    p.extend(&stack);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => Ok(p),
        _ => Err(bad("not a regular file")),
    }
}

/// Read a JSON document of at most [`MAX_JSON`] bytes.
pub fn read_json_file(p: &Path) -> Result<(Vec<u8>, serde_json::Value)> {
    let f = File::open(p).map_err(io_err("reading", p))?;
    let mut bytes = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", p))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(ArchiveError::Format(format!(
            "{}: JSON document too large",
            p.display()
        )));
    }
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::Format(format!("{}: invalid JSON: {e}", p.display())))?;
    Ok((bytes, v))
}

/// A private temporary directory under `layers/.partial/` (same file system as the blobs, so
/// verified blobs are renamed into place, not copied), removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl fmt::Debug for TempDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TempDir({})", self.path.display())
    }
}

impl TempDir {
    pub fn new(repo: &crate::repo::LocalRepo, what: &str) -> Result<TempDir> {
        let base = repo.partial_dir()?;
        let path = fsutil::temp_sibling(&base.join(what));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err("creating", &path))?;
        Ok(TempDir { path })
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fsutil::remove_tree(&self.path);
    }
}

/// Put the file `src` (ours, in `layers/.partial/`) into `layers/` as blob `digest`. When the
/// blob is already there, `src` is just dropped: a file named `sha256:<hex>` in layers/ always had
/// that digest when it was written (`repo` module invariant).
pub fn install_blob(repo: &crate::repo::LocalRepo, src: &Path, digest: &Digest) -> Result<()> {
    let dest = repo.blob_path(digest);
    if dest.is_file() {
        let _ = fs::remove_file(src);
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src, fs::Permissions::from_mode(0o644))
        .map_err(io_err("installing", src))?;
    fs::rename(src, &dest).map_err(io_err("installing", &dest))?;
    fsutil::sync_dir(&repo.layout.layers);
    Ok(())
}

/// Write `data` as blob `sha256(data)` into layers/ (configs, synthesized or loaded).
pub fn store_bytes_blob(repo: &crate::repo::LocalRepo, data: &[u8]) -> Result<Digest> {
    let d = Digest::sha256_of(data);
    let dest = repo.blob_path(&d);
    if !dest.is_file() {
        let tmp = fsutil::temp_sibling(&repo.partial_dir()?.join("blob"));
        fsutil::write_atomic(&tmp, data, 0o644).map_err(io_err("writing", &tmp))?;
        fs::rename(&tmp, &dest).map_err(io_err("installing", &dest))?;
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Names and time
// ---------------------------------------------------------------------------------------------

/// Split `name[:tag]` at the last `:` that comes after the last `/` (a registry port is not a
/// tag); a `@digest` suffix is dropped. Returns `None` for the tag when there is none.
pub fn split_name_tag(s: &str) -> (String, Option<String>) {
    let s = s.split('@').next().unwrap_or(s);
    match s.rfind(':') {
        Some(c) if s.rfind('/').is_none_or(|sl| c > sl) => {
            (s[..c].to_string(), Some(s[c + 1..].to_string()))
        }
        _ => (s.to_string(), None),
    }
}

/// RFC 3339 UTC timestamp (`2024-01-31T12:00:00Z`) for a Unix time, via the days-to-civil
/// conversion of H. Hinnant's "chrono-Compatible Low-Level Date Algorithms".
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// An error from reading a tar, made fit for a one-line message: the `tar` crate quotes raw
/// header bytes (garbage, newlines) when a header is invalid.
pub(crate) fn tar_msg(e: &dyn fmt::Display) -> String {
    let s = e.to_string();
    if s.contains("cksum") || s.contains("checksum") {
        return "invalid tar header".into();
    }
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    clean
}

/// Lossless bytes of a path, for tar names.
pub(crate) fn path_bytes(p: &Path) -> &[u8] {
    OsStr::as_bytes(p.as_os_str())
}

#[cfg(test)]
mod tests;
