//! Exercise 8: the echo server of chapter 5, on multishot accept and receive
//! and a provided buffer ring, with a completion loop of our own
//! (`uring_book::echo::multishot`): no runtime, one ring per thread.
//!
//! Same command line as exercise 5: `--addr`, `--quiet`, `--demo`, a summary
//! line on SIGINT or SIGTERM; and `--threads N`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Socket, Type};

use uring_book::echo::multishot::{self, Config, Stats};
use uring_book::echo::requirements;
use uring_book::{ex5_tcp_echo, system};

#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on; port 0 lets the kernel pick a free port
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// Do not log each connection
    #[arg(long)]
    pub quiet: bool,
    /// Listen on a free port, echo for a few clients of this process, then stop
    #[arg(long)]
    pub demo: bool,
    /// Threads, each with its own ring and its own listener (SO_REUSEPORT)
    #[arg(long, default_value_t = 1, value_parser = threads())]
    pub threads: u16,
}

/// 1 to 64 threads: more rings than CPUs only compete for them.
fn threads() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..=64)
}

// ANCHOR: run
pub fn run(args: &Args) -> anyhow::Result<()> {
    requirements::check()?; // one line naming what is missing, exit 1
    let nofile = system::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    let config = Config {
        quiet: args.quiet,
        ..Config::default()
    };
    if args.demo {
        return run_demo(args.threads, &config);
    }
    let listeners = listen(args.addr, args.threads)?;
    // Blocked before any thread starts, so every thread inherits the mask and
    // a signal waits for `wait_for_signal`, even one sent at once.
    let signals = block_stop_signals()?;
    let stop = EventFd::new()?;
    println!("listening on {}", listeners[0].local_addr()?);
    let workers = start(listeners, &stop, &config)?;
    println!("file descriptor limit: {nofile}; stop with Ctrl-C");
    if let Some(name) = wait_for_signal(&signals, &workers) {
        println!("{name}: stopping");
    }
    stop.notify()?; // every ring polls it: all of them stop
    let stats = join(workers)?;
    println!(
        "connections served: {}, bytes echoed: {}",
        stats.accepted, stats.bytes
    );
    print_details(&stats);
    Ok(())
}
// ANCHOR_END: run

/// `--demo`: a free port, three clients of this process, then stop.
fn run_demo(threads: u16, config: &Config) -> anyhow::Result<()> {
    let listeners = listen("127.0.0.1:0".parse()?, threads)?;
    let bound = listeners[0].local_addr()?;
    let stop = EventFd::new()?;
    println!("listening on {bound}");
    let workers = start(listeners, &stop, config)?;
    let served = demo(bound);
    stop.notify()?;
    let stats = join(workers)?;
    served?;
    println!(
        "demo: 3 clients, 9 lines echoed and verified; \
         server saw {} connections, {} bytes",
        stats.accepted, stats.bytes
    );
    Ok(())
}

/// What the loops counted, beyond the summary line exercise 5 prints too.
fn print_details(stats: &Stats) {
    println!(
        "receives paused at the limit: {}, ended by ENOBUFS: {}, re-armed: {}",
        stats.paused, stats.enobufs, stats.rearmed
    );
    println!(
        "stale CQEs: {}; most bytes waiting on one connection: {}, copied out: {}",
        stats.stale, stats.max_queued, stats.spilled
    );
}

// ANCHOR: listen
/// `threads` listeners on one address. With more than one, each gets
/// SO_REUSEPORT and the kernel spreads new connections over them.
pub fn listen(addr: SocketAddr, threads: u16) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut addr = addr;
    for _ in 0..threads {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(threads > 1)?;
        // Accepted sockets inherit TCP_NODELAY: replies go out at once, and
        // no system call per connection sets it.
        socket.set_tcp_nodelay(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("binding {addr}"))?;
        socket.listen(ex5_tcp_echo::BACKLOG)?;
        let listener: TcpListener = socket.into();
        // Port 0: the other threads join the port the first one got.
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}
// ANCHOR_END: listen

/// One thread per listener, each running its own ring.
pub fn start(
    listeners: Vec<TcpListener>,
    stop: &EventFd,
    config: &Config,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<Stats>>>> {
    let mut workers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (config, stop_fd) = (config.clone(), stop.raw());
        let worker = std::thread::Builder::new()
            .name(format!("ring-{i}"))
            // The ring is created on the thread that uses it: SINGLE_ISSUER
            // and DEFER_TASKRUN tie it to the task that creates it.
            .spawn(move || multishot::serve(&listener, stop_fd, &config))?;
        workers.push(worker);
    }
    Ok(workers)
}

/// Waits for every thread and adds up what they did.
pub fn join(workers: Vec<JoinHandle<anyhow::Result<Stats>>>) -> anyhow::Result<Stats> {
    let mut total = Stats::default();
    for worker in workers {
        let stats = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a server thread panicked"))??;
        total.add(&stats);
    }
    Ok(total)
}

/// An eventfd that every thread's ring polls: writing to it stops them all.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd has no memory arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The descriptor; it must outlive the threads that poll it (`join`
    /// them before dropping this).
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn notify(&self) -> std::io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local array.
        if unsafe { libc::write(self.raw(), one.as_ptr().cast(), 8) } != 8 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// SIGINT and SIGTERM, blocked in this thread and every thread it starts.
pub fn block_stop_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: a sigset_t is plain data, filled by sigemptyset/sigaddset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let err = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if err != 0 {
            return Err(std::io::Error::from_raw_os_error(err));
        }
        Ok(set)
    }
}

/// Waits for SIGINT or SIGTERM and names it; `None` if a server thread
/// ended by itself instead (it failed: `join` returns its error).
pub fn wait_for_signal(
    signals: &libc::sigset_t,
    workers: &[JoinHandle<anyhow::Result<Stats>>],
) -> Option<&'static str> {
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        // SAFETY: a valid set and timeout; the siginfo is not asked for.
        let sig = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &tick) };
        match sig {
            libc::SIGINT => return Some("SIGINT"),
            libc::SIGTERM => return Some("SIGTERM"),
            _ if workers.iter().any(|w| w.is_finished()) => return None,
            _ => {}
        }
    }
}

/// Three clients, each sending three lines and checking each echo, as in
/// exercise 5's demo, from threads of this process.
pub fn demo(addr: SocketAddr) -> anyhow::Result<()> {
    let clients: Vec<_> = (0..3)
        .map(|id| std::thread::spawn(move || demo_client(addr, id)))
        .collect();
    for (id, client) in clients.into_iter().enumerate() {
        client
            .join()
            .map_err(|_| anyhow::anyhow!("demo client {id} panicked"))??;
    }
    Ok(())
}

fn demo_client(addr: SocketAddr, id: usize) -> anyhow::Result<()> {
    // A client gives up after this long: a broken server must not hang us.
    let limit = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    for seq in 0..3 {
        let line = format!("client {id} line {seq}\n").into_bytes();
        stream.write_all(&line)?;
        let mut echoed = vec![0u8; line.len()];
        stream.read_exact(&mut echoed)?;
        anyhow::ensure!(
            echoed == line,
            "client {id}: echo differs from what was sent"
        );
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let n = stream.read(&mut [0u8; 1])?;
    anyhow::ensure!(n == 0, "client {id}: expected EOF after shutdown");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 1).unwrap().remove(0);
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "no system call per connection needed"
        );
    }

    #[test]
    fn two_threads_share_one_port() {
        let listeners = listen("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let port = |l: &TcpListener| l.local_addr().unwrap().port();
        assert_eq!(port(&listeners[0]), port(&listeners[1]));
    }
}
