// memcached-rs patch 10: socket I/O through the executor's main ring.
//
// Multishot receives into a provided-buffer ring, sends queued as SQEs and
// submitted with the executor's turn, and multishot accepts. Their completions
// are reaped with the main ring's others (`SleepableRing::consume_one_event`)
// and handed to the socket's state here, not through glommio's `Source`s (a
// source completes once; these ops complete many times). Their user_data has
// the top bit set (`NET_TAG`), a generation and a slot in `NetOps::ops`.
// See PATCHES.md.

use std::{
    any::Any,
    cell::RefCell,
    collections::VecDeque,
    io,
    os::unix::io::RawFd,
    rc::Rc,
    task::Waker,
};

use super::uring::{net_descriptor, NetSqe, ReactorQueue};

mod bufring;

use bufring::BufRing;
pub(crate) use bufring::BGID;

pub(crate) const NET_TAG: u64 = 1 << 63;
const CQE_F_BUFFER: u32 = 1 << 0;
const CQE_F_MORE: u32 = 1 << 1;

/// Bytes received for a socket and not yet taken by its task past which its
/// multishot receive is cancelled: a client that sends and never reads its replies
/// (its task is stuck sending) leaves the rest in its socket, where TCP's window
/// stops it, instead of in our memory. Re-armed once the task took half of it.
pub const RECV_LIMIT: usize = 256 * 1024;

impl RecvState {
    pub(crate) fn new(fd: RawFd) -> RecvState {
        RecvState { fd, ..Default::default() }
    }
}

impl AcceptState {
    pub(crate) fn new(fd: RawFd) -> AcceptState {
        AcceptState { fd, ..Default::default() }
    }
}

/// A multishot receive's state, shared by the socket's stream and (while armed) the
/// op table.
#[derive(Default)]
pub(crate) struct RecvState {
    pub(crate) fd: RawFd,
    /// Bytes copied out of provided buffers when the ring ran dry (see `reclaim`);
    /// they come before `chunks`.
    spill: Vec<u8>,
    spill_at: usize,
    /// Provided buffers with received bytes, in order: (buffer id, length).
    chunks: VecDeque<(u16, u32)>,
    /// Bytes of the first chunk already taken.
    offset: usize,
    /// Bytes received and not yet taken.
    queued: usize,
    /// user_data of the multishot receive in the kernel.
    armed: Option<u64>,
    cancelling: bool,
    eof: bool,
    error: Option<i32>,
    waker: Option<Waker>,
    /// Woken for data and not run since: counted in `NetOps::woken_readers`.
    woken: bool,
    /// In `NetOps::holders`.
    holding: bool,
    closed: bool,
}

/// A buffer being sent, and how to see its bytes (its type is the caller's, who gets
/// it back for reuse).
pub(crate) struct SendBuf {
    pub(crate) buf: Box<dyn Any>,
    bytes: fn(&dyn Any) -> &[u8],
}

impl SendBuf {
    pub(crate) fn new<B: AsRef<[u8]> + 'static>(buf: B) -> SendBuf {
        fn bytes_of<B: AsRef<[u8]> + 'static>(a: &dyn Any) -> &[u8] {
            a.downcast_ref::<B>().expect("the type it was made with").as_ref()
        }
        SendBuf { buf: Box::new(buf), bytes: bytes_of::<B> }
    }

    fn bytes(&self) -> &[u8] {
        (self.bytes)(&*self.buf)
    }
}

/// A send in flight, with the buffer it sends from.
pub(crate) struct SendState {
    pub(crate) fd: RawFd,
    buf: Option<SendBuf>,
    sent: usize,
    pub(crate) in_flight: Option<u64>,
    pub(crate) error: Option<i32>,
    pub(crate) waker: Option<Waker>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct AcceptState {
    pub(crate) fd: RawFd,
    pub(crate) accepted: VecDeque<Result<RawFd, i32>>,
    armed: Option<u64>,
    pub(crate) waker: Option<Waker>,
    closed: bool,
}

enum Op {
    Recv(Rc<RefCell<RecvState>>),
    Send(Rc<RefCell<SendState>>),
    Accept(Rc<RefCell<AcceptState>>),
}

struct Slot {
    generation: u32,
    op: Option<Op>,
}

/// One executor's socket ops on its main ring.
pub(crate) struct NetOps {
    queue: ReactorQueue,
    ring_fd: RawFd,
    bufring: Option<BufRing>,
    ops: Vec<Slot>,
    free: Vec<u32>,
    /// Readers woken for new data whose tasks have not run yet.
    pub(crate) woken_readers: usize,
    /// Receives holding provided buffers: where to reclaim from when the ring runs dry.
    holders: Vec<Rc<RefCell<RecvState>>>,
    /// `holders` is pruned of sockets holding nothing when it grows to this.
    holders_pruned_at: usize,
}

impl NetOps {
    pub(crate) fn new(queue: ReactorQueue, ring_fd: RawFd) -> NetOps {
        NetOps { queue, ring_fd, bufring: None, ops: Vec::new(), free: Vec::new(), woken_readers: 0, holders: Vec::new(), holders_pruned_at: 64 }
    }

    /// Registers the buffer ring on first use (so executors that never receive this
    /// way do not hold its memory).
    pub(crate) fn ensure_bufring(&mut self) -> io::Result<()> {
        if self.bufring.is_none() {
            self.bufring = Some(BufRing::new(self.ring_fd)?);
        }
        Ok(())
    }

    fn alloc(&mut self, op: Op) -> u64 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.ops.push(Slot { generation: 0, op: None });
                (self.ops.len() - 1) as u32
            }
        };
        let s = &mut self.ops[slot as usize];
        s.generation = s.generation.wrapping_add(1) & 0x7fff_ffff;
        s.op = Some(op);
        NET_TAG | (s.generation as u64) << 32 | slot as u64
    }

    fn lookup(&self, user_data: u64) -> Option<usize> {
        let slot = (user_data & 0xffff_ffff) as usize;
        let generation = ((user_data >> 32) & 0x7fff_ffff) as u32;
        match self.ops.get(slot) {
            Some(s) if s.generation == generation && s.op.is_some() => Some(slot),
            _ => None,
        }
    }

    fn release(&mut self, slot: usize) {
        self.ops[slot].op = None;
        self.free.push(slot as u32);
    }

    fn push(&self, sqe: NetSqe, fd: RawFd, user_data: u64) {
        self.queue.borrow_mut().submissions.push_back(net_descriptor(sqe, fd, user_data));
    }

    fn cancel(&self, user_data: u64) {
        self.push(NetSqe::Cancel(user_data), -1, 0);
    }

    // ---- receive ----

    pub(crate) fn arm_recv(&mut self, state: &Rc<RefCell<RecvState>>) {
        let fd = state.borrow().fd;
        let user_data = self.alloc(Op::Recv(state.clone()));
        state.borrow_mut().armed = Some(user_data);
        self.push(NetSqe::RecvMulti, fd, user_data);
    }

    fn maybe_rearm(&mut self, state: &Rc<RefCell<RecvState>>) {
        let wants = {
            let s = state.borrow();
            s.armed.is_none() && !s.closed && !s.eof && s.error.is_none() && s.queued < RECV_LIMIT / 2
        };
        if wants {
            self.arm_recv(state);
        }
    }

    /// Copies up to `buf.len()` received bytes into `buf`, gives fully taken buffers
    /// back to the ring. Returns None if nothing is there (the caller then checks
    /// for the end or waits).
    pub(crate) fn take(&mut self, state: &Rc<RefCell<RecvState>>, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let mut s = state.borrow_mut();
        if std::mem::take(&mut s.woken) {
            self.woken_readers -= 1;
        }
        if s.queued == 0 {
            if let Some(e) = s.error.take() {
                return Some(Err(io::Error::from_raw_os_error(e)));
            }
            if s.eof {
                return Some(Ok(0));
            }
            drop(s);
            self.maybe_rearm(state);
            return None;
        }
        let mut n = 0;
        if s.spill_at < s.spill.len() {
            let k = (s.spill.len() - s.spill_at).min(buf.len());
            buf[..k].copy_from_slice(&s.spill[s.spill_at..s.spill_at + k]);
            s.spill_at += k;
            n += k;
            if s.spill_at == s.spill.len() {
                s.spill.clear();
                s.spill_at = 0;
                if s.spill.capacity() > 64 * 1024 {
                    s.spill = Vec::new();
                }
            }
        }
        let ring = self.bufring.as_mut().expect("receives need the buffer ring");
        while n < buf.len() {
            let Some(&(bid, len)) = s.chunks.front() else { break };
            let from = s.offset;
            let k = (len as usize - from).min(buf.len() - n);
            buf[n..n + k].copy_from_slice(ring.bytes(bid, from, from + k));
            n += k;
            if from + k == len as usize {
                s.chunks.pop_front();
                s.offset = 0;
                ring.give_back(bid);
            } else {
                s.offset = from + k;
            }
        }
        s.queued -= n;
        drop(s);
        self.maybe_rearm(state);
        Some(Ok(n))
    }

    pub(crate) fn register_reader(&mut self, state: &Rc<RefCell<RecvState>>, waker: &Waker) {
        let mut s = state.borrow_mut();
        match &s.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => s.waker = Some(waker.clone()),
        }
    }

    pub(crate) fn close_recv(&mut self, state: &Rc<RefCell<RecvState>>) {
        let mut s = state.borrow_mut();
        s.closed = true;
        s.waker = None;
        if std::mem::take(&mut s.woken) {
            self.woken_readers -= 1;
        }
        if let Some(ring) = self.bufring.as_mut() {
            for (bid, _) in s.chunks.drain(..) {
                ring.give_back(bid);
            }
        }
        s.spill = Vec::new();
        s.queued = 0;
        if let (Some(user_data), false) = (s.armed, s.cancelling) {
            s.cancelling = true;
            self.cancel(user_data);
        }
    }

    /// Drops from `holders` the sockets whose tasks have taken all their buffers (or
    /// closed): amortized, so the list stays about the size of the live sockets.
    fn prune_holders(&mut self) {
        self.holders.retain(|state| {
            let mut s = state.borrow_mut();
            s.holding = !s.chunks.is_empty();
            s.holding
        });
        self.holders_pruned_at = 2 * self.holders.len() + 64;
    }

    /// The ring ran dry: copy every holder's received bytes out of its buffers and give
    /// them back. Only then can sockets whose tasks are not reading (stuck sending to a
    /// client that does not read) not starve the others of buffers.
    fn reclaim(&mut self) {
        let Some(ring) = self.bufring.as_mut() else { return };
        for state in self.holders.drain(..) {
            let mut s = state.borrow_mut();
            s.holding = false;
            let s = &mut *s;
            while let Some((bid, len)) = s.chunks.pop_front() {
                s.spill.extend_from_slice(ring.bytes(bid, s.offset, len as usize));
                s.offset = 0;
                ring.give_back(bid);
            }
        }
    }

    fn complete_recv(&mut self, slot: usize, state: Rc<RefCell<RecvState>>, res: i32, flags: u32) -> bool {
        let more = flags & CQE_F_MORE != 0;
        let mut s = state.borrow_mut();
        if res > 0 && flags & CQE_F_BUFFER != 0 {
            let bid = (flags >> 16) as u16;
            if let Some(ring) = self.bufring.as_mut() {
                ring.in_user += 1;
                if s.closed {
                    ring.give_back(bid);
                } else {
                    s.chunks.push_back((bid, res as u32));
                    s.queued += res as usize;
                    if !s.holding {
                        s.holding = true;
                        self.holders.push(state.clone());
                        if self.holders.len() >= self.holders_pruned_at {
                            drop(s);
                            self.prune_holders();
                            s = state.borrow_mut();
                        }
                    }
                }
            }
        } else if res == 0 {
            s.eof = true;
        } else if res < 0 && res != -libc::ENOBUFS && res != -libc::ECANCELED && !s.closed {
            s.error = Some(-res);
        }
        if !more {
            s.armed = None;
            s.cancelling = false;
            self.release(slot);
        } else if s.queued >= RECV_LIMIT && !s.cancelling && !s.closed {
            // Back-pressure: see RECV_LIMIT.
            s.cancelling = true;
            self.cancel(s.armed.expect("armed"));
        }
        let mut woke = false;
        if !s.closed && (s.queued > 0 || s.eof || s.error.is_some()) {
            if let Some(w) = s.waker.take() {
                if !s.woken {
                    s.woken = true;
                    self.woken_readers += 1;
                }
                w.wake();
                woke = true;
            }
        }
        drop(s);
        if res == -libc::ENOBUFS {
            self.reclaim();
        }
        if !more {
            self.maybe_rearm(&state);
        }
        woke
    }

    // ---- send ----

    pub(crate) fn new_send(fd: RawFd) -> SendState {
        SendState { fd, buf: None, sent: 0, in_flight: None, error: None, waker: None, closed: false }
    }

    /// Queues a send of all of `buf`; returns the buffer of the previous send (done).
    pub(crate) fn start_send(
        &mut self,
        state: &Rc<RefCell<SendState>>,
        buf: SendBuf,
    ) -> Option<SendBuf> {
        let mut s = state.borrow_mut();
        assert!(s.in_flight.is_none(), "one send at a time");
        let previous = s.buf.replace(buf);
        s.sent = 0;
        let data = s.buf.as_ref().unwrap().bytes();
        let (ptr, len) = (data.as_ptr(), data.len());
        if len == 0 {
            return previous;
        }
        let fd = s.fd;
        drop(s);
        let user_data = self.alloc(Op::Send(state.clone()));
        state.borrow_mut().in_flight = Some(user_data);
        self.push(NetSqe::Send(ptr, len), fd, user_data);
        previous
    }

    pub(crate) fn close_send(&mut self, state: &Rc<RefCell<SendState>>) {
        let mut s = state.borrow_mut();
        s.closed = true;
        s.waker = None;
        if let Some(user_data) = s.in_flight {
            self.cancel(user_data);
        }
    }

    fn complete_send(&mut self, slot: usize, state: Rc<RefCell<SendState>>, res: i32) -> bool {
        let mut s = state.borrow_mut();
        let len = s.buf.as_ref().map_or(0, |b| b.bytes().len());
        if res > 0 && !s.closed {
            s.sent += res as usize;
            if s.sent < len {
                // A short send: the rest, with the same op.
                let data = s.buf.as_ref().unwrap().bytes();
                let (ptr, rest) = (data[s.sent..].as_ptr(), len - s.sent);
                let (fd, user_data) = (s.fd, s.in_flight.expect("in flight"));
                self.push(NetSqe::Send(ptr, rest), fd, user_data);
                return false;
            }
        } else if res == 0 && len > 0 {
            s.error = Some(libc::EPIPE);
        } else if res < 0 {
            s.error = Some(-res);
        }
        s.in_flight = None;
        self.release(slot);
        if s.closed {
            s.buf = None;
        }
        match s.waker.take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }

    // ---- accept ----

    pub(crate) fn arm_accept(&mut self, state: &Rc<RefCell<AcceptState>>) {
        let fd = state.borrow().fd;
        let user_data = self.alloc(Op::Accept(state.clone()));
        state.borrow_mut().armed = Some(user_data);
        self.push(NetSqe::AcceptMulti, fd, user_data);
    }

    pub(crate) fn accept_armed(state: &Rc<RefCell<AcceptState>>) -> bool {
        state.borrow().armed.is_some()
    }

    pub(crate) fn close_accept(&mut self, state: &Rc<RefCell<AcceptState>>) {
        let mut s = state.borrow_mut();
        s.closed = true;
        s.waker = None;
        for fd in s.accepted.drain(..).flatten() {
            unsafe { libc::close(fd) };
        }
        if let Some(user_data) = s.armed {
            self.cancel(user_data);
        }
    }

    fn complete_accept(&mut self, slot: usize, state: Rc<RefCell<AcceptState>>, res: i32, flags: u32) -> bool {
        let mut s = state.borrow_mut();
        if res >= 0 {
            if s.closed {
                unsafe { libc::close(res) };
            } else {
                s.accepted.push_back(Ok(res));
            }
        } else if res != -libc::ECANCELED && !s.closed {
            s.accepted.push_back(Err(-res));
        }
        if flags & CQE_F_MORE == 0 {
            s.armed = None;
            self.release(slot);
        }
        match (s.accepted.is_empty(), s.waker.take()) {
            (false, Some(w)) => {
                w.wake();
                true
            }
            (_, w) => {
                s.waker = w;
                false
            }
        }
    }

    /// A completion of one of our ops. Returns whether a task was woken.
    pub(crate) fn complete(&mut self, user_data: u64, res: i32, flags: u32) -> bool {
        let Some(slot) = self.lookup(user_data) else {
            // A buffer for an op we no longer know of (cannot happen: ops are released
            // on their last completion); give it back all the same.
            if flags & CQE_F_BUFFER != 0 {
                if let Some(ring) = self.bufring.as_mut() {
                    ring.in_user += 1;
                    ring.give_back((flags >> 16) as u16);
                }
            }
            return false;
        };
        let op = match self.ops[slot].op.as_ref().expect("live op") {
            Op::Recv(s) => Op::Recv(s.clone()),
            Op::Send(s) => Op::Send(s.clone()),
            Op::Accept(s) => Op::Accept(s.clone()),
        };
        match op {
            Op::Recv(state) => self.complete_recv(slot, state, res, flags),
            Op::Send(state) => self.complete_send(slot, state, res),
            Op::Accept(state) => self.complete_accept(slot, state, res, flags),
        }
    }
}
