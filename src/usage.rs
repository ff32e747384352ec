//! Command lines that cannot work are refused before anything runs.
//!
//! A value that is wrong on its own (`--depths 0`) is refused by clap through
//! the parsers here, which name the flag. A combination that cannot work
//! (`--small-ring 16` with `--ops 8`) is refused by the exercise, first thing,
//! with [`error`]. Either way `main` prints one line naming the flag and
//! exits with 2, the status of a bad command line.

use std::fmt;
use std::str::FromStr;

/// A command line that cannot work; `main` exits with 2 for it.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error for a combination of flags, ready for `return Err(...)`.
pub fn error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Whether `err` is a usage error.
pub fn is_usage_error(err: &anyhow::Error) -> bool {
    err.downcast_ref::<UsageError>().is_some()
}

/// A whole number of at least 1: `#[arg(value_parser = usage::at_least_one::<usize>)]`.
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
{
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))?;
    if n < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// A whole number from 1 to `MAX`: `usage::one_to::<32768>`.
pub fn one_to<const MAX: u64>(text: &str) -> Result<usize, String> {
    let n: u64 = at_least_one(text)?;
    if n > MAX {
        return Err(format!("must be at most {MAX}"));
    }
    usize::try_from(n).map_err(|_| format!("must be at most {}", usize::MAX))
}

/// A directory that exists: `#[arg(value_parser = usage::existing_dir)]`.
pub fn existing_dir(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(format!("{text} is not a directory")),
        Err(e) => Err(format!("{text}: {}", crate::diagnose::errno_text(&e))),
    }
}

/// A duration in seconds, more than 0 and at most `MAX`: `usage::seconds::<600>`.
pub fn seconds<const MAX: u64>(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX as f64) {
        return Err(format!("must be more than 0 and at most {MAX} seconds"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_words_are_refused_with_a_reason() {
        assert_eq!(at_least_one::<usize>("3"), Ok(3));
        assert_eq!(existing_dir("/"), Ok("/".into()));
        assert!(existing_dir("/nonexistent")
            .unwrap_err()
            .starts_with("/nonexistent: "));
        assert_eq!(
            existing_dir("/proc/self/status"),
            Err("/proc/self/status is not a directory".into())
        );
        assert_eq!(
            at_least_one::<usize>("0"),
            Err("must be at least 1".to_string())
        );
        assert_eq!(
            at_least_one::<u32>("-1"),
            Err("'-1' is not a whole number".to_string())
        );
        assert_eq!(one_to::<8>("9"), Err("must be at most 8".to_string()));
        assert_eq!(seconds::<600>("0.25"), Ok(0.25));
        assert!(seconds::<600>("0").is_err());
        assert!(seconds::<600>("NaN").is_err());
        assert!(seconds::<600>("601").is_err());
    }

    #[test]
    fn a_usage_error_survives_context() {
        let err = error("--small-ring 16 must be smaller than --ops 8");
        assert!(is_usage_error(&err));
        assert!(is_usage_error(&err.context("exercise 2")));
        assert!(!is_usage_error(&anyhow::anyhow!("a failed run")));
    }
}
