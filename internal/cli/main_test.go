package cli

import (
	"os"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestMain: a qemu-user fork deadlock fails fast instead of hanging, and
// a descriptor left open fails the run.
func TestMain(m *testing.M) {
	qemuwatch.Start()
	os.Exit(testenv.Run(m))
}
