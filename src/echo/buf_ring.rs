//! A provided buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19).
//!
//! The ring is an array of buffer descriptions (address, length, buffer id)
//! that user space fills at the tail and the kernel empties at the head. A
//! receive that has `IOSQE_BUFFER_SELECT` takes the next buffer only when
//! data arrives, and names it in its CQE, so no buffer waits on a connection
//! that has nothing to say. The server gives each buffer back once the send
//! of its bytes has completed.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Anonymous memory from mmap(2): page aligned, zeroed, and resident from
/// the start (MAP_POPULATE). The ring hands out its buffers in turn, so
/// every page is touched soon under load anyway: paying up front keeps the
/// server's memory flat from its first connection on.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn new(len: usize) -> io::Result<Region> {
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`; BufRing never drops it
            // while the kernel may still write to it (see its Drop).
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}

// ANCHOR: state
/// The ring and its buffers, and which buffers the kernel has handed to us.
pub struct BufRing {
    entries: Region,
    buffers: Region,
    count: u16,
    buf_size: u32,
    /// Our copy of the tail; `publish` makes it the kernel's.
    tail: u16,
    /// `lent[bid]`: a CQE gave buffer `bid` to us, and we have not given it
    /// back: the kernel will not write into it.
    lent: Vec<bool>,
    lent_count: u32,
    /// The buffer group the ring is registered as, until unregistered.
    group: Option<u16>,
}
// ANCHOR_END: state

impl BufRing {
    /// `count` buffers (a power of two up to 32768) of `buf_size` bytes,
    /// all in the ring: the kernel may use every one.
    pub fn new(count: u16, buf_size: u32) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 1 << 15 || buf_size == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let entries = Region::new(count as usize * size_of::<BufRingEntry>())?;
        let buffers = Region::new(count as usize * buf_size as usize)?;
        let mut ring = BufRing {
            entries,
            buffers,
            count,
            buf_size,
            tail: 0,
            lent: vec![true; count as usize],
            lent_count: count as u32,
            group: None,
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Tells the kernel about the ring as buffer group `group`.
    ///
    /// # Safety
    ///
    /// Until [`unregister`](Self::unregister), every request that may select
    /// a buffer from `group` must complete before `self` is dropped: the
    /// kernel writes received bytes into these buffers.
    pub unsafe fn register(
        &mut self,
        submitter: &Submitter,
        group: u16,
    ) -> io::Result<()> {
        let addr = self.entries.ptr as u64;
        // SAFETY: the entries stay mapped until unregistered, because Drop
        // leaks them when `group` is still set.
        unsafe { submitter.register_buf_ring_with_flags(addr, self.count, group, 0)? };
        self.group = Some(group);
        Ok(())
    }

    /// [`register`](Self::register) with `flags` for the kernel, such as
    /// `IOU_PBUF_RING_INC` (2, Linux 6.12): buffers consumed in part.
    ///
    /// # Safety
    ///
    /// As for [`register`](Self::register).
    pub unsafe fn register_with_flags(
        &mut self,
        submitter: &Submitter,
        group: u16,
        flags: u16,
    ) -> io::Result<()> {
        let addr = self.entries.ptr as u64;
        // SAFETY: as in `register`.
        unsafe {
            submitter.register_buf_ring_with_flags(addr, self.count, group, flags)?
        };
        self.group = Some(group);
        Ok(())
    }

    /// Takes the ring back from the kernel. Call it once no request that
    /// selects buffers is in flight.
    pub fn unregister(&mut self, submitter: &Submitter) -> io::Result<()> {
        if let Some(group) = self.group {
            submitter.unregister_buf_ring(group)?;
            self.group = None;
        }
        Ok(())
    }

    // ANCHOR: lend
    /// Records that a CQE handed buffer `bid` to us.
    pub fn taken(&mut self, bid: u16) {
        let lent = &mut self.lent[bid as usize];
        assert!(!*lent, "buffer {bid} handed out twice");
        *lent = true;
        self.lent_count += 1;
    }

    /// Puts buffer `bid` back at the tail. The kernel sees it after
    /// [`publish`](Self::publish).
    pub fn give_back(&mut self, bid: u16) {
        let lent = &mut self.lent[bid as usize];
        assert!(*lent, "buffer {bid} given back twice");
        *lent = false;
        self.lent_count -= 1;
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot` < count, inside the entries region. The kernel
        // reads only entries between its head and the published tail, and
        // at most `count` buffers are ever in the ring, so it is not reading
        // this one.
        let entry = unsafe { &mut *self.entries.ptr.cast::<BufRingEntry>().add(slot) };
        entry.set_addr(self.addr(bid) as u64);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every buffer given back so far visible to the kernel: one
    /// store of the tail, with release ordering so that the entries written
    /// before it are seen first.
    pub fn publish(&mut self) {
        let base = self.entries.ptr.cast::<BufRingEntry>();
        // SAFETY: the tail is the 16-bit field at offset 14 of entry 0,
        // which the kernel reads with acquire ordering.
        let tail = unsafe { &*BufRingEntry::tail(base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
    // ANCHOR_END: lend

    /// The start of buffer `bid`.
    pub fn addr(&self, bid: u16) -> *mut u8 {
        assert!(bid < self.count);
        // SAFETY: bid < count, so the offset is inside the buffers region.
        unsafe { self.buffers.ptr.add(bid as usize * self.buf_size as usize) }
    }

    /// The first `len` bytes of a buffer the kernel has handed to us.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(self.lent[bid as usize] && len <= self.buf_size as usize);
        // SAFETY: the kernel gave this buffer to us and will not write into
        // it until we give it back, which takes `&mut self`.
        unsafe { std::slice::from_raw_parts(self.addr(bid), len) }
    }

    /// Buffers the kernel may pick from (once published).
    pub fn available(&self) -> u32 {
        self.count as u32 - self.lent_count
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// The (address, length, id) in ring entry `index`, as the kernel will
    /// read it.
    pub fn entry(&self, index: u16) -> (u64, u32, u16) {
        let slot = (index & (self.count - 1)) as usize;
        // SAFETY: slot < count, inside the entries region.
        let e = unsafe { &*self.entries.ptr.cast::<BufRingEntry>().add(slot) };
        (e.addr(), e.len(), e.bid())
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.group.is_some() {
            // Still registered: the kernel may yet write here. Leaking the
            // memory is sound; freeing it is not.
            std::mem::forget(std::mem::replace(&mut self.buffers, Region::empty()));
            std::mem::forget(std::mem::replace(&mut self.entries, Region::empty()));
        }
    }
}

impl Region {
    /// A region of nothing, to swap in for one that must be leaked.
    fn empty() -> Region {
        Region {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ring_offers_every_buffer_in_order() {
        let ring = BufRing::new(8, 64).unwrap();
        assert_eq!(ring.available(), 8);
        for i in 0..8 {
            let (addr, len, bid) = ring.entry(i);
            assert_eq!((len, bid), (64, i));
            assert_eq!(addr, ring.addr(i) as u64);
        }
        assert_eq!(ring.addr(1) as usize - ring.addr(0) as usize, 64);
    }

    #[test]
    fn buffers_go_back_at_the_tail_in_the_order_returned() {
        let mut ring = BufRing::new(4, 16).unwrap();
        // The kernel took buffers 0 to 2 (as three CQEs would say).
        for bid in 0..3 {
            ring.taken(bid);
        }
        assert_eq!(ring.available(), 1);
        // Sends complete out of order; each buffer goes back when its own did.
        ring.give_back(2);
        ring.give_back(0);
        assert_eq!(ring.available(), 3);
        assert_eq!(ring.entry(4).2, 2, "slot 0 of the ring again, now buffer 2");
        assert_eq!(ring.entry(5).2, 0);
        assert_eq!(
            ring.entry(6).2,
            2,
            "not yet overwritten: still the old entry"
        );
    }

    #[test]
    fn the_tail_wraps_around_sixteen_bits() {
        let mut ring = BufRing::new(2, 8).unwrap();
        for i in 0..70_000u32 {
            let bid = (i % 2) as u16;
            ring.taken(bid);
            ring.give_back(bid);
        }
        assert_eq!(ring.available(), 2);
        assert_eq!(ring.tail, (2 + 70_000u32) as u16);
    }

    #[test]
    #[should_panic(expected = "given back twice")]
    fn giving_a_buffer_back_twice_is_a_bug() {
        let mut ring = BufRing::new(2, 8).unwrap();
        ring.taken(1);
        ring.give_back(1);
        ring.give_back(1);
    }

    #[test]
    #[should_panic(expected = "handed out twice")]
    fn a_buffer_cannot_be_taken_twice() {
        let mut ring = BufRing::new(2, 8).unwrap();
        ring.taken(0);
        ring.taken(0);
    }

    /// The kernel's side: a multishot receive fills buffers in ring order,
    /// names each in its CQE, and ends with ENOBUFS when the ring is empty,
    /// leaving the rest of the data in the socket.
    #[test]
    fn the_kernel_fills_buffers_then_stops_with_enobufs_losing_nothing() {
        use io_uring::{cqueue, opcode, types, IoUring};
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixStream;

        let mut uring = IoUring::new(8).unwrap();
        let mut ring = BufRing::new(2, 4).unwrap();
        // SAFETY: every request that selects from group 7 completes (the
        // loop below waits for the final CQE) before `ring` is dropped.
        unsafe { ring.register(&uring.submitter(), 7).unwrap() };
        let (mut tx, rx) = UnixStream::pair().unwrap();
        tx.write_all(b"0123456789ab").unwrap();
        let recv = opcode::RecvMulti::new(types::Fd(rx.as_raw_fd()), 7)
            .build()
            .user_data(1);
        // SAFETY: no pointers in the entry; the buffers are registered.
        unsafe { uring.submission().push(&recv).unwrap() };
        let mut got = Vec::new();
        let last = loop {
            uring.submit_and_wait(1).unwrap();
            let cqe = uring.completion().next().unwrap();
            if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                ring.taken(bid);
                got.extend_from_slice(ring.bytes(bid, cqe.result() as usize));
            }
            if !cqueue::more(cqe.flags()) {
                break cqe.result();
            }
        };
        // Two buffers of 4 bytes, then the ring was empty.
        assert_eq!(last, -libc::ENOBUFS);
        assert_eq!(ring.available(), 0);
        for bid in 0..2 {
            ring.give_back(bid);
        }
        ring.publish();
        assert_eq!(ring.available(), 2);
        assert_eq!(got, b"01234567", "8 bytes in ring order, none lost");
        let mut rest = [0u8; 4];
        std::io::Read::read_exact(&mut &rx, &mut rest).unwrap();
        assert_eq!(&rest, b"89ab", "the rest waited in the socket");
        ring.unregister(&uring.submitter()).unwrap();
    }

    #[test]
    fn sizes_must_be_powers_of_two() {
        assert!(BufRing::new(3, 8).is_err());
        assert!(BufRing::new(0, 8).is_err());
        assert!(BufRing::new(4, 0).is_err());
    }
}
