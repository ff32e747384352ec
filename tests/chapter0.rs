//! Chapter 0 is one page that sends every failure to its section of
//! Appendix A. These checks keep that promise as the book and the crate
//! change: the kernels chapter 0 asks for come from the table of features,
//! every row of its troubleshooting table links to an existing section of the
//! appendix, every section of the appendix is reachable from that table, and
//! every file outside the book that names a page of the book names one that
//! exists.

use std::fs;
use std::path::{Path, PathBuf};

use uring_book::features::{self, book_kernel, chapter_kernel};

const CHAPTER_0: &str = "book/src/ch00-environment.md";
const APPENDIX_A: &str = "book/src/appendix-kernel-says-no.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the first table after `heading`, as cells.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let section = text
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The id mdBook 0.5 gives a heading (`normalize_id`): its text, lowercased,
/// whitespace as `-`, everything but letters, digits, `_` and `-` dropped.
fn heading_id(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The appendix's sections: (level, id), in order.
fn appendix_sections() -> Vec<(usize, String)> {
    read(APPENDIX_A)
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .map(|l| {
            let level = l.find(' ').unwrap();
            (level, heading_id(l[level..].trim()))
        })
        .collect()
}

#[test]
fn what_you_need_names_the_kernels_of_the_feature_table() {
    let chapter = read(CHAPTER_0);
    let rows = table_after(&chapter, "## What you need");
    let linux = rows
        .iter()
        .find(|r| r[0] == "Linux with io_uring")
        .expect("a row for Linux");
    let first_three = (1..=3).map(chapter_kernel).max().unwrap();
    let want = format!(
        "{} for chapters 1–3, {} for every chapter",
        features::version(first_three),
        features::version(book_kernel())
    );
    assert_eq!(linux[1], want, "chapter 0 disagrees with features::ROWS");
    let rust = rows
        .iter()
        .find(|r| r[0] == "Rust")
        .expect("a row for Rust");
    assert_eq!(
        rust[1],
        format!("{} or newer", env!("CARGO_PKG_RUST_VERSION")),
        "chapter 0 disagrees with Cargo.toml's rust-version"
    );
}

#[test]
fn every_failure_in_chapter_0_links_to_its_section_of_appendix_a() {
    let chapter = read(CHAPTER_0);
    let rows = table_after(&chapter, "## If something failed");
    assert!(rows.len() >= 8, "only {} rows", rows.len());
    let sections = appendix_sections();
    let mut linked = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), 4, "what you see, means, fix, link: {row:?}");
        let link = row[3]
            .split("(appendix-kernel-says-no.md#")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("no link into Appendix A: {row:?}"));
        assert!(
            sections.iter().any(|(_, id)| id == link),
            "#{link} is no section of Appendix A: {sections:?}"
        );
        linked.push(link.to_string());
    }

    // Every errno section of the appendix is reached from the table, through
    // itself or one of its subsections.
    let mut current = None;
    let mut reached = Vec::new();
    for (level, id) in &sections {
        if *level == 2 {
            current = Some(id.clone());
        }
        if linked.contains(id) {
            reached.push(current.clone().unwrap());
        }
    }
    for (level, id) in &sections {
        assert!(
            *level != 2 || reached.contains(id),
            "no row of chapter 0's table leads to Appendix A's #{id}"
        );
    }
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[test]
fn files_outside_the_book_name_pages_that_exist() {
    let mut files: Vec<PathBuf> = [
        "README.md",
        "CONTRIBUTING.md",
        "Dockerfile",
        "docker-compose.yml",
        "Justfile",
    ]
    .iter()
    .map(|f| root().join(f))
    .collect();
    for dir in ["docker", "src", "tests", "scripts", "examples"] {
        files_under(&root().join(dir), &mut files);
    }
    let mut named = 0;
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue; // not text
        };
        for (at, _) in text.match_indices("book/src/") {
            let page: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_./".contains(*c))
                .collect();
            // `chNN-topic.md` in CONTRIBUTING.md is a pattern, not a page.
            if !page.ends_with(".md") || page.contains("NN") {
                continue;
            }
            assert!(
                root().join(&page).exists(),
                "{} names {page}, which does not exist",
                file.display()
            );
            named += 1;
        }
    }
    assert!(named >= 5, "only {named} pages named");
    assert!(root().join(uring_book::diagnose::APPENDIX_A).exists());
}
