//! `--addr` of the echo servers and the load client: what a reader may type,
//! and, when a server cannot listen there, why, with the fix.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use uring_book::diagnose;

/// The address the book's servers listen on by default.
pub const DEFAULT: &str = "127.0.0.1:7878";

/// Parses `--addr`: `IP:PORT`, `[IPv6]:PORT`, or `localhost:PORT`, which is
/// 127.0.0.1 (the servers listen on IPv4). For clap:
/// `#[arg(long, value_parser = tcp_addr::parse)]`.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let example = format!("for example --addr {DEFAULT}");
    let Some((host, port)) = text.rsplit_once(':') else {
        if text.parse::<u32>().is_ok() {
            return Err(format!(
                "'{text}' is a port without a host; write 127.0.0.1:{text} \
                 (this machine) or 0.0.0.0:{text} (every interface)"
            ));
        }
        if text.eq_ignore_ascii_case("localhost") || text.parse::<IpAddr>().is_ok() {
            return Err(format!("'{text}' has no port; write {text}:7878"));
        }
        return Err(format!("'{text}' is not HOST:PORT; {example}"));
    };
    let port = match port.parse::<u32>() {
        Ok(port) => u16::try_from(port).map_err(|_| {
            format!(
                "port {port} is out of range: ports go from 1 to 65535 \
                 (0 lets the kernel pick one); {example}"
            )
        })?,
        Err(_) => return Err(format!("'{port}' is not a port number; {example}")),
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if host.is_empty() {
        return Err(format!("'{text}' has no host; {example}"));
    } else if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "an IPv6 address takes brackets before its port: [{host}]:{port}"
        ));
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("'{host}' is not an IP address (of names, only localhost is known); {example}")
            })?
    };
    Ok(SocketAddr::new(ip, port))
}

/// The error for a failed bind(2) of `addr`, with the reason and the fix:
/// `socket.bind(&addr.into()).map_err(|e| tcp_addr::bind_error(addr, e))?`.
pub fn bind_error(addr: SocketAddr, err: io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot bind {addr}: {}", explain_bind_error(addr, &err))
}

/// Why bind(2) of `addr` failed with `err`, and what to do, as one line.
pub fn explain_bind_error(addr: SocketAddr, err: &io::Error) -> String {
    explain(addr, err, unprivileged_port_start())
}

fn explain(addr: SocketAddr, err: &io::Error, first_free: u16) -> String {
    let what = diagnose::errno_text(err);
    let (ip, port) = (addr.ip(), addr.port());
    match err.raw_os_error() {
        Some(libc::EACCES) if port != 0 && port < first_free => format!(
            "{what}: ports below {first_free} are privileged \
             (net.ipv4.ip_unprivileged_port_start) and this process lacks \
             CAP_NET_BIND_SERVICE. Fix: use a port of {first_free} or above, \
             such as --addr {}",
            SocketAddr::new(ip, 7878)
        ),
        Some(libc::EADDRINUSE) => format!(
            "{what}: another program listens on port {port}, perhaps another echo \
             server or the book's container (docker compose publishes 7878). Fix: \
             stop it (`ss -ltnp` names it), or use another port, such as --addr {}",
            SocketAddr::new(ip, port.wrapping_add(1).max(1024))
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{what}: {ip} is not an address of this machine. Fix: --addr \
             127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)"
        ),
        _ => what,
    }
}

/// `net.ipv4.ip_unprivileged_port_start` (Linux 4.11+, for IPv4 and IPv6):
/// binding a lower port needs CAP_NET_BIND_SERVICE. 1024 before 4.11.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_reader_types() {
        let ok =
            |text: &str, want: &str| assert_eq!(parse(text), Ok(want.parse().unwrap()));
        ok("127.0.0.1:7878", "127.0.0.1:7878");
        ok("localhost:7879", "127.0.0.1:7879");
        ok("LOCALHOST:0", "127.0.0.1:0");
        ok("[::1]:7878", "[::1]:7878");
        ok("0.0.0.0:7878", "0.0.0.0:7878");
    }

    #[test]
    fn each_mistake_gets_its_reason_and_an_example() {
        let err = |text: &str| parse(text).unwrap_err();
        assert!(err("1.2.3.4:99999").starts_with("port 99999 is out of range"));
        assert!(err("1.2.3.4:99999").ends_with("for example --addr 127.0.0.1:7878"));
        assert!(err("7878").contains("127.0.0.1:7878"), "{}", err("7878"));
        assert!(err("localhost").contains("has no port"));
        assert!(err(":7878").contains("has no host"));
        assert!(err("::1:7878").contains("[::1]:7878"));
        assert!(err("example.com:80").contains("not an IP address"));
        assert!(err("127.0.0.1:http").contains("'http' is not a port number"));
    }

    #[test]
    fn bind_errors_name_the_reason_and_the_fix() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        let text = explain(addr, &eacces, 1024);
        assert!(text.starts_with("EACCES (Permission denied): ports below 1024"));
        assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
        assert!(text.contains("--addr 127.0.0.1:7878"), "{text}");
        // Where every port is free to bind (Docker sets 0), EACCES is not that.
        assert_eq!(explain(addr, &eacces, 0), "EACCES (Permission denied)");
        let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let text = explain(addr, &io::Error::from_raw_os_error(libc::EADDRINUSE), 1024);
        assert!(
            text.starts_with("EADDRINUSE (Address already in use)"),
            "{text}"
        );
        assert!(text.contains("container"), "{text}");
        assert!(text.contains("--addr 127.0.0.1:7879"), "{text}");
    }
}
