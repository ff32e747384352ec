//! The servers chapter 8 measures beside chapter 6's: exercise 8 in each
//! of its setups, and tokio on a multi-thread runtime. They are entries of
//! `echo::ECHO_SERVERS`, which the benchmark starts by name, as
//! `uring-book 6 --serve NAME`.
//!
//! `uring-multishot` is exercise 8 as it ships. A name can add options
//! after `+`, each changing one choice, so that a choice is measured against
//! the same code without it: `+coop` (COOP_TASKRUN instead of
//! DEFER_TASKRUN), `+noregring` / `+regring` (the ring's own descriptor not
//! registered / registered), `+direct` / `+nodirect` (accepted sockets as
//! direct descriptors or not), `+2t` (two threads).

use std::net::TcpListener;

use anyhow::{bail, Context};
use socket2::{Domain, SockRef, Socket, Type};

use uring_book::echo::multishot::{Config, TaskRun};
use uring_book::ex8_multishot_echo as ex8;

/// The name of exercise 8 as it ships.
pub const MULTISHOT: &str = "uring-multishot";
/// tokio's multi-thread runtime with two worker threads.
pub const TOKIO_2: &str = "tokio-2t";

/// The configuration and thread count a `uring-multishot+...` name stands for.
pub fn parse(engine: &str) -> anyhow::Result<(Config, u16)> {
    let mut parts = engine.split('+');
    if parts.next() != Some(MULTISHOT) {
        bail!("not an exercise 8 server: {engine}");
    }
    let mut config = Config {
        quiet: true,
        ..Config::default()
    };
    let mut threads = 1;
    for option in parts {
        match option {
            "coop" => config.taskrun = TaskRun::Coop,
            "defer" => config.taskrun = TaskRun::Defer,
            "regring" => config.register_ring = true,
            "noregring" => config.register_ring = false,
            "direct" => config.direct = true,
            "nodirect" => config.direct = false,
            t if t.ends_with('t') && t[..t.len() - 1].parse::<u16>().is_ok() => {
                threads = t[..t.len() - 1].parse()?;
            }
            other => bail!("{engine}: no option '{other}' (coop, defer, regring, noregring, direct, nodirect, Nt)"),
        }
    }
    Ok((config, threads))
}

/// Serves `listener` as the exercise 8 setup that `engine` names, until the
/// process exits (the benchmark closes our stdin). `echo::ECHO_SERVERS`
/// lists the setups the benchmark starts.
pub fn serve(engine: &'static str, listener: TcpListener) -> anyhow::Result<()> {
    let (config, threads) = parse(engine)?;
    uring_book::echo::requirements::check()?;
    let listeners = siblings(listener, threads)?;
    // Never notified: the process ends when the benchmark closes our stdin.
    let stop = ex8::EventFd::new()?;
    let workers = ex8::start(listeners, &stop, &config)?;
    ex8::join(workers).map(drop)
}

/// `first` and `threads - 1` more listeners on its port, set up as
/// `ex8::listen` sets up its own: accepted sockets inherit TCP_NODELAY, and
/// SO_REUSEPORT spreads the connections over the threads (the benchmark's
/// listener has it set, so that others can join its port).
fn siblings(first: TcpListener, threads: u16) -> anyhow::Result<Vec<TcpListener>> {
    SockRef::from(&first).set_tcp_nodelay(true)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_tcp_nodelay(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("a second listener on {addr}"))?;
        socket.listen(uring_book::ex5_tcp_echo::BACKLOG)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stand_for_one_change_each() {
        let (c, t) = parse("uring-multishot").unwrap();
        let shipped = Config::default();
        assert_eq!(
            (c.taskrun, c.register_ring, c.direct, t),
            (shipped.taskrun, shipped.register_ring, shipped.direct, 1)
        );
        let (c, t) = parse("uring-multishot+coop+direct+2t").unwrap();
        assert_eq!((c.taskrun, c.direct, t), (TaskRun::Coop, true, 2));
        assert!(!parse("uring-multishot+noregring").unwrap().0.register_ring);
        assert!(parse("uring-multishot+turbo").is_err());
        assert!(parse("uring-multishotx").is_err());
    }
}
