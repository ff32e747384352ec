//! Every ```rust block of the book, compiled and run (see build.rs).
//! A failing test is named after its chapter file and section:
//! `<chapter file>_sect_<heading>_line_<n>`, for example
//! `appendix_kernel_says_no_sect_eperm_from_io_uring_setup_line_<n>`.

include!(concat!(env!("OUT_DIR"), "/skeptic-tests.rs"));
