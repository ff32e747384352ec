//! The servers chapter 8 measures beside chapter 6's: exercise 8 in each
//! of its setups, and tokio on a multi-thread runtime. The benchmark starts
//! them by name, as `uring-book 6 --serve NAME`.
//!
//! `uring-multishot` is exercise 8 as it ships. A name can add options
//! after `+`, each changing one choice, so that a choice is measured against
//! the same code without it: `+coop` (COOP_TASKRUN instead of
//! DEFER_TASKRUN), `+noregring` / `+regring` (the ring's own descriptor not
//! registered / registered), `+direct` / `+nodirect` (accepted sockets as
//! direct descriptors or not), `+2t` (two threads).

use std::net::SocketAddr;

use anyhow::bail;

use uring_book::echo::multishot::{Config, TaskRun};
use uring_book::ex8_multishot_echo as ex8;

/// The name of exercise 8 as it ships.
pub const MULTISHOT: &str = "uring-multishot";
/// tokio's multi-thread runtime with two worker threads.
pub const TOKIO_2: &str = "tokio-2t";

/// Whether `engine` names one of this module's servers.
pub fn knows(engine: &str) -> bool {
    engine == TOKIO_2 || engine.split('+').next() == Some(MULTISHOT)
}

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

/// Serves on `addr` until the process exits (the benchmark closes our stdin).
pub fn serve(engine: &str, addr: SocketAddr) -> anyhow::Result<()> {
    if engine == TOKIO_2 {
        let listener = uring_book::bench::echo_servers::listen(addr)?;
        announce(listener.local_addr()?);
        return uring_book::bench::echo_servers::serve_tokio_on(listener, 2);
    }
    let (config, threads) = parse(engine)?;
    uring_book::echo::requirements::check()?;
    let listeners = ex8::listen(addr, threads)?;
    announce(listeners[0].local_addr()?);
    // Never notified: the process ends when the benchmark closes our stdin.
    let stop = ex8::EventFd::new()?;
    let workers = ex8::start(listeners, &stop, &config)?;
    ex8::join(workers).map(drop)
}

/// The line the benchmark waits for.
fn announce(addr: SocketAddr) {
    println!("listening on {addr} pid {}", std::process::id());
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
        assert!(knows("uring-multishot+coop") && knows(TOKIO_2));
        assert!(!knows("tokio") && !knows("uring-multishotx"));
    }
}
