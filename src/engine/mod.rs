//! How a run is set up, driven, ended and reported, attached or detached:
//! one lifecycle (decisions, no I/O), one driver (the I/O), one context.

pub mod attach;
pub mod ctx;
pub mod driver;
pub mod execution;
pub mod lifecycle;
pub mod outcome;
pub mod output;
pub mod runner;
pub mod setup;
pub mod waiter;
pub mod warm;
