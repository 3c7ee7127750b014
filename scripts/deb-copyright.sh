#!/bin/sh
# deb-copyright.sh BINARY — print the /usr/share/doc/edgeipc/copyright of
# the .deb that ships BINARY: the license texts of the Go standard library
# and of every module linked into it (from its build info, `go version -m`).
# The binary is static, so their code is in it, and their licenses (BSD,
# MIT) ask that their notices go with every binary copy. The texts come
# from the Go installation and the module cache (go mod download: offline
# once the build has fetched them).
set -eu
bin=${1:?usage: deb-copyright.sh BINARY}
GO=${GO:-go}

license_files() { # DIR: its license files, one a line
	find "$1" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'LICENCE*' -o -iname 'COPYING*' \) | sort
}

section() { # TITLE DIR
	files=$(license_files "$2")
	if [ -z "$files" ]; then
		echo "deb-copyright.sh: no license file in $2 ($1)" >&2
		exit 1
	fi
	printf '\n==== %s ====\n' "$1"
	for f in $files; do
		printf '\n'
		cat "$f"
	done
}

gover=$($GO version "$bin" | awk '{print $2}')
cat <<HEAD
edgeipc: licenses of the software linked into /usr/bin/edgeipc

/usr/bin/edgeipc is a static Go binary: it contains the Go standard
library ($gover) and the modules below. Their license texts follow.
For edgeipc's own terms see https://github.com/edgeipc/edgeipc.
HEAD
section "Go standard library $gover" "$($GO env GOROOT)"
$GO version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r path ver; do
	dir=$($GO mod download -json "$path@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || { echo "deb-copyright.sh: go mod download $path@$ver gave no directory" >&2; exit 1; }
	section "$path $ver" "$dir"
done
