#!/usr/bin/env python3
"""One big book over one worker, then over two (issue #19), in the production shape.

Started by scripts/bench-scale-out (which installs the services and builds the release
binary). Real Redis, PostgreSQL + pgvector, S3 (s3s-fs) and FalkorDB on ports of their own;
one `hbi api` and one or two `hbi worker`, each worker pinned to a core of its own
(`taskset`) with one model thread (HBI__EMBEDDINGS__THREADS=1), so that the machine's cores
stand for machines of their own.

The book: the nine corpus PDFs joined into one (qpdf), about 2,400 pages. For each run the
book is uploaded, timed from the upload's answer to `succeeded`, and deleted again (its
vectors with it, so the next run embeds everything anew). Then a chaos run: two workers, the
one not holding the book's job killed with SIGKILL in the middle of a part and started again
a second later; the book must succeed with one vector per chunk and nothing duplicated.

Prints a markdown table; exits 1 when the chaos run does not balance.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from chaos import SERVICES_SH, Process, production_env, services  # noqa: E402
from hbi_client import Api, free_port  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
BOOKS = [
    "amsldoc",
    "beamer-userguide",
    "gnu-standards",
    "gnuplot",
    "lilypond-learning-de",
    "maximabook",
    "octave",
    "r-intro",
    "r-lang-nooutline",
]


def log(message):
    print(f"[bench-scale-out] {message}", file=sys.stderr, flush=True)


class PinnedProcess(Process):
    """A worker pinned to one core."""

    def __init__(self, binary, role, index, state, env, core):
        super().__init__(binary, role, index, state, env)
        self.argv = ["taskset", "-c", str(core), *self.argv]


class Bench:
    def __init__(self, args):
        self.args = args
        self.state = Path(tempfile.mkdtemp(prefix="hbi-scale-out."))
        os.chmod(self.state, 0o755)
        self.ports = {name: free_port() for name in ("redis", "postgres", "s3", "falkordb")}
        self.urls = {}
        self.workers = []
        # Each run's workers get names (and log files) of their own.
        self.runs = 0

    def setup(self):
        pg_bin = subprocess.run(
            ["bash", "-c", 'source "$0" && hbi_postgres_bin', str(SERVICES_SH)], capture_output=True, text=True, check=True
        )
        self.psql = str(Path(pg_bin.stdout.strip()) / "psql")
        os.environ["HBI_S3_BUCKET"] = ""
        for name in self.ports:
            self.urls[name] = services(f"hbi_{name}_start", self.ports[name], self.state / name)
        self.admin_key = "bench-admin-" + secrets.token_hex(16)
        env = production_env(self.urls, self.admin_key)
        env.update(
            {
                "HBI__QUEUE__HEARTBEAT_SECS": "2",
                "HBI__EMBEDDINGS__PROVIDER": "minilm",
                # Each worker stands for a machine of one core.
                "HBI__EMBEDDINGS__THREADS": "1",
                "HBI__WORKER__STAGE_TIMEOUT_SECS": "3600",
            }
        )
        self.env = env
        self.api_process = Process(self.args.hbi, "api", 0, self.state, env)
        self.api_process.start()
        self.api_process.wait_ready()
        self.api = Api(f"http://127.0.0.1:{self.api_process.port}", self.admin_key)
        self.book = self.state / "joined.pdf"
        pdfs = [str(CORPUS / name / "book.pdf") for name in BOOKS]
        subprocess.run(["qpdf", "--empty", "--pages", *pdfs, "--", str(self.book)], check=True)
        pages = subprocess.run(["pdfinfo", str(self.book)], capture_output=True, text=True, check=True).stdout
        self.pages = int(re.search(r"Pages:\s+(\d+)", pages).group(1))
        log(f"the book: {self.pages} pages, {self.book.stat().st_size / 1e6:.1f} MB")

    def start_workers(self, count):
        for worker in self.workers:
            worker.stop()
        self.runs += 1
        self.workers = [
            PinnedProcess(self.args.hbi, "worker", f"run{self.runs}-{n}", self.state, self.env, core=n % os.cpu_count())
            for n in range(count)
        ]
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready()

    def sql(self, query):
        """The query's single value, as text."""
        done = subprocess.run(
            [self.psql, "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", str(self.ports["postgres"]),
             "-U", "postgres", "-d", "hbi", "-c", query],
            capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def job(self, job_id):
        status, job = self.api.call("GET", f"/jobs/{job_id}")
        if status != 200:
            raise RuntimeError(f"GET /jobs/{job_id}: {status} {job}")
        return job

    def upload(self, title):
        status, book = self.api.create_book(title)
        if status != 201:
            raise RuntimeError(f"POST /books/: {status} {book}")
        status, accepted = self.api.upload(book["id"], self.book.read_bytes(), "book.pdf")
        if status != 202:
            raise RuntimeError(f"upload: {status} {accepted}")
        return book["id"], accepted["job_id"]

    def wait(self, job_id, on_poll=None):
        while True:
            job = self.job(job_id)
            if job["state"] in ("succeeded", "dead", "cancelled"):
                return job
            if on_poll:
                on_poll(job)
            time.sleep(0.2)

    def parts_by_worker(self):
        counts = {}
        for worker in self.workers:
            lines = worker.log_path.read_text(errors="replace").splitlines()
            counts[worker.name] = sum(1 for line in lines if "part embedded" in line)
        return counts

    def run(self, count, chaos=False):
        self.start_workers(count)
        book_id, job_id = self.upload(f"joined corpus, {count} worker(s)")
        started = time.monotonic()
        embed_started = []
        killed = []

        def on_poll(job):
            if job.get("stage") == "embed" and not embed_started:
                embed_started.append(time.monotonic())
            if chaos and not killed and job.get("stage") == "embed":
                holder = job["history"][-1]["worker_id"]
                helpers = self.sql(
                    f"SELECT p.worker_id FROM job_parts p WHERE p.job_id = '{job_id}' AND p.state = 'running' "
                    f"AND p.worker_id <> '{holder}' AND EXISTS (SELECT 1 FROM job_parts d WHERE d.job_id = "
                    f"'{job_id}' AND d.state = 'done' AND d.worker_id = p.worker_id)"
                ).splitlines()
                if helpers:
                    for worker in self.workers:
                        if helpers[0] in worker.log_path.read_text(errors="replace"):
                            worker.kill9()
                            killed.append((time.monotonic() - started, worker.name))
                            time.sleep(1)
                            worker.start()

        job = self.wait(job_id, on_poll)
        seconds = time.monotonic() - started
        chunks = int(self.sql(f"SELECT count(*) FROM chunks WHERE book_id = '{book_id}'"))
        vectors = int(self.sql(f"SELECT count(*) FROM chunk_vectors_384 WHERE book_id = '{book_id}'"))
        distinct = int(self.sql(f"SELECT count(DISTINCT chunk_id) FROM chunk_vectors_384 WHERE book_id = '{book_id}'"))
        left = int(self.sql(f"SELECT count(*) FROM job_parts WHERE job_id = '{job_id}'"))
        row = {
            "workers": count,
            "state": job["state"],
            "attempts": job["attempts"],
            "seconds": seconds,
            "embed_seconds": seconds - (embed_started[0] - started) if embed_started else None,
            "chunks": chunks,
            "vectors": vectors,
            "distinct": distinct,
            "parts_left": left,
            "parts": self.parts_by_worker(),
            "killed": killed,
        }
        log(json.dumps(row))
        status, _ = self.api.call("DELETE", f"/books/{book_id}")
        if status != 204:
            raise RuntimeError(f"DELETE /books/{book_id}: {status}")
        return row

    def teardown(self):
        for process in [*self.workers, self.api_process]:
            process.stop()
        for name in self.ports:
            try:
                services(f"hbi_{name}_stop", self.ports[name], self.state / name)
            except RuntimeError as err:
                log(f"stopping {name}: {err}")
        shutil.rmtree(self.state, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hbi", required=True, help="the release hbi binary")
    parser.add_argument("--no-chaos", action="store_true", help="skip the chaos run")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        bench.setup()
        one = bench.run(1)
        two = bench.run(2)
        rows = [one, two]
        if not args.no_chaos:
            rows.append(bench.run(2, chaos=True))
    finally:
        bench.teardown()
    print(f"\nBook: the nine corpus PDFs joined, {bench.pages} pages; {one['chunks']} chunks.\n")
    print("| run | workers | upload to succeeded (s) | of it embedding (s) | vs 1 worker | parts per worker | vectors / chunks | attempts |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name, row in zip(["one worker", "two workers", "two, one killed mid-part"], rows):
        parts = ", ".join(f"{worker}: {n}" for worker, n in row["parts"].items())
        embed = f"{row['embed_seconds']:.0f}" if row["embed_seconds"] is not None else "-"
        print(
            f"| {name} | {row['workers']} | {row['seconds']:.0f} | {embed} | {row['seconds'] / one['seconds']:.2f} | "
            f"{parts} | {row['vectors']} / {row['chunks']} | {row['attempts']} |"
        )
    failed = [
        row for row in rows
        if row["state"] != "succeeded" or row["vectors"] != row["chunks"] or row["distinct"] != row["chunks"] or row["parts_left"]
    ]
    if not args.no_chaos:
        print(f"\nChaos: killed {rows[2]['killed']}")
    if failed:
        print(f"\nDOES NOT BALANCE: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
