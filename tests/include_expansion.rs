//! build.rs expands mdBook's include links the way mdBook 0.5 does; these
//! cases mirror mdBook's own (links.rs and take_lines.rs in mdBook).

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

use std::path::Path;

fn expand(link: &str) -> String {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/include");
    build_script::expand(link, &base, 0).unwrap()
}

#[test]
fn a_whole_file_keeps_its_anchor_lines() {
    let whole = expand("{{#include listing.rs}}");
    assert_eq!(
        whole,
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/include/listing.rs"),
        )
        .unwrap()
        .trim_end()
    );
}

#[test]
fn an_anchor_selects_its_lines_without_any_marker() {
    assert_eq!(
        expand("{{#include listing.rs:inner}}"),
        "    println!(\"inner\");"
    );
    assert_eq!(
        expand("{{#include listing.rs:body}}"),
        "fn body() -> io::Result<()> {\n    println!(\"inner\");\n    Ok(())\n}"
    );
}

#[test]
fn line_ranges_are_one_based_and_inclusive() {
    assert_eq!(expand("{{#include listing.rs:1}}"), "use std::io;");
    assert_eq!(
        expand("{{#include listing.rs:3:4}}"),
        "fn body() -> io::Result<()> {\n    // ANCHOR: inner"
    );
    assert_eq!(
        expand("{{#include listing.rs:11:}}"),
        "    body().unwrap();\n}"
    );
    assert_eq!(
        expand("{{#include listing.rs::2}}"),
        "use std::io;\n// ANCHOR: body"
    );
}

#[test]
fn rustdoc_include_hides_the_rest_and_drops_markers() {
    let hidden = expand("{{#rustdoc_include listing.rs:inner}}");
    let expected = [
        "# use std::io;",
        "# fn body() -> io::Result<()> {",
        "    println!(\"inner\");",
        "#     Ok(())",
        "# }",
        "# fn main() {",
        "#     body().unwrap();",
        "# }",
    ];
    assert_eq!(hidden, expected.join("\n"));
    let ranged = expand("{{#rustdoc_include listing.rs:3:3}}");
    assert!(
        ranged.starts_with("# use std::io;\n# // ANCHOR: body\nfn body()"),
        "{ranged}"
    );
}

#[test]
fn escaped_and_foreign_links_are_left_alone() {
    assert_eq!(
        expand("\\{{#include listing.rs}}"),
        "{{#include listing.rs}}"
    );
    assert_eq!(expand("{{#title Not ours}}"), "{{#title Not ours}}");
}

#[test]
fn a_missing_file_or_anchor_is_an_error_naming_it() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/include");
    let err = build_script::expand("{{#include nope.rs}}", &base, 0).unwrap_err();
    assert!(err.contains("nope.rs"), "{err}");
    let err = build_script::expand("{{#include listing.rs:nope}}", &base, 0).unwrap_err();
    assert!(err.contains("no anchor `nope`"), "{err}");
}

#[test]
fn a_missing_program_output_is_a_placeholder_not_an_error() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/include");
    let text = build_script::expand("{{#include output/not-yet.txt}}", &base, 0).unwrap();
    assert!(text.contains("run scripts/regen-output.sh"), "{text}");
}

#[test]
fn an_anchor_without_its_end_is_an_error() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/include");
    let err =
        build_script::expand("{{#include unterminated.rs:open}}", &base, 0).unwrap_err();
    assert!(err.contains("anchor `open` has no ANCHOR_END"), "{err}");
}
