//! Security profiles and the hardening knobs (SPEC §15): what a runner asks
//! for (`securityProfile`, `user`, `readOnlyRootfs`, `tmpfsSize`, `ulimits`,
//! `capAdd`, `noNewPrivileges`), checked, and the [`Hardening`] one run gets
//! once the profile is known (the option, else `LIGHT_RUNNER_SECURITY_PROFILE`
//! as read at call time, else `baseline`).
//!
//! A value of the wrong type throws from the constructor; a value of the
//! right type that is not valid, or a conflict with the profile, rejects
//! each run's result (SPEC §13): a runner built at module load never crashes.

use serde_json::{Map, Value};

use crate::errors::InvalidInput;

/// The name of the variable that sets the default profile.
pub const PROFILE_VAR: &str = "LIGHT_RUNNER_SECURITY_PROFILE";

/// Capabilities `baseline` drops from Docker's default set (SPEC §10).
pub const BASELINE_CAP_DROP: [&str; 6] = [
    "NET_RAW",
    "MKNOD",
    "SYS_CHROOT",
    "SETPCAP",
    "SETFCAP",
    "AUDIT_WRITE",
];
pub const PIDS_LIMIT: i64 = 100;
/// `restricted`'s user and group: `nobody`/`nogroup` on Debian and Alpine.
pub const RESTRICTED_USER: &str = "65534:65534";
/// `restricted`'s `/tmp` size when `tmpfsSize` is not given.
pub const DEFAULT_TMPFS_SIZE: i64 = 64 << 20;
/// `restricted`'s ulimits: (name, soft = hard).
pub const RESTRICTED_ULIMITS: [(&str, i64); 3] =
    [("nofile", 1024), ("fsize", 1 << 30), ("core", 0)];

/// Linux capability names as Docker takes them (without `CAP_`).
pub const CAPABILITIES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// Resource limits Docker knows (`--ulimit`).
pub const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A security profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// SPEC §10 exactly: the original's defaults.
    Baseline,
    /// SPEC §15: for strangers' code.
    Restricted,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "baseline" => Some(Profile::Baseline),
            "restricted" => Some(Profile::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Restricted => "restricted",
        }
    }
}

/// `user`, checked: numeric ids, or (baseline only) a name the image knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    Ids { uid: u32, gid: Option<u32> },
    Name(String),
}

impl User {
    /// What Docker's `User` field takes.
    pub fn docker(&self) -> String {
        match self {
            User::Ids { uid, gid: Some(g) } => format!("{uid}:{g}"),
            User::Ids { uid, gid: None } => uid.to_string(),
            User::Name(n) => n.clone(),
        }
    }

    /// True when it names root (uid 0 or gid 0, or the name `root`).
    pub fn is_root(&self) -> bool {
        match self {
            User::Ids { uid, gid } => *uid == 0 || *gid == Some(0),
            User::Name(n) => n == "root" || n.split(':').any(|p| p == "root" || p == "0"),
        }
    }
}

/// One resource limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The hardening options of a runner, as given (None: not given).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecurityOptions {
    /// `securityProfile`, when given and valid.
    pub profile: Option<Profile>,
    pub user: Option<User>,
    pub read_only_rootfs: Option<bool>,
    /// Bytes.
    pub tmpfs_size: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// Normalized names (upper case, no `CAP_`), or `ALL`.
    pub cap_add: Vec<String>,
}

/// What one run gets, its profile decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardening {
    pub profile: Profile,
    /// Docker's `User`; None: the image's own.
    pub user: Option<String>,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub no_new_privileges: bool,
    pub read_only_rootfs: bool,
    /// `/tmp` as a tmpfs of this many bytes.
    pub tmpfs_size: Option<i64>,
    /// MemorySwap = Memory: no swap beyond the memory cap.
    pub no_swap: bool,
    pub ulimits: Vec<Ulimit>,
    /// Docker's init (tini) as PID 1.
    pub init: bool,
    /// No network unless the request names one.
    pub network_by_request_only: bool,
}

impl Hardening {
    /// True when the job may run as a user other than root, so the volume
    /// root must be made writable for it.
    pub fn non_root(&self) -> bool {
        self.user.is_some()
    }
}

fn describe(v: &Value) -> String {
    super::describe(v)
}

fn wrong_type(name: &str, v: &Value, expected: &str) -> InvalidInput {
    InvalidInput::new(
        name,
        format!("Invalid {name}: expected {expected}, got {}", describe(v)),
    )
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// `uid[:gid]` with numeric ids, or (baseline) a user name as Docker takes it.
pub fn parse_user(s: &str) -> Option<User> {
    let s = s.trim();
    let numeric = |p: &str| {
        (!p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if let Some(uid) = numeric(u) {
        return match g {
            None => Some(User::Ids { uid, gid: None }),
            Some(g) => numeric(g).map(|gid| User::Ids {
                uid,
                gid: Some(gid),
            }),
        };
    }
    let name_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c))
    };
    let group_ok = g.is_none_or(|g| name_ok(g) || numeric(g).is_some());
    (name_ok(u) && group_ok).then(|| User::Name(s.to_string()))
}

/// A capability name: `NET_ADMIN`, `cap_net_admin`, or `ALL`.
pub fn parse_capability(s: &str) -> Option<String> {
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("CAP_").unwrap_or(&up);
    (name == "ALL" || CAPABILITIES.contains(&name)).then(|| name.to_string())
}

fn limit_value(v: &Value) -> Option<i64> {
    v.as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n <= i64::MAX as f64)
        .map(|n| n as i64)
}

/// Reads the hardening options into `cfg`: wrong types are errors now;
/// invalid values are pushed to `invalid` (reported by each run).
pub fn parse(
    map: &Map<String, Value>,
    invalid: &mut Vec<InvalidInput>,
) -> Result<SecurityOptions, InvalidInput> {
    let mut o = SecurityOptions::default();
    if let Some(v) = field(map, "securityProfile") {
        let s = v
            .as_str()
            .ok_or_else(|| wrong_type("securityProfile", v, "'baseline' or 'restricted'"))?;
        match Profile::parse(s) {
            Some(p) => o.profile = Some(p),
            None => invalid.push(InvalidInput::new(
                "securityProfile",
                format!(
                    "Invalid securityProfile: {} (expected 'baseline' or 'restricted')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "user") {
        let s = v
            .as_str()
            .ok_or_else(|| wrong_type("user", v, "a string 'uid[:gid]'"))?;
        match parse_user(s) {
            Some(u) => o.user = Some(u),
            None => invalid.push(InvalidInput::new(
                "user",
                format!(
                    "Invalid user: {} (expected numeric 'uid[:gid]', e.g. '1000:1000')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "readOnlyRootfs") {
        o.read_only_rootfs = Some(
            v.as_bool()
                .ok_or_else(|| wrong_type("readOnlyRootfs", v, "a boolean"))?,
        );
    }
    if let Some(v) = field(map, "tmpfsSize") {
        let bytes = match v {
            Value::String(s) => super::parse_memory(s),
            Value::Number(_) => limit_value(v),
            _ => {
                return Err(wrong_type(
                    "tmpfsSize",
                    v,
                    "a size like '64m' or a number of bytes",
                ))
            }
        };
        match bytes.filter(|b| *b > 0) {
            Some(b) => o.tmpfs_size = Some(b),
            // tmpfs reads size=0 as "no limit": never that.
            None => invalid.push(InvalidInput::new(
                "tmpfsSize",
                format!(
                    "Invalid tmpfsSize: {} (expected a positive size like '64m' or a number of bytes)",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "ulimits") {
        let obj = v.as_object().ok_or_else(|| {
            wrong_type(
                "ulimits",
                v,
                "an object like { nofile: 1024, fsize: { soft, hard } }",
            )
        })?;
        for (name, val) in obj {
            let (soft, hard) = match val {
                Value::Number(_) => (limit_value(val), limit_value(val)),
                Value::Object(sh) => (
                    sh.get("soft").and_then(limit_value),
                    sh.get("hard").and_then(limit_value),
                ),
                other => {
                    return Err(InvalidInput::new(
                        "ulimits",
                        format!(
                            "Invalid ulimits.{name}: expected a number or {{ soft, hard }}, got {}",
                            describe(other)
                        ),
                    ))
                }
            };
            match (ULIMIT_NAMES.contains(&name.as_str()), soft, hard) {
                (true, Some(soft), Some(hard)) if soft <= hard => o.ulimits.push(Ulimit {
                    name: name.clone(),
                    soft,
                    hard,
                }),
                (false, ..) => invalid.push(InvalidInput::new(
                    "ulimits",
                    format!(
                        "Invalid ulimits.{name}: unknown limit (expected one of {})",
                        ULIMIT_NAMES.join(", ")
                    ),
                )),
                _ => invalid.push(InvalidInput::new(
                    "ulimits",
                    format!(
                        "Invalid ulimits.{name}: {} (expected integers >= 0, soft <= hard)",
                        describe(val)
                    ),
                )),
            }
        }
    }
    if let Some(v) = field(map, "capAdd") {
        let arr = v
            .as_array()
            .ok_or_else(|| wrong_type("capAdd", v, "an array of capability names"))?;
        for (i, item) in arr.iter().enumerate() {
            let s = item.as_str().ok_or_else(|| {
                InvalidInput::new(
                    "capAdd",
                    format!(
                        "Invalid capAdd[{i}]: expected a capability name string, got {}",
                        describe(item)
                    ),
                )
            })?;
            match parse_capability(s) {
                Some(c) if !o.cap_add.contains(&c) => o.cap_add.push(c),
                Some(_) => {}
                None => invalid.push(InvalidInput::new(
                    "capAdd",
                    format!(
                        "Invalid capAdd[{i}]: {} is not a Linux capability (e.g. 'NET_BIND_SERVICE')",
                        describe(item)
                    ),
                )),
            }
        }
    }
    Ok(o)
}

/// The profile of a run: the option, else the variable (an invalid value
/// of it is an error naming it), else baseline.
pub fn profile_of(
    option: Option<Profile>,
    env_value: Option<&str>,
) -> Result<Profile, InvalidInput> {
    if let Some(p) = option {
        return Ok(p);
    }
    match env_value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(Profile::Baseline),
        Some(v) => Profile::parse(v).ok_or_else(|| {
            InvalidInput::new(
                PROFILE_VAR,
                format!("Invalid {PROFILE_VAR}: {v:?} (expected 'baseline' or 'restricted')"),
            )
        }),
    }
}

fn conflict(field: &str, why: &str) -> InvalidInput {
    InvalidInput::new(
        field,
        format!("securityProfile 'restricted' conflicts with {field}: {why}"),
    )
}

/// What one run gets. `no_new_privileges` is the runner's option
/// (default true); `env_profile` is `LIGHT_RUNNER_SECURITY_PROFILE` as read
/// for this call.
pub fn harden(
    o: &SecurityOptions,
    no_new_privileges: bool,
    env_profile: Option<&str>,
) -> Result<Hardening, InvalidInput> {
    let profile = profile_of(o.profile, env_profile)?;
    let merged_ulimits = |defaults: &[(&str, i64)]| {
        let mut out: Vec<Ulimit> = defaults
            .iter()
            .filter(|(n, _)| !o.ulimits.iter().any(|u| u.name == *n))
            .map(|(n, v)| Ulimit {
                name: n.to_string(),
                soft: *v,
                hard: *v,
            })
            .collect();
        out.extend(o.ulimits.iter().cloned());
        out
    };
    match profile {
        Profile::Baseline => Ok(Hardening {
            profile,
            user: o.user.as_ref().map(User::docker),
            cap_drop: BASELINE_CAP_DROP.iter().map(|c| c.to_string()).collect(),
            cap_add: o.cap_add.clone(),
            no_new_privileges,
            read_only_rootfs: o.read_only_rootfs.unwrap_or(false),
            tmpfs_size: o.tmpfs_size,
            no_swap: false,
            ulimits: merged_ulimits(&[]),
            init: false,
            network_by_request_only: false,
        }),
        Profile::Restricted => {
            if !no_new_privileges {
                return Err(conflict(
                    "noNewPrivileges",
                    "it must stay true (setuid binaries would gain privileges)",
                ));
            }
            if o.user.as_ref().is_some_and(User::is_root) {
                return Err(conflict(
                    "user",
                    "uid 0 and gid 0 are refused; give a numeric non-root 'uid[:gid]'",
                ));
            }
            if matches!(o.user, Some(User::Name(_))) {
                return Err(conflict(
                    "user",
                    "a user name could resolve to root in the image; give a numeric 'uid[:gid]'",
                ));
            }
            if !o.cap_add.is_empty() {
                return Err(conflict(
                    "capAdd",
                    "it drops every capability; capAdd is for baseline only",
                ));
            }
            if o.read_only_rootfs == Some(false) {
                return Err(conflict(
                    "readOnlyRootfs",
                    "its root filesystem is read-only (write to the workdir or /tmp)",
                ));
            }
            Ok(Hardening {
                profile,
                user: Some(
                    o.user
                        .as_ref()
                        .map_or_else(|| RESTRICTED_USER.to_string(), User::docker),
                ),
                cap_drop: vec!["ALL".to_string()],
                cap_add: Vec::new(),
                no_new_privileges: true,
                read_only_rootfs: true,
                tmpfs_size: Some(o.tmpfs_size.unwrap_or(DEFAULT_TMPFS_SIZE)),
                no_swap: true,
                ulimits: merged_ulimits(&RESTRICTED_ULIMITS),
                init: true,
                network_by_request_only: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> (SecurityOptions, Vec<InvalidInput>) {
        let mut bad = Vec::new();
        let o = parse(v.as_object().unwrap(), &mut bad).unwrap();
        (o, bad)
    }

    #[test]
    fn baseline_is_the_default_and_changes_nothing() {
        let h = harden(&SecurityOptions::default(), true, None).unwrap();
        assert_eq!(h.profile, Profile::Baseline);
        assert_eq!(h.user, None);
        assert_eq!(h.cap_drop, BASELINE_CAP_DROP.map(String::from).to_vec());
        assert!(h.cap_add.is_empty() && h.ulimits.is_empty());
        assert!(h.no_new_privileges);
        assert!(!h.read_only_rootfs && !h.no_swap && !h.init && !h.network_by_request_only);
        assert_eq!(h.tmpfs_size, None);
        assert_eq!(
            harden(&SecurityOptions::default(), true, Some("")).unwrap(),
            h
        );
        assert!(
            !harden(&SecurityOptions::default(), false, None)
                .unwrap()
                .no_new_privileges
        );
    }

    #[test]
    fn restricted_enforces_everything() {
        let (o, bad) = opts(json!({ "securityProfile": "restricted" }));
        assert!(bad.is_empty());
        let h = harden(&o, true, None).unwrap();
        assert_eq!(h.user.as_deref(), Some("65534:65534"));
        assert_eq!(h.cap_drop, vec!["ALL"]);
        assert!(h.cap_add.is_empty());
        assert!(h.no_new_privileges && h.read_only_rootfs && h.no_swap && h.init);
        assert!(h.network_by_request_only);
        assert_eq!(h.tmpfs_size, Some(64 << 20));
        let lim = |n: &str| {
            h.ulimits
                .iter()
                .find(|u| u.name == n)
                .map(|u| (u.soft, u.hard))
        };
        assert_eq!(lim("nofile"), Some((1024, 1024)));
        assert_eq!(lim("fsize"), Some((1 << 30, 1 << 30)));
        assert_eq!(lim("core"), Some((0, 0)));
    }

    #[test]
    fn the_variable_sets_the_default_and_the_option_wins() {
        let none = SecurityOptions::default();
        assert_eq!(
            harden(&none, true, Some("restricted")).unwrap().profile,
            Profile::Restricted
        );
        assert_eq!(
            harden(&none, true, Some(" baseline ")).unwrap().profile,
            Profile::Baseline
        );
        let e = harden(&none, true, Some("strict")).unwrap_err();
        assert_eq!(e.field, PROFILE_VAR);
        assert!(
            e.message.contains(PROFILE_VAR) && e.message.contains("strict"),
            "{}",
            e.message
        );
        let (o, _) = opts(json!({ "securityProfile": "baseline" }));
        assert_eq!(
            harden(&o, true, Some("restricted")).unwrap().profile,
            Profile::Baseline
        );
        assert_eq!(
            harden(&o, true, Some("bogus")).unwrap().profile,
            Profile::Baseline
        );
    }

    #[test]
    fn conflicts_name_the_option() {
        let (o, _) = opts(json!({ "securityProfile": "restricted" }));
        assert_eq!(
            harden(&o, false, None).unwrap_err().field,
            "noNewPrivileges"
        );
        for (v, f) in [
            (
                json!({ "securityProfile": "restricted", "user": "0" }),
                "user",
            ),
            (
                json!({ "securityProfile": "restricted", "user": "1000:0" }),
                "user",
            ),
            (
                json!({ "securityProfile": "restricted", "user": "0:1000" }),
                "user",
            ),
            (
                json!({ "securityProfile": "restricted", "user": "node" }),
                "user",
            ),
            (
                json!({ "securityProfile": "restricted", "capAdd": ["NET_ADMIN"] }),
                "capAdd",
            ),
            (
                json!({ "securityProfile": "restricted", "readOnlyRootfs": false }),
                "readOnlyRootfs",
            ),
        ] {
            let (o, bad) = opts(v.clone());
            assert!(bad.is_empty(), "{v}");
            let e = harden(&o, true, None).unwrap_err();
            assert_eq!(e.field, f, "{v}");
            assert!(
                e.message.contains(f) && e.message.contains("restricted"),
                "{}",
                e.message
            );
        }
        // The variable's profile conflicts the same way.
        let (o, _) = opts(json!({ "user": "0" }));
        assert_eq!(
            harden(&o, true, Some("restricted")).unwrap_err().field,
            "user"
        );
        assert!(
            harden(&o, true, None).is_ok(),
            "root is fine under baseline"
        );
    }

    #[test]
    fn restricted_takes_a_numeric_user_tmpfs_size_and_ulimits() {
        let (o, bad) = opts(json!({
            "securityProfile": "restricted", "user": "1000:2000", "tmpfsSize": "16m",
            "ulimits": { "nofile": 256, "nproc": { "soft": 50, "hard": 60 } }
        }));
        assert!(bad.is_empty());
        let h = harden(&o, true, None).unwrap();
        assert_eq!(h.user.as_deref(), Some("1000:2000"));
        assert_eq!(h.tmpfs_size, Some(16 << 20));
        let lim = |n: &str| {
            h.ulimits
                .iter()
                .find(|u| u.name == n)
                .map(|u| (u.soft, u.hard))
        };
        assert_eq!(lim("nofile"), Some((256, 256)));
        assert_eq!(lim("nproc"), Some((50, 60)));
        assert_eq!(lim("core"), Some((0, 0)));
        assert_eq!(h.ulimits.len(), 4);
        let (o, _) = opts(json!({ "securityProfile": "restricted", "user": "1000" }));
        assert_eq!(
            harden(&o, true, None).unwrap().user.as_deref(),
            Some("1000")
        );
    }

    #[test]
    fn baseline_knobs() {
        let (o, bad) = opts(json!({
            "user": "node", "readOnlyRootfs": true, "tmpfsSize": 1048576,
            "capAdd": ["cap_net_admin", "SYS_PTRACE", "NET_ADMIN"], "ulimits": { "core": 0 }
        }));
        assert!(bad.is_empty());
        let h = harden(&o, true, None).unwrap();
        assert_eq!(h.user.as_deref(), Some("node"));
        assert!(h.read_only_rootfs);
        assert_eq!(h.tmpfs_size, Some(1 << 20));
        assert_eq!(h.cap_add, vec!["NET_ADMIN", "SYS_PTRACE"]);
        assert_eq!(
            h.ulimits,
            vec![Ulimit {
                name: "core".into(),
                soft: 0,
                hard: 0
            }]
        );
        assert!(!h.init && !h.network_by_request_only);
    }

    #[test]
    fn invalid_values_are_kept_wrong_types_throw() {
        for (v, f) in [
            (json!({ "securityProfile": "strict" }), "securityProfile"),
            (json!({ "user": "-1" }), "user"),
            (json!({ "user": "1000:x y" }), "user"),
            (json!({ "user": "" }), "user"),
            (json!({ "tmpfsSize": "0" }), "tmpfsSize"),
            (json!({ "tmpfsSize": "big" }), "tmpfsSize"),
            (json!({ "tmpfsSize": -5 }), "tmpfsSize"),
            (json!({ "ulimits": { "files": 10 } }), "ulimits"),
            (
                json!({ "ulimits": { "nofile": { "soft": 10, "hard": 5 } } }),
                "ulimits",
            ),
            (json!({ "ulimits": { "nofile": -1 } }), "ulimits"),
            (json!({ "capAdd": ["NET_FLY"] }), "capAdd"),
        ] {
            let (_, bad) = opts(v.clone());
            assert_eq!(bad.len(), 1, "{v}");
            assert_eq!(bad[0].field, f, "{v}");
            assert!(bad[0].message.contains(f), "{}", bad[0].message);
        }
        for (v, f) in [
            (json!({ "securityProfile": 1 }), "securityProfile"),
            (json!({ "user": 1000 }), "user"),
            (json!({ "readOnlyRootfs": "yes" }), "readOnlyRootfs"),
            (json!({ "tmpfsSize": true }), "tmpfsSize"),
            (json!({ "ulimits": [1] }), "ulimits"),
            (json!({ "ulimits": { "nofile": "1" } }), "ulimits"),
            (json!({ "capAdd": "NET_ADMIN" }), "capAdd"),
            (json!({ "capAdd": [1] }), "capAdd"),
        ] {
            let mut bad = Vec::new();
            let e = parse(v.as_object().unwrap(), &mut bad).unwrap_err();
            assert_eq!(e.field, f, "{v}");
        }
    }

    #[test]
    fn users() {
        assert_eq!(
            parse_user("65534:65534"),
            Some(User::Ids {
                uid: 65534,
                gid: Some(65534)
            })
        );
        assert_eq!(
            parse_user("1000"),
            Some(User::Ids {
                uid: 1000,
                gid: None
            })
        );
        assert!(parse_user("0").unwrap().is_root());
        assert!(parse_user("root").unwrap().is_root());
        assert!(parse_user("app:root").unwrap().is_root());
        assert!(!parse_user("app:staff").unwrap().is_root());
        for bad in [
            "",
            ":",
            "1000:",
            ":1000",
            "99999999999",
            "a b",
            "1000:1000:1",
            "-u",
        ] {
            assert_eq!(parse_user(bad), None, "{bad}");
        }
    }
}
