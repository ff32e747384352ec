//! fio and perf: the benchmark runs them when they are installed and does
//! without them otherwise. When one is missing, the run says so in one line:
//! which figures stay empty, why, and how to install it.
//!
//! The newcomer's `optional_tools` module (issue 9, `doctor` checks them too)
//! has the same shape: `Tool`, `Availability`, `missing_line`. When both are
//! in main, this module's callers can use that one, with these `costs`,
//! which name the columns as the tables print them.

use std::process::{Command, Stdio};

/// A tool the benchmark can do without.
pub struct Tool {
    pub name: &'static str,
    /// What the benchmark's output lacks without it.
    pub costs: &'static str,
    /// How to install it.
    pub install: &'static str,
}

pub const FIO: Tool = Tool {
    name: "fio",
    costs: "the file tables have no fio rows and no `vs fio` column",
    install: "sudo apt-get install fio (Fedora: sudo dnf install fio)",
};

pub const PERF: Tool = Tool {
    name: "perf",
    costs: "the echo table's syscalls/msg and switches/msg columns are empty and \
            there is no profile of the servers",
    install: "sudo apt-get install linux-perf (Ubuntu: linux-tools-generic; \
              Fedora: perf)",
};

/// Whether a tool can do its job here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Not installed, or (Debian's `perf` wrapper without a matching
    /// linux-perf) installed but not running.
    Missing,
    /// It runs but may not do what the benchmark asks: why, and the fix.
    Refused(String),
}

/// Is fio installed?
pub fn fio() -> Availability {
    if runs("fio") {
        Availability::Ready
    } else {
        Availability::Missing
    }
}

/// Is perf installed, and may it count the system calls of another process?
pub fn perf() -> Availability {
    if !runs("perf") {
        return Availability::Missing;
    }
    if uring_book::bench::echo::perf_available() {
        return Availability::Ready;
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map_or("unknown".into(), |s| s.trim().to_string());
    Availability::Refused(format!(
        "perf may not count system calls here (kernel.perf_event_paranoid is \
         {paranoid}, or tracefs is not readable), so {}. Run as root, or: sudo sysctl \
         kernel.perf_event_paranoid=-1",
        PERF.costs
    ))
}

/// The one line that says what is missing, what it costs and the remedy;
/// `None` when the tool is ready.
pub fn missing_line(tool: &Tool, found: &Availability) -> Option<String> {
    match found {
        Availability::Ready => None,
        Availability::Missing => Some(format!(
            "{} is not installed, so {}. Install it: {}",
            tool.name, tool.costs, tool.install
        )),
        Availability::Refused(why) => Some(why.clone()),
    }
}

/// Whether `NAME --version` runs and succeeds.
fn runs(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_one_line_naming_the_empty_columns_and_the_install() {
        let fio = missing_line(&FIO, &Availability::Missing).unwrap();
        assert!(fio.starts_with("fio is not installed, so the file tables"));
        assert!(fio.contains("`vs fio` column"), "{fio}");
        assert!(fio.ends_with(
            "Install it: sudo apt-get install fio (Fedora: sudo dnf \
                               install fio)"
        ));
        let perf = missing_line(&PERF, &Availability::Missing).unwrap();
        assert!(
            perf.contains("syscalls/msg and switches/msg columns"),
            "{perf}"
        );
        assert!(perf.contains("linux-perf"), "{perf}");
        for line in [&fio, &perf] {
            assert!(!line.contains('\n'), "{line}");
        }
        assert_eq!(missing_line(&FIO, &Availability::Ready), None);
        let refused = Availability::Refused("why and the fix".into());
        assert_eq!(
            missing_line(&PERF, &refused).as_deref(),
            Some("why and the fix")
        );
    }

    #[test]
    fn the_column_names_are_the_tables_own() {
        // A line that names a column the table does not print would send the
        // reader looking for nothing.
        use uring_book::bench::report;
        let echo = report::echo_header();
        assert!(echo.contains(&"syscalls/msg") && echo.contains(&"switches/msg"));
        assert!(report::FIO_COLUMN == "vs fio");
    }
}
