//! Read readiness for one executor's connections from one edge-triggered epoll set.
//!
//! Why not glommio's reads: each one arms a one-shot io_uring poll, and after every
//! successful `recv` glommio arms another ("early poll") and flushes the ring. At
//! pipeline 1 that made mcbench cost ~20% more CPU per request than memcaslap's epoll
//! loop (poll arming, its completion's task work, and failed `recv`s). Here a socket is
//! added to the epoll set once; a single driver task asks epoll which sockets got data
//! and wakes their connection tasks, so a request costs one `send`, one `recv` and a
//! share of one `epoll_wait`, as in an epoll client. glommio still runs the tasks,
//! connects, writes and timers.
//!
//! The driver blocks in `epoll_wait` unless a task it woke has not run yet (then it
//! yields to it first); it sleeps until data comes, the earliest deadline a task waits
//! for (open-loop send times: nanosecond timeouts through `epoll_pwait2`), or
//! `MAX_BLOCK`, so that what glommio itself waits for (its timers: progress ticks,
//! reconnect back-off; connects; a write to a full socket) is at most that late.

use rustix::event::epoll;
use rustix::event::Timespec;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Longest the driver blocks, so that glommio timers it cannot see still run.
const MAX_BLOCK: Duration = Duration::from_millis(2);
/// The driver is always runnable, so glommio would leave its task queue, and look at
/// its own rings (connects, timers, a write to a full socket), only when its preempt
/// timer fires: 100 ms by default, which made every connect take 100 ms. Executors
/// that run a driver are built with this instead.
pub const GLOMMIO_PREEMPT: Duration = MAX_BLOCK;
const EVENTS: usize = 256;
/// Driver turns that skip epoll while a woken task has not run; then it peeks anyway.
const MAX_SKIPS: u32 = 32;

#[derive(Default)]
struct Entry {
    in_use: bool,
    /// Data arrived since the owner last looked (edge-triggered: one event per arrival).
    ready: bool,
    /// The owner is parked in `wait` (counted in `Poller::parked`).
    parked: bool,
    /// The driver woke the owner, which has not looked yet (counted in `Poller::woken`).
    woken: bool,
    waker: Option<Waker>,
    deadline: Option<Instant>,
}

/// One executor's epoll set and the connection tasks parked on it.
pub struct Poller {
    epoll: OwnedFd,
    entries: RefCell<Vec<Entry>>,
    /// (deadline, token) of parked waits; stale ones are skipped when they come up.
    timers: RefCell<BinaryHeap<Reverse<(Instant, usize)>>>,
    /// Tasks parked in `wait`, and tasks woken by the driver that have not run since.
    parked: Cell<usize>,
    woken: Cell<usize>,
    skipped: Cell<u32>,
    /// Counters for tests and profiling: driver turns, and turns that blocked.
    pub turns: Cell<u64>,
    pub blocked: Cell<u64>,
}

/// A registered socket; deregistered (and its slot freed) on drop.
pub struct Registration {
    poller: Rc<Poller>,
    token: usize,
}

impl Poller {
    pub fn new() -> std::io::Result<Rc<Poller>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Rc::new(Poller {
            epoll,
            entries: RefCell::new(Vec::new()),
            timers: RefCell::new(BinaryHeap::new()),
            parked: Cell::new(0),
            woken: Cell::new(0),
            skipped: Cell::new(0),
            turns: Cell::new(0),
            blocked: Cell::new(0),
        }))
    }

    /// Adds `fd` to the set. Its first `wait` returns at once (data may be there).
    pub fn register(self: &Rc<Self>, fd: impl AsFd) -> std::io::Result<Registration> {
        let mut entries = self.entries.borrow_mut();
        let token = match entries.iter().position(|e| !e.in_use) {
            Some(t) => t,
            None => {
                entries.push(Entry::default());
                entries.len() - 1
            }
        };
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token as u64),
            flags,
        )?;
        entries[token] = Entry {
            in_use: true,
            ready: true,
            ..Entry::default()
        };
        Ok(Registration {
            poller: self.clone(),
            token,
        })
    }

    /// Wakes the parked owner of `token`, if any.
    fn wake(&self, e: &mut Entry) {
        if e.parked {
            e.parked = false;
            e.deadline = None;
            self.parked.set(self.parked.get() - 1);
            e.woken = true;
            self.woken.set(self.woken.get() + 1);
            if let Some(w) = e.waker.take() {
                w.wake();
            }
        }
    }

    /// One look at the epoll set: blocks unless a task it woke has yet to run.
    /// Returns how many sockets became ready.
    fn turn(&self, events: &mut Vec<epoll::Event>) -> usize {
        self.turns.set(self.turns.get() + 1);
        let block = self.woken.get() == 0;
        if !block && self.skipped.get() < MAX_SKIPS {
            // Let the tasks just woken run first, so that one epoll_wait collects what
            // arrived meanwhile instead of finding nothing.
            self.skipped.set(self.skipped.get() + 1);
            return 0;
        }
        self.skipped.set(0);
        let now = Instant::now();
        let timeout = if block {
            let next = self.timers.borrow().peek().map(|Reverse((t, _))| *t);
            let d = next.map_or(MAX_BLOCK, |t| {
                t.saturating_duration_since(now).min(MAX_BLOCK)
            });
            self.blocked.set(self.blocked.get() + 1);
            d
        } else {
            Duration::ZERO
        };
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        events.clear();
        // EINTR or anything else: nothing became ready this turn.
        let _ = epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(events),
            Some(&ts),
        );
        let mut entries = self.entries.borrow_mut();
        for ev in events.iter() {
            if let Some(e) = entries.get_mut(ev.data.u64() as usize) {
                if e.in_use {
                    e.ready = true;
                    self.wake(e);
                }
            }
        }
        let now = Instant::now();
        let mut timers = self.timers.borrow_mut();
        while let Some(&Reverse((t, token))) = timers.peek() {
            if t > now {
                break;
            }
            timers.pop();
            if let Some(e) = entries.get_mut(token) {
                if e.deadline.is_some_and(|d| d <= now) {
                    self.wake(e);
                }
            }
        }
        events.len()
    }

    /// The driver: runs for the executor's life (spawn it detached).
    pub async fn drive(self: Rc<Self>) {
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            self.turn(&mut events);
            futures_lite::future::yield_now().await;
        }
    }
}

impl Registration {
    /// Waits until data may be there to read (true), or until `deadline` (false).
    pub fn wait(&self, deadline: Option<Instant>) -> Wait<'_> {
        Wait {
            reg: self,
            deadline,
        }
    }

    /// Marks the socket as possibly having more data (the last read filled the buffer).
    pub fn set_ready(&self) {
        if let Some(e) = self.poller.entries.borrow_mut().get_mut(self.token) {
            e.ready = true;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The socket leaves the epoll set when it is closed; an event already collected
        // for it finds its slot free (or reused, where it is a harmless spurious wake).
        let mut entries = self.poller.entries.borrow_mut();
        if let Some(e) = entries.get_mut(self.token) {
            if e.parked {
                self.poller.parked.set(self.poller.parked.get() - 1);
            }
            if e.woken {
                self.poller.woken.set(self.poller.woken.get() - 1);
            }
            *e = Entry::default();
        }
    }
}

pub struct Wait<'a> {
    reg: &'a Registration,
    deadline: Option<Instant>,
}

impl Future for Wait<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let p = &self.reg.poller;
        let mut entries = p.entries.borrow_mut();
        let Some(e) = entries.get_mut(self.reg.token) else {
            return Poll::Ready(true);
        };
        if e.woken {
            e.woken = false;
            p.woken.set(p.woken.get() - 1);
        }
        if e.ready {
            e.ready = false;
            if e.parked {
                e.parked = false;
                p.parked.set(p.parked.get() - 1);
            }
            return Poll::Ready(true);
        }
        if self.deadline.is_some_and(|d| d <= Instant::now()) {
            if e.parked {
                e.parked = false;
                p.parked.set(p.parked.get() - 1);
            }
            return Poll::Ready(false);
        }
        if !e.parked {
            e.parked = true;
            p.parked.set(p.parked.get() + 1);
            if let Some(d) = self.deadline {
                if e.deadline != Some(d) {
                    p.timers.borrow_mut().push(Reverse((d, self.reg.token)));
                }
            }
            e.deadline = self.deadline;
        }
        e.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let p = &self.reg.poller;
        if let Some(e) = p.entries.borrow_mut().get_mut(self.reg.token) {
            if e.parked {
                e.parked = false;
                e.waker = None;
                e.deadline = None;
                p.parked.set(p.parked.get() - 1);
            }
            if e.woken {
                e.woken = false;
                p.woken.set(p.woken.get() - 1);
            }
        }
    }
}

#[cfg(test)]
#[path = "poller_tests.rs"]
mod tests;
