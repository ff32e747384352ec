//! The echo-server suite: an echo server, started as a child process on a
//! free loopback port, faces the same clients. A server that prints
//! `listening on ADDR`, exits with status 0 on SIGTERM and logs `EMFILE` on
//! stderr joins with one `echo_server_tests!` line: chapter 5's and chapter
//! 8's (with one thread and with two) do (chapter 6's stop when their stdin
//! closes and log nothing).
//!
//! Clients are blocking std sockets with timeouts, or the crate's load
//! client, so every test is bounded in time. Nothing here measures speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use uring_book::echo::client::{self, Config};

/// Every blocking read, write and wait gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A server running as a child process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads that copy stdout and stderr; they end at the pipes' EOF.
    readers: Vec<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `uring-book ARGS`, which must print `listening on ADDR` first.
    pub fn start(args: &[&str]) -> Server {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_uring-book")).args(args))
    }

    /// Starts the server with RLIMIT_NOFILE fixed at `nofile` (soft and hard).
    pub fn start_with_nofile(args: &[&str], nofile: u64) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uring-book"));
        cmd.args(args);
        // SAFETY: setrlimit is async-signal-safe, as code after fork must be.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Server::spawn(&mut cmd)
    }

    fn spawn(cmd: &mut Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the server");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        let log = stdout.clone();
        let out_reader = thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let err = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        let err_reader = thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("no `listening on` line; stderr: {}", stderr.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Panics if the server has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the server exited ({status}); stderr: {}", self.stderr());
        }
    }

    /// Waits (bounded) for the server to exit by itself, then for the last
    /// of its output: once it has exited, stdout() and stderr() are complete.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The pipes reach EOF now that the process is gone.
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not exit within {TIMEOUT:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking connection whose connect, reads and writes time out.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting to the server");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// `len` bytes that differ from one connection (`seed`) to the next.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    // xorshift: cheap, and no run of bytes repeats.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` from another thread while this one reads the echo back.
fn echo_concurrently(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sent = data.to_vec();
    let handle = thread::spawn(move || writer.write_all(&sent));
    let mut echoed = vec![0u8; data.len()];
    (&*stream)
        .read_exact(&mut echoed)
        .expect("reading the echo");
    handle.join().unwrap().expect("writing the payload");
    echoed
}

fn assert_round_trip(addr: SocketAddr, line: &[u8]) {
    let mut stream = connect(addr);
    stream.write_all(line).unwrap();
    let mut echoed = vec![0u8; line.len()];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, line);
}

/// Reads until EOF; panics on timeout or error.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("reading until EOF");
    rest
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// How many descriptors a process has open, from /proc.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The largest buffer size in /proc/sys/net/ipv4/`name` (min default max).
fn sysctl_max(name: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).unwrap();
    text.split_whitespace().last().unwrap().parse().unwrap()
}

pub mod checks {
    use super::*;

    pub fn round_trip(server: &Server) {
        let mut stream = connect(server.addr);
        stream.write_all(b"hello io_uring\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut stream), b"hello io_uring\n");
    }

    pub fn hundred_clients(server: &Server) {
        let config = Config {
            conns: 100,
            size: 1000,
            duration: TIMEOUT,
            max_messages: Some(200),
            ..Config::new(server.addr)
        };
        // The client checks every byte and each connection's final EOF.
        let report = client::run(&config).expect("the load client");
        assert_eq!(report.messages, 100 * 200);
        assert_eq!((report.per_conn_min, report.per_conn_max), (200, 200));
    }

    pub fn thousand_connections(server: &Server) {
        let nofile = uring_book::system::raise_nofile_limit().unwrap();
        assert!(
            nofile > 1100,
            "this test needs RLIMIT_NOFILE above 1100: {nofile}"
        );
        let config = Config {
            conns: 1000,
            size: 100,
            duration: TIMEOUT,
            max_messages: Some(20),
            ..Config::new(server.addr)
        };
        let report = client::run(&config).expect("the load client");
        assert_eq!(report.messages, 1000 * 20);
        assert_eq!((report.per_conn_min, report.per_conn_max), (20, 20));
    }

    pub fn megabyte_while_reading(server: &Server) {
        let data = payload(1, 1 << 20);
        let stream = connect(server.addr);
        assert!(
            echo_concurrently(&stream, &data) == data,
            "the 1 MiB echo differs"
        );
    }

    pub fn half_close_echoes_everything(server: &Server) {
        let data = payload(2, 300_000);
        let mut stream = connect(server.addr);
        let mut writer = stream.try_clone().unwrap();
        let sent = data.clone();
        let handle = thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        // Everything sent before the shutdown comes back, then EOF.
        let echoed = read_to_eof(&mut stream);
        handle.join().unwrap();
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "the echo differs from what was sent");
    }

    pub fn reset_ends_only_that_connection(server: &Server) {
        let mut other = connect(server.addr);
        other.write_all(b"before").unwrap();
        let mut buf = [0u8; 6];
        other.read_exact(&mut buf).unwrap();

        let doomed = socket2::Socket::from(connect(server.addr));
        (&doomed).write_all(&payload(3, 200_000)).unwrap();
        // SO_LINGER 0: close sends RST instead of FIN, dropping unread data.
        doomed.set_linger(Some(Duration::ZERO)).unwrap();
        drop(doomed);

        other.write_all(b"after").unwrap();
        let mut buf = [0u8; 5];
        other.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"after");
        assert_round_trip(server.addr, b"a new connection\n");
    }

    pub fn slow_reader_gets_backpressure(server: &Server) {
        // More than the socket buffers on the way can hold (each side's send
        // and receive buffers, at their maxima), so the writer must block.
        let size = (2 * (sysctl_max("tcp_wmem") + sysctl_max("tcp_rmem")) + (8 << 20))
            .max(32 << 20);
        let data = Arc::new(payload(4, size));
        let before = rss_kib(server.pid());
        let mut stream = connect(server.addr);
        let mut writer = stream.try_clone().unwrap();
        let sent = data.clone();
        let handle = thread::spawn(move || writer.write_all(&sent));
        // Not reading for a while: the server must wait for us, not buffer
        // what we send in its own memory.
        thread::sleep(Duration::from_millis(500));
        let during = rss_kib(server.pid());
        assert!(
            !handle.is_finished(),
            "all {size} bytes were sent although nobody read the echo: {:?}",
            handle.join().unwrap()
        );
        let mut echoed = vec![0u8; size];
        stream.read_exact(&mut echoed).unwrap();
        handle.join().unwrap().unwrap();
        assert!(echoed == *data, "the {size}-byte echo differs");
        assert!(
            during < before + 2048,
            "server memory grew from {before} KiB to {during} KiB while the client \
             did not read"
        );
    }

    /// 50 clients each send 32 MiB and never read. The server must stop
    /// receiving from them rather than hold what they send, and still have
    /// room for a new client, served within a second.
    pub fn stalled_clients_leave_room(server: &mut Server) {
        const CLIENTS: usize = 50;
        const EACH: usize = 32 << 20;
        let chunk = Arc::new(payload(5, 64 << 10));
        let before = rss_kib(server.pid());
        let streams: Vec<TcpStream> =
            (0..CLIENTS).map(|_| connect(server.addr)).collect();
        let writers: Vec<_> = streams
            .iter()
            .map(|stream| {
                let mut writer = stream.try_clone().unwrap();
                let chunk = chunk.clone();
                thread::spawn(move || {
                    let mut sent = 0;
                    while sent < EACH {
                        match writer.write(&chunk[..chunk.len().min(EACH - sent)]) {
                            Ok(n) => sent += n,
                            Err(_) => break, // shut down below, or timed out
                        }
                    }
                    sent
                })
            })
            .collect();
        // Long enough for every socket buffer on the way to fill.
        thread::sleep(Duration::from_millis(1500));
        let during = rss_kib(server.pid());
        let start = Instant::now();
        assert_round_trip(server.addr, b"a fresh client\n");
        let took = start.elapsed();
        server.assert_running();
        for stream in &streams {
            let _ = stream.shutdown(Shutdown::Both); // ends the blocked writes
        }
        let sent: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(
            took < Duration::from_secs(1),
            "the fresh client waited {took:?} behind {CLIENTS} stalled ones"
        );
        // Buffering what they sent would take up to 1.6 GiB.
        assert!(
            during < before + (64 << 10),
            "server memory grew from {before} KiB to {during} KiB while {CLIENTS} \
             clients sent {} MiB without reading",
            sent >> 20
        );
    }

    pub fn connect_close_storm(server: &mut Server) {
        let addr = server.addr;
        // A first echo: the server is fully up (its ring, say, exists).
        assert_round_trip(addr, b"first\n");
        let fds_before = open_fds(server.pid());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                thread::spawn(move || {
                    for i in 0..500 {
                        let stream = connect(addr);
                        match i % 3 {
                            0 => {}
                            1 => (&stream).write_all(b"x").unwrap(),
                            _ => socket2::SockRef::from(&stream)
                                .set_linger(Some(Duration::ZERO))
                                .unwrap(),
                        }
                        drop(stream);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        server.assert_running();
        assert_round_trip(server.addr, b"still here\n");
        // Every one of the 2000 connections was closed on the server's side
        // too: no descriptor leaked, whether the client closed or reset.
        let deadline = Instant::now() + TIMEOUT;
        while open_fds(server.pid()) > fds_before {
            assert!(
                Instant::now() < deadline,
                "the server holds {} descriptors, {fds_before} before the storm",
                open_fds(server.pid())
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stops_on_sigterm(server: &mut Server) {
        let _idle = connect(server.addr);
        assert_round_trip(server.addr, b"ping\n");
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
        let status = server.wait_exit();
        assert!(
            status.success(),
            "exit status {status}; stderr: {}",
            server.stderr()
        );
        assert!(server.stdout().contains("SIGTERM"), "{}", server.stdout());
    }

    /// Run with RLIMIT_NOFILE at 64: the server runs out of descriptors.
    pub fn survives_emfile(server: &mut Server) {
        let held: Vec<TcpStream> = (0..100).map(|_| connect(server.addr)).collect();
        let deadline = Instant::now() + TIMEOUT;
        while !server.stderr().contains("EMFILE") {
            assert!(
                Instant::now() < deadline,
                "no EMFILE logged: {}",
                server.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
        server.assert_running();
        drop(held);
        // The closed connections free descriptors; the server accepts again.
        assert_round_trip(server.addr, b"after EMFILE\n");
        server.assert_running();
    }
}

/// One test per check for the server that `uring-book ARGS...` runs.
macro_rules! echo_server_tests {
    ($name:ident, [$($arg:literal),*]) => {
        mod $name {
            use super::*;
            const ARGS: &[&str] = &[$($arg),*];

            #[test]
            fn round_trip() {
                checks::round_trip(&Server::start(ARGS));
            }
            #[test]
            fn hundred_clients() {
                checks::hundred_clients(&Server::start(ARGS));
            }
            #[test]
            fn thousand_connections() {
                checks::thousand_connections(&Server::start(ARGS));
            }
            #[test]
            fn megabyte_while_reading() {
                checks::megabyte_while_reading(&Server::start(ARGS));
            }
            #[test]
            fn half_close_echoes_everything() {
                checks::half_close_echoes_everything(&Server::start(ARGS));
            }
            #[test]
            fn reset_ends_only_that_connection() {
                checks::reset_ends_only_that_connection(&Server::start(ARGS));
            }
            #[test]
            fn slow_reader_gets_backpressure() {
                checks::slow_reader_gets_backpressure(&Server::start(ARGS));
            }
            #[test]
            fn stalled_clients_leave_room() {
                checks::stalled_clients_leave_room(&mut Server::start(ARGS));
            }
            #[test]
            fn connect_close_storm() {
                checks::connect_close_storm(&mut Server::start(ARGS));
            }
            #[test]
            fn stops_on_sigterm() {
                checks::stops_on_sigterm(&mut Server::start(ARGS));
            }
            #[test]
            fn survives_emfile() {
                checks::survives_emfile(&mut Server::start_with_nofile(ARGS, 64));
            }
        }
    };
}

echo_server_tests!(ex5, ["5", "--addr", "127.0.0.1:0", "--quiet"]);
echo_server_tests!(ex8, ["8", "--addr", "127.0.0.1:0", "--quiet"]);
echo_server_tests!(
    ex8_two_threads,
    ["8", "--addr", "127.0.0.1:0", "--quiet", "--threads", "2"]
);
