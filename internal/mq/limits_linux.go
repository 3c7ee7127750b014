package mq

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// ProcDir is where the kernel publishes the mqueue limits of the caller's
// IPC namespace.
const ProcDir = "/proc/sys/fs/mqueue"

// Replaceable for tests: the /proc reader and getrlimit.
var (
	readFile  = os.ReadFile
	getrlimit = func(resource int, rl *unix.Rlimit) error { return unix.Getrlimit(resource, rl) }
)

// Kernel hard caps that apply to a process with CAP_SYS_RESOURCE instead of
// msg_max and msgsize_max (HARD_MSGMAX, HARD_MSGSIZEMAX in ipc/mqueue.c).
const (
	hardMsgMax     = 65536
	hardMsgsizeMax = 16 << 20
)

// Limits are the mqueue limits in force for this process.
type Limits struct {
	MsgMax         int64  // /proc/sys/fs/mqueue/msg_max
	MsgsizeMax     int64  // /proc/sys/fs/mqueue/msgsize_max
	QueuesMax      int64  // /proc/sys/fs/mqueue/queues_max
	MsgDefault     int64  // /proc/sys/fs/mqueue/msg_default
	MsgsizeDefault int64  // /proc/sys/fs/mqueue/msgsize_default
	RlimitCur      uint64 // RLIMIT_MSGQUEUE soft limit in bytes (math.MaxUint64: unlimited)
	RlimitMax      uint64 // RLIMIT_MSGQUEUE hard limit
}

// ReadLimits reads the current limits. A value that cannot be read is -1
// (0 for the rlimit fields) and the first error is returned alongside.
func ReadLimits() (Limits, error) {
	var l Limits
	var first error
	rd := func(name string) int64 {
		v, err := readProc(name)
		if err != nil {
			if first == nil {
				first = err
			}
			return -1
		}
		return v
	}
	l.MsgMax = rd("msg_max")
	l.MsgsizeMax = rd("msgsize_max")
	l.QueuesMax = rd("queues_max")
	l.MsgDefault = rd("msg_default")
	l.MsgsizeDefault = rd("msgsize_default")
	var rl unix.Rlimit
	if err := getrlimit(unix.RLIMIT_MSGQUEUE, &rl); err != nil {
		if first == nil {
			first = os.NewSyscallError("getrlimit", err)
		}
	} else {
		l.RlimitCur, l.RlimitMax = uint64(rl.Cur), uint64(rl.Max)
	}
	return l, first
}

func readProc(name string) (int64, error) {
	b, err := readFile(ProcDir + "/" + name)
	if err != nil {
		return -1, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1, fmt.Errorf("%s/%s: %w", ProcDir, name, err)
	}
	return v, nil
}

func procInt(name string, def int) int {
	v, err := readProc(name)
	if err != nil || v <= 0 || v > math.MaxInt32 {
		return def
	}
	return int(v)
}

// queueBytes estimates what a queue charges to RLIMIT_MSGQUEUE, as
// mqueue_get_inode computes it: per message a struct msg_msg and one tree
// node per priority in use (at most min(maxmsg, MQ_PRIO_MAX)), plus the
// payload. The struct sizes are those of a 64-bit kernel (48 bytes each);
// a 32-bit kernel charges less, so this errs on the high side.
func queueBytes(maxmsg, msgsize int) int64 {
	const msgMsg, treeNode = 48, 48
	m := int64(maxmsg)
	return m*msgMsg + min(m, sys.MqPrioMax)*treeNode + m*int64(msgsize)
}

func fmtRlimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// createError explains why mq_open(O_CREAT) failed. It returns a
// *LimitError when a limit from /proc/sys/fs/mqueue or RLIMIT_MSGQUEUE
// accounts for the errno, and an *OpError otherwise.
func createError(name string, attr *sys.MqAttr, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return &OpError{Op: "create", Name: name, Err: err}
	}
	maxmsg, msgsize := 0, 0
	if attr != nil {
		maxmsg, msgsize = attr.Maxmsg, attr.Msgsize
	} else {
		maxmsg, msgsize = procInt("msg_default", 10), procInt("msgsize_default", 8192)
	}
	lim := func(limit string, req, max int64, detail string, args ...any) error {
		return &LimitError{Name: name, Limit: limit, Requested: req, Max: max, Err: err, Detail: fmt.Sprintf(detail, args...)}
	}

	switch errno {
	case unix.EINVAL:
		if maxmsg > hardMsgMax {
			return lim(LimitMsgMax, int64(maxmsg), hardMsgMax,
				"requested maxmsg %d > kernel hard limit %d (HARD_MSGMAX): lower the queue depth", maxmsg, hardMsgMax)
		}
		if msgsize > hardMsgsizeMax {
			return lim(LimitMsgsizeMax, int64(msgsize), hardMsgsizeMax,
				"requested msgsize %d > kernel hard limit %d (HARD_MSGSIZEMAX): lower the message size", msgsize, hardMsgsizeMax)
		}
		if v, e := readProc("msg_max"); e == nil && int64(maxmsg) > v {
			return lim(LimitMsgMax, int64(maxmsg), v,
				"requested maxmsg %d > %s/msg_max %d: raise it with `sysctl fs.mqueue.msg_max=%d` or lower the queue depth",
				maxmsg, ProcDir, v, maxmsg)
		}
		if v, e := readProc("msgsize_max"); e == nil && int64(msgsize) > v {
			return lim(LimitMsgsizeMax, int64(msgsize), v,
				"requested msgsize %d > %s/msgsize_max %d: raise it with `sysctl fs.mqueue.msgsize_max=%d` or lower the message size",
				msgsize, ProcDir, v, msgsize)
		}
	case unix.ENOSPC:
		v, e := readProc("queues_max")
		if e != nil {
			v = -1
		}
		return lim(LimitQueuesMax, v+1, v,
			"%s/queues_max %d queues already exist in this IPC namespace: raise it with `sysctl fs.mqueue.queues_max=%d` or remove stale queues (list them with `ls -l /dev/mqueue`, the mqueue file system mounted; remove one with `rm /dev/mqueue/NAME`)",
			ProcDir, v, v+16)
	case unix.EMFILE:
		need := queueBytes(maxmsg, msgsize)
		var rl unix.Rlimit
		if e := getrlimit(unix.RLIMIT_MSGQUEUE, &rl); e != nil {
			break
		}
		cur := uint64(rl.Cur)
		var nofile unix.Rlimit
		getrlimit(unix.RLIMIT_NOFILE, &nofile)
		if cur != unix.RLIM_INFINITY && uint64(need) > cur {
			return lim(LimitRlimitBytes, need, int64(min(cur, math.MaxInt64)),
				"queue of %d×%d bytes needs about %d bytes > RLIMIT_MSGQUEUE %s (soft; hard %s): raise it with `ulimit -q %d`, `prlimit --msgqueue=%d --pid PID` or LimitMSGQUEUE=%d in the systemd unit, or lower maxmsg×msgsize",
				maxmsg, msgsize, need, fmtRlimit(cur), fmtRlimit(uint64(rl.Max)), need, need, need)
		}
		return lim(LimitRlimitBytes, need, int64(min(cur, math.MaxInt64)),
			"queue of %d×%d bytes needs about %d bytes; together with this user's other queues that may exceed RLIMIT_MSGQUEUE %s (soft; hard %s): raise it with `ulimit -q`/LimitMSGQUEUE= or remove stale queues; otherwise the process is out of file descriptors (RLIMIT_NOFILE %s)",
			maxmsg, msgsize, need, fmtRlimit(cur), fmtRlimit(uint64(rl.Max)), fmtRlimit(uint64(nofile.Cur)))
	case unix.ENOMEM:
		// Not a configured limit: the kernel could not allocate the queue.
		return &OpError{Op: "create", Name: name, Err: fmt.Errorf("kernel out of memory for a queue of %d×%d bytes (lower maxmsg or msgsize): %w", maxmsg, msgsize, err)}
	}
	return &OpError{Op: "create", Name: name, Err: err}
}
