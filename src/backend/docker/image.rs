//! The image a run uses: pulled when missing, or built from `run` steps and
//! cached as `light-runner-cache:<sha256 of image + steps>`.
//!
//! A build goes through the Engine API with a tar context made here (a
//! Dockerfile `FROM <image>` plus one `RUN` per step); no CLI, no registry
//! when the base image is local. Identical requests share one build: a
//! per-tag lock inside the process and a per-tag file lock across processes,
//! with a second look for the tag once the lock is held.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use bollard::Docker;
use bytes::Bytes;
use fs2::FileExt;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::client::quick;
use crate::errors::{is_not_found, DockerOp, Error, PullError, Result};
use crate::lines::LineSplitter;

pub const CACHE_REPO: &str = "light-runner-cache";
/// Set on every cache image, with the base image as value.
pub const CACHE_LABEL: &str = "light-runner.cache-base";
/// Lines of build output kept for the error of a failed step.
const TAIL_LINES: usize = 20;

/// Receives build output lines (the run's `onLog`).
pub type BuildLog = crate::lines::LogSink;

/// Splits `repo[:tag]` (a digest reference is passed whole).
pub fn split_image(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            Some(image[last_slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

/// True when the daemon has `image` locally.
pub async fn is_local(docker: &Docker, image: &str) -> Result<bool> {
    match quick(docker.inspect_image(image)).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(Error::docker(DockerOp::InspectImage, None, e)),
    }
}

/// Pulls `image`; `id` is the run it is for (for the error).
pub async fn pull(docker: &Docker, image: &str, id: Option<&str>) -> Result<()> {
    let (from_image, tag) = split_image(image);
    let fail = |source| Error::Pull {
        image: image.to_string(),
        id: id.map(str::to_string),
        source,
    };
    let mut progress = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| fail(PullError::Api(e)))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(fail(PullError::Registry(detail)));
        }
    }
    Ok(())
}

/// The cache tag of `image` + `steps`: `light-runner-cache:` + the hex
/// SHA-256 of the compact JSON `[image, steps]` (what JavaScript's
/// `JSON.stringify([image, run])` gives), so a user can compute it too.
pub fn cache_tag(image: &str, steps: &[String]) -> String {
    let key = serde_json::to_vec(&(image, steps)).expect("strings serialize");
    let hex: String = Sha256::digest(&key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{CACHE_REPO}:{hex}")
}

/// An image reference that can be written after `FROM` as it is.
fn plain_reference(image: &str) -> bool {
    !image.is_empty()
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@-".contains(&b))
}

/// The Dockerfile of a build: each step in exec form through `/bin/sh -c`,
/// JSON-quoted, so a step may hold any character (newlines included).
pub fn dockerfile(image: &str, steps: &[String]) -> String {
    let mut out = format!("FROM {image}\n");
    for step in steps {
        let argv = serde_json::to_string(&["/bin/sh", "-c", step.as_str()]).expect("strings");
        out.push_str(&format!("RUN {argv}\n"));
    }
    out
}

/// A tar holding only the Dockerfile.
pub fn context_tar(dockerfile: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .expect("in-memory tar");
    b.into_inner().expect("in-memory tar")
}

/// The builds under way in this process, one lock per tag: a second run
/// that wants a tag being built waits for that build.
#[derive(Default)]
pub struct BuildLocks(StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A run's interest in the lock of a tag: the lock is shared by every run
/// that wants the tag now, and forgotten with the last of them (the map
/// would otherwise keep one entry per tag ever built).
struct Claim<'a> {
    locks: &'a BuildLocks,
    tag: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

fn claim<'a>(locks: &'a BuildLocks, tag: &str) -> Claim<'a> {
    let mut map = locks.0.lock().unwrap_or_else(|p| p.into_inner());
    let lock = map.entry(tag.to_string()).or_default().clone();
    Claim {
        locks,
        tag: tag.to_string(),
        lock,
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Held by the map and this claim only: nobody else wants the tag.
        // (Claims are made under the same mutex, so none can appear now.)
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.tag);
        }
    }
}

/// The file locked while `tag` is built (one per tag, in the temp dir).
fn lock_path(tag: &str) -> PathBuf {
    let name = tag.replace([':', '/'], "-");
    std::env::temp_dir().join(format!("{name}.build.lock"))
}

async fn host_lock(tag: &str) -> Result<std::fs::File> {
    let path = lock_path(tag);
    let locked = tokio::task::spawn_blocking(move || {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        f.lock_exclusive()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| Error::Internal(format!("build lock task: {e}")))?;
    locked.map_err(|e| Error::Internal(format!("build lock: {e}")))
}

/// What `prepare` did, for the caller's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The image the container is created from.
    pub image: String,
    /// True when this call built it.
    pub built: bool,
}

/// The image for a run: `image` itself without steps (pulled later, at
/// create time, if missing), else the cached build of the steps, built now
/// when absent. `uses` is where the last use of cache images is recorded.
pub async fn prepare(
    daemon: &super::Daemon,
    image: &str,
    steps: &[String],
    log: Option<BuildLog>,
    uses: &Path,
) -> Result<Prepared> {
    if steps.is_empty() {
        return Ok(Prepared {
            image: image.to_string(),
            built: false,
        });
    }
    let docker = &daemon.docker;
    let tag = cache_tag(image, steps);
    // Recorded first: `cleanupOrphanCache` running meanwhile sees the use.
    record_use(uses, &tag);
    if is_local(docker, &tag).await? {
        return Ok(Prepared {
            image: tag,
            built: false,
        });
    }
    let mine = claim(&daemon.builds, &tag);
    let _in_process = mine.lock.lock().await;
    let host = host_lock(&tag).await?;
    let result = async {
        if is_local(docker, &tag).await? {
            return Ok(false);
        }
        build(docker, image, steps, &tag, log).await.map(|()| true)
    }
    .await;
    if result.is_ok() {
        // The image exists now: a process still waiting on this (unlinked)
        // file, or one locking a new file of the same name, looks again and
        // finds it. So no lock file is left per tag.
        let _ = std::fs::remove_file(lock_path(&tag));
    }
    let _ = FileExt::unlock(&host);
    if result.is_err() {
        // No image: no use to remember.
        forget_use(uses, &tag);
    }
    Ok(Prepared {
        image: tag,
        built: result?,
    })
}

/// Builds `steps` on `image` as `tag`.
async fn build(
    docker: &Docker,
    image: &str,
    steps: &[String],
    tag: &str,
    log: Option<BuildLog>,
) -> Result<()> {
    if !plain_reference(image) {
        return Err(Error::Build {
            tag: tag.to_string(),
            reason: format!("image {image:?} is not a plain image reference"),
        });
    }
    let context = context_tar(&dockerfile(image, steps));
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        labels: Some(HashMap::from([(
            CACHE_LABEL.to_string(),
            image.to_string(),
        )])),
        ..Default::default()
    };
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(Bytes::from(context))),
    );
    let mut out = BuildOutput::default();
    let mut splitter = LineSplitter::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| match e {
            // The daemon reports a failed RUN inside the stream.
            bollard::errors::Error::DockerStreamError { error } => out.failure(steps, &error),
            other => Error::docker(DockerOp::BuildImage, None, other),
        })?;
        if let Some(msg) = info.error_detail.and_then(|d| d.message) {
            return Err(out.failure(steps, &msg));
        }
        let Some(text) = info.stream else { continue };
        let mut lines = Vec::new();
        // A step's last line without a newline ends where the builder's
        // next message begins.
        if builder_message(&text) {
            splitter.finish(|l| lines.push(l));
        }
        splitter.push(text.as_bytes(), |l| lines.push(l));
        out.deliver(lines, log.as_ref()).await;
    }
    let mut rest = Vec::new();
    splitter.finish(|l| rest.push(l));
    out.deliver(rest, log.as_ref()).await;
    Ok(())
}

/// The output of one build: lines go to the run's log as they come; the
/// current step and its last lines are kept for the error of a failure.
#[derive(Default)]
struct BuildOutput {
    /// Dockerfile step being run (`Step 2/4 : ...` → 2).
    step: Option<usize>,
    /// The current step's last output lines (without the builder's own).
    tail: Vec<String>,
}

impl BuildOutput {
    async fn deliver(&mut self, lines: Vec<String>, log: Option<&BuildLog>) {
        let lines: Vec<String> = lines
            .iter()
            .map(|l| strip_ansi(l).trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        for l in &lines {
            self.see(l);
        }
        if let (Some(log), false) = (log, lines.is_empty()) {
            // Build output is not the run's output: not numbered, not kept.
            let time = crate::time::now_ms();
            let lines = lines
                .into_iter()
                .map(|line| crate::lines::LogLine {
                    stream: crate::lines::Stream::Stdout,
                    n: 0,
                    time,
                    line,
                })
                .collect();
            log(lines).await;
        }
    }

    fn see(&mut self, line: &str) {
        if let Some(n) = step_number(line) {
            self.step = Some(n);
            self.tail.clear();
            return;
        }
        if builder_noise(line) {
            return;
        }
        self.tail.push(line.to_string());
        if self.tail.len() > TAIL_LINES {
            self.tail.drain(..self.tail.len() - TAIL_LINES);
        }
    }

    fn failure(&self, steps: &[String], error: &str) -> Error {
        Error::BuildStep {
            step: step_text(steps, self.step),
            output: with_tail(&self.tail, &strip_ansi(error)),
        }
    }
}

/// `Step 2/3 : RUN ...` → 2.
fn step_number(line: &str) -> Option<usize> {
    let (n, rest) = line.strip_prefix("Step ")?.split_once('/')?;
    let (m, _) = rest.split_once(" : ")?;
    m.parse::<usize>().ok()?;
    n.parse().ok()
}

/// Lines the classic builder prints about itself between a step's output.
fn builder_noise(line: &str) -> bool {
    line.starts_with(" ---> ") || line.starts_with("Removing intermediate container ")
}

/// A message of the builder itself (not a step's output).
fn builder_message(text: &str) -> bool {
    builder_noise(text)
        || step_number(text).is_some()
        || text.starts_with("Successfully built ")
        || text.starts_with("Successfully tagged ")
}

/// Drops terminal escape sequences (the builder colours a step's stderr).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters... final byte in '@'..='~'.
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// The user's step for Dockerfile step `n`: step 1 is `FROM`, steps 2..
/// are the user's, the one after them is the cache label.
fn step_text(steps: &[String], n: Option<usize>) -> String {
    match n {
        None | Some(0) | Some(1) => "FROM".to_string(),
        Some(n) => steps
            .get(n - 2)
            .cloned()
            .unwrap_or_else(|| "LABEL".to_string()),
    }
}

fn with_tail(tail: &[String], error: &str) -> String {
    let mut out = tail.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(error.trim_end());
    out
}

/// Records that `tag` was used now (the file's mtime).
fn record_use(dir: &Path, tag: &str) {
    let path = use_file(dir, tag);
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(path, b"");
}

fn use_file(dir: &Path, tag: &str) -> PathBuf {
    dir.join(tag.replace(':', "-"))
}

/// When `tag` was last used by a run (ms since epoch), if recorded.
pub fn last_use(dir: &Path, tag: &str) -> Option<i64> {
    let modified = std::fs::metadata(use_file(dir, tag))
        .ok()?
        .modified()
        .ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    Some(ms as i64)
}

/// Every recorded use: (tag, when, in ms since epoch).
pub fn recorded_uses(dir: &Path) -> Vec<(String, i64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{CACHE_REPO}-");
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let tag = format!("{CACHE_REPO}:{}", name.strip_prefix(&prefix)?);
            let when = last_use(dir, &tag)?;
            Some((tag, when))
        })
        .collect()
}

/// Forgets the recorded use of a removed cache image.
pub fn forget_use(dir: &Path, tag: &str) {
    let _ = std::fs::remove_file(use_file(dir, tag));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(
            split_image("busybox"),
            ("busybox".into(), Some("latest".into()))
        );
        assert_eq!(
            split_image("busybox:1.36"),
            ("busybox".into(), Some("1.36".into()))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/lr/img"),
            ("127.0.0.1:5000/lr/img".into(), Some("latest".into()))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/lr/img:v2"),
            ("127.0.0.1:5000/lr/img".into(), Some("v2".into()))
        );
        assert_eq!(
            split_image("img@sha256:abc"),
            ("img@sha256:abc".into(), None)
        );
    }

    #[test]
    fn cache_tags_depend_on_image_and_every_step() {
        let a = cache_tag("busybox", &["echo a".into()]);
        assert!(a.starts_with("light-runner-cache:"));
        assert_eq!(a.len(), "light-runner-cache:".len() + 64);
        assert_eq!(a, cache_tag("busybox", &["echo a".into()]));
        assert_ne!(a, cache_tag("busybox:1", &["echo a".into()]));
        assert_ne!(a, cache_tag("busybox", &["echo b".into()]));
        assert_ne!(
            cache_tag("busybox", &["a".into(), "b".into()]),
            cache_tag("busybox", &["a b".into()])
        );
    }

    #[test]
    fn cache_tag_is_sha256_of_the_json_of_image_and_steps() {
        // printf '%s' '["busybox",["echo \"a\"\nb"]]' | sha256sum
        assert_eq!(
            cache_tag("busybox", &["echo \"a\"\nb".into()]),
            "light-runner-cache:907868329e918ac4035cb0541780f130ee70d76c9748f33637c5beb325804147"
        );
    }

    #[test]
    fn steps_are_json_quoted_exec_form() {
        let d = dockerfile("busybox", &["echo \"hi\"\nrm x".into(), "true".into()]);
        assert_eq!(
            d,
            "FROM busybox\nRUN [\"/bin/sh\",\"-c\",\"echo \\\"hi\\\"\\nrm x\"]\nRUN [\"/bin/sh\",\"-c\",\"true\"]\n"
        );
        let tar = context_tar(&d);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("Dockerfile"));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut e, &mut s).unwrap();
        assert_eq!(s, d);
    }

    #[test]
    fn failed_step_is_named_from_the_step_lines() {
        let steps = vec!["echo ok".to_string(), "exit 3".to_string()];
        assert_eq!(step_number("Step 3/3 : RUN [\"/bin/sh\"]"), Some(3));
        assert_eq!(step_number("Step 3/3 done"), None);
        assert_eq!(step_number("Step x/3 : RUN"), None);
        assert_eq!(step_text(&steps, Some(3)), "exit 3");
        assert_eq!(step_text(&steps, Some(1)), "FROM");
        assert_eq!(step_text(&steps, None), "FROM");
        assert_eq!(step_text(&steps, Some(4)), "LABEL");
        assert!(builder_message(
            "Removing intermediate container 02ca1f3efa6d\n"
        ));
        assert!(builder_message(" ---> 423a71c1a3df\n"));
        assert!(builder_message("Step 2/4 : RUN x\n"));
        assert!(builder_message(
            "Successfully tagged light-runner-cache:x\n"
        ));
        assert!(!builder_message("no-newline-at-end"));
        assert!(!builder_message("Step by step\n"));
        assert!(!plain_reference("busybox\nRUN rm -rf /"));
        assert!(plain_reference("127.0.0.1:5000/a/b:c"));
    }

    #[test]
    fn a_tag_lock_is_shared_then_forgotten_with_its_last_claim() {
        let locks = BuildLocks::default();
        let known = |tag: &str| locks.0.lock().unwrap().contains_key(tag);
        let a = claim(&locks, "light-runner-cache:unit-a");
        let b = claim(&locks, "light-runner-cache:unit-a");
        assert!(Arc::ptr_eq(&a.lock, &b.lock));
        let other = claim(&locks, "light-runner-cache:unit-b");
        assert!(!Arc::ptr_eq(&a.lock, &other.lock));
        drop(a);
        assert!(known("light-runner-cache:unit-a"), "b still wants it");
        drop(b);
        assert!(!known("light-runner-cache:unit-a"));
        drop(other);
        assert!(!known("light-runner-cache:unit-b"));
    }

    #[test]
    fn colour_codes_of_the_builder_are_dropped() {
        assert_eq!(strip_ansi("\u{1b}[91merr"), "err");
        assert_eq!(strip_ansi("\u{1b}[0m"), "");
        assert_eq!(strip_ansi("a\u{1b}[1;31mb\u{1b}[0mc"), "abc");
        assert_eq!(strip_ansi("plain é"), "plain é");
        assert_eq!(strip_ansi("cut\u{1b}["), "cut");
    }

    #[test]
    fn a_failure_carries_only_the_failing_steps_last_lines() {
        let steps = vec!["echo ok".to_string(), "echo out; exit 3".to_string()];
        let mut o = BuildOutput::default();
        for l in [
            "Step 1/4 : FROM busybox",
            " ---> 717a0c0f8ec5",
            "Step 2/4 : RUN [\"/bin/sh\",\"-c\",\"echo ok\"]",
            " ---> Running in 322de0ddeb65",
            "ok",
            "Removing intermediate container 322de0ddeb65",
            " ---> 423a71c1a3df",
            "Step 3/4 : RUN [\"/bin/sh\",\"-c\",\"echo out; exit 3\"]",
            " ---> Running in 02ca1f3efa6d",
            "out",
            "err",
            "Removing intermediate container 02ca1f3efa6d",
        ] {
            o.see(l);
        }
        let e = o.failure(&steps, "The command returned a non-zero code: 3\n");
        match e {
            Error::BuildStep { step, output } => {
                assert_eq!(step, "echo out; exit 3");
                assert_eq!(output, "out\nerr\nThe command returned a non-zero code: 3");
            }
            other => panic!("{other:?}"),
        }
        for i in 0..50 {
            o.see(&format!("line {i}"));
        }
        assert_eq!(o.tail.len(), TAIL_LINES);
        assert_eq!(o.tail.last().map(String::as_str), Some("line 49"));
    }
}
