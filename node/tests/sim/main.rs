//! The cluster simulator's integration tests: random faults over many seeds, and scenarios from
//! the paper (hinted handoff, joins, leaves).

mod detection;
mod faults;
mod pbs;
mod portability;
mod scenarios;
mod trace;
