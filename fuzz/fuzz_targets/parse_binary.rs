//! The binary-protocol parser (issue 16) never panics, never consumes more than it was
//! given (nor nothing), never asks to buffer more than a request of `-I` needs, and
//! gives the same requests however the bytes are split into reads. Every request it
//! gives is then encoded with a reply (hit, miss, error) to exercise the reply writer.
//!
//! Input: one config byte (`-I`, the SASL gate), then the bytes a client sends.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

mod common;
use common::Step;
use memcached_rs::protocol::binary::{self, Gate, HEADER_LEN, READ_BUFFER_SIZE};
use memcached_rs::protocol::{self, Item, Limits, Outcome, Parsed, Request};

/// `-I` values: tiny ones make "Too large." (the swallow path) reachable.
const ITEM_SIZE_MAX: [usize; 4] = [1 << 20, 1024, 100, 60];

#[derive(Debug, PartialEq)]
enum Event {
    Request(String),
    Close,
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits { item_size_max: ITEM_SIZE_MAX[(config & 3) as usize] };
    let gate = Gate { sasl: config & 4 != 0, authenticated: config & 8 != 0 };
    let whole = drive(std::iter::once(stream), &limits, gate);
    if stream.len() <= 600 {
        assert_eq!(whole, drive(stream.chunks(1), &limits, gate));
    }
    assert_eq!(whole, drive(common::random_reads(stream, config, [3, 25, 300, 5000]).into_iter(), &limits, gate));
});

fn drive<'a>(reads: impl Iterator<Item = &'a [u8]>, limits: &Limits, gate: Gate) -> Vec<Event> {
    let mut events = Vec::new();
    let mut out = BytesMut::new();
    common::feed(reads, |pending| {
        let len = pending.len();
        let step = match binary::parse(pending, limits, gate) {
            Parsed::Incomplete { need } => {
                assert!(need > len, "Incomplete need {need} <= {len} buffered");
                // What a client can make the server buffer: a header, extras and key
                // within memcached's read buffer, or one value that fits -I.
                assert!(
                    need <= READ_BUFFER_SIZE.max(HEADER_LEN + 255 + 250 + limits.item_size_max),
                    "need {need} for -I {}",
                    limits.item_size_max
                );
                return Step::Wait;
            }
            Parsed::Close => {
                events.push(Event::Close);
                return Step::Stop;
            }
            Parsed::Done { request, consumed } => {
                assert!(consumed >= HEADER_LEN && consumed <= len, "Done consumed {consumed} of {len}");
                encode(&request, &mut out);
                events.push(Event::Request(format!("{request:?}")));
                Step::Consume { consumed, swallow: 0 }
            }
            Parsed::Swallow { request, consumed, swallow } => {
                assert!(consumed >= HEADER_LEN && consumed <= len, "Swallow consumed {consumed} of {len}");
                encode(&request, &mut out);
                events.push(Event::Request(format!("{request:?}")));
                Step::Consume { consumed, swallow }
            }
        };
        out.clear();
        step
    });
    events
}

/// Writes a reply for the request, as the server would for some outcome.
fn encode(request: &Request, out: &mut BytesMut) {
    match request {
        Request::Keyed(k) => {
            for outcome in [
                Outcome::Hit(Item { flags: 1, cas: 2, value: k.value }),
                Outcome::Miss,
                Outcome::StoredCas(3),
                Outcome::NotStored,
                Outcome::NumberCas(4, 5),
                Outcome::TooLarge,
            ] {
                protocol::encode(k, &outcome, out);
            }
            assert!(out.len() >= HEADER_LEN || matches!(k.form, protocol::Form::Binary { quiet: true, .. }));
        }
        Request::Refused { form, answer, .. } => protocol::answer(*form, *answer, out),
        Request::Server { form, .. } => protocol::answer(*form, protocol::Answer::Ok, out),
        Request::Auth { form, .. } => protocol::encode_auth(*form, protocol::AuthAnswer::Failed, out),
        Request::Multi { .. } | Request::Reply(_) => panic!("the binary parser gave a text request: {request:?}"),
    }
}
