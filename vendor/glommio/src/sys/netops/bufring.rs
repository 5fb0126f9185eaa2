// memcached-rs patch 10: the provided-buffer ring that multishot receives fill.
//
// Split out of `netops.rs` (which keeps the socket ops and their completions):
// this is the one piece that shares memory with the kernel, its mappings, its
// registration and the tail it publishes. See PATCHES.md.

use std::{
    io,
    os::unix::io::RawFd,
    ptr,
    sync::atomic::{AtomicU16, Ordering},
};

use crate::uring_sys;

const IORING_REGISTER_PBUF_RING: libc::c_uint = 22;

/// Size of one provided buffer. A request at pipeline 1 is tens of bytes; a larger
/// arrival takes several buffers, one completion each.
pub(crate) const BUF_SIZE: usize = 4096;
/// Buffers in the ring (a power of two): 1 MiB per executor, all of it resident (the
/// kernel takes buffers in ring order, so every one gets used). When a burst needs
/// more, the ring-dry path (`reclaim`) copies held bytes out and goes on.
pub(super) const BUF_COUNT: u16 = 256;
/// The buffer group id of the ring.
pub(crate) const BGID: u16 = 0x6d63;
#[repr(C)]
struct IoUringBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16, // entry 0's is the ring's tail
}

#[repr(C)]
struct IoUringBufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, kernel 5.19) registered with
/// the main ring: the kernel takes a buffer from it for each receive completion, we
/// give it back once the socket's task has copied the bytes out.
pub(crate) struct BufRing {
    ring: *mut IoUringBuf,
    ring_len: usize,
    mem: *mut u8,
    mem_len: usize,
    tail: u16,
    /// Buffers the kernel has handed to us and we have not given back.
    pub(crate) in_user: usize,
}

fn mmap_anon(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh private anonymous mapping.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as *mut u8)
    }
}

impl BufRing {
    pub(crate) fn new(ring_fd: RawFd) -> io::Result<BufRing> {
        let ring_len = BUF_COUNT as usize * std::mem::size_of::<IoUringBuf>();
        let mem_len = BUF_COUNT as usize * BUF_SIZE;
        let ring = mmap_anon(ring_len)? as *mut IoUringBuf;
        let mem = match mmap_anon(mem_len) {
            Ok(m) => m,
            Err(e) => {
                unsafe { libc::munmap(ring as _, ring_len) };
                return Err(e);
            }
        };
        let reg = IoUringBufReg {
            ring_addr: ring as u64,
            ring_entries: BUF_COUNT as u32,
            bgid: BGID,
            flags: 0,
            resv: [0; 3],
        };
        // SAFETY: `reg` describes the mapping above, which lives as long as the ring.
        let rc = unsafe {
            uring_sys::syscalls::io_uring_register(
                ring_fd,
                IORING_REGISTER_PBUF_RING,
                &reg as *const IoUringBufReg as *const libc::c_void,
                1,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            unsafe {
                libc::munmap(ring as _, ring_len);
                libc::munmap(mem as _, mem_len);
            }
            return Err(e);
        }
        let mut br = BufRing { ring, ring_len, mem, mem_len, tail: 0, in_user: BUF_COUNT as usize };
        for bid in 0..BUF_COUNT {
            br.give_back(bid);
        }
        Ok(br)
    }

    fn tail_ptr(&self) -> &AtomicU16 {
        // SAFETY: the tail is the u16 at offset 14 of entry 0, shared with the kernel.
        unsafe { &*((self.ring as *mut u8).add(14) as *const AtomicU16) }
    }

    pub(crate) fn give_back(&mut self, bid: u16) {
        let idx = (self.tail & (BUF_COUNT - 1)) as usize;
        // SAFETY: `idx` is inside the ring; the kernel does not read entries past the
        // tail it was last given. Entry 0's `resv` (the tail) is never written here.
        unsafe {
            let e = self.ring.add(idx);
            ptr::addr_of_mut!((*e).addr).write(self.mem.add(bid as usize * BUF_SIZE) as u64);
            ptr::addr_of_mut!((*e).len).write(BUF_SIZE as u32);
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.tail_ptr().store(self.tail, Ordering::Release);
        self.in_user -= 1;
    }

    pub(crate) fn bytes(&self, bid: u16, from: usize, to: usize) -> &[u8] {
        assert!(bid < BUF_COUNT && from <= to && to <= BUF_SIZE);
        // SAFETY: inside buffer `bid`, which the kernel has handed to us.
        unsafe { std::slice::from_raw_parts(self.mem.add(bid as usize * BUF_SIZE + from), to - from) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // The ring is unregistered when the io_uring closes (after us, possibly): leak
        // nothing the kernel might still write into while it lives. The reactor owns
        // us and drops its rings right after, so just unmap.
        unsafe {
            libc::munmap(self.ring as _, self.ring_len);
            libc::munmap(self.mem as _, self.mem_len);
        }
    }
}
