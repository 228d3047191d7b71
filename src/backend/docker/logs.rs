//! The daemon's log of a container (`docker logs`), with timestamps: what
//! holds a run's output while its container exists.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;

/// A chunk of the daemon's log with `timestamps`: its time (ms) and bytes.
pub fn stamped(msg: &[u8]) -> (Option<i64>, &[u8]) {
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

pub fn daemon_log(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_timestamps_are_parsed() {
        let (t, rest) = stamped(b"2026-04-27T10:15:00.123456789Z hello world\n");
        assert_eq!(t, crate::time::parse_iso("2026-04-27T10:15:00.123Z"));
        assert_eq!(rest, b"hello world\n");
        assert_eq!(stamped(b"no-stamp here"), (None, &b"no-stamp here"[..]));
    }
}
