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

Usage: bench/run            the full run; writes bench/RESULTS.md
       bench/run --smoke    a short run that proves the harness works (used by CI)
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
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
    if shutil.which("wrk") is None:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "wrk")


def command(server, profile):
    target = ROOT / "target" / ("release" if profile == "release" else "debug")
    if server == "errands":
        return [str(target / "bench-errands"), str(PORT)]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a short run on the debug build (CI)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--servers", default=",".join(RUST + PYTHON),
                        help="comma-separated subset of: " + ", ".join(RUST + PYTHON))
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.smoke else 5)
    args.seconds = args.seconds or (1 if args.smoke else 10)
    args.warmup = args.warmup or (1 if args.smoke else 3)
    output = args.output or (ROOT / "target" / "bench-smoke.md" if args.smoke else BENCH / "RESULTS.md")
    profile = "debug" if args.smoke else "release"

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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    print(f"written to {output}")
    if lost:
        raise SystemExit(f"{lost} tasks were lost")


if __name__ == "__main__":
    main()
