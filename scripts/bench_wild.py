#!/usr/bin/env python3
"""Wild-corpus benchmark for `hbi extract`: signals that need no ground truth.

Reads the manifest written by scripts/fetch-wild-corpus ($HBI_WILD_DIR/manifest.tsv: package,
version, path, sha256, pages), runs `hbi extract FILE --json --pages --progress=none` on every PDF
with a per-file timeout over N workers, and prints markdown:

* a table per package and a total row: files, refused (exit 2), crashes (signal or another nonzero
  exit), timeouts, pages, extraction seconds, pages/s, books with an index, the deepest index,
  books with an index deeper than 3, siblings in sorted order, locator support, ToC pages in
  non-decreasing order, and recall against poppler: books whose last pages carry an "Index"
  heading (pdftotext -layout) and how many of them HBI gave an index;
* the worst books per signal, so a human can look.

Signals:
  depth       len(path) of the deepest index row (every real index: <= 3).
  siblings    share of consecutive sibling pairs (same index_name, same parent path, in output
              order) whose terms are in order under a loose collation: NFKD, accents dropped,
              casefolded, leading non-alphanumeric symbols ignored, other symbols read as
              spaces; in order word by word, letter by letter or in ASCII case order; a term
              and its extension ("accidentals", "accidentals and key"), and two terms with
              the same first word, in either order. Printed indexes that are not alphabetical
              at all (Bible books in canonical order) still count as out of order.
  support     share of (row, page range) locators whose pages (first..last, at most 10) contain
              the row's term loosely: at least half of the words of the last path element (alnum
              runs of >= 2 characters, casefolded, accents dropped, stop words out) occur in the
              page's text (HBI's own --pages text, all non-alphanumerics removed, so line breaks
              and hyphenation do not matter). Locators outside the book or inside the index's own
              pages count as unsupported. Rows without words (e.g. "@") are not counted.
  garbled     share of index rows whose term still holds dot leaders (". . .") or a locator
              followed by a backslash command (two columns read as one line).
  beyond      share of printed numeric locators greater than the page count (doc.sty code-line
              numbers taken for pages, or misparsed numbers).
  toc_order   share of consecutive ToC pairs (both with a page) with page[i+1] >= page[i].
  recall      of the books whose last max(10, 15%) pages have a line that is exactly an index
              heading ("Index", "General Index", "Index of Commands", "D Concept index", ...),
              the share where HBI found an index.

Standard library only, plus poppler's pdftotext.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

STOP = {
    "the", "of", "and", "in", "for", "to", "an", "on", "at", "by", "with", "see", "also", "or",
    "as", "is", "from", "vs", "der", "die", "das", "und", "von", "le", "la", "les", "de", "des",
    "du", "et",
}

# An index heading, alone on its line: "Index", "INDEX", "General Index", "Concept index",
# "Index of Commands", "Appendix D Function and variable index", "12 Index", plus a few
# non-English ones.
_HEAD_WORD = r"[A-Za-z][\w'’&/-]*"
INDEX_HEADING = re.compile(
    r"^"
    r"(?:(?:Appendix|Anhang|Annexe|Chapter|Part)\s+)?(?:(?:[A-Z]|[0-9]{1,3}|[IVXLC]{1,6})(?:\.[0-9]{1,3})*[.:]?\s+)?"
    r"(?P<head>"
    r"(?:" + _HEAD_WORD + r"\s+){0,5}(?:[Ii]ndex|INDEX)|Indexes|INDEXES|Indices"
    r"|(?:Index|INDEX)\s+(?:of|to|des|der|du)\s+(?:" + _HEAD_WORD + r"\s*){1,5}"
    r"|Stichwortverzeichnis|[A-Z][a-z]+register|Indice(?:\s+analitico)?|Índice(?:\s+\w+)?"
    r")"
    r"$"
)
# Words that show a line is prose or a ToC line, not a heading.
_PROSE_START = re.compile(r"(?:the|see|using|in|on|of|an?|this|our|its|your|and|with|to)\b", re.I)
_NOT_HEADING = re.compile(r"\.{3,}|\b(?:this|the|see|in the|is|are|was|for)\b\s*$", re.I)


def fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    return s.casefold()


def collation_key(term: str, casefold: bool = True) -> str:
    """Word-by-word key: accents dropped, casefolded, leading symbols dropped, other symbols
    read as spaces."""
    s = unicodedata.normalize("NFKD", term)
    s = "".join(c for c in s if not unicodedata.combining(c))
    if casefold:
        s = s.casefold()
    i = 0
    while i < len(s) and not s[i].isalnum():
        i += 1
    return " ".join("".join(c if c.isalnum() else " " for c in s[i:]).split())


def _le(x: str, y: str) -> bool:
    n = min(len(x), len(y))
    return x[:n] <= y[:n]


def in_order(a: str, b: str) -> bool:
    """Loose collation: a may precede b word by word, letter by letter or in ASCII case order
    (makeindex sorts "\\@LLLast" before "\\@LLast"); a term and its extension may come in
    either order ("accidentals and key", "accidentals"), and so may terms with the same first
    word (`key@display` sort keys: "\\tkzClip: options" before "\\tkzClip[...]")."""
    ka, kb = collation_key(a), collation_key(b)
    if _le(ka, kb) or _le(ka.replace(" ", ""), kb.replace(" ", "")):
        return True
    if ka.split()[:1] == kb.split()[:1]:
        return True
    return _le(collation_key(a, casefold=False), collation_key(b, casefold=False))


_WORD = re.compile(r"[^\W_]+")


def term_words(term: str) -> list[str]:
    words = [w for w in _WORD.findall(fold(term)) if len(w) >= 2]
    kept = [w for w in words if w not in STOP]
    return kept or words


def page_blob(text: str) -> str:
    return "".join(_WORD.findall(fold(text)))


def is_index_heading(line: str) -> bool:
    line = " ".join(line.split())
    if not line or len(line) > 60 or _NOT_HEADING.search(line):
        return False
    m = INDEX_HEADING.match(line)
    if not m:
        return False
    head = m.group("head")
    # A heading starts with a capital ("Concept index"), never with prose ("the index").
    return head[0].isupper() and not _PROSE_START.match(head)


def find_index_heading(pdf: str, pages: int, timeout: float) -> tuple[int | None, str | None]:
    """(page, line) of the first index heading in the last max(10, 15%) pages, poppler only."""
    if pages <= 0:
        return None, None
    k = min(pages, max(10, math.ceil(pages * 0.15)))
    first = pages - k + 1
    try:
        out = subprocess.run(
            ["pdftotext", "-layout", "-q", "-f", str(first), "-l", str(pages), pdf, "-"],
            capture_output=True, timeout=timeout, check=False,
        ).stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, None
    pages_text = out.split("\f")
    for i, page_text in enumerate(pages_text):
        lines = page_text.splitlines()
        for j, line in enumerate(lines):
            # -layout keeps two-column lines together; a heading stands alone or beside blanks.
            cells = re.split(r"\s{4,}", line.strip())
            for c, cell in enumerate(cells):
                if not is_index_heading(cell):
                    continue
                # "Index      12": a contents line, not a heading.
                if c + 1 < len(cells) and re.fullmatch(r"[\divxlcIVXLC]+", cells[c + 1]):
                    continue
                # The heading must open index-like text: lines ending in a locator.
                after = lines[j + 1:] + (pages_text[i + 1].splitlines()
                                         if i + 1 < len(pages_text) else [])
                after = [ln for ln in after if ln.strip()][:30]
                hits = sum(1 for ln in after
                           if _LOCATOR_END.search(" ".join(ln.split()))
                           or any(_LOCATOR_END.search(cl) for cl in re.split(r"\s{4,}", ln.strip())))
                if hits >= 5:
                    return first + i, cell.strip()
    return None, None


_LOCATOR_END = re.compile(r"\S.*?[\s,.]\s*(?:\d{1,4}|[ivxlc]{1,6})(?:[-–]\d{1,4})?\*?$")


# A term that still holds dot leaders, or a locator followed by the next column's command.
_GARBLED = re.compile(r"(?:\. ){2,}|\.{3,}|\d[,–-]?\s+\\[A-Za-z@]")


def analyse(doc: dict) -> dict:
    """The ground-truth-free signals of one extraction."""
    rows = doc.get("index") or []
    toc = doc.get("toc") or []
    n_pages = doc.get("page_count") or 0
    texts = {p.get("number"): p.get("text") or "" for p in doc.get("pages") or []}
    blobs: dict[int, str] = {}

    def blob(p: int) -> str:
        if p not in blobs:
            blobs[p] = page_blob(texts.get(p, ""))
        return blobs[p]

    index_pages = set()
    for ix in doc.get("indices") or []:
        pp = ix.get("physical_pages") or []
        if len(pp) == 2 and all(isinstance(x, int) for x in pp):
            index_pages.update(range(pp[0], pp[1] + 1))

    r: dict = {"entries": len(rows), "indices": len(doc.get("indices") or []),
               "toc_entries": len(toc)}
    # depth
    deepest = max(rows, key=lambda e: len(e.get("path") or []), default=None)
    r["max_depth"] = len(deepest["path"]) if deepest else 0
    r["deepest_path"] = deepest["path"] if deepest and r["max_depth"] > 3 else None
    r["rows_deeper_than_3"] = sum(1 for e in rows if len(e.get("path") or []) > 3)

    # siblings in order
    last: dict[tuple, str] = {}
    pairs = ok = 0
    bad_examples = []
    for e in rows:
        path = e.get("path") or []
        if not path:
            continue
        key = (e.get("index_name"), tuple(path[:-1]))
        term = path[-1]
        if key in last:
            pairs += 1
            if in_order(last[key], term):
                ok += 1
            elif len(bad_examples) < 5:
                bad_examples.append([list(key[1]), last[key], term])
        last[key] = term
    r["sibling_pairs"] = pairs
    r["sibling_ok"] = ok
    r["siblings_in_order"] = ok / pairs if pairs else None
    r["sibling_examples"] = bad_examples

    # locator support
    loc = sup = 0
    unsupported = []
    for e in rows:
        path = e.get("path") or []
        if not path:
            continue
        words = term_words(path[-1])
        if not words:
            continue
        for pr in e.get("pages") or []:
            if not pr or pr[0] is None:
                continue
            a = pr[0]
            b = pr[1] if len(pr) > 1 and pr[1] is not None else a
            loc += 1
            good = False
            if 1 <= a <= n_pages and a not in index_pages:
                for p in range(a, min(b, a + 9, n_pages) + 1):
                    bl = blob(p)
                    hits = sum(1 for w in words if w in bl)
                    if hits * 2 >= len(words):
                        good = True
                        break
            if good:
                sup += 1
            elif len(unsupported) < 5:
                unsupported.append([path, [a, b]])
    garbled = []
    printed = beyond = 0
    for e in rows:
        path = e.get("path") or []
        if path and _GARBLED.search(path[-1]):
            garbled.append(path)
        for pr in e.get("printed") or []:
            if pr.isdigit():
                printed += 1
                beyond += int(pr) > n_pages
    r["garbled_rows"] = len(garbled)
    r["garbled_examples"] = garbled[:5]
    r["printed_numeric"] = printed
    r["printed_beyond_book"] = beyond
    r["locators"] = loc
    r["locators_supported"] = sup
    r["locator_support"] = sup / loc if loc else None
    r["unsupported_examples"] = unsupported
    r["hbi_index_support_rate"] = doc.get("index_support_rate")

    # ToC order
    pages = [t.get("page") for t in toc if isinstance(t.get("page"), int)]
    tp = max(len(pages) - 1, 0)
    tok = sum(1 for x, y in zip(pages, pages[1:]) if y >= x)
    r["toc_pairs"] = tp
    r["toc_ok"] = tok
    r["toc_order"] = tok / tp if tp else None
    r["toc_source"] = doc.get("toc_source")
    r["index_names"] = [ix.get("name") for ix in doc.get("indices") or []]
    r["index_pages"] = [ix.get("physical_pages") for ix in doc.get("indices") or []]
    r["warnings"] = (doc.get("warnings") or [])[:5]
    return r


def run_one(task: dict) -> dict:
    pdf, hbi, timeout = task["file"], task["hbi"], task["timeout"]
    res = {k: task[k] for k in ("package", "path", "file", "manifest_pages")}
    t0 = time.monotonic()
    try:
        p = subprocess.run([hbi, "extract", pdf, "--json", "--pages", "--progress=none"],
                           capture_output=True, timeout=timeout, check=False)
        res["seconds"] = time.monotonic() - t0
        rc = p.returncode
        res["rc"] = rc
        if rc == 0:
            res["status"] = "ok"
        elif rc == 2:
            res["status"] = "refused"
        else:
            res["status"] = "crash"
        if rc != 0:
            res["stderr"] = p.stderr.decode("utf-8", "replace")[-600:]
    except subprocess.TimeoutExpired:
        res["seconds"] = time.monotonic() - t0
        res["rc"] = None
        res["status"] = "timeout"
        p = None
    doc = None
    if res["status"] == "ok":
        try:
            doc = json.loads(p.stdout)
        except ValueError as err:
            res["status"] = "crash"
            res["stderr"] = f"bad JSON: {err}"
    res["page_count"] = (doc or {}).get("page_count") or task["manifest_pages"]
    if doc is not None:
        res.update(analyse(doc))
        if task.get("save_dir"):
            out = Path(task["save_dir"], task["package"], task["path"] + ".json")
            out.parent.mkdir(parents=True, exist_ok=True)
            doc.pop("pages", None)
            out.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    hp, hl = find_index_heading(pdf, res["page_count"] or 0, timeout)
    res["heading_page"], res["heading_line"] = hp, hl
    res["has_index"] = bool(res.get("entries"))
    return res


def fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def summarise(books: list[dict]) -> dict:
    ok = [b for b in books if b["status"] == "ok"]
    idx = [b for b in ok if b.get("has_index")]
    pairs = sum(b.get("sibling_pairs", 0) for b in idx)
    in_order = sum(b.get("sibling_ok", 0) for b in idx)
    sups = [b["locator_support"] for b in idx if b.get("locator_support") is not None]
    locs = sum(b.get("locators", 0) for b in idx)
    supl = sum(b.get("locators_supported", 0) for b in idx)
    tpairs = sum(b.get("toc_pairs", 0) for b in ok)
    tok = sum(b.get("toc_ok", 0) for b in ok)
    rows = sum(b.get("entries", 0) for b in idx)
    garbled = sum(b.get("garbled_rows", 0) for b in idx)
    printed = sum(b.get("printed_numeric", 0) for b in idx)
    beyond = sum(b.get("printed_beyond_book", 0) for b in idx)
    head = [b for b in books if b.get("heading_page")]
    found = [b for b in head if b.get("has_index")]
    secs = sum(b["seconds"] for b in books)
    pages = sum(b.get("page_count") or 0 for b in books)
    return {
        "files": len(books),
        "refused": sum(b["status"] == "refused" for b in books),
        "crash": sum(b["status"] == "crash" for b in books),
        "timeout": sum(b["status"] == "timeout" for b in books),
        "pages": pages,
        "seconds": secs,
        "pages_per_s": pages / secs if secs else None,
        "with_index": len(idx),
        "max_depth": max((b.get("max_depth", 0) for b in idx), default=0),
        "deeper_than_3": sum(b.get("max_depth", 0) > 3 for b in idx),
        "siblings_pooled": in_order / pairs if pairs else None,
        "siblings_median": statistics.median(
            [b["siblings_in_order"] for b in idx if b.get("siblings_in_order") is not None] or [0])
        if idx else None,
        "support_median": statistics.median(sups) if sups else None,
        "support_pooled": supl / locs if locs else None,
        "garbled": garbled / rows if rows else None,
        "beyond_book": beyond / printed if printed else None,
        "toc_order": tok / tpairs if tpairs else None,
        "with_heading": len(head),
        "heading_found": len(found),
        "recall": len(found) / len(head) if head else None,
        "index_no_heading": sum(1 for b in idx if not b.get("heading_page")),
    }


COLS = [
    ("files", "files"), ("refused", "refused"), ("crash", "crash"), ("timeout", "timeout"),
    ("pages", "pages"), ("seconds", "s"), ("pages_per_s", "pages/s"),
    ("with_index", "with index"), ("max_depth", "max depth"), ("deeper_than_3", "depth>3"),
    ("siblings_pooled", "siblings in order"), ("siblings_median", "siblings median"),
    ("support_median", "support median"), ("support_pooled", "support pooled"),
    ("garbled", "garbled rows"), ("beyond_book", "locators > last page"),
    ("toc_order", "ToC order"), ("with_heading", "Index heading"),
    ("heading_found", "…with HBI index"), ("recall", "recall"),
    ("index_no_heading", "index, no heading"),
]


def short(b: dict) -> str:
    p = b["path"]
    for pre in ("usr/share/doc/texlive-doc/", "usr/share/doc/"):
        if p.startswith(pre):
            p = p[len(pre):]
            break
    return f"{b['package']}:{p}"


def report(books: list[dict], wall: float, hbi: str, jobs: int, worst: int) -> str:
    out = []
    out.append(f"# Wild corpus: `{hbi}`, {jobs} jobs\n")
    out.append("| package | " + " | ".join(h for _, h in COLS) + " |")
    out.append("|---|" + "---|" * len(COLS))
    pkgs = sorted({b["package"] for b in books})
    for pkg in pkgs + ["**total**"]:
        sel = books if pkg == "**total**" else [b for b in books if b["package"] == pkg]
        s = summarise(sel)
        cells = [fmt(s[k], 1 if k in ("seconds", "pages_per_s") else 3) for k, _ in COLS]
        out.append(f"| {pkg} | " + " | ".join(cells) + " |")
    s = summarise(books)
    pages = s["pages"]
    out.append("")
    out.append(f"Speed: {pages} pages in {s['seconds']:.1f} s of extraction summed over files = "
               f"**{fmt(s['pages_per_s'], 1)} pages/s** per worker; wall clock {wall:.1f} s "
               f"(extraction + poppler heading scan, {jobs} jobs) = {pages / wall:.1f} pages/s.")
    out.append("")
    fl = [
        ("no crash", s["crash"] == 0),
        ("no timeout", s["timeout"] == 0),
        ("no index deeper than 3", s["deeper_than_3"] == 0),
        ("siblings in order >= 0.97", (s["siblings_pooled"] or 0) >= 0.97),
        ("median locator support >= 0.85", (s["support_median"] or 0) >= 0.85),
        ("recall >= 0.95", (s["recall"] or 0) >= 0.95),
        ("speed > 1000 pages/s", (s["pages_per_s"] or 0) > 1000),
    ]
    out.append("Floors: " + ", ".join(f"{n}: {'PASS' if ok else 'FAIL'}" for n, ok in fl))
    out.append("")

    def section(title, rows, render):
        out.append(f"## {title}\n")
        if not rows:
            out.append("(none)\n")
            return
        for b in rows[:worst]:
            out.append(f"- `{short(b)}` {render(b)}")
        if len(rows) > worst:
            out.append(f"- … {len(rows) - worst} more")
        out.append("")

    bad = [b for b in books if b["status"] in ("crash", "timeout")]
    section("Crashes and timeouts", bad, lambda b: f"{b['status']} rc={b.get('rc')} "
            f"{b['seconds']:.1f}s {(b.get('stderr') or '').strip().splitlines()[-1:] }")
    ref = [b for b in books if b["status"] == "refused"]
    section("Refused (exit 2)", ref, lambda b: f"{(b.get('stderr') or '').strip()[-200:]!r}")
    idx = [b for b in books if b.get("has_index")]
    section("Deepest indexes", sorted([b for b in idx if b["max_depth"] > 3],
                                      key=lambda b: -b["max_depth"]),
            lambda b: f"depth {b['max_depth']} ({b['rows_deeper_than_3']} rows > 3), "
                      f"e.g. {b['deepest_path']}")
    section("Siblings out of order (lowest share)",
            sorted([b for b in idx if b.get("siblings_in_order") is not None
                    and b["siblings_in_order"] < 1], key=lambda b: b["siblings_in_order"]),
            lambda b: f"{b['siblings_in_order']:.3f} of {b['sibling_pairs']} pairs, "
                      f"e.g. {b['sibling_examples'][:2]}")
    section("Lowest locator support",
            sorted([b for b in idx if b.get("locator_support") is not None
                    and b["locator_support"] < 1], key=lambda b: b["locator_support"]),
            lambda b: f"{b['locator_support']:.3f} of {b['locators']} (HBI's own "
                      f"{fmt(b.get('hbi_index_support_rate'))}), e.g. "
                      f"{b['unsupported_examples'][:2]}")
    section("Garbled terms (leaders or a next column's command left in the term)",
            sorted([b for b in idx if b.get("garbled_rows")],
                   key=lambda b: -b["garbled_rows"] / max(b["entries"], 1)),
            lambda b: f"{b['garbled_rows']} of {b['entries']} rows, e.g. "
                      f"{b['garbled_examples'][:2]}")
    section("Printed locators beyond the last page (code-line numbers read as pages?)",
            sorted([b for b in idx if b.get("printed_numeric")
                    and b["printed_beyond_book"] / b["printed_numeric"] > 0.2],
                   key=lambda b: -b["printed_beyond_book"] / b["printed_numeric"]),
            lambda b: f"{b['printed_beyond_book']} of {b['printed_numeric']} numeric locators "
                      f"> {b.get('page_count')} pages")
    section("ToC pages out of order",
            sorted([b for b in books if b.get("toc_order") is not None and b["toc_order"] < 1],
                   key=lambda b: b["toc_order"]),
            lambda b: f"{b['toc_order']:.3f} of {b['toc_pairs']} pairs ({b.get('toc_source')})")
    section("Missed: an Index heading in the last pages but no index from HBI",
            sorted([b for b in books if b.get("heading_page") and not b.get("has_index")],
                   key=lambda b: -(b.get("page_count") or 0)),
            lambda b: f"{b.get('page_count')} pages, heading {b['heading_line']!r} "
                      f"on page {b['heading_page']} ({b['status']})")
    section("Index found but no Index heading in the last pages (check: false index?)",
            sorted([b for b in idx if not b.get("heading_page")],
                   key=lambda b: -b.get("entries", 0)),
            lambda b: f"{b['entries']} rows, indices {b.get('index_names')} "
                      f"at {b.get('index_pages')}")
    section("Slowest", sorted(books, key=lambda b: -b["seconds"]),
            lambda b: f"{b['seconds']:.2f}s for {b.get('page_count')} pages")
    return "\n".join(out)


def default_hbi() -> str:
    if os.environ.get("HBI_BIN"):
        return os.environ["HBI_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/hbi-target"))
    for cand in (f"{target}/release/hbi", f"{target}/debug/hbi"):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("hbi") or "hbi"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    wild = os.environ.get("HBI_WILD_DIR", os.path.expanduser("~/.cache/hbi-wild"))
    ap.add_argument("--manifest", default=f"{wild}/manifest.tsv")
    ap.add_argument("--hbi", default=None, help="hbi binary (default $HBI_BIN, then "
                    "$CARGO_TARGET_DIR/release/hbi, then debug)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=0, help="first N files (after --only)")
    ap.add_argument("--only", default=None, help="regex on package:path")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per file")
    ap.add_argument("--json", default=None, help="write per-book results here")
    ap.add_argument("--save-dir", default=None,
                    help="keep each book's HBI JSON (without page text) under this folder")
    ap.add_argument("--worst", type=int, default=15, help="books listed per signal")
    a = ap.parse_args()
    hbi = a.hbi or default_hbi()
    manifest = Path(a.manifest)
    if not manifest.exists():
        print(f"no manifest at {manifest}: run scripts/fetch-wild-corpus", file=sys.stderr)
        return 1
    root = manifest.parent / "pdf"
    tasks = []
    for line in manifest.read_text().splitlines()[1:]:
        pkg, ver, path, _sha, pages = line.split("\t")
        if a.only and not re.search(a.only, f"{pkg}:{path}"):
            continue
        tasks.append({"package": pkg, "path": path, "file": str(root / pkg / path),
                      "manifest_pages": int(pages or 0), "hbi": hbi, "timeout": a.timeout,
                      "save_dir": a.save_dir})
    if a.limit:
        tasks = tasks[: a.limit]
    # Big books first, so the pool is not left waiting on one at the end.
    tasks.sort(key=lambda t: -t["manifest_pages"])
    t0 = time.monotonic()
    books = []
    with cf.ProcessPoolExecutor(max_workers=a.jobs) as ex:
        futs = [ex.submit(run_one, t) for t in tasks]
        for i, f in enumerate(cf.as_completed(futs), 1):
            books.append(f.result())
            if sys.stderr.isatty() or i % 50 == 0 or i == len(futs):
                print(f"\r{i}/{len(futs)} files, {time.monotonic() - t0:.0f}s", end="",
                      file=sys.stderr, flush=True)
    print(file=sys.stderr)
    wall = time.monotonic() - t0
    books.sort(key=lambda b: (b["package"], b["path"]))
    print(report(books, wall, hbi, a.jobs, a.worst))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"hbi": hbi, "wall_seconds": wall,
                                            "total": summarise(books), "books": books},
                                           ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
