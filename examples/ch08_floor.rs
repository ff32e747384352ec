//! What exercise 8 says on a kernel without multishot receive: its startup
//! check, handed what a Linux 5.19 kernel answers for each row of the table
//! of features (the versions in the table decide).
use uring_book::echo::requirements::{
    missing_message, newest, presence_of_release, CHAPTER,
};
use uring_book::features;

fn main() {
    let presence = presence_of_release((5, 19));
    let support = features::chapter_support(CHAPTER, &presence);
    let row = newest(&support.missing).expect("5.19 lacks what 6.0 brought");
    // What `cargo run -- 8` prints there, on stderr, before exiting with 1.
    println!(
        "error: {}",
        missing_message(row, "5.19.0", support.missing.len())
    );
}
