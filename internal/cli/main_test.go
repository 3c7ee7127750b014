package cli

import (
	"os"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
)

// TestMain: a qemu-user fork deadlock fails fast instead of hanging.
func TestMain(m *testing.M) { os.Exit(qemuwatch.Run(m)) }
