//! Appendix B is generated from `uring_book::features::ROWS` by
//! `scripts/regen-output.sh`; this test fails when the committed page and
//! the table disagree, so that neither can drift from the other.

use std::path::Path;

use uring_book::features::{self, ROWS};

#[test]
fn the_committed_appendix_is_the_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/appendix-opcodes.md");
    let committed = std::fs::read_to_string(&path).unwrap();
    let (kernel, presence) = features::parse_appendix(&committed)
        .expect("the appendix names the kernel it was generated on");
    assert_eq!(
        presence.len(),
        ROWS.len(),
        "the appendix has {} rows, the table {}: run scripts/regen-output.sh",
        presence.len(),
        ROWS.len()
    );
    let expected = features::appendix_markdown(&kernel, &presence);
    assert!(
        committed == expected,
        "book/src/appendix-opcodes.md differs from the table: run scripts/regen-output.sh"
    );
}

/// The machine column is real: on this machine, the generator's own run
/// agrees with the committed one where this kernel is the same.
#[test]
fn the_machine_column_is_this_machines_answer_when_the_kernel_matches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/appendix-opcodes.md");
    let committed = std::fs::read_to_string(&path).unwrap();
    let (kernel, presence) = features::parse_appendix(&committed).unwrap();
    if kernel != uring_book::system::kernel_release() {
        return; // generated on another machine: nothing to compare with
    }
    let here = features::check_all();
    for ((row, a), b) in ROWS.iter().zip(&presence).zip(&here) {
        assert_eq!(a.word(), b.word(), "{}", row.name);
    }
}
