//! How any run proceeds and ends, decided in one place and without I/O.
//!
//! A [`Lifecycle`] is fed what its driver observed ([`Observation`]: the
//! run's record, the container, the daemon's answers, this handle's cancel
//! and stop, the setup's end, the finalization's result) with the time it
//! was observed, and says what to do next ([`Lifecycle::step`]: the
//! [`Action`]s, and when to look again if nothing happens). The driver
//! (`super::driver`) does the I/O against the backend and the store and
//! feeds the results back. Every timing rule (deadlines, grace periods,
//! absence, kill resends, the daemon's outages) lives here, and is tested
//! with a clock that moves by hand.
//!
//! Attached and detached runs differ only in who may end them
//! ([`Finalizer`]) and where their output goes (the driver's business).

use crate::backend::{Exit, Life};
use crate::config::Limits;
use crate::record::{Claim, Lost, RunPhase, RunRecord, RunStatus};
use crate::time::Stamp;

/// Milliseconds since the Unix epoch.
pub type Ms = i64;

/// Who may end (finalize) a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalizer {
    /// This process launched it attached: it alone ends it.
    Sole,
    /// Any host may, once it holds the claim (detached runs).
    Claim,
    /// Nobody here: the attached run of another host. This host only
    /// watches, and records the end of a run whose host died.
    Never,
}

/// A process a record names, as the driver found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// On another machine: it cannot be checked.
    Unknown,
    /// The record names none.
    Absent,
}

impl Liveness {
    /// `HostIdentity::is_alive()`'s answer, or no identity at all.
    pub fn of(answer: Option<Option<bool>>) -> Self {
        match answer {
            None => Liveness::Absent,
            Some(None) => Liveness::Unknown,
            Some(Some(true)) => Liveness::Alive,
            Some(Some(false)) => Liveness::Dead,
        }
    }
}

/// What the driver observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The run's record as read now, with the liveness of its launcher.
    Record {
        record: Box<RunRecord>,
        launcher: Liveness,
    },
    /// The record is gone (`deleteState`).
    RecordGone,
    /// The container, as inspected now. `exited_in_gap`: it exited while
    /// this process could not reach the daemon.
    Container { life: Life, exited_in_gap: bool },
    /// An inspect failed: the daemon did not answer.
    DaemonUnreachable,
    /// The container may have changed (an event).
    ContainerNews,
    /// The platform said the memory cap killed the container (Docker's
    /// `oom` event; its `State.OOMKilled` may never say so).
    Oom,
    /// The platform sent the container a signal (Docker's `kill` event: a
    /// `docker kill`, `stop` or `rm -f`, or this library's own kill).
    Signalled,
    /// The daemon said the container stopped (a wait on it returned; the
    /// launcher of an attached run waits so).
    Stopped,
    /// Whether the daemon keeps containers running across its restarts.
    LiveRestore(bool),
    /// This handle's `cancel()`.
    Cancel,
    /// This handle's `stop()`: the signal went out; a kill is due after `grace_ms`.
    Stop { grace_ms: u64 },
    /// The launcher's setup: the container is created and seeded.
    SetupDone,
    /// The launcher's setup (or start) failed; the driver holds the error.
    SetupFailed,
    /// The launcher started the container.
    Started,
    /// The end of the run is this host's to write: the record as claimed
    /// (or, for a run nobody claims, as read now).
    Claimed(Box<RunRecord>),
    /// The run was ended meanwhile: its terminal record, written by another
    /// host (what it left is swept), or made up for a state file that is
    /// gone (nothing is swept).
    ClaimOver { record: Box<RunRecord>, sweep: bool },
    /// Another host holds the finalization claim.
    ClaimHeld,
    /// The terminal record as written (or, the disk failing, as this host
    /// would have written it).
    Recorded(Box<RunRecord>),
}

/// How the run ended, as far as this host knows: what its finalizer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The container's own exit; None: it is gone or never started.
    pub exit: Option<Exit>,
    /// The daemon lost the container.
    pub lost: Option<Lost>,
    /// The setup or start failed (the driver records its error).
    pub failed_setup: bool,
    /// The host of this attached run died: recorded as such.
    pub host_died: bool,
    /// This handle cancelled the run (the record may not say so).
    pub cancelled: bool,
    /// This host enforced the deadline (the record may not say so).
    pub timed_out: bool,
}

impl Ending {
    fn new(exit: Option<Exit>, lost: Option<Lost>) -> Self {
        Ending {
            exit,
            lost,
            failed_setup: false,
            host_died: false,
            cancelled: false,
            timed_out: false,
        }
    }
}

/// Why the run is over for this handle.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// What the terminal record says.
    Record(Box<RunRecord>),
    /// The setup or start failed: the driver's own error.
    SetupFailed,
    /// The daemon could not be reached for the whole grace (not recorded:
    /// the run may go on, and a later attach collects it).
    DaemonUnreachable,
    /// The state file disappeared.
    RecordGone,
    /// A reclaimer has nothing to do now: the run is left to whoever
    /// watches it (its launcher is setting it up, another host holds the
    /// claim, the container runs within its deadline, the daemon did not
    /// answer).
    Left,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Inspect the container (answered with `Container` or `DaemonUnreachable`).
    Inspect,
    /// Ask whether the daemon has live-restore (answered with `LiveRestore`).
    AskLiveRestore,
    /// Start the created container (answered with `Started` or `SetupFailed`).
    Start,
    /// SIGKILL the container (best effort, unanswered).
    Kill,
    /// The deadline passed: mark the record timed out (a `Kill` goes with it).
    RecordTimedOut,
    /// The end is decided: take the right to write it (the claim, under the
    /// state directory's lock, for `Finalizer::Claim`; the record as it is
    /// now otherwise, and for a failed setup or a dead host). Answered with
    /// `Claimed`, `ClaimOver` or `ClaimHeld`; then [`plan`] says the rest.
    Claim(Ending),
    /// Keep this host's claim fresh until the terminal record is written.
    Heartbeat,
    /// The container no longer runs: the handle is told (its `stop()`
    /// waits for this).
    Halted,
    /// Read the results out of the exited container (kept for `Record`).
    Extract,
    /// Keep the run's output beside its record (kept for `Record`);
    /// `lost`: the daemon lost the container (its stream may never close).
    KeepOutput { lost: bool },
    /// Write the terminal fields, with what `Extract` and `KeepOutput` got.
    /// Answered with `Recorded`.
    Record(Box<Terminal>),
    /// Write a failure as the end (answered with `Recorded`).
    RecordFailure(Failure),
    /// Remove the container and volume (retried in the background when the
    /// platform cannot take it now); a run that never started also watches
    /// for a create that lands late.
    Remove { never_started: bool },
    /// Remove what a finalized run left (its finalizer may have died
    /// between recording and removing); a running container is left alone.
    Sweep,
    /// The run is over for this handle.
    Resolve(Verdict),
}

/// A failure written as a run's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The launcher's setup or start failed (the driver holds the error).
    SetupFailed,
    /// The host of an attached run died: nothing will ever record its end.
    HostDied,
}

/// What a step says: do these, then look again at `wake_at` at the latest
/// (or sooner, on news).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub actions: Vec<Action>,
    pub wake_at: Option<Ms>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The launcher sets the container up.
    Setup,
    /// The setup is done: start it, or not.
    Starting,
    /// A `Start` is out.
    StartSent,
    /// The container is watched.
    Watching,
    /// The end is decided: a `Claim` is to go out.
    Ending(Ending),
    /// A `Claim` is out.
    Claiming(Ending),
    /// The plan is out; its record is awaited.
    Recording {
        failed_setup: bool,
    },
    /// The run is over for this handle: a `Resolve` is to go out.
    Resolving(Verdict),
    Done,
}

/// Backoff step after the daemon failed to answer.
const RETRY_STEP_MS: Ms = 500;
/// Retry step, and how many failed inspects, after the daemon said the
/// container stopped and then stopped answering.
const END_RETRY_MS: Ms = 100;
const END_TRIES: u32 = 3;
/// How long after seeing a kill (exit 137) of a memory-capped container,
/// that nobody asked for, the daemon's word that the cap did it is awaited
/// (its `oom` event wakes the watcher sooner).
const OOM_SETTLE_MS: Ms = 3_000;
/// An exit older than this (by the platform's clock) had all the time the
/// daemon needs to flag it: it is not waited on.
const OOM_SETTLED_AFTER_MS: Ms = 10_000;

/// One run's lifecycle as one host sees it.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    finalizer: Finalizer,
    limits: Limits,
    phase: Phase,
    record: Option<RunRecord>,
    launcher: Liveness,
    /// The container as last inspected; None: inspect before deciding.
    life: Option<Life>,
    exited_in_gap: bool,
    inspecting: bool,
    /// This handle cancelled or stopped the run.
    cancelled: bool,
    /// When this handle's stop makes a kill due.
    stop_kill_at: Option<Ms>,
    /// This handle's `cancel()`: a kill at once (a stop waits its grace).
    kill_now: bool,
    /// The kill for this handle's cancel went out.
    cancel_kill_sent: bool,
    /// When a kill for a cancel, a stop or a deadline last went out.
    last_kill: Option<Ms>,
    /// This host marked the deadline (the record may not say so yet).
    timed_out: bool,
    absent_since: Option<Ms>,
    /// Since when the daemon has not answered, and when to ask again.
    down_since: Option<Ms>,
    retry_at: Option<Ms>,
    down_errors: u32,
    /// The daemon failed to answer since the container was last seen
    /// running: a container found stopped then may have been stopped by it.
    outage: bool,
    live_restore: Option<bool>,
    asked_live_restore: bool,
    /// This launcher started the container.
    started_here: bool,
    /// The daemon said the container stopped, and the inspects that failed
    /// since: a daemon that went away right after stopping it.
    output_ended: bool,
    down_after_end: u32,
    /// When another host was last found holding the claim.
    claim_held_at: Option<Ms>,
    /// One pass of `cleanupOrphanStates()`: act on what is known now, never
    /// wait for a grace to run out.
    reclaim: bool,
    /// Until when a kill that may be the memory cap's waits for the
    /// daemon's flag, and whether the look after that wait went out.
    oom_until: Option<Ms>,
    oom_rechecked: bool,
    /// The platform said the cap killed it / sent it a signal.
    oom_said: bool,
    signalled: bool,
    /// The end's actions, once the claim was answered: the next step's.
    planned: Vec<Action>,
}

fn earliest(a: Option<Ms>, b: Option<Ms>) -> Option<Ms> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn ms(d: std::time::Duration) -> Ms {
    d.as_millis().min(i64::MAX as u128) as Ms
}

impl Lifecycle {
    /// A run this process launches (its setup is about to begin).
    pub fn launcher(finalizer: Finalizer, record: RunRecord, limits: Limits) -> Self {
        let mut l = Lifecycle::new(finalizer, limits);
        l.record = Some(record);
        l.launcher = Liveness::Alive;
        l.phase = Phase::Setup;
        l
    }

    /// A run this host watches (attach): its record is fed next.
    pub fn watcher(finalizer: Finalizer, limits: Limits) -> Self {
        Lifecycle::new(finalizer, limits)
    }

    /// One reclaiming pass over a run nobody here watches
    /// (`cleanupOrphanStates()`): its record is fed next. It ends what can
    /// be ended now, waits only for the exit of a container it killed, and
    /// otherwise resolves `Verdict::Left`.
    pub fn reclaimer(finalizer: Finalizer, limits: Limits) -> Self {
        let mut l = Lifecycle::new(finalizer, limits);
        l.reclaim = true;
        l
    }

    fn new(finalizer: Finalizer, limits: Limits) -> Self {
        Lifecycle {
            finalizer,
            limits,
            phase: Phase::Watching,
            record: None,
            launcher: Liveness::Absent,
            life: None,
            exited_in_gap: false,
            inspecting: false,
            cancelled: false,
            kill_now: false,
            stop_kill_at: None,
            cancel_kill_sent: false,
            last_kill: None,
            timed_out: false,
            absent_since: None,
            down_since: None,
            retry_at: None,
            down_errors: 0,
            outage: false,
            live_restore: None,
            asked_live_restore: false,
            started_here: false,
            output_ended: false,
            down_after_end: 0,
            claim_held_at: None,
            reclaim: false,
            oom_until: None,
            oom_rechecked: false,
            oom_said: false,
            signalled: false,
            planned: Vec::new(),
        }
    }

    pub fn finalizer(&self) -> Finalizer {
        self.finalizer
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True while the container is watched (not set up, not being ended).
    pub fn is_watching(&self) -> bool {
        self.phase == Phase::Watching
    }

    /// True while the launcher sets the run up.
    pub fn is_setting_up(&self) -> bool {
        matches!(
            self.phase,
            Phase::Setup | Phase::Starting | Phase::StartSent
        )
    }

    /// This handle cancelled or stopped the run.
    pub fn cancelled_here(&self) -> bool {
        self.cancelled
    }

    /// The record as last observed.
    pub fn record(&self) -> Option<&RunRecord> {
        self.record.as_ref()
    }

    /// Takes in what the driver observed at `now`.
    pub fn observe(&mut self, obs: Observation, now: Ms) {
        match obs {
            Observation::Record { record, launcher } => {
                self.record = Some(*record);
                self.launcher = launcher;
            }
            Observation::RecordGone => {
                if matches!(self.phase, Phase::Watching | Phase::Setup | Phase::Starting) {
                    self.phase = Phase::Resolving(Verdict::RecordGone);
                }
            }
            Observation::Container {
                life,
                exited_in_gap,
            } => {
                self.inspecting = false;
                self.down_since = None;
                self.retry_at = None;
                self.down_errors = 0;
                if matches!(life, Life::Running | Life::Paused) {
                    self.outage = false;
                    self.output_ended = false;
                }
                self.down_after_end = 0;
                self.exited_in_gap = exited_in_gap;
                self.life = Some(life);
            }
            Observation::DaemonUnreachable if self.reclaim => {
                self.phase = Phase::Resolving(Verdict::Left);
            }
            Observation::DaemonUnreachable => {
                self.inspecting = false;
                self.life = None;
                self.outage = true;
                self.down_since.get_or_insert(now);
                self.down_errors += 1;
                self.retry_at = Some(now + RETRY_STEP_MS * Ms::from(self.down_errors.min(10)));
                if self.output_ended {
                    // Asked again soon: a daemon that just stopped the
                    // container on its way down is told from a hiccup in a
                    // few tries.
                    self.down_after_end += 1;
                    self.retry_at = Some(now + END_RETRY_MS);
                }
            }
            Observation::ContainerNews => {
                if !self.inspecting {
                    self.life = None;
                }
            }
            Observation::Stopped => {
                self.output_ended = true;
                if !self.inspecting {
                    self.life = None;
                }
            }
            Observation::Oom => self.oom_said = true,
            Observation::Signalled => self.signalled = true,
            Observation::LiveRestore(on) => self.live_restore = Some(on),
            Observation::Cancel => {
                self.cancelled = true;
                self.kill_now = true;
            }
            Observation::Stop { grace_ms } => {
                self.cancelled = true;
                let due = now.saturating_add(grace_ms.min(i64::MAX as u64) as i64);
                self.stop_kill_at = Some(self.stop_kill_at.map_or(due, |d| d.min(due)));
            }
            Observation::SetupDone => {
                if self.phase == Phase::Setup {
                    self.phase = Phase::Starting;
                }
            }
            Observation::SetupFailed => {
                if self.is_setting_up() {
                    self.phase = Phase::Ending(Ending {
                        failed_setup: true,
                        ..Ending::new(None, None)
                    });
                }
            }
            Observation::Started => {
                if self.phase == Phase::StartSent {
                    self.started_here = true;
                    self.phase = Phase::Watching;
                    self.life = None;
                }
            }
            Observation::Claimed(record) => {
                if let Phase::Claiming(ending) = &self.phase {
                    self.planned = plan(&record, ending, self.finalizer);
                    self.phase = Phase::Recording {
                        failed_setup: ending.failed_setup,
                    };
                }
                self.record = Some(*record);
            }
            Observation::ClaimOver { record, sweep } => {
                if matches!(self.phase, Phase::Claiming(_)) {
                    if sweep {
                        self.planned = vec![Action::Sweep];
                    }
                    self.phase = Phase::Resolving(Verdict::Record(record.clone()));
                }
                self.record = Some(*record);
            }
            Observation::Recorded(record) => {
                if let Phase::Recording { failed_setup } = self.phase {
                    self.phase = Phase::Resolving(if failed_setup {
                        Verdict::SetupFailed
                    } else {
                        Verdict::Record(record.clone())
                    });
                }
                self.record = Some(*record);
            }
            Observation::ClaimHeld => {
                if matches!(self.phase, Phase::Claiming(_)) {
                    self.phase = if self.reclaim {
                        Phase::Resolving(Verdict::Left)
                    } else {
                        Phase::Watching
                    };
                    self.claim_held_at = Some(now);
                }
            }
        }
    }

    /// What to do now.
    pub fn step(&mut self, now: Ms) -> Step {
        let mut step = Step::default();
        // What the claim's answer planned goes out first, in order.
        step.actions.append(&mut self.planned);
        match self.phase.clone() {
            Phase::Done | Phase::Claiming(_) | Phase::Recording { .. } | Phase::StartSent => {}
            Phase::Resolving(v) => {
                step.actions.push(Action::Resolve(v));
                self.phase = Phase::Done;
            }
            Phase::Ending(ending) => {
                self.phase = Phase::Claiming(ending.clone());
                step.actions.push(Action::Claim(ending));
            }
            Phase::Setup => {}
            Phase::Starting => {
                // A cancel from this handle or recorded by another host
                // while the run was set up: it never starts.
                let cancelled =
                    self.cancelled || self.record.as_ref().is_some_and(|r| r.is_cancelled());
                if cancelled {
                    self.end(Ending::new(None, None), &mut step);
                } else {
                    self.phase = Phase::StartSent;
                    step.actions.push(Action::Start);
                }
            }
            Phase::Watching => {
                self.watch(now, &mut step);
                // A reclaimer does not wait, but for the exit of a
                // container it killed.
                let killed = self.last_kill.is_some() && self.life.is_some();
                if self.reclaim && step.actions.is_empty() && self.is_watching() && !killed {
                    step.actions.push(Action::Resolve(Verdict::Left));
                    self.phase = Phase::Done;
                }
            }
        }
        step
    }

    fn end(&mut self, mut ending: Ending, step: &mut Step) {
        if let Some(exit) = ending.exit.as_mut() {
            exit.oom_killed |= self.oom_said;
        }
        ending.cancelled |= self.cancelled;
        ending.timed_out |= self.timed_out;
        self.phase = Phase::Claiming(ending.clone());
        step.actions.push(Action::Claim(ending));
    }

    fn kill(&mut self, now: Ms, step: &mut Step) {
        self.last_kill = Some(now);
        step.actions.push(Action::Kill);
    }

    /// The deadline, unless it was already enforced.
    fn deadline(&self, r: &RunRecord) -> Option<Ms> {
        r.deadline_ms()
            .filter(|_| !r.is_timed_out() && !self.timed_out)
    }

    /// The launcher is still setting the run up: its container may not
    /// exist yet.
    fn launcher_busy(&self, r: &RunRecord, now: Ms) -> bool {
        if !r.is_setting_up() {
            return false;
        }
        match self.launcher {
            Liveness::Alive => true,
            Liveness::Dead | Liveness::Absent => false,
            Liveness::Unknown => r
                .started_ms()
                .is_some_and(|t| now - t < ms(self.limits.remote_setup)),
        }
    }

    fn watch(&mut self, now: Ms, step: &mut Step) {
        let Some(r) = self.record.clone() else {
            return;
        };
        if r.is_terminal() {
            // Another host ended it (while this one watched, or before it
            // came). Should that host have died between recording the end
            // and removing the container and volume, what is left goes.
            if !r.is_attached() {
                step.actions.push(Action::Sweep);
            }
            step.actions
                .push(Action::Resolve(Verdict::Record(Box::new(r))));
            self.phase = Phase::Done;
            return;
        }
        if self.kill_now && !self.cancel_kill_sent {
            self.cancel_kill_sent = true;
            self.kill(now, step);
        }
        if self.finalizer == Finalizer::Never {
            return self.watch_other_host(&r, now, step);
        }
        // The container as it is now, or why it is not known.
        if self.life.is_none() {
            if self.output_ended && self.down_after_end >= END_TRIES {
                // The container stopped, then the daemon went away: the
                // daemon stopped it on its way down.
                self.end(Ending::new(None, Some(Lost::DaemonStopped)), step);
                return;
            }
            if let Some(since) = self.down_since {
                if now - since >= ms(self.limits.daemon_grace) {
                    // Unreachable for the whole grace: a run this host owns
                    // ends lost; a watcher only stops watching.
                    if self.finalizer == Finalizer::Sole {
                        self.end(Ending::new(None, Some(Lost::DaemonUnreachable)), step);
                    } else {
                        step.actions
                            .push(Action::Resolve(Verdict::DaemonUnreachable));
                        self.phase = Phase::Done;
                    }
                    return;
                }
                if let Some(at) = self.retry_at.filter(|at| *at > now) {
                    step.wake_at = Some(at);
                    return;
                }
            }
            if !self.inspecting {
                self.inspecting = true;
                step.actions.push(Action::Inspect);
            }
            return;
        }
        let life = self.life.clone().expect("known");
        let deadline = self.deadline(&r);
        match life {
            Life::Exited(exit) => {
                if self.awaits_oom_flag(&exit, &r, now, step) {
                    return;
                }
                if let Some(held) = self.claim_held_at {
                    // Another host holds the claim: its result lands in the
                    // record; look again in a while (its holder may die).
                    let again = held + ms(self.limits.process_poll);
                    if now < again {
                        step.wake_at = Some(again);
                        return;
                    }
                    self.claim_held_at = None;
                }
                // Stopped while the daemon was away: by the daemon, unless
                // it keeps containers running across its restarts.
                let away = self.outage || self.exited_in_gap;
                if away && self.live_restore.is_none() {
                    if !self.asked_live_restore {
                        self.asked_live_restore = true;
                        step.actions.push(Action::AskLiveRestore);
                    }
                    return;
                }
                let lost =
                    (away && self.live_restore == Some(false)).then_some(Lost::DaemonStopped);
                self.end(Ending::new(Some(exit), lost), step);
            }
            Life::Gone | Life::Removing if self.started_here => {
                // Removed under a run this launcher started.
                self.end(Ending::new(None, Some(Lost::Removed)), step);
            }
            Life::Gone | Life::Created | Life::Removing => {
                let mut wake = None;
                if self.launcher_busy(&r, now) {
                    self.absent_since = None;
                    wake = Some(now + ms(self.limits.process_poll));
                } else {
                    let since = *self.absent_since.get_or_insert(now);
                    // Nobody sets it up: a reclaimer ends it now.
                    let grace = if self.reclaim {
                        0
                    } else {
                        ms(self.limits.absence_grace)
                    };
                    let until = since + grace;
                    if self.cancelled || r.is_cancelled() || now >= until {
                        return self.end(Ending::new(None, None), step);
                    }
                    wake = earliest(wake, Some(until));
                }
                if life == Life::Created && deadline.is_some_and(|d| now >= d) {
                    self.timed_out = true;
                    step.actions.push(Action::RecordTimedOut);
                    self.kill(now, step);
                }
                step.wake_at = earliest(wake, self.deadline(&r));
            }
            Life::Running | Life::Paused => {
                self.absent_since = None;
                let mut wake = deadline;
                if deadline.is_some_and(|d| now >= d) {
                    self.timed_out = true;
                    step.actions.push(Action::RecordTimedOut);
                    self.kill(now, step);
                    wake = None;
                }
                // A cancel recorded by any host wins once the grace of a
                // graceful stop has passed; so does a deadline. The kill is
                // sent again while the container still runs.
                let mut must_die = self.timed_out || r.is_timed_out();
                let kill_after = if r.is_cancelled() {
                    let recorded = r.kill_after.as_ref().and_then(Stamp::ms).unwrap_or(0);
                    Some(self.stop_kill_at.map_or(recorded, |s| s.min(recorded)))
                } else {
                    self.stop_kill_at
                };
                if let Some(at) = kill_after {
                    if now >= at {
                        must_die = true;
                    } else {
                        wake = earliest(wake, Some(at));
                    }
                }
                if must_die {
                    let retry = ms(self.limits.kill_retry);
                    if self.last_kill.is_none_or(|t| now - t >= retry) {
                        self.kill(now, step);
                    }
                    wake = earliest(wake, self.last_kill.map(|t| t + retry));
                }
                step.wake_at = wake;
            }
        }
    }

    /// A kill (exit 137) of a memory-capped container that the platform
    /// did not send (no cancel, stop, deadline or `docker kill`) may be the
    /// cap's, and the platform may say so only after the exit: under load,
    /// containerd's OOM event can reach dockerd 20.10 after the exit event,
    /// and then only its `oom` event tells (`State.OOMKilled` stays false).
    /// Such an exit waits for that word: its news makes the watcher look
    /// again at once; otherwise it looks once more `OOM_SETTLE_MS` after it
    /// first saw the exit, and takes that answer. True while it waits (the
    /// step says what next).
    fn awaits_oom_flag(&mut self, exit: &Exit, r: &RunRecord, now: Ms, step: &mut Step) -> bool {
        let killed_by_someone = self.last_kill.is_some()
            || self.signalled
            || self.cancelled
            || self.timed_out
            || r.is_cancelled()
            || r.is_timed_out();
        let long_ago = exit
            .finished_at
            .is_some_and(|f| now - f >= OOM_SETTLED_AFTER_MS);
        if exit.code != 137
            || !exit.memory_capped
            || exit.oom_killed
            || self.oom_said
            || killed_by_someone
            || long_ago
            || self.reclaim
            || self.oom_rechecked
        {
            return false;
        }
        let until = *self.oom_until.get_or_insert(now + OOM_SETTLE_MS);
        if now < until {
            step.wake_at = Some(until);
        } else {
            self.oom_rechecked = true;
            self.life = None;
            self.inspecting = true;
            step.actions.push(Action::Inspect);
        }
        true
    }

    /// An attached run of another host: resolved once that host records
    /// the end; recorded failed when that host died and the container is
    /// gone (its watchdog removes it).
    fn watch_other_host(&mut self, _r: &RunRecord, now: Ms, step: &mut Step) {
        let poll = ms(self.limits.process_poll);
        if self.reclaim {
            // Its host is gone (or elsewhere): nothing will ever record its
            // end; what is left of it goes with the record.
            if self.launcher != Liveness::Alive {
                self.end(
                    Ending {
                        host_died: true,
                        ..Ending::new(None, None)
                    },
                    step,
                );
            }
            return;
        }
        // A host on this machine is checked again soon (no daemon request);
        // a host elsewhere cannot be: its container tells.
        let mut wake =
            matches!(self.launcher, Liveness::Alive | Liveness::Dead).then_some(now + poll);
        if self.launcher != Liveness::Alive {
            match &self.life {
                None if self.down_since.is_some() && self.retry_at.is_some_and(|at| at > now) => {
                    self.absent_since = None;
                    wake = earliest(wake, Some(now + poll));
                }
                None => {
                    if !self.inspecting {
                        self.inspecting = true;
                        step.actions.push(Action::Inspect);
                    }
                    return;
                }
                Some(Life::Gone) => {
                    let since = *self.absent_since.get_or_insert(now);
                    let until = since + ms(self.limits.absence_grace);
                    if now >= until {
                        return self.end(
                            Ending {
                                host_died: true,
                                ..Ending::new(None, None)
                            },
                            step,
                        );
                    }
                    wake = earliest(wake, Some(until));
                }
                Some(_) => self.absent_since = None,
            }
        }
        step.wake_at = wake;
    }
}

/// How often a removal of a run that never started looks again.
pub const LINGER_STEP_MS: Ms = 500;

/// After a run whose launcher died in setup is removed, a create that
/// launcher sent may still land (a container create also re-creates its
/// named volume): the removal looks again every [`LINGER_STEP_MS`] until
/// `linger` (`setup_linger`, 5 s) has passed since it first removed. A
/// pass that falls behind does not catch up with looks in a burst.
#[derive(Debug, Clone)]
pub struct Linger {
    until: Ms,
    last: Ms,
}

impl Linger {
    pub fn new(removed_at: Ms, linger: std::time::Duration) -> Self {
        Linger {
            until: removed_at.saturating_add(ms(linger)),
            last: removed_at,
        }
    }

    /// When to look again, or None when the linger is over.
    pub fn next_look(&mut self, now: Ms) -> Option<Ms> {
        if self.last >= self.until {
            return None;
        }
        let at = (self.last + LINGER_STEP_MS).max(now);
        if at > self.until + LINGER_STEP_MS {
            return None;
        }
        self.last = at;
        Some(at)
    }
}

/// True when `claim` may be taken over by `me`: it is `me`'s, or its holder
/// died, or it was not refreshed within `stale_ms`.
pub fn may_claim(
    claim: Option<&Claim>,
    me: &crate::record::HostIdentity,
    holder: Liveness,
    now: Ms,
    stale_ms: Ms,
) -> bool {
    match claim {
        None => true,
        Some(c) if &c.host == me => true,
        Some(c) => holder == Liveness::Dead || now - c.heartbeat > stale_ms,
    }
}

/// What a finalizer writes, decided from the record as claimed and how the
/// run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub status: RunStatus,
    pub exit_code: Option<i64>,
    pub cancelled: bool,
    pub timed_out: bool,
    pub lost: Option<Lost>,
    /// The container exited (its output is kept, even if the exit was not
    /// its own).
    pub exited: bool,
    /// The results are read out (exit 0, not cancelled, not timed out, and
    /// something to extract).
    pub extract: bool,
    /// The container never started: its removal also watches for a create
    /// that lands late.
    pub never_started: bool,
    /// The memory cap killed it.
    pub oom_killed: bool,
}

/// The end of a run, from the record as the finalizer claimed it: a
/// container that started and is gone was removed under the run; a cancel
/// that came after the container had already exited by itself does not
/// discard a finished run's result.
pub fn terminal(claimed: &RunRecord, ending: &Ending) -> Terminal {
    let started = claimed.phase == Some(RunPhase::Started);
    let lost = ending.lost.or_else(|| {
        (ending.exit.is_none() && started && !ending.failed_setup).then_some(Lost::Removed)
    });
    let exited = ending.exit.is_some();
    let exit = if lost.is_some() {
        None
    } else {
        ending.exit.clone()
    };
    let exit_code = exit.as_ref().map(|e| e.code);
    let mut cancelled = claimed.is_cancelled() || ending.cancelled;
    if cancelled && exit_code.is_some() {
        let cancelled_at = claimed.cancelled_at.as_ref().and_then(Stamp::ms);
        let finished_at = exit.as_ref().and_then(|e| e.finished_at);
        if let (Some(c), Some(f)) = (cancelled_at, finished_at) {
            if f < c {
                cancelled = false;
            }
        }
    }
    let status = match exit_code {
        None if cancelled => RunStatus::Cancelled,
        None => RunStatus::Failed,
        Some(_) if cancelled => RunStatus::Cancelled,
        Some(_) => RunStatus::Exited,
    };
    // A cancelled run whose container went is cancelled, not lost.
    let lost = lost.filter(|_| status == RunStatus::Failed);
    let timed_out = claimed.is_timed_out() || ending.timed_out;
    let extract = exit_code == Some(0)
        && !cancelled
        && !timed_out
        && claimed.extract.as_ref().is_some_and(|x| !x.is_empty());
    Terminal {
        status,
        exit_code,
        cancelled,
        timed_out,
        lost,
        exited,
        extract,
        never_started: !exited && !started,
        oom_killed: ending.exit.as_ref().is_some_and(|e| e.oom_killed),
    }
}

/// How a run's end is carried out, in order, once this host may write it
/// (`claimed`: the record as claimed or read). A failed setup is recorded,
/// then what it created goes. A dead host's run goes first (nothing of it
/// is kept), then its failure is recorded. Any other end: the claim is kept
/// fresh while the finalizer works (detached runs), the handle hears the
/// container halted, the results are read out (exit 0, not cancelled nor
/// timed out, something asked for), the output is kept (the attached
/// launcher's own copy, or the daemon's log of an exited container), the
/// terminal record is written, and only then are the container and volume
/// removed: a finalizer that dies in between loses nothing, and the next
/// host to look sweeps what it left.
pub fn plan(claimed: &RunRecord, ending: &Ending, finalizer: Finalizer) -> Vec<Action> {
    if ending.failed_setup {
        return vec![
            Action::RecordFailure(Failure::SetupFailed),
            Action::Remove {
                never_started: false,
            },
        ];
    }
    if ending.host_died {
        return vec![
            Action::Remove {
                never_started: false,
            },
            Action::RecordFailure(Failure::HostDied),
        ];
    }
    let t = terminal(claimed, ending);
    let mut actions = Vec::new();
    if finalizer == Finalizer::Claim {
        actions.push(Action::Heartbeat);
    }
    if t.exited {
        actions.push(Action::Halted);
    }
    if t.extract {
        actions.push(Action::Extract);
    }
    if t.exited || finalizer == Finalizer::Sole {
        actions.push(Action::KeepOutput {
            lost: ending.lost.is_some() || t.lost.is_some(),
        });
    }
    let never_started = t.never_started;
    actions.push(Action::Record(Box::new(t)));
    actions.push(Action::Remove { never_started });
    actions
}

#[cfg(test)]
mod tests;
