// memcached-rs patch 16: waking a sleeping executor with IORING_OP_MSG_RING.
//
// Upstream wakes a sleeping executor by writing its eventfd: a `write` system call
// by the waker, then on the sleeper's side a chain of kernel hops (the eventfd's
// wait queue completes the READ armed on the latency ring, whose completion fires
// the poll that links the latency ring to the main ring, which posts the CQE the
// sleeper waits for), and on waking a new READ and a new link poll to arm, one SQE
// each per sleep. When the waker is itself an executor it can instead queue an
// IORING_OP_MSG_RING on its own main ring: submitted with the `io_uring_enter` its
// turn makes anyway, the kernel posts a CQE straight into the sleeper's main ring
// and wakes it; the eventfd READ and the link poll stay armed. Wakers that are not
// executors (the blocking thread pool, other threads) still write the eventfd.
//
// The wake is queued on this thread (`queue`) and turned into SQEs at the
// reactor's next flush (`drain`): before every poll of the rings and before the
// executor decides to sleep, which it does not while wakes are queued. A MSG_RING
// that fails (the target ring gone) falls back to the eventfd.
// See PATCHES.md.

use std::{cell::RefCell, os::unix::io::RawFd};

use super::netops::NET_TAG;

/// The user_data of the CQE a waker posts into the sleeper's main ring: tagged
/// like the socket ops (no `Source`), a slot no socket op ever has.
pub(crate) const WAKE_USER_DATA: u64 = NET_TAG | 0xffff_ffff;
/// The slot of the MSG_RING op's own completion on the waker's ring; the
/// generation bits carry the target's notifier id, for the eventfd fallback.
const SENT_SLOT: u64 = 0xffff_fffe;

thread_local! {
    /// Wakes queued by this thread: (notifier id, target main ring fd). `None` on
    /// threads that run no reactor; they write the eventfd.
    static PENDING: RefCell<Option<Vec<(usize, RawFd)>>> = const { RefCell::new(None) };
}

/// This thread runs a reactor: it may queue wakes from now on.
pub(crate) fn enable() {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            *p = Some(Vec::new());
        }
    });
}

/// This thread's reactor is going away: what is queued goes by eventfd, and so do
/// later wakes.
pub(crate) fn disable() {
    let queued = PENDING.try_with(|p| p.borrow_mut().take()).ok().flatten().unwrap_or_default();
    for (id, _) in queued {
        wake_by_eventfd(id);
    }
}

/// The way every wake went before this patch: write the executor's eventfd (if it
/// still exists). For wakes that cannot go by ring.
pub(crate) fn wake_by_eventfd(id: usize) {
    if let Some(n) = super::get_sleep_notifier_for(id) {
        super::write_eventfd(n.eventfd_fd());
    }
}

/// Queues a wake of the executor whose main ring is `ring_fd`. False if this thread
/// cannot (no reactor here): the caller writes the eventfd.
pub(crate) fn queue(id: usize, ring_fd: RawFd) -> bool {
    if ring_fd < 0 || id >= 1 << 31 {
        return false;
    }
    PENDING
        .try_with(|p| match p.try_borrow_mut() {
            Ok(mut p) => match p.as_mut() {
                Some(v) => {
                    if !v.iter().any(|&(i, _)| i == id) {
                        v.push((id, ring_fd));
                    }
                    true
                }
                None => false,
            },
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// Wakes queued and not yet turned into SQEs.
pub(crate) fn pending() -> usize {
    PENDING
        .try_with(|p| p.try_borrow().map(|p| p.as_ref().map_or(0, Vec::len)).unwrap_or(0))
        .unwrap_or(0)
}

/// Takes the queued wakes, each as the user_data of its MSG_RING op and the target
/// ring's fd. The list keeps its allocation; a wake `each` queued meanwhile (it
/// cannot borrow the list) would go by eventfd.
pub(crate) fn drain(mut each: impl FnMut(u64, RawFd)) {
    let _ = PENDING.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            for (id, fd) in p.iter_mut().flat_map(|v| v.drain(..)) {
                each(NET_TAG | (id as u64) << 32 | SENT_SLOT, fd);
            }
        }
    });
}

/// What a tagged completion on a main ring is, if it is one of ours.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Another executor woke us.
    Woken,
    /// Our MSG_RING to the executor with this notifier id completed with `res`.
    Sent { id: usize, res: i32 },
}

pub(crate) fn completion(user_data: u64, res: i32) -> Option<Completion> {
    if user_data == WAKE_USER_DATA {
        Some(Completion::Woken)
    } else if user_data & NET_TAG != 0 && user_data & 0xffff_ffff == SENT_SLOT {
        Some(Completion::Sent { id: ((user_data >> 32) & 0x7fff_ffff) as usize, res })
    } else {
        None
    }
}
