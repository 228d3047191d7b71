//! Turning the container's output chunks into lines for `onLog`.
//!
//! Docker delivers output per write, not per line: a line may span chunks and
//! a chunk may hold many lines. One splitter per stream keeps each stream's
//! order; a line longer than [`MAX_LINE`] is cut so a container printing no
//! newline cannot grow the host's memory without bound. The cuts fall at the
//! same places however the bytes were chunked, so two readers of one output
//! (the attach stream, the daemon's log) see the same lines.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One line of a run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub stream: Stream,
    /// Position among the lines of its stream, from 0: the same line has the
    /// same position whoever read it, so a reader can resume elsewhere.
    pub n: u64,
    /// When the line was written (ms since epoch): the daemon's time, or the
    /// time the attach stream delivered it.
    pub time: i64,
    pub line: String,
}

/// Receives output lines a batch at a time (the run's `onLog`). The
/// returned future completes when the sink can take more: a slow consumer
/// slows the reading of the container's output (and so the container)
/// instead of queueing lines without bound.
pub type LogSink =
    Arc<dyn Fn(Vec<LogLine>) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Both streams of one output, split into numbered lines.
#[derive(Default)]
pub struct StreamSplitter {
    split: [LineSplitter; 2],
    next: [u64; 2],
}

impl StreamSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk of `stream` written at `time`.
    pub fn push(&mut self, stream: Stream, chunk: &[u8], time: i64, mut emit: impl FnMut(LogLine)) {
        let i = stream.index();
        let next = &mut self.next[i];
        self.split[i].push(chunk, |line| {
            emit(LogLine {
                stream,
                n: *next,
                time,
                line,
            });
            *next += 1;
        });
    }

    /// Delivers the last lines that had no newline (stdout first).
    pub fn finish(&mut self, time: i64, mut emit: impl FnMut(LogLine)) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let i = stream.index();
            let next = &mut self.next[i];
            self.split[i].finish(|line| {
                emit(LogLine {
                    stream,
                    n: *next,
                    time,
                    line,
                });
                *next += 1;
            });
        }
    }
}

/// Output waiting for the JS thread before reading pauses, as [`cost`]
/// counts it. (A count of batches alone let a flood of one-byte lines queue
/// hundreds of MiB: a chunk holds thousands of lines.)
pub const IN_FLIGHT: u32 = 2 << 20;

/// What a batch weighs while it waits for the JS thread: each line's bytes
/// plus 64 for its allocation, its time and its JS string; a batch heavier
/// than [`IN_FLIGHT`] goes alone.
pub fn cost(lines: &[LogLine]) -> u32 {
    let bytes: usize = lines.iter().map(|l| l.line.len() + 64).sum();
    bytes.clamp(1, IN_FLIGHT as usize) as u32
}

/// Longest line kept in memory before it is delivered in pieces.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; calls `emit` for every complete, non-empty line.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(String)) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            if self.buf.is_empty() {
                emit_line(cut_pieces(&rest[..pos], &mut emit), &mut emit);
            } else {
                self.buf.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.buf);
                emit_line(cut_pieces(&line, &mut emit), &mut emit);
            }
            rest = &rest[pos + 1..];
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() > MAX_LINE {
            let rest = cut_pieces(&self.buf, &mut emit).len();
            let from = self.buf.len() - rest;
            self.buf.drain(..from);
        }
    }

    /// Delivers a last line that had no newline.
    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        let line = std::mem::take(&mut self.buf);
        emit_line(&line, &mut emit);
    }
}

/// Emits the leading [`MAX_LINE`] pieces of a line longer than that, as
/// they are; returns what is left (at most [`MAX_LINE`] bytes, at least one
/// byte when the line had any).
fn cut_pieces<'a>(line: &'a [u8], emit: &mut impl FnMut(String)) -> &'a [u8] {
    let mut rest = line;
    while rest.len() > MAX_LINE {
        emit(String::from_utf8_lossy(&rest[..MAX_LINE]).into_owned());
        rest = &rest[MAX_LINE..];
    }
    rest
}

fn emit_line(line: &[u8], emit: &mut impl FnMut(String)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.is_empty() {
        emit(String::from_utf8_lossy(line).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_weighs_its_bytes_and_its_lines() {
        let l = |s: &str| LogLine {
            stream: Stream::Stdout,
            n: 0,
            time: 0,
            line: s.into(),
        };
        assert_eq!(cost(&[]), 1);
        assert_eq!(cost(&[l("ab"), l("c")]), 2 + 64 + 1 + 64);
        // Thousands of one-byte lines weigh far more than their bytes.
        let many = vec![l("z"); 10_000];
        assert_eq!(cost(&many), 650_000);
        let huge = vec![l(&"x".repeat(1 << 20)); 16];
        assert_eq!(cost(&huge), IN_FLIGHT);
    }

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new();
        for c in chunks {
            s.push(c, |l| out.push(l));
        }
        s.finish(|l| out.push(l));
        out
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(split(&[b"a\nb", b"c\n", b"d"]), vec!["a", "bc", "d"]);
    }

    #[test]
    fn empty_lines_and_crlf_are_skipped() {
        assert_eq!(split(&[b"\n\na\r\n\r\n", b"\nb\n"]), vec!["a", "b"]);
    }

    #[test]
    fn multibyte_char_split_between_chunks() {
        let s = "héllo\n".as_bytes();
        assert_eq!(split(&[&s[..2], &s[2..]]), vec!["héllo"]);
    }

    #[test]
    fn overlong_line_is_cut() {
        let big = vec![b'x'; MAX_LINE + 10];
        let out = split(&[&big]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1].len(), 10);
    }

    #[test]
    fn cuts_do_not_depend_on_chunking() {
        let mut text = Vec::new();
        for len in [MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 2 * MAX_LINE + 3, 5] {
            text.extend(std::iter::repeat_n(b'y', len));
            text.extend_from_slice(b"\r\n");
        }
        text.extend(std::iter::repeat_n(b'z', MAX_LINE + 7));
        let whole = split(&[&text]);
        for size in [1000, 65536, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1] {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(split(&chunks), whole, "chunks of {size}");
        }
        let lens: Vec<usize> = whole.iter().map(String::len).collect();
        assert_eq!(
            lens,
            vec![
                MAX_LINE - 1,
                MAX_LINE,
                MAX_LINE,
                1,
                MAX_LINE,
                MAX_LINE,
                3,
                5,
                MAX_LINE,
                7
            ]
        );
    }

    #[test]
    fn streams_are_numbered_apart() {
        let mut s = StreamSplitter::new();
        let mut out = Vec::new();
        s.push(Stream::Stdout, b"a\nb\n", 1, |l| out.push(l));
        s.push(Stream::Stderr, b"e\npartial", 2, |l| out.push(l));
        s.push(Stream::Stdout, b"c", 3, |l| out.push(l));
        s.finish(4, |l| out.push(l));
        let got: Vec<(Stream, u64, i64, &str)> = out
            .iter()
            .map(|l| (l.stream, l.n, l.time, l.line.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, 0, 1, "a"),
                (Stream::Stdout, 1, 1, "b"),
                (Stream::Stderr, 0, 2, "e"),
                (Stream::Stdout, 2, 4, "c"),
                (Stream::Stderr, 1, 4, "partial"),
            ]
        );
    }

    #[test]
    fn many_lines_in_order() {
        let text: String = (0..20000).map(|i| format!("line {i}\n")).collect();
        let bytes = text.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(777).collect();
        let out = split(&chunks);
        assert_eq!(out.len(), 20000);
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line {i}")));
    }
}
