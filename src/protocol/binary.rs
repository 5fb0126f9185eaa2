//! memcached's binary protocol: what a binary client gets today (we speak only the
//! text protocol): one "Unknown command" error in its own framing.

/// First byte of a binary-protocol request: memcached picks a connection's protocol by
/// its first byte.
pub const REQUEST_MAGIC: u8 = 0x80;

/// A binary-protocol error response, status 0x0081 "Unknown command", echoing the
/// request's opcode and opaque.
pub fn not_supported(request: &[u8]) -> Vec<u8> {
    const MESSAGE: &[u8] = b"Unknown command";
    let mut reply = vec![0u8; 24];
    reply[0] = 0x81;
    reply[1] = request.get(1).copied().unwrap_or(0);
    reply[6..8].copy_from_slice(&0x0081u16.to_be_bytes());
    reply[8..12].copy_from_slice(&(MESSAGE.len() as u32).to_be_bytes());
    if let Some(opaque) = request.get(12..16) {
        reply[12..16].copy_from_slice(opaque);
    }
    reply.extend_from_slice(MESSAGE);
    reply
}
