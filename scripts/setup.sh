#!/usr/bin/env bash
# setup.sh — what `make test` needs on a fresh Debian/Ubuntu machine:
# Debian packages (qemu-user-static for the ARM runs, systemd
# tools for the .deb test, ...), qemu registered with binfmt_misc, and
# /dev/mqueue mounted.
#
#   scripts/setup.sh   as root: install the missing packages, register qemu
#                      as any user: exit 0 if ready, else print the one
#                      command to run as root and exit 1
# Idempotent and quick when everything is there (no apt-get call then).
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with .ci/run.
PKGS=(qemu-user-static binfmt-support file adduser passwd systemd ca-certificates git make procps gcc libc6-dev python3)
# The C client is also tested as a 32-bit x86 program (clients tests).
[[ $(dpkg --print-architecture 2>/dev/null) == amd64 ]] && PKGS+=(gcc-multilib)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
root=0
[[ $(id -u) -eq 0 ]] && root=1

if (( ${#missing[@]} )); then
  if (( ! root )); then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run once: sudo scripts/setup.sh   (then make test again)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends --no-upgrade "${missing[@]}"
fi

if ! scripts/setup-qemu.sh --check 2>/dev/null; then
  if (( ! root )); then
    scripts/setup-qemu.sh --check || true
    echo "setup: run once: sudo scripts/setup.sh   (then make test again)" >&2
    exit 1
  fi
  scripts/setup-qemu.sh
fi
# The mqueue file system, mounted as systemd mounts it on a device: ctl
# sweeps the reply queues of dead processes through it and names a queue's
# owner in its errors; TestSweepReplyQueues skips, saying so, without it.
mq=""
if ! mountpoint -q /dev/mqueue 2>/dev/null; then
  if (( root )) && mkdir -p /dev/mqueue && mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue; then
    mq=", /dev/mqueue mounted"
  else
    mq=" (/dev/mqueue is not mounted and could not be: TestSweepReplyQueues will skip; as root: mount -t mqueue mqueue /dev/mqueue)"
  fi
fi
echo "setup: ok (packages installed, qemu registered with binfmt_misc$mq)"
