//! The network workload's harness: start an echo server as a process of its
//! own (so /proc/PID/stat holds its CPU time alone), pin it and the client to
//! different CPUs, run a load client against it and turn that into a record.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use uring_book::bench::record::{Measured, Record, Settings};

/// A load for the client to put on a server.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub addr: SocketAddr,
    pub conns: usize,
    /// Bytes per message; each connection has one message in flight.
    pub size: usize,
    pub duration: Duration,
}

/// What the client measured; every message came back intact.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub messages: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// A load client: chapter 5's, wrapped to take a [`Load`].
pub type Client<'a> = &'a dyn Fn(&Load) -> anyhow::Result<Outcome>;

/// An echo server running as a child process of the benchmark.
pub struct ServerProcess {
    child: Child,
    // The server exits when this pipe closes, so it cannot outlive us.
    _stdin: ChildStdin,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `exe 6 --serve ENGINE [--cpu N]` and reads the address it
    /// prints: `listening on 127.0.0.1:PORT`.
    pub fn start(exe: &Path, engine: &str, cpu: Option<usize>) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(["6", "--serve", engine]);
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the {engine} echo server did not start (it said {:?})", line.trim());
        };
        let addr = addr.parse().context("the server's address")?;
        Ok(ServerProcess { child, _stdin: stdin, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of process `pid`, from /proc/PID/stat.
pub fn process_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after it do not.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")".
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Pins the calling thread (0) or process to one CPU.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs the calling thread may run on, to put them back afterwards.
fn affinity() -> libc::cpu_set_t {
    // SAFETY: sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set);
        set
    }
}

fn set_affinity(set: &libc::cpu_set_t) {
    // SAFETY: a set read from sched_getaffinity.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
}

/// Runs `client` with `load` against a server, server CPU time measured
/// over the same window, the client pinned to `client_cpu` meanwhile.
pub fn measure(
    server: &ServerProcess,
    engine: &str,
    load: Load,
    client: Client,
    client_cpu: Option<usize>,
    seconds: f64,
) -> anyhow::Result<Record> {
    let saved = affinity();
    if let Some(cpu) = client_cpu {
        pin_to_cpu(cpu)?;
    }
    let before = process_cpu_time(server.pid())?;
    let outcome = client(&Load { addr: server.addr, ..load });
    let after = process_cpu_time(server.pid());
    set_affinity(&saved);
    let outcome = outcome.with_context(|| format!("echo client against {engine}"))?;
    let m = Measured {
        ops: outcome.messages,
        bytes: outcome.messages * load.size as u64,
        elapsed: outcome.elapsed,
        cpu: Some(after? - before),
        ..Measured::default()
    };
    let settings = Settings {
        block_size: load.size as u64,
        seconds,
        threads: 1,
        ..Settings::default()
    };
    let mut record = Record::new("echo", engine, load.conns as u32, m, settings);
    record.p50_us = Some(outcome.p50.as_secs_f64() * 1e6);
    record.p99_us = Some(outcome.p99.as_secs_f64() * 1e6);
    Ok(record)
}

/// The body of `uring-book 6 --serve ENGINE`: bind 127.0.0.1:0, say where,
/// serve until the benchmark closes our stdin.
pub fn serve(engine: &str, cpu: Option<usize>) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu).with_context(|| format!("pin the server to CPU {cpu}"))?;
    }
    uring_book::system::raise_nofile_limit()?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("listening on {}", listener.local_addr()?);
    match engine {
        "tokio" => uring_book::bench::echo_servers::serve_tokio(listener),
        "std-threads" => uring_book::bench::echo_servers::serve_std_threads(listener),
        other => bail!("no echo server '{other}' (tokio, std-threads)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let pid = std::process::id();
        let before = process_cpu_time(pid).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        // Busy for 50 ms: more than a clock tick of 10 ms.
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(process_cpu_time(pid).unwrap() > before);
    }

    #[test]
    fn pinning_leaves_the_thread_on_that_cpu() {
        std::thread::spawn(|| {
            pin_to_cpu(0).unwrap();
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() }, 0);
        })
        .join()
        .unwrap();
    }
}
