//! Ask the running kernel which operations it knows.
use io_uring::{opcode, register::Probe, IoUring};

fn main() -> anyhow::Result<()> {
    let ring = IoUring::new(2).map_err(uring_book::diagnose::setup)?;
    let mut probe = Probe::new();
    // IORING_REGISTER_PROBE itself needs Linux 5.6; before that, EINVAL.
    ring.submitter().register_probe(&mut probe)?;

    let ops = [
        ("Read (5.6)", opcode::Read::CODE),
        ("Accept (5.5)", opcode::Accept::CODE),
        ("ProvideBuffers (5.7)", opcode::ProvideBuffers::CODE),
        ("SendZc (6.0)", opcode::SendZc::CODE),
        ("FutexWait (6.7)", opcode::FutexWait::CODE),
        ("FixedFdInstall (6.8)", opcode::FixedFdInstall::CODE),
    ];
    for (name, code) in ops {
        let answer = if probe.is_supported(code) {
            "yes"
        } else {
            "no"
        };
        println!("{name:<22} {answer}");
    }
    Ok(())
}
