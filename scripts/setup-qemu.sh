#!/usr/bin/env bash
# setup-qemu.sh — make this machine run linux/arm and linux/arm64 executables
# through qemu-user, so `GOARCH=arm64 go test ./...` works, including tests
# that re-execute the test binary as a child process (PITFALLS.md, qemu-user).
#
#   scripts/setup-qemu.sh          as root: mount binfmt_misc if needed and
#                                  register qemu-arm and qemu-aarch64 (idempotent)
#   scripts/setup-qemu.sh --check  any user: exit 0 if ready, else say what is
#                                  missing and what to run as root, exit 1
#
# Needs Debian's qemu-user-static (apt-get install qemu-user-static), which
# ships /usr/lib/binfmt.d/qemu-{arm,aarch64}.conf. The registrations are
# kernel-wide and last until reboot (or until binfmt_misc is unmounted).
set -euo pipefail

BINFMT_DIR=/proc/sys/fs/binfmt_misc
CONF_DIR=${BINFMT_CONF_DIR:-/usr/lib/binfmt.d}
NAMES=(qemu-arm qemu-aarch64)
check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "setup-qemu.sh: unknown argument $1 (use --check or nothing)" >&2; exit 2 ;;
esac

say() { echo "setup-qemu: $*" >&2; }

# problems prints one line per missing piece; empty output means ready.
problems() {
  local n conf interp
  for n in "${NAMES[@]}"; do
    conf=$CONF_DIR/$n.conf
    if [[ ! -r $conf ]]; then
      echo "$conf is missing: install Debian's qemu-user-static (apt-get install -y qemu-user-static)"
      continue
    fi
    # field 7 of :name:type:offset:magic:mask:interpreter:flags
    interp=$(awk -F: 'NF>=7 {print $7; exit}' "$conf")
    if [[ ! -x $interp ]]; then
      echo "interpreter $interp named in $conf is missing: reinstall qemu-user-static"
    fi
  done
  if [[ ! -e $BINFMT_DIR/register ]]; then
    echo "binfmt_misc is not mounted at $BINFMT_DIR (no register file)"
    return
  fi
  if [[ $(cat "$BINFMT_DIR/status") != enabled ]]; then
    echo "binfmt_misc is disabled ($BINFMT_DIR/status)"
  fi
  for n in "${NAMES[@]}"; do
    if [[ ! -e $BINFMT_DIR/$n ]]; then
      echo "$n is not registered in $BINFMT_DIR"
    elif ! head -n1 "$BINFMT_DIR/$n" | grep -qx enabled; then
      echo "$n is registered but disabled ($BINFMT_DIR/$n)"
    fi
  done
}

report() {
  local p=$1
  say "ARM executables cannot run on this machine yet:"
  while IFS= read -r line; do say "  - $line"; done <<<"$p"
}

if (( check_only )); then
  p=$(problems)
  if [[ -n $p ]]; then
    report "$p"
    say "fix: run as root:  sudo $0   (after: sudo apt-get install -y qemu-user-static)"
    exit 1
  fi
  say "ok: qemu-arm and qemu-aarch64 are registered with binfmt_misc"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  p=$(problems)
  if [[ -z $p ]]; then
    say "ok: already set up (nothing to do without root)"
    exit 0
  fi
  report "$p"
  say "this step needs root: run  sudo $0  (and sudo apt-get install -y qemu-user-static if it is missing)"
  exit 1
fi

for n in "${NAMES[@]}"; do
  if [[ ! -r $CONF_DIR/$n.conf ]]; then
    say "$CONF_DIR/$n.conf is missing: apt-get install -y qemu-user-static first"
    exit 1
  fi
done

if [[ ! -e $BINFMT_DIR/register ]]; then
  say "mounting binfmt_misc on $BINFMT_DIR"
  if ! mount -t binfmt_misc binfmt_misc "$BINFMT_DIR"; then
    say "cannot mount binfmt_misc (in a container, run it privileged or register qemu on the host)"
    exit 1
  fi
fi
if [[ $(cat "$BINFMT_DIR/status") != enabled ]]; then
  echo 1 >"$BINFMT_DIR/status"
fi

for n in "${NAMES[@]}"; do
  while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    name=$(cut -d: -f2 <<<"$line")
    if [[ -e $BINFMT_DIR/$name ]]; then
      if ! head -n1 "$BINFMT_DIR/$name" | grep -qx enabled; then
        say "$name was registered but disabled: enabling"
        echo 1 >"$BINFMT_DIR/$name"
      else
        say "$name already registered"
      fi
      continue
    fi
    # The kernel parses the \xNN escapes itself: write the line verbatim.
    printf '%s\n' "$line" >"$BINFMT_DIR/register"
    say "registered $name"
  done <"$CONF_DIR/$n.conf"
done

p=$(problems)
if [[ -n $p ]]; then
  report "$p"
  exit 1
fi
say "ok: qemu-arm and qemu-aarch64 are registered with binfmt_misc"
