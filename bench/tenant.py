#!/usr/bin/env python3
"""Tenant-scale benchmark driver (stdlib only). Started by bench/tenant.sh, which owns the processes.

A tenant (bob, editor of node `big`) owns T of N namespaces; every namespace holds C ConfigMaps.
Measures bob's `-A` list of ConfigMaps through Canopy (one upstream list per namespace of the view,
merged) against the apiserver answering directly: the whole cluster's `-A` list as admin, and the
tenant's namespaces listed one by one (as admin and as bob). Then an `-A` watch through Canopy
(one upstream watch per namespace) against a direct admin `-A` watch: open time, event delivery
latency, events/s under a write burst, and that no event of another namespace reaches the tenant.
Reuses the /proc sampling and wrk runner of bench/driver.py.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver as d  # noqa: E402

START_MARK = "<!-- bench:tenant:start -->"
END_MARK = "<!-- bench:tenant:end -->"
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
LABEL = "bench=tenant"
MANAGED = "app.kubernetes.io/managed-by=canopy"
WORKERS = 16


def log(msg):
    print(f"[tenant] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


# ---------------------------------------------------------------- HTTP


def send(t, method, path, body=None, ctype="application/json", accept="application/json", conn=None, timeout=120):
    own = conn is None
    conn = conn or t.connect(timeout)
    try:
        h = {"Accept": accept}
        if t.token:
            h["Authorization"] = f"Bearer {t.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


def get_json(t, path, accept="application/json"):
    st, raw = send(t, "GET", path, accept=accept)
    if st != 200:
        raise SystemExit(f"{t.label} GET {path}: HTTP {st}: {raw[:300]!r}")
    return json.loads(raw), raw


class Writer:
    """Writes with one keep-alive connection per thread; retries transient failures (bounded)."""

    def __init__(self, target):
        self.t = target
        self.local = threading.local()

    def write(self, method, path, body, ctype="application/json"):
        """Returns (t_start, t_end, status, object or None); t_start is the last attempt's."""
        st, raw = None, b""
        for attempt in range(20):
            if getattr(self.local, "conn", None) is None:
                self.local.conn = self.t.connect(60)
            t0 = time.monotonic()
            try:
                st, raw = send(self.t, method, path, body, ctype=ctype, conn=self.local.conn)
            except (OSError, http.client.HTTPException) as e:
                self.local.conn.close()
                self.local.conn = None
                st, raw = None, str(e).encode()
            t1 = time.monotonic()
            if st is not None and (200 <= st < 300 or st == 409):
                obj = None
                if 200 <= st < 300:
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        pass
                return t0, t1, st, obj
            if st in (None, 404, 429, 500, 503, 504):
                time.sleep(0.2 + 0.1 * attempt)
                continue
            break
        raise RuntimeError(f"{method} {path}: HTTP {st}: {raw[:200]!r}")


def parallel(writer, jobs, workers=WORKERS):
    """jobs: (method, path, body[, ctype]); returns the results in order; raises on the first failure."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: writer.write(*j), jobs))


# ---------------------------------------------------------------- seeding


def cm_body(ns, name):
    # About 330 bytes of data: four settings, two hash-like, two repetitive text.
    data = {}
    for i in range(4):
        h = hashlib.sha256(f"{ns}/{name}/{i}".encode()).hexdigest()
        data[f"setting-{i}"] = h if i % 2 else f"value {i} of {name} in {ns} " + "x" * 40
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"bench": "tenant"}}, "data": data}


def wait_tree(admin, tenant_ns, user, timeout=240):
    """Until the reconciler has created every tree namespace (Active) and user's RoleBinding in each."""
    t0 = time.monotonic()
    want = set(tenant_ns)
    while True:
        nss, _ = get_json(admin, "/api/v1/namespaces?labelSelector=" + urllib.parse.quote(MANAGED))
        active = {n["metadata"]["name"] for n in nss.get("items") or [] if n.get("status", {}).get("phase") == "Active"}
        rbs, _ = get_json(admin, "/apis/rbac.authorization.k8s.io/v1/rolebindings?labelSelector="
                          + urllib.parse.quote(MANAGED))
        bound = {rb["metadata"]["namespace"] for rb in rbs.get("items") or []
                 if any(s.get("kind") == "User" and s.get("name") == user for s in rb.get("subjects") or [])}
        missing_ns, missing_rb = want - active, want - bound
        if not missing_ns and not missing_rb:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the reconciler did not create the tree in {timeout}s: "
                             f"{len(missing_ns)} namespaces and {len(missing_rb)} RoleBindings missing")
        time.sleep(1)


def seed(admin, tenant_ns, other_ns, per_ns):
    writer = Writer(admin)
    t0 = time.monotonic()
    nss, _ = get_json(admin, "/api/v1/namespaces", accept=PARTIAL_LIST)
    have = {n["metadata"]["name"] for n in nss.get("items") or []}
    jobs = [("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})
            for n in other_ns if n not in have]
    parallel(writer, jobs)
    t_ns = time.monotonic() - t0
    log(f"namespaces: {len(jobs)} created as admin, {len(other_ns) - len(jobs)} already there ({t_ns:.1f}s)")

    t1 = time.monotonic()
    cms, _ = get_json(admin, "/api/v1/configmaps?labelSelector=" + urllib.parse.quote(LABEL), accept=PARTIAL_LIST)
    have = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in cms.get("items") or []}
    jobs = []
    for ns in list(tenant_ns) + list(other_ns):
        for j in range(per_ns):
            name = f"cm-{j:02d}"
            if (ns, name) not in have:
                jobs.append(("POST", f"/api/v1/namespaces/{ns}/configmaps", cm_body(ns, name)))
    # Namespace by namespace interleaved, so that no one namespace is hammered.
    jobs.sort(key=lambda j: j[2]["metadata"]["name"])
    parallel(writer, jobs)
    t_cm = time.monotonic() - t1
    log(f"configmaps: {len(jobs)} created, {len(have)} already there ({t_cm:.1f}s, "
        f"{len(jobs) / t_cm if t_cm and jobs else 0:.0f}/s)")
    return {"cm_created": len(jobs), "cm_existing": len(have), "seconds": time.monotonic() - t0}


def wait_root_ca(admin, namespaces, timeout=240):
    """If the controller-manager publishes kube-root-ca.crt into every namespace, wait until it has
    done so for ours, so the counts are stable and its work is not measured. Returns (seconds,
    whether it publishes at all)."""
    t0 = time.monotonic()
    want = set(namespaces)
    while True:
        cms, _ = get_json(admin, "/api/v1/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt",
                          accept=PARTIAL_LIST)
        have = {c["metadata"]["namespace"] for c in cms.get("items") or []}
        if want <= have:
            return time.monotonic() - t0, True
        if not have & want and time.monotonic() - t0 > 10:
            return time.monotonic() - t0, False  # no publisher in this harness
        if time.monotonic() - t0 > timeout:
            log(f"warning: kube-root-ca.crt still missing in {len(want - have)} namespaces after {timeout}s")
            return time.monotonic() - t0, True
        time.sleep(1)


# ---------------------------------------------------------------- checks


def check_lists(canopy, admin, bob_direct, tenant_ns, virtual_of):
    """Bob's -A list through Canopy must hold exactly the tenant namespaces' ConfigMaps, under
    virtual names, and nothing else. Returns the sizes and the list's resourceVersion."""
    info = {}
    t0 = time.monotonic()
    st, raw = send(canopy, "GET", "/api/v1/configmaps")
    info["canopy_first_s"] = time.monotonic() - t0
    if st != 200:
        raise SystemExit(f"Canopy -A list as bob: HTTP {st}: {raw[:300]!r}")
    obj = json.loads(raw)
    got = {(i["metadata"].get("namespace"), i["metadata"]["name"]) for i in obj["items"]}
    expect = set()
    per_ns_bytes = 0
    for ns in tenant_ns:
        page, praw = get_json(admin, f"/api/v1/namespaces/{ns}/configmaps")
        per_ns_bytes += len(praw)
        expect |= {(virtual_of[ns], i["metadata"]["name"]) for i in page.get("items") or []}
    problems = []
    if got != expect:
        problems.append(f"Canopy's -A list differs from the tenant's namespaces: {len(got - expect)} extra "
                        f"(e.g. {sorted(got - expect)[:3]}), {len(expect - got)} missing (e.g. {sorted(expect - got)[:3]})")
    if len(obj["items"]) != len(got):
        problems.append(f"Canopy's -A list has {len(obj['items']) - len(got)} duplicate items")
    if b"other-" in raw or b'"big-' in raw:
        problems.append("Canopy's -A list contains a physical or foreign namespace name")
    info["canopy_items"] = len(obj["items"])
    info["canopy_bytes"] = len(raw)
    info["rv"] = obj.get("metadata", {}).get("resourceVersion", "")
    info["per_ns_bytes"] = per_ns_bytes
    info["per_ns_items"] = len(expect)

    t0 = time.monotonic()
    st, raw = send(admin, "GET", "/api/v1/configmaps")
    info["admin_first_s"] = time.monotonic() - t0
    if st != 200:
        raise SystemExit(f"direct -A list as admin: HTTP {st}: {raw[:300]!r}")
    info["admin_items"] = len(json.loads(raw)["items"])
    info["admin_bytes"] = len(raw)

    # bob directly: the apiserver refuses his cluster-wide list; his namespaces answer.
    st, _ = send(bob_direct, "GET", "/api/v1/configmaps")
    info["bob_direct_all"] = st
    st, _ = send(bob_direct, "GET", f"/api/v1/namespaces/{tenant_ns[0]}/configmaps")
    if st != 200:
        problems.append(f"bob's direct list in {tenant_ns[0]}: HTTP {st}")
    # And through Canopy, another namespace is not there.
    st, raw = send(canopy, "GET", "/api/v1/namespaces/other-0000/configmaps")
    info["canopy_other"] = st
    if st != 404 or b"big-other" in raw:
        problems.append(f"Canopy: bob listing namespace other-0000 answered {st}")
    return info, problems


# ---------------------------------------------------------------- list cells


def run_cell(args, ctx, key, label, target, path, conns, lua, paths_file=None, fanout=1):
    if paths_file:
        os.environ["BENCH_PATHS"] = paths_file
    wl = (key, label, path, False)
    if args.warmup > 0:
        d.wrk(target, wl, conns, args.warmup, lua)
    m0, w0, t0 = d.machine_busy_seconds(), d.children_cpu_seconds(), time.monotonic()
    api0, can0 = d.cpu_seconds(ctx["harness_pid"]), d.cpu_seconds(args.canopy_pid)
    r = d.wrk(target, wl, conns, args.seconds, lua, os.path.join(args.out_dir, f"{key}-c{conns}.txt"))
    api1, can1 = d.cpu_seconds(ctx["harness_pid"]), d.cpu_seconds(args.canopy_pid)
    m1, w1, t1 = d.machine_busy_seconds(), d.children_cpu_seconds(), time.monotonic()
    n = r["requests"]
    answers = n / fanout
    wall = t1 - t0
    res = {
        "key": key, "label": label, "c": conns, "fanout": fanout, "requests": n,
        "answers": answers,
        "aps": answers / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "mean_ms": r["mean_us"] / 1000,
        "errors": {k[4:]: v for k, v in r.items() if k.startswith("err_") and v},
        "api_ms": (api1 - api0) / answers * 1000 if answers else None,
        "canopy_ms": (can1 - can0) / answers * 1000 if answers else None,
        "api_cores": (api1 - api0) / wall, "canopy_cores": (can1 - can0) / wall,
        "wrk_cores": (w1 - w0) / wall,
    }
    res["other_cores"] = max(0.0, (m1 - m0) / wall - res["api_cores"] - res["canopy_cores"] - res["wrk_cores"])
    log(f"{label:<44} c={conns}: {res['aps']:7.2f} answers/s  p50 {res['p50_ms']:8.1f} ms  "
        f"p99 {res['p99_ms']:8.1f} ms  Canopy {d.fmt(res['canopy_ms'], '.1f')} ms  "
        f"apiserver {d.fmt(res['api_ms'], '.1f')} ms CPU per answer  (other {res['other_cores']:.2f} cores)"
        + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
    return res


class RssSampler(threading.Thread):
    """VmRSS every 50 ms: the kernel's VmHWM is only updated now and then and can miss a peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak_kb = max(self.peak_kb, d.status_kb(self.pid, "VmRSS") or 0)
            except OSError:
                return


# ---------------------------------------------------------------- paged lists (kubectl's way)

CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def run_paged(args, ctx, key, label, target, path, limit):
    """`kubectl get -A` asks for pages of `limit` items and follows `continue`: one client, pages
    fetched one after another for args.seconds; an answer is all pages."""
    conn = target.connect(120)
    pages_total, answers, lat = 0, 0, []
    if args.warmup > 0:
        t_end = time.monotonic() + args.warmup
        while time.monotonic() < t_end:
            paged_answer(target, conn, path, limit)
    m0, w0, t0 = d.machine_busy_seconds(), d.children_cpu_seconds(), time.monotonic()
    api0, can0 = d.cpu_seconds(ctx["harness_pid"]), d.cpu_seconds(args.canopy_pid)
    while time.monotonic() - t0 < args.seconds:
        a0 = time.monotonic()
        pages, _ = paged_answer(target, conn, path, limit)
        lat.append((time.monotonic() - a0) * 1000)
        pages_total += pages
        answers += 1
    api1, can1 = d.cpu_seconds(ctx["harness_pid"]), d.cpu_seconds(args.canopy_pid)
    m1, w1, t1 = d.machine_busy_seconds(), d.children_cpu_seconds(), time.monotonic()
    conn.close()
    wall = t1 - t0
    res = {
        "key": key, "label": label, "c": 1, "fanout": 1, "requests": pages_total, "answers": answers,
        "pages": pages_total / answers if answers else 0,
        "aps": answers / wall, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
        "mean_ms": sum(lat) / len(lat) if lat else 0, "errors": {},
        "api_ms": (api1 - api0) / answers * 1000 if answers else None,
        "canopy_ms": (can1 - can0) / answers * 1000 if answers else None,
        "api_cores": (api1 - api0) / wall, "canopy_cores": (can1 - can0) / wall,
        "wrk_cores": 0.0,
    }
    res["other_cores"] = max(0.0, (m1 - m0) / wall - res["api_cores"] - res["canopy_cores"])
    log(f"{label:<44} c=1: {res['aps']:7.2f} answers/s  p50 {res['p50_ms']:8.1f} ms  "
        f"p99 {res['p99_ms']:8.1f} ms  Canopy {d.fmt(res['canopy_ms'], '.1f')} ms  "
        f"apiserver {d.fmt(res['api_ms'], '.1f')} ms CPU per answer  ({res['pages']:.0f} pages; "
        f"other+client {res['other_cores']:.2f} cores)")
    return res


def paged_answer(target, conn, path, limit):
    """Fetches every page; returns (pages, bytes). Raises on any non-200."""
    token, pages, size = None, 0, 0
    while True:
        q = f"limit={limit}" + (f"&continue={urllib.parse.quote(token)}" if token else "")
        st, raw = send(target, "GET", f"{path}?{q}", conn=conn)
        if st != 200:
            raise SystemExit(f"{target.label} paged list: HTTP {st}: {raw[:300]!r}")
        pages += 1
        size += len(raw)
        m = CONTINUE.search(raw[-4096:]) or CONTINUE.search(raw[:4096])
        token = m.group(1).decode() if m and m.group(1) else None
        if not token:
            return pages, size
        if pages > 1000:
            raise SystemExit(f"{target.label} paged list: more than 1000 pages")


# ---------------------------------------------------------------- watch


def upstream_connections(pid, port):
    """Established TCP connections of pid to 127.0.0.1:port (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return None
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            p = row.split()
            if p[9] in inodes and p[3] == "01" and int(p[2].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class WatchReader:
    def __init__(self, target, path, allowed=None):
        self.label = target.label
        self.allowed = allowed  # virtual namespaces the tenant may see; None: anything
        self.conn = target.connect(timeout=600)
        t0 = time.monotonic()
        self.conn.request("GET", path, headers=target.headers())
        self.resp = self.conn.getresponse()
        self.open_s = time.monotonic() - t0
        if self.resp.status != 200:
            raise SystemExit(f"{target.label} watch {path}: HTTP {self.resp.status}: {self.resp.read(300)!r}")
        self.lock = threading.Lock()
        self.events = []  # (t_recv, type, namespace, name, resourceVersion)
        self.leaks = []
        self.bad = []
        self.bookmarks = 0
        self.error = None
        self.closing = False
        self.ended = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while True:
                line = self.resp.readline(16 << 20)
                if not line:
                    break
                t = time.monotonic()
                try:
                    ev = json.loads(line)
                except ValueError:
                    self.bad.append(line[:200])
                    continue
                kind = ev.get("type")
                md = (ev.get("object") or {}).get("metadata") or {}
                if kind == "BOOKMARK":
                    self.bookmarks += 1
                    continue
                if kind == "ERROR":
                    self.bad.append(line[:300])
                    continue
                ns = md.get("namespace")
                if self.allowed is not None and (ns not in self.allowed or b"other-" in line):
                    self.leaks.append(line[:300])
                with self.lock:
                    self.events.append((t, kind, ns, md.get("name"), md.get("resourceVersion")))
        except Exception as e:  # noqa: BLE001 - reported, not raised, from the reader thread
            if not self.closing:
                self.error = repr(e)
        self.ended = True

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.closing = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()
        self.thread.join(5)


def wait_events(reader, want, to_phys, timeout=60):
    """Until every key in want ((physical ns, name, rv)) was received; returns (matched, t_last)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {}
        for t, _, ns, name, rv in reader.snapshot():
            got.setdefault((to_phys(ns), name, rv), t)
        matched = {k: got[k] for k in want if k in got}
        if len(matched) == len(want) or time.monotonic() > deadline or reader.ended:
            return matched
        time.sleep(0.1)


def watch_phase(args, ctx, canopy, admin, tenant_ns, other_ns, virtual_of, rv):
    res = {}
    pid, port = args.canopy_pid, ctx["kube_port"]
    phys_of = {v: p for p, v in virtual_of.items()}
    res["conns_before"] = upstream_connections(pid, port)
    rss_before = d.status_kb(pid, "VmRSS")
    cpu0 = d.cpu_seconds(pid)
    q = f"?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1800"
    cw = WatchReader(canopy, "/api/v1/configmaps" + q, allowed=set(virtual_of.values()))
    res["canopy_open_s"] = cw.open_s
    res["canopy_open_cpu_ms"] = (d.cpu_seconds(pid) - cpu0) * 1000
    aw = WatchReader(admin, "/api/v1/configmaps" + q)
    res["admin_open_s"] = aw.open_s
    time.sleep(1)
    res["conns_open"] = upstream_connections(pid, port)
    res["rss_before_kb"], res["rss_open_kb"] = rss_before, d.status_kb(pid, "VmRSS")
    log(f"watch open: Canopy {cw.open_s * 1000:.0f} ms (upstream connections {res['conns_before']} -> "
        f"{res['conns_open']}), direct {aw.open_s * 1000:.0f} ms")

    writer = Writer(admin)
    T, O = len(tenant_ns), len(other_ns)
    run_id = f"{int(time.time()) % 1000000:06d}"  # unique names and values, so a kept harness can rerun

    # Phase 1, paced: one tenant create and one create elsewhere, `rate` tenant writes a second.
    rate = args.watch_rate
    n = max(1, int(rate * args.seconds))
    tenant_writes, other_writes = [], []
    c0, a0, t0 = d.cpu_seconds(pid), d.cpu_seconds(ctx["harness_pid"]), time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        ns = tenant_ns[i % T]
        ts, te, _, obj = writer.write("POST", f"/api/v1/namespaces/{ns}/configmaps", cm_body(ns, f"w-{run_id}-{i:04d}"))
        tenant_writes.append((ts, te, ns, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
        ons = other_ns[(i * 7) % O]
        ts, te, _, obj = writer.write("POST", f"/api/v1/namespaces/{ons}/configmaps", cm_body(ons, f"o-{run_id}-{i:04d}"))
        other_writes.append((ts, te, ons, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))
    res["paced"] = summarize(cw, aw, tenant_writes, other_writes, phys_of, t0, c0, a0, ctx, pid)
    other_writes_paced = other_writes
    res["paced"]["rate"] = rate
    res["paced"]["writes"] = n

    # Phase 2, burst: patch existing ConfigMaps, tenant and elsewhere interleaved, from WORKERS threads.
    pairs_t = [(ns, f"cm-{j:02d}") for j in range(args.configmaps) for ns in tenant_ns]
    pairs_o = [(ns, f"cm-{j:02d}") for j in range(args.configmaps) for ns in other_ns]
    jobs = []
    for i in range(args.watch_writes):
        for pairs, tag in ((pairs_t, True), (pairs_o, False)):
            ns, name = pairs[i % len(pairs)]
            jobs.append((tag, ("PATCH", f"/api/v1/namespaces/{ns}/configmaps/{name}",
                               {"data": {"burst": f"{run_id}-{i}"}}, "application/merge-patch+json")))
    c0, a0, t0 = d.cpu_seconds(pid), d.cpu_seconds(ctx["harness_pid"]), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda j: (j[0], writer.write(*j[1])), jobs))
    t_written = time.monotonic()
    tenant_writes = [(ts, te, o["metadata"]["namespace"], o["metadata"]["name"], o["metadata"]["resourceVersion"])
                     for tag, (ts, te, _, o) in out if tag]
    other_writes = [(ts, te, o["metadata"]["namespace"], o["metadata"]["name"], o["metadata"]["resourceVersion"])
                    for tag, (ts, te, _, o) in out if not tag]
    res["burst"] = summarize(cw, aw, tenant_writes, other_writes, phys_of, t0, c0, a0, ctx, pid)
    res["burst"]["writes"] = len(jobs)
    res["burst"]["writes_per_s"] = len(jobs) / (t_written - t0)

    # Every event the tenant's watch saw must be one of the tenant's writes (or nothing else at all).
    all_tenant = {(w[2], w[3], w[4]) for ph in ("paced", "burst") for w in res[ph]["_tenant"]}
    unexpected = [(ns, name, rv) for _, _, ns, name, rv in cw.snapshot()
                  if (phys_of.get(ns, ns), name, rv) not in all_tenant]
    res["canopy_unexpected"] = unexpected[:5]
    res["canopy_unexpected_n"] = len(unexpected)
    res["canopy_events"] = len(cw.snapshot())
    res["admin_events"] = len(aw.snapshot())
    res["leaks"] = [x.decode(errors="replace") for x in cw.leaks[:3]]
    res["leaks_n"] = len(cw.leaks)
    res["bad"] = [x.decode(errors="replace") for x in (cw.bad + aw.bad)[:3]]
    res["bookmarks"] = (cw.bookmarks, aw.bookmarks)
    res["errors"] = (cw.error, aw.error)
    res["ended_early"] = (cw.ended, aw.ended)
    res["rss_after_kb"] = d.status_kb(pid, "VmRSS")
    cw.close()
    aw.close()
    time.sleep(1)
    res["conns_closed"] = upstream_connections(pid, port)
    # The paced phase's ConfigMaps go again, so that a rerun on a kept harness lists the same objects.
    created = [w for ph in ("paced",) for w in res[ph]["_tenant"]] + other_writes_paced
    parallel(writer, [("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}", None) for _, _, ns, name, _ in created])
    for ph in ("paced", "burst"):
        res[ph].pop("_tenant")
    return res


def summarize(cw, aw, tenant_writes, other_writes, phys_of, t0, c0, a0, ctx, pid):
    want_t = {(ns, name, rv): ts for ts, _, ns, name, rv in tenant_writes}
    want_a = dict(want_t)
    want_a.update({(ns, name, rv): ts for ts, _, ns, name, rv in other_writes})
    got_c = wait_events(cw, set(want_t), lambda v: phys_of.get(v, v))
    got_a = wait_events(aw, set(want_a), lambda p: p)
    t_end = time.monotonic()
    c1, a1 = d.cpu_seconds(pid), d.cpu_seconds(ctx["harness_pid"])
    lat_c = [(got_c[k] - want_t[k]) * 1000 for k in got_c]
    lat_a = [(got_a[k] - want_t[k]) * 1000 for k in want_t if k in got_a]
    write_ms = [(te - ts) * 1000 for ts, te, *_ in tenant_writes]
    last_c = max(got_c.values()) if got_c else t0
    last_a = max(got_a.values()) if got_a else t0
    return {
        "_tenant": tenant_writes,
        "tenant_writes": len(want_t), "other_writes": len(other_writes),
        "canopy_got": len(got_c), "admin_got": len(got_a), "admin_want": len(want_a),
        "canopy_p50": pct(lat_c, 50), "canopy_p99": pct(lat_c, 99), "canopy_max": max(lat_c) if lat_c else None,
        "admin_p50": pct(lat_a, 50), "admin_p99": pct(lat_a, 99),
        "write_p50": pct(write_ms, 50),
        "canopy_eps": len(got_c) / (last_c - t0) if last_c > t0 else None,
        "admin_eps": len(got_a) / (last_a - t0) if last_a > t0 else None,
        "canopy_cpu_ms_per_event": (c1 - c0) * 1000 / len(got_c) if got_c else None,
        "canopy_cores": (c1 - c0) / (t_end - t0),
        "api_cpu_s": a1 - a0,
        "seconds": t_end - t0,
    }


# ---------------------------------------------------------------- report


def render_lists(cells, sizes):
    head = ["workload", "c", "upstream requests per answer", "objects per answer", "bytes per answer",
            "answers/s", "p50 ms", "p99 ms", "Canopy CPU ms/answer", "apiserver CPU ms/answer",
            "cores: apiserver / Canopy / wrk / other"]
    rows = []
    for r in cells:
        s = sizes[r["key"]]
        per = "" if r["fanout"] == 1 else " (per ns)"
        reqs = str(s["requests"])
        if "pages" in r:
            reqs = f"{r['pages']:.0f} pages" + (f", {s['requests']} upstream" if s["requests"] > 1 else "")
        rows.append([
            r["label"], str(r["c"]), reqs, f"{s['items']:,}", f"{s['bytes']:,}",
            f"{r['aps']:.2f}" + (" !" if r["errors"] else ""),
            f"{r['p50_ms']:.1f}{per}", f"{r['p99_ms']:.1f}{per}",
            d.fmt(r["canopy_ms"], ".1f"), d.fmt(r["api_ms"], ".1f"),
            f"{r['api_cores']:.2f} / {r['canopy_cores']:.2f} / {r['wrk_cores']:.2f} / {r['other_cores']:.2f}",
        ])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells_):
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells_, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i >= 2 else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


def render_watch(w):
    def ms(v):
        return d.fmt(v, ".1f")

    rows = []
    for ph, title in (("paced", f"paced, {w['paced']['rate']} tenant + {w['paced']['rate']} other creates/s"),
                      ("burst", f"burst, {w['burst']['writes']:,} patches from 8 threads")):
        p = w[ph]
        rows.append(
            f"| {title} | {p['tenant_writes']:,} / {p['other_writes']:,} | {p['canopy_got']:,} of {p['tenant_writes']:,} "
            f"| {ms(p['canopy_p50'])} / {ms(p['canopy_p99'])} / {ms(p['canopy_max'])} "
            f"| {p['admin_got']:,} of {p['admin_want']:,} | {ms(p['admin_p50'])} / {ms(p['admin_p99'])} "
            f"| {ms(p['write_p50'])} | {d.fmt(p['canopy_eps'], '.0f')} | {d.fmt(p['admin_eps'], '.0f')} "
            f"| {d.fmt(p['canopy_cpu_ms_per_event'], '.2f')} | {p['canopy_cores']:.2f} |")
    head = ("| phase | tenant / other writes | Canopy watch: tenant events | Canopy latency p50 / p99 / max ms "
            "| direct watch: events | direct latency (tenant events) p50 / p99 ms | write p50 ms "
            "| Canopy events/s | direct events/s | Canopy CPU ms/event | Canopy cores |")
    sep = "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    return "\n".join([head, sep] + rows)


def write_results(path, section):
    d.replace_section(path, section, START_MARK, END_MARK)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--canopy-url", required=True)
    ap.add_argument("--canopy-ca", required=True)
    ap.add_argument("--canopy-pid", type=int, required=True)
    ap.add_argument("--canopy-admin", required=True)
    ap.add_argument("--canopy-log", required=True)
    ap.add_argument("--tenant-namespaces", type=int, default=100)
    ap.add_argument("--namespaces", type=int, default=2000)
    ap.add_argument("--configmaps", type=int, default=10)
    ap.add_argument("--watch-writes", type=int, default=1000)
    ap.add_argument("--watch-rate", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--versions", default="")
    args = ap.parse_args()
    if not 0 < args.tenant_namespaces < args.namespaces or args.namespaces > 10000 or args.configmaps > 100:
        raise SystemExit("bounds: 0 < tenant namespaces < namespaces <= 10000, configmaps <= 100")
    if args.watch_writes > 20000 or args.watch_rate > 200:
        raise SystemExit("bounds: watch writes <= 20000, watch rate <= 200/s")

    env = d.read_env(args.env_file)
    ctx = {"harness_pid": int(env["HARNESS_PID"]), "kube_port": urllib.parse.urlsplit(env["KUBE_SERVER"]).port}
    admin = d.Target("admin", "direct admin", env["KUBE_SERVER"], env["TOKEN_ADMIN"], env["KUBE_CA_FILE"])
    bob_direct = d.Target("bob", "direct bob", env["KUBE_SERVER"], env["TOKEN_BOB"], env["KUBE_CA_FILE"])
    canopy = d.Target("canopy", "Canopy bob", args.canopy_url, env["TOKEN_BOB"], args.canopy_ca, args.canopy_pid)

    tenant_ns = [f"big-t{i:03d}" for i in range(args.tenant_namespaces)]
    virtual_of = {p: p[len("big-"):] for p in tenant_ns}
    other_ns = [f"other-{i:04d}" for i in range(args.namespaces - args.tenant_namespaces)]

    t_setup = time.monotonic()
    t_tree = wait_tree(admin, tenant_ns, "bob")
    log(f"the reconciler created {len(tenant_ns)} namespaces and bob's RoleBindings ({t_tree:.1f}s after start)")
    seeded = seed(admin, tenant_ns, other_ns, args.configmaps)
    t_ca, root_ca = wait_root_ca(admin, tenant_ns + other_ns)
    setup_s = time.monotonic() - t_setup
    log(f"setup done in {setup_s:.0f}s (" + (f"kube-root-ca.crt everywhere {t_ca:.0f}s after seeding)" if root_ca
        else "this harness publishes no kube-root-ca.crt)"))
    extra_cm = ("plus the `kube-root-ca.crt`\nthat the controller-manager puts everywhere" if root_ca
                else "and nothing else (this harness's\ncontroller-manager publishes no `kube-root-ca.crt`)")

    sizes_info, problems = check_lists(canopy, admin, bob_direct, tenant_ns, virtual_of)
    for p in problems:
        log("PROBLEM: " + p)
    if any("differs" in p or "contains" in p for p in problems):
        raise SystemExit("Canopy's -A list is wrong; not measuring")
    log(f"checked: Canopy -A as bob {sizes_info['canopy_items']:,} items {sizes_info['canopy_bytes']:,} B; "
        f"direct -A as admin {sizes_info['admin_items']:,} items {sizes_info['admin_bytes']:,} B; "
        f"bob's direct -A list: HTTP {sizes_info['bob_direct_all']}")

    load_start = d.loadavg()
    a0, t0, m0 = d.cpu_seconds(ctx["harness_pid"]), time.monotonic(), d.machine_busy_seconds()
    c0 = d.cpu_seconds(args.canopy_pid)
    time.sleep(3)
    wall = time.monotonic() - t0
    idle_harness = (d.cpu_seconds(ctx["harness_pid"]) - a0) / wall
    idle_canopy = (d.cpu_seconds(args.canopy_pid) - c0) / wall
    idle_machine = (d.machine_busy_seconds() - m0) / wall
    log(f"before the runs: machine busy {idle_machine:.2f} cores, harness {idle_harness:.2f}, "
        f"Canopy {idle_canopy:.2f}; load average {load_start}")

    os.makedirs(args.out_dir, exist_ok=True)
    paths_admin = os.path.join(args.out_dir, "tenant-paths.txt")
    with open(paths_admin, "w") as f:
        f.write("".join(f"/api/v1/namespaces/{ns}/configmaps\n" for ns in tenant_ns))
    here = os.path.dirname(os.path.abspath(__file__))
    lua, lua_paths = os.path.join(here, "wrk.lua"), os.path.join(here, "wrk-paths.lua")
    T = len(tenant_ns)
    sizes = {
        "canopy-all": {"requests": T, "items": sizes_info["canopy_items"], "bytes": sizes_info["canopy_bytes"]},
        "admin-all": {"requests": 1, "items": sizes_info["admin_items"], "bytes": sizes_info["admin_bytes"]},
        "admin-each": {"requests": T, "items": sizes_info["per_ns_items"], "bytes": sizes_info["per_ns_bytes"]},
        "bob-each": {"requests": T, "items": sizes_info["per_ns_items"], "bytes": sizes_info["per_ns_bytes"]},
    }
    rss_sampler = RssSampler(args.canopy_pid)
    rss_sampler.start()
    cells = []
    for c in (1, 8):
        cells.append(run_cell(args, ctx, "canopy-all", "Canopy, bob: `-A` (fan-out)", canopy,
                              "/api/v1/configmaps", c, lua))
        cells.append(run_cell(args, ctx, "admin-all", "direct, admin: `-A` (whole cluster)", admin,
                              "/api/v1/configmaps", c, lua))
        cells.append(run_cell(args, ctx, "admin-each", f"direct, admin: {T} namespaces one by one", admin,
                              "/", c, lua_paths, paths_admin, fanout=T))
        cells.append(run_cell(args, ctx, "bob-each", f"direct, bob: {T} namespaces one by one", bob_direct,
                              "/", c, lua_paths, paths_admin, fanout=T))
    sizes["canopy-paged"] = dict(sizes["canopy-all"])
    sizes["admin-paged"] = dict(sizes["admin-all"])
    cells.append(run_paged(args, ctx, "canopy-paged", "Canopy, bob: `-A`, pages of 500 (kubectl)", canopy,
                           "/api/v1/configmaps", 500))
    cells.append(run_paged(args, ctx, "admin-paged", "direct, admin: `-A`, pages of 500 (kubectl)", admin,
                           "/api/v1/configmaps", 500))
    order = ["canopy-all", "canopy-paged", "admin-all", "admin-paged", "admin-each", "bob-each"]
    cells.sort(key=lambda r: (order.index(r["key"]), r["c"]))
    hwm_lists = max(d.status_kb(args.canopy_pid, "VmHWM"), rss_sampler.peak_kb)

    # Watch: from the resourceVersion of a fresh Canopy -A list, so nothing is missed.
    st, raw = send(canopy, "GET", "/api/v1/configmaps")
    if st != 200:
        raise SystemExit(f"Canopy -A list before the watch: HTTP {st}")
    rv = json.loads(raw)["metadata"]["resourceVersion"]
    w = watch_phase(args, ctx, canopy, admin, tenant_ns, other_ns, virtual_of, rv)
    for ph in ("paced", "burst"):
        p = w[ph]
        log(f"watch {ph}: Canopy {p['canopy_got']}/{p['tenant_writes']} tenant events, latency p50 "
            f"{d.fmt(p['canopy_p50'], '.1f')} p99 {d.fmt(p['canopy_p99'], '.1f')} ms, {d.fmt(p['canopy_eps'], '.0f')} events/s; "
            f"direct {p['admin_got']}/{p['admin_want']}, p50 {d.fmt(p['admin_p50'], '.1f')} p99 {d.fmt(p['admin_p99'], '.1f')} ms")
    if w["leaks_n"] or w["canopy_unexpected_n"]:
        log(f"PROBLEM: Canopy's watch had {w['leaks_n']} events of other namespaces, "
            f"{w['canopy_unexpected_n']} unexpected events: {w['leaks'] or w['canopy_unexpected']}")

    load_end = d.loadavg()
    rss_sampler.stop.set()
    rss_sampler.join(2)
    kernel_hwm = d.status_kb(args.canopy_pid, "VmHWM")
    hwm = max(kernel_hwm, rss_sampler.peak_kb)
    rss = d.status_kb(args.canopy_pid, "VmRSS")
    with open(args.canopy_log, errors="replace") as f:
        canopy_log = f.read().splitlines()
    noisy = [ln for ln in canopy_log if " WARN " in ln or " ERROR " in ln or '"level":"WARN' in ln
             or '"level":"ERROR' in ln]

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    errs = [f"- {r['label']} c={r['c']}: {r['errors']} (of {r['requests']} requests)" for r in cells if r["errors"]]
    burst, paced = w["burst"], w["paced"]
    n_cm = args.namespaces * args.configmaps
    section = f"""## Tenant scale: `-A` list and watch by fan-out (`bench/tenant.sh`)

Produced by `bash bench/tenant.sh`; the section between the `bench:tenant` markers is replaced on
every run. Bob (editor of node `big`) owns {T} of {args.namespaces:,} namespaces; every namespace holds
{args.configmaps} ConfigMaps (about 330 B of data each, {n_cm:,} in all) {extra_cm}. The other {len(other_ns):,} namespaces were created by
the admin and belong to no node.

- Date: {now}
- Machine: {d.machine()}
- Command: `{args.command}`
- Duration: {args.seconds} s per list cell after a {args.warmup} s unmeasured warm-up; wrk -t1 for 1 connection, -t2 for 8
- Load average (1/5/15 min) at start {load_start}, at end {load_end}; machine busy {idle_machine:.2f} cores
  before the runs, of which the idle harness {idle_harness:.2f} and Canopy {idle_canopy:.2f}
{args.versions}
- Setup: {setup_s:.0f} s ({seeded['cm_created']:,} ConfigMaps created, {seeded['cm_existing']:,} already there; the
  reconciler had the {T} namespaces and bob's RoleBindings {t_tree:.1f} s after Canopy started)

### `-A` list of ConfigMaps

{render_lists(cells, sizes)}

An *answer* is what a client gets for `kubectl get configmaps -A`: one response for the `-A` rows
(kubectl itself asks for pages of 500 and follows `continue`: the "pages of 500" rows, one Python
client fetching the pages one after another, so "other" there includes the client);
for the "one by one" rows, {T} namespace lists (wrk cycles through the tenant's namespaces; answers/s
= requests/s ÷ {T}, CPU per answer = CPU per request × {T}, and p50/p99 are per namespace request;
one client listing the {T} namespaces one after another, 1 ÷ answers/s at c=1:
{", ".join(f"{r['label'].split(':')[0]} {1000 / r['aps']:.0f} ms" for r in cells if r['fanout'] > 1 and r['c'] == 1 and r['aps'])}).
CPU is user+system from `/proc/PID/stat` for Canopy and for the harness process (kube-apiserver,
etcd, controller-manager and a fake kubelet in one process: its CPU includes etcd). Bob's own
`-A` list sent directly is refused by the apiserver (HTTP {sizes_info['bob_direct_all']}): without Canopy he has
no cluster-wide list. First answers before the runs: Canopy {sizes_info['canopy_first_s'] * 1000:.0f} ms,
direct admin {sizes_info['admin_first_s'] * 1000:.0f} ms.

### `-A` watch of ConfigMaps

Bob's watch through Canopy (`/api/v1/configmaps?watch=true&resourceVersion=<rv of his -A list>`)
and an admin `-A` watch sent directly run side by side while the admin writes ConfigMaps in bob's
namespaces and, interleaved, as many in other namespaces. Latency = from the start of the write
request to the event's arrival at the client; events/s = events delivered ÷ time from the first
write to the last event.

- Opening: Canopy {w['canopy_open_s'] * 1000:.0f} ms to the response head ({w['canopy_open_cpu_ms']:.0f} ms of Canopy CPU),
  direct {w['admin_open_s'] * 1000:.0f} ms. Canopy's connections to the apiserver: {w['conns_before']} before,
  {w['conns_open']} with the watch open, {w['conns_closed']} after it closed.
- Canopy RSS {w['rss_before_kb'] / 1024:.1f} MiB before the watch, {w['rss_open_kb'] / 1024:.1f} MiB with it open,
  {w['rss_after_kb'] / 1024:.1f} MiB after the burst.

{render_watch(w)}

- Confinement: {w['canopy_events']:,} events reached bob's watch, {w['leaks_n']} of them from a namespace outside his
  view, {w['canopy_unexpected_n']} not one of the writes to his namespaces (the direct admin watch saw {w['admin_events']:,}).
  Bookmarks seen: Canopy {w['bookmarks'][0]}, direct {w['bookmarks'][1]}. Watch errors: {w['errors'][0] or 'none'} / {w['errors'][1] or 'none'}{'; ERROR or unparsable lines: ' + '; '.join(w['bad']) if w['bad'] else ''}.

### Memory and log

Canopy peak RSS {hwm / 1024:.1f} MiB ({hwm_lists / 1024:.1f} MiB by the end of the list cells), RSS at the end {rss / 1024:.1f} MiB
(peak = the larger of the kernel's VmHWM, {kernel_hwm / 1024:.1f} MiB, and VmRSS sampled every 50 ms, which catches
peaks VmHWM is updated too late for).
Canopy's log (filter `warn,rustls=error`): {len(noisy)} warning or error lines{(': `' + noisy[0][:200].replace('`', "'") + '`') if noisy else ''}.
"""
    if problems:
        section += "\nProblems found by the checks:\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    if errs:
        section += "\nErrors reported by wrk (non-2xx/3xx status, socket errors, timeouts):\n" + "\n".join(errs) + "\n"
    print()
    print(section)
    write_results(args.results, section)
    log(f"wrote {args.results}; raw wrk output in {args.out_dir}")


if __name__ == "__main__":
    main()
