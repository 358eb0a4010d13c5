#!/usr/bin/env python3
"""Side-by-side load benchmark: errands vs plain axum + tokio::spawn (without and with
tower-http's request-id layers) vs FastAPI + fastapi-tasks vs FastAPI BackgroundTasks.

Each server runs alone on 127.0.0.1, pinned to core 0; wrk runs pinned to core 1 with 64
connections: a warm-up, then a measured window. Per cell: requests/s, p50 and p99 latency,
server CPU microseconds per request (from /proc, meaningful even when the generator is the
bottleneck; also its user-space part), peak RSS, and the task accounting after a drain: any
lost task fails the run. The Rust cells are interleaved, round after round, and each target
ratio is the median of the per-round ratios: cells next to each other in time share the
machine's drift, which on a shared machine moves a single cell by ±10 %.

The durable jobs section runs errands' durable jobs and apalis, both on SQLite, each built as
its own Cargo project under bench/jobs/ (each side has its own lock file and sqlx build) and
printing one JSON object: enqueues per second from HTTP requests (wrk), jobs per second one at
a time and batched, pickup latency of an idle worker, and CPU per job. Each binary runs pinned
to core 0 and pins wrk to core 1; every measure has a fresh SQLite file in WAL mode under
target/bench-jobs-data/.

Its PostgreSQL part runs errands' PostgreSQL store, apalis-postgres and River's Rust client
(riverqueue) the same way, each its own Cargo project too (bench/jobs/errands-postgres,
bench/jobs/apalis-postgres, bench/jobs/riverqueue, sharing bench/jobs/shared/postgres.rs),
against the PostgreSQL server at --postgres-url (default: 127.0.0.1:5432, user postgres, a
superuser). Every measure has its own database, created for it and dropped after it; the
binaries also take the server's side: its CPU, WAL bytes and dead tuples per job. The smoke
run leaves it out (its three debug builds take minutes) unless given --postgres.

The metrics section runs the errands server twice, round after round on the same endpoints:
built without errands' `metrics` feature, and built with it and a Prometheus recorder
installed (bench/servers, feature `metrics`; its own target directory, target/metrics).

Usage: bench/run              the full run; writes bench/RESULTS.md
       bench/run --smoke      a short run that proves the harness works (used by CI)
       bench/run --jobs-only  the durable jobs section alone; replaces only that section of
                              bench/RESULTS.md (or of --output)
       bench/run --metrics-only  the metrics section alone: errands with metrics off and on;
                              replaces only that section
       --no-postgres          leaves out the durable jobs' PostgreSQL part
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = BENCH / ".venv"
ENDPOINTS = [("GET", "/plain"), ("POST", "/task"), ("POST", "/task-io"), ("POST", "/fail")]
RUST = ["errands", "axum", "axum-request-id"]
PYTHON = ["fastapi-tasks", "fastapi-background"]
PORT = 18080


def sh(*cmd, **kwargs):
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def setup(profile):
    if profile == "release":
        sh("cargo", "build", "--release", "--locked", "-p", "errands-bench-servers", cwd=ROOT)
    else:
        sh("cargo", "build", "--locked", "-p", "errands-bench-servers", cwd=ROOT)
    if not (VENV / "bin" / "python").exists():
        sh(sys.executable, "-m", "venv", str(VENV))
    sh(str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
       "-r", str(BENCH / "python" / "requirements.txt"))
    ensure_wrk()


def ensure_wrk():
    if shutil.which("wrk") is None:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "wrk")


def command(server, profile):
    target = ROOT / "target" / ("release" if profile == "release" else "debug")
    if server == "errands":
        return [str(target / "bench-errands"), str(PORT)]
    if server == "errands-metrics":
        metrics = ROOT / "target" / "metrics" / ("release" if profile == "release" else "debug")
        return [str(metrics / "bench-errands"), str(PORT)]
    if server == "axum":
        return [str(target / "bench-axum"), str(PORT)]
    if server == "axum-request-id":
        return [str(target / "bench-axum"), str(PORT), "--request-id"]
    app = "app_tasks:app" if server == "fastapi-tasks" else "app_background:app"
    return [str(VENV / "bin" / "python"), "-m", "uvicorn", app, "--app-dir", str(BENCH / "python"),
            "--port", str(PORT), "--workers", "1", "--no-access-log", "--log-level", "warning"]


def get(path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=timeout) as response:
        return response.read()


def start(server, profile):
    process = subprocess.Popen(["taskset", "-c", "0", *command(server, profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{server} exited at start with {process.returncode}")
        try:
            get("/plain")
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{server} did not start")


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid):
    """(user, user + kernel) CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return utime / tick, (utime + stime) / tick


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(method, path, seconds):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if method == "POST":
        cmd += ["-s", str(BENCH / "post.lua")]
    cmd.append(f"http://127.0.0.1:{PORT}{path}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(map(int, re.findall(r"(?:connect|read|write|timeout) (\d+)", out)))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "errors": errors + non_2xx,
    }


def drain(timeout=30):
    """Waits until every scheduled task finished; returns the final stats."""
    deadline = time.monotonic() + timeout
    while True:
        stats = json.loads(get("/stats"))
        if stats["scheduled"] == stats["finished"] or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def cell(server, method, path, profile, warmup, seconds):
    process = start(server, profile)
    try:
        wrk(method, path, warmup)
        before = cpu_seconds(process.pid)
        result = wrk(method, path, seconds)
        after = cpu_seconds(process.pid)
        per_request = 1e6 / max(result["requests"], 1)
        result["user_us"] = (after[0] - before[0]) * per_request
        result["cpu_us"] = (after[1] - before[1]) * per_request
        stats = drain()
        result["rss_mb"] = peak_rss_mb(process.pid)
        result["scheduled"], result["finished"] = stats["scheduled"], stats["finished"]
        result["lost"] = stats["scheduled"] - stats["finished"]
    finally:
        stop(process)
    print(f"  {server:<20} {method} {path:<9} {result['rps']:>10.0f} req/s  p50 {result['p50_ms']:.2f} ms"
          f"  p99 {result['p99_ms']:.2f} ms  cpu {result['cpu_us']:.1f} us/req (user {result['user_us']:.1f})  rss {result['rss_mb']:.1f} MB"
          f"  tasks {result['finished']}/{result['scheduled']}", flush=True)
    return result


def mean(results, key):
    return statistics.fmean(r[key] for r in results)


def round_ratios(results, a, b, path, key):
    """a ÷ b for each round both ran: neighbours in time, so the machine's drift cancels."""
    return [x[key] / y[key] for x, y in zip(results[(a, path)], results[(b, path)])]


def machine():
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), platform.machine())
    versions = {
        "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
        if shutil.which("wrk") else "?",
    }
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}; " + ", ".join(
        f"{k} {v}" for k, v in versions.items())


def report(results, args, elapsed):
    lines = ["# Benchmark results", ""]
    lines += [f"Command: `bench/run{' --smoke' if args.smoke else ''}` ({args.rounds} round(s) of the Rust cells,"
              f" {args.warmup} s warm-up and {args.seconds} s measured per cell, 64 connections,"
              f" server on core 0, wrk on core 1; {'debug' if args.smoke else 'release'} build).", ""]
    lines += [f"Machine: {machine()}.", "", f"Total time: {elapsed / 60:.1f} min.", "",
              "Each row is the mean of the server's rounds. Server CPU is user plus kernel time of the"
              " server process (the kernel part is mostly TCP on loopback); user is the part spent in"
              " the server's own code and its allocator.", ""]
    for method, path in ENDPOINTS:
        lines += [f"## {method} {path}", "",
                  "| server | req/s | p50 ms | p99 ms | server CPU µs/req | of which user | peak RSS MB | tasks finished/scheduled |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for server in RUST + PYTHON:
            rs = results.get((server, path))
            if not rs:
                continue
            lines.append(f"| {server} | {mean(rs, 'rps'):.0f} | {mean(rs, 'p50_ms'):.2f} | {mean(rs, 'p99_ms'):.2f}"
                         f" | {mean(rs, 'cpu_us'):.1f} | {mean(rs, 'user_us'):.1f} | {max(r['rss_mb'] for r in rs):.1f}"
                         f" | {sum(r['finished'] for r in rs)}/{sum(r['scheduled'] for r in rs)} |")
        lines.append("")

    def rounds(values):
        return ", ".join(f"{v:.2f}" for v in values)

    lines += ["## Targets", "",
              "errands ÷ plain axum is the median of the per-round ratios (each round's errands cell"
              " ÷ the plain-axum cell next to it); every round's ratio is listed.", "",
              "| target | ratio | met | per round |", "|---|---:|---|---|"]
    targets = [("/task: errands CPU per request ≤ 1.10× plain axum", "/task", "cpu_us", 1.10),
               ("/task: errands p99 ≤ 1.25× plain axum", "/task", "p99_ms", 1.25),
               ("/fail: errands CPU per request ≤ 1.3× plain axum", "/fail", "cpu_us", 1.3)]
    for name, path, key, bound in targets:
        if ("errands", path) in results and ("axum", path) in results:
            each = round_ratios(results, "errands", "axum", path, key)
            value = statistics.median(each)
            lines.append(f"| {name} | {value:.2f}× | {'yes' if value <= bound else 'no'} | {rounds(each)} |")
    if ("fastapi-tasks", "/task") in results and ("errands", "/task") in results:
        # Python runs once: its cell ÷ the median Rust round.
        python = mean(results[("fastapi-tasks", "/task")], "cpu_us")

        def times(server):
            return python / statistics.median(r["cpu_us"] for r in results[(server, "/task")])

        value = times("errands")
        floor = f"plain axum: {times('axum'):.1f}×" if ("axum", "/task") in results else ""
        lines.append(f"| /task: fastapi-tasks CPU per request ≥ 35× errands | {value:.2f}×"
                     f" | {'yes' if value >= 35 else 'no'} | {floor} |")
    if all(("axum-request-id", p) in results and ("errands", p) in results for _, p in ENDPOINTS):
        lines += ["", "## Against axum with tower-http's request-id layers", "",
                  "errands always sets and echoes a request id; `axum-request-id` is the floor with"
                  " tower-http's `SetRequestIdLayer` and `PropagateRequestIdLayer` (`MakeRequestUuid`,"
                  " whose UUIDv4 costs one `getrandom` system call per request). Medians of the"
                  " per-round ratios.", "",
                  "| endpoint | errands ÷ axum-request-id, CPU per request | user CPU | p99 |", "|---|---:|---:|---:|"]
        for _, path in ENDPOINTS:
            cells = [statistics.median(round_ratios(results, "errands", "axum-request-id", path, key))
                     for key in ("cpu_us", "user_us", "p99_ms")]
            lines.append(f"| {path} | " + " | ".join(f"{c:.2f}×" for c in cells) + " |")
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    errors = sum(r["errors"] for rs in results.values() for r in rs)
    lines += ["", f"Lost tasks: {lost}. Request errors (socket errors or non-2xx): {errors}.", ""]
    return "\n".join(lines), lost


# ---- Durable jobs: errands vs apalis, both on SQLite ----------------------------------------

JOBS = ["errands", "apalis"]
JOBS_BEGIN, JOBS_END = "<!-- durable-jobs:begin -->", "<!-- durable-jobs:end -->"


def jobs_target_dir(system):
    return ROOT / "target" / f"bench-jobs-{system}"


def jobs_setup(profile, systems):
    """Builds each side in its own target directory: one Cargo project, one lock file each."""
    for system in systems:
        manifest = BENCH / "jobs" / system / "Cargo.toml"
        build = ["cargo", "build", "--manifest-path", str(manifest)]
        # errands' sides follow the library's own dependencies, which change with it: their
        # lock files may gain them here. The peers' sides are pinned.
        if not system.startswith("errands"):
            build.insert(2, "--locked")
        if profile == "release":
            build.append("--release")
        began = time.monotonic()
        sh(*build, env={**os.environ, "CARGO_TARGET_DIR": str(jobs_target_dir(system))})
        print(f"  built {system} ({profile}) in {time.monotonic() - began:.0f} s", flush=True)
    ensure_wrk()


def jobs_cell(system, profile, args):
    binary = jobs_target_dir(system) / profile / f"bench-jobs-{system}"
    data = ROOT / "target" / "bench-jobs-data" / system
    shutil.rmtree(data, ignore_errors=True)
    cmd = ["taskset", "-c", "0", str(binary), "--dir", str(data), "--jobs", str(args.job_count),
           "--synchronous", args.synchronous, "--wrk-seconds", str(args.seconds),
           "--wrk-warmup", str(args.warmup), "--wrk-connections", "64", "--wrk-cpu", "1",
           "--rate", str(args.pickup_rate), "--latency-seconds", str(args.pickup_seconds)]
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600).stdout
    result = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(data, ignore_errors=True)
    print(f"  {system:<8} enqueue {result['enqueue']['ok_per_s']:>8.0f}/s"
          f"  one-at-a-time {result['one_at_a_time']['jobs_per_s']:>7.0f} jobs/s"
          f"  batched {result['batched']['jobs_per_s']:>7.0f} jobs/s"
          f"  pickup p50 {result['pickup']['p50_ms']:.2f} ms p99 {result['pickup']['p99_ms']:.2f} ms"
          f"  cpu {result['one_at_a_time']['cpu_us_per_job']:.0f} / {result['batched']['cpu_us_per_job']:.0f} us/job",
          flush=True)
    return result


# (label, path into the JSON, higher is better, format)
JOB_ROWS = [
    ("enqueue from requests /s", ("enqueue", "ok_per_s"), True, "{:.0f}"),
    ("one-at-a-time jobs/s", ("one_at_a_time", "jobs_per_s"), True, "{:.0f}"),
    ("batched jobs/s", ("batched", "jobs_per_s"), True, "{:.0f}"),
    ("pickup p50 ms", ("pickup", "p50_ms"), False, "{:.2f}"),
    ("pickup p99 ms", ("pickup", "p99_ms"), False, "{:.2f}"),
    ("CPU µs/job, one at a time", ("one_at_a_time", "cpu_us_per_job"), False, "{:.0f}"),
    ("CPU µs/job, batched", ("batched", "cpu_us_per_job"), False, "{:.0f}"),
]


def locked_version(system, package):
    lock = (BENCH / "jobs" / system / "Cargo.lock").read_text()
    found = re.search(rf'name = "{re.escape(package)}"\nversion = "([^"]+)"', lock)
    return found.group(1) if found else "?"


def jobs_value(results, system, path):
    """The median over the rounds."""
    return statistics.median(r[path[0]][path[1]] for r in results[system])


def jobs_report(results, args, elapsed):
    profile = "debug" if args.smoke else "release"
    flags = " --smoke" if args.smoke else ""
    flags += " --jobs-only" if args.jobs_only else ""
    lines = [JOBS_BEGIN, "## Durable jobs: errands vs apalis, on SQLite", ""]
    lines += [f"Command: `bench/run{flags}` ({args.job_rounds} round(s); {profile} build). Versions:"
              f" apalis {locked_version('apalis', 'apalis')}, apalis-sqlite"
              f" {locked_version('apalis', 'apalis-sqlite')} with sqlx {locked_version('apalis', 'sqlx')};"
              f" errands with sqlx {locked_version('errands', 'sqlx')}; SQLite bundled by libsqlite3-sys"
              f" {locked_version('errands', 'libsqlite3-sys')} / {locked_version('apalis', 'libsqlite3-sys')}.", "",
              f"Machine: {machine()}. Time for this section: {elapsed / 60:.1f} min.", "",
              "Each side is one process (bench/jobs/errands, bench/jobs/apalis) pinned to core 0,"
              " a tokio runtime of one worker thread; every measure has a fresh SQLite file in WAL"
              f" mode with `synchronous = {args.synchronous.upper()}`, through a pool of sqlx's default"
              " size. The job is trivial (it counts itself and records its pickup latency), so the"
              " queue's machinery is what is measured.", "",
              f"- **enqueue from requests**: an axum handler enqueues one job per POST; wrk on core 1,"
              f" 64 connections, {args.warmup} s warm-up then {args.seconds} s; 2xx responses per second."
              " No worker drains: errands' worker runs with the only slot of its queue held by a job"
              " that never ends (`job_queue(\"default\", 1)`); apalis runs no worker. errands' handler"
              " sits behind `errands.layer()` and is served by `Errands::serve`; apalis' by `axum::serve`.",
              f"- **one-at-a-time / batched**: {args.job_count:,} jobs stored before the worker starts;"
              " jobs per second from the worker's start until the last one ran. One at a time:"
              " errands `job_queue(\"default\", 1)` (each claim takes one job); apalis `batch_size(1)`"
              " and `concurrency(1)`. Batched: errands' default concurrency of 16 (claims of up to 16);"
              " apalis `batch_size(16)` and `concurrency(16)`.",
              f"- **pickup**: an idle worker; {args.pickup_rate} jobs/s enqueued one at a time for"
              f" {args.pickup_seconds} s; each job's start minus the enqueue time carried in its"
              " arguments. errands' enqueue wakes its worker in process (and it polls every second);"
              " apalis runs its event-driven storage (SQLite's update hook on its pool wakes the"
              " worker; also an interval of one second).",
              "- **CPU per job**: user + system CPU of the whole process during the one-at-a-time and"
              " the batched drain (getrusage), divided by the jobs run.",
              "- apalis' own `setup()` creates each database (its migrations, WAL, `PRAGMA optimize`);"
              " its per-connection pragmas, among them `synchronous = OFF`, stay with the connection"
              " it ran on, which is closed, so that both sides write with the same settings.", ""]
    lines += ["| measure | errands | apalis | errands ÷ apalis | ahead |", "|---|---:|---:|---:|---|"]
    for label, path, higher, fmt in JOB_ROWS:
        if not all(results.get(s) for s in JOBS):
            break
        e, a = jobs_value(results, "errands", path), jobs_value(results, "apalis", path)
        ratio = e / a if a else float("nan")
        ahead = "errands" if (e > a) == higher else "apalis"
        if abs(ratio - 1) < 0.03:
            ahead = "even (within 3 %)"
        lines.append(f"| {label} | {fmt.format(e)} | {fmt.format(a)} | {ratio:.2f}× | {ahead} |")
    lines += ["", "apalis' drain rates depend on how many jobs its table holds, so on the job count above:"
              " apalis-sqlite's acknowledgement (`UPDATE Jobs … FROM` a CTE over `json_each(?)`"
              " `WHERE Jobs.lock_by = ?`) is planned as a walk over every job the worker has locked"
              " so far, done ones included, re-reading the batch's JSON for each, and its lock"
              " statement walks the claimable jobs; in a profile, SQLite's JSON functions take most of"
              " its CPU. errands' claim and completion statements use its partial index and the"
              " primary key, at a cost that does not grow with the table.", ""]
    if results.get("errands"):
        one = jobs_value(results, "errands", ("one_at_a_time", "jobs_per_s"))
        enq = jobs_value(results, "errands", ("enqueue", "ok_per_s"))
        lines += ["Targets for errands:", "",
                  "| target | errands | met |", "|---|---:|---|",
                  f"| ≥ 3,000 jobs/s one at a time | {one:.0f} | {'yes' if one >= 3000 else 'no'} |",
                  f"| ≥ 10,000 enqueues/s from requests | {enq:.0f} | {'yes' if enq >= 10000 else 'no'} |", ""]
    lines.append("Checks, per round:")
    lines.append("")
    for system in JOBS:
        for r in results.get(system, []):
            lines.append(f"- {system}: {r['enqueue']['ok']:.0f} enqueue responses 2xx and"
                         f" {r['enqueue']['errors']:.0f} errors, {r['enqueue']['stored']} jobs stored"
                         f" (warm-up included); every drained job recorded done in the store"
                         f" {r['one_at_a_time']['recorded_s'] - r['one_at_a_time']['seconds']:.3f} s /"
                         f" {r['batched']['recorded_s'] - r['batched']['seconds']:.3f} s after the last"
                         f" one ran (one at a time / batched); pickup max {r['pickup']['max_ms']:.2f} ms.")
    lines += ["", JOBS_END, ""]
    return "\n".join(lines)


# ---- Durable jobs on PostgreSQL: errands vs apalis vs riverqueue ---------------------------

PG_JOBS = ["errands-postgres", "apalis-postgres", "riverqueue"]
PG_NAMES = {"errands-postgres": "errands", "apalis-postgres": "apalis", "riverqueue": "riverqueue"}


def postgres_reachable(url):
    found = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", url)
    host, port = (found.group(1), int(found.group(2) or 5432)) if found else ("127.0.0.1", 5432)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        raise SystemExit(f"PostgreSQL does not answer at {host}:{port} ({error}): start it, or"
                         " leave the PostgreSQL part out with --no-postgres")


def pg_cell(system, profile, args):
    binary = jobs_target_dir(system) / profile / f"bench-jobs-{system}"
    cmd = ["taskset", "-c", "0", str(binary), "--server", args.postgres_url,
           "--jobs", str(args.job_count), "--wrk-seconds", str(args.seconds),
           "--wrk-warmup", str(args.warmup), "--wrk-connections", "64", "--wrk-cpu", "1",
           "--rate", str(args.pickup_rate), "--latency-seconds", str(args.pickup_seconds)]
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"  {PG_NAMES[system]:<10} enqueue {result['enqueue']['ok_per_s']:>8.0f}/s"
          f"  one-at-a-time {result['one_at_a_time']['jobs_per_s']:>7.0f} jobs/s"
          f"  batched {result['batched']['jobs_per_s']:>7.0f} jobs/s"
          f"  pickup p50 {result['pickup']['p50_ms']:.2f} ms p99 {result['pickup']['p99_ms']:.2f} ms"
          f"  cpu {result['one_at_a_time']['cpu_us_per_job']:.0f} / {result['batched']['cpu_us_per_job']:.0f} us/job"
          f"  postgres cpu {result['one_at_a_time']['pg']['db_cpu_us_per_job']:.0f} /"
          f" {result['batched']['pg']['db_cpu_us_per_job']:.0f} us/job"
          f"  wal {result['batched']['pg']['wal_record_bytes_per_job']:.0f} B/job"
          f"  dead {result['batched']['tables']['dead_tuples_per_job']:.2f}/job", flush=True)
    return result


# (label, path into the JSON, higher is better, format)
PG_ROWS = [
    ("enqueue from requests /s", ("enqueue", "ok_per_s"), True, "{:.0f}"),
    ("one-at-a-time jobs/s", ("one_at_a_time", "jobs_per_s"), True, "{:.0f}"),
    ("batched jobs/s", ("batched", "jobs_per_s"), True, "{:.0f}"),
    ("pickup p50 ms", ("pickup", "p50_ms"), False, "{:.2f}"),
    ("pickup p99 ms", ("pickup", "p99_ms"), False, "{:.2f}"),
    ("process CPU µs/job, one at a time", ("one_at_a_time", "cpu_us_per_job"), False, "{:.0f}"),
    ("process CPU µs/job, batched", ("batched", "cpu_us_per_job"), False, "{:.0f}"),
    ("PostgreSQL CPU µs/enqueue, from requests", ("enqueue", "pg", "db_cpu_us_per_job"), False, "{:.0f}"),
    ("PostgreSQL CPU µs/job, one at a time", ("one_at_a_time", "pg", "db_cpu_us_per_job"), False, "{:.0f}"),
    ("PostgreSQL CPU µs/job, batched", ("batched", "pg", "db_cpu_us_per_job"), False, "{:.0f}"),
    ("WAL bytes/job, storing the batch", ("batched", "store", "wal_record_bytes_per_job"), False, "{:.0f}"),
    ("WAL bytes/job, batched drain", ("batched", "pg", "wal_record_bytes_per_job"), False, "{:.0f}"),
    ("WAL bytes/job, steady enqueue + run", ("pickup", "pg", "wal_record_bytes_per_job"), False, "{:.0f}"),
    ("WAL bytes/job, batched drain, LSN difference", ("batched", "pg", "wal_bytes_per_job"), False, "{:.0f}"),
    ("WAL bytes/job, steady, LSN difference", ("pickup", "pg", "wal_bytes_per_job"), False, "{:.0f}"),
    ("dead tuples/job after the batched drain", ("batched", "tables", "dead_tuples_per_job"), False, "{:.2f}"),
    ("dead tuples/job after the steady run", ("pickup", "tables", "dead_tuples_per_job"), False, "{:.2f}"),
]


def pg_value(results, system, path):
    """The median over the rounds."""
    def one(r):
        for key in path:
            r = r[key]
        return r
    return statistics.median(one(r) for r in results[system])


def pg_report(results, args, elapsed):
    profile = "debug" if args.smoke else "release"
    flags = " --smoke --postgres" if args.smoke else ""
    flags += " --jobs-only" if args.jobs_only else ""
    any_result = next(iter(results.values()))[0]
    settings = ", ".join(f"{k} = {v}" for k, v in any_result.get("postgres_settings", {}).items())
    count = args.job_count
    lines = ["## Durable jobs on PostgreSQL: errands vs apalis vs riverqueue", ""]
    lines += [f"Command: `bench/run{flags}` ({args.job_rounds} round(s); {profile} build), the"
              f" PostgreSQL part of the same run. Versions: errands' PgStore with sqlx"
              f" {locked_version('errands-postgres', 'sqlx')}; apalis"
              f" {locked_version('apalis-postgres', 'apalis')}, apalis-postgres"
              f" {locked_version('apalis-postgres', 'apalis-postgres')} with sqlx"
              f" {locked_version('apalis-postgres', 'sqlx')}; riverqueue"
              f" {locked_version('riverqueue', 'riverqueue')} with sqlx"
              f" {locked_version('riverqueue', 'sqlx')}. PostgreSQL"
              f" {any_result.get('postgres', '?')} on 127.0.0.1, the same server for all three"
              f" ({settings}).", "",
              f"Machine: {machine()}. Time for this part: {elapsed / 60:.1f} min.", "",
              "Each side is one process (bench/jobs/errands-postgres, bench/jobs/apalis-postgres,"
              " bench/jobs/riverqueue) pinned to core 0, a tokio runtime of one worker thread,"
              " through a pool of sqlx's default size (10 connections); the server's processes are"
              " not pinned, so they share both cores with the process and with wrk. Every measure"
              " has its own database (`errands_bench_<system>_<measure>`), created for it with the"
              " system's own migrations and dropped after it; a `CHECKPOINT` follows the"
              " migrations. The job is trivial (it counts itself and records its pickup latency), so"
              " the queue's machinery is what is measured. The measures are those of SQLite above:",
              "",
              f"- **enqueue from requests**: as on SQLite, {args.warmup} s warm-up then"
              f" {args.seconds} s of wrk (core 1, 64 connections); errands' worker holds its only"
              " slot, apalis runs no worker, riverqueue's client works no queue.",
              f"- **one-at-a-time / batched**: {count:,} jobs stored in one transaction before the"
              " worker starts (errands `PgStore::enqueue_in` per job, apalis `push_bulk`, riverqueue"
              " `insert_many`); jobs per second until the last one ran. One at a time: errands"
              " `job_queue(\"default\", 1)`, apalis `batch_size(1)` + `concurrency(1)`, riverqueue"
              " `QueueConfig::new(1)`. Batched: errands' default 16 (claims of up to the free"
              " slots), apalis `batch_size(16)` + `concurrency(16)`, riverqueue"
              " `QueueConfig::new(16)` (it claims up to the free workers).",
              f"- **pickup**: an idle worker; {args.pickup_rate} jobs/s enqueued one at a time for"
              f" {args.pickup_seconds} s. Wake-ups: errands' enqueue wakes its own worker in process"
              " and its trigger NOTIFYs `errands_jobs` for other processes (it polls every second);"
              " apalis' worker listens to its insert trigger's NOTIFY (`Pubsub`) and polls every"
              " second; riverqueue's client listens for its insert notifications and polls every"
              " second.",
              "- **riverqueue's fetch cooldown**: River paces fetches (and its insert notifications)"
              " by a cooldown, 100 ms by default, which caps one-at-a-time work at ~10 jobs/s; it"
              f" runs here with {any_result_value(results, 'riverqueue', 'fetch_cooldown_ms')} ms,"
              " the least River accepts. Everything else is each system's default.",
              "- **process CPU per job**: user + system CPU of the whole process during the drain"
              " (getrusage), divided by the jobs run.",
              "- **PostgreSQL CPU per job**: user + system CPU, from /proc, of the server's backends"
              " connected to the measure's database (`pg_stat_activity.datname`), from before the"
              " measured window to after the store shows every job done, divided by the jobs; a"
              " backend that connected meanwhile counts whole. The connection the harness checks"
              " results on is left out. The whole server's CPU (every process of the postmaster,"
              " with its reaped children) is in the checks below.",
              "- **WAL bytes per job**: the bytes of the WAL records that belong to the measure's"
              " database (those naming one of its relations, and the commit records of their"
              " transactions), read with pg_walinspect between the LSNs around the window (a"
              " temporary replication slot keeps that WAL); the storing of the batch and its drain"
              " apart; \"steady\" is the pickup run, each job enqueued in its own transaction. The"
              " `pg_wal_lsn_diff` of `pg_current_wal_lsn()` around the same windows is also given:"
              " it counts page headers and the whole server's WAL, another database's writes"
              " included, so it only matches on a quiet server.",
              "- **dead tuples per job**: `n_dead_tup` of `pg_stat_user_tables` summed over the"
              " queue's tables (all but the migrations' bookkeeping) after the run, read once every"
              " connection of the system is closed (a backend flushes its statistics as it exits;"
              " then `pg_stat_force_next_flush()` and `pg_stat_clear_snapshot()`), divided by the"
              " jobs. On this server autovacuum is off (as in the settings above), so nothing was"
              " vacuumed meanwhile: it is the dead row versions the run left.",
              "- **planner statistics**: with autovacuum off there is no autoanalyze either, and no"
              " measure runs ANALYZE: each system's queries are planned without statistics on its"
              " fresh tables (as in a new installation before autoanalyze first runs).", ""]
    systems = [s for s in PG_JOBS if results.get(s)]
    lines += ["| measure | " + " | ".join(PG_NAMES[s] for s in systems)
              + " | errands ÷ best peer | ahead |",
              "|---|" + "---:|" * len(systems) + "---:|---|"]
    for label, path, higher, fmt in PG_ROWS:
        values = {s: pg_value(results, s, path) for s in systems}
        cells = " | ".join(fmt.format(values[s]) for s in systems)
        ratio, ahead = "", ""
        peers = {s: v for s, v in values.items() if s != "errands-postgres"}
        if "errands-postgres" in values and peers:
            e = values["errands-postgres"]
            best_name, best = (max if higher else min)(peers.items(), key=lambda kv: kv[1])
            ratio = f"{e / best:.2f}×" if best else "—"
            if best and abs(e / best - 1) < 0.03:
                ahead = f"even with {PG_NAMES[best_name]} (within 3 %)"
            elif (e > best) == higher:
                ahead = "errands"
            else:
                ahead = PG_NAMES[best_name]
        lines.append(f"| {label} | {cells} | {ratio} | {ahead} |")
    lines.append("")
    if results.get("errands-postgres"):
        one = pg_value(results, "errands-postgres", ("one_at_a_time", "jobs_per_s"))
        batched = pg_value(results, "errands-postgres", ("batched", "jobs_per_s"))
        lines += ["Targets for errands on PostgreSQL (this 2-core machine):", "",
                  "| target | errands | met |", "|---|---:|---|",
                  f"| ≥ 1,000 jobs/s one at a time | {one:.0f} | {'yes' if one >= 1000 else 'no'} |",
                  f"| ≥ 5,000 jobs/s batched | {batched:.0f} | {'yes' if batched >= 5000 else 'no'} |", ""]
    lines += ["Checks, per round:", ""]
    for system in systems:
        for r in results[system]:
            b, o, p = r["batched"], r["one_at_a_time"], r["pickup"]
            lingering = sum(r[m]["tables"]["lingering_backends"] for m in ("one_at_a_time", "batched", "pickup"))
            gone = sum(r[m]["pg"]["backends_gone"] for m in ("enqueue", "one_at_a_time", "batched", "pickup"))
            fpi = sum(r[m]["pg"]["wal_fpi_bytes"] for m in ("one_at_a_time", "batched", "pickup"))
            lines.append(f"- {PG_NAMES[system]}: {r['enqueue']['ok']:.0f} enqueue responses 2xx and"
                         f" {r['enqueue']['errors']:.0f} errors, {r['enqueue']['stored']} jobs stored"
                         f" (warm-up included); every drained job recorded done in the store"
                         f" {o['recorded_s'] - o['seconds']:.3f} s / {b['recorded_s'] - b['seconds']:.3f} s"
                         f" after the last one ran; pickup max {p['max_ms']:.2f} ms; whole-server CPU"
                         f" {o['pg']['server_cpu_us_per_job']:.0f} / {b['pg']['server_cpu_us_per_job']:.0f}"
                         f" µs/job (one at a time / batched); full-page images in the drains and the"
                         f" steady run: {fpi} bytes; backends that ended inside a window: {gone};"
                         f" still connected when the tables were read: {lingering}; dead tuples by"
                         f" table after the batched drain: {b['tables']['dead_by_table']}.")
    lines.append("")
    return "\n".join(lines)


def any_result_value(results, system, key):
    rs = results.get(system)
    return rs[0].get(key, "?") if rs else "?"


def run_jobs(args):
    """Builds and runs every side, round after round, changing who goes first."""
    began = time.monotonic()
    profile = "debug" if args.smoke else "release"
    postgres = args.postgres and not args.no_postgres
    if postgres:
        postgres_reachable(args.postgres_url)
    jobs_setup(profile, JOBS + (PG_JOBS if postgres else []))
    results = {}
    for round_ in range(args.job_rounds):
        print(f"durable jobs, round {round_ + 1} of {args.job_rounds}", flush=True)
        for system in (JOBS if round_ % 2 == 0 else list(reversed(JOBS))):
            results.setdefault(system, []).append(jobs_cell(system, profile, args))
    sqlite_elapsed = time.monotonic() - began
    raw = ROOT / "target" / "bench-jobs-results.json"
    raw.write_text(json.dumps(results, indent=1))
    print(f"raw results written to {raw}", flush=True)
    section = jobs_report(results, args, sqlite_elapsed)
    if not postgres:
        return section
    began = time.monotonic()
    pg_results = {}
    for round_ in range(args.job_rounds):
        print(f"durable jobs on PostgreSQL, round {round_ + 1} of {args.job_rounds}", flush=True)
        shift = round_ % len(PG_JOBS)
        for system in PG_JOBS[shift:] + PG_JOBS[:shift]:
            pg_results.setdefault(system, []).append(pg_cell(system, profile, args))
    raw = ROOT / "target" / "bench-jobs-postgres-results.json"
    raw.write_text(json.dumps(pg_results, indent=1))
    print(f"raw results written to {raw}", flush=True)
    pg_section = pg_report(pg_results, args, time.monotonic() - began)
    return section.replace(JOBS_END, pg_section + "\n" + JOBS_END)


def replace_section(text, section, begin_marker, end_marker):
    """`text` with the section between the markers replaced by `section` (appended if it has
    none)."""
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin >= 0 and end > begin:
        return text[:begin] + section.rstrip("\n") + text[end + len(end_marker):]
    return text.rstrip("\n") + "\n\n" + section


def replace_jobs_section(text, section):
    """`text` with its durable jobs section replaced by `section` (appended if it has none)."""
    return replace_section(text, section, JOBS_BEGIN, JOBS_END)


# ---- The cost of metrics under load: errands with metrics off and on ----------------------

METRICS_BEGIN, METRICS_END = "<!-- metrics-load:start -->", "<!-- metrics-load:end -->"
METRICS_ENDPOINTS = [("POST", "/task"), ("POST", "/fail")]


def run_metrics(args):
    profile = "debug" if args.smoke else "release"
    build = ["cargo", "build", "--locked", "-p", "errands-bench-servers", "--bin", "bench-errands"]
    if profile == "release":
        build.append("--release")
    sh(*build, cwd=ROOT)
    sh(*build, "--features", "metrics", cwd=ROOT,
       env={**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target" / "metrics")})
    ensure_wrk()
    began = time.monotonic()
    servers = ["errands", "errands-metrics"]
    results = {}
    for round_ in range(args.rounds):
        print(f"metrics, round {round_ + 1} of {args.rounds}", flush=True)
        for method, path in METRICS_ENDPOINTS:
            for server in servers if round_ % 2 == 0 else list(reversed(servers)):
                results.setdefault((server, path), []).append(
                    cell(server, method, path, profile, args.warmup, args.seconds))
    lines = [METRICS_BEGIN, "", "### Under load (`bench/run --metrics-only`)", "",
             f"Command: `bench/run --metrics-only` ({args.rounds} round(s), {profile} build; "
             f"server on core 0, wrk on core 1, {args.warmup} s warm-up then {args.seconds} s). "
             f"Machine: {machine()}. Time: {(time.monotonic() - began) / 60:.1f} min.", "",
             "The same errands server (bench/servers, `bench-errands`) built without errands' "
             "`metrics` feature, and with it and a Prometheus recorder installed, in alternating "
             "order round after round; the ratio is the median of the per-round ratios.", "",
             "| endpoint | CPU µs/request, off | CPU µs/request, on | on ÷ off (median, range) "
             "| req/s off | req/s on |",
             "|---|---:|---:|---:|---:|---:|"]
    lost = 0
    for method, path in METRICS_ENDPOINTS:
        off, on = results[("errands", path)], results[("errands-metrics", path)]
        ratios = round_ratios(results, "errands-metrics", "errands", path, "cpu_us")
        lines.append(f"| {method} {path} | {mean(off, 'cpu_us'):.1f} | {mean(on, 'cpu_us'):.1f} | "
                     f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) | "
                     f"{mean(off, 'rps'):.0f} | {mean(on, 'rps'):.0f} |")
        lost += sum(r["lost"] for r in off + on)
    lines += ["", METRICS_END, ""]
    if lost:
        raise SystemExit(f"{lost} tasks were lost")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a short run on the debug build (CI)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--servers", default=",".join(RUST + PYTHON),
                        help="comma-separated subset of: " + ", ".join(RUST + PYTHON))
    parser.add_argument("--jobs-only", action="store_true",
                        help="only the durable jobs section; replaces that section of the output")
    parser.add_argument("--no-jobs", action="store_true", help="skip the durable jobs section")
    parser.add_argument("--metrics-only", action="store_true",
                        help="only the metrics section (errands with metrics off and on); replaces"
                             " that section of the output")
    parser.add_argument("--job-count", type=int, default=None,
                        help="jobs stored before each drain (default 20000; 300 with --smoke)")
    parser.add_argument("--job-rounds", type=int, default=1)
    parser.add_argument("--pickup-rate", type=int, default=None, help="jobs/s (default 200)")
    parser.add_argument("--pickup-seconds", type=int, default=None, help="default 5")
    parser.add_argument("--synchronous", default="normal", choices=["off", "normal", "full"],
                        help="SQLite's synchronous setting for both job systems")
    parser.add_argument("--no-postgres", action="store_true",
                        help="leave out the durable jobs' PostgreSQL part")
    parser.add_argument("--postgres", action="store_true",
                        help="run the durable jobs' PostgreSQL part in a smoke run too")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="the PostgreSQL server (a superuser, on this machine), through its"
                             " postgres database")
    args = parser.parse_args()
    # The full runs include the PostgreSQL part; the smoke run only when asked.
    args.postgres = args.postgres or not args.smoke
    args.rounds = args.rounds or (1 if args.smoke else 5)
    args.seconds = args.seconds or (1 if args.smoke else 10)
    args.warmup = args.warmup or (1 if args.smoke else 3)
    args.job_count = args.job_count or (300 if args.smoke else 20_000)
    args.pickup_rate = args.pickup_rate or (100 if args.smoke else 200)
    args.pickup_seconds = args.pickup_seconds or (1 if args.smoke else 5)
    output = args.output or (ROOT / "target" / "bench-smoke.md" if args.smoke else BENCH / "RESULTS.md")
    profile = "debug" if args.smoke else "release"

    if args.metrics_only:
        section = run_metrics(args)
        output.parent.mkdir(parents=True, exist_ok=True)
        previous = output.read_text() if output.exists() else "# Benchmark results\n"
        output.write_text(replace_section(previous, section, METRICS_BEGIN, METRICS_END))
        print(section)
        print(f"written to {output}")
        return

    if args.jobs_only:
        section = run_jobs(args)
        output.parent.mkdir(parents=True, exist_ok=True)
        previous = output.read_text() if output.exists() else "# Benchmark results\n"
        output.write_text(replace_jobs_section(previous, section))
        print(section)
        print(f"written to {output}")
        return

    began = time.monotonic()
    setup(profile)
    chosen = args.servers.split(",")
    results = {}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1} of {args.rounds}", flush=True)
        for method, path in ENDPOINTS:
            order = RUST if round_ % 2 == 0 else list(reversed(RUST))
            if round_ == 0:
                order = order + PYTHON
            order = [s for s in order if s in chosen]
            for server in order:
                results.setdefault((server, path), []).append(
                    cell(server, method, path, profile, args.warmup, args.seconds))
    text, lost = report(results, args, time.monotonic() - began)
    if not args.no_jobs:
        text = text.rstrip("\n") + "\n\n" + run_jobs(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    print(f"written to {output}")
    if lost:
        raise SystemExit(f"{lost} tasks were lost")


if __name__ == "__main__":
    main()
