// memcached-rs patch 10: connected sockets and listeners whose I/O goes through the
// executor's main ring only. See PATCHES.md and `sys/netops.rs`.

use std::{
    cell::RefCell,
    future::poll_fn,
    io,
    os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd},
    rc::Rc,
    task::{Context, Poll},
};

use crate::{
    reactor::Reactor,
    sys::netops::{AcceptState, NetOps, RecvState, SendBuf, SendState},
};

fn reactor() -> Rc<Reactor> {
    crate::executor().reactor()
}

/// Makes the executor ready for [`RingStream`]s: registers its provided-buffer ring
/// (`IORING_REGISTER_PBUF_RING`, kernel 5.19). Call it on the executor's thread at
/// start to fail early and clearly where the kernel refuses.
pub fn prepare_ring_sockets() -> io::Result<()> {
    reactor().sys.net().borrow_mut().ensure_bufring()
}

/// Whether other sockets' tasks were woken for received data and have not run yet:
/// a task that could yield to let them start their work first does so only then.
pub fn woken_readers() -> usize {
    reactor().sys.net().borrow().woken_readers
}

/// A connected stream socket (TCP or UNIX) read with one multishot receive into the
/// executor's provided-buffer ring and written with send SQEs submitted with the
/// executor's turn. The socket should be blocking: the ring never blocks on it, and a
/// non-blocking one would make the kernel fail sends with EAGAIN instead of waiting
/// for room.
///
/// At most one send is in flight; [`RingStream::sent`] waits for it. Received bytes a
/// task has not taken are bounded by `RECV_LIMIT` (256 KiB): past it the receive is
/// cancelled, and re-armed when the task has taken half.
pub struct RingStream {
    fd: RawFd,
    reactor: Rc<Reactor>,
    recv: Rc<RefCell<RecvState>>,
    send: Rc<RefCell<SendState>>,
}

impl RingStream {
    /// Takes ownership of `fd` and arms its receive.
    pub fn new(fd: OwnedFd) -> io::Result<RingStream> {
        let reactor = reactor();
        let fd = fd.into_raw_fd();
        let recv = Rc::new(RefCell::new(RecvState::new(fd)));
        let send = Rc::new(RefCell::new(NetOps::new_send(fd)));
        {
            let mut net = reactor.sys.net().borrow_mut();
            if let Err(e) = net.ensure_bufring() {
                drop(net);
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                return Err(e);
            }
            net.arm_recv(&recv);
        }
        Ok(RingStream { fd, reactor, recv, send })
    }

    /// Received bytes into `buf` (as many as are there, up to its length), 0 at the
    /// end of the stream.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut net = self.reactor.sys.net().borrow_mut();
        match net.take(&self.recv, buf) {
            Some(result) => Poll::Ready(result),
            None => {
                net.register_reader(&self.recv, cx.waker());
                Poll::Pending
            }
        }
    }

    /// See [`RingStream::poll_recv`].
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Ready once no send is in flight; the error of the last one, if it failed.
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.send.borrow_mut();
        if s.in_flight.is_some() {
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match s.error.take() {
            Some(e) => Poll::Ready(Err(io::Error::from_raw_os_error(e))),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Waits until the last send is done (all its bytes in the socket, or failed).
    pub async fn sent(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_sent(cx)).await
    }

    /// Queues a send of all of `buf`, submitted with the executor's next turn; returns
    /// the previous send's buffer for reuse. Only when [`RingStream::sent`] is ready
    /// (panics otherwise).
    pub fn start_send<B: AsRef<[u8]> + 'static>(&mut self, buf: B) -> Option<B> {
        let previous = self.reactor.sys.net().borrow_mut().start_send(&self.send, SendBuf::new(buf));
        previous.and_then(|p| p.buf.downcast::<B>().ok().map(|b| *b))
    }

    /// Sends all of `buf` and waits until it is in the socket.
    pub async fn send_all<B: AsRef<[u8]> + 'static>(&mut self, buf: B) -> io::Result<()> {
        self.sent().await?;
        self.start_send(buf);
        self.sent().await
    }

    /// Sends FIN once the send in flight is done.
    pub async fn shutdown_write(&self) -> io::Result<()> {
        self.sent().await?;
        if unsafe { libc::shutdown(self.fd, libc::SHUT_WR) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl std::fmt::Debug for RingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingStream").field("fd", &self.fd).finish()
    }
}

impl AsRawFd for RingStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for RingStream {
    fn drop(&mut self) {
        {
            let mut net = self.reactor.sys.net().borrow_mut();
            net.close_recv(&self.recv);
            net.close_send(&self.send);
        }
        // Closed through the ring, after the cancellations queued above: an SQE still
        // queued for this fd must not meet a new socket that reused its number.
        self.reactor.sys.async_close(self.fd);
    }
}

/// A listening socket accepting with one multishot accept on the executor's ring.
/// Accepted sockets are close-on-exec and blocking (see [`RingStream`]).
pub struct RingListener {
    fd: RawFd,
    reactor: Rc<Reactor>,
    state: Rc<RefCell<AcceptState>>,
}

impl RingListener {
    /// Takes ownership of the listening socket `fd`.
    pub fn new(fd: OwnedFd) -> RingListener {
        let fd = fd.into_raw_fd();
        let state = Rc::new(RefCell::new(AcceptState::new(fd)));
        RingListener { fd, reactor: reactor(), state }
    }

    /// The next accepted connection, or the error an accept met.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        let mut net = self.reactor.sys.net().borrow_mut();
        let mut s = self.state.borrow_mut();
        if let Some(next) = s.accepted.pop_front() {
            return Poll::Ready(match next {
                Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(e) => Err(io::Error::from_raw_os_error(e)),
            });
        }
        s.waker = Some(cx.waker().clone());
        drop(s);
        if !NetOps::accept_armed(&self.state) {
            net.arm_accept(&self.state);
        }
        Poll::Pending
    }

    /// See [`RingListener::poll_accept`].
    pub async fn accept(&mut self) -> io::Result<OwnedFd> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl std::fmt::Debug for RingListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingListener").field("fd", &self.fd).finish()
    }
}

impl AsRawFd for RingListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for RingListener {
    fn drop(&mut self) {
        self.reactor.sys.net().borrow_mut().close_accept(&self.state);
        self.reactor.sys.async_close(self.fd);
    }
}
