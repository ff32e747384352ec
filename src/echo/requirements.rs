//! What exercise 8 needs from the kernel, checked once at startup.
//!
//! The needs are listed in one place: the rows of the book's table of
//! features (`uring_book::features::ROWS`, printed as Appendix B) that say
//! chapter 8 needs them. The table also says how to ask this machine for
//! each: a probe for an opcode, a trial on a scratch ring for a flag that no
//! probe lists (such as multishot receive), a setup for a setup flag.

use uring_book::features::{self, Presence, Row, ROWS};
use uring_book::{diagnose, system};

/// The chapter whose rows of the table are the server's needs.
pub const CHAPTER: u8 = 8;

/// The oldest kernel with everything chapter 8 needs: `6.0`.
pub fn floor() -> String {
    features::version(features::chapter_kernel(CHAPTER))
}

// ANCHOR: check
/// Asks this kernel for every row the server needs. `Err` is one line that
/// names the newest missing feature and the release that brought it.
pub fn check() -> anyhow::Result<()> {
    // First the ring itself: EPERM, ENOSYS, ENOMEM get their own diagnosis.
    drop(io_uring::IoUring::new(2).map_err(diagnose::setup)?);
    let presence = features::check_all();
    let support = features::chapter_support(CHAPTER, &presence);
    if let Some(row) = newest(&support.missing) {
        let release = system::kernel_release();
        anyhow::bail!(missing_message(row, &release, support.missing.len()));
    }
    if let Some(row) = newest(&support.unknown) {
        let why = match ROWS
            .iter()
            .zip(&presence)
            .find(|(r, _)| std::ptr::eq(*r, row))
        {
            Some((_, Presence::Unknown(why))) => why.as_str(),
            _ => "no answer",
        };
        anyhow::bail!(
            "could not tell whether this kernel has {}: {why}",
            plain(row)
        );
    }
    Ok(())
}

/// The newest of `rows` (the first in the table among equals): on an old
/// kernel, the release to upgrade to.
pub fn newest<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    rows.iter().copied().fold(None, |best, row| match best {
        Some(b) if b.since >= row.since => Some(b),
        _ => Some(row),
    })
}
// ANCHOR_END: check

/// The one line a reader sees when `row` (one of `count` missing) is missing
/// on kernel `release`.
pub fn missing_message(row: &Row, release: &str, count: usize) -> String {
    let others = match count {
        0 | 1 => String::new(),
        2 => " and 1 more feature".to_string(),
        n => format!(" and {} more features", n - 1),
    };
    format!(
        "this kernel ({release}) lacks {}, new in Linux {},{others}; exercise 8 needs \
         Linux {}, and 6.1 for IORING_SETUP_DEFER_TASKRUN. Fix: run a newer kernel; \
         `cargo run -- doctor` lists what is missing",
        plain(row),
        features::version(row.since),
        floor()
    )
}

/// A row's name without the Markdown backquotes.
fn plain(row: &Row) -> String {
    row.name.replace('`', "")
}

/// What a kernel of release `(major, minor)` would answer for each row,
/// going by the versions in the table: the input a test, or the example
/// `ch08_floor`, hands to [`features::chapter_support`].
pub fn presence_of_release(release: (u32, u32)) -> Vec<Presence> {
    ROWS.iter()
        .map(|row| {
            if row.since <= release {
                Presence::Yes
            } else {
                Presence::No
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_everything() {
        check().unwrap();
    }

    #[test]
    fn a_5_19_kernel_is_told_about_6_0_and_multishot_receive() {
        let support = features::chapter_support(CHAPTER, &presence_of_release((5, 19)));
        let row = newest(&support.missing).unwrap();
        assert_eq!(row.since, (6, 0));
        let line = missing_message(row, "5.19.0", support.missing.len());
        assert!(line.contains("lacks "), "{line}");
        assert!(
            line.contains("lacks multishot receive (RecvMulti), new in Linux 6.0,"),
            "{line}"
        );
        assert!(line.contains("exercise 8 needs Linux 6.0"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }

    #[test]
    fn every_6_0_need_is_named_on_5_19() {
        let support = features::chapter_support(CHAPTER, &presence_of_release((5, 19)));
        let names: Vec<&str> = support.missing.iter().map(|r| r.name).collect();
        assert!(
            names.iter().any(|n| n.starts_with("multishot receive")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n.contains("SINGLE_ISSUER")),
            "{names:?}"
        );
        let on_6_0 = features::chapter_support(CHAPTER, &presence_of_release((6, 0)));
        assert!(on_6_0.missing.is_empty(), "6.0 runs chapter 8");
    }

    #[test]
    fn the_floor_is_6_0() {
        assert_eq!(floor(), "6.0");
    }
}
