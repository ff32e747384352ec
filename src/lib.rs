//! The companion crate of *uring-book*: the exercises, servers and benchmarks
//! that the chapters of the book show and explain.
//!
//! The book's listings are compiled as separate programs that link this crate,
//! so modules refer to each other as `uring_book::...`, which works both here
//! and in a listing.

extern crate self as uring_book;

pub mod bench;
pub mod cleanup;
pub mod diagnose;
pub mod doctor;
pub mod echo;
pub mod ex1_basic_read;
pub mod ex1_raw_ring;
pub mod ex2_write_and_batch;
pub mod ex3_fixed_buffers;
pub mod ex4_tokio_uring_file;
pub mod ex5_tcp_echo;
pub mod ex6_benchmark;
pub mod ex7_broken_chain;
pub mod ex7_cancel;
pub mod ex7_chains_deadlines_cancel;
pub mod ex7_copy_bench;
pub mod ex7_linked_copy;
pub mod ex7_probe;
pub mod ex7_timeouts;
pub mod ex8_multishot_echo;
pub mod exercises;
pub mod feature_checks;
pub mod features;
pub mod in_flight;
pub mod optional_tools;
pub mod ring_frames;
pub mod solutions;
pub mod system;
pub mod tcp_addr;
pub mod usage;
