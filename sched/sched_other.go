//go:build !linux

package sched

import (
	"context"
	"time"
)

// SetThread is Linux only: it returns an error matching ErrNotSupported.
func SetThread(p Policy, priority int) error { return ErrNotSupported }

// Thread is Linux only: it returns an error matching ErrNotSupported.
func Thread() (Policy, int, error) { return 0, 0, ErrNotSupported }

// SetAffinity is Linux only: it returns an error matching ErrNotSupported.
func SetAffinity(cpus ...int) error { return ErrNotSupported }

// Affinity is Linux only: it returns an error matching ErrNotSupported.
func Affinity() ([]int, error) { return nil, ErrNotSupported }

// LockMemory is Linux only: it returns an error matching ErrNotSupported.
func LockMemory() error { return ErrNotSupported }

// UnlockMemory is Linux only: it returns an error matching ErrNotSupported.
func UnlockMemory() error { return ErrNotSupported }

// Ticker is a periodic timer that counts overruns; Linux only.
type Ticker struct{}

// NewTicker is Linux only: it returns an error matching ErrNotSupported.
func NewTicker(period time.Duration) (*Ticker, error) { return nil, ErrNotSupported }

// Period returns 0: Linux only.
func (t *Ticker) Period() time.Duration { return 0 }

// Reset is Linux only: it returns an error matching ErrNotSupported.
func (t *Ticker) Reset(period time.Duration) error { return ErrNotSupported }

// Wait is Linux only: it returns an error matching ErrNotSupported.
func (t *Ticker) Wait(ctx context.Context) (uint64, error) { return 0, ErrNotSupported }

// WaitDeadline is Linux only: it returns an error matching ErrNotSupported.
func (t *Ticker) WaitDeadline(time.Time) (uint64, error) { return 0, ErrNotSupported }

// TryWait is Linux only: it returns an error matching ErrNotSupported.
func (t *Ticker) TryWait() (uint64, error) { return 0, ErrNotSupported }

// Stats returns zeros: Linux only.
func (t *Ticker) Stats() (uint64, uint64) { return 0, 0 }

// Close is Linux only: it returns an error matching ErrNotSupported.
func (t *Ticker) Close() error { return ErrNotSupported }
