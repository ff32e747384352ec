//! Every ```rust block of the book, compiled and run (see build.rs).
//! A failing test is named after its chapter file and section:
//! `ch00_environment_sect_<heading>_line_<n>`.

include!(concat!(env!("OUT_DIR"), "/skeptic-tests.rs"));
