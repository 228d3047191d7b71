//! The timing rules of a run, on a clock that moves by hand: each test is
//! a few milliseconds of CPU, whatever the times it covers.

use super::*;
use crate::config::Settings;
use crate::record::HostIdentity;

const T0: Ms = 1_000_000;

fn limits() -> Limits {
    Limits::new(&Settings::from_vars(|_| None))
}

fn record() -> RunRecord {
    let mut r = RunRecord::new("light-runner-0123456789ab", "i", "/app", Stamp::at(T0));
    r.detached = Some(true);
    r.phase = Some(RunPhase::Started);
    r.host = Some(HostIdentity {
        hostname: "h".into(),
        pid: 1,
    });
    r
}

fn exit(code: i64, finished_at: Ms) -> Exit {
    Exit {
        code,
        oom_killed: false,
        finished_at: Some(finished_at),
        memory_capped: false,
    }
}

/// A kill of a memory-capped container, flagged as the cap's or not (yet).
fn capped_kill(oom_killed: bool, finished_at: Ms) -> Exit {
    Exit {
        oom_killed,
        memory_capped: true,
        ..exit(137, finished_at)
    }
}

/// The container inspected as `life` (its exit, if any, not in a gap).
fn seen(life: Life) -> Observation {
    Observation::Container {
        life,
        exited_in_gap: false,
    }
}

/// A watcher of `r` that has seen the container as `life`.
fn watching(f: Finalizer, r: RunRecord, launcher: Liveness, life: Life, now: Ms) -> Lifecycle {
    let mut l = Lifecycle::watcher(f, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r),
            launcher,
        },
        now,
    );
    assert_eq!(l.step(now).actions, vec![Action::Inspect]);
    l.observe(
        Observation::Container {
            life,
            exited_in_gap: false,
        },
        now,
    );
    l
}

fn finalize(step: &Step) -> Option<&Ending> {
    step.actions.iter().find_map(|a| match a {
        Action::Claim(e) => Some(e),
        _ => None,
    })
}

fn kills(step: &Step) -> usize {
    step.actions.iter().filter(|a| **a == Action::Kill).count()
}

#[test]
fn an_exit_is_finalized_with_its_code() {
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Exited(exit(3, T0)),
        T0,
    );
    let s = l.step(T0);
    let e = finalize(&s).expect("finalized");
    assert_eq!(e.exit.as_ref().unwrap().code, 3);
    assert_eq!(e.lost, None);
    assert!(l.step(T0).actions.is_empty(), "one Claim, then its answer");
    // Claimed: the plan goes out in one step, in order.
    l.observe(Observation::Claimed(Box::new(record())), T0 + 1);
    let s = l.step(T0 + 1);
    assert_eq!(
        s.actions,
        plan(&record(), e, Finalizer::Claim),
        "the plan, and nothing before its record"
    );
    assert!(l.step(T0 + 2).actions.is_empty(), "the record is awaited");
    let mut done = record();
    done.finish(RunStatus::Exited, Some(3), T0 + 5);
    l.observe(Observation::Recorded(Box::new(done.clone())), T0 + 5);
    assert_eq!(
        l.step(T0 + 5).actions,
        vec![Action::Resolve(Verdict::Record(Box::new(done)))]
    );
    assert!(l.is_done());
}

#[test]
fn stopped_by_a_daemon_without_live_restore_is_lost_with_it_the_jobs_own() {
    for (live_restore, lost) in [(false, Some(Lost::DaemonStopped)), (true, None)] {
        let mut l = watching(
            Finalizer::Claim,
            record(),
            Liveness::Dead,
            Life::Running,
            T0,
        );
        assert!(l.step(T0).actions.is_empty());
        // The daemon goes away: the retries back off.
        l.observe(Observation::ContainerNews, T0 + 10);
        assert_eq!(l.step(T0 + 10).actions, vec![Action::Inspect]);
        l.observe(Observation::DaemonUnreachable, T0 + 20);
        let s = l.step(T0 + 20);
        assert!(s.actions.is_empty());
        assert_eq!(s.wake_at, Some(T0 + 20 + 500));
        assert_eq!(l.step(T0 + 520).actions, vec![Action::Inspect]);
        l.observe(Observation::DaemonUnreachable, T0 + 530);
        assert_eq!(l.step(T0 + 531).wake_at, Some(T0 + 530 + 1000), "backs off");
        // It answers again: the container stopped meanwhile.
        assert_eq!(l.step(T0 + 1530).actions, vec![Action::Inspect]);
        l.observe(seen(Life::Exited(exit(137, T0 + 300))), T0 + 1540);
        assert_eq!(l.step(T0 + 1540).actions, vec![Action::AskLiveRestore]);
        assert!(l.step(T0 + 1541).actions.is_empty(), "asked once");
        l.observe(Observation::LiveRestore(live_restore), T0 + 1550);
        let s = l.step(T0 + 1550);
        let e = finalize(&s).unwrap();
        assert_eq!(e.lost, lost, "live-restore {live_restore}");
        assert_eq!(e.exit.as_ref().unwrap().code, 137);
    }
}

#[test]
fn an_exit_that_fell_in_a_gap_of_the_events_stream_is_asked_about_too() {
    let mut l = Lifecycle::watcher(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(record()),
            launcher: Liveness::Dead,
        },
        T0,
    );
    l.step(T0);
    l.observe(
        Observation::Container {
            life: Life::Exited(exit(0, T0)),
            exited_in_gap: true,
        },
        T0,
    );
    assert_eq!(l.step(T0).actions, vec![Action::AskLiveRestore]);
    l.observe(Observation::LiveRestore(false), T0);
    assert_eq!(
        finalize(&l.step(T0)).unwrap().lost,
        Some(Lost::DaemonStopped)
    );
}

#[test]
fn a_daemon_away_for_the_whole_grace_ends_an_owned_run_lost_and_a_watch() {
    let grace = ms(limits().daemon_grace);
    // A watcher stops watching; nothing is recorded (live-restore may keep it).
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Running,
        T0,
    );
    l.observe(Observation::DaemonUnreachable, T0);
    assert!(l.step(T0 + grace - 1).actions.contains(&Action::Inspect));
    l.observe(Observation::DaemonUnreachable, T0 + grace - 1);
    assert_eq!(
        l.step(T0 + grace).actions,
        vec![Action::Resolve(Verdict::DaemonUnreachable)]
    );
    // The launcher of an attached run ends it, lost.
    let mut l = Lifecycle::launcher(Finalizer::Sole, record(), limits());
    l.observe(Observation::SetupDone, T0);
    assert_eq!(l.step(T0).actions, vec![Action::Start]);
    l.observe(Observation::Started, T0);
    l.observe(Observation::DaemonUnreachable, T0);
    let s = l.step(T0 + grace);
    assert_eq!(finalize(&s).unwrap().lost, Some(Lost::DaemonUnreachable));
}

#[test]
fn a_claim_held_by_a_live_host_is_waited_for_and_a_stale_one_taken_over() {
    let me = HostIdentity::current();
    let other = HostIdentity {
        hostname: "elsewhere".into(),
        pid: 7,
    };
    let stale = 60_000;
    let held = Claim {
        host: other.clone(),
        heartbeat: T0,
    };
    assert!(may_claim(None, &me, Liveness::Absent, T0, stale));
    assert!(!may_claim(
        Some(&held),
        &me,
        Liveness::Unknown,
        T0 + stale,
        stale
    ));
    assert!(
        may_claim(Some(&held), &me, Liveness::Unknown, T0 + stale + 1, stale),
        "stale"
    );
    assert!(
        may_claim(Some(&held), &me, Liveness::Dead, T0 + 1, stale),
        "holder died"
    );
    let mine = Claim {
        host: me.clone(),
        heartbeat: 0,
    };
    assert!(may_claim(Some(&mine), &me, Liveness::Alive, T0, stale));

    // The lifecycle: held elsewhere, it looks again after a poll.
    let poll = ms(limits().process_poll);
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Exited(exit(0, T0)),
        T0,
    );
    assert!(finalize(&l.step(T0)).is_some());
    l.observe(Observation::ClaimHeld, T0 + 1);
    let s = l.step(T0 + 1);
    assert!(s.actions.is_empty());
    assert_eq!(s.wake_at, Some(T0 + 1 + poll));
    assert!(finalize(&l.step(T0 + 1 + poll)).is_some(), "tries again");
}

#[test]
fn a_deadline_kills_the_run_of_a_launcher_that_died() {
    let mut r = record();
    r.deadline = Some(Stamp::at(T0 + 60_000));
    let mut l = watching(
        Finalizer::Claim,
        r.clone(),
        Liveness::Dead,
        Life::Running,
        T0,
    );
    let s = l.step(T0);
    assert!(s.actions.is_empty());
    assert_eq!(s.wake_at, Some(T0 + 60_000));
    let s = l.step(T0 + 60_000);
    assert_eq!(s.actions, vec![Action::RecordTimedOut, Action::Kill]);
    // The kill is sent again while the container runs.
    let retry = ms(limits().kill_retry);
    assert_eq!(l.step(T0 + 60_001).wake_at, Some(T0 + 60_000 + retry));
    // It exits: ended timed out.
    l.observe(seen(Life::Exited(exit(137, T0 + 60_010))), T0 + 60_010);
    let s = l.step(T0 + 60_010);
    assert!(finalize(&s).unwrap().timed_out);
    // A created container past its deadline is killed too.
    let mut l = watching(
        Finalizer::Claim,
        r,
        Liveness::Alive,
        Life::Created,
        T0 + 70_000,
    );
    let mut setting_up = record();
    setting_up.phase = Some(RunPhase::Setup);
    setting_up.deadline = Some(Stamp::at(T0 + 60_000));
    l.observe(
        Observation::Record {
            record: Box::new(setting_up),
            launcher: Liveness::Alive,
        },
        T0 + 70_000,
    );
    assert_eq!(
        l.step(T0 + 70_000).actions,
        vec![Action::RecordTimedOut, Action::Kill]
    );
}

#[test]
fn a_cancel_after_the_container_exited_by_itself_keeps_the_result() {
    let mut r = record();
    r.cancelled = Some(true);
    r.extract = Some(vec![crate::record::ExtractSpec {
        from: "out".into(),
        to: "/o".into(),
    }]);
    let ending = |finished| Ending {
        exit: Some(exit(0, finished)),
        ..Ending::new(None, None)
    };
    // Cancelled at T0 + 100: an exit at T0 + 50 was the job's own.
    r.cancelled_at = Some(Stamp::at(T0 + 100));
    let t = terminal(&r, &ending(T0 + 50));
    assert!(!t.cancelled);
    assert_eq!(t.status, RunStatus::Exited);
    assert!(t.extract, "its results are read out");
    // An exit after the cancel is the cancel's doing.
    let t = terminal(&r, &ending(T0 + 150));
    assert!(t.cancelled);
    assert_eq!(t.status, RunStatus::Cancelled);
    assert!(!t.extract);
    // This handle's own cancel (the record may not say so) counts too.
    let mut own = ending(T0 + 150);
    own.cancelled = true;
    let mut plain = record();
    plain.cancelled = None;
    assert!(terminal(&plain, &own).cancelled);
}

#[test]
fn stop_signals_then_kills_after_its_grace() {
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Running,
        T0,
    );
    l.observe(Observation::Stop { grace_ms: 10_000 }, T0);
    let s = l.step(T0);
    assert_eq!(kills(&s), 0, "the signal first: no kill before the grace");
    assert_eq!(s.wake_at, Some(T0 + 10_000));
    assert_eq!(kills(&l.step(T0 + 9_999)), 0);
    assert_eq!(kills(&l.step(T0 + 10_000)), 1);
    // A grace recorded by another host counts the same way.
    let mut r = record();
    r.cancelled = Some(true);
    r.kill_after = Some(Stamp::at(T0 + 3_000));
    let mut l = watching(Finalizer::Claim, r, Liveness::Dead, Life::Running, T0);
    assert_eq!(l.step(T0).wake_at, Some(T0 + 3_000));
    assert_eq!(kills(&l.step(T0 + 3_000)), 1);
}

#[test]
fn a_kill_is_sent_again_every_five_seconds_while_the_container_runs() {
    let mut r = record();
    r.timed_out = Some(true);
    let mut l = watching(Finalizer::Claim, r, Liveness::Dead, Life::Running, T0);
    assert_eq!(kills(&l.step(T0)), 1);
    assert_eq!(kills(&l.step(T0 + 4_999)), 0);
    let s = l.step(T0 + 4_999);
    assert_eq!(s.wake_at, Some(T0 + 5_000));
    assert_eq!(kills(&l.step(T0 + 5_000)), 1);
    assert_eq!(kills(&l.step(T0 + 9_999)), 0);
    assert_eq!(kills(&l.step(T0 + 10_000)), 1);
}

#[test]
fn a_launcher_setting_up_is_waited_for_then_a_dead_ones_run_ends_never_started() {
    let mut r = record();
    r.phase = Some(RunPhase::Setup);
    let poll = ms(limits().process_poll);
    let mut l = watching(Finalizer::Claim, r.clone(), Liveness::Alive, Life::Gone, T0);
    let s = l.step(T0);
    assert!(s.actions.is_empty());
    assert_eq!(s.wake_at, Some(T0 + poll), "the launcher is checked again");
    // It died: the container may still come (a create in flight) for the
    // absence grace, then the run ends; its removal watches for late creates.
    l.observe(
        Observation::Record {
            record: Box::new(r.clone()),
            launcher: Liveness::Dead,
        },
        T0 + poll,
    );
    let grace = ms(limits().absence_grace);
    assert_eq!(l.step(T0 + poll).wake_at, Some(T0 + poll + grace));
    let s = l.step(T0 + poll + grace);
    let e = finalize(&s).unwrap();
    assert_eq!(e.exit, None);
    let t = terminal(&r, e);
    assert!(t.never_started, "removal lingers for late creates");
    assert_eq!(t.status, RunStatus::Failed);
    assert_eq!(t.lost, None);
    // A reclaimer ends it at once, without the grace.
    let mut l = Lifecycle::reclaimer(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r),
            launcher: Liveness::Dead,
        },
        T0,
    );
    assert_eq!(l.step(T0).actions, vec![Action::Inspect]);
    l.observe(seen(Life::Gone), T0);
    assert!(finalize(&l.step(T0)).is_some());
}

#[test]
fn a_started_container_that_vanished_was_removed_under_the_run() {
    let grace = ms(limits().absence_grace);
    let mut l = watching(Finalizer::Claim, record(), Liveness::Dead, Life::Gone, T0);
    assert!(l.step(T0).actions.is_empty());
    let s = l.step(T0 + grace);
    let t = terminal(&record(), finalize(&s).unwrap());
    assert_eq!(t.lost, Some(Lost::Removed));
    assert_eq!(t.status, RunStatus::Failed);
    assert!(!t.never_started);
    // The launcher that started it knows at once.
    let mut l = Lifecycle::launcher(Finalizer::Sole, record(), limits());
    l.observe(Observation::SetupDone, T0);
    l.step(T0);
    l.observe(Observation::Started, T0);
    assert_eq!(l.step(T0).actions, vec![Action::Inspect]);
    l.observe(seen(Life::Gone), T0);
    assert_eq!(finalize(&l.step(T0)).unwrap().lost, Some(Lost::Removed));
}

#[test]
fn a_cancel_during_setup_means_the_run_never_starts() {
    for recorded_elsewhere in [false, true] {
        let mut r = record();
        r.phase = Some(RunPhase::Setup);
        let mut l = Lifecycle::launcher(Finalizer::Sole, r.clone(), limits());
        if recorded_elsewhere {
            r.cancelled = Some(true);
            l.observe(
                Observation::Record {
                    record: Box::new(r.clone()),
                    launcher: Liveness::Alive,
                },
                T0,
            );
        } else {
            l.observe(Observation::Cancel, T0);
        }
        assert!(l.step(T0).actions.is_empty(), "setup goes on");
        l.observe(Observation::SetupDone, T0 + 5);
        let s = l.step(T0 + 5);
        assert!(!s.actions.contains(&Action::Start));
        let e = finalize(&s).unwrap();
        let t = terminal(&r, e);
        assert_eq!(t.status, RunStatus::Cancelled);
        assert!(t.never_started && t.exit_code.is_none());
    }
}

#[test]
fn a_failed_setup_is_finalized_then_resolves_with_its_error() {
    let mut l = Lifecycle::launcher(Finalizer::Claim, record(), limits());
    l.observe(Observation::SetupFailed, T0);
    assert!(finalize(&l.step(T0)).unwrap().failed_setup);
    l.observe(Observation::Claimed(Box::new(record())), T0);
    assert_eq!(
        l.step(T0).actions,
        vec![
            Action::RecordFailure(Failure::SetupFailed),
            Action::Remove {
                never_started: false
            }
        ]
    );
    l.observe(Observation::Recorded(Box::new(record())), T0);
    assert_eq!(
        l.step(T0).actions,
        vec![Action::Resolve(Verdict::SetupFailed)]
    );
}

#[test]
fn another_hosts_attached_run_is_watched_until_its_host_dies_and_its_container_goes() {
    let mut r = record();
    r.detached = Some(false);
    let poll = ms(limits().process_poll);
    let grace = ms(limits().absence_grace);
    let mut l = Lifecycle::watcher(Finalizer::Never, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r.clone()),
            launcher: Liveness::Alive,
        },
        T0,
    );
    let s = l.step(T0);
    assert!(
        s.actions.is_empty(),
        "no daemon request while its host lives"
    );
    assert_eq!(s.wake_at, Some(T0 + poll));
    l.observe(
        Observation::Record {
            record: Box::new(r.clone()),
            launcher: Liveness::Dead,
        },
        T0 + poll,
    );
    assert_eq!(l.step(T0 + poll).actions, vec![Action::Inspect]);
    l.observe(seen(Life::Gone), T0 + poll);
    assert!(l.step(T0 + poll).actions.is_empty());
    assert!(finalize(&l.step(T0 + poll + grace)).unwrap().host_died);
    // Recorded by its host first: resolved from the record, nothing swept
    // (an attached run is its host's to remove).
    let mut l = Lifecycle::watcher(Finalizer::Never, limits());
    let mut done = r;
    done.finish(RunStatus::Exited, Some(0), T0);
    l.observe(
        Observation::Record {
            record: Box::new(done.clone()),
            launcher: Liveness::Alive,
        },
        T0,
    );
    assert_eq!(
        l.step(T0).actions,
        vec![Action::Resolve(Verdict::Record(Box::new(done)))]
    );
}

#[test]
fn a_finished_detached_run_is_swept_then_resolved() {
    let mut done = record();
    done.finish(RunStatus::Exited, Some(0), T0);
    let mut l = Lifecycle::watcher(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(done.clone()),
            launcher: Liveness::Dead,
        },
        T0,
    );
    assert_eq!(
        l.step(T0).actions,
        vec![
            Action::Sweep,
            Action::Resolve(Verdict::Record(Box::new(done)))
        ]
    );
}

#[test]
fn a_reclaimer_leaves_what_it_cannot_end_now() {
    // Running within its deadline, a launcher busy, a claim held: left.
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Running,
        T0,
    );
    l.reclaim = true;
    assert_eq!(l.step(T0).actions, vec![Action::Resolve(Verdict::Left)]);
    let mut r = record();
    r.phase = Some(RunPhase::Setup);
    let mut l = Lifecycle::reclaimer(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r),
            launcher: Liveness::Alive,
        },
        T0,
    );
    l.step(T0);
    l.observe(seen(Life::Gone), T0);
    assert_eq!(l.step(T0).actions, vec![Action::Resolve(Verdict::Left)]);
    // Past its deadline: killed, then waited for.
    let mut r = record();
    r.deadline = Some(Stamp::at(T0 - 1));
    let mut l = Lifecycle::reclaimer(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r),
            launcher: Liveness::Dead,
        },
        T0,
    );
    l.step(T0);
    l.observe(seen(Life::Running), T0);
    assert_eq!(
        l.step(T0).actions,
        vec![Action::RecordTimedOut, Action::Kill]
    );
    assert!(l.step(T0 + 1).actions.is_empty(), "waits for the exit");
    // An attached run of a dead host: ended at once.
    let mut r = record();
    r.detached = Some(false);
    let mut l = Lifecycle::reclaimer(Finalizer::Never, limits());
    l.observe(
        Observation::Record {
            record: Box::new(r),
            launcher: Liveness::Dead,
        },
        T0,
    );
    assert!(finalize(&l.step(T0)).unwrap().host_died);
}

#[test]
fn this_handles_cancel_kills_once() {
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Running,
        T0,
    );
    l.observe(Observation::Cancel, T0);
    assert_eq!(kills(&l.step(T0)), 1);
    assert_eq!(kills(&l.step(T0 + 1)), 0);
}

#[test]
fn a_stop_the_daemon_reported_then_a_daemon_gone_is_a_daemon_that_stopped_it() {
    let mut l = Lifecycle::launcher(Finalizer::Sole, record(), limits());
    l.observe(Observation::SetupDone, T0);
    l.step(T0);
    l.observe(Observation::Started, T0);
    l.step(T0);
    l.observe(seen(Life::Running), T0);
    // A wait says it stopped; the daemon does not answer, three times in a row,
    // 100 ms apart: it stopped the container on its way down (no need to
    // wait the daemon grace, nor for the daemon to come back).
    l.observe(Observation::Stopped, T0 + 10);
    let mut now = T0 + 10;
    for _ in 0..2 {
        assert_eq!(l.step(now).actions, vec![Action::Inspect]);
        l.observe(Observation::DaemonUnreachable, now);
        let s = l.step(now);
        assert!(s.actions.is_empty());
        assert_eq!(s.wake_at, Some(now + 100));
        now += 100;
    }
    assert_eq!(l.step(now).actions, vec![Action::Inspect]);
    l.observe(Observation::DaemonUnreachable, now);
    assert_eq!(
        finalize(&l.step(now)).unwrap().lost,
        Some(Lost::DaemonStopped)
    );
    // A hiccup that passes: the container is seen running again, nothing ends.
    let mut l = watching(
        Finalizer::Sole,
        record(),
        Liveness::Alive,
        Life::Running,
        T0,
    );
    l.observe(Observation::Stopped, T0);
    l.step(T0);
    l.observe(Observation::DaemonUnreachable, T0);
    l.observe(seen(Life::Running), T0 + 100);
    assert!(finalize(&l.step(T0 + 100)).is_none());
}

#[test]
fn a_capped_kill_waits_for_the_daemons_oom_flag_and_its_news_ends_the_wait() {
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Exited(capped_kill(false, T0)),
        T0,
    );
    let s = l.step(T0);
    assert_eq!(finalize(&s), None, "not ended on an unflagged kill");
    assert_eq!(s.wake_at, Some(T0 + OOM_SETTLE_MS));
    // The daemon's `oom` event: look again at once.
    l.observe(Observation::ContainerNews, T0 + 40);
    assert_eq!(l.step(T0 + 40).actions, vec![Action::Inspect]);
    l.observe(seen(Life::Exited(capped_kill(true, T0))), T0 + 45);
    let s = l.step(T0 + 45);
    let e = finalize(&s).expect("ended once flagged");
    assert!(e.exit.as_ref().unwrap().oom_killed);
}

#[test]
fn a_capped_kill_never_flagged_is_looked_at_once_more_then_ended_as_it_is() {
    let mut l = watching(
        Finalizer::Sole,
        record(),
        Liveness::Alive,
        Life::Exited(capped_kill(false, T0)),
        T0,
    );
    assert_eq!(l.step(T0).wake_at, Some(T0 + OOM_SETTLE_MS));
    assert!(l.step(T0 + OOM_SETTLE_MS - 1).actions.is_empty());
    assert_eq!(l.step(T0 + OOM_SETTLE_MS).actions, vec![Action::Inspect]);
    l.observe(
        seen(Life::Exited(capped_kill(false, T0))),
        T0 + OOM_SETTLE_MS + 5,
    );
    let s = l.step(T0 + OOM_SETTLE_MS + 5);
    let e = finalize(&s).expect("ended after one more look");
    assert!(!e.exit.as_ref().unwrap().oom_killed);
    assert_eq!(e.exit.as_ref().unwrap().code, 137);
}

#[test]
fn kills_that_cannot_be_the_caps_or_were_sent_are_ended_at_once() {
    let uncapped = exit(137, T0);
    let other_code = Exit {
        code: 1,
        ..capped_kill(false, T0)
    };
    let flagged = capped_kill(true, T0);
    let long_ago = capped_kill(false, T0 - OOM_SETTLED_AFTER_MS);
    for e in [uncapped, other_code, flagged, long_ago] {
        let mut l = watching(
            Finalizer::Claim,
            record(),
            Liveness::Dead,
            Life::Exited(e.clone()),
            T0,
        );
        assert!(finalize(&l.step(T0)).is_some(), "{e:?}");
    }
    // Cancelled here, or by another host, or timed out: the kill was sent.
    let mut cancelled = record();
    cancelled.cancelled = Some(true);
    let mut timed_out = record();
    timed_out.timed_out = Some(true);
    for r in [cancelled, timed_out] {
        let mut l = watching(
            Finalizer::Claim,
            r.clone(),
            Liveness::Dead,
            Life::Exited(capped_kill(false, T0)),
            T0,
        );
        assert!(finalize(&l.step(T0)).is_some(), "{r:?}");
    }
    let mut l = watching(
        Finalizer::Sole,
        record(),
        Liveness::Alive,
        Life::Running,
        T0,
    );
    l.observe(Observation::Cancel, T0 + 1);
    assert_eq!(kills(&l.step(T0 + 1)), 1);
    l.observe(seen(Life::Exited(capped_kill(false, T0 + 2))), T0 + 3);
    assert!(finalize(&l.step(T0 + 3)).is_some());
    // A reclaiming pass never waits.
    let mut l = Lifecycle::reclaimer(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(record()),
            launcher: Liveness::Dead,
        },
        T0,
    );
    assert_eq!(l.step(T0).actions, vec![Action::Inspect]);
    l.observe(seen(Life::Exited(capped_kill(false, T0))), T0);
    assert!(finalize(&l.step(T0)).is_some());
}

#[test]
fn the_platforms_word_of_an_oom_is_the_caps_kill_even_when_its_flag_never_comes() {
    let mut l = watching(
        Finalizer::Claim,
        record(),
        Liveness::Dead,
        Life::Exited(capped_kill(false, T0)),
        T0,
    );
    assert_eq!(l.step(T0).wake_at, Some(T0 + OOM_SETTLE_MS));
    // The `oom` event: looked at again, the flag still false.
    l.observe(Observation::ContainerNews, T0 + 30);
    assert_eq!(l.step(T0 + 30).actions, vec![Action::Inspect]);
    l.observe(Observation::Oom, T0 + 35);
    l.observe(seen(Life::Exited(capped_kill(false, T0))), T0 + 35);
    let s = l.step(T0 + 35);
    let e = finalize(&s).expect("ended on the platform's word");
    assert!(e.exit.as_ref().unwrap().oom_killed);
}

#[test]
fn a_kill_the_platform_sent_is_not_waited_on() {
    let mut l = Lifecycle::watcher(Finalizer::Claim, limits());
    l.observe(
        Observation::Record {
            record: Box::new(record()),
            launcher: Liveness::Dead,
        },
        T0,
    );
    assert_eq!(l.step(T0).actions, vec![Action::Inspect]);
    l.observe(Observation::Signalled, T0 + 1);
    l.observe(seen(Life::Exited(capped_kill(false, T0))), T0 + 1);
    let s = l.step(T0 + 1);
    let e = finalize(&s).expect("a docker kill ends at once");
    assert!(!e.exit.as_ref().unwrap().oom_killed);
}

#[test]
fn the_end_is_carried_out_in_order_and_removal_comes_after_the_record() {
    let mut r = record();
    r.extract = Some(vec![crate::record::ExtractSpec {
        from: "out".into(),
        to: "/tmp/out".into(),
    }]);
    let ok = Ending::new(Some(exit(0, T0)), None);
    let t = terminal(&r, &ok);
    assert_eq!(
        plan(&r, &ok, Finalizer::Claim),
        vec![
            Action::Heartbeat,
            Action::Halted,
            Action::Extract,
            Action::KeepOutput { lost: false },
            Action::Record(Box::new(t.clone())),
            Action::Remove {
                never_started: false
            },
        ]
    );
    // The launcher of an attached run holds no claim; a failed exit has
    // nothing read out.
    let failed = Ending::new(Some(exit(2, T0)), None);
    let p = plan(&r, &failed, Finalizer::Sole);
    assert!(!p.contains(&Action::Heartbeat) && !p.contains(&Action::Extract));
    assert_eq!(p.first(), Some(&Action::Halted));
    // Never started (cancelled in setup): no halt, no output but the
    // launcher's own, a removal that watches for a late create.
    let mut setting_up = record();
    setting_up.phase = Some(RunPhase::Setup);
    let cancelled = Ending {
        cancelled: true,
        ..Ending::new(None, None)
    };
    let p = plan(&setting_up, &cancelled, Finalizer::Claim);
    assert!(
        !p.contains(&Action::Halted) && !p.iter().any(|a| matches!(a, Action::KeepOutput { .. }))
    );
    assert_eq!(
        p.last(),
        Some(&Action::Remove {
            never_started: true
        })
    );
    // Removed under the run: the output drain is short.
    let removed = Ending::new(None, Some(Lost::Removed));
    assert!(plan(&r, &removed, Finalizer::Sole).contains(&Action::KeepOutput { lost: true }));
    // A dead host's run goes before its failure is written.
    let died = Ending {
        host_died: true,
        ..Ending::new(None, None)
    };
    assert_eq!(
        plan(&r, &died, Finalizer::Never),
        vec![
            Action::Remove {
                never_started: false
            },
            Action::RecordFailure(Failure::HostDied),
        ]
    );
}

#[test]
fn a_run_ended_by_another_host_meanwhile_is_swept_then_resolved_with_its_record() {
    for sweep in [true, false] {
        let mut l = watching(
            Finalizer::Claim,
            record(),
            Liveness::Dead,
            Life::Exited(exit(0, T0)),
            T0,
        );
        assert!(finalize(&l.step(T0)).is_some());
        let mut done = record();
        done.finish(RunStatus::Exited, Some(0), T0);
        l.observe(
            Observation::ClaimOver {
                record: Box::new(done.clone()),
                sweep,
            },
            T0 + 1,
        );
        let mut want = vec![Action::Resolve(Verdict::Record(Box::new(done)))];
        if sweep {
            want.insert(0, Action::Sweep);
        }
        assert_eq!(l.step(T0 + 1).actions, want);
        assert!(l.is_done());
    }
}

#[test]
fn a_removal_that_never_started_looks_again_every_half_second_for_the_linger() {
    let linger = limits().setup_linger;
    assert_eq!(ms(linger), 5_000);
    let mut l = Linger::new(T0, linger);
    let mut looks = Vec::new();
    let mut now = T0;
    while let Some(at) = l.next_look(now) {
        looks.push(at - T0);
        now = at;
    }
    assert_eq!(
        looks,
        (1..=10).map(|k| k * LINGER_STEP_MS).collect::<Vec<_>>()
    );
    // A pass that falls behind looks once at the time it is, not in a burst,
    // and not past the linger.
    let mut l = Linger::new(T0, linger);
    assert_eq!(l.next_look(T0), Some(T0 + 500));
    assert_eq!(l.next_look(T0 + 3_200), Some(T0 + 3_200));
    assert_eq!(l.next_look(T0 + 3_200), Some(T0 + 3_700));
    assert_eq!(l.next_look(T0 + 9_000), None);
    // No linger: no look.
    assert_eq!(
        Linger::new(T0, std::time::Duration::ZERO).next_look(T0),
        None
    );
}
