//! Copying results out of the run's volume onto the host, safely.
//!
//! The Engine archive API streams a tar of the requested path from the exited
//! container; a blocking thread unpacks it straight into `to` while counting
//! bytes against the cap. The container is untrusted, so every entry is
//! checked: only regular files and directories are written, never through a
//! symlink, and never outside `to`.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use bollard::query_parameters::DownloadFromContainerOptions;
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::errors::is_not_found;

/// One `{ from, to }` of `RunRequest.extract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractSpec {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractStatus {
    Ok,
    Missing,
    Error,
}

/// What happened to one spec. A missing or failed entry never fails the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractResult {
    pub from: String,
    pub to: String,
    pub status: ExtractStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl ExtractResult {
    fn new(spec: &ExtractSpec, status: ExtractStatus) -> Self {
        ExtractResult {
            from: spec.from.clone(),
            to: spec.to.clone(),
            status,
            bytes: None,
            error: None,
        }
    }

    fn failed(spec: &ExtractSpec, error: impl Into<String>) -> Self {
        ExtractResult {
            error: Some(error.into()),
            ..Self::new(spec, ExtractStatus::Error)
        }
    }
}

/// The container path for `from`: absolute, or relative to `workdir`.
/// Rejects empty paths and `..` segments.
pub fn container_path(from: &str, workdir: &str) -> Result<String, String> {
    if from.trim().is_empty() {
        return Err("extract.from is empty".into());
    }
    if from.split('/').any(|seg| seg == "..") {
        return Err(format!("path traversal rejected in extract.from: {from:?}"));
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
pub fn check_destination(to: &str) -> Result<PathBuf, String> {
    if to.trim().is_empty() {
        return Err("extract.to is empty".into());
    }
    if Path::new(to)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(format!("path traversal rejected in extract.to: {to:?}"));
    }
    let path = PathBuf::from(to);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if !(meta.is_dir() || meta.file_type().is_symlink() && path.is_dir()) {
            return Err(format!("destination exists and is not a directory: {to}"));
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
/// as one entry and lands as `to/<name>`.
pub fn unpack<R: Read>(reader: R, to: &Path, cap: u64) -> Result<Unpacked, String> {
    // The cap is on content bytes (a 1 GiB file fits a 1 GiB cap); the
    // archive as a whole may add tar framing on top.
    let mut counted = CappedReader {
        inner: reader,
        read: 0,
        cap: cap.saturating_add(FRAMING_ALLOWANCE),
    };
    let mut content: u64 = 0;
    let mut stats = Unpacked::default();
    {
        let mut archive = tar::Archive::new(&mut counted);
        let entries = archive.entries().map_err(|e| e.to_string())?;
        let mut root_is_dir: Option<bool> = None;
        for entry in entries {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let kind = entry.header().entry_type();
            let raw = entry.path().map_err(|e| e.to_string())?.into_owned();
            let parts = safe_components(&raw)?;
            let is_dir = kind.is_dir();
            let root_dir = *root_is_dir.get_or_insert(is_dir && parts.len() == 1);
            // Inside a directory archive, drop the leading `out/`.
            let rel: PathBuf = if root_dir {
                if parts.is_empty() {
                    continue;
                }
                parts.iter().skip(1).collect()
            } else {
                parts.iter().collect()
            };
            match kind {
                tar::EntryType::Directory => {
                    fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
                    if !rel.as_os_str().is_empty() {
                        create_dirs_safely(to, &rel)?;
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if rel.as_os_str().is_empty() {
                        continue;
                    }
                    fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
                    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                        create_dirs_safely(to, parent)?;
                    }
                    content = content.saturating_add(entry.header().size().unwrap_or(u64::MAX));
                    if content > cap {
                        return Err(CapExceeded(cap).to_string());
                    }
                    let target = to.join(&rel);
                    let mode = entry.header().mode().unwrap_or(0o644) & 0o777 | 0o600;
                    let file = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(mode)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&target)
                        .map_err(|e| format!("{}: {e}", target.display()))?;
                    let mut file = io::BufWriter::with_capacity(IO_BUFFER, file);
                    io::copy(&mut entry, &mut file).map_err(|e| e.to_string())?;
                    file.flush().map_err(|e| e.to_string())?;
                    stats.files += 1;
                }
                // Links, devices and FIFOs from an untrusted container are never
                // recreated on the host.
                _ => stats.skipped += 1,
            }
        }
    }
    // Drain the archive's trailing padding so `bytes` counts the whole stream.
    io::copy(&mut counted, &mut io::sink()).map_err(|e| e.to_string())?;
    stats.bytes = counted.read;
    Ok(stats)
}

/// Path components of an archive entry, refusing anything that could leave
/// the destination (absolute paths, `..`).
fn safe_components(path: &Path) -> Result<Vec<std::ffi::OsString>, String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p.to_os_string()),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "unsafe archive entry rejected (path traversal): {}",
                    path.display()
                ))
            }
        }
    }
    Ok(out)
}

/// Creates `base/rel` one level at a time, refusing to pass through a symlink
/// or a file.
fn create_dirs_safely(base: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = base.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "unsafe archive entry rejected: {} is a symlink",
                    cur.display()
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "cannot create directory {}: a file is in the way",
                    cur.display()
                ))
            }
            Err(_) => fs::create_dir(&cur).map_err(|e| format!("{}: {e}", cur.display()))?,
        }
    }
    Ok(())
}

/// Extracts one spec from an exited container (its volume included).
pub async fn extract_one(
    docker: &Docker,
    container: &str,
    workdir: &str,
    spec: &ExtractSpec,
    cap: u64,
) -> ExtractResult {
    let path = match container_path(&spec.from, workdir) {
        Ok(p) => p,
        Err(e) => return ExtractResult::failed(spec, e),
    };
    let to = match check_destination(&spec.to) {
        Ok(p) => p,
        Err(e) => return ExtractResult::failed(spec, e),
    };
    let mut body = docker
        .download_from_container(
            container,
            Some(DownloadFromContainerOptions { path: path.clone() }),
        )
        .boxed();
    let first = match body.next().await {
        None => return ExtractResult::new(spec, ExtractStatus::Missing),
        Some(Err(e)) if is_not_found(&e) => {
            return ExtractResult::new(spec, ExtractStatus::Missing)
        }
        Some(Err(e)) => {
            return ExtractResult::failed(spec, format!("download of {path} failed: {e}"))
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
    match result {
        Ok(Ok(stats)) => ExtractResult {
            bytes: Some(stats.bytes),
            ..ExtractResult::new(spec, ExtractStatus::Ok)
        },
        Ok(Err(e)) => ExtractResult::failed(spec, e),
        Err(e) => ExtractResult::failed(spec, format!("extract worker stopped: {e}")),
    }
}

/// Extracts every spec, in order.
pub async fn extract_all(
    docker: &Docker,
    container: &str,
    workdir: &str,
    specs: &[ExtractSpec],
    cap: u64,
) -> Vec<ExtractResult> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(extract_one(docker, container, workdir, spec, cap).await);
    }
    out
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
    fn container_paths() {
        assert_eq!(container_path("out", "/app").unwrap(), "/app/out");
        assert_eq!(container_path("out/", "/app").unwrap(), "/app/out");
        assert_eq!(
            container_path("/data/x.json", "/app").unwrap(),
            "/data/x.json"
        );
        assert!(container_path("", "/app").unwrap_err().contains("empty"));
        assert!(container_path("../etc", "/app")
            .unwrap_err()
            .contains("traversal"));
        assert!(container_path("/app/../etc", "/app")
            .unwrap_err()
            .contains("traversal"));
    }

    #[test]
    fn destinations() {
        let t = tempfile::tempdir().unwrap();
        assert!(check_destination("").unwrap_err().contains("empty"));
        assert!(check_destination("a/../b")
            .unwrap_err()
            .contains("traversal"));
        let f = t.path().join("file");
        fs::write(&f, "").unwrap();
        assert!(check_destination(f.to_str().unwrap())
            .unwrap_err()
            .contains("not a directory"));
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
            let err = unpack(&tar[..], &to, 1 << 20).unwrap_err();
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
    fn cap_is_enforced_while_streaming() {
        let t = tempfile::tempdir().unwrap();
        let tar =
            archive(|b| raw_entry(b, "big", tar::EntryType::Regular, None, &vec![1u8; 100_000]));
        let err = unpack(&tar[..], t.path(), 10_000).unwrap_err();
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
}
