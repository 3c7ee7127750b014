package sched

import (
	"fmt"
	"strings"
)

// Policy is a Linux scheduling policy. The values are Linux's SCHED_*
// numbers.
type Policy int

const (
	Other Policy = 0 // SCHED_OTHER: the default time-sharing policy
	FIFO  Policy = 1 // SCHED_FIFO: real-time, runs until it blocks or a higher priority preempts it
	RR    Policy = 2 // SCHED_RR: real-time, round-robin among equal priorities
	Batch Policy = 3 // SCHED_BATCH: time-sharing for CPU-bound work, preempts others less often
	Idle  Policy = 5 // SCHED_IDLE: runs only when nothing else wants the CPU
)

// String returns the name ParsePolicy accepts for p ("other", "fifo", ...).
func (p Policy) String() string {
	switch p {
	case Other:
		return "other"
	case FIFO:
		return "fifo"
	case RR:
		return "rr"
	case Batch:
		return "batch"
	case Idle:
		return "idle"
	}
	return fmt.Sprintf("policy(%d)", int(p))
}

// ParsePolicy parses other (or normal), fifo, rr, batch or idle.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(s) {
	case "other", "normal", "":
		return Other, nil
	case "fifo":
		return FIFO, nil
	case "rr":
		return RR, nil
	case "batch":
		return Batch, nil
	case "idle":
		return Idle, nil
	}
	return 0, fmt.Errorf("sched: unknown policy %q: use other, fifo, rr, batch or idle", s)
}
