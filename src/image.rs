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

use crate::docker::quick;
use crate::errors::{is_not_found, Error, PullError, Result};

pub const CACHE_REPO: &str = "light-runner-cache";
/// Set on every cache image, with the base image as value.
pub const CACHE_LABEL: &str = "light-runner.cache-base";
/// Lines of build output kept for the error of a failed step.
const TAIL_LINES: usize = 20;

/// Receives build output lines (the run's `onLog`).
pub type BuildLog = crate::logs::LogSink;

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
        Err(e) => Err(Error::docker("inspectImage", None, e)),
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

/// The cache tag of `image` + `steps`.
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

/// Per-tag locks of this process.
static BUILDING: StdMutex<Option<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    StdMutex::new(None);

fn process_lock(tag: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    map.get_or_insert_with(HashMap::new)
        .entry(tag.to_string())
        .or_default()
        .clone()
}

async fn host_lock(tag: &str) -> Result<std::fs::File> {
    let name = tag.replace([':', '/'], "-");
    let path = std::env::temp_dir().join(format!("{name}.build.lock"));
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
    docker: &Docker,
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
    let tag = cache_tag(image, steps);
    record_use(uses, &tag);
    if is_local(docker, &tag).await? {
        return Ok(Prepared {
            image: tag,
            built: false,
        });
    }
    let mine = process_lock(&tag);
    let _in_process = mine.lock().await;
    let host = host_lock(&tag).await?;
    let result = async {
        if is_local(docker, &tag).await? {
            return Ok(false);
        }
        build(docker, image, steps, &tag, log).await.map(|()| true)
    }
    .await;
    let _ = FileExt::unlock(&host);
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
    let mut tail: Vec<String> = Vec::new();
    let mut step: Option<usize> = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| match e {
            // The daemon reports a failed RUN inside the stream.
            bollard::errors::Error::DockerStreamError { error } => Error::BuildStep {
                step: step_text(steps, step),
                output: with_tail(&tail, &error),
            },
            other => Error::docker("buildImage", None, other),
        })?;
        if let Some(msg) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::BuildStep {
                step: step_text(steps, step),
                output: with_tail(&tail, &msg),
            });
        }
        let Some(text) = info.stream else { continue };
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        for l in &lines {
            if let Some(n) = step_number(l) {
                step = Some(n);
            }
        }
        tail.extend(lines.iter().cloned());
        if tail.len() > TAIL_LINES {
            tail.drain(..tail.len() - TAIL_LINES);
        }
        if let (Some(log), false) = (&log, lines.is_empty()) {
            // Build output is not the run's output: not numbered, not kept.
            let time = crate::state::now_ms();
            let lines = lines
                .into_iter()
                .map(|line| crate::logs::LogLine {
                    stream: crate::logs::Stream::Stdout,
                    n: 0,
                    time,
                    line,
                })
                .collect();
            log(lines).await;
        }
    }
    Ok(())
}

/// `Step 2/3 : RUN ...` → 2.
fn step_number(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("Step ")?;
    rest.split('/').next()?.trim().parse().ok()
}

/// The user's step for Dockerfile step `n` (step 1 is FROM).
fn step_text(steps: &[String], n: Option<usize>) -> String {
    n.and_then(|n| n.checked_sub(2))
        .and_then(|i| steps.get(i))
        .cloned()
        .unwrap_or_else(|| "FROM".to_string())
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
        assert_eq!(step_text(&steps, Some(3)), "exit 3");
        assert_eq!(step_text(&steps, Some(1)), "FROM");
        assert!(!plain_reference("busybox\nRUN rm -rf /"));
        assert!(plain_reference("127.0.0.1:5000/a/b:c"));
    }
}
