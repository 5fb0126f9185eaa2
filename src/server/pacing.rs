//! memcached's two limits on a connection's share of its thread, kept out of the
//! connection's framing code: `-R` (requests per event before the connection yields,
//! counted in `conn_yields`) and `-o idle_timeout=N` (a connection idle for more than N
//! seconds is closed, counted in `idle_kicks`).
//!
//! memcached's numbers, measured on 1.6.18 and kept here: n requests that arrive in one
//! read make `floor((n - 1) / R)` yields (the connection goes on after R of them only
//! through the event loop). One case is not copied: with `-R 1`, memcached also counts
//! a yield for a lone request other than a get (its state machine spends a second turn
//! on that reply); here a lone request never yields. Its idle kicker closes a
//! connection whose last command is more than N whole seconds old, checking about once
//! a second, without a word to the client.

use std::io;
use std::time::Duration;

use super::core::Core;
use super::stream::RingStream;

/// A connection's request budget for the current event (`-R`).
pub struct Pacing {
    per_event: u32,
    left: u32,
}

impl Pacing {
    pub fn new(per_event: u32) -> Pacing {
        let per_event = per_event.max(1);
        Pacing { per_event, left: per_event }
    }

    /// Input arrived: a new event, a new budget.
    pub fn start_event(&mut self) {
        self.left = self.per_event;
    }

    /// A request has run; `more_input` says whether bytes are left behind it. True when
    /// the connection must yield to the others before going on (counted as memcached
    /// counts it in `conn_yields`).
    pub fn request_done(&mut self, core: &Core, more_input: bool) -> bool {
        self.left -= 1;
        if self.left > 0 || !more_input {
            return false;
        }
        core.stats().commands.conn_yields.incr();
        self.left = self.per_event;
        true
    }
}

/// Reads from `stream`; with an idle timeout, gives up (None) once the connection has
/// been idle for more than `idle_timeout` seconds since `last_cmd` (server clock), and
/// counts the kick. Without one, an ordinary read.
pub async fn read_or_idle(
    stream: &mut RingStream,
    buf: &mut [u8],
    core: &Core,
    last_cmd: u32,
) -> Option<io::Result<usize>> {
    let idle_timeout = core.shared.config.idle_timeout;
    if idle_timeout == 0 {
        return Some(stream.recv(buf).await);
    }
    let read = async { Some(stream.recv(buf).await) };
    let kicker = async {
        loop {
            // memcached's kicker looks about once a second; so does this one.
            glommio::timer::sleep(Duration::from_millis(250)).await;
            if core.shared.clock.now().saturating_sub(last_cmd) > idle_timeout {
                core.stats().commands.idle_kicks.incr();
                return None;
            }
        }
    };
    futures_lite::future::or(read, kicker).await
}
