//! Solutions to chapter 5's "What to try next": an idle timeout that loses no
//! bytes, a smaller buffer measured, and backpressure watched from outside.

/// Exercise 5.1: `echo` with a second task that shuts the connection down
/// after a time without reads.
pub mod idle_timeout {
    use std::cell::Cell;
    use std::io::{self, Read, Write};
    use std::net::Shutdown;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, ensure};
    use tokio_uring::buf::BoundedBuf;
    use tokio_uring::net::TcpStream;
    use uring_book::ex5_tcp_echo::{listen, runtime, BUF_SIZE};

    /// The exercise's 30 seconds, shortened so that the solution runs in two.
    pub const IDLE: Duration = Duration::from_secs(1);

    // ANCHOR: close_when_idle
    /// Echoes like `echo`, and shuts the stream down after `idle` without a
    /// read: the pending read then returns 0, as on EOF.
    pub async fn echo_with_idle_timeout(
        stream: TcpStream,
        idle: Duration,
    ) -> io::Result<u64> {
        let stream = Rc::new(stream);
        let last_read = Rc::new(Cell::new(Instant::now()));
        let watchdog =
            tokio_uring::spawn(close_when_idle(stream.clone(), last_read.clone(), idle));
        let echoed = echo_touching(&stream, &last_read).await;
        watchdog.abort(); // it holds the stream: it must not outlive `echo`
        echoed
    }

    async fn close_when_idle(
        stream: Rc<TcpStream>,
        last_read: Rc<Cell<Instant>>,
        idle: Duration,
    ) {
        loop {
            let deadline = last_read.get() + idle;
            if Instant::now() >= deadline {
                let _ = stream.shutdown(Shutdown::Both); // ENOTCONN: already gone
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
    // ANCHOR_END: close_when_idle

    // ANCHOR: echo_touching
    /// `echo`, noting the time of every read in `last_read`.
    async fn echo_touching(
        stream: &TcpStream,
        last_read: &Cell<Instant>,
    ) -> io::Result<u64> {
        stream.set_nodelay(true)?;
        let (mut buf, mut total) = (vec![0u8; BUF_SIZE], 0);
        loop {
            let (res, b) = stream.read(buf).await;
            buf = b;
            last_read.set(Instant::now()); // what the watchdog watches
            let n = res?;
            if n == 0 {
                return Ok(total);
            }
            let (res, slice) = stream.write_all(buf.slice(..n)).await;
            res?;
            buf = slice.into_inner();
            total += n as u64;
        }
    }
    // ANCHOR_END: echo_touching

    /// Serves two connections with the idle timeout, then returns what each
    /// echoed. Sends the address it listens on first.
    fn serve_two(
        bound: std::sync::mpsc::Sender<std::net::SocketAddr>,
    ) -> anyhow::Result<Vec<u64>> {
        runtime()?.block_on(async {
            let listener = listen("127.0.0.1:0".parse()?)?;
            bound.send(listener.local_addr()?)?;
            let mut conns = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await?;
                conns.push(tokio_uring::spawn(echo_with_idle_timeout(stream, IDLE)));
            }
            let mut echoed = Vec::new();
            for conn in conns {
                echoed.push(conn.await??);
            }
            Ok(echoed)
        })
    }

    // ANCHOR: idle_run
    pub fn run() -> anyhow::Result<()> {
        super::ignore_sigpipe(); // as the server does: a reset must not kill us
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || serve_two(tx));
        let Ok(addr) = rx.recv() else {
            return super::joined(server.join())?.map(|_| ()); // it could not listen
        };
        let chatty = std::thread::spawn(move || chatty_client(addr));
        let took = silent_client(addr)?;
        println!(
            "silent client: one line echoed, then closed by the server after {took:.1?}"
        );
        let lines = super::joined(chatty.join())??;
        println!("chatty client: {lines} lines 100 ms apart, all echoed, never cut off");
        let mut echoed = super::joined(server.join())??;
        echoed.sort(); // the two connections, in either order
        println!("server: echoed {echoed:?} bytes, each connection closed");
        Ok(())
    }

    /// Sends one line, then nothing: returns how long until the server closed
    /// the connection, from before the line (the server cannot have read it
    /// earlier).
    fn silent_client(addr: std::net::SocketAddr) -> anyhow::Result<Duration> {
        let mut silent = std::net::TcpStream::connect(addr)?;
        silent.set_read_timeout(Some(5 * IDLE))?;
        let start = Instant::now();
        silent.write_all(b"hello\n")?;
        silent.read_exact(&mut [0u8; 6])?;
        let closed = silent.read(&mut [0u8; 1]);
        let took = start.elapsed();
        ensure!(matches!(closed, Ok(0)), "still open after {:?}", 5 * IDLE);
        ensure!(
            took >= IDLE,
            "closed after {took:?}, before {IDLE:?} of silence"
        );
        Ok(took)
    }
    // ANCHOR_END: idle_run

    /// Sends a line every 100 ms for longer than IDLE, checks each echo, then
    /// ends the connection itself. Returns the lines sent.
    fn chatty_client(addr: std::net::SocketAddr) -> anyhow::Result<usize> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(5 * IDLE))?;
        let lines = 15;
        for i in 0..lines {
            let line = format!("line {i:02}\n");
            stream.write_all(line.as_bytes())?;
            let mut echo = vec![0u8; line.len()];
            stream
                .read_exact(&mut echo)
                .map_err(|e| anyhow!("line {i}: {e}: cut off while talking"))?;
            ensure!(echo == line.as_bytes(), "line {i} came back different");
            std::thread::sleep(Duration::from_millis(100));
        }
        stream.shutdown(Shutdown::Write)?;
        ensure!(
            stream.read(&mut [0u8; 1])? == 0,
            "no end of stream after ours"
        );
        Ok(lines)
    }
}

/// Exercise 5.2: `echo` with a 512-byte buffer against the 16 KiB one, both
/// loaded with 4096-byte messages, reads counted and rates compared.
pub mod small_buffer {
    use std::cell::Cell;
    use std::io;
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::time::Duration;

    use anyhow::{anyhow, ensure};
    use tokio_uring::buf::BoundedBuf;
    use tokio_uring::net::TcpStream;
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::echo::client::{self, Config};
    use uring_book::ex5_tcp_echo::{listen, runtime, BUF_SIZE};

    /// Bytes per message, as `--size 4096`.
    pub const SIZE: usize = 4096;

    // ANCHOR: echo_with_buffer
    /// `echo` with a buffer of `buf_size` bytes; counts its reads.
    pub async fn echo_with_buffer(
        stream: &TcpStream,
        buf_size: usize,
        reads: &Cell<u64>,
    ) -> io::Result<u64> {
        stream.set_nodelay(true)?;
        let (mut buf, mut total) = (vec![0u8; buf_size], 0);
        loop {
            let (res, b) = stream.read(buf).await;
            buf = b;
            reads.set(reads.get() + 1);
            let n = res?;
            if n == 0 {
                return Ok(total);
            }
            let (res, slice) = stream.write_all(buf.slice(..n)).await;
            res?;
            buf = slice.into_inner();
            total += n as u64;
        }
    }
    // ANCHOR_END: echo_with_buffer

    /// One load of `runs` on a server with `buf_size`: msgs/s and the
    /// server's reads per message.
    fn load(buf_size: usize, duration: Duration) -> anyhow::Result<(f64, f64)> {
        runtime()?.block_on(async {
            let listener = listen("127.0.0.1:0".parse()?)?;
            let addr: SocketAddr = listener.local_addr()?;
            let (reads, bytes) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
            let (r, b) = (reads.clone(), bytes.clone());
            tokio_uring::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (r, b) = (r.clone(), b.clone());
                    tokio_uring::spawn(async move {
                        if let Ok(n) = echo_with_buffer(&stream, buf_size, &r).await {
                            b.set(b.get() + n);
                        }
                    });
                }
            });
            let config = Config {
                conns: 4,
                size: SIZE,
                duration,
                ..Config::new(addr)
            };
            let client = std::thread::spawn(move || client::run(&config));
            while !client.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let report = client.join().map_err(|_| anyhow!("client panicked"))??;
            // Let the servers' tasks see each connection's EOF.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let messages = (bytes.get() / SIZE as u64) as f64;
            Ok((report.msgs_per_sec(), (reads.get() as f64) / messages))
        })
    }

    // ANCHOR: compare_buffers
    pub fn run() -> anyhow::Result<()> {
        super::ignore_sigpipe(); // as the server does: a reset must not kill us
        let (bufs, runs) = ([BUF_SIZE, 512], 3);
        let (mut rates, mut reads) = ([vec![], vec![]], [vec![], vec![]]);
        for _ in 0..runs {
            for (i, &buf_size) in bufs.iter().enumerate() {
                let (rate, per_message) = load(buf_size, Duration::from_millis(300))?;
                rates[i].push(rate);
                reads[i].push(per_message);
            }
        }
        println!(
            "4 connections of {SIZE}-byte messages, {runs} runs of 0.3 s, interleaved:"
        );
        let spread = |v: &[f64]| Spread::of(v.iter().copied()).expect("runs");
        for i in 0..2 {
            let (rate, per) = (spread(&rates[i]), spread(&reads[i]));
            print!("  buffer {:>5}: {:>6.0} msgs/s", bufs[i], rate.median);
            print!(" (runs {:.0} to {:.0}),", rate.min, rate.max);
            println!(" {:.2} reads per message", per.median);
        }
        let fewest = spread(&reads[1]).min;
        ensure!(
            fewest >= 8.0,
            "512 bytes took only {fewest:.2} reads per message"
        );
        let verdict = match compare(&spread(&rates[0]), &spread(&rates[1])) {
            Verdict::Higher => "16 KiB was faster in every run, as expected",
            Verdict::Lower => "512 bytes was faster in every run: unexpected, rerun",
            _ => "a tie: the runs overlap; the extra calls cost less than the noise",
        };
        println!("{verdict}");
        Ok(())
    }
    // ANCHOR_END: compare_buffers
}

/// A thread's result, or an error if it panicked.
fn joined<T>(result: std::thread::Result<T>) -> anyhow::Result<T> {
    result.map_err(|_| anyhow::anyhow!("a thread panicked"))
}

/// Makes writes to a closed socket fail with EPIPE instead of killing the
/// process, as exercise 5 does.
fn ignore_sigpipe() {
    // SAFETY: replaces a signal's disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Exercise 5.3: exercise 5's server and a client that sends and never
/// reads, watched from outside: the socket queues and the server's memory.
pub mod backpressure {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{bail, ensure, Context};
    use uring_book::solutions::exercises_binary;

    /// One look at the connection from outside.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Sample {
        pub sent: u64,
        pub send_q: u64,
        pub recv_q: u64,
        pub rss_kib: u64,
    }

    // ANCHOR: watch
    pub fn run() -> anyhow::Result<()> {
        let server = Server::start()?;
        let mut stream = TcpStream::connect(server.addr)?;
        stream.write_all(b"warm up\n")?; // the server is set up: its memory settles
        stream.read_exact(&mut [0u8; 8])?;
        let (sent, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let writer = spawn_writer(stream.try_clone()?, sent.clone(), stop.clone())?;
        let port = stream.local_addr()?.port();
        let look = || sample(&server, port, &sent);
        let (first, start) = (look()?, Instant::now());
        println!("  time   client sent   server Send-Q    Recv-Q   server RSS");
        let mut seen = vec![first];
        // Until three looks 300 ms apart agree: every queue is full.
        while seen.len() < 3 || seen[seen.len() - 3..].windows(2).any(|w| w[0] != w[1]) {
            ensure!(
                start.elapsed() < Duration::from_secs(5),
                "still growing after 5 s"
            );
            std::thread::sleep(Duration::from_millis(300));
            seen.push(look()?);
            show(start.elapsed(), seen.last().unwrap());
        }
        let last = *seen.last().unwrap();
        ensure!(
            last.rss_kib < first.rss_kib + 2048,
            "the server's memory grew"
        );
        println!("the client's writes block; the server's Send-Q and memory stay flat");
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        println!(
            "by hand: ss -tnm 'sport = :{}' and ps -o rss= -p {}",
            server.addr.port(),
            server.pid()
        );
        server.stop()
    }
    // ANCHOR_END: watch

    fn show(at: Duration, s: &Sample) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "  {:.1} s  {:>8.1} MiB  {:>10.1} MiB  {:>4} KiB  {:>7} KiB",
            at.as_secs_f64(),
            mib(s.sent),
            mib(s.send_q),
            s.recv_q >> 10,
            s.rss_kib
        );
    }

    /// Writes 64 KiB at a time until `stop`, counting what the kernel took.
    fn spawn_writer(
        mut stream: TcpStream,
        sent: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        // A blocked write wakes up every 50 ms to see whether to stop.
        stream.set_write_timeout(Some(Duration::from_millis(50)))?;
        Ok(std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = stream.write(&chunk) {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }))
    }

    /// The client's count, the server side's queues (from /proc/net/tcp, the
    /// numbers ss prints), and the server's resident memory.
    fn sample(
        server: &Server,
        client_port: u16,
        sent: &AtomicU64,
    ) -> anyhow::Result<Sample> {
        let (send_q, recv_q) = queues(server.addr.port(), client_port)?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))?;
        let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
        let rss_kib = rss.and_then(|r| r.split_whitespace().next()?.parse().ok());
        Ok(Sample {
            sent: sent.load(Ordering::Relaxed),
            send_q,
            recv_q,
            rss_kib: rss_kib.context("no VmRSS in /proc/PID/status")?,
        })
    }

    /// tx_queue and rx_queue of the socket from `local` to `remote` port.
    fn queues(local: u16, remote: u16) -> anyhow::Result<(u64, u64)> {
        let table = std::fs::read_to_string("/proc/net/tcp")?;
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 4 && port(f[1]) == Some(local) && port(f[2]) == Some(remote) {
                let (tx, rx) = f[4].split_once(':').context("tx_queue:rx_queue")?;
                return Ok((u64::from_str_radix(tx, 16)?, u64::from_str_radix(rx, 16)?));
            }
        }
        bail!("no socket from port {local} to {remote} in /proc/net/tcp")
    }

    /// Exercise 5's server, started as `cargo run -- 5 --addr 127.0.0.1:0`.
    struct Server {
        child: Child,
        // Read to its end when the server stops: it prints as it stops.
        out: BufReader<ChildStdout>,
        addr: SocketAddr,
    }

    impl Server {
        fn start() -> anyhow::Result<Server> {
            let mut child = Command::new(exercises_binary()?)
                .args(["5", "--addr", "127.0.0.1:0", "--quiet"])
                .stdout(Stdio::piped())
                .spawn()
                .context("starting exercise 5")?;
            let mut line = String::new();
            let mut out = BufReader::new(child.stdout.take().context("stdout")?);
            out.read_line(&mut line)?;
            let addr = line.trim().strip_prefix("listening on ").map(str::parse);
            match addr {
                Some(Ok(addr)) => Ok(Server { child, out, addr }),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("exercise 5 did not say where it listens: {line:?}")
                }
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// SIGTERM, as Ctrl-C would; the server stops by itself.
        fn stop(mut self) -> anyhow::Result<()> {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            std::io::copy(&mut self.out, &mut std::io::sink())?;
            let status = self.child.wait()?;
            ensure!(status.success(), "exercise 5 ended with {status}");
            Ok(())
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            // An early return: the server must not outlive us.
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}
