#!/usr/bin/env python3
"""A stand-in for a PaaS web console that reaches Kubernetes through a Canopy sidecar.

A real console signs its users in (SSO, OIDC, ...) and, for each call it makes on a user's behalf,
names that user in X-Remote-User (and X-Remote-Group, one header per group). Calls without these
headers act as the pod's own ServiceAccount. Either way Canopy confines the call to that
identity's subtree of the tenancy tree and shows namespaces by their names in the view.

    frontend.py [--sidecar URL] [--user NAME [--group GROUP]...] [--view PATH] namespaces
    frontend.py [--sidecar URL] [--user NAME ...] [--view PATH] configmaps NAMESPACE

Prints one name per line; on a refusal prints the Kubernetes Status message and exits 1.
Standard library only.
"""

import argparse
import http.client
import json
import sys
import urllib.parse


def call(sidecar, path, user=None, groups=(), view=None):
    """GET `path` through the sidecar as `user` (or as the pod); returns (status, JSON body)."""
    url = urllib.parse.urlsplit(sidecar)
    if url.scheme != "http":
        raise SystemExit("the sidecar speaks plain HTTP on loopback: use http://127.0.0.1:PORT")
    prefix = "/v/" + view.strip("/") if view else ""
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
    connection.putrequest("GET", prefix + path)
    connection.putheader("Accept", "application/json")
    if user:
        connection.putheader("X-Remote-User", user)
        for group in groups:  # one header per group, never comma-joined
            connection.putheader("X-Remote-Group", group)
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, body


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecar", default="http://127.0.0.1:8001", help="the sidecar's URL")
    parser.add_argument("--user", help="signed-in end user; absent: act as the pod")
    parser.add_argument("--group", action="append", default=[], help="the user's groups")
    parser.add_argument("--view", help="tree path to act in, e.g. acme/web")
    parser.add_argument("what", choices=["namespaces", "configmaps"])
    parser.add_argument("namespace", nargs="?")
    args = parser.parse_args()

    if args.what == "namespaces":
        path = "/api/v1/namespaces"
    elif args.namespace:
        path = "/api/v1/namespaces/%s/configmaps" % urllib.parse.quote(args.namespace, safe="")
    else:
        parser.error("configmaps needs a NAMESPACE")
    status, body = call(args.sidecar, path, args.user, args.group, args.view)
    if status != 200:
        print("%s (%s): %s" % (body.get("reason", "Error"), status, body.get("message", "")), file=sys.stderr)
        return 1
    for item in body.get("items", []):
        print(item["metadata"]["name"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
