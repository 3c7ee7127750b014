package cli

import (
	"os"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
)

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	os.Exit(m.Run())
}
