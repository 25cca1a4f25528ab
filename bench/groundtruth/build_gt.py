#!/usr/bin/env python3
"""Build ToC / index ground truth for the books in books.json, independently of HBI.

Method (see README.md beside this file):
  * ToC: the PDF outline, read with PyMuPDF (Document.get_toc(simple=True)), pages 1-based physical.
  * Index: poppler's `pdftotext -bbox` word boxes of the index pages named in books.json, then
    this file's own line builder (gutter split into columns, baseline grouping, leader dots removed)
    and a small printed-line parser (indent -> level, trailing locator list, see / see also).
  * Printed locators -> physical pages through the PDF /PageLabels (PyMuPDF Page.get_label) or a
    stated offset.
  * Hand corrections live in <name>/overrides.json and are applied to printed lines (by page and
    exact line text) before parsing, so every correction is visible and reviewable.

Usage: build_gt.py [--pdf-dir DIR] [--only NAME] [--dump-lines NAME]
  DIR holds <name>/book.pdf (default $HBI_GT_DIR or ~/.cache/hbi-groundtruth).
Needs: poppler-utils (pdftotext), PyMuPDF (pip install pymupdf).
"""
import argparse
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import fitz  # PyMuPDF

HERE = Path(__file__).resolve().parent
WORD_RE = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>')
PAGE_RE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)
DOTS_RE = re.compile(r"^[.\u2024\u2026·]+$")
ROMAN = r"[ivxlcdm]+|[IVXLCDM]+"
LOC = rf"(?:[A-Z]?-?\d+|{ROMAN})"
LOCATOR_RE = re.compile(rf"^(?P<a>{LOC})(?:\s*[\u2013\u2014-]+\s*(?P<b>{LOC}))?$")


GROUP_DEFAULT = r"^(?:[A-Z]|Symbols|Numbers|Numerals|\W)$"


def words_of_pages(pdf, first, last):
    out = subprocess.run(["pdftotext", "-bbox", "-f", str(first), "-l", str(last), str(pdf), "-"],
                         check=True, capture_output=True, text=True).stdout
    pages = []
    for m in PAGE_RE.finditer(out):
        words = [(float(a), float(b), float(c), float(d), html.unescape(t))
                 for a, b, c, d, t in WORD_RE.findall(m.group(3))]
        pages.append((float(m.group(1)), float(m.group(2)), words))
    return pages


def split_columns(words, ncols, width):
    """Split words into ncols columns at the widest uncovered x gaps (gutters)."""
    if ncols == 1 or not words:
        return [words]
    ivs = sorted((w[0], w[2]) for w in words)
    merged = []
    for a, b in ivs:
        if merged and a <= merged[-1][1] + 0.5:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    gaps = sorted(((merged[i + 1][0] - merged[i][1], (merged[i][1] + merged[i + 1][0]) / 2)
                   for i in range(len(merged) - 1)), reverse=True)
    cand = [(g, x) for g, x in gaps if width * 0.15 < x < width * 0.85]
    cuts = sorted(x for g, x in cand[:ncols - 1])
    cols = [[] for _ in range(len(cuts) + 1)]
    for w in words:
        cx = w[0]
        k = sum(1 for c in cuts if cx > c)
        cols[k].append(w)
    return cols


def group_lines(words, join_gap=None):
    """Group words into lines by vertical overlap; returns [(x0, y, [words])] top to bottom.
    Small words (sub- and superscripts, height < 0.75 of the median) are attached afterwards to the
    line they overlap most, so that a subscript never starts or joins another line."""
    if not words:
        return []
    hs = sorted(w[3] - w[1] for w in words)
    med = hs[len(hs) // 2]
    normal = [w for w in words if w[3] - w[1] >= 0.75 * med]
    small = [w for w in words if w[3] - w[1] < 0.75 * med]
    lines = []
    for w in sorted(normal, key=lambda w: (w[3], w[0])):
        yc, h = (w[1] + w[3]) / 2, w[3] - w[1]
        for ln in lines:
            if abs(ln["yc"] - yc) < 0.45 * max(h, ln["h"]):
                ln["w"].append(w)
                break
        else:
            lines.append({"yc": yc, "h": h, "y0": w[1], "y1": w[3], "w": [w]})
    for w in small:
        best, score = None, 0.0
        for ln in lines:
            y0 = min(x[1] for x in ln["w"])
            y1 = max(x[3] for x in ln["w"])
            ov = min(y1, w[3]) - max(y0, w[1])
            if ov > score:
                best, score = ln, ov
        if best is None:
            lines.append({"yc": (w[1] + w[3]) / 2, "h": w[3] - w[1], "w": [w]})
        else:
            best["w"].append(w)
    res = []
    for ln in sorted(lines, key=lambda l: l["yc"]):
        ws = sorted(ln["w"], key=lambda w: w[0])
        res.append((ws[0][0], ln["yc"], ws))
    return res


def line_text(ws, join_gap=None):
    """Text of a line: leader dots dropped (leaders replaced by ' \t '), optional re-joining of
    letter-spaced words (gap < join_gap pt)."""
    parts, prev = [], None
    if all(DOTS_RE.match(w[4]) for w in ws):
        return ""
    for w in ws:
        t = w[4]
        if DOTS_RE.match(t) and len(parts) and (prev is None or True):
            if parts and parts[-1] != "\t":
                parts.append("\t")
            prev = w
            continue
        # a leader glued to the term ("find-method.")? keep the text, dots trimmed later
        if join_gap is not None and prev is not None and parts and parts[-1] != "\t" \
                and w[0] - prev[2] < join_gap:
            parts[-1] += t
        else:
            parts.append(t)
        prev = w
    s = " ".join(parts)
    s = re.sub(r"\s*\t\s*", "\t", s)
    # TeX's accented dotless i (U+0131 + combining accent) is the letter i with that accent
    s = unicodedata.normalize("NFC", re.sub("\u0131(?=[\u0300-\u036f])", "i", s))
    return s.strip()


def physical_map(doc, mapping):
    if isinstance(mapping, dict) and "offset" in mapping:
        off = mapping["offset"]
        return lambda lab: (int(lab) + off) if re.fullmatch(r"\d+", lab) else None
    table = {}
    for i in range(doc.page_count):
        lab = doc[i].get_label()
        if lab and lab not in table:
            table[lab] = i + 1
    return lambda lab: table.get(lab)


def parse_locators(tail, phys):
    """'12, 15–17, iv' -> (printed list, physical list) or None if not a locator list."""
    items = [x.strip() for x in re.split(r",\s*", tail.strip().rstrip(",")) if x.strip()]
    if not items:
        return None
    printed, physical = [], []
    for it in items:
        m = LOCATOR_RE.match(it)
        if not m:
            return None
        a, b = m.group("a"), m.group("b") or m.group("a")
        pa, pb = phys(a), phys(b)
        if pa is None or pb is None:
            return None
        printed.append(it.replace("-", "\u2013") if m.group("b") else it)
        physical.append([pa, pb])
    return printed, physical


XREF_RE = {
    "en": (r"see also", r"see"),
    "de": (r"siehe auch", r"siehe"),
    "fr": (r"voir aussi", r"voir"),
    "es": (r"véase también", r"véase"),
    "fi": (r"katso myös", r"katso"),
}


def split_entry(text, phys, lang, style, xref=None, space_locators=False):
    """Printed line -> (term, printed pages, physical pages, see, see_also). Term may be ''."""
    see, see_also = [], []
    also_w, see_w = xref or XREF_RE.get(lang, XREF_RE["en"])
    # cross references: ', see also X' / ', see X' (makeindex, xindy) at the end of a line
    # (a closing parenthesis is cut only when an opening one came before the reference)
    m = re.search(rf"(?:^|[,.]?\s+|\t)(\()?({also_w}|{see_w})\s+(.+?)(?(1)\))$", text)
    # a line that starts with the word and ends in locators is an entry for the word itself
    # ('see (\\see), 1' in an index of commands), not a wrapped reference
    if m and m.start() == 0 and parse_locators(text.rsplit(", ", 1)[-1], phys):
        m = None
    if m and style != "texinfo":
        targets = [t.strip() for t in re.split(r";\s*", m.group(3)) if t.strip()]
        (see_also if m.group(2) == also_w else see).extend(targets)
        text = text[:m.start()].rstrip(" ,\t")
    if "\t" in text:  # leaders: term \t locators
        term, _, tail = text.rpartition("\t")
        loc = parse_locators(tail, phys)
        if loc:
            return term.strip().rstrip(". "), loc[0], loc[1], see, see_also
        return text.replace("\t", " ").strip(), [], [], see, see_also
    loc = parse_locators(text, phys)
    if loc:  # the line is only locators (continuation)
        return "", loc[0], loc[1], see, see_also
    # space separated locator list at the end (ConTeXt: 'functions 7, 29'; long makeindex terms
    # whose leaders were dropped: '\\includegraphics 92, 101, 105')
    if style in ("context", "space") or space_locators:
        m2 = re.match(rf"^(.*?\S)\s+((?:{LOC})(?:[\u2013-]{LOC})?(?:,\s*{LOC}(?:[\u2013-]{LOC})?)*,?)$", text)
        if m2:
            loc = parse_locators(m2.group(2), phys)
            if loc:
                return m2.group(1).rstrip(","), loc[0], loc[1], see, see_also
    # comma separated: take the longest suffix of ', '-separated items that parse as locators
    parts = text.split(", ")
    for k in range(1, len(parts)):
        loc = parse_locators(", ".join(parts[k:]), phys)
        if loc:
            return ", ".join(parts[:k]).strip(), loc[0], loc[1], see, see_also
    return text.strip(), [], [], see, see_also


def load_overrides(name):
    f = HERE / name / "overrides.json"
    return json.loads(f.read_text()) if f.exists() else {"lines": []}


def index_lines(pdf, spec, overrides):
    """All printed lines of one index: [(page, col, indent, text)] after overrides."""
    first, last = spec["pages"]
    out = []
    for k, (width, height, words) in enumerate(words_of_pages(pdf, first, last)):
        page = first + k
        top = spec.get("top", 0)
        bottom = spec.get("bottom", height)
        if page == first and spec.get("first_top") is not None:
            top = spec["first_top"]
        if page == last and spec.get("last_bottom") is not None:
            bottom = spec["last_bottom"]
        ws = [w for w in words if w[1] >= top and w[3] <= bottom]
        cuts = spec.get("cuts")
        if "cuts_parity" in spec:
            cuts = spec["cuts_parity"]["even" if page % 2 == 0 else "odd"]
        if cuts is not None:  # fixed column boundaries (pt), measured on a full index page
            cols = [[] for _ in range(len(cuts) + 1)]
            for w in ws:
                x = w[2] if spec.get("cut_by") == "xmax" else w[0]
                cols[sum(1 for c in cuts if x > c)].append(w)
        else:
            cols = split_columns(ws, spec.get("columns", 2), width)
        for ci, cw in enumerate(cols):
            lines = group_lines(cw)
            if not lines:
                continue
            grp = re.compile(spec.get("group_heading", GROUP_DEFAULT))
            body = [x for x, _, lw in lines if not grp.match(line_text(lw, spec.get("join_gap")))]
            left = min(body or [x for x, _, _ in lines])
            if spec.get("col_left"):  # fixed level-0 x of each column, measured on the pages
                left = spec["col_left"][ci]
            elif spec.get("col_left_parity"):  # {"even": [x0, x1], "odd": [...]} for two-sided layouts
                left = spec["col_left_parity"]["even" if page % 2 == 0 else "odd"][ci]
            elif spec.get("left") == "mode":  # the most common line start is level 0
                xs = [round(x) for x, _, lw in lines if not grp.match(line_text(lw, spec.get("join_gap")))]
                if xs:
                    left = max(set(xs), key=xs.count)
            for x, y, lw in lines:
                t = line_text(lw, spec.get("join_gap"))
                if spec.get("compose_tilde"):  # Texinfo @~n set as a separate tilde glyph: 'dise~no'
                    t = unicodedata.normalize("NFC", re.sub(r"(?<=\w)~([nNaoAO])", "\\1\u0303", t))
                out.append([page, ci, round(x - left, 1), t])
    # overrides on printed lines
    for ov in overrides.get("lines", []):
        hits = [i for i, l in enumerate(out) if l is not None and l[0] == ov["page"] and l[3] == ov["text"]]
        if not hits:
            sys.exit(f"override not matched: {ov}")
        i = hits[ov.get("nth", 0)]
        if "replace" in ov:
            out[i][3] = ov["replace"]
        if "indent" in ov:
            out[i][2] = ov["indent"]
        if ov.get("drop"):
            out[i] = None
        for extra in reversed(ov.get("insert_after", [])):
            out.insert(i + 1, [ov["page"], out[i][1] if out[i] else 0, extra[0], extra[1]])
    return [l for l in out if l is not None]


def build_index(pdf, doc, spec, lang, style, overrides, phys, dump=False):
    lines = index_lines(pdf, spec, overrides)
    group_re = re.compile(spec.get("group_heading", GROUP_DEFAULT))
    levels = spec.get("levels", [0])  # indents (pt) of level 0, 1, 2
    tol = spec.get("indent_tol", 3)
    cont = spec.get("cont_indent")  # indent (pt) at and beyond which a line continues the previous
    skip = [re.compile(r) for r in spec.get("skip_lines", [])]
    entries, stack, unresolved = [], [], []
    last = None  # last entry dict
    pending = None  # text of a term line without locators that may continue on the next line
    for page, col, ind, text in lines:
        if dump:
            print(f"{page:4} c{col} {ind:6.1f} | {text}")
        if not text or any(r.search(text) for r in skip):
            continue
        if group_re.match(text):
            continue
        lvl = None
        for i, li in enumerate(levels):
            for x in (li if isinstance(li, list) else [li]):
                if abs(ind - x) <= tol:
                    lvl = i
        is_cont = cont is not None and ind >= cont - tol
        term, printed, physical, see, see_also = split_entry(text, phys, lang, style, spec.get("xref"),
                                                             spec.get("space_locators", False))
        if not term and printed and last is not None:
            is_cont = True
        if last is not None and spec.get("join_if_no_pages") and not (last["pages"] or last["see"]):
            is_cont = True
        if last is not None and (is_cont or lvl is None) and (
                not term or not (last["pages"] or last["see"] or last["see_also"]) or is_cont):
            # continuation of the previous printed entry
            if term and not last["pages"]:
                raw = last["_raw"]
                if raw.endswith("-"):  # line-break hyphen: dropped, or kept for code identifiers
                    raw = raw if spec.get("keep_hyphen") else raw[:-1]
                else:
                    raw = raw + " "
                t2, p2, ph2, se2, sa2 = split_entry(raw + text, phys, lang, style, spec.get("xref"),
                                                    spec.get("space_locators", False))
                last.update(term=t2, pages=p2, pages_physical=ph2, see=se2, see_also=sa2, _raw=raw + text)
                continue
            elif term:
                unresolved.append(f"p{page}: {text}")
            last["pages"] += printed
            last["pages_physical"] += physical
            last["see"] += see
            last["see_also"] += see_also
            continue
        if lvl is None:
            unresolved.append(f"p{page} indent {ind}: {text}")
            lvl = 0
        e = {"_raw": text, "term": term, "pages": printed, "pages_physical": physical, "subterms": [],
             "see": see, "see_also": see_also, "source_page": page}
        if lvl == 0 or not stack:
            entries.append(e)
            stack = [e]
        else:
            parent = stack[min(lvl, len(stack)) - 1]
            parent["subterms"].append(e)
            stack = stack[:min(lvl, len(stack))] + [e]
        last = e
    # tidy
    def clean(es):
        for e in es:
            e.pop("_raw", None)
            e["term"] = e["term"].rstrip(" ,")
            if not e["see"]:
                e.pop("see")
            if not e["see_also"]:
                e.pop("see_also")
            clean(e["subterms"])
            if not e["subterms"]:
                e.pop("subterms")
    clean(entries)

    def count(es):
        return sum(1 + count(e.get("subterms", [])) for e in es)
    return {"name": spec["name"], "physical_pages": spec["pages"], "entry_count_incl_subterms": count(entries),
            "top_level_count": len(entries), "unresolved_lines": unresolved, "entries": entries}


def build_toc(doc, printed_toc):
    flat = [{"level": l, "title": t.strip(), "page": (p if p and p > 0 else None)}
            for l, t, p in doc.get_toc(simple=True)]
    return {"outline_flat": flat, "outline_count": len(flat), "printed_toc_physical_pages": printed_toc,
            "produced_with": "PyMuPDF Document.get_toc(simple=True); pages are 1-based physical "
                             "(bench/groundtruth/build_gt.py)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pdf-dir", default=os.environ.get("HBI_GT_DIR", str(Path.home() / ".cache/hbi-groundtruth")))
    ap.add_argument("--only")
    ap.add_argument("--dump-lines", action="store_true")
    args = ap.parse_args()
    books = json.loads((HERE / "books.json").read_text())
    for b in books:
        if args.only and b["name"] != args.only:
            continue
        pdf = Path(args.pdf_dir) / b["name"] / "book.pdf"
        doc = fitz.open(pdf)
        phys = physical_map(doc, b.get("page_map", "labels"))
        overrides = load_overrides(b["name"])
        indices = [build_index(pdf, doc, spec, b.get("language", "en"), b["index_style"], overrides, phys,
                               args.dump_lines) for spec in b["indices"]]
        outdir = HERE / b["name"]
        outdir.mkdir(exist_ok=True)
        total = sum(i["entry_count_incl_subterms"] for i in indices)
        index = {"has_index": bool(indices), "index_style": b["index_style"],
                 "page_mapping": "offset %+d" % b["page_map"]["offset"] if isinstance(b.get("page_map"), dict)
                 else "PDF /PageLabels",
                 "notes": b.get("notes", ""), "total_entries_incl_subterms": total,
                 "produced_with": "pdftotext -bbox (poppler) word boxes -> bench/groundtruth/build_gt.py "
                                  "(gutter split, line grouping, printed-line parser) + overrides.json; "
                                  "disagreements with HBI checked on the page",
                 "indices": indices}
        toc = build_toc(doc, b.get("printed_toc_pages", []))
        data = pdf.read_bytes()
        meta = {"short_name": b["name"], "title": b["title"],
                "source_package": f"{b['package']} {b['version']}", "source_path": b["path"],
                "license": b.get("license", ""), "page_count": doc.page_count, "file_size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "has_outline": bool(toc["outline_flat"]),
                "outline_entries": len(toc["outline_flat"]), "has_index": bool(indices),
                "index_style": b["index_style"], "index_count": len(indices),
                "index_columns": b["indices"][0].get("columns", 2) if indices else 0,
                "index_entries_incl_subterms": total, "language": b.get("language", "en"),
                "producer": doc.metadata.get("producer", ""), "creator": doc.metadata.get("creator", ""),
                "modifications": "none (byte-identical copy of the packaged file, decompressed if it was .pdf.gz)",
                "why": b.get("why", ""), "caveats": b.get("caveats", "")}
        for fname, obj in (("toc.json", toc), ("index.json", index), ("meta.json", meta)):
            (outdir / fname).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
        unres = sum(len(i["unresolved_lines"]) for i in indices)
        print(f"{b['name']:24} pages={doc.page_count:4} toc={len(toc['outline_flat']):4} "
              f"indices={len(indices)} entries={total:5} unresolved={unres}")


if __name__ == "__main__":
    main()
