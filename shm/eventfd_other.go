//go:build !linux

package shm

import (
	"context"
	"os"
	"time"
)

// Eventfd is Linux-only; elsewhere every operation fails with ErrNotSupported.
type Eventfd struct{}

func NewEventfd() (*Eventfd, error)                      { return nil, ErrNotSupported }
func EventfdFromFile(*os.File) (*Eventfd, error)         { return nil, ErrNotSupported }
func (e *Eventfd) File() (*os.File, error)               { return nil, ErrNotSupported }
func (e *Eventfd) Signal() error                         { return ErrNotSupported }
func (e *Eventfd) TryWait() error                        { return ErrNotSupported }
func (e *Eventfd) Wait(context.Context) error            { return ErrNotSupported }
func (e *Eventfd) WaitDeadline(time.Time) error          { return ErrNotSupported }
func (e *Eventfd) Close() error                          { return ErrNotSupported }
func (e *Eventfd) wait(waitSpec) error                   { return ErrNotSupported }
func (e *Eventfd) waitMax(waitSpec, time.Duration) error { return ErrNotSupported }
func (e *Eventfd) isClosed() bool                        { return true }
func (e *Eventfd) useFor() bool                          { return false }
func (e *Eventfd) done()                                 {}
