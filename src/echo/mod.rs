//! Echo servers and the load client that measures and checks them.
//!
//! Chapter 5's server is `uring_book::ex5_tcp_echo`; [`client`] drives any echo
//! server over many connections and verifies every byte it gets back.

pub mod buf_ring;
pub mod client;
pub mod multishot;
pub mod requirements;
pub mod slots;
pub mod user_data;
