//! Ask the kernel for a ring, and say why if it refuses.
use io_uring::IoUring;

fn main() {
    let ring = match IoUring::new(8) {
        Ok(ring) => ring,
        Err(err) => {
            // EPERM, ENOSYS or ENOMEM, each with its cause and remedy.
            eprintln!(
                "error: {}",
                uring_book::diagnose::explain_setup_failure(&err)
            );
            std::process::exit(1);
        }
    };
    let params = ring.params();
    println!("io_uring_setup gave a ring with");
    println!("  {} submission queue entries", params.sq_entries());
    println!("  {} completion queue entries", params.cq_entries());
    println!("  IORING_FEAT_NODROP: {}", params.is_feature_nodrop());
    println!("  IORING_FEAT_FAST_POLL: {}", params.is_feature_fast_poll());
}
