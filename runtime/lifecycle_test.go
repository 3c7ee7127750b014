//go:build linux

package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// inode returns the inode number of path (not followed), 0 if it is gone.
func inode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// A second runtime with the same control queue fails before it creates,
// attaches to or starts anything: the first runtime's rings and FIFOs
// survive it (even with remove_on_exit) and its sources are not started
// twice. The first runtime still removes them on its own clean exit.
func TestSecondRuntimeTouchesNothing(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	starts := filepath.Join(e.dir, "starts")
	script := writeScript(t, e.dir, "child.sh", fmt.Sprintf("echo started >> %q\nexec sleep 600\n", starts))
	cfg := e.writeConfig(t, "c.toml", fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[rings.x]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "in"
kind = "fifo"
ring = "r"
path = %q
remove_on_exit = true
[[sources]]
name = "sh"
kind = "exec"
ring = "x"
write = "child"
command = [%q]
`, fifo, script))
	a := startChild(t, cfg)
	a.log.waitFor(t, "runtime ready", 1)
	a.log.waitFor(t, "source in: reading FIFO", 1)
	eventually(t, "the exec child to start", func() bool { b, _ := os.ReadFile(starts); return len(b) > 0 })
	seg := shm.SegmentPath("r", e.sopts())
	segIno, fifoIno := inode(seg), inode(fifo)

	b := startChild(t, cfg)
	if code := b.exit(t); code != 1 {
		t.Fatalf("second runtime: exit code %d, want 1; log:\n%s", code, b.log.String())
	}
	if !strings.Contains(b.log.String(), "another runtime is serving") {
		t.Fatalf("second runtime does not say why it failed:\n%s", b.log.String())
	}
	if strings.Contains(b.log.String(), "ring r:") || strings.Contains(b.log.String(), "source ") {
		t.Fatalf("second runtime touched rings or sources before failing:\n%s", b.log.String())
	}
	if got := inode(seg); got == 0 || got != segIno {
		t.Fatalf("ring r's segment was removed or replaced by the second runtime (inode %d, was %d)", got, segIno)
	}
	if got := inode(fifo); got == 0 || got != fifoIno {
		t.Fatalf("the FIFO was removed or replaced by the second runtime (inode %d, was %d)", got, fifoIno)
	}
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "started") != 1 {
		t.Fatalf("the exec child was started %d times, want once", strings.Count(string(b), "started"))
	}
	// The first runtime still works, and cleans up on its own exit.
	stillServesThenCleansUp(t, e, a, fifo, seg)
}

// stillServesThenCleansUp checks that runtime a, which manages ring r
// (segment seg, remove_on_exit) fed by FIFO fifo, still carries a record
// through, exits 0 on SIGTERM and removes both on the way out.
func stillServesThenCleansUp(t *testing.T, e *env, a *child, fifo, seg string) {
	t.Helper()
	w := openWriter(t, fifo)
	fmt.Fprintln(w, "still")
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "still" {
		t.Fatalf("frame %q", f[0].Data)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.exit(t); code != 0 {
		t.Fatalf("managing runtime: exit code %d", code)
	}
	if inode(seg) != 0 {
		t.Fatalf("remove_on_exit: segment %s left after the managing runtime's clean exit; log:\n%s", seg, a.log.String())
	}
	if inode(fifo) != 0 {
		t.Fatalf("remove_on_exit: FIFO %s left after the managing runtime's clean exit; log:\n%s", fifo, a.log.String())
	}
}

// Runtimes that do not share a control queue (here the second has none)
// cannot exclude each other, but each holds a lock on the rings and FIFOs
// it manages: a second runtime uses a locked ring without removing it on
// exit, refuses to read a locked FIFO and to recreate a locked ring.
func TestRuntimeDoesNotRemoveWhatAnotherManages(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	body := fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "in"
kind = "fifo"
ring = "r"
path = %q
remove_on_exit = true
`, fifo)
	a := startChild(t, e.writeConfig(t, "a.toml", body))
	a.log.waitFor(t, "source in: reading FIFO", 1)
	seg := shm.SegmentPath("r", e.sopts())
	segIno, fifoIno := inode(seg), inode(fifo)

	b := startChild(t, e.writeConfig(t, "b.toml", body+"[control]\nenabled = false\n"))
	b.log.waitFor(t, "runtime ready", 1)
	b.log.waitFor(t, "ring r: another edgeipc runtime manages it", 1)
	b.log.waitFor(t, "is read by another edgeipc runtime", 1)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.exit(t); code != 0 {
		t.Fatalf("second runtime: exit code %d", code)
	}
	if got := inode(seg); got != segIno {
		t.Fatalf("ring r's segment was removed by the runtime that did not manage it (inode %d, was %d)", got, segIno)
	}
	if got := inode(fifo); got != fifoIno {
		t.Fatalf("the FIFO was removed by the runtime that did not read it (inode %d, was %d)", got, fifoIno)
	}

	// Another geometry: the ring is in use, so it is not recreated.
	c := startChild(t, e.writeConfig(t, "c.toml", strings.Replace(body, "slots = 16", "slots = 32", 1)+"[control]\nenabled = false\n"))
	if code := c.exit(t); code != 1 {
		t.Fatalf("runtime with another geometry: exit code %d, want 1", code)
	}
	if !strings.Contains(c.log.String(), "another edgeipc runtime manages it, so it is not recreated") {
		t.Fatalf("no reason given:\n%s", c.log.String())
	}
	if got := inode(seg); got != segIno {
		t.Fatalf("ring r was recreated under the runtime that manages it")
	}

	stillServesThenCleansUp(t, e, a, fifo, seg)
}

// readPIDs reads the pids a test script appended to path, one a line.
func readPIDs(path string) []int {
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killPIDs SIGKILLs what a failing test may leave behind.
func killPIDs(t *testing.T, path string) {
	t.Cleanup(func() {
		for _, pid := range readPIDs(path) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// A child that exits leaving a background job in its group: the job is
// sent SIGTERM before the child is reaped and restarted, so restarts do
// not pile up orphans.
func TestExecExitTerminatesItsGroup(t *testing.T) {
	e := newEnv(t)
	pids := filepath.Join(e.dir, "pids")
	killPIDs(t, pids)
	rt, logb, stop := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "bg"
kind = "exec"
ring = "r"
command = ["/bin/sh", "-c", "sleep 30 & echo $! >> %s; echo hi; exit 1"]
backoff_min = "10ms"
`, pids))
	eventually(t, "three runs of the child", func() bool { return len(readPIDs(pids)) >= 3 })
	// Each restart came after the group of the previous run was empty.
	got := readPIDs(pids)
	for _, pid := range got[:2] {
		if pidAlive(pid) {
			t.Fatalf("background job %d of an earlier run outlived it (restarts %d)", pid, rt.sourceStat(t, "bg").Restarts)
		}
	}
	logb.waitFor(t, "source bg: child (pid ", 1)
	logb.waitFor(t, "of its group still run; sending SIGTERM to the group", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range readPIDs(pids) {
		if pidAlive(pid) {
			t.Fatalf("background job %d outlived the runtime", pid)
		}
	}
}

// A group member that ignores SIGTERM gets SIGKILL after stop_timeout,
// also when the group's leader exited at the SIGTERM: on a control stop
// and on the runtime's shutdown.
func TestStopKillsStubbornGroupMember(t *testing.T) {
	// The grandchild writes its pid only once it ignores SIGTERM.
	script := `sh -c 'trap "" TERM; echo $$ >> %s; exec sleep 61' & exec sleep 100`
	src := func(pids string) string {
		return fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "gc"
kind = "exec"
ring = "r"
command = ["/bin/sh", "-c", %q]
stop_timeout = "300ms"
`, fmt.Sprintf(script, pids))
	}
	t.Run("ctl stop", func(t *testing.T) {
		e := newEnv(t)
		pids := filepath.Join(e.dir, "pids")
		killPIDs(t, pids)
		rt, logb, _ := inproc(t, "[control]\nenabled = false\n"+src(pids))
		eventually(t, "the grandchild", func() bool { return len(readPIDs(pids)) == 1 })
		gc := readPIDs(pids)[0]
		if err := rt.StopSource("gc"); err != nil {
			t.Fatal(err)
		}
		// The stop returns once the group is empty.
		if pidAlive(gc) {
			t.Fatalf("grandchild %d ignoring SIGTERM survived the stop; log:\n%s", gc, logb.String())
		}
		logb.waitFor(t, "sending SIGKILL", 1)
	})
	t.Run("shutdown", func(t *testing.T) {
		e := newEnv(t)
		pids := filepath.Join(e.dir, "pids")
		killPIDs(t, pids)
		c := startChild(t, e.writeConfig(t, "c.toml", src(pids)))
		eventually(t, "the grandchild", func() bool { return len(readPIDs(pids)) == 1 })
		gc := readPIDs(pids)[0]
		c.cmd.Process.Signal(syscall.SIGTERM)
		if code := c.exit(t); code != 0 {
			t.Fatalf("exit code %d", code)
		}
		if pidAlive(gc) {
			t.Fatalf("grandchild %d ignoring SIGTERM outlived the runtime; log:\n%s", gc, c.log.String())
		}
	})
}

// notifyRecorder collects what a runtime sends to its NOTIFY_SOCKET.
type notifyRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func recordNotify(t *testing.T, sock string) *notifyRecorder {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &notifyRecorder{}
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, string(buf[:n]))
			r.mu.Unlock()
		}
	}()
	return r
}

// index is the position of the first message after from containing s, -1
// if none.
func (r *notifyRecorder) index(s string, from int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := from; i < len(r.msgs); i++ {
		if strings.Contains(r.msgs[i], s) {
			return i
		}
	}
	return -1
}

func (r *notifyRecorder) count(s string, from, to int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := from; i < to && i < len(r.msgs); i++ {
		if strings.Contains(r.msgs[i], s) {
			n++
		}
	}
	return n
}

// A reload and the shutdown that wait for a child ignoring SIGTERM (for
// its stop_timeout, longer than the watchdog interval) keep pinging the
// watchdog, and the shutdown does not log that the main loop did not
// answer.
func TestWatchdogDuringSlowReloadAndShutdown(t *testing.T) {
	e := newEnv(t)
	notify := recordNotify(t, filepath.Join(e.dir, "notify.sock"))
	text, trapped := stubbornSource(t, e)
	cfg := e.writeConfig(t, "c.toml", text("one"))
	// WatchdogSec=2s: a ping every second (generous for qemu).
	c := startChild(t, cfg, "NOTIFY_SOCKET="+filepath.Join(e.dir, "notify.sock"), "WATCHDOG_USEC=2000000")
	c.log.waitFor(t, "source stubborn: started", 1)
	eventually(t, "READY=1", func() bool { return notify.index("READY=1", 0) >= 0 })
	eventually(t, "the first child to ignore SIGTERM", func() bool { return trapped("one") })

	e.writeConfig(t, "c.toml", text("two")) // the child changes: the reload stops it
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "reloaded "+cfg, 1)
	var reloading, ready int
	eventually(t, "RELOADING=1 then READY=1", func() bool {
		reloading = notify.index("RELOADING=1", 0)
		ready = notify.index("READY=1", reloading+1)
		return reloading >= 0 && ready >= 0
	})
	// The reload took stop_timeout (3s): about 4 pings; none without them.
	if n := notify.count("WATCHDOG=1", reloading, ready); n < 2 {
		t.Fatalf("%d watchdog pings during a 3s reload with WatchdogSec=2s; log:\n%s", n, c.log.String())
	}

	eventually(t, "the new child to ignore SIGTERM", func() bool { return trapped("two") })
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	stopping := notify.index("STOPPING=1", 0)
	if n := notify.count("WATCHDOG=1", stopping, 1<<30); stopping < 0 || n < 2 {
		t.Fatalf("%d watchdog pings during a 3s shutdown", n)
	}
	if strings.Contains(c.log.String(), "did not answer") {
		t.Fatalf("the watchdog complained about a reload or shutdown in progress:\n%s", c.log.String())
	}
}

// A control restart racing a reload that removes the source: the reload
// waits for the restart's stop to finish, the restart does not start the
// removed source again (it says why), and no child is left running.
func TestRestartRacingReloadRemoval(t *testing.T) {
	e := newEnv(t)
	pids := filepath.Join(e.dir, "pids")
	killPIDs(t, pids)
	stub := writeScript(t, e.dir, "stub.sh", fmt.Sprintf("trap '' TERM\necho $$ >> %s\nwhile :; do echo x; sleep 0.05; done\n", pids))
	ring := "[runtime]\nstats_interval = \"0s\"\n[control]\nenabled = false\n[rings.r]\nslots = 16\nslot_payload = 64\n"
	path := e.writeConfig(t, "c.toml", ring+fmt.Sprintf(`
[[sources]]
name = "stub"
kind = "exec"
ring = "r"
command = [%q]
stop_timeout = "2s"
`, stub))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, _, _ := inprocConfig(t, cfg)
	eventually(t, "the child", func() bool { return len(readPIDs(pids)) == 1 })
	first := readPIDs(pids)[0]
	rt.mu.Lock()
	ss := rt.sources["stub"]
	rt.mu.Unlock()

	restarted := make(chan error, 1)
	go func() { restarted <- rt.RestartSource("stub") }()
	// Wait until the restart's stop is under way (the child ignores the
	// SIGTERM for stop_timeout), then reload a config without the source.
	eventually(t, "the restart to begin stopping", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.cancel == nil
	})
	e.writeConfig(t, "c.toml", ring)
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if pidAlive(first) {
		t.Fatalf("the reload returned while the removed source's child %d still ran", first)
	}
	var rerr error
	select {
	case rerr = <-restarted:
	case <-time.After(wait):
		t.Fatal("RestartSource did not return")
	}
	if rerr == nil || !strings.Contains(rerr.Error(), "was removed") {
		t.Fatalf("RestartSource: %v; want an error saying the source was removed", rerr)
	}
	if srcs := rt.Sources(); len(srcs) != 0 {
		t.Fatalf("sources after the reload: %+v", srcs)
	}
	ss.mu.Lock()
	running := ss.cancel != nil
	ss.mu.Unlock()
	if running {
		t.Fatal("the removed source was started again by the restart")
	}
	if got := readPIDs(pids); len(got) != 1 {
		t.Fatalf("children started: %v; want only the first", got)
	}
}

// A shutdown that outlasts shutdown_timeout (a child ignoring SIGTERM with
// a longer stop_timeout) SIGKILLs the children's groups at the timeout and
// still finishes: remove_on_exit ring and control queue removed, exit 1.
// A second SIGTERM during the shutdown is logged and ignored.
func TestShutdownTimeoutKillsAndCleansUp(t *testing.T) {
	e := newEnv(t)
	pids := filepath.Join(e.dir, "pids")
	killPIDs(t, pids)
	stub := writeScript(t, e.dir, "stub.sh", fmt.Sprintf("trap '' TERM\necho $$ >> %s\nwhile :; do echo x; sleep 0.05; done\n", pids))
	cfg := e.writeConfig(t, "c.toml", fmt.Sprintf(`
[runtime]
stats_interval = "0s"
shutdown_timeout = "1s"
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "stub"
kind = "exec"
ring = "r"
command = [%q]
stop_timeout = "1m"
`, stub))
	c := startChild(t, cfg)
	eventually(t, "the child", func() bool { return len(readPIDs(pids)) == 1 })
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.log.waitFor(t, "shutting down (terminated)", 1)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{
		"SIGTERM ignored: already shutting down",
		"shutdown_timeout (1s) reached; sending SIGKILL",
		"shutdown did not finish within 1s",
	} {
		if !strings.Contains(c.log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, c.log.String())
		}
	}
	if pid := readPIDs(pids)[0]; pidAlive(pid) {
		t.Fatalf("child %d outlived the runtime", pid)
	}
	if got := segNames(t, e); len(got) != 0 {
		t.Fatalf("segments left after the shutdown: %v", got)
	}
	if queueExists(e.queue) {
		t.Fatal("control queue left after the shutdown")
	}
}

// Reload before Run, or after Run has returned, fails at once.
func TestReloadNotRunning(t *testing.T) {
	e := newEnv(t)
	path := e.writeConfig(t, "c.toml", "[control]\nenabled = false\n[rings.r]\nslots = 16\nslot_payload = 64\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(cfg, Options{Logger: discard, IgnoreSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload before Run: %v; want ErrNotRunning", err)
	}
	rt, _, stop := inprocConfig(t, cfg)
	if err := rt.Reload(); err != nil {
		t.Fatalf("Reload while running: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload after Run: %v; want ErrNotRunning", err)
	}
}

// The control plane's rings command reads each ring's name while a reload
// replaces the ring's configuration (every reload does, for every ring):
// the name must be read without a data race (go test -race). TestRuntimeSoak
// found it: a runtime built with -race exited 66 after ctl rings met a
// SIGHUP.
func TestRingsDuringReload(t *testing.T) {
	e := newEnv(t)
	path := e.writeConfig(t, "c.toml", "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\n[rings.a]\nslots = 16\nslot_payload = 64\n[rings.b]\nslots = 16\nslot_payload = 64\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, _, _ := inprocConfig(t, cfg)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if rs := rt.Rings(); len(rs) != 2 || rs[0].Name != "a" || rs[1].Name != "b" {
				t.Errorf("Rings() = %+v", rs)
				return
			}
		}
	}()
	for range 50 {
		if err := rt.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
}

// stubbornSource writes an exec source that ignores SIGTERM (stop_timeout
// 3 s, so stopping it takes that long). text(arg) is a config running it
// with argument arg; trapped(arg) reports that the child started with arg
// ignores SIGTERM (it leaves a file named after arg once it does: a signal
// that came before would end it at once).
func stubbornSource(t *testing.T, e *env) (text func(arg string) string, trapped func(arg string) bool) {
	t.Helper()
	stubborn := writeScript(t, e.dir, "stubborn.sh", "trap '' TERM\n: > \"$0.$1\"\nwhile :; do echo x; sleep 0.05; done\n")
	trapped = func(arg string) bool { _, err := os.Stat(stubborn + "." + arg); return err == nil }
	text = func(arg string) string {
		return fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "stubborn"
kind = "exec"
ring = "r"
command = [%q, %q]
stop_timeout = "3s"
`, stubborn, arg)
	}
	return text, trapped
}

// TestControlAnswersDuringShutdown: the control server served on Run's
// context, which ends when the shutdown begins, so during the drain (a
// child slow to stop, up to shutdown_timeout) `edgeipc ctl status` got no
// answer until the client's timeout. It answers until the queue is
// removed, and refuses to start a source meanwhile.
func TestControlAnswersDuringShutdown(t *testing.T) {
	e := newEnv(t)
	slow := writeScript(t, e.dir, "slow.sh", "trap '' TERM; echo up; while :; do sleep 0.1; done\n")
	rt, _, stop := inproc(t, fmt.Sprintf(`
[runtime]
stats_interval = "0s"
shutdown_timeout = "20s"
[rings.r]
slots = 8
slot_payload = 64
[[sources]]
name = "slow"
kind = "exec"
ring = "r"
command = [%q]
stop_timeout = "3s"
`, slow))
	eventually(t, "the child to run", func() bool { return rt.sourceStat(t, "slow").Frames > 0 })
	cl := dialRuntime(t, e)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-rt.stopping
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := cl.Call(ctx, "status")
	if err != nil || !r.OK {
		t.Errorf("status during the drain: %+v, %v; want an answer", r, err)
	}
	r, err = cl.Call(ctx, "start", "slow")
	if err != nil || r.OK || !strings.Contains(r.Error, "shutting down") {
		t.Errorf("start during the drain: %+v, %v; want a refusal saying the runtime is shutting down", r, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
