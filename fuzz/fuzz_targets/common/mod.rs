//! What the parser fuzz targets (`parse`, `parse_binary`) share: how a client's bytes
//! are cut into reads, and how each read is fed to a parser the way
//! `server/connection.rs` drives it (append to the pending bytes, parse until
//! Incomplete, drop the bytes of a refused data block as they arrive).
//!
//! Written once here (#13) so that both protocols are driven by the same loop; each
//! target keeps its own checks of what the parser answers.

/// `stream` cut into pseudo-random reads, seeded by the config byte and the length;
/// each read is 1 to one of `max` bytes long (`max` picked per read).
pub fn random_reads(stream: &[u8], config: u8, max: [u64; 4]) -> Vec<&[u8]> {
    let mut rng = u64::from(config) << 32 | stream.len() as u64 | 1;
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let max = max[(rng >> 60) as usize & 3];
        let n = (1 + (rng % max) as usize).min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    chunks
}

/// What a target did with one parse of the pending bytes.
pub enum Step {
    /// Incomplete: wait for the next read.
    Wait,
    /// The parser asked to close: stop reading.
    Stop,
    /// A request of this many bytes; then this many bytes of a refused data block
    /// (0 for none) are dropped as they arrive.
    Consume { consumed: usize, swallow: usize },
}

/// Feeds `reads` to `step` as the server does: each read is appended to the pending
/// bytes, and `step` is called with them until it waits or stops.
pub fn feed<'a>(reads: impl Iterator<Item = &'a [u8]>, mut step: impl FnMut(&[u8]) -> Step) {
    let mut pending: Vec<u8> = Vec::new();
    let mut swallow = 0usize;
    for read in reads {
        pending.extend_from_slice(read);
        loop {
            if swallow > 0 {
                let n = swallow.min(pending.len());
                pending.drain(..n);
                swallow -= n;
                if swallow > 0 {
                    break;
                }
            }
            match step(&pending) {
                Step::Wait => break,
                Step::Stop => return,
                Step::Consume { consumed, swallow: s } => {
                    pending.drain(..consumed);
                    swallow = s;
                }
            }
        }
    }
}
