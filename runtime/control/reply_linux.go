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
// the reply with mk(owner) and queues it. It never waits for a client that
// takes parts only after the whole reply is queued (maxParts 0): a reply
// that does not fit the queue's free slots is replaced by an error reply,
// and a full queue is an error. A client that takes parts while they are
// sent (maxParts > 0) gets up to min(maxParts, MaxReplyParts) parts; each
// waits for room at most ReplyStallTimeout.
func sendReply(name string, maxParts int, mk func(owner int) *Reply) error {
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
	free := a.Maxmsg - a.Curmsgs
	limit, stream := free, min(maxParts, MaxReplyParts) > free
	if stream {
		limit = min(maxParts, MaxReplyParts)
	}
	if len(parts) > limit {
		var msg string
		if stream {
			msg = fmt.Sprintf("reply needs %d messages of %d bytes, more than the %d one reply may have: the table is too long for the control plane", len(parts), a.Msgsize, limit)
			if a.Msgsize < ReplyMsgSize {
				msg += fmt.Sprintf(" in messages this small (edgeipc ctl makes them smaller than %d bytes only when the user's RLIMIT_MSGQUEUE is nearly used up by other queues: raise it with 'ulimit -q', or retry when fewer edgeipc ctl calls run)", ReplyMsgSize)
			}
		} else {
			msg = fmt.Sprintf("reply needs %d messages of %d bytes but the reply queue has room for %d: create it with a larger message size or depth, or take the parts while they are sent and say how many you take (max_parts in the request; edgeipc ctl does)", len(parts), a.Msgsize, free)
		}
		if parts, err = split(&Reply{ID: r.ID, Code: CodeFailed, Error: msg}, a.Msgsize); err != nil {
			return err
		}
		if free < 1 && !stream {
			return errors.New("reply queue full")
		}
	}
	for i, p := range parts {
		err := sys.MqTimedSend(fd, p, 0, time.Time{})
		if err == unix.EAGAIN && stream {
			err = waitRoom(fd, p)
		}
		if err != nil {
			switch err {
			case unix.EAGAIN:
				return fmt.Errorf("reply queue full after %d of %d parts", i, len(parts))
			case unix.ETIMEDOUT:
				return fmt.Errorf("reply queue stayed full for %v after %d of %d parts: the client stopped taking them", ReplyStallTimeout, i, len(parts))
			}
			return err
		}
	}
	return nil
}

// waitRoom sends msg to the non-blocking queue fd once it has room, within
// ReplyStallTimeout (poll(2) measures it on the monotonic clock, so a step
// of the wall clock neither cuts nor stretches it); unix.ETIMEDOUT if the
// queue stays full.
func waitRoom(fd int, msg []byte) error {
	deadline := time.Now().Add(ReplyStallTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(pfd, int((left+time.Millisecond-1)/time.Millisecond)); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		// Another sender may take the room first: EAGAIN polls again.
		if err := sys.MqTimedSend(fd, msg, 0, time.Time{}); err != unix.EAGAIN {
			return err
		}
	}
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
