//! Exercise 5: a TCP echo server on tokio-uring.
//!
//! One task per connection: read, write back everything that was read, repeat
//! until the client closes its side. `--demo` serves a few clients from this
//! same process on a free port and stops, so that `cargo run` ends.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use socket2::{Domain, Socket, Type};
use tokio::signal::unix::{signal, SignalKind};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpListener, TcpStream};
use uring_book::{diagnose, system, tcp_addr};

/// Bytes read per read: also the most a connection holds in user space.
pub const BUF_SIZE: usize = 16 * 1024;
/// The listen backlog: the kernel caps it at net.core.somaxconn.
pub const BACKLOG: i32 = 4096;
/// How long the accept loop waits after an error such as EMFILE.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on (IP:PORT or localhost:PORT); port 0 lets the
    /// kernel pick a free port
    #[arg(long, default_value = tcp_addr::DEFAULT, value_parser = tcp_addr::parse)]
    pub addr: SocketAddr,
    /// Do not log each connection
    #[arg(long)]
    pub quiet: bool,
    /// Listen on a free port, echo for a few clients of this process, then stop
    #[arg(long)]
    pub demo: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Each connection is a file descriptor; 1024 (the usual soft limit) is few.
    let nofile = system::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    let rt = runtime()?;
    rt.block_on(async {
        let addr = if args.demo {
            "127.0.0.1:0".parse()?
        } else {
            args.addr
        };
        let listener = listen(addr)?;
        let stats = Rc::new(Stats::default());
        let bound = listener.local_addr()?;
        if args.demo {
            println!("listening on {bound}");
            tokio_uring::spawn(serve(listener, stats.clone(), args.quiet));
            return demo(bound, &stats).await;
        }
        // ANCHOR: stop
        // The handlers exist before anyone learns the address: a SIGTERM sent
        // as soon as "listening on" appears must not kill the process.
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        println!("listening on {bound}");
        println!("file descriptor limit: {nofile}; stop with Ctrl-C");
        tokio::select! {
            err = serve(listener, stats.clone(), args.quiet) => {
                return Err(anyhow::Error::new(err).context("accepting connections"));
            }
            _ = int.recv() => println!("SIGINT: stopping"),
            _ = term.recv() => println!("SIGTERM: stopping"),
        }
        // Dropping the runtime, at the end of run, cancels what is in flight.
        // ANCHOR_END: stop
        let (conns, bytes) = (stats.accepted.get(), stats.bytes.get());
        println!("connections served: {conns}, bytes echoed: {bytes}");
        Ok(())
    })
}

/// Entries of the server's submission queue.
pub const RING_ENTRIES: u32 = 256;

// ANCHOR: runtime
/// The server's runtime: tokio-uring on a ring set up with
/// IORING_SETUP_COOP_TASKRUN (Linux 5.19). A kernel without the flag
/// refuses it with EINVAL; the server then says so and uses a plain ring.
pub fn runtime() -> anyhow::Result<tokio_uring::Runtime> {
    let mut ring = tokio_uring::uring_builder();
    ring.setup_coop_taskrun();
    let mut builder = tokio_uring::builder();
    builder.entries(RING_ENTRIES).uring_builder(&ring);
    match tokio_uring::Runtime::new(&builder) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("note: no IORING_SETUP_COOP_TASKRUN before Linux 5.19; plain ring");
            diagnose::tokio_uring_runtime(RING_ENTRIES)
        }
        built => built.map_err(diagnose::setup),
    }
}
// ANCHOR_END: runtime

/// Counters the tasks share; Cell is enough on one thread.
#[derive(Default)]
pub struct Stats {
    pub accepted: Cell<u64>,
    pub bytes: Cell<u64>,
}

// ANCHOR: listen
/// A listening socket with a backlog of BACKLOG.
///
/// std's TcpListener::bind calls listen(fd, 128): a burst of a thousand
/// connects then overflows the accept queue and the kernel drops SYNs, which
/// the clients retransmit only after a second.
pub fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted server can bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket
        .bind(&addr.into())
        .map_err(|err| tcp_addr::bind_error(addr, err))?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}
// ANCHOR_END: listen

// ANCHOR: serve
/// Accepts connections, one task each, until an error that retrying cannot
/// fix, which it returns.
pub async fn serve(listener: TcpListener, stats: Rc<Stats>, quiet: bool) -> io::Error {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // That one connection failed (aborted, refused by a firewall):
            // the next one may be fine, so accept again at once.
            Err(err) if is_per_connection(&err) => continue,
            Err(err) if is_out_of_resources(&err) => {
                // The connection waits in the accept queue; so do we, while
                // other tasks finish and free descriptors or memory.
                // Retrying at once would fail at once, at full CPU.
                let why = diagnose::errno_text(&err);
                eprintln!("accept failed: {why}; retrying in {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            Err(err) => return err, // EBADF, EINVAL...: the listener is broken
        };
        stats.accepted.set(stats.accepted.get() + 1);
        let stats = stats.clone();
        tokio_uring::spawn(async move {
            match echo(&stream, &stats).await {
                Ok(n) if !quiet => println!("{peer}: echoed {n} bytes, closed"),
                Err(err) if !quiet => println!("{peer}: {}", diagnose::errno_text(&err)),
                _ => {}
            }
        });
    }
}
// ANCHOR_END: serve

// ANCHOR: accept_errors
/// Errors of one pending connection, not of the listener. accept(2) asks to
/// treat the network errors it passes on like EAGAIN.
pub fn is_per_connection(err: &io::Error) -> bool {
    use libc::*;
    // The client gave up, a firewall refused it, a protocol error, a signal;
    // then the network errors of accept(2)'s list.
    matches!(
        err.raw_os_error(),
        Some(ECONNABORTED | EPERM | EPROTO | EINTR)
            | Some(ENETDOWN | ENOPROTOOPT | EHOSTDOWN | ENONET | EHOSTUNREACH)
            | Some(EOPNOTSUPP | ENETUNREACH)
    )
}

/// The process or the system is out of descriptors or memory, for now.
pub fn is_out_of_resources(err: &io::Error) -> bool {
    let exhausted = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
    err.raw_os_error().is_some_and(|e| exhausted.contains(&e))
}
// ANCHOR_END: accept_errors

// ANCHOR: echo
/// Echoes until the client shuts down its sending side; returns the bytes.
pub async fn echo(stream: &TcpStream, stats: &Stats) -> io::Result<u64> {
    // Replies go out at once rather than wait for Nagle's algorithm.
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0;
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = res?;
        if n == 0 {
            return Ok(total); // EOF: every byte has been echoed
        }
        // The next read waits until this write completes: a client that does
        // not read stalls its own connection, and nothing piles up here.
        let (res, slice) = stream.write_all(buf.slice(..n)).await;
        res?;
        buf = slice.into_inner();
        total += n as u64;
        stats.bytes.set(stats.bytes.get() + n as u64);
    }
}
// ANCHOR_END: echo

/// Three clients, each sending three lines and checking each echo: what
/// `--demo` runs against the server at `addr`.
pub async fn demo(addr: SocketAddr, stats: &Stats) -> anyhow::Result<()> {
    // A client gives up after this long: a broken server must not hang us.
    let limit = Duration::from_secs(10);
    let clients: Vec<_> = (0..3)
        .map(|id| tokio_uring::spawn(tokio::time::timeout(limit, demo_client(addr, id))))
        .collect();
    for (id, client) in clients.into_iter().enumerate() {
        client.await?.map_err(|_| {
            anyhow::anyhow!("demo client {id}: not done within {limit:?}")
        })??;
    }
    // Let the server's tasks see the clients' EOF and log it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!(
        "demo: 3 clients, 9 lines echoed and verified; \
         server saw {} connections, {} bytes",
        stats.accepted.get(),
        stats.bytes.get()
    );
    Ok(())
}

async fn demo_client(addr: SocketAddr, id: usize) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    for seq in 0..3 {
        let line = format!("client {id} line {seq}\n").into_bytes();
        let len = line.len();
        let (res, line) = stream.write_all(line).await;
        res?;
        let mut echoed = Vec::with_capacity(len);
        while echoed.len() < len {
            let filled = echoed.len();
            let (res, b) = stream.read(echoed.slice(filled..len)).await;
            echoed = b.into_inner();
            anyhow::ensure!(res? > 0, "server closed the connection early");
        }
        anyhow::ensure!(
            echoed == line,
            "client {id}: echo differs from what was sent"
        );
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let (res, _) = stream.read(Vec::with_capacity(1)).await;
    anyhow::ensure!(res? == 0, "client {id}: expected EOF after shutdown");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_sorted() {
        let err = io::Error::from_raw_os_error;
        assert!(is_per_connection(&err(libc::ECONNABORTED)));
        assert!(!is_out_of_resources(&err(libc::ECONNABORTED)));
        assert!(is_out_of_resources(&err(libc::EMFILE)));
        assert!(!is_per_connection(&err(libc::EMFILE)));
        // Neither: serve returns it.
        assert!(!is_per_connection(&err(libc::EBADF)));
        assert!(!is_out_of_resources(&err(libc::EBADF)));
    }
}
