//! The operations of one batch that the kernel may still be working on, and
//! the one rule about their buffers: they go only when the ring is idle.
//!
//! [`InFlight`] borrows the ring and the buffers together. It hands each SQE a
//! `user_data` that names the batch and the operation, so that a CQE from
//! anywhere else can never pass for one of ours. It gives the buffers back
//! only when nothing of the batch is in flight, and it leaks them, never frees
//! them, when that moment cannot be reached: after io_uring_enter keeps
//! failing, after an early return, or during a panic. Exercises 2 and 3 use
//! it for every batch.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{anyhow, bail, Context};
use io_uring::{squeue, IoUring};

/// io_uring_enter calls in a row that neither consumed an SQE nor brought a
/// CQE of the batch, after which [`InFlight`] stops waiting and leaks.
pub const STALLS_BEFORE_GIVING_UP: usize = 3;

/// Memory the kernel may write into, which can be given up for good.
pub trait Leak {
    /// Leaves the memory allocated and unreachable: never freed, never reused.
    fn leak_buffers(&mut self);
}

impl Leak for Vec<u8> {
    fn leak_buffers(&mut self) {
        std::mem::forget(std::mem::take(self));
    }
}

impl<T: Leak> Leak for [T] {
    fn leak_buffers(&mut self) {
        self.iter_mut().for_each(Leak::leak_buffers);
    }
}

/// One io_uring_enter call, as the batch made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// SQEs the kernel consumed: what the call returned.
    pub consumed: usize,
    /// Completions the call waited for (`min_complete`).
    pub waited_for: usize,
    /// Whether a push had found the SQ full, which is why the call was made.
    pub full_sq: bool,
}

/// Batch numbers, so that two batches never share a `user_data`.
static NEXT_BATCH: AtomicU32 = AtomicU32::new(1);

// ANCHOR: struct
/// A batch of operations on `ring` whose buffers live in `bufs`.
pub struct InFlight<'a, B: Leak + ?Sized> {
    ring: &'a mut IoUring,
    bufs: &'a mut B,
    /// The batch number, in the high 32 bits of every user_data.
    batch: u64,
    /// The user_data of every SQE pushed whose CQE has not come yet.
    pending_ids: HashSet<u64>,
    /// The first error; after it nothing new is queued.
    failed: Option<anyhow::Error>,
    /// io_uring_enter calls in a row that moved nothing.
    stalls: usize,
    gave_up: bool,
    calls: Vec<Call>,
}

impl<'a, B: Leak + ?Sized> InFlight<'a, B> {
    /// Starts a batch. A ring with SQEs already queued is refused: they are
    /// someone else's, left by a batch that gave up, and would run on their
    /// buffers at our next io_uring_enter.
    pub fn new(ring: &'a mut IoUring, bufs: &'a mut B) -> anyhow::Result<Self> {
        let queued = ring.submission().len();
        if queued > 0 {
            bail!("the ring has {queued} SQEs of an earlier batch queued: drop it");
        }
        Ok(InFlight {
            ring,
            bufs,
            batch: u64::from(NEXT_BATCH.fetch_add(1, Ordering::Relaxed)) << 32,
            pending_ids: HashSet::new(),
            failed: None,
            stalls: 0,
            gave_up: false,
            calls: Vec::new(),
        })
    }
    // ANCHOR_END: struct

    /// The buffers, to build SQEs from or to read after their CQE.
    pub fn buffers(&mut self) -> &mut B {
        self.bufs
    }

    /// Operations pushed whose CQE has not come yet.
    pub fn pending(&self) -> usize {
        self.pending_ids.len()
    }

    /// Whether nothing of the batch can touch the buffers any more: every CQE
    /// came, or the buffers were leaked.
    pub fn is_idle(&self) -> bool {
        self.pending_ids.is_empty() || self.gave_up
    }

    /// False after the first error: the caller then queues nothing more.
    pub fn ok(&self) -> bool {
        self.failed.is_none()
    }

    /// Records an error of the caller's; the first one is kept.
    pub fn fail(&mut self, err: anyhow::Error) {
        self.failed.get_or_insert(err);
    }

    // ANCHOR: push
    /// Queues `entry` as operation `index` of the batch. When the SQ is full
    /// it submits what is queued first, which frees the slots. Returns false,
    /// with the reason kept for [`finish`](Self::finish), if it cannot queue.
    ///
    /// # Safety
    /// Every buffer and file descriptor the SQE names must stay valid until
    /// its CQE is reaped: keep them in the buffers lent to this batch.
    pub unsafe fn push(&mut self, entry: squeue::Entry, index: usize) -> bool {
        let user_data = self.batch | index as u64;
        if index > u32::MAX as usize || self.pending_ids.contains(&user_data) {
            self.fail(anyhow!("operation {index} is already in flight"));
            return false;
        }
        let entry = entry.user_data(user_data);
        // SAFETY: the caller's promise, passed on.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            match self.enter(0, true) {
                Ok(0) => self.fail(anyhow!("io_uring_enter took no SQE from a full SQ")),
                Ok(_) => {}
                Err(err) => self.fail(err),
            }
            // SAFETY: as above.
            if !self.ok() || unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.fail(anyhow!("the SQ stays full"));
                return false;
            }
        }
        self.pending_ids.insert(user_data);
        true
    }
    // ANCHOR_END: push

    /// io_uring_enter through the crate: submits every queued SQE and waits
    /// for `want` completions, again after a signal. Returns how many SQEs the
    /// kernel consumed.
    fn enter(&mut self, want: usize, full_sq: bool) -> anyhow::Result<usize> {
        loop {
            let result = self.ring.submit_and_wait(want);
            let consumed = *result.as_ref().unwrap_or(&0);
            let waited_for = want;
            self.calls.push(Call {
                consumed,
                waited_for,
                full_sq,
            });
            match result {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.context("io_uring_enter"),
            }
        }
    }

    // ANCHOR: wait_for
    /// Submits what is queued, waits for `want` CQEs (at most those in flight)
    /// and hands each CQE of the batch to `each` as (buffers, index, result).
    /// A CQE of another batch is an error, never taken for one of ours.
    pub fn wait_for(
        &mut self,
        want: usize,
        mut each: impl FnMut(&mut B, usize, i32) -> anyhow::Result<()>,
    ) {
        if self.is_idle() {
            return;
        }
        let entered = self.enter(want.min(self.pending()), false);
        let mut reaped = 0;
        for cqe in self.ring.completion() {
            let user_data = cqe.user_data();
            if !self.pending_ids.remove(&user_data) {
                let err = anyhow!("a CQE of no operation here: user_data {user_data:#x}");
                self.failed.get_or_insert(err);
                continue;
            }
            reaped += 1;
            let index = (user_data & u64::from(u32::MAX)) as usize;
            if let Err(err) = each(self.bufs, index, cqe.result()) {
                self.failed.get_or_insert(err);
            }
        }
        match entered {
            Ok(consumed) if consumed > 0 || reaped > 0 => self.stalls = 0,
            Ok(_) => self.stalls += 1,
            Err(err) => {
                self.failed.get_or_insert(err);
                self.stalls += 1;
            }
        }
        if self.stalls == STALLS_BEFORE_GIVING_UP {
            self.give_up();
        }
    }
    // ANCHOR_END: wait_for

    /// Ends the batch: returns its io_uring_enter calls, or its first error.
    /// Callers wait until [`is_idle`](Self::is_idle); if they did not, this
    /// waits for the rest and reports the slip as an error.
    pub fn finish(mut self) -> anyhow::Result<Vec<Call>> {
        if !self.is_idle() {
            self.fail(anyhow!(
                "finish with {} operations in flight",
                self.pending()
            ));
        }
        while !self.is_idle() {
            self.wait_for(self.pending(), |_, _, _| Ok(()));
        }
        match self.failed.take() {
            Some(err) => Err(err),
            None => Ok(std::mem::take(&mut self.calls)),
        }
    }

    // ANCHOR: give_up
    /// The ring keeps failing, so we cannot learn when the kernel is done with
    /// the buffers. Freeing them could let it write into memory handed out
    /// again; leaking them is sound, and keeps the process alive to report the
    /// error in one line, which abort() would not.
    fn give_up(&mut self) {
        self.bufs.leak_buffers();
        self.gave_up = true;
        let err = self.failed.take().unwrap_or_else(|| anyhow!("no progress"));
        let n = self.pending();
        self.failed = Some(err.context(format!(
            "gave up on {n} operations in flight, leaking their buffers"
        )));
    }
}

impl<B: Leak + ?Sized> Drop for InFlight<'_, B> {
    /// Reached with operations in flight only on an early return or a panic:
    /// reap what has already completed, without waiting (a read of an idle
    /// pipe may never complete), and leak the buffers if anything is left.
    fn drop(&mut self) {
        if self.is_idle() {
            return;
        }
        for cqe in self.ring.completion() {
            self.pending_ids.remove(&cqe.user_data());
        }
        if !self.pending_ids.is_empty() {
            self.bufs.leak_buffers();
        }
    }
}
// ANCHOR_END: give_up
