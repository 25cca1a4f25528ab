"""scripts/bench-page-images: times page images through a real `hbi serve` (see there)."""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

KEY = "bench-page-images-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, headers=None):
    request = urllib.request.Request(base + path, data=body, method=method, headers={"X-API-Key": KEY, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def main():
    binary, book, pages = sys.argv[1], sys.argv[2], int(sys.argv[3])
    corpus = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    pdf = (corpus / book / "book.pdf").read_bytes()
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = dict(os.environ, HBI_BOOTSTRAP_API_KEY=KEY, HBI__EMBEDDINGS__PROVIDER="none",
                   HBI__RATE_LIMIT__REQUESTS_PER_MINUTE="0", HBI__LOG__LEVEL="warn")
        server = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", data],
                                  env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if call(base, "GET", "/health/live")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            _, created, _ = call(base, "POST", "/books/", json.dumps({"title": book}).encode(),
                                 {"content-type": "application/json"})
            book_id = json.loads(created)["id"]
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"book.pdf\"\r\n"
                    "Content-Type: application/pdf\r\n\r\n").encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
            _, accepted, _ = call(base, "POST", f"/books/{book_id}/upload", body,
                                  {"content-type": f"multipart/form-data; boundary={boundary}"})
            job = json.loads(accepted)["job_id"]
            while json.loads(call(base, "GET", f"/jobs/{job}")[1])["state"] not in ("succeeded", "dead", "cancelled"):
                time.sleep(0.2)
            timings = {"first view (drawn, then kept)": [], "cached view (blob store)": [], "revalidation (304)": [],
                       "word boxes, first (located, then kept)": [], "word boxes, cached": []}
            sizes = []
            for page in range(1, pages + 1):
                path = f"/books/{book_id}/pages/{page}/image"
                started = time.perf_counter()
                status, png, headers = call(base, "GET", path)
                timings["first view (drawn, then kept)"].append(time.perf_counter() - started)
                assert status == 200, (status, png[:200])
                sizes.append(len(png))
                started = time.perf_counter()
                status, again, _ = call(base, "GET", path)
                timings["cached view (blob store)"].append(time.perf_counter() - started)
                assert status == 200 and again == png
                started = time.perf_counter()
                status, _, _ = call(base, "GET", path, headers={"If-None-Match": headers["etag"]})
                timings["revalidation (304)"].append(time.perf_counter() - started)
                assert status == 304, status
                # What the portal asks next to mark a search hit on the image.
                for name in ("word boxes, first (located, then kept)", "word boxes, cached"):
                    started = time.perf_counter()
                    status, words, _ = call(base, "GET", f"/books/{book_id}/pages/{page}/words")
                    timings[name].append(time.perf_counter() - started)
                    assert status == 200 and "words" in json.loads(words), status
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"Page images of {book}, pages 1-{pages}, 1200 px wide PNG (median {statistics.median(sizes) / 1024:.0f} KiB), "
          f"{os.cpu_count()} cores, release build")
    print()
    print("| request | median ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        print(f"| {name} | {statistics.median(values) * 1000:.1f} | {p95 * 1000:.1f} | {values[-1] * 1000:.1f} |")


if __name__ == "__main__":
    main()
