//! Keeps the promise that every Rust listing of the book is tested.
//!
//! mdBook shows a fenced block as Rust when its info string says `rust` or a
//! rustdoc attribute (`ignore`, `edition2021`, ...); skeptic tests only some of
//! those. This test parses the expanded chapters the way skeptic does, names
//! each block the way skeptic names its test, and fails when a block has no
//! test, when a block is `ignore`d without a reason beside it, when skeptic
//! cannot honour an attribute (`compile_fail`), or when a visible line is wider
//! than the page (90 columns). The fixture test shows that each check fires.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag};

const MAX_COLUMNS: usize = 90;

/// Words one of which must appear in the paragraph beside an `ignore`d block.
const IGNORE_REASONS: &[&str] = &[
    "deliberately",
    "does not compile",
    "would not compile",
    "rejects",
];

/// The attributes rustdoc (and so mdBook) accepts on a Rust block.
const RUSTDOC_ATTRS: &[&str] = &[
    "rust",
    "ignore",
    "no_run",
    "should_panic",
    "compile_fail",
    "test_harness",
    "edition2015",
    "edition2018",
    "edition2021",
    "edition2024",
    "editable",
    "noplayground",
    "mdbook-runnable",
];

struct Block {
    name: String,
    info: String,
    code: String,
    before: String,
    after: String,
}

fn tokens(info: &str) -> impl Iterator<Item = &str> {
    info.split(|c: char| !(c == '_' || c == '-' || c.is_alphanumeric()))
        .filter(|t| !t.is_empty())
}

/// A block mdBook renders as Rust: the first token is `rust`, or every token
/// is a rustdoc attribute.
fn is_rust(info: &str) -> bool {
    let mut toks = tokens(info).peekable();
    match toks.peek() {
        None => false,
        Some(&"rust") => true,
        Some(_) => toks.all(|t| RUSTDOC_ATTRS.contains(&t)),
    }
}

/// skeptic's test-name rules: the file stem and the latest H1/H2, lowercased,
/// non-alphanumerics folded into single `_`.
fn sanitize(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The fenced code blocks of a chapter, named as skeptic names its tests.
fn code_blocks(markdown: &str, stem: &str) -> Vec<Block> {
    let stem = sanitize(stem);
    let mut blocks = Vec::new();
    let mut section: Option<String> = None;
    let mut heading: Option<String> = None;
    let mut current: Option<(String, Option<usize>, String, usize)> = None;
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading(level, ..)) if level < HeadingLevel::H3 => {
                heading = Some(String::new())
            }
            Event::End(Tag::Heading(level, ..)) if level < HeadingLevel::H3 => {
                section = heading.take().map(|h| sanitize(&h));
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = Some((info.to_string(), None, String::new(), range.start));
            }
            Event::Text(text) => {
                if let Some((_, line, code, _)) = current.as_mut() {
                    if line.is_none() {
                        *line = Some(markdown[..range.start].matches('\n').count());
                    }
                    code.push_str(&text);
                } else if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
            }
            Event::End(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                let Some((info, line, code, start)) = current.take() else {
                    continue;
                };
                let line = line.unwrap_or(0);
                let name = match &section {
                    Some(s) => format!("{stem}_sect_{s}_line_{line}"),
                    None => format!("{stem}_line_{line}"),
                };
                let before = markdown[..start].trim_end();
                let before = before.rsplit("\n\n").next().unwrap_or("").to_string();
                let after = markdown[range.end..].trim_start();
                let after = after.split("\n\n").next().unwrap_or("").to_string();
                blocks.push(Block {
                    name,
                    info,
                    code,
                    before,
                    after,
                });
            }
            _ => {}
        }
    }
    blocks
}

/// Test name -> whether skeptic marked it `#[ignore]`, from its generated file.
fn generated_tests(generated: &str) -> BTreeMap<String, bool> {
    let mut tests = BTreeMap::new();
    let mut ignored = false;
    for line in generated.lines() {
        if line.trim() == "#[ignore]" {
            ignored = true;
        } else if let Some(rest) = line.strip_prefix("#[test] fn ") {
            let name = rest.split('(').next().unwrap().to_string();
            tests.insert(name, ignored);
            ignored = false;
        }
    }
    tests
}

/// Everything wrong with one expanded chapter.
fn problems(
    markdown: &str,
    stem: &str,
    generated: &BTreeMap<String, bool>,
) -> Vec<String> {
    let mut found = Vec::new();
    for block in code_blocks(markdown, stem) {
        let wide = block.code.lines().filter(|l| {
            let rust = is_rust(&block.info);
            // Hidden lines never reach the page.
            let hidden = rust && (l.trim_start().starts_with("# ") || l.trim() == "#");
            // A failure is one line by design (CONTRIBUTING.md), however long.
            let error = !rust && l.starts_with("error: ");
            let exempt = hidden || error;
            !exempt && l.chars().count() > MAX_COLUMNS
        });
        for line in wide {
            found.push(format!(
                "{}: wider than {MAX_COLUMNS} columns: {line}",
                block.name
            ));
        }
        if !is_rust(&block.info) {
            continue;
        }
        let attrs: Vec<&str> = tokens(&block.info).collect();
        if attrs.contains(&"compile_fail") {
            found.push(format!("{}: skeptic cannot check compile_fail", block.name));
        }
        match generated.get(&block.name) {
            None => found.push(format!(
                "{}: shown as Rust (```{}) but skeptic does not test it; write ```rust",
                block.name, block.info
            )),
            Some(_) if attrs.contains(&"ignore") => {
                let beside = format!("{}\n{}", block.before, block.after).to_lowercase();
                if !IGNORE_REASONS.iter().any(|w| beside.contains(w)) {
                    found.push(format!(
                        "{}: ignored without a reason in the paragraph beside it",
                        block.name
                    ));
                }
            }
            Some(_) => {}
        }
    }
    found
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
}

fn chapters(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(chapters(&path));
        } else if path.extension().is_some_and(|e| e == "md")
            && !path.ends_with("SUMMARY.md")
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn every_rust_listing_of_the_book_is_tested() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let generated = fs::read_to_string(out_dir().join("skeptic-tests.rs")).unwrap();
    let generated = generated_tests(&generated);
    let mut all = Vec::new();
    let mut listings = 0;
    for chapter in chapters(&src) {
        let copy = out_dir()
            .join("book")
            .join(chapter.strip_prefix(&src).unwrap());
        let text = fs::read_to_string(&copy)
            .unwrap_or_else(|e| panic!("no expanded copy of {}: {e}", chapter.display()));
        if text.contains("(run scripts/regen-output.sh:") {
            all.push(format!(
                "{}: includes output not generated yet",
                chapter.display()
            ));
        }
        let stem = chapter.file_stem().unwrap().to_str().unwrap();
        listings += code_blocks(&text, stem)
            .iter()
            .filter(|b| is_rust(&b.info))
            .count();
        all.extend(problems(&text, stem, &generated));
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
    assert_eq!(
        listings,
        generated.len(),
        "every skeptic test comes from a listing"
    );
}

/// Runs the real skeptic on a fixture chapter that breaks each rule once.
#[test]
fn the_check_catches_untested_unexplained_and_wide_listings() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-listings.md");
    // skeptic's generator reads these, as it would in a build script; this is
    // the only test in this binary that touches the environment.
    std::env::set_var("OUT_DIR", dir.path());
    std::env::set_var("TARGET", "x86_64-unknown-linux-gnu");
    skeptic::generate_doc_tests(&[&fixture]);
    let generated = fs::read_to_string(dir.path().join("skeptic-tests.rs")).unwrap();
    let generated = generated_tests(&generated);
    assert_eq!(generated.len(), 4, "{generated:?}");

    let text = fs::read_to_string(&fixture).unwrap();
    let found = problems(&text, "bad-listings", &generated);
    let expect = [
        "bad_listings_sect_lost_listings_line_9: shown as Rust (```edition2021)",
        "bad_listings_sect_lost_listings_line_15: shown as Rust (```ignore)",
        "bad_listings_sect_unexplained_ignore_line_23: ignored without a reason",
        "bad_listings_sect_too_wide_line_37: wider than 90 columns",
        "bad_listings_sect_too_wide_line_37: skeptic cannot check compile_fail",
    ];
    for problem in expect {
        assert!(
            found.iter().any(|f| f.starts_with(problem)),
            "{problem}\n{found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}
