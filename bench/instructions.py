#!/usr/bin/env python3
"""Counts the user-space instructions Canopy and the bare relay execute per request, under
callgrind. Each target is started twice under valgrind and sent a small and a large number of
the same request over one keep-alive HTTP/1.1 connection; the difference between the two
totals, divided by the difference in requests, is the cost of one request with start-up,
handshakes and the first (uncached) token review taken out. The count does not depend on
timing or on what else runs on the machine, so it shows changes of a few percent that the
CPU-time figures of run.sh cannot. It covers user space only: system calls, the kernel's TCP
work and context switches are not in it. Called by bench/instructions.sh.
"""

import argparse
import datetime
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (shares seeding, HTTP helpers and RESULTS.md handling)

START_MARK = "<!-- bench:instructions:start -->"
END_MARK = "<!-- bench:instructions:end -->"

# (key, label, path, small count, large count)
WORKLOADS = [
    ("get", "GET one", f"/api/v1/namespaces/{driver.NS}/configmaps/one", 200, 1200),
    (
        "list",
        "LIST 1000",
        f"/api/v1/namespaces/{driver.NS}/configmaps?labelSelector={urllib.parse.quote(driver.LABEL)}",
        4,
        24,
    ),
]


def log(msg):
    print(f"[instructions] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One target under callgrind; `count()` stops it and returns the instructions it executed."""

    def __init__(self, name, argv, ready_url, work):
        self.name, self.work = name, work
        self.out = os.path.join(work, f"{name}.callgrind")
        for stale in glob.glob(self.out + "*"):
            os.remove(stale)
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}.%p", *argv]
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        env = dict(os.environ, CANOPY_LOG="warn,rustls=error")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.wait_ready(ready_url)

    def wait_ready(self, url):
        target = driver.Target("probe", "probe", url)
        deadline = time.monotonic() + 120
        path = urllib.parse.urlsplit(url).path
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited under valgrind; see {self.log.name}")
            try:
                if target.request("GET", path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} not ready under valgrind after 120 s; see {self.log.name}")

    def count(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        total = 0
        for path in glob.glob(self.out + ".*"):
            with open(path) as f:
                for line in f:
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
        if not total:
            raise SystemExit(f"no callgrind summary for {self.name}; see {self.log.name}")
        return total


def send(target, path, n):
    """`n` requests over one keep-alive connection; every answer must be a 200."""
    conn = target.connect(timeout=300)
    try:
        for _ in range(n):
            st, _, raw = target.request("GET", path, conn=conn)
            if st != 200:
                raise SystemExit(f"{target.label} {path}: HTTP {st}: {raw[:200]!r}")
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--canopy-bin", required=True)
    ap.add_argument("--relay-bin", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--versions", default="")
    args = ap.parse_args()
    env = driver.read_env(args.env_file)
    driver.seed(driver.Target("direct", "direct", env["KUBE_SERVER"], env["TOKEN_ADMIN"], env["KUBE_CA_FILE"]))
    work = tempfile.mkdtemp(prefix="instructions-", dir=os.path.join(os.path.dirname(args.results), ".run"))

    def canopy():
        port, admin = free_port(), free_port()
        config = os.path.join(work, "canopy.yaml")
        with open(config, "w") as f:
            f.write(
                "server:\n  workerThreads: 1\n"
                f"  listen: 127.0.0.1:{port}\n  adminListen: 127.0.0.1:{admin}\n"
                f"  tls:\n    generatedDir: {work}/canopy-tls\n"
                f"upstream:\n  kubeconfig: {env['CANOPY_UPSTREAM_KUBECONFIG']}\n"
                "authentication:\n  tokenReview: {cacheTtlSeconds: 120}\n"
            )
        server = Server("canopy", [args.canopy_bin, "serve", "--config", config], f"http://127.0.0.1:{admin}/readyz", work)
        return server, driver.Target("canopy", "Canopy", f"https://127.0.0.1:{port}", env["TOKEN_ADMIN"])

    def relay():
        port = free_port()
        argv = [
            args.relay_bin, "--listen", f"127.0.0.1:{port}", "--kubeconfig", env["CANOPY_UPSTREAM_KUBECONFIG"],
            "--user", "admin", "--group", "system:masters", "--group", "system:authenticated",
        ]
        server = Server("relay", argv, f"https://127.0.0.1:{port}/readyz", work)
        return server, driver.Target("relay", "bare relay", f"https://127.0.0.1:{port}", env["TOKEN_ADMIN"])

    results = {}
    for key, label, path, small, large in WORKLOADS:
        for name, start in (("canopy", canopy), ("relay", relay)):
            totals = []
            for n in (small, large):
                t0 = time.monotonic()
                server, target = start()
                send(target, path, n)
                totals.append(server.count())
                log(f"{label}, {name}, {n} requests: {totals[-1]:,} instructions ({time.monotonic() - t0:.0f} s)")
            results[(key, name)] = (totals[1] - totals[0]) / (large - small)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        "## User-space instructions per request (callgrind)",
        "",
        f"- Date: {now}",
        f"- Machine: {driver.machine()}",
        f"- Command: `{args.command}`",
    ]
    if args.versions:
        lines.append(args.versions)
    lines += [
        "",
        "| workload | Canopy instructions/request | bare relay instructions/request | Canopy ÷ relay |",
        "|---|---:|---:|---:|",
    ]
    for key, label, *_ in WORKLOADS:
        c, r = results[(key, "canopy")], results[(key, "relay")]
        lines.append(f"| {label} | {c:,.0f} | {r:,.0f} | {c / r:.2f}× |")
    lines += [
        "",
        "Each target runs under `valgrind --tool=callgrind` (Canopy with one serving thread) and is sent",
        "the request over one keep-alive HTTP/1.1 connection, twice: "
        + "; ".join(f"{label} {small} and {large} times" for _, label, _, small, large in WORKLOADS)
        + ".",
        "Shown is the difference of the two totals per extra request, so start-up, TLS handshakes and",
        "the first token review cancel out. User space only: the kernel's share (system calls, loopback",
        "TCP, context switches) is not counted here.",
    ]
    section = "\n".join(lines)
    print(section)
    driver.replace_section(args.results, section, START_MARK, END_MARK)
    log(f"written into {args.results}")


if __name__ == "__main__":
    main()
