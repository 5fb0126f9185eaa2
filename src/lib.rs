//! memcached-rs: a memcached 1.6 compatible cache server, thread per core on io_uring.
//!
//! Three layers, kept apart: [`protocol`] (bytes in, requests out; replies composed),
//! [`store`] (one shard's items, pure), and [`server`] (executors, connections,
//! forwarding between cores, stats: the only async code).

pub mod config;
pub mod protocol;
pub mod server;
pub mod store;
