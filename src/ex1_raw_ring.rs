//! Exercise 1 with `--raw`: a ring built by hand, without the io-uring crate.
//!
//! io_uring_setup(2) returns a file descriptor and fills `io_uring_params`
//! with the offsets of every field inside the rings; three mmap(2) calls map
//! the SQ ring, the SQE array and the CQ ring. This module does exactly that,
//! pushes one NOP, and prints the heads and tails as they move (and, with
//! `--svg DIR`, draws them: `ring_frames`). The structs
//! are those of `<linux/io_uring.h>`, declared here because libc has none.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use uring_book::diagnose;
use uring_book::ring_frames::{self, CqeSlot, Snapshot, SqeSlot};

#[repr(C)]
#[derive(Default)]
pub struct SqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct CqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct Params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: SqringOffsets,
    pub cq_off: CqringOffsets,
}

/// `struct io_uring_sqe`, 64 bytes; only the fields a NOP needs have names
/// that matter here.
#[repr(C)]
#[derive(Default)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    pub off: u64,
    pub addr: u64,
    pub len: u32,
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    pub splice_fd_in: i32,
    pub addr3: u64,
    pub pad: u64,
}

/// `struct io_uring_cqe`, 16 bytes.
#[repr(C)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

const _: () = assert!(size_of::<Params>() == 120);
const _: () = assert!(size_of::<Sqe>() == 64 && size_of::<Cqe>() == 16);

pub const IORING_OFF_SQ_RING: i64 = 0;
pub const IORING_OFF_CQ_RING: i64 = 0x800_0000;
pub const IORING_OFF_SQES: i64 = 0x1000_0000;
pub const IORING_ENTER_GETEVENTS: u32 = 1;
pub const IORING_OP_NOP: u8 = 0;
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1;

/// One shared mapping of the ring's memory, unmapped on drop.
pub struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    pub fn new(ring: &OwnedFd, len: usize, offset: i64) -> io::Result<Map> {
        // SAFETY: a fresh shared mapping of the ring fd; the kernel checks
        // that offset and length fit the region it allocated.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map {
            ptr: ptr.cast(),
            len,
        })
    }

    /// A pointer to the field `offset` bytes into the mapping.
    pub fn at<T>(&self, offset: u32) -> *mut T {
        assert!(offset as usize + size_of::<T>() <= self.len);
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.add(offset as usize).cast() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `Map::new` with this length.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Prints what io_uring_setup said: the sizes, the features and the offset of
/// every field in the rings.
fn print_params(p: &Params) {
    println!(
        "io_uring_setup(4, &p): {} SQ entries, {} CQ entries, features {:#x}",
        p.sq_entries, p.cq_entries, p.features
    );
    println!(
        "  (Linux {}: {} IORING_FEAT_* flags set)",
        uring_book::system::kernel_release(),
        p.features.count_ones()
    );
    let (s, c) = (&p.sq_off, &p.cq_off);
    println!(
        "sq_off: head={} tail={} ring_mask={} ring_entries={} flags={} dropped={} \
         array={}",
        s.head, s.tail, s.ring_mask, s.ring_entries, s.flags, s.dropped, s.array
    );
    println!(
        "cq_off: head={} tail={} ring_mask={} ring_entries={} overflow={} cqes={} \
         flags={}",
        c.head, c.tail, c.ring_mask, c.ring_entries, c.overflow, c.cqes, c.flags
    );
}

/// Runs the raw ring; with `svg_dir`, also draws its state after the push,
/// after io_uring_enter and after the reap (`ring_frames`).
pub fn run(svg_dir: Option<&Path>) -> anyhow::Result<()> {
    // ANCHOR: setup
    let mut p = Params::default();
    // SAFETY: io_uring_setup reads and fills one io_uring_params.
    let fd =
        unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, &mut p as *mut Params) };
    if fd < 0 {
        return Err(diagnose::setup(io::Error::last_os_error()));
    }
    // SAFETY: the descriptor is new and ours.
    let ring = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    print_params(&p);

    let (s, c) = (&p.sq_off, &p.cq_off);
    let sq_len = s.array as usize + p.sq_entries as usize * size_of::<u32>();
    let sqes_len = p.sq_entries as usize * size_of::<Sqe>();
    let cq_len = c.cqes as usize + p.cq_entries as usize * size_of::<Cqe>();
    let sq = Map::new(&ring, sq_len, IORING_OFF_SQ_RING).context("mmap SQ ring")?;
    let sqes = Map::new(&ring, sqes_len, IORING_OFF_SQES).context("mmap SQEs")?;
    // Since 5.4 (IORING_FEAT_SINGLE_MMAP) both rings live in one region and
    // the SQ ring's mapping would do; mapping the CQ ring's offset as well
    // works on every kernel.
    let cq = Map::new(&ring, cq_len, IORING_OFF_CQ_RING).context("mmap CQ ring")?;
    println!(
        "mmap: SQ ring {sq_len} bytes, SQE array {sqes_len} bytes, \
         CQ ring {cq_len} bytes\n(single mmap possible: {})",
        p.features & IORING_FEAT_SINGLE_MMAP != 0
    );
    // ANCHOR_END: setup

    // The heads and tails are u32s that both sides update: atomics.
    // SAFETY: the offsets come from the kernel and lie inside the mappings,
    // which outlive these references.
    let (sq_head, sq_tail, cq_head, cq_tail): (
        &AtomicU32,
        &AtomicU32,
        &AtomicU32,
        &AtomicU32,
    ) = unsafe {
        (
            &*sq.at(s.head),
            &*sq.at(s.tail),
            &*cq.at(c.head),
            &*cq.at(c.tail),
        )
    };
    // SAFETY: as above; the masks never change after setup.
    let (sq_mask, cq_mask) =
        unsafe { (*sq.at::<u32>(s.ring_mask), *cq.at::<u32>(c.ring_mask)) };
    let sq_array = sq.at::<u32>(s.array);
    let cqes = cq.at::<Cqe>(c.cqes);
    let mut frames = Vec::new();
    // Prints the four indices and keeps a snapshot of the shared memory.
    let mut inspect = |name: &str, when: &str| {
        println!(
            "{when:<36} SQ head={} tail={}   CQ head={} tail={}",
            sq_head.load(Ordering::Acquire),
            sq_tail.load(Ordering::Relaxed),
            cq_head.load(Ordering::Relaxed),
            cq_tail.load(Ordering::Acquire),
        );
        // SAFETY: nothing is in flight between our calls, so the kernel is
        // not writing any of this memory while we read it.
        frames.push(unsafe { snapshot(&p, &sq, &sqes, &cq, name, when) });
    };
    inspect("setup", "after setup:");

    // ANCHOR: push
    // We are the only writer of the SQ tail, so reading our own value needs
    // no ordering. The ring position is tail & mask; the SQE slot it refers
    // to is whatever we write into the index array there. Use the last slot
    // to make the point that the two need not be equal.
    let tail = sq_tail.load(Ordering::Relaxed);
    let position = tail & sq_mask;
    let slot = p.sq_entries - 1;
    let nop = Sqe {
        opcode: IORING_OP_NOP,
        fd: -1,
        user_data: 0x1234,
        ..Default::default()
    };
    // SAFETY: slot and position are below sq_entries, inside the mappings.
    unsafe {
        sqes.at::<Sqe>(slot * size_of::<Sqe>() as u32).write(nop);
        sq_array.add(position as usize).write(slot);
    }
    // Release: the SQE and the index written above are visible to the kernel
    // before the new tail is (it reads the tail with smp_load_acquire).
    sq_tail.store(tail.wrapping_add(1), Ordering::Release);
    inspect(
        "push",
        &format!("after pushing a NOP (array[{position}] = {slot}):"),
    );
    // ANCHOR_END: push

    // ANCHOR: enter
    // io_uring_enter(fd, to_submit, min_complete, flags, sigset, sigset size)
    // SAFETY: plain syscall; no signal mask is passed.
    let submitted = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            ring.as_raw_fd(),
            1u32,
            1u32,
            IORING_ENTER_GETEVENTS,
            ptr::null::<libc::sigset_t>(),
            0usize,
        )
    };
    if submitted < 0 {
        return Err(io::Error::last_os_error()).context("io_uring_enter");
    }
    inspect(
        "enter",
        &format!("after io_uring_enter (returned {submitted}):"),
    );
    // ANCHOR_END: enter

    // ANCHOR: reap
    // Acquire pairs with the kernel's store-release of the CQ tail: the CQE
    // it wrote before moving the tail is visible once we see the new tail.
    let head = cq_head.load(Ordering::Relaxed);
    if head == cq_tail.load(Ordering::Acquire) {
        anyhow::bail!("io_uring_enter returned but the CQ is empty");
    }
    // SAFETY: head != tail, so the entry at head & mask is the kernel's.
    let cqe = unsafe { cqes.add((head & cq_mask) as usize).read() };
    println!(
        "cqe at CQ position {}: user_data={:#x} res={} flags={}",
        head & cq_mask,
        cqe.user_data,
        cqe.res,
        cqe.flags
    );
    // Release: our read of the CQE happens before the kernel can see the
    // slot as free and overwrite it.
    cq_head.store(head.wrapping_add(1), Ordering::Release);
    inspect("reap", "after reaping the CQE:");
    // ANCHOR_END: reap

    if let Some(dir) = svg_dir {
        let written = ring_frames::write_frames(dir, &frames)
            .with_context(|| format!("writing the frames to {}", dir.display()))?;
        println!("wrote {} frames to {}", written.len(), dir.display());
    }
    Ok(())
}

/// The index array, the SQE slots and the CQE slots as they are now, for
/// `ring_frames`. The titles say what the step did.
///
/// # Safety
/// The maps must be this ring's, and no operation may be in flight.
unsafe fn snapshot(
    p: &Params,
    sq: &Map,
    sqes: &Map,
    cq: &Map,
    name: &str,
    when: &str,
) -> Snapshot {
    let (s, c) = (&p.sq_off, &p.cq_off);
    let load = |map: &Map, offset: u32| {
        // SAFETY: the offset comes from the kernel; `at` checks the bounds.
        unsafe { (*map.at::<AtomicU32>(offset)).load(Ordering::Acquire) }
    };
    let zero = |bytes: &[u8]| bytes.iter().all(|&b| b == 0);
    let mut snap = Snapshot {
        name: name.to_string(),
        title: format!("The ring {}", when.trim_end_matches(':')),
        sq_head: load(sq, s.head),
        sq_tail: load(sq, s.tail),
        cq_head: load(cq, c.head),
        cq_tail: load(cq, c.tail),
        sq_array: Vec::new(),
        sqes: Vec::new(),
        cqes: Vec::new(),
    };
    for i in 0..p.sq_entries {
        // SAFETY: inside the mappings (`at` checks); nobody writes them now.
        let (index, sqe) = unsafe {
            let sqe = sqes.at::<Sqe>(i * size_of::<Sqe>() as u32);
            let raw = std::slice::from_raw_parts(sqe.cast::<u8>(), size_of::<Sqe>());
            (
                *sq.at::<u32>(s.array + 4 * i),
                (!zero(raw)).then(|| sqe.read()),
            )
        };
        snap.sq_array.push(index);
        snap.sqes.push(sqe.map(|sqe| SqeSlot {
            opcode: sqe.opcode,
            user_data: sqe.user_data,
        }));
    }
    for i in 0..p.cq_entries {
        // SAFETY: as above.
        let cqe = unsafe {
            let cqe = cq.at::<Cqe>(c.cqes + i * size_of::<Cqe>() as u32);
            let raw = std::slice::from_raw_parts(cqe.cast::<u8>(), size_of::<Cqe>());
            (!zero(raw)).then(|| cqe.read())
        };
        snap.cqes.push(cqe.map(|cqe| CqeSlot {
            user_data: cqe.user_data,
            res: cqe.res,
            flags: cqe.flags,
        }));
    }
    snap
}
