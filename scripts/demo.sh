#!/usr/bin/env bash
# The main job: a 3-node cluster on this machine, an app spread over it, a machine killed
# and its Pods Running elsewhere seconds later.
#   bash scripts/demo.sh          ... then the cluster is taken down
#   bash scripts/demo.sh --keep   leave the cluster up (python -m cluster down --name demo removes it)
# Each node is a network namespace with its own dockerd and agentd (python -m cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
NAME=demo
PY="$ROOT/.venv/bin/python"
CTL="$ROOT/.venv/bin/agentctl"

bash scripts/setup.sh

say() { printf '\n== %s\n' "$*"; }

cleanup() {
    if [ "$KEEP" = 0 ]; then
        say "taking the cluster down"
        "$PY" -m cluster down --name "$NAME" || true
    else
        say "the cluster stays up; paste this to use agentctl, and remove it with: python -m cluster down --name $NAME"
        "$PY" -m cluster env --name "$NAME"
    fi
}

"$PY" -m cluster down --name "$NAME" >/dev/null 2>&1 || true
say "bringing up 3 nodes (3 servers: Raft voters; every node runs Pods)"
"$PY" -m cluster up --nodes 3 --name "$NAME"
trap cleanup EXIT
eval "$("$PY" -m cluster env --name "$NAME")"
export AGENTCTL_SERVER

say "agentctl get nodes"
"$CTL" get nodes
say "agentctl cluster status"
"$CTL" cluster status

say "agentctl apply -f examples/cluster/"
"$CTL" apply -f examples/cluster/

# pods.py: small queries over `agentctl get pods -o json` (which Pods run where).
pods() { "$CTL" get pods -o json | "$PY" "$ROOT/scripts/demo_pods.py" "$@"; }

printf 'waiting for the six hello Pods to be Running'
for _ in $(seq 1 120); do
    [ "$(pods running -l app=hello)" = 6 ] && break
    printf '.'; sleep 0.5
done
echo
say "agentctl get deployments,replicasets and pods -o wide   (the scheduler spread them; too-big fits nowhere)"
"$CTL" get deployments
"$CTL" get replicasets
"$CTL" get pods -o wide
say "agentctl describe pod too-big   (why it is Pending)"
"$CTL" describe pod too-big | grep -iE 'status|message|reason|Unschedulable' || true

VICTIM=$(pods busiest)
MOVED=$(pods on "$VICTIM")
say "killing node $VICTIM, which runs: $MOVED   (agentd, its dockerd and every container: SIGKILL)"
START=$(date +%s.%N)
"$PY" -m cluster kill "$VICTIM" --name "$NAME"
for _ in $(seq 1 240); do
    [ "$(pods moved "$VICTIM" $MOVED)" = yes ] && break
    sleep 0.25
done
END=$(date +%s.%N)
if [ "$(pods moved "$VICTIM" $MOVED)" != yes ]; then
    echo "demo: the Pods of $VICTIM were not Running elsewhere within 60 s" >&2
    "$CTL" get pods -o wide >&2
    exit 1
fi
say "$("$PY" -c "import sys; print(f'every Pod of {sys.argv[1]} is Running on another node, {float(sys.argv[3]) - float(sys.argv[2]):.1f} s after the kill')" "$VICTIM" "$START" "$END")"
"$CTL" get pods -o wide
say "agentctl get nodes   ($VICTIM is NotReady)"
"$CTL" get nodes

say "starting $VICTIM again: it rejoins, and stops the copies it still had"
"$PY" -m cluster start "$VICTIM" --name "$NAME"
for _ in $(seq 1 120); do
    "$CTL" get nodes 2>/dev/null | awk -v n="$VICTIM" '$1 == n && $2 ~ /^Ready/ {found=1} END {exit !found}' && break
    sleep 0.5
done
"$CTL" get nodes

say "agentctl rollout restart deployment/hello   (a rolling update: one new Pod at a time, six always Ready)"
"$CTL" rollout restart deployment/hello
"$CTL" rollout status deployment/hello --timeout 120s
"$CTL" get pods -o wide
say "agentctl get events   (what happened, as the cluster recorded it)"
"$CTL" get events | tail -n 15
