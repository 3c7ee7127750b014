//go:build !linux

package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgeipc/edgeipc/shm"
)

// TestNotSupported: off Linux the configuration still parses, but New and
// Run return an error wrapping shm.ErrNotSupported that names Linux.
func TestNotSupported(t *testing.T) {
	cfg := Default()
	rt, err := New(cfg, Options{})
	if !errors.Is(err, shm.ErrNotSupported) || rt != nil {
		t.Fatalf("New: %v, %v; want nil and an error wrapping shm.ErrNotSupported", rt, err)
	}
	if want := "needs Linux"; !strings.Contains(err.Error(), want) {
		t.Fatalf("New: %q does not say %q", err, want)
	}
	if err := (&Runtime{cfg: cfg}).Run(context.Background()); !errors.Is(err, shm.ErrNotSupported) {
		t.Fatalf("Run: %v, want an error wrapping shm.ErrNotSupported", err)
	}
}
