//! The registry of exercises: `cargo run -- N` runs one, `cargo run` runs all.
//!
//! Each exercise module has an `Args` struct (clap) and a `run(&Args)`
//! function; an entry here is all it takes to make it a subcommand. Running
//! every exercise parses each one's arguments from nothing, so "all" uses
//! exactly the defaults that `--help` shows.

#[allow(unused_imports)]
use clap::{ArgMatches, Args, Command, FromArgMatches};

/// One exercise: its number, a one-line summary, and how to run it.
pub struct Exercise {
    /// The subcommand: `cargo run -- 1`.
    pub number: &'static str,
    /// The line `--help` shows.
    pub about: &'static str,
    /// Adds the exercise's own arguments to its subcommand.
    pub args: fn(Command) -> Command,
    /// Runs it with the parsed arguments.
    pub run: fn(&ArgMatches) -> anyhow::Result<()>,
    /// The arguments `cargo run` (every exercise) passes. A server gets a
    /// flag that makes it serve a demonstration and stop, so "all" ends.
    pub in_all: &'static [&'static str],
}

impl Exercise {
    /// The clap subcommand for this exercise.
    pub fn command(&self) -> Command {
        (self.args)(Command::new(self.number).about(self.about))
    }

    /// Runs the exercise the way `cargo run` (every exercise) does.
    pub fn run_in_all(&self) -> anyhow::Result<()> {
        let argv = std::iter::once(self.number).chain(self.in_all.iter().copied());
        let matches = self.command().try_get_matches_from(argv)?;
        (self.run)(&matches)
    }
}

/// Builds an [`Exercise`] from a module that has `Args` and `run(&Args)`;
/// the optional list is what `cargo run` passes when it runs every exercise.
#[allow(unused_macros)]
macro_rules! exercise {
    ($number:literal, $module:ident, $about:literal) => {
        exercise!($number, $module, $about, [])
    };
    ($number:literal, $module:ident, $about:literal, [$($arg:literal),*]) => {
        Exercise {
            number: $number,
            about: $about,
            in_all: &[$($arg),*],
            args: |cmd| <crate::$module::Args as Args>::augment_args(cmd),
            run: |m| crate::$module::run(&crate::$module::Args::from_arg_matches(m)?),
        }
    };
}

/// Every exercise, in the book's order.
pub const EXERCISES: &[Exercise] = &[
    exercise!(
        "1",
        ex1_basic_read,
        "Read a file: ring setup, one SQE, one CQE"
    ),
    exercise!(
        "2",
        ex2_write_and_batch,
        "Write and read back; many operations per submit"
    ),
    exercise!(
        "3",
        ex3_fixed_buffers,
        "Registered buffers and files: ReadFixed, WriteFixed"
    ),
    exercise!(
        "4",
        ex4_tokio_uring_file,
        "tokio-uring: write a file, read it back with reads in flight"
    ),
    exercise!(
        "5",
        ex5_tcp_echo,
        "TCP echo server on tokio-uring, one task per connection",
        ["--demo"]
    ),
    exercise!(
        "6",
        ex6_benchmark,
        "Benchmark io_uring against std, threads, epoll, fio: tables; --json, --plot SVG",
        ["--quick"]
    ),
    exercise!(
        "7",
        ex7_chains_deadlines_cancel,
        "Linked operations, timeouts, cancellation and probing on the io-uring crate"
    ),
    exercise!(
        "8",
        ex8_multishot_echo,
        "TCP echo server on multishot accept and receive and a buffer ring, no runtime",
        ["--demo"]
    ),
];

/// The exercise with this number, if there is one.
pub fn find(number: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.number == number)
}
