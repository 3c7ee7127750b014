package sched

import (
	"errors"
	"testing"

	"github.com/edgeipc/edgeipc/shm"
)

// One not-supported error for the whole library: code that runs on several
// systems matches it once, whichever package returned it. sched's was
// declared only off Linux, so portable code could not even name it.
func TestErrNotSupportedIsShms(t *testing.T) {
	if !errors.Is(ErrNotSupported, shm.ErrNotSupported) {
		t.Fatalf("sched.ErrNotSupported (%v) is not shm.ErrNotSupported (%v)", ErrNotSupported, shm.ErrNotSupported)
	}
}
