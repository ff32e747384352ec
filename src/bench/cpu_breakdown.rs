//! Where an echo server's CPU time goes, from a `perf record` profile of
//! the server alone: each sampled function is put in one of four parts, so
//! that the reader sees which part an I/O interface can shrink (the last
//! but one) and which part no interface can (the first).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The parts of a server's CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Part {
    /// The kernel's TCP/IP stack, netfilter where it is loaded, and the
    /// copies of the payload between user memory and socket buffers.
    TcpIp,
    /// Scheduling, waking, interrupts, timers and lock waits.
    Scheduler,
    /// What the interface costs: epoll or io_uring, system call entry and
    /// exit, descriptor lookups, and everything in user space.
    Interface,
    /// The rest of the kernel: memory allocation, accounting, and what the
    /// rules below do not name.
    Other,
}

impl Part {
    pub const ALL: [Part; 4] =
        [Part::TcpIp, Part::Scheduler, Part::Interface, Part::Other];

    pub fn title(self) -> &'static str {
        match self {
            Part::TcpIp => "kernel TCP/IP, netfilter, payload copies",
            Part::Scheduler => "scheduler, interrupts, locks",
            Part::Interface => "epoll or io_uring, system calls, user space",
            Part::Other => "other kernel work (memory and the rest)",
        }
    }
}

/// Name prefixes of the kernel's networking code (checked after the
/// interface's, so that `tcp_poll` counts as polling).
const TCP_IP: &[&str] = &[
    "tcp",
    "__tcp",
    "ip_",
    "__ip",
    "ipv4_",
    "ipv6_",
    "ip6_",
    "inet",
    "__inet",
    "sk_",
    "__sk_",
    "sock_",
    "__sock",
    "skb",
    "__skb",
    "kfree_skb",
    "__kfree_skb",
    "consume_skb",
    "__alloc_skb",
    "alloc_skb",
    "napi",
    "__napi",
    "net_",
    "__net",
    "netif",
    "__netif",
    "process_backlog",
    "loopback",
    "dev_",
    "__dev_",
    "validate_xmit",
    "sch_",
    "__qdisc",
    "qdisc",
    "nf_",
    "__nf",
    "nft_",
    "ipt_",
    "ipv4_conntrack",
    "hash_conntrack",
    "csum",
    "eth_",
    "fib_",
    "dst_",
    "__dst",
    "neigh",
    "raw_v4",
    "bbr_",
    "cubictcp",
    "lock_sock",
    "release_sock",
    "__release_sock",
    "_copy_to_iter",
    "_copy_from_iter",
    "copy_to_user",
    "copy_from_user",
    "rep_movs",
    "copy_user",
    "simple_copy_to_iter",
    "skb_copy",
    "__check_object_size",
    "check_heap_object",
    "__virt_addr_valid",
    "do_softirq",
    "__do_softirq",
    "handle_softirqs",
    "__local_bh_enable",
    "local_bh_enable",
    "security_socket",
    "security_sock",
    "apparmor_socket",
    "bpf_",
    "__cgroup_bpf",
    "__siphash",
    "siphash",
    "page_frag",
    "__page_frag",
    "ktime_get_with_offset",
];

/// Scheduling, interrupts, timers and locks.
const SCHEDULER: &[&str] = &[
    "schedule",
    "__schedule",
    "pick_",
    "enqueue_",
    "dequeue_",
    "update_curr",
    "update_load",
    "update_cfs",
    "update_rq",
    "try_to_wake_up",
    "ttwu_",
    "wake_up",
    "__wake_up",
    "select_task_rq",
    "finish_task_switch",
    "__switch_to",
    "switch_mm",
    "psi_",
    "set_next_entity",
    "put_prev",
    "sched_",
    "__sched",
    "native_sched_clock",
    "irq",
    "__irq",
    "sysvec_",
    "asm_sysvec",
    "asm_common_interrupt",
    "common_interrupt",
    "handle_",
    "hrtimer",
    "__hrtimer",
    "tick_",
    "timerqueue",
    "_raw_spin",
    "__raw_spin",
    "raw_spin",
    "queued_spin",
    "native_queued_spin",
    "__pv_queued_spin",
    "__raw_callee_save___pv_queued_spin",
    "pv_",
    "rcu_",
    "__rcu",
    "native_write_msr",
    "native_read_msr",
    "native_apic",
    "x2apic",
    "default_wake_function",
    "autoremove_wake_function",
    "avg_vruntime",
    "reweight",
    "account_",
    "task_tick",
    "check_preempt",
    "resched",
    "wakeup_preempt",
    "place_entity",
    "native_irq",
    "read_tsc",
    "ktime_get",
    "clockevents",
    "lapic",
    "kvm_",
    "__kvm",
    "llist_",
    "check_cfs",
    "cpuacct",
    "cgroup_rstat",
    "mutex_spin",
    "osq_",
];

/// The interface: readiness or completion machinery, system calls, files.
const INTERFACE: &[&str] = &[
    "ep_",
    "do_epoll",
    "epoll",
    "__x64_sys_epoll",
    "io_",
    "__io_",
    "__do_sys_io_uring",
    "__x64_sys_io_uring",
    "tctx_",
    "task_work",
    "__x64_sys_",
    "__sys_",
    "do_syscall",
    "entry_SYSCALL",
    "syscall_",
    "exit_to_user_mode",
    "irqentry_exit_to_user_mode",
    "__fget",
    "fget",
    "fput",
    "__fput",
    "fdget",
    "__fdget",
    "sock_from_file",
    "tcp_poll",
    "sock_poll",
    "__pollwait",
    "pollwake",
    "ep_poll",
    "mutex_lock",
    "mutex_unlock",
    "__mutex",
    "fpregs",
    "restore_fpregs",
    "switch_fpu",
    "x64_sys_call",
    "__audit",
    "audit_",
    "fsnotify",
    "__fsnotify",
    "ksys_",
    "vfs_",
    "rw_verify_area",
    "import_ubuf",
    "import_single_range",
    "__import_iovec",
    "iov_iter",
    "__get_user",
    "__put_user",
    "_copy_from_user",
];

/// The part a sampled function belongs to; `kernel` is perf's `[k]` tag.
pub fn classify(symbol: &str, kernel: bool) -> Part {
    if !kernel {
        return Part::Interface; // user space: the runtime, the event loop, libc
    }
    let starts = |list: &[&str]| list.iter().any(|p| symbol.starts_with(p));
    if starts(INTERFACE) {
        Part::Interface
    } else if starts(TCP_IP) {
        Part::TcpIp
    } else if starts(SCHEDULER) {
        Part::Scheduler
    } else {
        Part::Other
    }
}

/// One server's profile, summed by part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub engine: String,
    pub conns: u32,
    pub size: u64,
    /// Percent of the server's samples, by part, in the order of Part::ALL.
    pub shares: Vec<(Part, f64)>,
    /// The hottest functions of the Other part, for whoever refines the rules.
    pub unnamed: Vec<(String, f64)>,
    /// Server CPU time per message of the same run, in microseconds.
    pub cpu_us_per_msg: Option<f64>,
}

impl Breakdown {
    pub fn share(&self, part: Part) -> f64 {
        self.shares
            .iter()
            .find(|(p, _)| *p == part)
            .map_or(0.0, |(_, s)| *s)
    }
}

/// Lines of `perf report --stdio --no-children --sort sym` such as
/// `    19.42%  [k] __pv_queued_spin_lock_slowpath`, as (share, kernel, name).
pub fn parse_report(text: &str) -> Vec<(f64, bool, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (pct, rest) = l.trim().split_once('%')?;
            let pct: f64 = pct.trim().parse().ok()?;
            let rest = rest.trim();
            let (tag, name) = rest.split_once(' ')?;
            Some((pct, tag == "[k]", name.trim().to_string()))
        })
        .collect()
}

/// Sums a parsed report by part; shares are rescaled to the samples that
/// were attributed to a function at all.
pub fn summarize(
    engine: &str,
    conns: u32,
    size: u64,
    lines: &[(f64, bool, String)],
) -> Breakdown {
    let total: f64 = lines.iter().map(|l| l.0).sum::<f64>().max(1e-9);
    let mut shares: Vec<(Part, f64)> = Part::ALL.iter().map(|&p| (p, 0.0)).collect();
    let mut unnamed = Vec::new();
    for (pct, kernel, name) in lines {
        let part = classify(name, *kernel);
        if let Some(entry) = shares.iter_mut().find(|(p, _)| *p == part) {
            entry.1 += 100.0 * pct / total;
        }
        if part == Part::Other && unnamed.len() < 12 {
            unnamed.push((name.clone(), *pct));
        }
    }
    Breakdown {
        engine: engine.to_string(),
        conns,
        size,
        shares,
        unnamed,
        cpu_us_per_msg: None,
    }
}

/// `perf report` of a recorded file, by function.
pub fn report(data: &Path) -> anyhow::Result<Vec<(f64, bool, String)>> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", "sym", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .context("run perf report")?;
    Ok(parse_report(&String::from_utf8_lossy(&out.stdout)))
}

/// Starts `perf record` on process `pid` for `seconds`; wait for the child.
pub fn record(
    pid: u32,
    data: &Path,
    seconds: f64,
) -> anyhow::Result<std::process::Child> {
    Command::new("perf")
        .args(["record", "-q", "-o"])
        .arg(data)
        .args([
            "-p",
            &pid.to_string(),
            "--",
            "sleep",
            &format!("{seconds:.2}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start perf record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_fall_into_parts() {
        assert_eq!(classify("tcp_sendmsg_locked", true), Part::TcpIp);
        assert_eq!(classify("__nf_conntrack_find_get", true), Part::TcpIp);
        assert_eq!(classify("_copy_to_iter", true), Part::TcpIp);
        assert_eq!(classify("tcp_poll", true), Part::Interface);
        assert_eq!(classify("ep_poll_callback", true), Part::Interface);
        assert_eq!(classify("io_submit_sqes", true), Part::Interface);
        assert_eq!(classify("entry_SYSCALL_64", true), Part::Interface);
        assert_eq!(classify("finish_task_switch.isra.0", true), Part::Scheduler);
        assert_eq!(
            classify("__pv_queued_spin_lock_slowpath", true),
            Part::Scheduler
        );
        assert_eq!(classify("kmem_cache_alloc_node_noprof", true), Part::Other);
        assert_eq!(
            classify("tokio::runtime::task::raw::poll", false),
            Part::Interface
        );
    }

    #[test]
    fn a_report_sums_to_one_hundred_percent() {
        let text = "# Samples: 4K of event 'cpu-clock'\n#\n\
                    \x20   30.00%  [k] tcp_sendmsg_locked\n\
                    \x20   10.00%  [k] schedule\n\
                    \x20   10.00%  [.] main\n\
                    \x20    5.00%  [k] kmem_cache_free\n\n";
        let lines = parse_report(text);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], (10.0, false, "main".to_string()));
        let b = summarize("tokio", 100, 64, &lines);
        assert!((b.share(Part::TcpIp) - 54.545).abs() < 0.01);
        let sum: f64 = b.shares.iter().map(|s| s.1).sum();
        assert!((sum - 100.0).abs() < 1e-9);
        assert_eq!(b.unnamed, [("kmem_cache_free".to_string(), 5.0)]);
    }
}
