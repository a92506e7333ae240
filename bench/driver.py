#!/usr/bin/env python3
"""Benchmark driver for Canopy (stdlib only). Started by bench/run.sh, which owns the processes.

Seeds namespace `bench`, checks every target answers correctly, runs wrk for each
workload x concurrency x target, samples CPU seconds from /proc around each run, then prints
one side-by-side table and writes it into bench/RESULTS.md.
"""

import argparse
import concurrent.futures
import datetime
import gzip
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")
NS = "bench"
N_LIST = 1000
LABEL = "bench=list"
WORKLOADS = [
    # (key, label, path, gzip)
    ("get", "GET one", f"/api/v1/namespaces/{NS}/configmaps/one", False),
    ("list", "LIST 1000", f"/api/v1/namespaces/{NS}/configmaps?labelSelector=bench%3Dlist", False),
    ("list-gz", "LIST 1000 gzip", f"/api/v1/namespaces/{NS}/configmaps?labelSelector=bench%3Dlist", True),
]
CONCURRENCY = [1, 32]
GOAL_THROUGHPUT = 0.95  # Canopy req/s >= 0.95x direct at 32 clients
GOAL_CPU = 0.10  # Canopy CPU per request <= 0.10x the apiserver's
START_MARK = "<!-- bench:figures:start -->"
END_MARK = "<!-- bench:figures:end -->"


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc sampling


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # comm may contain spaces and parentheses; the fields after the last ')' are fixed.
    return data[data.rindex(")") + 2 :].split()


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(entry)[1]) == pid:
                kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def cpu_seconds(pid):
    """utime+stime of pid (plus reaped children's, plus live descendants'), in seconds."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        # After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        todo.extend(_children(p))
    return total / CLK_TCK


def machine_busy_seconds():
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is already in user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def read_env(path):
    """The harness's env file (KEY=value lines, shell-quoted) as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = (shlex.split(v) or [""])[0]
    return env


# ---------------------------------------------------------------- HTTP helpers


class Target:
    def __init__(self, key, label, base, token=None, ca=None, pid=None):
        self.key, self.label, self.base, self.token, self.ca, self.pid = key, label, base, token, ca, pid
        u = urllib.parse.urlsplit(base)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port

    def connect(self, timeout=60):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca) if self.ca else ssl._create_unverified_context()
            return http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connect()
        try:
            data = json.dumps(body).encode() if body is not None else None
            h = self.headers(headers)
            if data is not None:
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), raw
        finally:
            if own:
                conn.close()


# ---------------------------------------------------------------- seeding


def cm_body(name, labels=None):
    # ~1 KB of data: 16 settings, half hash-like (incompressible), half repetitive text.
    data = {}
    for i in range(16):
        h = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()
        data[f"setting-{i:02d}"] = h if i % 2 else f"value for {name} number {i} " + "x" * 20
    meta = {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def seed(direct):
    t0 = time.monotonic()
    st, _, raw = direct.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    if st not in (201, 409):
        raise SystemExit(f"create namespace {NS}: HTTP {st}: {raw[:300]!r}")
    # The namespace may still be initialising; creating into it can race briefly.
    base = f"/api/v1/namespaces/{NS}/configmaps"
    for attempt in range(50):
        st, _, raw = direct.request("POST", base, cm_body("one"))
        if st in (201, 409):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"create configmap one: HTTP {st}: {raw[:300]!r}")

    st, _, raw = direct.request("GET", base + "?labelSelector=" + urllib.parse.quote(LABEL))
    if st != 200:
        raise SystemExit(f"list configmaps: HTTP {st}: {raw[:300]!r}")
    have = {item["metadata"]["name"] for item in json.loads(raw)["items"]}
    missing = [f"list-{i:04d}" for i in range(N_LIST) if f"list-{i:04d}" not in have]
    local = threading.local()
    errors = []

    def create(name):
        if not hasattr(local, "conn"):
            local.conn = direct.connect()
        for _ in range(3):
            try:
                st, _, raw = direct.request("POST", base, cm_body(name, {"bench": "list"}), conn=local.conn)
                if st in (201, 409):
                    return
                errors.append(f"{name}: HTTP {st}: {raw[:200]!r}")
                return
            except (OSError, http.client.HTTPException):
                local.conn.close()
                local.conn = direct.connect()
        errors.append(f"{name}: connection failed 3 times")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create, missing))
    if errors:
        raise SystemExit("seeding failed: " + "; ".join(errors[:5]))
    log(f"seeded namespace {NS}: {len(missing)} ConfigMaps created, {len(have)} already there "
        f"({time.monotonic() - t0:.1f}s)")


# ---------------------------------------------------------------- checks and runs


def check(target, wl):
    """One request through the target: must be 200 with the expected content. Returns wire bytes."""
    key, label, path, gz = wl
    st, hdrs, raw = target.request("GET", path, headers={"Accept-Encoding": "gzip"} if gz else None)
    if st != 200:
        raise SystemExit(f"{target.label} {label}: HTTP {st}: {raw[:300]!r}")
    enc = hdrs.get("content-encoding", "")
    body = gzip.decompress(raw) if enc == "gzip" else raw
    obj = json.loads(body)
    if key == "get":
        ok = obj.get("metadata", {}).get("name") == "one"
    else:
        ok = len(obj.get("items", [])) == N_LIST
    if not ok:
        raise SystemExit(f"{target.label} {label}: unexpected body ({len(body)} bytes)")
    return {"wire_bytes": len(raw), "body_bytes": len(body), "encoding": enc or "identity"}


def wrk(target, wl, conns, seconds, lua, out_file=None):
    key, label, path, gz = wl
    threads = 1 if conns == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "30s",
           "-s", lua, target.base + path]
    env = dict(os.environ, BENCH_TOKEN=target.token or "", BENCH_GZIP="1" if gz else "0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    if out_file:
        with open(out_file, "w") as f:
            f.write("$ " + shlex.join(cmd) + "\n" + proc.stdout + proc.stderr)
    m = re.search(r"^BENCH_JSON (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"wrk failed for {target.label} {label} c={conns}: rc={proc.returncode}\n"
                         f"{proc.stdout}\n{proc.stderr}")
    return json.loads(m.group(1))


def measure(target, wl, conns, seconds, lua, harness_pid, out_file):
    m0, w0, t0 = machine_busy_seconds(), children_cpu_seconds(), time.monotonic()
    api0 = cpu_seconds(harness_pid)
    px0 = cpu_seconds(target.pid) if target.pid else None
    r = wrk(target, wl, conns, seconds, lua, out_file)
    api1 = cpu_seconds(harness_pid)
    px1 = cpu_seconds(target.pid) if target.pid else None
    m1, w1, t1 = machine_busy_seconds(), children_cpu_seconds(), time.monotonic()
    n = r["requests"]
    res = {
        "requests": n,
        "rps": n / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "errors": {k[4:]: v for k, v in r.items() if k.startswith("err_") and v},
        "api_cpu": api1 - api0,
        "api_cpu_1k": (api1 - api0) / n * 1000 if n else None,
        "proxy_cpu": None if px0 is None else px1 - px0,
        "proxy_cpu_1k": None if px0 is None or not n else (px1 - px0) / n * 1000,
    }
    wall = t1 - t0
    res["machine_cores"] = (m1 - m0) / wall
    res["wrk_cores"] = (w1 - w0) / wall
    res["api_cores"] = (api1 - api0) / wall
    res["proxy_cores"] = 0.0 if px0 is None else (px1 - px0) / wall
    res["other_cores"] = max(0.0, res["machine_cores"] - res["wrk_cores"] - res["api_cores"] - res["proxy_cores"])
    if res["proxy_cpu_1k"] is not None and res["api_cpu_1k"]:
        res["cpu_ratio"] = res["proxy_cpu_1k"] / res["api_cpu_1k"]
    else:
        res["cpu_ratio"] = None
    return res


# ---------------------------------------------------------------- report


def fmt(v, spec, dash="—"):
    return dash if v is None else format(v, spec)


def render_table(targets, results):
    head = ["workload", "c"]
    for t in targets:
        s = t.label
        if t.key == "direct":
            head += [f"{s} req/s", f"{s} p50 ms", f"{s} p99 ms", f"{s} apiserver CPU s/1k"]
        else:
            head += [f"{s} req/s", f"{s} ×direct", f"{s} p50 ms", f"{s} p99 ms",
                     f"{s} proxy CPU s/1k", f"{s} apiserver CPU s/1k", f"{s} proxy/apiserver CPU"]
    rows = []
    for wl in WORKLOADS:
        for c in CONCURRENCY:
            row = [wl[1], str(c)]
            d = results[(wl[0], c, "direct")]
            for t in targets:
                r = results[(wl[0], c, t.key)]
                rps = f"{r['rps']:.0f}" + (" !" if r["errors"] else "")
                if t.key == "direct":
                    row += [rps, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", fmt(r["api_cpu_1k"], ".3f")]
                else:
                    row += [rps, f"{r['rps'] / d['rps']:.2f}×", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                            fmt(r["proxy_cpu_1k"], ".3f"), fmt(r["api_cpu_1k"], ".3f"),
                            fmt(r["cpu_ratio"], ".3f")]
            rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i >= 2 else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


def render_machine_table(targets, results):
    head = ["workload", "c"] + [f"{t.label}: apiserver / proxy / wrk / other" for t in targets]
    rows = []
    for wl in WORKLOADS:
        for c in CONCURRENCY:
            row = [wl[1], str(c)]
            for t in targets:
                r = results[(wl[0], c, t.key)]
                px = f"{r['proxy_cores']:.2f}" if t.pid else "—"
                row.append(f"{r['api_cores']:.2f} / {px} / {r['wrk_cores']:.2f} / {r['other_cores']:.2f}")
            rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i >= 2 else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


def goals(results):
    out = []
    parts = []
    for wl in WORKLOADS:
        d, c = results[(wl[0], 32, "direct")], results[(wl[0], 32, "canopy")]
        ratio = c["rps"] / d["rps"]
        parts.append(f"{wl[1]} {ratio:.2f}× ({'met' if ratio >= GOAL_THROUGHPUT else 'NOT met'})")
    out.append(f"- Canopy throughput ≥ {GOAL_THROUGHPUT:.2f}× direct at 32 clients: " + "; ".join(parts))
    parts = []
    for wl in WORKLOADS:
        for conns in CONCURRENCY:
            r = results[(wl[0], conns, "canopy")]
            if r["cpu_ratio"] is None:
                parts.append(f"{wl[1]} c={conns} n/a")
            else:
                parts.append(f"{wl[1]} c={conns} {r['cpu_ratio']:.3f}× "
                             f"({'met' if r['cpu_ratio'] <= GOAL_CPU else 'NOT met'})")
    out.append(f"- Canopy CPU per request ≤ {GOAL_CPU:.2f}× the apiserver's: " + "; ".join(parts))
    parts = []
    for wl in WORKLOADS:
        for conns in CONCURRENCY:
            r, c = results[(wl[0], conns, "relay")], results[(wl[0], conns, "canopy")]
            if r["cpu_ratio"] is None or c["proxy_cpu_1k"] is None:
                parts.append(f"{wl[1]} c={conns} n/a")
            else:
                parts.append(f"{wl[1]} c={conns} {r['cpu_ratio']:.3f}× (Canopy {c['proxy_cpu_1k'] / r['proxy_cpu_1k']:.2f}× the relay's CPU)")
    out.append("- For scale, the floor of the stack: the bare relay's CPU per request vs the apiserver's: " + "; ".join(parts))
    return "\n".join(out)


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, Linux {platform.release()}"


def write_results(path, section, pinned):
    """Replaces the figures of the same kind of run (pinned or not) in `path`."""
    suffix = "-pinned" if pinned else ""
    start_mark, end_mark = (m.replace("bench:figures", "bench:figures" + suffix) for m in (START_MARK, END_MARK))
    intro = (
        "# Canopy benchmark results\n\n"
        "Produced by `bash bench/run.sh` (see `bench/README.md` for what is measured and the caveats).\n"
        "The section between the markers below is replaced on every run.\n\n"
    )
    replace_section(path, section, start_mark, end_mark, intro)


def replace_section(path, section, start_mark, end_mark, intro=""):
    """Replaces the text between the markers in `path` (appended, after `intro` for a new file)."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = f"{start_mark}\n{section.rstrip()}\n{end_mark}\n"
    if start_mark in text and end_mark in text:
        pre = text[: text.index(start_mark)]
        post = text[text.index(end_mark) + len(end_mark) :].lstrip("\n")
        text = pre + block + (("\n" + post) if post else "")
    else:
        text = (text.rstrip("\n") + "\n\n" if text else intro) + block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--canopy-url", required=True)
    ap.add_argument("--canopy-ca", required=True)
    ap.add_argument("--canopy-pid", type=int, required=True)
    ap.add_argument("--proxy-url", required=True)
    ap.add_argument("--proxy-pid", type=int, required=True)
    ap.add_argument("--relay-url", required=True)
    ap.add_argument("--relay-pid", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--versions", default="")
    ap.add_argument("--pinned", default="", help="how processes were pinned to CPUs (BENCH_PIN=1)")
    args = ap.parse_args()

    env = read_env(args.env_file)
    harness_pid = int(env["HARNESS_PID"])
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk.lua")
    targets = [
        Target("direct", "direct", env["KUBE_SERVER"], env["TOKEN_ADMIN"], env["KUBE_CA_FILE"]),
        Target("canopy", "Canopy", args.canopy_url, env["TOKEN_ADMIN"], args.canopy_ca, args.canopy_pid),
        Target("kproxy", "kubectl proxy", args.proxy_url, None, None, args.proxy_pid),
        # Sends every request as the admin identity whatever the caller presents; the token only
        # keeps the request shape the same as Canopy's.
        Target("relay", "bare relay", args.relay_url, env["TOKEN_ADMIN"], None, args.relay_pid),
    ]
    direct = targets[0]

    seed(direct)
    checks = {}
    for t in targets:
        for wl in WORKLOADS:
            checks[(wl[0], t.key)] = check(t, wl)
    log("all targets answer every workload correctly")

    load_start = loadavg()
    # Background CPU of the harness process (etcd, controllers, fake kubelet) with no load.
    a0, t0 = cpu_seconds(harness_pid), time.monotonic()
    m0 = machine_busy_seconds()
    time.sleep(3)
    idle_cores = (cpu_seconds(harness_pid) - a0) / (time.monotonic() - t0)
    idle_machine = (machine_busy_seconds() - m0) / (time.monotonic() - t0)
    if idle_machine - idle_cores > 0.2:
        log(f"warning: the machine is busy with other work before the runs ({idle_machine:.2f} cores busy, "
            f"harness {idle_cores:.2f}; load average {load_start}); figures will be noisy")

    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    total = len(WORKLOADS) * len(CONCURRENCY) * len(targets)
    i = 0
    for wl in WORKLOADS:
        for c in CONCURRENCY:
            for t in targets:
                i += 1
                if args.warmup > 0:
                    wrk(t, wl, c, args.warmup, lua)
                r = measure(t, wl, c, args.seconds, lua, harness_pid,
                            os.path.join(args.out_dir, f"{wl[0]}-c{c}-{t.key}.txt"))
                results[(wl[0], c, t.key)] = r
                log(f"[{i}/{total}] {wl[1]:<15} c={c:<2} {t.label:<13} {r['rps']:8.0f} req/s  "
                    f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                    f"proxy {fmt(r['proxy_cpu_1k'], '.3f')} s/1k  apiserver {fmt(r['api_cpu_1k'], '.3f')} s/1k"
                    + (f"  ERRORS {r['errors']}" if r["errors"] else ""))

    load_end = loadavg()
    canopy_hwm = status_kb(args.canopy_pid, "VmHWM")
    canopy_rss = status_kb(args.canopy_pid, "VmRSS")
    proxy_hwm = status_kb(args.proxy_pid, "VmHWM")

    table = render_table(targets, results)
    errs = [f"- {wl} c={c} {t}: {results[(wl, c, t)]['errors']} (of {results[(wl, c, t)]['requests']} requests)"
            for (wl, c, t) in results if results[(wl, c, t)]["errors"]]
    wire = []
    for wl in WORKLOADS:
        cells = []
        for t in targets:
            ck = checks[(wl[0], t.key)]
            cells.append(f"{t.label} {ck['wire_bytes']:,} B {ck['encoding']}")
        wire.append(f"- {wl[1]}: " + "; ".join(cells))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = "Figures, the apiserver and the proxies on separate CPUs" if args.pinned else "Figures"
    pinned = f"\n- Pinned: {args.pinned}" if args.pinned else ""
    section = f"""## {title}

- Date: {now}
- Machine: {machine()}
- Command: `{args.command}`{pinned}
- Duration: {args.seconds} s per cell after a {args.warmup} s unmeasured warm-up; wrk -t1 for 1 connection, -t2 for 32
- Load average (1/5/15 min) at start {load_start}, at end {load_end}; machine busy {idle_machine:.2f} cores
  before the runs, of which the idle harness {idle_cores:.2f}
{args.versions}

{table}

Columns: req/s (`!` = the run had errors, listed below), ×direct = req/s relative to direct at the same
workload and concurrency, p50/p99 latency in ms from wrk, CPU s/1k = CPU seconds (user+system) used per
1,000 requests by the proxy in use and by the apiserver process, proxy/apiserver = ratio of the two.
The bare relay is `examples/bare_relay.rs`: Canopy's stack (one tokio thread, hyper, rustls on both
sides, Canopy's upstream client) relaying each request as one fixed identity and doing nothing else,
so its CPU is what any proxy built on these parts pays at least.
The apiserver process is the harness: kube-apiserver, etcd, kube-controller-manager and a fake kubelet
all run in that one process, so its CPU includes etcd (and their idle background: {idle_cores:.3f} cores
measured for 3 s before the runs, not subtracted).

Targets (printed, not enforced):
{goals(results)}

Canopy memory: peak RSS (VmHWM) {canopy_hwm / 1024:.1f} MiB, RSS at the end {canopy_rss / 1024:.1f} MiB
(kubectl proxy peak RSS {proxy_hwm / 1024:.1f} MiB).

Response size per request (one checked request before the runs; body bytes on the wire):
{chr(10).join(wire)}

Where the machine's CPU went during each run, in cores (of {os.cpu_count()}): apiserver process / proxy in use /
wrk / everything else on the machine (other processes, kernel threads, interrupts). "Other" well above
zero means the run shared the machine with unrelated work and its figures are less trustworthy.

{render_machine_table(targets, results)}
"""
    if errs:
        section += "\nErrors reported by wrk (non-2xx/3xx status, socket errors, timeouts):\n" + "\n".join(errs) + "\n"
    print()
    print(section)
    write_results(args.results, section, bool(args.pinned))
    log(f"wrote {args.results}; raw wrk output in {args.out_dir}")


if __name__ == "__main__":
    main()
