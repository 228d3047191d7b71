//! Reading values from JS without trusting them.
//!
//! The caller's objects may be circular, nested without end, hold getters or
//! proxy traps that throw, BigInts, symbols or functions. serde's conversion
//! recurses without a bound (a cycle overflows the stack and kills the
//! process), so every value crossing into the core is read here: only the
//! fields the API knows, with a depth and size bound, each JS exception caught
//! and reported with the path of the field that raised it.

use std::ffi::CString;
use std::ptr;

use napi::sys;
use napi::{Env, Error, Status};
use serde_json::{Map, Number, Value};

/// Deeper than this, a value is taken for circular.
pub const MAX_DEPTH: usize = 32;
/// Values (array elements, object fields) read for one field at most.
pub const MAX_NODES: usize = 1_000_000;

/// Why a value could not be read.
#[derive(Debug)]
pub enum Problem {
    /// A kind JSON cannot carry: `bigint`, `symbol`, `function`, `NaN`, ...
    Kind(String),
    TooDeep,
    TooLarge,
    /// A getter, proxy trap or `toString` threw.
    Threw(String),
}

/// A field that could not be read, with its path (`env.A`, `extract[0].from`).
#[derive(Debug)]
pub struct Bad {
    pub path: String,
    pub problem: Problem,
}

/// How a known field is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// As JSON (bounded).
    Json,
    /// An object whose values are converted with `String(value)`, as the
    /// original does for `env`; `undefined` values are dropped.
    StringRecord,
    /// Like `Json`, but NaN and ±Infinity (which JSON cannot carry) arrive
    /// as the strings JS prints for them, `"NaN"`, `"Infinity"` and
    /// `"-Infinity"`, for the core to decide on (a `timeout` of
    /// `Number(undefined)`).
    Number,
}

/// One JS value, borrowed from the current call.
#[derive(Clone, Copy)]
pub struct Js {
    env: sys::napi_env,
    value: sys::napi_value,
}

type Caught<T> = Result<T, String>;

impl Js {
    pub fn new(env: &Env, value: sys::napi_value) -> Self {
        Js {
            env: env.raw(),
            value,
        }
    }

    fn with(self, value: sys::napi_value) -> Self {
        Js { value, ..self }
    }

    /// The pending JS exception, cleared, as a message.
    fn take_exception(self) -> String {
        let mut pending = false;
        unsafe { sys::napi_is_exception_pending(self.env, &mut pending) };
        if !pending {
            return "the call failed".into();
        }
        let mut exc = ptr::null_mut();
        unsafe { sys::napi_get_and_clear_last_exception(self.env, &mut exc) };
        let exc = self.with(exc);
        match exc.type_of() {
            sys::ValueType::napi_string => exc.string().unwrap_or_default(),
            sys::ValueType::napi_object => exc
                .get("message")
                .ok()
                .filter(|m| m.type_of() == sys::ValueType::napi_string)
                .and_then(|m| m.string().ok())
                .unwrap_or_else(|| "a non-Error value was thrown".into()),
            _ => "a non-Error value was thrown".into(),
        }
    }

    fn check(self, status: sys::napi_status) -> Caught<()> {
        if status == sys::Status::napi_ok {
            Ok(())
        } else {
            Err(self.take_exception())
        }
    }

    pub fn type_of(self) -> sys::napi_valuetype {
        let mut t = sys::ValueType::napi_undefined;
        unsafe { sys::napi_typeof(self.env, self.value, &mut t) };
        t
    }

    pub fn is_array(self) -> bool {
        let mut yes = false;
        unsafe { sys::napi_is_array(self.env, self.value, &mut yes) };
        yes
    }

    /// `obj[key]`, running getters and proxy traps (which may throw).
    pub fn get(self, key: &str) -> Caught<Js> {
        let key = CString::new(key).map_err(|_| "invalid key".to_string())?;
        let mut out = ptr::null_mut();
        self.check(unsafe {
            sys::napi_get_named_property(self.env, self.value, key.as_ptr(), &mut out)
        })?;
        Ok(self.with(out))
    }

    fn element(self, i: u32) -> Caught<Js> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_get_element(self.env, self.value, i, &mut out) })?;
        Ok(self.with(out))
    }

    fn array_len(self) -> Caught<u32> {
        let mut n = 0;
        self.check(unsafe { sys::napi_get_array_length(self.env, self.value, &mut n) })?;
        Ok(n)
    }

    /// Own enumerable string keys, as `Object.keys` gives them.
    fn own_keys(self) -> Caught<Vec<String>> {
        let mut names = ptr::null_mut();
        self.check(unsafe {
            sys::napi_get_all_property_names(
                self.env,
                self.value,
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut names,
            )
        })?;
        let names = self.with(names);
        let n = names.array_len()?;
        (0..n)
            .map(|i| names.element(i).and_then(|k| k.string()))
            .collect()
    }

    /// The value of a JS string.
    pub fn string(self) -> Caught<String> {
        let mut len = 0;
        self.check(unsafe {
            sys::napi_get_value_string_utf8(self.env, self.value, ptr::null_mut(), 0, &mut len)
        })?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0;
        self.check(unsafe {
            sys::napi_get_value_string_utf8(
                self.env,
                self.value,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut written,
            )
        })?;
        buf.truncate(written);
        String::from_utf8(buf).map_err(|_| "invalid UTF-8".to_string())
    }

    fn number(self) -> f64 {
        let mut n = 0.0;
        unsafe { sys::napi_get_value_double(self.env, self.value, &mut n) };
        n
    }

    fn boolean(self) -> bool {
        let mut b = false;
        unsafe { sys::napi_get_value_bool(self.env, self.value, &mut b) };
        b
    }

    /// `String(value)`, exactly as JS computes it (symbols included).
    fn js_string(self) -> Caught<String> {
        let mut global = ptr::null_mut();
        self.check(unsafe { sys::napi_get_global(self.env, &mut global) })?;
        let string_fn = self.with(global).get("String")?;
        let mut out = ptr::null_mut();
        let args = [self.value];
        self.check(unsafe {
            sys::napi_call_function(
                self.env,
                global,
                string_fn.value,
                1,
                args.as_ptr(),
                &mut out,
            )
        })?;
        self.with(out).string()
    }

    pub fn kind(self) -> &'static str {
        match self.type_of() {
            sys::ValueType::napi_undefined => "undefined",
            sys::ValueType::napi_null => "null",
            sys::ValueType::napi_boolean => "a boolean",
            sys::ValueType::napi_number => "a number",
            sys::ValueType::napi_string => "a string",
            sys::ValueType::napi_symbol => "a symbol",
            sys::ValueType::napi_function => "a function",
            sys::ValueType::napi_bigint => "a bigint",
            sys::ValueType::napi_object if self.is_array() => "an array",
            sys::ValueType::napi_object => "an object",
            _ => "an external value",
        }
    }

    pub fn is_nullish(self) -> bool {
        matches!(
            self.type_of(),
            sys::ValueType::napi_undefined | sys::ValueType::napi_null
        )
    }
}

/// Reads JS values into JSON within the bounds, counting what it read.
struct Reader {
    nodes: usize,
}

impl Reader {
    fn json(&mut self, v: Js, path: &str, depth: usize) -> Result<Option<Value>, Bad> {
        let bad = |problem| Bad {
            path: path.to_string(),
            problem,
        };
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(bad(Problem::TooLarge));
        }
        Ok(Some(match v.type_of() {
            sys::ValueType::napi_undefined => return Ok(None),
            sys::ValueType::napi_null => Value::Null,
            sys::ValueType::napi_boolean => Value::Bool(v.boolean()),
            sys::ValueType::napi_number => {
                let n = v.number();
                match Number::from_f64(n) {
                    Some(n) => Value::Number(n),
                    None => return Err(bad(Problem::Kind(format!("{n}")))),
                }
            }
            sys::ValueType::napi_string => {
                Value::String(v.string().map_err(|e| bad(Problem::Threw(e)))?)
            }
            sys::ValueType::napi_bigint => {
                let text = v.js_string().unwrap_or_default();
                return Err(bad(Problem::Kind(format!("a bigint ({text}n)"))));
            }
            sys::ValueType::napi_object => {
                if depth >= MAX_DEPTH {
                    return Err(bad(Problem::TooDeep));
                }
                if v.is_array() {
                    let n = v.array_len().map_err(|e| bad(Problem::Threw(e)))?;
                    let mut out = Vec::with_capacity((n as usize).min(1024));
                    for i in 0..n {
                        let item_path = format!("{path}[{i}]");
                        let item = v.element(i).map_err(|e| Bad {
                            path: item_path.clone(),
                            problem: Problem::Threw(e),
                        })?;
                        // As JSON: an undefined element becomes null.
                        out.push(
                            self.json(item, &item_path, depth + 1)?
                                .unwrap_or(Value::Null),
                        );
                    }
                    Value::Array(out)
                } else {
                    let keys = v.own_keys().map_err(|e| bad(Problem::Threw(e)))?;
                    let mut out = Map::new();
                    for key in keys {
                        let item_path = format!("{path}.{key}");
                        let item = v.get(&key).map_err(|e| Bad {
                            path: item_path.clone(),
                            problem: Problem::Threw(e),
                        })?;
                        if let Some(j) = self.json(item, &item_path, depth + 1)? {
                            out.insert(key, j);
                        }
                    }
                    Value::Object(out)
                }
            }
            _ => return Err(bad(Problem::Kind(v.kind().to_string()))),
        }))
    }

    fn string_record(&mut self, v: Js, path: &str) -> Result<Option<Value>, Bad> {
        match v.type_of() {
            sys::ValueType::napi_undefined => return Ok(None),
            sys::ValueType::napi_object if !v.is_array() => {}
            // Anything else is a wrong shape the core reports.
            _ => return self.json(v, path, MAX_DEPTH - 1),
        }
        let keys = v.own_keys().map_err(|e| Bad {
            path: path.to_string(),
            problem: Problem::Threw(e),
        })?;
        let mut out = Map::new();
        for key in keys {
            let item_path = format!("{path}.{key}");
            let threw = |e| Bad {
                path: item_path.clone(),
                problem: Problem::Threw(e),
            };
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return Err(Bad {
                    path: path.to_string(),
                    problem: Problem::TooLarge,
                });
            }
            let item = v.get(&key).map_err(threw)?;
            if item.type_of() == sys::ValueType::napi_undefined {
                continue;
            }
            out.insert(key, Value::String(item.js_string().map_err(threw)?));
        }
        Ok(Some(Value::Object(out)))
    }
}

/// Reads the known `fields` of a JS object into a JSON map; unknown fields are
/// never touched (the original ignores them). Absent and `undefined` fields
/// are left out.
pub fn read_fields(obj: Js, fields: &[(&str, Shape)]) -> Result<Map<String, Value>, Bad> {
    let mut out = Map::new();
    for (name, shape) in fields {
        let v = obj.get(name).map_err(|e| Bad {
            path: name.to_string(),
            problem: Problem::Threw(e),
        })?;
        let mut reader = Reader { nodes: 0 };
        let value = match shape {
            Shape::Number if v.type_of() == sys::ValueType::napi_number => {
                let n = v.number();
                Some(match Number::from_f64(n) {
                    Some(n) => Value::Number(n),
                    None if n.is_nan() => Value::String("NaN".into()),
                    None if n > 0.0 => Value::String("Infinity".into()),
                    None => Value::String("-Infinity".into()),
                })
            }
            Shape::Json | Shape::Number => reader.json(v, name, 0)?,
            Shape::StringRecord => reader.string_record(v, name)?,
        };
        if let Some(value) = value {
            out.insert(name.to_string(), value);
        }
    }
    Ok(out)
}

/// The synchronous error for a value that could not be read. `expected`
/// says what the field takes.
pub fn bad_value(bad: Bad, expected: &str) -> Error {
    let Bad { path, problem } = bad;
    let msg = match problem {
        Problem::Kind(kind) => format!("Invalid {path}: expected {expected}, got {kind}"),
        Problem::TooDeep => format!(
            "Invalid {path}: expected {expected}, got a value that is circular or nested deeper than {MAX_DEPTH} levels"
        ),
        Problem::TooLarge => format!(
            "Invalid {path}: expected {expected}, got a value with more than {MAX_NODES} elements"
        ),
        Problem::Threw(e) => format!("Invalid {path}: reading it threw: {e}"),
    };
    Error::new(Status::InvalidArg, msg)
}
