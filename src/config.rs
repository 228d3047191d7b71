//! Validation of what the caller asks for: runner options and run requests
//! arrive as JSON-like maps and leave as typed, checked values. Every error
//! names the field and the value.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::errors::InvalidInput;
use crate::extract::ExtractSpec;

pub const DEFAULT_MEMORY: &str = "512m";
pub const DEFAULT_CPUS: &str = "1";
pub const DEFAULT_TIMEOUT_MS: u64 = 20 * 60 * 1000;
pub const DEFAULT_WORKDIR: &str = "/app";
pub const DEFAULT_MAX_EXTRACT_BYTES: u64 = 1 << 30;

/// Which OCI runtime runs the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Runsc,
    Kata,
}

/// GPU access, mapped to an nvidia DeviceRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpus {
    /// `all` (count -1) or a number of GPUs.
    Count(i64),
    /// Explicit device ids (`0,1`, `device=0,1`, `"device=0"`).
    Devices(Vec<String>),
}

/// Per-runner settings, applied to every run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub runtime: Runtime,
    pub gpus: Option<Gpus>,
    pub no_new_privileges: bool,
    pub max_extract_bytes: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            memory_bytes: parse_memory(DEFAULT_MEMORY).expect("default memory"),
            nano_cpus: parse_cpus(DEFAULT_CPUS).expect("default cpus"),
            runtime: Runtime::Runc,
            gpus: None,
            no_new_privileges: true,
            max_extract_bytes: DEFAULT_MAX_EXTRACT_BYTES,
        }
    }
}

/// Network the container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkChoice {
    /// The shared bridge `light-runner-isolated`, created on demand.
    Isolated,
    None,
    Named(String),
}

/// One run, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub image: String,
    /// Shell command run as `sh -c <command>`; `None` = the image's own entrypoint.
    pub command: Option<String>,
    pub dir: Option<PathBuf>,
    /// `JSON.stringify(input)`, written to stdin then EOF.
    pub input: Option<String>,
    /// `None` = no timeout.
    pub timeout_ms: Option<u64>,
    pub network: NetworkChoice,
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
            command: None,
            dir: None,
            input: None,
            timeout_ms: Some(DEFAULT_TIMEOUT_MS),
            network: NetworkChoice::Isolated,
            env: Vec::new(),
            workdir: DEFAULT_WORKDIR.to_string(),
            extract: Vec::new(),
            detached: false,
            ignore: Vec::new(),
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, InvalidInput> {
    match field(map, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
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
    let bytes = n.checked_mul(mult)?;
    (bytes > 0).then_some(bytes)
}

/// A positive decimal number of CPUs, in NanoCpus.
pub fn parse_cpus(s: &str) -> Option<i64> {
    let s = s.trim();
    let valid = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && !s.starts_with('.')
        && !s.ends_with('.');
    if !valid {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    let nano = (v * 1e9).round();
    (v > 0.0 && nano >= 1.0 && nano < i64::MAX as f64).then_some(nano as i64)
}

/// The reference's GPU syntax: `all`, a count, `0,1`, `device=0,1`, `"device=0"`.
pub fn parse_gpus(s: &str) -> Option<Gpus> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",=.:\"-_ ".contains(c);
    let t = s.trim();
    if t.is_empty() || t.starts_with('-') || !s.chars().all(allowed) {
        return None;
    }
    let unquoted = t.trim_matches('"').trim();
    if unquoted.eq_ignore_ascii_case("all") {
        return Some(Gpus::Count(-1));
    }
    if let Ok(n) = unquoted.parse::<i64>() {
        return (n > 0).then_some(Gpus::Count(n));
    }
    let list = unquoted.strip_prefix("device=").unwrap_or(unquoted);
    let ids: Vec<String> = list
        .split(',')
        .map(|d| d.trim().trim_matches('"').to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if ids.is_empty() || ids.iter().any(|d| d.contains('=') || d.contains('"')) {
        return None;
    }
    Some(Gpus::Devices(ids))
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
pub fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks `RunnerOptions`.
pub fn parse_options(map: &Map<String, Value>) -> Result<RunnerConfig, InvalidInput> {
    let mut cfg = RunnerConfig::default();
    if let Some(v) = field(map, "memory") {
        cfg.memory_bytes = v.as_str().and_then(parse_memory).ok_or_else(|| {
            InvalidInput::new(
                "memory",
                format!(
                    "Invalid memory: {} (expected digits with an optional k/m/g suffix, e.g. '512m')",
                    describe(v)
                ),
            )
        })?;
    }
    if let Some(v) = field(map, "cpus") {
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        cfg.nano_cpus = text.as_deref().and_then(parse_cpus).ok_or_else(|| {
            InvalidInput::new(
                "cpus",
                format!(
                    "Invalid cpus: {} (expected a positive decimal, e.g. '1.5')",
                    describe(v)
                ),
            )
        })?;
    }
    if let Some(v) = field(map, "runtime") {
        cfg.runtime = match v.as_str() {
            Some("runc") => Runtime::Runc,
            Some("runsc") => Runtime::Runsc,
            Some("kata") => Runtime::Kata,
            _ => {
                return Err(InvalidInput::new(
                    "runtime",
                    format!(
                        "Invalid runtime: {} (expected 'runc', 'runsc' or 'kata')",
                        describe(v)
                    ),
                ))
            }
        };
    }
    if let Some(v) = field(map, "gpus") {
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if n.is_u64() => Some(n.to_string()),
            _ => None,
        };
        cfg.gpus = Some(text.as_deref().and_then(parse_gpus).ok_or_else(|| {
            InvalidInput::new(
                "gpus",
                format!(
                    "Invalid gpus: {} (expected 'all', a count, '0,1' or 'device=0,1')",
                    describe(v)
                ),
            )
        })?);
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
    Ok(cfg)
}

/// Checks a `RunRequest`. `input_json` is `JSON.stringify(request.input)`,
/// computed by the caller because only JS knows JS's serialization exactly.
pub fn parse_request(
    map: &Map<String, Value>,
    input_json: Option<String>,
) -> Result<RunRequest, InvalidInput> {
    let image = match field(map, "image") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
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
        let ms = v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| {
                InvalidInput::new(
                    "timeout",
                    format!(
                        "Invalid timeout: {} (expected milliseconds >= 0; 0 = none)",
                        describe(v)
                    ),
                )
            })?;
        req.timeout_ms = (ms >= 1.0).then_some(ms as u64);
    }

    req.network = match string_field(map, "network")?.as_deref() {
        None | Some("") => NetworkChoice::Isolated,
        Some("none") => NetworkChoice::None,
        Some(name) => NetworkChoice::Named(name.to_string()),
    };

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
                (Some(from), Some(to)) => req.extract.push(ExtractSpec {
                    from: from.to_string(),
                    to: to.to_string(),
                }),
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
                Some(s) if !s.is_empty() => req.ignore.push(s.to_string()),
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
        for bad in ["", "m", "12x", "1.5g", "-1m", "0", "1mb"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn cpus_is_a_positive_decimal() {
        assert_eq!(parse_cpus("1"), Some(1_000_000_000));
        assert_eq!(parse_cpus("0.5"), Some(500_000_000));
        assert_eq!(parse_cpus("2.25"), Some(2_250_000_000));
        for bad in ["", "0", "-1", "abc", "1.", ".5", "1.2.3"] {
            assert_eq!(parse_cpus(bad), None, "{bad}");
        }
    }

    #[test]
    fn gpus_syntax() {
        assert_eq!(parse_gpus("all"), Some(Gpus::Count(-1)));
        assert_eq!(parse_gpus("2"), Some(Gpus::Count(2)));
        assert_eq!(
            parse_gpus("0,1"),
            Some(Gpus::Devices(vec!["0".into(), "1".into()]))
        );
        assert_eq!(
            parse_gpus("device=0,1"),
            Some(Gpus::Devices(vec!["0".into(), "1".into()]))
        );
        assert_eq!(
            parse_gpus("\"device=0\""),
            Some(Gpus::Devices(vec!["0".into()]))
        );
        for bad in ["", "-1", "--privileged", "all;rm", "$(x)", "0'1", "device="] {
            assert_eq!(parse_gpus(bad), None, "{bad}");
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
    fn options_errors_name_field_and_value() {
        let e = parse_options(&map(json!({ "memory": "12x" }))).unwrap_err();
        assert_eq!(e.field, "memory");
        assert!(e.message.contains("12x"), "{}", e.message);
        let e = parse_options(&map(json!({ "cpus": "zero" }))).unwrap_err();
        assert!(e.message.contains("cpus") && e.message.contains("zero"));
        let e = parse_options(&map(json!({ "gpus": "-x" }))).unwrap_err();
        assert!(e.message.contains("gpus") && e.message.contains("-x"));
        let e = parse_options(&map(json!({ "runtime": "docker" }))).unwrap_err();
        assert!(e.message.contains("runtime") && e.message.contains("docker"));
        let cfg = parse_options(&map(
            json!({ "cpus": 2, "gpus": 1, "noNewPrivileges": false }),
        ))
        .unwrap();
        assert_eq!(cfg.nano_cpus, 2_000_000_000);
        assert_eq!(cfg.gpus, Some(Gpus::Count(1)));
        assert!(!cfg.no_new_privileges);
    }

    #[test]
    fn request_defaults() {
        let r = parse_request(&map(json!({ "image": "busybox" })), None).unwrap();
        assert_eq!(r.workdir, "/app");
        assert_eq!(r.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
        assert_eq!(r.network, NetworkChoice::Isolated);
        assert_eq!(r.command, None);
    }

    #[test]
    fn request_errors_name_the_field() {
        let cases = [
            (json!({}), "image"),
            (json!({ "image": 42 }), "image"),
            (json!({ "image": "" }), "image"),
            (json!({ "image": "x", "timeout": "5" }), "timeout"),
            (json!({ "image": "x", "timeout": -1 }), "timeout"),
            (json!({ "image": "x", "env": [1] }), "env"),
            (json!({ "image": "x", "env": { "A": 1 } }), "env"),
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
    fn request_fields() {
        let r = parse_request(
            &map(json!({
                "image": "x", "entrypoint": "echo hi", "timeout": 0, "network": "none",
                "env": { "GOOD": "1", "bad-name": "2", "9X": "3" },
                "extract": [{ "from": "out", "to": "/tmp/o" }], "ignore": ["secret"]
            })),
            Some("{\"a\":1}".into()),
        )
        .unwrap();
        assert_eq!(r.command.as_deref(), Some("echo hi"));
        assert_eq!(r.timeout_ms, None);
        assert_eq!(r.network, NetworkChoice::None);
        assert_eq!(r.env, vec![("GOOD".to_string(), "1".to_string())]);
        assert_eq!(r.extract.len(), 1);
        assert_eq!(r.ignore, vec!["secret".to_string()]);
        assert_eq!(r.input.as_deref(), Some("{\"a\":1}"));
        let same = parse_request(
            &map(json!({ "image": "x", "command": "a", "entrypoint": "a" })),
            None,
        )
        .unwrap();
        assert_eq!(same.command.as_deref(), Some("a"));
    }
}
