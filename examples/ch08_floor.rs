//! What exercise 8 says on a kernel without multishot receive: its startup
//! check, handed the opcodes that a Linux 5.19 kernel's probe reports.
use io_uring::opcode;
use uring_book::echo::requirements::{first_missing, missing_message};

fn main() {
    // 5.19 knows every opcode up to IORING_OP_URING_CMD; IORING_OP_SEND_ZC,
    // and multishot receive with it, came in 6.0.
    let probe_5_19 = |code: u8| code <= opcode::UringCmd16::CODE;
    let need = first_missing(probe_5_19).expect("5.19 lacks something");
    // What `cargo run -- 8` prints there, on stderr, before exiting with 1.
    println!("error: {}", missing_message(need, "5.19.0"));
}
