package control

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
)

// stalledReplyQueue creates a reply queue of depth slots that the test
// never reads, as a client that asked for a long reply and stopped.
func stalledReplyQueue(t *testing.T, depth int) (string, *mq.Queue) {
	t.Helper()
	name := fmt.Sprintf("edgeipc.reply.%d.%08x00000003", os.Getpid(), queueSeq.Add(1))
	t.Cleanup(func() { mq.Unlink(name) })
	q, err := mq.Create(name, mq.Options{MaxMsg: depth, MsgSize: ReplyMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return name, q
}

// waitGoroutines waits until no more goroutines run than at baseline.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("goroutines to return to %d", baseline), func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestStalledStreamDoesNotHoldUpOthers: a client that asks for a reply in
// more parts than its reply queue holds (max_parts) and takes none costs
// the server nothing: other clients are answered while the server still
// waits for room in its queue. Before, the server waited there, up to
// ReplyStallTimeout a part, before it received the next request: a
// permitted sender could keep every 'edgeipc ctl' waiting, 2 s a request.
// The stalled client still gets the parts that fit, in order, and the
// reply is given up after ReplyStallTimeout (counted in reply_failures).
func TestStalledStreamDoesNotHoldUpOthers(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newFake()
	h.rings = typicalRings(3000) // some 60 parts of 8192 bytes
	s, stop := serveUntil(t, h, ServerOptions{})
	c := dial(t, s.Name())

	stalled, sq := stalledReplyQueue(t, ReplyMaxMsg)
	sendRaw(t, s.Name(), &Request{ID: 8, Cmd: "rings", Reply: stalled, MaxParts: MaxReplyParts})
	waitFor(t, "the stalled reply queue to fill", func() bool { a, _ := sq.Attr(); return a.CurMsgs == ReplyMaxMsg })

	// The server now waits for room in the stalled queue. A status asked
	// meanwhile is answered before it gives up, so it counts no failure.
	start := time.Now()
	r := call(t, c, "status")
	t.Logf("status answered in %v while a reply stalled (ReplyStallTimeout %v)", time.Since(start), ReplyStallTimeout)
	if !r.OK || r.Status.ReplyFailures != 0 {
		t.Fatalf("status while a client stalls its reply: %+v (reply_failures %d), want it answered before the server gives up on that client", r, r.Status.ReplyFailures)
	}
	// A long reply to a client that takes its parts is sent meanwhile too.
	if r := call(t, c, "rings"); !r.OK || len(r.Rings) != len(h.rings) || r.Rings[len(r.Rings)-1] != h.rings[len(h.rings)-1] {
		t.Fatalf("rings while a client stalls its reply: ok %v, %d rows, error %q", r.OK, len(r.Rings), r.Error)
	}

	// The stalled client: given up after ReplyStallTimeout, with the
	// first parts of its reply, in order, in its queue.
	waitFor(t, "the stalled reply to be given up", func() bool { return s.ReplyFailures() == 1 })
	buf := make([]byte, sq.MsgSize())
	var rows []RingStat
	for i := 0; i < ReplyMaxMsg; i++ {
		n, _, err := sq.TryReceive(buf)
		if err != nil {
			t.Fatalf("part %d of the stalled reply: %v", i, err)
		}
		var p Reply
		if _, err := p.UnmarshalMsg(buf[:n]); err != nil || p.ID != 8 || !p.OK || !p.More {
			t.Fatalf("part %d of the stalled reply: %+v, %v", i, p, err)
		}
		rows = append(rows, p.Rings...)
	}
	for i := range rows {
		if rows[i] != h.rings[i] {
			t.Fatalf("stalled reply row %d: got %+v, want %+v", i, rows[i], h.rings[i])
		}
	}
	if r := call(t, c, "status"); !r.OK || r.Status.ReplyFailures != 1 {
		t.Fatalf("status after the stalled reply was given up: %+v, want reply_failures 1", r)
	}
	stop()
	waitGoroutines(t, baseline)
}

// TestCloseCutsStalledStream: Close, called while Serve runs (as the
// runtime calls it), does not leave a stalled reply behind: the reply is
// given up (counted) before Close returns, and no goroutine of the server
// outlives it. Before, the reply went on stalling the Serve goroutine for
// ReplyStallTimeout after Close had returned.
func TestCloseCutsStalledStream(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newFake()
	h.rings = typicalRings(3000)
	s, err := NewServer(h, ServerOptions{Queue: testQueue(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	stalled, sq := stalledReplyQueue(t, 1)
	sendRaw(t, s.Name(), &Request{ID: 9, Cmd: "rings", Reply: stalled, MaxParts: MaxReplyParts})
	waitFor(t, "the stalled reply queue to fill", func() bool { a, _ := sq.Attr(); return a.CurMsgs == 1 })
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := s.ReplyFailures(); got != 1 {
		t.Errorf("when Close returned, %d reply failures, want the stalled reply given up (1)", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve did not return after Close")
	}
	waitGoroutines(t, baseline)
}

// TestStreamsBounded: however many clients stall their replies, the
// server streams at most MaxStreams replies at a time, each with one
// goroutine; a streamed reply beyond that gets an error reply (CodeBusy)
// at once, and is counted. Replies that fit their queue are not
// concerned, and a stream slot is free again once a stalled reply has
// been given up.
func TestStreamsBounded(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newFake()
	h.rings = typicalRings(3000)
	s, stop := serveUntil(t, h, ServerOptions{})
	c := dial(t, s.Name())

	id := uint64(100)
	for i := 0; i < MaxStreams; i++ {
		stalled, sq := stalledReplyQueue(t, 1)
		id++
		sendRaw(t, s.Name(), &Request{ID: id, Cmd: "rings", Reply: stalled, MaxParts: MaxReplyParts})
		waitFor(t, "a stalled reply queue to fill", func() bool { a, _ := sq.Attr(); return a.CurMsgs == 1 })
	}
	const extra = 2 * MaxStreams
	buf := make([]byte, ReplyMsgSize)
	for i := 0; i < extra; i++ {
		busy, bq := stalledReplyQueue(t, 1)
		id++
		sendRaw(t, s.Name(), &Request{ID: id, Cmd: "rings", Reply: busy, MaxParts: MaxReplyParts})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, _, err := bq.Receive(ctx, buf)
		cancel()
		if err != nil {
			t.Fatalf("reply %d beyond the %d streams: %v", i, MaxStreams, err)
		}
		var r Reply
		if _, err := r.UnmarshalMsg(buf[:n]); err != nil || r.ID != id || r.OK || r.More || r.Code != CodeBusy {
			t.Fatalf("reply %d beyond the %d streams: %+v, %v; want one error reply, code %q", i, MaxStreams, r, err, CodeBusy)
		}
		if i == 0 {
			t.Logf("error reply: %s", r.Error)
		}
	}
	if n := runtime.NumGoroutine(); n > baseline+1+MaxStreams+1 {
		t.Errorf("%d goroutines with %d replies stalled and %d refused, baseline %d: want at most Serve's and one a stream (and one of slack)", n, MaxStreams, extra, baseline)
	}
	// Replies that fit are sent as ever; the refused ones are counted.
	if r := call(t, c, "status"); !r.OK || r.Status.ReplyFailures != extra {
		t.Fatalf("status with %d replies stalled: %+v, want reply_failures %d", MaxStreams, r, extra)
	}
	// Once the stalled replies are given up, long replies stream again.
	waitFor(t, "the stalled replies to be given up", func() bool { return s.ReplyFailures() == extra+MaxStreams })
	if r := call(t, c, "rings"); !r.OK || len(r.Rings) != len(h.rings) {
		t.Fatalf("rings after the stalled replies were given up: ok %v, %d rows, error %q", r.OK, len(r.Rings), r.Error)
	}
	stop()
	waitGoroutines(t, baseline)
}

// TestSlowStreamIsBounded: a client that takes a part of its streamed
// reply just before each ReplyStallTimeout ran out held a stream slot, and
// the reply's memory, for up to MaxReplyParts times ReplyStallTimeout
// (34 minutes); MaxStreams such clients left every other long reply
// answered "busy" all that time. Now the whole reply must be taken within
// ReplyStallTimeout plus ReplyPartTime a part: this client takes a part a
// second, well within the per-part bound, and is given up once the whole
// reply's time has passed, with the parts it took in order.
func TestSlowStreamIsBounded(t *testing.T) {
	baseline := runtime.NumGoroutine()
	h := newFake()
	h.rings = typicalRings(3000) // some 60 parts: 2.6 s for the whole reply
	var logMu sync.Mutex
	var logs []string
	s, stop := serveUntil(t, h, ServerOptions{Logf: func(f string, a ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		logMu.Unlock()
		t.Logf(f, a...)
	}})
	slow, sq := stalledReplyQueue(t, 1)
	sendRaw(t, s.Name(), &Request{ID: 11, Cmd: "rings", Reply: slow, MaxParts: MaxReplyParts})
	start := time.Now()
	buf := make([]byte, sq.MsgSize())
	var rows []RingStat
	parts := 0
	for s.ReplyFailures() == 0 {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("after %v and %d parts taken a second apart the reply goes on; want it given up after ReplyStallTimeout and %v a part", time.Since(start), parts, ReplyPartTime)
		}
		time.Sleep(time.Second)
		n, _, err := sq.TryReceive(buf)
		if err == mq.ErrWouldBlock {
			continue // given up meanwhile, or the part is being sent
		}
		if err != nil {
			t.Fatal(err)
		}
		var p Reply
		if _, err := p.UnmarshalMsg(buf[:n]); err != nil || p.ID != 11 || !p.OK || !p.More {
			t.Fatalf("part %d of the slow reply: %+v, %v", parts, p, err)
		}
		parts++
		rows = append(rows, p.Rings...)
	}
	t.Logf("given up after %v, %d parts taken", time.Since(start), parts)
	if len(rows) == 0 || len(rows) >= len(h.rings) {
		t.Fatalf("%d of %d rows taken before the reply was given up", len(rows), len(h.rings))
	}
	for i := range rows {
		if rows[i] != h.rings[i] {
			t.Fatalf("slow reply row %d: got %+v, want %+v", i, rows[i], h.rings[i])
		}
	}
	stop()
	waitGoroutines(t, baseline)
	logMu.Lock()
	defer logMu.Unlock()
	for _, l := range logs {
		if strings.Contains(l, "slower than a whole reply may take") {
			return
		}
	}
	t.Errorf("log %q: want the reply's end explained", logs)
}
