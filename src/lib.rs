//! memcached-rs: a memcached 1.6 compatible cache server, thread per core on io_uring.
//!
//! Three layers, kept apart: [`protocol`] (each wire protocol's bytes into one
//! protocol-neutral request, and typed outcomes into reply bytes), [`commands`] (what
//! each command does, against) [`store`] (one shard's items, pure), and [`server`]
//! (executors, connections, forwarding between cores: the only async code).
//! memcached's shared rules (key limits, number parsing, expiry) are in [`rules`], a
//! leaf every layer imports.

pub mod commands;
pub mod config;
pub mod observe;
pub mod protocol;
pub mod rules;
pub mod server;
pub mod store;
