//! Chapter 1's first program: read a file through io_uring, one read at a time.
//!
//! It is the naive version on purpose: every error ends in `expect`, which
//! panics. Chapter 1 then shows what that costs, and exercise 1
//! (`src/ex1_basic_read.rs`) is the version that handles each failure.
use std::fs::File;
use std::os::unix::io::AsRawFd;

use io_uring::{opcode, types, IoUring};

// ANCHOR: first_read
fn read_file(file: &File) -> Vec<u8> {
    let mut ring = IoUring::new(8).expect("io_uring_setup");
    let fd = types::Fd(file.as_raw_fd());
    let mut buf = vec![0u8; 64];
    let mut content = Vec::new();
    loop {
        let read = opcode::Read::new(fd, buf.as_mut_ptr(), buf.len() as u32)
            .offset(content.len() as u64)
            .build()
            .user_data(content.len() as u64);
        // SAFETY: rules 1 and 2 below: `buf` and `file` outlive the read,
        // because we wait for its CQE before we touch either again.
        unsafe { ring.submission().push(&read) }.expect("the SQ is full");
        ring.submit_and_wait(1).expect("io_uring_enter");
        let cqe = ring.completion().next().expect("a CQE");
        println!("cqe: user_data={} res={}", cqe.user_data(), cqe.result());
        let n = usize::try_from(cqe.result()).expect("the read failed");
        if n == 0 {
            return content; // a read of 0 bytes: the end of the file
        }
        content.extend_from_slice(&buf[..n]);
    }
}
// ANCHOR_END: first_read

fn main() {
    // A small file of three lines: 64-byte reads take several to read it.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("first-read.txt");
    let text = uring_book::ex1_basic_read::DEFAULT_TEXT;
    std::fs::write(&path, text).expect("write the file");

    let content = read_file(&File::open(&path).expect("open the file"));
    // Every byte came back, in order.
    assert_eq!(content, text.as_bytes());
    print!("{}", String::from_utf8_lossy(&content));
}
