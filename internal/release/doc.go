// Package release holds no code, only tests of what edgeipc ships: the
// static release binaries (make cross) and the .deb packages (make deb).
//
// The tests check that every binary is statically linked, cgo-free,
// stripped, built for the right architecture and ARM level, stamped with its
// version and commit, and within the size budget in budget.txt; that every
// .deb holds the right binary, files, modes and conffile, depends on
// nothing and is the same bytes when packed again (make deb); and, as
// root, that the amd64 .deb installs, upgrades, runs and
// purges cleanly on this machine.
//
// Environment:
//
//	EDGEIPC_DIST      directory holding edgeipc-linux-{amd64,arm64,armv7,armv6};
//	                  without it the tests build the binaries themselves
//	EDGEIPC_VERSION   version stamped in the dist binaries (with EDGEIPC_DIST)
//	EDGEIPC_COMMIT    commit stamped in the dist binaries (with EDGEIPC_DIST)
//	EDGEIPC_DEB       the amd64 .deb to install (TestDeb; make test-deb sets it)
//	EDGEIPC_DEB_CONFIG the file packaged as /etc/edgeipc/edgeipc.toml
//	EDGEIPC_DEB_E2E=1 fail, rather than skip, when `edgeipc run` is missing
//	EDGEIPC_NFPM      the nfpm command make deb runs (TestDebReproducible)
//	SOURCE_DATE_EPOCH the time make deb stamps into the packages (the commit's)
package release
