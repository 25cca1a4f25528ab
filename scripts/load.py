#!/usr/bin/env python3
"""Load test of a release `hbi serve` on the embedded default (issue #7, part 4).

Started by scripts/load (which installs wrk and the model and builds the binary). Ingests the
corpus books into a data directory (kept between runs with --data-dir: a second run skips the
ingestion), then runs wrk against GET /search (hybrid, the default mode, rotating queries) and
GET /books/{id}/toc (rotating books) for --duration seconds each, counting answers by class
(2xx, 429, other 4xx, 5xx) in wrk's Lua hooks; then sends --uploads uploads at once, each a new
book, and counts those not accepted (202). Prints a markdown table; exits 1 on any 5xx or an
upload not accepted.

Rate limits are off for the run (HBI__RATE_LIMIT__*=0): one key at thousands of requests per
minute would otherwise be measuring the limiter (429s), not the server.
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from hbi_client import Api, free_port, wait_ready  # noqa: E402
CORPUS = ROOT.parent / "shared" / "corpus"
QUERIES = [
    "matrix multiplication", "plot a function", "linear regression", "frame title", "overlay",
    "header file", "install package", "vector", "differential equation", "integral",
    "font size", "data frame", "error handling", "theorem environment", "align equations",
    "command line options", "loop", "string functions", "polynomial roots", "color",
    "transparent", "sparse matrix", "beam", "note head", "tempo", "coding standards",
]

LUA = r"""
local threads = {}
paths = {%(paths)s}
wrk.headers["X-API-Key"] = "%(key)s"
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  ok, limited, client, server, i = 0, 0, 0, 0, math.random(#paths)
end
function request()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
function response(status, headers, body)
  if status >= 500 then server = server + 1
  elseif status == 429 then limited = limited + 1
  elseif status >= 400 then client = client + 1
  else ok = ok + 1 end
end
function done(summary, latency, requests)
  local o, l, c, s = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); l = l + t:get("limited"); c = c + t:get("client"); s = s + t:get("server")
  end
  io.write(string.format("HBI requests=%%d seconds=%%.3f p50_ms=%%.2f p99_ms=%%.2f max_ms=%%.2f ok=%%d limited=%%d client=%%d server=%%d socket_errors=%%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, o, l, c, s,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def log(message):
    print(f"[load] {message}", file=sys.stderr, flush=True)


def create_book(api, title):
    status, body = api.create_book(title)
    if status not in (200, 201):
        raise RuntimeError(f"POST /books/ answered {status}: {body}")
    return body["id"]


def ingest(api, books):
    """Creates and uploads each book not yet in the catalog; waits for every job to end."""
    status, listed = api.call("GET", "/books/?limit=1000")
    present = {b["title"]: b for b in (listed if isinstance(listed, list) else listed.get("books", []))}
    jobs = []
    for name in books:
        if name in present and present[name].get("status") in ("ready", "needs_review"):
            continue
        book_id = create_book(api, name)
        status, accepted = api.upload(book_id, (CORPUS / name / "book.pdf").read_bytes(), f"{name}.pdf")
        if status != 202:
            raise RuntimeError(f"upload of {name}: {status} {accepted}")
        jobs.append((name, accepted["job_id"]))
    started = time.monotonic()
    for name, job_id in jobs:
        while True:
            status, job = api.call("GET", f"/jobs/{job_id}")
            if status == 200 and job["state"] in ("succeeded", "dead", "cancelled"):
                log(f"{name}: {job['state']} after {time.monotonic() - started:.0f} s")
                break
            time.sleep(5)
    status, listed = api.call("GET", "/books/?limit=1000")
    return [b for b in (listed if isinstance(listed, list) else listed.get("books", [])) if b.get("status") in ("ready", "needs_review")]


def run_wrk(args, port, key, paths, label):
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua_paths = ", ".join(json.dumps(p) for p in paths)
    script.write_text(LUA % {"paths": lua_paths, "key": key})
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "30s",
               "-s", str(script), f"http://127.0.0.1:{port}"]
    log(" ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    script.unlink()
    match = re.search(r"^HBI (.*)$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    figures = {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    figures["label"] = label
    figures["rps"] = figures["requests"] / figures["seconds"]
    return figures


def concurrent_uploads(api, n, pdf_name):
    pdf = (CORPUS / pdf_name / "book.pdf").read_bytes()
    ids = [create_book(api, f"{pdf_name} (load copy {i})") for i in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        started = time.monotonic()
        status, _ = api.upload(ids[i], pdf, f"{pdf_name}.pdf")
        results[i] = (status, time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hbi", required=True)
    parser.add_argument("--data-dir", default=None, help="kept between runs (default: a temporary one)")
    parser.add_argument("--books", default=",".join(sorted(p.name for p in CORPUS.iterdir() if (p / "book.pdf").exists())))
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--upload-book", default="amsldoc")
    parser.add_argument("--ingest-only", action="store_true", help="ingest into --data-dir, measure nothing")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="hbi-load."))
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    key = "load-admin-" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBI__") and k not in (
        "DATABASE_URL", "REDIS_URL", "MINIO_ENDPOINT", "FALKORDB_URL", "NEO4J_URI")}
    env.update({
        "HBI_BOOTSTRAP_API_KEY": key,
        "HBI__RATE_LIMIT__REQUESTS_PER_MINUTE": "0",
        "HBI__RATE_LIMIT__UPLOADS_PER_MINUTE": "0",
        "HBI__LOG__LEVEL": "warn",
    })
    log_file = open(data_dir / "serve.log", "ab")
    server = subprocess.Popen([args.hbi, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
                              env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    failed = False
    try:
        wait_ready(port, lambda: server.poll() is None, "hbi serve")
        api = Api(f"http://127.0.0.1:{port}", key)
        books = ingest(api, [b for b in args.books.split(",") if b])
        if not books:
            raise RuntimeError("no book was ingested")
        log(f"{len(books)} books ready")
        if args.ingest_only:
            return
        search_paths = [f"/search?q={urllib.parse.quote(q)}" for q in QUERIES]
        toc_paths = [f"/books/{b['id']}/toc" for b in books]
        rows = [
            run_wrk(args, port, key, search_paths, "GET /search (hybrid, k=10)"),
            run_wrk(args, port, key, toc_paths, "GET /books/{id}/toc"),
        ]
        results, seconds = concurrent_uploads(api, args.uploads, args.upload_book)
        rss = Path(f"/proc/{server.pid}/status").read_text()
        peak = re.search(r"VmHWM:\s+(\d+)", rss).group(1)
        print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, {len(books)} books, hbi serve (release)\n")
        print("| endpoint | requests | requests/s | p50 | p99 | max | 2xx | 429 | other 4xx | 5xx | socket errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['label']} | {r['requests']:.0f} | {r['rps']:.1f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
                  f"| {r['max_ms']:.0f} ms | {r['ok']:.0f} | {r['limited']:.0f} | {r['client']:.0f} | {r['server']:.0f} "
                  f"| {r['socket_errors']:.0f} |")
            failed |= r["server"] > 0
        statuses = {}
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        slowest = max(t for _, t in results)
        print(f"\n{args.uploads} concurrent uploads ({args.upload_book}, one new book each): answers {statuses}, "
              f"all answered in {seconds:.1f} s, slowest {slowest:.1f} s; hbi serve peak RSS {int(peak) // 1024} MiB")
        failed |= statuses.get(202, 0) != args.uploads
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
