//! Forwarding requests to the core that owns their key, in batches.
//!
//! A request for a key another core owns joins that peer's pending batch. The batch is
//! shipped once per executor turn (a flusher task per peer, kicked by the first request,
//! yields once so every connection that runs this turn can add to it), as one message on
//! glommio's channel mesh. The owner runs the whole batch against its shard and sends one
//! batch of replies back; the origin hands each reply to the connection waiting for it.
//! One message each way per peer per turn, not one per request: a cross-thread wake costs
//! microseconds (see io-path-measurements.md). Buffers travel with the messages and come
//! back for reuse, so a steady stream of batches allocates nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::BytesMut;
use glommio::channels::channel_mesh::{Receivers, Senders};

use crate::commands::stats::{write_conn, ConnView};
use crate::commands::CoreOp;
use crate::protocol::{stat_sink, text_reply, Form, Keyed, Op};
use glommio::sync::Semaphore;
use slab::Slab;

/// Emptied batches kept for reuse hold at most this much in all, so a batch grown by
/// large values is dropped after use, and so are the extra batches of a burst (a few
/// per peer in flight are all a steady stream needs).
const KEEP_SPARE_BYTES: usize = 1 << 20;
/// A connection's mailbox keeps at most this much room between rounds: an idle
/// connection must not hold on to the large values it was once forwarded.
const MAILBOX_KEEP_BYTES: usize = 64 << 10;

/// What the owner is to do with a forwarded operation: a typed request, whose byte
/// fields (key, then value) are the op's bytes in the batch. Nothing is parsed again.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// A keyed request: its key is the first `key_len` bytes, its value the rest.
    /// `fd`: the client's socket, for `watch` lines.
    Keyed { op: Op, form: Form, key_len: u32, fd: i32 },
    /// A server-wide command's part on this core.
    Core { op: CoreOp, form: Form },
}

impl Work {
    /// The typed request back from the bytes it travelled with.
    pub fn keyed<'a>(op: Op, form: Form, key_len: u32, bytes: &'a [u8]) -> Keyed<'a> {
        let (key, value) = bytes.split_at(key_len as usize);
        Keyed { key, value, op, form }
    }
}

/// One operation of a batch: who waits for it, what to do, and its bytes (the request
/// going out, the reply coming back) in the batch's byte buffer.
#[derive(Clone, Copy, Debug)]
pub struct BatchOp {
    pub conn: u32,
    pub slot: u32,
    pub kind: Work,
    pub start: u32,
    pub len: u32,
}

/// Operations and their bytes.
#[derive(Default, Debug)]
pub struct Batch {
    pub ops: Vec<BatchOp>,
    pub bytes: BytesMut,
}

impl Batch {
    pub fn clear(&mut self) {
        self.ops.clear();
        self.bytes.clear();
    }

    pub fn bytes_of(&self, op: &BatchOp) -> &[u8] {
        &self.bytes[op.start as usize..(op.start + op.len) as usize]
    }

    /// Appends an op whose bytes `write` puts at the end of the buffer.
    pub fn push(&mut self, conn: u32, slot: u32, kind: Work, write: impl FnOnce(&mut BytesMut)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        let len = self.bytes.len() - start;
        self.ops.push(BatchOp { conn, slot, kind, start: start as u32, len: len as u32 });
    }
}

/// Origin → owner: requests, and an empty batch for the owner to reply into.
pub struct ToOwner {
    pub requests: Batch,
    pub spare: Batch,
}

/// Owner → origin: replies, and the request batch, emptied, back for reuse.
pub struct ToOrigin {
    pub replies: Batch,
    pub spare: Batch,
}

/// What `stats conns` shows of a connection.
#[derive(Default, Debug)]
pub struct ConnInfo {
    pub fd: i32,
    /// `tcp:ADDR:PORT` or `unix:PATH`, as memcached writes them.
    pub addr: String,
    pub listen_addr: String,
    /// Server clock time of the connection's last request.
    pub last_cmd: Cell<u32>,
}

/// Where a connection's forwarded replies land while it waits for them, and what
/// `stats conns` shows of it.
#[derive(Default)]
pub struct Mailbox {
    pub info: ConnInfo,
    replies: RefCell<BytesMut>,
    /// Reply byte ranges by slot (a slot per forwarded op of the current round).
    slots: RefCell<Vec<(u32, u32)>>,
    outstanding: Cell<usize>,
    waker: Cell<Option<Waker>>,
}

impl Mailbox {
    pub fn expect_one(&self) {
        self.outstanding.set(self.outstanding.get() + 1);
    }

    fn deliver(&self, slot: u32, reply: &[u8]) {
        let mut replies = self.replies.borrow_mut();
        let start = replies.len() as u32;
        replies.extend_from_slice(reply);
        let mut slots = self.slots.borrow_mut();
        let slot = slot as usize;
        if slots.len() <= slot {
            slots.resize(slot + 1, (0, 0));
        }
        slots[slot] = (start, reply.len() as u32);
        let left = self.outstanding.get() - 1;
        self.outstanding.set(left);
        if left == 0 {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    /// Waits until every forwarded op of this round has its reply.
    pub async fn all_delivered(&self) {
        std::future::poll_fn(|cx| {
            if self.outstanding.get() == 0 {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// The reply of `slot`, once delivered.
    pub fn with_reply<R>(&self, slot: u32, f: impl FnOnce(&[u8]) -> R) -> R {
        let (start, len) = self.slots.borrow().get(slot as usize).copied().unwrap_or((0, 0));
        f(&self.replies.borrow()[start as usize..(start + len) as usize])
    }

    pub fn clear(&self) {
        let mut replies = self.replies.borrow_mut();
        replies.clear();
        if replies.capacity() > MAILBOX_KEEP_BYTES {
            *replies = BytesMut::new();
        }
        self.slots.borrow_mut().clear();
    }
}

/// One executor's side of forwarding: a pending batch per peer and the mailboxes of
/// its connections.
pub struct Forwarder {
    me: usize,
    pending: Vec<RefCell<Batch>>,
    scheduled: Vec<Cell<bool>>,
    kick: Vec<Semaphore>,
    mailboxes: RefCell<Slab<Rc<Mailbox>>>,
    spares: RefCell<Vec<Batch>>,
    /// Byte capacity of `spares`.
    spare_bytes: Cell<usize>,
}

impl Forwarder {
    pub fn new(me: usize, peers: usize) -> Forwarder {
        Forwarder {
            me,
            pending: (0..peers).map(|_| RefCell::default()).collect(),
            scheduled: (0..peers).map(|_| Cell::new(false)).collect(),
            kick: (0..peers).map(|_| Semaphore::new(0)).collect(),
            mailboxes: RefCell::default(),
            spares: RefCell::default(),
            spare_bytes: Cell::new(0),
        }
    }

    pub fn register(&self, info: ConnInfo) -> (u32, Rc<Mailbox>) {
        let mailbox = Rc::new(Mailbox { info, ..Mailbox::default() });
        let id = self.mailboxes.borrow_mut().insert(mailbox.clone());
        (id as u32, mailbox)
    }

    pub fn unregister(&self, id: u32) {
        self.mailboxes.borrow_mut().try_remove(id as usize);
    }

    /// `stats conns` lines for this executor's connections.
    pub fn list_conns(&self, form: Form, out: &mut BytesMut, now: u32) {
        let mut sink = stat_sink(form, out);
        for (_, mailbox) in self.mailboxes.borrow().iter() {
            let info = &mailbox.info;
            let view = ConnView {
                fd: info.fd,
                addr: &info.addr,
                listen_addr: &info.listen_addr,
                secs_since_last_cmd: now.saturating_sub(info.last_cmd.get()),
            };
            write_conn(&mut sink, &view);
        }
    }

    /// Queues an op for `peer`; its reply arrives in the connection's mailbox.
    pub fn send(&self, peer: usize, conn: u32, slot: u32, kind: Work, write: impl FnOnce(&mut BytesMut)) {
        debug_assert_ne!(peer, self.me);
        self.pending[peer].borrow_mut().push(conn, slot, kind, write);
        if !self.scheduled[peer].replace(true) {
            self.kick[peer].signal(1);
        }
    }

    fn spare(&self) -> Batch {
        let batch = self.spares.borrow_mut().pop().unwrap_or_default();
        self.spare_bytes.set(self.spare_bytes.get() - batch.bytes.capacity());
        batch
    }

    fn recycle(&self, mut batch: Batch) {
        let kept = self.spare_bytes.get() + batch.bytes.capacity();
        if kept > KEEP_SPARE_BYTES {
            return; // give the memory back
        }
        batch.clear();
        self.spare_bytes.set(kept);
        self.spares.borrow_mut().push(batch);
    }

    /// Ships `peer`'s pending batch once per turn, for as long as the executor runs.
    pub async fn flush_loop(self: Rc<Self>, peer: usize, senders: Rc<Senders<ToOwner>>) {
        loop {
            if self.kick[peer].acquire(1).await.is_err() {
                return;
            }
            // Let every connection that is ready this turn add to the batch first.
            futures_lite::future::yield_now().await;
            self.scheduled[peer].set(false);
            let requests = std::mem::replace(&mut *self.pending[peer].borrow_mut(), self.spare());
            let message = ToOwner { requests, spare: self.spare() };
            // The peer is gone (shutting down): fail these ops rather than hang.
            if let Err(glommio::GlommioError::Closed(glommio::ResourceType::Channel(message))) =
                senders.send_to(peer, message).await
            {
                self.deliver_all(&message.requests, Some(text_reply::SHUTTING_DOWN));
            }
        }
    }

    /// Hands the replies of one batch to the connections waiting for them.
    fn deliver_all(&self, replies: &Batch, instead: Option<&[u8]>) {
        let mailboxes = self.mailboxes.borrow();
        for op in &replies.ops {
            if let Some(mailbox) = mailboxes.get(op.conn as usize) {
                mailbox.deliver(op.slot, instead.unwrap_or_else(|| replies.bytes_of(op)));
            }
        }
    }

    /// Receives reply batches from `peer` and delivers them. Never sends, so it always
    /// drains: owners blocked sending replies can always make progress.
    pub async fn reply_loop(self: Rc<Self>, peer: usize, receivers: Rc<Receivers<ToOrigin>>) {
        while let Ok(Some(message)) = receivers.recv_from(peer).await {
            self.deliver_all(&message.replies, None);
            self.recycle(message.replies);
            self.recycle(message.spare);
        }
    }
}

/// Runs the batches `peer` sends us with `run`, and sends each batch of replies back.
pub async fn serve_peer(
    peer: usize,
    receivers: Rc<Receivers<ToOwner>>,
    senders: Rc<Senders<ToOrigin>>,
    mut run: impl FnMut(&Batch, &mut Batch),
) {
    while let Ok(Some(ToOwner { mut requests, mut spare })) = receivers.recv_from(peer).await {
        spare.clear();
        run(&requests, &mut spare);
        requests.clear();
        if senders.send_to(peer, ToOrigin { replies: spare, spare: requests }).await.is_err() {
            return;
        }
    }
}
