//go:build !linux

package sched

import (
	"context"
	"time"
)

func SetThread(p Policy, priority int) error { return ErrNotSupported }
func Thread() (Policy, int, error)           { return 0, 0, ErrNotSupported }
func SetAffinity(cpus ...int) error          { return ErrNotSupported }
func Affinity() ([]int, error)               { return nil, ErrNotSupported }
func LockMemory() error                      { return ErrNotSupported }
func UnlockMemory() error                    { return ErrNotSupported }

type Ticker struct{}

func NewTicker(period time.Duration) (*Ticker, error)      { return nil, ErrNotSupported }
func (t *Ticker) Period() time.Duration                    { return 0 }
func (t *Ticker) Wait(ctx context.Context) (uint64, error) { return 0, ErrNotSupported }
func (t *Ticker) WaitDeadline(time.Time) (uint64, error)   { return 0, ErrNotSupported }
func (t *Ticker) TryWait() (uint64, error)                 { return 0, ErrNotSupported }
func (t *Ticker) Stats() (uint64, uint64)                  { return 0, 0 }
func (t *Ticker) Close() error                             { return ErrNotSupported }
