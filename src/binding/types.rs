//! The shapes of what crosses into the addon, declared once: each struct
//! below is both the list of fields the binding reads (with how it reads
//! them) and, through napi, the typed interface of `native.d.ts`, which the
//! test suite checks `index.d.ts` against, type by type. The binding never
//! converts through these structs (JS values are read by `values`, without
//! trusting them); they exist for the declarations.
#![allow(dead_code)]

use napi_derive::napi;
use serde_json::Value;

use super::values::Shape;

/// Declares an options struct: `opt name = "jsName": "tsType" as Shape,`
/// per field (`req` for a field the caller must give). Its doc comes as a
/// string (`doc "..."`): napi writes what a macro's `///` becomes verbatim.
macro_rules! js_shape {
    (doc $doc:literal $name:ident { $($body:tt)* }) => {
        js_shape!(@munch [$doc $name] [] [] $($body)*);
    };
    // One field at a time, so napi sees each type spelled out (`Option<_>`
    // is how it knows a field is optional).
    (@munch $head:tt [$($fields:tt)*] [$($list:tt)*]
        req $field:ident = $js:literal : $ts:literal as $shape:ident, $($rest:tt)*) => {
        js_shape!(@munch $head
            [$($fields)* #[napi(js_name = $js, ts_type = $ts)] pub $field: Value,]
            [$($list)* ($js, Shape::$shape),]
            $($rest)*);
    };
    (@munch $head:tt [$($fields:tt)*] [$($list:tt)*]
        opt $field:ident = $js:literal : $ts:literal as $shape:ident, $($rest:tt)*) => {
        js_shape!(@munch $head
            [$($fields)* #[napi(js_name = $js, ts_type = $ts)] pub $field: Option<Value>,]
            [$($list)* ($js, Shape::$shape),]
            $($rest)*);
    };
    (@munch [$doc:literal $name:ident] [$($fields:tt)*] [$($list:tt)*]) => {
        #[doc = $doc]
        #[napi(object)]
        pub struct $name {
            $($fields)*
        }

        impl $name {
            /// The fields the binding reads, as JS names them.
            pub const FIELDS: &'static [(&'static str, Shape)] = &[$($list)*];
        }
    };
}

js_shape! {
    doc "`RunnerOptions`, as the addon reads them."
    RunnerOptions {
        opt memory = "memory": "string" as Json,
        opt cpus = "cpus": "string | number" as Json,
        opt runtime = "runtime": "'runc' | 'runsc' | 'kata' | (string & {})" as Json,
        opt gpus = "gpus": "'all' | number | string" as Json,
        opt no_new_privileges = "noNewPrivileges": "boolean" as Json,
        opt max_extract_bytes = "maxExtractBytes": "number" as Json,
        opt max_log_bytes = "maxLogBytes": "number" as Json,
        opt warm = "warm": "number" as Json,
        opt security_profile = "securityProfile": "'baseline' | 'restricted'" as Json,
        opt user = "user": "string" as Json,
        opt read_only_rootfs = "readOnlyRootfs": "boolean" as Json,
        opt tmpfs_size = "tmpfsSize": "string | number" as Json,
        opt ulimits = "ulimits": "Record<string, number | { soft: number; hard: number }>" as Json,
        opt cap_add = "capAdd": "Array<string>" as Json,
    }
}

js_shape! {
    doc "`RunRequest`, as the addon reads it (`onLog`, `signal` and `input` are read by the JS layer)."
    NativeRunRequest {
        req image = "image": "string" as Json,
        opt command = "command": "string" as Json,
        opt entrypoint = "entrypoint": "string" as Json,
        opt dir = "dir": "string" as Json,
        opt timeout = "timeout": "number" as Number,
        opt network = "network": "string" as Json,
        opt env = "env": "Record<string, unknown>" as StringRecord,
        opt workdir = "workdir": "string" as Json,
        opt extract = "extract": "Array<ExtractSpec>" as Json,
        opt detached = "detached": "boolean" as Json,
        opt ignore = "ignore": "Array<string>" as Json,
        opt networks = "networks": "Array<string>" as Json,
        opt run = "run": "Array<string>" as Json,
    }
}

js_shape! {
    doc "`StopOptions`."
    StopOptions {
        opt signal = "signal": "string" as Json,
        opt grace = "grace": "number" as Json,
    }
}

js_shape! {
    doc "`LogsOptions`, as the addon reads them (the JS layer turns a `Date` `since` into epoch ms)."
    NativeLogsOptions {
        opt since = "since": "string | number" as Json,
        opt follow = "follow": "boolean" as Json,
    }
}

js_shape! {
    doc "`CreateNetworkOptions`."
    CreateNetworkOptions {
        opt driver = "driver": "'bridge'" as Json,
        opt icc_enabled = "iccEnabled": "boolean" as Json,
        opt exclusive = "exclusive": "boolean" as Json,
        opt labels = "labels": "Record<string, string>" as Json,
        opt ipam = "ipam": "{ subnet?: string; gateway?: string; ipRange?: string }" as Json,
    }
}

js_shape! {
    doc "`CleanupNetworkOptions`."
    CleanupNetworkOptions {
        opt prefix = "prefix": "string" as Json,
        opt max_age_ms = "maxAgeMs": "number" as Json,
    }
}

/// One `{ from, to }` of `extract`.
#[napi(object)]
pub struct ExtractSpec {
    pub from: String,
    pub to: String,
}
