package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// A stderr line longer than 64 KiB is logged truncated, and the runtime
// keeps reading stderr: the child, which writes far more than a pipe holds
// after that line, never blocks and its frames keep coming.
func TestExecLongStderrLine(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "long.sh", `
head -c 70000 /dev/zero | tr '\0' x >&2
echo >&2
i=0
while [ $i -lt 3000 ]; do echo "stderr line $i, padding the pipe beyond its 64 KiB" >&2; i=$((i+1)); done
echo done >&2
echo frame
exec sleep 1000
`)
	// log_rate = 0: every line is logged (TestExecLogRate covers the bound).
	_, logb, _ := inproc(t, execConfig("long", script)+"log_rate = 0\n")
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "frame" {
		t.Fatalf("frame %q", f[0].Data)
	}
	logb.waitFor(t, "[long] done", 1)
	logb.waitFor(t, "[long] stderr line 2999,", 1)
	var long string
	for _, l := range strings.Split(logb.String(), "\n") {
		if strings.Contains(l, "[long] xxx") {
			long = l
		}
	}
	if !strings.Contains(long, "(truncated: line longer than 64 KiB)") || strings.Count(long, "x") != 64<<10 {
		t.Fatalf("the long line was logged with %d x's, marker present %v; want 65536 and the marker",
			strings.Count(long, "x"), strings.Contains(long, "truncated"))
	}
}

// A record cut short by the end of the child's stdout (a child killed
// while writing it) is dropped and counted as a bad record, as on a FIFO,
// whatever the framing: for lines, a last line without its newline
// (TestRuntimeSoak found such lines coming through as frames).
func TestExecPartialRecordAtEOF(t *testing.T) {
	for _, tc := range []struct{ framing, out string }{
		// one good record "abc", then a record that promises 8 bytes and has 2
		{"len32", `\003\000\000\000abc\010\000\000\000ab`},
		// one good line "abc", then a line cut short
		{"lines", `abc\nab`},
		// one good bin 8 record "abc", then a bin 8 that promises 8 bytes and has 2
		{"msgp", `\304\003abc\304\010ab`},
		// ... then a bin 16 whose header is cut
		{"msgp", `\304\003abc\305\000`},
		// ... then a map of 2 that ends after its first key
		{"msgp", `\304\003abc\202\244data`},
	} {
		t.Run(tc.framing, func(t *testing.T) {
			e := newEnv(t)
			script := writeScript(t, e.dir, "partial.sh", "printf '"+tc.out+"'\nexit 0\n")
			rt, _, _ := inproc(t, execConfig("partial", script)+fmt.Sprintf("framing = %q\nrestart = \"never\"\n", tc.framing))
			if f := readFrames(t, e, "r", 1); string(f[0].Data) != "abc" {
				t.Fatalf("frame %q", f[0].Data)
			}
			eventually(t, "the child to finish", func() bool { return rt.sourceStat(t, "partial").State == StateStopped })
			st := rt.sourceStat(t, "partial")
			if st.Frames != 1 || st.Bad != 1 || st.LastExit != "exit status 0" || !strings.Contains(st.LastError, "middle of a record") {
				t.Fatalf("stat %+v; want 1 frame, 1 bad record (the partial one), exit status 0", st)
			}
		})
	}
}

// A record cut short when the runtime stops reading a dead child's stdout
// because a process that left its group still holds the pipe (the read
// deadline after the exit, not EOF) is counted too, also one the decoder
// was skipping by its length (a len32 record, or an msgp bin bigger than
// the decode buffer, larger than the slot): it used to be counted only if
// bytes of it were buffered, so those vanished without a trace. A stream
// that ends between records counts nothing.
func TestExecPartialRecordAtDeadline(t *testing.T) {
	for _, tc := range []struct {
		name, framing, out string
		bad                uint64
	}{
		// "abc", then a record of 100 bytes (over the slot) with 10 of them
		{"len32 skipped", "len32", `printf '\003\000\000\000abc\144\000\000\0000123456789'`, 1},
		// "abc", then a bin 32 of 200000 bytes with 100000 of them
		{"msgp skipped", "msgp", `printf '\304\003abc\306\000\003\015\100'; head -c 100000 /dev/zero`, 1},
		{"lines partial", "lines", `printf 'abc\nab'`, 1},
		{"lines whole", "lines", `printf 'abc\n'`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			pidFile := filepath.Join(e.dir, "holder.pid")
			// The holder leaves the group with the pipe, and sleeps.
			script := writeScript(t, e.dir, "cut.sh", tc.out+`
setsid sh -c 'echo $$ > `+pidFile+`; exec sleep 1000' &
while [ ! -s `+pidFile+` ]; do sleep 0.01; done
exit 0
`)
			killPIDFileAtCleanup(t, pidFile)
			rt, logb, _ := inproc(t, execConfig("cut", script)+fmt.Sprintf("framing = %q\nrestart = \"never\"\n", tc.framing))
			if f := readFrames(t, e, "r", 1); string(f[0].Data) != "abc" {
				t.Fatalf("frame %q", f[0].Data)
			}
			eventually(t, "the child to finish", func() bool { return rt.sourceStat(t, "cut").State == StateStopped })
			st := rt.sourceStat(t, "cut")
			if st.Frames != 1 || st.Bad != tc.bad || st.LastExit != "exit status 0" {
				t.Fatalf("stat %+v; want 1 frame, %d bad, exit status 0", st, tc.bad)
			}
			if tc.bad == 1 {
				if !strings.Contains(st.LastError, "middle of a record") {
					t.Fatalf("last error %q; want it to say a record was cut short", st.LastError)
				}
				logb.waitFor(t, "source cut: dropped a record: stdout ended in the middle of a record (reading stopped", 1)
			}
		})
	}
}

// TestStartWhileFinishedRunReturns: `ctl start` of a source that reports
// itself stopped, arriving while the goroutine of its finished run is still
// returning, starts it, rather than answering "already running (state
// stopped)" (seen under qemu on ARMv6).
func TestStartWhileFinishedRunReturns(t *testing.T) {
	e := newEnv(t)
	once := writeScript(t, e.dir, "once.sh", "echo run\n")
	returning := make(chan struct{})
	release := make(chan struct{})
	var hooked atomic.Bool
	testHookRunReturned = func(name string) {
		if name == "once" && hooked.CompareAndSwap(false, true) {
			close(returning)
			<-release
		}
	}
	t.Cleanup(func() { testHookRunReturned = nil })
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.a]
slots = 16
slot_payload = 64
[[sources]]
name = "once"
kind = "exec"
ring = "a"
restart = "never"
command = [%q]
`, once))
	<-returning // the run has returned; its goroutine has not ended yet
	if st := rt.sourceStat(t, "once"); st.State != StateStopped {
		t.Fatalf("once: %+v", st)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	if err := rt.StartSource("once"); err != nil {
		t.Fatalf("start of a source that reports itself stopped: %v", err)
	}
	logb.waitFor(t, "source once: started", 2)
}

// `ctl start` starts a source whose run has ended on its own: an exec
// child that finished with restart = "never", and a source that failed
// (here: its command did not exist until the operator installed it).
func TestStartAfterFinishedOrFailed(t *testing.T) {
	e := newEnv(t)
	once := writeScript(t, e.dir, "once.sh", "echo run\n")
	later := filepath.Join(e.dir, "later.sh")
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.a]
slots = 16
slot_payload = 64
[rings.b]
slots = 16
slot_payload = 64
[[sources]]
name = "once"
kind = "exec"
ring = "a"
restart = "never"
command = [%q]
[[sources]]
name = "later"
kind = "exec"
ring = "b"
restart = "never"
command = [%q]
`, once, later))
	eventually(t, "once to finish", func() bool { return rt.sourceStat(t, "once").LastExit == "exit status 0" })
	eventually(t, "later to fail", func() bool { return rt.sourceStat(t, "later").State == StateFailed })
	if st := rt.sourceStat(t, "once"); st.State != StateStopped {
		t.Fatalf("once: %+v", st)
	}
	// Stopping a source that is not running says so and keeps its state.
	if err := rt.StopSource("later"); err == nil || !strings.Contains(err.Error(), "not running (state failed)") {
		t.Fatalf("stop of a failed source: %v", err)
	}
	if st := rt.sourceStat(t, "later"); st.State != StateFailed {
		t.Fatalf("later after stop: %+v", st)
	}

	if err := rt.StartSource("once"); err != nil {
		t.Fatalf("start of a finished source: %v", err)
	}
	logb.waitFor(t, "source once: started", 2)
	if f := readFrames(t, e, "a", 2); string(f[1].Data) != "run" {
		t.Fatalf("second run wrote %q", f[1].Data)
	}

	writeScript(t, e.dir, "later.sh", "echo installed\nexec sleep 1000\n")
	if err := rt.StartSource("later"); err != nil {
		t.Fatalf("start of a failed source: %v", err)
	}
	if f := readFrames(t, e, "b", 1); string(f[0].Data) != "installed" {
		t.Fatalf("later wrote %q", f[0].Data)
	}
	eventually(t, "later running", func() bool { return rt.sourceStat(t, "later").State == StateRunning })
	if err := rt.StartSource("later"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("start of a running source: %v", err)
	}
}

// `ctl rings` counts frames and measures rates whether or not the periodic
// stats line is logged (stats_interval = "0s" here): for a ring the runtime
// writes, and for one a child writes itself (bytes then come from the
// ring's stats reader).
func TestRingStatsWithoutStatsLine(t *testing.T) {
	newEnv(t)
	rt, _, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.gen]
slots = 64
slot_payload = 64
[rings.direct]
slots = 16
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "gen"
rate_hz = 200
size = 16
[[sources]]
name = "direct"
kind = "exec"
ring = "direct"
write = "child"
command = [%q, "-test.run=^$"]
env = ["EDGEIPC_TEST_CHILD_WRITER=1"]
`, os.Args[0]))
	ring := func(name string) control.RingStat {
		for _, r := range rt.Rings() {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no ring %s", name)
		return control.RingStat{}
	}
	eventually(t, "frames on ring gen", func() bool { return ring("gen").Frames > 0 })
	first := ring("gen").Frames
	eventually(t, "more frames on ring gen", func() bool { return ring("gen").Frames > first })
	eventually(t, "a rate on ring gen", func() bool { r := ring("gen"); return r.RateHz > 0 && r.BytesPerS > 0 })
	if err := rt.StopSource("gen"); err != nil {
		t.Fatal(err)
	}
	if r := ring("gen"); r.Bytes != 16*r.Frames {
		t.Fatalf("ring gen: %d bytes for %d frames of 16 bytes", r.Bytes, r.Frames)
	}
	// The child writes "direct 1".."direct 3" (8 bytes each), then sleeps.
	eventually(t, "3 frames on ring direct", func() bool { r := ring("direct"); return r.Frames == 3 && r.Bytes == 24 })
}

// When a record cannot be written into the ring for a reason other than a
// stop (here another process took the writer lease), the exec source stops
// its child and fails, saying why: it does not leave the child running with
// nobody reading its stdout, blocked on a full pipe for good.
func TestExecRingWriteFailureStopsChild(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "flood.sh", "while :; do echo frame; done\n")
	rt, _, _ := inproc(t, execConfig("flood", script))
	eventually(t, "frames from the child", func() bool { return rt.sourceStat(t, "flood").Frames > 0 })
	pid := rt.sourceStat(t, "flood").PID
	if pid <= 0 {
		t.Fatalf("no child pid: %+v", rt.sourceStat(t, "flood"))
	}
	// Another process takes the lease: lease_owner (docs/abi.md offset 64)
	// becomes pid 1, which is alive.
	f, err := os.OpenFile(filepath.Join(e.dir, "edgeipc.r"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[64])), 1)

	eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "flood").State == StateFailed })
	if st := rt.sourceStat(t, "flood"); !strings.Contains(st.LastError, "lease") {
		t.Fatalf("last error %q does not say the lease was lost", st.LastError)
	}
	eventually(t, "the child to be gone", func() bool { return syscall.Kill(pid, 0) != nil })
}

// A command given as a relative path with a slash runs from the source's
// dir, where the child runs: it was looked for relative to the runtime's
// working directory instead, so the source failed ("no such file") though
// the program was in dir. A relative dir is from the runtime's working
// directory: with one, the program was found there but then executed by
// that relative path from inside dir (dir/dir/gen.sh), and every start
// failed with "no such file or directory". A dir with ".." after a
// symbolic link (link/.., link -> deep/sub) is deep to the kernel, where
// the child runs; the program was joined to it by text (filepath.Join),
// which took link/.. as nothing and looked for ./gen.sh in the runtime's
// working directory (and for "a/.." + "./gen.sh", for gen.sh in $PATH).
func TestExecRelativeCommandFromDir(t *testing.T) {
	for _, mode := range []string{"absolute dir", "relative dir", "dir through a link and .."} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			dir := filepath.Join(e.dir, "sensors")
			if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
				t.Fatal(err)
			}
			writeScript(t, dir, "gen.sh", "while :; do echo here; sleep 0.05; done\n")
			switch mode {
			case "relative dir":
				t.Chdir(e.dir)
				dir = "sensors"
			case "dir through a link and ..":
				if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(e.dir, "link")); err != nil {
					t.Fatal(err)
				}
				dir = filepath.Join(e.dir, "link") + "/.."
			}
			cfg := strings.Replace(execConfig("rel", "./gen.sh"), "kind = \"exec\"", fmt.Sprintf("kind = \"exec\"\ndir = %q", dir), 1)
			rt, logb, stop := inproc(t, cfg)
			defer stop()
			eventually(t, "frames from ./gen.sh run in dir", func() bool { return rt.sourceStat(t, "rel").Frames > 0 })
			if strings.Contains(logb.String(), "no such file") {
				t.Fatalf("log:\n%s", logb.String())
			}
		})
	}
}

// A child that writes its last records and exits loses none of them when
// the runtime cannot take them at once: with a block-policy ring whose
// reader is slow, the pump waits in the ring while the rest of the
// child's output sits in the pipe, and reads it after the child is gone
// (it used to stop reading 200 ms after the exit, dropping those records
// without counting them).
func TestExecOutputAfterExitNotLost(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "burst.sh", `i=1
while [ $i -le 60 ]; do echo "rec $i"; i=$((i+1)); done
touch "$0.done"
exit 0
`)
	rt, _, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 8
slot_payload = 64
policy = "block"
[[sources]]
name = "burst"
kind = "exec"
ring = "r"
restart = "never"
disabled = true
command = [%q]
`, script))
	rd, err := shm.OpenReader("r", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := rt.StartSource("burst"); err != nil {
		t.Fatal(err)
	}
	// The child has written everything and exited well before the ring
	// has room for it.
	eventually(t, "the child to finish writing", func() bool { _, err := os.Stat(script + ".done"); return err == nil })
	time.Sleep(time.Second)
	buf := make([]byte, 64)
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; i <= 60; i++ {
		f, err := rd.ReadIntoDeadline(deadline, buf)
		if err != nil {
			t.Fatalf("read record %d of 60: %v; source %+v", i, err, rt.sourceStat(t, "burst"))
		}
		if want := fmt.Sprintf("rec %d", i); string(f.Data) != want {
			t.Fatalf("frame %q, want %q", f.Data, want)
		}
	}
	eventually(t, "the source to stop", func() bool { return rt.sourceStat(t, "burst").State == StateStopped })
	if st := rt.sourceStat(t, "burst"); st.Frames != 60 || st.Bad != 0 {
		t.Fatalf("stat %+v; want 60 frames, none bad", st)
	}
}

// A process that leaves the child's group (setsid) and keeps writing to
// the child's stdout does not keep the source from seeing the child's
// exit: once the child's output is read, the stream ends.
func TestExecEscapedWriterDoesNotHoldSource(t *testing.T) {
	e := newEnv(t)
	pidFile := filepath.Join(e.dir, "escapee.pid")
	script := writeScript(t, e.dir, "escape.sh", `setsid sh -c 'echo $$ > `+pidFile+`; while :; do echo escapee; done' &
while [ ! -s `+pidFile+` ]; do sleep 0.01; done
echo last
exit 3
`)
	killPIDFileAtCleanup(t, pidFile)
	rt, _, _ := inproc(t, execConfig("esc", script)+"restart = \"never\"\n")
	eventually(t, "the source to see its child's exit", func() bool {
		st := rt.sourceStat(t, "esc")
		return st.State == StateFailed && st.LastExit == "exit status 3"
	})
}

// A source's env entries replace the runtime's variables of the same name
// in the child's environment (and a later entry an earlier one): they used
// to be appended after them, so that a program whose getenv takes the first
// entry (C, Go) saw the runtime's value, and a shell the source's.
func TestExecEnvOverrides(t *testing.T) {
	e := newEnv(t)
	t.Setenv("EDGEIPC_TEST_OUTER", "runtime")
	rt, _, _ := inproc(t, execConfig("env", os.Args[0])+`restart = "never"
env = ["EDGEIPC_TEST_PRINTENV=EDGEIPC_TEST_OUTER,EDGEIPC_TEST_TWICE,EDGEIPC_SOURCE", "EDGEIPC_TEST_OUTER=source", "EDGEIPC_TEST_TWICE=1", "EDGEIPC_TEST_TWICE=2"]
`)
	var got []string
	for _, f := range readFrames(t, e, "r", 3) {
		got = append(got, string(f.Data))
	}
	if want := "EDGEIPC_TEST_OUTER=source EDGEIPC_TEST_TWICE=2 EDGEIPC_SOURCE=env"; strings.Join(got, " ") != want {
		t.Fatalf("the child's getenv found %q; want %q", got, want)
	}
	eventually(t, "the child to finish", func() bool { return rt.sourceStat(t, "env").State == StateStopped })
}

// A child whose stdout breaks the framing (a len32 length beyond
// max_skip) is stopped, counted once, and its source's last error says
// what broke and what to do, and does not promise a restart that its
// restart policy rules out.
func TestExecBrokenStreamError(t *testing.T) {
	e := newEnv(t)
	// one good record "abc", then a length of 0xffffffff
	script := writeScript(t, e.dir, "broken.sh", `printf '\003\000\000\000abc\377\377\377\377'
exec sleep 1000
`)
	rt, _, _ := inproc(t, execConfig("broken", script)+"framing = \"len32\"\nrestart = \"never\"\n")
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "abc" {
		t.Fatalf("frame %q", f[0].Data)
	}
	eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "broken").State == StateFailed })
	st := rt.sourceStat(t, "broken")
	if st.Bad != 1 || st.Frames != 1 || !strings.Contains(st.LastError, "max_skip") || strings.Contains(st.LastError, "restarting") {
		t.Fatalf("stat %+v; want 1 frame, 1 bad, an error that names max_skip and does not say restarting", st)
	}
}

// A signal to a child reaches it once: a stop sent SIGTERM both to the
// child's process group, which the child leads, and to the child through
// its pidfd, so a child that handles SIGTERM could run its handler twice,
// and one that takes a second SIGTERM as "quit now" (a common pattern)
// cut its own clean stop short. The count is made with a real-time
// signal, which the kernel queues per send where it merges two SIGTERMs
// still pending: the child blocks it and counts the queued instances. A
// child that left its group (setpgid into another) is still signalled,
// through its pidfd: the stop that follows would otherwise hang.
func TestExecSignalReachesChildOnce(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to run the signal count test")
	const sig = 40 // a real-time signal: queued, not merged
	child := func(moveGroup bool) string {
		move := ""
		if moveGroup {
			move = "os.setpgid(0, os.getpgid(os.getppid()))"
		}
		// Every real-time signal is blocked and counted, not only sig:
		// under qemu-user the test (the sender) is emulated and qemu
		// maps its real-time signals onto other host numbers (guest 40
		// reaches this native child as 41), which would kill it.
		return fmt.Sprintf(`
import os, signal, sys, time
rt = set(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
signal.pthread_sigmask(signal.SIG_BLOCK, rt)
%[1]s
print("ready", flush=True)
got = signal.sigwaitinfo(rt).si_signo
n = 1
time.sleep(0.5)  # a second copy, if sent, is queued by now
while signal.sigtimedwait({got}, 0) is not None:
    n += 1
print("signals %%d pgid %%s" %% (n, "own" if os.getpgid(0) == os.getpid() else "other"), flush=True)
time.sleep(1000)
`, move)
	}
	for _, tc := range []struct {
		name string
		move bool
		want string
	}{
		{"leads its group", false, "signals 1 pgid own"},
		{"left its group", true, "signals 1 pgid other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rt, _, _ := inproc(t, execArgvConfig("count", []string{py, "-c", child(tc.move)}, `stop_timeout = "10s"`))
			rd, err := shm.OpenReader("r", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			buf := make([]byte, 64)
			if f, err := rd.ReadIntoDeadline(time.Now().Add(wait), buf); err != nil || string(f.Data) != "ready" {
				t.Fatalf("first frame %q, %v", f.Data, err)
			}
			var p *os.Process
			rt.spawn.do(func() {
				for q := range rt.spawn.children {
					p = q
				}
			})
			if p == nil {
				t.Fatal("no child")
			}
			rt.spawn.signal(p, syscall.Signal(sig))
			f, err := rd.ReadIntoDeadline(time.Now().Add(wait), buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(f.Data) != tc.want {
				t.Fatalf("the child says %q, want %q: one signal sent, and it must arrive once", f.Data, tc.want)
			}
			// SIGTERM reaches it (it does not handle it), also out of its group.
			if err := rt.StopSource("count"); err != nil {
				t.Fatal(err)
			}
			if st := rt.sourceStat(t, "count"); st.LastExit != "signal: terminated" {
				t.Fatalf("stat %+v, want the child ended by SIGTERM", st)
			}
		})
	}
}

// TestExecLastErrorClearedWhenRunning: an exec source whose start failed
// (its program missing) kept that error in last_error after the program
// appeared and ran fine, while fifo and synthetic sources clear theirs
// once they run: `ctl sources` showed a running source with an old error.
func TestExecLastErrorClearedWhenRunning(t *testing.T) {
	e := newEnv(t)
	prog := filepath.Join(e.dir, "later.sh")
	rt, _, stop := inproc(t, execConfig("x", prog, `backoff_min = "50ms"`, `backoff_max = "100ms"`))
	defer stop()
	eventually(t, "the start to fail", func() bool { return rt.sourceStat(t, "x").LastError != "" })
	writeScript(t, e.dir, "later.sh", "echo hello; exec sleep 60\n")
	eventually(t, "the source to run", func() bool {
		st := rt.sourceStat(t, "x")
		return st.State == StateRunning && st.Frames > 0
	})
	if st := rt.sourceStat(t, "x"); st.LastError != "" {
		t.Errorf("running source x: last_error %q, want \"\" (the failed start is history)", st.LastError)
	}
}

// TestExecClosedStdoutNoted: a child that closes its stdout and keeps
// running sends no frame again, and the source showed running with nothing
// in last_error or the log. It is noted in both after a second, and left
// running.
func TestExecClosedStdoutNoted(t *testing.T) {
	e := newEnv(t)
	rt, logb, stop := inproc(t, execConfig("x", writeScript(t, e.dir, "closer.sh", "echo one; exec 1>&-; exec sleep 60\n")))
	defer stop()
	eventually(t, "the note on the closed stdout", func() bool {
		return strings.Contains(rt.sourceStat(t, "x").LastError, "closed its stdout but keeps running")
	})
	st := rt.sourceStat(t, "x")
	if st.State != StateRunning || st.Frames != 1 || st.PID == 0 || !pidAlive(st.PID) {
		t.Errorf("source x: %+v; want running with its one frame and its child alive", st)
	}
	if !strings.Contains(logb.String(), "closed its stdout but keeps running") {
		t.Errorf("log lacks the note:\n%s", logb.String())
	}
}

// TestShutdownTimeoutChildReapedAfterRun: a shutdown that ran out of
// shutdown_timeout SIGKILLs the children's groups, and Run returns within
// its bound even when a child cannot be reaped yet because its group is
// not empty: here a process of another user (as a sudo in a sensor's
// script would be) is in it, which the runtime, running as nobody, may
// not signal; a process stuck in a driver holds the group the same way.
// The spawner used to stop 200 ms after the SIGKILL, so in a program that
// embeds the runtime and goes on after Run, the child stayed an unreaped
// zombie for good and the source's goroutine, and the shutdown's, waited
// for its exit forever. Now the spawner goes on reaping after Run has
// returned, and they all end once the group is empty.
func TestShutdownTimeoutChildReapedAfterRun(t *testing.T) {
	c, leader, member := foreignMemberInGroup(t, `stop_timeout = "1m"`, `shutdown_timeout = "1s"`, lingerEnv+"=1")
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.log.waitFor(t, "TEST: run returned: runtime: shutdown did not finish within 1s", 1)
	c.log.waitFor(t, "not reaped 200ms after SIGKILL: still reaping them", 1)
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(c.log.String(), "no goroutine of the runtime left") {
		t.Fatal("the runtime's goroutines ended while its child's group still had a member")
	}
	if !pidExists(leader) {
		t.Fatal("the child was reaped while its group still had a member")
	}
	member.Process.Kill()
	member.Wait()
	eventually(t, "the child to be reaped", func() bool { return !pidExists(leader) })
	c.log.waitFor(t, "TEST: no goroutine of the runtime left", 1)
}

// foreignMemberInGroup runs a runtime as nobody (in a child process, with
// extraEnv) whose exec source x runs a shell that leads its process group;
// the test, root, puts a process of uid 12345 into that group (the test,
// the runtime and its child share a session), which the runtime may not
// signal, as it would be for a sudo in a sensor's script. srcLine is added
// to the source, rtLine to [runtime]. It returns the runtime, the child's
// pid and the process of uid 12345.
func foreignMemberInGroup(t *testing.T, srcLine, rtLine string, extraEnv ...string) (*child, int, *exec.Cmd) {
	t.Helper()
	e := newEnv(t)
	cmd, cfgDir, uid, gid := unprivileged(t, e)
	pidFile := filepath.Join(e.dir, "leader.pid")
	path := filepath.Join(cfgDir, "c.toml")
	cfg := execArgvConfig("x", []string{"/bin/sh", "-c", "echo $$ > " + pidFile + "; echo ready; exec sleep 1000"}, srcLine)
	cfg = strings.Replace(cfg, "[runtime]\n", "[runtime]\n"+rtLine+"\n", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	c := startChildCmd(t, cmd, path, extraEnv...)
	c.log.waitFor(t, "runtime ready", 1)
	if f := readFrames(t, e, "r", 1); string(f[0].Data) != "ready" {
		t.Fatalf("frame %q", f[0].Data)
	}
	leader := readPIDs(pidFile)[0]
	member := exec.Command("sleep", "1000")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: leader, Credential: &syscall.Credential{Uid: 12345, Gid: 12345}}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Process.Kill(); member.Wait() })
	return c, leader, member
}

// TestStopStuckGroupNamed: a stop that cannot end because a process of the
// child's group outlives SIGKILL (here one of another user, which the
// runtime, as nobody, may not signal) waited without a word in the log,
// which said instead that the child ignored SIGTERM and, a second after
// its stdout closed, that it kept running (last_error too), though it had
// exited at the SIGTERM. The log now names the group's live processes a
// second after the SIGKILL and says the child exited, and the stop ends
// once those processes are gone.
func TestStopStuckGroupNamed(t *testing.T) {
	c, leader, member := foreignMemberInGroup(t, `stop_timeout = "300ms"`, `shutdown_timeout = "30s"`)
	c.cmd.Process.Signal(syscall.SIGTERM)
	want := fmt.Sprintf("source x: the child's process group (pgid %d) still has live processes", leader)
	c.log.waitFor(t, want, 1)
	if !strings.Contains(c.log.String(), fmt.Sprintf("after SIGKILL (pids %d)", member.Process.Pid)) {
		t.Fatalf("the log does not name the process of uid 12345 (pid %d):\n%s", member.Process.Pid, c.log.String())
	}
	// The child exited at the SIGTERM, closing its stdout: the log must
	// not say it ignored SIGTERM, nor (a second after its stdout closed)
	// that it runs on.
	time.Sleep(time.Second)
	for _, wrong := range []string{"ignored SIGTERM for 300ms; sending SIGKILL\n", "closed its stdout but keeps running"} {
		if strings.Contains(c.log.String(), wrong) {
			t.Errorf("the log says %q of a child that exited at the SIGTERM", wrong)
		}
	}
	c.log.waitFor(t, fmt.Sprintf("source x: child (pid %d) exited, but processes of its group ignored SIGTERM for 300ms; sending SIGKILL to the group", leader), 1)
	member.Process.Kill()
	member.Wait()
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d, want 0 (the stop ended once the group was empty)", code)
	}
}

// pidExists reports whether pid is a process or an unreaped zombie.
func pidExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// TestExecBrokenStreamAfterExit: a stream that breaks in output the pump
// reads after the child has exited (it was held up by a block-policy ring
// with a slow reader) counts as one that breaks while the child runs: one
// bad record, a last error that says so, and a failure for the restart
// policy. It was logged only: not counted, no last error, and the source
// ended "stopped" as after a clean finish.
func TestExecBrokenStreamAfterExit(t *testing.T) {
	e := newEnv(t)
	// 20 len32 records "rec01".."rec20", then a length of 0xffffffff.
	script := writeScript(t, e.dir, "b.sh", `i=1
while [ $i -le 20 ]; do printf '\005\000\000\000rec%02d' $i; i=$((i+1)); done
printf '\377\377\377\377garbage'
exit 0
`)
	rt, _, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 8
slot_payload = 64
policy = "block"
[[sources]]
name = "b"
kind = "exec"
ring = "r"
framing = "len32"
restart = "never"
disabled = true
command = [%q]
`, script))
	rd, err := shm.OpenReader("r", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := rt.StartSource("b"); err != nil {
		t.Fatal(err)
	}
	var pid int
	eventually(t, "the child's pid", func() bool { pid = rt.sourceStat(t, "b").PID; return pid != 0 })
	// The child has written everything into the pipe and is reaped while
	// the pump waits for room in the ring; give the source a moment to
	// take the exit before the reader makes room.
	eventually(t, "the child to be reaped", func() bool { return !pidExists(pid) })
	time.Sleep(200 * time.Millisecond)
	buf := make([]byte, 64)
	for i := 1; i <= 20; i++ {
		f, err := rd.ReadIntoDeadline(time.Now().Add(wait), buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := fmt.Sprintf("rec%02d", i); string(f.Data) != want {
			t.Fatalf("frame %q, want %q", f.Data, want)
		}
	}
	eventually(t, "the source to end", func() bool {
		st := rt.sourceStat(t, "b")
		return st.State == StateFailed || st.State == StateStopped
	})
	st := rt.sourceStat(t, "b")
	if st.State != StateFailed || st.Bad != 1 || st.Frames != 20 || !strings.Contains(st.LastError, "max_skip") {
		t.Fatalf("stat %+v; want failed, 20 frames, 1 bad, a last error naming max_skip", st)
	}
}

// killPIDFileAtCleanup SIGKILLs, when the test ends, the process whose pid
// a test's script wrote to pidFile (one that left the child's group).
func killPIDFileAtCleanup(t *testing.T, pidFile string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}
