//go:build !linux

package sys

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// MqNameMax is the longest POSIX message queue name Linux accepts.
const MqNameMax = 255

// MqPrioMax is Linux's MQ_PRIO_MAX.
const MqPrioMax = 32768

// MqueueMagic is the f_type of a Linux mqueue file system.
const MqueueMagic = 0x19800202

// MqAttr mirrors Linux's struct mq_attr so portable code compiles.
type MqAttr struct {
	Flags   int
	Maxmsg  int
	Msgsize int
	Curmsgs int
	_       [4]int
}

// ErrBadMqName is wrapped by the error returned for an invalid queue name.
var ErrBadMqName = errors.New("invalid POSIX message queue name")

// ValidateMqName applies the Linux rules so callers see the same answer
// everywhere.
func ValidateMqName(name string) error {
	if name == "" || len(name) > MqNameMax || name == "." || name == ".." ||
		strings.ContainsAny(name, "/\x00") {
		return &os.PathError{Op: "mq_open", Path: name, Err: ErrBadMqName}
	}
	return nil
}

func mqNotSupported(op string) error {
	return fmt.Errorf("%s: POSIX message queues: %w", op, ErrNotSupported)
}

// MqOpen returns an error wrapping ErrNotSupported.
func MqOpen(name string, flags int, mode uint32, attr *MqAttr) (int, error) {
	return -1, mqNotSupported("mq_open")
}

// MqUnlink returns an error wrapping ErrNotSupported.
func MqUnlink(name string) error { return mqNotSupported("mq_unlink") }

// MqGetSetAttr returns an error wrapping ErrNotSupported.
func MqGetSetAttr(fd int, newattr, oldattr *MqAttr) error { return mqNotSupported("mq_getsetattr") }

// MqTimedSend returns an error wrapping ErrNotSupported.
func MqTimedSend(fd int, msg []byte, prio uint, deadline time.Time) error {
	return mqNotSupported("mq_timedsend")
}

// MqTimedReceive returns an error wrapping ErrNotSupported.
func MqTimedReceive(fd int, buf []byte, deadline time.Time) (int, uint, error) {
	return 0, 0, mqNotSupported("mq_timedreceive")
}
