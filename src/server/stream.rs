//! Client sockets, through the executor's io_uring only (vendored glommio, patch 10 in
//! `vendor/glommio/PATCHES.md`): one multishot receive per socket into the executor's
//! provided-buffer ring, replies as send SQEs that go to the kernel with the executor's
//! next `io_uring_enter` (with every other reply of its turn), accepts multishot.
//! No `recv`, `send`, `accept` or `epoll_wait` system call is made for a client.
//!
//! Back-pressure: a connection has at most one reply buffer in flight and waits for it
//! before sending the next (`Connection::flush`); bytes received and not yet taken are
//! bounded per socket (glommio's `RECV_LIMIT`, 256 KiB), past which the receive is
//! cancelled and the client's further bytes wait in its socket.

pub use glommio::net::{RingListener, RingStream};

/// Whether other connections were woken for data and have not run yet (see
/// `Connection::run_round`: a lone get yields to them only then).
pub fn others_woken() -> bool {
    glommio::net::woken_readers() > 0
}

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ServerConnection;

use super::tls::Tls;

/// A client's transport: the ring stream itself, or TLS over it (`-Z`). The connection
/// reads plaintext and hands replies over the same way through either.
pub enum Stream {
    Plain(RingStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Bytes received (plaintext), 0 at the end of the stream.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.recv(buf).await,
            Stream::Tls(s) => s.recv(buf).await,
        }
    }

    /// Waits until the last send is done.
    pub async fn sent(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.sent().await,
            Stream::Tls(s) => s.ring.sent().await,
        }
    }

    /// Queues a send of all of `buf` (only once [`Stream::sent`] is ready); returns a
    /// buffer of an earlier send for reuse.
    pub fn start_send<B: AsRef<[u8]> + 'static>(&mut self, buf: B) -> Option<B> {
        match self {
            Stream::Plain(s) => s.start_send(buf),
            Stream::Tls(s) => s.start_send(buf),
        }
    }

    /// Sends all of `buf` and waits until it is in the socket.
    pub async fn send_all<B: AsRef<[u8]> + 'static>(&mut self, buf: B) -> io::Result<()> {
        self.sent().await?;
        self.start_send(buf);
        self.sent().await
    }

    /// Ends the sending side: TLS's close_notify, then FIN.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown_write().await,
            Stream::Tls(s) => {
                s.tls.send_close_notify();
                s.send_records().await?;
                s.ring.shutdown_write().await
            }
        }
    }

    /// Before closing: the last reply is in the socket, and a TLS peer is told the
    /// session ends (close_notify), as memcached's SSL_shutdown does.
    pub async fn finish(&mut self) -> io::Result<()> {
        if let Stream::Tls(s) = self {
            s.tls.send_close_notify();
            s.send_records().await?;
        }
        self.sent().await
    }
}

/// Record buffers larger than this are dropped after their send.
const KEEP_SPARE: usize = 64 * 1024;
/// Ciphertext read from the ring at a time: about one full TLS record.
const CIPHER_BUFFER: usize = 17 * 1024;

/// TLS over a ring stream: ciphertext received through the ring is fed to rustls and
/// the plaintext read out of it; replies go into rustls as plaintext and the records it
/// makes go out through the ring's send path, one send per round as for plaintext.
///
/// Bounded: rustls holds at most about 16 KiB of received plaintext (it is read out
/// before more ciphertext goes in), ciphertext waits in the socket beyond one buffer,
/// and a round's records are one send (the connection bounds the round).
pub struct TlsStream {
    ring: RingStream,
    tls: ServerConnection,
    shared: Arc<Tls>,
    /// Ciphertext received and not yet taken by rustls: `cipher[start..end]`.
    cipher: Box<[u8]>,
    start: usize,
    end: usize,
    /// A buffer for the next send of records (the last send's, reused).
    spare: Vec<u8>,
    /// Whether this connection's failed handshake was counted already.
    counted: bool,
}

impl TlsStream {
    pub fn new(ring: RingStream, tls: ServerConnection, shared: Arc<Tls>) -> TlsStream {
        TlsStream {
            ring,
            tls,
            shared,
            cipher: vec![0; CIPHER_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            spare: Vec::new(),
            counted: false,
        }
    }

    /// Plaintext into `buf`; drives the handshake on the way. Cancel-safe: every state
    /// lives in `self` between awaits.
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: the client's close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client closed without close_notify: the end of the stream too.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.tls.wants_write() {
                // Handshake messages, session tickets, alerts.
                self.send_records().await?;
            }
            if self.start == self.end {
                let n = self.ring.recv(&mut self.cipher).await?;
                if n == 0 {
                    if self.tls.is_handshaking() {
                        self.handshake_failed();
                    }
                    return Ok(0);
                }
                (self.start, self.end) = (0, n);
            }
            let mut input = &self.cipher[self.start..self.end];
            let taken = self.tls.read_tls(&mut input);
            self.start = self.end - input.len();
            let processed = taken.and_then(|_| {
                self.tls.process_new_packets().map(drop).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            });
            if let Err(e) = processed {
                if self.tls.is_handshaking() {
                    self.handshake_failed();
                }
                // The alert rustls queued tells the client why.
                let _ = self.send_records().await;
                return Err(e);
            }
        }
    }

    fn handshake_failed(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.shared.handshake_failed();
        }
    }

    /// Encrypts `buf` and queues its records (see [`Stream::start_send`]).
    fn start_send<B: AsRef<[u8]> + 'static>(&mut self, buf: B) -> Option<B> {
        // Without a buffer limit rustls takes all of it (after the handshake it
        // encrypts at once; before, it keeps the plaintext until the handshake ends).
        let _ = self.tls.writer().write_all(buf.as_ref());
        self.queue_records();
        Some(buf)
    }

    /// Sends what rustls has to send, once the send in flight is done.
    async fn send_records(&mut self) -> io::Result<()> {
        self.ring.sent().await?;
        self.queue_records();
        Ok(())
    }

    /// Queues rustls's pending records as one send (no send may be in flight).
    fn queue_records(&mut self) {
        let mut records = std::mem::take(&mut self.spare);
        records.clear();
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut records).is_err() {
                break;
            }
        }
        if records.is_empty() {
            self.spare = records;
            return;
        }
        // A buffer grown for one large round is not kept for the connection's life.
        if let Some(done) = self.ring.start_send(records).filter(|b| b.capacity() <= KEEP_SPARE) {
            self.spare = done;
        }
    }
}
