//! A load client for echo servers: many connections, one message in flight
//! on each, every echoed byte checked.
//!
//! It runs on a current-thread tokio runtime on purpose: a multi-thread
//! runtime with one worker schedules a thousand woken tasks less fairly and
//! adds latency of its own (chapter 5 shows both runs, from
//! `book/src/output/ch05-client-1000*.txt`). Use it from code with [`run`]:
//!
//! ```no_run
//! use std::time::Duration;
//! use uring_book::echo::client::{self, Config};
//!
//! let config = Config {
//!     conns: 10,
//!     duration: Duration::from_secs(1),
//!     ..Config::new("127.0.0.1:7878".parse().unwrap())
//! };
//! let report = client::run(&config).unwrap();
//! println!("{report}");
//! ```

use std::fmt;
use std::io::{self, ErrorKind::InvalidData, ErrorKind::UnexpectedEof};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uring_book::{tcp_addr, usage};

/// What to send, to whom, for how long.
#[derive(Debug, Clone)]
pub struct Config {
    /// The echo server.
    pub addr: SocketAddr,
    /// Connections, all open at once.
    pub conns: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long connections keep sending new messages.
    pub duration: Duration,
    /// Stop a connection after this many messages, even before `duration`.
    pub max_messages: Option<u64>,
    /// A connect or a round trip that takes longer than this is an error.
    pub timeout: Duration,
    /// Run on a multi-thread runtime with one worker instead of the
    /// current-thread runtime: only to show why the default is better.
    pub multi_thread: bool,
}

impl Config {
    /// 100 connections of 64-byte messages for 5 seconds.
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            conns: 100,
            size: 64,
            duration: Duration::from_secs(5),
            max_messages: None,
            timeout: Duration::from_secs(10),
            multi_thread: false,
        }
    }
}

/// What a run measured. Every counted message came back intact.
#[derive(Debug, Clone)]
pub struct Report {
    pub conns: usize,
    pub size: usize,
    /// Messages sent and echoed back intact, over all connections.
    pub messages: u64,
    /// From the first message to the last connection's EOF.
    pub elapsed: Duration,
    /// Round-trip latency: the mean, percentiles p50, p99, p99.9, the maximum.
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    /// Messages per connection: the fewest, the median, the most.
    pub per_conn_min: u64,
    pub per_conn_median: u64,
    pub per_conn_max: u64,
}

impl Report {
    /// Messages per second over the whole run.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb_per_sec = self.msgs_per_sec() * self.size as f64 / 1e6;
        writeln!(
            f,
            "messages:       {} in {:.2} s: {:.0} msgs/s ({mb_per_sec:.1} MB/s each way)",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec()
        )?;
        writeln!(
            f,
            "latency:        mean {:?}, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            round(self.mean),
            round(self.p50),
            round(self.p99),
            round(self.p999),
            round(self.max)
        )?;
        writeln!(
            f,
            "per connection: min {}, median {}, max {} messages",
            self.per_conn_min, self.per_conn_median, self.per_conn_max
        )?;
        write!(f, "verified:       every byte of every echo, then EOF")
    }
}

/// Three significant figures are all a latency deserves.
fn round(d: Duration) -> Duration {
    let ns = d.as_nanos() as u64;
    let mut unit = 1;
    while ns / unit >= 1000 {
        unit *= 10;
    }
    Duration::from_nanos(ns / unit * unit)
}

/// Runs the load on a current-thread tokio runtime and reports.
pub fn run(config: &Config) -> anyhow::Result<Report> {
    anyhow::ensure!(config.conns > 0, "--conns must be at least 1");
    anyhow::ensure!(config.size > 0, "--size must be at least 1");
    let mut builder = if config.multi_thread {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = builder.enable_all().build()?;
    rt.block_on(load(config))
}

async fn load(config: &Config) -> anyhow::Result<Report> {
    // Every connection is open before the clock starts.
    let mut connects = Vec::with_capacity(config.conns);
    for _ in 0..config.conns {
        let (addr, timeout) = (config.addr, config.timeout);
        connects.push(tokio::spawn(async move {
            tokio::time::timeout(timeout, TcpStream::connect(addr)).await
        }));
    }
    let mut streams = Vec::with_capacity(config.conns);
    for connect in connects {
        let stream = connect
            .await?
            .map_err(|_| anyhow::anyhow!("connecting to {}: timed out", config.addr))?
            .map_err(|err| connect_error(config.addr, err))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }

    let start = Instant::now();
    let deadline = start + config.duration;
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(id, stream)| tokio::spawn(exchange(stream, id, config.clone(), deadline)))
        .collect();
    let mut latencies = Vec::new();
    let mut counts = Vec::with_capacity(tasks.len());
    for task in tasks {
        let mut lat = task.await??;
        counts.push(lat.len() as u64);
        latencies.append(&mut lat);
    }
    let elapsed = start.elapsed();

    let sum: u64 = latencies.iter().sum();
    let mean = Duration::from_nanos(sum / (latencies.len() as u64).max(1));
    latencies.sort_unstable();
    counts.sort_unstable();
    let pct = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).max(1);
        Duration::from_nanos(latencies.get(rank - 1).copied().unwrap_or(0))
    };
    Ok(Report {
        conns: config.conns,
        size: config.size,
        messages: latencies.len() as u64,
        elapsed,
        mean,
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        max: Duration::from_nanos(latencies.last().copied().unwrap_or(0)),
        per_conn_min: counts[0],
        per_conn_median: counts[counts.len() / 2],
        per_conn_max: counts[counts.len() - 1],
    })
}

fn connect_error(addr: SocketAddr, err: std::io::Error) -> anyhow::Error {
    let text = uring_book::diagnose::errno_text(&err);
    if err.kind() == std::io::ErrorKind::ConnectionRefused {
        anyhow::anyhow!(
            "connecting to {addr}: {text}; is an echo server listening there? \
             (cargo run --release -- 5 --addr {addr})"
        )
    } else {
        anyhow::anyhow!("connecting to {addr}: {text}")
    }
}

/// Messages up to this size are written whole before their echo is read.
/// The buffers on the way hold that much (our receive buffer alone starts at
/// 128 KiB, the middle value of `tcp_rmem`), so the server never has to wait
/// for us to read while we wait for our write to finish.
const WRITE_THEN_READ_MAX: usize = 64 << 10;

/// How many messages in a row take their body from different offsets of
/// their connection's stream of bytes.
const OFFSETS: u64 = 64;

/// Fills `buf` with pseudo-random bytes from `seed`.
fn fill_random(buf: &mut [u8], seed: u64) {
    // splitmix64: a good stream of bytes from any seed, even 0.
    let mut x = seed;
    for chunk in buf.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// The messages of connection `id`. Message `seq` starts with `id` and `seq`
/// (8 bytes each), and the rest is pseudo-random bytes copied from the
/// connection's own stream, starting 8 bytes further on for each of 64
/// messages in a row: an echo that belongs to another connection or another
/// message cannot pass for this one, not even a stale body behind a fresh
/// header, and making a message costs a copy, not a computation. A message
/// shorter than 16 bytes is all pseudo-random bytes seeded with `id` and `seq`.
struct Messages {
    id: usize,
    stream: Vec<u8>,
    msg: Vec<u8>,
}

impl Messages {
    fn new(id: usize, size: usize) -> Messages {
        let mut stream = vec![0u8; size + 8 * OFFSETS as usize];
        fill_random(&mut stream, !(id as u64));
        Messages {
            id,
            stream,
            msg: vec![0u8; size],
        }
    }

    /// Message `seq`, to send and to check its echo against.
    fn get(&mut self, seq: u64) -> &[u8] {
        let (msg, id) = (&mut self.msg, self.id as u64);
        if msg.len() < 16 {
            fill_random(msg, id << 32 ^ seq);
            return msg;
        }
        let (at, size) = ((seq % OFFSETS) as usize * 8, msg.len());
        msg.copy_from_slice(&self.stream[at..at + size]);
        msg[..8].copy_from_slice(&id.to_le_bytes());
        msg[8..16].copy_from_slice(&seq.to_le_bytes());
        msg
    }
}

/// Says whose message an echo that differs from `msg` is, if its header says.
fn mismatch(msg: &[u8], echo: &[u8]) -> Option<String> {
    if msg == echo {
        return None; // a memcmp: the common case stays cheap
    }
    let at = (0..msg.len()).find(|&i| echo[i] != msg[i])?;
    if echo.len() >= 16 && at < 16 {
        let word = |i: usize| u64::from_le_bytes(echo[i..i + 8].try_into().unwrap());
        return Some(format!(
            "the echo is message {} of connection {}",
            word(8),
            word(0)
        ));
    }
    Some(format!("echoed byte {at} differs"))
}

/// Sends `msg` and reads its echo into `echo`, which is one byte longer.
async fn round_trip(
    stream: &mut TcpStream,
    msg: &[u8],
    echo: &mut [u8],
) -> io::Result<()> {
    if msg.len() <= WRITE_THEN_READ_MAX {
        stream.write_all(msg).await?;
        return read_echo(stream, echo).await;
    }
    // Write and read at once: a message larger than the socket buffers would
    // otherwise deadlock, the server blocked on writing to us.
    let (mut rd, mut wr) = stream.split();
    tokio::try_join!(wr.write_all(msg), read_echo(&mut rd, echo))?;
    Ok(())
}

/// Reads an echo into all of `echo` but its last byte. That spare byte makes
/// the read that completes an echo return less than it was offered, which
/// tells tokio the socket is drained: the next read waits for epoll instead of
/// trying `recv` and getting `EAGAIN`. It also catches a server that sends
/// back more than it got.
async fn read_echo(rd: &mut (impl AsyncRead + Unpin), echo: &mut [u8]) -> io::Result<()> {
    let size = echo.len() - 1;
    let mut got = 0;
    while got < size {
        match rd.read(&mut echo[got..]).await? {
            0 => {
                return Err(io::Error::new(
                    UnexpectedEof,
                    "the server closed the connection",
                ))
            }
            n => got += n,
        }
    }
    if got > size {
        return Err(io::Error::new(
            InvalidData,
            "more bytes came back than were sent",
        ));
    }
    Ok(())
}

/// Sends messages until the deadline, checks each echo, and returns the
/// round-trip latency of each message in nanoseconds.
async fn exchange(
    mut stream: TcpStream,
    id: usize,
    config: Config,
    deadline: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut messages = Messages::new(id, config.size);
    let mut echo = vec![0u8; config.size + 1];
    let mut seq = 0;
    // One timer for all the round trips, moved later for each: a later
    // deadline is an atomic store, where a timeout per message would insert
    // an entry in tokio's timer wheel and remove it again.
    let timer = tokio::time::sleep(config.timeout);
    tokio::pin!(timer);
    let mut now = Instant::now();
    while now < deadline && config.max_messages.is_none_or(|max| seq < max) {
        let msg = messages.get(seq);
        let sent = Instant::now();
        timer.as_mut().reset((sent + config.timeout).into());
        tokio::select! {
            biased;
            res = round_trip(&mut stream, msg, &mut echo) => {
                res.with_context(|| format!("connection {id}, message {seq}"))?
            }
            () = &mut timer => bail!(
                "connection {id}, message {seq}: no echo within {:?}",
                config.timeout
            ),
        }
        now = Instant::now();
        latencies.push((now - sent).as_nanos() as u64);
        if let Some(what) = mismatch(msg, &echo[..msg.len()]) {
            bail!("connection {id}, message {seq}: {what}");
        }
        seq += 1;
    }
    // Half-close: the server must echo what is left (nothing), then close.
    stream.shutdown().await?;
    let mut rest = [0u8; 1];
    match tokio::time::timeout(config.timeout, stream.read(&mut rest)).await {
        Ok(Ok(0)) => Ok(latencies),
        Ok(Ok(_)) => bail!("connection {id}: bytes arrived that were never sent"),
        Ok(Err(err)) => Err(err).context(format!("connection {id}: waiting for EOF")),
        Err(_) => bail!(
            "connection {id}: no EOF within {:?} of shutdown",
            config.timeout
        ),
    }
}

/// Load an echo server and verify every echoed byte.
#[derive(clap::Args, Debug)]
pub struct CliArgs {
    /// The echo server's address (IP:PORT or localhost:PORT)
    #[arg(long, default_value = tcp_addr::DEFAULT, value_parser = tcp_addr::parse)]
    pub addr: SocketAddr,
    /// Connections, all open at once
    #[arg(long, default_value_t = 100, value_parser = usage::at_least_one::<usize>)]
    pub conns: usize,
    /// Bytes per message
    #[arg(long, default_value_t = 64, value_parser = usage::one_to::<{ 64 << 20 }>)]
    pub size: usize,
    /// Seconds to keep sending
    #[arg(long, default_value_t = 5.0, value_parser = usage::seconds::<86_400>)]
    pub secs: f64,
    /// Use a multi-thread tokio runtime with one worker (a worse client,
    /// for comparison)
    #[arg(long)]
    pub multi_thread: bool,
}

/// Runs `echo-client` and prints its report.
pub fn main(args: &CliArgs) -> anyhow::Result<()> {
    let nofile =
        uring_book::system::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    anyhow::ensure!(
        (args.conns as u64) < nofile,
        "{} connections need as many file descriptors, but RLIMIT_NOFILE is {nofile}; \
         raise the hard limit (ulimit -Hn) or use fewer --conns",
        args.conns
    );
    let config = Config {
        conns: args.conns,
        size: args.size,
        duration: Duration::from_secs_f64(args.secs),
        multi_thread: args.multi_thread,
        ..Config::new(args.addr)
    };
    println!(
        "echo-client: {} connections, {}-byte messages, {} s, against {}{}",
        args.conns,
        args.size,
        args.secs,
        args.addr,
        if args.multi_thread {
            "\n(multi-thread runtime)"
        } else {
            ""
        }
    );
    println!("{}", run(&config)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size: usize, id: usize, seq: u64) -> Vec<u8> {
        Messages::new(id, size).get(seq).to_vec()
    }

    #[test]
    fn another_connections_echo_is_named() {
        let ours = message(64, 3, 7);
        let theirs = message(64, 259, 7); // 259 = 3 + 256: same low byte
        assert_eq!(
            mismatch(&ours, &theirs).as_deref(),
            Some("the echo is message 7 of connection 259")
        );
        assert_eq!(mismatch(&ours, &ours), None);
    }

    #[test]
    fn a_stale_body_behind_a_fresh_header_is_caught() {
        let fresh = message(64, 3, 8);
        for old in 0..8 {
            let mut stale = message(64, 3, old);
            stale[..16].copy_from_slice(&fresh[..16]);
            let what = mismatch(&fresh, &stale).expect("the stale body passed");
            assert!(what.starts_with("echoed byte"), "{what}");
        }
    }

    /// A server on a thread of this test: `echo` turns what it read into what
    /// it sends back.
    fn serve(echo: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Small fixed buffers (accepted sockets inherit them), so that only the
        // client's buffers can take in a message the server cannot pass on.
        let sock = socket2::SockRef::from(&listener);
        sock.set_recv_buffer_size(4096).unwrap();
        sock.set_send_buffer_size(4096).unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16 << 10];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        if conn.write_all(&echo(&buf[..n])).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn config(addr: SocketAddr, conns: usize, size: usize, messages: u64) -> Config {
        Config {
            conns,
            size,
            max_messages: Some(messages),
            duration: Duration::from_secs(20),
            ..Config::new(addr)
        }
    }

    #[test]
    fn messages_larger_than_the_socket_buffers_do_not_deadlock() {
        let addr = serve(|data| data.to_vec());
        // More than our send buffer can ever take in (the last of `tcp_wmem`, twice
        // over, as the kernel doubles what it is asked for), plus our receive buffer.
        let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
        let wmem_max: usize = wmem.split_whitespace().last().unwrap().parse().unwrap();
        let size = 2 * wmem_max + (1 << 20);
        assert!(
            size > WRITE_THEN_READ_MAX,
            "{size} bytes would be written, then read"
        );
        let report = run(&config(addr, 2, size, 2)).unwrap();
        assert_eq!(report.messages, 4);
        let report = run(&config(addr, 3, WRITE_THEN_READ_MAX, 50)).unwrap();
        assert_eq!(report.messages, 150);
    }

    #[test]
    fn a_server_that_sends_back_too_much_is_caught() {
        let addr = serve(|data| [data, data].concat());
        let err = run(&config(addr, 1, 64, 10)).unwrap_err();
        assert!(
            format!("{err:#}").contains("more bytes came back than were sent"),
            "{err:#}"
        );
    }

    #[test]
    fn small_messages_differ_by_connection_and_sequence() {
        let a = message(8, 1, 0);
        assert_ne!(a, message(8, 0, 1));
        assert_ne!(a, message(8, 257, 0));
        assert_ne!(a, message(8, 1, 256));
        assert!(mismatch(&a, &message(8, 2, 0)).is_some());
    }
}
