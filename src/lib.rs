//! grace-init as a library: the parsers, the pure supervisor and the event loop, so the binary stays a thin
//! `main`, and tests, property tests and fuzz targets can reach the parsers directly.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod cgroup;
pub mod cli;
pub mod comm;
pub mod death;
pub mod deliver;
pub mod duration;
pub mod exit_code;
pub mod hygiene;
pub mod inbox;
pub mod log_filter;
pub mod logging;
pub mod note;
pub mod pause;
pub mod procs;
pub mod reap;
pub mod route;
pub mod run;
pub mod signals;
pub mod sink;
pub mod spawn;
pub mod startup;
pub mod supervisor;
pub mod sys;
pub mod terminal;
pub mod termination;
pub mod terms;
pub mod user;
