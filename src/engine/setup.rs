//! The start of every run, attached or detached: the record written inside
//! `run()` and the checks that need no daemon. (The setup itself, from a
//! checked request to a created, seeded container, is the backend's
//! `create_and_seed`.)

use std::path::Path;

use super::ctx::Ctx;
use crate::backend::docker::{image, seed};
use crate::config::security::harden;
use crate::config::{Hardening, RunRequest, RunnerConfig};
use crate::errors::{Error, Result};
use crate::record::{ExtractSpec, RunPhase, RunRecord, Timeout};
use crate::time::Stamp;

fn absolute(to: &str) -> String {
    let p = Path::new(to);
    if p.is_absolute() || to.is_empty() {
        return to.to_string();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p).to_string_lossy().into_owned())
        .unwrap_or_else(|_| to.to_string())
}

/// The record of a run written synchronously inside `run()`: the seed's
/// fields plus deadline, launcher, mode and build steps. No env, no input.
pub fn initial_record(ctx: &Ctx, id: &str, req: &RunRequest, cfg: &RunnerConfig) -> RunRecord {
    let started = ctx.now_ms();
    let mut r = RunRecord::new(id, &req.image, &req.workdir, Stamp::at(started));
    r.entrypoint = req.command.clone();
    r.command = req.command.clone();
    r.timeout = Some(Timeout::from_ms(req.timeout_ms.unwrap_or(0)));
    // Destinations are recorded absolute: the finalizing host may have
    // another working directory than the launcher.
    r.extract = Some(
        req.extract
            .iter()
            .map(|e| ExtractSpec {
                from: e.from.clone(),
                to: absolute(&e.to),
            })
            .collect(),
    );
    r.deadline = req
        .timeout_ms
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| started.checked_add(t))
        .map(Stamp::at);
    r.host = Some(ctx.host.identity.clone());
    r.detached = Some(req.detached);
    r.phase = Some(RunPhase::Setup);
    r.cancelled = Some(false);
    if !req.run.is_empty() {
        r.run = Some(req.run.clone());
        // Known now (the tag is a hash of image + steps), so a cached run
        // writes no extra record; a build that fails clears it.
        r.built_image = Some(image::cache_tag(&req.image, &req.run));
    }
    r.max_extract_bytes = Some(cfg.max_extract_bytes);
    r.max_log_bytes = cfg.max_log_bytes;
    r
}

/// Checks that need no daemon: a runner option the original reports per
/// run, the security profile (the option, else the variable as this call
/// read it) and its conflicts, and the seed directory. Nothing is created
/// before they pass.
pub fn precheck(ctx: &Ctx, cfg: &RunnerConfig, req: &RunRequest) -> Result<()> {
    if let Some(bad) = &cfg.invalid {
        return Err(Error::InvalidOption(bad.clone()));
    }
    hardening(ctx, cfg)?;
    if let Some(dir) = &req.dir {
        seed::check_dir(dir)?;
    }
    Ok(())
}

/// What run containers of `cfg` get under the profile in force for `ctx`.
pub fn hardening(ctx: &Ctx, cfg: &RunnerConfig) -> Result<Hardening> {
    harden(
        &cfg.security,
        cfg.no_new_privileges,
        ctx.limits.security_profile.as_deref(),
    )
    .map_err(Error::InvalidOption)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn ctx() -> Ctx {
        Ctx::new(Default::default(), &Settings::from_vars(|_| None))
    }

    #[test]
    fn initial_record_has_the_seed_fields_and_no_secrets() {
        let mut req = RunRequest::new("busybox");
        req.command = Some("echo hi".into());
        req.env = vec![("SECRET".into(), "hunter2".into())];
        req.input = Some("\"hunter3\"".into());
        req.extract = vec![ExtractSpec {
            from: "/app/out".into(),
            to: "out".into(),
        }];
        req.timeout_ms = Some(1000);
        req.run = vec!["echo build".into()];
        let r = initial_record(
            &ctx(),
            "light-runner-0123456789ab",
            &req,
            &RunnerConfig::default(),
        );
        let v = serde_json::to_value(&r).unwrap();
        for f in [
            "id",
            "container",
            "volume",
            "image",
            "workdir",
            "entrypoint",
            "timeout",
            "extract",
            "startedAt",
            "status",
            "command",
            "deadline",
            "host",
            "detached",
            "run",
            "maxExtractBytes",
            "phase",
        ] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
        assert!(!v.to_string().contains("hunter2"));
        assert!(!v.to_string().contains("hunter3"));
        assert!(Path::new(&r.extract.as_ref().unwrap()[0].to).is_absolute());
        assert_eq!(r.deadline_ms().unwrap() - r.started_ms().unwrap(), 1000);
        assert_eq!(v["detached"], false);
        assert_eq!(v["phase"], "setup");
        assert!(r.extra.is_empty());
    }

    #[test]
    fn no_deadline_without_timeout() {
        let mut req = RunRequest::new("busybox");
        req.timeout_ms = None;
        let r = initial_record(&ctx(), "x", &req, &RunnerConfig::default());
        assert_eq!(r.deadline, None);
        assert_eq!(r.timeout_ms(), None);
        req.timeout_ms = Some(u64::MAX);
        assert_eq!(
            initial_record(&ctx(), "x", &req, &RunnerConfig::default()).deadline,
            None
        );
    }
}
