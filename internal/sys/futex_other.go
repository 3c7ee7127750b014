//go:build !linux

package sys

import "time"

// FutexWait is Linux-only.
func FutexWait(addr *uint32, val uint32, timeout time.Duration) error { return ErrNotSupported }

// FutexWake is Linux-only.
func FutexWake(addr *uint32, n int) (int, error) { return 0, ErrNotSupported }
