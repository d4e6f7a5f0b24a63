#!/usr/bin/env bash
# Provision one machine of an agentd cluster: the Docker engine and Python (from Debian's
# packages, only those missing), agentd in a venv at /opt/agentd (agentd and agentctl
# linked into /usr/local/bin), its settings in /etc/agentd/agentd.env, agentctl's servers
# for login shells in /etc/profile.d/agentd.sh, and the systemd unit agentd.service
# (data in /var/lib/agentd, logs in the journal); then agentd is enabled and (re)started.
# Run as root. Idempotent: run it again to upgrade agentd from the source or change settings.
#
#   provision.sh --name node1 --address 192.168.56.11 --bootstrap-expect 3 \
#       --join 192.168.56.12:7946 --join 192.168.56.13:7946 \
#       --agentctl-server 192.168.56.11:7070,192.168.56.12:7070,192.168.56.13:7070 --source /vagrant
#
# The Vagrantfile passes these for each VM. Where systemd does not run (the tests run this
# script inside a network-namespace node of cluster/), --no-systemd starts agentd as a
# detached process instead, and --root DIR writes every file below DIR instead of /.
set -euo pipefail

PREFIX=/opt/agentd                       # the venv agentd is installed into
CONF_DIR=/etc/agentd
DATA_DIR=/var/lib/agentd                 # the unit's StateDirectory=agentd
UNIT_FILE=/etc/systemd/system/agentd.service
PROFILE_FILE=/etc/profile.d/agentd.sh
BIN_DIR=/usr/local/bin
LOG_FILE=/var/log/agentd.log             # --no-systemd only: systemd's agentd logs to the journal
PID_FILE=/run/agentd.pid                 # --no-systemd only
API_PORT=7070                            # agentd's defaults: the unit does not change them
READY_TIMEOUT_S=90                       # agentd's Python start-up on a small VM
STOP_TIMEOUT_S=20                        # a graceful stop leaves the gossip within a few seconds

usage() {
    cat <<'EOF'
usage: provision.sh --name NAME --address IP (--source DIR | --wheel FILE) [options]

  --name NAME              this node's name (agentd --name)
  --address IP             the address agentd binds to and advertises (agentd --bind)
  --join HOST:PORT         gossip address of another member (repeatable)
  --bootstrap-expect N     a server: form the cluster once N servers see each other (0: join one)
  --label KEY=VALUE        a node label (repeatable)
  --agentctl-server LIST   what agentctl talks to in login shells (default ADDRESS:7070)
  --source DIR             build the wheel from this source tree (e.g. the synced /vagrant)
  --wheel FILE             install this wheel instead (python -m build makes it in dist/)
  --wheelhouse DIR         install dependencies from DIR only, with no package index
  --docker-url URL         the Docker engine agentd uses (default: the local socket)
  --root DIR               write every file below DIR instead of / (for tests; with --no-systemd)
  --no-systemd             start agentd as a detached process, not through systemd
                           (where systemd does not run; the unit is written all the same)
EOF
}

log() { echo "provision: $*" >&2; }
die() { echo "provision: error: $*" >&2; exit 2; }

# ----------------------------------------------------------------------------- arguments

NAME="" ADDRESS="" BOOTSTRAP_EXPECT=0 AGENTCTL_SERVER="" SOURCE="" WHEEL="" WHEELHOUSE=""
DOCKER_URL="" ROOT="" SYSTEMD=1
JOIN=() LABELS=()

need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --name) need_value "$@"; NAME=$2; shift 2 ;;
        --address) need_value "$@"; ADDRESS=$2; shift 2 ;;
        --join) need_value "$@"; JOIN+=("$2"); shift 2 ;;
        --bootstrap-expect) need_value "$@"; BOOTSTRAP_EXPECT=$2; shift 2 ;;
        --label) need_value "$@"; LABELS+=("$2"); shift 2 ;;
        --agentctl-server) need_value "$@"; AGENTCTL_SERVER=$2; shift 2 ;;
        --source) need_value "$@"; SOURCE=$2; shift 2 ;;
        --wheel) need_value "$@"; WHEEL=$2; shift 2 ;;
        --wheelhouse) need_value "$@"; WHEELHOUSE=$2; shift 2 ;;
        --docker-url) need_value "$@"; DOCKER_URL=$2; shift 2 ;;
        --root) need_value "$@"; ROOT=$2; shift 2 ;;
        --no-systemd) SYSTEMD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# Every value ends up in agentd.env, which both systemd and a shell read: no blanks, no quotes.
plain='^[^[:space:]"'"'"'\\$`]+$'
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
[ -n "$NAME" ] || die "--name is required"
[[ $NAME =~ ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ ]] \
    || die "--name '$NAME': use a-z, 0-9, '-' and '.', starting and ending with a letter or digit"
[ -n "$ADDRESS" ] || die "--address is required"
[[ $ADDRESS =~ ^$octet\.$octet\.$octet\.$octet$ ]] || die "--address '$ADDRESS': expected an IPv4 address"
for peer in ${JOIN[@]+"${JOIN[@]}"}; do
    if ! [[ $peer =~ ^[A-Za-z0-9.-]+:([0-9]{1,5})$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] \
            || [ "${BASH_REMATCH[1]}" -gt 65535 ]; then
        die "--join '$peer': expected HOST:PORT"
    fi
done
[[ $BOOTSTRAP_EXPECT =~ ^[0-9]{1,2}$ ]] || die "--bootstrap-expect '$BOOTSTRAP_EXPECT': expected a number of servers"
for label in ${LABELS[@]+"${LABELS[@]}"}; do
    [[ $label =~ ^[A-Za-z0-9][A-Za-z0-9./_-]*=[A-Za-z0-9._-]*$ ]] || die "--label '$label': expected KEY=VALUE"
done
AGENTCTL_SERVER=${AGENTCTL_SERVER:-$ADDRESS:$API_PORT}
[[ $AGENTCTL_SERVER =~ ^[A-Za-z0-9.-]+:[0-9]+(,[A-Za-z0-9.-]+:[0-9]+)*$ ]] \
    || die "--agentctl-server '$AGENTCTL_SERVER': expected HOST:PORT[,HOST:PORT...]"
if [ -n "$WHEEL" ] && [ -n "$SOURCE" ]; then die "--wheel and --source: give one"; fi
if [ -z "$WHEEL" ] && [ -z "$SOURCE" ]; then die "--source DIR or --wheel FILE is required"; fi
if [ -n "$WHEEL" ]; then
    if [[ $WHEEL != *.whl ]] || [ ! -f "$WHEEL" ]; then die "--wheel '$WHEEL': no such wheel file"; fi
fi
if [ -n "$SOURCE" ]; then
    if [ ! -f "$SOURCE/pyproject.toml" ] || [ ! -d "$SOURCE/agent" ]; then
        die "--source '$SOURCE': not agentd's source tree (no pyproject.toml and agent/)"
    fi
fi
if [ -n "$WHEELHOUSE" ] && [ ! -d "$WHEELHOUSE" ]; then die "--wheelhouse '$WHEELHOUSE': no such directory"; fi
if [ -n "$DOCKER_URL" ] && ! [[ $DOCKER_URL =~ $plain ]]; then die "--docker-url '$DOCKER_URL': blanks or quotes"; fi
if [ -n "$ROOT" ]; then
    if [ "$SYSTEMD" = 1 ]; then die "--root needs --no-systemd: systemd would start the host's agentd"; fi
    if [[ $ROOT != /* ]] || ! [[ $ROOT =~ $plain ]]; then
        die "--root '$ROOT': expected an absolute path without blanks or quotes"
    fi
    ROOT=${ROOT%/}
    mkdir -p "$ROOT"
elif [ "$(id -u)" != 0 ]; then
    die "must run as root (installs packages, writes /etc and /opt, starts agentd)"
fi
R=$ROOT  # every path written is "$R$PATH"

# ----------------------------------------------------------------------------- packages

static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }

packages=()
command -v dockerd >/dev/null || packages+=(docker.io)
command -v docker >/dev/null || packages+=(docker.io)
command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3 python3-venv)
if [ -n "$SOURCE" ] && ! static_busybox; then packages+=(busybox-static); fi  # for the image busybox:local
if [ "${#packages[@]}" -gt 0 ]; then
    mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
    log "installing ${packages[*]}"
    apt-get update -qq
    # With recommends: docker.io needs apparmor where the kernel enforces it (Debian does by default).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
    log "the Docker engine and Python are installed already"
fi

# ----------------------------------------------------------------------------- the engine

if [ -n "$DOCKER_URL" ]; then export DOCKER_HOST=$DOCKER_URL; fi
if [ "$SYSTEMD" = 1 ]; then
    systemctl enable --now docker.service >/dev/null
fi
for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 1
done
docker version >/dev/null 2>&1 \
    || die "no Docker engine answers at ${DOCKER_URL:-the local socket} (start dockerd, or give --docker-url)"
log "docker engine $(docker version --format '{{.Server.Version}}') answers"
# The examples run busybox:local, made from Debian's busybox-static: there may be no registry.
if [ -n "$SOURCE" ] && [ -f "$SOURCE/scripts/build_images.sh" ]; then
    bash "$SOURCE/scripts/build_images.sh"
fi

# ----------------------------------------------------------------------------- agentd in a venv

venv=$R$PREFIX
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip_opts=(--disable-pip-version-check --quiet)
if [ -n "$WHEELHOUSE" ]; then pip_opts+=(--no-index --find-links "$WHEELHOUSE"); fi

if [ ! -x "$venv/bin/python" ]; then
    log "creating the venv $venv"
    python3 -m venv "$venv"
fi
if [ -z "$WHEEL" ]; then
    # Built from a copy of what the wheel holds, so the source tree (maybe a synced folder)
    # gets no build/ nor *.egg-info; without build isolation, by the venv's setuptools
    # (upgraded first if it has no bdist_wheel), so a wheelhouse serves as well as an index.
    mkdir -p "$work/src" "$work/dist"
    cp -r "$SOURCE/pyproject.toml" "$SOURCE/agent" "$work/src/"
    if [ -f "$SOURCE/README.md" ]; then cp "$SOURCE/README.md" "$work/src/"; fi
    find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
    if ! "$venv/bin/python" -c 'import setuptools.command.bdist_wheel' 2>/dev/null; then
        "$venv/bin/pip" install "${pip_opts[@]}" 'setuptools>=70.1'  # the first with bdist_wheel built in
    fi
    log "building the wheel from $SOURCE"
    "$venv/bin/pip" wheel "${pip_opts[@]}" --no-deps --no-build-isolation --wheel-dir "$work/dist" "$work/src"
    wheels=("$work"/dist/agent-*.whl)
    [ -f "${wheels[0]}" ] || die "building the wheel from $SOURCE made no dist/agent-*.whl"
    WHEEL=${wheels[0]}
fi
log "installing $(basename "$WHEEL") into $venv"
if "$venv/bin/pip" show -q agent >/dev/null 2>&1; then
    "$venv/bin/pip" uninstall --disable-pip-version-check --quiet -y agent  # the same version may hold newer code
fi
"$venv/bin/pip" install "${pip_opts[@]}" "$WHEEL"
"$venv/bin/agentd" --version >/dev/null
"$venv/bin/agentctl" --help >/dev/null
mkdir -p "$R$BIN_DIR"
for tool in agentd agentctl; do
    ln -sfn "$venv/bin/$tool" "$R$BIN_DIR/$tool"
done

# ----------------------------------------------------------------------------- configuration

args=()
for peer in ${JOIN[@]+"${JOIN[@]}"}; do args+=(--join "$peer"); done
if [ "$BOOTSTRAP_EXPECT" -gt 0 ]; then args+=(--bootstrap-expect "$BOOTSTRAP_EXPECT"); fi
for label in ${LABELS[@]+"${LABELS[@]}"}; do args+=(--label "$label"); done
if [ -n "$DOCKER_URL" ]; then args+=(--docker-url "$DOCKER_URL"); fi

mkdir -p "$R$CONF_DIR" "$(dirname "$R$UNIT_FILE")" "$(dirname "$R$PROFILE_FILE")"
cat >"$R$CONF_DIR/agentd.env.tmp" <<EOF
# agentd's settings on this machine, written by provision.sh (run it again to change them).
# Read by systemd (EnvironmentFile= of agentd.service) and by provision.sh --no-systemd.
AGENTD_NAME=$NAME
AGENTD_BIND=$ADDRESS
AGENTD_ARGS="${args[*]}"
EOF
mv "$R$CONF_DIR/agentd.env.tmp" "$R$CONF_DIR/agentd.env"

cat >"$R$PROFILE_FILE" <<EOF
# Written by agentd's provision.sh: agentctl talks to the cluster's servers.
export AGENTCTL_SERVER=$AGENTCTL_SERVER
EOF

cat >"$R$UNIT_FILE" <<EOF
[Unit]
Description=agentd, the node agent of an agentd cluster
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Type=simple
EnvironmentFile=$CONF_DIR/agentd.env
ExecStart=$PREFIX/bin/agentd --data-dir $DATA_DIR --name \${AGENTD_NAME} --bind \${AGENTD_BIND} \$AGENTD_ARGS
# $DATA_DIR: agentd's identity and Raft data, kept across restarts and upgrades.
StateDirectory=agentd
StateDirectoryMode=0700
StandardOutput=journal
StandardError=journal
SyslogIdentifier=agentd
# SIGTERM: agentd leaves the gossip and stops; its Pods keep running and a restarted
# agentd adopts them (containers belong to containerd, not to this unit).
TimeoutStopSec=${STOP_TIMEOUT_S}s
Restart=on-failure
RestartSec=2s

[Install]
WantedBy=multi-user.target
EOF
log "wrote $R$CONF_DIR/agentd.env, $R$PROFILE_FILE and $R$UNIT_FILE"

# ----------------------------------------------------------------------------- start

api_answers() { (exec 3<>"/dev/tcp/$ADDRESS/$API_PORT") 2>/dev/null; }

running_pid() {  # the pid of the agentd this script started directly, if it still runs
    local pid
    pid=$(cat "$R$PID_FILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q agentd \
        && echo "$pid"
}

start_directly() {
    local pid extra
    if pid=$(running_pid); then
        log "stopping the agentd already running (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then die "agentd (pid $pid) did not stop within ${STOP_TIMEOUT_S}s"; fi
    fi
    # The unit's command line, from the same settings file, with the paths below the root.
    # shellcheck disable=SC1090,SC1091
    . "$R$CONF_DIR/agentd.env"
    read -r -a extra <<<"$AGENTD_ARGS"
    mkdir -p "$R$DATA_DIR" "$(dirname "$R$LOG_FILE")" "$(dirname "$R$PID_FILE")"
    chmod 0700 "$R$DATA_DIR"
    rm -f "$R$PID_FILE"
    # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
    setsid -f sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$R$PID_FILE" \
        "$venv/bin/agentd" --data-dir "$R$DATA_DIR" --name "$AGENTD_NAME" --bind "$AGENTD_BIND" \
        ${extra[@]+"${extra[@]}"} </dev/null >>"$R$LOG_FILE" 2>&1
    for _ in $(seq 1 50); do
        [ -s "$R$PID_FILE" ] && break
        sleep 0.1
    done
}

if [ "$SYSTEMD" = 1 ]; then
    systemctl daemon-reload
    systemctl enable --quiet agentd.service
    systemctl restart agentd.service
    is_up() { systemctl is-active --quiet agentd.service; }
    why() { journalctl -u agentd.service -n 20 --no-pager; }
else
    start_directly
    is_up() { running_pid >/dev/null; }
    why() { tail -n 20 "$R$LOG_FILE"; }
fi
for _ in $(seq 1 $((READY_TIMEOUT_S * 5))); do
    is_up || { why >&2; die "agentd exited"; }
    api_answers && break
    sleep 0.2
done
api_answers || { why >&2; die "agentd does not answer at $ADDRESS:$API_PORT after ${READY_TIMEOUT_S}s"; }
log "agentd $NAME answers at $ADDRESS:$API_PORT"
