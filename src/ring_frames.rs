//! Pictures of a ring at one moment, drawn from what its shared memory held.
//!
//! `cargo run -- 1 --raw --svg DIR` takes a [`Snapshot`] of the hand-built
//! ring of `ex1_raw_ring` after each step and draws it: the SQ ring's index
//! array, the SQE array and the CQ ring with its CQEs, each head and tail
//! under the entry it points at. Every number in a frame comes from the
//! snapshot; what changed since the previous one is drawn in orange, and the
//! frame's last two lines say who changed it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What one SQE slot holds, as far as the picture cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqeSlot {
    pub opcode: u8,
    pub user_data: u64,
}

/// What one CQE slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqeSlot {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

/// The ring's shared memory at one moment. A slot whose bytes are all zero
/// (never written since io_uring_setup) is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// A short name, used in the file name: `ring-after-{name}.svg`.
    pub name: String,
    /// The frame's title.
    pub title: String,
    pub sq_head: u32,
    pub sq_tail: u32,
    pub cq_head: u32,
    pub cq_tail: u32,
    /// The index array, one entry per SQ position.
    pub sq_array: Vec<u32>,
    pub sqes: Vec<Option<SqeSlot>>,
    pub cqes: Vec<Option<CqeSlot>>,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 420;
/// Where the boxes start, right of the row labels.
const GRID_X: u32 = 190;
const GRID_W: u32 = 510;
const TEXT: &str = "#222";
const FAINT: &str = "#777";
const LIVE: &str = "#3b78b0";
const LIVE_FILL: &str = "#dbe9f7";
const CHANGED: &str = "#c05a00";

const SQ_Y: u32 = 92;
const SQE_Y: u32 = 178;
const CQ_Y: u32 = 262;
const BOX_H: u32 = 40;

/// The names of the opcodes the book's rings carry.
fn opcode_name(opcode: u8) -> String {
    match opcode {
        0 => "NOP".into(),
        22 => "READ".into(),
        23 => "WRITE".into(),
        n => format!("op {n}"),
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Is ring position `pos` between head and tail (queued, not yet consumed)?
/// `Some(false)`: it was filled once and consumed since. `None`: never used.
fn state(pos: u32, head: u32, tail: u32, entries: u32) -> Option<bool> {
    // A ring never holds more than `entries`; the cap keeps a torn read cheap.
    let queued = tail.wrapping_sub(head).min(entries);
    let live = (0..queued).any(|i| head.wrapping_add(i) % entries == pos);
    let used = tail >= entries || pos < tail;
    match (live, used) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    }
}

/// x of the left edge and the width of box `i` of `n` across the grid.
fn cell(i: u32, n: u32) -> (u32, u32) {
    let step = GRID_W / n.max(1);
    (GRID_X + i * step, step - 6)
}

struct Frame {
    out: String,
}

impl Frame {
    fn text(&mut self, x: u32, y: u32, size: u32, color: &str, extra: &str, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x}" y="{y}" font-size="{size}" fill="{color}"{extra}>{}</text>"#,
            esc(text)
        );
    }

    /// A rectangle; `style` holds its rx, fill and stroke attributes.
    fn rect(&mut self, (x, y): (u32, u32), (w, h): (u32, u32), style: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" {style}/>"#
        );
    }

    /// A box of a ring or array: `lines` centred in it, its index top left.
    /// `kind` is `state`'s: queued, consumed or never used.
    fn slot(
        &mut self,
        (x, w): (u32, u32),
        y: u32,
        index: u32,
        kind: Option<bool>,
        changed: bool,
        lines: &[String],
    ) {
        let (fill, stroke, color) = match kind {
            Some(true) => (LIVE_FILL, LIVE, TEXT),
            Some(false) => ("#eeeeee", "#aaa", FAINT),
            None => ("#ffffff", "#ccc", FAINT),
        };
        let (stroke, sw) = if changed { (CHANGED, 2) } else { (stroke, 1) };
        let style =
            format!(r#"rx="4" fill="{fill}" stroke="{stroke}" stroke-width="{sw}""#);
        self.rect((x, y), (w, BOX_H), &style);
        self.text(x + 4, y + 12, 10, FAINT, "", &index.to_string());
        let first = if lines.len() > 1 { y + 22 } else { y + 26 };
        for (k, line) in lines.iter().enumerate() {
            let size = if lines.len() > 1 { 12 } else { 15 };
            self.text(
                x + w / 2,
                first + 13 * k as u32,
                size,
                color,
                r#" text-anchor="middle""#,
                line,
            );
        }
    }

    /// A head or tail: a triangle at the entry it points at, and its label.
    fn marker(&mut self, pos: u32, n: u32, y: u32, up: bool, label: &str, changed: bool) {
        let (x, w) = cell(pos, n);
        let cx = x + w / 2;
        let color = if changed { CHANGED } else { TEXT };
        let points = if up {
            format!("{},{} {},{} {},{}", cx - 6, y + 8, cx + 6, y + 8, cx, y)
        } else {
            format!("{},{} {},{} {},{}", cx - 6, y, cx + 6, y, cx, y + 8)
        };
        let _ = writeln!(self.out, r#"<polygon points="{points}" fill="{color}"/>"#);
        // About 7 px a character: keep the label inside the card.
        let width = 7 * label.chars().count() as u32;
        let weight = if changed {
            r#" font-weight="bold""#
        } else {
            ""
        };
        if cx + 10 + width < WIDTH - 10 {
            self.text(cx + 10, y + 8, 13, color, weight, label);
        } else {
            let extra = format!(r#" text-anchor="end"{weight}"#);
            self.text(cx - 10, y + 8, 13, color, &extra, label);
        }
    }
}

/// "SQ tail = 1, you write it", or "SQ tail = 1 (was 0), ..." when it moved.
fn index_label(
    name: &str,
    value: u32,
    before: Option<u32>,
    writer: &str,
) -> (String, bool) {
    match before {
        Some(old) if old != value => {
            (format!("{name} = {value} (was {old}), {writer}"), true)
        }
        _ => (format!("{name} = {value}, {writer}"), false),
    }
}

/// The frame of `now` as an SVG document; `before` is the previous snapshot,
/// whose differences from `now` are drawn in orange and listed at the bottom.
pub fn svg(now: &Snapshot, before: Option<&Snapshot>) -> String {
    let mut f = Frame { out: String::new() };
    let _ = writeln!(
        f.out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="14">"#
    );
    let _ = writeln!(f.out, "<title>{}</title>", esc(&now.title));
    let _ = writeln!(
        f.out,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{LIVE}"/></marker></defs>"##
    );
    // The card: opaque and light, so the frame reads in dark themes too.
    f.rect(
        (1, 1),
        (WIDTH - 2, HEIGHT - 2),
        r##"rx="10" fill="#fafafa" stroke="#888""##,
    );
    f.text(20, 30, 16, TEXT, r#" font-weight="bold""#, &now.title);

    let sq_n = now.sq_array.len() as u32;
    let cq_n = now.cqes.len() as u32;
    let sqe_n = now.sqes.len() as u32;

    // Row labels.
    f.text(20, SQ_Y + 18, 14, TEXT, r#" font-weight="bold""#, "SQ ring");
    f.text(20, SQ_Y + 34, 12, FAINT, "", "index array");
    f.text(
        20,
        SQE_Y + 18,
        14,
        TEXT,
        r#" font-weight="bold""#,
        "SQE array",
    );
    f.text(20, SQE_Y + 34, 12, FAINT, "", "64-byte SQEs");
    f.text(20, CQ_Y + 18, 14, TEXT, r#" font-weight="bold""#, "CQ ring");
    f.text(20, CQ_Y + 34, 12, FAINT, "", "16-byte CQEs inline");

    // The SQ ring: the index array, with arrows to the SQE slots it names.
    for pos in 0..sq_n {
        let kind = state(pos, now.sq_head, now.sq_tail, sq_n);
        let value = now.sq_array[pos as usize];
        let changed =
            before.is_some_and(|b| b.sq_array.get(pos as usize) != Some(&value));
        let (x, w) = cell(pos, sq_n);
        let lines = match kind {
            None => vec![String::new()],
            Some(_) => vec![value.to_string()],
        };
        f.slot((x, w), SQ_Y, pos, kind, changed, &lines);
        if kind.is_some() && value < sqe_n {
            let (sx, sw) = cell(value, sqe_n);
            let dash = if kind == Some(true) {
                r#" marker-end="url(#arrow)""#
            } else {
                r#" stroke-dasharray="4 3""#
            };
            let color = if kind == Some(true) { LIVE } else { "#aaa" };
            let _ = writeln!(
                f.out,
                r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="1.5"{dash}/>"#,
                x + w / 2,
                SQ_Y + BOX_H,
                sx + sw / 2,
                SQE_Y - 2
            );
        }
    }
    let was = |pick: fn(&Snapshot) -> u32| before.map(pick);
    let (tail, moved) =
        index_label("SQ tail", now.sq_tail, was(|s| s.sq_tail), "you write it");
    f.marker(now.sq_tail % sq_n, sq_n, SQ_Y - 40, false, &tail, moved);
    let (head, moved) = index_label(
        "SQ head",
        now.sq_head,
        was(|s| s.sq_head),
        "the kernel writes it",
    );
    f.marker(now.sq_head % sq_n, sq_n, SQ_Y - 20, false, &head, moved);

    // The SQE array: slots, not positions; only the index array orders them.
    for slot in 0..sqe_n {
        let sqe = now.sqes[slot as usize];
        let changed = before.is_some_and(|b| b.sqes.get(slot as usize) != Some(&sqe));
        let named = (0..sq_n).find_map(|pos| {
            let kind = state(pos, now.sq_head, now.sq_tail, sq_n)?;
            (now.sq_array[pos as usize] == slot).then_some(kind)
        });
        let kind = sqe.map(|_| named.unwrap_or(false));
        let lines = match sqe {
            None => vec![String::new()],
            Some(s) => vec![
                opcode_name(s.opcode),
                format!("user_data {:#x}", s.user_data),
            ],
        };
        let (x, w) = cell(slot, sqe_n);
        f.slot((x, w), SQE_Y, slot, kind, changed, &lines);
    }

    // The CQ ring: the CQEs themselves live in the ring.
    for pos in 0..cq_n {
        let cqe = now.cqes[pos as usize];
        let changed = before.is_some_and(|b| b.cqes.get(pos as usize) != Some(&cqe));
        let kind = state(pos, now.cq_head, now.cq_tail, cq_n).filter(|_| cqe.is_some());
        let lines = match cqe {
            None => vec![String::new()],
            Some(c) => vec![format!("{:#x}", c.user_data), format!("res {}", c.res)],
        };
        let (x, w) = cell(pos, cq_n);
        f.slot((x, w), CQ_Y, pos, kind, changed, &lines);
    }
    let (head, moved) =
        index_label("CQ head", now.cq_head, was(|s| s.cq_head), "you write it");
    f.marker(
        now.cq_head % cq_n,
        cq_n,
        CQ_Y + BOX_H + 6,
        true,
        &head,
        moved,
    );
    let (tail, moved) = index_label(
        "CQ tail",
        now.cq_tail,
        was(|s| s.cq_tail),
        "the kernel writes it",
    );
    f.marker(
        now.cq_tail % cq_n,
        cq_n,
        CQ_Y + BOX_H + 26,
        true,
        &tail,
        moved,
    );

    // Who changed what since the previous frame.
    let (you, kernel) = match before {
        Some(b) => changes(b, now),
        None => (Vec::new(), Vec::new()),
    };
    let list = |items: &[String]| match items.is_empty() {
        true => "nothing".to_string(),
        false => items.join("; "),
    };
    f.text(
        20,
        HEIGHT - 42,
        14,
        TEXT,
        "",
        &format!("You: {}.", list(&you)),
    );
    f.text(
        20,
        HEIGHT - 20,
        14,
        TEXT,
        "",
        &format!("Kernel: {}.", list(&kernel)),
    );
    f.out.push_str("</svg>\n");
    f.out
}

/// What you and what the kernel changed between two snapshots. You write
/// SQEs, the index array, the SQ tail and the CQ head; the kernel writes
/// CQEs, the CQ tail and the SQ head.
fn changes(before: &Snapshot, now: &Snapshot) -> (Vec<String>, Vec<String>) {
    let mut you = Vec::new();
    let mut kernel = Vec::new();
    for (slot, (old, new)) in before.sqes.iter().zip(&now.sqes).enumerate() {
        if let (Some(s), true) = (new, old != new) {
            you.push(format!(
                "wrote a {} into SQE slot {slot}",
                opcode_name(s.opcode)
            ));
        }
    }
    for (pos, (old, new)) in before.sq_array.iter().zip(&now.sq_array).enumerate() {
        if old != new {
            you.push(format!("array[{pos}] = {new}"));
        }
    }
    let moved = |what: &str, old: u32, new: u32| format!("{what} {old} → {new}");
    if before.sq_tail != now.sq_tail {
        you.push(moved("SQ tail", before.sq_tail, now.sq_tail));
    }
    if before.cq_head != now.cq_head {
        you.push(moved("CQ head", before.cq_head, now.cq_head));
    }
    if before.sq_head != now.sq_head {
        kernel.push(moved("SQ head", before.sq_head, now.sq_head));
    }
    for (pos, (old, new)) in before.cqes.iter().zip(&now.cqes).enumerate() {
        if let (Some(c), true) = (new, old != new) {
            kernel.push(format!("posted a CQE (res {}) at position {pos}", c.res));
        }
    }
    if before.cq_tail != now.cq_tail {
        kernel.push(moved("CQ tail", before.cq_tail, now.cq_tail));
    }
    (you, kernel)
}

/// Writes one frame per snapshot after the first (each drawn against the one
/// before it) into `dir`, as `ring-after-{name}.svg`. Returns the paths.
pub fn write_frames(dir: &Path, snapshots: &[Snapshot]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for pair in snapshots.windows(2) {
        let path = dir.join(format!("ring-after-{}.svg", pair[1].name));
        std::fs::write(&path, svg(&pair[1], Some(&pair[0])))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring that has wrapped: SQ head 5, tail 7 on 4 entries; CQ head 9,
    /// tail 10 on 8, with an error in its CQE.
    fn wrapped() -> Snapshot {
        let mut sqes = vec![None; 4];
        sqes[2] = Some(SqeSlot {
            opcode: 22,
            user_data: 0xbeef,
        });
        sqes[0] = Some(SqeSlot {
            opcode: 0,
            user_data: 7,
        });
        let mut cqes = vec![None; 8];
        cqes[1] = Some(CqeSlot {
            user_data: 0xbeef,
            res: -21,
            flags: 0,
        });
        Snapshot {
            name: "test".into(),
            title: "A <wrapped> ring & more".into(),
            sq_head: 5,
            sq_tail: 7,
            cq_head: 9,
            cq_tail: 10,
            sq_array: vec![0, 2, 0, 1],
            sqes,
            cqes,
        }
    }

    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn a_frame_is_well_formed_svg_on_a_light_card() {
        let svg = svg(&wrapped(), None);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        assert!(root.attribute("width").unwrap().parse::<u32>().unwrap() <= 720);
        let card = doc.descendants().find(|n| n.has_tag_name("rect")).unwrap();
        assert_eq!(card.attribute("fill"), Some("#fafafa"));
        assert_eq!(card.attribute("stroke"), Some("#888"));
        // Special characters of a title are escaped, not dropped.
        assert!(texts(&doc).contains(&"A <wrapped> ring & more".to_string()));
    }

    #[test]
    fn every_number_comes_from_the_snapshot() {
        let svg = svg(&wrapped(), None);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts = texts(&doc);
        for want in [
            "SQ tail = 7, you write it",
            "SQ head = 5, the kernel writes it",
            "CQ head = 9, you write it",
            "CQ tail = 10, the kernel writes it",
            "READ",
            "user_data 0xbeef",
            "0xbeef",
            "res -21",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not in {texts:?}");
        }
        // Positions 1 and 2 (5 & 3, 6 & 3) are queued: an arrow each, to the
        // slots array[1] = 2 and array[2] = 0 name. Position 3 was consumed.
        let arrows: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("line") && n.attribute("marker-end").is_some())
            .collect();
        assert_eq!(arrows.len(), 2);
    }

    #[test]
    fn what_changed_is_said_and_attributed() {
        let before = wrapped();
        let mut now = wrapped();
        now.sq_head = 7;
        now.cq_tail = 12;
        now.cqes[2] = Some(CqeSlot {
            user_data: 1,
            res: 4096,
            flags: 0,
        });
        now.cqes[3] = now.cqes[2];
        let svg = svg(&now, Some(&before));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts = texts(&doc);
        assert!(texts.contains(&"You: nothing.".to_string()), "{texts:?}");
        let kernel = texts.iter().find(|t| t.starts_with("Kernel:")).unwrap();
        assert_eq!(
            kernel,
            "Kernel: SQ head 5 → 7; posted a CQE (res 4096) at position 2; \
             posted a CQE (res 4096) at position 3; CQ tail 10 → 12."
        );
        assert!(texts.contains(&"SQ head = 7 (was 5), the kernel writes it".to_string()));
    }

    #[test]
    fn frames_are_written_one_per_step_after_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut later = wrapped();
        later.name = "later".into();
        let paths = write_frames(dir.path(), &[wrapped(), later]).unwrap();
        assert_eq!(paths, [dir.path().join("ring-after-later.svg")]);
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        roxmltree::Document::parse(&svg).unwrap();
    }
}
