#!/usr/bin/env python3
"""EPUB benchmark: HBI's extraction of each EPUB beside a reading of the same file made here
with Python's standard library only (zipfile, ElementTree, html.parser), independent of HBI.

For each book: the ToC HBI gives against the book's own navigation (EPUB 3 `nav` toc, else
EPUB 2 `toc.ncx`; level and title of every entry, in order), the share of the spine's words
that HBI's pages carry (text coverage, as a multiset), the pages and where their labels come
from, index entries, and seconds. Prints one Markdown table.

    scripts/bench_epub.py EXTRACT_BINARY BOOK.epub...
"""
import collections
import json
import posixpath
import re
import subprocess
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser


def words(text):
    return re.findall(r"\w+", text.lower())


class SpineText(HTMLParser):
    """Text of an XHTML document, head, script and style left out."""

    SKIP = {"head", "script", "style", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth_skipped = 0
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth_skipped += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth_skipped:
            self.depth_skipped -= 1

    def handle_data(self, data):
        if not self.depth_skipped:
            self.parts.append(data)


class NavToc(HTMLParser):
    """Entries of the `toc` nav: the first link or span of each list item, at its list depth."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_toc = 0
        self.lists = 0
        self.entries = []
        self.label = None
        self.label_tag = None
        self.item_has_label = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "nav":
            types = (attrs.get("epub:type") or "").split() + [r[4:] for r in (attrs.get("role") or "").split() if r.startswith("doc-")]
            if self.in_toc or "toc" in types:
                self.in_toc += 1
            return
        if not self.in_toc:
            return
        if tag in ("ol", "ul"):
            self.lists += 1
        elif tag == "li":
            self.item_has_label.append(False)
        elif tag in ("a", "span") and self.item_has_label and not self.item_has_label[-1] and self.label is None:
            self.item_has_label[-1] = True
            self.label = []
            self.label_tag = tag

    def handle_endtag(self, tag):
        if not self.in_toc:
            return
        if tag == "nav":
            self.in_toc -= 1
        elif tag in ("ol", "ul"):
            self.lists -= 1
        elif tag == "li" and self.item_has_label:
            self.item_has_label.pop()
        elif tag == self.label_tag and self.label is not None:
            title = " ".join("".join(self.label).split())
            if title:
                self.entries.append((max(self.lists, 1), title))
            self.label = None
            self.label_tag = None

    def handle_data(self, data):
        if self.label is not None:
            self.label.append(data)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def reference(path):
    """The book's navigation entries and the words of its spine, read here."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        container = min((n for n in names if n.endswith("META-INF/container.xml")), key=len)
        root = container[: -len("META-INF/container.xml")]
        rootfile = next(e for e in ET.fromstring(zf.read(container)).iter() if local(e.tag) == "rootfile")
        opf_path = root + rootfile.get("full-path").lstrip("/")
        opf = ET.fromstring(zf.read(opf_path))
        base = posixpath.dirname(opf_path)
        items, spine, ncx = {}, [], None
        for e in opf.iter():
            if local(e.tag) == "item":
                items[e.get("id")] = e
            elif local(e.tag) == "itemref" and e.get("linear") != "no":
                spine.append(e.get("idref"))
            elif local(e.tag) == "spine":
                ncx = e.get("toc")

        def member(href):
            return posixpath.normpath(posixpath.join(base, urllib.parse.unquote(href.split("#")[0])))

        spine_words, seen = [], set()
        for idref in spine:
            item = items.get(idref)
            if item is None or "html" not in (item.get("media-type") or "html"):
                continue
            if member(item.get("href")) in seen:
                continue  # one document listed once per section
            seen.add(member(item.get("href")))
            try:
                parser = SpineText()
                parser.feed(zf.read(member(item.get("href"))).decode("utf-8", "replace"))
                spine_words += words(" ".join(parser.parts))
            except KeyError:
                pass
        toc, source = [], "none"
        nav = next((i for i in items.values() if "nav" in (i.get("properties") or "").split()), None)
        if nav is not None:
            parser = NavToc()
            parser.feed(zf.read(member(nav.get("href"))).decode("utf-8", "replace"))
            toc, source = parser.entries, "nav"
        if not toc and ncx in items:
            tree = ET.fromstring(zf.read(member(items[ncx].get("href"))))
            nav_map = next(e for e in tree.iter() if local(e.tag) == "navMap")

            def walk(element, depth):
                for child in element:
                    if local(child.tag) == "navPoint":
                        label = next((t for t in child.iter() if local(t.tag) == "text"), None)
                        title = " ".join("".join(label.itertext()).split()) if label is not None else ""
                        if title:
                            toc.append((depth, title))
                        walk(child, depth + 1)

            walk(nav_map, 1)
            source = "ncx"
        return toc, source, spine_words


def main():
    binary, books = sys.argv[1], sys.argv[2:]
    print("| book | navigation | ToC entries | ToC equal (level and title) | text coverage | words HBI / book | pages | labels | index entries | seconds |")
    print("|---|---|---:|---|---:|---:|---:|---|---:|---:|")
    totals = collections.Counter()
    for book in books:
        toc, source, spine_words = reference(book)
        started = time.monotonic()
        run = subprocess.run([binary, book, "--text"], capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - started
        name = "/".join(book.split("/")[-2:])
        if run.returncode != 0:
            print(f"| {name} | {source} | {len(toc)} | failed: {run.stderr.strip()[:80]} | | | | | | |")
            totals["failed"] += 1
            continue
        out = json.loads(run.stdout)
        ours = [(e["level"], e["title"]) for e in out["toc"]]
        equal = ours == toc
        if not equal:
            same = sum(1 for a, b in zip(ours, toc) if a == b)
            first = next((i for i, (a, b) in enumerate(zip(ours, toc)) if a != b), min(len(ours), len(toc)))
            detail = f"no: {same} of {len(toc)} in place; first difference at {first}"
        else:
            detail = "yes"
        page_words = collections.Counter(w for p in out["pages"] for w in words(p["text"]))
        wanted = collections.Counter(spine_words)
        covered = sum(min(n, page_words[w]) for w, n in wanted.items())
        coverage = covered / max(1, sum(wanted.values()))
        doubled = sum(page_words.values()) / max(1, sum(wanted.values()))
        labels = "printed" if any(not l.isdigit() for l in out["page_labels"]) or out["page_labels"] != [str(i + 1) for i in range(len(out["page_labels"]))] else "by size"
        print(f"| {name} | {source} | {len(toc)} | {detail} | {coverage:.4f} | {doubled:.3f} | {out['page_count']} | {labels} | {len(out['index'])} | {seconds:.2f} |")
        totals["books"] += 1
        totals["equal"] += equal
        totals["words"] += sum(wanted.values())
        totals["covered"] += covered
    print(f"| **all {totals['books']}** | | | **{totals['equal']} of {totals['books']} equal** | **{totals['covered'] / max(1, totals['words']):.4f}** | | | | | |")
    if totals["failed"]:
        print(f"\n{totals['failed']} books failed")


if __name__ == "__main__":
    main()
