//! scripts/check-links.py, which CI runs on the built book, must catch a
//! missing page and a missing #anchor, and pass a book without either.

use std::fs;
use std::path::Path;
use std::process::Command;

fn check(dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-links.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn broken_pages_and_anchors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("index.html"),
        r##"<h1 id="top">Top</h1>
        <a href="ch01.html#rings">ok</a> <a href="#top">ok</a>
        <a href="ch02.html">missing page</a> <a href="ch01.html#nowhere">missing anchor</a>
        <a href="https://man7.org/">external, not fetched</a>"##,
    )
    .unwrap();
    fs::write(dir.path().join("ch01.html"), r#"<h2 id="rings">Rings</h2>"#).unwrap();

    let (ok, report) = check(dir.path());
    assert!(!ok, "{report}");
    assert!(
        report.contains("index.html: ch02.html: no such file"),
        "{report}"
    );
    assert!(
        report.contains("index.html: ch01.html#nowhere: no #nowhere"),
        "{report}"
    );
    assert!(
        report.contains("4 internal links in 2 pages, 2 broken"),
        "{report}"
    );

    fs::write(dir.path().join("ch02.html"), r#"<p id="nowhere">"#).unwrap();
    fs::write(
        dir.path().join("ch01.html"),
        r#"<h2 id="rings">Rings</h2><b id="nowhere"></b>"#,
    )
    .unwrap();
    let (ok, report) = check(dir.path());
    assert!(ok, "{report}");
}
