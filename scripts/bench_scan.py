"""Tables of scripts/bench-scan: per scanned corpus book, what OCR recognised and how well
(character accuracy against the born-digital text of the same page), how long it took beside
Tesseract alone on the same images, peak memory, and whether progress moved page by page.

Character accuracy is 1 - (edit distance / characters of the born-digital page), over letters
and digits only (punctuation and spacing are layout, not reading). The edit distance is found
by aligning the two pages word by word (difflib, no junk heuristic) and taking the exact
character edit distance inside each unequal stretch: an upper bound of the true distance,
exact where the alignment is, and fast enough for whole books in Python.
"""

import difflib
import json
import sys
from pathlib import Path


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a):
        current = [i + 1]
        for j, cb in enumerate(b):
            current.append(min(previous[j] + (ca != cb), previous[j + 1] + 1, current[j] + 1))
        previous = current
    return previous[-1]


def words(text: str) -> list:
    cleaned = "".join(c if c.isalnum() else " " for c in text)
    return cleaned.split()


def edits(ours: str, reference: str) -> tuple:
    a, b = words(ours), words(reference)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    distance = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            distance += levenshtein("".join(a[i1:i2]), "".join(b[j1:j2]))
    return distance, sum(len(w) for w in b)


def main() -> None:
    folder, memory_mb, cores = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rows = [line.rstrip("\n").split("\t") for line in open(folder / "runs.tsv")]
    print(f"| book | language | pages | OCR'd | mean confidence | character accuracy | seconds | pages/s | Tesseract alone: pages, s | pages/s | Tesseract / HBI pages/s | peak MB (limit {memory_mb}) | progress lines |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    total = {"pages": 0, "ocr": 0, "edits": 0, "chars": 0, "seconds": 0.0, "tesseract": 0.0, "sampled": 0}
    for name, language, seconds, peak_kb, tesseract, sampled in rows:
        scan = json.load(open(folder / "out" / f"{name}.json"))
        digital = json.load(open(folder / "digital" / f"{name}.json"))
        ocr = scan.get("ocr") or {}
        book_edits = book_chars = 0
        for ours, reference in zip(scan["pages"], digital["pages"]):
            distance, chars = edits(ours["text"], reference["text"])
            book_edits += distance
            book_chars += chars
        progress = 0
        for line in open(folder / f"progress.{name}"):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("stage") == "ocr":
                progress += 1
        pages = scan["page_count"]
        seconds, tesseract, sampled = float(seconds), float(tesseract), int(sampled)
        accuracy = 1 - book_edits / max(book_chars, 1)
        confidence = ocr.get("mean_confidence")
        print(
            f"| {name} | {ocr.get('languages', language)} | {pages} | {ocr.get('pages', 0)} | "
            f"{'' if confidence is None else f'{confidence:.3f}'} | {accuracy:.4f} | {seconds:.1f} | "
            f"{pages / seconds:.2f} | {sampled}, {tesseract:.1f} | {sampled / tesseract:.2f} | "
            f"{(sampled / tesseract) / (pages / seconds):.2f} | "
            f"{int(peak_kb) // 1024} | {progress} |"
        )
        total["pages"] += pages
        total["ocr"] += ocr.get("pages", 0)
        total["edits"] += book_edits
        total["chars"] += book_chars
        total["seconds"] += seconds
        total["tesseract"] += tesseract
        total["sampled"] += sampled
    if rows:
        print(
            f"| **all** | | {total['pages']} | {total['ocr']} | | {1 - total['edits'] / max(total['chars'], 1):.4f} | "
            f"{total['seconds']:.1f} | {total['pages'] / total['seconds']:.2f} | {total['sampled']}, {total['tesseract']:.1f} | "
            f"{total['sampled'] / total['tesseract']:.2f} | {(total['sampled'] / total['tesseract']) / (total['pages'] / total['seconds']):.2f} | | |"
        )
    print()
    print(f"{cores} cores; seconds are wall time of the whole extraction (render, OCR, structure); Tesseract "
          "alone reads a sample of the same page images (every k-th page); a ratio above 1 is what HBI's "
          "rendering and structure cost beside recognition; progress lines are the OCR progress messages "
          "the worker would see, one per recognised page.")


if __name__ == "__main__":
    main()
