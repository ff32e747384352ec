//! Chapter 8's event loop: one ring, one thread, no runtime.
//!
//! A multishot accept feeds connections; each connection has one multishot
//! receive that picks buffers from a shared provided buffer ring; each
//! buffer's bytes go back with sends, one at a time per connection, and the
//! buffer returns to the ring when its send has completed. Every CQE is
//! routed by its `user_data` ([`UserData`]).

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, types, IoUring, SubmissionQueue, Submitter};

use uring_book::echo::buf_ring::BufRing;
use uring_book::echo::slots::Slots;
use uring_book::echo::user_data::{Key, Op, UserData, NO_BUF};
use uring_book::{diagnose, ex5_tcp_echo};

/// The buffer group of the ring (any 16-bit number; one group per ring).
pub const GROUP: u16 = 0;

// ANCHOR: limits
/// Bytes a connection may have waiting to go back before it stops
/// receiving. The kernel may add one burst of up to 32 buffers (128 KiB)
/// before the stop takes effect, so a stalled client holds at most 256 KiB of
/// the 16 MiB ring: 50 of them leave a fifth of it to everyone else.
pub const RECV_LIMIT: usize = 128 << 10;
/// A stopped connection receives again once its sends bring it below this.
pub const RESUME_BELOW: usize = RECV_LIMIT / 2;
// ANCHOR_END: limits

/// How long accepting pauses after EMFILE or ENFILE.
pub const ACCEPT_BACKOFF: Duration = ex5_tcp_echo::ACCEPT_BACKOFF;
/// How long a stopping loop waits for the last CQEs before giving up.
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// How completions reach the thread (both need `IORING_SETUP_SINGLE_ISSUER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskRun {
    /// `IORING_SETUP_DEFER_TASKRUN` (6.1): only when we wait for completions.
    Defer,
    /// `IORING_SETUP_COOP_TASKRUN` (5.19): at our next return from the kernel.
    Coop,
}

/// How the loop is set up. [`Config::default`] is what exercise 8 runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub taskrun: TaskRun,
    /// Register the ring's own descriptor (5.18) for `io_uring_enter`.
    pub register_ring: bool,
    /// Accept into direct descriptors (5.19) instead of the file table.
    pub direct: bool,
    pub buffers: u16,
    pub buf_size: u32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub quiet: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            taskrun: TaskRun::Defer,
            register_ring: true,
            direct: false,
            buffers: 4096,
            buf_size: 4096,
            sq_entries: 4096,
            cq_entries: 16384,
            quiet: false,
        }
    }
}

/// What one loop did, for the summary line and the tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub accepted: u64,
    pub bytes: u64,
    /// Multishot receives that ended with ENOBUFS: the ring was empty.
    pub enobufs: u64,
    /// Multishot receives that ended with data and were armed again.
    pub rearmed: u64,
    /// Times a connection stopped receiving because of RECV_LIMIT.
    pub paused: u64,
    /// CQEs that found their connection gone.
    pub stale: u64,
    /// Accepts that failed for lack of descriptors and waited.
    pub backoffs: u64,
    /// The most bytes one connection had waiting to go back.
    pub max_queued: usize,
    /// Bytes copied out of the ring by paused connections.
    pub spilled: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.accepted += other.accepted;
        self.bytes += other.bytes;
        self.enobufs += other.enobufs;
        self.rearmed += other.rearmed;
        self.paused += other.paused;
        self.stale += other.stale;
        self.backoffs += other.backoffs;
        self.max_queued = self.max_queued.max(other.max_queued);
        self.spilled += other.spilled;
    }
}

/// A connection's socket: a descriptor, or a slot of the ring's file table.
#[derive(Clone, Copy, Debug)]
enum Sock {
    Fd(RawFd),
    Fixed(u32),
}

/// Builds `$op` with the connection's socket as `$fd`, whichever kind it is.
macro_rules! on_socket {
    ($sock:expr, |$fd:ident| $op:expr) => {
        match $sock {
            Sock::Fd(raw) => {
                let $fd = types::Fd(raw);
                $op
            }
            Sock::Fixed(index) => {
                let $fd = types::Fixed(index);
                $op
            }
        }
    };
}

// ANCHOR: chunk
/// Received bytes waiting to go back: `start..end` of a ring buffer, or of
/// a copy made by `spill`.
struct Chunk {
    bytes: Bytes,
    start: u32,
    end: u32,
}

enum Bytes {
    /// Buffer `bid` of the ring, lent to us until this chunk is sent.
    Ring(u16),
    /// A copy out of the ring: its buffer went back already.
    Heap(Box<[u8]>),
}

// ANCHOR_END: chunk

// ANCHOR: conn
/// Where a connection's multishot receive is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// In flight.
    Armed,
    /// In flight, cancelled for backpressure: its final CQE is coming.
    Stopping,
    /// Not in flight: too much waits to be sent.
    Paused,
    /// Not in flight: it ended with ENOBUFS and waits for buffers.
    Starved,
    /// Not in flight, for good: EOF or an error.
    Ended,
}

struct Conn {
    sock: Sock,
    /// Received, not yet sent back, in order. Only the front is ever sent.
    queue: VecDeque<Chunk>,
    queued: usize,
    /// A send of the front chunk is in flight.
    sending: bool,
    recv: Recv,
    /// The error that ended the connection, if one did.
    failed: Option<i32>,
    closing: bool,
    echoed: u64,
    peer: Option<SocketAddr>,
}
// ANCHOR_END: conn

impl Conn {
    fn new(sock: Sock, peer: Option<SocketAddr>) -> Conn {
        Conn {
            sock,
            queue: VecDeque::new(),
            queued: 0,
            sending: false,
            recv: Recv::Ended,
            failed: None,
            closing: false,
            echoed: 0,
            peer,
        }
    }

    fn receiving(&self) -> bool {
        matches!(self.recv, Recv::Armed | Recv::Stopping)
    }
}

// ANCHOR: recv_end
/// What a multishot receive's last CQE (no `IORING_CQE_F_MORE`) means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvEnd {
    /// It ended without an error (the CQ was full, say): arm it again.
    Rearm,
    /// We cancelled it to stop receiving: stay stopped until sends drain.
    Pause,
    /// ENOBUFS: the ring was empty. The data waits in the socket.
    Starve,
    /// The client shut down its side (res 0).
    Eof,
    /// An error, such as ECONNRESET: the connection is over.
    Fail(i32),
}

pub fn recv_end(res: i32, was: Recv) -> RecvEnd {
    let cancelled = was == Recv::Stopping;
    match res {
        0 => RecvEnd::Eof,
        r if r > 0 && cancelled => RecvEnd::Pause,
        r if r > 0 => RecvEnd::Rearm,
        r if cancelled && (r == -libc::ECANCELED || r == -libc::ENOBUFS) => {
            RecvEnd::Pause
        }
        r if r == -libc::ENOBUFS => RecvEnd::Starve,
        r => RecvEnd::Fail(-r),
    }
}
// ANCHOR_END: recv_end

// ANCHOR: sq
/// The submission side of the ring, for the loop's whole life (a kept
/// `Submitter` remembers a registered ring descriptor).
pub struct Sq<'a> {
    pub submitter: Submitter<'a>,
    queue: SubmissionQueue<'a>,
}

impl Sq<'_> {
    /// Queues `entry`; a full queue is handed to the kernel first.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: what an entry points to outlives the request: buffers
            // of the ring (unregistered only after the last CQE), and the
            // backoff Timespec in the State (the kernel copies it at submit).
            if unsafe { self.queue.push(entry) }.is_ok() {
                return Ok(());
            }
            self.queue.sync();
            self.submitter.submit()?;
            self.queue.sync();
        }
    }

    // ANCHOR_END: sq

    /// Submits what is queued and waits for at least one completion, for at
    /// most `limit` if given.
    fn wait(&mut self, limit: Option<&Timespec>) -> io::Result<()> {
        self.queue.sync();
        let waited = match limit {
            None => self.submitter.submit_and_wait(1),
            Some(ts) => self
                .submitter
                .submit_with_args(1, &SubmitArgs::new().timespec(ts)),
        };
        match waited {
            Ok(_) => Ok(()),
            // EINTR: a signal. EBUSY: the CQ overflowed and the kernel wants
            // us to reap first. ETIME: the limit passed. Reaping comes next.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::ETIME)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Everything one loop knows besides the ring itself.
pub struct State {
    pub bufs: BufRing,
    conns: Slots<Conn>,
    listener: RawFd,
    stop_fd: RawFd,
    /// Connections waiting for buffers after ENOBUFS, oldest first.
    starved: VecDeque<Key>,
    /// Requests submitted whose last CQE has not come yet.
    pub inflight: usize,
    pub stopping: bool,
    pub stats: Stats,
    config: Config,
    backoff: Timespec,
}

impl State {
    pub fn new(listener: RawFd, stop_fd: RawFd, bufs: BufRing, config: Config) -> State {
        State {
            bufs,
            conns: Slots::default(),
            listener,
            stop_fd,
            starved: VecDeque::new(),
            inflight: 0,
            stopping: false,
            stats: Stats::default(),
            backoff: Timespec::from(ACCEPT_BACKOFF),
            config,
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Queues `entry` and counts it in flight until its last CQE.
    fn push(&mut self, sq: &mut Sq, entry: squeue::Entry) -> io::Result<()> {
        self.inflight += 1;
        sq.push(&entry)
    }
}

// ANCHOR: setup
/// The ring: one submitter (SINGLE_ISSUER, 6.0), completions run when we
/// wait for them (DEFER_TASKRUN, 6.1) or else cooperatively (COOP_TASKRUN,
/// 5.19), and a CQ four times the SQ, since a multishot request can post
/// many CQEs for one SQE. Returns the mode it got.
pub fn ring(config: &Config) -> io::Result<(IoUring, TaskRun)> {
    let build = |taskrun| {
        let mut builder = IoUring::builder();
        builder
            .setup_single_issuer()
            .setup_cqsize(config.cq_entries)
            .setup_submit_all();
        match taskrun {
            TaskRun::Defer => builder.setup_defer_taskrun(),
            TaskRun::Coop => builder.setup_coop_taskrun().setup_taskrun_flag(),
        };
        builder.build(config.sq_entries)
    };
    match build(config.taskrun) {
        // EINVAL: a kernel before 6.1 does not know DEFER_TASKRUN.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            build(TaskRun::Coop).map(|ring| (ring, TaskRun::Coop))
        }
        result => result.map(|ring| (ring, config.taskrun)),
    }
}
// ANCHOR_END: setup

// ANCHOR: serve
/// Serves `listener` on this thread until the eventfd `stop_fd` becomes
/// readable, then stops: cancels everything in flight, waits for every CQE,
/// and only then frees the buffer ring.
pub fn serve(
    listener: &TcpListener,
    stop_fd: RawFd,
    config: &Config,
) -> anyhow::Result<Stats> {
    let (mut uring, _) = ring(config).map_err(diagnose::setup)?;
    let mut bufs = BufRing::new(config.buffers, config.buf_size)?;
    // SAFETY: `bufs` moves into the State and is unregistered below only
    // once no request is in flight; otherwise its Drop leaks the memory.
    unsafe { bufs.register(&uring.submitter(), GROUP) }.map_err(|e| {
        anyhow::anyhow!("registering the buffer ring: {}", diagnose::errno_text(&e))
    })?;
    if config.direct {
        file_table(&uring)?; // for accepted sockets as direct descriptors
    }
    let mut state = State::new(listener.as_raw_fd(), stop_fd, bufs, config.clone());
    if let Err(err) = event_loop(&mut uring, &mut state) {
        // Requests may still be in flight, reading the copies the state owns
        // and writing into the ring's buffers: leak both rather than free
        // them under the kernel. Closing the ring cancels the requests.
        drop(uring);
        std::mem::forget(state);
        return Err(err.into());
    }
    // The loop ends only when no request is in flight: nothing can write
    // into the buffers any more.
    state.bufs.unregister(&uring.submitter())?;
    drop(uring);
    anyhow::ensure!(
        state.connections() == 0,
        "{} connections were still open after stopping",
        state.connections()
    );
    Ok(state.stats)
}
// ANCHOR_END: serve

/// A sparse table of direct descriptors, as large as RLIMIT_NOFILE allows
/// (registering more fails with EMFILE).
fn file_table(uring: &IoUring) -> io::Result<()> {
    let limit = uring_book::system::nofile_limit()?.soft.unwrap_or(1 << 20);
    uring
        .submitter()
        .register_files_sparse(limit.min(1 << 20) as u32)
}

// ANCHOR: loop
/// Arms the accept and the stop signal, then turns: submit, wait, take
/// every CQE there is, handle each. Ends once stopping and nothing is left
/// in flight.
pub fn event_loop(uring: &mut IoUring, s: &mut State) -> io::Result<()> {
    let (submitter, queue, mut cq) = uring.split();
    let mut sq = Sq { submitter, queue };
    if s.config.register_ring {
        sq.submitter.register_ring_fd()?;
    }
    s.arm_accept(&mut sq)?;
    s.watch_stop(&mut sq)?;
    let mut batch = Vec::with_capacity(cq.capacity());
    let mut stop_deadline = None;
    while !(s.stopping && s.inflight == 0) {
        s.bufs.publish(); // buffers given back are the kernel's again
        let limit = s
            .stopping
            .then(|| Timespec::from(Duration::from_millis(100)));
        sq.wait(limit.as_ref())?;
        cq.sync();
        batch.extend((&mut cq).map(|c| (c.user_data(), c.result(), c.flags())));
        cq.sync(); // the CQ slots are free for the kernel again
        for &(user_data, res, flags) in &batch {
            s.complete(&mut sq, user_data, res, flags)?;
        }
        batch.clear();
        s.check_stop_deadline(&mut stop_deadline)?;
    }
    Ok(())
}
// ANCHOR_END: loop

impl State {
    // ANCHOR: dispatch
    /// Routes one CQE by its `user_data`.
    pub fn complete(
        &mut self,
        sq: &mut Sq,
        user_data: u64,
        res: i32,
        flags: u32,
    ) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.inflight -= 1; // the request's last CQE
        }
        let Some(ud) = UserData::unpack(user_data) else {
            return Err(io::Error::other(format!(
                "a CQE we never asked for: {user_data:#x}"
            )));
        };
        match ud.op {
            Op::Accept => self.accepted(sq, res, flags),
            Op::Backoff => self.arm_accept(sq),
            Op::Stop => self.stop(sq),
            Op::Cancel => Ok(()),
            _ if self.conns.get_mut(ud.key).is_none() => {
                self.stale(ud, flags);
                Ok(())
            }
            Op::Recv => self.received(sq, ud.key, res, flags),
            Op::Send => self.sent(sq, ud.key, res),
            Op::Close => {
                self.closed(ud.key);
                Ok(())
            }
        }
    }

    // ANCHOR_END: dispatch

    // ANCHOR: stale_cqe
    /// A CQE of a connection that is gone: it may still carry a buffer,
    /// which goes back to the ring; nothing else happens.
    fn stale(&mut self, ud: UserData, flags: u32) {
        self.stats.stale += 1;
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.bufs.taken(bid);
            self.bufs.give_back(bid);
        }
        if ud.op == Op::Send && ud.buf != NO_BUF {
            self.bufs.give_back(ud.buf); // its send is over
        }
    }
    // ANCHOR_END: stale_cqe

    // ANCHOR: arm_accept
    fn arm_accept(&mut self, sq: &mut Sq) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        // Direct descriptors cannot be close-on-exec: they are not in the
        // file table at all.
        let cloexec = if self.config.direct {
            0
        } else {
            libc::SOCK_CLOEXEC
        };
        let accept = opcode::AcceptMulti::new(types::Fd(self.listener))
            .allocate_file_index(self.config.direct)
            .flags(cloexec)
            .build()
            .user_data(UserData::of(Op::Accept));
        self.push(sq, accept)
    }

    // ANCHOR_END: arm_accept

    // ANCHOR: accepted
    fn accepted(&mut self, sq: &mut Sq, res: i32, flags: u32) -> io::Result<()> {
        if res >= 0 {
            self.open(sq, res)?;
        } else if !self.stopping {
            let err = io::Error::from_raw_os_error(-res);
            if ex5_tcp_echo::is_out_of_resources(&err) {
                // The client waits in the accept queue. A timeout, not a
                // sleep: the open connections keep being served meanwhile.
                let why = diagnose::errno_text(&err);
                eprintln!("accept failed: {why}; retrying in {ACCEPT_BACKOFF:?}");
                self.stats.backoffs += 1;
                let timeout = opcode::Timeout::new(&self.backoff).build();
                return self.push(sq, timeout.user_data(UserData::of(Op::Backoff)));
            }
            if !ex5_tcp_echo::is_per_connection(&err) {
                return Err(err); // EBADF, EINVAL...: the listener is broken
            }
        }
        if !cqueue::more(flags) {
            self.arm_accept(sq)?; // this accept ended: arm another
        }
        Ok(())
    }
    // ANCHOR_END: accepted

    fn open(&mut self, sq: &mut Sq, res: i32) -> io::Result<()> {
        let sock = if self.config.direct {
            Sock::Fixed(res as u32)
        } else {
            Sock::Fd(res)
        };
        let peer = match sock {
            Sock::Fd(fd) if !self.config.quiet => peer_addr(fd),
            _ => None,
        };
        self.stats.accepted += 1;
        let Some(key) = self.conns.insert(Conn::new(sock, peer)) else {
            // 2^24 connections on one ring: refuse this one. Its close
            // belongs to no slot, so its CQE is routed like a cancel's.
            let close = on_socket!(sock, |fd| opcode::Close::new(fd).build());
            return self.push(sq, close.user_data(UserData::of(Op::Cancel)));
        };
        self.arm_recv(sq, key)
    }

    // ANCHOR: arm_recv
    fn arm_recv(&mut self, sq: &mut Sq, key: Key) -> io::Result<()> {
        let stopping = self.stopping;
        let conn = self.conns.get_mut(key).expect("a live connection");
        if stopping {
            conn.recv = Recv::Ended;
            return self.maybe_close(sq, key);
        }
        conn.recv = Recv::Armed;
        let recv = on_socket!(conn.sock, |fd| opcode::RecvMulti::new(fd, GROUP).build());
        self.push(sq, recv.user_data(UserData::on(Op::Recv, key, 0)))
    }
    // ANCHOR_END: arm_recv

    // ANCHOR: received
    fn received(
        &mut self,
        sq: &mut Sq,
        key: Key,
        res: i32,
        flags: u32,
    ) -> io::Result<()> {
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.bufs.taken(bid); // the kernel filled it: ours until sent
            let conn = self.conns.get_mut(key).expect("checked by complete");
            let end = res.max(0) as u32;
            conn.queue.push_back(Chunk {
                bytes: Bytes::Ring(bid),
                start: 0,
                end,
            });
            conn.queued += end as usize;
            self.stats.max_queued = self.stats.max_queued.max(conn.queued);
        }
        if !cqueue::more(flags) {
            self.receive_ended(sq, key, res)?; // no IORING_CQE_F_MORE: it is over
        }
        self.send_front(sq, key)?;
        self.throttle(sq, key)
    }
    // ANCHOR_END: received

    // ANCHOR: receive_ended
    /// The multishot receive is over; what comes next depends on why.
    fn receive_ended(&mut self, sq: &mut Sq, key: Key, res: i32) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("a live connection");
        match recv_end(res, conn.recv) {
            RecvEnd::Rearm if conn.queued >= RECV_LIMIT => self.pause(key),
            RecvEnd::Rearm => {
                self.stats.rearmed += 1;
                return self.arm_recv(sq, key);
            }
            RecvEnd::Pause => self.pause(key),
            RecvEnd::Starve => {
                conn.recv = Recv::Starved;
                self.stats.enobufs += 1;
                self.starved.push_back(key);
                return self.feed_starved(sq);
            }
            RecvEnd::Eof => conn.recv = Recv::Ended,
            RecvEnd::Fail(errno) => {
                conn.recv = Recv::Ended;
                return self.fail(sq, key, errno);
            }
        }
        self.resume(sq, key)?;
        self.maybe_close(sq, key)
    }
    // ANCHOR_END: receive_ended

    // ANCHOR: throttle
    /// Backpressure: past RECV_LIMIT bytes waiting, cancel the receive. Its
    /// final CQE (with data, ECANCELED or ENOBUFS) then leaves it Paused.
    fn throttle(&mut self, sq: &mut Sq, key: Key) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("a live connection");
        if conn.recv != Recv::Armed || conn.queued < RECV_LIMIT {
            return Ok(());
        }
        conn.recv = Recv::Stopping;
        self.stats.paused += 1;
        let target = UserData::on(Op::Recv, key, 0);
        let cancel = opcode::AsyncCancel::new(target).build();
        self.push(sq, cancel.user_data(UserData::on(Op::Cancel, key, 0)))
    }

    /// The receive has stopped: the connection waits for its sends to drain.
    fn pause(&mut self, key: Key) {
        self.conns.get_mut(key).expect("a live connection").recv = Recv::Paused;
        self.spill(key);
    }
    // ANCHOR_END: throttle

    // ANCHOR: spill
    /// The ring is shared: a paused client must not keep a large part of it.
    /// While fewer than half of the buffers are free, the bytes a paused
    /// connection has waiting are copied out, and their buffers go back at
    /// once. (The buffer of a send in flight stays until its CQE.)
    fn spill(&mut self, key: Key) {
        if self.bufs.available() >= self.bufs.count() as u32 / 2 {
            return;
        }
        let conn = self.conns.get_mut(key).expect("a live connection");
        let in_flight = usize::from(conn.sending);
        for chunk in conn.queue.iter_mut().skip(in_flight) {
            let Bytes::Ring(bid) = chunk.bytes else {
                continue;
            };
            let copy = &self.bufs.bytes(bid, chunk.end as usize)[chunk.start as usize..];
            self.stats.spilled += copy.len() as u64;
            *chunk = Chunk {
                end: copy.len() as u32,
                bytes: Bytes::Heap(copy.into()),
                start: 0,
            };
            self.bufs.give_back(bid);
        }
    }
    // ANCHOR_END: spill

    // ANCHOR: resume
    /// A paused connection receives again once its sends have drained it.
    fn resume(&mut self, sq: &mut Sq, key: Key) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("a live connection");
        if conn.recv == Recv::Paused
            && conn.queued < RESUME_BELOW
            && conn.failed.is_none()
        {
            return self.arm_recv(sq, key);
        }
        Ok(())
    }
    // ANCHOR_END: resume

    /// Connections that ran out of buffers start again, oldest first, as
    /// buffers come back: at most one per free buffer, so that they do not
    /// all fail again at once.
    fn feed_starved(&mut self, sq: &mut Sq) -> io::Result<()> {
        let mut budget = self.bufs.available();
        while budget > 0 {
            let Some(key) = self.starved.pop_front() else {
                break;
            };
            match self.conns.get_mut(key) {
                Some(conn) if conn.recv == Recv::Starved => {
                    budget -= 1;
                    if conn.queued >= RECV_LIMIT {
                        self.pause(key);
                    } else {
                        self.arm_recv(sq, key)?;
                    }
                }
                _ => {} // gone, or no longer waiting
            }
        }
        Ok(())
    }

    // ANCHOR: send
    /// Sends the front chunk, unless a send is in flight: one at a time
    /// keeps the bytes of a connection in order.
    fn send_front(&mut self, sq: &mut Sq, key: Key) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("a live connection");
        let Some(chunk) = conn.queue.front() else {
            return Ok(());
        };
        if conn.sending || conn.failed.is_some() || self.stopping {
            return Ok(());
        }
        conn.sending = true;
        let (base, bid) = match &chunk.bytes {
            Bytes::Ring(bid) => (self.bufs.addr(*bid).cast_const(), *bid),
            Bytes::Heap(copy) => (copy.as_ptr(), NO_BUF),
        };
        // SAFETY: start < end, both within the buffer or the copy, which
        // stays where it is, unchanged, until this send's CQE: the chunk
        // leaves the queue only then, and the connection only after that.
        let ptr = unsafe { base.add(chunk.start as usize) };
        let len = chunk.end - chunk.start;
        let send = on_socket!(conn.sock, |fd| opcode::Send::new(fd, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build());
        self.push(sq, send.user_data(UserData::on(Op::Send, key, bid)))
    }

    // ANCHOR_END: send

    // ANCHOR: sent
    fn sent(&mut self, sq: &mut Sq, key: Key, res: i32) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("checked by complete");
        conn.sending = false;
        if res <= 0 {
            // EPIPE or ECONNRESET: the client is gone. (A stream socket
            // takes 0 bytes only when broken.)
            return self.fail(sq, key, if res == 0 { libc::EPIPE } else { -res });
        }
        let chunk = conn.queue.front_mut().expect("a send was in flight");
        chunk.start += res as u32; // a partial send leaves the rest in front
        conn.queued -= res as usize;
        conn.echoed += res as u64;
        self.stats.bytes += res as u64;
        if chunk.start == chunk.end {
            let done = conn.queue.pop_front().expect("the front chunk");
            if let Bytes::Ring(bid) = done.bytes {
                self.bufs.give_back(bid); // its bytes are in the socket now
                self.feed_starved(sq)?;
            }
        }
        self.send_front(sq, key)?;
        self.resume(sq, key)?;
        self.maybe_close(sq, key)
    }
    // ANCHOR_END: sent

    /// The connection broke (`errno`): what waits will never be sent.
    fn fail(&mut self, sq: &mut Sq, key: Key, errno: i32) -> io::Result<()> {
        let conn = self.conns.get_mut(key).expect("a live connection");
        conn.failed.get_or_insert(errno);
        let keep = usize::from(conn.sending); // a send in flight keeps its buffer
        for chunk in conn.queue.drain(keep..) {
            conn.queued -= (chunk.end - chunk.start) as usize;
            if let Bytes::Ring(bid) = chunk.bytes {
                self.bufs.give_back(bid);
            }
        }
        if conn.recv == Recv::Armed {
            conn.recv = Recv::Stopping;
            let cancel = opcode::AsyncCancel::new(UserData::on(Op::Recv, key, 0)).build();
            self.push(sq, cancel.user_data(UserData::on(Op::Cancel, key, 0)))?;
        }
        self.maybe_close(sq, key)
    }

    // ANCHOR: close
    /// Closes the socket once nothing is in flight on it, and it has either
    /// sent everything after EOF, or failed, or the server is stopping.
    fn maybe_close(&mut self, sq: &mut Sq, key: Key) -> io::Result<()> {
        let stopping = self.stopping;
        let conn = self.conns.get_mut(key).expect("a live connection");
        let idle = !conn.sending && !conn.receiving() && !conn.closing;
        let drained = conn.recv == Recv::Ended && conn.queue.is_empty();
        if !idle || !(drained || conn.failed.is_some() || stopping) {
            return Ok(());
        }
        for chunk in conn.queue.drain(..) {
            if let Bytes::Ring(bid) = chunk.bytes {
                self.bufs.give_back(bid); // unsent: never will be
            }
        }
        conn.closing = true;
        let close = on_socket!(conn.sock, |fd| opcode::Close::new(fd).build());
        self.push(sq, close.user_data(UserData::on(Op::Close, key, 0)))
    }

    /// The Close CQE: the slot is free, and its next connection gets a new
    /// generation.
    fn closed(&mut self, key: Key) {
        let conn = self.conns.remove(key).expect("checked by complete");
        debug_assert!(!conn.sending, "a send may still read what it owns");
        if self.config.quiet || self.stopping {
            return;
        }
        let peer = conn.peer.map_or("a client".to_string(), |p| p.to_string());
        match conn.failed {
            None => println!("{peer}: echoed {} bytes, closed", conn.echoed),
            Some(errno) => {
                let err = io::Error::from_raw_os_error(errno);
                println!("{peer}: {}", diagnose::errno_text(&err));
            }
        }
    }
    // ANCHOR_END: close

    // ANCHOR: stop
    /// Polls the stop eventfd: it becomes readable when a signal arrives.
    fn watch_stop(&mut self, sq: &mut Sq) -> io::Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(self.stop_fd), libc::POLLIN as u32);
        self.push(sq, poll.build().user_data(UserData::of(Op::Stop)))
    }

    /// Cancels every request in flight with one AsyncCancel (ANY, 5.19),
    /// and closes the connections that have nothing in flight; the others
    /// close as their last CQEs arrive.
    fn stop(&mut self, sq: &mut Sq) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        self.stopping = true;
        let everything = CancelBuilder::any().all();
        let cancel = opcode::AsyncCancel2::new(everything).build();
        self.push(sq, cancel.user_data(UserData::of(Op::Cancel)))?;
        for key in self.conns.keys() {
            self.maybe_close(sq, key)?;
        }
        Ok(())
    }
    // ANCHOR_END: stop

    /// While stopping, gives up after STOP_LIMIT without the last CQEs: the
    /// caller then leaks the buffer ring instead of freeing it.
    fn check_stop_deadline(
        &mut self,
        deadline: &mut Option<std::time::Instant>,
    ) -> io::Result<()> {
        if !self.stopping {
            return Ok(());
        }
        let deadline =
            *deadline.get_or_insert_with(|| std::time::Instant::now() + STOP_LIMIT);
        if self.inflight > 0 && std::time::Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{} requests still in flight {STOP_LIMIT:?} after cancelling them",
                self.inflight
            )));
        }
        Ok(())
    }
}

/// The peer of a connected socket, for the log line.
fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: `fd` is an open socket; ManuallyDrop keeps it from being closed.
    let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    stream.peer_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::thread;
    use uring_book::ex8_multishot_echo::{self as ex8, EventFd};

    /// A loop serving a loopback listener on a thread of its own.
    struct Running {
        addr: SocketAddr,
        stop: EventFd,
        thread: Option<thread::JoinHandle<anyhow::Result<Stats>>>,
    }

    impl Running {
        fn start(config: Config) -> Running {
            let listener = ex8::listen("127.0.0.1:0".parse().unwrap(), 1)
                .unwrap()
                .remove(0);
            let addr = listener.local_addr().unwrap();
            let stop = EventFd::new().unwrap();
            let stop_fd = stop.raw();
            let thread = thread::spawn(move || serve(&listener, stop_fd, &config));
            Running {
                addr,
                stop,
                thread: Some(thread),
            }
        }

        /// Stops the loop and returns what it counted; it must stop by itself.
        fn stop(mut self) -> Stats {
            self.stop.notify().unwrap();
            let thread = self.thread.take().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !thread.is_finished() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the loop did not stop"
                );
                thread::sleep(Duration::from_millis(10));
            }
            thread.join().unwrap().unwrap()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(thread) = self.thread.take() {
                let _ = self.stop.notify();
                let _ = thread.join();
            }
        }
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// `clients` connections at once, each sending `len` bytes from another
    /// thread while reading the echo; every byte is checked.
    fn echo_many(addr: SocketAddr, clients: usize, len: usize) {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                thread::spawn(move || {
                    let data: Vec<u8> =
                        (0..len).map(|i| (i * 7 + c * 13) as u8).collect();
                    let mut stream = connect(addr);
                    let mut writer = stream.try_clone().unwrap();
                    let sent = data.clone();
                    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
                    let mut back = vec![0u8; len];
                    stream.read_exact(&mut back).unwrap();
                    w.join().unwrap();
                    assert!(back == data, "client {c}: the echo differs");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn an_empty_ring_is_recovered_from_without_losing_a_byte() {
        // Four buffers of 64 bytes for eight clients of 256 KiB: the ring
        // runs dry over and over.
        let config = Config {
            buffers: 4,
            buf_size: 64,
            quiet: true,
            ..Config::default()
        };
        let server = Running::start(config);
        echo_many(server.addr, 8, 256 << 10);
        let stats = server.stop();
        assert!(stats.enobufs > 0, "the ring never ran dry: {stats:?}");
        assert_eq!(stats.accepted, 8);
        assert_eq!(stats.bytes, 8 * (256 << 10));
    }

    #[test]
    fn a_small_cq_overflows_and_nothing_is_lost() {
        // 8 CQEs for 32 busy connections: multishot receives end when the CQ
        // is full, and are armed again.
        let config = Config {
            sq_entries: 4,
            cq_entries: 8,
            quiet: true,
            ..Config::default()
        };
        let server = Running::start(config);
        echo_many(server.addr, 32, 64 << 10);
        let stats = server.stop();
        assert_eq!(stats.bytes, 32 * (64 << 10));
        assert!(
            stats.rearmed > 0,
            "no multishot receive ended early: {stats:?}"
        );
    }

    #[test]
    fn cooperative_task_running_and_direct_descriptors_serve_too() {
        for config in [
            Config {
                taskrun: TaskRun::Coop,
                ..Config::default()
            },
            Config {
                direct: true,
                register_ring: false,
                ..Config::default()
            },
        ] {
            let server = Running::start(Config {
                quiet: true,
                ..config
            });
            echo_many(server.addr, 4, 100_000);
            assert_eq!(server.stop().bytes, 400_000);
        }
    }

    #[test]
    fn stopping_cancels_everything_and_waits_for_every_cqe() {
        let server = Running::start(Config {
            quiet: true,
            ..Config::default()
        });
        // Idle connections (a receive in flight each), and one that is mid-echo.
        let idle: Vec<TcpStream> = (0..20).map(|_| connect(server.addr)).collect();
        let mut busy = connect(server.addr);
        busy.write_all(&[1u8; 100_000]).unwrap();
        let mut some = [0u8; 10];
        busy.read_exact(&mut some).unwrap();
        let stats = server.stop(); // returns only once nothing is in flight
        assert_eq!(stats.accepted, 21);
        for mut conn in idle {
            // The server closed every connection on its way out.
            assert_eq!(conn.read(&mut some).unwrap(), 0);
        }
    }

    #[test]
    fn a_stale_cqe_gives_its_buffer_back_and_touches_nothing_else() {
        let (mut uring, _) = ring(&Config::default()).unwrap();
        let bufs = BufRing::new(8, 64).unwrap();
        let mut state = State::new(-1, -1, bufs, Config::default());
        let old = state.conns.insert(Conn::new(Sock::Fd(-1), None)).unwrap();
        state.conns.remove(old);
        let new = state.conns.insert(Conn::new(Sock::Fd(-1), None)).unwrap();
        assert_eq!(new.slot, old.slot, "the slot was reused");
        // A send of buffer 3 and a receive into buffer 5, both for `old`,
        // complete after `new` took the slot.
        state.bufs.taken(3);
        state.inflight = 2;
        let (submitter, queue, _) = uring.split();
        let mut sq = Sq { submitter, queue };
        let send = UserData::on(Op::Send, old, 3);
        state.complete(&mut sq, send, 64, 0).unwrap();
        let recv = UserData::on(Op::Recv, old, 0);
        // IORING_CQE_F_BUFFER (1), buffer id 5 above IORING_CQE_BUFFER_SHIFT (16).
        let flags = 1 | (5 << 16);
        state.complete(&mut sq, recv, 64, flags).unwrap();
        assert_eq!(state.stats.stale, 2);
        assert_eq!(state.bufs.available(), 8, "both buffers went back");
        assert_eq!(state.inflight, 0);
        let conn = state.conns.get_mut(new).unwrap();
        assert!(
            conn.queue.is_empty() && conn.echoed == 0,
            "`new` was not touched"
        );
    }

    #[test]
    fn the_end_of_a_receive_decides_what_comes_next() {
        use Recv::*;
        assert_eq!(recv_end(0, Armed), RecvEnd::Eof);
        assert_eq!(recv_end(0, Stopping), RecvEnd::Eof);
        assert_eq!(recv_end(100, Armed), RecvEnd::Rearm);
        assert_eq!(recv_end(100, Stopping), RecvEnd::Pause);
        assert_eq!(recv_end(-libc::ENOBUFS, Armed), RecvEnd::Starve);
        assert_eq!(recv_end(-libc::ENOBUFS, Stopping), RecvEnd::Pause);
        assert_eq!(recv_end(-libc::ECANCELED, Stopping), RecvEnd::Pause);
        assert_eq!(
            recv_end(-libc::ECONNRESET, Armed),
            RecvEnd::Fail(libc::ECONNRESET)
        );
        assert_eq!(
            recv_end(-libc::ECONNRESET, Stopping),
            RecvEnd::Fail(libc::ECONNRESET)
        );
        // The server's own cancel-all at shutdown: the connection is over.
        assert_eq!(
            recv_end(-libc::ECANCELED, Armed),
            RecvEnd::Fail(libc::ECANCELED)
        );
    }

    #[test]
    fn the_default_ring_holds_fifty_stalled_clients_with_room_to_spare() {
        let c = Config::default();
        let ring = c.buffers as usize * c.buf_size as usize;
        // The limit, plus one burst of 32 buffers before the cancel lands.
        let stalled = RECV_LIMIT + 32 * c.buf_size as usize;
        assert!(50 * stalled <= ring * 4 / 5, "{} of {ring}", 50 * stalled);
        assert!(c.cq_entries >= 4 * c.sq_entries);
    }
}
