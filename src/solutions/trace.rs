//! A small strace for the solutions: runs a program under ptrace(2) and
//! records, in order, every io_uring_enter call it makes and everything it
//! writes to its standard output.
//!
//! `strace -e trace=io_uring_enter` shows the same calls; this module exists so
//! that a solution can make that observation itself and check it. It uses
//! `PTRACE_GET_SYSCALL_INFO` (Linux 5.3), which reads a system call's number,
//! arguments and result the same way on every architecture. Only the
//! program's first thread is traced: the exercises call io_uring_enter from it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};

/// One io_uring_enter call; `Display` prints it as strace does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enter {
    /// The ring's file descriptor.
    pub fd: i32,
    /// SQEs offered to the kernel (`to_submit`).
    pub to_submit: u32,
    /// Completions to wait for (`min_complete`).
    pub min_complete: u32,
    /// `IORING_ENTER_*` flags.
    pub flags: u32,
    /// The last two arguments: a signal mask (or extended argument) and its size.
    pub arg: u64,
    pub arg_size: u64,
    /// What the call returned: SQEs consumed, or `-errno`.
    pub ret: i64,
}

impl std::fmt::Display for Enter {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        const FLAGS: [&str; 5] = [
            "IORING_ENTER_GETEVENTS",
            "IORING_ENTER_SQ_WAKEUP",
            "IORING_ENTER_SQ_WAIT",
            "IORING_ENTER_EXT_ARG",
            "IORING_ENTER_REGISTERED_RING",
        ];
        let mut flags: Vec<String> = (0..FLAGS.len())
            .filter(|bit| self.flags & 1 << bit != 0)
            .map(|bit| FLAGS[bit].to_string())
            .collect();
        let rest = self.flags & !((1 << FLAGS.len()) - 1);
        if rest != 0 {
            flags.push(format!("{rest:#x}"));
        }
        if flags.is_empty() {
            flags.push("0".into());
        }
        let arg = match self.arg {
            0 => "NULL".to_string(),
            a => format!("{a:#x}"),
        };
        write!(
            f,
            "io_uring_enter({}, {}, {}, {}, {arg}, {}) = ",
            self.fd,
            self.to_submit,
            self.min_complete,
            flags.join("|"),
            self.arg_size
        )?;
        match self.ret {
            r if r < 0 => write!(f, "-1 {}", uring_book::system::errno_name(-r as i32)),
            r => write!(f, "{r}"),
        }
    }
}

/// What the traced program did, in the order it did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Enter(Enter),
    /// Bytes written to standard output by one write(2).
    Stdout(Vec<u8>),
}

/// Runs `cmd` to its end under ptrace and returns its io_uring_enter calls and
/// its output, interleaved. A program that fails is an error with its output.
pub fn trace(mut cmd: Command) -> anyhow::Result<Vec<Event>> {
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one system call.
    unsafe {
        cmd.pre_exec(|| match libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the program to trace")?;
    let pid = child.id() as libc::pid_t;
    // The child stops with SIGTRAP once it has exec'ed.
    let status = wait(pid)?;
    if !libc::WIFSTOPPED(status) {
        bail!("the traced program did not start (wait status {status:#x})");
    }
    let options = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;
    // SAFETY: pid is our stopped tracee.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) } != 0 {
        return Err(io::Error::last_os_error()).context("PTRACE_SETOPTIONS");
    }
    let (mut events, mut entry, mut signal) = (Vec::new(), None, 0);
    loop {
        // SAFETY: as above; run to the next system call entry or exit.
        if unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, signal) } != 0 {
            return Err(io::Error::last_os_error()).context("PTRACE_SYSCALL");
        }
        let status = wait(pid)?;
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return match libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                true => Ok(events),
                false => Err(anyhow!(
                    "the traced program failed (wait status {status:#x}); \
                     its output:\n{}",
                    String::from_utf8_lossy(&stdout(&events))
                )),
            };
        }
        signal = 0;
        if libc::WSTOPSIG(status) != libc::SIGTRAP | 0x80 {
            signal = libc::WSTOPSIG(status); // a real signal: deliver it
            continue;
        }
        let info = syscall_info(pid)?;
        match info.op {
            libc::PTRACE_SYSCALL_INFO_ENTRY => {
                // SAFETY: op says which member of the union the kernel filled.
                let e = unsafe { info.u.entry };
                entry = Some((e.nr as i64, e.args));
            }
            libc::PTRACE_SYSCALL_INFO_EXIT => {
                // SAFETY: as above.
                let ret = unsafe { info.u.exit.sval };
                if let Some((nr, args)) = entry.take() {
                    record(pid, nr, args, ret, &mut events)?;
                }
            }
            _ => {}
        }
    }
}

/// Adds the call that just returned to `events`, if it is one we follow.
fn record(
    pid: libc::pid_t,
    nr: i64,
    args: [u64; 6],
    ret: i64,
    events: &mut Vec<Event>,
) -> anyhow::Result<()> {
    if nr == libc::SYS_io_uring_enter {
        events.push(Event::Enter(Enter {
            fd: args[0] as i32,
            to_submit: args[1] as u32,
            min_complete: args[2] as u32,
            flags: args[3] as u32,
            arg: args[4],
            arg_size: args[5],
            ret,
        }));
    } else if nr == libc::SYS_write && args[0] == 1 && ret > 0 {
        events.push(Event::Stdout(read_memory(pid, args[1], ret as usize)?));
    }
    Ok(())
}

/// Everything the program wrote to its standard output.
pub fn stdout(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        if let Event::Stdout(bytes) = event {
            out.extend_from_slice(bytes);
        }
    }
    out
}

/// The io_uring_enter calls alone.
pub fn enters(events: &[Event]) -> Vec<Enter> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Enter(call) => Some(*call),
            Event::Stdout(_) => None,
        })
        .collect()
}

fn wait(pid: libc::pid_t) -> anyhow::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        match unsafe { libc::waitpid(pid, &mut status, 0) } {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()).context("waitpid"),
            _ => return Ok(status),
        }
    }
}

fn syscall_info(pid: libc::pid_t) -> anyhow::Result<libc::ptrace_syscall_info> {
    // SAFETY: plain data; the kernel fills at most `size` bytes of it.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of_val(&info);
    // SAFETY: pid is stopped at a system call; info is `size` bytes.
    let got = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            pid,
            size,
            &mut info as *mut libc::ptrace_syscall_info,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error())
            .context("PTRACE_GET_SYSCALL_INFO (needs Linux 5.3)");
    }
    Ok(info)
}

/// `len` bytes at `addr` in the tracee's memory.
fn read_memory(pid: libc::pid_t, addr: u64, len: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` is our buffer of `len` bytes; the kernel checks `remote`.
    let got = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if got < 0 {
        return Err(io::Error::last_os_error()).context("process_vm_readv");
    }
    buf.truncate(got as usize);
    Ok(buf)
}
