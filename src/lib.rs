//! light-runner: run untrusted jobs in hardened Docker containers.
//!
//! The core (every module but `binding`) speaks Rust and knows nothing of
//! JS; `binding` converts between the two.

pub mod config;
pub mod container;
pub mod detached;
pub mod docker;
pub mod errors;
pub mod execution;
pub mod extract;
pub mod logs;
pub mod network;
pub mod reap;
pub mod resources;
pub mod rt;
pub mod runner;
pub mod seed;
pub mod state;
pub mod watchdog;

mod binding;
