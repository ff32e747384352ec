//! The linked copy timed against `std::fs::copy` (copy_file_range(2) on
//! Linux) and a plain read/write loop, in one run: the same file, page cache
//! cold and warm, every method several times in an order that rotates, then
//! the median and the range of each, and a verdict that calls a difference
//! inside the ranges a tie (`stats::compare`, chapter 6's rule).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use uring_book::bench::stats::{compare, Spread, Verdict};
use uring_book::bench::{file, machine};
use uring_book::ex7_chains_deadlines_cancel as ex7;
use uring_book::ex7_linked_copy::{self as copy, BLOCK_KIB, PAIRS};

#[derive(clap::Args)]
pub struct Args {
    /// Size of the file copied, in MiB
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub size_mib: u32,
    /// Timed runs of each method in each cache state
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeats: u32,
    /// Where to put the files [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Bytes per read and per write of the loop and of the linked copy, in KiB
    #[arg(long, default_value_t = BLOCK_KIB,
          value_parser = clap::value_parser!(u32).range(4..=65536))]
    pub block_kib: u32,
    /// Linked pairs in flight
    #[arg(long, default_value_t = PAIRS, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pairs: u32,
}

/// The ways to copy a file that the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Linked read→write pairs through io_uring (this chapter).
    Linked,
    /// `std::fs::copy`: copy_file_range(2), the kernel copies page to page.
    StdCopy,
    /// `read` into a buffer, `write_all` it out, one block at a time.
    ReadWrite,
}

pub const METHODS: [Method; 3] = [Method::Linked, Method::StdCopy, Method::ReadWrite];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Linked => "io_uring linked pairs",
            Method::StdCopy => "std::fs::copy",
            Method::ReadWrite => "read/write loop",
        }
    }
}

/// Whether the source is in the page cache when a copy starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Cold,
    Warm,
}

// ANCHOR: copy_with
/// Copies `src` to a new `dst` with `method`; returns the bytes copied.
pub fn copy_with(
    method: Method,
    src: &Path,
    dst: &Path,
    block: usize,
    pairs: usize,
) -> anyhow::Result<u64> {
    match method {
        Method::Linked => {
            let source = copy::open_source(src)?;
            let dest = copy::create_destination(dst, &source)?;
            let mut ring = ex7::ring((2 * pairs).next_power_of_two() as u32)?;
            let size = source.metadata()?.len();
            Ok(copy::copy_linked(&mut ring, &source, &dest, size, block, pairs)?.bytes)
        }
        Method::StdCopy => Ok(std::fs::copy(src, dst)?),
        Method::ReadWrite => {
            let (mut from, mut to) = (File::open(src)?, File::create(dst)?);
            let (mut buf, mut total) = (vec![0u8; block], 0);
            loop {
                let n = match from.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => other?,
                };
                if n == 0 {
                    return Ok(total);
                }
                to.write_all(&buf[..n])?;
                total += n as u64;
            }
        }
    }
}
// ANCHOR_END: copy_with

/// The runs of one method in one cache state, in MiB/s.
#[derive(Debug, Clone)]
pub struct Series {
    pub method: Method,
    pub cache: Cache,
    pub mib_s: Vec<f64>,
}

impl Series {
    /// The median and range of the runs, as every benchmark of the book
    /// compares them.
    pub fn spread(&self) -> Spread {
        Spread::of(self.mib_s.iter().copied()).unwrap_or(Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
            runs: 0,
        })
    }

    pub fn median(&self) -> f64 {
        self.spread().median
    }

    pub fn range(&self) -> (f64, f64) {
        let s = self.spread();
        (s.min, s.max)
    }
}

// ANCHOR: verdict
/// One sentence comparing two series with the book's one tie rule,
/// `stats::compare`: a ratio of medians only when the ranges are apart.
pub fn verdict(a: &Series, b: &Series) -> String {
    let (x, y) = (a.method.name(), b.method.name());
    let (fast, slow) = match compare(&a.spread(), &b.spread()) {
        Verdict::Higher => (a, b),
        Verdict::Lower => (b, a),
        Verdict::OneRun => return format!("{x} and {y}: no verdict from one run each"),
        Verdict::Tie if a.range().0 > b.range().1 || b.range().0 > a.range().1 => {
            return format!("{x} and {y}: a tie (the medians are within 2 %)");
        }
        Verdict::Tie => return format!("{x} and {y}: a tie (the ranges overlap)"),
    };
    format!(
        "{} is {:.2}x as fast as {}",
        fast.method.name(),
        fast.median() / slow.median(),
        slow.method.name()
    )
}
// ANCHOR_END: verdict

pub fn run(args: &Args) -> anyhow::Result<()> {
    let size = args.size_mib as u64 * 1024 * 1024;
    let (block, pairs) = (args.block_kib as usize * 1024, args.pairs as usize);
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = uring_book::cleanup::tempdir_in(&base, "uring-book-copy")
        .with_context(|| format!("cannot make a directory in {}", base.display()))?;
    let fs = machine::file_system(dir.path())?;
    println!("machine: {}", machine::Machine::this().describe());
    println!("source and copy: {} each, in", copy::human(size));
    println!("  {}", fs.describe());
    let runs = if args.repeats == 1 { "run" } else { "runs" };
    println!(
        "blocks of {} KiB, {pairs} linked pairs in flight; {} {runs} of each method",
        block / 1024,
        args.repeats
    );
    println!("per cache state, in an order that rotates from run to run");
    let src = dir.path().join("source");
    let dst = dir.path().join("copy");
    copy::write_test_file(&src, size)?;
    file::evict(&src)?;
    let kept = cached_share(&src)?;
    if kept > 0.5 {
        println!(
            "note: {:.0} % of the source stayed in memory when evicted (tmpfs keeps \
             every page):\n  the cold runs below are warm",
            kept * 100.0
        );
    }

    let mut series: Vec<Series> = [Cache::Cold, Cache::Warm]
        .iter()
        .flat_map(|&cache| {
            METHODS.map(|method| Series {
                method,
                cache,
                mib_s: vec![],
            })
        })
        .collect();
    for rep in 0..args.repeats as usize {
        for cache in [Cache::Cold, Cache::Warm] {
            for i in 0..METHODS.len() {
                let method = METHODS[(i + rep) % METHODS.len()];
                match cache {
                    Cache::Cold => file::evict(&src)?,
                    Cache::Warm => file::warm(&src)?,
                }
                let start = Instant::now();
                let bytes = copy_with(method, &src, &dst, block, pairs)
                    .with_context(|| format!("{} of {}", method.name(), src.display()))?;
                let secs = start.elapsed().as_secs_f64();
                if rep == 0 {
                    let v = copy::verify(&src, &dst)?;
                    anyhow::ensure!(v.equal() && bytes == size, "{}: {v}", method.name());
                }
                // Removing the copy drops its dirty pages: no run writes the
                // previous run's copy to the disk.
                std::fs::remove_file(&dst)?;
                let s = series
                    .iter_mut()
                    .find(|s| s.method == method && s.cache == cache)
                    .expect("a series for every method and cache state");
                s.mib_s.push(size as f64 / (1 << 20) as f64 / secs);
            }
        }
    }
    print!("{}", table(&series));
    for cache in [Cache::Cold, Cache::Warm] {
        let of = |m| {
            series
                .iter()
                .find(|s| s.cache == cache && s.method == m)
                .unwrap()
        };
        let linked = of(Method::Linked);
        println!(
            "verdict, {}:",
            if cache == Cache::Cold { "cold" } else { "warm" }
        );
        println!("  {}", verdict(linked, of(Method::StdCopy)));
        println!("  {}", verdict(linked, of(Method::ReadWrite)));
    }
    println!("every copy was verified (size and CRC-32) on its first run");
    Ok(())
}

/// The share of `path`'s pages that are in memory, from mincore(2).
fn cached_share(path: &Path) -> anyhow::Result<f64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: a read-only mapping of a file we hold open, unmapped below.
    let addr = unsafe {
        let (prot, flags) = (libc::PROT_READ, libc::MAP_SHARED);
        libc::mmap(std::ptr::null_mut(), len, prot, flags, file.as_raw_fd(), 0)
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error()).context("mmap");
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: `resident` has one byte per page of the mapping.
    let rc = unsafe { libc::mincore(addr, len, resident.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above, used no more.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(err).context("mincore");
    }
    let kept = resident.iter().filter(|&&b| b & 1 == 1).count();
    Ok(kept as f64 / resident.len() as f64)
}

fn table(series: &[Series]) -> String {
    let mut out = format!(
        "\n{:<24} {:>20}   {:>20}\n{:<24} {:>8} {:>11}   {:>8} {:>11}\n",
        "",
        "cold cache, MiB/s",
        "warm cache, MiB/s",
        "method",
        "median",
        "min-max",
        "median",
        "min-max"
    );
    for method in METHODS {
        out += &format!("{:<24}", method.name());
        for (i, cache) in [Cache::Cold, Cache::Warm].into_iter().enumerate() {
            let s = series
                .iter()
                .find(|s| s.method == method && s.cache == cache)
                .unwrap();
            let (min, max) = s.range();
            let gap = if i == 0 { "" } else { "  " };
            out += &format!(
                "{gap} {:>8.0} {:>11}",
                s.median(),
                format!("{min:.0}-{max:.0}")
            );
        }
        out += "\n";
    }
    out + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(method: Method, v: &[f64]) -> Series {
        Series {
            method,
            cache: Cache::Warm,
            mib_s: v.to_vec(),
        }
    }

    #[test]
    fn median_and_range() {
        let s = series(Method::Linked, &[3.0, 1.0, 2.0, 10.0]);
        assert_eq!(s.median(), 2.5);
        assert_eq!(s.range(), (1.0, 10.0));
    }

    #[test]
    fn overlapping_ranges_are_a_tie_apart_ones_a_ratio() {
        let a = series(Method::Linked, &[100.0, 110.0, 120.0]);
        let b = series(Method::StdCopy, &[115.0, 130.0, 140.0]);
        assert!(verdict(&a, &b).contains("a tie"));
        let c = series(Method::StdCopy, &[200.0, 220.0, 240.0]);
        assert_eq!(
            verdict(&a, &c),
            "std::fs::copy is 2.00x as fast as io_uring linked pairs"
        );
        // Apart, but by less than 2 %: a tie too, as in chapter 6.
        let close = series(Method::Linked, &[110.0, 111.0, 112.0]);
        let d = series(Method::StdCopy, &[112.5, 113.0, 113.5]);
        assert!(verdict(&close, &d).ends_with("a tie (the medians are within 2 %)"));
        let one = series(Method::ReadWrite, &[500.0]);
        assert!(verdict(&a, &one).ends_with("no verdict from one run each"));
    }
}
