//! A client socket read through the executor's epoll set (the `poller` crate: one
//! `recv` per request and a share of one `epoll_wait`, instead of glommio's io_uring poll
//! per read) and written with plain `send`: the `AsyncRead + AsyncWrite` a connection
//! serves. Only a send that finds the socket buffer full waits through glommio's ring.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use rustix::io::Errno;
use rustix::net::SendFlags;

use poller::{Poller, Registration};

type WriteWait = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// A connected, non-blocking stream socket (TCP or UNIX) and its place in the epoll set.
pub struct PolledStream<T: AsFd> {
    /// A send found the socket buffer full: the wait for room (rare, so boxed). First,
    /// so that it is dropped (its poll cancelled) before the socket closes.
    write_wait: Option<WriteWait>,
    registration: Registration,
    socket: T,
}

impl<T: AsFd> PolledStream<T> {
    /// `socket` must already be non-blocking.
    pub fn new(socket: T, poller: &Rc<Poller>) -> io::Result<Self> {
        let registration = poller.register(socket.as_fd())?;
        Ok(PolledStream { write_wait: None, registration, socket })
    }
}

impl<T: AsFd + Unpin> AsyncRead for PolledStream<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.registration.poll_recv(cx, &this.socket, buf)
    }
}

impl<T: AsFd + Unpin> AsyncWrite for PolledStream<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if let Some(wait) = this.write_wait.as_mut() {
                let waited = std::task::ready!(wait.as_mut().poll(cx));
                this.write_wait = None;
                waited?;
            }
            // NOSIGNAL: a client gone mid-reply is an EPIPE for this connection, not a
            // SIGPIPE for the process.
            match rustix::net::send(&this.socket, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(Errno::AGAIN) => {
                    let fd = this.socket.as_fd().as_raw_fd();
                    this.write_wait = Some(Box::pin(glommio::net::wait_writable(fd)));
                }
                Err(Errno::INTR) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends FIN; the socket itself closes when the stream is dropped.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Write).map_err(Into::into))
    }
}
