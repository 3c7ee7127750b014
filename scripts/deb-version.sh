#!/bin/sh
# deb-version.sh VERSION — turn a `git describe` version into a Debian
# package version (must start with a digit and sort sensibly):
#   v1.2.3                 -> 1.2.3
#   v1.2.3-4-gabc1234      -> 1.2.3+4.gabc1234
#   v1.2.3-4-gabc1234-dirty-> 1.2.3+4.gabc1234.dirty
#   0c0b062 / abc1234-dirty (no tag yet) -> 0.0.0~git.0c0b062 / 0.0.0~git.abc1234.dirty
set -eu
v=${1:?usage: deb-version.sh VERSION}
case $v in
  v[0-9]*.[0-9]*|[0-9]*.[0-9]*.[0-9]*)
    v=${v#v}
    case $v in
      *-*) base=${v%%-*}; rest=${v#*-}; echo "$base+$(echo "$rest" | tr - .)" ;;
      *) echo "$v" ;;
    esac ;;
  *) echo "0.0.0~git.$(echo "$v" | tr - .)" ;;
esac
