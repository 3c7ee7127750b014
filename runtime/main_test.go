//go:build linux

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// Child mode: the test binary re-executed as a real `edgeipc run`-like
// runtime process, so tests can signal and SIGKILL it.
const childEnv = "EDGEIPC_RUNTIME_TEST_CONFIG"

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	if p := os.Getenv(childEnv); p != "" {
		os.Exit(childMain(p))
	}
	if os.Getenv("EDGEIPC_TEST_CHILD_WRITER") == "1" {
		os.Exit(childWriter())
	}
	if keys := os.Getenv("EDGEIPC_TEST_PRINTENV"); keys != "" {
		// An exec source child that prints, one line each, what getenv
		// (Go's, like C's, takes the first of duplicate entries) finds.
		for _, k := range strings.Split(keys, ",") {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		os.Exit(0)
	}
	if p := os.Getenv("EDGEIPC_TEST_FIFO_RACER"); p != "" {
		os.Exit(childFIFORacer(p))
	}
	if p := os.Getenv("EDGEIPC_TEST_FIFO_MEMBER"); p != "" {
		os.Exit(childFIFOMember(p))
	}
	if p := os.Getenv("EDGEIPC_TEST_FIFO_LOCKER"); p != "" {
		os.Exit(childFIFOLocker(p))
	}
	os.Exit(testenv.Run(m)) // fails on descriptors the tests' runtimes left open
}

// childWriter is an exec source child with write = "child": it writes the
// ring named in its environment itself.
func childWriter() int {
	w, err := shm.OpenWriter(os.Getenv("EDGEIPC_RING"), &shm.SegmentOptions{Dir: os.Getenv("EDGEIPC_SHM_DIR")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		return 1
	}
	for i := 1; i <= 3; i++ {
		w.WriteFrame(7, 0, []byte(fmt.Sprintf("direct %d", i)))
	}
	fmt.Println("wrote 3 frames") // stdout is logged with write = "child"
	time.Sleep(time.Hour)
	return 0
}

func childMain(path string) int {
	cfg, err := Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log, _ := NewLogger(os.Stderr, "text")
	if os.Getenv(lingerEnv) == "1" {
		return lingerMain(cfg, log)
	}
	rt, err := New(cfg, Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := rt.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// lingerEnv makes the child runtime a program that embeds the runtime and
// goes on after Run: SIGTERM ends Run's context; once Run has returned it
// says so, then says when no goroutine of the runtime is left, and lives
// on until it is killed.
const lingerEnv = "EDGEIPC_RUNTIME_TEST_LINGER"

func lingerMain(cfg *Config, log *slog.Logger) int {
	rt, err := New(cfg, Options{Logger: log, IgnoreSignals: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(os.Stderr, "TEST: run returned: %v\n", rt.Run(ctx))
	buf := make([]byte, 1<<20)
	for {
		// A goroutine that runs a function of this package's types is the
		// runtime's (the tests' own are not in this process).
		st := string(buf[:goruntime.Stack(buf, true)])
		if !strings.Contains(st, "runtime.(*sourceState)") && !strings.Contains(st, "runtime.(*spawner)") &&
			!strings.Contains(st, "runtime.(*Runtime)") {
			fmt.Fprintln(os.Stderr, "TEST: no goroutine of the runtime left")
			select {}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait bounds every wait in these tests: a guard against hangs, not a
// speed assertion (qemu is ~10x slower than native).
var wait = 60 * time.Second

// syncBuf is a goroutine-safe log sink with waiting.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the log contains want n times.
func (s *syncBuf) waitFor(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if strings.Count(s.String(), want) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log never contained %q %d times; log:\n%s", want, n, s.String())
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// env is one test's private directory for segments and FIFOs and its
// control queue name.
type env struct {
	dir   string
	queue string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := t.TempDir()
	q := fmt.Sprintf("edgeipc.test.%d.%d", os.Getpid(), time.Now().UnixNano()%1e9)
	t.Setenv("EDGEIPC_SHM_DIR", d)
	t.Setenv("EDGEIPC_CTL_QUEUE", q)
	// A runtime the test SIGKILLs (or one in a child that dies with the
	// test) leaves its control queue; the system allows 256 queues in all
	// (fs.mqueue.queues_max), and leftovers of earlier runs would use them.
	t.Cleanup(func() { mq.Unlink(q) })
	return &env{dir: d, queue: q}
}

func (e *env) sopts() *shm.SegmentOptions { return &shm.SegmentOptions{Dir: e.dir} }

func (e *env) writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// inproc runs a runtime in this process (signals ignored) until the test
// ends; it returns the runtime and its log.
func inproc(t *testing.T, cfgText string) (*Runtime, *syncBuf, func() error) {
	t.Helper()
	cfg, err := Parse("test.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	return inprocConfig(t, cfg)
}

// newTestRuntime makes a runtime for cfg that logs as text into the
// returned buffer and leaves signals alone; it does not run it.
func newTestRuntime(t *testing.T, cfg *Config) (*Runtime, *syncBuf) {
	t.Helper()
	logb := &syncBuf{}
	log, _ := NewLogger(logb, "text")
	rt, err := New(cfg, Options{Logger: log, IgnoreSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	return rt, logb
}

// inprocConfig is inproc for a parsed configuration (one loaded from a
// file can be reloaded).
func inprocConfig(t *testing.T, cfg *Config) (*Runtime, *syncBuf, func() error) {
	t.Helper()
	rt, logb := newTestRuntime(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(wait):
			t.Fatalf("runtime did not stop; log:\n%s", logb.String())
			return nil
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("runtime stop: %v", err)
		}
		if t.Failed() {
			t.Logf("runtime log:\n%s", logb.String())
		}
	})
	logb.waitFor(t, "runtime ready", 1)
	return rt, logb, stop
}

// child is a runtime running as a separate process.
type child struct {
	cmd     *exec.Cmd
	log     *syncBuf
	done    chan error
	orphans atomic.Bool
}

func startChild(t *testing.T, cfgPath string, extraEnv ...string) *child {
	t.Helper()
	return startChildCmd(t, exec.Command(os.Args[0], "-test.run=^$"), cfgPath, extraEnv...)
}

// startChildCmd is startChild for a command of the caller's (another copy
// of the test binary, another user).
func startChildCmd(t *testing.T, cmd *exec.Cmd, cfgPath string, extraEnv ...string) *child {
	t.Helper()
	// The child runtime supervises its exec sources: a fork of one that
	// qemu-user deadlocks is killed and restarted like a crashed source,
	// rather than ending the whole runtime (internal/qemuwatch).
	cmd.Env = append(append(os.Environ(), childEnv+"="+cfgPath, qemuwatch.StuckEnv+"="+qemuwatch.KillChild), extraEnv...)
	c := &child{cmd: cmd, log: &syncBuf{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		// The runtime logs a child's stderr line of up to 64 KiB, plus a
		// prefix: a line too long for the scanner must not stop the
		// reading, or the runtime would block on its stderr.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			c.log.Write(append(sc.Bytes(), '\n'))
		}
		if err := sc.Err(); err != nil {
			c.log.Write([]byte(fmt.Sprintf("TEST: reading the child runtime's log: %v; the rest is discarded\n", err)))
		}
		io.Copy(io.Discard, pr)
	}()
	// If a process the child started outlives it holding its stdout or
	// stderr, Wait would block on the copy forever; WaitDelay bounds that
	// and the test reports it (an orphan is a bug: children must die with
	// the runtime).
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		if errors.Is(err, exec.ErrWaitDelay) {
			ps, _ := exec.Command("ps", "-eo", "pid,ppid,pgid,stat,args").CombinedOutput()
			c.log.Write([]byte(fmt.Sprintf("TEST: child runtime exited but its output pipe stayed open for %v; processes:\n%s", cmd.WaitDelay, ps)))
			c.orphans.Store(true)
		}
		// Wait returns once the last bytes went into the pipe, which may
		// be before the scanner above has put them in the log: the
		// exit is told only when the log holds everything (a test that
		// checked the runtime's last line after exit missed it).
		pw.Close()
		<-logged
		c.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(wait + cmd.WaitDelay):
			t.Errorf("child runtime %d not reaped after SIGKILL", cmd.Process.Pid)
		}
		if c.orphans.Load() {
			t.Errorf("a process started by the child runtime outlived it")
		}
		if t.Failed() {
			t.Logf("child runtime log:\n%s", c.log.String())
		}
	})
	return c
}

// exit waits for the child runtime to exit and returns its exit code.
func (c *child) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
		c.done <- nil // for Cleanup
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(wait):
		t.Fatalf("child runtime did not exit; log:\n%s", c.log.String())
		return -1
	}
}

// readFrames reads n frames from the ring (from the oldest kept).
func readFrames(t *testing.T, e *env, ring string, n int) []shm.Frame {
	t.Helper()
	return readFramesFrom(t, e, ring, shm.Oldest, n)
}

// newFrames reads n frames published from now on in the ring.
func newFrames(t *testing.T, e *env, ring string, n int) []shm.Frame {
	t.Helper()
	return readFramesFrom(t, e, ring, shm.Newest, n)
}

func readFramesFrom(t *testing.T, e *env, ring string, from shm.Start, n int) []shm.Frame {
	t.Helper()
	rd, err := shm.OpenReader(ring, e.sopts(), &shm.ReaderOptions{From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []shm.Frame
	buf := make([]byte, rd.Ring().SlotPayload())
	deadline := time.Now().Add(wait)
	for len(out) < n {
		f, err := rd.ReadIntoDeadline(deadline, buf)
		if err != nil {
			t.Fatalf("ring %s: read %d of %d frames: %v", ring, len(out), n, err)
		}
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
	return out
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (rt *Runtime) sourceStat(t *testing.T, name string) (st sourceStatT) {
	t.Helper()
	for _, s := range rt.Sources() {
		if s.Name == name {
			return sourceStatT(s)
		}
	}
	t.Fatalf("no source %q", name)
	return
}

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

type sourceStatT = control.SourceStat

// execConfig is a config with no control queue and no stats line, ring r
// (16 slots of 64 B) and one exec source name running command, which
// writes r through the runtime; extra lines are added to the source.
func execConfig(name, command string, extra ...string) string {
	return execArgvConfig(name, []string{command}, extra...)
}

// execArgvConfig is execConfig for a command with arguments.
func execArgvConfig(name string, argv []string, extra ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = %q
kind = "exec"
ring = "r"
command = [%s]
%s`, name, strings.Join(q, ", "), strings.Join(extra, "\n"))
}
