"""Running a bench on a namespace cluster of its own: the part every cluster bench shares.

`run_on_cluster` checks for root, brings the cluster up, runs the bench's Trio function
on it, always takes the cluster down (unless --keep), and prints the figures as one JSON
line with `quick` and `elapsed_s` added.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from cluster import Cluster
from cluster.log_digest import digest


def run_on_cluster(label: str, bench: Callable[[Cluster, argparse.Namespace], Awaitable[dict[str, Any]]],
                   args: argparse.Namespace) -> int:
    """`args` carries name, nodes, servers, keep and quick. Returns the exit status."""
    if os.geteuid() != 0:
        print(f"{label}: must run as root (it builds a namespace cluster)", file=sys.stderr)
        return 1
    started = time.monotonic()
    cluster = Cluster.up(args.name, nodes=args.nodes, servers=args.servers)
    try:
        figures = trio.run(bench, cluster, args)
    except BaseException:
        print(f"{label}: failed; the telling lines of the agents' logs:\n{digest(cluster.run_dir)}", file=sys.stderr)
        raise
    finally:
        if not args.keep:
            cluster.down()
    figures["quick"] = args.quick
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0
