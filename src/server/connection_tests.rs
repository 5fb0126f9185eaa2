use super::*;

fn output() -> Output {
    Output { buf: BytesMut::new(), holes: Holes { at: Vec::new(), forwarded: 0, max: MAX_HOLES }, spliced: BytesMut::new() }
}

/// Forwarded replies count toward sending: without that, a client that never reads
/// could make a connection hold gigabytes of forwarded values (tests/robustness.rs).
#[test]
fn forwarded_replies_fill_a_round() {
    let (mut out, mailbox) = (output(), Mailbox::default());
    for _ in 0..MAX_HOLES - 1 {
        out.holes.hole(out.buf.len(), &mailbox);
    }
    assert!(!out.is_full());
    out.holes.hole(out.buf.len(), &mailbox);
    assert!(out.is_full());
    let mut out = output();
    out.buf.extend_from_slice(&vec![b'v'; FLUSH_AT]);
    assert!(out.is_full());
}

/// After large forwarded replies, a round holds about FLUSH_AT of them, not 64
/// values; small replies keep the full 64.
#[test]
fn large_forwarded_replies_shorten_the_next_round() {
    assert_eq!(holes_after(64 * 600, 64), MAX_HOLES);
    assert_eq!(holes_after(8 << 20, 8), 1);
    assert_eq!(holes_after(4 * (64 << 10), 4), FLUSH_AT / (64 << 10));
    assert_eq!(holes_after(0, 0), MAX_HOLES);
    let mut out = output();
    out.holes.max = 2;
    let mailbox = Mailbox::default();
    out.holes.hole(out.buf.len(), &mailbox);
    assert!(!out.is_full());
    out.holes.hole(out.buf.len(), &mailbox);
    assert!(out.is_full());
}

#[test]
fn large_rounds_give_their_buffers_back() {
    let mut out = output();
    out.buf.reserve(8 * FLUSH_AT);
    out.spliced.reserve(8 * FLUSH_AT);
    out.shrink();
    assert!(out.buf.capacity() <= KEEP_BUFFER && out.spliced.capacity() <= KEEP_BUFFER);
}

/// Forwarded sets of large values end the round too: the peer holds a copy of each
/// until it has run them, and their replies are small.
#[test]
fn forwarded_request_bytes_fill_a_round() {
    let mut out = output();
    out.holes.forwarded = FLUSH_AT - 1;
    assert!(!out.is_full());
    out.holes.forwarded = FLUSH_AT;
    assert!(out.is_full());
}

/// A large value grows the read buffer to its size (not the next power of two), and
/// the buffer is back to READ_BUFFER once the request is done.
#[test]
fn input_grows_to_a_large_request_and_shrinks_after() {
    let mut input = Input { buf: vec![0; READ_BUFFER], start: 0, end: READ_BUFFER, swallow: 0, seen_bytes: true, prefetched: 0 };
    let need = (1 << 20) + 100;
    input.make_room(need);
    assert_eq!(input.buf.len(), need.next_multiple_of(4096));
    assert!(input.buf.capacity() < need + 8192, "capacity {}", input.buf.capacity());
    input.start = input.end;
    input.make_room(0);
    assert_eq!(input.buf.len(), READ_BUFFER);
    // A line of unknown length: the buffer doubles while it is full.
    input.end = READ_BUFFER;
    input.make_room(0);
    assert_eq!(input.buf.len(), 2 * READ_BUFFER);
}
