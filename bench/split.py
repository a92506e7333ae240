#!/usr/bin/env python3
"""Where a proxy's CPU goes per request, by `perf` sampling: the kernel's scheduling (switching
the proxy's threads in and out as they sleep and wake), the rest of the kernel (system calls,
loopback TCP, TLS records copied in and out) and user space. Run by bench/run.sh with
BENCH_PERF=1, on the targets it started, after the main figures: Canopy and the bare relay at
32 connections, GET one and LIST 1000. Writes the "split" section of RESULTS.md.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402

START_MARK = "<!-- bench:split:start -->"
END_MARK = "<!-- bench:split:end -->"
FREQ = 4000
CONNS = 32
# Kernel functions where a thread's switch in and out is charged: the scheduler's tail, which
# re-enables interrupts after the switch, and the wake-up path's lock release.
SCHED = ("finish_task_switch", "_raw_spin_unlock_irqrestore", "_raw_spin_unlock_irq", "__schedule", "schedule")


def thread_switches(pid):
    """Voluntary and involuntary context switches of all of `pid`'s threads so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def split(perf_data):
    """Shares of the samples: (scheduling, other kernel, user) in percent."""
    out = subprocess.run(
        ["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym", "-g", "none", "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout
    sched = kernel = user = 0.0
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[(k|\.)\]\s+(\S+)", line)
        if not m:
            continue
        share, space, sym = float(m.group(1)), m.group(2), m.group(3)
        if space == "k":
            if sym.split(".")[0] in SCHED:
                sched += share
            else:
                kernel += share
        else:
            user += share
    return sched, kernel, user


def profile(target, wl, seconds, lua, harness_pid, work):
    """Runs wrk for `seconds` and samples the target in the middle of it."""
    result = {}
    window = max(2, seconds - 4)
    thread = threading.Thread(target=lambda: result.update(driver.wrk(target, wl, CONNS, seconds, lua)))
    thread.start()
    time.sleep(2)
    data = os.path.join(work, f"{target.key}-{wl[0]}.perf")
    api0, px0, sw0 = driver.cpu_seconds(harness_pid), driver.cpu_seconds(target.pid), thread_switches(target.pid)
    t0 = time.monotonic()
    subprocess.run(["perf", "record", "-q", "-F", str(FREQ), "-p", str(target.pid), "-o", data, "--", "sleep", str(window)],
                   check=True, capture_output=True)
    wall = time.monotonic() - t0
    api1, px1, sw1 = driver.cpu_seconds(harness_pid), driver.cpu_seconds(target.pid), thread_switches(target.pid)
    thread.join()
    requests = result["requests"] / (result["duration_us"] / 1e6) * wall
    sched, kernel, user = split(data)
    us = (px1 - px0) / requests * 1e6
    return {
        "rps": requests / wall,
        "us": us,
        "sched": us * sched / 100,
        "kernel": us * kernel / 100,
        "user": us * user / 100,
        "switches": (sw1 - sw0) / requests,
        "api_us": (api1 - api0) / requests * 1e6,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--canopy-url", required=True)
    ap.add_argument("--canopy-pid", type=int, required=True)
    ap.add_argument("--relay-url", required=True)
    ap.add_argument("--relay-pid", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--pinned", default="", help="how processes were pinned to CPUs (BENCH_PIN=1)")
    args = ap.parse_args()
    env = driver.read_env(args.env_file)
    harness_pid = int(env["HARNESS_PID"])
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk.lua")
    targets = [
        driver.Target("canopy", "Canopy", args.canopy_url, env["TOKEN_ADMIN"], None, args.canopy_pid),
        driver.Target("relay", "bare relay", args.relay_url, env["TOKEN_ADMIN"], None, args.relay_pid),
    ]
    workloads = [wl for wl in driver.WORKLOADS if not wl[3]]  # GET one and plain LIST 1000
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    for wl in workloads:
        for target in targets:
            r = profile(target, wl, args.seconds, lua, harness_pid, args.work_dir)
            driver.log(f"split {target.label} {wl[1]}: {r['us']:.0f} µs/request, {r['switches']:.2f} switches/request")
            rows.append((wl[1], target.label, r))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        "## Where the proxy's CPU goes (perf)" + (", the apiserver and the proxies on separate CPUs" if args.pinned else ""),
        "",
        f"- Date: {now}",
        f"- Machine: {driver.machine()}",
        f"- Command: `{args.command}`",
    ]
    if args.pinned:
        lines.append(f"- Pinned: {args.pinned}")
    lines += [
        "",
        "| workload (32 connections) | proxy | req/s | proxy CPU µs/request | scheduling | other kernel | user space "
        "| thread switches/request | apiserver CPU µs/request | proxy ÷ apiserver | kernel alone ÷ apiserver |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, label, r in rows:
        kernel = r["sched"] + r["kernel"]
        lines.append(
            f"| {workload} | {label} | {r['rps']:.0f} | {r['us']:.0f} | {r['sched']:.0f} | {r['kernel']:.0f} "
            f"| {r['user']:.0f} | {r['switches']:.2f} | {r['api_us']:.0f} | {r['us'] / r['api_us']:.3f} "
            f"| {kernel / r['api_us']:.3f} |"
        )
    lines += [
        "",
        f"`perf record -F {FREQ} -p PID` on the proxy for the middle of a wrk run; the proxy's CPU per request",
        "(from /proc) is divided in proportion to the samples: *scheduling* = samples in the kernel's",
        "context-switch and wake-up tail (`finish_task_switch`, `_raw_spin_unlock_irq*`), *other kernel* =",
        "all other kernel samples (system calls, loopback TCP, copies), *user space* = the binary and its",
        "libraries. Thread switches = voluntary + involuntary context switches of all the proxy's threads",
        "(from /proc/PID/task/*/status) per request. *Kernel alone ÷ apiserver* is what the proxy's",
        "kernel share costs relative to the apiserver: a proxy with no user-space work at all would",
        "still cost that much.",
    ]
    section = "\n".join(lines)
    print(section)
    suffix = "-pinned" if args.pinned else ""
    marks = (m.replace("bench:split", "bench:split" + suffix) for m in (START_MARK, END_MARK))
    driver.replace_section(args.results, section, *marks)


if __name__ == "__main__":
    main()
