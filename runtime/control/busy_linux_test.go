package control

import (
	"context"
	"strings"
	"testing"
	"time"
)

// blockingHandler's StopSource blocks until released, as a stop of an exec
// child that ignores SIGTERM does for its stop_timeout.
type blockingHandler struct {
	*fakeHandler
	entered chan struct{}
	release chan struct{}
}

func (b *blockingHandler) StopSource(n string) error {
	close(b.entered)
	<-b.release
	return b.fakeHandler.StopSource(n)
}

// A live server that is busy with a long request (a stop waits up to the
// source's stop_timeout, up to a minute) does not answer a ping within the
// takeover timeout. A second server must still not take its queue over:
// that would leave the first runtime unreachable and let the second start
// the same sources again.
func TestNoTakeoverOfBusyServer(t *testing.T) {
	h := &blockingHandler{fakeHandler: newFake(), entered: make(chan struct{}), release: make(chan struct{})}
	s := startServer(t, h, ServerOptions{})
	c := dial(t, s.Name())
	done := make(chan *Reply, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := c.Call(ctx, "stop", "cam0")
		if err != nil {
			t.Errorf("stop: %v", err)
		}
		done <- r
	}()
	<-h.entered
	s2, err := NewServer(newFake(), ServerOptions{Queue: s.Name(), TakeoverTimeout: 200 * time.Millisecond})
	if err == nil {
		s2.Close()
		close(h.release)
		<-done
		t.Fatal("a second server took over the queue of a live server busy with a request")
	}
	if !strings.Contains(err.Error(), "another runtime is serving") {
		t.Errorf("second NewServer: %v", err)
	}
	close(h.release)
	if r := <-done; r == nil || !r.OK {
		t.Fatalf("stop: %+v", r)
	}
	if r := call(t, dial(t, s.Name()), "ping"); !r.OK {
		t.Fatalf("first server lost its queue: %+v", r)
	}
}
