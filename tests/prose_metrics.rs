//! scripts/prose-metrics.py counts what a reader reads: sentences of prose (not
//! code, tables, captions or included output) and the lines of a listing that
//! the rendered book shows (includes expanded, `# ` lines hidden).

use std::fs;
use std::path::Path;
use std::process::Command;

fn metrics(dir: &Path, chapter: &str, check: bool) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prose-metrics.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--show").arg(dir.join(chapter));
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The chapter's row: words, average, >40, para>150, listing, diagrams.
fn row(report: &str, chapter: &str) -> Vec<String> {
    let line = report
        .lines()
        .find(|l| l.starts_with(chapter))
        .unwrap_or_else(|| panic!("no row for {chapter}:\n{report}"));
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// `n` words, the first capitalised, ending with a period.
fn sentence(n: usize) -> String {
    let mut words = vec!["word"; n];
    words[0] = "A";
    format!("{}.", words.join(" "))
}

#[test]
fn prose_listings_and_diagrams_are_counted_as_a_reader_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let code: String = (0..44).map(|i| format!("let x{i} = {i};\n")).collect();
    fs::write(
        dir.path().join("code.rs"),
        format!("fn main() {{\n// ANCHOR: body\n{code}// ANCHOR_END: body\n}}\n"),
    )
    .unwrap();
    let long = sentence(41);
    let chapter = format!(
        "# Chapter 1: A test\n\n\
         {} {} `inline.code() + more` counts as one word, e.g. this one.\n\n\
         > **Under the hood:** {long}\n\n\
         - {}\n\
         - {}\n\n\
         | a table | is not prose, however many words it has in it |\n\
         |---|---|\n\n\
         ```rust\n\
         {{{{#rustdoc_include code.rs:body}}}}\n\
         ```\n\n\
         <span class=\"caption\">Listing 1-1: a caption is not prose either</span>\n\n\
         ```text\n\
         {{{{#include output/none.txt}}}}\n\
         ```\n",
        sentence(10),
        sentence(4),
        sentence(3),
        sentence(5),
    );
    fs::write(dir.path().join("ch01-test.md"), &chapter).unwrap();

    let (ok, report) = metrics(dir.path(), "ch01-test.md", false);
    assert!(ok, "{report}");
    // Sentences: 10, 4, 8 (the inline code is one word, `e.g.` ends nothing),
    // 41, 3 and 5 words.
    let words = 10 + 4 + 8 + 41 + 3 + 5;
    let average = format!("{:.1}", words as f64 / 6.0);
    assert_eq!(
        row(&report, "ch01-test.md"),
        [&words.to_string(), &average, "1", "0", "44", "0"],
        "{report}"
    );
    assert!(
        report.contains("ch01-test.md:5: sentence of 41 words"),
        "{report}"
    );

    // 44 visible lines, hidden `fn main` around them: within the cap. Two more
    // break it, and the chapter still has no diagram.
    let (ok, report) = metrics(dir.path(), "ch01-test.md", true);
    assert!(!ok, "{report}");
    assert!(report.contains("ch01-test.md: no diagram"), "{report}");
    assert!(!report.contains("listing of"), "{report}");
    assert!(!report.contains("average sentence"), "{report}");

    fs::write(
        dir.path().join("code.rs"),
        format!("fn main() {{\n// ANCHOR: body\n{code}let y = 1;\nlet z = 2;\n// ANCHOR_END: body\n}}\n"),
    )
    .unwrap();
    let padded = chapter.replace(&long, &format!("{long} {}", sentence(120)))
        + "\n![the rings](img/rings.svg)\n";
    fs::write(dir.path().join("ch01-test.md"), padded).unwrap();
    let (ok, report) = metrics(dir.path(), "ch01-test.md", true);
    assert!(!ok, "{report}");
    assert!(
        report.contains("ch01-test.md:13: listing of 46 lines (at most 45)"),
        "{report}"
    );
    assert!(
        report.contains("ch01-test.md: average sentence"),
        "{report}"
    );
    assert!(!report.contains("no diagram"), "{report}");
}

/// The prose a benchmark generates (`{{#include bench/NAME.md:anchor}}`) is
/// the chapter's prose too: a long generated sentence counts, at the line of
/// its include; program output and generated tables do not.
#[test]
fn generated_prose_counts_where_it_is_included() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("bench")).unwrap();
    fs::write(
        dir.path().join("bench/summary.md"),
        format!(
            "<!-- ANCHOR: finding -->\n{}\n\n| a | table |\n|---|---|\n\
             <!-- ANCHOR_END: finding -->\n",
            sentence(42)
        ),
    )
    .unwrap();
    let chapter = format!(
        "# Chapter 6: A test\n\n{}\n\n{{{{#include bench/summary.md:finding}}}}\n\n\
         ```text\n{{{{#include bench/summary.md:finding}}}}\n```\n",
        sentence(4)
    );
    fs::write(dir.path().join("ch06-test.md"), chapter).unwrap();
    let (_, report) = metrics(dir.path(), "ch06-test.md", false);
    assert_eq!(
        row(&report, "ch06-test.md")[..3],
        ["46", "23.0", "1"],
        "{report}"
    );
    assert!(
        report.contains("ch06-test.md:5: sentence of 42 words"),
        "{report}"
    );
}
