#!/usr/bin/env python3
"""Chaos run of HBI's production shape, then a ledger of what was uploaded against what is stored.

Started by scripts/chaos (which installs the services and builds the release binary). Real
Redis (AOF), PostgreSQL + pgvector, S3 (s3s-fs) and FalkorDB run on 127.0.0.1 ports of their
own (scripts/lib/services.sh); one `hbi api` and N `hbi worker` processes run against them.

A client behaves like a user with a library: it creates a book per file (the same corpus PDF
may be uploaded as several books; some are other copies of a PDF, with a different hash and
the same text), sometimes uploads the same file again to the same book, and sometimes uploads
another file to a book whose job ended (a corrected edition). It retries what the API refuses
for a while (503, 5xx, connection errors), as any client would.

Meanwhile: workers are killed with SIGKILL at random moments and restarted a second later (as
a supervisor would), Redis and PostgreSQL are each restarted once and S3 is stopped for 30 s.

The ledger then reads the stores directly (psql, the S3 API, GRAPH.QUERY) and checks: every
book ended (succeeded, or dead in the DLQ with a reason; nothing queued, running or failed);
every book holds the content of its last accepted upload; no duplicate pages, chunks, vectors
or graph nodes; every succeeded book has the same counts as every other book of the same text;
no S3 object without a book and no book without its object. Exits 1 when it does not balance.
"""

import argparse
import collections
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from hbi_client import Api, free_port, wait_ready  # noqa: E402
SERVICES_SH = ROOT / "scripts" / "lib" / "services.sh"
CORPUS = ROOT.parent / "shared" / "corpus"
S3_KEY, S3_SECRET, BUCKET, GRAPH = "hbi-test-access", "hbi-test-secret-key", "hbi-chaos", "hbi"
TERMINAL = {"succeeded", "dead", "cancelled"}
T0 = time.monotonic()


def log(message):
    print(f"[chaos {time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def services(function, port, state):
    """Calls one function of scripts/lib/services.sh; returns its stdout."""
    done = subprocess.run(
        ["bash", "-c", 'source "$0" && "$1" "$2" "$3"', str(SERVICES_SH), function, str(port), str(state)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{function} {port}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def production_env(urls, admin_key):
    """The environment of `hbi api` and `hbi worker` against the four services at `urls`:
    this process's, less any HBI setting or service address, with JSON logs, `admin_key` as
    the first admin key and no rate limits (a client polling its jobs would meet 429s)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HBI__") and key not in ("DATABASE_URL", "REDIS_URL", "FALKORDB_URL", "NEO4J_URI")
    }
    env.update(
        {
            "REDIS_URL": urls["redis"],
            "DATABASE_URL": urls["postgres"],
            "MINIO_ENDPOINT": urls["s3"].removeprefix("http://"),
            "MINIO_ACCESS_KEY": S3_KEY,
            "MINIO_SECRET_KEY": S3_SECRET,
            "MINIO_SECURE": "false",
            "MINIO_BUCKET_NAME": BUCKET,
            "FALKORDB_URL": urls["falkordb"],
            "HBI_BOOTSTRAP_API_KEY": admin_key,
            "HBI__LOG__FORMAT": "json",
            "HBI__RATE_LIMIT__REQUESTS_PER_MINUTE": "0",
            "HBI__RATE_LIMIT__UPLOADS_PER_MINUTE": "0",
        }
    )
    return env


# ----------------------------------------------------------------------------- processes


class Process:
    """One `hbi api` or `hbi worker`, restartable on the same data directory and port."""

    def __init__(self, binary, role, index, state, env):
        self.role, self.index = role, index
        self.name = f"{role}-{index}"
        self.port = free_port()
        self.data_dir = state / self.name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state / f"{self.name}.log"
        self.argv = [binary, role, "--bind", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)]
        self.env = env
        self.child = None
        self.starts = 0

    def start(self):
        with open(self.log_path, "ab") as log_file:
            self.child = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def alive(self):
        return self.child is not None and self.child.poll() is None

    def kill9(self):
        if self.alive():
            self.child.send_signal(signal.SIGKILL)
            self.child.wait()

    def stop(self):
        if self.alive():
            self.child.terminate()
            try:
                self.child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait_ready(self):
        wait_ready(self.port, self.alive, f"{self.name} (log {self.log_path})")


# ----------------------------------------------------------------------------- HTTP client


class CountingApi(Api):
    """The client, counting every answer by request kind and status."""

    def __init__(self, base, key):
        super().__init__(base, key)
        self.answers = collections.Counter()
        self.lock = threading.Lock()

    def count(self, what, status):
        with self.lock:
            self.answers[(what, status)] += 1


def persist(api, what, attempt, retry_for):
    """Runs `attempt` until it answers something other than a refusal worth retrying
    (connection error, 5xx), for up to `retry_for` seconds with growing pauses."""
    deadline = time.monotonic() + retry_for
    pause = 1.0
    while True:
        status, body = attempt()
        api.count(what, status)
        if status != 0 and status < 500:
            return status, body
        if time.monotonic() > deadline:
            return status, body
        time.sleep(pause)
        pause = min(pause * 1.5, 10.0)


# ----------------------------------------------------------------------------- the run


class Book:
    def __init__(self, source, title):
        self.source, self.title = source, title
        self.id = None
        self.expected_hash = None  # content of the last accepted upload
        self.job_ids = []
        self.create_error = None
        # One upload at a time per book, so the last accepted upload is the one the client records.
        self.lock = threading.Lock()


def variant(pdf, n):
    """Another copy of the same PDF: a comment after the end marker changes the hash only."""
    return pdf + f"\n% copy {n}\n".encode()


def plan_actions(sources, uploads, rng):
    """What the user does: ~82% new books (a quarter of them another copy of the PDF), ~10% the
    same file again to a book already uploaded, ~8% another file to a book whose job ended."""
    actions = []
    n_new = max(1, round(uploads * 0.82))
    n_same = round(uploads * 0.10)
    n_other = uploads - n_new - n_same
    for i in range(n_new):
        actions.append(("new", rng.choice(sources), i if rng.random() < 0.25 else None))
    later = [("same", None, None)] * n_same + [("other", rng.choice(sources), None)] * n_other
    # Repeats come after the books they repeat exist: spread over the second half.
    for action in later:
        actions.insert(rng.randint(len(actions) // 2, len(actions)), action)
    return actions


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.state = Path(args.state or tempfile.mkdtemp(prefix="hbi-chaos."))
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o755)
        self.events = []  # (seconds, what)
        self.kills = 0
        self.books = []
        self.books_lock = threading.Lock()
        self.outcomes = collections.Counter()
        self.stop_chaos = threading.Event()
        self.outage_uploads = []
        self.pdfs = {}
        self.ports = {name: free_port() for name in ("redis", "postgres", "s3", "falkordb")}
        self.urls = {}

    def event(self, what):
        self.events.append((time.monotonic() - self.t_start, what))
        log(what)

    def service_dir(self, name):
        return self.state / name

    def start_service(self, name):
        self.urls[name] = services(f"hbi_{name}_start", self.ports[name], self.service_dir(name))

    def stop_service(self, name):
        services(f"hbi_{name}_stop", self.ports[name], self.service_dir(name))

    def setup(self):
        log(f"state in {self.state}")
        os.environ["HBI_S3_BUCKET"] = ""  # HBI creates its bucket itself
        for name in ("redis", "postgres", "s3", "falkordb"):
            self.start_service(name)
        # For --ledger-only: the ledger can be drawn again from the stores alone.
        (self.state / "ports.json").write_text(json.dumps({"ports": self.ports, "urls": self.urls}))
        self.admin_key = "chaos-admin-" + secrets.token_hex(16)
        env = production_env(self.urls, self.admin_key)
        env.update(
            {
                # A killed worker's job comes back after 3 beats (15 s, not the default 90 s).
                "HBI__QUEUE__HEARTBEAT_SECS": str(self.args.heartbeat_secs),
                # N workers share the cores: one inference thread each.
                "HBI__EMBEDDINGS__THREADS": "1",
            }
        )
        self.api_process = Process(self.args.hbi, "api", 0, self.state, env)
        self.api_process.start()
        self.api_process.wait_ready()
        self.workers = [Process(self.args.hbi, "worker", i, self.state, env) for i in range(self.args.workers)]
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready()
        admin = CountingApi(f"http://127.0.0.1:{self.api_process.port}", self.admin_key)
        status, created = admin.json("POST", "/keys", {"name": "chaos client", "scope": "write"})
        if status != 201 and status != 200:
            raise RuntimeError(f"POST /keys answered {status}: {created}")
        self.api = CountingApi(admin.base, created["key"])
        self.admin = admin
        for source in self.args.books:
            self.pdfs[source] = (CORPUS / source / "book.pdf").read_bytes()

    def supervise(self):
        """Restarts a dead worker a second after it died, like systemd's Restart=always."""
        while not self.stop_chaos.is_set() or any(not w.alive() for w in self.workers):
            for worker in self.workers:
                if not worker.alive():
                    time.sleep(1)
                    worker.start()
                    self.event(f"{worker.name} restarted by the supervisor")
            if not self.api_process.alive():
                self.event(f"the API died ({self.api_process.child.returncode}); restarting it")
                self.api_process.start()
            time.sleep(0.5)

    def chaos(self):
        """Kills workers at random moments until told to stop; restarts Redis and PostgreSQL
        once each and stops S3 for 30 s, at set times into the uploads."""
        outages = sorted(
            [
                (self.args.redis_at, "redis"),
                (self.args.postgres_at, "postgres"),
                (self.args.s3_at, "s3"),
            ]
        )
        next_kill = self.t_start + self.rng.uniform(*self.args.kill_every)
        while not self.stop_chaos.is_set():
            now = time.monotonic()
            if outages and now - self.t_start >= outages[0][0]:
                _, name = outages.pop(0)
                down = 30 if name == "s3" else self.args.restart_pause
                self.event(f"{name} stopped")
                self.stop_service(name)
                # A user uploads while it is down: refused or queued, and retried as any client would.
                during = threading.Thread(target=self.new_book, args=(self.rng.choice(self.args.books), None))
                during.start()
                self.outage_uploads.append(during)
                time.sleep(down)
                self.start_service(name)
                self.event(f"{name} started again after {down} s down")
                continue
            if now >= next_kill:
                worker = self.rng.choice(self.workers)
                if worker.alive():
                    worker.kill9()
                    self.kills += 1
                    self.event(f"{worker.name} killed with SIGKILL")
                next_kill = now + self.rng.uniform(*self.args.kill_every)
            time.sleep(0.2)
        for _, name in outages:
            log(f"warning: the {name} outage was never reached (the run ended first)")

    def new_book(self, source, copy):
        pdf = self.pdfs[source] if copy is None else variant(self.pdfs[source], copy)
        book = Book(source, f"{source}" + ("" if copy is None else f" (copy {copy})"))
        status, body = persist(self.api, "create", lambda: self.api.create_book(book.title), 300)
        if status not in (200, 201):
            book.create_error = f"{status}: {body}"
            self.outcomes["create refused"] += 1
            with self.books_lock:
                self.books.append(book)
            return
        book.id = body["id"]
        with self.books_lock:
            self.books.append(book)
        self.send(book, pdf, f"{source}.pdf")

    def send(self, book, pdf, file_name, source=None):
        with book.lock:
            self.send_locked(book, pdf, file_name, source or book.source)

    def send_locked(self, book, pdf, file_name, source):
        status, body = persist(self.api, "upload", lambda: self.api.upload(book.id, pdf, file_name), 300)
        if status in (200, 202):
            book.expected_hash = hashlib.sha256(pdf).hexdigest()
            book.source = source
            if body.get("job_id") not in book.job_ids:
                book.job_ids.append(body["job_id"])
            self.outcomes[f"upload {status}"] += 1
        else:
            self.outcomes[f"upload {status}"] += 1
            log(f"upload to {book.id} ended with {status}: {body}")

    def wait_job_end(self, book, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.api.call("GET", f"/jobs/{book.job_ids[-1]}")
            if status == 200 and job.get("state") in TERMINAL:
                return True
            time.sleep(2)
        return False

    def again(self, kind, source):
        """The same file again to a book already uploaded, or another file once its job ended."""
        with self.books_lock:
            candidates = [b for b in self.books if b.expected_hash]
        if not candidates:
            return self.new_book(source or self.rng.choice(self.args.books), None)
        book = self.rng.choice(candidates)
        if kind == "same":
            pdf = self.pdfs[book.source]
            if hashlib.sha256(pdf).hexdigest() != book.expected_hash:
                pdf = variant(pdf, int(book.title.rsplit(" ", 1)[-1].rstrip(")")))
            return self.send(book, pdf, f"{book.source}.pdf")
        if not self.wait_job_end(book, 600):
            self.outcomes["replace skipped: job never ended"] += 1
            return
        self.send(book, self.pdfs[source], f"{source}.pdf", source)

    def act(self, action, waiting):
        kind, source, copy = action
        time.sleep(self.rng.uniform(0, self.args.pace * 2))
        if kind == "new":
            self.new_book(source, copy)
        elif kind == "same":
            self.again(kind, source)
        else:
            # Waiting for a job to end must not hold up the other uploads (nor the outages
            # they should run into): the replacement waits in a pool of its own.
            waiting.submit(self.again, kind, source)

    def run(self):
        actions = plan_actions(self.args.books, self.args.uploads, self.rng)
        self.t_start = time.monotonic()
        supervisor = threading.Thread(target=self.supervise, daemon=True)
        chaos = threading.Thread(target=self.chaos, daemon=True)
        supervisor.start()
        chaos.start()
        with ThreadPoolExecutor(len(actions)) as waiting:
            with ThreadPoolExecutor(self.args.clients) as pool:
                list(pool.map(lambda action: self.act(action, waiting), actions))
        self.event(f"all {len(actions)} uploads sent")
        for during in list(self.outage_uploads):
            during.join()
        # Chaos goes on while the workers drain the queue, until the planned outages are past.
        deadline = time.monotonic() + self.args.drain_timeout
        last_report = 0
        while time.monotonic() < deadline:
            pending = self.pending_jobs()
            if pending == 0 and time.monotonic() - self.t_start > self.args.s3_at + 30:
                break
            if time.monotonic() - last_report > 30:
                log(f"{pending} jobs not ended yet")
                last_report = time.monotonic()
            time.sleep(3)
        self.stop_chaos.set()
        chaos.join()
        supervisor.join(timeout=10)
        for during in self.outage_uploads:
            during.join()
        # Jobs whose worker was killed last come back after their lease: wait for those too.
        settle = time.monotonic() + 300
        while self.pending_jobs() and time.monotonic() < settle:
            time.sleep(3)
        self.wall = time.monotonic() - self.t_start

    def pending_jobs(self):
        rows = self.sql("SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded', 'dead', 'cancelled')")
        return int(rows[0][0]) if rows else -1

    # ------------------------------------------------------------------------- stores

    def sql(self, query):
        done = subprocess.run(
            [self.psql, "-X", "-q", "-tA", "-F", "\t", "-h", "127.0.0.1", "-p", str(self.ports["postgres"]),
             "-U", "postgres", "-d", "hbi", "-c", query],
            capture_output=True,
            text=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        if done.returncode != 0:
            log(f"psql: {done.stderr.strip()}")
            return []
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def cypher(self, query):
        """GRAPH.RO_QUERY over RESP; the rows of the result set."""
        with socket.create_connection(("127.0.0.1", self.ports["falkordb"]), timeout=60) as sock:
            words = [b"GRAPH.RO_QUERY", GRAPH.encode(), query.encode()]
            sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
            reader = sock.makefile("rb")
            reply = read_resp(reader)
        if isinstance(reply, Exception):
            raise RuntimeError(f"GRAPH.RO_QUERY {query}: {reply}")
        return reply[1] if len(reply) >= 2 else []

    def s3_keys(self):
        keys, token = [], None
        while True:
            url = f"{self.urls['s3']}/{BUCKET}?list-type=2&max-keys=1000"
            if token:
                url += "&continuation-token=" + urllib.parse.quote(token, safe="")
            done = subprocess.run(
                ["curl", "-sS", "--fail", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{S3_KEY}:{S3_SECRET}", url],
                capture_output=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"listing S3: {done.stderr.decode()}")
            root = ET.fromstring(done.stdout)
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            keys += [c.findtext(f"{ns}Key") for c in root.iter(f"{ns}Contents")]
            if root.findtext(f"{ns}IsTruncated") != "true":
                return keys
            token = root.findtext(f"{ns}NextContinuationToken")

    # ------------------------------------------------------------------------- ledger

    def books_from_stores(self):
        """--ledger-only: the client's view rebuilt from the database (each book's expected
        content is its latest job's file; its text is found by hashing the corpus files and the
        copies its title names). Weaker than the client's own record, which also catches an
        accepted upload whose job was lost."""
        sources = {}
        for book_id, title, file_sha in self.sql(
            "SELECT b.id, b.title, coalesce((SELECT file_sha256 FROM jobs j WHERE j.book_id = b.id "
            "ORDER BY created_at DESC LIMIT 1), '') FROM books b"
        ):
            name, _, copy = title.partition(" (copy ")
            for source, pdf in self.pdfs.items():
                sources[hashlib.sha256(pdf).hexdigest()] = source
                if copy:
                    sources[hashlib.sha256(variant(pdf, int(copy.rstrip(")")))).hexdigest()] = source
            book = Book(sources.get(file_sha, name), title)
            book.id, book.expected_hash = book_id, file_sha or None
            self.books.append(book)

    def ledger(self):
        problems = []
        out = []
        books = self.books
        by_id = {b.id: b for b in books if b.id}
        rows = self.sql(
            "SELECT b.id, b.status, coalesce(b.content_hash, ''), coalesce(j.state, ''), coalesce(j.error, ''), "
            "coalesce(j.error_stage, ''), coalesce(j.attempts, 0) FROM books b LEFT JOIN LATERAL "
            "(SELECT * FROM jobs WHERE book_id = b.id ORDER BY created_at DESC LIMIT 1) j ON true"
        )
        stored = {r[0]: r for r in rows}
        states = collections.Counter()
        dead_reasons = collections.Counter()
        statuses = collections.Counter()
        for book in books:
            if book.id is None:
                problems.append(f"a book could not be created: {book.create_error}")
                continue
            row = stored.get(book.id)
            if row is None:
                problems.append(f"book {book.id} is lost (not in the database)")
                continue
            _, status, content_hash, job_state, error, error_stage, _ = row
            if book.expected_hash is None:
                states["never accepted"] += 1
                problems.append(f"book {book.id}: no upload was accepted")
                continue
            states[job_state] += 1
            statuses[status] += 1
            if content_hash != book.expected_hash:
                problems.append(f"book {book.id} holds {content_hash[:12]}, its last upload was {book.expected_hash[:12]}")
            if job_state == "dead":
                if not error:
                    problems.append(f"book {book.id} is dead without a reason")
                dead_reasons[f"{error_stage}: {error[:100]}"] += 1
            elif job_state != "succeeded":
                problems.append(f"book {book.id} is stuck: its job is {job_state or 'missing'}")
        strangers = [r[0] for r in rows if r[0] not in by_id]
        if strangers:
            problems.append(f"{len(strangers)} books in the database the client never created")
        pending = self.sql("SELECT state, count(*) FROM jobs WHERE state NOT IN ('succeeded', 'dead', 'cancelled') GROUP BY 1")
        for state, n in pending:
            problems.append(f"{n} jobs still {state}")
        jobs_total = self.sql("SELECT count(*), coalesce(sum(attempts), 0) FROM jobs")[0]
        attempt_outcomes = dict(self.sql("SELECT coalesce(outcome, 'open'), count(*) FROM job_attempts GROUP BY 1"))

        # Duplicates, straight from the tables.
        dup_pages = self.sql("SELECT count(*) FROM (SELECT 1 FROM pages GROUP BY book_id, number HAVING count(*) > 1) d")[0][0]
        dup_chunks = self.sql("SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY book_id, position HAVING count(*) > 1) d")[0][0]
        dup_vectors = self.sql(
            "SELECT count(*) FROM (SELECT 1 FROM chunk_vectors_384 GROUP BY chunk_id HAVING count(*) > 1) d"
        )[0][0]
        orphan_vectors = self.sql(
            "SELECT count(*) FROM chunk_vectors_384 v WHERE NOT EXISTS (SELECT 1 FROM books b WHERE b.id = v.book_id)"
        )[0][0]
        for name, n in (("pages", dup_pages), ("chunks", dup_chunks), ("vectors", dup_vectors)):
            if int(n):
                problems.append(f"{n} duplicated {name}")
        if int(orphan_vectors):
            problems.append(f"{orphan_vectors} vectors of no book")
        counts = {
            r[0]: [int(x) for x in r[1:]]
            for r in self.sql(
                "SELECT b.id, (SELECT count(*) FROM pages p WHERE p.book_id = b.id), "
                "(SELECT count(*) FROM chunks c WHERE c.book_id = b.id), "
                "(SELECT count(*) FROM chunk_vectors_384 v WHERE v.book_id = b.id) FROM books b"
            )
        }
        totals = self.sql(
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunk_vectors_384)"
        )[0]

        # Graph: one node per id; per book, the same nodes as every other book of its text.
        dup_nodes = self.cypher("MATCH (n) WITH n.id AS id, count(n) AS c WHERE c > 1 RETURN count(id)")
        dup_nodes = int(dup_nodes[0][0]) if dup_nodes else 0
        if dup_nodes:
            problems.append(f"{dup_nodes} graph ids held by more than one node")
        node_total = self.cypher("MATCH (n) RETURN count(n)")[0][0]
        graph_counts = collections.Counter()
        for label in ("Book", "Page", "Chapter", "IndexTerm"):
            for book_id, n in self.cypher(f"MATCH (n:{label}) RETURN n.book_id, count(n)"):
                graph_counts[(book_id, label)] = int(n)
        book_nodes = {bid for (bid, label) in graph_counts if label == "Book"}

        # Same text, same counts: group the succeeded books by the text they hold.
        text_of = {}
        for book in books:
            if book.id and stored.get(book.id) and stored[book.id][3] == "succeeded":
                text_of.setdefault(book.source, []).append(book.id)
                if counts[book.id][1] != counts[book.id][2]:
                    problems.append(f"book {book.id}: {counts[book.id][1]} chunks but {counts[book.id][2]} vectors")
                if book.id not in book_nodes:
                    problems.append(f"book {book.id} succeeded but has no Book node in the graph")
        per_text = []
        for source, ids in sorted(text_of.items()):
            shapes = collections.Counter(
                (*counts[i], *(graph_counts[(i, label)] for label in ("Page", "Chapter", "IndexTerm"))) for i in ids
            )
            per_text.append((source, len(ids), shapes))
            if len(shapes) > 1:
                problems.append(f"{source}: books of the same text differ in what they store: {dict(shapes)}")
        stray_graph = {bid for (bid, _) in graph_counts} - set(stored)
        if stray_graph:
            problems.append(f"graph nodes of {len(stray_graph)} books that do not exist")

        # Blobs: S3 against the books and the files table.
        keys = set(self.s3_keys())
        wanted = {f"originals/{r[2]}.pdf" for r in rows if r[2]}
        orphan_objects = keys - wanted
        missing_objects = wanted - keys
        for key in sorted(orphan_objects):
            problems.append(f"S3 object without a book: {key}")
        for key in sorted(missing_objects):
            problems.append(f"book content without its S3 object: {key}")

        a = self.api.answers
        out.append("## Ledger")
        out.append(f"wall time {self.wall:.0f} s; {self.args.workers} workers; books {','.join(self.args.books)}")
        out.append(
            f"chaos: {self.kills} worker kills (SIGKILL), {sum(w.starts - 1 for w in self.workers)} worker restarts, "
            f"API restarts {self.api_process.starts - 1 if self.api_process else 0}"
        )
        for seconds, what in self.events:
            if "restarted by" not in what and "killed" not in what:
                out.append(f"  {seconds:6.1f} s  {what}")
        out.append(f"upload actions {self.args.uploads} + {len(self.outage_uploads)} during outages: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        out.append("HTTP answers seen by the client (retries included): " + ", ".join(
            f"{what} {status or 'conn-error'} x{n}" for (what, status), n in sorted(a.items())))
        out.append(f"books created {len(by_id)}; latest job per book: {dict(states)}; book status: {dict(statuses)}")
        for reason, n in dead_reasons.most_common():
            out.append(f"  dead x{n}: {reason}")
        out.append(f"jobs {jobs_total[0]}, attempts {jobs_total[1]}; attempt outcomes {attempt_outcomes}")
        out.append(f"stored: pages {totals[0]}, chunks {totals[1]}, vectors {totals[2]}, graph nodes {node_total}, S3 objects {len(keys)}")
        out.append(
            f"duplicates: pages {dup_pages}, chunks {dup_chunks}, vectors {dup_vectors}, graph ids {dup_nodes}; "
            f"orphans: vectors {orphan_vectors}, S3 objects {len(orphan_objects)}, books without object {len(missing_objects)}"
        )
        out.append("per text (succeeded books: pages, chunks, vectors, graph pages, chapters, index terms):")
        for source, n, shapes in per_text:
            out.append(f"  {source}: {n} books, {' | '.join(f'{s} x{c}' for s, c in shapes.items())}")
        out.append("BALANCED" if not problems else f"NOT BALANCED: {len(problems)} problems")
        for problem in problems[:50]:
            out.append(f"  - {problem}")
        print("\n".join(out), flush=True)
        return not problems

    def teardown(self):
        self.stop_chaos.set()
        for process in [*getattr(self, "workers", []), getattr(self, "api_process", None)]:
            if process:
                process.stop()
        if self.args.keep:
            log(f"services left running; state in {self.state}")
            return
        for name in ("falkordb", "s3", "postgres", "redis"):
            try:
                self.stop_service(name)
            except RuntimeError as err:
                log(str(err))
        shutil.rmtree(self.state, ignore_errors=True)


def read_resp(reader):
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+",):
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return [read_resp(reader) for _ in range(max(n, 0))]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hbi", required=True, help="the release hbi binary")
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="uploads in flight at once")
    parser.add_argument("--pace", type=float, default=1.0, help="mean pause (s) before each upload")
    parser.add_argument("--books", default=",".join(sorted(p.name for p in CORPUS.iterdir() if (p / "book.pdf").exists())))
    parser.add_argument("--kill-every", default="20,60", help="seconds between worker kills: MIN,MAX")
    parser.add_argument("--redis-at", type=float, default=60)
    parser.add_argument("--postgres-at", type=float, default=120)
    parser.add_argument("--s3-at", type=float, default=180)
    parser.add_argument("--restart-pause", type=float, default=5, help="seconds Redis and PostgreSQL stay down")
    parser.add_argument("--heartbeat-secs", type=int, default=5)
    parser.add_argument("--drain-timeout", type=float, default=3600)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--state", default=None)
    parser.add_argument("--keep", action="store_true", help="leave the services running")
    parser.add_argument(
        "--ledger-only",
        action="store_true",
        help="draw the ledger again from the services a --keep run left running in --state",
    )
    args = parser.parse_args()
    args.books = [b for b in args.books.split(",") if b]
    args.kill_every = tuple(float(x) for x in args.kill_every.split(","))
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    log(f"seed {args.seed}")
    run = Run(args)
    pg_bin = subprocess.run(
        ["bash", "-c", 'source "$0" && hbi_postgres_bin', str(SERVICES_SH)], capture_output=True, text=True, check=True
    )
    run.psql = str(Path(pg_bin.stdout.strip()) / "psql")
    balanced = False
    if args.ledger_only:
        saved = json.loads((run.state / "ports.json").read_text())
        run.ports, run.urls = saved["ports"], saved["urls"]
        run.pdfs = {source: (CORPUS / source / "book.pdf").read_bytes() for source in args.books}
        run.books_from_stores()
        run.wall, run.events, run.workers, run.api_process = 0.0, [], [], None
        run.api = CountingApi("", "")
        balanced = run.ledger()
        sys.exit(0 if balanced else 1)
    try:
        run.setup()
        run.run()
        balanced = run.ledger()
    finally:
        run.teardown()
    sys.exit(0 if balanced else 1)


if __name__ == "__main__":
    main()
