package control

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// sendReply opens the reply queue write-only and non-blocking, reads its
// owner from the open descriptor (no window between check and use), builds
// the reply with mk(owner) and queues it without ever waiting: a full queue
// is an error, never a stall.
func sendReply(name string, mk func(owner int) *Reply) error {
	fd, err := sys.MqOpen(name, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	r := mk(int(st.Uid)) // runs the command: up to a minute for a stop
	// The queue's fill as it is now, not as it was before the command.
	var a sys.MqAttr
	if err := sys.MqGetSetAttr(fd, nil, &a); err != nil {
		return err
	}
	parts, err := split(r, a.Msgsize)
	if err != nil {
		parts, err = split(&Reply{ID: r.ID, Code: CodeFailed, Error: "reply not sent: " + err.Error()}, a.Msgsize)
		if err != nil {
			return err
		}
	}
	if free := a.Maxmsg - a.Curmsgs; len(parts) > free {
		msg := fmt.Sprintf("reply needs %d messages of %d bytes but the reply queue has room for %d: create it with a larger message size or depth (edgeipc ctl makes its messages smaller than %d bytes only when the user's RLIMIT_MSGQUEUE is nearly used up by other queues: raise it with 'ulimit -q', or retry when fewer edgeipc ctl calls run)", len(parts), a.Msgsize, free, ReplyMsgSize)
		if parts, err = split(&Reply{ID: r.ID, Code: CodeFailed, Error: msg}, a.Msgsize); err != nil {
			return err
		}
		if free < 1 {
			return errors.New("reply queue full")
		}
	}
	for i, p := range parts {
		if err := sys.MqTimedSend(fd, p, 0, time.Time{}); err != nil {
			if err == unix.EAGAIN {
				return fmt.Errorf("reply queue full after %d of %d parts", i, len(parts))
			}
			return err
		}
	}
	return nil
}

// capToLimits lowers a reply queue's geometry to msg_max and msgsize_max.
func capToLimits(o *mq.Options) {
	l, err := mq.ReadLimits()
	if err != nil {
		return
	}
	if l.MsgMax > 0 && int64(o.MaxMsg) > l.MsgMax {
		o.MaxMsg = int(l.MsgMax)
	}
	if l.MsgsizeMax > 0 && int64(o.MsgSize) > l.MsgsizeMax {
		o.MsgSize = int(l.MsgsizeMax)
	}
}
