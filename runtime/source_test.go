//go:build linux

package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

func TestExecShellLines(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "lines.sh", `
echo "starting on $EDGEIPC_RING in $EDGEIPC_SHM_DIR" >&2
i=1
while [ $i -le 5 ]; do echo "line $i"; i=$((i+1)); done
exec sleep 1000
`)
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.text]
slots = 16
slot_payload = 64
[[sources]]
name = "sh"
kind = "exec"
ring = "text"
type = 9
command = [%q]
`, script))
	frames := readFrames(t, e, "text", 5)
	for i, f := range frames {
		if string(f.Data) != fmt.Sprintf("line %d", i+1) || f.Type != 9 {
			t.Fatalf("frame %d = %q type %d", i, f.Data, f.Type)
		}
	}
	logb.waitFor(t, "[sh] starting on text in "+e.dir, 1)
	eventually(t, "the frame counter", func() bool { return rt.sourceStat(t, "sh").Frames == 5 })
	st := rt.sourceStat(t, "sh")
	if st.State != StateRunning || st.PID == 0 || st.Frames != 5 {
		t.Fatalf("source stat %+v", st)
	}
}

// The C sensor from examples/sensors, compiled here, through len32 framing.
func TestExecCSensorLen32(t *testing.T) {
	cc := testenv.Tool(t, "cc", "install gcc to run the C sensor test")
	e := newEnv(t)
	bin := filepath.Join(e.dir, "sensor")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "../examples/sensors/sensor.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	rt, _, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.env]
slots = 64
slot_payload = 64
[[sources]]
name = "c"
kind = "exec"
ring = "env"
framing = "len32"
restart = "never"
command = [%q, "20", "1000"]
`, bin))
	frames := readFrames(t, e, "env", 20)
	for i, f := range frames {
		if len(f.Data) != 16 || binary.LittleEndian.Uint32(f.Data) != uint32(i+1) ||
			binary.LittleEndian.Uint32(f.Data[12:]) != uint32(i+1)^0xa5a5a5a5 {
			t.Fatalf("frame %d = %x", i, f.Data)
		}
	}
	eventually(t, "the sensor to finish", func() bool {
		st := rt.sourceStat(t, "c")
		return st.State == StateStopped && st.LastExit == "exit status 0"
	})
}

// TestCSensorSlowRate: the C sensor keeps its rate at 1 Hz and below
// (nanosleep refuses a tv_nsec of a whole second, so it used not to sleep).
func TestCSensorSlowRate(t *testing.T) {
	cc := testenv.Tool(t, "cc", "install gcc to run the C sensor test")
	bin := filepath.Join(t.TempDir(), "sensor")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "../examples/sensors/sensor.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	start := time.Now()
	out, err := exec.Command(bin, "1", "1").Output()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); len(out) != 20 || d < 900*time.Millisecond {
		t.Fatalf("sensor 1 1: %d bytes in %v, want one 20-byte record and a 1 s pause", len(out), d)
	}
}

func TestExecPythonMsgp(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to run the msgp sensor test")
	e := newEnv(t)
	abs, _ := filepath.Abs("../examples/sensors/sensor.py")
	inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.py]
slots = 64
slot_payload = 64
[[sources]]
name = "py"
kind = "exec"
ring = "py"
framing = "msgp"
restart = "never"
command = [%q, %q, "5", "0"] # RATE_HZ 0: unpaced
`, py, abs))
	frames := readFrames(t, e, "py", 5)
	for i, f := range frames {
		if f.Type != 3 || len(f.Data) != 12 || binary.LittleEndian.Uint32(f.Data) != uint32(i+1) {
			t.Fatalf("frame %d: type %d data %x", i, f.Type, f.Data)
		}
	}
}

func TestExecRestartBackoff(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "crash.sh", "echo tick\nexit 3\n")
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "crash"
kind = "exec"
ring = "r"
command = [%q]
backoff_min = "20ms"
backoff_max = "80ms"
`, script))
	eventually(t, "3 restarts", func() bool { return rt.sourceStat(t, "crash").Restarts >= 3 })
	st := rt.sourceStat(t, "crash")
	if st.LastExit != "exit status 3" || st.Frames < 3 {
		t.Fatalf("stat %+v", st)
	}
	// The backoff doubles: 20ms, 40ms, 80ms, 80ms...
	logb.waitFor(t, "restarting in 20ms", 1)
	logb.waitFor(t, "restarting in 40ms", 1)
	logb.waitFor(t, "restarting in 80ms", 2)
}

func TestExecStopTermThenKill(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "stubborn.sh", "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n")
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "stubborn"
kind = "exec"
ring = "r"
command = [%q]
stop_timeout = "300ms"
`, script))
	readFrames(t, e, "r", 1)
	pid := rt.sourceStat(t, "stubborn").PID
	if !pidAlive(pid) {
		t.Fatalf("child %d not alive", pid)
	}
	if err := rt.StopSource("stubborn"); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "ignored SIGTERM", 1)
	if pidAlive(pid) {
		t.Fatalf("child %d survived SIGKILL", pid)
	}
	st := rt.sourceStat(t, "stubborn")
	if st.State != StateStopped || st.LastExit != "signal: killed" {
		t.Fatalf("stat %+v", st)
	}
	// And it can be started again, then restarted through the handler.
	if err := rt.StartSource("stubborn"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new child", func() bool { p := rt.sourceStat(t, "stubborn").PID; return p != 0 && p != pid })
	if err := rt.StartSource("nope"); err == nil || !strings.Contains(err.Error(), control.ErrNotFound.Error()) {
		t.Fatalf("unknown source: %v", err)
	}
}

func TestFIFOWritersComeAndGo(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.f]
slots = 64
slot_payload = 64
[rings.tick]
slots = 1024
slot_payload = 64
[[sources]]
name = "fifo"
kind = "fifo"
ring = "f"
path = %q
framing = "len32"
max_skip = 1024
[[sources]]
name = "tick"
kind = "synthetic"
ring = "tick"
rate_hz = 200
size = 8
`, fifo))
	eventually(t, "the FIFO", func() bool {
		fi, err := os.Lstat(fifo)
		return err == nil && fi.Mode()&os.ModeNamedPipe != 0 && fi.Mode().Perm() == 0o600
	})
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	rec := func(p string) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(p))), p...) }
	write := func(b []byte) {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	tickBefore := rt.sourceStat(t, "tick").Frames
	write(rec("first"))
	write(rec("second")) // a second writer after the first left
	// An oversized record (skipped), then a good one, in one write.
	bad := append(rec(strings.Repeat("x", 100)), rec("third")...)
	write(bad)
	// A broken stream (length beyond max_skip): this writer's data is
	// dropped; the next writer's record arrives.
	write(append(binary.LittleEndian.AppendUint32(nil, 1<<30), "garbage"...))
	logb.waitFor(t, "reading new records", 1)
	write(rec("fourth"))
	frames := readFrames(t, e, "f", 4)
	var got []string
	for _, f := range frames {
		got = append(got, string(f.Data))
	}
	if strings.Join(got, ",") != "first,second,third,fourth" {
		t.Fatalf("frames %q", got)
	}
	// The counters are bumped just after the commit a reader may already see.
	eventually(t, "the fifo counters", func() bool { return rt.sourceStat(t, "fifo").Frames == 4 })
	st := rt.sourceStat(t, "fifo")
	if st.Bad != 2 || st.Frames != 4 || st.State != StateRunning {
		t.Fatalf("fifo stat %+v", st)
	}
	eventually(t, "the synthetic source to keep flowing", func() bool { return rt.sourceStat(t, "tick").Frames > tickBefore+10 })
}

// A runtime killed with SIGKILL takes its children with it (Pdeathsig).
func TestChildDiesWithRuntime(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "forever.sh", "echo up\nexec sleep 1000\n")
	cfg := e.writeConfig(t, "c.toml", execConfig("forever", script))
	c := startChild(t, cfg)
	c.log.waitFor(t, "source forever: started", 1)
	var pid int
	for _, l := range strings.Split(c.log.String(), "\n") {
		if i := strings.Index(l, "(pid "); i >= 0 && strings.Contains(l, "source forever: started") {
			fmt.Sscanf(l[i:], "(pid %d)", &pid)
		}
	}
	if pid == 0 || !pidAlive(pid) {
		t.Fatalf("child pid %d not found alive", pid)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.exit(t)
	eventually(t, fmt.Sprintf("child %d to die", pid), func() bool { return !pidAlive(pid) })
}

func TestRecorderSink(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	_, _, stop := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.r]
slots = 256
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 500
size = 16
type = 5
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = %q
`, out))
	eventually(t, "recorded frames", func() bool { fi, err := os.Stat(out); return err == nil && fi.Size() > 10*(4+24+16) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var prev uint32
	for len(b) > 0 {
		l := binary.LittleEndian.Uint32(b)
		if l != 24+16 || len(b) < int(4+l) {
			t.Fatalf("record %d: length %d, %d bytes left", n, l, len(b))
		}
		seq := binary.LittleEndian.Uint32(b[4:])
		if typ := binary.LittleEndian.Uint32(b[8:]); typ != 5 {
			t.Fatalf("record %d: type %d", n, typ)
		}
		// A recorder descheduled for longer than the ring holds (256 slots
		// at 500 Hz, ~0.5 s; seen under -race) loses frames and says how
		// many in the header's lost field.
		lost := binary.LittleEndian.Uint32(b[16:])
		if n > 0 && seq != prev+1+lost {
			t.Fatalf("record %d: seq %d after %d with %d lost", n, seq, prev, lost)
		}
		prev = seq
		b = b[4+l:]
		n++
	}
	if n < 10 {
		t.Fatalf("%d records", n)
	}
}

func TestControlHandlerOverQueue(t *testing.T) {
	e := newEnv(t)
	rt, _, _ := inproc(t, `
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 100
size = 8
`)
	cl, err := control.Dial(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rep, err := cl.Call(t.Context(), "sources")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sources) != 1 || rep.Sources[0].Name != "gen" || rep.Sources[0].Kind != "synthetic" {
		t.Fatalf("reply %+v", rep)
	}
	rep, err = cl.Call(t.Context(), "stop", "gen")
	if err != nil || !rep.OK {
		t.Fatalf("stop: %+v %v", rep, err)
	}
	if st := rt.sourceStat(t, "gen"); st.State != StateStopped {
		t.Fatalf("state %s", st.State)
	}
	rep, err = cl.Call(t.Context(), "status")
	if err != nil || rep.Status == nil || rep.Status.Rings != 1 || rep.Status.PID != os.Getpid() {
		t.Fatalf("status: %+v %v", rep, err)
	}
}

// write = "child": the runtime does not hold the writer lease and the child
// writes the ring directly, finding it through EDGEIPC_RING/EDGEIPC_SHM_DIR.
func TestExecChildWritesRing(t *testing.T) {
	e := newEnv(t)
	_, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[rings.direct]
slots = 16
slot_payload = 64
[[sources]]
name = "direct"
kind = "exec"
ring = "direct"
write = "child"
command = [%q, "-test.run=^$"]
env = ["EDGEIPC_TEST_CHILD_WRITER=1"]
`, os.Args[0]))
	frames := readFrames(t, e, "direct", 3)
	for i, f := range frames {
		if string(f.Data) != fmt.Sprintf("direct %d", i+1) || f.Type != 7 {
			t.Fatalf("frame %d: %q type %d", i, f.Data, f.Type)
		}
	}
	logb.waitFor(t, "[direct] wrote 3 frames", 1)
}

// A recorder whose path names a FIFO fails with an error instead of
// blocking in open(2) for a reader that never comes, which hung the
// shutdown until shutdown_timeout (and would wedge a reload).
func TestRecorderRefusesFIFO(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.fifo")
	if err := syscall.Mkfifo(out, 0o600); err != nil {
		t.Fatal(err)
	}
	_, logb, stop := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
shutdown_timeout = "5s"
[rings.r]
slots = 16
slot_payload = 64
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = %q
`, out))
	logb.waitFor(t, "not a regular file", 1)
	if err := stop(); err != nil {
		t.Fatalf("%v; log:\n%s", err, logb.String())
	}
}

// A recorder file another user made at the path (in /tmp anyone may) is
// not appended to: that user would read every frame. Refused, named, and
// left as it was.
func TestRecorderRefusesForeignFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	e := newEnv(t)
	out := filepath.Join(e.dir, "rec.bin")
	if err := os.WriteFile(out, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(out, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, logb, stop := inproc(t, recorderConfig(out, 0))
	logb.waitFor(t, "belongs to uid 65534", 1)
	w, err := shm.OpenWriter("r", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFrame(1, 0, []byte("secret"))
	w.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 0 {
		t.Fatalf("the foreign file was written: %v %v", fi.Size(), err)
	}
}

// A child that floods its stderr gets log_rate lines a second logged, in
// bursts of twice that; the rest are counted (log_dropped) and reported
// when the stream ends, so every line is either logged or counted. With
// log_rate = 0 every line is logged. Before, every line was logged: a
// chatty child flooded the log and journald's rate limit with it.
func TestExecLogRate(t *testing.T) {
	const lines = 1000
	for _, tc := range []struct {
		rate string
		all  bool
	}{{"log_rate = 5", false}, {"log_rate = 0", true}} {
		t.Run(tc.rate, func(t *testing.T) {
			e := newEnv(t)
			script := writeScript(t, e.dir, "chatty.sh", fmt.Sprintf("i=0\nwhile [ $i -lt %d ]; do i=$((i+1)); echo \"chatter $i\" >&2; done\nsleep 3600\n", lines))
			rt, logb, _ := inproc(t, execConfig("chatty", script)+"restart = \"never\"\n"+tc.rate+"\n")
			logged := func() int { return strings.Count(logb.String(), "[chatty] chatter ") }
			if tc.all {
				eventually(t, "every line logged", func() bool { return logged() == lines })
				if st := rt.sourceStat(t, "chatty"); st.LogDropped != 0 {
					t.Fatalf("log_dropped %d with log_rate = 0", st.LogDropped)
				}
				return
			}
			eventually(t, "every line logged or counted", func() bool {
				return uint64(logged())+rt.sourceStat(t, "chatty").LogDropped == lines
			})
			held := rt.sourceStat(t, "chatty").LogDropped
			if n := logged(); n < 10 || held == 0 {
				t.Fatalf("%d lines logged, %d held back; want the burst of 10 logged and the rest held", n, held)
			}
			// The stats lines (here a SIGUSR1-style snapshot) carry the count.
			rt.logStatsWindow("SIGUSR1 stats", false)
			logb.waitFor(t, fmt.Sprintf("log lines not logged %d", held), 1)
			// The lines held back are reported when the stream ends (here:
			// when the child is stopped).
			if err := rt.StopSource("chatty"); err != nil {
				t.Fatal(err)
			}
			logb.waitFor(t, "lines of the child's output not logged: more than log_rate = 5 a second", 1)
			var reported uint64
			for _, l := range strings.Split(logb.String(), "\n") {
				var n uint64
				if i := strings.Index(l, "[chatty] "); i >= 0 && strings.Contains(l, "not logged") {
					fmt.Sscanf(l[i+len("[chatty] "):], "%d", &n)
					reported += n
				}
			}
			if reported != held {
				t.Fatalf("the log reports %d lines not logged; log_dropped says %d", reported, held)
			}
		})
	}
}

// log_rate bounds bytes as well as lines: a line longer than 1 KiB costs
// one line of the budget per KiB started. Before, a child writing 8 KiB
// lines got as many logged as one writing short lines (here the burst of
// 10), eight times the bytes log_rate allows.
func TestExecLogRateCountsLongLines(t *testing.T) {
	const lines, size = 200, 8 << 10
	e := newEnv(t)
	script := writeScript(t, e.dir, "wordy.sh", fmt.Sprintf("yes \"$(head -c %d /dev/zero | tr '\\0' x)\" | head -n %d >&2\nsleep 3600\n", size-1, lines))
	began := time.Now()
	rt, logb, _ := inproc(t, execConfig("wordy", script)+"restart = \"never\"\nlog_rate = 5\n")
	logged := func() int { return strings.Count(logb.String(), "[wordy] xxxx") }
	eventually(t, "every line logged or counted", func() bool {
		return uint64(logged())+rt.sourceStat(t, "wordy").LogDropped == lines
	})
	// The burst (10 KiB) lets two 8 KiB lines through (the second on the
	// token left, going into debt); after that 5 KiB a second.
	allowed := 2 + int(time.Since(began).Seconds()*5*1024/size) + 1
	if n := logged(); n > allowed || n < 1 {
		t.Fatalf("%d lines of 8 KiB logged in %v at log_rate = 5; want 1..%d", n, time.Since(began).Round(time.Millisecond), allowed)
	}
}

// log_rate's bound on bytes holds for binary garbage too: the log writes
// each control byte escaped (\x01, four bytes; \u0001 in JSON, six), and
// that is what it charges. Before, a child writing lines of 2 KiB of
// control bytes got as many logged as one writing 2 KiB of text, four
// times the bytes of the log that log_rate allows.
func TestExecLogRateCountsEscapedBytes(t *testing.T) {
	const lines, size = 200, 2 << 10
	e := newEnv(t)
	script := writeScript(t, e.dir, "garbage.sh", fmt.Sprintf("yes \"$(head -c %d /dev/zero | tr '\\0' '\\001')\" | head -n %d >&2\nsleep 3600\n", size-1, lines))
	began := time.Now()
	rt, logb, _ := inproc(t, execConfig("garbage", script)+"restart = \"never\"\nlog_rate = 5\n")
	logged := func() int { return strings.Count(logb.String(), `[garbage] \x01\x01`) }
	eventually(t, "every line logged or counted", func() bool {
		return uint64(logged())+rt.sourceStat(t, "garbage").LogDropped == lines
	})
	// Each line is logged as 2047 escapes of six bytes' charge, 12 KiB: the
	// burst (10 KiB) lets one through, into debt; after that 5 KiB a
	// second.
	const charged = (size - 1) * 6
	allowed := 1 + int(time.Since(began).Seconds()*5*1024/charged) + 1
	if n := logged(); n > allowed || n < 1 {
		t.Fatalf("%d lines of 2 KiB of control bytes logged in %v at log_rate = 5; want 1..%d", n, time.Since(began).Round(time.Millisecond), allowed)
	}
}
