//! Time as runs see it: instants in ms since the epoch, the ISO 8601 text
//! state files carry (as the original writes it), and the clock a run
//! reads, which tests replace with one they move by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(FakeClock(AtomicI64::new(ms)))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock's now, in ms since the epoch.
pub fn now_ms() -> i64 {
    DateTime::<Utc>::from(std::time::SystemTime::now()).timestamp_millis()
}

/// `2026-04-27T10:15:00.000Z`: the form the original writes.
pub fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Any RFC 3339 time, in ms since the epoch.
pub fn parse_iso(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// An instant as a state file holds it: parsed once when read, written
/// back exactly as it was read unless it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    ms: Option<i64>,
    text: String,
}

impl Stamp {
    /// The instant `ms`, in the original's form.
    pub fn at(ms: i64) -> Self {
        Stamp {
            ms: Some(ms),
            text: iso(ms),
        }
    }

    /// A time read from a file: kept as written, understood when it can be.
    pub fn parse(text: &str) -> Self {
        Stamp {
            ms: parse_iso(text),
            text: text.to_string(),
        }
    }

    /// Milliseconds since the epoch; `None` when the text is not a time.
    pub fn ms(&self) -> Option<i64> {
        self.ms
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Stamp::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_in_the_originals_form() {
        let ms = parse_iso("2026-04-27T10:15:00.000Z").unwrap();
        assert_eq!(iso(ms), "2026-04-27T10:15:00.000Z");
        assert!(now_ms() > ms);
    }

    #[test]
    fn stamps_keep_their_text() {
        let s = Stamp::parse("2026-04-27T10:15:00Z");
        assert_eq!(s.as_str(), "2026-04-27T10:15:00Z");
        assert_eq!(s.ms(), parse_iso("2026-04-27T10:15:00.000Z"));
        let odd = Stamp::parse("yesterday");
        assert_eq!(odd.ms(), None);
        assert_eq!(serde_json::to_value(&odd).unwrap(), "yesterday");
        assert_eq!(Stamp::at(0).as_str(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_fake_clock_moves_when_told() {
        let c = FakeClock::at(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1500);
        c.set(7);
        assert_eq!(c.now_ms(), 7);
    }
}
