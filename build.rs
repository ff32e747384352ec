//! Turns every ```rust block of the book into a test.
//!
//! skeptic reads Markdown but knows nothing of mdBook's `{{#include}}` and
//! `{{#rustdoc_include}}`, so the book is first copied to `$OUT_DIR/book/` with
//! those links expanded exactly as mdBook expands them. skeptic then reads the
//! copies, so what it compiles is what a reader sees. Test names start with
//! the chapter's file name (`ch01_ring_and_read_sect_...`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let src = root.join("book/src");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("book");
    println!("cargo:rerun-if-changed={}", src.display());
    // $OUT_DIR is <target>/<profile>/build/<package>-<hash>/out: the solutions
    // that run the `uring-book` binary find it in <profile> when a listing of
    // the book runs as a program of its own (src/solutions/mod.rs).
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    if let Some(profile) = out_dir.ancestors().nth(3) {
        println!(
            "cargo:rustc-env=URING_BOOK_PROFILE_DIR={}",
            profile.display()
        );
    }

    let mut chapters = Vec::new();
    collect_markdown(&src, &mut chapters);
    chapters.sort();

    let mut copies = Vec::new();
    for chapter in &chapters {
        println!("cargo:rerun-if-changed={}", chapter.display());
        let text = fs::read_to_string(chapter).unwrap();
        let expanded = expand(&text, chapter.parent().unwrap(), 0)
            .unwrap_or_else(|e| panic!("{}: {}", chapter.display(), e));
        let copy = out.join(chapter.strip_prefix(&src).unwrap());
        write_if_changed(&copy, &expanded, chapter);
        copies.push(copy);
    }
    skeptic::generate_doc_tests(&copies);
}

fn collect_markdown(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_markdown(&path, found);
        } else if path.extension().is_some_and(|e| e == "md")
            && !path.ends_with("SUMMARY.md")
        {
            found.push(path);
        }
    }
}

/// skeptic asks cargo to watch the copies, and cargo reruns a build script
/// whose watched files are newer than its last run. So a copy is rewritten
/// only when its bytes change, and then gets the modification time of its
/// chapter, which is older than this run: written now, it would make the next
/// build compile the crate again for nothing.
fn write_if_changed(path: &Path, content: &str, chapter: &Path) {
    if fs::read_to_string(path).ok().as_deref() == Some(content) {
        return;
    }
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    let mtime = fs::metadata(chapter).and_then(|m| m.modified()).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(mtime))
        .unwrap();
}

/// Expands `{{#include ...}}` and `{{#rustdoc_include ...}}` the way mdBook
/// 0.5 does, recursively (mdBook stops at depth 10).
pub(crate) fn expand(text: &str, base: &Path, depth: usize) -> Result<String, String> {
    if depth > 10 {
        return Err("includes nested more than 10 deep".into());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        // `\{{#include ...}}` is mdBook's escape: the link is shown, not expanded.
        if start > 0 && rest.as_bytes()[start - 1] == b'\\' {
            out.push_str(&rest[..start - 1]);
            out.push_str("{{#");
            rest = &rest[start + 3..];
            continue;
        }
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let link = &rest[start + 3..start + len];
        out.push_str(&rest[..start]);
        match expand_link(link.trim(), base, depth)? {
            Some(expanded) => out.push_str(&expanded),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_link(link: &str, base: &Path, depth: usize) -> Result<Option<String>, String> {
    let (kind, arg) = link.split_once(char::is_whitespace).unwrap_or((link, ""));
    let rustdoc = match kind {
        "include" => false,
        "rustdoc_include" => true,
        _ => return Ok(None), // {{#title}}, {{#playground}}: not ours to expand
    };
    let mut parts = arg.trim().splitn(2, ':');
    let file = base.join(parts.next().unwrap_or(""));
    let selector = parts.next();
    println!("cargo:rerun-if-changed={}", file.display());
    let content = match fs::read_to_string(&file) {
        Ok(content) => content,
        // Program output is written by scripts/regen-output.sh, which has to
        // build the crate first: a new output file cannot exist yet.
        Err(_) if is_generated_output(&file) => {
            println!(
                "cargo:warning=missing {}: run scripts/regen-output.sh",
                file.display()
            );
            return Ok(Some(format!("(run scripts/regen-output.sh: {link})")));
        }
        Err(e) => return Err(format!("{{{{#{link}}}}}: {}: {e}", file.display())),
    };
    let selected = match selector {
        None => select_range(&content, 0, usize::MAX, rustdoc),
        Some(sel) => match parse_range(sel) {
            Some((from, to)) => select_range(&content, from, to, rustdoc),
            None => {
                if !content.lines().any(|l| anchor_start(l) == Some(sel)) {
                    return Err(format!(
                        "{{{{#{link}}}}}: no anchor `{sel}` in {}",
                        file.display()
                    ));
                }
                // mdBook runs an anchor with no end to the end of the file,
                // which shows far more than the chapter means to.
                if !content.lines().any(|l| anchor_end(l) == Some(sel)) {
                    return Err(format!(
                        "{{{{#{link}}}}}: anchor `{sel}` has no ANCHOR_END in {}",
                        file.display()
                    ));
                }
                select_anchor(&content, sel, rustdoc)
            }
        },
    };
    let dir = file.parent().unwrap_or(base);
    expand(&selected, dir, depth + 1).map(Some)
}

fn is_generated_output(file: &Path) -> bool {
    file.parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "output")
}

/// `N`, `N:M`, `N:`, `:M` (1-based, inclusive) as a 0-based half-open range.
fn parse_range(sel: &str) -> Option<(usize, usize)> {
    let num = |s: &str| -> Option<Option<usize>> {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    match sel.split_once(':') {
        None => {
            let n: usize = sel.parse().ok()?;
            Some((n.saturating_sub(1), n))
        }
        Some((a, b)) => {
            let from = num(a)?.map_or(0, |n| n.saturating_sub(1));
            let to = num(b)?.unwrap_or(usize::MAX);
            Some((from, to))
        }
    }
}

fn select_range(content: &str, from: usize, to: usize, rustdoc: bool) -> String {
    let mut lines = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if (from..to).contains(&i) {
            lines.push(line.to_string());
        } else if rustdoc {
            lines.push(format!("# {line}"));
        }
    }
    lines.join("\n")
}

fn select_anchor(content: &str, anchor: &str, rustdoc: bool) -> String {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in content.lines() {
        if anchor_start(line) == Some(anchor) {
            inside = true;
        } else if anchor_end(line) == Some(anchor) {
            inside = false;
        } else if anchor_start(line).is_some() || anchor_end(line).is_some() {
            // Markers of other anchors never reach the page.
        } else if inside {
            lines.push(line.to_string());
        } else if rustdoc {
            lines.push(format!("# {line}"));
        }
    }
    lines.join("\n")
}

fn anchor_start(line: &str) -> Option<&str> {
    anchor_name(line, "ANCHOR:")
}

fn anchor_end(line: &str) -> Option<&str> {
    anchor_name(line, "ANCHOR_END:")
}

fn anchor_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    let name = line[at + marker.len()..].trim_start();
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}
