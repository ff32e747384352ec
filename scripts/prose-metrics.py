#!/usr/bin/env python3
"""Measures how readable each chapter of the book is (issue 13).

For every chapter of book/src (in SUMMARY.md's order) it reports, for the prose
only (fenced code blocks, tables, included files, captions, headings and
images removed; blockquote asides and list items count as prose; the prose a
benchmark generates, included from book/src/bench/*.md, counts as prose of the
chapter that includes it):

  words       words of prose
  avg         average sentence length, in words
  >40         sentences over 40 words
  para>150    paragraphs over 150 words (a list item is a paragraph)
  listing     the longest code listing, in the lines a reader sees: includes
              expanded as build.rs expands them, `# ` hidden lines of Rust
              blocks dropped; blocks that only include program output
              (book/src/output/, book/src/bench/) are output, not listings
  diagrams    images (![...](...) or <img>)

Targets (--check exits 1 and lists every miss): average sentence at most 22
words in every chapter, no listing over 45 lines, at least one diagram in
chapters 1, 2, 4 and 5.

Usage: scripts/prose-metrics.py [--check] [--show] [CHAPTER.md ...]
  --show   also list each sentence over 40 words and paragraph over 150 words
"""
import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "book/src"

MAX_AVERAGE = 22
LONG_SENTENCE = 40
LONG_PARAGRAPH = 150
MAX_LISTING = 45
NEEDS_DIAGRAM = ("ch01", "ch02", "ch04", "ch05")

# Words a period may follow without ending the sentence.
ABBREVIATIONS = {"e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "no.", "fig.", "conn."}


# --- mdBook's include links, as build.rs expands them ---------------------


def anchor_name(line, marker):
    at = line.find(marker)
    if at < 0:
        return None
    m = re.match(r"\s*([A-Za-z0-9_-]+)", line[at + len(marker):])
    return m.group(1) if m else None


def select_anchor(content, anchor, rustdoc):
    lines, inside = [], False
    for line in content.splitlines():
        start, end = anchor_name(line, "ANCHOR:"), anchor_name(line, "ANCHOR_END:")
        if start == anchor:
            inside = True
        elif end == anchor:
            inside = False
        elif start or end:
            pass  # markers of other anchors never reach the page
        elif inside:
            lines.append(line)
        elif rustdoc:
            lines.append("# " + line)
    return "\n".join(lines)


def select_range(content, first, last, rustdoc):
    lines = []
    for i, line in enumerate(content.splitlines()):
        if first <= i < last:
            lines.append(line)
        elif rustdoc:
            lines.append("# " + line)
    return "\n".join(lines)


def parse_range(sel):
    m = re.fullmatch(r"(\d*)(:?)(\d*)", sel)
    if not m or (not m.group(2) and not m.group(1)):
        return None
    a, colon, b = m.groups()
    if not colon:
        n = int(a)
        return max(n - 1, 0), n
    return (max(int(a) - 1, 0) if a else 0), (int(b) if b else 1 << 60)


def expand(text, base, depth=0):
    """mdBook's {{#include}} and {{#rustdoc_include}}, recursively."""
    if depth > 10:
        raise ValueError("includes nested more than 10 deep")
    out, rest = [], text
    while True:
        start = rest.find("{{#")
        if start < 0:
            break
        if start > 0 and rest[start - 1] == "\\":
            out.append(rest[: start - 1] + "{{#")
            rest = rest[start + 3:]
            continue
        length = rest.find("}}", start)
        if length < 0:
            break
        link = rest[start + 3: length].strip()
        out.append(rest[:start])
        out.append(expand_link(link, base, depth) or rest[start: length + 2])
        rest = rest[length + 2:]
    out.append(rest)
    return "".join(out)


def expand_link(link, base, depth):
    kind, _, arg = link.partition(" ")
    if kind not in ("include", "rustdoc_include"):
        return None
    rustdoc = kind == "rustdoc_include"
    name, _, sel = arg.strip().partition(":")
    path = (base / name).resolve()
    try:
        content = path.read_text(encoding="utf-8")
    except OSError:
        return f"(missing {name})"
    if not sel:
        selected = select_range(content, 0, 1 << 60, rustdoc)
    elif parse_range(sel):
        selected = select_range(content, *parse_range(sel), rustdoc)
    else:
        selected = select_anchor(content, sel, rustdoc)
    return expand(selected, path.parent, depth + 1)


# --- Markdown into prose and listings --------------------------------------

FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")
OUTPUT_INCLUDE = re.compile(r"^\s*\{\{#include\s+(output|bench)/[^}]*\}\}\s*$")
GENERATED_PROSE = re.compile(r"^\{\{#include\s+bench/[^}]*\.md:[^}]*\}\}\s*$")


def with_generated_prose(lines, base):
    """The chapter's lines with each include of generated prose (a line of its
    own, outside code blocks) replaced by what it includes, and the chapter's
    line number of every line, for --show."""
    out, numbers, fence = [], [], None
    for number, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if fence:
            if line.strip().startswith(fence):
                fence = None
        elif m:
            fence = m.group(2)
        elif GENERATED_PROSE.match(line):
            for included in expand(line.strip(), base).split("\n"):
                out.append(included)
                numbers.append(number)
            continue
        out.append(line)
        numbers.append(number)
    return out, numbers


def code_blocks(lines):
    """(first line number, info, body lines) of every fenced block."""
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, body, j = m.group(2), m.group(3).strip(), [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        blocks.append((i + 1, info, body))
        i = j + 1
    return blocks


def is_rust(info):
    tokens = [t for t in re.split(r"[^\w-]+", info) if t]
    return bool(tokens) and (tokens[0] == "rust" or all(
        t in ("ignore", "no_run", "should_panic", "edition2021", "noplayground")
        for t in tokens))


def visible_lines(info, body, base):
    """The lines a reader sees of a block, its includes expanded."""
    text = expand("\n".join(body), base)
    lines = text.split("\n")
    if is_rust(info):
        lines = [l for l in lines if not (l.strip().startswith("# ") or l.strip() == "#")]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def blank_out(text, pattern):
    """Replaces each match with as many empty lines as it spanned."""
    return re.sub(pattern, lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def prose_paragraphs(lines, numbers=None):
    """(line number, text) of every paragraph of prose; `numbers` maps each
    line to the chapter's line it comes from."""
    # Captions and images may wrap onto several lines; neither is prose.
    text = blank_out("\n".join(lines), r'<span class="caption">.*?</span>')
    text = blank_out(text, r"!\[[^\]]*\]\([^)]*\)")
    lines = text.split("\n")
    paragraphs, current, start, in_code, fence = [], [], 0, False, ""

    def flush():
        nonlocal current
        text = " ".join(current).strip()
        if text:
            paragraphs.append((start, text))
        current = []

    for index, raw in enumerate(lines):
        number = numbers[index] if numbers else index + 1
        m = FENCE.match(raw)
        if in_code:
            if raw.strip().startswith(fence):
                in_code = False
            continue
        if m:
            flush()
            in_code, fence = True, m.group(2)
            continue
        line = raw.strip()
        if line.startswith(">"):
            # An aside's label ("**Under the hood:**") is a heading, not prose.
            line = re.sub(r"^(>\s?)+", "", line).strip()
            line = re.sub(r"^\*\*[^*]+:\*\*\s*", "", line)
        if (not line or line.startswith("|") or line.startswith("#")
                or line.startswith("{{#") or line.startswith("<span class=\"caption")
                or re.fullmatch(r"!\[[^\]]*\]\([^)]*\)", line)
                or line.startswith("<!--") or line == "---"
                or re.fullmatch(r"\[!\w+\]", line)):
            flush()
            continue
        item = re.match(r"^([-*+]|\d+[.)])\s+", line)
        if item:
            flush()
            line = line[item.end():]
        if not current:
            start = number
        current.append(line)
    flush()
    return paragraphs


def plain(text):
    """Markdown inline syntax removed; inline code becomes one word."""
    text = re.sub(r"(`+)(.+?)\1", " CODE ", text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", text)
    text = re.sub(r"<https?://[^>]+>", " URL ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = text.replace("**", "").replace("*", "")
    return text


def words(text):
    return [w for w in text.split() if re.search(r"\w", w)]


def sentences(paragraph):
    """A paragraph split into sentences: at . ! ? followed by a space, except
    after an abbreviation; the paragraph's end ends its last sentence."""
    found, current = [], []
    for token in plain(paragraph).split():
        current.append(token)
        bare = token.rstrip("\"')]*_")
        if bare.endswith((".", "!", "?")) and bare.lower() not in ABBREVIATIONS \
                and not re.fullmatch(r"[A-Z]\.", bare):
            found.append(" ".join(current))
            current = []
    if current:
        found.append(" ".join(current))
    return [s for s in found if words(s)]


# --- One chapter -------------------------------------------------------------


def measure(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    paragraphs = prose_paragraphs(*with_generated_prose(lines, path.parent))
    all_sentences = []
    long_paragraphs = []
    for number, text in paragraphs:
        n = len(words(plain(text)))
        if n > LONG_PARAGRAPH:
            long_paragraphs.append((number, n, text))
        all_sentences.extend((number, s) for s in sentences(text))
    counts = [len(words(s)) for _, s in all_sentences]
    longest = (0, 0)
    for number, info, body in code_blocks(lines):
        if body and all(OUTPUT_INCLUDE.match(l) or not l.strip() for l in body):
            continue  # program output, not a listing
        seen = len(visible_lines(info, body, path.parent))
        longest = max(longest, (seen, number))
    text = "\n".join(lines)
    diagrams = len(re.findall(r"!\[[^\]]*\]\([^)]*\)", text)) + len(re.findall(r"<img\b", text))
    return {
        "words": sum(counts),
        "sentences": len(counts),
        "average": sum(counts) / len(counts) if counts else 0.0,
        "long_sentences": [(n, len(words(s)), s) for n, s in all_sentences
                           if len(words(s)) > LONG_SENTENCE],
        "long_paragraphs": long_paragraphs,
        "listing": longest,
        "diagrams": diagrams,
    }


def chapters():
    summary = (SRC / "SUMMARY.md").read_text(encoding="utf-8")
    found = [SRC / m for m in re.findall(r"\]\(([^)]+\.md)\)", summary)]
    return [p for p in found if p.exists()]


def misses(path, m):
    name, found = path.name, []
    if m["average"] > MAX_AVERAGE:
        found.append(f"{name}: average sentence {m['average']:.1f} words (target <= {MAX_AVERAGE})")
    seen, line = m["listing"]
    if seen > MAX_LISTING:
        found.append(f"{name}:{line}: listing of {seen} lines (at most {MAX_LISTING})")
    if name.startswith(NEEDS_DIAGRAM) and m["diagrams"] == 0:
        found.append(f"{name}: no diagram (chapters 1, 2, 4 and 5 need one)")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--show", action="store_true", help="list long sentences and paragraphs")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    files = [f.resolve() for f in args.files] or chapters()

    header = f"{'chapter':<38} {'words':>6} {'avg':>5} {'>40':>4} {'para>150':>8} " \
             f"{'listing':>7} {'diagrams':>8}"
    print(header)
    print("-" * len(header))
    failed = []
    for path in files:
        m = measure(path)
        print(f"{path.name:<38} {m['words']:>6} {m['average']:>5.1f} "
              f"{len(m['long_sentences']):>4} {len(m['long_paragraphs']):>8} "
              f"{m['listing'][0]:>7} {m['diagrams']:>8}")
        if args.show:
            for line, n, s in m["long_sentences"]:
                print(f"  {path.name}:{line}: sentence of {n} words: {s}")
            for line, n, _ in m["long_paragraphs"]:
                print(f"  {path.name}:{line}: paragraph of {n} words")
        failed.extend(misses(path, m))
    if args.check:
        for miss in failed:
            print(miss)
        if failed:
            sys.exit(1)


if __name__ == "__main__":
    main()
