//! Copying the caller's `dir` into the run's volume.
//!
//! The folder is walked and written as a tar stream by a blocking thread; the
//! stream is uploaded through the Engine archive API into a created (not yet
//! started) container, which lands it in the volume mounted at workdir: the
//! run's own container, or, when its root filesystem is read-only, its seed
//! twin (a never-started container of the same image sharing the volume: the
//! daemon extracts only into volumes of a read-only container, and the
//! volume root's mode comes from an entry unpacked at workdir's parent). No
//! helper image is involved, and memory stays bounded by the pipe buffer
//! whatever the size of the folder.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use tokio_util::io::{ReaderStream, SyncIoBridge};

use bollard::query_parameters::UploadToContainerOptions;
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use crate::errors::{Error, Result, SeedError};

/// Names skipped at any depth, whatever the caller's `ignore` adds.
pub const DEFAULT_IGNORES: [&str; 8] = [
    ".git",
    "node_modules",
    "dist",
    "build",
    ".next",
    ".cache",
    ".turbo",
    "coverage",
];

const PIPE_BUFFER: usize = 256 * 1024;

/// The contract's errors for a `dir` that cannot be seeded.
pub fn check_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Err(_) => Err(Error::DirNotFound(dir.to_path_buf())),
        Ok(m) if !m.is_dir() => Err(Error::DirNotADirectory(dir.to_path_buf())),
        Ok(_) => Ok(()),
    }
}

/// Seeds `dir` (None: nothing but workdir's own `a+rwX` mode, for a job
/// that runs as another user than root) into the created, never started
/// container `target` (run `id`'s own, or its seed twin), landing at
/// `workdir`. A cancel aborts the upload (and is not an error).
pub async fn upload(
    docker: &Docker,
    target: &str,
    id: &str,
    dir: Option<&Path>,
    workdir: &str,
    ignore: &[String],
    cancel: &CancellationToken,
) -> Result<()> {
    let (parent, root) = upload_target(workdir);
    let tar = tar_stream(dir.map(Path::to_path_buf), root, ignore_set(ignore));
    let walk_error = tar.error.clone();
    let sent = docker.upload_to_container(
        target,
        Some(UploadToContainerOptions {
            path: parent,
            ..Default::default()
        }),
        bollard::body_try_stream(tar.stream),
    );
    tokio::select! {
        r = sent => r.map_err(|e| {
            // A failed walk ends the body with an error: report the walk's cause.
            let source = match walk_error.lock().unwrap().clone() {
                Some(msg) => SeedError::Walk(msg),
                None => SeedError::Upload(e),
            };
            Error::Seed { id: id.to_string(), source }
        }),
        _ = cancel.cancelled() => Ok(()),
    }
}

pub fn ignore_set(extra: &[String]) -> HashSet<String> {
    DEFAULT_IGNORES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

/// Where to upload a seed for `workdir`, and the name its root entry takes.
///
/// The archive is unpacked in workdir's parent with every entry under
/// workdir's own name: Docker skips the metadata of a `.` entry, so only a
/// named root entry makes workdir itself `a+rwX`.
pub fn upload_target(workdir: &str) -> (String, String) {
    let p = Path::new(workdir);
    let parent = p
        .parent()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let name = p
        .file_name()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    (parent, name)
}

/// Writes `dir`'s contents as a tar archive rooted at `root`: structure kept,
/// ignored names and symlinks skipped, everything `a+rwX` (executables keep
/// their x bits). Returns the number of regular files written.
pub fn write_tar<W: Write>(
    dir: &Path,
    root: &str,
    ignore: &HashSet<String>,
    out: W,
) -> io::Result<u64> {
    let mut builder = tar::Builder::new(out);
    let root_meta = fs::metadata(dir)?;
    let mut header = dir_header(root_meta.mtime());
    builder.append_data(&mut header, root, io::empty())?;
    let mut files = 0;
    walk(&mut builder, dir, Path::new(root), ignore, &mut files)?;
    builder.into_inner()?.flush()?;
    Ok(files)
}

/// An archive of one entry, the directory `root` (`a+rwX`): uploaded at
/// workdir's parent, it makes the volume root writable by any user.
pub fn write_root_only<W: Write>(root: &str, out: W) -> io::Result<u64> {
    let mut builder = tar::Builder::new(out);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    builder.append_data(&mut dir_header(now), root, io::empty())?;
    builder.into_inner()?.flush()?;
    Ok(0)
}

fn dir_header(mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(mtime.max(0) as u64);
    h
}

fn walk<W: Write>(
    builder: &mut tar::Builder<W>,
    abs: &Path,
    rel: &Path,
    ignore: &HashSet<String>,
    files: &mut u64,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(abs)
        .map_err(|e| with_path(e, abs))?
        .collect::<Result<_, _>>()
        .map_err(|e| with_path(e, abs))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| ignore.contains(n)) {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
        let rel_child = rel.join(&name);
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = dir_header(meta.mtime());
            builder.append_data(&mut h, &rel_child, io::empty())?;
            walk(builder, &path, &rel_child, ignore, files)?;
        } else if ft.is_file() {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            let exec = meta.permissions().mode() & 0o111 != 0;
            h.set_mode(if exec { 0o777 } else { 0o666 });
            h.set_mtime(meta.mtime().max(0) as u64);
            let size = meta.len();
            h.set_size(size);
            let file = File::open(&path).map_err(|e| with_path(e, &path))?;
            // A file that shrinks while being read is padded, one that grows is
            // cut: the header's size is what the archive must hold.
            let data = file.take(size).chain(io::repeat(0)).take(size);
            builder
                .append_data(&mut h, &rel_child, data)
                .map_err(|e| with_path(e, &path))?;
            *files += 1;
        }
        // Symlinks, sockets, FIFOs and devices are never copied.
    }
    Ok(())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A seed upload in progress: the tar byte stream plus the walker's error, if any.
pub struct TarStream {
    pub stream: std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    pub error: Arc<Mutex<Option<String>>>,
}

/// Streams `dir` as a tar archive, produced by a blocking thread (None: the
/// root entry alone).
pub fn tar_stream(dir: Option<PathBuf>, root: String, ignore: HashSet<String>) -> TarStream {
    let (reader, writer) = tokio::io::duplex(PIPE_BUFFER);
    let error = Arc::new(Mutex::new(None));
    let err_slot = error.clone();
    let producer = tokio::task::spawn_blocking(move || {
        // Batch the tar writer's small writes: each write through the bridge
        // is a handoff to the async side.
        let bridge = io::BufWriter::with_capacity(1 << 20, SyncIoBridge::new(writer));
        match dir {
            Some(dir) => write_tar(&dir, &root, &ignore, bridge),
            None => write_root_only(&root, bridge),
        }
    });
    // When the walker fails, end the body with an error instead of a clean
    // EOF, so a truncated archive is never taken for a complete one.
    let tail = stream::once(async move {
        let failure = match producer.await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("seed walker stopped: {e}")),
        };
        match failure {
            None => None,
            Some(msg) => {
                *err_slot.lock().unwrap() = Some(msg.clone());
                Some(Err(io::Error::other(msg)))
            }
        }
    })
    .filter_map(futures_util::future::ready);
    TarStream {
        stream: Box::pin(ReaderStream::with_capacity(reader, 256 * 1024).chain(tail)),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let ty = e.header().entry_type();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, ty, mode, data)
            })
            .collect()
    }

    #[test]
    fn upload_goes_to_the_parent_of_workdir() {
        assert_eq!(upload_target("/app"), ("/".into(), "app".into()));
        assert_eq!(
            upload_target("/srv/job/work"),
            ("/srv/job".into(), "work".into())
        );
    }

    #[test]
    fn missing_and_non_dir_messages() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope");
        let e = check_dir(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("dir path not found: {}", missing.display())
        );
        let file = t.path().join("f");
        fs::write(&file, "x").unwrap();
        let e = check_dir(&file).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("dir path is not a directory: {}", file.display())
        );
        assert!(matches!(e, Error::DirNotADirectory(_)));
        assert!(check_dir(t.path()).is_ok());
    }

    #[test]
    fn structure_ignores_symlinks_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("src/deep")).unwrap();
        fs::write(d.join("src/deep/a.txt"), "hello").unwrap();
        fs::write(d.join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(d.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(d.join("private.txt"), "p").unwrap();
        fs::set_permissions(d.join("private.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir_all(d.join("src/node_modules/x")).unwrap();
        fs::write(d.join("src/node_modules/x/i.js"), "").unwrap();
        fs::create_dir_all(d.join(".git")).unwrap();
        fs::write(d.join(".git/HEAD"), "").unwrap();
        fs::write(d.join("secret.env"), "").unwrap();
        symlink("/etc/passwd", d.join("link")).unwrap();
        symlink("src", d.join("dirlink")).unwrap();

        let mut out = Vec::new();
        let n = write_tar(d, "app", &ignore_set(&["secret.env".into()]), &mut out).unwrap();
        assert_eq!(n, 3);
        let es = entries(&out);
        let names: Vec<&str> = es.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "app",
                "app/private.txt",
                "app/run.sh",
                "app/src",
                "app/src/deep",
                "app/src/deep/a.txt"
            ]
        );
        let find = |n: &str| es.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(find("app").2, 0o777);
        assert_eq!(find("app/src").2, 0o777);
        assert_eq!(find("app/run.sh").2, 0o777);
        assert_eq!(find("app/private.txt").2, 0o666);
        assert_eq!(find("app/src/deep/a.txt").3, b"hello");
        assert_eq!(find("app/src/deep/a.txt").1, tar::EntryType::Regular);
    }

    #[test]
    fn long_names_survive() {
        let t = tempfile::tempdir().unwrap();
        let long = "n".repeat(150);
        fs::create_dir_all(t.path().join(&long)).unwrap();
        fs::write(t.path().join(&long).join(&long), "z").unwrap();
        let mut out = Vec::new();
        write_tar(t.path(), "app", &ignore_set(&[]), &mut out).unwrap();
        let es = entries(&out);
        assert!(es
            .iter()
            .any(|e| e.0 == format!("app/{long}/{long}") && e.3 == b"z"));
    }

    #[tokio::test]
    async fn without_dir_the_archive_is_the_writable_root_alone() {
        let mut s = tar_stream(None, "app".into(), ignore_set(&[]));
        let mut all = Vec::new();
        while let Some(item) = s.stream.next().await {
            all.extend_from_slice(&item.unwrap());
        }
        let es = entries(&all);
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].0, "app");
        assert_eq!(es[0].1, tar::EntryType::Directory);
        assert_eq!(es[0].2, 0o777);
    }

    #[tokio::test]
    async fn stream_reports_walker_errors() {
        let t = tempfile::tempdir().unwrap();
        let mut s = tar_stream(Some(t.path().join("gone")), "app".into(), ignore_set(&[]));
        let mut saw_err = false;
        while let Some(item) = s.stream.next().await {
            if item.is_err() {
                saw_err = true;
            }
        }
        assert!(saw_err);
        assert!(s.error.lock().unwrap().is_some());
    }

    #[tokio::test]
    async fn stream_yields_whole_archive() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("big"), vec![7u8; 3 << 20]).unwrap();
        let mut s = tar_stream(Some(t.path().to_path_buf()), "app".into(), ignore_set(&[]));
        let mut all = Vec::new();
        while let Some(item) = s.stream.next().await {
            all.extend_from_slice(&item.unwrap());
        }
        let es = entries(&all);
        assert_eq!(es[1].3.len(), 3 << 20);
    }
}
