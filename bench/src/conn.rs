//! One connection's state machine: fill the pipeline, send the batch in one write, read
//! into a reused buffer, check each reply against the request at the front of the
//! in-flight ring, record its latency, repeat. Nothing is allocated per request: the
//! ring's slots, the write batch and the read buffer are reused.

use crate::config::{Protocol, Settings};
use poller::Poller;
use crate::reply::{Checker, ErrKind, Parsed, Progress};
use crate::schedule::Schedule;
use crate::stats::ThreadStats;
use crate::workload::{value_flags, value_len, write_key, OpKind, Pattern, Workload};
use crate::link::{Link, Wait};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long replies still in flight are awaited after the last request was sent.
const DRAIN: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 64 * 1024;
/// A connection that cannot (re)connect for this long gives up.
const CONNECT_GIVE_UP: Duration = Duration::from_secs(5);

/// What the connections of one thread share.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub pattern: Arc<Pattern>,
    pub stats: RefCell<ThreadStats>,
    /// Nothing is sent before this (connections are made before it).
    pub start: Instant,
    /// Requests due before this are warm-up: not in the report.
    pub measure_start: Instant,
    /// No request is sent at or after this.
    pub end: Option<Instant>,
    /// Requests this thread may still send (--requests, and preload's "no limit").
    pub quota: Cell<u64>,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Time of the last reply, for --requests runs.
    pub last_reply: Cell<Option<Instant>>,
    /// This executor's read readiness: one epoll set for all its connections.
    pub poller: Rc<Poller>,
}

impl Shared {
    fn take_quota(&self) -> bool {
        let q = self.quota.get();
        if q == 0 {
            return false;
        }
        self.quota.set(q - 1);
        true
    }

    fn complete(&self, slot: &Slot, now: Instant, hits: u32, misses: u32, err: Option<ErrKind>) {
        let ns = now.saturating_duration_since(slot.due).as_nanos() as u64;
        let mut st = self.stats.borrow_mut();
        let st = &mut *st;
        let measured = slot.due >= self.measure_start;
        let mut sets = [&mut st.interval_counts, &mut st.counts].into_iter();
        let n = if measured { 2 } else { 1 };
        for c in sets.by_ref().take(n) {
            c.requests += 1;
            match slot.kind {
                OpKind::Get => c.gets += 1,
                OpKind::Set => c.sets += 1,
            }
            c.hits += u64::from(hits);
            c.misses += u64::from(misses);
            if let Some(e) = err {
                c.count_error(e);
            }
        }
        st.interval.saturating_record(ns.max(1));
        if measured {
            st.total.saturating_record(ns.max(1));
            self.last_reply.set(Some(now));
        }
    }
}

/// One request in flight. Its key vector keeps its capacity from request to request.
struct Slot {
    kind: OpKind,
    keys: Vec<u32>,
    due: Instant,
    prog: Progress,
}

/// Fixed-capacity FIFO of in-flight requests.
struct Ring {
    slots: Vec<Slot>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize, multiget: usize, now: Instant) -> Ring {
        let slots = (0..cap)
            .map(|_| Slot {
                kind: OpKind::Get,
                keys: Vec::with_capacity(multiget),
                due: now,
                prog: Progress::default(),
            })
            .collect();
        Ring {
            slots,
            head: 0,
            len: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }
    /// The slot after the last one in flight; `commit` makes it part of the ring.
    fn tail_mut(&mut self) -> &mut Slot {
        let i = (self.head + self.len) % self.slots.len();
        &mut self.slots[i]
    }
    fn commit(&mut self) {
        self.len += 1;
    }
    fn front_mut(&mut self) -> Option<&mut Slot> {
        if self.len == 0 {
            return None;
        }
        Some(&mut self.slots[self.head])
    }
    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.slots.len();
            self.len -= 1;
        }
    }
}

fn write_request(out: &mut Vec<u8>, s: &Settings, pattern: &Pattern, slot: &Slot) {
    if s.protocol == Protocol::Meta {
        return write_meta_request(out, s, pattern, slot);
    }
    if s.protocol == Protocol::Binary {
        return write_binary_request(out, s, pattern, slot);
    }
    match slot.kind {
        OpKind::Get => {
            out.extend_from_slice(b"get");
            for &k in &slot.keys {
                out.push(b' ');
                write_key(out, &s.key_prefix, k);
            }
            out.extend_from_slice(b"\r\n");
        }
        OpKind::Set => {
            let k = slot.keys[0];
            let len = value_len(k, s.value_min, s.value_max);
            let mut num = itoa::Buffer::new();
            out.extend_from_slice(b"set ");
            write_key(out, &s.key_prefix, k);
            out.push(b' ');
            out.extend_from_slice(num.format(value_flags(k, len)).as_bytes());
            out.extend_from_slice(b" 0 ");
            out.extend_from_slice(num.format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(pattern.value(k, len).unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// One binary request header (magic 0x80) with its extras, key and value.
fn binary_packet(out: &mut Vec<u8>, opcode: u8, extras: &[u8], key_len: usize, value_len: usize) {
    out.extend_from_slice(&[0x80, opcode]);
    out.extend_from_slice(&(key_len as u16).to_be_bytes());
    out.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    out.extend_from_slice(&((extras.len() + key_len + value_len) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 12]); // opaque, cas
    out.extend_from_slice(extras);
}

/// The binary form of a request: Get of one key; a multi-get as GetKQ per key then a
/// Noop (libmemcached's multi-get); Set with the value's flags, no expiry.
fn write_binary_request(out: &mut Vec<u8>, s: &Settings, pattern: &Pattern, slot: &Slot) {
    let key_len = |k: u32| s.key_prefix.len() + itoa::Buffer::new().format(k).len();
    match slot.kind {
        OpKind::Get if slot.keys.len() == 1 => {
            binary_packet(out, 0x00, &[], key_len(slot.keys[0]), 0);
            write_key(out, &s.key_prefix, slot.keys[0]);
        }
        OpKind::Get => {
            for &k in &slot.keys {
                binary_packet(out, 0x0d, &[], key_len(k), 0);
                write_key(out, &s.key_prefix, k);
            }
            binary_packet(out, 0x0a, &[], 0, 0);
        }
        OpKind::Set => {
            let k = slot.keys[0];
            let len = value_len(k, s.value_min, s.value_max);
            let mut extras = [0u8; 8];
            extras[..4].copy_from_slice(&value_flags(k, len).to_be_bytes());
            binary_packet(out, 0x01, &extras, key_len(k), len as usize);
            write_key(out, &s.key_prefix, k);
            out.extend_from_slice(pattern.value(k, len).unwrap_or_default());
        }
    }
}

/// The meta form of a request: `mg KEY v f` (a multi-get: `mg KEY v f k q` per key and
/// `mn`, the meta protocol's own multi-get), `ms KEY LEN F<flags>`.
fn write_meta_request(out: &mut Vec<u8>, s: &Settings, pattern: &Pattern, slot: &Slot) {
    match slot.kind {
        OpKind::Get => {
            let multi = slot.keys.len() > 1;
            for &k in &slot.keys {
                out.extend_from_slice(b"mg ");
                write_key(out, &s.key_prefix, k);
                out.extend_from_slice(if multi { &b" v f k q\r\n"[..] } else { b" v f\r\n" });
            }
            if multi {
                out.extend_from_slice(b"mn\r\n");
            }
        }
        OpKind::Set => {
            let k = slot.keys[0];
            let len = value_len(k, s.value_min, s.value_max);
            let mut num = itoa::Buffer::new();
            out.extend_from_slice(b"ms ");
            write_key(out, &s.key_prefix, k);
            out.push(b' ');
            out.extend_from_slice(num.format(len).as_bytes());
            out.extend_from_slice(b" F");
            out.extend_from_slice(num.format(value_flags(k, len)).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(pattern.value(k, len).unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Runs one connection to `addr` until its requests are sent and answered (or given up).
pub async fn run(
    shared: Rc<Shared>,
    addr: SocketAddr,
    mut wl: Workload,
    mut sched: Option<Schedule>,
) {
    let s = shared.settings.clone();
    let pattern = shared.pattern.clone();
    let checker = Checker {
        prefix: &s.key_prefix,
        pattern: &pattern,
        meta: s.protocol == Protocol::Meta,
        binary: s.protocol == Protocol::Binary,
    };
    let mut ring = Ring::new(shared.pipeline, s.multiget, Instant::now());
    let mut wbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut rbuf: Vec<u8> = vec![0; READ_CHUNK];
    let mut stopped = false;
    let mut drain_deadline = Instant::now() + Duration::from_secs(3600 * 24 * 365);

    let mut failing_since: Option<Instant> = None;
    'connect: loop {
        if s.reconnect.is_some() && (stopped || shared.end.is_some_and(|end| Instant::now() >= end)) {
            return; // no new connection for nothing
        }
        let connect_started = Instant::now();
        let mut link = match Link::connect(addr, &s, &shared.poller).await {
            Ok(l) => {
                failing_since = None;
                l
            }
            Err((step, e)) => {
                let now = Instant::now();
                let since = *failing_since.get_or_insert(now);
                if since == now {
                    shared.stats.borrow_mut().sample(step, e.to_string().as_bytes());
                }
                if step == "epoll" {
                    // Not expected (the epoll set takes any socket): count it, do not spin.
                    fail_in_flight(&shared, &mut ring, ErrKind::Closed, None);
                    return;
                }
                if stopped
                    || shared.end.is_some_and(|end| now >= end)
                    || now.duration_since(since) >= CONNECT_GIVE_UP
                {
                    return;
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // --reconnect: requests this connection may still send.
        let mut budget = s.reconnect.unwrap_or(u64::MAX);
        // Connected ahead of the start, so that the first open-loop sends are not late.
        glommio::timer::sleep(shared.start.saturating_duration_since(Instant::now())).await;
        let (mut rpos, mut wpos) = (0usize, 0usize);
        loop {
            // Send every request that is due and has room in the pipeline.
            let now = Instant::now();
            while !stopped && !ring.is_full() && budget > 0 {
                let due = match &sched {
                    Some(sc) if sc.next() > now => break,
                    Some(sc) => sc.next(),
                    // A new connection's first request (--reconnect): its latency
                    // includes the connect and the handshake.
                    None if s.reconnect.is_some() && budget == s.reconnect.unwrap_or(0) => connect_started.max(shared.start),
                    None => now,
                };
                // Warm-up requests do not count against --requests.
                let counted = due >= shared.measure_start;
                if shared.end.is_some_and(|end| due >= end) || (counted && !shared.take_quota()) {
                    stopped = true;
                    break;
                }
                let slot = ring.tail_mut();
                let Some(kind) = wl.next(&mut slot.keys) else {
                    stopped = true;
                    break;
                };
                slot.kind = kind;
                slot.due = due;
                if sched.is_some() && due >= shared.measure_start {
                    let lag = now.saturating_duration_since(due).as_nanos() as u64;
                    shared
                        .stats
                        .borrow_mut()
                        .send_lag
                        .saturating_record(lag.max(1));
                }
                slot.prog = Progress::default();
                write_request(&mut wbuf, &s, &pattern, slot);
                ring.commit();
                budget -= 1;
                if let Some(sc) = sched.as_mut() {
                    sc.advance();
                }
            }
            if stopped && drain_deadline > now + DRAIN {
                drain_deadline = now + DRAIN;
            }
            if !wbuf.is_empty() {
                let r = link.write_all(&wbuf).await;
                wbuf.clear();
                if let Err(e) = r {
                    fail_in_flight(&shared, &mut ring, ErrKind::Closed, Some(&e.to_string()));
                    continue 'connect;
                }
            }
            if ring.len == 0 {
                if stopped {
                    return;
                }
                if budget == 0 {
                    continue 'connect; // --reconnect: this one has sent its share
                }
                if sched.is_none() {
                    continue; // closed loop with room: send more at once
                }
            }
            // Wait for replies, or for the next send time, or for the drain deadline.
            let wake = if stopped {
                Some(drain_deadline)
            } else if ring.is_full() {
                None
            } else {
                sched.as_ref().map(|sc| sc.next())
            };
            if stopped && Instant::now() >= drain_deadline {
                fail_in_flight(&shared, &mut ring, ErrKind::Timeout, None);
                return;
            }
            if rpos == wpos {
                (rpos, wpos) = (0, 0);
            } else if rbuf.len() - wpos < READ_CHUNK / 4 {
                rbuf.copy_within(rpos..wpos, 0);
                (rpos, wpos) = (0, wpos - rpos);
                if rbuf.len() - wpos < READ_CHUNK / 4 {
                    rbuf.resize(rbuf.len() * 2, 0);
                }
            }
            let n = match link.read(&mut rbuf[wpos..], wake).await {
                Wait::Woken => continue,
                Wait::Read(Ok(0)) | Wait::Read(Err(_)) => {
                    fail_in_flight(
                        &shared,
                        &mut ring,
                        ErrKind::Closed,
                        Some("connection closed"),
                    );
                    if stopped {
                        return;
                    }
                    continue 'connect;
                }
                Wait::Read(Ok(n)) => n,
            };
            wpos += n;
            let now = Instant::now();
            while let Some(slot) = ring.front_mut() {
                let step = checker.parse(&rbuf[rpos..wpos], slot.kind, &slot.keys, &mut slot.prog);
                if let Some(r) = &step.sample {
                    let (a, b) = (rpos + r.start, (rpos + r.end).min(wpos));
                    shared
                        .stats
                        .borrow_mut()
                        .sample("reply", &rbuf[a.min(b)..b]);
                }
                rpos += step.consumed;
                match step.parsed {
                    Parsed::NeedMore => break,
                    Parsed::Done { hits, misses, err } => {
                        shared.complete(slot, now, hits, misses, err);
                        ring.pop();
                    }
                    Parsed::Fatal(e) => {
                        shared.complete(slot, now, 0, 0, Some(e));
                        ring.pop();
                        fail_in_flight(&shared, &mut ring, ErrKind::Closed, None);
                        continue 'connect;
                    }
                }
            }
            if ring.len == 0 && rpos < wpos {
                // Bytes with no request to answer: the stream is out of step.
                shared
                    .stats
                    .borrow_mut()
                    .sample("unsolicited", &rbuf[rpos..wpos]);
                let mut st = shared.stats.borrow_mut();
                st.counts.count_error(ErrKind::UnexpectedReply);
                st.interval_counts.count_error(ErrKind::UnexpectedReply);
                drop(st);
                continue 'connect;
            }
        }
    }
}

/// Every request still in flight fails with `e` (the connection is being dropped).
fn fail_in_flight(shared: &Shared, ring: &mut Ring, e: ErrKind, why: Option<&str>) {
    if let Some(w) = why {
        if ring.len > 0 {
            shared.stats.borrow_mut().sample(e.name(), w.as_bytes());
        }
    }
    let now = Instant::now();
    while let Some(slot) = ring.front_mut() {
        shared.complete(slot, now, 0, 0, Some(e));
        ring.pop();
    }
}
