//! light-runner: run untrusted jobs in hardened Docker containers.
//!
//! The layers, from the top down (an arrow only ever points down):
//! - `binding`: JS values in, core types out (the only place napi is known);
//! - `maintenance` and `watchdog`: the reclaimers, on the engine's pieces;
//! - `engine`: how a run is set up, driven, ended and reported;
//! - `backend` (the container platform: Docker through bollard) and
//!   `store` (state files, kept output): what the engine acts on;
//! - the base: `config` (options, requests, the environment), `record`
//!   (the state file's format, results), `errors`, `lines`, `time`, `id`, `rt`.

pub mod backend;
pub mod config;
pub mod engine;
pub mod errors;
pub mod id;
pub mod lines;
pub mod maintenance;
pub mod record;
pub mod rt;
pub mod store;
pub mod time;
pub mod wake;
pub mod watchdog;

mod binding;
