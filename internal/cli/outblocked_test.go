package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// writingToPipe reports whether a thread of pid sleeps writing to a pipe.
func writingToPipe(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, f := range tasks {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "pipe") {
			return true
		}
	}
	return false
}

// fillPipe writes into the empty pipe pw until it is full: 4 KB at a
// time, then a byte at a time, until the write would block (Go's pipes
// are non-blocking until their descriptor is handed to a child).
func fillPipe(t *testing.T, pw *os.File) {
	t.Helper()
	rc, err := pw.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for _, chunk := range []int{4096, 1} {
			b := make([]byte, chunk)
			for werr == nil {
				_, werr = syscall.Write(int(fd), b)
			}
			if werr != syscall.EAGAIN {
				return true
			}
			werr = nil
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		t.Fatal("fill the pipe:", err)
	}
}

// stalledChild is a child process whose stdout is a pipe that nobody
// reads (a stalled consumer).
type stalledChild struct {
	cmd  *exec.Cmd
	errb bytes.Buffer // its stderr
	done chan error   // cmd.Wait's result
	what string       // its arguments
}

// startStalled starts the command line args in a child (cliCmd) whose
// stdout is a pipe that nobody reads. With full, the pipe is full before
// the child starts, so that its first write blocks however little it
// prints. The test's cleanup kills a child still running (a test that
// failed before interrupt).
func startStalled(t *testing.T, dir string, full bool, args ...string) *stalledChild {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() }) // pw: if the test fails before Start
	if full {
		fillPipe(t, pw)
	}
	c := &stalledChild{cmd: cliCmd(t, dir, args...), done: make(chan error, 1), what: strings.Join(args, " ")}
	c.cmd.Stdout, c.cmd.Stderr = pw, &c.errb
	err = c.cmd.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-c.done:
			c.done <- err
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// interrupt waits until the child is blocked writing to its stdout, sends
// it sig and returns its exit code. It fails the test if the child exits
// before it blocks; one that does not exit within testTimeout of the
// signal is killed, and fails the test too.
func (c *stalledChild) interrupt(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !writingToPipe(c.cmd.Process.Pid); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("%s exited (%v) before its output blocked: it printed too little to fill the pipe; stderr %q", c.what, err, c.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not block writing to the full pipe within %v", c.what, testTimeout)
		}
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		return 0
	case <-time.After(testTimeout):
		c.cmd.Process.Kill()
		c.done <- <-c.done
		t.Errorf("%s did not exit within %v of %v while its output was blocked: killed", c.what, testTimeout, sig)
		return -1
	}
}

// manyRingsFake is a runtime with n rings of long names: 'ctl rings'
// prints more than a pipe holds.
type manyRingsFake struct {
	ctlFake
	n int
}

func (f *manyRingsFake) Rings() []control.RingStat {
	rs := make([]control.RingStat, f.n)
	for i := range rs {
		rs[i] = control.RingStat{Name: fmt.Sprintf("a-ring-with-a-rather-long-name-%05d", i), Slots: 64, SlotPayload: 4096,
			Policy: "overwrite", Frames: 123456789, Bytes: 1 << 40, RateHz: 30, BytesPerS: 1e6, Readers: 3, State: "ok"}
	}
	return rs
}

// TestOutputBlockedInterrupted: every command, not only sub and hz, ends
// with exit 130 on SIGINT or SIGTERM while its stdout is a full pipe that
// nobody reads, and releases what it holds (ctl its reply queue). Only
// sub and hz wrote through a writer that gives up on the signal; the
// others (ring ls, inspect and rm, ctl, help, version, run
// --print-default, bench) sat in write(2), ignoring the signals they had
// caught, until killed.
func TestOutputBlockedInterrupted(t *testing.T) {
	dir := t.TempDir()
	// 'ring ls --json' of 300 rings prints about 150 KB.
	var inspect string
	for i := range 300 {
		name := fmt.Sprintf("blocked-ls-%03d", i)
		r, err := shm.Create(name, shm.Config{Slots: 2, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		inspect = name
	}
	for _, c := range []struct {
		full bool
		sig  syscall.Signal
		args []string
	}{
		{false, syscall.SIGINT, []string{"ring", "ls", "--json"}},
		{true, syscall.SIGTERM, []string{"ring", "ls"}}, // 30 KB
		{true, syscall.SIGINT, []string{"ring", "inspect", inspect, "--json"}},
		{true, syscall.SIGINT, []string{"help"}},
		{true, syscall.SIGTERM, []string{"help", "ring", "create"}},
		{true, syscall.SIGINT, []string{"version"}},
		{true, syscall.SIGINT, []string{"run", "--print-default"}},
		{true, syscall.SIGTERM, []string{"bench", "--case", "pipe", "--duration", "10m", "--no-c"}}, // its header blocks
	} {
		child := startStalled(t, dir, c.full, c.args...)
		if code := child.interrupt(t, c.sig); code != ExitInterrupted {
			t.Errorf("%s, %v while its output is blocked: exit %d, stderr %q; want %d", child.what, c.sig, code, child.errb.String(), ExitInterrupted)
		}
	}

	// ring rm stops at the interrupt: before, its "removed" lines failed
	// (or blocked) and it went on removing, silently, every ring named.
	child := startStalled(t, dir, true, "ring", "rm", "blocked-ls-000", "blocked-ls-001", "blocked-ls-002")
	if code := child.interrupt(t, syscall.SIGINT); code != ExitInterrupted {
		t.Errorf("%s, SIGINT while its output is blocked: exit %d, stderr %q; want %d", child.what, code, child.errb.String(), ExitInterrupted)
	}
	for _, name := range []string{"blocked-ls-001", "blocked-ls-002"} {
		if _, err := os.Stat(filepath.Join(dir, "edgeipc."+name)); err != nil {
			t.Errorf("%s, interrupted at its first line: %s: %v; want it kept", child.what, name, err)
		}
	}

	// ctl rings, with a real control server (its core a fake with 1000
	// rings: about 100 KB of table) behind a queue of the test's that
	// passes the request on, so that the test knows ctl's reply queue.
	srv, err := control.NewServer(&manyRingsFake{ctlFake{state: map[string]string{}}, 1000}, control.ServerOptions{Queue: ctlQueue(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { srv.Serve(ctx); close(served) }()
	defer func() { cancel(); <-served; srv.Close() }()
	q := ctlQueue(t)
	sq := fakeRuntimeQueue(t, q)
	for _, args := range [][]string{{"rings"}, {"--json", "rings"}} {
		child := startStalled(t, dir, false, append([]string{"ctl", "--queue", q, "--timeout", "1m"}, args...)...)
		rctx, rcancel := context.WithTimeout(ctx, testTimeout)
		msg := make([]byte, sq.MsgSize())
		n, _, err := sq.Receive(rctx, msg)
		rcancel()
		if err != nil {
			t.Fatalf("no request from %s: %v", child.what, err) // the cleanup kills it
		}
		msg = msg[:n]
		var req control.Request
		if _, err := req.UnmarshalMsg(msg); err != nil || req.Cmd != "rings" {
			t.Fatalf("request %+v: %v", req, err)
		}
		fwd, err := mq.Open(srv.Name(), os.O_WRONLY)
		if err != nil {
			t.Fatal(err)
		}
		err = fwd.Send(ctx, msg, 0)
		fwd.Close()
		if err != nil {
			t.Fatal(err)
		}
		if code := child.interrupt(t, syscall.SIGINT); code != ExitInterrupted {
			t.Errorf("%s, SIGINT while its output is blocked: exit %d, stderr %q; want %d", child.what, code, child.errb.String(), ExitInterrupted)
		}
		checkReplyQueueGone(t, req.Reply, "interrupted while its output was blocked")
	}
	// A hang-up once the reply is in ends ctl as it ends other tools
	// (killed by SIGHUP), also while its output is blocked: it had caught
	// SIGHUP for the wait, and ignored it from then on.
	child = startStalled(t, dir, false, "ctl", "--queue", srv.Name(), "--timeout", "1m", "rings")
	child.interrupt(t, syscall.SIGHUP)
	if ws, ok := child.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Errorf("%s, SIGHUP while its output is blocked: %v, stderr %q; want killed by SIGHUP", child.what, child.cmd.ProcessState, child.errb.String())
	}
}
