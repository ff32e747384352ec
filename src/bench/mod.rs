//! The benchmark of chapter 6: the engines, the measurements and the
//! reports. `uring_book::ex6_benchmark` puts them together.

pub mod brief;
pub mod cpu_breakdown;
pub mod echo;
pub mod echo_servers;
pub mod file;
pub mod findings;
pub mod fio;
pub mod glance;
pub mod idle_memory;
pub mod interleaved;
pub mod machine;
pub mod multishot_bench;
pub mod multishot_report;
pub mod multishot_servers;
pub mod plot;
pub mod point;
pub mod record;
pub mod report;
pub mod stats;
