package shm

import (
	"errors"

	"golang.org/x/sys/unix"
)

var errTimedOut error = unix.ETIMEDOUT

// errSlice is returned by semWait when one bounded sleep elapsed.
var errSlice = errors.New("shm: wait slice elapsed")
