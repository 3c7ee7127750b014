package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
)

// sendReply opens the reply queue write-only and non-blocking, reads its
// owner from the open descriptor (no window between check and use), builds
// the reply with mk(owner) and queues it. It never waits for a client that
// takes parts only after the whole reply is queued (maxParts 0): a reply
// that does not fit the queue's free slots is replaced by an error reply,
// and a full queue is an error. A client that takes parts while they are
// sent (maxParts > 0) gets up to min(maxParts, MaxReplyParts) parts: those
// the queue has room for are sent at once, and the rest by a goroutine of
// their own (see stream), so that a client that takes them slowly, or not
// at all, holds up no one else. If MaxStreams replies are being streamed
// already, the client gets an error reply (CodeBusy) instead.
func (s *Server) sendReply(ctx context.Context, name string, maxParts int, mk func(owner int) *Reply) error {
	q, err := mq.Open(name, os.O_WRONLY)
	if err != nil {
		return err
	}
	// slot: this reply holds a stream slot (beginStream); handed: q and
	// the slot are the stream goroutine's.
	slot, handed := false, false
	defer func() {
		if handed {
			return
		}
		q.Close()
		if slot {
			s.endStream()
		}
	}()
	st, err := q.Stat()
	if err != nil {
		return err
	}
	owner, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("reply queue owner unknown")
	}
	r := mk(int(owner.Uid)) // runs the command: up to a minute for a stop
	// The queue's fill as it is now, not as it was before the command.
	a, err := q.Attr()
	if err != nil {
		return err
	}
	parts, err := split(r, a.MsgSize)
	if err != nil {
		parts, err = split(&Reply{ID: r.ID, Code: CodeFailed, Error: "reply not sent: " + err.Error()}, a.MsgSize)
		if err != nil {
			return err
		}
	}
	free := a.MaxMsg - a.CurMsgs
	limit, stream := free, min(maxParts, MaxReplyParts) > free
	if stream {
		limit = min(maxParts, MaxReplyParts)
	}
	var failure error // a reply replaced by an error reply: counted, logged
	if len(parts) > limit {
		var msg string
		if stream {
			msg = fmt.Sprintf("reply needs %d messages of %d bytes, more than the %d one reply may have: the table is too long for the control plane", len(parts), a.MsgSize, limit)
			if a.MsgSize < ReplyMsgSize {
				msg += fmt.Sprintf(" in messages this small (edgeipc ctl makes them smaller than %d bytes only when the user's RLIMIT_MSGQUEUE is nearly used up by other queues: raise it with 'ulimit -q', or retry when fewer edgeipc ctl calls run)", ReplyMsgSize)
			}
		} else {
			msg = fmt.Sprintf("reply needs %d messages of %d bytes but the reply queue has room for %d: create it with a larger message size or depth, or take the parts while they are sent and say how many you take (max_parts in the request; edgeipc ctl does)", len(parts), a.MsgSize, free)
		}
		if parts, err = split(&Reply{ID: r.ID, Code: CodeFailed, Error: msg}, a.MsgSize); err != nil {
			return err
		}
		if free < 1 && !stream {
			return errors.New("reply queue full")
		}
	}
	if stream && len(parts) > free {
		if !s.beginStream() {
			n := len(parts)
			failure = fmt.Errorf("reply of %d parts, %d more than the reply queue had room for, not streamed: %d replies were being streamed already (the most at a time); sent an error reply (code %s) instead", n, n-free, MaxStreams, CodeBusy)
			msg := fmt.Sprintf("runtime busy: the reply needs %d messages, more than the %d the reply queue has room for, and the runtime is already sending %d long replies to clients that take their parts slowly (it waits at most %v a part for each): the command ran; retry in a few seconds", n, free, MaxStreams, ReplyStallTimeout)
			if parts, err = split(&Reply{ID: r.ID, Code: CodeBusy, Error: msg}, a.MsgSize); err != nil {
				return err
			}
			if free < 1 {
				return fmt.Errorf("reply queue full, and %d replies were being streamed already (the most at a time)", MaxStreams)
			}
		} else {
			slot = true
		}
	}
	for i, p := range parts {
		err := q.TrySend(p, 0)
		if err == mq.ErrWouldBlock && slot {
			handed = true
			go s.stream(ctx, q, name, parts, i)
			return nil
		}
		if err != nil {
			if err == mq.ErrWouldBlock {
				return fmt.Errorf("reply queue full after %d of %d parts", i, len(parts))
			}
			return err
		}
	}
	return failure // with a slot: the client took parts meanwhile, and all fitted
}

// stream sends parts[from:] to q, in order, waiting for room up to
// ReplyStallTimeout a part and ReplyStallTimeout plus ReplyPartTime a part
// for the whole reply (measured by the netpoller on the monotonic
// clock, so a step of the wall clock neither cuts nor stretches it), or
// until ctx ends (Close, or the end of Serve's context), which cuts the
// reply short. It closes q and
// gives back the stream slot sendReply took.
func (s *Server) stream(ctx context.Context, q *mq.Queue, name string, parts [][]byte, from int) {
	defer s.endStream()
	defer q.Close()
	budget := ReplyStallTimeout + time.Duration(len(parts))*ReplyPartTime
	end := time.Now().Add(budget)
	whole, cancelWhole := context.WithDeadline(ctx, end)
	defer cancelWhole()
	for i := from; i < len(parts); i++ {
		// Which deadline ends this part's wait is known before it
		// begins: Send arms its descriptor with the earlier one, whose
		// timer may fire before whole's own, with whole.Err() still nil.
		wholeFirst := time.Now().Add(ReplyStallTimeout).After(end)
		pctx, cancel := context.WithTimeout(whole, ReplyStallTimeout)
		err := q.Send(pctx, parts[i], 0)
		cancel()
		if err == nil {
			continue
		}
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("cut after %d of %d parts: the control server is stopping", i, len(parts))
		case errors.Is(err, context.DeadlineExceeded) && (wholeFirst || whole.Err() != nil):
			err = fmt.Errorf("cut after %d of %d parts: the client took them slower than a whole reply may take (%v: ReplyStallTimeout and %v a part)", i, len(parts), budget, ReplyPartTime)
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("reply queue stayed full for %v after %d of %d parts: the client stopped taking them", ReplyStallTimeout, i, len(parts))
		}
		s.replyFailed(name, err)
		return
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
