#!/usr/bin/env bash
# The main job: prepare this machine, start agentd on it with the example Pods in
# examples/, show them running with agentctl, and keep the agent in the foreground.
#   bash scripts/demo.sh          run until Ctrl-C (the Pods are removed on exit)
#   bash scripts/demo.sh --once   show the Pods running, then clean up and exit
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1

bash scripts/setup.sh

RUN="$ROOT/run/demo"
API="127.0.0.1:${AGENTD_API_PORT:-7070}"
mkdir -p "$RUN/manifests"
rm -f "$RUN/manifests"/*
cp examples/*.yaml "$RUN/manifests/"
export AGENTCTL_SERVER="$API"
CTL="$ROOT/.venv/bin/agentctl"

"$ROOT/.venv/bin/agentd" --node-name demo-node --manifest-dir "$RUN/manifests" --api-addr "$API" \
    >"$RUN/agentd.log" 2>&1 &
AGENTD=$!

cleanup() {
    echo "demo: removing the example Pods and stopping agentd"
    rm -f "$RUN/manifests"/*
    for _ in $(seq 1 60); do
        [ -z "$("$CTL" get pods -A -o name 2>/dev/null)" ] && break
        sleep 0.5
    done
    kill "$AGENTD" 2>/dev/null || true
    wait "$AGENTD" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 50); do
    "$CTL" get node >/dev/null 2>&1 && break
    kill -0 "$AGENTD" 2>/dev/null || { echo "demo: agentd exited; its log:"; cat "$RUN/agentd.log"; exit 1; }
    sleep 0.2
done
echo "== agentctl get node"
"$CTL" get node

# Every example Pod that runs forever becomes Ready; the batch Pod Succeeds.
for _ in $(seq 1 50); do
    [ -n "$("$CTL" get pods -o name)" ] && break
    sleep 0.2
done
readarray -t long_running < <("$CTL" get pods -o json | "$ROOT/.venv/bin/python" -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["spec"].get("restartPolicy", "Always") == "Always":
        print("pod/" + p["metadata"]["name"])')
echo "== agentctl wait --for condition=Ready ${long_running[*]}"
"$CTL" wait "${long_running[@]}" --for condition=Ready --timeout 60
sleep 2
echo "== agentctl get pods -o wide"
"$CTL" get pods -o wide
echo "== agentctl logs web -c fetcher --tail 3"
"$CTL" logs web -c fetcher --tail 3
echo "== agentctl wait pod/count-to-five --for phase=Succeeded"
"$CTL" wait pod/count-to-five --for phase=Succeeded --timeout 60
echo "== agentctl logs count-to-five"
"$CTL" logs count-to-five
echo "== agentctl get pods"
"$CTL" get pods

if [ "$ONCE" = 1 ]; then
    exit 0
fi
echo "demo: agentd is running (log: $RUN/agentd.log); try: AGENTCTL_SERVER=$API $CTL get pods -o wide. Ctrl-C stops it."
wait "$AGENTD"
