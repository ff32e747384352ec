//! Solutions to the "What to try next" exercises at the end of each chapter:
//! `cargo run -- solution 1.2` runs the solution to chapter 1's exercise 2,
//! and `cargo run -- solution --help` lists them all.
//!
//! A module per chapter (`ch01`, `ch02`, ...) holds one function, or one small
//! module, per exercise. Each solution runs in seconds and checks its own
//! result: the bytes it read back, the calls it counted, the error it expected.
//! Where an exercise asks you to change the crate's code, the changed version
//! sits here beside the original, which stays as the chapter shows it. Where an
//! exercise asks you to observe something (a count, a limit), the solution
//! makes the observation itself and prints it.
//!
//! Adding the solutions of a chapter takes a module and a line per exercise in
//! [`SOLUTIONS`]; the command line, `--help` and the tests pick them up.

use std::path::{Path, PathBuf};

use anyhow::bail;
#[allow(unused_imports)]
use clap::{ArgMatches, Args, Command, FromArgMatches};

pub mod ch01;
pub mod ch02;
pub mod ch03;
pub mod ch04;
pub mod ch05;
pub mod ch06;
pub mod memlock_child;
pub mod trace;

/// One solution: the exercise it solves, a one-line summary, how to run it.
pub struct Solution {
    /// `chapter.exercise`, the subcommand: `cargo run -- solution 1.2`.
    pub id: &'static str,
    /// The line `solution --help` shows.
    pub about: &'static str,
    /// Adds the solution's own arguments, if it has any.
    pub args: fn(Command) -> Command,
    /// Runs it with the parsed arguments.
    pub run: fn(&ArgMatches) -> anyhow::Result<()>,
}

impl Solution {
    /// The clap subcommand for this solution.
    pub fn command(&self) -> Command {
        (self.args)(Command::new(self.id).about(self.about))
    }
}

/// Builds a [`Solution`] from a function `run()`, or `run(&Args)` with the
/// clap `Args` type given after it.
macro_rules! solution {
    ($id:literal, $about:literal, $run:path) => {
        Solution {
            id: $id,
            about: $about,
            args: |cmd| cmd,
            run: |_| $run(),
        }
    };
    ($id:literal, $about:literal, $run:path, $args:ty) => {
        Solution {
            id: $id,
            about: $about,
            args: |cmd| <$args as Args>::augment_args(cmd),
            run: |m| $run(&<$args as FromArgMatches>::from_arg_matches(m)?),
        }
    };
}

/// Every solution, in the book's order.
pub const SOLUTIONS: &[Solution] = &[
    solution!(
        "1.1",
        "One byte at a time: reads and io_uring_enter calls, counted and timed",
        ch01::one_byte::run,
        ch01::one_byte::Args
    ),
    solution!(
        "1.2",
        "Two reads in flight: two reads per io_uring_enter",
        ch01::two_in_flight::run
    ),
    solution!(
        "1.3",
        "No index array: IORING_SETUP_NO_SQARRAY with the crate and by hand",
        ch01::no_sqarray::run
    ),
    solution!(
        "2.1",
        "Count the calls from outside: exercise 2 under a small strace",
        ch02::count_calls::run
    ),
    solution!(
        "2.2",
        "Keep the pipeline full: refill after every completion",
        ch02::pipeline::run
    ),
    solution!(
        "2.3",
        "Order on purpose: a linked write and read in one io_uring_enter",
        ch02::linked::run
    ),
    solution!(
        "3.1",
        "Find the limit: registered buffers under a 1 MiB RLIMIT_MEMLOCK",
        ch03::find_limit::run
    ),
    solution!(
        "3.2",
        "O_DIRECT: Read against ReadFixed on a disk, with aligned buffers",
        ch03::o_direct::run,
        ch03::o_direct::Args
    ),
    solution!(
        "3.3",
        "Close it and read it anyway: a registered file outlives its descriptor",
        ch03::closed_file::run
    ),
    solution!(
        "4.1",
        "Find the worker's cause: the open that starts io-wq, in two runs",
        ch04::worker_cause::run
    ),
    solution!(
        "4.2",
        "Overfill the submission queue: 16 reads on a ring of 4 entries",
        ch04::overfill::run,
        ch04::overfill::Args
    ),
    solution!(
        "4.3",
        "Drop instead of shutting down: the peer sees no end of stream",
        ch04::drop_socket::run
    ),
    solution!(
        "5.1",
        "An idle timeout: a second task shuts a silent connection down",
        ch05::idle_timeout::run
    ),
    solution!(
        "5.2",
        "A smaller buffer: 512 bytes against 16 KiB, reads counted, rates compared",
        ch05::small_buffer::run
    ),
    solution!(
        "5.3",
        "Watch backpressure: a client that never reads, watched from outside",
        ch05::backpressure::run
    ),
    solution!(
        "6.1",
        "Another device: O_DIRECT reads at depths 1, 4, 16 on the disk under --dir",
        ch06::another_device::run,
        ch06::depths::Args
    ),
    solution!(
        "6.2",
        "Finer depths: reads/s, p50 and p99 from depth 1 to 64, Little's law checked",
        ch06::finer_depths::run,
        ch06::depths::Args
    ),
    solution!(
        "6.3",
        "Fewer connections: system calls per message, tokio against tokio-uring",
        ch06::fewer_connections::run
    ),
    solution!(
        "6.4",
        "The profile: tokio-uring and tokio-uring+coop under perf record",
        ch06::profile::run
    ),
];

/// The solution with this id (`1.2`), if there is one.
pub fn find(id: &str) -> Option<&'static Solution> {
    SOLUTIONS.iter().find(|s| s.id == id)
}

/// The `solution` subcommand, with one subcommand per solution.
pub fn command() -> Command {
    let mut cmd = Command::new("solution")
        .about("Run the solution to an exercise of \"What to try next\": solution 1.2")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand_value_name("EXERCISE")
        .subcommand_help_heading("Exercises (chapter.number)");
    for solution in SOLUTIONS {
        cmd = cmd.subcommand(solution.command());
    }
    cmd
}

/// The `uring-book` binary, for the solutions that run an exercise as a
/// program of its own: this program, or, when a listing of the book runs as a
/// test (a program of its own), the binary built beside the crate.
pub fn exercises_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_name().is_some_and(|name| name == "uring-book") {
        return Ok(me);
    }
    let built = Path::new(env!("URING_BOOK_PROFILE_DIR")).join("uring-book");
    if !built.exists() {
        bail!("no {}: run `cargo build` first", built.display());
    }
    Ok(built)
}
