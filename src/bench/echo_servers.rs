//! The echo servers that chapter 5's io_uring server is measured against:
//! tokio (epoll underneath) on one thread, and std with a thread per
//! connection. Each serves a listener it is given, so the benchmark can run
//! it in a process of its own (`uring-book 6 --serve tokio`) and tests can
//! run it on a thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Socket, Type};

/// A listener with the same backlog as chapter 5's server
/// (`uring_book::ex5_tcp_echo::BACKLOG`): std's `bind` asks for 128, and a
/// burst of a thousand connects would overflow it and wait for SYN retries.
/// SO_REUSEPORT lets a server of several threads open a listener per thread
/// on the same port (exercise 8's `uring-multishot+2t`).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(uring_book::ex5_tcp_echo::BACKLOG)?;
    Ok(socket.into())
}

/// Echoes every connection of `listener` with tokio on a current-thread
/// runtime: one thread, like the io_uring server, epoll_wait underneath.
pub fn serve_tokio(listener: TcpListener) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(accept_tokio(listener))
}

/// The same server on tokio's multi-thread runtime with `workers` threads
/// (chapter 8 compares it with exercise 8 on as many threads).
pub fn serve_tokio_on(listener: TcpListener, workers: usize) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(accept_tokio(listener))
}

async fn accept_tokio(listener: TcpListener) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            // A reset or a vanished client ends only that connection.
            let _ = echo_tokio(stream).await;
        });
    }
}

// ANCHOR: tokio_echo
async fn echo_tokio(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // One message in flight per connection: without NODELAY the second half
    // of a split message could wait for a delayed ACK.
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        // A borrow is enough: the recv(2) happens inside poll, and only when
        // epoll has said the socket is readable.
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}
// ANCHOR_END: tokio_echo

/// Echoes every connection of `listener` on a thread of its own, with
/// blocking reads and writes: the design io_uring and epoll replace.
pub fn serve_std_threads(listener: TcpListener) -> anyhow::Result<()> {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            // Out of descriptors or a connection reset before accept: keep serving.
            Err(_) => continue,
        };
        std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let _ = echo_std(stream);
            })?;
    }
    Ok(())
}

fn echo_std(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sends messages of several sizes on two connections at once and checks
    /// that every byte comes back in order.
    fn check_echo(serve: fn(TcpListener) -> anyhow::Result<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener));
        let mut a = TcpStream::connect(addr).unwrap();
        let mut b = TcpStream::connect(addr).unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        for (i, size) in [1usize, 64, 4096, 100_000].into_iter().enumerate() {
            for (conn, stream) in [&mut a, &mut b].into_iter().enumerate() {
                let msg: Vec<u8> = (0..size).map(|j| (i + conn + j) as u8).collect();
                // Write from another thread: 100 kB does not fit the socket buffers
                // while nobody reads the echo.
                let mut writer = stream.try_clone().unwrap();
                let sent = msg.clone();
                let t = std::thread::spawn(move || writer.write_all(&sent).unwrap());
                let mut back = vec![0u8; size];
                stream.read_exact(&mut back).unwrap();
                t.join().unwrap();
                assert!(back == msg, "echo of {size} bytes differs");
            }
        }
        drop(a);
        // The server still serves after a client left.
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"still there").unwrap();
        let mut back = [0u8; 11];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"still there");
    }

    #[test]
    fn tokio_server_echoes_every_byte() {
        check_echo(serve_tokio);
    }

    #[test]
    fn std_threads_server_echoes_every_byte() {
        check_echo(serve_std_threads);
    }
}
