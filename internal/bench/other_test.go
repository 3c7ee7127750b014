//go:build !linux

package bench

import (
	"errors"
	"testing"

	"github.com/edgeipc/edgeipc/internal/sys"
)

func TestPinningNotSupported(t *testing.T) {
	if err := pinProcess(0); !errors.Is(err, sys.ErrNotSupported) {
		t.Fatalf("pinProcess: %v, want an error wrapping sys.ErrNotSupported", err)
	}
	if cpus, err := AllowedCPUs(); !errors.Is(err, sys.ErrNotSupported) {
		t.Fatalf("AllowedCPUs: %v, %v, want an error wrapping sys.ErrNotSupported", cpus, err)
	}
}
