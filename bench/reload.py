#!/usr/bin/env python3
"""Config reload under load (issue 5): 32 clients keep listing ConfigMaps through Canopy as bob
while the config file is swapped ten times — valid trees that add and remove dave's membership,
and invalid files in between. Prints failed requests (must be 0: bob's access never changes) and
how long each valid swap took to be in force for a probe acting as dave (target: under a second).
Starts its own harness (bench/.run/reload/harness) and Canopy; stops both; bounded in time."""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", ".run", "reload")
CLIENTS, SWAPS = 32, 10


def env_of(path):
    env = {}
    for line in open(path):
        if "=" in line:
            key, value = line.strip().split("=", 1)
            env[key] = value.strip("'\"")
    return env


def config(env, port, admin_port, dave_member, broken=False):
    text = open(os.path.join(ROOT, "proxy-config", "example.yaml")).read()
    tree = text[text.index("\ntree:") + 1 :]
    if not dave_member:
        tree = tree.replace("      members:\n        - {kind: User, name: dave, role: admin}\n", "      members: []\n")
    if broken:
        tree = tree.replace("name: globex", "name: Not_A_Name")
    return (
        f"server:\n  listen: 127.0.0.1:{port}\n  adminListen: 127.0.0.1:{admin_port}\n  tls:\n    generatedDir: tls\n"
        f"upstream:\n  kubeconfig: {env['CANOPY_UPSTREAM_KUBECONFIG']}\nauthentication:\n  tokenReview: {{}}\n{tree}"
    )


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(ctx, port, token, path):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def main():
    os.makedirs(RUN, exist_ok=True)
    env_file = subprocess.run([os.path.join(ROOT, "integration-tests", "up.sh"), os.path.join(RUN, "harness")],
                              check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    env = env_of(env_file)
    work = tempfile.mkdtemp(prefix="canopy-reload-")
    canopy = None
    try:
        port, admin_port = free_port(), free_port()
        path = os.path.join(work, "canopy.yaml")
        with open(path, "w") as f:
            f.write(config(env, port, admin_port, dave_member=True))
        canopy = subprocess.Popen([os.path.join(ROOT, "target", "release", "canopy"), "serve", "--config", path],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "canopy.log"), "w"))
        deadline = time.time() + 60
        while True:
            try:
                ctx = ssl.create_default_context(cafile=os.path.join(work, "tls", "ca.crt"))
                if get(ctx, port, env["TOKEN_BOB"], "/api/v1/namespaces/dev/configmaps") == 200:
                    break
            except (OSError, ssl.SSLError):
                pass
            if time.time() > deadline:
                sys.exit("canopy never served bob (has the reconciler materialized the tree?)")
            time.sleep(0.2)

        stop = threading.Event()
        counts = {"ok": 0, "failed": 0}
        lock = threading.Lock()

        def client():
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/api/v1/namespaces/dev/configmaps", headers={"Authorization": f"Bearer {env['TOKEN_BOB']}"})
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    status = 0
                    conn.close()
                    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
                with lock:
                    counts["ok" if status == 200 else "failed"] += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        in_force = []
        dave = True
        started = time.time()
        for swap in range(SWAPS):
            time.sleep(1.0)
            if swap % 2 == 1:
                with open(path + ".tmp", "w") as f:
                    f.write(config(env, port, admin_port, dave_member=dave, broken=True))
                os.replace(path + ".tmp", path)
                continue
            dave = not dave
            with open(path + ".tmp", "w") as f:
                f.write(config(env, port, admin_port, dave_member=dave))
            swapped = time.time()
            os.replace(path + ".tmp", path)
            want = 200 if dave else 403
            while get(ctx, port, env["TOKEN_DAVE"], "/api/v1/namespaces/main/configmaps") != want:
                if time.time() - swapped > 10:
                    break
                time.sleep(0.01)
            in_force.append(time.time() - swapped)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=15)
        elapsed = time.time() - started
        result = {
            "clients": CLIENTS,
            "swaps": SWAPS,
            "valid_swaps": len(in_force),
            "requests": counts["ok"] + counts["failed"],
            "failed": counts["failed"],
            "req_per_s": round((counts["ok"] + counts["failed"]) / elapsed, 1),
            "in_force_ms": [round(s * 1000) for s in in_force],
            "max_in_force_ms": round(max(in_force) * 1000),
        }
        print(json.dumps(result))
        return 0 if counts["failed"] == 0 and max(in_force) < 1.0 else 1
    finally:
        if canopy:
            canopy.send_signal(signal.SIGTERM)
            try:
                canopy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                canopy.kill()
        subprocess.run([os.path.join(ROOT, "integration-tests", "down.sh"), os.path.join(RUN, "harness")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
