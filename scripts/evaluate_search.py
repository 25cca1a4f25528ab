#!/usr/bin/env python3
"""Search quality with relevance judgments taken from the books themselves.

Ingests the corpus into a running HBI (or reuses books already there, by title), then asks
GET /search in every mode and reports recall@10 and MRR per mode:

- index-derived: each printed index entry is a query ("term" or "term subterm"), the pages
  it lists are relevant; the index-term boost stays off (it would read the answer key);
- ToC-derived: each ToC entry's title is a query, its section's pages (from its first page
  up to the next entry at the same or a higher level) are relevant; with and without the
  boost.

Each query is restricted to its own book. Standard library only. The API key (write scope
or more) comes from --api-key, else HBI_API_KEY, else the file the first start of `hbi serve`
writes (./data/admin-api-key). Answers 429 (rate limit) are waited out as Retry-After says.

    scripts/evaluate_search.py --base http://127.0.0.1:8000 --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

K = 10

# Set by main(): sent as X-API-Key with every request.
API_KEY = ""


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 120):
    headers = dict(headers or {})
    if API_KEY:
        headers["X-API-Key"] = API_KEY
    while True:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            answer = json.loads(err.read() or b"null")
            if err.code == 429:
                time.sleep(int(err.headers.get("Retry-After") or 1))
                continue
            if err.code == 401:
                sys.exit(f"{method} {url}: 401 {answer}: give an API key (--api-key or HBI_API_KEY)")
            return err.code, answer


def default_api_key() -> str:
    if os.environ.get("HBI_API_KEY"):
        return os.environ["HBI_API_KEY"]
    generated = Path("data/admin-api-key")
    return generated.read_text().strip() if generated.exists() else ""


def upload(base: str, book_id: str, pdf: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{pdf.name}\"\r\n"
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + pdf.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, answer = request(
        "POST",
        f"{base}/books/{book_id}/upload",
        body,
        {"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=600,
    )
    if status not in (200, 202):
        sys.exit(f"upload of {pdf} failed: {status} {answer}")
    return answer


def ingest(base: str, corpus: Path, only: set[str]) -> dict[str, str]:
    """Book folder name -> book id, uploading what is not there yet."""
    status, existing = request("GET", f"{base}/books/?limit=1000")
    by_title = {b["title"]: b for b in existing} if status == 200 else {}
    ids, jobs = {}, []
    for folder in sorted(p for p in corpus.iterdir() if (p / "book.pdf").exists()):
        if only and folder.name not in only:
            continue
        title = f"eval:{folder.name}"
        book = by_title.get(title)
        if book and book["status"] in ("ready", "needs_review"):
            ids[folder.name] = book["id"]
            continue
        if not book:
            _, book = request("POST", f"{base}/books/", json.dumps({"title": title}).encode(),
                              {"content-type": "application/json"})
        ids[folder.name] = book["id"]
        jobs.append(upload(base, book["id"], folder / "book.pdf")["job_id"])
    started = time.time()
    for job_id in jobs:
        while True:
            _, job = request("GET", f"{base}/jobs/{job_id}")
            if job["state"] in ("succeeded", "dead", "cancelled"):
                if job["state"] != "succeeded":
                    sys.exit(f"job {job_id} ended {job['state']}: {job.get('error')}")
                break
            if time.time() - started > 3600:
                sys.exit("ingestion took over an hour")
            time.sleep(1)
    return ids


def index_queries(folder: Path) -> list[tuple[str, set[int]]]:
    data = json.loads((folder / "index.json").read_text())
    queries = []

    def pages_of(entry) -> set[int]:
        pages = set()
        for first, last in entry.get("pages_physical") or []:
            pages.update(range(first, min(last, first + 20) + 1))
        return pages

    for index in data.get("indices", []):
        for entry in index.get("entries", []):
            term = entry["term"].strip()
            if pages_of(entry) and len(term) > 1:
                queries.append((term, pages_of(entry)))
            for sub in entry.get("subterms", []):
                if pages_of(sub):
                    queries.append((f"{term} {sub['term'].strip()}", pages_of(sub)))
    return queries


def toc_queries(folder: Path) -> list[tuple[str, set[int]]]:
    data = json.loads((folder / "toc.json").read_text())
    flat = [e for e in data.get("outline_flat", []) if e.get("page")]
    queries = []
    for i, entry in enumerate(flat):
        end = None
        for later in flat[i + 1:]:
            if later["level"] <= entry["level"]:
                end = later["page"] - 1
                break
        if end is None:
            end = entry["page"] + 5
        end = max(entry["page"], min(end, entry["page"] + 30))
        queries.append((entry["title"], set(range(entry["page"], end + 1))))
    return queries


def sample(queries: list, limit: int) -> list:
    if len(queries) <= limit:
        return queries
    step = len(queries) / limit
    return [queries[int(i * step)] for i in range(limit)]


def evaluate(base, book_id, queries, mode, boost):
    recall = mrr = 0.0
    for text, relevant in queries:
        params = urllib.parse.urlencode({"q": text, "mode": mode, "book_id": book_id, "k": K,
                                         "boost": "true" if boost else "false"})
        status, found = request("GET", f"{base}/search?{params}")
        if status != 200:
            sys.exit(f"/search {text!r} {mode}: {status} {found}")
        pages = [hit["page"] for hit in found["results"]]
        recall += len(relevant & set(pages)) / len(relevant)
        mrr += next((1 / (rank + 1) for rank, page in enumerate(pages) if page in relevant), 0.0)
    return recall, mrr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--per-book", type=int, default=150, help="queries per book and set (even sample)")
    parser.add_argument("--modes", default="keyword,semantic,hybrid")
    parser.add_argument("--books", default="", help="comma-separated corpus folders (default: all)")
    parser.add_argument("--api-key", default=None,
                        help="API key with the write scope (default: HBI_API_KEY, else ./data/admin-api-key)")
    args = parser.parse_args()
    global API_KEY
    API_KEY = args.api_key if args.api_key is not None else default_api_key()

    ids = ingest(args.base, args.corpus, {b for b in args.books.split(",") if b})
    modes = args.modes.split(",")
    sets = {"index": index_queries, "toc": toc_queries}
    rows = []
    for set_name, build in sets.items():
        for boost in ([False] if set_name == "index" else [False, True]):
            for mode in modes:
                total_recall = total_mrr = count = 0.0
                for name, book_id in sorted(ids.items()):
                    queries = sample(build(args.corpus / name), args.per_book)
                    recall, mrr = evaluate(args.base, book_id, queries, mode, boost)
                    total_recall += recall
                    total_mrr += mrr
                    count += len(queries)
                rows.append((set_name, mode, boost, int(count), total_recall / count, total_mrr / count))
                print(f"{set_name:5} {mode:8} boost={boost!s:5} n={int(count):5} "
                      f"recall@{K}={total_recall / count:.3f} MRR={total_mrr / count:.3f}", file=sys.stderr)
    print(f"| set | mode | index-term boost | queries | recall@{K} | MRR |")
    print("|---|---|---|---:|---:|---:|")
    for set_name, mode, boost, count, recall, mrr in rows:
        print(f"| {set_name} | {mode} | {'on' if boost else 'off'} | {count} | {recall:.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
