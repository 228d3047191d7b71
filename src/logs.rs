//! Turning the container's output chunks into lines for `onLog`.
//!
//! Docker delivers output per write, not per line: a line may span chunks and
//! a chunk may hold many lines. One splitter per stream keeps each stream's
//! order; a line longer than [`MAX_LINE`] is cut so a container printing no
//! newline cannot grow the host's memory without bound.

use std::sync::Arc;

/// Receives output lines a batch at a time (the run's `onLog`). The
/// returned future completes when the sink can take more: a slow consumer
/// slows the reading of the container's output (and so the container)
/// instead of queueing lines without bound.
pub type LogSink =
    Arc<dyn Fn(Vec<String>) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

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
                emit_line(&rest[..pos], &mut emit);
            } else {
                self.buf.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.buf);
                emit_line(&line, &mut emit);
            }
            rest = &rest[pos + 1..];
        }
        self.buf.extend_from_slice(rest);
        while self.buf.len() >= MAX_LINE {
            let tail = self.buf.split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.buf, tail);
            emit_line(&line, &mut emit);
        }
    }

    /// Delivers a last line that had no newline.
    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        let line = std::mem::take(&mut self.buf);
        emit_line(&line, &mut emit);
    }
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
