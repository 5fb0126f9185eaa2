//! `Here`: the server as a server-wide command (`stats`, `flush_all`, `shutdown`,
//! `refresh_certs`, ...) sees it from one connection.
//!
//! Split out of `connection.rs` (#13), which only frames, routes and keeps replies in
//! order: this is the other side of `commands::Server`, the facts and actions a
//! command in `commands::admin` may ask for. Its per-core parts run on this core or
//! are forwarded with a hole, so their lines stay in request order.

use bytes::BytesMut;

use super::super::core::Core;
use super::super::forward::{Mailbox, Work};
use super::super::process_facts;
use super::Holes;
use crate::commands::{self, CommandCounters, CoreOp, ExecutorStats, ProcessFacts, Runtime};
use crate::config::Config;
use crate::protocol::Form;

/// The server as a server-wide command sees it from this connection: its per-core
/// parts run here or are forwarded (with holes, so their lines stay in order).
pub(super) struct Here<'a> {
    pub(super) core: &'a Core,
    pub(super) conn: u32,
    pub(super) mailbox: &'a Mailbox,
    pub(super) holes: &'a mut Holes,
}

impl commands::Server for Here<'_> {
    fn cores(&self) -> usize {
        self.core.shared.config.threads
    }

    fn on_core(&mut self, core: usize, op: CoreOp, form: Form, out: &mut BytesMut) {
        if core == self.core.id {
            self.core.run_core_op(op, form, out);
        } else {
            let slot = self.holes.hole(out.len(), self.mailbox);
            self.core.stats().commands.forwarded.incr();
            self.core.forwarder.send(core, self.conn, slot, Work::Core { op, form }, |_| {});
        }
    }

    fn config(&self) -> &Config {
        &self.core.shared.config
    }

    fn runtime(&self) -> &Runtime {
        &self.core.shared.runtime
    }

    fn stats(&self) -> &[ExecutorStats] {
        &self.core.shared.stats
    }

    fn counters(&self) -> &CommandCounters {
        &self.core.stats().commands
    }

    fn now(&self) -> u32 {
        self.core.now()
    }

    fn unix_at_zero(&self) -> i64 {
        self.core.shared.clock.unix_at_zero()
    }

    fn process(&self) -> ProcessFacts {
        process_facts(&self.core.shared)
    }

    fn page_size(&self) -> u64 {
        self.core.shard.borrow().segment_size() as u64
    }

    fn shutdown(&self) {
        super::super::request_shutdown(&self.core.shared);
    }

    fn refresh_certs(&self) -> Result<(), String> {
        match &self.core.shared.tls {
            Some(tls) => tls.refresh(self.core.shared.clock.now()),
            None => Err("Error TLS not enabled".into()),
        }
    }

    fn observe(&self) -> &crate::observe::Observe {
        &self.core.shared.observe
    }
}
