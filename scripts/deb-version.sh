#!/bin/sh
# deb-version.sh VERSION — turn a `git describe` version into a Debian
# package version (must start with a digit and sort sensibly):
#   v1.2.3                    -> 1.2.3
#   v1.2.3-4-gabc1234         -> 1.2.3+4.gabc1234      (after the release)
#   v1.2.3-4-gabc1234-dirty   -> 1.2.3+4.gabc1234.dirty
#   v1.2.3-rc1                -> 1.2.3~rc1             (before it: ~ sorts first)
#   v1.2.3-rc1-4-gabc1234     -> 1.2.3~rc1+4.gabc1234
#   0c0b062 / abc1234-dirty (no tag yet) -> 0.0.0~git.0c0b062 / 0.0.0~git.abc1234.dirty
# With no tag the hash alone does not sort by history, so the Makefile passes
# COMMITS (git rev-list --count HEAD) as well, and it goes first:
#   deb-version.sh abc1234 57 -> 0.0.0~git.57.abc1234
set -eu
v=${1:?usage: deb-version.sh VERSION [COMMITS]}
n=${2:-}
case $v in
  v[0-9]*.[0-9]*|[0-9]*.[0-9]*.[0-9]*)
    echo "${v#v}" | sed -E \
      -e 's/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/' \
      -e 's/-dirty$/.dirty/' \
      -e 's/^([0-9]+(\.[0-9]+)*)-([0-9A-Za-z.]+)/\1~\3/' ;;
  *) echo "0.0.0~git.${n:+$n.}$(echo "$v" | tr - .)" ;;
esac
