//! The server side of memcached's `watch`: a watching connection streams its lines
//! until the client leaves, connections announce themselves to `connevents` watchers,
//! and the shards report their evictions to `evictions` watchers. The lines and the
//! watchers' buffers are in `crate::observe::watch`.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use super::core::{Core, Shared};
use super::forward::ConnInfo;
use super::stream::Stream;
use crate::observe::watch::Watcher;
use crate::protocol::watch_lines::{self, CONNEVENTS, EVICTIONS};
use crate::store::{Evicted, EvictionLog};
use crate::protocol::{answer, Answer, Form};

/// How often a watcher's buffer is sent (memcached's logger thread polls its
/// watchers on a similar scale).
const SEND_EVERY: Duration = Duration::from_millis(10);

/// Runs `watch` on this connection: `None` if there were too many watchers (the
/// connection carries on, as memcached's does), else how the stream ended.
pub async fn watch(core: &Core, stream: &mut Stream, kinds: u16) -> Option<std::io::Result<()>> {
    let watchers = &core.shared.observe.watch;
    let Some(watcher) = watchers.add(kinds) else {
        let mut out = BytesMut::new();
        answer(Form::TEXT, Answer::WatchTooMany, &mut out);
        return stream.send_all(out.freeze()).await.err().map(Err);
    };
    let ended = stream_lines(core, stream, &watcher).await;
    watchers.remove(&watcher);
    Some(ended)
}

/// `OK`, then whatever the watcher's buffer holds every SEND_EVERY. What the client
/// sends is read and ignored; its end ends the stream. A client that does not read
/// holds this task in its write, never the executor: its buffer fills and it loses
/// lines (`crate::observe::watch`).
async fn stream_lines(core: &Core, stream: &mut Stream, watcher: &Watcher) -> std::io::Result<()> {
    stream.send_all(watch_lines::WATCH_OK).await?;
    let mut lines = Vec::new();
    let mut ignored = [0u8; 1024];
    loop {
        if core.shared.shutting_down() {
            return Ok(());
        }
        let read = async { Some(stream.recv(&mut ignored).await) };
        let timeout = async {
            glommio::timer::sleep(SEND_EVERY).await;
            None
        };
        match futures_lite::future::or(read, timeout).await {
            Some(Ok(0)) => return Ok(()),
            Some(Err(e)) => return Err(e),
            _ => {}
        }
        watcher.take(&mut lines);
        if !lines.is_empty() {
            stream.send_all(std::mem::take(&mut lines)).await?;
        }
    }
}

/// memcached's `rip`, `rport` and `transport` of a connection (`tcp:ADDR:PORT` or
/// `unix:PATH` in `ConnInfo`).
fn endpoint(addr: &str) -> (String, u16, &'static str) {
    match addr.strip_prefix("tcp:").and_then(|a| a.rsplit_once(':')) {
        Some((ip, port)) => (ip.trim_start_matches('[').trim_end_matches(']').to_string(), port.parse().unwrap_or(0), "tcp"),
        None => ("unix".to_string(), 0, "local"),
    }
}

/// A new client connection, for `connevents` watchers.
pub fn conn_new(core: &Core, info: &ConnInfo) {
    let watchers = &core.shared.observe.watch;
    if watchers.wants(CONNEVENTS) {
        let (rip, rport, transport) = endpoint(&info.addr);
        watchers.emit(CONNEVENTS, |out, ts, gid| watch_lines::conn_new(out, ts, gid, &rip, rport, transport, info.fd));
    }
}

/// A client connection closed: by the client or `quit` (`normal`), an error, or
/// shutdown.
pub fn conn_close(core: &Core, info: &ConnInfo, clean: bool) {
    let watchers = &core.shared.observe.watch;
    if watchers.wants(CONNEVENTS) {
        let (rip, rport, transport) = endpoint(&info.addr);
        let reason = if core.shared.shutting_down() { "shutdown" } else if clean { "normal" } else { "error" };
        watchers.emit(CONNEVENTS, |out, ts, gid| watch_lines::conn_close(out, ts, gid, &rip, rport, transport, reason, info.fd));
    }
}

/// A shard's evictions, as `evictions` watchers' lines (memcached's `LOGGER_EVICTION`).
/// The shard asks `wants` once per segment it evicts from: one relaxed load.
pub struct EvictionLines(pub Arc<Shared>);

impl EvictionLog for EvictionLines {
    fn wants(&self) -> bool {
        self.0.observe.watch.wants(EVICTIONS)
    }

    fn evicted(&self, e: &Evicted) {
        self.0.observe.watch.emit(EVICTIONS, |out, ts, gid| {
            watch_lines::eviction(out, ts, gid, e.key, e.fetched, e.ttl, e.idle, e.class, e.size)
        });
    }
}
