//! `uring-book`: run the book's exercises.
//!
//! `cargo run` runs every exercise in order, `cargo run -- N` runs one,
//! `cargo run -- solution N.M` runs the solution to an exercise of "What to
//! try next", `cargo run -- doctor` checks the machine. Exit codes: 0 success, 1 an
//! exercise or check failed, 2 a bad command line.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, Command, FromArgMatches};
use uring_book::echo::client;
use uring_book::{cleanup, diagnose, doctor, exercises, solutions, usage};

/// Commands that write to sockets (and so must survive EPIPE).
const SOCKET_COMMANDS: &[&str] = &["5", "6", "8", "echo-client"];

fn cli() -> Command {
    let mut cmd = Command::new("uring-book")
        .about("Learn Linux io_uring from Rust: the exercises of the uring-book tutorial")
        .long_about(
            "Learn Linux io_uring from Rust: the exercises of the uring-book tutorial.\n\n\
             Without a command, every exercise runs in order with its defaults.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand(
            Command::new("doctor").about("Check that this machine can run io_uring and every chapter"),
        )
        .subcommand(client::CliArgs::augment_args(
            Command::new("echo-client").about("Load an echo server, verify echoes"),
        ))
        .subcommand(solutions::command());
    for exercise in exercises::EXERCISES {
        cmd = cmd.subcommand(exercise.command());
    }
    cmd
}

fn main() -> ExitCode {
    let matches = match cli().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => return usage_error(err),
    };
    if let Some((name, _)) = matches.subcommand() {
        if !SOCKET_COMMANDS.contains(&name) {
            // Rust ignores SIGPIPE, so `uring-book 1 | head` would panic on the
            // first println! after head exits. A program that only prints
            // should just stop, as cat does. Programs with sockets keep
            // SIGPIPE ignored: a peer's reset must not kill them.
            // SAFETY: called before any other thread exists.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        }
    }
    let result = match matches.subcommand() {
        None => run_all(),
        Some(("doctor", _)) => {
            return if doctor::run() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some(("echo-client", sub)) => client::CliArgs::from_arg_matches(sub)
            .map_err(anyhow::Error::from)
            .and_then(|args| client::main(&args)),
        Some(("solution", sub)) => match sub.subcommand() {
            Some((id, args)) => match solutions::find(id) {
                Some(solution) => (solution.run)(args),
                None => unreachable!("clap accepts only registered solutions"),
            },
            None => unreachable!("clap requires a solution"),
        },
        Some((name, sub)) => match exercises::find(name) {
            Some(exercise) => (exercise.run)(sub),
            None => unreachable!("clap accepts only registered subcommands"),
        },
    };
    // A signal being handled ends the process from its own thread.
    cleanup::settle();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if usage::is_usage_error(&err) => {
            eprintln!("error: {}; see --help", diagnose::error_line(&err));
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {}", diagnose::error_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn run_all() -> anyhow::Result<()> {
    for exercise in exercises::EXERCISES {
        println!("== Exercise {}: {}\n", exercise.number, exercise.about);
        exercise.run_in_all()?;
        println!();
    }
    Ok(())
}

/// clap's errors span several lines; a bad command line gets one.
fn usage_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let line = match err.kind() {
        ErrorKind::InvalidSubcommand
            if std::env::args().nth(1).as_deref() == Some("solution") =>
        {
            let ids: Vec<&str> = solutions::SOLUTIONS.iter().map(|s| s.id).collect();
            let what = err
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            format!(
                "no solution '{what}' (solutions: {}); see solution --help",
                ids.join(", ")
            )
        }
        ErrorKind::InvalidSubcommand if sub_exercise().is_some() => {
            // `uring-book 7 frob`: a command of an exercise that has some.
            let (number, commands) = sub_exercise().unwrap_or_default();
            let what = err
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            format!(
                "exercise {number} has no command '{what}' (commands: {}); see {number} --help",
                commands.join(", ")
            )
        }
        ErrorKind::InvalidSubcommand => {
            let known: Vec<&str> =
                exercises::EXERCISES.iter().map(|e| e.number).collect();
            let what = err
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            format!(
                "no exercise or command '{what}' (exercises: {}; \
                 also: doctor, echo-client, solution); see --help",
                if known.is_empty() {
                    "none yet".to_string()
                } else {
                    known.join(", ")
                }
            )
        }
        ErrorKind::MissingRequiredArgument => {
            // clap names the missing arguments on the lines after the first.
            let text = err.render().to_string();
            let missing: Vec<&str> = text
                .lines()
                .skip(1)
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            format!("missing {}; see --help", missing.join(" "))
        }
        _ => {
            let text = err.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            format!("{}; see --help", first.trim_start_matches("error: "))
        }
    };
    eprintln!("error: {line}");
    ExitCode::from(2)
}

/// The exercise named on the command line and its commands, if it has any.
fn sub_exercise() -> Option<(&'static str, Vec<String>)> {
    let number = std::env::args().nth(1)?;
    let exercise = exercises::find(&number)?;
    let commands: Vec<String> = exercise
        .command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    (!commands.is_empty()).then_some((exercise.number, commands))
}
