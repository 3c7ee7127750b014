//go:build !linux

package shm

import "errors"

var errTimedOut = errors.New("timed out")

var errSlice = errors.New("shm: wait slice elapsed")
