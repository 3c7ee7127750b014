package control

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// fakeHandler stands in for the runtime core (the kernel is not faked).
type fakeHandler struct {
	mu      sync.Mutex
	sources map[string]*SourceStat
	rings   []RingStat
	sinks   []SinkStat
	reloads int
	calls   []string
}

func newFake() *fakeHandler {
	return &fakeHandler{
		sources: map[string]*SourceStat{
			"cam0": {Name: "cam0", Kind: "exec", Ring: "video", State: "running", PID: 4242, Frames: 10, Bytes: 1000},
			"imu":  {Name: "imu", Kind: "synthetic", Ring: "imu", State: "running"},
		},
		rings: []RingStat{
			{Name: "video", Slots: 64, SlotPayload: 65536, Policy: "overwrite", Frames: 10, Bytes: 1000, RateHz: 30, BytesPerS: 3000, Readers: 2, MaxLag: 3, Lost: 7},
			{Name: "imu", Slots: 1024, SlotPayload: 64, Policy: "block", Frames: 5, Bytes: 320, RateHz: 100, BytesPerS: 6400, Readers: 1},
		},
		sinks: []SinkStat{
			{Name: "rec", Kind: "recorder", Ring: "video", State: "backoff", Path: "/data/video.rec", Frames: 9, Bytes: 900, Lost: 1, Restarts: 3, LastError: "recorder: open /data/video.rec: no such file or directory"},
			{Name: "stats:video", Kind: "stats", Ring: "video", Implicit: true, State: "running", Frames: 10, Bytes: 1000},
		},
	}
}

func (f *fakeHandler) Status() StatusInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return StatusInfo{Version: "test", PID: os.Getpid(), StartedUnixNs: 1, UptimeS: 2.5, Rings: len(f.rings), Sources: len(f.sources), Reloads: f.reloads}
}
func (f *fakeHandler) Rings() []RingStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]RingStat(nil), f.rings...)
}
func (f *fakeHandler) Sources() []SourceStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SourceStat
	for _, n := range []string{"cam0", "imu"} {
		if s, ok := f.sources[n]; ok {
			out = append(out, *s)
		}
	}
	return out
}
func (f *fakeHandler) Sinks() []SinkStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SinkStat(nil), f.sinks...)
}
func (f *fakeHandler) set(name, state string, restart bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, state+" "+name)
	s, ok := f.sources[name]
	if !ok {
		return fmt.Errorf("source %q: %w", name, ErrNotFound)
	}
	s.State = state
	if restart {
		s.Restarts++
	}
	return nil
}
func (f *fakeHandler) StartSource(n string) error   { return f.set(n, "running", false) }
func (f *fakeHandler) StopSource(n string) error    { return f.set(n, "stopped", false) }
func (f *fakeHandler) RestartSource(n string) error { return f.set(n, "running", true) }
func (f *fakeHandler) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return nil
}

var queueSeq atomic.Int64

// testQueue returns a queue name unique to this process and test.
func testQueue(t *testing.T) string {
	name := fmt.Sprintf("edgeipc.test.%d.%d", os.Getpid(), queueSeq.Add(1))
	t.Cleanup(func() { mq.Unlink(name) })
	return name
}

// startServer runs a real Server on a fresh queue until the test ends.
func startServer(t *testing.T, h Handler, opts ServerOptions) *Server {
	t.Helper()
	s, _ := serveUntil(t, h, opts)
	return s
}

// serveUntil runs a real Server on a fresh queue (unless opts names one);
// stop, also run when the test ends, cancels Serve, waits for it to
// return and closes the server.
func serveUntil(t *testing.T, h Handler, opts ServerOptions) (s *Server, stop func()) {
	t.Helper()
	if opts.Queue == "" {
		opts.Queue = testQueue(t)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s, err := NewServer(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	return s, stop
}

func dial(t *testing.T, name string) *Client {
	t.Helper()
	c, err := Dial(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call(t *testing.T, c *Client, cmd string, args ...string) *Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Call(ctx, cmd, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return r
}

func TestRoundTrips(t *testing.T) {
	h := newFake()
	s := startServer(t, h, ServerOptions{})
	c := dial(t, s.Name())

	r := call(t, c, "status")
	if !r.OK || r.Status == nil || r.Status.Version != "test" || r.Status.Rings != 2 || r.Status.Requests != 1 {
		t.Fatalf("status: %+v (status %+v)", r, r.Status)
	}
	r = call(t, c, "rings")
	if !r.OK || len(r.Rings) != 2 || r.Rings[0] != h.rings[0] {
		t.Fatalf("rings: %+v", r)
	}
	r = call(t, c, "sources")
	if !r.OK || len(r.Sources) != 2 || r.Sources[0].PID != 4242 {
		t.Fatalf("sources: %+v", r)
	}
	r = call(t, c, "sinks")
	if !r.OK || len(r.Sinks) != 2 || r.Sinks[0] != h.sinks[0] || r.Sinks[1] != h.sinks[1] || r.Rings != nil || r.Sources != nil {
		t.Fatalf("sinks: %+v", r)
	}
	for _, cmd := range []string{"stop", "start", "restart"} {
		if r = call(t, c, cmd, "cam0"); !r.OK || r.Err() != nil {
			t.Fatalf("%s: %+v", cmd, r)
		}
	}
	if r = call(t, c, "reload"); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	if r = call(t, c, "ping"); !r.OK {
		t.Fatalf("ping: %+v", r)
	}
	h.mu.Lock()
	got := strings.Join(h.calls, ",")
	reloads, restarts := h.reloads, h.sources["cam0"].Restarts
	h.mu.Unlock()
	if got != "stopped cam0,running cam0,running cam0" || reloads != 1 || restarts != 1 {
		t.Fatalf("handler saw %q, %d reloads, %d restarts", got, reloads, restarts)
	}
	if req, bad := s.Stats(); req != 9 || bad != 0 {
		t.Fatalf("Stats = %d, %d; want 9, 0", req, bad)
	}
}

func TestErrorReplies(t *testing.T) {
	s := startServer(t, newFake(), ServerOptions{})
	c := dial(t, s.Name())

	r := call(t, c, "frobnicate")
	if r.OK || r.Code != CodeUnknownCommand || !strings.Contains(r.Error, "status, rings, sources, sinks, start") {
		t.Fatalf("unknown command: %+v", r)
	}
	r = call(t, c, "restart", "nosuch")
	if r.OK || r.Code != CodeNotFound || !strings.Contains(r.Error, ErrNotFound.Error()) || !errors.Is(r.Err(), ErrNotFound) {
		t.Fatalf("unknown source: %+v", r)
	}
	r = call(t, c, "stop")
	if r.OK || r.Code != CodeBadRequest {
		t.Fatalf("missing argument: %+v", r)
	}
	r = call(t, c, "sinks", "rec")
	if r.OK || r.Code != CodeBadRequest || !strings.Contains(r.Error, "sinks takes no arguments") {
		t.Fatalf("sinks with an argument: %+v", r)
	}
	if _, bad := s.Stats(); bad != 3 {
		t.Fatalf("bad = %d, want 3 (unknown command, missing argument, extra argument)", bad)
	}
}

func TestMalformedRequests(t *testing.T) {
	s := startServer(t, newFake(), ServerOptions{})
	c := dial(t, s.Name())
	q, err := mq.Open(s.Name(), os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Garbage, a huge array header, a truncated map, trailing bytes.
	good, _ := (&Request{ID: 1, Cmd: "ping", Reply: c.ReplyQueue()}).MarshalMsg(nil)
	for _, m := range [][]byte{
		[]byte("\xff\xfe not msgpack"),
		{0x81, 0xa4, 'a', 'r', 'g', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		good[:len(good)-3],
		append(append([]byte(nil), good...), 0xc0),
	} {
		if err := q.Send(ctx, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A request whose cmd is a number but whose reply field decodes: the
	// sender gets an error reply.
	var salv []byte
	salv = append(salv, 0x83)
	salv = append(salv, 0xa2, 'i', 'd', 0x2a)
	salv = append(salv, 0xa3, 'c', 'm', 'd', 0x07)
	salv = append(salv, 0xa5, 'r', 'e', 'p', 'l', 'y', 0xd9, byte(len(c.ReplyQueue())))
	salv = append(salv, c.ReplyQueue()...)
	if err := q.Send(ctx, salv, 0); err != nil {
		t.Fatal(err)
	}
	// The truncated and the trailing-bytes requests still name their reply
	// queue, and so does the one with a numeric cmd: three error replies.
	buf := make([]byte, ReplyMsgSize)
	var ids []uint64
	for i := 0; i < 3; i++ {
		n, _, err := c.reply.Receive(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		var er Reply
		if _, err := er.UnmarshalMsg(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if er.OK || er.Code != CodeBadRequest || !strings.HasPrefix(er.Error, "malformed request") {
			t.Fatalf("salvaged reply: %+v", er)
		}
		ids = append(ids, er.ID)
	}
	if fmt.Sprint(ids) != "[1 1 42]" {
		t.Fatalf("salvaged reply ids %v, want [1 1 42]", ids)
	}

	// The server still answers.
	if r := call(t, c, "ping"); !r.OK {
		t.Fatalf("ping after garbage: %+v", r)
	}
	if req, bad := s.Stats(); req != 6 || bad != 5 {
		t.Fatalf("Stats = %d, %d; want 6, 5", req, bad)
	}
}

// TestSuppressedLogLinesReported: the server logs at most one line a
// second; the lines it suppresses are counted in a later line even when
// nothing else is logged after a burst (bad requests from a broken client,
// then silence), and when the server closes. Before the fix the count
// waited for the next line, which might never come: five malformed
// requests logged one line, and the other four were never mentioned.
func TestSuppressedLogLinesReported(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	said := func(want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range lines {
				if strings.Contains(l, want) {
					return true
				}
			}
			return false
		}
	}
	s := startServer(t, newFake(), ServerOptions{Logf: logf})
	q, err := mq.Open(s.Name(), os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := 0; i < 5; i++ {
		if err := q.TrySend([]byte{0xde, 0xad}, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "five bad requests", func() bool { _, bad := s.Stats(); return bad == 5 })
	// "4 similar messages" (fewer if the requests took more than a second).
	waitFor(t, "the count of suppressed lines", said(" similar messages suppressed"))

	// A burst cut short by Close is counted on the way out.
	s2, err := NewServer(newFake(), ServerOptions{Queue: testQueue(t), Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	s2.log("control: first")
	s2.log("control: second")
	s2.log("control: third")
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if !said("control: 2 similar messages suppressed")() {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("Close did not count the suppressed lines: %q", lines)
	}
}

// sendRaw sends req straight into the request queue.
func sendRaw(t *testing.T, queue string, req *Request) {
	t.Helper()
	q, err := mq.Open(queue, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	b, err := req.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.TrySend(b, 0); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestReplyQueueNameRefused(t *testing.T) {
	s := startServer(t, newFake(), ServerOptions{})
	victim := testQueue(t) // an existing queue that is not a reply queue
	vq, err := mq.Create(victim, mq.Options{MaxMsg: 2, MsgSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer vq.Close()
	sendRaw(t, s.Name(), &Request{ID: 1, Cmd: "status", Reply: victim})
	waitFor(t, "the request to be counted bad", func() bool { _, bad := s.Stats(); return bad == 1 })
	if a, _ := vq.Attr(); a.CurMsgs != 0 {
		t.Fatalf("server wrote %d messages to a queue not named edgeipc.reply.*", a.CurMsgs)
	}
	if r := call(t, dial(t, s.Name()), "ping"); !r.OK {
		t.Fatal(r)
	}
}

func TestReplyQueueMissingOrFull(t *testing.T) {
	s := startServer(t, newFake(), ServerOptions{})

	// Missing: a well-formed name nobody created.
	sendRaw(t, s.Name(), &Request{ID: 1, Cmd: "status", Reply: fmt.Sprintf("edgeipc.reply.%d.deadbeefdeadbeef", os.Getpid())})
	waitFor(t, "a reply failure", func() bool { return s.ReplyFailures() == 1 })

	// Full: a reply queue of depth 1 that already holds a message.
	full := fmt.Sprintf("edgeipc.reply.%d.%08x00000001", os.Getpid(), queueSeq.Add(1))
	t.Cleanup(func() { mq.Unlink(full) })
	fq, err := mq.Create(full, mq.Options{MaxMsg: 1, MsgSize: 1024, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fq.Close()
	if err := fq.TrySend([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		sendRaw(t, s.Name(), &Request{ID: uint64(i), Cmd: "sources", Reply: full})
	}
	waitFor(t, "three more reply failures", func() bool { return s.ReplyFailures() == 4 })

	// Another client is still served.
	// ... and the failures are reported, not only counted.
	if r := call(t, dial(t, s.Name()), "status"); !r.OK || r.Status.Requests != 5 || r.Status.ReplyFailures != 4 {
		t.Fatalf("status after failures: %+v", r)
	}
	if _, bad := s.Stats(); bad != 0 {
		t.Fatalf("undeliverable replies counted as bad requests: %d", bad)
	}
}

func TestForeignReplyQueueRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a reply queue to another uid (run the tests as root, e.g. in the CI container)")
	}
	s := startServer(t, newFake(), ServerOptions{})
	c := dial(t, s.Name())
	// Hand the reply queue to nobody through a descriptor (no /dev/mqueue
	// mount needed).
	fd, err := sys.MqOpen(c.ReplyQueue(), unix.O_RDONLY|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fchown(fd, 65534, 65534)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "stop"} {
		var args []string
		if cmd == "stop" {
			args = []string{"cam0"}
		}
		r := call(t, c, cmd, args...)
		if r.OK || r.Code != CodePermissionDenied || !strings.Contains(r.Error, "permission denied: reply queue owned by uid 65534") {
			t.Fatalf("%s with a foreign reply queue: %+v", cmd, r)
		}
	}
	if _, bad := s.Stats(); bad != 2 {
		t.Fatalf("bad = %d, want 2", bad)
	}
}

func TestServeCancelReturns(t *testing.T) {
	s, err := NewServer(newFake(), ServerOptions{Queue: testQueue(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	time.Sleep(20 * time.Millisecond) // let Serve park in Receive
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestLimitError(t *testing.T) {
	l, _ := mq.ReadLimits()
	want := int(l.MsgMax) + 1
	if os.Geteuid() == 0 || want <= 1 {
		want = 65537 // CAP_SYS_RESOURCE is held only to HARD_MSGMAX (65536)
	}
	_, err := NewServer(newFake(), ServerOptions{Queue: testQueue(t), MaxMsg: want})
	var lim *mq.LimitError
	if !errors.As(err, &lim) || lim.Limit != mq.LimitMsgMax || !strings.Contains(err.Error(), "msg_max") {
		t.Fatalf("NewServer with MaxMsg %d: %v", want, err)
	}
	t.Log(err)
}

func TestTakeover(t *testing.T) {
	name := testQueue(t)
	// A stale queue, as left by a crashed runtime, with a request in it.
	stale, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: 64, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	stale.TrySend([]byte("old"), 0)
	stale.Close()

	s := startServer(t, newFake(), ServerOptions{Queue: name, TakeoverTimeout: 300 * time.Millisecond})
	if r := call(t, dial(t, name), "ping"); !r.OK {
		t.Fatal(r)
	}
	// A second server must not take over a live one.
	_, err = NewServer(newFake(), ServerOptions{Queue: name, TakeoverTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "another runtime is serving") {
		t.Fatalf("second NewServer: %v", err)
	}
	if r := call(t, dial(t, name), "ping"); !r.OK {
		t.Fatalf("first server lost its queue: %+v", r)
	}
	_ = s
}

func TestNoServer(t *testing.T) {
	name := testQueue(t)
	_, err := Dial(name)
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "no runtime is listening on /dev/mqueue/"+name+": start it with 'edgeipc run'") {
		t.Fatalf("Dial: %v", err)
	}
	// A queue held by a process that does not answer (a runtime busy with
	// a long stop): Call times out with ErrNoServer, and says the runtime
	// may be busy.
	q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if ok, err := q.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	c := dial(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "status"); !errors.Is(err, ErrNoServer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may be busy") {
		t.Fatalf("Call to a queue held but not served: %v", err)
	}
}

// TestCallUnservedQueue: a request queue whose lock no process holds is
// left over from a runtime that has exited (killed, crashed). Call says so
// after UnservedTimeout, naming the fix, also when the queue is full of
// requests nobody took. Before the fix it waited for the whole context
// (edgeipc ctl stop: 90 s) and then said the runtime might be busy.
func TestCallUnservedQueue(t *testing.T) {
	name := testQueue(t)
	q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c := dial(t, name)
	for i := 0; i < 3; i++ { // the third finds the queue full
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.Call(ctx, "stop", "cam0")
		cancel()
		want := "no runtime is listening on /dev/mqueue/" + name + ": the queue is left over from a runtime that has exited"
		if !errors.Is(err, ErrNoServer) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "start it with 'edgeipc run'") {
			t.Fatalf("call %d to a queue nobody holds: %v; want %q", i, err, want)
		}
	}
	// A cancelled context (ctl interrupted) is not taken for an unserved
	// queue.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Call(ctx, "status"); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "left over") {
		t.Fatalf("cancelled Call: %v", err)
	}
}

// TestClientAfterRuntimeRestart: a Client kept across a restart of the
// runtime talks to the new one. A runtime removes its queue when it stops
// and the next one creates a new queue under the name (or takes over the
// stale queue of one that died): before the fix the Client went on sending
// into the old queue, which no one reads, and every Call waited for its
// whole context and then said the runtime might be busy.
func TestClientAfterRuntimeRestart(t *testing.T) {
	name := testQueue(t)
	s1, err := NewServer(newFake(), ServerOptions{Queue: name, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- s1.Serve(ctx1) }()
	c := dial(t, name)
	if r := call(t, c, "ping"); !r.OK {
		t.Fatal(r)
	}
	cancel1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}
	s1.Close() // a clean stop: the queue is gone
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Call(ctx, "ping"); !errors.Is(err, ErrNoServer) || errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "no runtime is listening on /dev/mqueue/"+name+": start it with 'edgeipc run'") {
		t.Fatalf("Call after the runtime stopped: %v", err)
	}
	// The next runtime: the same Client reaches it.
	startServer(t, newFake(), ServerOptions{Queue: name})
	if r, err := c.Call(ctx, "ping"); err != nil || !r.OK {
		t.Fatalf("Call to the restarted runtime: %+v, %v", r, err)
	}

	// A runtime that died leaves its queue, and the next one takes it over
	// (unlinks it and creates a new one): the Client follows.
	name2 := testQueue(t)
	stale, err := mq.Create(name2, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close()
	c2 := dial(t, name2)
	startServer(t, newFake(), ServerOptions{Queue: name2, TakeoverTimeout: 200 * time.Millisecond})
	if r, err := c2.Call(ctx, "ping"); err != nil || !r.OK {
		t.Fatalf("Call to the runtime that took the queue over: %+v, %v", r, err)
	}
}

// TestCallSlowLockedServer: a runtime that holds its queue's lock is
// waited for as long as the context allows, though it answers only after
// UnservedTimeout (a stop waits up to a source's stop_timeout); and so is
// one that takes the lock while Call waits (a runtime that had only just
// created its queue).
func TestCallSlowLockedServer(t *testing.T) {
	for _, lockLate := range []bool{false, true} {
		name := testQueue(t)
		srv, err := mq.Create(name, mq.Options{MaxMsg: 10, MsgSize: RequestMsgSize, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		if !lockLate {
			if ok, err := srv.TryLock(); !ok || err != nil {
				t.Fatalf("TryLock: %v, %v", ok, err)
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, RequestMsgSize)
			n, _, err := srv.Receive(context.Background(), buf)
			if err != nil {
				t.Error(err)
				return
			}
			if lockLate {
				if ok, err := srv.TryLock(); !ok || err != nil {
					t.Errorf("TryLock: %v, %v", ok, err)
				}
			}
			time.Sleep(UnservedTimeout + 500*time.Millisecond)
			var req Request
			if _, err := req.UnmarshalMsg(buf[:n]); err != nil {
				t.Error(err)
				return
			}
			rq, err := mq.Open(req.Reply, os.O_WRONLY)
			if err != nil {
				t.Error(err)
				return
			}
			defer rq.Close()
			b, _ := (&Reply{ID: req.ID, OK: true}).MarshalMsg(nil)
			if err := rq.TrySend(b, 0); err != nil {
				t.Error(err)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := dial(t, name).Call(ctx, "stop", "cam0")
		cancel()
		<-done
		srv.Close()
		if err != nil || !r.OK {
			t.Fatalf("lock taken late %v: Call: %+v, %v", lockLate, r, err)
		}
	}
}

func TestLargeReplySplit(t *testing.T) {
	h := newFake()
	h.rings = nil
	for i := 0; i < 300; i++ {
		h.rings = append(h.rings, RingStat{Name: fmt.Sprintf("ring-with-a-long-name-%04d", i), Slots: i, Policy: "overwrite"})
	}
	s := startServer(t, h, ServerOptions{})
	r := call(t, dial(t, s.Name()), "rings")
	if !r.OK || len(r.Rings) != 300 || r.Rings[299].Slots != 299 || r.More {
		t.Fatalf("got %d rings, ok %v more %v", len(r.Rings), r.OK, r.More)
	}
	if parts, _ := split(&Reply{ID: 1, OK: true, Rings: h.rings}, ReplyMsgSize); len(parts) < 2 {
		t.Fatalf("300 rings fit one %d-byte message? %d parts", ReplyMsgSize, len(parts))
	}
}

// typicalRings returns n rows as a runtime reports busy rings.
func typicalRings(n int) []RingStat {
	var rs []RingStat
	for i := 0; i < n; i++ {
		rs = append(rs, RingStat{Name: fmt.Sprintf("ring%04d", i), Slots: 64, SlotPayload: 4096, Policy: "overwrite",
			Frames: 123456, Bytes: 1 << 30, RateHz: 30, BytesPerS: 3000, Readers: 2, State: "ok"})
	}
	return rs
}

// TestReplyPartsPackedByEncodedSize: parts are filled by what the rows
// take encoded, not by msgp's Msgsize bound (233 bytes for a row that
// encodes in 167), and a table of more than 1024 rows is split too. Before
// the fix 'ctl rings' failed from about 330 such rings ("reply needs 11
// messages of 8192 bytes but the reply queue has room for 10"), and a table
// of more than 1024 rows could not be split at all ("reply not sent: msgp:
// configured reader limit exceeded").
func TestReplyPartsPackedByEncodedSize(t *testing.T) {
	h := newFake()
	h.rings = typicalRings(450)
	s := startServer(t, h, ServerOptions{})
	r := call(t, dial(t, s.Name()), "rings")
	if !r.OK || len(r.Rings) != len(h.rings) {
		t.Fatalf("rings of %d rows: ok %v, %d rows, error %q", len(h.rings), r.OK, len(r.Rings), r.Error)
	}
	for i := range r.Rings {
		if r.Rings[i] != h.rings[i] {
			t.Fatalf("row %d: got %+v, want %+v", i, r.Rings[i], h.rings[i])
		}
	}
	// 1100 rows: in any message size, parts of at most 1024 rows that
	// decode and join to the table.
	for _, size := range []int{ReplyMsgSize, 1 << 20} {
		rows := typicalRings(1100)
		parts, err := split(&Reply{ID: 1, OK: true, Rings: rows}, size)
		if err != nil {
			t.Fatalf("split of %d rows into %d-byte messages: %v", len(rows), size, err)
		}
		var got []RingStat
		for i, b := range parts {
			var p Reply
			if left, err := p.UnmarshalMsg(b); err != nil || len(left) > 0 || len(b) > size || p.More != (i < len(parts)-1) {
				t.Fatalf("part %d of %d (%d bytes): %v, %d bytes left, more %v", i, len(parts), len(b), err, len(left), p.More)
			}
			got = append(got, p.Rings...)
		}
		if len(got) != len(rows) || got[1099] != rows[1099] {
			t.Fatalf("%d-byte messages: %d parts joined to %d rows, want %d", size, len(parts), len(got), len(rows))
		}
	}
}

// TestLargeTableStreamed: a table in more parts than the reply queue holds
// reaches a Client whole: it takes the parts while the server sends them
// (Request.MaxParts), and the server waits for room. Before, 'edgeipc ctl
// rings' failed for any table of more than 10 messages of 8192 bytes
// (about 330 rings, 480 once parts were packed by encoded size) with
// "reply needs N messages ... the reply queue has room for 10". A client
// that does not say it takes parts while they are sent (MaxParts 0) gets
// the error reply, which tells how to take them; one that stops taking
// them is given up after ReplyStallTimeout (and holds up no one else
// meanwhile: TestStalledStreamDoesNotHoldUpOthers).
func TestLargeTableStreamed(t *testing.T) {
	h := newFake()
	h.rings = typicalRings(3000)
	s := startServer(t, h, ServerOptions{})
	c := dial(t, s.Name())
	r := call(t, c, "rings")
	if !r.OK || len(r.Rings) != len(h.rings) || r.More {
		t.Fatalf("rings of %d rows: ok %v more %v, %d rows, error %q", len(h.rings), r.OK, r.More, len(r.Rings), r.Error)
	}
	for i := range r.Rings {
		if r.Rings[i] != h.rings[i] {
			t.Fatalf("row %d: got %+v, want %+v", i, r.Rings[i], h.rings[i])
		}
	}

	// A client that takes the parts only once all are queued.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]byte, c.reply.MsgSize())
	sendRaw(t, s.Name(), &Request{ID: 7, Cmd: "rings", Reply: c.ReplyQueue()})
	n, _, err := c.reply.Receive(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	var old Reply
	if _, err := old.UnmarshalMsg(buf[:n]); err != nil || old.OK || old.More || !strings.Contains(old.Error, "max_parts") {
		t.Fatalf("reply to a client without max_parts: %+v, %v; want one error reply naming max_parts", old, err)
	}

	// A client that asks for the parts and takes none: the server gives up.
	stalled := fmt.Sprintf("edgeipc.reply.%d.%08x00000002", os.Getpid(), queueSeq.Add(1))
	t.Cleanup(func() { mq.Unlink(stalled) })
	sq, err := mq.Create(stalled, mq.Options{MaxMsg: ReplyMaxMsg, MsgSize: ReplyMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	sendRaw(t, s.Name(), &Request{ID: 8, Cmd: "rings", Reply: stalled, MaxParts: MaxReplyParts})
	waitFor(t, "the stalled reply to be given up", func() bool { return s.ReplyFailures() == 1 })
	if r := call(t, c, "status"); !r.OK || r.Status.ReplyFailures != 1 {
		t.Fatalf("status after a client that took no parts: %+v, want reply_failures 1", r)
	}
	if a, _ := sq.Attr(); a.CurMsgs != ReplyMaxMsg {
		t.Fatalf("the stalled reply queue holds %d parts, want %d", a.CurMsgs, ReplyMaxMsg)
	}
}

// A sinks reply too long for one reply-queue message is split into parts
// and joined again by the client, as rings and sources are.
func TestLargeSinksReplySplit(t *testing.T) {
	h := newFake()
	h.sinks = nil
	for i := 0; i < 300; i++ {
		h.sinks = append(h.sinks, SinkStat{Name: fmt.Sprintf("recorder-with-a-long-name-%04d", i), Kind: "recorder", State: "running",
			Path: fmt.Sprintf("/var/lib/edgeipc/recordings/%04d.rec", i), Restarts: i})
	}
	if parts, _ := split(&Reply{ID: 1, OK: true, Sinks: h.sinks}, ReplyMsgSize); len(parts) < 2 {
		t.Fatalf("300 sinks fit one %d-byte message? %d parts", ReplyMsgSize, len(parts))
	}
	s := startServer(t, h, ServerOptions{})
	r := call(t, dial(t, s.Name()), "sinks")
	if !r.OK || len(r.Sinks) != 300 || r.More {
		t.Fatalf("got %d sinks, ok %v more %v", len(r.Sinks), r.OK, r.More)
	}
	for i, sk := range r.Sinks {
		if sk != h.sinks[i] {
			t.Fatalf("sink %d: got %+v, want %+v", i, sk, h.sinks[i])
		}
	}
}

func TestSweepReplyQueues(t *testing.T) {
	if _, err := mq.List(); err != nil {
		t.Skipf("cannot list queues (%v): mount the mqueue file system ('mount -t mqueue mqueue /dev/mqueue') to test the sweep", err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no 'true' to get a dead pid: %v", err)
	}
	// Dial sweeps too: the live client first, then the dead queue.
	live := dial(t, testQueueServed(t)).ReplyQueue()
	dead := fmt.Sprintf("edgeipc.reply.%d.%08x0badf00d", cmd.Process.Pid, sys.SelfPidNS())
	t.Cleanup(func() { mq.Unlink(dead) })
	q, err := mq.Create(dead, mq.Options{MaxMsg: 1, MsgSize: 64, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	removed := SweepReplyQueues()
	found := false
	for _, n := range removed {
		found = found || n == dead
		if n == live {
			t.Fatalf("swept the live queue %s", live)
		}
	}
	if !found {
		t.Fatalf("sweep removed %v, not %s", removed, dead)
	}
}

// TestRootSweepsQueuesGivenAway: root's ctl gives its reply queue to the
// runtime's user (TestRootClientOfServiceUserRuntime), so a root ctl that
// was killed leaves a queue owned by that user. Root's next ctl removes it
// (its pid is dead). Before the fix the sweep took only queues of its own
// uid, and where only root runs ctl such queues were never removed.
func TestRootSweepsQueuesGivenAway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a queue to another uid")
	}
	if _, err := mq.List(); err != nil {
		t.Skipf("cannot list queues (%v): mount the mqueue file system ('mount -t mqueue mqueue /dev/mqueue') to test the sweep", err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no 'true' to get a dead pid: %v", err)
	}
	dead := fmt.Sprintf("edgeipc.reply.%d.%08x0badf00e", cmd.Process.Pid, sys.SelfPidNS())
	t.Cleanup(func() { mq.Unlink(dead) })
	q, err := mq.Create(dead, mq.Options{MaxMsg: 1, MsgSize: 64, Owner: serviceUID, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if removed := SweepReplyQueues(); !slices.Contains(removed, dead) {
		t.Fatalf("root's sweep removed %v, not %s (uid %d, its pid dead)", removed, dead, serviceUID)
	}
}

func testQueueServed(t *testing.T) string {
	return startServer(t, newFake(), ServerOptions{}).Name()
}

func TestQueueNameEnv(t *testing.T) {
	t.Setenv(EnvQueue, "")
	if QueueName("") != DefaultQueue || QueueName("x") != "x" {
		t.Fatal(QueueName(""))
	}
	t.Setenv(EnvQueue, "edgeipc.other")
	if QueueName("") != "edgeipc.other" {
		t.Fatal(QueueName(""))
	}
}

// BenchmarkCall measures one request/reply round trip through the kernel.
func BenchmarkCall(b *testing.B) {
	for _, cmd := range []string{"ping", "sources"} {
		b.Run(cmd, func(b *testing.B) {
			name := fmt.Sprintf("edgeipc.bench.%d.%d", os.Getpid(), queueSeq.Add(1))
			s, err := NewServer(newFake(), ServerOptions{Queue: name})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.Serve(ctx)
			c, err := Dial(name)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r, err := c.Call(ctx, cmd); err != nil || !r.OK {
					b.Fatal(r, err)
				}
			}
		})
	}
}

// A reply in more parts than the client's reply queue holds cannot come
// from a runtime (it never sends more parts than the queue has room for):
// Call fails at once instead of joining parts, its memory growing, until
// its context ends. Here whoever owns the request queue answers every
// request with parts that all say "more".
func TestCallRefusesEndlessReply(t *testing.T) {
	name := rawServer(t, true, func(id uint64) *Reply {
		return &Reply{ID: id, OK: true, Rings: make([]RingStat, 20), More: true}
	})
	c := dial(t, name)
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	r, err := c.Call(cctx, "rings")
	if err == nil || errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "parts") {
		rows := 0
		if r != nil {
			rows = len(r.Rings)
		}
		t.Fatalf("Call of an endless reply: %v (%d rows); want an error saying the reply has too many parts", err, rows)
	}
}

// A NaN or an infinity in a reply cannot come from a runtime, and `ctl
// --json` could not print it (encoding/json refuses them): Call says the
// reply is malformed and who to suspect.
func TestCallRefusesNonFiniteNumbers(t *testing.T) {
	for _, bad := range []*Reply{
		{OK: true, Rings: []RingStat{{Name: "r"}, {Name: "s", RateHz: math.NaN()}}},
		{OK: true, Rings: []RingStat{{Name: "r", BytesPerS: math.Inf(1)}}},
		{OK: true, Status: &StatusInfo{UptimeS: math.Inf(-1)}},
	} {
		name := rawServer(t, false, func(id uint64) *Reply { bad.ID = id; return bad })
		r, err := dial(t, name).Call(context.Background(), "rings")
		if err == nil || !strings.Contains(err.Error(), "malformed reply") || !strings.Contains(err.Error(), "who owns") {
			t.Fatalf("Call answered with %+v: %v, %+v; want a malformed reply error", bad, err, r)
		}
	}
}

// rawServer creates a request queue and answers its first request with
// mk's reply, sent again and again if endless, as whoever owns the queue
// may (not a runtime). It returns the queue's name.
func rawServer(t *testing.T, endless bool, mk func(id uint64) *Reply) string {
	t.Helper()
	name := testQueue(t)
	srv, err := mq.Create(name, mq.Options{MaxMsg: 10, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.TryLock() // as a runtime does: Call waits on for an answer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	go func() {
		defer close(done)
		buf := make([]byte, RequestMsgSize)
		n, _, err := srv.Receive(ctx, buf)
		if err != nil {
			return
		}
		var req Request
		if _, err := req.UnmarshalMsg(buf[:n]); err != nil {
			return
		}
		rq, err := mq.Open(req.Reply, os.O_WRONLY)
		if err != nil {
			return
		}
		defer rq.Close()
		part, _ := mk(req.ID).MarshalMsg(nil)
		for ctx.Err() == nil {
			if rq.Send(ctx, part, 0) != nil || !endless {
				return
			}
		}
	}()
	return name
}

// longErrHandler fails a reload with an error longer than a reply-queue
// message, as a runtime does whose edited config has errors on many
// lines (one per ring or source, joined by newlines: 131 rings with a bad
// slots value make about 9 KiB).
type longErrHandler struct {
	*fakeHandler
	err string
}

func (h *longErrHandler) Reload() error { return errors.New(h.err) }

// TestLongErrorReplyCut: an error reply too long for one reply-queue
// message reaches the client cut to fit, its start intact and saying how
// much is missing; a table entry whose last_error alone is too long is
// cut the same way and the other rows arrive whole. Before the fix the
// client got only "reply not sent: a reply entry does not fit the reply
// queue's message size 8192" and lost the reason (and, for a table, every
// row).
func TestLongErrorReplyCut(t *testing.T) {
	var lines []string
	for i := 0; i < 131; i++ {
		lines = append(lines, fmt.Sprintf("/etc/edgeipc/edgeipc.toml:%d: rings.r%03d.slots: 3 is not a power of two from 2 to 16777216", 7+10*i, i))
	}
	long := strings.Join(lines, "\n") + "\nü" // ends in a 2-byte rune
	if len(long) <= ReplyMsgSize {
		t.Fatalf("test error of %d bytes fits a reply message", len(long))
	}
	h := &longErrHandler{fakeHandler: newFake(), err: long}
	h.sources["cam0"].LastError = strings.Repeat("é", ReplyMsgSize) // 2 bytes each
	s := startServer(t, h, ServerOptions{})
	c := dial(t, s.Name())

	r := call(t, c, "reload")
	if r.OK || r.Code != CodeFailed {
		t.Fatalf("reload: ok %v code %q", r.OK, r.Code)
	}
	if !strings.HasPrefix(r.Error, lines[0]+"\n"+lines[1]) || !utf8.ValidString(r.Error) {
		t.Fatalf("reload error does not start with the handler's error or is not UTF-8: %.200q", r.Error)
	}
	if !strings.Contains(r.Error, "bytes more") || len(r.Error) >= len(long) {
		t.Fatalf("reload error of %d bytes (handler's %d) does not say it was cut: ...%q", len(r.Error), len(long), r.Error[max(0, len(r.Error)-120):])
	}
	if got := s.ReplyFailures(); got != 0 {
		t.Fatalf("%d replies not delivered", got)
	}

	r = call(t, c, "sources")
	if !r.OK || len(r.Sources) != 2 {
		t.Fatalf("sources: ok %v %q, %d rows", r.OK, r.Error, len(r.Sources))
	}
	le := r.Sources[0].LastError
	if !strings.HasPrefix(le, "éé") || !strings.Contains(le, "bytes more") || !utf8.ValidString(le) {
		t.Fatalf("cam0 last_error of %d bytes: %.40q...%q", len(le), le, le[max(0, len(le)-80):])
	}
	if r.Sources[1] != *h.sources["imu"] {
		t.Fatalf("imu row: %+v", r.Sources[1])
	}
}

// blockingStop is a handler whose stop waits until release is closed, as
// a runtime's does for a child that ignores SIGTERM (up to stop_timeout).
type blockingStop struct {
	*fakeHandler
	release chan struct{}
}

func (h *blockingStop) StopSource(n string) error {
	<-h.release
	return h.fakeHandler.StopSource(n)
}

// TestLateRepliesDoNotBlockNextCall: a long-lived Client whose calls gave
// up while the runtime was busy gets their late replies in its reply
// queue once the runtime answers; enough of them fill it. The next call
// must still be answered. Before the fix it was not: the runtime found the
// reply queue full, counted a reply failure and the call timed out,
// although the runtime was idle again.
func TestLateRepliesDoNotBlockNextCall(t *testing.T) {
	h := &blockingStop{fakeHandler: newFake(), release: make(chan struct{})}
	s := startServer(t, h, ServerOptions{})
	c := dial(t, s.Name())
	gaveUp := func(cmd string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if r, err := c.Call(ctx, cmd, args...); !errors.Is(err, ErrNoServer) {
			t.Fatalf("%s while the server is blocked: %+v, %v; want a timeout", cmd, r, err)
		}
	}
	gaveUp("stop", "cam0")
	waitFor(t, "the stop to be received", func() bool { n, _ := s.Stats(); return n == 1 })
	late := s.q.MaxMsg() // requests that fit the request queue while the stop runs
	for i := 0; i < late; i++ {
		gaveUp("status")
	}
	close(h.release)
	// The stop's reply and the statuses' fill the reply queue; the last
	// one does not fit.
	waitFor(t, "the late requests to be answered", func() bool { n, _ := s.Stats(); return n == uint64(1+late) })
	if a, err := c.reply.Attr(); err != nil || a.CurMsgs != a.MaxMsg {
		t.Fatalf("reply queue %+v, %v: want it full of late replies", a, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Call(ctx, "ping")
	if err != nil || !r.OK {
		t.Fatalf("ping after the late replies: %+v, %v (reply failures %d)", r, err, s.ReplyFailures())
	}
}
