//! light-runner: run untrusted jobs in hardened Docker containers.
//!
//! The core (every module but `binding`) speaks Rust and knows nothing of
//! JS; `binding` converts between the two. Modules, from the bottom up:
//! ids, options and errors; the daemon client; state files, one run's
//! resources, seeding, extraction and log lines; a run's output kept and
//! replayed; networks, images and the container body; the one setup path;
//! attached and detached runs; the reclaimers.

pub mod config;
pub mod container;
pub mod detached;
pub mod docker;
pub mod errors;
pub mod execution;
pub mod extract;
pub mod id;
pub mod image;
pub mod live;
pub mod logs;
pub mod maintenance;
pub mod network;
pub mod output;
pub mod record;
pub mod resources;
pub mod rt;
pub mod runner;
pub mod seed;
pub mod setup;
pub mod state;
pub mod watchdog;

mod binding;
