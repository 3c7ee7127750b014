package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/runtime"
	"github.com/edgeipc/edgeipc/runtime/control"
)

// ctlFake stands in for the runtime core behind a real control.Server.
type ctlFake struct {
	mu      sync.Mutex
	state   map[string]string
	reloads int
}

func (f *ctlFake) Status() control.StatusInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return control.StatusInfo{Version: "v-test", PID: os.Getpid(), StartedUnixNs: time.Now().UnixNano(), UptimeS: 61, Rings: 1, Sources: 1, Reloads: f.reloads}
}
func (f *ctlFake) Rings() []control.RingStat {
	return []control.RingStat{
		{Name: "video", Slots: 64, SlotPayload: 65536, Policy: "overwrite", Frames: 900, Bytes: 9e6, RateHz: 30, BytesPerS: 3e5, Readers: 2, MaxLag: 4, Lost: 17, Torn: 3, State: "ok"},
		{Name: "imu", Slots: 256, SlotPayload: 64, Policy: "block", State: "missing", LastError: "no room; next attempt in 4s"},
	}
}
func (f *ctlFake) Sources() []control.SourceStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []control.SourceStat{{Name: "cam0", Kind: "exec", Ring: "video", State: f.state["cam0"], PID: 777, Restarts: 2, LastExit: "exit status 1", Frames: 900, Dropped: 4242}}
}
func (f *ctlFake) Sinks() []control.SinkStat {
	return []control.SinkStat{
		{Name: "rec", Kind: "recorder", Ring: "video", State: "backoff", Path: "/data/video.rec", Frames: 880, Bytes: 8.8e6, Lost: 5, Skipped: 6, Restarts: 3, LastError: "recorder: open /data/video.rec: no such file or directory"},
		{Name: "stats:video", Kind: "stats", Ring: "video", Implicit: true, State: "running", Frames: 900, Bytes: 9e6, Lost: 1},
	}
}
func (f *ctlFake) setState(name, st string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.state[name]; !ok {
		return fmt.Errorf("source %q: %w", name, control.ErrNotFound)
	}
	f.state[name] = st
	return nil
}
func (f *ctlFake) StartSource(n string) error   { return f.setState(n, "running") }
func (f *ctlFake) StopSource(n string) error    { return f.setState(n, "stopped") }
func (f *ctlFake) RestartSource(n string) error { return f.setState(n, "running") }
func (f *ctlFake) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return nil
}

var ctlSeq atomic.Int64

func ctlQueue(t *testing.T) string {
	name := fmt.Sprintf("edgeipc.clitest.%d.%d", os.Getpid(), ctlSeq.Add(1))
	t.Cleanup(func() { mq.Unlink(name) })
	return name
}

// fakeRuntimeQueue creates the request queue q as a runtime does, with
// its lock held: ctl takes a queue whose lock nobody holds for one left
// over from a runtime that has exited, and waits only a second for it.
func fakeRuntimeQueue(t *testing.T, q string) *mq.Queue {
	t.Helper()
	sq, err := mq.Create(q, mq.Options{MaxMsg: 2, MsgSize: control.RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	if ok, err := sq.TryLock(); !ok || err != nil {
		t.Fatalf("lock %s: %v, %v", q, ok, err)
	}
	return sq
}

func startCtlServer(t *testing.T) (string, *ctlFake) {
	t.Helper()
	f := &ctlFake{state: map[string]string{"cam0": "running"}}
	s, err := control.NewServer(f, control.ServerOptions{Queue: ctlQueue(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
		s.Close()
	})
	return s.Name(), f
}

func ctlRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = MainEnv(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e}, args)
	return code, o.String(), e.String()
}

func TestCtlText(t *testing.T) {
	q, f := startCtlServer(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status"}, []string{"version", "v-test", "uptime", "1m1s", "(built-in default)", "requests"}},
		{[]string{"rings"}, []string{"NAME", "MAXLAG", "LOST", "TORN", "STATE", "video", "overwrite", "30.0", "17", "ok", "imu missing: no room; next attempt in 4s"}},
		{[]string{"sources"}, []string{"RESTARTS", "LAST EXIT", "DROPPED", "cam0", "exec", "777", "exit status 1", "4242"}},
		{[]string{"sinks"}, []string{"NAME", "KIND", "STATE", "LOST", "SKIPPED", "RESTARTS", "PATH", "LAST ERROR", "rec", "recorder", "backoff", "/data/video.rec",
			"no such file or directory", "stats:video", "stats (implicit)", "8800000"}},
		{[]string{"stop", "cam0"}, []string{"stop cam0: ok"}},
		{[]string{"start", "cam0"}, []string{"start cam0: ok"}},
		{[]string{"restart", "cam0"}, []string{"restart cam0: ok"}},
		{[]string{"reload"}, []string{"reload: ok"}},
		{[]string{"ping"}, []string{"ok"}},
	} {
		code, out, errs := ctlRun(t, append([]string{"ctl", "--queue", q}, tc.args...)...)
		if code != 0 {
			t.Fatalf("ctl %v: exit %d, stderr %q", tc.args, code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("ctl %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	// ring names read left-aligned, as in the other tables (the numbers
	// right-aligned): every row starts with its name.
	_, out, _ := ctlRun(t, "ctl", "--queue", q, "rings")
	starts := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(l, f[0]) {
			starts[f[0]] = true
		}
	}
	if !starts["NAME"] || !starts["imu"] || !starts["video"] {
		t.Errorf("ctl rings: the NAME column is not left-aligned:\n%s", out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reloads != 1 || f.state["cam0"] != "running" {
		t.Fatalf("reloads = %d, cam0 %s", f.reloads, f.state["cam0"])
	}
}

func TestCtlJSON(t *testing.T) {
	q, _ := startCtlServer(t)
	t.Setenv(control.EnvQueue, q) // and no --queue: the variable names it

	code, out, errs := ctlRun(t, "ctl", "--json", "status")
	var st control.StatusInfo
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "v-test" || st.Requests != 1 {
		t.Fatalf("status --json: exit %d %q %q → %+v", code, out, errs, st)
	}
	code, out, _ = ctlRun(t, "ctl", "--json", "rings")
	var rings []control.RingStat
	if code != 0 || json.Unmarshal([]byte(out), &rings) != nil || len(rings) != 2 || rings[0].Lost != 17 || rings[0].MaxLag != 4 || rings[1].State != "missing" || rings[1].LastError == "" {
		t.Fatalf("rings --json: exit %d %q", code, out)
	}
	code, out, _ = ctlRun(t, "ctl", "--json", "stop", "cam0")
	code2, out2, _ := ctlRun(t, "ctl", "--json", "sources")
	var srcs []control.SourceStat
	if code != 0 || !strings.Contains(out, `"ok": true`) || code2 != 0 || json.Unmarshal([]byte(out2), &srcs) != nil || len(srcs) != 1 || srcs[0].State != "stopped" {
		t.Fatalf("stop/sources --json: %d %q, %d %q", code, out, code2, out2)
	}
	code, out, errs = ctlRun(t, "ctl", "sinks", "--json")
	var sinks []control.SinkStat
	if code != 0 || json.Unmarshal([]byte(out), &sinks) != nil || len(sinks) != 2 || sinks[0].State != "backoff" || sinks[0].Restarts != 3 ||
		sinks[0].Path != "/data/video.rec" || !sinks[1].Implicit || !strings.Contains(out, `"last_error": "recorder: open`) || !strings.Contains(out, `"skipped": 6`) {
		t.Fatalf("sinks --json: exit %d %q %q", code, out, errs)
	}
	// Flags after the command work as with every other command.
	code, out, errs = ctlRun(t, "ctl", "status", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Version != "v-test" {
		t.Fatalf("status --json (flag after the command): exit %d %q %q", code, out, errs)
	}
	code, out, errs = ctlRun(t, "ctl", "start", "cam0", "--json", "--timeout", "5s")
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("start cam0 --json --timeout 5s: exit %d %q %q", code, out, errs)
	}
	// An error reply is printed as JSON too, and exits 1.
	code, out, errs = ctlRun(t, "ctl", "--json", "restart", "nosuch")
	var r control.Reply
	if code != 1 || json.Unmarshal([]byte(out), &r) != nil || r.OK || r.Code != control.CodeNotFound || !strings.Contains(errs, "not found") {
		t.Fatalf("restart nosuch --json: exit %d %q %q", code, out, errs)
	}
}

func TestCtlErrors(t *testing.T) {
	q, _ := startCtlServer(t)
	code, _, errs := ctlRun(t, "ctl", "--queue", q, "restart", "nosuch")
	if code != 1 || !strings.Contains(errs, `source "nosuch": control: not found`) || !strings.Contains(errs, "list them with 'edgeipc ctl sources'") {
		t.Fatalf("unknown source: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{
		{"ctl"},
		{"ctl", "frobnicate"},
		{"ctl", "restart"},
		{"ctl", "status", "extra"},
		{"ctl", "sinks", "rec"},
		{"ctl", "--timeout", "0s", "status"},
		{"ctl", "--bogus", "status"},
		{"ctl", "status", "--bogus"},
		{"ctl", "status", "--timeout", "0s"},
		// A queue name the kernel refuses is a bad flag, not a failure.
		{"ctl", "--queue", "/edgeipc.ctl", "ping"},
		{"ctl", "--queue", "..", "ping"},
		// No source has a name that long (config: at most 200 bytes),
		// and 8 KiB would not fit the request queue's messages.
		{"ctl", "--queue", q, "restart", strings.Repeat("n", 201)},
		{"ctl", "--queue", q, "stop", strings.Repeat("n", 8192)},
	} {
		if code, _, errs := ctlRun(t, args...); code != 2 || !strings.Contains(errs, "usage: edgeipc ctl") {
			t.Errorf("%v: exit %d, stderr %q; want 2 with usage", args, code, errs)
		}
	}
	// ... and its message is one line that names the flag and the rule
	// (it was mq_open's, over two lines, exit 1).
	if _, _, errs := ctlRun(t, "ctl", "--queue", "/edgeipc.ctl", "ping"); !strings.HasPrefix(errs, `edgeipc ctl: bad --queue "/edgeipc.ctl": invalid POSIX message queue name: name may not contain '/' (give it without the leading slash`) {
		t.Errorf("ctl --queue /edgeipc.ctl: stderr %q", errs)
	}
}

func TestCtlNoRuntime(t *testing.T) {
	q := ctlQueue(t)
	code, _, errs := ctlRun(t, "ctl", "--queue", q, "status")
	want := "no runtime is listening on /dev/mqueue/" + q + ": start it with 'edgeipc run'"
	if code != 1 || !strings.Contains(errs, want) {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
	// The message says where the queue name came from, and how to make
	// ctl and the runtime agree on it.
	if !strings.Contains(errs, "came from --queue") || !strings.Contains(errs, `[control] queue = "`+q+`"`) {
		t.Errorf("--queue: stderr %q does not say the name came from --queue", errs)
	}
	t.Setenv(control.EnvQueue, q)
	code, _, errs = ctlRun(t, "ctl", "status")
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "came from $"+control.EnvQueue) {
		t.Errorf("$%s: exit %d, stderr %q", control.EnvQueue, code, errs)
	}
	t.Setenv(control.EnvQueue, "")
	if dq, err := mq.Open(control.DefaultQueue, os.O_WRONLY); err == nil {
		dq.Close()
		t.Log("a runtime serves the default queue here: not checking its message")
	} else {
		code, _, errs = ctlRun(t, "ctl", "status")
		if code != 1 || !strings.Contains(errs, "default queue") || !strings.Contains(errs, "--queue NAME or set "+control.EnvQueue) {
			t.Errorf("default queue: exit %d, stderr %q", code, errs)
		}
	}
	// A queue left over from a runtime that was killed (nobody holds its
	// lock): ctl says so after a second and names the fix, exit 1. It
	// used to wait for the whole --timeout (90 s for a stop) and then say
	// that the runtime might be busy.
	stale, err := mq.Create(q, mq.Options{MaxMsg: 2, MsgSize: control.RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = ctlRun(t, "ctl", "--queue", q, "stop", "cam0")
	stale.Close()
	mq.Unlink(q)
	if code != 1 || !strings.Contains(errs, "no runtime is listening on /dev/mqueue/"+q+": the queue is left over from a runtime that has exited") ||
		!strings.Contains(errs, "start it with 'edgeipc run', which takes the queue over") || strings.Contains(errs, "may be busy") {
		t.Fatalf("queue left by a dead runtime: exit %d, stderr %q", code, errs)
	}
	// A queue held by a runtime that does not answer in time: it may be
	// slow, not gone, and the message says both, and how to wait longer.
	fakeRuntimeQueue(t, q)
	code, _, errs = ctlRun(t, "ctl", "--queue", q, "--timeout", "100ms", "status")
	if code != 1 || !strings.Contains(errs, "no reply") || !strings.Contains(errs, "may be busy") ||
		!strings.Contains(errs, "waited 100ms; raise --timeout") || strings.Contains(errs, "no runtime is listening") {
		t.Fatalf("unserved queue: exit %d, stderr %q", code, errs)
	}
}

// TestCtlInterrupted sends SIGINT to a ctl process waiting for a reply
// from a queue that nobody serves: it exits 130, as its help says.
func TestCtlInterrupted(t *testing.T) {
	q := ctlQueue(t)
	sq := fakeRuntimeQueue(t, q)
	cmd := cliCmd(t, t.TempDir(), "ctl", "--queue", q, "status", "--timeout", "1m")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once its request is in the queue, ctl waits for the reply.
	req := receiveRequest(t, sq, cmd, &errb, "status")
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitCmd(t, cmd); code != ExitInterrupted {
		t.Fatalf("ctl after SIGINT: exit %d, want %d; stderr %q", code, ExitInterrupted, errb.String())
	}
	// It removed its reply queue on the way out.
	checkReplyQueueGone(t, req.Reply, "after SIGINT")
}

// TestCtlHangUp: a ctl whose terminal or ssh session goes away while it
// waits (up to 90 s for a stop) gets SIGHUP. It exits as when interrupted
// and removes its reply queue. Before the fix SIGHUP killed it and the
// queue stayed (81 KB of the user's RLIMIT_MSGQUEUE each), removed by a
// later ctl only where /dev/mqueue is mounted.
func TestCtlHangUp(t *testing.T) {
	q := ctlQueue(t)
	sq := fakeRuntimeQueue(t, q)
	cmd := cliCmd(t, t.TempDir(), "ctl", "--queue", q, "stop", "cam0")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	req := receiveRequest(t, sq, cmd, &errb, "stop")
	cmd.Process.Signal(syscall.SIGHUP)
	if code := waitCmd(t, cmd); code != ExitInterrupted {
		t.Errorf("ctl after SIGHUP: exit %d, want %d; stderr %q", code, ExitInterrupted, errb.String())
	}
	checkReplyQueueGone(t, req.Reply, "after SIGHUP")
}

func TestCtlHelp(t *testing.T) {
	code, out, _ := ctlRun(t, "help", "ctl")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range append(append([]string{}, control.Commands...), "edgeipc ctl restart cam0", "--json", "--timeout", "EDGEIPC_CTL_QUEUE", "130 interrupted") {
		if !strings.Contains(out, w) {
			t.Errorf("help ctl lacks %q", w)
		}
	}
	if _, top, _ := ctlRun(t, "help"); !strings.Contains(top, "ctl") {
		t.Error("top help does not list ctl")
	}
}

// `edgeipc ctl stop` with its default timeout gets the answer for a child
// that ignores SIGTERM: the runtime answers after the default stop_timeout
// (3s), which used to be longer than ctl's 2s, so ctl reported a runtime
// that did not answer.
func TestCtlStopStubbornChild(t *testing.T) {
	dir := t.TempDir()
	q := ctlQueue(t)
	script := filepath.Join(dir, "stubborn.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntrap '' TERM\necho ready >&2\nwhile :; do sleep 0.1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[control]
queue = %q
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "stubborn"
kind = "exec"
ring = "r"
command = [%q]
`, q, script)), 0o600)
	errw := startRuntime(t, dir, cfg)
	for deadline := time.Now().Add(testTimeout); !strings.Contains(errw.String(), "[stubborn] ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the child never became ready; log:\n%s", errw.String())
		}
	}
	code, out, errs := ctlRun(t, "ctl", "--queue", q, "stop", "stubborn")
	if code != 0 || !strings.Contains(out, "stop stubborn: ok") {
		t.Fatalf("ctl stop: exit %d, stdout %q, stderr %q; log:\n%s", code, out, errs, errw.String())
	}
	if !strings.Contains(errw.String(), "ignored SIGTERM for 3s; sending SIGKILL") {
		t.Fatalf("the child did not need SIGKILL, so the test proved nothing; log:\n%s", errw.String())
	}
}

// TestCtlClosedStdout: ctl removes its reply queue before it writes the
// reply, so that a reader that has gone (`edgeipc ctl sources | head -1`,
// SIGPIPE) does not leave the queue behind ("a private queue ... that ctl
// creates and removes", help ctl).
func TestCtlClosedStdout(t *testing.T) {
	q := ctlQueue(t)
	sq := fakeRuntimeQueue(t, q)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close() // the reader has gone: a write to pw raises SIGPIPE
	defer pw.Close()
	cmd := cliCmd(t, t.TempDir(), "ctl", "--queue", q, "status")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	req := receiveRequest(t, sq, cmd, &errb, "status")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rq, err := mq.Open(req.Reply, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := (&control.Reply{ID: req.ID, OK: true, Status: &control.StatusInfo{Version: "v-test"}}).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = rq.Send(ctx, msg, 0)
	rq.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, cmd); code == 0 {
		t.Fatalf("ctl with a closed stdout: exit 0; stderr %q", errb.String())
	}
	checkReplyQueueGone(t, req.Reply, "when its stdout was closed")
}

// receiveRequest takes the request a ctl process started with cmd sent to
// the fake runtime's queue sq and checks that it is cmdName.
func receiveRequest(t *testing.T, sq *mq.Queue, cmd *exec.Cmd, errb *bytes.Buffer, cmdName string) control.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	buf := make([]byte, sq.MsgSize())
	n, _, err := sq.Receive(ctx, buf)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no request from ctl: %v; stderr %q", err, errb.String())
	}
	var req control.Request
	if _, err := req.UnmarshalMsg(buf[:n]); err != nil || req.Cmd != cmdName {
		t.Fatalf("request %+v: %v", req, err)
	}
	return req
}

// checkReplyQueueGone fails the test if ctl left its reply queue behind.
func checkReplyQueueGone(t *testing.T, reply, when string) {
	t.Helper()
	if rq, err := mq.Open(reply, os.O_RDONLY); err == nil {
		rq.Close()
		mq.Unlink(reply)
		t.Errorf("ctl left its reply queue %s %s", reply, when)
	} else if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open ctl's reply queue %s: %v, want ENOENT", reply, err)
	}
}

// `edgeipc ctl sinks` against a real `edgeipc run`: a recorder, a declared
// stats sink and an implicit stats:RING reader, with frames counting up,
// and a recorder whose directory is missing in backoff (its error and
// restarts shown) that runs again once the directory exists.
func TestCtlSinksRealRuntime(t *testing.T) {
	dir := t.TempDir()
	q := ctlQueue(t)
	rec, late := filepath.Join(dir, "rec.bin"), filepath.Join(dir, "later", "late.bin")
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[control]
queue = %q
[rings.r]
slots = 64
slot_payload = 64
[rings.idle]
slots = 4
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 8
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = %q
[[sinks]]
name = "st"
kind = "stats"
ring = "r"
[[sinks]]
name = "late"
kind = "recorder"
ring = "r"
path = %q
`, q, rec, late)), 0o600)
	errw := startRuntime(t, dir, cfg)
	sinks := func() map[string]control.SinkStat {
		t.Helper()
		code, out, errs := ctlRun(t, "ctl", "--queue", q, "--json", "sinks")
		var list []control.SinkStat
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("ctl sinks --json: exit %d, stdout %q, stderr %q; log:\n%s", code, out, errs, errw.String())
		}
		m := map[string]control.SinkStat{}
		var names []string
		for _, s := range list {
			m[s.Name] = s
			names = append(names, s.Name)
		}
		if got := strings.Join(names, ","); got != "late,rec,st,stats:idle" {
			t.Fatalf("ctl sinks --json lists %s, want late,rec,st,stats:idle", got)
		}
		return m
	}
	waitUntil := func(what string, f func(m map[string]control.SinkStat) bool) map[string]control.SinkStat {
		t.Helper()
		for deadline := time.Now().Add(testTimeout); ; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; log:\n%s", what, errw.String())
			}
			if !strings.Contains(errw.String(), "runtime ready") {
				continue
			}
			if m := sinks(); f(m) {
				return m
			}
		}
	}
	m := waitUntil("rec and st to count frames, and late to be in backoff after a restart", func(m map[string]control.SinkStat) bool {
		return m["rec"].Frames > 0 && m["st"].Frames > 0 && m["late"].State == "backoff" && m["late"].Restarts > 0
	})
	if l := m["late"]; l.Kind != "recorder" || l.Path != late || !strings.Contains(l.LastError, "no such file or directory") || l.Frames != 0 {
		t.Fatalf("late: %+v", l)
	}
	if s := m["stats:idle"]; !s.Implicit || s.Kind != "stats" || s.Ring != "idle" || s.State != "running" || m["st"].Implicit || m["rec"].Path != rec {
		t.Fatalf("sinks: %+v", m)
	}
	f0 := m["rec"].Frames
	waitUntil("rec's frames to count up", func(m map[string]control.SinkStat) bool { return m["rec"].Frames > f0 && m["rec"].State == "running" })

	code, out, errs := ctlRun(t, "ctl", "--queue", q, "sinks")
	if code != 0 {
		t.Fatalf("ctl sinks: exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "late") ||
		!strings.Contains(lines[1], "backoff") || !strings.Contains(lines[1], late) || !strings.Contains(lines[1], "no such file or directory") ||
		!strings.Contains(lines[2], rec) || !strings.Contains(lines[4], "stats (implicit)") {
		t.Fatalf("ctl sinks:\n%s", out)
	}

	if err := os.Mkdir(filepath.Dir(late), 0o700); err != nil {
		t.Fatal(err)
	}
	waitUntil("late to run again and record", func(m map[string]control.SinkStat) bool {
		return m["late"].State == "running" && m["late"].Frames > 0
	})
}

// TestCtlManyRingsRealRuntime: 'edgeipc ctl rings' and 'sinks' of a real
// 'edgeipc run' with 600 rings (and their 600 implicit stats readers)
// print every row: the tables take more messages than ctl's reply queue
// holds (10), and ctl takes the parts while the runtime sends them. Before
// the fix both exited 1 with "reply needs N messages of 8192 bytes but the
// reply queue has room for 10".
func TestCtlManyRingsRealRuntime(t *testing.T) {
	dir := t.TempDir()
	q := ctlQueue(t)
	const n = 600
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[runtime]\nstats_interval = \"0s\"\nshm_dir = %q\n[control]\nqueue = %q\n", dir, q)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "[rings.ring-with-a-longer-name-%04d]\nslots = 2\nslot_payload = 64\nremove_on_exit = true\n", i)
	}
	path := filepath.Join(dir, "many.toml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	errw := startRuntime(t, dir, path)
	for deadline := time.Now().Add(testTimeout); !strings.Contains(errw.String(), "runtime ready"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("runtime not ready; log:\n%s", errw.String())
		}
	}
	// A generous --timeout: 600 rings and their stats readers keep a
	// loaded machine (go test -race, packages in parallel) busy.
	code, out, errs := ctlRun(t, "ctl", "--queue", q, "--timeout", "1m", "--json", "rings")
	var rings []control.RingStat
	if code != 0 || json.Unmarshal([]byte(out), &rings) != nil || len(rings) != n || rings[n-1].Name != fmt.Sprintf("ring-with-a-longer-name-%04d", n-1) {
		t.Fatalf("ctl --json rings: exit %d, %d rows, stderr %q", code, len(rings), errs)
	}
	code, out, errs = ctlRun(t, "ctl", "--queue", q, "--timeout", "1m", "sinks")
	if lines := strings.Count(out, "\n"); code != 0 || lines != n+1 || !strings.Contains(out, fmt.Sprintf("stats:ring-with-a-longer-name-%04d", n-1)) {
		t.Fatalf("ctl sinks: exit %d, %d lines, stderr %q", code, lines, errs)
	}
}

// hostileFake answers like a runtime whose strings carry terminal escapes,
// newlines and tabs: what a process that created the request queue before
// the runtime (docs/control.md) can send.
type hostileFake struct{ ctlFake }

const hostile = "x\x1b]0;owned\x07\x1b[2J\nFORGED\tLINE\u202e\xff"

func (*hostileFake) Status() control.StatusInfo {
	return control.StatusInfo{Version: hostile, ConfigFile: hostile}
}
func (*hostileFake) Rings() []control.RingStat {
	return []control.RingStat{{Name: hostile, Policy: hostile, State: hostile, LastError: hostile}}
}
func (*hostileFake) Sources() []control.SourceStat {
	return []control.SourceStat{{Name: hostile, Kind: hostile, Ring: hostile, State: hostile, LastExit: hostile, LastError: hostile}}
}
func (*hostileFake) Sinks() []control.SinkStat {
	return []control.SinkStat{{Name: hostile, Kind: hostile, Ring: hostile, State: hostile, Path: hostile, LastError: hostile}}
}
func (*hostileFake) StartSource(string) error { return errors.New(hostile) }

// ctl prints the strings of a reply with control characters, characters
// that do not print and bytes that are not UTF-8 escaped: a reply comes
// from whoever owns the request queue, and its strings reached the
// terminal as they were (escape sequences retitling it, clearing it,
// lines forged in the tables).
func TestCtlEscapesReplyStrings(t *testing.T) {
	s, err := control.NewServer(&hostileFake{ctlFake{state: map[string]string{}}}, control.ServerOptions{Queue: ctlQueue(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done; s.Close() }()
	const escaped = `x\x1b]0;owned\a\x1b[2J\nFORGED\tLINE\u202e\xff`
	for _, cmd := range [][]string{{"status"}, {"rings"}, {"sources"}, {"sinks"}, {"start", "x"}} {
		code, out, errs := ctlRun(t, append([]string{"ctl", "--queue", s.Name()}, cmd...)...)
		if (cmd[0] == "start") != (code == 1) {
			t.Fatalf("ctl %v: exit %d, stderr %q", cmd, code, errs)
		}
		both := out + errs
		if strings.ContainsAny(both, "\x1b\x07\t\u202e") || strings.Contains(both, "\xff") || strings.Contains(both, "\nFORGED") {
			t.Errorf("ctl %v wrote a reply string unescaped:\n%q", cmd, both)
		}
		if !strings.Contains(both, escaped) {
			t.Errorf("ctl %v: the reply string is not shown escaped as %s:\n%q", cmd, escaped, both)
		}
	}
}

// startRuntime runs 'edgeipc run -c cfg' as a child; the test's cleanup
// stops it with SIGTERM and checks that it exits 0. Its log is returned.
func startRuntime(t *testing.T, dir, cfg string) *runLogWriter {
	t.Helper()
	cmd := cliCmd(t, dir, "run", "-c", cfg)
	errw := &runLogWriter{}
	cmd.Stderr = errw
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitCmd(t, cmd); code != 0 {
			t.Errorf("runtime exit %d; log:\n%s", code, errw.String())
		}
	})
	return errw
}

// TestCtlKilledRuntime: a real `edgeipc run` killed with SIGKILL leaves
// its control queue. `edgeipc ctl stop` (90 s timeout by default) then
// says that the queue is left over from a runtime that has exited and to
// start it, instead of waiting 90 s and saying the runtime may be busy;
// the next runtime takes the queue over and answers.
func TestCtlKilledRuntime(t *testing.T) {
	dir := t.TempDir()
	q := ctlQueue(t)
	path := filepath.Join(dir, "killed.toml")
	cfg := fmt.Sprintf("[runtime]\nstats_interval = \"0s\"\nshm_dir = %q\n[control]\nqueue = %q\n[rings.r]\nslots = 2\nslot_payload = 64\nremove_on_exit = true\n", dir, q)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := func(errw *runLogWriter) {
		t.Helper()
		for deadline := time.Now().Add(testTimeout); !strings.Contains(errw.String(), "runtime ready"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("runtime not ready; log:\n%s", errw.String())
			}
		}
	}
	cmd := cliCmd(t, dir, "run", "-c", path)
	errw := &runLogWriter{}
	cmd.Stderr = errw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready(errw)
	if code, _, errs := ctlRun(t, "ctl", "--queue", q, "--timeout", "1m", "ping"); code != 0 {
		t.Fatalf("ping: exit %d, stderr %q", code, errs)
	}
	cmd.Process.Kill()
	if code := waitCmd(t, cmd); code != -1 {
		t.Fatalf("killed runtime: exit %d", code)
	}
	code, _, errs := ctlRun(t, "ctl", "--queue", q, "stop", "src")
	if code != 1 || !strings.Contains(errs, "no runtime is listening on /dev/mqueue/"+q+": the queue is left over from a runtime that has exited") ||
		!strings.Contains(errs, "start it with 'edgeipc run'") {
		t.Fatalf("ctl stop after the runtime was killed: exit %d, stderr %q", code, errs)
	}
	ready(startRuntime(t, dir, path))
	if code, _, errs := ctlRun(t, "ctl", "--queue", q, "--timeout", "1m", "ping"); code != 0 {
		t.Fatalf("ping to the next runtime: exit %d, stderr %q", code, errs)
	}
}

// ctl's default wait outlasts the slowest answer the runtime may give: a
// reload waits its turn and stops a child with the longest stop_timeout
// (runtime.MaxReloadTime), a stop or restart only the latter. With 90 s
// for a reload, ctl said it had timed out for a reload that waited its
// turn, then stopped a child with stop_timeout = "1m", and succeeded. The
// help says the defaults as they are.
func TestCtlDefaultTimeoutOutlastsTheAnswer(t *testing.T) {
	for cmd, slowest := range map[string]time.Duration{
		"reload": runtime.MaxReloadTime, "stop": runtime.MaxStopTimeout, "restart": runtime.MaxStopTimeout,
	} {
		if d := ctlDefaultTimeout(cmd); d <= slowest {
			t.Errorf("ctl %s waits %v by default; the runtime may take %v to answer", cmd, d, slowest)
		}
	}
	short := func(d time.Duration) string { // as the help writes them: 90s, 2m
		if d%time.Minute == 0 {
			return fmt.Sprintf("%dm", d/time.Minute)
		}
		return fmt.Sprintf("%ds", d/time.Second)
	}
	stop, reload := short(ctlDefaultTimeout("stop")), short(ctlDefaultTimeout("reload"))
	if long, want := strings.Join(strings.Fields(commands["ctl"].Long), " "), stop+" for stop and restart and "+reload+" for reload"; !strings.Contains(long, want) {
		t.Errorf("edgeipc help ctl does not say %q", want)
	}
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	commands["ctl"].Flags(fs)
	if u, want := fs.Lookup("timeout").Usage, stop+" for stop and restart, "+reload+" for reload"; !strings.Contains(u, want) {
		t.Errorf("--timeout's usage %q does not say %q", u, want)
	}
}
