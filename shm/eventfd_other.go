//go:build !linux

package shm

import (
	"context"
	"os"
	"time"
)

// Eventfd is Linux-only; elsewhere every operation fails with ErrNotSupported.
type Eventfd struct{}

// NewEventfd is Linux only: it returns an error matching ErrNotSupported.
func NewEventfd() (*Eventfd, error) { return nil, ErrNotSupported }

// EventfdFromFile is Linux only: it returns an error matching ErrNotSupported.
func EventfdFromFile(*os.File) (*Eventfd, error) { return nil, ErrNotSupported }

// File is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) File() (*os.File, error) { return nil, ErrNotSupported }

// Signal is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) Signal() error { return ErrNotSupported }

// TryWait is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) TryWait() error { return ErrNotSupported }

// Wait is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) Wait(context.Context) error { return ErrNotSupported }

// WaitDeadline is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) WaitDeadline(time.Time) error { return ErrNotSupported }

// Close is Linux only: it returns an error matching ErrNotSupported.
func (e *Eventfd) Close() error                          { return ErrNotSupported }
func (e *Eventfd) wait(waitSpec) error                   { return ErrNotSupported }
func (e *Eventfd) waitMax(waitSpec, time.Duration) error { return ErrNotSupported }
func (e *Eventfd) isClosed() bool                        { return true }
func (e *Eventfd) useFor() bool                          { return false }
func (e *Eventfd) done()                                 {}
