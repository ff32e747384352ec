//! The network workload's harness: start an echo server as a process of its
//! own (so /proc/PID/stat holds its CPU time alone), pin it and the client to
//! different CPUs, run a load client against it and turn that into a record.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use uring_book::bench::record::{Measured, Profile, Record, Settings};
use uring_book::bench::{echo_servers, multishot_servers};

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

/// An echo server running as a child process of the benchmark, optionally
/// under `perf stat`, which counts its system calls and context switches
/// (every thread's, those it starts later included) while we enable it.
pub struct ServerProcess {
    /// The server, or perf with the server as its child.
    child: Child,
    // The server exits when this pipe closes, so it cannot outlive us.
    stdin: Option<ChildStdin>,
    pid: u32,
    /// The CPU the server is pinned to, if it is.
    cpu: Option<usize>,
    pub addr: SocketAddr,
    perf: Option<Perf>,
}

/// perf stat's control and acknowledgement FIFOs and its output file.
struct Perf {
    dir: uring_book::cleanup::TempDir,
    ctl: std::fs::File,
    ack: BufReader<std::fs::File>,
}

impl Perf {
    /// The FIFOs in a directory of their own, and perf's `--control` argument
    /// that names them.
    fn new() -> anyhow::Result<(Perf, String)> {
        let dir = uring_book::cleanup::tempdir()?;
        let (ctl, ack) = (dir.path().join("ctl"), dir.path().join("ack"));
        mkfifo(&ctl)?;
        mkfifo(&ack)?;
        let control = format!("--control=fifo:{},{}", ctl.display(), ack.display());
        let perf = Perf {
            ctl: open_fifo(&ctl)?,
            ack: BufReader::new(open_fifo(&ack)?),
            dir,
        };
        Ok((perf, control))
    }

    /// Sends `enable` or `disable` and waits for perf's `ack`: once it comes,
    /// perf has done it.
    fn command(&mut self, command: &str) -> anyhow::Result<()> {
        use std::io::Write;
        writeln!(self.ctl, "{command}")?;
        let mut ack = String::new();
        self.ack.read_line(&mut ack)?;
        // perf writes "ack\n" with its terminating NUL, which starts the next line.
        let ack = ack.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        anyhow::ensure!(ack == "ack", "perf answered {ack:?} to {command}");
        Ok(())
    }
}

/// What perf counted while it was enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerfCounts {
    pub syscalls: u64,
    pub context_switches: u64,
}

/// The events perf counts: every system call entry, and context switches.
const PERF_EVENTS: &str = "raw_syscalls:sys_enter,context-switches";

/// Whether `perf stat` can count system calls here (perf is installed and
/// the tracepoint is readable).
pub fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", PERF_EVENTS, "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn mkfifo(path: &Path) -> anyhow::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error()).context("mkfifo");
    }
    Ok(())
}

/// Opens a FIFO for both directions: that never blocks waiting for the
/// other end, which perf opens in its own time.
fn open_fifo(path: &Path) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?)
}

impl ServerProcess {
    /// Starts `exe 6 --serve ENGINE [--cpu N]` (under `perf stat` with
    /// counting disabled when `perf` is true) and reads the line it prints:
    /// `listening on 127.0.0.1:PORT pid N`.
    pub fn start(
        exe: &Path,
        engine: &str,
        cpu: Option<usize>,
        perf: bool,
    ) -> anyhow::Result<Self> {
        let mut serve: Vec<String> = vec!["6".into(), "--serve".into(), engine.into()];
        if let Some(cpu) = cpu {
            serve.extend(["--cpu".into(), cpu.to_string()]);
        }
        let (mut cmd, perf) = if perf {
            let (perf, control) = Perf::new()?;
            let mut cmd = Command::new("perf");
            cmd.args(["stat", "-x,", "-e", PERF_EVENTS, "--delay=-1"])
                .arg(control)
                .arg("-o")
                .arg(perf.dir.path().join("counts"))
                .arg("--")
                .arg(exe)
                .args(&serve);
            // perf says "Events enabled" on stderr each time: keep it in a file.
            cmd.stderr(std::fs::File::create(perf.dir.path().join("stderr"))?);
            (cmd, Some(perf))
        } else {
            let mut cmd = Command::new(exe);
            cmd.args(&serve);
            (cmd, None)
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)?;
        let parsed = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_once(" pid "))
            .and_then(|(addr, pid)| Some((addr.parse().ok()?, pid.parse().ok()?)));
        let Some((addr, pid)) = parsed else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the {engine} echo server did not start (it said {:?})",
                line.trim()
            );
        };
        Ok(ServerProcess {
            child,
            stdin,
            pid,
            cpu,
            addr,
            perf,
        })
    }

    /// The server's process id (not perf's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Starts perf counting (nothing to do without perf).
    pub fn enable_counting(&mut self) -> anyhow::Result<()> {
        self.perf_command("enable")
    }

    pub fn disable_counting(&mut self) -> anyhow::Result<()> {
        self.perf_command("disable")
    }

    /// Sends `enable` or `disable` to perf and waits for its `ack`.
    fn perf_command(&mut self, command: &str) -> anyhow::Result<()> {
        match &mut self.perf {
            Some(perf) => perf.command(command),
            None => Ok(()),
        }
    }

    /// Stops the server and returns what perf counted, if it ran under perf.
    pub fn finish(mut self) -> anyhow::Result<Option<PerfCounts>> {
        self.stop();
        let Some(perf) = &self.perf else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(perf.dir.path().join("counts"))?;
        parse_perf_counts(&text).map(Some).map_err(|e| {
            let stderr = std::fs::read_to_string(perf.dir.path().join("stderr"));
            let last = stderr
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            anyhow::anyhow!("{e} (perf said: {last})")
        })
    }

    fn stop(&mut self) {
        // Closing stdin makes the server exit; perf then reports and exits.
        drop(self.stdin.take());
        if self.child.wait_timeout(Duration::from_secs(5)).is_none() {
            // SAFETY: kill with the id of a process we started.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.stop();
        }
    }
}

/// Waiting for a child with a time limit.
trait WaitTimeout {
    fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

/// Reads `perf stat -x,` output: `value,unit,event,...` lines.
pub fn parse_perf_counts(text: &str) -> anyhow::Result<PerfCounts> {
    let mut counts = PerfCounts::default();
    let mut seen = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(value), Some(event)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            bail!("perf could not count {event}: {value}");
        };
        match *event {
            "raw_syscalls:sys_enter" => counts.syscalls = value,
            "context-switches" => counts.context_switches = value,
            _ => continue,
        }
        seen += 1;
    }
    anyhow::ensure!(seen == 2, "perf's output lacks counts: {text:?}");
    Ok(counts)
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

/// The CPUs this thread may run on, in order (a container may allow only
/// some of the machine's).
pub fn allowed_cpus() -> Vec<usize> {
    let set = affinity();
    // SAFETY: CPU_ISSET reads within the set.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
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
/// With `profile`, `perf record` samples the server for the client's whole
/// call and the record keeps the profile.
pub fn measure(
    mut server: ServerProcess,
    engine: &str,
    load: Load,
    client: Client,
    client_cpu: Option<usize>,
    seconds: f64,
    profile: bool,
) -> anyhow::Result<Record> {
    let saved = affinity();
    if let Some(cpu) = client_cpu {
        pin_to_cpu(cpu)?;
    }
    let pid = server.pid();
    let cpu = process_cpu_time(pid)?;
    server.enable_counting()?;
    let mut recorder = if profile {
        Some(start_recording(&server)?)
    } else {
        None
    };
    // The profile keeps the samples of the server's threads, collected while
    // the client runs: the threads it starts on the way count too.
    let watching = std::sync::atomic::AtomicBool::new(profile);
    let (outcome, threads) = std::thread::scope(|s| {
        let watcher = s.spawn(|| server_threads(pid, &watching));
        let outcome = client(&Load {
            addr: server.addr,
            ..load
        });
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        (outcome, watcher.join().expect("thread watcher"))
    });
    let recorded = recorder.as_mut().map(Recorder::stop).transpose()?;
    let cpu_after = process_cpu_time(pid);
    server.disable_counting()?;
    set_affinity(&saved);
    let outcome = outcome.with_context(|| format!("echo client against {engine}"))?;
    let perf = server.finish()?;
    let profile = match recorded {
        Some(data) => Some(profile_of(&data, &threads, 8)?),
        None => None,
    };
    let m = Measured {
        ops: outcome.messages,
        bytes: outcome.messages * load.size as u64,
        elapsed: outcome.elapsed,
        // Over the client's whole call: connecting and closing included.
        cpu: Some(cpu_after? - cpu),
        syscalls: perf.map(|p| p.syscalls),
        ctx_switches: perf.map(|p| p.context_switches),
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
    record.profile = profile;
    Ok(record)
}

/// `perf record` of a server, started with its events off and turned on
/// through its control FIFO: the `ack` says it is recording.
struct Recorder {
    child: Child,
    control: Perf,
}

fn start_recording(server: &ServerProcess) -> anyhow::Result<Recorder> {
    let (mut control, arg) = Perf::new()?;
    let child = Command::new("perf")
        .args(["record", "-q", "--delay=-1"])
        .arg(arg)
        .arg("-o")
        .arg(control.dir.path().join("perf.data"))
        .args(profile_target(server))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(control.dir.path().join("stderr"))?)
        .spawn()
        .context("start perf record")?;
    control.command("enable")?;
    Ok(Recorder { child, control })
}

impl Recorder {
    /// Stops recording, lets perf write its file, and says where it is.
    fn stop(&mut self) -> anyhow::Result<std::path::PathBuf> {
        self.control.command("disable")?;
        // SAFETY: SIGINT to the perf we started: it finishes its file and exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        Ok(self.control.dir.path().join("perf.data"))
    }
}

/// What `perf record` samples to profile a server: the CPU it is pinned to,
/// kept to the server's threads by `perf report --tid`. `-p PID` misses
/// samples of the threads the server starts after perf attaches
/// (std-threads starts one per connection); it is the choice only for a
/// server not pinned anywhere.
fn profile_target(server: &ServerProcess) -> Vec<String> {
    match server.cpu {
        Some(cpu) => vec!["-C".into(), cpu.to_string()],
        None => vec!["-p".into(), server.pid.to_string()],
    }
}

/// The thread ids of process `pid`, gathered every 20 ms while `watching`.
fn server_threads(pid: u32, watching: &std::sync::atomic::AtomicBool) -> Vec<String> {
    let mut tids: Vec<String> = Vec::new();
    while watching.load(std::sync::atomic::Ordering::Relaxed) {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten();
        for tid in tasks.filter_map(|t| t.ok()?.file_name().into_string().ok()) {
            if !tids.contains(&tid) {
                tids.push(tid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tids
}

/// The profile of the threads `tids` in a `perf record` file: the event it
/// sampled, how many samples they took, and the `n` functions with the most
/// (`perf report --sort sym`, each function's own samples, in percent of
/// those threads' samples).
pub fn profile_of(data: &Path, tids: &[String], n: usize) -> anyhow::Result<Profile> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", "sym", "-n"])
        .args(["--percentage", "relative", "--tid", &tids.join(","), "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .context("run perf report")?;
    Ok(parse_perf_report(&String::from_utf8_lossy(&out.stdout), n))
}

/// Reads `perf report -n` output: a header line `# Samples: 4K of event
/// 'cpu-clock:ppp'`, then lines such as
/// `    19.42%       123  [k] __pv_queued_spin_lock_slowpath`.
pub fn parse_perf_report(text: &str, n: usize) -> Profile {
    let event = text
        .lines()
        .find_map(|l| l.split_once(" of event '")?.1.split_once('\''))
        .map(|(event, _)| event.split(':').next().unwrap_or(event).to_string())
        .unwrap_or_default();
    let rows: Vec<(String, f64, u64)> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (pct, rest) = l.trim().split_once('%')?;
            let (count, rest) = rest.trim().split_once(' ')?;
            let name = rest
                .trim()
                .split_once(' ')
                .map_or(rest.trim(), |(_, n)| n.trim());
            Some((
                name.to_string(),
                pct.trim().parse().ok()?,
                count.parse().ok()?,
            ))
        })
        .collect();
    Profile {
        event,
        samples: rows.iter().map(|r| r.2).sum(),
        hottest: rows
            .into_iter()
            .take(n)
            .map(|(name, pct, _)| (name, pct))
            .collect(),
    }
}

/// An echo server the benchmark can start: `uring-book 6 --serve NAME`.
pub struct EchoServer {
    /// Its name in the tables and on the command line.
    pub name: &'static str,
    /// Echoes every connection of the listener; returns only on an error.
    /// It is handed the server's own name, so that one function can serve
    /// several setups of one server (chapter 8's `uring-multishot+...`).
    pub serve: fn(&'static str, std::net::TcpListener) -> anyhow::Result<()>,
    /// Whether chapter 6's echo workload measures it by default. The others
    /// are the variants chapter 8 measures (`--workloads multishot`).
    pub chapter6: bool,
}

/// Every echo server of the benchmark, chapter 6's in the order its tables
/// show them, then chapter 8's variants. A new server is one more entry here.
pub const ECHO_SERVERS: &[EchoServer] = &[
    EchoServer {
        name: "tokio-uring+coop",
        serve: |_, listener| serve_chapter5(listener),
        chapter6: true,
    },
    EchoServer {
        name: "tokio-uring",
        serve: |_, listener| serve_plain_ring(listener),
        chapter6: true,
    },
    EchoServer {
        name: multishot_servers::MULTISHOT,
        serve: multishot_servers::serve,
        chapter6: true,
    },
    EchoServer {
        name: "tokio",
        serve: |_, listener| echo_servers::serve_tokio(listener),
        chapter6: true,
    },
    EchoServer {
        name: "std-threads",
        serve: |_, listener| echo_servers::serve_std_threads(listener),
        chapter6: true,
    },
    EchoServer {
        name: multishot_servers::TOKIO_2,
        serve: |_, listener| echo_servers::serve_tokio_on(listener, 2),
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+coop",
        serve: multishot_servers::serve,
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+regring",
        serve: multishot_servers::serve,
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+noregring",
        serve: multishot_servers::serve,
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+direct",
        serve: multishot_servers::serve,
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+nodirect",
        serve: multishot_servers::serve,
        chapter6: false,
    },
    EchoServer {
        name: "uring-multishot+2t",
        serve: multishot_servers::serve,
        chapter6: false,
    },
];

/// The servers chapter 6's echo workload measures, in the order of its tables.
pub fn chapter6_servers() -> impl Iterator<Item = &'static EchoServer> {
    ECHO_SERVERS.iter().filter(|s| s.chapter6)
}

/// The server called `name`, or an error that lists them all.
pub fn echo_server(name: &str) -> anyhow::Result<&'static EchoServer> {
    ECHO_SERVERS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = ECHO_SERVERS.iter().map(|s| s.name).collect();
        anyhow::anyhow!("no echo server '{name}' ({})", names.join(", "))
    })
}

/// The body of `uring-book 6 --serve NAME`: bind 127.0.0.1:0, say where and
/// under which process id, serve until the benchmark closes our stdin.
pub fn serve(name: &str, cpu: Option<usize>) -> anyhow::Result<()> {
    let server = echo_server(name)?;
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu).with_context(|| format!("pin the server to CPU {cpu}"))?;
    }
    uring_book::system::raise_nofile_limit()?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let listener = echo_servers::listen("127.0.0.1:0".parse()?)?;
    let (addr, pid) = (listener.local_addr()?, std::process::id());
    println!("listening on {addr} pid {pid}");
    (server.serve)(server.name, listener)
}

/// Chapter 5's server on a runtime of its own making.
fn serve_on(
    rt: tokio_uring::Runtime,
    listener: std::net::TcpListener,
) -> anyhow::Result<()> {
    use uring_book::ex5_tcp_echo;
    rt.block_on(async {
        let listener = tokio_uring::net::TcpListener::from_std(listener);
        let stats = std::rc::Rc::new(ex5_tcp_echo::Stats::default());
        Err(ex5_tcp_echo::serve(listener, stats, true).await.into())
    })
}

/// Chapter 5's server as `cargo run -- 5` starts it (COOP_TASKRUN).
fn serve_chapter5(listener: std::net::TcpListener) -> anyhow::Result<()> {
    serve_on(uring_book::ex5_tcp_echo::runtime()?, listener)
}

/// The same server on a plain ring, to show what COOP_TASKRUN changes.
fn serve_plain_ring(listener: std::net::TcpListener) -> anyhow::Result<()> {
    let entries = uring_book::ex5_tcp_echo::RING_ENTRIES;
    serve_on(
        uring_book::diagnose::tokio_uring_runtime(entries)?,
        listener,
    )
}

/// Chapter 5's load client, as the benchmark's [`Client`].
pub fn chapter5_client(load: &Load) -> anyhow::Result<Outcome> {
    use uring_book::echo::client;
    let config = client::Config {
        conns: load.conns,
        size: load.size,
        duration: load.duration,
        ..client::Config::new(load.addr)
    };
    let report = client::run(&config)?;
    Ok(Outcome {
        messages: report.messages,
        elapsed: report.elapsed,
        p50: report.p50,
        p99: report.p99,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let pid = std::process::id();
        let before = process_cpu_time(pid).unwrap();
        // Busy for 50 ms of this thread's own CPU time, more than a clock tick
        // of 10 ms: 50 ms of wall time may bring far less on a busy machine.
        let thread_cpu = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: fills a live timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        };
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(process_cpu_time(pid).unwrap() > before);
    }

    #[test]
    fn perf_report_lines_become_functions_and_shares() {
        let text = "# Samples: 4K of event 'cpu-clock:ppp'\n#\n\
                    # Overhead       Samples  Symbol\n\
                    \x20   19.42%          777  [k] __pv_queued_spin_lock_slowpath\n\
                    \x20    0.62%           25  [.] __vdso_clock_gettime\n\n";
        let profile = parse_perf_report(text, 8);
        assert_eq!(profile.event, "cpu-clock");
        assert_eq!(profile.samples, 802);
        assert_eq!(
            profile.hottest,
            [
                ("__pv_queued_spin_lock_slowpath".to_string(), 19.42),
                ("__vdso_clock_gettime".to_string(), 0.62)
            ]
        );
        let top = parse_perf_report(text, 1);
        assert_eq!((top.hottest.len(), top.samples), (1, 802));
    }

    #[test]
    fn perf_counts_parse_from_csv() {
        let text = "# started on Sun Nov 29 00:20:00 2026\n\n\
                    123456,,raw_syscalls:sys_enter,2000000,100.00,,\n\
                    789,,context-switches,2000000,100.00,0.394,K/sec\n";
        let counts = parse_perf_counts(text).unwrap();
        assert_eq!(
            counts,
            PerfCounts {
                syscalls: 123456,
                context_switches: 789
            }
        );
        let blocked = "<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n";
        assert!(parse_perf_counts(blocked).is_err());
    }

    #[test]
    fn this_thread_may_run_somewhere() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.len() <= std::thread::available_parallelism().unwrap().get());
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
