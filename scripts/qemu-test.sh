#!/usr/bin/env bash
# qemu-test.sh GO-TEST-FLAGS... -- PACKAGES...
#
# Runs `go test` (GOARCH etc. come from the environment) and, if it fails,
# reruns the packages whose test binary ended with QEMU-FORK-DEADLOCK
# (internal/qemuwatch): qemu-user sometimes deadlocks a child between fork
# and exec, an emulator bug that a real kernel never shows. Only those
# packages are rerun, at most twice; any other failure fails at once.
set -uo pipefail

flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for attempt in 1 2 3; do
	"${GO:-go}" test "${flags[@]}" "${pkgs[@]}" 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	[ "$status" -eq 0 ] && exit 0
	# Each package's output ends with its "ok", "FAIL" or "?" line.
	hung=$(awk -F'\t' '/QEMU-FORK-DEADLOCK/ { m = 1 }
		$1 ~ /^(ok|FAIL|\?) *$/ && NF >= 2 { if ($1 == "FAIL" && m) print $2; m = 0 }' "$log" | sort -u)
	failed=$(awk -F'\t' '$1 == "FAIL" && NF >= 2 { print $2 }' "$log" | sort -u)
	if [ -z "$hung" ] || [ "$hung" != "$failed" ] || [ "$attempt" -eq 3 ]; then
		exit "$status"
	fi
	echo "qemu-test: qemu-user deadlocked a fork in: $(echo $hung); rerunning only those (attempt $((attempt + 1)) of 3)"
	read -r -a pkgs <<<"$(echo $hung)"
done
exit 1
