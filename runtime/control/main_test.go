//go:build linux

package control

import (
	"os"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestMain: a qemu-user fork deadlock fails fast instead of hanging, and
// a descriptor left open fails the run.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "dial-as":
		os.Exit(childDialAs())
	case "small-rlimit":
		os.Exit(childSmallRlimit())
	case "serve-as":
		os.Exit(childServeAs())
	case "member":
		os.Exit(childMember())
	}
	qemuwatch.Start()
	os.Exit(testenv.Run(m)) // fails on leaked queue descriptors
}
