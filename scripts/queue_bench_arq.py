#!/usr/bin/env python3
"""The arq half of the queue benchmark (shared/core/examples/queue_bench.rs runs it).

`bench` starts WORKERS arq worker processes (this script, `worker` mode), enqueues no-op
jobs the same way the Rust half does (a paced latency phase, then a burst), reads the start
line each job prints, and prints one JSON result line. Needs arq on PYTHONPATH
(scripts/bench-queue installs it into ~/.cache/hbi-tools/arq).
"""

import argparse
import asyncio
import datetime
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

WARM_UP_S = 1.5


async def noop(ctx, enqueued_ns, phase):
    started = time.time_ns()
    sys.stdout.write(f"S {phase} {started - enqueued_ns} {started}\n")
    sys.stdout.flush()


def worker(args):
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    Worker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(args.url),
        queue_name=args.queue,
        max_jobs=args.concurrency,
        poll_delay=args.poll_ms / 1000,
        keep_result=0,
    ).run()


def read_starts(stream, sinks):
    for line in stream:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "S" and parts[1] in sinks:
            sinks[parts[1]].put((int(parts[2]), int(parts[3])))


def collect(starts, count, timeout_s):
    deadline = time.monotonic() + timeout_s
    got = []
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            got.append(starts.get(timeout=left))
        except queue.Empty:
            break
    return got


def percentile_ms(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] / 1e6


async def enqueue_all(args, queue_name):
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(args.url), default_queue_name=queue_name)
    try:
        for _ in range(args.latency_jobs):
            await pool.enqueue_job("noop", time.time_ns(), "lat")
            await asyncio.sleep(args.pace_ms / 1000)
        yield "latency-enqueued"
        # Every burst job due at the same whole second (as in queue_bench.rs).
        due_s = time.time_ns() // 1_000_000_000 + 2 + -(-args.jobs // 400)
        due = datetime.datetime.fromtimestamp(due_s, tz=datetime.timezone.utc)
        for _ in range(args.jobs):
            await pool.enqueue_job("noop", time.time_ns(), "burst", _defer_until=due)
        yield time.time_ns() // 1_000_000_000 < due_s
    finally:
        await pool.aclose()


async def bench(args):
    queue_name = f"bench.arq.{args.workers}.{args.concurrency}.{os.getpid()}"
    sinks = {"lat": queue.Queue(), "burst": queue.Queue()}
    children = []
    for _ in range(args.workers):
        child = subprocess.Popen(
            [sys.executable, __file__, "worker", "--url", args.url, "--queue", queue_name,
             "--concurrency", str(args.concurrency), "--poll-ms", str(args.poll_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        threading.Thread(target=read_starts, args=(child.stdout, sinks), daemon=True).start()
        children.append(child)
    await asyncio.sleep(WARM_UP_S)
    try:
        phases = enqueue_all(args, queue_name)
        await phases.__anext__()
        latency = await asyncio.to_thread(collect, sinks["lat"], args.latency_jobs, args.timeout_secs)
        in_time = await phases.__anext__()
        burst = await asyncio.to_thread(collect, sinks["burst"], args.jobs, args.timeout_secs)
        await phases.aclose()
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=30)
    started = sorted(s for _, s in burst)
    rate = (len(started) - 1) / max((started[-1] - started[0]) / 1e9, 1e-9) if len(started) > 1 else float("nan")
    latencies = [l for l, _ in latency]
    def number(x):
        return None if x != x else x  # NaN is not JSON

    print(json.dumps({
        "system": "arq " + __import__("arq").VERSION,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "p50_ms": number(percentile_ms(latencies, 0.50)),
        "p95_ms": number(percentile_ms(latencies, 0.95)),
        "jobs_per_s": number(rate),
        "complete": in_time and len(latency) == args.latency_jobs and len(burst) == args.jobs,
    }))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["bench", "worker"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", default="arq:queue")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--pace-ms", type=int, default=20)
    parser.add_argument("--poll-ms", type=int, default=500)
    parser.add_argument("--timeout-secs", type=int, default=120)
    args = parser.parse_args()
    if args.mode == "worker":
        worker(args)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
