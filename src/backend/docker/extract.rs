//! Copying results out of the run's volume onto the host, safely.
//!
//! The Engine archive API streams a tar of the requested path from the exited
//! container; a blocking thread unpacks it straight into `to` while counting
//! bytes against the cap. The container is untrusted, so every entry is
//! checked: only regular files and directories are written, never through a
//! symlink, and never outside `to`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use bollard::query_parameters::DownloadFromContainerOptions;
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::errors::{is_not_found, is_transport, status, DockerOp, Error, Result};
use crate::record::{ExtractResult, ExtractSpec, ExtractStatus};

/// Why one extract entry failed; its text is the entry's `error`.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("extract.{0} is empty")]
    Empty(&'static str),
    #[error("path traversal rejected in extract.{field}: {path:?}")]
    Traversal { field: &'static str, path: String },
    #[error("destination exists and is not a directory: {0}")]
    NotADirectory(String),
    #[error("unsafe archive entry rejected (path traversal): {0}")]
    UnsafeEntry(String),
    #[error("unsafe archive entry rejected: {0} is a symlink")]
    ThroughSymlink(String),
    #[error("cannot create directory {0}: a file is in the way")]
    FileInTheWay(String),
    #[error("extract exceeds maxExtractBytes ({0} bytes)")]
    CapExceeded(u64),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the archive failed: {0}")]
    Archive(#[source] io::Error),
    #[error("download of {path} failed: {source}")]
    Download {
        path: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("extract worker stopped: {0}")]
    Worker(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cap's own error anywhere in an error chain (tar wraps read errors).
fn find_cap(e: &(dyn std::error::Error + 'static)) -> Option<u64> {
    if let Some(c) = e.downcast_ref::<CapExceeded>() {
        return Some(c.0);
    }
    let inner = e
        .downcast_ref::<io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|i| find_cap(i));
    inner.or_else(|| e.source().and_then(find_cap))
}

/// An archive read error, keeping the cap's own error as it is.
fn archive_err(e: io::Error) -> ExtractError {
    match find_cap(&e) {
        Some(c) => ExtractError::CapExceeded(c),
        None => ExtractError::Archive(e),
    }
}

/// The container path for `from`: absolute, or relative to `workdir`.
/// Rejects empty paths and `..` segments.
pub fn container_path(from: &str, workdir: &str) -> Result<String, ExtractError> {
    if from.trim().is_empty() {
        return Err(ExtractError::Empty("from"));
    }
    if from.split('/').any(|seg| seg == "..") {
        return Err(ExtractError::Traversal {
            field: "from",
            path: from.to_string(),
        });
    }
    let joined = if from.starts_with('/') {
        from.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), from)
    };
    let trimmed = joined.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

/// Checks the host side of a spec before anything is downloaded.
pub fn check_destination(to: &str) -> Result<PathBuf, ExtractError> {
    if to.trim().is_empty() {
        return Err(ExtractError::Empty("to"));
    }
    if Path::new(to)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(ExtractError::Traversal {
            field: "to",
            path: to.to_string(),
        });
    }
    let path = PathBuf::from(to);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if !(meta.is_dir() || meta.file_type().is_symlink() && path.is_dir()) {
            return Err(ExtractError::NotADirectory(to.to_string()));
        }
    }
    Ok(path)
}

const IO_BUFFER: usize = 1 << 20;

/// Tar headers and padding allowed on top of the content cap, so a flood of
/// empty entries is bounded too.
const FRAMING_ALLOWANCE: u64 = 64 << 20;

/// Reads through to the archive while counting; fails once past `cap`.
struct CappedReader<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::other(CapExceeded(self.cap)));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapExceeded(u64);

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "extract exceeds maxExtractBytes ({} bytes)", self.0)
    }
}

impl std::error::Error for CapExceeded {}

/// What unpacking wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Archive bytes read.
    pub bytes: u64,
    pub files: u64,
    /// Entries left out: links, devices, FIFOs.
    pub skipped: u64,
}

/// Unpacks a Docker archive of one path into `to`.
///
/// Docker roots the archive at the basename of the path: a directory `out`
/// arrives as `out/...` and its contents land directly in `to`; a file arrives
/// as one entry and lands as `to/<name>`. A hardlink to a regular file of the
/// same tree lands as a copy of that file (in either archive order); any
/// other link, device or FIFO is skipped.
pub fn unpack<R: Read>(reader: R, to: &Path, cap: u64) -> Result<Unpacked, ExtractError> {
    // The cap is on content bytes (a 1 GiB file fits a 1 GiB cap); the
    // archive as a whole may add tar framing on top.
    let mut counted = CappedReader {
        inner: reader,
        read: 0,
        cap: cap.saturating_add(FRAMING_ALLOWANCE),
    };
    let mut unpacker = Unpacker {
        to,
        cap,
        content: 0,
        stats: Unpacked::default(),
        files: HashMap::new(),
        waiting: HashMap::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut counted);
        let entries = archive.entries().map_err(archive_err)?;
        let mut root_is_dir: Option<bool> = None;
        for entry in entries {
            let mut entry = entry.map_err(archive_err)?;
            let kind = entry.header().entry_type();
            let raw = entry.path().map_err(archive_err)?.into_owned();
            let parts = safe_components(&raw)?;
            let root_dir = *root_is_dir.get_or_insert(kind.is_dir() && parts.len() == 1);
            let Some(rel) = relative(&parts, root_dir) else {
                continue;
            };
            match kind {
                tar::EntryType::Directory => {
                    fs::create_dir_all(to).map_err(io_at(to))?;
                    if !rel.as_os_str().is_empty() {
                        create_dirs_safely(to, &rel)?;
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if rel.as_os_str().is_empty() {
                        continue;
                    }
                    let size = entry.header().size().unwrap_or(u64::MAX);
                    let mode = entry.header().mode().unwrap_or(0o644);
                    unpacker.write_file(&rel, size, mode, &mut entry)?;
                    unpacker.written(parts, rel)?;
                }
                tar::EntryType::Link => {
                    // The link names another entry of the archive.
                    let target = entry
                        .link_name()
                        .ok()
                        .flatten()
                        .and_then(|t| safe_components(&t).ok());
                    match target {
                        Some(t) if !rel.as_os_str().is_empty() => {
                            if unpacker.copy_link(&t, &rel)? {
                                unpacker.written(parts, rel)?;
                            } else {
                                // Its file (or the link it names) comes later.
                                unpacker.waiting.entry(t).or_default().push((parts, rel));
                            }
                        }
                        _ => unpacker.stats.skipped += 1,
                    }
                }
                // Symlinks, devices and FIFOs from an untrusted container are
                // never recreated on the host.
                _ => unpacker.stats.skipped += 1,
            }
        }
        // Links whose file never came (or is not a regular file).
        unpacker.stats.skipped += unpacker.waiting.values().map(Vec::len).sum::<usize>() as u64;
    }
    // Drain the archive's trailing padding so `bytes` counts the whole stream.
    io::copy(&mut counted, &mut io::sink()).map_err(archive_err)?;
    let mut stats = unpacker.stats;
    stats.bytes = counted.read;
    Ok(stats)
}

type Parts = Vec<std::ffi::OsString>;

/// Where an entry lands below `to`; None for the root of a file archive.
fn relative(parts: &Parts, root_dir: bool) -> Option<PathBuf> {
    if root_dir {
        // Inside a directory archive, drop the leading `out/`.
        if parts.is_empty() {
            return None;
        }
        Some(parts.iter().skip(1).collect())
    } else {
        Some(parts.iter().collect())
    }
}

struct Unpacker<'a> {
    to: &'a Path,
    cap: u64,
    content: u64,
    stats: Unpacked,
    /// Regular files written (links included, as copies), by archive path.
    files: HashMap<Parts, PathBuf>,
    /// Links listed before the entry they name, by the name they wait for.
    waiting: HashMap<Parts, Vec<(Parts, PathBuf)>>,
}

impl Unpacker<'_> {
    fn count(&mut self, size: u64) -> Result<(), ExtractError> {
        self.content = self.content.saturating_add(size);
        if self.content > self.cap {
            return Err(ExtractError::CapExceeded(self.cap));
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        rel: &Path,
        size: u64,
        mode: u32,
        data: &mut impl Read,
    ) -> Result<(), ExtractError> {
        fs::create_dir_all(self.to).map_err(io_at(self.to))?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dirs_safely(self.to, parent)?;
        }
        self.count(size)?;
        let target = self.to.join(rel);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode & 0o777 | 0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(io_at(&target))?;
        let mut file = io::BufWriter::with_capacity(IO_BUFFER, file);
        let written = copy_exactly(data, &mut file, size, &target);
        if let Err(e) = written {
            // A full disk or an archive cut short: no partial file stays.
            drop(file);
            let _ = fs::remove_file(&target);
            return Err(e);
        }
        self.stats.files += 1;
        Ok(())
    }

    /// Records that archive path `parts` was written as `rel`, then writes
    /// the links that were waiting for it, and those waiting for them (each
    /// link once: a chain or a cycle of links costs one pass).
    fn written(&mut self, parts: Parts, rel: PathBuf) -> Result<(), ExtractError> {
        let mut ready = vec![(parts, rel)];
        while let Some((parts, rel)) = ready.pop() {
            let waiters = self.waiting.remove(&parts).unwrap_or_default();
            self.files.insert(parts.clone(), rel);
            for (link, link_rel) in waiters {
                if self.copy_link(&parts, &link_rel)? {
                    ready.push((link, link_rel));
                } else {
                    self.stats.skipped += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes `rel` as a copy of the regular file the archive wrote for
    /// `target`. False when no such file was written (yet).
    fn copy_link(&mut self, target: &Parts, rel: &Path) -> Result<bool, ExtractError> {
        let Some(source) = self.files.get(target).map(|r| self.to.join(r)) else {
            return Ok(false);
        };
        if source == self.to.join(rel) {
            // A link to itself: the file is already there.
            return Ok(true);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&source)
            .map_err(io_at(&source))?;
        let meta = file.metadata().map_err(io_at(&source))?;
        if !meta.is_file() {
            return Ok(false);
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        self.write_file(rel, meta.len(), mode, &mut io::BufReader::new(file))?;
        Ok(true)
    }
}

/// Copies an entry of `size` bytes into `file`: a read error is the
/// archive's, a write error the destination's, and an archive that ends
/// before `size` bytes is an error too (never a short file that looks whole).
fn copy_exactly(
    data: &mut impl Read,
    file: &mut impl Write,
    size: u64,
    target: &Path,
) -> Result<(), ExtractError> {
    let mut buf = [0u8; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive_err(e)),
        };
        file.write_all(&buf[..n]).map_err(io_at(target))?;
        copied += n as u64;
    }
    if copied != size {
        return Err(ExtractError::Archive(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the archive ended {copied} bytes into a {size}-byte file"),
        )));
    }
    file.flush().map_err(io_at(target))
}

/// Path components of an archive entry, refusing anything that could leave
/// the destination (absolute paths, `..`).
fn safe_components(path: &Path) -> Result<Parts, ExtractError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p.to_os_string()),
            Component::CurDir => {}
            _ => return Err(ExtractError::UnsafeEntry(path.display().to_string())),
        }
    }
    Ok(out)
}

/// Creates `base/rel` one level at a time, refusing to pass through a symlink
/// or a file.
fn create_dirs_safely(base: &Path, rel: &Path) -> Result<(), ExtractError> {
    let mut cur = base.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ExtractError::ThroughSymlink(cur.display().to_string()))
            }
            Ok(_) => return Err(ExtractError::FileInTheWay(cur.display().to_string())),
            Err(_) => fs::create_dir(&cur).map_err(io_at(&cur))?,
        }
    }
    Ok(())
}

/// True when a failed download means the results cannot be read out at
/// all (the daemon is unreachable, or failed on its side), rather than that
/// this one entry is wrong.
pub fn fails_as_a_whole(e: &bollard::errors::Error) -> bool {
    is_transport(e) || status(e).is_some_and(|s| s >= 500)
}

/// Extracts one spec from an exited container (its volume included). Err:
/// the archive could not be fetched at all ([`fails_as_a_whole`]).
pub async fn extract_one(
    docker: &Docker,
    container: &str,
    workdir: &str,
    spec: &ExtractSpec,
    cap: u64,
) -> Result<ExtractResult, bollard::errors::Error> {
    let path = match container_path(&spec.from, workdir) {
        Ok(p) => p,
        Err(e) => return Ok(ExtractResult::failed(spec, e)),
    };
    let to = match check_destination(&spec.to) {
        Ok(p) => p,
        Err(e) => return Ok(ExtractResult::failed(spec, e)),
    };
    let mut body = docker
        .download_from_container(
            container,
            Some(DownloadFromContainerOptions { path: path.clone() }),
        )
        .boxed();
    let first = match body.next().await {
        None => return Ok(ExtractResult::new(spec, ExtractStatus::Missing)),
        Some(Err(e)) if is_not_found(&e) => {
            return Ok(ExtractResult::new(spec, ExtractStatus::Missing))
        }
        Some(Err(e)) if fails_as_a_whole(&e) => return Err(e),
        Some(Err(source)) => {
            return Ok(ExtractResult::failed(
                spec,
                ExtractError::Download { path, source },
            ))
        }
        Some(Ok(chunk)) => chunk,
    };
    let stream = futures_util::stream::iter([Ok(first)])
        .chain(body)
        .map_err(io::Error::other);
    // Large buffers: the bridge between the async download and the blocking
    // unpacker costs a thread handoff per read.
    let reader =
        io::BufReader::with_capacity(IO_BUFFER, SyncIoBridge::new(StreamReader::new(stream)));
    let result = tokio::task::spawn_blocking(move || unpack(reader, &to, cap)).await;
    Ok(match result {
        Ok(Ok(stats)) => ExtractResult {
            bytes: Some(stats.bytes),
            ..ExtractResult::new(spec, ExtractStatus::Ok)
        },
        Ok(Err(e)) => ExtractResult::failed(spec, e),
        Err(e) => ExtractResult::failed(spec, ExtractError::Worker(e.to_string())),
    })
}

/// Extracts every spec, in order: one result per spec (a missing or
/// failed entry never fails the run), or `EXTRACT_FAILED` when the results
/// could not be read out at all.
pub async fn extract_all(
    docker: &Docker,
    container: &str,
    workdir: &str,
    specs: &[ExtractSpec],
    cap: u64,
) -> Result<Vec<ExtractResult>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let one = extract_one(docker, container, workdir, spec, cap)
            .await
            .map_err(|e| Error::docker(DockerOp::ExtractFromVolume, Some(container), e))?;
        out.push(one);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry whose name is written raw, so hostile names can be crafted.
    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn archive(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    #[test]
    fn only_an_archive_that_cannot_be_fetched_fails_the_whole_extraction() {
        use bollard::errors::Error as E;
        let daemon = |status_code| E::DockerResponseServerError {
            status_code,
            message: "x".into(),
        };
        assert!(fails_as_a_whole(&daemon(500)));
        assert!(fails_as_a_whole(&daemon(503)));
        assert!(fails_as_a_whole(&E::RequestTimeoutError));
        assert!(!fails_as_a_whole(&daemon(404)), "missing: per entry");
        assert!(!fails_as_a_whole(&daemon(400)), "a bad path: per entry");
        let e = Error::docker(DockerOp::ExtractFromVolume, Some("c"), daemon(500)).public();
        assert_eq!(e.code, Some(crate::errors::ErrorCode::ExtractFailed));
        assert_eq!(e.docker_op.as_deref(), Some("extractFromVolume"));
    }

    #[test]
    fn container_paths() {
        assert_eq!(container_path("out", "/app").unwrap(), "/app/out");
        assert_eq!(container_path("out/", "/app").unwrap(), "/app/out");
        assert_eq!(
            container_path("/data/x.json", "/app").unwrap(),
            "/data/x.json"
        );
        let err = |f: &str| container_path(f, "/app").unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("../etc").contains("traversal"));
        assert!(err("/app/../etc").contains("traversal"));
    }

    #[test]
    fn destinations() {
        let t = tempfile::tempdir().unwrap();
        let err = |t: &str| check_destination(t).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("a/../b").contains("traversal"));
        let f = t.path().join("file");
        fs::write(&f, "").unwrap();
        assert!(err(f.to_str().unwrap()).contains("not a directory"));
        assert!(check_destination(t.path().to_str().unwrap()).is_ok());
    }

    #[test]
    fn directory_contents_land_in_to() {
        let t = tempfile::tempdir().unwrap();
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/a.txt", tar::EntryType::Regular, None, b"A");
            raw_entry(b, "out/sub/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/sub/b.txt", tar::EntryType::Regular, None, b"BB");
        });
        let to = t.path().join("dest/nested");
        let s = unpack(&tar[..], &to, 1 << 20).unwrap();
        assert_eq!(fs::read(to.join("a.txt")).unwrap(), b"A");
        assert_eq!(fs::read(to.join("sub/b.txt")).unwrap(), b"BB");
        assert_eq!(s.files, 2);
        assert_eq!(s.bytes, tar.len() as u64);
    }

    #[test]
    fn single_file_lands_as_basename() {
        let t = tempfile::tempdir().unwrap();
        let tar = archive(|b| raw_entry(b, "result.json", tar::EntryType::Regular, None, b"{}"));
        unpack(&tar[..], t.path(), 1 << 20).unwrap();
        assert_eq!(fs::read(t.path().join("result.json")).unwrap(), b"{}");
    }

    #[test]
    fn links_devices_and_fifos_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(
                b,
                "out/passwd",
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                b"",
            );
            raw_entry(b, "out/root", tar::EntryType::Symlink, Some("/"), b"");
            raw_entry(b, "out/up", tar::EntryType::Symlink, Some("../../.."), b"");
            raw_entry(
                b,
                "out/hard",
                tar::EntryType::Link,
                Some("/etc/shadow"),
                b"",
            );
            raw_entry(b, "out/null", tar::EntryType::Char, None, b"");
            raw_entry(b, "out/disk", tar::EntryType::Block, None, b"");
            raw_entry(b, "out/pipe", tar::EntryType::Fifo, None, b"");
            // A file written "through" a skipped symlink lands as a plain dir.
            raw_entry(b, "out/root/etc/evil", tar::EntryType::Regular, None, b"x");
            raw_entry(b, "out/ok.txt", tar::EntryType::Regular, None, b"ok");
        });
        let to = t.path().join("to");
        let s = unpack(&tar[..], &to, 1 << 20).unwrap();
        assert_eq!(s.skipped, 7);
        assert_eq!(fs::read(to.join("ok.txt")).unwrap(), b"ok");
        for name in ["passwd", "up", "hard", "null", "disk", "pipe"] {
            assert!(fs::symlink_metadata(to.join(name)).is_err(), "{name}");
        }
        let evil = to.join("root/etc/evil");
        assert!(fs::symlink_metadata(to.join("root")).unwrap().is_dir());
        assert_eq!(fs::read(evil).unwrap(), b"x");
        assert!(!Path::new("/etc/evil").exists());
    }

    #[test]
    fn traversal_names_are_rejected() {
        for name in ["out/../../escape", "/abs/escape", "../escape"] {
            let t = tempfile::tempdir().unwrap();
            let to = t.path().join("to");
            let tar = archive(|b| {
                raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
                raw_entry(b, name, tar::EntryType::Regular, None, b"x");
            });
            let err = unpack(&tar[..], &to, 1 << 20).unwrap_err().to_string();
            assert!(err.contains("unsafe archive entry"), "{name}: {err}");
            assert!(!t.path().join("escape").exists());
        }
    }

    #[test]
    fn existing_symlink_in_destination_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let to = t.path().join("to");
        fs::create_dir(&to).unwrap();
        std::os::unix::fs::symlink(&outside, to.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), to.join("f")).unwrap();
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/sub/x", tar::EntryType::Regular, None, b"x");
        });
        assert!(unpack(&tar[..], &to, 1 << 20).is_err());
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/f", tar::EntryType::Regular, None, b"x");
        });
        assert!(unpack(&tar[..], &to, 1 << 20).is_err());
        assert!(fs::read_dir(&outside).unwrap().next().is_none());
    }

    #[test]
    fn hardlinks_inside_the_tree_land_as_copies_in_either_order() {
        for link_first in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let to = t.path().join("to");
            let tar = archive(|b| {
                raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
                if link_first {
                    raw_entry(b, "out/hard", tar::EntryType::Link, Some("out/real"), b"");
                }
                raw_entry(b, "out/real", tar::EntryType::Regular, None, b"content");
                if !link_first {
                    raw_entry(b, "out/hard", tar::EntryType::Link, Some("out/real"), b"");
                }
            });
            let s = unpack(&tar[..], &to, 1 << 20).unwrap();
            for name in ["real", "hard"] {
                let meta = fs::symlink_metadata(to.join(name)).unwrap();
                assert!(meta.is_file(), "{name} ({link_first})");
                assert_eq!(fs::read(to.join(name)).unwrap(), b"content");
            }
            // A copy, never a link to the other name.
            use std::os::unix::fs::MetadataExt;
            assert_eq!(fs::metadata(to.join("hard")).unwrap().nlink(), 1);
            assert_eq!(s.files, 2);
        }
    }

    #[test]
    fn links_to_links_resolve_in_any_order_and_cycles_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("to");
        let link = |b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str| {
            raw_entry(b, name, tar::EntryType::Link, Some(target), b"")
        };
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            // c -> b -> a, all listed before a.
            link(b, "out/c", "out/b");
            link(b, "out/b", "out/a");
            raw_entry(b, "out/a", tar::EntryType::Regular, None, b"chain");
            // d -> c, listed after everything it needs.
            link(b, "out/d", "out/c");
            // A cycle, and a link to itself, with no file behind them.
            link(b, "out/x", "out/y");
            link(b, "out/y", "out/x");
            link(b, "out/self", "out/self");
        });
        let s = unpack(&tar[..], &to, 1 << 20).unwrap();
        for name in ["a", "b", "c", "d"] {
            assert!(
                fs::symlink_metadata(to.join(name)).unwrap().is_file(),
                "{name}"
            );
            assert_eq!(fs::read(to.join(name)).unwrap(), b"chain", "{name}");
        }
        for name in ["x", "y", "self"] {
            assert!(!to.join(name).exists(), "{name}");
        }
        assert_eq!(s.files, 4);
        assert_eq!(s.skipped, 3);
    }

    #[test]
    fn a_link_to_itself_after_its_file_keeps_the_content() {
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("to");
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/self", tar::EntryType::Link, Some("out/self"), b"");
            raw_entry(b, "out/self", tar::EntryType::Regular, None, b"kept");
            raw_entry(b, "out/self", tar::EntryType::Link, Some("out/self"), b"");
        });
        unpack(&tar[..], &to, 1 << 20).unwrap();
        assert_eq!(fs::read(to.join("self")).unwrap(), b"kept");
    }

    #[test]
    fn hostile_hardlinks_write_nothing_outside() {
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("to");
        let outside = t.path().join("secret");
        fs::write(&outside, "secret").unwrap();
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/a", tar::EntryType::Link, Some("/etc/passwd"), b"");
            raw_entry(
                b,
                "out/b",
                tar::EntryType::Link,
                Some(outside.to_str().unwrap()),
                b"",
            );
            raw_entry(b, "out/sub/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/c", tar::EntryType::Link, Some("out/sub"), b"");
            raw_entry(
                b,
                "out/l",
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                b"",
            );
            raw_entry(b, "out/d", tar::EntryType::Link, Some("out/l"), b"");
            raw_entry(b, "out/ok", tar::EntryType::Regular, None, b"ok");
        });
        let s = unpack(&tar[..], &to, 1 << 20).unwrap();
        for name in ["a", "b", "c", "d", "l"] {
            assert!(fs::symlink_metadata(to.join(name)).is_err(), "{name}");
        }
        assert_eq!(fs::read(to.join("ok")).unwrap(), b"ok");
        assert_eq!(fs::read(&outside).unwrap(), b"secret");
        assert_eq!(s.skipped, 5);
        // `..` in a link target is refused like any unsafe name.
        let tar = archive(|b| {
            raw_entry(b, "out/", tar::EntryType::Directory, None, b"");
            raw_entry(b, "out/e", tar::EntryType::Link, Some("../../secret"), b"");
        });
        let s = unpack(&tar[..], &t.path().join("to2"), 1 << 20).unwrap();
        assert_eq!(s.skipped, 1);
    }

    #[test]
    fn cap_is_enforced_while_streaming() {
        let t = tempfile::tempdir().unwrap();
        let tar =
            archive(|b| raw_entry(b, "big", tar::EntryType::Regular, None, &vec![1u8; 100_000]));
        let err = unpack(&tar[..], t.path(), 10_000).unwrap_err().to_string();
        assert!(err.contains("maxExtractBytes"), "{err}");
        assert!(
            !t.path().join("big").exists(),
            "an over-cap file is not started"
        );
        // Exactly the cap fits: the cap counts content, not tar framing.
        let tar =
            archive(|b| raw_entry(b, "fit", tar::EntryType::Regular, None, &vec![1u8; 10_000]));
        unpack(&tar[..], t.path(), 10_000).unwrap();
        assert_eq!(fs::read(t.path().join("fit")).unwrap().len(), 10_000);
    }

    #[test]
    fn a_file_cut_short_is_not_left_half_written() {
        let t = tempfile::tempdir().unwrap();
        let mut tar = archive(|b| {
            raw_entry(b, "done", tar::EntryType::Regular, None, b"whole");
            raw_entry(b, "cut", tar::EntryType::Regular, None, &vec![1u8; 100_000]);
        });
        tar.truncate(60_000);
        assert!(unpack(&tar[..], t.path(), 1 << 20).is_err());
        assert_eq!(fs::read(t.path().join("done")).unwrap(), b"whole");
        assert!(!t.path().join("cut").exists(), "partial file left");
    }
}
