//go:build !linux

package sys

// CloseOnExecFrom is Linux-only.
func CloseOnExecFrom(lowfd int) error { return ErrNotSupported }
