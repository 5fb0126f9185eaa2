//! Client sockets, through the executor's io_uring only (vendored glommio, patch 10 in
//! `vendor/glommio/PATCHES.md`): one multishot receive per socket into the executor's
//! provided-buffer ring, replies as send SQEs that go to the kernel with the executor's
//! next `io_uring_enter` (with every other reply of its turn), accepts multishot.
//! No `recv`, `send`, `accept` or `epoll_wait` system call is made for a client.
//!
//! Back-pressure: a connection has at most one reply buffer in flight and waits for it
//! before sending the next (`Connection::flush`); bytes received and not yet taken are
//! bounded per socket (glommio's `RECV_LIMIT`, 256 KiB), past which the receive is
//! cancelled and the client's further bytes wait in its socket.

pub use glommio::net::{RingListener, RingStream};

/// Whether other connections were woken for data and have not run yet (see
/// `Connection::run_round`: a lone get yields to them only then).
pub fn others_woken() -> bool {
    glommio::net::woken_readers() > 0
}
