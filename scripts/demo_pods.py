"""Small queries the demo asks of `agentctl get pods -o json` (read from stdin).

    running [-l app=X]         how many Pods (with that label) are Running
    busiest                    the node that runs the most Running Pods
    on NODE                    the names of the Running Pods on NODE that will move
                               (restartPolicy not Never), space-separated
    moved NODE POD...          "yes" when every named Pod is Running on a node other than NODE
"""

from __future__ import annotations

import collections
import json
import sys


def main(argv: list[str]) -> str:
    doc = json.load(sys.stdin)
    pods = doc.get("items", [doc]) if doc.get("kind") == "List" else [doc]
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    command, args = argv[0], argv[1:]
    if command == "running":
        if args[:1] == ["-l"]:
            key, _, value = args[1].partition("=")
            running = [p for p in running if (p["metadata"].get("labels") or {}).get(key) == value]
        return str(len(running))
    if command == "busiest":
        counts = collections.Counter(p["spec"].get("nodeName", "") for p in running)
        return counts.most_common(1)[0][0]
    if command == "on":
        return " ".join(sorted(p["metadata"]["name"] for p in running if p["spec"].get("nodeName") == args[0]
                               and p["spec"].get("restartPolicy", "Always") != "Never"))
    if command == "moved":
        node, names = args[0], set(args[1:])
        elsewhere = {p["metadata"]["name"] for p in running if p["spec"].get("nodeName") not in ("", node)}
        return "yes" if names <= elsewhere else "no"
    raise SystemExit(f"demo_pods: unknown query {command!r}")


if __name__ == "__main__":
    print(main(sys.argv[1:]))
