//go:build linux

package runtime

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/shm"
)

func segNames(t *testing.T, e *env) []string {
	t.Helper()
	segs, err := shm.ListSegments(e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.Name+":"+s.Kind)
	}
	sort.Strings(out)
	return out
}

func TestSIGTERMExitsZeroKeepsOrRemovesRings(t *testing.T) {
	e := newEnv(t)
	cfg := e.writeConfig(t, "c.toml", `
[runtime]
stats_interval = "0s"
[rings.keep]
slots = 16
slot_payload = 64
[rings.temp]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "gen"
kind = "synthetic"
ring = "temp"
rate_hz = 100
size = 8
`)
	c := startChild(t, cfg)
	c.log.waitFor(t, "runtime ready", 1)
	if got := segNames(t, e); strings.Join(got, ",") != "keep:ring,temp:ring" {
		t.Fatalf("segments %v", got)
	}
	c.cmd.Process.Signal(syscall.SIGUSR1)
	c.log.waitFor(t, "ring temp ", 1)
	c.log.waitFor(t, "source gen", 1)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := segNames(t, e); strings.Join(got, ",") != "keep:ring" {
		t.Fatalf("segments after exit %v (want keep only)", got)
	}
	if queueExists(e.queue) {
		t.Fatalf("control queue %s left behind after a clean exit", e.queue)
	}
}

func TestSIGHUPReload(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "steady.sh", "while :; do echo tick; sleep 0.1; done\n")
	base := fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.steady]
slots = 16
slot_payload = 64
[[sources]]
name = "steady"
kind = "exec"
ring = "steady"
command = [%q]
`, script)
	old := base + `
[rings.old]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "old"
kind = "synthetic"
ring = "old"
rate_hz = 50
size = 8
`
	neu := base + `
[rings.new]
slots = 32
slot_payload = 128
[[sources]]
name = "new"
kind = "synthetic"
ring = "new"
rate_hz = 50
size = 8
`
	cfg := e.writeConfig(t, "c.toml", old)
	c := startChild(t, cfg)
	c.log.waitFor(t, "source steady: started", 1)
	if got := segNames(t, e); strings.Join(got, ",") != "old:ring,steady:ring" {
		t.Fatalf("segments %v", got)
	}
	pid := childPID(t, c.log.String(), "steady")
	e.writeConfig(t, "c.toml", neu)
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "reloaded "+cfg, 1)
	if got := segNames(t, e); strings.Join(got, ",") != "new:ring,steady:ring" {
		t.Fatalf("segments after reload %v", got)
	}
	readFrames(t, e, "new", 3)
	readFrames(t, e, "steady", 3) // still flowing
	if n := strings.Count(c.log.String(), "source steady: started"); n != 1 || !pidAlive(pid) {
		t.Fatalf("the unaffected exec child was restarted (%d starts, pid %d alive %v)", n, pid, pidAlive(pid))
	}
	// A broken file keeps the running configuration.
	e.writeConfig(t, "c.toml", neu+"\nbogus = 1\n")
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "keeping the running configuration", 1)
	if !strings.Contains(c.log.String(), "c.toml:") {
		t.Fatal("reload error does not name the file and line")
	}
	readFrames(t, e, "new", 3)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if pidAlive(pid) {
		t.Fatalf("exec child %d outlived the runtime", pid)
	}
}

func childPID(t *testing.T, log, source string) int {
	t.Helper()
	pid := 0
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "(pid "); i >= 0 && strings.Contains(l, "source "+source+": started") {
			fmt.Sscanf(l[i:], "(pid %d)", &pid)
		}
	}
	if pid == 0 {
		t.Fatalf("no pid for source %s in the log", source)
	}
	return pid
}

func TestSdNotify(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(e.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := e.writeConfig(t, "c.toml", `
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
`)
	c := startChild(t, cfg, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	recv := func(want string) {
		t.Helper()
		buf := make([]byte, 512)
		deadline := time.Now().Add(wait)
		for {
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.Contains(string(buf[:n]), want) {
				return
			}
		}
	}
	recv("READY=1")
	recv("WATCHDOG=1") // WATCHDOG_PID unset: the watchdog is ours
	c.cmd.Process.Signal(syscall.SIGHUP)
	recv("RELOADING=1")
	recv("READY=1")
	c.cmd.Process.Signal(syscall.SIGTERM)
	recv("STOPPING=1")
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// After SIGKILL and restart the runtime reattaches to its rings, takes
// over its stale control queue and reuses its FIFO: three kill/restart
// cycles leave exactly the objects one run leaves.
func TestRestartSafetyAfterSIGKILL(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	script := writeScript(t, e.dir, "s.sh", "while :; do echo x; sleep 0.05; done\n")
	cfg := e.writeConfig(t, "c.toml", fmt.Sprintf(`
[runtime]
stats_interval = "0s"
[rings.a]
slots = 16
slot_payload = 64
[rings.b]
slots = 16
slot_payload = 64
[rings.c]
slots = 8
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "a"
rate_hz = 100
size = 8
[[sources]]
name = "sh"
kind = "exec"
ring = "b"
command = [%q]
[[sources]]
name = "fifo"
kind = "fifo"
ring = "c"
path = %q
`, script, fifo))
	snapshot := func() string {
		ents, _ := os.ReadDir(e.dir)
		var files []string
		for _, d := range ents {
			files = append(files, d.Name())
		}
		return fmt.Sprintf("segments %v files %v queue-exists %v", segNames(t, e), files, queueExists(e.queue))
	}
	var first string
	for i := 0; i < 3; i++ {
		c := startChild(t, cfg)
		c.log.waitFor(t, "runtime ready", 1)
		readFrames(t, e, "a", 2)
		readFrames(t, e, "b", 2)
		if i > 0 && !strings.Contains(c.log.String(), "ring a: attached to existing") {
			t.Fatalf("cycle %d: did not reattach to ring a", i)
		}
		// Ring b may still hold frames from the last cycle: wait for this
		// runtime's own sh before looking up its pid.
		c.log.waitFor(t, "source sh: started", 1)
		pid := childPID(t, c.log.String(), "sh")
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.exit(t)
		eventually(t, "the exec child to die", func() bool { return !pidAlive(pid) })
		s := snapshot()
		if i == 0 {
			first = s
			if !strings.Contains(s, "queue-exists true") || !strings.Contains(s, "in.fifo") {
				t.Fatalf("unexpected objects after a SIGKILL: %s", s)
			}
		} else if s != first {
			t.Fatalf("cycle %d left %s; after the first: %s", i, s, first)
		}
	}
	// A geometry change on restart: the ring is removed and recreated.
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(text), "[rings.c]\nslots = 8", "[rings.c]\nslots = 32", 1)), 0o600)
	c := startChild(t, cfg)
	c.log.waitFor(t, "runtime ready", 1)
	if !strings.Contains(c.log.String(), "ring c: existing segment does not match") {
		t.Fatal("geometry mismatch not logged")
	}
	r, err := shm.Open("c", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	if r.Slots() != 32 {
		t.Fatalf("ring c has %d slots", r.Slots())
	}
	r.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if queueExists(e.queue) {
		t.Fatal("control queue left after a clean exit")
	}
}

func queueExists(name string) bool {
	q, err := mq.Open(name, os.O_RDONLY)
	if err != nil {
		return false
	}
	q.Close()
	return true
}

// A reload does not move rings or the control plane: rings it creates go
// to the directory the runtime started with, exec children are told the
// directory their ring is in, and the keys that need a restart are named
// in the log and in Reload's error. stats_interval takes effect at once.
func TestReloadKeepsShmDirAndNamesRestartKeys(t *testing.T) {
	e := newEnv(t)
	dirA, dirB := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	os.Mkdir(dirA, 0o700)
	os.Mkdir(dirB, 0o700)
	src := func(name string) string {
		return fmt.Sprintf("[rings.%s]\nslots = 16\nslot_payload = 64\n[[sources]]\nname = %q\nkind = \"exec\"\nring = %q\nwrite = \"child\"\nrestart = \"never\"\ncommand = [\"sh\", \"-c\", \"echo SHM=$EDGEIPC_SHM_DIR >&2\"]\n", name, name, name)
	}
	text := func(dir, stats, mode string) string {
		return fmt.Sprintf("[runtime]\nshm_dir = %q\nstats_interval = %q\n[control]\nmode = %q\n", dir, stats, mode)
	}
	path := e.writeConfig(t, "c.toml", text(dirA, "0s", "0600")+src("one"))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, logb, _ := inprocConfig(t, cfg)
	logb.waitFor(t, "[one] SHM="+dirA, 1)

	e.writeConfig(t, "c.toml", text(dirB, "100ms", "0660")+src("one")+src("two"))
	err = rt.Reload()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("runtime.shm_dir (running %q, file %q)", dirA, dirB)) ||
		!strings.Contains(err.Error(), `control.mode (running "0600", file "0660")`) || !strings.Contains(err.Error(), "until it is restarted") {
		t.Fatalf("Reload: %v; want it to name runtime.shm_dir and control.mode as needing a restart", err)
	}
	logb.waitFor(t, "WARN  reload applied, except that runtime.shm_dir", 1)
	logb.waitFor(t, "[two] SHM="+dirA, 1)
	if _, err := os.Stat(filepath.Join(dirA, "edgeipc.two")); err != nil {
		t.Fatalf("ring two is not in the running directory: %v", err)
	}
	if ents, _ := os.ReadDir(dirB); len(ents) != 0 {
		t.Fatalf("the reload created %v in the new shm_dir", ents)
	}
	logb.waitFor(t, "ring two ", 1) // the stats line, now every 100ms
	if n := rt.Status().Reloads; n != 1 {
		t.Fatalf("reloads = %d", n)
	}
}

// The log's wording: the ready line counts what the file declares, as
// --check and reload do, in good English; control server messages carry
// one "control: " prefix; torn frames seen by a stats reader appear in the
// stats line.
func TestLogWording(t *testing.T) {
	e := newEnv(t)
	rt, logb, _ := inproc(t, `
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 10
size = 8
`)
	logb.waitFor(t, "edgeipc runtime ready: 1 ring, 1 source, 0 sinks (", 1)

	q, err := mq.Open(e.queue, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Send(t.Context(), []byte{0xc1}, 0); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "control: malformed request of 1 bytes", 1)
	if strings.Contains(logb.String(), "control: control:") {
		t.Fatalf("doubled prefix in:\n%s", logb.String())
	}

	rt.mu.Lock()
	sk := rt.sinks["stats:r"]
	rt.mu.Unlock()
	if sk == nil || sk.stats == nil {
		t.Fatal("no built-in stats reader on ring r")
	}
	sk.stats.mu.Lock()
	sk.stats.cur.torn += 2 // as the reader counts a frame overwritten while it copied it
	sk.stats.mu.Unlock()
	// A SIGUSR1 snapshot shows the window so far and leaves it open: the
	// next periodic line still counts what the snapshot showed.
	rt.logStatsWindow("SIGUSR1 stats", false)
	logb.waitFor(t, "readers 1  torn 2", 1)
	rt.logStats("test")
	logb.waitFor(t, "readers 1  torn 2", 2)
	rt.logStats("test") // the periodic line closed the window: a new one starts at 0
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logb.String(), "readers 1  torn 2"); n != 2 {
		t.Fatalf("torn 2 logged %d times, want 2 (the snapshot and the periodic line that closed the window):\n%s", n, logb.String())
	}
}

// A SIGHUP that finds the file truncated (it is being rewritten in place:
// `cat new.toml > c.toml`, cp, a provisioning tool) keeps the running
// configuration. An empty file parses as a configuration with nothing in
// it, and the reload stopped every source and removed every ring. A file
// of comments only is the same; at start (and for --check) both are
// refused too, and a file with one table is not.
func TestReloadOfEmptyFileRefused(t *testing.T) {
	e := newEnv(t)
	text := `
[runtime]
stats_interval = "0s"
[rings.a]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "gen"
kind = "synthetic"
ring = "a"
rate_hz = 100
size = 8
`
	cfg := e.writeConfig(t, "c.toml", text)
	c := startChild(t, cfg)
	c.log.waitFor(t, "runtime ready", 1)
	for i, partial := range []string{"", "# edgeipc configuration\n\n# (the rest is still being written)\n"} {
		e.writeConfig(t, "c.toml", partial)
		c.cmd.Process.Signal(syscall.SIGHUP)
		eventually(t, "the reload to end", func() bool {
			l := c.log.String()
			return strings.Count(l, "keeping the running configuration") > i || strings.Contains(l, "reloaded "+cfg)
		})
		if strings.Contains(c.log.String(), "reloaded "+cfg) {
			t.Fatalf("a reload applied the file %q; log:\n%s", partial, c.log.String())
		}
		if got := segNames(t, e); strings.Join(got, ",") != "a:ring" {
			t.Fatalf("segments after reloading %q: %v", partial, got)
		}
		newFrames(t, e, "a", 3) // the source still runs
	}
	if !strings.Contains(c.log.String(), "declares nothing") {
		t.Fatalf("the refusal does not say why; log:\n%s", c.log.String())
	}
	e.writeConfig(t, "c.toml", text) // the writer is done: the next reload works
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "reloaded "+cfg, 1)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	for _, text := range []string{"", "\n \n", "# only a comment\n"} {
		p := e.writeConfig(t, "empty.toml", text)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "declares nothing") {
			t.Errorf("Load of %q: %v; want it refused as declaring nothing", text, err)
		}
	}
	p := e.writeConfig(t, "runtime.toml", "[runtime]\n")
	if c, err := Load(p); err != nil || len(c.Rings) != 0 {
		t.Errorf("Load of a file with an empty [runtime] table: %v", err)
	}
}

// The STATUS= line systemd shows (`systemctl status`) follows the
// runtime: what runs once it is ready, that a reload failed and the
// running configuration was kept (`systemctl reload` succeeds as soon as
// the SIGHUP is sent, so that is the only place a failed reload shows
// outside the log), that a later reload worked, and that it is stopping.
// It said "running" from start to exit.
func TestSdNotifyStatus(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(e.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	text := `
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
`
	cfg := e.writeConfig(t, "c.toml", text)
	c := startChild(t, cfg, "NOTIFY_SOCKET="+sock)
	// recv returns the next datagram that says want.
	recv := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		deadline := time.Now().Add(wait)
		for {
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if m := string(buf[:n]); strings.Contains(m, want) {
				return m
			}
		}
	}
	status := func(msg string) string {
		t.Helper()
		for _, l := range strings.Split(msg, "\n") {
			if s, ok := strings.CutPrefix(l, "STATUS="); ok {
				return s
			}
		}
		t.Fatalf("no STATUS in %q", msg)
		return ""
	}
	if s := status(recv("READY=1")); s != "running: 1 ring, 0 sources, 0 sinks" {
		t.Errorf("STATUS when ready: %q", s)
	}
	e.writeConfig(t, "c.toml", text+"slots = 32\n") // a duplicate key
	c.cmd.Process.Signal(syscall.SIGHUP)
	if s := status(recv("RELOADING=1")); s != "reloading "+cfg {
		t.Errorf("STATUS while reloading: %q", s)
	}
	s := status(recv("READY=1"))
	if !strings.HasPrefix(s, "running: 1 ring, 0 sources, 0 sinks; ") || !strings.Contains(s, " reload failed, running configuration kept: "+cfg+":7: rings.r.slots:") {
		t.Errorf("STATUS after a failed reload: %q", s)
	}
	e.writeConfig(t, "c.toml", text+"[rings.q]\nslots = 16\nslot_payload = 64\n")
	c.cmd.Process.Signal(syscall.SIGHUP)
	recv("RELOADING=1")
	if s := status(recv("READY=1")); s != "running: 2 rings, 0 sources, 0 sinks" {
		t.Errorf("STATUS after a reload that worked: %q", s)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	if s := status(recv("STOPPING=1")); s != "stopping (terminated)" {
		t.Errorf("STATUS when stopping: %q", s)
	}
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
