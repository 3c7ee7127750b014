package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// ErrNoServer is wrapped by Dial when the request queue does not exist and
// by Call when nothing answers before the context is done.
var ErrNoServer = errors.New("no runtime is listening")

// Reply queue geometry: replies are split into parts of at most
// ReplyMsgSize bytes (capped by msgsize_max); the depth bounds how many
// parts one reply may have.
const (
	ReplyMsgSize = 8192 // the kernel's default msgsize_max
	ReplyMaxMsg  = 10   // the kernel's default msg_max

	// MinReplyMsgSize is the smallest message size Dial falls back to
	// when RLIMIT_MSGQUEUE refuses a reply queue of ReplyMsgSize.
	MinReplyMsgSize = 1024

	// MaxReplyParts is the most parts one reply may have. Client.Call
	// takes parts while they are sent and asks for up to this many
	// (Request.MaxParts): 8 MiB of 8192-byte parts, tables of some
	// 50,000 rows.
	MaxReplyParts = 1024
)

// ReplyStallTimeout is how long the server waits for room in a reply
// queue, for each part of a reply in more parts than the queue holds,
// before it gives up on a client that stopped taking them.
const ReplyStallTimeout = 2 * time.Second

// ReplyPartTime is what a streamed reply may take per part on top of
// ReplyStallTimeout: the whole reply must be taken within ReplyStallTimeout
// plus ReplyPartTime for each part (about 12 s for MaxReplyParts). A
// client that takes its parts at all takes each in far less; one that
// takes a part just before every ReplyStallTimeout would otherwise hold a
// stream slot (and the reply's memory) for up to 34 minutes.
const ReplyPartTime = 10 * time.Millisecond

// UnservedTimeout is how long Call waits for an answer on a request queue
// whose lock no process holds before it reports that no runtime serves it.
// A serving runtime holds that lock for as long as it lives (see
// NewServer), taking it at once when it creates the queue; a queue nobody
// locks is left over from a runtime that has exited.
const UnservedTimeout = time.Second

// Client sends requests to a runtime and waits for its replies on a private
// reply queue. Its methods are safe for concurrent use; calls are serialised.
// A Client may be kept across restarts of the runtime: each Call opens the
// request queue again if its name refers to a new queue.
type Client struct {
	name  string    // request queue
	req   *mq.Queue // replaced by Call (holding mu and reqMu) after a runtime restart
	reply *mq.Queue
	buf   []byte
	mu    sync.Mutex
	id    atomic.Uint64

	reqMu  sync.Mutex // guards replacing req against Close
	closed bool
}

// Dial opens the request queue name (QueueName(name) when empty) and
// creates a private reply queue "edgeipc.reply.<pid>.<hex>" (O_EXCL, mode
// 0600, or 0620 in the request queue's group when the runtime runs as
// another user: the runtime may send to it, other members cannot read it;
// root gives it, 0600, to the runtime's user). Its messages are ReplyMsgSize bytes, or half that down to
// MinReplyMsgSize while the user's RLIMIT_MSGQUEUE refuses the queue
// (other clients of the user are running): a smaller queue holds the short
// replies, and the runtime says so for a table that does not fit. Dial
// also removes reply queues left by dead ctl processes of this user. The
// error wraps ErrNoServer when the request queue does not exist.
func Dial(name string) (*Client, error) {
	name = QueueName(name)
	req, err := mq.Open(name, os.O_WRONLY)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w on /dev/mqueue/%s: start it with 'edgeipc run'", ErrNoServer, name)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot send to /dev/mqueue/%s: %w (%s): run as the runtime's user, root, or a member of the group set in its [control] group", name, err, describeQueue(name))
		}
		return nil, err
	}
	SweepReplyQueues()
	opts := mq.Options{MaxMsg: ReplyMaxMsg, MsgSize: ReplyMsgSize, Exclusive: true}
	capToLimits(&opts)
	// A runtime running as another user can only write to our reply queue
	// through the group it shares with us: the request queue's group (read
	// from the descriptor: /dev/mqueue need not be mounted).
	if st, err := req.Stat(); err == nil {
		s, ok := st.Sys().(*syscall.Stat_t)
		switch {
		case !ok || int(s.Uid) == os.Geteuid():
		case os.Geteuid() == 0:
			// Root (sudo edgeipc ctl) and a runtime of a service user:
			// hand the queue to the runtime's uid, still 0600. Root reads
			// it anyway; in root's group it would be closed to the runtime.
			opts.Owner = int(s.Uid)
		case s.Gid != 0:
			// mq cannot give a new queue gid 0 (Group 0 keeps ours): for a
			// queue in group 0 the reply queue stays 0600, never 0620 in
			// our own primary group, which would let its members forge
			// replies. 0620: the runtime only sends, and the group's other
			// members must not read our replies.
			opts.Mode, opts.Group = 0o620, int(s.Gid)
		}
	}
	var reply *mq.Queue
	for attempt := 0; ; attempt++ {
		reply, err = mq.Create(replyName(), opts)
		if err != nil && opts.Group != 0 && errors.Is(err, os.ErrPermission) {
			opts.Mode, opts.Group = 0, 0 // not a member: the runtime must be root to answer
			continue
		}
		// Every queue of this user (each running ctl's reply queue, about
		// 81 KB, root's too) counts against its RLIMIT_MSGQUEUE.
		var lim *mq.LimitError
		if errors.As(err, &lim) && lim.Limit == mq.LimitRlimitBytes && opts.MsgSize > MinReplyMsgSize {
			opts.MsgSize = max(opts.MsgSize/2, MinReplyMsgSize)
			continue
		}
		if err == nil || !errors.Is(err, os.ErrExist) || attempt > 3 {
			break
		}
	}
	if err != nil {
		req.Close()
		return nil, fmt.Errorf("control: cannot create reply queue: %w", err)
	}
	c := &Client{name: name, req: req, reply: reply, buf: make([]byte, reply.MsgSize())}
	var seed [8]byte
	rand.Read(seed[:])
	c.id.Store(uint64(seed[0])<<24 | uint64(seed[1])<<16 | uint64(seed[2])<<8 | uint64(seed[3]))
	return c, nil
}

// replyName returns edgeipc.reply.<pid>.<pidns 8 hex><random 8 hex>. The
// PID namespace lets SweepReplyQueues judge liveness only for its own.
func replyName() string {
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("edgeipc.reply.%d.%08x%s", os.Getpid(), sys.SelfPidNS(), hex.EncodeToString(r[:]))
}

// describeQueue returns "owner uid U, group G, mode M" for a queue, or "".
func describeQueue(name string) string {
	st, err := os.Stat(mq.MountDir + "/" + name)
	if err != nil {
		// Queues exist without the mount, which only shows them: say so
		// rather than "no such file or directory" about a queue that is
		// there. (List fails at once when it is not mounted.)
		if _, lerr := mq.List(); errors.Is(lerr, mq.ErrNotMounted) {
			return fmt.Sprintf("owner unknown: %s is not mounted; mount it to see the queue's owner and mode: 'mount -t mqueue mqueue %s'", mq.MountDir, mq.MountDir)
		}
		return "owner unknown: " + err.Error()
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("owner uid %d, gid %d, mode %#o", s.Uid, s.Gid, uint32(st.Mode().Perm()))
}

// SweepReplyQueues unlinks reply queues of this user whose process is dead
// and that were created in this PID namespace; root's sweep takes those of
// every user, its own included, which it gives to the runtime's user (see
// Dial). It returns the names removed. Errors (no /dev/mqueue mount, a queue
// vanishing) are ignored: the sweep is housekeeping.
func SweepReplyQueues() []string {
	infos, err := mq.List()
	if err != nil {
		return nil
	}
	ns := fmt.Sprintf("%08x", sys.SelfPidNS())
	euid := os.Geteuid()
	var removed []string
	for _, in := range infos {
		if !replyPattern.MatchString(in.Name) || (in.UID != euid && euid != 0) {
			continue
		}
		f := strings.Split(in.Name, ".")
		if len(f) != 4 || !strings.HasPrefix(f[3], ns) || ns == "00000000" {
			continue
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil || pid <= 0 || sys.ProcessAlive(pid, 0) {
			continue
		}
		if mq.Unlink(in.Name) == nil {
			removed = append(removed, in.Name)
		}
	}
	return removed
}

// ReplyQueue returns the name of the client's reply queue.
func (c *Client) ReplyQueue() string { return c.reply.Name() }

// Call sends cmd with args and waits for the reply until ctx is done. A
// reply with OK false is returned with a nil error (see Reply.Err). If
// nothing answers in time the error wraps ErrNoServer and ctx.Err(); on a
// request queue whose lock no process holds (left over from a runtime
// that has exited) Call waits at most UnservedTimeout, and the error wraps
// ErrNoServer alone. Late
// replies to earlier calls that gave up are discarded, before the request
// is sent and while waiting.
func (c *Client) Call(ctx context.Context, cmd string, args ...string) (*Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.id.Add(1)
	req := Request{ID: id, Cmd: cmd, Args: args, Reply: c.reply.Name(), PID: os.Getpid(), MaxParts: MaxReplyParts}
	b, err := req.MarshalMsg(nil)
	if err != nil {
		return nil, err
	}
	if err := c.reopen(); err != nil {
		return nil, err
	}
	if len(b) > c.req.MsgSize() {
		return nil, fmt.Errorf("control: request of %d bytes exceeds the queue's message size %d", len(b), c.req.MsgSize())
	}
	// Replies to earlier calls that gave up waiting (the runtime was busy)
	// arrive late; left in the reply queue they take the room this call's
	// reply needs, and the runtime drops a reply that does not fit.
	for {
		if _, _, err := c.reply.TryReceive(c.buf); err != nil {
			break
		}
	}
	// A queue left over from a runtime that has exited (killed, crashed)
	// answers nothing: say so after UnservedTimeout instead of waiting
	// for the whole ctx (90 s for an edgeipc ctl stop) and then saying
	// that the runtime may be busy. wctx is ctx until then.
	wctx, unserved := ctx, false
	if c.unserved() {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, UnservedTimeout)
		defer cancel()
		unserved = true
	}
	// gaveUp reports whether err ended a wait cut short by UnservedTimeout
	// (or by ctx's own deadline, if sooner): it returns the error to give
	// if the queue is still unserved, or nil to wait on for ctx (a
	// runtime that has just created the queue holds its lock by now).
	gaveUp := func(err error) (bool, error) {
		if !unserved || !ctxDone(wctx, err) || errors.Is(ctx.Err(), context.Canceled) {
			return false, nil
		}
		unserved = false
		if c.unserved() {
			return true, &unservedError{queue: c.name}
		}
		wctx = ctx
		return true, nil
	}
	for {
		err := c.req.Send(wctx, b, 0)
		if err == nil {
			break
		}
		if cut, gerr := gaveUp(err); cut {
			if gerr != nil {
				return nil, gerr
			}
			continue
		}
		if ctxDone(ctx, err) {
			return nil, &noReplyError{queue: c.name, what: "its request queue stayed full", err: ctxErr(ctx, err)}
		}
		return nil, err
	}
	var out *Reply
	for parts := 0; ; {
		n, _, err := c.reply.Receive(wctx, c.buf)
		if err != nil {
			if cut, gerr := gaveUp(err); cut {
				if gerr != nil {
					return nil, gerr
				}
				continue
			}
			if ctxDone(ctx, err) {
				return nil, &noReplyError{queue: c.name, what: "no reply", err: ctxErr(ctx, err)}
			}
			return nil, err
		}
		// An answer: whoever sent it serves the queue.
		unserved, wctx = false, ctx
		var part Reply
		if left, err := part.UnmarshalMsg(c.buf[:n]); err != nil || len(left) > 0 {
			return nil, fmt.Errorf("control: malformed reply of %d bytes: %v", n, err)
		}
		if part.ID != id {
			continue // a late reply to an earlier call that timed out
		}
		if err := part.checkNumbers(); err != nil {
			return nil, fmt.Errorf("control: malformed reply: %v; it does not come from an edgeipc runtime; check who owns /dev/mqueue/%s", err, c.name)
		}
		// A runtime never sends more parts than the request allows: more
		// is not a reply, and joining it would grow without end.
		if parts++; parts > max(MaxReplyParts, c.reply.MaxMsg()) {
			return nil, fmt.Errorf("control: the reply to %q has more parts than the %d a reply may have: it does not come from an edgeipc runtime; check who owns /dev/mqueue/%s", cmd, max(MaxReplyParts, c.reply.MaxMsg()), c.name)
		}
		if out == nil {
			out = &part
		} else {
			out.Rings = append(out.Rings, part.Rings...)
			out.Sources = append(out.Sources, part.Sources...)
			out.Sinks = append(out.Sinks, part.Sinks...)
		}
		if !part.More {
			out.More = false
			return out, nil
		}
	}
}

// reopen opens the request queue again if its name now refers to another
// queue than the one Dial opened: the runtime was restarted since (a
// runtime removes its queue when it stops; one that starts creates a new
// one, or takes over the stale one of a runtime that died), and requests
// sent to the old queue reach no one. It fails with ErrNoServer if the
// name is gone. If the queue cannot be tested (mq.Ino cannot open it),
// it keeps the queue it has.
func (c *Client) reopen() error {
	ino, err := mq.Ino(c.name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w on /dev/mqueue/%s: start it with 'edgeipc run'", ErrNoServer, c.name)
	}
	if err != nil {
		return nil
	}
	st, err := c.req.Stat()
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); !ok || uint64(s.Ino) == ino {
		return nil
	}
	q, err := mq.Open(c.name, os.O_WRONLY)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w on /dev/mqueue/%s: start it with 'edgeipc run'", ErrNoServer, c.name)
		}
		return err
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if c.closed {
		q.Close()
		return &mq.OpError{Op: "send", Name: c.name, Err: mq.ErrClosed}
	}
	c.req.Close()
	c.req = q
	return nil
}

// unserved reports whether no process holds the request queue's lock,
// which a serving runtime holds for as long as it lives. It is false
// when the lock cannot be tested (mq.Locked cannot open the queue).
func (c *Client) unserved() bool {
	locked, err := mq.Locked(c.name)
	return err == nil && !locked
}

// unservedError is Call's error when nothing answers on a request queue
// whose lock no process holds. It wraps ErrNoServer.
type unservedError struct{ queue string }

func (e *unservedError) Error() string {
	return fmt.Sprintf("%v on /dev/mqueue/%s: the queue is left over from a runtime that has exited (no process holds its lock, and nothing answered): start it with 'edgeipc run', which takes the queue over", ErrNoServer, e.queue)
}

func (e *unservedError) Unwrap() error { return ErrNoServer }

// checkNumbers refuses a NaN or an infinity, which no runtime sends (its
// rates divide by a window of at least a second) and which JSON, and so
// `edgeipc ctl --json`, cannot carry.
func (r *Reply) checkNumbers() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	if r.Status != nil && bad(r.Status.UptimeS) {
		return fmt.Errorf("status.uptime_s is %v", r.Status.UptimeS)
	}
	for i, rs := range r.Rings {
		if bad(rs.RateHz) || bad(rs.BytesPerS) {
			return fmt.Errorf("rings[%d] has rate_hz %v, bytes_per_s %v", i, rs.RateHz, rs.BytesPerS)
		}
	}
	return nil
}

// noReplyError is Call's error when the context ends before the reply
// arrives. The runtime may be alive and slow (a stop waits up to the
// source's stop_timeout, and requests are served one at a time), so the
// message does not claim that it is gone. It wraps ErrNoServer and the
// context's error.
type noReplyError struct {
	queue, what string
	err         error
}

func (e *noReplyError) Error() string {
	return fmt.Sprintf("runtime on /dev/mqueue/%s: %s (%v): it may be busy (a stop, restart or reload waits for sources to stop, and requests are served one at a time), stuck, or gone (a crashed runtime leaves its queue; the next 'edgeipc run' takes it over)", e.queue, e.what, e.err)
}

func (e *noReplyError) Unwrap() []error { return []error{ErrNoServer, e.err} }

// ctxDone reports whether err came from ctx ending: the queue's fd deadline
// can fire a moment before the context's own timer marks it done.
func ctxDone(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if errors.Is(err, context.Canceled) {
		return context.Canceled
	}
	return context.DeadlineExceeded
}

// Close closes both queues and unlinks the reply queue.
func (c *Client) Close() error {
	c.reqMu.Lock()
	c.closed = true
	err := c.req.Close()
	c.reqMu.Unlock()
	c.reply.Close()
	if uerr := mq.Unlink(c.reply.Name()); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// Err returns nil for an OK reply, else a *RemoteError (errors.Is(err,
// ErrNotFound) holds for Code "not_found").
func (r *Reply) Err() error {
	if r.OK {
		return nil
	}
	return &RemoteError{Code: r.Code, Msg: r.Error}
}

// RemoteError is an error reported by the runtime.
type RemoteError struct {
	Code string // one of the Code* constants
	Msg  string
}

// Error returns the runtime's message.
func (e *RemoteError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNotFound) true for CodeNotFound.
func (e *RemoteError) Is(target error) bool { return target == ErrNotFound && e.Code == CodeNotFound }
