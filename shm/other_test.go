//go:build !linux

package shm

import (
	"errors"
	"testing"
)

func TestNotSupported(t *testing.T) {
	if _, err := Create("x", Config{}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Create: %v, want ErrNotSupported", err)
	}
	if _, err := NewEventfd(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("NewEventfd: %v, want ErrNotSupported", err)
	}
}
