//go:build !linux

package sys

func SchedSetscheduler(tid, policy, priority int) error { return ErrNotSupported }
func SchedGetscheduler(tid int) (int, error)            { return 0, ErrNotSupported }
func SchedGetparam(tid int) (int, error)                { return 0, ErrNotSupported }
