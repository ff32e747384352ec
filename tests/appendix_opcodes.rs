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

/// The version tables at the top of the chapters agree with the table of
/// features wherever they name one of its rows; chapter 7's names only rows.
#[test]
fn chapter_version_tables_agree_with_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("ch") || !name.ends_with(".md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(table) = text.split("| What | Linux | Manual |").nth(1) else {
            continue;
        };
        let rows = table.lines().skip(2).take_while(|l| l.starts_with('|'));
        for line in rows {
            let cells: Vec<&str> = line.split(" | ").collect();
            let ident = cells[0].split('`').nth(1).unwrap_or("");
            let quoted = format!("`{ident}`");
            let row = ROWS.iter().find(|r| r.name.contains(&quoted));
            match row {
                Some(row) => {
                    let want = features::version(row.since);
                    assert!(
                        cells[1].split(", ").any(|v| v == want),
                        "{name}: {ident} is {} in the chapter, {want} in the table",
                        cells[1]
                    );
                    checked += 1;
                }
                None if name.starts_with("ch07") => {
                    panic!("{name}: {ident} is not in uring_book::features::ROWS")
                }
                None => {}
            }
        }
    }
    assert!(checked >= 13, "only {checked} rows checked");
}
