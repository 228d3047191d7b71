//! A run's output beyond `onLog`: the per-run cap (`maxLogBytes`), the
//! copy kept beside the state file (`store::output`), and replaying it to
//! any process (`attach(id, { onLog })`, `execution.logs()`). What the caps
//! dropped is recorded in the state (`logs`, `logsTruncated`).
//!
//! A reader replays a run from whatever holds its output: the daemon's log
//! while the container exists, the kept file after. Lines carry their
//! position in their stream (`n`), the same whoever split them, so a reader
//! that loses the container mid-way resumes from the file without a
//! duplicate or a gap.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use super::ctx::Ctx;
use crate::backend::docker::Daemon;
use crate::backend::{Backend, Life};
use crate::config::ReadOptions;
use crate::errors::{Error, Result};
use crate::lines::{LogLine, Stream, StreamSplitter};
use crate::record::Kept;
use crate::store::output::Keeper;
use crate::store::Store;

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

/// One run's output as it flows: split, capped by `maxLogBytes`, kept.
pub struct Capture {
    split: StreamSplitter,
    budget: Budget,
    keeper: Option<Keeper>,
    /// The stream reached its end (`finish`).
    ended: bool,
}

impl Capture {
    /// The output of run `id`, capped at `max_log_bytes` (`maxLogBytes`),
    /// its last `kept_cap` bytes kept in `dir`.
    pub fn new(dir: &Path, id: &str, max_log_bytes: Option<u64>, kept_cap: u64) -> Self {
        Capture {
            split: StreamSplitter::new(),
            budget: Budget::new(max_log_bytes),
            keeper: Some(Keeper::new(dir, id, kept_cap)),
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

/// Keeps the output of an exited container, as the daemon logged it, before
/// the container is removed: (what was kept, whether `maxLogBytes` cut it).
pub async fn keep_output<B: Backend>(
    backend: &B,
    store: &Store,
    id: &str,
    max_log_bytes: Option<u64>,
    kept_cap: u64,
) -> (Kept, bool) {
    let mut capture = Capture::new(store.dir(), id, max_log_bytes, kept_cap);
    let mut stream = backend.logs(id, false);
    let mut last = crate::time::now_ms();
    let mut failed = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                last = chunk.time.unwrap_or(last);
                capture.push(chunk.stream, &chunk.bytes, last);
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
    let kept = store
        .blocking(move || capture.commit().unwrap_or_default())
        .await;
    (kept, truncated)
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
    Failed(Error),
}

async fn daemon_pass<B: Backend>(
    backend: &B,
    id: &str,
    follow: bool,
    finish: bool,
    p: &mut Progress,
    out: &mut Out,
) -> Pass {
    let mut split = StreamSplitter::new();
    let mut stream = backend.logs(id, follow);
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
        let chunk = match item {
            None => break,
            Some(Ok(c)) => c,
            Some(Err(e)) if e.is_not_found() => return Pass::Gone,
            Some(Err(e)) => return Pass::Failed(e),
        };
        last = chunk.time.unwrap_or(last);
        split.push(chunk.stream, &chunk.bytes, last, |l| lines.push(l));
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
async fn file_pass(store: &Store, id: &str, p: &mut Progress, out: &mut Out) -> Result<bool> {
    let Some(path) = store.log_file(id).ok() else {
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

/// Until the container is not running: the daemon's wait, asked again
/// while the daemon does not answer, for `grace` at most (a reader past
/// `maxLogBytes` lasts the run, and is never held by a daemon gone).
async fn until_stopped<B: Backend>(backend: &B, id: &str, grace: Duration) {
    let since = Instant::now();
    while backend.wait(id).await.is_err()
        && since.elapsed() < grace
        && matches!(
            backend.inspect(id).await,
            Ok(Life::Running | Life::Paused) | Err(_)
        )
    {
        tokio::time::sleep(POLL).await;
    }
}

/// Streams run `id`'s output (its state in `ctx`'s store) into `tx`, in
/// batches: from the start (or `since`), then, with `follow`, until the
/// run's container stops. Ends early when `tx` is closed.
pub async fn read(
    ctx: Ctx,
    id: String,
    opts: ReadOptions,
    tx: mpsc::Sender<Vec<LogLine>>,
) -> Result<()> {
    let store = &ctx.store;
    let first = store
        .read(&id)
        .await
        .ok_or_else(|| Error::NoRun { id: id.clone() })?;
    let mut p = Progress {
        seen: [0, 0],
        budget: Budget::new(first.max_log_bytes),
        since: opts.since_ms,
    };
    let mut out = Out {
        tx,
        batch: Vec::new(),
        bytes: 0,
        closed: false,
    };
    let mut daemon: Option<Daemon> = None;
    let mut gone_since: Option<Instant> = None;
    let mut failures = 0;
    loop {
        if out.closed {
            return Ok(());
        }
        // A state removed meanwhile (deleteState) ends the read.
        let Some(st) = store.read(&id).await else {
            break;
        };
        if st.is_terminal() {
            let had_file = file_pass(store, &id, &mut p, &mut out).await?;
            // A run whose output was kept (maybe none of it) needs no daemon.
            if had_file || st.logs.is_some() || st.extra.contains_key("logs") {
                break;
            }
        }
        let d = match &daemon {
            Some(d) => d.clone(),
            None => daemon.insert(ctx.connected().await?).clone(),
        };
        let life = match d.inspect(&id).await {
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
            _ if st.is_terminal() => {
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
                    until_stopped(&d, &id, ctx.limits.daemon_grace).await;
                }
                break;
            }
            Pass::Failed(e) => {
                failures += 1;
                if failures > READ_RETRIES {
                    return Err(e);
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
    use crate::store::output::tests::{kept_lines, line};

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
    fn capture_caps_delivery_and_keeping_alike() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Capture::new(t.path(), "light-runner-000000000004", Some(12), 10 << 20);
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

    #[tokio::test]
    async fn file_replay_resumes_where_the_reader_is() {
        let t = tempfile::tempdir().unwrap();
        let id = "light-runner-000000000005";
        let mut k = Keeper::new(t.path(), id, 10 << 20);
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
        assert!(file_pass(&Store::new(t.path()), id, &mut p, &mut out)
            .await
            .unwrap());
        drop(out);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.extend(b.into_iter().map(|l| l.line));
        }
        assert_eq!(got, vec!["3", "4", "5"]);
    }
}
