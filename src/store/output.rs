//! A run's output kept beside its state once the container is gone
//! (`<id>.log`): JSON lines (`{"stream","n","time","line"}`), written while
//! the output flows through two rotating hidden files in the state
//! directory, so memory stays flat whatever the run prints; at the end the
//! last `LIGHT_RUNNER_MAX_LOG_BYTES` (default 10 MiB) are written to
//! `<id>.log` (temp file, fsync, rename; 0600). The lines are written as
//! they come (buffered; rotating reopens the older part, truncated: no
//! rename, no fsync); only [`Keeper::commit`] fsyncs and renames, so callers
//! on the async runtime run it on a blocking thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::state;
use crate::lines::LogLine;
use crate::record::Kept;

/// Writes the end of a run's output to `<id>.log`, through two rotating
/// files of at most `cap` bytes each.
pub struct Keeper {
    dir: PathBuf,
    id: String,
    cap: u64,
    stem: String,
    cur: Option<BufWriter<File>>,
    /// Which of the two parts (0, 1) is being written; the other holds the
    /// lines before it.
    cur_part: u8,
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
    /// A keeper of at most `cap` bytes (`LIGHT_RUNNER_MAX_LOG_BYTES`).
    pub fn new(dir: &Path, id: &str, cap: u64) -> Self {
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
            cur_part: 0,
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

    /// Part `n` (0 or 1) of the rotation.
    fn rotating(&self, n: u8) -> PathBuf {
        self.part(&n.to_string())
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
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
            let f = self.open(&self.rotating(self.cur_part))?;
            self.cur = Some(BufWriter::with_capacity(64 * 1024, f));
        }
        if self.cur_len + len > self.cap {
            // The full part becomes the older one; the older one, emptied,
            // is written next.
            if let Some(mut w) = self.cur.take() {
                w.flush()?;
            }
            self.cur_part ^= 1;
            self.prev_len = self.cur_len;
            self.cur_len = 0;
            self.cur_lines = 0;
            let f = self.open(&self.rotating(self.cur_part))?;
            self.cur = Some(BufWriter::with_capacity(64 * 1024, f));
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
        let mut out = self.open(&tmp)?;
        let mut bytes = 0;
        let mut lines = self.cur_lines;
        let excess = (self.prev_len + self.cur_len).saturating_sub(self.cap);
        if self.prev_len > 0 && excess < self.prev_len {
            let mut prev = File::open(self.rotating(self.cur_part ^ 1))?;
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
        let mut cur = File::open(self.rotating(self.cur_part))?;
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
        for which in ["0", "1", "tmp"] {
            let _ = fs::remove_file(self.part(which));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lines::Stream;

    /// Line `n` of `stream` (also used by the engine's output tests).
    pub(crate) fn line(stream: Stream, n: u64, text: &str) -> LogLine {
        LogLine {
            stream,
            n,
            time: 1000 + n as i64,
            line: text.into(),
        }
    }

    /// The lines kept in `<id>.log`.
    pub(crate) fn kept_lines(dir: &Path, id: &str) -> Vec<LogLine> {
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
    fn keeper_keeps_the_end_on_line_boundaries() {
        let t = tempfile::tempdir().unwrap();
        let mut k = Keeper::new(t.path(), "light-runner-000000000001", 1000);
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
        let k = Keeper::new(t.path(), "light-runner-000000000002", 10 << 20);
        assert_eq!(k.commit().lines, 0);
        assert!(!state::log_file(t.path(), "light-runner-000000000002")
            .unwrap()
            .exists());
        let mut k = Keeper::new(t.path(), "light-runner-000000000003", 0);
        k.keep(&line(Stream::Stderr, 0, "x"));
        let kept = k.commit();
        assert_eq!((kept.lines, kept.dropped_lines, kept.cap), (0, 1, 0));
    }
}
