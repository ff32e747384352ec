//! A chapter edit costs one build, not two: after `cargo build` has built an
//! edit, the next `cargo build` compiles nothing.
//!
//! build.rs writes expanded copies of the chapters for skeptic, and skeptic
//! asks cargo to watch them. A crate the size of this one would take minutes
//! to build here from nothing, so the test builds a small crate with this
//! crate's own build.rs, skeptic and a chapter, in a directory that persists
//! between runs (skeptic is compiled the first time only).

use std::path::Path;
use std::process::Command;

const CHAPTER: &str = "# A chapter\n\n```rust\nfn main() {\n    {{#include ../../src/lib.rs:answer}}\n    assert_eq!(answer, 42);\n}\n```\n";

const LIB: &str = "// ANCHOR: answer\nlet answer = 42;\n// ANCHOR_END: answer\n";

const MANIFEST: &str = r#"[package]
name = "rebuild-fixture"
version = "0.0.0"
edition = "2021"
publish = false
build = "build.rs"

[lib]
path = "lib.rs"

[build-dependencies]
skeptic = "0.14"

[workspace]
"#;

/// Runs `cargo build` in `dir` and returns what it printed on stderr.
fn cargo_build(dir: &Path, target: &Path) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--color=never"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cargo build failed:\n{stderr}");
    stderr
}

fn compiled(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .collect()
}

#[test]
fn a_second_build_after_a_chapter_edit_compiles_nothing() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rebuild-fixture");
    let (dir, target) = (root.join("crate"), root.join("target"));
    let chapters = dir.join("book/src");
    std::fs::create_dir_all(&chapters).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(manifest_dir.join("build.rs"), dir.join("build.rs")).unwrap();
    // The versions this crate resolved, so that nothing new is fetched.
    std::fs::copy(manifest_dir.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), MANIFEST).unwrap();
    std::fs::write(dir.join("lib.rs"), "").unwrap();
    std::fs::write(dir.join("src/lib.rs"), LIB).unwrap();
    std::fs::write(chapters.join("ch01.md"), CHAPTER).unwrap();

    cargo_build(&dir, &target);
    // A fresh clone: the first build wrote the copies; the second must not
    // find them newer than itself.
    let again = cargo_build(&dir, &target);
    assert_eq!(compiled(&again), Vec::<&str>::new(), "{again}");

    let edited = format!("{CHAPTER}\nOne more sentence.\n");
    std::fs::write(chapters.join("ch01.md"), edited).unwrap();
    let after_edit = cargo_build(&dir, &target);
    assert!(
        compiled(&after_edit)
            .iter()
            .any(|l| l.contains("rebuild-fixture")),
        "the edit was not built:\n{after_edit}"
    );
    let again = cargo_build(&dir, &target);
    assert_eq!(compiled(&again), Vec::<&str>::new(), "{again}");

    // The copy skeptic reads is the edited chapter, expanded.
    let copies = std::fs::read_dir(target.join("debug/build"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("out/book/ch01.md"))
        .filter(|p| p.exists())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>();
    assert!(
        copies
            .iter()
            .any(|c| c.contains("let answer = 42;") && c.contains("One more sentence.")),
        "{copies:?}"
    );
}
