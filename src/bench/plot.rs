//! SVG charts of a run, drawn with plotters from the records alone, so that
//! a committed JSON file redraws the same charts.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use uring_book::bench::point::{self, Point};
use uring_book::bench::record::Record;
use uring_book::bench::stats::Spread;

/// A named line of (x, y) points, each y the median of its runs, with the
/// lowest and highest run where there were several.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// (x, lowest, highest) of each point that ran more than once.
    pub ranges: Vec<(f64, f64, f64)>,
}

/// A line chart with a logarithmic x axis (depths and connection counts grow
/// by factors) and a linear y axis from zero.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let highest = series.iter().flat_map(|s| s.ranges.iter().map(|r| r.2));
    let y_max = points
        .map(|p| p.1)
        .chain(highest)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..x_max).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| human(*y))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = color_of(&s.name, i);
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(
            s.points
                .iter()
                .map(|&p| Circle::new(p, 4, ShapeStyle::from(&color).filled())),
        )?;
        // The spread of the runs: a bar from the lowest to the highest.
        chart.draw_series(s.ranges.iter().map(|&(x, lo, hi)| {
            PathElement::new(vec![(x, lo), (x, hi)], ShapeStyle::from(&color))
        }))?;
    }
    // The legend goes where the lines are not: upper left above rising lines,
    // upper right above falling ones.
    let falling = series
        .first()
        .and_then(|s| Some(s.points.first()?.1 > s.points.last()?.1))
        .unwrap_or(false);
    let corner = if falling {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::UpperLeft
    };
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// One color per engine, the same in every chart; distinct on white.
fn color_of(name: &str, index: usize) -> RGBAColor {
    const ENGINES: [(&str, RGBColor); 17] = [
        ("std", RGBColor(0x4e, 0x79, 0xa7)),
        ("threads", RGBColor(0xf2, 0x8e, 0x2b)),
        ("io_uring", RGBColor(0xe1, 0x57, 0x59)),
        ("io_uring+fixed", RGBColor(0x76, 0xb7, 0xb2)),
        ("io_uring+eager", RGBColor(0xff, 0x9d, 0xa7)),
        ("io_uring+pairs", RGBColor(0xba, 0xb0, 0xac)),
        ("io_uring+triples", RGBColor(0x8c, 0x8c, 0x3c)),
        ("io_uring+fixed-file", RGBColor(0x3b, 0x8a, 0x86)),
        ("io_uring+fixed-bufs", RGBColor(0xa0, 0xcb, 0xe8)),
        ("io_uring+sqpoll", RGBColor(0x9c, 0x75, 0x5f)),
        ("fio-io_uring", RGBColor(0x59, 0xa1, 0x4f)),
        ("fio-psync", RGBColor(0xb0, 0x7a, 0xa1)),
        ("tokio-uring", RGBColor(0xe1, 0x57, 0x59)),
        ("tokio-uring+coop", RGBColor(0xed, 0xc9, 0x48)),
        ("tokio", RGBColor(0x4e, 0x79, 0xa7)),
        ("std-threads", RGBColor(0xf2, 0x8e, 0x2b)),
        ("uring-multishot", RGBColor(0x59, 0xa1, 0x4f)),
    ];
    match ENGINES.iter().find(|(n, _)| *n == name) {
        Some((_, c)) => c.to_rgba(),
        None => Palette99::pick(index).to_rgba(),
    }
}

/// 12000 as `12k`, 1500000 as `1.5M`.
pub fn human(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{}M", trim(v / 1e6)),
        a if a >= 1e3 => format!("{}k", trim(v / 1e3)),
        _ => trim(v),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Lines of `y` against queue depth, one per engine, for one workload:
/// the median of each point's runs, with their range.
fn by_engine(
    points: &[Point],
    workload: &str,
    y: impl Fn(&Point) -> Option<Spread>,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for p in points.iter().filter(|p| p.workload() == workload) {
        let Some(value) = y(p) else { continue };
        let x = p.depth() as f64;
        let s = match series.iter().position(|s| s.name == p.engine()) {
            Some(i) => &mut series[i],
            None => {
                series.push(Series {
                    name: p.engine().to_string(),
                    points: Vec::new(),
                    ranges: Vec::new(),
                });
                series.last_mut().expect("just pushed")
            }
        };
        s.points.push((x, value.median));
        if value.runs > 1 {
            s.ranges.push((x, value.min, value.max));
        }
    }
    series
}

/// Every chart the records allow, written to `dir`; returns the file names.
pub fn write_all(records: &[Record], dir: &Path) -> anyhow::Result<Vec<String>> {
    let points = point::points(records);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut chart = |file: &str, title: &str, x: &str, y: &str, series: Vec<Series>| {
        if series.is_empty() {
            return Ok::<_, anyhow::Error>(());
        }
        line_chart(&dir.join(file), title, x, y, &series)?;
        written.push(file.to_string());
        Ok(())
    };
    let depth = "requests in flight (queue depth, threads)";
    for (workload, what) in [
        ("rand-read-direct", "random 4 KiB O_DIRECT reads"),
        ("rand-read-cached", "random 4 KiB reads from the page cache"),
    ] {
        let iops = by_engine(&points, workload, |p| Some(p.ops()));
        chart(
            &format!("{workload}-iops.svg"),
            &format!("IOPS, {what}"),
            depth,
            "IOPS",
            iops,
        )?;
        // Latency: the main engines only, p50 and p99 apart (they differ by
        // orders of magnitude); io_uring's variants are in the tables.
        let main = [
            "std",
            "threads",
            "io_uring",
            "io_uring+eager",
            "fio-io_uring",
            "fio-psync",
        ];
        for (p, pick) in [("p50", 50), ("p99", 99)] {
            // A percentile's median over the runs; no range, the tables have it.
            let mut latency = by_engine(&points, workload, |p| {
                let v = if pick == 50 { p.p50() } else { p.p99() };
                Spread::of(v)
            });
            latency.retain(|s| main.contains(&s.name.as_str()));
            let title = format!("{p} latency, {what}");
            let file = format!("{workload}-{p}.svg");
            chart(&file, &title, depth, "microseconds", latency)?;
        }
    }
    for size in [64u64, 4096] {
        let echo: Vec<Point> = points
            .iter()
            .filter(|p| p.workload() == "echo" && p.size() == size)
            .cloned()
            .collect();
        let conns = "connections";
        let msgs = by_engine(&echo, "echo", |p| Some(p.ops()));
        let title = format!("Echo throughput, {size} B messages");
        chart(
            &format!("echo-{size}-throughput.svg"),
            &title,
            conns,
            "messages/s",
            msgs,
        )?;
        let cpu = by_engine(&echo, "echo", |p| p.cpu());
        let title = format!("Server CPU time per message, {size} B messages");
        chart(
            &format!("echo-{size}-cpu.svg"),
            &title,
            conns,
            "microseconds",
            cpu,
        )?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(human(12000.0), "12k");
        assert_eq!(human(1_500_000.0), "1.5M");
        assert_eq!(human(3.25), "3.2");
        assert_eq!(human(0.0), "0");
    }

    #[test]
    fn a_chart_is_an_svg_with_its_title_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        let series = [Series {
            name: "io_uring".into(),
            points: vec![(1.0, 10.0), (32.0, 90.0)],
            ranges: vec![(32.0, 80.0, 95.0)],
        }];
        line_chart(&path, "IOPS", "depth", "IOPS", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("IOPS") && svg.contains("io_uring"));
    }
}
