package sched

import (
	"errors"

	"github.com/edgeipc/edgeipc/internal/sys"
)

var (
	// ErrPermission is wrapped by errors from calls the process lacks the
	// capability or resource limit for.
	ErrPermission = errors.New("sched: permission denied")
	// ErrNotSupported is returned on systems other than Linux. It is the
	// same error as shm.ErrNotSupported: errors.Is matches either.
	ErrNotSupported = sys.ErrNotSupported
)
