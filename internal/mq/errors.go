package mq

import (
	"errors"
	"fmt"

	"github.com/edgeipc/edgeipc/internal/sys"
)

var (
	// ErrClosed is returned by every operation on a closed Queue, including
	// Send and Receive calls that were waiting when Close was called.
	ErrClosed = errors.New("mq: queue closed")

	// ErrWouldBlock is returned by TrySend on a full queue and by
	// TryReceive on an empty one. It is returned unwrapped so polling loops
	// do not allocate.
	ErrWouldBlock = errors.New("mq: operation would block")

	// ErrNotMounted is wrapped by List when /dev/mqueue (or the directory
	// given to ListDir) is not an mqueue file system.
	ErrNotMounted = errors.New("mq: mqueue file system not mounted")

	// ErrNotSupported is sys.ErrNotSupported: returned on systems without
	// POSIX message queues.
	ErrNotSupported = sys.ErrNotSupported
)

// OpError describes a failed operation on a named queue.
type OpError struct {
	Op   string // "create", "open", "send", "receive", "unlink", "attr", "close", "list"
	Name string // the queue name, without a leading slash
	Err  error
}

func (e *OpError) Error() string {
	if e.Name == "" {
		return "mq: " + e.Op + ": " + e.Err.Error()
	}
	return fmt.Sprintf("mq: %s %q: %v", e.Op, e.Name, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// Limit names for LimitError.Limit.
const (
	LimitMsgMax      = "msg_max"         // /proc/sys/fs/mqueue/msg_max: largest maxmsg
	LimitMsgsizeMax  = "msgsize_max"     // /proc/sys/fs/mqueue/msgsize_max: largest msgsize
	LimitQueuesMax   = "queues_max"      // /proc/sys/fs/mqueue/queues_max: queues in the IPC namespace
	LimitRlimitBytes = "RLIMIT_MSGQUEUE" // bytes of queues one user may create
)

// LimitError is returned by Create when the kernel refused a queue because
// of a system limit. It names the limit, its current value and how to raise
// it. errors.Is(err, unix.EINVAL) (or ENOSPC, EMFILE) still works through
// Unwrap.
type LimitError struct {
	Name      string // queue name
	Limit     string // one of the Limit* constants
	Requested int64  // what the queue needed (maxmsg, msgsize, queue count, bytes)
	Max       int64  // the limit in force; -1 if it could not be read
	Err       error  // the errno from mq_open
	Detail    string // the comparison that failed and how to raise the limit
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("mq: create %q: %s (%v)", e.Name, e.Detail, e.Err)
}

func (e *LimitError) Unwrap() error { return e.Err }
