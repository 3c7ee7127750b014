package sys

import (
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// CloseOnExecFrom marks a descriptor opened without O_CLOEXEC
// close-on-exec, with close_range and, where the kernel lacks it, one
// descriptor at a time from /proc/self/fd; descriptors below lowfd keep
// their flag.
func TestCloseOnExecFrom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
	}{{"close_range", false}, {"proc", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fallback {
				closeRange = func(uint, uint, uint) error { return unix.ENOSYS }
				t.Cleanup(func() { closeRange = unix.CloseRange })
			}
			p := filepath.Join(t.TempDir(), "f")
			lo, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CREAT, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(lo)
			// One above every descriptor open now, so lo is below it.
			hi, err := unix.FcntlInt(uintptr(lo), unix.F_DUPFD, lo+100)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(hi)
			if err := CloseOnExecFrom(hi); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				fd   int
				want bool
			}{{lo, false}, {hi, true}} {
				f, err := unix.FcntlInt(uintptr(c.fd), unix.F_GETFD, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := f&unix.FD_CLOEXEC != 0; got != c.want {
					t.Errorf("fd %d (CloseOnExecFrom(%d)): close-on-exec %v, want %v", c.fd, hi, got, c.want)
				}
			}
		})
	}
}
