//go:build !linux

package sys

// ProcStartTime is Linux-only.
func ProcStartTime(pid int) (uint32, error) { return 0, ErrNotSupported }

// ProcessAlive is Linux-only; it reports false.
func ProcessAlive(pid int, start uint32) bool { return false }

// SelfStartTime is Linux-only; it returns 0.
func SelfStartTime() uint32 { return 0 }

// SelfPidNS is Linux-only; it returns 0.
func SelfPidNS() uint32 { return 0 }
