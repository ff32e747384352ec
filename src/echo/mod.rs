//! Echo servers and the load client that measures and checks them.
//!
//! Chapter 5's server is `uring_book::ex5_tcp_echo`; [`client`] drives any echo
//! server over many connections and verifies every byte it gets back.

pub mod client;
