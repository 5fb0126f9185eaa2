//! The request parser (and the prefetch look-ahead) never panics, never consumes more
//! than it was given (nor nothing), and gives the same requests however the bytes are
//! split into reads.
//!
//! Input: one config byte (which `-I` to parse with, how to split), then the bytes a
//! client sends. Each read is parsed the way `server/connection.rs` drives the parser:
//! append to the pending bytes, parse until Incomplete, drop refused data blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;
use common::Step;
use memcached_rs::protocol::{lookahead, parse, Limits, Parsed, MAX_LINE_WITHOUT_NEWLINE};

/// `-I` values: tiny ones make "object too large" (the swallow path) reachable.
const ITEM_SIZE_MAX: [usize; 4] = [1 << 20, 1024, 100, 60];

#[derive(Debug, PartialEq)]
enum Event {
    Request(String),
    /// The parser asked to close; whether the pending bytes held a newline.
    Close {
        unfinished_line: bool,
    },
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        item_size_max: ITEM_SIZE_MAX[(config & 3) as usize],
    };
    let whole = drive(std::iter::once(stream), &limits);
    // Byte by byte for short inputs (each read reparses what is pending: quadratic),
    // pseudo-random read sizes for all.
    if stream.len() <= 600 {
        compare(&whole, &drive(stream.chunks(1), &limits));
    }
    compare(&whole, &drive(common::random_reads(stream, config, [3, 17, 300, 5000]).into_iter(), &limits));
});

/// Parses a stream arriving in `reads`, checking each result's invariants.
fn drive<'a>(reads: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> Vec<Event> {
    let mut events = Vec::new();
    common::feed(reads, |pending| {
        let len = pending.len();
        // The prefetch look-ahead never panics nor reads past what it was given.
        if let Some(peeked) = lookahead::peek(pending) {
            assert!(peeked.consumed > 0 && peeked.consumed <= len, "peek took {} of {len}", peeked.consumed);
            peeked.keys.for_each(|key| assert!(!key.is_empty()));
        }
        match parse(pending, limits) {
            Parsed::Incomplete { need } => {
                assert!(
                    need == 0 || need > len,
                    "Incomplete need {need} <= {len} buffered"
                );
                // The buffer a client can make the server allocate stays bounded.
                assert!(
                    need <= len + limits.item_size_max + 2,
                    "need {need} for -I {}",
                    limits.item_size_max
                );
                if need == 0 {
                    let has_newline = pending.contains(&b'\n');
                    assert!(!has_newline, "Incomplete with a whole line buffered");
                }
                Step::Wait
            }
            Parsed::Close => {
                let unfinished_line = !pending.contains(&b'\n');
                if unfinished_line {
                    assert!(
                        len > MAX_LINE_WITHOUT_NEWLINE,
                        "closed on a short unfinished line"
                    );
                }
                events.push(Event::Close { unfinished_line });
                Step::Stop
            }
            Parsed::Done { request, consumed } => {
                assert!(
                    consumed > 0 && consumed <= len,
                    "Done consumed {consumed} of {len}"
                );
                events.push(Event::Request(format!("{request:?}")));
                Step::Consume { consumed, swallow: 0 }
            }
            Parsed::Swallow {
                request,
                consumed,
                swallow,
            } => {
                assert!(
                    consumed > 0 && consumed <= len,
                    "Swallow consumed {consumed} of {len}"
                );
                assert!(swallow >= 2, "a refused data block is at least its \\r\\n");
                events.push(Event::Request(format!("{request:?}")));
                Step::Consume { consumed, swallow }
            }
        }
    });
    events
}

/// Split reads must give what one read gives, except that a line still unfinished
/// when more than MAX_LINE_WITHOUT_NEWLINE bytes are pending may close the
/// connection early (memcached too depends on read boundaries there).
fn compare(whole: &[Event], split: &[Event]) {
    if let Some(Event::Close {
        unfinished_line: true,
    }) = split.last()
    {
        let before = &split[..split.len() - 1];
        assert!(
            whole.len() >= before.len(),
            "split: {split:?}\nwhole: {whole:?}"
        );
        assert_eq!(before, &whole[..before.len()]);
        return;
    }
    assert_eq!(whole, split);
}
