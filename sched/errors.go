package sched

import (
	"errors"

	"github.com/edgeipc/edgeipc/internal/sys"
)

var (
	// ErrPermission is wrapped by errors from calls the process lacks the
	// capability or resource limit for.
	ErrPermission = errors.New("sched: permission denied")
	// ErrClosed is returned by a Ticker's Wait and Close once it is
	// closed.
	ErrClosed = errors.New("sched: ticker closed")
	// ErrWouldBlock is returned by a Ticker's TryWait while the next tick
	// is still ahead.
	ErrWouldBlock = errors.New("sched: no tick due yet")
	// ErrNotSupported is returned on systems other than Linux. It is the
	// same error as shm.ErrNotSupported: errors.Is matches either.
	ErrNotSupported = sys.ErrNotSupported
)
