//! fio and perf: chapter 6's benchmark uses them when they are there, and the
//! book runs without them. For each, one sentence says what is missing, what
//! that costs (which parts of the benchmark's tables stay empty) and how to
//! install it; `doctor` prints it, and so can the benchmark's report.

use std::process::{Command, Stdio};

/// A tool the benchmark can do without.
pub struct Tool {
    pub name: &'static str,
    /// What the benchmark loses without it.
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
    /// It runs; its version line.
    Ready(String),
    /// It is not installed (or, like Debian's `perf` wrapper without a
    /// matching linux-perf, does not run).
    Missing,
    /// It runs but may not do what the benchmark needs: why, and the fix.
    Refused(String),
}

/// Is fio installed?
pub fn fio() -> Availability {
    match version("fio") {
        Some(version) => Availability::Ready(version),
        None => Availability::Missing,
    }
}

/// Is perf installed, and may it count the system calls of other processes?
pub fn perf() -> Availability {
    let Some(version) = version("perf") else {
        return Availability::Missing;
    };
    if uring_book::bench::echo::perf_available() {
        return Availability::Ready(version);
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Availability::Refused(format!(
        "perf cannot count system calls here (kernel.perf_event_paranoid is \
         {paranoid}, or tracefs is not readable), so {}. Fix: run the benchmark \
         as root, or `sudo sysctl kernel.perf_event_paranoid=-1`",
        PERF.costs
    ))
}

/// The one line that says what is missing, what it costs and the fix, or
/// `None` when the tool is ready.
pub fn missing_line(tool: &Tool, availability: &Availability) -> Option<String> {
    match availability {
        Availability::Ready(_) => None,
        Availability::Missing => Some(format!(
            "{} is not installed, so {}. Install it: {}",
            tool.name, tool.costs, tool.install
        )),
        Availability::Refused(why) => Some(why.clone()),
    }
}

/// The first line `NAME --version` prints, if it runs and succeeds.
fn version(name: &str) -> Option<String> {
    let out = Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or(name).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_one_line_with_its_cost_and_its_install() {
        let line = missing_line(&FIO, &Availability::Missing).unwrap();
        assert!(line.starts_with("fio is not installed, so the file tables"));
        assert!(line.contains("`vs fio` column"), "{line}");
        assert!(line.ends_with(
            "Install it: sudo apt-get install fio (Fedora: sudo dnf install fio)"
        ));
        let line = missing_line(&PERF, &Availability::Missing).unwrap();
        assert!(
            line.contains("syscalls/msg and switches/msg columns"),
            "{line}"
        );
        assert!(line.contains("linux-perf"), "{line}");
        assert!(!line.contains('\n'));
        let ready = Availability::Ready("fio-3.33".into());
        assert_eq!(missing_line(&FIO, &ready), None);
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
