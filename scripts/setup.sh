#!/usr/bin/env bash
# Prepare this machine to run and test agentd. Idempotent; run as root on Debian.
#   - installs the Docker engine, busybox-static, iptables and iproute2 from Debian if missing
#   - installs what the checks of the Vagrant cluster use: vagrant with its libvirt provider
#     (no recommends: no hypervisor here), shellcheck, systemd-analyze
#   - starts dockerd if it is not answering, and waits until it does
#   - makes the local images the tests and the demo use (there is no registry here)
#   - creates .venv and installs the package with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { echo "setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    echo "setup: must run as root (installs packages, starts dockerd)" >&2
    exit 1
fi

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
# The Vagrant cluster's checks (tests/integration/test_vagrant_files.py): vagrant validates
# the Vagrantfile (its libvirt provider's settings too), shellcheck and systemd-analyze check
# the provisioning. Without recommends: vagrant-libvirt would bring libvirt's daemon and QEMU.
vagrant_pkgs=()
command -v vagrant >/dev/null || vagrant_pkgs+=(vagrant)
dpkg -s vagrant-libvirt >/dev/null 2>&1 || vagrant_pkgs+=(vagrant-libvirt)
command -v shellcheck >/dev/null || vagrant_pkgs+=(shellcheck)
command -v systemd-analyze >/dev/null || vagrant_pkgs+=(systemd)
if [ ${#vagrant_pkgs[@]} -gt 0 ]; then
    log "installing ${vagrant_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vagrant_pkgs[@]}" >/dev/null
fi
# busybox-static must be the static build: the image has no libc.
if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    if ! ldd /bin/busybox 2>&1 | grep -q 'not a dynamic'; then
        log "installing busybox-static (the busybox here is dynamically linked)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    fi
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/agentd-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        log "dockerd did not answer within 60 s; its log:"
        tail -n 40 /var/log/agentd-dockerd.log >&2
        exit 1
    fi
fi
log "docker engine $(docker version --format '{{.Server.Version}}') is answering"

bash "$ROOT/scripts/build_images.sh"

if [ ! -x "$ROOT/.venv/bin/python" ]; then
    log "creating .venv"
    python3 -m venv "$ROOT/.venv"
fi
if ! "$ROOT/.venv/bin/python" -c 'import agent, trio, grpc, docker, pytest_trio, hypothesis, build' 2>/dev/null \
   || [ "$ROOT/pyproject.toml" -nt "$ROOT/.venv/.installed" ]; then
    log "installing the package and its test extras into .venv"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -e "${ROOT}[test]" 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$ROOT/.venv/bin/python" -c 'import agent, trio, grpc, docker, pytest_trio, hypothesis, build'
    touch "$ROOT/.venv/.installed"
fi
log "ready"
