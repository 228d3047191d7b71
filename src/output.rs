//! A run's output beyond `onLog`: the per-run cap (`maxLogBytes`), the copy
//! kept beside the state file once the container is gone (`<id>.log`), and
//! replaying it to any process (`attach(id, { onLog })`, `execution.logs()`).
//!
//! The kept copy is JSON lines (`{"stream","n","time","line"}`), written
//! while the output flows through two rotating hidden files in the state
//! directory, so memory stays flat whatever the run prints; at the end the
//! last `LIGHT_RUNNER_MAX_LOG_BYTES` (default 10 MiB) are written to
//! `<id>.log` (temp file, fsync, rename; 0600). What the caps dropped is
//! recorded in the state (`logs`, `logsTruncated`).
//!
//! A reader replays a run from whatever holds its output: the daemon's log
//! while the container exists, the kept file after. Lines carry their
//! position in their stream (`n`), the same whoever split them, so a reader
//! that loses the container mid-way resumes from the file without a
//! duplicate or a gap.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::errors::{is_not_found, Error, Result};
use crate::logs::{LogLine, Stream, StreamSplitter};
use crate::resources::{self, Life};
use crate::state::{self, RunState};

/// Default of `LIGHT_RUNNER_MAX_LOG_BYTES`: how much of a run's output is
/// kept after its container is removed.
pub const DEFAULT_MAX_KEPT_BYTES: u64 = 10 << 20;

/// `LIGHT_RUNNER_MAX_LOG_BYTES`, read when a run's output starts being kept;
/// `0` keeps nothing.
pub fn kept_cap() -> u64 {
    std::env::var("LIGHT_RUNNER_MAX_LOG_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_KEPT_BYTES)
}

/// The per-run cap on delivered output (`maxLogBytes`): each line counts
/// its bytes plus one for its newline; from the first line that would pass
/// the cap on, no line is delivered or kept.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    cap: Option<u64>,
    used: u64,
    exceeded: bool,
}

impl Budget {
    pub fn new(cap: Option<u64>) -> Self {
        Budget {
            cap,
            ..Default::default()
        }
    }

    /// True when `line` may be delivered.
    pub fn admit(&mut self, line: &str) -> bool {
        if self.exceeded {
            return false;
        }
        let cost = line.len() as u64 + 1;
        if self.cap.is_some_and(|c| self.used + cost > c) {
            self.exceeded = true;
            return false;
        }
        self.used += cost;
        true
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// What was kept of a run's output, as recorded in its state (`logs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    /// Size of `<id>.log`.
    pub bytes: u64,
    /// Lines in `<id>.log`.
    pub lines: u64,
    /// Lines dropped to keep the file under `cap` (the oldest go first).
    pub dropped_lines: u64,
    /// `LIGHT_RUNNER_MAX_LOG_BYTES` when the output was kept.
    pub cap: u64,
    /// Why the output could not be kept (entirely).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// `maxLogBytes` as recorded in a state.
pub fn max_log_bytes(s: &RunState) -> Option<u64> {
    s.extra
        .get("maxLogBytes")
        .and_then(serde_json::Value::as_u64)
}

/// Records what was kept, and whether `maxLogBytes` cut the output.
pub fn record(s: &mut RunState, kept: &Kept, truncated: bool) {
    if let Ok(v) = serde_json::to_value(kept) {
        s.extra.insert("logs".into(), v);
    }
    if truncated {
        s.extra.insert("logsTruncated".into(), true.into());
    }
}

/// True when a state says `maxLogBytes` cut the run's output.
pub fn truncated_in(s: &RunState) -> bool {
    s.extra
        .get("logsTruncated")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// Writes the end of a run's output to `<id>.log`, through two rotating
/// files of at most `cap` bytes each.
pub struct Keeper {
    dir: PathBuf,
    id: String,
    cap: u64,
    stem: String,
    cur: Option<BufWriter<File>>,
    cur_len: u64,
    cur_lines: u64,
    prev_len: u64,
    /// Lines offered (kept or not).
    offered: u64,
    error: Option<String>,
    /// The record being encoded (reused: no allocation per line).
    rec: Vec<u8>,
}

impl Keeper {
    /// A keeper with `LIGHT_RUNNER_MAX_LOG_BYTES` as it is now.
    pub fn new(dir: &Path, id: &str) -> Self {
        Self::with_cap(dir, id, kept_cap())
    }

    pub fn with_cap(dir: &Path, id: &str, cap: u64) -> Self {
        Keeper {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            cap,
            stem: format!(
                ".{id}.log.{}.{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            cur: None,
            cur_len: 0,
            cur_lines: 0,
            prev_len: 0,
            offered: 0,
            error: None,
            rec: Vec::new(),
        }
    }

    fn part(&self, which: &str) -> PathBuf {
        self.dir.join(format!("{}.{which}", self.stem))
    }

    fn open(&self, which: &str) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.part(which))
    }

    /// Notes why the output is not (entirely) kept; the first reason counts.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.error.get_or_insert_with(|| why.into());
    }

    pub fn keep(&mut self, line: &LogLine) {
        self.offered += 1;
        if self.error.is_some() || self.cap == 0 {
            return;
        }
        if let Err(e) = self.write(line) {
            self.fail(format!("writing the output failed: {e}"));
            self.cur = None;
        }
    }

    fn write(&mut self, line: &LogLine) -> io::Result<()> {
        let mut rec = std::mem::take(&mut self.rec);
        rec.clear();
        serde_json::to_writer(&mut rec, line).map_err(io::Error::other)?;
        rec.push(b'\n');
        let r = self.write_record(&rec);
        self.rec = rec;
        r
    }

    fn write_record(&mut self, rec: &[u8]) -> io::Result<()> {
        let len = rec.len() as u64;
        if len > self.cap {
            // A line larger than the whole budget cannot be kept.
            return Ok(());
        }
        if self.cur.is_none() {
            state::ensure_dir(&self.dir)?;
            self.cur = Some(BufWriter::with_capacity(64 * 1024, self.open("b")?));
        }
        if self.cur_len + len > self.cap {
            if let Some(mut w) = self.cur.take() {
                w.flush()?;
            }
            fs::rename(self.part("b"), self.part("a"))?;
            self.prev_len = self.cur_len;
            self.cur_len = 0;
            self.cur_lines = 0;
            self.cur = Some(BufWriter::with_capacity(64 * 1024, self.open("b")?));
        }
        if let Some(w) = self.cur.as_mut() {
            w.write_all(rec)?;
        }
        self.cur_len += len;
        self.cur_lines += 1;
        Ok(())
    }

    /// Writes `<id>.log` (when any line was kept) and returns the record.
    pub fn commit(mut self) -> Kept {
        let mut kept = Kept {
            cap: self.cap,
            error: self.error.clone(),
            ..Default::default()
        };
        if self.cur.is_some() {
            match self.assemble() {
                Ok((bytes, lines)) => {
                    kept.bytes = bytes;
                    kept.lines = lines;
                }
                Err(e) => {
                    kept.error
                        .get_or_insert(format!("writing the output failed: {e}"));
                }
            }
        }
        kept.dropped_lines = self.offered - kept.lines;
        kept
    }

    /// The last `cap` bytes of the two parts, from a line start, into the
    /// final file: (bytes, lines).
    fn assemble(&mut self) -> io::Result<(u64, u64)> {
        if let Some(mut w) = self.cur.take() {
            w.flush()?;
        }
        let tmp = self.part("tmp");
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut bytes = 0;
        let mut lines = self.cur_lines;
        let excess = (self.prev_len + self.cur_len).saturating_sub(self.cap);
        if self.prev_len > 0 && excess < self.prev_len {
            let mut prev = File::open(self.part("a"))?;
            let mut from = excess;
            if from > 0 {
                // Start after the end of the line that holds byte `from - 1`.
                prev.seek(SeekFrom::Start(from - 1))?;
                let mut r = BufReader::new(&mut prev);
                let mut skipped = Vec::new();
                from += r.read_until(b'\n', &mut skipped)? as u64 - 1;
            }
            prev.seek(SeekFrom::Start(from))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = prev.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                out.write_all(&buf[..n])?;
                bytes += n as u64;
            }
        }
        let mut cur = File::open(self.part("b"))?;
        bytes += io::copy(&mut cur, &mut out)?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, state::log_file(&self.dir, &self.id)?)?;
        File::open(&self.dir)?.sync_all()?;
        Ok((bytes, lines))
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.cur = None;
        for which in ["a", "b", "tmp"] {
            let _ = fs::remove_file(self.part(which));
        }
    }
}

/// One run's output as it flows: split, capped by `maxLogBytes`, kept.
pub struct Capture {
    split: StreamSplitter,
    budget: Budget,
    keeper: Option<Keeper>,
    /// The stream reached its end (`finish`).
    ended: bool,
}

impl Capture {
    pub fn new(dir: &Path, id: &str, max_log_bytes: Option<u64>) -> Self {
        Capture {
            split: StreamSplitter::new(),
            budget: Budget::new(max_log_bytes),
            keeper: Some(Keeper::new(dir, id)),
            ended: false,
        }
    }

    /// Feeds a chunk; returns the lines to deliver (each also kept).
    pub fn push(&mut self, stream: Stream, chunk: &[u8], time: i64) -> Vec<LogLine> {
        let mut out = Vec::new();
        if self.budget.exceeded() {
            return out;
        }
        let (budget, keeper) = (&mut self.budget, &mut self.keeper);
        self.split.push(stream, chunk, time, |l| {
            if budget.admit(&l.line) {
                if let Some(k) = keeper.as_mut() {
                    k.keep(&l);
                }
                out.push(l);
            }
        });
        out
    }

    /// The last lines that had no newline.
    pub fn finish(&mut self, time: i64) -> Vec<LogLine> {
        self.ended = true;
        let mut out = Vec::new();
        let (budget, keeper) = (&mut self.budget, &mut self.keeper);
        self.split.finish(time, |l| {
            if budget.admit(&l.line) {
                if let Some(k) = keeper.as_mut() {
                    k.keep(&l);
                }
                out.push(l);
            }
        });
        out
    }

    pub fn truncated(&self) -> bool {
        self.budget.exceeded()
    }

    /// Writes what was kept; later output is no longer kept. Before the
    /// end of the stream, the record says the output was cut.
    pub fn commit(&mut self) -> Option<Kept> {
        let mut k = self.keeper.take()?;
        if !self.ended {
            k.fail("the output stream was cut before its end");
        }
        Some(k.commit())
    }
}

/// A chunk of the daemon's log with `timestamps`: its time (ms) and bytes.
fn stamped(msg: &[u8]) -> (Option<i64>, &[u8]) {
    let Some(sp) = msg.iter().position(|&b| b == b' ') else {
        return (None, msg);
    };
    let time = std::str::from_utf8(&msg[..sp])
        .ok()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.timestamp_millis());
    match time {
        Some(t) => (Some(t), &msg[sp + 1..]),
        None => (None, msg),
    }
}

fn chunk_of(item: LogOutput) -> Option<(Stream, bytes::Bytes)> {
    match item {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            Some((Stream::Stdout, message))
        }
        LogOutput::StdErr { message } => Some((Stream::Stderr, message)),
        LogOutput::StdIn { .. } => None,
    }
}

fn daemon_log(
    docker: &Docker,
    id: &str,
    follow: bool,
) -> impl futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> {
    docker.logs(
        id,
        Some(LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            timestamps: true,
            ..Default::default()
        }),
    )
}

/// Keeps the output of an exited container, as the daemon logged it, before
/// the container is removed: (what was kept, whether `maxLogBytes` cut it).
pub async fn keep_from_daemon(
    docker: &Docker,
    dir: &Path,
    id: &str,
    max_log_bytes: Option<u64>,
) -> (Kept, bool) {
    let mut capture = Capture::new(dir, id, max_log_bytes);
    let mut stream = daemon_log(docker, id, false).boxed();
    let mut last = state::now_ms();
    let mut failed = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(o) => {
                let Some((s, msg)) = chunk_of(o) else {
                    continue;
                };
                let (time, bytes) = stamped(&msg);
                last = time.unwrap_or(last);
                capture.push(s, bytes, last);
                if capture.truncated() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(format!("reading the container's output failed: {e}"));
                break;
            }
        }
    }
    match failed {
        None => {
            capture.finish(last);
        }
        Some(why) => {
            if let Some(k) = capture.keeper.as_mut() {
                k.fail(why);
            }
        }
    }
    if capture.truncated() {
        // Cut on purpose: the rest of the stream was not read.
        capture.ended = true;
    }
    let truncated = capture.truncated();
    let kept = capture.commit().unwrap_or_default();
    (kept, truncated)
}

/// What a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only lines written at or after this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// Keep reading until the run ends.
    pub follow: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            since_ms: None,
            follow: true,
        }
    }
}

/// Lines up to this many, or this many bytes, go out as one batch.
const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// Failed daemon calls in a row a reader tolerates.
const READ_RETRIES: u32 = 30;
/// How long a running run's container may be absent (finalized, or
/// vanished) before a reader stops waiting for it.
const GONE_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(250);

/// Batches lines to the reader's channel.
struct Out {
    tx: mpsc::Sender<Vec<LogLine>>,
    batch: Vec<LogLine>,
    bytes: usize,
    closed: bool,
}

impl Out {
    async fn push(&mut self, l: LogLine) {
        self.bytes += l.line.len();
        self.batch.push(l);
        if self.batch.len() >= BATCH_LINES || self.bytes >= BATCH_BYTES {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        if self.tx.send(batch).await.is_err() {
            self.closed = true;
        }
    }
}

/// Where a reader is: lines seen per stream, the run's budget, `since`.
struct Progress {
    seen: [u64; 2],
    budget: Budget,
    since: Option<i64>,
}

impl Progress {
    /// The line to deliver, if it is one; either way it is seen.
    fn take(&mut self, l: LogLine, budget: bool) -> Option<LogLine> {
        let i = l.stream.index();
        if l.n < self.seen[i] {
            return None;
        }
        self.seen[i] = l.n + 1;
        if budget && !self.budget.admit(&l.line) {
            return None;
        }
        if self.since.is_some_and(|s| l.time < s) {
            return None;
        }
        Some(l)
    }
}

/// How one read of the daemon's log ended.
enum Pass {
    Ended,
    /// The container is gone (removed once finalized).
    Gone,
    /// Nothing more will be delivered (`maxLogBytes`).
    Capped,
    Closed,
    Failed(bollard::errors::Error),
}

async fn daemon_pass(
    docker: &Docker,
    id: &str,
    follow: bool,
    finish: bool,
    p: &mut Progress,
    out: &mut Out,
) -> Pass {
    let mut split = StreamSplitter::new();
    let mut stream = daemon_log(docker, id, follow).boxed();
    let mut last = 0;
    let mut lines = Vec::new();
    loop {
        // Deliver what is ready before waiting for more.
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                out.flush().await;
                if out.closed {
                    return Pass::Closed;
                }
                stream.next().await
            }
        };
        let o = match item {
            None => break,
            Some(Ok(o)) => o,
            Some(Err(e)) if is_not_found(&e) => return Pass::Gone,
            Some(Err(e)) => return Pass::Failed(e),
        };
        let Some((s, msg)) = chunk_of(o) else {
            continue;
        };
        let (time, bytes) = stamped(&msg);
        last = time.unwrap_or(last);
        split.push(s, bytes, last, |l| lines.push(l));
        for l in lines.drain(..) {
            if let Some(l) = p.take(l, true) {
                out.push(l).await;
            }
        }
        if out.closed {
            return Pass::Closed;
        }
        if p.budget.exceeded() {
            return Pass::Capped;
        }
    }
    if finish {
        split.finish(last, |l| lines.push(l));
        for l in lines.drain(..) {
            if let Some(l) = p.take(l, true) {
                out.push(l).await;
            }
        }
    }
    out.flush().await;
    if out.closed {
        Pass::Closed
    } else {
        Pass::Ended
    }
}

/// Replays `<id>.log` from where the reader is; false without a file.
async fn file_pass(dir: &Path, id: &str, p: &mut Progress, out: &mut Out) -> Result<bool> {
    let Some(path) = state::log_file(dir, id).ok() else {
        return Ok(false);
    };
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::LogRead {
                id: id.into(),
                source: e,
            })
        }
    };
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| Error::LogRead {
            id: id.into(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        // A torn or foreign line is skipped, not fatal.
        let Ok(l) = serde_json::from_slice::<LogLine>(&buf) else {
            continue;
        };
        if let Some(l) = p.take(l, false) {
            out.push(l).await;
            if out.closed {
                return Ok(true);
            }
        }
    }
    out.flush().await;
    Ok(true)
}

/// Streams run `id`'s output (its state in `dir`) into `tx`, in batches:
/// from the start (or `since`), then, with `follow`, until the run's
/// container stops. Ends early when `tx` is closed.
pub async fn read(
    dir: PathBuf,
    id: String,
    opts: ReadOptions,
    tx: mpsc::Sender<Vec<LogLine>>,
) -> Result<()> {
    let first = state::read_state_in(&dir, &id).ok_or_else(|| Error::NoRun { id: id.clone() })?;
    let mut p = Progress {
        seen: [0, 0],
        budget: Budget::new(max_log_bytes(&first)),
        since: opts.since_ms,
    };
    let mut out = Out {
        tx,
        batch: Vec::new(),
        bytes: 0,
        closed: false,
    };
    let mut docker: Option<Docker> = None;
    let mut gone_since: Option<Instant> = None;
    let mut failures = 0;
    loop {
        if out.closed {
            return Ok(());
        }
        // A state removed meanwhile (deleteState) ends the read.
        let Some(st) = state::read_state_in(&dir, &id) else {
            break;
        };
        if st.status.is_terminal() {
            let had_file = file_pass(&dir, &id, &mut p, &mut out).await?;
            // A run whose output was kept (maybe none of it) needs no daemon.
            if had_file || st.extra.contains_key("logs") {
                break;
            }
        }
        let d = match &docker {
            Some(d) => d.clone(),
            None => docker.insert(crate::docker::connected().await?).clone(),
        };
        let life = match resources::life(&d, &id).await {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                if failures > READ_RETRIES {
                    return Err(e);
                }
                tokio::time::sleep(POLL * failures.min(8)).await;
                continue;
            }
        };
        let pass = match life {
            // A terminal run without a kept file: what the daemon still has.
            _ if st.status.is_terminal() => {
                if life != Life::Gone {
                    daemon_pass(&d, &id, false, true, &mut p, &mut out).await;
                }
                break;
            }
            Life::Gone | Life::Removing => {
                let waited = gone_since.get_or_insert_with(Instant::now).elapsed();
                if (st.is_setting_up() && !opts.follow) || waited > GONE_GRACE {
                    break;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            Life::Created => {
                if !opts.follow {
                    break;
                }
                gone_since = None;
                tokio::time::sleep(POLL).await;
                continue;
            }
            Life::Running | Life::Paused => {
                gone_since = None;
                daemon_pass(&d, &id, opts.follow, false, &mut p, &mut out).await
            }
            Life::Exited(_) => daemon_pass(&d, &id, false, true, &mut p, &mut out).await,
        };
        match pass {
            Pass::Closed => return Ok(()),
            Pass::Ended if matches!(life, Life::Exited(_)) || !opts.follow => break,
            Pass::Ended | Pass::Gone => {}
            Pass::Capped => {
                if opts.follow {
                    // Nothing more is delivered; the read still lasts the run.
                    let _ = resources::wait_end(&d, &id).await;
                }
                break;
            }
            Pass::Failed(e) => {
                failures += 1;
                if failures > READ_RETRIES {
                    return Err(Error::docker("logs", Some(&id), e));
                }
                tokio::time::sleep(POLL * failures.min(8)).await;
            }
        }
    }
    out.flush().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stream: Stream, n: u64, text: &str) -> LogLine {
        LogLine {
            stream,
            n,
            time: 1000 + n as i64,
            line: text.into(),
        }
    }

    fn kept_lines(dir: &Path, id: &str) -> Vec<LogLine> {
        let text = fs::read_to_string(state::log_file(dir, id).unwrap()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn hidden_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".lock")
            .collect()
    }

    #[test]
    fn budget_stops_at_the_first_line_past_the_cap() {
        let mut b = Budget::new(Some(10));
        assert!(b.admit("abcd")); // 5
        assert!(b.admit("efgh")); // 10
        assert!(!b.admit(""));
        assert!(b.exceeded());
        assert!(!b.admit("x"));
        let mut free = Budget::new(None);
        assert!((0..1000).all(|_| free.admit("a line")));
    }

    #[test]
    fn keeper_keeps_the_end_on_line_boundaries() {
        let t = tempfile::tempdir().unwrap();
        let mut k = Keeper::with_cap(t.path(), "light-runner-000000000001", 1000);
        for i in 0..500 {
            k.keep(&line(Stream::Stdout, i, &format!("line {i}")));
        }
        let kept = k.commit();
        assert!(kept.bytes <= 1000 && kept.bytes > 500, "{kept:?}");
        let lines = kept_lines(t.path(), "light-runner-000000000001");
        assert_eq!(lines.len() as u64, kept.lines);
        assert_eq!(kept.lines + kept.dropped_lines, 500);
        assert_eq!(lines.last().unwrap().line, "line 499");
        let first = lines[0].n;
        assert!(lines
            .iter()
            .enumerate()
            .all(|(i, l)| l.n == first + i as u64));
        assert!(
            hidden_files(t.path()).is_empty(),
            "{:?}",
            hidden_files(t.path())
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(state::log_file(t.path(), "light-runner-000000000001").unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn keeper_without_output_writes_nothing_and_zero_keeps_nothing() {
        let t = tempfile::tempdir().unwrap();
        let k = Keeper::new(t.path(), "light-runner-000000000002");
        assert_eq!(k.commit().lines, 0);
        assert!(!state::log_file(t.path(), "light-runner-000000000002")
            .unwrap()
            .exists());
        let mut k = Keeper::with_cap(t.path(), "light-runner-000000000003", 0);
        k.keep(&line(Stream::Stderr, 0, "x"));
        let kept = k.commit();
        assert_eq!((kept.lines, kept.dropped_lines, kept.cap), (0, 1, 0));
    }

    #[test]
    fn capture_caps_delivery_and_keeping_alike() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Capture::new(t.path(), "light-runner-000000000004", Some(12));
        let got = c.push(Stream::Stdout, b"12345\n12345\n1\n", 1);
        assert_eq!(got.len(), 2);
        assert!(c.truncated());
        assert!(c.push(Stream::Stderr, b"more\n", 2).is_empty());
        c.finish(3);
        let kept = c.commit().unwrap();
        assert_eq!(kept.error, None);
        assert_eq!(kept.lines, 2);
        assert_eq!(kept_lines(t.path(), "light-runner-000000000004").len(), 2);
    }

    #[test]
    fn daemon_timestamps_are_parsed() {
        let (t, rest) = stamped(b"2026-04-27T10:15:00.123456789Z hello world\n");
        assert_eq!(t, state::parse_iso_ms("2026-04-27T10:15:00.123Z"));
        assert_eq!(rest, b"hello world\n");
        assert_eq!(stamped(b"no-stamp here"), (None, &b"no-stamp here"[..]));
    }

    #[tokio::test]
    async fn file_replay_resumes_where_the_reader_is() {
        let t = tempfile::tempdir().unwrap();
        let id = "light-runner-000000000005";
        let mut k = Keeper::new(t.path(), id);
        for i in 0..6 {
            let s = if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            k.keep(&line(s, i / 2, &format!("{i}")));
        }
        k.commit();
        let (tx, mut rx) = mpsc::channel(16);
        let mut out = Out {
            tx,
            batch: Vec::new(),
            bytes: 0,
            closed: false,
        };
        let mut p = Progress {
            seen: [2, 1],
            budget: Budget::new(None),
            since: None,
        };
        assert!(file_pass(t.path(), id, &mut p, &mut out).await.unwrap());
        drop(out);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.extend(b.into_iter().map(|l| l.line));
        }
        assert_eq!(got, vec!["3", "4", "5"]);
    }
}
