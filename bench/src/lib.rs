//! mcbench: a latency load generator for memcached-compatible servers.
pub mod config;
pub mod conn;
pub mod ketama;
pub mod link;
pub mod plot;
pub mod reply;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod stats;
pub mod workload;
