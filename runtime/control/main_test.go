//go:build linux

package control

import (
	"os"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
)

// TestMain: a qemu-user fork deadlock fails fast instead of hanging.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "dial-as" {
		os.Exit(childDialAs())
	}
	os.Exit(qemuwatch.Run(m))
}
