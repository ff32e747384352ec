//! A small echo server for chapter 8's solutions: one thread, one ring, a
//! multishot accept, a multishot receive per connection into a provided
//! buffer ring, and one send at a time per connection.
//!
//! It keeps exercise 8's shape but none of its defences: the received bytes
//! are copied out of the ring at once, so every buffer goes back as soon as
//! its CQE is read, and a connection's bytes wait in a `Vec` of its own. What
//! a solution changes goes through a [`Policy`]: how the receive is armed,
//! how a CQE's bytes are found and their buffers given back, and which SQEs
//! send. The server stops by itself once it has served `conns` connections,
//! and gives up after `limit`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use uring_book::echo::buf_ring::BufRing;

/// The buffer group of the ring.
pub const GROUP: u16 = 0;

/// How the server receives and sends; every method has the plain answer.
pub trait Policy {
    /// Flags for registering the buffer ring.
    fn register_flags(&self) -> u16 {
        0
    }

    /// The multishot receive for a new connection.
    fn recv(&self, fd: Fd) -> squeue::Entry {
        opcode::RecvMulti::new(fd, GROUP).build()
    }

    /// The `res` bytes of a receive's CQE, appended to `out`; gives back the
    /// buffers the bytes no longer need. Returns how many buffers gave bytes.
    fn take(
        &mut self,
        bufs: &mut BufRing,
        res: i32,
        flags: u32,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<usize> {
        let bid = cqueue::buffer_select(flags).context("a receive without a buffer")?;
        bufs.taken(bid);
        out.extend_from_slice(bufs.bytes(bid, res as usize));
        bufs.give_back(bid);
        Ok(1)
    }

    /// The SQEs that send `len` bytes at `ptr`: the first is the send.
    fn send(&self, fd: Fd, ptr: *const u8, len: u32) -> Vec<squeue::Entry> {
        vec![opcode::Send::new(fd, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()]
    }
}

/// The plain server: every method as [`Policy`] has it.
pub struct Plain;

impl Policy for Plain {}

/// The ring, how many connections to serve, and for how long at most.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub buffers: u16,
    pub buf_size: u32,
    pub conns: u64,
    pub limit: Duration,
}

/// What the server counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    /// Receive CQEs that carried bytes.
    pub recv_cqes: u64,
    /// Buffers those CQEs took bytes from, counted once per CQE.
    pub buffers: u64,
    pub bytes: u64,
    /// Sends whose CQE said ECANCELED: their deadline passed.
    pub timed_out: u64,
    /// Multishot receives armed again after they ended (ENOBUFS, full CQ).
    pub rearmed: u64,
}

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
/// An SQE linked after a send (a timeout): its CQE needs nothing.
const AFTER_SEND: u64 = 4;

fn ud(kind: u64, key: u32) -> u64 {
    kind << 32 | key as u64
}

struct Conn {
    fd: RawFd,
    /// Received, not yet in a send.
    pending: Vec<u8>,
    /// The bytes of the send in flight; the kernel reads them until its CQE.
    out: Vec<u8>,
    sending: bool,
    /// The receive has ended for good.
    eof: bool,
    failed: bool,
}

struct Server<'p, P: Policy> {
    policy: &'p mut P,
    listener: RawFd,
    bufs: BufRing,
    conns: HashMap<u32, Conn>,
    next_key: u32,
    counts: Counts,
    queue: Vec<squeue::Entry>,
}

/// Serves `listener` until `options.conns` connections have come and gone.
pub fn serve(
    listener: &TcpListener,
    policy: &mut impl Policy,
    options: Options,
) -> anyhow::Result<Counts> {
    let mut ring = IoUring::builder()
        .setup_cqsize(4096)
        .build(256)
        .map_err(uring_book::diagnose::setup)?;
    let mut bufs = BufRing::new(options.buffers, options.buf_size)?;
    let flags = policy.register_flags();
    // SAFETY: `bufs` is unregistered below only once no receive is in
    // flight; on an early return its Drop leaks the memory.
    unsafe { bufs.register_with_flags(&ring.submitter(), GROUP, flags) }
        .map_err(|e| anyhow::anyhow!("registering the buffer ring: {e}"))?;
    let mut server = Server {
        policy,
        listener: listener.as_raw_fd(),
        bufs,
        conns: HashMap::new(),
        next_key: 0,
        counts: Counts::default(),
        queue: Vec::new(),
    };
    let accept = opcode::AcceptMulti::new(Fd(server.listener)).build();
    server.queue.push(accept.user_data(ud(ACCEPT, 0)));
    if let Err(err) = server.run(&mut ring, options) {
        // Requests may be in flight: the sends' bytes must outlive them, and
        // the buffer ring, still registered, leaks itself when dropped.
        std::mem::forget(std::mem::take(&mut server.conns));
        return Err(err);
    }
    // No receive or send is in flight: every connection has closed.
    server.bufs.unregister(&ring.submitter())?;
    Ok(server.counts)
}

impl<P: Policy> Server<'_, P> {
    fn run(&mut self, ring: &mut IoUring, options: Options) -> anyhow::Result<()> {
        let start = Instant::now();
        let tick = Timespec::from(Duration::from_millis(100));
        while self.counts.accepted < options.conns || !self.conns.is_empty() {
            if start.elapsed() > options.limit {
                bail!(
                    "still serving {} connections after {:?}",
                    self.conns.len(),
                    options.limit
                );
            }
            self.flush(ring)?;
            self.bufs.publish();
            match ring
                .submitter()
                .submit_with_args(1, &SubmitArgs::new().timespec(&tick))
            {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {
                }
                other => drop(other?),
            }
            let cqes: Vec<_> = ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect();
            for (user_data, res, flags) in cqes {
                self.complete(user_data, res, flags, options.conns)?;
            }
        }
        Ok(())
    }

    /// Moves the queued SQEs into the ring; a full SQ is submitted first.
    /// A send and what is linked to it go in together, or the chain breaks.
    fn flush(&mut self, ring: &mut IoUring) -> anyhow::Result<()> {
        let mut i = 0;
        while i < self.queue.len() {
            let mut n = 1;
            while self.queue[i + n - 1].get_user_data() >> 32 == SEND
                && i + n < self.queue.len()
                && self.queue[i + n].get_user_data() >> 32 == AFTER_SEND
            {
                n += 1;
            }
            // SAFETY: each SQE's memory (a connection's `out`, the policy's
            // timespec, the buffer ring) outlives its request.
            while unsafe { ring.submission().push_multiple(&self.queue[i..i + n]) }
                .is_err()
            {
                ring.submit()?;
            }
            i += n;
        }
        self.queue.clear();
        Ok(())
    }

    fn complete(
        &mut self,
        user_data: u64,
        res: i32,
        flags: u32,
        conns: u64,
    ) -> anyhow::Result<()> {
        let key = user_data as u32;
        match user_data >> 32 {
            ACCEPT => self.accepted(res, flags, conns),
            RECV => self.received(key, res, flags),
            SEND => self.sent(key, res),
            AFTER_SEND => Ok(()),
            other => bail!("a CQE of no request of ours: kind {other}"),
        }
    }

    fn accepted(&mut self, res: i32, flags: u32, conns: u64) -> anyhow::Result<()> {
        if res < 0 {
            bail!("accept failed: {}", std::io::Error::from_raw_os_error(-res));
        }
        let key = self.next_key;
        self.next_key += 1;
        self.counts.accepted += 1;
        let conn = Conn {
            fd: res,
            pending: Vec::new(),
            out: Vec::new(),
            sending: false,
            eof: false,
            failed: false,
        };
        self.conns.insert(key, conn);
        self.queue
            .push(self.policy.recv(Fd(res)).user_data(ud(RECV, key)));
        if !cqueue::more(flags) && self.counts.accepted < conns {
            let accept = opcode::AcceptMulti::new(Fd(self.listener)).build();
            self.queue.push(accept.user_data(ud(ACCEPT, 0))); // it ended: again
        }
        Ok(())
    }

    fn received(&mut self, key: u32, res: i32, flags: u32) -> anyhow::Result<()> {
        let conn = self
            .conns
            .get_mut(&key)
            .context("a receive for no connection")?;
        if res > 0 {
            let used = self
                .policy
                .take(&mut self.bufs, res, flags, &mut conn.pending)?;
            self.counts.recv_cqes += 1;
            self.counts.buffers += used as u64;
            self.counts.bytes += res as u64;
        }
        if !cqueue::more(flags) {
            if (res > 0 || res == -libc::ENOBUFS) && !conn.failed {
                self.counts.rearmed += 1;
                let recv = self.policy.recv(Fd(conn.fd)).user_data(ud(RECV, key));
                self.queue.push(recv);
            } else {
                conn.eof = true; // 0: the client is done; or an error
            }
        }
        self.send_or_close(key)
    }

    fn sent(&mut self, key: u32, res: i32) -> anyhow::Result<()> {
        let conn = self
            .conns
            .get_mut(&key)
            .context("a send for no connection")?;
        conn.sending = false;
        if res > 0 {
            conn.out.drain(..res as usize);
        } else {
            if res == -libc::ECANCELED {
                self.counts.timed_out += 1;
            }
            // The client is gone or stalled: end both directions. The
            // receive then ends with 0, and the socket closes.
            conn.failed = true;
            // SAFETY: shutdown(2) on a socket of ours; it stays open.
            unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) };
        }
        self.send_or_close(key)
    }

    /// Sends what waits, if no send is in flight; closes a connection that
    /// is done and has nothing in flight.
    fn send_or_close(&mut self, key: u32) -> anyhow::Result<()> {
        let conn = self.conns.get_mut(&key).context("no such connection")?;
        if conn.sending {
            return Ok(());
        }
        if conn.out.is_empty() {
            std::mem::swap(&mut conn.out, &mut conn.pending);
        }
        if !conn.out.is_empty() && !conn.failed {
            let len = conn.out.len() as u32;
            let mut sqes = self
                .policy
                .send(Fd(conn.fd), conn.out.as_ptr(), len)
                .into_iter();
            let send = sqes.next().context("a policy that sends nothing")?;
            self.queue.push(send.user_data(ud(SEND, key)));
            self.queue
                .extend(sqes.map(|sqe| sqe.user_data(ud(AFTER_SEND, key))));
            conn.sending = true;
        } else if conn.eof {
            // Nothing in flight on it: no receive (eof), no send.
            let conn = self.conns.remove(&key).expect("looked up above");
            // SAFETY: our socket, closed once.
            unsafe { libc::close(conn.fd) };
        }
        Ok(())
    }
}

/// Serves with `policy` on a free port of 127.0.0.1 while `clients` runs
/// against it; returns the counts, what `clients` returned, and the policy.
pub fn under_load<P, T>(
    mut policy: P,
    options: Options,
    clients: impl FnOnce(std::net::SocketAddr) -> anyhow::Result<T>,
) -> anyhow::Result<(Counts, T, P)>
where
    P: Policy + Send + 'static,
{
    // TCP_NODELAY, as exercise 8 sets it: a small send goes out at once.
    let listener =
        uring_book::ex8_multishot_echo::listen("127.0.0.1:0".parse()?, 1)?.remove(0);
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        let counts = serve(&listener, &mut policy, options);
        counts.map(|counts| (counts, policy))
    });
    let clients = clients(addr);
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the server panicked"))?;
    let (counts, policy) = served?;
    Ok((counts, clients?, policy))
}
