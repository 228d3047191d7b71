//! News about the containers of runs, gathered once per daemon endpoint and
//! fanned out to the runs that wait on them.
//!
//! One Docker events stream per endpoint, filtered on the run label
//! (`create`, `start`, `die`, `destroy`), started when the first waiter
//! subscribes and dropped when the last one leaves. It reconnects with
//! backoff; every (re)connection asks the daemon to replay what happened
//! since the last event seen (`since`), and one container list wakes every
//! waiter whose container is not running, so an exit that fell in a gap is
//! never missed. The same list runs every [`SAFETY_LIST`] while anyone
//! waits: a stream that stays quiet by mistake costs at most that delay.
//!
//! The hubs are a process-wide static: a process has one events stream per
//! daemon, whatever the number of runners, runs and handles waiting on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client::quick;
use super::labels::{label_filter, RUN_ID_LABEL};
use crate::backend::Said;
use crate::wake::{self, Subs};

/// How often the container list re-checks every waiter (one request).
pub const SAFETY_LIST: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Container events that can change what a waiter decides. `oom` and
/// `kill` are also remembered (see [`said`]).
const EVENTS: [&str; 6] = ["create", "start", "die", "oom", "kill", "destroy"];
/// Runs whose `oom` or `kill` events are remembered, per endpoint.
const SAID_KEPT: usize = 1024;

struct EventsHub {
    subs: Subs,
    task: JoinHandle<()>,
}

/// One hub per daemon endpoint (`DOCKER_HOST` value).
static HUBS: Mutex<Option<HashMap<String, EventsHub>>> = Mutex::new(None);

fn with_hubs<T>(f: impl FnOnce(&mut HashMap<String, EventsHub>) -> T) -> T {
    let mut g = HUBS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn wake_endpoint(endpoint: &str, f: impl FnOnce(&Subs)) {
    with_hubs(|h| {
        if let Some(hub) = h.get(endpoint) {
            f(&hub.subs)
        }
    })
}

/// When each endpoint's events stream broke and when the daemon answered
/// again (ms since the epoch; the last few): a container found stopped
/// with an exit inside a gap may have been stopped by a daemon that went
/// down (see [`in_gap`]).
static GAPS: Mutex<Option<HashMap<String, Gaps>>> = Mutex::new(None);
type Gaps = std::collections::VecDeque<(i64, Option<i64>)>;
const GAPS_KEPT: usize = 16;

fn with_gaps<T>(f: impl FnOnce(&mut HashMap<String, Gaps>) -> T) -> T {
    let mut g = GAPS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn gap_opened(endpoint: &str) {
    with_gaps(|g| {
        let gaps = g.entry(endpoint.to_string()).or_default();
        if gaps.back().is_none_or(|(_, end)| end.is_some()) {
            gaps.push_back((crate::time::now_ms(), None));
            if gaps.len() > GAPS_KEPT {
                gaps.pop_front();
            }
        }
    });
}

fn gap_closed(endpoint: &str) {
    with_gaps(|g| {
        if let Some((_, end @ None)) = g.get_mut(endpoint).and_then(|v| v.back_mut()) {
            *end = Some(crate::time::now_ms());
        }
    });
}

/// True when `at_ms` (a container's exit, daemon time) falls while this
/// process could not reach the daemon of `endpoint`: from its events stream
/// breaking with the daemon not answering a ping, to the daemon answering
/// again.
pub fn in_gap(endpoint: &str, at_ms: i64) -> bool {
    let now = crate::time::now_ms();
    with_gaps(|g| {
        g.get(endpoint).is_some_and(|gaps| {
            gaps.iter()
                .any(|(from, to)| at_ms >= *from && at_ms <= to.unwrap_or(now))
        })
    })
}

/// What each endpoint's events stream said of runs beyond "something
/// changed", the last [`SAID_KEPT`] runs: dockerd 20.10 can report a
/// memory cap's kill only as an `oom` event (its `State.OOMKilled` comes
/// from the exit event, and an OOM event that arrives after the exit never
/// reaches it); a `kill` event says the daemon itself sent a signal.
static SAID: Mutex<Option<HashMap<String, SaidOf>>> = Mutex::new(None);

#[derive(Default)]
struct SaidOf {
    order: std::collections::VecDeque<String>,
    runs: HashMap<String, Said>,
}

fn remember(endpoint: &str, id: &str, action: &str) {
    let mut g = SAID.lock().unwrap_or_else(|p| p.into_inner());
    let of = g
        .get_or_insert_with(HashMap::new)
        .entry(endpoint.to_string())
        .or_default();
    if !of.runs.contains_key(id) {
        of.order.push_back(id.to_string());
        if of.order.len() > SAID_KEPT {
            if let Some(old) = of.order.pop_front() {
                of.runs.remove(&old);
            }
        }
    }
    let said = of.runs.entry(id.to_string()).or_default();
    match action {
        "oom" => said.oom = true,
        "kill" => said.killed = true,
        _ => {}
    }
}

/// What the events stream of `endpoint` said of run `id` so far.
pub fn said(endpoint: &str, id: &str) -> Said {
    let g = SAID.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref()
        .and_then(|m| m.get(endpoint))
        .and_then(|of| of.runs.get(id))
        .copied()
        .unwrap_or_default()
}

/// Seconds since the epoch with nanoseconds, as the events API takes them.
fn since_arg(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    )
}

fn now_nanos() -> i64 {
    crate::time::now_ms().saturating_mul(1_000_000)
}

/// The run a container event is about.
fn event_run_id(ev: &bollard::models::EventMessage) -> Option<String> {
    let attrs = ev.actor.as_ref()?.attributes.as_ref()?;
    attrs
        .get(RUN_ID_LABEL)
        .or_else(|| attrs.get("name"))
        .cloned()
}

/// Wakes every waiter whose container is not running (exited, created,
/// dead or gone). A failed list wakes nobody: the next reconnection or
/// safety list tries again, and a waiter that needs the daemon retries on
/// its own.
async fn resync(endpoint: &str, docker: &Docker) {
    let Ok(list) = quick(docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(label_filter(RUN_ID_LABEL)),
        ..Default::default()
    })))
    .await
    else {
        return;
    };
    // The daemon answers: a gap in the stream, if any, is over.
    gap_closed(endpoint);
    let running: std::collections::HashSet<String> = list
        .into_iter()
        .filter(|c| {
            matches!(
                c.state.map(|s| s.to_string()).as_deref(),
                Some("running" | "paused" | "restarting")
            )
        })
        .filter_map(|c| c.labels?.get(RUN_ID_LABEL).cloned())
        .collect();
    wake_endpoint(endpoint, |subs| {
        for id in subs.keys().filter(|id| !running.contains(*id)) {
            wake::wake(subs, id);
        }
    });
}

/// The events stream of one endpoint, for as long as anyone waits.
async fn pump(endpoint: String, docker: Docker) {
    // Replay from a little before the first waiter subscribed: whatever it
    // inspected before the stream was connected is covered.
    let mut since = now_nanos() - 2_000_000_000;
    let mut backoff = Duration::from_millis(250);
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![RUN_ID_LABEL.to_string()]),
            (
                "event".to_string(),
                EVENTS.iter().map(|e| e.to_string()).collect(),
            ),
        ]);
        let mut stream = docker
            .events(Some(EventsOptions {
                since: Some(since_arg(since)),
                until: None,
                filters: Some(filters),
            }))
            .boxed();
        // The first tick is immediate: the list after each (re)connection.
        let mut safety = tokio::time::interval(SAFETY_LIST);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(ev)) => {
                        backoff = Duration::from_millis(250);
                        if let Some(t) = ev.time_nano {
                            since = since.max(t);
                        }
                        if let Some(id) = event_run_id(&ev) {
                            if let Some(a @ ("oom" | "kill")) = ev.action.as_deref() {
                                remember(&endpoint, &id, a);
                            }
                            wake_endpoint(&endpoint, |subs| wake::wake(subs, &id));
                        }
                    }
                    _ => break,
                },
                _ = safety.tick() => resync(&endpoint, &docker).await,
            }
        }
        // A stream can break while the daemon is fine (a proxy, a network
        // blip): only a daemon that does not answer opens a gap.
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), docker.ping()).await,
            Ok(Ok(_))
        ) {
            gap_opened(&endpoint);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A waiter's place in its endpoint's hub; leaving the last one stops the
/// stream.
pub struct EventsSub {
    endpoint: String,
    id: String,
    key: u64,
}

impl EventsSub {
    pub fn new(endpoint: &str, docker: &Docker, id: &str, n: &Arc<Notify>) -> Self {
        let key = wake::next_key();
        with_hubs(|h| {
            let hub = h.entry(endpoint.to_string()).or_insert_with(|| EventsHub {
                subs: Subs::new(),
                task: crate::rt::spawn(pump(endpoint.to_string(), docker.clone())),
            });
            wake::add(&mut hub.subs, id, key, n);
        });
        EventsSub {
            endpoint: endpoint.to_string(),
            id: id.to_string(),
            key,
        }
    }
}

impl Drop for EventsSub {
    fn drop(&mut self) {
        with_hubs(|h| {
            if let Some(hub) = h.get_mut(&self.endpoint) {
                wake::remove(&mut hub.subs, &self.id, self.key);
                if hub.subs.is_empty() {
                    hub.task.abort();
                    h.remove(&self.endpoint);
                }
            }
        });
    }
}

/// Number of endpoints with a live events stream (for tests).
pub fn streams() -> usize {
    with_hubs(|h| h.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_inside_a_stream_gap_is_seen_as_such() {
        let ep = "unix:///gap-test.sock";
        let before = crate::time::now_ms() - 10;
        assert!(!in_gap(ep, before + 5));
        std::thread::sleep(std::time::Duration::from_millis(2));
        gap_opened(ep);
        let inside = crate::time::now_ms();
        assert!(in_gap(ep, inside), "an open gap lasts until now");
        assert!(!in_gap(ep, before), "nothing before it broke");
        gap_closed(ep);
        assert!(in_gap(ep, inside));
        assert!(!in_gap(ep, crate::time::now_ms() + 50));
        assert!(!in_gap("unix:///other.sock", inside));
    }

    #[test]
    fn oom_and_kill_events_are_remembered_per_run_and_bounded() {
        let ep = "unix:///said-test.sock";
        remember(ep, "run-a", "oom");
        remember(ep, "run-b", "kill");
        remember(ep, "run-b", "die");
        assert_eq!(
            said(ep, "run-a"),
            Said {
                oom: true,
                killed: false
            }
        );
        assert_eq!(
            said(ep, "run-b"),
            Said {
                oom: false,
                killed: true
            }
        );
        assert_eq!(said("unix:///other.sock", "run-a"), Said::default());
        for i in 0..SAID_KEPT {
            remember(ep, &format!("run-{i}"), "kill");
        }
        assert_eq!(said(ep, "run-a"), Said::default(), "the oldest goes");
        assert!(said(ep, &format!("run-{}", SAID_KEPT - 1)).killed);
    }

    #[test]
    fn since_is_seconds_dot_nanos() {
        assert_eq!(since_arg(1_700_000_000_123_456_789), "1700000000.123456789");
        assert_eq!(since_arg(5), "0.000000005");
    }
}
