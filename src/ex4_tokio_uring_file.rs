//! Exercise 4: async file I/O with tokio-uring.
//!
//! Writes a file with `write_at` and `write_all_at`, reads it back with four
//! `read_at` calls in flight at once, one per task, and checks every byte.
//! Then shows what happens to a read whose future is dropped while the kernel
//! still holds its buffer.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use tokio_uring::buf::{BoundedBuf, IoBuf, IoBufMut};
use tokio_uring::fs::File;
use uring_book::diagnose;

/// The file is written and read in chunks of this size, one task per chunk.
pub const CHUNK: usize = 64 * 1024;
/// How many chunks: how many reads are in flight at once.
pub const CHUNKS: usize = 4;

#[derive(clap::Args)]
pub struct Args {
    /// The file to write and read back (created or truncated); default: a
    /// file in a fresh temporary directory
    pub path: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Keeps the temporary directory alive until the end of `run`.
    let tmp = uring_book::cleanup::tempdir()?;
    let path = match &args.path {
        Some(path) => path.clone(),
        None => tmp.path().join("ex4.dat"),
    };
    let rt = diagnose::tokio_uring_runtime(64)?;
    rt.block_on(async {
        write_file(&path).await?;
        read_back(&path).await?;
        println!("threads: {}", thread_names().join(", "));
        with_tokio_fs(&path).await?;
        println!("threads: {}", thread_names().join(", "));
        dropped_read().await
    })
}

/// The names of this process's threads, from /proc/self/task/*/comm.
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect();
    names.sort();
    names
}

// ANCHOR: tokio_fs
/// The same round trip with tokio::fs: std's blocking calls, each one sent
/// to tokio's blocking thread pool, while this task waits for the result.
pub async fn with_tokio_fs(path: &Path) -> anyhow::Result<()> {
    let data: Vec<u8> = (0..CHUNKS * CHUNK).map(byte_at).collect();
    tokio::fs::write(path, &data).await?; // spawn_blocking(|| std::fs::write(..))
    let back = tokio::fs::read(path).await?; // spawn_blocking(|| std::fs::read(..))
    anyhow::ensure!(back == data, "tokio::fs read back other bytes");
    println!("tokio::fs wrote and read back {} bytes", back.len());
    Ok(())
}
// ANCHOR_END: tokio_fs

/// The byte at `offset` of the file: the offset mixed so that a chunk read
/// from the wrong place cannot match.
pub fn byte_at(offset: usize) -> u8 {
    (offset % 251) as u8 ^ (offset / CHUNK) as u8
}

// ANCHOR: write
/// Creates `path` and writes `CHUNKS * CHUNK` bytes into it.
pub async fn write_file(path: &Path) -> anyhow::Result<()> {
    let file = File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let data: Vec<u8> = (0..CHUNKS * CHUNK).map(byte_at).collect();

    // The Vec moves into the operation and comes back with its result.
    // `slice(..CHUNK)` lends the kernel the first chunk only.
    let (res, slice) = file.write_at(data.slice(..CHUNK), 0).submit().await;
    let first = res?; // may be less than CHUNK: a short write is not an error
    let data = slice.into_inner();

    // write_all_at repeats write_at until every byte of the slice is written.
    let (res, slice) = file.write_all_at(data.slice(first..), first as u64).await;
    res?;
    let data = slice.into_inner();

    file.sync_all().await?;
    // Without close().await, dropping File closes it with a blocking close(2),
    // once the last operation in flight on it has completed.
    file.close().await?;
    println!(
        "wrote {} bytes: write_at took {first}, write_all_at the rest",
        data.len()
    );
    Ok(())
}
// ANCHOR_END: write

// ANCHOR: read_chunk
/// Reads `len` bytes at `pos`, retrying short reads; EOF first is an error.
async fn read_chunk(file: Rc<File>, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        // The kernel writes from the slice's start (index `filled`) up to `len`;
        // the returned Vec's length then counts the bytes that arrived.
        let (res, slice) = file
            .read_at(buf.slice(filled..len), pos + filled as u64)
            .await;
        buf = slice.into_inner();
        if res? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}
// ANCHOR_END: read_chunk

// ANCHOR: read_back
/// Reads the file back, one task per chunk, and checks every byte.
pub async fn read_back(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    // Rc, not Arc: the tasks all run on this thread, so they need not be Send.
    let file = Rc::new(file);
    let tasks: Vec<_> = (0..CHUNKS)
        .map(|i| tokio_uring::spawn(read_chunk(file.clone(), (i * CHUNK) as u64, CHUNK)))
        .collect();
    // The tasks run when this one first waits; each pushes its read's SQE
    // then. All four have run before the thread goes idle, so one
    // io_uring_enter submits the four reads.
    for (i, task) in tasks.into_iter().enumerate() {
        let chunk = task.await?.with_context(|| format!("reading chunk {i}"))?;
        let start = i * CHUNK;
        if let Some(at) = (0..CHUNK).find(|&j| chunk[j] != byte_at(start + j)) {
            anyhow::bail!("byte {} differs from what was written", start + at);
        }
        println!(
            "chunk {i}: read {} bytes at offset {start}, all as written",
            chunk.len()
        );
    }
    Rc::try_unwrap(file)
        .ok()
        .context("a task still holds the file")?
        .close()
        .await?;
    Ok(())
}
// ANCHOR_END: read_back

// ANCHOR: loud_buf
/// A buffer that says when it is freed.
pub struct LoudBuf(Vec<u8>);

impl Drop for LoudBuf {
    fn drop(&mut self) {
        println!("  (a {}-byte buffer is freed)", self.0.capacity());
    }
}

// SAFETY: a Vec's heap memory stays put when the Vec moves, and stays valid
// for as long as the Vec is owned: by the runtime while the kernel uses it.
unsafe impl IoBuf for LoudBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

unsafe impl IoBufMut for LoudBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        // The kernel wrote `len` bytes: they are initialized now.
        if self.0.len() < len {
            self.0.set_len(len);
        }
    }
}
// ANCHOR_END: loud_buf

// ANCHOR: dropped_read
/// Drops a read future whose read is still in the kernel, then sends data.
/// Then the way to give up on a connection: shut the socket down.
pub async fn dropped_read() -> anyhow::Result<()> {
    let (ours, mut peer) = std::os::unix::net::UnixStream::pair()?;
    peer.set_read_timeout(Some(Duration::from_secs(10)))?;
    let ours = tokio_uring::net::UnixStream::from_std(ours);
    let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));

    // Nothing to read yet: the timeout wins and select! drops the read future.
    let buf = LoudBuf(Vec::with_capacity(16));
    tokio::select! {
        _ = ours.read(buf) => anyhow::bail!("the read completed, yet nothing was sent"),
        _ = sleep(10) => println!("read timed out; its future is dropped"),
    }
    println!("peer sends \"first\"");
    io::Write::write_all(&mut peer, b"first")?;
    sleep(10).await; // lets the runtime reap the orphaned read's CQE
    println!("peer sends \"second\"");
    io::Write::write_all(&mut peer, b"second")?;

    // Bounded, so that a broken run ends; giving up here ends the program.
    let next = tokio::time::timeout(Duration::from_secs(10), ours.read(vec![0; 16]));
    let (res, buf) = next.await.context("the next read: nothing within 10 s")?;
    let got = String::from_utf8_lossy(&buf[..res?]).into_owned();
    println!("the next read returns {got:?}");

    // A timeout done right: shutdown(2) ends the orphaned read, with 0 bytes.
    let buf = LoudBuf(Vec::with_capacity(16));
    tokio::select! {
        _ = ours.read(buf) => anyhow::bail!("the read completed, yet nothing was sent"),
        _ = sleep(10) => println!("read timed out again; shutting the socket down"),
    }
    ours.shutdown(std::net::Shutdown::Both)?;
    sleep(10).await;
    let mut rest = [0u8; 16];
    let n = io::Read::read(&mut peer, &mut rest)?;
    println!("the peer reads {n} bytes: end of stream");
    Ok(())
}
// ANCHOR_END: dropped_read
