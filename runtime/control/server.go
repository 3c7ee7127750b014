package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"

	"github.com/edgeipc/edgeipc/internal/mq"
)

// DefaultQueue is the request queue name when neither ServerOptions.Queue,
// Dial's argument nor $EDGEIPC_CTL_QUEUE names one.
const DefaultQueue = "edgeipc.ctl"

// EnvQueue is the environment variable that overrides DefaultQueue for both
// `edgeipc run` and `edgeipc ctl`.
const EnvQueue = "EDGEIPC_CTL_QUEUE"

// Request queue geometry. A request is a few dozen bytes; RequestMsgSize
// bounds what a hostile sender can make the server decode.
const (
	DefaultMaxMsg  = 10 // the kernel's default msg_max for unprivileged users
	RequestMsgSize = 1024
)

// Commands lists the commands the server understands, in help order.
var Commands = []string{"status", "rings", "sources", "sinks", "start", "stop", "restart", "reload", "ping"}

// QueueName returns name, or $EDGEIPC_CTL_QUEUE, or DefaultQueue.
func QueueName(name string) string {
	if name != "" {
		return name
	}
	if e := os.Getenv(EnvQueue); e != "" {
		return e
	}
	return DefaultQueue
}

// replyPattern is the only shape of reply queue name the server sends to:
// edgeipc.reply.<pid>.<hex>.
var replyPattern = regexp.MustCompile(`^edgeipc\.reply\.[0-9]{1,10}\.[0-9a-f]{8,32}$`)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Queue string                           // queue name, default QueueName("") (no leading slash), e.g. "edgeipc.ctl"
	Mode  os.FileMode                      // 0600 default, 0620 with Group (the group may send, not receive), or 0660
	Group string                           // group name or numeric gid whose members may use the queue
	Logf  func(format string, args ...any) // may be nil

	// MaxMsg is the request queue depth (default DefaultMaxMsg). It is
	// capped by /proc/sys/fs/mqueue/msg_max; NewServer names the limit when
	// the kernel refuses.
	MaxMsg int
	// TakeoverTimeout is how long NewServer waits for an answer from a
	// server already on the queue before treating the queue as stale and
	// replacing it (default 1s).
	TakeoverTimeout time.Duration
}

// Server serves requests on a POSIX message queue until ctx is done.
type Server struct {
	h     Handler
	q     *mq.Queue
	name  string
	ino   uint64 // inode of the queue we created, to unlink only our own
	uid   int
	group int // gid whose members are authorised, -1 for none
	logf  func(string, ...any)

	requests  atomic.Uint64
	bad       atomic.Uint64
	replyFail atomic.Uint64

	logMu      sync.Mutex
	logNext    time.Time
	suppressed int
	logFlush   *time.Timer // reports suppressed lines when nothing else is logged
	logClosed  bool

	// Streamed replies (see sendReply): at most MaxStreams at a time, each
	// sent by a goroutine of its own that Serve and Close wait for.
	streams    chan struct{} // a slot per reply being streamed
	streamMu   sync.Mutex    // guards streamStop and adding to streamWG
	streamStop bool          // Close has begun: no new streams
	streamWG   sync.WaitGroup
	closing    context.Context // cancelled by Close: cuts streamed replies
	closeNow   context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// MaxStreams is the most replies the server streams at a time: replies in
// more parts than the client's reply queue has free slots, to clients that
// take parts while they are sent (Request.MaxParts). Each is sent by a
// goroutine of its own, so that a client slow to take its parts, or that
// takes none, holds up no one else; a streamed reply that finds all
// MaxStreams busy is answered with an error reply (CodeBusy) instead.
const MaxStreams = 4

// NewServer creates the request queue (O_EXCL, exact mode) or takes over a
// stale one: if the name exists and no server answers a ping within
// TakeoverTimeout, the queue is unlinked and created again. If a live
// server answers, NewServer fails. A kernel limit that prevents creating the
// queue is reported as a *mq.LimitError naming the limit and how to raise it.
func NewServer(h Handler, opts ServerOptions) (*Server, error) {
	if h == nil {
		return nil, errors.New("control: nil Handler")
	}
	name := QueueName(opts.Queue)
	s := &Server{h: h, name: name, uid: os.Geteuid(), group: -1, logf: opts.Logf, streams: make(chan struct{}, MaxStreams)}
	s.closing, s.closeNow = context.WithCancel(context.Background())
	mode := opts.Mode
	gid := 0
	if opts.Group != "" {
		g, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, fmt.Errorf("control: group %q: %w", opts.Group, err)
		}
		if g == 0 && os.Getegid() != 0 {
			// mq can only keep the creator's group or set another one; a
			// queue meant for group 0 would stay in ours, and the kernel
			// would let our group in while the server's check let root's.
			return nil, fmt.Errorf("control: group %q is gid 0, which a runtime running as group %d cannot give the queue: choose another group, or run the runtime as group root", opts.Group, os.Getegid())
		}
		gid, s.group = g, g
		if mode == 0 {
			mode = 0o620
		}
	}
	switch mode {
	case 0:
		mode = 0o600
	case 0o600:
	case 0o620, 0o660:
		if s.group < 0 {
			s.group = os.Getegid()
		}
	default:
		return nil, fmt.Errorf("control: queue mode %#o not allowed: use 0600 (owner only), 0620 (the group may send requests) or 0660 (the group may also receive them)", uint32(mode))
	}
	if mode == 0o600 && opts.Group != "" {
		return nil, fmt.Errorf("control: group %q given with mode 0600: use mode 0620 so the group can send requests", opts.Group)
	}
	maxMsg := opts.MaxMsg
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMsg
	}
	takeover := opts.TakeoverTimeout
	if takeover <= 0 {
		takeover = time.Second
	}
	mopts := mq.Options{MaxMsg: maxMsg, MsgSize: RequestMsgSize, Mode: mode, Group: gid, Exclusive: true}
	q, err := mq.Create(name, mopts)
	if errors.Is(err, os.ErrExist) {
		// A serving runtime holds its queue's lock for as long as it
		// lives, also while it is busy with a long request (a stop waits
		// up to stop_timeout) and answers no ping.
		if locked, lerr := lockHeld(name); lerr == nil && locked {
			return nil, fmt.Errorf("control: another runtime is serving /dev/mqueue/%s (it holds the queue's lock); stop it first or use another queue name", name)
		}
		if perr := pingExisting(name, takeover); perr == nil {
			return nil, fmt.Errorf("control: another runtime is serving /dev/mqueue/%s (it answered a ping); stop it first or use another queue name", name)
		}
		s.log("control: /dev/mqueue/%s exists but no runtime answers within %v: taking over the stale queue", name, takeover)
		if uerr := mq.Unlink(name); uerr != nil && !errors.Is(uerr, os.ErrNotExist) {
			return nil, fmt.Errorf("control: stale queue /dev/mqueue/%s cannot be removed (%v): remove it as its owner or root ('rm /dev/mqueue/%s')", name, uerr, name)
		}
		q, err = mq.Create(name, mopts)
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("control: /dev/mqueue/%s was created again by another process while taking it over: is another runtime starting?", name)
		}
	}
	if err != nil {
		var lim *mq.LimitError
		if errors.As(err, &lim) {
			return nil, fmt.Errorf("control: cannot create request queue (kernel limit %s): %w", lim.Limit, lim)
		}
		return nil, fmt.Errorf("control: cannot create request queue: %w", err)
	}
	s.q = q
	// Mark the queue as served by a live runtime (see above); the kernel
	// drops the lock when we exit, however we exit.
	if ok, err := lockOwn(q); err != nil || !ok {
		s.log("control: cannot lock /dev/mqueue/%s (locked %v, %v): a runtime started meanwhile may take it over while this one is busy", name, ok, err)
	}
	if st, err := q.Stat(); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			s.ino = uint64(sys.Ino)
		}
	}
	return s, nil
}

// lockSettle bounds how long NewServer waits out a lock held by a probe:
// a client or a starting runtime that tests whether a queue is served
// (mq.Locked) holds its lock for a moment, and a serving runtime for as
// long as it lives.
const lockSettle = 500 * time.Millisecond

// lockOwn takes the lock of the queue NewServer has just created. A probe
// that opened the queue at once holds the lock for a moment: a single
// try then failed, and the runtime served without the lock for the rest
// of its life, so that a runtime started later took a queue it was busy
// on for stale.
func lockOwn(q *mq.Queue) (bool, error) {
	deadline := time.Now().Add(lockSettle)
	for {
		ok, err := q.TryLock()
		if err != nil || ok || time.Now().After(deadline) {
			return ok, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockHeld reports whether a process holds the lock of the queue name
// refers to, and keeps holding it for lockSettle: a probe's hold (see
// lockOwn) made a single test take a stale queue for a live runtime's.
func lockHeld(name string) (bool, error) {
	deadline := time.Now().Add(lockSettle)
	for {
		locked, err := mq.Locked(name)
		if err != nil || !locked || time.Now().After(deadline) {
			return locked, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(gr.Gid)
}

// pingExisting reports nil if a server answers on name within d.
func pingExisting(name string, d time.Duration) error {
	c, err := Dial(name)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err = c.Call(ctx, "ping")
	return err
}

// Name returns the request queue name.
func (s *Server) Name() string { return s.name }

// Stats returns the number of requests received and how many of them were
// bad (malformed, unknown command, bad arguments or unauthorised).
func (s *Server) Stats() (requests, bad uint64) { return s.requests.Load(), s.bad.Load() }

// ReplyFailures returns how many replies could not be delivered (reply queue
// missing, full, or not writable; a streamed reply given up or cut short by
// Close, or answered with CodeBusy).
func (s *Server) ReplyFailures() uint64 { return s.replyFail.Load() }

// Serve receives and answers requests one at a time until ctx is done or
// the server is closed, then returns nil. Bad input is counted and answered
// with an error reply when a reply queue can be identified; it never stops
// the loop. Replies are sent without waiting: a full or missing reply queue
// is counted and skipped. A reply in more parts than a client's reply queue
// has room for, to a client that takes parts while they are sent, is
// streamed by a goroutine of its own (at most MaxStreams), which waits for
// room up to ReplyStallTimeout a part; Serve goes on with the next request
// meanwhile, and returns once those goroutines have ended (the end of ctx
// cuts their replies short).
func (s *Server) Serve(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	defer func() {
		stop()
		cancel()
		s.streamWG.Wait()
	}()
	buf := make([]byte, s.q.MsgSize())
	for {
		n, _, err := s.q.Receive(ctx, buf)
		if err != nil {
			if ctxDone(ctx, err) || errors.Is(err, mq.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control: receive: %w", err)
		}
		s.handle(sctx, buf[:n])
	}
}

// beginStream takes a stream slot for a reply Serve hands to a goroutine;
// false if all MaxStreams are busy or Close has begun. endStream gives it
// back.
func (s *Server) beginStream() bool {
	select {
	case s.streams <- struct{}{}:
	default:
		return false
	}
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streamStop {
		<-s.streams
		return false
	}
	s.streamWG.Add(1)
	return true
}

func (s *Server) endStream() {
	<-s.streams
	s.streamWG.Done()
}

func (s *Server) handle(ctx context.Context, msg []byte) {
	s.requests.Add(1)
	var req Request
	left, err := req.UnmarshalMsg(msg)
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("%d trailing bytes", len(left))
	}
	if err != nil {
		s.bad.Add(1)
		id, reply := salvage(msg)
		s.log("control: malformed request of %d bytes: %v", len(msg), err)
		if reply != "" {
			s.reply(ctx, reply, 0, errReply(id, CodeBadRequest, "malformed request: "+err.Error()))
		}
		return
	}
	if !replyPattern.MatchString(req.Reply) {
		s.bad.Add(1)
		s.log("control: request %q (pid %d) names reply queue %q, which does not match edgeipc.reply.<pid>.<hex>: dropped", req.Cmd, req.PID, req.Reply)
		return
	}
	s.reply(ctx, req.Reply, req.MaxParts, func(owner int) *Reply {
		if err := s.authorised(owner); err != nil {
			s.bad.Add(1)
			s.log("control: request %q (pid %d): %v", req.Cmd, req.PID, err)
			return &Reply{ID: req.ID, Code: CodePermissionDenied, Error: err.Error()}
		}
		r := s.dispatch(&req)
		if !r.OK && (r.Code == CodeBadRequest || r.Code == CodeUnknownCommand) {
			s.bad.Add(1)
		}
		return r
	})
}

func errReply(id uint64, code, msg string) func(int) *Reply {
	return func(int) *Reply { return &Reply{ID: id, Code: code, Error: msg} }
}

// authorised checks the uid that owns the reply queue: the server's own
// uid, root, or a member of the configured group.
func (s *Server) authorised(owner int) error {
	if owner == s.uid || owner == 0 {
		return nil
	}
	if s.group >= 0 && uidInGroup(owner, s.group) {
		return nil
	}
	if s.group >= 0 {
		return fmt.Errorf("permission denied: reply queue owned by uid %d, who is not the runtime's uid %d, root or a member of gid %d", owner, s.uid, s.group)
	}
	return fmt.Errorf("permission denied: reply queue owned by uid %d, not the runtime's uid %d or root", owner, s.uid)
}

func uidInGroup(uid, gid int) bool {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return false
	}
	if u.Gid == strconv.Itoa(gid) {
		return true
	}
	ids, err := u.GroupIds()
	if err != nil {
		return false
	}
	for _, g := range ids {
		if g == strconv.Itoa(gid) {
			return true
		}
	}
	return false
}

func (s *Server) dispatch(req *Request) *Reply {
	r := &Reply{ID: req.ID}
	nargs := func(n int) bool {
		if len(req.Args) != n {
			r.Code = CodeBadRequest
			if n == 0 {
				r.Error = fmt.Sprintf("%s takes no arguments, got %d", req.Cmd, len(req.Args))
			} else {
				r.Error = fmt.Sprintf("%s takes one argument (a source name), got %d", req.Cmd, len(req.Args))
			}
			return false
		}
		return true
	}
	var err error
	switch req.Cmd {
	case "ping":
		if !nargs(0) {
			return r
		}
	case "status":
		if !nargs(0) {
			return r
		}
		st := s.h.Status()
		st.Requests, st.BadRequests = s.Stats()
		st.ReplyFailures = s.ReplyFailures()
		r.Status = &st
	case "rings":
		if !nargs(0) {
			return r
		}
		r.Rings = s.h.Rings()
	case "sources":
		if !nargs(0) {
			return r
		}
		r.Sources = s.h.Sources()
	case "sinks":
		if !nargs(0) {
			return r
		}
		r.Sinks = s.h.Sinks()
		if r.Sinks == nil {
			r.Sinks = []SinkStat{} // encoded: a "sinks" reply always has the key
		}
	case "start", "stop", "restart":
		if !nargs(1) {
			return r
		}
		switch req.Cmd {
		case "start":
			err = s.h.StartSource(req.Args[0])
		case "stop":
			err = s.h.StopSource(req.Args[0])
		default:
			err = s.h.RestartSource(req.Args[0])
		}
	case "reload":
		if !nargs(0) {
			return r
		}
		err = s.h.Reload()
	default:
		r.Code = CodeUnknownCommand
		r.Error = fmt.Sprintf("unknown command %q: valid commands are %s", req.Cmd, strings.Join(Commands, ", "))
		return r
	}
	if err != nil {
		r.Code = CodeFailed
		if errors.Is(err, ErrNotFound) {
			r.Code = CodeNotFound
		}
		r.Error = err.Error()
		return r
	}
	r.OK = true
	return r
}

// salvage digs the id and reply fields out of a request that did not
// decode as a whole, so the sender can get an error reply.
func salvage(b []byte) (id uint64, reply string) {
	sz, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil || sz > 64 {
		return 0, ""
	}
	for i := uint32(0); i < sz; i++ {
		var key []byte
		key, b, err = msgp.ReadMapKeyZC(b)
		if err != nil {
			return id, reply
		}
		switch string(key) {
		case "id":
			var v uint64
			if v, b, err = msgp.ReadUint64Bytes(b); err == nil {
				id = v
				continue
			}
		case "reply":
			var v string
			if v, b, err = msgp.ReadStringBytes(b); err == nil {
				if replyPattern.MatchString(v) {
					reply = v
				}
				continue
			}
		}
		if b, err = msgp.Skip(b); err != nil {
			return id, reply
		}
	}
	return id, reply
}

// reply opens the reply queue, checks who owns it, builds the reply with
// mk(ownerUID) and sends it (see sendReply: only a reply streamed to a
// client that takes more parts than its queue holds, maxParts, waits for
// room, in a goroutine of its own that ctx cuts short).
func (s *Server) reply(ctx context.Context, name string, maxParts int, mk func(owner int) *Reply) {
	if err := s.sendReply(ctx, name, maxParts, mk); err != nil {
		s.replyFailed(name, err)
	}
}

// replyFailed counts and logs a reply that was not delivered.
func (s *Server) replyFailed(name string, err error) {
	s.replyFail.Add(1)
	s.log("control: reply to /dev/mqueue/%s not delivered: %v", name, err)
}

// maxPartEntries is the most table entries one part carries: the decoders'
// limit on an array (//msgp:limit arrays in types.go).
const maxPartEntries = 1024

// split encodes r into messages of at most size bytes each, splitting Rings,
// Sources and Sinks across parts; every part but the last has More set.
// Parts are filled by the entries' encoded size (msgp's Msgsize is an upper
// bound, about 40% above it for a typical row), and a table of more than
// maxPartEntries rows is split even when its bytes would fit one message.
func split(r *Reply, size int) ([][]byte, error) {
	if b, err := r.MarshalMsg(nil); err == nil && len(b) <= size {
		return [][]byte{b}, nil
	}
	// The bytes a part takes besides its entries: its keys and header, the
	// "sinks" key, and array headers of up to 5 bytes (array32) instead of
	// the 1 byte (fixarray) of an empty one.
	overhead := func(p *Reply) int {
		q := *p
		q.More = true
		q.Rings, q.Sources, q.Sinks = nil, nil, []SinkStat{}
		b, _ := q.MarshalMsg(nil)
		return len(b) + 3*4
	}
	head := &Reply{ID: r.ID, OK: r.OK, Error: r.Error, Code: r.Code, Status: r.Status}
	// An error too long for one message (a reload's list of config
	// errors) is cut, not replaced: its start says what is wrong.
	cutToFit(&head.Error, overhead(head)-size)
	parts := []*Reply{head}
	cur, used, entries := head, overhead(head), 0
	// room is what one entry may take in a part of its own.
	base := overhead(&Reply{ID: r.ID, OK: r.OK})
	room := size - base
	add := func(n int) *Reply {
		if (used+n > size || entries == maxPartEntries) && (cur == head || entries > 0) {
			cur = &Reply{ID: r.ID, OK: r.OK}
			parts = append(parts, cur)
			used, entries = base, 0
		}
		used += n
		entries++
		return cur
	}
	// encoded returns the size of e's encoding, first cutting its
	// last_error (*lastErr) if e would not fit a part of its own.
	encoded := func(e msgp.Marshaler, lastErr *string) int {
		b, _ := e.MarshalMsg(nil)
		if len(b) > room {
			cutToFit(lastErr, len(b)-room)
			b, _ = e.MarshalMsg(nil)
		}
		return len(b)
	}
	for _, e := range r.Rings {
		p := add(encoded(&e, &e.LastError))
		p.Rings = append(p.Rings, e)
	}
	for _, e := range r.Sources {
		p := add(encoded(&e, &e.LastError))
		p.Sources = append(p.Sources, e)
	}
	for _, e := range r.Sinks {
		p := add(encoded(&e, &e.LastError))
		p.Sinks = append(p.Sinks, e)
	}
	out := make([][]byte, len(parts))
	for i, p := range parts {
		p.More = i < len(parts)-1
		b, err := p.MarshalMsg(nil)
		if err != nil {
			return nil, err
		}
		if len(b) > size {
			return nil, fmt.Errorf("a reply entry does not fit the reply queue's message size %d", size)
		}
		out[i] = b
	}
	return out, nil
}

// cutToFit shortens *s by at least over bytes, if over > 0, cutting at a
// UTF-8 boundary and appending how many bytes were left out. A string
// shorter than that is left alone (split then reports the entry too long).
func cutToFit(s *string, over int) {
	if over <= 0 {
		return
	}
	const note = " [... %d bytes more]"
	keep := len(*s) - over - len(fmt.Sprintf(note, len(*s)))
	if keep < 0 {
		return
	}
	for keep > 0 && !utf8.RuneStart((*s)[keep]) {
		keep--
	}
	*s = (*s)[:keep] + fmt.Sprintf(note, len(*s)-keep)
}

func (s *Server) log(format string, args ...any) {
	if s.logf == nil {
		return
	}
	// At most one line a second; the next line says how many were dropped.
	s.logMu.Lock()
	now := time.Now()
	if now.Before(s.logNext) {
		s.suppressed++
		if s.suppressed == 1 && !s.logClosed {
			// Said with the next line, or at the end of the second if
			// none comes: a burst of bad requests followed by silence
			// showed one line, and the others were never mentioned.
			if s.logFlush == nil {
				s.logFlush = time.AfterFunc(s.logNext.Sub(now), s.flushSuppressed)
			} else {
				s.logFlush.Reset(s.logNext.Sub(now))
			}
		}
		s.logMu.Unlock()
		return
	}
	n := s.suppressed
	s.suppressed = 0
	s.logNext = now.Add(time.Second)
	s.logMu.Unlock()
	if n > 0 {
		format += " (%d similar messages suppressed)"
		args = append(args, n)
	}
	s.logf(format, args...)
}

// flushSuppressed logs how many lines the rate limit suppressed, if no
// line has said it since. It holds logMu while it logs, so that Close,
// which says it itself, returns only after it.
func (s *Server) flushSuppressed() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logClosed {
		return
	}
	s.sayCount()
}

// sayCount logs the suppressed count, if any, and starts a new second;
// logMu held.
func (s *Server) sayCount() {
	if s.suppressed == 0 {
		return
	}
	n := s.suppressed
	s.suppressed = 0
	s.logNext = time.Now().Add(time.Second)
	s.logf("control: %d similar messages suppressed (at most one line a second; 'edgeipc ctl status' counts bad requests and replies not delivered)", n)
}

// Close closes the request queue and unlinks its name, unless another
// server has replaced it since. Replies being streamed are cut short
// (counted as reply failures): Close returns once their goroutines have
// ended.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.streamMu.Lock()
		s.streamStop = true
		s.streamMu.Unlock()
		s.closeNow()
		s.streamWG.Wait()
		if s.logf != nil {
			s.logMu.Lock()
			s.logClosed = true
			if s.logFlush != nil {
				s.logFlush.Stop()
			}
			s.sayCount()
			s.logMu.Unlock()
		}
		if s.q == nil {
			return
		}
		// Unlink the name only while it is still our queue (a runtime that
		// took over has its own there); compared by inode through
		// descriptors, so without the /dev/mqueue mount too, and while ours
		// is still open.
		ino, ierr := mq.Ino(s.name)
		s.closeErr = s.q.Close()
		if ierr != nil || s.ino == 0 || ino != s.ino {
			return
		}
		if err := mq.Unlink(s.name); err != nil && !errors.Is(err, os.ErrNotExist) && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}
