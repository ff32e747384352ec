//! What idle connections cost a server in resident memory. A server that
//! keeps a read buffer per connection pays for it while the connection
//! sleeps; one that receives into a shared buffer ring pays for the ring
//! once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use uring_book::bench::echo::ServerProcess;

/// One server's resident memory before and with `conns` idle connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleMemory {
    pub engine: String,
    pub conns: u32,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
}

impl IdleMemory {
    /// What the connections added, per connection, in bytes.
    pub fn per_conn_bytes(&self) -> f64 {
        (self.rss_idle_kib.saturating_sub(self.rss_before_kib) * 1024) as f64
            / self.conns.max(1) as f64
    }
}

/// VmRSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

/// Starts `engine`, opens `conns` connections that each exchange one
/// 64-byte message and then stay open, and reads the server's VmRSS.
pub fn measure(exe: &Path, engine: &str, conns: u32) -> anyhow::Result<IdleMemory> {
    let server = ServerProcess::start(exe, engine, None, false)?;
    let pid = server.pid();
    // One echo first: a server that sets up after its "listening" line (a
    // ring, its buffers) has done so by then.
    drop(exchange(server.addr, engine)?);
    std::thread::sleep(Duration::from_millis(100));
    let before = rss_kib(pid)?;
    let mut open = Vec::with_capacity(conns as usize);
    for i in 0..conns {
        let stream = exchange(server.addr, engine)
            .with_context(|| format!("connection {i} of {conns} to {engine}"))?;
        open.push(stream);
    }
    // Let the server finish whatever the last connections started.
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid)?;
    drop(open);
    server.finish()?;
    Ok(IdleMemory {
        engine: engine.to_string(),
        conns,
        rss_before_kib: before,
        rss_idle_kib: idle,
    })
}

/// A connection that has sent one 64-byte message and read its echo.
fn exchange(addr: std::net::SocketAddr, engine: &str) -> anyhow::Result<TcpStream> {
    let message = [7u8; 64];
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&message)?;
    let mut echo = [0u8; 64];
    stream.read_exact(&mut echo)?;
    anyhow::ensure!(echo == message, "{engine}: a wrong echo");
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_cost_is_the_growth_over_the_connections() {
        let m = IdleMemory {
            engine: "x".into(),
            conns: 1000,
            rss_before_kib: 4000,
            rss_idle_kib: 21000,
        };
        assert!((m.per_conn_bytes() - 17408.0).abs() < 1e-9);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
