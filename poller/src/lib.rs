//! Read readiness for one glommio executor's sockets from one edge-triggered epoll set.
//! The server (its client connections) and mcbench (its connections to the servers)
//! both read through it.
//!
//! Why not glommio's reads: each arms a one-shot io_uring poll, and after every
//! successful `recv` glommio arms another ("early poll"). At pipeline 1 a request then
//! cost a poll request through the ring, its completion, its task work and a new glommio
//! source (an allocation) on the reading side. Measured: mcbench spent 1.16x memcaslap's
//! CPU per request that way (0.97x through this set), and the server 8.4 us per request
//! at 2 cores, pipeline 1 (7.5 us through this set). Here a socket joins the epoll set
//! once; a driver task asks epoll (without blocking) which sockets got data and wakes
//! their tasks, so a request costs one `send`, one `recv` and a share of one
//! `epoll_wait`, as in memcached's own event loop, and data arriving costs the sender
//! only epoll's callback.
//!
//! When nothing is ready the driver awaits the epoll fd itself through glommio
//! (`glommio::net::wait_readable`, vendored patch 8): the executor parks in its ring
//! as usual, with its timers and other I/O, and wakes when any socket gets data.

use rustix::event::epoll;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

const EVENTS: usize = 256;

struct Entry {
    /// Data may be there: an event came (one per arrival, edge-triggered) or the last
    /// read filled its buffer, and the owner has not looked since.
    ready: bool,
    /// The peer hung up (or the socket failed): ready for good. An edge-triggered set
    /// reports data and a FIN that arrive together as one event, and the read that takes
    /// the data does not see the end; only the next read does, and no event comes for it.
    hung_up: bool,
    /// Woken by the last look and not run since: counted in `Poller::woken`.
    woken: bool,
    waker: Option<Waker>,
}

/// One executor's epoll set and the tasks waiting on its sockets.
pub struct Poller {
    epoll: OwnedFd,
    /// By token (the epoll event's data): a slab, so that registering is O(1) with tens
    /// of thousands of connections.
    entries: RefCell<Slab<Entry>>,
    /// Owners woken for new data whose tasks have not looked yet.
    woken: Cell<usize>,
}

/// A socket in the set; its slot is freed on drop (the kernel drops the socket from the
/// set when it is closed).
pub struct Registration {
    poller: Rc<Poller>,
    token: usize,
}

impl Poller {
    pub fn new() -> std::io::Result<Rc<Poller>> {
        Ok(Rc::new(Poller {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            entries: RefCell::new(Slab::new()),
            woken: Cell::new(0),
        }))
    }

    /// Adds `fd` to the set. It starts ready: data may already be there.
    pub fn register(self: &Rc<Self>, fd: impl AsFd) -> std::io::Result<Registration> {
        let mut entries = self.entries.borrow_mut();
        let slot = entries.vacant_entry();
        let token = slot.key();
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token as u64),
            flags,
        )?;
        slot.insert(Entry {
            ready: true,
            hung_up: false,
            woken: false,
            waker: None,
        });
        Ok(Registration {
            poller: self.clone(),
            token,
        })
    }

    /// Collects what epoll has ready, without blocking; marks and wakes the owners.
    /// Returns how many events came.
    fn collect(&self, events: &mut Vec<epoll::Event>) -> usize {
        events.clear();
        // EINTR or anything else: nothing became ready this time.
        let _ = epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(events),
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        );
        let mut entries = self.entries.borrow_mut();
        for ev in events.iter() {
            // A slot freed (or reused) since is a harmless spurious wake.
            if let Some(e) = entries.get_mut(ev.data.u64() as usize) {
                e.ready = true;
                let ends = epoll::EventFlags::RDHUP | epoll::EventFlags::HUP | epoll::EventFlags::ERR;
                let flags = ev.flags; // a copy: the event struct is packed
                e.hung_up |= flags.intersects(ends);
                if let Some(w) = e.waker.take() {
                    if !e.woken {
                        e.woken = true;
                        self.woken.set(self.woken.get() + 1);
                    }
                    w.wake();
                }
            }
        }
        events.len()
    }

    /// Whether other sockets' owners were woken for data and have not run yet: a task
    /// that could wait for something it started (a prefetch) yields only then, as
    /// yielding with nobody to run in between only delays its reply.
    pub fn others_woken(&self) -> bool {
        self.woken.get() > 0
    }

    /// The driver: runs for the executor's life (spawn it detached). It looks, lets the
    /// tasks it woke run (and send), then awaits the epoll fd: a poll of an epoll fd
    /// that has events ready completes at once, so events that came meanwhile are not
    /// missed, and an idle executor goes to sleep without a last `epoll_wait` that
    /// would find nothing (at low load that was a syscall per request).
    pub async fn drive(self: Rc<Self>) {
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            if self.collect(&mut events) == events.capacity() {
                // A full look: more may be waiting than one look takes.
                futures_lite::future::yield_now().await;
                continue;
            }
            if glommio::net::wait_readable(self.epoll.as_raw_fd()).await.is_err() {
                // Not expected; do not spin on it.
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

impl Registration {
    /// Ready (and no longer marked) if data may be there to read; else the task is
    /// woken when some comes.
    pub fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut entries = self.poller.entries.borrow_mut();
        let Some(e) = entries.get_mut(self.token) else {
            return Poll::Ready(());
        };
        if std::mem::take(&mut e.woken) {
            self.poller.woken.set(self.poller.woken.get() - 1);
        }
        if e.ready {
            e.ready = e.hung_up;
            e.waker = None;
            return Poll::Ready(());
        }
        match &e.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Reads what `socket` (the one registered) has, once the set says it may have some:
    /// a non-blocking `recv` into `buf`, or Pending with the task's waker registered.
    pub fn poll_recv(&self, cx: &Context<'_>, socket: impl AsFd, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        // Marked ready but nothing to read is a spurious wake (an earlier read took the
        // data this event announced): look again, which registers the waker.
        while self.poll_ready(cx).is_ready() {
            match rustix::net::recv(&socket, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => {
                    if n == buf.len() && n > 0 {
                        // The buffer was the limit: more may be there, and an
                        // edge-triggered set says nothing of bytes already arrived.
                        self.set_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(rustix::io::Errno::AGAIN) => {}
                Err(rustix::io::Errno::INTR) => self.set_ready(),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        Poll::Pending
    }

    /// Marks the socket as possibly holding more (the last read filled the buffer, and
    /// an edge-triggered set will not say so again).
    pub fn set_ready(&self) {
        if let Some(e) = self.poller.entries.borrow_mut().get_mut(self.token) {
            e.ready = true;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(e) = self.poller.entries.borrow_mut().try_remove(self.token) {
            if e.woken {
                self.poller.woken.set(self.poller.woken.get() - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
