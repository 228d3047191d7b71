//! Validation of what the caller asks for: runner options and run requests
//! arrive as JSON-like maps and leave as typed, checked values. Every error
//! names the field and the value.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::errors::InvalidInput;
use crate::record::ExtractSpec;

pub mod env;
pub mod limits;
pub mod security;

pub use env::Settings;
pub use limits::Limits;
pub use security::{Hardening, Profile, SecurityOptions};

pub const DEFAULT_MEMORY: &str = "512m";
pub const DEFAULT_CPUS: &str = "1";
pub const DEFAULT_TIMEOUT_MS: u64 = 20 * 60 * 1000;
pub const DEFAULT_WORKDIR: &str = "/app";
pub const DEFAULT_MAX_EXTRACT_BYTES: u64 = 1 << 30;

/// GPU access, mapped to an nvidia DeviceRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpus {
    /// `all`: every GPU.
    All,
    /// Device ids (`0`, `'0,1'`, `'device=0,1'`, `'"device=0"'`).
    Devices(Vec<String>),
}

/// Per-runner settings, applied to every run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// Bytes; 0 = no limit.
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    /// The OCI runtime to ask for (`HostConfig.Runtime`); None: the
    /// daemon's default (`runc`, or `''`, or not given). Checked per run
    /// against the runtimes the daemon registered.
    pub runtime: Option<String>,
    pub gpus: Option<Gpus>,
    pub no_new_privileges: bool,
    pub max_extract_bytes: u64,
    /// `maxLogBytes`: output past this many bytes is neither delivered nor
    /// kept. `None`: no cap.
    pub max_log_bytes: Option<u64>,
    /// `warm`: ready containers kept per run shape (0: none).
    pub warm: usize,
    /// `securityProfile` and the hardening knobs, as given.
    pub security: SecurityOptions,
    /// A `memory`, `cpus` or `gpus` value of the right type but not valid:
    /// the original accepts it at construction and rejects each run's
    /// result, before any Docker resource exists. So does this package.
    pub invalid: Option<InvalidInput>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            memory_bytes: parse_memory(DEFAULT_MEMORY).expect("default memory"),
            nano_cpus: parse_cpus(DEFAULT_CPUS).expect("default cpus"),
            runtime: None,
            gpus: None,
            no_new_privileges: true,
            max_extract_bytes: DEFAULT_MAX_EXTRACT_BYTES,
            max_log_bytes: None,
            warm: 0,
            security: SecurityOptions::default(),
            invalid: None,
        }
    }
}

/// The special network name for "no network at all".
pub const NO_NETWORK: &str = "none";

/// One run, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub image: String,
    /// Build steps run on top of `image` (a cached image is built first).
    pub run: Vec<String>,
    /// Shell command run as `sh -c <command>`; `None` = the image's own entrypoint.
    pub command: Option<String>,
    pub dir: Option<PathBuf>,
    /// `JSON.stringify(input)`, written to stdin then EOF.
    pub input: Option<String>,
    /// `None` = no timeout.
    pub timeout_ms: Option<u64>,
    /// Empty: the isolated bridge; `["none"]`: no network; else the first is
    /// the primary network and the others are connected before start.
    pub networks: Vec<String>,
    /// Only names that are valid shell identifiers survive.
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub extract: Vec<ExtractSpec>,
    pub detached: bool,
    pub ignore: Vec<String>,
}

impl RunRequest {
    /// A request for `image` with every other field at its default.
    pub fn new(image: &str) -> Self {
        RunRequest {
            image: image.to_string(),
            run: Vec::new(),
            command: None,
            dir: None,
            input: None,
            timeout_ms: Some(DEFAULT_TIMEOUT_MS),
            networks: Vec::new(),
            env: Vec::new(),
            workdir: DEFAULT_WORKDIR.to_string(),
            extract: Vec::new(),
            detached: false,
            ignore: Vec::new(),
        }
    }
}

/// What each field of the API takes, for messages about a value of the
/// wrong kind.
pub fn expected(field: &str) -> &'static str {
    match field {
        "memory" => "a size like '512m' (digits with an optional k/m/g suffix)",
        "cpus" => "a positive decimal like '1.5'",
        "runtime" => "a runtime name like 'runc', 'runsc' or 'kata'",
        "securityProfile" => "'baseline' or 'restricted'",
        "user" => "a string 'uid[:gid]'",
        "readOnlyRootfs" => "a boolean",
        "tmpfsSize" => "a size like '64m' or a number of bytes",
        "ulimits" => "an object like { nofile: 1024, fsize: { soft, hard } }",
        "capAdd" => "an array of capability names",
        "gpus" => "'all', device ids like '0,1', or a device number",
        "noNewPrivileges" | "detached" | "follow" | "iccEnabled" | "exclusive" => "a boolean",
        "maxExtractBytes" | "maxLogBytes" => "a positive integer number of bytes",
        "warm" | "count" => "a whole number of containers",
        "image" => "a non-empty image reference string",
        "command" | "entrypoint" => "a shell command string",
        "dir" => "a host directory path string",
        "timeout" | "grace" | "maxAgeMs" => "a number of milliseconds",
        "network" => "a network name string",
        "networks" => "an array of network names",
        "env" => "an object of environment variables",
        "workdir" => "an absolute path string",
        "extract" => "an array of { from, to }",
        "ignore" => "an array of names",
        "run" => "an array of build step strings",
        "signal" => "a signal name like 'SIGTERM'",
        "since" => "a time (Date, ISO string or epoch ms)",
        "labels" => "an object of string labels",
        "ipam" => "an object { subnet?, gateway?, ipRange? }",
        "driver" => "'bridge'",
        "prefix" => "a name prefix string",
        _ => "a JSON value",
    }
}

/// A value as shown in a message: JSON, cut short.
fn describe(v: &Value) -> String {
    let text = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.len() <= 80 {
        return text;
    }
    let mut cut = 77;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// Longest argument or environment string Linux will exec (MAX_ARG_STRLEN):
/// a longer command, env entry or build step could never run.
pub const MAX_ARG_BYTES: usize = 128 * 1024;
/// Longest path or name taken (PATH_MAX): Docker and the kernel refuse more.
pub const MAX_PATH_BYTES: usize = 4096;

fn max_len(field: &str) -> usize {
    match field {
        "command" | "entrypoint" | "run" | "env" => MAX_ARG_BYTES,
        _ => MAX_PATH_BYTES,
    }
}

/// Refuses a string longer than its field can ever use.
fn check_len(field: &str, s: &str) -> Result<(), InvalidInput> {
    let max = max_len(field);
    if s.len() > max {
        return Err(InvalidInput::new(
            field,
            format!(
                "Invalid {field}: {} bytes is longer than the {max} bytes it can hold",
                s.len()
            ),
        ));
    }
    Ok(())
}

fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, InvalidInput> {
    match field(map, name) {
        None => Ok(None),
        Some(Value::String(s)) => check_len(name, s).map(|()| Some(s.clone())),
        Some(v) => Err(InvalidInput::new(
            name,
            format!("Invalid {name}: expected a string, got {}", describe(v)),
        )),
    }
}

fn bool_field(map: &Map<String, Value>, name: &str) -> Result<Option<bool>, InvalidInput> {
    match field(map, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(InvalidInput::new(
            name,
            format!("Invalid {name}: expected a boolean, got {}", describe(v)),
        )),
    }
}

/// Digits with an optional k/m/g suffix (case-insensitive), in bytes.
/// `0` means no limit, as Docker reads a zero Memory.
pub fn parse_memory(s: &str) -> Option<i64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    n.checked_mul(mult)
}

/// The number `parseFloat` reads at the start of `s`, as JS does it:
/// leading whitespace skipped, then the longest prefix that is a decimal
/// literal (sign, digits, fraction, exponent) or `Infinity`; the rest is
/// ignored (`'1.5 cores'` is 1.5). None when no number starts `s`.
pub fn parse_float_prefix(s: &str) -> Option<f64> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if t[i..].starts_with("Infinity") {
        return t[..i + "Infinity".len()]
            .replace("Infinity", "inf")
            .parse()
            .ok();
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(i);
    i += int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        if int + frac > 0 {
            i += 1 + frac;
        }
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp > 0 {
            i += 1 + sign + exp;
        }
    }
    t[..i].parse().ok()
}

/// A positive number of CPUs (`'1'`, `'.5'`, `'2.25'`), in NanoCpus. Read
/// as the original reads it (`parseFloat`), so every value it accepted
/// keeps its meaning; Docker refuses more CPUs than the host has.
pub fn parse_cpus(s: &str) -> Option<i64> {
    let v = parse_float_prefix(s)?;
    let nano = (v * 1e9).round();
    (v.is_finite() && v > 0.0 && nano >= 1.0 && nano < i64::MAX as f64).then_some(nano as i64)
}

/// A `gpus` value that is not in the original's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidGpus;

/// The original's GPU syntax: `''` = none, `all`, otherwise device ids
/// (`0`, `'1'`, `'0,1'`, `'device=0,1'`, `'"device=0"'`). `Ok(None)`: no GPU.
/// Anything with characters outside `[A-Za-z0-9,=.:"\-_ ]` or starting
/// with `-` is refused (it could smuggle options).
pub fn parse_gpus(s: &str) -> Result<Option<Gpus>, InvalidGpus> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",=.:\"-_ ".contains(c);
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.starts_with('-') || !s.chars().all(allowed) {
        return Err(InvalidGpus);
    }
    let unquoted = t.trim_matches('"').trim();
    if unquoted.eq_ignore_ascii_case("all") {
        return Ok(Some(Gpus::All));
    }
    let list = unquoted.strip_prefix("device=").unwrap_or(unquoted);
    let ids: Vec<String> = list
        .split(',')
        .map(|d| d.trim().trim_matches('"').to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if ids.is_empty() || ids.iter().any(|d| d.contains('=') || d.contains('"')) {
        return Err(InvalidGpus);
    }
    Ok(Some(Gpus::Devices(ids)))
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
pub fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `createNetwork(name, options)`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateNetworkOptions {
    pub icc_enabled: bool,
    pub exclusive: bool,
    pub labels: Vec<(String, String)>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
}

/// A network name as Docker accepts it.
pub fn parse_network_name(name: &str) -> Result<String, InvalidInput> {
    let ok = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(InvalidInput::new(
            "name",
            format!(
                "Invalid name: {} (expected a network name: letters, digits, '_', '.', '-')",
                describe(&Value::String(name.to_string()))
            ),
        ))
    }
}

/// Checks `CreateNetworkOptions`.
pub fn parse_network_options(
    map: &Map<String, Value>,
) -> Result<CreateNetworkOptions, InvalidInput> {
    let mut o = CreateNetworkOptions::default();
    if let Some(v) = field(map, "driver") {
        if v.as_str() != Some("bridge") {
            return Err(wrong_type("driver", v, expected("driver")));
        }
    }
    o.icc_enabled = bool_field(map, "iccEnabled")?.unwrap_or(false);
    o.exclusive = bool_field(map, "exclusive")?.unwrap_or(false);
    if let Some(v) = field(map, "labels") {
        let obj = v
            .as_object()
            .ok_or_else(|| wrong_type("labels", v, expected("labels")))?;
        for (k, val) in obj {
            let val = match val {
                Value::String(s) => s.clone(),
                other => {
                    return Err(InvalidInput::new(
                        "labels",
                        format!(
                            "Invalid labels.{k}: expected a string, got {}",
                            describe(other)
                        ),
                    ))
                }
            };
            o.labels.push((k.clone(), val));
        }
    }
    if let Some(v) = field(map, "ipam") {
        let obj = v
            .as_object()
            .ok_or_else(|| wrong_type("ipam", v, expected("ipam")))?;
        let get = |k: &str| -> Result<Option<String>, InvalidInput> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(InvalidInput::new(
                    "ipam",
                    format!(
                        "Invalid ipam.{k}: expected a string, got {}",
                        describe(other)
                    ),
                )),
            }
        };
        o.subnet = get("subnet")?;
        o.gateway = get("gateway")?;
        o.ip_range = get("ipRange")?;
    }
    Ok(o)
}

/// `cleanupOrphanNetworks` options: (prefix, maxAgeMs).
pub fn parse_network_cleanup(map: &Map<String, Value>) -> Result<(String, u64), InvalidInput> {
    let prefix = string_field(map, "prefix")?.unwrap_or_else(|| "light-runner-".to_string());
    if prefix.is_empty() {
        return Err(InvalidInput::new(
            "prefix",
            "Invalid prefix: an empty prefix would match every network",
        ));
    }
    let max_age = match field(map, "maxAgeMs") {
        None => 0,
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n.min(u64::MAX as f64) as u64)
            .ok_or_else(|| wrong_type("maxAgeMs", v, "a number of milliseconds >= 0"))?,
    };
    Ok((prefix, max_age))
}

/// `Execution.stop()` options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub signal: String,
    pub grace: std::time::Duration,
}

/// Checks `StopOptions`: `signal` (default SIGTERM), `grace` ms (default 10 s).
pub fn parse_stop(map: &Map<String, Value>) -> Result<StopRequest, InvalidInput> {
    let signal = match field(map, "signal") {
        None => "SIGTERM".to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 32 => s.clone(),
        Some(v) => {
            return Err(InvalidInput::new(
                "signal",
                format!(
                    "Invalid signal: expected a signal name like 'SIGTERM', got {}",
                    describe(v)
                ),
            ))
        }
    };
    let grace = match field(map, "grace") {
        None => 10_000.0,
        Some(v) => v
            .as_f64()
            .filter(|g| g.is_finite() && *g >= 0.0)
            .ok_or_else(|| {
                InvalidInput::new(
                    "grace",
                    format!(
                        "Invalid grace: expected milliseconds >= 0, got {}",
                        describe(v)
                    ),
                )
            })?,
    };
    Ok(StopRequest {
        signal,
        grace: std::time::Duration::from_millis(grace.min(u64::MAX as f64) as u64),
    })
}

/// The text of a string-or-number option (`String(value)` of a number).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

fn wrong_type(name: &str, v: &Value, expected: &str) -> InvalidInput {
    InvalidInput::new(
        name,
        format!("Invalid {name}: expected {expected}, got {}", describe(v)),
    )
}

/// Checks `RunnerOptions`. A value of the wrong type is an error now; a
/// memory, cpus or gpus string that does not parse is kept in
/// [`RunnerConfig::invalid`] and reported by each run, as the original does.
pub fn parse_options(map: &Map<String, Value>) -> Result<RunnerConfig, InvalidInput> {
    let mut cfg = RunnerConfig::default();
    let mut invalid = Vec::new();
    if let Some(v) = field(map, "memory") {
        let text = text_of(v).ok_or_else(|| wrong_type("memory", v, expected("memory")))?;
        match parse_memory(&text) {
            Some(b) => cfg.memory_bytes = b,
            None => invalid.push(InvalidInput::new(
                "memory",
                format!(
                    "Invalid memory: {} (expected digits with an optional k/m/g suffix, e.g. '512m')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "cpus") {
        let text = text_of(v).ok_or_else(|| wrong_type("cpus", v, expected("cpus")))?;
        match parse_cpus(&text) {
            Some(n) => cfg.nano_cpus = n,
            None => invalid.push(InvalidInput::new(
                "cpus",
                format!(
                    "Invalid cpus: {} (expected a positive decimal, e.g. '1.5')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "runtime") {
        let name = v
            .as_str()
            .ok_or_else(|| wrong_type("runtime", v, expected("runtime")))?;
        match parse_runtime(name) {
            Ok(r) => cfg.runtime = r,
            Err(InvalidRuntime) => invalid.push(InvalidInput::new(
                "runtime",
                format!(
                    "Invalid runtime: {} (expected a runtime name the daemon registered, like 'runc', 'runsc' or 'kata')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(v) = field(map, "gpus") {
        let text = text_of(v).ok_or_else(|| wrong_type("gpus", v, expected("gpus")))?;
        match parse_gpus(&text) {
            Ok(g) => cfg.gpus = g,
            Err(InvalidGpus) => invalid.push(InvalidInput::new(
                "gpus",
                format!(
                    "Invalid gpus: {} (expected 'all', device ids like '0,1' or 'device=0,1')",
                    describe(v)
                ),
            )),
        }
    }
    if let Some(b) = bool_field(map, "noNewPrivileges")? {
        cfg.no_new_privileges = b;
    }
    if let Some(v) = field(map, "maxExtractBytes") {
        cfg.max_extract_bytes = v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 1.0 && n.fract() == 0.0)
            .map(|n| n as u64)
            .ok_or_else(|| {
                InvalidInput::new(
                    "maxExtractBytes",
                    format!(
                        "Invalid maxExtractBytes: {} (expected a positive integer)",
                        describe(v)
                    ),
                )
            })?;
    }
    if let Some(v) = field(map, "maxLogBytes") {
        cfg.max_log_bytes = Some(
            v.as_f64()
                .filter(|n| n.is_finite() && *n >= 1.0 && n.fract() == 0.0)
                .map(|n| n as u64)
                .ok_or_else(|| {
                    InvalidInput::new(
                        "maxLogBytes",
                        format!(
                            "Invalid maxLogBytes: {} (expected a positive integer)",
                            describe(v)
                        ),
                    )
                })?,
        );
    }
    if let Some(v) = field(map, "warm") {
        cfg.warm = v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n <= 1000.0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                InvalidInput::new(
                    "warm",
                    format!(
                        "Invalid warm: {} (expected a whole number of containers, 0 to 1000)",
                        describe(v)
                    ),
                )
            })?;
    }
    cfg.security = security::parse(map, &mut invalid)?;
    cfg.invalid = invalid.into_iter().next();
    Ok(cfg)
}

/// A `runtime` string that cannot be a runtime name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRuntime;

/// A runtime name: `runc` and `''` are the daemon's default (nothing is
/// passed); anything else must look like a name Docker registers.
pub fn parse_runtime(name: &str) -> Result<Option<String>, InvalidRuntime> {
    let name = name.trim();
    if name.is_empty() || name == "runc" {
        return Ok(None);
    }
    let ok = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(Some(name.to_string()))
    } else {
        Err(InvalidRuntime)
    }
}

/// What a reader of a run's output asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only lines written at or after this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// Keep reading until the run ends.
    pub follow: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            since_ms: None,
            follow: true,
        }
    }
}

/// `attach(id, { since, follow })` and `execution.logs({ since, follow })`,
/// checked. `since` arrives as epoch ms (the JS layer reads a `Date`) or an
/// ISO time string.
pub fn parse_log_options(map: &Map<String, Value>) -> Result<ReadOptions, InvalidInput> {
    let mut o = ReadOptions::default();
    if let Some(v) = field(map, "since") {
        let ms = match v {
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64),
            Value::String(s) => crate::time::parse_iso(s.trim()),
            _ => None,
        };
        o.since_ms = Some(ms.ok_or_else(|| wrong_type("since", v, expected("since")))?);
    }
    if let Some(f) = bool_field(map, "follow")? {
        o.follow = f;
    }
    Ok(o)
}

fn string_list(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, InvalidInput> {
    let Some(v) = field(map, name) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| wrong_type(name, v, expected(name)))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_str() {
            Some(s) if !s.trim().is_empty() => check_len(name, s).map(|()| s.to_string()),
            _ => Err(InvalidInput::new(
                name,
                format!(
                    "Invalid {name}[{i}]: expected a non-empty string, got {}",
                    describe(item)
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `networks` and its alias `network`, checked together.
fn parse_networks(map: &Map<String, Value>) -> Result<Vec<String>, InvalidInput> {
    let single = string_field(map, "network")?.filter(|n| !n.is_empty());
    let list = string_list(map, "networks")?;
    let networks = match (single, list) {
        (Some(one), Some(list)) if list != [one.clone()] => {
            return Err(InvalidInput::new(
                "networks",
                format!(
                    "network ({one:?}) and networks ({list:?}) are both given and differ: pass one of them"
                ),
            ))
        }
        (_, Some(list)) => list,
        (Some(one), None) => vec![one],
        (None, None) => Vec::new(),
    };
    if networks.len() > 1 && networks.iter().any(|n| n == NO_NETWORK) {
        return Err(InvalidInput::new(
            "networks",
            format!(
                "Invalid networks: {networks:?}: 'none' cannot be combined with other networks"
            ),
        ));
    }
    Ok(networks)
}

/// Checks a `RunRequest`. `input_json` is `JSON.stringify(request.input)`,
/// computed by the caller because only JS knows JS's serialization exactly.
pub fn parse_request(
    map: &Map<String, Value>,
    input_json: Option<String>,
) -> Result<RunRequest, InvalidInput> {
    let image = match field(map, "image") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            check_len("image", s)?;
            s.clone()
        }
        Some(v) => {
            return Err(InvalidInput::new(
                "image",
                format!(
                    "Invalid image: expected a non-empty string, got {}",
                    describe(v)
                ),
            ))
        }
        None => {
            return Err(InvalidInput::new(
                "image",
                "Missing image: request.image is required",
            ))
        }
    };
    let mut req = RunRequest::new(&image);
    req.run = string_list(map, "run")?.unwrap_or_default();
    req.networks = parse_networks(map)?;

    let command = string_field(map, "command")?.filter(|s| !s.is_empty());
    let entrypoint = string_field(map, "entrypoint")?.filter(|s| !s.is_empty());
    req.command = match (command, entrypoint) {
        (Some(c), Some(e)) if c != e => {
            return Err(InvalidInput::new(
                "entrypoint",
                format!("command ({c:?}) and entrypoint ({e:?}) are both given and differ: pass one of them"),
            ))
        }
        (c, e) => c.or(e),
    };

    if let Some(dir) = string_field(map, "dir")? {
        if dir.is_empty() {
            return Err(InvalidInput::new("dir", "Invalid dir: empty string"));
        }
        req.dir = Some(PathBuf::from(dir));
    }

    if let Some(v) = field(map, "timeout") {
        // NaN and ±Infinity arrive as the strings JS prints for them
        // (JSON cannot carry them). The original never armed a timer for
        // NaN (`NaN > 0` is false): `Number(undefined)` means no timeout.
        // Infinity means none too (the original's timer overflowed to 1 ms).
        let non_finite = matches!(v.as_str(), Some("NaN" | "Infinity" | "-Infinity"));
        let ms = v.as_f64().or(non_finite.then_some(0.0)).ok_or_else(|| {
            InvalidInput::new(
                "timeout",
                format!(
                    "Invalid timeout: {} (expected milliseconds; 0 or less = none)",
                    describe(v)
                ),
            )
        })?;
        // As the original: 0 or a negative timeout means none.
        req.timeout_ms = (ms >= 1.0).then(|| ms.min(u64::MAX as f64) as u64);
    }

    if let Some(v) = field(map, "env") {
        let obj = v.as_object().ok_or_else(|| {
            InvalidInput::new(
                "env",
                format!(
                    "Invalid env: expected an object of strings, got {}",
                    describe(v)
                ),
            )
        })?;
        for (k, val) in obj {
            let val = match val {
                Value::String(s) => s.clone(),
                other => {
                    return Err(InvalidInput::new(
                        "env",
                        format!(
                            "Invalid env.{k}: expected a string, got {}",
                            describe(other)
                        ),
                    ))
                }
            };
            if is_valid_env_name(k) {
                check_len("env", &format!("{k}={val}"))?;
                req.env.push((k.clone(), val));
            }
        }
    }

    if let Some(w) = string_field(map, "workdir")? {
        if !w.starts_with('/') || w == "/" || w.split('/').any(|seg| seg == "..") {
            return Err(InvalidInput::new(
                "workdir",
                format!("Invalid workdir: {w:?} (expected an absolute path other than '/', without '..')"),
            ));
        }
        req.workdir = w;
    }

    if let Some(v) = field(map, "extract") {
        let arr = v.as_array().ok_or_else(|| {
            InvalidInput::new(
                "extract",
                format!(
                    "Invalid extract: expected an array of {{ from, to }}, got {}",
                    describe(v)
                ),
            )
        })?;
        for (i, item) in arr.iter().enumerate() {
            let from = item.get("from").and_then(Value::as_str);
            let to = item.get("to").and_then(Value::as_str);
            match (from, to) {
                (Some(from), Some(to)) => {
                    check_len("extract", from)?;
                    check_len("extract", to)?;
                    req.extract.push(ExtractSpec {
                        from: from.to_string(),
                        to: to.to_string(),
                    })
                }
                _ => {
                    return Err(InvalidInput::new(
                        "extract",
                        format!(
                            "Invalid extract[{i}]: expected {{ from: string, to: string }}, got {}",
                            describe(item)
                        ),
                    ))
                }
            }
        }
    }

    if let Some(v) = field(map, "ignore") {
        let arr = v.as_array().ok_or_else(|| {
            InvalidInput::new(
                "ignore",
                format!(
                    "Invalid ignore: expected an array of names, got {}",
                    describe(v)
                ),
            )
        })?;
        for item in arr {
            match item.as_str() {
                Some(s) if !s.is_empty() => {
                    check_len("ignore", s)?;
                    req.ignore.push(s.to_string())
                }
                _ => {
                    return Err(InvalidInput::new(
                        "ignore",
                        format!(
                            "Invalid ignore entry: {} (expected a non-empty string)",
                            describe(item)
                        ),
                    ))
                }
            }
        }
    }

    req.detached = bool_field(map, "detached")?.unwrap_or(false);
    if req.detached && input_json.is_some() {
        return Err(InvalidInput::new(
            "input",
            "input is not supported with detached: true (stdin cannot outlive the host); put the input in a file in dir",
        ));
    }
    req.input = input_json;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn memory_accepts_suffixes_case_insensitively() {
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1G"), Some(1 << 30));
        assert_eq!(parse_memory("64k"), Some(64 << 10));
        assert_eq!(parse_memory("1048576"), Some(1 << 20));
        // As the original: 0 is no limit.
        assert_eq!(parse_memory("0"), Some(0));
        for bad in ["", "m", "12x", "1.5g", "-1m", "1mb"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn cpus_is_a_positive_decimal() {
        assert_eq!(parse_cpus("1"), Some(1_000_000_000));
        assert_eq!(parse_cpus("0.5"), Some(500_000_000));
        assert_eq!(parse_cpus(".5"), Some(500_000_000));
        assert_eq!(parse_cpus("2."), Some(2_000_000_000));
        assert_eq!(parse_cpus("2.25"), Some(2_250_000_000));
        assert_eq!(parse_cpus(" 1.5"), Some(1_500_000_000));
        for bad in ["", "0", "-1", "abc", ".", "Infinity", "-.5", "0.0000000001"] {
            assert_eq!(parse_cpus(bad), None, "{bad}");
        }
    }

    #[test]
    fn cpus_read_as_parse_float_reads_them() {
        // What the original (parseFloat) accepted keeps its meaning.
        assert_eq!(parse_cpus("1.5 cores"), Some(1_500_000_000));
        assert_eq!(parse_cpus("1.2.3"), Some(1_200_000_000));
        assert_eq!(parse_cpus("1e-1"), Some(100_000_000));
        assert_eq!(parse_cpus("2e0x"), Some(2_000_000_000));
        assert_eq!(parse_cpus("1e3"), Some(1_000_000_000_000));
        assert_eq!(parse_cpus("+.25"), Some(250_000_000));
        assert_eq!(parse_float_prefix("1e"), Some(1.0));
        assert_eq!(parse_float_prefix("1e+"), Some(1.0));
        assert_eq!(parse_float_prefix("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float_prefix(".e1"), None);
        assert_eq!(parse_float_prefix("e1"), None);
        assert_eq!(parse_float_prefix("\t\n 7"), Some(7.0));
    }

    #[test]
    fn gpus_as_the_original_reads_them() {
        let dev = |ids: &[&str]| {
            Ok(Some(Gpus::Devices(
                ids.iter().map(|s| s.to_string()).collect(),
            )))
        };
        assert_eq!(parse_gpus(""), Ok(None));
        assert_eq!(parse_gpus("all"), Ok(Some(Gpus::All)));
        assert_eq!(parse_gpus("0"), dev(&["0"]));
        // A number is a device id, not a count.
        assert_eq!(parse_gpus("1"), dev(&["1"]));
        assert_eq!(parse_gpus("0,1"), dev(&["0", "1"]));
        assert_eq!(parse_gpus("device=0,1"), dev(&["0", "1"]));
        assert_eq!(parse_gpus("\"device=0\""), dev(&["0"]));
        for bad in ["-1", "--privileged", "all;rm", "$(x)", "0'1", "device="] {
            assert_eq!(parse_gpus(bad), Err(InvalidGpus), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert!(is_valid_env_name("FOO_1"));
        assert!(is_valid_env_name("_x"));
        assert!(!is_valid_env_name("1X"));
        assert!(!is_valid_env_name("A-B"));
        assert!(!is_valid_env_name(""));
        assert!(!is_valid_env_name("A B"));
    }

    #[test]
    fn wrong_option_types_throw_naming_the_field() {
        for (v, f) in [
            (json!({ "memory": true }), "memory"),
            (json!({ "cpus": [1] }), "cpus"),
            (json!({ "gpus": {} }), "gpus"),
            (json!({ "runtime": 5 }), "runtime"),
            (json!({ "noNewPrivileges": "yes" }), "noNewPrivileges"),
            (json!({ "maxExtractBytes": 0 }), "maxExtractBytes"),
            (json!({ "maxLogBytes": 0 }), "maxLogBytes"),
            (json!({ "maxLogBytes": "1m" }), "maxLogBytes"),
        ] {
            let e = parse_options(&map(v.clone())).unwrap_err();
            assert_eq!(e.field, f, "{v}");
            assert!(e.message.contains(f), "{v}: {}", e.message);
        }
    }

    #[test]
    fn runtime_takes_any_registered_name() {
        let rt = |v: Value| parse_options(&map(json!({ "runtime": v }))).unwrap();
        assert_eq!(rt(json!("runc")).runtime, None, "runc: the daemon default");
        assert_eq!(rt(json!("")).runtime, None);
        assert_eq!(rt(json!("runsc")).runtime.as_deref(), Some("runsc"));
        assert_eq!(rt(json!("kata")).runtime.as_deref(), Some("kata"));
        assert_eq!(
            rt(json!("io.containerd.runsc.v1")).runtime.as_deref(),
            Some("io.containerd.runsc.v1")
        );
        // A string that is no runtime name rejects each run, naming it.
        let bad = rt(json!("--privileged")).invalid.unwrap();
        assert_eq!(bad.field, "runtime");
        assert!(bad.message.contains("--privileged"));
        assert!(rt(json!("a b")).invalid.is_some());
    }

    #[test]
    fn log_options() {
        let o = parse_log_options(&map(json!({}))).unwrap();
        assert_eq!((o.since_ms, o.follow), (None, true));
        let o = parse_log_options(&map(json!({ "since": 1500, "follow": false }))).unwrap();
        assert_eq!((o.since_ms, o.follow), (Some(1500), false));
        let o = parse_log_options(&map(json!({ "since": "2026-04-27T10:15:00.000Z" }))).unwrap();
        assert_eq!(
            o.since_ms,
            crate::time::parse_iso("2026-04-27T10:15:00.000Z")
        );
        for bad in [json!({ "since": "yesterday" }), json!({ "since": true })] {
            let e = parse_log_options(&map(bad)).unwrap_err();
            assert_eq!(e.field, "since");
        }
        assert_eq!(
            parse_log_options(&map(json!({ "follow": 1 })))
                .unwrap_err()
                .field,
            "follow"
        );
        let cfg = parse_options(&map(json!({ "maxLogBytes": 4096 }))).unwrap();
        assert_eq!(cfg.max_log_bytes, Some(4096));
    }

    #[test]
    fn invalid_option_values_are_kept_for_each_run() {
        for (v, f, shown) in [
            (json!({ "memory": "12x" }), "memory", "12x"),
            (json!({ "cpus": "zero" }), "cpus", "zero"),
            (json!({ "gpus": "-x" }), "gpus", "-x"),
        ] {
            let cfg = parse_options(&map(v.clone())).unwrap();
            let bad = cfg.invalid.expect("kept");
            assert_eq!(bad.field, f);
            assert!(
                bad.message.contains(f) && bad.message.contains(shown),
                "{}",
                bad.message
            );
        }
    }

    #[test]
    fn values_the_original_accepts() {
        let cfg = parse_options(&map(json!({
            "cpus": ".5", "memory": "0", "gpus": 0, "noNewPrivileges": false
        })))
        .unwrap();
        assert_eq!(cfg.invalid, None);
        assert_eq!(cfg.nano_cpus, 500_000_000);
        assert_eq!(cfg.memory_bytes, 0);
        assert_eq!(cfg.gpus, Some(Gpus::Devices(vec!["0".into()])));
        assert!(!cfg.no_new_privileges);
        let cfg = parse_options(&map(json!({ "gpus": "", "cpus": 2 }))).unwrap();
        assert_eq!(cfg.gpus, None);
        assert_eq!(cfg.nano_cpus, 2_000_000_000);
        let r = parse_request(&map(json!({ "image": "x", "timeout": -1 })), None).unwrap();
        assert_eq!(r.timeout_ms, None);
        let r = parse_request(&map(json!({ "image": "x", "timeout": 1500.7 })), None).unwrap();
        assert_eq!(r.timeout_ms, Some(1500));
        for none in ["NaN", "Infinity", "-Infinity"] {
            let r = parse_request(&map(json!({ "image": "x", "timeout": none })), None).unwrap();
            assert_eq!(r.timeout_ms, None, "{none}");
        }
    }

    #[test]
    fn request_defaults() {
        let r = parse_request(&map(json!({ "image": "busybox" })), None).unwrap();
        assert_eq!(r.workdir, "/app");
        assert_eq!(r.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
        assert!(r.networks.is_empty());
        assert!(r.run.is_empty());
        assert_eq!(r.command, None);
    }

    #[test]
    fn request_errors_name_the_field() {
        let cases = [
            (json!({}), "image"),
            (json!({ "image": 42 }), "image"),
            (json!({ "image": "" }), "image"),
            (json!({ "image": "x", "timeout": "5" }), "timeout"),
            (json!({ "image": "x", "env": [1] }), "env"),
            (json!({ "image": "x", "workdir": "rel" }), "workdir"),
            (json!({ "image": "x", "extract": {} }), "extract"),
            (
                json!({ "image": "x", "extract": [{ "from": "/a" }] }),
                "extract",
            ),
            (json!({ "image": "x", "command": 1 }), "command"),
            (
                json!({ "image": "x", "command": "a", "entrypoint": "b" }),
                "entrypoint",
            ),
            (json!({ "image": "x", "detached": "yes" }), "detached"),
            (json!({ "image": "x", "ignore": "a" }), "ignore"),
            (json!({ "image": "x", "network": 5 }), "network"),
            (json!({ "image": "x", "dir": 5 }), "dir"),
            (json!({ "image": "x", "networks": "none" }), "networks"),
            (
                json!({ "image": "x", "networks": ["none", "a"] }),
                "networks",
            ),
            (json!({ "image": "x", "networks": [""] }), "networks"),
            (
                json!({ "image": "x", "network": "a", "networks": ["b"] }),
                "networks",
            ),
            (json!({ "image": "x", "run": "apk add x" }), "run"),
            (json!({ "image": "x", "run": [1] }), "run"),
        ];
        for (v, f) in cases {
            let e = parse_request(&map(v.clone()), None).unwrap_err();
            assert_eq!(e.field, f, "{v}");
            assert!(e.message.contains(f), "{v}: {}", e.message);
        }
        let e = parse_request(
            &map(json!({ "image": "x", "detached": true })),
            Some("1".into()),
        )
        .unwrap_err();
        assert_eq!(e.field, "input");
    }

    #[test]
    fn networks_and_their_alias() {
        let r = |v: Value| parse_request(&map(v), None).unwrap().networks;
        assert_eq!(r(json!({ "image": "x", "network": "none" })), vec!["none"]);
        assert_eq!(
            r(json!({ "image": "x", "networks": ["a", "b"] })),
            vec!["a", "b"]
        );
        assert_eq!(
            r(json!({ "image": "x", "network": "a", "networks": ["a"] })),
            vec!["a"]
        );
        assert!(r(json!({ "image": "x", "network": "", "networks": [] })).is_empty());
    }

    #[test]
    fn request_fields() {
        let r = parse_request(
            &map(json!({
                "image": "x", "entrypoint": "echo hi", "timeout": 0, "network": "none",
                "env": { "GOOD": "1", "bad-name": "2", "9X": "3" },
                "extract": [{ "from": "out", "to": "/tmp/o" }], "ignore": ["secret"],
                "run": ["apk add x"]
            })),
            Some("{\"a\":1}".into()),
        )
        .unwrap();
        assert_eq!(r.command.as_deref(), Some("echo hi"));
        assert_eq!(r.timeout_ms, None);
        assert_eq!(r.networks, vec!["none"]);
        assert_eq!(r.env, vec![("GOOD".to_string(), "1".to_string())]);
        assert_eq!(r.extract.len(), 1);
        assert_eq!(r.ignore, vec!["secret".to_string()]);
        assert_eq!(r.run, vec!["apk add x".to_string()]);
        assert_eq!(r.input.as_deref(), Some("{\"a\":1}"));
        let same = parse_request(
            &map(json!({ "image": "x", "command": "a", "entrypoint": "a" })),
            None,
        )
        .unwrap();
        assert_eq!(same.command.as_deref(), Some("a"));
    }

    #[test]
    fn network_function_options() {
        let o = parse_network_options(&map(json!({
            "iccEnabled": true, "exclusive": true, "labels": { "a": "b" },
            "ipam": { "subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "ipRange": "10.1.0.0/25" }
        })))
        .unwrap();
        assert!(o.icc_enabled && o.exclusive);
        assert_eq!(o.labels, vec![("a".to_string(), "b".to_string())]);
        assert_eq!(o.ip_range.as_deref(), Some("10.1.0.0/25"));
        assert!(parse_network_options(&map(json!({ "driver": "overlay" }))).is_err());
        assert!(parse_network_options(&map(json!({ "labels": { "a": 1 } }))).is_err());
        assert!(parse_network_name("light-runner-x").is_ok());
        assert!(parse_network_name("bad name").is_err());
        assert!(parse_network_name("").is_err());
        assert_eq!(
            parse_network_cleanup(&map(json!({}))).unwrap(),
            ("light-runner-".to_string(), 0)
        );
        assert!(parse_network_cleanup(&map(json!({ "prefix": "" }))).is_err());
    }

    #[test]
    fn stop_options() {
        let s = parse_stop(&map(json!({}))).unwrap();
        assert_eq!(s.signal, "SIGTERM");
        assert_eq!(s.grace, std::time::Duration::from_secs(10));
        assert!(parse_stop(&map(json!({ "grace": -1 }))).is_err());
        assert!(parse_stop(&map(json!({ "signal": 9 }))).is_err());
    }

    #[test]
    fn strings_longer_than_linux_can_use_are_refused() {
        let arg = "x".repeat(MAX_ARG_BYTES + 1);
        let path = "/".to_string() + &"p".repeat(MAX_PATH_BYTES);
        for (v, f) in [
            (json!({ "image": arg }), "image"),
            (json!({ "image": "x", "command": arg }), "command"),
            (json!({ "image": "x", "env": { "A": arg } }), "env"),
            (json!({ "image": "x", "run": [arg] }), "run"),
            (json!({ "image": "x", "dir": path }), "dir"),
            (json!({ "image": "x", "workdir": path }), "workdir"),
            (
                json!({ "image": "x", "extract": [{ "from": path, "to": "/t" }] }),
                "extract",
            ),
        ] {
            let e = parse_request(&map(v), None).unwrap_err();
            assert_eq!(e.field, f);
            assert!(e.message.contains("longer than"), "{}", e.message);
        }
        let ok = "x".repeat(MAX_ARG_BYTES - 10);
        assert!(parse_request(&map(json!({ "image": "x", "command": ok })), None).is_ok());
    }

    #[test]
    fn messages_show_values_cut_short() {
        let long = "x".repeat(10_000);
        let e = parse_request(&map(json!({ "image": "x", "timeout": long })), None).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }
}
